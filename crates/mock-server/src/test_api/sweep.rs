//! Sweeps over every operation of every tag through `oneshot` (no socket): no GET answers 5xx
//! for the seeded objects unless it is Proxmox's not-found, every write with its required
//! parameters answers without an internal error, every 200 reply validates against the
//! operation's `returns` schema, and a user without privileges is refused everything that has
//! a check.

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use http::Request;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use route_metadata::{Method, Operation, Schema, SchemaType};
use serde_json::Value;
use tower::ServiceExt;

use crate::api::Api;
use crate::http::app;
use crate::schema::validate_value;
use crate::state::AppState;
use crate::{Fixture, MockServer, UserSeed};

/// The default fixture plus `bob@pve`, who has no role anywhere.
fn bob_without_privileges() -> Fixture {
    let mut fixture = Fixture::default_fixture();
    fixture.users.push(UserSeed {
        password: Some("bob-secret".to_owned()),
        ..UserSeed::new("bob@pve")
    });
    fixture
}

/// A mock of `tag` without authentication, and its router.
fn unauthenticated(tag: &str) -> (AppState, Router) {
    let state = MockServer::builder()
        .schema(tag)
        .auth(false)
        .build_state()
        .unwrap();
    let router = app(state.clone());
    (state, router)
}

/// The value of a path parameter, naming a seeded object where there is one.
fn sample(name: &str, path: &str) -> String {
    match name {
        "node" => "pve1".to_owned(),
        "vmid" if path.contains("/lxc/") => "200".to_owned(),
        "vmid" => "100".to_owned(),
        "storage" => "local".to_owned(),
        "userid" => "root@pam".to_owned(),
        _ => "x1".to_owned(),
    }
}

/// A concrete path for a path template: each `{name}` segment becomes `value(name)`.
fn concrete_path(template: &str, value: impl Fn(&str) -> String) -> String {
    template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => value(name),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The required parameters of an operation that are not in its path.
fn required_params(op: &Operation) -> impl Iterator<Item = (&String, &Schema)> {
    op.parameters
        .iter()
        .filter(|(name, schema)| !schema.optional && !op.path_params.contains(name))
}

/// A value for a required parameter: its first enum value, a number's minimum (or 1), `0` for
/// a boolean, else `x1`.
fn sample_value(schema: &Schema) -> String {
    match schema.enum_values.as_ref().and_then(|v| v.first()) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => match schema.kind() {
            SchemaType::Integer | SchemaType::Number => {
                schema.minimum.map_or(1, |m| m as i64).to_string()
            }
            SchemaType::Boolean => "0".to_owned(),
            _ => "x1".to_owned(),
        },
    }
}

/// `path` with `pairs` as its query string (none when there are no pairs).
fn with_query(path: &str, pairs: &[String]) -> String {
    if pairs.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", pairs.join("&"))
    }
}

