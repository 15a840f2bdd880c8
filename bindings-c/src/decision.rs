//! Checking requests and writing the answer: `asrl_check`, `asrl_peek`, the writers.

use std::ffi::c_char;
use std::mem::offset_of;

use asrl_core::{CheckError, Decision, Now, Target};

use crate::ffi::{in_bytes, in_str, out_buf, write_out, write_text};
use crate::limiter::asrl_limiter;
use crate::panic::ffi_panic_boundary;
use crate::result::asrl_result;

/// The answer to one request: plain data, the caller's to keep, copy or inspect.
/// `asrl_decision_write_headers` and `asrl_decision_write_body` turn it into text.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct asrl_decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// Whether the table had no cell for the key, so the full-table mode answered.
    pub table_full: bool,
    /// The HTTP status: 200 when allowed, 429 when denied.
    pub status: u16,
    /// The index of the policy that decided (`asrl_limiter_policy_name` names it).
    pub policy: u32,
    /// The index of the binding rule in the policy (the one the headers describe).
    pub binding_rule: u32,
    /// Padding, always 0 (keeps the layout explicit).
    pub reserved: u32,
    /// `X-RateLimit-Limit`: the binding rule's limit.
    pub limit: u64,
    /// `X-RateLimit-Remaining`: the binding rule's remaining requests.
    pub remaining: u64,
    /// `X-RateLimit-Reset`: Unix epoch seconds.
    pub reset: u64,
    /// The binding rule's reset, in nanoseconds from now.
    pub reset_after_ns: u64,
    /// `Retry-After` in seconds when denied (at least 1); 0 when allowed.
    pub retry_after_seconds: u64,
    /// The largest retry of the denying rules in nanoseconds; 0 when allowed.
    pub retry_after_ns: u64,
}

/// `asrl_decision` as C may have filled it: the same layout with the `bool`s as bytes,
/// so a decision the caller built or changed is read without undefined behaviour.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawDecision {
    allowed: u8,
    table_full: u8,
    status: u16,
    policy: u32,
    binding_rule: u32,
    reserved: u32,
    limit: u64,
    remaining: u64,
    reset: u64,
    reset_after_ns: u64,
    retry_after_seconds: u64,
    retry_after_ns: u64,
}

const _: () = {
    assert!(std::mem::size_of::<RawDecision>() == std::mem::size_of::<asrl_decision>());
    assert!(std::mem::align_of::<RawDecision>() == std::mem::align_of::<asrl_decision>());
    assert!(offset_of!(RawDecision, table_full) == offset_of!(asrl_decision, table_full));
    assert!(offset_of!(RawDecision, status) == offset_of!(asrl_decision, status));
    assert!(offset_of!(RawDecision, policy) == offset_of!(asrl_decision, policy));
    assert!(offset_of!(RawDecision, binding_rule) == offset_of!(asrl_decision, binding_rule));
    assert!(offset_of!(RawDecision, limit) == offset_of!(asrl_decision, limit));
    assert!(offset_of!(RawDecision, retry_after_ns) == offset_of!(asrl_decision, retry_after_ns));
};

impl asrl_decision {
    fn from_core(d: &Decision) -> asrl_decision {
        // The core has just stored every field one by one; read together (the optimiser
        // merges neighbours into one wider load, two u64 into one 16-byte copy) they
        // cannot be forwarded from those stores and the load waits for them to reach
        // the cache, about 3 ns a check for each such pair. Volatile reads keep each
        // read its own width.
        let allowed = read_field(&d.allowed);
        let table_full = read_field(&d.table_full);
        let policy = read_field(&d.policy);
        let binding_rule = read_field(&d.binding_rule);
        asrl_decision {
            allowed,
            table_full,
            status: d.status(),
            policy: policy.index() as u32,
            binding_rule: u32::from(binding_rule),
            reserved: 0,
            limit: read_field(&d.limit),
            remaining: read_field(&d.remaining),
            reset: read_field(&d.reset),
            reset_after_ns: read_field(&d.reset_after_ns),
            retry_after_seconds: read_field(&d.retry_after_seconds),
            retry_after_ns: read_field(&d.retry_after_ns),
        }
    }
}

