//! `pvectl usage PATH`: what pvesh's `usage` prints (`RESTHandler::getopt_usage`): one
//! `USAGE:` line per verb, and with `--verbose` every parameter with its type text, default and
//! description, then what the call returns; `--returns` adds the reply schema as JSON.

use std::fmt::Write as _;

use route_metadata::{Method, Operation, Schema, SchemaType};
use serde_json::Value;

use crate::error::usage_error;
use crate::schema::{Api, reply_schema};

/// The verbs and their methods, in pvesh's order.
pub const VERBS: [(&str, Method); 4] = [
    ("get", Method::Get),
    ("set", Method::Put),
    ("create", Method::Post),
    ("delete", Method::Delete),
];

/// Renders the usage of `path` (for one verb if `command` is given).
pub fn render(
    api: &Api,
    path: &str,
    command: Option<&str>,
    verbose: bool,
    returns: bool,
) -> anyhow::Result<String> {
    let resolved = api.resolve(path)?;
    let mut out = String::new();
    let mut found = false;
    for (verb, method) in VERBS {
        if command.is_some_and(|wanted| wanted != verb) {
            continue;
        }
        let Some(operation) = api.operation(&resolved.template, method) else {
            continue;
        };
        let operation = &operation;
        found = true;
        let doc = api.openapi_operation(&resolved.template, method);
        let shown_path = crate::schema::normalize_path(path);
        let required = required_options(operation);
        let has_optional = operation.parameters.iter().any(|(name, schema)| {
            is_option(operation, name) && (schema.optional || schema.family.is_some())
        });
        let mut line = format!("pvectl {verb} {shown_path}{required}");
        if has_optional {
            line.push_str(" [OPTIONS]");
        }
        if verbose {
            let _ = writeln!(out, "USAGE: {line}\n");
            if let Some(description) = operation.description.as_deref() {
                let _ = writeln!(out, "{}\n", wrap(description.trim(), "  ", "  "));
            }
            for (name, schema) in &operation.parameters {
                if !is_option(operation, name) {
                    continue;
                }
                out.push_str(&describe(name, schema, doc.as_ref()));
            }
            let _ = writeln!(out, "RETURNS: {}\n", summarize(&operation.returns));
        } else {
            let _ = writeln!(out, "USAGE: {line}");
        }
        if returns {
            let schema = doc
                .as_ref()
                .and_then(reply_schema)
                .cloned()
                .or_else(|| serde_json::to_value(&operation.returns).ok())
                .unwrap_or(Value::Null);
            let pretty = serde_json::to_string_pretty(&crate::output::canonical(&schema))
                .unwrap_or_default();
            let _ = writeln!(out, "RETURNS: {pretty}");
        }
    }
    if !found {
        return Err(match command {
            Some(verb) => usage_error(format!("no '{verb}' handler for '{}'", resolved.template)),
            None => usage_error(format!("no such resource '{path}'")),
        });
    }
    Ok(out)
}

/// Whether `name` is given as an option (not a path parameter).
pub fn is_option(operation: &Operation, name: &str) -> bool {
    !operation.path_params.iter().any(|param| param == name)
}

/// ` --vmid <integer>` for every required option.
fn required_options(operation: &Operation) -> String {
    let mut text = String::new();
    for (name, schema) in &operation.parameters {
        if is_option(operation, name) && !schema.optional && schema.family.is_none() {
            let _ = write!(text, " --{name} {}", type_text(schema));
        }
    }
    text
}

/// `schema_get_type_text`: the schema's own type text, else one made from the type and bounds.
pub fn type_text(schema: &Schema) -> String {
    if let Some(text) = &schema.typetext {
        return text.clone();
    }
    if let Some(values) = &schema.enum_values {
        let names: Vec<String> = values
            .iter()
            .map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect();
        return format!("<{}>", names.join(" | "));
    }
    let kind = match schema.kind() {
        SchemaType::Integer => "integer",
        SchemaType::Number => "number",
        SchemaType::Boolean => "boolean",
        SchemaType::Array => "array",
        SchemaType::Object => "object",
        _ => "string",
    };
    match (schema.minimum, schema.maximum) {
        (Some(min), Some(max)) => format!("<{kind}> ({min} - {max})"),
        (Some(min), None) => format!("<{kind}> ({min} - N)"),
        (None, Some(max)) => format!("<{kind}> (-N - {max})"),
        (None, None) => format!("<{kind}>"),
    }
}

