//! `c_api`: the C binding's entry points (`bindings-c`) called as C calls them.
//!
//! The functions are declared here in an `extern "C"` block as `include/aisoule_ratelimit.h`
//! declares them (an `asrl_result` is a `uint32_t` to C), and linked from the binding's
//! own source (`c-binding/` builds `bindings-c/src/lib.rs` as an rlib). From the fuzzer's
//! bytes: configs (NULL, NULL with a length, arbitrary bytes including invalid UTF-8,
//! generated JSON), options (any mode, style, capacity, seed), tables in caller memory of
//! any size and alignment cut out of a valid buffer, keys / routes / policy names of any
//! bytes with pointers valid for their length or NULL with length 0 or not, costs and
//! clocks; then every writer into buffers of every kind of size with a guard region.
//!
//! Every call must return one of the statuses its documentation lists (the exact one
//! when only one applies), never `ASRL_RESULT_PANIC`; a failed call leaves its outputs
//! untouched; text writers write nothing past `len` (the guard keeps its pattern), report
//! the length a large buffer receives, and write all or nothing. Where the limiter has a
//! known seed, each decision and each text is also compared with the core's own answer
//! (a `Limiter` of the same config, seed, capacity and mode): the binding only converts.
#![no_main]

use std::ffi::{c_char, c_void};
use std::ptr;

use aisoule_ratelimit::json::{parse_config, MAX_CAPACITY};
use aisoule_ratelimit::{
    Cell, CheckError, Config, Decision, FullTableMode, HeaderStyle, Limiter, Now, Seed, Target,
};
use arbitrary::{Result, Unstructured};
use asrl_c::{asrl_decision, asrl_options, asrl_stats};
use libfuzzer_sys::fuzz_target;

// The statuses (the header's `asrl_result` numbers).
const OK: u32 = 0;
const PANIC: u32 = 1;
const NULL_PARAMETER: u32 = 2;
const INVALID_PARAMETER: u32 = 3;
const INVALID_UTF8: u32 = 4;
const INVALID_CONFIG: u32 = 5;
const INVALID_COST: u32 = 6;
const UNKNOWN_POLICY: u32 = 7;
const INSUFFICIENT_SIZE: u32 = 8;
const TABLE_MISALIGNED: u32 = 11;
const TABLE_SIZE: u32 = 12;
const LAST_RESULT: u32 = 19;

const GUARD: usize = 32;
const PATTERN: u8 = 0xA5;
/// Larger than any text of this library (headers of four rules with 64-byte names).
const LARGE: usize = 8192;
/// Table capacities this target has `asrl_limiter_new` allocate at most (libFuzzer's
/// malloc limit): `ASRL_DEFAULT_CAPACITY`.
const MAX_CELLS: u64 = 1 << 16;
/// Cells of the caller memory `asrl_limiter_new_in` gets a table from (at most 65 cells,
/// at an offset of up to 15 bytes).
const MEMORY_CELLS: usize = 68;
/// A length no buffer has: above `PTRDIFF_MAX` (the binding must refuse it unread).
const HUGE: usize = isize::MAX as usize + 1;

/// The opaque handle, as C sees it (`typedef struct asrl_limiter asrl_limiter;`).
#[repr(C)]
#[allow(non_camel_case_types)]
struct asrl_limiter {
    _opaque: [u8; 0],
}

