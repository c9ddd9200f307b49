//! Observability end to end (`docs/observability.md`): the spans of a typed SDK call through
//! the mock reach an in-process OTLP/HTTP receiver, the client span is the parent of the mock's
//! server span (the W3C `traceparent` crossed the wire), and nothing secret reaches a span, an
//! event, a log line or `/metrics`.
//!
//! Each test runs on one thread (`#[tokio::test]`'s current-thread runtime, the in-process mock
//! on it too) under a thread-local subscriber; the receiver runs on its own thread, since the
//! exporter's batch processor flushes through a blocking HTTP client.

use std::io::Write;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use proxmox_sdk::otel;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::tag;

/// An OTLP/HTTP receiver on `127.0.0.1:0`, on its own thread: keeps every request body.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |body: axum::body::Bytes| async move {
                        kept.lock().unwrap().push(body.to_vec());
                        // An empty ExportTraceServiceResponse.
                        (
                            [("content-type", "application/x-protobuf")],
                            Vec::<u8>::new(),
                        )
                    }),
                );
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Receiver { url, bodies }
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Span> {
        let mut spans = Vec::new();
        for body in self.bodies.lock().unwrap().iter() {
            let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    spans.extend(scope.spans);
                }
            }
        }
        spans
    }
}

/// The two tests of this module one at a time: each registers a thread-local subscriber, and
/// `tracing`'s per-callsite interest is shared by the process, so two registrations racing with
/// each other (and with the other tests' threads) could leave a callsite disabled for one of
/// them (seen once in CI: only one span exported).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A second dispatcher that lives as long as the process.
///
/// With exactly one live dispatcher, `tracing-core` takes a fast path: a callsite met for the
/// first time takes its interest from the default dispatcher *of the thread that meets it*. The
/// other tests of this binary run on other threads without a subscriber, so a span or event
/// they reach first (the SDK's request span, the mock's server span) was cached as "never" and
/// stayed off for this module's subscriber too (CI saw a run export no span at all). With two
/// live dispatchers every new callsite's interest is computed from all of them.
static KEEP_INTEREST_SHARED: std::sync::LazyLock<tracing::Dispatch> =
    std::sync::LazyLock::new(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::new()));

/// Registers `subscriber` as this thread's default, so that it sees every callsite, whichever
/// thread meets it first.
fn observe(
    subscriber: impl tracing::Subscriber + Send + Sync + 'static,
) -> tracing::subscriber::DefaultGuard {
    std::sync::LazyLock::force(&KEEP_INTEREST_SHARED);
    let guard = tracing::subscriber::set_default(subscriber);
    // Callsites met before this subscriber was registered: recompute their interest now.
    tracing::callsite::rebuild_interest_cache();
    guard
}

/// A tracer provider exporting to `receiver`, as an application would build it.
fn provider(receiver: &Receiver) -> otel::opentelemetry_sdk::trace::SdkTracerProvider {
    let config = otel::Config::from_env()
        .endpoint(format!("{}/v1/traces", receiver.url))
        .service_name("e2e");
    otel::tracer_provider(&config)
        .unwrap()
        .expect("export is on with an endpoint")
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|value| value.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        Some(any_value::Value::IntValue(number)) => number.to_string(),
        Some(any_value::Value::BoolValue(flag)) => flag.to_string(),
        Some(any_value::Value::DoubleValue(number)) => number.to_string(),
        other => format!("{other:?}"),
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv: &&KeyValue| kv.key == key)
        .map(|kv| text(&kv.value))
}

