// setup.mjs — the usual per-test fixture: a fresh mock upstream and a fresh
// proxy in front of it (own port, own db dir), both stopped by t.after hooks.
import assert from 'node:assert/strict';
import { startMock, echoText } from './mock.mjs';
import { startProxy, mockFor, chat } from './proxy.mjs';

export async function setup(t, { args = [], env = {}, listen, mock: mockOpts } = {}) {
  const mock = await mockFor(t, startMock, mockOpts);
  const proxy = await startProxy(t, { upstream: mock, args, env, listen });
  return { mock, proxy };
}

/** A chat request still gets its answer from upstream after `label` (something that must not break the proxy). */
export async function stillServing(proxy, mock, label) {
  const before = mock.count();
  const r = await chat(proxy, `still serving after ${label}`);
  assert.equal(r.status, 200, `proxy keeps serving after ${label}`);
  assert.equal(r.json.choices[0].message.content, echoText(`still serving after ${label}`));
  assert.equal(mock.count(), before + 1);
}

export { startMock };
export * from './proxy.mjs';
