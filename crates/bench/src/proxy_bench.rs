//! `bench proxy`: what real mode (`mock-server --upstream`) adds in front of a server. The
//! upstream is our release mock on loopback (plain HTTP); the proxy is a second release mock
//! started with `--upstream http://<upstream>`; both answer the same closed-loop load (an API
//! token) on `GET /version` and `GET /nodes/pve1/qemu`, at 1 and at 50 keep-alive connections,
//! directly and through the proxy (and through a `--baseline` binary's proxy, when given),
//! alternating, three rounds (one in `--quick`). The figures are the medians over rounds of p50
//! latency and throughput, the added p50 latency (proxy minus direct) and the throughput ratio
//! (proxy / direct), all measured in the same run.
//!
//! CPU time per answered request is read from `/proc/<pid>/stat` for the upstream, the proxy
//! and the load generator (this process) around each run. On a machine where the three share
//! few cores the throughput ratio has a ceiling set by CPU alone: when every core is busy,
//! `(upstream + load generator) / (upstream + load generator + proxy)` of the CPU per request,
//! printed as "CPU ceiling" beside the measured ratio.
//!
//! **Open loop.** With 50 closed-loop connections on a machine the three processes saturate,
//! the p50 is mostly time spent queueing (about 50 / throughput), so the closed loop's "added
//! p50" is not what the proxy adds to a request. The bench therefore also runs 50 connections
//! open-loop ([`load::run_open`], like `wrk2 -R`) at a fixed offered rate that both paths
//! sustain: [`OPEN_FRACTION`] of the proxied path's closed-loop throughput at 50 connections
//! (median over rounds), the same rate directly, through the proxy and through the baseline's
//! proxy. Requests leave at their due times to within tens of microseconds (a pacing thread,
//! not tokio's millisecond timer, which sent them in bursts). Latency counts from each
//! request's due time when its connection was still busy then (no coordinated omission); the figures are p50 and p99 of each path and the added p50/p99
//! (proxy minus direct), medians over rounds, and the achieved rate (below the offered one
//! when a path could not keep up).
//!
//! At the end the proxy's `/_mock/discrepancies` says how many replies went unchecked because
//! the reply-check queue was full (real mode checks replies off the response path).
//!
//! Prints a table and writes `target/bench/proxy.json`. With `--baseline PATH` (another
//! `mock-server` binary, e.g. the build of the commit before a change) a second proxy from that
//! binary is measured in the same rounds.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use serde::Serialize;

use crate::load::{self, Auth, Body, LoadShape, RequestSpec, Target};
use crate::setup::{self, BenchEnv};
use crate::stats;
use crate::systems::{self, Seed, SystemKind};

/// Keep-alive connections of the load runs: 1 shows the added latency alone, 50 the
/// throughput under load.
const CONNECTIONS: &[usize] = &[1, 50];

/// The endpoints measured.
const ENDPOINTS: &[&str] = &["/api2/json/version", "/api2/json/nodes/pve1/qemu"];

/// The open-loop rate, as a fraction of the proxied path's closed-loop throughput at 50
/// connections.
const OPEN_FRACTION: f64 = 0.5;

/// Connections of the open-loop runs.
const OPEN_CONNECTIONS: usize = 50;

/// The control token of the proxies, to read their discrepancy counts.
const CONTROL_TOKEN: &str = "bench-proxy-control";

/// Kernel clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// One endpoint's figures at one connection count (medians over rounds).
#[derive(Debug, Serialize)]
struct EndpointFigures {
    endpoint: String,
    connections: usize,
    direct_rps: f64,
    proxy_rps: f64,
    throughput_ratio: f64,
    direct_p50_ms: f64,
    proxy_p50_ms: f64,
    added_p50_ms: f64,
    /// CPU microseconds per answered request.
    cpu_us: CpuPerRequest,
    /// `(upstream + load) / (upstream + load + proxy)` of the CPU per request.
    cpu_ceiling_ratio: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<BaselineFigures>,
}

/// One endpoint's open-loop figures (medians over rounds).
#[derive(Debug, Serialize)]
struct OpenLoopFigures {
    endpoint: String,
    connections: usize,
    offered_rps: f64,
    direct: OpenLoopPath,
    proxy: OpenLoopPath,
    added_p50_ms: f64,
    added_p99_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<OpenLoopPath>,
}

