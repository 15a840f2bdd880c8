//! A firmware that rate-limits requests arriving over some link: the table is a `static`
//! array, the clock a SysTick counter, the headers go into a stack buffer.
#![no_std]
#![no_main]

use aisoule_ratelimit::{write_to_slice, Cell, Config, HeaderStyle, Limiter, Now, Seed, Target};
use cortex_m_rt::entry;
// Linked for its critical-section implementation (single core, interrupts off).
use cortex_m as _;
use panic_halt as _;

/// 256 cells: 4 KiB of RAM, room for about 200 keys on one-rule policies.
static CELLS: [Cell; 256] = [const { Cell::new() }; 256];

#[entry]
fn main() -> ! {
    let limiter = Limiter::new(Config::documented(), &CELLS[..], Seed([0x1234, 0x5678]));
    let mut ticks: u64 = 1_780_423_178_274_000_000;
    let mut out = [0u8; 256];
    loop {
        // A real firmware reads its timer and the request's key here.
        let key = core::hint::black_box(b"device-7");
        let route = core::hint::black_box("/v1/messages");
        if let Ok(d) = limiter.check(key, Target::Route(route), 1, Now::same(ticks)) {
            let policy = limiter.policy(d.policy);
            let _ = write_to_slice(&mut out, |w| {
                d.write_headers(policy, HeaderStyle::XRateLimit, w)?;
                d.write_body(w)
            });
            core::hint::black_box(&out);
        }
        ticks = ticks.wrapping_add(core::hint::black_box(100_000_000));
    }
}
