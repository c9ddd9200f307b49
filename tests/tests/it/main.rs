//! End-to-end tests of the workspace (one binary; see `tests/src/lib.rs`).
#![allow(clippy::unwrap_used, missing_docs)]

mod artifacts;
mod full_flow;
mod new_user;
mod observability;
mod proxy_sdk;
mod raw_http;
mod sdk_typed;
mod session;

use mock_server::{MockServer, MockServerHandle, Store};

/// The schema tag under test: `PROXMOX_MOCK_SCHEMA_VERSION`, else `latest`.
pub fn tag() -> String {
    std::env::var("PROXMOX_MOCK_SCHEMA_VERSION").unwrap_or_else(|_| "latest".to_owned())
}

/// Starts the mock for the tag under test on `127.0.0.1:0`.
pub async fn start(store: Store) -> MockServerHandle {
    MockServer::builder()
        .schema(tag())
        .store(store)
        .spawn()
        .await
        .unwrap()
}

/// A plain HTTP client (rustls on ring for the HTTPS tests).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}
