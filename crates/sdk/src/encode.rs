//! Request encoding as Proxmox expects it: parameters, query strings, JSON bodies and API paths.
//!
//! Parameters are any `Serialize` value that becomes a JSON object (a struct, a map,
//! `serde_json::json!({...})`), or nothing at all (`()`, `None`, `null`).
//! They are normalised in place, without building a second map:
//!
//! - `null` members (from `None` fields) are dropped, so optional parameters can be left unset;
//! - booleans become `0` and `1`, the only spelling every Proxmox endpoint accepts.
//!
//! `GET` and `DELETE` send the parameters as a query string; an array becomes the key repeated
//! once per element (`ids=1&ids=2`), as Proxmox's `-alist` parameters want.
//! `POST` and `PUT` send a JSON body, which `pveproxy` accepts for every endpoint and which,
//! unlike `serde_urlencoded`, can carry arrays.
//!
//! API paths are relative to `/api2/json`.
//! [`path`] builds one from segments, percent-encoding each: a UPID (`UPID:pve1:…:root@pam:`) or a
//! storage volume (`local:iso/debian.iso`) is then a single segment.
//! A path with a `.` or `..` segment (raw or encoded) is refused, because URL normalisation would
//! silently send the request somewhere else.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use crate::error::{Error, Result};

/// Parameters after normalisation.
pub(crate) type Params = Map<String, Value>;

/// Bytes percent-encoded in a path segment: everything except RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds an API path such as `/nodes/pve1/qemu` from segments, percent-encoding each one.
///
/// ```
/// let upid = "UPID:pve1:00001234:00ABCDEF:65A1B2C3:qmcreate:100:root@pam:";
/// assert_eq!(
///     proxmox_sdk::path(["nodes", "pve1", "tasks", upid, "status"]),
///     "/nodes/pve1/tasks/UPID%3Apve1%3A00001234%3A00ABCDEF%3A65A1B2C3%3Aqmcreate%3A100%3Aroot%40pam%3A/status",
/// );
/// ```
pub fn path<I, S>(segments: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut built = String::new();
    for segment in segments {
        built.push('/');
        built.extend(utf8_percent_encode(segment.as_ref(), SEGMENT));
    }
    if built.is_empty() {
        built.push('/');
    }
    built
}

/// Serializes parameters and normalises them (see the module docs).
pub(crate) fn to_params<P: Serialize + ?Sized>(params: &P) -> Result<Option<Params>> {
    let value = serde_json::to_value(params).map_err(|error| Error::InvalidRequest {
        message: "could not serialize the request parameters".to_owned(),
        source: Some(Box::new(error)),
    })?;
    match value {
        Value::Null => Ok(None),
        Value::Object(mut map) => {
            normalize(&mut map);
            Ok(if map.is_empty() { None } else { Some(map) })
        }
        other => Err(Error::invalid_request(format!(
            "request parameters must serialize to a JSON object, not {}",
            kind_of(&other)
        ))),
    }
}

/// Drops `null` members and turns booleans into `0`/`1`, in place.
fn normalize(map: &mut Params) {
    if map.values().any(Value::is_null) {
        map.retain(|_, value| !value.is_null());
    }
    for value in map.values_mut() {
        match value {
            Value::Bool(flag) => *value = Value::from(u8::from(*flag)),
            Value::Array(items) => {
                items.retain(|item| !item.is_null());
                for item in items.iter_mut() {
                    if let Value::Bool(flag) = item {
                        *item = Value::from(u8::from(*flag));
                    }
                }
            }
            _ => {}
        }
    }
}

/// A word for a JSON value's kind, for error messages.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Appends parameters to a URL's query string.
pub(crate) fn append_query(url: &mut Url, params: &Params) {
    let mut query = url.query_pairs_mut();
    for (name, value) in params {
        match value {
            Value::Array(items) => {
                for item in items {
                    query.append_pair(name, &query_value(item));
                }
            }
            other => {
                query.append_pair(name, &query_value(other));
            }
        }
    }
}

