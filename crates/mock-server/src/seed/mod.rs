//! The seed fixture: what a fresh (or reset) mock contains.
//!
//! The default is a two-node cluster `pve-cluster` (nodes `pve1`, `pve2`, online), storages
//! `local` (dir: iso,vztmpl,backup) and `local-lvm` (lvmthin: images,rootdir) on both nodes,
//! VM 100 (running) and CT 200 (stopped) on `pve1`, VM 101 (stopped) on `pve2`, and the user
//! `root@pam` whose password is the configured root password. A YAML or JSON file with the same
//! shape ([`Fixture`]) replaces it; `objects` adds raw rows for anything else.
//!
//! The fixture's users, groups, roles and ACL become rows in `access`; the named profiles
//! (`small`, `large`) are fixtures built in `profile`.

pub(crate) mod access;
pub(crate) mod profile;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::ops::nodes::CLUSTER_PATH;
use crate::store::Change;

/// A seed fixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Cluster name.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Nodes.
    #[serde(default)]
    pub nodes: Vec<NodeSeed>,
    /// Storages (cluster-wide definitions).
    #[serde(default)]
    pub storages: Vec<StorageSeed>,
    /// VMs and containers.
    #[serde(default)]
    pub guests: Vec<GuestSeed>,
    /// Users.
    #[serde(default)]
    pub users: Vec<UserSeed>,
    /// Groups (members are named by the users' `groups`).
    #[serde(default)]
    pub groups: Vec<access::GroupSeed>,
    /// Custom roles: role ID -> privileges.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// ACL entries.
    #[serde(default)]
    pub acl: Vec<access::AclSeed>,
    /// Faults injected from the start (`/_mock/faults` shapes, see `simulation::FaultSpec`).
    #[serde(default)]
    pub faults: Vec<crate::simulation::FaultSpec>,
    /// Raw rows: concrete path -> object (members name their collection with `_collection`).
    #[serde(default)]
    pub objects: BTreeMap<String, Value>,
}

fn default_cluster() -> String {
    "pve-cluster".to_owned()
}

/// A node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSeed {
    /// Node name.
    pub name: String,
    /// `online` or `offline`.
    #[serde(default = "online")]
    pub status: String,
}

fn online() -> String {
    "online".to_owned()
}

/// A storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSeed {
    /// Storage ID.
    pub id: String,
    /// Storage type (`dir`, `lvmthin`, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Content types, comma separated.
    pub content: String,
    /// Nodes it is available on (all when empty).
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Further configuration keys.
    #[serde(default)]
    pub config: Map<String, Value>,
}

/// A VM or container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestSeed {
    /// VM ID.
    pub vmid: u32,
    /// `qemu` or `lxc`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Node.
    pub node: String,
    /// `running` or `stopped`.
    #[serde(default = "stopped")]
    pub status: String,
    /// Configuration keys (name, cores, memory, net0...).
    #[serde(default)]
    pub config: Map<String, Value>,
}

fn stopped() -> String {
    "stopped".to_owned()
}

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    /// `user@realm`.
    pub userid: String,
    /// Password (root@pam defaults to the configured root password).
    #[serde(default)]
    pub password: Option<String>,
    /// API tokens: name -> secret (a token with the user's full privileges), or
    /// `{secret, privsep, expire, comment}`.
    #[serde(default)]
    pub tokens: BTreeMap<String, access::TokenSeed>,
    /// Whether the account is enabled.
    #[serde(default = "enabled")]
    pub enable: bool,
    /// Groups the user is a member of.
    #[serde(default)]
    pub groups: Vec<String>,
    /// A base32 TOTP secret: password logins then need a second factor.
    #[serde(default)]
    pub totp: Option<String>,
    /// Further user fields (`email`, `firstname`, `lastname`, `comment`, `expire`).
    #[serde(default)]
    pub config: Map<String, Value>,
}

fn enabled() -> bool {
    true
}

impl NodeSeed {
    /// An online node.
    pub(crate) fn online(name: &str) -> NodeSeed {
        NodeSeed {
            name: name.to_owned(),
            status: online(),
        }
    }
}

