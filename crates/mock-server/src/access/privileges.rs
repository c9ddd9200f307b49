//! The privilege catalogue and the built-in roles, per Proxmox VE release.
//!
//! Proxmox derives its built-in ("special") roles from one table of privilege groups
//! (pve-access-control `src/PVE/AccessControl.pm`, `$privgroups` and `create_roles`): every
//! category (`VM`, `Sys`, `Datastore`, `SDN`, `User`, `Pool`, `Mapping`) lists its privileges as
//! `root` (only in `Administrator`), `admin`, `user` and `audit`, and
//!
//! - `PVE<cat>Admin` = admin + user + audit of the category;
//! - `PVE<cat>User` = user + audit, only for categories with `user` privileges;
//! - `PVEAdmin` = admin + user + audit of every category, minus `Mapping.Modify`;
//! - `PVEAuditor` = every `audit` privilege;
//! - `PVETemplateUser` = `VM.Clone`, `VM.Audit`; `NoAccess` = nothing;
//! - `Administrator` = every valid privilege (`Permissions.Modify` is in no group).
//!
//! Proxmox VE 9 replaced `VM.Monitor` with the `VM.GuestAgent.*` privileges (pve-devel,
//! "[PATCH access-control 1/9] add VM.GuestAgent privileges" and "privileges: drop VM.Monitor",
//! July 2025) and added `VM.Replicate`, which the mock files with the other administrative VM
//! privileges. Which table applies follows the schema tag's release.

use std::collections::BTreeMap;

/// A set of privileges: bit `i` is privilege `i` of a [`Catalog`].
pub(crate) type PrivSet = u128;

/// The privilege groups of one category (`$privgroups` in `AccessControl.pm`).
struct Group {
    category: &'static str,
    root: &'static [&'static str],
    admin: &'static [&'static str],
    user: &'static [&'static str],
    audit: &'static [&'static str],
}

const VM_8: Group = Group {
    category: "VM",
    root: &[],
    admin: &[
        "VM.Config.Disk",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Network",
        "VM.Config.HWType",
        "VM.Config.Options",
        "VM.Allocate",
        "VM.Clone",
        "VM.Migrate",
        "VM.Monitor",
        "VM.Snapshot",
        "VM.Snapshot.Rollback",
    ],
    user: &[
        "VM.Config.CDROM",
        "VM.Config.Cloudinit",
        "VM.Console",
        "VM.Backup",
        "VM.PowerMgmt",
    ],
    audit: &["VM.Audit"],
};

const VM_9: Group = Group {
    category: "VM",
    root: &[],
    admin: &[
        "VM.Config.Disk",
        "VM.Config.CPU",
        "VM.Config.Memory",
        "VM.Config.Network",
        "VM.Config.HWType",
        "VM.Config.Options",
        "VM.Allocate",
        "VM.Clone",
        "VM.GuestAgent.Unrestricted",
        "VM.Migrate",
        "VM.Replicate",
        "VM.Snapshot",
        "VM.Snapshot.Rollback",
    ],
    user: &[
        "VM.Config.CDROM",
        "VM.Config.Cloudinit",
        "VM.Console",
        "VM.Backup",
        "VM.GuestAgent.FileRead",
        "VM.GuestAgent.FileSystemMgmt",
        "VM.GuestAgent.FileWrite",
        "VM.PowerMgmt",
    ],
    audit: &["VM.Audit", "VM.GuestAgent.Audit"],
};

const OTHER_GROUPS: &[Group] = &[
    Group {
        category: "Sys",
        root: &[
            "Sys.PowerMgmt",
            "Sys.Modify",
            "Sys.Incoming",
            "Sys.AccessNetwork",
        ],
        admin: &["Sys.Console", "Sys.Syslog"],
        user: &[],
        audit: &["Sys.Audit"],
    },
    Group {
        category: "Datastore",
        root: &[],
        admin: &["Datastore.Allocate", "Datastore.AllocateTemplate"],
        user: &["Datastore.AllocateSpace"],
        audit: &["Datastore.Audit"],
    },
    Group {
        category: "SDN",
        root: &[],
        admin: &["SDN.Allocate", "SDN.Audit"],
        user: &["SDN.Use"],
        audit: &["SDN.Audit"],
    },
    Group {
        category: "User",
        root: &["Realm.Allocate"],
        admin: &["User.Modify", "Group.Allocate", "Realm.AllocateUser"],
        user: &[],
        audit: &[],
    },
    Group {
        category: "Pool",
        root: &[],
        admin: &["Pool.Allocate"],
        user: &["Pool.Audit"],
        audit: &["Pool.Audit"],
    },
    Group {
        category: "Mapping",
        root: &[],
        admin: &["Mapping.Modify"],
        user: &["Mapping.Use"],
        audit: &["Mapping.Audit"],
    },
];

/// The privileges and built-in roles of one Proxmox VE release.
#[derive(Debug, Clone)]
pub(crate) struct Catalog {
    names: Vec<&'static str>,
    roles: BTreeMap<String, PrivSet>,
}

