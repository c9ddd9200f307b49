//! `cargo xtask schema add|fetch`: pinning a new Proxmox VE schema.
//!
//! - `add --tag X --from FILE` copies an `apidata.js` or an API-viewer capture (the format is
//!   recognised from the content) to `schemas/pve/<tag>/`, hashes and counts it, adds its entry to
//!   `schemas/pve/index.json` (with `--latest`, moves `latest`) and runs `cargo xtask codegen`.
//! - `fetch --out FILE` downloads Proxmox's published `apidata.js` (by default
//!   `https://pve.proxmox.com/pve-docs/api-viewer/apidata.js`, or `--url`), checks that it parses,
//!   and prints `key=value` lines (SHA-256, counts, the pinned tag with the same bytes if any) for
//!   the scheduled workflow. The download goes through `curl`, so the xtask keeps no HTTP stack.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::codegen::{self, capture, source};

/// Where Proxmox publishes the API viewer's data of its current release.
pub const PUBLISHED_APIDATA: &str = "https://pve.proxmox.com/pve-docs/api-viewer/apidata.js";

/// What `add` needs besides the file.
pub struct AddOptions {
    /// The new tag (`9.3`).
    pub tag: String,
    /// The file to pin.
    pub from: PathBuf,
    /// The release it describes (`9.3.0`); default: the tag with `.0`.
    pub release: Option<String>,
    /// For a capture: the tag whose missing fields are restored; default: the current `latest`.
    pub restore_from: Option<String>,
    /// Where the file came from (URL, repository and commit, package), recorded as given.
    pub origin: Option<String>,
    /// Make the new tag `latest`.
    pub latest: bool,
    /// Run codegen afterwards.
    pub regenerate: bool,
}

/// A schema file read for pinning.
struct Inspected {
    format: source::Format,
    sha256: String,
    bytes: usize,
    paths: usize,
    operations: usize,
}

fn inspect(bytes: &[u8]) -> anyhow::Result<Inspected> {
    let text = std::str::from_utf8(bytes).context("the file is not valid UTF-8")?;
    let is_capture = text.trim_start().starts_with('{') && text.contains("\"merged_endpoints\"");
    let (format, tree) = if is_capture {
        (source::Format::Capture, capture::parse(text)?)
    } else {
        (source::Format::Apidata, source::parse_apidata(text)?)
    };
    let operations = capture::operations(&tree);
    let mut paths: Vec<&str> = operations.keys().map(|(path, _)| path.as_str()).collect();
    paths.dedup();
    Ok(Inspected {
        format,
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: bytes.len(),
        paths: paths.len(),
        operations: operations.len(),
    })
}

/// `cargo xtask schema add`.
pub fn add(root: &Path, options: &AddOptions) -> anyhow::Result<()> {
    let tag = options.tag.as_str();
    let valid_tag = tag.split('.').count() == 2
        && tag
            .split('.')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    if !valid_tag {
        bail!("tag '{tag}' is not MAJOR.MINOR (e.g. 9.3)");
    }
    let index_path = source::index_path(root);
    let index = source::read_index(root)?;
    if index.schemas.iter().any(|entry| entry.tag == tag) {
        bail!("tag {tag} is already pinned in {}", index_path.display());
    }
    let bytes = std::fs::read(&options.from)
        .with_context(|| format!("cannot read {}", options.from.display()))?;
    let inspected = inspect(&bytes)
        .with_context(|| format!("{} is not a Proxmox API schema", options.from.display()))?;
    let file_name = match inspected.format {
        source::Format::Apidata => "apidata.js",
        source::Format::Capture => "raw_capture.json",
    };
    let relative = format!("{tag}/{file_name}");
    let release = options
        .release
        .clone()
        .unwrap_or_else(|| format!("{tag}.0"));
    let mut source_record = Map::new();
    if let Some(origin) = &options.origin {
        source_record.insert("origin".to_owned(), json!(origin));
    }
    let mut entry = Map::new();
    entry.insert("tag".to_owned(), json!(tag));
    entry.insert("file".to_owned(), json!(relative));
    if inspected.format == source::Format::Capture {
        let from = options
            .restore_from
            .clone()
            .unwrap_or_else(|| index.latest.clone());
        if !index.schemas.iter().any(|entry| entry.tag == from) {
            bail!("--restore-from {from} is not a pinned tag");
        }
        entry.insert("format".to_owned(), json!("capture"));
        entry.insert("restore_from".to_owned(), json!(from));
        source_record.insert("pve_version".to_owned(), json!(release));
    } else {
        source_record.insert("pve_docs_version".to_owned(), json!(release));
    }
    entry.insert("sha256".to_owned(), json!(inspected.sha256));
    entry.insert("bytes".to_owned(), json!(inspected.bytes));
    entry.insert("paths".to_owned(), json!(inspected.paths));
    entry.insert("operations".to_owned(), json!(inspected.operations));
    entry.insert("source".to_owned(), Value::Object(source_record));
    entry.insert(
        "license".to_owned(),
        json!("AGPL-3.0-or-later (Proxmox Server Solutions GmbH)"),
    );

    // Edit index.json as JSON (keys keep their order), the new entry where its version sorts.
    let text = std::fs::read_to_string(&index_path)
        .with_context(|| format!("cannot read {}", index_path.display()))?;
    let mut document: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", index_path.display()))?;
    let schemas = document
        .get_mut("schemas")
        .and_then(Value::as_array_mut)
        .context("index.json has no `schemas` array")?;
    let position = schemas
        .iter()
        .position(|other| {
            other
                .get("tag")
                .and_then(Value::as_str)
                .is_some_and(|other| version_key(other) < version_key(tag))
        })
        .unwrap_or(schemas.len());
    schemas.insert(position, Value::Object(entry));
    if options.latest {
        document["latest"] = json!(tag);
    }

    let target = root.join("schemas/pve").join(&relative);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&target, &bytes)
        .with_context(|| format!("cannot write {}", target.display()))?;
    std::fs::write(&index_path, codegen::to_json(&document))
        .with_context(|| format!("cannot write {}", index_path.display()))?;
    eprintln!(
        "schema add: {tag} ({:?}, {} paths, {} operations, sha256 {}) pinned as schemas/pve/{relative}",
        inspected.format, inspected.paths, inspected.operations, inspected.sha256
    );
    if options.regenerate {
        codegen::run(root, false)?;
    }
    Ok(())
}

