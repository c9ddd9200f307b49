//! Deterministic, plausible values for anything the state does not hold.
//!
//! Every value is derived from a hash of the concrete request path and the field name, so the
//! same request always yields the same reply. Values are chosen by field name first (`node`,
//! `vmid`, `mem`, `cpu`, `uptime`, `status`, `mac`...), then by named format, then by type, and
//! always respect the schema's enum, minimum/maximum, length and (when one of a few candidates
//! fits) pattern. Objects get their required properties plus the optional ones the generator
//! knows a plausible value for; property-string and indexed (`net[n]`) fields are left out.
//! Directory indexes (`[{"subdir": ...}]`) list the path's real children.

use std::collections::HashMap;
use std::sync::RwLock;

use route_metadata::{Schema, SchemaType};
use serde_json::{Map, Value, json};

use crate::api::Api;

/// What the generator knows about the request.
#[derive(Debug, Clone, Copy)]
pub struct GenContext<'a> {
    /// Concrete path (seed of every value).
    pub path: &'a str,
    /// Path parameters.
    pub params: &'a [(String, String)],
    /// Names of the path's children (for directory indexes).
    pub children: &'a [String],
    /// Release string for version fields.
    pub release: &'a str,
    /// Known node names.
    pub nodes: &'a [String],
    /// Only required properties (the reply shows a stored row, e.g. a guest config).
    pub minimal: bool,
}

impl GenContext<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        crate::api::path_param(self.params, name)
    }
}

/// FNV-1a over the inputs, finished with SplitMix64.
pub fn seed(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    mix(hash)
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fields that get a value even when optional.
const KNOWN_OPTIONAL: &[&str] = &[
    "name",
    "status",
    "uptime",
    "cpu",
    "cpus",
    "maxcpu",
    "mem",
    "maxmem",
    "disk",
    "maxdisk",
    "node",
    "vmid",
    "type",
    "id",
    "netin",
    "netout",
    "diskread",
    "diskwrite",
    "total",
    "used",
    "avail",
    "free",
    "active",
    "enabled",
    "content",
    "storage",
    "shared",
    "level",
    "release",
    "version",
    "repoid",
    "digest",
    "comment",
    "userid",
    "tokenid",
    "size",
    "format",
    "volid",
    "ctime",
    "starttime",
    "endtime",
    "pid",
    "pstart",
    "user",
    "upid",
    "exitstatus",
    "subdir",
    "swap",
    "maxswap",
    "ip",
    "online",
    "local",
    "nodeid",
    "quorate",
    "nodes",
    "iface",
    "method",
    "families",
    "address",
    "hwaddr",
    "macaddr",
    "state",
];

/// Generates a value for a schema of the API's operations (their return schemas and the
/// schemas within them; the value is memoised by the schema's address, so it must be one the
/// [`Api`] owns).
///
/// Values depend on nothing but the schema and the context, so each one is generated once and
/// then cloned from [`GenCache`].
pub fn generate(api: &Api, schema: &Schema, ctx: &GenContext<'_>) -> Value {
    api.generated
        .get_or_insert(schema, ctx, || generate_field(api, schema, ctx, "", 0))
}

/// Most values [`GenCache`] keeps; a full cache is emptied.
const GEN_CACHE_SIZE: usize = 16_384;

/// Generated values by schema and context (bounded).
#[derive(Debug, Default)]
pub struct GenCache {
    values: RwLock<HashMap<u64, (GenKey, Value)>>,
}

/// Everything a generated value depends on.
#[derive(Debug)]
struct GenKey {
    schema: usize,
    path: String,
    params: Vec<(String, String)>,
    children: Vec<String>,
    release: String,
    nodes: Vec<String>,
    minimal: bool,
}

impl GenKey {
    fn new(schema: &Schema, ctx: &GenContext<'_>) -> GenKey {
        GenKey {
            schema: std::ptr::from_ref(schema) as usize,
            path: ctx.path.to_owned(),
            params: ctx.params.to_vec(),
            children: ctx.children.to_vec(),
            release: ctx.release.to_owned(),
            nodes: ctx.nodes.to_vec(),
            minimal: ctx.minimal,
        }
    }

    fn matches(&self, schema: &Schema, ctx: &GenContext<'_>) -> bool {
        self.schema == std::ptr::from_ref(schema) as usize
            && self.minimal == ctx.minimal
            && self.path == ctx.path
            && self.params == ctx.params
            && self.children == ctx.children
            && self.release == ctx.release
            && self.nodes == ctx.nodes
    }
}

/// A hash of everything a generated value depends on (the schema's address and the context).
pub fn gen_key_hash(schema: &Schema, ctx: &GenContext<'_>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes.iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(&(std::ptr::from_ref(schema) as usize).to_le_bytes());
    feed(&[u8::from(ctx.minimal)]);
    feed(ctx.path.as_bytes());
    for (key, value) in ctx.params {
        feed(key.as_bytes());
        feed(value.as_bytes());
    }
    feed(&[0xfe]);
    for child in ctx.children {
        feed(child.as_bytes());
    }
    feed(&[0xfe]);
    for node in ctx.nodes {
        feed(node.as_bytes());
    }
    feed(ctx.release.as_bytes());
    mix(hash)
}

impl GenCache {
    fn get_or_insert(
        &self,
        schema: &Schema,
        ctx: &GenContext<'_>,
        make: impl FnOnce() -> Value,
    ) -> Value {
        let hash = gen_key_hash(schema, ctx);
        if let Some((key, value)) = self
            .values
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&hash)
            && key.matches(schema, ctx)
        {
            return value.clone();
        }
        let value = make();
        let mut values = self
            .values
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if values.len() >= GEN_CACHE_SIZE {
            values.clear();
        }
        values.insert(hash, (GenKey::new(schema, ctx), value.clone()));
        value
    }
}

