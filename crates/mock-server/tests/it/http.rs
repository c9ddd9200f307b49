//! End-to-end tests over sockets: login and CSRF, API tokens, the VM life cycle, tasks,
//! validation errors, 501s, bad input, faults, TLS.

use std::time::Duration;

use mock_server::{Fixture, MockServer, Store};
use serde_json::{Value, json};

use crate::{client, start};

struct Session {
    base: String,
    ticket: String,
    csrf: String,
    http: reqwest::Client,
}

impl Session {
    async fn login(base: &str) -> Session {
        let http = client();
        let reply: Value = http
            .post(format!("{base}/access/ticket"))
            .form(&[("username", "root@pam"), ("password", "secret")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Session {
            base: base.to_owned(),
            ticket: reply["data"]["ticket"].as_str().unwrap().to_owned(),
            csrf: reply["data"]["CSRFPreventionToken"]
                .as_str()
                .unwrap()
                .to_owned(),
            http,
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("Cookie", format!("PVEAuthCookie={}", self.ticket));
        if method == reqwest::Method::GET {
            builder
        } else {
            builder.header("CSRFPreventionToken", &self.csrf)
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let builder = self.request(method.clone(), path);
        let builder = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            builder.query(form)
        } else {
            builder.form(form)
        };
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, &[]).await
    }
}

#[tokio::test]
async fn login_csrf_and_ticket_errors() {
    let server = start().await;
    let base = server.base_url();
    let http = client();

    let wrong = http
        .post(format!("{base}/access/ticket"))
        .form(&[("username", "root@pam"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let body = wrong.text().await.unwrap();
    assert!(body.contains("authentication failure"));
    assert!(!body.contains("wrong"), "password echoed: {body}");

    let no_ticket = http.get(format!("{base}/nodes")).send().await.unwrap();
    assert_eq!(no_ticket.status().as_u16(), 401);

    let bad_ticket = http
        .get(format!("{base}/nodes"))
        .header("Cookie", "PVEAuthCookie=PVE:root@pam:00000000::forged")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_ticket.status().as_u16(), 401);
    assert_eq!(bad_ticket.status().canonical_reason(), Some("Unauthorized"));
    assert!(
        bad_ticket
            .text()
            .await
            .unwrap()
            .contains("permission denied - invalid PVE ticket")
    );

    // JSON login works too.
    let json_login: Value = http
        .post(format!("{base}/access/ticket"))
        .json(&json!({"username": "root", "realm": "pam", "password": "secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json_login["data"]["username"], "root@pam");

    let session = Session::login(&base).await;
    let (status, nodes) = session.get("/nodes").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = nodes["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pve1", "pve2"]);

    // A write without the CSRF header fails; a percent-encoded cookie works.
    let encoded: String =
        percent_encoding::utf8_percent_encode(&session.ticket, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let no_csrf = http
        .put(format!("{base}/nodes/pve1/qemu/100/config"))
        .header("Cookie", format!("PVEAuthCookie={encoded}"))
        .form(&[("cores", "3")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status().as_u16(), 401);
    assert!(
        no_csrf
            .text()
            .await
            .unwrap()
            .contains("Permission denied - invalid csrf token")
    );

    // Renewal: the ticket is accepted as password.
    let renewed = http
        .post(format!("{base}/access/ticket"))
        .form(&[
            ("username", "root@pam"),
            ("password", session.ticket.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(renewed.status().as_u16(), 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn expired_tickets_are_rejected() {
    let server = MockServer::builder()
        .ticket_lifetime(Duration::from_secs(1))
        .spawn()
        .await
        .unwrap();
    let session = Session::login(&server.base_url()).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _) = session.get("/version").await;
    assert_eq!(status, 401);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn api_tokens_created_through_the_api_work() {
    let server = start().await;
    let base = server.base_url();
    let session = Session::login(&base).await;
    let (status, reply) = session
        .call(
            reqwest::Method::POST,
            "/access/users/root@pam/token/ci",
            &[("privsep", "0")],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let full = reply["data"]["full-tokenid"].as_str().unwrap().to_owned();
    let secret = reply["data"]["value"].as_str().unwrap().to_owned();
    assert_eq!(full, "root@pam!ci");

    let http = client();
    let header = format!("PVEAPIToken={full}={secret}");
    let ok = http
        .get(format!("{base}/nodes/pve1/qemu"))
        .header("Authorization", &header)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // No CSRF token needed for writes.
    let write = http
        .put(format!("{base}/nodes/pve1/qemu/100/config"))
        .header("Authorization", &header)
        .form(&[("description", "via token")])
        .send()
        .await
        .unwrap();
    assert_eq!(write.status().as_u16(), 200);
    let bad = http
        .get(format!("{base}/nodes"))
        .header(
            "Authorization",
            format!("PVEAPIToken={full}=00000000-0000-4000-a000-000000000000"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 401);
    // The token is listed and its secret never shows.
    let (_, tokens) = session.get("/access/users/root@pam/token").await;
    assert!(tokens.to_string().contains("\"ci\""));
    assert!(!tokens.to_string().contains(&secret));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn vm_life_cycle() {
    let server = start().await;
    let session = Session::login(&server.base_url()).await;
    use reqwest::Method as M;

    let (status, reply) = session
        .call(
            M::POST,
            "/nodes/pve1/qemu",
            &[
                ("vmid", "9001"),
                ("name", "test-vm"),
                ("cores", "2"),
                ("memory", "2048"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let upid = reply["data"].as_str().unwrap().to_owned();
    assert!(upid.starts_with("UPID:pve1:"), "{upid}");
    assert!(upid.contains(":qmcreate:9001:root@pam:"), "{upid}");

    // Duplicate create, on any node.
    let (status, reply) = session
        .call(M::POST, "/nodes/pve2/qemu", &[("vmid", "9001")])
        .await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "VM 9001 already exists on node 'pve1'\n");

    let (_, list) = session.get("/nodes/pve1/qemu").await;
    let entry = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|vm| vm["vmid"] == 9001)
        .unwrap()
        .clone();
    assert_eq!(entry["name"], "test-vm");
    assert_eq!(entry["status"], "stopped");

    let (status, config) = session.get("/nodes/pve1/qemu/9001/config").await;
    assert_eq!(status, 200);
    assert_eq!(
        config["data"]["cores"], 2,
        "cores keeps its JSON type: {config}"
    );
    assert_eq!(config["data"]["name"], "test-vm");
    let digest = config["data"]["digest"].as_str().unwrap().to_owned();

    // Update with the right digest, delete a key; a stale digest fails.
    let (status, _) = session
        .call(
            M::PUT,
            "/nodes/pve1/qemu/9001/config",
            &[("cores", "4"), ("delete", "name"), ("digest", &digest)],
        )
        .await;
    assert_eq!(status, 200);
    let (status, reply) = session
        .call(
            M::PUT,
            "/nodes/pve1/qemu/9001/config",
            &[("cores", "8"), ("digest", &digest)],
        )
        .await;
    assert_eq!(status, 500);
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("detected modified configuration")
    );
    let (_, config) = session.get("/nodes/pve1/qemu/9001/config").await;
    assert_eq!(config["data"]["cores"], 4);
    assert!(config["data"].get("name").is_none());

    // Start, check status, stop.
    let (status, reply) = session
        .call(M::POST, "/nodes/pve1/qemu/9001/status/start", &[])
        .await;
    assert_eq!(status, 200);
    assert!(reply["data"].as_str().unwrap().contains(":qmstart:9001:"));
    let (_, current) = session.get("/nodes/pve1/qemu/9001/status/current").await;
    assert_eq!(current["data"]["status"], "running");
    assert_eq!(current["data"]["vmid"], 9001);
    let (status, reply) = session.call(M::DELETE, "/nodes/pve1/qemu/9001", &[]).await;
    assert_eq!(status, 500, "running VMs are not destroyed: {reply}");
    session
        .call(M::POST, "/nodes/pve1/qemu/9001/status/stop", &[])
        .await;

    // Delete, then not found, then delete again fails.
    let (status, reply) = session.call(M::DELETE, "/nodes/pve1/qemu/9001", &[]).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = session.get("/nodes/pve1/qemu/9001/config").await;
    assert_eq!(status, 500);
    assert_eq!(
        reply["message"],
        "Configuration file 'nodes/pve1/qemu-server/9001.conf' does not exist\n"
    );
    let (status, _) = session.call(M::DELETE, "/nodes/pve1/qemu/9001", &[]).await;
    assert_eq!(status, 500);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn tasks_are_listed_with_status_and_log() {
    let server = start().await;
    let session = Session::login(&server.base_url()).await;
    let (_, reply) = session
        .call(
            reqwest::Method::POST,
            "/nodes/pve1/lxc",
            &[
                ("vmid", "300"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
            ],
        )
        .await;
    let upid = reply["data"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"))
        .to_owned();
    assert!(upid.contains(":vzcreate:300:"));
    let encoded: String =
        percent_encoding::utf8_percent_encode(&upid, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let (status, task) = session
        .get(&format!("/nodes/pve1/tasks/{encoded}/status"))
        .await;
    assert_eq!(status, 200, "{task}");
    assert_eq!(task["data"]["status"], "stopped");
    assert_eq!(task["data"]["exitstatus"], "OK");
    assert_eq!(task["data"]["upid"], upid.as_str());
    let (_, log) = session
        .get(&format!("/nodes/pve1/tasks/{encoded}/log"))
        .await;
    assert_eq!(
        log["data"].as_array().unwrap().last().unwrap()["t"],
        "TASK OK"
    );
    let (_, tasks) = session.get("/nodes/pve1/tasks").await;
    assert!(
        tasks["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["upid"] == upid.as_str())
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn delayed_tasks_apply_their_effect_when_they_end() {
    let server = MockServer::builder()
        .task_delay(Duration::from_millis(300))
        .spawn()
        .await
        .unwrap();
    let session = Session::login(&server.base_url()).await;
    let (_, reply) = session
        .call(
            reqwest::Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "777")],
        )
        .await;
    let upid = reply["data"].as_str().unwrap().to_owned();
    let encoded: String =
        percent_encoding::utf8_percent_encode(&upid, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    let mut finished = false;
    for _ in 0..100 {
        let (_, task) = session
            .get(&format!("/nodes/pve1/tasks/{encoded}/status"))
            .await;
        if task["data"]["status"] == "stopped" {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(finished);
    let (status, _) = session.get("/nodes/pve1/qemu/777/config").await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn validation_errors_and_not_implemented() {
    let server = start().await;
    let session = Session::login(&server.base_url()).await;
    let response = session
        .request(reqwest::Method::POST, "/nodes/pve1/qemu")
        .form(&[("vmid", "abc"), ("bogus", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"], Value::Null);
    assert_eq!(
        body["errors"]["vmid"],
        "type check ('integer') failed - got 'abc'"
    );
    assert_eq!(
        body["errors"]["bogus"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    let (status, body) = session
        .call(reqwest::Method::POST, "/nodes/pve1/qemu", &[])
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["vmid"],
        "property is missing and it is not optional"
    );
    let (status, body) = session
        .call(
            reqwest::Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "100"), ("cores", "0")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"]["cores"],
        "value must have a minimum value of 1"
    );
    let (status, body) = session
        .call(
            reqwest::Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "9002"), ("net0", "virtio,bridge=vmbr0,bogus=1")],
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["errors"]["net0"]
            .as_str()
            .unwrap()
            .starts_with("invalid format - "),
        "{body}"
    );

    let (status, body) = session.get("/foo").await;
    assert_eq!(status, 501);
    assert_eq!(body["message"], "Method 'GET /foo' not implemented");
    let (status, body) = session.call(reqwest::Method::PUT, "/version", &[]).await;
    assert_eq!(status, 501);
    assert_eq!(body["message"], "Method 'PUT /version' not implemented");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_input_never_causes_a_500() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    let base = server.base_url();
    let http = client();
    let cases: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            http.post(format!("{base}/nodes/pve1/qemu"))
                .header("Content-Type", "application/json")
                .body("{\"vmid\": 1"),
            400,
        ),
        (
            http.post(format!("{base}/nodes/pve1/qemu"))
                .header("Content-Type", "application/json")
                .body("[1,2]"),
            400,
        ),
        (
            http.post(format!("{base}/nodes/pve1/qemu"))
                .header("Content-Type", "application/json")
                .body(format!(
                    "{{\"vmid\": {}1{}}}",
                    "[".repeat(200),
                    "]".repeat(200)
                )),
            400,
        ),
        (
            http.post(format!("{base}/nodes/pve1/qemu"))
                .body(vec![b'v', b'm', b'i', b'd', b'=', 0xff, 0xfe]),
            400,
        ),
        // pveproxy's `$limit_max_post` is 512 KiB: a 70 KB body is read (and its parameter
        // refused), a larger one answers `501 for data too large`.
        (
            http.post(format!("{base}/nodes/pve1/qemu"))
                .body("x".repeat(70_000)),
            400,
        ),
        (
            http.post(format!("{base}/nodes/pve1/qemu"))
                .body("x".repeat(600_000)),
            501,
        ),
        // Only PUT and POST carry a body.
        (http.get(format!("{base}/version")).body("vmid=100"), 501),
        (http.get(format!("{base}/nodes/pve1%00/qemu")), 400),
        (http.get(format!("{base}/nodes/..%2Fetc/qemu")), 400),
        (
            http.get(format!("{base}/nodes/{}/qemu", "a".repeat(10_000))),
            400,
        ),
        (
            http.get(format!(
                "{base}/nodes/pve1'%3B%20DROP%20TABLE%20objects%3B--/qemu"
            )),
            400,
        ),
        (
            http.post(format!("{base}/nodes/pve1/qemu"))
                .form(&[("vmid", "100'; DROP TABLE objects;--")]),
            400,
        ),
    ];
    for (index, (request, expected)) in cases.into_iter().enumerate() {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "case {index}");
    }
    let state: Value = http
        .get(format!(
            "{}/_mock/state",
            base.trim_end_matches("/api2/json")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(state["data"]["objects"].get("/nodes/pve1/qemu/1").is_none());
    assert!(
        state["data"]["objects"]
            .get("/nodes/pve1/qemu/100")
            .is_some()
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn faults_reset_state_and_openapi() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    let root = server.base_url().trim_end_matches("/api2/json").to_owned();
    let http = client();
    let added = http
        .post(format!("{root}/_mock/faults"))
        .json(&json!({"method": "GET", "path": "/version", "status": 503, "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 200);
    for expected in [503, 503, 200] {
        let response = http
            .get(format!("{}/version", server.base_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), expected);
    }
    http.delete(format!("{}/nodes/pve1/qemu/101", server.base_url()))
        .send()
        .await
        .unwrap();
    let reply = http
        .delete(format!("{}/nodes/pve2/qemu/101", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    http.post(format!("{root}/_mock/reset"))
        .send()
        .await
        .unwrap();
    let config = http
        .get(format!("{}/nodes/pve2/qemu/101/config", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status().as_u16(), 200);

    assert_eq!(
        http.get(format!("{root}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let openapi: Value = http
        .get(format!("{root}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let urls: Vec<&str> = openapi["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert!(urls.contains(&server.base_url().as_str()));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn https_with_the_generated_certificate() {
    let server = start().await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificate =
        reqwest::Certificate::from_pem(server.tls_certificate_pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([certificate])
        .build()
        .unwrap();
    let url = server.https_base_url().replace("127.0.0.1", "localhost");
    let response = http
        .post(format!("{url}/access/ticket"))
        .form(&[("username", "root@pam"), ("password", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn sqlite_state_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("mock-server-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("state.db");
    let server = MockServer::builder()
        .store(Store::Sqlite(db.clone()))
        .auth(false)
        .spawn()
        .await
        .unwrap();
    let http = client();
    let created = http
        .post(format!("{}/nodes/pve1/qemu", server.base_url()))
        .form(&[("vmid", "4242"), ("cores", "3")])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 200);
    let pem = server.tls_certificate_pem().to_owned();
    server.shutdown().await.unwrap();
    let server = MockServer::builder()
        .store(Store::Sqlite(db))
        .auth(false)
        .spawn()
        .await
        .unwrap();
    let config: Value = http
        .get(format!("{}/nodes/pve1/qemu/4242/config", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["data"]["cores"], 3);
    assert_eq!(server.tls_certificate_pem(), pem, "certificate reused");
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The key that signs tickets is kept in the state (written with the seed): a ticket and its
/// CSRF token from before a restart still work after it, while a state reset by another seed
/// (which clears the metadata) signs with a new key and refuses the old ticket.
#[tokio::test]
async fn tickets_survive_a_restart_but_not_a_reset() {
    let dir = std::env::temp_dir().join(format!("mock-server-it-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("state.db");
    let spawn = |seed: Option<Fixture>| {
        let mut builder = MockServer::builder().store(Store::Sqlite(db.clone()));
        if let Some(seed) = seed {
            builder = builder.seed(seed);
        }
        builder.spawn()
    };
    let server = spawn(None).await.unwrap();
    let before = Session::login(&server.base_url()).await;
    assert_eq!(before.get("/version").await.0, 200);
    server.shutdown().await.unwrap();

    let server = spawn(None).await.unwrap();
    let after = Session {
        base: server.base_url(),
        ticket: before.ticket.clone(),
        csrf: before.csrf.clone(),
        http: client(),
    };
    assert_eq!(after.get("/version").await.0, 200, "ticket after a restart");
    let (status, reply) = after
        .call(
            reqwest::Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "4343")],
        )
        .await;
    assert_eq!(status, 200, "CSRF token after a restart: {reply}");
    server.shutdown().await.unwrap();

    let other =
        Fixture::parse("cluster: lab\nnodes:\n  - name: pve1\nusers:\n  - userid: root@pam\n")
            .unwrap();
    let server = spawn(Some(other)).await.unwrap();
    let reset = Session {
        base: server.base_url(),
        ticket: before.ticket.clone(),
        csrf: before.csrf.clone(),
        http: client(),
    };
    assert_eq!(reset.get("/version").await.0, 401, "ticket after a reset");
    assert_eq!(
        Session::login(&server.base_url())
            .await
            .get("/version")
            .await
            .0,
        200
    );
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn custom_fixture_replaces_the_default() {
    let fixture =
        Fixture::parse("cluster: lab\nnodes:\n  - name: n1\nusers:\n  - userid: root@pam\n")
            .unwrap();
    let server = MockServer::builder()
        .seed(fixture)
        .auth(false)
        .schema("8.4")
        .spawn()
        .await
        .unwrap();
    let nodes: Value = client()
        .get(format!("{}/nodes", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(nodes["data"].as_array().unwrap().len(), 1);
    assert_eq!(nodes["data"][0]["node"], "n1");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn clone_and_migrate_move_guests() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    let base = server.base_url();
    let http = client();
    let cloned = http
        .post(format!("{base}/nodes/pve2/qemu/101/clone"))
        .form(&[("newid", "555"), ("name", "db02")])
        .send()
        .await
        .unwrap();
    assert_eq!(cloned.status().as_u16(), 200);
    let config: Value = http
        .get(format!("{base}/nodes/pve2/qemu/555/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["data"]["name"], "db02");
    let migrated = http
        .post(format!("{base}/nodes/pve2/qemu/555/migrate"))
        .form(&[("target", "pve1")])
        .send()
        .await
        .unwrap();
    assert_eq!(migrated.status().as_u16(), 200);
    let moved = http
        .get(format!("{base}/nodes/pve1/qemu/555/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status().as_u16(), 200);
    let gone = http
        .get(format!("{base}/nodes/pve2/qemu/555/config"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 500);
    let resources: Value = http
        .get(format!("{base}/cluster/resources?type=vm"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = resources["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"qemu/555") && ids.contains(&"lxc/200"),
        "{ids:?}"
    );
    server.shutdown().await.unwrap();
}

/// pveproxy's answers to bodies it does not read (`AnyEvent.pm`).
#[tokio::test]
async fn oversized_and_unexpected_bodies_answer_like_pveproxy() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    let http = client();
    let base = server.base_url();
    let response = http
        .post(format!("{base}/pools"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("poolid=p1&comment={}", "c".repeat(600 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 501);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "for data too large\n");
    let response = http
        .delete(format!("{base}/pools/p1"))
        .body("force=1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 501);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "Unexpected content for method 'DELETE'\n");
    server.shutdown().await.unwrap();
}

/// A task still running when the mock stops ends, on the next start, the way Proxmox ends a task
/// whose worker is gone: `unexpected status` (`active_workers`, `PVE::UPID::read_status`).
#[tokio::test]
async fn running_tasks_end_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("mock-server-tasks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("state.db");
    let builder = MockServer::builder()
        .store(Store::Sqlite(db.clone()))
        .auth(false)
        .task_delay(Duration::from_secs(3600));
    let server = builder.clone().spawn().await.unwrap();
    let http = client();
    let started: Value = http
        .post(format!(
            "{}/nodes/pve2/qemu/101/status/start",
            server.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let upid = started["data"].as_str().unwrap().to_owned();
    let encoded = percent_encoding::utf8_percent_encode(&upid, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let status_url = |base: &str| format!("{base}/nodes/pve2/tasks/{encoded}/status");
    let status: Value = http
        .get(status_url(&server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["data"]["status"], "running");
    server.shutdown().await.unwrap();
    let server = builder.spawn().await.unwrap();
    let status: Value = http
        .get(status_url(&server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["data"]["status"], "stopped", "{status}");
    assert_eq!(status["data"]["exitstatus"], "unexpected status");
    let guest: Value = http
        .get(format!(
            "{}/nodes/pve2/qemu/101/status/current",
            server.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        guest["data"]["status"], "stopped",
        "the start never happened"
    );
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node keeps a bounded task history (`task_history`, about what Proxmox's rotated task index
/// lists by default): the oldest finished tasks go, the newest stay.
#[tokio::test]
async fn task_history_is_bounded() {
    let server = MockServer::builder()
        .auth(false)
        .task_history(5)
        .spawn()
        .await
        .unwrap();
    let http = client();
    let mut upids = Vec::new();
    for _ in 0..12 {
        let reply: Value = http
            .post(format!("{}/nodes/pve1/apt/update", server.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        upids.push(reply["data"].as_str().unwrap().to_owned());
    }
    let tasks: Value = http
        .get(format!("{}/nodes/pve1/tasks?limit=100", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = tasks["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|task| task["upid"].as_str())
        .collect();
    assert!(listed.len() <= 6, "{listed:?}");
    assert!(listed.contains(&upids[11].as_str()), "the newest stays");
    assert!(!listed.contains(&upids[0].as_str()), "the oldest goes");
    server.shutdown().await.unwrap();
}

/// A client that connects and sends nothing (or never finishes its TLS handshake) is
/// disconnected after the header timeout instead of holding the connection for ever.
#[tokio::test]
async fn silent_connections_are_closed() {
    use tokio::io::AsyncReadExt;

    let server = MockServer::builder()
        .auth(false)
        .header_timeout(Duration::from_millis(300))
        .spawn()
        .await
        .unwrap();
    for address in [server.http_addr(), server.https_addr()] {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut buffer = [0u8; 256];
        // The bound only keeps a broken build from hanging the suite; the server closes the
        // connection long before it.
        let read = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut buffer))
            .await
            .unwrap_or_else(|_| panic!("{address}: the connection stayed open"));
        // hyper answers a header timeout with `408` before closing; TLS just closes.
        match read {
            Ok(0) | Err(_) => {}
            Ok(n) => {
                let text = String::from_utf8_lossy(&buffer[..n]);
                assert!(text.starts_with("HTTP/1.1 408"), "{address}: {text}");
            }
        }
    }
    // The server still answers.
    let reply = client()
        .get(format!("{}/version", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    server.shutdown().await.unwrap();
}

/// With `auth_failure_delay` (pveproxy: 3 s), failed authentications and failed logins still get
/// their usual replies, only later. (No timing assertion: the suite must not depend on load.)
#[tokio::test]
async fn delayed_auth_failures_still_answer() {
    let server = MockServer::builder()
        .auth_failure_delay(Duration::from_millis(50))
        .spawn()
        .await
        .unwrap();
    let http = client();
    let base = server.base_url();
    let response = http.get(format!("{base}/nodes")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let response = http
        .post(format!("{base}/access/ticket"))
        .form(&[("username", "root@pam"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    // Successful calls are not delayed and work as before.
    let session = Session::login(&base).await;
    assert_eq!(session.get("/version").await.0, 200);
    server.shutdown().await.unwrap();
}

/// Sends raw bytes on a new connection and reads until the server closes it (bounded so that a
/// broken build cannot hang the suite). Returns what came back.
async fn raw_exchange(address: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection stayed open");
    String::from_utf8_lossy(&reply).into_owned()
}

/// The status line, the headers (lower-case names) and the body of a raw reply.
fn split_reply(reply: &str) -> (String, Vec<(String, String)>, String) {
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((reply, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Requests hyper would refuse with an empty `400`/`414`/`431` get pveproxy's answers
/// (`AnyEvent.pm`: `push_request_header`, `unshift_read_header`, `process_header`): the message
/// as status reason and body, no `Content-Type`, `Connection: close`; header floods are closed
/// without a reply.
#[tokio::test]
async fn malformed_requests_get_pveproxys_answers() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    let address = server.http_addr();
    let cases: [(&[u8], &str, &str); 7] = [
        (b"garbage\r\n\r\n", "HTTP/1.0 400 bad request", "bad request"),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "HTTP/1.0 506 http protocol version 2.0 not supported",
            "http protocol version 2.0 not supported",
        ),
        (
            b"GET user@evil/api2/json/version HTTP/1.1\r\n\r\n",
            "HTTP/1.0 400 invalid url",
            "invalid url",
        ),
        (
            b"GET /api2/json/version HTTP/1.1\r\nHost: x\r\n: nameless\r\n\r\n",
            "HTTP/1.1 506 unable to parse request header",
            "unable to parse request header",
        ),
        (
            b"POST /api2/json/pools HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nx=1&y\r\n0\r\n\r\n",
            "HTTP/1.1 501 chunked transfer encoding not supported",
            "chunked transfer encoding not supported",
        ),
        (
            b"POST /api2/json/pools HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 3\r\n\r\nabc",
            "HTTP/1.1 501 Unknown transfer encoding 'gzip'",
            "Unknown transfer encoding 'gzip'",
        ),
        (
            b"PATCH /api2/json/version HTTP/1.1\r\n\r\n",
            "HTTP/1.1 501 method 'PATCH' not available",
            "",
        ),
    ];
    for (request, status, body) in cases {
        let reply = raw_exchange(address, request).await;
        let (got_status, headers, got_body) = split_reply(&reply);
        assert_eq!(got_status, status, "{reply}");
        assert_eq!(got_body, body, "{reply}");
        assert_eq!(header(&headers, "connection"), Some("close"), "{reply}");
        assert_eq!(header(&headers, "content-type"), None, "{reply}");
        assert_eq!(header(&headers, "server"), Some("pve-api-daemon/3.0"));
        assert_eq!(header(&headers, "pragma"), Some("no-cache"));
    }
    // A target longer than hyper takes: the mock's own refusal, in the same shape.
    let long = format!("GET /api2/json/{} HTTP/1.1\r\n\r\n", "a".repeat(70_000));
    let (status, _, body) = split_reply(&raw_exchange(address, long.as_bytes()).await);
    assert_eq!(status, "HTTP/1.1 414 request URI too long");
    assert_eq!(body, "request URI too long");
    // 63 header lines, or 8 KiB of them: pveproxy dies in its read callback and never answers.
    let many: String = (0..63).map(|i| format!("X-H{i}: v\r\n")).collect();
    let flood = format!("GET /api2/json/version HTTP/1.1\r\n{many}\r\n");
    assert_eq!(raw_exchange(address, flood.as_bytes()).await, "");
    let large = format!(
        "GET /api2/json/version HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "v".repeat(9_000)
    );
    assert_eq!(raw_exchange(address, large.as_bytes()).await, "");
    // Just under the limits, the request is served.
    let fewer: String = (0..61).map(|i| format!("X-H{i}: v\r\n")).collect();
    let fine = format!("GET /api2/json/version HTTP/1.1\r\n{fewer}Connection: close\r\n\r\n");
    let reply = raw_exchange(address, fine.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    // Folded header lines are joined, odd characters in the target escaped, as Perl does.
    let folded =
        b"GET /api2/json/version?_dc=<a> HTTP/1.1\r\nX-Folded: a\r\n  b\r\nConnection: close\r\n\r\n";
    let reply = raw_exchange(address, folded).await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    server.shutdown().await.unwrap();
}

/// Pipelined requests stay in order: a refused request after a good one is answered after it.
#[tokio::test]
async fn refusals_keep_the_order_of_pipelined_requests() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    let reply = raw_exchange(
        server.http_addr(),
        b"GET /api2/json/version HTTP/1.1\r\nHost: x\r\n\r\nGET /api2/json/version HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await;
    let first = reply.find("HTTP/1.1 200 ").unwrap();
    let second = reply
        .find("HTTP/1.1 501 chunked transfer encoding not supported")
        .unwrap();
    assert!(first < second, "{reply}");
    server.shutdown().await.unwrap();
}

/// A `multipart/form-data` upload body: `content`, then the file part named `filename`.
fn upload_body(boundary: &str, content: &str, file_name: &str, size: usize) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"content\"\r\n\r\n{content}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.resize(body.len() + size, 0x5a);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// Uploads are not limited like other bodies: 5 MiB and 64 MiB arrive, streamed, and their
/// size is recorded. They need no CSRF token (`auth_handler` skips it for uploads).
#[tokio::test]
async fn large_uploads_stream_through() {
    let server = start().await;
    let session = Session::login(&server.base_url()).await;
    let boundary = "mock-upload-boundary-1234";
    for (name, size) in [("five.iso", 5 << 20), ("sixty-four.iso", 64 << 20)] {
        let response = session
            .http
            .post(format!("{}/nodes/pve1/storage/local/upload", session.base))
            .header("Cookie", format!("PVEAuthCookie={}", session.ticket))
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(upload_body(boundary, "iso", name, size))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let upid: Value = response.json().await.unwrap();
        assert_eq!(status, 200, "{name}: {upid}");
        let upid = upid["data"].as_str().unwrap().to_owned();
        let path = format!("/nodes/pve1/tasks/{}/status", upid.replace(':', "%3A"));
        for _ in 0..200 {
            if session.get(&path).await.1["data"]["status"] == "stopped" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, info) = session
            .get(&format!(
                "/nodes/pve1/storage/local/content/local%3Aiso%2F{name}"
            ))
            .await;
        assert_eq!(status, 200, "{info}");
        assert_eq!(info["data"]["size"], size as u64, "{info}");
    }
    server.shutdown().await.unwrap();
}

/// Sends a request head announcing a 1 GiB body and a few bytes of it, and reads the reply
/// that arrives while the body is still incomplete.
async fn reply_before_body(address: std::net::SocketAddr, path: &str, cookie: &str) -> String {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\n{cookie}Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {}\r\n\r\n--b0undary\r\n",
        1u64 << 30
    );
    raw_exchange(address, head.as_bytes()).await
}

/// An upload is authenticated and its permission (`Datastore.AllocateTemplate` on the storage)
/// checked from its head, before any of its body is read, as `auth_handler` does: a 1 GiB body
/// gets its 401 or 403 at once. An upload pveproxy cannot parse ends without a reply; other
/// bodies in multipart form are refused (506).
#[tokio::test]
async fn uploads_are_refused_before_their_body() {
    let mut fixture = Fixture::default_fixture();
    fixture.users.push(mock_server::UserSeed {
        userid: "bob@pve".to_owned(),
        password: Some("bob-secret".to_owned()),
        tokens: Default::default(),
        enable: true,
        groups: Vec::new(),
        totp: None,
        config: Default::default(),
    });
    let server = MockServer::builder().seed(fixture).spawn().await.unwrap();
    let base = server.base_url();
    let address = server.http_addr();
    let upload = "/api2/json/nodes/pve1/storage/local/upload";

    let reply = reply_before_body(address, upload, "").await;
    assert!(reply.starts_with("HTTP/1.1 401 "), "{reply}");

    let bob: Value = client()
        .post(format!("{base}/access/ticket"))
        .form(&[("username", "bob@pve"), ("password", "bob-secret")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cookie = format!(
        "Cookie: PVEAuthCookie={}\r\n",
        bob["data"]["ticket"].as_str().unwrap()
    );
    let reply = reply_before_body(address, upload, &cookie).await;
    assert!(
        reply.starts_with(
            "HTTP/1.1 403 Permission check failed (/storage/local, Datastore.AllocateTemplate)"
        ),
        "{reply}"
    );

    // pveproxy `die`s without a reply on an upload that is not multipart, or names a
    // `tmpfilename` in its query.
    let session = Session::login(&base).await;
    let root = format!("Cookie: PVEAuthCookie={}\r\n", session.ticket);
    let form = format!(
        "POST {upload} HTTP/1.1\r\nHost: x\r\n{root}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\ncontent=iso"
    );
    assert_eq!(raw_exchange(address, form.as_bytes()).await, "");
    let sneaky = format!(
        "POST {upload}?tmpfilename=/etc/passwd HTTP/1.1\r\nHost: x\r\n{root}Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 4\r\n\r\n--b-"
    );
    assert_eq!(raw_exchange(address, sneaky.as_bytes()).await, "");

    // Elsewhere a multipart body is refused before it is read.
    let response = session
        .request(reqwest::Method::POST, "/pools")
        .header("Content-Type", "multipart/form-data; boundary=b")
        .body("--b--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 506);
    server.shutdown().await.unwrap();
}

/// A prepared server (state built, listeners bound, on a thread without a runtime, as the
/// binary does it) takes connections before it serves: a request sent then waits in the
/// backlog and is answered once the server is spawned, over HTTP and over HTTPS, and a
/// persistent state reopened the same way keeps its guests.
#[tokio::test]
async fn a_prepared_server_answers_requests_that_arrived_before_it_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = std::env::temp_dir().join(format!("mock-server-prepared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let builder = MockServer::builder().store(Store::Sqlite(dir.join("state.db")));
    let prepared = std::thread::spawn(move || builder.prepare())
        .join()
        .unwrap()
        .unwrap();
    let mut early = tokio::net::TcpStream::connect(prepared.http_addr())
        .await
        .unwrap();
    early
        .write_all(b"GET /api2/json/version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificate =
        reqwest::Certificate::from_pem(prepared.tls_certificate_pem().as_bytes()).unwrap();
    let pinned = reqwest::Client::builder()
        .tls_certs_only([certificate])
        .build()
        .unwrap();
    let https = format!(
        "https://localhost:{}/api2/json",
        prepared.https_addr().port()
    );
    let early_tls = tokio::spawn(async move {
        pinned
            .get(format!("{https}/access/domains"))
            .send()
            .await
            .map(|reply| reply.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let server = prepared.spawn().await.unwrap();
    let mut reply = String::new();
    early.read_to_string(&mut reply).await.unwrap();
    // Unauthenticated: the mock answers 401 like pveproxy, which shows it was served.
    assert!(reply.starts_with("HTTP/1.1 401 "), "{reply}");
    assert_eq!(early_tls.await.unwrap().unwrap(), 200);
    let session = Session::login(&server.base_url()).await;
    let (status, guests) = session.get("/nodes/pve1/qemu").await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();

    let again = MockServer::builder()
        .store(Store::Sqlite(dir.join("state.db")))
        .prepare()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let session = Session::login(&again.base_url()).await;
    assert_eq!(session.get("/nodes/pve1/qemu").await, (200, guests));
    again.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
