//! Deterministic, plausible values for anything the state does not hold.
//!
//! Every value is derived from a hash of the concrete request path and the field name, so the
//! same request always yields the same reply. Values are chosen by field name first (`node`,
//! `vmid`, `mem`, `cpu`, `uptime`, `status`, `mac`...), then by named format, then by type, and
//! always respect the schema's enum, minimum/maximum, length and (when one of a few candidates
//! fits) pattern. Objects get their required properties plus the optional ones the generator
//! knows a plausible value for; property-string and indexed (`net[n]`) fields are left out.
//! Directory indexes (`[{"subdir": ...}]`) list the path's real children.
//!
//! This file walks the schema (enums, arrays, objects); scalar values come from
//! [`super::scalars`] and the memo of finished values is [`super::cache`].

use route_metadata::{Schema, SchemaType};
use serde_json::{Map, Value, json};

use super::context::{GenContext, seed};
use super::property_string::parse_property_string;
use super::scalars::{integer, number, string};
use super::validate::{coerce, validate_value};
use crate::api::Api;

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
pub(crate) fn generate(api: &Api, schema: &Schema, ctx: &GenContext<'_>) -> Value {
    api.generated
        .get_or_insert(schema, ctx, || generate_field(api, schema, ctx, "", 0))
}

/// A stored value as a reply schema wants it, or `None` when the reply has no place for it.
///
/// - `null` is an unset field, which Proxmox leaves out.
/// - A property string whose reply schema is an object is parsed, as Proxmox's config decoders
///   do before answering (pve-manager `API2/Backup.pm`: `fleecing`, `performance` and
///   `prune-backups` are property strings in POST and PUT and objects in GET replies).
/// - A scalar is converted to the schema's type where that is lossless (`"2048"` for an
///   integer field).
///
/// A value that still does not validate against the schema (a ceph pool's `crush_rule` sent
/// as a rule name, listed as an integer) is `None`: the reply keeps its generated value, or
/// leaves the field out.
pub(crate) fn reply_value(api: &Api, schema: &Schema, value: &Value) -> Option<Value> {
    let mut value = value.clone();
    match (schema.kind(), &value) {
        (_, Value::Null) => return None,
        (SchemaType::Object, Value::String(text)) => {
            let properties = schema.properties.as_ref()?;
            let mut object =
                parse_property_string(api, properties, text, &super::validate::Path::Root).ok()?;
            for (key, field) in &mut object {
                if let Some(property) = properties.get(key) {
                    coerce(property, field);
                }
            }
            value = Value::Object(object);
        }
        (SchemaType::String, Value::Number(_) | Value::Bool(_))
        | (SchemaType::Integer | SchemaType::Number | SchemaType::Boolean, Value::String(_)) => {
            coerce(schema, &mut value);
        }
        _ => {}
    }
    validate_value(api, schema, &value).ok().map(|()| value)
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
    // A load average is always three numbers: 1, 5 and 15 minutes.
    let count = match field {
        "loadavg" => 3,
        _ if depth == 0 => 2,
        _ => 1,
    };
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use route_metadata::Method;

    #[test]
    fn deterministic_and_valid() {
        let api = crate::test_api::small_api();
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
        let api = crate::test_api::small_api();
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
}
