//! Access control over HTTP: built-in and custom roles, ACLs with propagation, permission checks
//! (403 before existence), filtered lists, API tokens with privilege separation, groups,
//! effective permissions, password changes, ticket renewal and TOTP second factors.

use std::collections::BTreeMap;

use mock_server::{
    AclSeed, Fixture, GroupSeed, MockServer, MockServerHandle, TokenSeed, Totp, UserSeed,
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::session::{Session, post_ticket};

/// Alice's TOTP secret (base32 of "12345678901234567890").
const ALICE_TOTP: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn user(userid: &str, password: &str) -> UserSeed {
    UserSeed {
        userid: userid.to_owned(),
        password: Some(password.to_owned()),
        tokens: BTreeMap::new(),
        enable: true,
        groups: Vec::new(),
        totp: None,
        config: Default::default(),
    }
}

/// The default cluster plus alice (PVEVMUser on VM 100), bob (nothing) and carol (group `ops`,
/// PVEAuditor on `/`), and dave with a TOTP secret.
fn fixture() -> Fixture {
    let mut fixture = Fixture::default_fixture();
    let mut alice = user("alice@pve", "alice-secret");
    alice.tokens.insert(
        "ro".to_owned(),
        TokenSeed::Full {
            secret: "alice-token-secret".to_owned(),
            privsep: true,
            expire: 0,
            comment: None,
        },
    );
    let mut carol = user("carol@pve", "carol-secret");
    carol.groups = vec!["ops".to_owned()];
    let mut dave = user("dave@pve", "dave-secret");
    dave.totp = Some(ALICE_TOTP.to_owned());
    fixture
        .users
        .extend([alice, user("bob@pve", "bob-secret"), carol, dave]);
    fixture.groups.push(GroupSeed {
        groupid: "ops".to_owned(),
        comment: Some("Operators".to_owned()),
    });
    fixture.acl = vec![
        AclSeed {
            path: "/vms/100".to_owned(),
            roles: vec!["PVEVMUser".to_owned()],
            users: vec!["alice@pve".to_owned()],
            groups: Vec::new(),
            tokens: Vec::new(),
            propagate: true,
        },
        AclSeed {
            path: "/".to_owned(),
            roles: vec!["PVEAuditor".to_owned()],
            users: Vec::new(),
            groups: vec!["ops".to_owned()],
            tokens: vec!["alice@pve!ro".to_owned()],
            propagate: true,
        },
    ];
    fixture
}

async fn server() -> MockServerHandle {
    MockServer::builder().seed(fixture()).spawn().await.unwrap()
}

fn message(reply: &Value) -> &str {
    reply["message"].as_str().unwrap_or_default()
}

/// The VM IDs of the guest entries of a list (`/nodes/{node}/qemu` or `/cluster/resources`).
fn vmids(reply: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = reply["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry.get("type").is_none_or(|t| t == "qemu" || t == "lxc"))
        .filter_map(|entry| entry["vmid"].as_i64())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn builtin_and_custom_roles() {
    let server = server().await;
    let root = Session::login(&server.base_url(), "root@pam", "secret").await;
    let (status, roles) = root.get("/access/roles").await;
    assert_eq!(status, 200);
    let role = |name: &str| {
        roles["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["roleid"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing: {roles}"))
    };
    for name in [
        "Administrator",
        "PVEAdmin",
        "PVEVMAdmin",
        "PVEVMUser",
        "PVEAuditor",
        "PVEDatastoreUser",
        "PVETemplateUser",
        "NoAccess",
    ] {
        assert_eq!(role(name)["special"], 1, "{name}");
    }
    assert_eq!(
        role("PVEDatastoreUser")["privs"],
        "Datastore.AllocateSpace,Datastore.Audit"
    );
    assert_eq!(role("NoAccess")["privs"], "");
    let (_, detail) = root.get("/access/roles/PVETemplateUser").await;
    assert_eq!(detail["data"], json!({"VM.Audit": 1, "VM.Clone": 1}));

    // Custom roles: created, appended to, deleted; built-in ones are protected.
    let (status, reply) = root
        .call(
            Method::POST,
            "/access/roles",
            &[("roleid", "Power"), ("privs", "VM.PowerMgmt")],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = root
        .call(
            Method::PUT,
            "/access/roles/Power",
            &[("privs", "VM.Audit"), ("append", "1")],
        )
        .await;
    assert_eq!(status, 200);
    let (_, detail) = root.get("/access/roles/Power").await;
    assert_eq!(detail["data"], json!({"VM.Audit": 1, "VM.PowerMgmt": 1}));
    let (_, roles) = root.get("/access/roles").await;
    let power = roles["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["roleid"] == "Power")
        .unwrap();
    assert_eq!(power["special"], 0);
    let (status, reply) = root
        .call(Method::POST, "/access/roles", &[("roleid", "Power")])
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        message(&reply),
        "create role failed: role 'Power' already exists\n"
    );
    let (status, reply) = root
        .call(
            Method::POST,
            "/access/roles",
            &[("roleid", "Bad"), ("privs", "VM.Fly")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        reply["errors"]["privs"],
        "invalid format - invalid privilege 'VM.Fly'\n"
    );
    let (status, reply) = root
        .call(Method::POST, "/access/roles", &[("roleid", "pvemine")])
        .await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = root
        .call(Method::DELETE, "/access/roles/PVEAdmin", &[])
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        message(&reply),
        "auto-generated role 'PVEAdmin' cannot be deleted\n"
    );
    let (status, _) = root.call(Method::DELETE, "/access/roles/Power", &[]).await;
    assert_eq!(status, 200);
    let (status, reply) = root.get("/access/roles/Power").await;
    assert_eq!(status, 500);
    assert_eq!(message(&reply), "role 'Power' does not exist\n");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn permission_checks_come_before_existence_and_lists_are_filtered() {
    let server = server().await;
    let base = server.base_url();
    let alice = Session::login(&base, "alice@pve", "alice-secret").await;

    let (status, reply) = alice
        .call(Method::POST, "/nodes/pve1/qemu/100/status/stop", &[])
        .await;
    assert_eq!(status, 200, "{reply}");
    // No rights on 101 (exists) nor on 103 (does not): the same 403.
    for vmid in ["101", "103"] {
        let (status, reply) = alice
            .call(
                Method::POST,
                &format!("/nodes/pve1/qemu/{vmid}/status/start"),
                &[],
            )
            .await;
        assert_eq!(status, 403, "{reply}");
        assert_eq!(
            message(&reply),
            format!("Permission check failed (/vms/{vmid}, VM.PowerMgmt)\n")
        );
    }
    // A check on a parameter: creating needs VM.Allocate on the new ID.
    let (status, reply) = alice
        .call(Method::POST, "/nodes/pve1/qemu", &[("vmid", "950")])
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&reply),
        "Permission check failed (/vms/950, VM.Allocate)\n"
    );
    // Operations without permissions are root@pam's.
    let (status, reply) = alice
        .call(Method::POST, "/nodes/pve1/execute", &[("commands", "[]")])
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&reply),
        "Permission check failed (user != root@pam)\n"
    );
    // `user: all` endpoints answer, filtered.
    let (status, list) = alice.get("/nodes/pve1/qemu").await;
    assert_eq!(status, 200);
    assert_eq!(vmids(&list), [100]);
    let (_, resources) = alice.get("/cluster/resources").await;
    assert_eq!(vmids(&resources), [100]);
    let nodes: Vec<&Value> = resources["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "node")
        .collect();
    assert_eq!(nodes.len(), 2, "nodes are always listed");
    assert!(
        nodes
            .iter()
            .all(|n| n.get("cpu").is_none() && n["status"] == "online"),
        "but without statistics: {nodes:?}"
    );
    assert!(
        !resources["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "storage"),
        "no Datastore.Audit"
    );
    // Root sees everything.
    let root = Session::login(&base, "root@pam", "secret").await;
    let (_, resources) = root.get("/cluster/resources").await;
    assert_eq!(vmids(&resources), [100, 101, 200]);
    // `/nodes` is filtered per request, also when its entries are kept between requests:
    // statistics for root and carol (Sys.Audit), none for alice, whoever asks first.
    let (_, root_nodes) = root.get("/nodes").await;
    let (_, alice_nodes) = alice.get("/nodes").await;
    for (who, nodes, has_stats) in [("root", &root_nodes, true), ("alice", &alice_nodes, false)] {
        let entries = nodes["data"].as_array().unwrap();
        assert_eq!(entries.len(), 2, "{who}: {nodes}");
        assert!(
            entries
                .iter()
                .all(|n| n.get("cpu").is_some() == has_stats && n["status"] == "online"),
            "{who}: {nodes}"
        );
    }
    // carol is in group `ops`, auditor on `/`: reads everything, changes nothing.
    let carol = Session::login(&base, "carol@pve", "carol-secret").await;
    let (_, carol_nodes) = carol.get("/nodes").await;
    assert_eq!(carol_nodes, root_nodes);
    let (_, resources) = carol.get("/cluster/resources").await;
    assert_eq!(vmids(&resources), [100, 101, 200]);
    let (status, reply) = carol
        .call(
            Method::PUT,
            "/nodes/pve2/qemu/101/config",
            &[("cores", "8")],
        )
        .await;
    assert_eq!(status, 403, "{reply}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn acl_updates_propagation_and_effective_permissions() {
    let server = server().await;
    let base = server.base_url();
    let root = Session::login(&base, "root@pam", "secret").await;
    let bob = Session::login(&base, "bob@pve", "bob-secret").await;

    let (status, _) = bob.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 403);
    // Not propagated: only /vms itself.
    let (status, reply) = root
        .call(
            Method::PUT,
            "/access/acl",
            &[
                ("path", "/vms"),
                ("roles", "PVEVMAdmin"),
                ("users", "bob@pve"),
                ("propagate", "0"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = bob.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 403, "a non-propagating role stops at /vms");
    let (_, perms) = bob.get("/access/permissions").await;
    assert_eq!(perms["data"]["/vms"]["VM.Allocate"], 0);
    // Propagated: applies below.
    root.call(
        Method::PUT,
        "/access/acl",
        &[
            ("path", "/vms"),
            ("roles", "PVEVMAdmin"),
            ("users", "bob@pve"),
        ],
    )
    .await;
    let (status, _) = bob.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 200);
    let (_, perms) = bob
        .call(Method::GET, "/access/permissions", &[("path", "/vms/101")])
        .await;
    assert_eq!(perms["data"]["/vms/101"]["VM.PowerMgmt"], 1);
    // NoAccess deeper down wins.
    root.call(
        Method::PUT,
        "/access/acl",
        &[
            ("path", "/vms/101"),
            ("roles", "NoAccess"),
            ("users", "bob@pve"),
        ],
    )
    .await;
    let (status, _) = bob.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 403);
    let (_, acl) = root.get("/access/acl").await;
    let bobs: Vec<&Value> = acl["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ugid"] == "bob@pve")
        .collect();
    assert_eq!(bobs.len(), 2, "{acl}");
    assert!(bobs.iter().all(|e| e["type"] == "user"));
    // Delete.
    root.call(
        Method::PUT,
        "/access/acl",
        &[
            ("path", "/vms/101"),
            ("roles", "NoAccess"),
            ("users", "bob@pve"),
            ("delete", "1"),
        ],
    )
    .await;
    let (status, _) = bob.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 200);
    // Another user's permissions need Sys.Audit on /access.
    let (status, reply) = bob
        .call(
            Method::GET,
            "/access/permissions",
            &[("userid", "alice@pve")],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&reply),
        "Permission check failed (/access, Sys.Audit)\n"
    );
    let (_, perms) = root
        .call(
            Method::GET,
            "/access/permissions",
            &[("userid", "alice@pve")],
        )
        .await;
    assert_eq!(perms["data"]["/vms/100"]["VM.PowerMgmt"], 1);
    // Bad requests.
    let (status, reply) = root
        .call(
            Method::PUT,
            "/access/acl",
            &[("path", "/vms/100"), ("roles", "PVEAuditor")],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        reply["errors"]["users"],
        "either 'users', 'groups' or 'tokens' is required."
    );
    let (status, reply) = root
        .call(
            Method::PUT,
            "/access/acl",
            &[
                ("path", "/nope"),
                ("roles", "PVEAuditor"),
                ("users", "bob@pve"),
            ],
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(reply["errors"]["path"], "invalid ACL path '/nope'");
    let (status, reply) = root
        .call(
            Method::PUT,
            "/access/acl",
            &[
                ("path", "/vms/100"),
                ("roles", "Nope"),
                ("users", "bob@pve"),
            ],
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        message(&reply),
        "ACL update failed: role 'Nope' does not exist\n"
    );
    // Only someone who may modify permissions there can set an ACL.
    let (status, reply) = bob
        .call(
            Method::PUT,
            "/access/acl",
            &[
                ("path", "/"),
                ("roles", "Administrator"),
                ("users", "bob@pve"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&reply),
        "Permission check failed (/, Permissions.Modify)\n"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn tokens_privilege_separation_and_revocation() {
    let server = server().await;
    let base = server.base_url();
    let root = Session::login(&base, "root@pam", "secret").await;

    // A read-only token: PVEAuditor on `/`, privilege-separated.
    let (status, reply) = root
        .call(Method::POST, "/access/users/root@pam/token/ro", &[])
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["data"]["full-tokenid"], "root@pam!ro");
    assert_eq!(reply["data"]["info"]["privsep"], 1);
    let secret = reply["data"]["value"].as_str().unwrap().to_owned();
    let token = Session::token(&base, &format!("root@pam!ro={secret}"));
    let (status, _) = token.get("/nodes/pve1/qemu/100/status/current").await;
    assert_eq!(status, 403, "no ACL yet");
    root.call(
        Method::PUT,
        "/access/acl",
        &[
            ("path", "/"),
            ("roles", "PVEAuditor"),
            ("tokens", "root@pam!ro"),
        ],
    )
    .await;
    let (status, reply) = token.get("/nodes/pve1/qemu/100/status/current").await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = token
        .call(Method::POST, "/nodes/pve1/qemu/100/status/stop", &[])
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&reply),
        "Permission check failed (/vms/100, VM.PowerMgmt)\n"
    );
    // Deleting the token revokes it at once, and its ACL entries go with it.
    let (status, _) = root
        .call(Method::DELETE, "/access/users/root@pam/token/ro", &[])
        .await;
    assert_eq!(status, 200);
    let (status, _) = token.get("/version").await;
    assert_eq!(status, 401);
    let (_, acl) = root.get("/access/acl").await;
    assert!(!acl.to_string().contains("root@pam!ro"), "{acl}");

    // alice's seeded token `ro` is separated: PVEAuditor on `/` within alice's rights
    // (PVEVMUser on /vms/100) leaves only the audit privileges on /vms/100.
    let alice_token = Session::token(&base, "alice@pve!ro=alice-token-secret");
    let (status, _) = alice_token.get("/nodes/pve1/qemu/100/status/current").await;
    assert_eq!(status, 200);
    let (status, _) = alice_token.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 403, "alice herself has nothing on 101");
    let (status, _) = alice_token
        .call(Method::POST, "/nodes/pve1/qemu/100/status/stop", &[])
        .await;
    assert_eq!(status, 403, "the token lacks VM.PowerMgmt");
    let alice = Session::login(&base, "alice@pve", "alice-secret").await;
    let (_, perms) = alice
        .call(
            Method::GET,
            "/access/permissions",
            &[("userid", "alice@pve!ro"), ("path", "/vms/100")],
        )
        .await;
    let privs = &perms["data"]["/vms/100"];
    assert_eq!(privs["VM.Audit"], 1, "{perms}");
    assert!(privs.get("VM.PowerMgmt").is_none(), "{perms}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn users_and_groups() {
    let server = server().await;
    let base = server.base_url();
    let root = Session::login(&base, "root@pam", "secret").await;

    let (status, reply) = root
        .call(
            Method::POST,
            "/access/users",
            &[
                ("userid", "erin@pve"),
                ("password", "erin-secret"),
                ("groups", "ops"),
                ("email", "erin@example.com"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = root
        .call(
            Method::POST,
            "/access/users",
            &[("userid", "frank@pve"), ("groups", "nope")],
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        message(&reply),
        "create user failed: no such group 'nope'\n"
    );
    let (_, group) = root.get("/access/groups/ops").await;
    assert_eq!(group["data"]["members"], json!(["carol@pve", "erin@pve"]));
    assert_eq!(group["data"]["comment"], "Operators");
    let (_, erin) = root.get("/access/users/erin@pve").await;
    assert_eq!(erin["data"]["groups"], json!(["ops"]));
    assert_eq!(erin["data"]["email"], "erin@example.com");
    // The group's rights (PVEAuditor on /) apply to the new member.
    let erin = Session::login(&base, "erin@pve", "erin-secret").await;
    let (status, _) = erin.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 200);
    // The user list: everyone for root, only oneself for bob.
    let (_, users) = root
        .call(Method::GET, "/access/users", &[("full", "1")])
        .await;
    let alice = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userid"] == "alice@pve")
        .unwrap();
    assert_eq!(alice["tokens"][0]["tokenid"], "ro");
    let bob = Session::login(&base, "bob@pve", "bob-secret").await;
    let (_, users) = bob.get("/access/users").await;
    let ids: Vec<&str> = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userid"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bob@pve"]);
    // Deleting a group removes its ACL entries: carol loses her audit rights.
    let (status, _) = root.call(Method::DELETE, "/access/groups/ops", &[]).await;
    assert_eq!(status, 200);
    let carol = Session::login(&base, "carol@pve", "carol-secret").await;
    let (status, _) = carol.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 403);
    let (status, reply) = root.get("/access/groups/ops").await;
    assert_eq!(status, 500);
    assert_eq!(message(&reply), "group 'ops' does not exist\n");
    // Deleting a user removes its ACL entries too.
    root.call(Method::DELETE, "/access/users/alice@pve", &[])
        .await;
    let (_, acl) = root.get("/access/acl").await;
    assert!(!acl.to_string().contains("alice@pve"), "{acl}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn password_changes() {
    let server = server().await;
    let base = server.base_url();
    let alice = Session::login(&base, "alice@pve", "alice-secret").await;
    // Regular users confirm their current password.
    let (status, reply) = alice
        .call(
            Method::PUT,
            "/access/password",
            &[("userid", "alice@pve"), ("password", "new-alice-pw")],
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["errors"]["confirmation-password"].is_string(),
        "{reply}"
    );
    let (status, reply) = alice
        .call(
            Method::PUT,
            "/access/password",
            &[
                ("userid", "alice@pve"),
                ("password", "new-alice-pw"),
                ("confirmation-password", "alice-secret"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = post_ticket(
        &base,
        &[("username", "alice@pve"), ("password", "alice-secret")],
    )
    .await;
    assert_eq!(status, 401);
    Session::login(&base, "alice@pve", "new-alice-pw").await;
    // Someone else's password needs Realm.AllocateUser and User.Modify.
    let bob = Session::login(&base, "bob@pve", "bob-secret").await;
    let (status, reply) = bob
        .call(
            Method::PUT,
            "/access/password",
            &[
                ("userid", "alice@pve"),
                ("password", "stolen-password"),
                ("confirmation-password", "bob-secret"),
            ],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&reply),
        "Permission check failed (/access/realm/pve, Realm.AllocateUser)\n"
    );
    // root changes any password without confirming.
    let root = Session::login(&base, "root@pam", "secret").await;
    let (status, _) = root
        .call(
            Method::PUT,
            "/access/password",
            &[("userid", "bob@pve"), ("password", "reset-by-root")],
        )
        .await;
    assert_eq!(status, 200);
    Session::login(&base, "bob@pve", "reset-by-root").await;
    // API tokens cannot change passwords (`allowtoken => 0`).
    let token = Session::token(&base, "alice@pve!ro=alice-token-secret");
    let (status, _) = token
        .call(
            Method::PUT,
            "/access/password",
            &[("userid", "alice@pve"), ("password", "via-token-pw")],
        )
        .await;
    assert_eq!(status, 403);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn tickets_renew_and_login_replies() {
    let server = server().await;
    let base = server.base_url();
    let (status, reply) = post_ticket(
        &base,
        &[("username", "alice@pve"), ("password", "alice-secret")],
    )
    .await;
    assert_eq!(status, 200);
    let ticket = reply["data"]["ticket"].as_str().unwrap().to_owned();
    assert_eq!(reply["data"]["cap"]["vms"]["VM.PowerMgmt"], 1, "{reply}");
    assert!(
        reply["data"].get("clustername").is_none(),
        "no Sys.Audit on /: {reply}"
    );
    // A valid ticket of the same user is accepted as password.
    let (status, renewed) = post_ticket(
        &base,
        &[("username", "alice@pve"), ("password", ticket.as_str())],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(renewed["data"]["username"], "alice@pve");
    // Not for another user, but root@pam's ticket works for anyone.
    let (status, _) = post_ticket(
        &base,
        &[("username", "bob@pve"), ("password", ticket.as_str())],
    )
    .await;
    assert_eq!(status, 401);
    let (_, root) = post_ticket(&base, &[("username", "root@pam"), ("password", "secret")]).await;
    assert_eq!(root["data"]["clustername"], "pve-cluster");
    let root_ticket = root["data"]["ticket"].as_str().unwrap();
    let (status, _) =
        post_ticket(&base, &[("username", "bob@pve"), ("password", root_ticket)]).await;
    assert_eq!(status, 200);
    // `path` and `privs` verify a privilege instead of issuing a ticket.
    let (status, reply) = post_ticket(
        &base,
        &[
            ("username", "alice@pve"),
            ("password", "alice-secret"),
            ("path", "/vms/100"),
            ("privs", "VM.PowerMgmt"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(reply["data"].get("ticket").is_none());
    let (status, _) = post_ticket(
        &base,
        &[
            ("username", "alice@pve"),
            ("password", "alice-secret"),
            ("path", "/vms/101"),
            ("privs", "VM.PowerMgmt"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    server.shutdown().await.unwrap();
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn totp_second_factor() {
    let server = server().await;
    let base = server.base_url();
    let totp = Totp::from_base32(ALICE_TOTP).unwrap();

    // First factor: a half-authenticated ticket and NeedTFA, no capabilities.
    let (status, first) = post_ticket(
        &base,
        &[("username", "dave@pve"), ("password", "dave-secret")],
    )
    .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"]["NeedTFA"], 1);
    assert!(first["data"].get("cap").is_none());
    let half = first["data"]["ticket"].as_str().unwrap().to_owned();
    assert!(half.starts_with("PVE:!tfa!"), "{half}");
    // The half ticket is no login.
    let half_session = Session::with_ticket(&base, &first["data"]);
    let (status, _) = half_session.get("/version").await;
    assert_eq!(status, 401);
    // A wrong code fails.
    let (status, _) = post_ticket(
        &base,
        &[
            ("username", "dave@pve"),
            ("tfa-challenge", half.as_str()),
            ("password", "totp:000000"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    // The right code completes the login.
    let code = format!("totp:{}", totp.code_at(now()));
    let (status, second) = post_ticket(
        &base,
        &[
            ("username", "dave@pve"),
            ("tfa-challenge", half.as_str()),
            ("password", code.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert!(second["data"].get("NeedTFA").is_none());
    let dave = Session::with_ticket(&base, &second["data"]);
    let (status, _) = dave.get("/version").await;
    assert_eq!(status, 200);
    // The challenge is bound to its user.
    let (status, _) = post_ticket(
        &base,
        &[
            ("username", "bob@pve"),
            ("tfa-challenge", half.as_str()),
            ("password", code.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 401);

    // bob adds TOTP through the API (confirming his password), then needs it.
    let bob = Session::login(&base, "bob@pve", "bob-secret").await;
    let secret = Totp::from_base32("JBSWY3DPEHPK3PXP").unwrap();
    let uri = secret.uri("Proxmox%20VE:bob@pve");
    let (status, reply) = bob
        .call(
            Method::POST,
            "/access/tfa/bob@pve",
            &[
                ("type", "totp"),
                ("totp", uri.as_str()),
                ("value", "123456"),
                ("password", "bob-secret"),
            ],
        )
        .await;
    assert_eq!(status, 500, "a wrong current code is refused: {reply}");
    let code = secret.code_at(now());
    let (status, reply) = bob
        .call(
            Method::POST,
            "/access/tfa/bob@pve",
            &[
                ("type", "totp"),
                ("totp", uri.as_str()),
                ("value", code.as_str()),
                ("password", "bob-secret"),
                ("description", "phone"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let id = reply["data"]["id"].as_str().unwrap().to_owned();
    let (_, entries) = bob.get("/access/tfa/bob@pve").await;
    assert_eq!(entries["data"][0]["type"], "totp");
    assert_eq!(entries["data"][0]["description"], "phone");
    assert!(!entries.to_string().contains("JBSWY3DPEHPK3PXP"));
    let (_, first) = post_ticket(
        &base,
        &[("username", "bob@pve"), ("password", "bob-secret")],
    )
    .await;
    assert_eq!(first["data"]["NeedTFA"], 1);
    // `otp` answers in the first call.
    let answer = format!("totp:{}", secret.code_at(now()));
    let (status, direct) = post_ticket(
        &base,
        &[
            ("username", "bob@pve"),
            ("password", "bob-secret"),
            ("otp", answer.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(direct["data"].get("NeedTFA").is_none(), "{direct}");
    // Removing the entry removes the second factor.
    let (status, _) = bob
        .call(
            Method::DELETE,
            &format!("/access/tfa/bob@pve/{id}"),
            &[("password", "bob-secret")],
        )
        .await;
    assert_eq!(status, 200);
    let (_, plain) = post_ticket(
        &base,
        &[("username", "bob@pve"), ("password", "bob-secret")],
    )
    .await;
    assert!(plain["data"].get("NeedTFA").is_none(), "{plain}");
    // Listing all TFA entries: root sees dave's.
    let root = Session::login(&base, "root@pam", "secret").await;
    let (_, all) = root.get("/access/tfa").await;
    assert_eq!(all["data"][0]["userid"], "dave@pve", "{all}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn pool_roles_apply_to_pool_members() {
    let server = server().await;
    let base = server.base_url();
    let root = Session::login(&base, "root@pam", "secret").await;
    let bob = Session::login(&base, "bob@pve", "bob-secret").await;
    let (status, reply) = root
        .call(Method::POST, "/pools", &[("poolid", "dev")])
        .await;
    assert_eq!(status, 200, "{reply}");
    root.call(Method::PUT, "/pools/dev", &[("vms", "101")])
        .await;
    root.call(
        Method::PUT,
        "/access/acl",
        &[
            ("path", "/pool/dev"),
            ("roles", "PVEVMUser"),
            ("users", "bob@pve"),
        ],
    )
    .await;
    // Pool membership grants the pool's roles on the guest.
    let (status, reply) = bob.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 200, "{reply}");
    let (_, list) = bob.get("/nodes/pve2/qemu").await;
    assert_eq!(vmids(&list), [101]);
    let (status, _) = bob.get("/nodes/pve1/qemu/100/status/current").await;
    assert_eq!(status, 403);
    // Leaving the pool takes the rights away at once.
    root.call(
        Method::PUT,
        "/pools/dev",
        &[("vms", "101"), ("delete", "1")],
    )
    .await;
    let (status, _) = bob.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(status, 403);
    // Creating a guest in a pool needs VM.Allocate on the pool.
    let (status, reply) = bob
        .call(
            Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "960"), ("pool", "dev")],
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&reply),
        "Permission check failed (/vms/960, VM.Allocate)\n"
    );
    root.call(
        Method::PUT,
        "/access/acl",
        &[
            ("path", "/pool/dev"),
            ("roles", "PVEVMAdmin"),
            ("users", "bob@pve"),
        ],
    )
    .await;
    let (status, reply) = bob
        .call(
            Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "960"), ("pool", "dev")],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn disabled_and_expired_accounts_lose_access() {
    let server = server().await;
    let base = server.base_url();
    let root = Session::login(&base, "root@pam", "secret").await;
    let bob = Session::login(&base, "bob@pve", "bob-secret").await;
    let token = Session::token(&base, "alice@pve!ro=alice-token-secret");
    let (status, _) = token.get("/version").await;
    assert_eq!(status, 200);
    root.call(Method::PUT, "/access/users/bob@pve", &[("expire", "1")])
        .await;
    let (status, _) = bob.get("/version").await;
    assert_eq!(status, 401, "an expired account's ticket is refused");
    let (status, _) = post_ticket(
        &base,
        &[("username", "bob@pve"), ("password", "bob-secret")],
    )
    .await;
    assert_eq!(status, 401);
    root.call(Method::PUT, "/access/users/alice@pve", &[("enable", "0")])
        .await;
    let (status, _) = token.get("/version").await;
    assert_eq!(status, 401, "a disabled user's tokens are refused");
    server.shutdown().await.unwrap();
}
