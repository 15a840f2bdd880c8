// The Limiter API: defaults, routes and policies, peek, costs, keys, clocks, options and
// bad input (TypeError/RangeError with a code, nothing changed).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRequire } from 'node:module';
import * as esm from '@aisoule/ratelimit';

const require = createRequire(import.meta.url);
const cjs = require('@aisoule/ratelimit');
const { Limiter } = esm;

const T0 = 1780423178274; // ms, both clocks
const BODY = (s) =>
  `{"success":false,"error":{"code":"rate_limit_exceeded","message":"Too many requests. Please wait before retrying.","retry_after_seconds":${s}}}`;

test('the ESM and CommonJS entries give the same objects', () => {
  assert.equal(esm.Limiter, cjs.Limiter);
  assert.equal(esm.expressRateLimit, cjs.expressRateLimit);
  assert.equal(esm.fastifyRateLimit, cjs.fastifyRateLimit);
  assert.equal(esm.default, cjs);
});

test('the documented set is the default', () => {
  const l = new Limiter();
  assert.deepStrictEqual(l.config, {
    policies: ['standard', 'messaging', 'media'],
    routes: [
      { prefix: '/v1/messages', policy: 'messaging' },
      { prefix: '/v1/media', policy: 'media' },
    ],
    defaultPolicy: 'standard',
    capacity: 65536,
    onFull: 'open',
  });
  assert.equal(l.contentType, 'application/json');
  const cases = [
    ['/v1/messages/42', 'messaging', 5],
    ['/v1/messages?x=1', 'messaging', 5],
    ['/v1/messagesX', 'standard', 120],
    ['/v1/media', 'media', 30],
    ['/', 'standard', 120],
  ];
  for (const [route, policy, limit] of cases) {
    const d = l.check(`key ${route}`, route, { nowMs: T0 });
    assert.equal(d.policy, policy, route);
    assert.equal(d.limit, limit, route);
    assert.equal(d.remaining, limit - 1, route);
  }
});

