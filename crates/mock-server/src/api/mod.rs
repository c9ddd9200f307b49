//! The compiled API of one schema tag: the embedded route metadata, one path matcher built
//! once at start-up, the per-path method table and the parameter patterns (each compiled once).
//!
//! Routing uses one trie of path segments over the templated paths ([`router`]), so the cost
//! of a lookup does not depend on where a route sits in the metadata. Matching runs on the raw
//! (still percent-encoded) path; parameter values are decoded afterwards, so `%2F` inside a
//! volume ID never splits a segment.

mod router;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use regex::Regex;
use route_metadata::{Method, Operation, PathKind, PathNode, RouteMetadata};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::Error;

pub use crate::embedded::{LATEST, TAGS};

/// Resolves `latest` and checks that a tag is known.
pub(crate) fn resolve_tag(tag: &str) -> Result<&'static str, Error> {
    let wanted = if tag == "latest" { LATEST } else { tag };
    TAGS.iter()
        .copied()
        .find(|known| *known == wanted)
        .ok_or_else(|| Error::UnknownSchema(tag.to_owned()))
}

/// The embedded `route_metadata.json` of a tag.
pub(crate) fn embedded_metadata(tag: &str) -> Option<&'static str> {
    crate::embedded::route_metadata(tag)
}

/// The SHA-256 of the schema an embedded tag was generated from, read from the head of its
/// document alone (so that the state can be opened while the rest is read).
pub(crate) fn embedded_schema_sha256(tag: &str) -> Result<String, Error> {
    let tag = resolve_tag(tag)?;
    let json = embedded_metadata(tag).ok_or_else(|| Error::UnknownSchema(tag.to_owned()))?;
    const PATHS: &str = "\"paths\":";
    json.find(PATHS)
        .and_then(|at| DocumentHeader::of(&json[..at + PATHS.len()]))
        .map(|header| header.schema_sha256)
        .ok_or_else(|| Error::UnknownSchema(tag.to_owned()))
}

/// The fields of a `route_metadata.json` before its `paths`.
#[derive(Deserialize)]
struct DocumentHeader {
    tag: String,
    schema_sha256: String,
    release: String,
}

impl DocumentHeader {
    /// Reads the header from the text up to the `paths` key (`{ ..., "paths":`).
    fn of(head: &str) -> Option<DocumentHeader> {
        let head = head.trim_end().strip_suffix("\"paths\":")?.trim_end();
        serde_json::from_str(&format!("{}}}", head.strip_suffix(',')?)).ok()
    }
}

/// The embedded `openapi.json` of a tag.
pub(crate) fn embedded_openapi(tag: &str) -> Option<&'static str> {
    crate::embedded::openapi(tag)
}

/// A matched request path.
#[derive(Debug, Clone)]
pub(crate) struct RouteMatch {
    /// Index into [`Meta::paths`].
    pub(crate) path_index: usize,
    /// Decoded path parameters, in template order.
    pub(crate) params: Vec<(String, String)>,
}

/// Why a path did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MatchError {
    /// No templated path matches.
    NotFound,
    /// A parameter is not valid percent-encoded UTF-8 or contains NUL.
    BadEncoding,
}

/// The route metadata of one tag as the server keeps it: the header parsed at start-up, each
/// path node and each operation read on first use.
///
/// Start-up only needs each node's path and, per operation, its path and method (to build the
/// matcher and the method table); the operations' parameter and return schemas are most of
/// the document, so each operation is kept as its slice of the embedded JSON, and each path
/// node as its compact line (checked at load), until a request (or a test) needs it.
#[derive(Debug)]
pub(crate) struct Meta {
    /// Schema tag, e.g. `9.1`.
    pub(crate) tag: String,
    /// Release string the mock reports from `/version`.
    pub(crate) release: String,
    /// Every path node of the API tree, sorted by path (each read from its compact line on
    /// first use).
    paths: Vec<LazyNode>,
    operations: Vec<LazyOperation>,
}

impl Meta {
    /// Every operation, sorted by path then method (parses those not parsed yet).
    #[cfg(test)]
    pub(crate) fn operations(&self) -> impl ExactSizeIterator<Item = &Operation> {
        self.operations.iter().map(LazyOperation::get)
    }

