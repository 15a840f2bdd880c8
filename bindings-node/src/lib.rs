//! The Node-API addon behind `@aisoule/ratelimit`: converts types, supplies clocks and
//! maps errors. Every figure and every byte of header and body text comes from the core.
//!
//! Two kinds of entry points:
//! - cold calls through napi-rs (`create`, `bind`, `info`, `stats`, `unshare`, `layout`):
//!   configuration (through the core's one JSON parser), the shared-limiter registry;
//! - the hot call, a hand-written Node-API callback made by `bind`: `fn(key, route)`. Its
//!   other inputs (mode, cost, clock, policy) and all its outputs (figures, header text) go
//!   through a per-binding scratch `ArrayBuffer` that the JS wrapper reads; it returns the
//!   429 body as a string when denied. One native call per request, no allocation (for
//!   keys and paths under 512 bytes), no napi-rs borrow scope on the way.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void};
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use aisoule_ratelimit::json::{parse_config, JsonError, JsonErrorKind};
use aisoule_ratelimit::{
    CheckError, ConfigError, Decision, FullTableMode, HeaderStyle, Limiter, Now, PolicyId, Seed, Target,
    BODY_CONTENT_TYPE,
};
use aisoule_ratelimit_host::{os_seed, request_now, SharedError, SharedTable, Table};
use napi::bindgen_prelude::{Either, External, ToNapiValue, TypeName, Uint8Array};
use napi::{sys, Env, Error, Result, Status, ValueType};
use napi_derive::napi;

/// The table size when the config names none (as the conformance traces).
const DEFAULT_CAPACITY: u64 = 65_536;

/// One limiter: the core over a table of native memory. Shared by reference count between
/// every JS object (in any worker thread) that uses it.
pub struct Inner {
    limiter: Limiter<Table>,
    /// Policy ids by index (the order of `config().policies()`).
    ids: Vec<PolicyId>,
    capacity: u64,
    seed: Seed,
    /// The canonical JSON the limiter was made from (for matching shared limiters).
    config_json: String,
    /// The shared-memory segment's path, if the table is one.
    segment: Option<String>,
}

/// Named limiters shared by all worker threads of the process (a `static` of the addon is
/// one per process, whatever the number of Node environments).
static REGISTRY: Mutex<Vec<(String, Arc<Inner>)>> = Mutex::new(Vec::new());

/// Throws `TypeError` or `RangeError` with a `code` property and returns the error that
/// tells napi-rs an exception is pending.
fn throw(env: &Env, range: bool, code: &str, msg: &str) -> Error {
    let thrown = if range {
        env.throw_range_error(msg, Some(code))
    } else {
        env.throw_type_error(msg, Some(code))
    };
    match thrown {
        Ok(()) => Error::from_status(Status::PendingException),
        Err(e) => e,
    }
}

fn config_error(env: &Env, e: &JsonError) -> Error {
    let range = matches!(
        e.kind,
        JsonErrorKind::TooLong
            | JsonErrorKind::Capacity
            | JsonErrorKind::Config(
                ConfigError::Rule(_)
                    | ConfigError::RuleCount
                    | ConfigError::PolicyCount
                    | ConfigError::RouteCount
                    | ConfigError::Prefix
            )
    );
    throw(
        env,
        range,
        "ERR_RATELIMIT_CONFIG",
        &format!("invalid config: {e}"),
    )
}

/// Why a shared-memory segment could not be used, for the JS wrapper to throw as an
/// `Error` with a `code` (and, for a system error, the errno and the operation).
#[napi(object)]
pub struct SharedFailure {
    /// The error code (`ERR_RATELIMIT_SHARED_*`, or `ERR_RATELIMIT_CAPACITY`).
    pub code: String,
    /// What differs or what failed (the host crate's words).
    pub message: String,
    /// The operating system's error number, for a system error.
    pub errno: Option<i32>,
    /// What was being done (`open`, `create`, `map`, ...), for a system error.
    pub syscall: Option<String>,
}

fn segment_failure(e: &SharedError) -> SharedFailure {
    let code = match e {
        SharedError::Io { .. } => "ERR_RATELIMIT_SHARED_IO",
        SharedError::NotASegment(_) => "ERR_RATELIMIT_SHARED_NOT_A_SEGMENT",
        SharedError::LayoutVersion { .. } | SharedError::CellLayout { .. } => "ERR_RATELIMIT_SHARED_LAYOUT",
        SharedError::Capacity { .. } => "ERR_RATELIMIT_SHARED_CAPACITY",
        SharedError::Policies { .. } => "ERR_RATELIMIT_SHARED_CONFIG",
        SharedError::Truncated { .. } => "ERR_RATELIMIT_SHARED_TRUNCATED",
        SharedError::InvalidCapacity(_) => "ERR_RATELIMIT_CAPACITY",
        _ => "ERR_RATELIMIT_SHARED_CORRUPT",
    };
    let (errno, syscall) = match e {
        SharedError::Io { op, source, .. } => (source.raw_os_error(), Some((*op).to_owned())),
        _ => (None, None),
    };
    SharedFailure {
        code: code.to_owned(),
        message: e.to_string(),
        errno,
        syscall,
    }
}

/// Opens (or creates) the segment at `path`. `capacity: None` takes an existing segment's
/// capacity, or makes one of `DEFAULT_CAPACITY` cells when there is none (as the C and
/// Python bindings do). A path whose directory is missing fails on opening the path itself
/// (not on the temporary name a new segment is built under), so the error names the path.
fn open_segment(
    path: &str,
    capacity: Option<u64>,
    config: &aisoule_ratelimit::Config,
) -> std::result::Result<SharedTable, SharedError> {
    let dir_missing = std::path::Path::new(path)
        .parent()
        .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir());
    if dir_missing {
        if let Err(source) = std::fs::OpenOptions::new().read(true).write(true).open(path) {
            return Err(SharedError::Io {
                op: "open",
                path: path.into(),
                source,
            });
        }
    }
    match capacity {
        Some(c) => SharedTable::open(path, Some(c), config),
        None => match SharedTable::open(path, None, config) {
            Err(SharedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                SharedTable::open(path, Some(DEFAULT_CAPACITY), config)
            }
            other => other,
        },
    }
}

fn seed_from_bytes(b: &[u8; 16]) -> Seed {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&b[..8]);
    hi.copy_from_slice(&b[8..]);
    Seed([u64::from_le_bytes(lo), u64::from_le_bytes(hi)])
}

