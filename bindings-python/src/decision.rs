//! `Decision`: one request's answer, a Python type built here from the C API's slots
//! rather than a `#[pyclass]`, for speed.
//!
//! A `check` makes one per call, and callers read its figures straight away, so both
//! halves matter:
//! - Reading: `allowed`, `limit`, `remaining` and `reset` are object slots (member
//!   descriptors of type `Py_T_OBJECT_EX`), which CPython's `LOAD_ATTR_SLOT` reads in a
//!   nanosecond; a getter function (what `#[pyo3(get)]` makes of a `u64`) costs 15-20 ns
//!   a read. `status`, `retry_after`, `table_full` and the two nanosecond figures are
//!   member descriptors over the core's own fields (`Py_T_USHORT`, `Py_T_ULONGLONG`,
//!   `Py_T_BOOL`): no object is made until they are read.
//! - Making: the object is not tracked by the garbage collector (it can hold no cycle:
//!   ints, `True`/`False` and the limiter, which holds no decision), and is allocated
//!   and freed without pyo3's class machinery, which is most of a `#[pyclass]`'s cost.
//!
//! The text attributes (`headers`, `body`, ...) and `policy` are getters computed from
//! the core's decision kept in the object: every figure and byte still comes from the core.

use std::ffi::{c_int, c_void, CStr};
use std::mem::{offset_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use aisoule_ratelimit::{Decision as CoreDecision, BODY_CONTENT_TYPE};
use pyo3::exceptions::PyMemoryError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyList, PyString, PyTuple, PyType};

use crate::call::finish;
use crate::{name_lower, name_str, Limiter};

/// The object's layout: the Python header, the eager slots, then the core's decision.
#[repr(C)]
struct DecisionObject {
    ob_base: ffi::PyObject,
    /// `True` or `False` (a strong reference, as are the next three).
    allowed: *mut ffi::PyObject,
    /// `X-RateLimit-Limit` as an int.
    limit: *mut ffi::PyObject,
    /// `X-RateLimit-Remaining` as an int.
    remaining: *mut ffi::PyObject,
    /// `X-RateLimit-Reset` as an int.
    reset: *mut ffi::PyObject,
    /// The `Limiter` that decided (a strong reference): its policies and header style.
    limiter: *mut ffi::PyObject,
    /// 200 or 429 (`Decision::status`), read as `Py_T_USHORT`.
    status: u16,
    /// The core's answer, whose fields the other members read.
    d: CoreDecision,
}

/// The type object, made once (by the module's init or the first limiter).
static DECISION_TYPE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The `Decision` type.
pub(crate) fn decision_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    DECISION_TYPE
        .get_or_try_init(py, || make_type(py))
        .map(|t| t.bind(py))
}

/// A new `Decision` for the core's answer `d`, given by `limiter` (whose `decision_type`
/// is the type above).
pub(crate) fn new_decision<'py>(
    limiter: &Bound<'py, Limiter>,
    d: CoreDecision,
) -> PyResult<Bound<'py, PyAny>> {
    let py = limiter.py();
    let this = limiter.get();
    // The limit is one of the policy's rule limits: reuse its int when the core's
    // figure is that value.
    let limit = match this.limits[d.policy.index()].get(usize::from(d.binding_rule)) {
        Some((value, obj)) if *value == d.limit => obj.bind(py).clone(),
        _ => PyInt::new(py, d.limit),
    };
    let remaining = PyInt::new(py, d.remaining);
    let reset = PyInt::new(py, d.reset);
    let allowed = PyBool::new(py, d.allowed).to_owned();
    let ty = this.decision_type.as_ptr().cast::<ffi::PyTypeObject>();
    // SAFETY: the thread is attached (`py`). The memory is `DecisionObject`-sized, as
    // the type's basicsize says; `PyObject_Init` sets its type (taking a reference to
    // the heap type) and reference count, and every other field is written before the
    // object is handed out. The four object fields take over the references of the
    // values made above (`into_ptr`), which `decision_dealloc` releases.
    unsafe {
        let obj = ffi::PyObject_Malloc(size_of::<DecisionObject>()).cast::<DecisionObject>();
        if obj.is_null() {
            return Err(PyMemoryError::new_err("no memory for a Decision"));
        }
        ffi::PyObject_Init(obj.cast(), ty);
        ptr::addr_of_mut!((*obj).allowed).write(allowed.into_ptr());
        ptr::addr_of_mut!((*obj).limit).write(limit.into_ptr());
        ptr::addr_of_mut!((*obj).remaining).write(remaining.into_ptr());
        ptr::addr_of_mut!((*obj).reset).write(reset.into_ptr());
        ptr::addr_of_mut!((*obj).limiter).write(limiter.clone().into_ptr());
        ptr::addr_of_mut!((*obj).status).write(d.status());
        ptr::addr_of_mut!((*obj).d).write(d);
        Ok(Bound::from_owned_ptr(py, obj.cast()))
    }
}

