//! `differential`: the core against a naive model of SEMANTICS.md written here.
//!
//! Random configs (1 to 3 policies of 1 to 4 rules, either algorithm, odd periods,
//! bursts mostly below the limit, all within the core's documented ranges) and random
//! request sequences (the clock jumping forward and back, window edges, costs from 0 to
//! above capacity, several keys, routes and policies, checks and peeks) run through the
//! core and through the model below. Any difference in the decision, its figures, its
//! headers (every style, through `for_each_header` and `write_headers`) or its body fails.
//!
//! The model follows SEMANTICS.md 3.1, 3.2, 3.3 and 4 in `u128`/`i128` arithmetic with
//! per-(key, policy, rule) states in a `HashMap`; it calls nothing of the core but the
//! config accessors. The table (4,096 cells for at most a few hundred entries) never
//! fills: a key would need 16 occupied cells in a row.
//!
//! One divergence is allowed by the contract (SEMANTICS.md 5): a cell that is neutral at
//! the time of a check may be reused for another key. A later request at that time or
//! after cannot tell, but a clock that goes back before the state turned neutral could.
//! So once an entry was neutral at a check, the clock is not taken back before the
//! instant it turned neutral (`floor`).
#![no_main]

use std::collections::HashMap;

use aisoule_ratelimit::{
    Algorithm, Cell, CheckError, Config, Decision, HeaderStyle, Limiter, Now, Policy, PolicyId, Rule, Seed,
    Target, MAX_LIMIT, MAX_PERIOD_NS, MIN_PERIOD_NS, NS_PER_MS, NS_PER_S,
};
use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const CELLS: usize = 4096;
const MAX_OPS: usize = 256;
/// Clocks run to the end of the u64 clock, where a GCRA `tat` (at most now + 2^62) passes
/// 2^64 ns: the core keeps its 65th bit, and every header stays exact.
const MAX_NOW: u64 = u64::MAX;
const BODY: &str = r#"{"success":false,"error":{"code":"rate_limit_exceeded","message":"Too many requests. Please wait before retrying.","retry_after_seconds":"#;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

/// A rule as the model sees it: the numbers of the config, nothing else.
#[derive(Clone, Copy, Debug)]
struct M {
    gcra: bool,
    l: u128,
    p: u128,
    b: u128,
}

