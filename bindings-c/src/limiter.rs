//! `asrl_limiter`: construction (own table or caller memory), accessors, `_free`.

use std::ffi::c_char;
use std::fmt::Write as _;

use asrl_core::json::{parse_config, MAX_CAPACITY};
use asrl_core::{Cell, Config, FullTableMode, HeaderStyle, Limiter, PolicyId, Seed, CELL_SIZE, MAX_POLICIES};

use crate::ffi::{in_str, out_buf, write_out, write_text};
use crate::panic::ffi_panic_boundary;
use crate::result::asrl_result;

/// The table size when neither the options nor the config name one.
pub const ASRL_DEFAULT_CAPACITY: u64 = 65536;
/// The bytes of one table cell.
pub const ASRL_CELL_SIZE: usize = 16;
/// The alignment caller table memory needs, in bytes.
pub const ASRL_TABLE_ALIGN: usize = 16;

const _: () = assert!(ASRL_CELL_SIZE == CELL_SIZE);
const _: () = assert!(ASRL_TABLE_ALIGN == std::mem::align_of::<Cell>());

/// What a limiter answers when a key needs a table cell and none can be had.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum asrl_full_table_mode {
    /// Admit as for a fresh key, store nothing, flag the decision (the default).
    Open = 0,
    /// Deny with `Retry-After: 1`, flag the decision.
    Closed = 1,
}

/// Which rate-limit headers `asrl_decision_write_headers` writes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum asrl_header_style {
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (the default).
    XRateLimit = 0,
    /// `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10).
    Ietf = 1,
    /// Both sets, the `X-RateLimit-*` one first.
    Both = 2,
}

/// Options of a new limiter. All-zero bytes (`memset(&o, 0, sizeof o)`, or passing
/// NULL) mean the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct asrl_options {
    /// Table cells; 0: the config's `"capacity"`, else `ASRL_DEFAULT_CAPACITY`. At most
    /// 2^32. With caller memory, 0 or the memory's cell count. With a shared segment, 0
    /// also accepts an existing segment's capacity.
    pub capacity: u64,
    /// An `asrl_full_table_mode` value (default `ASRL_FULL_TABLE_MODE_OPEN`).
    pub full_table_mode: u32,
    /// An `asrl_header_style` value (default `ASRL_HEADER_STYLE_X_RATE_LIMIT`).
    pub header_style: u32,
    /// The table's secret hash key; `{0, 0}`: 128 bits from the operating system. Give
    /// every process sharing caller memory the same seed. Must be `{0, 0}` for
    /// `asrl_limiter_open_shared` (the segment holds its seed).
    pub seed: [u64; 2],
}

/// Where the cells live.
#[derive(Debug)]
pub(crate) enum Table {
    /// The host crate's tables: owned by this process (`asrl_limiter_new`: allocated,
    /// zeroed, freed by `asrl_limiter_free`) or mapped from a shared-memory segment
    /// (`asrl_limiter_open_shared`: unmapped by `asrl_limiter_free`).
    Host(aisoule_ratelimit_host::Table),
    /// Caller memory given to `asrl_limiter_new_in`.
    Caller(CallerTable),
}

/// Caller-owned cells: a pointer and a count, valid while the limiter lives.
#[derive(Debug)]
pub(crate) struct CallerTable {
    cells: *const Cell,
    len: usize,
}

// SAFETY: a `CallerTable` only hands out `&[Cell]`; `Cell` is an atomic word, `Sync`
// and `Send`, and the caller promised the memory outlives the limiter.
unsafe impl Send for CallerTable {}
// SAFETY: as above: shared access to atomics only.
unsafe impl Sync for CallerTable {}

impl AsRef<[Cell]> for Table {
    fn as_ref(&self) -> &[Cell] {
        match self {
            Table::Host(t) => t.as_ref(),
            // SAFETY: `asrl_limiter_new_in` checked the pointer non-NULL, 16-byte aligned
            // and `len` cells long; the caller promised the memory stays valid (and is
            // only touched through limiters) until `asrl_limiter_free`.
            Table::Caller(t) => unsafe { std::slice::from_raw_parts(t.cells, t.len) },
        }
    }
}

/// A rate limiter: a config of policies over a table of cells. Opaque.
///
/// Thread-safe: share one `asrl_limiter *` between threads; every function taking a
/// `const asrl_limiter *` may run concurrently. Made by `asrl_limiter_new` or
/// `asrl_limiter_new_in`, freed by `asrl_limiter_free`.
#[derive(Debug)]
pub struct asrl_limiter {
    pub(crate) inner: Limiter<Table>,
    pub(crate) style: HeaderStyle,
    /// The `PolicyId` of each policy index (the core gives ids only by name).
    pub(crate) ids: [Option<PolicyId>; MAX_POLICIES],
}

