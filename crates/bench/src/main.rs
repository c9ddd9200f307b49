//! `bench`: our mock server and SDK measured side by side with their Python peers and with a bare
//! axum handler, in one command, with a results file, a table and charts.
//!
//! Run with (usually through the xtask, which builds this in release mode):
//!
//! ```text
//! cargo xtask bench all            # everything, about 10 minutes; writes target/bench/results.json
//! cargo xtask bench mock --quick   # one benchmark, short runs (3 s per load run)
//! cargo run --release -p bench -- sdk
//! cargo xtask bench cli           # one-shot pvectl calls beside the Python CLIs (cli_bench)
//! cargo run --release -p bench -- startup --baseline OLD/mock-server   # start-up alone
//! cargo xtask bench memory --baseline OLD/mock-server   # RSS per stored guest (memory_bench)
//! cargo run --release -p bench -- mock --creates --baseline OLD/mock-server   # durable creates alone
//! ```
//!
//! Layout:
//! - `setup`: paths, the release mock binary, the peers' virtualenv, the TLS certificate, the
//!   machine description.
//! - `systems`: starting each system under test as a process; start-up time and RSS.
//! - `load`: the load generator (keep-alive HTTP/1.1 over TCP or TLS, wrk's semantics).
//! - `stats`: percentiles and medians.
//! - `mock_bench`, `scale`, `sdk`, `codegen`: the four benchmarks.
//! - `cli_bench`: one-shot `pvectl` calls beside proxmox-sdk's CLI and proxmoxer (`bench cli`,
//!   not part of `all`; prints its own table).
//! - `clients`: the names of the SDK benchmark's clients and scenarios, shared by `sdk`, `results`
//!   and `targets`.
//! - `bare`: the bare axum handler (the hidden `serve-bare` command).
//! - `results`, `targets`, `charts`: the results file, the table, the target checks, the PNGs.
//! - `startup_bench`: start-up alone (`bench startup`), more starts, no load runs.
//! - `memory_bench`: RSS per stored guest (`bench memory`), creates through the API in steps.
//! - `check`: the regression guard of `mock --quick --check` (ratios to bare axum against the
//!   last full run's, `docs/perf/mock-ratios.json`).

mod bare;
mod charts;
mod check;
mod cli_bench;
mod clients;
mod codegen;
mod http1;
mod load;
mod memory_bench;
mod mock_bench;
mod proxy_bench;
mod results;
mod scale;
mod sdk;
mod setup;
mod startup_bench;
mod stats;
mod systems;
mod targets;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::results::Results;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "Benchmarks of the mock server and SDK against their peers (see docs/performance.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mock servers: throughput, latency, start-up and memory; ours, fakepve, proxmox-sdk's
    /// mock and a bare axum handler.
    Mock(RunArgs),
    /// Create and /cluster/resources cost at 100, 1,000 and 10,000 guests; ours and fakepve.
    Scale(RunArgs),
    /// Clients against our mock: our SDK (typed, dynamic), raw reqwest, proxmoxer, proxmox-sdk.
    Sdk(RunArgs),
    /// Codegen wall time (runs `cargo xtask-release bench codegen`).
    Codegen(RunArgs),
    /// All of the above.
    All(RunArgs),
    /// One-shot `pvectl get /version`, `usage` and completion beside proxmox-sdk's CLI and a
    /// proxmoxer script (median of 10, process start to exit).
    Cli(RunArgs),
    /// Real mode's cost: our mock directly and through a second mock started with
    /// `--upstream` (p50 added latency and throughput ratio at 50 connections).
    Proxy(RunArgs),
    /// Start-up to the first 200 alone (the first part of `mock`, with more starts): ours, the
    /// baseline binary if given, bare axum and fakepve taking turns; prints medians and ratios.
    Startup(StartupArgs),
    /// RSS per stored guest: ours (and the baseline binary if given, taking turns) with
    /// `--store sqlite`, VMs created through the API in steps (10,000 and 50,000; `--quick`:
    /// 1,000 and 5,000), RSS after each step and after the guest lists.
    Memory(MemoryArgs),
    /// Serve the bare axum handler (used by `mock`).
    #[command(hide = true)]
    ServeBare(bare::BareArgs),
    /// Load one plain-HTTP GET endpoint with the load generator (to compare it with wrk).
    #[command(hide = true)]
    Load(LoadArgs),
}