#[tokio::test]
async fn the_client_span_is_the_parent_of_the_server_span() {
    let receiver = Receiver::start();
    let provider = provider(&receiver);
    let subscriber = tracing_subscriber::registry().with(otel::layer(&provider));
    let _serial = SERIAL.lock().await;
    let _default = observe(subscriber);

    let (client, mock) = mock_server::testing::builder()
        .schema(tag())
        .start()
        .await
        .unwrap();
    let vms = client.nodes().node("pve1").qemu().list().await.unwrap();
    assert!(!vms.is_empty());
    mock.shutdown().await.unwrap();
    provider.force_flush().unwrap();
    let spans = receiver.spans();

    let client_span = spans
        .iter()
        .find(|span| span.kind == SpanKind::Client as i32 && span.name == "nodes_qemu_vmlist")
        .unwrap_or_else(|| panic!("no client span named by the operationId in {spans:#?}"));
    assert_eq!(
        attribute(client_span, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attribute(client_span, "url.template").as_deref(),
        Some("/nodes/{node}/qemu")
    );
    assert_eq!(
        attribute(client_span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attribute(client_span, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert!(attribute(client_span, "server.port").is_some());

    let server_span = spans
        .iter()
        .find(|span| {
            span.kind == SpanKind::Server as i32
                && attribute(span, "proxmox.operation_id").as_deref() == Some("nodes_qemu_vmlist")
        })
        .unwrap_or_else(|| panic!("no server span in {spans:#?}"));
    assert_eq!(server_span.name, "GET /nodes/{node}/qemu");
    assert_eq!(
        attribute(server_span, "http.route").as_deref(),
        Some("/nodes/{node}/qemu")
    );
    assert_eq!(
        attribute(server_span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(server_span.trace_id, client_span.trace_id, "one trace");
    assert_eq!(
        server_span.parent_span_id, client_span.span_id,
        "the server span continues the client's traceparent"
    );
    provider.shutdown().unwrap();
}

/// A `MakeWriter` into a shared buffer: the text of every log line.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Lines {
    type Writer = Lines;

    fn make_writer(&'w self) -> Lines {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_reaches_a_span_an_event_a_log_line_or_the_metrics() {
    const ROOT_PASSWORD: &str = "Rt-pw-7f3a91c2e8";
    const CI_PASSWORD: &str = "Ci-pw-5d2b88e1f4";
    let receiver = Receiver::start();
    let provider = provider(&receiver);
    let lines = Lines::default();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(lines.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
        )
        .with(otel::layer(&provider));
    let _serial = SERIAL.lock().await;
    let _default = observe(subscriber);

    let (token_client, mock) = mock_server::testing::builder()
        .schema(tag())
        .server(|server| server.root_password(ROOT_PASSWORD))
        .start()
        .await
        .unwrap();
    let mut secrets = vec![
        ROOT_PASSWORD.to_owned(),
        CI_PASSWORD.to_owned(),
        mock.token_secret().to_owned(),
        mock.handle().control_token().to_owned(),
    ];

    // A login (password, then ticket and CSRF token on every request).
    let client = proxmox_sdk::Client::builder()
        .base_url(mock.base_url())
        .password("root@pam", ROOT_PASSWORD)
        .build()
        .unwrap();
    client.login().await.unwrap();
    let ticket = client.ticket().await.unwrap();
    secrets.push(ticket.expose_value().to_owned());
    secrets.push(ticket.expose_csrf_token().to_owned());
    // A token call: the reply carries the new token's secret.
    let created: serde_json::Value = client
        .post(
            "/access/users/root@pam/token/observed",
            &serde_json::json!({ "privsep": 0 }),
        )
        .await
        .unwrap();
    let token_value = created["value"].as_str().unwrap().to_owned();
    secrets.push(token_value.clone());
    // A call with the token (its secret in the Authorization header).
    let token_client_2 = proxmox_sdk::Client::builder()
        .base_url(mock.base_url())
        .token("root@pam!observed", token_value)
        .build()
        .unwrap();
    token_client_2.nodes().list().await.unwrap();
    token_client
        .nodes()
        .node("pve1")
        .qemu()
        .list()
        .await
        .unwrap();
    // A cloud-init password.
    let _: serde_json::Value = client
        .put(
            "/nodes/pve1/qemu/100/config",
            &serde_json::json!({ "cipassword": CI_PASSWORD }),
        )
        .await
        .unwrap();
    // The metrics after all of it.
    let metrics = proxmox_sdk::reqwest::Client::new()
        .get(format!(
            "{}/metrics",
            mock.base_url().trim_end_matches("/api2/json")
        ))
        .bearer_auth(mock.handle().control_token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    drop(_default);
    mock.shutdown().await.unwrap();
    provider.force_flush().unwrap();
    let mut exported = String::new();
    for span in receiver.spans() {
        exported.push_str(&format!("{span:?}\n"));
        for kv in span
            .attributes
            .iter()
            .chain(span.events.iter().flat_map(|e| &e.attributes))
        {
            exported.push_str(&format!("{}={}\n", kv.key, text(&kv.value)));
        }
    }
    let logs = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();

    // What was captured is the traffic above, so the test can see a leak.
    assert!(exported.contains("proxmox.operation_id"), "{exported}");
    assert!(exported.contains("nodes_qemu_vmlist"), "{exported}");
    assert!(
        logs.contains("nodes_qemu_vmlist"),
        "the client span in the log lines"
    );
    assert!(
        metrics.contains("proxmox_mock_http_requests_total{operation_id=\"access_ticket"),
        "{metrics}"
    );
    for secret in &secrets {
        assert!(secret.len() >= 8, "{secret:?} is distinctive");
        for (what, captured) in [("span", &exported), ("log", &logs), ("metrics", &metrics)] {
            if let Some(at) = captured.find(secret.as_str()) {
                let start = captured[..at].rfind('\n').map_or(0, |n| n + 1);
                let end = captured[at..].find('\n').map_or(captured.len(), |n| at + n);
                panic!("a secret in a {what}: {}", &captured[start..end]);
            }
        }
    }
    provider.shutdown().unwrap();
}