/// A scalar's query-string form; nested objects and arrays are sent as JSON text.
fn query_value(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::String(text) => std::borrow::Cow::Borrowed(text),
        Value::Bool(flag) => std::borrow::Cow::Borrowed(if *flag { "1" } else { "0" }),
        Value::Null => std::borrow::Cow::Borrowed(""),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Joins an API path to the API root (`https://host:8006/api2/json`).
///
/// The path may be written with or without its leading slash; it must not carry a query string
/// (pass parameters instead) or a `.`/`..` segment.
pub(crate) fn join_path(api_root: &Url, api_path: &str) -> Result<Url> {
    if api_path.contains(['?', '#']) {
        return Err(Error::invalid_request(format!(
            "API path {api_path:?} contains '?' or '#'; pass query parameters separately"
        )));
    }
    let trimmed = api_path.trim_start_matches('/');
    if trimmed.split('/').any(is_dot_segment) {
        return Err(Error::invalid_request(format!(
            "API path {api_path:?} contains a '.' or '..' segment"
        )));
    }
    let mut url = api_root.clone();
    let root_path = api_root.path().trim_end_matches('/');
    let mut full_path = String::with_capacity(root_path.len() + 1 + trimmed.len());
    full_path.push_str(root_path);
    full_path.push('/');
    full_path.push_str(trimmed);
    url.set_path(&full_path);
    Ok(url)
}

/// Whether a raw path segment would be normalised away (`.`, `..`, `%2e`, `.%2E`, …).
fn is_dot_segment(segment: &str) -> bool {
    let lowered = segment.to_ascii_lowercase();
    matches!(
        lowered.as_str(),
        "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check_params(params: Value, expected: Value) {
        let normalized = to_params(&params)
            .expect("valid params")
            .map_or(Value::Null, Value::Object);
        assert_eq!(normalized, expected);
    }

    #[test]
    fn drops_nulls_and_encodes_booleans() {
        check_params(
            json!({"vmid": 100, "start": true, "onboot": false, "description": null, "tags": ["a", null]}),
            json!({"vmid": 100, "start": 1, "onboot": 0, "tags": ["a"]}),
        );
    }

    #[test]
    fn nothing_is_no_params() {
        check_params(Value::Null, Value::Null);
        check_params(json!({}), Value::Null);
        check_params(json!({"only": null}), Value::Null);
        assert!(to_params(&()).expect("unit is fine").is_none());
        assert!(to_params(&None::<Value>).expect("None is fine").is_none());
    }

    #[test]
    fn structs_with_options() {
        #[derive(Serialize)]
        struct Create<'a> {
            vmid: u32,
            name: Option<&'a str>,
            memory: Option<u32>,
            start: Option<bool>,
        }
        let params = to_params(&Create {
            vmid: 100,
            name: Some("web"),
            memory: None,
            start: Some(true),
        })
        .expect("valid params")
        .expect("not empty");
        assert_eq!(
            Value::Object(params),
            json!({"vmid": 100, "name": "web", "start": 1})
        );
    }

    #[test]
    fn rejects_non_objects() {
        let error = to_params(&[1, 2]).expect_err("an array is not a parameter object");
        assert!(error.to_string().contains("not an array"), "{error}");
        assert!(to_params(&"text").is_err());
    }

    #[test]
    fn query_encoding() {
        let mut url =
            Url::parse("https://pve:8006/api2/json/cluster/resources").expect("valid url");
        let params =
            to_params(&json!({"type": "vm", "full": true, "ids": [1, 2], "note": "a b&c"}))
                .expect("valid params")
                .expect("not empty");
        append_query(&mut url, &params);
        assert_eq!(url.query(), Some("type=vm&full=1&ids=1&ids=2&note=a+b%26c"));
    }

    fn check_path(segments: &[&str], expected: &str) {
        assert_eq!(path(segments), expected);
    }

    #[test]
    fn path_building() {
        check_path(&["nodes", "pve1", "qemu"], "/nodes/pve1/qemu");
        check_path(&[], "/");
        check_path(
            &["storage", "local:iso/debian 12.iso"],
            "/storage/local%3Aiso%2Fdebian%2012.iso",
        );
        check_path(
            &["access", "users", "jörg@pve"],
            "/access/users/j%C3%B6rg%40pve",
        );
        check_path(&["pools", "a-b_c.d~e"], "/pools/a-b_c.d~e");
    }

    fn check_join(root: &str, api_path: &str, expected: Option<&str>) {
        let root = Url::parse(root).expect("valid url");
        let joined = join_path(&root, api_path).ok().map(String::from);
        assert_eq!(joined.as_deref(), expected, "{api_path:?}");
    }

    #[test]
    fn joining() {
        let root = "https://pve:8006/api2/json";
        check_join(root, "/nodes", Some("https://pve:8006/api2/json/nodes"));
        check_join(
            root,
            "nodes/pve1",
            Some("https://pve:8006/api2/json/nodes/pve1"),
        );
        check_join(
            "https://pve:8006/api2/json/",
            "/version",
            Some("https://pve:8006/api2/json/version"),
        );
        check_join(
            root,
            &path(["nodes", "a b"]),
            Some("https://pve:8006/api2/json/nodes/a%20b"),
        );
        check_join(root, "/nodes?x=1", None);
        check_join(root, "/nodes/../access", None);
        check_join(root, "/nodes/%2E%2e/access", None);
        check_join(root, "/nodes/./x", None);
    }
}
