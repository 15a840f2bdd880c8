//! Rust-side tests of the C surface (the C tests in `tests/` cover it from C).

use std::ptr;

use super::*;
use crate::panic::ffi_panic_boundary;

const T0: u64 = 1_780_423_178_274_000_000;

fn new_limiter(config: &str) -> *mut asrl_limiter {
    let opts = asrl_options {
        capacity: 1024,
        seed: [1, 2],
        ..Default::default()
    };
    let mut l = ptr::null_mut();
    let (p, n) = if config.is_empty() {
        (ptr::null(), 0)
    } else {
        (config.as_ptr().cast(), config.len())
    };
    // SAFETY: valid pointers and lengths.
    assert_eq!(unsafe { asrl_limiter_new(p, n, &opts, &mut l) }, asrl_result::Ok);
    l
}

fn check(l: *const asrl_limiter, key: &str, route: &str, cost: u64) -> Result<asrl_decision, asrl_result> {
    let mut d = asrl_decision::default();
    // SAFETY: valid pointers and lengths.
    let rc = unsafe {
        asrl_check(
            l,
            key.as_ptr(),
            key.len(),
            route.as_ptr().cast(),
            route.len(),
            cost,
            T0,
            T0,
            &mut d,
        )
    };
    if rc == asrl_result::Ok {
        Ok(d)
    } else {
        Err(rc)
    }
}

#[test]
fn panic_inside_the_boundary_becomes_asrl_result_panic() {
    fn entry(fail: bool) -> asrl_result {
        ffi_panic_boundary! {
            if fail {
                panic!("boom");
            }
            asrl_result::Ok
        }
    }
    assert_eq!(entry(true), asrl_result::Panic);
    assert_eq!(entry(false), asrl_result::Ok);
}

#[test]
fn burst_then_429_with_the_cores_text() {
    let l = new_limiter("");
    for i in 0..5 {
        let d = check(l, "k", "/v1/messages", 1).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 4 - i);
    }
    let d = check(l, "k", "/v1/messages", 1).unwrap();
    assert!(!d.allowed);
    assert_eq!(d.status, 429);
    let mut buf = [0u8; 512];
    let mut n = 0;
    // SAFETY: valid pointers.
    let rc = unsafe { asrl_decision_write_headers(l, &d, buf.as_mut_ptr().cast(), buf.len(), &mut n) };
    assert_eq!(rc, asrl_result::Ok);
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(text.starts_with("X-RateLimit-Limit: 5\r\nX-RateLimit-Remaining: 0\r\n"));
    assert!(text.ends_with("Retry-After: 1\r\n"));
    // One byte short: the needed length, the buffer untouched.
    let mut short = vec![b'#'; n - 1];
    let mut needed = 0;
    // SAFETY: valid pointers.
    let rc =
        unsafe { asrl_decision_write_headers(l, &d, short.as_mut_ptr().cast(), short.len(), &mut needed) };
    assert_eq!((rc, needed), (asrl_result::InsufficientSize, n));
    assert!(short.iter().all(|&b| b == b'#'));
    // SAFETY: made by asrl_limiter_new.
    unsafe { asrl_limiter_free(l) };
}

#[test]
fn invalid_cost_counts_nothing() {
    let l = new_limiter("");
    assert_eq!(check(l, "k", "/v1/media", 0), Err(asrl_result::InvalidCost));
    assert_eq!(check(l, "k", "/v1/media", 31), Err(asrl_result::InvalidCost));
    assert_eq!(check(l, "k", "/v1/media", 1).unwrap().remaining, 29);
    // SAFETY: made by asrl_limiter_new.
    unsafe { asrl_limiter_free(l) };
}

#[test]
fn config_error_names_the_field() {
    let bad = r#"{"policies": {"alpha": [{"algorithm": "window", "limit": 0, "period_ms": 1000}]}}"#;
    let mut l = ptr::null_mut();
    // SAFETY: valid pointers.
    let rc = unsafe { asrl_limiter_new(bad.as_ptr().cast(), bad.len(), ptr::null(), &mut l) };
    assert_eq!(rc, asrl_result::InvalidConfig);
    assert!(l.is_null());
    let mut buf = [0u8; 256];
    let mut n = 0;
    // SAFETY: valid pointers.
    let rc = unsafe {
        asrl_config_error(
            bad.as_ptr().cast(),
            bad.len(),
            buf.as_mut_ptr().cast(),
            256,
            &mut n,
        )
    };
    assert_eq!(rc, asrl_result::Ok);
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(text.starts_with("policies.alpha[0].limit: "), "{text}");
}