test('a burst of 5 then a 429 with the exact headers and body', () => {
  const l = new Limiter();
  for (let i = 0; i < 5; i++) {
    const d = l.check('k', '/v1/messages', { nowMs: T0 });
    assert.equal(d.allowed, true);
    assert.equal(d.status, 200);
    assert.equal(d.body, null);
    assert.equal(d.retryAfter, 0);
    assert.deepStrictEqual(Object.keys(d.headers), ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset']);
    assert.equal(d.headers['X-RateLimit-Remaining'], String(4 - i));
    assert.equal(d.headers['X-RateLimit-Reset'], String(d.reset));
  }
  const d = l.check('k', '/v1/messages', { nowMs: T0 });
  assert.equal(d.allowed, false);
  assert.equal(d.status, 429);
  assert.equal(d.retryAfter, 1);
  assert.equal(d.tableFull, false);
  assert.deepStrictEqual(Object.keys(d.headers), [
    'X-RateLimit-Limit',
    'X-RateLimit-Remaining',
    'X-RateLimit-Reset',
    'Retry-After',
  ]);
  assert.equal(d.headers['Retry-After'], '1');
  assert.equal(d.headers['X-RateLimit-Remaining'], '0');
  assert.equal(d.body, BODY(1));
  // One GCRA emission interval (200 ms) later, one more is admitted.
  assert.equal(l.check('k', '/v1/messages', { nowMs: T0 + 200 }).allowed, true);
});

test('peek counts nothing; a policy can be named directly', () => {
  const l = new Limiter();
  const before = l.peek('p', undefined, { policy: 'media', nowMs: T0 });
  assert.equal(before.allowed, true);
  assert.equal(before.remaining, 30);
  assert.equal(l.peek('p', undefined, { policy: 'media', nowMs: T0 }).remaining, 30);
  assert.equal(l.check('p', '/ignored', { policy: 'media', nowMs: T0 }).remaining, 29);
  assert.equal(l.check('p', '/v1/media', { nowMs: T0 }).remaining, 28);
  assert.equal(l.peek('p', '/v1/media', { nowMs: T0 }).remaining, 28);
});

test('a string key and its UTF-8 bytes are the same key; the empty key is a key', () => {
  const l = new Limiter();
  assert.equal(l.check('clé', '/', { nowMs: T0 }).remaining, 119);
  assert.equal(l.check(Buffer.from('clé', 'utf8'), '/', { nowMs: T0 }).remaining, 118);
  assert.equal(l.check(new TextEncoder().encode('clé'), '/', { nowMs: T0 }).remaining, 117);
  assert.equal(l.check('', '/', { nowMs: T0 }).remaining, 119);
  assert.equal(l.check(new Uint8Array(0), '/', { nowMs: T0 }).remaining, 118);
  const long = 'x'.repeat(5000);
  assert.equal(l.check(long, '/', { nowMs: T0 }).remaining, 119);
  assert.equal(l.check(long, '/', { nowMs: T0 }).remaining, 118);
  assert.equal(l.check(long.slice(0, 4999), '/', { nowMs: T0 }).remaining, 119);
  // A long route (over the stack buffer) still routes.
  assert.equal(l.check('r', `/v1/media/${'a'.repeat(3000)}`, { nowMs: T0 }).policy, 'media');
});

test('costs: a cost takes that many; an invalid cost is a RangeError and changes nothing', () => {
  const l = new Limiter();
  assert.equal(l.check('c', '/v1/media', { cost: 10, nowMs: T0 }).remaining, 20);
  for (const cost of [0, 31, -1, 1.5, NaN, Infinity]) {
    assert.throws(
      () => l.check('c', '/v1/media', { cost, nowMs: T0 }),
      (e) => e instanceof RangeError && e.code === 'ERR_RATELIMIT_INVALID_COST',
      String(cost),
    );
  }
  assert.throws(() => l.check('c', '/v1/media', { cost: '2' }), (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_COST');
  assert.equal(l.peek('c', '/v1/media', { nowMs: T0 }).remaining, 20);
  const d = l.check('c', '/v1/media', { cost: 21, nowMs: T0 });
  assert.equal(d.allowed, false);
  assert.equal(d.remaining, 20);
  assert.equal(l.check('c', '/v1/media', { cost: 20, nowMs: T0 }).remaining, 0);
});

test('bad arguments throw TypeError/RangeError with a code and change nothing', () => {
  const l = new Limiter();
  l.check('b', '/', { nowMs: T0 });
  const bad = [
    [() => l.check(42, '/'), TypeError, 'ERR_RATELIMIT_KEY'],
    [() => l.check(null, '/'), TypeError, 'ERR_RATELIMIT_KEY'],
    [() => l.check([1, 2], '/'), TypeError, 'ERR_RATELIMIT_KEY'],
    [() => l.check(new Uint16Array(2), '/'), TypeError, 'ERR_RATELIMIT_KEY'],
    // A lone surrogate has no UTF-8 bytes (V8 would write U+FFFD in its place).
    [() => l.check('b\ud800', '/'), TypeError, 'ERR_RATELIMIT_KEY'],
    [() => l.check(`${'b'.repeat(600)}\udc00`, '/'), TypeError, 'ERR_RATELIMIT_KEY'],
    [() => l.check('b', '/v1/\ud800x'), TypeError, 'ERR_RATELIMIT_ROUTE'],
    [() => l.peek('b\udc00b', '/'), TypeError, 'ERR_RATELIMIT_KEY'],
    [() => l.check('b', 7), TypeError, 'ERR_RATELIMIT_ROUTE'],
    [() => l.check('b'), TypeError, 'ERR_RATELIMIT_ROUTE'],
    [() => l.check('b', '/', null), TypeError, 'ERR_RATELIMIT_OPTION'],
    [() => l.check('b', '/', 5), TypeError, 'ERR_RATELIMIT_OPTION'],
    [() => l.check('b', '/', { nowMs: -1 }), RangeError, 'ERR_RATELIMIT_NOW'],
    [() => l.check('b', '/', { nowMs: NaN }), RangeError, 'ERR_RATELIMIT_NOW'],
    [() => l.check('b', '/', { nowMs: 2 ** 60 }), RangeError, 'ERR_RATELIMIT_NOW'],
    [() => l.check('b', '/', { nowMs: 1e15 }), RangeError, 'ERR_RATELIMIT_NOW'], // ns past u64
    [() => l.check('b', '/', { nowMs: '1' }), TypeError, 'ERR_RATELIMIT_NOW'],
    [() => l.check('b', '/', { policy: 'nope' }), RangeError, 'ERR_RATELIMIT_UNKNOWN_POLICY'],
    [() => l.check('b', '/', { policy: 1 }), TypeError, 'ERR_RATELIMIT_POLICY'],
  ];
  for (const [f, type, code] of bad) {
    assert.throws(f, (e) => e instanceof type && e.code === code, f.toString());
  }
  assert.equal(l.peek('b', '/', { nowMs: T0 }).remaining, 119);
  assert.equal(l.check('b', '/', { nowMs: T0 }).remaining, 118);
  // The key with U+FFFD where the lone surrogate was is a key of its own, never counted.
  assert.equal(l.peek('b\ufffd', '/', { nowMs: T0 }).remaining, 120);
  // Well-formed keys outside ASCII, short and long, are keys like any other.
  assert.equal(l.check('b\u{1f600}', '/', { nowMs: T0 }).remaining, 119);
  assert.equal(l.check(`${'b'.repeat(600)}\u{1f600}`, '/', { nowMs: T0 }).remaining, 119);
});

test('bad options throw with a code', () => {
  const bad = [
    [{ policies: { a: [{ algorithm: 'gcra', limit: 0, period_ms: 1000 }] } }, RangeError, /policies\.a\[0\]\.limit/],
    [{ policies: { a: [{ algorithm: 'leaky', limit: 1, period_ms: 1000 }] } }, TypeError, /algorithm/],
    [{ policies: { a: [] } }, RangeError, /policies\.a/],
    [{ routes: [{ prefix: '/x', policy: 'nope' }] }, TypeError, /routes\[0\]/],
    [{ defaultPolicy: 'nope' }, TypeError, /default_policy/],
    [{ capacity: 0 }, RangeError, /capacity/],
    [{ capacity: 1.5 }, TypeError, /capacity/],
    [{ policies: 'x' }, TypeError, /policies/],
    [{ policies: { a: [{ algorithm: 'window', limit: 1, period_ms: 1000, burst: 2 }] } }, TypeError, /burst/],
    [{ policies: { a: [{ algorithm: 'window', limit: 10n, period_ms: 1000 }] } }, TypeError, /JSON/],
  ];
  for (const [opts, type, message] of bad) {
    assert.throws(
      () => new Limiter(opts),
      (e) => e instanceof type && e.code === 'ERR_RATELIMIT_CONFIG' && message.test(e.message),
      JSON.stringify(opts, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)),
    );
  }
  assert.throws(() => new Limiter({ default_policy: 'x' }), (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION');
  assert.throws(() => new Limiter({ onFull: 'maybe' }), (e) => e instanceof RangeError && e.code === 'ERR_RATELIMIT_OPTION');
  assert.throws(() => new Limiter({ seed: 'abc' }), (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION');
  assert.throws(() => new Limiter({ seed: new Uint8Array(15) }), (e) => e instanceof RangeError && e.code === 'ERR_RATELIMIT_OPTION');
  assert.throws(() => new Limiter({ headerStyle: 'x' }), (e) => e instanceof RangeError && e.code === 'ERR_RATELIMIT_OPTION');
  assert.throws(() => new Limiter(null), (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION');
  assert.throws(() => new Limiter({ capacity: 2 ** 40 }), (e) => e instanceof RangeError && e.code === 'ERR_RATELIMIT_CONFIG');
});

test('custom policies, routes and default, as FORMAT.md writes them', () => {
  const l = new Limiter({
    policies: {
      free: [{ algorithm: 'gcra', limit: 2, period_ms: 1000, burst: 3 }],
      paid: [
        { algorithm: 'window', limit: 100, period_ms: 60000 },
        { algorithm: 'gcra', limit: 10, period_ms: 1000 },
      ],
    },
    routes: [{ prefix: '/paid', policy: 'paid' }],
    defaultPolicy: 'free',
    capacity: 1024,
    seed: new Uint8Array(16).fill(7),
  });
  assert.deepStrictEqual(l.config.policies, ['free', 'paid']);
  assert.equal(l.config.capacity, 1024);
  const admitted = [0, 1, 2, 3].map(() => l.check('u', '/x', { nowMs: T0 }).allowed);
  assert.deepStrictEqual(admitted, [true, true, true, false]);
  const p = l.check('u', '/paid/1', { nowMs: T0 });
  assert.equal(p.policy, 'paid');
  assert.equal(p.limit, 10); // the GCRA rule has the fewest remaining
});

test('the same seed gives the same fingerprints: equal answers', () => {
  const seed = Buffer.alloc(16, 3);
  const a = new Limiter({ seed });
  const b = new Limiter({ seed });
  for (let i = 0; i < 8; i++) {
    assert.deepStrictEqual(a.check('s', '/v1/messages', { nowMs: T0 + i }), b.check('s', '/v1/messages', { nowMs: T0 + i }));
  }
});

test('the default clocks: reset is near the wall clock in epoch seconds', () => {
  const l = new Limiter();
  const before = Math.floor(Date.now() / 1000);
  const d = l.check('clock', '/x');
  const after = Math.ceil(Date.now() / 1000) + 61; // a 60 s window resets within 60 s
  assert.ok(d.reset >= before && d.reset <= after, `${d.reset} in [${before}, ${after}]`);
  assert.equal(d.remaining, 119);
  assert.equal(l.check('clock', '/x').remaining, 118);
});

test('headerStyle ietf and both: the core writes RateLimit-Policy and RateLimit', () => {
  const ietf = new Limiter({ headerStyle: 'ietf' }).check('h', '/v1/messages', { nowMs: T0 });
  assert.deepStrictEqual(Object.keys(ietf.headers), ['RateLimit-Policy', 'RateLimit']);
  assert.equal(ietf.headers['RateLimit-Policy'], '"messaging.0";q=300;w=60,"messaging.1";q=5;w=1');
  assert.equal(ietf.headers.RateLimit, '"messaging.1";r=4;t=1');
  const both = new Limiter({ headerStyle: 'both' });
  for (let i = 0; i < 5; i++) both.check('h', '/v1/messages', { nowMs: T0 });
  const d = both.check('h', '/v1/messages', { nowMs: T0 });
  assert.deepStrictEqual(Object.keys(d.headers), [
    'X-RateLimit-Limit',
    'X-RateLimit-Remaining',
    'X-RateLimit-Reset',
    'RateLimit-Policy',
    'RateLimit',
    'Retry-After',
  ]);
});

test('a full table: fail-open admits and flags, fail-closed denies with Retry-After 1; both counted', () => {
  const open = new Limiter({ capacity: 1 });
  const closed = new Limiter({ capacity: 1, onFull: 'closed' });
  let sawOpen = false;
  let sawClosed = false;
  for (let i = 0; i < 64 && !(sawOpen && sawClosed); i++) {
    const a = open.check(`k${i}`, '/', { nowMs: T0 });
    assert.equal(a.allowed, true);
    if (a.tableFull) sawOpen = true;
    const b = closed.check(`k${i}`, '/', { nowMs: T0 });
    if (b.tableFull) {
      sawClosed = true;
      assert.equal(b.allowed, false);
      assert.equal(b.headers['Retry-After'], '1');
      assert.equal(b.body, BODY(1));
    }
  }
  assert.ok(sawOpen && sawClosed);
  assert.ok(open.stats().tableFullOpen >= 1);
  assert.ok(closed.stats().tableFullClosed >= 1);
});

test('shared limiters: one table per name; other options are refused', () => {
  const opts = { policies: { p: [{ algorithm: 'window', limit: 3, period_ms: 60000 }] }, defaultPolicy: 'p', routes: [] };
  const a = Limiter.shared('limiter-test', opts);
  const b = Limiter.shared('limiter-test', { ...opts, headerStyle: 'ietf' });
  assert.equal(a.check('k', '/', { nowMs: T0 }).remaining, 2);
  assert.match(b.check('k', '/', { nowMs: T0 }).headers.RateLimit, /^"p";r=1;t=\d+$/);
  assert.throws(
    () => Limiter.shared('limiter-test', { ...opts, onFull: 'closed' }),
    (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_SHARED_MISMATCH',
  );
  assert.throws(() => Limiter.shared('', opts), (e) => e.code === 'ERR_RATELIMIT_OPTION');
  assert.equal(Limiter.unshare('limiter-test'), true);
  assert.equal(Limiter.unshare('limiter-test'), false);
  assert.equal(a.check('k', '/', { nowMs: T0 }).remaining, 0);
  const c = Limiter.shared('limiter-test', opts);
  assert.equal(c.check('k', '/', { nowMs: T0 }).remaining, 2);
  Limiter.unshare('limiter-test');
});
