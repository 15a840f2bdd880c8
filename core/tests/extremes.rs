//! Extremes: the clock at 0 and at u64::MAX (both clocks), the clock going back, limits 1
//! and the documented maximums, periods from 1 ms to 100 years. No panic, no overflow
//! (run in debug, so overflow panics), and the contract's answer (the model's). Then
//! invalid configuration and costs: typed errors that change nothing.

mod common;

use aisoule_ratelimit::{
    Cell, CheckError, Config, ConfigError, Limiter, Now, Policy, PolicyId, Rule, RuleError, Seed, Target,
    MAX_GCRA_SPAN_NS, MAX_LIMIT, MAX_PERIOD_NS, MAX_RULES, MIN_PERIOD_NS,
};
use common::{core_text, Model, ModelError};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const YEAR: u64 = 365 * 86_400 * S;

fn limiter(rules: &[Rule]) -> (Limiter<Vec<Cell>>, PolicyId, Config) {
    let config = Config::new(&[Policy::new("p", rules).unwrap()]).unwrap();
    let id = config.policy_id("p").unwrap();
    let l = Limiter::new(
        config.clone(),
        (0..256).map(|_| Cell::new()).collect(),
        Seed([8, 8]),
    );
    (l, id, config)
}

/// Runs `(mono, wall, cost)` requests on one key through the core and the model and
/// compares every answer.
fn compare(rules: &[Rule], requests: &[(u64, u64, u64)]) {
    let (l, p, config) = limiter(rules);
    let mut model = Model::new(&config);
    for (n, &(mono, wall, cost)) in requests.iter().enumerate() {
        let now = Now {
            mono_ns: mono,
            wall_ns: wall,
        };
        let got = l.check(b"x", Target::Policy(p), cost, now);
        let want = model.run(b"x", 0, cost, now, true);
        match (got, want) {
            (Ok(d), Ok(m)) => {
                assert!(
                    m.same_as(&d),
                    "request {n} {:?} of {rules:?}:\n core  {d:?}\n model {m:?}",
                    requests[n]
                );
                let (headers, body) = core_text(&d, &config);
                assert_eq!((headers, body), (m.headers(), m.body()));
            }
            (Err(CheckError::InvalidCost), Err(ModelError::InvalidCost)) => {}
            (got, want) => panic!("request {n}: core {got:?}, model {want:?}"),
        }
    }
}

/// Rules at the documented extremes.
fn extreme_rules() -> Vec<Rule> {
    let mut rules = vec![
        Rule::gcra(1, MIN_PERIOD_NS, 1).unwrap(),
        Rule::gcra(MAX_LIMIT, MIN_PERIOD_NS, MAX_LIMIT).unwrap(),
        Rule::gcra(MAX_LIMIT, MAX_PERIOD_NS, MAX_LIMIT).unwrap(),
        Rule::gcra(1, MAX_PERIOD_NS, 1).unwrap(),
        Rule::gcra(1, YEAR, 146).unwrap(),
        Rule::gcra(3, 3 * MS, 3).unwrap(),
    ];
    for period in [MIN_PERIOD_NS, 3 * MS, S, YEAR, MAX_PERIOD_NS] {
        rules.push(Rule::window(1, period).unwrap());
        rules.push(Rule::window(Rule::max_window_limit(period), period).unwrap());
    }
    rules
}

/// A request pattern around `base`: bursts at capacity, costs 1 and the capacity, steps
/// of a period, and the clock going back to `back`.
fn pattern(rule: &Rule, base: u64, back: u64, wall: impl Fn(u64) -> u64) -> Vec<(u64, u64, u64)> {
    let cap = rule.capacity();
    let p = rule.period_ns();
    let mut out = Vec::new();
    let mut push = |t: u64, c: u64| out.push((t, wall(t), c));
    push(base, cap);
    push(base, 1);
    push(base, cap);
    push(base.saturating_add(1), 1);
    push(base.saturating_add(p / 2), 1);
    push(base.saturating_add(p), cap);
    push(base.saturating_add(p), 1);
    push(back, 1);
    push(back, cap);
    push(base.saturating_add(2 * p), 1);
    push(base.saturating_add(p).saturating_add(p / 3), cap.div_ceil(2));
    push(0, 1);
    push(base, 0);
    push(base, cap + 1);
    out
}

#[test]
fn clock_at_zero() {
    for rule in extreme_rules() {
        compare(&[rule], &pattern(&rule, 0, 0, |t| t));
    }
}

