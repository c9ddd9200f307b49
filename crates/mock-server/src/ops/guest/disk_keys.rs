//! The disk and NIC keys of a guest config (`scsi0`, `rootfs`, `mp1`, `unused2`, `net0`) and
//! the volumes their values name, as qemu-server and pve-container parse them.

use serde_json::{Map, Value};
use shared_types::{DiskConfig, DiskSize, MountPoint};

use super::Kind;
use crate::ops::text;

/// Whether a config key holds a QEMU drive (`ide0`, `sata1`, `scsi2`, `virtio3`, `efidisk0`,
/// `tpmstate0`) or an LXC volume (`rootfs`, `mp0`); `unused[n]` is not included.
pub(crate) fn is_disk_key(kind: Kind, key: &str) -> bool {
    let numbered = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    match kind {
        Kind::Qemu => {
            ["ide", "sata", "scsi", "virtio"].into_iter().any(numbered)
                || matches!(key, "efidisk0" | "tpmstate0")
        }
        Kind::Lxc => key == "rootfs" || numbered("mp"),
    }
}

/// Whether a config key is `unused[n]`.
pub(crate) fn is_unused_key(key: &str) -> bool {
    key.strip_prefix("unused")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn is_net_key(key: &str) -> bool {
    key.strip_prefix("net")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A parsed disk value: the volume (or path) and the size.
#[derive(Debug, Clone)]
pub(crate) struct DiskValue {
    /// Volume ID, path, `none` or `cdrom`.
    pub(crate) volume: String,
    /// Size, if recorded.
    pub(crate) size: Option<DiskSize>,
    /// Whether this is a CD-ROM drive.
    pub(crate) cdrom: bool,
}

/// Parses a disk value of a guest config.
pub(crate) fn parse_disk(kind: Kind, key: &str, value: &str) -> Option<DiskValue> {
    if is_unused_key(key) {
        return Some(DiskValue {
            volume: value.split(',').next().unwrap_or(value).to_owned(),
            size: None,
            cdrom: false,
        });
    }
    match kind {
        Kind::Qemu => value.parse::<DiskConfig>().ok().map(|disk| DiskValue {
            cdrom: disk.is_cdrom(),
            volume: disk.file,
            size: disk.size,
        }),
        Kind::Lxc => value.parse::<MountPoint>().ok().map(|mount| DiskValue {
            volume: mount.volume,
            size: mount.size,
            cdrom: false,
        }),
    }
}

/// Every volume ID a config refers to (disks and `unused[n]`), CD-ROMs excluded.
pub(crate) fn config_volumes(kind: Kind, config: &Map<String, Value>) -> Vec<String> {
    config
        .iter()
        .filter(|(key, _)| is_disk_key(kind, key) || is_unused_key(key))
        .filter_map(|(key, value)| parse_disk(kind, key, &text(value)))
        .filter(|disk| !disk.cdrom && disk.volume.contains(':'))
        .map(|disk| disk.volume)
        .collect()
}

/// Whether a volume name belongs to a guest (`vm-100-…`, `base-100-…`, `100/…`).
pub(crate) fn owned_by(volid: &str, vmid: u32) -> bool {
    let Some((_, name)) = volid.split_once(':') else {
        return false;
    };
    let name = name.rsplit('/').next().unwrap_or(name);
    name.starts_with(&format!("vm-{vmid}-")) || name.starts_with(&format!("base-{vmid}-"))
}

/// The first free `unused[n]` key.
pub(crate) fn free_unused_key(config: &Map<String, Value>) -> String {
    (0..)
        .map(|n| format!("unused{n}"))
        .find(|key| !config.contains_key(key))
        .unwrap_or_else(|| "unused0".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_keys() {
        assert!(is_disk_key(Kind::Qemu, "scsi0"));
        assert!(is_disk_key(Kind::Qemu, "efidisk0"));
        assert!(!is_disk_key(Kind::Qemu, "scsihw"));
        assert!(!is_disk_key(Kind::Qemu, "net0"));
        assert!(is_disk_key(Kind::Lxc, "rootfs"));
        assert!(is_disk_key(Kind::Lxc, "mp3"));
        assert!(is_unused_key("unused0"));
        assert!(!is_unused_key("unused"));
    }

    #[test]
    fn volumes_belong_to_their_guest() {
        assert!(owned_by("local-lvm:vm-100-disk-0", 100));
        assert!(owned_by("local:100/vm-100-disk-0.qcow2", 100));
        assert!(!owned_by("local:iso/debian.iso", 100));
        assert!(!owned_by("local-lvm:vm-1000-disk-0", 100));
    }
}
