//! Rust models for `crates/shared-types/src/generated/`, from the latest tag's [`Registry`].
//!
//! One module per path group (`access`, `cluster`, `nodes`, `pools`, `storage`, `version`), each
//! behind the cargo feature of the same name; a component used by several groups lives in
//! `common` (always compiled), the marker types of the indexed families in `families`. Every
//! named object schema becomes one struct; every operation gets `<Op>Params` (its non-path
//! parameters) and `<Op>Response` (the `data` of its reply), as a struct or as an alias of the
//! shared struct or plain type it resolves to.
//!
//! Type mapping: string -> `String` (enums and formats in the docs), integer -> `i64`, number ->
//! `f64`, boolean -> `crate::PveBool` (0/1 and true/false), null -> `()`, untyped and `oneOf` ->
//! `serde_json::Value`, object without properties -> `serde_json::Map`, optional -> `Option`,
//! `foo[n]` -> a flattened `crate::Indexed<families::Foo, T>`. Paths are fully qualified so that
//! generated names never collide with user or prelude names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context;
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};
use route_metadata::{RouteMetadata, Schema, SchemaType};

use super::Outputs;
use super::naming;
use super::registry::{Component, Registry, request_schema, response_view};

/// Where generated Rust goes.
pub const OUT_DIR: &str = "crates/shared-types/src/generated";

/// The path groups, each a module and a cargo feature.
pub const GROUPS: &[&str] = &["access", "cluster", "nodes", "pools", "storage", "version"];

/// The module a component lives in: its group, or `common` when several groups use it.
pub fn module_of(component: &Component) -> String {
    match (component.groups.len(), component.groups.first()) {
        (1, Some(group)) => group.clone(),
        _ => "common".to_owned(),
    }
}

