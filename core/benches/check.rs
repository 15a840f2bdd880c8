//! `check` on the standard policy against governor's keyed limiter, same string keys,
//! same process. Prints medians and the throughput ratios at the end.
//!
//! Run with `cargo bench -p aisoule-ratelimit --bench check`. Set `ASRL_BENCH_QUICK=1`
//! for a short run (CI smoke).

use std::hint::black_box;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aisoule_ratelimit::{Config, Limiter, Now, Rule, Seed, Target};
use aisoule_ratelimit_host::Table;
use criterion::{BenchmarkId, Criterion};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use portable_atomic::AtomicU128;
use siphasher::sip::SipHasher13;

/// Keys of 24 bytes, spread by a hash (not sequential).
fn keys(n: usize) -> Vec<[u8; 24]> {
    (0..n as u64)
        .map(|i| {
            let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xdead_beef;
            x ^= x >> 31;
            let mut k = *b"ak_live_0000000000000000";
            for (j, b) in k[8..].iter_mut().enumerate() {
                *b = b"0123456789abcdef"[((x >> (4 * j)) & 15) as usize];
            }
            k
        })
        .collect()
}

/// A limiter over a table of `cells` cells as the bindings make it.
fn table(cells: usize) -> Limiter<Table> {
    let cells = Table::try_owned(cells).expect("a table that fits in memory");
    Limiter::new(Config::documented(), cells, Seed([0x0123_4567, 0x89ab_cdef]))
}

const START_NS: u64 = 1_780_423_178_274_000_000;
/// Each check advances the synthetic clock by 1 ms: a key of 10,000 comes back every
/// 10 s, well under its 120 a minute, so every check takes the admit-and-store path.
const STEP_NS: u64 = 1_000_000;

/// `iters` checks over `keys`, starting at key `offset`; returns the time taken.
fn run_checks(limiter: &Limiter<Table>, keys: &[[u8; 24]], iters: u64, clock: &mut u64) -> Duration {
    // The route is opaque to the optimizer but stays in registers: `black_box` of a
    // slice inside the loop goes through memory, written as two words and read back as
    // one 16-byte load, a store-forwarding stall a real caller does not pay (about 3 ns).
    let route = black_box("/v1/status");
    let start = Instant::now();
    let mut i = 0usize;
    for _ in 0..iters {
        *clock += STEP_NS;
        let key: &[u8] = &keys[black_box(i)];
        let d = limiter.check(key, Target::Route(route), 1, Now::same(*clock));
        // The figures a caller writes as headers, read one by one. Copied into a tuple
        // instead, two of them (stored by `check` one at a time) were read back as one
        // 16-byte load, which stalls on store-to-load forwarding: about 1 ns a check that
        // only this loop paid (perf: half its own samples on that load).
        black_box(d.map(|d| d.limit ^ d.remaining ^ d.reset).ok());
        i += 1;
        if i == keys.len() {
            i = 0;
        }
    }
    start.elapsed()
}

fn run_governor(limiter: &DefaultKeyedRateLimiter<String>, keys: &[String], iters: u64) -> Duration {
    let start = Instant::now();
    let mut i = 0usize;
    for _ in 0..iters {
        black_box(limiter.check_key(&keys[black_box(i)]).is_ok());
        i += 1;
        if i == keys.len() {
            i = 0;
        }
    }
    start.elapsed()
}

/// `iters` operations on each of `threads` threads at once; the time per operation of
/// the whole (wall time / total operations).
fn in_threads(threads: usize, iters: u64, op: impl Fn(usize, u64) -> Duration + Sync) -> Duration {
    let barrier = std::sync::Barrier::new(threads + 1);
    let start = std::thread::scope(|s| {
        for t in 0..threads {
            let (op, barrier) = (&op, &barrier);
            s.spawn(move || {
                barrier.wait();
                op(t, iters)
            });
        }
        barrier.wait();
        Instant::now()
    });
    start.elapsed() / threads as u32
}

