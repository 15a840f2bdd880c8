//! Exactness under concurrency: threads started together on one key admit exactly what
//! the contract admits with a frozen clock, never more with a moving one, and many keys
//! over a small table never admit more than their capacity.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;

use aisoule_ratelimit::{Cell, Config, FullTableMode, Limiter, Now, Policy, PolicyId, Rule, Seed, Target};
use common::Model;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const T0: u64 = 1_780_423_178_274 * MS;

/// Thread counts and sizes: small under Miri, which runs every thread step by step.
const THREADS: &[usize] = if cfg!(miri) { &[2] } else { &[2, 4, 8] };
const SCALE: u64 = if cfg!(miri) { 1 } else { 10 };

fn limiter(rules: &[Rule], cells: usize, mode: FullTableMode) -> (Limiter<Vec<Cell>>, PolicyId, Config) {
    let config = Config::new(&[Policy::new("p", rules).unwrap()]).unwrap();
    let id = config.policy_id("p").unwrap();
    let l = Limiter::with_full_table_mode(
        config.clone(),
        (0..cells).map(|_| Cell::new()).collect(),
        Seed([4, 2]),
        mode,
    );
    (l, id, config)
}

/// The rule sets under test and the capacity of each at one instant for a fresh key.
fn policies() -> Vec<(Vec<Rule>, u64)> {
    let b = 4 * SCALE - 3;
    let l = 10 * SCALE;
    vec![
        (vec![Rule::gcra(2 * b, S, b).unwrap()], b),
        (vec![Rule::window(l, 60 * S).unwrap()], l),
        // The messaging shape: a window and a burst rule; the burst binds.
        (
            vec![Rule::window(l, 60 * S).unwrap(), Rule::gcra(5, S, b).unwrap()],
            b.min(l),
        ),
        // And a window that binds first, GCRA committed last.
        (
            vec![
                Rule::gcra(3 * l, S, 3 * l).unwrap(),
                Rule::window(l, 10 * S).unwrap(),
            ],
            l,
        ),
    ]
}

