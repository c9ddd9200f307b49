//! The property-string formats and string enums of the latest tag, each named once, for the Rust
//! models ([`super::rust`]).
//!
//! **Formats.** Proxmox's schema inlines a property-string format (the keys of `net0`,
//! `scsi0`, `rootfs`, `agent`...) wherever it is used, without its Perl name, and a reply often
//! carries a slightly different copy than the request (`import-from` only on create). Every use
//! is collected from the operations in path order (parameters, then replies; `oneOf` branches are
//! `serde_json::Value` and are skipped). Uses are grouped by property name (`net[n]` -> `net`);
//! within one name, a copy joins the first group whose keys it shares by at least half
//! ([`JOIN_OVERLAP`], Jaccard index), so the qemu `net` request and reply copies merge while
//! qemu's and lxc's `net` stay apart. A group becomes one struct holding the union of the keys (a
//! key is required only when every copy requires it) named `<Property>Config` (`AgentConfig`),
//! or, when the name has several groups, `<Word><Property>Config` with the first static path
//! word that no other group's paths share (`QemuNetConfig`, `LxcNetConfig`, `PciMapConfig`).
//!
//! **Enums.** Every string schema with `enum` values becomes a Rust enum, de-duplicated by its
//! value set (the same set under another property reuses the first name). It is named after the
//! property (`Ostype`) when every enum under that property name has the same values and the name
//! is not a general word ([`GENERIC_WORDS`]: `model` of `NetConfig` is `NetModel`), `Guest` plus
//! the property when the same values serve both QEMU and LXC paths (`GuestStatus`), and after its
//! parent type plus the property otherwise (`NodesIndexResponseItemStatus`).
//!
//! Both are placed like components: in the module of the one path group that uses them, or in
//! `common`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use route_metadata::{RouteMetadata, Schema, SchemaType};

use super::naming;
use super::registry::{Registry, request_schema, response_view};

/// Property names too general to name an enum alone: such an enum takes its owner's name in
/// front (`model` of the `NetConfig` format -> `NetModel`).
const GENERIC_WORDS: &[&str] = &[
    "action", "command", "format", "method", "mode", "model", "name", "property", "source",
    "state", "status", "type", "value", "version",
];

/// The least key overlap (Jaccard index) for a copy of a format to join a group.
const JOIN_OVERLAP: f64 = 0.5;

/// The named formats and enums of a tag.
pub struct Catalog {
    /// Struct name -> format.
    pub formats: BTreeMap<String, Format>,
    format_by_content: HashMap<String, String>,
    /// Enum name -> enum.
    pub enums: BTreeMap<String, EnumDef>,
    enum_by_values: HashMap<Vec<String>, String>,
}

/// One property-string format, merged from its copies.
pub struct Format {
    /// The keys with their schemas (alias keys included).
    pub keys: BTreeMap<String, Schema>,
    /// The key written without `key=`.
    pub default_key: Option<String>,
    /// Proxmox's description of the format (its first `typetext`).
    pub typetext: Option<String>,
    /// The property it was first met as, and where.
    pub first_use: String,
    /// Path groups whose operations use it.
    pub groups: BTreeSet<String>,
}

/// One string enum.
pub struct EnumDef {
    /// The values, in the schema's order.
    pub values: Vec<String>,
    /// The description of its first use.
    pub description: Option<String>,
    /// Path groups whose operations use it.
    pub groups: BTreeSet<String>,
}

/// A use of a format: where, and its copy of the keys.
struct FormatUse {
    property: String,
    content: String,
    keys: BTreeMap<String, Schema>,
    typetext: Option<String>,
    group: String,
    path: String,
}

impl Catalog {
    /// Collects and names the formats and enums used by the operations.
    pub fn build(metadata: &RouteMetadata, registry: &Registry) -> Self {
        let mut uses = Vec::new();
        for operation in &metadata.operations {
            let request = request_schema(operation);
            let returns = response_view(&operation.returns);
            for (property, schema) in request.properties.iter().flatten() {
                collect_formats(
                    schema,
                    property,
                    &operation.group,
                    &operation.path,
                    &mut uses,
                );
            }
            collect_formats(&returns, "", &operation.group, &operation.path, &mut uses);
        }
        let mut catalog = Catalog {
            formats: BTreeMap::new(),
            format_by_content: HashMap::new(),
            enums: BTreeMap::new(),
            enum_by_values: HashMap::new(),
        };
        catalog.name_formats(uses, registry);
        catalog.name_enums(metadata, registry);
        catalog
    }