/// Options of the hidden `load` command.
#[derive(Args)]
struct LoadArgs {
    /// Address, e.g. 127.0.0.1:8005.
    addr: std::net::SocketAddr,
    /// Path, e.g. /api2/json/version.
    path: String,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

/// Options of `startup`.
#[derive(Args)]
struct StartupArgs {
    /// Starts per system.
    #[arg(long, default_value_t = 11)]
    starts: usize,
    /// Another `mock-server` binary started in turn with ours.
    #[arg(long, value_name = "PATH", env = "BENCH_BASELINE_MOCK")]
    baseline: Option<PathBuf>,
    /// Leave fakepve out (no virtualenv needed).
    #[arg(long)]
    no_python: bool,
    /// Do not run `cargo build --release -p mock-server` first.
    #[arg(long)]
    no_build: bool,
}

/// Options of `memory`.
#[derive(Args)]
struct MemoryArgs {
    /// Smaller counts (1,000 and 5,000) and one round.
    #[arg(long)]
    quick: bool,
    /// Rounds (each a fresh process per system); default 3, 1 with `--quick`.
    #[arg(long)]
    rounds: Option<usize>,
    /// Guest counts to read RSS at, rising (default 10000,50000).
    #[arg(long, value_delimiter = ',')]
    counts: Vec<usize>,
    /// Another `mock-server` binary measured in turn with ours.
    #[arg(long, value_name = "PATH", env = "BENCH_BASELINE_MOCK")]
    baseline: Option<PathBuf>,
    /// Accepted for the xtask's common options; `memory` has no check.
    #[arg(long, hide = true)]
    check: bool,
    /// Do not run `cargo build --release -p mock-server` first.
    #[arg(long)]
    no_build: bool,
}

/// Options shared by every benchmark.
#[derive(Args, Clone)]
struct RunArgs {
    /// Short runs for iteration (3 s load runs, fewer repetitions, smaller scale points).
    #[arg(long)]
    quick: bool,
    /// Another `mock-server` binary measured beside ours in the same run (e.g. the build of the
    /// commit before a change); `mock` shows it as "ours, baseline" with a ratio column.
    #[arg(long, value_name = "PATH", env = "BENCH_BASELINE_MOCK")]
    baseline: Option<PathBuf>,
    /// `mock` only: the regression guard. Measures ours and the bare handler alone (GETs, no
    /// creates, no Python peers) and fails when a ratio to bare axum falls more than the
    /// tolerance below the last full run's (`docs/perf/mock-ratios.json`); results go to
    /// `target/bench/check.json`.
    #[arg(long)]
    check: bool,
    /// `mock` only: durable creates alone, for same-run pairs. Ours and the baseline binary
    /// (if given) take turns as in the full run (50 connections, fresh SQLite state per run,
    /// medians of the rounds); no start-up, GETs or Python peers. Results go to
    /// `target/bench/creates.json`; the reference of `--check` is left as it is.
    #[arg(long, conflicts_with = "check")]
    creates: bool,
    /// Do not run `cargo build --release -p mock-server` first.
    #[arg(long)]
    no_build: bool,
    /// Results file (default: target/bench/results.json).
    #[arg(long)]
    results: Option<PathBuf>,
    /// Directory of the PNG charts (default: docs/perf).
    #[arg(long)]
    charts: Option<PathBuf>,
}

/// Which benchmarks a command runs.
#[derive(Clone, Copy, Default)]
struct Selection {
    mock: bool,
    scale: bool,
    sdk: bool,
    codegen: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (selection, args) = match cli.command {
        Command::ServeBare(args) => {
            return tokio::runtime::Runtime::new()
                .context("starting the runtime")?
                .block_on(bare::serve(args));
        }
        Command::Load(args) => {
            return tokio::runtime::Runtime::new()
                .context("starting the runtime")?
                .block_on(load_once(args));
        }
        Command::Cli(args) => {
            return tokio::runtime::Runtime::new()
                .context("starting the runtime")?
                .block_on(async {
                    let env = setup::prepare(args.quick, true, !args.no_build)?;
                    cli_bench::run(&env, !args.no_build).await
                });
        }
        Command::Startup(args) => {
            return tokio::runtime::Runtime::new()
                .context("starting the runtime")?
                .block_on(async {
                    let mut env = setup::prepare(true, !args.no_python, !args.no_build)?;
                    env.set_baseline(args.baseline.as_deref())?;
                    startup_bench::run(&env, args.starts.max(1), !args.no_python).await
                });
        }
        Command::Memory(args) => {
            anyhow::ensure!(!args.check, "`bench memory` has no --check");
            return tokio::runtime::Runtime::new()
                .context("starting the runtime")?
                .block_on(async {
                    let mut env = setup::prepare(args.quick, false, !args.no_build)?;
                    env.set_baseline(args.baseline.as_deref())?;
                    let counts = if !args.counts.is_empty() {
                        args.counts.clone()
                    } else if args.quick {
                        memory_bench::QUICK_COUNTS.to_vec()
                    } else {
                        memory_bench::COUNTS.to_vec()
                    };
                    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
                    memory_bench::run(&env, &counts, rounds.max(1)).await
                });
        }
        Command::Proxy(args) => {
            return proxy_bench::main(args.quick, !args.no_build, args.baseline.as_deref());
        }
        Command::Mock(args) => (
            Selection {
                mock: true,
                ..Selection::default()
            },
            args,
        ),
        Command::Scale(args) => (
            Selection {
                scale: true,
                ..Selection::default()
            },
            args,
        ),
        Command::Sdk(args) => (
            Selection {
                sdk: true,
                ..Selection::default()
            },
            args,
        ),
        Command::Codegen(args) => (
            Selection {
                codegen: true,
                ..Selection::default()
            },
            args,
        ),
        Command::All(args) => (
            Selection {
                mock: true,
                scale: true,
                sdk: true,
                codegen: true,
            },
            args,
        ),
    };
    tokio::runtime::Runtime::new()
        .context("starting the runtime")?
        .block_on(run(selection, args))
}

async fn load_once(args: LoadArgs) -> anyhow::Result<()> {
    let target = load::Target {
        addr: args.addr,
        tls: None,
    };
    let spec = load::RequestSpec {
        method: http::Method::GET,
        path: args.path,
        body: load::Body::Empty,
    };
    let shape = load::LoadShape {
        connections: args.connections,
        duration: std::time::Duration::from_secs(args.duration),
        max_requests: None,
    };
    let summary = load::run(&target, &load::Auth::default(), &spec, shape).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

async fn run(selection: Selection, args: RunArgs) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("note: debug build of the bench; use `cargo run --release -p bench` for figures");
    }
    let check = args.check && selection.mock;
    anyhow::ensure!(
        args.check == check && !(check && (selection.scale || selection.sdk || selection.codegen)),
        "--check applies to `bench mock` only"
    );
    let creates = args.creates && selection.mock;
    anyhow::ensure!(
        args.creates == creates
            && !(creates && (selection.scale || selection.sdk || selection.codegen)),
        "--creates applies to `bench mock` only"
    );
    let need_python = (selection.mock && !check && !creates) || selection.scale || selection.sdk;
    let mut env = setup::prepare(args.quick, need_python, !args.no_build)?;
    env.check = check;
    env.creates_only = creates;
    env.set_baseline(args.baseline.as_deref())?;
    let results_path = args.results.clone().unwrap_or_else(|| {
        env.bench_dir.join(if check {
            "check.json"
        } else if creates {
            "creates.json"
        } else {
            "results.json"
        })
    });
    let charts_dir = args
        .charts
        .clone()
        .unwrap_or_else(|| env.root.join("docs").join("perf"));
    let mut results = Results::load_or_default(&results_path);
    let mut machine = setup::machine(need_python.then_some(env.python.as_path()));
    if selection.mock {
        results.mock = Some(mock_bench::run(&env).await?);
    }
    if selection.scale {
        results.scale = Some(scale::run(&env).await?);
    }
    if selection.sdk {
        results.sdk = Some(sdk::run(&env).await?);
    }
    if selection.codegen {
        results.codegen = Some(codegen::run(&env)?);
    }
    machine.load_after = setup::loadavg();
    if machine.python_packages.is_empty() {
        machine.python_packages = std::mem::take(&mut results.machine.python_packages);
    }
    results.machine = machine;
    results.targets = targets::check(&results);
    results.save(&results_path)?;
    print!("{}", results.render_tables());
    println!("\nresults: {}", results_path.display());

    if results.mock.is_some() || results.scale.is_some() {
        charts::register_font()?;
        std::fs::create_dir_all(&charts_dir)
            .with_context(|| format!("creating {}", charts_dir.display()))?;
    }
    if let Some(mock) = &results.mock
        && !check
        && !creates
    {
        let path = charts::throughput(mock, &charts_dir)?;
        println!("chart: {}", path.display());
    }
    if let Some(mock) = &results.mock
        && selection.mock
        && !check
        && !creates
        && !args.quick
    {
        let path = check::reference_path(&env.root);
        check::save_reference(&path, mock)?;
        println!("reference ratios for `--quick --check`: {}", path.display());
    }
    if check && let Some(mock) = &results.mock {
        let reference = check::load_reference(&check::reference_path(&env.root))?;
        let (report, ok) = check::compare(&reference, mock);
        print!("{report}");
        anyhow::ensure!(
            ok,
            "a ratio to bare axum fell more than {:.0}% below the last full run's",
            check::TOLERANCE * 100.0
        );
    }
    if let Some(scale) = &results.scale {
        let path = charts::scale(scale, &charts_dir)?;
        println!("chart: {}", path.display());
    }
    Ok(())
}
