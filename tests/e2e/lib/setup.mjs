// setup.mjs — the usual per-test fixture: a fresh mock upstream and a fresh
// proxy in front of it (own port, own db dir), both stopped by t.after hooks.
import { startMock } from './mock.mjs';
import { startProxy, mockFor } from './proxy.mjs';

export async function setup(t, { args = [], env = {}, listen, mock: mockOpts } = {}) {
  const mock = await mockFor(t, startMock, mockOpts);
  const proxy = await startProxy(t, { upstream: mock, args, env, listen });
  return { mock, proxy };
}

export { startMock };
export * from './proxy.mjs';
