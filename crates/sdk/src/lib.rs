//! Async Rust client for the Proxmox VE API.
//!
//! Every operation of the Proxmox VE API has a typed method: parameters and replies are Rust
//! structs (property strings such as `net0` or `scsi0` included), string enums are Rust enums, and
//! calls that start a worker task can be waited on. Underneath, the client authenticates (API
//! token or password with ticket renewal), encodes parameters the way Proxmox expects, unwraps the
//! `{"data": …}` envelope, maps errors and retries idempotent requests. Any path of any schema
//! version can also be called dynamically ([`Client::get`] and friends).
//!
//! # Typed API
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use proxmox_sdk::Client;
//! use proxmox_sdk::shared_types::nodes::{
//!     MemoryConfig, NodesQemuCreateVmParams, QemuNetConfig, QemuNetModel, ScsiConfig,
//! };
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // PROXMOX_API_URL and PROXMOX_API_TOKEN_ID/_SECRET (or _USER/_PASSWORD), see `from_env`.
//! let client = Client::from_env()?;
//! let qemu = client.nodes().node("pve1").qemu();
//! for vm in qemu.list().await? {
//!     println!("{} {:?} {}", vm.vmid, vm.name, vm.status);
//! }
//!
//! // Required parameters go through `new`, optional ones are set beside it.
//! let params = NodesQemuCreateVmParams {
//!     name: Some("web".to_owned()),
//!     cores: Some(2),
//!     memory: Some(MemoryConfig::new(2048)),
//!     net: [(0, QemuNetConfig::new(QemuNetModel::Virtio))].into(),
//!     scsi: [(0, ScsiConfig::new("local-lvm:32"))].into(),
//!     ..NodesQemuCreateVmParams::new(120)
//! };
//! // A call that starts a worker task can be waited on: `Ok` once it ended with `OK` or
//! // `WARNINGS: n`, `Error::TaskFailed` with the exit status and the log tail otherwise.
//! qemu.create(&params).wait(Duration::from_secs(300)).await?;
//!
//! let vm = qemu.vmid(120);
//! let task = vm.status().start().task().await?;
//! let mut log = task.follow();
//! while let Some(line) = log.next().await {
//!     println!("{}", line?.t);
//! }
//! # Ok(()) }
//! ```
//!
//! How the typed API is shaped:
//!
//! - **Handles follow the path.** `client.nodes().node("pve1").qemu().vmid(100)` is the handle of
//!   `/nodes/pve1/qemu/100`. A handle owns a clone of the [`Client`] (an `Arc` inside, cheap to
//!   clone), so handles and the calls they make are `'static + Send + Sync`: store them in a
//!   struct, move them into `tokio::spawn`.
//! - **One verb scheme.** On a handle, `GET` is `list` on a collection and `get` elsewhere, `POST`
//!   on a collection is `create`, `PUT` is `update`, `DELETE` is `delete`. An action is a method
//!   named after it on its parent: `vm.status().start()`, `vm.migrate(..)`, `vm.snapshot()
//!   .snapname("s1").rollback()`. A `POST` elsewhere is `create` when it creates something (an
//!   API token) and otherwise takes Proxmox's name for it (`vm.config().update_async()`). No
//!   method is named like a std trait method: cloning a VM is `clone_vm`, so `vm.clone()` is
//!   still [`Clone::clone`].
//! - **Parameters.** Each operation has one method. When a parameter is required, the method
//!   takes the parameter struct, which has no `Default` and is built with `new(required...)`;
//!   optional fields are set beside it with struct update syntax
//!   (`NodesQemuSnapshotParams { description: Some(..), ..NodesQemuSnapshotParams::new("s1") }`).
//!   When every parameter is optional the method takes none, and [`Call::params`] sets them
//!   (`.params(&NodesTasksNodeParams { vmid: Some(100), ..Default::default() })`).
//! - **Calls.** Every method returns a [`Call`]: set `.timeout(..)` or `.max_retries(..)`, then
//!   `.await` it for the reply's `data`. A call that starts a worker task replies with a
//!   [`Upid`] and also has `.wait(timeout)` and `.task()` ([`task`]).
//! - **Types.** Parameters and replies are the `shared_types` models, re-exported as
//!   [`shared_types`]: `<Operation>Params` and the reply's item structs. Unknown enum values decode
//!   as `Other(String)`, unknown property-string keys are kept, and numbers sent as strings
//!   (`"102"`, `"0.00"`) decode as numbers.
//!
//! `docs/sdk.md` in the repository is a cookbook of common tasks.
//!
//! # Dynamic calls
//!
//! ```no_run
//! use proxmox_sdk::{Client, Upid};
//! use serde_json::{Value, json};
//! use std::time::Duration;
//!
//! # async fn demo() -> proxmox_sdk::Result<()> {
//! let client = Client::builder()
//!     .base_url("https://pve.example.com:8006")
//!     .token("root@pam!automation", "5f2a0000-aaaa-bbbb-cccc-123456789abc")
//!     .fingerprint("AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89")
//!     .build()?;
//!
//! // Any path, any `Serialize` parameters, any `DeserializeOwned` answer: for paths of another
//! // schema version, or replies decoded into your own types.
//! let vms: Vec<Value> = client.get(&client.path(["nodes", "pve1", "qemu"]), &()).await?;
//! println!("{} VMs", vms.len());
//! let upid: Upid = client
//!     .post("/nodes/pve1/qemu", &json!({"vmid": 100, "name": "web", "memory": 2048}))
//!     .await?;
//! let outcome = client.task(&upid).wait(Duration::from_secs(300)).await?;
//! println!("{outcome}"); // OK, or WARNINGS: n
//! # Ok(()) }
//! ```
//!
//! # Lists
//!
//! A list call can keep the `total` Proxmox sends next to the items
//! ([`Call::with_total`]), and one that takes `start` and `limit` can be read page by page
//! as a stream ([`Call::paginate`]). Streams ([`Items`]) have `next()` and `try_collect()` of
//! their own, so no `futures` import or `pin!` is needed.
//!
//! ```no_run
//! # async fn demo(client: &proxmox_sdk::Client) -> proxmox_sdk::Result<()> {
//! let mut tasks = client.nodes().node("pve1").tasks().list().paginate(200);
//! while let Some(task) = tasks.next().await {
//!     println!("{}", task?.upid);
//! }
//! # Ok(()) }
//! ```
//!
//! # Testing without a cluster
//!
//! The mock server runs inside a test and hands out a client connected to it, with the
//! `sdk` feature of the `mock-server` crate (a dev-dependency; this crate does not depend on
//! it):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In a `#[tokio::test]`:
//! let (client, _mock) = mock_server::testing::start().await?;
//! let vms = client.nodes().node("pve1").qemu().list().await?;
//! assert!(vms.iter().any(|vm| vm.vmid == 100));
//! # Ok(()) }
//! ```
//!
//! `mock_server::testing::builder()` picks the schema tag, the seed and task durations, and the
//! guard injects faults and resets the state; `docs/sdk.md` has the details.
//!
//! Password logins use [`ClientBuilder::password`]; the client then manages tickets, CSRF tokens
//! and renewal itself (see [`auth`]).
//! [`Client::from_env`] reads the `PROXMOX_API_*` variables listed at [`ClientBuilder::from_env`].
//! With the `blocking` feature, `ClientBuilder::build_blocking` gives a synchronous client.
//!
//! # Layout
//!
//! - `client`: [`Client`] and [`ClientBuilder`]: configuration, the shared `reqwest::Client`,
//!   and [`Client::execute`], through which every request goes.
//! - `request`: [`RequestBuilder`] for per-request options.
//! - `envelope`: the `{"data": …}` envelope, [`Paged`], and turning HTTP answers into errors.
//! - `encode`: parameters (booleans as `0`/`1`, `None` dropped), query strings, JSON bodies,
//!   and [`path`] for percent-encoded API paths.
//! - [`auth`]: API tokens, tickets with single-flight renewal, the login flow.
//! - `tfa`: [`TfaChallenge`] and [`TfaResponse`], the second-factor types.
//! - `secret`: [`SecretString`], which never prints its contents.
//! - [`tls`]: `rustls` on `ring`, CA certificates, fingerprint pinning.
//! - [`error`]: the one [`Error`] type.
//! - [`retry`]: which requests are retried, and the backoff.
//! - [`task`]: [`Task`], waiting for UPIDs ([`TaskOutcome`]), reading and following task logs.
//! - [`stream`]: [`Items`], the stream of task log lines and paged lists, and the list helpers
//!   [`Call::with_total`] and [`Call::paginate`].
//! - `fan_out`: [`Client::fan_out`] and [`Client::for_each_node`].
//! - `env`: [`ClientBuilder::from_env`].
//! - `profile` (feature `profiles`): the YAML config file of connection profiles shared with
//!   `pvectl`, `Client::from_profile` and `Client::from_config`.
//! - `blocking` (feature `blocking`): a synchronous wrapper.
//! - [`generated`]: the typed API generated from the schema by `cargo xtask codegen`; never
//!   edited by hand.
//! - `typed`: [`Call`], the request every typed method returns, sent through [`RequestBuilder`].
//! - `upload`: [`UploadFile`], for the one `multipart/form-data` operation (storage uploads).
//! - `telemetry`: the `tracing` span of each request (named by its operationId in the typed API)
//!   and of each task wait; `otel` (feature `otel`): OpenTelemetry export and `traceparent`
//!   propagation (`docs/observability.md`).
//!
//! # Secrets
//!
//! `Debug` output of [`Client`], [`ClientBuilder`], [`Credentials`], [`Ticket`] and
//! [`TfaChallenge`] never shows a password, token secret, ticket or CSRF token, and neither does
//! any [`Error`].
//!
//! An [`Error::Decode`] quotes the start of a reply it could not decode, except for replies that
//! may carry a secret, where the excerpt is `<redacted>`: every path under `/access`, and every
//! path whose reply schema has a secret property (`ticket`, `password`, `secret`,
//! `CSRFPreventionToken`, `cipassword`, `corosync_authkey`, `encryption-key`, or a new token's
//! `value`). That second list is derived from the schema by `cargo xtask codegen`
//! (`generated/sensitive.rs`): the console proxies (`vncproxy`, `termproxy`, `spiceproxy`,
//! `vncshell`, `spiceshell`), `mtunnel`, webhook endpoints, a VM's `config` and storage
//! definitions with an encryption key.
//!
//! [`ClientBuilder::build`] logs a `tracing` warning when the base URL is plain `http://` to a
//! host that is not loopback: passwords, tickets and token secrets would travel in clear text.

