//! Which privileges a change of a guest's config needs, key by key, as qemu-server
//! (`$check_vm_modify_config_perm`, `$check_storage_access`, `check_usb_perm`,
//! `check_hostpci_perm`, `check_rng_perm`, `check_dir_perm` and the per-key checks of
//! `update_vm_api` in `src/PVE/API2/Qemu.pm`) and pve-container (`check_ct_modify_config_perm`
//! in `src/PVE/LXC.pm`) check them, with pve-guest-common's `check_vnet_access` (`SDN.Use` on
//! the bridge) and `assert_tag_permissions`.
//!
//! An operation's `permissions` only say "VM.Config.* on /vms/{vmid}, any of them"; these checks
//! say which one each key needs, and which keys (`args`, `hookscript`, host devices, raw device
//! paths) only `root@pam` may set. A missing privilege is a 403; the `die`s (`only root can set
//! 'args' config`) are 500s, as in Proxmox.

use serde_json::{Map, Value};

use super::Kind;
use super::disk_keys::{is_disk_key, is_net_key, is_unused_key};
use crate::access::rpcenv::{RpcEnv, parse_volname};
use crate::error::AppError;
use crate::ops::text;
use crate::store::Tables;

/// One change of a guest's config, as the handler received it.
#[derive(Debug)]
pub(crate) struct ConfigChange<'a> {
    /// The guest's kind.
    pub(crate) kind: Kind,
    /// The guest's ID.
    pub(crate) vmid: u32,
    /// The pool a new guest goes into (creation only).
    pub(crate) pool: Option<&'a str>,
    /// The config before the change (empty for a new guest).
    pub(crate) old: &'a Map<String, Value>,
    /// The keys set, with their new values.
    pub(crate) set: &'a Map<String, Value>,
    /// The keys deleted (`delete=`) or reverted (`revert=`).
    pub(crate) delete: &'a [String],
    /// Whether the guest is being created (messages say "set", not "modify").
    pub(crate) create: bool,
}

/// Checks a config change for the caller.
pub(crate) fn check_config_change(
    rpc: &RpcEnv<'_>,
    tables: &Tables,
    change: &ConfigChange<'_>,
) -> Result<(), AppError> {
    if rpc.is_root() {
        return Ok(());
    }
    let checks = Checks {
        rpc,
        tables,
        change,
    };
    match change.kind {
        Kind::Qemu => checks.qemu(),
        Kind::Lxc => checks.lxc(),
    }
}

struct Checks<'a> {
    rpc: &'a RpcEnv<'a>,
    tables: &'a Tables,
    change: &'a ConfigChange<'a>,
}

/// `[opt]\d+`.
fn numbered(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A property string's value for `key` (or its first bare value, for the `default_key`).
fn prop(value: &str, key: &str, default_key: bool) -> Option<String> {
    value
        .split(',')
        .find_map(|part| match part.split_once('=') {
            Some((k, v)) if k == key => Some(v.to_owned()),
            None if default_key && !part.is_empty() => Some(part.to_owned()),
            _ => None,
        })
}

/// qemu-server's option groups, as `$check_vm_modify_config_perm` maps them to privileges.
fn qemu_privileges(key: &str) -> Option<&'static [&'static str]> {
    Some(match key {
        "cores" | "cpu" | "runningcpu" | "cpulimit" | "cpuunits" | "numa" | "smp" | "sockets"
        | "vcpus" => &["VM.Config.CPU"],
        _ if numbered(key, "numa") => &["VM.Config.CPU"],
        "memory" | "balloon" | "shares" | "allow-ksm" => &["VM.Config.Memory"],
        "acpi" | "hotplug" | "kvm" | "machine" | "runningmachine" | "scsihw" | "smbios1"
        | "tablet" | "vga" | "watchdog" | "audio0" | "rng0" => &["VM.Config.HWType"],
        "agent" | "autostart" | "bios" | "description" | "keyboard" | "localtime"
        | "migrate_downtime" | "migrate_speed" | "name" | "onboot" | "ostype" | "protection"
        | "reboot" | "startdate" | "startup" | "tdf" | "template" => &["VM.Config.Options"],
        "freeze" => &["VM.PowerMgmt"],
        "boot" | "bootdisk" | "vmstatestorage" => &["VM.Config.Disk"],
        "running-nets-host-mtu" => &["VM.Config.Network"],
        _ if is_net_key(key) => &["VM.Config.Network"],
        "vmstate" => &["VM.Config.Disk", "VM.PowerMgmt"],
        _ => return None,
    })
}

