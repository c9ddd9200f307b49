//! Property-string formats that Proxmox registers by name, for the Rust models.
//!
//! Perl registers some property-string formats by name (`register_format('pve-qm-boot',
//! $boot_fmt)`, `pve-vm-cpu-conf`, `pve-qm-smbios1`, `pve-qm-ide`, `pve-qm-ipconfig`...), and
//! `apidata.js` gives for them only the name and a `typetext`, not the keys. Their keys are
//! written down once, from the Perl definitions, in [`SOURCE`]; codegen copies that file to
//! [`OUTPUT`], where the mock embeds it to check such values.
//!
//! For the models, [`expand`] fills in the keys wherever a string schema names one of these
//! formats, so [`super::catalog`] names a struct for them like for an inline property string
//! (`boot: Option<BootConfig>` instead of `Option<String>`). Only the Rust models and the SDK's
//! typed layer see the expansion: the OpenAPI document, the route metadata and the model index
//! keep the schema as Proxmox publishes it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use route_metadata::{RouteMetadata, Schema, SchemaType};

/// The hand-written table of named hash formats (format name -> key -> schema).
pub const SOURCE: &str = "schemas/pve/hash_formats.json";

/// Where codegen copies [`SOURCE`] for the mock to embed.
pub const OUTPUT: &str = "crates/mock-server/generated/hash_formats.json";

/// Format name -> its keys.
pub type Table = BTreeMap<String, BTreeMap<String, Schema>>;

/// Reads [`SOURCE`] below `root`; returns the table and the file's text (copied verbatim).
pub fn load(root: &Path) -> anyhow::Result<(Table, String)> {
    let path = root.join(SOURCE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: Table =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for (name, keys) in &table {
        anyhow::ensure!(!keys.is_empty(), "{SOURCE}: format `{name}` has no keys");
    }
    Ok((table, text))
}

/// A copy of `metadata` where every string schema that names a format of `table` (and has no
/// inline keys) carries that format's keys as its property string.
pub fn expand(metadata: &RouteMetadata, table: &Table) -> RouteMetadata {
    let mut expanded = metadata.clone();
    for operation in &mut expanded.operations {
        for schema in operation.parameters.values_mut() {
            expand_schema(schema, table);
        }
        expand_schema(&mut operation.returns, table);
    }
    expanded
}

fn expand_schema(schema: &mut Schema, table: &Table) {
    if schema.kind() == SchemaType::String
        && schema.property_string.is_none()
        && let Some(keys) = schema.format.as_deref().and_then(|name| table.get(name))
    {
        schema.property_string = Some(keys.clone());
    }
    if let Some(items) = &mut schema.items {
        expand_schema(items, table);
    }
    for member in schema
        .properties
        .iter_mut()
        .flat_map(|map| map.values_mut())
    {
        expand_schema(member, table);
    }
    for branch in schema.one_of.iter_mut().flatten() {
        expand_schema(branch, table);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_with_format(format: &str) -> Schema {
        serde_json::from_value(serde_json::json!({"type": "string", "format": format}))
            .expect("schema")
    }

    #[test]
    fn the_table_parses_and_names_the_formats_the_models_type() {
        let (table, _) = load(&super::super::workspace_root()).expect("load");
        for name in [
            "pve-qm-boot",
            "pve-vm-cpu-conf",
            "pve-qm-smbios1",
            "pve-qm-ide",
        ] {
            assert!(table.contains_key(name), "{name} missing");
        }
        let boot = &table["pve-qm-boot"];
        assert!(boot.contains_key("order") && boot.contains_key("legacy"));
    }

    #[test]
    fn a_named_format_gets_its_keys_nested_and_in_lists() {
        let mut table = Table::new();
        let keys: BTreeMap<String, Schema> = serde_json::from_value(serde_json::json!({
            "order": {"type": "string", "optional": true}
        }))
        .expect("keys");
        table.insert("pve-qm-boot".to_owned(), keys.clone());

        let mut schema: Schema = serde_json::from_value(serde_json::json!({
            "type": "object",
            "properties": {
                "boot": {"type": "string", "format": "pve-qm-boot"},
                "other": {"type": "string", "format": "pve-vmid"},
                "list": {"type": "array", "items": {"type": "string", "format": "pve-qm-boot"}}
            }
        }))
        .expect("schema");
        expand_schema(&mut schema, &table);
        let properties = schema.properties.as_ref().expect("properties");
        assert_eq!(properties["boot"].property_string.as_ref(), Some(&keys));
        assert_eq!(properties["other"].property_string, None);
        let item = properties["list"].items.as_ref().expect("items");
        assert_eq!(item.property_string.as_ref(), Some(&keys));

        // An integer that happens to carry a format name is left alone.
        let mut number = string_with_format("pve-qm-boot");
        number.ty = Some(SchemaType::Integer);
        expand_schema(&mut number, &table);
        assert_eq!(number.property_string, None);
    }
}
