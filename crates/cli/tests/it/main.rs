//! Integration tests of the `pvectl` binary.
