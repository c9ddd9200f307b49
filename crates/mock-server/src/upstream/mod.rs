//! Real mode: the mock in front of a live Proxmox VE (`--upstream URL`).
//!
//! Every request under `/api2/` is forwarded to the upstream with its credentials untouched
//! (ticket cookie, CSRF header, API token; a login passes through like any call) over one pooled
//! `reqwest` client ([`tls`] checks the upstream's certificate), and the upstream's reply comes
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
mod record;
mod report;
mod tls;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use crate::api::Api;
use crate::error::Error;

pub(crate) use forward::forward;
pub use tls::UpstreamTls;

/// Default time the upstream has to answer (headers; and between two reads of a body).
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Real mode at run time: the client, the discrepancy log, the recorder.
pub(crate) struct Upstream {
    client: reqwest::Client,
    /// `scheme://host:port` (and any path prefix), without a trailing `/`.
    base: String,
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
        let url = reqwest::Url::parse(config.url.trim()).map_err(|_| invalid("not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be https or http"));
        }
        let host = url.host_str().ok_or_else(|| invalid("no host"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials belong in requests, not in the URL"));
        }
        let authority = match url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let path = url.path().trim_end_matches('/');
        let path = path
            .strip_suffix("/api2/json")
            .unwrap_or(path)
            .trim_end_matches('/');
        let base = format!("{}://{authority}{path}", url.scheme());
        if config.tls == UpstreamTls::Insecure {
            tracing::warn!(
                upstream = %authority,
                "--upstream-insecure: the upstream's certificate is not checked; anyone in between can read the credentials that pass"
            );
        }
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls::client_config(&config.tls)?)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .http1_only()
            .build()
            .map_err(|error| Error::Upstream(format!("building the upstream client: {error}")))?;
        Ok(Upstream {
            client,
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
