//! Asks every node of the cluster for its status at once, with bounded concurrency; an offline
//! node yields an error for that node only.
//!
//! Run with:
//!
//! ```text
//! cargo run -p mock-server &
//! cargo run -p proxmox-sdk --example fan_out
//! ```
//!
//! To see a node fail, inject a fault first:
//!
//! ```text
//! curl -X POST http://127.0.0.1:8005/_mock/faults \
//!   -H 'content-type: application/json' \
//!   -d '{"path": "/nodes/pve2/*", "status": 595, "count": 5, "message": "no route to host"}'
//! ```

use anyhow::Context;
use proxmox_sdk::Client;
use serde_json::Value;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = match Client::from_env() {
        Ok(client) => client,
        Err(_) => Client::builder()
            .base_url("http://127.0.0.1:8005")
            .password("root@pam", "secret")
            .build()?,
    };

    let results = client
        .for_each_node(8, |client, node| async move {
            client
                .get::<Value>(&client.path(["nodes", &node, "status"]), &())
                .await
        })
        .await
        .context("listing nodes")?;

    for (node, status) in results {
        match status {
            Ok(status) => println!(
                "{node}: up {} s, load {}",
                status["uptime"].as_u64().unwrap_or_default(),
                status["loadavg"]
                    .get(0)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
            Err(error) if error.is_node_unreachable() => println!("{node}: unreachable ({error})"),
            Err(error) => println!("{node}: error: {error}"),
        }
    }
    Ok(())
}
