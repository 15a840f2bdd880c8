//! `CLOCK_MONOTONIC` read through the CPU's time-stamp counter: a request's clock for
//! about a quarter of the cost of `clock_gettime` (measured on this project's VM: 21 ns for
//! the vDSO call, whose `rdtscp` waits for every earlier instruction, against a plain
//! `rdtsc` that overlaps with the work around it).
//!
//! How: an anchor pairs a counter value with `CLOCK_MONOTONIC` read at the same moment,
//! and the counter's rate is measured against `CLOCK_MONOTONIC` since the first anchor. A
//! reading is the anchor's time plus the ticks since, at that rate. The anchor is taken
//! again every [`SPAN_NS`], so a reading is never further from `CLOCK_MONOTONIC` than the
//! rate's error over one span: with NTP slewing the clock at its 500 ppm maximum, 25 us;
//! measured here, within 60 ns. Processes sharing a table therefore still agree on the
//! time, as they do with `clock_gettime`, to within that. At a new anchor a reading may be
//! that much earlier than the one before it; the core takes a clock going back as the
//! contract says (and threads reading one clock in turn reach the table out of order too).
//!
//! Used only when the kernel itself keeps `CLOCK_MONOTONIC` with the counter (clocksource
//! `tsc`, which Linux picks only for a counter that is invariant and in step on every
//! CPU), and never when the environment variable `AISOULE_RATELIMIT_CLOCK` is `os`.
//! Otherwise, and whenever an anchor finds the counter more than [`MAX_DRIFT_NS`] away
//! from the kernel's clock (the counter has become unreliable), every reading is
//! `clock_gettime(CLOCK_MONOTONIC)`.

use std::sync::atomic::{fence, AtomicU64, AtomicU8, Ordering};

/// How long an anchor serves, in ns of `CLOCK_MONOTONIC`.
pub const SPAN_NS: u64 = 50_000_000;
/// How long the rate is first measured before the counter is used.
pub const CALIBRATION_NS: u64 = 20_000_000;
/// At a new anchor, the largest distance from `CLOCK_MONOTONIC` the counter may show;
/// beyond it the counter is never used again in this process.
pub const MAX_DRIFT_NS: u64 = 1_000_000;
/// The name of the environment variable that turns the counter off (`os`).
pub const ENV_VAR: &str = "AISOULE_RATELIMIT_CLOCK";
/// Where Linux names the clocksource `CLOCK_MONOTONIC` is kept with.
const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";

const UNDECIDED: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNDECIDED);

