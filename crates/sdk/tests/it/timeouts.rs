//! Request timeouts (client default and per request) and retries after timeouts.

use std::time::{Duration, Instant};

use proxmox_sdk::Client;
use proxmox_sdk::reqwest::Method;
use serde_json::Value;

use crate::CannedServer;

/// A server that accepts connections and never answers.
async fn silent_server() -> CannedServer {
    CannedServer::start(|_| None).await
}

#[tokio::test]
async fn default_timeout_applies() {
    let server = silent_server().await;
    let client = Client::builder()
        .base_url(&server.url)
        .token("root@pam!it", "x")
        .timeout(Duration::from_millis(200))
        .build()
        .expect("valid");
    let started = Instant::now();
    let error = client
        .get::<Value>("/version", &())
        .await
        .expect_err("no answer");
    assert!(error.is_timeout(), "{error:?}");
    assert!(error.to_string().contains("GET /version"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn per_request_timeout_overrides_the_default() {
    let server = silent_server().await;
    let client = Client::builder()
        .base_url(&server.url)
        .token("root@pam!it", "x")
        .build()
        .expect("valid");
    let started = Instant::now();
    let error = client
        .request(Method::GET, "/version")
        .timeout(Duration::from_millis(150))
        .send::<Value>()
        .await
        .expect_err("no answer");
    assert!(error.is_timeout(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the 30 s default was used"
    );
}

#[tokio::test]
async fn timeouts_of_gets_are_retried() {
    let server = silent_server().await;
    let client = Client::builder()
        .base_url(&server.url)
        .token("root@pam!it", "x")
        .timeout(Duration::from_millis(100))
        .max_retries(2)
        .retry_backoff(Duration::from_millis(5))
        .build()
        .expect("valid");
    let error = client
        .get::<Value>("/version", &())
        .await
        .expect_err("no answer");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(server.connections(), 3, "one attempt and two retries");

    let error = client
        .post::<Value>("/nodes/pve1/qemu", &())
        .await
        .expect_err("no answer");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(server.connections(), 4, "writes are sent once");
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let client = Client::builder()
        .base_url(url)
        .token("root@pam!it", "x")
        .build()
        .expect("valid");
    let error = client
        .get::<Value>("/version", &())
        .await
        .expect_err("nothing listens");
    assert!(error.is_connection(), "{error:?}");
}
