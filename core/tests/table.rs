//! The fixed table: throttled keys survive floods, full-table answers follow the mode, and
//! neutral cells come back into use.

use std::sync::mpsc;
use std::time::Duration;

use aisoule_ratelimit::{
    Cell, Config, Decision, FullTableMode, Limiter, Now, Policy, PolicyId, Rule, Seed, Stats, Target,
};

const S: u64 = 1_000_000_000;
const T0: u64 = 1_780_423_178_274_000_000;
/// Table size: smaller under Miri (which runs every step of SipHash and every probe).
const CAP: usize = if cfg!(miri) { 16 } else { 64 };

fn limiter(rules: &[Rule], cells: usize, mode: FullTableMode) -> (Limiter<Vec<Cell>>, PolicyId) {
    let config = Config::new(&[Policy::new("p", rules).unwrap()]).unwrap();
    let id = config.policy_id("p").unwrap();
    let cells = (0..cells).map(|_| Cell::new()).collect();
    (
        Limiter::with_full_table_mode(config, cells, Seed([9, 9]), mode),
        id,
    )
}

/// Throttles `hot`, floods the table with 10x its capacity of fresh keys, and returns the
/// hot key's decision before and after, the flood's decisions and the stats.
fn flood(
    rules: &[Rule],
    mode: FullTableMode,
) -> (Decision, Decision, Vec<Decision>, Stats, Limiter<Vec<Cell>>) {
    let (l, p) = limiter(rules, CAP, mode);
    let now = Now::same(T0);
    let cap = l.policy(p).max_cost();
    for _ in 0..cap {
        assert!(l.check(b"hot", Target::Policy(p), 1, now).unwrap().allowed);
    }
    let before = l.check(b"hot", Target::Policy(p), 1, now).unwrap();
    assert!(!before.allowed && !before.table_full);
    let decisions: Vec<Decision> = (0..10 * CAP)
        .map(|i| {
            l.check(format!("fresh-{i}").as_bytes(), Target::Policy(p), 1, now)
                .unwrap()
        })
        .collect();
    let after = l.check(b"hot", Target::Policy(p), 1, now).unwrap();
    let stats = l.stats();
    (before, after, decisions, stats, l)
}

fn rules_under_test() -> [Vec<Rule>; 3] {
    [
        vec![Rule::window(3, 60 * S).unwrap()],
        vec![Rule::gcra(2, S, 2).unwrap()],
        vec![Rule::window(4, 60 * S).unwrap(), Rule::gcra(2, S, 3).unwrap()],
    ]
}

#[test]
fn a_throttled_key_keeps_its_counts_through_a_flood_fail_open() {
    for rules in rules_under_test() {
        let (before, after, decisions, stats, l) = flood(&rules, FullTableMode::Open);
        assert_eq!(after, before, "the throttled key's answer is unchanged");
        let full: Vec<&Decision> = decisions.iter().filter(|d| d.table_full).collect();
        assert!(
            full.len() >= 9 * CAP / rules.len(),
            "only {} full-table answers",
            full.len()
        );
        for d in &full {
            // Fail-open: admitted, as for a fresh key.
            assert!(d.allowed);
            assert_eq!(d.status(), 200);
            let fresh = l
                .peek(b"never-seen", Target::Policy(d.policy), 1, Now::same(T0))
                .unwrap();
            assert_eq!((d.limit, d.remaining + 1), (fresh.limit, fresh.remaining));
        }
        assert!(decisions.iter().all(|d| d.allowed));
        assert_eq!(stats.table_full_open, full.len() as u64);
        assert_eq!(stats.table_full_closed, 0);
        // Keys that got a cell keep counting: ask each again and compare with a fresh key.
        let with_cell = decisions.iter().position(|d| !d.table_full).unwrap();
        let again = l
            .peek(
                format!("fresh-{with_cell}").as_bytes(),
                Target::Policy(before.policy),
                1,
                Now::same(T0),
            )
            .unwrap();
        assert!(!again.table_full);
        assert_eq!(again.remaining, decisions[with_cell].remaining);
    }
}

