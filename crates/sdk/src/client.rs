//! [`Client`] and [`ClientBuilder`]: one configured connection to a Proxmox VE API.
//!
//! A `Client` is a cheap handle (`Arc` inside): clone it into tasks freely.
//! Everything expensive happens once, in [`ClientBuilder::build`]: the base URL is parsed, the
//! `rustls` configuration and the `reqwest::Client` (with its connection pool and keep-alive) are
//! built, and credentials are turned into sensitive header values.
//!
//! Every request goes through [`Client::execute`], which
//!
//! 1. adds authentication ([`Client::authorize`]): the token header, or the ticket cookie plus,
//!    on writes, the CSRF header, logging in or renewing first if needed;
//! 2. sends the request with its timeout;
//! 3. on a `401` under ticket authentication, renews the ticket once and sends again;
//! 4. on `502`/`503`/`504`, a timeout or a connection error, retries `GET`/`HEAD` with backoff
//!    (see [`crate::retry`]).
//!
//! The generated typed layer reuses all of this: a typed method returns a [`Call`](crate::Call),
//! which is sent through the same [`RequestBuilder`] as the dynamic API and so takes the same
//! steps.
//! Code that builds its own `reqwest::Request`s can send them with [`Client::execute`], or add
//! only the authentication headers with [`Client::authorize`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, COOKIE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument as _, Span};
use url::Url;

use crate::auth::{
    Credentials, DEFAULT_TICKET_LIFETIME, LoginTransport, TICKET_PATH, TfaCallback, Ticket,
    TicketAuth, sensitive_header,
};
use crate::encode;
use crate::error::{Error, Result, is_retryable_status};
use crate::request::RequestBuilder;
use crate::retry::{DEFAULT_RETRY_BACKOFF, RetryPolicy};
use crate::secret::SecretString;
use crate::task::{Task, TaskPolling};
use crate::telemetry;
use crate::tfa::{TfaChallenge, TfaResponse};
use crate::tls::{self, Fingerprint, Verification};

/// The default port of the Proxmox VE API.
pub const DEFAULT_PORT: u16 = 8006;

/// The default timeout of one request, from connecting until the body is read.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The default timeout for establishing a connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The header that carries the CSRF token on writes.
const CSRF_HEADER: HeaderName = HeaderName::from_static("csrfpreventiontoken");

/// A connection to one Proxmox VE API.
///
/// ```no_run
/// # async fn demo() -> proxmox_sdk::Result<()> {
/// let client = proxmox_sdk::Client::builder()
///     .base_url("https://pve.example.com:8006")
///     .token("root@pam!automation", "5f2a…")
///     .build()?;
/// let nodes: serde_json::Value = client.get("/nodes", &()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    api_root: Url,
    ticket_url: Url,
    auth: Auth,
    retry: RetryPolicy,
    timeout: Duration,
    task_polling: TaskPolling,
}

/// How requests are authenticated.
enum Auth {
    /// No credentials: only useful with [`Client::complete_tfa`] or unauthenticated endpoints.
    None,
    /// An API token, sent as a ready-made header.
    Token { id: String, header: HeaderValue },
    /// A password and the tickets obtained with it.
    Ticket(TicketAuth),
}

impl Client {
    /// Starts configuring a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from `PROXMOX_API_*` environment variables; see
    /// [`ClientBuilder::from_env`].
    pub fn from_env() -> Result<Self> {
        ClientBuilder::from_env()?.build()
    }

    /// The underlying HTTP client, for code that builds its own `reqwest::Request`s.
    ///
    /// Requests sent through it directly carry no authentication: pass them through
    /// [`Client::authorize`] or [`Client::execute`].
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// The API root every path is relative to, for example `https://pve:8006/api2/json`.
    pub fn base_url(&self) -> &Url {
        &self.inner.api_root
    }

    /// The default request timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The retry policy for idempotent requests.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// The default pacing of [`Task::wait`].
    pub fn task_polling(&self) -> TaskPolling {
        self.inner.task_polling
    }

    /// Builds an API path from segments, percent-encoding each; see [`crate::path`].
    pub fn path<I, S>(&self, segments: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        encode::path(segments)
    }

