//! `cargo xtask`: the project's developer commands.
//!
//! Run with:
//!
//! ```text
//! cargo xtask codegen           # regenerate generated/ and crates/shared-types/src/generated/
//! cargo xtask codegen --check   # fail when anything generated is stale (CI)
//! cargo xtask schema fetch --out /tmp/apidata.js          # Proxmox's published apidata.js
//! cargo xtask schema add --tag 9.3 --from /tmp/apidata.js --latest   # pin it, regenerate
//! cargo xtask bench codegen     # median wall time of a full codegen run (use --release)
//! cargo xtask bench mock        # mock servers side by side (runs the `bench` crate, release)
//! cargo xtask bench mock --quick --check  # the pre-merge regression guard (ratios to bare axum)
//! cargo xtask bench all --quick # every benchmark, short runs; see docs/performance.md
//! cargo xtask bench cli         # one-shot pvectl calls beside the Python CLIs
//! cargo xtask bench proxy       # real mode in front of our mock vs direct
//! cargo xtask bench memory      # RSS per stored guest (10,000 and 50,000 VMs created)
//! ```
//!
//! Layout:
//! - `codegen`: schema -> OpenAPI, route metadata, model index, Rust models.
//! - `schema`: pinning a new schema (`add`) and downloading Proxmox's (`fetch`, through curl).
//! - `bench codegen` is measured here, in-process; `bench mock|scale|sdk|cli|proxy|memory|all` run
//!   `cargo run --release -p bench -- ...`, so the heavy benchmark dependencies (plotters, the
//!   load generator, the SDK) stay out of the xtask.

mod codegen;
mod schema;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    about = "Developer commands of the proxmox-sdk workspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Regenerate every artifact from schemas/pve (or check that they are fresh).
    Codegen {
        /// Compare with the files on disk instead of writing; fail when any is stale.
        #[arg(long)]
        check: bool,
    },
    /// Pin a new Proxmox VE schema (see schemas/README.md).
    Schema {
        /// What to do.
        #[command(subcommand)]
        action: SchemaAction,
    },
    /// Benchmarks (see docs/performance.md).
    Bench {
        /// What to measure.
        #[command(subcommand)]
        target: BenchTarget,
    },
}

