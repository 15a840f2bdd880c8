//! `asrl_limiter_open_shared`: a limiter over a table in a named shared-memory segment
//! (the host crate's `SharedTable`), and `asrl_shared_error`, why the last open failed.

use std::cell::RefCell;
use std::ffi::{c_char, OsStr};
use std::fmt::{self, Display, Write as _};
use std::os::unix::ffi::OsStrExt;

use aisoule_ratelimit_host::{SharedError, SharedTable, Table as HostTable};

use crate::ffi::{in_bytes, out_buf, write_out, write_text};
use crate::limiter::{
    asrl_limiter, asrl_options, config_error_text, load_config, load_options, make, Table,
    ASRL_DEFAULT_CAPACITY,
};
use crate::panic::ffi_panic_boundary;
use crate::result::asrl_result;

thread_local! {
    /// Why the last `asrl_limiter_open_shared` on this thread failed; empty after a
    /// success. Written only on the error path (the only allocation it makes).
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records the text of a failure and returns its result.
fn fail(result: asrl_result, why: impl Display) -> asrl_result {
    let mut text = String::new();
    let _ = write!(text, "{why}");
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
    result
}

/// The result for a segment error: one per kind of difference.
pub(crate) fn result_of(e: &SharedError) -> asrl_result {
    match e {
        SharedError::Io { .. } => asrl_result::SharedIo,
        SharedError::NotASegment(_) => asrl_result::SharedNotASegment,
        SharedError::LayoutVersion { .. } | SharedError::CellLayout { .. } => asrl_result::SharedLayout,
        SharedError::Capacity { .. } => asrl_result::SharedCapacity,
        SharedError::Policies { .. } => asrl_result::SharedConfig,
        SharedError::Truncated { .. } => asrl_result::SharedTruncated,
        SharedError::InvalidCapacity(_) => asrl_result::InvalidParameter,
        // `SharedError` is non-exhaustive: a kind added later is a segment this library
        // cannot use; its text still says why.
        _ => asrl_result::SharedCorrupt,
    }
}

/// "No such file" from opening an existing segment (as opposed to creating one).
fn is_missing(e: &SharedError) -> bool {
    matches!(e, SharedError::Io { op: "open", source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// A text for the arguments the caller got wrong.
struct Why(&'static str);

impl Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Makes a limiter over the table in the shared-memory segment at `path`, creating the
/// segment if there is none: every process (and every binding: C, Python, Node) that
/// opens the same path with the same config shares one set of counts.
///
/// `path`/`path_len`: a file path, not NUL-terminated (bytes, as the file system takes
/// them; relative to the working directory unless absolute), usually under `/dev/shm`
/// (`/dev/shm/myapi-ratelimit`). A new segment is created with mode 0600 (owner
/// only), built under a temporary name and published whole with `link(2)`: of
/// processes creating it at once, one wins and the others open the winner's. The
/// segment holds a header (magic, layout version, cell layout, capacity, the config's
/// fingerprint, the hash seed) and the cells; it outlives the processes (remove it
/// with `unlink`/`rm` when no process uses it).
///
/// `config`/`config_len`: as `asrl_limiter_new`; it must be the config the segment was
/// made for (its policies and routes: `ASRL_RESULT_SHARED_CONFIG` otherwise).
/// `options`: NULL for the defaults; `capacity` 0 asks for the config's `"capacity"`,
/// else accepts an existing segment's, else creates `ASRL_DEFAULT_CAPACITY` cells; a
/// non-zero one must match an existing segment's. `seed` must be `{0, 0}`: the segment
/// holds its seed (made from the operating system's random source by the process that
/// created it). `full_table_mode` and `header_style` are this limiter's own. Counts are
/// shared; `asrl_limiter_stats` counts this limiter's answers only.
///
/// Every other function takes the limiter as it takes any (checks, peeks, writers);
/// `asrl_limiter_free` unmaps the segment and leaves it in place.
///
/// On success `*limiter_out` is a new limiter the caller owns and frees with
/// `asrl_limiter_free`; on failure it is not written, no existing file was modified
/// and no file was left behind; `asrl_shared_error` then writes why, naming the
/// difference (`segment has capacity 1024, this process asked for 4096`).
///
/// # Errors
///
/// `ASRL_RESULT_SHARED_IO` (a missing directory, no permission, a read-only file or
/// file system), `ASRL_RESULT_SHARED_NOT_A_SEGMENT`, `ASRL_RESULT_SHARED_LAYOUT`,
/// `ASRL_RESULT_SHARED_CAPACITY`, `ASRL_RESULT_SHARED_CONFIG`,
/// `ASRL_RESULT_SHARED_TRUNCATED`, `ASRL_RESULT_SHARED_CORRUPT`,
/// `ASRL_RESULT_INVALID_CONFIG`, `ASRL_RESULT_INVALID_PARAMETER` (an empty path or one
/// with a NUL byte, a non-zero seed, bad option values, a capacity above 2^32),
/// `ASRL_RESULT_NULL_PARAMETER`.
///
/// # Safety
///
/// `path` must be NULL or `path_len` readable bytes; `config` NULL or `config_len`
/// readable bytes; `options` NULL or a readable `asrl_options`; `limiter_out` a
/// writable `asrl_limiter *`. The segment must only be written by this library (of the
/// same release: the header checks catch other layouts) and must not be truncated
/// while mapped.
#[no_mangle]
pub unsafe extern "C" fn asrl_limiter_open_shared(
    path: *const c_char,
    path_len: usize,
    config: *const c_char,
    config_len: usize,
    options: *const asrl_options,
    limiter_out: *mut *mut asrl_limiter,
) -> asrl_result {
    ffi_panic_boundary! {
        if limiter_out.is_null() {
            return fail(asrl_result::NullParameter, Why("limiter_out is NULL"));
        }
        // SAFETY: the caller promises `path` is NULL or `path_len` readable bytes.
        let path = match unsafe { in_bytes(path.cast(), path_len) } {
            Ok([]) => return fail(asrl_result::InvalidParameter, Why("path: empty")),
            Ok(p) if p.contains(&0) => {
                return fail(asrl_result::InvalidParameter, Why("path: contains a NUL byte"))
            }
            Ok(p) => OsStr::from_bytes(p),
            Err(asrl_result::NullParameter) => {
                return fail(asrl_result::NullParameter, Why("path is NULL with a non-zero length"))
            }
            Err(e) => return fail(e, Why("path: length above PTRDIFF_MAX")),
        };
        // SAFETY: the caller's promise about `config`.
        let (config_value, config_capacity) = match unsafe { load_config(config, config_len) } {
            Ok(c) => c,
            Err(asrl_result::InvalidConfig) => {
                // SAFETY: as above.
                let text = unsafe { config_error_text(config, config_len) };
                return fail(asrl_result::InvalidConfig, text);
            }
            Err(e) => return fail(e, Why("config is NULL with a non-zero length")),
        };
        // SAFETY: the caller's promise about `options`.
        let o = match unsafe { load_options(options) } {
            Ok(o) => o,
            Err(e) => {
                return fail(
                    e,
                    Why("options: full_table_mode, header_style or capacity (at most 2^32) out of range"),
                )
            }
        };
        if o.seed.is_some() {
            return fail(
                asrl_result::InvalidParameter,
                Why("options.seed: must be {0, 0} for a shared segment (the segment holds its seed)"),
            );
        }
        let wanted = Some(o.capacity).filter(|&c| c != 0).or(config_capacity);
        let opened = match wanted {
            Some(c) => SharedTable::open(path, Some(c), &config_value),
            None => match SharedTable::open(path, None, &config_value) {
                Err(e) if is_missing(&e) => SharedTable::open(path, Some(ASRL_DEFAULT_CAPACITY), &config_value),
                other => other,
            },
        };
        let shared = match opened {
            Ok(s) => s,
            Err(e) => return fail(result_of(&e), e),
        };
        let seed = shared.seed();
        let limiter = make(config_value, Table::Host(HostTable::Shared(shared)), seed, &o);
        LAST_ERROR.with(|e| *e.borrow_mut() = String::new());
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_out(limiter_out, Box::into_raw(limiter)) };
        asrl_result::Ok
    }
}

/// Writes why the last `asrl_limiter_open_shared` on this thread failed, naming the
/// difference or the system's error: `segment has capacity 1024, this process asked
/// for 4096`, `/dev/shm/x/seg: cannot open: No such file or directory (os error 2)`, or
/// the config's error as `asrl_config_error` words it. Nothing (`*written_out == 0`)
/// when it succeeded or was never called. Text written as `asrl_result_message` does.
///
/// # Errors
///
/// `ASRL_RESULT_INSUFFICIENT_SIZE`, `ASRL_RESULT_NULL_PARAMETER`.
///
/// # Safety
///
/// `buf` must be NULL or `len` writable bytes; `written_out` a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn asrl_shared_error(
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
        let (rc, n) = LAST_ERROR.with(|e| {
            let text = e.borrow();
            write_text(buf, |w| w.write_str(&text))
        });
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_out(written_out, n) };
        rc
    }
}
