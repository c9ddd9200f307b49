//! Starting and stopping: [`MockServer::builder`], [`MockServerHandle`], `run` and TLS.
//!
//! `run` takes bound listeners and a shutdown future (tests bind `127.0.0.1:0`). Each listener
//! has one accept loop (`serve`): plain HTTP, or HTTPS over `tokio-rustls`; every connection's
//! bytes go through `http::Wire` (pveproxy's request-head rules and limits, and its head
//! timeout) into hyper's HTTP/1 connection, whose service is `http::WireService`, with
//! `hyper_util`'s graceful-shutdown watcher. On shutdown the listeners stop accepting, in-flight
//! requests finish (bounded by [`DRAIN_TIMEOUT`]) and the store is closed, which checkpoints the
//! SQLite WAL.
//!
//! The self-signed certificate is generated with rcgen on first start and kept beside the state
//! file (`cert.pem`, `key.pem`), so clients can pin it across restarts.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use route_metadata::RouteMetadata;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tower_http::catch_panic::CatchPanicLayer;

use crate::api::{self, Api};
use crate::auth::{DEFAULT_TICKET_LIFETIME, Signer};
use crate::error::Error;
use crate::http::{ApiService, Wire, WireService, api_service, app, panic_response};
use crate::ops::routes::Routes;
use crate::seed::Fixture;
use crate::seed::profile::Profile;
use crate::simulation::TaskDurations;
use crate::state::{AppState, Settings};
use crate::store::{Change, StateStore, Store, Synchronous};
use crate::upstream::Upstream;

/// How long a connection may take to complete its TLS handshake and to send a request's headers.
pub(crate) const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown waits for in-flight requests.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// Generate a self-signed one (kept in this directory when given).
    SelfSigned(Option<PathBuf>),
    /// PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
}

/// Entry point of the library API.
#[derive(Debug)]
pub struct MockServer;

impl MockServer {
    /// A builder with the defaults of a test instance: latest schema, memory store, auth on,
    /// root password `secret`, both listeners on `127.0.0.1:0`.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }
}

/// Configures and starts a mock server.
#[derive(Clone)]
pub struct MockServerBuilder {
    schema: String,
    store: Store,
    seed: Option<Fixture>,
    auth: bool,
    root_password: String,
    listen: SocketAddr,
    http_listen: SocketAddr,
    tls: TlsSource,
    task_durations: TaskDurations,
    ticket_lifetime: Duration,
    metadata: Option<RouteMetadata>,
    control_token: Option<String>,
    allowed_hosts: Vec<String>,
    task_history: usize,
    header_timeout: Duration,
    auth_failure_delay: Duration,
    synchronous: Synchronous,
    upstream: Option<crate::upstream::UpstreamConfig>,
}

/// Everything but the secrets (root password, control token).
impl std::fmt::Debug for MockServerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServerBuilder")
            .field("schema", &self.schema)
            .field("store", &self.store)
            .field("auth", &self.auth)
            .field("listen", &self.listen)
            .field("http_listen", &self.http_listen)
            .field("tls", &self.tls)
            .field("task_durations", &self.task_durations)
            .field("task_history", &self.task_history)
            .field("ticket_lifetime", &self.ticket_lifetime)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("header_timeout", &self.header_timeout)
            .field("auth_failure_delay", &self.auth_failure_delay)
            .field("synchronous", &self.synchronous)
            .finish_non_exhaustive()
    }
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        MockServerBuilder {
            schema: "latest".to_owned(),
            store: Store::Memory,
            seed: None,
            auth: true,
            root_password: crate::auth::DEFAULT_PASSWORD.to_owned(),
            listen: loopback,
            http_listen: loopback,
            tls: TlsSource::SelfSigned(None),
            task_durations: TaskDurations::default(),
            ticket_lifetime: DEFAULT_TICKET_LIFETIME,
            metadata: None,
            control_token: None,
            allowed_hosts: Vec::new(),
            task_history: crate::ops::tasks::DEFAULT_TASK_HISTORY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            auth_failure_delay: Duration::ZERO,
            synchronous: Synchronous::Normal,
            upstream: None,
        }
    }
}

impl MockServerBuilder {
    /// Schema tag: `latest`, `9.1`, `9.0` or `8.4`.
    pub fn schema(mut self, tag: impl Into<String>) -> Self {
        self.schema = tag.into();
        self
    }

