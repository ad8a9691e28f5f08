// gen.mjs — writes the benchmark's request bodies, one per line:
//   node gen.mjs bodies SIZE COUNT OUTFILE
//   node gen.mjs response          (the static peer's body, on stdout)
import { openSync, writeSync, closeSync } from 'node:fs';
import { body, response } from './lib.mjs';

const [cmd, a, b, out] = process.argv.slice(2);
if (cmd === 'response') {
  process.stdout.write(response('0'.repeat(32)));
} else if (cmd === 'bodies') {
  const size = Number(a), count = Number(b);
  const fd = openSync(out, 'w');
  for (let i = 0; i < count; i++) {
    const s = body(i, size);
    if (s.length !== size) throw new Error(`body ${i}: ${s.length} bytes, wanted ${size}`);
    writeSync(fd, s);
    writeSync(fd, "\n");
  }
  closeSync(fd);
} else {
  console.error('usage: node gen.mjs bodies SIZE COUNT OUTFILE | response');
  process.exit(2);
}
