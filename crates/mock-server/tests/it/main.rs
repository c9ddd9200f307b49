//! Integration tests of the mock server: one binary, servers on `127.0.0.1:0`, a real HTTP
//! client (reqwest with rustls/ring) for the socket tests.

#![allow(clippy::unwrap_used)]

mod access;
mod control;
mod formats;
mod guests;
mod handler_checks;
mod http;
mod metrics;
mod pve92;
mod replies;
mod secrets;
mod session;
mod simulation;
mod upstream;

use mock_server::{MockServer, MockServerHandle};

/// Starts a server with the default fixture.
pub async fn start() -> MockServerHandle {
    MockServer::builder().spawn().await.unwrap()
}

/// A client that keeps cookies off (tests set headers explicitly).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}
