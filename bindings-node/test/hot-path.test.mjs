// The hot path's shortcuts give what the plain path gives: header text reused from the
// text cache (colliding slots, denials, a header style that is always formatted), 429
// bodies reused by Retry-After (colliding slots), route strings remembered with their
// policy (more of them than are kept, long ones), the usual call's short path (a string
// key, the last route, no options), and one hot function serving many limiter objects
// (interleaved, collected, replaced).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Limiter } from '@aisoule/ratelimit';

const T0 = 1780423178274; // ms, both clocks
const SEED = new Uint8Array(16).fill(7);

const BODY = (s) =>
  `{"success":false,"error":{"code":"rate_limit_exceeded","message":"Too many requests. Please wait before retrying.","retry_after_seconds":${s}}}`;
const X_NAMES = ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset'];

// The X-RateLimit-* subset of a `both` decision (formatted by the core on every call: its
// style has no plan) in order, with Retry-After when denied.
function xSubset(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('X-RateLimit-') || k === 'Retry-After') out[k] = v;
  return out;
}

test('cached header text equals the text the core formats, across colliding cache slots', () => {
  // Remaining values 4096 apart share a text cache slot (4096 entries): three keys kept
  // 4096 apart make every check replace the slot the previous one used.
  const config = {
    policies: { big: [{ algorithm: 'window', limit: 20_000, period_ms: 60_000 }] },
    routes: [],
    defaultPolicy: 'big',
    seed: SEED,
  };
  const cached = new Limiter(config);
  const formatted = new Limiter({ ...config, headerStyle: 'both' });
  const keys = ['a', 'b', 'c'];
  // b starts 4096 below a, c 8192 below: costs of 4096 and 8192 first.
  for (const [key, cost] of [['b', 4096], ['c', 8192]]) {
    cached.check(key, '/x', { cost, nowMs: T0 });
    formatted.check(key, '/x', { cost, nowMs: T0 });
  }
  const last = {};
  for (let i = 0; i < 300; i++) {
    const key = keys[i % 3];
    const nowMs = T0 + i * 7; // the reset second moves too
    const a = cached.check(key, '/x', { nowMs });
    const b = formatted.check(key, '/x', { nowMs });
    assert.deepStrictEqual(Object.keys(a.headers), X_NAMES);
    assert.deepStrictEqual(a.headers, xSubset(b.headers), `check ${i}`);
    assert.equal(a.headers['X-RateLimit-Remaining'], String(a.remaining));
    assert.equal(a.headers['X-RateLimit-Reset'], String(a.reset));
    assert.equal(a.headers['X-RateLimit-Limit'], String(a.limit));
    last[key] = a.remaining;
    if (key === 'c') {
      // The three remaining values of this round share one slot.
      assert.equal(last.a - last.b, 4096);
      assert.equal(last.b - last.c, 4096);
    }
  }
});

test('denials from the cache: Retry-After last, the same text as formatted, the exact body', () => {
  const config = {
    policies: { tiny: [{ algorithm: 'gcra', limit: 2, period_ms: 10_000, burst: 2 }] },
    routes: [],
    defaultPolicy: 'tiny',
    seed: SEED,
  };
  const cached = new Limiter(config);
  const formatted = new Limiter({ ...config, headerStyle: 'both' });
  let denials = 0;
  for (let i = 0; i < 40; i++) {
    const nowMs = T0 + i * 250;
    const a = cached.check('k', '/', { nowMs });
    const b = formatted.check('k', '/', { nowMs });
    assert.equal(a.allowed, b.allowed);
    assert.deepStrictEqual(a.headers, xSubset(b.headers), `check ${i}`);
    assert.equal(a.body, b.body);
    if (!a.allowed) {
      denials++;
      assert.deepStrictEqual(Object.keys(a.headers), [...X_NAMES, 'Retry-After']);
      assert.equal(a.headers['Retry-After'], String(a.retryAfter));
      assert.ok(a.body.endsWith(`"retry_after_seconds":${a.retryAfter}}}`));
    } else {
      assert.deepStrictEqual(Object.keys(a.headers), X_NAMES);
      assert.equal(a.body, null);
    }
  }
  assert.ok(denials > 10 && denials < 40, `${denials} denials`);
});

test('reused 429 bodies: the body of each denial is its own Retry-After, across colliding slots', () => {
  // Two keys denied 64 s apart (the body cache has 64 slots, by Retry-After): every
  // check of one replaces the slot the other used.
  const l = new Limiter({
    policies: { hour: [{ algorithm: 'gcra', limit: 1, period_ms: 3_600_000, burst: 1 }] },
    routes: [],
    defaultPolicy: 'hour',
  });
  assert.equal(l.check('a', '/', { nowMs: T0 }).allowed, true);
  assert.equal(l.check('b', '/', { nowMs: T0 + 64_000 }).allowed, true);
  let last = 0;
  for (let i = 0; i < 200; i++) {
    const nowMs = T0 + 64_000 + i * 1_500;
    for (const key of ['a', 'b', 'a']) {
      const d = l.check(key, '/', { nowMs });
      assert.equal(d.allowed, false);
      assert.equal(d.body, BODY(d.retryAfter), `${key} at ${i}`);
      assert.equal(d.headers['Retry-After'], String(d.retryAfter));
      if (key === 'b') assert.equal(d.retryAfter - last, 64);
      last = d.retryAfter;
    }
  }
  // An allowed decision after denials has no body.
  const fresh = l.check('c', '/', { nowMs: T0 });
  assert.equal(fresh.allowed, true);
  assert.equal(fresh.body, null);
});

