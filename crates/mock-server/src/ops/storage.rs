//! Storage content (volumes) and uploads.
//!
//! - Volumes are rows in a content collection: `/nodes/{node}/storage/{storage}/content` for a
//!   node-local storage, `/_mock/storage/{storage}/content` for a shared one (`shared=1`), one row
//!   per volume keyed by its volume ID with `/` escaped. `GET .../content` lists them with
//!   Proxmox's `content` and `vmid` filters (pve-storage `src/PVE/API2/Storage/Content.pm`).
//! - `POST .../upload` gets its `multipart/form-data` body read by the HTTP layer like
//!   `PVE::HTTPServer`: the file part is streamed and counted (its bytes are not kept) and the
//!   handler receives the size through `tmpfilename`, which encodes it in its last 16 hex digits
//!   (pve-storage `src/PVE/API2/Storage/Status.pm`, `upload`).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::guest::{Guest, Kind};
use super::text;
use super::{Call, Plan, Tx};
use crate::access::rpcenv::{RpcEnv, VolumeKind, parse_volname};
use crate::api::last_segment;
use crate::error::AppError;
use crate::schema::split_list;
use crate::store::{Change, Tables};

/// A volume row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Volume {
    /// `storage:volname`.
    pub(crate) volid: String,
    /// `raw`, `qcow2`, `iso`, `tzst`, `vma.zst`, ...
    pub(crate) format: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Content type: `images`, `rootdir`, `iso`, `vztmpl`, `backup`, `import`.
    pub(crate) content: String,
    /// Owning guest.
    pub(crate) vmid: Option<u32>,
}

impl Volume {
    fn row(&self) -> Value {
        let mut row = json!({
            "volid": self.volid, "format": self.format, "size": self.size,
            "content": self.content, "ctime": crate::auth::now(),
        });
        if let Some(vmid) = self.vmid {
            row["vmid"] = json!(vmid);
        }
        row
    }

    fn from_row(row: &Value) -> Option<Volume> {
        Some(Volume {
            volid: row.get("volid")?.as_str()?.to_owned(),
            format: row.get("format").map(text).unwrap_or_default(),
            size: row.get("size").and_then(Value::as_u64).unwrap_or(0),
            content: row.get("content").map(text).unwrap_or_default(),
            vmid: row
                .get("vmid")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok()),
        })
    }
}

/// The config of a storage (`/storage/{storage}`), or Proxmox's not-found message.
pub(crate) fn storage_config(
    tables: &Tables,
    storage: &str,
) -> Result<Map<String, Value>, AppError> {
    match tables.get(&format!("/storage/{storage}")) {
        Some(Value::Object(config)) => Ok(config),
        _ => Err(AppError::die(format!(
            "storage '{storage}' does not exist\n"
        ))),
    }
}

/// Whether a storage holds a content type.
pub(crate) fn supports(config: &Map<String, Value>, content: &str) -> bool {
    config
        .get("content")
        .map(text)
        .is_some_and(|list| split_list(&list).any(|c| c == content))
}

/// Whether a storage type keeps volumes as files (`dir`, `nfs`, `cifs`, `btrfs`, `cephfs`, ...).
pub(crate) fn is_file_based(config: &Map<String, Value>) -> bool {
    matches!(
        config.get("type").map(text).as_deref(),
        Some("dir" | "nfs" | "cifs" | "btrfs" | "cephfs" | "glusterfs" | "esxi")
    )
}

/// The content collection of a storage as seen from a node.
pub(crate) fn content_collection(config: &Map<String, Value>, node: &str, storage: &str) -> String {
    let shared = config
        .get("shared")
        .is_some_and(|s| s.as_i64() == Some(1) || s.as_bool() == Some(true) || text(s) == "1");
    if shared {
        format!("/_mock/storage/{storage}/content")
    } else {
        format!("/nodes/{node}/storage/{storage}/content")
    }
}

fn escape(volid: &str) -> String {
    volid.replace('%', "%25").replace('/', "%2F")
}

/// The row path of a volume (whether or not it exists).
pub(crate) fn volume_path(tables: &Tables, node: &str, volid: &str) -> Result<String, AppError> {
    let (storage, _) = volid
        .split_once(':')
        .ok_or_else(|| AppError::die(format!("unable to parse volume ID '{volid}'\n")))?;
    let config = storage_config(tables, storage)?;
    Ok(format!(
        "{}/{}",
        content_collection(&config, node, storage),
        escape(volid)
    ))
}

