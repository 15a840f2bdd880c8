//! Every mapping of a core error to a Python exception, in one place.

use aisoule_ratelimit::json::JsonError;
use std::io;
use std::path::Path;

use aisoule_ratelimit::{CheckError, Policy};
use aisoule_ratelimit_host::SharedError;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;

/// An invalid config: a ValueError with the core's text, which names the field
/// (`policies.alpha[0].limit: must be ...`).
pub(crate) fn json_error(e: &JsonError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A check that gave no decision: a ValueError naming the field.
pub(crate) fn check_error(e: CheckError, policy: &Policy) -> PyErr {
    match e {
        CheckError::InvalidCost => PyValueError::new_err(format!(
            "cost: {e} (policy {:?} takes from 1 to {})",
            policy.name(),
            policy.max_cost()
        )),
        _ => PyValueError::new_err(format!("policy: {e}")),
    }
}

/// A shared segment that cannot be opened.
///
/// A system error is the OSError subclass of its errno (FileNotFoundError for a missing
/// directory, PermissionError for a read-only file or directory, OSError with `EROFS`
/// for a read-only file system...), with `errno`, `strerror` (starting `shared: cannot
/// OP the segment`) and `filename` (the path asked for). A segment that does not fit
/// this limiter, or a file that is no valid segment (truncated, corrupt, other magic),
/// is a ValueError starting `shared: PATH: ` and naming the difference.
pub(crate) fn shared_error(py: Python<'_>, path: &Path, e: &SharedError) -> PyErr {
    let shown = path.display();
    match e {
        SharedError::Io { op, source, .. } => match source.raw_os_error() {
            Some(errno) => {
                let text = py
                    .import("os")
                    .and_then(|os| os.call_method1("strerror", (errno,)))
                    .and_then(|s| s.extract::<String>())
                    .unwrap_or_else(|_| source.to_string());
                // OSError(errno, strerror, filename) makes the subclass of that errno.
                PyOSError::new_err((
                    errno,
                    format!("shared: cannot {op} the segment: {text}"),
                    path.as_os_str().to_owned(),
                ))
            }
            None => io::Error::new(
                source.kind(),
                format!("shared: {shown}: cannot {op} the segment: {source}"),
            )
            .into(),
        },
        // These name the path themselves.
        SharedError::NotASegment(_) | SharedError::Corrupt(_) => {
            PyValueError::new_err(format!("shared: {e}"))
        }
        _ => PyValueError::new_err(format!("shared: {shown}: {e}")),
    }
}

/// The Python type name of `obj`, for TypeError messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string())
}
