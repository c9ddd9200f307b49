//! `PVE::Storage::parse_volname`: what a volume ID names, as the plugin of its storage reads
//! it (pve-storage `src/PVE/Storage/Plugin.pm` for directory-like storages, `LvmThinPlugin.pm`,
//! `LVMPlugin.pm`, `ZFSPoolPlugin.pm`, `RBDPlugin.pm`, `ISCSIPlugin.pm`), with their `die`
//! messages: `unable to parse directory volume name 'iso/../../x.iso'`, `unable to parse lvm
//! volume name 'abc'`.
//!
//! qemu-server's `$check_drive_param` and pve-container's volume checks call it for every
//! volume a guest is given, so a name no plugin would produce is refused before anything is
//! allocated or attached.

use std::sync::LazyLock;

use regex::Regex;

use super::storage::storage_config;
use super::text;
use crate::access::rpcenv::VolumeKind;
use crate::error::AppError;
use crate::store::Tables;

macro_rules! static_regex {
    ($re:expr) => {{
        static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new($re).expect("static regex"));
        &*RE
    }};
}

/// Parses `storage:volname` with the plugin of its storage (`storage 'x' does not exist`
/// when there is no such storage); a plain `die`, HTTP 500, when the name does not parse.
pub(crate) fn parse_volname(tables: &Tables, volid: &str) -> Result<VolumeKind, AppError> {
    let Some((storage, volname)) = volid.split_once(':') else {
        return Err(AppError::die(format!(
            "unable to parse volume ID '{volid}'\n"
        )));
    };
    let config = storage_config(tables, storage)?;
    let kind = config.get("type").map(text).unwrap_or_default();
    parse_for_type(&kind, volname).map_err(AppError::die)
}

/// The plugin's `parse_volname` for a storage type.
fn parse_for_type(storage_type: &str, volname: &str) -> Result<VolumeKind, String> {
    let owned = |vtype: &str, owner: &str| VolumeKind {
        vtype: vtype.to_owned(),
        owner: owner.parse().ok(),
    };
    let fail = |plugin: &str| {
        Err(format!(
            "unable to parse {plugin} volume name '{volname}'\n"
        ))
    };
    match storage_type {
        "lvmthin" => match static_regex!(r"^((vm|base)-(\d+)-\S+)$").captures(volname) {
            Some(c) => Ok(owned("images", &c[3])),
            None => fail("lvm"),
        },
        "lvm" => match static_regex!(r"^(vm-(\d+)-\S+)$").captures(volname) {
            Some(c) => Ok(owned("images", &c[2])),
            None => fail("lvm"),
        },
        "zfspool" => match static_regex!(
            r"^(((base|basevol)-(\d+)-\S+)/)?((base|basevol|vm|subvol)-(\d+)-\S+)$"
        )
        .captures(volname)
        {
            Some(c) => {
                let vtype = if matches!(&c[6], "vm" | "base") {
                    "images"
                } else {
                    "rootdir"
                };
                Ok(owned(vtype, &c[7]))
            }
            None => fail("zfs"),
        },
        "rbd" => match static_regex!(r"^((base-(\d+)-\S+)/)?((base)?(vm)?-(\d+)-\S+)$")
            .captures(volname)
        {
            Some(c) => Ok(owned("images", &c[7])),
            None => fail("rbd"),
        },
        "iscsi" => match static_regex!(r"^\d+\.\d+\.\d+\.([^/\s]+)$").is_match(volname) {
            true => Ok(owned("images", "")),
            false => fail("iscsi"),
        },
        "dir" | "nfs" | "cifs" | "cephfs" | "glusterfs" | "btrfs" => parse_dir(volname),
        // Storages whose names the mock does not model are taken as they come.
        _ => Ok(crate::access::rpcenv::parse_volname(volname)),
    }
}

