//! Workspace end-to-end tests live in `tests/it/`: one test binary with a module per area.
//!
//! - `artifacts`: the generated files of every schema tag agree with the schemas and each other.
//! - `raw_http`: the mock over real sockets, driven by a plain HTTP client the way curl or
//!   proxmoxer would: login and CSRF, API tokens, guest CRUD, tasks, validation errors, 501s.
//! - `sdk_typed`: the same server driven by the SDK's generated typed API.
//! - `session`: the plain HTTP client session that `raw_http` and `full_flow` share.
//! - `full_flow`: one client's whole session, from login to cleanup, with the cluster view
//!   checked at every step.
//!
//! The schema tag under test for server tests comes from `PROXMOX_MOCK_SCHEMA_VERSION`
//! (default: `latest`), so CI runs the suite once per tag.
