// gen.mjs — writes the benchmark's request bodies, one per line:
//   node gen.mjs bodies SIZE COUNT OUTFILE
//   node gen.mjs response          (the static peer's body, on stdout)
//   node gen.mjs template SIZE OUTFILE  (body 0 with "{SEQ}" in its question,
//       SIZE bytes once "{SEQ}" is replaced by 10 digits: bench/wrk-fwd.lua)
import { openSync, writeSync, closeSync, writeFileSync } from 'node:fs';
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
} else if (cmd === 'template') {
  const size = Number(a), outfile = b;
  const s = body(0, size - 9).toString().replace('Question #0: ', 'Question #{SEQ}: ');
  if (!s.includes('{SEQ}') || Buffer.byteLength(s) + 5 !== size) throw new Error('template: bad size or marker');
  writeFileSync(outfile, s + '\n');
} else {
  console.error('usage: node gen.mjs bodies SIZE COUNT OUTFILE | response | template SIZE OUTFILE');
  process.exit(2);
}
