//! Dynamic create, read, update and delete of a VM and a container, and parameter encoding.

use std::time::Duration;

use proxmox_sdk::{Client, TaskOutcome, Upid};
use serde::Serialize;
use serde_json::{Value, json};

use crate::{password_client, spawn, token_client};

/// Waits for a task with fast polling.
async fn wait(client: &Client, upid: &Upid) -> TaskOutcome {
    client
        .task(upid)
        .poll_interval(Duration::from_millis(20), Duration::from_millis(100))
        .wait(Duration::from_secs(10))
        .await
        .expect("task succeeds")
}

#[derive(Serialize)]
struct CreateVm<'a> {
    vmid: u32,
    name: &'a str,
    memory: u32,
    cores: u32,
    net0: &'a str,
    scsi0: &'a str,
    description: Option<&'a str>,
    start: Option<bool>,
}

#[tokio::test]
async fn vm_lifecycle() {
    let server = spawn().await;
    let client = password_client(&server);
    let create = CreateVm {
        vmid: 150,
        name: "it-vm",
        memory: 1024,
        cores: 2,
        net0: "virtio,bridge=vmbr0",
        scsi0: "local-lvm:8",
        description: None,
        start: Some(false),
    };
    let upid: Upid = client
        .post("/nodes/pve1/qemu", &create)
        .await
        .expect("create");
    assert_eq!(upid.node, "pve1");
    assert_eq!(wait(&client, &upid).await, "OK");

    let vm_path = client.path(["nodes", "pve1", "qemu", "150"]);
    let config: Value = client
        .get(&format!("{vm_path}/config"), &())
        .await
        .expect("config");
    assert_eq!(config["name"], "it-vm");
    assert_eq!(config["cores"].as_i64(), Some(2));

    let _: Value = client
        .put(
            &format!("{vm_path}/config"),
            &json!({"memory": 2048, "onboot": true, "description": null}),
        )
        .await
        .expect("update");
    let config: Value = client
        .get(&format!("{vm_path}/config"), &())
        .await
        .expect("config");
    assert_eq!(
        config["memory"]
            .as_i64()
            .or_else(|| config["memory"].as_str()?.parse().ok()),
        Some(2048)
    );
    assert_eq!(
        config["onboot"]
            .as_i64()
            .or_else(|| config["onboot"].as_str()?.parse().ok()),
        Some(1)
    );

    let listed: Vec<Value> = client
        .get("/nodes/pve1/qemu", &json!({"full": true}))
        .await
        .expect("list");
    assert!(
        listed.iter().any(|vm| vm["vmid"].as_i64() == Some(150)),
        "{listed:?}"
    );

    let upid: Upid = client
        .delete(&vm_path, &json!({"purge": true}))
        .await
        .expect("delete");
    wait(&client, &upid).await;
    let error = client
        .get::<Value>(&format!("{vm_path}/config"), &())
        .await
        .expect_err("gone");
    assert!(error.is_api(), "{error:?}");
    assert!(
        error
            .api_message()
            .is_some_and(|message| message.contains("does not exist")),
        "{error:?}"
    );
}

#[tokio::test]
async fn container_lifecycle() {
    let server = spawn().await;
    let client = token_client(&server);
    let upid: Upid = client
        .post(
            "/nodes/pve1/lxc",
            &json!({
                "vmid": 250,
                "ostemplate": "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                "hostname": "it-ct",
                "memory": 512,
                "rootfs": "local-lvm:8",
                "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
                "unprivileged": true,
            }),
        )
        .await
        .expect("create");
    wait(&client, &upid).await;

    let ct_path = client.path(["nodes", "pve1", "lxc", "250"]);
    let config: Value = client
        .get(&format!("{ct_path}/config"), &())
        .await
        .expect("config");
    assert_eq!(config["hostname"], "it-ct");

    let _: Value = client
        .put(&format!("{ct_path}/config"), &json!({"memory": 1024}))
        .await
        .expect("update");
    let config: Value = client
        .get(&format!("{ct_path}/config"), &())
        .await
        .expect("config");
    assert_eq!(
        config["memory"]
            .as_i64()
            .or_else(|| config["memory"].as_str()?.parse().ok()),
        Some(1024)
    );

    let upid: Upid = client.delete(&ct_path, &()).await.expect("delete");
    wait(&client, &upid).await;
    let containers: Vec<Value> = client.get("/nodes/pve1/lxc", &()).await.expect("list");
    assert!(
        !containers.iter().any(|ct| ct["vmid"].as_i64() == Some(250)),
        "{containers:?}"
    );
}

#[tokio::test]
async fn parameter_errors_are_reported_per_parameter() {
    let server = spawn().await;
    let client = token_client(&server);
    let error = client
        .post::<Value>("/nodes/pve1/qemu", &json!({"vmid": 5, "cores": "many"}))
        .await
        .expect_err("invalid parameters");
    assert_eq!(
        error.status().map(|status| status.as_u16()),
        Some(400),
        "{error:?}"
    );
    let errors = error.param_errors().expect("an API error");
    assert!(
        errors.contains_key("vmid") && errors.contains_key("cores"),
        "{errors:?}"
    );
    assert!(error.to_string().contains("vmid"), "{error}");
}

#[tokio::test]
async fn unknown_paths_are_api_errors() {
    let server = spawn().await;
    let client = token_client(&server);
    let error = client
        .get::<Value>("/nodes/pve1/nonsense", &())
        .await
        .expect_err("no such path");
    assert_eq!(
        error.status().map(|status| status.as_u16()),
        Some(501),
        "{error:?}"
    );
}

#[tokio::test]
async fn any_deserialize_type_works() {
    #[derive(serde::Deserialize)]
    struct Version {
        version: String,
        release: String,
    }
    let server = spawn().await;
    let client = token_client(&server);
    let version: Version = client.get("/version", &()).await.expect("typed");
    assert!(!version.version.is_empty() && !version.release.is_empty());
    let raw: Value = client.get("/version", &()).await.expect("untyped");
    assert_eq!(raw["version"], version.version.as_str());
}

#[tokio::test]
async fn decode_errors_name_the_path() {
    let server = spawn().await;
    let client = token_client(&server);
    let error = client
        .get::<Vec<u8>>("/version", &())
        .await
        .expect_err("not a list of bytes");
    assert!(error.is_decode(), "{error:?}");
    assert!(error.to_string().contains("/version"), "{error}");
}

#[tokio::test]
async fn percent_encoded_segments_reach_the_server() {
    let server = spawn().await;
    let client = token_client(&server);
    let user_path = client.path(["access", "users", "root@pam"]);
    assert_eq!(user_path, "/access/users/root%40pam");
    let user: Value = client.get(&user_path, &()).await.expect("user");
    assert!(user.is_object(), "{user:?}");
}
