//! Request bodies as `PVE::APIServer::AnyEvent` reads them: `application/x-www-form-urlencoded`
//! (the default; a repeated key becomes an array), `application/json` (an object, nested at most
//! 8 deep), and `multipart/form-data` for uploads, whose file part is streamed and counted, never
//! buffered, and whose size is not limited (pveproxy streams it to `/var/tmp`). Bodies other
//! than uploads are limited to 512 KiB (`$limit_max_post`): larger ones answer
//! `501 for data too large`, other content types `506 upload 'Content-Type '...' not
//! implemented`, as pveproxy does, before the body is read.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request};
use http::{HeaderMap, StatusCode, header};
use serde_json::Value;
use tower::{Layer, ServiceExt};

use crate::error::AppError;
use crate::schema::Params;

/// Largest accepted request body other than an upload (`$limit_max_post` in pve-http-server
/// `src/PVE/APIServer/AnyEvent.pm`, 512 KiB since libpve-http-server-perl 5.2.1).
const MAX_BODY: usize = 512 * 1024;

/// `AnyEvent.pm`'s answer to a body over [`MAX_BODY`].
fn too_large() -> AppError {
    AppError::status(StatusCode::NOT_IMPLEMENTED, "for data too large\n")
}

/// The declared `Content-Length`, if any.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// The parameters of a POST/PUT body. An upload (`upload`: the storage upload path) takes a
/// `multipart/form-data` body of any size; everything else is form or JSON data of at most
/// [`MAX_BODY`], and another content type is refused before the body is read
/// (`authenticate_and_handle_request`).
pub(super) async fn read(
    headers: &HeaderMap,
    body: Body,
    upload: bool,
) -> Result<Params, AppError> {
    if upload && is_multipart(headers) {
        return read_multipart(headers, body).await;
    }
    if content_length(headers).is_some_and(|len| len > MAX_BODY as u64) {
        return Err(too_large());
    }
    let json = match content_type(headers).as_deref() {
        Some("application/json") => true,
        None | Some("application/x-www-form-urlencoded") | Some("") => false,
        Some(_) => {
            let raw = headers
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(AppError::status(
                StatusCode::from_u16(506).unwrap_or(StatusCode::NOT_IMPLEMENTED),
                format!("upload 'Content-Type '{raw}' not implemented\n"),
            ));
        }
    };
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| too_large())?;
    parse_body(json, &bytes)
}

/// The media type of the body, lower case (`parse_content_type`: the part before `;` or `,`).
fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split([';', ','])
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

fn parse_body(json: bool, bytes: &[u8]) -> Result<Params, AppError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Params::new());
    }
    match json {
        true => {
            let value: Value = serde_json::from_slice(bytes).map_err(|error| {
                AppError::bad_request(format!("malformed JSON body: {error}\n"))
            })?;
            match value {
                Value::Object(map) => {
                    if map.values().any(|v| depth(v) > 8) {
                        return Err(AppError::bad_request("JSON body nested too deeply\n"));
                    }
                    Ok(map)
                }
                _ => Err(AppError::bad_request("JSON body must be an object\n")),
            }
        }
        false => Ok(parse_urlencoded(bytes)?.into_iter().collect()),
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn decode_component(raw: &[u8]) -> Result<String, AppError> {
    let plus_decoded: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_decoded).collect();
    String::from_utf8(bytes).map_err(|_| AppError::bad_request("invalid UTF-8 in parameters\n"))
}

/// `decode_urlencoded`: `&`/`;` separated pairs; a repeated key becomes an array.
pub(super) fn parse_urlencoded(data: &[u8]) -> Result<Vec<(String, Value)>, AppError> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for pair in data.split(|&b| b == b'&' || b == b';') {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], Some(&pair[at + 1..])),
            None => (pair, None),
        };
        let key = decode_component(key)?;
        if key.contains('\0') {
            return Err(AppError::bad_request("invalid NUL byte in parameters\n"));
        }
        let value = match value {
            Some(raw) => Value::String(decode_component(raw)?),
            None => Value::String(String::new()),
        };
        match index.get(&key) {
            Some(&at) => {
                let slot = &mut out[at].1;
                match slot {
                    Value::Array(items) => items.push(value),
                    other => *other = Value::Array(vec![other.take(), value]),
                }
            }
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, value));
            }
        }
    }
    Ok(out)
}

