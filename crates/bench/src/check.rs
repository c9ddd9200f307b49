//! `bench mock --quick --check`: the regression guard. Our GET throughput as a share of the bare
//! axum handler's (same run, same scheme) is compared with the share the last full `bench mock`
//! run recorded in `docs/perf/mock-ratios.json`; the check fails when an endpoint falls more than
//! [`TOLERANCE`] below it.
//!
//! Ratios, not requests/s: the machine is shared and absolute figures drift between runs, while
//! ours and the bare handler take turns under the same load. A full run (without `--quick`)
//! rewrites the reference file; commit it with the change it measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::results::{MockResults, SystemResults, endpoint_rows, rps_of};
use crate::systems::SystemKind;

/// How far (relative) a quick run's ratio may fall below the full run's before the check
/// fails. Rounds of one cell differ by up to 18% on the 2 shared cores, and a ratio moves with
/// both of its sides; 15% keeps the check quiet under that noise and still catches a lever
/// being undone (each lever of issue 15 moved a ratio by more than that).
pub const TOLERANCE: f64 = 0.15;

/// The reference ratios of a full run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// When the full run was made (UTC).
    pub date: String,
    /// `/proc/loadavg` before and after it.
    pub load: String,
    /// `endpoint scheme` -> ours / bare axum's `GET /version` over the same scheme.
    pub ratios: BTreeMap<String, f64>,
}

/// `docs/perf/mock-ratios.json` under the workspace root.
pub fn reference_path(root: &Path) -> PathBuf {
    root.join("docs").join("perf").join("mock-ratios.json")
}

/// Ours / bare axum for every endpoint and scheme both measured: each endpoint against the
/// bare handler's `/version` over the same scheme (the bare handler serves nothing else).
pub fn bare_ratios(mock: &MockResults) -> BTreeMap<String, f64> {
    let find = |kind| {
        mock.systems
            .iter()
            .find(|s: &&SystemResults| s.system == kind)
    };
    let (Some(ours), Some(bare)) = (find(SystemKind::Ours), find(SystemKind::BareAxum)) else {
        return BTreeMap::new();
    };
    endpoint_rows(mock)
        .into_iter()
        .filter(|(endpoint, _)| endpoint.starts_with("GET "))
        .filter_map(|(endpoint, scheme)| {
            let ratio = rps_of(ours, &endpoint, &scheme)? / rps_of(bare, "GET /version", &scheme)?;
            Some((format!("{endpoint} {scheme}"), ratio))
        })
        .collect()
}

/// Writes the reference of a full run.
pub fn save_reference(path: &Path, mock: &MockResults) -> anyhow::Result<()> {
    let reference = Reference {
        date: mock.run.date.clone(),
        load: format!("{} / {}", mock.run.load_before, mock.run.load_after),
        ratios: bare_ratios(mock),
    };
    let mut text = serde_json::to_string_pretty(&reference)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Compares a run with the reference: the report, and whether every ratio holds.
pub fn compare(reference: &Reference, mock: &MockResults) -> (String, bool) {
    let measured = bare_ratios(mock);
    let mut report = format!(
        "\n## check against the full run of {} (load {}), tolerance {:.0}%\n\n\
         | endpoint | full run: ours / bare | this run | floor | holds |\n|---|---:|---:|---:|---|\n",
        reference.date,
        reference.load,
        TOLERANCE * 100.0
    );
    let mut ok = true;
    for (cell, &expected) in &reference.ratios {
        let floor = expected * (1.0 - TOLERANCE);
        let got = measured.get(cell).copied();
        let holds = got.is_some_and(|got| got >= floor);
        ok &= holds;
        let _ = writeln!(
            report,
            "| {cell} | {expected:.2} | {} | {floor:.2} | {} |",
            got.map_or("not measured".to_owned(), |got| format!("{got:.2}")),
            if holds { "yes" } else { "**no**" }
        );
    }
    if reference.ratios.is_empty() {
        ok = false;
        report.push_str("the reference has no ratios: run a full `bench mock` first\n");
    }
    (report, ok)
}

/// Reads the reference file.
pub fn load_reference(path: &Path) -> anyhow::Result<Reference> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading {} (written by a full `cargo xtask bench mock`)",
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::load::LoadSummary;
    use crate::results::{EndpointResult, Outcome};

    fn system(kind: SystemKind, cells: &[(&str, &str, f64)]) -> SystemResults {
        SystemResults {
            system: kind,
            startup_ms: Vec::new(),
            startup_median_ms: None,
            rss_start_kib: None,
            rss_after_gets_kib: None,
            rss_after_creates_kib: None,
            endpoints: cells
                .iter()
                .map(|(endpoint, scheme, rps)| EndpointResult {
                    endpoint: (*endpoint).to_owned(),
                    scheme: (*scheme).to_owned(),
                    outcome: Outcome::Measured {
                        load: LoadSummary {
                            ok: 1,
                            non_2xx: 0,
                            errors: 0,
                            elapsed_s: 1.0,
                            rps: *rps,
                            latency: None,
                            first_failure: None,
                        },
                    },
                    runs_rps: vec![*rps],
                })
                .collect(),
        }
    }

    fn run(nodes_rps: f64) -> MockResults {
        MockResults {
            systems: vec![
                system(
                    SystemKind::Ours,
                    &[
                        ("GET /version", "http", 80.0),
                        ("GET /nodes", "http", nodes_rps),
                        ("POST /nodes/pve1/qemu", "http", 10.0),
                    ],
                ),
                system(SystemKind::BareAxum, &[("GET /version", "http", 100.0)]),
            ],
            ..MockResults::default()
        }
    }

    #[test]
    fn ratios_are_against_bare_version_and_gets_only() {
        let ratios = bare_ratios(&run(70.0));
        assert_eq!(ratios.len(), 2);
        assert!((ratios["GET /nodes http"] - 0.70).abs() < 1e-9);
        assert!((ratios["GET /version http"] - 0.80).abs() < 1e-9);
    }

    #[test]
    fn a_ratio_below_the_tolerance_fails() {
        let reference = Reference {
            ratios: bare_ratios(&run(70.0)),
            ..Reference::default()
        };
        assert!(compare(&reference, &run(61.0)).1);
        assert!(!compare(&reference, &run(59.0)).1);
    }
}
