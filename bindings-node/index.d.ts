// Types of @aisoule/ratelimit (written by hand; checked by `tsc --noEmit --strict` on
// examples/ in `make test`).

import type { IncomingMessage, ServerResponse } from 'node:http';

/** One rule of a policy, as conformance/FORMAT.md writes it. */
export type Rule =
  | {
      /** Rolling window (sliding window counter). */
      algorithm: 'window';
      /** Requests per window, 1 or more. */
      limit: number;
      /** The window in milliseconds. */
      period_ms: number;
    }
  | {
      /** GCRA: a burst rule. */
      algorithm: 'gcra';
      /** Requests per period. */
      limit: number;
      /** The period in milliseconds. */
      period_ms: number;
      /** Burst capacity (default: `limit`). */
      burst?: number;
    };

/** A route: a path prefix (matched on a `/` or `?` boundary) and its policy. */
export interface Route {
  prefix: string;
  policy: string;
}

/** Options of `new Limiter(...)`; every one may be left out. */
export interface LimiterOptions {
  /** Policy name to its 1 to 4 rules (default: standard, messaging, media). */
  policies?: Record<string, Rule[]>;
  /** Routes tried in order; the first match wins (default: /v1/messages, /v1/media). */
  routes?: Route[];
  /** The policy of paths no route matches (default: `"standard"`). */
  defaultPolicy?: string;
  /** Table cells (16 bytes each, never grown; default 65536). */
  capacity?: number;
  /** When no cell can be had: admit and flag (`"open"`, default) or deny (`"closed"`). */
  onFull?: 'open' | 'closed';
  /** The 16-byte hash key (default: from the OS's random source). */
  seed?: Uint8Array;
  /** Which headers to write (default `"x-ratelimit"`, the documented set). */
  headerStyle?: 'x-ratelimit' | 'ietf' | 'both';
  /**
   * A file path (e.g. `/dev/shm/myapi-ratelimit`): the same as
   * `Limiter.openShared(sharedMemory, options)`. `seed` cannot be given with it.
   */
  sharedMemory?: string;
}

/**
 * Options of `Limiter.openShared(path, options)`: those of `new Limiter` but `seed` (the
 * segment holds it) and `sharedMemory` (the path is the first argument).
 */
export interface OpenSharedOptions {
  /** Policy name to its 1 to 4 rules (default: standard, messaging, media). Must be the segment's. */
  policies?: Record<string, Rule[]>;
  /** Routes tried in order (default: /v1/messages, /v1/media). Must be the segment's. */
  routes?: Route[];
  /** The policy of paths no route matches (default: `"standard"`). */
  defaultPolicy?: string;
  /**
   * Table cells. Left out: an existing segment's capacity, or 65536 for a new one. Given:
   * a new segment gets it, an existing one must have it.
   */
  capacity?: number;
  /** This process's full-table mode (not stored in the segment). */
  onFull?: 'open' | 'closed';
  /** This process's header style (not stored in the segment). */
  headerStyle?: 'x-ratelimit' | 'ietf' | 'both';
}

/**
 * The error `Limiter.openShared` (or `sharedMemory`) throws when a segment cannot be used.
 * Nothing was written to an existing file.
 */
export interface SharedMemoryError extends Error {
  code:
    /** A system call failed: a missing directory, no permission, a read-only file system... (`cause.code`: `ENOENT`, `EACCES`, `EROFS`, ...). */
    | 'ERR_RATELIMIT_SHARED_IO'
    /** The segment was made for other policies or routes. */
    | 'ERR_RATELIMIT_SHARED_CONFIG'
    /** The segment has another capacity than the one asked for. */
    | 'ERR_RATELIMIT_SHARED_CAPACITY'
    /** The file is shorter or longer than its header says. */
    | 'ERR_RATELIMIT_SHARED_TRUNCATED'
    /** The header's check hash does not match its fields. */
    | 'ERR_RATELIMIT_SHARED_CORRUPT'
    /** Another layout version, cell size or alignment (another release made it). */
    | 'ERR_RATELIMIT_SHARED_LAYOUT'
    /** The file does not start with the segment magic. */
    | 'ERR_RATELIMIT_SHARED_NOT_A_SEGMENT';
  /** The segment's path, as given. */
  path: string;
  /** For `ERR_RATELIMIT_SHARED_IO`: what failed (`open`, `create`, `size`, `map`, `publish (link)`, `stat`). */
  syscall?: string;
  /** For `ERR_RATELIMIT_SHARED_IO`: the system's error (`code` such as `ENOENT`, negative `errno`). */
  cause?: Error & { code: string; errno: number; syscall?: string; path: string };
}

/** Per-request options of `check` and `peek`. */
export interface CheckOptions {
  /** Check against this policy instead of routing the path. */
  policy?: string;
  /** The request's cost (default 1). */
  cost?: number;
  /** Unix epoch milliseconds used as both clocks (default: the process's clocks). */
  nowMs?: number;
}

/** What the core answered for one request. */
export declare class Decision {
  private constructor();
  /** Whether the request is admitted. */
  readonly allowed: boolean;
  /** 200 when allowed, 429 when denied. */
  readonly status: 200 | 429;
  /** `X-RateLimit-Limit`: the binding rule's limit. */
  readonly limit: number;
  /** `X-RateLimit-Remaining`. */
  readonly remaining: number;
  /** `X-RateLimit-Reset`: Unix epoch seconds. */
  readonly reset: number;
  /** `Retry-After` in seconds when denied, else 0. */
  readonly retryAfter: number;
  /** The policy that decided. */
  readonly policy: string;
  /** Whether the table was full, so the full-table mode answered. */
  readonly tableFull: boolean;
  /** Header name to value, in the contract's order and case (`Retry-After` last, when denied). */
  readonly headers: Record<string, string>;
  /** The exact 429 body when denied, else null. */
  readonly body: string | null;
}

