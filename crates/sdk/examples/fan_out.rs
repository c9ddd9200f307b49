//! Asks every node of the cluster for its status at once, with bounded concurrency; an offline
//! node yields an error for that node only.
//!
//! The target comes from the `PROXMOX_API_*` variables (see `ClientBuilder::from_env`). Against
//! the mock:
//!
//! ```text
//! cargo run -p mock-server &
//! PROXMOX_API_URL=http://127.0.0.1:8005 PROXMOX_API_USER=root@pam PROXMOX_API_PASSWORD=secret \
//!   cargo run -p proxmox-sdk --example fan_out
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client =
        Client::from_env().context("reading PROXMOX_API_* (PROXMOX_API_URL and credentials)")?;

    let results = client
        .for_each_node(8, |client, node| async move {
            client.nodes().node(node).status().get().await
        })
        .await
        .context("listing nodes")?;

    for (node, status) in results {
        match status {
            Ok(status) => println!(
                "{node}: {}, cpu {:.0}%, load {}",
                status.pveversion,
                status.cpu * 100.0,
                status.loadavg.first().map_or("?", String::as_str)
            ),
            Err(error) if error.is_node_unreachable() => println!("{node}: unreachable ({error})"),
            Err(error) => println!("{node}: error: {error}"),
        }
    }
    Ok(())
}
