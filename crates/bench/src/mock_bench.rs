//! `bench mock`: our mock against fakepve, the proxmox-sdk mock and a bare axum handler.
//!
//! Per system: start it [`STARTS`] times with fresh state (median start-up to the first 200),
//! keep the last instance, read its RSS, log in, warm up for a second, then run each GET endpoint
//! over each scheme with 50 keep-alive connections for 10 s (3 s with `--quick`), and read the
//! RSS again. Creates run on a fresh instance per scheme, so that the GET figures never see the
//! thousands of VMs the creates leave behind. Before the create load one probe create tells
//! whether the system accepts a form-encoded create at all; if it does not, the row says so with
//! the status and body it answered.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use anyhow::Context;
use http::{Method, StatusCode};

use crate::load::{self, Auth, Body, LoadShape, RequestSpec, Target};
use crate::results::{EndpointResult, MockResults, Outcome, RunInfo, SystemResults, now_utc};
use crate::setup::{BenchEnv, loadavg};
use crate::stats::median;
use crate::systems::{self, Running, Seed, SystemKind, version_body_path};

/// Starts per system for the start-up median.
const STARTS: usize = 5;
/// Keep-alive connections per load run (as `wrk -c50`).
pub const CONNECTIONS: usize = 50;
/// First VM ID of the creates.
const FIRST_VMID: u32 = 10_000;

/// One endpoint of the comparison.
struct Endpoint {
    label: &'static str,
    method: Method,
    path: &'static str,
}

fn get_endpoints() -> [Endpoint; 3] {
    [
        Endpoint {
            label: "GET /version",
            method: Method::GET,
            path: "/api2/json/version",
        },
        Endpoint {
            label: "GET /nodes",
            method: Method::GET,
            path: "/api2/json/nodes",
        },
        Endpoint {
            label: "GET /nodes/pve1/qemu",
            method: Method::GET,
            path: "/api2/json/nodes/pve1/qemu",
        },
    ]
}

const CREATE_LABEL: &str = "POST /nodes/pve1/qemu";
const CREATE_PATH: &str = "/api2/json/nodes/pve1/qemu";

/// Runs the whole comparison.
pub async fn run(env: &BenchEnv) -> anyhow::Result<MockResults> {
    let load_before = loadavg();
    let date = now_utc();
    let duration = Duration::from_secs(if env.quick { 3 } else { 10 });
    let starts = if env.quick { 3 } else { STARTS };
    let shape = LoadShape {
        connections: CONNECTIONS,
        duration,
        max_requests: None,
    };
    let mut systems = Vec::new();
    // Ours first: the bare handler repeats our /version answer.
    for kind in [
        SystemKind::Ours,
        SystemKind::BareAxum,
        SystemKind::Fakepve,
        SystemKind::ProxmoxSdkMock,
    ] {
        eprintln!("mock: {}", kind.label());
        let results = run_system(env, kind, shape, starts)
            .await
            .with_context(|| format!("benchmarking {}", kind.label()))?;
        systems.push(results);
    }
    Ok(MockResults {
        run: RunInfo {
            date,
            quick: env.quick,
            load_before,
            load_after: loadavg(),
        },
        connections: CONNECTIONS,
        duration_s: duration.as_secs_f64(),
        systems,
    })
}

