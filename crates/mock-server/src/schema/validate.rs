//! Parameter coercion and validation with Proxmox's own error messages.
//!
//! This is a port of the checks in `PVE::JSONSchema` (pve-common `src/PVE/JSONSchema.pm`:
//! `check_prop`, `check_type`, `check_object`; `check_format` and the registered format
//! verifiers are in [`super::formats`], `parse_property_string` in [`super::property_string`]),
//! called the way `PVE::RESTHandler::handle` calls it. The order
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
//! use.

use std::borrow::Cow;
use std::collections::BTreeMap;

use route_metadata::{Operation, Schema, SchemaType};
use serde_json::{Map, Value};

use super::formats::{check_format, check_value_format, is_integer, is_number, parse_boolean};
use super::property_string::parse_property_string;
use crate::api::Api;

/// Request parameters after decoding.
pub(crate) type Params = Map<String, Value>;

/// Per-parameter error messages (`{"errors": {...}}`).
pub(crate) type Errors = BTreeMap<String, String>;

/// Converts form strings to the schema's JSON types, in place.
pub(crate) fn coerce_params(op: &Operation, params: &mut Params) {
    for (name, value) in params.iter_mut() {
        if let Some(schema) = op.parameter(name) {
            coerce(schema, value);
        }
    }
}