/// One option in pvesh's `full` format: name, type text and default, then the description.
fn describe(name: &str, schema: &Schema, doc: Option<&Value>) -> String {
    let default = schema
        .default
        .as_ref()
        .map(|value| match value {
            Value::String(text) => format!("   (default={text})"),
            Value::Bool(flag) => format!("   (default={})", u8::from(*flag)),
            other => format!("   (default={other})"),
        })
        .unwrap_or_default();
    let head = format!(
        "  {:<10} {}{default}",
        format!("--{name}"),
        type_text(schema)
    );
    let description = doc
        .and_then(|doc| parameter_description(doc, name))
        .unwrap_or_else(|| "no description available".to_owned());
    let indent = " ".repeat(13);
    format!(
        "{}\n{}\n\n",
        wrap(&head, "", &indent),
        wrap(description.trim(), &indent, &indent)
    )
}

/// A parameter's description from the OpenAPI operation (path/query parameters or body).
fn parameter_description(doc: &Value, name: &str) -> Option<String> {
    let from_list = doc
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|param| param.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|param| param.get("description"))
        .and_then(Value::as_str);
    let from_body = || {
        doc.pointer("/requestBody/content/application~1json/schema/properties")?
            .get(name)?
            .get("description")?
            .as_str()
    };
    from_list.or_else(from_body).map(str::to_owned)
}

/// A one-line description of a reply schema.
pub fn summarize(schema: &Schema) -> String {
    match schema.kind() {
        SchemaType::Null => "nothing".to_owned(),
        SchemaType::Array => {
            let items = schema.items.as_deref();
            match items.and_then(|items| items.properties.as_ref()) {
                Some(properties) if !properties.is_empty() => {
                    let names: Vec<&str> = properties.keys().map(String::as_str).collect();
                    format!("array of objects ({})", names.join(", "))
                }
                _ => format!(
                    "array of {}",
                    items.map_or_else(|| "values".to_owned(), type_text)
                ),
            }
        }
        SchemaType::Object => match &schema.properties {
            Some(properties) if !properties.is_empty() => {
                let names: Vec<&str> = properties.keys().map(String::as_str).collect();
                format!("object ({})", names.join(", "))
            }
            _ => "object".to_owned(),
        },
        SchemaType::String
            if schema
                .pattern
                .as_deref()
                .is_some_and(|p| p.contains("UPID")) =>
        {
            "<string> (a task id: UPID)".to_owned()
        }
        _ => type_text(schema),
    }
}

/// Wraps at 79 columns like `Text::Wrap`: `first` before the first line, `rest` before others.
fn wrap(text: &str, first: &str, rest: &str) -> String {
    const WIDTH: usize = 79;
    let mut out = String::new();
    let mut line = first.to_owned();
    let mut line_has_word = false;
    for word in text.split_whitespace() {
        if line_has_word && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = rest.to_owned();
            line_has_word = false;
        }
        if line_has_word {
            line.push(' ');
        }
        line.push_str(word);
        line_has_word = true;
    }
    out.push_str(&line);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_verbose() {
        let api = Api::load("9.1").expect("embedded tag");
        let short = render(&api, "/nodes/pve1/qemu", Some("create"), false, false).expect("usage");
        assert!(
            short.starts_with(
                "USAGE: pvectl create /nodes/pve1/qemu --vmid <integer> (100 - 999999999) [OPTIONS]"
            ),
            "{short}"
        );
        let verbose = render(&api, "/nodes/pve1/qemu", Some("create"), true, false).expect("usage");
        assert!(verbose.contains("--memory"), "{verbose}");
        assert!(verbose.contains("RETURNS:"), "{verbose}");
        assert!(render(&api, "/version", Some("delete"), false, false).is_err());
    }
}
