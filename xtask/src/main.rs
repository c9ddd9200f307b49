//! `cargo xtask`: the project's developer commands.
//!
//! Run with:
//!
//! ```text
//! cargo xtask codegen           # regenerate generated/ and crates/shared-types/src/generated/
//! cargo xtask codegen --check   # fail when anything generated is stale (CI)
//! cargo xtask bench codegen     # median wall time of a full codegen run (use --release)
//! ```
//!
//! Layout:
//! - `codegen`: schema -> OpenAPI, route metadata, model index, Rust models.

mod codegen;

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
    /// Benchmarks (see docs/performance.md).
    Bench {
        /// What to measure.
        #[command(subcommand)]
        target: BenchTarget,
    },
}

#[derive(Subcommand)]
enum BenchTarget {
    /// Wall time of rendering and checking every artifact of every tag (warm file cache).
    Codegen {
        /// Number of measured runs (after one warm-up run).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Codegen { check } => codegen::run(&codegen::workspace_root(), check),
        Command::Bench {
            target: BenchTarget::Codegen { runs },
        } => bench_codegen(runs),
    }
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
