//! Waiting for tasks (typed outcomes, timeouts, failures), task logs read and followed, lists
//! with their `total` and pages, and Proxmox's not-found answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proxmox_sdk::{Client, Error, TaskOutcome, Upid};
use serde_json::{Value, json};

use crate::{CannedServer, mock, spawn_with, token_client};

/// Starts a VM (a task on the mock) and returns its UPID.
async fn start_vm(client: &Client) -> Upid {
    client
        .post("/nodes/pve2/qemu/101/status/start", &())
        .await
        .expect("start")
}

#[tokio::test]
async fn wait_polls_until_the_task_stops() {
    let server = spawn_with(mock().task_delay(Duration::from_secs(1))).await;
    let client = token_client(&server);
    let upid = start_vm(&client).await;
    let task = client
        .task(&upid)
        .poll_interval(Duration::from_millis(20), Duration::from_millis(80));
    assert!(task.status().await.expect("status").is_running());
    assert_eq!(
        task.wait(Duration::from_secs(10)).await.expect("finishes"),
        "OK"
    );
    let status = task.status().await.expect("status");
    assert!(status.is_success(), "{status:?}");
    let vm: Value = client
        .get("/nodes/pve2/qemu/101/status/current", &())
        .await
        .expect("status");
    assert_eq!(vm["status"], "running");
}

