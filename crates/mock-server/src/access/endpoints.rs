//! The `/access` endpoints with semantics beyond the generic engine: login with tickets and
//! second factors, password changes, ACLs, roles, groups, users, API-token removal, effective
//! permissions and TFA entries.
//!
//! Each function follows the Proxmox handler named in its comment (pve-access-control
//! `src/PVE/API2/AccessControl.pm`, `ACL.pm`, `Role.pm`, `Group.pm`, `User.pm`, `TFA.pm`),
//! including its error texts: handlers that run inside `lock_user_config` prefix their `die`s
//! (`create role failed: role 'x' already exists`). Writes compute their whole change list
//! under the write gate from one read of the store and apply it atomically, like the engine.

use std::collections::BTreeSet;

use http::StatusCode;
use route_metadata::Method;
use serde_json::{Map, Value, json};

use super::check::{check_perm_modify, perm_error};
use super::model::{
    ACL_ROW, AccessModel, AclEntry, ROOT, acl_entries, acl_row, flag, normalize_path,
    user_group_list,
};
use super::totp::Totp;
use crate::api::last_segment;
use crate::app::{AppState, Caller};
use crate::auth::{self, PASSWORD_KEY};
use crate::engine::{Call, cluster_name};
use crate::error::AppError;
use crate::store::{Change, Tables};
use crate::validate::{Params, split_list};

/// Hidden key of a user's TFA entries.
pub const TFA_KEY: &str = "_tfa";

/// Answers an `/access` call this module owns; `None` leaves it to the generic engine.
pub async fn handle(
    state: &AppState,
    caller: &Caller,
    call: &Call<'_>,
) -> Option<Result<Value, AppError>> {
    let method = call.op.method;
    let result = match (method, call.node.path.as_str()) {
        (Method::Post, "/access/ticket") => read(state, |tables, model| {
            login(state, tables, model, call.args)
        }),
        (Method::Put, "/access/password") => {
            write(state, |tables, model| {
                change_password(tables, model, caller, call.args)
            })
            .await
        }
        (Method::Get, "/access/acl") => read(state, |_, model| Ok(read_acl(model, caller))),
        (Method::Put, "/access/acl") => {
            write(state, |tables, model| update_acl(tables, model, call.args)).await
        }
        (Method::Get, "/access/roles") => read(state, |_, model| Ok(list_roles(model))),
        (Method::Get, "/access/roles/{roleid}") => {
            read(state, |_, model| read_role(model, arg(call.args, "roleid")))
        }
        (
            Method::Post | Method::Put | Method::Delete,
            "/access/roles" | "/access/roles/{roleid}",
        ) => write(state, |_, model| modify_role(model, method, call.args)).await,
        (Method::Get, "/access/groups") => read(state, |tables, model| {
            Ok(list_groups(tables, model, caller))
        }),
        (Method::Get, "/access/groups/{groupid}") => {
            read(state, |tables, model| read_group(tables, model, call.args))
        }
        (
            Method::Post | Method::Put | Method::Delete,
            "/access/groups" | "/access/groups/{groupid}",
        ) => write(state, |tables, _| modify_group(tables, method, call.args)).await,
        (Method::Get, "/access/users") => read(state, |tables, model| {
            Ok(list_users(tables, model, caller, call.args))
        }),
        (Method::Get, "/access/users/{userid}") => read(state, |tables, _| {
            read_user(tables, arg(call.args, "userid"))
        }),
        (Method::Post, "/access/users") => {
            write(state, |tables, model| create_user(tables, model, call.args)).await
        }
        (Method::Put, "/access/users/{userid}") => {
            write(state, |tables, model| update_user(tables, model, call.args)).await
        }
        (Method::Delete, "/access/users/{userid}") => {
            write(state, |tables, _| {
                delete_user(tables, arg(call.args, "userid"))
            })
            .await
        }
        (Method::Delete, "/access/users/{userid}/token/{tokenid}") => {
            write(state, |tables, _| delete_token(tables, call.args)).await
        }
        (Method::Get, "/access/permissions") => {
            read(state, |_, model| permissions(model, caller, call.args))
        }
        (Method::Get, "/access/tfa") => read(state, |tables, model| {
            Ok(list_all_tfa(tables, model, caller))
        }),
        (Method::Get, "/access/tfa/{userid}") => read(state, |tables, _| {
            Ok(Value::Array(
                user_tfa(tables, arg(call.args, "userid"))
                    .iter()
                    .map(public_entry)
                    .collect(),
            ))
        }),
        (Method::Get, "/access/tfa/{userid}/{id}") => {
            read(state, |tables, _| read_tfa_entry(tables, call.args))
        }
        (Method::Post, "/access/tfa/{userid}") => {
            write(state, |tables, _| add_tfa_entry(tables, caller, call.args)).await
        }
        (Method::Put | Method::Delete, "/access/tfa/{userid}/{id}") => {
            write(state, |tables, _| {
                modify_tfa_entry(tables, caller, method, call.args)
            })
            .await
        }
        _ => return None,
    };
    Some(result)
}

