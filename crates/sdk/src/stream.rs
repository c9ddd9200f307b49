//! Streams of results, and the list helpers of the typed API: [`Items`], [`Call::with_total`],
//! [`Call::paginate`].
//!
//! # Design
//!
//! Task logs and paged lists arrive in several requests, so they are streams. A bare
//! `impl Stream` would make every caller add `futures` to their `Cargo.toml` and `pin!` the
//! stream before calling `next()`. [`Items`] is a named, `Unpin`, `Send`, `'static` stream with
//! the two methods almost every caller wants as inherent methods: [`Items::next`] and
//! [`Items::try_collect`]. It also implements [`Stream`], re-exported here with [`StreamExt`]
//! and [`TryStreamExt`], for the adapters (`take`, `try_filter`, `buffer_unordered`, ...).
//!
//! An [`Items`] owns a clone of the [`Client`](crate::Client) (an `Arc` inside), so it can be
//! stored or moved into `tokio::spawn`.
//!
//! # Totals and pages
//!
//! Some Proxmox lists send the number of items on all pages as `total` next to `data` (the task
//! list of a node, a task log, the syslog); [`Call::with_total`] keeps it.
//! Those lists take `start` (the offset) and `limit` (the page size);
//! [`Call::paginate`] sends the call page by page and yields the items one by one.
//! It is meant for operations that have both parameters: on any other, Proxmox refuses the
//! unknown parameters with a 400, which the stream yields as its first item.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use serde_json::json;

pub use futures::stream::{Stream, StreamExt, TryStreamExt};

use crate::envelope::Paged;
use crate::error::Result;
use crate::request::RequestTemplate;
use crate::typed::Call;

/// A stream of results: task log lines ([`Task::log`](crate::Task::log),
/// [`Task::follow`](crate::Task::follow)) or the items of a paged list ([`Call::paginate`]).
///
/// ```no_run
/// # async fn demo(client: &proxmox_sdk::Client, upid: &proxmox_sdk::Upid) -> proxmox_sdk::Result<()> {
/// let mut lines = client.task(upid).follow();
/// while let Some(line) = lines.next().await {
///     println!("{}", line?.t);
/// }
/// # Ok(()) }
/// ```
#[must_use = "a stream does nothing until it is polled"]
pub struct Items<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T>> + Send + 'static>>,
}

impl<T> Items<T> {
    /// Wraps a stream.
    pub(crate) fn new(stream: impl Stream<Item = Result<T>> + Send + 'static) -> Self {
        Items {
            inner: Box::pin(stream),
        }
    }

    /// The next item, or `None` at the end. After an error the stream ends.
    pub async fn next(&mut self) -> Option<Result<T>> {
        StreamExt::next(&mut self.inner).await
    }

    /// Every remaining item, or the first error.
    pub async fn try_collect(self) -> Result<Vec<T>> {
        TryStreamExt::try_collect(self.inner).await
    }
}

impl<T> Stream for Items<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T> fmt::Debug for Items<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Items")
            .field("item", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + Send + 'static, P> Call<Vec<T>, P> {
    /// Sends the call and returns the list together with the `total` Proxmox sends next to it
    /// (the number of items on all pages; `None` when the operation sends none).
    ///
    /// ```no_run
    /// # async fn demo(client: &proxmox_sdk::Client) -> proxmox_sdk::Result<()> {
    /// let page = client.nodes().node("pve1").tasks().list().with_total().await?;
    /// println!("{} of {:?} tasks", page.data.len(), page.total);
    /// # Ok(()) }
    /// ```
    pub async fn with_total(self) -> Result<Paged<Vec<T>>> {
        self.into_request().send_paged().await
    }

    /// Sends the call page by page, `page_size` items at a time (as `start` and `limit`,
    /// replacing any the call had), and streams the items in order.
    ///
    /// For operations that take `start` and `limit` (a node's task list, a task log, the
    /// syslog). The stream ends after a short page or once `total` items were read.
    /// A `page_size` of 0 is read as 1.
    ///
    /// ```no_run
    /// # async fn demo(client: &proxmox_sdk::Client) -> proxmox_sdk::Result<()> {
    /// let mut tasks = client.nodes().node("pve1").tasks().list().paginate(100);
    /// while let Some(task) = tasks.next().await {
    ///     let task = task?;
    ///     # let _ = task;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn paginate(self, page_size: u64) -> Items<T> {
        match self.into_request().into_template() {
            Ok(template) => paginate(template, page_size.max(1)),
            Err(error) => Items::new(futures::stream::once(async move { Err(error) })),
        }
    }
}

/// Where a paginated stream stands.
struct PageCursor {
    template: RequestTemplate,
    page_size: u64,
    next_start: Option<u64>,
}

/// Sends `template` with `start`/`limit` until a short page or the `total`.
fn paginate<T: DeserializeOwned + Send + 'static>(
    template: RequestTemplate,
    page_size: u64,
) -> Items<T> {
    let cursor = PageCursor {
        template,
        page_size,
        next_start: Some(0),
    };
    let pages = futures::stream::try_unfold(cursor, |mut cursor| async move {
        let Some(start) = cursor.next_start else {
            return Ok(None);
        };
        let page: Paged<Vec<T>> = cursor
            .template
            .request(&[("start", json!(start)), ("limit", json!(cursor.page_size))])
            .send_paged()
            .await?;
        let n_items = page.data.len() as u64;
        let end = start + n_items;
        let finished = n_items < cursor.page_size || page.total.is_some_and(|total| end >= total);
        cursor.next_start = if finished { None } else { Some(end) };
        Ok(Some((
            futures::stream::iter(page.data.into_iter().map(Ok)),
            cursor,
        )))
    });
    Items::new(pages.try_flatten())
}