extern "C" {
    fn asrl_limiter_new(
        config: *const c_char,
        config_len: usize,
        options: *const asrl_options,
        limiter_out: *mut *mut asrl_limiter,
    ) -> u32;
    fn asrl_limiter_new_in(
        config: *const c_char,
        config_len: usize,
        options: *const asrl_options,
        table: *mut c_void,
        table_bytes: usize,
        limiter_out: *mut *mut asrl_limiter,
    ) -> u32;
    fn asrl_limiter_free(limiter: *mut asrl_limiter);
    fn asrl_limiter_capacity(limiter: *const asrl_limiter) -> usize;
    fn asrl_limiter_policy_count(limiter: *const asrl_limiter) -> usize;
    fn asrl_limiter_policy_index(
        limiter: *const asrl_limiter,
        name: *const c_char,
        name_len: usize,
        index_out: *mut u32,
    ) -> u32;
    fn asrl_limiter_stats(limiter: *const asrl_limiter, stats_out: *mut asrl_stats) -> u32;
    fn asrl_config_error(
        config: *const c_char,
        config_len: usize,
        buf: *mut c_char,
        len: usize,
        written_out: *mut usize,
    ) -> u32;
    fn asrl_result_message(result: u32, buf: *mut c_char, len: usize, written_out: *mut usize) -> u32;
    fn asrl_check(
        limiter: *const asrl_limiter,
        key: *const u8,
        key_len: usize,
        route: *const c_char,
        route_len: usize,
        cost: u64,
        mono_ns: u64,
        wall_ns: u64,
        decision_out: *mut asrl_decision,
    ) -> u32;
    fn asrl_check_policy(
        limiter: *const asrl_limiter,
        key: *const u8,
        key_len: usize,
        policy: *const c_char,
        policy_len: usize,
        cost: u64,
        mono_ns: u64,
        wall_ns: u64,
        decision_out: *mut asrl_decision,
    ) -> u32;
    fn asrl_peek(
        limiter: *const asrl_limiter,
        key: *const u8,
        key_len: usize,
        route: *const c_char,
        route_len: usize,
        cost: u64,
        mono_ns: u64,
        wall_ns: u64,
        decision_out: *mut asrl_decision,
    ) -> u32;
    fn asrl_peek_policy(
        limiter: *const asrl_limiter,
        key: *const u8,
        key_len: usize,
        policy: *const c_char,
        policy_len: usize,
        cost: u64,
        mono_ns: u64,
        wall_ns: u64,
        decision_out: *mut asrl_decision,
    ) -> u32;
    fn asrl_decision_write_headers(
        limiter: *const asrl_limiter,
        decision: *const asrl_decision,
        buf: *mut c_char,
        len: usize,
        needed_out: *mut usize,
    ) -> u32;
    fn asrl_decision_write_body(
        limiter: *const asrl_limiter,
        decision: *const asrl_decision,
        buf: *mut c_char,
        len: usize,
        needed_out: *mut usize,
    ) -> u32;
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

/// `status` is documented and, when `allowed` is not empty, one of `allowed`.
#[track_caller]
fn expect_one_of(status: u32, allowed: &[u32], what: &str) {
    assert!(status <= LAST_RESULT, "{what}: undocumented status {status}");
    assert_ne!(status, PANIC, "{what}: a panic was caught inside the library");
    assert!(
        allowed.contains(&status),
        "{what}: status {status}, expected one of {allowed:?}"
    );
}

/// An input of `len` bytes as C passes it: a pointer valid for `len` bytes, or NULL
/// (with that length or not), or a length above `PTRDIFF_MAX` the binding must refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ptr {
    Valid,
    Null,
    NullWithLen(usize),
    Huge,
}

struct Input {
    bytes: Vec<u8>,
    how: Ptr,
}

impl Input {
    fn gen(u: &mut Unstructured<'_>, bytes: Vec<u8>) -> Result<Input> {
        let how = match u.int_in_range(0..=15u8)? {
            0 => Ptr::Null,
            1 => Ptr::NullWithLen(u.int_in_range(1..=usize::MAX)?),
            2 => Ptr::Huge,
            _ => Ptr::Valid,
        };
        Ok(Input { bytes, how })
    }
    fn ptr(&self) -> *const u8 {
        match self.how {
            Ptr::Valid | Ptr::Huge => self.bytes.as_ptr(),
            Ptr::Null | Ptr::NullWithLen(_) => ptr::null(),
        }
    }
    fn len(&self) -> usize {
        match self.how {
            Ptr::Valid => self.bytes.len(),
            Ptr::Null => 0,
            Ptr::NullWithLen(n) => n,
            Ptr::Huge => HUGE,
        }
    }
    /// The pointer-and-length error the binding must give, if any.
    fn error(&self) -> Option<u32> {
        match self.how {
            Ptr::Valid | Ptr::Null => None,
            Ptr::NullWithLen(_) => Some(NULL_PARAMETER),
            Ptr::Huge => Some(INVALID_PARAMETER),
        }
    }
    /// The bytes the binding sees when it reads them.
    fn seen(&self) -> &[u8] {
        match self.how {
            Ptr::Valid => &self.bytes,
            _ => &[],
        }
    }
}

