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

/**
 * What JSON.parse cannot tell about one line (a JSON object, already parsed): the names of
 * its fields whose value is a number not written as a plain whole number (with a sign, a
 * fraction or an exponent: `-0`, `5.0`, `1e3`), and the text of its `config` value. JSON.parse
 * reads `5.0` as 5 and `-0` as 0; the other bindings' parsers (and the core's, for the
 * config) see the text and refuse them, so this looks at the text too.
 */
function scanLine(raw) {
  const notPlain = new Set();
  let config = null;
  let depth = 0;
  let key = null; // the last field name read at depth 1
  let valueStart = -1; // where the current depth-1 value began
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (ch === '"') {
      let j = i + 1;
      while (raw[j] !== '"') j += raw[j] === '\\' ? 2 : 1;
      if (depth === 1 && valueStart < 0) {
        let k = j + 1;
        while (raw[k] === ' ' || raw[k] === '\t' || raw[k] === '\r') k++;
        if (raw[k] === ':') {
          key = JSON.parse(raw.slice(i, j + 1));
          notPlain.delete(key); // a repeated field: the last value counts, as in JSON.parse
          i = k;
          continue;
        }
      }
      if (depth === 1 && valueStart < 0) {
        valueStart = i;
        if (key === 'config') config = raw.slice(i, j + 1);
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      if (depth === 1 && valueStart < 0) valueStart = i;
      depth++;
    } else if (ch === '}' || ch === ']') {
      depth--;
      if (depth === 1 && key === 'config') config = raw.slice(valueStart, i + 1);
    } else if (ch === ',') {
      if (depth === 1) valueStart = -1;
    } else if (ch === '-' || (ch >= '0' && ch <= '9')) {
      let j = i;
      while (j < raw.length && '+-.0123456789eE'.includes(raw[j])) j++;
      if (depth === 1 && valueStart < 0) {
        valueStart = i;
        if (/[-.eE]/.test(raw.slice(i, j))) notPlain.add(key);
        if (key === 'config') config = raw.slice(i, j);
      }
      i = j - 1;
    } else if (depth === 1 && valueStart < 0 && (ch === 't' || ch === 'f' || ch === 'n')) {
      valueStart = i;
      const word = ch === 'f' ? 5 : 4;
      if (key === 'config') config = raw.slice(i, i + word);
      i += word - 1;
    }
  }
  return { notPlain, config };
}

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
      // The config's own text, as the other bindings pass it to the core's parser (which
      // refuses `5.0` where JSON.stringify would have written 5).
      configJson = scanLine(raw).config;
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
    const { notPlain } = scanLine(raw);
    if (!isWhole(need('t_ms')) || notPlain.has('t_ms')) {
      throw new TraceError(line, '`t_ms` must be a whole number of milliseconds');
    }
    if (typeof need('key') !== 'string') throw new TraceError(line, '`key` must be a string');
    if (typeof need('route') !== 'string') throw new TraceError(line, '`route` must be a string');
    if (value.cost !== undefined && (!isWhole(value.cost) || notPlain.has('cost'))) {
      throw new TraceError(line, '`cost` must be a whole number');
    }
    // A string JSON can hold but UTF-8 cannot: a lone surrogate (`"\\ud800"`), which the
    // other bindings' parsers refuse as invalid JSON.
    for (const k of ['key', 'route']) {
      if (!value[k].isWellFormed()) throw new TraceError(line, `invalid JSON: a lone surrogate in \`${k}\``);
    }
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
