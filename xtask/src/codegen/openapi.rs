//! `crates/mock-server/generated/<tag>/openapi.json`: an OpenAPI 3.0.3 document built with the `openapiv3` types.
//!
//! Mapping decisions (each also visible in the document itself):
//! - one operation per `(path, method)`; `{x}` segments are path parameters; GET/DELETE take the
//!   other parameters from the query, POST/PUT from a body with exactly one media type,
//!   `application/json` (`x-proxmox-form-body: true` records that the server also takes
//!   `application/x-www-form-urlencoded`);
//! - replies are `{"data": <returns>}`; errors are the `ProxmoxError` component;
//! - `type: null` and untyped returns become `nullable` any-schemas;
//! - booleans are `oneOf: [boolean, integer 0/1]` with `x-proxmox-type: boolean`, because Proxmox
//!   sends and accepts 0/1;
//! - Proxmox's own `oneOf` (alternatives chosen by a sibling property, `x-proxmox-type-property`,
//!   e.g. a fabric's `interfaces` per `protocol`) becomes `anyOf`: its branches may overlap (two
//!   arrays of property strings), so a value can match several and `oneOf` would reject it;
//!   the branches are arrays or strings, so an OpenAPI `discriminator` cannot express the choice;
//! - `foo[n]` families expand to `foo0`..`fooN` properties that `$ref` one component, and the
//!   family is recorded in `x-proxmox-families`;
//! - response schemas carry no `pattern` (it moves to `x-proxmox-pattern`, see
//!   [`super::registry::response_view`]);
//! - every Proxmox key without an OpenAPI equivalent is kept as `x-proxmox-<key>`.

use indexmap::IndexMap;
use openapiv3::{
    APIKeyLocation, AdditionalProperties, AnySchema, ArrayType, Components, Info, IntegerType,
    MediaType, NumberType, ObjectType, OpenAPI, Parameter, ParameterData, ParameterSchemaOrContent,
    PathItem, PathStyle, Paths, QueryStyle, ReferenceOr, RequestBody, Response, Responses, Schema,
    SchemaData, SchemaKind, SecurityRequirement, SecurityScheme, Server, ServerVariable,
    StatusCode, StringType, Tag, Type,
};
use route_metadata::{Operation, RouteMetadata, Schema as Source, SchemaType};
use serde_json::{Value, json};

use super::naming;
use super::registry::{Registry, request_schema, response_view};

