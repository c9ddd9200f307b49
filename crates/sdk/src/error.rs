//! The crate's one error type, [`Error`], and the detail structs behind its variants.
//!
//! # Design
//!
//! Callers branch on a handful of situations, and each of them is a variant:
//! the server said no ([`Error::Api`]), the credentials were refused ([`Error::Auth`]),
//! the TLS handshake failed ([`Error::Tls`]), something took too long ([`Error::Timeout`]),
//! the network failed ([`Error::Connection`]), the body was not what we expected ([`Error::Decode`]),
//! or a background task finished unsuccessfully ([`Error::TaskFailed`]).
//! Everything else (a bad builder setting, parameters that do not serialize to an object) is
//! [`Error::Config`] or [`Error::InvalidRequest`].
//!
//! Variants that carry a lot of detail wrap an opaque struct ([`ApiError`], [`AuthError`],
//! [`TaskFailedError`]) with accessors, so fields can be added later and `Error` stays small
//! (`Result<T, Error>` is returned everywhere, and a large error makes every call slower).
//!
//! `Display` describes only this crate's layer; the cause (a `reqwest`, `rustls` or `serde_json`
//! error) is reachable through [`std::error::Error::source`], and logs should print the chain.
//! Third-party error types never appear in a variant's public signature: they are boxed as
//! `dyn std::error::Error`, so upgrading `reqwest` is not a breaking change.
//!
//! No error ever contains a secret.
//! Request URLs are stripped from `reqwest` errors, and the body excerpt in [`Error::Decode`] is
//! replaced by `<redacted>` for every path under `/access` (tickets, CSRF tokens, token secrets)
//! and every path whose reply schema carries a secret (console tickets and passwords, `mtunnel`,
//! webhook secrets...; the list is generated from the schema, see the crate docs).

use std::collections::BTreeMap;
use std::fmt;

use reqwest::{Method, StatusCode};
use shared_types::Upid;

use crate::tfa::TfaChallenge;

