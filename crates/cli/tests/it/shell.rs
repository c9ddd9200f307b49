//! Completion scripts checked by the shells themselves, completion candidates, and the terminal
//! view (table, progress) as a person sees it, captured from tmux.

use std::process::Command;
use std::time::Duration;

use crate::{Env, stdout};

fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|output| output.status.success())
}

#[test]
fn completion_scripts_parse() {
    let env = Env::new();
    for (shell, check) in [
        ("bash", vec!["bash", "-n"]),
        ("zsh", vec!["zsh", "-n"]),
        ("fish", vec!["fish", "--no-execute"]),
    ] {
        let assert = env.bare().args(["completion", shell]).assert().success();
        let script = stdout(assert.get_output());
        assert!(script.contains("__complete"), "{shell}");
        if !installed(check[0]) {
            eprintln!(
                "{} is not installed: {shell} script not syntax-checked",
                check[0]
            );
            continue;
        }
        let path = env.home.join(format!("completion.{shell}"));
        std::fs::write(&path, script).expect("script written");
        let status = Command::new(check[0])
            .args(&check[1..])
            .arg(&path)
            .status()
            .expect("shell runs");
        assert!(status.success(), "{shell} rejects its completion script");
    }
    env.bare()
        .args(["completion", "powershell"])
        .assert()
        .success();
}

#[test]
fn completion_candidates() {
    let env = Env::new();
    let complete = |words: &[&str]| {
        let assert = env
            .pvectl()
            .arg("__complete")
            .args(words)
            .assert()
            .success();
        stdout(assert.get_output())
    };
    assert_eq!(complete(&["--current=cr"]), "create\n");
    assert_eq!(complete(&["--current=/ver", "get"]), "/version\n");
    assert_eq!(
        complete(&["--current=--mem", "create", "/nodes/pve1/qemu"]),
        "--memory\n"
    );
    // Live ids from the server of the active connection.
    assert_eq!(
        complete(&["--current=/nodes/", "get"]),
        "/nodes/pve1\n/nodes/pve2\n"
    );
    assert_eq!(
        complete(&["--current=/nodes/pve1/qemu/", "--mock", "get"]),
        "/nodes/pve1/qemu/100\n"
    );
}

/// Runs `command` in a detached tmux session of 100x20 and returns the pane after `wait`.
fn tmux_capture(env: &Env, name: &str, command: &str, wait: Duration) -> Option<String> {
    if !installed("tmux") {
        eprintln!("tmux is not installed: terminal view not checked");
        return None;
    }
    let socket = env.home.join(format!("tmux-{name}.sock"));
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args(args)
            .output()
            .expect("tmux runs")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        name,
        "-x",
        "100",
        "-y",
        "20",
        command,
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    std::thread::sleep(wait);
    let captured = tmux(&["capture-pane", "-p", "-t", name]);
    tmux(&["kill-server"]);
    Some(String::from_utf8_lossy(&captured.stdout).into_owned())
}

#[test]
fn terminal_view_in_tmux() {
    let env = Env::with(|builder| builder.task_delay(Duration::from_secs(30)));
    let binary = env!("CARGO_BIN_EXE_pvectl");
    let connection = format!(
        "env -u LC_ALL LANG=C.UTF-8 PROXMOX_API_URL={} PROXMOX_API_USER=root@pam PROXMOX_API_PASSWORD=secret",
        env.server.base_url()
    );
    let table = format!("{connection} {binary} get /version; sleep 30");
    let Some(screen) = tmux_capture(&env, "table", &table, Duration::from_secs(2)) else {
        return;
    };
    let expected = "┌─────────┬──────────┐\n\
                    │ key     │ value    │\n\
                    ╞═════════╪══════════╡\n\
                    │ release │ 9.2      │\n\
                    ├─────────┼──────────┤\n\
                    │ repoid  │ c0ffee42 │\n\
                    ├─────────┼──────────┤\n\
                    │ version │ 9.2.0    │\n\
                    └─────────┴──────────┘\n";
    assert!(screen.starts_with(expected), "{screen}");

    let progress =
        format!("{connection} {binary} create /nodes/pve1/qemu/100/status/stop; sleep 30");
    let screen =
        tmux_capture(&env, "progress", &progress, Duration::from_secs(3)).unwrap_or_default();
    let first_lines: Vec<&str> = screen.lines().take(2).collect();
    assert!(first_lines[0].starts_with("UPID:pve1:"), "{screen}");
    assert!(
        first_lines[1].contains("qmstop 100 on pve1: running ["),
        "{screen}"
    );
}
