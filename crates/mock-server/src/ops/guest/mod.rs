//! The guest types every guest handler shares: [`Kind`] (QEMU or LXC), [`Guest`] (one guest,
//! addressed by node and VM ID), [`Power`], the config file as Proxmox writes it, its digest,
//! and the lock and digest checks; `config.rs` the config rows, file and checks, `disk_keys.rs`
//! the disk and NIC keys of a config.
//!
//! Guest configs are the guest's item row (`/nodes/{node}/qemu/{vmid}`); its power state lives
//! in `status/current`, its snapshots are rows below `snapshot/`. Volumes are rows below
//! `/nodes/{node}/storage/{storage}/content/` (see `super::storage::content_collection`). The
//! store keeps an index of guest IDs (`Tables::guests`), so ID look-ups and `nextid` cost no
//! scan.

mod config;
mod disk_keys;
mod perms;

use serde_json::{Map, Value, json};

pub(crate) use config::{
    check_digest, check_edit, check_lock, config_digest, hide_cipassword, is_template, put_config,
    put_status,
};
pub(crate) use disk_keys::{
    config_volumes, free_unused_key, is_disk_key, is_net_key, is_unused_key, owned_by, parse_disk,
};
pub(crate) use perms::{ConfigChange, check_config_change, check_drive_values};

use super::Call;
use crate::error::AppError;
use crate::store::Tables;

// ----------------------------------------------------------------------------------------------
// Guests.

/// QEMU VM or LXC container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A QEMU virtual machine.
    Qemu,
    /// An LXC container.
    Lxc,
}

impl Kind {
    /// The path segment (`qemu`, `lxc`), also the resource type.
    pub(crate) fn segment(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu",
            Kind::Lxc => "lxc",
        }
    }

    /// `VM` or `CT`, as `guest_type()` in `PVE::QemuConfig` / `PVE::LXC::Config`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Qemu => "VM",
            Kind::Lxc => "CT",
        }
    }

    /// The directory of the config files in `/etc/pve/nodes/{node}/`.
    pub(crate) fn conf_dir(self) -> &'static str {
        match self {
            Kind::Qemu => "qemu-server",
            Kind::Lxc => "lxc",
        }
    }

    /// The config key of the guest's name (`name`, `hostname`).
    pub(crate) fn name_key(self) -> &'static str {
        match self {
            Kind::Qemu => "name",
            Kind::Lxc => "hostname",
        }
    }

    /// The kind of a template at or below `/nodes/{node}/qemu` or `/nodes/{node}/lxc`.
    pub(crate) fn of_template(template: &str) -> Option<Kind> {
        if template.starts_with("/nodes/{node}/qemu") {
            Some(Kind::Qemu)
        } else if template.starts_with("/nodes/{node}/lxc") {
            Some(Kind::Lxc)
        } else {
            None
        }
    }

    /// The kind of an item path's segment.
    pub(crate) fn parse(segment: &str) -> Option<Kind> {
        match segment {
            "qemu" => Some(Kind::Qemu),
            "lxc" => Some(Kind::Lxc),
            _ => None,
        }
    }
}

/// One guest, addressed by node and VM ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Guest {
    /// QEMU or LXC.
    pub(crate) kind: Kind,
    /// Node the guest lives on.
    pub(crate) node: String,
    /// VM ID.
    pub(crate) vmid: u32,
    /// Item path (`/nodes/{node}/qemu/{vmid}`), the row holding the config.
    pub(crate) item: String,
}

impl Guest {
    /// A guest at a place.
    pub(crate) fn at(kind: Kind, node: &str, vmid: u32) -> Guest {
        Guest {
            kind,
            node: node.to_owned(),
            vmid,
            item: format!("/nodes/{node}/{}/{vmid}", kind.segment()),
        }
    }

    /// The guest a call addresses (its template is at or below a guest item).
    pub(crate) fn of(call: &Call<'_>) -> Option<Guest> {
        let template = call.template();
        let kind = if template.starts_with("/nodes/{node}/qemu/{vmid}") {
            Kind::Qemu
        } else if template.starts_with("/nodes/{node}/lxc/{vmid}") {
            Kind::Lxc
        } else {
            return None;
        };
        let node = call.param("node")?;
        let vmid = call.param("vmid")?.parse().ok()?;
        Some(Guest::at(kind, node, vmid))
    }

    /// The guest whose item path this is.
    pub(crate) fn from_item(item: &str) -> Option<Guest> {
        let mut segments = item.strip_prefix("/nodes/")?.split('/');
        let (node, kind, vmid) = (segments.next()?, segments.next()?, segments.next()?);
        Some(Guest::at(Kind::parse(kind)?, node, vmid.parse().ok()?))
    }

    /// Path of the power-state row.
    pub(crate) fn status_path(&self) -> String {
        format!("{}/status/current", self.item)
    }

    /// Collection of the guest's snapshots.
    pub(crate) fn snapshot_collection(&self) -> String {
        format!("{}/snapshot", self.item)
    }

    /// Proxmox's message for a guest whose config does not exist.
    pub(crate) fn not_found(&self) -> AppError {
        AppError::die(format!(
            "Configuration file 'nodes/{}/{}/{}.conf' does not exist\n",
            self.node,
            self.kind.conf_dir(),
            self.vmid
        ))
    }

    /// The config (the item row without hidden keys); fails like Proxmox when missing.
    pub(crate) fn config(&self, tables: &Tables) -> Result<Map<String, Value>, AppError> {
        let Some(Value::Object(mut row)) = tables.get(&self.item) else {
            return Err(self.not_found());
        };
        row.retain(|key, _| !key.starts_with('_'));
        Ok(row)
    }

    /// The power state.
    pub(crate) fn power(&self, tables: &Tables) -> Power {
        let status = tables.get(&self.status_path());
        let field = |key: &str| {
            status
                .as_ref()
                .and_then(|s| s.get(key))
                .and_then(Value::as_str)
        };
        match (field("status"), field("qmpstatus")) {
            (Some("running"), Some("paused")) => Power::Paused,
            (Some("running"), _) => Power::Running,
            _ => Power::Stopped,
        }
    }

    /// Snapshot name -> snapshot config, sorted by name.
    pub(crate) fn snapshots(&self, tables: &Tables) -> Vec<(String, Value)> {
        tables
            .members(&self.snapshot_collection())
            .filter_map(|path| {
                let name = crate::api::last_segment(path).to_owned();
                tables.get(path).map(|value| (name, value))
            })
            .collect()
    }
}

/// Power state of a guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Power {
    /// Not running.
    Stopped,
    /// Running.
    Running,
    /// Running but paused (`qmpstatus: paused`).
    Paused,
}

impl Power {
    /// Running or paused: the process exists.
    pub(crate) fn is_running(self) -> bool {
        self != Power::Stopped
    }
}

/// The row of a `status/current` for a power state.
pub(crate) fn status_row(power: Power, started: u64) -> Value {
    match power {
        Power::Stopped => json!({"status": "stopped", "qmpstatus": "stopped"}),
        Power::Running => json!({"status": "running", "qmpstatus": "running", "_started": started}),
        Power::Paused => json!({"status": "running", "qmpstatus": "paused", "_started": started}),
    }
}