#[tokio::test]
async fn wait_gives_up_at_the_deadline() {
    let server = spawn_with(mock().task_delay(Duration::from_secs(30))).await;
    let client = token_client(&server);
    let upid = start_vm(&client).await;
    let started = std::time::Instant::now();
    let error = client
        .task(&upid)
        .poll_interval(Duration::from_millis(50), Duration::from_millis(50))
        .wait(Duration::from_millis(300))
        .await
        .expect_err("still running");
    assert!(error.is_timeout(), "{error:?}");
    assert!(
        error.to_string().contains("waiting for task UPID:pve2:"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn log_streams_every_line() {
    let server = spawn_with(mock()).await;
    let client = token_client(&server);
    let upid = start_vm(&client).await;
    let task = client
        .task(&upid)
        .poll_interval(Duration::from_millis(10), Duration::from_millis(50));
    task.wait(Duration::from_secs(10)).await.expect("finishes");
    let lines: Vec<_> = task.log().try_collect().await.expect("log");
    assert_eq!(
        lines.last().map(|line| line.t.as_str()),
        Some("TASK OK"),
        "{lines:?}"
    );
    let numbers: Vec<u64> = lines.iter().map(|line| line.n).collect();
    assert!(
        numbers.windows(2).all(|pair| pair[1] > pair[0]),
        "{numbers:?}"
    );
    let tail = task.log_tail(1).await.expect("tail");
    assert_eq!(tail, ["TASK OK"]);
}

/// A fake node whose task failed, with a 600-line log.
async fn failed_task_server() -> CannedServer {
    CannedServer::start(|request| {
        let request_line = request.lines().next().unwrap_or_default();
        if request_line.contains("/status") {
            let status = json!({"data": {"status": "stopped", "exitstatus": "unable to create VM 150 - boom"}});
            return Some((200, status.to_string()));
        }
        if request_line.contains("/log") {
            let query = request_line.split(['?', ' ']).nth(2).unwrap_or_default();
            let param = |name: &str| {
                query.split('&').find_map(|pair| pair.strip_prefix(&format!("{name}="))?.parse::<u64>().ok())
            };
            let (start, limit, total) = (param("start").unwrap_or(0), param("limit").unwrap_or(50), 600u64);
            let lines: Vec<Value> = (start..(start + limit).min(total))
                .map(|index| {
                    let text = if index + 1 == total { "TASK ERROR: boom".to_owned() } else { format!("line {}", index + 1) };
                    json!({"n": index + 1, "t": text})
                })
                .collect();
            return Some((200, json!({"data": lines, "total": total}).to_string()));
        }
        Some((404, "{\"data\":null}".to_owned()))
    })
    .await
}

#[tokio::test]
async fn failed_tasks_carry_the_log_tail() {
    let canned = failed_task_server().await;
    let client = Client::builder()
        .base_url(&canned.url)
        .token("root@pam!it", "x")
        .build()
        .expect("valid");
    let upid: Upid = "UPID:pve1:00001234:0000ABCD:65A1B2C3:qmcreate:150:root@pam:"
        .parse()
        .expect("valid UPID");
    let error = client
        .task(&upid)
        .wait(Duration::from_secs(5))
        .await
        .expect_err("failed task");
    let Error::TaskFailed(failure) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(failure.exit_status(), "unable to create VM 150 - boom");
    assert_eq!(failure.upid(), &upid);
    assert_eq!(failure.log_tail().len(), proxmox_sdk::task::LOG_TAIL_LINES);
    assert_eq!(
        failure.log_tail().last().map(String::as_str),
        Some("TASK ERROR: boom")
    );
    assert_eq!(
        failure.log_tail().first().map(String::as_str),
        Some("line 581")
    );
    assert!(error.to_string().contains("boom"), "{error}");

    let lines: Vec<_> = client
        .task(&upid)
        .log()
        .try_collect()
        .await
        .expect("paged log");
    assert_eq!(lines.len(), 600);
}

/// A typed call that starts a worker is waited on directly, and its log followed.
#[tokio::test]
async fn typed_calls_wait_for_their_task() {
    let (client, _mock) = mock_server::testing::builder()
        .task_delay(Duration::from_millis(300))
        .client(|client| {
            client.task_poll_interval(Duration::from_millis(20), Duration::from_millis(50))
        })
        .start()
        .await
        .expect("mock starts");
    let vm = client.nodes().node("pve2").qemu().vmid(101);
    let outcome = vm
        .status()
        .start()
        .wait(Duration::from_secs(10))
        .await
        .expect("starts");
    assert_eq!(outcome, TaskOutcome::Ok);
    assert_eq!(outcome.to_string(), "OK");

    let task = vm.status().stop().task().await.expect("a task");
    assert_eq!(task.upid().worker_type, "qmstop");
    let handle = tokio::spawn({
        let task = task.clone();
        async move { task.follow().try_collect().await }
    });
    let lines = handle.await.expect("joins").expect("followed to the end");
    assert_eq!(
        lines.last().map(|line| line.t.as_str()),
        Some("TASK OK"),
        "{lines:?}"
    );
    assert!(!task.status().await.expect("status").is_running());
    assert_eq!(task.wait(Duration::from_secs(1)).await.expect("done"), "OK");
}

/// `follow` reads the log while the task runs and stops after the last line.
#[tokio::test]
async fn follow_reads_a_growing_log_to_its_end() {
    let n_status = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&n_status);
    let canned = CannedServer::start(move |request| {
        let request_line = request.lines().next().unwrap_or_default();
        if request_line.contains("/status") {
            // Running for three polls; each poll lets the log grow by two lines.
            let n_polls = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let status = if n_polls <= 3 { "running" } else { "stopped" };
            let body = json!({"data": {"status": status, "exitstatus": "OK"}});
            return Some((200, body.to_string()));
        }
        if request_line.contains("/log") {
            let n_polls = counter.load(Ordering::SeqCst) as u64;
            let written = (n_polls * 2).min(8);
            let query = request_line.split(['?', ' ']).nth(2).unwrap_or_default();
            let start = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("start=")?.parse::<u64>().ok())
                .unwrap_or(0);
            let lines: Vec<Value> = (start..written)
                .map(|index| json!({"n": index + 1, "t": format!("step {}", index + 1)}))
                .collect();
            return Some((200, json!({"data": lines, "total": written}).to_string()));
        }
        Some((404, "{\"data\":null}".to_owned()))
    })
    .await;
    let client = Client::builder()
        .base_url(&canned.url)
        .token("root@pam!it", "x")
        .task_poll_interval(Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .expect("valid");
    let upid: Upid = "UPID:pve1:00001234:0000ABCD:65A1B2C3:vzdump:100:root@pam:"
        .parse()
        .expect("valid UPID");
    let mut log = client.task(&upid).follow();
    let mut texts = Vec::new();
    while let Some(line) = log.next().await {
        texts.push(line.expect("a line").t);
    }
    let expected: Vec<String> = (1..=8).map(|n| format!("step {n}")).collect();
    assert_eq!(texts, expected);
}

/// `WARNINGS: n` is a success that carries the `WARN:` lines.
#[tokio::test]
async fn warnings_are_a_success_with_their_lines() {
    let canned = CannedServer::start(|request| {
        let request_line = request.lines().next().unwrap_or_default();
        if request_line.contains("/status") {
            let body = json!({"data": {"status": "stopped", "exitstatus": "WARNINGS: 2"}});
            return Some((200, body.to_string()));
        }
        if request_line.contains("/log") {
            let lines = json!([
                {"n": 1, "t": "INFO: starting new backup job"},
                {"n": 2, "t": "WARN: unable to find guest agent"},
                {"n": 3, "t": "WARN: skipping disk efidisk0"},
                {"n": 4, "t": "TASK WARNINGS: 2"},
            ]);
            return Some((200, json!({"data": lines, "total": 4}).to_string()));
        }
        Some((404, "{\"data\":null}".to_owned()))
    })
    .await;
    let client = Client::builder()
        .base_url(&canned.url)
        .token("root@pam!it", "x")
        .build()
        .expect("valid");
    let upid: Upid = "UPID:pve1:00001234:0000ABCD:65A1B2C3:vzdump:100:root@pam:"
        .parse()
        .expect("valid UPID");
    let outcome = client
        .task(&upid)
        .wait(Duration::from_secs(5))
        .await
        .expect("warnings are a success");
    assert_eq!(outcome.warning_count(), 2);
    assert_eq!(outcome, "WARNINGS: 2");
    let TaskOutcome::Warnings { lines, .. } = &outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        lines,
        &[
            "WARN: unable to find guest agent",
            "WARN: skipping disk efidisk0"
        ]
    );
}

/// A task that fails is an `Err` carrying the exit status and the log.
#[tokio::test]
async fn typed_calls_report_a_failed_task() {
    let (client, mock) = mock_server::testing::builder()
        .client(|client| {
            client.task_poll_interval(Duration::from_millis(20), Duration::from_millis(50))
        })
        .start()
        .await
        .expect("mock starts");
    mock.inject_fault(mock_server::FaultSpec {
        kind: mock_server::FaultKind::Task,
        task_type: Some("qmstart".to_owned()),
        exitstatus: Some("start failed: QEMU exited with code 1".to_owned()),
        log: vec!["kvm: cannot open /dev/kvm".to_owned()],
        ..Default::default()
    })
    .await
    .expect("fault armed");
    let error = client
        .nodes()
        .node("pve2")
        .qemu()
        .vmid(101)
        .status()
        .start()
        .wait(Duration::from_secs(10))
        .await
        .expect_err("the task fails");
    let failure = error.task_failure().expect("a failed task");
    assert_eq!(
        failure.exit_status(),
        "start failed: QEMU exited with code 1"
    );
    assert!(
        failure
            .log_tail()
            .iter()
            .any(|line| line.contains("/dev/kvm")),
        "{:?}",
        failure.log_tail()
    );
}

/// A node's task list pages with `start`/`limit` and says how many there are in `total`.
async fn task_list_server() -> CannedServer {
    CannedServer::start(|request| {
        let request_line = request.lines().next().unwrap_or_default();
        if !request_line.contains("/nodes/pve1/tasks") {
            return Some((404, "{\"data\":null}".to_owned()));
        }
        let query = request_line.split(['?', ' ']).nth(2).unwrap_or_default();
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix(&format!("{name}="))?.parse::<u64>().ok())
        };
        let total = 250u64;
        let (start, limit) = (param("start").unwrap_or(0), param("limit").unwrap_or(50));
        let tasks: Vec<Value> = (start..(start + limit).min(total))
            .map(|index| json!({"upid": format!("task-{index}"), "starttime": index}))
            .collect();
        Some((200, json!({"data": tasks, "total": total}).to_string()))
    })
    .await
}

