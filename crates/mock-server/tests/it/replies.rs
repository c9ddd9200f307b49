//! Replies that match the schema: one test per violation schemathesis found in the mock
//! (`.ci/run`, docs/mock.md "Reply conformance"), each against Proxmox's own behaviour.

use mock_server::{MockServer, MockServerHandle};
use reqwest::Method;
use serde_json::{Value, json};

async fn start() -> MockServerHandle {
    MockServer::builder().auth(false).spawn().await.unwrap()
}

/// Sends a JSON body (or none) and returns the status and the decoded reply.
async fn call(
    server: &MockServerHandle,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = crate::client().request(method, format!("{}{path}", server.base_url()));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn ok(server: &MockServerHandle, method: Method, path: &str, body: Option<Value>) -> Value {
    let (status, reply) = call(server, method.clone(), path, body).await;
    assert_eq!(status, 200, "{method} {path}: {reply}");
    reply["data"].clone()
}

/// No key of an object (at any depth) is `null`: Proxmox leaves unset fields out.
fn assert_no_nulls(value: &Value, at: &str) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                assert!(!value.is_null(), "{at}.{key} is null");
                assert_no_nulls(value, &format!("{at}.{key}"));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                assert_no_nulls(item, &format!("{at}[{index}]"));
            }
        }
        _ => {}
    }
}

/// pve-manager `API2/Backup.pm`: `fleecing`, `performance` and `prune-backups` are property
/// strings in POST and PUT but objects in the replies of GET /cluster/backup[/{id}].
#[tokio::test]
async fn backup_job_property_strings_come_back_as_objects() {
    let server = start().await;
    ok(
        &server,
        Method::POST,
        "/cluster/backup",
        Some(json!({
            "id": "backup-replies",
            "schedule": "daily",
            "storage": "local",
            "all": 1,
            "fleecing": "enabled=1,storage=local-lvm",
            "performance": "max-workers=2",
            "prune-backups": "keep-last=3,keep-daily=7",
        })),
    )
    .await;
    let job = ok(&server, Method::GET, "/cluster/backup/backup-replies", None).await;
    assert_eq!(
        job["fleecing"],
        json!({"enabled": 1, "storage": "local-lvm"})
    );
    assert_eq!(job["performance"], json!({"max-workers": 2}));
    assert_eq!(
        job["prune-backups"],
        json!({"keep-last": 3, "keep-daily": 7})
    );
    let list = ok(&server, Method::GET, "/cluster/backup", None).await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|job| job["id"] == "backup-replies")
        .unwrap();
    assert_eq!(entry["fleecing"]["storage"], "local-lvm");
    assert!(entry["performance"].is_object(), "{entry}");
    server.shutdown().await.unwrap();
}

/// An optional parameter sent as JSON `null` is unset (`PVE::JSONSchema::check_prop` treats
/// `undef` as missing), and unset fields are left out of replies, never `null`.
#[tokio::test]
async fn unset_optional_fields_are_omitted() {
    let server = start().await;
    ok(
        &server,
        Method::POST,
        "/cluster/sdn/vnets",
        Some(json!({"vnet": "vnetr1", "zone": "localnetwork", "alias": null})),
    )
    .await;
    let vnets = ok(&server, Method::GET, "/cluster/sdn/vnets", None).await;
    assert_no_nulls(&vnets, "vnets");
    let vnet = vnets
        .as_array()
        .unwrap()
        .iter()
        .find(|vnet| vnet["vnet"] == "vnetr1")
        .unwrap();
    assert!(vnet.get("alias").is_none(), "{vnet}");
    let vnet = ok(&server, Method::GET, "/cluster/sdn/vnets/vnetr1", None).await;
    assert_no_nulls(&vnet, "vnet");
    ok(
        &server,
        Method::POST,
        "/cluster/firewall/aliases",
        Some(json!({"name": "replies1", "cidr": "10.0.0.0/8", "comment": null})),
    )
    .await;
    let aliases = ok(&server, Method::GET, "/cluster/firewall/aliases", None).await;
    assert_no_nulls(&aliases, "aliases");
    server.shutdown().await.unwrap();
}

