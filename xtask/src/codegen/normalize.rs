//! Normalisation of Proxmox's schema dialect into [`route_metadata::Schema`].
//!
//! `apidata.js` is written by Perl and it shows: numbers arrive as strings, boolean defaults as
//! `0`/`1`/`"yes"`, some defaults are prose, patterns use Perl-only syntax, integer enums are
//! strings. Every such case is handled here, once, so that both the OpenAPI document and the
//! route metadata are built from the same clean [`Schema`]:
//!
//! - bounds (`minimum`, `maximum`, `minLength`, `maxLength`) given as strings are parsed;
//! - booleans defaults `0`/`1`/`"1"`/`"yes"`/`"off"`/... become `true`/`false`;
//! - defaults that are prose, `null`, or violate their own enum/bounds/pattern are dropped and the
//!   reason is recorded in [`Schema::dropped`] (so `x-proxmox-dropped` in OpenAPI);
//! - patterns are translated from Perl to Rust `regex` syntax ([`translate_pattern`]) and must
//!   compile, else they are dropped with a reason;
//! - integer enums given as strings become numbers;
//! - `foo[n]` properties get a [`Family`] with the family size from [`FAMILY_SIZES`];
//! - keys without a place in [`Schema`] (`renderer`, `links`, `requires`, `title`, ...) are kept
//!   verbatim in [`Schema::extensions`] for the OpenAPI document.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use route_metadata::{Family, Schema, SchemaType};
use serde_json::{Map, Value};

/// Sizes of the indexed parameter families (`net[n]` -> `net0`..`net31`).
///
/// The schema names the families but not their sizes (only some descriptions say "n is 0 to 30"),
/// so the sizes come from Proxmox's sources: qemu-server (`MAX_NETS`, `MAX_UNUSED_DISKS`,
/// `MAX_HOSTPCI_DEVICES`, `MAX_SERIAL_PORTS`, `MAX_PARALLEL_PORTS`, `MAX_NUMA`, `MAX_USB_DEVICES`,
/// the drive bus limits, `MAX_VIRTIOFS`), pve-container (`MAX_LXC_NETWORKS`, `MAX_MOUNT_POINTS`,
/// `MAX_UNUSED_DISKS`, `MAX_DEVICES`), pve-cluster (corosync `link0`..`link7`) and pve-manager
/// (`MAX_ACME_DOMAINS`). An unknown family fails the run so that a new one is added here
/// deliberately.
pub const FAMILY_SIZES: &[(&str, u32)] = &[
    ("acmedomain", 5),
    ("dev", 256),
    ("hostpci", 16),
    ("ide", 4),
    ("ipconfig", 32),
    ("link", 8),
    ("mp", 256),
    ("net", 32),
    ("numa", 8),
    ("parallel", 3),
    ("sata", 6),
    ("scsi", 31),
    ("serial", 4),
    ("unused", 256),
    ("usb", 14),
    ("virtio", 16),
    ("virtiofs", 10),
];

/// Keys of the source dialect that map onto [`Schema`] fields.
const KNOWN_KEYS: &[&str] = &[
    "type",
    "optional",
    "description",
    "format",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "default",
    "items",
    "properties",
    "additionalProperties",
    "typetext",
    "default_key",
    "alias",
    "keyAlias",
    "oneOf",
    "type-property",
    "instance-types",
];