    /// How many path nodes the tag has (indexes `0..count`).
    pub(crate) fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// Every path node, in order (reads those not read yet).
    pub(crate) fn paths(&self) -> impl ExactSizeIterator<Item = &PathNode> {
        self.paths.iter().map(LazyNode::get)
    }

    /// How many operations the tag has (indexes `0..count`).
    pub(crate) fn operation_count(&self) -> usize {
        self.operations.len()
    }

    /// One operation by index.
    pub(crate) fn operation(&self, index: usize) -> Option<&Operation> {
        self.operations.get(index).map(LazyOperation::get)
    }

    /// Reads the document written by `cargo xtask codegen` through its index (`route_index.rs`):
    /// the paths are parsed, each operation is cut out of the text at its range and left as raw
    /// JSON; returns each operation's path and method too. `None` when the index does not fit
    /// the document (a range that is not an operation's object, another tag or release).
    ///
    /// With the compact node lines, each operation's path and method come from them: codegen
    /// sorts the operations by path and method as it sorts the nodes and their methods, so the
    /// operations are the nodes' methods in order (`embedded_indexes_fit` compares them with
    /// the document's for every tag; here the count and the first and last are checked). Else
    /// each operation's head is read from its text.
    #[allow(clippy::type_complexity)]
    fn from_index(
        json: &'static str,
        index: route_metadata::RouteIndexRef<'static>,
    ) -> Option<(Meta, Vec<(&'static str, Method)>)> {
        let cut = |[start, end]: [usize; 2]| json.get(start..end);
        // The compact lines when the index has them (a tenth of the parsing and allocations
        // of the array), else the array itself.
        // The compact lines are checked now and read into nodes on first use: start-up needs
        // only each node's path (a node took about 2,400 instructions and a dozen allocations
        // to build, most of the loading thread's time, which the first request waits for).
        let paths: Vec<LazyNode> = if index.nodes.is_empty() {
            serde_json::from_str::<Vec<PathNode>>(cut(index.paths)?)
                .ok()?
                .into_iter()
                .map(LazyNode::from)
                .collect()
        } else {
            index
                .nodes()
                .map(|line| {
                    PathNode::is_compact(line).then(|| LazyNode {
                        line: Some(line),
                        parsed: OnceLock::new(),
                    })
                })
                .collect::<Option<_>>()?
        };
        let mut heads: Vec<(&str, Method)> = Vec::with_capacity(index.operations.len());
        for line in index.nodes() {
            let mut fields = route_metadata::split_ascii(line, b' ');
            let path = fields.next()?;
            match fields.nth(3)? {
                "-" => {}
                methods => {
                    for method in route_metadata::split_ascii(methods, b',') {
                        heads.push((path, Method::parse(method)?));
                    }
                }
            }
        }
        let from_nodes = !index.nodes.is_empty();
        if from_nodes && heads.len() != index.operations.len() {
            return None;
        }
        let mut operations = Vec::with_capacity(index.operations.len());
        let last = index.operations.len().saturating_sub(1);
        for (at, range) in index.operations.iter().enumerate() {
            let raw = cut(*range)?;
            if !raw.starts_with('{') || !raw.ends_with('}') {
                return None;
            }
            if !from_nodes {
                heads.push(quick_head(raw)?);
            } else if (at == 0 || at == last) && quick_head(raw)? != heads[at] {
                return None;
            }
            operations.push(LazyOperation {
                raw: Some(raw),
                parsed: OnceLock::new(),
            });
        }
        // The header fields the index repeats must be the document's.
        let header = DocumentHeader::of(json.get(..index.paths[0])?)?;
        if (
            header.tag.as_str(),
            header.schema_sha256.as_str(),
            header.release.as_str(),
        ) != (index.tag, index.schema_sha256, index.release)
        {
            return None;
        }
        let meta = Meta {
            tag: index.tag.to_owned(),
            release: index.release.to_owned(),
            paths,
            operations,
        };
        Some((meta, heads))
    }

    /// Parses the document written by `cargo xtask codegen`, leaving the operations as raw
    /// JSON; returns each operation's path and method too. Scans the whole text: the fallback
    /// when the index does not fit.
    #[allow(clippy::type_complexity)]
    fn from_static_json(
        json: &'static str,
    ) -> Result<(Meta, Vec<(&'static str, Method)>), serde_json::Error> {
        #[derive(Deserialize)]
        struct Document {
            tag: String,
            release: String,
            paths: Vec<PathNode>,
            #[serde(borrow)]
            operations: Vec<&'static RawValue>,
        }
        let document: Document = serde_json::from_str(json)?;
        let mut heads = Vec::with_capacity(document.operations.len());
        for raw in &document.operations {
            heads.push(operation_head(raw)?);
        }
        let meta = Meta {
            tag: document.tag,
            release: document.release,
            paths: document.paths.into_iter().map(LazyNode::from).collect(),
            operations: document
                .operations
                .into_iter()
                .map(|raw| LazyOperation {
                    raw: Some(raw.get()),
                    parsed: OnceLock::new(),
                })
                .collect(),
        };
        Ok((meta, heads))
    }
}

impl From<RouteMetadata> for Meta {
    fn from(meta: RouteMetadata) -> Meta {
        Meta {
            tag: meta.tag,
            release: meta.release,
            paths: meta.paths.into_iter().map(LazyNode::from).collect(),
            operations: meta
                .operations
                .into_iter()
                .map(|op| LazyOperation {
                    raw: None,
                    parsed: OnceLock::from(Box::new(op)),
                })
                .collect(),
        }
    }
}

/// A path node, kept as its compact line (a slice of the embedded index, checked with
/// `PathNode::is_compact`) until first used.
#[derive(Debug)]
struct LazyNode {
    line: Option<&'static str>,
    parsed: OnceLock<PathNode>,
}

impl From<PathNode> for LazyNode {
    fn from(node: PathNode) -> LazyNode {
        LazyNode {
            line: None,
            parsed: OnceLock::from(node),
        }
    }
}

impl LazyNode {
    fn get(&self) -> &PathNode {
        self.parsed.get_or_init(|| {
            // A line is kept only after `PathNode::is_compact` accepted it, and that is
            // exactly when `from_compact` reads it (`compact_lines_read_as_checked`).
            #[allow(clippy::expect_used)]
            PathNode::from_compact(self.line.unwrap_or(""))
                .expect("a checked compact path node reads")
        })
    }

    /// The node's templated path, without reading the rest of its line.
    fn template(&self) -> &str {
        match self.line {
            Some(line) => PathNode::compact_path(line),
            None => &self.get().path,
        }
    }
}

/// An operation, parsed from its JSON on first use.
#[derive(Debug)]
struct LazyOperation {
    /// The operation's JSON object (a slice of the embedded document).
    raw: Option<&'static str>,
    /// Boxed: an `Operation` takes 928 bytes, and inline it made the table of a tag's 675
    /// operations 640 KB of fresh memory to touch at start-up (about 160 page faults, a sixth
    /// of the start's) for operations most runs never parse.
    parsed: OnceLock<Box<Operation>>,
}

impl LazyOperation {
    fn get(&self) -> &Operation {
        self.parsed.get_or_init(|| {
            let raw = self.raw.unwrap_or("");
            // The embedded documents are parsed whole by the tests (`embedded_operations_parse`)
            // and by codegen's check, so this cannot fail for them.
            #[allow(clippy::expect_used)]
            serde_json::from_str(raw).expect("embedded route metadata operation parses")
        })
    }
}

/// The path and method of a raw operation. The generated documents list `path`, `mounted` and
/// `method` first; those three are read by hand, anything else goes through serde.
fn operation_head(raw: &'static RawValue) -> Result<(&'static str, Method), serde_json::Error> {
    #[derive(Deserialize)]
    struct Head<'a> {
        #[serde(borrow)]
        path: &'a str,
        method: Method,
    }
    if let Some(head) = quick_head(raw.get()) {
        return Ok(head);
    }
    let head: Head<'static> = serde_json::from_str(raw.get())?;
    Ok((head.path, head.method))
}

fn quick_head(text: &'static str) -> Option<(&'static str, Method)> {
    // Byte-wise: the document is written by codegen (ASCII whitespace, plain strings).
    fn token<'t>(text: &'t str, expected: &str) -> Option<&'t str> {
        text.trim_ascii_start().strip_prefix(expected)
    }
    fn string(text: &str) -> Option<(&str, &str)> {
        let rest = token(text, "\"")?;
        let end = rest.bytes().position(|b| b == b'"' || b == b'\\')?;
        (rest.as_bytes()[end] == b'"').then(|| (&rest[..end], &rest[end + 1..]))
    }
    let rest = token(text, "{")?;
    let rest = token(token(rest, "\"path\"")?, ":")?;
    let (path, rest) = string(rest)?;
    let rest = token(token(token(rest, ",")?, "\"mounted\"")?, ":")?;
    let (_, rest) = string(rest)?;
    let rest = token(token(token(rest, ",")?, "\"method\"")?, ":")?;
    let (method, _) = string(rest)?;
    Some((path, Method::parse(method)?))
}

