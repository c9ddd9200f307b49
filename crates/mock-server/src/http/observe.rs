//! The observation of every request: one middleware around the whole router that keeps the
//! in-flight gauge, opens the server span, and counts the finished request under its operation
//! (`GET /metrics`, [`metrics`], renders the counts); the pipeline, or in real mode the proxy,
//! names the operation it matched through [`matched`], so forwarded requests count under their
//! operationId too.
//!
//! The server span (`DEBUG`, target `mock_server::http::observe`, no parent but a remote one) is
//! named `METHOD /route/{template}` after OpenTelemetry's HTTP server conventions and carries
//! `http.request.method`, `http.route`, `proxmox.operation_id`, `http.response.status_code` and
//! for a `5xx` `error.type`. With the feature `otel` it continues the `traceparent` of the
//! request. It never records the path as sent, the query, a header or the body: the route is
//! the template (`/nodes/{node}/qemu/{vmid}`), so no ID, parameter or credential reaches it.
//!
//! At the default log level the span is disabled, which costs one cached level check; the counts
//! are atomics at a fixed index per operation (`telemetry::metrics`).

use std::cell::Cell;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, header};
use tracing::Instrument as _;
use tracing::field::Empty;

use crate::state::AppState;
use crate::telemetry::metrics::{RequestLabel, Snapshot, method_index};

tokio::task_local! {
    /// The operation the pipeline matched for the request being answered (its index).
    static MATCHED: Cell<Option<usize>>;
}

/// Records the operation the pipeline (or, in real mode, the proxy) matched (an index into the
/// tag's operations); outside [`observe`] (unit tests calling the router's parts) it does nothing.
pub(crate) fn matched(operation: usize) {
    let _ = MATCHED.try_with(|cell| cell.set(Some(operation)));
}

/// The middleware (see the module docs).
pub(super) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_index(request.method());
    let api = request.uri().path().starts_with("/api2/");
    let _in_flight = state.metrics.enter();
    let span = tracing::debug_span!(
        parent: None,
        "request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = request.method().as_str(),
        http.route = Empty,
        proxmox.operation_id = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
    );
    #[cfg(feature = "otel")]
    crate::telemetry::otel::continue_trace(&span, request.headers());
    let (response, operation) = MATCHED
        .scope(Cell::new(None), async {
            let response = next.run(request).instrument(span.clone()).await;
            (response, MATCHED.with(Cell::get))
        })
        .await;
    let status = response.status().as_u16();
    let label = match operation {
        Some(index) => RequestLabel::Operation(index),
        None if api => RequestLabel::Unmatched,
        None => RequestLabel::Other,
    };
    state
        .metrics
        .observe(label, method, status, started.elapsed());
    if !span.is_disabled() {
        record(&state, &span, operation, status);
    }
    response
}

/// The span's route, name and outcome (only when the span is recorded).
fn record(state: &AppState, span: &tracing::Span, operation: Option<usize>, status: u16) {
    match operation.and_then(|index| state.api.meta.operation(index)) {
        Some(op) => {
            let name = format!("{} {}", op.method.as_str(), op.path);
            // An entered span's OpenTelemetry name no longer follows `otel.name`.
            #[cfg(feature = "otel")]
            crate::telemetry::otel::rename(span, name.clone());
            span.record("otel.name", name);
            span.record("http.route", op.path.as_str());
            span.record("proxmox.operation_id", op.operation_id.as_str());
        }
        None => {
            span.record("otel.name", "request");
        }
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("error.type", status.to_string());
        span.record("otel.status_code", "ERROR");
    }
}

/// `GET /metrics`: the Prometheus text format (behind the control endpoints' guard).
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    state.metrics.render(&mut out, |index| {
        let op = state.api.meta.operation(index)?;
        Some((op.operation_id.as_str(), op.method.as_str()))
    });
    state.store.commit_metrics().render(&mut out);
    snapshot(&state).render(&mut out);
    let mut response = Response::new(axum::body::Body::from(out));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// The gauges read from the state at scrape time.
fn snapshot(state: &AppState) -> Snapshot {
    let tables = state.store.read();
    let mut qemu = 0;
    let mut lxc = 0;
    for path in tables.guests.values() {
        if path.contains("/lxc/") {
            lxc += 1;
        } else {
            qemu += 1;
        }
    }
    let tasks = tables
        .members("/nodes")
        .map(|node| tables.member_count(&format!("{node}/tasks")))
        .sum();
    drop(tables);
    Snapshot {
        wal_bytes: state.store.wal_bytes(),
        guests: [("qemu", qemu), ("lxc", lxc)],
        tasks,
    }
}
