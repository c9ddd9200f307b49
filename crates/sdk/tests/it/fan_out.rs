//! Fan-out over nodes: one unreachable node does not hide the others.

use serde_json::{Value, json};

use crate::{inject_fault, spawn, token_client};

#[tokio::test]
async fn one_offline_node_yields_one_error() {
    let server = spawn().await;
    inject_fault(
        &server,
        json!({"path": "/nodes/pve2/*", "status": 595, "count": 100, "message": "no route to host"}),
    )
    .await;
    let client = token_client(&server);
    let results = client
        .for_each_node(4, |client, node| async move {
            client
                .get::<Vec<Value>>(&client.path(["nodes", &node, "qemu"]), &())
                .await
        })
        .await
        .expect("the node list itself works");
    let nodes: Vec<&str> = results.iter().map(|(node, _)| node.as_str()).collect();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    for (node, result) in &results {
        match node.as_str() {
            "pve1" => assert!(
                result.as_ref().is_ok_and(|vms| !vms.is_empty()),
                "{result:?}"
            ),
            "pve2" => {
                let error = result.as_ref().expect_err("pve2 is offline");
                assert!(error.is_node_unreachable(), "{error:?}");
                assert_eq!(error.api_message(), Some("no route to host"));
            }
            other => panic!("unexpected node {other}"),
        }
    }
}
