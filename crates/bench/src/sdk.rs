//! `bench sdk`: clients against our mock over plain HTTP, with an API token.
//!
//! The same three scenarios for every client: [`N_GETS`] sequential `GET /version`, the same
//! number with 32 in flight, and [`N_CREATES`] VM creations each followed by waiting for its
//! task (polling every 10 ms, the same interval for every client). The clients:
//!
//! - our SDK, typed (`client.version().get()`, `nodes().node(..).qemu().create(..)`) and dynamic
//!   (`client.get::<Value>("/version", &())`);
//! - raw reqwest with the settings our SDK uses (rustls on ring, the same timeouts, pool and
//!   redirect policy), parsing the body into a `serde_json::Value`: the floor under our SDK;
//! - proxmoxer 2.3.0 (requests; 32 threads for the concurrent scenario) and proxmox-sdk
//!   0.0.15's async Python SDK (aiohttp; `asyncio.gather` under a semaphore of 32), run by
//!   `python/sdk_clients.py` in the peers' virtualenv.
//!
//! Each scenario is repeated and the median wall time reported; a 100-request warm-up opens the
//! connections first. The Rust clients take turns within each repetition, so a burst of other
//! work on the machine does not land on one of them only.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use http::Method;
use proxmox_sdk::Client;
use proxmox_sdk::shared_types::nodes::{MemoryConfig, NodesQemuCreateVmParams};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::clients::{OURS_DYNAMIC, OURS_TYPED, PROXMOXER, PYTHON_SDK, RAW_REQWEST, SDK_SCENARIOS};
use crate::load;
use crate::results::{RunInfo, SdkResults, SdkRow, now_utc};
use crate::setup::{BenchEnv, client_tls_config, loadavg};
use crate::stats::median;
use crate::systems::{self, Seed, SystemKind};

/// GETs per GET scenario.
const N_GETS: u64 = 1_000;
/// In-flight requests of the concurrent scenario.
const CONCURRENCY: usize = 32;
/// Creates (each with a task wait).
const N_CREATES: u64 = 200;
/// Task polling interval for every client.
const POLL: Duration = Duration::from_millis(10);
/// The embedded Python driver.
const PYTHON_DRIVER: &str = include_str!("../python/sdk_clients.py");

/// Runs the SDK comparison.
pub async fn run(env: &BenchEnv) -> anyhow::Result<SdkResults> {
    let load_before = loadavg();
    let date = now_utc();
    // The Rust scenarios take a fraction of a second each, so they are repeated more often.
    let (repeats, python_repeats) = if env.quick { (3, 1) } else { (15, 5) };
    let running = systems::start(env, SystemKind::Ours, Seed::Default).await?;
    let auth = running.login(env).await?;
    let http = running
        .target(env, false)
        .context("our mock has no HTTP address")?;
    let mut headers = auth.headers.clone();
    headers.extend(auth.write_headers.iter().cloned());
    let (status, body) = load::once(
        &http,
        Method::POST,
        "/api2/json/access/users/root@pam/token/bench",
        &headers,
        Some("privsep=0"),
    )
    .await?;
    anyhow::ensure!(
        status.is_success(),
        "creating the API token answered {status}"
    );
    let answer: Value = serde_json::from_slice(&body).context("parsing the token answer")?;
    let secret = answer["data"]["value"]
        .as_str()
        .context("no token secret in the answer")?
        .to_owned();
    let base_url = format!("http://{}", http.addr);
    let next_vmid = AtomicU32::new(20_000);
    let mut rows = Vec::new();

    let sdk = Client::builder()
        .base_url(&base_url)
        .token("root@pam!bench", &secret)
        .task_poll_interval(POLL, POLL)
        .build()
        .context("building the SDK client")?;
    let raw = RawClient::new(&base_url, &secret, &env.cert_path)?;
    let clients = [
        (OURS_TYPED, RustClient::Typed(&sdk)),
        (OURS_DYNAMIC, RustClient::Dynamic(&sdk)),
        (RAW_REQWEST, RustClient::Raw(&raw)),
    ];
    rows.extend(run_rust_clients(&clients, repeats, &next_vmid).await);
    for (name, driver) in [(PROXMOXER, "proxmoxer"), (PYTHON_SDK, "proxmox-sdk")] {
        eprintln!("sdk: {name}");
        let config = json!({
            "host": http.addr.ip().to_string(),
            "port": http.addr.port(),
            "token_user": "root@pam",
            "token_name": "bench",
            "token_value": secret,
            "n_gets": N_GETS,
            "concurrency": CONCURRENCY,
            "n_creates": N_CREATES,
            "vmid_start": next_vmid.fetch_add(
                u32::try_from(N_CREATES).unwrap_or(u32::MAX)
                    * u32::try_from(python_repeats).unwrap_or(1),
                Ordering::Relaxed,
            ),
            "repeats": python_repeats,
            "poll_s": POLL.as_secs_f64(),
        });
        rows.extend(run_python_client(env, name, driver, &config).await);
    }
    running.stop();
    Ok(SdkResults {
        run: RunInfo {
            date,
            quick: env.quick,
            load_before,
            load_after: loadavg(),
        },
        n_gets: N_GETS,
        concurrency: CONCURRENCY,
        n_creates: N_CREATES,
        repeats,
        python_repeats,
        rows,
    })
}

