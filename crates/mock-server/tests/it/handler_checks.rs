//! Checks Proxmox makes inside its handlers, beyond an operation's `permissions`: storage
//! content (pve-storage `Content.pm`, `check_volume_access`), tasks (pve-manager `Tasks.pm`),
//! guest config keys (qemu-server `API2/Qemu.pm`, pve-container `LXC.pm`), backups and
//! replication (pve-manager `VZDump.pm`, `ReplicationConfig.pm`). Each test is the attack first:
//! a user without the privilege tries, and is refused with Proxmox's answer; then a user with it
//! succeeds.

use mock_server::{AclSeed, Fixture, MockServer, MockServerHandle, TaskDurations, UserSeed};
use reqwest::Method;
use serde_json::{Value, json};

use crate::session::Session;

const PASSWORD: &str = "handler-checks-secret";

fn acl(path: &str, role: &str, user: &str) -> AclSeed {
    AclSeed {
        path: path.to_owned(),
        roles: vec![role.to_owned()],
        users: vec![user.to_owned()],
        groups: Vec::new(),
        tokens: Vec::new(),
        propagate: true,
    }
}

/// Users with one narrow grant each (see the ACL below); `vmuser@pve` also has a token `ci`
/// with its user's privileges.
fn fixture() -> Fixture {
    let mut fixture = Fixture::default_fixture();
    for userid in [
        "nobody@pve",
        "vmuser@pve",
        "storeadmin@pve",
        "auditor@pve",
        "backupop@pve",
        "vmadmin@pve",
        "nodeadmin@pve",
        "netless@pve",
    ] {
        let mut user: UserSeed = serde_json::from_value(json!({
            "userid": userid, "password": PASSWORD,
        }))
        .unwrap();
        if userid == "vmuser@pve" {
            user.tokens = serde_json::from_value(json!({"ci": "vmuser-token-secret"})).unwrap();
        }
        fixture.users.push(user);
    }
    fixture.acl = vec![
        acl("/vms/100", "PVEVMUser", "vmuser@pve"),
        acl("/storage/local-lvm", "PVEDatastoreAdmin", "storeadmin@pve"),
        acl("/", "PVEAuditor", "auditor@pve"),
        acl("/vms/100", "PVEVMUser", "backupop@pve"),
        acl("/storage/local", "PVEDatastoreUser", "backupop@pve"),
        acl("/vms", "PVEVMAdmin", "vmadmin@pve"),
        acl("/storage", "PVEDatastoreUser", "vmadmin@pve"),
        acl("/sdn/zones/localnetwork", "PVESDNUser", "vmadmin@pve"),
        acl("/nodes/pve1", "Administrator", "nodeadmin@pve"),
        acl("/vms", "PVEVMAdmin", "netless@pve"),
    ];
    fixture
}

async fn server() -> MockServerHandle {
    MockServer::builder().seed(fixture()).spawn().await.unwrap()
}

async fn session(server: &MockServerHandle, user: &str) -> Session {
    let password = if user == "root@pam" {
        "secret"
    } else {
        PASSWORD
    };
    Session::login(&server.base_url(), user, password).await
}

const DISK: &str = "/nodes/pve1/storage/local-lvm/content/local-lvm:vm-100-disk-0";