/// One path of an open-loop measurement (medians over rounds).
#[derive(Debug, Serialize)]
struct OpenLoopPath {
    achieved_rps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// What `target/bench/proxy.json` holds.
#[derive(Debug, Serialize)]
struct Report<'a> {
    closed_loop: &'a [EndpointFigures],
    open_loop: &'a [OpenLoopFigures],
}

/// CPU microseconds per answered request of each process.
#[derive(Debug, Default, Serialize)]
struct CpuPerRequest {
    direct_upstream: f64,
    direct_load: f64,
    proxied_upstream: f64,
    proxied_load: f64,
    proxy: f64,
    /// Of the proxy's, in the kernel (system time: the socket calls).
    proxy_system: f64,
}

/// The same through the `--baseline` binary's proxy.
#[derive(Debug, Serialize)]
struct BaselineFigures {
    proxy_rps: f64,
    throughput_ratio: f64,
    proxy_p50_ms: f64,
    added_p50_ms: f64,
    proxy_cpu_us: f64,
    /// Of it, in the kernel (system time: the socket calls).
    proxy_system_cpu_us: f64,
}

/// What one load run measured.
#[derive(Debug, Default)]
struct Sample {
    rps: f64,
    p50_ms: f64,
    upstream_cpu_us: f64,
    load_cpu_us: f64,
    proxy_cpu_us: f64,
    proxy_system_cpu_us: f64,
}

/// The proxy process, stopped on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
}

