//! SDN prefix-list entries and route maps (9.2): `/cluster/sdn/prefix-lists/{id}/entries[/…]`
//! and `/cluster/sdn/route-maps/…`.
//!
//! Proxmox implements these in pve-network's Rust side, whose source is not in our mirror; the
//! shapes follow the 9.2 schema, the rules and messages are the mock's own (docs/mock.md, "SDN
//! prefix lists and route maps"). The prefix lists themselves (`/cluster/sdn/prefix-lists[/{id}]`)
//! are a generic collection; their entries live in the list's row, as the `entries` property
//! strings that `POST`/`PUT /cluster/sdn/prefix-lists` take, so both views agree. A route map
//! exists while it has entries: each entry is a row
//! `/cluster/sdn/route-maps/entries/{route-map-id}/entry/{order}`.

use serde_json::{Map, Value, json};

use super::{Call, Plan, Tx, text};
use crate::api::last_segment;
use crate::error::AppError;
use crate::store::{Change, Tables};

const PREFIX_LISTS: &str = "/cluster/sdn/prefix-lists";
const ROUTE_MAPS: &str = "/cluster/sdn/route-maps/entries";

/// Keys of a prefix-list entry, in the order they are printed.
const ENTRY_KEYS: &[&str] = &["seq", "action", "prefix", "ge", "le"];

// ----------------------------------------------------------------------------------------------
// Prefix-list entries.

fn prefix_list(tables: &Tables, id: &str) -> Result<Value, AppError> {
    tables
        .get(&format!("{PREFIX_LISTS}/{id}"))
        .ok_or_else(|| AppError::die(format!("prefix list '{id}' does not exist\n")))
}

/// An entry property string (`seq=10,action=permit,prefix=10.0.0.0/8`) as an object, numbers
/// as numbers.
fn parse_entry(entry: &str) -> Map<String, Value> {
    let mut object = Map::new();
    for part in entry.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            continue;
        };
        let value = match (key, value.parse::<u64>()) {
            ("seq" | "ge" | "le", Ok(number)) => json!(number),
            _ => json!(value),
        };
        object.insert(key.to_owned(), value);
    }
    object
}

fn print_entry(entry: &Map<String, Value>) -> String {
    ENTRY_KEYS
        .iter()
        .filter_map(|key| {
            entry
                .get(*key)
                .map(|value| format!("{key}={}", text(value)))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The entries of a prefix list, from its row.
fn entries_of(row: &Value) -> Vec<Map<String, Value>> {
    row.get("entries")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|entry| parse_entry(&text(entry)))
                .collect()
        })
        .unwrap_or_default()
}

fn seq_of(entry: &Map<String, Value>) -> Option<u64> {
    entry.get("seq").and_then(Value::as_u64)
}

/// The `{url_seq}` of the path.
fn url_seq(call: &Call<'_>) -> Result<u64, AppError> {
    let raw = call.param("url_seq").unwrap_or_default();
    raw.parse()
        .map_err(|_| AppError::param("url_seq", format!("invalid sequence number '{raw}'")))
}

/// `ge`/`le` against the prefix length: `len < ge <= le <= max` (FRR's rule for prefix lists).
fn check_bounds(entry: &Map<String, Value>) -> Result<(), AppError> {
    let prefix = entry.get("prefix").map(text).unwrap_or_default();
    let Some((address, length)) = prefix.rsplit_once('/') else {
        return Ok(());
    };
    let length: u64 = length.parse().unwrap_or(0);
    let max = if address.contains(':') { 128 } else { 32 };
    let ge = entry.get("ge").and_then(Value::as_u64);
    let le = entry.get("le").and_then(Value::as_u64);
    if let Some(ge) = ge
        && (ge <= length || ge > max)
    {
        return Err(AppError::param(
            "ge",
            format!("must be larger than the prefix length {length} and at most {max}"),
        ));
    }
    if let Some(le) = le
        && (le < ge.unwrap_or(length + 1).max(length) || le > max)
    {
        return Err(AppError::param(
            "le",
            format!("must be at least 'ge' (or the prefix length {length}) and at most {max}"),
        ));
    }
    Ok(())
}

