//! The access model: users, groups, tokens, roles and the ACL, read once from the store and
//! evaluated like `PVE::RPCEnvironment::permissions` (pve-access-control
//! `src/PVE/RPCEnvironment.pm`) and `PVE::AccessControl::roles` (`src/PVE/AccessControl.pm`).
//!
//! Evaluation walks the requested path from `/` down, one ACL node per path segment, so its cost
//! depends on the depth of the path, not on the number of ACL entries or guests. What is
//! specific to a user or token (which entries name it or one of its groups, sorted into
//! Proxmox's three precedence levels: token, user, group) is compiled on first use and kept
//! until the access configuration changes; then the whole model is rebuilt
//! ([`super::AccessCache`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::privileges::{Catalog, PrivSet};
use crate::api::last_segment;
use crate::store::Tables;

/// Row holding the ACL entries (`{"entries": [...]}`).
pub const ACL_ROW: &str = "/_mock/acl";

/// The superuser, who has every privilege everywhere.
pub const ROOT: &str = "root@pam";

/// One ACL entry, as `GET /access/acl` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclEntry {
    /// Normalised ACL path.
    pub path: String,
    /// `user`, `group` or `token`.
    #[serde(rename = "type")]
    pub kind: String,
    /// User, group or token ID.
    pub ugid: String,
    /// Role.
    pub roleid: String,
    /// Whether the role propagates to paths below (0 or 1).
    pub propagate: u8,
}

/// The ACL entries stored in [`ACL_ROW`].
pub fn acl_entries(tables: &Tables) -> Vec<AclEntry> {
    tables
        .get(ACL_ROW)
        .and_then(|row| row.get("entries"))
        .and_then(|entries| serde_json::from_value(entries.clone()).ok())
        .unwrap_or_default()
}

/// The row value for a list of entries (sorted, duplicates removed).
pub fn acl_row(mut entries: Vec<AclEntry>) -> Value {
    entries.sort();
    entries.dedup_by(|a, b| {
        a.path == b.path && a.kind == b.kind && a.ugid == b.ugid && a.roleid == b.roleid
    });
    json!({ "entries": entries })
}

/// Privileges on a path with their propagation flags (`permissions()`'s hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Perms {
    /// Privileges that are set.
    pub set: PrivSet,
    /// The subset whose propagation flag is set.
    pub propagate: PrivSet,
}

impl Perms {
    /// Whether every privilege of `wanted` is set.
    pub fn has_all(&self, wanted: PrivSet) -> bool {
        self.set & wanted == wanted
    }