#[test]
fn documented_config_at_zero_and_max_wall() {
    let config = Config::documented();
    let l = Limiter::new(
        config.clone(),
        (0..256).map(|_| Cell::new()).collect::<Vec<_>>(),
        Seed([1, 1]),
    );
    let mut model = Model::new(&config);
    for (mono, wall) in [
        (0, 0),
        (0, u64::MAX),
        (5 * S, u64::MAX - 1),
        (u64::MAX / 2, u64::MAX),
        (u64::MAX - 2 * S, 0),
    ] {
        for path in ["/v1/messages", "/v1/media", "/"] {
            for _ in 0..7 {
                let now = Now {
                    mono_ns: mono,
                    wall_ns: wall,
                };
                let d = l.check(b"k", Target::Route(path), 1, now).unwrap();
                let m = model.run(b"k", model.route(path), 1, now, true).unwrap();
                assert!(m.same_as(&d), "{mono} {wall} {path}: core {d:?} model {m:?}");
            }
        }
    }
    // X-RateLimit-Reset at the end of the wall clock: ceil((2^64 - 1 + reset) / 1e9).
    let d = l
        .peek(
            b"fresh",
            Target::Route("/"),
            1,
            Now {
                mono_ns: 0,
                wall_ns: u64::MAX,
            },
        )
        .unwrap();
    assert_eq!(d.reset, u64::MAX.div_ceil(S));
}

#[test]
fn clock_in_the_middle_and_going_back_to_zero() {
    for rule in extreme_rules() {
        let base = 1_780_423_178_274 * MS;
        compare(&[rule], &pattern(&rule, base, base / 3, |t| t));
        compare(&[rule], &pattern(&rule, base, 0, |t| u64::MAX - t));
    }
}

/// Every figure is exact to the clock's last nanosecond: with a GCRA `tat` below 2^64,
/// and with one that passes it (the state keeps its 65th bit).
#[test]
fn clock_near_the_top() {
    for rule in extreme_rules() {
        // The pattern reaches base + 2P and stores at most B*T beyond.
        let span = rule.burst() as u128 * (rule.period_ns() as u128).div_ceil(rule.limit() as u128);
        assert!(span <= MAX_GCRA_SPAN_NS as u128 || rule.algorithm() == aisoule_ratelimit::Algorithm::Window);
        let reach = 3 * rule.period_ns() as u128
            + if rule.algorithm() == aisoule_ratelimit::Algorithm::Gcra {
                span
            } else {
                0
            };
        // The tat stays below 2^64; then it passes it.
        for base in [(u64::MAX as u128 - reach) as u64, u64::MAX - 3 * rule.period_ns()] {
            compare(&[rule], &pattern(&rule, base, 0, |t| t));
            compare(&[rule], &pattern(&rule, base, base - 1, |_| u64::MAX));
        }
    }
    for period in [MIN_PERIOD_NS, 3 * MS, S, YEAR, MAX_PERIOD_NS] {
        for limit in [1, Rule::max_window_limit(period)] {
            let rule = Rule::window(limit, period).unwrap();
            let last = u64::MAX;
            let reqs = [
                (last - 1, last, limit),
                (last, last, 1),
                (last, last, limit),
                (last - period / 2, last, 1),
                (0, 0, 1),
                (last, 0, 1),
            ];
            compare(&[rule], &reqs);
        }
    }
}

/// At the clock's end every rule answers as the contract, a GCRA rule whose `tat` passes
/// `u64::MAX` ns included, and again after the clock went back to 0.
#[test]
fn clock_at_u64_max() {
    for rule in extreme_rules() {
        for back in [0, 1, rule.period_ns() / 2, rule.period_ns()] {
            let (l, p, config) = limiter(&[rule]);
            let mut model = Model::new(&config);
            let now = Now::same(u64::MAX - back);
            let (mut got, mut want) = (0, 0);
            for cost in [1, rule.capacity(), 1, 1] {
                let d = l.check(b"x", Target::Policy(p), cost, now).unwrap();
                let m = model.run(b"x", 0, cost, now, true).unwrap();
                assert!(m.same_as(&d), "{rule:?} at -{back}: core {d:?} model {m:?}");
                assert_eq!(core_text(&d, &config), (m.headers(), m.body()));
                got += u64::from(d.allowed) * cost;
                want += u64::from(m.allowed) * cost;
            }
            assert_eq!(got, want, "{rule:?} at -{back}");
            let d = l.check(b"x", Target::Policy(p), 1, Now::same(0)).unwrap();
            let m = model.run(b"x", 0, 1, Now::same(0), true).unwrap();
            assert!(m.same_as(&d), "{rule:?} back to 0: core {d:?} model {m:?}");
            assert_eq!(core_text(&d, &config), (m.headers(), m.body()));
        }
    }
}

