//! Real mode (`--upstream`): a mock in front of another mock behaves as the upstream does, with
//! no discrepancies on clean traffic; a lying upstream yields one discrepancy per lie with its
//! JSON pointer; `--strict` refuses bad requests before the upstream sees them; a recording of
//! one mock replays as the same cluster; upstream failures answer quickly and clearly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use mock_server::{
    AclSeed, Fixture, GroupSeed, GuestSeed, MockServer, MockServerHandle, TokenSeed,
    UpstreamConfig, UpstreamTls, UserSeed,
};
use serde_json::{Value, json};

use crate::client;

/// The root URL (`http://127.0.0.1:PORT`) of a server.
fn root(server: &MockServerHandle) -> String {
    server.base_url().trim_end_matches("/api2/json").to_owned()
}

/// A proxy in front of `upstream` (authentication off: only the control endpoints use it),
/// prepared on a thread without an async runtime, as the `mock-server` binary prepares it.
async fn proxy(config: UpstreamConfig) -> MockServerHandle {
    let builder = MockServer::builder().auth(false).upstream(config);
    let prepared = std::thread::spawn(move || builder.prepare())
        .join()
        .unwrap()
        .unwrap();
    prepared.spawn().await.unwrap()
}

/// `(status, body)` of a request.
async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A ticket cookie and CSRF token for root@pam, through `base`.
async fn login(base: &str) -> (String, String) {
    let (status, body) = send(
        client()
            .post(format!("{base}/api2/json/access/ticket"))
            .form(&[("username", "root@pam"), ("password", "secret")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        format!("PVEAuthCookie={}", body["data"]["ticket"].as_str().unwrap()),
        body["data"]["CSRFPreventionToken"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

async fn get_json(base: &str, cookie: &str, path: &str) -> (u16, Value) {
    send(
        client()
            .get(format!("{base}/api2/json{path}"))
            .header("Cookie", cookie),
    )
    .await
}

async fn discrepancies(proxy: &MockServerHandle) -> Value {
    let (status, body) = send(client().get(format!("{}/_mock/discrepancies", root(proxy)))).await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// Fields of `/cluster/resources` and status replies that move with time; not compared.
const MOVING: &[&str] = &[
    "uptime",
    "cpu",
    "mem",
    "memhost",
    "netin",
    "netout",
    "diskread",
    "diskwrite",
    "disk",
    "pressurecpufull",
    "pressurecpusome",
    "pressureiofull",
    "pressureiosome",
    "pressurememoryfull",
    "pressurememorysome",
    "pid",
];

fn without_moving(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(without_moving).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| !MOVING.contains(&key.as_str()) && key.as_str() != "digest")
                .map(|(key, value)| (key.clone(), without_moving(value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[tokio::test]
async fn clean_traffic_passes_unchanged_and_without_discrepancies() {
    let upstream = crate::start().await;
    let proxy = proxy(UpstreamConfig::new(root(&upstream))).await;
    let (direct, via) = (root(&upstream), root(&proxy));
    let (cookie, csrf) = login(&via).await;
    for path in [
        "/version",
        "/nodes",
        "/storage",
        "/pools",
        "/access/users",
        "/access/acl",
        "/nodes/pve1/qemu",
        "/nodes/pve1/qemu/100/config",
        "/nodes/pve1/lxc/200/config",
        "/cluster/resources",
        "/cluster/status",
    ] {
        let (direct_status, direct_body) = get_json(&direct, &cookie, path).await;
        let (via_status, via_body) = get_json(&via, &cookie, path).await;
        assert_eq!(
            (via_status, direct_status),
            (200, 200),
            "{path}: {via_body}"
        );
        assert_eq!(
            without_moving(&via_body),
            without_moving(&direct_body),
            "{path}"
        );
    }
    // A write passes with its CSRF token, and lands upstream.
    let (status, body) = send(
        client()
            .post(format!("{via}/api2/json/pools"))
            .header("Cookie", &cookie)
            .header("CSRFPreventionToken", &csrf)
            .form(&[
                ("poolid", "viaproxy"),
                ("comment", "made through the proxy"),
            ]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, pools) = get_json(&direct, &cookie, "/pools").await;
    assert!(pools.to_string().contains("viaproxy"), "{pools}");
    // Errors come back as the upstream sent them.
    let (status, body) = get_json(&via, &cookie, "/nodes/pve1/qemu/999/config").await;
    let (direct_status, direct_body) =
        get_json(&direct, &cookie, "/nodes/pve1/qemu/999/config").await;
    assert_eq!((status, &body), (direct_status, &direct_body));
    let (status, _) = send(client().get(format!("{via}/api2/json/version"))).await;
    assert_eq!(status, 401, "credentials are the client's own");

    let report = discrepancies(&proxy).await;
    assert_eq!(report["totals"]["request_problems"], 0, "{report:#}");
    assert_eq!(report["totals"]["reply_problems"], 0, "{report:#}");
    assert!(
        report["totals"]["calls"].as_u64().unwrap() >= 14,
        "{report:#}"
    );
    assert_eq!(report["operations"]["version"]["calls"], 2, "{report:#}");
    // Proxmox answers "does not exist" with a 500: counted as an upstream failure.
    assert_eq!(report["totals"]["upstream_failures"], 1, "{report:#}");
    // `/metrics` counts forwarded requests under their operationId, not as unmatched.
    let (status, metrics) = {
        let response = client()
            .get(format!("{}/metrics", root(&proxy)))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(status, 200, "{metrics}");
    for (sample, count) in [
        (
            r#"operation_id="version",method="GET",status_class="2xx""#,
            1,
        ),
        (
            r#"operation_id="version",method="GET",status_class="4xx""#,
            1,
        ),
        (
            r#"operation_id="pools_create",method="POST",status_class="2xx""#,
            1,
        ),
    ] {
        let line = format!("proxmox_mock_http_requests_total{{{sample}}} {count}");
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing in:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains(r#"operation_id="_unmatched",method="GET",status_class="2xx""#),
        "{metrics}"
    );
    proxy.shutdown().await.unwrap();
    upstream.shutdown().await.unwrap();
}

/// A server that answers every request with the headers it received (`{"data": [[name,
/// value], ...]}`, in order), and with two `x-reply` headers; with `?hop=1` also with a
/// hop-by-hop `Proxy-Authenticate`.
async fn echo_upstream() -> (String, tokio::task::JoinHandle<()>) {
    async fn echo(request: axum::extract::Request) -> axum::response::Response {
        let seen: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let mut response = axum::response::IntoResponse::into_response((
            [(http::header::CONTENT_TYPE, "application/json")],
            json!({ "data": seen }).to_string(),
        ));
        let headers = response.headers_mut();
        if let Ok(target) = http::HeaderValue::from_str(&request.uri().to_string()) {
            headers.insert("x-target", target);
        }
        headers.append("x-reply", http::HeaderValue::from_static("1"));
        headers.append("x-reply", http::HeaderValue::from_static("2"));
        if request.uri().query() == Some("hop=1") {
            headers.insert(
                http::header::PROXY_AUTHENTICATE,
                http::HeaderValue::from_static("Basic"),
            );
        }
        response
    }
    let app = Router::new().fallback(echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn headers_pass_both_ways_without_hop_by_hop_ones() {
    let (url, task) = echo_upstream().await;
    let authority = url.trim_start_matches("http://").to_owned();
    let proxy = proxy(UpstreamConfig::new(&url)).await;
    let raw = |path: &str, extra: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: client.example\r\nX-Custom: a\r\nCookie: c=1\r\n\
             X-Custom: b\r\n{extra}Content-Length: 0\r\n\r\n"
        )
    };
    let address = root(&proxy).trim_start_matches("http://").to_owned();
    // The client's headers as sent, the upstream's `Host` in place of the client's; with a
    // hop-by-hop header or `Accept-Encoding` (on an API path) those are left out.
    for (path, extra, expected_encoding) in [
        ("/api2/json/version", "", None),
        ("/api2/json/version", "Accept-Encoding: gzip\r\n", None),
        (
            "/api2/json/version",
            "Connection: keep-alive\r\nTE: trailers\r\n",
            None,
        ),
        ("/elsewhere", "Accept-Encoding: gzip\r\n", Some("gzip")),
    ] {
        for query in ["", "?hop=1"] {
            let target = format!("{path}{query}");
            let (head, body) = exchange(&address, &raw(&target, extra)).await;
            let seen: Vec<(String, String)> = serde_json::from_value(body["data"].clone()).unwrap();
            let names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
            let value = |wanted: &str| -> Vec<&str> {
                seen.iter()
                    .filter(|(name, _)| name == wanted)
                    .map(|(_, value)| value.as_str())
                    .collect()
            };
            assert_eq!(
                value("host"),
                vec![authority.as_str()],
                "{target}: {seen:?}"
            );
            assert_eq!(value("x-custom"), vec!["a", "b"], "{target}: {seen:?}");
            assert_eq!(value("cookie"), vec!["c=1"], "{target}: {seen:?}");
            assert_eq!(
                value("accept-encoding"),
                expected_encoding.into_iter().collect::<Vec<_>>(),
                "{target}: {seen:?}"
            );
            assert!(
                !names.contains(&"connection") && !names.contains(&"te"),
                "{target}: {seen:?}"
            );
            // The reply's headers, both `x-reply` values in order, never the hop-by-hop one.
            let lower = head.to_ascii_lowercase();
            let replies: Vec<&str> = lower
                .lines()
                .filter_map(|line| line.strip_prefix("x-reply: "))
                .collect();
            assert_eq!(replies, vec!["1", "2"], "{target}: {head}");
            assert!(!lower.contains("proxy-authenticate"), "{target}: {head}");
            assert!(lower.starts_with("http/1.1 200 ok"), "{target}: {head}");
        }
    }
    proxy.shutdown().await.unwrap();
    task.abort();
}

/// Reads one reply with a `Content-Length` from `stream` (what follows it stays in `buffer`):
/// its head, without the value of `date`, and its body.
async fn read_reply(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())
                        .flatten()
                })
                .unwrap();
            if buffer.len() >= end + 4 + length {
                let body = buffer[end + 4..end + 4 + length].to_vec();
                buffer.drain(..end + 4 + length);
                let head = head
                    .lines()
                    .map(|line| match line.split_once(':') {
                        Some((name, _)) if name.eq_ignore_ascii_case("date") => {
                            "date: -".to_owned()
                        }
                        _ => line.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join("\r\n");
                return (head, body);
            }
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await.unwrap();
        assert!(
            read > 0,
            "closed early: {}",
            String::from_utf8_lossy(buffer)
        );
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The value of a header in a reply head.
fn header_value<'a>(head: &'a str, wanted: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case(wanted).then(|| value.trim())
    })
}

#[tokio::test]
async fn one_connection_keeps_the_order_of_its_requests_and_closes_when_asked() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (url, task) = echo_upstream().await;
    let proxy = proxy(UpstreamConfig::new(&url)).await;
    let address = root(&proxy).trim_start_matches("http://").to_owned();

    // Three requests in one write (pipelined), then one that asks to close the connection: the
    // replies come in the order of the requests, and the connection ends after the last.
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let pipelined = "GET /api2/json/version?n=1 HTTP/1.1\r\nHost: a\r\n\r\n\
         POST /api2/json/access/ticket?n=2 HTTP/1.1\r\nHost: a\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 17\r\n\r\n\
         username=root@pam\
         GET /api2/json/nodes?n=3 HTTP/1.1\r\nHost: a\r\n\r\n";
    stream.write_all(pipelined.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    for expected in [
        "/api2/json/version?n=1",
        "/api2/json/access/ticket?n=2",
        "/api2/json/nodes?n=3",
    ] {
        let (head, _) = read_reply(&mut stream, &mut buffer).await;
        assert_eq!(header_value(&head, "x-target"), Some(expected), "{head}");
        assert_eq!(header_value(&head, "connection"), None, "{head}");
    }
    stream
        .write_all(b"GET /api2/json/version?n=4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = read_reply(&mut stream, &mut buffer).await;
    assert_eq!(
        header_value(&head, "x-target"),
        Some("/api2/json/version?n=4")
    );
    assert_eq!(header_value(&head, "connection"), Some("close"), "{head}");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty() && buffer.is_empty(), "{rest:?}");

    // A connection whose requests the proxy's own loop serves until an upload, which it hands
    // to hyper with the rest of the connection: every reply in order, and the replies written
    // by the loop and by hyper alike (the same lines in the same order, `date` aside).
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let get = "GET /api2/json/version HTTP/1.1\r\nHost: a\r\n\r\n";
    stream.write_all(get.as_bytes()).await.unwrap();
    let (by_loop, body_by_loop) = read_reply(&mut stream, &mut buffer).await;
    let upload = "PUT /api2/json/upload HTTP/1.1\r\nHost: a\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\nabcd";
    stream.write_all(upload.as_bytes()).await.unwrap();
    let (head, _) = read_reply(&mut stream, &mut buffer).await;
    assert_eq!(
        header_value(&head, "x-target"),
        Some("/api2/json/upload"),
        "{head}"
    );
    stream.write_all(get.as_bytes()).await.unwrap();
    let (by_hyper, body_by_hyper) = read_reply(&mut stream, &mut buffer).await;
    assert_eq!(by_loop, by_hyper);
    assert_eq!(body_by_loop, body_by_hyper);
    assert!(by_loop.starts_with("HTTP/1.1 200 OK\r\n"), "{by_loop}");

    proxy.shutdown().await.unwrap();
    task.abort();
}

#[tokio::test]
async fn the_proxys_https_listener_serves_keep_alive_calls_like_its_http_one() {
    let upstream = crate::start().await;
    let proxy = proxy(UpstreamConfig::new(root(&upstream))).await;
    let certificate =
        reqwest::Certificate::from_pem(proxy.tls_certificate_pem().as_bytes()).unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One connection for every call (reqwest keeps it alive), over TLS to the proxy.
    let tls_client = reqwest::Client::builder()
        .tls_certs_only([certificate])
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let via_tls = proxy
        .https_base_url()
        .replace("127.0.0.1", "localhost")
        .trim_end_matches("/api2/json")
        .to_owned();
    let (status, body) = send(
        tls_client
            .post(format!("{via_tls}/api2/json/access/ticket"))
            .form(&[("username", "root@pam"), ("password", "secret")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cookie = format!("PVEAuthCookie={}", body["data"]["ticket"].as_str().unwrap());
    for path in [
        "/version",
        "/nodes",
        "/nodes/pve1/qemu",
        "/cluster/resources",
    ] {
        let (status, over_tls) = send(
            tls_client
                .get(format!("{via_tls}/api2/json{path}"))
                .header("Cookie", &cookie),
        )
        .await;
        let (_, over_http) = get_json(&root(&proxy), &cookie, path).await;
        assert_eq!(status, 200, "{path}: {over_tls}");
        assert_eq!(
            without_moving(&over_tls),
            without_moving(&over_http),
            "{path}"
        );
    }
    let report = discrepancies(&proxy).await;
    assert_eq!(report["totals"]["request_problems"], 0, "{report:#}");
    assert_eq!(report["totals"]["reply_problems"], 0, "{report:#}");
    proxy.shutdown().await.unwrap();
    upstream.shutdown().await.unwrap();
}

/// Real mode's own loop keeps pveproxy's header timeout: a connection that sends nothing, or
/// stops halfway through its next head after a request was answered, is closed without a
/// reply, and the proxy goes on serving.
#[tokio::test]
async fn the_loop_closes_connections_whose_head_does_not_come() {
    use tokio::io::AsyncWriteExt;
    let (url, task) = echo_upstream().await;
    let proxy = MockServer::builder()
        .auth(false)
        .header_timeout(Duration::from_millis(300))
        .upstream(UpstreamConfig::new(&url))
        .spawn()
        .await
        .unwrap();
    let address = proxy.http_addr();
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    assert_eq!(
        read_until_closed(&mut silent).await,
        0,
        "closed without a reply"
    );

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /api2/json/version HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let (head, _) = read_reply(&mut stream, &mut buffer).await;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    stream
        .write_all(b"GET /api2/json/version HTTP/1.1\r\nHost:")
        .await
        .unwrap();
    assert_eq!(
        read_until_closed(&mut stream).await,
        0,
        "closed without a reply"
    );

    let (status, _) = send(client().get(format!("{}/api2/json/version", root(&proxy)))).await;
    assert_eq!(status, 200);
    proxy.shutdown().await.unwrap();
    task.abort();
}

/// Bytes read before the end of the connection (0 when it closes without a reply). The bound
/// only keeps a broken build from hanging the suite; the server closes long before it.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> usize {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buffer))
        .await
        .expect("the connection stayed open");
    read.unwrap_or(0)
}

/// An upstream that reads an upload as it comes (`PUT /upload`: answers how many bytes, their
/// sum, and how the request was framed) and sends a 2 MiB download in 64 parts without a
/// length (`GET /download`, `chunked` on the wire).
async fn streaming_upstream() -> (String, tokio::task::JoinHandle<()>) {
    async fn upload(request: axum::extract::Request) -> axum::response::Response {
        use futures::StreamExt;
        let headers = request.headers();
        let framing = if headers.contains_key(http::header::TRANSFER_ENCODING) {
            "chunked"
        } else if headers.contains_key(http::header::CONTENT_LENGTH) {
            "length"
        } else {
            "none"
        };
        let mut body = request.into_body().into_data_stream();
        let (mut received, mut sum) = (0usize, 0u64);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap();
            received += chunk.len();
            sum += chunk.iter().map(|&byte| u64::from(byte)).sum::<u64>();
        }
        axum::response::IntoResponse::into_response(axum::Json(
            json!({"received": received, "sum": sum, "framing": framing}),
        ))
    }
    async fn download() -> axum::response::Response {
        let parts = futures::stream::iter(
            (0..64u8).map(|part| Ok::<_, std::convert::Infallible>(vec![part; 32 * 1024])),
        );
        axum::response::Response::new(axum::body::Body::from_stream(parts))
    }
    let app = Router::new()
        .route("/upload", axum::routing::put(upload))
        .route("/download", get(download));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn uploads_and_downloads_stream_through() {
    let (url, task) = streaming_upstream().await;
    let proxy = proxy(UpstreamConfig::new(&url)).await;
    let via = root(&proxy);
    for _ in 0..2 {
        // An upload (not read for validation) streams with its `Content-Length`. (One of
        // unknown size never gets here: `Transfer-Encoding: chunked` is refused with a 501, as
        // pveproxy does; the pool's tests send one `chunked`.)
        let (status, body) = send(
            client()
                .put(format!("{via}/upload"))
                .header("Content-Type", "application/octet-stream")
                .body(vec![3u8; 1 << 20]),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"received": 1 << 20, "sum": 3u64 << 20, "framing": "length"})
        );
        // A download without a length, `chunked` from the upstream.
        let response = client()
            .get(format!("{via}/download"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        assert_eq!(bytes.len(), 64 * 32 * 1024);
        for (index, part) in bytes.chunks(32 * 1024).enumerate() {
            assert!(
                part.iter().all(|&byte| usize::from(byte) == index),
                "part {index}"
            );
        }
    }
    proxy.shutdown().await.unwrap();
    task.abort();
}

/// Sends a raw HTTP/1.1 request on a new connection; the reply's head and JSON body.
async fn exchange(address: &str, request: &str) -> (String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await.unwrap();
        assert!(
            read > 0,
            "closed early: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = text[..end].to_owned();
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())
                    .flatten()
            })
            .unwrap();
        if received.len() >= end + 4 + length {
            let body = serde_json::from_slice(&received[end + 4..end + 4 + length]).unwrap();
            return (head, body);
        }
    }
}

/// A server whose replies break the schema, counting the requests it sees.
async fn lying_upstream(hits: Arc<AtomicUsize>) -> (String, tokio::task::JoinHandle<()>) {
    fn reply(body: Value) -> axum::response::Response {
        axum::response::IntoResponse::into_response((
            [(http::header::CONTENT_TYPE, "application/json;charset=UTF-8")],
            body.to_string(),
        ))
    }
    let app = Router::new()
        // A string where an integer is declared.
        .route(
            "/api2/json/nodes/{node}/qemu",
            get(|| async { reply(json!({"data": [{"vmid": "abc", "status": "running"}]})) }),
        )
        // A required field missing.
        .route(
            "/api2/json/nodes",
            get(|| async { reply(json!({"data": [{"status": "online"}]})) }),
        )
        // A value outside the enumeration.
        .route(
            "/api2/json/access/domains",
            get(|| async {
                reply(json!({"data": [{"realm": "pam", "type": "pam", "tfa": "sms"}]}))
            }),
        )
        // An extra field where additionalProperties is false.
        .route(
            "/api2/json/access/groups/{group}",
            get(|| async { reply(json!({"data": {"members": [], "colour": "red"}})) }),
        )
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let hits = Arc::clone(&hits);
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

#[tokio::test]
async fn a_lying_upstream_yields_one_discrepancy_per_lie_with_its_pointer() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (url, task) = lying_upstream(Arc::clone(&hits)).await;
    let report_dir = std::env::temp_dir().join(format!("mock-proxy-report-{}", std::process::id()));
    std::fs::create_dir_all(&report_dir).unwrap();
    let report_path = report_dir.join("report.json");
    let proxy = proxy(UpstreamConfig::new(&url).report(&report_path)).await;
    let via = root(&proxy);
    for path in [
        "/nodes/pve1/qemu",
        "/nodes",
        "/access/domains",
        "/access/groups/ops",
    ] {
        let (status, _) = send(client().get(format!("{via}/api2/json{path}"))).await;
        assert_eq!(status, 200, "{path}: replies pass unchanged");
    }
    let report = discrepancies(&proxy).await;
    assert_eq!(report["totals"]["reply_problems"], 4, "{report:#}");
    assert_eq!(report["totals"]["request_problems"], 0, "{report:#}");
    for (operation, pointer, found) in [
        ("nodes_qemu_vmlist", "/data/0/vmid", "\"abc\""),
        ("nodes_index", "/data/0/node", "(missing)"),
        ("access_domains_index", "/data/0/tfa", "\"sms\""),
        ("access_groups_groupid_read", "/data/colour", "\"red\""),
    ] {
        let stats = &report["operations"][operation];
        assert_eq!(stats["reply_problems"], 1, "{operation}: {report:#}");
        assert_eq!(stats["reply_example"]["pointer"], pointer, "{report:#}");
        assert_eq!(stats["reply_example"]["found"], found, "{report:#}");
        assert_eq!(stats["reply_example"]["direction"], "reply");
    }
    proxy.shutdown().await.unwrap();
    let json_report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(json_report["totals"]["reply_problems"], 4);
    let markdown = std::fs::read_to_string(report_path.with_extension("md")).unwrap();
    assert!(
        markdown.contains("| `nodes_qemu_vmlist` | 1 | 0 | 1 | 0 | 0 |"),
        "{markdown}"
    );
    assert!(markdown.contains("`/data/0/vmid`"), "{markdown}");
    let _ = std::fs::remove_dir_all(&report_dir);
    task.abort();
}

#[tokio::test]
async fn strict_refuses_bad_requests_before_the_upstream_sees_them() {
    let hits = Arc::new(AtomicUsize::new(0));
    let (url, task) = lying_upstream(Arc::clone(&hits)).await;
    let proxy = proxy(UpstreamConfig::new(&url).strict(true)).await;
    let via = root(&proxy);
    let (status, body) = send(client().get(format!(
        "{via}/api2/json/nodes/pve1/qemu?full=maybe&bogus=1"
    )))
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Parameter verification failed.\n");
    assert!(body["errors"]["bogus"].is_string(), "{body}");
    assert!(body["errors"]["full"].is_string(), "{body}");
    let (status, body) = send(client().get(format!("{via}/api2/json/no/such/path"))).await;
    assert_eq!(status, 501, "{body}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the upstream saw a refused request"
    );
    // A good request still passes.
    let (status, _) = send(client().get(format!("{via}/api2/json/nodes"))).await;
    assert_eq!(status, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let report = discrepancies(&proxy).await;
    assert_eq!(report["totals"]["refused"], 2, "{report:#}");
    assert_eq!(
        report["operations"]["nodes_qemu_vmlist"]["request_example"]["pointer"], "/bogus",
        "{report:#}"
    );
    proxy.shutdown().await.unwrap();
    task.abort();
}

/// The default cluster plus guests 300 (VM, pve2, running) and 301 (CT), a pool with 300,
/// alice@pve in group ops with a token, a custom role and ACL entries.
fn rich_fixture() -> Fixture {
    let mut fixture = Fixture::default_fixture();
    fixture.guests.push(GuestSeed {
        vmid: 300,
        kind: "qemu".into(),
        node: "pve2".into(),
        status: "running".into(),
        config: json!({"name": "app01", "cores": 2, "memory": "1024", "ostype": "l26",
            "scsi0": "local-lvm:vm-300-disk-0,size=16G", "cipassword": "hunter2"})
        .as_object()
        .unwrap()
        .clone(),
    });
    fixture.guests.push(GuestSeed {
        vmid: 301,
        kind: "lxc".into(),
        node: "pve1".into(),
        status: "stopped".into(),
        config: json!({"hostname": "ct301", "cores": 1, "memory": 256, "ostype": "debian",
            "rootfs": "local-lvm:vm-301-disk-0,size=4G"})
        .as_object()
        .unwrap()
        .clone(),
    });
    fixture.objects.insert(
        "/pools/dev".into(),
        json!({"_collection": "/pools", "comment": "Development", "_vms": [300], "_storage": ["local"]}),
    );
    let mut alice = UserSeed {
        userid: "alice@pve".into(),
        password: Some("alice-secret".into()),
        tokens: Default::default(),
        enable: true,
        groups: vec!["ops".into()],
        totp: None,
        config: json!({"email": "alice@example.com"})
            .as_object()
            .unwrap()
            .clone(),
    };
    alice.tokens.insert(
        "ci".into(),
        TokenSeed::Full {
            secret: "ci-token-secret".into(),
            privsep: true,
            expire: 0,
            comment: Some("CI".into()),
        },
    );
    fixture.users.push(alice);
    fixture.groups.push(GroupSeed {
        groupid: "ops".into(),
        comment: Some("Operators".into()),
    });
    fixture.roles.insert(
        "VMPower".into(),
        vec!["VM.Audit".into(), "VM.PowerMgmt".into()],
    );
    fixture.acl.push(AclSeed {
        path: "/vms/300".into(),
        roles: vec!["VMPower".into()],
        users: vec!["alice@pve".into()],
        groups: Vec::new(),
        tokens: vec!["alice@pve!ci".into()],
        propagate: true,
    });
    fixture.acl.push(AclSeed {
        path: "/pool/dev".into(),
        roles: vec!["PVEAuditor".into()],
        users: Vec::new(),
        groups: vec!["ops".into()],
        tokens: Vec::new(),
        propagate: false,
    });
    fixture
}

#[tokio::test]
async fn a_recording_replays_as_the_same_cluster() {
    let upstream_a = MockServer::builder()
        .seed(rich_fixture())
        .spawn()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("mock-proxy-record-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let proxy = proxy(UpstreamConfig::new(root(&upstream_a)).record(&dir)).await;
    let via = root(&proxy);
    let (cookie, _) = login(&via).await;
    let mut paths: Vec<String> = [
        "/cluster/status",
        "/cluster/resources",
        "/nodes",
        "/storage",
        "/pools",
        "/pools/dev",
        "/access/users?full=1",
        "/access/groups",
        "/access/roles",
        "/access/acl",
    ]
    .map(str::to_owned)
    .to_vec();
    for (node, kind, vmid) in [
        ("pve1", "qemu", 100),
        ("pve2", "qemu", 101),
        ("pve1", "lxc", 200),
        ("pve2", "qemu", 300),
        ("pve1", "lxc", 301),
    ] {
        paths.push(format!("/nodes/{node}/{kind}/{vmid}/config"));
        paths.push(format!("/nodes/{node}/{kind}/{vmid}/status/current"));
    }
    for path in &paths {
        let (status, body) = get_json(&via, &cookie, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    proxy.shutdown().await.unwrap();
    let text = std::fs::read_to_string(dir.join("fixture.yaml")).unwrap();
    for secret in ["hunter2", "ci-token-secret", "alice-secret", "PVE:root@pam"] {
        assert!(!text.contains(secret), "{secret} recorded:\n{text}");
    }
    assert!(
        text.contains("cipassword"),
        "the removed key is listed:\n{text}"
    );

    let upstream_b = MockServer::builder()
        .seed(Fixture::parse(&text).unwrap())
        .spawn()
        .await
        .unwrap();
    let (a, b) = (root(&upstream_a), root(&upstream_b));
    let (cookie_a, _) = login(&a).await;
    let (cookie_b, _) = login(&b).await;
    let mut compared = paths.clone();
    compared.retain(|path| !path.starts_with("/access/users"));
    for path in &compared {
        let (_, from_a) = get_json(&a, &cookie_a, path).await;
        let (_, from_b) = get_json(&b, &cookie_b, path).await;
        let (mut from_a, from_b) = (without_moving(&from_a), without_moving(&from_b));
        if path.ends_with("/config") {
            // The secret is not replayed; everything else is.
            from_a["data"].as_object_mut().unwrap().remove("cipassword");
        }
        assert_eq!(from_b, from_a, "{path}");
    }
    // Users, their groups and tokens (the secrets differ and are not shown).
    let (_, users_a) = get_json(&a, &cookie_a, "/access/users?full=1").await;
    let (_, users_b) = get_json(&b, &cookie_b, "/access/users?full=1").await;
    assert_eq!(without_moving(&users_b), without_moving(&users_a));
    let _ = std::fs::remove_dir_all(&dir);
    upstream_a.shutdown().await.unwrap();
    upstream_b.shutdown().await.unwrap();
}

#[tokio::test]
async fn upstream_failures_answer_clearly_and_quickly() {
    // Down: a port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let down = proxy(UpstreamConfig::new(closed_url)).await;
    let (status, body) = send(client().get(format!("{}/api2/json/version", root(&down)))).await;
    assert_eq!(status, 595, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
    let report = discrepancies(&down).await;
    assert_eq!(report["totals"]["upstream_failures"], 1, "{report:#}");
    down.shutdown().await.unwrap();

    // TLS: a pin that does not match the upstream's certificate, then one that does.
    let upstream = crate::start().await;
    let https = upstream
        .https_base_url()
        .trim_end_matches("/api2/json")
        .to_owned();
    let wrong = proxy(UpstreamConfig::new(&https).tls(UpstreamTls::Fingerprint([0; 32]))).await;
    let (status, body) = send(client().get(format!("{}/api2/json/version", root(&wrong)))).await;
    assert_eq!(status, 596, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("TLS handshake"), "{message}");
    assert!(message.contains("does not match the pinned"), "{message}");
    wrong.shutdown().await.unwrap();
    let pem = upstream.tls_certificate_pem().to_owned();
    let der = rustls_pemfile::certs(&mut pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let digest: [u8; 32] =
        sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(&der)).into();
    let pinned = proxy(UpstreamConfig::new(&https).tls(UpstreamTls::Fingerprint(digest))).await;
    let (status, body) = send(client().get(format!("{}/api2/json/version", root(&pinned)))).await;
    assert_eq!(status, 401, "the pinned upstream answers itself: {body}");
    // Requests in a row over the pooled TLS connection, a form body among them.
    let via = root(&pinned);
    let (cookie, csrf) = login(&via).await;
    for _ in 0..3 {
        let (status, body) = get_json(&via, &cookie, "/nodes/pve1/qemu").await;
        assert_eq!(status, 200, "{body}");
        assert!(
            body["data"]
                .as_array()
                .is_some_and(|guests| !guests.is_empty()),
            "{body}"
        );
    }
    let (status, body) = send(
        client()
            .post(format!("{via}/api2/json/pools"))
            .header("Cookie", &cookie)
            .header("CSRFPreventionToken", &csrf)
            .form(&[("poolid", "overtls")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_json(&via, &cookie, "/pools").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("overtls"), "{body}");
    pinned.shutdown().await.unwrap();
    upstream.shutdown().await.unwrap();

    // Timeout: an upstream that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let slow = proxy(UpstreamConfig::new(silent_url).timeout(Duration::from_millis(300))).await;
    let started = Instant::now();
    let (status, body) = send(client().get(format!("{}/api2/json/version", root(&slow)))).await;
    assert_eq!(status, 596, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("did not answer"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    slow.shutdown().await.unwrap();
    holder.abort();
}

#[tokio::test]
async fn the_record_crawl_walks_the_get_tree_into_a_fixture() {
    let mut fixture = rich_fixture();
    for user in &mut fixture.users {
        if user.userid == "root@pam" {
            user.tokens
                .insert("crawl".into(), TokenSeed::Secret("crawl-secret".into()));
        }
    }
    let upstream = MockServer::builder().seed(fixture).spawn().await.unwrap();
    let dir = std::env::temp_dir().join(format!("mock-proxy-crawl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let proxy = proxy(
        UpstreamConfig::new(root(&upstream))
            .record(&dir)
            .record_crawl("root@pam!crawl=crawl-secret", 4, Duration::from_secs(30)),
    )
    .await;
    // The crawl runs in the background; wait until its count of calls stops moving.
    let mut last = 0;
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let calls = discrepancies(&proxy).await["totals"]["calls"]
            .as_u64()
            .unwrap();
        if calls > 10 && calls == last {
            break;
        }
        last = calls;
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the crawl did not end ({calls} calls)"
        );
    }
    proxy.shutdown().await.unwrap();
    let text = std::fs::read_to_string(dir.join("fixture.yaml")).unwrap();
    let recorded = Fixture::parse(&text).unwrap();
    let vmids: Vec<u32> = recorded.guests.iter().map(|guest| guest.vmid).collect();
    assert_eq!(vmids, vec![100, 101, 200, 300, 301], "{text}");
    assert!(recorded.objects.contains_key("/pools/dev"), "{text}");
    assert!(
        recorded.users.iter().any(|user| user.userid == "alice@pve"),
        "{text}"
    );
    assert!(!text.contains("crawl-secret"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
    upstream.shutdown().await.unwrap();
}

/// The GUID of RFC 6455 section 1.3, for `Sec-WebSocket-Accept`.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The VNC server's greeting, sent by the console upstream as soon as the socket opens.
const GREETING: &[u8] = b"RFB 003.008\n";

/// A console upstream: `GET .../vncwebsocket` with a `vncticket` of `good` switches to
/// WebSocket, greets, then echoes every frame (prefixed with `echo:`) until a close frame;
/// any other ticket gets Proxmox's 401. Counts the requests it sees.
async fn console_upstream(hits: Arc<AtomicUsize>) -> (String, tokio::task::JoinHandle<()>) {
    async fn console(mut request: axum::extract::Request) -> axum::response::Response {
        use axum::response::IntoResponse;
        let query = request.uri().query().unwrap_or_default().to_owned();
        let key = request
            .headers()
            .get("sec-websocket-key")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let cookie = request.headers().get("cookie").is_some();
        let (true, Some(key), true) = (query.contains("vncticket=good"), key, cookie) else {
            return (
                http::StatusCode::UNAUTHORIZED,
                "permission denied - invalid PVEVNC ticket",
            )
                .into_response();
        };
        let accept = {
            use base64::Engine as _;
            let digest = <sha1::Sha1 as sha1::Digest>::digest(format!("{key}{WEBSOCKET_GUID}"));
            base64::engine::general_purpose::STANDARD.encode(digest)
        };
        let on_upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let upgraded = on_upgrade.await.unwrap();
            let mut io = hyper_util::rt::TokioIo::new(upgraded);
            write_frame(&mut io, 0x2, GREETING, false).await;
            loop {
                let (opcode, payload) = read_frame(&mut io).await;
                if opcode == 0x8 {
                    write_frame(&mut io, 0x8, &payload, false).await;
                    break;
                }
                let mut echo = b"echo:".to_vec();
                echo.extend_from_slice(&payload);
                write_frame(&mut io, opcode, &echo, false).await;
            }
        });
        axum::response::Response::builder()
            .status(http::StatusCode::SWITCHING_PROTOCOLS)
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-accept", accept)
            .header("sec-websocket-protocol", "binary")
            .body(axum::body::Body::empty())
            .unwrap()
    }
    let app = Router::new()
        .route(
            "/api2/json/nodes/{node}/{kind}/{vmid}/vncwebsocket",
            get(console),
        )
        .route("/api2/json/nodes/{node}/vncwebsocket", get(console))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let hits = Arc::clone(&hits);
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    next.run(request).await
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// Writes one WebSocket frame (FIN set; masked as a client must, RFC 6455 5.3).
async fn write_frame<W>(io: &mut W, opcode: u8, payload: &[u8], masked: bool)
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let mut frame = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        length @ 0..=125 => frame.push(mask_bit | length as u8),
        length => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&u16::try_from(length).unwrap().to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        frame.extend_from_slice(payload);
    }
    io.write_all(&frame).await.unwrap();
    io.flush().await.unwrap();
}

/// Reads one WebSocket frame: its opcode and (unmasked) payload.
async fn read_frame<R>(io: &mut R) -> (u8, Vec<u8>)
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    io.read_exact(&mut head).await.unwrap();
    let length = match head[1] & 0x7f {
        126 => {
            let mut extended = [0u8; 2];
            io.read_exact(&mut extended).await.unwrap();
            usize::from(u16::from_be_bytes(extended))
        }
        127 => panic!("frames in these tests are short"),
        short => usize::from(short),
    };
    let mut key = [0u8; 4];
    if head[1] & 0x80 != 0 {
        io.read_exact(&mut key).await.unwrap();
    }
    let mut payload = vec![0u8; length];
    io.read_exact(&mut payload).await.unwrap();
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
    (head[0] & 0x0f, payload)
}

/// Sends a WebSocket handshake for `target` on a new connection to `addr`; returns the
/// connection and the reply head.
async fn open_websocket(addr: &str, target: &str) -> (tokio::net::TcpStream, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: binary\r\nCookie: PVEAuthCookie=PVE%3Aroot%40pam%3A0\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The head, byte by byte, so that no frame after it is consumed.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (stream, String::from_utf8(head).unwrap())
}

#[tokio::test]
async fn console_websockets_pass_through_both_ways() {
    use tokio::io::AsyncReadExt;
    let hits = Arc::new(AtomicUsize::new(0));
    let (url, task) = console_upstream(Arc::clone(&hits)).await;
    let proxy = proxy(UpstreamConfig::new(&url)).await;
    let addr = root(&proxy).trim_start_matches("http://").to_owned();
    for target in [
        "/api2/json/nodes/pve1/qemu/100/vncwebsocket?port=5900&vncticket=good",
        "/api2/json/nodes/pve1/lxc/200/vncwebsocket?port=5901&vncticket=good",
        "/api2/json/nodes/pve1/vncwebsocket?port=5902&vncticket=good",
    ] {
        let (mut socket, head) = open_websocket(&addr, target).await;
        assert!(head.starts_with("HTTP/1.1 101"), "{target}: {head}");
        let lower = head.to_ascii_lowercase();
        // The key of RFC 6455's example, and its accept value.
        assert!(
            lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{head}"
        );
        assert!(lower.contains("upgrade: websocket"), "{head}");
        assert!(lower.contains("sec-websocket-protocol: binary"), "{head}");
        // Upstream to client, unprompted.
        assert_eq!(read_frame(&mut socket).await, (0x2, GREETING.to_vec()));
        // Client to upstream and back, small and larger than 125 bytes.
        for payload in [b"hello".to_vec(), vec![7u8; 300]] {
            write_frame(&mut socket, 0x2, &payload, true).await;
            let mut expected = b"echo:".to_vec();
            expected.extend_from_slice(&payload);
            assert_eq!(read_frame(&mut socket).await, (0x2, expected));
        }
        write_frame(&mut socket, 0x8, &[0x03, 0xe8], true).await;
        assert_eq!(read_frame(&mut socket).await, (0x8, vec![0x03, 0xe8]));
        // The upstream closed its side: the proxy closes the client's.
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest))
            .await
            .expect("the proxy closes the socket after the upstream did");
        assert_eq!(read.unwrap(), 0);
    }
    // A refused ticket: the upstream's 401 comes back, and the connection ends with it.
    let (mut socket, head) = open_websocket(
        &addr,
        "/api2/json/nodes/pve1/qemu/100/vncwebsocket?port=5900&vncticket=bad",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest))
        .await
        .expect("the connection is closed after a refused upgrade")
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 4);
    // The handshakes are clean requests of their operations.
    let report = discrepancies(&proxy).await;
    assert_eq!(report["totals"]["request_problems"], 0, "{report:#}");
    assert_eq!(report["totals"]["calls"], 4, "{report:#}");
    assert_eq!(
        report["operations"]["nodes_qemu_vncwebsocket"]["calls"], 2,
        "{report:#}"
    );
    proxy.shutdown().await.unwrap();
    task.abort();
}