#[test]
fn full_table_fail_closed_denies_with_retry_after_one() {
    for rules in rules_under_test() {
        let (before, after, decisions, stats, l) = flood(&rules, FullTableMode::Closed);
        assert_eq!(after, before);
        let full: Vec<&Decision> = decisions.iter().filter(|d| d.table_full).collect();
        assert!(
            full.len() >= 9 * CAP / rules.len(),
            "only {} full-table answers",
            full.len()
        );
        for d in &full {
            assert!(!d.allowed);
            assert_eq!((d.status(), d.retry_after_seconds, d.remaining), (429, 1, 0));
            let mut body = String::new();
            d.write_body(&mut body).unwrap();
            assert!(body.ends_with("\"retry_after_seconds\":1}}"));
            let mut headers = String::new();
            d.write_headers(l.policy(d.policy), Default::default(), &mut headers)
                .unwrap();
            assert!(headers.ends_with("Retry-After: 1\r\n"));
        }
        assert!(decisions.iter().filter(|d| !d.table_full).all(|d| d.allowed));
        assert_eq!(stats.table_full_closed, full.len() as u64);
        assert_eq!(stats.table_full_open, 0);
        // A peek is answered the same way but not counted.
        let p = l
            .peek(b"fresh-x", Target::Policy(before.policy), 1, Now::same(T0))
            .unwrap();
        assert!(p.table_full && !p.allowed);
        assert_eq!(l.stats(), stats);
    }
}

#[test]
fn neutral_cells_are_reused_once_their_keys_are_neutral() {
    for rules in rules_under_test() {
        let (_, _, decisions, _, l) = flood(&rules, FullTableMode::Closed);
        let stored = decisions.iter().filter(|d| !d.table_full).count();
        assert!(stored > 0);
        let p = decisions[0].policy;
        // Still full a moment later: nothing is neutral yet.
        let d = l.check(b"late", Target::Policy(p), 1, Now::same(T0 + 1)).unwrap();
        assert!(d.table_full);
        // Two windows (and far past every GCRA backlog) later every key but none is neutral:
        // new keys get cells again.
        let later = Now::same(T0 + 180 * S);
        // The throttled key's own cell is neutral: it is admitted again, a fresh key.
        let hot = l.check(b"hot", Target::Policy(p), 1, later).unwrap();
        assert!(hot.allowed && !hot.table_full);
        let again: Vec<Decision> = (0..stored)
            .map(|i| {
                l.check(format!("second-{i}").as_bytes(), Target::Policy(p), 1, later)
                    .unwrap()
            })
            .collect();
        let got_cells = again.iter().filter(|d| !d.table_full).count();
        // Linear probing within 16 cells of home at full load leaves a few out, never many.
        assert!(
            again[..stored / 2].iter().all(|d| !d.table_full),
            "the first half all get cells"
        );
        assert!(
            got_cells * 4 >= stored * 3,
            "{got_cells} of {stored} new keys got a cell"
        );
        assert!(again.iter().filter(|d| !d.table_full).all(|d| d.allowed));
    }
}

#[test]
fn every_cell_is_used_before_the_table_reports_full() {
    // One rule, capacity 16 = the probe bound: every key fits until all cells are used.
    let (l, p) = limiter(&[Rule::window(1, S).unwrap()], 16, FullTableMode::Closed);
    let now = Now::same(T0);
    let stored = (0..64)
        .map(|i| {
            l.check(format!("k{i}").as_bytes(), Target::Policy(p), 1, now)
                .unwrap()
        })
        .take_while(|d| !d.table_full)
        .count();
    assert_eq!(stored, 16);
    assert!(l.cells().iter().all(|c| c.load().0 != 0));
}

/// Runs `f` on a thread and fails if it does not return within 20 s (a livelock).
fn within_time<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the check did not return: livelock")
}

