//! TLS against the mock's self-signed HTTPS listener: default verification, CA, fingerprint pins.

use proxmox_sdk::{Client, ClientBuilder, Fingerprint};
use serde_json::Value;

use crate::{TOKEN_ID, TOKEN_SECRET, spawn};

/// A token client builder for the mock's HTTPS listener.
fn https_builder(server: &mock_server::MockServerHandle) -> ClientBuilder {
    Client::builder()
        .base_url(server.https_base_url())
        .token(TOKEN_ID, TOKEN_SECRET)
}

/// The chain of an error's messages.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn default_verification_rejects_a_self_signed_certificate() {
    let server = spawn().await;
    let client = https_builder(&server).build().expect("valid");
    let error = client
        .get::<Value>("/version", &())
        .await
        .expect_err("untrusted certificate");
    assert!(error.is_tls(), "{error:?}");
}

#[tokio::test]
async fn ca_certificate_is_trusted() {
    let server = spawn().await;
    let client = https_builder(&server)
        .ca_cert(server.tls_certificate_pem())
        .build()
        .expect("valid");
    let version: Value = client.get("/version", &()).await.expect("trusted via CA");
    assert!(version["version"].is_string());
}

#[tokio::test]
async fn pinned_fingerprint_is_accepted() {
    let server = spawn().await;
    let fingerprint =
        Fingerprint::of_pem(server.tls_certificate_pem().as_bytes()).expect("a certificate");
    let client = https_builder(&server)
        .fingerprint(fingerprint.to_string())
        .build()
        .expect("valid");
    let version: Value = client.get("/version", &()).await.expect("trusted via pin");
    assert!(version["version"].is_string());
}

#[tokio::test]
async fn wrong_fingerprint_is_rejected() {
    let server = spawn().await;
    let wrong = Fingerprint::of_der(b"some other certificate");
    let client = https_builder(&server)
        .fingerprint(wrong.to_string())
        .build()
        .expect("valid");
    let error = client
        .get::<Value>("/version", &())
        .await
        .expect_err("pin mismatch");
    assert!(error.is_tls(), "{error:?}");
    assert!(
        chain(&error).contains("does not match the pinned"),
        "{}",
        chain(&error)
    );
}

#[tokio::test]
async fn a_pin_wins_over_danger_accept_invalid_certs() {
    let server = spawn().await;
    let wrong = Fingerprint::of_der(b"some other certificate");
    let client = https_builder(&server)
        .fingerprint(wrong.to_string())
        .danger_accept_invalid_certs(true)
        .build()
        .expect("valid");
    assert!(
        client
            .get::<Value>("/version", &())
            .await
            .expect_err("pin mismatch")
            .is_tls()
    );
}

#[tokio::test]
async fn accepting_invalid_certificates_must_be_asked_for() {
    let server = spawn().await;
    let client = https_builder(&server)
        .danger_accept_invalid_certs(true)
        .build()
        .expect("valid");
    let version: Value = client.get("/version", &()).await.expect("anything goes");
    assert!(version["version"].is_string());
}

#[tokio::test]
async fn password_login_over_https() {
    let server = spawn().await;
    let client = Client::builder()
        .base_url(server.https_base_url())
        .password("root@pam", crate::ROOT_PASSWORD)
        .ca_cert(server.tls_certificate_pem())
        .build()
        .expect("valid");
    let nodes: Vec<Value> = client.get("/nodes", &()).await.expect("login over TLS");
    assert_eq!(nodes.len(), 2);
}
