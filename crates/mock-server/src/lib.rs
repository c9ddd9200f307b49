//! A fast, stateful mock of the Proxmox VE API, driven by the generated route metadata.
//!
//! Every operation of the selected schema tag (`generated/<tag>/route_metadata.json` of this crate, embedded)
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
//! The public surface is the builder and handle ([`MockServer`], [`MockServerHandle`]),
//! [`preload`] (compiles a tag's API ahead of the first server, on a thread of its own), the
//! store choice ([`Store`], [`Synchronous`]), the seed fixture types ([`Fixture`] and its parts), the simulation
//! controls ([`FaultSpec`], [`TaskDurations`], [`Profile`]), [`Error`], and with the feature
//! `sdk` the `testing` module. Everything else is
//! internal; `docs/ARCHITECTURE.md` walks a request through it. The modules:
//!
//! - `server`: builder, handle, `run(listener, shutdown)`, TLS.
//! - `http`: the only axum-aware code: router, the `/api2/json` pipeline, bodies,
//!   authentication, error rendering, `/_mock` control endpoints.
//! - [`embedded`]: the embedded artifacts of every tag (generated table, also read by `pvectl`).
//! - `api`: the compiled tag: one path matcher, method table, precompiled patterns.
//! - `schema`: coercion and validation with Proxmox's messages; generated values.
//! - `ops`: the route table and the handlers by Proxmox domain (guests, disks, snapshots,
//!   agent, storage, pools, backups, tasks, nodes, access), and the one place that runs a call.
//! - `access`: policy: users, groups, roles, ACLs, permission checks, list filtering, TOTP.
//! - `store`: the state store (SQLite WAL or memory) and its one write path.
//! - `simulation`: task durations, injected faults.
//! - `seed`: the default fixture, fixture files, the access part of fixtures, seed profiles.
//! - `state`: what one instance shares between requests.
//! - [`telemetry`]: the counters behind `GET /metrics` and, with the feature `otel`, the
//!   OpenTelemetry export of the request spans (`docs/observability.md`).
//! - `upstream`: real mode (`--upstream`): forwarding to a live Proxmox VE, validating the
//!   traffic, the discrepancy report, recording a fixture.
//! - `testing` (feature `sdk`): an in-process mock and a connected `proxmox_sdk::Client` from
//!   one call, for testing code that uses the SDK.

mod access;
mod api;
mod auth;
pub mod embedded;
mod error;
mod http;
mod ops;
mod schema;
mod seed;
mod server;
mod simulation;
mod state;
mod store;
pub mod telemetry;
mod upstream;

#[cfg(test)]
mod test_api;
#[cfg(feature = "sdk")]
pub mod testing;

pub use access::totp::Totp;
pub use api::{LATEST, TAGS, preload};
pub use error::Error;
pub use seed::access::{AclSeed, GroupSeed, TokenSeed};
pub use seed::profile::Profile;
pub use seed::{Fixture, GuestSeed, NodeSeed, StorageSeed, UserSeed};
pub use server::{
    MockServer, MockServerBuilder, MockServerHandle, PreparedServer, TlsSource, resolve_tag,
};
pub use simulation::{FaultKind, FaultSpec, TaskDurations};
pub use store::{Store, StoreError, Synchronous};
pub use upstream::{DEFAULT_UPSTREAM_TIMEOUT, UpstreamConfig, UpstreamTls};