    /// Starts a request to an API path such as `/nodes/pve1/qemu`.
    pub fn request(&self, method: Method, path: impl Into<String>) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, path)
    }

    /// `GET path?params`, returning the payload of the `{"data": …}` envelope.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.request(Method::GET, path).params(params).send().await
    }

    /// `POST path` with `params` as a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.request(Method::POST, path).params(params).send().await
    }

    /// `PUT path` with `params` as a JSON body.
    pub async fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.request(Method::PUT, path).params(params).send().await
    }

    /// `DELETE path?params`.
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.request(Method::DELETE, path)
            .params(params)
            .send()
            .await
    }

    /// A handle on a background task, for waiting on it or reading and following its log.
    /// The handle owns a clone of this client and of the UPID.
    pub fn task(&self, upid: &shared_types::Upid) -> Task {
        Task::new(self.clone(), upid.clone())
    }

    /// Logs in now with the configured password, instead of at the first request.
    ///
    /// If the user has a second factor and neither [`ClientBuilder::otp`] nor
    /// [`ClientBuilder::tfa_callback`] is set, this fails with an [`Error::Auth`] whose
    /// [`Error::tfa_challenge`] is then answered with [`Client::complete_tfa`].
    /// With token authentication this does nothing.
    pub async fn login(&self) -> Result<()> {
        match &self.inner.auth {
            Auth::Ticket(ticket_auth) => ticket_auth.force_login(&self.transport()).await.map(drop),
            Auth::Token { .. } | Auth::None => Ok(()),
        }
    }

    /// Answers a second-factor challenge from a failed [`Client::login`] and stores the ticket.
    pub async fn complete_tfa(
        &self,
        challenge: &TfaChallenge,
        response: TfaResponse,
    ) -> Result<()> {
        match &self.inner.auth {
            Auth::Ticket(ticket_auth) => ticket_auth
                .complete_tfa(&self.transport(), challenge, &response)
                .await
                .map(drop),
            Auth::Token { .. } | Auth::None => Err(Error::config(
                "second factors only apply to password authentication",
            )),
        }
    }

    /// The current login ticket, if password authentication is used and a login happened.
    pub async fn ticket(&self) -> Option<Arc<Ticket>> {
        match &self.inner.auth {
            Auth::Ticket(ticket_auth) => ticket_auth.peek().await,
            Auth::Token { .. } | Auth::None => None,
        }
    }

    /// Adds authentication headers to a request, logging in or renewing the ticket first if needed.
    ///
    /// [`Client::execute`] does this itself; call it for a request built with [`Client::http`] that
    /// is sent some other way.
    pub async fn authorize(&self, request: &mut reqwest::Request) -> Result<()> {
        self.authorize_with_sequence(request).await.map(drop)
    }

    /// Sends a request with authentication, one ticket renewal on `401`, and retries; returns the
    /// answer whatever its status.
    ///
    /// A request whose body cannot be cloned (a stream) is sent once, without renewal or retries.
    pub async fn execute(&self, request: reqwest::Request) -> Result<reqwest::Response> {
        let span = telemetry::request_span(request.method(), None, request.url());
        self.execute_with(request, self.inner.retry, &span)
            .instrument(span.clone())
            .await
    }

    /// [`Client::execute`] with a specific retry policy.
    pub(crate) async fn execute_with(
        &self,
        request: reqwest::Request,
        retry: RetryPolicy,
        span: &Span,
    ) -> Result<reqwest::Response> {
        let outcome = self.execute_in(request, retry, span).await;
        match &outcome {
            Ok(response) => telemetry::record_status(span, response.status()),
            Err(error) => telemetry::record_error(span, error),
        }
        outcome
    }

    /// [`Client::execute_with`] without recording the outcome on the span.
    async fn execute_in(
        &self,
        request: reqwest::Request,
        retry: RetryPolicy,
        span: &Span,
    ) -> Result<reqwest::Response> {
        let what = self.describe(&request);
        if request.try_clone().is_none() {
            let mut request = request;
            self.authorize_with_sequence(&mut request).await?;
            #[cfg(feature = "otel")]
            crate::otel::inject(span, request.headers_mut());
            return self
                .inner
                .http
                .execute(request)
                .await
                .map_err(|error| Error::from_reqwest(what, error));
        }
        let idempotent = matches!(*request.method(), Method::GET | Method::HEAD);
        let mut n_retries = 0u32;
        let mut renewed = false;
        loop {
            let Some(mut attempt) = request.try_clone() else {
                return Err(Error::invalid_request(format!(
                    "{what}: the request could not be repeated"
                )));
            };
            let sequence = self.authorize_with_sequence(&mut attempt).await?;
            #[cfg(feature = "otel")]
            crate::otel::inject(span, attempt.headers_mut());
            let started = tokio::time::Instant::now();
            let outcome = self.inner.http.execute(attempt).await;
            let elapsed = started.elapsed();
            match outcome {
                Ok(response) => {
                    let status = response.status();
                    tracing::debug!(request = %what, status = status.as_u16(), ?elapsed, "answer");
                    if status == StatusCode::UNAUTHORIZED
                        && !renewed
                        && let (Auth::Ticket(ticket_auth), Some(sequence)) =
                            (&self.inner.auth, sequence)
                    {
                        renewed = true;
                        telemetry::record_resend(span, n_retries + 1, "ticket renewal");
                        ticket_auth
                            .ticket_after_rejection(&self.transport(), sequence)
                            .await?;
                        continue;
                    }
                    if idempotent && n_retries < retry.max_retries && is_retryable_status(status) {
                        let delay = retry.delay(n_retries);
                        tracing::debug!(request = %what, status = status.as_u16(), ?delay, "retrying");
                        n_retries += 1;
                        telemetry::record_resend(
                            span,
                            n_retries + u32::from(renewed),
                            status.as_str(),
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Ok(response);
                }
                Err(error) => {
                    let error = Error::from_reqwest(what.clone(), error);
                    tracing::debug!(request = %what, error = %error, ?elapsed, "request failed");
                    if idempotent && n_retries < retry.max_retries && error.is_retryable() {
                        let delay = retry.delay(n_retries);
                        tracing::debug!(request = %what, ?delay, "retrying");
                        n_retries += 1;
                        telemetry::record_resend(
                            span,
                            n_retries + u32::from(renewed),
                            telemetry::error_type(&error),
                        );
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Adds authentication headers; returns the ticket's sequence number under ticket auth.
    async fn authorize_with_sequence(&self, request: &mut reqwest::Request) -> Result<Option<u64>> {
        match &self.inner.auth {
            Auth::None => Ok(None),
            Auth::Token { header, .. } => {
                request.headers_mut().insert(AUTHORIZATION, header.clone());
                Ok(None)
            }
            Auth::Ticket(ticket_auth) => {
                let ticket = ticket_auth.ticket(&self.transport()).await?;
                let headers = request.headers_mut();
                headers.insert(COOKIE, ticket.cookie_header().clone());
                if !matches!(*request.method(), Method::GET | Method::HEAD) {
                    request
                        .headers_mut()
                        .insert(CSRF_HEADER, ticket.csrf_header().clone());
                }
                Ok(Some(ticket.sequence()))
            }
        }
    }

    /// What login needs.
    fn transport(&self) -> LoginTransport<'_> {
        LoginTransport {
            http: &self.inner.http,
            ticket_url: &self.inner.ticket_url,
        }
    }

    /// `GET /nodes` for a request: its method and its path below the API root.
    fn describe(&self, request: &reqwest::Request) -> String {
        let root = self.inner.api_root.path().trim_end_matches('/');
        let full_path = request.url().path();
        let api_path = full_path
            .strip_prefix(root)
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(full_path);
        format!("{} {}", request.method(), api_path)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth: &dyn fmt::Debug = match &self.inner.auth {
            Auth::None => &"none",
            Auth::Token { id, .. } => id,
            Auth::Ticket(ticket_auth) => ticket_auth,
        };
        f.debug_struct("Client")
            .field("base_url", &self.inner.api_root.as_str())
            .field("auth", auth)
            .field("timeout", &self.inner.timeout)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Client`]; created by [`Client::builder`].
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct ClientBuilder {
    base_url: Option<String>,
    host: Option<String>,
    port: u16,
    credentials: Option<Credentials>,
    otp: Option<SecretString>,
    tfa_callback: Option<TfaCallback>,
    ca_certs_pem: Vec<Vec<u8>>,
    fingerprint: Option<String>,
    danger_accept_invalid_certs: bool,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    ticket_lifetime: Duration,
    task_polling: TaskPolling,
    user_agent: Option<String>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            base_url: None,
            host: None,
            port: DEFAULT_PORT,
            credentials: None,
            otp: None,
            tfa_callback: None,
            ca_certs_pem: Vec::new(),
            fingerprint: None,
            danger_accept_invalid_certs: false,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            retry: RetryPolicy {
                max_retries: 0,
                backoff: DEFAULT_RETRY_BACKOFF,
            },
            ticket_lifetime: DEFAULT_TICKET_LIFETIME,
            task_polling: TaskPolling::default(),
            user_agent: None,
        }
    }
}

impl ClientBuilder {
    /// The server's URL: `https://pve:8006`, `https://pve:8006/api2/json`, or a reverse-proxy prefix
    /// such as `https://proxy/pve/`. Wins over [`ClientBuilder::host`].
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The server's host name or IP address; the URL becomes `https://host:port`.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The port used with [`ClientBuilder::host`]; 8006 by default.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Authenticates with an API token: `id` is `user@realm!tokenid`, `secret` the token's UUID.
    pub fn token(mut self, id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Token {
            id: id.into(),
            secret: SecretString::new(secret),
        });
        self
    }

    /// Authenticates with a user name (`user@realm`) and password, exchanged for tickets.
    pub fn password(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Password {
            username: username.into(),
            password: SecretString::new(password),
            otp: None,
        });
        self
    }

    /// A TOTP code to answer a second-factor challenge with; used with
    /// [`ClientBuilder::password`], called before or after it.
    pub fn otp(mut self, code: impl Into<String>) -> Self {
        self.otp = Some(SecretString::new(code));
        self
    }

    /// Sets the credentials directly.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// A function that answers second-factor challenges (when no [`ClientBuilder::otp`] is set).
    ///
    /// Returning `None` makes the login fail with the challenge (see [`Client::login`]).
    pub fn tfa_callback<F>(mut self, callback: F) -> Self
    where
        F: Fn(&TfaChallenge) -> Option<TfaResponse> + Send + Sync + 'static,
    {
        self.tfa_callback = Some(Arc::new(callback));
        self
    }

    /// Trusts an extra CA (or self-signed) certificate, PEM-encoded, in addition to the
    /// platform's roots. May be called more than once.
    pub fn ca_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certs_pem.push(pem.into());
        self
    }

    /// Pins the server's certificate by its SHA-256 fingerprint (`AA:BB:…`, as shown under
    /// *Node → System → Certificates*); chain and host name are then not checked.
    pub fn fingerprint(mut self, fingerprint: impl Into<String>) -> Self {
        self.fingerprint = Some(fingerprint.into());
        self
    }

    /// Accepts any server certificate. Only for throw-away test setups: anyone on the path can
    /// read the credentials. Logs a warning; ignored when a fingerprint is pinned.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// The default timeout of a request, from connecting until the body is read; 30 s by default.
    /// [`RequestBuilder::timeout`](crate::RequestBuilder::timeout) overrides it per request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout for establishing a connection; 10 s by default.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How often a failed `GET`/`HEAD` is retried (see [`crate::retry`]); 0, no retries, by default.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.retry.max_retries = max_retries;
        self
    }

    /// The delay before the first retry, doubling for each further one up to 30 s, with jitter (see [`crate::retry`]); 0.5 s by default.
    pub fn retry_backoff(mut self, base: Duration) -> Self {
        self.retry.backoff = base;
        self
    }

    /// How long a ticket is valid; two hours (Proxmox's value) by default. Tests set it short to
    /// exercise renewal.
    pub fn ticket_lifetime(mut self, lifetime: Duration) -> Self {
        self.ticket_lifetime = lifetime;
        self
    }

    /// The pacing of [`Task::wait`]: the first poll interval, doubling up to `max`; 1 s and 30 s by
    /// default.
    pub fn task_poll_interval(mut self, initial: Duration, max: Duration) -> Self {
        self.task_polling = TaskPolling { initial, max };
        self
    }

    /// The `User-Agent` header; `proxmox-sdk/<version>` by default.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Builds the client: parses the URL, sets up TLS and the connection pool.
    ///
    /// No request is sent; a password login happens at the first request or at [`Client::login`].
    pub fn build(self) -> Result<Client> {
        let api_root = api_root(self.base_url.as_deref(), self.host.as_deref(), self.port)?;
        if is_cleartext_to_remote(&api_root) {
            tracing::warn!(
                host = api_root.host_str().unwrap_or_default(),
                "the base URL is plain http:// to a host that is not loopback: the password, \
                 tickets, CSRF tokens and API token secrets travel in clear text; use https://"
            );
        }
        let ticket_url = encode::join_path(&api_root, TICKET_PATH)?;
        let verification = self.verification()?;
        let tls_config = tls::client_config(verification)?;
        let user_agent = self
            .user_agent
            .clone()
            .unwrap_or_else(|| format!("proxmox-sdk/{}", env!("CARGO_PKG_VERSION")));
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config)
            .timeout(self.timeout)
            .connect_timeout(self.connect_timeout)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .pool_idle_timeout(Some(Duration::from_secs(90)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .build()
            .map_err(|error| Error::config_with("could not build the HTTP client", error))?;
        let auth = match self.credentials {
            None => Auth::None,
            Some(Credentials::Token { id, secret }) => {
                let header = sensitive_header(&format!("PVEAPIToken={id}={}", secret.expose()))?;
                Auth::Token { id, header }
            }
            Some(Credentials::Password {
                username,
                password,
                otp,
            }) => Auth::Ticket(TicketAuth::new(
                username,
                password,
                self.otp.or(otp),
                self.tfa_callback,
                self.ticket_lifetime,
            )),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                api_root,
                ticket_url,
                auth,
                retry: self.retry,
                timeout: self.timeout,
                task_polling: self.task_polling,
            }),
        })
    }

    /// Turns the TLS settings into a verification mode.
    fn verification(&self) -> Result<Verification> {
        if let Some(fingerprint) = &self.fingerprint {
            return Ok(Verification::Pinned(fingerprint.parse::<Fingerprint>()?));
        }
        if self.danger_accept_invalid_certs {
            tracing::warn!(
                "TLS certificate verification is disabled (danger_accept_invalid_certs)"
            );
            return Ok(Verification::AcceptAny);
        }
        let mut extra_roots = Vec::new();
        for pem in &self.ca_certs_pem {
            extra_roots.extend(tls::parse_pem_certificates(pem)?);
        }
        Ok(Verification::Roots { extra_roots })
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("base_url", &self.base_url)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials)
            .field("otp", &self.otp)
            .field(
                "tfa_callback",
                &self.tfa_callback.as_ref().map(|_| "<callback>"),
            )
            .field("n_ca_certs", &self.ca_certs_pem.len())
            .field("fingerprint", &self.fingerprint)
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .field("ticket_lifetime", &self.ticket_lifetime)
            .finish_non_exhaustive()
    }
}

