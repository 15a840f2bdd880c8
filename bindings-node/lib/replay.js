'use strict';
// Replays a conformance trace (conformance/FORMAT.md) through the binding: one answer a
// request, built only from what the decision holds (figures, headers and body from the core).

const { limiterFromConfigJson } = require('./limiter');

const REQUEST_FIELDS = new Set(['t_ms', 'key', 'route', 'cost']);

/** A malformed trace: the 1-based line and what is wrong with it. */
class TraceError extends Error {
  constructor(line, message) {
    super(`line ${line}: ${message}`);
    this.name = 'TraceError';
    this.line = line;
    this.code = 'ERR_RATELIMIT_TRACE';
  }
}

const isWhole = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses a trace's text: the config's JSON text (or null) and the requests. */
function parseTrace(text) {
  let configJson = null;
  let seenRequest = false;
  const requests = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = i + 1;
    const raw = lines[i];
    if (raw.trim() === '') continue;
    let value;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new TraceError(line, `invalid JSON: ${e.message}`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new TraceError(line, 'must be a JSON object');
    }
    if (Object.prototype.hasOwnProperty.call(value, 'config')) {
      if (seenRequest || configJson !== null) throw new TraceError(line, '`config` may only be on the first line');
      if (Object.keys(value).length !== 1) throw new TraceError(line, 'a config line holds only `config`');
      configJson = JSON.stringify(value.config);
      continue;
    }
    seenRequest = true;
    for (const k of Object.keys(value)) {
      if (!REQUEST_FIELDS.has(k)) throw new TraceError(line, `unknown field \`${k}\``);
    }
    const need = (k) => {
      if (!(k in value)) throw new TraceError(line, `missing field \`${k}\``);
      return value[k];
    };
    if (!isWhole(need('t_ms'))) throw new TraceError(line, '`t_ms` must be a whole number of milliseconds');
    if (typeof need('key') !== 'string') throw new TraceError(line, '`key` must be a string');
    if (typeof need('route') !== 'string') throw new TraceError(line, '`route` must be a string');
    if (value.cost !== undefined && !isWhole(value.cost)) throw new TraceError(line, '`cost` must be a whole number');
    requests.push({ line, tMs: value.t_ms, key: value.key, route: value.route, cost: value.cost ?? 1 });
  }
  return { configJson, requests };
}

/** Runs a parsed trace; returns one answer object per request. */
function runTrace(trace) {
  let limiter;
  try {
    limiter = limiterFromConfigJson(trace.configJson ?? '{}');
  } catch (e) {
    if (e.code === 'ERR_RATELIMIT_CONFIG' || e.code === 'ERR_RATELIMIT_CAPACITY') {
      throw new TraceError(1, `config.${e.message.replace(/^invalid config: /, '')}`);
    }
    throw e;
  }
  return trace.requests.map((r) => {
    let d;
    try {
      d = limiter.check(r.key, r.route, { cost: r.cost, nowMs: r.tMs });
    } catch (e) {
      if (e.code === 'ERR_RATELIMIT_INVALID_COST') return { error: 'invalid_cost' };
      if (e.code === 'ERR_RATELIMIT_NOW') throw new TraceError(r.line, '`t_ms` is too large for nanoseconds in 64 bits');
      throw e;
    }
    return { allowed: d.allowed, status: d.status, policy: d.policy, headers: d.headers, body: d.body };
  });
}

/** Parses and runs a trace's text; returns the answer lines as compact JSON. */
function replay(text) {
  return runTrace(parseTrace(text)).map((a) => JSON.stringify(a));
}

module.exports = { replay, parseTrace, runTrace, TraceError };
