//! The dynamic request builder, [`RequestBuilder`].
//!
//! [`Client::get`](crate::Client::get) and friends are shorthands for
//! [`Client::request`](crate::Client::request), which returns a [`RequestBuilder`] for setting a
//! per-request timeout or retry count before sending.
//!
//! [`RequestBuilder::send`] returns the payload of Proxmox's `{"data": …}` envelope;
//! [`RequestBuilder::send_paged`] also returns the `total` next to it.
//! The answer is decoded, and an HTTP error mapped to [`Error::Api`] or [`Error::Auth`], by
//! `envelope`.

use std::fmt;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{Instrument as _, Span};

use crate::Client;
use crate::encode::{self, Params};
use crate::envelope::{Paged, read_response};
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;
use crate::telemetry::{self, Operation};
use crate::upload::UploadFile;

/// A request being prepared; created by [`Client::request`](crate::Client::request).
#[must_use = "a request does nothing until it is sent"]
pub struct RequestBuilder {
    client: Client,
    method: Method,
    path: String,
    params: Result<Option<Params>>,
    upload: Option<UploadFile>,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    /// Set by the typed API: names the request's span.
    operation: Option<Operation>,
}

impl RequestBuilder {
    /// A request without parameters; it holds its own clone of the client (an `Arc`).
    pub(crate) fn new(client: Client, method: Method, path: impl Into<String>) -> Self {
        let retry = client.retry_policy();
        RequestBuilder {
            client,
            method,
            path: path.into(),
            params: Ok(None),
            upload: None,
            timeout: None,
            retry,
            operation: None,
        }
    }

    /// Names the operation for the request's `tracing` span: its operationId and its path
    /// template below `/api2/json` (the typed API sets them; see `docs/observability.md`).
    /// Both must be bounded names, never values: they become span names and attributes.
    pub fn operation(mut self, operation_id: &'static str, template: &'static str) -> Self {
        self.operation = Some(Operation {
            id: operation_id,
            template,
        });
        self
    }

    /// Sets the parameters: a query string for `GET`/`HEAD`/`DELETE`, a JSON body otherwise.
    ///
    /// `params` must serialize to a JSON object, or to nothing (`()`, `None`).
    /// A serialization error is reported when the request is sent.
    pub fn params<P: Serialize + ?Sized>(mut self, params: &P) -> Self {
        self.params = encode::to_params(params);
        self
    }

    /// Sends the request as `multipart/form-data`: the parameters as text parts, then `file` as
    /// the `filename` part, the way Proxmox's upload endpoint expects (see [`UploadFile`]).
    /// Without this, `POST`/`PUT` parameters travel as a JSON body.
    pub fn upload(mut self, file: UploadFile) -> Self {
        self.upload = Some(file);
        self
    }

    /// Overrides the client's default timeout for this request.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Overrides the client's retry count for this request (only `GET` and `HEAD` are retried).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.retry.max_retries = max_retries;
        self
    }

    /// The client the request goes through.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// An owned copy of the request, for streams that send it again and again (pages, task
    /// logs). Fails with the stored serialization error, and for uploads (a file is sent once).
    pub(crate) fn into_template(self) -> Result<RequestTemplate> {
        if self.upload.is_some() {
            return Err(Error::invalid_request(
                "an upload cannot be sent more than once",
            ));
        }
        Ok(RequestTemplate {
            client: self.client,
            method: self.method,
            path: self.path,
            params: self.params?.unwrap_or_default(),
            timeout: self.timeout,
            retry: self.retry,
            operation: self.operation,
        })
    }

    /// Builds the `reqwest::Request`, without authentication headers.
    pub fn build(&self) -> Result<reqwest::Request> {
        let params = match &self.params {
            Ok(params) => params.as_ref(),
            Err(error) => return Err(clone_request_error(error)),
        };
        let mut url = encode::join_path(self.client.base_url(), &self.path)?;
        let in_query = matches!(self.method, Method::GET | Method::HEAD | Method::DELETE);
        if in_query && let Some(params) = params {
            encode::append_query(&mut url, params);
        }
        let mut builder = self
            .client
            .http()
            .request(self.method.clone(), url)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(file) = &self.upload {
            builder = builder.multipart(file.form(params)?);
        } else if !in_query && let Some(params) = params {
            let body = serde_json::to_vec(params).map_err(|error| Error::InvalidRequest {
                message: "could not encode the request body".to_owned(),
                source: Some(Box::new(error)),
            })?;
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(body);
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        builder
            .build()
            .map_err(|error| Error::from_reqwest(self.describe(), error))
    }

    /// Sends the request and returns the payload of the `{"data": …}` envelope.
    ///
    /// `T` can be any `DeserializeOwned` type, including `serde_json::Value` and `()`.
    pub async fn send<T: DeserializeOwned>(self) -> Result<T> {
        Ok(self.send_paged::<T>().await?.data)
    }

    /// Sends the request and returns the payload together with the envelope's `total`.
    pub async fn send_paged<T: DeserializeOwned>(self) -> Result<Paged<T>> {
        let span = self.span();
        let decoded = async {
            let response = self.send_in(&span).await?;
            read_response(&self.method, &self.path, response).await
        }
        .instrument(span.clone())
        .await;
        if let Err(error) = &decoded {
            telemetry::record_error(&span, error);
        }
        decoded
    }

    /// Sends the request (with authentication, renewal and retries) and returns the raw answer,
    /// whatever its status.
    pub async fn send_raw(&self) -> Result<reqwest::Response> {
        let span = self.span();
        self.send_in(&span).instrument(span.clone()).await
    }

    /// [`RequestBuilder::send_raw`] in a span made by the caller.
    async fn send_in(&self, span: &Span) -> Result<reqwest::Response> {
        let request = self.build()?;
        self.client.execute_with(request, self.retry, span).await
    }

    /// The request's span (see `crate::telemetry`).
    fn span(&self) -> Span {
        telemetry::request_span(&self.method, self.operation, self.client.base_url())
    }

    /// `GET /nodes`, for error messages.
    fn describe(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

impl fmt::Debug for RequestBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBuilder")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What [`RequestBuilder::into_template`] keeps: everything needed to send the same request
/// again, with some parameters replaced (`start`, `limit`), from a `'static` stream.
pub(crate) struct RequestTemplate {
    client: Client,
    method: Method,
    path: String,
    params: Params,
    timeout: Option<Duration>,
    retry: RetryPolicy,
    operation: Option<Operation>,
}

impl RequestTemplate {
    /// The request again, with `overrides` replacing or adding parameters.
    pub(crate) fn request(&self, overrides: &[(&str, serde_json::Value)]) -> RequestBuilder {
        let mut params = self.params.clone();
        for (name, value) in overrides {
            params.insert((*name).to_owned(), value.clone());
        }
        RequestBuilder {
            client: self.client.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            params: Ok(Some(params)),
            upload: None,
            timeout: self.timeout,
            retry: self.retry,
            operation: self.operation,
        }
    }
}

/// Serialization errors are kept until `send`; `build` may be called more than once, so the stored
/// error is described again rather than moved out.
fn clone_request_error(error: &Error) -> Error {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Error::invalid_request(message.trim_start_matches("invalid request: ").to_owned())
}
