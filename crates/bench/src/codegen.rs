//! `bench codegen`: runs `cargo xtask-release bench codegen` and keeps its figure.
//!
//! The measurement itself lives in the xtask (it renders every tag in memory, in-process); this
//! only runs the release build of it and parses the summary line, so that `bench all` records
//! codegen next to the other benchmarks.

use std::process::Command;

use anyhow::{Context, bail};

use crate::results::{CodegenResults, RunInfo, now_utc};
use crate::setup::{BenchEnv, loadavg};

/// Runs the codegen benchmark.
pub fn run(env: &BenchEnv) -> anyhow::Result<CodegenResults> {
    let load_before = loadavg();
    let date = now_utc();
    let runs = if env.quick { "3" } else { "5" };
    eprintln!("codegen: cargo run --release -p xtask -- bench codegen --runs {runs}");
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "run",
            "--release",
            "--package",
            "xtask",
            "--",
            "bench",
            "codegen",
            "--runs",
            runs,
        ])
        .current_dir(&env.root)
        .output()
        .context("running the codegen benchmark")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "cargo xtask-release bench codegen failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("codegen"))
        .context("no summary line in the codegen benchmark's output")?
        .to_owned();
    Ok(CodegenResults {
        run: RunInfo {
            date,
            quick: env.quick,
            load_before,
            load_after: loadavg(),
        },
        median_s: parse_median(&summary),
        summary,
    })
}

/// The seconds after `median` in the xtask's summary line.
pub fn parse_median(summary: &str) -> Option<f64> {
    let rest = summary.split_once("median ")?.1;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_from_summary() {
        let line =
            "codegen (3 tags, render + check): median 1.234 s over 5 runs (min 1.1 s, max 1.5 s)";
        assert_eq!(parse_median(line), Some(1.234));
        assert_eq!(parse_median("codegen: nothing"), None);
    }
}