#[derive(Subcommand)]
enum SchemaAction {
    /// Copy an apidata.js or API-viewer capture to schemas/pve/<tag>/, hash and count it, add
    /// its index entry and regenerate.
    Add {
        /// The new tag, MAJOR.MINOR (e.g. 9.3).
        #[arg(long)]
        tag: String,
        /// The apidata.js or raw_capture.json to pin (the format is recognised).
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
        /// The release it describes (default: <tag>.0).
        #[arg(long)]
        release: Option<String>,
        /// For a capture: the tag whose proxyto etc. are restored (default: the current latest).
        #[arg(long)]
        restore_from: Option<String>,
        /// Where the file came from (URL, repository and commit), recorded in index.json.
        #[arg(long)]
        origin: Option<String>,
        /// Make the new tag `latest`.
        #[arg(long)]
        latest: bool,
        /// Only pin and index; do not run codegen.
        #[arg(long)]
        no_codegen: bool,
    },
    /// Download Proxmox's published apidata.js (curl), check it, print its SHA-256, counts and
    /// the pinned tag with the same bytes (if any) as key=value lines.
    Fetch {
        /// The URL (default: Proxmox's published API viewer data).
        #[arg(long, default_value = schema::PUBLISHED_APIDATA)]
        url: String,
        /// Where to write the file.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchTarget {
    /// Wall time of rendering and checking every artifact of every tag (warm file cache).
    Codegen {
        /// Number of measured runs (after one warm-up run); default 5, 3 with --quick.
        #[arg(long)]
        runs: Option<usize>,
        /// Fewer runs.
        #[arg(long)]
        quick: bool,
    },
    /// Mock servers: ours, fakepve, proxmox-sdk's mock and bare axum (crates/bench).
    Mock(HarnessArgs),
    /// Create and /cluster/resources cost at 100, 1,000 and 10,000 guests (crates/bench).
    Scale(HarnessArgs),
    /// SDK clients against our mock: ours, raw reqwest, proxmoxer, proxmox-sdk (crates/bench).
    Sdk(HarnessArgs),
    /// Everything, codegen included (crates/bench).
    All(HarnessArgs),
    /// One-shot `pvectl get /version` beside proxmox-sdk's CLI and proxmoxer (crates/bench).
    Cli(HarnessArgs),
    /// Real mode (`--upstream`) in front of our mock vs our mock directly (crates/bench).
    Proxy(HarnessArgs),
    /// RSS per stored guest after 10,000 and 50,000 creates (crates/bench).
    Memory(HarnessArgs),
}

/// Options passed on to the `bench` binary.
#[derive(clap::Args)]
struct HarnessArgs {
    /// Short runs for iteration (about a minute per benchmark).
    #[arg(long)]
    quick: bool,
    /// Another `mock-server` binary measured in the same run, beside ours (before/after
    /// comparisons of a change: build the old commit and pass its binary).
    #[arg(long, value_name = "PATH")]
    baseline: Option<std::path::PathBuf>,
    /// `bench mock` only: the regression guard. Compares each GET's ratio to bare axum with the
    /// last full run's (`docs/perf/mock-ratios.json`) and fails when one falls too far below.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Codegen { check } => codegen::run(&codegen::workspace_root(), check),
        Command::Schema { action } => match action {
            SchemaAction::Add {
                tag,
                from,
                release,
                restore_from,
                origin,
                latest,
                no_codegen,
            } => schema::add(
                &codegen::workspace_root(),
                &schema::AddOptions {
                    tag,
                    from,
                    release,
                    restore_from,
                    origin,
                    latest,
                    regenerate: !no_codegen,
                },
            ),
            SchemaAction::Fetch { url, out } => {
                schema::fetch(&codegen::workspace_root(), &url, &out)
            }
        },
        Command::Bench { target } => match target {
            BenchTarget::Codegen { runs, quick } => {
                bench_codegen(runs.unwrap_or(if quick { 3 } else { 5 }))
            }
            BenchTarget::Mock(args) => bench_harness("mock", &args),
            BenchTarget::Scale(args) => bench_harness("scale", &args),
            BenchTarget::Sdk(args) => bench_harness("sdk", &args),
            BenchTarget::All(args) => bench_harness("all", &args),
            BenchTarget::Cli(args) => bench_harness("cli", &args),
            BenchTarget::Proxy(args) => bench_harness("proxy", &args),
            BenchTarget::Memory(args) => bench_harness("memory", &args),
        },
    }
}

/// `cargo xtask bench mock|scale|sdk|cli|proxy|memory|all`: runs `cargo run --release -p bench -- <what>`.
fn bench_harness(what: &str, args: &HarnessArgs) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .args(["run", "--release", "--package", "bench", "--", what])
        .current_dir(codegen::workspace_root());
    if args.quick {
        command.arg("--quick");
    }
    if let Some(baseline) = &args.baseline {
        command.arg("--baseline").arg(baseline);
    }
    if args.check {
        command.arg("--check");
    }
    let status = command
        .status()
        .with_context(|| format!("running cargo run --release -p bench -- {what}"))?;
    anyhow::ensure!(status.success(), "bench {what} failed ({status})");
    Ok(())
}

/// `cargo xtask bench codegen`: median wall time of a full `codegen --check` (render every tag in
/// memory and compare with the files on disk), after one warm-up run.
fn bench_codegen(runs: usize) -> anyhow::Result<()> {
    let root = codegen::workspace_root();
    if cfg!(debug_assertions) {
        eprintln!(
            "note: debug build; figures in docs/performance.md use `cargo xtask-release bench codegen`"
        );
    }
    codegen::run(&root, true)?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let started = std::time::Instant::now();
        codegen::run(&root, true)?;
        times.push(started.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "codegen (3 tags, render + check): median {:.3} s over {} runs (min {:.3} s, max {:.3} s)",
        median.as_secs_f64(),
        times.len(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    );
    Ok(())
}
