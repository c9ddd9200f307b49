//! `--record-crawl`: a walk of the upstream's GET tree from `/`, level by level, so that a
//! recording does not depend on what the clients happened to ask.
//!
//! The walk follows the branches that lead to the paths a fixture is made from
//! (`super::record::RECORDED`): `/`, `/nodes`, `/nodes/{node}`, `/nodes/{node}/qemu`, ..., not
//! the hundreds of other GETs below each node, which a fixture cannot hold.
//!
//! Each level's paths are fetched at most `concurrency` at a time with the API token given;
//! a path's children come from the schema (`PathNode::children`): a static child is visited as
//! is, a `{param}` child once for each value of `param` in the parent's list reply (`/nodes`
//! lists `node`, `/nodes/{node}/qemu` lists `vmid`). Only GETs without required query
//! parameters are sent, at most [`MAX_REQUESTS`] of them, and the walk stops at its time limit.
//! Every reply is validated like proxied traffic (its discrepancies count) and offered to the
//! recorder. Nothing but GET is ever sent.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use http_body_util::BodyExt;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use route_metadata::Method;
use serde_json::Value;

use super::Upstream;
use super::record::RECORDED;
use super::validate;
use crate::api::Api;

/// Most GETs one crawl sends.
const MAX_REQUESTS: usize = 20_000;

/// Characters escaped in a path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'/')
    .add(b'?')
    .add(b'#')
    .add(b'%')
    .add(b'"')
    .add(b'<')
    .add(b'>');

/// What `--record-crawl` was given.
#[derive(Clone)]
pub(super) struct CrawlConfig {
    /// API token, `user@realm!name=secret`.
    pub(super) token: String,
    /// Requests in flight at most.
    pub(super) concurrency: usize,
    /// How long the walk may take.
    pub(super) limit: Duration,
}

/// The token is a secret: not shown.
impl std::fmt::Debug for CrawlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrawlConfig")
            .field("concurrency", &self.concurrency)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// Walks the tree until it is done or the time limit is reached.
pub(super) async fn run(upstream: &Upstream, api: &Api, config: &CrawlConfig) {
    let started = std::time::Instant::now();
    let mut sent = 0;
    let walk = async {
        let mut visited: HashSet<String> = HashSet::new();
        // The schema has no `/`: the walk starts at the top-level paths (`/nodes`, `/pools`...).
        let mut level: Vec<String> = api
            .meta
            .paths()
            .map(|node| node.path.clone())
            .filter(|path| path.matches('/').count() == 1 && leads_to_recorded(path))
            .collect();
        while !level.is_empty() && sent < MAX_REQUESTS {
            level.retain(|path| visited.insert(path.clone()));
            level.truncate(MAX_REQUESTS - sent);
            sent += level.len();
            let next: Vec<Vec<String>> = futures::stream::iter(level)
                .map(|path| visit(upstream, api, config, path))
                .buffer_unordered(config.concurrency)
                .collect()
                .await;
            level = next.into_iter().flatten().collect();
        }
    };
    let finished = tokio::time::timeout(config.limit, walk).await.is_ok();
    tracing::info!(
        requests = sent,
        elapsed_ms = started.elapsed().as_millis() as u64,
        complete = finished,
        "record crawl ended"
    );
}

/// Whether a templated path is, or is above, one a fixture is made from.
fn leads_to_recorded(template: &str) -> bool {
    RECORDED.iter().any(|recorded| {
        *recorded == template
            || recorded
                .strip_prefix(template)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Fetches one path; returns the concrete paths of its children.
async fn visit(upstream: &Upstream, api: &Api, config: &CrawlConfig, path: String) -> Vec<String> {
    let Ok(matched) = api.match_path(&path) else {
        return Vec::new();
    };
    let Some((_, op)) = api.operation(matched.path_index, Method::Get) else {
        return Vec::new();
    };
    let required_query = op
        .parameters
        .iter()
        .any(|(name, schema)| !schema.optional && !op.path_params.contains(name));
    if required_query {
        return Vec::new();
    }
    let request = upstream
        .uri(&format!("/api2/json{path}"))
        .map_err(|error| error.to_string())
        .and_then(|uri| {
            http::Request::get(uri)
                .header(
                    http::header::AUTHORIZATION,
                    format!("PVEAPIToken={}", config.token),
                )
                .body(super::pool::Outgoing::Empty)
                .map_err(|error| error.to_string())
        });
    let request = match request {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(operation = %op.operation_id, %error, "crawl: skipped");
            return Vec::new();
        }
    };
    let response = match tokio::time::timeout(upstream.timeout, upstream.pool.send(request)).await {
        Ok(Ok(response)) if response.status().is_success() => response,
        Ok(Ok(response)) => {
            tracing::debug!(operation = %op.operation_id, status = response.status().as_u16(), "crawl: skipped");
            return Vec::new();
        }
        _ => {
            upstream.discrepancies.upstream_failure(&op.operation_id);
            return Vec::new();
        }
    };
    let read = tokio::time::timeout(upstream.timeout, response.into_body().collect()).await;
    let Ok(Ok(bytes)) = read.map(|read| read.map(http_body_util::Collected::to_bytes)) else {
        upstream.discrepancies.upstream_failure(&op.operation_id);
        return Vec::new();
    };
    let envelope = serde_json::from_slice::<Value>(&bytes).ok();
    upstream.discrepancies.call(&op.operation_id);
    upstream
        .discrepancies
        .record(validate::reply(api, op, envelope.as_ref()));
    let Some(envelope) = envelope else {
        return Vec::new();
    };
    if let Some(recorder) = &upstream.recorder {
        recorder.observe(op, &path, None, &envelope);
    }
    let items: Vec<&serde_json::Map<String, Value>> = envelope
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .collect();
    let base = path.trim_end_matches('/');
    let mut children = Vec::new();
    for child in &api.node(matched.path_index).children {
        if !leads_to_recorded(child) {
            continue;
        }
        let segment = child.rsplit('/').next().unwrap_or_default();
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            None => children.push(format!("{base}/{segment}")),
            Some(param) => {
                for item in &items {
                    let value = match item.get(param) {
                        Some(Value::String(text)) => text.clone(),
                        Some(Value::Number(number)) => number.to_string(),
                        _ => continue,
                    };
                    children.push(format!("{base}/{}", utf8_percent_encode(&value, SEGMENT)));
                }
            }
        }
    }
    children
}
