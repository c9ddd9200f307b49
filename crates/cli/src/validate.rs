//! Parameters checked against the embedded schema before anything is sent, with the messages of
//! pve-common's `PVE::JSONSchema` (`check_prop`, `check_type`, `parse_property_string`).
//!
//! What is checked here: unknown and missing parameters (with the closest names), types,
//! minimum/maximum, lengths, patterns, enumerations, and the keys and values of property strings
//! (`--net0 virtio,bridge=vmbr0`). Named formats (`pve-vmid`, `mac-addr`, `pve-storage-id`, ...)
//! are left to the server, which checks them with Proxmox's own verifiers and answers with the
//! same `400 Parameter verification failed.`.

use std::collections::BTreeMap;

use regex::RegexBuilder;
use route_metadata::{Operation, PATTERN_SIZE_LIMIT, Schema, SchemaType, resolve_property};
use serde_json::{Map, Value};

use crate::error::ParamErrors;
use crate::schema::{closest, quote_list};

/// Checks `args` (in command-line order, a key repeated for arrays) and the path's parameters,
/// and returns the request parameters as typed JSON values (path parameters left out).
pub fn check(
    operation: &Operation,
    path_params: &BTreeMap<String, String>,
    args: &[(String, String)],
) -> Result<Map<String, Value>, ParamErrors> {
    let mut errors: Vec<(String, String)> = Vec::new();
    for (name, value) in path_params {
        if let Some(schema) = operation.parameters.get(name)
            && let Err(message) = check_value(schema, value)
        {
            errors.push((name.clone(), message));
        }
    }

    let mut grouped: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in args {
        grouped.entry(name).or_default().push(value);
    }
    let mut params = Map::new();
    for (name, values) in grouped {
        if path_params.contains_key(name) {
            errors.push((
                name.to_owned(),
                "parameter is part of the path; it cannot be given again".to_owned(),
            ));
            continue;
        }
        let Some(schema) = operation.parameter(name) else {
            if operation.additional_parameters {
                let value = match values.as_slice() {
                    [one] => Value::String((*one).to_owned()),
                    many => many
                        .iter()
                        .map(|v| Value::String((*v).to_owned()))
                        .collect(),
                };
                params.insert(name.to_owned(), value);
            } else {
                let mut message = "property is not defined in schema and the schema does not \
                                   allow additional properties"
                    .to_owned();
                let known = operation
                    .parameters
                    .keys()
                    .filter(|known| !path_params.contains_key(*known))
                    .map(|known| known.replace("[n]", "0"));
                let known: Vec<String> = known.collect();
                let suggestions = closest(name, known.iter().map(String::as_str));
                if !suggestions.is_empty() {
                    let flags: Vec<String> = suggestions.iter().map(|s| format!("--{s}")).collect();
                    message.push_str(&format!(" (did you mean {}?)", quote_list(&flags)));
                }
                errors.push((name.to_owned(), message));
            }
            continue;
        };
        if schema.kind() == SchemaType::Array {
            let item_schema = schema.items.as_deref().cloned().unwrap_or_default();
            let mut items = Vec::new();
            for value in values {
                match check_value(&item_schema, value) {
                    Ok(item) => items.push(item),
                    Err(message) => errors.push((name.to_owned(), message)),
                }
            }
            params.insert(name.to_owned(), Value::Array(items));
            continue;
        }
        let [value] = values.as_slice() else {
            errors.push((
                name.to_owned(),
                format!(
                    "parameter given {} times, but it takes one value",
                    values.len()
                ),
            ));
            continue;
        };
        match check_value(schema, value) {
            Ok(checked) => {
                params.insert(name.to_owned(), checked);
            }
            Err(message) => errors.push((name.to_owned(), message)),
        }
    }

    for (name, schema) in &operation.parameters {
        if schema.optional
            || schema.family.is_some()
            || path_params.contains_key(name)
            || operation.path_params.contains(name)
            || params.contains_key(name)
            || errors.iter().any(|(failed, _)| failed == name)
        {
            continue;
        }
        errors.push((
            name.clone(),
            "property is missing and it is not optional".to_owned(),
        ));
    }
    if errors.is_empty() {
        Ok(params)
    } else {
        errors.sort();
        Err(ParamErrors(errors))
    }
}