/// The parts of a check that no check can skip, on the same keys and a table of the same
/// size (1 MiB), each loop otherwise as `run_checks`: the key's SipHash-1-3 alone; with the
/// load of its home cell and a 16-byte compare-and-swap of it; and with the standard
/// policy's window rule deciding between the two (the core's own `Rule::decide`), which is
/// a whole check but for routing, the policy, probing and the decision's fields.
///
/// On the million-key table one more loop: the hash and the home cell's load, each load's
/// index taking a bit of the word the load before it read, so that every load waits for
/// the one before (a memory round trip per check, which the other loops can overlap).
#[derive(Clone, Copy)]
enum Floor {
    Hash,
    HashLoadCas,
    HashLoadDecideCas,
    HashLoadChain,
}

/// A home as the core's: a multiply-high of the hash with the capacity (the core first
/// mixes the rule tag into the top byte). Computed in each loop that loads, not before the
/// branch, so the hash-only loop does not pay for it.
#[inline(always)]
fn floor_home(hash: u64, capacity: usize) -> usize {
    ((u128::from(hash) * capacity as u128) >> 64) as usize
}

fn run_floor(part: Floor, cells: &[AtomicU128], keys: &[[u8; 24]], iters: u64, clock: &mut u64) -> Duration {
    let rule = Rule::window(120, 60_000_000_000).expect("the standard rule");
    let start = Instant::now();
    let mut i = 0usize;
    let mut last_word = 0u128;
    for _ in 0..iters {
        *clock += STEP_NS;
        let key: &[u8] = &keys[black_box(i)];
        let hash = SipHasher13::new_with_keys(0x0123_4567, 0x89ab_cdef).hash(key);
        if let Floor::Hash = part {
            black_box(hash);
        } else if let Floor::HashLoadChain = part {
            // The cells stay empty, so the bit is 0, but the load cannot start before
            // the one it comes from has answered.
            let cell = &cells[floor_home(hash, cells.len()) ^ (last_word as usize & 1)];
            last_word = cell.load(std::sync::atomic::Ordering::Acquire);
        } else {
            let cell = &cells[floor_home(hash, cells.len())];
            let word = cell.load(std::sync::atomic::Ordering::Acquire);
            let fp = hash | 1;
            let (new, out) = if let Floor::HashLoadDecideCas = part {
                let state = if (word >> 64) as u64 == fp {
                    word & u128::from(u64::MAX)
                } else {
                    0
                };
                let outcome = rule.decide(state, *clock, 1);
                let f = outcome.figures;
                (
                    (u128::from(fp) << 64) | outcome.state,
                    (f.limit, f.remaining, f.reset_ns as u64),
                )
            } else {
                (
                    (u128::from(fp) << 64) | (word + 1) & u128::from(u64::MAX),
                    (0, 0, 0),
                )
            };
            let swapped = cell.compare_exchange(
                word,
                new,
                std::sync::atomic::Ordering::AcqRel,
                std::sync::atomic::Ordering::Acquire,
            );
            black_box((swapped.is_ok(), out));
        }
        i += 1;
        if i == keys.len() {
            i = 0;
        }
    }
    black_box(last_word);
    start.elapsed()
}

