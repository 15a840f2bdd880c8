//! Rules as pure functions of `(state, now, cost)`: GCRA and the approximated rolling
//! window (SEMANTICS.md 3.1 and 3.2). Nothing here reads a clock or touches memory
//! shared with other threads; the table stores the states these functions return.
//!
//! A state is a `u128` of at most 65 bits: a window's packed counts fit in 64, and a GCRA
//! `tat` is `now + c*T` at most `B*T` (at most 2^62 ns) past the clock, so near the end of
//! the `u64` clock it passes `u64::MAX` ns. The contract's arithmetic is exact there
//! too, so the state keeps that 65th bit (the table stores it in the fingerprint word).

use core::fmt;

/// Nanoseconds in a millisecond.
pub const NS_PER_MS: u64 = 1_000_000;
/// Nanoseconds in a second.
pub const NS_PER_S: u64 = 1_000_000_000;

/// The shortest period a rule may have: 1 ms.
pub const MIN_PERIOD_NS: u64 = NS_PER_MS;
/// The longest period a rule may have: 100 years of 365 days.
pub const MAX_PERIOD_NS: u64 = 100 * 365 * 86_400 * NS_PER_S;
/// The largest limit (and GCRA burst) a rule may have. A window rule may be held to less
/// by its period: see [`Rule::window`].
pub const MAX_LIMIT: u64 = 1_000_000_000;
/// The largest `burst * emission interval` a GCRA rule may have (about 146 years), so
/// every figure fits in 64 bits.
pub const MAX_GCRA_SPAN_NS: u64 = 1 << 62;

/// Which algorithm a rule runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// The generic cell rate algorithm (a burst rule), SEMANTICS.md 3.1.
    Gcra,
    /// The approximated rolling window (sliding window counter), SEMANTICS.md 3.2.
    Window,
}

impl Algorithm {
    /// The name the config and the docs use: `"gcra"` or `"window"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Gcra => "gcra",
            Algorithm::Window => "window",
        }
    }
}

/// Why a rule could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleError {
    /// The limit is 0 or above [`MAX_LIMIT`].
    Limit,
    /// The period is below [`MIN_PERIOD_NS`] or above [`MAX_PERIOD_NS`].
    Period,
    /// The GCRA burst is 0, above [`MAX_LIMIT`], or `burst * ceil(period / limit)` is
    /// above [`MAX_GCRA_SPAN_NS`].
    Burst,
    /// The window's limit needs more bits than its period leaves free in one 64-bit state
    /// word (see [`Rule::max_window_limit`]).
    LimitTooLargeForPeriod,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuleError::Limit => "must be from 1 to 1000000000",
            RuleError::Period => "must be from 1 ms to 100 years",
            RuleError::Burst => {
                "must be from 1 to 1000000000, and burst * ceil(period / limit) at most 2^62 ns"
            }
            RuleError::LimitTooLargeForPeriod => {
                "is too large for the window's period (see Rule::max_window_limit)"
            }
        })
    }
}

/// One rule: a limit per period, run by one algorithm.
///
/// A rule is plain data (`Copy`, no pointers); its parameters are checked when it is
/// made, so every function on it is total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    algorithm: Algorithm,
    limit: u64,
    period_ns: u64,
    /// GCRA: burst capacity `B`. Window: equal to `limit`.
    burst: u64,
    /// GCRA: emission interval `T = ceil(P / L)`. Window: unused (0).
    emission_ns: u64,
    /// Window: bits for each of `prev` and `curr` in the state word.
    count_bits: u32,
    /// Division by `period_ns` as a multiply (the window's two divisions per request).
    period_div: Divider,
}

/// The figures a rule reports for its state after a decision (SEMANTICS.md 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// `limit`: `B` for GCRA, `L` for a window.
    pub limit: u64,
    /// `remaining` after the decision.
    pub remaining: u64,
    /// `reset`: ns from now until `remaining` would be back at `limit`. Below 2^66: a
    /// state from the end of the `u64` clock read after the clock went far back can be
    /// more than `u64::MAX` ns ahead (the contract's arithmetic is exact there too).
    pub reset_ns: u128,
    /// `retry`: ns from now until a request of the same cost would be admitted; 0 when
    /// the request was admitted. Below 2^66, as `reset_ns`.
    pub retry_ns: u128,
}

/// What a rule decides for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether this rule admits the request.
    pub admitted: bool,
    /// The state to store if the whole policy admits (equal to the input when denied);
    /// below 2^65 (see the module's notes).
    pub state: u128,
    /// The figures after the decision.
    pub figures: Figures,
}

/// The largest state: 65 bits (see the module's notes).
pub(crate) const MAX_STATE: u128 = (1 << 65) - 1;

/// Smallest number of bits that holds `v`.
const fn bits(v: u64) -> u32 {
    64 - v.leading_zeros()
}