/// A required parameter sent as `null` is missing, as in Proxmox: the create used to succeed
/// and invent an ID ("1") that the reply schema's pattern refuses.
#[tokio::test]
async fn a_required_parameter_sent_as_null_is_missing() {
    let server = start().await;
    let (status, reply) = call(
        &server,
        Method::POST,
        "/cluster/firewall/groups",
        Some(json!({"group": null})),
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(
        reply["errors"]["group"],
        "property is missing and it is not optional"
    );
    server.shutdown().await.unwrap();
}

/// pve-firewall `API2/Firewall/Rules.pm`: rules are a list; a new rule goes to the top
/// (`unshift`), `pos` is the index in replies (an integer, never the `pos` a create was sent,
/// which came back as the string "18446744073709551615"), a delete closes the gap, `moveto`
/// moves, and a missing position is "no rule at position N".
#[tokio::test]
async fn firewall_rules_are_a_list_with_integer_positions() {
    let server = start().await;
    let rules = "/cluster/firewall/rules";
    ok(
        &server,
        Method::POST,
        rules,
        Some(json!({"type": "in", "action": "ACCEPT", "pos": 18446744073709551615u64, "iface": "vmbr0"})),
    )
    .await;
    ok(
        &server,
        Method::POST,
        rules,
        Some(json!({"type": "out", "action": "DROP", "comment": "second"})),
    )
    .await;
    ok(
        &server,
        Method::POST,
        rules,
        Some(json!({"type": "in", "action": "REJECT", "comment": "third"})),
    )
    .await;
    let list = ok(&server, Method::GET, rules, None).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    for (index, rule) in list.iter().enumerate() {
        assert_eq!(rule["pos"], json!(index), "{rule}");
    }
    assert_eq!(list[0]["action"], "REJECT");
    assert_eq!(list[1]["action"], "DROP");
    assert_eq!(list[2]["action"], "ACCEPT");
    assert_eq!(
        list[2]["enable"], 0,
        "a rule created without enable is disabled"
    );
    assert_no_nulls(&Value::Array(list.clone()), "rules");

    let rule = ok(&server, Method::GET, &format!("{rules}/1"), None).await;
    assert_eq!(rule["pos"], 1);
    assert_eq!(rule["action"], "DROP");
    let (status, reply) = call(&server, Method::GET, &format!("{rules}/7"), None).await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "no rule at position 7\n");

    ok(
        &server,
        Method::PUT,
        &format!("{rules}/0"),
        Some(json!({"moveto": 2})),
    )
    .await;
    let list = ok(&server, Method::GET, rules, None).await;
    let actions: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| rule["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["DROP", "REJECT", "ACCEPT"]);

    ok(&server, Method::DELETE, &format!("{rules}/0"), None).await;
    let list = ok(&server, Method::GET, rules, None).await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["pos"], 0);
    assert_eq!(list[0]["action"], "REJECT");
    assert_eq!(list[1]["pos"], 1);
    server.shutdown().await.unwrap();
}

/// Proxmox's not-found messages per resource (pve-firewall, pve-network, pve-manager), and a
/// noun rather than the path template (`{name} '0' does not exist`) where none is known.
#[tokio::test]
async fn not_found_messages_name_the_resource() {
    let server = start().await;
    let cases = [
        (
            "/cluster/firewall/groups/nogroup",
            500,
            "no such security group 'nogroup'\n",
        ),
        (
            "/cluster/firewall/groups/nogroup/0",
            500,
            "no such security group 'nogroup'\n",
        ),
        (
            "/cluster/firewall/ipset/noset/10.0.0.1",
            500,
            "no such IPSet 'noset'\n",
        ),
        (
            "/cluster/sdn/vnets/novnet",
            500,
            "sdn vnet 'novnet' does not exist\n",
        ),
        (
            "/cluster/sdn/zones/nozone",
            500,
            "sdn 'nozone' does not exist\n",
        ),
        (
            "/cluster/replication/100-9",
            500,
            "no such replication job '100-9'\n",
        ),
        (
            "/cluster/metrics/server/nometric",
            500,
            "no such server 'nometric'\n",
        ),
    ];
    for (path, status, message) in cases {
        let (got, reply) = call(&server, Method::GET, path, None).await;
        assert_eq!(got, status, "{path}: {reply}");
        assert_eq!(reply["message"], message, "{path}");
    }
    let (status, reply) = call(
        &server,
        Method::GET,
        "/cluster/firewall/aliases/noalias",
        None,
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["errors"]["name"], "no such alias");
    // A resource without a known message: a noun, never a `{template}`.
    ok(
        &server,
        Method::POST,
        "/cluster/firewall/ipset",
        Some(json!({"name": "set1"})),
    )
    .await;
    let (status, reply) = call(
        &server,
        Method::GET,
        "/cluster/firewall/ipset/set1/10.9.9.9",
        None,
    )
    .await;
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["errors"]["cidr"], "no such IP/Network");
    for path in [
        "/cluster/sdn/fabrics/node/nofabric/nonode",
        "/nodes/pve1/qemu/100/firewall/ipset/noset/10.0.0.1",
    ] {
        let (_, reply) = call(&server, Method::GET, path, None).await;
        let message = reply["message"].as_str().unwrap_or_default();
        assert!(!message.contains('{'), "{path}: {message}");
        assert!(!message.is_empty(), "{path}: {reply}");
    }
    server.shutdown().await.unwrap();
}

