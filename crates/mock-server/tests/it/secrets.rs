//! Secrets at rest and in replies: the state file is readable by its owner only, a cloud-init
//! password is stored as a crypt hash and shown as `**********`, and a token secret never comes
//! back in an error.

use mock_server::{MockServer, Store};
use serde_json::Value;

use crate::client;

/// Files of a persisted state are created 0600: they hold password hashes and the ticket key.
#[cfg(unix)]
#[tokio::test]
async fn the_state_file_is_private() {
    use std::os::unix::fs::PermissionsExt;

    let dir = std::env::temp_dir().join(format!("mock-secrets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.db");
    let server = MockServer::builder()
        .store(Store::Sqlite(path.clone()))
        .auth(false)
        .spawn()
        .await
        .unwrap();
    let reply = client()
        .post(format!("{}/pools", server.base_url()))
        .form(&[("poolid", "p1")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.join(format!("state.db{suffix}"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_token_secret_is_not_echoed() {
    let server = MockServer::builder().spawn().await.unwrap();
    let response = client()
        .get(format!("{}/version", server.base_url()))
        .header(
            "Authorization",
            "PVEAPIToken=root@pam!ci=s3cret=part-of-the-secret",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let reason = response
        .status()
        .canonical_reason()
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap();
    for secret in ["s3cret", "part-of-the-secret"] {
        assert!(!body.contains(secret), "{body}");
        assert!(!reason.contains(secret), "{reason}");
    }
    server.shutdown().await.unwrap();
}

/// `update_vm_api` stores `cipassword` crypted (`PVE::Tools::encrypt_pw`, `$5$`) unless it is a
/// crypt hash already, and the config reads show `**********` (qemu-server
/// `src/PVE/API2/Qemu.pm`).
#[tokio::test]
async fn cloud_init_passwords_are_hashed_and_hidden() {
    let server = MockServer::builder().auth(false).spawn().await.unwrap();
    let http = client();
    let config = format!("{}/nodes/pve1/qemu/100/config", server.base_url());
    let reply = http
        .put(&config)
        .form(&[("cipassword", "hunter2"), ("ciuser", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 200);
    let shown: Value = http
        .get(&config)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["data"]["cipassword"], "**********");
    assert_eq!(shown["data"]["ciuser"], "admin");
    let pending: Value = http
        .get(format!("{}/nodes/pve1/qemu/100/pending", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry = pending["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["key"] == "cipassword")
        .cloned()
        .unwrap();
    assert_eq!(entry["value"], "**********");
    let state: Value = http
        .get(format!(
            "{}/_mock/state",
            server.base_url().trim_end_matches("/api2/json")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored = state["data"]["objects"]["/nodes/pve1/qemu/100"]["cipassword"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stored.starts_with("$5$"), "{stored}");
    assert!(!stored.contains("hunter2"));
    // A value that is a crypt hash already is kept as it is.
    let crypted = "$5$abcdefgh$0123456789012345678901234567890123456789012";
    http.put(&config)
        .form(&[("cipassword", crypted)])
        .send()
        .await
        .unwrap();
    let state: Value = http
        .get(format!(
            "{}/_mock/state",
            server.base_url().trim_end_matches("/api2/json")
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        state["data"]["objects"]["/nodes/pve1/qemu/100"]["cipassword"],
        crypted
    );
    server.shutdown().await.unwrap();
}