/// A boxed error used as the `source` of a variant.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with this crate's [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when talking to the Proxmox VE API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an HTTP error status (other than a refused login).
    #[error(transparent)]
    Api(ApiError),
    /// The credentials were refused, or a second factor is required.
    #[error(transparent)]
    Auth(AuthError),
    /// The TLS handshake failed: an untrusted certificate, a fingerprint mismatch, or a server that
    /// does not speak TLS.
    #[error("TLS handshake with the Proxmox API failed")]
    Tls {
        /// The `rustls` or `reqwest` error.
        #[source]
        source: BoxError,
    },
    /// A request, a connection attempt or a wait did not finish in time.
    #[error("{what} timed out")]
    Timeout {
        /// What timed out, for example `GET /nodes` or `waiting for task UPID:…`.
        what: String,
        /// The underlying error, if the timeout was reported by the HTTP stack.
        #[source]
        source: Option<BoxError>,
    },
    /// The connection could not be established or broke while the request was under way.
    #[error("connection to the Proxmox API failed during {what}")]
    Connection {
        /// The request that failed, for example `GET /nodes`.
        what: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The response body did not have the expected shape.
    #[error("could not decode the response to {path}{} (body starts with {excerpt:?})", field.as_deref().map(|field| format!(" at {field}")).unwrap_or_default())]
    Decode {
        /// The API path whose response could not be decoded.
        path: String,
        /// Where in the body decoding failed (`data[3].pressurecpusome`), when known (boxed so
        /// that `Error` stays small).
        field: Option<Box<str>>,
        /// The first bytes of the body, or `<redacted>` for paths whose answers carry secrets.
        excerpt: String,
        /// The `serde_json` error.
        #[source]
        source: BoxError,
    },
    /// A background task ended with an exit status other than `OK`.
    #[error(transparent)]
    TaskFailed(TaskFailedError),
    /// The client was configured wrongly (a bad URL, fingerprint, certificate or variable).
    #[error("invalid client configuration: {message}")]
    Config {
        /// What is wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The request could not be built, for example because its parameters do not serialize to a
    /// JSON object.
    #[error("invalid request: {message}")]
    InvalidRequest {
        /// What is wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// The HTTP status of an [`Error::Api`] or of an [`Error::Auth`] caused by a 401 answer.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Api(api) => Some(api.status()),
            Error::Auth(auth) => auth.status(),
            _ => None,
        }
    }

    /// Whether this is an [`Error::Api`].
    pub fn is_api(&self) -> bool {
        matches!(self, Error::Api(_))
    }

    /// Whether this is an [`Error::Auth`].
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Auth(_))
    }

    /// Whether this is an [`Error::Tls`].
    pub fn is_tls(&self) -> bool {
        matches!(self, Error::Tls { .. })
    }

    /// Whether this is an [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Whether this is an [`Error::Connection`].
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Connection { .. })
    }

    /// Whether this is an [`Error::Decode`].
    pub fn is_decode(&self) -> bool {
        matches!(self, Error::Decode { .. })
    }

    /// Whether this is an [`Error::TaskFailed`].
    pub fn is_task_failed(&self) -> bool {
        matches!(self, Error::TaskFailed(_))
    }

    /// Whether the object the request names does not exist.
    ///
    /// True for a 404, and for the way Proxmox itself usually says it: a `500` whose message says
    /// `... does not exist` (`Configuration file 'nodes/pve1/qemu-server/999.conf' does not
    /// exist`, `storage 'nfs1' does not exist`) or `no such ...` (`no such VM ('999')`, `no such
    /// task`). Proxmox's handlers `die` with these texts, and a `die` becomes a 500.
    /// Note that such a message may name an object the request only refers to (a `POST` that
    /// names a missing storage), not the path itself.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Api(api) => api.is_not_found(),
            _ => false,
        }
    }

    /// Whether a cluster node could not reach another one (Proxmox's 595 and 596 answers).
    ///
    /// Proxmox proxies a request for `/nodes/{node}/…` to that node; if the node is offline the
    /// answer is 595 ("no route to host", "connection refused") or 596 (a broken connection).
    pub fn is_node_unreachable(&self) -> bool {
        matches!(self.status().map(|s| s.as_u16()), Some(595 | 596))
    }

    /// Proxmox's message for an [`Error::Api`] or [`Error::Auth`].
    pub fn api_message(&self) -> Option<&str> {
        match self {
            Error::Api(api) => Some(api.message()),
            Error::Auth(auth) => Some(auth.message()),
            _ => None,
        }
    }

    /// The per-parameter errors of an [`Error::Api`], keyed by parameter name; `None` when
    /// Proxmox sent none (and for every other variant).
    pub fn param_errors(&self) -> Option<&BTreeMap<String, String>> {
        match self {
            Error::Api(api) if !api.errors().is_empty() => Some(api.errors()),
            _ => None,
        }
    }

    /// The failed task of an [`Error::TaskFailed`]: its exit status and the tail of its log.
    pub fn task_failure(&self) -> Option<&TaskFailedError> {
        match self {
            Error::TaskFailed(failure) => Some(failure),
            _ => None,
        }
    }

    /// The second-factor challenge, when a login needs one and no answer was configured.
    pub fn tfa_challenge(&self) -> Option<&TfaChallenge> {
        match self {
            Error::Auth(auth) => auth.tfa_challenge(),
            _ => None,
        }
    }

    /// Builds an [`Error::Config`] without a source.
    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            source: None,
        }
    }

    /// Builds an [`Error::Config`] with a source.
    pub(crate) fn config_with(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Config {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Builds an [`Error::InvalidRequest`] without a source.
    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Error::InvalidRequest {
            message: message.into(),
            source: None,
        }
    }

    /// Classifies a `reqwest` error that happened during `what` (for example `GET /nodes`).
    ///
    /// The URL is stripped first: it is already in `what`, and a query string could carry values
    /// the caller considers private.
    pub(crate) fn from_reqwest(what: impl Into<String>, error: reqwest::Error) -> Self {
        let what = what.into();
        let error = error.without_url();
        if is_tls_error(&error) {
            Error::Tls {
                source: Box::new(error),
            }
        } else if error.is_timeout() {
            Error::Timeout {
                what,
                source: Some(Box::new(error)),
            }
        } else if error.is_builder() {
            Error::InvalidRequest {
                message: format!("could not build {what}"),
                source: Some(Box::new(error)),
            }
        } else {
            Error::Connection {
                what,
                source: Box::new(error),
            }
        }
    }

    /// Whether a request that failed with this error may be sent again (for idempotent methods).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Connection { .. } => true,
            Error::Api(api) => is_retryable_status(api.status()),
            _ => false,
        }
    }
}