    /// State backend.
    pub fn store(mut self, store: Store) -> Self {
        self.store = store;
        self
    }

    /// Replaces the default seed fixture.
    pub fn seed(mut self, fixture: Fixture) -> Self {
        self.seed = Some(fixture);
        self
    }

    /// Whether requests must authenticate.
    pub fn auth(mut self, enabled: bool) -> Self {
        self.auth = enabled;
        self
    }

    /// Password of `root@pam`.
    pub fn root_password(mut self, password: impl Into<String>) -> Self {
        self.root_password = password.into();
        self
    }

    /// HTTPS listen address.
    pub fn listen(mut self, address: SocketAddr) -> Self {
        self.listen = address;
        self
    }

    /// Plain HTTP listen address.
    pub fn http_listen(mut self, address: SocketAddr) -> Self {
        self.http_listen = address;
        self
    }

    /// TLS certificate source.
    pub fn tls(mut self, source: TlsSource) -> Self {
        self.tls = source;
        self
    }

    /// How long worker tasks run before they finish (every type; overrides set with
    /// [`MockServerBuilder::task_durations`] for a type stay).
    pub fn task_delay(mut self, delay: Duration) -> Self {
        self.task_durations.default = delay;
        self
    }

    /// How long worker tasks run, by type (`qmstart`, `vzdump`, ...): tasks report `running`
    /// until their time has passed.
    pub fn task_durations(mut self, durations: TaskDurations) -> Self {
        self.task_durations = durations;
        self
    }

    /// Seeds one of the named profiles (`small`, `large`) instead of the default fixture.
    pub fn profile(mut self, profile: Profile) -> Self {
        self.seed = Some(profile.fixture());
        self
    }

    /// Ticket lifetime (Proxmox: 2 hours).
    pub fn ticket_lifetime(mut self, lifetime: Duration) -> Self {
        self.ticket_lifetime = lifetime;
        self
    }

    /// The secret that opens the `/_mock` control endpoints when authentication is on
    /// (`Authorization: Bearer <token>`), besides `root@pam` itself. Without one, a random
    /// secret is made ([`MockServerHandle::control_token`]).
    pub fn control_token(mut self, token: impl Into<String>) -> Self {
        self.control_token = Some(token.into());
        self
    }

    /// Host names (besides loopback names and addresses, and the addresses the listeners are
    /// bound to) under which the `/_mock` control endpoints answer.
    pub fn allowed_hosts(mut self, hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_hosts.extend(
            hosts
                .into_iter()
                .map(|host| host.into().to_ascii_lowercase()),
        );
        self
    }

    /// How many finished tasks each node keeps (2,000 by default, about what Proxmox's rotated
    /// task index lists); older ones are dropped in batches. At least 1.
    pub fn task_history(mut self, finished_tasks: usize) -> Self {
        self.task_history = finished_tasks.max(1);
        self
    }

    /// How long a connection may take to complete its TLS handshake and to send each request's
    /// headers before it is closed (30 s by default; pveproxy closes idle handles after 5 s).
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a failed authentication waits before its reply (0, off, by default). pveproxy
    /// delays every `401` by 3 seconds, and also the other replies of a failed authentication
    /// (a refused upload's `403`); `Duration::from_secs(3)` mimics it.
    pub fn auth_failure_delay(mut self, delay: Duration) -> Self {
        self.auth_failure_delay = delay;
        self
    }

    /// How durable a commit of the SQLite store is ([`Synchronous::Normal`] by default: it
    /// survives a crash of the process, not a power loss). No effect on a memory store.
    pub fn synchronous(mut self, level: Synchronous) -> Self {
        self.synchronous = level;
        self
    }

    /// Real mode: forwards every API request to a live Proxmox VE, validating requests and
    /// replies against the schema (see `docs/proxy.md`).
    pub fn upstream(mut self, config: crate::upstream::UpstreamConfig) -> Self {
        self.upstream = Some(config);
        self
    }

