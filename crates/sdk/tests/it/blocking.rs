//! The blocking wrapper (feature `blocking`), driven from a plain `#[test]`.

use std::time::Duration;

use proxmox_sdk::Upid;
use serde_json::Value;

use crate::{ROOT_PASSWORD, mock};

#[test]
fn blocking_client_creates_and_waits() {
    // The mock needs a runtime of its own; the blocking client brings its own too.
    let server_runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = server_runtime
        .block_on(mock().spawn())
        .expect("mock starts");
    let client = proxmox_sdk::Client::builder()
        .base_url(server.base_url())
        .password("root@pam", ROOT_PASSWORD)
        .task_poll_interval(Duration::from_millis(20), Duration::from_millis(100))
        .build_blocking()
        .expect("valid client");
    let nodes: Vec<Value> = client.get("/nodes", &()).expect("nodes");
    assert_eq!(nodes.len(), 2);
    let upid: Upid = client
        .post("/nodes/pve2/qemu/101/status/start", &())
        .expect("start");
    assert_eq!(
        client
            .wait_task(&upid, Duration::from_secs(10))
            .expect("finishes"),
        "OK"
    );
    assert!(!client.task_log(&upid).expect("log").is_empty());
    server_runtime
        .block_on(server.shutdown())
        .expect("shutdown");
}
