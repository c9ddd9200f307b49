//! Verifiers of storage values: volume IDs (pve-storage `parse_volume_id`, qemu-server's
//! `pve-volume-id-or-qm-path` and `pve-volume-id-or-absolute-path`), paths and mount points
//! (pve-storage, pve-guest-common, pve-container), servers, portals, LVM names, content types,
//! mount options and directory overrides, and the guest drive names a boot disk may be.
//!
//! Like the registered subs, these are syntactic: `local-lvm:abc` is a volume ID here; whether
//! the storage parses it as a volume name is the handler's question (`parse_volname`).

use super::Verifier;
use super::network::{is_dns_name, is_ip};

/// The verifier sub registered under `name`, when it is one of these.
pub(super) fn verifier(name: &str) -> Option<Verifier> {
    Some(match name {
        "pve-volume-id" => volume_id,
        "pve-storage-zfs-blocksize" => zfs_blocksize,
        "pve-volume-id-or-qm-path" => |v| match v {
            "none" | "cdrom" => Ok(()),
            _ => volume_id_or_absolute_path(v),
        },
        "pve-volume-id-or-absolute-path" => volume_id_or_absolute_path,
        "pve-storage-path" => |path| {
            if static_regex!(r"^/[^;\(\)]+").is_match(path) {
                return Ok(());
            }
            Err("value does not look like a valid absolute path\n".to_owned())
        },
        "pve-storage-path-in-property-string" => |path| {
            if static_regex!(r"^/[^;,=\(\)]+").is_match(path) {
                return Ok(());
            }
            Err("Value does not look like a valid absolute path. These symbols are currently not allowed in path: ;,=()\n".to_owned())
        },
        "pve-storage-server" => |server| {
            if is_ip(server) || is_dns_name(server) {
                return Ok(());
            }
            Err("value does not look like a valid server name or IP address\n".to_owned())
        },
        "pve-storage-vgname" => |name| {
            if static_regex!(r"(?i)^[a-z0-9][a-z0-9\-_.]*[a-z0-9]$").is_match(name) {
                return Ok(());
            }
            Err(format!("lvm name '{name}' contains illegal characters\n"))
        },
        "pve-storage-portal-dns" => |portal| {
            if is_host_and_port(portal) {
                return Ok(());
            }
            Err("value does not look like a valid portal address\n".to_owned())
        },
        "pve-storage-content" => content,
        "pve-storage-format" => |format| {
            if matches!(format, "raw" | "qcow2" | "vmdk" | "subvol") {
                return Ok(());
            }
            Err(format!("invalid format '{format}'\n"))
        },
        "pve-storage-options" => |options| {
            if !options.is_empty() && !options.chars().any(char::is_whitespace) {
                return Ok(());
            }
            Err(format!("invalid options '{options}'\n"))
        },
        "pve-dir-override" => dir_override,
        "pve-lxc-mp-string" => lxc_mount_point,
        "pve-lxc-dev-string" => lxc_device,
        "pve-qm-bootdisk" => |disk| {
            if is_drive_name(disk) {
                return Ok(());
            }
            Err(format!("invalid boot disk '{disk}'\n"))
        },
        "pve-qm-bootdev" => boot_device,
        _ => return None,
    })
}

/// `parse_volume_id`: `<storage ID>:<anything>`.
fn volume_id(volid: &str) -> Result<(), String> {
    if static_regex!(r"(?is)^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$").is_match(volid) {
        return Ok(());
    }
    Err(format!("unable to parse volume ID '{volid}'\n"))
}

/// `verify_volume_id_or_absolute_path` (qemu-server).
fn volume_id_or_absolute_path(volid: &str) -> Result<(), String> {
    if volid.starts_with('/') {
        return Ok(());
    }
    volume_id(volid)
}

/// `PVE::Tools::parse_host_and_port`: a host with an optional `:port`, a bracketed host, or
/// an IPv6 address with an optional `.port`.
fn is_host_and_port(address: &str) -> bool {
    use std::sync::LazyLock;

    use regex::Regex;
    static RE: LazyLock<Vec<Regex>> = LazyLock::new(|| {
        let (v4, v6) = (&*super::network::IPV4_RE, &*super::network::IPV6_RE);
        [
            format!(r"^({v4}|[[:alnum:]\-.]+)(?::(\d+))?$"),
            format!(r"^\[({v6}|{v4}|[[:alnum:]\-.]+)\](?::(\d+))?$"),
            format!(r"^({v6})(?:\.(\d+))?$"),
        ]
        .iter()
        .map(|pattern| Regex::new(pattern).expect("static regex"))
        .collect()
    });
    RE.iter().any(|re| re.is_match(address))
}