/// A JSON config built from the fuzzer's bytes: mostly valid, sometimes a number or a
/// name out of range.
fn gen_config_json(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let npol = u.int_in_range(1..=3usize)?;
    let mut s = String::from("{\"policies\":{");
    for p in 0..npol {
        if p > 0 {
            s.push(',');
        }
        s.push_str(&format!("\"p{p}\":["));
        for r in 0..u.int_in_range(1..=4usize)? {
            if r > 0 {
                s.push(',');
            }
            let limit = u.int_in_range(0..=12u64)?;
            let period = *u.choose(&[1u64, 7, 1000, 60_000, 3_600_000, 0])?;
            if u.arbitrary::<bool>()? {
                s.push_str(&format!(
                    "{{\"algorithm\":\"window\",\"limit\":{limit},\"period_ms\":{period}}}"
                ));
            } else {
                let burst = u.int_in_range(1..=12u64)?;
                s.push_str(&format!(
                    "{{\"algorithm\":\"gcra\",\"limit\":{limit},\"period_ms\":{period},\"burst\":{burst}}}"
                ));
            }
        }
        s.push(']');
    }
    s.push('}');
    if u.arbitrary::<bool>()? {
        s.push_str(",\"routes\":[");
        for r in 0..u.int_in_range(0..=3usize)? {
            if r > 0 {
                s.push(',');
            }
            let prefix = *u.choose(&["/v1/a", "/v1", "/v1/b/", "/"])?;
            let policy = u.int_in_range(0..=npol)?;
            s.push_str(&format!("{{\"prefix\":\"{prefix}\",\"policy\":\"p{policy}\"}}"));
        }
        s.push(']');
    }
    if u.arbitrary::<bool>()? {
        s.push_str(&format!(",\"default_policy\":\"p{}\"", u.int_in_range(0..=npol)?));
    }
    if u.arbitrary::<bool>()? {
        let c: u64 = match u.int_in_range(0..=3u8)? {
            0 => u.int_in_range(1..=64)?,
            1 => 0,
            2 => MAX_CAPACITY + u.int_in_range(0..=1)?,
            _ => u.arbitrary()?,
        };
        s.push_str(&format!(",\"capacity\":{c}"));
    }
    s.push('}');
    Ok(s.into_bytes())
}

/// What the binding makes of a config input: the config and its capacity, or the error.
fn expected_config(input: &Input) -> std::result::Result<(Config, Option<u64>), u32> {
    if input.how == Ptr::Null {
        return Ok((Config::documented(), None));
    }
    if let Some(e) = input.error() {
        return Err(e);
    }
    let text = std::str::from_utf8(&input.bytes).map_err(|_| INVALID_CONFIG)?;
    let parsed = parse_config(text).map_err(|_| INVALID_CONFIG)?;
    Ok((parsed.config, parsed.capacity))
}

/// Checks one text writer: `call(buf, len, needed_out)`. Returns the text (None when the
/// call must fail before writing, e.g. an invalid decision: then `fail` is its status).
fn check_writer(
    u: &mut Unstructured<'_>,
    what: &str,
    fail: Option<u32>,
    call: &dyn Fn(*mut c_char, usize, *mut usize) -> u32,
) -> Result<Option<Vec<u8>>> {
    let mut store = vec![PATTERN; LARGE + GUARD];
    let mut needed = usize::MAX - 7;
    // needed_out NULL.
    let rc = call(store.as_mut_ptr().cast(), LARGE, ptr::null_mut());
    expect_one_of(rc, &[NULL_PARAMETER], what);
    assert!(
        store.iter().all(|&b| b == PATTERN),
        "{what}: wrote with needed_out NULL"
    );

    let rc = call(store.as_mut_ptr().cast(), LARGE, &mut needed);
    if let Some(e) = fail {
        expect_one_of(rc, &[e], what);
        assert_eq!(needed, usize::MAX - 7, "{what}: failed call wrote needed_out");
        assert!(
            store.iter().all(|&b| b == PATTERN),
            "{what}: failed call wrote the buffer"
        );
        return Ok(None);
    }
    expect_one_of(rc, &[OK], what);
    let len = needed;
    assert!(len <= LARGE, "{what}: {len} bytes");
    let text = store[..len].to_vec();
    assert!(
        store[len..].iter().all(|&b| b == PATTERN),
        "{what}: wrote past its text"
    );

    // NULL with length 0: a size query. NULL with a length: refused.
    let mut n = usize::MAX - 7;
    let rc = call(ptr::null_mut(), 0, &mut n);
    expect_one_of(rc, &[if len == 0 { OK } else { INSUFFICIENT_SIZE }], what);
    assert_eq!(n, len, "{what}: size query");
    let mut n = usize::MAX - 7;
    let rc = call(ptr::null_mut(), u.int_in_range(1..=usize::MAX)?, &mut n);
    expect_one_of(rc, &[NULL_PARAMETER], what);
    assert_eq!(n, usize::MAX - 7, "{what}: NULL buffer wrote needed_out");

    // Buffers of fuzzed sizes, cut out of `store` with the guard after them.
    for _ in 0..u.int_in_range(1..=4u8)? {
        let size = match u.int_in_range(0..=3u8)? {
            0 => len,
            1 => len.saturating_sub(1),
            2 => len + 1,
            _ => u.int_in_range(0..=len + 8)?,
        };
        store.fill(PATTERN);
        let mut n = usize::MAX - 7;
        let rc = call(store.as_mut_ptr().cast(), size, &mut n);
        assert_eq!(n, len, "{what}: needed length into {size} bytes");
        if size >= len {
            expect_one_of(rc, &[OK], what);
            assert_eq!(&store[..len], &text[..], "{what}: text into {size} bytes");
            assert!(
                store[len..].iter().all(|&b| b == PATTERN),
                "{what}: wrote past the text or the buffer of {size}"
            );
        } else {
            expect_one_of(rc, &[INSUFFICIENT_SIZE], what);
            assert!(
                store.iter().all(|&b| b == PATTERN),
                "{what}: a buffer of {size} for {len} bytes was touched"
            );
        }
    }
    Ok(Some(text))
}