    /// Whether any privilege of `wanted` is set.
    pub fn has_any(&self, wanted: PrivSet) -> bool {
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

/// A consistent snapshot of the access configuration.
#[derive(Debug)]
pub struct AccessModel {
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
pub fn user_group_list(row: &Value) -> Vec<String> {
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
pub fn flag(row: &Value, key: &str, default: bool) -> bool {
    row.get(key)
        .and_then(crate::schema::value_bool)
        .unwrap_or(default)
}

impl AccessModel {
    /// Reads the access configuration from the tables.
    pub fn build(tables: &Tables, catalog: Arc<Catalog>) -> AccessModel {
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
                .get(path)
                .and_then(|row| row.get("privs"))
                .and_then(Value::as_str)
                .map(|text| {
                    crate::schema::split_list(text)
                        .filter_map(|name| catalog.bit(name))
                        .fold(0, |acc, bit| acc | bit)
                })
                .unwrap_or(0);
            roles.insert(name, privs);
        }
        let groups: BTreeMap<String, BTreeSet<String>> = tables
            .members("/access/groups")
            .map(|path| (last_segment(path).to_owned(), BTreeSet::new()))
            .collect();
        let mut model = AccessModel {
            catalog,
            roles,
            entries: acl_entries(tables),
            users: BTreeSet::new(),
            groups,
            user_groups: HashMap::new(),
            tokens: HashMap::new(),
            pools: tables
                .members("/pools")
                .map(|path| {
                    let row = tables.get(path);
                    let list = |key: &str| -> Vec<Value> {
                        row.and_then(|row| row.get(key))
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    };
                    Pool {
                        id: last_segment(path).to_owned(),
                        vms: list("_vms").iter().filter_map(Value::as_u64).collect(),
                        storages: list("_storage")
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                    }
                })
                .collect(),
            compiled: Mutex::new(HashMap::new()),
        };
        for path in tables.members("/access/users") {
            let userid = last_segment(path).to_owned();
            let row = tables.get(path).cloned().unwrap_or_default();
            let member_of: Vec<String> = user_group_list(&row)
                .into_iter()
                .filter(|group| model.groups.contains_key(group))
                .collect();
            for group in &member_of {
                if let Some(members) = model.groups.get_mut(group) {
                    members.insert(userid.clone());
                }
            }
            for token_path in tables.members(&format!("{path}/token")) {
                let privsep = tables
                    .get(token_path)
                    .is_none_or(|token| flag(token, "privsep", true));
                model
                    .tokens
                    .insert(format!("{userid}!{}", last_segment(token_path)), privsep);
            }
            model.user_groups.insert(userid.clone(), member_of);
            model.users.insert(userid);
        }
        model
    }

    /// The privilege catalogue.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Every role (built-in and custom) with its privileges.
    pub fn roles(&self) -> &HashMap<String, PrivSet> {
        &self.roles
    }

    /// The ACL entries.
    pub fn entries(&self) -> &[AclEntry] {
        &self.entries
    }

    /// Groups and their (existing) members.
    pub fn groups(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.groups
    }

    /// Whether a user exists.
    pub fn user_exists(&self, userid: &str) -> bool {
        self.users.contains(userid)
    }

    /// Whether a token exists, and its privilege separation.
    pub fn token_privsep(&self, tokenid: &str) -> Option<bool> {
        self.tokens.get(tokenid).copied()
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
            let members = pool
                .vms
                .iter()
                .map(|vmid| format!("/vms/{vmid}"))
                .chain(pool.storages.iter().map(|id| format!("/storage/{id}")));
            for member in members {
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
    pub fn roles_on(&self, subject: &str, path: &str) -> BTreeMap<String, bool> {
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
    pub fn permissions(&self, subject: &str, path: &str) -> Perms {
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

    /// The privileges of a set as a `{"Priv": 0|1}` map (propagation flag as value).
    pub fn perms_json(&self, perms: Perms) -> Value {
        let mut map = Map::new();
        for name in self.catalog.names_of(perms.set) {
            let propagate = self
                .catalog
                .bit(name)
                .is_some_and(|bit| perms.propagate & bit != 0);
            map.insert(name.to_owned(), json!(u8::from(propagate)));
        }
        Value::Object(map)
    }

    /// Every path an ACL entry names.
    pub fn acl_paths(&self) -> BTreeSet<String> {
        self.entries
            .iter()
            .map(|entry| entry.path.clone())
            .collect()
    }

    /// `get_effective_permissions`: the default top-level paths, every ACL path and every pool
    /// member, with the privileges the subject has there (paths without any are left out).
    pub fn effective_permissions(&self, subject: &str) -> Value {
        let mut paths: BTreeSet<String> = [
            "/",
            "/access",
            "/access/groups",
            "/nodes",
            "/pool",
            "/sdn",
            "/storage",
            "/vms",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        paths.extend(self.acl_paths());
        for pool in &self.pools {
            paths.extend(pool.vms.iter().map(|vmid| format!("/vms/{vmid}")));
            paths.extend(pool.storages.iter().map(|id| format!("/storage/{id}")));
        }
        let mut result = Map::new();
        for path in paths {
            let perms = self.permissions(subject, &path);
            if perms.set != 0 {
                result.insert(path, self.perms_json(perms));
            }
        }
        Value::Object(result)
    }

    /// `compute_api_permission`: the `cap` object of a login reply.
    pub fn api_capabilities(&self, subject: &str) -> Value {
        type Matcher = fn(&str) -> bool;
        let categories: [(&str, Matcher); 7] = [
            ("vms", |p| p.starts_with("VM.") || p == "Permissions.Modify"),
            ("access", |p| {
                p.starts_with("User.") || p.starts_with("Group.") || p == "Permissions.Modify"
            }),
            ("storage", |p| {
                p.starts_with("Datastore.") || p == "Permissions.Modify"
            }),
            ("nodes", |p| {
                p.starts_with("Sys.") || p == "Permissions.Modify"
            }),
            ("sdn", |p| {
                p.starts_with("SDN.") || p == "Permissions.Modify"
            }),
            ("dc", |p| {
                p.starts_with("Sys.Audit") || p.starts_with("Sys.Modify") || p.starts_with("SDN.")
            }),
            ("mapping", |p| {
                p.starts_with("Mapping.") || p == "Permissions.Modify"
            }),
        ];
        let mut result: BTreeMap<&str, Map<String, Value>> = categories
            .iter()
            .map(|(name, _)| (*name, Map::new()))
            .collect();
        let mut paths: Vec<String> = [
            "/",
            "/nodes",
            "/access/groups",
            "/vms",
            "/storage",
            "/sdn",
            "/mapping",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for path in self.acl_paths() {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        for path in &paths {
            let perms = self.permissions(subject, path);
            let toplevel = path
                .strip_prefix('/')
                .and_then(|rest| rest.split('/').next())
                .filter(|word| !word.is_empty())
                .unwrap_or("dc");
            for name in self.catalog.names_of(perms.set) {
                if toplevel == "pool" {
                    if name.starts_with("VM.") {
                        result
                            .entry("vms")
                            .or_default()
                            .insert(name.into(), json!(1));
                    } else if name.starts_with("Datastore.") {
                        result
                            .entry("storage")
                            .or_default()
                            .insert(name.into(), json!(1));
                    } else if name == "Permissions.Modify" {
                        result
                            .entry("storage")
                            .or_default()
                            .insert(name.into(), json!(1));
                        result
                            .entry("vms")
                            .or_default()
                            .insert(name.into(), json!(1));
                    }
                    continue;
                }
                let Some((_, matches)) = categories.iter().find(|(cat, _)| *cat == toplevel) else {
                    continue;
                };
                if matches(name) {
                    result
                        .entry(toplevel)
                        .or_default()
                        .insert(name.into(), json!(1));
                }
            }
        }
        Value::Object(
            result
                .into_iter()
                .map(|(key, map)| (key.to_owned(), Value::Object(map)))
                .collect(),
        )
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

/// `/`, `/a`, `/a/b`, ... up to and including `path` (which must be normalised).
pub fn path_prefixes(path: &str) -> impl Iterator<Item = &str> {
    let ends = std::iter::once(1).chain(
        path.char_indices()
            .skip(1)
            .filter(|(_, c)| *c == '/')
            .map(|(index, _)| index)
            .chain(std::iter::once(path.len()).filter(|len| *len > 1)),
    );
    ends.map(move |end| &path[..end.min(path.len())])
}

/// `PVE::AccessControl::normalize_path`: collapses slashes, drops a trailing one, adds a
/// leading one; `None` for characters outside `[[:alnum:].-_/]`.
pub fn normalize_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    out.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        .then_some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::{Change, Tables};

    #[test]
    fn prefixes_and_normalisation() {
        assert_eq!(path_prefixes("/").collect::<Vec<_>>(), ["/"]);
        assert_eq!(
            path_prefixes("/vms/100").collect::<Vec<_>>(),
            ["/", "/vms", "/vms/100"]
        );
        assert_eq!(normalize_path("vms//100/").as_deref(), Some("/vms/100"));
        assert_eq!(normalize_path("/").as_deref(), Some("/"));
        assert_eq!(normalize_path("/a b"), None);
        assert_eq!(normalize_path(""), None);
    }

    fn tables(changes: Vec<Change>) -> Tables {
        let state =
            crate::store::StateStore::open(&crate::store::Store::Memory, "fp", changes).unwrap();
        state.read().clone()
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
        let entries = vec![
            entry("/pool/dev", "user", "bob@pve", "PVEVMUser", 1),
            entry("/vms/102", "user", "bob@pve", "NoAccess", 1),
            entry("/vms/101", "user", "bob@pve", "PVEAuditor", 1),
        ];
        let tables = tables(vec![
            put("/access/users/bob@pve", Some("/access/users"), json!({})),
            put(
                "/pools/dev",
                Some("/pools"),
                json!({"_vms": [100, 101, 102], "_storage": ["local"]}),
            ),
            put(ACL_ROW, None, acl_row(entries)),
        ]);
        let model = AccessModel::build(&tables, Arc::new(Catalog::for_release("9.1")));
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
        let entries = vec![
            entry("/", "group", "ops", "PVEAuditor", 1),
            entry("/vms/100", "user", "alice@pve", "PVEVMUser", 1),
            entry("/vms", "user", "bob@pve", "PVEVMAdmin", 0),
            entry("/vms/101", "user", "alice@pve", "NoAccess", 1),
            entry("/vms/100", "token", "alice@pve!ro", "PVEAuditor", 1),
        ];
        let tables = tables(vec![
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
            put(ACL_ROW, None, acl_row(entries)),
        ]);
        let model = AccessModel::build(&tables, Arc::new(Catalog::for_release("9.1")));
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
