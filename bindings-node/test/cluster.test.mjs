// node:cluster: 4 workers, each a plain `http` server with the Express middleware, all on
// one shared-memory table, hold the documented limit for one key under concurrent load.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import cluster from 'node:cluster';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Limiter } from '@aisoule/ratelimit';

const WORKER = new URL('./fixtures/cluster-worker.mjs', import.meta.url).pathname;
const WORKERS = 4;
const REQUESTS = 150;
const LIMIT = 120; // the documented standard policy: 120 per 60 s, rolling window
const WINDOW_NS = 60_000_000_000n;

function once(worker, type) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (m && m.type === type) {
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        resolve(m);
      }
    };
    const onExit = (code) => reject(new Error(`worker ${worker.process.pid} exited (${code}) before "${type}"`));
    worker.on('message', onMessage);
    worker.once('exit', onExit);
  });
}

function get(port, key) {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/v1/status', agent: false, headers: { authorization: `Bearer ${key}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
  });
}

test(`${WORKERS} cluster workers on one shared table: ${REQUESTS} concurrent requests, exactly ${LIMIT} admitted`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'asrl-cluster-'));
  const path = join(dir, 'table');
  cluster.setupPrimary({ exec: WORKER, args: [JSON.stringify({ path })] });
  const workers = Array.from({ length: WORKERS }, () => cluster.fork());
  try {
    const ready = await Promise.all(workers.map((w) => once(w, 'ready')));
    const port = ready[0].port;
    // In a cluster every worker listening on port 0 shares the port the primary chose.
    assert.ok(ready.every((r) => r.port === port));

    // The window is aligned to the monotonic clock's 0 (the one process.hrtime.bigint()
    // reads): a burst straddling a window's end may admit a few more by the contract's
    // estimate. Such a burst (a burst takes about a second, a window 60) is run again with
    // another fresh key, which then lies in one window.
    let key;
    let answers;
    let bursts = 0;
    for (;;) {
      key = `fresh-${randomBytes(8).toString('hex')}`;
      const t0 = process.hrtime.bigint();
      answers = await Promise.all(Array.from({ length: REQUESTS }, () => get(port, key)));
      const t1 = process.hrtime.bigint();
      bursts++;
      if (t0 / WINDOW_NS === t1 / WINDOW_NS) break;
      assert.ok(bursts < 3, 'two bursts in a row straddled a window boundary');
      t.diagnostic('the burst straddled a window boundary: once more with another key');
    }
    const ok = answers.filter((a) => a.status === 200);
    const denied = answers.filter((a) => a.status === 429);
    assert.equal(ok.length, LIMIT);
    assert.equal(denied.length, REQUESTS - LIMIT);
    for (const a of answers) assert.equal(a.headers['x-ratelimit-limit'], String(LIMIT));
    // Each admission saw its own count: remaining LIMIT-1 .. 0, once each, across workers.
    const remaining = ok.map((a) => Number(a.headers['x-ratelimit-remaining'])).sort((x, y) => x - y);
    assert.deepStrictEqual(remaining, Array.from({ length: LIMIT }, (_, i) => i));
    for (const a of denied) {
      assert.equal(a.headers['x-ratelimit-remaining'], '0');
      assert.match(a.headers['retry-after'], /^[1-9][0-9]*$/);
      assert.equal(a.headers['content-type'], 'application/json');
      assert.equal(
        a.body,
        `{"success":false,"error":{"code":"rate_limit_exceeded","message":"Too many requests. Please wait before retrying.","retry_after_seconds":${a.headers['retry-after']}}}`,
      );
    }
    // The load was spread: every worker answered some of it.
    const served = await Promise.all(workers.map((w) => (w.send('count'), once(w, 'served'))));
    t.diagnostic(`requests per worker: ${served.map((s) => s.served).join(', ')}`);
    assert.equal(served.reduce((n, s) => n + s.served, 0), REQUESTS * bursts);
    assert.ok(served.every((s) => s.served > 0), 'a worker answered nothing');
    // The primary maps the same table and sees the key spent.
    assert.equal(Limiter.openShared(path, { capacity: 4096 }).peek(key, '/v1/status').remaining, 0);
  } finally {
    for (const w of workers) w.kill();
    await Promise.all(workers.map((w) => (w.isDead() ? null : new Promise((r) => w.once('exit', r)))));
    rmSync(dir, { recursive: true, force: true });
  }
});