/// A decision as raw bytes: what a C caller may hand back (any `bool` byte, any index).
#[repr(C)]
#[derive(Clone, Copy)]
struct RawDecision {
    allowed: u8,
    table_full: u8,
    status: u16,
    policy: u32,
    binding_rule: u32,
    reserved: u32,
    figures: [u64; 6],
}
const _: () = assert!(std::mem::size_of::<RawDecision>() == std::mem::size_of::<asrl_decision>());
const _: () = assert!(std::mem::align_of::<RawDecision>() == std::mem::align_of::<asrl_decision>());

/// One limiter under test, and the core's own limiter of the same config when its seed is
/// known.
struct Made {
    limiter: *mut asrl_limiter,
    config: Config,
    style: HeaderStyle,
    twin: Option<Limiter<Vec<Cell>>>,
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    // asrl_limiter_free(NULL) does nothing.
    // SAFETY: NULL is documented to do nothing.
    unsafe { asrl_limiter_free(ptr::null_mut()) };

    // asrl_result_message, for any number.
    let code: u32 = if u.arbitrary::<bool>()? {
        u.int_in_range(0..=LAST_RESULT + 1)?
    } else {
        u.arbitrary()?
    };
    let text = check_writer(u, "asrl_result_message", None, &|buf, len, out| {
        // SAFETY: `buf` is NULL or `len` writable bytes of `store`; `out` NULL or a `usize`.
        unsafe { asrl_result_message(code, buf, len, out) }
    })?
    .expect("a message");
    assert!(!text.is_empty() && std::str::from_utf8(&text).is_ok());

    // The config.
    let config_bytes = match u.int_in_range(0..=3u8)? {
        0 => {
            let n = u.arbitrary_len::<u8>()?.min(512);
            u.bytes(n)?.to_vec()
        }
        1 => br#"{"policies":{"a":[{"algorithm":"window","limit":3,"period_ms":1000}]}}"#.to_vec(),
        _ => gen_config_json(u)?,
    };
    let config = Input::gen(u, config_bytes)?;
    let cfg_ptr = config.ptr().cast::<c_char>();
    let cfg_len = config.len();

    // asrl_config_error on the same text.
    let accepted = expected_config(&config);
    let err_text = check_writer(u, "asrl_config_error", config.error(), &|buf, len, out| {
        // SAFETY: `cfg_ptr` is NULL or valid for `cfg_len` bytes (or `cfg_len` is above
        // PTRDIFF_MAX, refused unread); `buf`/`out` as above.
        unsafe { asrl_config_error(cfg_ptr, cfg_len, buf, len, out) }
    })?;
    if let Some(t) = err_text {
        let t = String::from_utf8(t).expect("UTF-8 error text");
        assert_eq!(
            t.is_empty(),
            accepted.is_ok(),
            "config error {t:?} vs {accepted:?}"
        );
        if !t.is_empty() {
            assert!(t.contains(": "), "error text {t:?} is not `path: message`");
        }
    }

