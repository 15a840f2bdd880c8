//! The panic boundary: no panic crosses into C.
//!
//! Every `extern "C"` function wraps its body in [`ffi_panic_boundary!`], which runs it
//! under `catch_unwind` and turns a panic into the function's [`PanicValue`]:
//! `ASRL_RESULT_PANIC` for functions returning an [`asrl_result`], a neutral value for
//! the few that return something else. The body is a closure, so `return` inside it
//! returns the function's value.

use crate::result::asrl_result;

/// What an entry point returns when its body panicked.
pub(crate) trait PanicValue {
    /// The value for a caught panic.
    fn on_panic() -> Self;
}

impl PanicValue for asrl_result {
    fn on_panic() -> Self {
        asrl_result::Panic
    }
}

impl PanicValue for u64 {
    fn on_panic() -> Self {
        0
    }
}

impl PanicValue for usize {
    fn on_panic() -> Self {
        0
    }
}

impl PanicValue for () {
    fn on_panic() -> Self {}
}

/// Runs the body under `catch_unwind`; a panic becomes [`PanicValue::on_panic`].
macro_rules! ffi_panic_boundary {
    ($($body:tt)*) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| { $($body)* })) {
            Ok(value) => value,
            Err(_) => $crate::panic::PanicValue::on_panic(),
        }
    };
}

pub(crate) use ffi_panic_boundary;
