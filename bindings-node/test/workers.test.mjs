// worker_threads share one limiter by name (its table is native memory of the process):
// two workers on one key with a frozen clock admit exactly the capacity.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { Limiter } from '@aisoule/ratelimit';

const WORKER = new URL('./fixtures/shared-worker.mjs', import.meta.url);
const T0 = 1780423178274;

async function race(name, options, route, capacity) {
  const flags = new SharedArrayBuffer(4);
  const data = { name, options, key: 'one-key', route, nowMs: T0, attempts: capacity, flags };
  const workers = [new Worker(WORKER, { workerData: data }), new Worker(WORKER, { workerData: data })];
  const results = workers.map((w) => {
    const msgs = [];
    return new Promise((resolve, reject) => {
      w.on('message', (m) => {
        msgs.push(m);
        if (msgs.length === 2) resolve(msgs);
      });
      w.on('error', reject);
      w.on('exit', (code) => code !== 0 && reject(new Error(`worker exited ${code}`)));
    });
  });
  // Both attached and waiting: start them together.
  await Promise.all(workers.map((w) => once(w, 'message')));
  Atomics.store(new Int32Array(flags), 0, 1);
  Atomics.notify(new Int32Array(flags), 0);
  const [a, b] = (await Promise.all(results)).map((msgs) => msgs[1]);
  await Promise.all(workers.map((w) => (w.threadId >= 0 ? w.terminate() : null)));
  return [a, b];
}

for (const [kind, rule] of [
  ['window', { algorithm: 'window', limit: 4000, period_ms: 3_600_000 }],
  ['gcra', { algorithm: 'gcra', limit: 4000, period_ms: 3_600_000 }],
]) {
  test(`two worker threads on one key (${kind}, frozen clock) admit exactly the capacity`, async () => {
    const name = `workers-${kind}`;
    const options = { policies: { p: [rule] }, routes: [], defaultPolicy: 'p', capacity: 1024 };
    const main = Limiter.shared(name, options); // the main thread attaches too
    try {
      const [a, b] = await race(name, options, '/', rule.limit);
      const admitted = a.remaining.length + b.remaining.length;
      if (process.env.SHOW_SPLIT) console.log(kind, a.remaining.length, b.remaining.length);
      assert.equal(admitted, rule.limit);
      assert.equal(a.denied + b.denied, rule.limit);
      // Every admitted request saw a different remaining: none was lost or counted twice.
      const seen = [...a.remaining, ...b.remaining].sort((x, y) => x - y);
      assert.deepStrictEqual(seen, Array.from({ length: rule.limit }, (_, i) => i));
      // The main thread sees the same table.
      const d = main.peek('one-key', '/', { nowMs: T0 });
      assert.equal(d.allowed, false);
      assert.equal(d.remaining, 0);
      // A private limiter with the same options is another table.
      assert.equal(new Limiter(options).peek('one-key', '/', { nowMs: T0 }).remaining, rule.limit);
    } finally {
      Limiter.unshare(name);
    }
  });
}