/// Whether an HTTP status is worth retrying: 502, 503 and 504 only.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Whether a `rustls` error is somewhere in the chain of `error`.
///
/// `tokio-rustls` reports handshake failures as an `io::Error` wrapping a `rustls::Error`, and
/// `io::Error::source` skips the wrapped error itself, so an `io::Error` is unwrapped with
/// `get_ref` instead.
fn is_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(level) = current {
        if level.is::<rustls::Error>() {
            return true;
        }
        current = match level.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => level.source(),
        };
    }
    false
}

/// An HTTP error answer from the Proxmox API.
///
/// Proxmox puts its message in the HTTP reason phrase (`HTTP/1.1 400 Parameter verification
/// failed.`) and, for bad parameters, a per-parameter map in the body:
/// `{"data": null, "errors": {"vmid": "value must be at least 100"}}`.
/// Some proxies and the mock server also send a `message` field in the body, which wins.
pub struct ApiError {
    inner: Box<ApiErrorInner>,
}

struct ApiErrorInner {
    method: Method,
    path: String,
    status: StatusCode,
    message: String,
    errors: BTreeMap<String, String>,
}

impl ApiError {
    /// Builds the error from an answer's status, reason phrase and body.
    pub(crate) fn from_response(
        method: Method,
        path: impl Into<String>,
        status: StatusCode,
        reason: Option<&str>,
        body: &[u8],
    ) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let body_message = parsed
            .as_ref()
            .and_then(|value| value.get("message"))
            .and_then(|message| message.as_str())
            .map(str::trim)
            .filter(|message| !message.is_empty());
        let reason = reason.map(str::trim).filter(|reason| !reason.is_empty());
        let message = body_message
            .or(reason)
            .or(status.canonical_reason())
            .unwrap_or("unknown error")
            .to_owned();
        let errors = parsed
            .as_ref()
            .and_then(|value| value.get("errors"))
            .and_then(|errors| errors.as_object())
            .map(|errors| {
                errors
                    .iter()
                    .map(|(name, value)| {
                        let text = match value {
                            serde_json::Value::String(text) => text.trim().to_owned(),
                            other => other.to_string(),
                        };
                        (name.clone(), text)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ApiError {
            inner: Box::new(ApiErrorInner {
                method,
                path: path.into(),
                status,
                message,
                errors,
            }),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// Proxmox's message, for example `Parameter verification failed.`.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The per-parameter errors, keyed by parameter name (empty when Proxmox sent none).
    pub fn errors(&self) -> &BTreeMap<String, String> {
        &self.inner.errors
    }

    /// Whether the answer says the object does not exist: a 404, or a 500 whose message says
    /// `does not exist` or `no such` (see [`Error::is_not_found`]).
    pub fn is_not_found(&self) -> bool {
        let status = self.inner.status;
        if status == StatusCode::NOT_FOUND {
            return true;
        }
        if status != StatusCode::INTERNAL_SERVER_ERROR {
            return false;
        }
        let message = self.inner.message.to_ascii_lowercase();
        message.contains("does not exist")
            || message.starts_with("no such ")
            || message.contains(": no such ")
    }

    /// The request's method.
    pub fn method(&self) -> &Method {
        &self.inner.method
    }

    /// The request's API path, for example `/nodes/pve1/qemu`.
    pub fn path(&self) -> &str {
        &self.inner.path
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("method", &self.inner.method)
            .field("path", &self.inner.path)
            .field("status", &self.inner.status)
            .field("message", &self.inner.message)
            .field("errors", &self.inner.errors)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} failed with HTTP {}: {}",
            self.inner.method,
            self.inner.path,
            self.inner.status.as_u16(),
            self.inner.message
        )?;
        for (n_error, (name, text)) in self.inner.errors.iter().enumerate() {
            let separator = if n_error == 0 { " (" } else { ", " };
            write!(f, "{separator}{name}: {text}")?;
        }
        if !self.inner.errors.is_empty() {
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A refused login, a refused ticket, or a login that needs a second factor.
pub struct AuthError {
    inner: Box<AuthErrorInner>,
}

struct AuthErrorInner {
    message: String,
    status: Option<StatusCode>,
    challenge: Option<TfaChallenge>,
    source: Option<BoxError>,
}

impl AuthError {
    /// A refusal with a message and, if it came from an HTTP answer, its status.
    pub(crate) fn new(message: impl Into<String>, status: Option<StatusCode>) -> Self {
        AuthError {
            inner: Box::new(AuthErrorInner {
                message: message.into(),
                status,
                challenge: None,
                source: None,
            }),
        }
    }

    /// A login that stopped at a second-factor challenge nobody answered.
    pub(crate) fn tfa_required(challenge: TfaChallenge) -> Self {
        AuthError {
            inner: Box::new(AuthErrorInner {
                message: "a second factor is required".to_owned(),
                status: None,
                challenge: Some(challenge),
                source: None,
            }),
        }
    }

    /// Attaches the underlying error.
    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// What went wrong, for example `authentication failure`.
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The HTTP status of the refusal, if the server sent one.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The second-factor challenge, if the login needs one; answer it with
    /// [`Client::complete_tfa`](crate::Client::complete_tfa).
    pub fn tfa_challenge(&self) -> Option<&TfaChallenge> {
        self.inner.challenge.as_ref()
    }

    /// Whether the login needs a second factor.
    pub fn is_tfa_required(&self) -> bool {
        self.inner.challenge.is_some()
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("message", &self.inner.message)
            .field("status", &self.inner.status)
            .field("challenge", &self.inner.challenge)
            .field("source", &self.inner.source)
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "authentication failed: {}", self.inner.message)
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|source| source as &(dyn std::error::Error + 'static))
    }
}

/// A background task that ended with an exit status other than `OK` (or `WARNINGS: n`).
pub struct TaskFailedError {
    inner: Box<TaskFailedInner>,
}

struct TaskFailedInner {
    upid: Upid,
    exit_status: String,
    log_tail: Vec<String>,
}

impl TaskFailedError {
    /// Builds the error.
    pub(crate) fn new(upid: Upid, exit_status: String, log_tail: Vec<String>) -> Self {
        TaskFailedError {
            inner: Box::new(TaskFailedInner {
                upid,
                exit_status,
                log_tail,
            }),
        }
    }

    /// The task's identifier.
    pub fn upid(&self) -> &Upid {
        &self.inner.upid
    }

    /// The exit status Proxmox reported, usually the error message.
    pub fn exit_status(&self) -> &str {
        &self.inner.exit_status
    }

    /// The last lines of the task log, oldest first.
    pub fn log_tail(&self) -> &[String] {
        &self.inner.log_tail
    }
}

impl fmt::Debug for TaskFailedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskFailedError")
            .field("upid", &self.inner.upid.to_string())
            .field("exit_status", &self.inner.exit_status)
            .field("log_tail", &self.inner.log_tail)
            .finish()
    }
}

impl fmt::Display for TaskFailedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {} failed: {}",
            self.inner.upid, self.inner.exit_status
        )
    }
}

impl std::error::Error for TaskFailedError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_api(status: u16, reason: Option<&str>, body: &str, expected: &str) {
        let status = StatusCode::from_u16(status).expect("valid status");
        let error = ApiError::from_response(
            Method::POST,
            "/nodes/pve1/qemu",
            status,
            reason,
            body.as_bytes(),
        );
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn api_error_uses_reason_phrase() {
        check_api(
            400,
            Some("Parameter verification failed."),
            r#"{"data":null,"errors":{"vmid":"value must be at least 100\n","memory":"type check ('integer') failed"}}"#,
            "POST /nodes/pve1/qemu failed with HTTP 400: Parameter verification failed. \
             (memory: type check ('integer') failed, vmid: value must be at least 100)",
        );
    }