fn generate_field(
    api: &Api,
    schema: &Schema,
    ctx: &GenContext<'_>,
    field: &str,
    depth: usize,
) -> Value {
    let rng = seed(&[ctx.path, field]);
    if let Some(alternatives) = &schema.one_of
        && let Some(first) = alternatives.first()
    {
        return generate_field(api, first, ctx, field, depth);
    }
    if let Some(values) = &schema.enum_values
        && !values.is_empty()
    {
        let preferred = ["running", "online", "ok", "OK", "active", "stopped"];
        if field == "status"
            && let Some(hit) = preferred
                .iter()
                .find_map(|p| values.iter().find(|v| v.as_str() == Some(p)))
        {
            return hit.clone();
        }
        return values[(rng % values.len() as u64) as usize].clone();
    }
    match schema.kind() {
        SchemaType::Null => Value::Null,
        SchemaType::Any => Value::Null,
        SchemaType::Boolean => json!(
            if matches!(field, "active" | "enabled" | "online" | "quorate") {
                1
            } else {
                (rng % 2) as u8
            }
        ),
        SchemaType::Integer => json!(integer(schema, ctx, field, rng)),
        SchemaType::Number => number(schema, field, rng),
        SchemaType::String => Value::String(string(api, schema, ctx, field, rng)),
        SchemaType::Array => array(api, schema, ctx, field, depth),
        SchemaType::Object => object(api, schema, ctx, field, depth),
    }
}

