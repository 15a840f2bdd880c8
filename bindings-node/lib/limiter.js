'use strict';
// The Limiter class: a thin wrapper over the native core. It checks argument types,
// passes them to one native call per request, and builds the decision object from what
// the core wrote: every figure and every byte of header and body text comes from the core.

const { getSystemErrorName } = require('node:util');
const native = require('./native');

const L = native.layout();
// The hot function of this thread (one for every limiter object: a call site that always
// calls the same API function stays on V8's fast path) and its scratch, where the inputs
// go in and the figures and header text come out.
const HOT = native.hot();
const F64 = new Float64Array(HOT.scratch, 0, L.bytes / 8);
const U8 = new Uint8Array(HOT.scratch);
// The bound object's index goes in as a u32 (the first four bytes of its slot).
const U32 = new Uint32Array(HOT.scratch);
const SCRATCH_BUFFER = Buffer.from(HOT.scratch); // a view, no copy
// Slots of the scratch, as constants (read once).
const S_MODE = L.mode;
const S_COST = L.cost;
const S_NOW_MS = L.nowMs;
const S_POLICY_IN = L.policyIn;
const S_CODE = L.code;
const CODE_OK = L.codeOk;
const S_ALLOWED = L.allowed;
const S_STATUS = L.status;
const S_LIMIT = L.limit;
const S_REMAINING = L.remaining;
const S_RESET = L.reset;
const S_RETRY_AFTER = L.retryAfter;
const S_POLICY = L.policy;
const S_TABLE_FULL = L.tableFull;
const S_COUNT = L.count;
const S_NAMES = L.names;
const S_SLOTS = L.slots;
const S_LENS = L.lens;
const S_ROUTED = L.routed;
const S_CACHED = L.cached;
const S_BOUND = L.bound;
const S_BODY = L.body;
const BYTES = L.bytes;
const MAX_MS = 9007199254740991; // Number.MAX_SAFE_INTEGER: beyond it ms are not exact
const OPTION_KEYS = new Set([
  'policies',
  'routes',
  'defaultPolicy',
  'capacity',
  'onFull',
  'seed',
  'headerStyle',
  'sharedMemory',
]);
// What `Limiter.openShared(path, options)` takes: the seed is the segment's.
const OPEN_SHARED_KEYS = new Set(['policies', 'routes', 'defaultPolicy', 'capacity', 'onFull', 'headerStyle']);
// Route strings remembered with the policy the core routed them to: at most this many,
// each at most this long (a request path with a unique query string is not worth keeping).
const ROUTE_CACHE = 1024;
const ROUTE_CACHE_LEN = 256;

// Functions that make a plan's headers object from its values, one per list of header names
// (the core's): an object literal is allocated with its final shape in one step, where
// adding the properties one by one takes a shape transition each (with #planHeaders,
// measured 4-8 ns a check less). The functions are shared by every limiter with the same
// names, so the call site in #planHeaders sees one target and V8 inlines it. Null where code
// generation from strings is disallowed (`--disallow-code-generation-from-strings`): the
// generic path then serves.
const MAKERS = new Map();
function headersMaker(names) {
  const id = JSON.stringify(names);
  let maker = MAKERS.get(id);
  if (maker === undefined) {
    const params = names.map((_, i) => `v${i}`);
    // Each name as a JSON string literal: the object's keys are exactly the core's names.
    const literal = names.map((n, i) => `${JSON.stringify(n)}: v${i}`).join(', ');
    try {
      maker = new Function(...params, `return { ${literal} };`);
    } catch {
      maker = null;
    }
    MAKERS.set(id, maker);
  }
  return maker;
}

function typeError(code, message) {
  const e = new TypeError(message);
  e.code = code;
  return e;
}

