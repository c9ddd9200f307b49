//! Connects over HTTPS to a server with a self-signed certificate by pinning its SHA-256
//! fingerprint.
//!
//! Run with:
//!
//! ```text
//! cargo run -p mock-server &
//! cargo run -p proxmox-sdk --example fingerprint
//! ```
//!
//! The mock keeps its certificate in `.proxmox-mock/cert.pem`, and the example computes the
//! fingerprint from it.
//! For a real node, pass the fingerprint shown under *Node → System → Certificates* (or printed by
//! `openssl x509 -in /etc/pve/local/pve-ssl.pem -noout -fingerprint -sha256`) and the URL:
//!
//! ```text
//! cargo run -p proxmox-sdk --example fingerprint -- AB:CD:… https://pve.example.com:8006
//! ```

use anyhow::Context;
use proxmox_sdk::{Client, Fingerprint};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let fingerprint = match args.next() {
        Some(fingerprint) => fingerprint.parse::<Fingerprint>()?,
        None => {
            let pem = std::fs::read(".proxmox-mock/cert.pem")
                .context("reading the mock's certificate; start `cargo run -p mock-server` in this directory")?;
            Fingerprint::of_pem(&pem)?
        }
    };
    let url = args
        .next()
        .unwrap_or_else(|| "https://127.0.0.1:8006".to_owned());
    println!("pinning {fingerprint}");

    let client = Client::builder()
        .base_url(&url)
        .password(
            "root@pam",
            std::env::var("PROXMOX_API_PASSWORD").unwrap_or_else(|_| "secret".to_owned()),
        )
        .fingerprint(fingerprint.to_string())
        .build()?;
    let version: serde_json::Value = client
        .get("/version", &())
        .await
        .context("calling /version")?;
    println!(
        "connected to {url}: Proxmox VE {}",
        version["version"].as_str().unwrap_or("?")
    );

    // The same server with a wrong pin is refused during the handshake.
    let wrong = Client::builder()
        .base_url(&url)
        .password("root@pam", "secret")
        .fingerprint(Fingerprint::of_der(b"not the certificate").to_string())
        .build()?;
    match wrong.get::<serde_json::Value>("/version", &()).await {
        Err(error) if error.is_tls() => println!("a wrong pin is rejected: {error}"),
        other => anyhow::bail!("a wrong pin was not rejected: {other:?}"),
    }
    Ok(())
}
