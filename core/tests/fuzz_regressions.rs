//! Regressions found by the fuzz targets in `fuzz/` (see `fuzz/README.md`).
//!
//! Each test reproduces one finding in the smallest form found. A test marked
//! `#[ignore = "bug: ..."]` is a bug still open in `core/src`: it fails today and must
//! pass once fixed (then remove the `ignore`). Run the open ones with
//! `cargo test -p aisoule-ratelimit --test fuzz_regressions -- --include-ignored`.

use std::sync::mpsc;
use std::time::Duration;

use aisoule_ratelimit::{Cell, Config, Decision, Limiter, Now, Policy, Rule, Seed, Target, NS_PER_S};

/// Runs `f` on its own thread and fails if it takes longer than `limit`: a check that
/// never returns (a livelock) fails the test instead of hanging the suite. The thread
/// of a hung check is left spinning until the test binary exits.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("the check did not return: livelock")
}

fn one_request(
    config: Config,
    cells: usize,
    target: impl Fn(&Config) -> Target<'static> + Send + 'static,
) -> Decision {
    within(Duration::from_secs(5), move || {
        let table: Vec<Cell> = (0..cells).map(|_| Cell::new()).collect();
        let limiter = Limiter::new(config, table, Seed([1, 2]));
        let target = target(limiter.config());
        limiter
            .check(b"k", target, 1, Now::same(1_780_423_178_274_000_000))
            .expect("cost 1 is valid")
    })
}

/// Found by the `table` target built with `--no-default-features` (libFuzzer timeout in
/// its first second; a 2-rule policy on a 1-cell table).
///
/// `Limiter::run` looks every rule's cell up before storing any. When two rules of the
/// policy choose the same cell (both `Slot::Vacant` at one index, or one rule's own
/// neutral cell chosen as the other's vacant cell), `commit` stores the first rule,
/// loses the compare-and-swap of the second to its own first store, takes the first
/// back (`undo` restores the original word exactly) and returns false; `run` then looks
/// up again, finds the same table, chooses the same cell, and loops forever at 100% CPU.
///
/// It needs no concurrency and no full table: any table where two of a key's rules
/// meet at one free cell, e.g. their homes are equal (1 in `capacity` for each pair of
/// rules), or a rule's probe passes the key's own drained GCRA cell first. The
/// documented `messaging` policy (window + GCRA) has two rules.
///
/// A fix: let a rule's lookup skip the cells already chosen by the policy's earlier
/// rules in the same attempt (treat them as occupied), so each rule gets its own cell.
#[test]
fn two_rules_of_one_key_choose_one_cell() {
    let w = Rule::window(10, 60 * NS_PER_S).unwrap();
    let g = Rule::gcra(5, NS_PER_S, 5).unwrap();
    let config = Config::new(&[Policy::new("p", &[w, g]).unwrap()]).unwrap();
    let d = one_request(config, 1, |c| Target::Policy(c.policy_id("p").unwrap()));
    // One cell for two rules: either both fit (they cannot) or the table is full.
    assert!(d.table_full);
    assert!(d.allowed, "fail-open is the default mode");
}

/// The same livelock with the documented product policy: a `/v1/messages` request
/// (window 300/60 s + GCRA 5/1 s) on a table of one cell.
#[test]
fn documented_messaging_on_one_cell() {
    let d = one_request(Config::documented(), 1, |_| Target::Route("/v1/messages"));
    assert!(d.table_full && d.allowed);
}

/// The same request on a table with room: the reproducer above is about the table's
/// size, not about the policy.
#[test]
fn documented_messaging_with_room() {
    let d = one_request(Config::documented(), 64, |_| Target::Route("/v1/messages"));
    assert!(d.allowed && !d.table_full);
    assert_eq!((d.limit, d.remaining), (5, 4));
}
