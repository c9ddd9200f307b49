//! OpenTelemetry export of the mock's request spans (cargo feature `otel`), and the
//! continuation of an incoming W3C `traceparent`.
//!
//! The binary turns export on when an OTLP endpoint is configured
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and
//! `OTEL_SDK_DISABLED` is not `true`: the presence of an endpoint is the switch, so a mock
//! started without the variables never tries to reach a collector. The exporter speaks
//! OTLP/HTTP with protobuf, reads the other standard variables itself (`..._HEADERS`,
//! `..._TIMEOUT`), and the service is `OTEL_SERVICE_NAME` or `proxmox-mock`. A library user
//! hands [`layer`] a provider of their own.
//!
//! Every request's server span (`http::observe`) continues the trace of a valid `traceparent`
//! header; without one it starts a trace. The header is parsed by OpenTelemetry's W3C
//! propagator and used for nothing else.

use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub use opentelemetry_sdk;
pub use tracing_opentelemetry;

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("could not build the OTLP span exporter")]
pub struct Error(#[source] opentelemetry_otlp::ExporterBuildError);

/// Whether the variables turn export on (see the module docs).
pub fn enabled_by_env() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED")
        .is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// A tracer provider exporting over OTLP/HTTP (protobuf) in batches, configured by the
/// variables, or `None` when they leave export off. Shut it down at exit.
pub fn tracer_provider_from_env() -> Result<Option<SdkTracerProvider>, Error> {
    if !enabled_by_env() {
        return Ok(None);
    }
    // The exporter's HTTP client uses rustls; this crate's stack is on `ring`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .map_err(Error)?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("proxmox-mock");
    }
    Ok(Some(
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build(),
    ))
}

/// The `tracing` layer that hands spans to `provider`.
pub fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("mock-server"))
}

/// Makes `span` a child of the request's `traceparent`, if it has a valid one.
pub(crate) fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(context);
}

/// Renames the OpenTelemetry span of `span` (its route is known only once the request was
/// routed, after the span was entered).
pub(crate) fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}

/// [`Extractor`] over the request's headers.
struct HeaderExtractor<'h>(&'h http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
