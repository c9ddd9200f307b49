//! The second source format: a capture of Proxmox's API viewer (`raw_capture.json`), read into
//! the same tree as `apidata.js`, and the written rule that restores what a capture lacks.
//!
//! A capture is `{"merged_endpoints": {PATH: {"path", "text", "methods": {METHOD: INFO}}}}`: a
//! flat map instead of the tree, the operation's name under `method_name` instead of `name`,
//! keys of the capturing tool beside Proxmox's ([`TOOL_KEYS`]), `null` for an absent flag, and
//! none of `proxyto`, `expose_credentials`, `download_allowed` ([`RESTORED_KEYS`]).
//!
//! [`parse`] rebuilds the tree (a path's parent is its longest proper prefix that is itself a
//! path; children sorted by path, since a capture does not keep Proxmox's order) and drops the
//! tool's keys. [`restore`] then fills the missing keys, recording every field it sets:
//!
//! 1. `previous`: an operation that the previous tag (`restore_from` in `index.json`) has at the
//!    same path and method takes that operation's `proxyto`, `expose_credentials` and
//!    `download_allowed`, whichever it has.
//! 2. `node-subtree`: an operation new in this tag, below `/nodes/{node}/`, gets
//!    `proxyto: "node"` when most of the previous tag's operations in the nearest enclosing
//!    subtree that has any (directory indexes left out) have it. That is how Proxmox writes its
//!    API modules: a module mounted below `/nodes/{node}` (pve-storage `PVE::API2::Storage::Status`,
//!    pve-manager `PVE::API2::Ceph::FS`, ...) declares `proxyto => 'node'` on the methods that
//!    act on the node. Leave-one-out over the pinned 9.1 `apidata.js` it predicts the `proxyto`
//!    of 601 of 649 operations (a test checks the figure); both node-scoped operations new in 9.2
//!    (`identity` in pve-storage, `destroyfs` in pve-manager) declare `proxyto => 'node'` in
//!    Proxmox's sources, as the rule says. Operations outside `/nodes/{node}` and new
//!    operations never get `expose_credentials` or `download_allowed`.
//! 3. `undeclared-path-parameter`: a path parameter that the operation's `parameters` do not
//!    declare (9.2's `/cluster/sdn/prefix-lists/{id}/entries/{url_seq}`) is added as a required
//!    string, the least the path itself says about it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

/// Keys of a captured operation that are Proxmox's and kept (`method_name` becomes `name`).
const PROXMOX_KEYS: &[&str] = &[
    "allowtoken",
    "description",
    "method",
    "method_name",
    "parameters",
    "permissions",
    "protected",
    "returns",
    "proxyto",
    "expose_credentials",
    "download_allowed",
];

/// Keys the capturing tool adds; dropped.
pub const TOOL_KEYS: &[&str] = &[
    "path",
    "raw_sections",
    "source",
    "unstable",
    "viewer_description",
    "viewer_usage",
];

/// Operation keys of `apidata.js` that a capture does not carry and [`restore`] fills.
pub const RESTORED_KEYS: &[&str] = &["proxyto", "expose_credentials", "download_allowed"];

/// One field [`restore`] set.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// Templated path.
    pub path: String,
    /// HTTP method.
    pub method: String,
    /// The operation key, or `parameters.<name>` for an undeclared path parameter.
    pub field: String,
    /// The value set.
    pub value: Value,
    /// Which rule set it (`previous`, `node-subtree`, `undeclared-path-parameter`).
    pub rule: &'static str,
}

impl Restored {
    /// The record as written to `restored_fields.json`.
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method,
            "path": self.path,
            "field": self.field,
            "value": self.value,
            "rule": self.rule,
        })
    }
}