impl M {
    fn of(r: &Rule) -> M {
        M {
            gcra: r.algorithm() == Algorithm::Gcra,
            l: r.limit() as u128,
            p: r.period_ns() as u128,
            b: r.burst() as u128,
        }
    }
    fn capacity(&self) -> u128 {
        if self.gcra {
            self.b
        } else {
            self.l
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Gcra { tat: u128 },
    Win { i: u128, prev: u128, curr: u128 },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    st: St,
    /// Set once the entry was neutral at a check: the instant it turned neutral.
    floor: Option<u128>,
}

/// One rule's answer (SEMANTICS.md 3: the figures after the decision).
#[derive(Clone, Copy, Debug)]
struct Fig {
    admitted: bool,
    new: St,
    limit: u128,
    remaining: u128,
    reset: u128,
    retry: u128,
}

fn fresh(m: &M) -> St {
    if m.gcra {
        St::Gcra { tat: 0 }
    } else {
        St::Win {
            i: 0,
            prev: 0,
            curr: 0,
        }
    }
}

/// The instant from which the state is neutral (equivalent to a fresh key's).
fn neutral_from(m: &M, st: &St) -> u128 {
    match *st {
        St::Gcra { tat } => tat,
        St::Win { i, prev, curr } => {
            if prev == 0 && curr == 0 {
                0
            } else if curr == 0 {
                (i + 1) * m.p
            } else {
                (i + 2) * m.p
            }
        }
    }
}

fn nonneg(v: i128, what: &str) -> u128 {
    assert!(v >= 0, "the contract's {what} formula gave {v}");
    v as u128
}

/// SEMANTICS.md 3.1 (GCRA) and 3.2 (rolling window), for one rule.
fn decide(m: &M, st: St, now: u128, c: u128, consume: bool) -> Fig {
    match st {
        St::Gcra { tat } => {
            let t = m.p.div_ceil(m.l);
            let bt = m.b * t;
            let e = tat.max(now);
            let admitted = e + c * t - now <= bt;
            let tat2 = if admitted && consume { e + c * t } else { tat };
            let x = tat2.max(now) - now;
            let remaining = if bt >= x { ((bt - x) / t).min(m.b) } else { 0 };
            let retry = if admitted { 0 } else { e + c * t - bt - now };
            Fig {
                admitted,
                new: St::Gcra { tat: tat2 },
                limit: m.b,
                remaining,
                reset: x,
                retry,
            }
        }
        St::Win { i, prev, curr } => {
            let w = m.p;
            let j = now / w;
            let a = now - j * w;
            let (i, prev, mut curr, a) = if j == i + 1 {
                (j, curr, 0, a)
            } else if j > i + 1 {
                (j, 0, 0, a)
            } else if j == i {
                (i, prev, curr, a)
            } else {
                // The clock went back: the stored window, with a = 0.
                (i, prev, curr, 0)
            };
            let estimate = |curr: u128| curr + prev * (w - a) / w;
            let admitted = estimate(curr) + c <= m.l;
            if admitted && consume {
                curr += c;
            }
            let n = estimate(curr);
            let remaining = m.l.saturating_sub(n);
            let (wi, ii, nowi) = (w as i128, i as i128, now as i128);
            let reset = if curr > 0 {
                nonneg((ii + 1) * wi + wi - (wi - 1) / curr as i128 - nowi, "reset")
            } else if prev > 0 {
                (ii * wi + wi - (wi - 1) / prev as i128 - nowi).max(0) as u128
            } else {
                0
            };
            let retry = if admitted {
                0
            } else {
                let k = m.l as i128 - curr as i128 - c as i128;
                if k >= 0 {
                    assert!(prev > 0, "denied with k >= 0 and prev == 0");
                    nonneg(ii * wi + wi - ((k + 1) * wi - 1) / prev as i128 - nowi, "retry")
                } else {
                    let lc = m.l as i128 - c as i128;
                    let wait = (wi - ((lc + 1) * wi - 1) / curr as i128).max(0);
                    nonneg((ii + 1) * wi + wait - nowi, "retry")
                }
            };
            Fig {
                admitted,
                new: St::Win { i, prev, curr },
                limit: m.l,
                remaining,
                reset,
                retry,
            }
        }
    }
}

fn u(v: u128) -> u64 {
    u64::try_from(v).expect("a figure above u64 within the fuzzed ranges")
}

/// SEMANTICS.md 3.3: all or nothing, the binding rule, Retry-After; 4: the reset epoch.
fn compose(ms: &[M], figs: &[Fig], pid: PolicyId, wall: u64) -> Decision {
    let allowed = figs.iter().all(|f| f.admitted);
    let mut binding: Option<usize> = None;
    for (r, f) in figs.iter().enumerate() {
        if !allowed && f.admitted {
            continue;
        }
        let better = match binding {
            None => true,
            Some(b) => {
                let g = &figs[b];
                let (mine, theirs) = if allowed {
                    // Fewest remaining first: compare the negation.
                    (g.remaining, f.remaining)
                } else {
                    (f.retry, g.retry)
                };
                mine > theirs || (mine == theirs && ms[r].p > ms[b].p)
            }
        };
        if better {
            binding = Some(r);
        }
    }
    let b = binding.expect("a binding rule");
    let f = &figs[b];
    let max_retry = figs
        .iter()
        .filter(|f| !f.admitted)
        .map(|f| f.retry)
        .max()
        .unwrap_or(0);
    assert!(allowed || max_retry == f.retry);
    Decision {
        allowed,
        limit: u(f.limit),
        remaining: u(f.remaining),
        reset: u((wall as u128 + f.reset).div_ceil(NS_PER_S as u128)),
        // The decision's ns figures are u64: past the clock they saturate (headers stay exact).
        reset_after_ns: u(f.reset.min(u64::MAX as u128)),
        retry_after_seconds: if allowed {
            0
        } else {
            u(max_retry.div_ceil(NS_PER_S as u128).max(1))
        },
        retry_after_ns: if allowed { 0 } else { u(max_retry.min(u64::MAX as u128)) },
        policy: pid,
        binding_rule: b as u8,
        table_full: false,
    }
}

/// The headers the model expects, in the contract's order.
fn model_headers(d: &Decision, policy: &Policy, style: HeaderStyle) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if style != HeaderStyle::Ietf {
        out.push(("X-RateLimit-Limit".into(), d.limit.to_string()));
        out.push(("X-RateLimit-Remaining".into(), d.remaining.to_string()));
        out.push(("X-RateLimit-Reset".into(), d.reset.to_string()));
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
                let w = (rule.period_ns() as u128).div_ceil(NS_PER_S as u128);
                format!("{};q={};w={}", item(r), rule.burst(), w)
            })
            .collect();
        out.push(("RateLimit-Policy".into(), items.join(",")));
        let t = (d.reset_after_ns as u128).div_ceil(NS_PER_S as u128);
        out.push((
            "RateLimit".into(),
            format!("{};r={};t={}", item(d.binding_rule as usize), d.remaining, t),
        ));
    }
    if !d.allowed {
        out.push(("Retry-After".into(), d.retry_after_seconds.to_string()));
    }
    out
}

