//! loom models of the table's compare-and-swap paths. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p aisoule-ratelimit --test loom --release`
//! (a separate `CARGO_TARGET_DIR` keeps the normal build's cache).
#![cfg(loom)]

use aisoule_ratelimit::{Cell, Config, Decision, Limiter, Now, Policy, PolicyId, Rule, Seed, Target};
use loom::sync::Arc;
use loom::thread;

const S: u64 = 1_000_000_000;
/// The start of a 60 s window, so a few seconds later is still the same window.
const T0: u64 = 29_673_719 * 60 * S;

fn limiter(rules: &[Rule], cells: usize) -> (Arc<Limiter<Vec<Cell>>>, PolicyId) {
    let config = Config::new(&[Policy::new("p", rules).unwrap()]).unwrap();
    let id = config.policy_id("p").unwrap();
    let cells = (0..cells).map(|_| Cell::new()).collect();
    (Arc::new(Limiter::new(config, cells, Seed([6, 7]))), id)
}

/// loom runs each thread on a small coroutine stack; a limiter's config (policies and
/// routes in fixed arrays) and the check path need more than its default.
const STACK_BYTES: usize = 1 << 20;

/// Spawns a loom thread with a stack big enough for the limiter.
fn big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    thread::Builder::new().stack_size(STACK_BYTES).spawn(f).unwrap()
}

/// `loom::model`, with the model's body on a big-stack thread.
fn model(f: impl Fn() + Send + Sync + 'static) {
    let f = std::sync::Arc::new(f);
    loom::model(move || {
        let f = std::sync::Arc::clone(&f);
        big_stack(move || f()).join().unwrap();
    });
}