impl StorageSeed {
    /// A storage on every node; `config` is a JSON object of further keys.
    pub(crate) fn new(id: &str, kind: &str, content: &str, config: Value) -> StorageSeed {
        StorageSeed {
            id: id.to_owned(),
            kind: kind.to_owned(),
            content: content.to_owned(),
            nodes: Vec::new(),
            config: into_object(config),
        }
    }
}

impl GuestSeed {
    /// A guest; `config` is a JSON object of configuration keys.
    pub(crate) fn new(vmid: u32, kind: &str, node: &str, status: &str, config: Value) -> GuestSeed {
        GuestSeed {
            vmid,
            kind: kind.to_owned(),
            node: node.to_owned(),
            status: status.to_owned(),
            config: into_object(config),
        }
    }
}

impl UserSeed {
    /// An enabled user without password, tokens, groups, TOTP or further fields.
    pub(crate) fn new(userid: &str) -> UserSeed {
        UserSeed {
            userid: userid.to_owned(),
            password: None,
            tokens: BTreeMap::new(),
            enable: true,
            groups: Vec::new(),
            totp: None,
            config: Map::new(),
        }
    }
}

/// The map of a JSON object (empty for anything else).
fn into_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// The storages of a fresh Proxmox VE install: `local` (dir) and `local-lvm` (lvmthin).
pub(crate) fn local_storages() -> Vec<StorageSeed> {
    vec![
        StorageSeed::new(
            "local",
            "dir",
            "iso,vztmpl,backup",
            json!({"path": "/var/lib/vz"}),
        ),
        StorageSeed::new(
            "local-lvm",
            "lvmthin",
            "images,rootdir",
            json!({"thinpool": "data", "vgname": "pve"}),
        ),
    ]
}

/// The guests of the default fixture: VM 100 (running) and CT 200 on `pve1`, VM 101 on `pve2`.
fn default_guests() -> Vec<GuestSeed> {
    vec![
        GuestSeed::new(
            100,
            "qemu",
            "pve1",
            "running",
            json!({
                "name": "web01", "cores": 2, "sockets": 1, "memory": "2048", "ostype": "l26", "agent": "1",
                "net0": "virtio=BC:24:11:00:01:00,bridge=vmbr0",
                "scsi0": "local-lvm:vm-100-disk-0,size=32G", "scsihw": "virtio-scsi-single",
                "boot": "order=scsi0", "smbios1": "uuid=6f1c4f2e-0c52-4a8e-9d53-1b8f0d7f6c10",
                "vmgenid": "1d1e7a62-2f57-4c1b-b0e3-8c2c3a9a5e00"
            }),
        ),
        GuestSeed::new(
            101,
            "qemu",
            "pve2",
            "stopped",
            json!({
                "name": "db01", "cores": 4, "sockets": 1, "memory": "4096", "ostype": "l26",
                "net0": "virtio=BC:24:11:00:01:01,bridge=vmbr0",
                "scsi0": "local-lvm:vm-101-disk-0,size=64G", "scsihw": "virtio-scsi-single"
            }),
        ),
        GuestSeed::new(
            200,
            "lxc",
            "pve1",
            "stopped",
            json!({
                "hostname": "ct200", "cores": 1, "memory": 512, "swap": 512, "ostype": "debian",
                "arch": "amd64", "rootfs": "local-lvm:vm-200-disk-0,size=8G",
                "net0": "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:02:00,ip=dhcp,type=veth"
            }),
        ),
    ]
}

impl Fixture {
    /// The built-in fixture (see the module docs).
    pub fn default_fixture() -> Fixture {
        Fixture {
            cluster: default_cluster(),
            nodes: vec![NodeSeed::online("pve1"), NodeSeed::online("pve2")],
            storages: local_storages(),
            guests: default_guests(),
            users: vec![UserSeed::new("root@pam")],
            groups: Vec::new(),
            roles: BTreeMap::new(),
            acl: Vec::new(),
            faults: Vec::new(),
            objects: BTreeMap::new(),
        }
    }

