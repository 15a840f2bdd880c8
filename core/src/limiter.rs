//! The limiter: policies over a table, deciding requests.

use siphasher::sip::SipHasher13;

use crate::policy::{Config, Policy, PolicyId, MAX_RULES};
use crate::rule::{Algorithm, Outcome, NS_PER_S};
use crate::sync::{AtomicU64, Ordering};
use crate::table::{self, Cell, Slot};

/// The two clocks of a request, both read by the caller: the core never reads a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// A monotonic clock in nanoseconds: all limiting arithmetic uses it.
    pub mono_ns: u64,
    /// The Unix-epoch wall clock in nanoseconds: only used to print `X-RateLimit-Reset`.
    pub wall_ns: u64,
}

impl Now {
    /// One timestamp as both clocks, as the conformance traces use them.
    pub const fn same(ns: u64) -> Now {
        Now {
            mono_ns: ns,
            wall_ns: ns,
        }
    }
}

/// What a check is against: a request path (looked up in the route table) or a policy
/// named directly (for keys on a plan with its own limits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// A request path such as `/v1/messages/42?x=1`.
    Route(&'a str),
    /// A policy of the limiter's config.
    Policy(PolicyId),
}

/// What the limiter answers when a key needs a cell and none can be had within the
/// probe bound (SEMANTICS.md 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FullTableMode {
    /// Admit as for a fresh key, store nothing, flag the decision (the default).
    #[default]
    Open,
    /// Deny with `Retry-After: 1`, flag the decision.
    Closed,
}

/// Why a check gave no decision. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckError {
    /// The cost is 0 or above the capacity of one of the policy's rules.
    InvalidCost,
    /// The policy id is not from this limiter's config.
    UnknownPolicy,
}

impl core::fmt::Display for CheckError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CheckError::InvalidCost => {
                "invalid_cost: the cost must be from 1 to the capacity of every rule of the policy"
            }
            CheckError::UnknownPolicy => "unknown_policy: no such policy in this limiter",
        })
    }
}

/// The answer to one request: the decision and the figures of its binding rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is admitted.
    pub allowed: bool,
    /// `X-RateLimit-Limit`: the binding rule's limit.
    pub limit: u64,
    // `reset` sits between `limit` and `remaining`, which are neighbours in the rule's
    // 16-byte-aligned `Figures`. Copied to neighbours here, the two moved as one 16-byte
    // load, which stalls on the two 8-byte stores that wrote them just before (0.9 ns of
    // a check in the Node addon, measured).
    /// `X-RateLimit-Reset`: Unix epoch seconds, `ceil((wall + reset) / 1e9)`.
    pub reset: u64,
    /// `X-RateLimit-Remaining`: the binding rule's remaining requests.
    pub remaining: u64,
    /// The binding rule's `reset` in nanoseconds from now (`u64::MAX` when it is more:
    /// only for a state from the end of the `u64` clock read after the clock went far
    /// back; `reset` is exact even then).
    pub reset_after_ns: u64,
    /// `Retry-After` in seconds when denied (at least 1); 0 when allowed.
    pub retry_after_seconds: u64,
    /// The largest `retry` of the denying rules in nanoseconds; 0 when allowed (and
    /// `u64::MAX` when it is more, as `reset_after_ns`).
    pub retry_after_ns: u64,
    /// The policy that decided.
    pub policy: PolicyId,
    /// The index of the binding rule in the policy.
    pub binding_rule: u8,
    /// Whether the table had no cell for the key, so the full-table mode answered. Never
    /// set on a denial by a rule whose cell the key still holds: that denial stands.
    pub table_full: bool,
}

impl Decision {
    /// The HTTP status: 200 when allowed, 429 when denied.
    pub const fn status(&self) -> u16 {
        if self.allowed {
            200
        } else {
            429
        }
    }
}

/// Counts of full-table answers since the limiter was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests admitted by the fail-open mode.
    pub table_full_open: u64,
    /// Requests denied by the fail-closed mode.
    pub table_full_closed: u64,
}

/// The hash key of the table: it makes fingerprints unpredictable to clients. Share it
/// only between processes that share a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seed(pub [u64; 2]);