/// Reads a capture into the tree of path nodes `apidata.js` has.
pub fn parse(text: &str) -> anyhow::Result<Vec<Value>> {
    let document: Value = serde_json::from_str(text).context("malformed capture JSON")?;
    let endpoints = document
        .get("merged_endpoints")
        .and_then(Value::as_object)
        .context("the capture has no `merged_endpoints` object")?;
    if endpoints.is_empty() {
        bail!("the capture has no endpoints");
    }
    let mut nodes: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for (path, endpoint) in endpoints {
        if !path.starts_with('/') {
            bail!("{path}: a captured path does not start with `/`");
        }
        let mut node = Map::new();
        node.insert("path".to_owned(), json!(path));
        let text = endpoint
            .get("text")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| path.rsplit('/').next().unwrap_or_default().to_owned());
        node.insert("text".to_owned(), json!(text));
        let methods = match endpoint.get("methods") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(methods)) => methods.clone(),
            Some(_) => bail!("{path}: `methods` is not an object"),
        };
        let mut info = Map::new();
        for (method, operation) in methods {
            info.insert(method.clone(), operation_of(path, &method, &operation)?);
        }
        if !info.is_empty() {
            node.insert("info".to_owned(), Value::Object(info));
        }
        nodes.insert(path.clone(), node);
    }

    // Parent: the longest proper prefix (by segments) that is itself a path.
    let paths: BTreeSet<String> = nodes.keys().cloned().collect();
    let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut roots = Vec::new();
    for path in &paths {
        match parent_of(path, &paths) {
            Some(parent) => children.entry(parent).or_default().push(path.clone()),
            None => roots.push(path.clone()),
        }
    }
    fn assemble(
        path: &str,
        nodes: &mut BTreeMap<String, Map<String, Value>>,
        children: &BTreeMap<String, Vec<String>>,
    ) -> Value {
        let mut node = nodes.remove(path).unwrap_or_default();
        let below = children.get(path).cloned().unwrap_or_default();
        node.insert("leaf".to_owned(), json!(u8::from(below.is_empty())));
        if !below.is_empty() {
            let built: Vec<Value> = below
                .iter()
                .map(|child| assemble(child, nodes, children))
                .collect();
            node.insert("children".to_owned(), Value::Array(built));
        }
        Value::Object(node)
    }
    Ok(roots
        .iter()
        .map(|root| assemble(root, &mut nodes, &children))
        .collect())
}

fn parent_of(path: &str, paths: &BTreeSet<String>) -> Option<String> {
    let mut candidate = path;
    while let Some(cut) = candidate.rfind('/') {
        candidate = &path[..cut];
        if candidate.is_empty() {
            return None;
        }
        if paths.contains(candidate) {
            return Some(candidate.to_owned());
        }
    }
    None
}

fn operation_of(path: &str, method: &str, operation: &Value) -> anyhow::Result<Value> {
    let at = format!("{path} {method}");
    let operation = operation
        .as_object()
        .with_context(|| format!("{at}: the operation is not an object"))?;
    let mut out = Map::new();
    for (key, value) in operation {
        if TOOL_KEYS.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        if !PROXMOX_KEYS.contains(&key.as_str()) {
            bail!(
                "{at}: unknown capture key `{key}`; add it to PROXMOX_KEYS or TOOL_KEYS in \
                 xtask/src/codegen/capture.rs"
            );
        }
        let key = if key == "method_name" { "name" } else { key };
        out.insert(key.to_owned(), value.clone());
    }
    if !out.contains_key("name") {
        bail!("{at}: the operation has no `method_name`");
    }
    match out.get("method").and_then(Value::as_str) {
        Some(declared) if declared != method => {
            bail!("{at}: the operation says it is {declared}")
        }
        _ => {}
    }
    Ok(Value::Object(out))
}

/// Every operation of a tree: `(path, method) -> definition`.
pub fn operations(tree: &[Value]) -> BTreeMap<(String, String), Map<String, Value>> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<&Value> = tree.iter().collect();
    while let Some(node) = stack.pop() {
        let path = node.get("path").and_then(Value::as_str).unwrap_or_default();
        if let Some(info) = node.get("info").and_then(Value::as_object) {
            for (method, definition) in info {
                if let Some(definition) = definition.as_object() {
                    out.insert((path.to_owned(), method.clone()), definition.clone());
                }
            }
        }
        if let Some(children) = node.get("children").and_then(Value::as_array) {
            stack.extend(children);
        }
    }
    out
}

