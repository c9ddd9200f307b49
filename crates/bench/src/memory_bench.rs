//! `bench memory`: resident memory per stored guest (issue 15's "RSS per stored guest").
//!
//! Each round starts ours (and the baseline binary, when given, taking turns) the way every
//! benchmark does: `--store sqlite` in a fresh temporary directory, the default durable mode.
//! After the login it reads `VmRSS`, then creates VMs through the API (`POST /nodes/pve1/qemu`
//! with the create body of `bench mock`, [`load::create_form`], over plain HTTP on
//! [`CONNECTIONS`] keep-alive connections) in steps up to each count of the run, waits after each
//! step until the node has no running task, and reads `VmRSS` again. The figure per guest at a
//! count N is `(RSS after N creates - RSS after start) / N`; it includes the fixed costs that
//! creates fill first (the bounded task history, SQLite's page cache), so the slope between two
//! counts of the same process, `(RSS(N2) - RSS(N1)) / (N2 - N1)`, is printed too: that is what
//! one more guest costs. Last, one `GET /cluster/resources` and one `GET /nodes/pve1/qemu`
//! (which keep each guest's finished row as text) and `VmRSS` once more, so the kept rows show
//! as their own line. The guest count of `/cluster/resources` is checked against the creates.
//!
//! RSS moves with the allocator's reuse of freed memory, so every figure is the median over the
//! rounds, and the ratio ours / baseline is taken within each round (the same machine state).
//! Nothing is written to the results file; the table is printed for docs/performance.md.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use anyhow::Context;
use http::Method;
use serde_json::Value;

use crate::load::{self, Auth, Body, LoadShape, RequestSpec, Target};
use crate::setup::{BenchEnv, loadavg};
use crate::stats::median;
use crate::systems::{self, Seed, SystemKind};

/// Keep-alive connections the creates are sent on.
pub const CONNECTIONS: usize = 8;

/// Guest counts of a full run (RSS is read at each, in one process).
pub const COUNTS: &[usize] = &[10_000, 50_000];

/// Guest counts of a `--quick` run.
pub const QUICK_COUNTS: &[usize] = &[1_000, 5_000];

/// The first VM ID the creates use (the default seed's guests are below it).
const FIRST_VMID: u32 = 100_000;

/// How long the tasks of one step may take to finish after its last create answered.
const TASK_WAIT: Duration = Duration::from_secs(120);

/// What one process measured.
#[derive(Debug, Default)]
struct Sample {
    /// `VmRSS` after the login, KiB.
    start_kib: u64,
    /// `VmRSS` after each count's creates and their tasks, KiB.
    after_kib: BTreeMap<usize, u64>,
    /// `VmRSS` after the two guest lists at the last count, KiB.
    after_lists_kib: u64,
    /// Creates per second of each step.
    creates_per_s: Vec<f64>,
}

/// Runs `rounds` rounds up to the counts and prints the table.
pub async fn run(env: &BenchEnv, counts: &[usize], rounds: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        !counts.is_empty() && counts.windows(2).all(|pair| pair[0] < pair[1]),
        "the guest counts must rise"
    );
    let mut turns = vec![SystemKind::Ours];
    if env.baseline_binary.is_some() {
        turns.push(SystemKind::Baseline);
    }
    let load_before = loadavg();
    let mut samples: BTreeMap<SystemKind, Vec<Sample>> = BTreeMap::new();
    for round in 0..rounds {
        for &kind in &turns {
            eprintln!("memory: round {} of {rounds}, {}", round + 1, kind.label());
            let sample = measure(env, kind, counts)
                .await
                .with_context(|| format!("measuring {}", kind.label()))?;
            samples.entry(kind).or_default().push(sample);
        }
    }
    print!(
        "{}",
        render(counts, &turns, &samples, &load_before, &loadavg())
    );
    Ok(())
}