fn message(body: &Value) -> &str {
    body["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn storage_content_needs_volume_access() {
    let server = server().await;
    let root = session(&server, "root@pam").await;
    for user in ["nobody@pve", "vmuser@pve", "auditor@pve"] {
        let attacker = session(&server, user).await;
        let (status, body) = attacker.call(Method::DELETE, DISK, &[]).await;
        assert_eq!(status, 403, "{user}: {body}");
        assert_eq!(
            message(&body),
            "Permission check failed (/storage/local-lvm, Datastore.Allocate)\n"
        );
        let (status, body) = attacker
            .call(Method::PUT, DISK, &[("notes", "pwned")])
            .await;
        assert_eq!(status, 403, "{user}: {body}");
        let (status, _) = attacker.call(Method::GET, DISK, &[]).await;
        assert_eq!(status, 403, "{user}");
    }
    // The auditor has Datastore.Audit but not VM.Config.Disk on VM 100.
    let auditor = session(&server, "auditor@pve").await;
    let (status, body) = auditor.call(Method::GET, DISK, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&body),
        "Permission check failed (/vms/100, VM.Config.Disk)\n"
    );
    // The list shows only volumes the caller may access.
    let (status, body) = auditor
        .call(Method::GET, "/nodes/pve1/storage/local-lvm/content", &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([]), "{body}");
    let (_, body) = root
        .call(Method::GET, "/nodes/pve1/storage/local-lvm/content", &[])
        .await;
    assert!(body["data"].as_array().unwrap().len() >= 2, "{body}");
    // The disk is untouched.
    let (status, body) = root.call(Method::GET, DISK, &[]).await;
    assert_eq!(status, 200);
    assert!(body["data"].get("notes").is_none(), "{body}");
    // A datastore administrator may delete it.
    let admin = session(&server, "storeadmin@pve").await;
    let (status, body) = admin.call(Method::DELETE, DISK, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = root.call(Method::GET, DISK, &[]).await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn backups_are_deleted_with_vm_backup_and_allocate_space() {
    let server = server().await;
    let root = session(&server, "root@pam").await;
    let (status, body) = root
        .call(
            Method::POST,
            "/nodes/pve1/vzdump",
            &[("vmid", "100"), ("storage", "local")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = root
        .call(
            Method::GET,
            "/nodes/pve1/storage/local/content",
            &[("content", "backup")],
        )
        .await;
    let volid = body["data"][0]["volid"].as_str().unwrap().to_owned();
    let path = format!(
        "/nodes/pve1/storage/local/content/{}",
        volid.replace('/', "%2F")
    );
    let nobody = session(&server, "nobody@pve").await;
    let (status, body) = nobody.call(Method::DELETE, &path, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(
        message(&body),
        "Permission check failed (/storage/local, Datastore.AllocateSpace)\n"
    );
    let operator = session(&server, "backupop@pve").await;
    let (status, body) = operator.call(Method::DELETE, &path, &[]).await;
    assert_eq!(status, 200, "{body}");
}

async fn task_status(session: &Session, upid: &str) -> (u16, Value) {
    session
        .call(
            Method::GET,
            &format!("/nodes/pve1/tasks/{upid}/status"),
            &[],
        )
        .await
}

#[tokio::test]
async fn tasks_are_stopped_by_their_owner_or_with_sys_modify() {
    let server = MockServer::builder()
        .seed(fixture())
        .task_durations(TaskDurations::parse("qmstart=60m").unwrap())
        .spawn()
        .await
        .unwrap();
    let root = session(&server, "root@pam").await;
    let (status, _) = root
        .call(Method::POST, "/nodes/pve1/qemu/100/status/stop", &[])
        .await;
    assert_eq!(status, 200);
    let owner = session(&server, "vmuser@pve").await;
    let (status, body) = owner
        .call(Method::POST, "/nodes/pve1/qemu/100/status/start", &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let upid = body["data"].as_str().unwrap().to_owned();
    let task = format!("/nodes/pve1/tasks/{upid}");

    for user in ["nobody@pve", "auditor@pve"] {
        let attacker = session(&server, user).await;
        let (status, body) = attacker.call(Method::DELETE, &task, &[]).await;
        assert_eq!(status, 403, "{user}: {body}");
        assert_eq!(
            message(&body),
            "Permission check failed (/nodes/pve1, Sys.Modify)\n"
        );
    }
    let (status, body) = task_status(&owner, &upid).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["status"], "running");

    // The owner stops it: the task ends as interrupted, and the VM was not started.
    let (status, body) = owner.call(Method::DELETE, &task, &[]).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = task_status(&owner, &upid).await;
    assert_eq!(body["data"]["status"], "stopped");
    assert_eq!(body["data"]["exitstatus"], "received interrupt");
    let (_, body) = root
        .call(Method::GET, "/nodes/pve1/qemu/100/status/current", &[])
        .await;
    assert_eq!(body["data"]["status"], "stopped", "{body}");

    // Stopping a finished task changes nothing; a node administrator may stop anyone's.
    let admin = session(&server, "nodeadmin@pve").await;
    let (status, _) = admin.call(Method::DELETE, &task, &[]).await;
    assert_eq!(status, 200);
    let (_, body) = task_status(&owner, &upid).await;
    assert_eq!(body["data"]["exitstatus"], "received interrupt");

    // No such task, and a malformed UPID, as `stop_task` says them.
    let (status, body) = root
        .call(Method::DELETE, &task.replace(":qmstart:", ":qmstop:"), &[])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"]["upid"], "no such task");
    let (status, body) = root
        .call(Method::DELETE, "/nodes/pve1/tasks/UPID:nonsense", &[])
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["errors"]["upid"], "unable to parse worker upid");
}

#[tokio::test]
async fn a_token_does_not_own_its_users_tasks() {
    let server = server().await;
    let owner = session(&server, "vmuser@pve").await;
    let (status, body) = owner
        .call(Method::POST, "/nodes/pve1/qemu/100/status/start", &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let upid = body["data"].as_str().unwrap();
    let response = crate::client()
        .get(format!(
            "{}/nodes/pve1/tasks/{upid}/status",
            server.base_url()
        ))
        .header(
            "Authorization",
            "PVEAPIToken=vmuser@pve!ci=vmuser-token-secret",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}

const QEMU_CONFIG: &str = "/nodes/pve1/qemu/100/config";
const LXC_CONFIG: &str = "/nodes/pve1/lxc/200/config";

/// Sends one config update and asserts Proxmox's answer.
async fn assert_update(
    session: &Session,
    path: &str,
    form: &[(&str, &str)],
    status: u16,
    expected: &str,
) {
    let (got, body) = session.call(Method::PUT, path, form).await;
    assert_eq!(got, status, "{form:?}: {body}");
    if !expected.is_empty() {
        assert_eq!(message(&body), expected, "{form:?}");
    }
}

#[tokio::test]
async fn qemu_config_keys_need_their_own_privileges() {
    let server = server().await;
    let user = session(&server, "vmuser@pve").await;
    let denied = |privilege: &str| format!("Permission check failed (/vms/100, {privilege})\n");
    for (form, privilege) in [
        (vec![("memory", "4096")], "VM.Config.Memory"),
        (vec![("cores", "4")], "VM.Config.CPU"),
        (vec![("net1", "virtio,bridge=vmbr0")], "VM.Config.Network"),
        (vec![("description", "x")], "VM.Config.Options"),
        (vec![("scsi1", "local-lvm:4")], "VM.Config.Disk"),
        (vec![("vga", "std")], "VM.Config.HWType"),
        (vec![("delete", "net0")], "VM.Config.Network"),
        (vec![("revert", "memory")], "VM.Config.Memory"),
        (vec![("delete", "scsi0")], "VM.Config.Disk"),
    ] {
        assert_update(&user, QEMU_CONFIG, &form, 403, &denied(privilege)).await;
    }
    // A CD-ROM is the user's to change, but the ISO needs access to its storage.
    assert_update(
        &user,
        QEMU_CONFIG,
        &[("ide2", "local:iso/debian.iso,media=cdrom")],
        403,
        "Permission check failed (/storage/local, Datastore.AllocateSpace|Datastore.Audit)\n",
    )
    .await;
    assert_update(&user, QEMU_CONFIG, &[("ide2", "none,media=cdrom")], 200, "").await;

    let admin = session(&server, "vmadmin@pve").await;
    for (key, value, expected) in [
        ("args", "-no-reboot", "only root can set 'args' config\n"),
        (
            "hookscript",
            "local:snippets/hook.pl",
            "only root can set 'hookscript' config\n",
        ),
        (
            "scsi1",
            "/dev/sda",
            "Only root can pass arbitrary filesystem paths.\n",
        ),
        (
            "hostpci0",
            "0000:01:00.0",
            "only root can set 'hostpci0' config for non-mapped devices\n",
        ),
        (
            "usb0",
            "host=1234:5678",
            "only root can set 'usb0' config for real devices\n",
        ),
        (
            "serial0",
            "/dev/ttyS0",
            "only root can modify 'serial0' config for real devices\n",
        ),
    ] {
        assert_update(&admin, QEMU_CONFIG, &[(key, value)], 500, expected).await;
    }
    for (key, value) in [
        ("memory", "4096"),
        ("net1", "virtio,bridge=vmbr0"),
        ("scsi1", "local-lvm:4"),
        ("serial0", "socket"),
        ("usb0", "host=spice"),
    ] {
        assert_update(&admin, QEMU_CONFIG, &[(key, value)], 200, "").await;
    }
    // `startup` changes how the host boots: `Sys.Modify` on `/` as well.
    assert_update(
        &admin,
        QEMU_CONFIG,
        &[("startup", "order=1")],
        403,
        "Permission check failed (/, Sys.Modify)\n",
    )
    .await;
    // A NIC needs `SDN.Use` on its bridge.
    let netless = session(&server, "netless@pve").await;
    assert_update(
        &netless,
        QEMU_CONFIG,
        &[("net2", "virtio,bridge=vmbr0,tag=5")],
        403,
        "Permission check failed (/sdn/zones/localnetwork/vmbr0/5, SDN.Use)\n",
    )
    .await;
    // root@pam may do all of it.
    let root = session(&server, "root@pam").await;
    assert_update(&root, QEMU_CONFIG, &[("args", "-no-reboot")], 200, "").await;
}

#[tokio::test]
async fn container_config_keys_need_their_own_privileges() {
    let server = server().await;
    let admin = session(&server, "vmadmin@pve").await;
    for (key, value, expected) in [
        (
            "mp0",
            "/srv/data,mp=/data",
            "Permission check failed (mount point type bind is only allowed for root@pam)\n",
        ),
        (
            "dev0",
            "/dev/null",
            "Permission check failed (configuring device passthrough is only allowed for root@pam)\n",
        ),
        (
            "hookscript",
            "local:snippets/hook.pl",
            "Permission check failed (changing the hookscript is only allowed for root@pam)\n",
        ),
    ] {
        assert_update(&admin, LXC_CONFIG, &[(key, value)], 403, expected).await;
    }
    assert_update(&admin, LXC_CONFIG, &[("memory", "1024")], 200, "").await;
    let user = session(&server, "vmuser@pve").await;
    let (status, _) = user
        .call(Method::PUT, LXC_CONFIG, &[("memory", "1024")])
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn creating_a_guest_checks_every_key() {
    let server = server().await;
    let admin = session(&server, "vmadmin@pve").await;
    let (status, body) = admin
        .call(
            Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "150"), ("args", "-no-reboot")],
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(message(&body), "only root can set 'args' config\n");
    let netless = session(&server, "netless@pve").await;
    let (status, body) = netless
        .call(
            Method::POST,
            "/nodes/pve1/qemu",
            &[("vmid", "151"), ("scsi0", "local-lvm:4")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        message(&body),
        "Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)\n"
    );
    let (status, body) = admin
        .call(
            Method::POST,
            "/nodes/pve1/qemu",
            &[
                ("vmid", "152"),
                ("scsi0", "local-lvm:4"),
                ("net0", "virtio,bridge=vmbr0"),
                ("memory", "512"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn replication_jobs_need_vm_replicate_on_their_guest() {
    let server = server().await;
    let user = session(&server, "vmuser@pve").await;
    let (status, body) = user
        .call(
            Method::POST,
            "/cluster/replication",
            &[("id", "100-0"), ("target", "pve2"), ("type", "local")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        message(&body),
        "Permission check failed (/vms/100, VM.Replicate)\n"
    );
    let admin = session(&server, "vmadmin@pve").await;
    let (status, body) = admin
        .call(
            Method::POST,
            "/cluster/replication",
            &[("id", "100-0"), ("target", "pve2"), ("type", "local")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = user
        .call(Method::DELETE, "/cluster/replication/100-0", &[])
        .await;
    assert_eq!(status, 403);
    // The job is listed to those who may audit its guest.
    let nobody = session(&server, "nobody@pve").await;
    let (_, body) = nobody.call(Method::GET, "/cluster/replication", &[]).await;
    assert_eq!(body["data"], json!([]));
    let (_, body) = user.call(Method::GET, "/cluster/replication", &[]).await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn a_ticket_wins_over_an_api_token() {
    let server = server().await;
    let root = session(&server, "root@pam").await;
    let ticket = root.ticket().unwrap();
    // A root ticket beside vmuser's token: pveproxy reads the token only when no ticket came
    // (`AnyEvent.pm`), so the call is root's.
    let response = crate::client()
        .get(format!("{}/nodes/pve1/lxc/200/config", server.base_url()))
        .header("Cookie", format!("PVEAuthCookie={ticket}"))
        .header(
            "Authorization",
            "PVEAPIToken=vmuser@pve!ci=vmuser-token-secret",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn console_tickets_are_verified() {
    let server = server().await;
    let user = session(&server, "vmuser@pve").await;
    let (status, body) = user
        .call(Method::POST, "/nodes/pve1/qemu/100/vncproxy", &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let ticket = body["data"]["ticket"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    let port = body["data"]["port"].to_string();
    assert!(ticket.starts_with("PVEVNC:"), "{ticket}");
    assert_eq!(body["data"]["user"], "vmuser@pve");

    let verify = |authid: &'static str, ticket: String, path: &'static str, privs: &'static str| {
        let base = server.base_url();
        let port = port.clone();
        async move {
            crate::client()
                .post(format!("{base}/access/vncticket"))
                .form(&[
                    ("authid", authid),
                    ("vncticket", ticket.as_str()),
                    ("path", path),
                    ("privs", privs),
                    ("port", port.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let ok = verify("vmuser@pve", ticket.clone(), "/vms/100", "VM.Console").await;
    assert_eq!(ok.status(), 200);
    for (authid, ticket, path, privs) in [
        ("root@pam", ticket.clone(), "/vms/100", "VM.Console"),
        ("vmuser@pve", ticket.clone(), "/vms/101", "VM.Console"),
        ("vmuser@pve", ticket.clone(), "/vms/100", "VM.Allocate"),
        (
            "vmuser@pve",
            "PVEVNC:00000000::forged".to_owned(),
            "/vms/100",
            "VM.Console",
        ),
    ] {
        let response = verify(authid, ticket, path, privs).await;
        assert_eq!(response.status(), 401, "{authid} {path} {privs}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(message(&body), "authentication failure\n");
    }
}

#[tokio::test]
async fn openid_endpoints_answer_for_unknown_realms_as_proxmox() {
    let server = server().await;
    let client = crate::client();
    let base = server.base_url();
    let response = client
        .post(format!("{base}/access/openid/auth-url"))
        .form(&[("realm", "nope"), ("redirect-url", "https://app.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        message(&body),
        "authentication domain 'nope' does not exist\n"
    );
    let response = client
        .post(format!("{base}/access/openid/auth-url"))
        .form(&[("realm", "pve"), ("redirect-url", "https://app.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(message(&body), "wrong realm type (pve != openid)\n");
    let response = client
        .post(format!("{base}/access/openid/login"))
        .form(&[
            ("state", "nope!0"),
            ("code", "x"),
            ("redirect-url", "https://app.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The built-in realms are listed.
    let (_, body) = session(&server, "root@pam")
        .await
        .call(Method::GET, "/access/domains", &[])
        .await;
    let mut realms: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|realm| realm["realm"].as_str())
        .collect();
    realms.sort_unstable();
    assert_eq!(realms, ["pam", "pve"]);
}

#[tokio::test]
async fn volume_names_are_parsed_by_their_storage_plugin() {
    let server = server().await;
    let root = session(&server, "root@pam").await;
    for (key, value, expected) in [
        (
            "scsi1",
            "local-lvm:abc",
            "unable to parse lvm volume name 'abc'\n",
        ),
        (
            "ide2",
            "local:iso/../../x.iso,media=cdrom",
            "unable to parse directory volume name 'iso/../../x.iso'\n",
        ),
        (
            "scsi1",
            "nope:vm-100-disk-9",
            "storage 'nope' does not exist\n",
        ),
    ] {
        assert_update(&root, QEMU_CONFIG, &[(key, value)], 500, expected).await;
    }
    let (status, body) = root
        .call(
            Method::PUT,
            QEMU_CONFIG,
            &[("scsi2", "local:iso/debian.iso")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["errors"]["scsi2"],
        "explicit 'media=cdrom' is required for iso images"
    );
    let (status, body) = root
        .call(
            Method::POST,
            "/nodes/pve1/lxc",
            &[
                ("vmid", "160"),
                (
                    "ostemplate",
                    "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
                ),
                ("rootfs", "local-lvm:abc"),
            ],
        )
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(message(&body), "unable to parse lvm volume name 'abc'\n");
}

#[tokio::test]
async fn nested_pools_need_their_parent() {
    let server = server().await;
    let root = session(&server, "root@pam").await;
    for (poolid, expected) in [
        (
            "a/b",
            "create pool failed: parent 'a' of pool 'a/b' does not exist\n",
        ),
        (
            "9lives",
            "create pool failed: pool name must start with a letter\n",
        ),
    ] {
        let (status, body) = root
            .call(Method::POST, "/pools", &[("poolid", poolid)])
            .await;
        assert_eq!(status, 500, "{poolid}: {body}");
        assert_eq!(message(&body), expected);
    }
    for poolid in ["a", "a/b"] {
        let (status, body) = root
            .call(Method::POST, "/pools", &[("poolid", poolid)])
            .await;
        assert_eq!(status, 200, "{poolid}: {body}");
    }
    let (status, body) = root.call(Method::POST, "/pools", &[("poolid", "a")]).await;
    assert_eq!(status, 500);
    assert_eq!(
        message(&body),
        "create pool failed: pool 'a' already exists\n"
    );
}