    /// Uses the given metadata instead of an embedded tag (for tests).
    pub fn metadata(mut self, metadata: RouteMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Builds the shared state without binding sockets (for `oneshot` tests).
    pub(crate) fn build_state(&self) -> Result<AppState, Error> {
        let fixture = self.seed.clone().unwrap_or_else(Fixture::default_fixture);
        // Three things at once: the seed's changes (they hash the seed's passwords and token
        // secrets, slow on purpose), the API (router, path nodes, operation heads: usually
        // compiled already by `preload`, or being compiled) with the route table resolved
        // against it, and the state, which needs only the schema's hash from the head of the
        // document.
        //
        // A new ticket-signing key goes into the state with the seed, in the same transaction:
        // a seeded state has no key yet (resetting the state clears its metadata).
        let new_signer = Signer::random(self.ticket_lifetime);
        let persistent = matches!(self.store, Store::Sqlite(_));
        let (api, routes, store) = std::thread::scope(|scope| -> Result<_, Error> {
            let seeding = scope.spawn(|| {
                let mut changes = fixture.to_changes(&self.root_password);
                if persistent {
                    changes.push(Change::Meta {
                        key: INSTANCE_KEY.to_owned(),
                        value: new_signer.key_hex(),
                    });
                }
                changes
            });
            let loading = scope.spawn(|| {
                let api = match &self.metadata {
                    Some(metadata) => Arc::new(Api::new(metadata.clone(), None)),
                    None => Api::load(&self.schema)?,
                };
                let routes = Routes::new(&api);
                Ok::<_, Error>((api, routes))
            });
            let schema_sha256 = match &self.metadata {
                Some(metadata) => metadata.schema_sha256.clone(),
                None => crate::api::embedded_schema_sha256(&self.schema)?,
            };
            // The state is reset when the schema or the fixture changes (another profile or seed).
            let fingerprint = format!(
                "{schema_sha256}+{}",
                crate::seed::profile::fingerprint(&fixture)
            );
            let seed = || {
                seeding
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            };
            let store = StateStore::open_with(&self.store, self.synchronous, &fingerprint, seed)?;
            let (api, routes) = loading
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            Ok((api, routes, store))
        })?;
        let signer = match store
            .meta(INSTANCE_KEY)
            .and_then(|key| Signer::from_hex(&key, self.ticket_lifetime))
        {
            Some(signer) => signer,
            None => new_signer,
        };
        let mut allowed_hosts = self.allowed_hosts.clone();
        for address in [self.listen, self.http_listen] {
            if !address.ip().is_unspecified() {
                allowed_hosts.push(address.ip().to_string());
            }
        }
        let settings = Settings {
            auth: self.auth,
            task_durations: self.task_durations.clone(),
            task_history: self.task_history,
            header_timeout: self.header_timeout,
            auth_failure_delay: self.auth_failure_delay,
            root_password: self.root_password.clone(),
            fixture,
            control_token: self
                .control_token
                .clone()
                .unwrap_or_else(crate::auth::new_token_secret),
            allowed_hosts,
        };
        let state = AppState::new(api, routes, store, signer, settings);
        if let Some(config) = &self.upstream {
            let upstream = Arc::new(crate::upstream::Upstream::new(config)?);
            let _ = state.upstream.set(upstream);
        }
        Ok(state)
    }

    /// Binds the listeners and serves until [`MockServerHandle::shutdown`]:
    /// [`prepare`](Self::prepare), then [`PreparedServer::spawn`].
    pub async fn spawn(self) -> Result<MockServerHandle, Error> {
        self.prepare()?.spawn().await
    }

    /// Does everything before serving that needs no async runtime: builds the state (opening
    /// and, when new, seeding the store), binds both listeners and loads or makes the TLS
    /// certificate. It may run on a thread of its own while the caller starts its runtime (the
    /// `mock-server` binary does so); connections that arrive from now on wait in the listen
    /// backlog until [`PreparedServer::spawn`] serves them.
    pub fn prepare(self) -> Result<PreparedServer, Error> {
        // The listeners and the certificate first: the API compiled by `preload` is usually
        // what the state waits for last, and this work then overlaps with it.
        let (https, https_addr) = bind(self.listen, "HTTPS")?;
        let (http, http_addr) = bind(self.http_listen, "HTTP")?;
        let tls_dir = match (&self.tls, &self.store) {
            (TlsSource::SelfSigned(Some(dir)), _) => Some(dir.clone()),
            (TlsSource::SelfSigned(None), Store::Sqlite(path)) => {
                path.parent().map(Path::to_path_buf)
            }
            _ => None,
        };
        let tls_source = match &self.tls {
            TlsSource::SelfSigned(_) => TlsSource::SelfSigned(tls_dir),
            other => other.clone(),
        };
        let (acceptor, cert_pem) = tls_acceptor(&tls_source)?;
        let state = self.build_state()?;
        if !self.auth {
            for address in [self.listen, self.http_listen] {
                if !address.ip().is_loopback() {
                    tracing::warn!(
                        %address,
                        "authentication is off and the mock listens beyond loopback: anyone who reaches {address} can change its state"
                    );
                }
            }
        }
        let _ = state.server_urls.set(vec![
            format!("https://{https_addr}{}", route_metadata::API_PREFIX),
            format!("http://{http_addr}{}", route_metadata::API_PREFIX),
        ]);
        Ok(PreparedServer {
            state,
            https,
            https_addr,
            http,
            http_addr,
            acceptor,
            cert_pem,
        })
    }
}

/// A mock server with its state built and its listeners bound, not serving yet
/// ([`MockServerBuilder::prepare`]).
pub struct PreparedServer {
    state: AppState,
    https: std::net::TcpListener,
    https_addr: SocketAddr,
    http: std::net::TcpListener,
    http_addr: SocketAddr,
    acceptor: TlsAcceptor,
    cert_pem: String,
}

impl std::fmt::Debug for PreparedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedServer")
            .field("http_addr", &self.http_addr)
            .field("https_addr", &self.https_addr)
            .finish_non_exhaustive()
    }
}