/// One schema tag, compiled for serving.
#[derive(Debug)]
pub(crate) struct Api {
    /// The metadata (operations parsed on first use).
    pub(crate) meta: Meta,
    /// The tag's `openapi.json` (if embedded).
    pub(crate) openapi: Option<&'static str>,
    router: router::Router,
    /// Per path node: the operation index for GET, POST, PUT, DELETE.
    methods: Vec<[Option<usize>; 4]>,
    /// Templates come from the schema and the route table, never from a request: hashed with
    /// foldhash, not SipHash (675 look-ups while the API is compiled).
    path_by_template: HashMap<String, usize, foldhash::fast::RandomState>,
    /// Per path node: the templates of the items on the way to it (`crate::ops::generic::
    /// check_exists`), computed on first use.
    item_prefixes: Vec<OnceLock<Box<[Box<str>]>>>,
    /// Schema patterns, compiled on first use (once; some Proxmox patterns are large
    /// alternations, and compiling all of them eagerly would dominate start-up). `None`: the
    /// pattern does not compile and is not enforced.
    patterns: RwLock<HashMap<String, Option<Arc<Regex>>>>,
    /// Generated values (see [`crate::schema::generate`]).
    pub(crate) generated: crate::schema::GenCache,
}

fn method_slot(method: Method) -> usize {
    match method {
        Method::Get => 0,
        Method::Post => 1,
        Method::Put => 2,
        Method::Delete => 3,
    }
}

