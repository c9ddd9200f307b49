//! Errors: the library's [`Error`] (start-up, I/O, store) and `AppError`, the one error type
//! every request handler returns; the HTTP layer (`crate::http`) renders it the way Proxmox's
//! API daemon does.
//!
//! Proxmox's JSON formatter (`PVE::APIServer::Formatter::Standard`, `prepare_response_data`)
//! answers an error as `{"data": null, "message": "..."}` plus `"errors": {...}` for parameter
//! exceptions, with the first line of the message as the HTTP reason phrase
//! (`PVE::APIServer::AnyEvent::response`). Client mistakes (4xx, and the 500s that Proxmox uses
//! for "does not exist" and friends) are not logged; internal failures are logged and the client
//! gets a generic message.

use std::collections::BTreeMap;

use http::StatusCode;

/// Errors of the library API (building, starting and stopping a server).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The requested schema tag is not embedded in this build.
    #[error(
        "unknown schema version '{0}' (known: latest, {known})",
        known = crate::embedded::TAGS.join(", ")
    )]
    UnknownSchema(String),
    /// The embedded route metadata could not be parsed.
    #[error("route metadata for schema {tag} is invalid")]
    Metadata {
        /// The schema tag.
        tag: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The seed fixture could not be read or parsed.
    #[error("seed fixture is invalid: {0}")]
    Seed(String),
    /// The state store failed.
    #[error("state store failed")]
    Store(#[from] crate::store::StoreError),
    /// TLS set-up failed (certificate generation, loading or configuration).
    #[error("TLS set-up failed: {0}")]
    Tls(String),
    /// Binding or serving a socket failed.
    #[error("I/O failed: {context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Real mode (`--upstream`) could not be set up: an invalid URL, or the client.
    #[error("upstream set-up failed: {0}")]
    Upstream(String),
    /// A client of the in-process test mock failed (`testing`, feature `sdk`): building the
    /// SDK client, or a call to a `/_mock` control endpoint.
    #[error("test mock client failed: {context}")]
    Client {
        /// What was being done, e.g. `POST /_mock/faults`.
        context: String,
        /// The SDK's or HTTP client's error, or the mock's refusal.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// A closure that wraps an error as [`Error::Client`] with `context`, for `map_err`.
    #[cfg_attr(not(feature = "sdk"), allow(dead_code))]
    pub(crate) fn client<E>(context: impl Into<String>) -> impl FnOnce(E) -> Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let context = context.into();
        move |source| Error::Client {
            context,
            source: Box::new(source),
        }
    }
}

/// The error of one API request, rendered like Proxmox does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AppError {
    /// `raise_param_exc`: HTTP 400 `Parameter verification failed.` with per-parameter errors.
    Param(BTreeMap<String, String>),
    /// A Proxmox-style failure with a status and a message (the message usually ends in `\n`).
    Status {
        /// HTTP status.
        status: StatusCode,
        /// Message, verbatim as Proxmox would send it.
        message: String,
    },
    /// An authentication failure: Proxmox answers these with the message as reason phrase and
    /// an empty body; we add a small JSON body with the same message.
    Unauthorized(String),
    /// An internal failure: logged, the client gets a generic message.
    Internal(String),
}

impl AppError {
    /// A failure with the given status and message.
    pub(crate) fn status(status: StatusCode, message: impl Into<String>) -> Self {
        AppError::Status {
            status,
            message: message.into(),
        }
    }

    /// Proxmox's most common failure: a plain `die` in a handler, which becomes HTTP 500.
    pub(crate) fn die(message: impl Into<String>) -> Self {
        Self::status(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// HTTP 400 with a plain message (malformed requests that never reach the schema check).
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::status(StatusCode::BAD_REQUEST, message)
    }

    /// A parameter exception for one parameter.
    pub(crate) fn param(name: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = BTreeMap::new();
        errors.insert(name.into(), message.into());
        AppError::Param(errors)
    }

    /// The HTTP status this error is answered with.
    pub(crate) fn http_status(&self) -> StatusCode {
        match self {
            AppError::Param(_) => StatusCode::BAD_REQUEST,
            AppError::Status { status, .. } => *status,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message as Proxmox would put it into the body.
    pub(crate) fn message(&self) -> &str {
        match self {
            AppError::Param(_) => "Parameter verification failed.\n",
            AppError::Status { message, .. } => message,
            AppError::Unauthorized(message) => message,
            AppError::Internal(_) => "internal error\n",
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.http_status().as_u16(),
            self.message().trim_end()
        )
    }
}

impl std::error::Error for AppError {}

impl From<crate::store::StoreError> for AppError {
    fn from(error: crate::store::StoreError) -> Self {
        AppError::Internal(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_error_is_400() {
        let error = AppError::param("vmid", "property is missing and it is not optional");
        assert_eq!(error.http_status(), StatusCode::BAD_REQUEST);
        assert_eq!(error.message(), "Parameter verification failed.\n");
    }
}