/// `PVE::Storage::Plugin::parse_volname`, for directory-like storages.
fn parse_dir(volname: &str) -> Result<VolumeKind, String> {
    let kind = |vtype: &str, owner: Option<u32>| VolumeKind {
        vtype: vtype.to_owned(),
        owner,
    };
    if let Some(c) = static_regex!(r"^(\d+)/(\S+)/(\d+)/(\S+)$").captures(volname) {
        parse_name_dir(&c[2])?;
        parse_name_dir(&c[4])?;
        return Ok(kind("images", c[3].parse().ok()));
    }
    if let Some(c) = static_regex!(r"^(\d+)/(\S+)$").captures(volname) {
        parse_name_dir(&c[2])?;
        return Ok(kind("images", c[1].parse().ok()));
    }
    if static_regex!(r"(?i)^iso/[^/]+\.(iso|img)$").is_match(volname) {
        return Ok(kind("iso", None));
    }
    if static_regex!(r"(?i)^vztmpl/[^/]+\.tar(\.(gz|xz|zst|bz2))?$").is_match(volname) {
        return Ok(kind("vztmpl", None));
    }
    if let Some(c) =
        static_regex!(r"^backup/([^/]+\.(tgz|(tar|vma)(\.(gz|lzo|zst|bz2))?))$").captures(volname)
    {
        let owner = static_regex!(r"^vzdump-(openvz|lxc|qemu)-(\d+)-.+")
            .captures(&c[1])
            .and_then(|c| c[2].parse().ok());
        return Ok(kind("backup", owner));
    }
    if static_regex!(r"^snippets/[^/]+$").is_match(volname) {
        return Ok(kind("snippets", None));
    }
    if static_regex!(r"^import/[ a-zA-Z0-9\-.+=_]+\.ova/[ a-zA-Z0-9\-.+=_]+\.(qcow2|raw|vmdk)$")
        .is_match(volname)
        || static_regex!(r"^import/[ a-zA-Z0-9\-.+=_]+\.(ova|ovf|qcow2|raw|vmdk)$")
            .is_match(volname)
    {
        return Ok(kind("import", None));
    }
    Err(format!(
        "unable to parse directory volume name '{volname}'\n"
    ))
}

/// `parse_name_dir`: an image file name.
fn parse_name_dir(name: &str) -> Result<(), String> {
    if static_regex!(r"^(vm-|base-|subvol-)(\d+)-[^/\s]+\.(raw|qcow2|vmdk|subvol)$").is_match(name)
    {
        return Ok(());
    }
    if static_regex!(r"^snap-.*\.qcow2$").is_match(name) {
        return Err(format!("'{name}' is a snapshot filename, not a volume!\n"));
    }
    if static_regex!(r"^(base-)?[^/\s]+\.(raw|qcow2|vmdk|subvol)$").is_match(name) {
        return Ok(());
    }
    Err(format!("unable to parse volume filename '{name}'\n"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_parse_like_the_plugins() {
        assert!(parse_for_type("lvmthin", "vm-100-disk-0").is_ok());
        assert_eq!(
            parse_for_type("lvmthin", "abc").unwrap_err(),
            "unable to parse lvm volume name 'abc'\n"
        );
        assert_eq!(
            parse_for_type("dir", "iso/../../x.iso").unwrap_err(),
            "unable to parse directory volume name 'iso/../../x.iso'\n"
        );
        assert_eq!(
            parse_for_type("dir", "iso/debian.ISO").unwrap().vtype,
            "iso"
        );
        assert_eq!(
            parse_for_type("dir", "100/vm-100-disk-0.qcow2")
                .unwrap()
                .owner,
            Some(100)
        );
        assert_eq!(
            parse_for_type("dir", "100/snap-x.qcow2").unwrap_err(),
            "'snap-x.qcow2' is a snapshot filename, not a volume!\n"
        );
        let backup =
            parse_for_type("dir", "backup/vzdump-qemu-100-2025_01_01-00_00_00.vma.zst").unwrap();
        assert_eq!((backup.vtype.as_str(), backup.owner), ("backup", Some(100)));
        assert_eq!(
            parse_for_type("zfspool", "subvol-105-disk-0")
                .unwrap()
                .vtype,
            "rootdir"
        );
        assert!(parse_for_type("dir", "vztmpl/debian-12.tar.zst").is_ok());
    }
}