/// `verify_content`: a content type of the directory plugin, which has them all, or `import`.
fn content(ct: &str) -> Result<(), String> {
    const DIR_CONTENT: &[&str] = &[
        "images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none", "import",
    ];
    if DIR_CONTENT.contains(&ct) {
        return Ok(());
    }
    Err(format!("invalid content type '{ct}'\n"))
}

/// `verify_dir_override`: `<content type>=<relative path>`, the path under 1023 characters and
/// each of its components under 255.
fn dir_override(value: &str) -> Result<(), String> {
    if let Some(captures) = static_regex!(r"^([a-z]+)=([^.]*(?:\.?[^.]+)+)$").captures(value) {
        content(&captures[1])?;
        let path = &captures[2];
        if path.chars().count() < 1023 && path.split('/').all(|part| part.chars().count() < 255) {
            return Ok(());
        }
    }
    Err(format!("invalid override '{value}'\n"))
}

/// `verify_lxc_mp_string`: no `/./` or `/../`, no `/.` or `/..` at the end, no `../` at the
/// start.
fn lxc_mount_point(mp: &str) -> Result<(), String> {
    let bad = static_regex!(r"/\.\.?/").is_match(mp)
        || static_regex!(r"/\.\.?\n?$").is_match(mp)
        || mp.starts_with("../");
    if bad {
        return Err(format!("{mp} contains illegal character sequences\n"));
    }
    Ok(())
}

/// `verify_lxc_dev_string`: under `/dev/`, without `.` or `..` components.
fn lxc_device(dev: &str) -> Result<(), String> {
    if static_regex!(r"/\.\.?(?:/|\n?$)").is_match(dev) || !dev.starts_with("/dev/") {
        return Err(format!("{dev} is not a valid device path\n"));
    }
    Ok(())
}

/// `is_valid_drivename` (qemu-server `Drive.pm`): `ide0`-`ide3`, `sata0`-`sata5`,
/// `scsi0`-`scsi30`, `virtio0`-`virtio15`, `efidisk0`, `tpmstate0`.
pub(super) fn is_drive_name(name: &str) -> bool {
    const BUSES: &[(&str, u32)] = &[
        ("ide", 4),
        ("sata", 6),
        ("scsi", 31),
        ("virtio", 16),
        ("efidisk", 1),
        ("tpmstate", 1),
    ];
    BUSES.iter().any(|(bus, count)| indexed(name, bus, *count))
}

/// `name` is `<prefix><n>` with `n` below `count`, written without leading zeros.
fn indexed(name: &str, prefix: &str, count: u32) -> bool {
    name.strip_prefix(prefix).is_some_and(|index| {
        !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
            && (index == "0" || !index.starts_with('0'))
            && index.parse::<u32>().is_ok_and(|n| n < count)
    })
}

/// `verify_bootdev` (qemu-server): a drive other than an EFI or TPM disk, or a NIC, USB or
/// PCI device of the configuration.
fn boot_device(dev: &str) -> Result<(), String> {
    let special = dev.starts_with("efidisk") || dev.starts_with("tpmstate");
    let valid = (is_drive_name(dev) && !special)
        || indexed(dev, "net", 32)
        || indexed(dev, "usb", 14)
        || indexed(dev, "hostpci", 16);
    if valid {
        return Ok(());
    }
    Err(format!("invalid boot device '{dev}'\n"))
}

/// `verify_zfs_blocksize` (pve-storage `ZFSPoolPlugin.pm`): a power of 2 from 512 bytes to
/// 16 MiB, with an optional `k` or `m` suffix.
fn zfs_blocksize(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let Some(captures) = static_regex!(r"(?i)^([1-9][0-9]*)([km])?$").captures(value) else {
        return Err(format!(
            "invalid ZFS blocksize format '{value}'. Use a positive number (no leading zeros) \
             with an optional 'k' or 'm' suffix.\n"
        ));
    };
    let unit = captures
        .get(2)
        .map(|unit| unit.as_str().to_ascii_lowercase());
    let factor: u128 = match unit.as_deref() {
        Some("k") => 1024,
        Some("m") => 1024 * 1024,
        _ => 1,
    };
    let size = captures[1]
        .parse::<u128>()
        .ok()
        .and_then(|number| number.checked_mul(factor));
    match size {
        Some(size) if (512..=16 * 1024 * 1024).contains(&size) && size.is_power_of_two() => Ok(()),
        _ => Err(format!(
            "value '{value}' is not a valid ZFS blocksize. Must be a power of 2 between 512B and \
             16MiB (e.g., 4k, 8k, 16k, 64k, 1m).\n"
        )),
    }
}