/// The compiled API of each embedded tag, kept for the life of the process once loaded. An
/// [`Api`] never changes after it is compiled (the caches it fills on first use, patterns,
/// item templates and generated values, are functions of the tag alone), so every server of a
/// process shares its tag's, and [`preload`] can compile it on a thread of its own while the
/// process starts.
static LOADED: OnceLock<Box<[LoadedSlot]>> = OnceLock::new();

/// One tag's entry of [`LOADED`]: its API once compiled.
type LoadedSlot = Mutex<Option<Arc<Api>>>;

/// The cache slot of a resolved tag.
fn loaded_slot(tag: &str) -> Option<&'static LoadedSlot> {
    let slots = LOADED.get_or_init(|| TAGS.iter().map(|_| Mutex::new(None)).collect());
    let index = TAGS.iter().position(|known| *known == tag)?;
    slots.get(index)
}

/// Starts compiling a tag's API on a thread of its own, so that a server started a moment later
/// (by [`crate::MockServer::builder`]`.spawn()`) finds it compiled, or waits for the rest of it
/// instead of starting over. The binary calls it before it builds its runtime. An unknown tag,
/// or a thread that cannot start, is left for the server's start to report.
pub fn preload(tag: &str) {
    let Ok(tag) = resolve_tag(tag) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("mock-api-load".to_owned())
        .spawn(move || Api::load(tag));
}

impl Api {
    /// The compiled API of a tag: compiled from the embedded metadata by the first caller of
    /// the process (the others wait for it), then shared ([`LOADED`]).
    pub(crate) fn load(tag: &str) -> Result<Arc<Api>, Error> {
        let tag = resolve_tag(tag)?;
        let slot = loaded_slot(tag).ok_or_else(|| Error::UnknownSchema(tag.to_owned()))?;
        let mut loaded = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(api) = loaded.as_ref() {
            return Ok(Arc::clone(api));
        }
        let api = Api::compile_embedded(tag)?;
        *loaded = Some(Arc::clone(&api));
        Ok(api)
    }