/// The row path of a volume, if it exists.
pub(crate) fn existing_volume_path(
    tables: &Tables,
    node: &str,
    volid: &str,
) -> Result<Option<String>, AppError> {
    if !volid.contains(':') {
        return Ok(None);
    }
    let Ok(path) = volume_path(tables, node, volid) else {
        return Ok(None);
    };
    Ok(tables.exists(&path).then_some(path))
}

/// A volume, if it exists.
pub(crate) fn volume(tables: &Tables, node: &str, volid: &str) -> Option<Volume> {
    let path = volume_path(tables, node, volid).ok()?;
    Volume::from_row(&tables.get(&path)?)
}

/// The change that creates a volume row.
pub(crate) fn put_volume(tables: &Tables, node: &str, volume: &Volume) -> Result<Change, AppError> {
    let path = volume_path(tables, node, &volume.volid)?;
    Ok(Change::Put {
        collection: Some(crate::api::parent(&path).to_owned()),
        path,
        value: volume.row(),
    })
}

/// The change that records a new size for a volume, if the volume has a row.
pub(crate) fn resize_volume(
    tables: &Tables,
    node: &str,
    volid: &str,
    size: u64,
) -> Result<Option<Change>, AppError> {
    let Some(path) = existing_volume_path(tables, node, volid)? else {
        return Ok(None);
    };
    let mut row = tables.get(&path).unwrap_or_else(|| json!({}));
    row["size"] = json!(size);
    Ok(Some(Change::Put {
        collection: Some(crate::api::parent(&path).to_owned()),
        path,
        value: row,
    }))
}

/// Changes that move a guest's node-local volumes to another node (shared ones stay).
pub(crate) fn move_volumes(
    tables: &Tables,
    from: &str,
    to: &str,
    volids: &[String],
) -> Result<Vec<Change>, AppError> {
    let mut changes = Vec::new();
    for volid in volids {
        let Some(old) = existing_volume_path(tables, from, volid)? else {
            continue;
        };
        let new = volume_path(tables, to, volid)?;
        if old == new {
            continue;
        }
        let row = tables.get(&old).unwrap_or_else(|| json!({}));
        changes.push(Change::Delete { path: old });
        changes.push(Change::Put {
            collection: Some(crate::api::parent(&new).to_owned()),
            path: new,
            value: row,
        });
    }
    Ok(changes)
}

fn storage_and_node<'c>(
    tables: &Tables,
    call: &'c Call<'_>,
) -> Result<(&'c str, &'c str, Map<String, Value>), AppError> {
    let node = call.param("node").unwrap_or_default();
    let storage = call.param("storage").unwrap_or_default();
    if !tables.exists(&format!("/nodes/{node}")) {
        return Err(AppError::die(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known\n"
        )));
    }
    let config = storage_config(tables, storage)?;
    Ok((node, storage, config))
}

/// `GET /nodes/{node}/storage/{storage}/content` with the `content` and `vmid` filters.
pub(crate) fn list_content(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let (node, storage, config) = storage_and_node(tables, call)?;
    let content_filter = call.arg_text("content");
    let vmid_filter = call
        .args
        .get("vmid")
        .and_then(|v| text(v).parse::<u64>().ok());
    let collection = content_collection(&config, node, storage);
    let rpc = tx.rpc(call);
    let mut entries: Vec<Value> = tables
        .members(&collection)
        .filter_map(|path| tables.get(path))
        // Only what the caller may access (`check_volume_access` per item, errors skipped).
        .filter(|row| {
            let volid = row.get("volid").and_then(Value::as_str).unwrap_or_default();
            rpc.check_volume_access(volid, &row_kind(row, volid), None)
                .is_ok()
        })
        .filter(|row| {
            content_filter
                .as_deref()
                .is_none_or(|wanted| row.get("content").and_then(Value::as_str) == Some(wanted))
                && vmid_filter
                    .is_none_or(|wanted| row.get("vmid").and_then(Value::as_u64) == Some(wanted))
        })
        .map(|row| {
            let mut entry = row.clone();
            if let Value::Object(map) = &mut entry {
                map.retain(|key, _| !key.starts_with('_'));
            }
            entry
        })
        .collect();
    entries.sort_by(|a, b| {
        a["volid"]
            .as_str()
            .unwrap_or_default()
            .cmp(b["volid"].as_str().unwrap_or_default())
    });
    Ok(Value::Array(entries))
}

fn volid_of(storage: &str, volume: &str) -> String {
    if volume.contains(':') {
        volume.to_owned()
    } else {
        format!("{storage}:{volume}")
    }
}

