//! The ACL (pve-access-control `src/PVE/API2/ACL.pm`) and effective permissions
//! (`permissions` in `src/PVE/API2/AccessControl.pm`).

use serde_json::{Map, Value, json};

use super::die;
use crate::access::acl::{AclEntry, acl_change, acl_entries, normalize_path};
use crate::access::check::{check_perm_modify, perm_error};
use crate::access::model::AccessModel;
use crate::auth::{self};
use crate::error::AppError;
use crate::ops::{Call, Plan, Tx};
use crate::schema::split_list;
use crate::store::{Change, Tables};

// ----------------------------------------------------------------------------------------------
// ACL (`API2/ACL.pm`).

pub(crate) fn read(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let model = tx.access();
    let caller = call.caller;
    let audit = model.has_any_privilege(&caller.userid, "/access", &["Sys.Audit"]);
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
    Ok(Value::Array(
        entries
            .into_iter()
            .map(|entry| {
                json!({"path": entry.path, "type": entry.kind, "ugid": entry.ugid,
                       "roleid": entry.roleid, "propagate": entry.propagate})
            })
            .collect(),
    ))
}

/// `PVE::AccessControl::check_path`: the object paths an ACL can be set on.
pub(crate) fn check_path(path: &str) -> bool {
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

/// `PUT /access/acl` (`update_acl`): adds (or with `delete` removes) every role for every
/// named user, group and token on a path.
pub(crate) fn update(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let model = tx.access();
    let users = list_arg(call, "users");
    let groups = list_arg(call, "groups");
    let tokens = list_arg(call, "tokens");
    if users.is_empty() && groups.is_empty() && tokens.is_empty() {
        let message = "either 'users', 'groups' or 'tokens' is required.";
        return Err(AppError::Param(
            ["users", "groups", "tokens"]
                .into_iter()
                .map(|key| (key.to_owned(), message.to_owned()))
                .collect(),
        ));
    }
    let delete = call.arg_bool("delete").unwrap_or(false);
    let path = acl_path_arg(call, delete)?;
    let propagate = u8::from(call.arg_bool("propagate").unwrap_or(true));
    let mut entries = acl_entries(tx.tables);
    for role in split_list(call.arg_str("roles").unwrap_or_default()) {
        if !model.roles().contains_key(role) {
            return Err(acl_failed(format!("role '{role}' does not exist\n")));
        }
        for (kind, ugid) in acl_subjects(model, &groups, &users, &tokens)? {
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
    Ok(Plan::changes(vec![acl_change(entries)], Value::Null))
}

/// A list argument (`users`, `groups`, `tokens`), empty when absent.
fn list_arg<'c>(call: &'c Call<'_>, key: &str) -> Vec<&'c str> {
    call.arg_str(key)
        .map(|s| split_list(s).collect())
        .unwrap_or_default()
}

/// The normalised `path` argument; unless entries are deleted it must also be a path an ACL
/// can be set on ([`check_path`]).
fn acl_path_arg(call: &Call<'_>, delete: bool) -> Result<String, AppError> {
    let raw_path = call.arg_str("path").unwrap_or_default();
    let invalid = || AppError::param("path", format!("invalid ACL path '{raw_path}'"));
    let path = normalize_path(raw_path).ok_or_else(invalid)?;
    if !delete && !check_path(&path) {
        return Err(invalid());
    }
    Ok(path)
}

/// A `die` inside `update_acl`'s config lock.
fn acl_failed(message: String) -> AppError {
    die(format!("ACL update failed: {message}"))
}

/// The named groups, users and tokens as `(type, ugid)`, in that order, each checked to exist.
fn acl_subjects(
    model: &AccessModel,
    groups: &[&str],
    users: &[&str],
    tokens: &[&str],
) -> Result<Vec<(&'static str, String)>, AppError> {
    let mut subjects: Vec<(&str, String)> = Vec::new();
    for group in groups {
        if !model.groups().contains_key(*group) {
            return Err(acl_failed(format!("group '{group}' does not exist\n")));
        }
        subjects.push(("group", (*group).to_owned()));
    }
    for user in users {
        if !model.user_exists(user) {
            return Err(acl_failed(format!("user '{user}' does not exist\n")));
        }
        subjects.push(("user", (*user).to_owned()));
    }
    for token in tokens {
        let Ok((user, name, _)) = auth::split_api_token(&format!("{token}=x")) else {
            return Err(acl_failed(format!(
                "'{token}' is not a valid token ID - not able to split into user and token parts\n"
            )));
        };
        if !model.user_exists(&user) {
            return Err(acl_failed(format!("no such user ('{user}')\n")));
        }
        if model.token_privsep(token).is_none() {
            return Err(acl_failed(format!(
                "no such token '{name}' for user '{user}'\n"
            )));
        }
        subjects.push(("token", (*token).to_owned()));
    }
    Ok(subjects)
}

/// Removes the ACL entries of the given subjects (a deleted user, token or group).
pub(crate) fn without_acl_of(tables: &Tables, kind_ugid: &[(&str, &str)]) -> Change {
    let mut entries = acl_entries(tables);
    entries.retain(|entry| {
        !kind_ugid
            .iter()
            .any(|(kind, ugid)| entry.kind == *kind && entry.ugid == *ugid)
    });
    acl_change(entries)
}

// ----------------------------------------------------------------------------------------------
// Effective permissions (`permissions` in `API2/AccessControl.pm`).

pub(crate) fn permissions(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let model = tx.access();
    let caller = call.caller;
    let authid = caller.userid.as_str();
    let userid = call.arg_str("userid").unwrap_or(authid);
    let owned_token = userid
        .split_once('!')
        .is_some_and(|(user, _)| user == authid);
    if userid != authid
        && !owned_token
        && !model.has_any_privilege(authid, "/access", &["Sys.Audit"])
    {
        return Err(perm_error(Some("/access, Sys.Audit")));
    }
    match call.arg_str("path").filter(|path| !path.is_empty()) {
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
