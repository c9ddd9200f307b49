//! The checks Proxmox's handlers make themselves, beyond an operation's `permissions`:
//! `$rpcenv->check`, `check_any`, `check_full` and `check_vm_perm` (pve-access-control
//! `src/PVE/RPCEnvironment.pm`) and `PVE::Storage::check_volume_access` (pve-storage
//! `src/PVE/Storage.pm`).
//!
//! Handlers in [`crate::ops`] get an [`RpcEnv`] for the caller and call these where Proxmox's
//! code calls them; the table of which handler checks what is in `docs/mock.md` ("Checks inside
//! handlers"). `root@pam` passes every check without the access model being built.
//!
//! A failed privilege check is HTTP 403 with `raise_perm_exc`'s text (`Permission check failed
//! (/vms/100, VM.Config.Disk)`); the plain `die`s of those functions (`missing privileges to
//! access local:iso/x.iso`) are HTTP 500, as Proxmox answers a `die` inside a handler.

use super::check::perm_error;
use super::model::{AccessModel, ROOT};
use crate::error::AppError;

/// What a volume is, as `parse_volname` tells: its content type and owning guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeKind {
    /// `images`, `rootdir`, `iso`, `vztmpl`, `backup`, `snippets`, `import`, or empty when the
    /// name does not parse.
    pub(crate) vtype: String,
    /// The guest the volume belongs to.
    pub(crate) owner: Option<u32>,
}

/// The caller, as the handlers' `$rpcenv` sees it.
#[derive(Clone, Copy)]
pub(crate) struct RpcEnv<'a> {
    /// `None` for `root@pam`, who passes everything.
    model: Option<&'a AccessModel>,
    user: &'a str,
}

impl std::fmt::Debug for RpcEnv<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcEnv").field("user", &self.user).finish()
    }
}

impl<'a> RpcEnv<'a> {
    /// The checks of `user` (a user or token ID); `model` is consulted only for users other than
    /// `root@pam`.
    pub(crate) fn new(user: &'a str, model: impl FnOnce() -> &'a AccessModel) -> RpcEnv<'a> {
        let model = (user != ROOT).then(model);
        RpcEnv { model, user }
    }

    /// Whether the caller is `root@pam`.
    pub(crate) fn is_root(&self) -> bool {
        self.model.is_none()
    }

    /// Whether the caller has every privilege on a path (`check` with `noerr`).
    pub(crate) fn allows(&self, path: &str, privs: &[&str]) -> bool {
        self.model
            .is_none_or(|model| missing_privilege(model, self.user, path, privs).is_none())
    }

    /// `$rpcenv->check($user, $path, $privs)`: every privilege, else 403 naming the first one
    /// missing.
    pub(crate) fn check(&self, path: &str, privs: &[&str]) -> Result<(), AppError> {
        let Some(model) = self.model else {
            return Ok(());
        };
        match missing_privilege(model, self.user, path, privs) {
            Some(missing) => Err(perm_error(Some(&format!("{path}, {missing}")))),
            None => Ok(()),
        }
    }

    /// `$rpcenv->check_any($user, $path, $privs)`: one of the privileges, else 403 naming them
    /// all.
    pub(crate) fn check_any(&self, path: &str, privs: &[&str]) -> Result<(), AppError> {
        let Some(model) = self.model else {
            return Ok(());
        };
        if model.has_any_privilege(self.user, path, privs) {
            return Ok(());
        }
        Err(perm_error(Some(&format!("{path}, {}", privs.join("|")))))
    }

    /// `$rpcenv->check_vm_perm($user, $vmid, $pool, $privs, $any)`: the privileges on the pool
    /// given (a guest being created into it), else on `/vms/{vmid}`.
    pub(crate) fn check_vm_perm(
        &self,
        vmid: u32,
        pool: Option<&str>,
        privs: &[&str],
        any: bool,
    ) -> Result<(), AppError> {
        let Some(model) = self.model else {
            return Ok(());
        };
        if let Some(pool) = pool.filter(|pool| !pool.is_empty()) {
            let path = format!("/pool/{pool}");
            let granted = if any {
                model.has_any_privilege(self.user, &path, privs)
            } else {
                missing_privilege(model, self.user, &path, privs).is_none()
            };
            if granted {
                return Ok(());
            }
        }
        let path = format!("/vms/{vmid}");
        if any {
            self.check_any(&path, privs)
        } else {
            self.check(&path, privs)
        }
    }

    /// `PVE::Storage::check_volume_access($rpcenv, $user, $cfg, $vmid, $volid)`: a volume ID
    /// (`storage:volname`) of a known kind, or an absolute path (root only). `vmid` is the guest
    /// the volume is being used for: its own volumes pass.
    pub(crate) fn check_volume_access(
        &self,
        volid: &str,
        kind: &VolumeKind,
        vmid: Option<u32>,
    ) -> Result<(), AppError> {
        let Some((storage, _)) = volid.split_once(':') else {
            if self.is_root() {
                return Ok(());
            }
            return Err(AppError::die(
                "Only root can pass arbitrary filesystem paths.\n",
            ));
        };
        let storage_path = format!("/storage/{storage}");
        if self.allows(&storage_path, &["Datastore.Allocate"]) {
            return Ok(());
        }
        match (kind.vtype.as_str(), kind.owner) {
            ("iso" | "vztmpl" | "import", _) => self.check_any(
                &storage_path,
                &["Datastore.AllocateSpace", "Datastore.Audit"],
            ),
            (_, Some(owner)) if vmid == Some(owner) => Ok(()),
            ("backup", Some(owner)) => {
                self.check(&storage_path, &["Datastore.AllocateSpace"])?;
                self.check(&format!("/vms/{owner}"), &["VM.Backup"])
            }
            ("images" | "rootdir", Some(owner)) => {
                self.check(&storage_path, &["Datastore.Audit"])?;
                self.check(&format!("/vms/{owner}"), &["VM.Config.Disk"])
            }
            _ => Err(AppError::die(format!(
                "missing privileges to access {volid}\n"
            ))),
        }
    }
}

