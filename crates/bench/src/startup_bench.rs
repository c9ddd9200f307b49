//! `bench startup`: start-up alone, to the first 200 answer (the first part of `bench mock`),
//! with more starts and without the load runs, so a change to start-up can be measured in a
//! minute: ours, the baseline binary when given, the bare axum handler and (unless
//! `--no-python`) fakepve take turns (in an order rotated each round), each started with
//! fresh state, and the median, minimum and maximum of each are printed with the ratios to
//! ours. Nothing is written to the results file.

use std::collections::BTreeMap;

use anyhow::Context;

use crate::mock_bench::keep_version_body;
use crate::setup::{BenchEnv, loadavg};
use crate::stats::median;
use crate::systems::{self, Seed, SystemKind};

/// Runs `starts` rounds and prints the table.
pub async fn run(env: &BenchEnv, starts: usize, fakepve: bool) -> anyhow::Result<()> {
    let mut turns = vec![SystemKind::Ours];
    if env.baseline_binary.is_some() {
        turns.push(SystemKind::Baseline);
    }
    turns.push(SystemKind::BareAxum);
    if fakepve {
        turns.push(SystemKind::Fakepve);
    }
    let load_before = loadavg();
    let mut times: BTreeMap<SystemKind, Vec<f64>> = BTreeMap::new();
    for round in 0..starts {
        for kind in systems::start_order(&turns, round) {
            let running = systems::start(env, kind, Seed::Default)
                .await
                .with_context(|| format!("starting {}", kind.label()))?;
            times
                .entry(kind)
                .or_default()
                .push(running.startup.as_secs_f64() * 1000.0);
            if kind == SystemKind::Ours && round == 0 {
                // The bare handler answers with our `/version` body.
                let auth = running.login(env).await?;
                keep_version_body(env, &running, &auth).await?;
            }
            running.stop();
        }
    }
    let load_after = loadavg();
    let ours = times.get(&SystemKind::Ours).and_then(|t| median(t));
    println!(
        "start-up to the first 200, {starts} starts each, taking turns\n/proc/loadavg before: {load_before}\n/proc/loadavg after:  {load_after}"
    );
    println!("| system | median ms | min ms | max ms | it / ours |\n|---|---:|---:|---:|---:|");
    for kind in &turns {
        let Some(values) = times.get(kind) else {
            continue;
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        let mid = median(values).unwrap_or(f64::NAN);
        let ratio = ours.map_or(String::new(), |ours| format!("{:.2}", mid / ours));
        println!(
            "| {} | {mid:.1} | {min:.1} | {max:.1} | {ratio} |",
            kind.label()
        );
    }
    Ok(())
}
