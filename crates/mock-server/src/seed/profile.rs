//! Named seed profiles: `small`, the default two-node cluster of [`Fixture::default_fixture`],
//! and `large`, 16 nodes and 5,000 guests for load tests of dashboards and inventories.
//!
//! `large` is generated, not read from a file: the same input gives the same cluster every
//! time (names, sizes, MAC addresses and states derive from the VM ID), and building it takes
//! milliseconds.

use std::str::FromStr;

use serde_json::{Value, json};

use super::{Fixture, GuestSeed, NodeSeed, StorageSeed, local_storages};

/// A named seed profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Profile {
    /// Two nodes, two VMs and a container (the default).
    #[default]
    Small,
    /// 16 nodes and 5,000 guests.
    Large,
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(text: &str) -> Result<Profile, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "small" => Ok(Profile::Small),
            "large" => Ok(Profile::Large),
            other => Err(format!(
                "unknown profile '{other}' (known: small, large; use --seed for a file)"
            )),
        }
    }
}

impl Profile {
    /// The profile's name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Small => "small",
            Profile::Large => "large",
        }
    }

    /// The fixture of the profile.
    pub fn fixture(self) -> Fixture {
        match self {
            Profile::Small => Fixture::default_fixture(),
            Profile::Large => large(LARGE_NODES, LARGE_GUESTS),
        }
    }
}

/// Nodes of the `large` profile.
const LARGE_NODES: usize = 16;

/// Guests of the `large` profile.
const LARGE_GUESTS: usize = 5_000;

/// A generated cluster of `n_nodes` nodes (`pve1`...) and `n_guests` guests (VM IDs from 100,
/// every fifth a container, two thirds running, every 250th a template).
fn large(n_nodes: usize, n_guests: usize) -> Fixture {
    let n_nodes = n_nodes.max(1);
    let mut storages = local_storages();
    storages.push(StorageSeed::new(
        "backup",
        "nfs",
        "backup",
        json!({"server": "10.0.0.10", "export": "/srv/backup", "path": "/mnt/pve/backup", "shared": 1}),
    ));
    let mut fixture = Fixture::default_fixture();
    fixture.cluster = "pve-large".to_owned();
    fixture.nodes = (1..=n_nodes)
        .map(|index| NodeSeed::online(&format!("pve{index}")))
        .collect();
    fixture.storages = storages;
    fixture.guests = (0..n_guests)
        .map(|index| large_guest(index, n_nodes))
        .collect();
    fixture
}

/// Guest number `index` of the `large` profile: its VM ID, node, kind, state and sizes all
/// derive from `index`.
fn large_guest(index: usize, n_nodes: usize) -> GuestSeed {
    const CORES: [u32; 6] = [1, 2, 2, 4, 4, 8];
    const MEMORY: [u32; 5] = [1024, 2048, 4096, 8192, 16384];
    let vmid = 100 + index as u32;
    let node = format!("pve{}", index % n_nodes + 1);
    let container = index % 5 == 4;
    let template = index % 250 == 249;
    let running = !template && !index.is_multiple_of(3);
    let cores = CORES[index % CORES.len()];
    let memory = MEMORY[index % MEMORY.len()];
    let mut config = if container {
        container_config(vmid, cores, memory)
    } else {
        vm_config(vmid, cores, memory)
    };
    if template {
        config["template"] = json!(1);
    }
    GuestSeed::new(
        vmid,
        if container { "lxc" } else { "qemu" },
        &node,
        if running { "running" } else { "stopped" },
        config,
    )
}

/// A MAC address derived from the VM ID.
fn large_mac(vmid: u32) -> String {
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        (vmid >> 16) & 0xff,
        (vmid >> 8) & 0xff,
        vmid & 0xff
    )
}

/// The configuration of a `large` container.
fn container_config(vmid: u32, cores: u32, memory: u32) -> Value {
    let mac = large_mac(vmid);
    json!({
        "hostname": format!("ct{vmid}"), "cores": cores, "memory": memory,
        "swap": 512, "ostype": "debian", "arch": "amd64",
        "rootfs": format!("local-lvm:vm-{vmid}-disk-0,size=8G"),
        "net0": format!("name=eth0,bridge=vmbr0,hwaddr={mac},ip=dhcp,type=veth"),
    })
}

/// The configuration of a `large` VM.
fn vm_config(vmid: u32, cores: u32, memory: u32) -> Value {
    let mac = large_mac(vmid);
    json!({
        "name": format!("vm{vmid}"), "cores": cores, "sockets": 1,
        "memory": memory.to_string(), "ostype": "l26",
        "net0": format!("virtio={mac},bridge=vmbr0"),
        "scsi0": format!("local-lvm:vm-{vmid}-disk-0,size=32G"),
        "scsihw": "virtio-scsi-single", "boot": "order=scsi0",
    })
}

/// A short digest of a fixture (SHA-256 of its JSON form), part of the store fingerprint so that
/// starting with another profile or seed file resets a persisted state.
pub(crate) fn fingerprint(fixture: &Fixture) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(fixture).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..8])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn large_profile_is_big_and_deterministic() {
        let fixture = Profile::Large.fixture();
        let changes = fixture.to_changes("secret");
        assert_eq!(fixture.nodes.len(), 16);
        assert_eq!(fixture.guests.len(), 5_000);
        assert!(changes.len() > 10_000);
        assert_eq!(fixture, Profile::Large.fixture());
        assert_eq!(
            fingerprint(&fixture),
            fingerprint(&Profile::Large.fixture())
        );
        assert_ne!(
            fingerprint(&fixture),
            fingerprint(&Profile::Small.fixture())
        );
        assert!(
            fixture.guests.iter().filter(|g| g.kind == "lxc").count() >= 1_000,
            "containers too"
        );
        assert_eq!("LARGE".parse::<Profile>().unwrap(), Profile::Large);
        assert!("huge".parse::<Profile>().is_err());
    }
}