/// Fills what a capture lacks (see the module documentation), in place; returns every field set,
/// sorted by path, method and field.
pub fn restore(tree: &mut [Value], previous: &[Value]) -> Vec<Restored> {
    let previous = operations(previous);
    let mut restored = Vec::new();
    let mut stack: Vec<&mut Value> = tree.iter_mut().collect();
    while let Some(node) = stack.pop() {
        let path = node
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(info) = node.get_mut("info").and_then(Value::as_object_mut) {
            for (method, definition) in info.iter_mut() {
                let Some(definition) = definition.as_object_mut() else {
                    continue;
                };
                restore_operation(&path, method, definition, &previous, &mut restored);
            }
        }
        if let Some(children) = node.get_mut("children").and_then(Value::as_array_mut) {
            stack.extend(children.iter_mut());
        }
    }
    restored.sort_by(|a, b| {
        (a.path.as_str(), a.method.as_str(), a.field.as_str()).cmp(&(
            b.path.as_str(),
            b.method.as_str(),
            b.field.as_str(),
        ))
    });
    restored
}

fn restore_operation(
    path: &str,
    method: &str,
    definition: &mut Map<String, Value>,
    previous: &BTreeMap<(String, String), Map<String, Value>>,
    restored: &mut Vec<Restored>,
) {
    let mut record = |field: &str, value: Value, rule: &'static str| {
        restored.push(Restored {
            path: path.to_owned(),
            method: method.to_owned(),
            field: field.to_owned(),
            value,
            rule,
        });
    };
    match previous.get(&(path.to_owned(), method.to_owned())) {
        Some(before) => {
            for key in RESTORED_KEYS {
                if definition.contains_key(*key) {
                    continue;
                }
                if let Some(value) = before.get(*key) {
                    definition.insert((*key).to_owned(), value.clone());
                    record(key, value.clone(), "previous");
                }
            }
        }
        None => {
            if !definition.contains_key("proxyto")
                && node_subtree_proxyto(path, method, previous).is_some()
            {
                definition.insert("proxyto".to_owned(), json!("node"));
                record("proxyto", json!("node"), "node-subtree");
            }
        }
    }
    for param in path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    {
        let parameters = definition
            .entry("parameters")
            .or_insert_with(|| json!({"additionalProperties": 0}));
        let Some(parameters) = parameters.as_object_mut() else {
            continue;
        };
        let properties = parameters.entry("properties").or_insert_with(|| json!({}));
        let Some(properties) = properties.as_object_mut() else {
            continue;
        };
        if !properties.contains_key(param) {
            let schema = json!({"type": "string", "description": format!(
                "Path parameter `{param}` (not declared by the schema; restored by codegen)."
            )});
            properties.insert(param.to_owned(), schema.clone());
            record(
                &format!("parameters.{param}"),
                schema,
                "undeclared-path-parameter",
            );
        }
    }
}

/// The `node-subtree` rule: `Some("node")` when a new operation at `path` below
/// `/nodes/{node}/` should be proxied to its node, judged from `known` operations (the one being
/// predicted, if present, is left out).
pub fn node_subtree_proxyto(
    path: &str,
    method: &str,
    known: &BTreeMap<(String, String), Map<String, Value>>,
) -> Option<&'static str> {
    if !path.starts_with("/nodes/{node}/") {
        return None;
    }
    let segments: Vec<&str> = path.split('/').collect();
    for keep in (3..=segments.len()).rev() {
        let scope = segments[..keep].join("/");
        let below = format!("{scope}/");
        let mut total = 0usize;
        let mut proxied = 0usize;
        for ((other_path, other_method), definition) in known {
            if (other_path == path && other_method == method)
                || !(other_path == &scope || other_path.starts_with(&below))
                || is_directory_index(other_method, definition)
            {
                continue;
            }
            total += 1;
            if definition.get("proxyto").and_then(Value::as_str) == Some("node") {
                proxied += 1;
            }
        }
        if total > 0 {
            return (2 * proxied > total).then_some("node");
        }
    }
    None
}

