//! Proxmox's `{"data": …}` envelope: turning an HTTP answer into its payload or an [`Error`].
//!
//! Every successful Proxmox answer is an envelope, `{"data": <payload>}`, sometimes with a
//! `total` next to `data` for paged lists (task logs, syslog); an empty body counts as
//! `{"data": null}`.
//! An HTTP error becomes [`Error::Api`], or [`Error::Auth`] for a `401`, with the message Proxmox
//! puts in the reason phrase.
//! A body that does not decode becomes [`Error::Decode`], quoting the start of the body except for
//! paths whose answers carry secrets ([`is_sensitive_path`]).
//!
//! This module owns that decoding for both the request path (`request`) and the login
//! ([`crate::auth`]), and depends on nothing of this crate but [`crate::error`] and the generated
//! list of sensitive paths (`generated::sensitive`, data only).

use std::fmt;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, AuthError, Error, Result};

/// The most body bytes quoted in an [`Error::Decode`].
const EXCERPT_LEN: usize = 200;

/// A payload with the `total` that paged Proxmox answers carry next to `data`.
#[derive(Clone, Debug, PartialEq)]
pub struct Paged<T> {
    /// The payload.
    pub data: T,
    /// The number of items on all pages, if the server sent it.
    pub total: Option<u64>,
}

/// Turns an answer into the payload, an [`Error::Api`] or an [`Error::Auth`].
pub(crate) async fn read_response<T: DeserializeOwned>(
    method: &Method,
    path: &str,
    response: reqwest::Response,
) -> Result<Paged<T>> {
    let status = response.status();
    let reason = reason_phrase(&response);
    let bytes = response
        .bytes()
        .await
        .map_err(|error| Error::from_reqwest(format!("{method} {path}"), error))?;
    if status == StatusCode::UNAUTHORIZED {
        let api = ApiError::from_response(method.clone(), path, status, reason.as_deref(), &bytes);
        return Err(Error::Auth(
            AuthError::new(api.message().to_owned(), Some(status)).with_source(api),
        ));
    }
    if !status.is_success() {
        return Err(Error::Api(ApiError::from_response(
            method.clone(),
            path,
            status,
            reason.as_deref(),
            &bytes,
        )));
    }
    decode_paged(path, &bytes)
}

/// The reason phrase of an answer, where Proxmox puts its error message.
pub(crate) fn reason_phrase(response: &reqwest::Response) -> Option<String> {
    let phrase = response.extensions().get::<hyper::ext::ReasonPhrase>()?;
    std::str::from_utf8(phrase.as_bytes())
        .ok()
        .map(str::to_owned)
}

/// Decodes the payload of a `{"data": …}` envelope.
pub(crate) fn decode_envelope<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T> {
    Ok(decode_paged(path, body)?.data)
}

/// The envelope around every Proxmox answer.
#[derive(serde::Deserialize)]
struct Envelope<T> {
    data: T,
    #[serde(default)]
    total: Option<u64>,
}

/// Decodes an envelope with its optional `total`.
fn decode_paged<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<Paged<T>> {
    let decoded = if body.iter().all(u8::is_ascii_whitespace) {
        // An empty body (a 204, or a proxy that dropped it) is `{"data": null}`.
        T::deserialize(serde_json::Value::Null).map(|data| Envelope { data, total: None })
    } else {
        serde_json::from_slice::<Envelope<T>>(body)
    };
    match decoded {
        Ok(envelope) => Ok(Paged {
            data: envelope.data,
            total: envelope.total,
        }),
        Err(error) => Err(decode_error(path, body, field_path::<T>(body), error)),
    }
}

/// Where in the body decoding failed (`data[3].pressurecpusome`), found by decoding again with
/// `serde_path_to_error`, only after a failure: the successful path pays nothing for it.
fn field_path<T: DeserializeOwned>(body: &[u8]) -> Option<Box<str>> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let error = serde_path_to_error::deserialize::<_, Envelope<T>>(&mut deserializer).err()?;
    let path = error.path().to_string();
    (path != ".").then(|| path.into_boxed_str())
}

/// Builds an [`Error::Decode`], hiding the body and the parser's message for sensitive paths.
fn decode_error(
    path: &str,
    body: &[u8],
    field: Option<Box<str>>,
    error: serde_json::Error,
) -> Error {
    if is_sensitive_path(path) {
        return Error::Decode {
            path: path.to_owned(),
            field,
            excerpt: "<redacted>".to_owned(),
            source: Box::new(RedactedJsonError {
                line: error.line(),
                column: error.column(),
            }),
        };
    }
    Error::Decode {
        path: path.to_owned(),
        field,
        excerpt: excerpt(body),
        source: Box::new(error),
    }
}

/// Whether answers to `path` may carry secrets, so that no error quotes them:
///
/// - every path under `/access` (tickets, CSRF tokens, token secrets, TFA data: one rule, so a
///   path the schema does not describe yet is covered too);
/// - every path whose reply schema has a secret property, listed by codegen in
///   `generated::sensitive` (`vncproxy`, `termproxy`, `spiceproxy`, `mtunnel`, `vncshell`,
///   `spiceshell`, webhook endpoints, guest config with `cipassword`, storage with an
///   `encryption-key`...).
pub(crate) fn is_sensitive_path(path: &str) -> bool {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    if trimmed == "access" || trimmed.starts_with("access/") {
        return true;
    }
    crate::generated::sensitive::SENSITIVE_PATHS
        .iter()
        .any(|template| matches_template(template, trimmed))
}

