//! Parameter coercion and validation with Proxmox's own error messages.
//!
//! This is a port of the checks in `PVE::JSONSchema` (pve-common `src/PVE/JSONSchema.pm`:
//! `check_prop`, `check_type`, `check_object`, `check_format`, `parse_property_string` and the
//! registered format verifiers), called the way `PVE::RESTHandler::handle` calls it. The order
//! of checks and every message text follow that file, e.g. `type check ('integer') failed - got
//! 'abc'`, `property is missing and it is not optional`, `invalid format - value does not look
//! like a valid VM ID\n`.
//!
//! Form-encoded values arrive as strings. Before checking, [`coerce_params`] converts them to
//! the schema's JSON type (integers, numbers; booleans accept 0/1/true/false/yes/no/on/off and
//! become Proxmox's `0`/`1`), so stored values keep their JSON types. Values that do not convert
//! stay strings and then fail the type check with Proxmox's message.
//!
//! Patterns are collected at start-up by [`crate::api::Api`] and each is compiled once, on first
//! use; named-format regexes likewise.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;
use route_metadata::{Operation, Schema, SchemaType};
use serde_json::{Map, Value};

use crate::api::Api;

/// Request parameters after decoding.
pub type Params = Map<String, Value>;

/// Per-parameter error messages (`{"errors": {...}}`).
pub type Errors = BTreeMap<String, String>;

/// Converts form strings to the schema's JSON types, in place.
pub fn coerce_params(op: &Operation, params: &mut Params) {
    for (name, value) in params.iter_mut() {
        if let Some(schema) = op.parameter(name) {
            coerce(schema, value);
        }
    }
}

