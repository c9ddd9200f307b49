//! The run-time contract between `cargo xtask codegen` and its consumers.
//!
//! `cargo xtask codegen` normalises Proxmox's `apidata.js` into these types and writes them as
//! `generated/<tag>/route_metadata.json`. The mock server embeds that file and deserialises it at
//! start-up (no OpenAPI walk), and tests use it to enumerate every operation of a tag.
//!
//! Layout:
//! - [`RouteMetadata`]: one schema tag: every path node (with its mock topology) and every operation.
//! - [`Operation`]: one `(path, method)` with its parameters, return schema and worker-task flag.
//! - [`Schema`]: Proxmox's JSON-schema dialect after normalisation. Every value has its proper JSON
//!   type (no `"1"` for a minimum, no `0` for a boolean default), patterns are translated from Perl
//!   to Rust `regex` syntax, and what could not be kept is recorded in [`Schema::dropped`].
//!
//! This crate depends on serde only, so that the xtask which *writes* the metadata never depends on
//! code it generates.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Prefix under which Proxmox mounts the JSON API.
pub const API_PREFIX: &str = "/api2/json";

/// Everything the mock server and tests need about one schema tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteMetadata {
    /// Schema tag, e.g. `9.1`.
    pub tag: String,
    /// SHA-256 (hex) of the `apidata.js` this was generated from.
    pub schema_sha256: String,
    /// SHA-256 (hex) of the `openapi.json` generated in the same run.
    pub openapi_sha256: String,
    /// Release string the mock reports from `/version` for this tag (e.g. `9.1.3`).
    pub release: String,
    /// Number of paths that carry at least one operation.
    pub path_count: usize,
    /// Number of operations.
    pub operation_count: usize,
    /// Every path node of the API tree, sorted by path.
    pub paths: Vec<PathNode>,
    /// Every operation, sorted by path then method.
    pub operations: Vec<Operation>,
}

impl RouteMetadata {
    /// Parses the JSON document written by `cargo xtask codegen`.
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Looks up a path node by its templated path (e.g. `/nodes/{node}/qemu`).
    pub fn path(&self, path: &str) -> Option<&PathNode> {
        self.paths
            .binary_search_by(|node| node.path.as_str().cmp(path))
            .ok()
            .map(|index| &self.paths[index])
    }
}

/// HTTP methods used by the Proxmox API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
}

impl Method {
    /// The method's name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// Parses an upper-case method name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    /// Whether parameters travel in the body (`POST`/`PUT`) rather than the query.
    pub fn has_body(self) -> bool {
        matches!(self, Method::Post | Method::Put)
    }
}

/// What a path is, for the mock's generic state engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// A list of members addressed by a templated child (`/nodes/{node}/qemu`).
    Collection,
    /// One member of a collection (`/nodes/{node}/qemu/{vmid}`).
    Item,
    /// A leaf that only accepts writes and does something (`.../status/start`).
    Action,
    /// Anything else: a single object or a directory index (`/version`, `.../config`).
    Singleton,
}

/// One node of the API tree with its mock topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathNode {
    /// Templated path without the mount prefix, e.g. `/nodes/{node}/qemu/{vmid}`.
    pub path: String,
    /// Path as mounted, e.g. `/api2/json/nodes/{node}/qemu/{vmid}`.
    pub mounted: String,
    /// First path segment (`access`, `cluster`, `nodes`, `pools`, `storage`, `version`).
    pub group: String,
    /// Names of the `{x}` segments, in order.
    pub path_params: Vec<String>,
    /// Topology class.
    pub kind: PathKind,
    /// For a collection: the templated member path. For an item: the collection path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<String>,
    /// For a collection or an item: the parameter naming a member (e.g. `vmid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_param: Option<String>,
    /// Templated paths of the direct children in the tree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// Methods answered at this path, sorted.
    pub methods: Vec<Method>,
}

/// One `(path, method)` operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Templated path without the mount prefix.
    pub path: String,
    /// Path as mounted under [`API_PREFIX`].
    pub mounted: String,
    /// HTTP method.
    pub method: Method,
    /// Unique, stable operationId (also used in `openapi.json`).
    pub operation_id: String,
    /// Proxmox's own handler name (`name` in the schema).
    pub name: String,
    /// First path segment.
    pub group: String,
    /// Names of the `{x}` segments, in order.
    pub path_params: Vec<String>,
    /// Parameters by name (path parameters included). Families keep their `net[n]` name and carry
    /// [`Schema::family`].
    pub parameters: BTreeMap<String, Schema>,
    /// Whether parameters not listed are accepted (`additionalProperties` not 0).
    pub additional_parameters: bool,
    /// Return schema of `data` in the `{"data": ...}` envelope.
    pub returns: Schema,
    /// Name of the request type in `shared-types` (when the operation takes parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    /// Name of the response type in `shared-types`.
    pub response_type: String,
    /// Whether the operation starts a worker task and returns its UPID.
    pub worker_task: bool,
    /// When the operation creates a member of a collection: the collection path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates: Option<String>,
    /// Proxmox's `protected` flag (runs in the privileged daemon).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
    /// Proxmox's `allowtoken` flag.
    pub allowtoken: bool,
    /// Proxmox's `proxyto` (parameter naming the node the call is proxied to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxyto: Option<String>,
    /// Proxmox's `permissions` object, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<serde_json::Value>,
}

