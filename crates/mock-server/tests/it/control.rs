//! The `/_mock` control endpoints cannot be turned against the mock's host: with authentication
//! on they answer only `root@pam` (ticket with CSRF token, or a token without privilege
//! separation) or the control token; whatever the authentication, a foreign `Origin` (a web page
//! posting cross-site) or a `Host` that is not loopback (DNS rebinding) is refused, and faults are
//! JSON only and validated.

use mock_server::{Fixture, MockServer, MockServerHandle, TokenSeed, UserSeed};
use reqwest::Method;
use serde_json::{Value, json};

use crate::client;

/// The default fixture plus `alice@pve` (no privileges) and root's tokens `full` (no privilege
/// separation) and `sep` (privilege separation).
fn fixture() -> Fixture {
    let mut fixture = Fixture::default_fixture();
    fixture.users.push(UserSeed {
        userid: "alice@pve".to_owned(),
        password: Some("alice-secret".to_owned()),
        tokens: Default::default(),
        enable: true,
        groups: Vec::new(),
        totp: None,
        config: Default::default(),
    });
    let mut root_tokens = std::collections::BTreeMap::new();
    for (name, privsep) in [("full", false), ("sep", true)] {
        root_tokens.insert(
            name.to_owned(),
            TokenSeed::Full {
                secret: format!("{name}-secret"),
                privsep,
                expire: 0,
                comment: None,
            },
        );
    }
    for user in &mut fixture.users {
        if user.userid == "root@pam" {
            user.tokens = root_tokens.clone();
        }
    }
    fixture
}

async fn server() -> MockServerHandle {
    MockServer::builder()
        .seed(fixture())
        .control_token("control-secret")
        .spawn()
        .await
        .unwrap()
}

fn root_url(server: &MockServerHandle) -> String {
    server.base_url().trim_end_matches("/api2/json").to_owned()
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A ticket and CSRF token of a user.
async fn login(server: &MockServerHandle, user: &str, password: &str) -> (String, String) {
    let reply: Value = client()
        .post(format!("{}/access/ticket", server.base_url()))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = &reply["data"];
    (
        data["ticket"].as_str().unwrap().to_owned(),
        data["CSRFPreventionToken"].as_str().unwrap().to_owned(),
    )
}

fn control(server: &MockServerHandle, method: Method, path: &str) -> reqwest::RequestBuilder {
    client().request(method, format!("{}{path}", root_url(server)))
}

#[tokio::test]
async fn strangers_and_unprivileged_users_are_refused() {
    let server = server().await;
    for (method, path) in [
        (Method::GET, "/_mock/state"),
        (Method::POST, "/_mock/reset"),
        (Method::GET, "/_mock/faults"),
        (Method::DELETE, "/_mock/faults"),
    ] {
        let (status, _) = send(control(&server, method.clone(), path)).await;
        assert_eq!(status, 401, "{method} {path} without credentials");
    }
    let (ticket, csrf) = login(&server, "alice@pve", "alice-secret").await;
    let (status, body) = send(
        control(&server, Method::POST, "/_mock/reset")
            .header("Cookie", format!("PVEAuthCookie={ticket}"))
            .header("CSRFPreventionToken", csrf),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(
        control(&server, Method::GET, "/_mock/state")
            .header("Authorization", "PVEAPIToken=root@pam!sep=sep-secret"),
    )
    .await;
    assert_eq!(status, 403, "a privilege-separated root token is not root");
    let (status, _) =
        send(control(&server, Method::GET, "/_mock/state").header("Authorization", "Bearer wrong"))
            .await;
    assert_eq!(status, 401, "a wrong control token");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn root_and_the_control_token_are_served() {
    let server = server().await;
    let (ticket, csrf) = login(&server, "root@pam", "secret").await;
    let (status, _) = send(
        control(&server, Method::POST, "/_mock/reset")
            .header("Cookie", format!("PVEAuthCookie={ticket}")),
    )
    .await;
    assert_eq!(status, 401, "a ticket without its CSRF token");
    let (status, body) = send(
        control(&server, Method::POST, "/_mock/reset")
            .header("Cookie", format!("PVEAuthCookie={ticket}"))
            .header("CSRFPreventionToken", csrf),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        control(&server, Method::GET, "/_mock/state")
            .header("Authorization", "PVEAPIToken=root@pam!full=full-secret"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        control(&server, Method::GET, "/_mock/faults")
            .header("Authorization", "Bearer control-secret"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn cross_site_and_rebound_requests_are_refused_even_with_auth_off() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    // A web page posting a "simple" request (no preflight) to the mock.
    let (status, body) = send(
        control(&server, Method::POST, "/_mock/reset")
            .header("Content-Type", "text/plain")
            .header("Origin", "http://attacker.example"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // DNS rebinding: the attacker's name resolves to the loopback address.
    let (status, body) =
        send(control(&server, Method::GET, "/_mock/state").header("Host", "attacker.example"))
            .await;
    assert_eq!(status, 403, "{body}");
    let port = server.http_addr().port();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let (status, body) =
            send(control(&server, Method::GET, "/_mock/state").header("Host", host.as_str())).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    let (status, body) = send(
        control(&server, Method::GET, "/_mock/faults")
            .header("Origin", format!("http://127.0.0.1:{port}")),
    )
    .await;
    assert_eq!(status, 200, "a same-origin page: {body}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn hosts_can_be_allowed_explicitly() {
    let server = MockServer::builder()
        .auth(false)
        .allowed_hosts(["mock.test"])
        .spawn()
        .await
        .unwrap();
    let (status, body) =
        send(control(&server, Method::GET, "/_mock/state").header("Host", "mock.test:8006")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        send(control(&server, Method::GET, "/_mock/state").header("Host", "other.test")).await;
    assert_eq!(status, 403);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn faults_are_json_only_and_validated() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    let post = |body: &str, content_type: &str| {
        control(&server, Method::POST, "/_mock/faults")
            .header("Content-Type", content_type)
            .body(body.to_owned())
    };
    let fault = json!({"path": "/version", "status": 503}).to_string();
    let (status, body) = send(post(&fault, "text/plain")).await;
    assert_eq!(status, 415, "{body}");
    for bad in [
        json!({"path": "/version", "status": 200}),
        json!({"path": "/version", "status": 600}),
        json!({"path": "/version", "delay_ms": 3_600_000}),
        json!({"path": "/version", "count": 10_000_000}),
        json!({"kind": "task", "log": vec!["x"; 10_000]}),
    ] {
        let (status, body) = send(post(&bad.to_string(), "application/json")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = send(post(&fault, "application/json")).await;
    assert_eq!(status, 200, "{body}");
    server.shutdown().await.unwrap();
}
