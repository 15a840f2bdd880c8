//! `aisoule_ratelimit._native`: the Python face of the `aisoule-ratelimit` core.
//!
//! Thin on purpose: it converts Python values, reads the clocks and maps errors to
//! Python exceptions. Every figure and every byte of header and body text comes from the
//! core ([`aisoule_ratelimit::Decision::for_each_header`], [`aisoule_ratelimit::Decision::write_body`]).
//!
//! Free-threading: the module holds no state guarded by the GIL. The limiter's table is
//! the core's lock-free cells; every class is `frozen` (no `&mut self`), so instances
//! are shared between threads without locks.

mod call;
mod decision;
mod error;

use std::io;
use std::path::PathBuf;

use aisoule_ratelimit::json::parse_config;
use aisoule_ratelimit::{
    Config, FullTableMode, HeaderStyle, Limiter as CoreLimiter, Now, Seed, Target, BODY_CONTENT_TYPE,
    CELL_SIZE,
};
use aisoule_ratelimit_host::{request_now, try_os_seed, SharedError, SharedTable, Table};
use pyo3::exceptions::{PyMemoryError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyInt, PyList, PyMapping, PySequence, PyString, PyType};

use crate::decision::{decision_type, new_decision};
use crate::error::{check_error, json_error, shared_error, type_name};

/// The number of table cells when neither the caller nor the config names one.
const DEFAULT_CAPACITY: u64 = 65_536;

/// A policy's rule limits, each with its Python int.
type RuleLimits = Box<[(u64, Py<PyInt>)]>;

/// The limiter's state, shared by every [`Decision`] it returns.
#[pyclass(frozen, module = "aisoule_ratelimit._native", name = "Limiter")]
struct Limiter {
    core: CoreLimiter<Table>,
    style: HeaderStyle,
    capacity: u64,
    /// The shared segment's path, when the table is shared.
    shared: Option<PathBuf>,
    /// The policies' names as Python strings, by `PolicyId::index()`.
    names: Box<[Py<PyString>]>,
    /// Every rule's limit and its Python int, by policy index and rule index: a
    /// decision's `limit` reuses the int when the core's figure is that value.
    limits: Box<[RuleLimits]>,
    /// The `Decision` type, at hand for every check.
    decision_type: Py<PyType>,
}

/// A ValueError when `obj` is an int out of `[0, 2**64)`, a TypeError when it is no int.
fn extract_u64(obj: &Bound<'_, PyAny>, field: &str, range: &str) -> PyResult<u64> {
    match obj.extract::<u64>() {
        Ok(v) => Ok(v),
        Err(_) if obj.is_instance_of::<PyInt>() => {
            Err(PyValueError::new_err(format!("{field}: must be from {range}")))
        }
        Err(_) => Err(PyTypeError::new_err(format!(
            "{field} must be an int, not {}",
            type_name(obj)
        ))),
    }
}

/// The text of a `str` argument, or a TypeError naming `field`.
fn expect_str<'a>(obj: &'a Bound<'_, PyAny>, field: &str) -> PyResult<&'a str> {
    match obj.cast::<PyString>() {
        Ok(s) => s.to_str(),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{field} must be a str, not {}",
            type_name(obj)
        ))),
    }
}