function rangeError(code, message) {
  const e = new RangeError(message);
  e.code = code;
  return e;
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an instance of ${(v.constructor && v.constructor.name) || 'Object'}`;
  return `${typeof v} (${String(v)})`;
}

// The text of `len` bytes of the scratch from `at`. The core writes ASCII only (digits,
// policy names of printable ASCII, punctuation), so each byte is one character. Numbers
// (up to 10 digits here: epoch seconds) are decoded with one `fromCharCode` call of that
// many arguments, about 5 times faster than `fromCharCode.apply` on a subarray; longer
// text (the IETF headers' structured values) through a Buffer over the scratch.
function decode(at, len) {
  const u = U8;
  switch (len) {
    case 1:
      return String.fromCharCode(u[at]);
    case 2:
      return String.fromCharCode(u[at], u[at + 1]);
    case 3:
      return String.fromCharCode(u[at], u[at + 1], u[at + 2]);
    case 4:
      return String.fromCharCode(u[at], u[at + 1], u[at + 2], u[at + 3]);
    case 5:
      return String.fromCharCode(u[at], u[at + 1], u[at + 2], u[at + 3], u[at + 4]);
    case 6:
      return String.fromCharCode(u[at], u[at + 1], u[at + 2], u[at + 3], u[at + 4], u[at + 5]);
    case 7:
      return String.fromCharCode(u[at], u[at + 1], u[at + 2], u[at + 3], u[at + 4], u[at + 5], u[at + 6]);
    case 8:
      return String.fromCharCode(u[at], u[at + 1], u[at + 2], u[at + 3], u[at + 4], u[at + 5], u[at + 6], u[at + 7]);
    case 9:
      return String.fromCharCode(
        u[at], u[at + 1], u[at + 2], u[at + 3], u[at + 4], u[at + 5], u[at + 6], u[at + 7], u[at + 8],
      );
    case 10:
      return String.fromCharCode(
        u[at], u[at + 1], u[at + 2], u[at + 3], u[at + 4], u[at + 5], u[at + 6], u[at + 7], u[at + 8], u[at + 9],
      );
    default:
      return SCRATCH_BUFFER.toString('latin1', at, at + len);
  }
}

/** One decision: what the core answered for one request. */
class Decision {
  constructor(allowed, status, limit, remaining, reset, retryAfter, policy, tableFull, headers, body) {
    /** Whether the request is admitted. */
    this.allowed = allowed;
    /** 200 when allowed, 429 when denied. */
    this.status = status;
    /** `X-RateLimit-Limit`: the binding rule's limit. */
    this.limit = limit;
    /** `X-RateLimit-Remaining`. */
    this.remaining = remaining;
    /** `X-RateLimit-Reset`: Unix epoch seconds. */
    this.reset = reset;
    /** `Retry-After` seconds when denied, else 0. */
    this.retryAfter = retryAfter;
    /** The name of the policy that decided. */
    this.policy = policy;
    /** Whether the table was full, so the full-table mode answered. */
    this.tableFull = tableFull;
    /** Header names to values, in the contract's order and case. */
    this.headers = headers;
    /** The exact 429 body when denied, else null. */
    this.body = body;
  }
}

// One decision made with non-numbers where the figures go, before any real one, so V8
// keeps those fields as tagged values. Otherwise their first values (doubles read from
// the scratch) make them double fields, and every decision then boxes its five figures
// in five heap numbers: 230 bytes allocated a check instead of 152.
new Decision(false, null, null, null, null, null, null, false, null, null);

function buildConfigJson(options) {
  const config = {};
  if (options.policies !== undefined) config.policies = options.policies;
  if (options.routes !== undefined) config.routes = options.routes;
  if (options.defaultPolicy !== undefined) config.default_policy = options.defaultPolicy;
  if (options.capacity !== undefined) config.capacity = options.capacity;
  try {
    return JSON.stringify(config);
  } catch (e) {
    const err = typeError('ERR_RATELIMIT_CONFIG', `invalid config: not serializable to JSON (${e.message})`);
    err.cause = e;
    throw err;
  }
}

function checkOptions(options, known = OPTION_KEYS) {
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw typeError('ERR_RATELIMIT_OPTION', `options must be an object, got ${describe(options)}`);
  }
  for (const k of Object.keys(options)) {
    if (!known.has(k)) {
      throw typeError(
        'ERR_RATELIMIT_OPTION',
        `unknown option "${k}" (known: ${[...known].join(', ')})`,
      );
    }
  }
  if (options.onFull !== undefined && options.onFull !== 'open' && options.onFull !== 'closed') {
    throw rangeError('ERR_RATELIMIT_OPTION', `onFull must be "open" or "closed", got ${describe(options.onFull)}`);
  }
  if (options.seed !== undefined && !(options.seed instanceof Uint8Array)) {
    throw typeError('ERR_RATELIMIT_OPTION', `seed must be a Uint8Array or Buffer of 16 bytes, got ${describe(options.seed)}`);
  }
  if (
    options.headerStyle !== undefined &&
    options.headerStyle !== 'x-ratelimit' &&
    options.headerStyle !== 'ietf' &&
    options.headerStyle !== 'both'
  ) {
    throw rangeError(
      'ERR_RATELIMIT_OPTION',
      `headerStyle must be "x-ratelimit", "ietf" or "both", got ${describe(options.headerStyle)}`,
    );
  }
  if (
    options.sharedMemory !== undefined &&
    (typeof options.sharedMemory !== 'string' || options.sharedMemory === '' || options.sharedMemory.includes('\0'))
  ) {
    throw typeError('ERR_RATELIMIT_OPTION', `sharedMemory must be a file path, got ${describe(options.sharedMemory)}`);
  }
  return options;
}

/**
 * The error for a shared-memory segment that cannot be used (what the addon reported):
 * an `Error` with `code` and `path`; a system error also has `syscall` and, as `cause`,
 * the system's error (`cause.code` such as `ENOENT`, `EACCES`, `EROFS`).
 */
function sharedError(path, f) {
  const detail = f.message.startsWith(`${path}: `) ? f.message.slice(path.length + 2) : f.message;
  const message = `shared memory segment ${path}: ${detail}`;
  const e = f.code === 'ERR_RATELIMIT_CAPACITY' ? new RangeError(message) : new Error(message);
  e.code = f.code;
  e.path = path;
  if (f.syscall != null) e.syscall = f.syscall;
  if (f.errno != null) {
    let name = 'UNKNOWN';
    try {
      name = getSystemErrorName(-f.errno);
    } catch {
      // an errno Node does not name: keep UNKNOWN
    }
    const cause = new Error(`${name}: ${detail}`);
    cause.code = name;
    cause.errno = -f.errno;
    cause.syscall = f.syscall;
    cause.path = path;
    e.cause = cause;
  }
  return e;
}

/**
 * The native limiter for `opts` (checked options): a private table, the process-wide one
 * named `name`, or (with `opts.sharedMemory`) the table in that shared-memory segment.
 */
function nativeHandle(opts, name) {
  const r = native.create(buildConfigJson(opts), opts.onFull ?? 'open', opts.seed, name, opts.sharedMemory);
  if (typeof r.code === 'string') throw sharedError(opts.sharedMemory, r);
  return r;
}

const INTERNAL = Symbol('aisoule.internal');
// What a limiter's last route is before it has one: equal to no argument.
const NO_ROUTE = Symbol('aisoule.no-route');

/**
 * A rate limiter: policies of rules over a fixed table of native memory.
 *
 * `new Limiter(options)` makes a private limiter; `Limiter.shared(name, options)` gives the
 * process-wide limiter of that name, the same table in every worker thread.
 */
class Limiter {
  #handle;
  // Held, never read: collected with this object, it frees the native binding.
  // eslint-disable-next-line no-unused-private-class-members
  #token;
  #index;
  #names;
  #policies;
  #policyIndex;
  #cacheText;
  #bodies;
  #planAllowed;
  #planDenied;
  #makeAllowed;
  #makeDenied;
  #routes;
  #lastRoute = NO_ROUTE;
  #lastPolicy = -1;
  #info;

  constructor(options, internal) {
    let handle;
    let style;
    if (internal && internal[INTERNAL]) {
      handle = internal.handle;
      style = internal.style;
    } else {
      const opts = checkOptions(options);
      handle = nativeHandle(opts, null);
      style = opts.headerStyle ?? 'x-ratelimit';
    }
    this.#handle = handle;
    const b = native.bind(handle, style);
    this.#token = b.token; // keeps the binding for as long as this object lives
    this.#index = b.index;
    // Header names as the core writes them, interned as property keys once.
    this.#names = b.names.map((n) => Object.keys({ [n]: 0 })[0]);
    // The names of an allowed and of a denied decision's headers, in order, when every
    // value is a figure's number (the addon's plan, learned from the core); else empty.
    this.#planAllowed = (b.planAllowed ?? []).map((i) => this.#names[i]);
    this.#planDenied = (b.planDenied ?? []).map((i) => this.#names[i]);
    // Makers for the usual shapes only (the three headers of an allowed decision, four of a
    // denied one), so #planHeaders need not look at the plan's length on every check.
    this.#makeAllowed = this.#planAllowed.length === 3 ? headersMaker(this.#planAllowed) : null;
    this.#makeDenied = this.#planDenied.length === 4 ? headersMaker(this.#planDenied) : null;
    this.#info = native.info(handle);
    this.#policies = this.#info.policies;
    this.#policyIndex = new Map(this.#policies.map((name, i) => [name, i]));
    // Header value text by cache slot; the addon keeps (in the scratch) which number each
    // slot's text spells, and sends the bytes whenever the slot does not hold it.
    this.#cacheText = new Array(L.cacheSize).fill('');
    // 429 bodies by cache slot (of their Retry-After), as the addon sent them.
    this.#bodies = new Array(L.bodyCache).fill('');
    this.#routes = new Map();
  }

  /**
   * The process-wide limiter named `name`: made with `options` by the first caller in any
   * worker thread, found by every later one (which must pass the same options, else
   * `ERR_RATELIMIT_SHARED_MISMATCH`). `headerStyle` may differ per caller.
   */
  static shared(name, options) {
    if (typeof name !== 'string' || name.length === 0) {
      throw typeError('ERR_RATELIMIT_OPTION', `a shared limiter's name must be a non-empty string, got ${describe(name)}`);
    }
    const opts = checkOptions(options);
    const handle = nativeHandle(opts, name);
    return new Limiter(undefined, { [INTERNAL]: true, handle, style: opts.headerStyle ?? 'x-ratelimit' });
  }

  /**
   * The limiter over the table in the shared-memory segment at `path` (a file, usually
   * under `/dev/shm`), made by the first process to open it: every process (Node, Python
   * or C) that opens the same path with the same policies and routes counts in one table.
   * `capacity` left out takes the segment's (or makes 65,536 cells); the hash seed is the
   * segment's. A segment that does not fit throws an `Error` whose `code` names why
   * (`ERR_RATELIMIT_SHARED_CONFIG`, `..._CAPACITY`, `..._TRUNCATED`, `..._IO`, ...) and
   * changes nothing.
   */
  static openShared(path, options) {
    if (typeof path !== 'string' || path === '' || path.includes('\0')) {
      throw typeError('ERR_RATELIMIT_OPTION', `openShared: path must be a non-empty file path, got ${describe(path)}`);
    }
    const opts = checkOptions(options, OPEN_SHARED_KEYS);
    const handle = nativeHandle({ ...opts, sharedMemory: path }, null);
    return new Limiter(undefined, { [INTERNAL]: true, handle, style: opts.headerStyle ?? 'x-ratelimit' });
  }

  /** Forgets the shared limiter `name` (objects attached to it keep working). */
  static unshare(name) {
    if (typeof name !== 'string') {
      throw typeError('ERR_RATELIMIT_OPTION', `name must be a string, got ${describe(name)}`);
    }
    return native.unshare(name);
  }

  /** Policy names, routes, default policy, capacity and full-table mode. */
  get config() {
    const i = this.#info;
    return {
      policies: [...i.policies],
      routes: i.routes.map((r) => ({ prefix: r.prefix, policy: r.policy })),
      defaultPolicy: i.defaultPolicy,
      capacity: i.capacity,
      onFull: i.onFull,
    };
  }

  /** The `Content-Type` of the 429 body (from the core). */
  get contentType() {
    return this.#info.contentType;
  }

  /** Full-table counts since the limiter was made (all users of a shared one). */
  stats() {
    return native.stats(this.#handle);
  }

  /**
   * Decides a request by `key` (string, as UTF-8, or bytes) to `route` (a request path)
   * and counts it when admitted. `options.policy` names a policy instead of routing;
   * `options.cost` (default 1); `options.nowMs` serves as both clocks.
   */
  check(key, route, options) {
    // The usual request (a string key, the route string of the last request, no
    // options) takes #fast, small enough for V8 to inline into the caller with the
    // decision's construction; #run is not (2.5-4 ns a check, measured).
    if (options === undefined && route === this.#lastRoute && typeof key === 'string') return this.#fast(0, key);
    return this.#run(0, key, route, options);
  }

  /** What `check` would answer, counting nothing. */
  peek(key, route, options) {
    if (options === undefined && route === this.#lastRoute && typeof key === 'string') return this.#fast(1, key);
    return this.#run(1, key, route, options);
  }

  // #run for a string key, the route string whose policy was remembered last (#lastRoute
  // is a string, or NO_ROUTE, which no argument equals), no options. It repeats #run's
  // scratch writes and call rather than sharing a helper with it: with the helper (inlined
  // all the same), a check took 3 ns more (interleaved loops, 78.2 against 81.9 ns).
  #fast(mode, key) {
    const f = F64;
    f[S_MODE] = mode;
    f[S_COST] = 1;
    f[S_NOW_MS] = NaN;
    f[S_POLICY_IN] = this.#lastPolicy;
    U32[S_BOUND * 2] = this.#index;
    const body = HOT(key, undefined);
    const code = f[S_CODE];
    if (code !== CODE_OK) this.#fail(code);
    return this.#decision(f, body);
  }

  #run(mode, key, route, options) {
    const f = F64;
    let cost = 1;
    let nowMs = NaN;
    let policy = -1;
    if (options !== undefined) {
      if (options === null || typeof options !== 'object') {
        throw typeError('ERR_RATELIMIT_OPTION', `options must be an object, got ${describe(options)}`);
      }
      const c = options.cost;
      if (c !== undefined) {
        if (typeof c !== 'number') {
          throw typeError('ERR_RATELIMIT_COST', `cost must be a number, got ${describe(c)}`);
        }
        if (!Number.isSafeInteger(c) || c < 1) {
          throw rangeError('ERR_RATELIMIT_INVALID_COST', `cost must be a whole number from 1, got ${c}`);
        }
        cost = c;
      }
      const t = options.nowMs;
      if (t !== undefined) {
        if (typeof t !== 'number') {
          throw typeError('ERR_RATELIMIT_NOW', `nowMs must be a number, got ${describe(t)}`);
        }
        if (!(t >= 0 && t <= MAX_MS)) {
          throw rangeError('ERR_RATELIMIT_NOW', `nowMs must be from 0 to ${MAX_MS}, got ${t}`);
        }
        nowMs = t;
      }
      const p = options.policy;
      if (p !== undefined) {
        if (typeof p !== 'string') {
          throw typeError('ERR_RATELIMIT_POLICY', `policy must be a string, got ${describe(p)}`);
        }
        const i = this.#policyIndex.get(p);
        if (i === undefined) {
          throw rangeError(
            'ERR_RATELIMIT_UNKNOWN_POLICY',
            `no policy "${p}" (known: ${this.#policies.join(', ')})`,
          );
        }
        policy = i;
      }
    }
    if (typeof key !== 'string' && !(key instanceof Uint8Array)) {
      throw typeError('ERR_RATELIMIT_KEY', `key must be a string or a Uint8Array, got ${describe(key)}`);
    }
    let routed = true;
    if (policy < 0) {
      if (typeof route !== 'string') {
        throw typeError('ERR_RATELIMIT_ROUTE', `route must be a string (or give options.policy), got ${describe(route)}`);
      }
      // A route string seen before: the policy the core routed it to (the core's routing
      // of a string never changes), so the addon need not copy and match the path again.
      // The last route string first: a service checks the same few routes over and
      // over, and comparing strings is cheaper than hashing one for the map.
      if (route === this.#lastRoute) policy = this.#lastPolicy;
      else {
        const p = this.#routes.get(route);
        if (p === undefined) routed = false;
        else {
          policy = p;
          this.#lastRoute = route;
          this.#lastPolicy = p;
        }
      }
    }
    f[S_MODE] = mode;
    f[S_COST] = cost;
    f[S_NOW_MS] = nowMs;
    f[S_POLICY_IN] = policy;
    U32[S_BOUND * 2] = this.#index;
    const body = HOT(key, route);
    const code = f[S_CODE];
    if (code !== CODE_OK) this.#fail(code);
    if (!routed) this.#remember(route, f[S_ROUTED]);
    return this.#decision(f, body);
  }

  // The decision the core wrote into the scratch (`body`: what the hot call returned).
  #decision(f, body) {
    return new Decision(
      f[S_ALLOWED] === 1,
      f[S_STATUS],
      f[S_LIMIT],
      f[S_REMAINING],
      f[S_RESET],
      f[S_RETRY_AFTER],
      this.#policies[f[S_POLICY]],
      f[S_TABLE_FULL] === 1,
      f[S_CACHED] === 1 ? this.#planHeaders(f) : this.#headers(f),
      body === undefined ? this.#cachedBody(f) : (this.#bodies[f[S_BODY]] = body),
    );
  }

  // The headers of a decision the plan covers (the core wrote only the text cache's slots)
  // through the plan's object-literal maker, in the usual shapes (the three headers of an
  // allowed decision, four of a denied one); else #headers. Small, so V8 inlines it.
  #planHeaders(f) {
    const t = this.#cacheText;
    const s = S_SLOTS;
    if (f[S_ALLOWED] === 1) {
      const make = this.#makeAllowed;
      if (make !== null) return make(t[f[s]], t[f[s + 1]], t[f[s + 2]]);
    } else {
      const make = this.#makeDenied;
      if (make !== null) return make(t[f[s]], t[f[s + 1]], t[f[s + 2]], t[f[s + 3]]);
    }
    return this.#headers(f);
  }

  // The headers object, its values the core's text (see #text). One store site per
  // position, so each sees one name and stays monomorphic.
  #headers(f) {
    if (f[S_CACHED] === 1) {
      // The plan's headers, every value's text in the cache: names and slots only.
      const t = this.#cacheText;
      const p = f[S_ALLOWED] === 1 ? this.#planAllowed : this.#planDenied;
      const n = p.length;
      const h = {};
      if (n > 0) h[p[0]] = t[f[S_SLOTS]];
      if (n > 1) h[p[1]] = t[f[S_SLOTS + 1]];
      if (n > 2) h[p[2]] = t[f[S_SLOTS + 2]];
      if (n > 3) h[p[3]] = t[f[S_SLOTS + 3]];
      if (n > 4) h[p[4]] = t[f[S_SLOTS + 4]];
      if (n > 5) h[p[5]] = t[f[S_SLOTS + 5]];
      return h;
    }
    const n = f[S_COUNT];
    const nm = this.#names;
    const h = {};
    let at = BYTES;
    if (n > 0) {
      h[nm[f[S_NAMES]]] = this.#text(f, 0, at);
      if (f[S_LENS] > 0) at += f[S_LENS];
    }
    if (n > 1) {
      h[nm[f[S_NAMES + 1]]] = this.#text(f, 1, at);
      if (f[S_LENS + 1] > 0) at += f[S_LENS + 1];
    }
    if (n > 2) {
      h[nm[f[S_NAMES + 2]]] = this.#text(f, 2, at);
      if (f[S_LENS + 2] > 0) at += f[S_LENS + 2];
    }
    if (n > 3) {
      h[nm[f[S_NAMES + 3]]] = this.#text(f, 3, at);
      if (f[S_LENS + 3] > 0) at += f[S_LENS + 3];
    }
    if (n > 4) {
      h[nm[f[S_NAMES + 4]]] = this.#text(f, 4, at);
      if (f[S_LENS + 4] > 0) at += f[S_LENS + 4];
    }
    if (n > 5) h[nm[f[S_NAMES + 5]]] = this.#text(f, 5, at);
    return h;
  }

  // Header `i`'s value: from the text cache when the addon sent no bytes (length -1), else
  // decoded from the bytes and, when it spells a number, kept at that number's cache slot
  // (the addon has marked the slot as holding it).
  #text(f, i, at) {
    const len = f[S_LENS + i];
    const slot = f[S_SLOTS + i];
    if (len < 0) return this.#cacheText[slot];
    const s = this.#decode(at, len);
    if (slot >= 0) this.#cacheText[slot] = s;
    return s;
  }

  // No body string came back: none (allowed), or the one the cache holds at the slot.
  #cachedBody(f) {
    const slot = f[S_BODY];
    return slot < 0 ? null : this.#bodies[slot];
  }

  #remember(route, policy) {
    if (route.length > ROUTE_CACHE_LEN) return;
    if (this.#routes.size >= ROUTE_CACHE) this.#routes.clear();
    this.#routes.set(route, policy);
  }

  #decode(at, len) {
    return decode(at, len);
  }

  #fail(code) {
    switch (code) {
      case L.codeInvalidCost:
        throw rangeError(
          'ERR_RATELIMIT_INVALID_COST',
          'invalid_cost: the cost must be from 1 to the capacity of every rule of the policy',
        );
      case L.codeUnknownPolicy:
        throw rangeError('ERR_RATELIMIT_UNKNOWN_POLICY', 'unknown_policy: no such policy in this limiter');
      case L.codeBadKey:
        throw typeError(
          'ERR_RATELIMIT_KEY',
          'key must be a string or a Uint8Array (a string without lone surrogates: those have no UTF-8 bytes)',
        );
      case L.codeBadRoute:
        throw typeError('ERR_RATELIMIT_ROUTE', 'route must be a string without lone surrogates (those have no UTF-8 bytes)');
      case L.codeBadNow:
        throw rangeError('ERR_RATELIMIT_NOW', 'nowMs is out of range');
      default: {
        const e = new Error('@aisoule/ratelimit: internal error in the native addon (please report)');
        e.code = 'ERR_RATELIMIT_INTERNAL';
        throw e;
      }
    }
  }
}

/** A limiter made from the text of FORMAT.md's config object (the replay's way in). */
function limiterFromConfigJson(configJson) {
  const handle = native.create(configJson, 'open', undefined, null, undefined);
  return new Limiter(undefined, { [INTERNAL]: true, handle, style: 'x-ratelimit' });
}

module.exports = { Limiter, Decision, limiterFromConfigJson };
