//! End-to-end tests of the domain semantics (`mock_server`'s `ops` handlers) over HTTP: guests, disks,
//! snapshots, clone/template/migrate, the guest agent, tasks, storage content, pools, backups.

use std::time::Duration;

use mock_server::{MockServer, MockServerHandle, Store};
use serde_json::{Value, json};
use sha1::Digest as _;

use crate::client;

/// A server without authentication and a client for it.
struct Mock {
    server: MockServerHandle,
    base: String,
    http: reqwest::Client,
}

impl Mock {
    async fn start() -> Mock {
        Mock::with_delay(Duration::ZERO).await
    }

    async fn with_delay(delay: Duration) -> Mock {
        let server = MockServer::builder()
            .auth(false)
            .store(Store::Memory)
            .task_delay(delay)
            .spawn()
            .await
            .unwrap();
        Mock {
            base: server.base_url(),
            server,
            http: client(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let builder = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        let builder = if method == reqwest::Method::GET || method == reqwest::Method::DELETE {
            builder.query(form)
        } else {
            builder.form(form)
        };
        let response = builder.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GET, expecting success; the `data` member.
    async fn get(&self, path: &str) -> Value {
        let (status, reply) = self.call(reqwest::Method::GET, path, &[]).await;
        assert_eq!(status, 200, "GET {path}: {reply}");
        reply["data"].clone()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, form).await
    }

    async fn put(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, form).await
    }

    async fn delete(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, form).await
    }

    /// Runs a task-starting call and waits for the task; returns its status record.
    async fn task(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
        let (status, reply) = self.call(method, path, form).await;
        assert_eq!(status, 200, "{path}: {reply}");
        let upid = reply["data"]
            .as_str()
            .unwrap_or_else(|| panic!("no UPID: {reply}"));
        self.wait(upid).await
    }

    async fn wait(&self, upid: &str) -> Value {
        let node = upid.split(':').nth(1).unwrap();
        let encoded: String =
            percent_encoding::utf8_percent_encode(upid, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for _ in 0..200 {
            let status = self
                .get(&format!("/nodes/{node}/tasks/{encoded}/status"))
                .await;
            if status["status"] == "stopped" {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("task {upid} did not end");
    }

    async fn ok_task(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) {
        let status = self.task(method, path, form).await;
        assert_eq!(status["exitstatus"], "OK", "{path}: {status}");
    }

    async fn shutdown(self) {
        self.server.shutdown().await.unwrap();
    }
}

use reqwest::Method as M;

fn volids(content: &Value) -> Vec<String> {
    content
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["volid"].as_str().unwrap().to_owned())
        .collect()
}

/// The raw config file as `write_vm_config` writes it, from a GET config reply.
fn raw_config(config: &Value) -> String {
    let map = config.as_object().unwrap();
    let mut raw = String::new();
    if let Some(description) = map.get("description").and_then(Value::as_str) {
        for line in description.split('\n') {
            raw.push_str(&format!("#{line}\n"));
        }
    }
    let mut keys: Vec<&String> = map
        .keys()
        .filter(|k| !matches!(k.as_str(), "digest" | "description"))
        .collect();
    keys.sort();
    for key in keys {
        let value = match &map[key] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        raw.push_str(&format!("{key}: {value}\n"));
    }
    raw
}

#[tokio::test]
async fn create_allocates_disks_macs_and_round_trips_types() {
    let mock = Mock::start().await;
    assert_eq!(mock.get("/cluster/nextid").await, "102");
    mock.ok_task(
        M::POST,
        "/nodes/pve1/qemu",
        &[
            ("vmid", "102"),
            ("name", "app"),
            ("cores", "2"),
            ("memory", "1024"),
            ("scsi0", "local-lvm:8,iothread=1"),
            ("efidisk0", "local-lvm:1"),
            ("net0", "virtio,bridge=vmbr0"),
        ],
    )
    .await;
    let config = mock.get("/nodes/pve1/qemu/102/config").await;
    assert_eq!(config["cores"], json!(2), "{config}");
    assert_eq!(
        config["scsi0"],
        "local-lvm:vm-102-disk-0,iothread=1,size=8G"
    );
    assert_eq!(config["efidisk0"], "local-lvm:vm-102-disk-1,size=4M");
    let net0 = config["net0"].as_str().unwrap();
    assert!(
        net0.starts_with("virtio=BC:24:11:") && net0.ends_with(",bridge=vmbr0"),
        "{net0}"
    );
    assert!(config.get("lock").is_none(), "{config}");
    assert_eq!(mock.get("/cluster/nextid").await, "103");
    let (status, reply) = mock.get_status("/cluster/nextid?vmid=102").await;
    assert_eq!(status, 400, "{reply}");

    let content = mock.get("/nodes/pve1/storage/local-lvm/content").await;
    let disk = content
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["volid"] == "local-lvm:vm-102-disk-0")
        .unwrap_or_else(|| panic!("{content}"));
    assert_eq!(disk["size"], json!(8u64 << 30));
    assert_eq!(disk["vmid"], 102);
    assert_eq!(disk["format"], "raw");
    // Seeded guests' disks are listed too; the vmid filter works.
    let filtered = mock
        .get("/nodes/pve1/storage/local-lvm/content?vmid=100")
        .await;
    assert_eq!(volids(&filtered), ["local-lvm:vm-100-disk-0"]);

    // Guest lists and resources agree; vmid is a number there.
    let list = mock.get("/nodes/pve1/qemu").await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|vm| vm["vmid"] == 102)
        .unwrap();
    assert_eq!(entry["name"], "app");
    assert_eq!(entry["status"], "stopped");
    let resources = mock.get("/cluster/resources?type=vm").await;
    let resource = resources
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "qemu/102")
        .unwrap();
    assert_eq!(resource["vmid"], 102);
    assert_eq!(resource["node"], "pve1");

    // Destroying the guest frees its volumes; a new guest with the ID gets the same MAC.
    mock.ok_task(M::DELETE, "/nodes/pve1/qemu/102", &[]).await;
    let content = mock.get("/nodes/pve1/storage/local-lvm/content").await;
    assert!(
        !volids(&content).iter().any(|v| v.contains("vm-102-")),
        "{content}"
    );
    mock.ok_task(
        M::POST,
        "/nodes/pve2/qemu",
        &[("vmid", "102"), ("net0", "virtio,bridge=vmbr0")],
    )
    .await;
    let again = mock.get("/nodes/pve2/qemu/102/config").await;
    assert_eq!(again["net0"].as_str().unwrap(), net0);

    // LXC: rootfs volume, hwaddr and veth.
    mock.ok_task(
        M::POST,
        "/nodes/pve1/lxc",
        &[
            ("vmid", "210"),
            (
                "ostemplate",
                "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst",
            ),
            ("rootfs", "local-lvm:4"),
            ("net0", "name=eth0,bridge=vmbr0,ip=dhcp"),
            ("cores", "1"),
        ],
    )
    .await;
    let ct = mock.get("/nodes/pve1/lxc/210/config").await;
    assert_eq!(ct["rootfs"], "local-lvm:vm-210-disk-0,size=4G");
    assert_eq!(ct["ostype"], "debian");
    let ct_net = ct["net0"].as_str().unwrap();
    assert!(
        ct_net.contains(",hwaddr=BC:24:11:") && ct_net.ends_with(",type=veth"),
        "{ct_net}"
    );
    mock.shutdown().await;
}

