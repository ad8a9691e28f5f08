// cli.mjs — run the promptcache binary's offline subcommands (stats, export,
// import, purge, inspect, verify) to completion, failing on sanitizer reports.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { requireBin, childEnv } from './proxy.mjs';

export const SANITIZER_RE = /(AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error:)/;

/** Run the binary to completion; stdout as a Buffer (exact bytes), stderr as text. */
export function cli(args, { env = {}, timeoutMs = 10000, wrap = [] } = {}) {
  const bin = requireBin();
  return new Promise((resolve, reject) => {
    const argv = [...wrap, bin, ...args];
    const p = spawn(argv[0], argv.slice(1), { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    let stderr = '';
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (d) => out.push(d));
    p.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      if (SANITIZER_RE.test(stderr)) {
        reject(new Error(`sanitizer report from promptcache ${args.join(' ')}:\n${stderr}`));
        return;
      }
      resolve({ code, signal, stdout, text: stdout.toString('utf8'), stderr });
    });
  });
}

/** cli() that must exit 0. */
export async function cliOk(args, opts) {
  const r = await cli(args, opts);
  assert.equal(r.code, 0, `promptcache ${args.join(' ')} exited ${r.code} (signal ${r.signal}); stderr: ${r.stderr}`);
  return r;
}
