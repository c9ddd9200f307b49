//! Rust models for `crates/shared-types/src/generated/`, from the latest tag's [`Registry`].
//!
//! One module per path group (`access`, `cluster`, `nodes`, `pools`, `storage`, `version`), each
//! behind the cargo feature of the same name; a component used by several groups lives in
//! `common` (always compiled), the marker types of the indexed families in `families`. Every
//! named object schema becomes one struct; every operation gets `<Op>Params` (its non-path
//! parameters) and `<Op>Response` (the `data` of its reply), as a struct or as an alias of the
//! shared struct or plain type it resolves to.
//!
//! Type mapping: string -> `String` (formats in the docs), string with `enum` -> a generated enum
//! with an `Other(String)` fallback, property string -> a generated `...Config` struct (both named
//! by [`super::catalog`]; formats Proxmox registers by name are expanded first by
//! [`super::named_formats`]), `pve-startup-order` -> `crate::StartupOrder`, integer -> `i64` (`u32` for a `vmid` or a `pve-vmid`), number -> `f64`,
//! boolean -> `crate::PveBool` (0/1 and true/false), null -> `()`, untyped and `oneOf` ->
//! `serde_json::Value`, object without properties -> `serde_json::Map`, optional -> `Option`,
//! `foo[n]` -> a `crate::Indexed<families::Foo, T>` field. Paths are fully qualified so that
//! generated names never collide with user or prelude names.
//!
//! Serde impls are generated, not derived: serde's derive output was most of `shared-types`'
//! compile time. `Serialize` writes a map of the set fields through `crate::ser`; a reply model's
//! `Deserialize` is one loop over the keys through `crate::de` ([`MapReader`]). Numbers are read
//! leniently (`crate::de::lenient`), so `"102"` and `"0.00"` decode as Proxmox's Perl side sends
//! them. Parameter structs (`<Op>Params`) are only sent, so they implement `Serialize` and not
//! `Deserialize`, a direction the SDK never uses. A struct derives `Default` unless a required field has no
//! default (an enum, or a format or struct with required keys). A parameter struct with a
//! required field never derives `Default` (`..Default::default()` would send `vmid=0`): it gets
//! `new(required...)`, and its optional fields are set with struct update syntax
//! (`NodesQemuCreateParams { cores: Some(2), ..NodesQemuCreateParams::new(100) }`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context;
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};
use route_metadata::{RouteMetadata, Schema, SchemaType};

use super::Outputs;
use super::catalog::{self, Catalog};
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

/// The module of a format or enum used by these path groups.
fn module_of_groups(groups: &BTreeSet<String>) -> String {
    match (groups.len(), groups.first()) {
        (1, Some(group)) => group.clone(),
        _ => "common".to_owned(),
    }
}

/// Renders every model file. Also returns, for every reply type that is an alias
/// (`pub type NodesIndexResponse = Vec<...>`), the type it stands for as the SDK names it
/// (`::std::vec::Vec<shared_types::nodes::NodesIndexResponseItem>`), aliases inside resolved too,
/// so that the typed API's signatures show named types.
pub fn render(
    metadata: &RouteMetadata,
    registry: &Registry,
) -> anyhow::Result<(Outputs, BTreeMap<String, String>)> {
    let catalog = Catalog::build(metadata, registry);
    let mut modules: BTreeMap<String, String> = registry
        .components
        .iter()
        .map(|(name, component)| (name.clone(), module_of(component)))
        .collect();
    for (name, format) in &catalog.formats {
        modules.insert(name.clone(), module_of_groups(&format.groups));
    }
    for (name, enum_def) in &catalog.enums {
        modules.insert(name.clone(), module_of_groups(&enum_def.groups));
    }
    let request_types: BTreeSet<String> = metadata
        .operations
        .iter()
        .filter_map(|operation| operation.request_type.clone())
        .collect();
    let generator = Generator {
        registry,
        catalog: &catalog,
        modules,
        request_types,
        defaults: std::cell::RefCell::new(BTreeMap::new()),
    };
    let mut bodies: BTreeMap<String, Vec<TokenStream>> = BTreeMap::new();
    let mut families: BTreeMap<String, u32> = BTreeMap::new();
    // Alias name -> the tokens of its target, as written in shared-types.
    let mut alias_targets: BTreeMap<String, String> = BTreeMap::new();
    for (name, component) in &registry.components {
        let schema = &component.schema;
        if schema.family.is_some() || schema.kind() != SchemaType::Object {
            let unfamilied = Schema {
                family: None,
                ..schema.clone()
            };
            alias_targets.insert(name.clone(), generator.type_of(&unfamilied, "").to_string());
        }
    }
    for (name, format) in &catalog.formats {
        bodies
            .entry(module_of_groups(&format.groups))
            .or_default()
            .push(generator.format(name, format));
    }
    for (name, enum_def) in &catalog.enums {
        bodies
            .entry(module_of_groups(&enum_def.groups))
            .or_default()
            .push(enum_tokens(name, enum_def));
    }
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
                let target = generator.type_of(&request, "");
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
        let target = generator.type_of(&returns, "");
        alias_targets.insert(operation.response_type.clone(), target.to_string());
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
    let response_targets = metadata
        .operations
        .iter()
        .filter_map(|operation| {
            let target = alias_targets.get(&operation.response_type)?;
            Some((
                operation.response_type.clone(),
                resolve_aliases(target, &alias_targets),
            ))
        })
        .collect();
    Ok((outputs, response_targets))
}

