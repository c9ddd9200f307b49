//! Workspace end-to-end tests live in `tests/it/`: one test binary with a module per area.
//!
//! - `artifacts`: the generated files of every schema tag agree with the schemas and each other.
//!
//! The schema tag under test for server tests comes from `PROXMOX_MOCK_SCHEMA_VERSION`
//! (default: `latest`), so CI runs the suite once per tag.
