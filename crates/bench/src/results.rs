//! `target/bench/results.json`: what every benchmark measured, and the tables printed from it.
//!
//! One file holds the latest run of each benchmark (`mock`, `scale`, `sdk`, `codegen`); running
//! one benchmark replaces its section and keeps the others, so charts and target checks always
//! see the newest figures of everything. Each section records its own date, mode and load.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::clients::{PROXMOXER, RAW_REQWEST, SDK_SCENARIOS};
use crate::load::LoadSummary;
use crate::setup::Machine;
use crate::systems::SystemKind;

/// Version of the file layout.
pub const FORMAT: u32 = 1;

/// The whole results file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Layout version ([`FORMAT`]).
    pub format: u32,
    /// The machine of the latest run.
    pub machine: Machine,
    /// `bench mock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockResults>,
    /// `bench scale`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<ScaleResults>,
    /// `bench sdk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<SdkResults>,
    /// `bench codegen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codegen: Option<CodegenResults>,
    /// The targets of the issue, checked against the sections present.
    #[serde(default)]
    pub targets: Vec<TargetCheck>,
}

/// When and how a section was measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// UTC date and time, `YYYY-MM-DDTHH:MM:SSZ`.
    pub date: String,
    /// Whether `--quick` was given.
    pub quick: bool,
    /// `/proc/loadavg` before the section.
    pub load_before: String,
    /// `/proc/loadavg` after the section.
    pub load_after: String,
}

/// `bench mock`: throughput, latency, start-up and memory per system.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MockResults {
    /// When.
    pub run: RunInfo,
    /// Keep-alive connections per load run.
    pub connections: usize,
    /// Seconds per load run.
    pub duration_s: f64,
    /// Load runs per endpoint (the median is reported).
    #[serde(default)]
    pub rounds: usize,
    /// One entry per system.
    pub systems: Vec<SystemResults>,
}

/// One system in `bench mock`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemResults {
    /// Which system.
    pub system: SystemKind,
    /// Start-up times to the first 200 answer, ms, one per start.
    pub startup_ms: Vec<f64>,
    /// Their median.
    pub startup_median_ms: Option<f64>,
    /// Resident memory right after start-up, KiB.
    pub rss_start_kib: Option<u64>,
    /// Resident memory after the GET load, KiB.
    pub rss_after_gets_kib: Option<u64>,
    /// Resident memory after the create load (a fresh instance), KiB.
    pub rss_after_creates_kib: Option<u64>,
    /// One entry per endpoint and scheme.
    pub endpoints: Vec<EndpointResult>,
}

/// One endpoint over one scheme.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndpointResult {
    /// `GET /version`, `POST /nodes/pve1/qemu`, ...
    pub endpoint: String,
    /// `http` or `https`.
    pub scheme: String,
    /// What happened (for a measured cell: the run with the median throughput).
    pub outcome: Outcome,
    /// Requests/s of every round.
    #[serde(default)]
    pub runs_rps: Vec<f64>,
}

/// A measurement, or why there is none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Measured.
    Measured {
        /// The load run.
        load: LoadSummary,
    },
    /// The system cannot do this (no HTTPS, rejects form bodies, ...).
    Unsupported {
        /// Why.
        reason: String,
    },
    /// The run failed.
    Failed {
        /// The error.
        error: String,
    },
}

impl Outcome {
    /// The load run, if measured.
    pub fn load(&self) -> Option<&LoadSummary> {
        match self {
            Outcome::Measured { load } => Some(load),
            Outcome::Unsupported { .. } | Outcome::Failed { .. } => None,
        }
    }
}

/// `bench scale`: create cost and `/cluster/resources` latency against the number of guests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScaleResults {
    /// When.
    pub run: RunInfo,
    /// Sequential creates measured per point.
    pub creates_per_point: u64,
    /// Sequential `GET /cluster/resources` per point.
    pub resource_gets_per_point: u64,
    /// One entry per system and guest count.
    pub points: Vec<ScalePoint>,
}

