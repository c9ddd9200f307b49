//! Named formats checked on the value as sent, with the registered verifiers' messages: user,
//! token, realm, group, role and pool IDs, VM IDs that only look like one after conversion to a
//! number, MACs, network configurations, DNS names, e-mail addresses, calendar events, boot
//! orders, CPU models and hash formats (`smbios1`, `ide2`); and what Proxmox's verification lets
//! through (volume names, a NUL in a description, huge memory sizes).

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

/// Sends `form` to `path` as root and returns the status and reply.
async fn root_call(
    server: &MockServerHandle,
    method: reqwest::Method,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let root = login(server, "root@pam", "secret").await.unwrap();
    call(server, &root, method, path, form).await
}

/// Each value fails Proxmox's parameter verification with its format's message.
#[tokio::test]
async fn named_formats_are_checked_on_the_value_as_sent() {
    let server = server().await;
    let put = reqwest::Method::PUT;
    let config = "/nodes/pve1/qemu/100/config";
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            config,
            "smbios1",
            "uuid=zz",
            "invalid format - format error\nsmbios1.uuid: value does not match the regex pattern\n",
        ),
        (
            config,
            "net0",
            "virtio=01:24:11:00:00:01,bridge=vmbr0",
            "invalid format - format error\nnet0.macaddr: invalid format - value does not look like a valid unicast MAC address\n\n",
        ),
        (
            config,
            "ipconfig0",
            "ip=10.0.0.2/99",
            "invalid format - format error\nipconfig0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n",
        ),
        (
            config,
            "cpu",
            "pentium9",
            "invalid format - Built-in cputype 'pentium9' is not defined (missing 'custom-' prefix?)\n",
        ),
        (
            config,
            "boot",
            "order=scsi0;floppy0",
            "invalid format - format error\nboot.order: invalid format - invalid boot device 'floppy0'\n\n",
        ),
        (
            config,
            "hotplug",
            "network,gpu",
            "invalid format - unable to parse hotplug option\n",
        ),
        (
            config,
            "ide2",
            "nostorage,media=cdrom",
            "invalid format - format error\nide2.file: invalid format - unable to parse volume ID 'nostorage'\n\n",
        ),
        (
            "/access/users/root@pam",
            "email",
            "not-an-email",
            "invalid format - value does not look like a valid email address\n",
        ),
        (
            "/cluster/options",
            "mac_prefix",
            "01:00",
            "invalid format - value is not a valid unicast MAC address prefix\n",
        ),
    ];
    for (path, key, value, message) in cases {
        let (status, body) = root_call(&server, put.clone(), path, &[(key, value)]).await;
        assert_eq!(status, 400, "{key}={value}: {body}");
        assert_eq!(body["message"], "Parameter verification failed.\n", "{key}");
        assert_eq!(body["errors"][key], *message, "{key}={value}");
    }
}

/// Formats on creating POSTs: a DNS name, a CIDR and a calendar event.
#[tokio::test]
async fn names_networks_and_schedules_are_checked() {
    let server = server().await;
    let post = reqwest::Method::POST;
    // (label, form, parameter, expected message)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        (
            "/nodes/pve1/qemu",
            &[("vmid", "190"), ("name", "-bad-")],
            "name",
            "invalid format - value does not look like a valid DNS name\n",
        ),
        (
            "/nodes/pve1/lxc",
            &[
                ("vmid", "191"),
                ("ostemplate", "local:vztmpl/x.tar.zst"),
                ("net0", "name=eth0,bridge=vmbr0,ip=10.0.0.300/24"),
            ],
            "net0",
            "invalid format - format error\nnet0.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n",
        ),
        (
            "/cluster/backup",
            &[("schedule", "   "), ("all", "1"), ("storage", "local")],
            "schedule",
            "invalid format - invalid calendar event '   ' - unable to parse calendar event - event is empty\n\n",
        ),
    ];
    for (path, form, key, message) in cases {
        let (status, body) = root_call(&server, post.clone(), path, form).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["errors"][key], *message, "{path} {key}");
    }
}

/// What Proxmox's parameter verification lets through: the volume IDs only have the
/// `<storage>:<name>` shape checked there (the storage parses the name in the handler), a
/// memory size has no maximum in the schema, and a NUL inside a description is kept (qemu-server
/// percent-encodes it when writing the config). Realistic values pass too.
#[tokio::test]
async fn values_proxmox_verification_accepts() {
    let server = server().await;
    let put = reqwest::Method::PUT;
    let config = "/nodes/pve1/qemu/100/config";
    for (key, value) in [
        ("memory", "99999999999999999999999"),
        ("scsi1", "local-lvm:abc"),
        ("ide2", "local:iso/../../x.iso,media=cdrom"),
        ("description", "before\0after"),
        ("net0", "virtio,bridge=vmbr0"),
        ("ide2", "none,media=cdrom"),
        ("sshkeys", "ssh-ed25519%20AAAAC3Nza%20me%40host"),
        ("smbios1", "uuid=5ad1d2a5-c3b0-4a33-9b3e-3a8a4c7e0f11"),
        ("cpu", "x86-64-v2-AES,flags=+aes"),
        ("boot", "order=scsi0;ide2;net0"),
    ] {
        let (status, body) = root_call(&server, put.clone(), config, &[(key, value)]).await;
        assert!(
            status != 400 || body["message"] != "Parameter verification failed.\n",
            "{key}={value}: {status} {body}"
        );
    }
}

/// An integer past `i64` is compared as a number, not accepted for failing to convert.
#[tokio::test]
async fn huge_integers_meet_their_maximum() {
    let server = server().await;
    let (status, body) = root_call(
        &server,
        reqwest::Method::PUT,
        "/nodes/pve1/qemu/100/config",
        &[("cpuunits", "99999999999999999999999")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"]["cpuunits"],
        "value must have a maximum value of 262144"
    );
}