impl Limiter {
    /// Builds a limiter from the config text of FORMAT.md (the inner object).
    fn build(
        py: Python<'_>,
        text: &str,
        on_full: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        header_style: Option<&Bound<'_, PyAny>>,
        shared: Option<PathBuf>,
    ) -> PyResult<Self> {
        // None is the documented default of each keyword.
        let on_full = match on_full
            .map(|v| expect_str(v, "on_full"))
            .transpose()?
            .unwrap_or("open")
        {
            "open" => FullTableMode::Open,
            "closed" => FullTableMode::Closed,
            _ => return Err(PyValueError::new_err(r#"on_full: must be "open" or "closed""#)),
        };
        let style = match header_style
            .map(|v| expect_str(v, "header_style"))
            .transpose()?
            .unwrap_or("x-ratelimit")
        {
            "x-ratelimit" => HeaderStyle::XRateLimit,
            "ietf" => HeaderStyle::Ietf,
            "both" => HeaderStyle::Both,
            _ => {
                return Err(PyValueError::new_err(
                    r#"header_style: must be "x-ratelimit", "ietf" or "both""#,
                ))
            }
        };
        let seed = seed.map(seed_from).transpose()?;
        let parsed = parse_config(text).map_err(|e| json_error(&e))?;
        if let Some(path) = shared {
            if seed.is_some() {
                return Err(PyValueError::new_err(
                    "seed: a shared table keeps its own seed in its segment; give no seed",
                ));
            }
            let table = py
                .detach(|| match parsed.capacity {
                    Some(c) => SharedTable::open(&path, Some(c), &parsed.config),
                    None => match SharedTable::open(&path, None, &parsed.config) {
                        Err(SharedError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                            SharedTable::open(&path, Some(DEFAULT_CAPACITY), &parsed.config)
                        }
                        other => other,
                    },
                })
                .map_err(|e| shared_error(py, &path, &e))?;
            let seed = table.seed();
            let capacity = table.capacity() as u64;
            return Limiter::assemble(
                py,
                parsed.config,
                Table::Shared(table),
                seed,
                on_full,
                style,
                capacity,
                Some(path),
            );
        }
        // No random source: the OSError of getrandom(2), not a panic.
        let seed = match seed {
            Some(s) => s,
            None => try_os_seed()?,
        };
        let capacity = parsed.capacity.unwrap_or(DEFAULT_CAPACITY);
        let table = usize::try_from(capacity)
            .ok()
            .and_then(Table::try_owned)
            .ok_or_else(|| {
                PyMemoryError::new_err(format!(
                    "capacity: no memory for {capacity} cells of {CELL_SIZE} bytes"
                ))
            })?;
        Limiter::assemble(py, parsed.config, table, seed, on_full, style, capacity, None)
    }

    #[allow(clippy::too_many_arguments, reason = "the parts of a limiter")]
    fn assemble(
        py: Python<'_>,
        config: Config,
        table: Table,
        seed: Seed,
        on_full: FullTableMode,
        style: HeaderStyle,
        capacity: u64,
        shared: Option<PathBuf>,
    ) -> PyResult<Limiter> {
        let names = config
            .policies()
            .iter()
            .map(|p| PyString::intern(py, p.name()).unbind())
            .collect();
        let limits = config
            .policies()
            .iter()
            .map(|p| {
                p.rules()
                    .iter()
                    .map(|r| (r.limit(), PyInt::new(py, r.limit()).unbind()))
                    .collect()
            })
            .collect();
        Ok(Limiter {
            core: CoreLimiter::with_full_table_mode(config, table, seed, on_full),
            style,
            capacity,
            shared,
            names,
            limits,
            decision_type: decision_type(py)?.clone().unbind(),
        })
    }

    /// `check` and `peek` (see `call`): resolves the target and cost, reads the clocks,
    /// and asks the core.
    #[allow(clippy::too_many_arguments, reason = "the Python signature of check/peek")]
    fn decide<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'_, PyAny>,
        route: Option<&Bound<'_, PyAny>>,
        policy: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
        now_ns: Option<&Bound<'_, PyAny>>,
        peek: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let key: &[u8] = if let Ok(s) = key.cast::<PyString>() {
            s.to_str()?.as_bytes()
        } else if let Ok(b) = key.cast::<PyBytes>() {
            b.as_bytes()
        } else {
            return Err(PyTypeError::new_err(format!(
                "key must be str or bytes, not {}",
                type_name(key)
            )));
        };
        let config = this.core.config();
        let target = match (route, policy) {
            (Some(r), None) => Target::Route(expect_str(r, "route")?),
            (None, Some(p)) => {
                let name = expect_str(p, "policy")?;
                Target::Policy(
                    config
                        .policy_id(name)
                        .ok_or_else(|| PyValueError::new_err(format!("policy: no policy named {name:?}")))?,
                )
            }
            (None, None) => Target::Policy(config.default_policy()),
            (Some(_), Some(_)) => {
                return Err(PyTypeError::new_err("give a route or a policy, not both"));
            }
        };
        let cost = match cost {
            None => 1,
            Some(c) => extract_u64(c, "cost", "1 to the capacity of every rule of the policy")?,
        };
        let now = match now_ns {
            None => request_now(),
            Some(n) => Now::same(extract_u64(n, "now_ns", "0 to 2**64 - 1")?),
        };
        let result = if peek {
            this.core.peek(key, target, cost, now)
        } else {
            this.core.check(key, target, cost, now)
        };
        match result {
            Ok(d) => new_decision(slf, d),
            Err(e) => {
                let id = match target {
                    Target::Route(r) => config.route(r),
                    Target::Policy(id) => id,
                };
                Err(check_error(e, config.policy(id)))
            }
        }
    }
}

/// The seed from 16 bytes (two little-endian u64) or an int in `[0, 2**128)`.
fn seed_from(obj: &Bound<'_, PyAny>) -> PyResult<Seed> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        let bytes: [u8; 16] = b
            .as_bytes()
            .try_into()
            .map_err(|_| PyValueError::new_err("seed: must be 16 bytes"))?;
        let (lo, hi) = bytes.split_at(8);
        let word = |s: &[u8]| u64::from_le_bytes(s.try_into().unwrap_or([0; 8]));
        return Ok(Seed([word(lo), word(hi)]));
    }
    if obj.is_instance_of::<PyInt>() {
        let v: u128 = obj
            .extract()
            .map_err(|_| PyValueError::new_err("seed: must be from 0 to 2**128 - 1"))?;
        return Ok(Seed([v as u64, (v >> 64) as u64]));
    }
    Err(PyTypeError::new_err(format!(
        "seed must be bytes or an int, not {}",
        type_name(obj)
    )))
}

