//! `Limiter.check` and `Limiter.peek` as `METH_FASTCALL | METH_KEYWORDS` functions of
//! their own, added to the `Limiter` type when the module loads.
//!
//! They are the hot path: a `#[pymethods]` function goes through pyo3's trampoline and
//! its general argument parser, which cost 7 ns of a 110 ns check (measured A/B). These
//! parse the five arguments directly and call the same [`Limiter::decide`]; arity,
//! keyword and missing-argument errors read as pyo3's did.

use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::panic::PanicException;
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyType};
use pyo3::Borrowed;

use crate::Limiter;

/// The parameters, in order: `(key, route=None, *, policy=None, cost=1, now_ns=None)`.
const PARAMS: [&str; 5] = ["key", "route", "policy", "cost", "now_ns"];
/// How many of them may be given by position.
const POSITIONAL: usize = 2;

/// Parses the arguments of `Limiter.<name>` and decides.
///
/// # Safety
/// The contract of a `METH_FASTCALL | METH_KEYWORDS` method of `Limiter`: called with an
/// attached thread, `slf` a `Limiter`, `args` holding `nargs` positional values then
/// one value per name of the tuple `kwnames` (or null).
unsafe fn call(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
    name: &str,
    peek: bool,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods with an attached thread.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| -> PyResult<Bound<'_, PyAny>> {
        // SAFETY: `kwnames` is null or a tuple of str (the contract).
        let names = (!kwnames.is_null())
            .then(|| unsafe { Borrowed::from_ptr(py, kwnames).cast_unchecked::<PyTuple>() });
        let positional = usize::try_from(nargs).unwrap_or(0);
        let total = positional + names.map_or(0, |n| n.len());
        let values: &[*mut ffi::PyObject] = if total == 0 {
            // (`args` may be null then.)
            &[]
        } else {
            // SAFETY: `args` holds `nargs` positional values and one per keyword (the
            // contract), each a borrowed reference valid for the call.
            unsafe { std::slice::from_raw_parts(args, total) }
        };
        // SAFETY: each value is a live object, borrowed for the call.
        let value = |i: usize| unsafe { Borrowed::from_ptr(py, values[i]) };
        let mut given: [Option<Borrowed<'_, '_, PyAny>>; 5] = [None; 5];
        if positional > POSITIONAL {
            return Err(PyTypeError::new_err(format!(
                "Limiter.{name}() takes from 1 to {POSITIONAL} positional arguments but {positional} were given"
            )));
        }
        for (i, slot) in given.iter_mut().enumerate().take(positional) {
            *slot = Some(value(i));
        }
        if let Some(names) = names {
            for (i, kw) in names.iter_borrowed().enumerate() {
                let kw = kw.cast::<pyo3::types::PyString>()?;
                let kw = kw.to_str()?;
                let Some(p) = PARAMS.iter().position(|p| *p == kw) else {
                    return Err(PyTypeError::new_err(format!(
                        "Limiter.{name}() got an unexpected keyword argument '{kw}'"
                    )));
                };
                if given[p].is_some() {
                    return Err(PyTypeError::new_err(format!(
                        "Limiter.{name}() got multiple values for argument '{kw}'"
                    )));
                }
                given[p] = Some(value(positional + i));
            }
        }
        let Some(key) = given[0] else {
            return Err(PyTypeError::new_err(format!(
                "Limiter.{name}() missing 1 required positional argument: 'key'"
            )));
        };
        // None stands for an argument not given, as the defaults say.
        let opt = |i: usize| given[i].filter(|v| !v.is_none());
        // SAFETY: `slf` is a `Limiter` (the method descriptor checked it).
        let slf = unsafe { Borrowed::from_ptr(py, slf).cast_unchecked::<Limiter>() };
        Limiter::decide(
            &slf,
            &key,
            opt(1).as_deref(),
            opt(2).as_deref(),
            opt(3).as_deref(),
            opt(4).as_deref(),
            peek,
        )
    }));
    finish(result, "Limiter.", name)
}