fn array(api: &Api, schema: &Schema, ctx: &GenContext<'_>, field: &str, depth: usize) -> Value {
    let Some(items) = schema.items.as_deref() else {
        return json!([]);
    };
    if depth > 3 {
        return json!([]);
    }
    let index_key = items.properties.as_ref().and_then(|props| {
        ["subdir", "name", "id"]
            .into_iter()
            .find(|key| props.contains_key(*key))
    });
    if depth == 0
        && let Some(key) = index_key
        && !ctx.children.is_empty()
    {
        return Value::Array(
            ctx.children
                .iter()
                .map(|child| {
                    let child_path = format!("{}/{child}", ctx.path);
                    let child_ctx = GenContext {
                        path: &child_path,
                        ..*ctx
                    };
                    let mut entry = generate_field(api, items, &child_ctx, "", depth + 1);
                    if let Value::Object(map) = &mut entry {
                        map.insert(key.to_owned(), Value::String(child.clone()));
                    }
                    entry
                })
                .collect(),
        );
    }
    let count = if depth == 0 { 2 } else { 1 };
    Value::Array(
        (0..count)
            .map(|index| {
                let item_path = format!("{}#{field}[{index}]", ctx.path);
                let item_ctx = GenContext {
                    path: &item_path,
                    ..*ctx
                };
                generate_field(api, items, &item_ctx, field, depth + 1)
            })
            .collect(),
    )
}

fn object(api: &Api, schema: &Schema, ctx: &GenContext<'_>, _field: &str, depth: usize) -> Value {
    let mut map = Map::new();
    let Some(properties) = &schema.properties else {
        return Value::Object(map);
    };
    for (key, property) in properties {
        if key.ends_with("[n]") || property.family.is_some() {
            continue;
        }
        let wanted = !property.optional || (!ctx.minimal && KNOWN_OPTIONAL.contains(&key.as_str()));
        if !wanted || depth > 4 {
            continue;
        }
        if property.property_string.is_some() && property.optional {
            continue;
        }
        let value = generate_field(api, property, ctx, key, depth + 1);
        if value.is_null() && property.kind() != SchemaType::Null {
            if property.optional {
                continue;
            }
            map.insert(key.clone(), empty_of(property));
            continue;
        }
        map.insert(key.clone(), value);
    }
    Value::Object(map)
}

fn empty_of(schema: &Schema) -> Value {
    match schema.kind() {
        SchemaType::Object => json!({}),
        SchemaType::Array => json!([]),
        SchemaType::String => json!(""),
        SchemaType::Integer | SchemaType::Number | SchemaType::Boolean => json!(0),
        _ => Value::Null,
    }
}

fn clamp_int(schema: &Schema, value: i64) -> i64 {
    let mut value = value;
    if let Some(max) = schema.maximum
        && (value as f64) > max
    {
        value = max.floor() as i64;
    }
    if let Some(min) = schema.minimum
        && (value as f64) < min
    {
        value = min.ceil() as i64;
    }
    value
}

const GIB: i64 = 1024 * 1024 * 1024;

fn integer(schema: &Schema, ctx: &GenContext<'_>, field: &str, rng: u64) -> i64 {
    let r = (rng >> 8) as i64;
    let value = match field {
        "vmid" => ctx
            .param("vmid")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100 + r % 900),
        "uptime" => 3600 + r % (30 * 86_400),
        "mem" | "memory" | "used" | "swap" | "memhost" => GIB + r % (8 * GIB),
        "maxmem" | "maxswap" => 8 * GIB + (r % 4) * 8 * GIB,
        "disk" | "diskread" | "diskwrite" | "netin" | "netout" => r % (64 * GIB),
        "maxdisk" | "total" | "size" => 32 * GIB * (1 + r % 8),
        "avail" | "free" => 16 * GIB + r % (64 * GIB),
        "cpus" | "maxcpu" | "cores" | "sockets" => 1 + r % 16,
        "pid" => 1000 + r % 60_000,
        "pstart" => 100_000 + r % 9_000_000,
        "starttime" | "ctime" | "mtime" | "time" | "endtime" => 1_735_689_600 + r % 31_536_000,
        "nodeid" => 1 + r % 4,
        "port" => 1024 + r % 60_000,
        "n" => 1 + r % 100,
        "priority" => r % 10,
        _ => match (schema.minimum, schema.maximum) {
            (Some(min), Some(max)) if max >= min => {
                min as i64 + r % ((max - min) as i64).clamp(1, 1000)
            }
            (Some(min), None) => min as i64 + r % 100,
            _ => r % 100,
        },
    };
    clamp_int(schema, value)
}