/// Converts one value to its schema's JSON type where that is lossless.
pub fn coerce(schema: &Schema, value: &mut Value) {
    match schema.kind() {
        SchemaType::Integer => {
            if let Value::String(text) = value
                && is_integer(text)
                && let Ok(number) = text.trim_start_matches('+').parse::<i64>()
            {
                *value = Value::from(number);
            }
        }
        SchemaType::Number => {
            if let Value::String(text) = value
                && is_number(text)
            {
                if is_integer(text)
                    && let Ok(number) = text.trim_start_matches('+').parse::<i64>()
                {
                    *value = Value::from(number);
                } else if let Ok(number) = text.parse::<f64>()
                    && let Some(number) = serde_json::Number::from_f64(number)
                {
                    *value = Value::Number(number);
                }
            }
        }
        SchemaType::Boolean => match value {
            Value::String(text) => {
                if let Some(flag) = parse_boolean(text) {
                    *value = Value::from(u8::from(flag));
                }
            }
            Value::Bool(flag) => *value = Value::from(u8::from(*flag)),
            _ => {}
        },
        SchemaType::String => match value {
            Value::Number(number) => *value = Value::String(number.to_string()),
            Value::Bool(flag) => *value = Value::String(u8::from(*flag).to_string()),
            _ => {}
        },
        SchemaType::Array => {
            if !value.is_array() && !value.is_null() {
                *value = Value::Array(vec![value.take()]);
            }
            if let (Value::Array(items), Some(item_schema)) = (value, schema.items.as_deref()) {
                for item in items {
                    coerce(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Validates request parameters against an operation, like `PVE::JSONSchema::validate`.
pub fn validate_params(api: &Api, op: &Operation, params: &Params) -> Result<(), Errors> {
    let mut errors = Errors::new();
    for (name, schema) in &op.parameters {
        if schema.family.is_some() {
            continue;
        }
        check_prop(api, params.get(name), schema, name, &mut errors);
    }
    for (name, value) in params {
        if op.parameters.contains_key(name) {
            continue;
        }
        match op.parameter(name) {
            Some(schema) => check_prop(api, Some(value), schema, name, &mut errors),
            None if !op.additional_parameters => add_error(
                &mut errors,
                name,
                "property is not defined in schema and the schema does not allow additional properties",
            ),
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates a value against a schema (used for replies), returning all errors.
#[cfg(test)]
pub(crate) fn validate_value(api: &Api, schema: &Schema, value: &Value) -> Result<(), Errors> {
    let mut errors = Errors::new();
    check_prop(api, Some(value), schema, "", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn add_error(errors: &mut Errors, path: &str, message: impl Into<String>) {
    let path = if path.is_empty() { "_root" } else { path };
    let message = message.into();
    errors
        .entry(path.to_owned())
        .and_modify(|existing| {
            // Proxmox joins with a literal backslash-n (single-quoted '\n' in Perl).
            existing.push_str("\\n");
            existing.push_str(&message);
        })
        .or_insert(message);
}

fn join_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Looks a property up, resolving `net3` to a `net[n]` family.
pub fn resolve_property<'a>(
    properties: &'a BTreeMap<String, Schema>,
    name: &str,
) -> Option<&'a Schema> {
    if let Some(schema) = properties.get(name) {
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
    let schema = properties.get(&format!("{prefix}[n]"))?;
    match &schema.family {
        Some(family) if index < family.count => Some(schema),
        Some(_) => None,
        None => Some(schema),
    }
}

fn check_object(
    api: &Api,
    path: &str,
    properties: &BTreeMap<String, Schema>,
    object: &Map<String, Value>,
    additional: bool,
    errors: &mut Errors,
) {
    for (key, schema) in properties {
        if schema.family.is_some() || key.ends_with("[n]") {
            continue;
        }
        check_prop(api, object.get(key), schema, &join_path(path, key), errors);
    }
    for (key, value) in object {
        if properties.contains_key(key) {
            continue;
        }
        match resolve_property(properties, key) {
            Some(schema) => check_prop(api, Some(value), schema, &join_path(path, key), errors),
            None if !additional => add_error(
                errors,
                &join_path(path, key),
                "property is not defined in schema and the schema does not allow additional properties",
            ),
            None => {}
        }
    }
}

fn check_prop(api: &Api, value: Option<&Value>, schema: &Schema, path: &str, errors: &mut Errors) {
    if let Some(alternatives) = &schema.one_of
        && schema.type_property.is_none()
    {
        let mut valid = false;
        let mut first_errors = Errors::new();
        for alternative in alternatives {
            let mut inner = Errors::new();
            check_prop(api, value, alternative, path, &mut inner);
            if inner.is_empty() {
                valid = true;
                break;
            }
            if first_errors.is_empty() {
                first_errors = inner;
            }
        }
        if !valid {
            errors.extend(first_errors);
        }
        return;
    }
    let value = match value {
        None | Some(Value::Null) => {
            if schema.kind() == SchemaType::Null {
                return;
            }
            if value.is_none() && !schema.optional && schema.alias.is_none() {
                add_error(errors, path, "property is missing and it is not optional");
            }
            return;
        }
        Some(value) => value,
    };
    if !check_type(path, schema.kind(), value, errors) {
        return;
    }
    match value {
        Value::Array(items) => {
            if let Some(item_schema) = schema.items.as_deref() {
                for (index, item) in items.iter().enumerate() {
                    check_prop(
                        api,
                        Some(item),
                        item_schema,
                        &format!("{path}[{index}]"),
                        errors,
                    );
                }
            }
        }
        Value::Object(object) => {
            if schema.properties.is_some() || !schema.additional_properties {
                let empty = BTreeMap::new();
                let properties = schema.properties.as_ref().unwrap_or(&empty);
                check_object(
                    api,
                    path,
                    properties,
                    object,
                    schema.additional_properties,
                    errors,
                );
            }
        }
        _ => check_scalar(api, schema, value, path, errors),
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(flag) => u8::from(*flag).to_string(),
        other => other.to_string(),
    }
}

fn check_scalar(api: &Api, schema: &Schema, value: &Value, path: &str, errors: &mut Errors) {
    let text = scalar_text(value);
    if let Some(format) = &schema.property_string {
        if let Err(message) = parse_property_string(api, format, &text, path) {
            add_error(errors, path, format!("invalid format - {message}"));
            return;
        }
    } else if let Some(format) = &schema.format
        && let Err(message) = check_format(format, &text)
    {
        add_error(errors, path, format!("invalid format - {message}"));
        return;
    }
    if let Some(pattern) = &schema.pattern
        && let Some(regex) = api.pattern(pattern)
        && !regex.is_match(&text)
    {
        add_error(errors, path, "value does not match the regex pattern");
        return;
    }
    let length = text.chars().count() as u64;
    if let Some(max) = schema.max_length
        && length > max
    {
        add_error(
            errors,
            path,
            format!("value may only be {max} characters long"),
        );
        return;
    }
    if let Some(min) = schema.min_length
        && length < min
    {
        add_error(
            errors,
            path,
            format!("value must be at least {min} characters long"),
        );
        return;
    }
    if is_number(&text)
        && let Ok(number) = text.parse::<f64>()
    {
        if let Some(max) = schema.maximum
            && number > max
        {
            add_error(
                errors,
                path,
                format!("value must have a maximum value of {}", perl_number(max)),
            );
            return;
        }
        if let Some(min) = schema.minimum
            && number < min
        {
            add_error(
                errors,
                path,
                format!("value must have a minimum value of {}", perl_number(min)),
            );
            return;
        }
    }
    if let Some(values) = &schema.enum_values
        && !values.iter().any(|allowed| scalar_text(allowed) == text)
    {
        let list = values
            .iter()
            .map(scalar_text)
            .collect::<Vec<_>>()
            .join(", ");
        add_error(
            errors,
            path,
            format!("value '{text}' does not have a value in the enumeration '{list}'"),
        );
    }
}

/// Formats a number the way Perl prints it (`100`, not `100.0`).
pub fn perl_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

fn check_type(path: &str, ty: SchemaType, value: &Value, errors: &mut Errors) -> bool {
    let ref_name = match value {
        Value::Array(_) => Some("ARRAY"),
        Value::Object(_) => Some("HASH"),
        _ => None,
    };
    let ok = match ty {
        SchemaType::Any => return true,
        SchemaType::Null => {
            add_error(
                errors,
                path,
                "type check ('null') failed - value is not null",
            );
            return false;
        }
        SchemaType::Array => value.is_array(),
        SchemaType::Object => value.is_object(),
        _ if ref_name.is_some() => {
            add_error(
                errors,
                path,
                format!(
                    "type check ('{}') failed - got {}",
                    type_name(ty),
                    ref_name.unwrap_or("HASH")
                ),
            );
            return false;
        }
        SchemaType::String => true,
        SchemaType::Boolean => match value {
            Value::Bool(_) => true,
            other => matches!(scalar_text(other).as_str(), "0" | "1"),
        },
        SchemaType::Integer => is_integer(&scalar_text(value)),
        SchemaType::Number => is_number(&scalar_text(value)),
    };
    if !ok {
        let message = match (ty, ref_name) {
            (SchemaType::Array | SchemaType::Object, _) => {
                format!("type check ('{}') failed", type_name(ty))
            }
            _ => format!(
                "type check ('{}') failed - got '{}'",
                type_name(ty),
                scalar_text(value)
            ),
        };
        add_error(errors, path, message);
    }
    ok
}

fn type_name(ty: SchemaType) -> &'static str {
    match ty {
        SchemaType::String => "string",
        SchemaType::Integer => "integer",
        SchemaType::Number => "number",
        SchemaType::Boolean => "boolean",
        SchemaType::Object => "object",
        SchemaType::Array => "array",
        SchemaType::Null => "null",
        SchemaType::Any => "any",
    }
}

/// `PVE::JSONSchema::is_integer`.
pub fn is_integer(text: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[+-]?\d+$").expect("static regex"));
    RE.is_match(text)
}

/// `PVE::JSONSchema::is_number`.
pub fn is_number(text: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$").expect("static regex")
    });
    RE.is_match(text)
}

/// `PVE::JSONSchema::parse_boolean`.
pub fn parse_boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// The one boolean reader: a JSON value read as pve-common reads booleans (`parse_boolean` on
/// text, any non-zero number, JSON booleans). `None` for anything else, so each caller decides
/// what an absent or malformed flag means.
pub fn value_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => Some(number.as_f64().is_some_and(|n| n != 0.0)),
        Value::String(text) => parse_boolean(text),
        _ => None,
    }
}

/// `PVE::Tools::split_list`.
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', ';', ' ', '\0', '\t', '\n'])
        .filter(|part| !part.is_empty())
}

/// Runs a named format's verifier; the error is the verifier's `die` message.
pub fn check_format(format: &str, value: &str) -> Result<(), String> {
    if let Some(base) = format.strip_suffix("-list") {
        for item in split_list(value) {
            check_named_format(base, item)?;
        }
        return Ok(());
    }
    if let Some(base) = format.strip_suffix("-opt") {
        if value.is_empty() {
            return Ok(());
        }
        return check_named_format(base, value);
    }
    check_named_format(format, value)
}

macro_rules! static_regex {
    ($re:expr) => {{
        static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new($re).expect("static regex"));
        &*RE
    }};
}

fn check_named_format(format: &str, value: &str) -> Result<(), String> {
    let valid = match format {
        "pve-configid" => static_regex!(r"(?i)^[a-z][a-z0-9_-]+$").is_match(value),
        "pve-storage-id" | "acme-plugin-id" => is_proxmox_id(value),
        "pve-bridge-id" => static_regex!(r"^[-_.\w\d]+$").is_match(value),
        "pve-vmid" => static_regex!(r"^[1-9][0-9]{2,8}$").is_match(value),
        "pve-node" => is_node_name(value),
        "mac-addr" => static_regex!(r"(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$").is_match(value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "ip" => value.parse::<IpAddr>().is_ok(),
        "CIDRv4" => is_cidr(value, false),
        "CIDRv6" => is_cidr(value, true),
        "CIDR" => is_cidr(value, false) || is_cidr(value, true),
        "dns-name" => is_dns_name(value),
        "address" => value.parse::<IpAddr>().is_ok() || is_dns_name(value),
        "disk-size" => static_regex!(r"^(\d+(\.\d+)?)([KMGT])?$").is_match(value),
        "pve-iface" => static_regex!(r"(?i)^[a-z][a-z0-9_]{1,20}([:\.]\d+)?$").is_match(value),
        "pve-tag" => static_regex!(r"(?i)^[a-z0-9_][a-z0-9_\-\+\.]*$").is_match(value),
        "urlencoded" => static_regex!(r"^[-%a-zA-Z0-9_.!~*'()]*$").is_match(value),
        "pve-startup-order" => {
            !value.is_empty()
                && value
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .all(|part| {
                        static_regex!(r"^(order=)?\d+$").is_match(part)
                            || static_regex!(r"^(up|down)=\d+$").is_match(part)
                    })
        }
        _ => true,
    };
    if valid {
        return Ok(());
    }
    // The verifiers' `die` messages, verbatim (with their trailing newline).
    Err(match format {
        "pve-configid" => format!("invalid configuration ID '{value}'\n"),
        "pve-storage-id" => format!("storage ID '{value}' contains illegal characters\n"),
        "acme-plugin-id" => format!("ACME plugin ID '{value}' contains illegal characters\n"),
        "pve-bridge-id" => format!("invalid bridge ID '{value}'\n"),
        "pve-vmid" => "value does not look like a valid VM ID\n".to_owned(),
        "pve-node" => "value does not look like a valid node name\n".to_owned(),
        "mac-addr" => "value does not look like a valid unicast MAC address\n".to_owned(),
        "ipv4" => "value does not look like a valid IPv4 address\n".to_owned(),
        "ipv6" => "value does not look like a valid IPv6 address\n".to_owned(),
        "ip" => "value does not look like a valid IP address\n".to_owned(),
        "CIDRv4" => "value does not look like a valid IPv4 CIDR network\n".to_owned(),
        "CIDRv6" => "value does not look like a valid IPv6 CIDR network\n".to_owned(),
        "CIDR" => "value does not look like a valid CIDR network\n".to_owned(),
        "dns-name" => "value does not look like a valid DNS name\n".to_owned(),
        "address" => format!("value does not look like a valid address: {value}\n"),
        "disk-size" => format!("value does not look like a valid disk size: {value}\n"),
        "pve-iface" => format!("invalid network interface name '{value}'\n"),
        "pve-tag" => "invalid characters in tag\n".to_owned(),
        "urlencoded" => format!("invalid urlencoded string: {value}\n"),
        _ => "unable to parse startup options\n".to_owned(),
    })
}

fn is_proxmox_id(value: &str) -> bool {
    static_regex!(r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$").is_match(value)
}

/// `pve_verify_node_name`'s pattern.
pub fn is_node_name(value: &str) -> bool {
    static_regex!(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$").is_match(value)
}

fn is_dns_name(value: &str) -> bool {
    static_regex!(
        r"^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$"
    )
    .is_match(value)
}

fn is_cidr(value: &str, v6: bool) -> bool {
    let Some((address, bits)) = value.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    if v6 {
        address.parse::<Ipv6Addr>().is_ok() && bits > 7 && bits <= 128
    } else {
        address.parse::<Ipv4Addr>().is_ok() && bits > 7 && bits <= 32
    }
}

/// `PVE::JSONSchema::parse_property_string` followed by its `check_object`; the error is the
/// text `check_prop` puts after `invalid format - `.
pub fn parse_property_string(
    api: &Api,
    format: &BTreeMap<String, Schema>,
    data: &str,
    path: &str,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn check(params: Value, expect: &[(&str, &str)]) {
        let api = crate::testing::small_api();
        let op = api
            .operation_at("/nodes/{node}/qemu", route_metadata::Method::Post)
            .unwrap();
        let mut params = params.as_object().unwrap().clone();
        coerce_params(op, &mut params);
        let result = validate_params(&api, op, &params);
        let expected: Errors = expect
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match result {
            Ok(()) => assert!(expected.is_empty(), "expected errors {expected:?}"),
            Err(errors) => assert_eq!(errors, expected),
        }
    }

    #[test]
    fn accepts_valid_form_values() {
        check(
            json!({"node": "pve1", "vmid": "100", "cores": "2", "onboot": "yes"}),
            &[],
        );
    }

    #[test]
    fn reports_type_errors() {
        check(
            json!({"node": "pve1", "vmid": "abc"}),
            &[("vmid", "type check ('integer') failed - got 'abc'")],
        );
        check(
            json!({"node": "pve1", "vmid": "100", "onboot": "maybe"}),
            &[("onboot", "type check ('boolean') failed - got 'maybe'")],
        );
    }

    #[test]
    fn reports_missing_and_unknown() {
        check(
            json!({"node": "pve1", "bogus": "1"}),
            &[
                (
                    "bogus",
                    "property is not defined in schema and the schema does not allow additional properties",
                ),
                ("vmid", "property is missing and it is not optional"),
            ],
        );
    }

    #[test]
    fn reports_ranges_formats_and_enums() {
        check(
            json!({"node": "pve1", "vmid": "100", "cores": "0"}),
            &[("cores", "value must have a minimum value of 1")],
        );
        check(
            json!({"node": "pve1", "vmid": "50"}),
            &[(
                "vmid",
                "invalid format - value does not look like a valid VM ID\n",
            )],
        );
        check(
            json!({"node": "pve1", "vmid": "100", "ostype": "dos"}),
            &[(
                "ostype",
                "value 'dos' does not have a value in the enumeration 'l26, win11'",
            )],
        );
        check(
            json!({"node": "pve1", "vmid": "100", "name": "bad name!"}),
            &[("name", "value does not match the regex pattern")],
        );
        check(
            json!({"node": "pve-", "vmid": "100"}),
            &[(
                "node",
                "invalid format - value does not look like a valid node name\n",
            )],
        );
    }

    #[test]
    fn checks_property_strings() {
        check(
            json!({"node": "pve1", "vmid": "100", "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0"}),
            &[],
        );
        check(
            json!({"node": "pve1", "vmid": "100", "net0": "model=e1000,bridge=vmbr0"}),
            &[],
        );
        check(
            json!({"node": "pve1", "vmid": "100", "net0": "virtio,foo=1"}),
            &[(
                "net0",
                "invalid format - invalid key in comma-separated list property: foo\n",
            )],
        );
        check(
            json!({"node": "pve1", "vmid": "100", "net0": "model=rtl,bridge=vmbr0"}),
            &[(
                "net0",
                "invalid format - format error\nnet0.model: value 'rtl' does not have a value in the enumeration 'e1000, virtio'\n",
            )],
        );
        check(
            json!({"node": "pve1", "vmid": "100", "net99": "virtio"}),
            &[(
                "net99",
                "property is not defined in schema and the schema does not allow additional properties",
            )],
        );
    }

    #[test]
    fn coerces_to_json_types() {
        let api = crate::testing::small_api();
        let op = api
            .operation_at("/nodes/{node}/qemu", route_metadata::Method::Post)
            .unwrap();
        let mut params = json!({"vmid": "100", "cores": "4", "onboot": "on", "name": "x"})
            .as_object()
            .unwrap()
            .clone();
        coerce_params(op, &mut params);
        assert_eq!(
            Value::Object(params),
            json!({"vmid": 100, "cores": 4, "onboot": 1, "name": "x"})
        );
    }

    #[test]
    fn perl_numbers() {
        assert_eq!(perl_number(100.0), "100");
        assert_eq!(perl_number(0.5), "0.5");
    }

    #[test]
    fn named_formats() {
        assert!(check_format("pve-vmid", "100").is_ok());
        assert!(check_format("pve-vmid", "99").is_err());
        assert!(check_format("pve-storage-id", "local-lvm").is_ok());
        assert_eq!(
            check_format("pve-storage-id", "1bad").unwrap_err(),
            "storage ID '1bad' contains illegal characters\n"
        );
        assert!(check_format("pve-node-list", "pve1,pve2").is_ok());
        assert!(check_format("pve-configid-list", "a1,,b2").is_ok());
        assert!(check_format("CIDRv4", "10.0.0.0/7").is_err());
        assert!(check_format("CIDRv4", "10.0.0.0/16").is_ok());
        assert!(check_format("mac-addr", "BC:24:11:00:00:01").is_ok());
        assert!(check_format("mac-addr", "01:24:11:00:00:01").is_err());
    }
}
