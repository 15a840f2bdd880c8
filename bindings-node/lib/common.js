'use strict';
// What the Express and Fastify adapters share: the key, route and cost of a request.

const { Limiter } = require('./limiter');

/** The JSON error sent when a request has no API key (status 401 by default). */
const MISSING_KEY_BODY = JSON.stringify({
  success: false,
  error: {
    code: 'missing_api_key',
    message: 'An API key is required: send it as "Authorization: Bearer <key>".',
  },
});

/** The API key of `Authorization: Bearer <key>`, or undefined. */
function bearerKey(headers) {
  const auth = headers.authorization;
  if (typeof auth !== 'string') return undefined;
  // The scheme is case-insensitive (RFC 9110 11.1); one or more spaces follow it.
  if (auth.length < 7 || auth.slice(0, 6).toLowerCase() !== 'bearer' || auth[6] !== ' ') return undefined;
  const key = auth.slice(7).trimStart();
  return key.length > 0 ? key : undefined;
}

const ADAPTER_KEYS = new Set(['limiter', 'key', 'route', 'policy', 'cost', 'onMissingKey', 'missingKeyStatus', 'missingKeyBody']);

function optionError(message) {
  const e = new TypeError(message);
  e.code = 'ERR_RATELIMIT_OPTION';
  return e;
}

/** Validates adapter options once, when the middleware or plugin is made. */
function adapterOptions(limiter, options, what) {
  if (!(limiter instanceof Limiter)) {
    throw optionError(`${what}: the limiter must be a Limiter (new Limiter(...) or Limiter.shared(...))`);
  }
  const o = options ?? {};
  if (typeof o !== 'object') throw optionError(`${what}: options must be an object`);
  for (const k of Object.keys(o)) {
    if (!ADAPTER_KEYS.has(k)) throw optionError(`${what}: unknown option "${k}"`);
  }
  for (const k of ['key', 'route', 'onMissingKey']) {
    if (o[k] !== undefined && typeof o[k] !== 'function') throw optionError(`${what}: ${k} must be a function`);
  }
  for (const k of ['policy', 'cost']) {
    const v = o[k];
    if (v !== undefined && typeof v !== 'function' && typeof v !== (k === 'policy' ? 'string' : 'number')) {
      throw optionError(`${what}: ${k} must be a ${k === 'policy' ? 'string' : 'number'} or a function`);
    }
  }
  if (o.missingKeyStatus !== undefined && !(Number.isInteger(o.missingKeyStatus) && o.missingKeyStatus >= 100 && o.missingKeyStatus <= 599)) {
    throw optionError(`${what}: missingKeyStatus must be an HTTP status code`);
  }
  if (o.missingKeyBody !== undefined && typeof o.missingKeyBody !== 'string') {
    throw optionError(`${what}: missingKeyBody must be a string`);
  }
  return {
    key: o.key ?? ((req) => bearerKey(req.headers)),
    route: o.route,
    policy: o.policy,
    cost: o.cost,
    onMissingKey: o.onMissingKey,
    missingKeyStatus: o.missingKeyStatus ?? 401,
    missingKeyBody: o.missingKeyBody ?? MISSING_KEY_BODY,
  };
}

/** The check options of one request: `undefined` when all default. */
function checkOptions(o, req) {
  if (o.policy === undefined && o.cost === undefined) return undefined;
  const policy = typeof o.policy === 'function' ? o.policy(req) : o.policy;
  const cost = typeof o.cost === 'function' ? o.cost(req) : o.cost;
  return { policy: policy ?? undefined, cost: cost ?? undefined };
}

module.exports = { bearerKey, adapterOptions, checkOptions, MISSING_KEY_BODY };