// ----------------------------------------------------------------------------------------------
// Plumbing.

fn read(
    state: &AppState,
    answer: impl FnOnce(&Tables, &AccessModel) -> Result<Value, AppError>,
) -> Result<Value, AppError> {
    let tables = state.store.read();
    let model = state.access.model(&tables);
    answer(&tables, &model)
}

/// Plans changes from one consistent read, applies them atomically and invalidates the access
/// model before anyone else can write.
async fn write(
    state: &AppState,
    plan: impl FnOnce(&Tables, &AccessModel) -> Result<(Vec<Change>, Value), AppError>,
) -> Result<Value, AppError> {
    let (pending, reply) = {
        let _gate = state.write_gate.lock().await;
        let (changes, reply) = {
            let tables = state.store.read();
            let model = state.access.model(&tables);
            plan(&tables, &model)?
        };
        let pending = state
            .store
            .submit(changes)
            .map_err(|error| AppError::Internal(error.to_string()))?;
        state.access.invalidate();
        (pending, reply)
    };
    pending
        .durable()
        .await
        .map_err(|error| AppError::Internal(error.to_string()))?;
    Ok(reply)
}

fn arg<'a>(args: &'a Params, name: &str) -> &'a str {
    args.get(name).and_then(Value::as_str).unwrap_or_default()
}

fn opt<'a>(args: &'a Params, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// A boolean argument (the validator coerces them to 0/1).
fn bool_arg(args: &Params, name: &str) -> Option<bool> {
    match args.get(name)? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => Some(n.as_i64() != Some(0)),
        Value::String(s) => Some(!matches!(s.as_str(), "" | "0")),
        _ => None,
    }
}

/// A stored row as an object (rows written by hand into a seed's `objects` may be anything).
fn object_of(value: Option<&Value>) -> Value {
    match value {
        Some(value @ Value::Object(_)) => value.clone(),
        _ => json!({}),
    }
}

fn die(message: impl Into<String>) -> AppError {
    AppError::die(message)
}

fn user_path(userid: &str) -> String {
    format!("/access/users/{userid}")
}

fn put_member(path: String, collection: &str, value: Value) -> Change {
    Change::Put {
        path,
        collection: Some(collection.to_owned()),
        value,
    }
}

fn perms_of(model: &AccessModel, subject: &str, path: &str) -> super::model::Perms {
    model.permissions(subject, path)
}

fn has_any(model: &AccessModel, subject: &str, path: &str, names: &[&str]) -> bool {
    let wanted = names
        .iter()
        .filter_map(|name| model.catalog().bit(name))
        .fold(0, |acc, bit| acc | bit);
    perms_of(model, subject, path).has_any(wanted)
}

/// `check_user_enabled`: exists, enabled and not expired.
fn user_enabled(tables: &Tables, userid: &str) -> bool {
    let Some(row) = tables.get(&user_path(userid)) else {
        return false;
    };
    let expire = row.get("expire").and_then(Value::as_u64).unwrap_or(0);
    flag(row, "enable", true) && (expire == 0 || expire >= auth::now())
}

fn password_ok(tables: &Tables, userid: &str, password: &str) -> bool {
    tables
        .get(&user_path(userid))
        .and_then(|row| row.get(PASSWORD_KEY))
        .and_then(Value::as_str)
        .is_some_and(|stored| auth::verify_secret(stored, password))
}

