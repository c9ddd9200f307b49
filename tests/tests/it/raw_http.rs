//! The mock over real sockets, driven like curl or proxmoxer drive Proxmox: form bodies, the
//! `PVEAuthCookie` cookie with `CSRFPreventionToken`, API tokens, UPIDs polled until they stop.

use mock_server::Store;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::session::{Session, encode, upid_of};
use crate::{http_client, start};

#[tokio::test]
async fn login_csrf_and_wrong_passwords() {
    let server = start(Store::Memory).await;
    let session = Session::login(&server).await;
    let (status, reply) = session.call(Method::GET, "/version", &[]).await;
    assert_eq!(status, StatusCode::OK);
    // The server serves the tag under test (`PROXMOX_MOCK_SCHEMA_VERSION`, CI's matrix).
    let expected = mock_server::resolve_tag(&crate::tag()).unwrap();
    assert_eq!(reply["data"]["release"], expected, "{reply}");

    // A write with the ticket but without the CSRF token is refused.
    let (status, _) = session
        .call_with_csrf(Method::POST, "/nodes/pve1/qemu", &[("vmid", "9100")], false)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let http = http_client();
    let response = http
        .post(format!("{}/access/ticket", server.base_url()))
        .form(&[("username", "root@pam"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = http
        .get(format!("{}/nodes", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "no credentials"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn vm_life_cycle_over_form_bodies() {
    let server = start(Store::Memory).await;
    let session = Session::login(&server).await;
    let create = [
        ("vmid", "9001"),
        ("name", "e2e-vm"),
        ("memory", "1024"),
        ("cores", "2"),
        ("net0", "virtio,bridge=vmbr0"),
    ];
    let (status, reply) = session
        .call(Method::POST, "/nodes/pve1/qemu", &create)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let upid = upid_of(&reply);
    assert_eq!(session.wait(&upid).await, "OK");

    let (status, reply) = session.call(Method::GET, "/nodes/pve1/qemu", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let listed = reply["data"].as_array().unwrap();
    assert!(
        listed.iter().any(|vm| vm["vmid"] == 9001),
        "the new VM is listed: {reply}"
    );

    let (status, reply) = session
        .call(Method::GET, "/nodes/pve1/qemu/9001/config", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["data"]["cores"], 2, "integers stay integers: {reply}");
    assert_eq!(reply["data"]["name"], "e2e-vm");

    let (status, reply) = session
        .call(
            Method::PUT,
            "/nodes/pve1/qemu/9001/config",
            &[("cores", "4")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["data"], Value::Null, "PUT config is synchronous");
    let (_, reply) = session
        .call(Method::GET, "/nodes/pve1/qemu/9001/config", &[])
        .await;
    assert_eq!(reply["data"]["cores"], 4);

    let (status, reply) = session
        .call(Method::DELETE, "/nodes/pve1/qemu/9001", &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(session.wait(&upid_of(&reply)).await, "OK");
    let (status, reply) = session
        .call(Method::GET, "/nodes/pve1/qemu/9001/config", &[])
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(message.contains("does not exist"), "{reply}");

    // The task is listed with its log.
    let (status, reply) = session.call(Method::GET, "/nodes/pve1/tasks", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        reply["data"]
            .as_array()
            .is_some_and(|tasks| !tasks.is_empty())
    );
    let log_path = format!("/nodes/pve1/tasks/{}/log", encode(&upid));
    let (status, reply) = session.call(Method::GET, &log_path, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        reply["data"]
            .as_array()
            .is_some_and(|lines| lines.iter().all(|l| l["n"].is_number()))
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn container_life_cycle_with_an_api_token() {
    let server = start(Store::Memory).await;
    let session = Session::login(&server).await;
    let (status, reply) = session
        .call(
            Method::POST,
            "/access/users/root@pam/token/e2e",
            &[("privsep", "0")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["data"]["full-tokenid"], "root@pam!e2e");
    let secret = reply["data"]["value"].as_str().unwrap().to_owned();
    let token = Session::with_token(&server, format!("root@pam!e2e={secret}"));

    // Token requests need no CSRF token.
    let create = [
        ("vmid", "9002"),
        (
            "ostemplate",
            "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
        ),
        ("hostname", "e2e-ct"),
    ];
    let (status, reply) = token.call(Method::POST, "/nodes/pve1/lxc", &create).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(token.wait(&upid_of(&reply)).await, "OK");
    let (_, reply) = token.call(Method::GET, "/nodes/pve1/lxc", &[]).await;
    assert!(
        reply["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ct| ct["vmid"] == 9002),
        "{reply}"
    );
    let (status, reply) = token
        .call(Method::DELETE, "/nodes/pve1/lxc/9002", &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(token.wait(&upid_of(&reply)).await, "OK");

    let wrong = Session::with_token(&server, "root@pam!e2e=not-the-secret".to_owned());
    let (status, _) = wrong.call(Method::GET, "/nodes", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn validation_errors_name_the_parameter_in_proxmox_words() {
    let server = start(Store::Memory).await;
    let session = Session::login(&server).await;
    for (params, parameter, message) in [
        (
            vec![("vmid", "abc")],
            "vmid",
            "type check ('integer') failed - got 'abc'",
        ),
        (
            vec![("name", "x")],
            "vmid",
            "property is missing and it is not optional",
        ),
        (
            // `pve-vmid` is checked as a format before the bounds (pve-common `check_prop`).
            vec![("vmid", "5")],
            "vmid",
            "invalid format - value does not look like a valid VM ID",
        ),
        (
            vec![("vmid", "9003"), ("cores", "0")],
            "cores",
            "value must have a minimum value of 1",
        ),
        (
            vec![("vmid", "9003"), ("bogus", "1")],
            "bogus",
            "property is not defined in schema and the schema does not allow additional properties",
        ),
    ] {
        let (status, reply) = session
            .call(Method::POST, "/nodes/pve1/qemu", &params)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params:?}: {reply}");
        assert_eq!(reply["data"], Value::Null);
        let text = reply["errors"][parameter].as_str().unwrap_or_default();
        assert!(text.contains(message), "{params:?}: {reply}");
    }
    let (status, reply) = session
        .call(Method::GET, "/nodes/pve1/qemu/9003/config", &[])
        .await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "nothing was created: {reply}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_and_methods_are_not_implemented() {
    let server = start(Store::Memory).await;
    let session = Session::login(&server).await;
    let (status, reply) = session.call(Method::GET, "/no/such/path", &[]).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    assert!(
        reply["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Method 'GET /no/such/path' not implemented"),
        "{reply}"
    );
    let (status, _) = session.call(Method::DELETE, "/version", &[]).await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn https_with_the_generated_certificate_and_sqlite_state() {
    let dir = std::env::temp_dir().join(format!("e2e-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = start(Store::Sqlite(dir.join("state.db"))).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certificate =
        reqwest::Certificate::from_pem(server.tls_certificate_pem().as_bytes()).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(certificate)
        .build()
        .unwrap();
    let response = https
        .post(format!("{}/access/ticket", server.https_base_url()))
        .form(&[("username", "root@pam"), ("password", "secret")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
