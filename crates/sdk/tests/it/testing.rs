//! `mock_server::testing`: a connected client and an in-process mock from one call, as a user's
//! own tests would write it; and the mock's answers read the way a client reads them.

use std::time::Duration;

use mock_server::testing;
use mock_server::{FaultKind, FaultSpec, Fixture, NodeSeed};
use serde_json::Value;

#[tokio::test]
async fn one_call_gives_a_connected_client() {
    let (client, mock) = testing::start().await.expect("mock starts");
    let nodes = client.nodes().list().await.expect("nodes");
    let mut names: Vec<&str> = nodes.iter().map(|node| node.node.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["pve1", "pve2"]);
    assert!(mock.base_url().starts_with("http://127.0.0.1:"));
    assert_eq!(mock.token_id(), "root@pam!testing");

    // A second client, e.g. with other settings, reaches the same mock.
    let other = mock.client_builder().build().expect("valid client");
    let version = other.version().get().await.expect("version");
    assert!(version.version.starts_with("9."), "{version:?}");
}

#[tokio::test]
async fn schema_tag_and_seed_are_chosen() {
    let mut fixture = Fixture::default_fixture();
    fixture.nodes = vec![NodeSeed {
        name: "alpha".to_owned(),
        status: "online".to_owned(),
    }];
    fixture.guests.clear();
    let (client, _mock) = testing::builder()
        .schema("8.4")
        .seed(fixture)
        .start()
        .await
        .expect("mock starts");
    let version = client.version().get().await.expect("version");
    assert!(version.version.starts_with("8.4"), "{version:?}");
    let nodes = client.nodes().list().await.expect("nodes");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].node, "alpha");
}

#[tokio::test]
async fn faults_and_reset_are_reachable() {
    let (client, mock) = testing::builder()
        .client(|client| client.max_retries(0))
        .start()
        .await
        .expect("mock starts");
    mock.inject_fault(FaultSpec {
        kind: FaultKind::Request,
        method: Some("GET".to_owned()),
        path: Some("/nodes".to_owned()),
        status: Some(503),
        count: Some(1),
        message: Some("maintenance".to_owned()),
        ..Default::default()
    })
    .await
    .expect("fault armed");
    let error = client.nodes().list().await.expect_err("the fault fires");
    assert_eq!(error.status().map(|status| status.as_u16()), Some(503));
    assert_eq!(client.nodes().list().await.expect("once only").len(), 2);

    let upid = client
        .nodes()
        .node("pve2")
        .qemu()
        .vmid(101)
        .delete()
        .await
        .expect("deletes");
    client
        .task(&upid)
        .poll_interval(Duration::from_millis(20), Duration::from_millis(50))
        .wait(Duration::from_secs(10))
        .await
        .expect("deleted");
    assert!(
        client
            .nodes()
            .node("pve2")
            .qemu()
            .vmid(101)
            .config()
            .get()
            .await
            .expect_err("gone")
            .is_not_found()
    );
    mock.reset().await.expect("reset");
    client
        .nodes()
        .node("pve2")
        .qemu()
        .vmid(101)
        .config()
        .get()
        .await
        .expect("back after the reset");
    mock.clear_faults().await.expect("cleared");
}

#[tokio::test]
async fn dropping_the_guard_stops_the_mock() {
    let (client, mock) = testing::start().await.expect("mock starts");
    client.nodes().list().await.expect("running");
    mock.shutdown().await.expect("stops");
    let error = client.nodes().list().await.expect_err("nothing listens");
    assert!(error.is_connection(), "{error:?}");

    let (client, mock) = testing::start().await.expect("mock starts");
    drop(mock);
    let mut stopped = false;
    for _ in 0..50 {
        if client.nodes().list().await.is_err() {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stopped,
        "the mock still answers after its guard was dropped"
    );
}

/// Node status and storage status as a client reads them: numbers where Proxmox sends numbers,
/// numeric strings where it sends those, version strings and storage types of a real node.
#[tokio::test]
async fn node_and_storage_status_look_real() {
    let (client, _mock) = testing::start().await.expect("mock starts");
    let node = client.nodes().node("pve1");
    let status: Value = node
        .status()
        .get()
        .into_request()
        .send()
        .await
        .expect("node status");
    let loadavg = status["loadavg"].as_array().expect("loadavg is a list");
    assert_eq!(loadavg.len(), 3, "{status}");
    for load in loadavg {
        let text = load
            .as_str()
            .expect("a numeric string, as Proxmox sends it");
        assert!(text.parse::<f64>().is_ok(), "{text}");
    }
    let pveversion = status["pveversion"].as_str().expect("pveversion");
    assert!(
        pveversion.starts_with(&format!("pve-manager/{}.", mock_server::LATEST)),
        "{pveversion}"
    );
    let kversion = status["kversion"].as_str().expect("kversion");
    assert!(kversion.starts_with("Linux 6."), "{kversion}");
    assert_eq!(status["current-kernel"]["sysname"], "Linux");
    let memory = &status["memory"];
    let (total, used, free) = (
        memory["total"].as_u64().expect("a number"),
        memory["used"].as_u64().expect("a number"),
        memory["free"].as_u64().expect("a number"),
    );
    assert_eq!(used + free, total, "{memory}");
    let cpuinfo = &status["cpuinfo"];
    assert!(
        cpuinfo["cpus"].as_u64().is_some_and(|cpus| cpus >= 2),
        "{cpuinfo}"
    );
    assert!(
        cpuinfo["model"]
            .as_str()
            .is_some_and(|model| model.contains("Intel") || model.contains("AMD")),
        "{cpuinfo}"
    );
    let listed = client.nodes().list().await.expect("nodes");
    let pve1 = listed
        .iter()
        .find(|entry| entry.node == "pve1")
        .expect("pve1 listed");
    assert_eq!(
        serde_json::to_value(pve1).expect("serializes")["maxmem"],
        memory["total"],
        "the node list and the node status agree"
    );

    // The typed call decodes the same answer.
    node.status().get().await.expect("typed node status");

    let storage = node.storage();
    for (id, kind) in [("local", "dir"), ("local-lvm", "lvmthin")] {
        let status: Value = storage
            .storage(id)
            .status()
            .get()
            .into_request()
            .send()
            .await
            .expect("storage status");
        assert_eq!(status["type"], kind, "{id}: {status}");
        assert_eq!(status["shared"], 0, "{id}: {status}");
        let (total, used, avail) = (
            status["total"].as_u64().expect("a number"),
            status["used"].as_u64().expect("a number"),
            status["avail"].as_u64().expect("a number"),
        );
        assert_eq!(used + avail, total, "{id}: {status}");
        let typed = storage.storage(id).status().get().await.expect("typed");
        assert_eq!(
            serde_json::to_value(&typed).expect("serializes")["type"],
            kind
        );
    }
    let listed = storage.list().await.expect("storage list");
    let local_lvm = serde_json::to_value(
        listed
            .iter()
            .find(|entry| entry.storage == "local-lvm")
            .expect("local-lvm listed"),
    )
    .expect("serializes");
    assert_eq!(local_lvm["type"], "lvmthin");
}
