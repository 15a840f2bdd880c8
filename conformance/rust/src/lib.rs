//! Replays conformance traces (`conformance/FORMAT.md`) through the Rust core.
//!
//! The answers are built only from what the core returns: the decision, its headers
//! (written by the core) and its body (written by the core).

use std::fmt;

use aisoule_ratelimit::json::parse_config;
use aisoule_ratelimit::{Cell, CheckError, Config, HeaderStyle, Limiter, Now, Seed, Target};
use serde_json::{Map, Value};

/// The table size when a trace does not name one.
pub const DEFAULT_CAPACITY: u64 = 65_536;

/// A malformed trace: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for TraceError {}

/// One request line of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Unix epoch milliseconds (both clocks).
    pub t_ms: u64,
    /// The API key.
    pub key: String,
    /// The request path.
    pub route: String,
    /// The cost (default 1).
    pub cost: u64,
}

/// A parsed trace: the config line's text (if any), the capacity, and the requests with
/// their line numbers.
#[derive(Debug)]
pub struct Trace {
    /// The limiter config.
    pub config: Config,
    /// Table cells.
    pub capacity: u64,
    /// Requests with their 1-based line numbers.
    pub requests: Vec<(usize, Request)>,
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str, line: usize) -> Result<&'a Value, TraceError> {
    obj.get(name).ok_or_else(|| TraceError {
        line,
        message: format!("missing field `{name}`"),
    })
}

/// Parses a trace.
///
/// # Errors
///
/// A [`TraceError`] naming the first malformed line.
pub fn parse_trace(text: &str) -> Result<Trace, TraceError> {
    let mut config = None;
    let mut capacity = DEFAULT_CAPACITY;
    let mut requests = Vec::new();
    let mut seen_request = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let bad = |message: String| TraceError { line, message };
        let value: Value = serde_json::from_str(raw).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad("must be a JSON object".into()))?;
        if let Some(cfg) = obj.get("config") {
            if seen_request || config.is_some() {
                return Err(bad("`config` may only be on the first line".into()));
            }
            if obj.len() != 1 {
                return Err(bad("a config line holds only `config`".into()));
            }
            let parsed = parse_config(&cfg.to_string()).map_err(|e| bad(format!("config.{e}")))?;
            capacity = parsed.capacity.unwrap_or(DEFAULT_CAPACITY);
            config = Some(parsed.config);
            continue;
        }
        seen_request = true;
        for k in obj.keys() {
            if !matches!(k.as_str(), "t_ms" | "key" | "route" | "cost") {
                return Err(bad(format!("unknown field `{k}`")));
            }
        }
        let t_ms = field(obj, "t_ms", line)?
            .as_u64()
            .ok_or_else(|| bad("`t_ms` must be a whole number of milliseconds".into()))?;
        let key = field(obj, "key", line)?
            .as_str()
            .ok_or_else(|| bad("`key` must be a string".into()))?;
        let route = field(obj, "route", line)?
            .as_str()
            .ok_or_else(|| bad("`route` must be a string".into()))?;
        let cost = match obj.get("cost") {
            None => 1,
            Some(c) => c
                .as_u64()
                .ok_or_else(|| bad("`cost` must be a whole number".into()))?,
        };
        requests.push((
            line,
            Request {
                t_ms,
                key: key.to_owned(),
                route: route.to_owned(),
                cost,
            },
        ));
    }
    Ok(Trace {
        config: config.unwrap_or_else(Config::documented),
        capacity,
        requests,
    })
}

/// Runs a parsed trace and returns one answer per request.
///
/// # Errors
///
/// A [`TraceError`] for a `t_ms` whose nanoseconds pass `u64`, or a capacity too large.
pub fn run(trace: &Trace) -> Result<Vec<Value>, TraceError> {
    let capacity = usize::try_from(trace.capacity).map_err(|_| TraceError {
        line: 1,
        message: "config.capacity: too large".into(),
    })?;
    let cells: Vec<Cell> = (0..capacity).map(|_| Cell::new()).collect();
    let limiter = Limiter::new(trace.config.clone(), cells, Seed([0x5eed, 0xc0ffee]));
    let mut out = Vec::with_capacity(trace.requests.len());
    for (line, req) in &trace.requests {
        let ns = req.t_ms.checked_mul(1_000_000).ok_or_else(|| TraceError {
            line: *line,
            message: "`t_ms` is too large for nanoseconds in 64 bits".into(),
        })?;
        let answer = match limiter.check(
            req.key.as_bytes(),
            Target::Route(&req.route),
            req.cost,
            Now::same(ns),
        ) {
            Ok(d) => {
                let policy = limiter.policy(d.policy);
                let mut headers = Map::new();
                let _ = d.for_each_header(policy, HeaderStyle::XRateLimit, |name, value| {
                    headers.insert(name.to_owned(), Value::String(value.to_owned()));
                    Ok::<(), ()>(())
                });
                let mut body = String::new();
                let _ = d.write_body(&mut body);
                let mut obj = Map::new();
                obj.insert("allowed".into(), Value::Bool(d.allowed));
                obj.insert("status".into(), Value::from(d.status()));
                obj.insert("policy".into(), Value::String(policy.name().to_owned()));
                obj.insert("headers".into(), Value::Object(headers));
                obj.insert(
                    "body".into(),
                    if d.allowed {
                        Value::Null
                    } else {
                        Value::String(body)
                    },
                );
                Value::Object(obj)
            }
            Err(CheckError::InvalidCost) => serde_json::json!({ "error": "invalid_cost" }),
            Err(e) => serde_json::json!({ "error": e.to_string() }),
        };
        out.push(answer);
    }
    Ok(out)
}

/// Parses and runs a trace, returning the answer lines as compact JSON.
///
/// # Errors
///
/// As [`parse_trace`] and [`run`].
pub fn replay(text: &str) -> Result<Vec<String>, TraceError> {
    Ok(run(&parse_trace(text)?)?.iter().map(Value::to_string).collect())
}

/// The first difference between an answer and the expected one, as a field path.
pub fn first_difference(got: &Value, want: &Value) -> Option<String> {
    fn walk(path: &str, got: &Value, want: &Value) -> Option<String> {
        match (got, want) {
            (Value::Object(g), Value::Object(w)) => {
                for (k, wv) in w {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match g.get(k) {
                        None => return Some(format!("{p}: missing, expected {wv}")),
                        Some(gv) => {
                            if let Some(d) = walk(&p, gv, wv) {
                                return Some(d);
                            }
                        }
                    }
                }
                g.keys().find(|k| !w.contains_key(*k)).map(|k| {
                    format!(
                        "{}{k}: not expected",
                        if path.is_empty() {
                            String::new()
                        } else {
                            format!("{path}.")
                        }
                    )
                })
            }
            _ if got == want => None,
            _ => Some(format!(
                "{}: got {got}, expected {want}",
                if path.is_empty() { "answer" } else { path }
            )),
        }
    }
    walk("", got, want)
}