/// One process: start, creates in steps, lists.
async fn measure(env: &BenchEnv, kind: SystemKind, counts: &[usize]) -> anyhow::Result<Sample> {
    let running = systems::start(env, kind, Seed::Default).await?;
    let auth = running.login(env).await?;
    let target = running
        .target(env, false)
        .context("ours serves plain HTTP")?;
    let mut sample = Sample {
        start_kib: running.rss_kib()?,
        ..Sample::default()
    };
    let next_vmid = Arc::new(AtomicU32::new(FIRST_VMID));
    let create = RequestSpec {
        method: Method::POST,
        path: "/api2/json/nodes/pve1/qemu".to_owned(),
        body: Body::CreateVm {
            next_vmid: Arc::clone(&next_vmid),
        },
    };
    let mut created = 0;
    for &count in counts {
        let step = (count - created) as u64;
        let summary = load::run(
            &target,
            &auth,
            &create,
            LoadShape {
                connections: CONNECTIONS,
                // Far above any step's time; a step that hits it fails the count check below.
                duration: Duration::from_secs(600),
                max_requests: Some(step),
            },
        )
        .await?;
        anyhow::ensure!(
            summary.ok == step,
            "{} of {step} creates answered 2xx ({:?})",
            summary.ok,
            summary.first_failure
        );
        sample.creates_per_s.push(summary.rps);
        created = count;
        wait_for_tasks(&target, &auth).await?;
        sample.after_kib.insert(count, running.rss_kib()?);
    }
    let guests = count_vms(&target, &auth).await?;
    anyhow::ensure!(
        guests >= created,
        "/cluster/resources lists {guests} VMs after {created} creates"
    );
    list(&target, &auth, "/api2/json/nodes/pve1/qemu").await?;
    sample.after_lists_kib = running.rss_kib()?;
    running.stop();
    Ok(sample)
}

