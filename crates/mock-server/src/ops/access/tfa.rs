//! Second factors (pve-access-control `src/PVE/API2/TFA.pm`): TOTP entries per user, added
//! after verifying a code, listed without their secrets.

use route_metadata::Method;
use serde_json::{Value, json};

use super::{VisibleUsers, die, object_of, put_member, reauth, user_path};
use crate::access::totp::{TFA_KEY, Totp, totp_entry};
use crate::api::last_segment;
use crate::auth::{self};
use crate::error::AppError;
use crate::ops::{Call, Plan, Tx};
use crate::store::{Change, Tables};
use http::StatusCode;

/// `GET /access/tfa/{userid}`: a user's entries without their secrets.
pub(crate) fn list_user(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    Ok(Value::Array(
        user_tfa(tx.tables, call.arg_str("userid").unwrap_or_default())
            .iter()
            .map(public_entry)
            .collect(),
    ))
}

/// A user's stored TFA entries (secrets included).
pub(crate) fn user_tfa(tables: &Tables, userid: &str) -> Vec<Value> {
    let Some(Value::Array(entries)) = tables.field(&user_path(userid), TFA_KEY) else {
        return Vec::new();
    };
    entries.into_iter().filter(Value::is_object).collect()
}

/// A TFA entry without its secret.
fn public_entry(entry: &Value) -> Value {
    let mut entry = entry.clone();
    if let Value::Object(map) = &mut entry {
        map.retain(|key, _| !key.starts_with('_') && !matches!(key.as_str(), "digits" | "period"));
    }
    entry
}

/// `GET /access/tfa`: every user's entries the caller may see.
pub(crate) fn list_all(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let visible = VisibleUsers::new(tx.access(), &call.caller.userid);
    Ok(Value::Array(
        tables
            .members("/access/users")
            .map(|path| last_segment(path).to_owned())
            .filter(|userid| visible.contains(userid))
            .filter_map(|userid| {
                let entries = user_tfa(tables, &userid);
                (!entries.is_empty()).then(|| {
                    json!({"userid": userid,
                           "entries": entries.iter().map(public_entry).collect::<Vec<_>>()})
                })
            })
            .collect(),
    ))
}

pub(crate) fn read(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let id = call.arg_str("id").unwrap_or_default();
    user_tfa(tables, call.arg_str("userid").unwrap_or_default())
        .iter()
        .find(|entry| entry.get("id").and_then(Value::as_str) == Some(id))
        .map(public_entry)
        .ok_or_else(|| {
            AppError::status(StatusCode::NOT_FOUND, format!("No such tfa entry '{id}'\n"))
        })
}

fn with_tfa(tables: &Tables, userid: &str, entries: Vec<Value>) -> Change {
    let path = user_path(userid);
    let mut row = object_of(tables.get(&path).as_ref());
    if let Value::Object(map) = &mut row {
        if entries.is_empty() {
            map.remove(TFA_KEY);
            map.remove("keys");
        } else {
            map.insert(TFA_KEY.to_owned(), Value::Array(entries));
            map.insert("keys".to_owned(), json!("x"));
        }
    }
    put_member(path, "/access/users", row)
}

pub(crate) fn add(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let caller = call.caller;
    let userid = call.arg_str("userid").unwrap_or_default();
    reauth(tables, caller, userid, call.arg_str("password"), "password")?;
    let kind = call.arg_str("type").unwrap_or_default();
    if kind != "totp" {
        return Err(die(format!(
            "adding '{kind}' entries is not supported by the mock (only 'totp')\n"
        )));
    }
    let uri = call
        .arg_str("totp")
        .ok_or_else(|| die("missing 'totp' parameter\n"))?;
    let totp = Totp::from_uri(uri).map_err(|error| die(format!("{error}\n")))?;
    let value = call
        .arg_str("value")
        .ok_or_else(|| die("missing 'value' parameter\n"))?;
    let now = auth::now();
    if !totp.verify(value, now) {
        return Err(die("failed to verify TOTP challenge\n"));
    }
    let id = auth::new_token_secret();
    let mut entries = user_tfa(tables, userid);
    entries.push(totp_entry(
        &id,
        call.arg_str("description").unwrap_or_default(),
        &totp,
        now,
    ));
    Ok(Plan::changes(
        vec![with_tfa(tables, userid, entries)],
        json!({"id": id}),
    ))
}

pub(crate) fn modify(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let tables = tx.tables;
    let caller = call.caller;
    let method = call.op.method;
    let userid = call.arg_str("userid").unwrap_or_default();
    let id = call.arg_str("id").unwrap_or_default();
    reauth(tables, caller, userid, call.arg_str("password"), "password")?;
    let mut entries = user_tfa(tables, userid);
    let Some(index) = entries
        .iter()
        .position(|entry| entry.get("id").and_then(Value::as_str) == Some(id))
    else {
        return Err(AppError::status(
            StatusCode::NOT_FOUND,
            format!("No such tfa entry '{id}'\n"),
        ));
    };
    if method == Method::Delete {
        entries.remove(index);
    } else {
        if let Some(description) = call.arg_str("description") {
            entries[index]["description"] = json!(description);
        }
        if let Some(enable) = call.arg_bool("enable") {
            entries[index]["enable"] = json!(u8::from(enable));
        }
    }
    Ok(Plan::changes(
        vec![with_tfa(tables, userid, entries)],
        Value::Null,
    ))
}