/// `reauth_user_for_user_modification` (`RPCEnvironment.pm`): only `root@pam` may modify
/// `root@pam`, and everybody else confirms their own password.
fn reauth(
    tables: &Tables,
    caller: &Caller,
    userid: &str,
    password: Option<&str>,
    param: &str,
) -> Result<(), AppError> {
    if !tables.exists(&user_path(userid)) {
        return Err(die(format!("no such user ('{userid}')\n")));
    }
    if userid == ROOT && caller.userid != ROOT {
        return Err(perm_error(None));
    }
    if caller.userid != ROOT {
        let Some(password) = password else {
            return Err(AppError::param(
                param,
                "password is required to modify TFA data",
            ));
        };
        if !password_ok(tables, &caller.userid, password) {
            return Err(die("authentication failure\n"));
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------
// Login (`create_ticket`, `create_ticket_do`, `verify_auth` in `API2/AccessControl.pm`).

/// Enabled TOTP entries of a user.
fn totp_secrets(tables: &Tables, userid: &str) -> Vec<Totp> {
    user_tfa(tables, userid)
        .iter()
        .filter(|entry| entry.get("type").and_then(Value::as_str) == Some("totp"))
        .filter(|entry| flag(entry, "enable", true))
        .filter_map(|entry| {
            let secret = entry.get("_secret").and_then(Value::as_str)?;
            let mut totp = Totp::from_base32(secret)?;
            if let Some(digits) = entry
                .get("digits")
                .and_then(Value::as_u64)
                .filter(|digits| (6..=8).contains(digits))
            {
                totp.digits = digits as u32;
            }
            if let Some(period) = entry.get("period").and_then(Value::as_u64) {
                totp.period = period.max(1);
            }
            Some(totp)
        })
        .collect()
}

/// Checks a second-factor answer (`totp:123456`); other kinds are not offered by the mock.
fn second_factor_ok(secrets: &[Totp], response: &str, now: u64) -> bool {
    match response.split_once(':') {
        Some(("totp", code)) => secrets.iter().any(|totp| totp.verify(code, now)),
        _ => false,
    }
}

fn login(
    state: &AppState,
    tables: &Tables,
    model: &AccessModel,
    args: &Params,
) -> Result<Value, AppError> {
    let failure = || AppError::status(StatusCode::UNAUTHORIZED, "authentication failure\n");
    let mut username = arg(args, "username").to_owned();
    if let Some(realm) = opt(args, "realm").filter(|realm| !realm.is_empty()) {
        username = format!("{username}@{realm}");
    }
    let password = arg(args, "password");
    let otp = opt(args, "otp");
    let challenge = opt(args, "tfa-challenge");
    let now = auth::now();
    if !user_enabled(tables, &username) {
        tracing::debug!(%username, "login failed: no such user or disabled");
        return Err(failure());
    }
    let signer = &state.signer;
    let mut need_tfa: Option<String> = None;
    if let (Some(path), Some(privs)) = (opt(args, "path"), opt(args, "privs")) {
        // `verify_auth`: a ticket, or the password, and the privileges on the path.
        let ticket_ok = signer
            .verify_ticket(password, now)
            .is_ok_and(|owner| owner == username);
        if !ticket_ok && !password_ok(tables, &username, password) {
            return Err(failure());
        }
        let names: Vec<&str> = split_list(privs).collect();
        let granted = normalize_path(path).is_some_and(|path| {
            let perms = model.permissions(&username, &path);
            !names.is_empty()
                && names.iter().all(|name| {
                    model
                        .catalog()
                        .bit(name)
                        .is_some_and(|bit| perms.has_all(bit))
                })
        });
        if !granted {
            return Err(failure());
        }
        let mut reply = json!({"username": username, "cap": model.api_capabilities(&username)});
        add_clustername(&mut reply, tables, model, &username);
        return Ok(reply);
    }
    if otp.is_some() && challenge.is_some() {
        return Err(failure());
    }
    let renewal = challenge.is_none()
        && signer
            .verify_ticket(password, now)
            .is_ok_and(|owner| owner == ROOT || owner == username);
    if !renewal {
        let secrets = totp_secrets(tables, &username);
        match challenge {
            Some(challenge) => {
                signer
                    .verify_tfa_ticket(challenge, &username, now)
                    .map_err(|_| failure())?;
                if !second_factor_ok(&secrets, password, now) {
                    return Err(failure());
                }
            }
            None => {
                if !password_ok(tables, &username, password) {
                    tracing::debug!(%username, "login failed: wrong password");
                    return Err(failure());
                }
                if !secrets.is_empty() {
                    match otp {
                        Some(otp) if second_factor_ok(&secrets, otp, now) => {}
                        Some(_) => return Err(failure()),
                        None => need_tfa = Some(json!({"totp": true}).to_string()),
                    }
                }
            }
        }
    }
    let mut reply = json!({
        "username": username,
        "CSRFPreventionToken": signer.csrf_token(&username, now),
    });
    match need_tfa {
        Some(challenge) => {
            reply["ticket"] = json!(signer.tfa_ticket(&challenge, &username, now));
            reply["NeedTFA"] = json!(1);
        }
        None => {
            reply["ticket"] = json!(signer.ticket(&username, now));
            reply["cap"] = model.api_capabilities(&username);
        }
    }
    add_clustername(&mut reply, tables, model, &username);
    Ok(reply)
}

fn add_clustername(reply: &mut Value, tables: &Tables, model: &AccessModel, username: &str) {
    if has_any(model, username, "/", &["Sys.Audit"]) {
        reply["clustername"] = json!(cluster_name(tables));
    }
}

// ----------------------------------------------------------------------------------------------
// Password (`change_password`).

fn change_password(
    tables: &Tables,
    _model: &AccessModel,
    caller: &Caller,
    args: &Params,
) -> Result<(Vec<Change>, Value), AppError> {
    let userid = arg(args, "userid");
    reauth(
        tables,
        caller,
        userid,
        opt(args, "confirmation-password"),
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
    let mut row = object_of(tables.get(&path));
    row[PASSWORD_KEY] = json!(auth::hash_secret(arg(args, "password")));
    Ok((vec![put_member(path, "/access/users", row)], Value::Null))
}

// ----------------------------------------------------------------------------------------------
// ACL (`API2/ACL.pm`).

fn read_acl(model: &AccessModel, caller: &Caller) -> Value {
    let audit = has_any(model, &caller.userid, "/access", &["Sys.Audit"]);
    let order = |kind: &str| match kind {
        "user" => 0,
        "group" => 1,
        _ => 2,
    };
    let mut entries: Vec<&AclEntry> = model
        .entries()
        .iter()
        .filter(|entry| {
            audit || check_perm_modify(model, &caller.userid, &entry.path, true).unwrap_or(false)
        })
        .collect();
    entries.sort_by(|a, b| {
        (&a.path, order(&a.kind), &a.ugid, &a.roleid).cmp(&(
            &b.path,
            order(&b.kind),
            &b.ugid,
            &b.roleid,
        ))
    });
    Value::Array(
        entries
            .into_iter()
            .map(|entry| {
                json!({"path": entry.path, "type": entry.kind, "ugid": entry.ugid,
                       "roleid": entry.roleid, "propagate": entry.propagate})
            })
            .collect(),
    )
}

/// `PVE::AccessControl::check_path`: the object paths an ACL can be set on.
pub fn check_path(path: &str) -> bool {
    let name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'))
    };
    let segments: Vec<&str> = path.split('/').skip(1).filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [] => true,
        ["access"] | ["nodes"] | ["pool"] | ["sdn"] | ["storage"] | ["vms"] | ["mapping"] => true,
        ["access", "groups" | "realm"] => true,
        ["access", "groups" | "realm", id] => name(id),
        ["nodes" | "storage" | "mapping", id] => name(id),
        ["mapping", kind, id] => name(kind) && name(id),
        ["pool", rest @ ..] => rest.len() <= 3 && rest.iter().all(|s| name(s)),
        [
            "sdn",
            "zones" | "controllers" | "dns" | "ipams" | "vnets" | "fabrics",
        ] => true,
        [
            "sdn",
            "zones" | "controllers" | "dns" | "ipams" | "vnets" | "fabrics",
            id,
        ] => name(id),
        ["sdn", "zones", zone, bridge] => name(zone) && name(bridge),
        ["sdn", "zones", zone, bridge, vlan] => {
            name(zone)
                && name(bridge)
                && vlan.len() <= 4
                && vlan.chars().all(|c| c.is_ascii_digit())
                && !vlan.starts_with('0')
        }
        ["vms", vmid] => {
            vmid.len() >= 3 && vmid.chars().all(|c| c.is_ascii_digit()) && !vmid.starts_with('0')
        }
        _ => false,
    }
}

fn update_acl(
    tables: &Tables,
    model: &AccessModel,
    args: &Params,
) -> Result<(Vec<Change>, Value), AppError> {
    let users: Vec<&str> = opt(args, "users")
        .map(|s| split_list(s).collect())
        .unwrap_or_default();
    let groups: Vec<&str> = opt(args, "groups")
        .map(|s| split_list(s).collect())
        .unwrap_or_default();
    let tokens: Vec<&str> = opt(args, "tokens")
        .map(|s| split_list(s).collect())
        .unwrap_or_default();
    if users.is_empty() && groups.is_empty() && tokens.is_empty() {
        let message = "either 'users', 'groups' or 'tokens' is required.";
        return Err(AppError::Param(
            ["users", "groups", "tokens"]
                .into_iter()
                .map(|key| (key.to_owned(), message.to_owned()))
                .collect(),
        ));
    }
    let raw_path = arg(args, "path");
    let delete = bool_arg(args, "delete").unwrap_or(false);
    let invalid = || AppError::param("path", format!("invalid ACL path '{raw_path}'"));
    let path = normalize_path(raw_path).ok_or_else(invalid)?;
    if !delete && !check_path(&path) {
        return Err(invalid());
    }
    let failed = |message: String| die(format!("ACL update failed: {message}"));
    let propagate = u8::from(bool_arg(args, "propagate").unwrap_or(true));
    let mut entries = acl_entries(tables);
    for role in split_list(arg(args, "roles")) {
        if !model.roles().contains_key(role) {
            return Err(failed(format!("role '{role}' does not exist\n")));
        }
        let mut subjects: Vec<(&str, String)> = Vec::new();
        for group in &groups {
            if !model.groups().contains_key(*group) {
                return Err(failed(format!("group '{group}' does not exist\n")));
            }
            subjects.push(("group", (*group).to_owned()));
        }
        for user in &users {
            if !model.user_exists(user) {
                return Err(failed(format!("user '{user}' does not exist\n")));
            }
            subjects.push(("user", (*user).to_owned()));
        }
        for token in &tokens {
            let Ok((user, name, _)) = auth::split_api_token(&format!("{token}=x")) else {
                return Err(failed(format!(
                    "'{token}' is not a valid token ID - not able to split into user and token parts\n"
                )));
            };
            if !model.user_exists(&user) {
                return Err(failed(format!("no such user ('{user}')\n")));
            }
            if model.token_privsep(token).is_none() {
                return Err(failed(format!(
                    "no such token '{name}' for user '{user}'\n"
                )));
            }
            subjects.push(("token", (*token).to_owned()));
        }
        for (kind, ugid) in subjects {
            entries.retain(|entry| {
                !(entry.path == path
                    && entry.kind == kind
                    && entry.ugid == ugid
                    && entry.roleid == role)
            });
            if !delete {
                entries.push(AclEntry {
                    path: path.clone(),
                    kind: kind.to_owned(),
                    ugid,
                    roleid: role.to_owned(),
                    propagate,
                });
            }
        }
    }
    Ok((
        vec![Change::Put {
            path: ACL_ROW.to_owned(),
            collection: None,
            value: acl_row(entries),
        }],
        Value::Null,
    ))
}

/// Removes the ACL entries of the given subjects (a deleted user, token or group).
fn without_acl_of(tables: &Tables, kind_ugid: &[(&str, &str)]) -> Change {
    let mut entries = acl_entries(tables);
    entries.retain(|entry| {
        !kind_ugid
            .iter()
            .any(|(kind, ugid)| entry.kind == *kind && entry.ugid == *ugid)
    });
    Change::Put {
        path: ACL_ROW.to_owned(),
        collection: None,
        value: acl_row(entries),
    }
}

// ----------------------------------------------------------------------------------------------
// Roles (`API2/Role.pm`).

fn privs_text(model: &AccessModel, set: super::privileges::PrivSet) -> String {
    model.catalog().names_of(set).collect::<Vec<_>>().join(",")
}

fn list_roles(model: &AccessModel) -> Value {
    let mut names: Vec<&String> = model.roles().keys().collect();
    names.sort();
    Value::Array(
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
    )
}

fn read_role(model: &AccessModel, roleid: &str) -> Result<Value, AppError> {
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

fn modify_role(
    model: &AccessModel,
    method: Method,
    args: &Params,
) -> Result<(Vec<Change>, Value), AppError> {
    let roleid = arg(args, "roleid");
    let path = format!("/access/roles/{roleid}");
    let special = model.catalog().is_special(roleid);
    // Format `pve-priv-list` (`verify_privname`), checked with the other parameters.
    for name in opt(args, "privs").map(split_list).into_iter().flatten() {
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
        return Err(die(format!("{context}: role '{roleid}' already exists\n")));
    }
    if method != Method::Post && !exists {
        return Err(die(format!("{context}: role '{roleid}' does not exist\n")));
    }
    if method == Method::Delete {
        return Ok((vec![Change::Delete { path }], Value::Null));
    }
    let mut privs: BTreeSet<String> = BTreeSet::new();
    if method == Method::Put && bool_arg(args, "append").unwrap_or(false) {
        let current = model.roles().get(roleid).copied().unwrap_or(0);
        privs.extend(model.catalog().names_of(current).map(str::to_owned));
    }
    for name in opt(args, "privs").map(split_list).into_iter().flatten() {
        privs.insert(name.to_owned());
    }
    let privs: Vec<String> = privs.into_iter().collect();
    Ok((
        vec![put_member(
            path,
            "/access/roles",
            json!({"privs": privs.join(",")}),
        )],
        Value::Null,
    ))
}

// ----------------------------------------------------------------------------------------------
// Groups (`API2/Group.pm`).

fn list_groups(tables: &Tables, model: &AccessModel, caller: &Caller) -> Value {
    let privs = ["User.Modify", "Sys.Audit", "Group.Allocate"];
    Value::Array(
        model
            .groups()
            .iter()
            .filter(|(group, _)| {
                has_any(
                    model,
                    &caller.userid,
                    &format!("/access/groups/{group}"),
                    &privs,
                )
            })
            .map(|(group, members)| {
                let mut entry = json!({"groupid": group});
                if let Some(comment) = tables
                    .get(&format!("/access/groups/{group}"))
                    .and_then(|row| row.get("comment"))
                {
                    entry["comment"] = comment.clone();
                }
                entry["users"] = json!(members.iter().cloned().collect::<Vec<_>>().join(","));
                entry
            })
            .collect(),
    )
}

fn read_group(tables: &Tables, model: &AccessModel, args: &Params) -> Result<Value, AppError> {
    let group = arg(args, "groupid");
    let members = model
        .groups()
        .get(group)
        .ok_or_else(|| die(format!("group '{group}' does not exist\n")))?;
    let mut reply = json!({"members": members.iter().collect::<Vec<_>>()});
    if let Some(comment) = tables
        .get(&format!("/access/groups/{group}"))
        .and_then(|row| row.get("comment"))
    {
        reply["comment"] = comment.clone();
    }
    Ok(reply)
}

fn modify_group(
    tables: &Tables,
    method: Method,
    args: &Params,
) -> Result<(Vec<Change>, Value), AppError> {
    let group = arg(args, "groupid");
    let path = format!("/access/groups/{group}");
    let exists = tables.exists(&path);
    match method {
        Method::Post => {
            if exists {
                return Err(die(format!(
                    "create group failed: group '{group}' already exists\n"
                )));
            }
            let mut row = json!({});
            if let Some(comment) = opt(args, "comment").filter(|c| !c.is_empty()) {
                row["comment"] = json!(comment);
            }
            Ok((vec![put_member(path, "/access/groups", row)], Value::Null))
        }
        Method::Put => {
            let Some(current) = tables.get(&path) else {
                return Err(die(format!(
                    "update group failed: group '{group}' does not exist\n"
                )));
            };
            let mut row = object_of(Some(current));
            if let Some(comment) = opt(args, "comment") {
                row["comment"] = json!(comment);
            }
            Ok((vec![put_member(path, "/access/groups", row)], Value::Null))
        }
        _ => {
            if !exists {
                return Err(die(format!(
                    "delete group failed: group '{group}' does not exist\n"
                )));
            }
            Ok((
                vec![
                    Change::Delete { path },
                    without_acl_of(tables, &[("group", group)]),
                ],
                Value::Null,
            ))
        }
    }
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

fn token_info(tables: &Tables, userid: &str) -> Vec<(String, Value)> {
    tables
        .members(&format!("{}/token", user_path(userid)))
        .map(|path| {
            let row = tables.get(path).cloned().unwrap_or_default();
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

fn list_users(tables: &Tables, model: &AccessModel, caller: &Caller, args: &Params) -> Value {
    let privs = ["User.Modify", "Sys.Audit"];
    let can_modify_all = has_any(model, &caller.userid, "/access/groups", &privs);
    let allowed: BTreeSet<&String> = model
        .groups()
        .iter()
        .filter(|(group, _)| {
            has_any(
                model,
                &caller.userid,
                &format!("/access/groups/{group}"),
                &privs,
            )
        })
        .flat_map(|(_, members)| members.iter())
        .collect();
    let full = bool_arg(args, "full").unwrap_or(false);
    let enabled_filter = bool_arg(args, "enabled");
    let mut entries = Vec::new();
    for path in tables.members("/access/users") {
        let userid = last_segment(path).to_owned();
        if !(can_modify_all || userid == caller.userid || allowed.contains(&userid)) {
            continue;
        }
        let row = tables.get(path).cloned().unwrap_or_default();
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
    Value::Array(entries)
}

fn read_user(tables: &Tables, userid: &str) -> Result<Value, AppError> {
    let row = tables
        .get(&user_path(userid))
        .ok_or_else(|| die(format!("no such user ('{userid}')\n")))?;
    Ok(Value::Object(user_data(tables, userid, row)))
}

/// Validates a group list against the existing groups.
fn groups_arg(
    model: &AccessModel,
    args: &Params,
    context: &str,
) -> Result<Option<Vec<String>>, AppError> {
    let Some(text) = opt(args, "groups") else {
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

fn create_user(
    tables: &Tables,
    model: &AccessModel,
    args: &Params,
) -> Result<(Vec<Change>, Value), AppError> {
    let userid = arg(args, "userid");
    let path = user_path(userid);
    if tables.exists(&path) {
        return Err(die(format!(
            "create user failed: user '{userid}' already exists\n"
        )));
    }
    let groups = groups_arg(model, args, "create user failed")?;
    let mut row = json!({"enable": u8::from(bool_arg(args, "enable").unwrap_or(true))});
    if let Some(expire) = args
        .get("expire")
        .and_then(Value::as_u64)
        .filter(|e| *e > 0)
    {
        row["expire"] = json!(expire);
    }
    for key in ["firstname", "lastname", "email", "comment", "keys"] {
        if let Some(value) = opt(args, key).filter(|v| !v.is_empty()) {
            row[key] = json!(value);
        }
    }
    if let Some(groups) = groups.filter(|g| !g.is_empty()) {
        row["groups"] = json!(groups.join(","));
    }
    if let Some(password) = opt(args, "password") {
        row[PASSWORD_KEY] = json!(auth::hash_secret(password));
    }
    Ok((vec![put_member(path, "/access/users", row)], Value::Null))
}

fn update_user(
    tables: &Tables,
    model: &AccessModel,
    args: &Params,
) -> Result<(Vec<Change>, Value), AppError> {
    let userid = arg(args, "userid");
    let path = user_path(userid);
    let Some(current) = tables.get(&path) else {
        return Err(die(format!(
            "update user failed: no such user ('{userid}')\n"
        )));
    };
    let mut row = object_of(Some(current));
    if let Some(enable) = bool_arg(args, "enable") {
        row["enable"] = json!(u8::from(enable));
    }
    if let Some(expire) = args.get("expire").and_then(Value::as_u64) {
        row["expire"] = json!(expire);
    }
    if let Some(groups) = groups_arg(model, args, "update user failed")? {
        let mut list = if bool_arg(args, "append").unwrap_or(false) {
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
    for key in ["firstname", "lastname", "email", "comment", "keys"] {
        if let Some(value) = opt(args, key) {
            row[key] = json!(value);
        }
    }
    Ok((vec![put_member(path, "/access/users", row)], Value::Null))
}

fn delete_user(tables: &Tables, userid: &str) -> Result<(Vec<Change>, Value), AppError> {
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
    Ok((
        vec![Change::Delete { path }, without_acl_of(tables, &subjects)],
        Value::Null,
    ))
}

/// `remove_token`: the token goes, and with it the ACL entries that name it.
fn delete_token(tables: &Tables, args: &Params) -> Result<(Vec<Change>, Value), AppError> {
    let userid = arg(args, "userid");
    let tokenid = arg(args, "tokenid");
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
    Ok((
        vec![
            Change::Delete { path },
            without_acl_of(tables, &[("token", &full)]),
        ],
        Value::Null,
    ))
}

// ----------------------------------------------------------------------------------------------
// Effective permissions (`permissions` in `API2/AccessControl.pm`).

fn permissions(model: &AccessModel, caller: &Caller, args: &Params) -> Result<Value, AppError> {
    let authid = caller.userid.as_str();
    let userid = opt(args, "userid").unwrap_or(authid);
    let owned_token = userid
        .split_once('!')
        .is_some_and(|(user, _)| user == authid);
    if userid != authid && !owned_token && !has_any(model, authid, "/access", &["Sys.Audit"]) {
        return Err(perm_error(Some("/access, Sys.Audit")));
    }
    match opt(args, "path").filter(|path| !path.is_empty()) {
        Some(path) => {
            let perms = normalize_path(path)
                .map(|normal| model.permissions(userid, &normal))
                .unwrap_or_default();
            let mut map = Map::new();
            map.insert(path.to_owned(), model.perms_json(perms));
            Ok(Value::Object(map))
        }
        None => Ok(model.effective_permissions(userid)),
    }
}

// ----------------------------------------------------------------------------------------------
// Second factors (`API2/TFA.pm`).

/// A user's stored TFA entries (secrets included).
pub fn user_tfa(tables: &Tables, userid: &str) -> Vec<Value> {
    tables
        .get(&user_path(userid))
        .and_then(|row| row.get(TFA_KEY))
        .and_then(Value::as_array)
        .map(|entries| entries.iter().filter(|e| e.is_object()).cloned().collect())
        .unwrap_or_default()
}

/// A TFA entry without its secret.
fn public_entry(entry: &Value) -> Value {
    let mut entry = entry.clone();
    if let Value::Object(map) = &mut entry {
        map.retain(|key, _| !key.starts_with('_') && !matches!(key.as_str(), "digits" | "period"));
    }
    entry
}

/// A stored TOTP entry.
pub fn totp_entry(id: &str, description: &str, totp: &Totp, created: u64) -> Value {
    json!({
        "id": id, "type": "totp", "description": description, "created": created,
        "enable": 1, "_secret": super::totp::base32_encode(&totp.secret),
        "digits": totp.digits, "period": totp.period,
    })
}

fn list_all_tfa(tables: &Tables, model: &AccessModel, caller: &Caller) -> Value {
    let privs = ["User.Modify", "Sys.Audit"];
    let all = has_any(model, &caller.userid, "/access/groups", &privs);
    let allowed: BTreeSet<&String> = model
        .groups()
        .iter()
        .filter(|(group, _)| {
            has_any(
                model,
                &caller.userid,
                &format!("/access/groups/{group}"),
                &privs,
            )
        })
        .flat_map(|(_, members)| members.iter())
        .collect();
    Value::Array(
        tables
            .members("/access/users")
            .map(|path| last_segment(path).to_owned())
            .filter(|userid| all || *userid == caller.userid || allowed.contains(userid))
            .filter_map(|userid| {
                let entries = user_tfa(tables, &userid);
                (!entries.is_empty()).then(|| {
                    json!({"userid": userid,
                           "entries": entries.iter().map(public_entry).collect::<Vec<_>>()})
                })
            })
            .collect(),
    )
}

fn read_tfa_entry(tables: &Tables, args: &Params) -> Result<Value, AppError> {
    let id = arg(args, "id");
    user_tfa(tables, arg(args, "userid"))
        .iter()
        .find(|entry| entry.get("id").and_then(Value::as_str) == Some(id))
        .map(public_entry)
        .ok_or_else(|| {
            AppError::status(StatusCode::NOT_FOUND, format!("No such tfa entry '{id}'\n"))
        })
}

fn with_tfa(tables: &Tables, userid: &str, entries: Vec<Value>) -> Change {
    let path = user_path(userid);
    let mut row = object_of(tables.get(&path));
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

fn add_tfa_entry(
    tables: &Tables,
    caller: &Caller,
    args: &Params,
) -> Result<(Vec<Change>, Value), AppError> {
    let userid = arg(args, "userid");
    reauth(tables, caller, userid, opt(args, "password"), "password")?;
    let kind = arg(args, "type");
    if kind != "totp" {
        return Err(die(format!(
            "adding '{kind}' entries is not supported by the mock (only 'totp')\n"
        )));
    }
    let uri = opt(args, "totp").ok_or_else(|| die("missing 'totp' parameter\n"))?;
    let totp = Totp::from_uri(uri).map_err(|error| die(format!("{error}\n")))?;
    let value = opt(args, "value").ok_or_else(|| die("missing 'value' parameter\n"))?;
    let now = auth::now();
    if !totp.verify(value, now) {
        return Err(die("failed to verify TOTP challenge\n"));
    }
    let id = auth::new_token_secret();
    let mut entries = user_tfa(tables, userid);
    entries.push(totp_entry(
        &id,
        opt(args, "description").unwrap_or_default(),
        &totp,
        now,
    ));
    Ok((vec![with_tfa(tables, userid, entries)], json!({"id": id})))
}

fn modify_tfa_entry(
    tables: &Tables,
    caller: &Caller,
    method: Method,
    args: &Params,
) -> Result<(Vec<Change>, Value), AppError> {
    let userid = arg(args, "userid");
    let id = arg(args, "id");
    reauth(tables, caller, userid, opt(args, "password"), "password")?;
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
        if let Some(description) = opt(args, "description") {
            entries[index]["description"] = json!(description);
        }
        if let Some(enable) = bool_arg(args, "enable") {
            entries[index]["enable"] = json!(u8::from(enable));
        }
    }
    Ok((vec![with_tfa(tables, userid, entries)], Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_paths_follow_check_path() {
        for good in [
            "/",
            "/vms",
            "/vms/100",
            "/storage/local-lvm",
            "/pool/dev",
            "/access/groups/admins",
            "/sdn/zones/localnetwork/vmbr0",
            "/mapping/pci/gpu0",
            "/nodes/pve1",
        ] {
            assert!(check_path(good), "{good}");
        }
        for bad in [
            "/vms/99",
            "/vms/0100",
            "/foo",
            "/nodes/pve1/qemu",
            "/vms/abc",
        ] {
            assert!(!check_path(bad), "{bad}");
        }
    }
}