/// `tp_dealloc`: releases the fields' references and the memory.
unsafe extern "C" fn decision_dealloc(obj: *mut ffi::PyObject) {
    let this = obj.cast::<DecisionObject>();
    // SAFETY: CPython calls tp_dealloc with an attached thread on an object of this type
    // whose count reached zero; `new_decision` wrote every field, each object field
    // owning one reference. The memory came from `PyObject_Malloc`, and the instance
    // held a reference to its heap type (`PyObject_Init`), released last.
    unsafe {
        ffi::Py_DECREF((*this).allowed);
        ffi::Py_DECREF((*this).limit);
        ffi::Py_DECREF((*this).remaining);
        ffi::Py_DECREF((*this).reset);
        ffi::Py_DECREF((*this).limiter);
        let ty = ffi::Py_TYPE(obj);
        ffi::PyObject_Free(obj.cast());
        ffi::Py_DECREF(ty.cast());
    }
}

/// The decision and its limiter behind `obj`.
///
/// # Safety
/// `obj` is a live `DecisionObject` (the first argument of this type's slots).
unsafe fn parts<'a, 'py>(
    py: Python<'py>,
    obj: *mut ffi::PyObject,
) -> (&'a CoreDecision, Bound<'py, Limiter>) {
    let this = obj.cast::<DecisionObject>();
    // SAFETY: per the contract, `obj` is a live `DecisionObject`: its `d` is initialised
    // and lives as long as the object (which the caller holds), and `limiter` is a strong
    // reference to a `Limiter`.
    unsafe {
        let limiter = Bound::from_borrowed_ptr(py, (*this).limiter).cast_into_unchecked::<Limiter>();
        (&(*this).d, limiter)
    }
}

/// Runs a slot's body: the attached token, errors raised as Python exceptions, a panic
/// turned into a `PanicException` rather than unwinding into CPython (see
/// [`finish`]).
///
/// # Safety
/// Called only from a slot of this type, which CPython calls with an attached thread
/// and a live `DecisionObject` as `obj`.
unsafe fn slot(
    obj: *mut ffi::PyObject,
    what: &str,
    f: impl for<'py> FnOnce(Python<'py>, &CoreDecision, &Bound<'py, Limiter>) -> PyResult<Bound<'py, PyAny>>,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls the type's slots with an attached thread.
    let py = unsafe { Python::assume_attached() };
    let result = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `obj` is this type's instance (the contract above).
        let (d, limiter) = unsafe { parts(py, obj) };
        f(py, d, &limiter)
    }));
    finish(result, "aisoule_ratelimit._native.Decision.", what)
}