/// `target` (tokens of a shared-types type) with every alias in it replaced by what it stands
/// for, and `crate::generated::<module>::` written as the SDK reaches it (`shared_types::<module>::`).
fn resolve_aliases(target: &str, aliases: &BTreeMap<String, String>) -> String {
    let mut tokens: Vec<String> = target.split_whitespace().map(str::to_owned).collect();
    // Aliases nest only a few levels deep; the bound keeps a cycle from looping.
    for _ in 0..8 {
        let mut changed = false;
        let mut out: Vec<String> = Vec::with_capacity(tokens.len());
        let mut index = 0;
        while index < tokens.len() {
            let is_generated_path = tokens.get(index).is_some_and(|t| t == "crate")
                && tokens.get(index + 2).is_some_and(|t| t == "generated")
                && tokens.get(index + 6).is_some();
            if is_generated_path && let Some(target) = aliases.get(&tokens[index + 6]) {
                out.extend(target.split_whitespace().map(str::to_owned));
                index += 7;
                changed = true;
                continue;
            }
            out.push(tokens[index].clone());
            index += 1;
        }
        tokens = out;
        if !changed {
            break;
        }
    }
    tokens
        .join(" ")
        .replace("crate :: generated ::", "shared_types ::")
        .replace("crate ::", "shared_types ::")
}

