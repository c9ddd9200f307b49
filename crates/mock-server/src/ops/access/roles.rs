//! Roles (pve-access-control `src/PVE/API2/Role.pm`): built-in roles from the catalogue of the
//! release, custom roles as rows.

use std::collections::BTreeSet;

use route_metadata::Method;
use serde_json::{Value, json};

use super::{die, put_member};
use crate::access::model::AccessModel;
use crate::access::privileges::PrivSet;
use crate::error::AppError;
use crate::ops::{Call, Plan, Tx, already_exists};
use crate::schema::split_list;
use crate::store::Change;

// ----------------------------------------------------------------------------------------------
// Roles (`API2/Role.pm`).

fn privs_text(model: &AccessModel, set: PrivSet) -> String {
    model.catalog().names_of(set).collect::<Vec<_>>().join(",")
}

pub(crate) fn list(_call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let model = tx.access();
    let mut names: Vec<&String> = model.roles().keys().collect();
    names.sort();
    Ok(Value::Array(
        names
            .into_iter()
            .map(|name| {
                let set = model.roles()[name];
                json!({
                    "roleid": name,
                    "privs": privs_text(model, set),
                    "special": u8::from(model.catalog().is_special(name)),
                })
            })
            .collect(),
    ))
}

pub(crate) fn read(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let model = tx.access();
    let roleid = call.arg_str("roleid").unwrap_or_default();
    let set = model
        .roles()
        .get(roleid)
        .copied()
        .ok_or_else(|| die(format!("role '{roleid}' does not exist\n")))?;
    Ok(Value::Object(
        model
            .catalog()
            .names_of(set)
            .map(|name| (name.to_owned(), json!(1)))
            .collect(),
    ))
}

pub(crate) fn modify(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let model = tx.access();
    let method = call.op.method;
    let roleid = call.arg_str("roleid").unwrap_or_default();
    let path = format!("/access/roles/{roleid}");
    let special = model.catalog().is_special(roleid);
    // Format `pve-priv-list` (`verify_privname`), checked with the other parameters.
    for name in call.arg_str("privs").map(split_list).into_iter().flatten() {
        if !model.catalog().is_valid(name) {
            return Err(AppError::param(
                "privs",
                format!("invalid format - invalid privilege '{name}'\n"),
            ));
        }
    }
    let (verb, context) = match method {
        Method::Post => ("create", "create role failed"),
        Method::Put => ("update", "update role failed"),
        _ => ("delete", "delete role failed"),
    };
    if method == Method::Post && roleid.to_ascii_lowercase().starts_with("pve") {
        return Err(AppError::param(
            "roleid",
            "cannot use role ID starting with the (case-insensitive) 'PVE' namespace",
        ));
    }
    if method != Method::Post && special {
        let what = if verb == "update" {
            "modified"
        } else {
            "deleted"
        };
        return Err(die(format!(
            "auto-generated role '{roleid}' cannot be {what}\n"
        )));
    }
    let exists = model.roles().contains_key(roleid);
    if method == Method::Post && exists {
        return Err(die(format!(
            "{context}: {}",
            already_exists("role", roleid)
        )));
    }
    if method != Method::Post && !exists {
        return Err(die(format!("{context}: role '{roleid}' does not exist\n")));
    }
    if method == Method::Delete {
        return Ok(Plan::changes(vec![Change::Delete { path }], Value::Null));
    }
    let mut privs: BTreeSet<String> = BTreeSet::new();
    if method == Method::Put && call.arg_bool("append").unwrap_or(false) {
        let current = model.roles().get(roleid).copied().unwrap_or(0);
        privs.extend(model.catalog().names_of(current).map(str::to_owned));
    }
    for name in call.arg_str("privs").map(split_list).into_iter().flatten() {
        privs.insert(name.to_owned());
    }
    let privs: Vec<String> = privs.into_iter().collect();
    Ok(Plan::changes(
        vec![put_member(
            path,
            "/access/roles",
            json!({"privs": privs.join(",")}),
        )],
        Value::Null,
    ))
}
