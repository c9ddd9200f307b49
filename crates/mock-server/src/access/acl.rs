//! The stored ACL and ACL paths: the entries kept in [`ACL_ROW`], reading and writing that row,
//! and the path helpers of pve-access-control (`normalize_path`, the prefixes a path inherits
//! from).
//!
//! What the entries grant is evaluated by [`super::model::AccessModel`].

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::store::{Change, Tables};

/// Row holding the ACL entries (`{"entries": [...]}`).
pub(crate) const ACL_ROW: &str = "/_mock/acl";

/// One ACL entry, as `GET /access/acl` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct AclEntry {
    /// Normalised ACL path.
    pub(crate) path: String,
    /// `user`, `group` or `token`.
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// User, group or token ID.
    pub(crate) ugid: String,
    /// Role.
    pub(crate) roleid: String,
    /// Whether the role propagates to paths below (0 or 1).
    pub(crate) propagate: u8,
}

/// The ACL entries stored in [`ACL_ROW`].
pub(crate) fn acl_entries(tables: &Tables) -> Vec<AclEntry> {
    tables
        .field(ACL_ROW, "entries")
        .and_then(|entries| serde_json::from_value(entries).ok())
        .unwrap_or_default()
}

/// The row value for a list of entries (sorted, duplicates removed).
pub(crate) fn acl_row(mut entries: Vec<AclEntry>) -> Value {
    entries.sort();
    entries.dedup_by(|a, b| {
        a.path == b.path && a.kind == b.kind && a.ugid == b.ugid && a.roleid == b.roleid
    });
    json!({ "entries": entries })
}

/// The change that stores a list of entries in [`ACL_ROW`] (see [`acl_row`]).
pub(crate) fn acl_change(entries: Vec<AclEntry>) -> Change {
    Change::Put {
        path: ACL_ROW.to_owned(),
        collection: None,
        value: acl_row(entries),
    }
}

/// `/`, `/a`, `/a/b`, ... up to and including `path` (which must be normalised).
pub(crate) fn path_prefixes(path: &str) -> impl Iterator<Item = &str> {
    let ends = std::iter::once(1).chain(
        path.char_indices()
            .skip(1)
            .filter(|(_, c)| *c == '/')
            .map(|(index, _)| index)
            .chain(std::iter::once(path.len()).filter(|len| *len > 1)),
    );
    ends.map(move |end| &path[..end.min(path.len())])
}

/// `PVE::AccessControl::normalize_path`: collapses slashes, drops a trailing one, adds a
/// leading one; `None` for characters outside `[[:alnum:].-_/]`.
pub(crate) fn normalize_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(path.len() + 1);
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    out.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '/'))
        .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_normalisation() {
        assert_eq!(path_prefixes("/").collect::<Vec<_>>(), ["/"]);
        assert_eq!(
            path_prefixes("/vms/100").collect::<Vec<_>>(),
            ["/", "/vms", "/vms/100"]
        );
        assert_eq!(normalize_path("vms//100/").as_deref(), Some("/vms/100"));
        assert_eq!(normalize_path("/").as_deref(), Some("/"));
        assert_eq!(normalize_path("/a b"), None);
        assert_eq!(normalize_path(""), None);
    }
}