fn number(schema: &Schema, field: &str, rng: u64) -> Value {
    let fraction = (rng % 10_000) as f64 / 10_000.0;
    let mut value = match field {
        "cpu" | "wait" => (fraction * 0.5 * 1000.0).round() / 1000.0,
        "cpus" | "maxcpu" => (1 + rng % 16) as f64,
        _ => (fraction * 100.0 * 100.0).round() / 100.0,
    };
    if let Some(max) = schema.maximum
        && value > max
    {
        value = max;
    }
    if let Some(min) = schema.minimum
        && value < min
    {
        value = min;
    }
    serde_json::Number::from_f64(value).map_or(json!(0), Value::Number)
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "delta", "echo", "falcon", "granite", "harbor", "indigo",
];

fn mac(rng: u64) -> String {
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        (rng >> 16) & 0xff,
        (rng >> 24) & 0xff,
        (rng >> 32) & 0xff
    )
}

fn string(api: &Api, schema: &Schema, ctx: &GenContext<'_>, field: &str, rng: u64) -> String {
    let node = ctx
        .param("node")
        .map(str::to_owned)
        .or_else(|| ctx.nodes.first().cloned())
        .unwrap_or_else(|| "pve1".to_owned());
    let word = WORDS[(rng % WORDS.len() as u64) as usize];
    let base_format = schema.format.as_deref().map(|f| {
        f.strip_suffix("-list")
            .or_else(|| f.strip_suffix("-opt"))
            .unwrap_or(f)
    });
    let by_format = base_format.and_then(|format| match format {
        "pve-node" => Some(node.clone()),
        "pve-vmid" => Some(ctx.param("vmid").unwrap_or("100").to_owned()),
        "pve-storage-id" => Some(ctx.param("storage").unwrap_or("local").to_owned()),
        "mac-addr" => Some(mac(rng)),
        "ipv4" | "ip" | "address" => Some(format!("192.168.1.{}", 10 + rng % 200)),
        "ipv6" => Some(format!("fd00::{:x}", 1 + rng % 0xfff)),
        "CIDRv4" | "CIDR" => Some(format!("192.168.{}.0/24", rng % 250)),
        "CIDRv6" => Some("fd00::/64".to_owned()),
        "dns-name" => Some(format!("{word}.example.com")),
        "pve-configid" => Some(format!("{word}{}", rng % 10)),
        "pve-userid" => Some("root@pam".to_owned()),
        "email" | "email-opt" => Some(format!("{word}@example.com")),
        "disk-size" => Some(format!("{}G", 8 * (1 + rng % 8))),
        "pve-iface" => Some("vmbr0".to_owned()),
        "pve-tag-list" => Some(word.to_owned()),
        _ => None,
    });
    let by_field = || -> Option<String> {
        Some(match field {
            "node" => node.clone(),
            "name" => match ctx.param("vmid") {
                Some(vmid) => format!("vm{vmid}"),
                None => ctx
                    .param("node")
                    .map_or_else(|| word.to_owned(), str::to_owned),
            },
            "storage" => ctx.param("storage").unwrap_or("local").to_owned(),
            "digest" => format!("{:016x}{:016x}{:08x}", rng, mix(rng), rng >> 32),
            "release" => ctx.release.split('.').take(2).collect::<Vec<_>>().join("."),
            "version" => ctx.release.to_owned(),
            "repoid" => format!("{:08x}", rng >> 32),
            "type" => "qemu".to_owned(),
            "status" => "running".to_owned(),
            "exitstatus" => "OK".to_owned(),
            "user" | "userid" => "root@pam".to_owned(),
            "mac" | "macaddr" | "hwaddr" => mac(rng),
            "ip" | "address" => format!("192.168.1.{}", 10 + rng % 200),
            "content" => "images,rootdir".to_owned(),
            "iface" => "vmbr0".to_owned(),
            "comment" | "description" => String::new(),
            "url" => "https://acme-v02.api.letsencrypt.org/directory".to_owned(),
            "vmid" => ctx.param("vmid").unwrap_or("100").to_owned(),
            _ if field.ends_with("fp") || field.contains("fingerprint") => (0..32)
                .map(|i| format!("{:02X}", (mix(rng.wrapping_add(i)) & 0xff) as u8))
                .collect::<Vec<_>>()
                .join(":"),
            "level" => String::new(),
            "id" => {
                let mut segments = ctx.path.rsplit('/').take(2).collect::<Vec<_>>();
                segments.reverse();
                segments.join("/")
            }
            _ => return None,
        })
    };
    let candidates = by_format
        .into_iter()
        .chain(by_field())
        .chain(
            schema
                .default
                .as_ref()
                .and_then(|d| d.as_str().map(str::to_owned)),
        )
        .chain([
            word.to_owned(),
            format!("{word}1"),
            "1".to_owned(),
            "a".to_owned(),
        ]);
    let mut fallback = None;
    for candidate in candidates {
        if fits(api, schema, &candidate) {
            return candidate;
        }
        fallback.get_or_insert(candidate);
    }
    let text = fallback.unwrap_or_default();
    match schema.max_length {
        Some(max) => text.chars().take(max as usize).collect(),
        None => text,
    }
}

