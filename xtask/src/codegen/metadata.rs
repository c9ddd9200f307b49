//! One walk over the source tree: path nodes, operations, operationIds and the mock topology.
//!
//! The tree in `apidata.js` is already hierarchical (`children`), so direct children come for free
//! and every relationship below is computed from an index of paths in O(P): no pairwise path
//! comparison.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, bail};
use route_metadata::{
    API_PREFIX, Method, Operation, PathKind, PathNode, RouteMetadata, Schema, SchemaType,
};
use serde_json::Value;

use super::naming;
use super::normalize::normalize;
use super::source::LoadedSchema;

/// Operations that start a worker task although their return schema does not say so.
///
/// The default rule ([`is_worker`]) covers every write whose return is an undocumented string or
/// whose return description mentions a task or UPID; this list is for the rest.
pub const WORKER_OVERRIDES: &[(&str, &str)] = &[];

/// Writes that return an undocumented string which is *not* a UPID.
pub const NOT_WORKERS: &[(&str, &str)] = &[
    // Returns the lock token (pve-network `PVE::API2::Network::SDN`, `lock_sdn_config`).
    ("POST", "/cluster/sdn/lock"),
    // Returns the monitor command's output (qemu-server `PVE::API2::Qemu`, `monitor`).
    ("POST", "/nodes/{node}/qemu/{vmid}/monitor"),
];

/// Operation keys of the source that have a field in [`Operation`].
const OPERATION_KEYS: &[&str] = &[
    "allowtoken",
    "description",
    "method",
    "name",
    "parameters",
    "permissions",
    "protected",
    "proxyto",
    "returns",
];

/// The metadata of one tag, before the OpenAPI hash is known.
pub fn build(schema: &LoadedSchema) -> anyhow::Result<RouteMetadata> {
    let mut raw_nodes: Vec<(&serde_json::Map<String, Value>, Vec<String>)> = Vec::new();
    let mut stack: Vec<&Value> = schema.tree.iter().rev().collect();
    while let Some(node) = stack.pop() {
        let Some(object) = node.as_object() else {
            bail!("a path node is not an object: {node}");
        };
        let path = object
            .get("path")
            .and_then(Value::as_str)
            .context("a path node has no `path`")?;
        let children = match object.get("children") {
            None => Vec::new(),
            Some(Value::Array(children)) => {
                let mut paths = Vec::with_capacity(children.len());
                for child in children {
                    let child_path = child
                        .get("path")
                        .and_then(Value::as_str)
                        .with_context(|| format!("{path}: a child has no `path`"))?;
                    if !child_path.starts_with(path) {
                        bail!("{path}: child {child_path} is not below its parent");
                    }
                    paths.push(child_path.to_owned());
                }
                stack.extend(children.iter().rev());
                paths
            }
            Some(_) => bail!("{path}: `children` is not an array"),
        };
        raw_nodes.push((object, children));
    }

    let mut seen = BTreeSet::new();
    let mut paths = Vec::with_capacity(raw_nodes.len());
    let mut operations = Vec::new();
    for (object, children) in &raw_nodes {
        let path = object
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !seen.insert(path) {
            bail!("{path}: the path appears twice in the schema tree");
        }
        let node_operations = node_operations(path, object)?;
        let mut methods: Vec<Method> = node_operations.iter().map(|op| op.method).collect();
        methods.sort();
        paths.push(PathNode {
            path: path.to_owned(),
            mounted: format!("{API_PREFIX}{path}"),
            group: group_of(path),
            path_params: path_params(path),
            kind: PathKind::Singleton,
            related: None,
            id_param: None,
            children: children.clone(),
            methods,
        });
        operations.extend(node_operations);
    }
    paths.sort_by(|a, b| a.path.cmp(&b.path));
    operations.sort_by(|a, b| (a.path.as_str(), a.method).cmp(&(b.path.as_str(), b.method)));
    classify(&mut paths);

    let kinds: HashMap<&str, (PathKind, Option<&str>, Option<&str>)> = paths
        .iter()
        .map(|node| {
            (
                node.path.as_str(),
                (node.kind, node.related.as_deref(), node.id_param.as_deref()),
            )
        })
        .collect();
    for operation in &mut operations {
        operation.creates = match kinds.get(operation.path.as_str()) {
            Some((PathKind::Collection, Some(_), Some(id_param)))
                if operation.method == Method::Post
                    && operation.parameters.contains_key(*id_param) =>
            {
                Some(operation.path.clone())
            }
            _ => None,
        };
    }

    let mut ids: BTreeMap<&str, (&str, Method)> = BTreeMap::new();
    for operation in &operations {
        if let Some((path, method)) =
            ids.insert(&operation.operation_id, (&operation.path, operation.method))
        {
            bail!(
                "operationId {} is derived for both {} {} and {} {}: extend the naming rule in \
                 xtask/src/codegen/naming.rs (operation_id) instead of renaming one",
                operation.operation_id,
                method.as_str(),
                path,
                operation.method.as_str(),
                operation.path
            );
        }
    }

    let path_count = paths.iter().filter(|node| !node.methods.is_empty()).count();
    let operation_count = operations.len();
    let entry = &schema.entry;
    if path_count != entry.paths || operation_count != entry.operations {
        bail!(
            "tag {}: the schema has {path_count} paths and {operation_count} operations, but \
             schemas/pve/index.json records {} and {}",
            entry.tag,
            entry.paths,
            entry.operations
        );
    }
    Ok(RouteMetadata {
        generated_by: super::STAMP.to_owned(),
        tag: entry.tag.clone(),
        schema_sha256: schema.sha256.clone(),
        openapi_sha256: String::new(),
        release: entry.source.release.clone(),
        path_count,
        operation_count,
        paths,
        operations,
    })
}

