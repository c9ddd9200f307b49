//! The compiled API of one schema tag: the embedded route metadata, one path matcher built
//! once at start-up, the per-path method table and the parameter patterns (each compiled once).
//!
//! Routing uses a single [`matchit`] radix tree over the templated paths (Proxmox's `{param}`
//! syntax is matchit's), so the cost of a lookup does not depend on where a route sits in the
//! metadata. Matching runs on the raw (still percent-encoded) path; parameter values are decoded
//! afterwards, so `%2F` inside a volume ID never splits a segment.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use regex::Regex;
use route_metadata::{Method, Operation, PathKind, PathNode, RouteMetadata, Schema};

use crate::error::Error;

/// Schema tags embedded in this build, newest first.
pub const TAGS: &[&str] = &["9.1", "9.0", "8.4"];

/// The tag `latest` resolves to.
pub const LATEST: &str = "9.1";

/// Resolves `latest` and checks that a tag is known.
pub fn resolve_tag(tag: &str) -> Result<&'static str, Error> {
    let wanted = if tag == "latest" { LATEST } else { tag };
    TAGS.iter()
        .copied()
        .find(|known| *known == wanted)
        .ok_or_else(|| Error::UnknownSchema(tag.to_owned()))
}

/// The embedded `route_metadata.json` of a tag.
pub fn embedded_metadata(tag: &str) -> Option<&'static str> {
    crate::embedded::route_metadata(tag)
}

/// The embedded `openapi.json` of a tag.
pub fn embedded_openapi(tag: &str) -> Option<&'static str> {
    crate::embedded::openapi(tag)
}

/// A matched request path.
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// Index into [`RouteMetadata::paths`].
    pub path_index: usize,
    /// Decoded path parameters, in template order.
    pub params: Vec<(String, String)>,
}

/// Why a path did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchError {
    /// No templated path matches.
    NotFound,
    /// A parameter is not valid percent-encoded UTF-8 or contains NUL.
    BadEncoding,
}

/// One schema tag, compiled for serving.
#[derive(Debug)]
pub struct Api {
    /// The metadata as parsed.
    pub meta: RouteMetadata,
    /// The tag's `openapi.json` (if embedded).
    pub openapi: Option<&'static str>,
    router: matchit::Router<usize>,
    /// Per path node: the operation index for GET, POST, PUT, DELETE.
    methods: Vec<[Option<usize>; 4]>,
    path_by_template: HashMap<String, usize>,
    /// Every distinct schema pattern, compiled on first use (once; some Proxmox patterns are
    /// large alternations, and compiling all of them eagerly would dominate start-up).
    patterns: HashMap<String, OnceLock<Option<Regex>>>,
}

fn method_slot(method: Method) -> usize {
    match method {
        Method::Get => 0,
        Method::Post => 1,
        Method::Put => 2,
        Method::Delete => 3,
    }
}

impl Api {
    /// Parses the embedded metadata of a tag and compiles it.
    pub fn load(tag: &str) -> Result<Arc<Api>, Error> {
        let tag = resolve_tag(tag)?;
        let json = embedded_metadata(tag).ok_or_else(|| Error::UnknownSchema(tag.to_owned()))?;
        let meta = RouteMetadata::from_json(json).map_err(|source| Error::Metadata {
            tag: tag.to_owned(),
            source,
        })?;
        Ok(Arc::new(Api::new(meta, embedded_openapi(tag))))
    }

    /// Compiles metadata (tests build small values by hand).
    pub fn new(meta: RouteMetadata, openapi: Option<&'static str>) -> Api {
        let mut router = matchit::Router::new();
        let mut methods = vec![[None; 4]; meta.paths.len()];
        let mut path_by_template = HashMap::with_capacity(meta.paths.len());
        for (index, node) in meta.paths.iter().enumerate() {
            path_by_template.insert(node.path.clone(), index);
            if let Err(error) = router.insert(node.path.as_str(), index) {
                tracing::warn!(path = %node.path, %error, "route not added to the matcher");
            }
        }
        for (op_index, op) in meta.operations.iter().enumerate() {
            if let Some(&path_index) = path_by_template.get(&op.path) {
                methods[path_index][method_slot(op.method)] = Some(op_index);
            }
        }
        let mut patterns = HashMap::new();
        for op in &meta.operations {
            for schema in op.parameters.values() {
                collect_patterns(schema, &mut patterns);
            }
            collect_patterns(&op.returns, &mut patterns);
        }
        Api {
            meta,
            openapi,
            router,
            methods,
            path_by_template,
            patterns,
        }
    }