/// Runs `per_thread` checks on each of `n` threads started together; returns the admitted
/// count of each thread.
fn hammer(n: usize, per_thread: u64, check: impl Fn() -> bool + Sync) -> Vec<u64> {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    (0..per_thread).filter(|_| check()).count() as u64
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// With a frozen clock, the threads admit exactly the capacity, and nothing after.
#[test]
fn frozen_clock_admits_exactly_the_capacity() {
    for (rules, cap) in policies() {
        for &n in THREADS {
            let (l, p, _) = limiter(&rules, 64, FullTableMode::Closed);
            let now = Now::same(T0);
            let admitted = hammer(n, cap, || {
                l.check(b"one", Target::Policy(p), 1, now).unwrap().allowed
            });
            let total: u64 = admitted.iter().sum();
            assert!(total <= cap, "{n} threads admitted {total} > {cap} ({rules:?})");
            // A policy of several rules may deny a request that meets another's tentative
            // count (never admit one too many): top up on one thread, then it is exact.
            let mut top_up = 0;
            while l.check(b"one", Target::Policy(p), 1, now).unwrap().allowed {
                top_up += 1;
            }
            if rules.len() == 1 {
                assert_eq!(top_up, 0, "one rule: no spurious denial");
            }
            assert_eq!(total + top_up, cap, "{n} threads ({rules:?})");
            let d = l.peek(b"one", Target::Policy(p), 1, now).unwrap();
            assert_eq!((d.allowed, d.remaining), (false, 0));
        }
    }
}

/// The clock moves between phases (frozen within one): every phase admits exactly what
/// the model admits at that instant.
#[test]
fn phased_clock_matches_the_model_in_every_phase() {
    let phases = if cfg!(miri) { 3 } else { 24 };
    for (rules, cap) in policies() {
        for &n in THREADS {
            let (l, p, config) = limiter(&rules, 64, FullTableMode::Closed);
            let mut model = Model::new(&config);
            let mut now = T0;
            for phase in 0..phases {
                // Steps of 0.37 to 9 s: across GCRA emissions and window edges.
                now += (phase % 7 + 1) * 1_290 * MS - 920 * MS;
                let at = Now::same(now);
                let mut want = 0;
                while model.run(b"one", 0, 1, at, true).unwrap().allowed {
                    want += 1;
                }
                let got: u64 = hammer(n, cap, || {
                    l.check(b"one", Target::Policy(p), 1, at).unwrap().allowed
                })
                .iter()
                .sum();
                assert!(got <= want, "phase {phase}: {got} > {want}");
                let mut top_up = 0;
                while l.check(b"one", Target::Policy(p), 1, at).unwrap().allowed {
                    top_up += 1;
                }
                assert_eq!(got + top_up, want, "phase {phase}, {n} threads, {rules:?}");
                // And the figures agree after the phase.
                let d = l.peek(b"one", Target::Policy(p), 1, at).unwrap();
                let m = model.run(b"one", 0, 1, at, false).unwrap();
                assert!(m.same_as(&d), "phase {phase}: core {d:?} model {m:?}");
            }
        }
    }
}

/// Runs requests with a shared clock that every request advances; returns the
/// timestamps of the admitted ones, sorted.
fn free_running(n: usize, per_thread: u64, step: u64, check: impl Fn(u64) -> bool + Sync) -> Vec<u64> {
    let clock = AtomicU64::new(T0);
    let barrier = Barrier::new(n);
    let mut admitted: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    (0..per_thread)
                        .filter_map(|_| {
                            let t = clock.fetch_add(step, Ordering::Relaxed);
                            check(t).then_some(t)
                        })
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    admitted.sort_unstable();
    admitted
}

/// GCRA with a moving clock: admitted in any interval [t, t + d] is at most B + d / T,
/// whatever order the threads' requests reach the table in.
#[test]
fn moving_clock_gcra_never_admits_more_than_b_plus_d_over_t() {
    let (b, t) = (20u64, MS);
    let per_thread = 400 * SCALE;
    for &n in THREADS {
        let (l, p, _) = limiter(&[Rule::gcra(1000, S, b).unwrap()], 64, FullTableMode::Closed);
        let step = 7_919;
        let admitted = free_running(n, per_thread, step, |now| {
            l.check(b"one", Target::Policy(p), 1, Now::same(now))
                .unwrap()
                .allowed
        });
        let span = n as u64 * per_thread * step;
        assert!(
            admitted.len() as u64 >= span / t / 2,
            "too few admitted: {}",
            admitted.len()
        );
        for i in 0..admitted.len() {
            for k in i..admitted.len() {
                let count = (k - i + 1) as u64;
                let d = admitted[k] - admitted[i];
                assert!(count <= b + d / t, "{count} admitted in {d} ns ({n} threads)");
            }
        }
    }
}

/// Windows with a moving clock: a request is counted in its own window or, when its thread
/// was overtaken at a window edge, in a later one (the clock went back for it), so each
/// aligned window holds at most L + (threads - 1) requests by timestamp, and within a window
/// the sliding estimate with the previous window's count keeps to L plus that slack twice.
#[test]
fn moving_clock_window_keeps_the_sliding_bound() {
    let (limit, w) = (50u64, 10 * MS);
    let per_thread = 300 * SCALE;
    for &n in THREADS {
        let (l, p, _) = limiter(&[Rule::window(limit, w).unwrap()], 64, FullTableMode::Closed);
        // Steps of about 3 us, longer when there are few requests (Miri): at least 6 windows.
        let step = (6 * w / (n as u64 * per_thread)).max(3_001);
        let admitted = free_running(n, per_thread, step, |now| {
            l.check(b"one", Target::Policy(p), 1, Now::same(now))
                .unwrap()
                .allowed
        });
        let slack = n as u64 - 1;
        let mut per_window = std::collections::BTreeMap::<u64, u64>::new();
        for &t in &admitted {
            *per_window.entry(t / w).or_default() += 1;
        }
        assert!(per_window.len() >= 3, "the test spans several windows");
        for (&j, &c) in &per_window {
            assert!(c <= limit + slack, "window {j}: {c} admitted ({n} threads)");
        }
        for (idx, &t) in admitted.iter().enumerate() {
            let j = t / w;
            let a = t - j * w;
            let prev = per_window.get(&(j.wrapping_sub(1))).copied().unwrap_or(0);
            let curr = admitted[..=idx].iter().filter(|&&u| u / w == j).count() as u64;
            let n_est = curr + prev * (w - a) / w;
            assert!(
                n_est <= limit + 2 * slack,
                "estimate {n_est} at {t} ({n} threads)"
            );
        }
    }
}

/// Many keys over a small table (fail-closed): no key is ever admitted more than its
/// capacity, and the full-table answers are all counted.
#[test]
fn many_keys_over_a_small_table() {
    let limit = 5;
    let keys = if cfg!(miri) { 6 } else { 48 };
    for &n in THREADS {
        let (l, p, _) = limiter(
            &[
                Rule::window(limit, 60 * S).unwrap(),
                Rule::gcra(100, S, limit + 2).unwrap(),
            ],
            32,
            FullTableMode::Closed,
        );
        let now = Now::same(T0);
        let counts: Vec<AtomicU64> = (0..keys).map(|_| AtomicU64::new(0)).collect();
        let full = AtomicU64::new(0);
        let turn = AtomicU64::new(0);
        hammer(n, keys as u64 * (limit + 1), || {
            let k = turn.fetch_add(1, Ordering::Relaxed) % keys as u64;
            let d = l
                .check(format!("key-{k}").as_bytes(), Target::Policy(p), 1, now)
                .unwrap();
            if d.table_full {
                full.fetch_add(1, Ordering::Relaxed);
            }
            if d.allowed {
                counts[k as usize].fetch_add(1, Ordering::Relaxed);
            }
            d.allowed
        });
        for (k, c) in counts.iter().enumerate() {
            assert!(c.load(Ordering::Relaxed) <= limit, "key {k} admitted {c:?}");
        }
        assert_eq!(l.stats().table_full_closed, full.load(Ordering::Relaxed));
        // Every key that has its cells is exact: top it up alone.
        for (k, count) in counts.iter().enumerate() {
            let key = format!("key-{k}");
            let mut extra = 0;
            loop {
                let d = l.check(key.as_bytes(), Target::Policy(p), 1, now).unwrap();
                if !d.allowed || d.table_full {
                    break;
                }
                extra += 1;
            }
            assert!(count.load(Ordering::Relaxed) + extra <= limit);
        }
    }
}