/// `$check_task_user` (pve-manager `PVE/API2/Tasks.pm`): a task started by a user belongs to
/// that user; one started by a token to the token and to the token's user.
pub(crate) fn owns_task(subject: &str, task_user: &str) -> bool {
    task_user == subject
        || task_user
            .split_once('!')
            .is_some_and(|(owner, _)| owner == subject)
}

/// The first of `privs` the subject lacks on `path` (an unknown name counts as lacking).
pub(crate) fn missing_privilege<'p>(
    model: &AccessModel,
    subject: &str,
    path: &str,
    privs: &[&'p str],
) -> Option<&'p str> {
    let perms = model.permissions(subject, path);
    privs.iter().copied().find(|name| {
        !model
            .catalog()
            .bit(name)
            .is_some_and(|bit| perms.has_all(bit))
    })
}

/// `parse_volname` for the volume names the mock stores (`PVE::Storage::Plugin` and the LVM,
/// ZFS and RBD plugins name them alike): `iso/x.iso`, `vztmpl/x.tar.zst`,
/// `backup/vzdump-qemu-100-....vma.zst`, `import/x.ova`, `snippets/x.yaml`,
/// `100/vm-100-disk-0.qcow2`, `vm-100-disk-0`, `base-100-disk-0`, `subvol-100-disk-0`.
pub(crate) fn parse_volname(volname: &str) -> VolumeKind {
    let kind = |vtype: &str, owner: Option<u32>| VolumeKind {
        vtype: vtype.to_owned(),
        owner,
    };
    if let Some((dir, name)) = volname.split_once('/') {
        match dir {
            "iso" => return kind("iso", None),
            "vztmpl" => return kind("vztmpl", None),
            "import" => return kind("import", None),
            "snippets" => return kind("snippets", None),
            "backup" => return kind("backup", backup_owner(name)),
            _ => {}
        }
        if dir.parse::<u32>().is_ok() {
            return image_kind(name);
        }
        return kind("", None);
    }
    image_kind(volname)
}

/// `vm-<vmid>-...`, `base-<vmid>-...` (images), `subvol-<vmid>-...`, `basevol-<vmid>-...`
/// (container root file systems).
fn image_kind(name: &str) -> VolumeKind {
    let (vtype, rest) = if let Some(rest) = name
        .strip_prefix("vm-")
        .or_else(|| name.strip_prefix("base-"))
    {
        ("images", rest)
    } else if let Some(rest) = name
        .strip_prefix("subvol-")
        .or_else(|| name.strip_prefix("basevol-"))
    {
        ("rootdir", rest)
    } else {
        return VolumeKind {
            vtype: String::new(),
            owner: None,
        };
    };
    let owner = rest.split('-').next().and_then(|id| id.parse().ok());
    VolumeKind {
        vtype: if owner.is_some() { vtype } else { "" }.to_owned(),
        owner,
    }
}

/// The guest of a backup archive name (`vzdump-qemu-100-2025_01_01-00_00_00.vma.zst`).
fn backup_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("vzdump-")?;
    let (_, rest) = rest.split_once('-')?;
    rest.split('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn volume_names_parse_like_pve_storage() {
        let kind = |vtype: &str, owner: Option<u32>| VolumeKind {
            vtype: vtype.to_owned(),
            owner,
        };
        assert_eq!(parse_volname("iso/debian.iso"), kind("iso", None));
        assert_eq!(parse_volname("vm-100-disk-0"), kind("images", Some(100)));
        assert_eq!(
            parse_volname("100/vm-100-disk-1.qcow2"),
            kind("images", Some(100))
        );
        assert_eq!(
            parse_volname("subvol-105-disk-0"),
            kind("rootdir", Some(105))
        );
        assert_eq!(
            parse_volname("backup/vzdump-lxc-105-2025_01_01-00_00_00.tar.zst"),
            kind("backup", Some(105))
        );
        assert_eq!(parse_volname("abc"), kind("", None));
        assert_eq!(parse_volname("vm-x-disk-0"), kind("", None));
    }
}
