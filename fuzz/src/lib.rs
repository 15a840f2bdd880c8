//! Helpers shared by the fuzz targets.
//!
//! [`livelock_hazard`] predicts the core's known livelock (`core/tests/fuzz_regressions.rs`,
//! `two_rules_of_one_key_choose_one_cell`): when two rules of one policy pick the same
//! cell for one key, `Limiter::check` retries forever. Until the core is fixed, the
//! targets skip such requests; with the feature `avoid-known-livelock` off they send them
//! anyway (to confirm a fix: they then hang, or stop hanging).
//!
//! The prediction re-derives the table's private layout (SipHash-1-3 of the key with the
//! seed, the rule tag in the fingerprint's low byte, the multiply-shift home, linear
//! probing over 16 cells). It is used for nothing else, and [`check_prediction`] lets a
//! target assert that it still matches the core's table, so a change in the core shows up
//! as a failed assertion rather than as silent skips.

use std::hash::Hasher;

use aisoule_ratelimit::{Cell, Limiter, Now, PolicyId, Seed, PROBE_LIMIT};
use siphasher::sip::SipHasher13;

/// The fingerprint of `key`'s rule `rule` of policy `pid` (tag = 1 + slot).
pub fn fingerprint(seed: Seed, key: &[u8], pid: PolicyId, rule: usize) -> u64 {
    let mut h = SipHasher13::new_with_keys(seed.0[0], seed.0[1]);
    h.write(key);
    let slot = pid.index() * aisoule_ratelimit::MAX_RULES + rule;
    (h.finish() & !0xff) | (slot as u64 + 1)
}

fn home(fp: u64, capacity: usize) -> usize {
    let mixed = (fp ^ (fp >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mixed = mixed ^ (mixed >> 32);
    ((mixed as u128 * capacity as u128) >> 64) as usize
}

/// Where the core would put `fp` at `now`: the cell index, or `None` when the table has
/// no cell for it (table full).
pub fn predicted_slot<S: AsRef<[Cell]>>(limiter: &Limiter<S>, fp: u64, now: u64) -> Option<usize> {
    let cells = limiter.cells();
    let cap = cells.len();
    if cap == 0 {
        return None;
    }
    let start = home(fp, cap);
    let mut vacant = None;
    for off in 0..PROBE_LIMIT.min(cap) {
        let index = (start + off) % cap;
        let (f, state) = cells[index].load();
        if f == fp {
            return Some(index);
        }
        match f & 0xff {
            0 => return Some(vacant.unwrap_or(index)),
            0xff => {
                vacant.get_or_insert(index);
            }
            tag => {
                let slot = tag as usize - 1;
                let policies = limiter.config().policies();
                let neutral = policies
                    .get(slot / aisoule_ratelimit::MAX_RULES)
                    .and_then(|p| p.rules().get(slot % aisoule_ratelimit::MAX_RULES))
                    .is_some_and(|r| r.is_neutral(state, now));
                if vacant.is_none() && neutral {
                    vacant = Some(index);
                }
            }
        }
    }
    vacant
}

/// Whether `check(key, Policy(pid), _, now)` would hit the core's known livelock: two
/// rules of the policy choosing the same cell.
pub fn livelock_hazard<S: AsRef<[Cell]>>(
    limiter: &Limiter<S>,
    seed: Seed,
    key: &[u8],
    pid: PolicyId,
    now: Now,
) -> bool {
    if !cfg!(feature = "avoid-known-livelock") {
        return false;
    }
    let rules = limiter.policy(pid).rules().len();
    let mut taken = [usize::MAX; aisoule_ratelimit::MAX_RULES];
    for r in 0..rules {
        let fp = fingerprint(seed, key, pid, r);
        if let Some(i) = predicted_slot(limiter, fp, now.mono_ns) {
            if taken[..r].contains(&i) {
                return true;
            }
            taken[r] = i;
        }
    }
    false
}

/// After an admitted, not table-full check: asserts that every rule's cell holds the
/// fingerprint [`fingerprint`] predicts, so the hazard prediction follows the core.
pub fn check_prediction<S: AsRef<[Cell]>>(
    limiter: &Limiter<S>,
    seed: Seed,
    key: &[u8],
    pid: PolicyId,
    now: Now,
) {
    if !cfg!(feature = "avoid-known-livelock") {
        return;
    }
    for r in 0..limiter.policy(pid).rules().len() {
        let fp = fingerprint(seed, key, pid, r);
        let i = predicted_slot(limiter, fp, now.mono_ns);
        let found = i.is_some_and(|i| limiter.cells()[i].load().0 == fp);
        assert!(
            found,
            "fuzz/src/lib.rs no longer follows the core's table layout: update it or turn off avoid-known-livelock"
        );
    }
}
