//! Benchmarks of `Limiter::check` (placeholder until the benchmark lands).

fn main() {}
