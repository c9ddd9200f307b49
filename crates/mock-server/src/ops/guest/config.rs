//! A guest's config as Proxmox keeps it: the rows that hold it (config, power state), the config
//! file as `write_vm_config`/`write_pct_config` print it, its digest, and the checks every edit
//! makes (digest, lock).

use serde_json::{Map, Value};
use sha1::Digest as _;

use super::{Guest, Kind};
use crate::ops::{Call, text};
use crate::store::{Change, Tables};

/// `check_lock` of `PVE::AbstractConfig` (pve-guest-common `src/PVE/AbstractConfig.pm`):
/// `VM is locked (backup)`, unless `skiplock` is given.
pub(crate) fn check_lock(
    kind: Kind,
    config: &Map<String, Value>,
    call: &Call<'_>,
) -> Result<(), String> {
    if call.flag("skiplock") {
        return Ok(());
    }
    match config.get("lock").map(text) {
        Some(lock) if !lock.is_empty() => Err(format!("{} is locked ({lock})\n", kind.label())),
        _ => Ok(()),
    }
}

/// The config file as Proxmox writes it (`write_vm_config` in qemu-server
/// `PVE/QemuServer.pm`, `write_pct_config` in pve-container `src/PVE/LXC/Config.pm`): the
/// description as `#` comment lines, the other keys sorted as `key: value`, then one
/// `[snapname]` section per snapshot.
pub(crate) fn raw_config(config: &Map<String, Value>, snapshots: &[(String, Value)]) -> String {
    fn section(raw: &mut String, config: &Map<String, Value>) {
        if let Some(description) = config.get("description").map(text) {
            for line in description.split('\n') {
                raw.push('#');
                raw.push_str(line);
                raw.push('\n');
            }
        }
        let mut keys: Vec<&String> = config
            .keys()
            .filter(|key| {
                !key.starts_with('_')
                    && !matches!(
                        key.as_str(),
                        "digest" | "description" | "pending" | "snapshots"
                    )
            })
            .collect();
        keys.sort();
        for key in keys {
            raw.push_str(key);
            raw.push_str(": ");
            raw.push_str(&text(&config[key]));
            raw.push('\n');
        }
    }
    let mut raw = String::with_capacity(512);
    section(&mut raw, config);
    for (name, snapshot) in snapshots {
        raw.push_str("\n[");
        raw.push_str(name);
        raw.push_str("]\n");
        if let Value::Object(snapshot) = snapshot {
            section(&mut raw, snapshot);
        }
    }
    raw
}

/// The config digest: SHA-1 (hex) of the raw config file, as `parse_vm_config` computes it.
pub(crate) fn config_digest(config: &Map<String, Value>, snapshots: &[(String, Value)]) -> String {
    let raw = raw_config(config, snapshots);
    hex::encode(sha1::Sha1::digest(raw.as_bytes()))
}

/// `assert_if_modified` (pve-common `PVE::Tools`): a given, different digest is rejected.
pub(crate) fn check_digest(call: &Call<'_>, current: &str) -> Result<(), String> {
    match call.args.get("digest").and_then(Value::as_str) {
        Some(expected) if !expected.is_empty() && expected != current => Err(
            "detected modified configuration - file changed by other user? Try again.\n".to_owned(),
        ),
        _ => Ok(()),
    }
}

/// The change that writes a guest's config row (hidden keys of the stored row are kept).
pub(crate) fn put_config(tables: &Tables, guest: &Guest, config: Map<String, Value>) -> Change {
    let mut config = config;
    seal_cipassword(guest.kind, &mut config);
    let mut row = config;
    if let Some(Value::Object(stored)) = tables.get(&guest.item) {
        for (key, value) in stored {
            if key.starts_with('_') {
                row.insert(key, value);
            }
        }
    }
    Change::Put {
        path: guest.item.clone(),
        collection: Some(format!("/nodes/{}/{}", guest.node, guest.kind.segment())),
        value: Value::Object(row),
    }
}

/// The change that writes a guest's power-state row (`status/current`, see [`status_row`]).
pub(crate) fn put_status(guest: &Guest, row: Value) -> Change {
    Change::Put {
        path: guest.status_path(),
        collection: None,
        value: row,
    }
}

/// The checks of a config edit (update, resize, move disk): the call's `digest` must be the
/// config's and the config must not be locked (unless `skiplock`). Proxmox makes them in the
/// worker, so the message fails the task.
pub(crate) fn check_edit(
    call: &Call<'_>,
    tables: &Tables,
    guest: &Guest,
    config: &Map<String, Value>,
) -> Result<(), String> {
    let digest = config_digest(config, &guest.snapshots(tables));
    check_digest(call, &digest)?;
    check_lock(guest.kind, config, call)
}

/// Whether a config is a template's (`template: 1`).
pub(crate) fn is_template(config: &Map<String, Value>) -> bool {
    config.get("template").is_some_and(|t| text(t) == "1")
}

/// What a config read shows for a stored cloud-init password.
const HIDDEN_PASSWORD: &str = "**********";

/// `update_vm_api` (qemu-server `src/PVE/API2/Qemu.pm`): a cloud-init password is stored as
/// `PVE::Tools::encrypt_pw` makes it (`$5$`), unless it is a crypt hash already or the guest runs
/// Windows (`windows_version`, whose cloudbase-init wants it in clear). Every config row goes
/// through [`put_config`], so no other path can store it in clear.
fn seal_cipassword(kind: Kind, config: &mut Map<String, Value>) {
    if kind != Kind::Qemu {
        return;
    }
    let windows = config
        .get("ostype")
        .map(text)
        .is_some_and(|ostype| is_windows(&ostype));
    if let Some(password) = config.get("cipassword").map(text)
        && !windows
        && !crate::auth::is_crypt_hash(&password)
    {
        config.insert(
            "cipassword".to_owned(),
            Value::String(crate::auth::encrypt_pw(&password)),
        );
    }
}

/// `PVE::QemuServer::Helpers::windows_version` is non-zero.
fn is_windows(ostype: &str) -> bool {
    matches!(ostype, "wxp" | "w2k" | "w2k3" | "w2k8" | "wvista")
        || ostype.strip_prefix("win").is_some_and(|version| {
            !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit())
        })
}

/// A config as the reads show it: a set cloud-init password as [`HIDDEN_PASSWORD`].
pub(crate) fn hide_cipassword(config: &mut Map<String, Value>) {
    if config
        .get("cipassword")
        .is_some_and(|value| !text(value).is_empty())
    {
        config.insert(
            "cipassword".to_owned(),
            Value::String(HIDDEN_PASSWORD.to_owned()),
        );
    }
}
