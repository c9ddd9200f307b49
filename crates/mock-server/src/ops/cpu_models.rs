//! Custom CPU models (9.2): `/cluster/qemu/custom-cpu-models[/{cputype}]`, pve-manager
//! `PVE/API2/Cluster/Qemu/CustomCPUModels.pm` over qemu-server's `cpu-models.conf`
//! (`PVE::QemuServer::CPUConfig`).
//!
//! A model is stored under its name without the `custom-` prefix (the section ID of
//! `cpu-models.conf`), with `cputype` set to `custom-<name>` as `parse_section_header` does; every
//! call accepts the name with or without the prefix. The digest is the whole file's, so it
//! changes when any model changes.

use serde_json::{Map, Value, json};

use super::guest::{check_digest, config_digest};
use super::{Call, Plan, Tx};
use crate::api::last_segment;
use crate::error::AppError;
use crate::schema::split_list;
use crate::store::{Change, Tables};

/// The collection of stored models.
const MODELS: &str = "/cluster/qemu/custom-cpu-models";

/// Privileges that let a user see a model in the list (`$can_see_mapping_privs`).
const SEE_PRIVS: &[&str] = &["Mapping.Modify", "Mapping.Use", "Mapping.Audit"];

/// The model name: `cputype` without its `custom-` prefix.
fn name_of(call: &Call<'_>) -> String {
    let cputype = call
        .param("cputype")
        .map(str::to_owned)
        .or_else(|| call.arg_text("cputype"))
        .unwrap_or_default();
    cputype
        .strip_prefix("custom-")
        .unwrap_or(&cputype)
        .to_owned()
}

/// `pve_verify_configid`, as the create and update handlers call it on the name.
fn verify_configid(name: &str) -> Result<(), AppError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(AppError::die(format!(
            "invalid configuration ID '{name}'\n"
        )))
    }
}

/// The digest of `cpu-models.conf`: every model, by name.
fn file_digest(tables: &Tables) -> String {
    let mut file = Map::new();
    let mut names: Vec<&str> = tables.members(MODELS).collect();
    names.sort();
    for path in names {
        if let Some(row) = tables.get(path) {
            file.insert(last_segment(path).to_owned(), json!(row.to_string()));
        }
    }
    config_digest(&file, &[])
}

fn model_row(tables: &Tables, name: &str) -> Option<Value> {
    tables.get(&format!("{MODELS}/{name}"))
}

/// The model's properties from the arguments (`cputype` set to `custom-<name>`).
fn properties(call: &Call<'_>, name: &str) -> Map<String, Value> {
    let mut row = Map::new();
    for (key, value) in call.args {
        if !value.is_null() && !matches!(key.as_str(), "cputype" | "digest" | "delete") {
            row.insert(key.clone(), value.clone());
        }
    }
    row.insert("cputype".to_owned(), json!(format!("custom-{name}")));
    row
}

fn put(name: &str, row: Map<String, Value>) -> Change {
    Change::Put {
        path: format!("{MODELS}/{name}"),
        collection: Some(MODELS.to_owned()),
        value: Value::Object(row),
    }
}

/// `GET /cluster/qemu/custom-cpu-models`: the models the caller may see, by name, each with
/// the file's digest.
pub(crate) fn list(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let rpc = tx.rpc(call);
    let digest = file_digest(tx.tables);
    let mut paths: Vec<&str> = tx.tables.members(MODELS).collect();
    paths.sort();
    let mut entries = Vec::new();
    for path in paths {
        let name = last_segment(path);
        let acl_path = format!("/mapping/cpu/{name}");
        if !SEE_PRIVS
            .iter()
            .any(|privilege| rpc.allows(&acl_path, &[privilege]))
        {
            continue;
        }
        let mut entry = tx.tables.get(path).unwrap_or_else(|| json!({}));
        entry["digest"] = json!(digest);
        entries.push(entry);
    }
    Ok(Value::Array(entries))
}

/// `GET /cluster/qemu/custom-cpu-models/{cputype}` (`get_custom_model`).
pub(crate) fn get(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let name = name_of(call);
    let mut model = model_row(tx.tables, &name)
        .ok_or_else(|| AppError::die(format!("Custom cputype '{name}' not found\n")))?;
    model["digest"] = json!(file_digest(tx.tables));
    Ok(model)
}

/// `POST /cluster/qemu/custom-cpu-models`.
pub(crate) fn create(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let name = name_of(call);
    verify_configid(&name)?;
    if model_row(tx.tables, &name).is_some() {
        return Err(AppError::die(format!(
            "custom CPU model '{name}' already exists\n"
        )));
    }
    Ok(Plan::changes(
        vec![put(&name, properties(call, &name))],
        Value::Null,
    ))
}

/// `PUT /cluster/qemu/custom-cpu-models/{cputype}`: `delete` may not name `cputype` or
/// `reported-model`; a given digest must be the file's.
pub(crate) fn update(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let delete: Vec<String> = call
        .arg_text("delete")
        .map(|list| split_list(&list).map(str::to_owned).collect())
        .unwrap_or_default();
    for fixed in ["cputype", "reported-model"] {
        if delete.iter().any(|key| key == fixed) {
            return Err(AppError::die(format!("cannot delete '{fixed}'\n")));
        }
    }
    let name = name_of(call);
    verify_configid(&name)?;
    check_digest(call, &file_digest(tx.tables)).map_err(AppError::die)?;
    let Some(Value::Object(current)) = model_row(tx.tables, &name) else {
        return Err(AppError::die(format!(
            "custom CPU model '{name}' does not exist\n"
        )));
    };
    let mut row = current;
    for key in &delete {
        row.remove(key);
    }
    row.extend(properties(call, &name));
    Ok(Plan::changes(vec![put(&name, row)], Value::Null))
}

/// `DELETE /cluster/qemu/custom-cpu-models/{cputype}`.
pub(crate) fn delete(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let name = name_of(call);
    if model_row(tx.tables, &name).is_none() {
        return Err(AppError::die(format!(
            "custom CPU model '{name}' does not exist\n"
        )));
    }
    Ok(Plan::changes(
        vec![Change::Delete {
            path: format!("{MODELS}/{name}"),
        }],
        Value::Null,
    ))
}