impl asrl_limiter {
    /// The id of policy `index`, if the config has it.
    pub(crate) fn policy_id(&self, index: usize) -> Option<PolicyId> {
        self.ids.get(index).copied().flatten()
    }
}

/// The limiter's counters.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct asrl_stats {
    /// Requests admitted by the fail-open full-table mode.
    pub table_full_open: u64,
    /// Requests denied by the fail-closed full-table mode.
    pub table_full_closed: u64,
}

/// The config, from JSON text or the documented defaults.
///
/// # Safety
///
/// `config` must be NULL or `config_len` readable bytes.
pub(crate) unsafe fn load_config(
    config: *const c_char,
    config_len: usize,
) -> Result<(Config, Option<u64>), asrl_result> {
    if config.is_null() && config_len == 0 {
        return Ok((Config::documented(), None));
    }
    // SAFETY: forwarded from the caller.
    let text = match unsafe { in_str(config, config_len) } {
        Ok(t) => t,
        Err(asrl_result::InvalidUtf8) => return Err(asrl_result::InvalidConfig),
        Err(e) => return Err(e),
    };
    let parsed = parse_config(text).map_err(|_| asrl_result::InvalidConfig)?;
    Ok((parsed.config, parsed.capacity))
}

/// 128 bits from the operating system (getrandom(2), through the host crate).
fn os_seed() -> Result<Seed, asrl_result> {
    aisoule_ratelimit_host::try_os_seed().map_err(|_| asrl_result::SeedUnavailable)
}

/// Checked options: capacity (0: unset), mode, style, seed (`None`: `{0, 0}`, none given).
pub(crate) struct Options {
    pub(crate) capacity: u64,
    pub(crate) mode: FullTableMode,
    pub(crate) style: HeaderStyle,
    pub(crate) seed: Option<Seed>,
}

impl Options {
    /// The given seed, or a fresh one from the operating system.
    fn seed_or_os(&self) -> Result<Seed, asrl_result> {
        self.seed.map_or_else(os_seed, Ok)
    }
}

/// # Safety
///
/// `options` must be NULL or point to a readable `asrl_options`.
pub(crate) unsafe fn load_options(options: *const asrl_options) -> Result<Options, asrl_result> {
    let o = if options.is_null() {
        asrl_options::default()
    } else {
        // SAFETY: non-NULL; the caller promises a readable `asrl_options` (plain integers,
        // every bit pattern valid).
        unsafe { options.read() }
    };
    let mode = match o.full_table_mode {
        0 => FullTableMode::Open,
        1 => FullTableMode::Closed,
        _ => return Err(asrl_result::InvalidParameter),
    };
    let style = match o.header_style {
        0 => HeaderStyle::XRateLimit,
        1 => HeaderStyle::Ietf,
        2 => HeaderStyle::Both,
        _ => return Err(asrl_result::InvalidParameter),
    };
    if o.capacity > MAX_CAPACITY {
        return Err(asrl_result::InvalidParameter);
    }
    let seed = (o.seed != [0, 0]).then_some(Seed(o.seed));
    Ok(Options {
        capacity: o.capacity,
        mode,
        style,
        seed,
    })
}

pub(crate) fn make(config: Config, table: Table, seed: Seed, o: &Options) -> Box<asrl_limiter> {
    let mut ids = [None; MAX_POLICIES];
    for (slot, policy) in ids.iter_mut().zip(config.policies()) {
        *slot = config.policy_id(policy.name());
    }
    Box::new(asrl_limiter {
        inner: Limiter::with_full_table_mode(config, table, seed, o.mode),
        style: o.style,
        ids,
    })
}

/// A zeroed table of `capacity` cells, or `ASRL_RESULT_ALLOC_FAILED`.
fn alloc_table(capacity: u64) -> Result<aisoule_ratelimit_host::Table, asrl_result> {
    let n = usize::try_from(capacity).map_err(|_| asrl_result::InvalidParameter)?;
    if n == 0 || std::alloc::Layout::array::<Cell>(n).is_err() {
        return Err(asrl_result::InvalidParameter);
    }
    aisoule_ratelimit_host::Table::try_owned(n).ok_or(asrl_result::AllocFailed)
}

