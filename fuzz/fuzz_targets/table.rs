//! `table`: floods of keys against small tables (1 to 64 cells), in both full-table
//! modes, with the clock frozen in phases and moved forward between them (sometimes far
//! enough that every stored state is neutral, so cells must be reused).
//!
//! Invariants, for every request:
//! - a throttled key stays throttled: once a request of cost `c` was denied at the
//!   frozen instant (other than by the fail-closed answer), every later request of cost
//!   `c` or more in that phase is denied, whatever floods came in between;
//! - counts are exact: a key first seen in this phase is admitted iff what it was
//!   admitted so far plus the cost is within the policy's capacity (the smallest
//!   capacity of its rules), unless the table-full answer was given, and once a key has
//!   its cells it never gets the table-full answer again (its cells are not neutral);
//! - full-table answers follow the mode: closed is denied with `Retry-After: 1` and
//!   nothing remaining; open admits a key that has no state, as a fresh key; the
//!   limiter's stats count them;
//! - cells are reused: after a jump that makes every stored state neutral, the first
//!   request of the phase gets cells (no table-full answer) when the table has at least
//!   one cell per rule of its policy.
#![no_main]

use std::collections::HashMap;

use aisoule_ratelimit::{
    Cell, CheckError, Config, FullTableMode, Limiter, Now, Policy, PolicyId, Rule, Seed, Stats, Target,
    NS_PER_MS, NS_PER_S,
};
use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

const MAX_OPS: usize = 512;

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});

fn gen_rule(u: &mut Unstructured<'_>) -> Result<Rule> {
    let period = *u.choose(&[
        NS_PER_MS,
        7 * NS_PER_MS + 1,
        NS_PER_S,
        60 * NS_PER_S,
        3_600 * NS_PER_S + 3,
    ])?;
    let limit = u.int_in_range(1..=8u64)?;
    let rule = if u.arbitrary::<bool>()? {
        Rule::window(limit, period)
    } else {
        let burst = if u.arbitrary::<bool>()? {
            limit
        } else {
            u.int_in_range(1..=8u64)?
        };
        Rule::gcra(limit, period, burst)
    };
    Ok(rule.expect("a rule within the documented ranges"))
}

#[derive(Default)]
struct KeyInfo {
    /// The phase the key was first requested in.
    born: usize,
    /// Cost admitted so far (counted only in the phase it was born in).
    admitted: u64,
    /// Stored partly (fail-open with some rules without a cell): counts no longer exact.
    tainted: bool,
    /// `(phase, smallest denied cost)`: the throttle of this phase.
    denied: Option<(usize, u64)>,
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let seed = Seed([u.arbitrary()?, u.arbitrary()?]);
    let ncells = u.int_in_range(1..=64usize)?;
    let mode = if u.arbitrary::<bool>()? {
        FullTableMode::Open
    } else {
        FullTableMode::Closed
    };
    let npol = u.int_in_range(1..=2usize)?;
    let mut policies = Vec::new();
    for p in 0..npol {
        let nr = u.int_in_range(1..=4usize)?;
        let rules = (0..nr).map(|_| gen_rule(u)).collect::<Result<Vec<_>>>()?;
        policies.push(Policy::new(&format!("p{p}"), &rules).unwrap());
    }
    let config = Config::new(&policies).unwrap();
    let pids: Vec<PolicyId> = (0..npol)
        .map(|p| config.policy_id(&format!("p{p}")).unwrap())
        .collect();
    let caps: Vec<u64> = policies.iter().map(Policy::max_cost).collect();
    // A jump past this makes every stored state neutral: two windows, or a full GCRA span.
    let horizon: u64 = policies
        .iter()
        .flat_map(|p| p.rules())
        .map(|r| 2 * r.period_ns() + r.burst() * r.period_ns().div_ceil(r.limit()))
        .max()
        .unwrap()
        + 1;

