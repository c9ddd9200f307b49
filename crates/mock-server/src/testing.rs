//! Testing code that uses `proxmox-sdk` without a cluster: an in-process mock and a connected
//! [`proxmox_sdk::Client`] from one call (cargo feature `sdk`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, _mock) = mock_server::testing::start().await?;
//! let nodes = client.nodes().list().await?;
//! assert_eq!(nodes.len(), 2);
//! # Ok(()) }
//! ```
//!
//! In a user's crate:
//!
//! ```toml
//! [dev-dependencies]
//! mock-server = { version = "0.1", features = ["sdk"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! # What you get
//!
//! [`start`] runs a [`MockServer`] inside the test's tokio runtime: the latest schema, a memory
//! store (nothing touches the disk), the default fixture (nodes `pve1` and `pve2`, storages
//! `local` and `local-lvm`, a few guests, `root@pam`), worker tasks that finish at once, and
//! plain HTTP on `127.0.0.1` with a port of its own, so tests run in parallel.
//! The client authenticates with an API token of `root@pam` (no privilege separation) that
//! the mock was seeded with; [`MockGuard::token_id`] and [`MockGuard::token_secret`] name it.
//! [`builder`] chooses the schema tag, the seed fixture, task durations or any other
//! [`MockServerBuilder`] setting, and the client's settings.
//!
//! The [`MockGuard`] stops the mock when dropped (requests in flight finish first); bind it to a
//! name such as `_mock`, not `_`, or the mock stops at once. It also reaches what a test
//! needs besides the API: faults ([`MockGuard::inject_fault`]: failed requests, failed tasks,
//! locked guests, offline nodes), a reset to the seed ([`MockGuard::reset`]), and more clients
//! ([`MockGuard::client_builder`]).
//!
//! # Why here
//!
//! The SDK does not depend on the mock: its default dependency tree stays small, and the
//! mock's future real mode (a proxy in front of a real cluster) may use the SDK, which would
//! make a package cycle. So the mock depends on the SDK, behind this feature, and the SDK's
//! documentation points here.

use std::time::Duration;

use proxmox_sdk::{Client, ClientBuilder};

use crate::error::Error;
use crate::seed::access::TokenSeed;
use crate::seed::{Fixture, UserSeed};
use crate::server::{MockServer, MockServerBuilder, MockServerHandle};
use crate::simulation::FaultSpec;

/// The user of the seeded token.
const TOKEN_USER: &str = "root@pam";

/// The token's name (the part after `!`).
const TOKEN_NAME: &str = "testing";

/// Starts a mock with the defaults (latest schema, memory store, default fixture, tasks that
/// finish at once) and returns a client connected to it with a `root@pam` API token.
pub async fn start() -> Result<(Client, MockGuard), Error> {
    builder().start().await
}

/// A [`TestMock`] to configure before [`TestMock::start`].
pub fn builder() -> TestMock {
    TestMock {
        server: MockServer::builder(),
        fixture: Fixture::default_fixture(),
        client: None,
    }
}

/// The settings of a test mock and its client; from [`builder`].
#[must_use = "a test mock does nothing until it is started"]
pub struct TestMock {
    server: MockServerBuilder,
    fixture: Fixture,
    client: Option<Box<dyn FnOnce(ClientBuilder) -> ClientBuilder + Send>>,
}

impl TestMock {
    /// The schema tag: `latest` (the default), `9.1`, `9.0` or `8.4`.
    pub fn schema(mut self, tag: impl Into<String>) -> Self {
        self.server = self.server.schema(tag);
        self
    }

    /// The seed fixture (the default is [`Fixture::default_fixture`]); the client's token is
    /// added to its `root@pam`, which is added if the fixture has none.
    pub fn seed(mut self, fixture: Fixture) -> Self {
        self.fixture = fixture;
        self
    }

    /// How long worker tasks run (the default: they finish at once).
    pub fn task_delay(mut self, delay: Duration) -> Self {
        self.server = self.server.task_delay(delay);
        self
    }

    /// Any other setting of the mock, e.g. `.server(|mock| mock.profile(Profile::Large))`.
    /// The store and listeners are yours to change too; the seed is set by [`TestMock::seed`].
    pub fn server(
        mut self,
        configure: impl FnOnce(MockServerBuilder) -> MockServerBuilder,
    ) -> Self {
        self.server = configure(self.server);
        self
    }

    /// Settings of the client, applied after its base URL and token, e.g.
    /// `.client(|client| client.max_retries(2))`.
    pub fn client(
        mut self,
        configure: impl FnOnce(ClientBuilder) -> ClientBuilder + Send + 'static,
    ) -> Self {
        self.client = Some(Box::new(configure));
        self
    }