async fn run_system(
    env: &BenchEnv,
    kind: SystemKind,
    shape: LoadShape,
    starts: usize,
) -> anyhow::Result<SystemResults> {
    let mut startup_ms = Vec::with_capacity(starts);
    let mut running = systems::start(env, kind, Seed::Default).await?;
    startup_ms.push(running.startup.as_secs_f64() * 1000.0);
    for _ in 1..starts {
        running.stop();
        running = systems::start(env, kind, Seed::Default).await?;
        startup_ms.push(running.startup.as_secs_f64() * 1000.0);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_start_kib = running.rss_kib().ok();
    let auth = running.login(env).await?;
    if kind == SystemKind::Ours {
        keep_version_body(env, &running, &auth).await?;
    }
    let warm_up = LoadShape {
        duration: Duration::from_millis(if env.quick { 500 } else { 1000 }),
        ..shape
    };
    let version = RequestSpec {
        method: Method::GET,
        path: "/api2/json/version".to_owned(),
        body: Body::Empty,
    };
    load::run(&running.primary_target(env)?, &auth, &version, warm_up).await?;

    let mut endpoints = Vec::new();
    for endpoint in get_endpoints() {
        if kind == SystemKind::BareAxum && endpoint.path != "/api2/json/version" {
            continue;
        }
        for https in [false, true] {
            let scheme = if https { "https" } else { "http" };
            let outcome = match running.target(env, https) {
                None => Outcome::Unsupported {
                    reason: missing_scheme_reason(kind, https),
                },
                Some(target) => {
                    eprintln!("  {} over {scheme}", endpoint.label);
                    let spec = RequestSpec {
                        method: endpoint.method.clone(),
                        path: endpoint.path.to_owned(),
                        body: Body::Empty,
                    };
                    measure(&target, &auth, &spec, shape).await
                }
            };
            endpoints.push(EndpointResult {
                endpoint: endpoint.label.to_owned(),
                scheme: scheme.to_owned(),
                outcome,
            });
        }
    }
    let rss_after_gets_kib = running.rss_kib().ok();
    running.stop();

    let mut rss_after_creates_kib = None;
    if kind != SystemKind::BareAxum {
        for https in [false, true] {
            let scheme = if https { "https" } else { "http" };
            let outcome = if (https && !kind.serves_https()) || (!https && !kind.serves_http()) {
                Outcome::Unsupported {
                    reason: missing_scheme_reason(kind, https),
                }
            } else {
                eprintln!("  {CREATE_LABEL} over {scheme}");
                let running = systems::start(env, kind, Seed::Default).await?;
                let auth = running.login(env).await?;
                let target = running
                    .target(env, https)
                    .context("the scheme has no address")?;
                let outcome = measure_creates(&target, &auth, shape).await;
                rss_after_creates_kib = running.rss_kib().ok();
                running.stop();
                outcome
            };
            endpoints.push(EndpointResult {
                endpoint: CREATE_LABEL.to_owned(),
                scheme: scheme.to_owned(),
                outcome,
            });
        }
    }
    Ok(SystemResults {
        system: kind,
        startup_median_ms: median(&startup_ms),
        startup_ms,
        rss_start_kib,
        rss_after_gets_kib,
        rss_after_creates_kib,
        endpoints,
    })
}

/// One load run, as an outcome: failed when no request succeeded.
async fn measure(target: &Target, auth: &Auth, spec: &RequestSpec, shape: LoadShape) -> Outcome {
    match load::run(target, auth, spec, shape).await {
        Ok(load) if load.ok == 0 => Outcome::Failed {
            error: load
                .first_failure
                .unwrap_or_else(|| "no request succeeded".to_owned()),
        },
        Ok(load) => Outcome::Measured { load },
        Err(error) => Outcome::Failed {
            error: format!("{error:#}"),
        },
    }
}

/// A probe create, then the create load if the probe was accepted.
async fn measure_creates(target: &Target, auth: &Auth, shape: LoadShape) -> Outcome {
    let mut headers = auth.headers.clone();
    headers.extend(auth.write_headers.iter().cloned());
    let probe = load::once(
        target,
        Method::POST,
        CREATE_PATH,
        &headers,
        Some(&load::create_form(FIRST_VMID - 1)),
    )
    .await;
    match probe {
        Ok((status, _)) if status.is_success() => {}
        Ok((status, body)) => {
            return Outcome::Unsupported {
                reason: rejection_reason(status, &body),
            };
        }
        Err(error) => {
            return Outcome::Failed {
                error: format!("{error:#}"),
            };
        }
    }
    let spec = RequestSpec {
        method: Method::POST,
        path: CREATE_PATH.to_owned(),
        body: Body::CreateVm {
            next_vmid: Arc::new(AtomicU32::new(FIRST_VMID)),
        },
    };
    measure(target, auth, &spec, shape).await
}

fn rejection_reason(status: StatusCode, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
    format!("a form-encoded create (vmid, name, memory) is rejected: {status} {text}")
}

fn missing_scheme_reason(kind: SystemKind, https: bool) -> String {
    match (kind, https) {
        (SystemKind::Fakepve, false) => "fakepve serves HTTPS only".to_owned(),
        (SystemKind::ProxmoxSdkMock, true) => {
            "the proxmox-sdk mock serves plain HTTP only (uvicorn without TLS)".to_owned()
        }
        (_, true) => "no HTTPS listener".to_owned(),
        (_, false) => "no plain HTTP listener".to_owned(),
    }
}

/// Saves our `/version` answer for the bare handler.
async fn keep_version_body(env: &BenchEnv, running: &Running, auth: &Auth) -> anyhow::Result<()> {
    let target = running.primary_target(env)?;
    let (status, body) = load::once(
        &target,
        Method::GET,
        "/api2/json/version",
        &auth.headers,
        None,
    )
    .await?;
    anyhow::ensure!(status == StatusCode::OK, "GET /version answered {status}");
    let path = version_body_path(env);
    std::fs::write(&path, &body).with_context(|| format!("writing {}", path.display()))
}