/// Keys `$check_vm_modify_config_perm` leaves to value-dependent checks.
fn qemu_value_checked(key: &str) -> bool {
    is_disk_key(Kind::Qemu, key)
        || key == "cdrom"
        || key == "tags"
        || ["unused", "serial", "usb", "hostpci", "virtiofs"]
            .iter()
            .any(|prefix| numbered(key, prefix))
}

/// Cloud-init options: `VM.Config.Cloudinit` or `VM.Config.Network`.
fn is_cloudinit_key(key: &str) -> bool {
    matches!(
        key,
        "cicustom"
            | "cipassword"
            | "citype"
            | "ciuser"
            | "ciupgrade"
            | "nameserver"
            | "searchdomain"
            | "sshkeys"
    ) || numbered(key, "ipconfig")
}

/// `^(([^/:\s]+):)?(\d+(\.\d+)?)$`: a new disk of a size (GiB), on a storage.
fn new_disk_storage(volid: &str) -> Option<Option<&str>> {
    let (storage, size) = match volid.split_once(':') {
        Some((storage, size)) => (Some(storage), size),
        None => (None, volid),
    };
    if storage.is_some_and(|s| s.is_empty() || s.contains(['/', ' ', '\t'])) {
        return None;
    }
    let (whole, fraction) = size.split_once('.').unwrap_or((size, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    (digits(whole) && digits(fraction)).then_some(storage)
}

impl Checks<'_> {
    fn vm_perm(&self, privs: &[&str], any: bool) -> Result<(), AppError> {
        self.rpc
            .check_vm_perm(self.change.vmid, self.change.pool, privs, any)
    }

    /// The verb of the "only root can ..." messages.
    fn verb(&self, deleting: bool) -> &'static str {
        if deleting {
            "delete"
        } else if self.change.create {
            "set"
        } else {
            "modify"
        }
    }

    fn qemu(&self) -> Result<(), AppError> {
        let change = self.change;
        for key in change.delete.iter().chain(change.set.keys()) {
            self.qemu_option(key)?;
        }
        for (key, value) in change.set {
            let value = text(value);
            if let Some(old) = change.old.get(key).map(text) {
                self.qemu_value(key, &old, true)?;
            }
            self.qemu_value(key, &value, false)?;
        }
        for key in change.delete {
            if let Some(old) = change.old.get(key).map(text) {
                self.qemu_delete(key, &old)?;
            }
        }
        Ok(())
    }

    /// `$check_vm_modify_config_perm` for one key.
    fn qemu_option(&self, key: &str) -> Result<(), AppError> {
        if qemu_value_checked(key) {
            return Ok(());
        }
        if is_cloudinit_key(key) {
            return self.vm_perm(&["VM.Config.Cloudinit", "VM.Config.Network"], true);
        }
        let Some(privs) = qemu_privileges(key) else {
            return Err(AppError::die(format!("only root can set '{key}' config\n")));
        };
        self.vm_perm(privs, false)?;
        if key == "startup" {
            self.rpc.check("/", &["Sys.Modify"])?;
        }
        Ok(())
    }

    /// The value-dependent checks of a key being set (`old`: the value it replaces).
    fn qemu_value(&self, key: &str, value: &str, old: bool) -> Result<(), AppError> {
        let verb = self.verb(false);
        if is_disk_key(Kind::Qemu, key) || key == "cdrom" {
            if !self.change.create {
                self.drive_perms(value)?;
            }
            if !old {
                self.storage_access(key, value)?;
            }
        } else if numbered(key, "serial") {
            if old {
                return Ok(());
            }
            let was_socket = self.change.old.get(key).is_none_or(|v| text(v) == "socket");
            if value == "socket" && was_socket {
                self.vm_perm(&["VM.Config.HWType"], false)?;
            } else {
                return Err(AppError::die(format!(
                    "only root can {verb} '{key}' config for real devices\n"
                )));
            }
        } else {
            self.qemu_device(key, value)?;
        }
        if is_net_key(key) {
            self.bridge_access(value)?;
        }
        if key == "tags" && !old {
            self.vm_perm(&["VM.Config.Options"], false)?;
        }
        Ok(())
    }

    /// USB, PCI, RNG and virtiofs devices: mapped devices need `Mapping.Use`, host devices
    /// root.
    fn qemu_device(&self, key: &str, value: &str) -> Result<(), AppError> {
        if numbered(key, "usb") {
            self.vm_perm(&["VM.Config.HWType"], false)?;
            return match (prop(value, "host", true), prop(value, "mapping", false)) {
                (Some(host), _) if host.eq_ignore_ascii_case("spice") => Ok(()),
                (Some(_), _) => Err(AppError::die(format!(
                    "only root can set '{key}' config for real devices\n"
                ))),
                (None, Some(mapping)) => self
                    .rpc
                    .check(&format!("/mapping/usb/{mapping}"), &["Mapping.Use"]),
                (None, None) => Err(AppError::die("either 'host' or 'mapping' must be set.\n")),
            };
        }
        if numbered(key, "hostpci") {
            match (prop(value, "host", true), prop(value, "mapping", false)) {
                (Some(_), _) => {
                    return Err(AppError::die(format!(
                        "only root can set '{key}' config for non-mapped devices\n"
                    )));
                }
                (None, Some(mapping)) => {
                    self.rpc
                        .check(&format!("/mapping/pci/{mapping}"), &["Mapping.Use"])?;
                    self.vm_perm(&["VM.Config.HWType"], false)?;
                }
                (None, None) => {
                    return Err(AppError::die("either 'host' or 'mapping' must be set.\n"));
                }
            }
            if prop(value, "romfile", false).is_some() {
                return Err(AppError::param(
                    key,
                    "only root@pam can set 'romfile' option",
                ));
            }
            return Ok(());
        }
        if numbered(key, "rng") && prop(value, "source", true).as_deref() == Some("/dev/hwrng") {
            return self.rpc.check("/mapping/hwrng", &["Mapping.Use"]);
        }
        if numbered(key, "virtiofs") {
            self.vm_perm(&["VM.Config.Disk"], false)?;
            let dirid = prop(value, "dirid", true).unwrap_or_default();
            return self
                .rpc
                .check(&format!("/mapping/dir/{dirid}"), &["Mapping.Use"]);
        }
        Ok(())
    }

    /// The checks `update_vm_api` makes for a deleted key, on its current value.
    fn qemu_delete(&self, key: &str, old: &str) -> Result<(), AppError> {
        if is_unused_key(key) {
            return self.vm_perm(&["VM.Config.Disk"], false);
        }
        if is_disk_key(Kind::Qemu, key) {
            return self.drive_perms(old);
        }
        if numbered(key, "serial") {
            if old == "socket" {
                return self.vm_perm(&["VM.Config.HWType"], false);
            }
            return Err(AppError::die(format!(
                "only root can delete '{key}' config for real devices\n"
            )));
        }
        if key == "tags" {
            return self.vm_perm(&["VM.Config.Options"], false);
        }
        if is_net_key(key) {
            return self.bridge_access(old);
        }
        self.qemu_device(key, old)
    }

    /// `$check_drive_perms`: a cloud-init drive needs `VM.Config.Cloudinit` and
    /// `VM.Config.CDROM`, a CD-ROM `VM.Config.CDROM`, any other drive `VM.Config.Disk`.
    fn drive_perms(&self, value: &str) -> Result<(), AppError> {
        let file = prop(value, "file", true).unwrap_or_default();
        let media_cdrom = prop(value, "media", false).as_deref() == Some("cdrom");
        let cloudinit = file == "cloudinit" || file.ends_with(":cloudinit") || {
            file.split_once(':')
                .is_some_and(|(_, name)| name.contains("vm-") && name.contains("-cloudinit"))
        };
        let privs: &[&str] = if cloudinit {
            &["VM.Config.Cloudinit", "VM.Config.CDROM"]
        } else if media_cdrom || file == "cdrom" {
            &["VM.Config.CDROM"]
        } else {
            &["VM.Config.Disk"]
        };
        self.rpc.check_vm_perm(self.change.vmid, None, privs, false)
    }

    /// `$check_storage_access` for one drive: what its volume needs.
    fn storage_access(&self, key: &str, value: &str) -> Result<(), AppError> {
        let file = prop(value, "file", true).unwrap_or_default();
        let cdrom = key == "cdrom" || prop(value, "media", false).as_deref() == Some("cdrom");
        if file.is_empty() || file == "none" || file == "cloudinit" || file.ends_with(":cloudinit")
        {
            return Ok(());
        }
        if cdrom && file == "cdrom" {
            return self.rpc.check("/", &["Sys.Console"]);
        }
        if !cdrom && let Some(storage) = new_disk_storage(&file) {
            let Some(storage) = storage else {
                return Err(AppError::die(
                    "no storage ID specified (and no default storage)\n",
                ));
            };
            return self
                .rpc
                .check(&format!("/storage/{storage}"), &["Datastore.AllocateSpace"]);
        }
        self.volume_access(&file)
    }

    /// `check_volume_access` for a volume the guest is to use.
    fn volume_access(&self, volid: &str) -> Result<(), AppError> {
        let kind = if volid.contains(':') {
            crate::ops::volname::parse_volname(self.tables, volid)?
        } else {
            parse_volname(volid)
        };
        self.rpc
            .check_volume_access(volid, &kind, Some(self.change.vmid))
    }

    /// `check_bridge_access` / `check_vnet_access`: `SDN.Use` on the bridge (or its VLANs) in
    /// the zone of an SDN VNet of that name, else `localnetwork`.
    fn bridge_access(&self, net: &str) -> Result<(), AppError> {
        let Some(bridge) = prop(net, "bridge", false) else {
            return Ok(());
        };
        let zone = self
            .tables
            .field(&format!("/cluster/sdn/vnets/{bridge}"), "zone");
        let zone = zone
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or("localnetwork");
        let base = format!("/sdn/zones/{zone}/{bridge}");
        let tag = prop(net, "tag", false);
        let trunks = prop(net, "trunks", false);
        if let Some(tag) = &tag {
            self.rpc.check(&format!("{base}/{tag}"), &["SDN.Use"])?;
        }
        if let Some(trunks) = &trunks {
            for vlan in trunk_tags(trunks) {
                self.rpc.check(&format!("{base}/{vlan}"), &["SDN.Use"])?;
            }
        }
        if tag.is_none() && trunks.is_none() {
            self.rpc.check(&base, &["SDN.Use"])?;
        }
        Ok(())
    }

    fn lxc(&self) -> Result<(), AppError> {
        let change = self.change;
        // `unprivileged` is taken out of the parameters before the check (`create_vm` in
        // pve-container `src/PVE/API2/LXC.pm`) and cannot be changed later.
        for (key, value) in change.set.iter().filter(|(key, _)| *key != "unprivileged") {
            self.lxc_option(key, Some(&text(value)))?;
        }
        for key in change.delete {
            self.lxc_option(key, None)?;
        }
        Ok(())
    }

    /// `check_ct_modify_config_perm`'s check of one key (`value` is `None` for a delete).
    fn lxc_option(&self, key: &str, value: Option<&str>) -> Result<(), AppError> {
        let only_root = |what: &str| {
            Err(crate::access::check::perm_error(Some(&format!(
                "{what} is only allowed for root@pam"
            ))))
        };
        match key {
            "cores" | "cpuunits" | "cpulimit" => self.vm_perm(&["VM.Config.CPU"], false),
            "rootfs" => self.lxc_mount(value),
            _ if numbered(key, "mp") => self.lxc_mount(value),
            "memory" | "swap" => self.vm_perm(&["VM.Config.Memory"], false),
            _ if is_net_key(key) => {
                self.vm_perm(&["VM.Config.Network"], false)?;
                if let Some(old) = self.change.old.get(key) {
                    self.bridge_access(&text(old))?;
                }
                value.map_or(Ok(()), |value| self.bridge_access(value))
            }
            _ if numbered(key, "dev") => only_root("configuring device passthrough"),
            "nameserver" | "searchdomain" | "hostname" => {
                self.vm_perm(&["VM.Config.Network"], false)
            }
            "features" => self.lxc_features(value),
            "hookscript" => only_root("changing the hookscript"),
            "tags" => self.vm_perm(&["VM.Config.Options"], false),
            _ => self.vm_perm(&["VM.Config.Options"], false),
        }
    }

    /// `rootfs` and `mp[n]`: `VM.Config.Disk`; only volumes (no bind mounts or devices) for
    /// anyone but root; a new volume needs `Datastore.AllocateSpace` on its storage.
    fn lxc_mount(&self, value: Option<&str>) -> Result<(), AppError> {
        self.vm_perm(&["VM.Config.Disk"], false)?;
        let Some(value) = value else {
            return Ok(());
        };
        let volume = prop(value, "volume", true).unwrap_or_default();
        if volume.starts_with('/') {
            let kind = if volume.starts_with("/dev/") {
                "device"
            } else {
                "bind"
            };
            return Err(crate::access::check::perm_error(Some(&format!(
                "mount point type {kind} is only allowed for root@pam"
            ))));
        }
        match volume.split_once(':') {
            Some((storage, size)) if new_disk_storage(size) == Some(None) => self
                .rpc
                .check(&format!("/storage/{storage}"), &["Datastore.AllocateSpace"]),
            _ => {
                let kind = parse_volname(volume.split_once(':').map_or("", |(_, name)| name));
                if !matches!(kind.vtype.as_str(), "" | "images" | "rootdir") {
                    return Err(AppError::die(format!(
                        "unable to use volume {volume} - content type needs to be 'rootdir'\n"
                    )));
                }
                self.rpc
                    .check_volume_access(&volume, &kind, Some(self.change.vmid))
            }
        }
    }

    /// `features`: root only for a privileged container and for anything but `nesting`, which
    /// needs `VM.Allocate`.
    fn lxc_features(&self, value: Option<&str>) -> Result<(), AppError> {
        let only_root = |what: &str| {
            Err(crate::access::check::perm_error(Some(&format!(
                "{what} is only allowed for root@pam"
            ))))
        };
        let unprivileged = self
            .change
            .set
            .get("unprivileged")
            .or_else(|| self.change.old.get("unprivileged"))
            .is_some_and(|v| text(v) == "1" || v == &Value::Bool(true));
        if !unprivileged {
            return only_root("changing feature flags for privileged container");
        }
        let parse = |text: &str| -> Map<String, Value> {
            text.split(',')
                .filter_map(|part| part.split_once('='))
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect()
        };
        let old = parse(
            &self
                .change
                .old
                .get("features")
                .map(text)
                .unwrap_or_default(),
        );
        let (changed, other): (Vec<String>, bool) = match value {
            Some(value) => {
                let new = parse(value);
                let changed: Vec<String> = old
                    .keys()
                    .chain(new.keys())
                    .filter(|key| old.get(*key) != new.get(*key))
                    .cloned()
                    .collect();
                let other = changed.iter().any(|key| key != "nesting");
                (changed, other)
            }
            None => {
                let other = old.keys().any(|key| key != "nesting");
                (old.keys().cloned().collect(), other)
            }
        };
        if other {
            return only_root("changing feature flags (except nesting)");
        }
        if !changed.is_empty() {
            self.vm_perm(&["VM.Allocate"], false)?;
        }
        Ok(())
    }
}

