//! Logs in with a password, creates a VM and waits for the creation task.
//!
//! Run with:
//!
//! ```text
//! cargo run -p mock-server &
//! cargo run -p proxmox-sdk --example password_create_vm
//! ```
//!
//! Against a real cluster, set `PROXMOX_API_URL`, `PROXMOX_API_USER` and `PROXMOX_API_PASSWORD`;
//! the VM goes to node `pve1` and storage `local-lvm`.

use std::time::Duration;

use anyhow::Context;
use proxmox_sdk::{Client, Upid};
use serde::Serialize;
use serde_json::{Value, json};

/// `POST /nodes/{node}/qemu` parameters; `None` fields are not sent.
#[derive(Serialize)]
struct CreateVm<'a> {
    vmid: u32,
    name: &'a str,
    memory: u32,
    cores: u32,
    net0: &'a str,
    scsi0: &'a str,
    start: Option<bool>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = match Client::from_env() {
        Ok(client) => client,
        Err(_) => Client::builder()
            .base_url("http://127.0.0.1:8005")
            .password("root@pam", "secret")
            .build()?,
    };

    let vmid = free_vmid(&client).await.context("finding a free VM id")?;

    let create = CreateVm {
        vmid,
        name: "sdk-example",
        memory: 2048,
        cores: 2,
        net0: "virtio,bridge=vmbr0",
        scsi0: "local-lvm:8",
        start: None,
    };
    let upid: Upid = client
        .post("/nodes/pve1/qemu", &create)
        .await
        .context("creating the VM")?;
    println!("creating VM {vmid}: task {upid}");

    let exit_status = client
        .task(&upid)
        .wait(Duration::from_secs(300))
        .await
        .context("waiting for the task")?;
    println!("task finished: {exit_status}");

    let config: Value = client
        .get(
            &client.path(["nodes", "pve1", "qemu", &vmid.to_string(), "config"]),
            &(),
        )
        .await
        .context("reading the VM configuration")?;
    println!("{}", serde_json::to_string_pretty(&config)?);
    Ok(())
}

/// The next free VM id: `/cluster/nextid` (a string on real Proxmox), or, if that answer is not a
/// valid id, one past the highest id in use.
async fn free_vmid(client: &Client) -> anyhow::Result<u32> {
    let next: Value = client.get("/cluster/nextid", &()).await?;
    let next = next
        .as_u64()
        .or_else(|| next.as_str()?.parse().ok())
        .unwrap_or_default();
    if next >= 100 {
        return Ok(u32::try_from(next)?);
    }
    let guests: Vec<Value> = client
        .get("/cluster/resources", &json!({"type": "vm"}))
        .await?;
    let highest = guests
        .iter()
        .filter_map(|guest| guest["vmid"].as_u64())
        .max()
        .unwrap_or(99);
    Ok(u32::try_from(highest.max(99) + 1)?)
}