/// `cargo xtask schema fetch`: downloads `url` to `out` with `curl`, checks it, and prints
/// `sha256=`, `bytes=`, `paths=`, `operations=` and `pinned_tag=` (empty when no pinned file has
/// these bytes).
pub fn fetch(root: &Path, url: &str, out: &Path) -> anyhow::Result<()> {
    let pinned = download(root, url, out)?;
    print!("{pinned}");
    Ok(())
}

/// What `fetch` found.
#[derive(Debug)]
pub struct Fetched {
    /// SHA-256 of the file.
    pub sha256: String,
    /// Size.
    pub bytes: usize,
    /// Paths with operations.
    pub paths: usize,
    /// Operations.
    pub operations: usize,
    /// The pinned tag with the same bytes, if any.
    pub pinned_tag: Option<String>,
}

impl std::fmt::Display for Fetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "sha256={}", self.sha256)?;
        writeln!(f, "bytes={}", self.bytes)?;
        writeln!(f, "paths={}", self.paths)?;
        writeln!(f, "operations={}", self.operations)?;
        writeln!(
            f,
            "pinned_tag={}",
            self.pinned_tag.as_deref().unwrap_or_default()
        )
    }
}

/// Downloads and checks; see [`fetch`].
pub fn download(root: &Path, url: &str, out: &Path) -> anyhow::Result<Fetched> {
    let status = Command::new("curl")
        .args([
            "--fail",
            "--silent",
            "--show-error",
            "--location",
            "--max-time",
            "120",
        ])
        .arg("--output")
        .arg(out)
        .arg(url)
        .status()
        .context("cannot run curl (needed by `schema fetch`)")?;
    if !status.success() {
        bail!("downloading {url} failed ({status})");
    }
    let bytes = std::fs::read(out).with_context(|| format!("cannot read {}", out.display()))?;
    let inspected =
        inspect(&bytes).with_context(|| format!("{url} is not a Proxmox API schema"))?;
    let index = source::read_index(root)?;
    let pinned_tag = index
        .schemas
        .iter()
        .find(|entry| entry.sha256 == inspected.sha256)
        .map(|entry| entry.tag.clone());
    Ok(Fetched {
        sha256: inspected.sha256,
        bytes: inspected.bytes,
        paths: inspected.paths,
        operations: inspected.operations,
        pinned_tag,
    })
}