/** Figures of the full-table modes. */
export interface LimiterStats {
  tableFullOpen: number;
  tableFullClosed: number;
}

/** The config a limiter holds. */
export interface LimiterConfig {
  policies: string[];
  routes: Route[];
  defaultPolicy: string;
  capacity: number;
  onFull: 'open' | 'closed';
}

/**
 * A rate limiter over a fixed table of native memory.
 *
 * Errors: `TypeError` or `RangeError` with a `code` (`ERR_RATELIMIT_CONFIG`,
 * `ERR_RATELIMIT_OPTION`, `ERR_RATELIMIT_KEY`, `ERR_RATELIMIT_ROUTE`, `ERR_RATELIMIT_COST`,
 * `ERR_RATELIMIT_INVALID_COST`, `ERR_RATELIMIT_POLICY`, `ERR_RATELIMIT_UNKNOWN_POLICY`,
 * `ERR_RATELIMIT_NOW`, `ERR_RATELIMIT_CAPACITY`, `ERR_RATELIMIT_SHARED_MISMATCH`); a
 * shared-memory segment that cannot be used, a `SharedMemoryError`. A failed call changes
 * nothing.
 */
export declare class Limiter {
  constructor(options?: LimiterOptions);
  /**
   * The process-wide limiter `name`: made by its first caller in any worker thread and
   * found by every later one, which must pass the same options (`headerStyle` may differ).
   */
  static shared(name: string, options?: LimiterOptions): Limiter;
  /**
   * The limiter over the table in the shared-memory segment at `path` (usually under
   * `/dev/shm`), created (mode 0600) by the first process to open it: every process, of
   * any binding (Node, Python, C), that opens the same path with the same policies and
   * routes counts in one table. The hash seed is the segment's.
   *
   * @throws {SharedMemoryError} a segment that does not fit or cannot be opened.
   */
  static openShared(path: string, options?: OpenSharedOptions): Limiter;
  /** Forgets the shared limiter `name` (objects already attached keep working). */
  static unshare(name: string): boolean;
  /** The config as the core holds it. */
  readonly config: LimiterConfig;
  /** The 429 body's `Content-Type`. */
  readonly contentType: string;
  /** Full-table counts. */
  stats(): LimiterStats;
  /**
   * Decides a request by `key` to `route` and counts it when admitted. A string key is
   * taken as its UTF-8 bytes; one holding a lone surrogate (no UTF-8 bytes) is a
   * `TypeError` (`ERR_RATELIMIT_KEY`), as is such a route (`ERR_RATELIMIT_ROUTE`).
   */
  check(key: string | Uint8Array, route: string, options?: CheckOptions): Decision;
  check(key: string | Uint8Array, route: string | undefined, options: CheckOptions & { policy: string }): Decision;
  /** What `check` would answer, counting nothing. */
  peek(key: string | Uint8Array, route: string, options?: CheckOptions): Decision;
  peek(key: string | Uint8Array, route: string | undefined, options: CheckOptions & { policy: string }): Decision;
}

/** A request as the adapters see it (Express, Connect, plain `http`, Fastify). */
export interface RateLimitedRequest {
  headers: IncomingMessage['headers'];
  url?: string;
  originalUrl?: string;
}

/** Options of the Express middleware and the Fastify plugin. */
export interface AdapterOptions<Req = any> {
  /** The API key of a request (default: `Authorization: Bearer <key>`); null/undefined: missing. */
  key?: (req: Req) => string | Uint8Array | null | undefined;
  /** The path to route (default: Express `req.originalUrl`, Fastify `request.url`). */
  route?: (req: Req) => string;
  /** A policy by name instead of routing. */
  policy?: string | ((req: Req) => string | undefined);
  /** The request's cost (default 1). */
  cost?: number | ((req: Req) => number | undefined);
  /** Status of the answer to a request without a key (default 401). */
  missingKeyStatus?: number;
  /** JSON body of that answer (default `{"success":false,"error":{"code":"missing_api_key",...}}`). */
  missingKeyBody?: string;
  /** Answers a request without a key yourself (replaces the two options above). */
  onMissingKey?: (req: Req, res: any, next: (err?: unknown) => void) => void;
}

/** Express / Connect / `http` middleware: headers on every response, the exact 429. */
export declare function expressRateLimit(
  limiter: Limiter,
  options?: AdapterOptions,
): (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** Options of the Fastify plugin. */
export interface FastifyRateLimitOptions extends AdapterOptions {
  limiter: Limiter;
}

/** Fastify plugin: `app.register(fastifyRateLimit, { limiter })`. */
export declare function fastifyRateLimit(
  instance: any,
  options: FastifyRateLimitOptions,
  done: (err?: Error) => void,
): void;

/** The key of `Authorization: Bearer <key>`, or undefined. */
export declare function bearerKey(headers: IncomingMessage['headers']): string | undefined;

declare global {
  namespace Express {
    interface Request {
      /** The decision of `expressRateLimit` for this request. */
      rateLimit?: Decision;
    }
  }
}