    /// Parses the embedded metadata of a tag and compiles it.
    fn compile_embedded(tag: &'static str) -> Result<Arc<Api>, Error> {
        let json = embedded_metadata(tag).ok_or_else(|| Error::UnknownSchema(tag.to_owned()))?;
        let indexed =
            crate::embedded::route_index(tag).and_then(|index| Meta::from_index(json, index));
        let (meta, heads) = match indexed {
            Some(indexed) => indexed,
            None => {
                tracing::warn!(
                    tag,
                    "the embedded route index does not fit route_metadata.json; scanning the document"
                );
                Meta::from_static_json(json).map_err(|source| Error::Metadata {
                    tag: tag.to_owned(),
                    source,
                })?
            }
        };
        Ok(Arc::new(Api::compile(meta, &heads, embedded_openapi(tag))))
    }

    /// Compiles metadata (tests build small values by hand).
    pub(crate) fn new(meta: RouteMetadata, openapi: Option<&'static str>) -> Api {
        let heads: Vec<(String, Method)> = meta
            .operations
            .iter()
            .map(|op| (op.path.clone(), op.method))
            .collect();
        let heads: Vec<(&str, Method)> = heads
            .iter()
            .map(|(path, method)| (path.as_str(), *method))
            .collect();
        Api::compile(Meta::from(meta), &heads, openapi)
    }

    fn compile(meta: Meta, heads: &[(&str, Method)], openapi: Option<&'static str>) -> Api {
        let mut router = router::Router::new();
        let mut methods = vec![[None; 4]; meta.paths.len()];
        let mut path_by_template =
            HashMap::with_capacity_and_hasher(meta.paths.len(), Default::default());
        for (index, node) in meta.paths.iter().enumerate() {
            let template = node.template();
            path_by_template.insert(template.to_owned(), index);
            if let Err(error) = router.insert(template, index) {
                tracing::warn!(path = %template, %error, "route not added to the matcher");
            }
        }
        for (op_index, (path, method)) in heads.iter().enumerate() {
            if let Some(&path_index) = path_by_template.get(*path) {
                methods[path_index][method_slot(*method)] = Some(op_index);
            }
        }
        let item_prefixes = std::iter::repeat_with(OnceLock::new)
            .take(meta.paths.len())
            .collect();
        Api {
            meta,
            openapi,
            router,
            methods,
            item_prefixes,
            path_by_template,
            patterns: RwLock::new(HashMap::new()),
            generated: crate::schema::GenCache::default(),
        }
    }

    /// Matches a raw relative path (below `/api2/json`, still percent-encoded).
    pub(crate) fn match_path(&self, raw_path: &str) -> Result<RouteMatch, MatchError> {
        let path = if raw_path.len() > 1 {
            raw_path.trim_end_matches('/')
        } else {
            raw_path
        };
        let path = if path.is_empty() { "/" } else { path };
        let mut raw = Vec::new();
        let path_index = self.router.at(path, &mut raw).ok_or(MatchError::NotFound)?;
        let names = &self.meta.paths[path_index].get().path_params;
        let mut params = Vec::with_capacity(raw.len());
        for (name, value) in names.iter().zip(raw) {
            let decoded = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| MatchError::BadEncoding)?;
            if decoded.contains('\0') || decoded.is_empty() {
                return Err(MatchError::BadEncoding);
            }
            params.push((name.to_owned(), decoded.into_owned()));
        }
        Ok(RouteMatch { path_index, params })
    }

    /// The operation for a method at a path node.
    pub(crate) fn operation(
        &self,
        path_index: usize,
        method: Method,
    ) -> Option<(usize, &Operation)> {
        let op_index = self.methods.get(path_index)?[method_slot(method)]?;
        Some((op_index, self.meta.operation(op_index)?))
    }

    /// The operation for a method at a templated path.
    pub(crate) fn operation_at(&self, template: &str, method: Method) -> Option<&Operation> {
        let path_index = *self.path_by_template.get(template)?;
        self.operation(path_index, method).map(|(_, op)| op)
    }

    /// The index of a templated path.
    pub(crate) fn path_index(&self, template: &str) -> Option<usize> {
        self.path_by_template.get(template).copied()
    }

    /// The place of the item templates on the way to path node `index` (filled on first use).
    pub(crate) fn item_prefixes(&self, index: usize) -> Option<&OnceLock<Box<[Box<str>]>>> {
        self.item_prefixes.get(index)
    }

    /// A path node by index.
    pub(crate) fn node(&self, path_index: usize) -> &PathNode {
        self.meta.paths[path_index].get()
    }

    /// A path node by its templated path.
    pub(crate) fn node_at(&self, template: &str) -> Option<&PathNode> {
        self.path_by_template
            .get(template)
            .map(|&index| self.meta.paths[index].get())
    }

    /// The compiled, anchored regex of a schema pattern (`None` when it does not compile; such
    /// patterns are not enforced).
    pub(crate) fn pattern(&self, pattern: &str) -> Option<Arc<Regex>> {
        if let Some(compiled) = self
            .patterns
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(pattern)
        {
            return compiled.clone();
        }
        // The limit codegen proves every pattern compiles with.
        let compiled = match regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(route_metadata::PATTERN_SIZE_LIMIT)
            .build()
        {
            Ok(regex) => Some(Arc::new(regex)),
            Err(error) => {
                tracing::warn!(%pattern, %error, "pattern not compiled; not enforced");
                None
            }
        };
        self.patterns
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(pattern.to_owned())
            .or_insert(compiled)
            .clone()
    }

    /// Whether a templated path is an item (member of a collection).
    pub(crate) fn is_item(&self, template: &str) -> bool {
        self.node_at(template)
            .is_some_and(|node| node.kind == PathKind::Item)
    }
}