/// One system at one guest count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScalePoint {
    /// Which system.
    pub system: SystemKind,
    /// Guests seeded before measuring.
    pub guests: usize,
    /// Start-up time with this seed, ms.
    pub startup_ms: Option<f64>,
    /// Sequential creates (one connection).
    pub create: Option<LoadSummary>,
    /// Sequential `GET /cluster/resources` (one connection).
    pub resources: Option<LoadSummary>,
    /// Size of one `/cluster/resources` answer, bytes.
    pub resources_bytes: Option<usize>,
    /// Why something is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `bench sdk`: clients against our mock over HTTP.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SdkResults {
    /// When.
    pub run: RunInfo,
    /// GETs per scenario.
    pub n_gets: u64,
    /// Concurrency of the concurrent scenario.
    pub concurrency: usize,
    /// Creates (each followed by a task wait).
    pub n_creates: u64,
    /// Repetitions of each scenario by the Rust clients (the median is reported).
    pub repeats: usize,
    /// Repetitions of each scenario by the Python clients.
    #[serde(default)]
    pub python_repeats: usize,
    /// One entry per client and scenario.
    pub rows: Vec<SdkRow>,
}

/// One client in one scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdkRow {
    /// Client name.
    pub client: String,
    /// `sequential GETs`, `concurrent GETs`, `creates + task waits`.
    pub scenario: String,
    /// Operations per repetition.
    pub n_ops: u64,
    /// Wall time of each repetition, seconds.
    pub wall_s: Vec<f64>,
    /// Median wall time, seconds.
    pub median_wall_s: Option<f64>,
    /// Operations per second at the median.
    pub ops_per_s: Option<f64>,
    /// Why there is no figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `bench codegen`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodegenResults {
    /// When.
    pub run: RunInfo,
    /// Median wall time of a full render + check of every tag, seconds.
    pub median_s: Option<f64>,
    /// The xtask's own summary line.
    pub summary: String,
}

/// One target and how the run did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    /// What is compared.
    pub name: String,
    /// The measured value (`None` when a side is missing).
    pub measured: Option<f64>,
    /// How to print it: `x` (ratio), `%`, `ms`, `/s`.
    pub unit: String,
    /// The goal, as text.
    pub goal: String,
    /// Whether the goal is met.
    pub met: Option<bool>,
}

impl TargetCheck {
    /// A check of `measured` against `goal`; `ok` decides whether the goal is met.
    pub fn new(
        name: &str,
        measured: Option<f64>,
        unit: &str,
        goal: &str,
        ok: fn(f64) -> bool,
    ) -> Self {
        TargetCheck {
            name: name.to_owned(),
            measured,
            unit: unit.to_owned(),
            goal: goal.to_owned(),
            met: measured.map(ok),
        }
    }

    /// The measured value with its unit.
    pub fn measured_text(&self) -> String {
        match (self.measured, self.unit.as_str()) {
            (None, _) => "–".to_owned(),
            (Some(value), "x") => format!("{value:.1}x"),
            (Some(value), "%") => format!("{:.0}%", value * 100.0),
            (Some(value), "ms") => format!("{value:.2} ms"),
            (Some(value), "/s") => format!("{} /s", thousands(value)),
            (Some(value), unit) => format!("{value:.2} {unit}"),
        }
    }
}

impl Results {
    /// Reads `path` if it exists and has the current layout; a fresh value otherwise.
    pub fn load_or_default(path: &Path) -> Results {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Results>(&bytes).ok())
            .filter(|results| results.format == FORMAT)
            .unwrap_or_else(|| Results {
                format: FORMAT,
                ..Results::default()
            })
    }

    /// Writes the file (pretty JSON), creating its directory.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    /// The tables of every section present, as printed at the end of a run.
    pub fn render_tables(&self) -> String {
        let mut out = String::new();
        if let Some(mock) = &self.mock {
            render_mock(&mut out, mock);
        }
        if let Some(scale) = &self.scale {
            render_scale(&mut out, scale);
        }
        if let Some(sdk) = &self.sdk {
            render_sdk(&mut out, sdk);
        }
        if let Some(codegen) = &self.codegen {
            let _ = writeln!(out, "\n## codegen ({})\n", codegen.run.date);
            let _ = writeln!(out, "{}", codegen.summary);
        }
        if !self.targets.is_empty() {
            let _ = writeln!(out, "\n## targets\n");
            let _ = writeln!(out, "| target | measured | goal | met |");
            let _ = writeln!(out, "|---|---|---|---|");
            for check in &self.targets {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    check.name,
                    check.measured_text(),
                    check.goal,
                    match check.met {
                        Some(true) => "yes",
                        Some(false) => "**no**",
                        None => "n/a",
                    }
                );
            }
        }
        out
    }
}

