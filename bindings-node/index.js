'use strict';
// @aisoule/ratelimit: API rate limiting from one native Rust core.

const { Limiter, Decision } = require('./lib/limiter');
const { expressRateLimit } = require('./lib/express');
const { fastifyRateLimit } = require('./lib/fastify');
const { bearerKey } = require('./lib/common');

module.exports = { Limiter, Decision, expressRateLimit, fastifyRateLimit, bearerKey };
