//! Real mode: the mock in front of a live Proxmox VE (`--upstream URL`).
//!
//! Every request under `/api2/` is forwarded to the upstream with its credentials untouched
//! (ticket cookie, CSRF header, API token; a login passes through like any call) over pooled
//! HTTP/1.1 connections ([`pool`]: a pool of our own and our own HTTP/1.1 client codec, [`h1`],
//! run in the request's own task; no URL parsing,
//! redirect or cookie layers per request; [`tls`] checks the upstream's certificate,
//! `hyper-rustls` speaks TLS), and the upstream's reply comes
//! back unchanged. On the way, `/api2/json` and `/api2/extjs` traffic is checked against the
//! selected tag's schema ([`validate`]): each request's parameters before it is forwarded, each
//! `200` JSON reply against the operation's `returns`. What disagrees is logged, counted per
//! operation and served at `GET /_mock/discrepancies` ([`report`]); at shutdown a summary is
//! logged and, with `--report FILE`, written as JSON and Markdown. With `--strict` a request
//! that fails validation is refused with Proxmox's own `400 Parameter verification failed.`
//! and never reaches the upstream. With `--record DIR` the replies of the GETs that pass (and,
//! with `--record-crawl`, of a walk of the GET tree, [`crawl`]) are turned into a seed fixture
//! ([`record`]).
//!
//! The client's connections ([`serve`]): each is served by a loop of our own, which forwards
//! the HTTP/1.1 `/api2/` calls with no body or a form or JSON body from the bytes of their
//! heads and writes the replies as hyper would; the first request it does not take (a refusal,
//! an upgrade, an upload, HTTP/1.0, a path outside `/api2/`) goes to hyper with the rest of the
//! connection, and hyper's service hands it to [`forward`].
//!
//! The request path ([`forward`]): form and JSON bodies (at most 512 KiB, pveproxy's own limit)
//! are read to be validated and then sent as read; uploads and other bodies stream through
//! unread (only their query and path are checked). Replies stream back to the client as they
//! arrive, unchanged (never parsed and re-serialised on the way); a `200` JSON reply (up to
//! [`forward::MAX_CHECKED_REPLY`]) is kept as it passes and validated afterwards on a
//! background thread with a bounded queue ([`checker`]: a reply that finds the queue full is
//! counted as not validated instead of waiting). A WebSocket handshake (the consoles'
//! `vncwebsocket`) is validated like any GET and, when the upstream switches protocols, the
//! two connections are joined byte for byte until either side closes.
//! Upstream failures become Proxmox-shaped errors: `595` when the upstream cannot be reached,
//! `596` for a failed TLS handshake or a timeout (AnyEvent::HTTP's pseudo-statuses, which
//! pveproxy itself answers when a node it proxies to fails), and a non-JSON `5xx` from something
//! in front of the upstream becomes a JSON error with its first line.
//!
//! Nothing of the local state is used in this mode: no local authentication, faults or store.

mod checker;
mod crawl;
mod forward;
mod h1;
mod pool;
mod record;
mod report;
mod serve;
mod stream;
mod tls;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;

use crate::api::Api;
use crate::error::Error;

pub(crate) use forward::forward;
pub(crate) use serve::serve;
pub use tls::UpstreamTls;

/// Default time the upstream has to answer (headers; and between two reads of a body).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an upstream connection may stay idle in the pool.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// Most upstream connections kept idle.
const POOL_MAX_IDLE: usize = 256;

/// Longest wait for the reply-check queue to empty before the discrepancies are read.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Configuration of real mode ([`crate::MockServerBuilder::upstream`]).
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    url: String,
    tls: UpstreamTls,
    strict: bool,
    timeout: Duration,
    report: Option<PathBuf>,
    record: Option<PathBuf>,
    crawl: Option<crawl::CrawlConfig>,
}

impl UpstreamConfig {
    /// Forward to this Proxmox VE, e.g. `https://pve.example:8006` (a trailing `/api2/json` is
    /// ignored).
    pub fn new(url: impl Into<String>) -> UpstreamConfig {
        UpstreamConfig {
            url: url.into(),
            tls: UpstreamTls::default(),
            strict: false,
            timeout: DEFAULT_UPSTREAM_TIMEOUT,
            report: None,
            record: None,
            crawl: None,
        }
    }

    /// How the upstream's certificate is checked (the platform's roots by default).
    pub fn tls(mut self, tls: UpstreamTls) -> Self {
        self.tls = tls;
        self
    }

    /// Refuse requests that fail validation instead of forwarding them.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// How long the upstream may take to connect and answer, and to send the next part of a
    /// body (60 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Writes the discrepancy report at shutdown: `FILE` gets the JSON, `FILE` with the
    /// extension `.md` the Markdown.
    pub fn report(mut self, path: impl Into<PathBuf>) -> Self {
        self.report = Some(path.into());
        self
    }