/// Whether a concrete path (without its leading `/`) matches a path template, where a `{param}`
/// segment matches any one non-empty segment.
fn matches_template(template: &str, path: &str) -> bool {
    let mut segments = path.split('/');
    for expected in template.trim_start_matches('/').split('/') {
        let Some(segment) = segments.next() else {
            return false;
        };
        let is_param = expected.starts_with('{') && expected.ends_with('}');
        if is_param && segment.is_empty() || !is_param && segment != expected {
            return false;
        }
    }
    segments.next().is_none()
}

/// The first [`EXCERPT_LEN`] bytes of a body, cut at a character boundary.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= EXCERPT_LEN {
        return text.into_owned();
    }
    let mut end = EXCERPT_LEN;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A JSON error whose message (which may quote the body) was withheld.
#[derive(Debug)]
struct RedactedJsonError {
    line: usize,
    column: usize,
}

impl fmt::Display for RedactedJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unexpected JSON at line {}, column {} (details withheld: the body may hold secrets)",
            self.line, self.column
        )
    }
}

impl std::error::Error for RedactedJsonError {}
#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn unwraps_the_envelope() {
        let nodes: Vec<Value> =
            decode_envelope("/nodes", br#"{"data":[{"node":"pve1"}]}"#).expect("valid envelope");
        assert_eq!(nodes, vec![json!({"node": "pve1"})]);
        let nothing: () =
            decode_envelope("/nodes/pve1/qemu/100", br#"{"data":null}"#).expect("null is ()");
        assert_eq!(nothing, ());
        let value: Value = decode_envelope("/x", b"").expect("empty body is null");
        assert_eq!(value, Value::Null);
    }

    #[test]
    fn keeps_total() {
        let page: Paged<Vec<Value>> = decode_paged(
            "/nodes/pve1/tasks/x/log",
            br#"{"data":[{"n":1,"t":"a"}],"total":7}"#,
        )
        .expect("valid envelope");
        assert_eq!(page.total, Some(7));
        assert_eq!(page.data.len(), 1);
    }

    #[test]
    fn decode_error_quotes_the_body() {
        let error =
            decode_envelope::<u32>("/version", br#"{"data":"nine"}"#).expect_err("not a number");
        let Error::Decode { path, excerpt, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(path, "/version");
        assert_eq!(excerpt, r#"{"data":"nine"}"#);
        assert!(error.to_string().contains("/version"), "{error}");
    }

    #[test]
    fn decode_error_truncates_long_bodies() {
        let body = format!(r#"{{"data":"{}"}}"#, "é".repeat(300));
        let error = decode_envelope::<u32>("/x", body.as_bytes()).expect_err("not a number");
        let Error::Decode { excerpt, .. } = &error else {
            panic!("{error:?}")
        };
        assert!(
            excerpt.len() <= EXCERPT_LEN + "…".len() && excerpt.ends_with('…'),
            "{excerpt}"
        );
    }

    #[test]
    fn decode_error_redacts_access_paths() {
        let body =
            br#"{"data":{"ticket":"PVE:root@pam:SECRET","CSRFPreventionToken":"CSRFSECRET"}}"#;
        let error = decode_envelope::<Vec<u32>>("/access/ticket", body).expect_err("not a list");
        let printed = format!(
            "{error} {error:?} {}",
            std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn decode_error_redacts_console_tickets() {
        let body = br#"{"data":{"ticket":"PVEVNC:SECRET","password":"SECRET","port":5900}}"#;
        let error = decode_envelope::<Vec<u32>>("/nodes/pve1/qemu/100/vncproxy", body)
            .expect_err("not a list");
        let printed = format!(
            "{error} {error:?} {}",
            std::error::Error::source(&error)
                .map(ToString::to_string)
                .unwrap_or_default()
        );
        assert!(!printed.contains("SECRET"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn sensitive_paths() {
        assert!(is_sensitive_path("/access/ticket"));
        assert!(is_sensitive_path("access/users/root@pam/token/ci"));
        assert!(!is_sensitive_path("/accessories"));
        assert!(!is_sensitive_path("/nodes"));
        for path in [
            "/nodes/pve1/qemu/100/vncproxy",
            "/nodes/pve1/lxc/200/termproxy",
            "nodes/pve1/qemu/100/spiceproxy",
            "/nodes/pve1/qemu/100/mtunnel",
            "/nodes/pve1/vncshell",
            "/nodes/pve1/termproxy",
            "/nodes/pve1/qemu/100/config",
            "/cluster/notifications/endpoints/webhook/hook1",
            "/storage/local-lvm",
            "/nodes/pve1/qemu/100/vncproxy?websocket=1",
        ] {
            assert!(is_sensitive_path(path), "{path}");
        }
        for path in [
            "/nodes/pve1/qemu/100/status/current",
            "/nodes/pve1/qemu/100/vncproxy/extra",
            "/nodes//qemu/100/vncproxy",
            "/nodes/pve1/storage/local",
        ] {
            assert!(!is_sensitive_path(path), "{path}");
        }
    }
}
