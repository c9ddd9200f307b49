//! Lists the cluster's nodes and each node's VMs with API-token authentication.
//!
//! Run with:
//!
//! ```text
//! cargo run -p mock-server &
//! cargo run -p proxmox-sdk --example token_list
//! ```
//!
//! Against a real cluster, set `PROXMOX_API_URL`, `PROXMOX_API_TOKEN_ID` and
//! `PROXMOX_API_TOKEN_SECRET` (and `PROXMOX_API_FINGERPRINT` or `PROXMOX_API_CA_FILE` for a
//! self-signed certificate).
//! Without a token, the example logs in to the mock as `root@pam` (password `secret`) and creates
//! one first, since the mock starts without tokens.

use anyhow::Context;
use proxmox_sdk::Client;
use serde::Deserialize;

/// The mock server's plain HTTP listener.
const MOCK_URL: &str = "http://127.0.0.1:8005";

#[derive(Deserialize)]
struct Node {
    node: String,
    status: Option<String>,
}

#[derive(Deserialize)]
struct Vm {
    vmid: u32,
    name: Option<String>,
    status: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = match Client::from_env() {
        Ok(client) => client,
        Err(_) => mock_token_client()
            .await
            .context("creating an API token on the mock server")?,
    };

    let nodes: Vec<Node> = client.get("/nodes", &()).await.context("listing nodes")?;
    for node in &nodes {
        println!(
            "{} ({})",
            node.node,
            node.status.as_deref().unwrap_or("unknown")
        );
        let vms: Vec<Vm> = client
            .get(&client.path(["nodes", &node.node, "qemu"]), &())
            .await
            .with_context(|| format!("listing the VMs of {}", node.node))?;
        for vm in vms {
            println!(
                "  {:>5}  {:<20} {}",
                vm.vmid,
                vm.name.as_deref().unwrap_or("-"),
                vm.status.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

/// Logs in to the mock with the password, creates a token, and returns a client using it.
async fn mock_token_client() -> anyhow::Result<Client> {
    #[derive(Deserialize)]
    struct NewToken {
        #[serde(rename = "full-tokenid")]
        full_tokenid: String,
        value: String,
    }
    let admin = Client::builder()
        .base_url(MOCK_URL)
        .password("root@pam", "secret")
        .build()?;
    let token_name = format!("example{}", std::process::id());
    let token: NewToken = admin
        .post(
            &admin.path(["access", "users", "root@pam", "token", &token_name]),
            &serde_json::json!({"privsep": false}),
        )
        .await?;
    println!("using the new API token {}", token.full_tokenid);
    Ok(Client::builder()
        .base_url(MOCK_URL)
        .token(token.full_tokenid, token.value)
        .build()?)
}