    /// Writes what the upstream said into a seed fixture (`DIR/fixture.yaml`) at shutdown.
    pub fn record(mut self, dir: impl Into<PathBuf>) -> Self {
        self.record = Some(dir.into());
        self
    }

    /// With [`UpstreamConfig::record`]: walks the GET tree from `/` at start with these API
    /// token credentials (`user@realm!name=secret`), at most `concurrency` requests at a time,
    /// for at most `limit`.
    pub fn record_crawl(
        mut self,
        token: impl Into<String>,
        concurrency: usize,
        limit: Duration,
    ) -> Self {
        self.crawl = Some(crawl::CrawlConfig {
            token: token.into(),
            concurrency: concurrency.max(1),
            limit,
        });
        self
    }
}

/// Why a request to the upstream, or the reading of its reply, failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// Connecting or the TLS handshake (the connector's error).
    Connect(Box<dyn std::error::Error + Send + Sync>),
    /// Sending a WebSocket handshake, or reading its reply's head (hyper's client).
    Send(hyper::Error),
    /// Reading a WebSocket handshake's reply body, or the switch to WebSocket (hyper's client).
    Read(hyper::Error),
    /// Sending, or reading the reply's head ([`h1`]).
    Exchange(h1::WireError),
    /// Reading the reply's body ([`h1`]).
    ReadBody(h1::WireError),
    /// The body's next part did not come within the timeout.
    ReadTimeout,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(error) => error.fmt(f),
            SendError::Send(error) => error.fmt(f),
            SendError::Read(error) => error.fmt(f),
            SendError::Exchange(error) => error.fmt(f),
            SendError::ReadBody(_) => f.write_str("error reading a body from connection"),
            SendError::ReadTimeout => f.write_str("the upstream stopped sending the reply"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(error) => Some(&**error),
            SendError::Send(error) => Some(error),
            SendError::Read(error) => Some(error),
            SendError::Exchange(error) => Some(error),
            SendError::ReadBody(error) => Some(error),
            SendError::ReadTimeout => None,
        }
    }
}

impl SendError {
    /// The error's causes (the error itself first).
    fn causes(&self) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
        let mut next: Option<&(dyn std::error::Error + 'static)> = match self {
            SendError::Connect(error) => Some(&**error),
            SendError::Send(error) => Some(error),
            SendError::Read(error) => Some(error),
            SendError::Exchange(error) => Some(error),
            SendError::ReadBody(_) | SendError::ReadTimeout => Some(self),
        };
        std::iter::from_fn(move || {
            let current = next?;
            next = current.source();
            Some(current)
        })
    }

    /// The messages of the causes, each once (a message that repeats its cause's is left out).
    pub(crate) fn chain(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for source in self.causes() {
            let text = source.to_string();
            if !parts.iter().any(|part| part.contains(&text)) {
                parts.push(text);
            }
        }
        parts.join(": ")
    }

    /// An I/O error among the causes (the error itself, or one wrapped in it).
    fn io_errors(&self) -> impl Iterator<Item = &std::io::Error> {
        self.causes()
            .filter_map(|source| source.downcast_ref::<std::io::Error>())
    }

    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, SendError::ReadTimeout)
            || self
                .io_errors()
                .any(|error| error.kind() == std::io::ErrorKind::TimedOut)
    }

    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// Whether `rustls` refused the handshake (the certificate, the pin, the protocol).
    pub(crate) fn is_tls(&self) -> bool {
        self.causes()
            .any(|source| source.downcast_ref::<rustls::Error>().is_some())
            || self.io_errors().any(|error| {
                error
                    .get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            })
    }
}