/// Whether requests to `url` go unencrypted to another machine: `http://` to a host that is not
/// loopback (`localhost`, `*.localhost`, `127.0.0.0/8`, `::1`).
fn is_cleartext_to_remote(url: &Url) -> bool {
    if url.scheme() != "http" {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            domain != "localhost" && !domain.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(address)) => !address.is_loopback(),
        Some(url::Host::Ipv6(address)) => !address.is_loopback(),
        None => true,
    }
}

/// Works out the API root (`…/api2/json`) from a base URL or a host and port.
fn api_root(base_url: Option<&str>, host: Option<&str>, port: u16) -> Result<Url> {
    let text = match (base_url, host) {
        (Some(base_url), _) => base_url.trim().to_owned(),
        (None, Some(host)) if host.contains(':') && !host.starts_with('[') => {
            format!("https://[{host}]:{port}")
        }
        (None, Some(host)) => format!("https://{host}:{port}"),
        (None, None) => return Err(Error::config("no server given: call base_url() or host()")),
    };
    let mut url = Url::parse(&text)
        .map_err(|error| Error::config_with(format!("invalid base URL {text:?}"), error))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Error::config(format!(
            "base URL {text:?} must start with https:// or http://"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::config(format!("base URL {text:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            "the base URL must not contain credentials; use token() or password()",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(format!(
            "base URL {text:?} must not have a query or fragment"
        )));
    }
    let prefix = url.path().trim_end_matches('/').to_owned();
    let root_path = if prefix.ends_with("/api2/json") {
        prefix
    } else {
        format!("{prefix}/api2/json")
    };
    url.set_path(&root_path);
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the messages of `WARN` events (a minimal subscriber: spans are ignored).
    #[derive(Default)]
    struct Warnings(std::sync::Mutex<Vec<String>>);

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Message<'a>(&'a mut String);
            impl tracing::field::Visit for Message<'_> {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                    self.0.push_str(&format!("{}={value:?} ", field.name()));
                }
            }
            if *event.metadata().level() == tracing::Level::WARN {
                let mut text = String::new();
                event.record(&mut Message(&mut text));
                if let Ok(mut warnings) = self.0.lock() {
                    warnings.push(text);
                }
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// The warnings logged while building a client for `base_url`.
    fn warnings_for(base_url: &str) -> Vec<String> {
        let warnings = Arc::new(Warnings::default());
        tracing::subscriber::with_default(warnings.clone(), || {
            Client::builder()
                .base_url(base_url)
                .token("root@pam!ci", "secret")
                .build()
                .map(|_| ())
        })
        .expect("client");
        warnings.0.lock().map(|w| w.clone()).unwrap_or_default()
    }

    #[test]
    fn plain_http_to_a_remote_host_warns() {
        for url in [
            "http://pve.example.com:8006",
            "http://192.0.2.10:8006",
            "http://[2001:db8::1]:8006",
        ] {
            let warnings = warnings_for(url);
            assert_eq!(warnings.len(), 1, "{url}: {warnings:?}");
            assert!(warnings[0].contains("clear text"), "{warnings:?}");
            assert!(!warnings[0].contains("secret\""), "{warnings:?}");
        }
        for url in [
            "https://pve.example.com:8006",
            "http://127.0.0.1:8005",
            "http://localhost:8005",
            "http://mock.localhost:8005",
            "http://[::1]:8005",
        ] {
            assert_eq!(warnings_for(url), Vec::<String>::new(), "{url}");
        }
    }

    fn check_root(base_url: Option<&str>, host: Option<&str>, port: u16, expected: Option<&str>) {
        let root = api_root(base_url, host, port).ok().map(String::from);
        assert_eq!(root.as_deref(), expected, "{base_url:?} {host:?}");
    }

    #[test]
    fn api_root_forms() {
        let expected = Some("https://pve:8006/api2/json");
        check_root(Some("https://pve:8006"), None, 0, expected);
        check_root(Some("https://pve:8006/"), None, 0, expected);
        check_root(Some("https://pve:8006/api2/json"), None, 0, expected);
        check_root(Some("https://pve:8006/api2/json/"), None, 0, expected);
        check_root(None, Some("pve"), 8006, expected);
        check_root(
            Some("http://127.0.0.1:8005"),
            Some("ignored"),
            1,
            Some("http://127.0.0.1:8005/api2/json"),
        );
        check_root(
            Some("https://proxy/pve/"),
            None,
            0,
            Some("https://proxy/pve/api2/json"),
        );
        check_root(
            None,
            Some("::1"),
            8006,
            Some("https://[::1]:8006/api2/json"),
        );
        check_root(Some("ftp://pve"), None, 0, None);
        check_root(Some("https://root:pw@pve"), None, 0, None);
        check_root(Some("https://pve/?x=1"), None, 0, None);
        check_root(Some("not a url"), None, 0, None);
        check_root(None, None, 8006, None);
    }

    #[test]
    fn client_debug_is_redacted() {
        let token = Client::builder()
            .base_url("https://pve:8006")
            .token("root@pam!ci", "5f2a0000-secret")
            .build()
            .expect("valid client");
        let password = Client::builder()
            .host("pve")
            .password("root@pam", "hunter2")
            .otp("123456")
            .build()
            .expect("valid client");
        let builder = Client::builder()
            .password("root@pam", "hunter2")
            .otp("123456")
            .token("a@pve!b", "5f2a0000-secret");
        let printed = format!("{token:?} {password:?} {password:#?} {builder:?}");
        for secret in ["5f2a0000", "hunter2", "123456"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(
            printed.contains("root@pam!ci") && printed.contains("https://pve:8006/api2/json"),
            "{printed}"
        );
    }

    #[test]
    fn bad_settings_fail_at_build() {
        let bad_fingerprint = Client::builder().host("pve").fingerprint("AA:BB").build();
        assert!(matches!(bad_fingerprint, Err(Error::Config { .. })));
        let bad_ca = Client::builder().host("pve").ca_cert("nonsense").build();
        assert!(matches!(bad_ca, Err(Error::Config { .. })));
        let bad_token = Client::builder()
            .host("pve")
            .token("a@pve!b", "line\nbreak")
            .build();
        let error = bad_token.expect_err("newline in a header");
        assert!(!error.to_string().contains("line"), "{error}");
    }

    #[tokio::test]
    async fn token_header_and_csrf_rules() {
        let client = Client::builder()
            .base_url("http://127.0.0.1:1")
            .token("root@pam!ci", "s3cret")
            .build()
            .expect("valid");
        let mut request = client
            .request(Method::POST, "/nodes")
            .build()
            .expect("valid request");
        client
            .authorize(&mut request)
            .await
            .expect("tokens need no login");
        let header = request
            .headers()
            .get(AUTHORIZATION)
            .expect("authorization header");
        assert_eq!(header.to_str().ok(), Some("PVEAPIToken=root@pam!ci=s3cret"));
        assert!(header.is_sensitive());
        assert!(request.headers().get(CSRF_HEADER).is_none());
    }
}