    // Options.
    let use_options = !u.ratio(1u8, 6)?;
    let mut opts = asrl_options {
        capacity: match u.int_in_range(0..=5u8)? {
            0 => 0,
            1 => MAX_CAPACITY + u.int_in_range(1..=1000)?,
            _ => u.int_in_range(1..=64)?,
        },
        full_table_mode: if u.ratio(1u8, 10)? {
            u.arbitrary()?
        } else {
            u.int_in_range(0..=1)?
        },
        header_style: if u.ratio(1u8, 10)? {
            u.arbitrary()?
        } else {
            u.int_in_range(0..=2)?
        },
        seed: if u.ratio(1u8, 10)? {
            [0, 0]
        } else {
            [u.arbitrary()?, u.arbitrary::<u64>()? | 1]
        },
    };
    if !use_options {
        opts = asrl_options::default();
    }
    let in_caller = u.arbitrary::<bool>()?;
    let mode = match opts.full_table_mode {
        0 => Some(FullTableMode::Open),
        1 => Some(FullTableMode::Closed),
        _ => None,
    };
    let style = match opts.header_style {
        0 => Some(HeaderStyle::XRateLimit),
        1 => Some(HeaderStyle::Ietf),
        2 => Some(HeaderStyle::Both),
        _ => None,
    };

    // Caller memory: a valid zeroed buffer, a table cut out of it at a fuzzed offset and size.
    let mut memory = vec![0u128; MEMORY_CELLS];
    let offset = if u.ratio(1u8, 8)? {
        u.int_in_range(1..=15usize)?
    } else {
        0
    };
    let table_bytes = match u.int_in_range(0..=5u8)? {
        0 => u.int_in_range(0..=64 * 16 + 17usize)?,
        1 => 0,
        _ => 16 * u.int_in_range(1..=64usize)?,
    };
    if in_caller && use_options && u.arbitrary::<bool>()? {
        // Mostly the capacity that matches the memory.
        opts.capacity = (table_bytes / 16) as u64;
    }
    let options_error =
        (mode.is_none() || style.is_none() || opts.capacity > MAX_CAPACITY).then_some(INVALID_PARAMETER);
    let opts_ptr: *const asrl_options = if use_options { &opts } else { ptr::null() };
    // SAFETY: `offset` + `table_bytes` stay within `memory` (15 + 64 * 16 + 17 bytes).
    let table = unsafe { memory.as_mut_ptr().cast::<u8>().add(offset) };
    let table_null = in_caller && u.ratio(1u8, 16)?;
    let out_null = u.ratio(1u8, 16)?;

    // The statuses that apply, and what a success makes.
    let mut errors: Vec<u32> = Vec::new();
    if out_null {
        errors.push(NULL_PARAMETER);
    }
    let (cfg, cfg_capacity) = match &accepted {
        Ok((c, cap)) => (Some(c.clone()), *cap),
        Err(e) => {
            errors.push(*e);
            (None, None)
        }
    };
    errors.extend(options_error);
    let capacity = if in_caller {
        if table_null {
            errors.push(NULL_PARAMETER);
        } else if offset % 16 != 0 {
            errors.push(TABLE_MISALIGNED);
        } else if table_bytes == 0 || table_bytes % 16 != 0 {
            errors.push(TABLE_SIZE);
        }
        let cells = (table_bytes / 16) as u64;
        let wanted = [Some(opts.capacity).filter(|&c| c != 0), cfg_capacity];
        if wanted.iter().flatten().any(|&c| c != cells) && errors.is_empty() {
            errors.push(TABLE_SIZE);
        }
        cells
    } else {
        let c = if opts.capacity != 0 {
            opts.capacity
        } else {
            cfg_capacity.unwrap_or(asrl_c::ASRL_DEFAULT_CAPACITY)
        };
        if errors.is_empty() && c > MAX_CELLS {
            // Would allocate more than this target allows: ask for a small table instead.
            return Ok(());
        }
        c
    };

    let sentinel = ptr::dangling_mut::<asrl_limiter>();
    let mut limiter: *mut asrl_limiter = sentinel;
    let out: *mut *mut asrl_limiter = if out_null { ptr::null_mut() } else { &mut limiter };
    let rc = if in_caller {
        let t: *mut c_void = if table_null { ptr::null_mut() } else { table.cast() };
        // SAFETY: config and options as above; `t` is NULL or `table_bytes` zeroed bytes of
        // `memory` (any alignment), which outlives the limiter (freed below); `out` NULL
        // or writable.
        unsafe { asrl_limiter_new_in(cfg_ptr, cfg_len, opts_ptr, t, table_bytes, out) }
    } else {
        // SAFETY: config and options as above; `out` NULL or writable.
        unsafe { asrl_limiter_new(cfg_ptr, cfg_len, opts_ptr, out) }
    };
    if !errors.is_empty() {
        expect_one_of(rc, &errors, "asrl_limiter_new");
        assert_eq!(limiter, sentinel, "a failed asrl_limiter_new wrote limiter_out");
        return Ok(());
    }
    expect_one_of(rc, &[OK], "asrl_limiter_new");
    assert_ne!(limiter, sentinel);
    let config_core = cfg.expect("accepted");
    let made = Made {
        limiter,
        style: style.unwrap(),
        twin: (opts.seed != [0, 0]).then(|| {
            let cells: Vec<Cell> = (0..capacity).map(|_| Cell::new()).collect();
            Limiter::with_full_table_mode(config_core.clone(), cells, Seed(opts.seed), mode.unwrap())
        }),
        config: config_core,
    };
    let result = drive(u, &made, capacity);
    // SAFETY: a live limiter from asrl_limiter_new(_in), freed once, no call running.
    unsafe { asrl_limiter_free(made.limiter) };
    drop(memory);
    result
}

