//! Power actions: `POST .../status/{action}` (start, stop, shutdown, reboot, reset, suspend,
//! resume) of VMs and containers (qemu-server `src/PVE/API2/Qemu.pm`, pve-container
//! `src/PVE/API2/LXC/Status.pm`).
//!
//! The actions are tasks. Checks the API makes before forking fail the request
//! (`CT 200 already running`, `VM 100 not running` for reboot/resume/reset); checks made in the
//! worker fail the task (`VM 100 already running` for a QEMU start, locks). Suspending to disk
//! stops the guest and locks it (`lock: suspended`); resuming removes the lock and starts it.

use serde_json::{Map, Value, json};

use crate::auth;
use crate::error::AppError;
use crate::ops::guest::{Guest, Kind, Power, check_lock, status_row};
use crate::ops::guest::{is_template, put_config, put_status};
use crate::ops::{Call, Plan, Tx, fail, text};
use crate::store::Tables;

/// The path of a power action below a guest item (`/status/stop`).
pub(crate) fn power_path(action: &str) -> String {
    format!("/status/{action}")
}

/// `POST .../status/{action}`.
pub(crate) fn power(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let action = crate::api::last_segment(call.template());
    let subject = Subject {
        tables,
        guest,
        config: guest.config(tables)?,
        current: guest.power(tables),
        started: tables
            .field(&guest.status_path(), "_started")
            .as_ref()
            .and_then(Value::as_u64)
            .unwrap_or_else(auth::now),
    };
    match (guest.kind, action) {
        (_, "start") => start(call, &subject),
        (_, "stop") => stop(call, &subject),
        (_, "shutdown") => shutdown(call, &subject),
        (_, "reboot") => reboot(&subject),
        (Kind::Qemu, "reset") => reset(&subject),
        (_, "suspend") => suspend(call, &subject),
        (_, "resume") => resume(&subject),
        _ => Ok(Plan::default()),
    }
}

/// What a power action decides on: the guest, its config and its power state.
struct Subject<'a> {
    tables: &'a Tables,
    guest: &'a Guest,
    config: Map<String, Value>,
    current: Power,
    /// When the guest was started (now when the status row does not say).
    started: u64,
}

impl Subject<'_> {
    /// The lock check (`skiplock` skips it).
    fn check_lock(&self, call: &Call<'_>) -> Result<(), String> {
        check_lock(self.guest.kind, &self.config, call)
    }

    /// Proxmox's message for an action that needs a running guest.
    fn not_running(&self) -> AppError {
        AppError::die(format!(
            "{} {} not running\n",
            self.guest.kind.label(),
            self.guest.vmid
        ))
    }

    /// The plan that sets the power-state row.
    fn set_power(&self, row: Value) -> Plan {
        Plan {
            at_end: vec![put_status(self.guest, row)],
            ..Plan::default()
        }
    }

    /// The plan that writes the config and sets the power-state row (suspend to disk, resume
    /// from it).
    fn set_config_and_power(&self, config: Map<String, Value>, row: Value) -> Plan {
        Plan {
            at_end: vec![
                put_config(self.tables, self.guest, config),
                put_status(self.guest, row),
            ],
            ..Plan::default()
        }
    }
}

/// `start`: a running container is refused at once; a template, a lock or a running VM fail
/// the task.
fn start(call: &Call<'_>, subject: &Subject<'_>) -> Result<Plan, AppError> {
    let vmid = subject.guest.vmid;
    if subject.guest.kind == Kind::Lxc && subject.current.is_running() {
        return Err(AppError::die(format!("CT {vmid} already running\n")));
    }
    if is_template(&subject.config) {
        return fail(call, "you can't start a vm if it's a template\n");
    }
    if let Err(message) = subject.check_lock(call) {
        return fail(call, message);
    }
    if subject.current.is_running() {
        return fail(call, format!("VM {vmid} already running\n"));
    }
    Ok(subject.set_power(status_row(Power::Running, auth::now())))
}

/// `stop`: a stopped container is refused at once; a lock fails the task.
fn stop(call: &Call<'_>, subject: &Subject<'_>) -> Result<Plan, AppError> {
    if subject.guest.kind == Kind::Lxc && !subject.current.is_running() {
        return Err(subject.not_running());
    }
    if let Err(message) = subject.check_lock(call) {
        return fail(call, message);
    }
    Ok(subject.set_power(status_row(Power::Stopped, 0)))
}

/// `shutdown`: a stopped container or a paused guest (without `forceStop`) is refused at once;
/// a lock fails the task.
fn shutdown(call: &Call<'_>, subject: &Subject<'_>) -> Result<Plan, AppError> {
    if subject.guest.kind == Kind::Lxc && !subject.current.is_running() {
        return Err(subject.not_running());
    }
    if subject.current == Power::Paused && !call.flag("forceStop") {
        return Err(AppError::die("VM is paused - cannot shutdown\n"));
    }
    if let Err(message) = subject.check_lock(call) {
        return fail(call, message);
    }
    Ok(subject.set_power(status_row(Power::Stopped, 0)))
}

/// `reboot`: only a running, unpaused guest; it runs again from now.
fn reboot(subject: &Subject<'_>) -> Result<Plan, AppError> {
    if !subject.current.is_running() {
        return Err(subject.not_running());
    }
    if subject.current == Power::Paused {
        return Err(AppError::die("VM is paused - cannot shutdown\n"));
    }
    Ok(subject.set_power(status_row(Power::Running, auth::now())))
}

/// `reset` (QEMU): only a running VM; it runs again from now.
fn reset(subject: &Subject<'_>) -> Result<Plan, AppError> {
    if !subject.current.is_running() {
        return Err(subject.not_running());
    }
    Ok(subject.set_power(status_row(Power::Running, auth::now())))
}

/// `suspend`: pauses a running guest, or with `todisk=1` stops it and locks it
/// (`lock: suspended`); a lock fails the task.
fn suspend(call: &Call<'_>, subject: &Subject<'_>) -> Result<Plan, AppError> {
    if !subject.current.is_running() {
        return Err(subject.not_running());
    }
    if let Err(message) = subject.check_lock(call) {
        return fail(call, message);
    }
    if call.flag("todisk") {
        let mut locked = subject.config.clone();
        locked.insert("lock".to_owned(), json!("suspended"));
        return Ok(subject.set_config_and_power(locked, status_row(Power::Stopped, 0)));
    }
    Ok(subject.set_power(status_row(Power::Paused, subject.started)))
}

/// `resume`: a paused guest runs on; a guest suspended to disk is unlocked and runs from now.
fn resume(subject: &Subject<'_>) -> Result<Plan, AppError> {
    let suspended_to_disk = subject
        .config
        .get("lock")
        .is_some_and(|l| text(l) == "suspended");
    if !subject.current.is_running() && !suspended_to_disk {
        return Err(subject.not_running());
    }
    if suspended_to_disk {
        let mut unlocked = subject.config.clone();
        unlocked.remove("lock");
        return Ok(subject.set_config_and_power(unlocked, status_row(Power::Running, auth::now())));
    }
    Ok(subject.set_power(status_row(Power::Running, subject.started)))
}