/// The path of a shared segment: a str or an `os.PathLike`; `field` names the argument.
fn shared_path(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<PathBuf> {
    obj.extract::<PathBuf>().map_err(|_| {
        PyTypeError::new_err(format!(
            "{field} must be a str or os.PathLike, not {}",
            type_name(obj)
        ))
    })
}

/// The config object of FORMAT.md as JSON text, from the JSON-shaped Python values of
/// `Limiter(...)` and `Limiter.open_shared(...)` (the core's parser then checks it).
fn config_text<'py>(
    py: Python<'py>,
    policies: Option<&Bound<'py, PyAny>>,
    routes: Option<&Bound<'py, PyAny>>,
    default_policy: Option<&Bound<'py, PyAny>>,
    capacity: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyString>> {
    let cfg = PyDict::new(py);
    if let Some(p) = policies {
        if p.cast::<PyMapping>().is_err() {
            return Err(PyTypeError::new_err(format!(
                "policies must be a mapping of policy names to lists of rules, not {}",
                type_name(p)
            )));
        }
        cfg.set_item("policies", PyDict::from_sequence(&p.call_method0("items")?)?)?;
    }
    if let Some(r) = routes {
        if r.is_instance_of::<PyString>() || r.is_instance_of::<PyBytes>() || r.cast::<PySequence>().is_err()
        {
            return Err(PyTypeError::new_err(format!(
                "routes must be a list of {{\"prefix\": ..., \"policy\": ...}} objects, not {}",
                type_name(r)
            )));
        }
        cfg.set_item(
            "routes",
            PyList::new(py, r.try_iter()?.collect::<PyResult<Vec<_>>>()?)?,
        )?;
    }
    if let Some(d) = default_policy {
        cfg.set_item("default_policy", expect_str(d, "default_policy")?)?;
    }
    if let Some(c) = capacity {
        if !c.is_instance_of::<PyInt>() || c.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyTypeError::new_err(format!(
                "capacity must be an int, not {}",
                type_name(c)
            )));
        }
        // The core validates the number (`capacity: must be from 1 to 4294967296`).
        cfg.set_item("capacity", c)?;
    }
    // NaN and infinities pass as `NaN`/`Infinity`, which the core refuses naming the field.
    let text = py.import("json")?.call_method1("dumps", (cfg,))?;
    Ok(text.cast_into::<PyString>()?)
}