fn node_operations(
    path: &str,
    object: &serde_json::Map<String, Value>,
) -> anyhow::Result<Vec<Operation>> {
    let Some(info) = object.get("info") else {
        return Ok(Vec::new());
    };
    let Some(info) = info.as_object() else {
        bail!("{path}: `info` is not an object");
    };
    let mut operations = Vec::with_capacity(info.len());
    for (method_name, definition) in info {
        let at = format!("{path} {method_name}");
        let method =
            Method::parse(method_name).with_context(|| format!("{at}: unknown HTTP method"))?;
        let definition = definition
            .as_object()
            .with_context(|| format!("{at}: the operation is not an object"))?;
        let name = definition
            .get("name")
            .and_then(Value::as_str)
            .with_context(|| format!("{at}: the operation has no `name`"))?;
        let parameters_schema = match definition.get("parameters") {
            Some(parameters) => normalize(parameters, &format!("{at} parameters"))?,
            None => Schema {
                ty: Some(SchemaType::Object),
                ..Schema::default()
            },
        };
        let returns = match definition.get("returns") {
            Some(returns) => normalize(returns, &format!("{at} returns"))?,
            None => Schema::default(),
        };
        let path_params = path_params(path);
        let parameters = parameters_schema.properties.clone().unwrap_or_default();
        for param in &path_params {
            if !parameters.contains_key(param) {
                bail!("{at}: path parameter `{param}` is not among the parameters");
            }
        }
        let operation_id = naming::operation_id(path, name);
        let has_request = parameters.keys().any(|key| !path_params.contains(key));
        let request_type = has_request.then(|| naming::params_type(&operation_id));
        let response_type = naming::response_type(&operation_id);
        let flags = |key: &str| {
            definition
                .get(key)
                .map(|v| v.as_i64() == Some(1) || v == &Value::Bool(true))
        };
        let returns_is_worker = is_worker(method, path, &returns);
        operations.push(Operation {
            path: path.to_owned(),
            mounted: format!("{API_PREFIX}{path}"),
            method,
            operation_id,
            name: name.to_owned(),
            group: group_of(path),
            path_params,
            parameters,
            additional_parameters: parameters_schema.additional_properties,
            returns,
            request_type,
            response_type,
            worker_task: returns_is_worker,
            creates: None,
            protected: flags("protected").unwrap_or(false),
            allowtoken: flags("allowtoken").unwrap_or(true),
            proxyto: definition
                .get("proxyto")
                .and_then(Value::as_str)
                .map(str::to_owned),
            permissions: definition.get("permissions").cloned(),
            description: definition
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            extensions: definition
                .iter()
                .filter(|(key, _)| !OPERATION_KEYS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        });
    }
    Ok(operations)
}

/// Whether an operation starts a worker task and returns its UPID.
///
/// A write (not `GET`) whose return is a string and either has no description (Proxmox's
/// `fork_worker` handlers declare `returns => { type => 'string' }`) or a description that
/// mentions a task or UPID; adjusted by [`WORKER_OVERRIDES`] and [`NOT_WORKERS`].
pub fn is_worker(method: Method, path: &str, returns: &Schema) -> bool {
    let key = (method.as_str(), path);
    if WORKER_OVERRIDES.contains(&key) {
        return true;
    }
    if NOT_WORKERS.contains(&key) || method == Method::Get || returns.kind() != SchemaType::String {
        return false;
    }
    match returns.description.as_deref() {
        None => true,
        Some(description) => {
            let lower = description.to_ascii_lowercase();
            lower.contains("upid") || lower.contains("task id") || lower.contains("task-upid")
        }
    }
}

fn group_of(path: &str) -> String {
    path.split('/')
        .find(|segment| !segment.is_empty())
        .unwrap_or_default()
        .to_owned()
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// Sets `kind`, `related` and `id_param` from the direct children, via a path index.
fn classify(paths: &mut [PathNode]) {
    let index: HashMap<String, usize> = paths
        .iter()
        .enumerate()
        .map(|(position, node)| (node.path.clone(), position))
        .collect();
    let mut updates: Vec<(usize, PathKind, Option<String>, Option<String>)> = Vec::new();
    for (position, node) in paths.iter().enumerate() {
        let templated_child = node.children.iter().find(|child| {
            child
                .rsplit('/')
                .next()
                .is_some_and(|last| last.starts_with('{'))
        });
        if let Some(child) = templated_child {
            let param = child
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .trim_matches(|c| c == '{' || c == '}');
            updates.push((
                position,
                PathKind::Collection,
                Some(child.clone()),
                Some(param.to_owned()),
            ));
        }
        let last = node.path.rsplit('/').next().unwrap_or_default();
        if let Some(param) = last.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            // An item that is itself a collection (`/cluster/firewall/ipset/{name}` with `{cidr}`
            // members) stays a collection; its parent link is implied by the path.
            let parent = node.path[..node.path.len() - last.len() - 1].to_owned();
            if index.contains_key(&parent) && templated_child.is_none() {
                updates.push((
                    position,
                    PathKind::Item,
                    Some(parent),
                    Some(param.to_owned()),
                ));
            }
        } else if templated_child.is_none()
            && node.children.is_empty()
            && !node.methods.is_empty()
            && !node.methods.contains(&Method::Get)
        {
            updates.push((position, PathKind::Action, None, None));
        }
    }
    for (position, kind, related, id_param) in updates {
        let node = &mut paths[position];
        node.kind = kind;
        node.related = related;
        node.id_param = id_param;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::source::{IndexEntry, LoadedSchema, Source};
    use super::*;

    fn loaded(tree: Value, paths: usize, operations: usize) -> LoadedSchema {
        LoadedSchema {
            entry: IndexEntry {
                tag: "test".to_owned(),
                file: "test/apidata.js".to_owned(),
                sha256: String::new(),
                paths,
                operations,
                source: Source {
                    release: "0.0.0".to_owned(),
                },
                format: Default::default(),
                restore_from: None,
            },
            sha256: String::new(),
            tree: tree.as_array().cloned().unwrap_or_default(),
            restored: None,
        }
    }

    fn get(name: &str) -> Value {
        json!({"GET": {"name": name, "method": "GET", "parameters": {"additionalProperties": 0},
                       "returns": {"type": "array", "items": {"type": "object"}}}})
    }

    #[test]
    fn topology_comes_from_the_tree() {
        let tree = json!([{
            "path": "/nodes", "text": "nodes", "info": get("index"),
            "children": [{
                "path": "/nodes/{node}", "text": "{node}",
                "info": {"GET": {"name": "index", "method": "GET",
                    "parameters": {"properties": {"node": {"type": "string"}}},
                    "returns": {"type": "array"}}},
                "children": [{
                    "path": "/nodes/{node}/wakeonlan", "text": "wakeonlan",
                    "info": {"POST": {"name": "wakeonlan", "method": "POST",
                        "parameters": {"properties": {"node": {"type": "string"}}},
                        "returns": {"type": "string"}}}
                }]
            }]
        }]);
        let metadata = build(&loaded(tree, 3, 3)).expect("builds");
        let nodes = metadata.path("/nodes").expect("collection");
        assert_eq!(nodes.kind, PathKind::Collection);
        assert_eq!(nodes.id_param.as_deref(), Some("node"));
        let node = metadata.path("/nodes/{node}").expect("item");
        assert_eq!(node.kind, PathKind::Item);
        assert_eq!(node.related.as_deref(), Some("/nodes"));
        assert_eq!(node.children, vec!["/nodes/{node}/wakeonlan".to_owned()]);
        let action = metadata.path("/nodes/{node}/wakeonlan").expect("action");
        assert_eq!(action.kind, PathKind::Action);
        assert!(metadata.operations.iter().any(|op| op.worker_task));
    }

    #[test]
    fn duplicate_paths_and_count_mismatches_are_errors() {
        let tree = json!([
            {"path": "/version", "text": "version", "info": get("version")},
            {"path": "/version", "text": "version", "info": get("version")}
        ]);
        let error = build(&loaded(tree, 1, 1)).expect_err("duplicate");
        assert!(
            error
                .to_string()
                .contains("/version: the path appears twice"),
            "{error}"
        );
        let tree = json!([{"path": "/version", "text": "version", "info": get("version")}]);
        let error = build(&loaded(tree, 2, 1)).expect_err("count mismatch");
        assert!(error.to_string().contains("index.json"), "{error}");
    }

    #[test]
    fn workers_follow_the_return_schema_and_the_lists() {
        let bare = Schema {
            ty: Some(SchemaType::String),
            ..Schema::default()
        };
        assert!(is_worker(Method::Post, "/nodes/{node}/qemu", &bare));
        assert!(!is_worker(Method::Get, "/nodes/{node}/report", &bare));
        assert!(!is_worker(Method::Post, "/cluster/sdn/lock", &bare));
        let described = Schema {
            description: Some("the task ID.".to_owned()),
            ..bare.clone()
        };
        assert!(is_worker(
            Method::Post,
            "/nodes/{node}/qemu/{vmid}/migrate",
            &described
        ));
        let other = Schema {
            description: Some("Redirection URL.".to_owned()),
            ..bare
        };
        assert!(!is_worker(Method::Post, "/access/openid/auth-url", &other));
    }
}
