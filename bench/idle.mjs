// idle.mjs — opens N keep-alive connections to a server, sends one request on
// each (a cache hit), reads the whole answer, then leaves them all idle and
// open. Prints "READY open=.. ok=.. failed=.." once all are settled, then holds
// them for HOLD seconds (or until killed).
//   node idle.mjs HOST PORT N BODYFILE HOLD_SECONDS
import net from 'node:net';
import { readFileSync } from 'node:fs';

const [host, portArg, nArg, file, holdArg] = process.argv.slice(2);
const port = Number(portArg), n = Number(nArg), hold = Number(holdArg || 60);
const all = readFileSync(file);
const nl = all.indexOf(0x0a);
const body = all.subarray(0, nl < 0 ? all.length : nl);
const req = Buffer.concat([
  Buffer.from(
    `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}:${port}\r\nContent-Type: application/json\r\n` +
      `Authorization: Bearer sk-bench\r\nContent-Length: ${body.length}\r\n\r\n`,
  ),
  body,
]);
const socks = [];
let ok = 0, failed = 0;

function one() {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let buf = Buffer.alloc(0), need = -1, done = false;
    const finish = (good) => {
      if (done) return;
      done = true;
      if (good) ok++;
      else { failed++; s.destroy(); }
      resolve();
    };
    s.setTimeout(30000, () => finish(false));
    s.on('connect', () => s.write(req));
    s.on('data', (d) => {
      if (done) return;
      buf = Buffer.concat([buf, d]);
      if (need < 0) {
        const he = buf.indexOf('\r\n\r\n');
        if (he < 0) return;
        const head = buf.subarray(0, he).toString();
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (!/^HTTP\/1\.1 200/.test(head) || !m) return finish(false);
        need = he + 4 + Number(m[1]);
      }
      if (buf.length >= need) { s.setTimeout(0); buf = null; finish(true); }
    });
    s.on('error', () => finish(false));
    s.on('close', () => finish(false));
    socks.push(s);
  });
}

const deadline = setTimeout(() => process.exit(0), (hold + 120) * 1000);
const BATCH = 200;
for (let i = 0; i < n; i += BATCH) {
  const ps = [];
  for (let j = i; j < Math.min(n, i + BATCH); j++) ps.push(one());
  await Promise.all(ps);
}
const open = socks.filter((s) => !s.destroyed).length;
console.log(`READY open=${open} ok=${ok} failed=${failed}`);
clearTimeout(deadline);
setTimeout(() => { for (const s of socks) s.destroy(); process.exit(0); }, hold * 1000);
