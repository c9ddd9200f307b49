//! The path matcher: a trie of path segments over the templated paths of one tag.
//!
//! Proxmox's templates are `/`-separated segments, each a literal or a whole `{param}`, so a
//! trie of segments matches them exactly: a literal segment is preferred over a parameter
//! (`/nodes/{node}/qemu` is not `/nodes/{node}/{anything}`), with backtracking to the
//! parameter when the literal branch does not lead to a route, and a parameter matches one
//! non-empty segment. Building it costs a few hundred instructions per template (a radix tree
//! of arbitrary patterns cost about 5,000 each, a fifth of the start-up); a lookup is a binary
//! search among a node's literal children per segment.
//!
//! Matching runs on the raw (still percent-encoded) path, so `%2F` inside a volume ID never
//! splits a segment; the caller decodes the captured values.

/// Templated paths -> a value (the path node's index).
#[derive(Debug, Default)]
pub(crate) struct Router {
    /// Node 0 is the root (the path `/`).
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Default)]
struct TrieNode {
    /// Literal children, sorted by segment.
    literals: Vec<(Box<str>, u32)>,
    /// The parameter child.
    param: Option<u32>,
    /// The value of the template that ends here.
    value: Option<usize>,
}

/// Why a template was not added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum InsertError {
    /// The template does not start with `/`.
    #[error("a template starts with '/'")]
    NotAbsolute,
    /// A segment is empty or has braces that do not enclose it whole.
    #[error("segment {0:?} is neither a literal nor a whole {{param}}")]
    BadSegment(String),
    /// The same template (up to parameter names) was added before.
    #[error("the route is already taken")]
    Taken,
}

/// What a segment of a template is.
enum Segment<'a> {
    Literal(&'a str),
    Param,
}

/// Whether a text has a brace (a byte scan: `str::contains` with a char set cost a tenth of
/// the start-up's router building).
fn has_brace(text: &str) -> bool {
    text.bytes().any(|byte| byte == b'{' || byte == b'}')
}

fn segment_of(segment: &str) -> Result<Segment<'_>, InsertError> {
    let bad = || InsertError::BadSegment(segment.to_owned());
    if let Some(name) = segment.strip_prefix('{') {
        let name = name.strip_suffix('}').ok_or_else(bad)?;
        if name.is_empty() || has_brace(name) {
            return Err(bad());
        }
        Ok(Segment::Param)
    } else if segment.is_empty() || has_brace(segment) {
        Err(bad())
    } else {
        Ok(Segment::Literal(segment))
    }
}

impl Router {
    pub(crate) fn new() -> Router {
        Router {
            nodes: vec![TrieNode::default()],
        }
    }

    /// Adds a template (`/nodes/{node}/qemu`).
    pub(crate) fn insert(&mut self, template: &str, value: usize) -> Result<(), InsertError> {
        let rest = template.strip_prefix('/').ok_or(InsertError::NotAbsolute)?;
        let mut at = 0usize;
        if !rest.is_empty() {
            for segment in route_metadata::split_ascii(rest, b'/') {
                at = match segment_of(segment)? {
                    Segment::Param => match self.nodes[at].param {
                        Some(child) => child as usize,
                        None => {
                            let child = self.push();
                            self.nodes[at].param = Some(child as u32);
                            child
                        }
                    },
                    Segment::Literal(text) => {
                        let literals = &self.nodes[at].literals;
                        match literals.binary_search_by(|(known, _)| (**known).cmp(text)) {
                            Ok(found) => literals[found].1 as usize,
                            Err(place) => {
                                let child = self.push();
                                self.nodes[at]
                                    .literals
                                    .insert(place, (text.into(), child as u32));
                                child
                            }
                        }
                    }
                };
            }
        }
        let slot = &mut self.nodes[at].value;
        if slot.is_some() {
            return Err(InsertError::Taken);
        }
        *slot = Some(value);
        Ok(())
    }

    fn push(&mut self) -> usize {
        self.nodes.push(TrieNode::default());
        self.nodes.len() - 1
    }