fn check_text(d: &Decision, policy: &Policy) {
    for style in [HeaderStyle::XRateLimit, HeaderStyle::Ietf, HeaderStyle::Both] {
        let want = model_headers(d, policy, style);
        let mut got = Vec::new();
        let r: std::result::Result<(), ()> = d.for_each_header(policy, style, |n, v| {
            got.push((n.to_string(), v.to_string()));
            Ok(())
        });
        assert!(r.is_ok());
        assert_eq!(got, want, "headers, style {style:?}");
        let mut text = String::new();
        d.write_headers(policy, style, &mut text).unwrap();
        let lines: String = want.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        assert_eq!(text, lines, "write_headers, style {style:?}");
    }
    let mut body = String::new();
    d.write_body(&mut body).unwrap();
    let want = if d.allowed {
        String::new()
    } else {
        format!("{BODY}{}}}}}", d.retry_after_seconds)
    };
    assert_eq!(body, want, "body");
    assert_eq!(d.body_len(), want.len());
    assert_eq!(d.status(), if d.allowed { 200 } else { 429 });
}

fn gen_period(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => MIN_PERIOD_NS + u.int_in_range(0..=2_000u64)?,
        1 => u.int_in_range(1..=5_000u64)? * NS_PER_MS + u.int_in_range(0..=999_999u64)?,
        2 => {
            let base = *u.choose(&[1u64, 60, 3_600, 86_400, 31_536_000])? * NS_PER_S;
            base + u.int_in_range(0..=2u64)? - 1
        }
        3 => u.int_in_range(MIN_PERIOD_NS..=MAX_PERIOD_NS)?,
        4 => MAX_PERIOD_NS - u.int_in_range(0..=3u64)?,
        _ => *u.choose(&[NS_PER_MS, NS_PER_S, 60 * NS_PER_S, 7 * NS_PER_MS + 3])?,
    })
}