/// A rate limiter: a [`Config`] of policies over a table of [`Cell`]s.
///
/// `S` is the table's memory: `&'static [Cell]` for a `static` array on a
/// microcontroller, `Box<[Cell]>` in a binding, or a mapping of shared memory. The
/// limiter never allocates, never locks on targets with native 128-bit
/// compare-and-swap, and is `Sync`: share one between threads by reference.
///
/// # Examples
///
/// ```
/// use aisoule_ratelimit::{Cell, Config, Limiter, Now, Seed, Target};
///
/// static CELLS: [Cell; 1024] = [const { Cell::new() }; 1024];
/// let limiter = Limiter::new(Config::documented(), &CELLS[..], Seed([1, 2]));
/// let now = Now::same(1_780_423_178_274_000_000);
/// let d = limiter.check(b"key-1", Target::Route("/v1/status"), 1, now).unwrap();
/// assert!(d.allowed);
/// assert_eq!((d.limit, d.remaining), (120, 119));
/// ```
#[derive(Debug)]
pub struct Limiter<S: AsRef<[Cell]>> {
    config: Config,
    cells: S,
    seed: Seed,
    on_full: FullTableMode,
    full_open: AtomicU64,
    full_closed: AtomicU64,
}

const UNSET: Outcome = Outcome {
    admitted: true,
    state: 0,
    figures: crate::rule::Figures {
        limit: 0,
        remaining: 0,
        reset_ns: 0,
        retry_ns: 0,
    },
};

impl<S: AsRef<[Cell]>> Limiter<S> {
    /// A limiter over `cells` (empty, or left by a limiter of the same config and seed),
    /// failing open when the table is full.
    pub fn new(config: Config, cells: S, seed: Seed) -> Self {
        Self::with_full_table_mode(config, cells, seed, FullTableMode::Open)
    }

