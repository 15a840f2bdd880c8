// sharedMemory: processes (cluster workers, pm2 instances) share one table in a segment.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Limiter } from '@aisoule/ratelimit';

const CHILD = new URL('./fixtures/shm-process.mjs', import.meta.url);
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

test('a segment refuses other policies or capacity, and a seed', () => {
  const dir = mkdtempSync(join(tmpdir(), 'asrl-shm-'));
  const path = join(dir, 'table');
  try {
    const first = new Limiter({ ...options, sharedMemory: path });
    assert.equal(first.check('k', '/', { nowMs: T0 }).remaining, 2999);
    assert.throws(
      () => new Limiter({ ...options, capacity: 8192, sharedMemory: path }),
      (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_SHARED_MISMATCH' && /capacity/.test(e.message),
    );
    assert.throws(
      () => new Limiter({ ...options, policies: { p: [{ algorithm: 'window', limit: 5, period_ms: 1000 }] }, sharedMemory: path }),
      (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_SHARED_MISMATCH',
    );
    assert.throws(
      () => new Limiter({ ...options, seed: new Uint8Array(16), sharedMemory: path }),
      (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION',
    );
    assert.throws(
      () => new Limiter({ ...options, sharedMemory: join(dir, 'no', 'such', 'dir') }),
      (e) => e.code === 'ERR_RATELIMIT_SHARED_MEMORY',
    );
    assert.throws(() => new Limiter({ sharedMemory: 42 }), (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION');
    // The segment is untouched by the failed opens.
    assert.equal(new Limiter({ ...options, sharedMemory: path }).check('k', '/', { nowMs: T0 }).remaining, 2998);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
