//! `AISOULE_RATELIMIT_CLOCK=os` keeps every monotonic reading on `clock_gettime`. A test
//! file of its own: the choice is made once per process, at the first reading, so the
//! variable must be set before any other test of the process reads the clock.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use aisoule_ratelimit_host::{monotonic_ns, os_monotonic_ns, tsc};

#[test]
fn the_environment_variable_keeps_the_kernel_clock() {
    std::env::set_var(tsc::ENV_VAR, "os");
    // Long enough for the counter to have been calibrated and anchored, were it allowed.
    let start = os_monotonic_ns();
    while os_monotonic_ns() - start < 2 * tsc::CALIBRATION_NS + tsc::SPAN_NS {
        monotonic_ns();
    }
    assert!(!tsc::in_use());
    for _ in 0..10_000 {
        let before = os_monotonic_ns();
        let t = monotonic_ns();
        let after = os_monotonic_ns();
        assert!(before <= t && t <= after, "{t} not within [{before}, {after}]");
    }
}