fn version_key(tag: &str) -> Vec<u64> {
    tag.split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-schema-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("schemas/pve")).expect("scratch");
        dir
    }

    const APIDATA: &str = "const apiSchema = [\n{\"path\": \"/version\", \"text\": \"version\", \
        \"info\": {\"GET\": {\"name\": \"version\", \"method\": \"GET\", \
        \"parameters\": {\"additionalProperties\": 0}, \"returns\": {\"type\": \"object\"}}}}\n];\n";

    fn index(root: &Path, entries: Value, latest: &str) {
        let index = json!({"latest": latest, "schemas": entries});
        std::fs::write(source::index_path(root), codegen::to_json(&index)).expect("index");
    }

    fn pin(root: &Path, tag: &str, text: &str) -> Value {
        let dir = root.join("schemas/pve").join(tag);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("apidata.js"), text).expect("file");
        json!({"tag": tag, "file": format!("{tag}/apidata.js"),
               "sha256": hex::encode(Sha256::digest(text.as_bytes())), "bytes": text.len(),
               "paths": 1, "operations": 1, "source": {"pve_docs_version": format!("{tag}.0")}})
    }

    #[test]
    fn add_copies_hashes_counts_and_indexes_both_formats() {
        let root = scratch("add");
        index(&root, json!([pin(&root, "1.0", APIDATA)]), "1.0");

        let file = root.join("new.js");
        let text = APIDATA.replace("[\n", "[\n ");
        std::fs::write(&file, &text).expect("new");
        let options = |tag: &str, from: &Path, latest: bool| AddOptions {
            tag: tag.to_owned(),
            from: from.to_path_buf(),
            release: None,
            restore_from: None,
            origin: Some("test".to_owned()),
            latest,
            regenerate: false,
        };
        add(&root, &options("1.1", &file, true)).expect("add apidata");
        let index = source::read_index(&root).expect("index");
        assert_eq!(index.latest, "1.1");
        let entry = &index.schemas[0];
        assert_eq!(
            (entry.tag.as_str(), entry.paths, entry.operations),
            ("1.1", 1, 1)
        );
        assert_eq!(entry.sha256, hex::encode(Sha256::digest(text.as_bytes())));
        assert_eq!(entry.format, source::Format::Apidata);
        assert!(root.join("schemas/pve/1.1/apidata.js").exists());
        // The entry loads (SHA-256 checked) like any pinned tag.
        source::load(&root, entry.clone()).expect("loads");

        let capture = root.join("capture.json");
        std::fs::write(
            &capture,
            json!({"merged_endpoints": {"/version": {"methods": {"GET": {
                "method": "GET", "method_name": "version", "source": "x"}}},
                "/nodes": {"methods": {"GET": {"method_name": "index"}}}}})
            .to_string(),
        )
        .expect("capture");
        add(&root, &options("1.2", &capture, false)).expect("add capture");
        let index = source::read_index(&root).expect("index");
        assert_eq!(index.latest, "1.1", "not moved without --latest");
        let entry = &index.schemas[0];
        assert_eq!(entry.tag, "1.2", "newest first");
        assert_eq!(entry.format, source::Format::Capture);
        assert_eq!(entry.restore_from.as_deref(), Some("1.1"));
        assert_eq!((entry.paths, entry.operations), (2, 2));
        let loaded = source::load(&root, entry.clone()).expect("loads");
        assert!(loaded.restored.is_some());

        let error = add(&root, &options("1.2", &capture, false)).expect_err("twice");
        assert!(error.to_string().contains("already pinned"), "{error}");
        let error = add(&root, &options("latest", &capture, false)).expect_err("bad tag");
        assert!(error.to_string().contains("MAJOR.MINOR"), "{error}");
        std::fs::write(&file, "not a schema").expect("junk");
        let error = add(&root, &options("1.3", &file, false)).expect_err("junk");
        assert!(
            format!("{error:#}").contains("not a Proxmox API schema"),
            "{error:#}"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A one-shot HTTP server on 127.0.0.1 that answers every request with `body`.
    fn serve(body: &'static str) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        std::thread::spawn(move || {
            for stream in listener.incoming().take(2) {
                let Ok(mut stream) = stream else { continue };
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request);
                let (status, body) = if request.starts_with(b"GET /apidata.js ") {
                    ("200 OK", body)
                } else {
                    ("404 Not Found", "")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        format!("http://{address}")
    }

    #[test]
    fn fetch_downloads_checks_and_recognises_a_pinned_file() {
        let root = scratch("fetch");
        index(&root, json!([pin(&root, "1.0", APIDATA)]), "1.0");
        let base = serve(APIDATA);
        let out = root.join("fetched.js");
        let fetched = download(&root, &format!("{base}/apidata.js"), &out).expect("fetch");
        assert_eq!(std::fs::read_to_string(&out).expect("out"), APIDATA);
        assert_eq!(fetched.pinned_tag.as_deref(), Some("1.0"));
        assert_eq!((fetched.paths, fetched.operations), (1, 1));
        assert!(fetched.to_string().contains("pinned_tag=1.0\n"));
        let error = download(&root, &format!("{base}/missing.js"), &out).expect_err("404");
        assert!(error.to_string().contains("failed"), "{error}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