/// Makes a limiter (or, with `shared_name`, finds the process-wide one of that name or
/// makes it). `config_json` is FORMAT.md's config object; `on_full` is `"open"` or
/// `"closed"`; `seed` is 16 bytes or absent (then the OS's random source); `segment` is the
/// path of a shared-memory table (opened or created), shared with other processes: a
/// segment that cannot be used gives a `SharedFailure` (the wrapper throws it).
#[napi(catch_unwind)]
pub fn create(
    env: Env,
    config_json: String,
    on_full: String,
    seed: Option<Uint8Array>,
    shared_name: Option<String>,
    segment: Option<String>,
) -> Result<Either<External<Arc<Inner>>, SharedFailure>> {
    let mode = match on_full.as_str() {
        "open" => FullTableMode::Open,
        "closed" => FullTableMode::Closed,
        _ => {
            return Err(throw(
                &env,
                true,
                "ERR_RATELIMIT_OPTION",
                "onFull must be \"open\" or \"closed\"",
            ))
        }
    };
    let given_seed = match &seed {
        None => None,
        Some(s) => match <&[u8; 16]>::try_from(&s[..]) {
            Ok(b) => Some(seed_from_bytes(b)),
            Err(_) => {
                return Err(throw(
                    &env,
                    true,
                    "ERR_RATELIMIT_OPTION",
                    "seed must be exactly 16 bytes",
                ));
            }
        },
    };
    let parsed = parse_config(&config_json).map_err(|e| config_error(&env, &e))?;

    let mut registry = shared_name
        .as_ref()
        .map(|_| REGISTRY.lock().unwrap_or_else(|p| p.into_inner()));
    if let (Some(name), Some(reg)) = (&shared_name, &registry) {
        if let Some((_, inner)) = reg.iter().find(|(n, _)| n == name) {
            let same = inner.config_json == config_json
                && inner.limiter.full_table_mode() == mode
                && inner.segment == segment
                && given_seed.is_none_or(|s| s == inner.seed);
            if !same {
                return Err(throw(
                    &env,
                    false,
                    "ERR_RATELIMIT_SHARED_MISMATCH",
                    &format!(
                        "shared limiter \"{name}\" exists with other options (config, capacity, onFull, seed or sharedMemory)"
                    ),
                ));
            }
            return Ok(Either::A(External::new(Arc::clone(inner))));
        }
    }

    let config = parsed.config;
    let (table, seed) = match &segment {
        Some(path) => {
            if given_seed.is_some() {
                return Err(throw(
                    &env,
                    false,
                    "ERR_RATELIMIT_OPTION",
                    "seed cannot be given with sharedMemory: the segment holds its seed",
                ));
            }
            let shared = match open_segment(path, parsed.capacity, &config) {
                Ok(s) => s,
                Err(e) => return Ok(Either::B(segment_failure(&e))),
            };
            let seed = shared.seed();
            (Table::Shared(shared), seed)
        }
        None => {
            let capacity = parsed.capacity.unwrap_or(DEFAULT_CAPACITY);
            let table = usize::try_from(capacity)
                .ok()
                .and_then(Table::try_owned)
                .ok_or_else(|| {
                    throw(
                        &env,
                        true,
                        "ERR_RATELIMIT_CAPACITY",
                        &format!("cannot allocate a table of {capacity} cells"),
                    )
                })?;
            (table, given_seed.unwrap_or_else(os_seed))
        }
    };
    let capacity = table.as_ref().len() as u64;
    let ids = config
        .policies()
        .iter()
        .filter_map(|p| config.policy_id(p.name()))
        .collect();
    let inner = Arc::new(Inner {
        limiter: Limiter::with_full_table_mode(config, table, seed, mode),
        ids,
        capacity,
        seed,
        config_json,
        segment,
    });
    if let (Some(name), Some(reg)) = (shared_name, registry.as_mut()) {
        reg.push((name, Arc::clone(&inner)));
    }
    Ok(Either::A(External::new(inner)))
}

/// Forgets the shared limiter of this name (limiters already attached keep working).
/// Returns whether there was one.
#[napi(catch_unwind)]
pub fn unshare(name: String) -> bool {
    let mut reg = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let before = reg.len();
    reg.retain(|(n, _)| *n != name);
    reg.len() != before
}

/// A route of the config.
#[napi(object)]
pub struct RouteInfo {
    /// The path prefix.
    pub prefix: String,
    /// The policy's name.
    pub policy: String,
}

/// What a limiter was made with, as the core holds it.
#[napi(object)]
pub struct Info {
    /// Policy names, by index.
    pub policies: Vec<String>,
    /// Routes in order.
    pub routes: Vec<RouteInfo>,
    /// The default policy's name.
    pub default_policy: String,
    /// Table cells.
    pub capacity: f64,
    /// `"open"` or `"closed"`.
    pub on_full: String,
    /// The 429 body's `Content-Type`.
    pub content_type: String,
}

/// The config, capacity and mode of a limiter.
#[napi(catch_unwind)]
pub fn info(handle: &External<Arc<Inner>>) -> Info {
    let inner: &Inner = handle;
    let config = inner.limiter.config();
    Info {
        policies: config.policies().iter().map(|p| p.name().to_owned()).collect(),
        routes: config
            .routes()
            .iter()
            .map(|r| RouteInfo {
                prefix: r.prefix().to_owned(),
                policy: config.policy(r.policy()).name().to_owned(),
            })
            .collect(),
        default_policy: config.policy(config.default_policy()).name().to_owned(),
        capacity: inner.capacity as f64,
        on_full: match inner.limiter.full_table_mode() {
            FullTableMode::Closed => "closed",
            _ => "open",
        }
        .to_owned(),
        content_type: BODY_CONTENT_TYPE.to_owned(),
    }
}

/// Full-table counts.
#[napi(object)]
pub struct StatsInfo {
    /// Requests admitted because the table was full (fail-open).
    pub table_full_open: f64,
    /// Requests denied because the table was full (fail-closed).
    pub table_full_closed: f64,
}

/// The limiter's full-table counts (all users of a shared limiter together).
#[napi(catch_unwind)]
pub fn stats(handle: &External<Arc<Inner>>) -> StatsInfo {
    let s = handle.limiter.stats();
    StatsInfo {
        table_full_open: s.table_full_open as f64,
        table_full_closed: s.table_full_closed as f64,
    }
}

// ---- the scratch layout shared with index.js ----

/// f64 slots of the scratch (inputs first, then outputs).
const S_MODE: usize = 0;
const S_COST: usize = 1;
const S_NOW_MS: usize = 2;
const S_POLICY_IN: usize = 3;
const S_CODE: usize = 4;
const S_ALLOWED: usize = 5;
const S_STATUS: usize = 6;
const S_LIMIT: usize = 7;
const S_REMAINING: usize = 8;
const S_RESET: usize = 9;
const S_RETRY_AFTER: usize = 10;
const S_POLICY: usize = 11;
const S_TABLE_FULL: usize = 12;
const S_COUNT: usize = 13;
/// Per header `i`: the name's index in `bind`'s name list.
const S_NAMES: usize = 14;
/// Per header `i`: when the value is a canonical decimal of at most 15 digits, the slot of
/// its number in the text cache (`number & (TEXT_CACHE - 1)`), else -1.
const S_SLOTS: usize = 20;
/// Per header `i`: the value's length in bytes (the bytes follow each other from `BYTES`),
/// or -1 when the value is not in the bytes because the JS text cache holds it (at the
/// slot of its key).
const S_LENS: usize = 26;
/// Output: the policy index a route string resolved to (the core's routing), or -1 when
/// the call named a policy. The wrapper remembers it per route string.
const S_ROUTED: usize = 32;
/// Output: 1 when the headers are the plan's (see [`Plan`]; names in the order of
/// `plan.allowed` or `plan.denied` as `bind` gave them) and every value is in the text
/// cache (only `S_SLOTS` is written), else 0 (read `S_COUNT`, `S_NAMES`, `S_LENS` too).
const S_CACHED: usize = 33;
/// Input: the index of the bound limiter object the call is for (see `bind`).
const S_BOUND: usize = 34;
/// Output: when denied, the body cache slot of the decision's 429 body (the call returns
/// the body as a string when the slot did not hold it: the wrapper keeps it there), else
/// -1.
const S_BODY: usize = 35;
/// Entries of a limiter object's 429 body cache (a power of two), by `Retry-After`.
const BODY_CACHE: usize = 64;
const MAX_HEADERS: usize = 6;
const F64_SLOTS: usize = 40;
/// Where the header value bytes start.
const BYTES: usize = F64_SLOTS * 8;
const SCRATCH_LEN: usize = BYTES + 2048;
/// Entries of a limiter object's header value text cache (a power of two). The JS wrapper
/// holds the text by slot; the addon holds (in `Bound`) the number whose text each slot
/// holds.
const TEXT_CACHE: usize = 4096;

