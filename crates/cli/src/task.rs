//! Waiting for a worker task: a spinner with the task's type, id, node, status and elapsed time
//! on stderr (indicatif, drawn only on a terminal), `--follow` streaming the log to stdout as it
//! grows, and on failure the exit status and the log's last lines on stderr (exit code 4).

use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use proxmox_sdk::Upid;
use proxmox_sdk::reqwest::Method;
use serde_json::{Map, Value};

use crate::connect::Session;
use crate::error::TaskFailed;

/// Lines of the log shown when a task fails (without `--follow`).
const TAIL_LINES: usize = 10;

/// Waits for `upid` to stop; fails with [`TaskFailed`] when it ends with an error.
pub async fn wait(session: &Session, upid_text: &str, follow: bool) -> anyhow::Result<()> {
    let upid: Upid = upid_text
        .parse()
        .with_context(|| format!("the reply '{upid_text}' is not a task id"))?;
    let base = proxmox_sdk::path(["nodes", upid.node.as_str(), "tasks", upid_text]);
    let progress = spinner();
    let label = format!(
        "{} {} on {}",
        upid.worker_type,
        upid.decoded_worker_id(),
        upid.node
    );
    progress.set_message(format!("{label}: running"));

    let mut next_line: u64 = 0;
    let mut n_poll: u32 = 0;
    let exit_status = loop {
        let status = session
            .call(Method::GET, &format!("{base}/status"), &Map::new())
            .await?;
        if follow {
            next_line = print_log(session, &base, next_line, &progress).await?;
        }
        if status.get("status").and_then(Value::as_str) != Some("running") {
            break status
                .get("exitstatus")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
        }
        let delay = Duration::from_millis(100u64.saturating_mul(1 << n_poll.min(4)).min(1_000));
        n_poll += 1;
        tokio::time::sleep(delay).await;
    };
    if follow {
        print_log(session, &base, next_line, &progress).await?;
    }
    let success = exit_status == "OK" || exit_status.starts_with("WARNINGS");
    progress.finish_and_clear();
    if success {
        if progress.is_hidden() {
            return Ok(());
        }
        eprintln!(
            "{label}: {exit_status} ({:.1}s)",
            progress.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    eprintln!("task failed: {exit_status}");
    if !follow {
        let tail = log_tail(session, &base).await.unwrap_or_default();
        for line in tail {
            eprintln!("  {line}");
        }
    }
    Err(TaskFailed { exit_status }.into())
}

/// A spinner on stderr, hidden when stderr is not a terminal.
fn spinner() -> ProgressBar {
    let progress = ProgressBar::new_spinner();
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        progress.set_draw_target(ProgressDrawTarget::stderr());
        progress.enable_steady_tick(Duration::from_millis(100));
    } else {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]") {
        progress.set_style(style);
    }
    progress
}

/// Prints the log lines from `start` on and returns the next line to ask for.
async fn print_log(
    session: &Session,
    base: &str,
    start: u64,
    progress: &ProgressBar,
) -> anyhow::Result<u64> {
    let mut params = Map::new();
    params.insert("start".to_owned(), Value::from(start));
    params.insert("limit".to_owned(), Value::from(500));
    let lines = session
        .call(Method::GET, &format!("{base}/log"), &params)
        .await?;
    let mut next = start;
    for line in lines.as_array().into_iter().flatten() {
        let number = line.get("n").and_then(Value::as_u64).unwrap_or(next + 1);
        let text = line.get("t").and_then(Value::as_str).unwrap_or_default();
        if text == "no content" && number == 1 {
            continue;
        }
        progress.suspend(|| println!("{text}"));
        next = next.max(number);
    }
    Ok(next)
}

/// The log's last [`TAIL_LINES`] lines.
async fn log_tail(session: &Session, base: &str) -> anyhow::Result<Vec<String>> {
    let mut params = Map::new();
    params.insert("start".to_owned(), Value::from(0));
    params.insert("limit".to_owned(), Value::from(100_000));
    let lines = session
        .call(Method::GET, &format!("{base}/log"), &params)
        .await?;
    let texts: Vec<String> = lines
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|line| line.get("t").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let skip = texts.len().saturating_sub(TAIL_LINES);
    Ok(texts.into_iter().skip(skip).collect())
}