/// `get_tags_from_trunk`: the VLAN IDs of `trunks` (`10;20-22`).
fn trunk_tags(trunks: &str) -> Vec<u32> {
    let mut tags = Vec::new();
    for part in trunks.split(';').filter(|part| !part.is_empty()) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(first), Ok(last)) = (first.trim().parse::<u32>(), last.trim().parse::<u32>()) {
            tags.extend(first..=last.min(4094));
        }
    }
    tags
}

/// qemu-server's `$check_drive_param` (and pve-container's parsing of mount point volumes),
/// for every caller: each drive or mount point that names an existing volume
/// (`storage:volname`) must parse with its storage's plugin, and an ISO image must be attached
/// with `media=cdrom`.
pub(crate) fn check_drive_values(
    tables: &Tables,
    kind: Kind,
    settings: &Map<String, Value>,
) -> Result<(), AppError> {
    for (key, value) in settings {
        if !is_disk_key(kind, key) && key != "cdrom" {
            continue;
        }
        let value = text(value);
        let default_key = if kind == Kind::Lxc { "volume" } else { "file" };
        let file = prop(&value, default_key, true).unwrap_or_default();
        let Some((_, volname)) = file.split_once(':') else {
            continue;
        };
        if new_disk_storage(&file).is_some() || volname == "cloudinit" || file.starts_with('/') {
            continue;
        }
        let parsed = crate::ops::volname::parse_volname(tables, &file)?;
        let cdrom = key == "cdrom" || prop(&value, "media", false).as_deref() == Some("cdrom");
        if kind == Kind::Qemu && parsed.vtype == "iso" && !cdrom {
            return Err(AppError::param(
                key,
                "explicit 'media=cdrom' is required for iso images",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn option_groups_follow_qemu_server() {
        assert_eq!(qemu_privileges("cores"), Some(&["VM.Config.CPU"][..]));
        assert_eq!(qemu_privileges("numa1"), Some(&["VM.Config.CPU"][..]));
        assert_eq!(qemu_privileges("net3"), Some(&["VM.Config.Network"][..]));
        assert_eq!(qemu_privileges("args"), None);
        assert_eq!(qemu_privileges("hookscript"), None);
        assert!(qemu_value_checked("scsi1"));
        assert!(qemu_value_checked("usb0"));
        assert!(is_cloudinit_key("ipconfig0"));
        assert_eq!(new_disk_storage("local-lvm:4"), Some(Some("local-lvm")));
        assert_eq!(new_disk_storage("0.5"), Some(None));
        assert_eq!(new_disk_storage("local-lvm:vm-100-disk-0"), None);
        assert_eq!(trunk_tags("10;20-22"), vec![10, 20, 21, 22]);
        assert_eq!(
            prop("virtio=BC:24:11:00:00:01,bridge=vmbr0", "bridge", false).as_deref(),
            Some("vmbr0")
        );
        assert_eq!(prop("host=1-2", "host", true).as_deref(), Some("1-2"));
        assert_eq!(prop("1-2,usb3=1", "host", true).as_deref(), Some("1-2"));
    }
}