/// Whether a request body is `multipart/form-data`.
fn is_multipart(headers: &HeaderMap) -> bool {
    content_type(headers).as_deref() == Some("multipart/form-data")
}

/// Whether a request body is `multipart/form-data` with a `boundary` (`parse_content_type`),
/// which pveproxy requires of an upload.
pub(super) fn is_multipart_with_boundary(headers: &HeaderMap) -> bool {
    is_multipart(headers)
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split([';', ',']).skip(1).any(|param| {
                    param.split_once('=').is_some_and(|(key, value)| {
                        key.trim() == "boundary" && !value.trim().is_empty()
                    })
                })
            })
}

/// Largest total size of the text fields of a multipart body.
const MAX_MULTIPART_TEXT: usize = 64 * 1024;

/// Reads a `multipart/form-data` body like `PVE::HTTPServer` does for uploads: text fields become
/// parameters, the file part is streamed and counted, its name becomes `filename` and its size
/// travels in `tmpfilename` (`/var/tmp/pveupload-<16 hex random><16 hex size>`).
async fn read_multipart(headers: &HeaderMap, body: Body) -> Result<Params, AppError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .ok_or_else(|| AppError::bad_request("missing Content-Type\n"))?;
    let request = http::Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .map_err(|_| AppError::bad_request("invalid multipart request\n"))?;
    // Uploads have no size limit: lift axum's default one (2 MB) for this body, which
    // `DefaultBodyLimit` does by marking the request on its way through.
    let unmark =
        tower::service_fn(
            |request: Request| async move { Ok::<_, std::convert::Infallible>(request) },
        );
    let request = match DefaultBodyLimit::disable()
        .layer(unmark)
        .oneshot(request)
        .await
    {
        Ok(request) => request,
        Err(never) => match never {},
    };
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|error| AppError::bad_request(format!("invalid multipart body: {error}\n")))?;
    let bad = |error: axum::extract::multipart::MultipartError| {
        AppError::bad_request(format!("invalid multipart body: {error}\n"))
    };
    let mut params = Params::new();
    let mut text_bytes = 0usize;
    let mut file: Option<(String, u64)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                size += chunk.len() as u64;
            }
            file = Some((file_name, size));
            continue;
        }
        let value = field.text().await.map_err(bad)?;
        text_bytes += name.len() + value.len();
        if text_bytes > MAX_MULTIPART_TEXT {
            return Err(AppError::status(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n",
            ));
        }
        if !name.is_empty() {
            params.insert(name, Value::String(value));
        }
    }
    if let Some((file_name, size)) = file {
        params
            .entry("filename")
            .or_insert_with(|| Value::String(file_name.clone()));
        let random = crate::schema::seed(&[&file_name, &crate::auth::now().to_string()]);
        params.insert(
            "tmpfilename".to_owned(),
            Value::String(format!("/var/tmp/pveupload-{random:016x}{size:016x}")),
        );
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn urlencoded_parsing() {
        let parsed = parse_urlencoded(b"a=1&b=x+y;c=%C3%A9&a=2&flag").unwrap();
        assert_eq!(parsed[0], ("a".to_owned(), json!(["1", "2"])));
        assert_eq!(parsed[1], ("b".to_owned(), json!("x y")));
        assert_eq!(parsed[2], ("c".to_owned(), json!("é")));
        assert_eq!(parsed[3], ("flag".to_owned(), json!("")));
        assert!(parse_urlencoded(b"a=%FF").is_err());
    }
}