/// One field of a live value, read at its own width (see [`asrl_decision::from_core`]).
fn read_field<T: Copy>(field: &T) -> T {
    // SAFETY: a reference is valid, aligned and initialised for reads of `T`.
    unsafe { std::ptr::read_volatile(field) }
}

/// The core decision back from a C one, checked against `limiter`'s config.
///
/// # Safety
///
/// `decision` must be non-NULL and point to a readable `asrl_decision`.
unsafe fn to_core(limiter: &asrl_limiter, decision: *const asrl_decision) -> Result<Decision, asrl_result> {
    // SAFETY: the caller promises a readable `asrl_decision`; `RawDecision` has its
    // layout (checked above) with every bit pattern valid.
    let raw = unsafe { decision.cast::<RawDecision>().read() };
    let policy = limiter
        .policy_id(raw.policy as usize)
        .ok_or(asrl_result::InvalidParameter)?;
    let rules = limiter.inner.policy(policy).rules().len();
    let binding_rule = u8::try_from(raw.binding_rule)
        .ok()
        .filter(|&r| usize::from(r) < rules)
        .ok_or(asrl_result::InvalidParameter)?;
    Ok(Decision {
        allowed: raw.allowed != 0,
        limit: raw.limit,
        remaining: raw.remaining,
        reset: raw.reset,
        reset_after_ns: raw.reset_after_ns,
        retry_after_seconds: raw.retry_after_seconds,
        retry_after_ns: raw.retry_after_ns,
        policy,
        binding_rule,
        table_full: raw.table_full != 0,
    })
}

/// What a check is against, still as C bytes.
enum CTarget {
    Route,
    Policy,
}

/// The shared body of the four check functions.
///
/// # Safety
///
/// As `asrl_check`.
// Inlined into each entry point: called, it took its own copy of the entry's stack
// arguments, read two at a time (16 bytes) right after the C caller stored them one at a
// time, which stalls on store-to-load forwarding (about 3 ns a check).
#[allow(clippy::too_many_arguments, reason = "mirrors the C signature")]
#[inline(always)]
unsafe fn run(
    limiter: *const asrl_limiter,
    key: *const u8,
    key_len: usize,
    target: *const c_char,
    target_len: usize,
    kind: CTarget,
    cost: u64,
    now: Now,
    consume: bool,
    decision_out: *mut asrl_decision,
) -> asrl_result {
    if decision_out.is_null() {
        return asrl_result::NullParameter;
    }
    // SAFETY: the caller promises NULL or a live limiter.
    let Some(l) = (unsafe { limiter.as_ref() }) else {
        return asrl_result::NullParameter;
    };
    // SAFETY: the caller promises `key_len` readable bytes.
    let key = match unsafe { in_bytes(key, key_len) } {
        Ok(k) => k,
        Err(e) => return e,
    };
    // SAFETY: the caller promises `target_len` readable bytes.
    let name = match unsafe { in_str(target, target_len) } {
        Ok(t) => t,
        Err(e) => return e,
    };
    let target = match kind {
        CTarget::Route => Target::Route(name),
        CTarget::Policy => match l.inner.config().policy_id(name) {
            Some(id) => Target::Policy(id),
            None => return asrl_result::UnknownPolicy,
        },
    };
    let answer = if consume {
        l.inner.check(key, target, cost, now)
    } else {
        l.inner.peek(key, target, cost, now)
    };
    match answer {
        Ok(d) => {
            // SAFETY: checked non-NULL; the caller promises it is writable.
            unsafe { write_out(decision_out, asrl_decision::from_core(&d)) };
            asrl_result::Ok
        }
        Err(CheckError::InvalidCost) => asrl_result::InvalidCost,
        Err(CheckError::UnknownPolicy) => asrl_result::UnknownPolicy,
        Err(_) => asrl_result::InvalidParameter,
    }
}