fn benches(c: &mut Criterion) {
    let k10 = keys(10_000);
    let s10: Vec<String> = k10
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();

    let mut g = c.benchmark_group("one_thread_10k_keys");
    let ours = table(1 << 16);
    let mut clock = START_NS;
    run_checks(&ours, &k10, 10_000, &mut clock);
    g.bench_function("aisoule_check", |b| {
        b.iter_custom(|n| run_checks(&ours, &k10, n, &mut clock))
    });
    let gov = RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(120).expect("120 > 0")));
    run_governor(&gov, &s10, 10_000);
    g.bench_function("governor_keyed", |b| {
        b.iter_custom(|n| run_governor(&gov, &s10, n))
    });
    g.finish();

    let mut g = c.benchmark_group("floor_10k_keys");
    for (name, part) in [
        ("siphash13", Floor::Hash),
        ("siphash13_load_cas", Floor::HashLoadCas),
        ("siphash13_load_rule_cas", Floor::HashLoadDecideCas),
    ] {
        let cells: Vec<AtomicU128> = (0..1 << 16).map(|_| AtomicU128::new(0)).collect();
        let mut clock = START_NS;
        run_floor(part, &cells, &k10, 10_000, &mut clock);
        g.bench_function(name, |b| {
            b.iter_custom(|n| run_floor(part, &cells, &k10, n, &mut clock))
        });
    }
    g.finish();

    // Two threads on disjoint halves of the keys, each thread with its own clock, which
    // goes on from sample to sample as one thread's does (restarted, it would go back).
    let halves: Vec<&[[u8; 24]]> = k10.chunks(5_000).collect();
    let shalves: Vec<&[String]> = s10.chunks(5_000).collect();
    let mut g = c.benchmark_group("two_threads_10k_keys");
    let two_threads = |limiter: &Limiter<Table>, n: u64, clocks: &[AtomicU64; 2]| {
        in_threads(2, n, |t, n| {
            let mut clock = clocks[t].load(Ordering::Relaxed);
            let took = run_checks(limiter, halves[t], n, &mut clock);
            clocks[t].store(clock, Ordering::Relaxed);
            took
        })
    };
    let ours = table(1 << 16);
    let clocks = [AtomicU64::new(START_NS), AtomicU64::new(START_NS + 1)];
    g.bench_function(BenchmarkId::new("aisoule_check", "per_op"), |b| {
        b.iter_custom(|n| two_threads(&ours, n, &clocks))
    });
    // The same on a 16 MiB table. Four cells share a 64-byte line: in the 1 MiB table a
    // quarter of one thread's checks touch a line the other thread writes too, and that
    // line must come from the other core's cache; a sparser table shares fewer lines.
    let sparse = table(1 << 20);
    let clocks = [AtomicU64::new(START_NS), AtomicU64::new(START_NS + 1)];
    g.bench_function(BenchmarkId::new("aisoule_check_16mib", "per_op"), |b| {
        b.iter_custom(|n| two_threads(&sparse, n, &clocks))
    });
    let gov = RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(120).expect("120 > 0")));
    g.bench_function(BenchmarkId::new("governor_keyed", "per_op"), |b| {
        b.iter_custom(|n| in_threads(2, n, |t, n| run_governor(&gov, shalves[t], n)))
    });
    g.finish();

    let mut g = c.benchmark_group("one_thread_10k_keys_16mib");
    // After the later of the two threads' clocks: the keys' time never goes back.
    let mut clock = clocks[0]
        .load(Ordering::Relaxed)
        .max(clocks[1].load(Ordering::Relaxed));
    run_checks(&sparse, &k10, 10_000, &mut clock);
    g.bench_function("aisoule_check", |b| {
        b.iter_custom(|n| run_checks(&sparse, &k10, n, &mut clock))
    });
    g.finish();

    let quick = std::env::var_os("ASRL_BENCH_QUICK").is_some();
    let n_big = if quick { 100_000 } else { 1_000_000 };
    let kbig = keys(n_big);
    let mut g = c.benchmark_group("one_thread_1m_keys");
    // Twice as many cells as keys: 32 MiB for a million keys.
    let ours = table(2 * n_big);
    let mut clock = START_NS;
    run_checks(&ours, &kbig, n_big as u64, &mut clock);
    g.bench_function("aisoule_check", |b| {
        b.iter_custom(|n| run_checks(&ours, &kbig, n, &mut clock))
    });
    g.finish();
    drop(ours);

    // What no check on a table of that size skips: the hash, the home cell's load (a
    // cache miss now) and its compare-and-swap; and the same loads made one after
    // another, the memory's round trip. The cells are on 4 KiB pages, the check's table
    // on huge pages where the system grants them (about 1 ns less a check, measured).
    let mut g = c.benchmark_group("floor_1m_keys");
    for (name, part) in [
        ("siphash13_load_cas", Floor::HashLoadCas),
        ("siphash13_load_chain", Floor::HashLoadChain),
    ] {
        // Fresh cells for each loop: the chain's loads must find them empty.
        let cells: Vec<AtomicU128> = (0..2 * n_big).map(|_| AtomicU128::new(0)).collect();
        let mut clock = START_NS;
        run_floor(part, &cells, &kbig, n_big as u64, &mut clock);
        g.bench_function(name, |b| {
            b.iter_custom(|n| run_floor(part, &cells, &kbig, n, &mut clock))
        });
    }
    g.finish();
}