const CODE_OK: u32 = 0;
const CODE_INVALID_COST: u32 = 1;
const CODE_UNKNOWN_POLICY: u32 = 2;
const CODE_BAD_KEY: u32 = 3;
const CODE_BAD_ROUTE: u32 = 4;
const CODE_BAD_NOW: u32 = 5;
const CODE_INTERNAL: u32 = 6;

/// The scratch layout and result codes, for the JS wrapper.
#[napi(object)]
pub struct Layout {
    /// Input slot: 0 check, 1 peek.
    pub mode: u32,
    /// Input slot: the cost.
    pub cost: u32,
    /// Input slot: milliseconds for both clocks, or NaN for the process's clocks.
    pub now_ms: u32,
    /// Input slot: policy index, or -1 to route by path.
    pub policy_in: u32,
    /// Output slot: the result code.
    pub code: u32,
    /// Output slot: 1 when allowed.
    pub allowed: u32,
    /// Output slot: HTTP status.
    pub status: u32,
    /// Output slot: binding rule's limit.
    pub limit: u32,
    /// Output slot: remaining.
    pub remaining: u32,
    /// Output slot: reset (epoch seconds).
    pub reset: u32,
    /// Output slot: Retry-After seconds (0 when allowed).
    pub retry_after: u32,
    /// Output slot: policy index.
    pub policy: u32,
    /// Output slot: 1 when the table was full.
    pub table_full: u32,
    /// Output slot: number of headers.
    pub count: u32,
    /// First slot of header name indexes.
    pub names: u32,
    /// First slot of header value cache slots.
    pub slots: u32,
    /// First slot of header value lengths.
    pub lens: u32,
    /// Output slot: the policy index a route resolved to, or -1.
    pub routed: u32,
    /// Output slot: 1 when the headers are the plan's and all cached.
    pub cached: u32,
    /// Input slot: the bound limiter object's index.
    pub bound: u32,
    /// Output slot: the body cache slot when denied, else -1.
    pub body: u32,
    /// Entries of the body cache.
    pub body_cache: u32,
    /// Byte offset of the header value bytes.
    pub bytes: u32,
    /// Entries of the text cache (a power of two).
    pub cache_size: u32,
    /// Result code: success.
    pub code_ok: u32,
    /// Result code: invalid cost.
    pub code_invalid_cost: u32,
    /// Result code: unknown policy.
    pub code_unknown_policy: u32,
    /// Result code: key neither string nor Uint8Array.
    pub code_bad_key: u32,
    /// Result code: route not a string.
    pub code_bad_route: u32,
    /// Result code: nowMs out of range.
    pub code_bad_now: u32,
    /// Result code: a bug (a caught panic).
    pub code_internal: u32,
}

/// The scratch layout.
#[napi(catch_unwind)]
pub fn layout() -> Layout {
    Layout {
        mode: S_MODE as u32,
        cost: S_COST as u32,
        now_ms: S_NOW_MS as u32,
        policy_in: S_POLICY_IN as u32,
        code: S_CODE as u32,
        allowed: S_ALLOWED as u32,
        status: S_STATUS as u32,
        limit: S_LIMIT as u32,
        remaining: S_REMAINING as u32,
        reset: S_RESET as u32,
        retry_after: S_RETRY_AFTER as u32,
        policy: S_POLICY as u32,
        table_full: S_TABLE_FULL as u32,
        count: S_COUNT as u32,
        names: S_NAMES as u32,
        slots: S_SLOTS as u32,
        lens: S_LENS as u32,
        routed: S_ROUTED as u32,
        cached: S_CACHED as u32,
        bound: S_BOUND as u32,
        body: S_BODY as u32,
        body_cache: BODY_CACHE as u32,
        bytes: BYTES as u32,
        cache_size: TEXT_CACHE as u32,
        code_ok: CODE_OK,
        code_invalid_cost: CODE_INVALID_COST,
        code_unknown_policy: CODE_UNKNOWN_POLICY,
        code_bad_key: CODE_BAD_KEY,
        code_bad_route: CODE_BAD_ROUTE,
        code_bad_now: CODE_BAD_NOW,
        code_internal: CODE_INTERNAL,
    }
}

fn style_of(s: &str) -> Option<HeaderStyle> {
    match s {
        "x-ratelimit" => Some(HeaderStyle::XRateLimit),
        "ietf" => Some(HeaderStyle::Ietf),
        "both" => Some(HeaderStyle::Both),
        _ => None,
    }
}

/// The header names the core writes for `style`, in order (those of a denied decision:
/// an allowed one writes the same without the last, `Retry-After`).
fn header_names(inner: &Inner, style: HeaderStyle) -> Vec<&'static str> {
    let config = inner.limiter.config();
    let policy = config.default_policy();
    let probe = Decision {
        allowed: false,
        limit: 1,
        remaining: 0,
        reset: 0,
        reset_after_ns: 0,
        retry_after_seconds: 1,
        retry_after_ns: 1,
        policy,
        binding_rule: 0,
        table_full: false,
    };
    let mut names = Vec::new();
    let _ = probe.for_each_header(config.policy(policy), style, |name, _| {
        names.push(name);
        Ok::<(), ()>(())
    });
    names
}

/// A figure of a decision that a header value can spell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Figure {
    Limit,
    Remaining,
    Reset,
    RetryAfter,
}

const FIGURES: [Figure; 4] = [
    Figure::Limit,
    Figure::Remaining,
    Figure::Reset,
    Figure::RetryAfter,
];

fn figure(d: &Decision, f: Figure) -> u64 {
    match f {
        Figure::Limit => d.limit,
        Figure::Remaining => d.remaining,
        Figure::Reset => d.reset,
        Figure::RetryAfter => d.retry_after_seconds,
    }
}

