//! `--record DIR`: what the upstream said, as a seed fixture (`DIR/fixture.yaml`, the format
//! `--seed` reads), so that `mock-server --seed DIR/fixture.yaml` serves that cluster.
//!
//! The recorder keeps the last `200` reply of each GET it sees on the paths a fixture is made
//! from (the table [`RECORDED`]), from the traffic that passes and from the crawl; it never sends
//! anything itself. A reply counts when its query is empty or only asks for more detail
//! (`full`, `_dc`; `poolid` on `/pools`), so a filtered list never hides members. At shutdown the
//! fixture is built from them:
//!
//! - cluster name and nodes: `/cluster/status`, `/nodes` (or `/cluster/resources`);
//! - storages: `/storage` (or the storages of `/cluster/resources`);
//! - guests: `/cluster/resources` and `/nodes/{node}/{qemu,lxc}`, each with its
//!   `.../config` (without `digest`) and `.../status/current`;
//! - pools with their members: `/pools`, `/pools/{poolid}` (and `pool` of the resources);
//! - users with groups and tokens, groups, custom roles, the ACL: `/access/...`.
//!
//! **Secrets are never written.** Users get no password (`root@pam` keeps the one the replaying
//! mock is given); each API token gets a new random secret; `cipassword` and any other key named
//! like a password or secret are removed from guest configurations (Proxmox shows them as
//! `**********` anyway); tickets and CSRF tokens are never recorded (no `/access/ticket` path is
//! in the table). What was removed is listed in the file's header.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::Rng;
use route_metadata::Operation;
use serde_json::{Map, Value, json};

use crate::error::Error;
use crate::seed::access::{AclSeed, GroupSeed, TokenSeed};
use crate::seed::{Fixture, GuestSeed, NodeSeed, StorageSeed, UserSeed};

/// The templated paths whose replies make the fixture.
pub(super) const RECORDED: &[&str] = &[
    "/cluster/status",
    "/cluster/resources",
    "/nodes",
    "/storage",
    "/nodes/{node}/qemu",
    "/nodes/{node}/lxc",
    "/nodes/{node}/qemu/{vmid}/config",
    "/nodes/{node}/lxc/{vmid}/config",
    "/nodes/{node}/qemu/{vmid}/status/current",
    "/nodes/{node}/lxc/{vmid}/status/current",
    "/pools",
    "/pools/{poolid}",
    "/access/users",
    "/access/users/{userid}/token",
    "/access/groups",
    "/access/roles",
    "/access/acl",
];

/// User fields a fixture keeps.
const USER_FIELDS: &[&str] = &["email", "firstname", "lastname", "comment", "expire"];

/// Configuration keys that are secrets (Proxmox's `cipassword`, and anything named like one).
fn is_secret_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    lower.contains("password") || lower.contains("secret")
}

/// The recorded replies.
#[derive(Debug)]
pub(super) struct Recorder {
    dir: PathBuf,
    /// Concrete path (with the `poolid` query folded in) -> (template, `data`).
    replies: Mutex<BTreeMap<String, (String, Value)>>,
}

impl Recorder {
    pub(super) fn new(dir: PathBuf) -> Recorder {
        Recorder {
            dir,
            replies: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether replies of this operation are recorded.
    pub(super) fn wants(template: &str) -> bool {
        RECORDED.contains(&template)
    }

    /// Keeps the reply of a GET, if it is one the fixture is made from.
    pub(super) fn observe(
        &self,
        op: &Operation,
        rel_path: &str,
        query: Option<&str>,
        envelope: &Value,
    ) {
        if !Recorder::wants(&op.path) {
            return;
        }
        let mut key = rel_path.trim_end_matches('/').to_owned();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "full" | "_dc" => {}
                "poolid" if op.path == "/pools" => key = format!("/pools/{value}"),
                _ => return,
            }
        }
        let data = envelope.get("data").cloned().unwrap_or(Value::Null);
        self.lock().insert(key, (op.path.clone(), data));
    }

