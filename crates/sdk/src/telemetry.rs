//! The `tracing` spans of the client: one per request and one per task wait.
//!
//! A request's span (`INFO`, target `proxmox_sdk::telemetry`, span name `request`) follows
//! OpenTelemetry's HTTP client conventions: its OpenTelemetry name (`otel.name`) is the
//! operationId when the typed API made the request (`nodes_qemu_vmlist`), otherwise the method
//! alone (`GET`: a dynamic request's path is concrete, and a concrete path is neither a bounded
//! name nor free of IDs). Its fields: `http.request.method`, `url.template` (typed API only),
//! `proxmox.operation_id`, `server.address`, `server.port`, `http.response.status_code`,
//! `http.request.resend_count` and `proxmox.retry_reason` (when retried or the ticket was
//! renewed), `error.type` (the status code or the kind of failure) and `otel.status_code`. It
//! covers authentication (a login it waits for), every attempt, the waits between them and the
//! decoding of the reply. A span never records the concrete path, the query, a header, a body,
//! a parameter, a ticket, a CSRF token or a token secret.
//!
//! A task wait's span (`proxmox.task.wait`) carries the task's type and node and how it ended.
//!
//! Without a subscriber that wants them, creating these spans is a cached level check and
//! their fields are never evaluated. With the cargo feature `otel`, [`crate::otel`] exports them
//! and each attempt carries the W3C `traceparent` of the request's span.

use reqwest::Method;
use tracing::Span;
use tracing::field::Empty;
use url::Url;

use crate::error::Error;

/// What the typed API knows about a request: its operationId and templated path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operation {
    /// The operationId (`nodes_qemu_vmlist`).
    pub(crate) id: &'static str,
    /// The templated path below `/api2/json` (`/nodes/{node}/qemu`).
    pub(crate) template: &'static str,
}

/// The span of one request.
pub(crate) fn request_span(method: &Method, operation: Option<Operation>, base: &Url) -> Span {
    tracing::info_span!(
        "request",
        otel.name = operation.map_or(method.as_str(), |op| op.id),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method.as_str(),
        url.template = operation.map(|op| op.template),
        proxmox.operation_id = operation.map(|op| op.id),
        server.address = base.host_str(),
        server.port = base.port_or_known_default(),
        http.response.status_code = Empty,
        http.request.resend_count = Empty,
        proxmox.retry_reason = Empty,
        error.type = Empty,
    )
}

/// Records the status of an answer.
pub(crate) fn record_status(span: &Span, status: reqwest::StatusCode) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status.as_u16());
    if status.is_client_error() || status.is_server_error() {
        span.record("error.type", status.as_str());
        span.record("otel.status_code", "ERROR");
    }
}

/// Records a failure without an answer.
pub(crate) fn record_error(span: &Span, error: &Error) {
    if span.is_disabled() {
        return;
    }
    span.record("error.type", error_type(error));
    span.record("otel.status_code", "ERROR");
}

/// Records that a request is sent again, and why: the status code of the answer that is retried
/// (`503`), the kind of failure (`connection`, `timeout`) or `ticket renewal` (after a `401`).
pub(crate) fn record_resend(span: &Span, n_resends: u32, reason: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("http.request.resend_count", n_resends);
    span.record("proxmox.retry_reason", reason);
}

/// The kind of a failure, as `error.type` (never its message, which may quote a reply).
pub(crate) fn error_type(error: &Error) -> &'static str {
    match error {
        Error::Api(_) => "api",
        Error::Auth(_) => "auth",
        Error::Tls { .. } => "tls",
        Error::Timeout { .. } => "timeout",
        Error::Connection { .. } => "connection",
        Error::Decode { .. } => "decode",
        Error::TaskFailed(_) => "task_failed",
        Error::Config { .. } => "config",
        Error::InvalidRequest { .. } => "invalid_request",
    }
}

/// Records how a task wait ended: `ok`, `warnings`, or the kind of failure (a failed task's
/// exit status is not recorded: it is free text from the server).
pub(crate) fn record_task_outcome(span: &Span, outcome: &crate::Result<crate::TaskOutcome>) {
    if span.is_disabled() {
        return;
    }
    match outcome {
        Ok(outcome) if outcome.is_ok() => span.record("proxmox.task.outcome", "ok"),
        Ok(_) => span.record("proxmox.task.outcome", "warnings"),
        Err(error) => {
            span.record("error.type", error_type(error));
            span.record("otel.status_code", "ERROR")
        }
    };
}

/// The span of a task wait.
pub(crate) fn task_wait_span(upid: &shared_types::Upid) -> Span {
    tracing::info_span!(
        "proxmox.task.wait",
        otel.kind = "internal",
        otel.status_code = Empty,
        proxmox.task.type = upid.worker_type.as_str(),
        proxmox.task.node = upid.node.as_str(),
        proxmox.task.outcome = Empty,
        error.type = Empty,
    )
}
