//! The response text: headers and the 429 body, written into caller buffers.

use core::fmt::{self, Write};

use crate::limiter::Decision;
use crate::policy::Policy;
use crate::rule::NS_PER_S;

/// The 429 body before the number (SEMANTICS.md 4).
pub const BODY_PREFIX: &str = r#"{"success":false,"error":{"code":"rate_limit_exceeded","message":"Too many requests. Please wait before retrying.","retry_after_seconds":"#;
/// The 429 body after the number.
pub const BODY_SUFFIX: &str = "}}";
/// The `Content-Type` of the 429 body.
pub const BODY_CONTENT_TYPE: &str = "application/json";

/// Which rate-limit headers to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeaderStyle {
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (the documented
    /// set, the default).
    #[default]
    XRateLimit,
    /// `RateLimit-Policy` (every rule of the policy) and `RateLimit` (the binding rule),
    /// as draft-ietf-httpapi-ratelimit-headers-10 has them.
    Ietf,
    /// Both sets, the documented one first.
    Both,
}

/// The most bytes one header value takes (a `RateLimit-Policy` of four rules).
pub const MAX_HEADER_VALUE_LEN: usize = 256;

/// A `u64` in plain decimal, formatted without `core::fmt`.
#[derive(Clone, Copy)]
pub struct Decimal {
    buf: [u8; 20],
    start: u8,
}

impl Decimal {
    /// `v` in decimal.
    pub fn new(mut v: u64) -> Decimal {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Decimal { buf, start: i as u8 }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits were written from `start` on.
        core::str::from_utf8(&self.buf[self.start as usize..]).unwrap_or("0")
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`fmt::Write`] over a byte buffer that never writes past its end and counts the
/// bytes a large enough buffer would have received (snprintf-style).
#[derive(Debug)]
pub struct SliceWriter<'a> {
    buf: &'a mut [u8],
    needed: usize,
}

impl<'a> SliceWriter<'a> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceWriter { buf, needed: 0 }
    }

    /// Bytes the whole text needs.
    pub fn needed(&self) -> usize {
        self.needed
    }

    /// Bytes written into the buffer (at most its length).
    pub fn written(&self) -> usize {
        self.needed.min(self.buf.len())
    }

    /// Whether the text did not fit.
    pub fn overflowed(&self) -> bool {
        self.needed > self.buf.len()
    }
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = self.needed.min(self.buf.len());
        let room = self.buf.len() - start;
        let n = s.len().min(room);
        self.buf[start..start + n].copy_from_slice(&s.as_bytes()[..n]);
        self.needed = self.needed.saturating_add(s.len());
        Ok(())
    }
}