/// Normalises one schema value. `at` names the place in the tree for error messages.
pub fn normalize(value: &Value, at: &str) -> anyhow::Result<Schema> {
    let Some(object) = value.as_object() else {
        bail!("{at}: expected a schema object, found {}", kind_of(value));
    };
    let mut schema = Schema {
        ty: parse_type(object, at)?,
        optional: object.get("optional").map(truthy).unwrap_or(false),
        description: object
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        typetext: object
            .get("typetext")
            .and_then(Value::as_str)
            .map(str::to_owned),
        default_key: object.get("default_key").map(truthy).unwrap_or(false),
        alias: object
            .get("alias")
            .and_then(Value::as_str)
            .map(str::to_owned),
        key_alias: object
            .get("keyAlias")
            .and_then(Value::as_str)
            .map(str::to_owned),
        type_property: object
            .get("type-property")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Schema::default()
    };

    for (key, field) in [
        ("minimum", &mut schema.minimum),
        ("maximum", &mut schema.maximum),
    ] {
        if let Some(raw) = object.get(key) {
            *field = Some(parse_number(raw).with_context(|| format!("{at}: bad `{key}`"))?);
        }
    }
    for (key, field) in [
        ("minLength", &mut schema.min_length),
        ("maxLength", &mut schema.max_length),
    ] {
        if let Some(raw) = object.get(key) {
            let number = parse_number(raw).with_context(|| format!("{at}: bad `{key}`"))?;
            if number < 0.0 || number.fract() != 0.0 {
                bail!("{at}: `{key}` must be a non-negative integer, found {raw}");
            }
            *field = Some(number as u64);
        }
    }

    match object.get("format") {
        None => {}
        Some(Value::String(name)) => schema.format = Some(name.clone()),
        Some(Value::Object(members)) => {
            let mut property_string = BTreeMap::new();
            for (key, member) in members {
                property_string.insert(
                    key.clone(),
                    normalize(member, &format!("{at}.format.{key}"))?,
                );
            }
            schema.property_string = Some(property_string);
        }
        Some(other) => bail!(
            "{at}: `format` must be a name or an object, found {}",
            kind_of(other)
        ),
    }

    if object.get("enum").is_some_and(Value::is_null) {
        schema
            .dropped
            .insert("enum".to_owned(), "enum is null in the source".to_owned());
    }
    if let Some(raw) = object.get("enum").filter(|raw| !raw.is_null()) {
        let Some(values) = raw.as_array() else {
            bail!("{at}: `enum` must be an array, found {}", kind_of(raw));
        };
        let mut converted = Vec::with_capacity(values.len());
        for value in values {
            converted.push(match schema.ty {
                Some(SchemaType::Integer | SchemaType::Number) => Value::from(
                    parse_number(value).with_context(|| format!("{at}: bad enum value"))?,
                ),
                _ => match value {
                    Value::String(_) => value.clone(),
                    other => Value::String(scalar_text(other)),
                },
            });
        }
        if schema.ty == Some(SchemaType::Integer) {
            converted = converted.into_iter().map(integral).collect();
        }
        schema.enum_values = Some(converted);
    }

    if let Some(raw) = object.get("pattern") {
        let Some(source) = raw.as_str() else {
            bail!("{at}: `pattern` must be a string, found {}", kind_of(raw));
        };
        let translated = translate_pattern(source);
        match compile_pattern(&translated) {
            Ok(_) => {
                if translated != source {
                    schema
                        .extensions
                        .insert("pattern-perl".to_owned(), Value::String(source.to_owned()));
                }
                schema.pattern = Some(translated);
            }
            Err(error) => {
                schema.dropped.insert(
                    "pattern".to_owned(),
                    format!("Perl pattern {source:?} has no Rust regex equivalent: {error}"),
                );
            }
        }
    }

    if let Some(items) = object.get("items") {
        schema.items = Some(Box::new(normalize(items, &format!("{at}.items"))?));
    }
    if let Some(Value::Object(properties)) = object.get("properties") {
        let mut normalized = BTreeMap::new();
        for (name, property) in properties {
            let mut property_schema = normalize(property, &format!("{at}.{name}"))?;
            if let Some(prefix) = name.strip_suffix("[n]") {
                let Some((_, count)) = FAMILY_SIZES.iter().find(|(known, _)| *known == prefix)
                else {
                    bail!(
                        "{at}: unknown indexed family `{name}`: add its size to FAMILY_SIZES in xtask/src/codegen/normalize.rs"
                    );
                };
                property_schema.family = Some(Family {
                    prefix: prefix.to_owned(),
                    count: *count,
                });
            }
            normalized.insert(name.clone(), property_schema);
        }
        schema.properties = Some(normalized);
    }
    match object.get("additionalProperties") {
        None => {}
        Some(Value::Object(_)) => {
            schema.additional_properties = true;
            schema.extensions.insert(
                "additionalProperties".to_owned(),
                object
                    .get("additionalProperties")
                    .cloned()
                    .unwrap_or(Value::Null),
            );
        }
        Some(flag) => schema.additional_properties = truthy(flag),
    }
    if let Some(Value::Array(alternatives)) = object.get("oneOf") {
        let mut normalized = Vec::with_capacity(alternatives.len());
        for (index, alternative) in alternatives.iter().enumerate() {
            normalized.push(normalize(alternative, &format!("{at}.oneOf[{index}]"))?);
        }
        schema.one_of = Some(normalized);
    }
    if let Some(Value::Array(types)) = object.get("instance-types") {
        schema.instance_types = Some(types.iter().map(scalar_text).collect());
    }

    if let Some(raw) = object.get("default") {
        normalize_default(&mut schema, raw);
    }

    for (key, value) in object {
        if !KNOWN_KEYS.contains(&key.as_str()) {
            schema.extensions.insert(key.clone(), value.clone());
        }
    }
    Ok(schema)
}

