//! The atomics the table uses, swapped for loom's models under `cfg(loom)`.
//!
//! loom has no 128-bit atomic and its constructors are not `const`, so the loom build
//! models a cell word as a mutex-guarded `u128`: the compare-and-swap protocol on top of
//! it is what the models check.

#[cfg(not(loom))]
pub(crate) use portable_atomic::{AtomicU128, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use self::loom_u128::AtomicU128;

#[cfg(loom)]
mod loom_u128 {
    use super::Ordering;

    /// A 128-bit atomic modelled by loom as a mutex around the value.
    #[derive(Debug)]
    pub(crate) struct AtomicU128(loom::sync::Mutex<u128>);

    impl AtomicU128 {
        pub(crate) fn new(value: u128) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn load(&self, _order: Ordering) -> u128 {
            *self.0.lock().unwrap()
        }

        pub(crate) fn compare_exchange(
            &self,
            current: u128,
            new: u128,
            _success: Ordering,
            _failure: Ordering,
        ) -> Result<u128, u128> {
            let mut guard = self.0.lock().unwrap();
            if *guard == current {
                *guard = new;
                Ok(current)
            } else {
                Err(*guard)
            }
        }
    }
}
