//! Users and their API tokens (pve-access-control `src/PVE/API2/User.pm`) and password
//! changes (`change_password` in `src/PVE/API2/AccessControl.pm`).

use serde_json::{Map, Value, json};

use super::acl::without_acl_of;
use super::{VisibleUsers, die, object_of, put_member, reauth, user_enabled, user_path};
use crate::access::check::perm_error;
use crate::access::model::{AccessModel, ROOT, flag, user_group_list};
use crate::api::last_segment;
use crate::auth::{self, PASSWORD_KEY};
use crate::error::AppError;
use crate::ops::{Call, Plan, Tx, already_exists};
use crate::schema::split_list;
use crate::store::{Change, Tables};

// ----------------------------------------------------------------------------------------------
// Password (`change_password`).

pub(crate) fn change_password(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let caller = call.caller;
    let userid = call.arg_str("userid").unwrap_or_default();
    reauth(
        tables,
        caller,
        userid,
        call.arg_str("confirmation-password"),
        "confirmation-password",
    )?;
    if caller.userid != ROOT {
        if caller.userid == userid {
            if !user_enabled(tables, userid) {
                return Err(die(format!("user '{userid}' is disabled\n")));
            }
        } else if userid == ROOT || userid.ends_with("@pam") {
            return Err(perm_error(None));
        }
    }
    let path = user_path(userid);
    let mut row = object_of(tables.get(&path).as_ref());
    row[PASSWORD_KEY] = json!(auth::hash_secret(
        call.arg_str("password").unwrap_or_default()
    ));
    Ok(write_user(path, row))
}

// ----------------------------------------------------------------------------------------------
// Users (`API2/User.pm`).

const USER_FIELDS: &[&str] = &[
    "enable",
    "expire",
    "firstname",
    "lastname",
    "email",
    "comment",
    "keys",
];

/// The free-text fields `create_user` and `update_user` take.
const USER_TEXT_FIELDS: [&str; 5] = ["firstname", "lastname", "email", "comment", "keys"];

/// The user's tokens with their `privsep`, `expire` and `comment`, by token name.
fn token_info(tables: &Tables, userid: &str) -> Vec<(String, Value)> {
    tables
        .members(&format!("{}/token", user_path(userid)))
        .map(|path| {
            let row = tables.get(path).unwrap_or_default();
            let mut info = json!({
                "privsep": u8::from(flag(&row, "privsep", true)),
                "expire": row.get("expire").and_then(Value::as_u64).unwrap_or(0),
            });
            if let Some(comment) = row.get("comment").filter(|c| !c.is_null()) {
                info["comment"] = comment.clone();
            }
            (last_segment(path).to_owned(), info)
        })
        .collect()
}

/// `$extract_user_data`: the stored fields, and with `full` the groups and tokens.
fn user_data(tables: &Tables, userid: &str, row: &Value) -> Map<String, Value> {
    let mut data = Map::new();
    for key in USER_FIELDS {
        if let Some(value) = row.get(*key).filter(|v| !v.is_null()) {
            let value = match *key {
                "enable" => json!(u8::from(flag(row, "enable", true))),
                _ => value.clone(),
            };
            data.insert((*key).to_owned(), value);
        }
    }
    let groups: Vec<String> = user_group_list(row)
        .into_iter()
        .filter(|group| tables.exists(&format!("/access/groups/{group}")))
        .collect();
    data.insert("groups".to_owned(), json!(groups));
    data.insert(
        "tokens".to_owned(),
        Value::Object(token_info(tables, userid).into_iter().collect()),
    );
    data
}

pub(crate) fn list(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let visible = VisibleUsers::new(tx.access(), &call.caller.userid);
    let full = call.arg_bool("full").unwrap_or(false);
    let enabled_filter = call.arg_bool("enabled");
    let mut entries = Vec::new();
    for path in tables.members("/access/users") {
        let userid = last_segment(path).to_owned();
        if !visible.contains(&userid) {
            continue;
        }
        let row = tables.get(path).unwrap_or_default();
        let mut data = user_data(tables, &userid, &row);
        let groups = data.remove("groups");
        let tokens = data.remove("tokens");
        let enabled = flag(&row, "enable", true);
        if enabled_filter.is_some_and(|wanted| wanted != enabled) {
            continue;
        }
        if full {
            let groups: Vec<String> = groups
                .and_then(|g| serde_json::from_value(g).ok())
                .unwrap_or_default();
            data.insert("groups".to_owned(), json!(groups.join(",")));
            let tokens: Vec<Value> = match tokens {
                Some(Value::Object(map)) => map
                    .into_iter()
                    .map(|(tokenid, mut info)| {
                        info["tokenid"] = json!(tokenid);
                        info
                    })
                    .collect(),
                _ => Vec::new(),
            };
            data.insert("tokens".to_owned(), json!(tokens));
        }
        if let Some((_, realm)) = userid.rsplit_once('@')
            && matches!(realm, "pam" | "pve")
        {
            data.insert("realm-type".to_owned(), json!(realm));
        }
        data.insert("userid".to_owned(), json!(userid));
        entries.push(Value::Object(data));
    }
    Ok(Value::Array(entries))
}

