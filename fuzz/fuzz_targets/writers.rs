//! `writers`: every decision's text written into buffers of every size.
//!
//! Decisions come from a real limiter (a random config and a few requests, with clocks
//! up to `u64::MAX`, where a GCRA `tat` passes 2^64 ns) and are also made up field by field
//! (any `u64`, names of every allowed length). For each, in every header style and for
//! the body, the text written into a `String` is first compared with the contract's
//! formatting done here; then it is written with `write_to_slice` and with a
//! `SliceWriter` into buffers of every length from 0 to `len + 1`, cut out of a larger
//! buffer whose tail is a guard region. Nothing may be written past the end (the guard
//! keeps its pattern), the needed length is reported, and what was written is the start
//! of the text.
#![no_main]

use std::fmt::Write as _;

use aisoule_ratelimit::{
    write_to_slice, Cell, Config, Decimal, Decision, HeaderStyle, Limiter, Now, Policy, PolicyId, Rule, Seed,
    SliceWriter, Target, MAX_LIMIT, MAX_NAME_LEN, MAX_PERIOD_NS, MIN_PERIOD_NS, NS_PER_MS, NS_PER_S,
};
use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const GUARD: usize = 32;
const PATTERN: u8 = 0xA5;
const BODY: &str = r#"{"success":false,"error":{"code":"rate_limit_exceeded","message":"Too many requests. Please wait before retrying.","retry_after_seconds":"#;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn gen_name(u: &mut Unstructured<'_>, i: usize) -> Result<String> {
    let len = u.int_in_range(1..=MAX_NAME_LEN)?;
    let mut name = String::new();
    for _ in 0..len {
        // Printable ASCII without '"' and '\\'.
        let mut b = u.int_in_range(0x20..=0x7eu8)?;
        if b == b'"' || b == b'\\' {
            b = b'_';
        }
        name.push(b as char);
    }
    // Unique within the config.
    name.replace_range(0..1, &char::from(b'A' + i as u8).to_string());
    Ok(name)
}

fn gen_rule(u: &mut Unstructured<'_>) -> Result<Rule> {
    let period = match u.int_in_range(0..=2u8)? {
        0 => MAX_PERIOD_NS - u.int_in_range(0..=NS_PER_S)?,
        1 => u.int_in_range(MIN_PERIOD_NS..=MAX_PERIOD_NS)?,
        _ => *u.choose(&[NS_PER_MS, NS_PER_S - 1, NS_PER_S + 1, 60 * NS_PER_S])?,
    };
    let rule = if u.arbitrary::<bool>()? {
        let max = Rule::max_window_limit(period);
        let limit = if u.arbitrary::<bool>()? {
            max
        } else {
            u.int_in_range(1..=max)?
        };
        Rule::window(limit, period)
    } else {
        let limit = if u.arbitrary::<bool>()? {
            MAX_LIMIT
        } else {
            u.int_in_range(1..=MAX_LIMIT)?
        };
        let bmax = MAX_LIMIT.min((1u64 << 62) / period.div_ceil(limit));
        let burst = if u.arbitrary::<bool>()? {
            bmax
        } else {
            u.int_in_range(1..=bmax)?
        };
        Rule::gcra(limit, period, burst)
    };
    Ok(rule.expect("a rule within the documented ranges"))
}

/// The contract's headers (SEMANTICS.md 4; the IETF set as text.rs documents it).
fn model_headers(d: &Decision, policy: &Policy, style: HeaderStyle) -> String {
    let mut out = String::new();
    let mut line = |n: &str, v: String| {
        let _ = write!(out, "{n}: {v}\r\n");
    };
    if style != HeaderStyle::Ietf {
        line("X-RateLimit-Limit", d.limit.to_string());
        line("X-RateLimit-Remaining", d.remaining.to_string());
        line("X-RateLimit-Reset", d.reset.to_string());
    }
    if style != HeaderStyle::XRateLimit {
        let item = |r: usize| {
            if policy.rules().len() > 1 {
                format!("\"{}.{}\"", policy.name(), r)
            } else {
                format!("\"{}\"", policy.name())
            }
        };
        let items: Vec<String> = policy
            .rules()
            .iter()
            .enumerate()
            .map(|(r, rule)| {
                format!(
                    "{};q={};w={}",
                    item(r),
                    rule.burst(),
                    rule.period_ns().div_ceil(NS_PER_S)
                )
            })
            .collect();
        line("RateLimit-Policy", items.join(","));
        let t = d.reset_after_ns.div_ceil(NS_PER_S);
        line(
            "RateLimit",
            format!("{};r={};t={}", item(d.binding_rule as usize), d.remaining, t),
        );
    }
    if !d.allowed {
        line("Retry-After", d.retry_after_seconds.to_string());
    }
    out
}