    /// Parses a YAML or JSON fixture (JSON is YAML).
    pub fn parse(text: &str) -> Result<Fixture, Error> {
        serde_yaml::from_str(text).map_err(|error| Error::Seed(error.to_string()))
    }

    /// The store rows of the fixture.
    pub(crate) fn to_changes(&self, root_password: &str) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut put = |path: String, collection: Option<String>, value: Value| {
            changes.push(Change::Put {
                path,
                collection,
                value,
            });
        };
        put(CLUSTER_PATH.to_owned(), None, json!({"name": self.cluster}));
        // The built-in realms every Proxmox VE has (`/etc/pve/domains.cfg` defaults).
        for (realm, comment) in [
            ("pam", "Linux PAM standard authentication"),
            ("pve", "Proxmox VE authentication server"),
        ] {
            put(
                format!("/access/domains/{realm}"),
                Some("/access/domains".to_owned()),
                json!({"realm": realm, "type": realm, "comment": comment}),
            );
        }
        let node_names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        for (index, node) in self.nodes.iter().enumerate() {
            put(
                format!("/nodes/{}", node.name),
                Some("/nodes".to_owned()),
                json!({"status": node.status, "nodeid": index + 1, "ip": format!("192.168.1.{}", 11 + index)}),
            );
        }
        for storage in &self.storages {
            let mut config = storage.config.clone();
            config.insert("type".to_owned(), json!(storage.kind));
            config.insert("content".to_owned(), json!(storage.content));
            if !storage.nodes.is_empty() {
                config.insert("nodes".to_owned(), json!(storage.nodes.join(",")));
            }
            put(
                format!("/storage/{}", storage.id),
                Some("/storage".to_owned()),
                Value::Object(config),
            );
        }
        for guest in &self.guests {
            let kind = if guest.kind == "lxc" { "lxc" } else { "qemu" };
            let collection = format!("/nodes/{}/{kind}", guest.node);
            let item = format!("{collection}/{}", guest.vmid);
            if !node_names.contains(&guest.node.as_str()) {
                tracing::warn!(vmid = guest.vmid, node = %guest.node, "seeded guest on an unknown node");
            }
            put(
                item.clone(),
                Some(collection),
                Value::Object(guest.config.clone()),
            );
            put(
                format!("{item}/status/current"),
                None,
                json!({"status": guest.status}),
            );
        }
        for user in &self.users {
            for change in access::user_changes(user, root_password) {
                if let Change::Put {
                    path,
                    collection,
                    value,
                } = change
                {
                    put(path, collection, value);
                }
            }
        }
        for (path, value) in &self.objects {
            let mut value = value.clone();
            let collection = value
                .as_object_mut()
                .and_then(|map| map.remove("_collection"))
                .and_then(|c| c.as_str().map(str::to_owned));
            put(path.clone(), collection, value);
        }
        let volumes = crate::ops::storage::seed_volumes(&changes);
        changes.extend(volumes);
        access::access_changes(self, &mut changes);
        crate::simulation::seed_changes(&mut changes, &self.faults);
        changes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn default_fixture_has_the_documented_rows() {
        let changes = Fixture::default_fixture().to_changes("secret");
        let paths: Vec<&str> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Put { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        for expected in [
            "/nodes/pve1",
            "/nodes/pve2",
            "/storage/local",
            "/storage/local-lvm",
            "/nodes/pve1/qemu/100",
            "/nodes/pve2/qemu/101",
            "/nodes/pve1/lxc/200",
            "/access/users/root@pam",
        ] {
            assert!(paths.contains(&expected), "{expected} missing");
        }
        let text =
            serde_json::to_string(&changes.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>())
                .unwrap();
        assert!(!text.contains("\"secret\""), "password stored in clear");
    }

    #[test]
    fn parses_yaml() {
        let fixture = Fixture::parse(
            "cluster: lab\nnodes:\n  - name: n1\nguests:\n  - {vmid: 300, type: qemu, node: n1, status: running}\n",
        )
        .unwrap();
        assert_eq!(fixture.cluster, "lab");
        assert_eq!(fixture.guests[0].vmid, 300);
        assert!(Fixture::parse("bogus: 1").is_err());
    }
}