/// A raw slot's result as CPython wants it: a new reference, or null with the
/// exception set (a panic becomes a `PanicException`). `what` names the slot.
///
/// The raw slots (these methods, `Decision`'s getters) run without pyo3's attach guard:
/// skipping it is part of their speed. pyo3 defers the release of a `Py` dropped outside
/// a guard to a pool that only its guards empty; the slots' success paths drop no `Py`
/// (only `Bound`s, released at once), but restoring an error does, and a failed
/// conversion may have dropped some before it. So errors are restored under
/// `Python::attach`, which empties the pool: nothing is left behind.
pub(crate) fn finish(
    result: std::thread::Result<PyResult<Bound<'_, PyAny>>>,
    prefix: &str,
    what: &str,
) -> *mut ffi::PyObject {
    match result {
        Ok(Ok(v)) => v.into_ptr(),
        Ok(Err(e)) => raise(e),
        Err(_) => raise(PanicException::new_err(format!("panic in {prefix}{what}"))),
    }
}

/// Sets `e` as the current exception; returns null.
#[cold]
fn raise(e: PyErr) -> *mut ffi::PyObject {
    let mut e = Some(e);
    let restored = catch_unwind(AssertUnwindSafe(|| {
        // The thread is attached (we are in a call from CPython): `try_attach` only
        // registers it with pyo3 (PyGILState_Ensure of a thread holding the GIL) and
        // empties the pool. While the interpreter finalizes it declines, and the error
        // is restored as it is (what it drops then waits in the pool).
        let attached = Python::try_attach(|py| {
            if let Some(e) = e.take() {
                e.restore(py);
            }
        });
        if attached.is_none() {
            if let Some(e) = e.take() {
                // SAFETY: the thread is attached (a call from CPython).
                e.restore(unsafe { Python::assume_attached() });
            }
        }
    }));
    if restored.is_err() {
        // SAFETY: the thread is attached; both arguments are valid (a static C string).
        unsafe {
            ffi::PyErr_SetString(
                ffi::PyExc_SystemError,
                c"aisoule_ratelimit: panic while raising an error".as_ptr(),
            )
        };
    }
    ptr::null_mut()
}

/// `Limiter.check`.
unsafe extern "C" fn check(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: installed as a METH_FASTCALL | METH_KEYWORDS method of Limiter.
    unsafe { call(slf, args, nargs, kwnames, "check", false) }
}

/// `Limiter.peek`.
unsafe extern "C" fn peek(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: installed as a METH_FASTCALL | METH_KEYWORDS method of Limiter.
    unsafe { call(slf, args, nargs, kwnames, "peek", true) }
}

/// Adds `check` and `peek` to the `Limiter` type.
pub(crate) fn add_methods(ty: &Bound<'_, PyType>) -> PyResult<()> {
    add(
        ty,
        c"check",
        check,
        c"check($self, key, route=None, *, policy=None, cost=1, now_ns=None)\n--\n\nDecides a request and records it when admitted.",
    )?;
    add(
        ty,
        c"peek",
        peek,
        c"peek($self, key, route=None, *, policy=None, cost=1, now_ns=None)\n--\n\nDecides a request without recording anything.",
    )
}

/// Adds the method `name` (a method descriptor, as a `#[pymethods]` function gets).
fn add(
    ty: &Bound<'_, PyType>,
    name: &'static CStr,
    meth: ffi::PyCFunctionFastWithKeywords,
    doc: &'static CStr,
) -> PyResult<()> {
    // The descriptor points to its definition for the life of the type: leak it.
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: ffi::PyMethodDefPointer {
            PyCFunctionFastWithKeywords: meth,
        },
        ml_flags: ffi::METH_FASTCALL | ffi::METH_KEYWORDS,
        ml_doc: doc.as_ptr(),
    }));
    // SAFETY: `ty` is a live type and `def` a valid definition that outlives it; the
    // thread is attached. The result is a new reference or null with an exception set.
    let descr =
        unsafe { Bound::from_owned_ptr_or_err(ty.py(), ffi::PyDescr_NewMethod(ty.as_ptr().cast(), def))? };
    ty.setattr(name.to_str().unwrap_or_default(), descr)
}