struct Generator<'a> {
    registry: &'a Registry,
    catalog: &'a Catalog,
    /// Type name -> module, for components, formats and enums.
    modules: BTreeMap<String, String>,
    /// The names of the operations' parameter structs (they get `new`).
    request_types: BTreeSet<String>,
    /// Component name -> whether it implements `Default` (memo of [`Generator::has_default`]).
    defaults: std::cell::RefCell<BTreeMap<String, bool>>,
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
            let target = self.type_of(&unfamilied, "");
            return quote! { #doc pub type #type_ident = #target; };
        }
        // A parameter struct is only ever sent: it serialises, and skips the cost of a
        // `Deserialize` impl (a third of the crate's compile time).
        let is_request = self.request_types.contains(name);
        let mut fields = Vec::new();
        let mut required_args = Vec::new();
        let mut initialisers = Vec::new();
        let mut used = BTreeSet::new();
        let mut reader = MapReader::default();
        let mut writes = Vec::new();
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
                let member = self.type_of(
                    &Schema {
                        family: None,
                        optional: false,
                        ..property_schema.clone()
                    },
                    property,
                );
                fields.push(quote! {
                    #field_doc
                    pub #field: crate::Indexed<crate::generated::families::#marker, #member>,
                });
                writes.push(quote! { crate::ser::family(&mut map, &self.#field)?; });
                initialisers.push(quote! { #field: crate::Indexed::new(), });
                let local = format_ident!("f_{}", field_name);
                reader
                    .locals
                    .push(quote! { let mut #local = crate::Indexed::new(); });
                reader
                    .families
                    .push(quote! { crate::de::member(&mut map, &mut #local, &key)? });
                reader.finish.push(quote! { #field: #local, });
                continue;
            }
            let inner = self.type_of(property_schema, property);
            let local = format_ident!("f_{}", field_name);
            reader
                .locals
                .push(quote! { let mut #local = ::std::option::Option::None; });
            let read = if is_lenient(property_schema) {
                quote! { crate::de::lenient }
            } else {
                quote! { crate::de::value }
            };
            reader
                .arms
                .push(quote! { #property => #read(&mut map, &mut #local, #property)?, });
            if property_schema.optional {
                reader
                    .finish
                    .push(quote! { #field: crate::de::optional(#local), });
            } else {
                reader
                    .finish
                    .push(quote! { #field: crate::de::required::<A, _>(#local, #property)?, });
            }
            if property_schema.optional {
                fields.push(quote! {
                    #field_doc
                    pub #field: ::std::option::Option<#inner>,
                });
                writes.push(quote! { crate::ser::optional(&mut map, #property, &self.#field)?; });
                initialisers.push(quote! { #field: ::std::option::Option::None, });
            } else {
                fields.push(quote! {
                    #field_doc
                    pub #field: #inner,
                });
                writes.push(quote! { crate::ser::entry(&mut map, #property, &self.#field)?; });
                if inner.to_string() == quote! { ::std::string::String }.to_string() {
                    required_args
                        .push(quote! { #field: impl ::std::convert::Into<::std::string::String> });
                    initialisers.push(quote! { #field: #field.into(), });
                } else {
                    required_args.push(quote! { #field: #inner });
                    initialisers.push(quote! { #field, });
                }
            }
        }
        let default = self
            .component_has_default(name)
            .then(|| quote! { Default, });
        let constructor = (is_request && !required_args.is_empty()).then(|| {
            quote! {
                impl #type_ident {
                    /// The parameters with every required one given and the optional ones unset.
                    #[allow(clippy::too_many_arguments)]
                    pub fn new(#(#required_args),*) -> Self {
                        Self { #(#initialisers)* }
                    }
                }
            }
        });
        let deserialize = (!is_request).then(|| reader.tokens(&type_ident));
        let map_binding = if writes.is_empty() {
            quote! { map }
        } else {
            quote! { mut map }
        };
        quote! {
            #doc
            #[derive(Debug, Clone, PartialEq, #default)]
            pub struct #type_ident {
                #(#fields)*
            }
            #constructor
            impl ::serde::Serialize for #type_ident {
                fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                    let #map_binding = ::serde::Serializer::serialize_map(serializer, ::std::option::Option::None)?;
                    #(#writes)*
                    ::serde::ser::SerializeMap::end(map)
                }
            }
            #deserialize
        }
    }

    /// Whether the component `name` implements `Default` (no required field without one).
    fn component_has_default(&self, name: &str) -> bool {
        if let Some(known) = self.defaults.borrow().get(name) {
            return *known;
        }
        // Assume yes while computing, in case a schema refers to itself.
        self.defaults.borrow_mut().insert(name.to_owned(), true);
        let is_request = self.request_types.contains(name);
        let result = self.registry.components.get(name).is_none_or(|component| {
            component
                .schema
                .properties
                .iter()
                .flatten()
                .all(|(_, property)| {
                    let required = !property.optional && property.family.is_none();
                    // Parameters with a required one have no `Default`: `..Default::default()`
                    // would send `vmid=0` or `snapname=""`; they are built with `new(required...)`.
                    !required || (!is_request && self.has_default(property))
                })
        });
        self.defaults.borrow_mut().insert(name.to_owned(), result);
        result
    }

    /// Whether the Rust type of a required field implements `Default`.
    fn has_default(&self, schema: &Schema) -> bool {
        if let Some(name) = self.registry.name_of(schema) {
            return self.component_has_default(name);
        }
        if schema.one_of.is_some() {
            return true;
        }
        if let Some(name) = self.catalog.format_of(schema) {
            return self
                .catalog
                .formats
                .get(name)
                .is_none_or(|format| format_required_keys(format).next().is_none());
        }
        self.catalog.enum_of(schema).is_none()
    }

    /// A property-string format: the struct, `new` for its required keys, `FromStr`, `Display`
    /// and serde through the string form.
    fn format(&self, name: &str, format: &catalog::Format) -> TokenStream {
        let type_ident = format_ident!("{}", name);
        let mut doc = format!("A property string, first met as {}.", format.first_use);
        if let Some(typetext) = &format.typetext {
            doc.push_str(&format!("\n\nFormat: `{typetext}`."));
        }
        doc.push_str(
            "\n\nParsed with `FromStr` and printed with `Display` (keys in Proxmox's order: the \
             default key first, then by name); serde reads and writes the string form. Keys \
             this version does not know are kept in `unknown` and printed back.",
        );
        let doc = doc_attrs(&doc);
        let default_key = match &format.default_key {
            Some(key) => quote! { ::std::option::Option::Some(#key) },
            None => quote! { ::std::option::Option::None },
        };
        // The `virtio=<macaddr>` keys: a key names the value of `key_alias` and its value goes to
        // `alias`.
        let mut key_aliases: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::new();
        let mut aliases: Vec<(&str, &str)> = Vec::new();
        for (key, key_schema) in &format.keys {
            match (&key_schema.key_alias, &key_schema.alias) {
                (Some(target), Some(value_key)) => {
                    key_aliases
                        .entry(target.as_str())
                        .or_insert_with(|| (value_key.as_str(), Vec::new()))
                        .1
                        .push(key.as_str());
                }
                (None, Some(target)) => aliases.push((key.as_str(), target.as_str())),
                _ => {}
            }
        }
        // Names the generated `from_str` uses for itself: a member with one of them gets a `_`.
        let mut used: BTreeSet<String> = ["unknown", "text", "entries", "entry_key", "entry_value"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut fields = Vec::new();
        let mut locals = Vec::new();
        let mut arms = Vec::new();
        let mut finish = Vec::new();
        let mut writes = Vec::new();
        let mut required_args = Vec::new();
        let mut initialisers = Vec::new();
        let mut field_of: BTreeMap<&str, Ident> = BTreeMap::new();
        let mut keys: Vec<(&String, &Schema)> = format
            .keys
            .iter()
            .filter(|(_, key_schema)| key_schema.alias.is_none())
            .collect();
        // The default key first, then by name, as Proxmox prints them.
        keys.sort_by_key(|(key, _)| Some(key.as_str()) != format.default_key.as_deref());
        for (key, key_schema) in &keys {
            let mut field_name = field_ident(key);
            while !used.insert(field_name.clone()) {
                field_name.push('_');
            }
            let field = ident(&field_name);
            field_of.insert(key.as_str(), field.clone());
            let field_doc = schema_doc(key_schema, &format!("The `{key}` key."));
            let inner = self.key_type(key_schema, key);
            let key_text = key.as_str();
            locals.push(quote! { let mut #field: ::std::option::Option<#inner> = ::std::option::Option::None; });
            arms.push(quote! {
                #key_text => #field = ::std::option::Option::Some(crate::typed_format::parse_entry(entry_key, entry_value)?),
            });
            if key_schema.optional {
                fields.push(quote! { #field_doc pub #field: ::std::option::Option<#inner>, });
                finish.push(quote! { #field, });
                initialisers.push(quote! { #field: ::std::option::Option::None, });
            } else {
                fields.push(quote! { #field_doc pub #field: #inner, });
                finish.push(
                    quote! { #field: crate::typed_format::require(text, #key_text, #field)?, },
                );
                if inner.to_string() == quote! { ::std::string::String }.to_string() {
                    required_args
                        .push(quote! { #field: impl ::std::convert::Into<::std::string::String> });
                    initialisers.push(quote! { #field: #field.into(), });
                } else {
                    required_args.push(quote! { #field: #inner });
                    initialisers.push(quote! { #field, });
                }
            }
        }
        for (alias, target) in &aliases {
            if let Some(field) = field_of.get(target) {
                arms.push(quote! {
                    #alias => #field = ::std::option::Option::Some(crate::typed_format::parse_entry(#target, entry_value)?),
                });
            }
        }
        let mut skip_in_writes: BTreeSet<&str> = BTreeSet::new();
        for (target, (value_key, alias_keys)) in &key_aliases {
            let (Some(target_field), Some(value_field)) =
                (field_of.get(target), field_of.get(value_key))
            else {
                continue;
            };
            arms.push(quote! {
                #(#alias_keys)|* => {
                    #target_field = ::std::option::Option::Some(crate::typed_format::parse_entry(#target, entry_key)?);
                    #value_field = ::std::option::Option::Some(crate::typed_format::parse_entry(#value_key, entry_value)?);
                }
            });
            skip_in_writes.insert(target);
            skip_in_writes.insert(value_key);
            let target_required = keys
                .iter()
                .any(|(key, key_schema)| key.as_str() == *target && !key_schema.optional);
            let target_value = if target_required {
                quote! { ::std::option::Option::Some(&self.#target_field) }
            } else {
                quote! { self.#target_field.as_ref() }
            };
            let target_write = if target_required {
                quote! { writer.entry(#target, &self.#target_field); }
            } else {
                quote! { writer.optional(#target, &self.#target_field); }
            };
            writes.push(quote! {
                match (#target_value, &self.#value_field) {
                    (::std::option::Option::Some(target), ::std::option::Option::Some(value)) => {
                        let mut key = ::std::string::String::new();
                        crate::PropertyValue::write_value(target, &mut key);
                        let mut text = ::std::string::String::new();
                        crate::PropertyValue::write_value(value, &mut text);
                        writer.raw(&key, &text);
                    }
                    _ => {
                        #target_write
                        writer.optional(#value_key, &self.#value_field);
                    }
                }
            });
        }
        for (key, key_schema) in &keys {
            if skip_in_writes.contains(key.as_str()) {
                continue;
            }
            let Some(field) = field_of.get(key.as_str()) else {
                continue;
            };
            let key_text = key.as_str();
            if key_schema.optional {
                writes.push(quote! { writer.optional(#key_text, &self.#field); });
            } else {
                writes.push(quote! { writer.entry(#key_text, &self.#field); });
            }
        }
        let default = required_args.is_empty().then(|| quote! { Default, });
        let constructor = (!required_args.is_empty()).then(|| {
            quote! {
                impl #type_ident {
                    /// The value with the required keys given and every other key unset.
                    pub fn new(#(#required_args),*) -> Self {
                        Self { #(#initialisers)* unknown: ::std::vec::Vec::new() }
                    }
                }
            }
        });
        quote! {
            #doc
            #[derive(Debug, Clone, PartialEq, #default)]
            pub struct #type_ident {
                #(#fields)*
                /// Keys this version of the SDK does not know, in their order, printed back after the
                /// known ones.
                pub unknown: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
            }
            #constructor
            impl ::std::str::FromStr for #type_ident {
                type Err = crate::Error;

                fn from_str(text: &str) -> ::std::result::Result<Self, crate::Error> {
                    let entries = crate::PropertyString::parse(text, #default_key)?;
                    #(#locals)*
                    let mut unknown = ::std::vec::Vec::new();
                    // `entry_*`: a format may have members called `key` and `value`.
                    for (entry_key, entry_value) in entries.iter() {
                        match entry_key {
                            #(#arms)*
                            _ => unknown.push((entry_key.to_owned(), entry_value.to_owned())),
                        }
                    }
                    ::std::result::Result::Ok(Self { #(#finish)* unknown })
                }
            }
            impl ::std::fmt::Display for #type_ident {
                fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                    let mut writer = crate::typed_format::Writer::new(#default_key);
                    #(#writes)*
                    for (key, value) in &self.unknown {
                        writer.raw(key, value);
                    }
                    f.write_str(&writer.finish())
                }
            }
            impl ::serde::Serialize for #type_ident {
                fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                    serializer.collect_str(self)
                }
            }
            impl<'de> ::serde::Deserialize<'de> for #type_ident {
                fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                    deserializer.deserialize_any(crate::typed_format::StringVisitor::new())
                }
            }
        }
    }

    /// The Rust type of a property-string key.
    fn key_type(&self, schema: &Schema, key: &str) -> TokenStream {
        if schema.format.as_deref() == Some("disk-size") {
            return quote! { crate::DiskSize };
        }
        match schema.kind() {
            SchemaType::Integer if is_vmid(schema, key) => quote! { u32 },
            SchemaType::Integer => quote! { i64 },
            SchemaType::Number => quote! { f64 },
            SchemaType::Boolean => quote! { crate::PveBool },
            _ => match self.catalog.enum_of(schema) {
                Some(name) => self.path_of(name),
                None => quote! { ::std::string::String },
            },
        }
    }

    /// `crate::generated::<module>::<Name>` of a generated type.
    fn path_of(&self, name: &str) -> TokenStream {
        let module = format_ident!(
            "{}",
            self.modules
                .get(name)
                .map(String::as_str)
                .unwrap_or("common")
        );
        let ident = format_ident!("{}", name);
        quote! { crate::generated::#module::#ident }
    }

    /// The Rust type of a schema in a field or alias position; `property` is its name, if any.
    fn type_of(&self, schema: &Schema, property: &str) -> TokenStream {
        if let Some(name) = self.registry.name_of(schema) {
            return self.path_of(name);
        }
        if schema.one_of.is_some() {
            return quote! { ::serde_json::Value };
        }
        if let Some(name) = self.catalog.format_of(schema) {
            return self.path_of(name);
        }
        if let Some(name) = self.catalog.enum_of(schema) {
            return self.path_of(name);
        }
        match schema.kind() {
            SchemaType::String if schema.format.as_deref() == Some("pve-startup-order") => {
                quote! { crate::StartupOrder }
            }
            SchemaType::String => quote! { ::std::string::String },
            SchemaType::Integer if is_vmid(schema, property) => quote! { u32 },
            SchemaType::Integer => quote! { i64 },
            SchemaType::Number => quote! { f64 },
            SchemaType::Boolean => quote! { crate::PveBool },
            SchemaType::Null => quote! { () },
            SchemaType::Any => quote! { ::serde_json::Value },
            SchemaType::Array => {
                let item = schema
                    .items
                    .as_deref()
                    .map(|items| self.type_of(items, property))
                    .unwrap_or_else(|| quote! { ::serde_json::Value });
                quote! { ::std::vec::Vec<#item> }
            }
            SchemaType::Object => {
                quote! { ::serde_json::Map<::std::string::String, ::serde_json::Value> }
            }
        }
    }
}

/// The keys a format requires.
fn format_required_keys(format: &catalog::Format) -> impl Iterator<Item = &String> {
    format
        .keys
        .iter()
        .filter(|(_, schema)| !schema.optional && schema.alias.is_none())
        .map(|(key, _)| key)
}

/// Whether an integer is a guest id: format `pve-vmid`, or a property called `vmid`.
fn is_vmid(schema: &Schema, property: &str) -> bool {
    schema.format.as_deref() == Some("pve-vmid") || property == "vmid"
}

/// Whether a field is read through `crate::lenient` (a number, or a list of numbers).
fn is_lenient(schema: &Schema) -> bool {
    if schema.one_of.is_some() || schema.property_string.is_some() {
        return false;
    }
    match schema.kind() {
        SchemaType::Integer | SchemaType::Number => true,
        SchemaType::Array => schema.items.as_deref().is_some_and(|items| {
            items.one_of.is_none()
                && matches!(items.kind(), SchemaType::Integer | SchemaType::Number)
        }),
        _ => false,
    }
}

/// A string enum with an `Other(String)` fallback: `as_str`, `From<&str>`, `FromStr`, `== "text"`,
/// `Display`, serde as the string, and [`crate::PropertyValue`] for property strings.
fn enum_tokens(name: &str, enum_def: &catalog::EnumDef) -> TokenStream {
    let type_ident = format_ident!("{}", name);
    let values: Vec<&str> = enum_def.values.iter().map(String::as_str).collect();
    let variants: Vec<Ident> = catalog::variant_names(&enum_def.values)
        .iter()
        .map(|variant| format_ident!("{}", variant))
        .collect();
    let mut doc = enum_def
        .description
        .as_deref()
        .map(str::trim)
        .filter(|description| !description.is_empty())
        .unwrap_or("A string enum of the Proxmox API.")
        .to_owned();
    doc.push_str(
        "\n\nA value this version does not know decodes as `Other` with the text, so a newer \
         Proxmox never breaks decoding.",
    );
    let doc = doc_attrs(&doc);
    let variant_docs: Vec<TokenStream> = values
        .iter()
        .map(|value| doc_attrs(&format!("`{value}`")))
        .collect();
    quote! {
        #doc
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum #type_ident {
            #(#variant_docs #variants,)*
            /// A value this version of the SDK does not know.
            Other(::std::string::String),
        }
        impl #type_ident {
            /// The value as Proxmox spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    #(Self::#variants => #values,)*
                    Self::Other(value) => value,
                }
            }
        }
        impl ::std::convert::From<&str> for #type_ident {
            fn from(text: &str) -> Self {
                match text {
                    #(#values => Self::#variants,)*
                    other => Self::Other(::std::borrow::ToOwned::to_owned(other)),
                }
            }
        }
        impl ::std::cmp::PartialEq<&str> for #type_ident {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl ::std::str::FromStr for #type_ident {
            type Err = ::std::convert::Infallible;

            fn from_str(text: &str) -> ::std::result::Result<Self, ::std::convert::Infallible> {
                ::std::result::Result::Ok(Self::from(text))
            }
        }
        impl ::std::fmt::Display for #type_ident {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl ::serde::Serialize for #type_ident {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        impl<'de> ::serde::Deserialize<'de> for #type_ident {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                deserializer.deserialize_any(crate::typed_format::StringVisitor::new())
            }
        }
        impl crate::PropertyValue for #type_ident {
            fn parse_value(text: &str) -> ::std::result::Result<Self, ::std::string::String> {
                ::std::result::Result::Ok(Self::from(text))
            }

            fn write_value(&self, out: &mut ::std::string::String) {
                out.push_str(self.as_str());
            }
        }
    }
}

/// The `Deserialize` impl of a reply model, through [`crate::de`] (`shared_types::de`): one
/// loop over the object's keys, a `match` arm per field, the families tried in turn for any
/// other key, which is skipped when none takes it. Much smaller than serde's derive (no field
/// enum, no `visit_seq`, no wrapper per lenient field, no buffering for flattened families).
#[derive(Default)]
struct MapReader {
    /// `let mut f_x = ...;` per field.
    locals: Vec<TokenStream>,
    /// `"key" => crate::de::value(...)?,` per ordinary field.
    arms: Vec<TokenStream>,
    /// `crate::de::member(...)?` per family, tried in order on an unmatched key.
    families: Vec<TokenStream>,
    /// `field: ...,` of the struct expression.
    finish: Vec<TokenStream>,
}

impl MapReader {
    fn tokens(&self, type_ident: &Ident) -> TokenStream {
        let Self {
            locals,
            arms,
            families,
            finish,
        } = self;
        let expecting = format!("struct {type_ident}");
        let other = if families.is_empty() {
            quote! { _ => crate::de::skip(&mut map)?, }
        } else {
            quote! {
                _ => {
                    if !(#(#families)||*) {
                        crate::de::skip(&mut map)?;
                    }
                }
            }
        };
        let read = if locals.is_empty() {
            quote! {
                while map.next_key::<::serde::de::IgnoredAny>()?.is_some() {
                    crate::de::skip(&mut map)?;
                }
            }
        } else {
            quote! {
                while let ::std::option::Option::Some(key) = map.next_key::<crate::de::Key<'de>>()? {
                    match &*key {
                        #(#arms)*
                        #other
                    }
                }
            }
        };
        quote! {
            impl<'de> crate::de::FromMap<'de> for #type_ident {
                const EXPECTING: &'static str = #expecting;

                fn from_map<A: ::serde::de::MapAccess<'de>>(mut map: A) -> ::std::result::Result<Self, A::Error> {
                    #(#locals)*
                    #read
                    ::std::result::Result::Ok(Self { #(#finish)* })
                }
            }
            impl<'de> ::serde::Deserialize<'de> for #type_ident {
                fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> ::std::result::Result<Self, D::Error> {
                    crate::de::deserialize(deserializer)
                }
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
