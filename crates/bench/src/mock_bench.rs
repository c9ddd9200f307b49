//! `bench mock`: our mock against fakepve, the proxmox-sdk mock and a bare axum handler.
//!
//! The machine is shared, so the systems take turns rather than being measured one after the
//! other: a burst of someone else's compilation then lands on every system alike, and the median
//! of the rounds is reported.
//!
//! 1. Start-up: [`STARTS`] rounds, each starting and stopping every system once with fresh state;
//!    the median time to the first 200 answer.
//! 2. GETs: every system is started once more and left running; RSS after start, login, a short
//!    warm-up; then [`ROUNDS`] rounds, each running every GET endpoint over every scheme against
//!    every system for 10 s (3 s and one round with `--quick`) with 50 keep-alive connections;
//!    RSS after the last round.
//! 3. Creates: per round, scheme and system, a fresh instance (so no run sees the VMs of another),
//!    one probe create to learn whether the system accepts a form-encoded create at all (if it
//!    does not, the reason is recorded with its status and body), then the create load; RSS
//!    after the last create run.
//!
//! Per endpoint, the reported run is the one with the median throughput; the throughput of every
//! round is kept in the results.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use anyhow::Context;
use http::{Method, StatusCode};

use crate::load::{self, Auth, Body, LoadShape, LoadSummary, RequestSpec, Target};
use crate::results::{EndpointResult, MockResults, Outcome, RunInfo, SystemResults, now_utc};
use crate::setup::{BenchEnv, loadavg};
use crate::stats::median;
use crate::systems::{self, Running, Seed, SystemKind, version_body_path};

/// Starts per system for the start-up median.
const STARTS: usize = 5;
/// Rounds of load runs per endpoint (median reported).
const ROUNDS: usize = 3;
/// Keep-alive connections per load run (as `wrk -c50`).
pub const CONNECTIONS: usize = 50;
/// First VM ID of the creates.
const FIRST_VMID: u32 = 10_000;

/// The systems, in the order they take their turns (ours first: the bare handler repeats our
/// `/version` answer; the baseline binary, when given, right after ours).
fn systems(env: &BenchEnv) -> Vec<SystemKind> {
    if env.check {
        return vec![SystemKind::Ours, SystemKind::BareAxum];
    }
    let mut systems = vec![SystemKind::Ours];
    if env.baseline_binary.is_some() {
        systems.push(SystemKind::Baseline);
    }
    if env.creates_only {
        return systems;
    }
    systems.extend([
        SystemKind::BareAxum,
        SystemKind::Fakepve,
        SystemKind::ProxmoxSdkMock,
    ]);
    systems
}

/// One endpoint of the comparison.
struct Endpoint {
    label: &'static str,
    path: &'static str,
}

const GET_ENDPOINTS: [Endpoint; 3] = [
    Endpoint {
        label: "GET /version",
        path: "/api2/json/version",
    },
    Endpoint {
        label: "GET /nodes",
        path: "/api2/json/nodes",
    },
    Endpoint {
        label: "GET /nodes/pve1/qemu",
        path: "/api2/json/nodes/pve1/qemu",
    },
];

const CREATE_LABEL: &str = "POST /nodes/pve1/qemu";
const CREATE_PATH: &str = "/api2/json/nodes/pve1/qemu";