/// Converts one value to its schema's JSON type where that is lossless.
///
/// A value whose schema names a format keeps its text when the text fails the format, so the
/// format is checked on the value as sent: `pve_verify_vmid` refuses `0100`, which as an integer
/// would be VM 100.
pub(crate) fn coerce(schema: &Schema, value: &mut Value) {
    if let (Some(format), Value::String(text)) = (&schema.format, &*value)
        && matches!(schema.kind(), SchemaType::Integer | SchemaType::Number)
        && check_format(format, text).is_err()
    {
        return;
    }
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
pub(crate) fn validate_params(api: &Api, op: &Operation, params: &Params) -> Result<(), Errors> {
    let mut errors = Errors::new();
    // The parameters given: each against its schema (one look-up each, where walking the
    // schema would look up every declared parameter: 80 for a guest create).
    for (name, value) in params {
        match op.parameters.get(name) {
            // A family's template (`net[n]`) is not a parameter of its own.
            Some(schema) if schema.family.is_some() => {}
            Some(schema) => check_prop(api, Some(value), schema, &Path::Text(name), &mut errors),
            None => match op.parameter(name) {
                Some(schema) => {
                    check_prop(api, Some(value), schema, &Path::Text(name), &mut errors);
                }
                None if !op.additional_parameters => add_error(
                    &mut errors,
                    &Path::Text(name),
                    "property is not defined in schema and the schema does not allow additional properties",
                ),
                None => {}
            },
        }
    }
    // The declared parameters not given: only those whose absence can be an error.
    for (name, schema) in &op.parameters {
        if schema.family.is_none() && absence_may_fail(schema) && !params.contains_key(name) {
            check_prop(api, None, schema, &Path::Text(name), &mut errors);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Whether [`check_prop`] can add an error for a missing value of `schema`: a required
/// property, or alternatives (each decides for itself). Every other schema accepts absence.
fn absence_may_fail(schema: &Schema) -> bool {
    (schema.one_of.is_some() && schema.type_property.is_none())
        || (!schema.optional && schema.alias.is_none())
}

/// Validates a value against a schema (used for replies), returning all errors.
pub(crate) fn validate_value(api: &Api, schema: &Schema, value: &Value) -> Result<(), Errors> {
    let mut errors = Errors::new();
    check_prop(api, Some(value), schema, &Path::Root, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Where a value sits, as a chain of its parents: rendered as the validator's path (`a.b[0].c`)
/// only when an error is added there, so a valid value costs no string.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Path<'a> {
    /// The value itself (`""`; its errors are keyed `_root`).
    Root,
    /// A path given as text (a parameter name, a property string's place).
    Text(&'a str),
    /// A property of the parent.
    Key(&'a Path<'a>, &'a str),
    /// An array item of the parent.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// The validator's text: `key` at the top, `parent.key` below, `parent[index]` for items.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Path::Root => {}
            Path::Text(text) => out.push_str(text),
            Path::Key(parent, key) => {
                parent.render_into(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Path::Index(parent, index) => {
                use std::fmt::Write as _;
                parent.render_into(out);
                let _ = write!(out, "[{index}]");
            }
        }
    }
}

fn add_error(errors: &mut Errors, path: &Path<'_>, message: impl Into<String>) {
    let path = path.render();
    let path = if path.is_empty() {
        "_root".to_owned()
    } else {
        path
    };
    let message = message.into();
    errors
        .entry(path)
        .and_modify(|existing| {
            // Proxmox joins with a literal backslash-n (single-quoted '\n' in Perl).
            existing.push_str("\\n");
            existing.push_str(&message);
        })
        .or_insert(message);
}

/// Looks a property up, resolving `net3` to a `net[n]` family (route-metadata's rule, which
/// [`resolve_family`] follows without building the family's name on the heap).
pub(crate) fn resolve_property<'a>(
    properties: &'a BTreeMap<String, Schema>,
    name: &str,
) -> Option<&'a Schema> {
    properties
        .get(name)
        .or_else(|| resolve_family(properties, name))
}

/// The family a name that is not itself a property belongs to (`net3` → `net[n]`, when 3 is
/// below the family's count; no leading zeros), as `route_metadata::resolve_property` decides
/// it: a name without trailing digits, or of digits only, belongs to none.
pub(crate) fn resolve_family<'a>(
    properties: &'a BTreeMap<String, Schema>,
    name: &str,
) -> Option<&'a Schema> {
    let prefix = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let index = &name[prefix.len()..];
    if index.is_empty() || prefix.is_empty() || (index.len() > 1 && index.starts_with('0')) {
        return None;
    }
    let index: u32 = index.parse().ok()?;
    // `prefix[n]` in a buffer on the stack (family names are short).
    let mut buffer = [0u8; 64];
    let schema = match buffer.get_mut(..prefix.len() + 3) {
        Some(key) => {
            let (head, tail) = key.split_at_mut(prefix.len());
            head.copy_from_slice(prefix.as_bytes());
            tail.copy_from_slice(b"[n]");
            properties.get(std::str::from_utf8(key).ok()?)?
        }
        None => properties.get(&format!("{prefix}[n]"))?,
    };
    match &schema.family {
        Some(family) if index < family.count => Some(schema),
        _ => None,
    }
}

/// Checks an object's properties (`check_object`), also for parsed property strings.
pub(super) fn check_object(
    api: &Api,
    path: &Path<'_>,
    properties: &BTreeMap<String, Schema>,
    object: &Map<String, Value>,
    additional: bool,
    errors: &mut Errors,
) {
    for (key, schema) in properties {
        if schema.family.is_some() || key.ends_with("[n]") {
            continue;
        }
        check_prop(api, object.get(key), schema, &Path::Key(path, key), errors);
    }
    for (key, value) in object {
        if properties.contains_key(key) {
            continue;
        }
        match resolve_property(properties, key) {
            Some(schema) => check_prop(api, Some(value), schema, &Path::Key(path, key), errors),
            None if !additional => add_error(
                errors,
                &Path::Key(path, key),
                "property is not defined in schema and the schema does not allow additional properties",
            ),
            None => {}
        }
    }
}

fn check_prop(
    api: &Api,
    value: Option<&Value>,
    schema: &Schema,
    path: &Path<'_>,
    errors: &mut Errors,
) {
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
            if matches!(schema.kind(), SchemaType::Null | SchemaType::Any) {
                return;
            }
            // `check_prop`: an undefined value (JSON `null` too) is a missing one.
            if !schema.optional && schema.alias.is_none() {
                add_error(errors, path, "property is missing and it is not optional");
            }
            return;
        }
        Some(value) => value,
    };
    let view = ValueRef::of(value);
    if !check_type(path, schema.kind(), view, errors) {
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
                        &Path::Index(path, index),
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
        _ => check_scalar(api, schema, view, path, errors),
    }
}

/// A non-null JSON value as the type and scalar checks see it: the kind of a container, a
/// scalar itself. The reply check reads replies without building a [`Value`] tree
/// (`crate::upstream::stream`) and uses the same checks through this view.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ValueRef<'a> {
    Array,
    Object,
    Str(&'a str),
    Bool(bool),
    Number(&'a serde_json::Number),
}

impl<'a> ValueRef<'a> {
    /// The view of a value; `null` reads as an empty string but never gets here
    /// ([`check_prop`] handles it before the type check).
    fn of(value: &'a Value) -> Self {
        match value {
            Value::Array(_) => ValueRef::Array,
            Value::Object(_) => ValueRef::Object,
            Value::String(text) => ValueRef::Str(text),
            Value::Bool(flag) => ValueRef::Bool(*flag),
            Value::Number(number) => ValueRef::Number(number),
            Value::Null => ValueRef::Str(""),
        }
    }

    /// A scalar as Perl sees it ([`scalar_text`]). Containers have no text here: the type
    /// check refuses them before any scalar check and prints `ARRAY`/`HASH` itself.
    fn text(self) -> Cow<'a, str> {
        match self {
            ValueRef::Str(text) => Cow::Borrowed(text),
            ValueRef::Bool(true) => Cow::Borrowed("1"),
            ValueRef::Bool(false) => Cow::Borrowed("0"),
            ValueRef::Number(number) => Cow::Owned(number.to_string()),
            ValueRef::Array => Cow::Borrowed("ARRAY"),
            ValueRef::Object => Cow::Borrowed("HASH"),
        }
    }
}

/// Whether a non-null value of this kind passes `schema`'s type check and, for a scalar, its
/// scalar checks (format, property string, pattern, lengths, range, enumeration): exactly when
/// [`validate_value`] would add no error at the value itself. The caller handles `null`,
/// `oneOf` schemas and what is inside containers.
pub(crate) fn accepts(api: &Api, schema: &Schema, value: ValueRef<'_>) -> bool {
    // Nearly every value of a reply: the type matches without looking at any text, and no
    // scalar check applies (`check_type` and `check_scalar` would add nothing).
    if type_matches_plainly(schema.kind(), value)
        && (matches!(value, ValueRef::Array | ValueRef::Object) || !has_scalar_checks(schema))
    {
        return true;
    }
    let mut errors = Errors::new();
    if !check_type(&Path::Root, schema.kind(), value, &mut errors) {
        return false;
    }
    if !matches!(value, ValueRef::Array | ValueRef::Object) {
        check_scalar(api, schema, value, &Path::Root, &mut errors);
    }
    errors.is_empty()
}

/// Whether `check_type` passes a value of this kind without needing its text: only `true` where
/// it surely passes (a `false` leaves the answer to `check_type`).
fn type_matches_plainly(ty: SchemaType, value: ValueRef<'_>) -> bool {
    match ty {
        SchemaType::Any => true,
        SchemaType::Null => false,
        SchemaType::Array => matches!(value, ValueRef::Array),
        SchemaType::Object => matches!(value, ValueRef::Object),
        SchemaType::String => !matches!(value, ValueRef::Array | ValueRef::Object),
        SchemaType::Boolean => matches!(value, ValueRef::Bool(_)),
        SchemaType::Integer | SchemaType::Number => {
            matches!(value, ValueRef::Number(number) if number.is_i64() || number.is_u64())
        }
    }
}

/// Whether `check_scalar` looks at a value of this schema at all.
fn has_scalar_checks(schema: &Schema) -> bool {
    schema.property_string.is_some()
        || schema.format.is_some()
        || schema.pattern.is_some()
        || schema.max_length.is_some()
        || schema.min_length.is_some()
        || schema.maximum.is_some()
        || schema.minimum.is_some()
        || schema.enum_values.is_some()
}

/// Whether [`validate_value`] adds an error for this schema when its value is missing or
/// `null` (what `check_prop` does with an undefined value, `oneOf` included).
pub(crate) fn missing_is_error(schema: &Schema) -> bool {
    if let Some(alternatives) = &schema.one_of
        && schema.type_property.is_none()
    {
        // No alternative accepts it; with no alternatives at all there is no error to report.
        return !alternatives.is_empty() && alternatives.iter().all(missing_is_error);
    }
    !matches!(schema.kind(), SchemaType::Null | SchemaType::Any)
        && !schema.optional
        && schema.alias.is_none()
}

/// A scalar as Perl sees it: a string as is (borrowed), a boolean as `0`/`1`, a number as
/// JSON prints it.
fn scalar_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(text) => Cow::Borrowed(text),
        Value::Bool(true) => Cow::Borrowed("1"),
        Value::Bool(false) => Cow::Borrowed("0"),
        other => Cow::Owned(other.to_string()),
    }
}