impl PreparedServer {
    /// The plain HTTP listener's address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The HTTPS listener's address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The server certificate (PEM), for clients that pin it.
    pub fn tls_certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Serves until [`MockServerHandle::shutdown`] (inside a tokio runtime): stores the
    /// ticket-signing key of a persistent state written without one, marks the tasks a stopped
    /// process left running as interrupted, and starts accepting.
    pub async fn spawn(self) -> Result<MockServerHandle, Error> {
        let PreparedServer {
            state,
            https,
            https_addr,
            http,
            http_addr,
            acceptor,
            cert_pem,
        } = self;
        persist_key(&state).await?;
        // Tasks that were running when the process stopped have no worker any more.
        state
            .store
            .transact(|tables| {
                Ok::<_, crate::store::StoreError>((crate::ops::tasks::interrupted(tables), ()))
            })
            .await?;
        let listener = |listener: std::net::TcpListener, scheme: &str| {
            TcpListener::from_std(listener).map_err(|source| Error::Io {
                context: format!("serving the {scheme} listener"),
                source,
            })
        };
        let (https, http) = (listener(https, "HTTPS")?, listener(http, "HTTP")?);
        if let Some(upstream) = state.upstream.get() {
            upstream.start(Arc::clone(&state.api));
        }
        let (stop, stopped) = watch::channel(false);
        let mut wait = stopped.clone();
        let server_state = state.clone();
        let task = tokio::spawn(async move {
            run(http, Some((https, acceptor)), server_state, async move {
                let _ = wait.wait_for(|stop| *stop).await;
            })
            .await
        });
        Ok(MockServerHandle {
            http_addr,
            https_addr,
            cert_pem,
            control_token: state.settings.control_token.clone(),
            stop,
            task,
        })
    }
}

/// Binds a non-blocking listener the way tokio's `TcpListener::bind` does (`SO_REUSEADDR`, a
/// backlog of 1024), without needing a runtime; returns it with the address it got (the port
/// when asked for 0).
fn bind(address: SocketAddr, scheme: &str) -> Result<(std::net::TcpListener, SocketAddr), Error> {
    let io = |context: String| move |source| Error::Io { context, source };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(io(format!("opening the {scheme} socket")))?;
    socket
        .set_reuse_address(true)
        .and_then(|()| socket.bind(&address.into()))
        .and_then(|()| socket.listen(1024))
        .and_then(|()| socket.set_nonblocking(true))
        .map_err(io(format!("binding {address}")))?;
    let listener = std::net::TcpListener::from(socket);
    let bound = listener
        .local_addr()
        .map_err(io(format!("reading the {scheme} address")))?;
    Ok((listener, bound))
}

/// The metadata key of the ticket-signing key of a persistent instance.
const INSTANCE_KEY: &str = "instance_key";

