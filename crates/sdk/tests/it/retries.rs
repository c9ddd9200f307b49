//! Retries of idempotent requests on 502/503/504, against injected faults.

use std::time::Duration;

use proxmox_sdk::Client;
use serde_json::{Value, json};

use crate::{TOKEN_ID, TOKEN_SECRET, builder, inject_fault, remaining_faults, spawn};

/// A token client with fast retries.
fn retrying_client(server: &mock_server::MockServerHandle, max_retries: u32) -> Client {
    builder(server)
        .token(TOKEN_ID, TOKEN_SECRET)
        .max_retries(max_retries)
        .retry_backoff(Duration::from_millis(5))
        .build()
        .expect("valid client")
}

#[tokio::test]
async fn retries_are_off_by_default() {
    let server = spawn().await;
    inject_fault(
        &server,
        json!({"method": "GET", "path": "/version", "status": 503, "count": 1}),
    )
    .await;
    let client = crate::token_client(&server);
    let error = client
        .get::<Value>("/version", &())
        .await
        .expect_err("503 without retries");
    assert_eq!(error.status().map(|status| status.as_u16()), Some(503));
    assert_eq!(error.api_message(), Some("injected fault"));
}

#[tokio::test]
async fn get_is_retried_through_transient_503s() {
    let server = spawn().await;
    inject_fault(
        &server,
        json!({"method": "GET", "path": "/version", "status": 503, "count": 2}),
    )
    .await;
    let client = retrying_client(&server, 3);
    let version: Value = client
        .get("/version", &())
        .await
        .expect("third attempt succeeds");
    assert!(version["version"].is_string());
    assert!(remaining_faults(&server).await.is_empty());
}

#[tokio::test]
async fn retries_stop_after_max_retries() {
    let server = spawn().await;
    inject_fault(
        &server,
        json!({"method": "GET", "path": "/version", "status": 502, "count": 5}),
    )
    .await;
    let client = retrying_client(&server, 2);
    let error = client
        .get::<Value>("/version", &())
        .await
        .expect_err("still failing");
    assert_eq!(error.status().map(|status| status.as_u16()), Some(502));
    let remaining = remaining_faults(&server).await;
    assert_eq!(
        remaining.first().and_then(|fault| fault["count"].as_u64()),
        Some(2),
        "three attempts: {remaining:?}"
    );
}

#[tokio::test]
async fn per_request_retry_override() {
    let server = spawn().await;
    inject_fault(
        &server,
        json!({"method": "GET", "path": "/version", "status": 504, "count": 1}),
    )
    .await;
    let client = retrying_client(&server, 0);
    let version: Value = client
        .request(proxmox_sdk::reqwest::Method::GET, "/version")
        .max_retries(1)
        .send()
        .await
        .expect("retried");
    assert!(version.is_object());
}

#[tokio::test]
async fn writes_are_never_retried() {
    let server = spawn().await;
    inject_fault(
        &server,
        json!({"method": "PUT", "path": "/nodes/pve1/qemu/100/config", "status": 503, "count": 1}),
    )
    .await;
    let client = retrying_client(&server, 5);
    let error = client
        .put::<Value>(
            "/nodes/pve1/qemu/100/config",
            &json!({"description": "once"}),
        )
        .await
        .expect_err("503 on a write is final");
    assert_eq!(error.status().map(|status| status.as_u16()), Some(503));
    let config: Value = client
        .get("/nodes/pve1/qemu/100/config", &())
        .await
        .expect("config");
    assert_ne!(config["description"], "once");
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    let server = spawn().await;
    inject_fault(
        &server,
        json!({"method": "GET", "path": "/version", "status": 500, "count": 2}),
    )
    .await;
    let client = retrying_client(&server, 5);
    let error = client
        .get::<Value>("/version", &())
        .await
        .expect_err("500 is final");
    assert_eq!(error.status().map(|status| status.as_u16()), Some(500));
    assert_eq!(remaining_faults(&server).await.len(), 1, "one attempt only");
}
