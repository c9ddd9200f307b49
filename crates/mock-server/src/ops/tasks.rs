//! Worker tasks: [`TaskRecord`] (start, log lines, finish, status) and the task endpoints:
//! `/nodes/{node}/tasks` with Proxmox's filters, `/cluster/tasks` and a task's log.
//!
//! A worker operation answers its UPID at once; [`super::run`] starts the record, stores it
//! (`running`) and finishes it when the task's duration has passed, applying the plan's
//! `at_end` changes in the same transaction (or none of them when the task fails).
//!
//! Filters follow `node_tasks` in pve-manager `PVE/API2/Tasks.pm`: `source` (`archive`, the
//! default, lists finished tasks; `active` running ones; `all` both), `vmid`, `typefilter`
//! (substring of the type), `userfilter`, `statusfilter` (`ok`, `error`, ...), `errors` (only
//! failed tasks), `since`/`until`, then `start` and `limit` (default 50) on the newest-first list.

use route_metadata::{Method, Operation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::guest::Kind;
use super::{Call, Plan, Tx};
use crate::access::rpcenv::owns_task;
use crate::api::{last_segment, parent};
use crate::auth;
use crate::error::AppError;
use crate::schema::split_list;
use crate::store::{Change, Tables};

/// One worker task, as stored under `/nodes/{node}/tasks/{upid}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct TaskRecord {
    /// `UPID:{node}:{pid}:{pstart}:{starttime}:{type}:{id}:{user}:`.
    pub(crate) upid: String,
    /// The node the task runs on.
    pub(crate) node: String,
    /// Worker PID.
    pub(crate) pid: u32,
    /// Process start time (clock ticks), part of the UPID.
    pub(crate) pstart: u64,
    /// Start time (Unix seconds).
    pub(crate) starttime: u64,
    /// Worker type (`qmstart`, `vzdump`, ...).
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// The task's object (usually the VM ID).
    pub(crate) id: String,
    /// Who started it.
    pub(crate) user: String,
    /// `running` or `stopped`.
    pub(crate) status: String,
    /// `OK` or the error, once stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) exitstatus: Option<String>,
    /// End time (Unix seconds), once stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) endtime: Option<u64>,
    /// The log lines (hidden from replies other than the log).
    #[serde(rename = "_log")]
    pub(crate) log: Vec<String>,
    /// The error the task ends with, decided when it started (not stored).
    #[serde(skip)]
    pub(crate) error: Option<String>,
}

impl TaskRecord {
    /// Starts the task of a call: Proxmox's UPID, `starting task ...` and the plan's log lines.
    pub(crate) fn start(call: &Call<'_>, pid: u32, log: Vec<String>) -> TaskRecord {
        let node = call
            .param("node")
            .or_else(|| call.arg_str("node"))
            .unwrap_or("pve1")
            .to_owned();
        let kind = task_type(call.op);
        let id = call
            .param("vmid")
            .map(str::to_owned)
            .or_else(|| call.arg_text("vmid"))
            .or_else(|| {
                call.path_params
                    .last()
                    .filter(|(key, _)| key != "node")
                    .map(|(_, value)| value.clone())
            })
            .unwrap_or_default();
        let pstart = 1_000_000 + u64::from(pid) * 7 % 8_000_000;
        let starttime = auth::now();
        let user = call.user().to_owned();
        let upid = upid(&node, pid, pstart, starttime, &kind, &id, &user);
        let mut lines = Vec::with_capacity(log.len() + 2);
        let mut first = String::with_capacity("starting task ".len() + upid.len());
        first.push_str("starting task ");
        first.push_str(&upid);
        lines.push(first);
        lines.extend(log);
        TaskRecord {
            upid,
            node,
            pid,
            pstart,
            starttime,
            kind,
            id,
            user,
            status: "running".to_owned(),
            exitstatus: None,
            endtime: None,
            log: lines,
            error: None,
        }
    }

    /// Ends the task: `stopped`, the exit status (`OK` or the error) and the last log line.
    pub(crate) fn finish(&mut self) {
        self.status = "stopped".to_owned();
        self.endtime = Some(auth::now().max(self.starttime));
        match self.error.take() {
            Some(error) => {
                self.log.push(format!("TASK ERROR: {error}"));
                self.exitstatus = Some(error);
            }
            None => {
                self.log.push("TASK OK".to_owned());
                self.exitstatus = Some("OK".to_owned());
            }
        }
    }

