//! The SDK's typed API through real mode (`mock-server --upstream`): the same flow (log in,
//! list, create a VM, wait for its task, read its config, start, stop, delete) driven once
//! against the upstream mock directly and once through a proxy in front of it gives the same
//! transcript, and the proxy finds nothing wrong with the clean traffic.

use std::time::Duration;

use mock_server::{MockServer, MockServerHandle, Store, UpstreamConfig};
use proxmox_sdk::Client;
use proxmox_sdk::shared_types::nodes::{
    MemoryConfig, NodesQemuCreateVmParams, QemuNetConfig, QemuNetModel,
};
use proxmox_sdk::shared_types::{Indexed, PveBool};
use serde_json::{Value, json};

use crate::{http_client, start};

/// The SDK logged in as `root@pam` (password, so the login passes through the proxy too).
fn client(base_url: String) -> Client {
    Client::builder()
        .base_url(base_url)
        .password("root@pam", "secret")
        .build()
        .unwrap()
}

/// Runs the flow on VM `vmid` and writes down what the SDK saw, with the VM's own ID and
/// what moves with time (UPIDs, MAC addresses) left out.
async fn flow(client: &Client, vmid: u32) -> Vec<Value> {
    let mut transcript = Vec::new();
    let version = client.version().get().await.unwrap();
    transcript.push(json!({"version": version.release, "repoid": version.repoid}));
    let mut nodes: Vec<String> = client
        .nodes()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|node| node.node)
        .collect();
    nodes.sort();
    transcript.push(json!({ "nodes": nodes }));

    let qemu = client.nodes().node("pve1").qemu();
    let nic = QemuNetConfig {
        bridge: Some("vmbr0".to_owned()),
        ..QemuNetConfig::new(QemuNetModel::Virtio)
    };
    let params = NodesQemuCreateVmParams {
        name: Some("through".to_owned()),
        cores: Some(2),
        memory: Some(MemoryConfig::new(1024)),
        start: Some(PveBool(false)),
        net: Indexed::from([(0, nic)]),
        ..NodesQemuCreateVmParams::new(vmid)
    };
    let upid = qemu.create(&params).await.unwrap();
    transcript.push(json!({"create": [upid.node, upid.worker_type]}));
    let exit = client
        .task(&upid)
        .wait(Duration::from_secs(30))
        .await
        .unwrap();
    transcript.push(json!({ "create_exit": exit.to_string() }));

    let listed = qemu.list().await.unwrap();
    let others: usize = listed.iter().filter(|vm| vm.vmid != vmid).count();
    let new = listed.iter().find(|vm| vm.vmid == vmid).unwrap();
    transcript.push(json!({
        "listed": true,
        "others": others,
        "name": new.name,
        "status": new.status,
    }));

    let vm = qemu.vmid(vmid);
    let config = vm.config().get().await.unwrap();
    let net0 = config.net.get(0).unwrap();
    transcript.push(json!({
        "cores": config.cores,
        "name": config.name,
        "net0_model": net0.model.to_string(),
        "net0_bridge": net0.bridge,
        "net0_has_mac": net0.macaddr.is_some(),
    }));

    for action in ["start", "stop"] {
        let upid = match action {
            "start" => vm.status().start().await.unwrap(),
            _ => vm.status().stop().await.unwrap(),
        };
        let exit = client
            .task(&upid)
            .wait(Duration::from_secs(30))
            .await
            .unwrap();
        let current = vm.status().current().get().await.unwrap();
        transcript.push(json!({
            "action": action,
            "worker_type": upid.worker_type,
            "exit": exit.to_string(),
            "status": current.status,
        }));
    }

    let upid = vm.delete().await.unwrap();
    let exit = client
        .task(&upid)
        .wait(Duration::from_secs(30))
        .await
        .unwrap();
    let error = vm.config().get().await.unwrap_err();
    transcript.push(json!({
        "delete": [upid.worker_type, exit.to_string()],
        "then_config": error.status().map(|status| status.as_u16()),
    }));
    transcript
}

/// A proxy in front of `upstream` (its own authentication off: only `/_mock/` uses it).
async fn proxy(upstream: &MockServerHandle) -> MockServerHandle {
    let root = upstream
        .base_url()
        .trim_end_matches("/api2/json")
        .to_owned();
    MockServer::builder()
        .auth(false)
        .upstream(UpstreamConfig::new(root))
        .spawn()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_typed_sdk_behaves_the_same_through_the_proxy() {
    let upstream = start(Store::Memory).await;
    let proxy = proxy(&upstream).await;

    let direct = flow(&client(upstream.base_url()), 9040).await;
    let through = flow(&client(proxy.base_url()), 9041).await;
    assert_eq!(through, direct);

    let root = proxy.base_url().trim_end_matches("/api2/json").to_owned();
    let report: Value = http_client()
        .get(format!("{root}/_mock/discrepancies"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let totals = &report["data"]["totals"];
    assert_eq!(totals["request_problems"], 0, "{report:#}");
    assert_eq!(totals["reply_problems"], 0, "{report:#}");
    assert_eq!(totals["refused"], 0, "{report:#}");
    assert_eq!(totals["replies_not_validated"], 0, "{report:#}");
    // The one failure is the last step's: the deleted VM's config, which Proxmox answers 500.
    assert_eq!(totals["upstream_failures"], 1, "{report:#}");
    let operations = &report["data"]["operations"];
    for operation in [
        "access_ticket_create",
        "nodes_qemu_create_vm",
        "nodes_tasks_status_read",
        "nodes_qemu_config_vm",
        "nodes_qemu_status_start_vm",
        "nodes_qemu_vmid_destroy_vm",
    ] {
        assert!(
            operations[operation]["calls"].as_u64().unwrap_or_default() > 0,
            "{operation} went through the proxy: {report:#}"
        );
    }
    proxy.shutdown().await.unwrap();
    upstream.shutdown().await.unwrap();
}