/// Translates a Perl regular expression into Rust `regex` syntax.
///
/// - `(?^:...)` / `(?^i:...)` (Perl's "default flags" groups, produced by `qr//` interpolation)
///   become `(?:...)` / `(?i:...)`;
/// - `(?>...)` (atomic group) becomes `(?:...)`: `regex` never backtracks, so the matched language
///   is the same for the patterns in the schema;
/// - `{,n}` (Perl 5.34+ shorthand for `{0,n}`) becomes `{0,n}`;
/// - `\0` becomes `\x00`.
pub fn translate_pattern(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let bytes = source.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let rest = &source[index..];
        if let Some(escaped) = rest.strip_prefix('\\') {
            let next = escaped.chars().next();
            match next {
                Some('0') if !escaped[1..].starts_with(|c: char| c.is_ascii_digit()) => {
                    out.push_str("\\x00");
                    index += 2;
                }
                Some(c) => {
                    out.push('\\');
                    out.push(c);
                    index += 1 + c.len_utf8();
                }
                None => {
                    out.push('\\');
                    index += 1;
                }
            }
        } else if let Some(after) = rest.strip_prefix("(?^") {
            // `(?^:` or `(?^flags:`
            out.push_str("(?");
            index += 3;
            let flags: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            out.push_str(&flags);
            index += flags.len();
        } else if rest.starts_with("(?>") {
            out.push_str("(?:");
            index += 3;
        } else if rest.starts_with("{,") {
            out.push_str("{0,");
            index += 2;
        } else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            index += c.len_utf8().max(1);
        }
    }
    out
}

/// Compiles a translated pattern the way consumers must: anchored, and with a size limit of
/// [`route_metadata::PATTERN_SIZE_LIMIT`] (Unicode classes under a `{0,256}` repetition exceed the
/// `regex` default of 10 MiB).
pub fn compile_pattern(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(route_metadata::PATTERN_SIZE_LIMIT)
        .build()
}

fn normalize_default(schema: &mut Schema, raw: &Value) {
    let drop = |schema: &mut Schema, reason: String| {
        schema.dropped.insert("default".to_owned(), reason);
    };
    let converted = match (schema.kind(), raw) {
        (_, Value::Null) => {
            drop(schema, "default is null".to_owned());
            return;
        }
        (SchemaType::Boolean, value) => match parse_bool(value) {
            Some(flag) => Value::Bool(flag),
            None => {
                drop(schema, format!("boolean default is prose: {value}"));
                schema
                    .extensions
                    .insert("default-text".to_owned(), Value::String(scalar_text(value)));
                return;
            }
        },
        (SchemaType::Integer, value) => match parse_number(value) {
            Ok(number) if number.fract() == 0.0 => integral(Value::from(number)),
            _ => {
                drop(schema, format!("integer default is prose: {value}"));
                schema
                    .extensions
                    .insert("default-text".to_owned(), Value::String(scalar_text(value)));
                return;
            }
        },
        (SchemaType::Number, value) => match parse_number(value) {
            Ok(number) => Value::from(number),
            Err(_) => {
                drop(schema, format!("number default is prose: {value}"));
                schema
                    .extensions
                    .insert("default-text".to_owned(), Value::String(scalar_text(value)));
                return;
            }
        },
        (SchemaType::String, Value::String(_)) => raw.clone(),
        (SchemaType::String, other) => Value::String(scalar_text(other)),
        (_, other) => other.clone(),
    };
    if let Some(reason) = default_violation(schema, &converted) {
        drop(
            schema,
            format!("default {converted} violates its own schema: {reason}"),
        );
        return;
    }
    schema.default = Some(converted);
}