/// Writes `f`'s text into `buf`, returning the bytes written, or `Err(needed)` (nothing
/// usable written) when `buf` is too short.
///
/// # Errors
///
/// `Err(needed)` when the text needs more than `buf.len()` bytes.
pub fn write_to_slice(
    buf: &mut [u8],
    f: impl FnOnce(&mut SliceWriter<'_>) -> fmt::Result,
) -> Result<usize, usize> {
    let mut w = SliceWriter::new(buf);
    // SliceWriter never fails; a formatting error from `f` is a bug of `f`'s.
    let _ = f(&mut w);
    if w.overflowed() {
        Err(w.needed())
    } else {
        Ok(w.needed())
    }
}

/// A small stack buffer for one header value.
struct ValueBuf {
    buf: [u8; MAX_HEADER_VALUE_LEN],
    len: usize,
}

impl ValueBuf {
    fn new() -> Self {
        ValueBuf {
            buf: [0; MAX_HEADER_VALUE_LEN],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for ValueBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The item name of rule `r` in the IETF headers: the policy's name, or `name.r` when
/// the policy has several rules.
fn write_item(out: &mut impl Write, policy: &Policy, r: usize) -> fmt::Result {
    out.write_char('"')?;
    out.write_str(policy.name())?;
    if policy.rules().len() > 1 {
        out.write_char('.')?;
        out.write_str(Decimal::new(r as u64).as_str())?;
    }
    out.write_char('"')
}

impl Decision {
    /// Calls `f(name, value)` for every header of this decision, in the contract's
    /// order and case: the rate-limit headers of `style`, then `Retry-After` when
    /// denied. `policy` must be the decision's (`limiter.policy(d.policy)`).
    ///
    /// # Errors
    ///
    /// The first error `f` returns.
    pub fn for_each_header<E>(
        &self,
        policy: &Policy,
        style: HeaderStyle,
        mut f: impl FnMut(&'static str, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        if style != HeaderStyle::Ietf {
            f("X-RateLimit-Limit", Decimal::new(self.limit).as_str())?;
            f("X-RateLimit-Remaining", Decimal::new(self.remaining).as_str())?;
            f("X-RateLimit-Reset", Decimal::new(self.reset).as_str())?;
        }
        if style != HeaderStyle::XRateLimit {
            let mut v = ValueBuf::new();
            for (r, rule) in policy.rules().iter().enumerate() {
                // Names, limits and periods are bounded so four items fit the buffer.
                let _ = (|| -> fmt::Result {
                    if r > 0 {
                        v.write_char(',')?;
                    }
                    write_item(&mut v, policy, r)?;
                    v.write_str(";q=")?;
                    v.write_str(Decimal::new(rule.burst()).as_str())?;
                    v.write_str(";w=")?;
                    v.write_str(Decimal::new(rule.period_ns().div_ceil(NS_PER_S)).as_str())
                })();
            }
            f("RateLimit-Policy", v.as_str())?;
            let mut v = ValueBuf::new();
            let _ = (|| -> fmt::Result {
                write_item(&mut v, policy, self.binding_rule as usize)?;
                v.write_str(";r=")?;
                v.write_str(Decimal::new(self.remaining).as_str())?;
                v.write_str(";t=")?;
                v.write_str(Decimal::new(self.reset_after_ns.div_ceil(NS_PER_S)).as_str())
            })();
            f("RateLimit", v.as_str())?;
        }
        if !self.allowed {
            f("Retry-After", Decimal::new(self.retry_after_seconds).as_str())?;
        }
        Ok(())
    }

    /// Writes the headers as `Name: value\r\n` lines.
    ///
    /// # Errors
    ///
    /// The writer's error.
    pub fn write_headers(&self, policy: &Policy, style: HeaderStyle, out: &mut impl Write) -> fmt::Result {
        self.for_each_header(policy, style, |name, value| {
            out.write_str(name)?;
            out.write_str(": ")?;
            out.write_str(value)?;
            out.write_str("\r\n")
        })
    }

    /// Writes the exact 429 body when denied; writes nothing when allowed.
    ///
    /// # Errors
    ///
    /// The writer's error.
    pub fn write_body(&self, out: &mut impl Write) -> fmt::Result {
        if self.allowed {
            return Ok(());
        }
        out.write_str(BODY_PREFIX)?;
        out.write_str(Decimal::new(self.retry_after_seconds).as_str())?;
        out.write_str(BODY_SUFFIX)
    }

    /// The length of [`Decision::write_body`]'s text (0 when allowed).
    pub fn body_len(&self) -> usize {
        if self.allowed {
            0
        } else {
            BODY_PREFIX.len() + Decimal::new(self.retry_after_seconds).as_str().len() + BODY_SUFFIX.len()
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;

    use super::*;
    use crate::policy::{Config, PolicyId};

    fn decision(allowed: bool, retry_after_seconds: u64) -> Decision {
        Decision {
            allowed,
            limit: 300,
            remaining: 7,
            reset: 1_780_423_239,
            reset_after_ns: 1_500_000_001,
            retry_after_seconds,
            retry_after_ns: retry_after_seconds.saturating_mul(NS_PER_S),
            policy: PolicyId(1),
            binding_rule: 1,
            table_full: false,
        }
    }

    fn headers(d: &Decision, style: HeaderStyle) -> String {
        let c = Config::documented();
        let mut s = String::new();
        d.write_headers(c.policy(d.policy), style, &mut s).unwrap();
        s
    }

    #[test]
    fn header_bytes() {
        assert_eq!(
            headers(&decision(true, 0), HeaderStyle::XRateLimit),
            "X-RateLimit-Limit: 300\r\nX-RateLimit-Remaining: 7\r\nX-RateLimit-Reset: 1780423239\r\n"
        );
        assert_eq!(
            headers(&decision(false, 15), HeaderStyle::default()),
            "X-RateLimit-Limit: 300\r\nX-RateLimit-Remaining: 7\r\nX-RateLimit-Reset: 1780423239\r\nRetry-After: 15\r\n"
        );
        assert_eq!(
            headers(&decision(false, 2), HeaderStyle::Ietf),
            "RateLimit-Policy: \"messaging.0\";q=300;w=60,\"messaging.1\";q=5;w=1\r\n\
             RateLimit: \"messaging.1\";r=7;t=2\r\nRetry-After: 2\r\n"
        );
        let both = headers(&decision(true, 0), HeaderStyle::Both);
        assert!(both.starts_with("X-RateLimit-Limit: 300\r\n"));
        assert!(both.ends_with("RateLimit: \"messaging.1\";r=7;t=2\r\n"));
        assert_eq!(both.lines().count(), 5);
        // A one-rule policy's item is its bare name.
        let mut d = decision(true, 0);
        d.policy = PolicyId(0);
        d.binding_rule = 0;
        assert!(headers(&d, HeaderStyle::Ietf).contains("RateLimit: \"standard\";r=7;t=2\r\n"));
    }

    #[test]
    fn for_each_header_order_and_early_error() {
        let c = Config::documented();
        let d = decision(false, 3);
        let mut names = std::vec::Vec::new();
        d.for_each_header(c.policy(d.policy), HeaderStyle::XRateLimit, |n, _| {
            names.push(n);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(
            names,
            [
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
                "Retry-After"
            ]
        );
        let mut calls = 0;
        let r = d.for_each_header(c.policy(d.policy), HeaderStyle::Both, |_, _| {
            calls += 1;
            if calls == 2 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!((r, calls), (Err("stop"), 2));
    }

    #[test]
    fn body_bytes() {
        let mut s = String::new();
        decision(false, 15).write_body(&mut s).unwrap();
        assert_eq!(
            s,
            r#"{"success":false,"error":{"code":"rate_limit_exceeded","message":"Too many requests. Please wait before retrying.","retry_after_seconds":15}}"#
        );
        assert_eq!(decision(false, 15).body_len(), s.len());
        let mut s = String::new();
        decision(true, 0).write_body(&mut s).unwrap();
        assert_eq!((s.as_str(), decision(true, 0).body_len()), ("", 0));
        let d = decision(false, u64::MAX);
        let mut s = String::new();
        d.write_body(&mut s).unwrap();
        assert!(s.ends_with(":18446744073709551615}}"));
        assert_eq!(d.body_len(), s.len());
    }

    #[test]
    fn decimal() {
        for (v, s) in [
            (0u64, "0"),
            (9, "9"),
            (10, "10"),
            (1_000_000_007, "1000000007"),
            (u64::MAX, "18446744073709551615"),
        ] {
            assert_eq!(Decimal::new(v).as_str(), s);
            assert_eq!(
                std::format!("{}|{:?}", Decimal::new(v), Decimal::new(v)),
                std::format!("{s}|{s}")
            );
        }
    }

    #[test]
    fn slice_writer_truncates_and_counts() {
        let mut buf = [b'#'; 8];
        let mut w = SliceWriter::new(&mut buf);
        w.write_str("hello").unwrap();
        assert_eq!((w.needed(), w.written(), w.overflowed()), (5, 5, false));
        w.write_str(", world").unwrap();
        assert_eq!((w.needed(), w.written(), w.overflowed()), (12, 8, true));
        w.write_str("!").unwrap();
        assert_eq!(w.needed(), 13);
        assert_eq!(&buf, b"hello, w");
        let mut empty: [u8; 0] = [];
        let mut w = SliceWriter::new(&mut empty);
        w.write_str("x").unwrap();
        assert_eq!((w.needed(), w.written(), w.overflowed()), (1, 0, true));
    }

    #[test]
    fn write_to_slice_fits_or_says_how_much() {
        let d = decision(false, 15);
        let mut body = [0u8; 200];
        let n = write_to_slice(&mut body, |w| d.write_body(w)).unwrap();
        assert_eq!(n, d.body_len());
        assert!(body[..n].starts_with(BODY_PREFIX.as_bytes()));
        assert!(body[..n].ends_with(b"15}}"));
        let mut short = [0u8; 10];
        assert_eq!(write_to_slice(&mut short, |w| d.write_body(w)), Err(d.body_len()));
        assert_eq!(&short, &BODY_PREFIX.as_bytes()[..10]);
        let mut exact = std::vec![0u8; d.body_len()];
        assert_eq!(write_to_slice(&mut exact, |w| d.write_body(w)), Ok(d.body_len()));
        assert_eq!(
            write_to_slice(&mut [], |w| decision(true, 0).write_body(w)),
            Ok(0)
        );
    }

    #[test]
    fn longest_ietf_policy_fits_its_buffer() {
        use crate::policy::Policy;
        use crate::rule::{Rule, MAX_LIMIT, MAX_PERIOD_NS};
        let r = Rule::window(1, MAX_PERIOD_NS).unwrap();
        let g = Rule::gcra(MAX_LIMIT, MAX_PERIOD_NS, MAX_LIMIT).unwrap();
        let name = "n".repeat(32);
        let p = Policy::new(&name, &[g, r, g, r]).unwrap();
        let mut d = decision(false, u64::MAX);
        d.remaining = u64::MAX;
        d.reset_after_ns = u64::MAX;
        d.binding_rule = 3;
        let mut s = String::new();
        d.write_headers(&p, HeaderStyle::Ietf, &mut s).unwrap();
        let item = std::format!("\"{name}.0\";q=1000000000;w=3153600000");
        assert!(s.starts_with(&std::format!("RateLimit-Policy: {item},")), "{s}");
        assert!(
            s.contains(&std::format!("\"{name}.3\";q=1;w=3153600000\r\n")),
            "{s}"
        );
        assert!(
            s.contains(&std::format!(
                "RateLimit: \"{name}.3\";r=18446744073709551615;t=18446744074\r\n"
            )),
            "{s}"
        );
    }
}
