//! Turning C arguments into Rust values: every pointer and length is checked here.

use std::ffi::c_char;
use std::fmt;

use asrl_core::{write_to_slice, SliceWriter};

use crate::result::asrl_result;

/// The longest length a C buffer may have (`PTRDIFF_MAX`: what a Rust slice allows).
const MAX_LEN: usize = isize::MAX as usize;

/// Bytes from C: NULL is accepted only with length 0 (the empty slice).
///
/// # Safety
///
/// `ptr` must be NULL or point to `len` readable bytes that stay unchanged for `'a`.
pub(crate) unsafe fn in_bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], asrl_result> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(asrl_result::NullParameter)
        };
    }
    if len > MAX_LEN {
        return Err(asrl_result::InvalidParameter);
    }
    // SAFETY: non-NULL, `len` fits a slice, and the caller promises `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// UTF-8 text from C (not NUL-terminated): NULL only with length 0.
///
/// # Safety
///
/// As [`in_bytes`].
pub(crate) unsafe fn in_str<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, asrl_result> {
    // SAFETY: forwarded from the caller.
    let bytes = unsafe { in_bytes(ptr.cast(), len) }?;
    // Only the verdict of the check is used; the text is `bytes` itself. `from_utf8`
    // returns its `&str` through memory, stored a word at a time and read back as one
    // 16-byte pair, which stalls on store-to-load forwarding (about 3 ns of a check);
    // paths are nearly always ASCII, which an inlined test settles without the call.
    if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
        // SAFETY: ASCII is UTF-8, and otherwise `from_utf8` has just found these very
        // bytes to be valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        Err(asrl_result::InvalidUtf8)
    }
}

/// An output buffer from C: NULL only with length 0 (a size query).
///
/// # Safety
///
/// `ptr` must be NULL or point to `len` writable bytes not otherwise used for `'a`.
pub(crate) unsafe fn out_buf<'a>(ptr: *mut c_char, len: usize) -> Result<&'a mut [u8], asrl_result> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&mut [])
        } else {
            Err(asrl_result::NullParameter)
        };
    }
    if len > MAX_LEN {
        return Err(asrl_result::InvalidParameter);
    }
    // SAFETY: non-NULL, `len` fits a slice, and the caller promises `len` writable bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) })
}

/// Writes `value` through an output pointer already checked non-NULL.
///
/// # Safety
///
/// `out` must be non-NULL, aligned and writable.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: forwarded from the caller.
    unsafe { out.write(value) }
}

/// Stack room for one text; every header set and body fits in it.
const STACK_TEXT: usize = 1024;

/// Writes a text into `buf`, snprintf-style but all-or-nothing: returns
/// `(ASRL_RESULT_OK, length)` when it fit, or `(ASRL_RESULT_INSUFFICIENT_SIZE, needed)`
/// with `buf` untouched.
pub(crate) fn write_text(
    buf: &mut [u8],
    f: impl Fn(&mut SliceWriter<'_>) -> fmt::Result,
) -> (asrl_result, usize) {
    let mut tmp = [0u8; STACK_TEXT];
    match write_to_slice(&mut tmp, &f) {
        Ok(n) if n <= buf.len() => {
            buf[..n].copy_from_slice(&tmp[..n]);
            (asrl_result::Ok, n)
        }
        Ok(n) => (asrl_result::InsufficientSize, n),
        // Longer than the stack room: only written when the whole text fits.
        Err(needed) if needed <= buf.len() => match write_to_slice(buf, &f) {
            Ok(n) => (asrl_result::Ok, n),
            Err(n) => (asrl_result::InsufficientSize, n),
        },
        Err(needed) => (asrl_result::InsufficientSize, needed),
    }
}