/// The systems of `bench mock`, in table order.
pub const MOCK_SYSTEMS: &[SystemKind] = &[
    SystemKind::Ours,
    SystemKind::Baseline,
    SystemKind::Fakepve,
    SystemKind::ProxmoxSdkMock,
    SystemKind::BareAxum,
];

/// The peers ours is divided by in the ratio columns.
const RATIO_PEERS: &[SystemKind] = &[
    SystemKind::Baseline,
    SystemKind::Fakepve,
    SystemKind::ProxmoxSdkMock,
    SystemKind::BareAxum,
];

fn render_mock(out: &mut String, mock: &MockResults) {
    let _ = writeln!(
        out,
        "\n## mock ({}{}): requests/s (2xx) and p99 latency, {} keep-alive connections, {} s per run, median of {} round(s)\n",
        mock.run.date,
        if mock.run.quick { ", quick" } else { "" },
        mock.connections,
        mock.duration_s,
        mock.rounds
    );
    let systems: Vec<&SystemResults> = MOCK_SYSTEMS
        .iter()
        .filter_map(|kind| mock.systems.iter().find(|s| s.system == *kind))
        .collect();
    let mut header = String::from("| endpoint | scheme |");
    let mut rule = String::from("|---|---|");
    for system in &systems {
        let _ = write!(header, " {} |", system.system.label());
        rule.push_str("---:|");
    }
    for peer in RATIO_PEERS {
        if systems.iter().any(|s| s.system == *peer) {
            let _ = write!(header, " ours / {} |", short_name(*peer));
            rule.push_str("---:|");
        }
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let ours = systems.iter().find(|s| s.system == SystemKind::Ours);
    for (endpoint, scheme) in endpoint_rows(mock) {
        let mut line = format!("| {endpoint} | {scheme} |");
        for system in &systems {
            let cell = system
                .endpoints
                .iter()
                .find(|e| e.endpoint == endpoint && e.scheme == scheme)
                .map_or_else(|| "–".to_owned(), |e| outcome_cell(&e.outcome));
            let _ = write!(line, " {cell} |");
        }
        for peer in RATIO_PEERS {
            let Some(peer_results) = systems.iter().find(|s| s.system == *peer) else {
                continue;
            };
            // The bare handler serves `/version` only: every GET is compared with it, the
            // limit of the stack we share (creates have no bare counterpart).
            let peer_endpoint = if *peer == SystemKind::BareAxum && endpoint.starts_with("GET ") {
                "GET /version"
            } else {
                endpoint.as_str()
            };
            let ratio = ours
                .and_then(|ours| rps_of(ours, &endpoint, &scheme))
                .zip(rps_of(peer_results, peer_endpoint, &scheme))
                .map(|(ours, peer)| ours / peer);
            let _ = write!(line, " {} |", ratio.map_or("–".to_owned(), format_ratio));
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "\n| system | start-up median (ms) | starts | RSS after start (MiB) | RSS after GET load (MiB) | RSS after creates (MiB) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    for system in &systems {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            system.system.label(),
            system
                .startup_median_ms
                .map_or("–".to_owned(), |ms| format!("{ms:.1}")),
            system.startup_ms.len(),
            mib(system.rss_start_kib),
            mib(system.rss_after_gets_kib),
            mib(system.rss_after_creates_kib),
        );
    }
    for system in &systems {
        for endpoint in &system.endpoints {
            if let Outcome::Unsupported { reason } = &endpoint.outcome {
                let _ = writeln!(
                    out,
                    "\n- {} cannot do {} over {}: {reason}",
                    system.system.label(),
                    endpoint.endpoint,
                    endpoint.scheme
                );
            }
            if let Outcome::Failed { error } = &endpoint.outcome {
                let _ = writeln!(
                    out,
                    "\n- {} failed {} over {}: {error}",
                    system.system.label(),
                    endpoint.endpoint,
                    endpoint.scheme
                );
            }
        }
    }
}

/// The (endpoint, scheme) rows of the mock table, in first-seen order.
pub fn endpoint_rows(mock: &MockResults) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    for system in &mock.systems {
        for endpoint in &system.endpoints {
            let key = (endpoint.endpoint.clone(), endpoint.scheme.clone());
            if !rows.contains(&key) {
                rows.push(key);
            }
        }
    }
    rows
}

