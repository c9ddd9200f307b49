//! Named, de-duplicated object schemas of one tag: the OpenAPI `components/schemas` and the Rust
//! model structs come from the same [`Registry`], so their names agree.
//!
//! Every object schema with properties, at any depth of a request or a response, gets a name from
//! its first use (operations in path order): `NodesQemuVmlistResponseItem`, `NodesQemuCreateVmParams`,
//! `...Item` for array items, `...<Property>` for nested objects (the rules are in [`naming`]).
//! An identical schema met later reuses the first name (the source inlines the same objects
//! hundreds of times). Identity is the whole normalised schema, descriptions included.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use route_metadata::{Operation, RouteMetadata, Schema, SchemaType};

use super::naming;

/// The named object schemas of a tag.
pub struct Registry {
    /// Component name -> its schema (properties still inline; nested objects are resolved through
    /// [`Registry::name_of`]).
    pub components: BTreeMap<String, Component>,
    by_content: HashMap<String, String>,
}

/// One named object schema.
pub struct Component {
    /// The schema.
    pub schema: Schema,
    /// Path groups whose operations use it.
    pub groups: BTreeSet<String>,
}

impl Registry {
    /// Names every object schema used by the operations.
    pub fn build(metadata: &RouteMetadata) -> Self {
        let mut registry = Registry {
            components: BTreeMap::new(),
            by_content: HashMap::new(),
        };
        for operation in &metadata.operations {
            let request = request_schema(operation);
            if request.properties.as_ref().is_some_and(|p| !p.is_empty()) {
                registry.visit(
                    &request,
                    &naming::params_type(&operation.operation_id),
                    &operation.group,
                );
            }
            registry.visit(
                &response_view(&operation.returns),
                &naming::response_type(&operation.operation_id),
                &operation.group,
            );
        }
        registry
    }

    /// The component name of an object schema, if it has one.
    pub fn name_of(&self, schema: &Schema) -> Option<&str> {
        if !is_named(schema) {
            return None;
        }
        self.by_content
            .get(&content_key(schema))
            .map(String::as_str)
    }

    fn visit(&mut self, schema: &Schema, name: &str, group: &str) {
        if let Some(items) = &schema.items {
            self.visit(items, &naming::item_type(name), group);
        }
        if let Some(alternatives) = &schema.one_of {
            for (index, alternative) in alternatives.iter().enumerate() {
                let first_instance_type = alternative
                    .instance_types
                    .as_ref()
                    .and_then(|types| types.first())
                    .map(String::as_str);
                let alternative_name = naming::variant_type(name, first_instance_type, index);
                self.visit(alternative, &alternative_name, group);
            }
        }
        if !is_named(schema) {
            return;
        }
        if let Some(properties) = &schema.properties {
            for (property, property_schema) in properties {
                self.visit(
                    property_schema,
                    &naming::property_type(name, property),
                    group,
                );
            }
        }
        let key = content_key(schema);
        if let Some(existing) = self.by_content.get(&key) {
            if let Some(component) = self.components.get_mut(existing) {
                component.groups.insert(group.to_owned());
            }
            return;
        }
        let unique = naming::unique(name, |candidate| self.components.contains_key(candidate));
        self.by_content.insert(key, unique.clone());
        self.components.insert(
            unique,
            Component {
                schema: schema.clone(),
                groups: BTreeSet::from([group.to_owned()]),
            },
        );
    }
}

/// The object schema of an operation's non-path parameters (the request body of POST/PUT, the
/// query of GET/DELETE).
pub fn request_schema(operation: &Operation) -> Schema {
    let properties: BTreeMap<String, Schema> = operation
        .parameters
        .iter()
        .filter(|(name, _)| !operation.path_params.contains(name))
        .map(|(name, schema)| (name.clone(), schema.clone()))
        .collect();
    Schema {
        ty: Some(SchemaType::Object),
        additional_properties: operation.additional_parameters,
        properties: Some(properties),
        ..Schema::default()
    }
}

/// A response schema as published: patterns move to the `pattern` extension (so
/// `x-proxmox-pattern`), because clients that enforce response patterns fail on real Proxmox
/// replies that break them.
pub fn response_view(schema: &Schema) -> Schema {
    let mut view = schema.clone();
    strip_patterns(&mut view);
    view
}

fn strip_patterns(schema: &mut Schema) {
    if let Some(pattern) = schema.pattern.take() {
        schema
            .extensions
            .insert("pattern".to_owned(), serde_json::Value::String(pattern));
    }
    for child in schema
        .properties
        .iter_mut()
        .flat_map(|properties| properties.values_mut())
        .chain(schema.items.as_deref_mut())
        .chain(schema.one_of.iter_mut().flatten())
    {
        strip_patterns(child);
    }
}

/// Whether a schema becomes a named component: objects with properties, and the member schema of
/// an indexed family (referenced by each of `net0`..`net31`).
fn is_named(schema: &Schema) -> bool {
    schema.family.is_some()
        || (schema.kind() == SchemaType::Object
            && schema.properties.as_ref().is_some_and(|p| !p.is_empty()))
}

fn content_key(schema: &Schema) -> String {
    serde_json::to_string(schema).unwrap_or_default()
}