impl Rule {
    /// A GCRA rule: `limit` per `period_ns`, with burst capacity `burst` (`B`; the
    /// contract's default is `B = limit`).
    ///
    /// # Errors
    ///
    /// [`RuleError::Limit`], [`RuleError::Period`] or [`RuleError::Burst`] when a
    /// parameter is outside the documented range.
    pub const fn gcra(limit: u64, period_ns: u64, burst: u64) -> Result<Rule, RuleError> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(RuleError::Limit);
        }
        if period_ns < MIN_PERIOD_NS || period_ns > MAX_PERIOD_NS {
            return Err(RuleError::Period);
        }
        let emission_ns = period_ns.div_ceil(limit);
        if burst == 0
            || burst > MAX_LIMIT
            || (burst as u128) * (emission_ns as u128) > MAX_GCRA_SPAN_NS as u128
        {
            return Err(RuleError::Burst);
        }
        Ok(Rule {
            algorithm: Algorithm::Gcra,
            limit,
            period_ns,
            burst,
            emission_ns,
            count_bits: 0,
            period_div: Divider::new(period_ns),
        })
    }

    /// An approximated rolling-window rule: `limit` per window of `period_ns`.
    ///
    /// The state is one 64-bit word holding the window index and the two counts. The
    /// index is kept modulo a power of two that is never reached within the `u64` clock,
    /// so a key idle for any time comes back empty; that leaves
    /// [`Rule::max_window_limit`]`(period_ns)` for the counts: 131,071 for a minute,
    /// 16,383 for a second, 511 for a millisecond.
    ///
    /// # Errors
    ///
    /// [`RuleError::Limit`], [`RuleError::Period`] or
    /// [`RuleError::LimitTooLargeForPeriod`].
    pub const fn window(limit: u64, period_ns: u64) -> Result<Rule, RuleError> {
        if limit == 0 || limit > MAX_LIMIT {
            return Err(RuleError::Limit);
        }
        if period_ns < MIN_PERIOD_NS || period_ns > MAX_PERIOD_NS {
            return Err(RuleError::Period);
        }
        let count_bits = Self::window_count_bits(period_ns);
        if bits(limit) > count_bits {
            return Err(RuleError::LimitTooLargeForPeriod);
        }
        Ok(Rule {
            algorithm: Algorithm::Window,
            limit,
            period_ns,
            burst: limit,
            emission_ns: 0,
            count_bits,
            period_div: Divider::new(period_ns),
        })
    }

    /// Bits left for each count once the window index has room for every window of the
    /// `u64` clock, plus one bit to tell a past window from a future one.
    const fn window_count_bits(period_ns: u64) -> u32 {
        let last_window = u64::MAX / period_ns;
        let index_bits = bits(last_window) + 1;
        (64 - index_bits) / 2
    }

    /// The largest limit a window rule of this period accepts.
    pub const fn max_window_limit(period_ns: u64) -> u64 {
        let max = (1u64 << Self::window_count_bits(period_ns)) - 1;
        if max > MAX_LIMIT {
            MAX_LIMIT
        } else {
            max
        }
    }

    /// The algorithm.
    pub const fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The limit `L`.
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// The period `P` in nanoseconds.
    pub const fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// The burst capacity: `B` for GCRA, `L` for a window.
    pub const fn burst(&self) -> u64 {
        self.burst
    }

    /// The largest cost one request may have: `B` for GCRA, `L` for a window.
    pub const fn capacity(&self) -> u64 {
        self.burst
    }

    /// Decides a request of `cost` at `now` against `state` (0 is a fresh key), and
    /// returns the state to store if the policy admits it, with the figures after it.
    ///
    /// `cost` must be from 1 to [`Rule::capacity`]; the limiter checks that before.
    /// `state` is one this rule returned (or 0): a window's fits in 64 bits, and other
    /// bits are ignored.
    #[inline]
    pub fn decide(&self, state: u128, now: u64, cost: u64) -> Outcome {
        self.decide_inline(state, now, cost)
    }

    /// [`Rule::decide`], always inlined: the limiter's one-rule path calls it, so the
    /// outcome stays in registers instead of going through memory, where reading it back
    /// stalled on store-to-load forwarding (5 ns of a 36 ns check). One call site only, so
    /// the code grows once. Only on 64-bit targets: on a microcontroller the flash the
    /// copy takes matters more than the nanoseconds.
    #[cfg_attr(target_pointer_width = "64", inline(always))]
    #[cfg_attr(not(target_pointer_width = "64"), inline)]
    pub(crate) fn decide_inline(&self, state: u128, now: u64, cost: u64) -> Outcome {
        match self.algorithm {
            Algorithm::Gcra => self.gcra_decide(state, now, cost, true),
            Algorithm::Window => match self.window_admit(state as u64, now, cost) {
                Some(outcome) => outcome,
                None => self.window_decide(state as u64, now, cost, true),
            },
        }
    }

    /// What [`Rule::decide`] would answer, without consuming: `admitted` says whether a
    /// request of `cost` would be admitted, and the figures describe `state` as it is.
    #[inline]
    pub fn inspect(&self, state: u128, now: u64, cost: u64) -> Outcome {
        match self.algorithm {
            Algorithm::Gcra => self.gcra_decide(state, now, cost, false),
            Algorithm::Window => self.window_decide(state as u64, now, cost, false),
        }
    }

    /// Whether `state` is equivalent to a fresh key's at `now` (and at every later
    /// instant), so its cell may be reused for another key.
    #[inline]
    pub fn is_neutral(&self, state: u128, now: u64) -> bool {
        match self.algorithm {
            Algorithm::Gcra => state <= now as u128,
            Algorithm::Window => {
                let w = self.roll(state as u64, now);
                w.prev == 0 && w.curr == 0
            }
        }
    }

    /// Takes back a request of `cost` that was stored as `committed` (from `before`)
    /// when the cell now holds `current`, because another rule of its policy denied.
    ///
    /// Exact for windows (the counts are moved back in the window they were added to).
    /// For GCRA it is exact when nothing else moved the cell; otherwise it removes
    /// `cost * T` from the backlog, which is exact unless the cell drained completely in
    /// between (documented in the crate's concurrency notes).
    pub(crate) fn undo(&self, before: u128, committed: u128, current: u128, cost: u64) -> u128 {
        if current == committed {
            return before;
        }
        match self.algorithm {
            Algorithm::Gcra => current.saturating_sub(cost as u128 * self.emission_ns as u128),
            Algorithm::Window => {
                let ours = self.unpack(committed as u64);
                let mut now = self.unpack(current as u64);
                // Index distance in the modular space of the stored index.
                let mask = self.index_mask();
                let d = now.index.wrapping_sub(ours.index) & mask;
                if d == 0 {
                    now.curr = now.curr.saturating_sub(cost);
                } else if d == 1 {
                    now.prev = now.prev.saturating_sub(cost);
                }
                self.pack(now) as u128
            }
        }
    }

    /// Folds two states of one key into one (used when two cells of a key were claimed
    /// at once): the counts or the backlogs add up.
    pub(crate) fn merge(&self, a: u128, b: u128, now: u64) -> u128 {
        match self.algorithm {
            Algorithm::Gcra => {
                let now = now as u128;
                let backlog = a.saturating_sub(now) + b.saturating_sub(now);
                if backlog == 0 {
                    a.max(b)
                } else {
                    // Each backlog is below 2^64 + 2^62; the sum is kept to 65 bits.
                    (now + backlog).min(MAX_STATE)
                }
            }
            Algorithm::Window => {
                let x = self.roll(a as u64, now);
                let y = self.roll(b as u64, now);
                // Fold into the later window: a state stored by a thread whose clock had
                // passed a window edge is ahead of `now` (read as "the clock went back").
                let (hi, lo) = if y.index_abs > x.index_abs { (y, x) } else { (x, y) };
                let max = (1u64 << self.count_bits) - 1;
                let (prev, curr) = match hi.index_abs - lo.index_abs {
                    0 => (hi.prev.saturating_add(lo.prev), hi.curr.saturating_add(lo.curr)),
                    1 => (hi.prev.saturating_add(lo.curr), hi.curr),
                    _ => (hi.prev, hi.curr),
                };
                let merged = WindowState {
                    index: hi.index,
                    index_abs: hi.index_abs,
                    prev: prev.min(max),
                    curr: curr.min(max),
                    elapsed: hi.elapsed,
                };
                self.pack(merged) as u128
            }
        }
    }

    fn gcra_decide(&self, state: u128, now: u64, cost: u64, consume: bool) -> Outcome {
        let t = self.emission_ns as u128;
        let bt = self.burst as u128 * t;
        let now_w = now as u128;
        let tat = state & MAX_STATE;
        let e = tat.max(now_w);
        let new_tat = e + cost as u128 * t;
        // Admitted, `new_tat <= now + B*T < 2^64 + 2^62`: the state stays within 65 bits.
        let admitted = new_tat - now_w <= bt;
        let tat_after = if admitted && consume { new_tat } else { tat };
        let x = tat_after.max(now_w) - now_w;
        // `B*T <= 2^62`, so this division runs in 64 bits.
        let remaining = if bt > x {
            (div(bt - x, self.emission_ns) as u64).min(self.burst)
        } else {
            0
        };
        let retry = if admitted { 0 } else { new_tat - bt - now_w };
        Outcome {
            admitted,
            state: tat_after,
            figures: Figures {
                limit: self.burst,
                remaining,
                reset_ns: x,
                retry_ns: retry,
            },
        }
    }

    /// [`Rule::window_decide`] with `consume` for the common case, in 64-bit arithmetic:
    /// the request is admitted, the clock did not go back, and `prev * (W - a)` fits in
    /// 64 bits. `None` otherwise (the general path answers). There `base = -a`, so
    /// `reset = 2W - a - floor((W-1) / curr)`, in `2..=2W` (`W <= MAX_PERIOD_NS < 2^62`).
    #[cfg_attr(target_pointer_width = "64", inline(always))]
    #[cfg_attr(not(target_pointer_width = "64"), inline)]
    fn window_admit(&self, state: u64, now: u64, cost: u64) -> Option<Outcome> {
        let b = self.count_bits;
        let count_mask = (1u64 << b) - 1;
        let mask = self.index_mask();
        let (j, a) = self.period_div.div_rem(now);
        let (stored_prev, stored_curr) = ((state >> b) & count_mask, state & count_mask);
        let d = (j & mask).wrapping_sub(state >> (2 * b)) & mask;
        let (prev, curr) = if stored_prev | stored_curr == 0 {
            (0, 0)
        } else {
            match d {
                0 => (stored_prev, stored_curr),
                1 => (stored_curr, 0),
                _ if d <= mask >> 1 => (0, 0),
                // The clock went back.
                _ => return None,
            }
        };
        let w = self.period_ns;
        let scaled = match prev.checked_mul(w - a) {
            Some(num) => self.period_div.div_rem(num).0,
            None => return None,
        };
        let n = curr + scaled + cost;
        if n > self.limit {
            return None;
        }
        let curr = curr + cost;
        Some(Outcome {
            admitted: true,
            state: (((j & mask) << (2 * b)) | (prev << b) | curr) as u128,
            figures: Figures {
                limit: self.limit,
                remaining: self.limit - n,
                reset_ns: (2 * w - a - (w - 1) / curr) as u128,
                retry_ns: 0,
            },
        })
    }

    fn window_decide(&self, state: u64, now: u64, cost: u64, consume: bool) -> Outcome {
        let mut w = self.roll(state, now);
        let l = self.limit as u128;
        let mut n = self.estimate(&w);
        let admitted = n + cost as u128 <= l;
        if admitted && consume {
            // Only `curr` changes, so the estimate grows by exactly `cost`.
            w.curr += cost;
            n += cost as u128;
        }
        let remaining = l.saturating_sub(n) as u64;
        // Every figure is `i*W - now` plus terms in 0..=2W. That base is `-a` unless the
        // clock went back; the sum is clamped to 0 and 2^64-1 ns.
        let big_w = self.period_ns as i128;
        let base = w.index_abs as i128 * big_w - now as i128;
        // Divisions run in 64 bits where the operands fit: a 128-bit division is a slow
        // library call, and these run on every request.
        let reset = if let Some(q) = (self.period_ns - 1).checked_div(w.curr) {
            base + 2 * big_w - q as i128
        } else if let Some(q) = (self.period_ns - 1).checked_div(w.prev) {
            base + big_w - q as i128
        } else {
            0
        };
        let retry = if admitted {
            0
        } else if let Some(k) = self.limit.checked_sub(w.curr + cost) {
            // The denial with k >= 0 means prev > 0 (the estimate exceeded curr).
            let num = (k as u128 + 1) * self.period_ns as u128 - 1;
            base + big_w - div(num, w.prev.max(1)) as i128
        } else {
            // Here `L - c + 1 <= curr`, and `c <= L`, so the numerator is positive.
            let num = (l - cost as u128 + 1) * self.period_ns as u128 - 1;
            let wait = big_w - div(num, w.curr.max(1)) as i128;
            base + big_w + wait.max(0)
        };
        Outcome {
            admitted,
            state: if consume { self.pack(w) } else { state } as u128,
            figures: Figures {
                limit: self.limit,
                remaining,
                reset_ns: clamp_ns(reset),
                retry_ns: clamp_ns(retry),
            },
        }
    }

    /// `n = curr + floor(prev * (W - a) / W)`.
    fn estimate(&self, w: &WindowState) -> u128 {
        let num = w.prev as u128 * (self.period_ns - w.elapsed) as u128;
        let scaled = if num <= u64::MAX as u128 {
            self.period_div.div_rem(num as u64).0 as u128
        } else {
            num / self.period_ns as u128
        };
        w.curr as u128 + scaled
    }

    fn index_mask(&self) -> u64 {
        u64::MAX >> (2 * self.count_bits)
    }

    fn unpack(&self, state: u64) -> PackedWindow {
        let b = self.count_bits;
        let count_mask = (1u64 << b) - 1;
        PackedWindow {
            index: state >> (2 * b),
            prev: (state >> b) & count_mask,
            curr: state & count_mask,
        }
    }

    fn pack(&self, w: impl Into<PackedWindow>) -> u64 {
        let w: PackedWindow = w.into();
        let b = self.count_bits;
        ((w.index & self.index_mask()) << (2 * b)) | (w.prev << b) | w.curr
    }

    /// Reads a window state at `now` and rolls it forward (SEMANTICS.md 3.2).
    fn roll(&self, state: u64, now: u64) -> WindowState {
        let p = self.unpack(state);
        let (j, a) = self.period_div.div_rem(now);
        if p.prev == 0 && p.curr == 0 {
            // Any empty state is a fresh key's, whatever index it carries.
            return WindowState {
                index: j & self.index_mask(),
                index_abs: j,
                prev: 0,
                curr: 0,
                elapsed: a,
            };
        }
        // The index is stored modulo 2^k, and every window of the u64 clock fits in half
        // of that range, so the distance below is exact.
        let mask = self.index_mask();
        let half = (mask >> 1) + 1;
        let d = (j & mask).wrapping_sub(p.index) & mask;
        if d < half {
            // The stored window is `d` windows back.
            let i = j - d;
            match d {
                0 => WindowState {
                    index: p.index,
                    index_abs: i,
                    prev: p.prev,
                    curr: p.curr,
                    elapsed: a,
                },
                1 => WindowState {
                    index: j & mask,
                    index_abs: j,
                    prev: p.curr,
                    curr: 0,
                    elapsed: a,
                },
                _ => WindowState {
                    index: j & mask,
                    index_abs: j,
                    prev: 0,
                    curr: 0,
                    elapsed: a,
                },
            }
        } else {
            // The clock went back: use the stored window with a = 0.
            let ahead = (mask - d) + 1;
            WindowState {
                index: p.index,
                index_abs: j + ahead,
                prev: p.prev,
                curr: p.curr,
                elapsed: 0,
            }
        }
    }
}