/// Checks one command-line value against its schema and returns it with its JSON type.
pub fn check_value(schema: &Schema, value: &str) -> Result<Value, String> {
    let typed = match schema.kind() {
        SchemaType::Boolean => match parse_boolean(value) {
            Some(flag) => Value::Bool(flag),
            None => return Err(format!("type check ('boolean') failed - got '{value}'")),
        },
        SchemaType::Integer => {
            let number: i64 = value
                .trim_start_matches('+')
                .parse()
                .map_err(|_| format!("type check ('integer') failed - got '{value}'"))?;
            check_range(schema, number as f64)?;
            Value::from(number)
        }
        SchemaType::Number => {
            let number: f64 = value
                .parse()
                .ok()
                .filter(|number: &f64| number.is_finite())
                .ok_or_else(|| format!("type check ('number') failed - got '{value}'"))?;
            check_range(schema, number)?;
            serde_json::Number::from_f64(number)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(value.to_owned()))
        }
        _ => {
            let length = value.chars().count() as u64;
            if let Some(max) = schema.max_length
                && length > max
            {
                return Err(format!("value may only be {max} characters long"));
            }
            if let Some(min) = schema.min_length
                && length < min
            {
                return Err(format!("value must be at least {min} characters long"));
            }
            if let Some(pattern) = &schema.pattern
                && let Ok(regex) = RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                && !regex.is_match(value)
            {
                return Err("value does not match the regex pattern".to_owned());
            }
            if let Some(keys) = &schema.property_string {
                check_property_string(keys, value)
                    .map_err(|why| format!("invalid format - {why}"))?;
            }
            Value::String(value.to_owned())
        }
    };
    if let Some(allowed) = &schema.enum_values {
        let found = allowed.iter().any(|candidate| match candidate {
            Value::String(text) => text == value,
            other => other
                .as_f64()
                .is_some_and(|number| value.parse::<f64>().ok() == Some(number)),
        });
        if !found {
            let listed: Vec<String> = allowed
                .iter()
                .map(|candidate| match candidate {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect();
            return Err(format!(
                "value '{value}' does not have a value in the enumeration '{}'",
                listed.join(", ")
            ));
        }
    }
    Ok(typed)
}

/// `1|on|yes|true` and `0|off|no|false`, any case (`PVE::JSONSchema::parse_boolean`).
pub fn parse_boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

fn check_range(schema: &Schema, number: f64) -> Result<(), String> {
    if let Some(max) = schema.maximum
        && number > max
    {
        return Err(format!(
            "value must have a maximum value of {}",
            show_number(max)
        ));
    }
    if let Some(min) = schema.minimum
        && number < min
    {
        return Err(format!(
            "value must have a minimum value of {}",
            show_number(min)
        ));
    }
    Ok(())
}

fn show_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        number.to_string()
    }
}

/// `parse_property_string`: `key=value` parts, one bare value for the default key, aliases.
fn check_property_string(keys: &BTreeMap<String, Schema>, text: &str) -> Result<(), String> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for part in text.split(',').filter(|part| !part.is_empty()) {
        let (mut key, value) = match part.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => {
                let default_key = keys
                    .iter()
                    .find(|(_, schema)| schema.default_key)
                    .map(|(key, _)| key.clone())
                    .ok_or_else(|| {
                        "value without key, but schema does not define a default key".to_owned()
                    })?;
                (default_key, part.to_owned())
            }
        };
        let mut schema = resolve_property(keys, &key);
        if let Some(alias) = schema.and_then(|schema| schema.alias.clone()) {
            key = alias;
            schema = resolve_property(keys, &key);
        }
        let Some(schema) = schema else {
            let suggestions = closest(&key, keys.keys().map(String::as_str));
            let hint = if suggestions.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", quote_list(&suggestions))
            };
            return Err(format!(
                "invalid key in comma-separated list property: {key}{hint}"
            ));
        };
        if seen.insert(key.clone(), value.clone()).is_some() {
            return Err(format!(
                "duplicate key in comma-separated list property: {key}"
            ));
        }
        check_value(schema, &value).map_err(|message| format!("{key}: {message}"))?;
    }
    for (key, schema) in keys {
        if !schema.optional
            && schema.alias.is_none()
            && schema.family.is_none()
            && !seen.contains_key(key)
        {
            return Err(format!("{key}: property is missing and it is not optional"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use route_metadata::Method;

    use super::*;
    use crate::schema::Api;

    fn errors(path: &str, method: Method, args: &[(&str, &str)]) -> Vec<(String, String)> {
        let api = Api::load("9.1").expect("embedded tag");
        let resolved = api.resolve(path).expect("path");
        let operation = api
            .operation(&resolved.template, method)
            .expect("operation");
        let args: Vec<(String, String)> = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match check(&operation, &resolved.path_params, &args) {
            Ok(_) => Vec::new(),
            Err(ParamErrors(errors)) => errors,
        }
    }

    #[test]
    fn proxmox_messages() {
        let found = errors(
            "/nodes/pve1/qemu",
            Method::Post,
            &[
                ("vmid", "abc"),
                ("memroy", "1"),
                ("net0", "virtio,bridg=vmbr0"),
            ],
        );
        let text = format!("{found:?}");
        assert!(
            text.contains("type check ('integer') failed - got 'abc'"),
            "{text}"
        );
        assert!(text.contains("did you mean '--memory'"), "{text}");
        assert!(
            text.contains(
                "invalid key in comma-separated list property: bridg (did you mean 'bridge'"
            ),
            "{text}"
        );
        let missing = errors("/nodes/pve1/qemu", Method::Post, &[]);
        assert_eq!(
            missing,
            [(
                "vmid".to_owned(),
                "property is missing and it is not optional".to_owned()
            )]
        );
        assert!(
            errors(
                "/nodes/pve1/qemu",
                Method::Post,
                &[
                    ("vmid", "120"),
                    ("memory", "2048"),
                    ("net0", "virtio,bridge=vmbr0")
                ]
            )
            .is_empty()
        );
        let small = errors("/nodes/pve1/qemu", Method::Post, &[("vmid", "5")]);
        assert!(
            format!("{small:?}").contains("minimum value of 100"),
            "{small:?}"
        );
        let path = errors("/nodes/pve1/qemu/xyz/config", Method::Get, &[]);
        assert!(format!("{path:?}").contains("vmid"), "{path:?}");
    }

    #[test]
    fn booleans_and_enums() {
        let schema = Schema {
            ty: Some(SchemaType::String),
            enum_values: Some(vec![Value::from("a"), Value::from("b")]),
            ..Schema::default()
        };
        assert_eq!(
            check_value(&schema, "c").err().as_deref(),
            Some("value 'c' does not have a value in the enumeration 'a, b'")
        );
        let flag = Schema {
            ty: Some(SchemaType::Boolean),
            ..Schema::default()
        };
        assert_eq!(check_value(&flag, "yes"), Ok(Value::Bool(true)));
        assert!(check_value(&flag, "maybe").is_err());
    }
}