/// Checks a default against the schema's own enum, bounds and pattern.
fn default_violation(schema: &Schema, value: &Value) -> Option<String> {
    if let Some(values) = &schema.enum_values
        && !values.contains(value)
    {
        return Some("not one of the enum values".to_owned());
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema.minimum
            && number < minimum
        {
            return Some(format!("below the minimum {minimum}"));
        }
        if let Some(maximum) = schema.maximum
            && number > maximum
        {
            return Some(format!("above the maximum {maximum}"));
        }
    }
    if let (Some(pattern), Some(text)) = (&schema.pattern, value.as_str())
        && let Ok(regex) = compile_pattern(pattern)
        && !regex.is_match(text)
    {
        return Some("does not match the pattern".to_owned());
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if schema.max_length.is_some_and(|max| length > max) {
            return Some("longer than maxLength".to_owned());
        }
        if schema.min_length.is_some_and(|min| length < min) {
            return Some("shorter than minLength".to_owned());
        }
    }
    None
}

fn parse_type(object: &Map<String, Value>, at: &str) -> anyhow::Result<Option<SchemaType>> {
    let Some(raw) = object.get("type") else {
        return Ok(None);
    };
    let Some(name) = raw.as_str() else {
        bail!("{at}: `type` must be a string, found {}", kind_of(raw));
    };
    Ok(Some(match name {
        "string" => SchemaType::String,
        "integer" => SchemaType::Integer,
        "number" => SchemaType::Number,
        "boolean" => SchemaType::Boolean,
        "object" => SchemaType::Object,
        "array" => SchemaType::Array,
        "null" => SchemaType::Null,
        "any" => SchemaType::Any,
        other => bail!("{at}: unknown type `{other}`"),
    }))
}

/// Parses a number given as a JSON number or a numeric string.
fn parse_number(value: &Value) -> anyhow::Result<f64> {
    match value {
        Value::Number(number) => number.as_f64().context("number out of range"),
        Value::String(text) => text
            .trim()
            .parse::<f64>()
            .with_context(|| format!("not a number: {text:?}")),
        other => bail!("expected a number, found {}", kind_of(other)),
    }
}

/// Proxmox's boolean spellings (pve-common `JSONSchema.pm`, `parse_boolean`).
fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => match number.as_f64() {
            Some(0.0) => Some(false),
            Some(1.0) => Some(true),
            _ => None,
        },
        Value::String(text) => match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Some(true),
            "0" | "false" | "no" | "off" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn truthy(value: &Value) -> bool {
    parse_bool(value).unwrap_or(false)
}