fn fits(api: &Api, schema: &Schema, text: &str) -> bool {
    let length = text.chars().count() as u64;
    if schema.max_length.is_some_and(|max| length > max)
        || schema.min_length.is_some_and(|min| length < min)
    {
        return false;
    }
    if let Some(pattern) = &schema.pattern
        && let Some(regex) = api.pattern(pattern)
        && !regex.is_match(text)
    {
        return false;
    }
    if let Some(format) = &schema.format
        && super::check_format(format, text).is_err()
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use route_metadata::Method;

    #[test]
    fn deterministic_and_valid() {
        let api = crate::testing::small_api();
        let op = api
            .operation_at("/nodes/{node}/qemu/{vmid}/status/current", Method::Get)
            .unwrap();
        let params = vec![
            ("node".to_owned(), "pve1".to_owned()),
            ("vmid".to_owned(), "100".to_owned()),
        ];
        let ctx = GenContext {
            path: "/nodes/pve1/qemu/100/status/current",
            params: &params,
            children: &[],
            release: "9.1.1",
            nodes: &[],
            minimal: false,
        };
        let first = generate(&api, &op.returns, &ctx);
        let second = generate(&api, &op.returns, &ctx);
        assert_eq!(first, second);
        assert_eq!(first["vmid"], 100);
        assert_eq!(first["status"], "running");
        assert!(first["ha"].is_object());
        crate::schema::validate_value(&api, &op.returns, &first).unwrap();
    }

    #[test]
    fn indexes_list_children() {
        let api = crate::testing::small_api();
        let op = api
            .operation_at("/nodes/{node}/qemu/{vmid}", Method::Get)
            .unwrap();
        let children = vec!["config".to_owned(), "status".to_owned()];
        let ctx = GenContext {
            path: "/nodes/pve1/qemu/100",
            params: &[],
            children: &children,
            release: "9.1.1",
            nodes: &[],
            minimal: false,
        };
        assert_eq!(
            generate(&api, &op.returns, &ctx),
            json!([{"subdir": "config"}, {"subdir": "status"}])
        );
    }

    #[test]
    fn macs_are_unicast() {
        for index in 0..50u64 {
            assert!(crate::schema::check_format("mac-addr", &mac(mix(index))).is_ok());
        }
    }
}