/// Division of a `u64` by a fixed divisor as a multiply-high and one correction: a
/// hardware division costs tens of cycles, and a window needs two per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Divider {
    d: u64,
    /// `floor(2^(64+shift) / d)`, or 0 when `d` is a power of two (a plain shift).
    magic: u64,
    /// `floor(log2(d))`.
    shift: u32,
}

impl Divider {
    const fn new(d: u64) -> Divider {
        let shift = 63 - d.leading_zeros();
        let magic = if d.is_power_of_two() {
            0
        } else {
            ((1u128 << (64 + shift)) / d as u128) as u64
        };
        Divider { d, magic, shift }
    }

    /// `(n / d, n % d)`.
    #[inline]
    fn div_rem(&self, n: u64) -> (u64, u64) {
        if self.magic == 0 {
            return (n >> self.shift, n & (self.d - 1));
        }
        // With m = floor(2^(64+s) / d) and d >= 2^s, the estimate is q or q - 1.
        let mut q = ((n as u128 * self.magic as u128) >> 64) as u64 >> self.shift;
        let mut r = n - q * self.d;
        if r >= self.d {
            q += 1;
            r -= self.d;
        }
        (q, r)
    }
}

/// `num / d`, in 64 bits when `num` fits (the common case).
#[inline]
fn div(num: u128, d: u64) -> u128 {
    if num <= u64::MAX as u128 {
        ((num as u64) / d) as u128
    } else {
        num / d as u128
    }
}

