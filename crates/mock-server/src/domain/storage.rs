//! Storage content (volumes), uploads, pools and backups.
//!
//! - Volumes are rows in a content collection: `/nodes/{node}/storage/{storage}/content` for a
//!   node-local storage, `/_mock/storage/{storage}/content` for a shared one (`shared=1`), one row
//!   per volume keyed by its volume ID with `/` escaped. `GET .../content` lists them with
//!   Proxmox's `content` and `vmid` filters (pve-storage `src/PVE/API2/Storage/Content.pm`).
//! - `POST .../upload` takes `multipart/form-data` like `PVE::HTTPServer`: the file part is
//!   streamed and counted (its bytes are not kept) and the handler receives the size through
//!   `tmpfilename`, which encodes it in its last 16 hex digits
//!   (pve-storage `src/PVE/API2/Storage/Status.pm`, `upload`).
//! - Pools keep their members in their row (`/pools/{poolid}`); `PUT /pools/{poolid}` and the
//!   9.x `PUT /pools?poolid=` add or (`delete=1`) remove VMs and storages with the messages of
//!   pve-access-control `src/PVE/API2/Pool.pm`.
//! - `vzdump` locks each guest (`lock: backup`) while its task runs and creates
//!   `<storage>:backup/vzdump-<type>-<vmid>-<YYYY_MM_DD-hh_mm_ss>.<ext>` when it ends
//!   (pve-manager `PVE/VZDump.pm`).

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use http::{HeaderMap, header};
use serde_json::{Map, Value, json};

use super::{Guest, Kind, arg_bool, arg_text, check_lock, param, text};
use crate::api::last_segment;
use crate::app::AppState;
use crate::engine::{Call, DomainPlan};
use crate::error::AppError;
use crate::store::{Change, Tables};
use crate::validate::{Params, split_list};

/// A volume row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// `storage:volname`.
    pub volid: String,
    /// `raw`, `qcow2`, `iso`, `tzst`, `vma.zst`, ...
    pub format: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type: `images`, `rootdir`, `iso`, `vztmpl`, `backup`, `import`.
    pub content: String,
    /// Owning guest.
    pub vmid: Option<u32>,
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
pub fn storage_config(tables: &Tables, storage: &str) -> Result<Map<String, Value>, AppError> {
    match tables.get(&format!("/storage/{storage}")) {
        Some(Value::Object(config)) => Ok(config.clone()),
        _ => Err(AppError::die(format!(
            "storage '{storage}' does not exist\n"
        ))),
    }
}

/// Whether a storage holds a content type.
pub fn supports(config: &Map<String, Value>, content: &str) -> bool {
    config
        .get("content")
        .map(text)
        .is_some_and(|list| split_list(&list).any(|c| c == content))
}

/// Whether a storage type keeps volumes as files (`dir`, `nfs`, `cifs`, `btrfs`, `cephfs`, ...).
pub fn is_file_based(config: &Map<String, Value>) -> bool {
    matches!(
        config.get("type").map(text).as_deref(),
        Some("dir" | "nfs" | "cifs" | "btrfs" | "cephfs" | "glusterfs" | "esxi")
    )
}