/// Makes a limiter that owns its table.
///
/// `config`/`config_len`: the JSON config object of `conformance/FORMAT.md` (not
/// NUL-terminated; `"policies"`, `"routes"`, `"default_policy"`, `"capacity"`, each
/// optional); NULL with length 0 means the documented defaults. `options`: NULL for
/// the defaults. The table has `options->capacity` cells, else the config's
/// `"capacity"`, else `ASRL_DEFAULT_CAPACITY`; it is allocated here, zeroed, and never
/// grows.
///
/// On success `*limiter_out` is a new limiter the caller owns and frees with
/// `asrl_limiter_free`; on failure it is not written.
///
/// # Errors
///
/// `ASRL_RESULT_INVALID_CONFIG` (then `asrl_config_error` on the same text says why),
/// `ASRL_RESULT_INVALID_PARAMETER` (bad option values, capacity above 2^32),
/// `ASRL_RESULT_ALLOC_FAILED`, `ASRL_RESULT_SEED_UNAVAILABLE`,
/// `ASRL_RESULT_NULL_PARAMETER`.
///
/// # Safety
///
/// `config` must be NULL or `config_len` readable bytes; `options` NULL or a readable
/// `asrl_options`; `limiter_out` a writable `asrl_limiter *`.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_new(
    config: *const c_char,
    config_len: usize,
    options: *const asrl_options,
    limiter_out: *mut *mut asrl_limiter,
) -> asrl_result {
    ffi_panic_boundary! {
        if limiter_out.is_null() {
            return asrl_result::NullParameter;
        }
        // SAFETY: the caller's promise about `config`.
        let (config, config_capacity) = match unsafe { load_config(config, config_len) } {
            Ok(c) => c,
            Err(e) => return e,
        };
        // SAFETY: the caller's promise about `options`.
        let o = match unsafe { load_options(options) } {
            Ok(o) => o,
            Err(e) => return e,
        };
        let capacity = if o.capacity != 0 {
            o.capacity
        } else {
            config_capacity.unwrap_or(ASRL_DEFAULT_CAPACITY)
        };
        let seed = match o.seed_or_os() {
            Ok(s) => s,
            Err(e) => return e,
        };
        let table = match alloc_table(capacity) {
            Ok(t) => Table::Host(t),
            Err(e) => return e,
        };
        let limiter = make(config, table, seed, &o);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_out(limiter_out, Box::into_raw(limiter)) };
        asrl_result::Ok
    }
}

/// Makes a limiter over caller memory: a `static` array, or a shared-memory segment.
///
/// `table` must be aligned to `ASRL_TABLE_ALIGN` (16) bytes and `table_bytes` a
/// positive multiple of `ASRL_CELL_SIZE` (16): `asrl_table_bytes(capacity)` bytes hold
/// `capacity` cells. The memory must be zeroed before its first use (static arrays and
/// fresh `mmap`/`shm` segments are), or left by limiters of the same config and seed.
/// The limiter only reads and writes it with atomic operations and never frees it.
/// `options->capacity` and the config's `"capacity"`, when set, must equal
/// `table_bytes / 16`. Other arguments and the result as `asrl_limiter_new`.
///
/// # Errors
///
/// As `asrl_limiter_new`, and `ASRL_RESULT_TABLE_MISALIGNED`, `ASRL_RESULT_TABLE_SIZE`.
///
/// # Safety
///
/// As `asrl_limiter_new`; and `table` must point to `table_bytes` bytes, readable and
/// writable, that stay valid and are touched only through limiters until this limiter is
/// freed.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_new_in(
    config: *const c_char,
    config_len: usize,
    options: *const asrl_options,
    table: *mut std::ffi::c_void,
    table_bytes: usize,
    limiter_out: *mut *mut asrl_limiter,
) -> asrl_result {
    ffi_panic_boundary! {
        if limiter_out.is_null() || table.is_null() {
            return asrl_result::NullParameter;
        }
        if !(table as usize).is_multiple_of(ASRL_TABLE_ALIGN) {
            return asrl_result::TableMisaligned;
        }
        if table_bytes == 0 || !table_bytes.is_multiple_of(ASRL_CELL_SIZE) || table_bytes > isize::MAX as usize {
            return asrl_result::TableSize;
        }
        let cells = table_bytes / ASRL_CELL_SIZE;
        if cells as u64 > MAX_CAPACITY {
            return asrl_result::TableSize;
        }
        // SAFETY: the caller's promise about `config`.
        let (config, config_capacity) = match unsafe { load_config(config, config_len) } {
            Ok(c) => c,
            Err(e) => return e,
        };
        // SAFETY: the caller's promise about `options`.
        let o = match unsafe { load_options(options) } {
            Ok(o) => o,
            Err(e) => return e,
        };
        let wanted = [Some(o.capacity).filter(|&c| c != 0), config_capacity];
        if wanted.iter().flatten().any(|&c| c != cells as u64) {
            return asrl_result::TableSize;
        }
        let seed = match o.seed_or_os() {
            Ok(s) => s,
            Err(e) => return e,
        };
        let table = Table::Caller(CallerTable {
            cells: table.cast::<Cell>().cast_const(),
            len: cells,
        });
        let limiter = make(config, table, seed, &o);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_out(limiter_out, Box::into_raw(limiter)) };
        asrl_result::Ok
    }
}