/// A stored value that cannot take the reply schema's type (a ceph pool created with a
/// `crush_rule` name, listed as an integer) is left out rather than sent as the wrong type.
#[tokio::test]
async fn stored_values_of_the_wrong_type_are_not_replied() {
    let server = start().await;
    ok(
        &server,
        Method::POST,
        "/nodes/pve1/ceph/pool",
        Some(json!({"name": "replies", "crush_rule": "replicated_rule"})),
    )
    .await;
    let pools = ok(&server, Method::GET, "/nodes/pve1/ceph/pool", None).await;
    for pool in pools.as_array().unwrap() {
        assert!(pool.get("crush_rule").is_none_or(Value::is_i64), "{pool}");
    }
    server.shutdown().await.unwrap();
}

/// Node status and storage status in every tag look like a real node's (issue 11, section 7):
/// `loadavg` as three numeric strings, a `pve-manager/<release>/<hash>` version, storage types
/// and sharing from the storage config, numbers that add up.
#[tokio::test]
async fn node_and_storage_status_look_real_in_every_tag() {
    for tag in mock_server::TAGS {
        let server = MockServer::builder()
            .auth(false)
            .schema(*tag)
            .spawn()
            .await
            .unwrap();
        let status = ok(&server, Method::GET, "/nodes/pve2/status", None).await;
        let loadavg: Vec<&str> = status["loadavg"]
            .as_array()
            .unwrap()
            .iter()
            .map(|load| load.as_str().unwrap())
            .collect();
        assert_eq!(loadavg.len(), 3, "{tag}: {status}");
        assert!(
            loadavg.iter().all(|load| load.parse::<f64>().is_ok()),
            "{tag}: {loadavg:?}"
        );
        let version = ok(&server, Method::GET, "/version", None).await;
        let pveversion = status["pveversion"].as_str().unwrap();
        assert!(
            pveversion.starts_with(&format!(
                "pve-manager/{}/",
                version["version"].as_str().unwrap()
            )),
            "{tag}: {pveversion}"
        );
        assert!(
            status["kversion"].as_str().unwrap().starts_with("Linux 6."),
            "{tag}: {status}"
        );
        let memory = &status["memory"];
        assert_eq!(
            memory["used"].as_u64().unwrap() + memory["free"].as_u64().unwrap(),
            memory["total"].as_u64().unwrap(),
            "{tag}: {memory}"
        );

        let storage = ok(
            &server,
            Method::GET,
            "/nodes/pve2/storage/local-lvm/status",
            None,
        )
        .await;
        assert_eq!(storage["type"], "lvmthin", "{tag}: {storage}");
        assert_eq!(storage["shared"], 0, "{tag}: {storage}");
        assert_eq!(storage["content"], "images,rootdir", "{tag}: {storage}");
        let listed = ok(&server, Method::GET, "/nodes/pve2/storage", None).await;
        let listed = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["storage"] == "local-lvm")
            .unwrap()
            .clone();
        for key in ["total", "used", "avail", "type", "shared"] {
            assert_eq!(listed[key], storage[key], "{tag}: {key}");
        }
        let (status_code, reply) = call(
            &server,
            Method::GET,
            "/nodes/pve2/storage/nope/status",
            None,
        )
        .await;
        assert_eq!(status_code, 500, "{tag}: {reply}");
        server.shutdown().await.unwrap();
    }
}

/// A storage marked shared, or of a type that always is, reports `shared: 1`.
#[tokio::test]
async fn shared_storage_comes_from_the_config() {
    let server = start().await;
    ok(
        &server,
        Method::POST,
        "/storage",
        Some(
            json!({"storage": "nfs1", "type": "nfs", "server": "10.0.0.5",
                    "export": "/export/pve", "content": "images,iso"}),
        ),
    )
    .await;
    let status = ok(
        &server,
        Method::GET,
        "/nodes/pve1/storage/nfs1/status",
        None,
    )
    .await;
    assert_eq!(status["type"], "nfs", "{status}");
    assert_eq!(status["shared"], 1, "{status}");
    let resources = ok(
        &server,
        Method::GET,
        "/cluster/resources?type=storage",
        None,
    )
    .await;
    let nfs = resources
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["id"] == "storage/pve1/nfs1")
        .unwrap()
        .clone();
    assert_eq!(nfs["shared"], 1, "{nfs}");
    assert_eq!(nfs["plugintype"], "nfs", "{nfs}");
    assert!(
        nfs.get("vmid").is_none() && nfs.get("cpu").is_none(),
        "{nfs}"
    );
}
