//! A small hand-made API (a few qemu, lxc, task and access paths) for unit tests, shaped like
//! the output of `cargo xtask codegen`.

#![allow(clippy::unwrap_used)]

mod sweep;

use std::sync::Arc;

use route_metadata::{Method, Operation, PathKind, PathNode, RouteMetadata, Schema};
use serde_json::{Value, json};

use crate::api::Api;

fn schema(value: Value) -> Schema {
    serde_json::from_value(value).unwrap()
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

struct OpSpec {
    path: &'static str,
    method: Method,
    name: &'static str,
    params: Value,
    returns: Value,
    worker: bool,
    creates: Option<&'static str>,
}

fn op(spec: OpSpec) -> Operation {
    let mut parameters = std::collections::BTreeMap::new();
    for name in path_params(spec.path) {
        let param = match name.as_str() {
            "node" => json!({"type": "string", "format": "pve-node"}),
            "vmid" => {
                json!({"type": "integer", "format": "pve-vmid", "minimum": 100, "maximum": 999_999_999})
            }
            _ => json!({"type": "string"}),
        };
        parameters.insert(name, schema(param));
    }
    if let Value::Object(map) = spec.params {
        for (key, value) in map {
            parameters.insert(key, schema(value));
        }
    }
    // Built through serde so fields added to the contract with defaults do not break this.
    serde_json::from_value(json!({
        "path": spec.path,
        "mounted": format!("/api2/json{}", spec.path),
        "method": spec.method.as_str(),
        "operation_id": format!("{}_{}", spec.name, spec.method.as_str()),
        "name": spec.name,
        "group": spec.path.split('/').nth(1).unwrap_or_default(),
        "path_params": path_params(spec.path),
        "parameters": serde_json::to_value(parameters).unwrap(),
        "additional_parameters": false,
        "returns": serde_json::to_value(schema(spec.returns)).unwrap(),
        "response_type": "X",
        "worker_task": spec.worker,
        "creates": spec.creates,
        "allowtoken": true,
    }))
    .unwrap()
}

fn guest_config_params() -> Value {
    json!({
        "cores": {"type": "integer", "minimum": 1, "optional": true, "default": 1},
        "memory": {"type": "integer", "minimum": 16, "optional": true},
        "name": {"type": "string", "optional": true, "pattern": "[a-zA-Z0-9\\-.]+"},
        "onboot": {"type": "boolean", "optional": true},
        "ostype": {"type": "string", "optional": true, "enum": ["l26", "win11"]},
        "net[n]": {
            "type": "string",
            "optional": true,
            "family": {"prefix": "net", "count": 4},
            "property_string": {
                "model": {"type": "string", "enum": ["e1000", "virtio"], "default_key": true},
                "macaddr": {"type": "string", "format": "mac-addr", "optional": true},
                "virtio": {"alias": "macaddr", "key_alias": "model"},
                "e1000": {"alias": "macaddr", "key_alias": "model"},
                "bridge": {"type": "string", "format": "pve-bridge-id", "optional": true}
            }
        }
    })
}

fn guest_ops(kind: &'static str, ops: &mut Vec<Operation>) {
    let base: &'static str = if kind == "qemu" {
        "/nodes/{node}/qemu"
    } else {
        "/nodes/{node}/lxc"
    };
    let item: &'static str = Box::leak(format!("{base}/{{vmid}}").into_boxed_str());
    let config: &'static str = Box::leak(format!("{item}/config").into_boxed_str());
    let current: &'static str = Box::leak(format!("{item}/status/current").into_boxed_str());
    let start: &'static str = Box::leak(format!("{item}/status/start").into_boxed_str());
    let stop: &'static str = Box::leak(format!("{item}/status/stop").into_boxed_str());
    let mut create_params = guest_config_params();
    create_params["vmid"] = json!({"type": "integer", "format": "pve-vmid", "minimum": 100});
    ops.push(op(OpSpec {
        path: base,
        method: Method::Get,
        name: "vmlist",
        params: json!({}),
        returns: json!({"type": "array", "items": {"type": "object", "properties": {
            "vmid": {"type": "integer"},
            "status": {"type": "string", "enum": ["stopped", "running"]},
            "name": {"type": "string", "optional": true},
            "cpus": {"type": "number", "optional": true},
            "maxmem": {"type": "integer", "optional": true},
            "uptime": {"type": "integer", "optional": true}
        }}}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: base,
        method: Method::Post,
        name: "create_vm",
        params: create_params,
        returns: json!({"type": "string"}),
        worker: true,
        creates: Some(base),
    }));
    ops.push(op(OpSpec {
        path: item,
        method: Method::Get,
        name: "vmdiridx",
        params: json!({}),
        returns: json!({"type": "array", "items": {"type": "object", "properties": {"subdir": {"type": "string"}}}}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: item,
        method: Method::Delete,
        name: "destroy_vm",
        params: json!({"purge": {"type": "boolean", "optional": true}}),
        returns: json!({"type": "string"}),
        worker: true,
        creates: None,
    }));
    let mut config_returns = json!({"type": "object", "properties": guest_config_params()});
    config_returns["properties"]["digest"] = json!({"type": "string"});
    ops.push(op(OpSpec {
        path: config,
        method: Method::Get,
        name: "vm_config",
        params: json!({}),
        returns: config_returns,
        worker: false,
        creates: None,
    }));
    let mut update = guest_config_params();
    update["delete"] = json!({"type": "string", "format": "pve-configid-list", "optional": true});
    update["digest"] = json!({"type": "string", "optional": true, "max_length": 64});
    ops.push(op(OpSpec {
        path: config,
        method: Method::Put,
        name: "update_vm",
        params: update.clone(),
        returns: json!({"type": "null"}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: config,
        method: Method::Post,
        name: "update_vm_async",
        params: update,
        returns: json!({"type": "string", "optional": true}),
        worker: true,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: current,
        method: Method::Get,
        name: "vm_status",
        params: json!({}),
        returns: json!({"type": "object", "properties": {
            "status": {"type": "string", "enum": ["stopped", "running"]},
            "vmid": {"type": "integer"},
            "name": {"type": "string", "optional": true},
            "uptime": {"type": "integer", "optional": true},
            "cpu": {"type": "number", "optional": true},
            "ha": {"type": "object"}
        }}),
        worker: false,
        creates: None,
    }));
    for (path, name) in [(start, "vm_start"), (stop, "vm_stop")] {
        ops.push(op(OpSpec {
            path,
            method: Method::Post,
            name,
            params: json!({}),
            returns: json!({"type": "string"}),
            worker: true,
            creates: None,
        }));
    }
}

fn build() -> RouteMetadata {
    let mut ops = Vec::new();
    ops.push(op(OpSpec {
        path: "/version",
        method: Method::Get,
        name: "version",
        params: json!({}),
        returns: json!({"type": "object", "properties": {
            "release": {"type": "string"}, "version": {"type": "string"}, "repoid": {"type": "string"}
        }}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/nodes",
        method: Method::Get,
        name: "index",
        params: json!({}),
        returns: json!({"type": "array", "items": {"type": "object", "properties": {
            "node": {"type": "string"},
            "status": {"type": "string", "enum": ["unknown", "online", "offline"]},
            "cpu": {"type": "number", "optional": true},
            "maxmem": {"type": "integer", "optional": true},
            "uptime": {"type": "integer", "optional": true}
        }}}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/nodes/{node}",
        method: Method::Get,
        name: "index",
        params: json!({}),
        returns: json!({"type": "array", "items": {"type": "object", "properties": {}}}),
        worker: false,
        creates: None,
    }));
    guest_ops("qemu", &mut ops);
    guest_ops("lxc", &mut ops);
    ops.push(op(OpSpec {
        path: "/nodes/{node}/tasks",
        method: Method::Get,
        name: "node_tasks",
        params: json!({"limit": {"type": "integer", "optional": true, "minimum": 0}}),
        returns: json!({"type": "array", "items": {"type": "object", "properties": {
            "upid": {"type": "string"}, "node": {"type": "string"}, "pid": {"type": "integer"},
            "pstart": {"type": "integer"}, "starttime": {"type": "integer"}, "type": {"type": "string"},
            "id": {"type": "string", "optional": true}, "user": {"type": "string"},
            "status": {"type": "string", "optional": true}, "endtime": {"type": "integer", "optional": true}
        }}}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/nodes/{node}/tasks/{upid}/status",
        method: Method::Get,
        name: "read_task_status",
        params: json!({}),
        returns: json!({"type": "object", "properties": {
            "exitstatus": {"type": "string", "optional": true}, "id": {"type": "string"},
            "node": {"type": "string"}, "pid": {"type": "integer"}, "pstart": {"type": "integer"},
            "starttime": {"type": "integer"}, "status": {"type": "string", "enum": ["running", "stopped"]},
            "type": {"type": "string"}, "upid": {"type": "string"}, "user": {"type": "string"}
        }}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/nodes/{node}/tasks/{upid}/log",
        method: Method::Get,
        name: "read_task_log",
        params: json!({"start": {"type": "integer", "optional": true, "minimum": 0}}),
        returns: json!({"type": "array", "items": {"type": "object", "properties": {
            "n": {"type": "integer"}, "t": {"type": "string"}
        }}}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/access/ticket",
        method: Method::Post,
        name: "create_ticket",
        params: json!({
            "username": {"type": "string", "max_length": 64},
            "password": {"type": "string"},
            "realm": {"type": "string", "optional": true},
            "new-format": {"type": "boolean", "optional": true}
        }),
        returns: json!({"type": "object", "properties": {
            "username": {"type": "string"}, "ticket": {"type": "string", "optional": true},
            "CSRFPreventionToken": {"type": "string", "optional": true},
            "clustername": {"type": "string", "optional": true}
        }}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/access/users",
        method: Method::Get,
        name: "index",
        params: json!({}),
        returns: json!({"type": "array", "items": {"type": "object", "properties": {
            "userid": {"type": "string"}, "comment": {"type": "string", "optional": true}
        }}}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/access/users",
        method: Method::Post,
        name: "create_user",
        params: json!({
            "userid": {"type": "string"},
            "password": {"type": "string", "optional": true},
            "comment": {"type": "string", "optional": true}
        }),
        returns: json!({"type": "null"}),
        worker: false,
        creates: Some("/access/users"),
    }));
    ops.push(op(OpSpec {
        path: "/access/users/{userid}",
        method: Method::Get,
        name: "read_user",
        params: json!({}),
        returns: json!({"type": "object", "properties": {"comment": {"type": "string", "optional": true}}}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/access/users/{userid}/token",
        method: Method::Get,
        name: "token_index",
        params: json!({}),
        returns: json!({"type": "array", "items": {"type": "object", "properties": {
            "tokenid": {"type": "string"}, "comment": {"type": "string", "optional": true}
        }}}),
        worker: false,
        creates: None,
    }));
    ops.push(op(OpSpec {
        path: "/access/users/{userid}/token/{tokenid}",
        method: Method::Post,
        name: "generate_token",
        params: json!({
            "comment": {"type": "string", "optional": true},
            "privsep": {"type": "boolean", "optional": true}
        }),
        returns: json!({"type": "object", "additional_properties": false, "properties": {
            "full-tokenid": {"type": "string"},
            "info": {"type": "object", "properties": {"comment": {"type": "string", "optional": true}}},
            "value": {"type": "string"}
        }}),
        worker: false,
        creates: Some("/access/users/{userid}/token"),
    }));
    ops.push(op(OpSpec {
        path: "/access/users/{userid}/token/{tokenid}",
        method: Method::Delete,
        name: "remove_token",
        params: json!({}),
        returns: json!({"type": "null"}),
        worker: false,
        creates: None,
    }));
    ops.sort_by(|a, b| (a.path.as_str(), a.method).cmp(&(b.path.as_str(), b.method)));

    let mut paths: Vec<PathNode> = Vec::new();
    for operation in &ops {
        if let Some(node) = paths.iter_mut().find(|n| n.path == operation.path) {
            node.methods.push(operation.method);
            continue;
        }
        let path = operation.path.clone();
        let (kind, related, id_param) = classify(&path);
        paths.push(PathNode {
            mounted: format!("/api2/json{path}"),
            group: operation.group.clone(),
            path_params: operation.path_params.clone(),
            kind,
            related,
            id_param,
            children: Vec::new(),
            methods: vec![operation.method],
            path,
        });
    }
    let all: Vec<String> = paths.iter().map(|n| n.path.clone()).collect();
    for node in &mut paths {
        node.children = all
            .iter()
            .filter(|p| crate::api::parent(p) == node.path && **p != node.path)
            .cloned()
            .collect();
    }
    paths.sort_by(|a, b| a.path.cmp(&b.path));
    serde_json::from_value(json!({
        "tag": "test",
        "schema_sha256": "0".repeat(64),
        "openapi_sha256": "0".repeat(64),
        "release": "9.1.1",
        "path_count": paths.len(),
        "operation_count": ops.len(),
        "paths": serde_json::to_value(&paths).unwrap(),
        "operations": serde_json::to_value(&ops).unwrap(),
    }))
    .unwrap()
}

fn classify(path: &str) -> (PathKind, Option<String>, Option<String>) {
    let items = [
        ("/nodes", "/nodes/{node}", "node"),
        ("/nodes/{node}/qemu", "/nodes/{node}/qemu/{vmid}", "vmid"),
        ("/nodes/{node}/lxc", "/nodes/{node}/lxc/{vmid}", "vmid"),
        ("/nodes/{node}/tasks", "/nodes/{node}/tasks/{upid}", "upid"),
        ("/access/users", "/access/users/{userid}", "userid"),
        (
            "/access/users/{userid}/token",
            "/access/users/{userid}/token/{tokenid}",
            "tokenid",
        ),
    ];
    for (collection, item, id) in items {
        if path == collection {
            return (
                PathKind::Collection,
                Some(item.to_owned()),
                Some(id.to_owned()),
            );
        }
        if path == item {
            return (
                PathKind::Item,
                Some(collection.to_owned()),
                Some(id.to_owned()),
            );
        }
    }
    if path.contains("/status/") && !path.ends_with("/current") && !path.ends_with("/status") {
        return (PathKind::Action, None, None);
    }
    (PathKind::Singleton, None, None)
}

/// The compiled small API.
pub(crate) fn small_api() -> Arc<Api> {
    Arc::new(Api::new(build(), None))
}

/// The small metadata, for builders that take metadata.
#[allow(dead_code)]
pub(crate) fn small_metadata() -> RouteMetadata {
    build()
}