fn gen_rule(u: &mut Unstructured<'_>) -> Result<Rule> {
    let period = gen_period(u)?;
    let rule = if u.arbitrary::<bool>()? {
        let max = Rule::max_window_limit(period);
        let limit = match u.int_in_range(0..=3u8)? {
            0 => u.int_in_range(1..=max.min(10))?,
            1 => u.int_in_range(1..=max)?,
            2 => max,
            _ => u.int_in_range(1..=max.min(1_000))?,
        };
        Rule::window(limit, period)
    } else {
        let limit = match u.int_in_range(0..=3u8)? {
            0 => u.int_in_range(1..=10u64)?,
            1 => u.int_in_range(1..=MAX_LIMIT)?,
            2 => MAX_LIMIT,
            _ => u.int_in_range(1..=1_000u64)?,
        };
        let t = period.div_ceil(limit);
        let bmax = MAX_LIMIT.min((1u64 << 62) / t);
        let burst = match u.int_in_range(0..=3u8)? {
            0 => u.int_in_range(1..=limit.min(bmax))?,
            1 => limit.min(bmax),
            2 => u.int_in_range(1..=bmax)?,
            _ => u.int_in_range(1..=bmax.min(10))?,
        };
        Rule::gcra(limit, period, burst)
    };
    Ok(rule.expect("a rule within the documented ranges was refused"))
}

fn gen_key(u: &mut Unstructured<'_>, pool: &[Vec<u8>]) -> Result<Vec<u8>> {
    if u.ratio(1u8, 8)? {
        let n = u.int_in_range(0..=8usize)?;
        Ok(u.bytes(n)?.to_vec())
    } else {
        Ok(u.choose(pool)?.clone())
    }
}