/// What the core writes for a header style, learned from the core itself when a check
/// function is bound: per header, the name's index and the figure whose canonical decimal
/// the value is (for an allowed and for a denied decision). With it, a check whose values
/// are all in the text cache skips formatting: the cache holds text the core wrote for
/// those numbers. Only styles whose every value is a plain figure have a plan (the
/// `X-RateLimit-*` set and `Retry-After`; not the IETF structured values). Every check that
/// formats (a cache miss) compares the core's text with the plan and drops the plan for
/// good if they ever differ.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    allowed: Vec<(u8, Figure)>,
    denied: Vec<(u8, Figure)>,
}

/// The plan for `style` (see [`Plan`]), or `None` when some value is not one figure's
/// canonical decimal. Probes the core with decisions whose figures are all distinct, twice
/// with other digit counts, and keeps the plan only when both probes agree.
fn header_plan(inner: &Inner, style: HeaderStyle, names: &[&'static str]) -> Option<Plan> {
    let config = inner.limiter.config();
    let policy = config.default_policy();
    let probe = |allowed: bool, figures: [u64; 4]| -> Option<Vec<(u8, Figure)>> {
        let d = Decision {
            allowed,
            limit: figures[0],
            remaining: figures[1],
            reset: figures[2],
            reset_after_ns: 1,
            retry_after_seconds: figures[3],
            retry_after_ns: 1,
            policy,
            binding_rule: 0,
            table_full: false,
        };
        let mut entries = Vec::new();
        d.for_each_header(config.policy(policy), style, |name, value| {
            let idx = names.iter().position(|n| *n == name).ok_or(())?;
            let k = decimal_key(value.as_bytes());
            let mut matching = FIGURES.iter().filter(|&&f| k >= 0.0 && figure(&d, f) as f64 == k);
            match (matching.next(), matching.next()) {
                (Some(&f), None) => {
                    entries.push((u8::try_from(idx).map_err(|_| ())?, f));
                    Ok(())
                }
                _ => Err(()),
            }
        })
        .ok()?;
        (entries.len() <= MAX_HEADERS).then_some(entries)
    };
    let a = [17, 2_503, 1_780_423_179, 40_961];
    let b = [1_000_000_000, 6, 99, 123_456_789_012];
    let allowed = probe(true, a)?;
    let denied = probe(false, a)?;
    (probe(true, b)? == allowed && probe(false, b)? == denied).then_some(Plan { allowed, denied })
}

/// Whether the core's 429 body depends on `Retry-After` alone: denied decisions that differ
/// in every other figure, policy and flag, with the same `Retry-After`, get the same body
/// (probed for two values).
fn body_by_retry(inner: &Inner) -> bool {
    let config = inner.limiter.config();
    let body = |d: &Decision| {
        let mut buf = [0u8; 256];
        aisoule_ratelimit::write_to_slice(&mut buf, |w| d.write_body(w))
            .ok()
            .map(|len| buf[..len].to_vec())
    };
    [1, 3_601].iter().all(|&retry| {
        let mut seen = None;
        (0..config.policies().len()).all(|i| {
            let Some(policy) = config.policy_id_at(i) else {
                return false;
            };
            [(1, 0, 1_780_423_179, false), (500, 7, 99, true)].iter().all(
                |&(limit, remaining, reset, full)| {
                    let d = Decision {
                        allowed: false,
                        limit,
                        remaining,
                        reset,
                        reset_after_ns: reset * 3,
                        retry_after_seconds: retry,
                        retry_after_ns: retry * 999_999_999,
                        policy,
                        binding_rule: 0,
                        table_full: full,
                    };
                    let b = body(&d);
                    b.is_some() && *seen.get_or_insert_with(|| b.clone()) == b
                },
            )
        })
    })
}

/// What the hot function needs of one JS limiter object: its limiter, header style, plan
/// and the numbers whose text the object's text cache holds.
struct Bound {
    inner: Arc<Inner>,
    style: HeaderStyle,
    names: Vec<&'static str>,
    plan: Option<Plan>,
    /// Whether the plan still holds (cleared for good on the first difference).
    plan_ok: Cell<bool>,
    /// Per text cache slot, the number whose text the JS object holds there, or -1.
    cache: Box<[Cell<f64>]>,
    /// Whether the core's 429 body is a function of `Retry-After` alone (learned from the
    /// core, see [`body_by_retry`]), so a body can be reused by that number.
    body_by_retry: bool,
    /// Per body cache slot, the `Retry-After` whose body the JS object holds there, or -1.
    bodies: Box<[Cell<f64>]>,
}

impl Bound {
    /// The number whose text the cache holds at `slot`, or -1.
    fn cached_at(&self, slot: usize) -> f64 {
        self.cache[slot].get()
    }

    /// Marks `slot` as holding the text of `n` (the wrapper stores it as it reads it).
    fn cache_at(&self, slot: usize, n: f64) {
        self.cache[slot].set(n);
    }

    /// Forgets every cached number and body.
    fn forget_cache(&self) {
        for c in self.cache.iter().chain(self.bodies.iter()) {
            c.set(-1.0);
        }
    }
}

thread_local! {
    /// The bound limiter objects of this thread's JS environment, by the index the wrapper
    /// writes in the scratch (`S_BOUND`); `None` once the object's token is collected. One
    /// hot function per environment serves every limiter object: a call site that always
    /// calls the same function stays on V8's fast path for API calls, where one function
    /// per object would make it megamorphic as soon as a second limiter is used.
    /// The hot function keeps its own reference to the table (`Hot::bounds`), so a check
    /// finds its object without the thread-local lookup (`__tls_get_addr` in an addon).
    static BOUNDS: Bounds = Rc::new(RefCell::new(Vec::new()));
}

/// A thread's bound limiter objects (see `BOUNDS`).
type Bounds = Rc<RefCell<Vec<Option<Rc<Bound>>>>>;

/// The bound object at index `i` (a number the wrapper wrote) in `bounds`, if there is one.
fn bound_at(bounds: &Bounds, i: u32) -> Option<Rc<Bound>> {
    bounds.try_borrow().ok()?.get(i as usize)?.clone()
}

/// Keeps a bound object's slot: the wrapper holds it (an `External`) for as long as the
/// limiter object lives; when it is collected, the slot is freed (on the JS thread that
/// owns it).
pub struct BoundToken(usize);

impl Drop for BoundToken {
    fn drop(&mut self) {
        let _ = BOUNDS.try_with(|b| {
            if let Ok(mut b) = b.try_borrow_mut() {
                if let Some(slot) = b.get_mut(self.0) {
                    *slot = None;
                }
            }
        });
    }
}

/// A limiter object bound to the hot function: its index (written into the scratch before
/// each call), the token that keeps it, the header names the core writes and the plan's
/// names (indexes into `names`), when there is a plan.
#[napi(object, object_from_js = false)]
pub struct Binding {
    /// The index to write into the scratch's bound slot.
    pub index: u32,
    /// Keeps the binding (hold it as long as the index is used).
    pub token: External<BoundToken>,
    /// Header names, as the core writes them.
    pub names: Vec<String>,
    /// An allowed decision's header names (indexes into `names`) when the plan holds.
    pub plan_allowed: Option<Vec<u32>>,
    /// A denied decision's header names (indexes into `names`) when the plan holds.
    pub plan_denied: Option<Vec<u32>>,
}

/// Binds a limiter to this thread's hot function with header style `style`.
#[napi(catch_unwind)]
pub fn bind(env: Env, handle: &External<Arc<Inner>>, style: String) -> Result<Binding> {
    let Some(style) = style_of(&style) else {
        return Err(throw(
            &env,
            true,
            "ERR_RATELIMIT_OPTION",
            "headerStyle must be \"x-ratelimit\", \"ietf\" or \"both\"",
        ));
    };
    let inner: &Arc<Inner> = handle;
    let names = header_names(inner, style);
    let plan = header_plan(inner, style, &names);
    let plan_names = |e: &Vec<(u8, Figure)>| e.iter().map(|&(i, _)| u32::from(i)).collect();
    let binding = Binding {
        index: 0,
        token: External::new(BoundToken(usize::MAX)),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        plan_allowed: plan.as_ref().map(|p| plan_names(&p.allowed)),
        plan_denied: plan.as_ref().map(|p| plan_names(&p.denied)),
    };
    let bound = Rc::new(Bound {
        inner: Arc::clone(inner),
        style,
        names,
        plan_ok: Cell::new(plan.is_some()),
        plan,
        cache: (0..TEXT_CACHE).map(|_| Cell::new(-1.0)).collect(),
        body_by_retry: body_by_retry(inner),
        bodies: (0..BODY_CACHE).map(|_| Cell::new(-1.0)).collect(),
    });
    let index = BOUNDS.with(|b| {
        let mut b = b.borrow_mut();
        match b.iter().position(Option::is_none) {
            Some(i) => {
                b[i] = Some(bound);
                i
            }
            None => {
                b.push(Some(bound));
                b.len() - 1
            }
        }
    });
    let index32 = u32::try_from(index).map_err(|_| Error::from_reason("too many limiter objects"))?;
    Ok(Binding {
        index: index32,
        token: External::new(BoundToken(index)),
        ..binding
    })
}

/// The hot function's state: its scratch (an `ArrayBuffer` kept alive by the function's
/// `scratch` property) and its thread's bound objects.
struct Hot {
    scratch: *mut u8,
    bounds: Bounds,
}

/// A raw `napi_value` returned as it is.
pub struct RawValue(sys::napi_value);

impl TypeName for RawValue {
    fn type_name() -> &'static str {
        "Function"
    }
    fn value_type() -> ValueType {
        ValueType::Function
    }
}

