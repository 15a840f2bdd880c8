//! The core against the naive model of `common/mod.rs`: random configs, random request
//! sequences (time forward and back, costs from 0 to above capacity, several keys), every
//! decision field and the header/body text compared.
#![cfg(not(miri))]

mod common;

use aisoule_ratelimit::{Cell, CheckError, Config, FullTableMode, Limiter, Now, Policy, Rule, Seed, Target};
use common::{core_text, Model, ModelError};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const CLOCK_TOP: u64 = 1 << 62;
const PREFIXES: [&str; 4] = ["/a", "/a/b", "/v1/messages", "/b"];
const PATHS: [&str; 12] = [
    "/a",
    "/a/",
    "/a/b",
    "/a?x=1",
    "/ab",
    "/A",
    "/v1/messages",
    "/v1/messages/42",
    "/v1/messagesX",
    "/v1/messages?x=1",
    "/",
    "",
];

#[derive(Clone, Debug)]
struct RuleGen {
    gcra: bool,
    limit: u64,
    period_ns: u64,
    burst: Option<u64>,
}

impl RuleGen {
    fn build(&self) -> Rule {
        if self.gcra {
            let burst = self.burst.unwrap_or(self.limit);
            Rule::gcra(self.limit, self.period_ns, burst).expect("generated GCRA rule in range")
        } else {
            let limit = self.limit.min(Rule::max_window_limit(self.period_ns));
            Rule::window(limit, self.period_ns).expect("generated window rule in range")
        }
    }
}

fn rule_gen() -> impl Strategy<Value = RuleGen> {
    let period = prop_oneof![
        Just(MS),
        Just(3 * MS),
        Just(7 * MS),
        Just(S),
        Just(60 * S),
        MS..=20 * S,
    ];
    let limit = prop_oneof![3 => 1u64..=6, 2 => 1u64..=40, 1 => Just(1u64)];
    let burst = prop_oneof![2 => Just(None), 1 => (1u64..=50).prop_map(Some)];
    (any::<bool>(), limit, period, burst).prop_map(|(gcra, limit, period_ns, burst)| RuleGen {
        gcra,
        limit,
        period_ns,
        burst,
    })
}

#[derive(Clone, Debug)]
struct ConfigGen {
    policies: Vec<Vec<RuleGen>>,
    routes: Vec<(usize, usize)>,
    default_policy: usize,
}

impl ConfigGen {
    fn build(&self) -> Config {
        let names = ["p0", "p1", "p2"];
        let policies: Vec<Policy> = self
            .policies
            .iter()
            .enumerate()
            .map(|(i, rules)| {
                let rules: Vec<Rule> = rules.iter().map(RuleGen::build).collect();
                Policy::new(names[i], &rules).unwrap()
            })
            .collect();
        let mut config = Config::new(&policies).unwrap();
        for &(prefix, policy) in &self.routes {
            config
                .add_route(PREFIXES[prefix], names[policy % policies.len()])
                .unwrap();
        }
        config
            .set_default_policy(names[self.default_policy % policies.len()])
            .unwrap();
        config
    }
}

fn config_gen() -> impl Strategy<Value = ConfigGen> {
    (
        prop::collection::vec(prop::collection::vec(rule_gen(), 1..=4), 1..=3),
        prop::collection::vec((0..PREFIXES.len(), 0usize..3), 0..=3),
        0usize..3,
    )
        .prop_map(|(policies, routes, default_policy)| ConfigGen {
            policies,
            routes,
            default_policy,
        })
}

#[derive(Clone, Debug)]
enum TargetGen {
    Policy(usize),
    Path(usize),
}

#[derive(Clone, Debug)]
struct Op {
    key: u8,
    target: TargetGen,
    cost: u64,
    dt: i64,
    peek: bool,
}

fn op_gen() -> impl Strategy<Value = Op> {
    let target = prop_oneof![
        (0usize..3).prop_map(TargetGen::Policy),
        (0..PATHS.len()).prop_map(TargetGen::Path)
    ];
    let cost = prop_oneof![6 => Just(1u64), 3 => 0u64..=8, 1 => 0u64..=60];
    let dt = prop_oneof![
        3 => Just(0i64),
        3 => 0i64..=2_000_000,
        3 => 0i64..=3_000_000_000,
        1 => 0i64..=200_000_000_000,
        1 => -3_000_000_000i64..=0,
        1 => -100_000_000_000i64..=0,
    ];
    (0u8..3, target, cost, dt, prop::bool::weighted(0.15)).prop_map(|(key, target, cost, dt, peek)| Op {
        key,
        target,
        cost,
        dt,
        peek,
    })
}

