//! `mock-server` binary.
fn main() {}
