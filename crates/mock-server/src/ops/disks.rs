//! Guest disks and NICs: volume allocation for new-disk syntax (`scsi0=local-lvm:8`), generated
//! MAC addresses, `resize`, and `move_disk` / `move_volume`.
//!
//! Property strings are parsed and printed with the shared types ([`DiskConfig`] for QEMU
//! drives, [`MountPoint`] for LXC `rootfs`/`mp[n]`, [`NetConfig`] and [`LxcNetConfig`] for NICs,
//! [`DiskSize`] for sizes), so a value reads back in Proxmox's canonical key order.
//!
//! Volume names follow `PVE::Storage::Plugin::find_free_diskname`: `vm-<vmid>-disk-<n>` with the
//! lowest free `n` on that storage; file-based storages (`dir`, `nfs`, `cifs`, ...) put the file
//! below a directory named after the VM ID (`local:100/vm-100-disk-0.qcow2`). The sizes of the
//! special QEMU disks are Proxmox's: `efidisk0` and `tpmstate0` get 4 MiB, a cloud-init drive
//! (`local-lvm:cloudinit`) becomes `vm-<vmid>-cloudinit` of 4 MiB.

use std::collections::HashSet;
use std::fmt::Display;
use std::str::FromStr;

use serde_json::{Value, json};
use shared_types::{DiskConfig, DiskSize, LxcNetConfig, MountPoint, NetConfig};

use super::guest::check_edit;
use super::guest::{Guest, Kind, free_unused_key, is_disk_key, is_net_key, parse_disk};
use super::storage::{self, Volume};
use super::{Call, Plan, Tx};
use super::{fail, text};
use crate::error::AppError;
use crate::store::{Change, Tables};

/// A deterministic MAC address with Proxmox's default prefix `BC:24:11` (datacenter.cfg
/// `mac_prefix`), derived from the VM ID and the NIC's key.
pub(crate) fn generated_mac(vmid: u32, key: &str) -> String {
    let seed = crate::schema::seed(&["mac", &vmid.to_string(), key]);
    let bytes = seed.to_be_bytes();
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        bytes[0], bytes[1], bytes[2]
    )
}

/// Allocates volumes and fills in MAC addresses while a config is written, collecting the volume
/// rows to create. Names handed out in one request never collide.
#[derive(Debug)]
pub(crate) struct Allocator<'t> {
    tables: &'t Tables,
    node: String,
    vmid: u32,
    taken: HashSet<String>,
    /// Volume rows to create.
    pub(crate) changes: Vec<Change>,
    /// Task log lines.
    pub(crate) log: Vec<String>,
}