/// A `GET` that lists its children (`links` with `rel: child`).
fn is_directory_index(method: &str, definition: &Map<String, Value>) -> bool {
    method == "GET"
        && definition
            .get("returns")
            .and_then(|returns| returns.get("links"))
            .and_then(Value::as_array)
            .is_some_and(|links| {
                links
                    .iter()
                    .any(|link| link.get("rel").and_then(Value::as_str) == Some("child"))
            })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::{metadata, source, workspace_root};

    fn capture(endpoints: Value) -> String {
        json!({"merged_endpoints": endpoints}).to_string()
    }

    #[test]
    fn flat_capture_becomes_a_tree_with_apidata_keys() {
        let text = capture(json!({
            "/nodes": {"path": "/nodes", "text": "nodes", "methods": {"GET": {
                "method": "GET", "method_name": "index", "protected": null,
                "raw_sections": [], "source": "x", "unstable": null,
                "viewer_description": null, "viewer_usage": null, "path": "/nodes"}}},
            "/nodes/{node}": {"path": "/nodes/{node}", "methods": {}},
            "/nodes/{node}/a/b": {"path": "/nodes/{node}/a/b", "methods": {}},
        }));
        let tree = parse(&text).expect("parses");
        assert_eq!(tree.len(), 1);
        let get = &tree[0]["info"]["GET"];
        assert_eq!(get, &json!({"method": "GET", "name": "index"}));
        let node = &tree[0]["children"][0];
        assert_eq!(node["path"], "/nodes/{node}");
        assert!(node.get("info").is_none());
        // /nodes/{node}/a is not a path: b hangs below the nearest path that is.
        assert_eq!(node["children"][0]["path"], "/nodes/{node}/a/b");
    }

    #[test]
    fn unknown_keys_and_malformed_captures_are_named_errors() {
        let text = capture(json!({"/x": {"methods": {"GET": {"method_name": "x", "new": 1}}}}));
        let error = parse(&text).expect_err("unknown key");
        assert!(error.to_string().contains("`new`"), "{error}");
        let error = parse("{\"viewer\": {}}").expect_err("no endpoints");
        assert!(error.to_string().contains("merged_endpoints"), "{error}");
        let text = capture(json!({"/x": {"methods": {"GET": {"method": "GET"}}}}));
        let error = parse(&text).expect_err("no name");
        assert!(error.to_string().contains("method_name"), "{error}");
    }

    #[test]
    fn restore_takes_previous_fields_then_the_node_subtree_rule() {
        let previous = parse(&capture(json!({
            "/nodes/{node}/storage/{storage}/status": {"methods": {"GET": {
                "method_name": "status", "proxyto": "node"}}},
            "/nodes/{node}/storage/{storage}/content": {"methods": {"GET": {
                "method_name": "index", "proxyto": "node", "download_allowed": 1}}},
            "/cluster/x": {"methods": {"GET": {"method_name": "x"}}},
        })))
        .expect("previous");
        let mut current = parse(&capture(json!({
            "/nodes/{node}/storage/{storage}/content": {"methods": {"GET": {
                "method_name": "index",
                "parameters": {"properties": {"node": {}, "storage": {}}}}}},
            "/nodes/{node}/storage/{storage}/identity": {"methods": {"GET": {
                "method_name": "identity",
                "parameters": {"properties": {"node": {}}}}}},
            "/cluster/y": {"methods": {"GET": {"method_name": "y"}}},
        })))
        .expect("current");
        let restored = restore(&mut current, &previous);
        let summary: Vec<(&str, &str, &str)> = restored
            .iter()
            .map(|r| (r.path.as_str(), r.field.as_str(), r.rule))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "/nodes/{node}/storage/{storage}/content",
                    "download_allowed",
                    "previous"
                ),
                (
                    "/nodes/{node}/storage/{storage}/content",
                    "proxyto",
                    "previous"
                ),
                (
                    "/nodes/{node}/storage/{storage}/identity",
                    "parameters.storage",
                    "undeclared-path-parameter"
                ),
                (
                    "/nodes/{node}/storage/{storage}/identity",
                    "proxyto",
                    "node-subtree"
                ),
            ]
        );
        let operations = operations(&current);
        let identity = &operations[&(
            "/nodes/{node}/storage/{storage}/identity".to_owned(),
            "GET".to_owned(),
        )];
        assert_eq!(identity["proxyto"], "node");
        assert_eq!(
            identity["parameters"]["properties"]["storage"]["type"],
            "string"
        );
        assert!(!operations[&("/cluster/y".to_owned(), "GET".to_owned())].contains_key("proxyto"));
    }

    fn pinned(tag: &str) -> Vec<Value> {
        let root = workspace_root();
        let index = source::read_index(&root).expect("index");
        let entry = index
            .schemas
            .into_iter()
            .find(|entry| entry.tag == tag)
            .expect("tag pinned");
        source::load(&root, entry).expect("loads").tree
    }

    /// The rule against Proxmox's own choices: every operation of the pinned 9.1 `apidata.js`,
    /// predicted from the others.
    #[test]
    fn node_subtree_rule_leave_one_out_on_9_1() {
        let known = operations(&pinned("9.1"));
        let hits = known
            .iter()
            .filter(|((path, method), definition)| {
                let actual = definition.get("proxyto").and_then(Value::as_str);
                let predicted = if path.starts_with("/nodes/{node}/") {
                    node_subtree_proxyto(path, method, &known)
                } else {
                    None
                };
                actual == predicted
            })
            .count();
        assert_eq!(known.len(), 649);
        assert_eq!(hits, 601, "update the figure in the module documentation");
    }

    /// The pinned 9.1.11 capture read by this module gives the operations of the pinned 9.1
    /// `apidata.js`: parameters, returns, permissions and protected identical, and, once
    /// restored from 9.1 itself, the same route metadata.
    #[test]
    fn capture_of_9_1_11_matches_pinned_9_1_apidata() {
        let root = workspace_root();
        let text =
            std::fs::read_to_string(root.join("schemas/pve-captures/9.1.11/raw_capture.json"))
                .expect("pinned 9.1.11 capture");
        let apidata = pinned("9.1");
        let mut tree = parse(&text).expect("parses");
        let from_capture = operations(&tree);
        let from_apidata = operations(&apidata);
        assert_eq!(from_capture.len(), 649);
        assert_eq!(
            from_capture.keys().collect::<Vec<_>>(),
            from_apidata.keys().collect::<Vec<_>>()
        );
        for (key, captured) in &from_capture {
            let pinned = &from_apidata[key];
            for field in [
                "parameters",
                "returns",
                "permissions",
                "protected",
                "name",
                "allowtoken",
            ] {
                assert_eq!(captured.get(field), pinned.get(field), "{key:?} {field}");
            }
        }

        let restored = restore(&mut tree, &apidata);
        assert!(restored.iter().all(|r| r.rule == "previous"), "all known");
        assert_eq!(
            restored.iter().filter(|r| r.field == "proxyto").count(),
            from_apidata
                .values()
                .filter(|d| d.contains_key("proxyto"))
                .count()
        );
        let index = source::read_index(&root).expect("index");
        let entry = index
            .schemas
            .into_iter()
            .find(|entry| entry.tag == "9.1")
            .expect("9.1");
        let from_apidata = metadata::build(&source::LoadedSchema {
            entry: entry.clone(),
            sha256: String::new(),
            tree: apidata,
            restored: None,
        })
        .expect("apidata metadata");
        let mut entry = entry;
        entry.paths = 431;
        let from_capture = metadata::build(&source::LoadedSchema {
            entry,
            sha256: String::new(),
            tree,
            restored: None,
        })
        .expect("capture metadata");
        assert_eq!(from_capture.operations, from_apidata.operations);
        for (a, b) in from_capture.paths.iter().zip(&from_apidata.paths) {
            let mut sorted = b.children.clone();
            sorted.sort();
            assert_eq!(a.children, sorted, "{}", a.path);
            assert_eq!(
                (&a.path, a.kind, &a.id_param, &a.methods),
                (&b.path, b.kind, &b.id_param, &b.methods)
            );
        }
    }
}
