'use strict';
// Express / Connect middleware (plain `http` too: it only uses Node's request/response).

const { adapterOptions, checkOptions } = require('./common');

/**
 * Middleware that limits each request by its API key: sets the rate-limit headers on every
 * response and answers a denied request itself with the exact 429 (headers, `Retry-After`,
 * `Content-Type: application/json`, body). The decision is left on `req.rateLimit`.
 */
function expressRateLimit(limiter, options) {
  const o = adapterOptions(limiter, options, 'expressRateLimit');
  const contentType = limiter.contentType;
  return function aisouleRateLimit(req, res, next) {
    let decision;
    try {
      const key = o.key(req);
      if (key === undefined || key === null) {
        if (o.onMissingKey) return o.onMissingKey(req, res, next);
        res.statusCode = o.missingKeyStatus;
        res.setHeader('Content-Type', 'application/json');
        res.setHeader('WWW-Authenticate', 'Bearer');
        res.setHeader('Content-Length', Buffer.byteLength(o.missingKeyBody));
        res.end(o.missingKeyBody);
        return undefined;
      }
      const route = o.route ? o.route(req) : (req.originalUrl ?? req.url);
      decision = limiter.check(key, route, checkOptions(o, req));
    } catch (err) {
      return next(err);
    }
    const h = decision.headers;
    for (const name in h) res.setHeader(name, h[name]);
    req.rateLimit = decision;
    if (decision.allowed) return next();
    res.statusCode = 429;
    res.setHeader('Content-Type', contentType);
    res.setHeader('Content-Length', Buffer.byteLength(decision.body));
    res.end(decision.body);
    return undefined;
  };
}

module.exports = { expressRateLimit };
