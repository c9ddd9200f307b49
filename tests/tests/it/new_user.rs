//! The first hour of a new SDK user (issue 11's "done when"), written against the typed API only:
//! no path strings, no JSON, no hand-written property strings. It runs against the in-process
//! mock from `mock_server::testing`, the way a user's own tests would.
//!
//! nodes and cluster resources, a VM created with a NIC and a disk from typed property strings,
//! read back, updated with its digest, started, snapshotted and cloned; tasks listed, followed and
//! waited on; an API token created and used; errors a caller branches on; cleanup.

use std::time::Duration;

use proxmox_sdk::generated::nodes::NodesNodeQemuVmid;
use proxmox_sdk::shared_types::PveBool;
use proxmox_sdk::shared_types::access::AccessUsersTokenGenerateParams;
use proxmox_sdk::shared_types::cluster::{ClusterResourcesParams, ClusterResourcesParamsType};
use proxmox_sdk::shared_types::nodes::{
    GuestStatus, MemoryConfig, NodesQemuCloneVmParams, NodesQemuConfigUpdateVmParams,
    NodesQemuCreateVmParams, NodesQemuSnapshotParams, NodesTasksNodeParams, QemuNetConfig,
    QemuNetModel, ScsiConfig, Scsihw,
};
use proxmox_sdk::{Client, TaskOutcome};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(30);

/// A handle kept in a struct: possible because handles own their (cheap, `Arc`) client.
struct Inventory {
    vm: NodesNodeQemuVmid,
}