/// Builds the OpenAPI document of one tag.
pub fn build(metadata: &RouteMetadata, registry: &Registry) -> OpenAPI {
    let converter = Converter { registry };
    let mut paths: IndexMap<String, ReferenceOr<PathItem>> = IndexMap::new();
    for operation in &metadata.operations {
        let item = paths
            .entry(operation.path.clone())
            .or_insert_with(|| ReferenceOr::Item(PathItem::default()));
        let ReferenceOr::Item(item) = item else {
            continue;
        };
        let built = converter.operation(operation);
        match operation.method {
            route_metadata::Method::Get => item.get = Some(built),
            route_metadata::Method::Post => item.post = Some(built),
            route_metadata::Method::Put => item.put = Some(built),
            route_metadata::Method::Delete => item.delete = Some(built),
        }
    }

    let mut schemas: IndexMap<String, ReferenceOr<Schema>> = IndexMap::new();
    for (name, component) in &registry.components {
        schemas.insert(
            name.clone(),
            ReferenceOr::Item(converter.schema(&component.schema)),
        );
    }
    schemas.insert(
        naming::ERROR_COMPONENT.to_owned(),
        ReferenceOr::Item(error_schema()),
    );

    let mut security_schemes = IndexMap::new();
    security_schemes.insert(
        "PVEAPIToken".to_owned(),
        ReferenceOr::Item(SecurityScheme::APIKey {
            location: APIKeyLocation::Header,
            name: "Authorization".to_owned(),
            description: Some(
                "`PVEAPIToken=USER@REALM!TOKENID=SECRET`; no CSRF token needed.".to_owned(),
            ),
            extensions: IndexMap::new(),
        }),
    );
    security_schemes.insert(
        "PVEAuthCookie".to_owned(),
        ReferenceOr::Item(SecurityScheme::APIKey {
            location: APIKeyLocation::Cookie,
            name: "PVEAuthCookie".to_owned(),
            description: Some(
                "Ticket from `POST /access/ticket`; writes also need the `CSRFPreventionToken` \
                 header from the same reply."
                    .to_owned(),
            ),
            extensions: IndexMap::new(),
        }),
    );

    let groups: std::collections::BTreeSet<&str> = metadata
        .operations
        .iter()
        .map(|op| op.group.as_str())
        .collect();
    let mut variables = IndexMap::new();
    variables.insert(
        "host".to_owned(),
        ServerVariable {
            default: "localhost".to_owned(),
            description: Some("Proxmox VE node or cluster address".to_owned()),
            enumeration: Vec::new(),
            extensions: IndexMap::new(),
        },
    );
    variables.insert(
        "port".to_owned(),
        ServerVariable {
            default: "8006".to_owned(),
            description: Some("API port (Proxmox: 8006)".to_owned()),
            enumeration: Vec::new(),
            extensions: IndexMap::new(),
        },
    );

    let mut extensions = IndexMap::new();
    extensions.insert("x-generated-by".to_owned(), json!(super::STAMP));
    extensions.insert("x-proxmox-tag".to_owned(), json!(metadata.tag));
    extensions.insert(
        "x-proxmox-schema-sha256".to_owned(),
        json!(metadata.schema_sha256),
    );
    OpenAPI {
        openapi: "3.0.3".to_owned(),
        info: Info {
            title: "Proxmox VE API".to_owned(),
            description: Some(format!(
                "Proxmox VE {} API, converted from pve-docs `api-viewer/apidata.js` (SHA-256 {}) \
                 by `cargo xtask codegen`. Schema data: AGPL-3.0-or-later, Proxmox Server \
                 Solutions GmbH.",
                metadata.release, metadata.schema_sha256
            )),
            version: metadata.release.clone(),
            ..Info::default()
        },
        servers: vec![Server {
            url: "https://{host}:{port}/api2/json".to_owned(),
            description: None,
            variables: Some(variables),
            extensions: IndexMap::new(),
        }],
        paths: Paths {
            paths,
            extensions: IndexMap::new(),
        },
        components: Some(Components {
            schemas,
            security_schemes,
            ..Components::default()
        }),
        security: Some(vec![
            IndexMap::from([("PVEAPIToken".to_owned(), Vec::new())]) as SecurityRequirement,
            IndexMap::from([("PVEAuthCookie".to_owned(), Vec::new())]),
        ]),
        tags: groups
            .into_iter()
            .map(|group| Tag {
                name: group.to_owned(),
                description: Some(format!("Operations under `/{group}`")),
                ..Tag::default()
            })
            .collect(),
        extensions,
        ..OpenAPI::default()
    }
}

struct Converter<'a> {
    registry: &'a Registry,
}