/// Calls `f` for every header, in the contract's order and case.
fn each_header(
    d: &CoreDecision,
    limiter: &Bound<'_, Limiter>,
    mut f: impl FnMut(&'static str, &str) -> PyResult<()>,
) -> PyResult<()> {
    let limiter = limiter.get();
    d.for_each_header(limiter.core.policy(d.policy), limiter.style, &mut f)
}

/// The name of the policy that decided.
fn policy<'py>(py: Python<'py>, d: &CoreDecision, limiter: &Bound<'py, Limiter>) -> Bound<'py, PyString> {
    limiter.get().names[d.policy.index()].bind(py).clone()
}

macro_rules! getter {
    ($name:ident, $attr:literal, |$py:ident, $d:ident, $limiter:ident| $body:expr) => {
        unsafe extern "C" fn $name(obj: *mut ffi::PyObject, _closure: *mut c_void) -> *mut ffi::PyObject {
            // SAFETY: a getter of this type: CPython calls it attached, on an instance.
            unsafe { slot(obj, $attr, |$py, $d, $limiter| $body) }
        }
    };
}

getter!(get_policy, "policy", |py, d, limiter| Ok(
    policy(py, d, limiter).into_any()
));

getter!(get_headers, "headers", |py, d, limiter| {
    let out = PyDict::new(py);
    each_header(d, limiter, |name, value| out.set_item(name_str(py, name), value))?;
    Ok(out.into_any())
});

getter!(get_header_list, "header_list", |py, d, limiter| {
    let out = PyList::empty(py);
    each_header(d, limiter, |name, value| {
        let pair = [name_str(py, name), PyString::new(py, value)];
        out.append(PyTuple::new(py, pair)?)
    })?;
    Ok(out.into_any())
});

getter!(get_asgi_headers, "asgi_headers", |py, d, limiter| {
    let out = PyList::empty(py);
    each_header(d, limiter, |name, value| {
        let pair = [name_lower(py, name), PyBytes::new(py, value.as_bytes())];
        out.append(PyTuple::new(py, pair)?)
    })?;
    Ok(out.into_any())
});

getter!(get_body, "body", |py, d, _limiter| {
    if d.allowed {
        return Ok(py.None().into_bound(py));
    }
    let mut text = String::with_capacity(d.body_len());
    // Writing into a String cannot fail.
    let _ = d.write_body(&mut text);
    Ok(PyBytes::new(py, text.as_bytes()).into_any())
});

getter!(get_content_type, "content_type", |py, d, _limiter| Ok(
    if d.allowed {
        py.None().into_bound(py)
    } else {
        PyString::new(py, BODY_CONTENT_TYPE).into_any()
    }
));

/// `tp_repr`.
unsafe extern "C" fn decision_repr(obj: *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: a slot of this type: CPython calls it attached, on an instance.
    unsafe {
        slot(obj, "__repr__", |py, d, limiter| {
            let text = format!(
                "Decision(allowed={}, status={}, limit={}, remaining={}, reset={}, retry_after={}, policy={:?}, table_full={})",
                if d.allowed { "True" } else { "False" },
                d.status(),
                d.limit,
                d.remaining,
                d.reset,
                d.retry_after_seconds,
                policy(py, d, limiter).to_str()?,
                if d.table_full { "True" } else { "False" },
            );
            Ok(PyString::new(py, &text).into_any())
        })
    }
}

/// A read-only member descriptor.
fn member(name: &'static CStr, type_code: c_int, offset: usize, doc: &'static CStr) -> ffi::PyMemberDef {
    ffi::PyMemberDef {
        name: name.as_ptr(),
        type_code,
        // A struct of a few dozen bytes: the offset fits.
        offset: offset as ffi::Py_ssize_t,
        flags: ffi::Py_READONLY,
        doc: doc.as_ptr(),
    }
}

/// A read-only attribute computed by `get`.
fn getset(name: &'static CStr, get: ffi::getter, doc: &'static CStr) -> ffi::PyGetSetDef {
    ffi::PyGetSetDef {
        name: name.as_ptr(),
        get: Some(get),
        set: None,
        doc: doc.as_ptr(),
        closure: ptr::null_mut(),
    }
}

/// The member descriptors below read the core's fields by offset as `Py_T_ULONGLONG` and
/// `Py_T_BOOL`: this stops the build if the core ever changes those fields' types.
const _: fn(&CoreDecision) = |d| {
    let _: (&u64, &u64, &u64, &bool) = (
        &d.reset_after_ns,
        &d.retry_after_seconds,
        &d.retry_after_ns,
        &d.table_full,
    );
};

/// Makes the type from its spec (`PyType_FromSpec`, in the stable ABI).
fn make_type(py: Python<'_>) -> PyResult<Py<PyType>> {
    use ffi::{Py_T_BOOL, Py_T_OBJECT_EX, Py_T_ULONGLONG, Py_T_USHORT};
    let members = vec![
        member(
            c"allowed",
            Py_T_OBJECT_EX,
            offset_of!(DecisionObject, allowed),
            c"Whether the request is admitted.",
        ),
        member(
            c"status",
            Py_T_USHORT,
            offset_of!(DecisionObject, status),
            c"200 when allowed, 429 when denied.",
        ),
        member(
            c"limit",
            Py_T_OBJECT_EX,
            offset_of!(DecisionObject, limit),
            c"`X-RateLimit-Limit`: the binding rule's limit.",
        ),
        member(
            c"remaining",
            Py_T_OBJECT_EX,
            offset_of!(DecisionObject, remaining),
            c"`X-RateLimit-Remaining`.",
        ),
        member(
            c"reset",
            Py_T_OBJECT_EX,
            offset_of!(DecisionObject, reset),
            c"`X-RateLimit-Reset`: Unix epoch seconds (an int).",
        ),
        member(
            c"reset_after_ns",
            Py_T_ULONGLONG,
            offset_of!(DecisionObject, d.reset_after_ns),
            c"The binding rule's reset in nanoseconds from now.",
        ),
        member(
            c"retry_after",
            Py_T_ULONGLONG,
            offset_of!(DecisionObject, d.retry_after_seconds),
            c"`Retry-After` in whole seconds when denied (at least 1); 0 when allowed.",
        ),
        member(
            c"retry_after_ns",
            Py_T_ULONGLONG,
            offset_of!(DecisionObject, d.retry_after_ns),
            c"The exact wait in nanoseconds when denied; 0 when allowed.",
        ),
        member(
            c"table_full",
            Py_T_BOOL,
            offset_of!(DecisionObject, d.table_full),
            c"Whether the table had no cell for the key, so the full-table mode answered.",
        ),
        // SAFETY: an all-zero PyMemberDef (null pointers, zero numbers) is the sentinel.
        unsafe { std::mem::zeroed() },
    ];
    let getsets = vec![
        getset(c"policy", get_policy, c"The name of the policy that decided."),
        getset(c"headers", get_headers, c"The response headers, name to value, in the contract's order and case."),
        getset(
            c"header_list",
            get_header_list,
            c"The headers as `(name, value)` str pairs (for WSGI), in order and case.",
        ),
        getset(
            c"asgi_headers",
            get_asgi_headers,
            c"The headers as `(name, value)` byte pairs with lower-case names, as ASGI's `http.response.start` wants them.",
        ),
        getset(c"body", get_body, c"The exact 429 body when denied, `None` when allowed."),
        getset(
            c"content_type",
            get_content_type,
            c"`application/json` when denied (the body's type), `None` when allowed.",
        ),
        // SAFETY: an all-zero PyGetSetDef (null pointers) is the sentinel.
        unsafe { std::mem::zeroed() },
    ];
    // The descriptors point into these arrays for the life of the type (and the type
    // lives as long as the process): leak them.
    let members: &'static mut [ffi::PyMemberDef] = members.leak();
    let getsets: &'static mut [ffi::PyGetSetDef] = getsets.leak();
    let mut slots = [
        ffi::PyType_Slot {
            slot: ffi::Py_tp_doc,
            pfunc: c"One request's answer: the decision, its figures, its headers and its 429 body."
                .as_ptr()
                .cast_mut()
                .cast(),
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_dealloc,
            pfunc: decision_dealloc as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_repr,
            pfunc: decision_repr as *mut c_void,
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_members,
            pfunc: members.as_mut_ptr().cast(),
        },
        ffi::PyType_Slot {
            slot: ffi::Py_tp_getset,
            pfunc: getsets.as_mut_ptr().cast(),
        },
        ffi::PyType_Slot {
            slot: 0,
            pfunc: ptr::null_mut(),
        },
    ];
    let mut spec = ffi::PyType_Spec {
        name: c"aisoule_ratelimit._native.Decision".as_ptr(),
        basicsize: c_int::try_from(size_of::<DecisionObject>()).unwrap_or(c_int::MAX),
        itemsize: 0,
        // Not subclassable (no Py_TPFLAGS_BASETYPE), not constructible from Python, no
        // attribute assignment on the type; no Py_TPFLAGS_HAVE_GC (no cycles).
        flags: (ffi::Py_TPFLAGS_DEFAULT
            | ffi::Py_TPFLAGS_IMMUTABLETYPE
            | ffi::Py_TPFLAGS_DISALLOW_INSTANTIATION) as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: the spec and its slots are valid for the call (CPython copies what it keeps
    // of them, except the member and getset arrays, leaked above); the thread is attached.
    let ty = unsafe { ffi::PyType_FromSpec(&mut spec) };
    // SAFETY: a new reference to a type, or null with an exception set.
    unsafe {
        Ok(Bound::from_owned_ptr_or_err(py, ty)?
            .cast_into_unchecked::<PyType>()
            .unbind())
    }
}