    #[test]
    fn api_error_prefers_message_field() {
        check_api(
            500,
            Some("Internal Server Error"),
            r#"{"data":null,"message":"VM 100 already exists\n"}"#,
            "POST /nodes/pve1/qemu failed with HTTP 500: VM 100 already exists",
        );
    }

    #[test]
    fn api_error_falls_back_to_canonical_reason() {
        check_api(
            503,
            None,
            "",
            "POST /nodes/pve1/qemu failed with HTTP 503: Service Unavailable",
        );
        check_api(
            595,
            Some(""),
            "not json",
            "POST /nodes/pve1/qemu failed with HTTP 595: unknown error",
        );
    }

    #[test]
    fn api_error_keeps_param_errors() {
        let error = Error::Api(ApiError::from_response(
            Method::POST,
            "/x",
            StatusCode::BAD_REQUEST,
            None,
            br#"{"data":null,"errors":{"cores":5}}"#,
        ));
        let errors = error.param_errors().expect("an API error");
        assert_eq!(errors.get("cores").map(String::as_str), Some("5"));
        assert_eq!(error.status(), Some(StatusCode::BAD_REQUEST));
        assert!(!error.is_retryable());
    }

    #[test]
    fn no_param_errors_is_none() {
        let error = Error::Api(ApiError::from_response(
            Method::GET,
            "/nodes/pve1/qemu/999/config",
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist"),
            br#"{"data":null}"#,
        ));
        assert_eq!(error.param_errors(), None);
        assert_eq!(
            Error::config("bad url").param_errors(),
            None,
            "not an API error"
        );
    }

