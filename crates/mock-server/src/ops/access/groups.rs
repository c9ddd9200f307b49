//! Groups (pve-access-control `src/PVE/API2/Group.pm`).

use route_metadata::Method;
use serde_json::{Value, json};

use super::acl::without_acl_of;
use super::{die, object_of, put_member};
use crate::error::AppError;
use crate::ops::{Call, Plan, Tx, already_exists};
use crate::store::{Change, Tables};

// ----------------------------------------------------------------------------------------------
// Groups (`API2/Group.pm`).

pub(crate) fn list(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let privs = ["User.Modify", "Sys.Audit", "Group.Allocate"];
    Ok(Value::Array(
        tx.access()
            .groups_granting(&call.caller.userid, &privs)
            .into_iter()
            .map(|(group, members)| {
                let mut entry = json!({"groupid": group});
                if let Some(comment) = group_comment(tables, group) {
                    entry["comment"] = comment;
                }
                entry["users"] = json!(members.iter().cloned().collect::<Vec<_>>().join(","));
                entry
            })
            .collect(),
    ))
}

pub(crate) fn read(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let model = tx.access();
    let group = call.arg_str("groupid").unwrap_or_default();
    let members = model
        .groups()
        .get(group)
        .ok_or_else(|| die(format!("group '{group}' does not exist\n")))?;
    let mut reply = json!({"members": members.iter().collect::<Vec<_>>()});
    if let Some(comment) = group_comment(tables, group) {
        reply["comment"] = comment;
    }
    Ok(reply)
}

/// The stored comment of a group.
fn group_comment(tables: &Tables, group: &str) -> Option<Value> {
    tables.field(&format!("/access/groups/{group}"), "comment")
}

pub(crate) fn modify(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let method = call.op.method;
    let group = call.arg_str("groupid").unwrap_or_default();
    let path = format!("/access/groups/{group}");
    let exists = tables.exists(&path);
    match method {
        Method::Post => {
            if exists {
                return Err(die(format!(
                    "create group failed: {}",
                    already_exists("group", group)
                )));
            }
            let mut row = json!({});
            if let Some(comment) = call.arg_str("comment").filter(|c| !c.is_empty()) {
                row["comment"] = json!(comment);
            }
            Ok(Plan::changes(
                vec![put_member(path, "/access/groups", row)],
                Value::Null,
            ))
        }
        Method::Put => {
            let Some(current) = tables.get(&path) else {
                return Err(die(format!(
                    "update group failed: group '{group}' does not exist\n"
                )));
            };
            let mut row = object_of(Some(&current));
            if let Some(comment) = call.arg_str("comment") {
                row["comment"] = json!(comment);
            }
            Ok(Plan::changes(
                vec![put_member(path, "/access/groups", row)],
                Value::Null,
            ))
        }
        _ => {
            if !exists {
                return Err(die(format!(
                    "delete group failed: group '{group}' does not exist\n"
                )));
            }
            Ok(Plan::changes(
                vec![
                    Change::Delete { path },
                    without_acl_of(tables, &[("group", group)]),
                ],
                Value::Null,
            ))
        }
    }
}
