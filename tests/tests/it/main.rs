//! End-to-end tests of the workspace (one binary; see `tests/src/lib.rs`).
#![allow(clippy::unwrap_used, missing_docs)]

mod artifacts;
