//! `asrl_result`: every entry point's status, and its messages.

use std::ffi::c_char;

use crate::ffi::{out_buf, write_out, write_text};
use crate::panic::ffi_panic_boundary;

/// The status every fallible function returns.
///
/// The numbers are part of the ABI: they never change and are never reused. Any value
/// other than `ASRL_RESULT_OK` means the call changed nothing and wrote no output
/// (except the length that `ASRL_RESULT_INSUFFICIENT_SIZE` reports).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum asrl_result {
    /// Success.
    Ok = 0,
    /// A panic was caught inside the library (a bug: please report it). Nothing was
    /// changed as far as the library can tell.
    Panic = 1,
    /// A required pointer was NULL (or a NULL buffer came with a non-zero length).
    NullParameter = 2,
    /// An argument is out of range: a length above `PTRDIFF_MAX`, an unknown enum value, a
    /// capacity of 0 or above 2^32 cells, a policy index or binding rule not from this
    /// limiter.
    InvalidParameter = 3,
    /// A route or policy name is not UTF-8.
    InvalidUtf8 = 4,
    /// The JSON config was refused; `asrl_config_error` writes why, naming the field.
    InvalidConfig = 5,
    /// The cost is 0 or above the capacity of a rule of the policy. Nothing was counted.
    InvalidCost = 6,
    /// No policy of that name in this limiter.
    UnknownPolicy = 7,
    /// The output buffer is too short; the length it needs was reported, the buffer was
    /// not touched.
    InsufficientSize = 8,
    /// The table could not be allocated.
    AllocFailed = 9,
    /// No seed was given and the operating system's random source could not be read.
    SeedUnavailable = 10,
    /// Caller table memory is not aligned to `ASRL_TABLE_ALIGN` (16) bytes.
    TableMisaligned = 11,
    /// Caller table memory is not a positive multiple of `ASRL_CELL_SIZE` (16) bytes, or
    /// does not match the capacity the options or the config ask for.
    TableSize = 12,
}

impl asrl_result {
    /// The result for a C value, if it is one.
    pub(crate) fn from_u32(value: u32) -> Option<asrl_result> {
        use asrl_result::*;
        Some(match value {
            0 => Ok,
            1 => Panic,
            2 => NullParameter,
            3 => InvalidParameter,
            4 => InvalidUtf8,
            5 => InvalidConfig,
            6 => InvalidCost,
            7 => UnknownPolicy,
            8 => InsufficientSize,
            9 => AllocFailed,
            10 => SeedUnavailable,
            11 => TableMisaligned,
            12 => TableSize,
            _ => return None,
        })
    }

    /// A one-line description.
    pub(crate) fn message(self) -> &'static str {
        use asrl_result::*;
        match self {
            Ok => "ok",
            Panic => "internal error: a panic was caught inside the library",
            NullParameter => "a required pointer was NULL",
            InvalidParameter => "an argument is out of range",
            InvalidUtf8 => "a route or policy name is not UTF-8",
            InvalidConfig => "the config was refused (asrl_config_error says why)",
            InvalidCost => {
                "invalid_cost: the cost must be from 1 to the capacity of every rule of the policy"
            }
            UnknownPolicy => "unknown_policy: no such policy in this limiter",
            InsufficientSize => "the output buffer is too short",
            AllocFailed => "the table could not be allocated",
            SeedUnavailable => "the operating system's random source could not be read for a seed",
            TableMisaligned => "the table memory is not 16-byte aligned",
            TableSize => "the table memory size is not a positive multiple of 16 bytes matching the capacity",
        }
    }
}

/// Writes a description of `result` into `buf`.
///
/// `result` is an `asrl_result` value; an unknown number gets `"unknown asrl_result"`.
/// Like every text writer of this library: the text is not NUL-terminated; on success
/// `*written_out` is its length; when `len` is too short the function returns
/// `ASRL_RESULT_INSUFFICIENT_SIZE`, sets `*written_out` to the length needed and leaves
/// `buf` untouched. `buf` may be NULL when `len` is 0 (a size query).
///
/// # Safety
///
/// `buf` must be NULL or point to `len` writable bytes; `written_out` must be NULL or
/// point to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn asrl_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
    written_out: *mut usize,
) -> asrl_result {
    ffi_panic_boundary! {
        if written_out.is_null() {
            return asrl_result::NullParameter;
        }
        // SAFETY: the caller promises `buf` is NULL or `len` writable bytes.
        let buf = match unsafe { out_buf(buf, len) } {
            Ok(b) => b,
            Err(e) => return e,
        };
        let text = asrl_result::from_u32(result).map_or("unknown asrl_result", asrl_result::message);
        let (rc, n) = write_text(buf, |w| std::fmt::Write::write_str(w, text));
        // SAFETY: checked non-NULL above; the caller promises it is writable.
        unsafe { write_out(written_out, n) };
        rc
    }
}
