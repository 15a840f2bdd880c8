//! An API rate limiter core: `#![no_std]`, no allocation, lock-free where the target
//! has native 128-bit compare-and-swap.
//!
//! It answers the contract of `SEMANTICS.md` to the byte: GCRA burst rules and the
//! approximated rolling window, policies of up to four rules, a fixed table of 16-byte
//! cells in memory the caller provides, and the `X-RateLimit-*` headers and 429 body
//! written into caller buffers. Every binding (Python, Node, C) runs this crate, so the
//! same request history gives the same bytes everywhere.
//!
//! The core never reads a clock: every call takes a [`Now`] with the caller's monotonic
//! and wall-clock nanoseconds.
//!
//! # Concurrency
//!
//! A key's rule lives in one [`Cell`]; deciding reads it, computes the new state with a
//! pure function ([`Rule::decide`]), and stores it with a compare-and-swap on the whole
//! cell, retrying on a lost race, so no admitted request is lost or counted twice. A
//! policy of several rules stores its rules one after another (windows first) and takes
//! back what it stored when a later rule loses a race and denies; a concurrent request
//! may meanwhile see the tentative count and be denied (never wrongly admitted). One
//! corner stays: with two or more GCRA rules in one policy, a take-back that races a
//! request arriving after the bucket fully drained removes up to `cost * T` from that
//! request's backlog.
//!
//! # Example
//!
//! ```
//! use aisoule_ratelimit::{Cell, Config, HeaderStyle, Limiter, Now, Seed, Target};
//!
//! let cells: Vec<Cell> = (0..4096).map(|_| Cell::new()).collect();
//! let limiter = Limiter::new(Config::documented(), cells, Seed([7, 11]));
//! let now = Now::same(1_780_423_178_274_000_000);
//! for _ in 0..5 {
//!     assert!(limiter.check(b"k", Target::Route("/v1/messages"), 1, now)?.allowed);
//! }
//! let d = limiter.check(b"k", Target::Route("/v1/messages"), 1, now)?;
//! assert_eq!(d.status(), 429);
//! let mut headers = String::new();
//! d.write_headers(limiter.policy(d.policy), HeaderStyle::XRateLimit, &mut headers).unwrap();
//! assert!(headers.ends_with("Retry-After: 1\r\n"));
//! # Ok::<(), aisoule_ratelimit::CheckError>(())
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "json")]
pub mod json;
mod limiter;
mod policy;
mod rule;
mod sync;
mod table;
mod text;

pub use limiter::{CheckError, Decision, FullTableMode, Limiter, Now, Seed, Stats, Target};
pub use policy::{
    Config, ConfigError, Policy, PolicyId, Route, RuleSpec, DOCUMENTED_DEFAULT_POLICY, DOCUMENTED_POLICIES,
    DOCUMENTED_ROUTES, MAX_NAME_LEN, MAX_POLICIES, MAX_PREFIX_LEN, MAX_ROUTES, MAX_RULES,
};
pub use rule::{
    Algorithm, Figures, Outcome, Rule, RuleError, MAX_GCRA_SPAN_NS, MAX_LIMIT, MAX_PERIOD_NS, MIN_PERIOD_NS,
    NS_PER_MS, NS_PER_S,
};
pub use table::{Cell, CELL_SIZE, PROBE_LIMIT};
pub use text::{
    write_to_slice, Decimal, HeaderStyle, SliceWriter, BODY_CONTENT_TYPE, BODY_PREFIX, BODY_SUFFIX,
    MAX_HEADER_VALUE_LEN,
};

/// The root README's Rust code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
