// redis.mjs — real redis-server processes for the end-to-end tests of the fleet
// tier (no mocks of Redis): a standalone server, optionally with a password, or
// a Redis Cluster of N masters made with `redis-cli --cluster create`. Every
// server listens on a free 127.0.0.1 port and lives in its own temporary
// directory; each start registers a t.after hook that kills its processes by
// pid (SIGKILL: nothing is persisted) and removes the directories.
//
//   const r = await startRedis(t, { password: 'pw', args: ['--maxmemory', '64mb'] });
//   r.port, r.pid, r.url ('redis://:pw@127.0.0.1:PORT'), r.log()
//   await r.cli('SET', 'k', 'v')          // redis-cli output, trimmed
//   await r.stop(); await r.restart()     // restart: same port, empty data
//
//   const c = await startRedisCluster(t, { masters: 3 });
//   c.nodes[i] = { port, pid, url, id }, c.urls
//   await c.cli(i, 'CLUSTER', 'INFO')
//   await c.moveSlot(slot, toIndex)       // IMPORTING/MIGRATING, MIGRATE its keys, SETSLOT NODE everywhere
//   await c.stop()
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const HOST = '127.0.0.1';
const START_MS = 10000;

function listenOn(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(null));
    srv.listen(port, HOST, () => resolve(srv));
  });
}

const closeServer = (srv) => new Promise((r) => srv.close(r));

/** A free loopback port; with `bus`, port + 10000 (the cluster bus) is free too. */
async function freePort(bus = false) {
  for (let i = 0; i < 100; i++) {
    const a = await listenOn(0);
    if (!a) continue;
    const port = a.address().port;
    let ok = true;
    if (bus) {
      const b = port + 10000 <= 65535 ? await listenOn(port + 10000) : null;
      ok = !!b;
      if (b) await closeServer(b);
    }
    await closeServer(a);
    if (ok) return port;
  }
  throw new Error('no free port pair on 127.0.0.1');
}

function run(file, args, { timeout = 15000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\n$ ${file} ${args.join(' ')}\n${stdout}${stderr}`;
        reject(err);
      } else {
        resolve(stdout.replace(/\s+$/, ''));
      }
    });
  });
}

/** One redis-server process: start, stop, restart on the same port and directory. */
class Server {
  constructor({ password = '', args = [], cluster = false, root }) {
    this.password = password;
    this.extra = args;
    this.cluster = cluster;
    this.root = root;
    this.port = 0;
    this.proc = null;
    this.exited = null;
  }

  get pid() { return this.proc ? this.proc.pid : 0; }

  get url() {
    return `redis://${this.password ? `:${encodeURIComponent(this.password)}@` : ''}${HOST}:${this.port}`;
  }

  get dir() { return path.join(this.root, String(this.port)); }

  log() {
    try { return fs.readFileSync(path.join(this.dir, 'redis.log'), 'utf8'); } catch { return ''; }
  }

  cliArgs(args) {
    const base = ['-h', HOST, '-p', String(this.port)];
    if (this.password) base.push('-a', this.password, '--no-auth-warning');
    return [...base, ...args.map(String)];
  }

  cli(...args) { return run('redis-cli', this.cliArgs(args)); }

  spawnOnce() {
    fs.mkdirSync(this.dir, { recursive: true });
    const argv = ['--port', String(this.port), '--bind', HOST, '--dir', this.dir, '--logfile', 'redis.log',
      '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--enable-debug-command', 'yes'];
    if (this.password) argv.push('--requirepass', this.password);
    if (this.cluster) argv.push('--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '5000');
    argv.push(...this.extra.map(String));
    const proc = spawn('redis-server', argv, { stdio: 'ignore' });
    this.proc = proc;
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => resolve({ code, signal }));
      proc.once('error', (err) => resolve({ code: -1, signal: null, error: err }));
    });
  }

  /** Poll PING until PONG; false when the process exited first (e.g. the port was taken). */
  async waitUp() {
    const deadline = performance.now() + START_MS;
    let gone = false;
    this.exited.then(() => { gone = true; });
    while (performance.now() < deadline && !gone) {
      try {
        if ((await this.cli('PING')) === 'PONG') return true;
      } catch { /* not listening yet */ }
      await sleep(20); // polling interval, not a synchronization
    }
    if (gone) return false;
    throw new Error(`redis-server on port ${this.port} did not answer within ${START_MS} ms\n${this.log()}`);
  }

  async start() {
    for (let tries = 0; tries < 5; tries++) {
      this.port = await freePort(this.cluster);
      this.spawnOnce();
      if (await this.waitUp()) return this;
    }
    throw new Error(`redis-server would not start\n${this.log()}`);
  }

  async stop() {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await this.exited;
  }

  /** Same port, same directory, no data (nothing is persisted). */
  async restart() {
    await this.stop();
    const deadline = performance.now() + START_MS;
    while (performance.now() < deadline) { // the port may linger for a moment
      this.spawnOnce();
      if (await this.waitUp()) return this;
    }
    throw new Error(`redis-server would not restart on port ${this.port}\n${this.log()}`);
  }
}