/// Every policy shape at the extremes at once: four rules, mixed.
#[test]
fn four_extreme_rules_in_one_policy() {
    let rules = [
        Rule::window(Rule::max_window_limit(MIN_PERIOD_NS), MIN_PERIOD_NS).unwrap(),
        Rule::gcra(MAX_LIMIT, MAX_PERIOD_NS, 1).unwrap(),
        Rule::window(1, MAX_PERIOD_NS).unwrap(),
        Rule::gcra(1, MIN_PERIOD_NS, 1).unwrap(),
    ];
    let base = 1_780_423_178_274 * MS;
    let reqs: Vec<(u64, u64, u64)> = [0, 1, MS, MS, 2 * MS, YEAR, 0, 100 * YEAR]
        .iter()
        .map(|&d| (base + d, base + d, 1))
        .chain([(base, base, 0), (base, base, 2)])
        .collect();
    compare(&rules, &reqs);
}

#[test]
fn invalid_rules_and_policies_are_typed_errors() {
    assert_eq!(Rule::gcra(0, S, 1), Err(RuleError::Limit));
    assert_eq!(Rule::window(0, S), Err(RuleError::Limit));
    assert_eq!(Rule::gcra(1, 0, 1), Err(RuleError::Period));
    assert_eq!(Rule::window(1, 0), Err(RuleError::Period));
    assert_eq!(Rule::gcra(1, S, 0), Err(RuleError::Burst));
    assert_eq!(Rule::gcra(1, S, MAX_LIMIT + 1), Err(RuleError::Burst));
    assert_eq!(Rule::gcra(MAX_LIMIT + 1, S, 1), Err(RuleError::Limit));
    assert_eq!(Rule::window(MAX_LIMIT, S), Err(RuleError::LimitTooLargeForPeriod));
    let r = Rule::window(1, S).unwrap();
    assert_eq!(Policy::new("p", &[r; MAX_RULES + 1]), Err(ConfigError::RuleCount));
    assert_eq!(Policy::new("p", &[]), Err(ConfigError::RuleCount));
    assert_eq!(
        ConfigError::from(RuleError::Burst),
        ConfigError::Rule(RuleError::Burst)
    );
}

#[test]
fn invalid_costs_change_nothing() {
    let rules = [Rule::window(10, 60 * S).unwrap(), Rule::gcra(5, S, 4).unwrap()];
    let (l, p, _) = limiter(&rules);
    let now = Now::same(1_780_423_178_274 * MS);
    assert!(l.check(b"k", Target::Policy(p), 2, now).unwrap().allowed);
    let cells_before: Vec<(u64, u64)> = l.cells().iter().map(Cell::load).collect();
    let peek_before = l.peek(b"k", Target::Policy(p), 1, now).unwrap();
    for cost in [0, 5, 11, u64::MAX] {
        assert_eq!(
            l.check(b"k", Target::Policy(p), cost, now),
            Err(CheckError::InvalidCost)
        );
        assert_eq!(
            l.peek(b"k", Target::Policy(p), cost, now),
            Err(CheckError::InvalidCost)
        );
        assert_eq!(
            l.check(b"new", Target::Policy(p), cost, now),
            Err(CheckError::InvalidCost)
        );
    }
    // Cost 4 (the smallest capacity) is valid.
    assert!(l.peek(b"k", Target::Policy(p), 4, now).is_ok());
    assert_eq!(l.peek(b"k", Target::Policy(p), 1, now).unwrap(), peek_before);
    let cells_after: Vec<(u64, u64)> = l.cells().iter().map(Cell::load).collect();
    assert_eq!(cells_after, cells_before);
    assert_eq!(l.stats(), Default::default());
    // A policy id from a bigger config.
    let other = Config::documented();
    let media = other.policy_id("media").unwrap();
    assert_eq!(
        l.check(b"k", Target::Policy(media), 1, now),
        Err(CheckError::UnknownPolicy)
    );
    assert_eq!(
        l.peek(b"k", Target::Policy(media), 1, now),
        Err(CheckError::UnknownPolicy)
    );
    assert_eq!(l.peek(b"k", Target::Policy(p), 1, now).unwrap(), peek_before);
    assert!(CheckError::InvalidCost.to_string().starts_with("invalid_cost"));
}