impl Catalog {
    /// The catalogue of a release (`9.1.3`, `8.4.1`, ...): releases before 9 still have
    /// `VM.Monitor` and no `VM.GuestAgent.*`/`VM.Replicate`.
    pub(crate) fn for_release(release: &str) -> Catalog {
        let major: u32 = release
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .unwrap_or(9);
        let vm = if major >= 9 { &VM_9 } else { &VM_8 };
        let groups: Vec<&Group> = std::iter::once(vm).chain(OTHER_GROUPS).collect();
        let mut names: Vec<&'static str> = vec!["Permissions.Modify"];
        for group in &groups {
            for name in group
                .root
                .iter()
                .chain(group.admin)
                .chain(group.user)
                .chain(group.audit)
            {
                if !names.contains(name) {
                    names.push(name);
                }
            }
        }
        names.sort_unstable();
        let mut catalog = Catalog {
            names,
            roles: BTreeMap::new(),
        };
        let mut pve_admin: PrivSet = 0;
        let mut auditor: PrivSet = 0;
        for group in &groups {
            let managed = catalog.set(group.admin.iter().chain(group.user).chain(group.audit));
            catalog
                .roles
                .insert(format!("PVE{}Admin", group.category), managed);
            pve_admin |= managed;
            if !group.user.is_empty() {
                let user = catalog.set(group.user.iter().chain(group.audit));
                catalog
                    .roles
                    .insert(format!("PVE{}User", group.category), user);
            }
            auditor |= catalog.set(group.audit.iter());
        }
        pve_admin &= !catalog.set(["Mapping.Modify"].iter());
        let all = catalog.all();
        let template_user = catalog.set(["VM.Clone", "VM.Audit"].iter());
        catalog.roles.insert("PVEAdmin".to_owned(), pve_admin);
        catalog.roles.insert("PVEAuditor".to_owned(), auditor);
        catalog
            .roles
            .insert("PVETemplateUser".to_owned(), template_user);
        catalog.roles.insert("NoAccess".to_owned(), 0);
        catalog.roles.insert("Administrator".to_owned(), all);
        catalog
    }

    /// The bit of a privilege, if it is valid in this release.
    pub(crate) fn bit(&self, name: &str) -> Option<PrivSet> {
        self.names
            .binary_search(&name)
            .ok()
            .map(|index| 1u128 << index)
    }

    /// Whether a privilege name is valid (`verify_privname`).
    pub(crate) fn is_valid(&self, name: &str) -> bool {
        self.bit(name).is_some()
    }

    /// The set of the given (valid) names; unknown names are ignored.
    pub(crate) fn set<'a>(&self, names: impl Iterator<Item = &'a &'a str>) -> PrivSet {
        names
            .filter_map(|name| self.bit(name))
            .fold(0, |acc, bit| acc | bit)
    }

    /// Every privilege.
    pub(crate) fn all(&self) -> PrivSet {
        if self.names.len() >= 128 {
            PrivSet::MAX
        } else {
            (1u128 << self.names.len()) - 1
        }
    }

    /// The names in a set, sorted.
    pub(crate) fn names_of(&self, set: PrivSet) -> impl Iterator<Item = &'static str> + '_ {
        self.names
            .iter()
            .enumerate()
            .filter(move |(index, _)| set & (1u128 << index) != 0)
            .map(|(_, name)| *name)
    }

    /// The built-in roles and their privileges.
    pub(crate) fn builtin_roles(&self) -> &BTreeMap<String, PrivSet> {
        &self.roles
    }

    /// Whether a role is built in (`role_is_special`).
    pub(crate) fn is_special(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn role(catalog: &Catalog, name: &str) -> Vec<&'static str> {
        catalog
            .names_of(catalog.builtin_roles()[name])
            .collect::<Vec<_>>()
    }

    #[test]
    fn builtin_roles_follow_the_privilege_groups() {
        let catalog = Catalog::for_release("9.1.3");
        assert_eq!(
            role(&catalog, "PVEAuditor"),
            [
                "Datastore.Audit",
                "Mapping.Audit",
                "Pool.Audit",
                "SDN.Audit",
                "Sys.Audit",
                "VM.Audit",
                "VM.GuestAgent.Audit"
            ]
        );
        assert_eq!(
            role(&catalog, "PVEDatastoreUser"),
            ["Datastore.AllocateSpace", "Datastore.Audit"]
        );
        assert_eq!(role(&catalog, "PVETemplateUser"), ["VM.Audit", "VM.Clone"]);
        assert!(role(&catalog, "NoAccess").is_empty());
        assert!(role(&catalog, "PVEVMUser").contains(&"VM.PowerMgmt"));
        assert!(!role(&catalog, "PVEVMUser").contains(&"VM.Allocate"));
        assert!(!role(&catalog, "PVEAdmin").contains(&"Mapping.Modify"));
        assert!(!role(&catalog, "PVEAdmin").contains(&"Sys.PowerMgmt"));
        assert!(!role(&catalog, "PVEAdmin").contains(&"Permissions.Modify"));
        assert_eq!(
            catalog.builtin_roles()["Administrator"],
            catalog.all(),
            "Administrator has everything"
        );
        assert!(!catalog.builtin_roles().contains_key("PVESysUser"));
        assert!(!catalog.is_valid("VM.Monitor"));
        let old = Catalog::for_release("8.4.1");
        assert!(old.is_valid("VM.Monitor"));
        assert!(!old.is_valid("VM.GuestAgent.Audit"));
        assert_eq!(role(&old, "PVEAuditor").len(), 6);
    }
}
