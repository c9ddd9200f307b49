//! Support of the generated typed API (`generated/`): [`Call`], the awaitable request that every
//! typed method returns, and the path building of the handles.
//!
//! A typed method does no I/O: it returns a [`Call`], on which per-request options can be set
//! before it is awaited (`.timeout(..)`, `.max_retries(..)`). Awaiting sends it through the same
//! [`RequestBuilder`] as the dynamic API, so encoding, the `{"data": ...}` envelope, errors,
//! authentication and retries are the same for both.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::request::RequestBuilder;

/// Characters percent-encoded in a path segment: everything but unreserved characters.
#[cfg_attr(
    not(any(
        feature = "access",
        feature = "cluster",
        feature = "nodes",
        feature = "pools",
        feature = "storage"
    )),
    allow(dead_code)
)]
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b';')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'&')
    .add(b'=')
    .add(b'+')
    .add(b',')
    .add(b'!')
    .add(b'$')
    .add(b'\'')
    .add(b'(')
    .add(b')')
    .add(b'*');

/// A typed request, ready to be awaited; returned by every method of the typed API.
///
/// A `Call` owns its request (and a clone of the client, which is an `Arc`), so it is `'static`
/// and `Send`: it can be stored, returned, or moved into `tokio::spawn` before it is awaited.
///
/// ```no_run
/// # async fn demo(client: &proxmox_sdk::Client) -> proxmox_sdk::Result<()> {
/// use std::time::Duration;
/// let vms = client
///     .nodes()
///     .node("pve1")
///     .qemu()
///     .list()
///     .timeout(Duration::from_secs(60))
///     .await?;
/// # let _ = vms; Ok(()) }
/// ```
///
/// - `T` is the reply's type.
/// - `P` is the operation's parameter struct when every parameter is optional: the method takes
///   no arguments and [`Call::params`] sets them (`tasks().list().params(&NodesTasksNodeParams {
///   vmid: Some(100), ..Default::default() })`). Operations with a required parameter take their
///   parameters as the method's argument instead, and `P` is [`NoParams`].
/// - `W` is the type the `data` is decoded as, which is `T` except for the few operations whose
///   reply is a bare number that Proxmox may send as a string (`GET /cluster/nextid` answers
///   `"102"`): those decode as `shared_types::lenient::LenientValue<T>` and hand out the `T`.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<T, P = NoParams, W = T> {
    request: RequestBuilder,
    response: Types<T, P, W>,
}

/// The types a [`Call`] carries without holding values of them (`Send` and `Sync` whatever they
/// are).
type Types<T, P, W> = PhantomData<fn() -> (T, P, W)>;

/// The `P` of a [`Call`] whose parameters were given to the method that made it (or that has
/// none): such a call has no [`Call::params`]. It has no values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoParams {}

impl<T, P, W: DeserializeOwned + Into<T>> Call<T, P, W> {
    /// Wraps a prepared request.
    pub fn new(request: RequestBuilder) -> Self {
        Call {
            request,
            response: PhantomData,
        }
    }

    /// Overrides the client's default timeout for this request (long operations).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request = self.request.timeout(timeout);
        self
    }

    /// Overrides the client's retry count for this request (only `GET` is ever retried).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.request = self.request.max_retries(max_retries);
        self
    }

    /// Sends the request and decodes the `data` of the reply.
    pub async fn send(self) -> Result<T> {
        self.request.send::<W>().await.map(Into::into)
    }

    /// The underlying dynamic request, e.g. to decode the reply into another type.
    pub fn into_request(self) -> RequestBuilder {
        self.request
    }
}

impl<T, P: Serialize, W> Call<T, P, W> {
    /// Sets the operation's optional parameters (all of them unset by default).
    ///
    /// ```no_run
    /// # async fn demo(client: &proxmox_sdk::Client) -> proxmox_sdk::Result<()> {
    /// use proxmox_sdk::shared_types::nodes::NodesTasksNodeParams;
    /// let tasks = client
    ///     .nodes()
    ///     .node("pve1")
    ///     .tasks()
    ///     .list()
    ///     .params(&NodesTasksNodeParams { vmid: Some(100), ..Default::default() })
    ///     .await?;
    /// # let _ = tasks; Ok(()) }
    /// ```
    pub fn params(mut self, params: &P) -> Self {
        self.request = self.request.params(params);
        self
    }
}

impl<T, P, W> IntoFuture for Call<T, P, W>
where
    T: Send + 'static,
    P: 'static,
    W: DeserializeOwned + Into<T> + Send + 'static,
{
    type Output = Result<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

impl<T, P, W> fmt::Debug for Call<T, P, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("request", &self.request)
            .field("response", &std::any::type_name::<T>())
            .finish()
    }
}

/// `parent` + `/` + the percent-encoded `segment` (a path parameter's value).
#[cfg_attr(
    not(any(
        feature = "access",
        feature = "cluster",
        feature = "nodes",
        feature = "pools",
        feature = "storage"
    )),
    allow(dead_code)
)]
pub(crate) fn child_path(parent: &str, segment: &dyn fmt::Display) -> String {
    let segment = segment.to_string();
    format!("{parent}/{}", utf8_percent_encode(&segment, SEGMENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_percent_encoded() {
        assert_eq!(child_path("/nodes", &"pve1"), "/nodes/pve1");
        assert_eq!(child_path("/nodes/pve1/qemu", &100), "/nodes/pve1/qemu/100");
        assert_eq!(
            child_path(
                "/nodes/pve1/tasks",
                &"UPID:pve1:0000ABCD:00:65A1B2C3:qmstart:100:root@pam:"
            ),
            "/nodes/pve1/tasks/UPID%3Apve1%3A0000ABCD%3A00%3A65A1B2C3%3Aqmstart%3A100%3Aroot%40pam%3A"
        );
        assert_eq!(
            child_path("/access/users", &"a/../b"),
            "/access/users/a%2F..%2Fb"
        );
        assert_eq!(
            child_path("/nodes/pve1/storage/local/content", &"local:iso/x y.iso"),
            "/nodes/pve1/storage/local/content/local%3Aiso%2Fx%20y.iso"
        );
    }
}
