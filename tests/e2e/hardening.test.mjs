// hardening.test.mjs — regression tests for what an attacker or an unlucky
// operator found: inputs that crashed the proxy, leaked a credential into the
// log, or made it keep a wrong answer. Each test failed before its fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setup, request, chat } from './lib/setup.mjs';
import { RawClient } from './lib/raw.mjs';
import { cliOk } from './lib/cli.mjs';

test('a long request target with a credential in its query is logged masked and never crashes the proxy', async (t) => {
  for (const format of ['text', 'json']) {
    const { mock, proxy } = await setup(t, { args: ['--log-format', format] });
    const junk = 'a'.repeat(6000);
    for (const q of [`x=${junk}&key=SECRET1`, `key=SECRET2&x=${junk}`, `${junk}=1&api_key=SECRET3&KEY=SECRET4&k%65y=SECRET5`]) {
      const r = await request(proxy, { path: `/v1/models?${q}` });
      assert.equal(r.status, 200, `format ${format}: ${r.text.slice(0, 200)}`);
    }
    assert.equal(mock.count(), 3);
    await proxy.waitFor((p) => p.logLines().filter((l) => l.includes('/v1/models')).length === 3, 3000, 'three access-log lines');
    const lines = proxy.logLines().filter((l) => l.includes('/v1/models'));
    for (const l of lines) {
      assert.doesNotMatch(l, /SECRET/, `a credential reached the log: ${l.slice(0, 300)}`);
      if (format === 'json') JSON.parse(l);
    }
    assert.match(lines[2], /api_key=\*\*\*&KEY=\*\*\*&k%65y=\*\*\*/);
  }
});

test('raw non-UTF-8 bytes in the target still make valid JSON log lines', async (t) => {
  const { proxy } = await setup(t, { args: ['--log-format', 'json'] });
  const c = await RawClient.connect(proxy.port);
  t.after(() => c.destroy());
  const head = Buffer.concat([Buffer.from('GET /v1/models?q='), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n')]);
  await c.write(head);
  await c.readResponses(1); // forwarded (the mock itself may refuse such a target)
  const line = await proxy.waitFor((p) => p.logLines().find((l) => l.includes('/v1/models')), 3000, 'the access-log line');
  const j = JSON.parse(line);
  assert.equal(j.path, '/v1/models?q=\ufffd\ufffd\ufffd');
});

test('a text log line stays one line whatever bytes the target holds', async (t) => {
  const { proxy } = await setup(t);
  const c = await RawClient.connect(proxy.port);
  t.after(() => c.destroy());
  await c.write(Buffer.concat([Buffer.from('GET /v1/models?q=a'), Buffer.from([0x09]), Buffer.from('b HTTP/1.1\r\nHost: x\r\n\r\n')]));
  await c.readResponses(1);
  const line = await proxy.waitFor((p) => p.logLines().find((l) => l.includes('/v1/models')), 3000, 'the access-log line');
  assert.match(line, /q=a\\x09b /);
});

test('repeated query parameters in another order are another request', async (t) => {
  const { mock, proxy } = await setup(t);
  const a = await chat(proxy, 'q', { path: '/v1/chat/completions?a=1&a=2' });
  const b = await chat(proxy, 'q', { path: '/v1/chat/completions?a=2&a=1' });
  assert.equal(a.cache, 'MISS');
  assert.equal(b.cache, 'MISS');
  assert.notEqual(a.key, b.key);
  const c = await chat(proxy, 'q', { path: '/v1/chat/completions?a=1&a=2' });
  assert.equal(c.cache, 'HIT');
  assert.equal(mock.count(), 2);
});

test('credential query parameters in any spelling never enter the stored key path', async (t) => {
  const { mock, proxy } = await setup(t, { args: ['--key-scope', 'shared'] });
  const a = await chat(proxy, 'q', { path: '/v1/chat/completions?API_KEY=SECRET1' });
  const b = await chat(proxy, 'q', { path: '/v1/chat/completions?k%65y=SECRET2' });
  assert.equal(a.cache, 'MISS');
  assert.equal(b.cache, 'HIT', 'in the shared key scope a credential is not part of the key');
  assert.equal(mock.count(), 1);
  const ex = await cliOk(['export', '--db', proxy.dbDir]);
  assert.doesNotMatch(ex.text, /SECRET/);
});