#[tokio::test]
async fn new_user_program_runs_against_the_typed_api() -> TestResult {
    let (client, mock) = mock_server::testing::start().await?;

    // Nodes and cluster resources.
    let nodes = client.nodes().list().await?;
    assert!(nodes.iter().any(|node| node.node == "pve1"), "{nodes:?}");
    let vms = client
        .cluster()
        .resources()
        .get()
        .params(&ClusterResourcesParams {
            r#type: Some(ClusterResourcesParamsType::Vm),
        })
        .await?;
    assert!(!vms.is_empty());
    assert!(vms.iter().all(|vm| vm.vmid.is_some()), "{vms:?}");

    // A new VM with a NIC and a disk, from typed property strings.
    let vmid = u32::try_from(client.cluster().nextid().get().await?)?;
    let qemu = client.nodes().node("pve1").qemu();
    let nic = QemuNetConfig {
        bridge: Some("vmbr0".to_owned()),
        firewall: Some(PveBool(true)),
        ..QemuNetConfig::new(QemuNetModel::Virtio)
    };
    let disk = ScsiConfig {
        discard: Some(proxmox_sdk::shared_types::nodes::Discard::On),
        ..ScsiConfig::new("local-lvm:8")
    };
    let create = NodesQemuCreateVmParams {
        name: Some("web".to_owned()),
        cores: Some(2),
        memory: Some(MemoryConfig::new(2048)),
        scsihw: Some(Scsihw::VirtioScsiSingle),
        net: [(0, nic)].into(),
        scsi: [(0, disk)].into(),
        ..NodesQemuCreateVmParams::new(vmid)
    };
    let outcome = qemu.create(&create).wait(WAIT).await?;
    assert_eq!(outcome, TaskOutcome::Ok);

    // Read it back.
    let vm = qemu.vmid(vmid);
    let config = vm.config().get().await?;
    assert_eq!(config.name.as_deref(), Some("web"));
    assert_eq!(config.cores, Some(2));
    let net0 = config.net.get(0).ok_or("net0 is set")?;
    assert_eq!(net0.model, QemuNetModel::Virtio);
    assert_eq!(net0.bridge.as_deref(), Some("vmbr0"));
    assert!(net0.macaddr.is_some(), "the mock assigns a MAC: {net0}");
    let scsi0 = config.scsi.get(0).ok_or("scsi0 is set")?;
    assert!(scsi0.file.starts_with("local-lvm:"), "{scsi0}");

    // Update with the digest; a stale digest is refused.
    let update = NodesQemuConfigUpdateVmParams {
        cores: Some(4),
        digest: Some(config.digest.clone()),
        ..Default::default()
    };
    vm.config().update().params(&update).await?;
    assert_eq!(vm.config().get().await?.cores, Some(4));
    let stale = vm.config().update().params(&update).await;
    assert!(stale.is_err(), "the digest changed with the update");

    // Start it, from a task of its own: the handle moves into `tokio::spawn`.
    let inventory = Inventory { vm: vm.clone() };
    let started = tokio::spawn(async move { inventory.vm.status().start().wait(WAIT).await });
    assert_eq!(started.await??, TaskOutcome::Ok);
    let current = vm.status().current().get().await?;
    assert_eq!(current.status, GuestStatus::Running);

    // Snapshot and clone.
    let snapshot = NodesQemuSnapshotParams {
        description: Some("before the upgrade".to_owned()),
        ..NodesQemuSnapshotParams::new("before_upgrade")
    };
    vm.snapshot().create(&snapshot).wait(WAIT).await?;
    let snapshots = vm.snapshot().list().await?;
    assert!(
        snapshots.iter().any(|snap| snap.name == "before_upgrade"),
        "{snapshots:?}"
    );
    let clone_id = vmid + 1;
    let clone = NodesQemuCloneVmParams {
        name: Some("web-clone".to_owned()),
        full: Some(PveBool(true)),
        ..NodesQemuCloneVmParams::new(clone_id)
    };
    let clone_task = vm.clone_vm(&clone).task().await?;

    // Tasks: follow the clone's log to its end, wait for it, find it in the node's list.
    let mut log = clone_task.follow();
    let mut lines = 0;
    while let Some(line) = log.next().await {
        line?;
        lines += 1;
    }
    assert!(lines > 0, "a task log has at least one line");
    assert_eq!(clone_task.wait(WAIT).await?, TaskOutcome::Ok);
    let tasks = client
        .nodes()
        .node("pve1")
        .tasks()
        .list()
        .params(&NodesTasksNodeParams {
            vmid: Some(vmid),
            ..Default::default()
        })
        .await?;
    assert!(
        tasks
            .iter()
            .any(|task| task.upid == clone_task.upid().to_string()),
        "{tasks:?}"
    );
    let mut paged = client.nodes().node("pve1").tasks().list().paginate(2);
    let mut n_tasks = 0;
    while let Some(task) = paged.next().await {
        task?;
        n_tasks += 1;
    }
    assert!(n_tasks >= 4, "create, start, snapshot and clone: {n_tasks}");
    assert_eq!(
        qemu.vmid(clone_id).config().get().await?.name.as_deref(),
        Some("web-clone")
    );

    // An API token, and a client that uses it.
    let token = client
        .access()
        .users()
        .userid("root@pam")
        .token()
        .tokenid("new-user")
        .create()
        .params(&AccessUsersTokenGenerateParams {
            privsep: Some(PveBool(false)),
            comment: Some("issue 11".to_owned()),
            ..Default::default()
        })
        .await?;
    let token_client: Client = mock
        .client_builder()
        .token(token.full_tokenid.clone(), token.value.clone())
        .build()?;
    let seen = token_client.nodes().node("pve1").qemu().list().await?;
    assert!(seen.iter().any(|listed| listed.vmid == vmid));

    // Errors a caller branches on.
    let missing = qemu.vmid(999_999).config().get().await.unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert!(missing.param_errors().is_none());
    let invalid = qemu
        .create(&NodesQemuCreateVmParams {
            cores: Some(0),
            ..NodesQemuCreateVmParams::new(vmid + 2)
        })
        .await
        .unwrap_err();
    let param_errors = invalid.param_errors().ok_or("a parameter error")?;
    assert!(param_errors.contains_key("cores"), "{invalid}");

    // Cleanup.
    vm.status().stop().wait(WAIT).await?;
    vm.delete().wait(WAIT).await?;
    qemu.vmid(clone_id).delete().wait(WAIT).await?;
    client
        .access()
        .users()
        .userid("root@pam")
        .token()
        .tokenid("new-user")
        .delete()
        .await?;
    assert!(vm.config().get().await.unwrap_err().is_not_found());
    assert!(token_client.nodes().list().await.unwrap_err().is_auth());
    Ok(())
}

/// Compiles only while handles and calls are `'static + Send + Sync`: stored in a struct, moved
/// into `tokio::spawn`, returned from a function without the client they came from.
#[tokio::test]
async fn handles_and_calls_are_owned() -> TestResult {
    fn owned<T: Send + Sync + 'static>(_: &T) {}

    fn vm_of(client: &Client, vmid: u32) -> NodesNodeQemuVmid {
        client.nodes().node("pve1").qemu().vmid(vmid)
    }

    let (client, _mock) = mock_server::testing::start().await?;
    let inventory = Inventory {
        vm: vm_of(&client, 100),
    };
    drop(client);
    owned(&inventory.vm);
    let call = inventory.vm.config().get();
    owned(&call);
    let config = tokio::spawn(call.into_future()).await??;
    assert!(!config.digest.is_empty());
    let status = tokio::spawn(async move { inventory.vm.status().current().get().await }).await??;
    assert_eq!(status.vmid, 100);
    Ok(())
}