impl ToNapiValue for RawValue {
    unsafe fn to_napi_value(_env: sys::napi_env, val: Self) -> Result<sys::napi_value> {
        Ok(val.0)
    }
}

fn check_status(status: sys::napi_status) -> Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::GenericFailure,
            format!("Node-API call failed ({status})"),
        ))
    }
}

unsafe extern "C" fn finalize_hot(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Box<Hot>` leaked by `hot` for this function only; the
    // finalizer runs once, after the function can no longer be called.
    drop(unsafe { Box::from_raw(data.cast::<Hot>()) });
}

/// Makes the hot `check(key, route)` function (one per JS environment: the wrapper calls
/// it once, when loaded) with its scratch `ArrayBuffer` as the function's `scratch`
/// property. Which limiter a call is for is the bound index in the scratch.
#[napi(catch_unwind)]
pub fn hot(env: Env) -> Result<RawValue> {
    let raw_env = env.raw();
    let mut data: *mut c_void = ptr::null_mut();
    let mut scratch = ptr::null_mut();
    // SAFETY: a live env on its own thread; out-pointers are valid locals.
    check_status(unsafe { sys::napi_create_arraybuffer(raw_env, SCRATCH_LEN, &mut data, &mut scratch) })?;
    if data.is_null() || !(data as usize).is_multiple_of(std::mem::align_of::<f64>()) {
        return Err(Error::new(Status::GenericFailure, "misaligned scratch buffer"));
    }
    let state = Box::into_raw(Box::new(Hot {
        scratch: data.cast::<u8>(),
        bounds: BOUNDS.with(Rc::clone),
    }));
    let mut func = ptr::null_mut();
    // SAFETY: the name is a valid UTF-8 literal; `state` lives until the finalizer below.
    let made = unsafe {
        sys::napi_create_function(
            raw_env,
            c"check".as_ptr(),
            5,
            Some(check_callback),
            state.cast::<c_void>(),
            &mut func,
        )
    };
    let finalized = if made == sys::Status::napi_ok {
        // SAFETY: `func` was just made; the finalizer frees `state` exactly once.
        unsafe {
            sys::napi_add_finalizer(
                raw_env,
                func,
                state.cast::<c_void>(),
                Some(finalize_hot),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        }
    } else {
        made
    };
    if finalized != sys::Status::napi_ok {
        // SAFETY: no finalizer owns `state`: free it here, once.
        drop(unsafe { Box::from_raw(state) });
        return check_status(finalized).map(|()| RawValue(ptr::null_mut()));
    }
    // SAFETY: `func` is a live function object; the property name is a C literal.
    check_status(unsafe { sys::napi_set_named_property(raw_env, func, c"scratch".as_ptr(), scratch) })?;
    Ok(RawValue(func))
}

/// Bytes copied on the stack for a string argument (longer ones go to the heap).
const STACK_LEN: usize = 512;

/// Bytes of a key or route argument: a string (as UTF-8, copied into `stack` or `heap`) or
/// a `Uint8Array` (borrowed; valid until the callback returns, as no JS runs meanwhile).
/// `None` for anything else, a string with a lone surrogate included (it has no UTF-8).
///
/// # Safety
///
/// `env` and `value` must be the live arguments of the current callback.
unsafe fn arg_bytes<'a>(
    env: sys::napi_env,
    value: sys::napi_value,
    stack: &'a mut MaybeUninit<[u8; STACK_LEN]>,
    heap: &'a mut Vec<u8>,
    allow_bytes: bool,
) -> Option<&'a [u8]> {
    let mut len = 0usize;
    // Fast path for ASCII strings (API keys and paths nearly always are): V8 copies a string
    // out as UTF-16 with a plain widening copy, far cheaper than its UTF-8 encoder; ASCII
    // narrowed back is its own UTF-8. Other well-formed strings take the UTF-8 path below.
    let mut wide = MaybeUninit::<[u16; STACK_LEN]>::uninit();
    // SAFETY: `wide` is writable for STACK_LEN units; the caller vouches for env and value.
    let st = unsafe {
        sys::napi_get_value_string_utf16(env, value, wide.as_mut_ptr().cast::<u16>(), STACK_LEN, &mut len)
    };
    if st == sys::Status::napi_ok && len + 1 < STACK_LEN {
        // SAFETY: Node-API wrote `len` units from the start of `wide`.
        let units = unsafe { std::slice::from_raw_parts(wide.as_ptr().cast::<u16>(), len) };
        // Narrow and test in one pass (vectorised): the bytes count only when every unit
        // was ASCII.
        let out = stack.as_mut_ptr().cast::<u8>();
        let mut all = 0u16;
        for (i, &u) in units.iter().enumerate() {
            all |= u;
            // SAFETY: i < len < STACK_LEN, inside `stack`.
            unsafe { out.add(i).write(u as u8) };
        }
        if all < 0x80 {
            // SAFETY: the first `len` bytes of `stack` were just written.
            return Some(unsafe { std::slice::from_raw_parts(out, len) });
        }
        if !well_formed(units) {
            return None;
        }
    } else if st == sys::Status::napi_ok {
        // Too long for the stack: the units from the heap, only to look for lone surrogates.
        // SAFETY: a null buffer asks for the length only.
        if unsafe { sys::napi_get_value_string_utf16(env, value, ptr::null_mut(), 0, &mut len) }
            != sys::Status::napi_ok
        {
            return None;
        }
        let mut units = vec![0u16; len + 1];
        // SAFETY: `units` is writable for `len + 1` units; the caller vouches for env and value.
        let st = unsafe {
            sys::napi_get_value_string_utf16(env, value, units.as_mut_ptr().cast::<u16>(), len + 1, &mut len)
        };
        if st != sys::Status::napi_ok || !well_formed(&units[..len]) {
            return None;
        }
    }
    // SAFETY: `stack` is writable for STACK_LEN bytes; the caller vouches for env and value.
    let st = unsafe {
        sys::napi_get_value_string_utf8(
            env,
            value,
            stack.as_mut_ptr().cast::<c_char>(),
            STACK_LEN,
            &mut len,
        )
    };
    if st == sys::Status::napi_ok {
        if len + 1 < STACK_LEN {
            // SAFETY: Node-API wrote `len` bytes (and a NUL) from the start of `stack`.
            return Some(unsafe { std::slice::from_raw_parts(stack.as_ptr().cast::<u8>(), len) });
        }
        // Possibly cut short: ask for the length, then copy all of it.
        // SAFETY: a null buffer asks for the length only.
        let st = unsafe { sys::napi_get_value_string_utf8(env, value, ptr::null_mut(), 0, &mut len) };
        if st != sys::Status::napi_ok {
            return None;
        }
        heap.resize(len + 1, 0);
        // SAFETY: `heap` is writable for `len + 1` bytes.
        let st = unsafe {
            sys::napi_get_value_string_utf8(env, value, heap.as_mut_ptr().cast::<c_char>(), len + 1, &mut len)
        };
        return (st == sys::Status::napi_ok).then(|| &heap[..len]);
    }
    if !allow_bytes || st != sys::Status::napi_string_expected {
        return None;
    }
    let mut is_typed = false;
    // SAFETY: as above.
    if unsafe { sys::napi_is_typedarray(env, value, &mut is_typed) } != sys::Status::napi_ok || !is_typed {
        return None;
    }
    let mut kind = 0;
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: `value` is a typed array; null out-pointers are allowed for unused fields.
    let st = unsafe {
        sys::napi_get_typedarray_info(
            env,
            value,
            &mut kind,
            &mut len,
            &mut data,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if st != sys::Status::napi_ok
        || !(kind == sys::TypedarrayType::uint8_array || kind == sys::TypedarrayType::uint8_clamped_array)
    {
        return None;
    }
    if len == 0 || data.is_null() {
        return Some(&[]);
    }
    // SAFETY: a Uint8Array's `data` points at `len` bytes that stay put while no JS runs
    // (the rest of this callback).
    Some(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// Whether UTF-16 units have UTF-8 bytes: no lone surrogate (V8 would write U+FFFD for
/// one, so `"a\ud800"` and `"a\ufffd"` would be one key; Python refuses such a string).
fn well_formed(units: &[u16]) -> bool {
    char::decode_utf16(units.iter().copied()).all(|c| c.is_ok())
}

/// `Number.MAX_SAFE_INTEGER`: the largest whole number a JS number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Whether `v` (from 0 to 2^53) is a whole number: a round trip through `i64`, two
/// instructions (`f64::fract` calls libm's `trunc`: no SSE4.1 in the baseline target; a
/// round trip through `u64` takes a dozen).
fn is_whole(v: f64) -> bool {
    v as i64 as f64 == v
}

/// A field of the decision `check` just wrote, read by itself: the compiler otherwise
/// reads two neighbouring fields with one 16-byte load, which waits until the two 8-byte
/// stores that wrote them have left the store buffer (a forwarding stall, about 2 ns).
#[inline(always)]
fn one(field: &u64) -> u64 {
    // SAFETY: a reference is valid, aligned and initialised for a read.
    unsafe { ptr::read_volatile(field) }
}

/// A figure as a JS number: exact below 2^53, which every figure is (limits to 10^9,
/// epoch seconds). Through `i64`, one instruction where `u64` takes several.
fn num(v: u64) -> f64 {
    v.min(i64::MAX as u64) as i64 as f64
}

/// `ms` (finite, >= 0) as nanoseconds, exact for whole milliseconds.
fn ms_to_ns(ms: f64) -> Option<u64> {
    if !(0.0..=MAX_SAFE).contains(&ms) {
        return None;
    }
    if is_whole(ms) {
        return (ms as u64).checked_mul(1_000_000); // the usual case, without libm
    }
    let whole = ms.trunc();
    let frac_ns = ((ms - whole) * 1e6).round() as u64;
    (whole as u64).checked_mul(1_000_000)?.checked_add(frac_ns)
}

/// A canonical decimal of at most 15 digits as a number (the text cache's key), else -1.
fn decimal_key(v: &[u8]) -> f64 {
    if v.is_empty() || v.len() > 15 || (v.len() > 1 && v[0] == b'0') {
        return -1.0;
    }
    let mut n = 0u64;
    for &b in v {
        if !b.is_ascii_digit() {
            return -1.0;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    n as f64
}

unsafe extern "C" fn check_callback(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    let mut argc = 2usize;
    let mut argv = [ptr::null_mut(); 2];
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: `env` and `info` are this callback's; the out-pointers are valid locals.
    let st = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            &mut data,
        )
    };
    if st != sys::Status::napi_ok || data.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `data` is the `Hot` given to `napi_create_function`, alive until the
    // function's finalizer, which cannot run during a call of it.
    let hot = unsafe { &*data.cast::<Hot>() };
    // SAFETY: the scratch holds SCRATCH_LEN bytes, 8-aligned (checked in `hot`), owned by
    // the function's `scratch` property; only this thread's JS touches it, never during
    // this call.
    let scratch = unsafe { std::slice::from_raw_parts_mut(hot.scratch, SCRATCH_LEN) };
    let Some(bound) = bound_at(&hot.bounds, get_u32(scratch, S_BOUND)) else {
        put(scratch, S_CODE, f64::from(CODE_INTERNAL));
        return ptr::null_mut();
    };
    let out = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: argv holds this callback's arguments (undefined when not passed).
        unsafe { decide(env, &bound, scratch, argv[0], argv[1]) }
    }));
    // SAFETY: as above; the closure's borrow has ended (returned or unwound).
    let scratch = unsafe { std::slice::from_raw_parts_mut(hot.scratch, SCRATCH_LEN) };
    let v = out.unwrap_or_else(|_| {
        put(scratch, S_CODE, f64::from(CODE_INTERNAL));
        ptr::null_mut()
    });
    if get(scratch, S_CODE) == f64::from(CODE_INTERNAL) {
        // The wrapper throws without reading the header text, so it stores none: forget
        // every cached number, as some may have been marked for text it never got.
        bound.forget_cache();
    }
    v
}

fn get(scratch: &[u8], slot: usize) -> f64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&scratch[slot * 8..slot * 8 + 8]);
    f64::from_ne_bytes(b)
}

/// The `u32` in the first four bytes of `slot`, where the wrapper writes it through a
/// `Uint32Array` (an index read as it was written: no float conversion on the way in).
fn get_u32(scratch: &[u8], slot: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&scratch[slot * 8..slot * 8 + 4]);
    u32::from_ne_bytes(b)
}

fn put(scratch: &mut [u8], slot: usize, v: f64) {
    scratch[slot * 8..slot * 8 + 8].copy_from_slice(&v.to_ne_bytes());
}

/// The body of the hot call.
///
/// # Safety
///
/// `env`, `key` and `route` must be the live arguments of the current callback.
unsafe fn decide(
    env: sys::napi_env,
    bound: &Bound,
    scratch: &mut [u8],
    key: sys::napi_value,
    route: sys::napi_value,
) -> sys::napi_value {
    let fail = |scratch: &mut [u8], code: u32| {
        put(scratch, S_CODE, f64::from(code));
        ptr::null_mut()
    };
    let inner = &*bound.inner;
    let peek = get(scratch, S_MODE) != 0.0;
    let cost = get(scratch, S_COST);
    let now_ms = get(scratch, S_NOW_MS);
    let policy_in = get(scratch, S_POLICY_IN);

    let (mut key_stack, mut key_heap) = (MaybeUninit::uninit(), Vec::new());
    // SAFETY: the caller vouches for env and key.
    let Some(key) = (unsafe { arg_bytes(env, key, &mut key_stack, &mut key_heap, true) }) else {
        return fail(scratch, CODE_BAD_KEY);
    };
    let id = if policy_in >= 0.0 {
        let p = policy_in as u32;
        match inner.ids.get(p as usize) {
            Some(&id) if f64::from(p) == policy_in => id,
            _ => return fail(scratch, CODE_UNKNOWN_POLICY),
        }
    } else {
        let (mut route_stack, mut route_heap) = (MaybeUninit::uninit(), Vec::new());
        // SAFETY: the caller vouches for env and route.
        let bytes = unsafe { arg_bytes(env, route, &mut route_stack, &mut route_heap, false) };
        let Some(b) = bytes else {
            return fail(scratch, CODE_BAD_ROUTE);
        };
        // SAFETY: the bytes are what `napi_get_value_string_utf8` wrote, or ASCII narrowed
        // from UTF-16 (strings only: `allow_bytes` is false), which is UTF-8 (V8 replaces
        // lone surrogates and never cuts a character).
        let path = unsafe { std::str::from_utf8_unchecked(b) };
        // The core's routing, as `Target::Route(path)` does it; the wrapper remembers the
        // answer for this string and names the policy next time.
        let id = inner.limiter.config().route(path);
        put(scratch, S_ROUTED, id.index() as f64);
        id
    };
    if !((1.0..=MAX_SAFE).contains(&cost) && is_whole(cost)) {
        return fail(scratch, CODE_INVALID_COST);
    }
    let now = if now_ms.is_nan() {
        request_now()
    } else {
        match ms_to_ns(now_ms) {
            Some(ns) => Now::same(ns),
            None => return fail(scratch, CODE_BAD_NOW),
        }
    };
    let decided = if peek {
        inner.limiter.peek(key, Target::Policy(id), cost as u64, now)
    } else {
        inner.limiter.check(key, Target::Policy(id), cost as u64, now)
    };
    // By reference: the fields are read where `check` wrote them (moving the whole
    // decision out reads it with wider loads than its stores, which stalls).
    let d = match &decided {
        Ok(d) => d,
        Err(CheckError::InvalidCost) => return fail(scratch, CODE_INVALID_COST),
        Err(_) => return fail(scratch, CODE_UNKNOWN_POLICY),
    };
    put(scratch, S_ALLOWED, if d.allowed { 1.0 } else { 0.0 });
    put(scratch, S_STATUS, f64::from(d.status()));
    put(scratch, S_LIMIT, num(one(&d.limit)));
    put(scratch, S_REMAINING, num(one(&d.remaining)));
    put(scratch, S_RESET, num(one(&d.reset)));
    put(scratch, S_RETRY_AFTER, num(one(&d.retry_after_seconds)));
    put(scratch, S_POLICY, d.policy.index() as f64);
    put(scratch, S_TABLE_FULL, if d.table_full { 1.0 } else { 0.0 });
    if !(cached_headers(bound, d, scratch) || formatted_headers(bound, d, scratch)) {
        return fail(scratch, CODE_INTERNAL);
    }
    put(scratch, S_CODE, f64::from(CODE_OK));
    if d.allowed {
        put(scratch, S_BODY, -1.0);
        return ptr::null_mut();
    }
    let retry = num(d.retry_after_seconds);
    let slot = d.retry_after_seconds as usize & (BODY_CACHE - 1);
    put(scratch, S_BODY, slot as f64);
    if bound.body_by_retry && bound.bodies[slot].get() == retry {
        return ptr::null_mut(); // the wrapper holds this body at `slot`
    }
    let mut body = [0u8; 256];
    let Ok(len) = aisoule_ratelimit::write_to_slice(&mut body, |w| d.write_body(w)) else {
        return fail(scratch, CODE_INTERNAL);
    };
    let mut s = ptr::null_mut();
    // SAFETY: `body[..len]` is the core's ASCII text; `s` is a valid out-pointer.
    let st =
        unsafe { sys::napi_create_string_utf8(env, body.as_ptr().cast::<c_char>(), len as isize, &mut s) };
    if st != sys::Status::napi_ok {
        return fail(scratch, CODE_INTERNAL);
    }
    bound.bodies[slot].set(if bound.body_by_retry { retry } else { -1.0 });
    s
}

/// The largest number a cache key holds (15 digits: exact as an f64).
const MAX_KEY: u64 = 999_999_999_999_999;

/// The text cache slot of number `n`.
fn cache_slot(n: u64) -> usize {
    n as usize & (TEXT_CACHE - 1)
}

/// The headers of `d` when the plan holds and the text of every value is in the JS text
/// cache: names and numbers only, no formatting. Returns false (having written nothing
/// the JS reads) when some value is not cached.
fn cached_headers(bound: &Bound, d: &Decision, scratch: &mut [u8]) -> bool {
    let Some(plan) = bound.plan.as_ref().filter(|_| bound.plan_ok.get()) else {
        return false;
    };
    let entries = if d.allowed { &plan.allowed } else { &plan.denied };
    for (i, &(_, f)) in entries.iter().enumerate() {
        let n = figure(d, f);
        let slot = cache_slot(n);
        if n > MAX_KEY || bound.cached_at(slot) != num(n) {
            return false;
        }
        put(scratch, S_SLOTS + i, slot as f64);
    }
    put(scratch, S_CACHED, 1.0);
    true
}

/// The headers of `d` as the core formats them (`for_each_header`): each value's bytes,
/// or, when the text cache holds that number's text, its key only. Compares the core's
/// text with the plan and drops the plan if they differ. Returns false on a value that
/// does not fit (a bug).
fn formatted_headers(bound: &Bound, d: &Decision, scratch: &mut [u8]) -> bool {
    let plan = bound.plan.as_ref().filter(|_| bound.plan_ok.get());
    let entries = plan.map(|p| if d.allowed { &p.allowed } else { &p.denied });
    let mut count = 0usize;
    let mut at = BYTES;
    let policy = bound.inner.limiter.policy(d.policy);
    let wrote = d.for_each_header(policy, bound.style, |name, value| {
        let v = value.as_bytes();
        let Some(idx) = bound.names.iter().position(|n| ptr::eq(*n, name) || *n == name) else {
            return Err(());
        };
        if count == MAX_HEADERS || at + v.len() > SCRATCH_LEN {
            return Err(());
        }
        let k = decimal_key(v);
        if let Some(entries) = entries {
            let planned = entries
                .get(count)
                .map(|&(i, f)| (usize::from(i), figure(d, f) as f64));
            if planned != Some((idx, k)) {
                bound.plan_ok.set(false);
            }
        }
        let slot = if k >= 0.0 {
            cache_slot(k as u64)
        } else {
            usize::MAX
        };
        put(scratch, S_NAMES + count, idx as f64);
        put(
            scratch,
            S_SLOTS + count,
            if k >= 0.0 { slot as f64 } else { -1.0 },
        );
        if k >= 0.0 && bound.cached_at(slot) == k {
            put(scratch, S_LENS + count, -1.0);
        } else {
            scratch[at..at + v.len()].copy_from_slice(v);
            at += v.len();
            put(scratch, S_LENS + count, v.len() as f64);
            if k >= 0.0 {
                bound.cache_at(slot, k);
            }
        }
        count += 1;
        Ok(())
    });
    if entries.is_some_and(|e| e.len() != count) {
        bound.plan_ok.set(false);
    }
    put(scratch, S_COUNT, count as f64);
    put(scratch, S_CACHED, 0.0);
    wrote.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_milliseconds_are_exact_nanoseconds() {
        assert_eq!(ms_to_ns(0.0), Some(0));
        assert_eq!(ms_to_ns(1_780_423_178_274.0), Some(1_780_423_178_274_000_000));
        assert_eq!(ms_to_ns(1.5), Some(1_500_000));
        assert_eq!(ms_to_ns(MAX_SAFE), None); // past u64 nanoseconds
        assert_eq!(ms_to_ns(-1.0), None);
        assert_eq!(ms_to_ns(f64::NAN), None);
        assert_eq!(ms_to_ns(f64::INFINITY), None);
    }

    #[test]
    fn only_canonical_decimals_get_a_cache_key() {
        assert_eq!(decimal_key(b"0"), 0.0);
        assert_eq!(decimal_key(b"1780423179"), 1_780_423_179.0);
        assert_eq!(decimal_key(b"999999999999999"), 999_999_999_999_999.0);
        for v in [&b""[..], b"007", b"1234567890123456", b"\"p\";r=1;t=2", b"12a"] {
            assert_eq!(decimal_key(v), -1.0, "{v:?}");
        }
    }

    #[test]
    fn segment_refusals_have_their_codes() {
        let config = parse_config("{}").expect("the documented config").config;
        let dir = std::env::temp_dir().join(format!("asrl-node-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("table");
        let path = path.to_str().expect("a UTF-8 path");
        let made = open_segment(path, None, &config).expect("created with the default capacity");
        assert_eq!(made.capacity() as u64, DEFAULT_CAPACITY);
        let f = segment_failure(&open_segment(path, Some(16), &config).expect_err("another capacity"));
        assert_eq!(f.code, "ERR_RATELIMIT_SHARED_CAPACITY");
        assert_eq!(f.message, "segment has capacity 65536, this process asked for 16");
        assert_eq!((f.errno, f.syscall), (None, None));
        let other = parse_config(r#"{"routes":[]}"#).expect("a config").config;
        let f = segment_failure(&open_segment(path, None, &other).expect_err("other routes"));
        assert_eq!(f.code, "ERR_RATELIMIT_SHARED_CONFIG");
        let missing = dir.join("no").join("table");
        let f = segment_failure(&open_segment(missing.to_str().unwrap(), None, &config).expect_err("no dir"));
        assert_eq!(f.code, "ERR_RATELIMIT_SHARED_IO");
        assert_eq!((f.errno, f.syscall.as_deref()), (Some(2), Some("open")));
        drop(made);
        std::fs::remove_dir_all(&dir).expect("removed");
    }

    #[test]
    fn seeds_are_little_endian_halves() {
        let mut b = [0u8; 16];
        b[0] = 1;
        b[8] = 2;
        assert_eq!(seed_from_bytes(&b), Seed([1, 2]));
    }

    fn documented() -> Inner {
        let parsed = parse_config("{}").expect("the documented config");
        Inner {
            limiter: Limiter::new(parsed.config, Table::owned(16), Seed([1, 2])),
            ids: Vec::new(),
            capacity: 16,
            seed: Seed([1, 2]),
            config_json: "{}".into(),
            segment: None,
        }
    }

    #[test]
    fn header_names_are_the_cores_in_order() {
        let inner = documented();
        assert_eq!(
            header_names(&inner, HeaderStyle::XRateLimit),
            [
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After"
            ]
        );
        assert_eq!(header_names(&inner, HeaderStyle::Both).len(), MAX_HEADERS);
    }

    #[test]
    fn only_styles_of_plain_figures_have_a_plan() {
        let inner = documented();
        let names = header_names(&inner, HeaderStyle::XRateLimit);
        let plan = header_plan(&inner, HeaderStyle::XRateLimit, &names).expect("a plan");
        use Figure::{Limit, Remaining, Reset, RetryAfter};
        assert_eq!(plan.allowed, [(0, Limit), (1, Remaining), (2, Reset)]);
        assert_eq!(
            plan.denied,
            [(0, Limit), (1, Remaining), (2, Reset), (3, RetryAfter)]
        );
        for style in [HeaderStyle::Ietf, HeaderStyle::Both] {
            assert_eq!(header_plan(&inner, style, &header_names(&inner, style)), None);
        }
    }

    #[test]
    fn the_cores_body_depends_on_retry_after_alone() {
        assert!(body_by_retry(&documented()));
    }

    #[test]
    fn whole_numbers() {
        for (v, whole) in [
            (0.0, true),
            (1.0, true),
            (MAX_SAFE, true),
            (1.5, false),
            (0.25, false),
        ] {
            assert_eq!(is_whole(v), whole, "{v}");
        }
    }
}