/// What a stored volume is: its row's `content` and `vmid`, or what its name says.
fn row_kind(row: &Value, volid: &str) -> VolumeKind {
    let mut kind = parse_volname(volid.split_once(':').map_or(volid, |(_, name)| name));
    if let Some(content) = row.get("content").and_then(Value::as_str) {
        kind.vtype = content.to_owned();
    }
    if let Some(vmid) = row
        .get("vmid")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
    {
        kind.owner = Some(vmid);
    }
    kind
}

/// What a volume is, stored or not (`parse_volname`).
pub(crate) fn volume_kind(tables: &Tables, node: &str, volid: &str) -> VolumeKind {
    match volume(tables, node, volid) {
        Some(volume) => VolumeKind {
            vtype: volume.content,
            owner: volume.vmid,
        },
        None => parse_volname(volid.split_once(':').map_or(volid, |(_, name)| name)),
    }
}

/// The volume a call addresses, after the caller's access to it is checked: `check` gets the
/// volume ID and what it is, before the volume's existence is (as `parse_volname` and the
/// permission checks run before the plugin looks the volume up).
fn volume_row(
    tables: &Tables,
    call: &Call<'_>,
    check: impl FnOnce(&str, &VolumeKind) -> Result<(), AppError>,
) -> Result<(String, String, Value), AppError> {
    let (node, storage, _) = storage_and_node(tables, call)?;
    let volid = volid_of(storage, call.param("volume").unwrap_or_default());
    check(&volid, &volume_kind(tables, node, &volid))?;
    let path = volume_path(tables, node, &volid)?;
    match tables.get(&path) {
        Some(row) => Ok((volid, path, row)),
        None => Err(AppError::die(format!("volume '{volid}' does not exist\n"))),
    }
}

/// `GET /nodes/{node}/storage/{storage}/content/{volume}`.
pub(crate) fn volume_info(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let rpc = tx.rpc(call);
    let (volid, _, row) = volume_row(tables, call, |volid, kind| {
        rpc.check_volume_access(volid, kind, None)
    })?;
    let storage = volid.split_once(':').map_or("", |(s, _)| s);
    let config = storage_config(tables, storage)?;
    let name = volid.split_once(':').map_or("", |(_, n)| n);
    let path = match config.get("path").map(text) {
        Some(base) => {
            let dir = match row.get("content").and_then(Value::as_str) {
                Some("iso") => format!("template/iso/{}", last_segment(name)),
                Some("vztmpl") => format!("template/cache/{}", last_segment(name)),
                Some("backup") => format!("dump/{}", last_segment(name)),
                Some("import") => format!("import/{}", last_segment(name)),
                _ => format!("images/{name}"),
            };
            format!("{base}/{dir}")
        }
        None => format!(
            "/dev/{}/{name}",
            config
                .get("vgname")
                .map(text)
                .unwrap_or_else(|| "pve".to_owned())
        ),
    };
    let size = row.get("size").and_then(Value::as_u64).unwrap_or(0);
    let mut reply = json!({
        "path": path, "size": size, "used": size,
        "format": row.get("format").map(text).unwrap_or_else(|| "raw".to_owned()),
    });
    for key in ["notes", "protected"] {
        if let Some(value) = row.get(key) {
            reply[key] = value.clone();
        }
    }
    Ok(reply)
}

/// `PUT` (notes, protected), `DELETE` and `POST` (copy) of one volume.
pub(crate) fn volume_write(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let rpc = tx.rpc(call);
    let (volid, path, row) = volume_row(tables, call, |volid, kind| {
        check_volume_write(call, &rpc, volid, kind)
    })?;
    let mut plan = Plan::default();
    match call.op.method {
        route_metadata::Method::Put => {
            let mut row = row.clone();
            if let Some(notes) = call.arg_text("notes") {
                row["notes"] = json!(notes);
            }
            if call.args.contains_key("protected") {
                row["protected"] = json!(call.flag("protected"));
            }
            plan.now.push(Change::Put {
                collection: Some(crate::api::parent(&path).to_owned()),
                path,
                value: row,
            });
        }
        route_metadata::Method::Delete => {
            if row.get("protected").and_then(Value::as_bool) == Some(true) {
                return Err(AppError::die(format!("volume '{volid}' is protected\n")));
            }
            plan.log.push(format!("Removed volume '{volid}'"));
            plan.at_end.push(Change::Delete { path });
        }
        _ => {
            let Some(target) = call.arg_text("target") else {
                return Err(AppError::param(
                    "target",
                    "property is missing and it is not optional",
                ));
            };
            let node = call
                .arg_text("target_node")
                .unwrap_or_else(|| call.param("node").unwrap_or_default().to_owned());
            let mut volume = Volume::from_row(&row)
                .ok_or_else(|| AppError::Internal(format!("volume row of {volid} is invalid")))?;
            volume.volid = volid_of(target.split(':').next().unwrap_or(&target), &target);
            plan.at_end.push(put_volume(tables, &node, &volume)?);
        }
    }
    Ok(plan)
}

