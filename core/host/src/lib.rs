//! What every binding needs on a host with std, written once: a seed from the operating
//! system, the clocks, a table owned by the process, and a table in a named
//! shared-memory segment that processes of any language map at once.
//!
//! ```
//! use aisoule_ratelimit::{Config, Limiter, Target};
//! use aisoule_ratelimit_host::{now, os_seed, Table};
//!
//! let limiter = Limiter::new(Config::documented(), Table::owned(4096), os_seed());
//! let d = limiter.check(b"key", Target::Route("/v1/status"), 1, now()).unwrap();
//! assert!(d.allowed);
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use aisoule_ratelimit::{Cell, Now, Seed};

mod shared;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod tsc;

pub use shared::{SharedError, SharedTable, HEADER_BYTES, LAYOUT_VERSION, MAGIC};

/// A seed from the operating system's random source.
///
/// # Panics
///
/// If the operating system has no random source (getrandom fails), which std itself
/// treats as fatal. [`try_os_seed`] returns the error instead.
pub fn os_seed() -> Seed {
    try_os_seed().expect("the operating system's random source failed")
}

/// A seed from the operating system's random source, or why it could not be read (for
/// bindings that report errors instead of panicking, such as the C one).
///
/// # Errors
///
/// The operating system's error when getrandom(2) fails.
pub fn try_os_seed() -> Result<Seed, std::io::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| match e.raw_os_error() {
        Some(errno) => std::io::Error::from_raw_os_error(errno),
        None => std::io::Error::other(e.to_string()),
    })?;
    let (a, b) = bytes.split_at(8);
    Ok(Seed([
        u64::from_le_bytes(a.try_into().expect("8 bytes")),
        u64::from_le_bytes(b.try_into().expect("8 bytes")),
    ]))
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock Python's `time.monotonic_ns()`, Node's
/// `process.hrtime.bigint()` and C's `clock_gettime(CLOCK_MONOTONIC)` read, so processes
/// of every language sharing a table agree on it.
///
/// On x86-64 Linux it is read through the CPU's time-stamp counter when the kernel keeps
/// the clock with that counter too (see the [`tsc`] module): the same clock to within
/// microseconds, for a quarter of the cost. [`os_monotonic_ns`] always asks the kernel.
#[inline]
pub fn monotonic_ns() -> u64 {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        tsc::monotonic_ns()
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        os_monotonic_ns()
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds from `clock_gettime`, every time.
pub fn os_monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux,
    // so the call only writes `ts` and returns 0.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The Unix-epoch wall clock in nanoseconds (0 before 1970).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Both clocks, read now.
pub fn now() -> Now {
    Now {
        mono_ns: monotonic_ns(),
        wall_ns: wall_ns(),
    }
}

/// How long a measured wall-clock offset is used by [`request_now`] before the wall clock
/// is read again.
pub const WALL_REFRESH_NS: u64 = 100_000_000;
/// `wall - mono` (wrapping) as last measured.
static WALL_OFFSET: AtomicU64 = AtomicU64::new(0);
/// The monotonic time of that measurement, 0 before the first.
static WALL_MEASURED_AT: AtomicU64 = AtomicU64::new(0);

/// Both clocks of a request made now, for the bindings' per-request path.
///
/// The wall clock is only printed (`X-RateLimit-Reset`, whole seconds), so it is read at
/// most every [`WALL_REFRESH_NS`] of monotonic time and derived from the monotonic clock
/// in between: one clock read a request instead of two (`clock_gettime` costs about 21 ns
/// on this project's VM; the monotonic clock through the time-stamp counter, 9 ns).
/// Between reads the two clocks drift apart only by NTP's slew (at most 500 ppm, 50 us in
/// 100 ms); a step of the wall clock shows within 100 ms. The monotonic clock, the one the
/// arithmetic uses, is always read.
pub fn request_now() -> Now {
    let mono = monotonic_ns();
    // Acquire pairs with the Release below: an offset is never older than its time.
    let at = WALL_MEASURED_AT.load(Ordering::Acquire);
    if at == 0 || mono.wrapping_sub(at) >= WALL_REFRESH_NS {
        let wall = wall_ns();
        WALL_OFFSET.store(wall.wrapping_sub(mono), Ordering::Relaxed);
        WALL_MEASURED_AT.store(mono.max(1), Ordering::Release);
        return Now {
            mono_ns: mono,
            wall_ns: wall,
        };
    }
    Now {
        mono_ns: mono,
        wall_ns: mono.wrapping_add(WALL_OFFSET.load(Ordering::Relaxed)),
    }
}

/// A limiter's table: owned by the process, or mapped from a shared segment.
#[derive(Debug)]
pub enum Table {
    /// Cells on the heap, for this process only.
    Owned(Box<[Cell]>),
    /// Cells in a shared-memory segment.
    Shared(SharedTable),
}

impl Table {
    /// `capacity` empty cells on the heap.
    ///
    /// # Panics
    ///
    /// When the allocation fails (as `Vec` does); [`Table::try_owned`] returns `None`.
    pub fn owned(capacity: usize) -> Table {
        Table::Owned((0..capacity).map(|_| Cell::new()).collect())
    }

    /// `capacity` empty cells on the heap, or `None` when they cannot be allocated (or
    /// `capacity` is 0). The memory comes zeroed from the allocator, so the pages of a
    /// large table are only touched as keys arrive.
    pub fn try_owned(capacity: usize) -> Option<Table> {
        let layout = std::alloc::Layout::array::<Cell>(capacity).ok()?;
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Cell>();
        if ptr.is_null() {
            return None;
        }
        // SAFETY: `ptr` was allocated by the global allocator with the layout of
        // `[Cell; capacity]`, and all-zero bytes are a valid (empty) `Cell`, so this is an
        // initialised `Box<[Cell]>` that frees with the same layout.
        let cells = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr, capacity)) };
        advise_huge_pages(&cells);
        Some(Table::Owned(cells))
    }
}