    /// Starts the mock and connects a client to it.
    pub async fn start(self) -> Result<(Client, MockGuard), Error> {
        let token_secret = crate::auth::new_token_secret();
        let mut fixture = self.fixture;
        if !fixture.users.iter().any(|user| user.userid == TOKEN_USER) {
            fixture.users.push(UserSeed::new(TOKEN_USER));
        }
        for user in &mut fixture.users {
            if user.userid == TOKEN_USER {
                user.tokens.insert(
                    TOKEN_NAME.to_owned(),
                    TokenSeed::Secret(token_secret.clone()),
                );
            }
        }
        let handle = self.server.seed(fixture).spawn().await?;
        let control = Client::builder()
            .base_url(handle.base_url())
            .build()
            .map_err(Error::client(
                "building the control client of the test mock",
            ))?
            .http()
            .clone();
        let guard = MockGuard {
            handle: Some(handle),
            token_secret,
            control,
        };
        let mut client = guard.client_builder();
        if let Some(configure) = self.client {
            client = configure(client);
        }
        let client = client
            .build()
            .map_err(Error::client("building the client of the test mock"))?;
        Ok((client, guard))
    }
}

impl std::fmt::Debug for TestMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestMock")
            .field("server", &self.server)
            .field("client", &self.client.as_ref().map(|_| "<configure>"))
            .finish_non_exhaustive()
    }
}

/// A running test mock; stops it when dropped. From [`start`] or [`TestMock::start`].
pub struct MockGuard {
    /// Always `Some` until [`MockGuard::shutdown`] takes it.
    handle: Option<MockServerHandle>,
    token_secret: String,
    /// Plain HTTP for the `/_mock` endpoints (the SDK's, so TLS needs no set-up of its own).
    control: proxmox_sdk::reqwest::Client,
}

impl MockGuard {
    /// The server's handle (addresses, control token, certificate).
    pub fn handle(&self) -> &MockServerHandle {
        self.handle
            .as_ref()
            .expect("the handle is only taken by shutdown, which consumes the guard")
    }

    /// The API base URL, `http://127.0.0.1:PORT/api2/json`.
    pub fn base_url(&self) -> String {
        self.handle().base_url()
    }

    /// The seeded API token's ID, `root@pam!testing`.
    pub fn token_id(&self) -> String {
        format!("{TOKEN_USER}!{TOKEN_NAME}")
    }

    /// The seeded API token's secret (random per mock).
    pub fn token_secret(&self) -> &str {
        &self.token_secret
    }

    /// A client builder for this mock, with the seeded token; for a second client, or one with
    /// other settings. Replace the token with [`ClientBuilder::password`] to log in as another
    /// seeded user.
    pub fn client_builder(&self) -> ClientBuilder {
        Client::builder()
            .base_url(self.base_url())
            .token(self.token_id(), self.token_secret.clone())
    }

    /// Arms a fault (`POST /_mock/faults`): a failing or slow request, a failed task, a guest
    /// lock, an offline node. See [`FaultSpec`] and `docs/mock.md`, "Faults".
    pub async fn inject_fault(&self, fault: FaultSpec) -> Result<(), Error> {
        let body = serde_json::to_value(&fault).map_err(Error::client("encoding a fault"))?;
        self.control(proxmox_sdk::reqwest::Method::POST, "faults", Some(body))
            .await
    }

    /// Disarms every fault (`DELETE /_mock/faults`).
    pub async fn clear_faults(&self) -> Result<(), Error> {
        self.control(proxmox_sdk::reqwest::Method::DELETE, "faults", None)
            .await
    }

    /// Puts the state back to the seed (`POST /_mock/reset`): guests, users, tasks and faults.
    pub async fn reset(&self) -> Result<(), Error> {
        self.control(proxmox_sdk::reqwest::Method::POST, "reset", None)
            .await
    }

    /// Stops the mock and waits until it has stopped; dropping the guard stops it too, without
    /// waiting.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        match self.handle.take() {
            Some(handle) => handle.shutdown().await,
            None => Ok(()),
        }
    }

    /// Calls a `/_mock` control endpoint with the control token.
    async fn control(
        &self,
        method: proxmox_sdk::reqwest::Method,
        endpoint: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(), Error> {
        let handle = self.handle();
        let url = format!("http://{}/_mock/{endpoint}", handle.http_addr());
        let what = format!("{method} /_mock/{endpoint}");
        let mut request = self
            .control
            .request(method, url)
            .bearer_auth(handle.control_token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| Error::client(what.clone())(error.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(Error::Client {
            context: what,
            source: format!("the mock answered {status}: {}", text.trim()).into(),
        })
    }
}

impl std::fmt::Debug for MockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockGuard")
            .field("handle", &self.handle)
            .field("token_id", &self.token_id())
            .finish_non_exhaustive()
    }
}