/// Key of a measured cell: system, endpoint label, HTTPS.
type Cell = (SystemKind, &'static str, bool);

/// Every run of one cell, and why a cell has none.
#[derive(Default)]
struct Cells {
    runs: BTreeMap<Cell, Vec<LoadSummary>>,
    failures: BTreeMap<Cell, Outcome>,
}

impl Cells {
    fn record(&mut self, cell: Cell, outcome: Outcome) {
        match outcome {
            Outcome::Measured { load } => self.runs.entry(cell).or_default().push(load),
            other => {
                self.failures.entry(cell).or_insert(other);
            }
        }
    }

    /// The run with the median throughput, or why there is none.
    fn outcome(&self, cell: &Cell) -> (Outcome, Vec<f64>) {
        match self.runs.get(cell) {
            Some(runs) if !runs.is_empty() => {
                let mut sorted: Vec<&LoadSummary> = runs.iter().collect();
                sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
                let load = sorted[(sorted.len() - 1) / 2].clone();
                (
                    Outcome::Measured { load },
                    runs.iter().map(|run| run.rps).collect(),
                )
            }
            _ => (
                self.failures
                    .get(cell)
                    .cloned()
                    .unwrap_or_else(|| Outcome::Failed {
                        error: "not measured".to_owned(),
                    }),
                Vec::new(),
            ),
        }
    }
}

/// A system left running for the GET rounds.
struct Serving {
    running: Running,
    auth: Auth,
    rss_start_kib: Option<u64>,
}

/// Runs the whole comparison.
pub async fn run(env: &BenchEnv) -> anyhow::Result<MockResults> {
    let load_before = loadavg();
    let date = now_utc();
    let duration = Duration::from_secs(if env.quick { 3 } else { 10 });
    let (starts, rounds) = if env.quick { (3, 1) } else { (STARTS, ROUNDS) };
    // `--creates`: the create runs alone.
    let (starts, get_rounds) = if env.creates_only {
        (0, 0)
    } else {
        (starts, rounds)
    };
    let shape = LoadShape {
        connections: CONNECTIONS,
        duration,
        max_requests: None,
    };

    let turns = systems(env);
    let mut startup_ms: BTreeMap<SystemKind, Vec<f64>> = BTreeMap::new();
    for round in 0..starts {
        for kind in systems::start_order(&turns, round) {
            eprintln!("mock: start-up {} of {starts}: {}", round + 1, kind.label());
            let running = systems::start(env, kind, Seed::Default)
                .await
                .with_context(|| format!("starting {}", kind.label()))?;
            startup_ms
                .entry(kind)
                .or_default()
                .push(running.startup.as_secs_f64() * 1000.0);
            if kind == SystemKind::Ours && round == 0 {
                let auth = running.login(env).await?;
                keep_version_body(env, &running, &auth).await?;
            }
            running.stop();
        }
    }

    let mut serving = BTreeMap::new();
    for &kind in turns.iter().filter(|_| !env.creates_only) {
        let running = systems::start(env, kind, Seed::Default)
            .await
            .with_context(|| format!("starting {}", kind.label()))?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let rss_start_kib = running.rss_kib().ok();
        let auth = running.login(env).await?;
        let warm_up = LoadShape {
            duration: Duration::from_millis(if env.quick { 500 } else { 1000 }),
            ..shape
        };
        let version = RequestSpec {
            method: Method::GET,
            path: GET_ENDPOINTS[0].path.to_owned(),
            body: Body::Empty,
        };
        load::run(&running.primary_target(env)?, &auth, &version, warm_up).await?;
        serving.insert(
            kind,
            Serving {
                running,
                auth,
                rss_start_kib,
            },
        );
    }

    let mut cells = Cells::default();
    for round in 0..get_rounds {
        for endpoint in &GET_ENDPOINTS {
            for https in [false, true] {
                for &kind in &turns {
                    if kind == SystemKind::BareAxum && endpoint.path != GET_ENDPOINTS[0].path {
                        continue;
                    }
                    let Some(system) = serving.get(&kind) else {
                        continue;
                    };
                    let cell = (kind, endpoint.label, https);
                    let Some(target) = system.running.target(env, https) else {
                        cells.record(
                            cell,
                            Outcome::Unsupported {
                                reason: missing_scheme_reason(kind, https),
                            },
                        );
                        continue;
                    };
                    eprintln!(
                        "mock: round {} of {rounds}: {} over {}: {}",
                        round + 1,
                        endpoint.label,
                        scheme(https),
                        kind.label()
                    );
                    let spec = RequestSpec {
                        method: Method::GET,
                        path: endpoint.path.to_owned(),
                        body: Body::Empty,
                    };
                    cells.record(cell, measure(&target, &system.auth, &spec, shape).await);
                }
            }
        }
    }
    let mut rss_start = BTreeMap::new();
    let mut rss_after_gets = BTreeMap::new();
    for (kind, system) in serving {
        rss_start.insert(kind, system.rss_start_kib);
        rss_after_gets.insert(kind, system.running.rss_kib().ok());
        system.running.stop();
    }

    let mut rss_after_creates: BTreeMap<SystemKind, Option<u64>> = BTreeMap::new();
    // The regression guard compares GETs with bare axum; creates have no bare counterpart.
    let create_rounds = if env.check { 0 } else { rounds };
    for round in 0..create_rounds {
        for https in [false, true] {
            for &kind in &turns {
                if kind == SystemKind::BareAxum {
                    continue;
                }
                let cell = (kind, CREATE_LABEL, https);
                if cells.failures.contains_key(&cell) {
                    continue;
                }
                if (https && !kind.serves_https()) || (!https && !kind.serves_http()) {
                    cells.record(
                        cell,
                        Outcome::Unsupported {
                            reason: missing_scheme_reason(kind, https),
                        },
                    );
                    continue;
                }
                eprintln!(
                    "mock: round {} of {rounds}: {CREATE_LABEL} over {}: {}",
                    round + 1,
                    scheme(https),
                    kind.label()
                );
                let running = systems::start(env, kind, Seed::Default).await?;
                let auth = running.login(env).await?;
                let target = running
                    .target(env, https)
                    .context("the scheme has no address")?;
                let outcome = measure_creates(&target, &auth, shape).await;
                if matches!(outcome, Outcome::Measured { .. }) {
                    rss_after_creates.insert(kind, running.rss_kib().ok());
                }
                running.stop();
                cells.record(cell, outcome);
            }
        }
    }

    let mut results = Vec::new();
    for &kind in &turns {
        let mut endpoints = Vec::new();
        let labels = GET_ENDPOINTS
            .iter()
            .map(|e| e.label)
            .chain(std::iter::once(CREATE_LABEL));
        for label in labels {
            if (kind == SystemKind::BareAxum && label != GET_ENDPOINTS[0].label)
                || (env.check && label == CREATE_LABEL)
                || (env.creates_only && label != CREATE_LABEL)
            {
                continue;
            }
            for https in [false, true] {
                let (outcome, runs_rps) = cells.outcome(&(kind, label, https));
                endpoints.push(EndpointResult {
                    endpoint: label.to_owned(),
                    scheme: scheme(https).to_owned(),
                    outcome,
                    runs_rps,
                });
            }
        }
        let startups = startup_ms.remove(&kind).unwrap_or_default();
        results.push(SystemResults {
            system: kind,
            startup_median_ms: median(&startups),
            startup_ms: startups,
            rss_start_kib: rss_start.get(&kind).copied().flatten(),
            rss_after_gets_kib: rss_after_gets.get(&kind).copied().flatten(),
            rss_after_creates_kib: rss_after_creates.get(&kind).copied().flatten(),
            endpoints,
        });
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
        rounds,
        systems: results,
    })
}

fn scheme(https: bool) -> &'static str {
    if https { "https" } else { "http" }
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
pub(crate) async fn keep_version_body(
    env: &BenchEnv,
    running: &Running,
    auth: &Auth,
) -> anyhow::Result<()> {
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
