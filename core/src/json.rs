//! The JSON config of `conformance/FORMAT.md`, parsed without allocation.
//!
//! One parser for every binding and every replay, so one config file means the same in
//! Rust, Python, Node and C. Errors name the field (`policies.alpha[1].limit`).
//!
//! ```
//! use aisoule_ratelimit::json::parse_config;
//!
//! let parsed = parse_config(r#"{"policies": {"free": [{"algorithm": "window", "limit": 10, "period_ms": 60000}]},
//!                               "routes": [], "default_policy": "free", "capacity": 1024}"#).unwrap();
//! assert_eq!(parsed.config.policies()[0].name(), "free");
//! assert_eq!(parsed.capacity, Some(1024));
//! ```
#![allow(
    clippy::result_large_err,
    reason = "no allocator to box into: the error carries its field path inline, and parsing a config is not a hot path"
)]

use core::fmt::{self, Write};

use heapless::{String, Vec};

use crate::policy::{Config, ConfigError, Policy, MAX_POLICIES, MAX_PREFIX_LEN, MAX_ROUTES, MAX_RULES};
use crate::rule::{Algorithm, Rule, RuleError, NS_PER_MS};
use crate::RuleSpec;

/// The longest field path an error names.
pub const MAX_PATH_LEN: usize = 96;
/// The deepest nesting the parser follows.
const MAX_DEPTH: usize = 16;
/// The largest `capacity` a config may ask for (2^32 cells, 64 GiB).
pub const MAX_CAPACITY: u64 = 1 << 32;

/// A parsed config: the limiter's [`Config`] and the table capacity, when given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedConfig {
    /// Policies, routes and the default policy.
    pub config: Config,
    /// The number of table cells, when the config names it.
    pub capacity: Option<u64>,
}

/// What was wrong with a config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Not JSON at this byte offset.
    Syntax(usize),
    /// A value of the wrong JSON type (`expected` names the type).
    Type(&'static str),
    /// A required field is missing.
    Missing,
    /// A field the format does not have.
    Unknown,
    /// A string longer than the core's fixed buffers.
    TooLong,
    /// An `algorithm` other than `"gcra"` or `"window"`.
    Algorithm,
    /// `burst` on a window rule.
    BurstOnWindow,
    /// `capacity` is 0 or above [`MAX_CAPACITY`].
    Capacity,
    /// A value the core refused.
    Config(ConfigError),
}

/// A config error: what and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonError {
    /// What was wrong.
    pub kind: JsonErrorKind,
    /// The field, as `policies.alpha[1].limit` (empty for the whole text).
    pub path: String<MAX_PATH_LEN>,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "config"
        } else {
            self.path.as_str()
        };
        match self.kind {
            JsonErrorKind::Syntax(at) => write!(f, "{path}: invalid JSON at byte {at}"),
            JsonErrorKind::Type(expected) => write!(f, "{path}: must be {expected}"),
            JsonErrorKind::Missing => write!(f, "{path}: is required"),
            JsonErrorKind::Unknown => write!(f, "{path}: is not a config field"),
            JsonErrorKind::TooLong => write!(f, "{path}: is too long"),
            JsonErrorKind::Algorithm => write!(f, "{path}: must be \"gcra\" or \"window\""),
            JsonErrorKind::BurstOnWindow => write!(f, "{path}: is only for \"gcra\" rules"),
            JsonErrorKind::Capacity => write!(f, "{path}: must be from 1 to 4294967296"),
            JsonErrorKind::Config(e) => write!(f, "{path}: {e}"),
        }
    }
}

type Res<T> = Result<T, JsonError>;
type Text = String<MAX_PREFIX_LEN>;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
    path: String<MAX_PATH_LEN>,
}

/// Parses a config object: `{"policies": {...}, "routes": [...], "default_policy": ...,
/// "capacity": ...}`. A missing field takes the documented default (SEMANTICS.md 1).
///
/// # Errors
///
/// A [`JsonError`] naming the field.
pub fn parse_config(text: &str) -> Result<ParsedConfig, JsonError> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
        path: String::new(),
    };
    let parsed = p.config()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(p.syntax());
    }
    Ok(parsed)
}