pub mod auth;
#[cfg(feature = "blocking")]
pub mod blocking;
mod client;
mod encode;
mod env;
mod envelope;
pub mod error;
mod fan_out;
#[cfg(feature = "otel")]
pub mod otel;
#[rustfmt::skip] // prettyplease output, checked by `cargo xtask codegen --check`
pub mod generated;
#[cfg(feature = "profiles")]
pub mod profile;
mod request;
pub mod retry;
mod secret;
pub mod stream;
pub mod task;
mod telemetry;
mod tfa;
pub mod tls;
mod typed;
mod upload;

pub use reqwest;
pub use shared_types;
pub use shared_types::Upid;

pub use crate::auth::{Credentials, Ticket};
pub use crate::client::{
    Client, ClientBuilder, DEFAULT_CONNECT_TIMEOUT, DEFAULT_PORT, DEFAULT_TIMEOUT,
};
pub use crate::encode::path;
pub use crate::envelope::Paged;
pub use crate::error::{ApiError, AuthError, Error, Result, TaskFailedError};
pub use crate::request::RequestBuilder;
pub use crate::retry::RetryPolicy;
pub use crate::secret::SecretString;
pub use crate::stream::Items;
pub use crate::task::{Task, TaskLogLine, TaskOutcome, TaskPolling, TaskStatus};
pub use crate::tfa::{TfaChallenge, TfaResponse};
pub use crate::tls::Fingerprint;
pub use crate::typed::{Call, NoParams};
pub use crate::upload::UploadFile;
