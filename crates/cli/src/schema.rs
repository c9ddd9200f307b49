//! The embedded API schema of each tag: which template a concrete path is, which operations it
//! has, and (from `openapi.json`, parsed lazily) descriptions, child links and renderers.
//!
//! `route_metadata.json` carries the normalised parameter schemas that validation needs but, to
//! stay small, no descriptions, links or renderers; `openapi.json` has those. Only the selected
//! tag is parsed, and of `openapi.json` only the top level is scanned (`RawValue`s) and then the
//! one path item and the component schemas a command needs, so `usage` and completion stay fast.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use anyhow::Context;
use route_metadata::{Method, Operation, PathNode};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::usage_error;

/// One tag's schema.
pub struct Api {
    /// The resolved tag, e.g. `9.1`.
    pub tag: &'static str,
    meta: LazyMetadata,
    openapi_text: &'static str,
    openapi: std::sync::OnceLock<Option<OpenApi<'static>>>,
}

/// A concrete path matched against the templates.
pub struct Resolved<'a> {
    /// The path node, `None` for `/`.
    pub node: Option<&'a PathNode>,
    /// The template, e.g. `/nodes/{node}/qemu`; `/` for the root.
    pub template: String,
    /// Values of the template's `{x}` segments.
    pub path_params: BTreeMap<String, String>,
}

/// `route_metadata.json` with the path nodes parsed and each operation kept as raw JSON until
/// it is needed: parsing every operation's schemas would cost most of a one-shot call.
#[derive(Deserialize)]
struct LazyMetadata {
    paths: Vec<PathNode>,
    #[serde(borrow)]
    operations: Vec<&'static RawValue>,
}

/// The key of an operation (the file is sorted by path, then method).
#[derive(Deserialize)]
struct OperationKey<'a> {
    #[serde(borrow)]
    path: Cow<'a, str>,
    method: Method,
}

#[derive(Deserialize)]
struct OpenApi<'a> {
    #[serde(borrow)]
    paths: HashMap<Cow<'a, str>, &'a RawValue>,
    #[serde(borrow)]
    components: Components<'a>,
}

#[derive(Deserialize)]
struct Components<'a> {
    #[serde(borrow)]
    schemas: HashMap<Cow<'a, str>, &'a RawValue>,
}

impl Api {
    /// Loads the tag (`latest`, `9.1`, ...).
    pub fn load(tag: &str) -> anyhow::Result<Api> {
        let tag = mock_server::resolve_tag(tag).map_err(|_| {
            usage_error(format!(
                "unknown schema version '{tag}' (known: latest, {})",
                mock_server::TAGS.join(", ")
            ))
        })?;
        let meta_text = mock_server::embedded::route_metadata(tag)
            .with_context(|| format!("no embedded metadata for {tag}"))?;
        let openapi_text = mock_server::embedded::openapi(tag)
            .with_context(|| format!("no embedded OpenAPI document for {tag}"))?;
        let meta: LazyMetadata = serde_json::from_str(meta_text)
            .with_context(|| format!("parsing the embedded metadata of {tag}"))?;
        Ok(Api {
            tag,
            meta,
            openapi_text,
            openapi: std::sync::OnceLock::new(),
        })
    }

    /// The top-level path nodes (`/access`, `/cluster`, ...).
    pub fn top_level(&self) -> impl Iterator<Item = &PathNode> {
        self.meta
            .paths
            .iter()
            .filter(|node| node.path.matches('/').count() == 1)
    }

    /// The operation at a template and method (parsed on demand).
    pub fn operation(&self, template: &str, method: Method) -> Option<Operation> {
        let raw = self.find_operation(template, method)?;
        serde_json::from_str(raw.get()).ok()
    }

    /// Whether the template answers `method`.
    pub fn has_operation(&self, template: &str, method: Method) -> bool {
        self.find_operation(template, method).is_some()
    }

    /// Binary search over the raw operations, parsing only their keys.
    fn find_operation(&self, template: &str, method: Method) -> Option<&'static RawValue> {
        fn key(raw: &'static RawValue) -> Option<OperationKey<'static>> {
            serde_json::from_str(raw.get()).ok()
        }
        let wanted = (template, method);
        let index = self
            .meta
            .operations
            .binary_search_by(|raw| match key(raw) {
                Some(found) => (found.path.as_ref(), found.method).cmp(&wanted),
                None => std::cmp::Ordering::Less,
            })
            .ok()?;
        self.meta.operations.get(index).copied()
    }

