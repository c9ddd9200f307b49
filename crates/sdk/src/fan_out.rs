//! Fan-out: one request per node (or per item) with bounded concurrency and per-item results.
//!
//! In a cluster, one offline node must not hide the answers of the others.
//! Proxmox forwards `/nodes/{node}/…` to that node and answers 595 or 596 when it cannot reach it,
//! so [`Client::fan_out`] keeps each item's result apart: the caller gets data for the nodes that
//! answered and an error (with [`Error::is_node_unreachable`](crate::Error::is_node_unreachable))
//! for the ones that did not.
//! Results come back in the order of the input, whatever order the requests finish in.

use std::future::Future;

use futures::{StreamExt, stream};
use serde::Deserialize;

use crate::Client;
use crate::error::Result;

/// An entry of `GET /nodes`; only the name is needed here.
#[derive(Deserialize)]
struct NodeEntry {
    node: String,
}

impl Client {
    /// Runs `request(client, item)` for every item, at most `concurrency` at a time (at least one),
    /// and returns each item with its result, in input order.
    ///
    /// ```no_run
    /// # async fn demo(client: proxmox_sdk::Client) {
    /// let nodes = ["pve1", "pve2", "pve3"];
    /// let versions = client
    ///     .fan_out(nodes, 4, |client, node| async move {
    ///         client.get::<serde_json::Value>(&client.path(["nodes", node, "version"]), &()).await
    ///     })
    ///     .await;
    /// for (node, version) in versions {
    ///     match version {
    ///         Ok(version) => println!("{node}: {version}"),
    ///         Err(error) => eprintln!("{node}: {error}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn fan_out<I, K, T, F, Fut>(
        &self,
        items: I,
        concurrency: usize,
        request: F,
    ) -> Vec<(K, Result<T>)>
    where
        I: IntoIterator<Item = K>,
        K: Clone,
        F: Fn(Client, K) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let request = &request;
        stream::iter(items)
            .map(|item| {
                let pending = request(self.clone(), item.clone());
                async move { (item, pending.await) }
            })
            .buffered(concurrency.max(1))
            .collect()
            .await
    }

    /// Lists the cluster's nodes with `GET /nodes`, then runs `request(client, node)` for each, as
    /// [`Client::fan_out`] does.
    ///
    /// Fails only if the node list itself cannot be read.
    pub async fn for_each_node<T, F, Fut>(
        &self,
        concurrency: usize,
        request: F,
    ) -> Result<Vec<(String, Result<T>)>>
    where
        F: Fn(Client, String) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let nodes: Vec<NodeEntry> = self.get("/nodes", &()).await?;
        Ok(self
            .fan_out(
                nodes.into_iter().map(|entry| entry.node),
                concurrency,
                request,
            )
            .await)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use crate::{Client, Error};

    fn offline_client() -> Client {
        Client::builder()
            .base_url("http://127.0.0.1:1")
            .build()
            .expect("valid client")
    }

    #[tokio::test]
    async fn keeps_order_and_per_item_errors() {
        let client = offline_client();
        let results = client
            .fan_out([3u64, 1, 2], 2, |_client, item| async move {
                tokio::time::sleep(Duration::from_millis(item * 10)).await;
                if item == 1 {
                    Err(Error::invalid_request("node 1 is offline"))
                } else {
                    Ok(item * 10)
                }
            })
            .await;
        let summary: Vec<(u64, Option<u64>)> = results
            .into_iter()
            .map(|(item, result)| (item, result.ok()))
            .collect();
        assert_eq!(summary, [(3, Some(30)), (1, None), (2, Some(20))]);
    }

    #[tokio::test]
    async fn bounds_concurrency() {
        let client = offline_client();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let results = client
            .fan_out(0..10, 3, |_client, _item| {
                let running = Arc::clone(&running);
                let peak = Arc::clone(&peak);
                async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                }
            })
            .await;
        assert_eq!(results.len(), 10);
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }
}