#[pymethods]
impl Limiter {
    /// A limiter with the documented policies, or the ones given.
    ///
    /// `policies` and `routes` take the JSON-shaped values of FORMAT.md's config line.
    #[new]
    #[pyo3(signature = (policies=None, routes=None, default_policy=None, capacity=None, on_full=None, seed=None, header_style=None, shared=None))]
    #[pyo3(
        text_signature = "(policies=None, routes=None, default_policy=None, capacity=None, on_full='open', seed=None, header_style='x-ratelimit', shared=None)"
    )]
    #[allow(clippy::too_many_arguments, reason = "the Python signature")]
    fn new(
        py: Python<'_>,
        policies: Option<&Bound<'_, PyAny>>,
        routes: Option<&Bound<'_, PyAny>>,
        default_policy: Option<&Bound<'_, PyAny>>,
        capacity: Option<&Bound<'_, PyAny>>,
        on_full: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        header_style: Option<&Bound<'_, PyAny>>,
        shared: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let text = config_text(py, policies, routes, default_policy, capacity)?;
        let text = text.to_str()?;
        Limiter::build(
            py,
            text,
            on_full,
            seed,
            header_style,
            shared.map(|p| shared_path(p, "shared")).transpose()?,
        )
    }

    /// A limiter from a config's JSON text (FORMAT.md's config object).
    #[staticmethod]
    #[pyo3(signature = (text, *, on_full=None, seed=None, header_style=None, shared=None))]
    #[pyo3(text_signature = "(text, *, on_full='open', seed=None, header_style='x-ratelimit', shared=None)")]
    fn from_json(
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        on_full: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        header_style: Option<&Bound<'_, PyAny>>,
        shared: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let text = if let Ok(b) = text.cast::<PyBytes>() {
            std::str::from_utf8(b.as_bytes())
                .map_err(|e| PyValueError::new_err(format!("config: not UTF-8: {e}")))?
        } else {
            expect_str(text, "text")?
        };
        Limiter::build(
            py,
            text,
            on_full,
            seed,
            header_style,
            shared.map(|p| shared_path(p, "shared")).transpose()?,
        )
    }

    /// A limiter over the table in the shared-memory segment at `path`, which processes
    /// of every language (Python, Node, C) open at once and count in together.
    ///
    /// The first process creates the segment (mode 0600, `capacity` cells, default
    /// 65,536, and a fresh seed from the OS); the others attach to it: their policies and
    /// routes must be the segment's, and `capacity`, when given, its capacity. The hash
    /// seed is the segment's. A segment that does not fit raises ValueError naming the
    /// difference; a system error (missing directory, read-only file) the OSError
    /// subclass of its errno, with `filename` set. A failed open changes no file.
    #[classmethod]
    #[pyo3(signature = (path, capacity=None, policies=None, routes=None, default_policy=None, on_full=None, header_style=None))]
    #[pyo3(
        text_signature = "(path, capacity=None, policies=None, routes=None, default_policy=None, on_full='open', header_style='x-ratelimit')"
    )]
    #[allow(clippy::too_many_arguments, reason = "the Python signature")]
    fn open_shared(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        capacity: Option<&Bound<'_, PyAny>>,
        policies: Option<&Bound<'_, PyAny>>,
        routes: Option<&Bound<'_, PyAny>>,
        default_policy: Option<&Bound<'_, PyAny>>,
        on_full: Option<&Bound<'_, PyAny>>,
        header_style: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let text = config_text(py, policies, routes, default_policy, capacity)?;
        Limiter::build(
            py,
            text.to_str()?,
            on_full,
            None,
            header_style,
            Some(shared_path(path, "path")?),
        )
    }

    /// The policy a request path maps to.
    fn route_policy(&self, py: Python<'_>, route: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
        let id = self.core.config().route(expect_str(route, "route")?);
        Ok(self.names[id.index()].clone_ref(py))
    }

    /// The number of table cells.
    #[getter]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The shared segment's path, or None for a table of this process.
    #[getter]
    fn shared(&self) -> Option<PathBuf> {
        self.shared.clone()
    }

    /// The policies' names, in config order.
    #[getter]
    fn policies(&self, py: Python<'_>) -> Vec<Py<PyString>> {
        self.names.iter().map(|n| n.clone_ref(py)).collect()
    }

    /// The name of the policy of paths that match no route.
    #[getter]
    fn default_policy(&self, py: Python<'_>) -> Py<PyString> {
        self.names[self.core.config().default_policy().index()].clone_ref(py)
    }

    /// `"open"` or `"closed"`.
    #[getter]
    fn on_full(&self) -> &'static str {
        match self.core.full_table_mode() {
            FullTableMode::Open => "open",
            FullTableMode::Closed => "closed",
        }
    }

    /// `"x-ratelimit"`, `"ietf"` or `"both"`.
    #[getter]
    fn header_style(&self) -> &'static str {
        match self.style {
            HeaderStyle::XRateLimit => "x-ratelimit",
            HeaderStyle::Ietf => "ietf",
            HeaderStyle::Both => "both",
        }
    }

    /// Full-table answers since the limiter was made: `{"table_full_open": n,
    /// "table_full_closed": n}`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.core.stats();
        let d = PyDict::new(py);
        d.set_item("table_full_open", s.table_full_open)?;
        d.set_item("table_full_closed", s.table_full_closed)?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let names: Vec<String> = self
            .names
            .iter()
            .map(|n| n.bind(py).to_str().map(str::to_owned))
            .collect::<PyResult<_>>()?;
        Ok(format!(
            "Limiter(policies={names:?}, capacity={}, on_full={:?}, header_style={:?}, shared={})",
            self.capacity,
            self.on_full(),
            self.header_style(),
            match &self.shared {
                Some(p) => format!("{:?}", p.display().to_string()),
                None => "None".to_owned(),
            }
        ))
    }
}