/// Writes a prefix list's entries back into its row, sorted by `seq`.
fn put_entries(id: &str, row: &Value, mut entries: Vec<Map<String, Value>>) -> Change {
    entries.sort_by_key(|entry| seq_of(entry).unwrap_or(0));
    let mut row = row.clone();
    row["entries"] = json!(entries.iter().map(print_entry).collect::<Vec<_>>());
    Change::Put {
        path: format!("{PREFIX_LISTS}/{id}"),
        collection: Some(PREFIX_LISTS.to_owned()),
        value: row,
    }
}

/// The entry fields of a call's arguments.
fn entry_args(call: &Call<'_>) -> Map<String, Value> {
    let mut entry = Map::new();
    for key in ENTRY_KEYS {
        if let Some(value) = call.args.get(*key).filter(|value| !value.is_null()) {
            entry.insert((*key).to_owned(), value.clone());
        }
    }
    entry
}

/// `GET /cluster/sdn/prefix-lists/{id}/entries`.
pub(crate) fn list_prefix_entries(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let id = call.param("id").unwrap_or_default();
    let row = &prefix_list(tx.tables, id)?;
    Ok(Value::Array(
        entries_of(row).into_iter().map(Value::Object).collect(),
    ))
}

/// `POST /cluster/sdn/prefix-lists/{id}/entries`: without `seq`, the next multiple of 5 after
/// the highest (FRR's own numbering).
pub(crate) fn create_prefix_entry(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let id = call.param("id").unwrap_or_default();
    let row = &prefix_list(tx.tables, id)?;
    let mut entries = entries_of(row);
    let mut entry = entry_args(call);
    let seq = match entry.get("seq").and_then(Value::as_u64) {
        Some(seq) => seq,
        None => {
            let highest = entries.iter().filter_map(seq_of).max().unwrap_or(0);
            (highest / 5 + 1) * 5
        }
    };
    if entries.iter().any(|other| seq_of(other) == Some(seq)) {
        return Err(AppError::param(
            "seq",
            format!("prefix list '{id}' already has an entry with sequence number {seq}"),
        ));
    }
    entry.insert("seq".to_owned(), json!(seq));
    check_bounds(&entry)?;
    entries.push(entry);
    Ok(Plan::changes(
        vec![put_entries(id, row, entries)],
        Value::Null,
    ))
}

fn find_entry(id: &str, seq: u64, entries: &[Map<String, Value>]) -> Result<usize, AppError> {
    entries
        .iter()
        .position(|entry| seq_of(entry) == Some(seq))
        .ok_or_else(|| {
            AppError::die(format!(
                "prefix list '{id}' has no entry with sequence number {seq}\n"
            ))
        })
}

/// `GET /cluster/sdn/prefix-lists/{id}/entries/{url_seq}`.
pub(crate) fn get_prefix_entry(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let id = call.param("id").unwrap_or_default();
    let seq = url_seq(call)?;
    let entries = entries_of(&prefix_list(tx.tables, id)?);
    let at = find_entry(id, seq, &entries)?;
    Ok(Value::Object(entries[at].clone()))
}

/// `PUT /cluster/sdn/prefix-lists/{id}/entries/{url_seq}`: `delete` may clear `le`, `ge` and
/// `seq` (a cleared `seq` keeps the entry's number); a new `seq` must be free.
pub(crate) fn update_prefix_entry(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let id = call.param("id").unwrap_or_default();
    let seq = url_seq(call)?;
    let row = &prefix_list(tx.tables, id)?;
    let mut entries = entries_of(row);
    let at = find_entry(id, seq, &entries)?;
    let mut entry = entries[at].clone();
    for key in delete_list(call) {
        if key != "seq" {
            entry.remove(&key);
        }
    }
    entry.extend(entry_args(call));
    if let Some(new_seq) = seq_of(&entry)
        && new_seq != seq
        && entries.iter().any(|other| seq_of(other) == Some(new_seq))
    {
        return Err(AppError::param(
            "seq",
            format!("prefix list '{id}' already has an entry with sequence number {new_seq}"),
        ));
    }
    check_bounds(&entry)?;
    entries[at] = entry;
    Ok(Plan::changes(
        vec![put_entries(id, row, entries)],
        Value::Null,
    ))
}

