//! The observation of every request: one layer around the whole router ([`ObserveLayer`]) that
//! keeps the in-flight gauge, opens the server span, counts the finished request under its
//! operation (`GET /metrics`, [`metrics`], renders the counts) and writes the `DEBUG` log line
//! of the request; the pipeline, or in real mode the proxy, names the operation it matched
//! through [`matched`], so forwarded requests count under their operationId too.
//!
//! The server span (`DEBUG`, target `mock_server::http::observe`, no parent but a remote one) is
//! named `METHOD /route/{template}` after OpenTelemetry's HTTP server conventions and carries
//! `http.request.method`, `http.route`, `proxmox.operation_id`, `http.response.status_code` and
//! for a `5xx` `error.type`. With the feature `otel` it continues the `traceparent` of the
//! request. It never records the path as sent, the query, a header or the body: the route is
//! the template (`/nodes/{node}/qemu/{vmid}`), so no ID, parameter or credential reaches it.
//!
//! The layer is a hand-written `tower` service with its own response future rather than
//! `axum::middleware::from_fn`, which boxes every response future and clones the inner router
//! into a boxed `Next` per request (with the former log layer, about 5,400 instructions per
//! request in callgrind, 10 % of a `GET /version`). At the default log level the span is
//! disabled, which costs one cached level check; the counts are atomics at a fixed index per
//! operation (`telemetry::metrics`).

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderValue, header};
use tracing::field::Empty;

use crate::state::AppState;
use crate::telemetry::metrics::{RequestLabel, Snapshot, method_index};

tokio::task_local! {
    /// The operation the pipeline matched for the request being answered (its index).
    static MATCHED: Cell<Option<usize>>;
}

/// Records the operation the pipeline (or, in real mode, the proxy) matched (an index into the
/// tag's operations); outside [`ObserveLayer`] (unit tests calling the router's parts) it does
/// nothing.
pub(crate) fn matched(operation: usize) {
    let _ = MATCHED.try_with(|cell| cell.set(Some(operation)));
}

/// The layer (see the module docs).
#[derive(Clone)]
pub(super) struct ObserveLayer {
    state: AppState,
}

impl ObserveLayer {
    pub(super) fn new(state: AppState) -> Self {
        ObserveLayer { state }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service [`ObserveLayer`] wraps around the router.
#[derive(Clone)]
pub(super) struct Observe<S> {
    inner: S,
    state: AppState,
}

impl<S> tower::Service<Request> for Observe<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let method = method_index(request.method());
        let api = request.uri().path().starts_with("/api2/");
        // The path only (a query may carry secrets), and only when the log line is wanted.
        let logged = tracing::enabled!(target: LOG_TARGET, tracing::Level::DEBUG)
            .then(|| (request.method().clone(), request.uri().path().to_owned()));
        self.state.metrics.arrive();
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
        let inner = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Observed {
            inner,
            pending: Pending {
                state: self.state.clone(),
                started,
                method,
                api,
                logged,
                span,
                operation: None,
            },
        }
    }
}

/// The target of the request log line (where the former logging layer wrote it).
const LOG_TARGET: &str = "mock_server::server";

pin_project_lite::pin_project! {
    /// The response future of [`Observe`]: polls the router's future inside the span and with the
    /// task-local [`MATCHED`] cell set, and counts the request when it is answered.
    pub(super) struct Observed<F> {
        #[pin]
        inner: F,
        pending: Pending,
    }
}

/// What [`Observed`] keeps about its request; dropping it (answered or abandoned) takes the
/// request out of the in-flight gauge.
struct Pending {
    state: AppState,
    started: Instant,
    method: usize,
    api: bool,
    logged: Option<(http::Method, String)>,
    span: tracing::Span,
    operation: Option<usize>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.state.metrics.leave();
    }
}

impl<F> Future for Observed<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let pending = this.pending;
        let inner = this.inner;
        let polled = {
            let _entered = pending.span.enter();
            MATCHED.sync_scope(Cell::new(pending.operation), || {
                let polled = inner.poll(cx);
                pending.operation = MATCHED.with(Cell::get);
                polled
            })
        };
        let Poll::Ready(Ok(response)) = polled else {
            return polled;
        };
        let status = response.status().as_u16();
        let elapsed = pending.started.elapsed();
        let label = match pending.operation {
            Some(index) => RequestLabel::Operation(index),
            None if pending.api => RequestLabel::Unmatched,
            None => RequestLabel::Other,
        };
        pending
            .state
            .metrics
            .observe(label, pending.method, status, elapsed);
        if !pending.span.is_disabled() {
            record(&pending.state, &pending.span, pending.operation, status);
        }
        if let Some((method, path)) = pending.logged.take() {
            tracing::debug!(
                target: LOG_TARGET,
                %method,
                %path,
                status,
                elapsed_us = elapsed.as_micros() as u64,
                "request"
            );
        }
        Poll::Ready(Ok(response))
    }
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