/// Writes with `write` into every buffer length from 0 to `text.len() + 1`.
fn every_size(text: &str, write: &dyn Fn(&mut SliceWriter<'_>) -> std::fmt::Result) {
    let len = text.len();
    let mut store = vec![PATTERN; len + 1 + GUARD];
    for n in 0..=len + 1 {
        store.fill(PATTERN);
        let (buf, guard) = store.split_at_mut(n);
        let got = write_to_slice(buf, |w| write(w));
        if n >= len {
            assert_eq!(got, Ok(len), "buffer of {n} for {len} bytes");
        } else {
            assert_eq!(got, Err(len), "buffer of {n} for {len} bytes");
        }
        let written = n.min(len);
        assert_eq!(&buf[..written], &text.as_bytes()[..written], "buffer of {n}");
        assert!(
            buf[written..].iter().all(|&b| b == PATTERN),
            "written past the text, buffer of {n}"
        );
        assert!(
            guard.iter().all(|&b| b == PATTERN),
            "written past the buffer of {n}"
        );

        // The same through a SliceWriter, its counters included.
        store.fill(PATTERN);
        let (buf, guard) = store.split_at_mut(n);
        let mut w = SliceWriter::new(buf);
        write(&mut w).expect("a SliceWriter never fails");
        assert_eq!((w.needed(), w.written(), w.overflowed()), (len, written, len > n));
        assert_eq!(&buf[..written], &text.as_bytes()[..written]);
        assert!(
            guard.iter().all(|&b| b == PATTERN),
            "SliceWriter wrote past the buffer of {n}"
        );
    }
}

fn check(d: &Decision, policy: &Policy) {
    for style in [HeaderStyle::XRateLimit, HeaderStyle::Ietf, HeaderStyle::Both] {
        let mut text = String::new();
        d.write_headers(policy, style, &mut text).unwrap();
        assert_eq!(text, model_headers(d, policy, style), "headers, style {style:?}");
        every_size(&text, &|w| d.write_headers(policy, style, w));
        // Header by header through for_each_header into one writer.
        every_size(&text, &|w| {
            d.for_each_header(policy, style, |n, v| {
                w.write_str(n)?;
                w.write_str(": ")?;
                w.write_str(v)?;
                w.write_str("\r\n")
            })
        });
    }
    let mut body = String::new();
    d.write_body(&mut body).unwrap();
    let want = if d.allowed {
        String::new()
    } else {
        format!("{BODY}{}}}}}", d.retry_after_seconds)
    };
    assert_eq!(body, want);
    assert_eq!(d.body_len(), body.len());
    every_size(&body, &|w| d.write_body(w));
    // A whole response: headers then body in one writer.
    let mut all = String::new();
    d.write_headers(policy, HeaderStyle::Both, &mut all).unwrap();
    all.push_str(&body);
    every_size(&all, &|w| {
        d.write_headers(policy, HeaderStyle::Both, w)?;
        d.write_body(w)
    });
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let npol = u.int_in_range(1..=2usize)?;
    let mut policies = Vec::new();
    for p in 0..npol {
        let nr = u.int_in_range(1..=4usize)?;
        let rules = (0..nr).map(|_| gen_rule(u)).collect::<Result<Vec<_>>>()?;
        policies.push(Policy::new(&gen_name(u, p)?, &rules).expect("a valid name"));
    }
    let config = Config::new(&policies).unwrap();
    let pids: Vec<PolicyId> = policies
        .iter()
        .map(|p| config.policy_id(p.name()).unwrap())
        .collect();

    // Decimal against std's formatting.
    let v: u64 = u.arbitrary()?;
    for x in [v, u64::MAX, 0, v % 1000] {
        assert_eq!(Decimal::new(x).as_str(), x.to_string());
    }

    // Decisions from a real limiter.
    let seed = Seed([u.arbitrary()?, u.arbitrary()?]);
    let cells: Vec<Cell> = (0..256).map(|_| Cell::new()).collect();
    let limiter = Limiter::new(config, cells, seed);
    // Any clock, up to the end of u64 (where a GCRA `tat` passes 2^64 ns).
    let mut now: u64 = match u.int_in_range(0..=2u8)? {
        0 => u.int_in_range(0..=1u64 << 63)?,
        1 => u64::MAX - u.int_in_range(0..=1u64 << 62)?,
        _ => u.arbitrary()?,
    };
    for _ in 0..u.int_in_range(0..=12usize)? {
        let p = u.int_in_range(0..=npol - 1)?;
        let cap = policies[p].max_cost();
        let cost = if u.arbitrary::<bool>()? {
            1
        } else {
            u.int_in_range(1..=cap)?
        };
        now = now.saturating_add(u.int_in_range(0..=NS_PER_S)?);
        let clock = Now {
            mono_ns: now,
            wall_ns: u.arbitrary()?,
        };
        let d = limiter
            .check(b"k", Target::Policy(pids[p]), cost, clock)
            .expect("a valid cost");
        check(&d, limiter.policy(d.policy));
    }

    // Decisions made up field by field.
    for _ in 0..u.int_in_range(0..=4usize)? {
        let p = u.int_in_range(0..=npol - 1)?;
        let policy = &policies[p];
        let allowed: bool = u.arbitrary()?;
        let big = |u: &mut Unstructured<'_>| -> Result<u64> {
            Ok(if u.arbitrary::<bool>()? {
                u64::MAX - u.int_in_range(0..=9u64)?
            } else {
                u.arbitrary()?
            })
        };
        let d = Decision {
            allowed,
            limit: big(u)?,
            remaining: big(u)?,
            reset: big(u)?,
            reset_after_ns: big(u)?,
            retry_after_seconds: if allowed { 0 } else { big(u)?.max(1) },
            retry_after_ns: if allowed { 0 } else { big(u)? },
            policy: pids[p],
            binding_rule: u.int_in_range(0..=(policy.rules().len() - 1) as u8)?,
            table_full: u.arbitrary()?,
        };
        check(&d, policy);
    }
    Ok(())
}