fn start_gen() -> impl Strategy<Value = (u64, u64)> {
    let mono = prop_oneof![
        Just(0u64),
        0u64..=1 << 40,
        Just(1_780_423_178_274_000_000u64),
        0u64..=CLOCK_TOP,
    ];
    let wall_offset = prop_oneof![Just(0u64), 0u64..=1 << 61];
    (mono, wall_offset)
}

/// Occupied cells (neither empty nor given back).
fn occupied(cells: &[Cell]) -> usize {
    cells
        .iter()
        .filter(|c| !matches!(c.load().0 & 0xff, 0 | 0xff))
        .count()
}

fn run_case(cfg: &ConfigGen, start: (u64, u64), ops: &[Op]) -> Result<(), TestCaseError> {
    let config = cfg.build();
    let mut model = Model::new(&config);
    let cells: Vec<Cell> = (0..1024).map(|_| Cell::new()).collect();
    let limiter = Limiter::new(config.clone(), cells, Seed([3, 5]));
    let (mut mono, wall_offset) = start;
    let mut max_mono = mono;
    let mut reused = false;
    for (n, op) in ops.iter().enumerate() {
        mono = (mono as i128 + op.dt as i128).clamp(0, CLOCK_TOP as i128) as u64;
        // A cell reused for another key is the contract's (section 5), and equivalent to
        // the model's state at every later instant, not at an earlier one: once a cell was
        // reused, stop where the clock goes back.
        if reused && mono < max_mono {
            return Ok(());
        }
        max_mono = max_mono.max(mono);
        let now = Now {
            mono_ns: mono,
            wall_ns: mono + wall_offset,
        };
        let key = [b'k', op.key];
        let (target, pid) = match op.target {
            TargetGen::Policy(p) => {
                let p = p % config.policies().len();
                let id = config.policy_id(config.policies()[p].name()).unwrap();
                (Target::Policy(id), p)
            }
            TargetGen::Path(i) => {
                let pid = model.route(PATHS[i]);
                prop_assert_eq!(config.route(PATHS[i]).index(), pid, "route of {:?}", PATHS[i]);
                (Target::Route(PATHS[i]), pid)
            }
        };
        let got = if op.peek {
            limiter.peek(&key, target, op.cost, now)
        } else {
            limiter.check(&key, target, op.cost, now)
        };
        let want = model.run(&key, pid, op.cost, now, !op.peek);
        match (got, want) {
            (Ok(d), Ok(m)) => {
                prop_assert!(
                    m.same_as(&d),
                    "op {}: {:?}\n core  {:?}\n model {:?}",
                    n,
                    op,
                    d,
                    m
                );
                let (headers, body) = core_text(&d, &config);
                prop_assert_eq!(headers, m.headers(), "op {}", n);
                prop_assert_eq!(body, m.body(), "op {}", n);
            }
            (Err(CheckError::InvalidCost), Err(ModelError::InvalidCost)) => {}
            (got, want) => prop_assert!(false, "op {}: {:?}: core {:?}, model {:?}", n, op, got, want),
        }
        if occupied(limiter.cells()) < model.states.len() {
            reused = true;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/model.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn core_answers_as_the_model(cfg in config_gen(), start in start_gen(), ops in prop::collection::vec(op_gen(), 1..80)) {
        run_case(&cfg, start, &ops)?;
    }

    /// One key, one policy, requests crowded around window edges and GCRA emission times.
    #[test]
    fn one_key_dense(rules in prop::collection::vec(rule_gen(), 1..=4), start in 0u64..=1 << 45,
                     steps in prop::collection::vec((0i64..=4_000_000, 1u64..=3, prop::bool::weighted(0.1)), 1..200)) {
        let cfg = ConfigGen { policies: vec![rules], routes: vec![], default_policy: 0 };
        let ops: Vec<Op> = steps
            .into_iter()
            .map(|(dt, cost, back)| Op { key: 0, target: TargetGen::Policy(0), cost, dt: if back { -dt } else { dt }, peek: false })
            .collect();
        run_case(&cfg, (start, 0), &ops)?;
    }
}

/// A small table with many keys and the clock moving forward: cells fill up and neutral
/// ones are reused. Every answer that is not a full-table answer is the model's (a reused
/// neutral cell is a fresh key's, which the model's old state equals at every later
/// instant); a full-table answer stores nothing (fail-closed, or fail-open on one rule), so
/// the model skips it.
fn run_small_table(
    cfg: &ConfigGen,
    capacity: usize,
    closed: bool,
    start: u64,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let config = cfg.build();
    let mut model = Model::new(&config);
    let cells: Vec<Cell> = (0..capacity).map(|_| Cell::new()).collect();
    let mode = if closed {
        FullTableMode::Closed
    } else {
        FullTableMode::Open
    };
    let limiter = Limiter::with_full_table_mode(config.clone(), cells, Seed([11, 13]), mode);
    let mut now = start;
    let mut full_checks = 0;
    for (n, op) in ops.iter().enumerate() {
        now = now.saturating_add(op.dt.unsigned_abs());
        let at = Now::same(now);
        let pid = match op.target {
            TargetGen::Policy(p) => p % config.policies().len(),
            TargetGen::Path(i) => model.route(PATHS[i]),
        };
        let target = Target::Policy(config.policy_id(config.policies()[pid].name()).unwrap());
        let key = [b'k', op.key];
        let got = if op.peek {
            limiter.peek(&key, target, op.cost, at)
        } else {
            limiter.check(&key, target, op.cost, at)
        };
        let d = match got {
            Ok(d) => d,
            Err(e) => {
                prop_assert_eq!(e, CheckError::InvalidCost);
                prop_assert_eq!(
                    model.run(&key, pid, op.cost, at, false),
                    Err(ModelError::InvalidCost)
                );
                continue;
            }
        };
        if d.table_full {
            if closed {
                prop_assert!(!d.allowed && d.retry_after_seconds == 1, "op {}: {:?}", n, d);
            } else if config.policies()[pid].rules().len() > 1 {
                // Fail-open stored the rules that had cells: the model cannot follow.
                return Ok(());
            } else {
                prop_assert!(d.allowed, "op {}: {:?}", n, d);
            }
            full_checks += u64::from(!op.peek && (closed || d.allowed));
            continue;
        }
        let m = model.run(&key, pid, op.cost, at, !op.peek).unwrap();
        prop_assert!(
            m.same_as(&d),
            "op {}: {:?}\n core  {:?}\n model {:?}",
            n,
            op,
            d,
            m
        );
    }
    let stats = limiter.stats();
    prop_assert_eq!(stats.table_full_open + stats.table_full_closed, full_checks);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 192,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/model.txt"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn small_tables_answer_as_the_model(cfg in config_gen(), capacity in 1usize..24, closed in any::<bool>(),
                                        start in 0u64..=1 << 50,
                                        ops in prop::collection::vec((op_gen(), 0u8..8), 1..120)) {
        // More keys than the table holds.
        let ops: Vec<Op> = ops.into_iter().map(|(mut op, key)| { op.key = key; op }).collect();
        // A livelock fails the case instead of hanging the run.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run_small_table(&cfg, capacity, closed, start, &ops));
        });
        rx.recv_timeout(std::time::Duration::from_secs(30)).map_err(|_| TestCaseError::fail("livelock: a check did not return"))??;
    }
}

/// The documented config, a burst of messaging traffic and the window edge, by hand.
#[test]
fn documented_config_against_the_model() {
    let config = Config::documented();
    let mut model = Model::new(&config);
    let limiter = Limiter::new(
        config.clone(),
        (0..4096).map(|_| Cell::new()).collect::<Vec<_>>(),
        Seed([1, 1]),
    );
    let base = 1_780_423_178_274 * MS;
    let mut compared = 0;
    for step in 0..2_000u64 {
        let now = Now::same(base + step * 97 * MS);
        for path in ["/v1/messages", "/v1/media/x", "/v1/status"] {
            let d = limiter.check(b"doc", Target::Route(path), 1, now).unwrap();
            let m = model.run(b"doc", model.route(path), 1, now, true).unwrap();
            assert!(m.same_as(&d), "step {step} {path}: core {d:?} model {m:?}");
            compared += 1;
        }
    }
    assert_eq!(compared, 6_000);
}
