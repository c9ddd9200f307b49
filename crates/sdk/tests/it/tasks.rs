//! Waiting for tasks, timeouts while waiting, task logs, and failed tasks.

use std::time::Duration;

use futures::TryStreamExt;
use proxmox_sdk::{Client, Error, Upid};
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
