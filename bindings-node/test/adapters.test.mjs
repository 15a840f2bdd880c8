// The Express middleware and the Fastify plugin through real servers on 127.0.0.1,
// driven by fetch (and node:http to see header case on the wire).
import assert from 'node:assert/strict';
import { test, describe, before, after } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { Limiter, expressRateLimit, fastifyRateLimit } from '@aisoule/ratelimit';
import { rawGet, rawNames, BODY, auth } from './http-helpers.mjs';

const LIMIT_NAMES = ['X-RateLimit-Limit', 'X-RateLimit-Remaining', 'X-RateLimit-Reset'];

// A tiny policy so a test reaches the limit in a few requests; a long window so the test's
// own duration does not matter.
const small = () =>
  new Limiter({
    policies: {
      small: [{ algorithm: 'window', limit: 3, period_ms: 3_600_000 }],
      big: [{ algorithm: 'window', limit: 100, period_ms: 3_600_000 }],
    },
    routes: [{ prefix: '/big', policy: 'big' }],
    defaultPolicy: 'small',
  });

const servers = {
  async express(limiter, options) {
    const app = express();
    app.use(expressRateLimit(limiter, options));
    app.get('/*splat', (req, res) => res.json({ ok: true, remaining: req.rateLimit.remaining }));
    app.post('/*splat', (req, res) => res.json({ ok: true }));
    app.use((err, req, res, next) => {
      res.status(500).json({ error: err.code });
    });
    const server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    return { port: server.address().port, close: () => new Promise((r) => server.close(r)) };
  },
  async fastify(limiter, options) {
    const app = Fastify();
    await app.register(fastifyRateLimit, { limiter, ...options });
    app.get('/*', async (request) => ({ ok: true, remaining: request.rateLimit.remaining }));
    app.post('/*', async () => ({ ok: true }));
    app.setErrorHandler((err, request, reply) => {
      reply.code(500).send({ error: err.code });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { port: app.server.address().port, close: () => app.close() };
  },
};

for (const [name, start] of Object.entries(servers)) {
  describe(`${name} adapter`, () => {
    let srv;
    let url;
    before(async () => {
      srv = await start(small());
      url = (p) => `http://127.0.0.1:${srv.port}${p}`;
    });
    after(() => srv.close());

    test('headers on every response; the exact 429; Retry-After only on the 429', async () => {
      for (let i = 0; i < 3; i++) {
        const r = await fetch(url('/v1/x'), { headers: auth('alice') });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-ratelimit-limit'), '3');
        assert.equal(r.headers.get('x-ratelimit-remaining'), String(2 - i));
        assert.match(r.headers.get('x-ratelimit-reset'), /^\d+$/);
        assert.equal(r.headers.get('retry-after'), null);
        assert.deepStrictEqual(await r.json(), { ok: true, remaining: 2 - i });
      }
      const r = await fetch(url('/v1/x'), { headers: auth('alice') });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.equal(r.headers.get('x-ratelimit-remaining'), '0');
      const retry = r.headers.get('retry-after');
      assert.match(retry, /^[1-9]\d*$/);
      assert.equal(await r.text(), BODY(Number(retry)));
      // Another key is not limited by alice's requests.
      const bob = await fetch(url('/v1/x'), { headers: auth('bob') });
      assert.equal(bob.status, 200);
      assert.equal(bob.headers.get('x-ratelimit-remaining'), '2');
    });

    test('header names keep the contract case on the wire, Retry-After after the three', async () => {
      const ok = await rawGet(srv.port, '/big', auth('case'));
      assert.equal(ok.status, 200);
      const names = rawNames(ok.rawHeaders);
      for (const n of LIMIT_NAMES) assert.ok(names.includes(n), `${n} in ${names}`);
      assert.ok(!names.map((n) => n.toLowerCase()).includes('retry-after'));
      for (let i = 0; i < 3; i++) await rawGet(srv.port, '/x', auth('case'));
      const denied = await rawGet(srv.port, '/x', auth('case'));
      assert.equal(denied.status, 429);
      const dn = rawNames(denied.rawHeaders);
      const at = (n) => dn.indexOf(n);
      for (const n of [...LIMIT_NAMES, 'Retry-After']) assert.ok(at(n) >= 0, `${n} in ${dn}`);
      assert.ok(at('X-RateLimit-Limit') < at('X-RateLimit-Remaining'));
      assert.ok(at('X-RateLimit-Remaining') < at('X-RateLimit-Reset'));
      assert.ok(at('X-RateLimit-Reset') < at('Retry-After'));
    });

    test('routes by path: /big has its own policy and counters', async () => {
      const r = await fetch(url('/big/thing?x=1'), { headers: auth('carol') });
      assert.equal(r.headers.get('x-ratelimit-limit'), '100');
      assert.equal(r.headers.get('x-ratelimit-remaining'), '99');
      const s = await fetch(url('/bigger'), { headers: auth('carol') });
      assert.equal(s.headers.get('x-ratelimit-limit'), '3');
    });

    test('no key: 401 with a JSON error and no rate-limit headers', async () => {
      for (const headers of [{}, { authorization: 'Basic abc' }, { authorization: 'Bearer' }]) {
        const r = await fetch(url('/v1/x'), { headers });
        assert.equal(r.status, 401);
        assert.equal(r.headers.get('content-type'), 'application/json');
        assert.equal(r.headers.get('x-ratelimit-limit'), null);
        const body = await r.json();
        assert.equal(body.success, false);
        assert.equal(body.error.code, 'missing_api_key');
      }
      // The scheme is case-insensitive.
      const r = await fetch(url('/v1/x'), { headers: { authorization: 'bearer dave' } });
      assert.equal(r.status, 200);
    });
  });

  describe(`${name} adapter options`, () => {
    test('a key function, a cost, a policy and a missing-key answer of your own', async () => {
      const limiter = small();
      const srv = await start(limiter, {
        key: (req) => req.headers['x-api-key'],
        cost: (req) => Number(req.headers['x-cost'] ?? 1),
        policy: 'big',
        missingKeyStatus: 403,
        missingKeyBody: '{"error":"forbidden"}',
      });
      try {
        const base = `http://127.0.0.1:${srv.port}`;
        const r = await fetch(`${base}/anything`, { headers: { 'x-api-key': 'k1', 'x-cost': '10' } });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-ratelimit-limit'), '100');
        assert.equal(r.headers.get('x-ratelimit-remaining'), '90');
        assert.equal(limiter.peek('k1', undefined, { policy: 'big' }).remaining, 90);
        const m = await fetch(`${base}/anything`, { headers: auth('ignored') });
        assert.equal(m.status, 403);
        assert.equal(await m.text(), '{"error":"forbidden"}');
        // An invalid cost is the limiter's RangeError, passed to the framework's error handler.
        const bad = await fetch(`${base}/anything`, { headers: { 'x-api-key': 'k1', 'x-cost': '0' } });
        assert.equal(bad.status, 500);
        assert.deepStrictEqual(await bad.json(), { error: 'ERR_RATELIMIT_INVALID_COST' });
        assert.equal(limiter.peek('k1', undefined, { policy: 'big' }).remaining, 90);
      } finally {
        await srv.close();
      }
    });
  });
}

test('the adapters refuse bad options with a code', async () => {
  assert.throws(() => expressRateLimit({}), (e) => e instanceof TypeError && e.code === 'ERR_RATELIMIT_OPTION');
  assert.throws(() => expressRateLimit(small(), { nope: 1 }), (e) => e.code === 'ERR_RATELIMIT_OPTION');
  assert.throws(() => expressRateLimit(small(), { key: 'x' }), (e) => e.code === 'ERR_RATELIMIT_OPTION');
  const app = Fastify();
  await assert.rejects(
    async () => {
      await app.register(fastifyRateLimit, { limiter: null });
      await app.ready();
    },
    (e) => e.code === 'ERR_RATELIMIT_OPTION',
  );
});
