//! Simulation controls over HTTP: per-type task durations, request latency and failures, failing
//! tasks with log lines, guest locks, offline nodes (595/596), seed faults and the `large`
//! profile.

use std::time::{Duration, Instant};

use mock_server::{
    FaultKind, FaultSpec, Fixture, MockServer, MockServerHandle, Profile, TaskDurations,
};
use serde_json::{Value, json};

use crate::client;

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Requests against a server with authentication off.
struct Api {
    base: String,
    root: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &MockServerHandle) -> Api {
        let base = server.base_url();
        Api {
            root: base.trim_end_matches("/api2/json").to_owned(),
            base,
            http: client(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path).await
    }

    async fn post(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::POST, path).await
    }

    async fn fault(&self, spec: Value) -> u16 {
        self.http
            .post(format!("{}/_mock/faults", self.root))
            .json(&spec)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn task(&self, node: &str, upid: &str) -> Value {
        let (status, task) = self
            .get(&format!("/nodes/{node}/tasks/{}/status", encode(upid)))
            .await;
        assert_eq!(status, 200, "{task}");
        task["data"].clone()
    }

    async fn wait(&self, node: &str, upid: &str) -> Value {
        for _ in 0..200 {
            let task = self.task(node, upid).await;
            if task["status"] == "stopped" {
                return task;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("task {upid} did not finish");
    }
}

async fn server_with(durations: TaskDurations) -> MockServerHandle {
    MockServer::builder()
        .auth(false)
        .task_durations(durations)
        .spawn()
        .await
        .unwrap()
}

#[tokio::test]
async fn tasks_run_for_their_type_duration() {
    let server = server_with(TaskDurations::parse("qmstart=400ms").unwrap()).await;
    let api = Api::new(&server);
    // qmstop has no override: done at once.
    let (_, reply) = api.post("/nodes/pve1/qemu/100/status/stop").await;
    let stop = reply["data"].as_str().unwrap().to_owned();
    assert_eq!(api.task("pve1", &stop).await["status"], "stopped");
    // qmstart runs until its time has passed, and changes the guest only then.
    let started = Instant::now();
    let (_, reply) = api.post("/nodes/pve1/qemu/100/status/start").await;
    let start = reply["data"].as_str().unwrap().to_owned();
    assert_eq!(api.task("pve1", &start).await["status"], "running");
    let (_, current) = api.get("/nodes/pve1/qemu/100/status/current").await;
    assert_eq!(current["data"]["status"], "stopped");
    let task = api.wait("pve1", &start).await;
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(task["exitstatus"], "OK");
    let (_, current) = api.get("/nodes/pve1/qemu/100/status/current").await;
    assert_eq!(current["data"]["status"], "running");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn request_faults_add_latency_and_fail() {
    let server = server_with(TaskDurations::default()).await;
    let api = Api::new(&server);
    assert_eq!(
        api.fault(json!({"path": "/version", "delay_ms": 150}))
            .await,
        200
    );
    assert_eq!(
        api.fault(
            json!({"method": "GET", "path": "/nodes*", "status": 502, "message": "bad gateway\n"})
        )
        .await,
        200
    );
    let started = Instant::now();
    let (status, _) = api.get("/version").await;
    assert_eq!(status, 200, "latency only");
    assert!(started.elapsed() >= Duration::from_millis(150));
    let (status, reply) = api.get("/nodes").await;
    assert_eq!(status, 502);
    assert_eq!(reply["message"], "bad gateway\n");
    let (status, _) = api.get("/nodes").await;
    assert_eq!(status, 200, "count defaults to 1");
    let faults: Value = api
        .http
        .get(format!("{}/_mock/faults", api.root))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(faults["data"].as_array().unwrap().len(), 1, "{faults}");
    assert_eq!(faults["data"][0]["delay_ms"], 150);
    assert_eq!(api.fault(json!({"path": "/x", "status": 42})).await, 400);
    assert_eq!(api.fault(json!({"kind": "bogus"})).await, 400);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn task_faults_end_with_an_error_and_change_nothing() {
    let server = server_with(TaskDurations::default()).await;
    let api = Api::new(&server);
    let spec = json!({
        "kind": "task", "type": "qmstart", "id": 101,
        "exitstatus": "start failed: QEMU exited with code 1",
        "log": ["kvm: -drive ...: Could not open disk image"],
    });
    assert_eq!(api.fault(spec).await, 200);
    let (status, reply) = api.post("/nodes/pve2/qemu/101/status/start").await;
    assert_eq!(status, 200, "the request itself succeeds: {reply}");
    let upid = reply["data"].as_str().unwrap().to_owned();
    let task = api.wait("pve2", &upid).await;
    assert_eq!(task["exitstatus"], "start failed: QEMU exited with code 1");
    let (_, log) = api
        .get(&format!("/nodes/pve2/tasks/{}/log", encode(&upid)))
        .await;
    let lines: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["t"].as_str().unwrap())
        .collect();
    assert!(
        lines.contains(&"kvm: -drive ...: Could not open disk image"),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().copied(),
        Some("TASK ERROR: start failed: QEMU exited with code 1")
    );
    let (_, current) = api.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(current["data"]["status"], "stopped");
    // The fault fired once; the next start works.
    let (_, reply) = api.post("/nodes/pve2/qemu/101/status/start").await;
    let upid = reply["data"].as_str().unwrap().to_owned();
    assert_eq!(api.wait("pve2", &upid).await["exitstatus"], "OK");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn locks_are_set_and_cleared() {
    let server = server_with(TaskDurations::default()).await;
    let api = Api::new(&server);
    assert_eq!(
        api.fault(json!({"kind": "lock", "vmid": 101, "lock": "backup"}))
            .await,
        200
    );
    let (_, config) = api.get("/nodes/pve2/qemu/101/config").await;
    assert_eq!(config["data"]["lock"], "backup");
    let (_, current) = api.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(current["data"]["lock"], "backup");
    assert_eq!(api.fault(json!({"kind": "lock", "vmid": 101})).await, 200);
    let (_, config) = api.get("/nodes/pve2/qemu/101/config").await;
    assert!(config["data"].get("lock").is_none(), "{config}");
    assert_eq!(
        api.fault(json!({"kind": "lock", "vmid": 999, "lock": "backup"}))
            .await,
        400
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn offline_nodes_answer_595_and_show_offline() {
    let server = server_with(TaskDurations::default()).await;
    let api = Api::new(&server);
    let node_entry = |nodes: &Value, name: &str| -> Value {
        nodes["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        api.fault(json!({"kind": "node", "node": "pve2"})).await,
        200
    );
    let response = api
        .http
        .get(format!("{}/nodes/pve2/qemu", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 595);
    assert_eq!(response.status().canonical_reason(), None);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "No route to host\n");
    // Calls that are not proxied to the node still answer.
    let (status, nodes) = api.get("/nodes").await;
    assert_eq!(status, 200);
    let pve2 = node_entry(&nodes, "pve2");
    assert_eq!(pve2["status"], "offline");
    assert!(pve2.get("cpu").is_none(), "{pve2}");
    let (_, resources) = api.get("/cluster/resources").await;
    let entries = resources["data"].as_array().unwrap();
    let node = entries
        .iter()
        .find(|e| e["type"] == "node" && e["node"] == "pve2")
        .unwrap();
    assert_eq!(node["status"], "offline");
    let guest = entries.iter().find(|e| e["vmid"] == 101).unwrap();
    assert_eq!(guest["status"], "unknown");
    let (_, status) = api.get("/cluster/status").await;
    let member = status["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "pve2")
        .unwrap();
    assert_eq!(member["online"], 0);
    // 596 on request, and back online.
    api.fault(json!({"kind": "node", "node": "pve2", "status": 596}))
        .await;
    let (status, reply) = api.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 596);
    assert_eq!(reply["message"], "Connection timed out\n");
    api.fault(json!({"kind": "node", "node": "pve2", "offline": false}))
        .await;
    let (status, _) = api.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 200);
    // The entries `/nodes` kept while pve2 was offline are not shown once it is back.
    let (_, after) = api.get("/nodes").await;
    let online = node_entry(&after, "pve2");
    assert_eq!(online["status"], "online", "{online}");
    assert!(online.get("cpu").is_some(), "{online}");
    // A reset restores the seed.
    api.fault(json!({"kind": "node", "node": "pve1"})).await;
    api.http
        .post(format!("{}/_mock/reset", api.root))
        .send()
        .await
        .unwrap();
    let (status, _) = api.get("/nodes/pve1/qemu").await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn seed_faults_apply_from_the_start_and_after_a_reset() {
    let mut fixture = Fixture::default_fixture();
    fixture.faults = vec![
        FaultSpec {
            kind: FaultKind::Node,
            node: Some("pve2".to_owned()),
            ..FaultSpec::default()
        },
        FaultSpec {
            kind: FaultKind::Lock,
            vmid: Some(100),
            lock: Some("migrate".to_owned()),
            ..FaultSpec::default()
        },
        FaultSpec {
            path: Some("/version".to_owned()),
            status: Some(500),
            ..FaultSpec::default()
        },
    ];
    let server = MockServer::builder()
        .auth(false)
        .seed(fixture)
        .spawn()
        .await
        .unwrap();
    let api = Api::new(&server);
    for _ in 0..2 {
        let (status, _) = api.get("/nodes/pve2/qemu").await;
        assert_eq!(status, 595);
        let (_, config) = api.get("/nodes/pve1/qemu/100/config").await;
        assert_eq!(config["data"]["lock"], "migrate");
        let (status, _) = api.get("/version").await;
        assert_eq!(status, 500);
        let (status, _) = api.get("/version").await;
        assert_eq!(status, 200);
        api.http
            .post(format!("{}/_mock/reset", api.root))
            .send()
            .await
            .unwrap();
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn large_profile_serves_16_nodes_and_5000_guests() {
    let server = MockServer::builder()
        .auth(false)
        .profile(Profile::Large)
        .spawn()
        .await
        .unwrap();
    let api = Api::new(&server);
    let (_, nodes) = api.get("/nodes").await;
    assert_eq!(nodes["data"].as_array().unwrap().len(), 16);
    let (status, resources) = api
        .send(reqwest::Method::GET, "/cluster/resources?type=vm")
        .await;
    assert_eq!(status, 200);
    let guests = resources["data"].as_array().unwrap();
    assert_eq!(guests.len(), 5_000);
    assert!(guests.iter().any(|g| g["type"] == "lxc"));
    assert!(guests.iter().any(|g| g["status"] == "running"));
    let (_, list) = api.get("/nodes/pve16/qemu").await;
    assert!(!list["data"].as_array().unwrap().is_empty());
    server.shutdown().await.unwrap();
}
