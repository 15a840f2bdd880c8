//! Rules as pure functions of `(state, now, cost)`: GCRA and the approximated rolling
//! window (SEMANTICS.md 3.1 and 3.2). Nothing here reads a clock or touches memory
//! shared with other threads; the table stores the `u64` states these functions return.

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
}

/// The figures a rule reports for its state after a decision (SEMANTICS.md 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// `limit`: `B` for GCRA, `L` for a window.
    pub limit: u64,
    /// `remaining` after the decision.
    pub remaining: u64,
    /// `reset`: ns from now until `remaining` would be back at `limit`.
    pub reset_ns: u64,
    /// `retry`: ns from now until a request of the same cost would be admitted; 0 when
    /// the request was admitted.
    pub retry_ns: u64,
}

/// What a rule decides for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether this rule admits the request.
    pub admitted: bool,
    /// The state to store if the whole policy admits (equal to the input when denied).
    pub state: u64,
    /// The figures after the decision.
    pub figures: Figures,
}

/// Smallest number of bits that holds `v`.
const fn bits(v: u64) -> u32 {
    64 - v.leading_zeros()
}

const fn sat_u64(v: u128) -> u64 {
    if v > u64::MAX as u128 {
        u64::MAX
    } else {
        v as u64
    }
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
    pub fn decide(&self, state: u64, now: u64, cost: u64) -> Outcome {
        match self.algorithm {
            Algorithm::Gcra => self.gcra_decide(state, now, cost, true),
            Algorithm::Window => self.window_decide(state, now, cost, true),
        }
    }

    /// What [`Rule::decide`] would answer, without consuming: `admitted` says whether a
    /// request of `cost` would be admitted, and the figures describe `state` as it is.
    pub fn inspect(&self, state: u64, now: u64, cost: u64) -> Outcome {
        match self.algorithm {
            Algorithm::Gcra => self.gcra_decide(state, now, cost, false),
            Algorithm::Window => self.window_decide(state, now, cost, false),
        }
    }

    /// Whether `state` is equivalent to a fresh key's at `now` (and at every later
    /// instant), so its cell may be reused for another key.
    pub fn is_neutral(&self, state: u64, now: u64) -> bool {
        match self.algorithm {
            Algorithm::Gcra => state <= now,
            Algorithm::Window => {
                let w = self.roll(state, now);
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
    pub(crate) fn undo(&self, before: u64, committed: u64, current: u64, cost: u64) -> u64 {
        if current == committed {
            return before;
        }
        match self.algorithm {
            Algorithm::Gcra => {
                let back = (cost as u128 * self.emission_ns as u128) as u64;
                current.saturating_sub(back)
            }
            Algorithm::Window => {
                let ours = self.unpack(committed);
                let mut now = self.unpack(current);
                // Index distance in the modular space of the stored index.
                let mask = self.index_mask();
                let d = now.index.wrapping_sub(ours.index) & mask;
                if d == 0 {
                    now.curr = now.curr.saturating_sub(cost);
                } else if d == 1 {
                    now.prev = now.prev.saturating_sub(cost);
                }
                self.pack(now)
            }
        }
    }

    /// Folds two states of one key into one (used when two cells of a key were claimed
    /// at once): the counts or the backlogs add up.
    pub(crate) fn merge(&self, a: u64, b: u64, now: u64) -> u64 {
        match self.algorithm {
            Algorithm::Gcra => {
                let backlog = a.saturating_sub(now).saturating_add(b.saturating_sub(now));
                if backlog == 0 {
                    a.max(b)
                } else {
                    now.saturating_add(backlog)
                }
            }
            Algorithm::Window => {
                let x = self.roll(a, now);
                let y = self.roll(b, now);
                let max = (1u64 << self.count_bits) - 1;
                let merged = WindowState {
                    index: x.index,
                    index_abs: x.index_abs,
                    prev: x.prev.saturating_add(y.prev).min(max),
                    curr: x.curr.saturating_add(y.curr).min(max),
                    elapsed: x.elapsed,
                };
                self.pack(merged)
            }
        }
    }

    fn gcra_decide(&self, state: u64, now: u64, cost: u64, consume: bool) -> Outcome {
        let t = self.emission_ns as u128;
        let bt = self.burst as u128 * t;
        let now_w = now as u128;
        let tat = state as u128;
        let e = tat.max(now_w);
        let new_tat = e + cost as u128 * t;
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
            // A tat past the end of the u64 clock is stored saturated: only reachable
            // within `B*T` of `u64::MAX` ns (584 years after the clock's origin).
            state: sat_u64(tat_after),
            figures: Figures {
                limit: self.burst,
                remaining,
                reset_ns: sat_u64(x),
                retry_ns: sat_u64(retry),
            },
        }
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
        let big_w = self.period_ns as i128;
        let now_i = now as i128;
        let i = w.index_abs as i128;
        // Divisions run in 64 bits where the operands fit: a 128-bit division is a slow
        // library call, and these run on every request.
        let reset = if let Some(q) = (self.period_ns - 1).checked_div(w.curr) {
            (i + 1) * big_w + big_w - q as i128 - now_i
        } else if let Some(q) = (self.period_ns - 1).checked_div(w.prev) {
            (i * big_w + big_w - q as i128 - now_i).max(0)
        } else {
            0
        };
        let retry = if admitted {
            0
        } else {
            let k = self.limit as i128 - w.curr as i128 - cost as i128;
            if k >= 0 {
                // The denial with k >= 0 means prev > 0 (the estimate exceeded curr).
                let num = (k as u128 + 1) * self.period_ns as u128 - 1;
                i * big_w + big_w - div(num, w.prev.max(1)) as i128 - now_i
            } else {
                // Here `L - c + 1 <= curr`, and `c <= L`, so the numerator is positive.
                let num = (l - cost as u128 + 1) * self.period_ns as u128 - 1;
                let wait = big_w - div(num, w.curr.max(1)) as i128;
                (i + 1) * big_w + wait.max(0) - now_i
            }
        };
        Outcome {
            admitted,
            state: if consume { self.pack(w) } else { state },
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
        w.curr as u128 + div(num, self.period_ns)
    }

    fn index_bits(&self) -> u32 {
        64 - 2 * self.count_bits
    }

    fn index_mask(&self) -> u64 {
        let b = self.index_bits();
        if b >= 64 {
            u64::MAX
        } else {
            (1u64 << b) - 1
        }
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
        let j = now / self.period_ns;
        let a = now - j * self.period_ns;
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

/// `num / d`, in 64 bits when `num` fits (the common case).
#[inline]
fn div(num: u128, d: u64) -> u128 {
    if num <= u64::MAX as u128 {
        ((num as u64) / d) as u128
    } else {
        num / d as u128
    }
}

fn clamp_ns(v: i128) -> u64 {
    if v <= 0 {
        0
    } else if v > u64::MAX as i128 {
        u64::MAX
    } else {
        v as u64
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