/// A figure's signed sum, 0 when it is not positive (the clock went back).
fn clamp_ns(v: i128) -> u128 {
    if v <= 0 {
        0
    } else {
        v as u128
    }
}

/// The three fields of a window state word.
#[derive(Clone, Copy)]
struct PackedWindow {
    index: u64,
    prev: u64,
    curr: u64,
}

/// A window state read at some `now`, rolled forward.
#[derive(Clone, Copy)]
struct WindowState {
    /// The window index modulo 2^k, as stored.
    index: u64,
    /// The window index in full.
    index_abs: u64,
    prev: u64,
    curr: u64,
    /// `a`: ns since the start of the current window (0 when the clock went back).
    elapsed: u64,
}

impl From<WindowState> for PackedWindow {
    fn from(w: WindowState) -> Self {
        PackedWindow {
            index: w.index,
            prev: w.prev,
            curr: w.curr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = NS_PER_MS;
    const S: u64 = NS_PER_S;

    /// Runs `decide` and returns (admitted, remaining, reset, retry) and the new state.
    fn step(rule: &Rule, state: &mut u128, now: u64, cost: u64) -> (bool, u64, u64, u64) {
        let o = rule.decide(*state, now, cost);
        if o.admitted {
            *state = o.state;
        } else {
            assert_eq!(o.state, *state, "a denial returns the state it was given");
        }
        (
            o.admitted,
            o.figures.remaining,
            u64::try_from(o.figures.reset_ns).expect("a reset within the clock"),
            u64::try_from(o.figures.retry_ns).expect("a retry within the clock"),
        )
    }

    /// The 64-bit fast path answers exactly as the general one wherever it answers, and
    /// answers the common case: states from every branch of `roll` (fresh, same window,
    /// one back, long ago, clock gone back), counts up to the limit, every cost.
    #[test]
    fn window_fast_path_equals_the_general_path() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut answered = 0usize;
        let runs = if cfg!(miri) { 300 } else { 200_000 };
        let periods = [MS, 7 * MS + 1, S, 60 * S, 3_600 * S + 3, MAX_PERIOD_NS];
        for i in 0..runs {
            let period = periods[i % periods.len()];
            let limit = match next() % 4 {
                0 => 1,
                1 => 120,
                2 => 1 + next() % Rule::max_window_limit(period),
                _ => Rule::max_window_limit(period),
            };
            let rule = Rule::window(limit, period).unwrap();
            let now = match next() % 3 {
                0 => next(),
                1 => next() % (1 << 40),
                _ => u64::MAX - next() % (1 << 40),
            };
            // A state from a few requests at earlier (or, for the clock going back,
            // later) instants.
            let mut state = 0;
            for _ in 0..next() % 6 {
                let back = next() % (3 * period);
                let at = if next() % 8 == 0 {
                    now.saturating_add(back)
                } else {
                    now.saturating_sub(back)
                };
                let cost = 1 + next() % limit.min(4);
                let o = rule.window_decide(state, at, cost, true);
                if o.admitted {
                    state = o.state as u64;
                }
            }
            let cost = if next() % 2 == 0 { 1 } else { 1 + next() % limit };
            let general = rule.window_decide(state, now, cost, true);
            if let Some(fast) = rule.window_admit(state, now, cost) {
                assert_eq!(fast, general, "{rule:?} state {state:#x} now {now} cost {cost}");
                answered += 1;
            } else {
                // Only a stored state (the clock went back, or a 64-bit overflow) leaves
                // an admission to the general path.
                assert!(
                    !general.admitted || state != 0,
                    "a fresh key's admission took the general path"
                );
            }
            assert_eq!(rule.decide(state as u128, now, cost), general);
        }
        assert!(answered > runs / 4, "the fast path answered {answered} of {runs}");
    }

    #[test]
    fn gcra_burst_then_one_per_emission_interval() {
        // 5 per second: T = 200 ms, B = 5.
        let rule = Rule::gcra(5, S, 5).unwrap();
        let t0 = 10 * S;
        let mut st = 0;
        for k in 1..=5 {
            let (ok, remaining, reset, retry) = step(&rule, &mut st, t0, 1);
            assert!(ok);
            assert_eq!((remaining, reset, retry), (5 - k, k * 200 * MS, 0));
        }
        assert_eq!(st, (t0 + S) as u128);
        // Denied: retry = e + cT - BT - now = 200 ms; nothing changes.
        assert_eq!(step(&rule, &mut st, t0, 1), (false, 0, S, 200 * MS));
        // One ns early is still denied, with 1 ns to wait.
        assert_eq!(
            step(&rule, &mut st, t0 + 200 * MS - 1, 1),
            (false, 0, 800 * MS + 1, 1)
        );
        // At the emission time one more is admitted.
        assert_eq!(step(&rule, &mut st, t0 + 200 * MS, 1), (true, 0, S, 0));
        // A long idle time drains the bucket: a neutral state.
        assert!(rule.is_neutral(st, t0 + 10 * S));
        assert!(!rule.is_neutral(st, t0 + S));
        assert_eq!(step(&rule, &mut st, t0 + 10 * S, 1), (true, 4, 200 * MS, 0));
    }

    #[test]
    fn gcra_emission_interval_rounds_up_and_burst_differs_from_limit() {
        // 3 per 1 s: T = ceil(1e9 / 3) = 333,333,334 ns; burst 2.
        let rule = Rule::gcra(3, S, 2).unwrap();
        let t = 333_333_334;
        let mut st = 0;
        assert_eq!(step(&rule, &mut st, 5 * S, 1), (true, 1, t, 0));
        assert_eq!(step(&rule, &mut st, 5 * S, 1), (true, 0, 2 * t, 0));
        assert_eq!(step(&rule, &mut st, 5 * S, 1), (false, 0, 2 * t, t));
        assert_eq!(rule.capacity(), 2);
        assert_eq!(rule.limit(), 3);
    }

    #[test]
    fn gcra_cost_above_one_reports_what_is_left_when_denied() {
        let rule = Rule::gcra(5, S, 5).unwrap();
        let mut st = 0;
        assert_eq!(step(&rule, &mut st, S, 3), (true, 2, 600 * MS, 0));
        // Cost 3 needs 1.2 s of room and 0.4 s is free: retry 200 ms, remaining 2.
        assert_eq!(step(&rule, &mut st, S, 3), (false, 2, 600 * MS, 200 * MS));
        assert_eq!(step(&rule, &mut st, S, 2), (true, 0, S, 0));
    }

    #[test]
    fn gcra_clock_going_back() {
        let rule = Rule::gcra(5, S, 5).unwrap();
        let mut st = 0;
        for _ in 0..5 {
            assert!(step(&rule, &mut st, 10 * S, 1).0);
        }
        // tat = 11 s; at 9 s the backlog is 2 s, above B*T: remaining clamps to 0,
        // retry = 11.2 - 1 - 9 = 1.2 s.
        assert_eq!(step(&rule, &mut st, 9 * S, 1), (false, 0, 2 * S, 1_200 * MS));
        assert!(!rule.is_neutral(st, 9 * S));
        // Back to the present: as before.
        assert_eq!(step(&rule, &mut st, 10 * S, 1), (false, 0, S, 200 * MS));
    }

    /// At the end of the `u64` clock a burst admits exactly `B` at one instant, with the
    /// contract's figures: the tat passes `u64::MAX` ns and keeps its 65th bit. (It was
    /// once stored saturated, after which every request was admitted; then such requests
    /// were denied, against the contract.)
    #[test]
    fn gcra_admits_its_burst_at_the_end_of_the_clock() {
        let rule = Rule::gcra(5, S, 5).unwrap();
        for back in [0, 1, 200 * MS - 1, 200 * MS, 3 * 200 * MS + 7, S, 2 * S] {
            let now = u64::MAX - back;
            let mut st = 0;
            let admitted = (0..20).filter(|_| step(&rule, &mut st, now, 1).0).count() as u64;
            assert_eq!(admitted, 5, "{back} ns before the end");
            assert_eq!(st, now as u128 + 5 * 200 * MS as u128);
            assert_eq!(st > u64::MAX as u128, back < S);
            // Denied: nothing left, full again in B*T, the next one in T.
            assert_eq!(step(&rule, &mut st, now, 1), (false, 0, S, 200 * MS));
            // One T later, one more.
            if back >= 200 * MS {
                assert!(step(&rule, &mut st, now + 200 * MS, 1).0);
            }
            assert!(!rule.is_neutral(st, now));
            assert_eq!(rule.is_neutral(st, u64::MAX), st <= u64::MAX as u128);
        }
    }

    #[test]
    fn gcra_inspect_consumes_nothing() {
        let rule = Rule::gcra(5, S, 5).unwrap();
        let o = rule.inspect(0, S, 5);
        assert!(o.admitted);
        assert_eq!((o.state, o.figures.remaining, o.figures.reset_ns), (0, 5, 0));
        let o = rule.inspect((S + S) as u128, S, 1);
        assert!(!o.admitted);
        assert_eq!(
            (o.figures.remaining, o.figures.reset_ns, o.figures.retry_ns),
            (0, S as u128, (200 * MS) as u128)
        );
    }

    #[test]
    fn window_estimate_remaining_reset_and_retry() {
        // L = 10 per W = 60 s.
        let w = 60 * S;
        let rule = Rule::window(10, w).unwrap();
        let mut st = 0;
        // Window 99: 8 requests.
        assert_eq!(
            step(&rule, &mut st, 99 * w + 5 * S, 8),
            (true, 2, 100 * w + w - (w - 1) / 8 - (99 * w + 5 * S), 0)
        );
        // Window 100, a = 15 s: n = 0 + floor(8 * 45 / 60) = 6; cost 2 -> curr = 2, n = 8.
        let now = 100 * w + 15 * S;
        let (ok, remaining, reset, _) = step(&rule, &mut st, now, 2);
        assert!(ok);
        assert_eq!(remaining, 2);
        assert_eq!(reset, 101 * w + w - (w - 1) / 2 - now);
        // Cost 2 more: n = 10, remaining 0; reset = 102 W - floor((W-1)/4) - now.
        let (ok, remaining, reset, _) = step(&rule, &mut st, now, 2);
        assert!(ok);
        assert_eq!((remaining, reset), (0, 102 * w - 14_999_999_999 - now));
        assert_eq!(reset, 90_000_000_001);
        // Denied, k = 10 - 4 - 1 = 5 >= 0: retry = 100 W + W - floor((6W - 1) / 8) - now = 1 ns.
        assert_eq!(step(&rule, &mut st, now, 1), (false, 0, 90_000_000_001, 1));
        // One ns later: n = 4 + floor(8 * (45 s - 1) / 60 s) = 9: admitted.
        assert!(step(&rule, &mut st, now + 1, 1).0);
    }

    #[test]
    fn window_retry_when_only_the_next_window_can_admit() {
        let w = 60 * S;
        let rule = Rule::window(10, w).unwrap();
        let mut st = 0;
        let now = 7 * w + 30 * S;
        assert_eq!(
            step(&rule, &mut st, now, 10),
            (true, 0, 8 * w + w - (w - 1) / 10 - now, 0)
        );
        // k = 10 - 10 - 1 < 0: retry = 8W + max(0, W - floor((10W - 1) / 10)) - now = 30 s + 1 ns.
        let (ok, remaining, _, retry) = step(&rule, &mut st, now, 1);
        assert!(!ok);
        assert_eq!((remaining, retry), (0, 30 * S + 1));
        // Cost 4: W - floor(7W - 1) / 10 = W - (0.7 W - 1) -> retry = 8W + 18 s + 1 - now.
        let (_, _, _, retry) = step(&rule, &mut st, now, 4);
        assert_eq!(retry, 8 * w + (w - (7 * w - 1) / 10) - now);
        // And the answer is right: at now + retry - 1 still denied, at now + retry admitted.
        assert!(!rule.inspect(st, now + retry - 1, 4).admitted);
        assert!(rule.inspect(st, now + retry, 4).admitted);
    }

    #[test]
    fn window_roll_forward_one_and_two_windows() {
        let w = S;
        let rule = Rule::window(4, w).unwrap();
        let mut st = 0;
        assert!(step(&rule, &mut st, 3 * w, 3).0);
        // Next window at a = 0: n = 0 + 3 * W / W = 3.
        assert_eq!(
            step(&rule, &mut st, 4 * w, 1),
            (true, 0, 5 * w + w - (w - 1) - 4 * w, 0)
        );
        // Two windows later everything is gone, and the state is neutral.
        assert!(rule.is_neutral(st, 6 * w));
        assert!(!rule.is_neutral(st, 5 * w));
        assert_eq!(step(&rule, &mut st, 6 * w + 1, 1).1, 3);
    }

    #[test]
    fn window_clock_going_back_uses_the_stored_window_with_a_zero() {
        let w = S;
        let rule = Rule::window(10, w).unwrap();
        let mut st = 0;
        assert!(step(&rule, &mut st, 50 * w + w / 2, 6).0);
        // Window 51 with prev = 6, curr = 1.
        assert!(step(&rule, &mut st, 51 * w + w / 2, 1).0);
        // Back to window 20: n = curr + prev = 7, the stored window's reset.
        let now = 20 * w;
        let o = rule.inspect(st, now, 4);
        assert!(!o.admitted);
        assert_eq!(o.figures.remaining, 3);
        assert_eq!(o.figures.reset_ns, (52 * w + w - (w - 1) - now) as u128);
        // k = 10 - 1 - 4 = 5: retry = 51 W + W - floor((6W - 1) / 6) - now.
        assert_eq!(o.figures.retry_ns, (52 * w - (6 * w - 1) / 6 - now) as u128);
        assert!(!rule.is_neutral(st, now));
        // Admitting there counts in the stored window 51.
        assert!(step(&rule, &mut st, now, 3).0);
        let o = rule.inspect(st, 51 * w, 1);
        assert_eq!(o.figures.remaining, 0);
    }

    #[test]
    fn window_index_never_aliases_across_idle_gaps() {
        for period in [MS, 3 * MS, 7 * MS, S, 60 * S, 365 * 86_400 * S, MAX_PERIOD_NS] {
            let max = Rule::max_window_limit(period);
            let rule = Rule::window(max, period).unwrap();
            for start_window in [0u64, 1, 12_345] {
                let start = start_window.saturating_mul(period);
                if start > u64::MAX - period {
                    continue;
                }
                let mut st = 0;
                assert!(step(&rule, &mut st, start, max).0);
                // Every gap of 2^k windows (and one less, one more) that fits the clock.
                for k in 1..64 {
                    for gap in [(1u64 << k) - 1, 1u64 << k, (1u64 << k) + 1] {
                        let Some(now) = gap.checked_mul(period).and_then(|d| d.checked_add(start)) else {
                            continue;
                        };
                        let o = rule.inspect(st, now, 1);
                        if gap >= 2 {
                            assert!(o.admitted, "period {period} gap {gap} windows: stale counts");
                            assert_eq!(o.figures.remaining, max, "period {period} gap {gap}");
                            assert!(rule.is_neutral(st, now));
                        }
                    }
                }
                // The clock's last instant, too.
                let o = rule.inspect(st, u64::MAX, 1);
                if u64::MAX / period >= start_window + 2 {
                    assert_eq!(o.figures.remaining, max, "period {period} at u64::MAX");
                }
            }
        }
    }

    #[test]
    fn window_packing_holds_full_counts_without_bleeding() {
        for period in [MS, S, 60 * S, MAX_PERIOD_NS] {
            let max = Rule::max_window_limit(period);
            let rule = Rule::window(max, period).unwrap();
            let bits = rule.count_bits;
            assert_eq!(max, ((1u64 << bits) - 1).min(MAX_LIMIT));
            // Index bits hold every window of the clock, twice over.
            assert!(u64::MAX / period < 1u64 << (64 - 2 * rule.count_bits - 1));
            let i = u64::MAX / period - 1;
            for (prev, curr) in [(max, max), (0, max), (max, 0), (1, max - 1)] {
                let s = rule.pack(PackedWindow { index: i, prev, curr });
                let p = rule.unpack(s);
                assert_eq!((p.index, p.prev, p.curr), (i & rule.index_mask(), prev, curr));
            }
            // Full window, then the next window at a = 0: prev holds all of it.
            let mut st = 0;
            assert!(step(&rule, &mut st, i * period, max).0);
            let o = rule.inspect(st, (i + 1) * period, 1);
            assert!(!o.admitted);
            assert_eq!(o.figures.remaining, 0);
            let o = rule.inspect(st, (i + 1) * period + period / 2, 1);
            let n = max as u128 * (period - period / 2) as u128 / period as u128;
            assert_eq!(o.figures.remaining, max - n as u64);
        }
        assert_eq!(Rule::max_window_limit(60 * S), 131_071);
        assert_eq!(Rule::max_window_limit(S), 16_383);
        assert_eq!(Rule::max_window_limit(MS), 511);
        assert_eq!(Rule::window(512, MS), Err(RuleError::LimitTooLargeForPeriod));
        assert_eq!(
            Rule::window(131_072, 60 * S),
            Err(RuleError::LimitTooLargeForPeriod)
        );
    }

    #[test]
    fn parameters_out_of_range_are_refused() {
        assert_eq!(Rule::gcra(0, S, 1), Err(RuleError::Limit));
        assert_eq!(Rule::gcra(MAX_LIMIT + 1, S, 1), Err(RuleError::Limit));
        assert_eq!(Rule::gcra(1, 0, 1), Err(RuleError::Period));
        assert_eq!(Rule::gcra(1, MIN_PERIOD_NS - 1, 1), Err(RuleError::Period));
        assert_eq!(Rule::gcra(1, MAX_PERIOD_NS + 1, 1), Err(RuleError::Period));
        assert_eq!(Rule::gcra(1, S, 0), Err(RuleError::Burst));
        assert_eq!(Rule::gcra(1, S, MAX_LIMIT + 1), Err(RuleError::Burst));
        // burst * T above 2^62 ns: 1 per 100 years with a burst of 2.
        assert_eq!(Rule::gcra(1, MAX_PERIOD_NS, 2), Err(RuleError::Burst));
        assert!(Rule::gcra(1, MAX_PERIOD_NS, 1).is_ok());
        assert!(Rule::gcra(MAX_LIMIT, MIN_PERIOD_NS, MAX_LIMIT).is_ok());
        assert_eq!(Rule::window(0, S), Err(RuleError::Limit));
        assert_eq!(Rule::window(1, 0), Err(RuleError::Period));
        assert_eq!(Rule::window(1, MAX_PERIOD_NS + 1), Err(RuleError::Period));
        assert!(Rule::window(1, MAX_PERIOD_NS).is_ok());
    }

    #[test]
    fn undo_takes_back_exactly_what_was_added() {
        let w = S;
        let rule = Rule::window(10, w).unwrap();
        let before = rule.decide(0, 5 * w, 2).state;
        let ours = rule.decide(before, 5 * w, 3).state;
        // Someone else added 1 after us in the same window.
        let theirs = rule.decide(ours, 5 * w, 1).state;
        let undone = rule.undo(before, ours, theirs, 3);
        assert_eq!(undone, rule.decide(before, 5 * w, 1).state);
        // The cell rolled into the next window meanwhile: take it from prev.
        let next = rule.decide(ours, 6 * w, 1).state;
        let undone = rule.undo(before, ours, next, 3);
        let p = rule.unpack(undone as u64);
        assert_eq!((p.prev, p.curr), (2, 1));
        // Nothing else moved: the state before.
        assert_eq!(rule.undo(before, ours, ours, 3), before);
        // GCRA: cost * T back off the backlog.
        let g = Rule::gcra(5, S, 5).unwrap();
        let b = g.decide(0, S, 1).state;
        let o = g.decide(b, S, 2).state;
        let other = g.decide(o, S, 1).state;
        assert_eq!(g.undo(b, o, other, 2), other - (2 * 200 * MS) as u128);
    }

    /// Regression: folding a state stored in the next window (by a thread whose clock had
    /// passed the edge) into one of the current window moved its counts back a window,
    /// where they weigh less: the key could later be admitted past its limit.
    #[test]
    fn merge_folds_into_the_later_window() {
        let w = S;
        let rule = Rule::window(10, w).unwrap();
        let a = rule.decide(0, 5 * w + w / 2, 2).state;
        let b = rule.decide(0, 6 * w, 3).state;
        // Folded by the thread still in window 5, and by one already in window 6.
        for now in [5 * w + w / 2, 6 * w + 1] {
            let m = rule.merge(a, b, now);
            assert_eq!(rule.merge(b, a, now), m);
            // Late in window 6: curr = 3 at full weight, prev = 2 nearly gone.
            let o = rule.inspect(m, 6 * w + w - 1, 1);
            assert_eq!(o.figures.remaining, 10 - 3, "folded at {now}");
            let o = rule.inspect(m, 6 * w, 1);
            assert_eq!(o.figures.remaining, 10 - 5, "folded at {now}");
        }
        // Two windows apart: the older counts no longer matter.
        let c = rule.decide(0, 8 * w, 1).state;
        assert_eq!(
            rule.inspect(rule.merge(a, c, 5 * w), 8 * w, 1).figures.remaining,
            9
        );
    }

    #[test]
    fn merge_adds_counts_and_backlogs() {
        let rule = Rule::window(10, S).unwrap();
        let a = rule.decide(0, 3 * S, 2).state;
        let b = rule.decide(0, 3 * S, 5).state;
        let m = rule.merge(a, b, 3 * S);
        assert_eq!(rule.inspect(m, 3 * S, 1).figures.remaining, 3);
        let g = Rule::gcra(5, S, 5).unwrap();
        let a = g.decide(0, S, 2).state;
        let b = g.decide(0, S, 1).state;
        assert_eq!(g.merge(a, b, S), (S + 3 * 200 * MS) as u128);
        // Both drained: stays neutral.
        assert!(g.is_neutral(g.merge(a, b, 10 * S), 10 * S));
    }
}

#[cfg(test)]
mod divider_tests {
    use super::Divider;

    #[test]
    fn divider_matches_hardware_division() {
        let divisors = [
            1,
            2,
            3,
            7,
            1_000_000,
            3_000_000,
            60_000_000_000,
            (1 << 40) + 1,
            u64::MAX / 3,
            u64::MAX,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for &d in &divisors {
            let div = Divider::new(d);
            for n in [
                0,
                1,
                d - 1,
                d,
                d.wrapping_add(1),
                u64::MAX,
                u64::MAX - 1,
                u64::MAX / 2,
            ] {
                assert_eq!(div.div_rem(n), (n / d, n % d), "{n} / {d}");
            }
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                assert_eq!(div.div_rem(x), (x / d, x % d), "{x} / {d}");
                let small = x >> (x % 64);
                assert_eq!(div.div_rem(small), (small / d, small % d), "{small} / {d}");
            }
        }
    }
}