const tmpRoot = () => fs.mkdtempSync(path.join(os.tmpdir(), 'promptcache-redis-'));

/**
 * A standalone redis-server. opts: password (requirepass), args (extra
 * redis-server arguments, e.g. ['--maxmemory', '64mb']).
 */
export async function startRedis(t, { password = '', args = [] } = {}) {
  const root = tmpRoot();
  const srv = new Server({ password, args, root });
  t.after(async () => {
    await srv.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });
  await srv.start();
  return {
    get port() { return srv.port; },
    get pid() { return srv.pid; },
    get url() { return srv.url; },
    log: () => srv.log(),
    cli: (...args) => srv.cli(...args),
    stop: () => srv.stop(),
    restart: async () => { await srv.restart(); },
  };
}

/** Slot ranges per node id from CLUSTER NODES ("a-b" and "s"; migration markers skipped). */
function parseClusterNodes(text) {
  const owners = new Map();
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 8 || !f[2].includes('master')) continue;
    const ranges = [];
    for (const r of f.slice(8)) {
      if (r.startsWith('[')) continue;
      const [a, b] = r.split('-').map(Number);
      ranges.push([a, b === undefined ? a : b]);
    }
    owners.set(f[0], ranges);
  }
  return owners;
}

/**
 * A Redis Cluster of `masters` masters (no replicas), slots spread evenly by
 * `redis-cli --cluster create`; resolves once every node says cluster_state:ok
 * and knows all the others.
 */
export async function startRedisCluster(t, { masters = 3, args = [] } = {}) {
  if (masters < 3) throw new Error('redis-cli --cluster create needs at least 3 masters');
  const root = tmpRoot();
  const servers = [];
  t.after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    fs.rmSync(root, { recursive: true, force: true });
  });
  for (let i = 0; i < masters; i++) {
    const s = new Server({ args, cluster: true, root });
    servers.push(s);
    await s.start();
  }
  await run('redis-cli', ['--cluster', 'create', ...servers.map((s) => `${HOST}:${s.port}`),
    '--cluster-replicas', '0', '--cluster-yes'], { timeout: 30000 });
  const deadline = performance.now() + 15000;
  for (const s of servers) {
    for (;;) {
      const info = await s.cli('CLUSTER', 'INFO');
      if (info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${masters}`)) break;
      if (performance.now() > deadline) throw new Error(`cluster did not converge on port ${s.port}:\n${info}`);
      await sleep(20); // polling interval
    }
  }
  const nodes = [];
  for (const s of servers) {
    const id = await s.cli('CLUSTER', 'MYID');
    nodes.push({ get port() { return s.port; }, get pid() { return s.pid; }, get url() { return s.url; }, id });
  }
  const cluster = {
    nodes,
    urls: servers.map((s) => s.url),
    cli: (i, ...args) => servers[i].cli(...args),
    /** Index of the node that owns `slot`, as node 0 sees it. */
    async owner(slot) {
      const owners = parseClusterNodes(await servers[0].cli('CLUSTER', 'NODES'));
      for (const [id, ranges] of owners) {
        if (ranges.some(([a, b]) => slot >= a && slot <= b)) return nodes.findIndex((n) => n.id === id);
      }
      return -1;
    },
    /** Move `slot` with its keys to node `to` the way redis-cli --cluster reshard does. */
    async moveSlot(slot, to) {
      const from = await cluster.owner(slot);
      if (from < 0) throw new Error(`slot ${slot} has no owner`);
      if (from === to) return;
      const src = servers[from];
      const dst = servers[to];
      await dst.cli('CLUSTER', 'SETSLOT', slot, 'IMPORTING', nodes[from].id);
      await src.cli('CLUSTER', 'SETSLOT', slot, 'MIGRATING', nodes[to].id);
      for (;;) {
        const out = await src.cli('CLUSTER', 'GETKEYSINSLOT', slot, 100);
        const keys = out ? out.split('\n') : [];
        if (keys.length === 0) break;
        const res = await src.cli('MIGRATE', HOST, dst.port, '', 0, 5000, 'KEYS', ...keys);
        if (res !== 'OK') throw new Error(`MIGRATE: ${res}`);
      }
      // The destination first, then the source, then the others (as redis-cli
      // does): otherwise they would send a client back and forth with MOVED.
      const order = [dst, src, ...servers.filter((s) => s !== src && s !== dst)];
      for (const s of order) {
        const res = await s.cli('CLUSTER', 'SETSLOT', slot, 'NODE', nodes[to].id);
        if (res !== 'OK') throw new Error(`SETSLOT NODE on ${s.port}: ${res}`);
      }
    },
    stop: async () => { await Promise.all(servers.map((s) => s.stop())); },
  };
  return cluster;
}
