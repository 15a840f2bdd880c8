'use strict';
// Fastify plugin: an onRequest hook over the whole instance (not encapsulated).

const { adapterOptions, checkOptions } = require('./common');

/**
 * `fastify.register(fastifyRateLimit, { limiter, ...options })`: limits every request by
 * its API key, sets the rate-limit headers on every response (in the contract's case, on
 * the raw response) and answers a denied request with the exact 429. The decision is left
 * on `request.rateLimit`.
 */
function fastifyRateLimit(fastify, options, done) {
  const { limiter, ...rest } = options ?? {};
  let o;
  try {
    o = adapterOptions(limiter, rest, 'fastifyRateLimit');
  } catch (err) {
    done(err);
    return;
  }
  const contentType = limiter.contentType;
  fastify.decorateRequest('rateLimit', null);
  fastify.addHook('onRequest', function aisouleRateLimit(request, reply, next) {
    let decision;
    try {
      const key = o.key(request);
      if (key === undefined || key === null) {
        if (o.onMissingKey) {
          o.onMissingKey(request, reply, next);
          return;
        }
        reply
          .code(o.missingKeyStatus)
          .header('Content-Type', 'application/json')
          .header('WWW-Authenticate', 'Bearer')
          .send(Buffer.from(o.missingKeyBody));
        return;
      }
      const route = o.route ? o.route(request) : request.url;
      decision = limiter.check(key, route, checkOptions(o, request));
    } catch (err) {
      next(err);
      return;
    }
    const raw = reply.raw;
    const h = decision.headers;
    for (const name in h) raw.setHeader(name, h[name]);
    request.rateLimit = decision;
    if (decision.allowed) {
      next();
      return;
    }
    // A Buffer: Fastify sends it as it is (a string would get `; charset=utf-8` appended).
    reply.code(429).header('Content-Type', contentType).send(Buffer.from(decision.body));
  });
  done();
}

// As fastify-plugin does: register on the parent instance (hooks apply to every route).
fastifyRateLimit[Symbol.for('skip-override')] = true;
fastifyRateLimit[Symbol.for('fastify.display-name')] = '@aisoule/ratelimit';
fastifyRateLimit[Symbol.for('plugin-meta')] = { name: '@aisoule/ratelimit', fastify: '>=4' };

module.exports = { fastifyRateLimit };