fn drive(u: &mut Unstructured<'_>, made: &Made, capacity: u64) -> Result<()> {
    let l = made.limiter;
    // Below, `l` is a live limiter (freed by the caller after this returns) or NULL where
    // chosen; every pointer argument is NULL or valid for its length (or the length is
    // above PTRDIFF_MAX, which the binding refuses before reading); every out pointer is
    // NULL or writable.
    // SAFETY: a live limiter.
    let cells = unsafe { asrl_limiter_capacity(l) };
    assert_eq!(cells as u64, capacity);
    // SAFETY: NULL limiters are documented; out pointers NULL or to locals.
    assert_eq!(unsafe { asrl_limiter_capacity(ptr::null()) }, 0);
    let npol = made.config.policies().len();
    // SAFETY: a live limiter.
    assert_eq!(unsafe { asrl_limiter_policy_count(l) }, npol);
    let mut stats = asrl_stats::default();
    assert_eq!(
        // SAFETY: NULL limiters are documented; out pointers NULL or to locals.
        unsafe { asrl_limiter_stats(ptr::null(), &mut stats) },
        NULL_PARAMETER
    );
    // SAFETY: a live limiter; a NULL out pointer is documented (refused).
    assert_eq!(unsafe { asrl_limiter_stats(l, ptr::null_mut()) }, NULL_PARAMETER);

    let names: Vec<String> = made
        .config
        .policies()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    let mut now: u64 = u.arbitrary()?;
    let mut decisions: Vec<asrl_decision> = Vec::new();
    for _ in 0..u.int_in_range(0..=24u8)? {
        let key_bytes: Vec<u8> = match u.int_in_range(0..=3u8)? {
            0 => Vec::new(),
            1 => {
                let n = u.int_in_range(0..=40usize)?;
                u.bytes(n)?.to_vec()
            }
            _ => vec![u.int_in_range(b'a'..=b'd')?],
        };
        let key = Input::gen(u, key_bytes)?;
        let by_policy = u.arbitrary::<bool>()?;
        let target_bytes: Vec<u8> = match u.int_in_range(0..=3u8)? {
            0 => {
                let n = u.int_in_range(0..=70usize)?;
                u.bytes(n)?.to_vec()
            }
            _ if by_policy => u.choose(&names)?.clone().into_bytes(),
            _ => u
                .choose(&["/v1/a/1", "/v1", "/v1/b/x", "/", "", "/other"])?
                .as_bytes()
                .to_vec(),
        };
        let target = Input::gen(u, target_bytes)?;
        let cost: u64 = match u.int_in_range(0..=5u8)? {
            0 => 0,
            1 => u.arbitrary()?,
            2 => u.int_in_range(1..=13)?,
            _ => 1,
        };
        now = match u.int_in_range(0..=4u8)? {
            0 => u.arbitrary()?,
            1 => now.saturating_sub(u.int_in_range(0..=2_000_000_000)?),
            _ => now.saturating_add(u.int_in_range(0..=2_000_000_000)?),
        };
        let wall: u64 = u.arbitrary()?;
        let consume = !u.ratio(1u8, 4)?;
        let lim: *const asrl_limiter = if u.ratio(1u8, 32)? { ptr::null() } else { l };
        let out_null = u.ratio(1u8, 32)?;

        let mut errors: Vec<u32> = Vec::new();
        if out_null || lim.is_null() {
            errors.push(NULL_PARAMETER);
        }
        errors.extend(key.error());
        errors.extend(target.error());
        let name = std::str::from_utf8(target.seen());
        if target.error().is_none() && name.is_err() {
            errors.push(INVALID_UTF8);
        }
        let sentinel = asrl_decision {
            policy: 0xDEAD_BEEF,
            limit: 0x5A5A,
            ..asrl_decision::default()
        };
        let mut d = sentinel;
        let out: *mut asrl_decision = if out_null { ptr::null_mut() } else { &mut d };
        let (kp, kl) = (key.ptr(), key.len());
        let (tp, tl) = (target.ptr().cast::<c_char>(), target.len());
        // SAFETY: a live limiter (or NULL where chosen); pointers valid for their
        // lengths, NULL, or with a length above PTRDIFF_MAX refused unread; out to locals.
        let rc = unsafe {
            match (by_policy, consume) {
                (false, true) => asrl_check(lim, kp, kl, tp, tl, cost, now, wall, out),
                (false, false) => asrl_peek(lim, kp, kl, tp, tl, cost, now, wall, out),
                (true, true) => asrl_check_policy(lim, kp, kl, tp, tl, cost, now, wall, out),
                (true, false) => asrl_peek_policy(lim, kp, kl, tp, tl, cost, now, wall, out),
            }
        };
        let what = if by_policy {
            "asrl_check_policy"
        } else {
            "asrl_check"
        };
        if !errors.is_empty() {
            expect_one_of(rc, &errors, what);
            assert_eq!(d, sentinel, "{what}: a failed call wrote decision_out");
            continue;
        }
        // No pointer error: the core decides (and the twin with it).
        let name = name.unwrap();
        let core_target = if by_policy {
            made.config.policy_id(name).map(Target::Policy)
        } else {
            Some(Target::Route(name))
        };
        let Some(core_target) = core_target else {
            expect_one_of(rc, &[UNKNOWN_POLICY], what);
            assert_eq!(d, sentinel, "{what}: a failed call wrote decision_out");
            continue;
        };
        let clock = Now {
            mono_ns: now,
            wall_ns: wall,
        };
        let want: Option<std::result::Result<Decision, CheckError>> = made.twin.as_ref().map(|t| {
            if consume {
                t.check(key.seen(), core_target, cost, clock)
            } else {
                t.peek(key.seen(), core_target, cost, clock)
            }
        });
        match rc {
            OK => {
                assert_ne!(d, sentinel);
                assert_eq!(d.status, if d.allowed { 200 } else { 429 });
                assert!((d.policy as usize) < npol);
                if let Some(w) = want {
                    let w = w.expect("the core decided too");
                    assert_eq!(
                        (
                            d.allowed,
                            d.table_full,
                            d.limit,
                            d.remaining,
                            d.reset,
                            d.reset_after_ns
                        ),
                        (
                            w.allowed,
                            w.table_full,
                            w.limit,
                            w.remaining,
                            w.reset,
                            w.reset_after_ns
                        ),
                        "{what}: decision differs from the core's"
                    );
                    assert_eq!(
                        (
                            d.retry_after_seconds,
                            d.retry_after_ns,
                            d.policy as usize,
                            d.binding_rule
                        ),
                        (
                            w.retry_after_seconds,
                            w.retry_after_ns,
                            w.policy.index(),
                            u32::from(w.binding_rule)
                        )
                    );
                    check_text(u, made, &d, Some(&w))?;
                } else {
                    check_text(u, made, &d, None)?;
                }
                decisions.push(d);
            }
            INVALID_COST => {
                assert_eq!(d, sentinel, "{what}: a failed call wrote decision_out");
                if let Some(w) = want {
                    assert_eq!(w, Err(CheckError::InvalidCost));
                }
            }
            other => expect_one_of(other, &[OK, INVALID_COST], what),
        }
    }

    // Decisions as a C caller may hand them back: any bytes, any index.
    for _ in 0..u.int_in_range(0..=3u8)? {
        let mut raw = RawDecision {
            allowed: u.arbitrary()?,
            table_full: u.arbitrary()?,
            status: u.arbitrary()?,
            policy: if u.arbitrary::<bool>()? {
                u.int_in_range(0..=npol as u32)?
            } else {
                u.arbitrary()?
            },
            binding_rule: if u.arbitrary::<bool>()? {
                u.int_in_range(0..=4)?
            } else {
                u.arbitrary()?
            },
            reserved: u.arbitrary()?,
            figures: u.arbitrary()?,
        };
        if let Some(d) = decisions.last() {
            if u.arbitrary::<bool>()? {
                raw.policy = d.policy;
                raw.binding_rule = d.binding_rule;
            }
        }
        let policy = made.config.policies().get(raw.policy as usize);
        let valid = policy.is_some_and(|p| (raw.binding_rule as usize) < p.rules().len());
        let fail = (!valid).then_some(INVALID_PARAMETER);
        let dp = (&raw as *const RawDecision).cast::<asrl_decision>();
        for body in [false, true] {
            let what = if body {
                "asrl_decision_write_body (raw)"
            } else {
                "asrl_decision_write_headers (raw)"
            };
            // SAFETY: a live limiter; `dp` points to a readable decision-sized struct of
            // plain integers (the binding reads it as such); `buf` NULL or `len` writable.
            check_writer(u, what, fail, &|buf, len, out| unsafe {
                if body {
                    asrl_decision_write_body(l, dp, buf, len, out)
                } else {
                    asrl_decision_write_headers(l, dp, buf, len, out)
                }
            })?;
        }
    }

    // A NULL limiter or decision.
    let mut n = 7usize;
    let d = decisions.last().copied().unwrap_or_default();
    assert_eq!(
        // SAFETY: NULL limiters are documented; out pointers NULL or to locals.
        unsafe { asrl_decision_write_headers(ptr::null(), &d, ptr::null_mut(), 0, &mut n) },
        NULL_PARAMETER
    );
    assert_eq!(
        // SAFETY: a live limiter; NULL where documented; out pointers to locals.
        unsafe { asrl_decision_write_body(l, ptr::null(), ptr::null_mut(), 0, &mut n) },
        NULL_PARAMETER
    );
    assert_eq!(n, 7);

    // Policy names back to indices, and arbitrary names.
    for (i, name) in names.iter().enumerate() {
        let mut idx = u32::MAX;
        // SAFETY: a live limiter (or NULL where chosen); pointers valid for their
        // lengths, NULL, or with a length above PTRDIFF_MAX refused unread; out to locals.
        let rc = unsafe { asrl_limiter_policy_index(l, name.as_ptr().cast(), name.len(), &mut idx) };
        expect_one_of(rc, &[OK], "asrl_limiter_policy_index");
        assert_eq!(idx as usize, i);
    }
    let n = u.int_in_range(0..=70usize)?;
    let other_bytes = u.bytes(n)?.to_vec();
    let other = Input::gen(u, other_bytes)?;
    let mut idx = u32::MAX;
    // SAFETY: a live limiter (or NULL where chosen); pointers valid for their
    // lengths, NULL, or with a length above PTRDIFF_MAX refused unread; out to locals.
    let rc = unsafe { asrl_limiter_policy_index(l, other.ptr().cast(), other.len(), &mut idx) };
    let want = match (other.error(), std::str::from_utf8(other.seen())) {
        (Some(e), _) => e,
        (None, Err(_)) => INVALID_UTF8,
        (None, Ok(s)) => made.config.policy_id(s).map_or(UNKNOWN_POLICY, |_| OK),
    };
    expect_one_of(rc, &[want], "asrl_limiter_policy_index");
    if rc != OK {
        assert_eq!(
            idx,
            u32::MAX,
            "a failed asrl_limiter_policy_index wrote index_out"
        );
    }

    // SAFETY: a live limiter (or NULL where chosen); pointers valid for their
    // lengths, NULL, or with a length above PTRDIFF_MAX refused unread; out to locals.
    let rc = unsafe { asrl_limiter_stats(l, &mut stats) };
    expect_one_of(rc, &[OK], "asrl_limiter_stats");
    if let Some(t) = &made.twin {
        let s = t.stats();
        assert_eq!(
            (stats.table_full_open, stats.table_full_closed),
            (s.table_full_open, s.table_full_closed)
        );
    }
    Ok(())
}