#[test]
fn committed_header_carries_this_crate_version() {
    let header = include_str!("../include/aisoule_ratelimit.h");
    let want = [
        format!("#define ASRL_VERSION_MAJOR {}", env!("CARGO_PKG_VERSION_MAJOR")),
        format!("#define ASRL_VERSION_MINOR {}", env!("CARGO_PKG_VERSION_MINOR")),
        format!("#define ASRL_VERSION_PATCH {}", env!("CARGO_PKG_VERSION_PATCH")),
        format!("#define ASRL_VERSION_STRING \"{}\"", env!("CARGO_PKG_VERSION")),
    ];
    for line in want {
        assert!(
            header.lines().any(|l| l == line),
            "missing `{line}`: run `make -C bindings-c header`"
        );
    }
    // SAFETY: a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(asrl_version()) };
    assert_eq!(v.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn result_numbers_are_stable() {
    for n in 0..=19u32 {
        assert_eq!(asrl_result::from_u32(n).map(|r| r as u32), Some(n));
    }
    assert_eq!(asrl_result::from_u32(20), None);
    assert_eq!(asrl_result::SharedIo as u32, 13);
    assert_eq!(asrl_result::SharedCorrupt as u32, 19);
}

#[test]
fn every_segment_error_has_its_result() {
    use aisoule_ratelimit_host::SharedError as E;
    use std::path::PathBuf;
    let p = || PathBuf::from("/dev/shm/x");
    let cases = [
        (
            E::Io {
                op: "open",
                path: p(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            },
            asrl_result::SharedIo,
        ),
        (E::NotASegment(p()), asrl_result::SharedNotASegment),
        (
            E::LayoutVersion {
                found: 2,
                expected: 1,
            },
            asrl_result::SharedLayout,
        ),
        (
            E::CellLayout {
                found: (32, 16),
                expected: (16, 16),
            },
            asrl_result::SharedLayout,
        ),
        (
            E::Capacity {
                found: 1,
                expected: 2,
            },
            asrl_result::SharedCapacity,
        ),
        (
            E::Policies {
                found: 1,
                expected: 2,
            },
            asrl_result::SharedConfig,
        ),
        (
            E::Truncated {
                found: 1,
                expected: 2,
            },
            asrl_result::SharedTruncated,
        ),
        (E::Corrupt(p()), asrl_result::SharedCorrupt),
        (E::InvalidCapacity(0), asrl_result::InvalidParameter),
    ];
    for (e, want) in cases {
        assert_eq!(crate::shared::result_of(&e), want, "{e}");
    }
}

/// Counts this thread's allocations, to show checks and writers allocate nothing.
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub(super) struct Counting;

    thread_local! {
        pub(super) static ALLOCS: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: forwards to the system allocator; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCS.with(|a| a.set(a.get() + 1));
            // SAFETY: the caller's layout, forwarded.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's pointer and layout, forwarded.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;
}

#[test]
fn checks_and_writers_allocate_nothing() {
    let start = counting::ALLOCS.with(|a| a.get());
    let l = new_limiter("");
    // The counter sees allocations: making a limiter allocates its table.
    assert!(counting::ALLOCS.with(|a| a.get()) > start);
    let mut buf = [0u8; 1024];
    let mut n = 0;
    let before = counting::ALLOCS.with(|a| a.get());
    for i in 0..50u64 {
        let key = [b'k', (i % 7) as u8];
        let mut d = asrl_decision::default();
        // SAFETY: valid pointers and lengths.
        unsafe {
            let route = "/v1/messages/1";
            let rc = asrl_check(
                l,
                key.as_ptr(),
                2,
                route.as_ptr().cast(),
                route.len(),
                1,
                T0,
                T0,
                &mut d,
            );
            assert_eq!(rc, asrl_result::Ok);
            let rc = asrl_peek(
                l,
                key.as_ptr(),
                2,
                route.as_ptr().cast(),
                route.len(),
                1,
                T0,
                T0,
                &mut d,
            );
            assert_eq!(rc, asrl_result::Ok);
            asrl_decision_write_headers(l, &d, buf.as_mut_ptr().cast(), buf.len(), &mut n);
            asrl_decision_write_body(l, &d, buf.as_mut_ptr().cast(), buf.len(), &mut n);
        }
    }
    assert_eq!(counting::ALLOCS.with(|a| a.get()), before);
    // SAFETY: made by asrl_limiter_new.
    unsafe { asrl_limiter_free(l) };
}

#[test]
fn checks_on_a_shared_segment_allocate_nothing() {
    let dir = std::env::temp_dir().join(format!("asrl-c-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("segment");
    let path = path.to_str().unwrap();
    let opts = asrl_options {
        capacity: 256,
        ..Default::default()
    };
    let mut l = ptr::null_mut();
    // SAFETY: valid pointers and lengths.
    let rc =
        unsafe { asrl_limiter_open_shared(path.as_ptr().cast(), path.len(), ptr::null(), 0, &opts, &mut l) };
    assert_eq!(rc, asrl_result::Ok);
    let keys = ["k0", "k1", "k2", "k3", "k4", "k5", "k6"];
    let before = counting::ALLOCS.with(|a| a.get());
    for i in 0..50 {
        let d = check(l, keys[i % keys.len()], "/v1/status", 1);
        assert!(d.unwrap().allowed);
    }
    assert_eq!(counting::ALLOCS.with(|a| a.get()), before);
    // SAFETY: made by asrl_limiter_open_shared.
    unsafe { asrl_limiter_free(l) };
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn limiter_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<asrl_limiter>();
}