/// `DELETE /cluster/sdn/prefix-lists/{id}/entries/{url_seq}`.
pub(crate) fn delete_prefix_entry(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let id = call.param("id").unwrap_or_default();
    let seq = url_seq(call)?;
    let row = &prefix_list(tx.tables, id)?;
    let mut entries = entries_of(row);
    let at = find_entry(id, seq, &entries)?;
    entries.remove(at);
    Ok(Plan::changes(
        vec![put_entries(id, row, entries)],
        Value::Null,
    ))
}

/// The `delete` argument: an array (9.2's SDN schema) or a comma list.
fn delete_list(call: &Call<'_>) -> Vec<String> {
    match call.args.get("delete") {
        Some(Value::Array(keys)) => keys.iter().map(text).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => crate::schema::split_list(&text(other))
            .map(str::to_owned)
            .collect(),
    }
}

// ----------------------------------------------------------------------------------------------
// Route maps.

/// The route-map entry keys stored besides `route-map-id` and `order`.
const ROUTE_ENTRY_KEYS: &[&str] = &["action", "call", "exit-action", "match", "set"];

fn route_map_entries<'t>(tables: &'t Tables, map_id: &str) -> Vec<(&'t str, Value)> {
    let collection = format!("{ROUTE_MAPS}/{map_id}/entry");
    let mut entries: Vec<(&str, Value)> = tables
        .members(&collection)
        .filter_map(|path| tables.get(path).map(|row| (path, row)))
        .collect();
    entries.sort_by_key(|(_, row)| row.get("order").and_then(Value::as_u64).unwrap_or(0));
    entries
}

