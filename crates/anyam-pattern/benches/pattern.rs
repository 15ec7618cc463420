//! Benchmarks (placeholder until the matcher lands).
fn main() {}