test('remembered routes: the core routes every string, more of them than are kept', () => {
  const l = new Limiter({ seed: SEED }); // the documented routes
  const expect = (path) =>
    /^\/v1\/messages([/?]|$)/.test(path) ? 'messaging' : /^\/v1\/media([/?]|$)/.test(path) ? 'media' : 'standard';
  const paths = [];
  for (let i = 0; i < 1500; i++) {
    paths.push(`/v1/messages/${i}`, `/v1/media?i=${i}`, `/v1/messagesX${i}`, `/v1/status/${i}`);
  }
  paths.push(`/v1/messages/${'x'.repeat(300)}`, `/v1/other/${'y'.repeat(300)}`); // not kept
  for (let round = 0; round < 2; round++) {
    for (const p of paths) {
      const d = l.peek('k', p, { nowMs: T0 });
      assert.equal(d.policy, expect(p), p);
    }
  }
  // A named policy wins over the route, whether or not the route was seen.
  assert.equal(l.peek('k', '/v1/messages/1', { policy: 'media', nowMs: T0 }).policy, 'media');
  assert.equal(l.peek('k', '/never/seen', { policy: 'media', nowMs: T0 }).policy, 'media');
  // A remembered route counts where the core routed it.
  const a = l.check('k', '/v1/messages/7', { nowMs: T0 });
  const b = l.check('k', '/v1/messages/7', { nowMs: T0 });
  assert.equal(a.remaining - 1, b.remaining);
  assert.equal(l.peek('k', '/v1/messages', { nowMs: T0 }).remaining, b.remaining);
});

test('the usual call (string key, the last route, no options) answers as the general path', () => {
  // Two limiters alike: one called without options after its first call of a route (the
  // short path), one always with an empty options object (the general path). The clocks
  // are the process's, so only `reset` may differ, by the second boundary between calls.
  const config = {
    policies: { p: [{ algorithm: 'window', limit: 3, period_ms: 3_600_000 }], q: [{ algorithm: 'gcra', limit: 2, period_ms: 3_600_000 }] },
    routes: [{ prefix: '/q', policy: 'q' }],
    defaultPolicy: 'p',
  };
  const short = new Limiter({ ...config, seed: SEED });
  const general = new Limiter({ ...config, seed: SEED });
  const requests = [
    ['k', '/x'], ['k', '/x'], ['k', '/x'], ['k', '/x'], ['k', '/q'], ['k', '/q'], ['k', '/q'],
    ['k', '/x'], ['\u00e9t\u00e9', '/x'], ['\u00e9t\u00e9', '/x'], ['', '/x'], ['k2', '/q/1'], ['k2', '/q/1'],
  ];
  for (const [i, [key, route]] of requests.entries()) {
    for (const mode of ['peek', 'check']) {
      const a = short[mode](key, route);
      const b = general[mode](key, route, {});
      assert.ok(Math.abs(a.reset - b.reset) <= 1, `request ${i} ${mode}: reset ${a.reset} against ${b.reset}`);
      const same = (d) => ({ ...d, reset: 0, headers: { ...d.headers, 'X-RateLimit-Reset': '' } });
      assert.deepEqual(same(a), same(b), `request ${i} ${mode}`);
      assert.deepEqual(Object.keys(a.headers), Object.keys(b.headers));
    }
  }
  // A fresh limiter has no last route: a missing route is refused as a missing route.
  for (const r of [null, undefined]) {
    assert.throws(() => new Limiter(config).check('k', r), { name: 'TypeError', code: 'ERR_RATELIMIT_ROUTE', message: /route must be a string \(or give options.policy\)/ });
  }
  // Refused on the short path as on the general one: a key without UTF-8 bytes.
  for (const l of [short, general]) {
    assert.throws(() => l.check('a\ud800', '/x'), { name: 'TypeError', code: 'ERR_RATELIMIT_KEY' });
  }
  assert.equal(short.peek('a', '/x').remaining, 3);
});

test('many limiter objects, one hot function: interleaved, each its own table and text', () => {
  const limiters = [];
  for (let n = 1; n <= 5; n++) {
    limiters.push(
      new Limiter({
        policies: { p: [{ algorithm: 'window', limit: n * 10, period_ms: 60_000 }] },
        routes: [],
        defaultPolicy: 'p',
        headerStyle: n === 3 ? 'ietf' : 'x-ratelimit',
      }),
    );
  }
  for (let i = 0; i < 60; i++) {
    for (const [j, l] of limiters.entries()) {
      const limit = (j + 1) * 10;
      const d = l.check('same-key', '/', { nowMs: T0 });
      assert.equal(d.limit, limit);
      assert.equal(d.allowed, i < limit);
      assert.equal(d.remaining, Math.max(limit - i - 1, 0));
      if (j === 2) assert.deepStrictEqual(Object.keys(d.headers), d.allowed ? ['RateLimit-Policy', 'RateLimit'] : ['RateLimit-Policy', 'RateLimit', 'Retry-After']);
      else assert.equal(d.headers['X-RateLimit-Remaining'], String(d.remaining));
    }
  }
});

test('limiter objects collected and replaced: new ones start fresh and work', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const config = {
    policies: { p: [{ algorithm: 'window', limit: 3, period_ms: 60_000 }] },
    routes: [],
    defaultPolicy: 'p',
  };
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 50; i++) {
      const l = new Limiter({ ...config, capacity: 16 });
      for (let c = 0; c < 3; c++) l.check('k', '/', { nowMs: T0 });
      assert.equal(l.check('k', '/', { nowMs: T0 }).allowed, false);
    }
    gc();
    await new Promise((resolve) => setImmediate(resolve)); // finalizers run
    const fresh = new Limiter({ ...config, capacity: 16 });
    const d = fresh.check('k', '/', { nowMs: T0 });
    assert.equal(d.allowed, true);
    assert.equal(d.remaining, 2);
    assert.equal(d.headers['X-RateLimit-Remaining'], '2');
  }
});