/// Waits until `pve1` has no running task (the creates' tasks have written their configs).
async fn wait_for_tasks(target: &Target, auth: &Auth) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let reply = list(target, auth, "/api2/json/nodes/pve1/tasks?source=active").await?;
        if reply["data"].as_array().is_some_and(Vec::is_empty) {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < TASK_WAIT,
            "tasks still running after {TASK_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The VMs `/cluster/resources` lists (which also keeps each guest's row).
async fn count_vms(target: &Target, auth: &Auth) -> anyhow::Result<usize> {
    let reply = list(target, auth, "/api2/json/cluster/resources").await?;
    let entries = reply["data"]
        .as_array()
        .context("/cluster/resources answered no list")?;
    Ok(entries
        .iter()
        .filter(|entry| entry["type"] == "qemu")
        .count())
}

/// One GET, parsed.
async fn list(target: &Target, auth: &Auth, path: &str) -> anyhow::Result<Value> {
    let (status, body) = load::once(target, Method::GET, path, &auth.headers, None).await?;
    anyhow::ensure!(status.is_success(), "GET {path} answered {status}");
    serde_json::from_slice(&body).with_context(|| format!("parsing the answer of GET {path}"))
}

/// The table: per system, medians over the rounds; then the per-round ratios.
fn render(
    counts: &[usize],
    turns: &[SystemKind],
    samples: &BTreeMap<SystemKind, Vec<Sample>>,
    load_before: &str,
    load_after: &str,
) -> String {
    let rounds = samples.values().map(Vec::len).max().unwrap_or(0);
    let mut out = format!(
        "RSS per stored guest: `--store sqlite`, creates of `{}` on {CONNECTIONS} connections, \
         {rounds} round(s), medians\n/proc/loadavg before: {load_before}\n/proc/loadavg after:  {load_after}\n\n",
        load::create_form(FIRST_VMID)
    );
    out.push_str(
        "| system | guests | RSS start | RSS after | per guest | slope from the previous count | after the two lists | creates/s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for kind in turns {
        let Some(runs) = samples.get(kind) else {
            continue;
        };
        let med = |pick: &dyn Fn(&Sample) -> Option<f64>| -> Option<f64> {
            let values: Vec<f64> = runs.iter().filter_map(pick).collect();
            median(&values)
        };
        let last = counts.last().copied().unwrap_or(0);
        for (index, &count) in counts.iter().enumerate() {
            let start = med(&|s| Some(s.start_kib as f64));
            let after = med(&|s| s.after_kib.get(&count).map(|&v| v as f64));
            let per_guest = med(&|s| per_guest_kib(s, count));
            let slope = index
                .checked_sub(1)
                .and_then(|previous| counts.get(previous))
                .and_then(|&previous| med(&|s| slope_kib(s, previous, count)));
            let lists = (count == last).then(|| med(&|s| Some(s.after_lists_kib as f64)));
            let rate = med(&|s| s.creates_per_s.get(index).copied());
            out.push_str(&format!(
                "| {} | {count} | {} | {} | {} | {} | {} | {} |\n",
                kind.label(),
                mib(start),
                mib(after),
                kib(per_guest),
                kib(slope),
                lists.map_or(String::new(), mib),
                rate.map_or(String::new(), |r| format!("{r:.0}")),
            ));
        }
    }
    if turns.contains(&SystemKind::Baseline) {
        out.push_str("\nper guest, ours / baseline in each round:\n");
        let ours = samples.get(&SystemKind::Ours);
        let base = samples.get(&SystemKind::Baseline);
        if let (Some(ours), Some(base)) = (ours, base) {
            for &count in counts {
                let ratios: Vec<String> = ours
                    .iter()
                    .zip(base)
                    .filter_map(|(o, b)| Some(per_guest_kib(o, count)? / per_guest_kib(b, count)?))
                    .map(|ratio| format!("{ratio:.2}"))
                    .collect();
                out.push_str(&format!("- {count} guests: {}\n", ratios.join(", ")));
            }
        }
    }
    out
}

/// `(RSS after count - RSS at start) / count`, KiB.
fn per_guest_kib(sample: &Sample, count: usize) -> Option<f64> {
    let after = *sample.after_kib.get(&count)?;
    Some((after as f64 - sample.start_kib as f64) / count as f64)
}

/// `(RSS(to) - RSS(from)) / (to - from)`, KiB.
fn slope_kib(sample: &Sample, from: usize, to: usize) -> Option<f64> {
    let low = *sample.after_kib.get(&from)?;
    let high = *sample.after_kib.get(&to)?;
    Some((high as f64 - low as f64) / (to - from) as f64)
}

fn mib(kib: Option<f64>) -> String {
    kib.map_or(String::new(), |kib| format!("{:.1} MiB", kib / 1024.0))
}

fn kib(kib: Option<f64>) -> String {
    kib.map_or(String::new(), |kib| format!("{kib:.2} KiB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_guest_and_slope() {
        let sample = Sample {
            start_kib: 10_000,
            after_kib: BTreeMap::from([(1_000, 13_000), (5_000, 21_000)]),
            after_lists_kib: 22_000,
            creates_per_s: vec![],
        };
        assert_eq!(per_guest_kib(&sample, 1_000), Some(3.0));
        assert_eq!(per_guest_kib(&sample, 5_000), Some(2.2));
        assert_eq!(slope_kib(&sample, 1_000, 5_000), Some(2.0));
        assert_eq!(per_guest_kib(&sample, 2_000), None);
        let table = render(
            &[1_000, 5_000],
            &[SystemKind::Ours],
            &BTreeMap::from([(SystemKind::Ours, vec![sample])]),
            "0.1",
            "0.2",
        );
        assert!(
            table.contains("| ours (mock-server) | 5000 | 9.8 MiB | 20.5 MiB | 2.20 KiB | 2.00 KiB | 21.5 MiB |"),
            "{table}"
        );
    }
}
