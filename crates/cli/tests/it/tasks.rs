//! Worker tasks: waiting, the log with `--follow`, and a failing task (exit code 4).

use predicates::prelude::*;

use crate::{Env, stderr, stdout};

#[test]
fn waits_and_follows() {
    let env = Env::new();
    let assert = env
        .pvectl()
        .args([
            "create",
            "/nodes/pve1/qemu",
            "--vmid",
            "120",
            "--memory",
            "2048",
        ])
        .args(["--net0", "virtio,bridge=vmbr0", "--follow"])
        .assert()
        .success();
    let text = stdout(assert.get_output());
    assert!(text.starts_with("\"UPID:pve1:"), "{text}");
    assert!(text.lines().count() > 1, "the log follows the UPID: {text}");
    env.pvectl()
        .args([
            "get",
            "/nodes/pve1/qemu/120/config",
            "--output-format",
            "json",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"memory\""));
    // Without a terminal, no waiting unless asked.
    env.pvectl()
        .args(["create", "/nodes/pve1/qemu/120/status/start", "--no-wait"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("\"UPID:pve1:"));
}

#[test]
fn failing_task_exits_with_4() {
    let env = Env::new();
    env.inject_fault(
        r#"{"kind":"task","type":"qmstart","exitstatus":"start failed: QEMU exited with code 1","log":["starting VM 101","kvm: cannot allocate memory"]}"#,
    );
    let assert = env
        .pvectl()
        .args(["create", "/nodes/pve2/qemu/101/status/start", "--wait"])
        .assert()
        .code(4);
    let text = stderr(assert.get_output());
    assert!(
        text.contains("task failed: start failed: QEMU exited with code 1"),
        "{text}"
    );
    assert!(text.contains("kvm: cannot allocate memory"), "{text}");
}
