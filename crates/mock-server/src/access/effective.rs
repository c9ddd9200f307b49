//! How a subject's permissions are shown in replies: a privilege set as `{"Priv": 0|1}`,
//! `get_effective_permissions` (`GET /access/permissions`) and `compute_api_permission` (the
//! `cap` object of a login reply), both in pve-access-control `src/PVE/RPCEnvironment.pm`.
//!
//! These are methods of [`AccessModel`] built only on its public evaluation (`permissions`,
//! the ACL paths, the pool members).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::model::{AccessModel, Perms};

/// The paths `get_effective_permissions` always reports, before the ACL paths and pool members.
const EFFECTIVE_PATHS: [&str; 8] = [
    "/",
    "/access",
    "/access/groups",
    "/nodes",
    "/pool",
    "/sdn",
    "/storage",
    "/vms",
];

/// The paths `compute_api_permission` always looks at, before the ACL paths.
const CAP_PATHS: [&str; 7] = [
    "/",
    "/nodes",
    "/access/groups",
    "/vms",
    "/storage",
    "/sdn",
    "/mapping",
];

/// Whether a privilege belongs to a `cap` category.
type Matcher = fn(&str) -> bool;

/// The categories of the `cap` object, each named like the top-level path it reports (`dc` for
/// `/` and other top levels), with the privileges it shows.
static CAP_CATEGORIES: [(&str, Matcher); 7] = [
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

/// The `cap` object under construction: category, then privilege names set to 1.
type Capabilities = BTreeMap<&'static str, Map<String, Value>>;

impl AccessModel {
    /// The privileges of a set as a `{"Priv": 0|1}` map (propagation flag as value).
    pub(crate) fn perms_json(&self, perms: Perms) -> Value {
        let catalog = self.catalog();
        let mut map = Map::new();
        for name in catalog.names_of(perms.set) {
            let propagate = catalog
                .bit(name)
                .is_some_and(|bit| perms.propagate & bit != 0);
            map.insert(name.to_owned(), json!(u8::from(propagate)));
        }
        Value::Object(map)
    }

    /// `get_effective_permissions`: the default top-level paths, every ACL path and every pool
    /// member, with the privileges the subject has there (paths without any are left out).
    pub(crate) fn effective_permissions(&self, subject: &str) -> Value {
        let mut paths: BTreeSet<String> = EFFECTIVE_PATHS.into_iter().map(str::to_owned).collect();
        paths.extend(self.acl_paths());
        paths.extend(self.pool_member_paths());
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
    pub(crate) fn api_capabilities(&self, subject: &str) -> Value {
        let mut result: Capabilities = CAP_CATEGORIES
            .iter()
            .map(|(name, _)| (*name, Map::new()))
            .collect();
        for path in &self.cap_paths() {
            let perms = self.permissions(subject, path);
            let toplevel = toplevel(path);
            for name in self.catalog().names_of(perms.set) {
                add_capability(&mut result, toplevel, name);
            }
        }
        Value::Object(
            result
                .into_iter()
                .map(|(key, map)| (key.to_owned(), Value::Object(map)))
                .collect(),
        )
    }

    /// The paths of the `cap` object: [`CAP_PATHS`], then the other ACL paths in order.
    fn cap_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = CAP_PATHS.into_iter().map(str::to_owned).collect();
        for path in self.acl_paths() {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        paths
    }
}

/// The first segment of a path (`vms` for `/vms/100`), `dc` for `/`.
fn toplevel(path: &str) -> &str {
    path.strip_prefix('/')
        .and_then(|rest| rest.split('/').next())
        .filter(|word| !word.is_empty())
        .unwrap_or("dc")
}

/// Records a privilege the subject has on a path below `toplevel`: on a pool it counts for the
/// guests (`VM.*`) or the storages (`Datastore.*`), `Permissions.Modify` for both; elsewhere in
/// the category of that name if the category shows it.
fn add_capability(result: &mut Capabilities, toplevel: &str, name: &str) {
    let categories: &[&'static str] = if toplevel == "pool" {
        pool_categories(name)
    } else {
        match CAP_CATEGORIES
            .iter()
            .find(|(category, _)| *category == toplevel)
        {
            Some((category, matches)) if matches(name) => std::slice::from_ref(category),
            _ => &[],
        }
    };
    for category in categories {
        result
            .entry(category)
            .or_default()
            .insert(name.into(), json!(1));
    }
}

/// The `cap` categories a privilege on a pool counts for.
fn pool_categories(name: &str) -> &'static [&'static str] {
    if name.starts_with("VM.") {
        &["vms"]
    } else if name.starts_with("Datastore.") {
        &["storage"]
    } else if name == "Permissions.Modify" {
        &["storage", "vms"]
    } else {
        &[]
    }
}
