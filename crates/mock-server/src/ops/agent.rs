//! The QEMU guest agent endpoints (`/nodes/{node}/qemu/{vmid}/agent/...`).
//!
//! Proxmox checks availability first (`assert_agent_available` in qemu-server
//! `src/PVE/QemuServer/Agent.pm`): `No QEMU guest agent configured` without an `agent` key,
//! `VM 100 is not running`, then `QEMU guest agent is not running` when the agent does not answer
//! (here: `agent` disabled, or the VM paused). Replies wrap the QGA result in `{"result": ...}`
//! (`PVE::API2::Qemu::Agent`); the values are plausible and derived from the config (host name
//! from `name`, MAC addresses from `net[n]`, addresses from the VM ID).

use route_metadata::Method;
use serde_json::{Value, json};
use shared_types::NetConfig;

use super::guest::{Guest, Kind, Power};
use super::text;
use super::{Call, Plan, Tx};
use crate::error::AppError;
use crate::store::Tables;

/// Whether an `agent` config value enables the agent (`1` or `enabled=1,...`).
fn agent_enabled(value: &Value) -> bool {
    let raw = text(value);
    let first = raw.split(',').next().unwrap_or_default();
    let enabled = first.strip_prefix("enabled=").unwrap_or(first);
    crate::schema::parse_boolean(enabled).unwrap_or(false)
}

/// `assert_agent_available`: the config, if the agent is configured, the VM runs and the agent
/// answers.
fn assert_available(
    tables: &Tables,
    guest: &Guest,
) -> Result<serde_json::Map<String, Value>, AppError> {
    let config = guest.config(tables)?;
    let Some(agent) = config.get("agent") else {
        return Err(AppError::die("No QEMU guest agent configured\n"));
    };
    let power = guest.power(tables);
    if !power.is_running() {
        return Err(AppError::die(format!("VM {} is not running\n", guest.vmid)));
    }
    if !agent_enabled(agent) || power == Power::Paused {
        return Err(AppError::die("QEMU guest agent is not running\n"));
    }
    Ok(config)
}

/// Replies of the agent commands a client reads.
fn reply(guest: &Guest, config: &serde_json::Map<String, Value>, command: &str) -> Option<Value> {
    let result = match command {
        "ping" | "fsfreeze-thaw" | "fsfreeze-freeze" | "shutdown" | "suspend-disk"
        | "suspend-ram" | "suspend-hybrid" => json!({}),
        "fsfreeze-status" => json!("thawed"),
        "info" => info(),
        "get-osinfo" => json!({
            "id": "debian", "name": "Debian GNU/Linux",
            "pretty-name": "Debian GNU/Linux 12 (bookworm)", "version": "12 (bookworm)",
            "version-id": "12", "kernel-release": "6.1.0-28-amd64",
            "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
            "machine": "x86_64",
        }),
        "get-host-name" => {
            let name = config
                .get("name")
                .map(text)
                .unwrap_or_else(|| format!("VM{}", guest.vmid));
            json!({"host-name": name})
        }
        "get-time" => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            json!(u64::try_from(nanos).unwrap_or(u64::MAX))
        }
        "get-timezone" => json!({"zone": "UTC", "offset": 0}),
        "get-vcpus" => vcpus(config),
        "get-users" => json!([{"user": "root", "login-time": 1.7e9}]),
        "get-fsinfo" => json!([{
            "name": "sda1", "mountpoint": "/", "type": "ext4",
            "total-bytes": 32_212_254_720_u64, "used-bytes": 4_294_967_296_u64,
            "disk": [{"bus-type": "scsi", "bus": 0, "target": 0, "unit": 0,
                      "pci-controller": {"domain": 0, "bus": 1, "slot": 1, "function": 0},
                      "dev": "/dev/sda1"}],
        }]),
        "network-get-interfaces" => json!(interfaces(guest, config)),
        _ => return None,
    };
    Some(json!({ "result": result }))
}

/// The `guest-info` reply: the agent's version and the commands it supports.
fn info() -> Value {
    let commands: Vec<Value> = [
        "guest-ping",
        "guest-info",
        "guest-get-osinfo",
        "guest-get-host-name",
        "guest-get-time",
        "guest-get-timezone",
        "guest-get-users",
        "guest-get-vcpus",
        "guest-get-fsinfo",
        "guest-network-get-interfaces",
        "guest-exec",
        "guest-exec-status",
        "guest-file-open",
        "guest-file-read",
        "guest-file-write",
        "guest-fsfreeze-freeze",
        "guest-fsfreeze-status",
        "guest-fsfreeze-thaw",
        "guest-fstrim",
        "guest-set-user-password",
        "guest-shutdown",
        "guest-suspend-disk",
        "guest-suspend-ram",
        "guest-suspend-hybrid",
    ]
    .into_iter()
    .map(
        |name| json!({"name": name, "enabled": true, "success-response": name != "guest-shutdown"}),
    )
    .collect();
    json!({"version": "7.2.19", "supported_commands": commands})
}

/// The `guest-get-vcpus` reply: one online vCPU per core and socket (the first cannot go
/// offline).
fn vcpus(config: &serde_json::Map<String, Value>) -> Value {
    let cores = config.get("cores").and_then(Value::as_u64).unwrap_or(1)
        * config.get("sockets").and_then(Value::as_u64).unwrap_or(1);
    json!(
        (0..cores)
            .map(|id| json!({"logical-id": id, "online": true, "can-offline": id != 0}))
            .collect::<Vec<_>>()
    )
}