/// Tables from this size up are backed by transparent huge pages where the system
/// allows it (`/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` or `always`).
pub const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;

/// Asks Linux to back a large table with transparent huge pages: a check's one random
/// cell access then needs no page walk through 4 KiB pages (a 32 MiB table spans 8,192
/// of them). Advice only: nothing changes when it is refused or unsupported.
fn advise_huge_pages(cells: &[Cell]) {
    #[cfg(target_os = "linux")]
    {
        let bytes = core::mem::size_of_val(cells);
        if bytes < HUGE_PAGE_MIN_BYTES {
            return;
        }
        // The allocation need not start on a page: advise the whole pages inside it.
        const PAGE: usize = 4096;
        let start = cells.as_ptr() as usize;
        let first = start.next_multiple_of(PAGE);
        let end = (start + bytes) & !(PAGE - 1);
        if end > first {
            // SAFETY: [first, end) lies inside this live allocation and is page-aligned;
            // MADV_HUGEPAGE only changes how the kernel backs the pages, never their
            // contents (zero pages stay zero), so no Rust reference is affected.
            unsafe {
                libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cells;
}

impl AsRef<[Cell]> for Table {
    #[inline]
    fn as_ref(&self) -> &[Cell] {
        match self {
            Table::Owned(cells) => cells,
            Table::Shared(shared) => shared.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `VmFlags` of the mapping that holds `addr`, from `/proc/self/smaps`.
    #[cfg(target_os = "linux")]
    fn vm_flags(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps is readable");
        let mut inside = false;
        for line in smaps.lines() {
            let head = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = head.split_once('-') {
                if let (Ok(lo), Ok(hi)) = (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)) {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return flags.trim().to_owned();
                }
            }
        }
        panic!("no mapping holds {addr:#x}");
    }

    /// The derived wall clock stays within the refresh period's drift of the real one,
    /// and the monotonic clock it carries is read every time (never goes back).
    #[test]
    fn request_now_derives_the_wall_clock_closely() {
        let mut last = 0;
        for _ in 0..10_000 {
            let before = wall_ns();
            let n = request_now();
            let after = wall_ns();
            assert!(n.mono_ns >= last, "monotonic went back");
            last = n.mono_ns;
            // Within 1 ms of the real wall clock around the call (NTP slews 50 us in
            // 100 ms at most).
            assert!(
                n.wall_ns + 1_000_000 >= before && n.wall_ns <= after + 1_000_000,
                "{} not within [{before}, {after}] +- 1 ms",
                n.wall_ns
            );
        }
    }

    /// A large owned table is advised for huge pages (`hg` in its mapping's flags); a
    /// small one is left alone; both are zeroed, empty tables.
    #[cfg(target_os = "linux")]
    #[test]
    fn large_owned_tables_ask_for_huge_pages() {
        let big = Table::try_owned(HUGE_PAGE_MIN_BYTES / aisoule_ratelimit::CELL_SIZE * 2).expect("8 MiB");
        let cells = big.as_ref();
        assert!(cells.iter().step_by(4096).all(|c| c.load() == (0, 0)));
        let middle = cells.as_ptr() as usize + core::mem::size_of_val(cells) / 2;
        let flags = vm_flags(middle);
        assert!(flags.split(' ').any(|f| f == "hg"), "flags of the table: {flags}");
        let small = Table::try_owned(1024).expect("16 KiB");
        assert!(small.as_ref().iter().all(|c| c.load() == (0, 0)));
    }
}