    /// Whether the stored record of this task still says `running` (a task stopped through
    /// `DELETE .../tasks/{upid}` does not end a second time).
    pub(crate) fn still_running(&self, tables: &Tables) -> bool {
        tables
            .get_as::<TaskRecord>(&self.path())
            .is_some_and(|record| record.is_running())
    }

    /// Whether the task still runs.
    fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// The store row path.
    fn path(&self) -> String {
        format!("/nodes/{}/tasks/{}", self.node, self.upid)
    }

    /// The change that stores the record: its compact JSON text, serialised straight from the
    /// record (the text `serde_json::to_value` and then [`crate::store`]'s rendering gave).
    pub(crate) fn change(&self) -> Change {
        let path = self.path();
        let mut body = Vec::with_capacity(256);
        let body = match serde_json::to_writer(&mut body, self).map(|()| String::from_utf8(body)) {
            Ok(Ok(body)) => body.into_boxed_str(),
            // Neither happens for a record (string keys, UTF-8 strings).
            _ => Box::from("null"),
        };
        Change::PutText {
            collection: Some(parent(&path).to_owned()),
            path,
            body,
        }
    }

    /// The record as the lists show it: `status` is the exit status of a finished task and
    /// absent for a running one.
    fn entry(&self) -> Value {
        let mut entry = json!({
            "upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
            "starttime": self.starttime, "type": self.kind, "id": self.id, "user": self.user,
        });
        if !self.is_running() {
            entry["status"] = json!(self.exitstatus.as_deref().unwrap_or("OK"));
            if let Some(endtime) = self.endtime {
                entry["endtime"] = json!(endtime);
            }
        }
        entry
    }
}

/// `UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{type}:{id}:{user}:` (pve-common
/// `PVE::Tools::upid_encode`), written without `format!`'s padding machinery.
fn upid(
    node: &str,
    pid: u32,
    pstart: u64,
    starttime: u64,
    kind: &str,
    id: &str,
    user: &str,
) -> String {
    let mut upid = String::with_capacity(48 + node.len() + kind.len() + id.len() + user.len());
    upid.push_str("UPID:");
    upid.push_str(node);
    upid.push(':');
    push_hex8(&mut upid, u64::from(pid));
    upid.push(':');
    push_hex8(&mut upid, pstart);
    upid.push(':');
    push_hex8(&mut upid, starttime);
    upid.push(':');
    for part in [kind, id, user] {
        upid.push_str(part);
        upid.push(':');
    }
    upid
}

/// Appends `value` in upper-case hex with at least 8 digits (`{:08X}`).
fn push_hex8(out: &mut String, value: u64) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(8);
    for place in (0..digits).rev() {
        out.push(char::from(HEX[(value >> (place * 4) & 0xf) as usize]));
    }
}

/// How many finished tasks a node keeps by default: pveproxy's task index holds about 1,000
/// entries and is rotated once (`active_workers` in pve-common `src/PVE/RESTEnvironment.pm`), so a
/// node lists about 2,000 finished tasks at most.
pub(crate) const DEFAULT_TASK_HISTORY: usize = 2_000;

/// The changes that drop a node's oldest finished tasks once it holds more than `keep` and a
/// tenth, down to `keep` (pruning in batches keeps the cost per task small). Running tasks stay.
pub(crate) fn prune(tables: &Tables, node: &str, keep: usize) -> Vec<Change> {
    let collection = format!("/nodes/{node}/tasks");
    let count = tables.member_count(&collection);
    if count <= keep + keep / 10 {
        return Vec::new();
    }
    let mut by_age: Vec<(u64, &str)> = tables
        .members(&collection)
        .map(|path| (upid_starttime(task_upid(path)), path))
        .collect();
    by_age.sort_unstable();
    let mut excess = count - keep;
    let mut changes = Vec::with_capacity(excess);
    for (_, path) in by_age {
        if excess == 0 {
            break;
        }
        let running = tables
            .get_as::<TaskRecord>(path)
            .is_none_or(|record| record.is_running());
        if running {
            continue;
        }
        changes.push(Change::Forget {
            path: path.to_owned(),
        });
        excess -= 1;
    }
    changes
}

