//! Lists the cluster's nodes and each node's VMs with API-token authentication.
//!
//! The target comes from the `PROXMOX_API_*` variables (see `ClientBuilder::from_env`): with
//! `PROXMOX_API_TOKEN_ID` and `PROXMOX_API_TOKEN_SECRET` the example uses that token. With a
//! password login instead (`PROXMOX_API_USER`, `PROXMOX_API_PASSWORD`), it first creates a token
//! for that user and switches to it, which is how to try it against the mock (it starts without
//! tokens):
//!
//! ```text
//! cargo run -p mock-server &
//! PROXMOX_API_URL=http://127.0.0.1:8005 PROXMOX_API_USER=root@pam PROXMOX_API_PASSWORD=secret \
//!   cargo run -p proxmox-sdk --example token_list
//! ```

use anyhow::Context;
use proxmox_sdk::shared_types::PveBool;
use proxmox_sdk::shared_types::access::AccessUsersTokenGenerateParams;
use proxmox_sdk::{Client, ClientBuilder};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = if std::env::var_os("PROXMOX_API_TOKEN_ID").is_some() {
        Client::from_env()?
    } else {
        token_client().await.context("creating an API token")?
    };

    let nodes = client.nodes().list().await.context("listing nodes")?;
    for node in &nodes {
        println!("{} ({})", node.node, node.status);
        let vms = client
            .nodes()
            .node(&node.node)
            .qemu()
            .list()
            .await
            .with_context(|| format!("listing the VMs of {}", node.node))?;
        for vm in vms {
            println!(
                "  {:>5}  {:<20} {}",
                vm.vmid,
                vm.name.as_deref().unwrap_or("-"),
                vm.status
            );
        }
    }
    Ok(())
}

/// Logs in with the password from the environment, creates a token for that user, and returns a
/// client using it.
async fn token_client() -> anyhow::Result<Client> {
    let admin = Client::from_env()?;
    let user = std::env::var("PROXMOX_API_USER").context("PROXMOX_API_USER is not set")?;
    let token_name = format!("example{}", std::process::id());
    let token = admin
        .access()
        .users()
        .userid(&user)
        .token()
        .tokenid(&token_name)
        .create()
        .params(&AccessUsersTokenGenerateParams {
            privsep: Some(PveBool(false)),
            comment: Some("proxmox-sdk token_list example".to_owned()),
            ..Default::default()
        })
        .await?;
    println!("using the new API token {}", token.full_tokenid);
    Ok(ClientBuilder::from_env()?
        .token(token.full_tokenid, token.value)
        .build()?)
}