/// reqwest configured as our SDK configures it, with the token header.
struct RawClient {
    http: reqwest::Client,
    base_url: String,
    authorization: String,
}

impl RawClient {
    fn new(base_url: &str, secret: &str, cert_path: &std::path::Path) -> anyhow::Result<Self> {
        let cert_pem = std::fs::read_to_string(cert_path)
            .with_context(|| format!("reading {}", cert_path.display()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(client_tls_config(&cert_pem)?)
            .timeout(proxmox_sdk::DEFAULT_TIMEOUT)
            .connect_timeout(proxmox_sdk::DEFAULT_CONNECT_TIMEOUT)
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .pool_idle_timeout(Some(Duration::from_secs(90)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("bench-raw-reqwest")
            .build()
            .context("building the reqwest client")?;
        Ok(RawClient {
            http,
            base_url: format!("{base_url}/api2/json"),
            authorization: format!("PVEAPIToken=root@pam!bench={secret}"),
        })
    }

    async fn get_data(&self, path: &str) -> anyhow::Result<Value> {
        let bytes = self
            .http
            .get(format!("{}{path}", self.base_url))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let mut envelope: Value = serde_json::from_slice(&bytes)?;
        Ok(envelope["data"].take())
    }

    async fn create_and_wait(&self, vmid: u32) -> anyhow::Result<()> {
        let bytes = self
            .http
            .post(format!("{}/nodes/pve1/qemu", self.base_url))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .form(&[
                ("vmid", vmid.to_string()),
                ("name", format!("bench{vmid}")),
                ("memory", "512".to_owned()),
            ])
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let envelope: Value = serde_json::from_slice(&bytes)?;
        let upid = envelope["data"].as_str().context("no UPID")?;
        let status_path = proxmox_sdk::path(["nodes", "pve1", "tasks", upid, "status"]);
        for _ in 0..3000 {
            let status = self.get_data(&status_path).await?;
            if status["status"] == "stopped" {
                anyhow::ensure!(status["exitstatus"] == "OK", "task failed: {status}");
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        anyhow::bail!("task {upid} still running")
    }
}

/// The Rust clients.
enum RustClient<'a> {
    Typed(&'a Client),
    Dynamic(&'a Client),
    Raw(&'a RawClient),
}

impl RustClient<'_> {
    async fn get_version(&self) -> anyhow::Result<()> {
        match self {
            RustClient::Typed(client) => {
                client.version().get().await?;
            }
            RustClient::Dynamic(client) => {
                client.get::<Value>("/version", &()).await?;
            }
            RustClient::Raw(raw) => {
                raw.get_data("/version").await?;
            }
        }
        Ok(())
    }

    async fn create_and_wait(&self, vmid: u32) -> anyhow::Result<()> {
        let (client, upid) = match self {
            RustClient::Typed(client) => {
                let params = NodesQemuCreateVmParams {
                    name: Some(format!("bench{vmid}")),
                    memory: Some(MemoryConfig::new(512)),
                    ..NodesQemuCreateVmParams::new(vmid)
                };
                let upid = client.nodes().node("pve1").qemu().create(&params).await?;
                (client, upid)
            }
            RustClient::Dynamic(client) => {
                let upid = client
                    .post(
                        "/nodes/pve1/qemu",
                        &json!({"vmid": vmid, "name": format!("bench{vmid}"), "memory": "512"}),
                    )
                    .await?;
                (client, upid)
            }
            RustClient::Raw(raw) => return raw.create_and_wait(vmid).await,
        };
        let exit_status = client.task(&upid).wait(Duration::from_secs(30)).await?;
        anyhow::ensure!(exit_status == "OK", "task ended with {exit_status}");
        Ok(())
    }
}

/// Wall times and errors of one client, per scenario.
#[derive(Default)]
struct Tally {
    walls: [Vec<f64>; 3],
    errors: [Option<String>; 3],
}

/// Runs the Rust clients, interleaved: each repetition runs every client once, so that a slow
/// moment of the (shared) machine does not fall on one client only.
async fn run_rust_clients(
    clients: &[(&str, RustClient<'_>)],
    repeats: usize,
    next_vmid: &AtomicU32,
) -> Vec<SdkRow> {
    let mut tallies: Vec<Tally> = clients.iter().map(|_| Tally::default()).collect();
    for ((_, client), tally) in clients.iter().zip(&mut tallies) {
        for _ in 0..100 {
            if let Err(error) = client.get_version().await {
                tally.errors[0] = Some(format!("warm-up: {error:#}"));
                break;
            }
        }
    }
    for repeat in 0..repeats {
        for ((name, client), tally) in clients.iter().zip(&mut tallies) {
            eprintln!("sdk: {name}, repetition {}", repeat + 1);
            run_repetition(client, tally, next_vmid).await;
        }
    }
    clients
        .iter()
        .zip(tallies)
        .flat_map(|((name, _), tally)| {
            SDK_SCENARIOS
                .iter()
                .zip(tally.walls)
                .zip(tally.errors)
                .map(|((scenario, wall_s), error)| {
                    let n_ops = if *scenario == SDK_SCENARIOS[2] {
                        N_CREATES
                    } else {
                        N_GETS
                    };
                    row(name, scenario, n_ops, wall_s, error)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One repetition of the three scenarios (a scenario that failed once is skipped afterwards).
async fn run_repetition(client: &RustClient<'_>, tally: &mut Tally, next_vmid: &AtomicU32) {
    if tally.errors[0].is_none() {
        let started = Instant::now();
        let mut outcome = Ok(());
        for _ in 0..N_GETS {
            outcome = client.get_version().await;
            if outcome.is_err() {
                break;
            }
        }
        record(&mut tally.walls[0], &mut tally.errors[0], started, outcome);
    }
    if tally.errors[1].is_none() {
        let started = Instant::now();
        let outcome = futures::stream::iter(0..N_GETS)
            .map(|_| client.get_version())
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await
            .map(drop);
        record(&mut tally.walls[1], &mut tally.errors[1], started, outcome);
    }
    if tally.errors[2].is_none() {
        let started = Instant::now();
        let mut outcome = Ok(());
        for _ in 0..N_CREATES {
            let vmid = next_vmid.fetch_add(1, Ordering::Relaxed);
            outcome = client.create_and_wait(vmid).await;
            if outcome.is_err() {
                break;
            }
        }
        record(&mut tally.walls[2], &mut tally.errors[2], started, outcome);
    }
}

fn record(
    walls: &mut Vec<f64>,
    error_slot: &mut Option<String>,
    started: Instant,
    outcome: anyhow::Result<()>,
) {
    match outcome {
        Ok(()) => walls.push(started.elapsed().as_secs_f64()),
        Err(error) => *error_slot = Some(format!("{error:#}")),
    }
}

fn row(
    client: &str,
    scenario: &str,
    n_ops: u64,
    wall_s: Vec<f64>,
    error: Option<String>,
) -> SdkRow {
    let median_wall_s = if error.is_none() {
        median(&wall_s)
    } else {
        None
    };
    SdkRow {
        client: client.to_owned(),
        scenario: scenario.to_owned(),
        n_ops,
        ops_per_s: median_wall_s.map(|wall| n_ops as f64 / wall),
        median_wall_s,
        wall_s,
        error,
    }
}

/// What `python/sdk_clients.py` prints.
#[derive(Deserialize)]
struct PythonOutput {
    results: Vec<PythonResult>,
}

#[derive(Deserialize)]
struct PythonResult {
    scenario: String,
    n_ops: u64,
    wall_s: Vec<f64>,
}

async fn run_python_client(
    env: &BenchEnv,
    name: &str,
    driver: &str,
    config: &Value,
) -> Vec<SdkRow> {
    match python_client(env, driver, config).await {
        Ok(output) => output
            .results
            .into_iter()
            .map(|result| row(name, &result.scenario, result.n_ops, result.wall_s, None))
            .collect(),
        Err(error) => SDK_SCENARIOS
            .iter()
            .map(|scenario| row(name, scenario, 0, Vec::new(), Some(format!("{error:#}"))))
            .collect(),
    }
}

async fn python_client(
    env: &BenchEnv,
    driver: &str,
    config: &Value,
) -> anyhow::Result<PythonOutput> {
    let script = env.bench_dir.join("sdk_clients.py");
    std::fs::write(&script, PYTHON_DRIVER)
        .with_context(|| format!("writing {}", script.display()))?;
    let child = tokio::process::Command::new(&env.python)
        .arg(&script)
        .arg(driver)
        .arg(config.to_string())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(600), child)
        .await
        .context("the Python client ran for more than 10 minutes")?
        .context("running the Python client")?;
    anyhow::ensure!(
        output.status.success(),
        "{driver} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .last()
            .unwrap_or_default()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last_line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last_line).with_context(|| format!("parsing {driver}'s output"))
}
