//! The access model: users, groups, tokens, roles and the ACL, read once from the store and
//! evaluated like `PVE::RPCEnvironment::permissions` (pve-access-control
//! `src/PVE/RPCEnvironment.pm`) and `PVE::AccessControl::roles` (`src/PVE/AccessControl.pm`).
//!
//! This file owns building the model from the rows ([`AccessModel::build`]) and evaluating it
//! (`roles`, `permissions`); the stored ACL itself is [`super::acl`], and how permissions are
//! shown in replies (effective permissions, the login `cap`) is [`super::effective`].
//!
//! Evaluation walks the requested path from `/` down, one ACL node per path segment, so its cost
//! depends on the depth of the path, not on the number of ACL entries or guests. What is
//! specific to a user or token (which entries name it or one of its groups, sorted into
//! Proxmox's three precedence levels: token, user, group) is compiled on first use and kept
//! until the access configuration changes; then the whole model is rebuilt
//! ([`super::AccessCache`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::acl::{AclEntry, acl_entries, path_prefixes};
use super::privileges::{Catalog, PrivSet};
use crate::api::last_segment;
use crate::store::Tables;

/// The superuser, who has every privilege everywhere.
pub(crate) const ROOT: &str = "root@pam";

/// Privileges on a path with their propagation flags (`permissions()`'s hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Perms {
    /// Privileges that are set.
    pub(crate) set: PrivSet,
    /// The subset whose propagation flag is set.
    pub(crate) propagate: PrivSet,
}

impl Perms {
    /// Whether every privilege of `wanted` is set.
    pub(crate) fn has_all(&self, wanted: PrivSet) -> bool {
        self.set & wanted == wanted
    }

    /// Whether any privilege of `wanted` is set.
    pub(crate) fn has_any(&self, wanted: PrivSet) -> bool {
        self.set & wanted != 0
    }
}

/// Roles that apply at one ACL node for one subject, per precedence level.
#[derive(Debug, Default)]
struct NodeRoles {
    /// Token, user, group entries: `(role, propagate)`.
    levels: [Vec<(String, bool)>; 3],
}

/// What the ACL says about one subject.
#[derive(Debug, Default)]
struct SubjectAcl {
    /// The ACL nodes that mention the subject (directly or through a group).
    nodes: HashMap<String, NodeRoles>,
    /// Roles the subject has on pools, by member path (`/vms/100`, `/storage/local`).
    pool_roles: HashMap<String, BTreeSet<String>>,
}

/// A pool and its members (`/pools/{poolid}` rows keep them under `_vms` and `_storage`).
#[derive(Debug)]
struct Pool {
    id: String,
    vms: Vec<u64>,
    storages: Vec<String>,
}