/// The checks of `PUT` and `DELETE` on a volume (pve-storage `src/PVE/API2/Storage/Content.pm`):
/// an update needs `check_volume_access`; a delete needs `Datastore.Allocate` on the storage, or
/// for a guest's backup `Datastore.AllocateSpace` and `VM.Backup` on the guest. `POST` (copy)
/// is for `root@pam` only, by its metadata.
fn check_volume_write(
    call: &Call<'_>,
    rpc: &RpcEnv<'_>,
    volid: &str,
    kind: &VolumeKind,
) -> Result<(), AppError> {
    let storage = volid.split_once(':').map_or(volid, |(storage, _)| storage);
    let storage_path = format!("/storage/{storage}");
    match call.op.method {
        route_metadata::Method::Put => rpc.check_volume_access(volid, kind, None),
        route_metadata::Method::Delete => match (kind.vtype.as_str(), kind.owner) {
            ("backup", Some(owner)) => {
                rpc.check(&storage_path, &["Datastore.AllocateSpace"])?;
                rpc.check(&format!("/vms/{owner}"), &["VM.Backup"])
            }
            _ => rpc.check(&storage_path, &["Datastore.Allocate"]),
        },
        _ => Ok(()),
    }
}

/// `POST /nodes/{node}/storage/{storage}/content`: allocates a disk image (synchronous; answers
/// the volume ID).
pub(crate) fn allocate(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let (node, storage, config) = storage_and_node(tables, call)?;
    let filename = call.arg_text("filename").unwrap_or_default();
    let vmid: u32 = call
        .arg_text("vmid")
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let size_text = call.arg_text("size").unwrap_or_default();
    // `size` is in KiB unless it carries a unit (`alloc` in Content.pm).
    let size = match size_text.strip_suffix('G') {
        Some(n) => n.parse::<u64>().unwrap_or(0) << 30,
        None => match size_text.strip_suffix('M') {
            Some(n) => n.parse::<u64>().unwrap_or(0) << 20,
            None => size_text.parse::<u64>().unwrap_or(0) << 10,
        },
    };
    let prefix = format!("vm-{vmid}-");
    if !filename.starts_with(&prefix) && !filename.starts_with(&format!("base-{vmid}-")) {
        return Err(AppError::param(
            "filename",
            format!("name must begin with '{prefix}'"),
        ));
    }
    let format = call.arg_text("format").unwrap_or_else(|| "raw".to_owned());
    let volid = if is_file_based(&config) {
        let name = if filename.contains('.') {
            filename.clone()
        } else {
            format!("{filename}.{format}")
        };
        format!("{storage}:{vmid}/{name}")
    } else {
        format!("{storage}:{filename}")
    };
    if existing_volume_path(tables, node, &volid)?.is_some() {
        return Err(AppError::die(super::already_exists("volume", &volid)));
    }
    let volume = Volume {
        volid: volid.clone(),
        format,
        size,
        content: "images".to_owned(),
        vmid: Some(vmid),
    };
    Ok(Plan {
        now: vec![put_volume(tables, node, &volume)?],
        reply: json!(volid),
        ..Plan::default()
    })
}

