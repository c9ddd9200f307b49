//! The `/access` endpoints whose semantics go beyond the generic handlers: login with tickets
//! and second factors ([`login`]), users, tokens and passwords ([`users`]), groups ([`groups`]),
//! roles ([`roles`]), the ACL and effective permissions ([`acl`]), TFA entries ([`tfa`]) and
//! OpenID Connect ([`openid`]).
//!
//! Each handler follows the Proxmox handler named in its comment (pve-access-control
//! `src/PVE/API2/AccessControl.pm`, `ACL.pm`, `Role.pm`, `Group.pm`, `User.pm`, `TFA.pm`),
//! including its error texts: handlers that run inside `lock_user_config` prefix their `die`s
//! (`create role failed: role 'x' already exists`). Writes plan their whole change list from
//! one read of the store, like every other write; the access model follows the rows.

pub(crate) mod acl;
pub(crate) mod groups;
pub(crate) mod login;
pub(crate) mod openid;
pub(crate) mod roles;
pub(crate) mod tfa;
pub(crate) mod users;

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::access::Caller;
use crate::access::check::perm_error;
use crate::access::model::{AccessModel, ROOT};
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

/// A plain `die` of a handler.
pub(super) fn die(message: impl Into<String>) -> AppError {
    AppError::die(message)
}

/// The row of a user.
pub(super) fn user_path(userid: &str) -> String {
    format!("/access/users/{userid}")
}

/// Stores a row as a member of a collection.
pub(super) fn put_member(path: String, collection: &str, value: Value) -> Change {
    Change::Put {
        path,
        collection: Some(collection.to_owned()),
        value,
    }
}

/// Which users the caller may see in the user and TFA lists (`index` in `API2/User.pm`,
/// `list_tfa` in `API2/TFA.pm`): everybody with `User.Modify` or `Sys.Audit` on
/// `/access/groups`, else the members of the groups it has one of them on, and always itself.
pub(super) struct VisibleUsers<'a> {
    caller: &'a str,
    all: bool,
    members: BTreeSet<&'a str>,
}

impl<'a> VisibleUsers<'a> {
    /// The users `caller` may see.
    pub(super) fn new(model: &'a AccessModel, caller: &'a str) -> VisibleUsers<'a> {
        let privs = ["User.Modify", "Sys.Audit"];
        VisibleUsers {
            caller,
            all: model.has_any_privilege(caller, "/access/groups", &privs),
            members: model
                .groups_granting(caller, &privs)
                .into_iter()
                .flat_map(|(_, members)| members.iter().map(String::as_str))
                .collect(),
        }
    }

    /// Whether the caller may see `userid`.
    pub(super) fn contains(&self, userid: &str) -> bool {
        self.all || userid == self.caller || self.members.contains(userid)
    }
}

/// `check_user_enabled`: exists, enabled and not expired.
pub(super) fn user_enabled(tables: &Tables, userid: &str) -> bool {
    crate::access::check_user_enabled(tables, userid, auth::now()).is_ok()
}

/// Whether `password` is the user's password.
pub(super) fn password_ok(tables: &Tables, userid: &str, password: &str) -> bool {
    tables
        .field(&user_path(userid), PASSWORD_KEY)
        .as_ref()
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