/// Renders every model file.
pub fn render(metadata: &RouteMetadata, registry: &Registry) -> anyhow::Result<Outputs> {
    let generator = Generator {
        registry,
        modules: registry
            .components
            .iter()
            .map(|(name, component)| (name.clone(), module_of(component)))
            .collect(),
    };
    let mut bodies: BTreeMap<String, Vec<TokenStream>> = BTreeMap::new();
    let mut families: BTreeMap<String, u32> = BTreeMap::new();
    for (name, component) in &registry.components {
        let module = module_of(component);
        bodies.entry(module).or_default().push(generator.component(
            name,
            &component.schema,
            &mut families,
        ));
    }
    for operation in &metadata.operations {
        let body = bodies.entry(operation.group.clone()).or_default();
        if let Some(request_type) = &operation.request_type {
            let request = request_schema(operation);
            if let Some(reexport) = generator.reexport(&request, request_type, &operation.group) {
                body.push(reexport);
            } else if registry.name_of(&request) != Some(request_type.as_str()) {
                let target = generator.type_of(&request);
                let ident = format_ident!("{}", request_type);
                let doc = doc_attrs(&format!(
                    "Parameters of `{} {}` (`{}`), without the path parameters.",
                    operation.method.as_str(),
                    operation.path,
                    operation.operation_id
                ));
                body.push(quote! { #doc pub type #ident = #target; });
            }
        }
        let returns = response_view(&operation.returns);
        if let Some(reexport) =
            generator.reexport(&returns, &operation.response_type, &operation.group)
        {
            body.push(reexport);
            continue;
        }
        if registry.name_of(&returns) == Some(operation.response_type.as_str()) {
            continue;
        }
        let target = generator.type_of(&returns);
        let ident = format_ident!("{}", operation.response_type);
        let mut doc = format!(
            "The `data` of the reply to `{} {}` (`{}`).",
            operation.method.as_str(),
            operation.path,
            operation.operation_id
        );
        if let Some(description) = &returns.description {
            doc.push_str("\n\n");
            doc.push_str(description);
        }
        let doc = doc_attrs(&doc);
        body.push(quote! { #doc pub type #ident = #target; });
    }

    let stamp = format!(
        " {} (tag {}, schema SHA-256 {}).",
        super::STAMP,
        metadata.tag,
        metadata.schema_sha256
    );
    let mut outputs = Outputs::new();
    let mut module_lines = Vec::new();
    for (module, items) in &bodies {
        let doc = if module == "common" {
            " Models used by more than one path group.".to_owned()
        } else {
            format!(" Models of the `/{module}` operations.")
        };
        let file = quote! {
            #![doc = #doc]
            #![doc = ""]
            #![doc = #stamp]
            #(#items)*
        };
        outputs.insert(
            PathBuf::from(OUT_DIR).join(format!("{module}.rs")),
            format_file(file, &format!("{module}.rs"))?,
        );
        let ident = format_ident!("{}", module);
        if GROUPS.contains(&module.as_str()) {
            let feature = module.as_str();
            module_lines
                .push(quote! { #[cfg(feature = #feature)] #[rustfmt::skip] pub mod #ident; });
        } else {
            module_lines.push(quote! { #[rustfmt::skip] pub mod #ident; });
        }
    }

    let markers: Vec<TokenStream> = families
        .iter()
        .map(|(prefix, count)| {
            let ident = format_ident!("{}", naming::family_marker(prefix));
            let doc = doc_attrs(&format!(
                "The `{prefix}[n]` family: `{prefix}0` to `{prefix}{}`.",
                count - 1
            ));
            quote! {
                #doc
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
                pub struct #ident;
                impl crate::FamilyName for #ident {
                    const PREFIX: &'static str = #prefix;
                    const COUNT: u32 = #count;
                }
            }
        })
        .collect();
    let families_file = quote! {
        #![doc = " Marker types of the indexed parameter families (`net[n]`, `scsi[n]`, ...)."]
        #![doc = ""]
        #![doc = #stamp]
        #(#markers)*
    };
    outputs.insert(
        PathBuf::from(OUT_DIR).join("families.rs"),
        format_file(families_file, "families.rs")?,
    );
    module_lines.push(quote! { #[rustfmt::skip] pub mod families; });

    let mod_file = quote! {
        #![doc = " Models generated from the Proxmox VE API schema, one module per path group."]
        #![doc = ""]
        #![doc = " Each group module is behind the cargo feature of the same name; `common` holds models"]
        #![doc = " that several groups share and `families` the markers of `foo[n]` parameter families."]
        #![doc = ""]
        #![doc = #stamp]
        #![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links, rustdoc::bare_urls, rustdoc::invalid_rust_codeblocks)]
        #![allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items, clippy::too_long_first_doc_paragraph, clippy::empty_docs)]
        #(#module_lines)*
    };
    outputs.insert(
        PathBuf::from(OUT_DIR).join("mod.rs"),
        format_file(mod_file, "mod.rs")?,
    );
    Ok(outputs)
}

struct Generator<'a> {
    registry: &'a Registry,
    modules: BTreeMap<String, String>,
}

impl Generator<'_> {
    /// `pub use` of a component named `name` that lives in another module than `group` (shared
    /// through `common`), so that every operation's types are reachable from its group module.
    fn reexport(&self, schema: &Schema, name: &str, group: &str) -> Option<TokenStream> {
        if self.registry.name_of(schema) != Some(name) {
            return None;
        }
        let module = self.modules.get(name)?;
        if module == group {
            return None;
        }
        let module = format_ident!("{}", module);
        let ident = format_ident!("{}", name);
        Some(quote! { pub use crate::generated::#module::#ident; })
    }

    fn component(
        &self,
        name: &str,
        schema: &Schema,
        families: &mut BTreeMap<String, u32>,
    ) -> TokenStream {
        let type_ident = format_ident!("{}", name);
        let doc = schema_doc(schema, &format!("The `{name}` model."));
        if schema.family.is_some() || schema.kind() != SchemaType::Object {
            let unfamilied = Schema {
                family: None,
                ..schema.clone()
            };
            let target = self.type_of(&unfamilied);
            return quote! { #doc pub type #type_ident = #target; };
        }
        let mut fields = Vec::new();
        let mut used = BTreeSet::new();
        for (property, property_schema) in schema.properties.iter().flatten() {
            let mut field_name = field_ident(property.trim_end_matches("[n]"));
            while !used.insert(field_name.clone()) {
                field_name.push('_');
            }
            let field = ident(&field_name);
            let field_doc = schema_doc(property_schema, &format!("The `{property}` property."));
            if let Some(family) = &property_schema.family {
                families.insert(family.prefix.clone(), family.count);
                let marker = format_ident!("{}", naming::family_marker(&family.prefix));
                let member = self.type_of(&Schema {
                    family: None,
                    optional: false,
                    ..property_schema.clone()
                });
                fields.push(quote! {
                    #field_doc
                    #[serde(flatten)]
                    pub #field: crate::Indexed<crate::generated::families::#marker, #member>,
                });
                continue;
            }
            let inner = self.type_of(property_schema);
            let rename = (field_name != *property).then(|| quote! { #[serde(rename = #property)] });
            if property_schema.optional {
                fields.push(quote! {
                    #field_doc
                    #rename
                    #[serde(default, skip_serializing_if = "::std::option::Option::is_none")]
                    pub #field: ::std::option::Option<#inner>,
                });
            } else {
                fields.push(quote! {
                    #field_doc
                    #rename
                    pub #field: #inner,
                });
            }
        }
        quote! {
            #doc
            #[derive(Debug, Clone, PartialEq, Default, ::serde::Serialize, ::serde::Deserialize)]
            pub struct #type_ident {
                #(#fields)*
            }
        }
    }

    /// The Rust type of a schema in a field or alias position.
    fn type_of(&self, schema: &Schema) -> TokenStream {
        if let Some(name) = self.registry.name_of(schema) {
            let module = format_ident!(
                "{}",
                self.modules
                    .get(name)
                    .map(String::as_str)
                    .unwrap_or("common")
            );
            let ident = format_ident!("{}", name);
            return quote! { crate::generated::#module::#ident };
        }
        if schema.one_of.is_some() {
            return quote! { ::serde_json::Value };
        }
        match schema.kind() {
            SchemaType::String => quote! { ::std::string::String },
            SchemaType::Integer => quote! { i64 },
            SchemaType::Number => quote! { f64 },
            SchemaType::Boolean => quote! { crate::PveBool },
            SchemaType::Null => quote! { () },
            SchemaType::Any => quote! { ::serde_json::Value },
            SchemaType::Array => {
                let item = schema
                    .items
                    .as_deref()
                    .map(|items| self.type_of(items))
                    .unwrap_or_else(|| quote! { ::serde_json::Value });
                quote! { ::std::vec::Vec<#item> }
            }
            SchemaType::Object => {
                quote! { ::serde_json::Map<::std::string::String, ::serde_json::Value> }
            }
        }
    }
}

/// Rust field name for a property name: snake case, valid identifier.
fn field_ident(property: &str) -> String {
    let mut out = String::with_capacity(property.len() + 1);
    let mut previous_lower = false;
    for c in property.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        } else {
            if !out.ends_with('_') {
                out.push('_');
            }
            previous_lower = false;
        }
    }
    let trimmed = out.trim_matches('_');
    let mut name = if trimmed.is_empty() {
        "value".to_owned()
    } else {
        trimmed.to_owned()
    };
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if matches!(name.as_str(), "self" | "super" | "crate" | "Self") {
        name.push('_');
    }
    name
}

/// An identifier, raw (`r#type`) when the name is a Rust keyword.
pub fn ident(name: &str) -> Ident {
    if syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, Span::call_site())
    } else {
        Ident::new_raw(name, Span::call_site())
    }
}

/// Doc text of a schema: description, then what the type does not say (format, enum, bounds,
/// default, typetext).
fn schema_doc(schema: &Schema, fallback: &str) -> TokenStream {
    let mut doc = schema
        .description
        .as_deref()
        .map(str::trim)
        .filter(|description| !description.is_empty())
        .unwrap_or(fallback)
        .to_owned();
    let mut facts = Vec::new();
    if let Some(values) = &schema.enum_values {
        let values: Vec<String> = values
            .iter()
            .map(|value| match value {
                serde_json::Value::String(text) => format!("`{text}`"),
                other => format!("`{other}`"),
            })
            .collect();
        facts.push(format!("One of {}.", values.join(", ")));
    }
    if let Some(format) = &schema.format {
        facts.push(format!("Format `{format}`."));
    }
    if schema.property_string.is_some()
        && let Some(typetext) = &schema.typetext
    {
        facts.push(format!("Property string: `{typetext}`."));
    }
    match (schema.minimum, schema.maximum) {
        (Some(min), Some(max)) => facts.push(format!("Range {min} to {max}.")),
        (Some(min), None) => facts.push(format!("Minimum {min}.")),
        (None, Some(max)) => facts.push(format!("Maximum {max}.")),
        (None, None) => {}
    }
    if let Some(default) = &schema.default {
        facts.push(format!("Default: `{default}`."));
    }
    if !facts.is_empty() {
        doc.push_str("\n\n");
        doc.push_str(&facts.join(" "));
    }
    doc_attrs(&doc)
}

/// One `#[doc]` attribute per line, each starting with a space as `///` comments do.
pub fn doc_attrs(text: &str) -> TokenStream {
    let lines = text.trim().lines().map(|line| {
        let line = line.trim_end().replace('\t', "    ");
        if line.is_empty() {
            String::new()
        } else {
            format!(" {line}")
        }
    });
    quote! { #(#[doc = #lines])* }
}

pub fn format_file(tokens: TokenStream, name: &str) -> anyhow::Result<String> {
    let file: syn::File =
        syn::parse2(tokens).with_context(|| format!("generated {name} does not parse"))?;
    Ok(prettyplease::unparse(&file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_valid_snake_case_identifiers() {
        assert_eq!(field_ident("CSRFPreventionToken"), "csrfprevention_token");
        assert_eq!(field_ident("ha-managed"), "ha_managed");
        assert_eq!(field_ident("type"), "type");
        assert_eq!(field_ident("1"), "_1");
        assert_eq!(field_ident("self"), "self_");
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("vmid").to_string(), "vmid");
    }
}