impl Converter<'_> {
    fn operation(&self, operation: &Operation) -> openapiv3::Operation {
        let mut parameters = Vec::new();
        for name in &operation.path_params {
            let Some(schema) = operation.parameters.get(name) else {
                continue;
            };
            parameters.push(ReferenceOr::Item(Parameter::Path {
                parameter_data: self.parameter_data(name, schema, true),
                style: PathStyle::Simple,
            }));
        }
        let request = request_schema(operation);
        let mut request_body = None;
        if operation.method.has_body() {
            let body_schema = match self.registry.name_of(&request) {
                Some(name) => component_ref(name),
                None => ReferenceOr::Item(self.schema(&request)),
            };
            let required = request
                .properties
                .iter()
                .flat_map(|properties| properties.values())
                .any(|schema| !schema.optional);
            request_body = Some(ReferenceOr::Item(RequestBody {
                description: None,
                content: IndexMap::from([(
                    "application/json".to_owned(),
                    MediaType {
                        schema: Some(body_schema),
                        ..MediaType::default()
                    },
                )]),
                required,
                extensions: IndexMap::new(),
            }));
        } else {
            for (name, schema) in request.properties.iter().flatten() {
                for (expanded, expanded_schema) in self.expand(name, schema) {
                    let required = !schema.optional && schema.family.is_none();
                    let mut data = self.parameter_data(&expanded, schema, required);
                    data.format = ParameterSchemaOrContent::Schema(expanded_schema);
                    parameters.push(ReferenceOr::Item(Parameter::Query {
                        parameter_data: data,
                        allow_reserved: false,
                        style: QueryStyle::Form,
                        allow_empty_value: None,
                    }));
                }
            }
        }

        let returns = response_view(&operation.returns);
        let mut data_schema = self.property(&returns);
        if matches!(returns.kind(), SchemaType::Integer | SchemaType::Number) {
            // A bare number reply comes from a Perl scalar, which JSON::XS writes as a string
            // once it has been used as one: `GET /cluster/nextid` answers `{"data":"102"}`
            // (pve-manager `PVE/API2/Cluster.pm`). The SDK decodes both forms.
            let numeric_string = Schema {
                schema_data: SchemaData::default(),
                schema_kind: SchemaKind::Type(Type::String(StringType {
                    pattern: Some("^-?[0-9]+(\\.[0-9]+)?$".to_owned()),
                    ..StringType::default()
                })),
            };
            data_schema = ReferenceOr::Item(Schema {
                schema_data: SchemaData::default(),
                schema_kind: SchemaKind::AnyOf {
                    any_of: vec![data_schema, ReferenceOr::Item(numeric_string)],
                },
            });
        }
        let envelope = Schema {
            schema_data: SchemaData::default(),
            schema_kind: SchemaKind::Type(Type::Object(ObjectType {
                properties: IndexMap::from([("data".to_owned(), boxed(data_schema))]),
                required: vec!["data".to_owned()],
                ..ObjectType::default()
            })),
        };
        let mut responses = IndexMap::new();
        responses.insert(
            StatusCode::Code(200),
            ReferenceOr::Item(Response {
                description: returns
                    .description
                    .clone()
                    .unwrap_or_else(|| "Success".to_owned()),
                content: IndexMap::from([(
                    "application/json".to_owned(),
                    MediaType {
                        schema: Some(ReferenceOr::Item(envelope)),
                        ..MediaType::default()
                    },
                )]),
                ..Response::default()
            }),
        );
        let error = ReferenceOr::Item(Response {
            description: "Proxmox error: HTTP status with the message as reason phrase; \
                          parameter errors in `errors`"
                .to_owned(),
            content: IndexMap::from([(
                "application/json".to_owned(),
                MediaType {
                    schema: Some(component_ref(naming::ERROR_COMPONENT)),
                    ..MediaType::default()
                },
            )]),
            ..Response::default()
        });

        let mut extensions = IndexMap::new();
        extensions.insert("x-proxmox-name".to_owned(), json!(operation.name));
        extensions.insert(
            "x-proxmox-allowtoken".to_owned(),
            json!(operation.allowtoken),
        );
        extensions.insert(
            "x-proxmox-worker-task".to_owned(),
            json!(operation.worker_task),
        );
        if operation.protected {
            extensions.insert("x-proxmox-protected".to_owned(), json!(true));
        }
        if let Some(proxyto) = &operation.proxyto {
            extensions.insert("x-proxmox-proxyto".to_owned(), json!(proxyto));
        }
        if let Some(permissions) = &operation.permissions {
            extensions.insert("x-proxmox-permissions".to_owned(), permissions.clone());
        }
        if operation.method.has_body() {
            extensions.insert("x-proxmox-form-body".to_owned(), json!(true));
        }
        if let Some(creates) = &operation.creates {
            extensions.insert("x-proxmox-creates".to_owned(), json!(creates));
        }
        for (key, value) in &operation.extensions {
            extensions.insert(format!("x-proxmox-{key}"), value.clone());
        }
        let families = families_of(&request);
        if !families.is_empty() {
            extensions.insert("x-proxmox-families".to_owned(), Value::Object(families));
        }

        openapiv3::Operation {
            tags: vec![operation.group.clone()],
            summary: operation.description.as_deref().map(first_sentence),
            description: operation.description.clone(),
            operation_id: Some(operation.operation_id.clone()),
            parameters,
            request_body,
            responses: Responses {
                default: Some(error),
                responses,
                extensions: IndexMap::new(),
            },
            extensions,
            ..openapiv3::Operation::default()
        }
    }

    fn parameter_data(&self, name: &str, schema: &Source, required: bool) -> ParameterData {
        ParameterData {
            name: name.to_owned(),
            description: schema.description.clone(),
            required,
            deprecated: None,
            format: ParameterSchemaOrContent::Schema(self.property(schema)),
            example: None,
            examples: IndexMap::new(),
            explode: None,
            extensions: IndexMap::new(),
        }
    }

    /// The properties a source property becomes: itself, or `foo0`..`fooN` for a family.
    fn expand(&self, name: &str, schema: &Source) -> Vec<(String, ReferenceOr<Schema>)> {
        match &schema.family {
            Some(family) => {
                let reference = self.property(schema);
                (0..family.count)
                    .map(|index| (format!("{}{index}", family.prefix), reference.clone()))
                    .collect()
            }
            None => vec![(name.to_owned(), self.property(schema))],
        }
    }

    /// A schema in a property position: a `$ref` when it is a named component.
    fn property(&self, schema: &Source) -> ReferenceOr<Schema> {
        match self.registry.name_of(schema) {
            Some(name) => component_ref(name),
            None => ReferenceOr::Item(self.schema(schema)),
        }
    }

    /// Converts one schema (inline; nested named schemas become `$ref`s).
    fn schema(&self, source: &Source) -> Schema {
        let mut data = SchemaData {
            description: source.description.clone(),
            default: source.default.clone(),
            ..SchemaData::default()
        };
        let extensions = &mut data.extensions;
        if let Some(format) = &source.format {
            extensions.insert("x-proxmox-format".to_owned(), json!(format));
        }
        if let Some(members) = &source.property_string {
            extensions.insert(
                "x-proxmox-property-string".to_owned(),
                serde_json::to_value(members).unwrap_or(Value::Null),
            );
        }
        if let Some(typetext) = &source.typetext {
            extensions.insert("x-proxmox-typetext".to_owned(), json!(typetext));
        }
        if source.default_key {
            extensions.insert("x-proxmox-default-key".to_owned(), json!(true));
        }
        if let Some(alias) = &source.alias {
            extensions.insert("x-proxmox-alias".to_owned(), json!(alias));
        }
        if let Some(key_alias) = &source.key_alias {
            extensions.insert("x-proxmox-key-alias".to_owned(), json!(key_alias));
        }
        if let Some(family) = &source.family {
            extensions.insert(
                "x-proxmox-family".to_owned(),
                json!({"prefix": family.prefix, "count": family.count}),
            );
        }
        if let Some(types) = &source.instance_types {
            extensions.insert("x-proxmox-instance-types".to_owned(), json!(types));
        }
        if let Some(property) = &source.type_property {
            extensions.insert("x-proxmox-type-property".to_owned(), json!(property));
        }
        if !source.dropped.is_empty() {
            extensions.insert("x-proxmox-dropped".to_owned(), json!(source.dropped));
        }
        for (key, value) in &source.extensions {
            extensions.insert(format!("x-proxmox-{key}"), value.clone());
        }

        if let Some(alternatives) = &source.one_of {
            return Schema {
                schema_data: data,
                schema_kind: SchemaKind::AnyOf {
                    any_of: alternatives.iter().map(|alt| self.property(alt)).collect(),
                },
            };
        }

        let kind = match source.kind() {
            SchemaType::String => SchemaKind::Type(Type::String(StringType {
                pattern: source.pattern.clone(),
                enumeration: source
                    .enum_values
                    .iter()
                    .flatten()
                    .map(|value| value.as_str().map(str::to_owned))
                    .collect(),
                min_length: source.min_length.map(|n| n as usize),
                max_length: source.max_length.map(|n| n as usize),
                ..StringType::default()
            })),
            SchemaType::Integer => SchemaKind::Type(Type::Integer(IntegerType {
                minimum: source.minimum.map(|n| n as i64),
                maximum: source.maximum.map(|n| n as i64),
                enumeration: source
                    .enum_values
                    .iter()
                    .flatten()
                    .map(Value::as_i64)
                    .collect(),
                ..IntegerType::default()
            })),
            SchemaType::Number => SchemaKind::Type(Type::Number(NumberType {
                minimum: source.minimum,
                maximum: source.maximum,
                enumeration: source
                    .enum_values
                    .iter()
                    .flatten()
                    .map(Value::as_f64)
                    .collect(),
                ..NumberType::default()
            })),
            SchemaType::Boolean => {
                data.extensions
                    .insert("x-proxmox-type".to_owned(), json!("boolean"));
                let zero_one = Schema {
                    schema_data: SchemaData::default(),
                    schema_kind: SchemaKind::Type(Type::Integer(IntegerType {
                        enumeration: vec![Some(0), Some(1)],
                        ..IntegerType::default()
                    })),
                };
                let boolean = Schema {
                    schema_data: SchemaData::default(),
                    schema_kind: SchemaKind::Type(Type::Boolean(Default::default())),
                };
                SchemaKind::OneOf {
                    one_of: vec![ReferenceOr::Item(boolean), ReferenceOr::Item(zero_one)],
                }
            }
            SchemaType::Array => SchemaKind::Type(Type::Array(ArrayType {
                items: Some(boxed(
                    source
                        .items
                        .as_deref()
                        .map(|items| self.property(items))
                        .unwrap_or_else(|| ReferenceOr::Item(any_schema(true))),
                )),
                min_items: None,
                max_items: None,
                unique_items: false,
            })),
            SchemaType::Object => {
                let mut properties = IndexMap::new();
                let mut required = Vec::new();
                for (name, property) in source.properties.iter().flatten() {
                    for (expanded, schema) in self.expand(name, property) {
                        if !property.optional && property.family.is_none() {
                            required.push(expanded.clone());
                        }
                        properties.insert(expanded, boxed(schema));
                    }
                }
                let families = families_of(source);
                if !families.is_empty() {
                    data.extensions
                        .insert("x-proxmox-families".to_owned(), Value::Object(families));
                }
                SchemaKind::Type(Type::Object(ObjectType {
                    properties,
                    required,
                    additional_properties: (!source.additional_properties)
                        .then_some(AdditionalProperties::Any(false)),
                    ..ObjectType::default()
                }))
            }
            SchemaType::Null => {
                data.nullable = true;
                data.extensions
                    .insert("x-proxmox-type".to_owned(), json!("null"));
                SchemaKind::Any(AnySchema::default())
            }
            SchemaType::Any => {
                data.nullable = true;
                SchemaKind::Any(AnySchema::default())
            }
        };
        Schema {
            schema_data: data,
            schema_kind: kind,
        }
    }
}

