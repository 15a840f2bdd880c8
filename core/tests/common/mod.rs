//! A naive model of SEMANTICS.md 3.1, 3.2 and 3.3, written straight from the text in
//! `u128`/`i128` arithmetic with a `HashMap` of states per (key, policy, rule). It shares
//! no code with the core but the configuration types (to read each rule's parameters).
#![allow(dead_code)]

use std::collections::HashMap;

use aisoule_ratelimit::{Algorithm, Config, Decision, Now, PolicyId, Rule};

/// One rule's state in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// GCRA: the theoretical arrival time.
    Gcra { tat: u128 },
    /// Window: index and the two counts.
    Window { i: u128, prev: u128, curr: u128 },
}

/// The figures one rule reports (SEMANTICS.md 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RuleAnswer {
    pub(crate) admitted: bool,
    pub(crate) limit: u128,
    pub(crate) remaining: u128,
    pub(crate) reset: u128,
    pub(crate) retry: u128,
    pub(crate) state: Option<State>,
}

/// The model's decision: every field of the core's `Decision` but `table_full` (false).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ModelDecision {
    pub(crate) allowed: bool,
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    pub(crate) reset: u64,
    pub(crate) reset_after_ns: u64,
    pub(crate) retry_after_seconds: u64,
    pub(crate) retry_after_ns: u64,
    pub(crate) policy: PolicyId,
    pub(crate) binding_rule: u8,
}

impl ModelDecision {
    /// The X-RateLimit headers as `Name: value\r\n` lines, written with `format!`.
    pub(crate) fn headers(&self) -> String {
        let mut s = format!(
            "X-RateLimit-Limit: {}\r\nX-RateLimit-Remaining: {}\r\nX-RateLimit-Reset: {}\r\n",
            self.limit, self.remaining, self.reset
        );
        if !self.allowed {
            s.push_str(&format!("Retry-After: {}\r\n", self.retry_after_seconds));
        }
        s
    }

    /// The 429 body, or "" when allowed.
    pub(crate) fn body(&self) -> String {
        if self.allowed {
            return String::new();
        }
        format!(
            "{{\"success\":false,\"error\":{{\"code\":\"rate_limit_exceeded\",\"message\":\"Too many requests. Please wait before retrying.\",\"retry_after_seconds\":{}}}}}",
            self.retry_after_seconds
        )
    }

    /// Whether the core's decision says the same (every field, `table_full` false).
    pub(crate) fn same_as(&self, d: &Decision) -> bool {
        *self
            == ModelDecision {
                allowed: d.allowed,
                limit: d.limit,
                remaining: d.remaining,
                reset: d.reset,
                reset_after_ns: d.reset_after_ns,
                retry_after_seconds: d.retry_after_seconds,
                retry_after_ns: d.retry_after_ns,
                policy: d.policy,
                binding_rule: d.binding_rule,
            }
            && !d.table_full
    }
}

fn to_u64(v: u128) -> u64 {
    u64::try_from(v).expect("a figure of the model passes u64")
}

/// GCRA (SEMANTICS.md 3.1) on one rule.
pub(crate) fn gcra(l: u128, p: u128, b: u128, tat: u128, now: u128, c: u128, consume: bool) -> RuleAnswer {
    let t = p.div_ceil(l);
    let e = tat.max(now);
    let admitted = e + c * t - now <= b * t;
    let tat_after = if admitted && consume { e + c * t } else { tat };
    let x = tat_after.max(now) - now;
    let remaining = ((b * t) as i128 - x as i128)
        .div_euclid(t as i128)
        .clamp(0, b as i128) as u128;
    RuleAnswer {
        admitted,
        limit: b,
        remaining,
        reset: x,
        retry: if admitted { 0 } else { e + c * t - b * t - now },
        state: Some(State::Gcra { tat: tat_after }),
    }
}

