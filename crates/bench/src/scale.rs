//! `bench scale`: what creates and `GET /cluster/resources` cost as the cluster grows.
//!
//! For each guest count, ours and fakepve are started seeded with that many stopped VMs (ours
//! through `--seed`, fakepve through its guests file), then measured over HTTPS on one
//! keep-alive connection: [`CREATES`] sequential creates (the median is the per-create cost)
//! and [`RESOURCE_GETS`] sequential `GET /cluster/resources` (the whole cluster, every guest).
//! Sequential requests isolate the per-operation cost from concurrency effects; `bench mock`
//! measures creates under 50 connections.

use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use http::Method;

use crate::load::{self, Body, LoadShape, RequestSpec};
use crate::results::{RunInfo, ScalePoint, ScaleResults, now_utc};
use crate::setup::{BenchEnv, loadavg};
use crate::systems::{self, Seed, SystemKind};

/// Sequential creates per point.
const CREATES: u64 = 200;
/// Sequential `GET /cluster/resources` per point: enough for the p99 to be a percentile and
/// not the slowest request. With 30 it was the maximum, and the slowest request is the first
/// on the new connection (TCP slow start and buffer growth on a fresh loopback connection: a
/// 3 MB answer took about twice its steady time, for every server).
const RESOURCE_GETS: u64 = 100;
/// Time limit of each measurement.
const TIME_LIMIT: Duration = Duration::from_secs(60);

/// Guest counts of a full run.
pub const GUEST_COUNTS: &[usize] = &[100, 1_000, 10_000];

/// Runs the scale comparison.
pub async fn run(env: &BenchEnv) -> anyhow::Result<ScaleResults> {
    let load_before = loadavg();
    let date = now_utc();
    let (creates, resource_gets) = if env.quick {
        (50, 10)
    } else {
        (CREATES, RESOURCE_GETS)
    };
    let mut points = Vec::new();
    for &guests in GUEST_COUNTS {
        for kind in [SystemKind::Ours, SystemKind::Fakepve] {
            eprintln!("scale: {} with {guests} guests", kind.label());
            let point = match measure_point(env, kind, guests, creates, resource_gets).await {
                Ok(point) => point,
                Err(error) => ScalePoint {
                    system: kind,
                    guests,
                    startup_ms: None,
                    create: None,
                    resources: None,
                    resources_bytes: None,
                    error: Some(format!("{error:#}")),
                },
            };
            points.push(point);
        }
    }
    Ok(ScaleResults {
        run: RunInfo {
            date,
            quick: env.quick,
            load_before,
            load_after: loadavg(),
        },
        creates_per_point: creates,
        resource_gets_per_point: resource_gets,
        points,
    })
}

async fn measure_point(
    env: &BenchEnv,
    kind: SystemKind,
    guests: usize,
    creates: u64,
    resource_gets: u64,
) -> anyhow::Result<ScalePoint> {
    let running = systems::start(env, kind, Seed::Guests(guests)).await?;
    let auth = running.login(env).await?;
    let target = running.primary_target(env)?;
    let (status, body) = load::once(
        &target,
        Method::GET,
        "/api2/json/cluster/resources",
        &auth.headers,
        None,
    )
    .await?;
    anyhow::ensure!(
        status.is_success(),
        "GET /cluster/resources answered {status}"
    );
    let sequential = |count| LoadShape {
        connections: 1,
        duration: TIME_LIMIT,
        max_requests: Some(count),
    };
    let resources = load::run(
        &target,
        &auth,
        &RequestSpec {
            method: Method::GET,
            path: "/api2/json/cluster/resources".to_owned(),
            body: Body::Empty,
        },
        sequential(resource_gets),
    )
    .await?;
    let create = load::run(
        &target,
        &auth,
        &RequestSpec {
            method: Method::POST,
            path: "/api2/json/nodes/pve1/qemu".to_owned(),
            body: Body::CreateVm {
                next_vmid: Arc::new(AtomicU32::new(100_000)),
            },
        },
        sequential(creates),
    )
    .await?;
    let startup_ms = Some(running.startup.as_secs_f64() * 1000.0);
    running.stop();
    let error = [&resources, &create]
        .iter()
        .find_map(|summary| summary.first_failure.clone());
    Ok(ScalePoint {
        system: kind,
        guests,
        startup_ms,
        create: Some(create),
        resources: Some(resources),
        resources_bytes: Some(body.len()),
        error,
    })
}