/// Runs `f(key)` on two threads and returns both decisions.
fn two<F>(l: &Arc<Limiter<Vec<Cell>>>, keys: [&'static [u8]; 2], f: F) -> [Decision; 2]
where
    F: Fn(&Limiter<Vec<Cell>>, &[u8]) -> Decision + Send + Sync + 'static + Copy,
{
    let handles = keys.map(|key| {
        let l = Arc::clone(l);
        big_stack(move || f(&l, key))
    });
    handles.map(|h| h.join().unwrap())
}

fn live_cells(l: &Limiter<Vec<Cell>>) -> usize {
    l.cells()
        .iter()
        .filter(|c| !matches!(c.load().0 & 0xff, 0 | 0xff))
        .count()
}

/// Two threads insert the same new key into an empty table: one cell, both counted.
#[test]
fn cell_claim() {
    model(|| {
        let (l, p) = limiter(&[Rule::window(5, 60 * S).unwrap()], 2);
        let now = Now::same(T0);
        let d = two(&l, [b"k", b"k"], move |l, key| {
            l.check(key, Target::Policy(p), 1, now).unwrap()
        });
        assert!(d.iter().all(|d| d.allowed && !d.table_full));
        let mut remaining = [d[0].remaining, d[1].remaining];
        remaining.sort_unstable();
        assert_eq!(remaining, [3, 4]);
        assert_eq!(live_cells(&l), 1);
        assert_eq!(l.peek(b"k", Target::Policy(p), 1, now).unwrap().remaining, 3);
    });
}

/// Two threads admit on one existing key: counts exact.
#[test]
fn update() {
    model(|| {
        let (l, p) = limiter(&[Rule::gcra(10, S, 3).unwrap()], 2);
        let now = Now::same(T0);
        assert!(l.check(b"k", Target::Policy(p), 1, now).unwrap().allowed);
        let d = two(&l, [b"k", b"k"], move |l, key| {
            l.check(key, Target::Policy(p), 1, now).unwrap()
        });
        assert!(d.iter().all(|d| d.allowed));
        assert_eq!(l.peek(b"k", Target::Policy(p), 1, now).unwrap().remaining, 0);
        assert!(!l.check(b"k", Target::Policy(p), 1, now).unwrap().allowed);
        assert_eq!(live_cells(&l), 1);
    });
}

/// A neutral cell of key X is reused for Y while X is checked again: whoever gets the one
/// cell counts exactly once, the other is a full-table answer, nothing lost or doubled.
#[test]
fn reuse() {
    model(|| {
        let (l, p) = limiter(&[Rule::window(3, 60 * S).unwrap()], 1);
        assert!(
            l.check(b"x", Target::Policy(p), 2, Now::same(T0))
                .unwrap()
                .allowed
        );
        // Two windows later X's cell is neutral.
        let later = Now::same(T0 + 120 * S);
        let d = two(&l, [b"x", b"y"], move |l, key| {
            l.check(key, Target::Policy(p), 1, later).unwrap()
        });
        assert!(d.iter().all(|d| d.allowed));
        assert_eq!(d.iter().filter(|d| d.table_full).count(), 1, "{d:?}");
        assert_eq!(l.stats().table_full_open, 1);
        let owner: &[u8] = if d[0].table_full { b"y" } else { b"x" };
        let other: &[u8] = if d[0].table_full { b"x" } else { b"y" };
        let o = l.peek(owner, Target::Policy(p), 1, later).unwrap();
        assert_eq!((o.table_full, o.remaining), (false, 2));
        assert!(l.peek(other, Target::Policy(p), 1, later).unwrap().table_full);
        assert_eq!(live_cells(&l), 1);
    });
}

/// A 2-rule policy where one thread's second rule denies and its first is undone: the
/// window count stays exact.
#[test]
fn two_rules_undo() {
    model(|| {
        let rules = [Rule::window(3, 60 * S).unwrap(), Rule::gcra(1, S, 1).unwrap()];
        let (l, p) = limiter(&rules, 4);
        let now = Now::same(T0);
        let d = two(&l, [b"k", b"k"], move |l, key| {
            l.check(key, Target::Policy(p), 1, now).unwrap()
        });
        assert_eq!(d.iter().filter(|d| d.allowed).count(), 1, "{d:?}");
        // The window holds exactly one: two more are admitted as the burst rule drains,
        // the third is the window's denial.
        let at = |s: u64| Now::same(T0 + s * S);
        assert!(l.check(b"k", Target::Policy(p), 1, at(2)).unwrap().allowed);
        assert!(l.check(b"k", Target::Policy(p), 1, at(4)).unwrap().allowed);
        let last = l.check(b"k", Target::Policy(p), 1, at(6)).unwrap();
        assert!(!last.allowed);
        assert_eq!((last.binding_rule, last.limit), (0, 3));
        assert_eq!(live_cells(&l), 2);
    });
}

/// Two keys of a 2-rule policy on a table with room for three cells: whatever the
/// interleaving, every check returns (no livelock between rules aiming at one cell), and a
/// key whose cells exist counts exactly what it admitted.
#[test]
fn crowded_two_rule_policy() {
    // Two keys of two rules each make many schedules: bound the preemptions to keep this
    // model under a minute (LOOM_MAX_PREEMPTIONS overrides).
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    builder.check(|| big_stack(crowded_body).join().unwrap());
}

fn crowded_body() {
    {
        let rules = [Rule::window(2, 60 * S).unwrap(), Rule::gcra(10, S, 3).unwrap()];
        let (l, p) = limiter(&rules, 3);
        let now = Now::same(T0);
        let d = two(&l, [b"x", b"y"], move |l, key| {
            l.check(key, Target::Policy(p), 1, now).unwrap()
        });
        assert!(d.iter().all(|d| d.allowed), "{d:?}");
        assert!(live_cells(&l) <= 3);
        for (key, decision) in [(&b"x"[..], d[0]), (&b"y"[..], d[1])] {
            let peek = l.peek(key, Target::Policy(p), 1, now).unwrap();
            if !peek.table_full && !decision.table_full {
                // The window binds (2 - 1 < 3 - 1): exactly one counted.
                assert_eq!((peek.binding_rule, peek.remaining), (0, 1), "{key:?}");
            }
        }
    }
}