    /// The value of the template `path` matches, and the raw values of its parameters in
    /// template order (appended to `params`, which is left as it was when nothing matches).
    pub(crate) fn at<'p>(&self, path: &'p str, params: &mut Vec<&'p str>) -> Option<usize> {
        let rest = path.strip_prefix('/')?;
        if rest.is_empty() {
            return self.nodes[0].value;
        }
        self.find(0, rest, params)
    }

    /// Matches `rest` (the path after the `/` that ends node `at`'s segment).
    fn find<'p>(&self, at: usize, rest: &'p str, params: &mut Vec<&'p str>) -> Option<usize> {
        let (segment, next) = match rest.find('/') {
            Some(slash) => (&rest[..slash], Some(&rest[slash + 1..])),
            None => (rest, None),
        };
        let node = &self.nodes[at];
        let descend = |child: usize, params: &mut Vec<&'p str>| match next {
            None => self.nodes[child].value,
            Some(next) => self.find(child, next, params),
        };
        if let Ok(found) = node
            .literals
            .binary_search_by(|(known, _)| (**known).cmp(segment))
            && let Some(value) = descend(node.literals[found].1 as usize, params)
        {
            return Some(value);
        }
        let child = node.param? as usize;
        if segment.is_empty() {
            return None;
        }
        params.push(segment);
        let found = descend(child, params);
        if found.is_none() {
            params.pop();
        }
        found
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn router(templates: &[&str]) -> Router {
        let mut router = Router::new();
        for (index, template) in templates.iter().enumerate() {
            router.insert(template, index).unwrap();
        }
        router
    }

    fn at<'p>(router: &Router, path: &'p str) -> Option<(usize, Vec<&'p str>)> {
        let mut params = Vec::new();
        router.at(path, &mut params).map(|value| (value, params))
    }

    #[test]
    fn literals_params_and_backtracking() {
        let r = router(&[
            "/nodes",
            "/nodes/{node}",
            "/nodes/{node}/qemu",
            "/nodes/{node}/qemu/{vmid}/config",
            "/nodes/{node}/{kind}/x",
            "/nodes/pve1/special",
        ]);
        assert_eq!(at(&r, "/nodes"), Some((0, vec![])));
        assert_eq!(at(&r, "/nodes/pve1"), Some((1, vec!["pve1"])));
        assert_eq!(at(&r, "/nodes/pve1/qemu"), Some((2, vec!["pve1"])));
        assert_eq!(
            at(&r, "/nodes/pve1/qemu/100/config"),
            Some((3, vec!["pve1", "100"]))
        );
        // `qemu` is a literal child of `{node}`, but `/qemu/x` only matches through `{kind}`.
        assert_eq!(at(&r, "/nodes/n/qemu/x"), Some((4, vec!["n", "qemu"])));
        // A literal `pve1` that leads nowhere falls back to the parameter.
        assert_eq!(at(&r, "/nodes/pve1/qemu"), Some((2, vec!["pve1"])));
        assert_eq!(at(&r, "/nodes/pve1/special"), Some((5, vec![])));
        assert_eq!(at(&r, "/nodes/pve1/lxc/x"), Some((4, vec!["pve1", "lxc"])));
        // Percent-encoded slashes stay inside a segment.
        assert_eq!(at(&r, "/nodes/a%2Fb"), Some((1, vec!["a%2Fb"])));
    }

    #[test]
    fn what_does_not_match() {
        let r = router(&["/nodes", "/nodes/{node}", "/version"]);
        for path in [
            "",
            "/",
            "nodes",
            "/node",
            "/nodesx",
            "/versions",
            "/nodes/",
            "//nodes",
            "/nodes//",
            "/nodes/a/b",
        ] {
            assert_eq!(at(&r, path), None, "{path:?}");
        }
        let mut params = vec!["kept"];
        assert_eq!(r.at("/nodes/a/b", &mut params), None);
        assert_eq!(params, vec!["kept"]);
    }

    #[test]
    fn root_and_bad_templates() {
        let mut r = Router::new();
        assert_eq!(r.insert("nodes", 0), Err(InsertError::NotAbsolute));
        assert!(matches!(
            r.insert("/a/{b", 0),
            Err(InsertError::BadSegment(_))
        ));
        assert!(matches!(
            r.insert("/a/x{b}", 0),
            Err(InsertError::BadSegment(_))
        ));
        assert!(matches!(
            r.insert("/a//b", 0),
            Err(InsertError::BadSegment(_))
        ));
        assert!(matches!(
            r.insert("/a/{}", 0),
            Err(InsertError::BadSegment(_))
        ));
        r.insert("/", 7).unwrap();
        r.insert("/a/{x}", 1).unwrap();
        assert_eq!(r.insert("/a/{y}", 2), Err(InsertError::Taken));
        assert_eq!(at(&r, "/"), Some((7, vec![])));
        assert_eq!(at(&r, "/a/1"), Some((1, vec!["1"])));
    }

    /// Every path of every embedded tag is found again from its own template with the
    /// parameters filled in, and literal siblings win over parameters.
    #[test]
    fn every_embedded_template_matches_itself() {
        for tag in crate::embedded::TAGS {
            let api = crate::api::Api::load(tag).unwrap();
            for (index, node) in api.meta.paths().enumerate() {
                let concrete: Vec<String> = node
                    .path
                    .split('/')
                    .map(|segment| {
                        if segment.starts_with('{') {
                            "v%20x".to_owned()
                        } else {
                            segment.to_owned()
                        }
                    })
                    .collect();
                let concrete = concrete.join("/");
                let matched = api.match_path(&concrete).unwrap();
                let found = &api.node(matched.path_index).path;
                // A template with parameters may lose to a literal sibling that has the
                // filler as its name (never the case with this filler).
                assert_eq!(matched.path_index, index, "{tag} {concrete}: got {found}");
                assert_eq!(matched.params.len(), node.path_params.len());
                assert!(matched.params.iter().all(|(_, value)| value == "v x"));
            }
        }
    }
}
