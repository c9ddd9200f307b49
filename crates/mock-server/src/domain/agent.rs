//! The QEMU guest agent endpoints (`/nodes/{node}/qemu/{vmid}/agent/...`).
//!
//! Proxmox checks availability first (`assert_agent_available` in qemu-server
//! `src/PVE/QemuServer/Agent.pm`): `No QEMU guest agent configured` without an `agent` key,
//! `VM 100 is not running`, then `QEMU guest agent is not running` when the agent does not answer
//! (here: `agent` disabled, or the VM paused). Replies wrap the QGA result in `{"result": ...}`
//! (`PVE::API2::Qemu::Agent`); the values are plausible and derived from the config (host name
//! from `name`, MAC addresses from `net[n]`, addresses from the VM ID).

use serde_json::{Value, json};
use shared_types::NetConfig;

use super::{Guest, Kind, Power, text};
use crate::app::AppState;
use crate::engine::{Call, DomainPlan};
use crate::error::AppError;
use crate::store::Tables;

fn agent_enabled(value: &Value) -> bool {
    let raw = text(value);
    let first = raw.split(',').next().unwrap_or_default();
    let enabled = first.strip_prefix("enabled=").unwrap_or(first);
    matches!(enabled, "1" | "yes" | "on" | "true")
}

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

fn command(rest: &str) -> &str {
    rest.trim_start_matches("/agent").trim_start_matches('/')
}

/// Replies of the agent commands a client reads.
fn reply(guest: &Guest, config: &serde_json::Map<String, Value>, command: &str) -> Option<Value> {
    let result = match command {
        "ping" | "fsfreeze-thaw" | "fsfreeze-freeze" | "shutdown" | "suspend-disk"
        | "suspend-ram" | "suspend-hybrid" => json!({}),
        "fsfreeze-status" => json!("thawed"),
        "info" => {
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
            .map(|name| json!({"name": name, "enabled": true, "success-response": name != "guest-shutdown"}))
            .collect();
            json!({"version": "7.2.19", "supported_commands": commands})
        }
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
        "get-vcpus" => {
            let cores = config.get("cores").and_then(Value::as_u64).unwrap_or(1)
                * config.get("sockets").and_then(Value::as_u64).unwrap_or(1);
            json!(
                (0..cores)
                    .map(|id| json!({"logical-id": id, "online": true, "can-offline": id != 0}))
                    .collect::<Vec<_>>()
            )
        }
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

/// `GET .../agent/...`.
pub fn read(
    _state: &AppState,
    tables: &Tables,
    _call: &Call<'_>,
    guest: &Guest,
    rest: &str,
) -> Result<Option<Value>, AppError> {
    if guest.kind != Kind::Qemu {
        return Ok(None);
    }
    let config = assert_available(tables, guest)?;
    Ok(reply(guest, &config, command(rest)))
}

/// `POST .../agent` and `POST .../agent/...`.
pub fn write(
    _state: &AppState,
    tables: &Tables,
    call: &Call<'_>,
    guest: &Guest,
    rest: &str,
) -> Result<Option<DomainPlan>, AppError> {
    if guest.kind != Kind::Qemu {
        return Ok(None);
    }
    let config = assert_available(tables, guest)?;
    let name = match command(rest) {
        "" => super::arg_text(call, "command").unwrap_or_default(),
        other => other.to_owned(),
    };
    Ok(reply(guest, &config, &name).map(|reply| DomainPlan {
        reply,
        ..DomainPlan::default()
    }))
}
