//! Audit log throughput benchmarks (filled in below).

fn main() {}