/// The approximated rolling window (SEMANTICS.md 3.2) on one rule. `state` is `None` for
/// a fresh key.
pub(crate) fn window(
    l: u128,
    w: u128,
    state: Option<(u128, u128, u128)>,
    now: u128,
    c: u128,
    consume: bool,
) -> RuleAnswer {
    let j = now / w;
    let mut a = now - j * w;
    let (mut i, mut prev, mut curr) = state.unwrap_or((j, 0, 0));
    if j == i + 1 {
        prev = curr;
        curr = 0;
        i = j;
    } else if j > i + 1 {
        prev = 0;
        curr = 0;
        i = j;
    } else if j < i {
        a = 0;
    }
    let n = |prev: u128, curr: u128| curr + prev * (w - a) / w;
    let admitted = n(prev, curr) + c <= l;
    if admitted && consume {
        curr += c;
    }
    let n_after = n(prev, curr);
    let remaining = l.saturating_sub(n_after);
    let (iw, ww, nowi) = (i as i128 * w as i128, w as i128, now as i128);
    let reset = if curr > 0 {
        iw + ww + ww - (ww - 1) / curr as i128 - nowi
    } else if prev > 0 {
        (iw + ww - (ww - 1) / prev as i128 - nowi).max(0)
    } else {
        0
    };
    let retry = if admitted {
        0
    } else {
        let k = l as i128 - curr as i128 - c as i128;
        if k >= 0 {
            assert!(prev > 0, "the contract says prev > 0 here");
            iw + ww - ((k + 1) * ww - 1) / prev as i128 - nowi
        } else {
            assert!(curr > 0, "the contract says curr > 0 here");
            iw + ww + (ww - ((l as i128 - c as i128 + 1) * ww - 1) / curr as i128).max(0) - nowi
        }
    };
    assert!(
        reset >= 0 && retry >= 0,
        "negative figure: reset {reset} retry {retry}"
    );
    RuleAnswer {
        admitted,
        limit: l,
        remaining,
        reset: reset as u128,
        retry: retry as u128,
        state: Some(State::Window { i, prev, curr }),
    }
}

/// One rule of the model, read from the core's `Rule`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModelRule {
    pub(crate) gcra: bool,
    pub(crate) l: u128,
    pub(crate) p: u128,
    pub(crate) b: u128,
}

impl ModelRule {
    pub(crate) fn of(rule: &Rule) -> ModelRule {
        ModelRule {
            gcra: rule.algorithm() == Algorithm::Gcra,
            l: rule.limit() as u128,
            p: rule.period_ns() as u128,
            b: rule.burst() as u128,
        }
    }

    pub(crate) fn capacity(&self) -> u128 {
        if self.gcra {
            self.b
        } else {
            self.l
        }
    }

    pub(crate) fn decide(&self, state: Option<State>, now: u128, c: u128, consume: bool) -> RuleAnswer {
        if self.gcra {
            let tat = match state {
                Some(State::Gcra { tat }) => tat,
                None => 0,
                Some(s) => panic!("wrong state {s:?}"),
            };
            gcra(self.l, self.p, self.b, tat, now, c, consume)
        } else {
            let st = match state {
                Some(State::Window { i, prev, curr }) => Some((i, prev, curr)),
                None => None,
                Some(s) => panic!("wrong state {s:?}"),
            };
            window(self.l, self.p, st, now, c, consume)
        }
    }
}

/// The model limiter: routes, policies, and a map of states.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub(crate) policies: Vec<Vec<ModelRule>>,
    pub(crate) routes: Vec<(String, usize)>,
    pub(crate) default_policy: usize,
    pub(crate) ids: Vec<PolicyId>,
    pub(crate) states: HashMap<(Vec<u8>, usize, usize), State>,
}

/// Why the model gave no decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ModelError {
    InvalidCost,
}

impl Model {
    pub(crate) fn new(config: &Config) -> Model {
        Model {
            policies: config
                .policies()
                .iter()
                .map(|p| p.rules().iter().map(ModelRule::of).collect())
                .collect(),
            routes: config
                .routes()
                .iter()
                .map(|r| (r.prefix().to_owned(), r.policy().index()))
                .collect(),
            default_policy: config.default_policy().index(),
            ids: config
                .policies()
                .iter()
                .map(|p| config.policy_id(p.name()).unwrap())
                .collect(),
            states: HashMap::new(),
        }
    }