/// Decides a request and counts it if admitted.
///
/// `key`/`key_len`: the API key, any bytes (the empty key included; `key` may be NULL
/// when `key_len` is 0); it is hashed, never stored. `route`/`route_len`: the request
/// path, UTF-8, not NUL-terminated (`/v1/messages/42?x=1`), looked up in the config's
/// routes. `cost`: from 1 to the capacity of every rule of the policy (1 for a plain
/// request). `mono_ns`: a monotonic clock in nanoseconds (`CLOCK_MONOTONIC`), the only
/// clock the arithmetic uses; `wall_ns`: Unix-epoch nanoseconds (`CLOCK_REALTIME`),
/// only used for `X-RateLimit-Reset`. Allocates nothing; thread-safe.
///
/// On success `*decision_out` holds the decision; on failure nothing was counted and
/// `*decision_out` was not written.
///
/// # Errors
///
/// `ASRL_RESULT_INVALID_COST`, `ASRL_RESULT_INVALID_UTF8`, `ASRL_RESULT_NULL_PARAMETER`,
/// `ASRL_RESULT_INVALID_PARAMETER` (a length above `PTRDIFF_MAX`).
///
/// # Safety
///
/// `limiter` must be NULL or a live limiter; `key` NULL or `key_len` readable bytes;
/// `route` NULL or `route_len` readable bytes; `decision_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn asrl_check(
    limiter: *const asrl_limiter,
    key: *const u8,
    key_len: usize,
    route: *const c_char,
    route_len: usize,
    cost: u64,
    mono_ns: u64,
    wall_ns: u64,
    decision_out: *mut asrl_decision,
) -> asrl_result {
    ffi_panic_boundary! {
        let now = Now { mono_ns, wall_ns };
        // SAFETY: forwarded from the caller.
        unsafe { run(limiter, key, key_len, route, route_len, CTarget::Route, cost, now, true, decision_out) }
    }
}

/// As `asrl_check`, against the policy named `policy`/`policy_len` (for a key on a plan
/// with its own limits) instead of a route.
///
/// # Errors
///
/// As `asrl_check`, and `ASRL_RESULT_UNKNOWN_POLICY`.
///
/// # Safety
///
/// As `asrl_check`, with `policy` NULL or `policy_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn asrl_check_policy(
    limiter: *const asrl_limiter,
    key: *const u8,
    key_len: usize,
    policy: *const c_char,
    policy_len: usize,
    cost: u64,
    mono_ns: u64,
    wall_ns: u64,
    decision_out: *mut asrl_decision,
) -> asrl_result {
    ffi_panic_boundary! {
        let now = Now { mono_ns, wall_ns };
        // SAFETY: forwarded from the caller.
        unsafe { run(limiter, key, key_len, policy, policy_len, CTarget::Policy, cost, now, true, decision_out) }
    }
}

/// What `asrl_check` would answer, counting nothing: `allowed` says whether a request of
/// `cost` would be admitted; the figures describe the key's state as it is.
///
/// # Errors
///
/// As `asrl_check`.
///
/// # Safety
///
/// As `asrl_check`.
#[no_mangle]
pub unsafe extern "C" fn asrl_peek(
    limiter: *const asrl_limiter,
    key: *const u8,
    key_len: usize,
    route: *const c_char,
    route_len: usize,
    cost: u64,
    mono_ns: u64,
    wall_ns: u64,
    decision_out: *mut asrl_decision,
) -> asrl_result {
    ffi_panic_boundary! {
        let now = Now { mono_ns, wall_ns };
        // SAFETY: forwarded from the caller.
        unsafe { run(limiter, key, key_len, route, route_len, CTarget::Route, cost, now, false, decision_out) }
    }
}

