//! The whole flow a client written against real Proxmox drives, over sockets with form bodies:
//! log in, create a VM with a disk on a storage, wait for tasks, change its config, resize and
//! move the disk, start and stop it, snapshot and roll back, clone, migrate the clone, see a
//! read-only token refused a write, delete everything, and check the cluster view at every step.

use mock_server::Store;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::session::Session;
use crate::start;

async fn vm_config(pve: &Session, node: &str, vmid: u32) -> Value {
    pve.ok(
        Method::GET,
        &format!("/nodes/{node}/qemu/{vmid}/config"),
        &[],
    )
    .await
}

/// The `/cluster/resources` entry of a guest, if it is listed.
async fn resource(pve: &Session, vmid: u32) -> Option<Value> {
    let resources = pve
        .ok(Method::GET, "/cluster/resources", &[("type", "vm")])
        .await;
    resources
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["vmid"] == vmid)
        .cloned()
}

async fn volumes(pve: &Session, node: &str, storage: &str) -> Vec<String> {
    let content = pve
        .ok(
            Method::GET,
            &format!("/nodes/{node}/storage/{storage}/content"),
            &[],
        )
        .await;
    content
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["volid"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_real_client_flow_from_login_to_cleanup() {
    let server = start(Store::Memory).await;
    let pve = Session::login(&server).await;

    // A second storage for images, to move the disk to.
    pve.ok(
        Method::POST,
        "/storage",
        &[
            ("storage", "fast"),
            ("type", "dir"),
            ("path", "/mnt/fast"),
            ("content", "images,rootdir"),
        ],
    )
    .await;

    // Create a VM with a disk on local-lvm and a NIC.
    pve.run(
        Method::POST,
        "/nodes/pve1/qemu",
        &[
            ("vmid", "9100"),
            ("name", "flow"),
            ("memory", "2048"),
            ("cores", "2"),
            ("scsi0", "local-lvm:8"),
            ("net0", "virtio,bridge=vmbr0"),
        ],
    )
    .await;
    let config = vm_config(&pve, "pve1", 9100).await;
    assert_eq!(config["cores"], 2);
    assert!(
        config["scsi0"]
            .as_str()
            .unwrap()
            .starts_with("local-lvm:vm-9100-disk-0"),
        "{config}"
    );
    assert!(
        config["scsi0"].as_str().unwrap().contains("size=8G"),
        "{config}"
    );
    assert!(
        config["net0"]
            .as_str()
            .unwrap()
            .starts_with("virtio=BC:24:11:"),
        "{config}"
    );
    assert!(
        volumes(&pve, "pve1", "local-lvm")
            .await
            .contains(&"local-lvm:vm-9100-disk-0".to_owned())
    );
    let entry = resource(&pve, 9100)
        .await
        .expect("listed in /cluster/resources");
    assert_eq!(entry["node"], "pve1");
    assert_eq!(entry["status"], "stopped");

    // Change the config, then resize and move the disk.
    pve.run(
        Method::PUT,
        "/nodes/pve1/qemu/9100/config",
        &[("cores", "4")],
    )
    .await;
    assert_eq!(vm_config(&pve, "pve1", 9100).await["cores"], 4);
    pve.run(
        Method::PUT,
        "/nodes/pve1/qemu/9100/resize",
        &[("disk", "scsi0"), ("size", "+2G")],
    )
    .await;
    assert!(
        vm_config(&pve, "pve1", 9100).await["scsi0"]
            .as_str()
            .unwrap()
            .contains("size=10G")
    );
    pve.run(
        Method::POST,
        "/nodes/pve1/qemu/9100/move_disk",
        &[("disk", "scsi0"), ("storage", "fast"), ("delete", "1")],
    )
    .await;
    let scsi0 = vm_config(&pve, "pve1", 9100).await["scsi0"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(scsi0.starts_with("fast:"), "{scsi0}");
    assert!(
        !volumes(&pve, "pve1", "local-lvm")
            .await
            .iter()
            .any(|volume| volume.contains("vm-9100-"))
    );

    // Start it; the cluster view agrees.
    pve.run(Method::POST, "/nodes/pve1/qemu/9100/status/start", &[])
        .await;
    assert_eq!(
        pve.ok(Method::GET, "/nodes/pve1/qemu/9100/status/current", &[])
            .await["status"],
        "running"
    );
    assert_eq!(resource(&pve, 9100).await.unwrap()["status"], "running");

    // Snapshot, change, roll back.
    pve.run(
        Method::POST,
        "/nodes/pve1/qemu/9100/snapshot",
        &[("snapname", "before")],
    )
    .await;
    pve.run(
        Method::PUT,
        "/nodes/pve1/qemu/9100/config",
        &[("cores", "8")],
    )
    .await;
    assert_eq!(vm_config(&pve, "pve1", 9100).await["cores"], 8);
    pve.run(
        Method::POST,
        "/nodes/pve1/qemu/9100/snapshot/before/rollback",
        &[],
    )
    .await;
    assert_eq!(vm_config(&pve, "pve1", 9100).await["cores"], 4);

    // Stop it, clone it, migrate the clone.
    pve.run(Method::POST, "/nodes/pve1/qemu/9100/status/stop", &[])
        .await;
    assert_eq!(resource(&pve, 9100).await.unwrap()["status"], "stopped");
    pve.run(
        Method::POST,
        "/nodes/pve1/qemu/9100/clone",
        &[("newid", "9101"), ("name", "flow-clone")],
    )
    .await;
    assert_eq!(vm_config(&pve, "pve1", 9101).await["name"], "flow-clone");
    pve.run(
        Method::POST,
        "/nodes/pve1/qemu/9101/migrate",
        &[("target", "pve2")],
    )
    .await;
    assert_eq!(resource(&pve, 9101).await.unwrap()["node"], "pve2");
    let on_pve2 = pve.ok(Method::GET, "/nodes/pve2/qemu", &[]).await;
    assert!(
        on_pve2
            .as_array()
            .unwrap()
            .iter()
            .any(|vm| vm["vmid"] == 9101)
    );

    // A read-only token reads but may not start a guest.
    let token = pve
        .ok(
            Method::POST,
            "/access/users/root@pam/token/ro",
            &[("privsep", "1")],
        )
        .await;
    let secret = token["value"].as_str().unwrap().to_owned();
    pve.ok(
        Method::PUT,
        "/access/acl",
        &[
            ("path", "/"),
            ("roles", "PVEAuditor"),
            ("tokens", "root@pam!ro"),
        ],
    )
    .await;
    let read_only = Session::with_token(&server, format!("root@pam!ro={secret}"));
    assert!(
        resource(&read_only, 9100).await.is_some(),
        "the auditor token sees the VM"
    );
    let (status, reply) = read_only
        .call(Method::POST, "/nodes/pve1/qemu/9100/status/start", &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reply}");

    // Delete everything; the cluster view and the storage agree.
    pve.run(Method::DELETE, "/nodes/pve2/qemu/9101", &[]).await;
    pve.run(Method::DELETE, "/nodes/pve1/qemu/9100", &[]).await;
    assert!(resource(&pve, 9100).await.is_none());
    assert!(resource(&pve, 9101).await.is_none());
    assert!(
        !volumes(&pve, "pve1", "fast")
            .await
            .iter()
            .any(|volume| volume.contains("vm-9100-"))
    );
    pve.ok(Method::DELETE, "/access/users/root@pam/token/ro", &[])
        .await;
    let (status, _) = read_only.call(Method::GET, "/cluster/resources", &[]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a deleted token is refused at once"
    );
    server.shutdown().await.unwrap();
}
