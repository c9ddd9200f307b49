//! Property strings (`virtio=BC:24:11:00:00:01,bridge=vmbr0`): `PVE::JSONSchema::parse_property_string`
//! followed by its `check_object`, with Proxmox's messages.

use std::collections::BTreeMap;

use route_metadata::{Schema, SchemaType};
use serde_json::{Map, Value};

use super::formats::parse_boolean;
use super::validate::{Errors, Path, check_object};
use crate::api::Api;

/// `PVE::JSONSchema::parse_property_string` followed by its `check_object`; the error is the
/// text `check_prop` puts after `invalid format - `.
pub(crate) fn parse_property_string(
    api: &Api,
    format: &BTreeMap<String, Schema>,
    data: &str,
    path: &Path<'_>,
) -> Result<Map<String, Value>, String> {
    let mut result = Map::new();
    let mut default_key: Option<&str> = None;
    for part in data.split(',') {
        if part.trim().is_empty() {
            continue;
        }
        if let Some((key, value)) = part
            .split_once('=')
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        {
            if result.contains_key(key) {
                return Err(format!(
                    "duplicate key in comma-separated list property: {key}\n"
                ));
            }
            let mut key = key.to_owned();
            let mut schema = format.get(&key);
            if let Some(alias) = schema.and_then(|s| s.alias.clone()) {
                if let Some(key_alias) = schema.and_then(|s| s.key_alias.clone()) {
                    if result.contains_key(&key_alias) {
                        return Err(format!("key alias '{key_alias}' is already defined\n"));
                    }
                    result.insert(key_alias, Value::String(key.clone()));
                }
                key = alias;
                schema = format.get(&key);
            }
            let Some(schema) = schema else {
                return Err(format!(
                    "invalid key in comma-separated list property: {key}\n"
                ));
            };
            let mut value = value.to_owned();
            if schema.kind() == SchemaType::Boolean
                && let Some(flag) = parse_boolean(&value)
            {
                value = u8::from(flag).to_string();
            }
            result.insert(key, Value::String(value));
        } else if !part.contains('=') {
            if let Some(existing) = default_key {
                return Err(format!(
                    "duplicate key in comma-separated list property: {existing}\n"
                ));
            }
            let Some((key, _)) = format.iter().find(|(_, schema)| schema.default_key) else {
                return Err(
                    "value without key, but schema does not define a default key\n".to_owned(),
                );
            };
            default_key = Some(key);
            if result.contains_key(key.as_str()) {
                return Err(format!(
                    "duplicate key in comma-separated list property: {key}\n"
                ));
            }
            result.insert(key.clone(), Value::String(part.to_owned()));
        } else {
            return Err("missing key in comma-separated list property\n".to_owned());
        }
    }
    let mut errors = Errors::new();
    check_object(api, path, format, &result, false, &mut errors);
    if errors.is_empty() {
        Ok(result)
    } else {
        let mut message = "format error\n".to_owned();
        for (key, error) in &errors {
            message.push_str(&format!("{key}: {error}\n"));
        }
        Err(message)
    }
}
