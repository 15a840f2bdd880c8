// Limiter.openShared / sharedMemory: processes (cluster workers, pm2 instances, other
// languages) share one table in a segment; a segment that does not fit is refused by name.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Limiter } from '@aisoule/ratelimit';

const CHILD = new URL('./fixtures/shm-process.mjs', import.meta.url);
const PKG = new URL('..', import.meta.url).pathname;
const T0 = 1780423178274;
const options = {
  policies: { p: [{ algorithm: 'window', limit: 3000, period_ms: 3_600_000 }] },
  routes: [],
  defaultPolicy: 'p',
  capacity: 4096,
};

function lines(child) {
  const queue = [];
  const waiters = [];
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (c) => {
    buf += c;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (waiters.length) waiters.shift()(line);
      else queue.push(line);
    }
  });
  return () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r)));
}

test('two processes on one shared-memory table admit exactly the limit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'asrl-shm-'));
  const path = join(dir, 'table');
  try {
    const arg = JSON.stringify({ path, options, attempts: 3000, nowMs: T0 });
    const kids = [0, 1].map(() => spawn(process.execPath, [CHILD.pathname, arg], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const next = kids.map(lines);
    for (const n of next) assert.equal(await n(), 'ready');
    for (const k of kids) k.stdin.end('go\n');
    const [a, b] = await Promise.all(next.map(async (n) => JSON.parse(await n())));
    await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r() : k.on('exit', r)))));
    assert.equal(a.length + b.length, 3000);
    assert.deepStrictEqual([...a, ...b].sort((x, y) => x - y), Array.from({ length: 3000 }, (_, i) => i));
    // This process maps the same segment and sees the key spent.
    const here = new Limiter({ ...options, sharedMemory: path });
    assert.equal(here.peek('one-key', '/', { nowMs: T0 }).remaining, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const shared = { policies: options.policies, routes: options.routes, defaultPolicy: options.defaultPolicy };

/** Asserts that `fn` throws an Error (not a TypeError or RangeError) with `code`, naming `path` and matching `re`. */
function refuses(fn, code, path, re) {
  assert.throws(fn, (e) => {
    assert.equal(e.constructor, Error, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.path, path);
    assert.ok(e.message.includes(path), e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('openShared refuses a segment that does not fit, naming the difference, and changes nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asrl-shm-'));
  const path = join(dir, 'table');
  try {
    const first = Limiter.openShared(path, { ...shared, capacity: 4096 });
    assert.equal(first.check('k', '/', { nowMs: T0 }).remaining, 2999);
    const before = readFileSync(path);

    refuses(
      () => Limiter.openShared(path, { ...shared, capacity: 8192 }),
      'ERR_RATELIMIT_SHARED_CAPACITY',
      path,
      /segment has capacity 4096, this process asked for 8192/,
    );
    refuses(
      () => new Limiter({ ...options, capacity: 1024, sharedMemory: path }),
      'ERR_RATELIMIT_SHARED_CAPACITY',
      path,
      /capacity 4096, this process asked for 1024/,
    );
    refuses(
      () => Limiter.openShared(path, { ...shared, policies: { p: [{ algorithm: 'window', limit: 5, period_ms: 1000 }] } }),
      'ERR_RATELIMIT_SHARED_CONFIG',
      path,
      /made for other policies or routes \(config fingerprint [0-9a-f]{16}, this process has [0-9a-f]{16}\)/,
    );
    refuses(
      () => Limiter.openShared(path, { ...shared, routes: [{ prefix: '/x', policy: 'p' }] }),
      'ERR_RATELIMIT_SHARED_CONFIG',
      path,
      /other policies or routes/,
    );

    // Damaged copies: cut short, grown, a header byte changed, another layout version.
    const cut = join(dir, 'cut');
    copyFileSync(path, cut);
    truncateSync(cut, before.length - 16);
    refuses(
      () => Limiter.openShared(cut, shared),
      'ERR_RATELIMIT_SHARED_TRUNCATED',
      cut,
      new RegExp(`segment file is ${before.length - 16} bytes, its header implies ${before.length}`),
    );
    assert.equal(statSync(cut).size, before.length - 16);
    const stub = join(dir, 'stub');
    writeFileSync(stub, 'ASRL');
    refuses(() => Limiter.openShared(stub, shared), 'ERR_RATELIMIT_SHARED_TRUNCATED', stub, /is 4 bytes, its header implies 128/);
    const grown = join(dir, 'grown');
    writeFileSync(grown, Buffer.concat([before, Buffer.alloc(16)]));
    refuses(() => Limiter.openShared(grown, shared), 'ERR_RATELIMIT_SHARED_TRUNCATED', grown, /its header implies/);
    const corrupt = join(dir, 'corrupt');
    const bytes = Buffer.from(before);
    bytes[40] ^= 1; // the seed: the header's hash no longer matches
    writeFileSync(corrupt, bytes);
    refuses(() => Limiter.openShared(corrupt, shared), 'ERR_RATELIMIT_SHARED_CORRUPT', corrupt, /layout hash mismatch/);
    const other = join(dir, 'other-version');
    const v1 = Buffer.from(before);
    v1.writeUInt32LE(1, 8);
    writeFileSync(other, v1);
    refuses(() => Limiter.openShared(other, shared), 'ERR_RATELIMIT_SHARED_LAYOUT', other, /layout version 1, this library reads version 2/);
    const text = join(dir, 'text');
    writeFileSync(text, 'x'.repeat(4096));
    refuses(() => Limiter.openShared(text, shared), 'ERR_RATELIMIT_SHARED_NOT_A_SEGMENT', text, /not a rate-limit table segment/);
    assert.equal(readFileSync(text, 'utf8'), 'x'.repeat(4096));

    // System errors: the system's code as the cause.
    const missing = join(dir, 'no', 'such', 'dir', 'table');
    assert.throws(
      () => Limiter.openShared(missing, shared),
      (e) =>
        e.code === 'ERR_RATELIMIT_SHARED_IO' &&
        e.path === missing &&
        e.syscall === 'open' &&
        e.cause.code === 'ENOENT' &&
        /cannot open: No such file or directory/.test(e.message),
    );
    assert.throws(
      () => Limiter.openShared(dir, shared),
      (e) => e.code === 'ERR_RATELIMIT_SHARED_IO' && e.cause.code === 'EISDIR',
    );

    // Bad arguments.
    for (const bad of ['', 42, undefined, 'a\0b']) {
      assert.throws(() => Limiter.openShared(bad), (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION');
    }
    assert.throws(
      () => Limiter.openShared(path, { ...shared, seed: new Uint8Array(16) }),
      (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION' && /unknown option "seed"/.test(e.message),
    );
    assert.throws(
      () => new Limiter({ ...options, seed: new Uint8Array(16), sharedMemory: path }),
      (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION',
    );
    assert.throws(
      () => Limiter.openShared(path, { ...shared, capacity: 0 }),
      (e) => e instanceof RangeError && e.code === 'ERR_RATELIMIT_CONFIG' && /capacity/.test(e.message),
    );
    assert.throws(() => new Limiter({ sharedMemory: 42 }), (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION');

    // Nothing was written by the refusals; the table counts on.
    assert.ok(readFileSync(path).equals(before));
    assert.equal(first.check('k', '/', { nowMs: T0 }).remaining, 2998);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openShared refuses a segment this process may not write (EACCES)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asrl-shm-'));
  const path = join(dir, 'table');
  try {
    Limiter.openShared(path, shared).check('k', '/', { nowMs: T0 });
    const before = readFileSync(path);
    chmodSync(dir, 0o755);
    chmodSync(path, 0o400);
    // root may write any file: try as nobody then (the segment stays root's, mode 0400).
    const probe = `const { Limiter } = require(${JSON.stringify(PKG)});
      try { Limiter.openShared(${JSON.stringify(path)}); console.log('opened'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, cause: e.cause && e.cause.code, message: e.message })); }`;
    const asRoot = process.getuid && process.getuid() === 0;
    const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', ...(asRoot ? { uid: 65534, gid: 65534 } : {}) });
    assert.equal(r.status, 0, r.stderr);
    const e = JSON.parse(r.stdout);
    assert.equal(e.code, 'ERR_RATELIMIT_SHARED_IO');
    assert.equal(e.cause, 'EACCES');
    assert.match(e.message, /cannot open: Permission denied/);
    assert.ok(readFileSync(path).equals(before));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openShared: capacity from the segment, per-process onFull and headerStyle, one table with sharedMemory', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asrl-shm-'));
  try {
    const made = Limiter.openShared(join(dir, 'default'));
    assert.equal(made.config.capacity, 65536); // created with the default capacity
    assert.equal(Limiter.openShared(join(dir, 'default')).config.capacity, 65536);

    const path = join(dir, 'table');
    const a = Limiter.openShared(path, { ...shared, capacity: 1024 });
    const b = Limiter.openShared(path, { ...shared, onFull: 'closed', headerStyle: 'ietf' });
    const c = new Limiter({ ...options, capacity: undefined, sharedMemory: path });
    assert.equal(b.config.capacity, 1024);
    assert.equal(b.config.onFull, 'closed');
    assert.equal(a.check('k', '/', { nowMs: T0 }).remaining, 2999);
    const d = b.check('k', '/', { nowMs: T0 });
    assert.equal(d.remaining, 2998);
    assert.ok('RateLimit-Policy' in d.headers && !('X-RateLimit-Limit' in d.headers));
    assert.equal(c.check('k', '/', { nowMs: T0 }).remaining, 2997);
    assert.equal(a.peek('k', '/', { nowMs: T0 }).remaining, 2997);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