/// As `asrl_peek`, against a named policy.
///
/// # Errors
///
/// As `asrl_check_policy`.
///
/// # Safety
///
/// As `asrl_check_policy`.
#[no_mangle]
pub unsafe extern "C" fn asrl_peek_policy(
    limiter: *const asrl_limiter,
    key: *const u8,
    key_len: usize,
    policy: *const c_char,
    policy_len: usize,
    cost: u64,
    mono_ns: u64,
    wall_ns: u64,
    decision_out: *mut asrl_decision,
) -> asrl_result {
    ffi_panic_boundary! {
        let now = Now { mono_ns, wall_ns };
        // SAFETY: forwarded from the caller.
        unsafe { run(limiter, key, key_len, policy, policy_len, CTarget::Policy, cost, now, false, decision_out) }
    }
}

/// Writes the decision's headers as `Name: value\r\n` lines, in the contract's order and
/// case: the rate-limit headers of the limiter's header style, then `Retry-After` when
/// denied. (`Content-Type` of a 429 is `asrl_body_content_type()`.)
///
/// Text as every writer of this library: not NUL-terminated; on success
/// `*needed_out` is its length; when `len` is too short, `ASRL_RESULT_INSUFFICIENT_SIZE`
/// with `*needed_out` the length needed and `buf` untouched (`buf` may be NULL with
/// `len` 0 to ask the size). Allocates nothing.
///
/// # Errors
///
/// `ASRL_RESULT_INSUFFICIENT_SIZE`, `ASRL_RESULT_INVALID_PARAMETER` (a decision whose
/// policy or binding rule is not from this limiter), `ASRL_RESULT_NULL_PARAMETER`.
///
/// # Safety
///
/// `limiter` must be NULL or a live limiter; `decision` NULL or a readable
/// `asrl_decision`; `buf` NULL or `len` writable bytes; `needed_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn asrl_decision_write_headers(
    limiter: *const asrl_limiter,
    decision: *const asrl_decision,
    buf: *mut c_char,
    len: usize,
    needed_out: *mut usize,
) -> asrl_result {
    ffi_panic_boundary! {
        if decision.is_null() || needed_out.is_null() {
            return asrl_result::NullParameter;
        }
        // SAFETY: the caller promises NULL or a live limiter.
        let Some(l) = (unsafe { limiter.as_ref() }) else {
            return asrl_result::NullParameter;
        };
        // SAFETY: checked non-NULL; the caller promises a readable decision.
        let d = match unsafe { to_core(l, decision) } {
            Ok(d) => d,
            Err(e) => return e,
        };
        // SAFETY: the caller promises `buf` is NULL or `len` writable bytes.
        let buf = match unsafe { out_buf(buf, len) } {
            Ok(b) => b,
            Err(e) => return e,
        };
        let policy = l.inner.policy(d.policy);
        let (rc, n) = write_text(buf, |w| d.write_headers(policy, l.style, w));
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_out(needed_out, n) };
        rc
    }
}

/// Writes the exact 429 body of a denied decision (one line of JSON, no trailing
/// newline); an allowed decision has no body: 0 bytes. Text as
/// `asrl_decision_write_headers`.
///
/// # Errors
///
/// As `asrl_decision_write_headers`.
///
/// # Safety
///
/// As `asrl_decision_write_headers`.
#[no_mangle]
pub unsafe extern "C" fn asrl_decision_write_body(
    limiter: *const asrl_limiter,
    decision: *const asrl_decision,
    buf: *mut c_char,
    len: usize,
    needed_out: *mut usize,
) -> asrl_result {
    ffi_panic_boundary! {
        if decision.is_null() || needed_out.is_null() {
            return asrl_result::NullParameter;
        }
        // SAFETY: the caller promises NULL or a live limiter.
        let Some(l) = (unsafe { limiter.as_ref() }) else {
            return asrl_result::NullParameter;
        };
        // SAFETY: checked non-NULL; the caller promises a readable decision.
        let d = match unsafe { to_core(l, decision) } {
            Ok(d) => d,
            Err(e) => return e,
        };
        // SAFETY: the caller promises `buf` is NULL or `len` writable bytes.
        let buf = match unsafe { out_buf(buf, len) } {
            Ok(b) => b,
            Err(e) => return e,
        };
        let (rc, n) = write_text(buf, |w| d.write_body(w));
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_out(needed_out, n) };
        rc
    }
}
