//! The checked-in artifacts of every schema tag: counts match the source schema, hashes chain,
//! every operation is indexed, every `$ref` resolves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use openapiv3::{OpenAPI, ReferenceOr};
use route_metadata::RouteMetadata;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The counts of the pinned tags: a regenerated tag must keep them (new tags are checked
/// against `schemas/pve/index.json` by the tests below, without an edit here).
const PINNED: &[(&str, usize, usize)] = &[
    ("9.2", 444, 675),
    ("9.1", 431, 649),
    ("9.0", 410, 628),
    ("8.4", 398, 605),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn schema_index() -> Value {
    serde_json::from_str(&read("schemas/pve/index.json")).unwrap()
}

/// Every tag, newest first, with the path and operation counts `index.json` records; the list
/// is `crates/mock-server/generated/tags.json`, which codegen writes from `index.json`.
fn tags() -> Vec<(String, usize, usize)> {
    let list: Value =
        serde_json::from_str(&read("crates/mock-server/generated/tags.json")).unwrap();
    let index = schema_index();
    list["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| {
            let tag = tag.as_str().unwrap();
            let entry = index["schemas"]
                .as_array()
                .unwrap()
                .iter()
                .find(|entry| entry["tag"] == tag)
                .unwrap_or_else(|| panic!("{tag} is not in index.json"));
            let count = |key: &str| usize::try_from(entry[key].as_u64().unwrap()).unwrap();
            (tag.to_owned(), count("paths"), count("operations"))
        })
        .collect()
}

#[test]
fn the_tag_list_is_the_index_and_pinned_counts_hold() {
    let index = schema_index();
    let list: Value =
        serde_json::from_str(&read("crates/mock-server/generated/tags.json")).unwrap();
    assert_eq!(list["latest"], index["latest"]);
    assert_eq!(list["tags"][0], index["latest"], "latest is the newest tag");
    let tags = tags();
    assert_eq!(tags.len(), index["schemas"].as_array().unwrap().len());
    for (tag, paths, operations) in PINNED {
        let found = tags.iter().find(|(t, _, _)| t == tag);
        assert_eq!(
            found,
            Some(&((*tag).to_owned(), *paths, *operations)),
            "{tag}"
        );
    }
    assert_eq!(
        mock_server::TAGS,
        list["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(mock_server::LATEST, list["latest"].as_str().unwrap());
}

#[test]
fn schema_files_match_their_recorded_sha256() {
    let index = schema_index();
    for entry in index["schemas"].as_array().unwrap() {
        let file = format!("schemas/pve/{}", entry["file"].as_str().unwrap());
        let bytes = std::fs::read(root().join(&file)).unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&bytes)),
            entry["sha256"].as_str().unwrap(),
            "{file}"
        );
    }
}