/// Regression: both rules of a fresh key chose the same vacant cell, so the second
/// compare-and-swap always failed, the first was undone, and the check spun forever.
#[test]
fn tiny_tables_never_livelock() {
    for cells in 0..=4 {
        for mode in [FullTableMode::Open, FullTableMode::Closed] {
            let decisions = within_time(move || {
                let l = Limiter::with_full_table_mode(
                    Config::documented(),
                    (0..cells).map(|_| Cell::new()).collect::<Vec<_>>(),
                    Seed([1, 2]),
                    mode,
                );
                let mut out = Vec::new();
                for step in 0..12u64 {
                    let now = Now::same(T0 + step * 400_000_000);
                    for key in [&b"a"[..], b"b", b"c"] {
                        out.push(l.check(key, Target::Route("/v1/messages"), 1, now).unwrap());
                    }
                }
                (out, l.stats())
            });
            let (out, stats) = decisions;
            let full = out.iter().filter(|d| d.table_full).count() as u64;
            // Every full-table answer is counted: admitted ones when open (a denial by a rule
            // that has a cell is an ordinary denial), all of them when closed.
            let open = out.iter().filter(|d| d.table_full && d.allowed).count() as u64;
            match mode {
                FullTableMode::Open => {
                    assert_eq!((stats.table_full_open, stats.table_full_closed), (open, 0))
                }
                FullTableMode::Closed => {
                    assert_eq!((stats.table_full_open, stats.table_full_closed), (0, full))
                }
            }
            if cells >= 2 {
                // One key fits: its first five requests at one instant are admitted in full.
                assert!(
                    out[0].allowed && !out[0].table_full,
                    "cells {cells}: {:?}",
                    out[0]
                );
            }
            if cells == 0 {
                assert_eq!(full, out.len() as u64);
            }
        }
    }
}

/// With a crowded table and a neutral cell of another key, both rules of a request never
/// land in one cell, and the key's counts stay exact.
#[test]
fn two_rule_policy_on_a_crowded_table_counts_exactly() {
    let rules = [Rule::window(3, 60 * S).unwrap(), Rule::gcra(1, S, 2).unwrap()];
    let (l, p) = limiter(&rules, 2, FullTableMode::Closed);
    let d = within_time(move || {
        let mut out = Vec::new();
        for i in 0..4 {
            out.push(l.check(b"k", Target::Policy(p), 1, Now::same(T0 + i)).unwrap());
        }
        // Two windows later the cells are neutral: another key takes them over.
        let later = T0 + 200 * S;
        for i in 0..4 {
            out.push(
                l.check(b"other", Target::Policy(p), 1, Now::same(later + i))
                    .unwrap(),
            );
        }
        out
    });
    let allowed: Vec<bool> = d.iter().map(|d| d.allowed).collect();
    // Burst 2 binds first for each key; no table-full answers.
    assert_eq!(allowed, [true, true, false, false, true, true, false, false]);
    assert!(d.iter().all(|d| !d.table_full));
}

/// Regression (found by `small_tables_answer_as_the_model`): a key's GCRA cell was reused
/// by another key; its next check chose, as the GCRA rule's vacant cell, the key's own
/// neutral cell of its third rule, which that rule also found as its own: the second
/// compare-and-swap always failed, the first was undone, and the check spun forever.
#[test]
fn a_rule_never_takes_over_a_cell_of_its_own_key() {
    let decisions = within_time(|| {
        let ms = 1_000_000;
        let w = |l| Rule::window(l, ms).unwrap();
        let p0 = Policy::new("p0", &[Rule::window(1, 3 * ms).unwrap()]).unwrap();
        let p1 = Policy::new("p1", &[w(1), Rule::gcra(1, ms, 1).unwrap(), w(1)]).unwrap();
        let p2 = Policy::new("p2", &[w(1), w(1)]).unwrap();
        let c = Config::new(&[p0, p1, p2]).unwrap();
        let cells: Vec<Cell> = (0..7).map(|_| Cell::new()).collect();
        let l = Limiter::with_full_table_mode(c.clone(), cells, Seed([11, 13]), FullTableMode::Open);
        let id = |n: &str| Target::Policy(c.policy_id(n).unwrap());
        let mut t = 71_023_302_894_409u64;
        let ops = [
            (0, "p0", 0),
            (0, "p0", 0),
            (0, "p0", 44_872_561),
            (0, "p0", 176_880),
            (0, "p0", 223_234),
            (0, "p0", 772_428_414),
            (0, "p0", 461_902_789),
            (6, "p1", 0),
            (2, "p2", 1_000_000),
            (6, "p1", 501_713),
        ];
        ops.iter()
            .map(|&(k, p, dt)| {
                t += dt;
                l.check(&[b'k', k], id(p), 1, Now::same(t)).unwrap()
            })
            .collect::<Vec<_>>()
    });
    // The last check: key 6 again, 2 ms after its first, every rule's state neutral.
    let last = decisions.last().unwrap();
    assert!(last.allowed && !last.table_full, "{last:?}");
}