/// Stores the signing key of a persistent instance, so tickets survive a restart (a state
/// seeded by this process has it already; one written by an older build may not).
async fn persist_key(state: &AppState) -> Result<(), Error> {
    if state.store.meta(INSTANCE_KEY).is_none() && state.store.path().is_some() {
        state
            .store
            .apply(vec![Change::Meta {
                key: INSTANCE_KEY.to_owned(),
                value: state.signer.key_hex(),
            }])
            .await?;
    }
    Ok(())
}

/// A running mock server.
pub struct MockServerHandle {
    http_addr: SocketAddr,
    https_addr: SocketAddr,
    cert_pem: String,
    control_token: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), Error>>,
}

impl std::fmt::Debug for MockServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServerHandle")
            .field("http_addr", &self.http_addr)
            .field("https_addr", &self.https_addr)
            .finish_non_exhaustive()
    }
}

impl MockServerHandle {
    /// Plain HTTP API base, e.g. `http://127.0.0.1:8005/api2/json`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.http_addr, route_metadata::API_PREFIX)
    }

    /// HTTPS API base, e.g. `https://127.0.0.1:8006/api2/json`.
    pub fn https_base_url(&self) -> String {
        format!("https://{}{}", self.https_addr, route_metadata::API_PREFIX)
    }

    /// The plain HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The HTTPS address.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// The secret that opens the `/_mock` control endpoints (`Authorization: Bearer <token>`).
    pub fn control_token(&self) -> &str {
        &self.control_token
    }

    /// The server certificate (PEM), for clients that pin it.
    pub fn tls_certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Stops accepting, lets in-flight requests finish and closes the store.
    pub async fn shutdown(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(error) => Err(Error::Io {
                context: "joining the server task".to_owned(),
                source: std::io::Error::other(error.to_string()),
            }),
        }
    }
}

/// The router with the production layers (panic catching; the request log line is written by
/// the router's own observation layer, `http::observe`).
fn service(state: AppState) -> (Router, ApiService) {
    (
        app(state.clone()).layer(CatchPanicLayer::custom(panic_response)),
        api_service(state),
    )
}

/// Serves plain HTTP (and HTTPS when given) until `shutdown` resolves, then drains and closes
/// the store.
pub(crate) async fn run(
    http: TcpListener,
    https: Option<(TcpListener, TlsAcceptor)>,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let router = service(state.clone());
    let timeout = state.settings.header_timeout;
    // Real mode serves its connections with a loop of its own first (`upstream::serve`).
    let real = state
        .upstream
        .get()
        .map(|upstream| (state.clone(), Arc::clone(upstream)));
    let (stop, stopped) = watch::channel(false);
    let http_task = tokio::spawn(serve(
        http,
        None,
        router.clone(),
        stopped.clone(),
        (timeout, real.clone()),
    ));
    let https_task = https.map(|(listener, acceptor)| {
        tokio::spawn(serve(
            listener,
            Some(acceptor),
            router.clone(),
            stopped.clone(),
            (timeout, real.clone()),
        ))
    });
    shutdown.await;
    tracing::info!("shutting down: draining requests");
    let _ = stop.send(true);
    let drain = async {
        let _ = http_task.await;
        if let Some(task) = https_task {
            let _ = task.await;
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
        tracing::warn!("drain timeout reached; closing remaining connections");
    }
    if let Some(upstream) = state.upstream.get() {
        upstream.finish(&state.api);
    }
    state.store.close().await;
    tracing::info!("state store closed");
    Ok(())
}

/// How long the accept loop pauses after a failed `accept` (out of file descriptors, say), so
/// that it does not spin; the other listener keeps serving meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves one listener (plain HTTP, or HTTPS with `acceptor`) until `stopped`, then lets the
/// open connections finish. A connection must complete its TLS handshake and send each
/// request's headers within `timeout`, or it is closed: slow clients cannot hold connections.
/// In real mode (`real`), each connection is served by `upstream::serve` first, which hands it
/// to hyper for what it does not serve itself, and a request asking for a protocol upgrade may
/// switch its connection to the upgraded protocol.
async fn serve(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    (router, api): (Router, ApiService),
    mut stopped: watch::Receiver<bool>,
    (timeout, real): (Duration, Option<(AppState, Arc<Upstream>)>),
) {
    let upgrades = real.is_some();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => {
                // Replies are written whole; no reason to wait for more data (Nagle).
                let _ = stream.set_nodelay(true);
                stream
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let service = WireService::new(router.clone(), api.clone());
        let watcher = graceful.watcher();
        let mut builder = hyper::server::conn::http1::Builder::new();
        // `Wire` times out heads the way pveproxy does (a close without a reply); hyper's own
        // header timeout would answer `408` instead.
        builder
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(None);
        match (acceptor.clone(), real.clone()) {
            (None, Some((state, upstream))) => {
                let wire = Wire::new(stream, timeout, upgrades);
                tokio::spawn(crate::upstream::serve(
                    wire,
                    state,
                    upstream,
                    stopped.clone(),
                    move |wire, stopped| {
                        let io = hyper_util::rt::TokioIo::new(wire);
                        until_stopped(
                            builder.serve_connection(io, service).with_upgrades(),
                            stopped,
                        )
                    },
                ));
            }
            (None, None) => {
                let io = hyper_util::rt::TokioIo::new(Wire::new(stream, timeout, upgrades));
                tokio::spawn(watcher.watch(builder.serve_connection(io, service)));
            }
            (Some(acceptor), real) => {
                let stopped_here = stopped.clone();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(timeout, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let wire = Wire::new(tls, timeout, upgrades);
                    match real {
                        Some((state, upstream)) => {
                            crate::upstream::serve(
                                wire,
                                state,
                                upstream,
                                stopped_here,
                                move |wire, stopped| {
                                    let io = hyper_util::rt::TokioIo::new(wire);
                                    until_stopped(
                                        builder.serve_connection(io, service).with_upgrades(),
                                        stopped,
                                    )
                                },
                            )
                            .await;
                        }
                        None => {
                            let io = hyper_util::rt::TokioIo::new(wire);
                            let _ = watcher.watch(builder.serve_connection(io, service)).await;
                        }
                    }
                });
            }
        }
    }
    graceful.shutdown().await;
}