/// The model's route table: the first prefix matching on a `/` or `?` boundary.
fn model_route(routes: &[(String, usize)], default: usize, path: &str) -> usize {
    for (prefix, p) in routes {
        if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                return *p;
            }
        }
    }
    default
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let seed = Seed([u.arbitrary()?, u.arbitrary()?]);
    let npol = u.int_in_range(1..=3usize)?;
    let mut policies = Vec::new();
    for p in 0..npol {
        let nr = u.int_in_range(1..=4usize)?;
        let rules = (0..nr).map(|_| gen_rule(u)).collect::<Result<Vec<_>>>()?;
        policies.push(Policy::new(&format!("p{p}"), &rules).unwrap());
    }
    let mut config = Config::new(&policies).unwrap();
    let mut routes = Vec::new();
    for r in 0..u.int_in_range(0..=3usize)? {
        let p = u.int_in_range(0..=npol - 1)?;
        let prefix = if r == 1 {
            "/r0/sub".to_string()
        } else {
            format!("/r{r}")
        };
        config.add_route(&prefix, &format!("p{p}")).unwrap();
        routes.push((prefix, p));
    }
    let default = u.int_in_range(0..=npol - 1)?;
    config.set_default_policy(&format!("p{default}")).unwrap();
    let models: Vec<Vec<M>> = policies
        .iter()
        .map(|p| p.rules().iter().map(M::of).collect())
        .collect();
    let pids: Vec<PolicyId> = (0..npol)
        .map(|p| config.policy_id(&format!("p{p}")).unwrap())
        .collect();

    let cells: Vec<Cell> = (0..CELLS).map(|_| Cell::new()).collect();
    let limiter = Limiter::new(config, cells, seed);
    let mut states: HashMap<(Vec<u8>, usize, usize), Entry> = HashMap::new();
    let pool: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"a".to_vec(),
        b"b".to_vec(),
        b"key-1".to_vec(),
        vec![0, 0xff, 0x80],
        u.bytes(3)?.to_vec(),
    ];
    let all_periods: Vec<u64> = models.iter().flatten().map(|m| m.p as u64).collect();

    let mut now: u64 = match u.int_in_range(0..=3u8)? {
        0 => u.int_in_range(0..=1_000_000_000_000u64)?,
        1 => 1_780_423_178_274_000_000 + u.int_in_range(0..=NS_PER_S)?,
        2 => u.int_in_range(0..=MAX_NOW)?,
        _ => 0,
    };
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        // The clock.
        let period = *u.choose(&all_periods)?;
        let candidate: u64 = match u.int_in_range(0..=7u8)? {
            0 => now,
            1 => now.saturating_add(u.int_in_range(0..=period.saturating_mul(2))?),
            2 => now.saturating_sub(u.int_in_range(0..=period.saturating_mul(2))?),
            3 => u.int_in_range(0..=MAX_NOW)?,
            4 => now.saturating_add(1),
            5 => now.saturating_sub(1),
            6 => {
                // A window edge of one of the rules, or next to it.
                let edge = (now / period)
                    .saturating_add(u.int_in_range(0..=2u64)?)
                    .saturating_mul(period);
                edge.saturating_add(u.int_in_range(0..=2u64)?).saturating_sub(1)
            }
            _ => now.saturating_add(u.int_in_range(0..=NS_PER_S)?),
        };
        let floor = states.values().filter_map(|e| e.floor).max().unwrap_or(0);
        now = candidate
            .min(MAX_NOW)
            .max(u64::try_from(floor).unwrap_or(u64::MAX).min(MAX_NOW));
        let wall = match u.int_in_range(0..=2u8)? {
            0 => now,
            1 => u.arbitrary()?,
            _ => now.wrapping_add(u.int_in_range(0..=1_000_000_000_000u64)?),
        };
        let clock = Now {
            mono_ns: now,
            wall_ns: wall,
        };
        // The request.
        let key = gen_key(u, &pool)?;
        let (target, pidx) = if !routes.is_empty() && u.arbitrary::<bool>()? {
            let base = if u.ratio(1u8, 5)? {
                "/other".to_string()
            } else {
                u.choose(&routes)?.0.clone()
            };
            let suffix = *u.choose(&["", "/", "/x", "?a=1", "X", "s/", "/sub", "/sub/y"])?;
            (format!("{base}{suffix}"), None)
        } else {
            (String::new(), Some(u.int_in_range(0..=npol - 1)?))
        };
        let pidx = pidx.unwrap_or_else(|| model_route(&routes, default, &target));
        let target = if target.is_empty() {
            Target::Policy(pids[pidx])
        } else {
            Target::Route(&target)
        };
        let ms = &models[pidx];
        let cap = ms.iter().map(M::capacity).min().unwrap() as u64;
        let cost = match u.int_in_range(0..=6u8)? {
            0 | 1 => 1,
            2 => u.int_in_range(0..=cap.saturating_add(1))?,
            3 => cap,
            4 => cap + 1,
            5 => 0,
            _ => u.arbitrary()?,
        };
        let consume = !u.ratio(1u8, 6)?;
        let t = now as u128;
        if consume {
            // Entries neutral now may lose their cell to this check (SEMANTICS.md 5).
            for ((k, p, r), e) in states.iter_mut() {
                let _ = k;
                let from = neutral_from(&models[*p][*r], &e.st);
                if e.floor.is_none() && from <= t {
                    e.floor = Some(from);
                }
            }
        }
        let got = if consume {
            limiter.check(&key, target, cost, clock)
        } else {
            limiter.peek(&key, target, cost, clock)
        };
        if cost == 0 || cost > cap {
            assert_eq!(got, Err(CheckError::InvalidCost), "cost {cost}, capacity {cap}");
            continue;
        }
        let got = got.expect("a valid cost is a decision");
        let figs: Vec<Fig> = ms
            .iter()
            .enumerate()
            .map(|(r, m)| {
                let st = states.get(&(key.clone(), pidx, r)).map_or(fresh(m), |e| e.st);
                decide(m, st, t, cost as u128, consume)
            })
            .collect();
        let want = compose(ms, &figs, pids[pidx], wall);
        assert_eq!(
            got, want,
            "key {key:?} policy p{pidx} cost {cost} now {now} consume {consume}"
        );
        check_text(&got, limiter.policy(got.policy));
        if consume && want.allowed {
            for (r, f) in figs.iter().enumerate() {
                states.insert(
                    (key.clone(), pidx, r),
                    Entry {
                        st: f.new,
                        floor: None,
                    },
                );
            }
        }
    }
    assert_eq!(limiter.stats(), Default::default(), "the table filled");
    Ok(())
}
