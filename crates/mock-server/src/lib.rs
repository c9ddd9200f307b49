//! A fast, stateful mock of the Proxmox VE API, driven by the generated route metadata.
//!
//! Every operation of the selected schema tag (`generated/<tag>/route_metadata.json`, embedded)
//! answers under `/api2/json` with Proxmox's validation, error texts, authentication and worker
//! tasks, on state kept in SQLite (WAL) or memory.
//!
//! ```no_run
//! # async fn demo() -> Result<(), mock_server::Error> {
//! let server = mock_server::MockServer::builder().schema("9.0").spawn().await?;
//! println!("{}", server.base_url()); // http://127.0.0.1:PORT/api2/json
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
//!
//! Layout:
//! - [`server`]: builder, handle, `run(listener, shutdown)`, TLS.
//! - [`app`]: router, request pipeline, `/_mock` admin endpoints.
//! - [`api`]: the compiled tag: one path matcher, method table, precompiled patterns.
//! - [`validate`]: coercion and validation with Proxmox's messages.
//! - [`engine`] and [`views`]: generic semantics (collections, items, config, actions, tasks).
//! - [`domain`]: Proxmox semantics for guests, disks, snapshots, storage, pools, backups, tasks.
//! - [`generate`]: deterministic plausible values.
//! - [`store`]: the state store (SQLite WAL or memory).
//! - [`auth`]: tickets, CSRF tokens, API tokens.
//! - [`access`]: users, groups, roles, ACLs, permission checks, TOTP second factors.
//! - [`simulation`]: task durations, injected faults (latency, failing tasks, locks, offline
//!   nodes) and seed profiles (`small`, `large`).
//! - [`seed`]: the default fixture and fixture files.
//! - [`error`]: the library `Error` and the request `AppError`.

pub mod access;
pub mod api;
pub mod app;
pub mod auth;
pub mod domain;
mod embedded;
pub mod engine;
pub mod error;
pub mod generate;
pub mod seed;
pub mod server;
pub mod simulation;
pub mod store;
pub mod validate;
pub mod views;

#[cfg(test)]
mod testing;

pub use app::{AppState, Fault, app};
pub use error::{AppError, Error};
pub use seed::Fixture;
pub use server::{MockServer, MockServerBuilder, MockServerHandle, TlsSource, run};
pub use store::Store;
