//! `config`: arbitrary bytes into `json::parse_config`.
//!
//! The parser must answer every input with a typed error or a valid config, never a
//! panic. On top of that:
//! - an error displays as `path: message`, naming `config` when it has no path;
//! - the same text parses to the same answer twice;
//! - a valid config holds only what the core documents (rule ranges, counts, names,
//!   prefixes, capacity), writes back to JSON that parses to the same config, and drives
//!   a limiter: one request of cost 1 on each policy and on each route is a decision.
#![no_main]

use std::fmt::Write as _;

use aisoule_ratelimit::json::{parse_config, ParsedConfig, MAX_CAPACITY};
use aisoule_ratelimit::{
    Algorithm, Cell, Config, Limiter, Now, Rule, Seed, Target, MAX_LIMIT, MAX_NAME_LEN, MAX_PERIOD_NS,
    MAX_POLICIES, MAX_PREFIX_LEN, MAX_ROUTES, MAX_RULES, MIN_PERIOD_NS, NS_PER_MS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lossy;
    let text = match std::str::from_utf8(data) {
        Ok(s) => s,
        Err(_) => {
            lossy = String::from_utf8_lossy(data).into_owned();
            lossy.as_str()
        }
    };
    let first = parse_config(text);
    assert_eq!(
        first,
        parse_config(text),
        "the same text parsed differently twice"
    );
    match first {
        Err(e) => {
            let shown = e.to_string();
            let path = if e.path.is_empty() {
                "config"
            } else {
                e.path.as_str()
            };
            assert!(
                shown.starts_with(path),
                "error {shown:?} does not start with its path {path:?}"
            );
            assert!(
                shown[path.len()..].starts_with(": "),
                "error {shown:?}: no ': ' after the path"
            );
        }
        Ok(parsed) => {
            check_valid(&parsed);
            let again = to_json(&parsed);
            match parse_config(&again) {
                Ok(back) => assert_eq!(back, parsed, "round trip through {again}"),
                Err(e) => panic!("the config written back does not parse: {e}\n{again}"),
            }
            drive(&parsed.config);
        }
    }
});

/// Everything the core documents about a config it accepted.
fn check_valid(parsed: &ParsedConfig) {
    let config = &parsed.config;
    if let Some(c) = parsed.capacity {
        assert!((1..=MAX_CAPACITY).contains(&c), "capacity {c}");
    }
    let policies = config.policies();
    assert!(!policies.is_empty() && policies.len() <= MAX_POLICIES);
    for (i, p) in policies.iter().enumerate() {
        let name = p.name();
        assert!(!name.is_empty() && name.len() <= MAX_NAME_LEN, "name {name:?}");
        assert!(
            name.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'),
            "name {name:?}"
        );
        assert!(
            policies[..i].iter().all(|q| q.name() != name),
            "duplicate {name:?}"
        );
        assert!(!p.rules().is_empty() && p.rules().len() <= MAX_RULES);
        for r in p.rules() {
            check_rule(r);
        }
        assert_eq!(p.max_cost(), p.rules().iter().map(Rule::capacity).min().unwrap());
    }
    assert!(config.routes().len() <= MAX_ROUTES);
    for r in config.routes() {
        assert!(
            !r.prefix().is_empty() && r.prefix().len() <= MAX_PREFIX_LEN,
            "prefix {:?}",
            r.prefix()
        );
        assert!(r.policy().index() < policies.len());
    }
    assert!(config.default_policy().index() < policies.len());
}

fn check_rule(r: &Rule) {
    let (l, p, b) = (r.limit(), r.period_ns(), r.burst());
    assert!((1..=MAX_LIMIT).contains(&l), "limit {l}");
    assert!((MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&p), "period {p}");
    assert_eq!(p % NS_PER_MS, 0, "a config period is whole milliseconds");
    assert!((1..=MAX_LIMIT).contains(&b), "burst {b}");
    assert_eq!(r.capacity(), b);
    match r.algorithm() {
        Algorithm::Window => {
            assert_eq!(b, l, "a window's burst is its limit");
            assert!(l <= Rule::max_window_limit(p), "window limit {l} for period {p}");
            assert_eq!(Rule::window(l, p), Ok(*r));
        }
        Algorithm::Gcra => {
            let t = p.div_ceil(l) as u128;
            assert!(b as u128 * t <= 1u128 << 62, "burst {b} * T {t}");
            assert_eq!(Rule::gcra(l, p, b), Ok(*r));
        }
    }
}

/// The config as FORMAT.md's JSON, written independently of the parser.
fn to_json(parsed: &ParsedConfig) -> String {
    let config = &parsed.config;
    let mut s = String::from("{\"policies\":{");
    for (i, p) in config.policies().iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        json_string(&mut s, p.name());
        s.push_str(":[");
        for (j, r) in p.rules().iter().enumerate() {
            if j > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                "{{\"algorithm\":\"{}\",\"limit\":{},\"period_ms\":{}",
                r.algorithm().as_str(),
                r.limit(),
                r.period_ns() / NS_PER_MS
            );
            if r.algorithm() == Algorithm::Gcra {
                let _ = write!(s, ",\"burst\":{}", r.burst());
            }
            s.push('}');
        }
        s.push(']');
    }
    s.push_str("},\"routes\":[");
    for (i, r) in config.routes().iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"prefix\":");
        json_string(&mut s, r.prefix());
        s.push_str(",\"policy\":");
        json_string(&mut s, config.policy(r.policy()).name());
        s.push('}');
    }
    s.push_str("],\"default_policy\":");
    json_string(&mut s, config.policy(config.default_policy()).name());
    if let Some(c) = parsed.capacity {
        let _ = write!(s, ",\"capacity\":{c}");
    }
    s.push('}');
    s
}

fn json_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One request of cost 1 on each policy and on each route prefix: always a decision.
fn drive(config: &Config) {
    let seed = Seed([3, 5]);
    let cells: Vec<Cell> = (0..64).map(|_| Cell::new()).collect();
    let limiter = Limiter::new(config.clone(), cells, seed);
    let now = Now::same(1_780_423_178_274_000_000);
    for (i, p) in config.policies().iter().enumerate() {
        let id = config.policy_id(p.name()).expect("a policy's own name");
        assert_eq!(id.index(), i);
        let d = limiter
            .check(b"k", Target::Policy(id), 1, now)
            .expect("cost 1 is always valid");
        assert!(d.allowed || d.table_full);
    }
    for r in config.routes() {
        let d = limiter
            .check(b"r", Target::Route(r.prefix()), 1, now)
            .expect("cost 1 is always valid");
        // The first route whose prefix matches decides, so it may be an earlier one.
        let first = config.routes().iter().find(|q| q.matches(r.prefix())).unwrap();
        assert_eq!(d.policy, first.policy());
    }
}