    /// Builds the fixture and writes `DIR/fixture.yaml`.
    pub(super) fn write(&self, tag: &str) -> Result<PathBuf, Error> {
        let io = |context: String| {
            move |source: std::io::Error| Error::Io {
                context: context.clone(),
                source,
            }
        };
        let (fixture, removed) = build(&self.lock());
        let yaml = serde_yaml::to_string(&fixture)
            .map_err(|error| Error::Seed(format!("writing the recorded fixture: {error}")))?;
        let mut text = format!(
            "# Recorded by mock-server --record from an upstream Proxmox VE (schema {tag}).\n\
             # Serve it with: mock-server --seed {}\n\
             # No password, token secret, ticket or cipassword was recorded: users have no password\n\
             # (root@pam gets the replaying mock's root password) and every API token a new random secret.\n",
            self.dir.join("fixture.yaml").display()
        );
        if !removed.is_empty() {
            text.push_str(&format!(
                "# Removed secret configuration keys: {}\n",
                removed.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
        text.push_str(&yaml);
        std::fs::create_dir_all(&self.dir)
            .map_err(io(format!("creating {}", self.dir.display())))?;
        let path = self.dir.join("fixture.yaml");
        write_private(&path, &text).map_err(io(format!("writing {}", path.display())))?;
        Ok(path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, Value)>> {
        self.replies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The fixture holds new token secrets: readable by its owner only.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// The recorded replies, looked up by template.
struct Replies<'r>(&'r BTreeMap<String, (String, Value)>);

impl<'r> Replies<'r> {
    /// `(concrete path, data)` of every reply of a template.
    fn of(&self, template: &'r str) -> impl Iterator<Item = (&'r str, &'r Value)> + 'r {
        self.0
            .iter()
            .filter(move |(_, (t, _))| t == template)
            .map(|(path, (_, data))| (path.as_str(), data))
    }

    /// The items of every list reply of a template.
    fn items(&self, template: &'r str) -> impl Iterator<Item = &'r Map<String, Value>> + 'r {
        self.of(template)
            .filter_map(|(_, data)| data.as_array())
            .flatten()
            .filter_map(Value::as_object)
    }

    /// The reply of one concrete path.
    fn at(&self, path: &str) -> Option<&'r Value> {
        self.0.get(path).map(|(_, data)| data)
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn flag(map: &Map<String, Value>, key: &str) -> Option<bool> {
    match map.get(key)? {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => Some(number.as_i64() != Some(0)),
        Value::String(text) => Some(!matches!(text.as_str(), "0" | "" | "false")),
        _ => None,
    }
}

fn list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(text)) => text
            .split([',', ';', ' '])
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// A new random token secret (UUID-shaped, as Proxmox makes them).
fn new_secret() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The fixture, and the secret configuration keys that were removed.
fn build(recorded: &BTreeMap<String, (String, Value)>) -> (Fixture, BTreeSet<String>) {
    let replies = Replies(recorded);
    let mut fixture = Fixture::default_fixture();
    let mut removed = BTreeSet::new();
    let resources: Vec<&Map<String, Value>> = replies.items("/cluster/resources").collect();

    // Cluster and nodes.
    for item in replies.items("/cluster/status") {
        if text(item, "type").as_deref() == Some("cluster")
            && let Some(name) = text(item, "name")
        {
            fixture.cluster = name;
        }
    }
    let mut nodes: BTreeMap<String, String> = BTreeMap::new();
    for item in replies.items("/nodes") {
        if let Some(name) = text(item, "node") {
            nodes.insert(
                name,
                text(item, "status").unwrap_or_else(|| "online".into()),
            );
        }
    }
    for item in replies.items("/cluster/status") {
        if text(item, "type").as_deref() == Some("node")
            && let Some(name) = text(item, "name")
        {
            let online = flag(item, "online").unwrap_or(true);
            nodes
                .entry(name)
                .or_insert_with(|| if online { "online" } else { "offline" }.to_owned());
        }
    }
    for item in &resources {
        if text(item, "type").as_deref() == Some("node")
            && let Some(name) = text(item, "node")
        {
            nodes
                .entry(name)
                .or_insert_with(|| text(item, "status").unwrap_or_else(|| "online".into()));
        }
    }
    if !nodes.is_empty() {
        fixture.nodes = nodes
            .into_iter()
            .map(|(name, status)| NodeSeed { name, status })
            .collect();
    }

    // Storages.
    let mut storages: BTreeMap<String, StorageSeed> = BTreeMap::new();
    for item in replies.items("/storage") {
        let (Some(id), Some(kind)) = (text(item, "storage"), text(item, "type")) else {
            continue;
        };
        let mut config = item.clone();
        for key in ["storage", "type", "content", "nodes", "digest"] {
            config.remove(key);
        }
        storages.insert(
            id.clone(),
            StorageSeed {
                id,
                kind,
                content: text(item, "content").unwrap_or_default(),
                nodes: list(item.get("nodes")),
                config,
            },
        );
    }
    if storages.is_empty() {
        for item in &resources {
            if text(item, "type").as_deref() != Some("storage") {
                continue;
            }
            let (Some(id), Some(kind)) = (text(item, "storage"), text(item, "plugintype")) else {
                continue;
            };
            let entry = storages.entry(id.clone()).or_insert_with(|| StorageSeed {
                id,
                kind,
                content: text(item, "content").unwrap_or_default(),
                nodes: Vec::new(),
                config: Map::new(),
            });
            if let Some(node) = text(item, "node")
                && flag(item, "shared") != Some(true)
            {
                entry.nodes.push(node);
            }
        }
    }
    if !storages.is_empty() {
        fixture.storages = storages.into_values().collect();
    }

    // Guests.
    let mut guests: BTreeMap<u32, GuestSeed> = BTreeMap::new();
    let mut guest_pools: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut add_guest = |item: &Map<String, Value>, kind: &str, node: &str| {
        let Some(vmid) = item
            .get("vmid")
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .and_then(|v| u32::try_from(v).ok())
        else {
            return;
        };
        let guest = guests.entry(vmid).or_insert_with(|| {
            GuestSeed::new(vmid, kind, node, "stopped", Value::Object(Map::new()))
        });
        if let Some(status) = text(item, "status") {
            guest.status = status;
        }
        if let Some(name) = text(item, "name") {
            let key = if kind == "lxc" { "hostname" } else { "name" };
            guest.config.entry(key).or_insert(json!(name));
        }
    };
    for item in &resources {
        if let (Some(kind), Some(node)) = (text(item, "type"), text(item, "node"))
            && (kind == "qemu" || kind == "lxc")
        {
            add_guest(item, &kind, &node);
            if let (Some(pool), Some(vmid)) =
                (text(item, "pool"), item.get("vmid").and_then(Value::as_u64))
            {
                guest_pools.entry(pool).or_default().insert(vmid);
            }
        }
    }
    for kind in ["qemu", "lxc"] {
        for (path, data) in replies.of(if kind == "qemu" {
            "/nodes/{node}/qemu"
        } else {
            "/nodes/{node}/lxc"
        }) {
            let node = path.split('/').nth(2).unwrap_or_default().to_owned();
            for item in data
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
            {
                add_guest(item, kind, &node);
            }
        }
    }
    for guest in guests.values_mut() {
        let kind = if guest.kind == "lxc" { "lxc" } else { "qemu" };
        let item = format!("/nodes/{}/{kind}/{}", guest.node, guest.vmid);
        if let Some(Value::Object(config)) = replies.at(&format!("{item}/config")) {
            let mut config = config.clone();
            config.remove("digest");
            config.retain(|key, _| {
                let secret = is_secret_key(key);
                if secret {
                    removed.insert(key.clone());
                }
                !secret
            });
            guest.config = config;
        }
        if let Some(Value::Object(status)) = replies.at(&format!("{item}/status/current"))
            && let Some(state) = text(status, "status")
        {
            guest.status = state;
        }
    }
    if !guests.is_empty() || replies.of("/cluster/resources").next().is_some() {
        fixture.guests = guests.into_values().collect();
    }

    // Pools: rows with their members (see `crate::ops::pools`).
    let mut pools: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for item in replies.items("/pools") {
        if let Some(id) = text(item, "poolid") {
            add_members(&mut pools, &id, item);
        }
    }
    for (path, data) in replies.of("/pools/{poolid}") {
        let id = path.trim_start_matches("/pools/").to_owned();
        match data {
            Value::Object(item) => add_members(&mut pools, &id, item),
            Value::Array(items) => {
                for item in items.iter().filter_map(Value::as_object) {
                    add_members(&mut pools, &id, item);
                }
            }
            _ => {}
        }
    }
    for item in &resources {
        if text(item, "type").as_deref() == Some("pool")
            && let Some(id) = text(item, "pool")
        {
            pool_entry(&mut pools, &id);
        }
    }
    for (pool, vmids) in guest_pools {
        let mut row = pool_entry(&mut pools, &pool);
        let mut known: BTreeSet<u64> = row
            .get("_vms")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        known.extend(vmids);
        row.insert("_vms".into(), json!(known));
        pools.insert(pool, row);
    }
    for (id, row) in pools {
        fixture
            .objects
            .insert(format!("/pools/{id}"), Value::Object(row));
    }

    // Access: users, groups, roles, ACL.
    let mut users: BTreeMap<String, UserSeed> = BTreeMap::new();
    for item in replies.items("/access/users") {
        let Some(userid) = text(item, "userid") else {
            continue;
        };
        let mut user = UserSeed::new(&userid);
        user.enable = flag(item, "enable").unwrap_or(true);
        user.groups = list(item.get("groups"));
        for field in USER_FIELDS {
            if let Some(value) = item.get(*field).filter(|v| !v.is_null()) {
                user.config.insert((*field).to_owned(), value.clone());
            }
        }
        for token in item
            .get("tokens")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(token) = token.as_object() {
                add_token(&mut user, token);
            }
        }
        users.insert(userid, user);
    }
    for (path, data) in replies.of("/access/users/{userid}/token") {
        let userid = path.split('/').nth(3).unwrap_or_default();
        if let Some(user) = users.get_mut(userid) {
            for token in data
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
            {
                add_token(user, token);
            }
        }
    }
    let mut groups = Vec::new();
    for item in replies.items("/access/groups") {
        let Some(groupid) = text(item, "groupid") else {
            continue;
        };
        for member in list(item.get("users")) {
            if let Some(user) = users.get_mut(&member)
                && !user.groups.contains(&groupid)
            {
                user.groups.push(groupid.clone());
            }
        }
        groups.push(GroupSeed {
            groupid,
            comment: text(item, "comment").filter(|c| !c.is_empty()),
        });
    }
    if !users.is_empty() {
        if !users.contains_key("root@pam") {
            users.insert("root@pam".into(), UserSeed::new("root@pam"));
        }
        fixture.users = users.into_values().collect();
    }
    fixture.groups = groups;
    for item in replies.items("/access/roles") {
        if flag(item, "special") == Some(true) {
            continue;
        }
        if let Some(roleid) = text(item, "roleid") {
            fixture.roles.insert(roleid, list(item.get("privs")));
        }
    }
    let mut acl: BTreeMap<(String, String, bool), AclSeed> = BTreeMap::new();
    for item in replies.items("/access/acl") {
        let (Some(path), Some(roleid), Some(kind), Some(ugid)) = (
            text(item, "path"),
            text(item, "roleid"),
            text(item, "type"),
            text(item, "ugid"),
        ) else {
            continue;
        };
        let propagate = flag(item, "propagate").unwrap_or(true);
        let entry = acl
            .entry((path.clone(), roleid.clone(), propagate))
            .or_insert_with(|| AclSeed {
                path,
                roles: vec![roleid],
                users: Vec::new(),
                groups: Vec::new(),
                tokens: Vec::new(),
                propagate,
            });
        match kind.as_str() {
            "group" => entry.groups.push(ugid),
            "token" => entry.tokens.push(ugid),
            _ => entry.users.push(ugid),
        }
    }
    fixture.acl = acl.into_values().collect();
    (fixture, removed)
}

/// A pool's row, made empty when it is new.
fn pool_entry(pools: &mut BTreeMap<String, Map<String, Value>>, id: &str) -> Map<String, Value> {
    pools
        .entry(id.to_owned())
        .or_insert_with(|| {
            let mut row = Map::new();
            row.insert("_collection".into(), json!("/pools"));
            row.insert("_vms".into(), json!([]));
            row.insert("_storage".into(), json!([]));
            row
        })
        .clone()
}

/// A pool's comment and members from a `/pools` item or a `/pools/{poolid}` reply.
fn add_members(
    pools: &mut BTreeMap<String, Map<String, Value>>,
    id: &str,
    item: &Map<String, Value>,
) {
    let mut row = pool_entry(pools, id);
    if let Some(comment) = item.get("comment").filter(|c| c.is_string()) {
        row.insert("comment".into(), comment.clone());
    }
    if let Some(members) = item.get("members").and_then(Value::as_array) {
        let mut vms: Vec<u64> = Vec::new();
        let mut storages: Vec<String> = Vec::new();
        for member in members.iter().filter_map(Value::as_object) {
            match text(member, "type").as_deref() {
                // A storage is listed once per node it is on.
                Some("storage") => storages.extend(text(member, "storage")),
                _ => vms.extend(member.get("vmid").and_then(Value::as_u64)),
            }
        }
        storages.sort();
        storages.dedup();
        vms.sort_unstable();
        vms.dedup();
        row.insert("_vms".into(), json!(vms));
        row.insert("_storage".into(), json!(storages));
    }
    pools.insert(id.to_owned(), row);
}

/// A token from a user's `tokens` or the token list, with a new secret.
fn add_token(user: &mut UserSeed, token: &Map<String, Value>) {
    let Some(tokenid) = text(token, "tokenid") else {
        return;
    };
    let name = tokenid
        .rsplit_once('!')
        .map_or(tokenid.as_str(), |(_, name)| name)
        .to_owned();
    user.tokens.insert(
        name,
        TokenSeed::Full {
            secret: new_secret(),
            privsep: flag(token, "privsep").unwrap_or(true),
            expire: token.get("expire").and_then(Value::as_u64).unwrap_or(0),
            comment: text(token, "comment").filter(|c| !c.is_empty()),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(entries: &[(&str, &str, Value)]) -> BTreeMap<String, (String, Value)> {
        entries
            .iter()
            .map(|(path, template, data)| {
                ((*path).to_owned(), ((*template).to_owned(), data.clone()))
            })
            .collect()
    }

    #[test]
    fn secrets_never_reach_the_fixture() {
        let replies = recorded(&[
            (
                "/cluster/resources",
                "/cluster/resources",
                json!([{"type": "qemu", "vmid": 100, "node": "n1", "status": "running", "name": "web"}]),
            ),
            (
                "/nodes/n1/qemu/100/config",
                "/nodes/{node}/qemu/{vmid}/config",
                json!({"name": "web", "cipassword": "**********", "digest": "abc", "cores": 2}),
            ),
            (
                "/access/users",
                "/access/users",
                json!([{"userid": "alice@pve", "enable": 1, "tokens": [{"tokenid": "ci", "privsep": 0}]}]),
            ),
        ]);
        let (fixture, removed) = build(&replies);
        assert_eq!(removed.into_iter().collect::<Vec<_>>(), vec!["cipassword"]);
        let guest = &fixture.guests[0];
        assert_eq!(guest.status, "running");
        assert!(!guest.config.contains_key("cipassword"));
        assert!(!guest.config.contains_key("digest"));
        let alice = fixture.users.iter().find(|u| u.userid == "alice@pve");
        assert!(alice.is_some_and(|u| u.password.is_none() && u.tokens.contains_key("ci")));
        assert!(fixture.users.iter().any(|u| u.userid == "root@pam"));
    }
}