/// Volume rows for the disks of seeded guests, so that a fresh mock lists them in its storage
/// content (called by [`crate::seed::Fixture::to_changes`] with the fixture's rows).
pub(crate) fn seed_volumes(changes: &[Change]) -> Vec<Change> {
    let mut storages: HashMap<&str, &Map<String, Value>> = HashMap::new();
    for change in changes {
        if let Change::Put {
            path,
            value: Value::Object(config),
            ..
        } = change
            && let Some(id) = path.strip_prefix("/storage/")
        {
            storages.insert(id, config);
        }
    }
    let mut rows = Vec::new();
    for change in changes {
        let Change::Put {
            path,
            value: Value::Object(config),
            ..
        } = change
        else {
            continue;
        };
        let Some(guest) = Guest::from_item(path).filter(|g| g.item == *path) else {
            continue;
        };
        for (key, value) in config {
            if !super::guest::is_disk_key(guest.kind, key) {
                continue;
            }
            let Some(disk) = super::guest::parse_disk(guest.kind, key, &text(value)) else {
                continue;
            };
            let Some((storage, name)) = disk.volume.split_once(':') else {
                continue;
            };
            let Some(storage_config) = storages.get(storage) else {
                continue;
            };
            if disk.cdrom || !super::guest::owned_by(&disk.volume, guest.vmid) {
                continue;
            }
            let format = match name.rsplit_once('.') {
                Some((_, ext)) if is_file_based(storage_config) => ext.to_owned(),
                _ => "raw".to_owned(),
            };
            let volume = Volume {
                volid: disk.volume.clone(),
                format,
                size: disk.size.map_or(0, shared_types::DiskSize::bytes),
                content: if guest.kind == Kind::Lxc {
                    "rootdir"
                } else {
                    "images"
                }
                .to_owned(),
                vmid: Some(guest.vmid),
            };
            let collection = content_collection(storage_config, &guest.node, storage);
            rows.push(Change::Put {
                path: format!("{collection}/{}", escape(&volume.volid)),
                collection: Some(collection),
                value: volume.row(),
            });
        }
    }
    rows
}

fn upload_size(call: &Call<'_>) -> u64 {
    call.arg_text("tmpfilename")
        .and_then(|name| {
            let hex = name.rsplit('-').next()?.to_owned();
            let digits = hex.get(hex.len().checked_sub(16)?..)?.to_owned();
            u64::from_str_radix(&digits, 16).ok()
        })
        .unwrap_or(0)
}

/// `POST /nodes/{node}/storage/{storage}/upload`: the uploaded ISO, container template or import
/// file appears in the storage's content with its size (`upload` in pve-storage
/// `src/PVE/API2/Storage/Status.pm`).
pub(crate) fn upload(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let (node, storage, config) = storage_and_node(tables, call)?;
    let content = call.arg_text("content").unwrap_or_default();
    let filename = call.arg_text("filename").unwrap_or_default();
    // `PVE::Storage::normalize_content_filename`: anything unusual becomes `_`.
    let filename: String = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !supports(&config, &content) {
        return Err(AppError::param(
            "content",
            format!("storage '{storage}' does not support '{content}' content"),
        ));
    }
    let (dir, format) = match content.as_str() {
        "iso" if filename.ends_with(".iso") || filename.ends_with(".img") => ("iso", "iso"),
        "vztmpl" => match [".tar.gz", ".tar.xz", ".tar.zst"]
            .into_iter()
            .find(|ext| filename.ends_with(ext))
        {
            Some(ext) => ("vztmpl", &ext[1..]),
            None => return Err(AppError::param("filename", "wrong file extension")),
        },
        "import" => match [".ova", ".ovf", ".qcow2", ".raw", ".vmdk", ".img"]
            .into_iter()
            .find(|ext| filename.ends_with(ext))
        {
            Some(ext) => ("import", &ext[1..]),
            None => return Err(AppError::param("filename", "wrong file extension")),
        },
        _ => return Err(AppError::param("filename", "wrong file extension")),
    };
    let volid = format!("{storage}:{dir}/{filename}");
    let volume = Volume {
        volid: volid.clone(),
        format: format.to_owned(),
        size: upload_size(call),
        content: content.clone(),
        vmid: None,
    };
    Ok(Plan {
        at_end: vec![put_volume(tables, node, &volume)?],
        log: vec![
            format!(
                "starting file import from: {}",
                call.arg_text("tmpfilename").unwrap_or_default()
            ),
            format!("target node: {node}"),
            format!("target file: {}", volume_info_path(&config, dir, &filename)),
            format!("file size is: {}", volume.size),
            "command 'cp' finished".to_owned(),
            format!("finished file import successfully"),
        ],
        ..Plan::default()
    })
}

fn volume_info_path(config: &Map<String, Value>, dir: &str, filename: &str) -> String {
    let base = config
        .get("path")
        .map(text)
        .unwrap_or_else(|| "/var/lib/vz".to_owned());
    let dir = match dir {
        "iso" => "template/iso",
        "vztmpl" => "template/cache",
        other => other,
    };
    format!("{base}/{dir}/{filename}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_ids_are_escaped_into_one_segment() {
        assert_eq!(escape("local:iso/a%b.iso"), "local:iso%2Fa%25b.iso");
    }
}