/// The content collection of a storage as seen from a node.
pub fn content_collection(config: &Map<String, Value>, node: &str, storage: &str) -> String {
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
pub fn volume_path(tables: &Tables, node: &str, volid: &str) -> Result<String, AppError> {
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
pub fn existing_volume_path(
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
pub fn volume(tables: &Tables, node: &str, volid: &str) -> Option<Volume> {
    let path = volume_path(tables, node, volid).ok()?;
    Volume::from_row(tables.get(&path)?)
}

/// The change that creates a volume row.
pub fn put_volume(tables: &Tables, node: &str, volume: &Volume) -> Result<Change, AppError> {
    let path = volume_path(tables, node, &volume.volid)?;
    Ok(Change::Put {
        collection: Some(crate::api::parent(&path).to_owned()),
        path,
        value: volume.row(),
    })
}

/// The change that records a new size for a volume, if the volume has a row.
pub fn resize_volume(
    tables: &Tables,
    node: &str,
    volid: &str,
    size: u64,
) -> Result<Option<Change>, AppError> {
    let Some(path) = existing_volume_path(tables, node, volid)? else {
        return Ok(None);
    };
    let mut row = tables.get(&path).cloned().unwrap_or_else(|| json!({}));
    row["size"] = json!(size);
    Ok(Some(Change::Put {
        collection: Some(crate::api::parent(&path).to_owned()),
        path,
        value: row,
    }))
}

/// Changes that move a guest's node-local volumes to another node (shared ones stay).
pub fn move_volumes(
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
        let row = tables.get(&old).cloned().unwrap_or_else(|| json!({}));
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
    let node = param(call, "node").unwrap_or_default();
    let storage = param(call, "storage").unwrap_or_default();
    if !super::node_exists(tables, node) {
        return Err(AppError::die(format!(
            "hostname lookup '{node}' failed - failed to get address info for: {node}: Name or service not known\n"
        )));
    }
    let config = storage_config(tables, storage)?;
    Ok((node, storage, config))
}

/// `GET /nodes/{node}/storage/{storage}/content` with the `content` and `vmid` filters.
pub fn list_content(
    _state: &AppState,
    tables: &Tables,
    call: &Call<'_>,
) -> Result<Value, AppError> {
    let (node, storage, config) = storage_and_node(tables, call)?;
    let content_filter = arg_text(call, "content");
    let vmid_filter = call
        .args
        .get("vmid")
        .and_then(|v| text(v).parse::<u64>().ok());
    let collection = content_collection(&config, node, storage);
    let mut entries: Vec<Value> = tables
        .members(&collection)
        .filter_map(|path| tables.get(path))
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

fn volume_row<'t>(
    tables: &'t Tables,
    call: &Call<'_>,
) -> Result<(String, String, &'t Value), AppError> {
    let (node, storage, _) = storage_and_node(tables, call)?;
    let volid = volid_of(storage, param(call, "volume").unwrap_or_default());
    let path = volume_path(tables, node, &volid)?;
    match tables.get(&path) {
        Some(row) => Ok((volid, path, row)),
        None => Err(AppError::die(format!("volume '{volid}' does not exist\n"))),
    }
}

/// `GET /nodes/{node}/storage/{storage}/content/{volume}`.
pub fn volume_info(_state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<Value, AppError> {
    let (volid, _, row) = volume_row(tables, call)?;
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
pub fn volume_write(
    _state: &AppState,
    tables: &Tables,
    call: &Call<'_>,
) -> Result<DomainPlan, AppError> {
    let (volid, path, row) = volume_row(tables, call)?;
    let mut plan = DomainPlan::default();
    match call.op.method {
        route_metadata::Method::Put => {
            let mut row = row.clone();
            if let Some(notes) = arg_text(call, "notes") {
                row["notes"] = json!(notes);
            }
            if call.args.contains_key("protected") {
                row["protected"] = json!(arg_bool(call, "protected"));
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
            let Some(target) = arg_text(call, "target") else {
                return Err(AppError::param(
                    "target",
                    "property is missing and it is not optional",
                ));
            };
            let node = arg_text(call, "target_node")
                .unwrap_or_else(|| param(call, "node").unwrap_or_default().to_owned());
            let mut volume = Volume::from_row(row)
                .ok_or_else(|| AppError::Internal(format!("volume row of {volid} is invalid")))?;
            volume.volid = volid_of(target.split(':').next().unwrap_or(&target), &target);
            plan.at_end.push(put_volume(tables, &node, &volume)?);
        }
    }
    Ok(plan)
}

/// `POST /nodes/{node}/storage/{storage}/content`: allocates a disk image (synchronous; answers
/// the volume ID).
pub fn allocate(
    _state: &AppState,
    tables: &Tables,
    call: &Call<'_>,
) -> Result<DomainPlan, AppError> {
    let (node, storage, config) = storage_and_node(tables, call)?;
    let filename = arg_text(call, "filename").unwrap_or_default();
    let vmid: u32 = arg_text(call, "vmid")
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    let size_text = arg_text(call, "size").unwrap_or_default();
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
    let format = arg_text(call, "format").unwrap_or_else(|| "raw".to_owned());
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
        return Err(AppError::die(format!("volume '{volid}' already exists\n")));
    }
    let volume = Volume {
        volid: volid.clone(),
        format,
        size,
        content: "images".to_owned(),
        vmid: Some(vmid),
    };
    Ok(DomainPlan {
        now: vec![put_volume(tables, node, &volume)?],
        reply: json!(volid),
        ..DomainPlan::default()
    })
}

/// Volume rows for the disks of seeded guests, so that a fresh mock lists them in its storage
/// content (called by [`crate::seed::Fixture::to_changes`] with the fixture's rows).
pub fn seed_volumes(changes: &[Change]) -> Vec<Change> {
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
            if !super::disks::is_disk_key(guest.kind, key) {
                continue;
            }
            let Some(disk) = super::disks::parse_disk(guest.kind, key, &text(value)) else {
                continue;
            };
            let Some((storage, name)) = disk.volume.split_once(':') else {
                continue;
            };
            let Some(storage_config) = storages.get(storage) else {
                continue;
            };
            if disk.cdrom || !super::disks::owned_by(&disk.volume, guest.vmid) {
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

// ----------------------------------------------------------------------------------------------
// Uploads.

/// Whether a request body is `multipart/form-data`.
pub fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Largest total size of the text fields of a multipart body.
const MAX_MULTIPART_TEXT: usize = 64 * 1024;

/// Reads a `multipart/form-data` body like `PVE::HTTPServer` does for uploads: text fields become
/// parameters, the file part is streamed and counted, its name becomes `filename` and its size
/// travels in `tmpfilename` (`/var/tmp/pveupload-<16 hex random><16 hex size>`).
pub async fn read_multipart(headers: &HeaderMap, body: Body) -> Result<Params, AppError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .ok_or_else(|| AppError::bad_request("missing Content-Type\n"))?;
    let request = http::Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .map_err(|_| AppError::bad_request("invalid multipart request\n"))?;
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|error| AppError::bad_request(format!("invalid multipart body: {error}\n")))?;
    let bad = |error: axum::extract::multipart::MultipartError| {
        AppError::bad_request(format!("invalid multipart body: {error}\n"))
    };
    let mut params = Params::new();
    let mut text_bytes = 0usize;
    let mut file: Option<(String, u64)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if let Some(file_name) = field.file_name().map(str::to_owned) {
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(bad)? {
                size += chunk.len() as u64;
            }
            file = Some((file_name, size));
            continue;
        }
        let value = field.text().await.map_err(bad)?;
        text_bytes += name.len() + value.len();
        if text_bytes > MAX_MULTIPART_TEXT {
            return Err(AppError::status(
                http::StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large\n",
            ));
        }
        if !name.is_empty() {
            params.insert(name, Value::String(value));
        }
    }
    if let Some((file_name, size)) = file {
        params
            .entry("filename")
            .or_insert_with(|| Value::String(file_name.clone()));
        let random = crate::generate::seed(&[&file_name, &crate::auth::now().to_string()]);
        params.insert(
            "tmpfilename".to_owned(),
            Value::String(format!("/var/tmp/pveupload-{random:016x}{size:016x}")),
        );
    }
    Ok(params)
}

fn upload_size(call: &Call<'_>) -> u64 {
    arg_text(call, "tmpfilename")
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
pub fn upload(_state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<DomainPlan, AppError> {
    let (node, storage, config) = storage_and_node(tables, call)?;
    let content = arg_text(call, "content").unwrap_or_default();
    let filename = arg_text(call, "filename").unwrap_or_default();
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
    Ok(DomainPlan {
        at_end: vec![put_volume(tables, node, &volume)?],
        log: vec![
            format!(
                "starting file import from: {}",
                arg_text(call, "tmpfilename").unwrap_or_default()
            ),
            format!("target node: {node}"),
            format!("target file: {}", volume_info_path(&config, dir, &filename)),
            format!("file size is: {}", volume.size),
            "command 'cp' finished".to_owned(),
            format!("finished file import successfully"),
        ],
        ..DomainPlan::default()
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

// ----------------------------------------------------------------------------------------------
// Pools.

fn pool_id(call: &Call<'_>) -> String {
    param(call, "poolid")
        .map(str::to_owned)
        .or_else(|| arg_text(call, "poolid"))
        .unwrap_or_default()
}

fn pool_row<'t>(tables: &'t Tables, poolid: &str) -> Result<&'t Value, AppError> {
    tables
        .get(&format!("/pools/{poolid}"))
        .ok_or_else(|| AppError::die(format!("pool '{poolid}' does not exist\n")))
}

fn pool_list<'v>(row: &'v Value, key: &str) -> Vec<&'v Value> {
    row.get(key)
        .and_then(Value::as_array)
        .map(|items| items.iter().collect())
        .unwrap_or_default()
}

/// VM ID -> pool, for `/cluster/resources` (pools are few; one pass over them).
pub fn pool_of_guests(tables: &Tables) -> HashMap<u64, String> {
    let mut map = HashMap::new();
    for path in tables.members("/pools") {
        let Some(row) = tables.get(path) else {
            continue;
        };
        for vmid in pool_list(row, "_vms") {
            if let Some(vmid) = vmid.as_u64() {
                map.insert(vmid, last_segment(path).to_owned());
            }
        }
    }
    map
}

fn member_entries(tables: &Tables, row: &Value, type_filter: Option<&str>) -> Vec<Value> {
    let mut members = Vec::new();
    for vmid in pool_list(row, "_vms") {
        let Some(item) = vmid
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .and_then(|v| tables.guests.get(&v))
        else {
            continue;
        };
        let Some(guest) = Guest::from_item(item) else {
            continue;
        };
        let kind = guest.kind.segment();
        if type_filter.is_some_and(|wanted| wanted != kind) {
            continue;
        }
        let config = tables.get(item).cloned().unwrap_or_default();
        let name_key = if guest.kind == Kind::Lxc {
            "hostname"
        } else {
            "name"
        };
        let mut entry = json!({
            "id": format!("{kind}/{}", guest.vmid), "node": guest.node, "type": kind,
            "vmid": guest.vmid, "status": if guest.power(tables).is_running() { "running" } else { "stopped" },
        });
        if let Some(name) = config.get(name_key) {
            entry["name"] = name.clone();
        }
        members.push(entry);
    }
    if type_filter.is_none_or(|wanted| wanted == "storage") {
        for storage in pool_list(row, "_storage") {
            let storage = text(storage);
            let Ok(config) = storage_config(tables, &storage) else {
                continue;
            };
            for node_path in tables.members("/nodes") {
                let node = last_segment(node_path);
                let on_node = config
                    .get("nodes")
                    .map(text)
                    .is_none_or(|nodes| split_list(&nodes).any(|n| n == node));
                if on_node {
                    members.push(json!({
                        "id": format!("storage/{node}/{storage}"), "node": node,
                        "storage": storage, "type": "storage",
                    }));
                }
            }
        }
    }
    members
}

/// `GET /pools` (9.x: `poolid` and `type` filters add the members).
pub fn list_pools(tables: &Tables, call: &Call<'_>) -> Result<Value, AppError> {
    let wanted = arg_text(call, "poolid");
    let type_filter = arg_text(call, "type");
    if let Some(poolid) = &wanted {
        pool_row(tables, poolid)?;
    }
    let mut entries = Vec::new();
    for path in tables.members("/pools") {
        let poolid = last_segment(path);
        if wanted.as_deref().is_some_and(|w| w != poolid) {
            continue;
        }
        let row = tables.get(path).cloned().unwrap_or_default();
        let mut entry = json!({"poolid": poolid});
        if let Some(comment) = row.get("comment") {
            entry["comment"] = comment.clone();
        }
        if wanted.is_some() {
            entry["members"] = json!(member_entries(tables, &row, type_filter.as_deref()));
        }
        entries.push(entry);
    }
    Ok(Value::Array(entries))
}

/// `GET /pools/{poolid}`.
pub fn get_pool(tables: &Tables, call: &Call<'_>) -> Result<Value, AppError> {
    let poolid = pool_id(call);
    let row = pool_row(tables, &poolid)?;
    let mut reply = json!({
        "members": member_entries(tables, row, arg_text(call, "type").as_deref()),
    });
    if let Some(comment) = row.get("comment") {
        reply["comment"] = comment.clone();
    }
    Ok(reply)
}

/// `PUT /pools/{poolid}` and `PUT /pools?poolid=`: comment, members in or out (`update_pool`
/// in pve-access-control `src/PVE/API2/Pool.pm`).
pub fn update_pool(tables: &Tables, call: &Call<'_>) -> Result<DomainPlan, AppError> {
    let poolid = pool_id(call);
    let mut row = pool_row(tables, &poolid)?.clone();
    let delete = arg_bool(call, "delete");
    let allow_move = arg_bool(call, "allow-move");
    let mut plan = DomainPlan::default();
    if let Some(comment) = arg_text(call, "comment") {
        row["comment"] = json!(comment);
    }
    let mut vms: Vec<u64> = pool_list(&row, "_vms")
        .into_iter()
        .filter_map(Value::as_u64)
        .collect();
    let owners = pool_of_guests(tables);
    let mut moved_from: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for vmid_text in arg_text(call, "vms")
        .map(|list| split_list(&list).map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let vmid: u64 = vmid_text
            .parse()
            .map_err(|_| AppError::param("vms", format!("invalid VM ID '{vmid_text}'")))?;
        if delete {
            if !vms.contains(&vmid) {
                return Err(AppError::die(format!("VM {vmid} is not a pool member\n")));
            }
            vms.retain(|v| *v != vmid);
            continue;
        }
        if u32::try_from(vmid)
            .ok()
            .is_none_or(|v| !tables.guests.contains_key(&v))
        {
            return Err(AppError::die(format!("VM {vmid} does not exist\n")));
        }
        if vms.contains(&vmid) {
            return Err(AppError::die(format!(
                "VM {vmid} is already a pool member\n"
            )));
        }
        if let Some(other) = owners.get(&vmid) {
            if !allow_move {
                return Err(AppError::die(format!(
                    "VM {vmid} belongs already to pool '{other}' and 'allow-move' is not set\n"
                )));
            }
            moved_from.entry(other.clone()).or_default().push(vmid);
        }
        vms.push(vmid);
    }
    let mut storages: Vec<String> = pool_list(&row, "_storage").into_iter().map(text).collect();
    for storage in arg_text(call, "storage")
        .map(|list| split_list(&list).map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if delete {
            if !storages.contains(&storage) {
                return Err(AppError::die(format!(
                    "Storage '{storage}' is not a pool member\n"
                )));
            }
            storages.retain(|s| *s != storage);
        } else {
            storage_config(tables, &storage)?;
            if storages.contains(&storage) {
                return Err(AppError::die(format!(
                    "Storage '{storage}' is already a pool member\n"
                )));
            }
            storages.push(storage);
        }
    }
    for (other, moved) in moved_from {
        let path = format!("/pools/{other}");
        let mut other_row = tables.get(&path).cloned().unwrap_or_default();
        let remaining: Vec<u64> = pool_list(&other_row, "_vms")
            .into_iter()
            .filter_map(Value::as_u64)
            .filter(|v| !moved.contains(v))
            .collect();
        other_row["_vms"] = json!(remaining);
        plan.now.push(Change::Put {
            path,
            collection: Some("/pools".to_owned()),
            value: other_row,
        });
    }
    row["_vms"] = json!(vms);
    row["_storage"] = json!(storages);
    plan.now.push(Change::Put {
        path: format!("/pools/{poolid}"),
        collection: Some("/pools".to_owned()),
        value: row,
    });
    Ok(plan)
}

/// `DELETE /pools/{poolid}` and `DELETE /pools?poolid=`: only empty pools.
pub fn delete_pool(tables: &Tables, call: &Call<'_>) -> Result<DomainPlan, AppError> {
    let poolid = pool_id(call);
    let row = pool_row(tables, &poolid)?;
    if !pool_list(row, "_vms").is_empty() || !pool_list(row, "_storage").is_empty() {
        return Err(AppError::die(format!("pool '{poolid}' is not empty\n")));
    }
    Ok(DomainPlan {
        now: vec![Change::Delete {
            path: format!("/pools/{poolid}"),
        }],
        ..DomainPlan::default()
    })
}

/// Changes that drop a VM ID from every pool (when the guest is destroyed).
pub fn remove_from_pools(tables: &Tables, vmid: u32) -> Vec<Change> {
    let mut changes = Vec::new();
    for path in tables.members("/pools") {
        let Some(row) = tables.get(path) else {
            continue;
        };
        let vms: Vec<u64> = pool_list(row, "_vms")
            .into_iter()
            .filter_map(Value::as_u64)
            .collect();
        if vms.contains(&u64::from(vmid)) {
            let mut row = row.clone();
            row["_vms"] = json!(
                vms.into_iter()
                    .filter(|v| *v != u64::from(vmid))
                    .collect::<Vec<_>>()
            );
            changes.push(Change::Put {
                path: path.clone(),
                collection: Some("/pools".to_owned()),
                value: row,
            });
        }
    }
    changes
}

/// The change that adds a VM to a pool (create and clone with `pool=`).
pub fn add_to_pool(tables: &Tables, poolid: &str, vmid: u32) -> Result<Change, AppError> {
    let mut row = pool_row(tables, poolid)?.clone();
    let mut vms: Vec<u64> = pool_list(&row, "_vms")
        .into_iter()
        .filter_map(Value::as_u64)
        .collect();
    if !vms.contains(&u64::from(vmid)) {
        vms.push(u64::from(vmid));
    }
    row["_vms"] = json!(vms);
    Ok(Change::Put {
        path: format!("/pools/{poolid}"),
        collection: Some("/pools".to_owned()),
        value: row,
    })
}

// ----------------------------------------------------------------------------------------------
// Backups.

/// `YYYY_MM_DD-hh_mm_ss` in UTC, as in vzdump archive names.
pub fn backup_timestamp(epoch: u64) -> String {
    let days = i64::try_from(epoch / 86_400).unwrap_or(0);
    let seconds = epoch % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}_{month:02}_{day:02}-{:02}_{:02}_{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// `POST /nodes/{node}/vzdump`: backs up the selected local guests to a backup storage.
pub fn vzdump(_state: &AppState, tables: &Tables, call: &Call<'_>) -> Result<DomainPlan, AppError> {
    let node = param(call, "node").unwrap_or_default();
    let storage = arg_text(call, "storage").unwrap_or_else(|| "local".to_owned());
    let config = storage_config(tables, &storage)?;
    if !supports(&config, "backup") {
        return Err(AppError::param(
            "storage",
            format!("storage '{storage}' does not support backups"),
        ));
    }
    let excluded: Vec<u32> = arg_text(call, "exclude")
        .map(|list| split_list(&list).filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_default();
    let mut selected: Vec<u32> = Vec::new();
    if arg_bool(call, "all") {
        selected.extend(
            tables
                .guests
                .iter()
                .filter(|(_, item)| Guest::from_item(item).is_some_and(|g| g.node == node))
                .map(|(vmid, _)| *vmid),
        );
    } else if let Some(poolid) = arg_text(call, "pool") {
        let row = pool_row(tables, &poolid)?;
        selected.extend(
            pool_list(row, "_vms")
                .into_iter()
                .filter_map(Value::as_u64)
                .filter_map(|v| u32::try_from(v).ok()),
        );
    } else if let Some(list) = arg_text(call, "vmid") {
        for vmid in split_list(&list) {
            selected.push(
                vmid.parse()
                    .map_err(|_| AppError::param("vmid", format!("invalid VM ID '{vmid}'")))?,
            );
        }
    } else {
        return Err(AppError::param(
            "vmid",
            "property is missing and it is not optional",
        ));
    }
    selected.retain(|vmid| !excluded.contains(vmid));
    let compress = arg_text(call, "compress").unwrap_or_else(|| "0".to_owned());
    let extension = match compress.as_str() {
        "zstd" => ".zst",
        "gzip" => ".gz",
        "1" | "lzo" => ".lzo",
        _ => "",
    };
    let now = crate::auth::now();
    let stamp = backup_timestamp(now);
    let mut plan = DomainPlan::default();
    let mut errors = false;
    for vmid in selected {
        let Some(item) = tables.guests.get(&vmid) else {
            plan.log.push(format!(
                "ERROR: Backup of VM {vmid} failed - unable to find VM {vmid}"
            ));
            errors = true;
            continue;
        };
        let Some(guest) = Guest::from_item(item) else {
            continue;
        };
        if guest.node != node {
            plan.log.push(format!("skip external VMs: {vmid}"));
            continue;
        }
        let mut guest_config = guest.config(tables)?;
        if let Err(message) = check_lock(guest.kind, &guest_config, call) {
            plan.log.push(format!(
                "ERROR: Backup of VM {vmid} failed - {}",
                message.trim_end()
            ));
            errors = true;
            continue;
        }
        let (kind, archive) = match guest.kind {
            Kind::Qemu => ("qemu", "vma"),
            Kind::Lxc => ("lxc", "tar"),
        };
        let format = format!("{archive}{extension}");
        let volid = format!("{storage}:backup/vzdump-{kind}-{vmid}-{stamp}.{format}");
        let disk_bytes: u64 = super::disks::config_volumes(guest.kind, &guest_config)
            .iter()
            .filter_map(|volid| volume(tables, node, volid))
            .map(|v| v.size)
            .sum();
        let volume = Volume {
            volid: volid.clone(),
            format: format.clone(),
            size: (disk_bytes / 8).max(4 << 20),
            content: "backup".to_owned(),
            vmid: Some(vmid),
        };
        plan.log
            .push(format!("INFO: Starting Backup of VM {vmid} ({kind})"));
        plan.log
            .push(format!("INFO: creating vzdump archive '{volid}'"));
        plan.log
            .push(format!("INFO: Finished Backup of VM {vmid} (00:00:01)"));
        let mut put = put_volume(tables, node, &volume)?;
        if let (Change::Put { value, .. }, Some(notes)) = (
            &mut put,
            guest_config.get(if guest.kind == Kind::Lxc {
                "hostname"
            } else {
                "name"
            }),
        ) {
            value["notes"] = json!(text(notes));
            value["ctime"] = json!(now);
        }
        plan.at_end.push(put);
        // The guest is locked while its backup runs (`lock: backup`).
        let mut locked = guest_config.clone();
        locked.insert("lock".to_owned(), json!("backup"));
        plan.now
            .push(super::guests::put_config(tables, &guest, locked));
        guest_config.remove("lock");
        plan.at_end
            .push(super::guests::put_config(tables, &guest, guest_config));
    }
    if errors {
        plan.task_error = Some("job errors".to_owned());
        // Backups that succeeded are kept; failed guests were never locked.
        let kept = std::mem::take(&mut plan.at_end);
        plan.now.extend(kept);
        plan.now.retain(|change| !is_backup_lock(change));
    }
    Ok(plan)
}

fn is_backup_lock(change: &Change) -> bool {
    matches!(change, Change::Put { value, .. } if value.get("lock").and_then(Value::as_str) == Some("backup"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(backup_timestamp(0), "1970_01_01-00_00_00");
        assert_eq!(backup_timestamp(1_709_251_199), "2024_02_29-23_59_59");
        assert_eq!(backup_timestamp(1_735_689_600), "2025_01_01-00_00_00");
    }

    #[test]
    fn volume_ids_are_escaped_into_one_segment() {
        assert_eq!(escape("local:iso/a%b.iso"), "local:iso%2Fa%25b.iso");
    }
}
