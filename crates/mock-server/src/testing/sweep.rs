//! Sweeps over every operation of every tag through `oneshot` (no socket): no GET answers 5xx
//! for the seeded objects unless it is Proxmox's not-found, every write with its required
//! parameters answers without an internal error, every 200 reply validates against the
//! operation's `returns` schema, and a user without privileges is refused everything that has
//! a check.

use axum::body::Body;
use http::Request;
use route_metadata::Method;
use serde_json::Value;
use tower::ServiceExt;

use crate::api::Api;
use crate::http::app;
use crate::schema::validate_value;
use crate::{Fixture, MockServer, UserSeed};

/// The default fixture plus `bob@pve`, who has no role anywhere.
fn bob_without_privileges() -> Fixture {
    let mut fixture = Fixture::default_fixture();
    fixture.users.push(UserSeed {
        userid: "bob@pve".to_owned(),
        password: Some("bob-secret".to_owned()),
        tokens: Default::default(),
        enable: true,
        groups: Vec::new(),
        totp: None,
        config: Default::default(),
    });
    fixture
}

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

async fn sweep(tag: &str) {
    let state = MockServer::builder()
        .schema(tag)
        .auth(false)
        .build_state()
        .unwrap();
    let api: &Api = &state.api;
    let router = app(state.clone());
    let mut checked = 0;
    let mut failures = Vec::new();
    for op in api.meta.operations().filter(|op| op.method == Method::Get) {
        let path: String = op
            .path
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => sample(name, &op.path),
                    None => segment.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        // Only required query parameters that are simple get a value.
        let mut query = Vec::new();
        for (name, schema) in &op.parameters {
            if schema.optional || op.path_params.contains(name) {
                continue;
            }
            let value = match schema.enum_values.as_ref().and_then(|v| v.first()) {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => match schema.kind() {
                    route_metadata::SchemaType::Integer | route_metadata::SchemaType::Number => {
                        schema.minimum.map_or(1, |m| m as i64).to_string()
                    }
                    route_metadata::SchemaType::Boolean => "0".to_owned(),
                    _ => "x1".to_owned(),
                },
            };
            query.push(format!("{name}={value}"));
        }
        let uri = if query.is_empty() {
            format!("/api2/json{path}")
        } else {
            format!("/api2/json{path}?{}", query.join("&"))
        };
        let response = router
            .clone()
            .oneshot(Request::get(&uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        match status {
            200 => {
                let data = &body["data"];
                if let Err(errors) = validate_value(api, &op.returns, data) {
                    failures.push(format!(
                        "{tag} GET {uri}: reply does not validate: {errors:?}\n{data}"
                    ));
                }
                checked += 1;
            }
            400 => {}
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
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
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

async fn write_sweep(tag: &str) {
    let state = MockServer::builder()
        .schema(tag)
        .auth(false)
        .build_state()
        .unwrap();
    let api: &Api = &state.api;
    let router = app(state.clone());
    let mut failures = Vec::new();
    let mut ok = 0;
    for op in api.meta.operations().filter(|op| op.method != Method::Get) {
        let path: String = op
            .path
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => sample(name, &op.path),
                    None => segment.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        let mut form = Vec::new();
        for (name, schema) in &op.parameters {
            if schema.optional || op.path_params.contains(name) || schema.family.is_some() {
                continue;
            }
            let value = match schema.enum_values.as_ref().and_then(|v| v.first()) {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => match schema.kind() {
                    route_metadata::SchemaType::Integer | route_metadata::SchemaType::Number => {
                        schema.minimum.map_or(1, |m| m as i64).to_string()
                    }
                    route_metadata::SchemaType::Boolean => "0".to_owned(),
                    _ => "x1".to_owned(),
                },
            };
            form.push(format!(
                "{name}={}",
                percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
            ));
        }
        let request = if op.method.has_body() {
            Request::builder()
                .method(op.method.as_str())
                .uri(format!("/api2/json{path}"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(Body::from(form.join("&")))
                .unwrap()
        } else {
            let query = if form.is_empty() {
                String::new()
            } else {
                format!("?{}", form.join("&"))
            };
            Request::builder()
                .method(op.method.as_str())
                .uri(format!("/api2/json{path}{query}"))
                .body(Body::empty())
                .unwrap()
        };
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
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
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
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
        let path: String = op
            .path
            .split('/')
            .map(
                |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some("node") => "pve1".to_owned(),
                    Some("vmid") if op.path.contains("/lxc/") => "200".to_owned(),
                    Some("vmid") => "100".to_owned(),
                    Some("userid") => "root@pam".to_owned(),
                    Some(_) => "x1".to_owned(),
                    None => segment.to_owned(),
                },
            )
            .collect::<Vec<_>>()
            .join("/");
        let request = Request::builder()
            .method(op.method.as_str())
            .uri(format!("/api2/json{path}"))
            .header("Cookie", format!("PVEAuthCookie={ticket}"))
            .header("CSRFPreventionToken", &csrf)
            .body(Body::empty())
            .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let permissions = op.permissions.as_ref();
        let open = permissions
            .and_then(|p| p.get("user"))
            .and_then(Value::as_str)
            .is_some_and(|user| matches!(user, "all" | "world"));
        let creates_guest = op.method == route_metadata::Method::Post
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
            // In-handler checks (task owners) may refuse; everything else must not.
            if !op.path.contains("/tasks/") {
                failures.push(format!("{label}: unexpected 403 {body}"));
            }
        }
        if status == 403 {
            forbidden += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
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