/// The start time in a UPID (`UPID:node:pid:pstart:STARTTIME:...`, hex): the fifth field of
/// `split(':')`, found with a vectorised byte search. `prune` reads every task's (about 2,200 per
/// prune), and `str::split`'s char searcher cost about a thousand instructions per UPID.
fn upid_starttime(upid: &str) -> u64 {
    let bytes = upid.as_bytes();
    let mut colons = memchr::memchr_iter(b':', bytes);
    let Some(start) = colons.nth(3).map(|colon| colon + 1) else {
        return 0;
    };
    let end = colons.next().unwrap_or(bytes.len());
    std::str::from_utf8(&bytes[start..end])
        .ok()
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or(0)
}

/// The last segment of a task's path (its UPID), as `last_segment` finds it, with a vectorised
/// search for the last `/`.
fn task_upid(path: &str) -> &str {
    memchr::memrchr(b'/', path.as_bytes()).map_or(path, |slash| &path[slash + 1..])
}

/// What a task whose worker is gone (the mock stopped while it ran) says it ended with:
/// `active_workers` (pve-common `src/PVE/RESTEnvironment.pm`) gives such a task the current time
/// as `endtime` and `PVE::UPID::read_status` of its log, whose last line is neither `TASK OK`
/// nor `TASK ERROR: ...`.
const INTERRUPTED: &str = "unexpected status";

/// The changes that end every task still `running` in `tables`: called when a persisted state is
/// opened, since no worker survives a restart.
pub(crate) fn interrupted(tables: &Tables) -> Vec<Change> {
    let now = auth::now();
    let mut changes = Vec::new();
    for node in tables.members("/nodes") {
        for path in tables.members(&format!("{node}/tasks")) {
            let Some(mut record) = tables.get_as::<TaskRecord>(path) else {
                continue;
            };
            if !record.is_running() {
                continue;
            }
            record.status = "stopped".to_owned();
            record.exitstatus = Some(INTERRUPTED.to_owned());
            record.endtime = Some(now.max(record.starttime));
            changes.push(record.change());
        }
    }
    changes
}

/// Proxmox-like worker type of an operation (`qmstart`, `vzcreate`, `vzdump`, ...).
pub(crate) fn task_type(op: &Operation) -> String {
    let path = op.path.as_str();
    let kind = Kind::of_template(path);
    let prefix = match kind {
        Some(Kind::Lxc) => "vz",
        _ => "qm",
    };
    let last = last_segment(path);
    if kind.is_some() {
        let item_level = path.ends_with("/{vmid}");
        let name = match (op.method, last) {
            (Method::Post, "qemu" | "lxc") => "create",
            (Method::Delete, _) if item_level => "destroy",
            (_, "start" | "stop" | "shutdown" | "reboot" | "suspend" | "resume" | "reset") => last,
            (_, "clone") => "clone",
            (_, "migrate") => "migrate",
            (_, "template") => "template",
            (Method::Post, "snapshot") => "snapshot",
            (Method::Delete, _) if path.contains("/snapshot/") => "delsnapshot",
            (_, "rollback") => "rollback",
            (_, "move_disk" | "move_volume") => "move",
            (_, "config") => "config",
            (_, "resize") => return "resize".to_owned(),
            _ => "",
        };
        if !name.is_empty() {
            return if name == "migrate" {
                format!("{prefix}igrate")
            } else {
                format!("{prefix}{name}")
            };
        }
    }
    match (op.method, last) {
        (_, "vzdump") => "vzdump".to_owned(),
        (Method::Post, "content") => "imgcreate".to_owned(),
        (Method::Delete, "{volume}") => "imgdel".to_owned(),
        (_, "download-url") => "download".to_owned(),
        (Method::Post, "update") if path.contains("/apt/") => "aptupdate".to_owned(),
        _ => op
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase(),
    }
}

/// The task records of a node, newest first.
fn records(tables: &Tables, node: &str) -> Vec<TaskRecord> {
    let mut records: Vec<TaskRecord> = tables
        .members(&format!("/nodes/{node}/tasks"))
        .filter_map(|path| tables.get_as::<TaskRecord>(path))
        .collect();
    records.sort_by_key(|record| std::cmp::Reverse(record.starttime));
    records
}