impl Pool {
    /// Reads the pool stored at `path`.
    fn read(tables: &Tables, path: &str) -> Pool {
        let row = tables.get(path);
        let row = row.as_ref();
        Pool {
            id: last_segment(path).to_owned(),
            vms: row_array(row, "_vms")
                .iter()
                .filter_map(Value::as_u64)
                .collect(),
            storages: row_array(row, "_storage")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The ACL paths of the members: guests (`/vms/{vmid}`), then storages
    /// (`/storage/{storage}`).
    fn member_paths(&self) -> impl Iterator<Item = String> + '_ {
        self.vms
            .iter()
            .map(|vmid| format!("/vms/{vmid}"))
            .chain(self.storages.iter().map(|id| format!("/storage/{id}")))
    }
}

/// An array stored under `key` of a row (empty when absent or not an array).
fn row_array(row: Option<&Value>, key: &str) -> Vec<Value> {
    row.and_then(|row| row.get(key))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A consistent snapshot of the access configuration.
#[derive(Debug)]
pub(crate) struct AccessModel {
    catalog: Arc<Catalog>,
    roles: HashMap<String, PrivSet>,
    entries: Vec<AclEntry>,
    users: BTreeSet<String>,
    groups: BTreeMap<String, BTreeSet<String>>,
    user_groups: HashMap<String, Vec<String>>,
    tokens: HashMap<String, bool>,
    pools: Vec<Pool>,
    compiled: Mutex<HashMap<String, Arc<SubjectAcl>>>,
}

/// The group list stored on a user row (`groups`, comma separated or an array).
pub(crate) fn user_group_list(row: &Value) -> Vec<String> {
    match row.get("groups") {
        Some(Value::String(text)) => crate::schema::split_list(text)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a stored flag (`1`, `true`, `"yes"`, ...) is set; `default` when absent or not a
/// boolean.
pub(crate) fn flag(row: &Value, key: &str, default: bool) -> bool {
    row.get(key)
        .and_then(crate::schema::value_bool)
        .unwrap_or(default)
}

/// Every role: the built-in ones of the catalogue, then the custom roles stored under
/// `/access/roles` (a custom row named like a special role is ignored).
fn read_roles(tables: &Tables, catalog: &Catalog) -> HashMap<String, PrivSet> {
    let mut roles: HashMap<String, PrivSet> = catalog
        .builtin_roles()
        .iter()
        .map(|(name, set)| (name.clone(), *set))
        .collect();
    for path in tables.members("/access/roles") {
        let name = last_segment(path).to_owned();
        if catalog.is_special(&name) {
            continue;
        }
        let privs = tables
            .field(path, "privs")
            .as_ref()
            .and_then(Value::as_str)
            .map(|text| {
                crate::schema::split_list(text)
                    .filter_map(|name| catalog.bit(name))
                    .fold(0, |acc, bit| acc | bit)
            })
            .unwrap_or(0);
        roles.insert(name, privs);
    }
    roles
}

impl AccessModel {
    /// Reads the access configuration from the tables.
    pub(crate) fn build(tables: &Tables, catalog: Arc<Catalog>) -> AccessModel {
        let mut model = AccessModel {
            roles: read_roles(tables, &catalog),
            catalog,
            entries: acl_entries(tables),
            users: BTreeSet::new(),
            groups: tables
                .members("/access/groups")
                .map(|path| (last_segment(path).to_owned(), BTreeSet::new()))
                .collect(),
            user_groups: HashMap::new(),
            tokens: HashMap::new(),
            pools: tables
                .members("/pools")
                .map(|path| Pool::read(tables, path))
                .collect(),
            compiled: Mutex::new(HashMap::new()),
        };
        for path in tables.members("/access/users") {
            model.add_user(tables, path);
        }
        model
    }

    /// Adds the user stored at `path`: its membership in existing groups and its tokens.
    fn add_user(&mut self, tables: &Tables, path: &str) {
        let userid = last_segment(path).to_owned();
        let row = tables.get(path).unwrap_or_default();
        let member_of: Vec<String> = user_group_list(&row)
            .into_iter()
            .filter(|group| self.groups.contains_key(group))
            .collect();
        for group in &member_of {
            if let Some(members) = self.groups.get_mut(group) {
                members.insert(userid.clone());
            }
        }
        for token_path in tables.members(&format!("{path}/token")) {
            let privsep = tables
                .get(token_path)
                .is_none_or(|token| flag(&token, "privsep", true));
            self.tokens
                .insert(format!("{userid}!{}", last_segment(token_path)), privsep);
        }
        self.user_groups.insert(userid.clone(), member_of);
        self.users.insert(userid);
    }

    /// The privilege catalogue.
    pub(crate) fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Every role (built-in and custom) with its privileges.
    pub(crate) fn roles(&self) -> &HashMap<String, PrivSet> {
        &self.roles
    }

    /// The ACL entries.
    pub(crate) fn entries(&self) -> &[AclEntry] {
        &self.entries
    }

    /// Groups and their (existing) members.
    pub(crate) fn groups(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.groups
    }

    /// Whether a user exists.
    pub(crate) fn user_exists(&self, userid: &str) -> bool {
        self.users.contains(userid)
    }

    /// Whether a token exists, and its privilege separation.
    pub(crate) fn token_privsep(&self, tokenid: &str) -> Option<bool> {
        self.tokens.get(tokenid).copied()
    }

    /// Every path an ACL entry names.
    pub(crate) fn acl_paths(&self) -> BTreeSet<String> {
        self.entries
            .iter()
            .map(|entry| entry.path.clone())
            .collect()
    }

    /// The ACL paths of every pool member (`/vms/{vmid}`, `/storage/{storage}`), pool by pool.
    pub(crate) fn pool_member_paths(&self) -> impl Iterator<Item = String> + '_ {
        self.pools.iter().flat_map(Pool::member_paths)
    }

    fn compile(&self, subject: &str) -> Arc<SubjectAcl> {
        let mut cache = self
            .compiled
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(compiled) = cache.get(subject) {
            return Arc::clone(compiled);
        }
        let groups = self.user_groups.get(subject);
        let mut acl = SubjectAcl::default();
        for entry in &self.entries {
            if !self.roles.contains_key(&entry.roleid) {
                continue; // parse_user_config: "ignore invalid acl role"
            }
            let level = match entry.kind.as_str() {
                "token" if entry.ugid == subject => 0,
                "user" if entry.ugid == subject => 1,
                "group" if groups.is_some_and(|groups| groups.contains(&entry.ugid)) => 2,
                _ => continue,
            };
            acl.nodes.entry(entry.path.clone()).or_default().levels[level]
                .push((entry.roleid.clone(), entry.propagate != 0));
        }
        // `compile_acl_path`: roles on `/pool/{pool}` apply to the pool's guests and storages.
        for pool in &self.pools {
            let roles = walk(&acl.nodes, &format!("/pool/{}", pool.id));
            if roles.is_empty() {
                continue;
            }
            for member in pool.member_paths() {
                acl.pool_roles
                    .entry(member)
                    .or_default()
                    .extend(roles.keys().cloned());
            }
        }
        let acl = Arc::new(acl);
        cache.insert(subject.to_owned(), Arc::clone(&acl));
        acl
    }

    /// The roles of a subject on a path, with propagation flags: the ACL's (`roles()`), then
    /// the roles on pools the object is a member of, which never override `NoAccess` nor set a
    /// role the ACL already set, and never propagate (`compile_acl_path`).
    pub(crate) fn roles_on(&self, subject: &str, path: &str) -> BTreeMap<String, bool> {
        let acl = self.compile(subject);
        let mut roles = walk(&acl.nodes, path);
        if let Some(pool_roles) = acl.pool_roles.get(path)
            && !roles.contains_key("NoAccess")
        {
            if pool_roles.contains("NoAccess") {
                return BTreeMap::from([("NoAccess".to_owned(), false)]);
            }
            for role in pool_roles {
                roles.entry(role.clone()).or_insert(false);
            }
        }
        roles
    }

    fn privileges_of(&self, roles: &BTreeMap<String, bool>) -> Perms {
        let mut perms = Perms::default();
        for (role, propagate) in roles {
            let set = self.roles.get(role).copied().unwrap_or(0);
            perms.set |= set;
            if *propagate {
                perms.propagate |= set;
            }
        }
        perms
    }

    /// Effective privileges of a user or token on a normalised path
    /// (`PVE::RPCEnvironment::permissions`).
    pub(crate) fn permissions(&self, subject: &str, path: &str) -> Perms {
        if subject == ROOT {
            let all = self.catalog.all();
            return Perms {
                set: all,
                propagate: all,
            };
        }
        if let Some((user, _)) = subject.split_once('!') {
            let Some(privsep) = self.token_privsep(subject) else {
                return Perms::default();
            };
            let user_perms = self.permissions(user, path);
            if !privsep {
                return user_perms;
            }
            let own = self.privileges_of(&self.roles_on(subject, path));
            if user == ROOT {
                return own;
            }
            let set = own.set & user_perms.set;
            return Perms {
                set,
                propagate: own.propagate & user_perms.propagate & set,
            };
        }
        self.privileges_of(&self.roles_on(subject, path))
    }

    /// Whether the subject has any of the named privileges on a normalised path (`check_any`
    /// with `noerr`); unknown names grant nothing.
    pub(crate) fn has_any_privilege(&self, subject: &str, path: &str, names: &[&str]) -> bool {
        self.permissions(subject, path)
            .has_any(self.catalog.set(names.iter()))
    }

    /// The groups on whose `/access/groups/{group}` the subject has any of the named
    /// privileges, with their members.
    pub(crate) fn groups_granting(
        &self,
        subject: &str,
        names: &[&str],
    ) -> Vec<(&String, &BTreeSet<String>)> {
        self.groups
            .iter()
            .filter(|(group, _)| {
                self.has_any_privilege(subject, &format!("/access/groups/{group}"), names)
            })
            .collect()
    }
}

/// `PVE::AccessControl::roles`: walking from `/` down, the entries of a node that apply (all on
/// the path itself, propagating ones above it) replace what was found higher up; token entries
/// win over user entries, which win over group entries; `NoAccess` wins over everything.
fn walk(nodes: &HashMap<String, NodeRoles>, path: &str) -> BTreeMap<String, bool> {
    let mut roles: BTreeMap<String, bool> = BTreeMap::new();
    if nodes.is_empty() {
        return roles;
    }
    for prefix in path_prefixes(path) {
        let Some(node) = nodes.get(prefix) else {
            continue;
        };
        let last = prefix.len() == path.len();
        for level in &node.levels {
            let applying: BTreeMap<String, bool> = level
                .iter()
                .filter(|(_, propagate)| last || *propagate)
                .map(|(role, propagate)| (role.clone(), *propagate))
                .collect();
            if !applying.is_empty() {
                roles = applying;
                break;
            }
        }
    }
    if let Some(propagate) = roles.get("NoAccess").copied() {
        return BTreeMap::from([("NoAccess".to_owned(), propagate)]);
    }
    roles
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::access::acl::{ACL_ROW, acl_row};
    use crate::store::Change;

    /// A model of the given rows plus an ACL row holding `entries`.
    fn model_of(mut rows: Vec<Change>, entries: Vec<AclEntry>) -> AccessModel {
        rows.push(put(ACL_ROW, None, acl_row(entries)));
        let state =
            crate::store::StateStore::open(&crate::store::Store::Memory, "fp", rows).unwrap();
        let tables = state.read().clone();
        AccessModel::build(&tables, Arc::new(Catalog::for_release("9.1")))
    }

    fn put(path: &str, collection: Option<&str>, value: Value) -> Change {
        Change::Put {
            path: path.to_owned(),
            collection: collection.map(str::to_owned),
            value,
        }
    }

    fn entry(path: &str, kind: &str, ugid: &str, role: &str, propagate: u8) -> AclEntry {
        AclEntry {
            path: path.to_owned(),
            kind: kind.to_owned(),
            ugid: ugid.to_owned(),
            roleid: role.to_owned(),
            propagate,
        }
    }

    #[test]
    fn pool_roles_reach_members_but_not_over_noaccess() {
        let model = model_of(
            vec![
                put("/access/users/bob@pve", Some("/access/users"), json!({})),
                put(
                    "/pools/dev",
                    Some("/pools"),
                    json!({"_vms": [100, 101, 102], "_storage": ["local"]}),
                ),
            ],
            vec![
                entry("/pool/dev", "user", "bob@pve", "PVEVMUser", 1),
                entry("/vms/102", "user", "bob@pve", "NoAccess", 1),
                entry("/vms/101", "user", "bob@pve", "PVEAuditor", 1),
            ],
        );
        let bit = |name| model.catalog().bit(name).unwrap();
        let bob = |path| model.permissions("bob@pve", path);
        assert!(bob("/vms/100").has_all(bit("VM.PowerMgmt")));
        assert_eq!(bob("/vms/100").propagate & bit("VM.PowerMgmt"), 0);
        assert!(bob("/vms/101").has_all(bit("VM.PowerMgmt") | bit("Sys.Audit")));
        assert_eq!(bob("/vms/102").set, 0, "NoAccess is not trumped by pools");
        assert_eq!(bob("/vms/103").set, 0);
        assert!(bob("/storage/local").has_all(bit("VM.Audit")));
        assert!(
            model
                .effective_permissions("bob@pve")
                .get("/vms/100")
                .is_some()
        );
    }

    #[test]
    fn propagation_precedence_and_tokens() {
        let model = model_of(
            vec![
                put(
                    "/access/users/alice@pve",
                    Some("/access/users"),
                    json!({"groups": "ops"}),
                ),
                put("/access/users/bob@pve", Some("/access/users"), json!({})),
                put(
                    "/access/users/alice@pve/token/ro",
                    Some("/access/users/alice@pve/token"),
                    json!({"privsep": 1}),
                ),
                put(
                    "/access/users/alice@pve/token/full",
                    Some("/access/users/alice@pve/token"),
                    json!({"privsep": 0}),
                ),
                put("/access/groups/ops", Some("/access/groups"), json!({})),
            ],
            vec![
                entry("/", "group", "ops", "PVEAuditor", 1),
                entry("/vms/100", "user", "alice@pve", "PVEVMUser", 1),
                entry("/vms", "user", "bob@pve", "PVEVMAdmin", 0),
                entry("/vms/101", "user", "alice@pve", "NoAccess", 1),
                entry("/vms/100", "token", "alice@pve!ro", "PVEAuditor", 1),
            ],
        );
        let bit = |name| model.catalog().bit(name).unwrap();
        let alice = |path| model.permissions("alice@pve", path);
        assert!(alice("/nodes/pve1").has_all(bit("Sys.Audit")), "group on /");
        assert!(alice("/vms/100").has_all(bit("VM.PowerMgmt")));
        assert!(
            !alice("/vms/100").has_all(bit("Sys.Audit")),
            "user entries replace group ones"
        );
        assert_eq!(alice("/vms/101").set, 0, "NoAccess");
        // Not propagated: only on the path itself.
        assert!(
            model
                .permissions("bob@pve", "/vms")
                .has_all(bit("VM.Allocate"))
        );
        assert_eq!(model.permissions("bob@pve", "/vms/100").set, 0);
        // Privilege-separated token: own ACL intersected with the user's.
        let token = model.permissions("alice@pve!ro", "/vms/100");
        assert!(token.has_all(bit("VM.Audit")));
        assert!(!token.has_all(bit("VM.PowerMgmt")));
        assert_eq!(model.permissions("alice@pve!ro", "/nodes/pve1").set, 0);
        assert_eq!(
            model.permissions("alice@pve!full", "/vms/100"),
            alice("/vms/100")
        );
        assert_eq!(model.permissions("alice@pve!gone", "/").set, 0);
        assert_eq!(
            model.permissions(ROOT, "/anything").set,
            model.catalog().all()
        );
        let effective = model.effective_permissions("bob@pve");
        assert_eq!(effective["/vms"]["VM.Allocate"], 0);
        assert!(effective.get("/").is_none());
        let cap = model.api_capabilities("alice@pve");
        assert_eq!(cap["nodes"]["Sys.Audit"], 1);
        assert_eq!(cap["vms"]["VM.Audit"], 1);
    }
}