    /// Matches a raw relative path (below `/api2/json`, still percent-encoded).
    pub fn match_path(&self, raw_path: &str) -> Result<RouteMatch, MatchError> {
        let path = if raw_path.len() > 1 {
            raw_path.trim_end_matches('/')
        } else {
            raw_path
        };
        let path = if path.is_empty() { "/" } else { path };
        let matched = self.router.at(path).map_err(|_| MatchError::NotFound)?;
        let path_index = *matched.value;
        let mut params = Vec::with_capacity(matched.params.len());
        for (name, value) in matched.params.iter() {
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
    pub fn operation(&self, path_index: usize, method: Method) -> Option<(usize, &Operation)> {
        let op_index = self.methods.get(path_index)?[method_slot(method)]?;
        Some((op_index, &self.meta.operations[op_index]))
    }

    /// The operation for a method at a templated path.
    pub fn operation_at(&self, template: &str, method: Method) -> Option<&Operation> {
        let path_index = *self.path_by_template.get(template)?;
        self.operation(path_index, method).map(|(_, op)| op)
    }

    /// A path node by index.
    pub fn node(&self, path_index: usize) -> &PathNode {
        &self.meta.paths[path_index]
    }

    /// A path node by its templated path.
    pub fn node_at(&self, template: &str) -> Option<&PathNode> {
        self.path_by_template
            .get(template)
            .map(|&index| &self.meta.paths[index])
    }

    /// The compiled, anchored regex of a schema pattern (`None` when it does not compile; such
    /// patterns are not enforced).
    pub fn pattern(&self, pattern: &str) -> Option<&Regex> {
        self.patterns
            .get(pattern)?
            .get_or_init(|| match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(regex) => Some(regex),
                Err(error) => {
                    tracing::debug!(%pattern, %error, "pattern not compiled; not enforced");
                    None
                }
            })
            .as_ref()
    }

    /// Whether a templated path is an item (member of a collection).
    pub fn is_item(&self, template: &str) -> bool {
        self.node_at(template)
            .is_some_and(|node| node.kind == PathKind::Item)
    }
}

fn collect_patterns(schema: &Schema, patterns: &mut HashMap<String, OnceLock<Option<Regex>>>) {
    if let Some(pattern) = &schema.pattern
        && !patterns.contains_key(pattern)
    {
        patterns.insert(pattern.clone(), OnceLock::new());
    }
    for child in [schema.items.as_deref()].into_iter().flatten() {
        collect_patterns(child, patterns);
    }
    for map in [&schema.properties, &schema.property_string]
        .into_iter()
        .flatten()
    {
        for child in map.values() {
            collect_patterns(child, patterns);
        }
    }
    if let Some(alternatives) = &schema.one_of {
        for child in alternatives {
            collect_patterns(child, patterns);
        }
    }
}

/// Replaces the `{param}` segments of a template with values.
pub fn fill_template(template: &str, params: &[(String, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    for segment in template.split('/').skip(1) {
        out.push('/');
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            match params.iter().find(|(key, _)| key == name) {
                Some((_, value)) => out.push_str(value),
                None => out.push_str(segment),
            }
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
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(index) => &path[..index],
    }
}

/// The last segment of a path.
pub fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
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
    }

    #[test]
    fn matches_routes_independent_of_position() {
        let api = crate::testing::small_api();
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
    fn resolves_tags() {
        assert_eq!(resolve_tag("latest").unwrap(), "9.1");
        assert_eq!(resolve_tag("8.4").unwrap(), "8.4");
        assert!(resolve_tag("7.0").is_err());
    }
}