impl Mock {
    async fn get_status(&self, path: &str) -> (u16, Value) {
        self.call(M::GET, path, &[]).await
    }
}

#[tokio::test]
async fn concurrent_creates_with_one_id_have_one_winner() {
    let mock = Mock::with_delay(Duration::from_millis(200)).await;
    let mut handles = Vec::new();
    for _ in 0..8 {
        let http = mock.http.clone();
        let url = format!("{}/nodes/pve1/qemu", mock.base);
        handles.push(tokio::spawn(async move {
            let response = http
                .post(url)
                .form(&[("vmid", "150"), ("cores", "1")])
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut winners = 0;
    for handle in handles {
        let (status, reply) = handle.await.unwrap();
        if status == 200 {
            winners += 1;
        } else {
            assert_eq!(status, 500);
            assert_eq!(reply["message"], "VM 150 already exists on node 'pve1'\n");
        }
    }
    assert_eq!(winners, 1);
    // While the task runs the config exists, locked.
    let config = mock.get("/nodes/pve1/qemu/150/config").await;
    assert_eq!(config["lock"], "create", "{config}");
    assert_eq!(mock.get("/cluster/nextid").await, "102");
    mock.shutdown().await;
}

#[tokio::test]
async fn config_digest_delete_pending_and_locks() {
    let mock = Mock::with_delay(Duration::from_millis(300)).await;
    let config = mock.get("/nodes/pve1/qemu/100/config").await;
    let digest = config["digest"].as_str().unwrap().to_owned();
    let expected = hex::encode(sha1::Sha1::digest(raw_config(&config).as_bytes()));
    assert_eq!(digest, expected, "digest is the SHA-1 of the config file");

    // PUT is synchronous and answers null; delete removes keys.
    let (status, reply) = mock
        .put(
            "/nodes/pve1/qemu/100/config",
            &[
                ("cores", "4"),
                ("delete", "ostype,boot"),
                ("digest", &digest),
            ],
        )
        .await;
    assert_eq!((status, &reply["data"]), (200, &Value::Null), "{reply}");
    let config = mock.get("/nodes/pve1/qemu/100/config").await;
    assert_eq!(config["cores"], 4);
    assert!(config.get("ostype").is_none() && config.get("boot").is_none());
    // The old digest is stale now.
    let (status, reply) = mock
        .put(
            "/nodes/pve1/qemu/100/config",
            &[("cores", "8"), ("digest", &digest)],
        )
        .await;
    assert_eq!(status, 500);
    assert_eq!(
        reply["message"],
        "detected modified configuration - file changed by other user? Try again.\n"
    );
    // POST answers a UPID and applies when the task ends.
    let status = mock
        .task(
            M::POST,
            "/nodes/pve1/qemu/100/config",
            &[("description", "web\nfront")],
        )
        .await;
    assert_eq!(status["exitstatus"], "OK");
    assert!(status["upid"].as_str().unwrap().contains(":qmconfig:100:"));
    let config = mock.get("/nodes/pve1/qemu/100/config").await;
    assert_eq!(config["description"], "web\nfront");
    assert_eq!(
        config["digest"].as_str().unwrap(),
        hex::encode(sha1::Sha1::digest(raw_config(&config).as_bytes()))
    );

    // Pending: every key with its value, nothing pending.
    let pending = mock.get("/nodes/pve1/qemu/100/pending").await;
    let cores = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "cores")
        .unwrap();
    assert_eq!(cores["value"], "4");
    assert!(
        pending
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("pending").is_none())
    );

    // A backup locks the guest while it runs.
    let (status, reply) = mock
        .post(
            "/nodes/pve1/vzdump",
            &[("vmid", "100"), ("storage", "local")],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let upid = reply["data"].as_str().unwrap().to_owned();
    let (status, reply) = mock
        .put("/nodes/pve1/qemu/100/config", &[("cores", "2")])
        .await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "VM is locked (backup)\n");
    let list = mock.get("/nodes/pve1/qemu").await;
    assert_eq!(
        list.as_array()
            .unwrap()
            .iter()
            .find(|v| v["vmid"] == 100)
            .unwrap()["lock"],
        "backup"
    );
    mock.wait(&upid).await;
    let (status, _) = mock
        .put("/nodes/pve1/qemu/100/config", &[("cores", "2")])
        .await;
    assert_eq!(status, 200);
    mock.shutdown().await;
}

#[tokio::test]
async fn power_state_machine() {
    let mock = Mock::start().await;
    // VM 101 is stopped on pve2.
    mock.ok_task(M::POST, "/nodes/pve2/qemu/101/status/start", &[])
        .await;
    let current = mock.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(current["status"], "running");
    assert_eq!(current["qmpstatus"], "running");
    assert!(current["uptime"].as_u64().unwrap() < 5, "{current}");
    // QEMU checks "already running" in the worker: the task fails.
    let task = mock
        .task(M::POST, "/nodes/pve2/qemu/101/status/start", &[])
        .await;
    assert_eq!(task["exitstatus"], "VM 101 already running");
    mock.ok_task(M::POST, "/nodes/pve2/qemu/101/status/suspend", &[])
        .await;
    let current = mock.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(
        (current["status"].as_str(), current["qmpstatus"].as_str()),
        (Some("running"), Some("paused"))
    );
    let (status, reply) = mock.post("/nodes/pve2/qemu/101/status/shutdown", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "VM is paused - cannot shutdown\n");
    mock.ok_task(M::POST, "/nodes/pve2/qemu/101/status/resume", &[])
        .await;
    let (status, reply) = mock.delete("/nodes/pve2/qemu/101", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "VM 101 is running - destroy failed\n");
    mock.ok_task(
        M::POST,
        "/nodes/pve2/qemu/101/status/shutdown",
        &[("forceStop", "1"), ("timeout", "10")],
    )
    .await;
    let current = mock.get("/nodes/pve2/qemu/101/status/current").await;
    assert_eq!(current["status"], "stopped");
    assert_eq!(current["uptime"], 0);
    let (status, reply) = mock.post("/nodes/pve2/qemu/101/status/reboot", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "VM 101 not running\n");

    // LXC checks before forking: the request fails.
    mock.ok_task(M::POST, "/nodes/pve1/lxc/200/status/start", &[])
        .await;
    let (status, reply) = mock.post("/nodes/pve1/lxc/200/status/start", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "CT 200 already running\n");
    let (status, reply) = mock.delete("/nodes/pve1/lxc/200", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(
        reply["message"],
        "unable to destroy CT 200 - container is running\n"
    );
    mock.ok_task(M::POST, "/nodes/pve1/lxc/200/status/stop", &[])
        .await;
    let (status, reply) = mock.post("/nodes/pve1/lxc/200/status/stop", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "CT 200 not running\n");

    // The resources and the list follow.
    let resources = mock.get("/cluster/resources?type=vm").await;
    let vm = resources
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "qemu/101")
        .unwrap();
    assert_eq!(vm["status"], "stopped");
    mock.shutdown().await;
}

#[tokio::test]
async fn resize_and_move_disks() {
    let mock = Mock::start().await;
    mock.ok_task(
        M::PUT,
        "/nodes/pve1/qemu/100/resize",
        &[("disk", "scsi0"), ("size", "+2G")],
    )
    .await;
    let config = mock.get("/nodes/pve1/qemu/100/config").await;
    assert_eq!(config["scsi0"], "local-lvm:vm-100-disk-0,size=34G");
    mock.ok_task(
        M::PUT,
        "/nodes/pve1/qemu/100/resize",
        &[("disk", "scsi0"), ("size", "40G")],
    )
    .await;
    let config = mock.get("/nodes/pve1/qemu/100/config").await;
    assert_eq!(config["scsi0"], "local-lvm:vm-100-disk-0,size=40G");
    let content = mock
        .get("/nodes/pve1/storage/local-lvm/content?vmid=100")
        .await;
    assert_eq!(content[0]["size"], json!(40u64 << 30));
    let task = mock
        .task(
            M::PUT,
            "/nodes/pve1/qemu/100/resize",
            &[("disk", "scsi0"), ("size", "10G")],
        )
        .await;
    assert_eq!(task["exitstatus"], "shrinking disks is not supported");
    let task = mock
        .task(
            M::PUT,
            "/nodes/pve1/qemu/100/resize",
            &[("disk", "scsi7"), ("size", "+1G")],
        )
        .await;
    assert_eq!(task["exitstatus"], "disk 'scsi7' does not exist");

    // `local` holds no images.
    let (status, reply) = mock
        .post(
            "/nodes/pve1/qemu/100/move_disk",
            &[("disk", "scsi0"), ("storage", "local")],
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = mock
        .post(
            "/storage",
            &[
                ("storage", "images"),
                ("type", "dir"),
                ("path", "/srv/images"),
                ("content", "images,rootdir"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    mock.ok_task(
        M::POST,
        "/nodes/pve1/qemu/100/move_disk",
        &[("disk", "scsi0"), ("storage", "images")],
    )
    .await;
    let config = mock.get("/nodes/pve1/qemu/100/config").await;
    assert_eq!(
        config["scsi0"],
        "images:100/vm-100-disk-0.qcow2,format=qcow2,size=40G"
    );
    assert_eq!(config["unused0"], "local-lvm:vm-100-disk-0");
    let images = mock.get("/nodes/pve1/storage/images/content").await;
    assert_eq!(volids(&images), ["images:100/vm-100-disk-0.qcow2"]);
    // Deleting the unused disk frees the volume.
    mock.put("/nodes/pve1/qemu/100/config", &[("delete", "unused0")])
        .await;
    let lvm = mock
        .get("/nodes/pve1/storage/local-lvm/content?vmid=100")
        .await;
    assert_eq!(lvm, json!([]));
    // Move back, deleting the source.
    mock.ok_task(
        M::POST,
        "/nodes/pve1/qemu/100/move_disk",
        &[("disk", "scsi0"), ("storage", "local-lvm"), ("delete", "1")],
    )
    .await;
    let config = mock.get("/nodes/pve1/qemu/100/config").await;
    assert_eq!(config["scsi0"], "local-lvm:vm-100-disk-0,size=40G");
    assert!(config.get("unused0").is_none(), "{config}");
    assert_eq!(
        mock.get("/nodes/pve1/storage/images/content").await,
        json!([])
    );

    // LXC move_volume of a stopped container.
    mock.ok_task(
        M::POST,
        "/nodes/pve1/lxc/200/move_volume",
        &[("volume", "rootfs"), ("storage", "images")],
    )
    .await;
    let ct = mock.get("/nodes/pve1/lxc/200/config").await;
    assert_eq!(ct["rootfs"], "images:200/vm-200-disk-0.raw,size=8G");
    mock.shutdown().await;
}

#[tokio::test]
async fn snapshots_roll_back_the_config() {
    let mock = Mock::start().await;
    let before = mock.get("/nodes/pve1/qemu/100/config").await;
    mock.ok_task(
        M::POST,
        "/nodes/pve1/qemu/100/snapshot",
        &[("snapname", "before"), ("description", "clean state")],
    )
    .await;
    let list = mock.get("/nodes/pve1/qemu/100/snapshot").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["before", "current"]);
    let current = &list[1];
    assert_eq!(current["parent"], "before");
    assert_eq!(current["description"], "You are here!");
    assert_eq!(list[0]["description"], "clean state");
    assert!(list[0]["snaptime"].as_u64().is_some());
    let task = mock
        .task(
            M::POST,
            "/nodes/pve1/qemu/100/snapshot",
            &[("snapname", "before")],
        )
        .await;
    assert_eq!(task["exitstatus"], "snapshot name 'before' already used");
    let (status, reply) = mock
        .post("/nodes/pve1/qemu/100/snapshot", &[("snapname", "current")])
        .await;
    assert_eq!(status, 500, "{reply}");

    mock.put(
        "/nodes/pve1/qemu/100/config",
        &[("cores", "16"), ("name", "changed")],
    )
    .await;
    let snap = mock
        .get("/nodes/pve1/qemu/100/snapshot/before/config")
        .await;
    assert_eq!(snap["cores"], before["cores"]);
    assert_eq!(snap["description"], "clean state");
    let via_config = mock
        .get("/nodes/pve1/qemu/100/config?snapshot=before")
        .await;
    assert_eq!(via_config["cores"], before["cores"]);
    let (status, _) = mock
        .put(
            "/nodes/pve1/qemu/100/snapshot/before/config",
            &[("description", "renamed")],
        )
        .await;
    assert_eq!(status, 200);
    let snap = mock
        .get("/nodes/pve1/qemu/100/snapshot/before/config")
        .await;
    assert_eq!(snap["description"], "renamed");

    mock.ok_task(
        M::POST,
        "/nodes/pve1/qemu/100/snapshot/before/rollback",
        &[],
    )
    .await;
    let after = mock.get("/nodes/pve1/qemu/100/config").await;
    assert_eq!(after["cores"], before["cores"]);
    assert_eq!(after["name"], before["name"]);
    assert_eq!(after["parent"], "before");

    let task = mock
        .task(
            M::POST,
            "/nodes/pve1/qemu/100/snapshot/nothing/rollback",
            &[],
        )
        .await;
    assert_eq!(task["exitstatus"], "snapshot 'nothing' does not exist");
    mock.ok_task(M::DELETE, "/nodes/pve1/qemu/100/snapshot/before", &[])
        .await;
    let list = mock.get("/nodes/pve1/qemu/100/snapshot").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("parent").is_none(), "{list}");
    let (status, reply) = mock
        .get_status("/nodes/pve1/qemu/100/snapshot/before/config")
        .await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "snapshot 'before' does not exist\n");
    mock.shutdown().await;
}

#[tokio::test]
async fn clone_template_and_migrate() {
    let mock = Mock::start().await;
    mock.ok_task(
        M::POST,
        "/nodes/pve1/qemu/100/clone",
        &[("newid", "300"), ("name", "web02")],
    )
    .await;
    let source = mock.get("/nodes/pve1/qemu/100/config").await;
    let clone = mock.get("/nodes/pve1/qemu/300/config").await;
    assert_eq!(clone["name"], "web02");
    assert_eq!(clone["scsi0"], "local-lvm:vm-300-disk-0,size=32G");
    assert_ne!(clone["net0"], source["net0"]);
    assert_ne!(clone["smbios1"], source["smbios1"]);
    let content = mock
        .get("/nodes/pve1/storage/local-lvm/content?vmid=300")
        .await;
    assert_eq!(volids(&content), ["local-lvm:vm-300-disk-0"]);
    let (status, reply) = mock
        .post("/nodes/pve1/qemu/100/clone", &[("newid", "300")])
        .await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "VM 300 already exists on node 'pve1'\n");

    mock.ok_task(M::POST, "/nodes/pve1/qemu/300/template", &[])
        .await;
    let template = mock.get("/nodes/pve1/qemu/300/config").await;
    assert_eq!(template["template"], 1);
    let task = mock
        .task(M::POST, "/nodes/pve1/qemu/300/status/start", &[])
        .await;
    assert_eq!(
        task["exitstatus"],
        "you can't start a vm if it's a template"
    );
    let (status, reply) = mock.post("/nodes/pve1/qemu/100/template", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(
        reply["message"],
        "you can't convert a VM to template if VM is running\n"
    );

    // Migrate: a running VM needs --online (checked in the worker).
    let task = mock
        .task(
            M::POST,
            "/nodes/pve1/qemu/100/migrate",
            &[("target", "pve2")],
        )
        .await;
    assert_eq!(
        task["exitstatus"],
        "can't migrate running VM without --online"
    );
    let (status, reply) = mock
        .post("/nodes/pve1/qemu/100/migrate", &[("target", "pve1")])
        .await;
    assert_eq!(status, 400, "{reply}");
    mock.ok_task(
        M::POST,
        "/nodes/pve1/qemu/100/migrate",
        &[
            ("target", "pve2"),
            ("online", "1"),
            ("with-local-disks", "1"),
        ],
    )
    .await;
    let pve2: Vec<u64> = mock
        .get("/nodes/pve2/qemu")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vmid"].as_u64().unwrap())
        .collect();
    assert!(pve2.contains(&100), "{pve2:?}");
    let pve1: Vec<u64> = mock
        .get("/nodes/pve1/qemu")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vmid"].as_u64().unwrap())
        .collect();
    assert!(!pve1.contains(&100), "{pve1:?}");
    let current = mock.get("/nodes/pve2/qemu/100/status/current").await;
    assert_eq!(current["status"], "running");
    let resources = mock.get("/cluster/resources?type=vm").await;
    let vm = resources
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "qemu/100")
        .unwrap();
    assert_eq!(vm["node"], "pve2");
    let moved = mock
        .get("/nodes/pve2/storage/local-lvm/content?vmid=100")
        .await;
    assert_eq!(volids(&moved), ["local-lvm:vm-100-disk-0"]);
    assert_eq!(
        mock.get("/nodes/pve1/storage/local-lvm/content?vmid=100")
            .await,
        json!([])
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn guest_agent_endpoints() {
    let mock = Mock::start().await;
    // The seeded VM 100 runs with `agent: 1`; VM 101 has no agent configured.
    let (status, reply) = mock.post("/nodes/pve2/qemu/101/agent/ping", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "No QEMU guest agent configured\n");
    let (status, reply) = mock.post("/nodes/pve1/qemu/100/agent/ping", &[]).await;
    assert_eq!(
        (status, &reply["data"]),
        (200, &json!({"result": {}})),
        "{reply}"
    );
    let info = mock.get("/nodes/pve1/qemu/100/agent/info").await;
    assert!(info["result"]["version"].is_string());
    let os = mock.get("/nodes/pve1/qemu/100/agent/get-osinfo").await;
    assert_eq!(os["result"]["id"], "debian");
    let host = mock.get("/nodes/pve1/qemu/100/agent/get-host-name").await;
    assert_eq!(host["result"]["host-name"], "web01");
    let time = mock.get("/nodes/pve1/qemu/100/agent/get-time").await;
    assert!(time["result"].as_u64().unwrap() > 1_600_000_000_000_000_000);
    let nics = mock
        .get("/nodes/pve1/qemu/100/agent/network-get-interfaces")
        .await;
    assert_eq!(nics["result"][1]["hardware-address"], "bc:24:11:00:01:00");
    let (status, _) = mock
        .post("/nodes/pve1/qemu/100/agent", &[("command", "ping")])
        .await;
    assert_eq!(status, 200);

    mock.put("/nodes/pve1/qemu/100/config", &[("agent", "enabled=0")])
        .await;
    let (_, reply) = mock.post("/nodes/pve1/qemu/100/agent/ping", &[]).await;
    assert_eq!(reply["message"], "QEMU guest agent is not running\n");
    mock.put("/nodes/pve2/qemu/101/config", &[("agent", "1")])
        .await;
    let (status, reply) = mock
        .get_status("/nodes/pve2/qemu/101/agent/get-osinfo")
        .await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "VM 101 is not running\n");
    mock.shutdown().await;
}

#[tokio::test]
async fn task_lists_filter_like_proxmox() {
    let mock = Mock::start().await;
    mock.ok_task(M::POST, "/nodes/pve2/qemu/101/status/start", &[])
        .await;
    let failed = mock
        .task(M::POST, "/nodes/pve2/qemu/101/status/start", &[])
        .await;
    assert_ne!(failed["exitstatus"], "OK");
    mock.ok_task(M::POST, "/nodes/pve2/qemu/101/status/stop", &[])
        .await;

    let all = mock.get("/nodes/pve2/tasks").await;
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    let errors = mock.get("/nodes/pve2/tasks?errors=1").await;
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["status"], "VM 101 already running");
    let starts = mock.get("/nodes/pve2/tasks?typefilter=qmstart").await;
    assert_eq!(starts.as_array().unwrap().len(), 2);
    assert_eq!(mock.get("/nodes/pve2/tasks?vmid=999").await, json!([]));
    assert_eq!(
        mock.get("/nodes/pve2/tasks?limit=1")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        mock.get("/nodes/pve2/tasks?start=2")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(mock.get("/nodes/pve2/tasks?source=active").await, json!([]));
    assert_eq!(
        mock.get("/nodes/pve2/tasks?source=all")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let cluster = mock.get("/cluster/tasks").await;
    assert_eq!(cluster.as_array().unwrap().len(), 3);
    // The task ID names the guest as a string.
    assert_eq!(cluster[0]["id"], "101");
    mock.shutdown().await;

    let slow = Mock::with_delay(Duration::from_millis(400)).await;
    let (_, reply) = slow.post("/nodes/pve1/qemu/100/status/stop", &[]).await;
    let active = slow.get("/nodes/pve1/tasks?source=active").await;
    assert_eq!(active.as_array().unwrap().len(), 1, "{active}");
    assert!(active[0].get("status").is_none());
    assert_eq!(slow.get("/nodes/pve1/tasks").await, json!([]));
    slow.wait(reply["data"].as_str().unwrap()).await;
    slow.shutdown().await;
}

fn multipart(boundary: &str, fields: &[(&str, &str)], file: (&str, &[u8])) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"filename\"; filename=\"{}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.1);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn storage_content_upload_and_delete() {
    let mock = Mock::start().await;
    let payload = vec![7u8; 200_000];
    let boundary = "XyZ0123boundary";
    let response = mock
        .http
        .post(format!("{}/nodes/pve1/storage/local/upload", mock.base))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart(
            boundary,
            &[("content", "iso")],
            ("debian-12.iso", &payload),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let reply: Value = response.json().await.unwrap();
    mock.wait(reply["data"].as_str().unwrap()).await;
    let isos = mock
        .get("/nodes/pve1/storage/local/content?content=iso")
        .await;
    assert_eq!(isos[0]["volid"], "local:iso/debian-12.iso");
    assert_eq!(isos[0]["size"], 200_000);
    assert_eq!(isos[0]["format"], "iso");
    let info = mock
        .get("/nodes/pve1/storage/local/content/local%3Aiso%2Fdebian-12.iso")
        .await;
    assert_eq!(info["size"], 200_000);
    assert_eq!(info["path"], "/var/lib/vz/template/iso/debian-12.iso");

    let response = mock
        .http
        .post(format!("{}/nodes/pve1/storage/local/upload", mock.base))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(multipart(
            boundary,
            &[("content", "iso")],
            ("notes.txt", b"hi"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);

    mock.ok_task(
        M::DELETE,
        "/nodes/pve1/storage/local/content/local:iso%2Fdebian-12.iso",
        &[],
    )
    .await;
    assert_eq!(
        mock.get("/nodes/pve1/storage/local/content?content=iso")
            .await,
        json!([])
    );
    let (status, reply) = mock
        .delete(
            "/nodes/pve1/storage/local/content/local:iso%2Fdebian-12.iso",
            &[],
        )
        .await;
    assert_eq!(status, 500, "{reply}");

    // Allocation through the content API.
    let (status, reply) = mock
        .post(
            "/nodes/pve1/storage/local-lvm/content",
            &[
                ("filename", "vm-100-disk-5"),
                ("size", "1G"),
                ("vmid", "100"),
            ],
        )
        .await;
    assert_eq!(
        (status, &reply["data"]),
        (200, &json!("local-lvm:vm-100-disk-5")),
        "{reply}"
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn pools_track_members() {
    let mock = Mock::start().await;
    let (status, reply) = mock
        .post("/pools", &[("poolid", "prod"), ("comment", "production")])
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = mock
        .put("/pools/prod", &[("vms", "100,200"), ("storage", "local")])
        .await;
    assert_eq!(status, 200, "{reply}");
    let pool = mock.get("/pools/prod").await;
    assert_eq!(pool["comment"], "production");
    let ids: Vec<&str> = pool["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "qemu/100",
            "lxc/200",
            "storage/pve1/local",
            "storage/pve2/local"
        ]
    );
    let resources = mock.get("/cluster/resources?type=vm").await;
    let pools: Vec<(&str, Option<&str>)> = resources
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["pool"].as_str()))
        .collect();
    assert!(pools.contains(&("qemu/100", Some("prod"))), "{pools:?}");
    assert!(pools.contains(&("qemu/101", None)), "{pools:?}");

    let (status, reply) = mock.put("/pools/prod", &[("vms", "100")]).await;
    assert_eq!(status, 500);
    assert_eq!(reply["message"], "VM 100 is already a pool member\n");
    mock.post("/pools", &[("poolid", "dev")]).await;
    let (_, reply) = mock.put("/pools/dev", &[("vms", "100")]).await;
    assert_eq!(
        reply["message"],
        "VM 100 belongs already to pool 'prod' and 'allow-move' is not set\n"
    );
    let (status, _) = mock
        .put("/pools/dev", &[("vms", "100"), ("allow-move", "1")])
        .await;
    assert_eq!(status, 200);
    let (status, _) = mock
        .put(
            "/pools/prod",
            &[("vms", "200"), ("storage", "local"), ("delete", "1")],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(mock.get("/pools/prod").await["members"], json!([]));
    // The 9.x variant with the ID as a parameter.
    let (status, reply) = mock
        .put("/pools", &[("poolid", "prod"), ("vms", "101")])
        .await;
    assert_eq!(status, 200, "{reply}");
    let listed = mock.get("/pools?poolid=prod").await;
    assert_eq!(listed[0]["members"][0]["id"], "qemu/101");
    let (status, reply) = mock.delete("/pools/prod", &[]).await;
    assert_eq!(status, 500, "{reply}");
    // Destroying a guest removes it from its pool.
    mock.ok_task(M::DELETE, "/nodes/pve2/qemu/101", &[]).await;
    assert_eq!(mock.get("/pools/prod").await["members"], json!([]));
    let (status, _) = mock.delete("/pools/prod", &[]).await;
    assert_eq!(status, 200);
    mock.shutdown().await;
}

#[tokio::test]
async fn vzdump_creates_a_backup_volume() {
    let mock = Mock::start().await;
    let task = mock
        .task(
            M::POST,
            "/nodes/pve1/vzdump",
            &[
                ("vmid", "100"),
                ("storage", "local"),
                ("compress", "zstd"),
                ("mode", "snapshot"),
            ],
        )
        .await;
    assert_eq!(task["exitstatus"], "OK", "{task}");
    let backups = mock
        .get("/nodes/pve1/storage/local/content?content=backup")
        .await;
    let volid = backups[0]["volid"].as_str().unwrap();
    assert!(
        volid.starts_with("local:backup/vzdump-qemu-100-") && volid.ends_with(".vma.zst"),
        "{volid}"
    );
    assert_eq!(backups[0]["vmid"], 100);
    assert_eq!(backups[0]["format"], "vma.zst");
    let config = mock.get("/nodes/pve1/qemu/100/config").await;
    assert!(config.get("lock").is_none());
    let (status, reply) = mock
        .post(
            "/nodes/pve1/vzdump",
            &[("vmid", "100"), ("storage", "local-lvm")],
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    mock.shutdown().await;
}

#[tokio::test]
async fn odds_and_ends() {
    let mock = Mock::start().await;
    // A POST without body or Content-Type.
    let response = mock
        .http
        .post(format!("{}/nodes/pve2/qemu/101/status/start", mock.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    for node in ["pve1", "pve2"] {
        let network = mock.get(&format!("/nodes/{node}/network")).await;
        assert!(
            network
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["iface"] == "vmbr0")
        );
        let bridges = mock
            .get(&format!("/nodes/{node}/network?type=bridge"))
            .await;
        assert_eq!(bridges.as_array().unwrap().len(), 1);
        let version = mock.get(&format!("/nodes/{node}/version")).await;
        assert!(
            version["version"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}.", mock_server::LATEST)),
            "{version}"
        );
    }
    let version = mock.get("/version").await;
    assert_eq!(version["release"], mock_server::LATEST);
    assert!(
        version["version"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}.", mock_server::LATEST))
    );
    let storages = mock.get("/storage").await;
    let local = storages
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["storage"] == "local")
        .unwrap();
    assert_eq!(local["content"], "iso,vztmpl,backup");
    mock.shutdown().await;
}

/// `/cluster/resources` keeps computed guest rows between requests; every write to a guest
/// (config, power state, removal) shows in the next reply.
#[tokio::test]
async fn cluster_resources_follow_guest_writes() {
    let mock = Mock::start().await;
    let find = |resources: &Value, id: &str| {
        resources
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
    };
    let first = mock.get("/cluster/resources").await;
    assert_eq!(mock.get("/cluster/resources").await, first);
    let (status, _) = mock
        .put(
            "/nodes/pve2/qemu/101/config",
            &[("name", "renamed"), ("memory", "3072")],
        )
        .await;
    assert_eq!(status, 200);
    let vm = find(&mock.get("/cluster/resources?type=vm").await, "qemu/101").unwrap();
    assert_eq!(vm["name"], "renamed");
    assert_eq!(vm["maxmem"], 3072_i64 * 1024 * 1024);
    mock.ok_task(M::POST, "/nodes/pve2/qemu/101/status/start", &[])
        .await;
    let vm = find(&mock.get("/cluster/resources").await, "qemu/101").unwrap();
    assert_eq!(vm["status"], "running");
    mock.ok_task(M::POST, "/nodes/pve2/qemu/101/status/stop", &[])
        .await;
    let vm = find(&mock.get("/cluster/resources").await, "qemu/101").unwrap();
    assert_eq!(vm["status"], "stopped");
    assert_eq!(vm["uptime"], 0);
    mock.ok_task(M::DELETE, "/nodes/pve2/qemu/101", &[]).await;
    assert!(find(&mock.get("/cluster/resources").await, "qemu/101").is_none());
    mock.shutdown().await;
}

/// A running guest's `/cluster/resources` row is kept with the place of its `uptime`: the
/// reply from the kept row is the computed one with the uptime counted to the request's time,
/// never the placeholder it is kept with.
#[tokio::test]
async fn cluster_resources_keep_running_guests_with_their_uptime() {
    let mock = Mock::start().await;
    mock.ok_task(M::POST, "/nodes/pve2/qemu/101/status/start", &[])
        .await;
    let row = |resources: Value| {
        let mut vm = resources
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "qemu/101")
            .cloned()
            .unwrap();
        let uptime = vm["uptime"].as_u64().unwrap();
        vm["uptime"] = json!(null);
        (vm, uptime)
    };
    let (computed, first_uptime) = row(mock.get("/cluster/resources").await);
    let (kept, kept_uptime) = row(mock.get("/cluster/resources").await);
    assert_eq!(computed["status"], "running");
    assert_eq!(kept, computed);
    assert!(
        (first_uptime..first_uptime + 3_600).contains(&kept_uptime),
        "{first_uptime} then {kept_uptime}"
    );
    mock.shutdown().await;
}