    /// SEMANTICS.md 1: the prefix itself, or followed by `/` or `?`; first route wins.
    pub(crate) fn route(&self, path: &str) -> usize {
        for (prefix, policy) in &self.routes {
            if path == prefix
                || path.starts_with(&format!("{prefix}/"))
                || path.starts_with(&format!("{prefix}?"))
            {
                return *policy;
            }
        }
        self.default_policy
    }

    /// A check (`consume`) or a peek by `key` on policy `pid`.
    pub(crate) fn run(
        &mut self,
        key: &[u8],
        pid: usize,
        cost: u64,
        now: Now,
        consume: bool,
    ) -> Result<ModelDecision, ModelError> {
        let rules = self.policies[pid].clone();
        let c = cost as u128;
        if c == 0 || rules.iter().any(|r| c > r.capacity()) {
            return Err(ModelError::InvalidCost);
        }
        let answers: Vec<RuleAnswer> = rules
            .iter()
            .enumerate()
            .map(|(r, rule)| {
                let st = self.states.get(&(key.to_vec(), pid, r)).copied();
                rule.decide(st, now.mono_ns as u128, c, consume)
            })
            .collect();
        let allowed = answers.iter().all(|a| a.admitted);
        if allowed && consume {
            for (r, a) in answers.iter().enumerate() {
                self.states.insert((key.to_vec(), pid, r), a.state.unwrap());
            }
        }
        // The binding rule (SEMANTICS.md 3.3): fewest remaining when allowed, largest retry
        // among the denying rules when denied; ties to the longest period, then the earlier.
        let mut binding: Option<usize> = None;
        for (r, a) in answers.iter().enumerate() {
            if !allowed && a.admitted {
                continue;
            }
            binding = Some(match binding {
                None => r,
                Some(b) => {
                    let (x, y) = (&answers[r], &answers[b]);
                    let key_r = if allowed {
                        -(x.remaining as i128)
                    } else {
                        x.retry as i128
                    };
                    let key_b = if allowed {
                        -(y.remaining as i128)
                    } else {
                        y.retry as i128
                    };
                    if key_r > key_b || (key_r == key_b && rules[r].p > rules[b].p) {
                        r
                    } else {
                        b
                    }
                }
            });
        }
        let b = binding.expect("a binding rule");
        let f = answers[b];
        // The header figures are exact; the decision's figures in ns from now are u64, so
        // one past 2^64 - 1 ns (a 100-year window, or a GCRA tat from the end of the
        // clock, read with the clock gone back to near 0) is reported saturated there.
        let max_retry = answers
            .iter()
            .filter(|a| !a.admitted)
            .map(|a| a.retry)
            .max()
            .unwrap_or(0);
        Ok(ModelDecision {
            allowed,
            limit: to_u64(f.limit),
            remaining: to_u64(f.remaining),
            reset: to_u64((now.wall_ns as u128 + f.reset).div_ceil(1_000_000_000)),
            reset_after_ns: to_u64(f.reset.min(u64::MAX as u128)),
            retry_after_seconds: if allowed {
                0
            } else {
                to_u64(max_retry.div_ceil(1_000_000_000).max(1))
            },
            retry_after_ns: to_u64(f.retry.min(u64::MAX as u128)),
            policy: self.ids[pid],
            binding_rule: b as u8,
        })
    }
}

/// The core's decision's header lines and body, written by the core.
pub(crate) fn core_text(d: &Decision, config: &Config) -> (String, String) {
    let mut h = String::new();
    d.write_headers(
        config.policy(d.policy),
        aisoule_ratelimit::HeaderStyle::XRateLimit,
        &mut h,
    )
    .unwrap();
    let mut b = String::new();
    d.write_body(&mut b).unwrap();
    assert_eq!(b.len(), d.body_len());
    (h, b)
}