/// The headers and body of a decision the limiter gave: every buffer size, and the same
/// text as the core writes for the twin's decision.
fn check_text(
    u: &mut Unstructured<'_>,
    made: &Made,
    d: &asrl_decision,
    want: Option<&Decision>,
) -> Result<()> {
    let l = made.limiter;
    let headers = check_writer(u, "asrl_decision_write_headers", None, &|buf, len, out| {
        // SAFETY: a live limiter, a decision it gave, `buf` NULL or `len` writable bytes.
        unsafe { asrl_decision_write_headers(l, d, buf, len, out) }
    })?
    .unwrap();
    let body = check_writer(u, "asrl_decision_write_body", None, &|buf, len, out| {
        // SAFETY: as above.
        unsafe { asrl_decision_write_body(l, d, buf, len, out) }
    })?
    .unwrap();
    assert_eq!(body.is_empty(), d.allowed, "a body iff denied");
    if let Some(w) = want {
        let policy = made.config.policy(w.policy);
        let mut h = String::new();
        w.write_headers(policy, made.style, &mut h).unwrap();
        assert_eq!(headers, h.into_bytes(), "headers differ from the core's");
        let mut b = String::new();
        w.write_body(&mut b).unwrap();
        assert_eq!(body, b.into_bytes(), "body differs from the core's");
    }
    Ok(())
}
