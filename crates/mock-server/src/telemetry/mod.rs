//! Observability: the counters behind `GET /metrics` ([`metrics`]) and, with the cargo feature
//! `otel`, the OpenTelemetry export of the request spans (`otel`). The HTTP side (the span per
//! request, the counting layer, the `/metrics` endpoint) lives in `http::observe`, the only
//! axum-aware part; this module knows neither axum nor the state.
//!
//! `docs/observability.md` describes what is exported and what never is (parameters, bodies,
//! credentials, tickets, CSRF tokens, token values).

pub(crate) mod metrics;
#[cfg(feature = "otel")]
pub mod otel;
