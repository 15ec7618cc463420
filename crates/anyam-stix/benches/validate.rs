//! Criterion benchmark of validation throughput (placeholder until the mix is written).
fn main() {}
