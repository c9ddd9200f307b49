//! Typed read calls against replies in Proxmox's own shapes (issue 11, section 1): numbers sent
//! as strings, as pve-manager's Perl code sends them, decode; a reply that does not decode names
//! the field in the error.
//!
//! The replies are canned (the `CannedServer` of this test binary), copied from what Proxmox VE
//! 9 answers: `GET /cluster/nextid` gives `"102"` (`PVE/API2/Cluster.pm`), a container list and
//! status carry `pressure*` as `"0.00"`, a VM config has property strings.

#![allow(clippy::unwrap_used)]

use proxmox_sdk::Client;
use proxmox_sdk::shared_types::PveBool;
use proxmox_sdk::shared_types::nodes::{QemuNetModel, ScsiConfig};

use crate::CannedServer;

/// The canned reply to a request, by its request line.
fn reply(request: &str) -> Option<(u16, String)> {
    let line = request.lines().next().unwrap_or_default();
    let path = line.split(' ').nth(1).unwrap_or_default();
    let path = path.strip_prefix("/api2/json").unwrap_or(path);
    let path = path.split('?').next().unwrap_or_default();
    let body = match path {
        "/cluster/nextid" => r#"{"data":"102"}"#,
        "/nodes/pve1/lxc" => {
            r#"{"data":[{"vmid":"101","name":"ct1","status":"running","type":"lxc","cpus":2,
            "maxmem":536870912,"mem":"23855104","uptime":3600,"pressurecpusome":"0.00",
            "pressurecpufull":"0.00","pressureiosome":"0.12","pressureiofull":"0.10",
            "pressurememorysome":"0.00","pressurememoryfull":"0.00","tags":"web;prod"}]}"#
        }
        "/nodes/pve1/lxc/101/status/current" => {
            r#"{"data":{"vmid":101,"name":"ct1","status":"running","type":"lxc","cpus":"2",
            "maxmem":536870912,"uptime":"3600","ha":{"managed":0},
            "pressurecpusome":"0.00","pressurememoryfull":"1.50"}}"#
        }
        "/nodes/pve1/qemu/100/config" => {
            r#"{"data":{"name":"web01","cores":"2","memory":"2048","boot":"order=scsi0;net0",
            "net0":"virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1",
            "scsi0":"local-lvm:vm-100-disk-0,iothread=1,size=32G","ostype":"l26",
            "digest":"0123456789abcdef0123456789abcdef01234567"}}"#
        }
        "/nodes/pve1/qemu" => {
            r#"{"data":[{"vmid":100,"name":"web01","status":"stopped","cpus":2},
            {"vmid":101,"name":"db","status":"stopped","cpus":"two"}]}"#
        }
        _ => return Some((404, r#"{"data":null}"#.to_owned())),
    };
    Some((200, body.to_owned()))
}

async fn client() -> (CannedServer, Client) {
    let server = CannedServer::start(reply).await;
    let client = Client::builder()
        .base_url(format!("{}/api2/json", server.url))
        .token("root@pam!it", "00000000-0000-0000-0000-000000000000")
        .build()
        .expect("valid client");
    (server, client)
}

#[tokio::test]
async fn numbers_sent_as_strings_decode() {
    let (_server, client) = client().await;

    assert_eq!(client.cluster().nextid().get().await.unwrap(), 102);

    let containers = client.nodes().node("pve1").lxc().list().await.unwrap();
    assert_eq!(containers[0].vmid, 101);
    assert_eq!(containers[0].pressurecpusome, Some(0.0));
    assert_eq!(containers[0].pressureiosome, Some(0.12));
    assert_eq!(containers[0].status, "running");

    let current = client
        .nodes()
        .node("pve1")
        .lxc()
        .vmid(101)
        .status()
        .current()
        .get()
        .await
        .unwrap();
    assert_eq!(current.cpus, Some(2.0));
    assert_eq!(current.pressurememoryfull, Some(1.5));
}

#[tokio::test]
async fn vm_config_property_strings_are_typed() {
    let (_server, client) = client().await;
    let config = client
        .nodes()
        .node("pve1")
        .qemu()
        .vmid(100)
        .config()
        .get()
        .await
        .unwrap();
    assert_eq!(config.cores, Some(2));
    let memory = config.memory.expect("memory is set");
    assert_eq!(memory.current, 2048);
    let net0 = config.net.get(0).expect("net0 is set");
    assert_eq!(net0.model, QemuNetModel::Virtio);
    assert_eq!(net0.macaddr.as_deref(), Some("BC:24:11:AA:BB:CC"));
    assert_eq!(net0.firewall, Some(PveBool(true)));
    let scsi0: &ScsiConfig = config.scsi.get(0).expect("scsi0 is set");
    assert_eq!(scsi0.file, "local-lvm:vm-100-disk-0");
    assert_eq!(scsi0.size.map(|size| size.bytes()), Some(32 << 30));
    assert_eq!(
        config.ostype.as_ref().map(|ostype| ostype.as_str()),
        Some("l26")
    );
}

#[tokio::test]
async fn a_decode_error_names_the_field() {
    let (_server, client) = client().await;
    let error = client.nodes().node("pve1").qemu().list().await.unwrap_err();
    assert!(error.is_decode(), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(" at data[1].cpus "), "{message}");
}
