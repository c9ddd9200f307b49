//! The targets, checked against the results of the same run.
//!
//! Every comparison is "ours against a peer measured minutes apart on the same machine", so
//! noise from other work on the machine largely cancels in the ratio. Where a target covers
//! several endpoints or schemes, the worst case is reported.

use crate::clients::{OURS_DYNAMIC, OURS_TYPED, PROXMOXER, RAW_REQWEST, SDK_SCENARIOS};
use crate::results::{Results, SystemResults, TargetCheck, rps_of};
use crate::systems::SystemKind;

const GET_ENDPOINTS: &[&str] = &["GET /version", "GET /nodes", "GET /nodes/pve1/qemu"];
const CREATE_ENDPOINT: &str = "POST /nodes/pve1/qemu";

/// Checks every target the results allow.
pub fn check(results: &Results) -> Vec<TargetCheck> {
    let mut checks = Vec::new();
    if let Some(mock) = &results.mock {
        let system = |kind: SystemKind| mock.systems.iter().find(|s| s.system == kind);
        let ours = system(SystemKind::Ours);
        let fakepve = system(SystemKind::Fakepve);
        let pxsdk = system(SystemKind::ProxmoxSdkMock);
        let bare = system(SystemKind::BareAxum);
        checks.push(TargetCheck::new(
            "mock GETs vs fakepve (HTTPS, worst endpoint)",
            worst_ratio(ours, fakepve, GET_ENDPOINTS, "https"),
            "x",
            ">= 8x",
            |v| v >= 8.0,
        ));
        checks.push(TargetCheck::new(
            "mock GETs vs proxmox-sdk mock (HTTP, worst endpoint)",
            worst_ratio(ours, pxsdk, GET_ENDPOINTS, "http"),
            "x",
            ">= 50x",
            |v| v >= 50.0,
        ));
        checks.push(TargetCheck::new(
            "POST create vs fakepve (HTTPS)",
            worst_ratio(ours, fakepve, &[CREATE_ENDPOINT], "https"),
            "x",
            ">= 10x",
            |v| v >= 10.0,
        ));
        checks.push(TargetCheck::new(
            "start-up vs fakepve (median, to first 200)",
            ours.and_then(|o| o.startup_median_ms)
                .zip(fakepve.and_then(|f| f.startup_median_ms))
                .map(|(ours, peer)| peer / ours),
            "x",
            ">= 20x faster",
            |v| v >= 20.0,
        ));
        let rss = |pick: fn(&SystemResults) -> Option<u64>| {
            ours.and_then(pick)
                .zip(fakepve.and_then(pick))
                .map(|(ours, peer)| ours as f64 / peer as f64)
        };
        let rss_worst = match (rss(|s| s.rss_start_kib), rss(|s| s.rss_after_gets_kib)) {
            (Some(start), Some(loaded)) => Some(start.max(loaded)),
            (start, loaded) => start.or(loaded),
        };
        checks.push(TargetCheck::new(
            "RSS vs fakepve (worse of after start / after GET load)",
            rss_worst,
            "%",
            "<= 50%",
            |v| v <= 0.5,
        ));
        let vs_bare = ["http", "https"]
            .iter()
            .filter_map(|scheme| {
                ours.and_then(|o| rps_of(o, GET_ENDPOINTS[0], scheme))
                    .zip(bare.and_then(|b| rps_of(b, GET_ENDPOINTS[0], scheme)))
                    .map(|(ours, bare)| ours / bare)
            })
            .reduce(f64::min);
        checks.push(TargetCheck::new(
            "mock GET /version vs bare axum (worse scheme)",
            vs_bare,
            "%",
            ">= 60%",
            |v| v >= 0.6,
        ));
        let worst_p99 = ours.and_then(|o| {
            o.endpoints
                .iter()
                .filter(|e| GET_ENDPOINTS.contains(&e.endpoint.as_str()))
                .filter_map(|e| e.outcome.load().and_then(|l| l.latency))
                .map(|l| l.p99_ms)
                .reduce(f64::max)
        });
        checks.push(TargetCheck::new(
            "mock GET p99 (worst endpoint and scheme, 50 connections)",
            worst_p99,
            "ms",
            "< 5 ms",
            |v| v < 5.0,
        ));
        checks.push(TargetCheck::new(
            "creates/s, SQLite WAL (HTTP, 50 connections)",
            ours.and_then(|o| rps_of(o, CREATE_ENDPOINT, "http")),
            "/s",
            ">= 10,000 /s",
            |v| v >= 10_000.0,
        ));
    }
    if let Some(sdk) = &results.sdk {
        let rate = |client: &str, scenario: &str| {
            sdk.rows
                .iter()
                .find(|r| r.client == client && r.scenario == scenario)
                .and_then(|r| r.ops_per_s)
        };
        let ours = [OURS_TYPED, OURS_DYNAMIC];
        let vs_proxmoxer = ours
            .iter()
            .filter_map(|client| {
                rate(client, SDK_SCENARIOS[0])
                    .zip(rate(PROXMOXER, SDK_SCENARIOS[0]))
                    .map(|(ours, peer)| ours / peer)
            })
            .reduce(f64::min);
        checks.push(TargetCheck::new(
            "SDK sequential GETs vs proxmoxer (worse of typed / dynamic)",
            vs_proxmoxer,
            "x",
            ">= 5x",
            |v| v >= 5.0,
        ));
        let vs_raw = ours
            .iter()
            .flat_map(|client| {
                SDK_SCENARIOS[..2].iter().filter_map(move |scenario| {
                    rate(client, scenario)
                        .zip(rate(RAW_REQWEST, scenario))
                        .map(|(ours, raw)| ours / raw)
                })
            })
            .reduce(f64::min);
        checks.push(TargetCheck::new(
            "SDK GET throughput vs raw reqwest (worst of typed / dynamic, seq. / conc.)",
            vs_raw,
            "%",
            ">= 95%",
            |v| v >= 0.95,
        ));
    }
    checks
}

/// The smallest ours / peer throughput ratio over `endpoints` on `scheme`.
fn worst_ratio(
    ours: Option<&SystemResults>,
    peer: Option<&SystemResults>,
    endpoints: &[&str],
    scheme: &str,
) -> Option<f64> {
    let (ours, peer) = (ours?, peer?);
    endpoints
        .iter()
        .filter_map(|endpoint| {
            rps_of(ours, endpoint, scheme)
                .zip(rps_of(peer, endpoint, scheme))
                .map(|(ours, peer)| ours / peer)
        })
        .reduce(f64::min)
}