    let cells: Vec<Cell> = (0..ncells).map(|_| Cell::new()).collect();
    let limiter = Limiter::with_full_table_mode(config, cells, seed, mode);
    let mut keys: HashMap<(Vec<u8>, usize), KeyInfo> = HashMap::new();
    let mut order: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut stats = Stats::default();
    let mut now: u64 = u.int_in_range(0..=1u64 << 60)?;
    let mut phase = 0usize;
    let mut fresh_table = true;
    let mut first_in_phase = true;
    let mut next_key = 0u32;

    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        if u.ratio(1u8, 24)? {
            // A new phase: the clock moves forward and freezes again.
            phase += 1;
            first_in_phase = true;
            fresh_table = match u.int_in_range(0..=2u8)? {
                0 => {
                    now += horizon + u.int_in_range(0..=horizon)?;
                    true
                }
                1 => {
                    now += u.int_in_range(1..=horizon)?;
                    false
                }
                _ => {
                    now += 1;
                    false
                }
            };
        }
        let clock = Now::same(now);
        let pidx = u.int_in_range(0..=npol - 1)?;
        let key: Vec<u8> = match u.int_in_range(0..=3u8)? {
            0 | 1 if !order.is_empty() => u.choose(&order)?.0.clone(),
            _ => {
                next_key += 1;
                format!("{phase}:{next_key}").into_bytes()
            }
        };
        let cap = caps[pidx];
        let cost = match u.int_in_range(0..=7u8)? {
            0 => u.int_in_range(1..=cap)?,
            1 => 0,
            _ => 1,
        };
        let consume = !u.ratio(1u8, 8)?;
        let id = (key.clone(), pidx);
        if !keys.contains_key(&id) {
            order.push(id.clone());
        }
        let info = keys.entry(id).or_insert_with(|| KeyInfo {
            born: phase,
            ..KeyInfo::default()
        });
        let target = Target::Policy(pids[pidx]);
        let got = if consume {
            limiter.check(&key, target, cost, clock)
        } else {
            limiter.peek(&key, target, cost, clock)
        };
        if cost == 0 {
            assert_eq!(got, Err(CheckError::InvalidCost));
            continue;
        }
        let d = got.expect("a valid cost is a decision");
        let ctx = format!("key {key:?} p{pidx} cost {cost} cells {ncells} {mode:?} phase {phase}");

        // Each rule of the key needs a cell of its own: a table of fewer cells than the
        // policy has rules is full for it even when every cell is neutral.
        if fresh_table && first_in_phase && policies[pidx].rules().len() <= ncells {
            assert!(
                !d.table_full,
                "every cell was neutral, yet the table is full: {ctx}"
            );
        }
        first_in_phase = false;

        // The throttle of this phase survives.
        if let Some((p, c)) = info.denied {
            if p == phase && cost >= c {
                assert!(
                    !d.allowed,
                    "a throttled key (denied at cost {c}) was admitted: {ctx}"
                );
            }
        }

        // Full-table answers.
        if d.table_full {
            match mode {
                FullTableMode::Closed => {
                    assert!(
                        !d.allowed && d.retry_after_seconds == 1 && d.remaining == 0,
                        "{ctx}: {d:?}"
                    );
                    assert_eq!(d.retry_after_ns, NS_PER_S);
                    if consume {
                        stats.table_full_closed += 1;
                    }
                }
                FullTableMode::Open => {
                    let stateless = info.admitted == 0 && !info.tainted && info.born == phase;
                    if stateless {
                        assert!(d.allowed, "fail-open denied a key without state: {ctx}: {d:?}");
                    }
                    if d.allowed && consume {
                        stats.table_full_open += 1;
                        info.tainted = true;
                    }
                }
            }
        }

        // Exact counts for keys born in this phase.
        if info.born == phase && !info.tainted {
            if info.admitted > 0 {
                assert!(!d.table_full, "a key with cells got the table-full answer: {ctx}");
            }
            if !d.table_full {
                let fits = info.admitted + cost <= cap;
                assert_eq!(
                    d.allowed, fits,
                    "admitted {} of capacity {cap} so far: {ctx}: {d:?}",
                    info.admitted
                );
            }
        }
        if d.allowed && consume && !d.table_full {
            info.admitted += cost;
        }
        let closed_answer = d.table_full && mode == FullTableMode::Closed;
        if !d.allowed && !closed_answer {
            let c = match info.denied {
                Some((p, c)) if p == phase => c.min(cost),
                _ => cost,
            };
            info.denied = Some((phase, c));
        }
        assert_eq!(limiter.stats(), stats, "{ctx}");
    }
    Ok(())
}