/// Sends a request through the router; returns the status and the JSON body (`null` when the
/// body is not JSON).
async fn send(router: &Router, request: Request<Body>) -> (u16, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Fails the test with every collected failure.
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Where Proxmox's replies disagree with its own schema, and the mock answers like Proxmox:
/// `GET /nodes/{node}/network` gives `netmask` as a prefix length (`24`, from `_cidr_split` in
/// pve-common `src/PVE/Network/Interfaces.pm`) where the schema says `ipv4mask`.
fn without_known_deviations(
    template: &str,
    mut errors: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    if template == "/nodes/{node}/network" {
        errors.retain(|key, _| !key.ends_with("netmask"));
    }
    errors
}

/// Every GET of a tag, for the seeded objects: a 200 reply validates against `returns`, a 500
/// or 404 is Proxmox's not-found, a 400 is a refused sample value.
async fn sweep(tag: &str) {
    let (state, router) = unauthenticated(tag);
    let api: &Api = &state.api;
    let mut checked = 0;
    let mut failures = Vec::new();
    for op in api.meta.operations().filter(|op| op.method == Method::Get) {
        let path = concrete_path(&op.path, |name| sample(name, &op.path));
        // Only required query parameters get a value.
        let query: Vec<String> = required_params(op)
            .map(|(name, schema)| format!("{name}={}", sample_value(schema)))
            .collect();
        let uri = with_query(&format!("/api2/json{path}"), &query);
        let (status, body) = send(&router, Request::get(&uri).body(Body::empty()).unwrap()).await;
        match status {
            200 => {
                let data = &body["data"];
                if let Err(errors) = validate_value(api, &op.returns, data)
                    .map_err(|errors| without_known_deviations(&op.path, errors))
                    .or_else(|errors| {
                        if errors.is_empty() {
                            Ok(())
                        } else {
                            Err(errors)
                        }
                    })
                {
                    failures.push(format!(
                        "{tag} GET {uri}: reply does not validate: {errors:?}\n{data}"
                    ));
                }
                checked += 1;
            }
            400 => {}
            // A console's websocket with a made-up ticket (`verify_vnc_ticket`).
            401 if body["message"] == "permission denied - invalid PVEVNC ticket\n" => {}
            // Not-found answers: a `die` (500) or, for TFA entries, 404 (`API2/TFA.pm`).
            500 | 404 => {
                let message = body["message"].as_str().unwrap_or_default().to_lowercase();
                if !(message.contains("does not exist") || message.contains("no such")) {
                    failures.push(format!("{tag} GET {uri}: {body}"));
                }
            }
            other => failures.push(format!(
                "{tag} GET {uri}: unexpected status {other}: {body}"
            )),
        }
    }
    assert_no_failures(&failures);
    assert!(checked > 100, "{tag}: only {checked} replies checked");
}

#[tokio::test]
async fn every_get_reply_validates_9_1() {
    sweep("9.1").await;
}

#[tokio::test]
async fn every_get_reply_validates_9_0() {
    sweep("9.0").await;
}

#[tokio::test]
async fn every_get_reply_validates_8_4() {
    sweep("8.4").await;
}

/// A write request: the form as a body for methods with one, else as the query.
fn write_request(method: Method, path: &str, form: &[String]) -> Request<Body> {
    let builder = Request::builder().method(method.as_str());
    if method.has_body() {
        builder
            .uri(format!("/api2/json{path}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(Body::from(form.join("&")))
            .unwrap()
    } else {
        builder
            .uri(with_query(&format!("/api2/json{path}"), form))
            .body(Body::empty())
            .unwrap()
    }
}

/// Every write of a tag with its required parameters: no internal error, no status outside
/// 400..=501, and a 200 reply validates against `returns`.
async fn write_sweep(tag: &str) {
    let (state, router) = unauthenticated(tag);
    let api: &Api = &state.api;
    let mut failures = Vec::new();
    let mut ok = 0;
    for op in api.meta.operations().filter(|op| op.method != Method::Get) {
        let path = concrete_path(&op.path, |name| sample(name, &op.path));
        let form: Vec<String> = required_params(op)
            .filter(|(_, schema)| schema.family.is_none())
            .map(|(name, schema)| {
                let value = sample_value(schema);
                format!("{name}={}", utf8_percent_encode(&value, NON_ALPHANUMERIC))
            })
            .collect();
        let (status, body) = send(&router, write_request(op.method, &path, &form)).await;
        let message = body["message"].as_str().unwrap_or_default();
        if status == 200 {
            ok += 1;
            if let Err(errors) = validate_value(api, &op.returns, &body["data"]) {
                failures.push(format!(
                    "{tag} {} {path}: reply does not validate: {errors:?}\n{body}",
                    op.method.as_str()
                ));
            }
        } else if message.contains("internal error") || !(400..=501).contains(&status) {
            failures.push(format!(
                "{tag} {} {path}: {status} {body}",
                op.method.as_str()
            ));
        }
    }
    assert_no_failures(&failures);
    assert!(ok > 50, "{tag}: only {ok} writes succeeded");
}

#[tokio::test]
async fn every_write_answers_cleanly_9_1() {
    write_sweep("9.1").await;
}

#[tokio::test]
async fn every_write_answers_cleanly_8_4() {
    write_sweep("8.4").await;
}

/// Every operation of a tag, called by a user without any privilege: everything with a `check`
/// (or without `permissions`) answers 403 before validation, everything for `user: "all"`
/// answers as usual, and nothing fails with an internal error.
async fn unprivileged_sweep(tag: &str) {
    let state = MockServer::builder()
        .schema(tag)
        .seed(bob_without_privileges())
        .build_state()
        .unwrap();
    let router = app(state.clone());
    let now = crate::auth::now();
    let ticket = state.signer.ticket("bob@pve", now);
    let csrf = state.signer.csrf_token("bob@pve", now);
    let mut failures = Vec::new();
    let mut forbidden = 0;
    for op in state.api.meta.operations() {
        // Like `sample`, except that storages stay unnamed (`x1`).
        let path = concrete_path(&op.path, |name| match name {
            "storage" => "x1".to_owned(),
            other => sample(other, &op.path),
        });
        let request = Request::builder()
            .method(op.method.as_str())
            .uri(format!("/api2/json{path}"))
            .header("Cookie", format!("PVEAuthCookie={ticket}"))
            .header("CSRFPreventionToken", &csrf)
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(&router, request).await;
        let permissions = op.permissions.as_ref();
        let open = permissions
            .and_then(|p| p.get("user"))
            .and_then(Value::as_str)
            .is_some_and(|user| matches!(user, "all" | "world"));
        let creates_guest = op.method == Method::Post
            && matches!(op.path.as_str(), "/nodes/{node}/qemu" | "/nodes/{node}/lxc");
        let label = format!("{tag} {} {}", op.method.as_str(), op.path);
        if body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("internal error")
            || status >= 502 && status != 595
        {
            failures.push(format!("{label}: {status} {body}"));
        } else if (!open || creates_guest) && status != 403 {
            failures.push(format!("{label}: expected 403, got {status} {body}"));
        } else if open && !creates_guest && status == 403 {
            // In-handler checks (`crate::access::rpcenv`: task owners, volume access, backup
            // targets, replication jobs) may refuse; everything else must not.
            let checked_inside = ["/tasks/", "/vzdump", "/content", "/cluster/replication"]
                .iter()
                .any(|part| op.path.contains(part));
            if !checked_inside {
                failures.push(format!("{label}: unexpected 403 {body}"));
            }
        }
        if status == 403 {
            forbidden += 1;
        }
    }
    assert_no_failures(&failures);
    assert!(forbidden > 300, "{tag}: only {forbidden} refusals");
}

#[tokio::test]
async fn unprivileged_users_are_refused_everywhere_9_1() {
    unprivileged_sweep("9.1").await;
}

#[tokio::test]
async fn unprivileged_users_are_refused_everywhere_8_4() {
    unprivileged_sweep("8.4").await;
}