    /// Matches a concrete path (`/nodes/pve1/qemu`) against the templates; literal segments win
    /// over `{x}` segments. An unknown path fails with the closest templates.
    pub fn resolve(&self, path: &str) -> anyhow::Result<Resolved<'_>> {
        let path = normalize_path(path);
        if path == "/" {
            return Ok(Resolved {
                node: None,
                template: "/".to_owned(),
                path_params: BTreeMap::new(),
            });
        }
        let segments: Vec<&str> = path.split('/').skip(1).collect();
        let mut best: Option<(usize, &PathNode)> = None;
        for node in &self.meta.paths {
            let template_segments: Vec<&str> = node.path.split('/').skip(1).collect();
            if template_segments.len() != segments.len() {
                continue;
            }
            let mut literals = 0;
            let matches = template_segments
                .iter()
                .zip(&segments)
                .all(|(template, actual)| {
                    if template.starts_with('{') {
                        !actual.is_empty()
                    } else if template == actual {
                        literals += 1;
                        true
                    } else {
                        false
                    }
                });
            if matches && best.is_none_or(|(best_literals, _)| literals > best_literals) {
                best = Some((literals, node));
            }
        }
        let Some((_, node)) = best else {
            let suggestions = self.closest_paths(&path);
            let hint = if suggestions.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", quote_list(&suggestions))
            };
            return Err(usage_error(format!("no such resource '{path}'{hint}")));
        };
        let mut path_params = BTreeMap::new();
        for (template, actual) in node.path.split('/').zip(path.split('/')) {
            if let Some(name) = template.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                path_params.insert(name.to_owned(), actual.to_owned());
            }
        }
        Ok(Resolved {
            node: Some(node),
            template: node.path.clone(),
            path_params,
        })
    }

    /// Templates near `path`: siblings whose last segment is close to the typed one when the
    /// parent exists, else templates similar as a whole.
    fn closest_paths(&self, path: &str) -> Vec<String> {
        let (parent, last) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = normalize_path(parent);
        let siblings: Option<Vec<String>> = if parent == "/" {
            Some(self.top_level().map(|node| node.path.clone()).collect())
        } else {
            self.resolve(&parent)
                .ok()
                .and_then(|resolved| resolved.node)
                .map(|node| node.children.clone())
        };
        if let Some(siblings) = siblings {
            let names: Vec<&str> = siblings
                .iter()
                .filter_map(|child| child.rsplit('/').next())
                .filter(|name| !name.starts_with('{'))
                .collect();
            return closest(last, names)
                .into_iter()
                .filter_map(|name| {
                    siblings
                        .iter()
                        .find(|child| child.rsplit('/').next() == Some(name.as_str()))
                        .cloned()
                })
                .collect();
        }
        let mut scored: Vec<(f64, &str)> = self
            .meta
            .paths
            .iter()
            .map(|node| {
                let filled = fill_like(&node.path, path);
                (
                    strsim::normalized_levenshtein(&filled, path),
                    node.path.as_str(),
                )
            })
            .filter(|(score, _)| *score > 0.8)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(3)
            .map(|(_, path)| path.to_owned())
            .collect()
    }

    /// The operation's entry of `openapi.json` with its `$ref`s resolved one level deep where
    /// `usage` and the output formats look (request body properties, the reply's `data`).
    pub fn openapi_operation(&self, template: &str, method: Method) -> Option<Value> {
        let doc = self
            .openapi
            .get_or_init(|| serde_json::from_str(self.openapi_text).ok())
            .as_ref()?;
        let item: Value = serde_json::from_str(doc.paths.get(template)?.get()).ok()?;
        let mut operation = item.get(method.as_str().to_ascii_lowercase())?.clone();
        let resolve = |value: &mut Value| {
            if let Some(reference) = value.get("$ref").and_then(Value::as_str)
                && let Some(name) = reference.strip_prefix("#/components/schemas/")
                && let Some(raw) = doc.components.schemas.get(name)
                && let Ok(resolved) = serde_json::from_str::<Value>(raw.get())
            {
                *value = resolved;
            }
        };
        if let Some(body) = operation.pointer_mut("/requestBody/content/application~1json/schema") {
            resolve(body);
        }
        if let Some(data) =
            operation.pointer_mut("/responses/200/content/application~1json/schema/properties/data")
        {
            resolve(data);
            if let Some(items) = data.get_mut("items") {
                resolve(items);
            }
        }
        Some(operation)
    }
}

/// The reply schema (`data`) of an OpenAPI operation from [`Api::openapi_operation`].
pub fn reply_schema(operation: &Value) -> Option<&Value> {
    operation.pointer("/responses/200/content/application~1json/schema/properties/data")
}

/// `/nodes//pve1/` -> `/nodes/pve1`; always one leading slash.
pub fn normalize_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

/// The template with its `{x}` segments replaced by the corresponding segments of `path`, for
/// comparing the two.
fn fill_like(template: &str, path: &str) -> String {
    let actual: Vec<&str> = path.split('/').collect();
    template
        .split('/')
        .enumerate()
        .map(|(index, segment)| {
            if segment.starts_with('{') {
                actual.get(index).copied().unwrap_or(segment)
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `'a', 'b' or 'c'`.
pub fn quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Names from `candidates` close to `name` (best three): one edit away (transpositions
/// count once), two for longer names, or similar by Jaro-Winkler (a shared prefix).
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut scored: Vec<(usize, f64, &str)> = candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::damerau_levenshtein(name, candidate),
                strsim::jaro_winkler(name, candidate),
                candidate,
            )
        })
        .filter(|(edits, similarity, _)| {
            *edits <= 1 || (*edits <= 2 && name.chars().count() >= 5) || *similarity > 0.85
        })
        .collect();
    scored.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)).then(a.2.cmp(b.2)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, _, candidate)| candidate.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_concrete_paths() {
        let api = Api::load("latest").expect("embedded tag");
        let resolved = api.resolve("/nodes/pve1/qemu/100/").expect("known path");
        assert_eq!(resolved.template, "/nodes/{node}/qemu/{vmid}");
        assert_eq!(resolved.path_params["vmid"], "100");
        let status = api.resolve("nodes/pve1/status").expect("literal wins");
        assert_eq!(status.template, "/nodes/{node}/status");
        let error = api.resolve("/nodes/pve1/qemux").err().expect("unknown");
        assert!(
            error.to_string().contains("'/nodes/{node}/qemu'"),
            "{error}"
        );
        assert!(api.resolve("/").is_ok());
    }

    #[test]
    fn openapi_lookup() {
        let api = Api::load("9.0").expect("embedded tag");
        let op = api
            .openapi_operation("/nodes/{node}/qemu", Method::Get)
            .expect("operation");
        let links = reply_schema(&op).and_then(|data| data.get("x-proxmox-links"));
        assert!(links.is_some());
        assert!(Api::load("7.0").is_err());
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("memroy", ["memory", "cores", "name"]), ["memory"]);
        assert_eq!(quote_list(&["a".into(), "b".into()]), "'a' or 'b'");
    }
}