/// Frees a limiter made by `asrl_limiter_new`, `asrl_limiter_new_in` or
/// `asrl_limiter_open_shared`: its own table is freed, a shared segment is unmapped (the
/// segment and its counts stay for the other processes), caller memory is left as it is.
/// NULL does nothing.
///
/// # Safety
///
/// `limiter` must be NULL or a limiter from this library not yet freed, with no call
/// on it running or to come.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_free(limiter: *mut asrl_limiter) {
    ffi_panic_boundary! {
        if !limiter.is_null() {
            // SAFETY: the caller promises it came from `Box::into_raw` in a constructor
            // and is freed once.
            drop(unsafe { Box::from_raw(limiter) });
        }
    }
}

/// The bytes of caller memory a table of `capacity` cells needs
/// (`capacity * ASRL_CELL_SIZE`), to be aligned to `ASRL_TABLE_ALIGN`; 0 when
/// `capacity` is 0 or above 2^32 (or the size does not fit a `size_t`).
#[no_mangle]
pub extern "C" fn asrl_table_bytes(capacity: u64) -> usize {
    ffi_panic_boundary! {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return 0;
        }
        usize::try_from(capacity)
            .ok()
            .and_then(|c| c.checked_mul(ASRL_CELL_SIZE))
            .filter(|&b| b <= isize::MAX as usize)
            .unwrap_or(0)
    }
}

/// Why a config text is refused.
enum ConfigProblem {
    /// Not UTF-8 from this byte.
    NotUtf8(usize),
    /// The parser's error, naming the field.
    Json(asrl_core::json::JsonError),
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigProblem::NotUtf8(at) => write!(f, "config: not UTF-8 at byte {at}"),
            ConfigProblem::Json(e) => write!(f, "{e}"),
        }
    }
}

/// Why `bytes` is refused as a config, or `None` when it is accepted.
fn config_problem(bytes: &[u8]) -> Option<ConfigProblem> {
    match std::str::from_utf8(bytes) {
        Err(e) => Some(ConfigProblem::NotUtf8(e.valid_up_to())),
        Ok(text) => parse_config(text).err().map(ConfigProblem::Json),
    }
}

/// Why a config was refused, as `asrl_config_error` words it (empty when accepted).
///
/// # Safety
///
/// `config` must be NULL or `config_len` readable bytes.
pub(crate) unsafe fn config_error_text(config: *const c_char, config_len: usize) -> String {
    // SAFETY: forwarded from the caller.
    match unsafe { crate::ffi::in_bytes(config.cast(), config_len) } {
        Ok(bytes) => config_problem(bytes).map(|p| p.to_string()).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Writes why a JSON config is refused, naming the field (for example
/// `policies.alpha[0].limit: must be from 1 to ...`); a config that would be accepted
/// writes nothing (`*written_out == 0`). Text written as `asrl_result_message` does.
///
/// # Errors
///
/// `ASRL_RESULT_INSUFFICIENT_SIZE`, `ASRL_RESULT_NULL_PARAMETER`.
///
/// # Safety
///
/// `config` must be NULL or `config_len` readable bytes; `buf` NULL or `len` writable
/// bytes; `written_out` a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn asrl_config_error(
    config: *const c_char,
    config_len: usize,
    buf: *mut c_char,
    len: usize,
    written_out: *mut usize,
) -> asrl_result {
    ffi_panic_boundary! {
        if written_out.is_null() || (config.is_null() && config_len != 0) {
            return asrl_result::NullParameter;
        }
        // SAFETY: the caller promises `buf` is NULL or `len` writable bytes.
        let buf = match unsafe { out_buf(buf, len) } {
            Ok(b) => b,
            Err(e) => return e,
        };
        let (rc, n) = if config.is_null() {
            (asrl_result::Ok, 0)
        } else {
            // SAFETY: the caller promises `config_len` readable bytes.
            let bytes = match unsafe { crate::ffi::in_bytes(config.cast(), config_len) } {
                Ok(b) => b,
                Err(e) => return e,
            };
            match config_problem(bytes) {
                None => (asrl_result::Ok, 0),
                Some(p) => write_text(buf, |w| write!(w, "{p}")),
            }
        };
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_out(written_out, n) };
        rc
    }
}

/// The number of cells in the limiter's table; 0 for NULL.
///
/// # Safety
///
/// `limiter` must be NULL or a live limiter.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_capacity(limiter: *const asrl_limiter) -> usize {
    ffi_panic_boundary! {
        // SAFETY: the caller promises NULL or a live limiter.
        match unsafe { limiter.as_ref() } {
            Some(l) => l.inner.cells().len(),
            None => 0,
        }
    }
}

