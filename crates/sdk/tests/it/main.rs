//! End-to-end tests of the SDK against the in-process mock server (one test binary).
//!
//! Each test starts its own `mock_server` instance on `127.0.0.1:0` with a memory store, so tests
//! are hermetic and run in parallel.
//! A few behaviours the mock cannot produce (a failed task, a server that never answers) use the
//! tiny canned HTTP server in this file instead.

mod auth;
mod crud;
mod fan_out;
mod proxmox_shapes;
mod retries;
mod tasks;
mod testing;
mod tfa;
mod timeouts;
mod tls;

#[cfg(feature = "blocking")]
mod blocking;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mock_server::{Fixture, MockServer, MockServerBuilder, MockServerHandle, Store};
use proxmox_sdk::{Client, ClientBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The seeded API token of `root@pam`.
pub const TOKEN_ID: &str = "root@pam!it";
/// Its secret.
pub const TOKEN_SECRET: &str = "0b8f1e4c-6d2a-4c1e-9f3b-7a5d2c8e1f00";
/// The mock's root password.
pub const ROOT_PASSWORD: &str = "secret";

/// A mock builder with the 9.1 schema, a memory store, and the test token seeded.
pub fn mock() -> MockServerBuilder {
    let mut fixture = Fixture::default_fixture();
    for user in &mut fixture.users {
        if user.userid == "root@pam" {
            user.tokens.insert(
                "it".to_owned(),
                mock_server::TokenSeed::Secret(TOKEN_SECRET.to_owned()),
            );
        }
    }
    MockServer::builder()
        .schema("9.1")
        .store(Store::Memory)
        .seed(fixture)
}

/// Starts a default mock.
pub async fn spawn() -> MockServerHandle {
    spawn_with(mock()).await
}

/// Starts a configured mock.
pub async fn spawn_with(builder: MockServerBuilder) -> MockServerHandle {
    builder.spawn().await.expect("mock server starts")
}

/// A client builder for the mock's plain HTTP listener.
pub fn builder(server: &MockServerHandle) -> ClientBuilder {
    Client::builder().base_url(server.base_url())
}

/// A client using the seeded API token.
pub fn token_client(server: &MockServerHandle) -> Client {
    builder(server)
        .token(TOKEN_ID, TOKEN_SECRET)
        .build()
        .expect("valid client")
}

/// A client logging in as `root@pam`.
pub fn password_client(server: &MockServerHandle) -> Client {
    builder(server)
        .password("root@pam", ROOT_PASSWORD)
        .build()
        .expect("valid client")
}

/// Injects faults through `POST /_mock/faults`.
pub async fn inject_fault(server: &MockServerHandle, fault: serde_json::Value) {
    let url = server.base_url().replace("/api2/json", "/_mock/faults");
    let response = Client::builder()
        .base_url(server.base_url())
        .build()
        .expect("valid client")
        .http()
        .post(url)
        .bearer_auth(server.control_token())
        .json(&fault)
        .send()
        .await
        .expect("fault endpoint answers");
    assert!(
        response.status().is_success(),
        "fault rejected: {}",
        response.status()
    );
}

/// The faults still armed.
pub async fn remaining_faults(server: &MockServerHandle) -> Vec<serde_json::Value> {
    let url = server.base_url().replace("/api2/json", "/_mock/faults");
    let client = Client::builder()
        .base_url(server.base_url())
        .build()
        .expect("valid client");
    let body: serde_json::Value = client
        .http()
        .get(url)
        .bearer_auth(server.control_token())
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// A canned HTTP/1.1 server: answers each request with `respond(request)`, where `request` is the
/// whole request text (request line, headers, body), or never answers when `respond` returns
/// `None`. Counts connections.
pub struct CannedServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Connections accepted so far.
    pub n_connections: Arc<AtomicUsize>,
}

impl CannedServer {
    /// Starts the server on a random port.
    pub async fn start<F>(respond: F) -> Self
    where
        F: Fn(&str) -> Option<(u16, String)> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let n_connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&n_connections);
        let respond = Arc::new(respond);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let respond = Arc::clone(&respond);
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; 16 * 1024];
                    let mut n_read = 0;
                    while !buffer[..n_read]
                        .windows(4)
                        .any(|window| window == b"\r\n\r\n")
                    {
                        match socket.read(&mut buffer[n_read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n_read += n,
                        }
                    }
                    let Some(head_end) = buffer[..n_read]
                        .windows(4)
                        .position(|window| window == b"\r\n\r\n")
                    else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
                    let content_length = head
                        .lines()
                        .find_map(|line| {
                            line.strip_prefix("content-length:")?
                                .trim()
                                .parse::<usize>()
                                .ok()
                        })
                        .unwrap_or(0);
                    let request_end = (head_end + 4 + content_length).min(buffer.len());
                    while n_read < request_end {
                        match socket.read(&mut buffer[n_read..request_end]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n_read += n,
                        }
                    }
                    let request = String::from_utf8_lossy(&buffer[..request_end]).into_owned();
                    match respond(&request) {
                        Some((status, body)) => {
                            let reply = format!(
                                "HTTP/1.1 {status} Canned\r\ncontent-type: application/json\r\n\
                                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = socket.write_all(reply.as_bytes()).await;
                        }
                        None => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                    }
                });
            }
        });
        CannedServer { url, n_connections }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.n_connections.load(Ordering::SeqCst)
    }
}
