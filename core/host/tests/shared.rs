//! The shared segment: layout checks, and several processes on one table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aisoule_ratelimit::json::parse_config;
use aisoule_ratelimit::{Config, Limiter, Now, Target};
use aisoule_ratelimit_host::{SharedError, SharedTable, Table, HEADER_BYTES};

const T0: u64 = 1_780_423_178_274_000_000;

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("asrl-shm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

fn big_window_config() -> Config {
    parse_config(
        r#"{"policies": {"bulk": [{"algorithm": "window", "limit": 1000000, "period_ms": 86400000}]},
            "routes": [], "default_policy": "bulk"}"#,
    )
    .unwrap()
    .config
}

fn limiter(path: &Path, capacity: Option<u64>, config: Config) -> Limiter<Table> {
    let shared = SharedTable::open(path, capacity, &config).unwrap();
    let seed = shared.seed();
    Limiter::new(config, Table::Shared(shared), seed)
}

#[test]
fn a_second_mapping_sees_the_first_ones_counts() {
    let path = temp_path("reopen");
    let a = limiter(&path, Some(1024), Config::documented());
    for _ in 0..7 {
        assert!(
            a.check(b"k", Target::Route("/v1/status"), 1, Now::same(T0))
                .unwrap()
                .allowed
        );
    }
    let b = limiter(&path, None, Config::documented());
    let d = b
        .peek(b"k", Target::Route("/v1/status"), 1, Now::same(T0))
        .unwrap();
    assert_eq!(d.remaining, 113);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn mismatches_are_named_and_change_nothing() {
    let path = temp_path("mismatch");
    let a = limiter(&path, Some(256), Config::documented());
    assert!(
        a.check(b"k", Target::Route("/v1/status"), 1, Now::same(T0))
            .unwrap()
            .allowed
    );
    let before = std::fs::read(&path).unwrap();

    let err = SharedTable::open(&path, Some(512), &Config::documented()).unwrap_err();
    assert!(
        matches!(
            err,
            SharedError::Capacity {
                found: 256,
                expected: 512
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("capacity 256"), "{err}");

    let err = SharedTable::open(&path, Some(256), &big_window_config()).unwrap_err();
    assert!(matches!(err, SharedError::Policies { .. }), "{err}");
    assert!(err.to_string().contains("other policies"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn broken_files_get_clear_errors() {
    let truncated = temp_path("truncated");
    drop(limiter(&truncated, Some(64), Config::documented()));
    let f = std::fs::OpenOptions::new().write(true).open(&truncated).unwrap();
    f.set_len(HEADER_BYTES as u64 + 100).unwrap();
    let err = SharedTable::open(&truncated, None, &Config::documented()).unwrap_err();
    assert!(matches!(err, SharedError::Truncated { .. }), "{err}");

    let short = temp_path("short");
    std::fs::write(&short, b"tiny").unwrap();
    assert!(matches!(
        SharedTable::open(&short, Some(64), &Config::documented()).unwrap_err(),
        SharedError::Truncated { found: 4, .. }
    ));

    let garbage = temp_path("garbage");
    std::fs::write(&garbage, vec![7u8; HEADER_BYTES + 64 * 16]).unwrap();
    assert!(matches!(
        SharedTable::open(&garbage, None, &Config::documented()).unwrap_err(),
        SharedError::NotASegment(_)
    ));

    let corrupt = temp_path("corrupt");
    drop(limiter(&corrupt, Some(64), Config::documented()));
    let mut bytes = std::fs::read(&corrupt).unwrap();
    bytes[24] ^= 1; // capacity, without fixing the layout hash
    std::fs::write(&corrupt, &bytes).unwrap();
    assert!(matches!(
        SharedTable::open(&corrupt, None, &Config::documented()).unwrap_err(),
        SharedError::Corrupt(_)
    ));

    let missing_dir = temp_path("no-such-dir").join("segment");
    let err = SharedTable::open(&missing_dir, Some(64), &Config::documented()).unwrap_err();
    assert!(matches!(err, SharedError::Io { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");

    let missing = temp_path("missing");
    assert!(matches!(
        SharedTable::open(&missing, None, &Config::documented()).unwrap_err(),
        SharedError::Io { .. }
    ));
    assert!(matches!(
        SharedTable::open(&missing, Some(0), &Config::documented()).unwrap_err(),
        SharedError::InvalidCapacity(0)
    ));
}

/// Spawns this test binary as a worker process running `role`.
fn worker(role: &str, path: &Path, extra: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "worker_entry", "--nocapture", "--test-threads", "1"])
        .env("ASRL_WORKER_ROLE", role)
        .env("ASRL_WORKER_PATH", path)
        .env("ASRL_WORKER_EXTRA", extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The worker side: does nothing unless spawned by one of the tests below.
#[test]
fn worker_entry() {
    let Ok(role) = std::env::var("ASRL_WORKER_ROLE") else {
        return;
    };
    let path = PathBuf::from(std::env::var("ASRL_WORKER_PATH").unwrap());
    let extra = std::env::var("ASRL_WORKER_EXTRA").unwrap();
    let l = limiter(&path, None, big_window_config());
    match role.as_str() {
        // Hammer one key with a frozen clock; print how many were admitted.
        "hammer" => {
            let attempts: u64 = extra.parse().unwrap();
            let admitted = (0..attempts)
                .filter(|_| {
                    l.check(b"one-key", Target::Route("/"), 1, Now::same(T0))
                        .unwrap()
                        .allowed
                })
                .count();
            println!("ADMITTED {admitted}");
        }
        // Admit forever, logging one byte per admission to `extra`, until killed.
        "forever" => {
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&extra)
                .unwrap();
            loop {
                if l.check(b"one-key", Target::Route("/"), 1, Now::same(T0))
                    .unwrap()
                    .allowed
                {
                    log.write_all(b"x").unwrap();
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn admitted_of(child: Child) -> u64 {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // The test harness may print "test worker_entry ... " on the same line.
    let at = text
        .find("ADMITTED ")
        .unwrap_or_else(|| panic!("worker printed no count: {text}"));
    text[at + "ADMITTED ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn four_processes_on_one_key_admit_exactly_the_limit() {
    let path = temp_path("four");
    // Create it here so the workers only open it.
    let l = limiter(&path, Some(4096), big_window_config());
    // 4 x 300,000 attempts against a limit of 1,000,000.
    let workers: Vec<Child> = (0..4).map(|_| worker("hammer", &path, "300000")).collect();
    let total: u64 = workers.into_iter().map(admitted_of).sum();
    assert_eq!(total, 1_000_000);
    let d = l.peek(b"one-key", Target::Route("/"), 1, Now::same(T0)).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
}

#[test]
fn killing_workers_mid_run_leaves_the_others_running_and_counts_exact() {
    let path = temp_path("kill");
    let l = limiter(&path, Some(4096), big_window_config());
    let logs = temp_path("kill-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log_of = |i: usize| logs.join(format!("w{i}.log"));
    let logged = |i: usize| std::fs::metadata(log_of(i)).map_or(0, |m| m.len());
    let mut running: Vec<(usize, Child)> = (0..3)
        .map(|i| (i, worker("forever", &path, log_of(i).to_str().unwrap())))
        .collect();
    let mut next = 3;
    let mut kills = 0u64;
    for round in 0..12 {
        // Kill the oldest worker once it has admitted something since it started.
        let (i, mut child) = running.remove(0);
        while logged(i) == 0 {
            std::thread::yield_now();
        }
        // Let it run a little longer, then SIGKILL it mid-update.
        let target = logged(i) + 1000 * (round + 1);
        while logged(i) < target {
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        running.push((next, worker("forever", &path, log_of(next).to_str().unwrap())));
        next += 1;
    }
    for (_, mut child) in running {
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    let logged_total: u64 = (0..next).map(logged).sum();
    let d = l.peek(b"one-key", Target::Route("/"), 1, Now::same(T0)).unwrap();
    let counted = 1_000_000 - d.remaining;
    // Each killed process may have stored an admission it did not live to log.
    assert!(
        counted >= logged_total,
        "counted {counted} < logged {logged_total}"
    );
    assert!(
        counted <= logged_total + kills,
        "counted {counted} > logged {logged_total} + {kills} kills"
    );
    // And the table still works for everyone.
    assert!(
        l.check(b"another", Target::Route("/"), 1, Now::same(T0))
            .unwrap()
            .allowed
    );
}
