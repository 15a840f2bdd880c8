//! The anchor of `make bench`: the Rust core's own loop, in the same process as the C one.

use std::hint::black_box;
use std::time::Instant;

use asrl_core::{Cell, Config, Limiter, Now, Seed, Target};

use crate::ffi::in_bytes;
use crate::panic::ffi_panic_boundary;
use crate::result::asrl_result;

/// Runs the loop the C bench runs, on the core directly (no FFI): a fresh limiter with
/// the documented config and `capacity` cells; `rounds` rounds, each checking every one
/// of the `n_keys` keys (`key_len` bytes each, back to back in `keys`) once on the route
/// `/v1/status` at `mono = wall = start_ns + round * 1 ms`. Writes each round's
/// nanoseconds per check into `round_ns_out[round]`. Only with the `bench` feature.
///
/// # Errors
///
/// `ASRL_RESULT_NULL_PARAMETER`, `ASRL_RESULT_INVALID_PARAMETER`.
///
/// # Safety
///
/// `keys` must point to `n_keys * key_len` readable bytes; `round_ns_out` to `rounds`
/// writable doubles.
#[no_mangle]
pub unsafe extern "C" fn asrl_bench_core(
    keys: *const u8,
    key_len: usize,
    n_keys: usize,
    capacity: u64,
    rounds: usize,
    start_ns: u64,
    round_ns_out: *mut f64,
) -> asrl_result {
    ffi_panic_boundary! {
        if round_ns_out.is_null() || keys.is_null() {
            return asrl_result::NullParameter;
        }
        let Some(total) = key_len.checked_mul(n_keys) else {
            return asrl_result::InvalidParameter;
        };
        if key_len == 0 || n_keys == 0 || rounds == 0 {
            return asrl_result::InvalidParameter;
        }
        // SAFETY: the caller promises `n_keys * key_len` readable bytes.
        let keys = match unsafe { in_bytes(keys, total) } {
            Ok(k) => k,
            Err(e) => return e,
        };
        let Ok(capacity) = usize::try_from(capacity) else {
            return asrl_result::InvalidParameter;
        };
        let cells: Box<[Cell]> = (0..capacity).map(|_| Cell::new()).collect();
        let limiter = Limiter::new(Config::documented(), cells, Seed([0x5eed, 0xbe7c4]));
        for round in 0..rounds {
            let now = Now::same(start_ns + round as u64 * 1_000_000);
            let t0 = Instant::now();
            for key in keys.chunks_exact(key_len) {
                black_box(limiter.check(black_box(key), Target::Route(black_box("/v1/status")), 1, now)).ok();
            }
            let ns = t0.elapsed().as_nanos() as f64 / n_keys as f64;
            // SAFETY: `round < rounds`; the caller promises `rounds` writable doubles.
            unsafe { round_ns_out.add(round).write(ns) };
        }
        asrl_result::Ok
    }
}
