//! The physical limit: a bare axum handler answering our `/version` body.
//!
//! It is served the way our mock serves: `axum::serve` for plain HTTP, and for HTTPS the same
//! accept loop (tokio-rustls on ring, hyper's HTTP/1.1 connection, the router as a service), on
//! tokio's default multi-threaded runtime, with `TCP_NODELAY` on every connection as the mock
//! sets it. What our mock adds on top (routing by the schema, authentication, validation, the
//! store, the envelope) is then exactly the distance between the two in the results.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use bytes::Bytes;
use clap::Args;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::setup::server_tls_config;

/// Our mock's `/version` answer, used when no body file is given.
const DEFAULT_BODY: &str = r#"{"data":{"release":"9.1","repoid":"c0ffee42","version":"9.1.3"}}"#;

/// Options of the hidden `serve-bare` command.
#[derive(Debug, Args)]
pub struct BareArgs {
    /// Plain HTTP address.
    #[arg(long)]
    http: SocketAddr,
    /// HTTPS address.
    #[arg(long)]
    https: SocketAddr,
    /// Certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// Private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// File holding the JSON body to answer (our mock's `/version` answer).
    #[arg(long)]
    body_file: Option<PathBuf>,
}

/// Serves `GET /api2/json/version` until killed.
pub async fn serve(args: BareArgs) -> anyhow::Result<()> {
    let body = match &args.body_file {
        Some(path) if path.exists() => {
            Bytes::from(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        _ => Bytes::from_static(DEFAULT_BODY.as_bytes()),
    };
    let router = Router::new().route(
        "/api2/json/version",
        get(move || {
            let body = body.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], body) }
        }),
    );
    let acceptor = TlsAcceptor::from(Arc::new(server_tls_config(&args.cert, &args.key)?));
    let http = TcpListener::bind(args.http)
        .await
        .with_context(|| format!("binding {}", args.http))?;
    let https = TcpListener::bind(args.https)
        .await
        .with_context(|| format!("binding {}", args.https))?;
    let tls_router = router.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _peer)) = https.accept().await else {
                continue;
            };
            // As the mock does on both listeners: without it, the TLS handshake's server flight
            // waited for the client's delayed ACK (40 ms) in some starts.
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            let service = hyper_util::service::TowerToHyperService::new(tls_router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    let http = http.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(http, router)
        .await
        .context("serving plain HTTP")?;
    Ok(())
}