impl<'t> Allocator<'t> {
    /// An allocator for a guest's volumes on a node.
    pub(crate) fn new(tables: &'t Tables, node: &str, vmid: u32) -> Allocator<'t> {
        Allocator {
            tables,
            node: node.to_owned(),
            vmid,
            taken: HashSet::new(),
            changes: Vec::new(),
            log: Vec::new(),
        }
    }

    /// The value to store for a config key: new disks allocated, NICs given a MAC address.
    pub(crate) fn prepare(
        &mut self,
        kind: Kind,
        key: &str,
        value: &Value,
    ) -> Result<Value, AppError> {
        if is_net_key(key) {
            return Ok(json!(net_with_mac(kind, self.vmid, key, &text(value))?));
        }
        if !is_disk_key(kind, key) {
            return Ok(value.clone());
        }
        let raw = text(value);
        match kind {
            Kind::Qemu => {
                let mut disk: DiskConfig = raw
                    .parse()
                    .map_err(|_| AppError::param(key, "unable to parse drive options"))?;
                if disk.is_cdrom() {
                    return Ok(value.clone());
                }
                let Some((storage, spec)) = disk.file.split_once(':') else {
                    return Ok(value.clone());
                };
                let (storage, spec) = (storage.to_owned(), spec.to_owned());
                let size = if spec == "cloudinit" {
                    disk.media = Some("cdrom".to_owned());
                    DiskSize::mib(4)
                } else if let Some(size) = new_disk_size(&spec) {
                    if matches!(key, "efidisk0" | "tpmstate0") {
                        DiskSize::mib(4)
                    } else {
                        size
                    }
                } else {
                    return Ok(value.clone());
                };
                let format = disk.format.clone();
                let volume =
                    self.allocate(kind, &storage, size, format.as_deref(), spec == "cloudinit")?;
                disk.file = volume.volid.clone();
                disk.size = Some(size);
                if volume.format == "qcow2" && disk.format.is_none() {
                    disk.format = Some("qcow2".to_owned());
                }
                Ok(json!(disk.to_string()))
            }
            Kind::Lxc => {
                let mut mount: MountPoint = raw
                    .parse()
                    .map_err(|_| AppError::param(key, "unable to parse mount point"))?;
                let Some((storage, spec)) = mount.volume.split_once(':') else {
                    return Ok(value.clone());
                };
                let Some(size) = new_disk_size(spec) else {
                    return Ok(value.clone());
                };
                let storage = storage.to_owned();
                let volume = self.allocate(kind, &storage, size, Some("raw"), false)?;
                mount.volume = volume.volid;
                mount.size = Some(size);
                Ok(json!(mount.to_string()))
            }
        }
    }

    /// Allocates a new volume for the guest on a storage.
    pub(crate) fn allocate(
        &mut self,
        kind: Kind,
        storage_id: &str,
        size: DiskSize,
        format: Option<&str>,
        cloudinit: bool,
    ) -> Result<Volume, AppError> {
        let config = storage::storage_config(self.tables, storage_id)?;
        let content = if kind == Kind::Lxc {
            "rootdir"
        } else {
            "images"
        };
        if !storage::supports(&config, content) {
            return Err(AppError::param(
                "storage",
                if kind == Kind::Lxc {
                    format!("storage '{storage_id}' does not support container directories")
                } else {
                    format!("storage '{storage_id}' does not support vm images")
                },
            ));
        }
        let file_based = storage::is_file_based(&config);
        let format = match (format, file_based, kind) {
            (Some(format), true, _) => format.to_owned(),
            (None, true, Kind::Qemu) => "qcow2".to_owned(),
            _ => "raw".to_owned(),
        };
        let vmid = self.vmid;
        let name_for = |base: &str| {
            if file_based {
                format!("{storage_id}:{vmid}/{base}.{format}")
            } else {
                format!("{storage_id}:{base}")
            }
        };
        let volid = if cloudinit {
            name_for(&format!("vm-{vmid}-cloudinit"))
        } else {
            let mut index = 0;
            loop {
                let candidate = name_for(&format!("vm-{vmid}-disk-{index}"));
                let path = storage::volume_path(self.tables, &self.node, &candidate)?;
                if !self.taken.contains(&candidate) && !self.tables.exists(&path) {
                    break candidate;
                }
                index += 1;
            }
        };
        self.taken.insert(volid.clone());
        let volume = Volume {
            volid: volid.clone(),
            format,
            size: size.bytes(),
            content: content.to_owned(),
            vmid: Some(vmid),
        };
        self.log.push(format!(
            "  Logical volume \"{}\" created.",
            volid
                .split_once(':')
                .map_or(volid.as_str(), |(_, name)| name)
        ));
        self.changes
            .push(storage::put_volume(self.tables, &self.node, &volume)?);
        Ok(volume)
    }
}

/// `STORAGE:SIZE` (size in GiB, possibly fractional) is the new-disk syntax.
fn new_disk_size(spec: &str) -> Option<DiskSize> {
    if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    format!("{spec}G").parse().ok()
}

/// A NIC value with a MAC address filled in when it has none.
pub(crate) fn net_with_mac(
    kind: Kind,
    vmid: u32,
    key: &str,
    value: &str,
) -> Result<String, AppError> {
    let invalid = |_| AppError::param(key, "unable to parse network options");
    match kind {
        Kind::Qemu => {
            let mut net: NetConfig = value.parse().map_err(invalid)?;
            if net.macaddr.is_none() {
                net.macaddr = Some(generated_mac(vmid, key));
            }
            Ok(net.to_string())
        }
        Kind::Lxc => {
            let mut net: LxcNetConfig = value.parse().map_err(invalid)?;
            if net.hwaddr.is_none() {
                net.hwaddr = Some(generated_mac(vmid, key));
            }
            if net.interface_type.is_none() {
                net.interface_type = Some("veth".to_owned());
            }
            Ok(net.to_string())
        }
    }
}

/// A property string with `edit` applied to its parsed form, printed again; unchanged when it
/// does not parse as `T`.
fn edited<T: FromStr + Display>(value: &str, edit: impl FnOnce(&mut T)) -> String {
    match value.parse::<T>() {
        Ok(mut parsed) => {
            edit(&mut parsed);
            parsed.to_string()
        }
        Err(_) => value.to_owned(),
    }
}

/// A NIC value with a fresh MAC address (clones get new addresses).
pub(crate) fn net_with_new_mac(kind: Kind, vmid: u32, key: &str, value: &str) -> String {
    let mac = generated_mac(vmid, key);
    match kind {
        Kind::Qemu => edited(value, |net: &mut NetConfig| net.macaddr = Some(mac)),
        Kind::Lxc => edited(value, |net: &mut LxcNetConfig| net.hwaddr = Some(mac)),
    }
}

/// Replaces the volume (and optionally the size) of a disk value, keeping its options.
pub(crate) fn with_volume(kind: Kind, value: &str, volume: &str, size: Option<DiskSize>) -> String {
    match kind {
        Kind::Qemu => edited(value, |disk: &mut DiskConfig| {
            disk.file = volume.to_owned();
            disk.size = size.or(disk.size);
        }),
        Kind::Lxc => edited(value, |mount: &mut MountPoint| {
            mount.volume = volume.to_owned();
            mount.size = size.or(mount.size);
        }),
    }
}

/// `PUT .../resize`: `size=+2G` grows by, `size=40G` grows to (`resize_vm` in qemu-server
/// `src/PVE/API2/Qemu.pm`, `resize_vm` in pve-container `src/PVE/API2/LXC.pm`). The checks run
/// in the worker, so they fail the task.
pub(crate) fn resize(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let mut config = guest.config(tables)?;
    if let Err(message) = check_edit(call, tables, guest, &config) {
        return fail(call, message);
    }
    let disk_key = call.arg_text("disk").unwrap_or_default();
    let size_text = call.arg_text("size").unwrap_or_default();
    let Some(value) = config.get(&disk_key).map(text) else {
        return fail(call, format!("disk '{disk_key}' does not exist\n"));
    };
    let Some(disk) = parse_disk(guest.kind, &disk_key, &value) else {
        return fail(call, format!("disk '{disk_key}' does not exist\n"));
    };
    if disk.cdrom {
        return fail(call, "you can't resize a cdrom\n");
    }
    let Ok(requested) = size_text.parse::<DiskSize>() else {
        return Err(AppError::param(
            "size",
            "value does not match the regex pattern",
        ));
    };
    let current = disk.size.map_or(0, DiskSize::bytes);
    let new_bytes = if requested.is_relative() {
        current.saturating_add(requested.bytes())
    } else {
        requested.bytes()
    };
    if new_bytes < current {
        return fail(call, "shrinking disks is not supported\n");
    }
    let new_size = DiskSize::from_bytes(new_bytes);
    let mut plan = Plan::default();
    config.insert(
        disk_key.clone(),
        json!(with_volume(
            guest.kind,
            &value,
            &disk.volume,
            Some(new_size)
        )),
    );
    plan.log.push(format!(
        "Size of logical volume changed from {} to {}.",
        DiskSize::from_bytes(current),
        new_size
    ));
    if let Some(change) = storage::resize_volume(tables, &guest.node, &disk.volume, new_bytes)? {
        plan.at_end.push(change);
    }
    plan.at_end
        .push(super::guest::put_config(tables, guest, config));
    Ok(plan)
}

/// `POST .../move_disk` (QEMU, params `disk`, `storage`, `format`, `delete`) and
/// `POST .../move_volume` (LXC, params `volume`, `storage`, `delete`): the disk gets a new volume
/// on the target storage; the old one is kept as `unused[n]` unless `delete=1`
/// (`move_vm_disk` in qemu-server `src/PVE/API2/Qemu.pm`, `move_volume` in pve-container
/// `src/PVE/API2/LXC.pm`).
pub(crate) fn move_disk(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let mut config = guest.config(tables)?;
    let key_param = if guest.kind == Kind::Lxc {
        "volume"
    } else {
        "disk"
    };
    let disk_key = call.arg_text(key_param).unwrap_or_default();
    if call.args.contains_key("target-vmid") || call.args.contains_key("target-digest") {
        return Err(AppError::die(
            "moving a disk to another guest is not simulated by the mock\n",
        ));
    }
    let Some(target_storage) = call.arg_text("storage") else {
        return Err(AppError::param(
            "storage",
            "property is missing and it is not optional",
        ));
    };
    if let Err(message) = check_edit(call, tables, guest, &config) {
        return fail(call, message);
    }
    if guest.kind == Kind::Lxc && guest.power(tables).is_running() {
        return fail(call, "cannot move volumes of a running container\n");
    }
    let Some(value) = config.get(&disk_key).map(text) else {
        return fail(call, format!("disk '{disk_key}' does not exist\n"));
    };
    let Some(disk) = parse_disk(guest.kind, &disk_key, &value).filter(|d| !d.cdrom) else {
        return fail(call, format!("disk '{disk_key}' does not exist\n"));
    };
    let (old_storage, _) = disk.volume.split_once(':').unwrap_or_default();
    let format = call.arg_text("format");
    let old_format = storage::volume(tables, &guest.node, &disk.volume).map(|v| v.format);
    if old_storage == target_storage && (format.is_none() || format == old_format) {
        return fail(
            call,
            "you can't move to the same storage with same format\n",
        );
    }
    let size = disk.size.unwrap_or_else(|| DiskSize::gib(1));
    let mut allocator = Allocator::new(tables, &guest.node, guest.vmid);
    let new_volume =
        allocator.allocate(guest.kind, &target_storage, size, format.as_deref(), false)?;
    let mut plan = Plan {
        at_end: std::mem::take(&mut allocator.changes),
        ..Plan::default()
    };
    let mut new_value = with_volume(guest.kind, &value, &new_volume.volid, Some(size));
    if guest.kind == Kind::Qemu
        && let Ok(mut parsed) = new_value.parse::<DiskConfig>()
    {
        parsed.format = (new_volume.format == "qcow2").then(|| "qcow2".to_owned());
        new_value = parsed.to_string();
    }
    config.insert(disk_key.clone(), json!(new_value));
    plan.log.push(format!(
        "moving disk '{}' to '{}'",
        disk.volume, new_volume.volid
    ));
    if call.flag("delete") {
        if let Some(path) = storage::existing_volume_path(tables, &guest.node, &disk.volume)? {
            plan.at_end.push(Change::Delete { path });
        }
    } else {
        config.insert(free_unused_key(&config), json!(disk.volume));
    }
    plan.at_end
        .push(super::guest::put_config(tables, guest, config));
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_deterministic() {
        let mac = generated_mac(100, "net0");
        assert_eq!(mac, generated_mac(100, "net0"));
        assert_ne!(mac, generated_mac(100, "net1"));
        assert!(mac.starts_with("BC:24:11:"));
        assert_eq!(mac.len(), 17);
        let net = net_with_mac(Kind::Qemu, 100, "net0", "virtio,bridge=vmbr0").unwrap_or_default();
        assert_eq!(net, format!("virtio={mac},bridge=vmbr0"));
    }

    #[test]
    fn new_disk_sizes() {
        assert_eq!(new_disk_size("8"), Some(DiskSize::gib(8)));
        assert_eq!(new_disk_size("0.5"), Some(DiskSize::mib(512)));
        assert_eq!(new_disk_size("vm-100-disk-0"), None);
    }
}