/// `GET /nodes/{node}/tasks`.
pub(crate) fn node_tasks(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    super::generic::exists(call, tx)?;
    let node = call.param("node").unwrap_or_default();
    let source = call
        .arg_text("source")
        .unwrap_or_else(|| "archive".to_owned());
    let vmid = call.arg_text("vmid");
    let typefilter = call.arg_text("typefilter").map(|t| t.to_ascii_lowercase());
    let userfilter = call.arg_text("userfilter").map(|u| u.to_ascii_lowercase());
    let statusfilter: Option<Vec<String>> = call
        .arg_text("statusfilter")
        .map(|list| split_list(&list).map(str::to_ascii_lowercase).collect());
    let errors = call.flag("errors");
    let since = call.args.get("since").and_then(Value::as_u64);
    let until = call.args.get("until").and_then(Value::as_u64);
    let start = call.args.get("start").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = call.args.get("limit").and_then(Value::as_u64).unwrap_or(50) as usize;
    let entries: Vec<Value> = records(tx.tables, node)
        .into_iter()
        .filter(|record| match source.as_str() {
            "active" => record.is_running(),
            "all" => true,
            _ => !record.is_running(),
        })
        .filter(|record| {
            let exit = record.exitstatus.as_deref().unwrap_or("OK");
            let failed = !record.is_running() && exit != "OK";
            let status_class = if record.is_running() {
                "running"
            } else if exit == "OK" {
                "ok"
            } else if exit.starts_with("WARNINGS") {
                "warning"
            } else {
                "error"
            };
            vmid.as_deref().is_none_or(|v| record.id == v)
                && typefilter
                    .as_deref()
                    .is_none_or(|t| record.kind.to_ascii_lowercase().contains(t))
                && userfilter
                    .as_deref()
                    .is_none_or(|u| record.user.to_ascii_lowercase().contains(u))
                && (!errors || failed)
                && statusfilter
                    .as_ref()
                    .is_none_or(|wanted| wanted.iter().any(|w| w == status_class))
                && since.is_none_or(|s| record.starttime >= s)
                && until.is_none_or(|u| record.starttime <= u)
        })
        .skip(start)
        .take(limit)
        .map(|record| record.entry())
        .collect();
    Ok(Value::Array(entries))
}

/// `GET /cluster/tasks`: the tasks of every node, newest first.
pub(crate) fn cluster_tasks(_call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let mut all: Vec<TaskRecord> = tables
        .members("/nodes")
        .flat_map(|node| records(tables, last_segment(node)))
        .collect();
    all.sort_by_key(|record| std::cmp::Reverse(record.starttime));
    Ok(Value::Array(all.iter().map(TaskRecord::entry).collect()))
}

/// `GET /nodes/{node}/tasks/{upid}/log`: numbered lines, `start` and `limit` (default 50).
pub(crate) fn log(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    super::generic::exists(call, tx)?;
    let concrete = call.concrete();
    let record = tx.tables.get_as::<TaskRecord>(parent(&concrete));
    let lines = record.map(|record| record.log).unwrap_or_default();
    let start = call.args.get("start").and_then(Value::as_u64).unwrap_or(0) as usize;
    let limit = call
        .args
        .get("limit")
        .and_then(Value::as_u64)
        .filter(|limit| *limit > 0)
        .unwrap_or(50) as usize;
    Ok(Value::Array(
        lines
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(index, line)| json!({"n": index + 1, "t": line}))
            .collect(),
    ))
}

/// `DELETE /nodes/{node}/tasks/{upid}` (`stop_task`, pve-manager `PVE/API2/Tasks.pm`): the
/// caller owns the task or has `Sys.Modify` on the node; a running task is killed and ends with
/// `received interrupt` (the worker's `SIGTERM` handler in pve-common
/// `src/PVE/RESTEnvironment.pm`) without the effect it would have had; a finished task stays
/// as it is.
pub(crate) fn stop(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let node = call.param("node").unwrap_or_default();
    let upid = call.param("upid").unwrap_or_default();
    if !is_upid(upid) {
        return Err(AppError::param("upid", "unable to parse worker upid"));
    }
    let Some(mut record) = tx
        .tables
        .get_as::<TaskRecord>(&format!("/nodes/{node}/tasks/{upid}"))
    else {
        return Err(AppError::param("upid", "no such task"));
    };
    if !owns_task(call.user(), &record.user) {
        tx.rpc(call)
            .check(&format!("/nodes/{node}"), &["Sys.Modify"])?;
    }
    let mut plan = Plan::default();
    if record.is_running() {
        record.error = Some("received interrupt".to_owned());
        record.finish();
        plan.now.push(record.change());
    }
    Ok(plan)
}