/// Requests/s of a system at one endpoint and scheme, if measured.
pub fn rps_of(system: &SystemResults, endpoint: &str, scheme: &str) -> Option<f64> {
    system
        .endpoints
        .iter()
        .find(|e| e.endpoint == endpoint && e.scheme == scheme)
        .and_then(|e| e.outcome.load())
        .map(|load| load.rps)
        .filter(|rps| *rps > 0.0)
}

fn outcome_cell(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Measured { load } => {
            let p99 = load
                .latency
                .map_or("–".to_owned(), |l| format!("{:.2} ms", l.p99_ms));
            let mut cell = format!("{} ({p99})", thousands(load.rps));
            if load.non_2xx + load.errors > 0 {
                let _ = write!(cell, " [{} failed]", load.non_2xx + load.errors);
            }
            cell
        }
        Outcome::Unsupported { .. } => "unsupported".to_owned(),
        Outcome::Failed { .. } => "failed".to_owned(),
    }
}

fn render_scale(out: &mut String, scale: &ScaleResults) {
    let _ = writeln!(
        out,
        "\n## scale ({}{}): {} sequential creates and {} sequential GET /cluster/resources per point, HTTPS\n",
        scale.run.date,
        if scale.run.quick { ", quick" } else { "" },
        scale.creates_per_point,
        scale.resource_gets_per_point
    );
    let _ = writeln!(
        out,
        "| system | guests | create p50 (ms) | create p99 (ms) | /cluster/resources p50 (ms) | p99 (ms) | answer (KiB) | start-up (ms) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for point in &scale.points {
        let create = point.create.as_ref().and_then(|c| c.latency);
        let create_p50 = create.map_or("–".to_owned(), |l| format!("{:.3}", l.p50_ms));
        let create_p99 = create.map_or("–".to_owned(), |l| format!("{:.3}", l.p99_ms));
        let resources = point.resources.as_ref().and_then(|r| r.latency);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |{}",
            point.system.label(),
            thousands(point.guests as f64),
            create_p50,
            create_p99,
            resources.map_or("–".to_owned(), |l| format!("{:.2}", l.p50_ms)),
            resources.map_or("–".to_owned(), |l| format!("{:.2}", l.p99_ms)),
            point
                .resources_bytes
                .map_or("–".to_owned(), |b| format!("{:.0}", b as f64 / 1024.0)),
            point
                .startup_ms
                .map_or("–".to_owned(), |ms| format!("{ms:.0}")),
            point
                .error
                .as_ref()
                .map_or(String::new(), |e| format!(" error: {e}")),
        );
    }
    let _ = writeln!(
        out,
        "\n| guests | create cost fakepve / ours | /cluster/resources fakepve / ours |"
    );
    let _ = writeln!(out, "|---:|---:|---:|");
    let mut counts: Vec<usize> = scale.points.iter().map(|p| p.guests).collect();
    counts.dedup();
    for guests in counts {
        let find = |kind: SystemKind| {
            scale
                .points
                .iter()
                .find(|p| p.system == kind && p.guests == guests)
        };
        let (Some(ours), Some(peer)) = (find(SystemKind::Ours), find(SystemKind::Fakepve)) else {
            continue;
        };
        let ratio = |pick: fn(&ScalePoint) -> Option<f64>| {
            pick(peer)
                .zip(pick(ours))
                .map_or("–".to_owned(), |(peer, ours)| format_ratio(peer / ours))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            thousands(guests as f64),
            ratio(|p| p.create.as_ref().and_then(|c| c.latency).map(|l| l.p50_ms)),
            ratio(|p| p
                .resources
                .as_ref()
                .and_then(|c| c.latency)
                .map(|l| l.p50_ms)),
        );
    }
}