/// The number of policies in the limiter's config (indices `0..count`); 0 for NULL.
///
/// # Safety
///
/// `limiter` must be NULL or a live limiter.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_policy_count(limiter: *const asrl_limiter) -> usize {
    ffi_panic_boundary! {
        // SAFETY: the caller promises NULL or a live limiter.
        match unsafe { limiter.as_ref() } {
            Some(l) => l.inner.config().policies().len(),
            None => 0,
        }
    }
}

/// The name of policy `index` (as `asrl_decision.policy` holds it): on success
/// `*name_out` points to the name's bytes (printable ASCII, not NUL-terminated, owned by
/// the limiter and valid until it is freed) and `*name_len_out` is their count.
///
/// # Errors
///
/// `ASRL_RESULT_INVALID_PARAMETER` for an index not below `asrl_limiter_policy_count`;
/// `ASRL_RESULT_NULL_PARAMETER`.
///
/// # Safety
///
/// `limiter` must be NULL or a live limiter; the out pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_policy_name(
    limiter: *const asrl_limiter,
    index: u32,
    name_out: *mut *const c_char,
    name_len_out: *mut usize,
) -> asrl_result {
    ffi_panic_boundary! {
        if name_out.is_null() || name_len_out.is_null() {
            return asrl_result::NullParameter;
        }
        // SAFETY: the caller promises NULL or a live limiter.
        let Some(l) = (unsafe { limiter.as_ref() }) else {
            return asrl_result::NullParameter;
        };
        let Some(policy) = l.inner.config().policies().get(index as usize) else {
            return asrl_result::InvalidParameter;
        };
        let name = policy.name();
        // SAFETY: both checked non-NULL; the caller promises they are writable.
        unsafe {
            write_out(name_out, name.as_ptr().cast::<c_char>());
            write_out(name_len_out, name.len());
        }
        asrl_result::Ok
    }
}

/// The index of the policy named `name` (`name_len` bytes, not NUL-terminated).
///
/// # Errors
///
/// `ASRL_RESULT_UNKNOWN_POLICY`, `ASRL_RESULT_INVALID_UTF8`, `ASRL_RESULT_NULL_PARAMETER`.
///
/// # Safety
///
/// `limiter` must be NULL or a live limiter; `name` NULL or `name_len` readable bytes;
/// `index_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_policy_index(
    limiter: *const asrl_limiter,
    name: *const c_char,
    name_len: usize,
    index_out: *mut u32,
) -> asrl_result {
    ffi_panic_boundary! {
        if index_out.is_null() {
            return asrl_result::NullParameter;
        }
        // SAFETY: the caller promises NULL or a live limiter.
        let Some(l) = (unsafe { limiter.as_ref() }) else {
            return asrl_result::NullParameter;
        };
        // SAFETY: the caller promises `name_len` readable bytes.
        let name = match unsafe { in_str(name, name_len) } {
            Ok(n) => n,
            Err(e) => return e,
        };
        match l.inner.config().policy_id(name) {
            // SAFETY: checked non-NULL; the caller promises it is writable.
            Some(id) => unsafe { write_out(index_out, id.index() as u32) },
            None => return asrl_result::UnknownPolicy,
        }
        asrl_result::Ok
    }
}

/// Copies the limiter's full-table counters into `*stats_out`.
///
/// # Errors
///
/// `ASRL_RESULT_NULL_PARAMETER`.
///
/// # Safety
///
/// `limiter` must be NULL or a live limiter; `stats_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_stats(
    limiter: *const asrl_limiter,
    stats_out: *mut asrl_stats,
) -> asrl_result {
    ffi_panic_boundary! {
        // SAFETY: the caller promises NULL or a live limiter.
        let Some(l) = (unsafe { limiter.as_ref() }) else {
            return asrl_result::NullParameter;
        };
        if stats_out.is_null() {
            return asrl_result::NullParameter;
        }
        let s = l.inner.stats();
        let stats = asrl_stats {
            table_full_open: s.table_full_open,
            table_full_closed: s.table_full_closed,
        };
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_out(stats_out, stats) };
        asrl_result::Ok
    }
}
