//! `bench proxy`: what real mode (`mock-server --upstream`) adds in front of a server. The
//! upstream is our release mock on loopback (plain HTTP); the proxy is a second release mock
//! started with `--upstream http://<upstream>`; both answer the same closed-loop load (50
//! keep-alive connections, an API token) on `GET /version` and `GET /nodes/pve1/qemu`, directly
//! and through the proxy, alternating, three rounds (one in `--quick`). The figures are the
//! medians over rounds of p50 latency and throughput, the added p50 latency (proxy minus
//! direct) and the throughput ratio (proxy / direct), measured in the same run.
//!
//! Prints a table and writes `target/bench/proxy.json`.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use serde::Serialize;

use crate::load::{self, Auth, Body, LoadShape, RequestSpec, Target};
use crate::setup::{self, BenchEnv};
use crate::stats;
use crate::systems::{self, Seed, SystemKind};

/// Keep-alive connections of every load run.
const CONNECTIONS: usize = 50;

/// The endpoints measured.
const ENDPOINTS: &[&str] = &["/api2/json/version", "/api2/json/nodes/pve1/qemu"];

/// One endpoint's figures.
#[derive(Debug, Serialize)]
struct EndpointFigures {
    endpoint: String,
    direct_rps: f64,
    proxy_rps: f64,
    throughput_ratio: f64,
    direct_p50_ms: f64,
    proxy_p50_ms: f64,
    added_p50_ms: f64,
}

/// The proxy process, stopped on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the proxy benchmark.
pub async fn run(env: &BenchEnv) -> anyhow::Result<()> {
    let upstream = systems::start(env, SystemKind::Ours, Seed::Default).await?;
    let upstream_addr = upstream.http.context("our mock serves no plain HTTP")?;
    let direct = Target {
        addr: upstream_addr,
        tls: None,
    };
    let auth = token_auth(&direct).await?;
    let proxy = start_proxy(env, upstream_addr).await?;
    let proxied = Target {
        addr: proxy.addr,
        tls: None,
    };
    let rounds = if env.quick { 1 } else { 3 };
    let duration = Duration::from_secs(if env.quick { 3 } else { 6 });
    let shape = LoadShape {
        connections: CONNECTIONS,
        duration,
        max_requests: None,
    };
    let mut figures = Vec::new();
    for endpoint in ENDPOINTS {
        let spec = RequestSpec {
            method: Method::GET,
            path: (*endpoint).to_owned(),
            body: Body::Empty,
        };
        let (mut direct_rps, mut proxy_rps, mut direct_p50, mut proxy_p50) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            for (target, rps, p50) in [
                (&direct, &mut direct_rps, &mut direct_p50),
                (&proxied, &mut proxy_rps, &mut proxy_p50),
            ] {
                let summary = load::run(target, &auth, &spec, shape).await?;
                if summary.ok == 0 {
                    bail!("{endpoint}: no 2xx answer ({:?})", summary.first_failure);
                }
                rps.push(summary.rps);
                p50.push(summary.latency.map_or(f64::NAN, |l| l.p50_ms));
            }
        }
        let median = |values: &[f64]| stats::median(values).unwrap_or(f64::NAN);
        let (d_rps, p_rps) = (median(&direct_rps), median(&proxy_rps));
        let (d_p50, p_p50) = (median(&direct_p50), median(&proxy_p50));
        figures.push(EndpointFigures {
            endpoint: endpoint.trim_start_matches("/api2/json").to_owned(),
            direct_rps: d_rps,
            proxy_rps: p_rps,
            throughput_ratio: p_rps / d_rps,
            direct_p50_ms: d_p50,
            proxy_p50_ms: p_p50,
            added_p50_ms: p_p50 - d_p50,
        });
    }
    drop(proxy);
    upstream.stop();
    print_table(&figures);
    let path = env.bench_dir.join("proxy.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&figures)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// Logs in as root on the upstream and creates an API token without privilege separation, so
/// that every load request carries the same `Authorization` header and no CSRF token.
async fn token_auth(upstream: &Target) -> anyhow::Result<Auth> {
    let form = format!("username=root%40pam&password={}", systems::ROOT_PASSWORD);
    let (status, body) = load::once(
        upstream,
        Method::POST,
        "/api2/json/access/ticket",
        &[],
        Some(&form),
    )
    .await?;
    anyhow::ensure!(status == StatusCode::OK, "login failed: {status}");
    let reply: serde_json::Value = serde_json::from_slice(&body)?;
    let ticket = reply["data"]["ticket"].as_str().context("no ticket")?;
    let csrf = reply["data"]["CSRFPreventionToken"]
        .as_str()
        .context("no CSRF token")?;
    let headers = [
        (
            header::COOKIE,
            HeaderValue::from_str(&format!("PVEAuthCookie={ticket}"))?,
        ),
        (
            HeaderName::from_static("csrfpreventiontoken"),
            HeaderValue::from_str(csrf)?,
        ),
    ];
    let (status, body) = load::once(
        upstream,
        Method::POST,
        "/api2/json/access/users/root@pam/token/bench-proxy",
        &headers,
        Some("privsep=0"),
    )
    .await?;
    anyhow::ensure!(status == StatusCode::OK, "token creation failed: {status}");
    let reply: serde_json::Value = serde_json::from_slice(&body)?;
    let secret = reply["data"]["value"].as_str().context("no token secret")?;
    Ok(Auth {
        headers: vec![(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("PVEAPIToken=root@pam!bench-proxy={secret}"))?,
        )],
        write_headers: Vec::new(),
    })
}

/// Starts the release mock in real mode in front of `upstream` and waits until it answers.
async fn start_proxy(env: &BenchEnv, upstream: SocketAddr) -> anyhow::Result<Proxy> {
    let free = || -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        listener.local_addr().context("reading the bound address")
    };
    let (http, https) = (free()?, free()?);
    let log_path = env.bench_dir.join("proxy-server.log");
    let log = File::create(&log_path)?;
    let child = Command::new(&env.mock_binary)
        .args(["--store", "memory"])
        .args(["--http-listen", &http.to_string()])
        .args(["--listen", &https.to_string()])
        .arg("--tls-cert")
        .arg(&env.cert_path)
        .arg("--tls-key")
        .arg(&env.key_path)
        .args(["--upstream", &format!("http://{upstream}")])
        .env("RUST_LOG", "mock_server=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the proxy")?;
    let mut proxy = Proxy { child, addr: http };
    let target = Target {
        addr: http,
        tls: None,
    };
    let started = Instant::now();
    loop {
        if let Ok((status, _)) =
            load::once(&target, Method::GET, "/api2/json/version", &[], None).await
            && status != StatusCode::BAD_GATEWAY
        {
            return Ok(proxy);
        }
        if let Some(exit) = proxy.child.try_wait()? {
            bail!(
                "the proxy exited during start-up ({exit}); see {}",
                log_path.display()
            );
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the proxy did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn print_table(figures: &[EndpointFigures]) {
    println!(
        "| endpoint | direct req/s | proxy req/s | proxy / direct | direct p50 ms | proxy p50 ms | added p50 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| `{}` | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} | {:.3} |",
            f.endpoint,
            f.direct_rps,
            f.proxy_rps,
            f.throughput_ratio,
            f.direct_p50_ms,
            f.proxy_p50_ms,
            f.added_p50_ms
        );
    }
}

/// Runs `bench proxy` from the command line.
pub fn main(quick: bool, build: bool) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()
        .context("starting the runtime")?
        .block_on(async {
            let env = setup::prepare(quick, false, build)?;
            run(&env).await
        })
}
