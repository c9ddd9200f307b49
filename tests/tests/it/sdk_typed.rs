//! The SDK's generated typed API against the mock of the tag under test: the handles map to the
//! right paths, parameters encode the way Proxmox expects (families, 0/1 booleans) and replies
//! decode into the `shared-types` models.

use std::time::Duration;

use mock_server::Store;
use proxmox_sdk::shared_types::nodes::{
    Content, MemoryConfig, NodesLxcCreateVmParams, NodesQemuCreateVmParams,
    NodesStorageUploadParams, QemuNetConfig, QemuNetModel, RootfsConfig,
};
use proxmox_sdk::shared_types::{Indexed, PveBool};
use proxmox_sdk::{Client, UploadFile};

use crate::start;

/// The SDK logged in as `root@pam` on the mock's plain HTTP listener.
fn password_client(server: &mock_server::MockServerHandle) -> Client {
    Client::builder()
        .base_url(server.base_url())
        .password("root@pam", "secret")
        .build()
        .unwrap()
}

#[tokio::test]
async fn typed_vm_life_cycle_with_a_password_login() {
    let server = start(Store::Memory).await;
    let client = password_client(&server);

    let version = client.version().get().await.unwrap();
    assert!(!version.release.is_empty());

    let nodes = client.nodes().list().await.unwrap();
    let names: Vec<&str> = nodes.iter().map(|node| node.node.as_str()).collect();
    assert!(names.contains(&"pve1"), "{names:?}");

    let qemu = client.nodes().node("pve1").qemu();
    let nic = QemuNetConfig {
        bridge: Some("vmbr0".to_owned()),
        ..QemuNetConfig::new(QemuNetModel::Virtio)
    };
    let params = NodesQemuCreateVmParams {
        name: Some("typed".to_owned()),
        cores: Some(2),
        memory: Some(MemoryConfig::new(1024)),
        start: Some(PveBool(false)),
        net: Indexed::from([(0, nic)]),
        ..NodesQemuCreateVmParams::new(9010)
    };
    let upid = qemu.create(&params).await.unwrap();
    assert_eq!(upid.node, "pve1");
    let exit_status = client
        .task(&upid)
        .wait(Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(exit_status, "OK");

    let vms = qemu.list().timeout(Duration::from_secs(30)).await.unwrap();
    assert!(vms.iter().any(|vm| vm.vmid == 9010), "the new VM is listed");

    let vm = qemu.vmid(9010);
    assert_eq!(vm.path(), "/nodes/pve1/qemu/9010");
    let config = vm.config().get().await.unwrap();
    assert_eq!(config.cores, Some(2));
    assert_eq!(config.name.as_deref(), Some("typed"));
    let net0 = config.net.get(0).expect("net0 is set");
    assert_eq!(net0.model, QemuNetModel::Virtio);
    assert_eq!(net0.bridge.as_deref(), Some("vmbr0"));
    assert!(net0.macaddr.is_some(), "the mock assigns a MAC: {net0}");
    assert!(net0.to_string().starts_with("virtio="), "{net0}");

    // Actions are methods of their parent handle and go to their own path.
    let upid = vm.status().start().await.unwrap();
    assert_eq!(upid.worker_type, "qmstart");
    assert_eq!(
        client
            .task(&upid)
            .wait(Duration::from_secs(30))
            .await
            .unwrap(),
        "OK"
    );
    let current = vm.status().current().get().await.unwrap();
    assert_eq!(current.status, "running");
    assert_eq!(current.vmid, 9010);
    let upid = vm.status().stop().await.unwrap();
    assert_eq!(
        client
            .task(&upid)
            .wait(Duration::from_secs(30))
            .await
            .unwrap(),
        "OK"
    );
    assert_eq!(vm.status().current().get().await.unwrap().status, "stopped");

    let upid = vm.delete().await.unwrap();
    assert_eq!(
        client
            .task(&upid)
            .wait(Duration::from_secs(30))
            .await
            .unwrap(),
        "OK"
    );
    let error = vm.config().get().await.unwrap_err();
    assert_eq!(
        error.status().map(|status| status.as_u16()),
        Some(500),
        "{error}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn typed_container_life_cycle_with_a_token() {
    let server = start(Store::Memory).await;
    let admin = password_client(&server);
    // Create an API token through the API, then use it.
    let token: serde_json::Value = admin
        .post(
            "/access/users/root@pam/token/typed",
            &serde_json::json!({"privsep": false}),
        )
        .await
        .unwrap();
    let secret = token["value"].as_str().unwrap().to_owned();
    let client = Client::builder()
        .base_url(server.base_url())
        .token("root@pam!typed", secret)
        .build()
        .unwrap();

    let lxc = client.nodes().node("pve1").lxc();
    let params = NodesLxcCreateVmParams {
        hostname: Some("typed-ct".to_owned()),
        memory: Some(512),
        rootfs: Some(RootfsConfig::new("local-lvm:4")),
        ..NodesLxcCreateVmParams::new("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", 9020)
    };
    let upid = lxc.create(&params).await.unwrap();
    assert_eq!(
        client
            .task(&upid)
            .wait(Duration::from_secs(30))
            .await
            .unwrap(),
        "OK"
    );
    let containers = lxc.list().await.unwrap();
    assert!(
        containers.iter().any(|ct| ct.vmid == 9020),
        "the new container is listed"
    );
    let config = lxc.vmid(9020).config().get().await.unwrap();
    assert_eq!(config.hostname.as_deref(), Some("typed-ct"));
    assert_eq!(config.memory, Some(512));

    let upid = lxc.vmid(9020).delete().await.unwrap();
    assert_eq!(
        client
            .task(&upid)
            .wait(Duration::from_secs(30))
            .await
            .unwrap(),
        "OK"
    );
    assert!(!lxc.list().await.unwrap().iter().any(|ct| ct.vmid == 9020));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn typed_upload_sends_multipart_and_the_volume_appears() {
    let server = start(Store::Memory).await;
    let client = password_client(&server);
    let storage = client.nodes().node("pve1").storage().storage("local");
    let params = NodesStorageUploadParams::new(Content::Iso, "e2e.iso");
    let file = UploadFile::from_bytes("e2e.iso", vec![7_u8; 4096]);
    let upid = storage.upload(&params, file).await.unwrap();
    assert_eq!(
        client
            .task(&upid)
            .wait(Duration::from_secs(30))
            .await
            .unwrap(),
        "OK"
    );
    let content: Vec<serde_json::Value> = client
        .get(
            "/nodes/pve1/storage/local/content",
            &serde_json::json!({"content": "iso"}),
        )
        .await
        .unwrap();
    let volume = content
        .iter()
        .find(|entry| entry["volid"] == "local:iso/e2e.iso")
        .unwrap_or_else(|| panic!("uploaded volume listed: {content:?}"));
    assert_eq!(volume["size"], 4096);
    server.shutdown().await.unwrap();
}