// The anchor, under a sequence lock: SEQ is odd while a writer changes it, and 0 until the
// first rate is known. Readers never wait: a reader that finds it odd or changed reads the
// kernel's clock instead.
static SEQ: AtomicU64 = AtomicU64::new(0);
static ANCHOR_TSC: AtomicU64 = AtomicU64::new(0);
static ANCHOR_NS: AtomicU64 = AtomicU64::new(0);
/// ns per tick, as a 32.32 fixed-point number.
static MULT: AtomicU64 = AtomicU64::new(0);
/// [`SPAN_NS`] in ticks: an anchor older than this is taken again.
static SPAN_TICKS: AtomicU64 = AtomicU64::new(0);
// The first pair, the base of the rate's measurement (written by the SEQ holder only).
static BASE_TSC: AtomicU64 = AtomicU64::new(0);
static BASE_NS: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` exists on every x86-64 CPU, reads a counter and writes nothing; the
    // kernel allows it in user space unless it set CR4.TSD, which Linux does only for
    // processes that asked for it with prctl(PR_SET_TSC), not for ours.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// `CLOCK_MONOTONIC` in nanoseconds, through the counter when it may be used.
#[inline]
pub fn monotonic_ns() -> u64 {
    let seq = SEQ.load(Ordering::Acquire);
    if seq & 1 == 0 && seq != 0 {
        let t0 = ANCHOR_TSC.load(Ordering::Relaxed);
        let n0 = ANCHOR_NS.load(Ordering::Relaxed);
        let mult = MULT.load(Ordering::Relaxed);
        let span = SPAN_TICKS.load(Ordering::Relaxed);
        // Orders the loads above before the check below (the seqlock's reader side).
        fence(Ordering::Acquire);
        if SEQ.load(Ordering::Relaxed) == seq {
            let ticks = rdtsc().wrapping_sub(t0);
            if ticks < span {
                return n0 + ((u128::from(ticks) * u128::from(mult)) >> 32) as u64;
            }
        }
    }
    anchor()
}

/// Whether readings come from the counter (after calibration), for tests and diagnostics.
pub fn in_use() -> bool {
    // SEQ is 1 while a thread calibrates, 2 from the first anchor on.
    STATE.load(Ordering::Relaxed) == ON && SEQ.load(Ordering::Relaxed) >= 2
}

/// Whether the counter may be used, from the kernel's clocksource and the environment
/// variable's value.
pub fn allowed(clocksource: &str, env: Option<&str>) -> bool {
    clocksource.trim() == "tsc" && env.is_none_or(|v| v.trim() != "os")
}

/// [`allowed`] for this machine and this process's environment.
fn allowed_here() -> bool {
    let clocksource = std::fs::read_to_string(CLOCKSOURCE).unwrap_or_default();
    allowed(&clocksource, std::env::var(ENV_VAR).ok().as_deref())
}

/// The slow path: the kernel's clock, and a new anchor when this thread gets the lock.
#[cold]
#[inline(never)]
fn anchor() -> u64 {
    let mut state = STATE.load(Ordering::Relaxed);
    if state == UNDECIDED {
        state = if allowed_here() { ON } else { OFF };
        STATE.store(state, Ordering::Relaxed);
    }
    if state != ON {
        return crate::os_monotonic_ns();
    }
    let seq = SEQ.load(Ordering::Relaxed);
    if seq & 1 == 1
        || SEQ
            .compare_exchange(seq, seq | 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        // Another thread is taking the anchor.
        return crate::os_monotonic_ns();
    }
    // Orders the writes below after the odd sequence (the seqlock's writer side).
    fence(Ordering::Release);
    // The kernel's clock between two counter reads: the pair is the middle of them. A slow
    // pair (an interrupt between the reads) is not worth an anchor.
    let before = rdtsc();
    let ns = crate::os_monotonic_ns();
    let after = rdtsc();
    let next = (seq | 1) + 1;
    if after.wrapping_sub(before) > 100_000 || ns == 0 {
        SEQ.store(if seq == 0 { 0 } else { next }, Ordering::Release);
        return ns;
    }
    let tsc = before + (after - before) / 2;
    if seq == 0 {
        // Calibrating: the first pair is the base; the rate needs CALIBRATION_NS after it.
        let base_ns = BASE_NS.load(Ordering::Relaxed);
        if base_ns == 0 || ns < base_ns || tsc <= BASE_TSC.load(Ordering::Relaxed) {
            BASE_TSC.store(tsc, Ordering::Relaxed);
            BASE_NS.store(ns, Ordering::Relaxed);
            SEQ.store(0, Ordering::Release);
            return ns;
        }
        if ns - base_ns < CALIBRATION_NS {
            SEQ.store(0, Ordering::Release);
            return ns;
        }
    } else {
        // How far the counter has gone from the kernel's clock since the last anchor, when
        // that anchor is recent enough for the rate's error not to count.
        let t0 = ANCHOR_TSC.load(Ordering::Relaxed);
        let ticks = tsc.wrapping_sub(t0);
        if ticks < 2 * SPAN_TICKS.load(Ordering::Relaxed) {
            let predicted = ANCHOR_NS.load(Ordering::Relaxed)
                + ((u128::from(ticks) * u128::from(MULT.load(Ordering::Relaxed))) >> 32) as u64;
            if predicted.abs_diff(ns) > MAX_DRIFT_NS {
                STATE.store(OFF, Ordering::Relaxed);
                SEQ.store(next, Ordering::Release);
                return ns;
            }
        }
    }
    let (base_tsc, base_ns) = (BASE_TSC.load(Ordering::Relaxed), BASE_NS.load(Ordering::Relaxed));
    if tsc <= base_tsc || ns <= base_ns {
        // The counter or the clock went back since the base: never use the counter again.
        STATE.store(OFF, Ordering::Relaxed);
        SEQ.store(next, Ordering::Release);
        return ns;
    }
    let mult =
        ((u128::from(ns - base_ns) << 32) / u128::from(tsc - base_tsc)).min(u128::from(u64::MAX)) as u64;
    if mult == 0 {
        STATE.store(OFF, Ordering::Relaxed);
        SEQ.store(next, Ordering::Release);
        return ns;
    }
    let span = ((u128::from(SPAN_NS) << 32) / u128::from(mult)).min(u128::from(u64::MAX)) as u64;
    ANCHOR_TSC.store(tsc, Ordering::Relaxed);
    ANCHOR_NS.store(ns, Ordering::Relaxed);
    MULT.store(mult, Ordering::Relaxed);
    SPAN_TICKS.store(span, Ordering::Relaxed);
    SEQ.store(next, Ordering::Release);
    ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_is_allowed_only_under_the_tsc_clocksource_and_not_when_turned_off() {
        assert!(allowed("tsc\n", None));
        assert!(allowed("tsc", Some("counter")));
        assert!(!allowed("kvm-clock\n", None));
        assert!(!allowed("hpet", None));
        assert!(!allowed("tsc\n", Some("os")));
        assert!(!allowed("tsc\n", Some(" os\n")));
    }

    #[test]
    fn readings_stay_within_the_kernel_clock_around_them() {
        // Reads until the counter is calibrated (or the machine turned it off), then checks
        // that every reading lies between the kernel's clock just before and just after it,
        // within the error one span's rate may carry.
        let start = crate::os_monotonic_ns();
        while !in_use() && crate::os_monotonic_ns() - start < 2 * CALIBRATION_NS + 1_000_000_000 {
            monotonic_ns();
        }
        if allowed_here() {
            assert!(in_use(), "the counter should be in use after calibration");
        }
        const TOLERANCE_NS: u64 = 50_000;
        let mut last = 0;
        let mut spans_crossed = 0;
        let begin = crate::os_monotonic_ns();
        // Long enough to cross several anchors.
        while crate::os_monotonic_ns() - begin < 3 * SPAN_NS {
            let before = crate::os_monotonic_ns();
            let t = monotonic_ns();
            let after = crate::os_monotonic_ns();
            assert!(
                t + TOLERANCE_NS >= before && t <= after + TOLERANCE_NS,
                "reading {t} outside [{before}, {after}] by more than {TOLERANCE_NS} ns"
            );
            assert!(t + TOLERANCE_NS >= last, "went back from {last} to {t}");
            if t / SPAN_NS != last / SPAN_NS {
                spans_crossed += 1;
            }
            last = t;
        }
        assert!(spans_crossed >= 2);
    }
}
