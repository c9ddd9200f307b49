//! Checking proxied traffic against the schema with the mock's own validator
//! (`crate::schema::validate_params` for requests, `validate_value` against the operation's
//! `returns` for replies), and turning its errors into [`Discrepancy`] values: the error's
//! Proxmox path (`net0`, `[0].vmid`, `_root`) becomes a JSON pointer (`/net0`, `/data/0/vmid`,
//! `/data`), the schema at that place is summarised as `expected`, and the value as `found`.
//!
//! **No secrets.** A value is shown only when nothing marks it as one: neither the name of any
//! segment of its pointer (`password`, `secret`, `ticket`, `token`, `key`, `value`, `otp`,
//! `csrf`...) nor the operation (tickets, TFA, API tokens, passwords). Otherwise `found` is
//! `(redacted)` and a validator message that repeats the value is withheld too.

use route_metadata::{Operation, Schema, SchemaType};
use serde_json::{Map, Value};

use super::report::{Direction, Discrepancy};
use crate::api::Api;
use crate::schema::{self, Params};

/// Longest `found` text.
const FOUND_MAX: usize = 80;

/// Name fragments that mark a value as a possible secret.
const SECRET_NAMES: &[&str] = &[
    "password",
    "secret",
    "ticket",
    "token",
    "key",
    "csrf",
    "otp",
    "challenge",
    "private",
    "cookie",
    "response",
];

/// Path fragments of operations whose values are all treated as secrets.
const SECRET_OPERATIONS: &[&str] = &[
    "/access/ticket",
    "/access/tfa",
    "/access/password",
    "/token",
    "ticket",
    "/openid",
];

/// Validates request parameters (coerced in place, as the mock does); returns the
/// discrepancies and, when there are any, the validator's errors for a `--strict` refusal.
pub(crate) fn request(
    api: &Api,
    op: &Operation,
    params: &mut Params,
) -> (Vec<Discrepancy>, Option<schema::Errors>) {
    schema::coerce_params(op, params);
    let Err(errors) = schema::validate_params(api, op, params) else {
        return (Vec::new(), None);
    };
    let secret_op = is_secret_operation(&op.path);
    let found: Vec<Discrepancy> = errors
        .iter()
        .map(|(key, message)| {
            let segments = segments(key);
            let schema = segments
                .split_first()
                .and_then(|(first, rest)| walk(op.parameter(first)?, rest));
            let value = segments
                .split_first()
                .and_then(|(first, rest)| params.get(first.as_str()).and_then(|v| lookup(v, rest)));
            discrepancy(
                op.operation_id.clone(),
                Direction::Request,
                pointer("", &segments),
                schema,
                value,
                message,
                secret_op || segments.iter().any(|s| is_secret_name(s)),
            )
        })
        .collect();
    (found, Some(errors))
}

/// Validates a parsed reply body (`{"data": ...}`; `None`: not JSON) against the operation's
/// `returns`.
pub(crate) fn reply(api: &Api, op: &Operation, envelope: Option<&Value>) -> Vec<Discrepancy> {
    let envelope = match envelope {
        Some(value) => value,
        None => {
            return vec![Discrepancy {
                operation: op.operation_id.clone(),
                direction: Direction::Reply,
                pointer: String::new(),
                expected: "a JSON object {\"data\": ...}".to_owned(),
                found: "not JSON".to_owned(),
                message: "the reply body is not JSON".to_owned(),
            }];
        }
    };
    let data = envelope.get("data").unwrap_or(&Value::Null);
    let Err(errors) = schema::validate_value(api, &op.returns, data) else {
        return Vec::new();
    };
    let secret_op = is_secret_operation(&op.path);
    errors
        .iter()
        .map(|(key, message)| {
            let segments = if key == "_root" {
                Vec::new()
            } else {
                segments(key)
            };
            discrepancy(
                op.operation_id.clone(),
                Direction::Reply,
                pointer("/data", &segments),
                walk(&op.returns, &segments),
                lookup(data, &segments),
                message,
                secret_op || segments.iter().any(|s| is_secret_name(s)),
            )
        })
        .collect()
}

/// The parameters of a request: the query, then a form or JSON body over it (`extract_params`
/// merges the query last, so it wins); a repeated form key becomes an array.
pub(crate) fn params(query: Option<&str>, body: Option<(&[u8], bool)>) -> Option<Params> {
    let mut params = Params::new();
    if let Some((bytes, json)) = body
        && !bytes.iter().all(u8::is_ascii_whitespace)
    {
        if json {
            match serde_json::from_slice::<Value>(bytes).ok()? {
                Value::Object(map) => params = map,
                _ => return None,
            }
        } else {
            add_form(&mut params, bytes);
        }
    }
    if let Some(query) = query {
        add_form(&mut params, query.as_bytes());
    }
    params.remove("_dc");
    Some(params)
}

fn add_form(params: &mut Map<String, Value>, data: &[u8]) {
    let mut seen = std::collections::HashSet::new();
    for (key, value) in form_urlencoded::parse(data) {
        let key = key.into_owned();
        let value = Value::String(value.into_owned());
        if seen.insert(key.clone()) {
            params.insert(key, value);
            continue;
        }
        match params.get_mut(&key) {
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                params.insert(key, value);
            }
        }
    }
}

