//! Every mapping of a core error to a Python exception, in one place.

use aisoule_ratelimit::json::JsonError;
use std::io;

use aisoule_ratelimit::{CheckError, Policy};
use aisoule_ratelimit_host::SharedError;
use pyo3::exceptions::PyValueError;
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

/// A shared segment that cannot be opened: the OSError subclass of the system error
/// (FileNotFoundError, PermissionError, ...) or, for a segment that does not fit this
/// limiter, a ValueError naming `shared`.
pub(crate) fn shared_error(e: &SharedError) -> PyErr {
    match e {
        SharedError::Io { source, .. } => io::Error::new(source.kind(), format!("shared: {e}")).into(),
        _ => PyValueError::new_err(format!("shared: {e}")),
    }
}

/// The Python type name of `obj`, for TypeError messages.
pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string())
}
