//! A synchronous wrapper for scripts and tests (feature `blocking`).
//!
//! [`Client`] owns a current-thread tokio runtime and drives the async [`crate::Client`] on it
//! with `block_on`, one call at a time.
//! Connections stay pooled between calls, because the pool's background work runs whenever a call
//! is in progress.
//! Do not use it from inside an async runtime: `block_on` would panic there; use the async client.

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use shared_types::Upid;

use crate::client::ClientBuilder;
use crate::error::{Error, Result};
use crate::task::{TaskLogLine, TaskOutcome};

/// A blocking Proxmox VE client.
///
/// ```no_run
/// let client = proxmox_sdk::Client::builder()
///     .base_url("http://127.0.0.1:8005")
///     .password("root@pam", "secret")
///     .build_blocking()?;
/// let version: serde_json::Value = client.get("/version", &())?;
/// # Ok::<(), proxmox_sdk::Error>(())
/// ```
#[derive(Debug)]
pub struct Client {
    client: crate::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// Wraps an async client in a new current-thread runtime.
    pub fn new(client: crate::Client) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| Error::config_with("could not start a tokio runtime", error))?;
        Ok(Client { client, runtime })
    }

    /// A blocking client configured from `PROXMOX_API_*` variables; see [`ClientBuilder::from_env`].
    pub fn from_env() -> Result<Self> {
        ClientBuilder::from_env()?.build_blocking()
    }

    /// The async client inside.
    pub fn async_client(&self) -> &crate::Client {
        &self.client
    }

    /// Runs any future on the wrapper's runtime, for async APIs without a blocking twin.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Blocking [`crate::Client::get`].
    pub fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.runtime.block_on(self.client.get(path, params))
    }

    /// Blocking [`crate::Client::post`].
    pub fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.runtime.block_on(self.client.post(path, params))
    }

    /// Blocking [`crate::Client::put`].
    pub fn put<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.runtime.block_on(self.client.put(path, params))
    }

    /// Blocking [`crate::Client::delete`].
    pub fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &(impl Serialize + ?Sized),
    ) -> Result<T> {
        self.runtime.block_on(self.client.delete(path, params))
    }

    /// Blocking [`crate::Client::login`].
    pub fn login(&self) -> Result<()> {
        self.runtime.block_on(self.client.login())
    }

    /// Blocking [`crate::Task::wait`]: waits for a task and returns how it ended.
    pub fn wait_task(&self, upid: &Upid, timeout: Duration) -> Result<TaskOutcome> {
        self.runtime.block_on(self.client.task(upid).wait(timeout))
    }

    /// The whole log of a task.
    pub fn task_log(&self, upid: &Upid) -> Result<Vec<TaskLogLine>> {
        self.runtime
            .block_on(self.client.task(upid).log().try_collect())
    }
}

impl ClientBuilder {
    /// Builds a [blocking client](Client).
    pub fn build_blocking(self) -> Result<Client> {
        Client::new(self.build()?)
    }
}