/// Drives a connection that may switch protocols (real mode passes WebSockets through); when
/// the server stops, it finishes its request in flight and closes. (hyper-util's graceful
/// watcher does not take upgradeable connections; the drain does not wait for these, and an
/// upgraded connection lives on in its own task until either side closes it.)
async fn until_stopped<I>(
    connection: hyper::server::conn::http1::UpgradeableConnection<I, WireService>,
    mut stopped: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopped.wait_for(|s| *s) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Loads or generates the certificate; returns the acceptor and the certificate PEM.
fn tls_acceptor(source: &TlsSource) -> Result<(TlsAcceptor, String), Error> {
    let (cert_pem, key_pem) = match source {
        TlsSource::Files { cert, key } => (read(cert)?, read(key)?),
        TlsSource::SelfSigned(Some(dir)) => {
            let cert_path = dir.join("cert.pem");
            let key_path = dir.join("key.pem");
            if cert_path.exists() && key_path.exists() {
                (read(&cert_path)?, read(&key_path)?)
            } else {
                let (cert, key) = self_signed()?;
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Tls(format!("creating {}: {e}", dir.display())))?;
                std::fs::write(&cert_path, &cert)
                    .map_err(|e| Error::Tls(format!("writing {}: {e}", cert_path.display())))?;
                write_private(&key_path, &key)?;
                (cert, key)
            }
        }
        TlsSource::SelfSigned(None) => self_signed()?,
    };
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("reading certificate: {e}")))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| Error::Tls(format!("reading key: {e}")))?
        .ok_or_else(|| Error::Tls("no private key in the key file".to_owned()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), cert_pem))
}

fn read(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Tls(format!("reading {}: {e}", path.display())))
}

fn write_private(path: &Path, content: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Error::Tls(format!("writing {}: {e}", path.display())))?;
    file.write_all(content.as_bytes())
        .map_err(|e| Error::Tls(format!("writing {}: {e}", path.display())))
}

fn self_signed() -> Result<(String, String), Error> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| Error::Tls(e.to_string()))?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}

/// Resolves `latest` (re-exported for the binary).
pub fn resolve_tag(tag: &str) -> Result<&'static str, Error> {
    api::resolve_tag(tag)
}
