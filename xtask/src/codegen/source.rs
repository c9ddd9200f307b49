//! Reading the pinned schemas: `schemas/pve/index.json` and each tag's source file.
//!
//! Two formats ([`Format`]): `apidata.js`, a JavaScript file that assigns one JSON array
//! (`const apiSchema = [...];`; we find the array and parse it as JSON, nothing is evaluated),
//! and a capture of Proxmox's API viewer (`raw_capture.json`, read by [`super::capture`] into the
//! same tree, with what it lacks restored from the tag named by `restore_from`).

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
    /// The file's format.
    #[serde(default)]
    pub format: Format,
    /// For a capture: the tag whose `proxyto`, `expose_credentials` and `download_allowed` are
    /// restored (`capture::restore`).
    #[serde(default)]
    pub restore_from: Option<String>,
}

/// The format of a pinned schema file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// pve-docs' `api-viewer/apidata.js`.
    #[default]
    Apidata,
    /// A capture of the API viewer (`raw_capture.json`).
    Capture,
}

/// Provenance of a pinned schema.
#[derive(Debug, Clone, Deserialize)]
pub struct Source {
    /// The release the file describes: the pve-docs version an `apidata.js` was taken from
    /// (`pve_docs_version`, e.g. `9.1.3`) or the Proxmox VE version of a capture (`pve_version`).
    #[serde(rename = "pve_docs_version", alias = "pve_version")]
    pub release: String,
}

/// A loaded schema: its tag, bytes' SHA-256 and the parsed tree.
pub struct LoadedSchema {
    /// The index entry.
    pub entry: IndexEntry,
    /// SHA-256 of the file as read.
    pub sha256: String,
    /// The top-level array of path nodes.
    pub tree: Vec<Value>,
    /// For a capture: every field restored (`capture::restore`).
    pub restored: Option<Vec<super::capture::Restored>>,
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

/// Reads and parses one tag's source file, checking its SHA-256 against the index; a capture
/// is restored from its `restore_from` tag, read from `index.json` below `root`.
pub fn load(root: &Path, entry: IndexEntry) -> anyhow::Result<LoadedSchema> {
    load_at_depth(root, entry, 0)
}

fn load_at_depth(root: &Path, entry: IndexEntry, depth: usize) -> anyhow::Result<LoadedSchema> {
    if depth > 8 {
        bail!("tag {}: `restore_from` tags form a cycle", entry.tag);
    }
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
    let (tree, restored) = match entry.format {
        Format::Apidata => (
            parse_apidata(text).with_context(|| format!("cannot parse {}", path.display()))?,
            None,
        ),
        Format::Capture => {
            let mut tree = super::capture::parse(text)
                .with_context(|| format!("cannot parse {}", path.display()))?;
            let from = entry.restore_from.as_deref().with_context(|| {
                format!(
                    "tag {}: a capture needs `restore_from` (the previous tag) in \
                     schemas/pve/index.json",
                    entry.tag
                )
            })?;
            let previous = read_index(root)?
                .schemas
                .into_iter()
                .find(|candidate| candidate.tag == from)
                .with_context(|| {
                    format!("tag {}: `restore_from` tag {from} is not listed", entry.tag)
                })?;
            let previous = load_at_depth(root, previous, depth + 1)?;
            let restored = super::capture::restore(&mut tree, &previous.tree);
            (tree, Some(restored))
        }
    };
    Ok(LoadedSchema {
        entry,
        sha256,
        tree,
        restored,
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