    /// A limiter with an explicit full-table mode.
    pub fn with_full_table_mode(config: Config, cells: S, seed: Seed, on_full: FullTableMode) -> Self {
        Limiter {
            config,
            cells,
            seed,
            on_full,
            full_open: AtomicU64::new(0),
            full_closed: AtomicU64::new(0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The policy with this id.
    ///
    /// # Panics
    ///
    /// If `id` is not from this limiter's config.
    pub fn policy(&self, id: PolicyId) -> &Policy {
        self.config.policy(id)
    }

    /// The table's cells.
    pub fn cells(&self) -> &[Cell] {
        self.cells.as_ref()
    }

    /// The full-table mode.
    pub fn full_table_mode(&self) -> FullTableMode {
        self.on_full
    }

    /// The full-table counts.
    pub fn stats(&self) -> Stats {
        Stats {
            table_full_open: self.full_open.load(Ordering::Relaxed),
            table_full_closed: self.full_closed.load(Ordering::Relaxed),
        }
    }

    /// Decides a request of `cost` by `key` and counts it if admitted.
    ///
    /// # Errors
    ///
    /// [`CheckError::InvalidCost`] when `cost` is 0 or above a rule's capacity;
    /// [`CheckError::UnknownPolicy`] for a policy id from another config. Nothing changes.
    pub fn check(&self, key: &[u8], target: Target<'_>, cost: u64, now: Now) -> Result<Decision, CheckError> {
        self.run(key, target, cost, now, true)
    }

    /// What [`Limiter::check`] would answer, without counting anything: `allowed` says
    /// whether a request of `cost` would be admitted, and the figures describe the key's
    /// state as it is.
    ///
    /// # Errors
    ///
    /// As [`Limiter::check`].
    pub fn peek(&self, key: &[u8], target: Target<'_>, cost: u64, now: Now) -> Result<Decision, CheckError> {
        self.run(key, target, cost, now, false)
    }

    #[inline(always)]
    fn key_hash(&self, key: &[u8]) -> u64 {
        // The one-shot form: the same SipHash-1-3 value as `write` then `finish`, without
        // the streaming tail buffer (about 70 instructions less on a 24-byte key).
        SipHasher13::new_with_keys(self.seed.0[0], self.seed.0[1]).hash(key)
    }

    fn rule_for_slot(&self, slot: usize) -> Option<&crate::rule::Rule> {
        self.config
            .policies()
            .get(slot / MAX_RULES)?
            .rules()
            .get(slot % MAX_RULES)
    }

    fn run(
        &self,
        key: &[u8],
        target: Target<'_>,
        cost: u64,
        now: Now,
        consume: bool,
    ) -> Result<Decision, CheckError> {
        // The hash first: it heads the longest chain of a check (hash, home, load,
        // decision, compare-and-swap) and needs nothing else, so it starts while the
        // route and policy are looked up (1.3-1.5 ns a check, measured). A request
        // refused for its cost or policy pays a hash for nothing.
        let key_hash = self.key_hash(key);
        let pid = match target {
            Target::Route(path) => self.config.route(path),
            Target::Policy(id) if id.index() < self.config.policies().len() => id,
            Target::Policy(_) => return Err(CheckError::UnknownPolicy),
        };
        let policy = self.config.policy(pid);
        if cost == 0 || cost > policy.max_cost() {
            return Err(CheckError::InvalidCost);
        }
        let rules = policy.rules();
        let cells = self.cells.as_ref();
        let t = now.mono_ns;
        let first = table::fingerprint(key_hash, pid.index() * MAX_RULES);
        let [rule] = rules else {
            return Ok(self.run_rules(cells, pid, key_hash, cost, now, consume));
        };
        // One rule (the common case): no arrays, no undo.
        let own = [first];
        let neutral = self.neutral(&own, t);
        let fp = first;
        loop {
            let slot = table::find(cells, fp, &neutral, &[]);
            let (state, table_full) = slot_state(&slot);
            let outcome = if consume {
                rule.decide_inline(state, t, cost)
            } else {
                rule.inspect(state, t, cost)
            };
            let outcomes = core::slice::from_ref(&outcome);
            if table_full && self.on_full == FullTableMode::Closed {
                if consume {
                    self.full_closed.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(self.closed(pid, outcomes, now));
            }
            if !outcome.admitted || !consume {
                return Ok(self.compose(pid, outcomes, outcome.admitted, table_full, now));
            }
            if self.store(cells, rule, fp, &slot, outcome.state, t) {
                if table_full {
                    self.full_open.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(self.compose(pid, outcomes, true, table_full, now));
            }
        }
    }

    /// Whether another key's cell (`fp`, holding `state`) may be reused: never the key's
    /// own cell of another rule of this policy (that rule finds it as its own, and two
    /// rules aiming at one cell retry forever), never a tag this config does not know (we
    /// cannot judge it). One closure type for every policy, so `find` is made once.
    fn neutral<'a>(&'a self, own: &'a [u64], now: u64) -> impl Fn(u64, u128) -> bool + 'a {
        move |fp: u64, state: u128| {
            !own.contains(&fp)
                && table::rule_slot(fp)
                    .and_then(|s| self.rule_for_slot(s))
                    .is_some_and(|rule| rule.is_neutral(state, now))
        }
    }

    /// [`Limiter::run`] for a policy of two or more rules: all admit or nothing changes.
    /// Kept out of line so the one-rule path keeps a small frame.
    #[inline(never)]
    fn run_rules(
        &self,
        cells: &[Cell],
        pid: PolicyId,
        key_hash: u64,
        cost: u64,
        now: Now,
        consume: bool,
    ) -> Decision {
        let rules = self.config.policy(pid).rules();
        let t = now.mono_ns;
        // The key's fingerprint for each rule of the policy.
        let mut fps = [0u64; MAX_RULES];
        for (r, fp) in fps.iter_mut().enumerate().take(rules.len()) {
            *fp = table::fingerprint(key_hash, pid.index() * MAX_RULES + r);
        }
        let own = &fps[..rules.len()];
        let neutral = self.neutral(own, t);
        loop {
            let mut slots = [Slot::Full; MAX_RULES];
            let mut outcomes = [UNSET; MAX_RULES];
            let mut taken = [usize::MAX; MAX_RULES];
            let mut table_full = false;
            for (r, rule) in rules.iter().enumerate() {
                slots[r] = table::find(cells, fps[r], &neutral, &taken[..r]);
                let (state, full) = slot_state(&slots[r]);
                table_full |= full;
                if let Slot::Found { index, .. } | Slot::Vacant { index, .. } = slots[r] {
                    taken[r] = index;
                }
                outcomes[r] = if consume {
                    rule.decide(state, t, cost)
                } else {
                    rule.inspect(state, t, cost)
                };
            }
            let outcomes = &mut outcomes[..rules.len()];
            // A rule without a cell decided from a fresh state, which admits any valid
            // cost: a denial here comes from a cell the key still holds. It stands in
            // either full-table mode, or a key whose neutral cell of one rule was reused
            // would escape the throttle of another (SEMANTICS.md 5: a throttled key
            // keeps its limit).
            let allowed = outcomes.iter().all(|o| o.admitted);
            if !allowed {
                return self.compose(pid, outcomes, false, false, now);
            }
            if table_full {
                // No cell for one of the key's rules: the full-table mode answers for the
                // whole request (SEMANTICS.md 5), and nothing is stored in any rule.
                if self.on_full == FullTableMode::Closed {
                    if consume {
                        self.full_closed.fetch_add(1, Ordering::Relaxed);
                    }
                    return self.closed(pid, outcomes, now);
                }
                // Fail-open: as for a fresh key (every rule admits a valid cost from 0).
                for (o, rule) in outcomes.iter_mut().zip(rules) {
                    *o = if consume {
                        rule.decide(0, t, cost)
                    } else {
                        rule.inspect(0, t, cost)
                    };
                }
                if consume {
                    self.full_open.fetch_add(1, Ordering::Relaxed);
                }
                return self.compose(pid, outcomes, true, true, now);
            }
            let outcomes = &*outcomes;
            if !consume {
                return self.compose(pid, outcomes, true, false, now);
            }
            if self.commit(rules, &fps, &slots, outcomes, cost, t) {
                return self.compose(pid, outcomes, true, false, now);
            }
            // Another thread moved one of the key's cells: decide again on fresh states.
        }
    }

    /// Stores every rule's new state, windows first (their undo is exact), each by a
    /// compare-and-swap on the word it was decided from. On a lost race, takes back what
    /// it stored and returns false.
    fn commit(
        &self,
        rules: &[crate::rule::Rule],
        fps: &[u64; MAX_RULES],
        slots: &[Slot; MAX_RULES],
        outcomes: &[Outcome],
        cost: u64,
        now: u64,
    ) -> bool {
        let cells = self.cells.as_ref();
        let mut done = [false; MAX_RULES];
        let order = (0..rules.len())
            .filter(|&r| rules[r].algorithm() == Algorithm::Window)
            .chain((0..rules.len()).filter(|&r| rules[r].algorithm() == Algorithm::Gcra));
        for r in order {
            let stored = self.store(cells, &rules[r], fps[r], &slots[r], outcomes[r].state, now);
            if !stored {
                for (u, _) in done.iter().enumerate().filter(|(_, d)| **d) {
                    self.undo(&rules[u], fps[u], &slots[u], &outcomes[u], cost);
                }
                return false;
            }
            done[r] = true;
        }
        true
    }

    /// Stores `state` for `fp` in its slot by a compare-and-swap on the word it was
    /// decided from; folds duplicates after claiming a new cell. False on a lost race.
    /// A rule without a cell (fail-open) stores nothing and succeeds.
    #[cfg_attr(target_pointer_width = "64", inline(always))]
    #[cfg_attr(not(target_pointer_width = "64"), inline)]
    fn store(
        &self,
        cells: &[Cell],
        rule: &crate::rule::Rule,
        fp: u64,
        slot: &Slot,
        state: u128,
        now: u64,
    ) -> bool {
        match *slot {
            Slot::Found { index, word } => cells[index].swap_word(word, table::word(fp, state)).is_ok(),
            Slot::Vacant { index, word } => {
                let ok = cells[index].swap_word(word, table::word(fp, state)).is_ok();
                if ok {
                    table::fold_duplicates(cells, fp, &|a, b| rule.merge(a, b, now));
                }
                ok
            }
            Slot::Full => true,
        }
    }

    /// Takes back one stored rule state (see [`crate::rule::Rule`]'s undo).
    fn undo(&self, rule: &crate::rule::Rule, fp: u64, slot: &Slot, outcome: &Outcome, cost: u64) {
        let cells = self.cells.as_ref();
        let (mut index, original) = match *slot {
            Slot::Found { index, word } | Slot::Vacant { index, word } => (index, word),
            Slot::Full => return,
        };
        let before = match slot {
            Slot::Found { word, .. } => table::state_of(*word),
            _ => 0,
        };
        let committed = table::word(fp, outcome.state);
        let mut exact = true;
        loop {
            let current = cells[index].word();
            let new = if exact && current == committed {
                match slot {
                    Slot::Found { .. } => original,
                    // A claimed cell is given back, not restored: an empty cell would end
                    // the probe sequence of keys that passed it meanwhile (hiding their
                    // cells), and another key's neutral state restored here could hide
                    // that key's newer cell.
                    _ => table::WORD_TOMB,
                }
            } else if table::fp_of(current) == fp {
                table::word(
                    fp,
                    rule.undo(before, outcome.state, table::state_of(current), cost),
                )
            } else {
                // The cell was folded into the key's first cell: take the cost back there.
                exact = false;
                match table::find(cells, fp, &|_, _| false, &[]) {
                    Slot::Found { index: i, .. } if i != index => {
                        index = i;
                        continue;
                    }
                    _ => return,
                }
            };
            if cells[index].swap_word(current, new).is_ok() {
                return;
            }
        }
    }

    /// Picks the binding rule and builds the decision (SEMANTICS.md 3.3).
    fn compose(
        &self,
        pid: PolicyId,
        outcomes: &[Outcome],
        allowed: bool,
        table_full: bool,
        now: Now,
    ) -> Decision {
        let binding = match outcomes {
            [_] => 0,
            _ => binding_rule(self.config.policy(pid).rules(), outcomes, allowed),
        };
        let f = outcomes[binding].figures;
        let retry_after_seconds = if allowed {
            0
        } else {
            (f.retry_ns.div_ceil(NS_PER_S as u128) as u64).max(1)
        };
        Decision {
            allowed,
            limit: f.limit,
            remaining: f.remaining,
            reset: epoch_seconds(now.wall_ns, f.reset_ns),
            reset_after_ns: saturated(f.reset_ns),
            retry_after_seconds,
            retry_after_ns: if allowed { 0 } else { saturated(f.retry_ns) },
            policy: pid,
            binding_rule: binding as u8,
            table_full,
        }
    }

    /// The fail-closed answer: denied, `Retry-After: 1`, the longest rule's figures
    /// with nothing remaining.
    fn closed(&self, pid: PolicyId, outcomes: &[Outcome], now: Now) -> Decision {
        let rules = self.config.policy(pid).rules();
        let mut binding = 0;
        for r in 1..rules.len() {
            if rules[r].period_ns() > rules[binding].period_ns() {
                binding = r;
            }
        }
        let f = outcomes[binding].figures;
        Decision {
            allowed: false,
            limit: f.limit,
            remaining: 0,
            reset: epoch_seconds(now.wall_ns, f.reset_ns.max(NS_PER_S as u128)),
            reset_after_ns: saturated(f.reset_ns.max(NS_PER_S as u128)),
            retry_after_seconds: 1,
            retry_after_ns: NS_PER_S,
            policy: pid,
            binding_rule: binding as u8,
            table_full: true,
        }
    }
}

/// The binding rule of a policy of several rules (SEMANTICS.md 3.3): when allowed, the
/// fewest remaining; when denied, the longest retry among the denying rules; ties go to
/// the longer period, then to the earlier rule.
fn binding_rule(rules: &[crate::rule::Rule], outcomes: &[Outcome], allowed: bool) -> usize {
    let longer = |a: usize, b: usize| rules[a].period_ns() > rules[b].period_ns();
    let mut binding = usize::MAX;
    for (r, o) in outcomes.iter().enumerate() {
        if !allowed && o.admitted {
            continue;
        }
        if binding == usize::MAX {
            binding = r;
            continue;
        }
        let (f, b) = (&o.figures, &outcomes[binding].figures);
        let better = if allowed {
            f.remaining < b.remaining || (f.remaining == b.remaining && longer(r, binding))
        } else {
            f.retry_ns > b.retry_ns || (f.retry_ns == b.retry_ns && longer(r, binding))
        };
        if better {
            binding = r;
        }
    }
    binding
}

/// The state a slot holds (0 for a key without a cell) and whether the table was full.
fn slot_state(slot: &Slot) -> (u128, bool) {
    match *slot {
        Slot::Found { word, .. } => (table::state_of(word), false),
        Slot::Vacant { .. } => (0, false),
        Slot::Full => (0, true),
    }
}

/// `ceil((wall + reset) / 1e9)` in 128 bits (below 2^67 / 1e9, so it fits in 64).
fn epoch_seconds(wall_ns: u64, reset_ns: u128) -> u64 {
    match u64::try_from(reset_ns).ok().and_then(|r| wall_ns.checked_add(r)) {
        // The common case in 64 bits: a 128-bit division is a library call.
        // Rounding up by adding first: one multiply-high, where `div_ceil` also takes
        // the remainder (a multiplication and a compare more on every check).
        Some(total) => match total.checked_add(NS_PER_S - 1) {
            Some(t) => t / NS_PER_S,
            None => total.div_ceil(NS_PER_S),
        },
        None => (wall_ns as u128 + reset_ns).div_ceil(NS_PER_S as u128) as u64,
    }
}

/// A figure in ns as the decision's `u64` field holds it, `u64::MAX` past the clock.
fn saturated(ns: u128) -> u64 {
    u64::try_from(ns).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Policy;
    use crate::rule::Rule;

    /// The key hash is plain SipHash-1-3 of the key (the fingerprints of a shared table
    /// must not change between versions): the one-shot form equals the streaming one.
    #[test]
    fn key_hash_is_sip13_of_the_key() {
        use core::hash::Hasher;
        let config = Config::documented();
        let l = Limiter::new(config, &[][..], Seed([0x0123_4567_89ab_cdef, 42]));
        let bytes: [u8; 41] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for len in 0..=bytes.len() {
            let mut h = SipHasher13::new_with_keys(0x0123_4567_89ab_cdef, 42);
            h.write(&bytes[..len]);
            assert_eq!(l.key_hash(&bytes[..len]), h.finish(), "length {len}");
        }
    }

    /// Regression: undoing a claim of an empty cell restored it to empty, which ended the
    /// probe sequence of a key that had passed it meanwhile and claimed the next cell: that
    /// key's counts became unreachable (a fresh key again, its cell leaked).
    #[test]
    fn an_undone_claim_never_hides_a_later_cell() {
        let rules = [
            Rule::window(3, NS_PER_S).unwrap(),
            Rule::gcra(1, NS_PER_S, 1).unwrap(),
        ];
        let config = Config::new(&[Policy::new("p", &rules).unwrap()]).unwrap();
        let cells: [Cell; 4] = core::array::from_fn(|_| Cell::new());
        let l = Limiter::new(config, &cells[..], Seed([1, 2]));
        let now = 5 * NS_PER_S;
        let fp_x = table::fingerprint(l.key_hash(b"x"), 0);
        let h = table::home(fp_x, cells.len());
        // A key whose window rule has the same home.
        let fp_y = (0..1000u32)
            .map(|i| table::fingerprint(l.key_hash(&i.to_le_bytes()), 0))
            .find(|&fp| fp != fp_x && table::home(fp, cells.len()) == h)
            .unwrap();
        // X claims its home (the first rule of its policy, not yet known to fail).
        let outcome = rules[0].decide(0, now, 1);
        let claimed = table::word(fp_x, outcome.state);
        cells[h].swap_word(0, claimed).unwrap();
        // Y probes past X's cell and claims the next one.
        let never = |_: u64, _: u128| false;
        let Slot::Vacant { index, word } = table::find(&cells, fp_y, &never, &[]) else {
            panic!("Y finds room");
        };
        assert_eq!(index, (h + 1) % cells.len());
        cells[index].swap_word(word, table::word(fp_y, 1)).unwrap();
        // X's second rule lost a race: its first is undone.
        l.undo(&rules[0], fp_x, &Slot::Vacant { index: h, word: 0 }, &outcome, 1);
        assert!(matches!(table::find(&cells, fp_x, &never, &[]), Slot::Vacant { index, .. } if index == h));
        match table::find(&cells, fp_y, &never, &[]) {
            Slot::Found { index: i, .. } => assert_eq!(i, index),
            other => panic!("Y's cell is hidden: {other:?}"),
        }
    }

    /// The binding rule: fewest remaining when allowed (ties to the longest period, then
    /// the earlier rule), largest retry among the denying rules when denied.
    #[test]
    fn binding_rule_ties() {
        let rules = [
            Rule::window(4, NS_PER_S).unwrap(),
            Rule::window(4, 2 * NS_PER_S).unwrap(),
            Rule::window(4, 2 * NS_PER_S).unwrap(),
        ];
        let config = Config::new(&[Policy::new("p", &rules).unwrap()]).unwrap();
        let p = config.policy_id("p").unwrap();
        let cells: [Cell; 16] = core::array::from_fn(|_| Cell::new());
        let l = Limiter::new(config, &cells[..], Seed([1, 2]));
        let d = l
            .check(b"k", Target::Policy(p), 1, Now::same(10 * NS_PER_S))
            .unwrap();
        assert_eq!((d.binding_rule, d.remaining), (1, 3));
        for _ in 0..3 {
            l.check(b"k", Target::Policy(p), 1, Now::same(10 * NS_PER_S))
                .unwrap();
        }
        let d = l
            .check(b"k", Target::Policy(p), 1, Now::same(10 * NS_PER_S))
            .unwrap();
        assert!(!d.allowed);
        // The 2 s windows need longer: the first of them binds.
        assert_eq!(d.binding_rule, 1);
    }
}