impl Proxy {
    fn target(&self) -> Target {
        Target {
            addr: self.addr,
            tls: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
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
    let upstream_pid = upstream.pid();
    let direct = Target {
        addr: upstream_addr,
        tls: None,
    };
    let auth = token_auth(&direct).await?;
    let proxy = start_proxy(env, &env.mock_binary, upstream_addr, "proxy").await?;
    let baseline = match &env.baseline_binary {
        Some(binary) => Some(start_proxy(env, binary, upstream_addr, "proxy-baseline").await?),
        None => None,
    };
    let rounds = if env.quick { 1 } else { 3 };
    let duration = Duration::from_secs(if env.quick { 3 } else { 6 });
    let mut figures = Vec::new();
    for &connections in CONNECTIONS {
        let shape = LoadShape {
            connections,
            duration,
            max_requests: None,
        };
        for endpoint in ENDPOINTS {
            let spec = RequestSpec {
                method: Method::GET,
                path: (*endpoint).to_owned(),
                body: Body::Empty,
            };
            let (mut direct_samples, mut proxy_samples, mut baseline_samples) =
                (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                direct_samples
                    .push(measure(&direct, upstream_pid, None, &auth, &spec, shape).await?);
                proxy_samples.push(
                    measure(
                        &proxy.target(),
                        upstream_pid,
                        Some(proxy.pid()),
                        &auth,
                        &spec,
                        shape,
                    )
                    .await?,
                );
                if let Some(baseline) = &baseline {
                    baseline_samples.push(
                        measure(
                            &baseline.target(),
                            upstream_pid,
                            Some(baseline.pid()),
                            &auth,
                            &spec,
                            shape,
                        )
                        .await?,
                    );
                }
            }
            let median = |samples: &[Sample], field: fn(&Sample) -> f64| {
                let values: Vec<f64> = samples.iter().map(field).collect();
                stats::median(&values).unwrap_or(f64::NAN)
            };
            let (d_rps, p_rps) = (
                median(&direct_samples, |s| s.rps),
                median(&proxy_samples, |s| s.rps),
            );
            let (d_p50, p_p50) = (
                median(&direct_samples, |s| s.p50_ms),
                median(&proxy_samples, |s| s.p50_ms),
            );
            let cpu = CpuPerRequest {
                direct_upstream: median(&direct_samples, |s| s.upstream_cpu_us),
                direct_load: median(&direct_samples, |s| s.load_cpu_us),
                proxied_upstream: median(&proxy_samples, |s| s.upstream_cpu_us),
                proxied_load: median(&proxy_samples, |s| s.load_cpu_us),
                proxy: median(&proxy_samples, |s| s.proxy_cpu_us),
                proxy_system: median(&proxy_samples, |s| s.proxy_system_cpu_us),
            };
            let cpu_ceiling_ratio = (cpu.direct_upstream + cpu.direct_load)
                / (cpu.proxied_upstream + cpu.proxied_load + cpu.proxy);
            let baseline = (!baseline_samples.is_empty()).then(|| {
                let rps = median(&baseline_samples, |s| s.rps);
                let p50 = median(&baseline_samples, |s| s.p50_ms);
                BaselineFigures {
                    proxy_rps: rps,
                    throughput_ratio: rps / d_rps,
                    proxy_p50_ms: p50,
                    added_p50_ms: p50 - d_p50,
                    proxy_cpu_us: median(&baseline_samples, |s| s.proxy_cpu_us),
                    proxy_system_cpu_us: median(&baseline_samples, |s| s.proxy_system_cpu_us),
                }
            });
            figures.push(EndpointFigures {
                endpoint: endpoint.trim_start_matches("/api2/json").to_owned(),
                connections,
                direct_rps: d_rps,
                proxy_rps: p_rps,
                throughput_ratio: p_rps / d_rps,
                direct_p50_ms: d_p50,
                proxy_p50_ms: p_p50,
                added_p50_ms: p_p50 - d_p50,
                cpu_us: cpu,
                cpu_ceiling_ratio,
                baseline,
            });
        }
    }
    let mut open_figures = Vec::new();
    for endpoint in ENDPOINTS {
        let name = endpoint.trim_start_matches("/api2/json");
        let Some(closed) = figures
            .iter()
            .find(|f| f.endpoint == name && f.connections == OPEN_CONNECTIONS)
        else {
            continue;
        };
        let rate = (closed.proxy_rps * OPEN_FRACTION).floor();
        let spec = RequestSpec {
            method: Method::GET,
            path: (*endpoint).to_owned(),
            body: Body::Empty,
        };
        let (mut direct_runs, mut proxy_runs, mut baseline_runs) =
            (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            direct_runs.push(open_run(&direct, &auth, &spec, rate, duration).await?);
            proxy_runs.push(open_run(&proxy.target(), &auth, &spec, rate, duration).await?);
            if let Some(baseline) = &baseline {
                baseline_runs
                    .push(open_run(&baseline.target(), &auth, &spec, rate, duration).await?);
            }
        }
        let (direct_path, proxy_path) = (open_median(&direct_runs), open_median(&proxy_runs));
        open_figures.push(OpenLoopFigures {
            endpoint: name.to_owned(),
            connections: OPEN_CONNECTIONS,
            offered_rps: rate,
            added_p50_ms: proxy_path.p50_ms - direct_path.p50_ms,
            added_p99_ms: proxy_path.p99_ms - direct_path.p99_ms,
            direct: direct_path,
            proxy: proxy_path,
            baseline: (!baseline_runs.is_empty()).then(|| open_median(&baseline_runs)),
        });
    }
    let unchecked = not_validated(&proxy.target()).await;
    drop(proxy);
    drop(baseline);
    upstream.stop();
    print_table(&figures);
    print_open_table(&open_figures);
    match unchecked {
        Ok((calls, not_validated)) => println!(
            "\nproxy: {calls} calls, {not_validated} replies not validated (the check queue was full)"
        ),
        Err(error) => println!("\nproxy: reading /_mock/discrepancies failed: {error:#}"),
    }
    let path = env.bench_dir.join("proxy.json");
    let report = Report {
        closed_loop: &figures,
        open_loop: &open_figures,
    };
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// One load run, with the CPU time each process spent on it.
async fn measure(
    target: &Target,
    upstream_pid: u32,
    proxy_pid: Option<u32>,
    auth: &Auth,
    spec: &RequestSpec,
    shape: LoadShape,
) -> anyhow::Result<Sample> {
    let own_pid = std::process::id();
    let before = (
        cpu_seconds(upstream_pid)?.total(),
        cpu_seconds(own_pid)?.total(),
        proxy_pid.map(cpu_seconds).transpose()?,
    );
    let summary = load::run(target, auth, spec, shape).await?;
    if summary.ok == 0 {
        bail!("{}: no 2xx answer ({:?})", spec.path, summary.first_failure);
    }
    let per_request = |spent: f64| spent * 1e6 / summary.ok as f64;
    let (proxy_cpu_us, proxy_system_cpu_us) = match (proxy_pid, before.2) {
        (Some(pid), Some(start)) => {
            let end = cpu_seconds(pid)?;
            (
                per_request(end.total() - start.total()),
                per_request(end.system - start.system),
            )
        }
        _ => (0.0, 0.0),
    };
    Ok(Sample {
        rps: summary.rps,
        p50_ms: summary.latency.map_or(f64::NAN, |l| l.p50_ms),
        upstream_cpu_us: per_request(cpu_seconds(upstream_pid)?.total() - before.0),
        load_cpu_us: per_request(cpu_seconds(own_pid)?.total() - before.1),
        proxy_cpu_us,
        proxy_system_cpu_us,
    })
}

/// One open-loop run at `rate` requests per second over [`OPEN_CONNECTIONS`] connections.
async fn open_run(
    target: &Target,
    auth: &Auth,
    spec: &RequestSpec,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<OpenLoopPath> {
    let summary = load::run_open(target, auth, spec, OPEN_CONNECTIONS, rate, duration).await?;
    let latency = summary.latency.with_context(|| {
        format!(
            "{}: no 2xx answer at {rate} req/s ({:?})",
            spec.path, summary.first_failure
        )
    })?;
    Ok(OpenLoopPath {
        achieved_rps: summary.rps,
        p50_ms: latency.p50_ms,
        p99_ms: latency.p99_ms,
    })
}

/// The medians over rounds of each figure.
fn open_median(runs: &[OpenLoopPath]) -> OpenLoopPath {
    let median = |field: fn(&OpenLoopPath) -> f64| {
        let values: Vec<f64> = runs.iter().map(field).collect();
        stats::median(&values).unwrap_or(f64::NAN)
    };
    OpenLoopPath {
        achieved_rps: median(|r| r.achieved_rps),
        p50_ms: median(|r| r.p50_ms),
        p99_ms: median(|r| r.p99_ms),
    }
}

/// CPU time of a process so far, seconds.
#[derive(Debug, Clone, Copy)]
struct CpuTime {
    user: f64,
    system: f64,
}

impl CpuTime {
    fn total(self) -> f64 {
        self.user + self.system
    }
}

/// User and system CPU time of a process so far (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32) -> anyhow::Result<CpuTime> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (user, system) = parse_cpu_ticks(&text).with_context(|| format!("parsing {path}"))?;
    Ok(CpuTime {
        user: user as f64 / TICKS_PER_SECOND,
        system: system as f64 / TICKS_PER_SECOND,
    })
}

/// `(utime, stime)` (fields 14 and 15) of a `/proc/<pid>/stat` line; the command name, field
/// 2, may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// `(calls, replies not validated)` of a proxy's discrepancy log.
async fn not_validated(proxy: &Target) -> anyhow::Result<(u64, u64)> {
    let headers = [(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {CONTROL_TOKEN}"))?,
    )];
    let (status, body) =
        load::once(proxy, Method::GET, "/_mock/discrepancies", &headers, None).await?;
    anyhow::ensure!(status == StatusCode::OK, "status {status}");
    let reply: serde_json::Value = serde_json::from_slice(&body)?;
    let totals = &reply["data"]["totals"];
    Ok((
        totals["calls"].as_u64().unwrap_or_default(),
        totals["replies_not_validated"].as_u64().unwrap_or_default(),
    ))
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

/// Starts `binary` in real mode in front of `upstream` and waits until it answers; its log
/// goes to `target/bench/<name>-server.log`.
async fn start_proxy(
    env: &BenchEnv,
    binary: &Path,
    upstream: SocketAddr,
    name: &str,
) -> anyhow::Result<Proxy> {
    let free = || -> anyhow::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
        listener.local_addr().context("reading the bound address")
    };
    let (http, https) = (free()?, free()?);
    let log_path = env.bench_dir.join(format!("{name}-server.log"));
    let log = File::create(&log_path)?;
    let child = Command::new(binary)
        .args(["--store", "memory"])
        .args(["--http-listen", &http.to_string()])
        .args(["--listen", &https.to_string()])
        .arg("--tls-cert")
        .arg(&env.cert_path)
        .arg("--tls-key")
        .arg(&env.key_path)
        .args(["--upstream", &format!("http://{upstream}")])
        .args(["--control-token", CONTROL_TOKEN])
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
        "| endpoint | conns | direct req/s | proxy req/s | proxy / direct | CPU ceiling | direct p50 ms | proxy p50 ms | added p50 ms | CPU µs/req upstream + load (direct) | CPU µs/req upstream + load + proxy | proxy CPU in the kernel µs/req |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in figures {
        let cpu = &f.cpu_us;
        println!(
            "| `{}` | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} | {:.0} + {:.0} | {:.0} + {:.0} + {:.0} | {:.0} |",
            f.endpoint,
            f.connections,
            f.direct_rps,
            f.proxy_rps,
            f.throughput_ratio,
            f.cpu_ceiling_ratio,
            f.direct_p50_ms,
            f.proxy_p50_ms,
            f.added_p50_ms,
            cpu.direct_upstream,
            cpu.direct_load,
            cpu.proxied_upstream,
            cpu.proxied_load,
            cpu.proxy,
            cpu.proxy_system
        );
    }
    if figures.iter().any(|f| f.baseline.is_some()) {
        println!("\nbaseline binary's proxy, same run:\n");
        println!(
            "| endpoint | conns | proxy req/s | proxy / direct | proxy p50 ms | added p50 ms | proxy CPU µs/req | of it in the kernel |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for f in figures {
            if let Some(b) = &f.baseline {
                println!(
                    "| `{}` | {} | {:.0} | {:.2} | {:.3} | {:.3} | {:.0} | {:.0} |",
                    f.endpoint,
                    f.connections,
                    b.proxy_rps,
                    b.throughput_ratio,
                    b.proxy_p50_ms,
                    b.added_p50_ms,
                    b.proxy_cpu_us,
                    b.proxy_system_cpu_us
                );
            }
        }
    }
}

fn print_open_table(figures: &[OpenLoopFigures]) {
    if figures.is_empty() {
        return;
    }
    println!(
        "\nopen loop: {OPEN_CONNECTIONS} connections at a fixed offered rate ({OPEN_FRACTION} of the proxied closed-loop throughput), latency from each request's due time:\n"
    );
    println!(
        "| endpoint | offered req/s | direct req/s | proxy req/s | direct p50 ms | proxy p50 ms | added p50 ms | direct p99 ms | proxy p99 ms | added p99 ms | baseline proxy req/s | baseline p50 ms | baseline added p50 ms | baseline p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in figures {
        let baseline = f.baseline.as_ref().map_or_else(
            || "| | | |".to_owned(),
            |b| {
                format!(
                    "{:.0} | {:.3} | {:.3} | {:.3} |",
                    b.achieved_rps,
                    b.p50_ms,
                    b.p50_ms - f.direct.p50_ms,
                    b.p99_ms
                )
            },
        );
        println!(
            "| `{}` | {:.0} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {baseline}",
            f.endpoint,
            f.offered_rps,
            f.direct.achieved_rps,
            f.proxy.achieved_rps,
            f.direct.p50_ms,
            f.proxy.p50_ms,
            f.added_p50_ms,
            f.direct.p99_ms,
            f.proxy.p99_ms,
            f.added_p99_ms,
        );
    }
}

/// Runs `bench proxy` from the command line; `baseline`: another `mock-server` binary whose
/// proxy is measured in the same run.
pub fn main(quick: bool, build: bool, baseline: Option<&Path>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()
        .context("starting the runtime")?
        .block_on(async {
            let mut env = setup::prepare(quick, false, build)?;
            if let Some(binary) = baseline {
                let binary = std::path::absolute(binary)?;
                anyhow::ensure!(
                    binary.exists(),
                    "baseline binary {} is missing",
                    binary.display()
                );
                env.baseline_binary = Some(binary);
            }
            run(&env).await
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_after_the_command_name() {
        let stat =
            "4242 (mock (server) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 311 57 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some((311, 57)));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
    }
}