fn discrepancy(
    operation: String,
    direction: Direction,
    pointer: String,
    schema: Option<&Schema>,
    value: Option<&Value>,
    message: &str,
    secret: bool,
) -> Discrepancy {
    let found_text = match value {
        None | Some(Value::Null) => "(missing)".to_owned(),
        Some(value) => shorten(&value.to_string()),
    };
    let (found, message) = if secret && value.is_some_and(|v| !v.is_null()) {
        let message = if message.contains(" got ") || message.contains("value '") {
            "(withheld: it repeats a value that may be a secret)".to_owned()
        } else {
            message.to_owned()
        };
        ("(redacted)".to_owned(), message)
    } else {
        (found_text, message.to_owned())
    };
    Discrepancy {
        operation,
        direction,
        pointer,
        expected: schema.map_or_else(|| "no such property".to_owned(), describe),
        found,
        message,
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= FOUND_MAX {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(FOUND_MAX).collect();
    short.push('…');
    short
}

fn is_secret_name(segment: &str) -> bool {
    let lower = segment.to_ascii_lowercase();
    lower == "value" || SECRET_NAMES.iter().any(|name| lower.contains(name))
}

fn is_secret_operation(path: &str) -> bool {
    SECRET_OPERATIONS
        .iter()
        .any(|fragment| path.contains(fragment))
}

/// A schema in a few words: `integer (minimum 100)`, `string, format pve-vmid`, `one of a, b`.
fn describe(schema: &Schema) -> String {
    let kind = match schema.kind() {
        SchemaType::Any => "any",
        SchemaType::Null => "null",
        SchemaType::Array => "array",
        SchemaType::Object => "object",
        SchemaType::String => "string",
        SchemaType::Boolean => "boolean",
        SchemaType::Integer => "integer",
        SchemaType::Number => "number",
    };
    let mut text = kind.to_owned();
    if let Some(values) = &schema.enum_values {
        let list: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        text.push_str(&format!(", one of {}", list.join(", ")));
    }
    if let Some(format) = &schema.format {
        text.push_str(&format!(", format {format}"));
    }
    if schema.property_string.is_some() {
        text.push_str(", property string");
    }
    if let Some(pattern) = &schema.pattern {
        text.push_str(&format!(", pattern {pattern}"));
    }
    if let Some(min) = schema.minimum {
        text.push_str(&format!(", minimum {min}"));
    }
    if let Some(max) = schema.maximum {
        text.push_str(&format!(", maximum {max}"));
    }
    if let Some(max) = schema.max_length {
        text.push_str(&format!(", at most {max} characters"));
    }
    if matches!(schema.kind(), SchemaType::Object) && !schema.additional_properties {
        text.push_str(", no additional properties");
    }
    if !schema.optional {
        text.push_str(", required");
    }
    text
}

/// Splits a validator path (`a.b[0].c`) into segments (`a`, `b`, `0`, `c`).
fn segments(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            '[' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
                let index: String = chars.by_ref().take_while(|c| *c != ']').collect();
                out.push(index);
            }
            other => current.push(other),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A JSON pointer (RFC 6901) from a prefix and segments.
fn pointer(prefix: &str, segments: &[String]) -> String {
    let mut out = prefix.to_owned();
    for segment in segments {
        out.push('/');
        out.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// The schema at a place below `schema`.
fn walk<'s>(schema: &'s Schema, segments: &[String]) -> Option<&'s Schema> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(schema);
    };
    if let Some(alternatives) = &schema.one_of {
        return alternatives.iter().find_map(|alt| walk(alt, segments));
    }
    let next = match schema.kind() {
        SchemaType::Array => schema.items.as_deref()?,
        _ => {
            let properties = schema
                .properties
                .as_ref()
                .or(schema.property_string.as_ref())?;
            schema::resolve_property(properties, first)?
        }
    };
    walk(next, rest)
}

/// The value at a place below `value`.
fn lookup<'v>(value: &'v Value, segments: &[String]) -> Option<&'v Value> {
    segments
        .iter()
        .try_fold(value, |current, segment| match current {
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
            Value::Object(map) => map.get(segment),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validator_paths_become_pointers() {
        assert_eq!(pointer("/data", &segments("[0].vmid")), "/data/0/vmid");
        assert_eq!(pointer("", &segments("net0")), "/net0");
        assert_eq!(pointer("/data", &segments("a.b[12].c")), "/data/a/b/12/c");
        assert_eq!(pointer("/data", &segments("a/b~c")), "/data/a~1b~0c");
    }

    #[test]
    fn secrets_are_recognised_by_name_and_operation() {
        assert!(is_secret_name("password"));
        assert!(is_secret_name("CSRFPreventionToken"));
        assert!(is_secret_name("value"));
        assert!(!is_secret_name("vmid"));
        assert!(is_secret_operation(
            "/access/users/{userid}/token/{tokenid}"
        ));
        assert!(!is_secret_operation("/nodes/{node}/qemu"));
    }

    #[test]
    fn form_and_json_parameters() {
        let params = params(Some("a=1&b=x&b=y&_dc=5"), None).unwrap_or_default();
        assert_eq!(params["a"], "1");
        assert_eq!(params["b"], serde_json::json!(["x", "y"]));
        assert!(!params.contains_key("_dc"));
        let params = params_json();
        assert_eq!(params["vmid"], 100);
        assert!(super::params(None, Some((b"[1]", true))).is_none());
    }

    fn params_json() -> Params {
        params(None, Some((br#"{"vmid": 100}"#, true))).unwrap_or_default()
    }
}