fn render_sdk(out: &mut String, sdk: &SdkResults) {
    let _ = writeln!(
        out,
        "\n## sdk ({}{}): against our mock over HTTP, API token; median of {} repetitions (Python clients: {})\n",
        sdk.run.date,
        if sdk.run.quick { ", quick" } else { "" },
        sdk.repeats,
        sdk.python_repeats
    );
    let mut clients: Vec<&str> = Vec::new();
    for row in &sdk.rows {
        if !clients.contains(&row.client.as_str()) {
            clients.push(&row.client);
        }
    }
    let _ = writeln!(
        out,
        "| client | {} | seq. GETs vs proxmoxer | vs raw reqwest (seq. / conc.) |",
        SDK_SCENARIOS
            .iter()
            .map(|s| format!("{s} (ops/s)"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
    let rate = |client: &str, scenario: &str| {
        sdk.rows
            .iter()
            .find(|r| r.client == client && r.scenario == scenario)
            .and_then(|r| r.ops_per_s)
    };
    for client in &clients {
        let cells: Vec<String> = SDK_SCENARIOS
            .iter()
            .map(|scenario| {
                let row = sdk
                    .rows
                    .iter()
                    .find(|r| r.client == *client && r.scenario == *scenario);
                match row {
                    Some(SdkRow {
                        ops_per_s: Some(rate),
                        ..
                    }) => thousands(*rate),
                    Some(SdkRow { error: Some(_), .. }) => "failed".to_owned(),
                    _ => "–".to_owned(),
                }
            })
            .collect();
        let vs_proxmoxer = rate(client, SDK_SCENARIOS[0])
            .zip(rate(PROXMOXER, SDK_SCENARIOS[0]))
            .map_or("–".to_owned(), |(ours, peer)| format_ratio(ours / peer));
        let vs_raw = |scenario: &str| {
            rate(client, scenario)
                .zip(rate(RAW_REQWEST, scenario))
                .map_or("–".to_owned(), |(ours, raw)| {
                    format!("{:.0}%", 100.0 * ours / raw)
                })
        };
        let _ = writeln!(
            out,
            "| {client} | {} | {vs_proxmoxer} | {} / {} |",
            cells.join(" | "),
            vs_raw(SDK_SCENARIOS[0]),
            vs_raw(SDK_SCENARIOS[1])
        );
    }
    for row in &sdk.rows {
        if let Some(error) = &row.error {
            let _ = writeln!(out, "\n- {} {} failed: {error}", row.client, row.scenario);
        }
    }
}

fn short_name(kind: SystemKind) -> &'static str {
    match kind {
        SystemKind::Ours => "ours",
        SystemKind::Fakepve => "fakepve",
        SystemKind::ProxmoxSdkMock => "proxmox-sdk mock",
        SystemKind::BareAxum => "bare axum",
        SystemKind::Baseline => "baseline",
    }
}

/// `12.3x`, `0.61x`.
pub fn format_ratio(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.0}x")
    } else if ratio >= 1.0 {
        format!("{ratio:.1}x")
    } else {
        format!("{ratio:.2}x")
    }
}