/// Whether a JSON number prints as an integer (`is_integer` on its text) without printing it.
fn is_integer_number(number: &serde_json::Number) -> bool {
    number.is_i64() || number.is_u64() || is_integer(&number.to_string())
}

fn check_scalar(
    api: &Api,
    schema: &Schema,
    value: ValueRef<'_>,
    path: &Path<'_>,
    errors: &mut Errors,
) {
    // Nothing below applies: the value needs no text at all (most numbers and booleans).
    if !has_scalar_checks(schema) {
        return;
    }
    let text = value.text();
    if let Some(format) = &schema.property_string {
        if let Err(message) = parse_property_string(api, format, &text, path) {
            add_error(errors, path, format!("invalid format - {message}"));
            return;
        }
    } else if let Some(format) = &schema.format
        && let Err(message) = check_value_format(api, format, &text, path)
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
    let length = || text.chars().count() as u64;
    if let Some(max) = schema.max_length
        && length() > max
    {
        add_error(
            errors,
            path,
            format!("value may only be {max} characters long"),
        );
        return;
    }
    if let Some(min) = schema.min_length
        && length() < min
    {
        add_error(
            errors,
            path,
            format!("value must be at least {min} characters long"),
        );
        return;
    }
    // An integer converts to the same `f64` as its text parses to (both round to nearest).
    let number = match value {
        _ if schema.maximum.is_none() && schema.minimum.is_none() => None,
        ValueRef::Number(number) if number.is_i64() || number.is_u64() => number.as_f64(),
        _ if is_number(&text) => text.parse::<f64>().ok(),
        _ => None,
    };
    if let Some(number) = number {
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
fn perl_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

fn check_type(path: &Path<'_>, ty: SchemaType, value: ValueRef<'_>, errors: &mut Errors) -> bool {
    let ref_name = match value {
        ValueRef::Array => Some("ARRAY"),
        ValueRef::Object => Some("HASH"),
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
        SchemaType::Array => matches!(value, ValueRef::Array),
        SchemaType::Object => matches!(value, ValueRef::Object),
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
            ValueRef::Bool(_) => true,
            other => matches!(&*other.text(), "0" | "1"),
        },
        SchemaType::Integer => match value {
            ValueRef::Number(number) => is_integer_number(number),
            other => is_integer(&other.text()),
        },
        SchemaType::Number => match value {
            ValueRef::Number(number) if number.is_i64() || number.is_u64() => true,
            other => is_number(&other.text()),
        },
    };
    if !ok {
        let message = match (ty, ref_name) {
            (SchemaType::Array | SchemaType::Object, _) => {
                format!("type check ('{}') failed", type_name(ty))
            }
            _ => format!(
                "type check ('{}') failed - got '{}'",
                type_name(ty),
                value.text()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn check(params: Value, expect: &[(&str, &str)]) {
        let api = crate::test_api::small_api();
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
    fn families_resolve_as_route_metadata_resolves_them() {
        let api = crate::api::Api::load("latest").unwrap();
        let mut maps = 0;
        let mut families = 0;
        for op in api.meta.operations() {
            let returned = [
                op.returns.properties.as_ref(),
                op.returns
                    .items
                    .as_deref()
                    .and_then(|items| items.properties.as_ref()),
            ];
            for properties in std::iter::once(&op.parameters).chain(returned.into_iter().flatten())
            {
                maps += 1;
                let mut names: Vec<String> = vec![
                    String::new(),
                    "0".into(),
                    "12".into(),
                    "net".into(),
                    "net0".into(),
                    "net00".into(),
                    "net01".into(),
                    "net31".into(),
                    "net32".into(),
                    "net4294967296".into(),
                    "é1".into(),
                    format!("{}1", "x".repeat(80)),
                ];
                for key in properties.keys() {
                    if let Some(prefix) = key.strip_suffix("[n]") {
                        families += 1;
                        let count = properties[key].family.as_ref().map_or(0, |f| f.count);
                        for index in [0, 1, count.saturating_sub(1), count, count + 1] {
                            names.push(format!("{prefix}{index}"));
                        }
                        names.push(format!("{prefix}0{}", count.saturating_sub(1)));
                    }
                    names.push(key.clone());
                    names.push(format!("{key}7"));
                }
                for name in &names {
                    let ours = resolve_property(properties, name).map(std::ptr::from_ref);
                    let theirs =
                        route_metadata::resolve_property(properties, name).map(std::ptr::from_ref);
                    assert_eq!(ours, theirs, "{name}");
                }
            }
        }
        assert!(
            maps > 100 && families > 10,
            "{maps} maps, {families} families"
        );
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
        let api = crate::test_api::small_api();
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

    fn visit<'s>(schema: &'s Schema, out: &mut Vec<&'s Schema>) {
        out.push(schema);
        for map in [&schema.properties, &schema.property_string]
            .into_iter()
            .flatten()
        {
            for property in map.values() {
                visit(property, out);
            }
        }
        if let Some(items) = schema.items.as_deref() {
            visit(items, out);
        }
        for alternative in schema.one_of.iter().flatten() {
            visit(alternative, out);
        }
    }

    /// `missing_is_error` and `accepts` say what `check_prop` does, on every schema of every
    /// operation (parameters and replies).
    #[test]
    fn the_reply_checks_helpers_agree_with_check_prop() {
        let api = crate::api::Api::load("latest").unwrap();
        let mut schemas = Vec::new();
        for op in api.meta.operations() {
            visit(&op.returns, &mut schemas);
            for parameter in op.parameters.values() {
                visit(parameter, &mut schemas);
            }
        }
        assert!(schemas.len() > 5_000, "{}", schemas.len());
        let number = serde_json::Number::from(7);
        let float = serde_json::Number::from_f64(2.5).unwrap();
        let values = [
            json!(null),
            json!("abc"),
            json!("1"),
            json!(7),
            json!(2.5),
            json!(true),
            json!([]),
            json!({}),
            json!(""),
            json!(-3),
            json!(u64::MAX),
            json!(false),
        ];
        let negative = serde_json::Number::from(-3);
        let largest = serde_json::Number::from(u64::MAX);
        let views = [
            None,
            Some(ValueRef::Str("abc")),
            Some(ValueRef::Str("1")),
            Some(ValueRef::Number(&number)),
            Some(ValueRef::Number(&float)),
            Some(ValueRef::Bool(true)),
            Some(ValueRef::Array),
            Some(ValueRef::Object),
            Some(ValueRef::Str("")),
            Some(ValueRef::Number(&negative)),
            Some(ValueRef::Number(&largest)),
            Some(ValueRef::Bool(false)),
        ];
        let (mut missing, mut refused) = (0, 0);
        for schema in schemas {
            let mut errors = Errors::new();
            check_prop(&api, None, schema, &Path::Root, &mut errors);
            assert_eq!(missing_is_error(schema), !errors.is_empty(), "{schema:?}");
            missing += usize::from(!errors.is_empty());
            if schema.one_of.is_some() && schema.type_property.is_none() {
                continue;
            }
            for (value, view) in values.iter().zip(views) {
                let Some(view) = view else { continue };
                // Only the value itself: an empty container has nothing inside to refuse.
                let mut errors = Errors::new();
                check_prop(&api, Some(value), schema, &Path::Root, &mut errors);
                let inside_ok =
                    !matches!(value, Value::Object(_)) || !errors.keys().any(|key| key != "_root");
                if inside_ok {
                    assert_eq!(
                        accepts(&api, schema, view),
                        !errors.contains_key("_root"),
                        "{value} against {schema:?}: {errors:?}"
                    );
                }
                refused += usize::from(errors.contains_key("_root"));
            }
        }
        assert!(missing > 100 && refused > 1000, "{missing} {refused}");
    }

    #[test]
    fn perl_numbers() {
        assert_eq!(perl_number(100.0), "100");
        assert_eq!(perl_number(0.5), "0.5");
    }
}
