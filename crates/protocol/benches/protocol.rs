//! Criterion benchmarks of the protocol hot paths. Filled in below.

fn main() {}