/// A whole number with thousands separators: `52,341`.
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return "–".to_owned();
    }
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if rounded < 0 {
        out.insert(0, '-');
    }
    out
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("–".to_owned(), |kib| {
        format!("{:.1}", kib as f64 / 1024.0)
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (UTC, proleptic Gregorian).
pub fn utc_timestamp(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds_of_day = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds_of_day / 3600,
        seconds_of_day / 60 % 60,
        seconds_of_day % 60
    )
}

/// Now, as [`utc_timestamp`].
pub fn now_utc() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_timestamp(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Latencies;

    fn measured(rps: f64) -> Outcome {
        Outcome::Measured {
            load: LoadSummary {
                ok: 100,
                non_2xx: 0,
                errors: 0,
                elapsed_s: 1.0,
                rps,
                latency: Some(Latencies {
                    p50_ms: 0.5,
                    p90_ms: 0.8,
                    p99_ms: 1.5,
                    max_ms: 3.0,
                }),
                first_failure: None,
            },
        }
    }

    fn sample() -> Results {
        Results {
            format: FORMAT,
            mock: Some(MockResults {
                run: RunInfo {
                    date: "2026-01-02T03:04:05Z".to_owned(),
                    ..RunInfo::default()
                },
                connections: 50,
                duration_s: 10.0,
                rounds: 3,
                systems: vec![
                    SystemResults {
                        system: SystemKind::Ours,
                        startup_ms: vec![20.0, 22.0, 21.0],
                        startup_median_ms: Some(21.0),
                        rss_start_kib: Some(20_000),
                        rss_after_gets_kib: Some(24_000),
                        rss_after_creates_kib: None,
                        endpoints: vec![EndpointResult {
                            endpoint: "GET /version".to_owned(),
                            scheme: "https".to_owned(),
                            outcome: measured(40_000.0),
                            runs_rps: vec![39_000.0, 40_000.0, 41_000.0],
                        }],
                    },
                    SystemResults {
                        system: SystemKind::Fakepve,
                        startup_ms: vec![900.0],
                        startup_median_ms: Some(900.0),
                        rss_start_kib: Some(60_000),
                        rss_after_gets_kib: Some(61_000),
                        rss_after_creates_kib: None,
                        endpoints: vec![
                            EndpointResult {
                                endpoint: "GET /version".to_owned(),
                                scheme: "https".to_owned(),
                                outcome: measured(2_000.0),
                                runs_rps: vec![2_000.0],
                            },
                            EndpointResult {
                                endpoint: "GET /version".to_owned(),
                                scheme: "http".to_owned(),
                                outcome: Outcome::Unsupported {
                                    reason: "HTTPS only".to_owned(),
                                },
                                runs_rps: Vec::new(),
                            },
                        ],
                    },
                ],
            }),
            ..Results::default()
        }
    }

    #[test]
    fn json_shape() {
        let value = serde_json::to_value(sample()).unwrap_or_default();
        assert_eq!(value["format"], 1);
        let systems = &value["mock"]["systems"];
        assert_eq!(systems[0]["system"], "ours");
        assert_eq!(systems[1]["system"], "fakepve");
        let endpoint = &systems[0]["endpoints"][0];
        assert_eq!(endpoint["endpoint"], "GET /version");
        assert_eq!(endpoint["outcome"]["status"], "measured");
        assert_eq!(endpoint["outcome"]["load"]["rps"], 40_000.0);
        assert_eq!(endpoint["outcome"]["load"]["latency"]["p99_ms"], 1.5);
        assert_eq!(endpoint["runs_rps"][2], 41_000.0);
        let unsupported = &systems[1]["endpoints"][1]["outcome"];
        assert_eq!(unsupported["status"], "unsupported");
        assert_eq!(unsupported["reason"], "HTTPS only");
        // Absent sections are left out, not written as null.
        assert!(value.get("scale").is_none());
    }

    #[test]
    fn round_trip() {
        let results = sample();
        let text = serde_json::to_string(&results).unwrap_or_default();
        let back: Results = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, results);
    }

    #[test]
    fn table_has_ratios_and_unsupported_reasons() {
        let table = sample().render_tables();
        assert!(
            table.contains("| GET /version | https | 40,000 (1.50 ms) | 2,000 (1.50 ms) | 20x |"),
            "{table}"
        );
        assert!(table.contains("fakepve 0.5.0 cannot do GET /version over http: HTTPS only"));
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(1_234_567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(0.0), "0");
        assert_eq!(format_ratio(12.34), "12x");
        assert_eq!(format_ratio(2.345), "2.3x");
        assert_eq!(format_ratio(0.612), "0.61x");
    }

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_767_323_045), "2026-01-02T03:04:05Z");
    }
}
