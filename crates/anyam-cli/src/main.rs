//! The `anyam` command: run a node and administer it.
fn main() {}