/// A route as parsed, before its policy name is resolved.
struct RawRoute {
    prefix: Text,
    policy: Text,
}

impl<'a> Parser<'a> {
    fn err(&self, kind: JsonErrorKind) -> JsonError {
        JsonError {
            kind,
            path: self.path.clone(),
        }
    }

    fn syntax(&self) -> JsonError {
        self.err(JsonErrorKind::Syntax(self.pos))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Res<()> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    /// Appends `.name` or `[i]` to the path for the duration of `f`.
    fn at<T>(&mut self, seg: fmt::Arguments<'_>, f: impl FnOnce(&mut Self) -> Res<T>) -> Res<T> {
        let len = self.path.len();
        // A path too long to name is cut, never an error of its own.
        let _ = self.path.write_fmt(seg);
        let r = f(self);
        self.path.truncate(len);
        r
    }

    fn type_err<T>(&mut self, expected: &'static str) -> Res<T> {
        // Distinguish a wrong type from broken JSON.
        let start = self.pos;
        self.skip_value()?;
        self.pos = start;
        Err(self.err(JsonErrorKind::Type(expected)))
    }

    /// Iterates an object's members, calling `f` with each key (the value is next).
    fn object(&mut self, mut f: impl FnMut(&mut Self, &str) -> Res<()>) -> Res<()> {
        if self.peek() != Some(b'{') {
            return self.type_err("an object");
        }
        self.enter()?;
        self.pos += 1;
        if self.eat(b'}') {
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.syntax());
            }
            let key = self.raw_string()?;
            self.expect(b':')?;
            let sep = if self.path.is_empty() { "" } else { "." };
            self.at(format_args!("{sep}{key}"), |p| f(p, &key))?;
            if self.eat(b',') {
                continue;
            }
            self.expect(b'}')?;
            self.depth -= 1;
            return Ok(());
        }
    }

    fn array(&mut self, mut f: impl FnMut(&mut Self, usize) -> Res<()>) -> Res<()> {
        if self.peek() != Some(b'[') {
            return self.type_err("an array");
        }
        self.enter()?;
        self.pos += 1;
        if self.eat(b']') {
            self.depth -= 1;
            return Ok(());
        }
        let mut i = 0;
        loop {
            self.at(format_args!("[{i}]"), |p| f(p, i))?;
            i += 1;
            if self.eat(b',') {
                continue;
            }
            self.expect(b']')?;
            self.depth -= 1;
            return Ok(());
        }
    }

    fn enter(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.syntax());
        }
        Ok(())
    }

    fn string(&mut self) -> Res<Text> {
        if self.peek() != Some(b'"') {
            return self.type_err("a string");
        }
        self.raw_string()
    }

    /// A JSON string at `pos` (which is `"`), unescaped into a fixed buffer.
    fn raw_string(&mut self) -> Res<Text> {
        self.pos += 1;
        let mut out = Text::new();
        let mut too_long = false;
        let mut push = |out: &mut Text, c: char| {
            if out.push(c).is_err() {
                too_long = true;
            }
        };
        loop {
            let Some(&b) = self.s.get(self.pos) else {
                return Err(self.syntax());
            };
            match b {
                b'"' => {
                    self.pos += 1;
                    break;
                }
                b'\\' => {
                    let esc = *self.s.get(self.pos + 1).ok_or_else(|| self.syntax())?;
                    self.pos += 2;
                    let c = match esc {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&hi) {
                                if self.s.get(self.pos) != Some(&b'\\')
                                    || self.s.get(self.pos + 1) != Some(&b'u')
                                {
                                    return Err(self.syntax());
                                }
                                self.pos += 2;
                                let lo = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.syntax());
                                }
                                0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
                            } else {
                                hi
                            };
                            char::from_u32(code).ok_or_else(|| self.syntax())?
                        }
                        _ => return Err(self.syntax()),
                    };
                    push(&mut out, c);
                }
                0..=0x1f => return Err(self.syntax()),
                _ => {
                    // One UTF-8 character (the input is a &str, so it is well formed).
                    let len = match b {
                        0x00..=0x7f => 1,
                        0xc0..=0xdf => 2,
                        0xe0..=0xef => 3,
                        _ => 4,
                    };
                    let end = (self.pos + len).min(self.s.len());
                    let ch = core::str::from_utf8(&self.s[self.pos..end]).map_err(|_| self.syntax())?;
                    for c in ch.chars() {
                        push(&mut out, c);
                    }
                    self.pos = end;
                }
            }
        }
        if too_long {
            return Err(self.err(JsonErrorKind::TooLong));
        }
        Ok(out)
    }

    fn hex4(&mut self) -> Res<u32> {
        let digits = self.s.get(self.pos..self.pos + 4).ok_or_else(|| self.syntax())?;
        let mut v = 0u32;
        for &d in digits {
            let x = (d as char).to_digit(16).ok_or_else(|| self.syntax())?;
            v = v * 16 + x;
        }
        self.pos += 4;
        Ok(v)
    }

    /// A non-negative whole number that fits in u64.
    fn integer(&mut self) -> Res<u64> {
        match self.peek() {
            Some(b'0'..=b'9') => {}
            Some(b'-') => {
                self.skip_value()?;
                return Err(self.err(JsonErrorKind::Type("a whole number from 0 to 2^64-1")));
            }
            _ => return self.type_err("a whole number"),
        }
        let start = self.pos;
        let mut v: u64 = 0;
        let mut overflow = false;
        while let Some(&d @ b'0'..=b'9') = self.s.get(self.pos) {
            match v.checked_mul(10).and_then(|x| x.checked_add((d - b'0') as u64)) {
                Some(x) => v = x,
                None => overflow = true,
            }
            self.pos += 1;
        }
        if self.s[start] == b'0' && self.pos - start > 1 {
            return Err(self.syntax());
        }
        if let Some(b'.' | b'e' | b'E') = self.s.get(self.pos) {
            self.pos = start;
            self.skip_value()?;
            return Err(self.err(JsonErrorKind::Type("a whole number")));
        }
        if overflow {
            return Err(self.err(JsonErrorKind::Type("a whole number from 0 to 2^64-1")));
        }
        Ok(v)
    }

    /// Skips one value of any type, checking its syntax.
    fn skip_value(&mut self) -> Res<()> {
        match self.peek() {
            Some(b'{') => self.object(|p, _| p.skip_value()),
            Some(b'[') => self.array(|p, _| p.skip_value()),
            Some(b'"') => self.raw_string_skip(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number_skip(),
            _ => Err(self.syntax()),
        }
    }

    fn raw_string_skip(&mut self) -> Res<()> {
        // Unescaping into a bounded buffer: a long string is fine when skipped.
        self.pos += 1;
        loop {
            match self.s.get(self.pos) {
                None | Some(0..=0x1f) => return Err(self.syntax()),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\\') => match self.s.get(self.pos + 1) {
                    Some(b'u') => {
                        self.pos += 2;
                        self.hex4()?;
                    }
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                    _ => return Err(self.syntax()),
                },
                Some(_) => self.pos += 1,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        if self.s.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax())
        }
    }

    fn number_skip(&mut self) -> Res<()> {
        let start = self.pos;
        if self.s.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.s.get(p.pos) {
                p.pos += 1;
            }
            p.pos > s
        };
        if !digits(self) {
            return Err(self.syntax());
        }
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if !digits(self) {
                return Err(self.syntax());
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.s.get(self.pos) {
                self.pos += 1;
            }
            if !digits(self) {
                return Err(self.syntax());
            }
        }
        let _ = start;
        Ok(())
    }

    fn config(&mut self) -> Res<ParsedConfig> {
        let mut policies: Option<Vec<Policy, MAX_POLICIES>> = None;
        let mut routes: Option<Vec<(RawRoute, String<MAX_PATH_LEN>), MAX_ROUTES>> = None;
        let mut default_policy: Option<(Text, String<MAX_PATH_LEN>)> = None;
        let mut capacity = None;
        self.object(|p, key| {
            match key {
                "policies" => policies = Some(p.policies()?),
                "routes" => routes = Some(p.routes()?),
                "default_policy" => {
                    let name = p.string()?;
                    default_policy = Some((name, p.path.clone()));
                }
                "capacity" => {
                    let c = p.integer()?;
                    if c == 0 || c > MAX_CAPACITY {
                        return Err(p.err(JsonErrorKind::Capacity));
                    }
                    capacity = Some(c);
                }
                _ => return Err(p.err(JsonErrorKind::Unknown)),
            }
            Ok(())
        })?;
        let policies_given = policies.is_some();
        let mut config = match policies {
            Some(list) => Config::new(&list).map_err(|e| self.field_err("policies", e))?,
            None => Config::documented(),
        };
        match routes {
            Some(list) => {
                config.clear_routes();
                for (route, path) in list {
                    config
                        .add_route(&route.prefix, &route.policy)
                        .map_err(|e| JsonError {
                            kind: JsonErrorKind::Config(e),
                            path,
                        })?;
                }
            }
            None if policies_given => {
                // The documented routes name documented policies; keep those that exist.
                for (prefix, policy) in crate::DOCUMENTED_ROUTES {
                    if config.policy_id(policy).is_some() {
                        let _ = config.add_route(prefix, policy);
                    }
                }
            }
            None => {}
        }
        let (name, path) = match default_policy {
            Some(d) => d,
            None => {
                let mut name = Text::new();
                let _ = name.push_str(crate::DOCUMENTED_DEFAULT_POLICY);
                let mut path = String::new();
                let _ = path.push_str("default_policy");
                (name, path)
            }
        };
        config.set_default_policy(&name).map_err(|e| JsonError {
            kind: JsonErrorKind::Config(e),
            path,
        })?;
        Ok(ParsedConfig { config, capacity })
    }

    fn field_err(&self, field: &str, e: ConfigError) -> JsonError {
        let mut path = String::new();
        let _ = path.push_str(field);
        JsonError {
            kind: JsonErrorKind::Config(e),
            path,
        }
    }

    fn policies(&mut self) -> Res<Vec<Policy, MAX_POLICIES>> {
        let mut list: Vec<Policy, MAX_POLICIES> = Vec::new();
        self.object(|p, name| {
            let mut rules: Vec<Rule, MAX_RULES> = Vec::new();
            let mut count = 0;
            p.array(|p, _| {
                count += 1;
                let rule = p.rule()?;
                rules
                    .push(rule)
                    .map_err(|_| p.err(JsonErrorKind::Config(ConfigError::RuleCount)))
            })?;
            let _ = count;
            let policy = Policy::new(name, &rules).map_err(|e| p.err(JsonErrorKind::Config(e)))?;
            if list.iter().any(|q| q.name() == name) {
                return Err(p.err(JsonErrorKind::Config(ConfigError::DuplicatePolicy)));
            }
            list.push(policy)
                .map_err(|_| p.err(JsonErrorKind::Config(ConfigError::PolicyCount)))
        })?;
        if list.is_empty() {
            return Err(self.err(JsonErrorKind::Config(ConfigError::PolicyCount)));
        }
        Ok(list)
    }

    fn rule(&mut self) -> Res<Rule> {
        let mut algorithm = None;
        let mut limit = None;
        let mut period_ms = None;
        let mut burst: Option<(u64, String<MAX_PATH_LEN>)> = None;
        let start_path = self.path.clone();
        self.object(|p, key| {
            match key {
                "algorithm" => {
                    let name = p.string()?;
                    algorithm = Some(match name.as_str() {
                        "gcra" => Algorithm::Gcra,
                        "window" => Algorithm::Window,
                        _ => return Err(p.err(JsonErrorKind::Algorithm)),
                    });
                }
                "limit" => limit = Some((p.integer()?, p.path.clone())),
                "period_ms" => period_ms = Some((p.integer()?, p.path.clone())),
                "burst" => burst = Some((p.integer()?, p.path.clone())),
                _ => return Err(p.err(JsonErrorKind::Unknown)),
            }
            Ok(())
        })?;
        let missing = |field: &str| {
            let mut path = start_path.clone();
            let _ = write!(path, ".{field}");
            JsonError {
                kind: JsonErrorKind::Missing,
                path,
            }
        };
        let algorithm = algorithm.ok_or_else(|| missing("algorithm"))?;
        let (limit, limit_path) = limit.ok_or_else(|| missing("limit"))?;
        let (period_ms, period_path) = period_ms.ok_or_else(|| missing("period_ms"))?;
        if algorithm == Algorithm::Window {
            if let Some((_, path)) = burst {
                return Err(JsonError {
                    kind: JsonErrorKind::BurstOnWindow,
                    path,
                });
            }
        }
        let burst_value = burst.as_ref().map_or(limit, |(b, _)| *b);
        let spec = RuleSpec {
            algorithm,
            limit,
            period_ms,
            burst: burst_value,
        };
        let at = |e: RuleError| {
            let path = match e {
                RuleError::Period => period_path.clone(),
                RuleError::Burst if burst.is_some() => {
                    burst.as_ref().map(|(_, p)| p.clone()).unwrap_or_default()
                }
                _ => limit_path.clone(),
            };
            JsonError {
                kind: JsonErrorKind::Config(ConfigError::Rule(e)),
                path,
            }
        };
        if period_ms.checked_mul(NS_PER_MS).is_none() {
            return Err(at(RuleError::Period));
        }
        spec.build().map_err(at)
    }

    fn routes(&mut self) -> Res<Vec<(RawRoute, String<MAX_PATH_LEN>), MAX_ROUTES>> {
        let mut list = Vec::new();
        self.array(|p, _| {
            let item_path = p.path.clone();
            let mut prefix = None;
            let mut policy: Option<(Text, String<MAX_PATH_LEN>)> = None;
            p.object(|p, key| {
                match key {
                    "prefix" => prefix = Some(p.string()?),
                    "policy" => policy = Some((p.string()?, p.path.clone())),
                    _ => return Err(p.err(JsonErrorKind::Unknown)),
                }
                Ok(())
            })?;
            let missing = |field: &str| {
                let mut path = item_path.clone();
                let _ = write!(path, ".{field}");
                JsonError {
                    kind: JsonErrorKind::Missing,
                    path,
                }
            };
            let prefix = prefix.ok_or_else(|| missing("prefix"))?;
            let (policy, policy_path) = policy.ok_or_else(|| missing("policy"))?;
            if prefix.is_empty() {
                let mut path = item_path.clone();
                let _ = path.push_str(".prefix");
                return Err(JsonError {
                    kind: JsonErrorKind::Config(ConfigError::Prefix),
                    path,
                });
            }
            list.push((RawRoute { prefix, policy }, policy_path))
                .map_err(|_| p.err(JsonErrorKind::Config(ConfigError::RouteCount)))
        })?;
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;

    use super::*;

    /// The error text for a config.
    fn err(text: &str) -> std::string::String {
        parse_config(text).expect_err(text).to_string()
    }

    fn with_rule(rule: &str) -> std::string::String {
        std::format!(
            r#"{{"policies": {{"alpha": [{{"algorithm": "window", "limit": 5, "period_ms": 1000}}, {rule}]}}, "default_policy": "alpha"}}"#
        )
    }

    #[test]
    fn missing_fields_take_the_documented_defaults() {
        let parsed = parse_config("{}").unwrap();
        assert_eq!(parsed.config, Config::documented());
        assert_eq!(parsed.capacity, None);
        let parsed = parse_config(r#" { "capacity" : 4096 } "#).unwrap();
        assert_eq!(parsed.config, Config::documented());
        assert_eq!(parsed.capacity, Some(4096));
        // Policies given, routes not: the documented routes whose policies exist.
        let parsed = parse_config(
            r#"{"policies": {"messaging": [{"algorithm": "gcra", "limit": 2, "period_ms": 1000}],
                             "standard": [{"algorithm": "window", "limit": 3, "period_ms": 1000}]}}"#,
        )
        .unwrap();
        let c = &parsed.config;
        assert_eq!(c.routes().len(), 1);
        assert_eq!(c.policy(c.route("/v1/messages/1")).name(), "messaging");
        assert_eq!(c.policy(c.route("/v1/media")).name(), "standard");
        // burst defaults to limit.
        assert_eq!(c.policies()[0].rules()[0].burst(), 2);
    }

    #[test]
    fn the_documented_config_as_json_is_the_documented_config() {
        let text = r#"{"policies": {
            "standard":  [{"algorithm": "window", "limit": 120, "period_ms": 60000}],
            "messaging": [{"algorithm": "window", "limit": 300, "period_ms": 60000},
                          {"algorithm": "gcra",   "limit": 5,   "period_ms": 1000, "burst": 5}],
            "media":     [{"algorithm": "window", "limit": 30,  "period_ms": 60000}]},
          "routes": [{"prefix": "/v1/messages", "policy": "messaging"},
                     {"prefix": "/v1/media",    "policy": "media"}],
          "default_policy": "standard", "capacity": 65536}"#;
        let parsed = parse_config(text).unwrap();
        assert_eq!(parsed.config, Config::documented());
        assert_eq!(parsed.capacity, Some(65_536));
    }

    #[test]
    fn errors_name_the_field() {
        let rule = |r: &str| err(&with_rule(r));
        assert_eq!(
            rule(r#"{"algorithm": "gcra", "limit": 0, "period_ms": 1000}"#),
            "policies.alpha[1].limit: must be from 1 to 1000000000"
        );
        assert_eq!(
            rule(r#"{"algorithm": "window", "limit": 3, "period_ms": 0}"#),
            "policies.alpha[1].period_ms: must be from 1 ms to 100 years"
        );
        assert_eq!(
            rule(r#"{"algorithm": "window", "limit": 3, "period_ms": 18446744073709551615}"#),
            "policies.alpha[1].period_ms: must be from 1 ms to 100 years"
        );
        assert!(
            rule(r#"{"algorithm": "gcra", "limit": 3, "period_ms": 1000, "burst": 0}"#)
                .starts_with("policies.alpha[1].burst: must be from 1 to 1000000000")
        );
        assert!(
            rule(r#"{"algorithm": "gcra", "limit": 3, "period_ms": 1000, "burst": 1000000001}"#)
                .starts_with("policies.alpha[1].burst: must be from 1")
        );
        assert_eq!(
            rule(r#"{"algorithm": "window", "limit": 3, "period_ms": 1000, "burst": 3}"#),
            "policies.alpha[1].burst: is only for \"gcra\" rules"
        );
        assert_eq!(
            rule(r#"{"algorithm": "window", "limit": 20000, "period_ms": 1000}"#),
            "policies.alpha[1].limit: is too large for the window's period (see Rule::max_window_limit)"
        );
        assert_eq!(
            rule(r#"{"algorithm": "leaky", "limit": 3, "period_ms": 1000}"#),
            "policies.alpha[1].algorithm: must be \"gcra\" or \"window\""
        );
        assert_eq!(
            rule(r#"{"limit": 3, "period_ms": 1000}"#),
            "policies.alpha[1].algorithm: is required"
        );
        assert_eq!(
            rule(r#"{"algorithm": "gcra", "period_ms": 1000}"#),
            "policies.alpha[1].limit: is required"
        );
        assert_eq!(
            rule(r#"{"algorithm": "gcra", "limit": 1}"#),
            "policies.alpha[1].period_ms: is required"
        );
        assert_eq!(
            rule(r#"{"algorithm": "gcra", "limit": 1, "period_ms": 1, "rate": 2}"#),
            "policies.alpha[1].rate: is not a config field"
        );
        assert_eq!(
            rule(r#"{"algorithm": "gcra", "limit": -1, "period_ms": 1000}"#),
            "policies.alpha[1].limit: must be a whole number from 0 to 2^64-1"
        );
        assert_eq!(
            rule(r#"{"algorithm": "gcra", "limit": 1.5, "period_ms": 1000}"#),
            "policies.alpha[1].limit: must be a whole number"
        );
        assert_eq!(
            rule(r#"{"algorithm": "gcra", "limit": "5", "period_ms": 1000}"#),
            "policies.alpha[1].limit: must be a whole number"
        );
        assert_eq!(
            rule(r#"{"algorithm": 5, "limit": 1, "period_ms": 1}"#),
            "policies.alpha[1].algorithm: must be a string"
        );
    }

    #[test]
    fn policy_route_and_top_level_errors() {
        let w = r#"{"algorithm": "window", "limit": 1, "period_ms": 1000}"#;
        assert_eq!(
            err(&std::format!(
                r#"{{"policies": {{"p": [{w}, {w}, {w}, {w}, {w}]}}}}"#
            )),
            "policies.p[4]: must hold 1 to 4 rules"
        );
        assert!(parse_config(&std::format!(
            r#"{{"policies": {{"p": [{w}, {w}, {w}, {w}]}}, "default_policy": "p"}}"#
        ))
        .is_ok());
        assert_eq!(
            err(r#"{"policies": {"p": []}}"#),
            "policies.p: must hold 1 to 4 rules"
        );
        assert_eq!(err(r#"{"policies": {}}"#), "policies: must hold 1 to 16 policies");
        assert_eq!(
            err(&std::format!(r#"{{"policies": {{"p": [{w}], "p": [{w}]}}}}"#)),
            "policies.p: names a policy twice"
        );
        assert_eq!(
            err(&std::format!(
                r#"{{"policies": {{"p": [{w}]}}, "routes": [{{"prefix": "/a", "policy": "q"}}], "default_policy": "p"}}"#
            )),
            "routes[0].policy: names a policy that is not defined"
        );
        assert_eq!(
            err(&std::format!(
                r#"{{"policies": {{"p": [{w}]}}, "default_policy": "q"}}"#
            )),
            "default_policy: names a policy that is not defined"
        );
        // The documented default policy is "standard": a config without it must name one.
        assert_eq!(
            err(&std::format!(r#"{{"policies": {{"p": [{w}]}}}}"#)),
            "default_policy: names a policy that is not defined"
        );
        assert_eq!(
            err(r#"{"routes": [{"policy": "media"}]}"#),
            "routes[0].prefix: is required"
        );
        assert_eq!(
            err(r#"{"routes": [{"prefix": "/x"}]}"#),
            "routes[0].policy: is required"
        );
        assert_eq!(
            err(r#"{"routes": [{"prefix": "", "policy": "media"}]}"#),
            "routes[0].prefix: must be 1 to 128 bytes"
        );
        assert_eq!(
            err(r#"{"capacity": 0}"#),
            "capacity: must be from 1 to 4294967296"
        );
        assert_eq!(
            err(r#"{"capacity": 4294967297}"#),
            "capacity: must be from 1 to 4294967296"
        );
        assert_eq!(err(r#"{"colour": 1}"#), "colour: is not a config field");
        assert_eq!(err(r#"{"policies": []}"#), "policies: must be an object");
        assert_eq!(err(r#"[]"#), "config: must be an object");
    }

    #[test]
    fn bad_json_names_the_byte() {
        assert_eq!(err(""), "config: invalid JSON at byte 0");
        assert_eq!(err("{"), "config: invalid JSON at byte 1");
        assert_eq!(err(r#"{"capacity": 1,}"#), "config: invalid JSON at byte 15");
        assert_eq!(err(r#"{"capacity": 1} x"#), "config: invalid JSON at byte 16");
        assert_eq!(err(r#"{"capacity": 01}"#), "capacity: invalid JSON at byte 15");
        assert!(err(r#"{"routes": [{"prefix": "/a\q", "policy": "media"}]}"#).contains("invalid JSON"));
        // Nesting deeper than the parser follows is refused, not a stack overflow.
        let deep = std::format!("{{\"policies\": {}{}}}", "[".repeat(40), "]".repeat(40));
        assert!(
            err(&deep).ends_with(": invalid JSON at byte 28"),
            "{}",
            err(&deep)
        );
        let fine = std::format!("{{\"policies\": {}{}}}", "[".repeat(10), "]".repeat(10));
        assert_eq!(err(&fine), "policies: must be an object");
    }

    #[test]
    fn strings_unescape() {
        let parsed = parse_config(
            r#"{"policies": {"p\u0041": [{"algorithm": "window", "limit": 1, "period_ms": 1000}]},
                "routes": [{"prefix": "\/x\u00e9\ud83d\ude00", "policy": "pA"}], "default_policy": "pA"}"#,
        )
        .unwrap();
        assert_eq!(parsed.config.policies()[0].name(), "pA");
        assert_eq!(parsed.config.routes()[0].prefix(), "/xé😀");
        let long = std::format!(
            r#"{{"routes": [{{"prefix": "{}", "policy": "media"}}]}}"#,
            "/".repeat(129)
        );
        assert_eq!(err(&long), "routes[0].prefix: is too long");
    }
}