/// Turns a float that holds an integer back into an integer JSON number.
fn integral(value: Value) -> Value {
    match value.as_f64() {
        Some(number) if number.fract() == 0.0 && number.abs() < 9.0e15 => {
            Value::from(number as i64)
        }
        _ => value,
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(source: Value) -> Schema {
        normalize(&source, "test").expect("normalises")
    }

    #[test]
    fn string_bounds_become_numbers() {
        let schema = check(json!({"type": "integer", "minimum": "0", "maximum": "16777216"}));
        assert_eq!(schema.minimum, Some(0.0));
        assert_eq!(schema.maximum, Some(16_777_216.0));
    }

    #[test]
    fn boolean_defaults_become_booleans() {
        for (raw, expected) in [
            (json!(0), false),
            (json!(1), true),
            (json!("1"), true),
            (json!("0"), false),
            (json!("yes"), true),
            (json!("off"), false),
            (json!("false"), false),
        ] {
            let schema = check(json!({"type": "boolean", "default": raw}));
            assert_eq!(schema.default, Some(Value::Bool(expected)), "{raw}");
        }
    }

    #[test]
    fn prose_defaults_are_dropped_with_a_reason() {
        let schema =
            check(json!({"type": "integer", "default": "cgroup v1: 1024, cgroup v2: 100"}));
        assert_eq!(schema.default, None);
        assert!(schema.dropped["default"].contains("prose"));
        assert_eq!(
            schema.extensions["default-text"],
            json!("cgroup v1: 1024, cgroup v2: 100")
        );
        let schema = check(json!({"type": "boolean", "default": "0; for erasure coded pools: 1"}));
        assert_eq!(schema.default, None);
        assert!(schema.dropped.contains_key("default"));
    }

    #[test]
    fn numeric_string_defaults_are_converted() {
        let schema = check(json!({"type": "integer", "default": "16777216"}));
        assert_eq!(schema.default, Some(json!(16_777_216)));
    }

    #[test]
    fn null_defaults_are_dropped() {
        let schema = check(json!({"type": "string", "default": null}));
        assert_eq!(schema.default, None);
        assert_eq!(schema.dropped["default"], "default is null");
    }

    #[test]
    fn defaults_violating_their_schema_are_dropped() {
        let schema = check(json!({"type": "string", "enum": ["a", "b"], "default": "c"}));
        assert_eq!(schema.default, None);
        assert!(schema.dropped["default"].contains("enum"));
        let schema = check(json!({"type": "integer", "minimum": 1, "default": 0}));
        assert!(schema.dropped["default"].contains("minimum"));
        let schema = check(json!({"type": "string", "pattern": "[a-z]+", "default": "ABC"}));
        assert!(schema.dropped["default"].contains("pattern"));
    }

    #[test]
    fn integer_enums_given_as_strings_become_numbers() {
        let schema = check(json!({"type": "integer", "enum": ["1", "2", "4"]}));
        assert_eq!(schema.enum_values, Some(vec![json!(1), json!(2), json!(4)]));
    }

    #[test]
    fn perl_patterns_are_translated_and_compile() {
        for (perl, rust) in [
            ("(?^:^[0-9A-Fa-f]{4}$)", "(?:^[0-9A-Fa-f]{4}$)"),
            ("(?^i:[a-z0-9_]*)", "(?i:[a-z0-9_]*)"),
            ("(?^:^((?>[+-]?[\\w]+,?)+)$)", "(?:^((?:[+-]?[\\w]+,?)+)$)"),
            ("[A-Za-z0-9\\-_\\s]{,16}", "[A-Za-z0-9\\-_\\s]{0,16}"),
            ("(?:\\w+=x)(?:\\0\\w+=x)*", "(?:\\w+=x)(?:\\x00\\w+=x)*"),
            ("\\d{1,2}:\\d{1,2}", "\\d{1,2}:\\d{1,2}"),
        ] {
            assert_eq!(translate_pattern(perl), rust, "{perl}");
            regex::Regex::new(rust).expect("compiles");
        }
        let schema = check(json!({"type": "string", "pattern": "(?^i:[a-z]+)"}));
        assert_eq!(schema.pattern.as_deref(), Some("(?i:[a-z]+)"));
        assert_eq!(schema.extensions["pattern-perl"], json!("(?^i:[a-z]+)"));
    }

    #[test]
    fn families_get_their_size_and_unknown_families_fail() {
        let schema = check(json!({
            "type": "object",
            "properties": {"net[n]": {"type": "string", "optional": 1}}
        }));
        let family = schema
            .properties
            .as_ref()
            .and_then(|p| p["net[n]"].family.clone());
        assert_eq!(family.map(|f| f.count), Some(32));
        let error = normalize(
            &json!({"type": "object", "properties": {"bogus[n]": {"type": "string"}}}),
            "/x POST",
        )
        .expect_err("unknown family");
        assert!(error.to_string().contains("bogus[n]"));
    }

    #[test]
    fn nested_optional_and_additional_properties_are_normalised() {
        let schema = check(json!({
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": 0,
                "properties": {"a": {"type": "string", "optional": 1}, "b": {"type": "integer"}}
            }
        }));
        let items = schema.items.expect("items");
        assert!(!items.additional_properties);
        let properties = items.properties.expect("properties");
        assert!(properties["a"].optional);
        assert!(!properties["b"].optional);
    }

    #[test]
    fn property_string_formats_are_kept_as_sub_schemas() {
        let schema = check(json!({
            "type": "string",
            "format": {
                "model": {"type": "string", "default_key": 1, "enum": ["virtio", "e1000"]},
                "virtio": {"alias": "macaddr", "keyAlias": "model"},
                "firewall": {"type": "boolean", "optional": 1}
            }
        }));
        let members = schema.property_string.expect("property string");
        assert!(members["model"].default_key);
        assert_eq!(members["virtio"].key_alias.as_deref(), Some("model"));
        assert_eq!(members["virtio"].alias.as_deref(), Some("macaddr"));
    }

    #[test]
    fn bad_input_names_the_place() {
        let error = normalize(&json!({"type": 5}), "/nodes GET returns").expect_err("bad type");
        assert!(error.to_string().contains("/nodes GET returns"));
        let error =
            normalize(&json!({"type": "integer", "minimum": "abc"}), "/x").expect_err("bad");
        assert!(format!("{error:#}").contains("abc"));
    }
}