#[test]
fn metadata_counts_and_hashes_match_the_source() {
    let index = schema_index();
    for (tag, paths, operations) in tags() {
        let (paths, operations) = (&paths, &operations);
        let metadata = RouteMetadata::from_json(&read(&format!(
            "crates/mock-server/generated/{tag}/route_metadata.json"
        )))
        .unwrap();
        assert_eq!(metadata.tag, *tag);
        assert_eq!(metadata.path_count, *paths, "{tag} paths");
        assert_eq!(metadata.operation_count, *operations, "{tag} operations");
        assert_eq!(metadata.operations.len(), *operations, "{tag}");
        let with_methods = metadata
            .paths
            .iter()
            .filter(|p| !p.methods.is_empty())
            .count();
        assert_eq!(with_methods, *paths, "{tag}");
        let entry = index["schemas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["tag"] == *tag)
            .unwrap();
        assert_eq!(
            metadata.schema_sha256,
            entry["sha256"].as_str().unwrap(),
            "{tag}"
        );
        let openapi = read(&format!("crates/mock-server/generated/{tag}/openapi.json"));
        assert_eq!(
            metadata.openapi_sha256,
            hex::encode(Sha256::digest(openapi.as_bytes())),
            "{tag}"
        );
    }
}

#[test]
fn operation_ids_are_unique_and_every_operation_is_indexed() {
    for (tag, _, _) in tags() {
        let metadata = RouteMetadata::from_json(&read(&format!(
            "crates/mock-server/generated/{tag}/route_metadata.json"
        )))
        .unwrap();
        let model_index: Value = serde_json::from_str(&read(&format!(
            "crates/mock-server/generated/{tag}/model_index.json"
        )))
        .unwrap();
        assert_eq!(
            model_index["schema_sha256"],
            metadata.schema_sha256.as_str()
        );
        let mut ids = BTreeSet::new();
        for operation in &metadata.operations {
            assert!(
                ids.insert(operation.operation_id.as_str()),
                "{tag}: duplicate {}",
                operation.operation_id
            );
            let entry = &model_index["operations"][&operation.operation_id];
            assert_eq!(
                entry["path"],
                operation.path.as_str(),
                "{tag} {}",
                operation.operation_id
            );
            assert_eq!(entry["response_type"], operation.response_type.as_str());
            assert!(operation.mounted.starts_with(route_metadata::API_PREFIX));
        }
        assert_eq!(
            model_index["operations"].as_object().unwrap().len(),
            metadata.operations.len()
        );
    }
}

#[test]
fn every_listed_module_exists_with_its_types() {
    let latest = schema_index()["latest"].as_str().unwrap().to_owned();
    let model_index: Value = serde_json::from_str(&read(&format!(
        "crates/mock-server/generated/{latest}/model_index.json"
    )))
    .unwrap();
    assert_eq!(model_index["rust_models"], true);
    for (module, types) in model_index["modules"].as_object().unwrap() {
        let source = read(&format!("crates/shared-types/src/generated/{module}.rs"));
        for name in types.as_array().unwrap() {
            let name = name.as_str().unwrap();
            assert!(
                source.contains(&format!("pub struct {name} "))
                    || source.contains(&format!("pub type {name} "))
                    || source.contains(&format!("::{name};")),
                "{module}.rs lacks {name}"
            );
        }
    }
}

fn resolve_refs(value: &Value, document: &Value, tag: &str, count: &mut usize) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                let pointer = reference
                    .strip_prefix('#')
                    .unwrap_or_else(|| panic!("{tag}: external ref {reference}"));
                assert!(
                    document.pointer(pointer).is_some(),
                    "{tag}: dangling {reference}"
                );
                *count += 1;
            }
            for child in map.values() {
                resolve_refs(child, document, tag, count);
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| resolve_refs(item, document, tag, count)),
        _ => {}
    }
}

#[test]
fn openapi_documents_parse_and_every_ref_resolves() {
    for (tag, paths, operations) in tags() {
        let (paths, operations) = (&paths, &operations);
        let text = read(&format!("crates/mock-server/generated/{tag}/openapi.json"));
        let document: OpenAPI = serde_json::from_str(&text).unwrap();
        assert_eq!(document.openapi, "3.0.3");
        assert_eq!(document.paths.paths.len(), *paths, "{tag}");
        let mut n_operations = 0;
        for item in document.paths.paths.values() {
            let ReferenceOr::Item(item) = item else {
                panic!("{tag}: path item reference")
            };
            for operation in item.iter() {
                n_operations += 1;
                let operation = operation.1;
                if let Some(ReferenceOr::Item(body)) = &operation.request_body {
                    assert_eq!(body.content.len(), 1, "{tag}: exactly one media type");
                    assert!(body.content.contains_key("application/json"));
                }
            }
        }
        assert_eq!(n_operations, *operations, "{tag}");
        let raw: Value = serde_json::from_str(&text).unwrap();
        let mut n_refs = 0;
        resolve_refs(&raw, &raw, &tag, &mut n_refs);
        assert!(
            n_refs > 1000,
            "{tag}: components are shared ({n_refs} refs)"
        );
    }
}