/// The median estimate criterion saved for a benchmark, in ns.
fn median_ns(id: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(dir.join("criterion").join(id).join("new/estimates.json")).ok()?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let end = rest[p..].find([',', '}'])?;
    rest[p..p + end].trim().parse().ok()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    if std::env::var_os("ASRL_BENCH_QUICK").is_some() {
        c = c
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    }
    benches(&mut c);
    c.final_summary();

    let get = |id: &str| median_ns(id).unwrap_or(f64::NAN);
    let ours1 = get("one_thread_10k_keys/aisoule_check");
    let gov1 = get("one_thread_10k_keys/governor_keyed");
    let ours2 = get("two_threads_10k_keys/aisoule_check/per_op");
    let gov2 = get("two_threads_10k_keys/governor_keyed/per_op");
    let big = get("one_thread_1m_keys/aisoule_check");
    let sparse1 = get("one_thread_10k_keys_16mib/aisoule_check");
    let sparse2 = get("two_threads_10k_keys/aisoule_check_16mib/per_op");
    let hash = get("floor_10k_keys/siphash13");
    let hash_cas = get("floor_10k_keys/siphash13_load_cas");
    let hash_rule_cas = get("floor_10k_keys/siphash13_load_rule_cas");
    let big_cas = get("floor_1m_keys/siphash13_load_cas");
    let big_chain = get("floor_1m_keys/siphash13_load_chain");
    println!();
    println!("summary (medians, ns per check; two-thread figures are wall time / all checks)");
    println!("  aisoule check, 10k keys, 1 thread:   {ours1:8.2} ns   (goal <= 20)");
    println!("  governor keyed, 10k keys, 1 thread:  {gov1:8.2} ns");
    println!(
        "  aisoule check, 10k keys, 2 threads:  {ours2:8.2} ns   scaling x{:.2} (goal >= 1.8)",
        ours1 / ours2
    );
    println!(
        "  governor keyed, 10k keys, 2 threads: {gov2:8.2} ns   scaling x{:.2}",
        gov1 / gov2
    );
    println!(
        "  the same, 16 MiB table:              {sparse1:8.2} ns 1 thread, {sparse2:.2} ns 2 threads, scaling x{:.2} (goal >= 1.8)",
        sparse1 / sparse2
    );
    println!("  aisoule check, 1M keys, 1 thread:    {big:8.2} ns   (goal <= 60)");
    println!(
        "  parts no check skips, 1M keys: SipHash-1-3 + load + CAS {big_cas:.2} ns; the loads one after another {big_chain:.2} ns"
    );
    println!(
        "  parts no check skips: SipHash-1-3 {hash:.2} ns; + load + CAS {hash_cas:.2} ns; + the window rule {hash_rule_cas:.2} ns ({:.0}% of the check)",
        100.0 * hash_rule_cas / ours1
    );
    println!(
        "  ratio vs governor, 1 thread:  x{:.2} (goal >= 1.5)",
        gov1 / ours1
    );
    println!(
        "  ratio vs governor, 2 threads: x{:.2} (goal >= 3); with the 16 MiB table x{:.2}",
        gov2 / ours2,
        gov2 / sparse2
    );
}