/// Real mode at run time: the connections, the discrepancy log, the recorder.
pub(crate) struct Upstream {
    pool: std::sync::Arc<pool::Pool>,
    /// `scheme://host:port` (and any path prefix), without a trailing `/`.
    base: String,
    /// The path prefix of `base` (usually empty), without a trailing `/`.
    prefix: String,
    /// `host:port`, for messages.
    authority: String,
    strict: bool,
    timeout: Duration,
    report_path: Option<PathBuf>,
    crawl: Option<crawl::CrawlConfig>,
    pub(crate) discrepancies: report::Discrepancies,
    recorder: Option<record::Recorder>,
    /// Replies are validated off the response path ([`checker`]).
    checker: checker::ReplyChecker,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base", &self.base)
            .field("strict", &self.strict)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds the pooled client for a configuration.
    pub(crate) fn new(config: &UpstreamConfig) -> Result<Upstream, Error> {
        let invalid = |why: &str| Error::Upstream(format!("invalid upstream URL: {why}"));
        let url = config
            .url
            .trim()
            .parse::<http::Uri>()
            .map_err(|_| invalid("not a URL"))?;
        let scheme = match url.scheme_str() {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => "https",
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => "http",
            Some(_) => return Err(invalid("the scheme must be https or http")),
            None => return Err(invalid("not a URL")),
        };
        let url_authority = url.authority().ok_or_else(|| invalid("no host"))?;
        if url_authority.as_str().contains('@') {
            return Err(invalid("credentials belong in requests, not in the URL"));
        }
        let host = url_authority.host().to_ascii_lowercase();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = url_authority
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let authority = format!("{host}:{port}");
        let path = url.path().trim_end_matches('/');
        let path = path
            .strip_suffix("/api2/json")
            .unwrap_or(path)
            .trim_end_matches('/');
        let base = format!("{scheme}://{authority}{path}");
        let target = format!("{scheme}://{authority}")
            .parse::<http::Uri>()
            .map_err(|_| invalid("not a URL"))?;
        // As hyper-util's client sets it: the port only when it is not the scheme's.
        let default_port = if scheme == "https" { 443 } else { 80 };
        let host_header = if port == default_port {
            http::HeaderValue::from_str(&host)
        } else {
            http::HeaderValue::from_str(&authority)
        }
        .map_err(|_| invalid("no host"))?;
        if config.tls == UpstreamTls::Insecure {
            tracing::warn!(
                upstream = %authority,
                "--upstream-insecure: the upstream's certificate is not checked; anyone in between can read the credentials that pass"
            );
        }
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(config.timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls::client_config(&config.tls)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let pool = pool::Pool::new(connector, target, host_header, POOL_IDLE, POOL_MAX_IDLE);
        Ok(Upstream {
            pool: std::sync::Arc::new(pool),
            prefix: path.to_owned(),
            base,
            authority,
            strict: config.strict,
            timeout: config.timeout,
            report_path: config.report.clone(),
            crawl: config.crawl.clone(),
            discrepancies: report::Discrepancies::default(),
            recorder: config.record.clone().map(record::Recorder::new),
            checker: checker::ReplyChecker::default(),
        })
    }

    /// The upstream's URI (origin-form: path and query, after the URL's path prefix) of a
    /// request target (`/api2/json/...?query`).
    fn uri(&self, path_and_query: &str) -> Result<http::Uri, http::uri::InvalidUri> {
        let mut text = String::with_capacity(self.prefix.len() + path_and_query.len());
        text.push_str(&self.prefix);
        text.push_str(path_and_query);
        http::Uri::try_from(text)
    }

    /// The upstream's URI of a client's request URI: the same when it is in origin-form and
    /// the upstream URL has no path prefix (nearly always), else rebuilt.
    fn target(&self, uri: &http::Uri) -> Result<http::Uri, http::uri::InvalidUri> {
        if self.prefix.is_empty()
            && uri.scheme().is_none()
            && uri.authority().is_none()
            && uri.path().starts_with('/')
        {
            return Ok(uri.clone());
        }
        self.uri(
            uri.path_and_query()
                .map_or_else(|| uri.path(), |pq| pq.as_str()),
        )
    }

    /// The discrepancy log as JSON (`GET /_mock/discrepancies`), once the replies already
    /// passed on have been checked (waiting at most [`DRAIN_LIMIT`]).
    pub(crate) async fn discrepancies_json(&self) -> serde_json::Value {
        self.checker.drain(DRAIN_LIMIT).await;
        self.discrepancies.to_json()
    }

    /// At start: the reply-check thread; the crawl, when configured (in the background; it
    /// ends by its time limit).
    pub(crate) fn start(self: &std::sync::Arc<Self>, api: std::sync::Arc<Api>) {
        self.checker
            .start(std::sync::Arc::downgrade(self), std::sync::Arc::clone(&api));
        if let (Some(config), Some(_)) = (&self.crawl, &self.recorder) {
            let upstream = std::sync::Arc::clone(self);
            let config = config.clone();
            tokio::spawn(async move { crawl::run(&upstream, &api, &config).await });
        }
    }

    /// At shutdown: the summary, the report files, the recording.
    pub(crate) fn finish(&self, api: &Api) {
        self.checker.drain_blocking(DRAIN_LIMIT);
        tracing::info!(upstream = %self.authority, summary = %self.discrepancies.summary(), "proxy summary");
        if let Some(path) = &self.report_path {
            let json = self.discrepancies.to_json();
            let markdown = self.discrepancies.to_markdown(&self.base, &api.meta.tag);
            let written = serde_json::to_string_pretty(&json)
                .map_err(std::io::Error::other)
                .and_then(|text| std::fs::write(path, text + "\n"))
                .and_then(|()| std::fs::write(path.with_extension("md"), markdown));
            match written {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "proxy report written (JSON and .md)")
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "writing the proxy report failed");
                }
            }
        }
        if let Some(recorder) = &self.recorder {
            match recorder.write(&api.meta.tag) {
                Ok(path) => tracing::info!(path = %path.display(), "recorded fixture written"),
                Err(error) => tracing::error!(%error, "writing the recorded fixture failed"),
            }
        }
    }
}