/// `PVE::Tools::upid_decode`'s pattern:
/// `UPID:<node>:<pid, 8 hex>:<pstart, 8 or 9 hex>:<starttime, 8 hex>:<type>:<id>:<user>:`.
fn is_upid(upid: &str) -> bool {
    let fields: Vec<&str> = upid.split(':').collect();
    let hex = |text: &str, lengths: &[usize]| {
        lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit())
    };
    fields.len() == 9
        && fields[0] == "UPID"
        && !fields[1].is_empty()
        && hex(fields[2], &[8])
        && hex(fields[3], &[8, 9])
        && hex(fields[4], &[8])
        && !fields[5].is_empty()
        && !fields[7].is_empty()
        && fields[8].is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's row is the text its `Value` gave (`to_value`, then the store's rendering).
    #[test]
    fn a_record_is_stored_as_its_value_was() {
        let mut record = TaskRecord {
            upid: upid(
                "pve1",
                7,
                1_000_049,
                1_764_547_200,
                "qmcreate",
                "100",
                "root@pam",
            ),
            node: "pve1".to_owned(),
            pid: 7,
            pstart: 1_000_049,
            starttime: 1_764_547_200,
            kind: "qmcreate".to_owned(),
            id: "100".to_owned(),
            user: "root@pam".to_owned(),
            status: "running".to_owned(),
            exitstatus: None,
            endtime: None,
            log: vec!["starting task \"x\"\n é".to_owned()],
            error: Some("boom".to_owned()),
        };
        for _ in 0..2 {
            let Change::PutText {
                path,
                collection,
                body,
            } = record.change()
            else {
                unreachable!("a record is stored as text")
            };
            assert_eq!(path, format!("/nodes/pve1/tasks/{}", record.upid));
            assert_eq!(collection.as_deref(), Some("/nodes/pve1/tasks"));
            let value = serde_json::to_value(&record).unwrap_or(Value::Null);
            let mut expected = Vec::new();
            serde_json::to_writer(&mut expected, &value).unwrap_or_default();
            assert_eq!(body.as_bytes(), expected.as_slice());
            record.finish();
        }
    }

    #[test]
    fn start_times_are_read_from_upids() {
        for (upid, expected) in [
            (
                "UPID:pve1:00000007:000F4289:6B0E119E:qmcreate:100:root@pam:",
                0x6B0E_119E,
            ),
            ("UPID:pve1:1:2:ff:x:", 255),
            ("UPID:pve1:1:2:", 0),
            ("UPID:pve1:1:2:zz:x:", 0),
            ("UPID:pve1:1:2:+1:x:", 1),
            ("UPID:pve1:1:2:ff", 255),
            ("UPID:pve1:1:2:", 0),
            ("UPID:pve1:1:2:1:2:3:4:5:6", 1),
            ("::::", 0),
            ("", 0),
        ] {
            let split = upid
                .split(':')
                .nth(4)
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .unwrap_or(0);
            assert_eq!(upid_starttime(upid), expected, "{upid}");
            assert_eq!(upid_starttime(upid), split, "{upid}");
        }
        for path in [
            "/nodes/pve1/tasks/UPID:pve1:1:2:ff:x:",
            "/a/b",
            "b",
            "/",
            "",
        ] {
            assert_eq!(task_upid(path), last_segment(path), "{path}");
        }
    }

    #[test]
    fn upids_are_written_as_formatted() {
        for (pid, pstart, starttime) in [
            (0, 0, 0),
            (1, 1_000_007, 1_764_547_200),
            (u32::MAX, 8_999_999, u64::from(u32::MAX) + 1),
            (0x1234_abcd, u64::MAX, 17),
        ] {
            let (node, kind, id, user) = ("pve1", "qmcreate", "100", "root@pam");
            assert_eq!(
                upid(node, pid, pstart, starttime, kind, id, user),
                format!("UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{id}:{user}:")
            );
        }
    }
}
