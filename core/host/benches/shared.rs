//! A check on a table in a shared-memory segment against the same check on a table owned
//! by the process, same keys, same run. Prints the medians and the ratio (goal <= 1.5).

use std::hint::black_box;
use std::time::{Duration, Instant};

use aisoule_ratelimit::{Config, Limiter, Now, Target};
use aisoule_ratelimit_host::{os_seed, SharedTable, Table};
use criterion::Criterion;

const CELLS: u64 = 1 << 16;

fn keys() -> Vec<[u8; 24]> {
    (0..10_000u64)
        .map(|i| {
            let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let mut k = *b"ak_live_0000000000000000";
            for (j, b) in k[8..].iter_mut().enumerate() {
                *b = b"0123456789abcdef"[((x >> (4 * j)) & 15) as usize];
            }
            k
        })
        .collect()
}

fn run(l: &Limiter<Table>, keys: &[[u8; 24]], n: u64, clock: &mut u64) -> Duration {
    let start = Instant::now();
    for i in 0..n as usize {
        *clock += 1_000_000;
        let d = l.check(
            black_box(&keys[i % keys.len()]),
            Target::Route(black_box("/v1/status")),
            1,
            Now::same(*clock),
        );
        black_box(d.ok());
    }
    start.elapsed()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    if std::env::var_os("ASRL_BENCH_QUICK").is_some() {
        c = c
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    }
    let keys = keys();
    let dir = std::env::temp_dir().join(format!("asrl-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("table");
    let shared = SharedTable::open(&path, Some(CELLS), &Config::documented()).expect("segment");
    let seed = shared.seed();
    let shared = Limiter::new(Config::documented(), Table::Shared(shared), seed);
    let owned = Limiter::new(Config::documented(), Table::owned(CELLS as usize), os_seed());

    let mut g = c.benchmark_group("table_placement_10k_keys");
    let mut clock = 1_780_423_178_274_000_000;
    run(&owned, &keys, 10_000, &mut clock);
    g.bench_function("in_process", |b| {
        b.iter_custom(|n| run(&owned, &keys, n, &mut clock))
    });
    let mut clock = 1_780_423_178_274_000_000;
    run(&shared, &keys, 10_000, &mut clock);
    g.bench_function("shared_segment", |b| {
        b.iter_custom(|n| run(&shared, &keys, n, &mut clock))
    });
    g.finish();
    c.final_summary();
    let _ = std::fs::remove_dir_all(&dir);

    let median = |id: &str| -> f64 {
        let base = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
            || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"),
            std::path::PathBuf::from,
        );
        let text = std::fs::read_to_string(base.join("criterion").join(id).join("new/estimates.json"))
            .unwrap_or_default();
        text.find("\"median\"")
            .and_then(|at| {
                let rest = &text[at..];
                let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
                let end = rest[p..].find([',', '}'])?;
                rest[p..p + end].trim().parse().ok()
            })
            .unwrap_or(f64::NAN)
    };
    let owned = median("table_placement_10k_keys/in_process");
    let shared = median("table_placement_10k_keys/shared_segment");
    println!("\nsummary (medians, ns per check)");
    println!("  in-process table:     {owned:8.2} ns");
    println!(
        "  shared-memory table:  {shared:8.2} ns   ratio x{:.2} (goal <= 1.5)",
        shared / owned
    );
}
