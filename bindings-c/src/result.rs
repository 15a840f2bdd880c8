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
    /// `asrl_limiter_open_shared`: a system call on the segment failed (a missing
    /// directory, no permission, a read-only file or file system, the path is a
    /// directory...). `asrl_shared_error` gives the path, the operation and the
    /// system's error.
    SharedIo = 13,
    /// `asrl_limiter_open_shared`: the file exists but is not a segment (its first bytes
    /// are not the segment magic). Nothing was written to it.
    SharedNotASegment = 14,
    /// `asrl_limiter_open_shared`: the segment was written with another layout (layout
    /// version, cell size or alignment): a library of another release made it.
    SharedLayout = 15,
    /// `asrl_limiter_open_shared`: the segment has another capacity than the options or
    /// the config ask for (ask for 0 to accept the segment's).
    SharedCapacity = 16,
    /// `asrl_limiter_open_shared`: the segment was made for other policies or routes
    /// (the config's fingerprint differs): every process sharing a segment needs the
    /// same config.
    SharedConfig = 17,
    /// `asrl_limiter_open_shared`: the file is shorter or longer than its header says.
    SharedTruncated = 18,
    /// `asrl_limiter_open_shared`: the segment header's check hash does not match its
    /// fields, or the file is otherwise not a usable segment.
    SharedCorrupt = 19,
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
            13 => SharedIo,
            14 => SharedNotASegment,
            15 => SharedLayout,
            16 => SharedCapacity,
            17 => SharedConfig,
            18 => SharedTruncated,
            19 => SharedCorrupt,
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
            SharedIo => "the shared segment could not be opened or created (asrl_shared_error says why)",
            SharedNotASegment => "the file is not a shared rate-limit table segment",
            SharedLayout => "the shared segment has another layout (made by another release)",
            SharedCapacity => "the shared segment has another capacity than asked for",
            SharedConfig => "the shared segment was made for other policies or routes",
            SharedTruncated => "the shared segment file is shorter or longer than its header says",
            SharedCorrupt => "the shared segment header is corrupt",
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