/// The one path-parameter accessor: the value of `name` among decoded path parameters.
pub(crate) fn path_param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Replaces the `{param}` segments of a template with values.
///
/// Requests call it up to three times (the existence check of the items on the way, the
/// collection, the object path), so it copies the literal runs between parameters whole,
/// found by byte searches, instead of walking every segment with `str::split`'s char searcher
/// (a twentieth of a guest list's instructions).
pub(crate) fn fill_template(template: &str, params: &[(String, String)]) -> String {
    if !template.starts_with('/') {
        return fill_segments(template, params);
    }
    let mut out = String::with_capacity(template.len() + 16);
    let bytes = template.as_bytes();
    let mut copied = 0;
    let mut from = 0;
    while let Some(open) = memchr::memchr(b'{', &bytes[from..]).map(|at| from + at) {
        // A parameter is a whole segment: `/{name}` followed by `/` or the end, with no `/`
        // or brace inside.
        let close = memchr::memchr3(b'}', b'/', b'{', &bytes[open + 1..]).map(|at| open + 1 + at);
        let Some(close) = close.filter(|&close| bytes[close] == b'}') else {
            from = open + 1;
            continue;
        };
        let whole = bytes[open - 1] == b'/' && matches!(bytes.get(close + 1), None | Some(b'/'));
        if whole && let Some(value) = path_param(params, &template[open + 1..close]) {
            out.push_str(&template[copied..open]);
            out.push_str(value);
            copied = close + 1;
        }
        from = close + 1;
    }
    out.push_str(&template[copied..]);
    out
}