    /// The struct name of a property-string schema.
    pub fn format_of(&self, schema: &Schema) -> Option<&str> {
        let keys = schema.property_string.as_ref()?;
        self.format_by_content
            .get(&content_key(keys))
            .map(String::as_str)
    }

    /// The enum name of a string schema with values.
    pub fn enum_of(&self, schema: &Schema) -> Option<&str> {
        let values = enum_values(schema)?;
        self.enum_by_values.get(&values).map(String::as_str)
    }

    fn name_formats(&mut self, uses: Vec<FormatUse>, registry: &Registry) {
        // Property name -> groups of uses (each a list of indices into `uses`).
        let mut by_property: BTreeMap<String, Vec<Vec<usize>>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        // Content -> the index of its first use; a later identical copy (under any property) keeps
        // the first one's name, but its path group still uses the struct (module placement).
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        let mut also_used_by: HashMap<usize, BTreeSet<String>> = HashMap::new();
        for (index, format_use) in uses.iter().enumerate() {
            if let Some(first) = first_of.get(format_use.content.as_str()) {
                also_used_by
                    .entry(*first)
                    .or_default()
                    .insert(format_use.group.clone());
                continue;
            }
            first_of.insert(format_use.content.as_str(), index);
            let clusters = by_property
                .entry(format_use.property.clone())
                .or_insert_with(|| {
                    order.push(format_use.property.clone());
                    Vec::new()
                });
            let keys: BTreeSet<&String> = format_use.keys.keys().collect();
            let joined = clusters.iter_mut().find(|cluster| {
                let cluster_keys: BTreeSet<&String> = cluster
                    .iter()
                    .flat_map(|member| uses[*member].keys.keys())
                    .collect();
                jaccard(&keys, &cluster_keys) >= JOIN_OVERLAP
            });
            match joined {
                Some(cluster) => cluster.push(index),
                None => clusters.push(vec![index]),
            }
        }
        for property in order {
            let Some(clusters) = by_property.get(&property) else {
                continue;
            };
            let words: Vec<BTreeSet<String>> = clusters
                .iter()
                .map(|cluster| {
                    cluster
                        .iter()
                        .flat_map(|member| static_words(&uses[*member].path))
                        .collect()
                })
                .collect();
            for (cluster_index, cluster) in clusters.iter().enumerate() {
                // `ipconfig` -> `IpConfig`, not `IpconfigConfig`.
                let word = naming::snake_word(&property);
                let word = match word.strip_suffix("config") {
                    Some(stem) if !stem.is_empty() => {
                        format!("{}_config", stem.trim_end_matches('_'))
                    }
                    _ => word,
                };
                let base = naming::pascal_case(&word);
                let base = if base.is_empty() {
                    "Value".to_owned()
                } else {
                    base
                };
                let prefix = if clusters.len() > 1 {
                    let first_path = &uses[cluster[0]].path;
                    static_words(first_path)
                        .into_iter()
                        .find(|word| {
                            words
                                .iter()
                                .enumerate()
                                .all(|(other, set)| other == cluster_index || !set.contains(word))
                        })
                        .map(|word| naming::pascal_case(&word))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                let wanted = if base.ends_with("Config") {
                    format!("{prefix}{base}")
                } else {
                    format!("{prefix}{base}Config")
                };
                let name = naming::unique(&wanted, |candidate| {
                    self.formats.contains_key(candidate)
                        || registry.components.contains_key(candidate)
                });
                let mut format = Format {
                    keys: BTreeMap::new(),
                    default_key: None,
                    typetext: uses[cluster[0]].typetext.clone(),
                    first_use: format!("`{property}` of `{}`", uses[cluster[0]].path),
                    groups: BTreeSet::new(),
                };
                let n_copies = cluster.len();
                let mut required_in: BTreeMap<String, usize> = BTreeMap::new();
                for member in cluster {
                    let format_use = &uses[*member];
                    format.groups.insert(format_use.group.clone());
                    if let Some(groups) = also_used_by.get(member) {
                        format.groups.extend(groups.iter().cloned());
                    }
                    for (key, key_schema) in &format_use.keys {
                        if !key_schema.optional {
                            *required_in.entry(key.clone()).or_default() += 1;
                        }
                        if key_schema.default_key && format.default_key.is_none() {
                            format.default_key = Some(key.clone());
                        }
                        format
                            .keys
                            .entry(key.clone())
                            .or_insert_with(|| key_schema.clone());
                    }
                    self.format_by_content
                        .insert(format_use.content.clone(), name.clone());
                }
                for (key, key_schema) in &mut format.keys {
                    let required = required_in.get(key).copied().unwrap_or(0) == n_copies;
                    key_schema.optional = !required;
                }
                self.formats.insert(name, format);
            }
        }
    }

    fn name_enums(&mut self, metadata: &RouteMetadata, registry: &Registry) {
        // Every (parent, property, schema, groups) that holds a string enum.
        let mut uses: Vec<(String, String, Schema, BTreeSet<String>)> = Vec::new();
        for (name, component) in &registry.components {
            let groups = component.groups.clone();
            match &component.schema.properties {
                Some(properties) if component.schema.family.is_none() => {
                    for (property, schema) in properties {
                        collect_enums(schema, name, property, &groups, &mut uses);
                    }
                }
                _ => collect_enums(&component.schema, name, "", &groups, &mut uses),
            }
        }
        for (name, format) in &self.formats {
            let parent = name.trim_end_matches("Config");
            for (key, schema) in &format.keys {
                collect_enums(schema, parent, key, &format.groups, &mut uses);
            }
        }
        for operation in &metadata.operations {
            let returns = response_view(&operation.returns);
            if registry.name_of(&returns).is_none() {
                let groups = BTreeSet::from([operation.group.clone()]);
                collect_enums(&returns, &operation.response_type, "", &groups, &mut uses);
            }
        }
        // A property name is unambiguous when all its enums have one value set.
        let mut sets_by_property: HashMap<String, BTreeSet<Vec<String>>> = HashMap::new();
        for (_, property, schema, _) in &uses {
            if let Some(values) = enum_values(schema) {
                sets_by_property
                    .entry(naming::snake_word(property))
                    .or_default()
                    .insert(values);
            }
        }
        // Value set -> the parents that use it (for `Guest...` names).
        let mut parents_by_values: HashMap<Vec<String>, BTreeSet<String>> = HashMap::new();
        for (parent, _, schema, _) in &uses {
            if let Some(values) = enum_values(schema) {
                parents_by_values
                    .entry(values)
                    .or_default()
                    .insert(parent.clone());
            }
        }
        for (parent, property, schema, groups) in uses {
            let Some(values) = enum_values(&schema) else {
                continue;
            };
            let mut description = schema.description.clone();
            if let Some(existing) = self.enum_by_values.get(&values) {
                if let Some(enum_def) = self.enums.get_mut(existing) {
                    enum_def.groups.extend(groups);
                }
                continue;
            }
            let property_word = naming::snake_word(&property);
            let unambiguous = !property_word.is_empty()
                && sets_by_property
                    .get(&property_word)
                    .is_some_and(|sets| sets.len() == 1);
            let parents = parents_by_values.get(&values);
            let is_guest = |prefix: &str| {
                parents.is_some_and(|parents| parents.iter().any(|p| p.starts_with(prefix)))
            };
            let shared_by_guests = is_guest("NodesQemu") && is_guest("NodesLxc");
            let wanted = if unambiguous && GENERIC_WORDS.contains(&property_word.as_str()) {
                // `model` alone says nothing: the NIC model of `NetConfig` is `NetModel`.
                format!("{parent}{}", naming::pascal_case(&property_word))
            } else if unambiguous {
                naming::pascal_case(&property_word)
            } else if shared_by_guests && !property_word.is_empty() {
                // One value set for both guest types (`status` of a VM and of a container).
                description = Some(format!(
                    "The `{property}` of a guest (QEMU VM or LXC container)."
                ));
                format!("Guest{}", naming::pascal_case(&property_word))
            } else if property_word.is_empty() {
                format!("{parent}Value")
            } else {
                format!("{parent}{}", naming::pascal_case(&property_word))
            };
            let taken = |candidate: &str| {
                self.enums.contains_key(candidate)
                    || self.formats.contains_key(candidate)
                    || registry.components.contains_key(candidate)
            };
            let wanted = if unambiguous && taken(&wanted) {
                format!("{parent}{}", naming::pascal_case(&property_word))
            } else {
                wanted
            };
            let name = naming::unique(&wanted, taken);
            self.enum_by_values.insert(values, name.clone());
            self.enums.insert(
                name,
                EnumDef {
                    values: schema
                        .enum_values
                        .iter()
                        .flatten()
                        .filter_map(|value| value.as_str().map(str::to_owned))
                        .collect(),
                    description,
                    groups,
                },
            );
        }
    }
}

/// The Rust variant names of an enum's values: PascalCase words, unique, never `Other` (the
/// fallback).
pub fn variant_names(values: &[String]) -> Vec<String> {
    let mut taken: BTreeSet<String> = BTreeSet::from(["Other".to_owned()]);
    values
        .iter()
        .map(|value| {
            let mut base = naming::pascal_case(&naming::snake_word(value));
            if base.is_empty() {
                base = "Empty".to_owned();
            }
            if base.starts_with(|c: char| c.is_ascii_digit()) {
                base.insert(0, 'V');
            }
            if base == "Other" {
                base = "OtherValue".to_owned();
            }
            let name = naming::unique(&base, |candidate| taken.contains(candidate));
            taken.insert(name.clone());
            name
        })
        .collect()
}

/// The sorted string values of an enum schema (`None` for other schemas and integer enums).
fn enum_values(schema: &Schema) -> Option<Vec<String>> {
    if schema.kind() != SchemaType::String || schema.property_string.is_some() {
        return None;
    }
    let values = schema.enum_values.as_ref()?;
    let mut strings: Vec<String> = values
        .iter()
        .map(|value| value.as_str().map(str::to_owned))
        .collect::<Option<_>>()?;
    if strings.is_empty() {
        return None;
    }
    strings.sort();
    strings.dedup();
    Some(strings)
}

fn collect_enums(
    schema: &Schema,
    parent: &str,
    property: &str,
    groups: &BTreeSet<String>,
    uses: &mut Vec<(String, String, Schema, BTreeSet<String>)>,
) {
    if enum_values(schema).is_some() {
        uses.push((
            parent.to_owned(),
            property.to_owned(),
            schema.clone(),
            groups.clone(),
        ));
    }
    if let Some(items) = &schema.items {
        collect_enums(items, parent, property, groups, uses);
    }
}

fn collect_formats(
    schema: &Schema,
    property: &str,
    group: &str,
    path: &str,
    uses: &mut Vec<FormatUse>,
) {
    if schema.one_of.is_some() {
        return;
    }
    if let Some(keys) = &schema.property_string {
        uses.push(FormatUse {
            property: property.trim_end_matches("[n]").to_owned(),
            content: content_key(keys),
            keys: keys.clone(),
            typetext: schema.typetext.clone(),
            group: group.to_owned(),
            path: path.to_owned(),
        });
    }
    if let Some(items) = &schema.items {
        collect_formats(items, property, group, path, uses);
    }
    for (child, child_schema) in schema.properties.iter().flatten() {
        collect_formats(child_schema, child, group, path, uses);
    }
}

fn content_key(keys: &BTreeMap<String, Schema>) -> String {
    serde_json::to_string(keys).unwrap_or_default()
}

fn jaccard(left: &BTreeSet<&String>, right: &BTreeSet<&String>) -> f64 {
    let union = left.union(right).count();
    if union == 0 {
        return 1.0;
    }
    left.intersection(right).count() as f64 / union as f64
}

/// The static words of a path, in order (`/nodes/{node}/qemu/{vmid}/config` -> nodes, qemu,
/// config).
fn static_words(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|segment| !segment.is_empty() && !segment.starts_with('{'))
        .map(naming::snake_word)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants() {
        let values: Vec<String> = ["other", "l26", "e1000-82540em", "", "4m", "a_b", "a-b"]
            .iter()
            .map(|value| (*value).to_owned())
            .collect();
        assert_eq!(
            variant_names(&values),
            [
                "OtherValue",
                "L26",
                "E100082540em",
                "Empty",
                "V4m",
                "AB",
                "AB2"
            ]
        );
    }

