//! Reading the pinned schemas: `schemas/pve/index.json` and each tag's `apidata.js`.
//!
//! `apidata.js` is a JavaScript file that assigns one JSON array (`const apiSchema = [...];`).
//! We find the array and parse it as JSON; nothing is evaluated.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `schemas/pve/index.json`.
#[derive(Debug, Deserialize)]
pub struct Index {
    /// Tag served when `latest` is asked for.
    pub latest: String,
    /// One entry per pinned schema.
    pub schemas: Vec<IndexEntry>,
}

/// One pinned schema in `index.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct IndexEntry {
    /// Version tag, e.g. `9.1`.
    pub tag: String,
    /// File relative to `schemas/pve/`.
    pub file: String,
    /// Expected SHA-256 (hex) of the file.
    pub sha256: String,
    /// Expected number of paths with operations.
    pub paths: usize,
    /// Expected number of operations.
    pub operations: usize,
    /// Where the file came from.
    pub source: Source,
}

/// Provenance of a pinned schema.
#[derive(Debug, Clone, Deserialize)]
pub struct Source {
    /// pve-docs version the file was taken from (e.g. `9.1.3`).
    pub pve_docs_version: String,
}

/// A loaded schema: its tag, bytes' SHA-256 and the parsed tree.
pub struct LoadedSchema {
    /// The index entry.
    pub entry: IndexEntry,
    /// SHA-256 of the file as read.
    pub sha256: String,
    /// The top-level array of path nodes.
    pub tree: Vec<Value>,
}

/// Reads `schemas/pve/index.json` below `root`.
pub fn read_index(root: &Path) -> anyhow::Result<Index> {
    let path = index_path(root);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let index: Index = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid schema index", path.display()))?;
    let mut seen = std::collections::BTreeSet::new();
    for entry in &index.schemas {
        if !seen.insert(entry.tag.as_str()) {
            bail!("{}: tag {} is listed twice", path.display(), entry.tag);
        }
    }
    if !seen.contains(index.latest.as_str()) {
        bail!(
            "{}: `latest` names tag {} which is not listed",
            path.display(),
            index.latest
        );
    }
    Ok(index)
}

/// Path of `index.json`.
pub fn index_path(root: &Path) -> PathBuf {
    root.join("schemas/pve/index.json")
}

/// Reads and parses one tag's `apidata.js`, checking its SHA-256 against the index.
pub fn load(root: &Path, entry: IndexEntry) -> anyhow::Result<LoadedSchema> {
    let path = root.join("schemas/pve").join(&entry.file);
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    if sha256 != entry.sha256 {
        bail!(
            "{}: SHA-256 is {sha256} but schemas/pve/index.json records {} for tag {}; \
             if the schema was updated on purpose, update index.json",
            path.display(),
            entry.sha256,
            entry.tag
        );
    }
    let text = std::str::from_utf8(&bytes)
        .with_context(|| format!("{} is not valid UTF-8", path.display()))?;
    let tree = parse_apidata(text).with_context(|| format!("cannot parse {}", path.display()))?;
    Ok(LoadedSchema {
        entry,
        sha256,
        tree,
    })
}

/// Extracts and parses the JSON array from the text of an `apidata.js`.
pub fn parse_apidata(text: &str) -> anyhow::Result<Vec<Value>> {
    let start = text
        .find('[')
        .context("no JSON array found (expected `const apiSchema = [ ... ];`)")?;
    let end = text
        .rfind(']')
        .filter(|end| *end > start)
        .context("the JSON array is not closed (truncated file?)")?;
    let json = &text[start..=end];
    let value: Value = serde_json::from_str(json).map_err(|error| {
        let line_offset = text[..start].lines().count().saturating_sub(1);
        anyhow::anyhow!(
            "malformed JSON at line {}, column {}: {error}",
            error.line() + line_offset,
            error.column()
        )
    })?;
    match value {
        Value::Array(nodes) if !nodes.is_empty() => Ok(nodes),
        Value::Array(_) => bail!("the schema array is empty"),
        _ => bail!("expected an array of path nodes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_array_without_evaluating_javascript() {
        let nodes = parse_apidata("const apiSchema = [\n {\"path\": \"/version\"}\n]\n;\n")
            .expect("parses");
        assert_eq!(nodes.len(), 1);
    }

    #[test]
    fn truncated_and_malformed_files_are_named_errors() {
        let error =
            parse_apidata("const apiSchema = [\n {\"path\": \"/version\"").expect_err("truncated");
        assert!(error.to_string().contains("not closed"), "{error}");
        let error = parse_apidata("const apiSchema = [\n {\"path\": }\n];").expect_err("malformed");
        assert!(error.to_string().contains("line 2"), "{error}");
        let error = parse_apidata("nothing here").expect_err("no array");
        assert!(error.to_string().contains("no JSON array"), "{error}");
    }
}