pub(crate) fn read(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let userid = call.arg_str("userid").unwrap_or_default();
    let row = tables
        .get(&user_path(userid))
        .ok_or_else(|| die(format!("no such user ('{userid}')\n")))?;
    Ok(Value::Object(user_data(tables, userid, &row)))
}

/// Validates a group list against the existing groups.
fn groups_arg(
    model: &AccessModel,
    call: &Call<'_>,
    context: &str,
) -> Result<Option<Vec<String>>, AppError> {
    let Some(text) = call.arg_str("groups") else {
        return Ok(None);
    };
    let mut groups = Vec::new();
    for group in split_list(text) {
        if !model.groups().contains_key(group) {
            return Err(die(format!("{context}: no such group '{group}'\n")));
        }
        if !groups.iter().any(|g| g == group) {
            groups.push(group.to_owned());
        }
    }
    Ok(Some(groups))
}

/// The plan that stores a user row.
fn write_user(path: String, row: Value) -> Plan {
    Plan::changes(vec![put_member(path, "/access/users", row)], Value::Null)
}

/// `POST /access/users` (`create_user`): a new user; empty text fields are left out.
pub(crate) fn create(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let userid = call.arg_str("userid").unwrap_or_default();
    let path = user_path(userid);
    if tables.exists(&path) {
        return Err(die(format!(
            "create user failed: {}",
            already_exists("user", userid)
        )));
    }
    let groups = groups_arg(tx.access(), call, "create user failed")?;
    let mut row = json!({"enable": u8::from(call.arg_bool("enable").unwrap_or(true))});
    if let Some(expire) = call
        .args
        .get("expire")
        .and_then(Value::as_u64)
        .filter(|e| *e > 0)
    {
        row["expire"] = json!(expire);
    }
    for key in USER_TEXT_FIELDS {
        if let Some(value) = call.arg_str(key).filter(|v| !v.is_empty()) {
            row[key] = json!(value);
        }
    }
    if let Some(groups) = groups.filter(|g| !g.is_empty()) {
        row["groups"] = json!(groups.join(","));
    }
    if let Some(password) = call.arg_str("password") {
        row[PASSWORD_KEY] = json!(auth::hash_secret(password));
    }
    Ok(write_user(path, row))
}

/// `PUT /access/users/{userid}` (`update_user`): changes the given fields, replacing or
/// (`append`) extending the group list.
pub(crate) fn update(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let userid = call.arg_str("userid").unwrap_or_default();
    let path = user_path(userid);
    let Some(current) = tables.get(&path) else {
        return Err(die(format!(
            "update user failed: no such user ('{userid}')\n"
        )));
    };
    let mut row = object_of(Some(&current));
    if let Some(enable) = call.arg_bool("enable") {
        row["enable"] = json!(u8::from(enable));
    }
    if let Some(expire) = call.args.get("expire").and_then(Value::as_u64) {
        row["expire"] = json!(expire);
    }
    if let Some(groups) = groups_arg(tx.access(), call, "update user failed")? {
        let mut list = if call.arg_bool("append").unwrap_or(false) {
            user_group_list(&row)
        } else {
            Vec::new()
        };
        for group in groups {
            if !list.contains(&group) {
                list.push(group);
            }
        }
        row["groups"] = json!(list.join(","));
    }
    for key in USER_TEXT_FIELDS {
        if let Some(value) = call.arg_str(key) {
            row[key] = json!(value);
        }
    }
    Ok(write_user(path, row))
}

pub(crate) fn delete(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let userid = call.arg_str("userid").unwrap_or_default();
    let path = user_path(userid);
    if !tables.exists(&path) {
        return Err(die(format!(
            "delete user failed: no such user ('{userid}')\n"
        )));
    }
    let tokens: Vec<String> = token_info(tables, userid)
        .into_iter()
        .map(|(name, _)| format!("{userid}!{name}"))
        .collect();
    let mut subjects: Vec<(&str, &str)> = vec![("user", userid)];
    subjects.extend(tokens.iter().map(|token| ("token", token.as_str())));
    Ok(Plan::changes(
        vec![Change::Delete { path }, without_acl_of(tables, &subjects)],
        Value::Null,
    ))
}

/// `remove_token`: the token goes, and with it the ACL entries that name it.
pub(crate) fn delete_token(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let userid = call.arg_str("userid").unwrap_or_default();
    let tokenid = call.arg_str("tokenid").unwrap_or_default();
    let path = format!("{}/token/{tokenid}", user_path(userid));
    if !tables.exists(&user_path(userid)) {
        return Err(die(format!("no such user ('{userid}')\n")));
    }
    if !tables.exists(&path) {
        return Err(die(format!(
            "no such token '{tokenid}' for user '{userid}'\n"
        )));
    }
    let full = format!("{userid}!{tokenid}");
    Ok(Plan::changes(
        vec![
            Change::Delete { path },
            without_acl_of(tables, &[("token", &full)]),
        ],
        Value::Null,
    ))
}