/// Fail-open answers for the whole request when any rule of the key has no cell: as for
/// a fresh key, with nothing stored in any rule (SEMANTICS.md 5), even for the rules that
/// could have had a cell.
#[test]
fn fail_open_with_several_rules_stores_nothing() {
    let rules = [Rule::window(2, 60 * S).unwrap(), Rule::gcra(10, S, 3).unwrap()];
    // One cell: the first rule could take it, the second never has one.
    let (l, p) = limiter(&rules, 1, FullTableMode::Open);
    let now = Now::same(T0);
    for i in 1..=5u64 {
        let d = l.check(b"k", Target::Policy(p), 1, now).unwrap();
        assert!(d.allowed && d.table_full, "{d:?}");
        // A fresh key after one request: the window binds (1 left of 2).
        assert_eq!((d.binding_rule, d.limit, d.remaining), (0, 2, 1), "request {i}");
        assert_eq!(l.stats().table_full_open, i);
    }
    assert_eq!(l.cells()[0].load(), (0, 0), "nothing stored");
    let (closed, p) = limiter(&rules, 1, FullTableMode::Closed);
    let d = closed.check(b"k", Target::Policy(p), 1, now).unwrap();
    assert!(!d.allowed && d.table_full && d.retry_after_seconds == 1, "{d:?}");
    assert_eq!(closed.cells()[0].load(), (0, 0), "nothing stored");
}

/// Found by the `table` fuzz target: a key throttled by one rule whose neutral cell of
/// another rule was reused by another key. Its next request finds no cell for that rule,
/// yet the rule that still holds state denies: the denial stands in both modes (a
/// throttled key keeps its limit, SEMANTICS.md 5), is not flagged, and is not counted.
#[test]
fn a_throttled_key_stays_throttled_when_another_rule_lost_its_cell() {
    for mode in [FullTableMode::Open, FullTableMode::Closed] {
        let p = Policy::new(
            "p",
            &[Rule::window(1, 60 * S).unwrap(), Rule::gcra(10, S, 10).unwrap()],
        )
        .unwrap();
        let q = Policy::new("q", &[Rule::window(5, 60 * S).unwrap()]).unwrap();
        let config = Config::new(&[p, q]).unwrap();
        let (p, q) = (config.policy_id("p").unwrap(), config.policy_id("q").unwrap());
        let cells: Vec<Cell> = (0..2).map(|_| Cell::new()).collect();
        let l = Limiter::with_full_table_mode(config, cells, Seed([9, 9]), mode);
        let first = l.check(b"k", Target::Policy(p), 1, Now::same(T0)).unwrap();
        assert!(first.allowed && !first.table_full, "{first:?}");
        // A second later the GCRA cell is neutral; the window (1 a minute) still throttles.
        let later = Now::same(T0 + S);
        let denied = l.check(b"k", Target::Policy(p), 1, later).unwrap();
        assert!(!denied.allowed && !denied.table_full, "{denied:?}");
        // Another key takes the only reusable cell: the GCRA cell of "k".
        let other = l.check(b"other", Target::Policy(q), 1, later).unwrap();
        assert!(other.allowed && !other.table_full, "{other:?}");
        for consume in [false, true] {
            let d = if consume {
                l.check(b"k", Target::Policy(p), 1, later).unwrap()
            } else {
                l.peek(b"k", Target::Policy(p), 1, later).unwrap()
            };
            assert!(!d.allowed, "{mode:?}: a throttled key was admitted: {d:?}");
            assert!(!d.table_full, "{mode:?}: its own state decided: {d:?}");
            assert_eq!((d.binding_rule, d.limit, d.remaining), (0, 1, 0), "{mode:?}");
            assert_eq!(d.retry_after_ns, denied.retry_after_ns, "{mode:?}");
        }
        assert_eq!(l.stats(), Stats::default(), "{mode:?}: not a full-table answer");
    }
}