    fn check_not_found(status: u16, reason: &str, expected: bool) {
        let status = StatusCode::from_u16(status).expect("valid status");
        let error = Error::Api(ApiError::from_response(
            Method::GET,
            "/x",
            status,
            Some(reason),
            b"",
        ));
        assert_eq!(error.is_not_found(), expected, "{status} {reason}");
    }

    #[test]
    fn not_found_as_proxmox_says_it() {
        check_not_found(404, "Not Found", true);
        check_not_found(
            500,
            "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist",
            true,
        );
        check_not_found(500, "storage 'nfs1' does not exist", true);
        check_not_found(500, "user 'bob@pve' does not exist\n", true);
        check_not_found(500, "no such VM ('999')", true);
        check_not_found(500, "No such task", true);
        check_not_found(500, "unable to read task log: no such file", true);
        check_not_found(500, "VM 100 already running", false);
        check_not_found(500, "snapshot feature is not available", false);
        check_not_found(400, "does not exist", false);
        check_not_found(595, "no such host", false);
        assert!(
            !Error::Timeout {
                what: "GET /".into(),
                source: None
            }
            .is_not_found()
        );
    }

    #[test]
    fn node_unreachable_statuses() {
        for (code, expected) in [(595, true), (596, true), (500, false)] {
            let status = StatusCode::from_u16(code).expect("valid status");
            let error = Error::Api(ApiError::from_response(
                Method::GET,
                "/nodes/b/status",
                status,
                None,
                b"",
            ));
            assert_eq!(error.is_node_unreachable(), expected, "{code}");
        }
    }

    #[test]
    fn retryable_classification() {
        for (code, expected) in [
            (502, true),
            (503, true),
            (504, true),
            (500, false),
            (429, false),
            (404, false),
        ] {
            let status = StatusCode::from_u16(code).expect("valid status");
            assert_eq!(is_retryable_status(status), expected, "{code}");
        }
        assert!(
            Error::Timeout {
                what: "GET /".into(),
                source: None
            }
            .is_retryable()
        );
        assert!(
            !Error::Tls {
                source: "bad cert".into()
            }
            .is_retryable()
        );
    }

    #[test]
    fn error_stays_small() {
        assert!(
            std::mem::size_of::<Error>() <= 80,
            "{}",
            std::mem::size_of::<Error>()
        );
    }
}
