//! Creates a VM with a NIC and a disk from typed property strings, waits for the creation task and
//! prints the configuration Proxmox stored.
//!
//! The target comes from the `PROXMOX_API_*` variables (see `ClientBuilder::from_env`), here a
//! password login; the VM goes to node `pve1` (or `PROXMOX_EXAMPLE_NODE`) and storage `local-lvm`.
//! Against the mock:
//!
//! ```text
//! cargo run -p mock-server &
//! PROXMOX_API_URL=http://127.0.0.1:8005 PROXMOX_API_USER=root@pam PROXMOX_API_PASSWORD=secret \
//!   cargo run -p proxmox-sdk --example password_create_vm
//! ```

use std::time::Duration;

use anyhow::Context;
use proxmox_sdk::Client;
use proxmox_sdk::shared_types::nodes::{
    MemoryConfig, NodesQemuCreateVmParams, QemuNetConfig, QemuNetModel, ScsiConfig,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client =
        Client::from_env().context("reading PROXMOX_API_* (PROXMOX_API_URL and credentials)")?;
    let node = std::env::var("PROXMOX_EXAMPLE_NODE").unwrap_or_else(|_| "pve1".to_owned());
    let qemu = client.nodes().node(&node).qemu();

    // Real Proxmox sends the id as a string ("102"); the typed call reads both.
    let vmid =
        u32::try_from(client.cluster().nextid().get().await?).context("the next free VM id")?;
    let params = NodesQemuCreateVmParams {
        name: Some("sdk-example".to_owned()),
        memory: Some(MemoryConfig::new(2048)),
        cores: Some(2),
        net: [(
            0,
            QemuNetConfig {
                bridge: Some("vmbr0".to_owned()),
                ..QemuNetConfig::new(QemuNetModel::Virtio)
            },
        )]
        .into(),
        scsi: [(0, ScsiConfig::new("local-lvm:8"))].into(),
        ..NodesQemuCreateVmParams::new(vmid)
    };
    let task = qemu
        .create(&params)
        .task()
        .await
        .context("creating the VM")?;
    println!("creating VM {vmid}: task {}", task.upid());
    let outcome = task
        .wait(Duration::from_secs(300))
        .await
        .context("waiting for the task")?;
    println!("task finished: {outcome}");

    let config = qemu
        .vmid(vmid)
        .config()
        .get()
        .await
        .context("reading the VM configuration")?;
    println!("name: {}", config.name.as_deref().unwrap_or("-"));
    for (index, nic) in config.net.iter() {
        println!("net{index}: {nic}");
    }
    for (index, disk) in config.scsi.iter() {
        println!("scsi{index}: {disk}");
    }
    println!("digest: {}", config.digest);
    Ok(())
}
