//! Connects over HTTPS to a server with a self-signed certificate by pinning its SHA-256
//! fingerprint, then shows that a wrong pin is refused.
//!
//! The target comes from the `PROXMOX_API_*` variables (see `ClientBuilder::from_env`);
//! `PROXMOX_API_URL` and `PROXMOX_API_FINGERPRINT` are required. For a real node, the fingerprint
//! is shown under *Node → System → Certificates* (or printed by
//! `openssl x509 -in /etc/pve/local/pve-ssl.pem -noout -fingerprint -sha256`). Against the mock,
//! whose certificate is `.proxmox-mock/cert.pem`:
//!
//! ```text
//! cargo run -p mock-server &
//! export PROXMOX_API_URL=https://127.0.0.1:8006 PROXMOX_API_USER=root@pam PROXMOX_API_PASSWORD=secret
//! export PROXMOX_API_FINGERPRINT=$(openssl x509 -in .proxmox-mock/cert.pem -noout -fingerprint -sha256 | cut -d= -f2)
//! cargo run -p proxmox-sdk --example fingerprint
//! ```

use anyhow::{Context, bail};
use proxmox_sdk::{ClientBuilder, Fingerprint};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("PROXMOX_API_URL").context("PROXMOX_API_URL is not set")?;
    let fingerprint: Fingerprint = std::env::var("PROXMOX_API_FINGERPRINT")
        .context("PROXMOX_API_FINGERPRINT is not set")?
        .parse()
        .context("PROXMOX_API_FINGERPRINT is not a SHA-256 fingerprint")?;
    println!("pinning {fingerprint}");

    // `from_env` pins PROXMOX_API_FINGERPRINT.
    let client = ClientBuilder::from_env()?.build()?;
    let version = client.version().get().await.context("calling /version")?;
    println!("connected to {url}: Proxmox VE {}", version.version);

    // The same server with a wrong pin is refused during the handshake.
    let wrong = ClientBuilder::from_env()?
        .fingerprint(Fingerprint::of_der(b"not the certificate").to_string())
        .build()?;
    match wrong.version().get().await {
        Err(error) if error.is_tls() => println!("a wrong pin is rejected: {error}"),
        other => bail!("a wrong pin was not rejected: {other:?}"),
    }
    Ok(())
}
