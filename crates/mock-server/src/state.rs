//! [`AppState`]: everything one mock instance shares between requests (the compiled API, the
//! store, the ticket signer, settings, simulation, caches), and nothing about HTTP.
//!
//! The HTTP layer holds an `AppState`; it hands `crate::ops::run` only an `Engine` (borrowed
//! services) and each handler only a `Call` and a `Tx`; nothing in `ops` sees the state itself.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};

use crate::access::AccessCache;
use crate::api::Api;
use crate::auth::{self, AuthCache, Signer};
use crate::ops::Engine;
use crate::ops::routes::Routes;
use crate::seed::Fixture;
use crate::simulation::{Simulation, TaskDurations};
use crate::store::StateStore;
use crate::telemetry::metrics::RequestMetrics;

/// Run-time settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Whether requests must authenticate.
    pub(crate) auth: bool,
    /// How long worker tasks run, by type.
    pub(crate) task_durations: TaskDurations,
    /// How many finished tasks each node keeps.
    pub(crate) task_history: usize,
    /// How long a connection may take for its TLS handshake and each request's headers.
    pub(crate) header_timeout: std::time::Duration,
    /// How long the reply to a failed authentication waits (pveproxy: 3 s; 0 is off).
    pub(crate) auth_failure_delay: std::time::Duration,
    /// The root@pam password of the seed.
    pub(crate) root_password: String,
    /// The seed fixture (used by `POST /_mock/reset`).
    pub(crate) fixture: Fixture,
    /// The secret that opens the control endpoints (`Authorization: Bearer`).
    pub(crate) control_token: String,
    /// Host names the control endpoints answer under besides loopback (lower case).
    pub(crate) allowed_hosts: Vec<String>,
}

/// Shared state of one mock instance.
pub(crate) struct Inner {
    /// The compiled API.
    pub(crate) api: Arc<Api>,
    /// The route table, resolved against the API.
    pub(crate) routes: Routes,
    /// The state store (owns the write path).
    pub(crate) store: Arc<StateStore>,
    /// Ticket and CSRF token signer.
    pub(crate) signer: Signer,
    /// Settings.
    pub(crate) settings: Settings,
    /// Injected request and task faults.
    pub(crate) simulation: Simulation,
    /// The access model (users, groups, roles, ACL), rebuilt when its rows change.
    pub(crate) access: AccessCache,
    /// Verified tickets and tokens.
    pub(crate) auth_cache: AuthCache,
    /// Base URLs advertised in `openapi.json` (`servers`).
    pub(crate) server_urls: OnceLock<Vec<String>>,
    /// The rendered `openapi.json` (with `servers`), built on first request.
    pub(crate) openapi: OnceLock<bytes::Bytes>,
    /// Real mode: the upstream every API request is forwarded to (`--upstream`).
    pub(crate) upstream: OnceLock<Arc<crate::upstream::Upstream>>,
    /// Request counts and latencies by operation, for `GET /metrics`.
    pub(crate) metrics: RequestMetrics,
    pid: AtomicU32,
}

/// Cheaply clonable handle to the shared state.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("tag", &self.api.meta.tag)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Assembles the state.
    pub(crate) fn new(
        api: Arc<Api>,
        routes: Routes,
        store: Arc<StateStore>,
        signer: Signer,
        settings: Settings,
    ) -> AppState {
        let simulation = Simulation::new(&settings.fixture.faults);
        let access = AccessCache::new(&api.meta.release);
        AppState(Arc::new(Inner {
            metrics: RequestMetrics::new(api.meta.operation_count()),
            routes,
            api,
            store,
            signer,
            settings,
            simulation,
            access,
            auth_cache: AuthCache::default(),
            server_urls: OnceLock::new(),
            openapi: OnceLock::new(),
            upstream: OnceLock::new(),
            pid: AtomicU32::new(0x1000 + (auth::now() % 0x1000) as u32),
        }))
    }

    /// What `ops::run` borrows to execute calls.
    pub(crate) fn engine(&self) -> Engine<'_> {
        Engine {
            routes: &self.routes,
            store: &self.store,
            access: &self.access,
            signer: &self.signer,
            simulation: &self.simulation,
            task_durations: &self.settings.task_durations,
            pids: &self.pid,
            task_history: self.settings.task_history,
        }
    }
}