/// The header names the core writes. Their Python objects are made once and reused;
/// a name not in this list (a newer core) is made per call.
const HEADER_NAMES: [&str; 6] = [
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
    "Retry-After",
];

#[allow(
    clippy::declare_interior_mutable_const,
    reason = "an array initializer, each used once"
)]
const NAME_STR: PyOnceLock<Py<PyString>> = PyOnceLock::new();
#[allow(
    clippy::declare_interior_mutable_const,
    reason = "an array initializer, each used once"
)]
const NAME_BYTES: PyOnceLock<Py<PyBytes>> = PyOnceLock::new();
static NAME_STRS: [PyOnceLock<Py<PyString>>; 6] = [NAME_STR; 6];
static NAME_LOWER: [PyOnceLock<Py<PyBytes>>; 6] = [NAME_BYTES; 6];

/// `name` as a Python str, in the contract's case.
fn name_str<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyString> {
    match HEADER_NAMES.iter().position(|n| *n == name) {
        Some(i) => NAME_STRS[i]
            .get_or_init(py, || PyString::intern(py, name).unbind())
            .bind(py)
            .clone(),
        None => PyString::new(py, name),
    }
}

/// `name` in lower case as Python bytes, as ASGI wants header names.
fn name_lower<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyBytes> {
    let make = || PyBytes::new(py, name.to_ascii_lowercase().as_bytes());
    match HEADER_NAMES.iter().position(|n| *n == name) {
        Some(i) => NAME_LOWER[i].get_or_init(py, || make().unbind()).bind(py).clone(),
        None => make(),
    }
}

/// The native module.
#[pymodule(gil_used = false)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Limiter>()?;
    call::add_methods(&m.py().get_type::<Limiter>())?;
    m.add("Decision", decision_type(m.py())?)?;
    m.add("BODY_CONTENT_TYPE", BODY_CONTENT_TYPE)?;
    m.add("DEFAULT_CAPACITY", DEFAULT_CAPACITY)?;
    m.add("CELL_SIZE", CELL_SIZE)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
