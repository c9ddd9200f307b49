//! The operations new in Proxmox VE 9.2: custom CPU models (pve-manager
//! `API2/Cluster/Qemu/CustomCPUModels.pm`), SDN prefix lists and route maps, the storage
//! identity (pve-storage `API2/Storage/Status.pm`) and destroying a Ceph filesystem; and that
//! an older tag does not serve them.

use mock_server::{MockServer, MockServerHandle};
use reqwest::Method;
use serde_json::Value;

use crate::session::Session;

async fn root(server: &MockServerHandle) -> Session {
    Session::login(&server.base_url(), "root@pam", "secret").await
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn custom_cpu_models_are_a_crud_collection_with_proxmox_checks() {
    let server = MockServer::builder().schema("9.2").spawn().await.unwrap();
    let root = root(&server).await;
    const MODELS: &str = "/cluster/qemu/custom-cpu-models";

    // `reported-model` is required on create (schema), the name is a config ID.
    let (status, body) = root
        .call(Method::POST, MODELS, &[("cputype", "fast")])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["reported-model"].is_string(), "{body}");

    let (status, body) = root
        .call(
            Method::POST,
            MODELS,
            &[
                ("cputype", "custom-fast"),
                ("reported-model", "host"),
                ("flags", "+aes;-pcid"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = root
        .call(
            Method::POST,
            MODELS,
            &[("cputype", "fast"), ("reported-model", "kvm64")],
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(message(&body), "custom CPU model 'fast' already exists\n");

    // With or without the prefix, the same model; cputype carries the prefix.
    let (status, body) = root.get(&format!("{MODELS}/fast")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["cputype"], "custom-fast");
    assert_eq!(body["data"]["flags"], "+aes;-pcid");
    let digest = body["data"]["digest"].as_str().unwrap().to_owned();
    let (_, list) = root.get(MODELS).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["digest"], digest.as_str());

    // Update: fixed keys cannot be deleted; a stale digest is refused.
    let (status, body) = root
        .call(
            Method::PUT,
            &format!("{MODELS}/fast"),
            &[("cputype", "fast"), ("delete", "reported-model")],
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(message(&body), "cannot delete 'reported-model'\n");
    let (status, _) = root
        .call(
            Method::PUT,
            &format!("{MODELS}/fast"),
            &[("cputype", "fast"), ("hidden", "1"), ("digest", &digest)],
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = root
        .call(
            Method::PUT,
            &format!("{MODELS}/fast"),
            &[
                ("cputype", "fast"),
                ("delete", "flags"),
                ("digest", &digest),
            ],
        )
        .await;
    assert_eq!(status, 500);
    assert!(
        message(&body).contains("detected modified configuration"),
        "{body}"
    );
    let (_, body) = root.get(&format!("{MODELS}/custom-fast")).await;
    assert_eq!(body["data"]["hidden"], 1);
    assert_eq!(body["data"]["flags"], "+aes;-pcid");

    // Delete, then it is gone with Proxmox's messages.
    let (status, _) = root
        .call(Method::DELETE, &format!("{MODELS}/fast"), &[])
        .await;
    assert_eq!(status, 200);
    let (status, body) = root.get(&format!("{MODELS}/fast")).await;
    assert_eq!(status, 500);
    assert_eq!(message(&body), "Custom cputype 'fast' not found\n");
    let (_, body) = root
        .call(Method::DELETE, &format!("{MODELS}/fast"), &[])
        .await;
    assert_eq!(message(&body), "custom CPU model 'fast' does not exist\n");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn prefix_lists_and_their_entries() {
    let server = MockServer::builder()
        .schema("latest")
        .spawn()
        .await
        .unwrap();
    let root = root(&server).await;
    const LISTS: &str = "/cluster/sdn/prefix-lists";

    let (status, body) = root.call(Method::POST, LISTS, &[("id", "9bad")]).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = root
        .call(
            Method::POST,
            LISTS,
            &[
                ("id", "lan"),
                ("entries", "action=permit,prefix=10.0.0.0/8,seq=10"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = root.call(Method::POST, LISTS, &[("id", "lan")]).await;
    assert_eq!(status, 500, "{body}");

    let entries = format!("{LISTS}/lan/entries");
    // Without seq: the next multiple of 5; FullRangeCIDR allows /0.
    let (status, body) = root
        .call(
            Method::POST,
            &entries,
            &[("action", "deny"), ("prefix", "0.0.0.0/0"), ("le", "32")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = root
        .call(
            Method::POST,
            &entries,
            &[("action", "deny"), ("prefix", "10.0.0.0/33")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["prefix"].is_string(), "{body}");
    let (status, body) = root
        .call(
            Method::POST,
            &entries,
            &[
                ("action", "permit"),
                ("prefix", "10.1.0.0/16"),
                ("seq", "10"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"]["seq"].as_str().unwrap().contains("10"),
        "{body}"
    );
    let (status, body) = root
        .call(
            Method::POST,
            &entries,
            &[("action", "permit"), ("prefix", "10.1.0.0/16"), ("ge", "8")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["ge"].is_string(), "{body}");

    let (_, body) = root.get(&entries).await;
    let seqs: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![10, 15]);
    // The list's own view has the same entries.
    let (_, list) = root.get(&format!("{LISTS}/lan")).await;
    assert_eq!(list["data"]["entries"].as_array().unwrap().len(), 2);

    let (status, _) = root
        .call(
            Method::PUT,
            &format!("{entries}/15"),
            &[("action", "permit")],
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = root.get(&format!("{entries}/15")).await;
    assert_eq!(body["data"]["action"], "permit");
    assert_eq!(body["data"]["le"], 32);
    let (status, _) = root
        .call(Method::DELETE, &format!("{entries}/15"), &[])
        .await;
    assert_eq!(status, 200);
    let (status, body) = root.get(&format!("{entries}/15")).await;
    assert_eq!(status, 500);
    assert!(
        message(&body).contains("no entry with sequence number 15"),
        "{body}"
    );
    let (status, body) = root.get(&format!("{LISTS}/nope/entries")).await;
    assert_eq!(status, 500);
    assert_eq!(message(&body), "prefix list 'nope' does not exist\n");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn route_maps_exist_while_they_have_entries() {
    let server = MockServer::builder()
        .schema("latest")
        .spawn()
        .await
        .unwrap();
    let root = root(&server).await;
    const ENTRIES: &str = "/cluster/sdn/route-maps/entries";

    let (status, body) = root
        .call(
            Method::POST,
            ENTRIES,
            &[
                ("route-map-id", "out"),
                ("order", "10"),
                ("action", "permit"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = root
        .call(
            Method::POST,
            ENTRIES,
            &[("route-map-id", "out"), ("order", "10"), ("action", "deny")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = root
        .call(
            Method::POST,
            ENTRIES,
            &[
                ("route-map-id", "in"),
                ("order", "1"),
                ("action", "permit"),
                ("call", "missing"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["errors"]["call"].is_string(), "{body}");
    let (status, _) = root
        .call(
            Method::POST,
            ENTRIES,
            &[
                ("route-map-id", "in"),
                ("order", "1"),
                ("action", "permit"),
                ("call", "out"),
            ],
        )
        .await;
    assert_eq!(status, 200);

    let (_, maps) = root.get("/cluster/sdn/route-maps").await;
    let ids: Vec<&str> = maps["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|map| map["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["in", "out"]);
    let (_, all) = root.get(ENTRIES).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 2);

    let entry = format!("{ENTRIES}/out/entry/10");
    let (status, _) = root.call(Method::PUT, &entry, &[("action", "deny")]).await;
    assert_eq!(status, 200);
    let (_, body) = root.get(&entry).await;
    assert_eq!(body["data"]["action"], "deny");
    assert_eq!(body["data"]["route-map-id"], "out");
    let (status, _) = root.call(Method::DELETE, &entry, &[]).await;
    assert_eq!(status, 200);
    let (status, body) = root.get(&format!("{ENTRIES}/out")).await;
    assert_eq!(status, 500);
    assert_eq!(message(&body), "route map 'out' does not exist\n");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn storage_identity_and_cephfs_destroy() {
    let server = MockServer::builder().schema("9.2").spawn().await.unwrap();
    let root = root(&server).await;
    let (status, body) = root.get("/nodes/pve1/storage/local/identity").await;
    assert_eq!(status, 500);
    assert!(message(&body).starts_with("get_identity not implemented for this plugin"));
    let (status, body) = root.get("/nodes/pve1/storage/nope/identity").await;
    assert_eq!(status, 500);
    assert_eq!(message(&body), "storage 'nope' does not exist\n");
    let (status, body) = root
        .call(
            Method::POST,
            "/storage",
            &[
                ("storage", "backup"),
                ("type", "pbs"),
                ("server", "192.0.2.10"),
                ("datastore", "store1"),
                ("username", "backup@pbs"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = root.get("/nodes/pve1/storage/backup/identity").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["type"], "pbs");
    assert_eq!(body["data"]["id"].as_str().unwrap().len(), 64);

    let (status, body) = root
        .call(Method::DELETE, "/nodes/pve1/ceph/fs/nofs", &[])
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(message(&body), "no such cephfs 'nofs'\n");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn older_tags_do_not_serve_9_2_operations() {
    let server = MockServer::builder().schema("9.1").spawn().await.unwrap();
    let root = root(&server).await;
    let (status, _) = root.get("/cluster/qemu/custom-cpu-models").await;
    assert_eq!(status, 501);
    let (status, _) = root.get("/nodes/pve1/storage/local/identity").await;
    assert_eq!(status, 501);
    server.shutdown().await.unwrap();
}