/// [`fill_template`] segment by segment, for a template without its leading `/` (the first
/// segment is dropped, as it always was).
fn fill_segments(template: &str, params: &[(String, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    for segment in template.split('/').skip(1) {
        out.push('/');
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            out.push_str(path_param(params, name).unwrap_or(segment));
        } else {
            out.push_str(segment);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The parent of a templated or concrete path (`/a/b` -> `/a`, `/a` -> `/`).
pub(crate) fn parent(path: &str) -> &str {
    match last_slash(path) {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

/// The last segment of a path.
pub(crate) fn last_segment(path: &str) -> &str {
    match last_slash(path) {
        Some(index) => &path[index + 1..],
        None => path,
    }
}

/// Where the last `/` of a path is: a byte search (guest lists call this per guest, where
/// `rsplit`'s char searcher cost a sixth of `/cluster/resources`).
fn last_slash(path: &str) -> Option<usize> {
    path.bytes().rposition(|b| b == b'/')
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn fills_templates() {
        let params = vec![
            ("node".to_owned(), "pve1".to_owned()),
            ("vmid".to_owned(), "100".to_owned()),
        ];
        assert_eq!(
            fill_template("/nodes/{node}/qemu/{vmid}/config", &params),
            "/nodes/pve1/qemu/100/config"
        );
        assert_eq!(fill_template("/", &[]), "/");
        assert_eq!(parent("/nodes/pve1"), "/nodes");
        assert_eq!(parent("/nodes"), "/");
        assert_eq!(last_segment("/nodes/pve1"), "pve1");
        assert_eq!(last_segment("/nodes/"), "");
        assert_eq!(last_segment("pve1"), "pve1");
        assert_eq!(last_segment("/nodes/pvé1"), "pvé1");
        assert_eq!(parent("/"), "/");
        assert_eq!(parent("pve1"), "/");
    }

    /// The byte-search `fill_template` answers as the segment walk does, on every template of
    /// every tag (all parameters given, none, and some) and on malformed ones.
    #[test]
    fn fill_template_agrees_with_the_segment_walk() {
        let odd = [
            "/",
            "//",
            "/a/",
            "/{}",
            "/{a",
            "/a}",
            "/{a}b",
            "/b{a}",
            "/{{a}}",
            "/{a}{b}",
            "/{a/b}",
            "/x/{a}/",
            "/{a}//{b}",
            "/é/{a}/ü",
            "/{é}",
        ];
        let params = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|name| ((*name).to_owned(), format!("v-{name}")))
                .collect()
        };
        for template in odd {
            for given in [params(&[]), params(&["a", "b", "é", ""])] {
                assert_eq!(
                    fill_template(template, &given),
                    fill_segments(template, &given),
                    "{template}"
                );
            }
        }
        for tag in TAGS {
            let api = Api::load(tag).unwrap();
            for node in api.meta.paths() {
                let names: Vec<&str> = node
                    .path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                    .collect();
                for given in [
                    params(&names),
                    params(&[]),
                    params(&names[..names.len() / 2]),
                ] {
                    assert_eq!(
                        fill_template(&node.path, &given),
                        fill_segments(&node.path, &given),
                        "{}",
                        node.path
                    );
                }
            }
        }
    }

    #[test]
    fn matches_routes_independent_of_position() {
        let api = crate::test_api::small_api();
        let matched = api.match_path("/nodes/pve1/qemu/100/config").unwrap();
        assert_eq!(
            api.node(matched.path_index).path,
            "/nodes/{node}/qemu/{vmid}/config"
        );
        assert_eq!(matched.params[0], ("node".to_owned(), "pve1".to_owned()));
        let matched = api.match_path("/nodes/pve1/qemu/").unwrap();
        assert_eq!(api.node(matched.path_index).path, "/nodes/{node}/qemu");
        assert_eq!(
            api.match_path("/nodes/pve1/nothing").unwrap_err(),
            MatchError::NotFound
        );
        assert_eq!(
            api.match_path("/nodes/a%00b/qemu").unwrap_err(),
            MatchError::BadEncoding
        );
        assert_eq!(
            api.match_path("/nodes/%FF/qemu").unwrap_err(),
            MatchError::BadEncoding
        );
        let matched = api
            .match_path("/nodes/pve1/tasks/UPID%3Apve1%3A1/status")
            .unwrap();
        assert_eq!(matched.params[1].1, "UPID:pve1:1");
    }

    #[test]
    fn embedded_operations_parse() {
        for tag in TAGS {
            let json = embedded_metadata(tag).unwrap();
            let full = RouteMetadata::from_json(json).unwrap();
            let api = Api::load(tag).unwrap();
            assert_eq!(api.meta.operations().len(), full.operations.len());
            for (index, op) in full.operations.iter().enumerate() {
                let path_index = *api.path_by_template.get(&op.path).unwrap();
                let (at, lazy) = api.operation(path_index, op.method).unwrap();
                assert_eq!(at, index);
                assert_eq!(lazy, op);
            }
            assert!(api.meta.paths().eq(full.paths.iter()));
            assert_eq!(api.meta.release, full.release);
        }
    }

    /// A test's own index, for as long as the tests run.
    fn leak(index: route_metadata::RouteIndex) -> route_metadata::RouteIndexRef<'static> {
        let index: &'static route_metadata::RouteIndex = Box::leak(Box::new(index));
        let nodes: &'static str = Box::leak(index.nodes_text().into_boxed_str());
        index.as_ref(nodes)
    }

    /// Every compact line of every embedded index is one `PathNode::is_compact` accepts and
    /// `PathNode::from_compact` reads, with the path `PathNode::compact_path` gives (what
    /// `LazyNode` relies on); a damaged line is refused by both.
    #[test]
    fn compact_lines_read_as_checked() {
        for tag in TAGS {
            let index = crate::embedded::route_index(tag).unwrap();
            assert!(!index.nodes.is_empty(), "{tag}");
            for line in index.nodes() {
                assert!(PathNode::is_compact(line), "{tag}: {line}");
                let node = PathNode::from_compact(line).unwrap();
                assert_eq!(PathNode::compact_path(line), node.path);
                let damaged = line.replacen(' ', "  ", 1);
                assert!(!PathNode::is_compact(&damaged), "{damaged}");
                assert!(PathNode::from_compact(&damaged).is_none(), "{damaged}");
            }
        }
    }

    /// Every embedded tag starts through its index (not the scan), and the index gives what
    /// the scan gives; an index that does not fit its document is refused.
    #[test]
    fn embedded_indexes_fit() {
        for tag in TAGS {
            let json = embedded_metadata(tag).unwrap();
            let index = crate::embedded::route_index(tag).unwrap();
            let (meta, heads) = Meta::from_index(json, index).unwrap();
            let (scanned, scanned_heads) = Meta::from_static_json(json).unwrap();
            let sha = serde_json::from_str::<route_metadata::RouteMetadata>(json)
                .unwrap()
                .schema_sha256;
            assert_eq!(embedded_schema_sha256(tag).unwrap(), sha);
            // The compiled-in index is the one codegen makes of the embedded document.
            let fresh = route_metadata::RouteIndex::of(json).unwrap();
            let nodes = fresh.nodes_text();
            assert_eq!(index, fresh.as_ref(&nodes));
            assert!(!index.nodes.is_empty());
            assert_eq!(heads, scanned_heads);
            assert!(meta.paths().eq(scanned.paths()));
            assert_eq!((&meta.tag, &meta.release), (&scanned.tag, &scanned.release));
            let raws = |meta: &Meta| -> Vec<Option<&str>> {
                meta.operations.iter().map(|op| op.raw).collect()
            };
            assert_eq!(raws(&meta), raws(&scanned));

            assert!(Meta::from_index(json, leak(fresh.clone())).is_some());
            let mut shifted = fresh.clone();
            shifted.operations[1][0] += 1;
            assert!(Meta::from_index(json, leak(shifted)).is_none());
            let mut other = fresh.clone();
            other.release.push('1');
            assert!(Meta::from_index(json, leak(other)).is_none());
            let mut cut = fresh.clone();
            cut.operations[0][1] -= 1;
            assert!(Meta::from_index(json, leak(cut)).is_none());
        }
    }

    /// Every pattern of every embedded tag compiles in the mock, with the same size limit as
    /// codegen, so none is skipped (and so left unenforced) at run time.
    #[test]
    fn every_pattern_compiles() {
        fn collect<'s>(schema: &'s route_metadata::Schema, out: &mut Vec<&'s str>) {
            if let Some(pattern) = &schema.pattern {
                out.push(pattern);
            }
            for child in schema
                .properties
                .iter()
                .chain(schema.property_string.iter())
                .flat_map(|props| props.values())
                .chain(schema.items.as_deref())
                .chain(schema.one_of.iter().flatten())
            {
                collect(child, out);
            }
        }
        for tag in TAGS {
            let api = Api::load(tag).unwrap();
            let mut patterns = Vec::new();
            for op in api.meta.operations() {
                for schema in op.parameters.values() {
                    collect(schema, &mut patterns);
                }
                collect(&op.returns, &mut patterns);
            }
            patterns.sort_unstable();
            patterns.dedup();
            assert!(
                patterns.len() > 40,
                "{tag}: only {} patterns",
                patterns.len()
            );
            let failed: Vec<&&str> = patterns
                .iter()
                .filter(|pattern| api.pattern(pattern).is_none())
                .collect();
            assert!(failed.is_empty(), "{tag}: {failed:?}");
        }
    }

    #[test]
    fn resolves_tags() {
        assert_eq!(
            resolve_tag("latest").unwrap(),
            TAGS[0],
            "latest is the newest tag"
        );
        assert_eq!(resolve_tag("8.4").unwrap(), "8.4");
        assert!(resolve_tag("7.0").is_err());
    }
}
