//! The `/access` endpoints whose semantics go beyond the generic handlers: login with tickets
//! and second factors ([`login`]), users, tokens and passwords ([`users`]), groups ([`groups`]),
//! roles ([`roles`]), the ACL and effective permissions ([`acl`]) and TFA entries ([`tfa`]).
//!
//! Each handler follows the Proxmox handler named in its comment (pve-access-control
//! `src/PVE/API2/AccessControl.pm`, `ACL.pm`, `Role.pm`, `Group.pm`, `User.pm`, `TFA.pm`),
//! including its error texts: handlers that run inside `lock_user_config` prefix their `die`s
//! (`create role failed: role 'x' already exists`). Writes plan their whole change list from
//! one read of the store, like every other write; the access model follows the rows.

pub(crate) mod acl;
pub(crate) mod groups;
pub(crate) mod login;
pub(crate) mod roles;
pub(crate) mod tfa;
pub(crate) mod users;

use serde_json::{Value, json};

use crate::access::Caller;
use crate::access::check::perm_error;
use crate::access::model::{AccessModel, Perms, ROOT};
use crate::auth::{self, PASSWORD_KEY};
use crate::error::AppError;
use crate::store::{Change, Tables};

// ----------------------------------------------------------------------------------------------
// Plumbing.

/// A stored row as an object (rows written by hand into a seed's `objects` may be anything).
pub(super) fn object_of(value: Option<&Value>) -> Value {
    match value {
        Some(value @ Value::Object(_)) => value.clone(),
        _ => json!({}),
    }
}

pub(super) fn die(message: impl Into<String>) -> AppError {
    AppError::die(message)
}

pub(super) fn user_path(userid: &str) -> String {
    format!("/access/users/{userid}")
}

pub(super) fn put_member(path: String, collection: &str, value: Value) -> Change {
    Change::Put {
        path,
        collection: Some(collection.to_owned()),
        value,
    }
}

pub(super) fn perms_of(model: &AccessModel, subject: &str, path: &str) -> Perms {
    model.permissions(subject, path)
}

pub(super) fn has_any(model: &AccessModel, subject: &str, path: &str, names: &[&str]) -> bool {
    let wanted = names
        .iter()
        .filter_map(|name| model.catalog().bit(name))
        .fold(0, |acc, bit| acc | bit);
    perms_of(model, subject, path).has_any(wanted)
}

/// `check_user_enabled`: exists, enabled and not expired.
pub(super) fn user_enabled(tables: &Tables, userid: &str) -> bool {
    crate::access::check_user_enabled(tables, userid, auth::now()).is_ok()
}

pub(super) fn password_ok(tables: &Tables, userid: &str, password: &str) -> bool {
    tables
        .get(&user_path(userid))
        .and_then(|row| row.get(PASSWORD_KEY))
        .and_then(Value::as_str)
        .is_some_and(|stored| auth::verify_secret(stored, password))
}

/// `reauth_user_for_user_modification` (`RPCEnvironment.pm`): only `root@pam` may modify
/// `root@pam`, and everybody else confirms their own password.
pub(super) fn reauth(
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
