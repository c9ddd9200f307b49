//! OpenTelemetry export of the client's spans (cargo feature `otel`): an OTLP exporter over
//! HTTP/protobuf, configured by the standard variables, and the W3C `traceparent` on every
//! request sent inside a span.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use tracing_subscriber::prelude::*;
//! let config = proxmox_sdk::otel::Config::from_env();
//! let provider = proxmox_sdk::otel::tracer_provider(&config)?; // None: export is off
//! tracing_subscriber::registry()
//!     .with(provider.as_ref().map(proxmox_sdk::otel::layer))
//!     .init();
//! // ... requests ...
//! if let Some(provider) = provider {
//!     provider.shutdown()?; // exports what is still buffered
//! }
//! # Ok(()) }
//! ```
//!
//! Export is on when an endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT`, or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, or [`Config::endpoint`]) and `OTEL_SDK_DISABLED` is not
//! `true`. The exporter reads the other standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT` and their `_TRACES_` forms); the resource reads
//! `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (the service is
//! [`Config::service_name`] otherwise). Spans leave in batches from a background thread
//! (OpenTelemetry's batch span processor and its blocking HTTP client), never on the request
//! path. Only `http://` collector URLs are tested.
//!
//! Propagation: every request the client sends while a span of it is entered carries that
//! span's `traceparent` (and `tracestate`), so a server that continues incoming traces (the
//! mock with its own `otel` feature, or any instrumented proxy) makes its span a child of the
//! client's. Without an OpenTelemetry layer in the subscriber, nothing is added.

use opentelemetry::propagation::{Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

pub use opentelemetry_sdk;
pub use tracing_opentelemetry;

/// Where and as what spans are exported.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Config {
    /// The OTLP/HTTP traces URL (`http://collector:4318/v1/traces`). `None`: the variables
    /// decide (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as is, or `OTEL_EXPORTER_OTLP_ENDPOINT` plus
    /// `/v1/traces`); with neither, export is off.
    pub endpoint: Option<String>,
    /// `service.name` when `OTEL_SERVICE_NAME` is not set.
    pub service_name: String,
    /// `OTEL_SDK_DISABLED=true`: export is off whatever else is set.
    pub disabled: bool,
    /// Whether an endpoint variable is set.
    endpoint_from_env: bool,
}

impl Config {
    /// The configuration the standard variables give (service `proxmox-sdk`).
    pub fn from_env() -> Config {
        let set = |name: &str| std::env::var_os(name).is_some_and(|value| !value.is_empty());
        Config {
            endpoint: None,
            service_name: "proxmox-sdk".to_owned(),
            disabled: std::env::var("OTEL_SDK_DISABLED")
                .is_ok_and(|value| value.trim().eq_ignore_ascii_case("true")),
            endpoint_from_env: set("OTEL_EXPORTER_OTLP_ENDPOINT")
                || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        }
    }

    /// Sets the traces URL (instead of the variables).
    pub fn endpoint(mut self, url: impl Into<String>) -> Config {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets the service name used when `OTEL_SERVICE_NAME` is not set.
    pub fn service_name(mut self, name: impl Into<String>) -> Config {
        self.service_name = name.into();
        self
    }

    /// Whether spans are exported with this configuration.
    pub fn is_enabled(&self) -> bool {
        !self.disabled && (self.endpoint.is_some() || self.endpoint_from_env)
    }
}

/// Why the exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("could not build the OTLP span exporter")]
pub struct Error(#[source] opentelemetry_otlp::ExporterBuildError);

/// A tracer provider exporting over OTLP/HTTP (protobuf) in batches, or `None` when export is
/// off (see the module docs). Shut it down (or drop it) at exit to export what is buffered.
pub fn tracer_provider(config: &Config) -> Result<Option<SdkTracerProvider>, Error> {
    if !config.is_enabled() {
        return Ok(None);
    }
    // The exporter's HTTP client uses rustls; this crate's stack is on `ring`.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary);
    if let Some(endpoint) = &config.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let exporter = builder.build().map_err(Error)?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(config.service_name.clone());
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
    tracing_opentelemetry::layer().with_tracer(provider.tracer("proxmox-sdk"))
}

/// Adds the W3C trace context of `span` to outgoing headers (nothing when the span is not
/// recorded by an OpenTelemetry layer).
pub(crate) fn inject(span: &tracing::Span, headers: &mut HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let context = span.context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// [`Injector`] over reqwest's headers.
struct HeaderInjector<'h>(&'h mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}