/// Every route map ID that has entries, sorted.
fn route_map_ids(tables: &Tables) -> Vec<String> {
    let mut ids: Vec<String> = tables
        .members(ROUTE_MAPS)
        .map(|path| last_segment(path).to_owned())
        .filter(|id| !route_map_entries(tables, id).is_empty())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `GET /cluster/sdn/route-maps`.
pub(crate) fn list_route_maps(_call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    Ok(Value::Array(
        route_map_ids(tx.tables)
            .into_iter()
            .map(|id| json!({"id": id}))
            .collect(),
    ))
}

/// `GET /cluster/sdn/route-maps/entries`: every entry of every route map.
pub(crate) fn list_route_map_entries(_call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let mut all = Vec::new();
    for id in route_map_ids(tx.tables) {
        all.extend(
            route_map_entries(tx.tables, &id)
                .into_iter()
                .map(|(_, row)| row.clone()),
        );
    }
    Ok(Value::Array(all))
}

/// `GET /cluster/sdn/route-maps/entries/{route-map-id}`.
pub(crate) fn route_map(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let id = call.param("route-map-id").unwrap_or_default();
    let entries = route_map_entries(tx.tables, id);
    if entries.is_empty() {
        return Err(AppError::die(format!("route map '{id}' does not exist\n")));
    }
    Ok(Value::Array(
        entries.into_iter().map(|(_, row)| row.clone()).collect(),
    ))
}

fn route_entry_path(map_id: &str, order: &str) -> String {
    format!("{ROUTE_MAPS}/{map_id}/entry/{order}")
}

fn route_entry_row(map_id: &str, order: u64, fields: Map<String, Value>) -> Vec<Change> {
    let mut row = Map::new();
    row.insert("route-map-id".to_owned(), json!(map_id));
    row.insert("order".to_owned(), json!(order));
    row.extend(fields);
    vec![
        // The map itself, so that it is listed as a member of the entries collection.
        Change::Put {
            path: format!("{ROUTE_MAPS}/{map_id}"),
            collection: Some(ROUTE_MAPS.to_owned()),
            value: json!({"id": map_id}),
        },
        Change::Put {
            path: route_entry_path(map_id, &order.to_string()),
            collection: Some(format!("{ROUTE_MAPS}/{map_id}/entry")),
            value: Value::Object(row),
        },
    ]
}

fn route_entry_args(call: &Call<'_>) -> Map<String, Value> {
    let mut fields = Map::new();
    for key in ROUTE_ENTRY_KEYS {
        if let Some(value) = call.args.get(*key).filter(|value| !value.is_null()) {
            fields.insert((*key).to_owned(), value.clone());
        }
    }
    fields
}

/// A `call` must name another route map that exists.
fn check_call(tables: &Tables, map_id: &str, fields: &Map<String, Value>) -> Result<(), AppError> {
    let Some(called) = fields.get("call").map(text) else {
        return Ok(());
    };
    if called == map_id {
        return Err(AppError::param("call", "a route map cannot call itself"));
    }
    if route_map_entries(tables, &called).is_empty() {
        return Err(AppError::param(
            "call",
            format!("route map '{called}' does not exist"),
        ));
    }
    Ok(())
}

/// `POST /cluster/sdn/route-maps/entries`.
pub(crate) fn create_route_map_entry(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let map_id = call.arg_text("route-map-id").unwrap_or_default();
    let order = call
        .args
        .get("order")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    if tx
        .tables
        .get(&route_entry_path(&map_id, &order.to_string()))
        .is_some()
    {
        return Err(AppError::param(
            "order",
            format!("route map '{map_id}' already has an entry with order {order}"),
        ));
    }
    let fields = route_entry_args(call);
    check_call(tx.tables, &map_id, &fields)?;
    Ok(Plan::changes(
        route_entry_row(&map_id, order, fields),
        Value::Null,
    ))
}

fn existing_route_entry(call: &Call<'_>, tables: &Tables) -> Result<Value, AppError> {
    let map_id = call.param("route-map-id").unwrap_or_default();
    let order = call.param("order").unwrap_or_default();
    tables.get(&route_entry_path(map_id, order)).ok_or_else(|| {
        AppError::die(format!(
            "route map '{map_id}' has no entry with order {order}\n"
        ))
    })
}

/// `GET /cluster/sdn/route-maps/entries/{route-map-id}/entry/{order}`.
pub(crate) fn get_route_map_entry(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    existing_route_entry(call, tx.tables)
}

/// `PUT /cluster/sdn/route-maps/entries/{route-map-id}/entry/{order}`.
pub(crate) fn update_route_map_entry(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let Value::Object(current) = existing_route_entry(call, tx.tables)? else {
        return Err(AppError::die("route map entry is not an object\n"));
    };
    let map_id = call.param("route-map-id").unwrap_or_default();
    let mut row = current.clone();
    for key in delete_list(call) {
        row.remove(&key);
    }
    let fields = route_entry_args(call);
    check_call(tx.tables, map_id, &fields)?;
    row.extend(fields);
    let order = row.get("order").and_then(Value::as_u64).unwrap_or_default();
    Ok(Plan::changes(
        vec![Change::Put {
            path: route_entry_path(map_id, &order.to_string()),
            collection: Some(format!("{ROUTE_MAPS}/{map_id}/entry")),
            value: Value::Object(row),
        }],
        Value::Null,
    ))
}

/// `DELETE /cluster/sdn/route-maps/entries/{route-map-id}/entry/{order}`; the map goes with its
/// last entry.
pub(crate) fn delete_route_map_entry(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    existing_route_entry(call, tx.tables)?;
    let map_id = call.param("route-map-id").unwrap_or_default();
    let order = call.param("order").unwrap_or_default();
    let mut changes = vec![Change::Delete {
        path: route_entry_path(map_id, order),
    }];
    if route_map_entries(tx.tables, map_id).len() <= 1 {
        changes.push(Change::Delete {
            path: format!("{ROUTE_MAPS}/{map_id}"),
        });
    }
    Ok(Plan::changes(changes, Value::Null))
}