fn families_of(schema: &Source) -> serde_json::Map<String, Value> {
    schema
        .properties
        .iter()
        .flatten()
        .filter_map(|(name, property)| {
            let family = property.family.as_ref()?;
            Some((
                name.clone(),
                json!({"prefix": family.prefix, "count": family.count}),
            ))
        })
        .collect()
}

fn error_schema() -> Schema {
    serde_json::from_value(json!({
        "type": "object",
        "description": "Error reply of the Proxmox API (pve-http-server `Formatter/Standard.pm`).",
        "properties": {
            "data": {"nullable": true, "description": "Always null on errors."},
            "message": {"type": "string", "description": "The error message."},
            "errors": {
                "type": "object",
                "description": "Per-parameter messages of a parameter verification failure.",
                "additionalProperties": {"type": "string"}
            }
        },
        "required": ["data"]
    }))
    .unwrap_or_else(|_| any_schema(true))
}

fn any_schema(nullable: bool) -> Schema {
    Schema {
        schema_data: SchemaData {
            nullable,
            ..SchemaData::default()
        },
        schema_kind: SchemaKind::Any(AnySchema::default()),
    }
}

fn component_ref(name: &str) -> ReferenceOr<Schema> {
    ReferenceOr::Reference {
        reference: format!("#/components/schemas/{name}"),
    }
}

