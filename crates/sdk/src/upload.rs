//! File uploads: `POST /nodes/{node}/storage/{storage}/upload` (ISO images, container templates,
//! OVAs, VM images) is the one Proxmox operation that takes `multipart/form-data` instead of
//! JSON: the file travels as the `filename` part, the other parameters as text parts before it
//! (pve-http-server `AnyEvent.pm` streams the file to a temporary file and hands the handler its
//! name as `tmpfilename`).
//!
//! [`UploadFile`] is the file: bytes in memory, or a path that is streamed from disk when the
//! request is sent, so multi-gigabyte images never sit in memory. The typed API's `upload`
//! method takes one; the dynamic API takes one through [`RequestBuilder::upload`].
//!
//! [`RequestBuilder::upload`]: crate::RequestBuilder::upload

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::encode::Params;
use crate::error::{Error, Result};

/// The part name Proxmox reads the file from.
const FILE_PART: &str = "filename";

/// A file to upload.
#[derive(Clone)]
pub struct UploadFile {
    name: String,
    source: Source,
}

#[derive(Clone)]
enum Source {
    Memory(Bytes),
    Path(PathBuf),
}

impl UploadFile {
    /// A file held in memory, uploaded under `name` (the name it gets on the storage).
    pub fn from_bytes(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UploadFile {
            name: name.into(),
            source: Source::Memory(data.into()),
        }
    }

    /// A file on disk, streamed when the request is sent; uploaded under `name`.
    pub fn from_path(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        UploadFile {
            name: name.into(),
            source: Source::Path(path.into()),
        }
    }

    /// The name the file gets on the storage.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The multipart form: the parameters as text parts, then the file.
    pub(crate) fn form(&self, params: Option<&Params>) -> Result<Form> {
        let mut form = Form::new();
        for (key, value) in params.into_iter().flatten() {
            if key == FILE_PART {
                continue;
            }
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            form = form.text(key.clone(), text);
        }
        let part = match &self.source {
            Source::Memory(data) => {
                Part::stream_with_length(reqwest::Body::from(data.clone()), data.len() as u64)
            }
            Source::Path(path) => {
                let file = std::fs::File::open(path).map_err(|error| Error::InvalidRequest {
                    message: format!("cannot open the upload file {}", path.display()),
                    source: Some(Box::new(error)),
                })?;
                let length = file.metadata().map(|metadata| metadata.len()).ok();
                let body = reqwest::Body::from(tokio::fs::File::from_std(file));
                match length {
                    Some(length) => Part::stream_with_length(body, length),
                    None => Part::stream(body),
                }
            }
        };
        let part = part
            .file_name(self.name.clone())
            .mime_str("application/octet-stream")
            .map_err(|error| Error::InvalidRequest {
                message: "invalid upload content type".to_owned(),
                source: Some(Box::new(error)),
            })?;
        Ok(form.part(FILE_PART, part))
    }
}

impl fmt::Debug for UploadFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Memory(data) => format!("{} bytes in memory", data.len()),
            Source::Path(path) => format!("file {}", path.display()),
        };
        f.debug_struct("UploadFile")
            .field("name", &self.name)
            .field("source", &source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_size_not_the_content() {
        let file = UploadFile::from_bytes("debian.iso", vec![0_u8; 1024]);
        let text = format!("{file:?}");
        assert!(
            text.contains("1024 bytes in memory") && text.contains("debian.iso"),
            "{text}"
        );
    }

    #[test]
    fn missing_files_are_request_errors() {
        let file = UploadFile::from_path("x.iso", "/nonexistent/x.iso");
        let error = file.form(None).expect_err("no such file");
        assert!(error.to_string().contains("/nonexistent/x.iso"), "{error}");
    }

    #[test]
    fn parameters_become_text_parts() {
        let mut params = Params::new();
        params.insert("content".to_owned(), Value::String("iso".to_owned()));
        params.insert("filename".to_owned(), Value::String("ignored".to_owned()));
        let form = UploadFile::from_bytes("a.iso", "data")
            .form(Some(&params))
            .expect("form");
        assert!(form.boundary().len() > 10);
    }
}