/// The `guest-network-get-interfaces` reply: the loopback, then one NIC per `net[n]` with its MAC
/// address and addresses derived from the VM ID.
fn interfaces(guest: &Guest, config: &serde_json::Map<String, Value>) -> Vec<Value> {
    let mut list = vec![json!({
        "name": "lo", "hardware-address": "00:00:00:00:00:00",
        "ip-addresses": [
            {"ip-address-type": "ipv4", "ip-address": "127.0.0.1", "prefix": 8},
            {"ip-address-type": "ipv6", "ip-address": "::1", "prefix": 128},
        ],
        "statistics": {"rx-bytes": 0, "rx-packets": 0, "rx-errs": 0, "rx-dropped": 0,
                        "tx-bytes": 0, "tx-packets": 0, "tx-errs": 0, "tx-dropped": 0},
    })];
    let mut nets: Vec<(&String, &Value)> = config
        .iter()
        .filter(|(key, _)| key.starts_with("net"))
        .collect();
    nets.sort_by_key(|(key, _)| key.trim_start_matches("net").parse::<u32>().unwrap_or(0));
    for (index, (key, value)) in nets.into_iter().enumerate() {
        let mac = text(value)
            .parse::<NetConfig>()
            .ok()
            .and_then(|net| net.macaddr)
            .unwrap_or_else(|| super::disks::generated_mac(guest.vmid, key))
            .to_ascii_lowercase();
        let host = guest.vmid % 250 + 2;
        list.push(json!({
            "name": format!("ens{}", 18 + index),
            "hardware-address": mac,
            "ip-addresses": [
                {"ip-address-type": "ipv4", "ip-address": format!("10.{}.{}.{host}", index, guest.vmid / 250 % 250), "prefix": 24},
                {"ip-address-type": "ipv6", "ip-address": format!("fe80::be24:11ff:fe{:02x}:{:04x}", index, guest.vmid % 0xffff), "prefix": 64},
            ],
            "statistics": {"rx-bytes": 1_048_576, "rx-packets": 1024, "rx-errs": 0, "rx-dropped": 0,
                            "tx-bytes": 524_288, "tx-packets": 512, "tx-errs": 0, "tx-dropped": 0},
        }));
    }
    list
}

/// The agent commands below `.../agent/` and their methods (the route table registers each).
pub(crate) const COMMANDS: &[(Method, &str)] = &[
    (Method::Get, "exec-status"),
    (Method::Get, "file-read"),
    (Method::Get, "get-fsinfo"),
    (Method::Get, "get-host-name"),
    (Method::Get, "get-memory-block-info"),
    (Method::Get, "get-memory-blocks"),
    (Method::Get, "get-osinfo"),
    (Method::Get, "get-time"),
    (Method::Get, "get-timezone"),
    (Method::Get, "get-users"),
    (Method::Get, "get-vcpus"),
    (Method::Get, "info"),
    (Method::Get, "network-get-interfaces"),
    (Method::Post, "exec"),
    (Method::Post, "file-write"),
    (Method::Post, "fsfreeze-freeze"),
    (Method::Post, "fsfreeze-status"),
    (Method::Post, "fsfreeze-thaw"),
    (Method::Post, "fstrim"),
    (Method::Post, "ping"),
    (Method::Post, "set-user-password"),
    (Method::Post, "shutdown"),
    (Method::Post, "suspend-disk"),
    (Method::Post, "suspend-hybrid"),
    (Method::Post, "suspend-ram"),
];

/// The path of an agent command below a guest item (`/agent/ping`).
pub(crate) fn path(command: &str) -> String {
    format!("/agent/{command}")
}

/// The command of a call: the last segment of `.../agent/{command}`, or the `command`
/// argument of `POST .../agent`.
fn command_of(call: &Call<'_>) -> String {
    let template = call.template();
    match template.rsplit_once("/agent") {
        Some((_, "")) => call.arg_text("command").unwrap_or_default(),
        Some((_, rest)) => rest.trim_start_matches('/').to_owned(),
        None => String::new(),
    }
}

/// `GET .../agent/...`; commands without a computed reply are answered generically.
pub(crate) fn read(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Value, AppError> {
    match computed_reply(call, tx, guest)? {
        Some(reply) => Ok(reply),
        None => super::generic::read(call, tx),
    }
}

/// `POST .../agent` and `POST .../agent/...`; commands without a computed reply are answered
/// generically.
pub(crate) fn write(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Plan, AppError> {
    match computed_reply(call, tx, guest)? {
        Some(reply) => Ok(Plan {
            reply,
            ..Plan::default()
        }),
        None => super::generic::write(call, tx),
    }
}

/// The computed reply of a QEMU guest's agent command, once the agent is available; `None` for
/// containers and commands without one.
fn computed_reply(call: &Call<'_>, tx: &Tx<'_>, guest: &Guest) -> Result<Option<Value>, AppError> {
    if guest.kind != Kind::Qemu {
        return Ok(None);
    }
    let config = assert_available(tx.tables, guest)?;
    Ok(reply(guest, &config, &command_of(call)))
}
