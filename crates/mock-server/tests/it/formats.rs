//! Named formats checked on the value as sent, with pve-access-control's and pve-common's
//! messages: user, token, realm, group, role and pool IDs, and VM IDs that only look like one
//! after conversion to a number.

use mock_server::{AclSeed, Fixture, MockServer, MockServerHandle, UserSeed};
use serde_json::Value;

use crate::client;

fn user(userid: &str, password: &str) -> UserSeed {
    UserSeed {
        userid: userid.to_owned(),
        password: Some(password.to_owned()),
        tokens: Default::default(),
        enable: true,
        groups: Vec::new(),
        totp: None,
        config: Default::default(),
    }
}

/// `useradmin@pve` may administer users (`PVEUserAdmin` on `/access`); `vmadmin@pve` administers
/// every VM but has `NoAccess` on VM 100; a row for the token-looking "user" `root@pam!ci` is
/// seeded as an attacker might have smuggled it in.
fn fixture() -> Fixture {
    let mut fixture = Fixture::default_fixture();
    fixture.users.extend([
        user("useradmin@pve", "useradmin-secret"),
        user("vmadmin@pve", "vmadmin-secret"),
        user("root@pam!ci", "smuggled-secret"),
    ]);
    let acl = |path: &str, role: &str, user: &str| AclSeed {
        path: path.to_owned(),
        roles: vec![role.to_owned()],
        users: vec![user.to_owned()],
        groups: Vec::new(),
        tokens: Vec::new(),
        propagate: true,
    };
    fixture.acl = vec![
        acl("/access", "PVEUserAdmin", "useradmin@pve"),
        acl("/vms", "PVEVMAdmin", "vmadmin@pve"),
        acl("/vms/100", "NoAccess", "vmadmin@pve"),
    ];
    fixture
}

async fn server() -> MockServerHandle {
    MockServer::builder().seed(fixture()).spawn().await.unwrap()
}

/// A ticket and CSRF token, or the status of the refused login.
async fn login(
    server: &MockServerHandle,
    user: &str,
    password: &str,
) -> Result<(String, String), u16> {
    let response = client()
        .post(format!("{}/access/ticket", server.base_url()))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let reply: Value = response.json().await.unwrap_or(Value::Null);
    if status != 200 {
        return Err(status);
    }
    Ok((
        reply["data"]["ticket"].as_str().unwrap().to_owned(),
        reply["data"]["CSRFPreventionToken"]
            .as_str()
            .unwrap()
            .to_owned(),
    ))
}

async fn call(
    server: &MockServerHandle,
    session: &(String, String),
    method: reqwest::Method,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let request = client()
        .request(method.clone(), format!("{}{path}", server.base_url()))
        .header("Cookie", format!("PVEAuthCookie={}", session.0))
        .header("CSRFPreventionToken", &session.1);
    let request = if method == reqwest::Method::GET {
        request.query(form)
    } else {
        request.form(form)
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn user_ids_follow_verify_username() {
    let server = server().await;
    let admin = login(&server, "useradmin@pve", "useradmin-secret")
        .await
        .unwrap();
    let cases = [
        (
            "root@pam!ci",
            "value 'root@pam!ci' does not look like a valid user name\n",
        ),
        (
            "a b@pve",
            "value 'a b@pve' does not look like a valid user name\n",
        ),
        (
            "@pve",
            "value '@pve' does not look like a valid user name\n",
        ),
        ("a@", "user name 'a@' is too short\n"),
        (
            "bob@pve/token/t9",
            "value 'bob@pve/token/t9' does not look like a valid user name\n",
        ),
    ];
    for (userid, message) in cases {
        let (status, body) = call(
            &server,
            &admin,
            reqwest::Method::POST,
            "/access/users",
            &[("userid", userid), ("password", "whatever1")],
        )
        .await;
        assert_eq!(status, 400, "{userid}: {body}");
        assert_eq!(
            body["errors"]["userid"],
            format!("invalid format - {message}"),
            "{userid}"
        );
    }
    let (status, body) = call(
        &server,
        &admin,
        reqwest::Method::POST,
        "/access/users",
        &[("userid", "carol@pve"), ("password", "whatever1")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_token_id_never_logs_in() {
    let server = server().await;
    assert_eq!(
        login(&server, "root@pam!ci", "smuggled-secret").await.err(),
        Some(401)
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn group_role_and_pool_ids_follow_their_verifiers() {
    let server = server().await;
    let root = login(&server, "root@pam", "secret").await.unwrap();
    let cases = [
        (
            "/access/groups",
            "groupid",
            "a b",
            "group name 'a b' contains invalid characters\n",
        ),
        (
            "/access/roles",
            "roleid",
            "x/y",
            "role name 'x/y' contains invalid characters\n",
        ),
        (
            "/pools",
            "poolid",
            "a/b/c/d",
            "pool name 'a/b/c/d' nested too deeply (max levels = 3)\n",
        ),
        (
            "/pools",
            "poolid",
            "a b",
            "pool name 'a b' contains invalid characters\n",
        ),
    ];
    for (path, name, value, message) in cases {
        let (status, body) = call(
            &server,
            &root,
            reqwest::Method::POST,
            path,
            &[(name, value)],
        )
        .await;
        assert_eq!(status, 400, "{path} {value}: {body}");
        assert_eq!(body["errors"][name], format!("invalid format - {message}"));
    }
    let (status, body) = call(
        &server,
        &root,
        reqwest::Method::PUT,
        "/access/acl",
        &[
            ("path", "/"),
            ("roles", "PVEAuditor"),
            ("tokens", "root@pam"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"]["tokens"],
        "invalid format - value 'root@pam' does not look like a valid token ID\n"
    );
    server.shutdown().await.unwrap();
}

/// `pve_verify_vmid` sees the value as sent: `0100` is no VM ID, so it never reaches VM 100 (nor
/// slips past an ACL on `/vms/100`).
#[tokio::test]
async fn vm_ids_are_checked_as_sent() {
    let server = server().await;
    let root = login(&server, "root@pam", "secret").await.unwrap();
    let (status, body) = call(
        &server,
        &root,
        reqwest::Method::GET,
        "/nodes/pve1/qemu/0100/config",
        &[],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"]["vmid"],
        "invalid format - value does not look like a valid VM ID\n"
    );
    let vmadmin = login(&server, "vmadmin@pve", "vmadmin-secret")
        .await
        .unwrap();
    let (status, body) = call(
        &server,
        &vmadmin,
        reqwest::Method::GET,
        "/nodes/pve1/qemu/100/config",
        &[],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = call(
        &server,
        &vmadmin,
        reqwest::Method::GET,
        "/nodes/pve1/qemu/0100/config",
        &[],
    )
    .await;
    assert_ne!(status, 200, "{body}");
    assert!(body["data"].is_null(), "{body}");
    server.shutdown().await.unwrap();
}