    /// The enum names of the latest tag: a general word never names an enum alone, the NIC model
    /// is `QemuNetModel`, the guest status shared by QEMU and LXC is `GuestStatus`.
    #[test]
    fn enum_names() {
        #![allow(clippy::unwrap_used)]
        let path = super::super::workspace_root()
            .join(super::super::GENERATED)
            .join("9.1/route_metadata.json");
        let metadata = RouteMetadata::from_json(&std::fs::read_to_string(path).unwrap()).unwrap();
        let registry = Registry::build(&metadata);
        let catalog = Catalog::build(&metadata, &registry);
        for word in GENERIC_WORDS {
            assert!(
                !catalog.enums.contains_key(&naming::pascal_case(word)),
                "{word}"
            );
        }
        let model = catalog.enums.get("QemuNetModel").unwrap();
        assert!(model.values.iter().any(|value| value == "virtio"));
        let status = catalog.enums.get("GuestStatus").unwrap();
        let mut values = status.values.clone();
        values.sort();
        assert_eq!(values, ["running", "stopped"]);
        assert!(
            !catalog
                .enums
                .keys()
                .any(|name| name.starts_with("NodesLxcStatusCurrent"))
        );
    }

    #[test]
    fn path_words() {
        assert_eq!(
            static_words("/nodes/{node}/qemu/{vmid}/config"),
            ["nodes", "qemu", "config"]
        );
    }
}