fn boxed(schema: ReferenceOr<Schema>) -> ReferenceOr<Box<Schema>> {
    match schema {
        ReferenceOr::Item(item) => ReferenceOr::Item(Box::new(item)),
        ReferenceOr::Reference { reference } => ReferenceOr::Reference { reference },
    }
}

fn first_sentence(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.find(". ") {
        Some(end) => line[..=end].trim().to_owned(),
        None => line.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::workspace_root;
    use serde_json::Value;

    /// Every `oneOf` left in the emitted documents is a boolean's `[boolean, integer 0/1]`,
    /// whose branches cannot both match; Proxmox's own alternatives are `anyOf`.
    #[test]
    fn only_disjoint_one_of() {
        fn walk(value: &Value, at: &str, found: &mut Vec<String>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::Array(branches)) = map.get("oneOf") {
                        let types: Vec<&str> = branches
                            .iter()
                            .filter_map(|branch| branch.get("type").and_then(Value::as_str))
                            .collect();
                        if types != ["boolean", "integer"] {
                            found.push(at.to_owned());
                        }
                    }
                    for (key, value) in map {
                        walk(value, &format!("{at}/{key}"), found);
                    }
                }
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        walk(item, &format!("{at}/{index}"), found);
                    }
                }
                _ => {}
            }
        }
        let root = workspace_root();
        let index = crate::codegen::source::read_index(&root).expect("index");
        for tag in index.schemas.iter().map(|entry| entry.tag.as_str()) {
            let path = root
                .join(crate::codegen::artifact_dir(tag))
                .join("openapi.json");
            let text = std::fs::read_to_string(&path).expect("openapi.json");
            let document: Value = serde_json::from_str(&text).expect("JSON");
            let mut found = Vec::new();
            walk(&document, "", &mut found);
            assert!(
                found.is_empty(),
                "{tag}: oneOf with overlapping branches at {found:?}"
            );
        }
    }
}