#[tokio::test]
async fn lists_keep_total_and_paginate() {
    let canned = task_list_server().await;
    let client = Client::builder()
        .base_url(&canned.url)
        .token("root@pam!it", "x")
        .build()
        .expect("valid");
    let list = || {
        proxmox_sdk::Call::<Vec<Value>>::new(
            client.request(proxmox_sdk::reqwest::Method::GET, "/nodes/pve1/tasks"),
        )
    };
    let first = list().with_total().await.expect("first page");
    assert_eq!((first.data.len(), first.total), (50, Some(250)));

    let n_before = canned.connections();
    let all = list().paginate(100).try_collect().await.expect("all pages");
    assert_eq!(all.len(), 250);
    assert_eq!(all[0]["upid"], "task-0");
    assert_eq!(all[249]["upid"], "task-249");
    assert_eq!(canned.connections() - n_before, 3, "three pages of 100");

    let mut pages = list().paginate(0);
    let first_item = pages.next().await.expect("an item").expect("decoded");
    assert_eq!(first_item["upid"], "task-0");
}

/// Proxmox answers a missing object with a 500 that says so; `is_not_found` sees it.
#[tokio::test]
async fn proxmox_not_found_answers() {
    let (client, _mock) = mock_server::testing::start().await.expect("mock starts");
    let error = client
        .nodes()
        .node("pve1")
        .qemu()
        .vmid(999)
        .config()
        .get()
        .await
        .expect_err("no VM 999");
    assert_eq!(error.status().map(|status| status.as_u16()), Some(500));
    assert!(error.is_not_found(), "{error}");
    assert_eq!(error.param_errors(), None);
}