impl Operation {
    /// Finds the schema for a concrete parameter name, resolving indexed families (`net3` ->
    /// `net[n]`) within their bounds.
    pub fn parameter(&self, name: &str) -> Option<&Schema> {
        if let Some(schema) = self.parameters.get(name) {
            return Some(schema);
        }
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 || digits == name.len() {
            return None;
        }
        let (prefix, index) = name.split_at(name.len() - digits);
        if index.len() > 1 && index.starts_with('0') {
            return None;
        }
        let index: u32 = index.parse().ok()?;
        let schema = self.parameters.get(&format!("{prefix}[n]"))?;
        match &schema.family {
            Some(family) if index < family.count => Some(schema),
            _ => None,
        }
    }
}

/// JSON types of Proxmox's schema dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SchemaType {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// A number.
    Number,
    /// A boolean (Proxmox accepts 0/1 as well).
    Boolean,
    /// An object.
    Object,
    /// An array.
    Array,
    /// Always `null`.
    Null,
    /// Anything (the source gave no type).
    Any,
}

/// Proxmox's JSON-schema dialect, normalised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The JSON type (`None` only in the middle of normalisation; written as `any`).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<SchemaType>,
    /// Whether the value may be left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Short description (first paragraph), for error messages and docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A named Proxmox format (`pve-vmid`, `pve-node`, `mac-addr`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// A property-string format: the keys of `key=value,...` with their schemas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_string: Option<BTreeMap<String, Schema>>,
    /// Allowed values, as their JSON types (strings, or numbers for integer enums).
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<serde_json::Value>>,
    /// Inclusive minimum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// Inclusive maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// Minimum string length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// Maximum string length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// Pattern in Rust `regex` syntax, unanchored (Proxmox anchors it as `^(?:...)$`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Default value, with its proper JSON type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Item schema of an array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<Schema>>,
    /// Properties of an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<BTreeMap<String, Schema>>,
    /// Whether an object accepts properties not listed (Proxmox's default: yes).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub additional_properties: bool,
    /// Proxmox's `typetext` (how the value is shown in docs, e.g. `<integer> (100 - 999999999)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typetext: Option<String>,
    /// In a property string: the key that may be given without `key=` (e.g. `model` in `net0`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_key: bool,
    /// In a property string: this key is another name for the named key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// In a property string: `virtio=MAC` style keys: the key itself is the value of this key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_alias: Option<String>,
    /// For `foo[n]` parameters: the family's prefix and size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Alternatives (`oneOf`), selected by [`Schema::type_property`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Schema>>,
    /// The property whose value selects one of [`Schema::one_of`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub type_property: Option<String>,
    /// Values of the type property for which this alternative applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_types: Option<Vec<String>>,
    /// Things in the source that could not be kept, with the reason (e.g. a prose default).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dropped: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

impl Schema {
    /// The effective type (`Any` when the source gave none).
    pub fn kind(&self) -> SchemaType {
        self.ty.unwrap_or(SchemaType::Any)
    }
}

/// An indexed parameter family such as `net[n]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    /// Name without the index (`net`).
    pub prefix: String,
    /// Number of members: valid names are `prefix0` ..= `prefix{count-1}`.
    pub count: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_with_family() -> Operation {
        let mut parameters = BTreeMap::new();
        parameters.insert(
            "net[n]".to_owned(),
            Schema {
                ty: Some(SchemaType::String),
                family: Some(Family {
                    prefix: "net".to_owned(),
                    count: 32,
                }),
                ..Schema::default()
            },
        );
        Operation {
            path: "/nodes/{node}/qemu".to_owned(),
            mounted: "/api2/json/nodes/{node}/qemu".to_owned(),
            method: Method::Post,
            operation_id: "nodes_qemu_create_vm".to_owned(),
            name: "create_vm".to_owned(),
            group: "nodes".to_owned(),
            path_params: vec!["node".to_owned()],
            parameters,
            additional_parameters: false,
            returns: Schema::default(),
            request_type: None,
            response_type: "NodesQemuCreateVmResponse".to_owned(),
            worker_task: true,
            creates: None,
            protected: false,
            allowtoken: true,
            proxyto: Some("node".to_owned()),
            permissions: None,
        }
    }

    #[test]
    fn family_members_resolve_within_bounds() {
        let op = op_with_family();
        assert!(op.parameter("net0").is_some());
        assert!(op.parameter("net31").is_some());
        assert!(op.parameter("net32").is_none());
        assert!(op.parameter("net01").is_none());
        assert!(op.parameter("net").is_none());
        assert!(op.parameter("scsi0").is_none());
    }

    #[test]
    fn additional_properties_defaults_to_true() {
        let schema: Schema = serde_json::from_str(r#"{"type":"object"}"#).expect("valid");
        assert!(schema.additional_properties);
        assert_eq!(schema.kind(), SchemaType::Object);
    }
}
