//! Access control policy: who the caller is, what the ACL grants, which checks an operation
//! makes, what a list shows, following pve-access-control (`src/PVE/AccessControl.pm`,
//! `src/PVE/RPCEnvironment.pm`). The `/access` endpoints themselves are handlers in
//! `crate::ops::access`.
//!
//! Layout:
//! - [`privileges`]: the privilege catalogue and the built-in roles of a release.
//! - [`acl`]: the stored ACL entries (one row) and the ACL path helpers (`normalize_path`).
//! - [`model`]: a snapshot of users, groups, tokens, roles and the ACL, and its evaluation
//!   (`permissions`, `roles`).
//! - [`effective`]: permissions as replies show them: effective permissions, the login `cap`.
//! - [`check`]: the `permissions` objects of the route metadata, checked on every request.
//! - [`filter`]: lists that only show what the caller may see (`VM.Audit`, `Sys.Audit`, ...).
//! - [`rpcenv`]: the checks handlers make themselves (`check`, `check_vm_perm`,
//!   `check_volume_access`), as `$rpcenv` offers them to Proxmox's handlers.
//! - [`totp`]: RFC 6238 one-time passwords.
//!
//! # Where the state lives
//!
//! Users (`/access/users/{userid}`, with their group list, password hash and TFA entries under
//! hidden keys), tokens (`.../token/{tokenid}`), groups (`/access/groups/{groupid}`) and custom
//! roles (`/access/roles/{roleid}`) are ordinary store rows, so the generic engine, the seed and
//! `/_mock/state` see them. The ACL is one row, [`acl::ACL_ROW`]. Built-in roles are not
//! stored: they come from the catalogue of the schema's release.
//!
//! # Keeping the hot path fast
//!
//! Every request of a user other than `root@pam` is checked against an [`model::AccessModel`],
//! built from the rows above (and pool membership) on first use and then shared
//! ([`AccessCache`]). The cache is keyed by the tables' access revision (`Tables::access_rev`),
//! which every change to those rows (below `/access` or `/pools`, the ACL row) and every reset
//! moves, so a model built from older rows is never used, whichever request changed them.
//! Evaluating a path walks its segments (`/`, `/vms`, `/vms/103`), so filtering a list of 5,000
//! guests costs 5,000 short walks, however large the ACL is.

pub(crate) mod acl;
pub(crate) mod check;
pub(crate) mod effective;
pub(crate) mod filter;
pub(crate) mod model;
pub(crate) mod privileges;
pub(crate) mod rpcenv;
pub(crate) mod totp;

use std::sync::{Arc, RwLock};

use route_metadata::Operation;
use serde_json::Value;

use crate::error::AppError;
use crate::schema::Params;
use crate::store::Tables;
pub(crate) use model::AccessModel;
use model::ROOT;
use privileges::Catalog;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller {
    /// User or token ID.
    pub(crate) userid: String,
    /// Whether an API token authenticated the call.
    pub(crate) api_token: bool,
}

/// The shared, lazily rebuilt [`AccessModel`], keyed by the tables' `access_rev`.
#[derive(Debug)]
pub(crate) struct AccessCache {
    catalog: Arc<Catalog>,
    current: RwLock<Option<(u64, Arc<AccessModel>)>>,
}

impl AccessCache {
    /// An empty cache for a release (`9.1.3`).
    pub(crate) fn new(release: &str) -> AccessCache {
        AccessCache {
            catalog: Arc::new(Catalog::for_release(release)),
            current: RwLock::new(None),
        }
    }

    /// The model for the given tables (the caller holds the store's read guard): the cached
    /// one if it was built from the same access rows, else a new one.
    pub(crate) fn model(&self, tables: &Tables) -> Arc<AccessModel> {
        let revision = tables.access_rev;
        if let Some((built, model)) = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            && *built == revision
        {
            return Arc::clone(model);
        }
        let model = Arc::new(AccessModel::build(tables, Arc::clone(&self.catalog)));
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            Some((revision, Arc::clone(&model)));
        model
    }
}

/// Checks an operation's `permissions` for the caller, before validation and existence checks.
pub(crate) fn check_request(
    tables: &Tables,
    access: &AccessCache,
    caller: &Caller,
    op: &Operation,
    params: &Params,
) -> Result<(), AppError> {
    if caller.userid == ROOT {
        return Ok(());
    }
    let model = access.model(tables);
    check::check_api2(&model, op.permissions.as_ref(), &caller.userid, params)?;
    check::handler_check(&model, op, &caller.userid, params)
}

/// Whether an `expire` time (0 or absent: never) has passed.
pub(crate) fn expired(expire: Option<u64>, now: u64) -> bool {
    expire.is_some_and(|expire| expire > 0 && expire < now)
}

/// The fields of a user row that [`check_user_enabled`] reads; the others are skipped.
#[derive(Debug, Default, serde::Deserialize)]
struct UserGate {
    #[serde(default)]
    enable: Option<Value>,
    #[serde(default)]
    expire: Option<Value>,
}

/// `check_user_enabled` (pve-access-control `src/PVE/AccessControl.pm`): the user exists, is
/// enabled and has not expired. Returns the user's `expire`, or Proxmox's message.
pub(crate) fn check_user_enabled(
    tables: &Tables,
    userid: &str,
    now: u64,
) -> Result<Option<u64>, String> {
    let Some(row) = tables.row(&format!("/access/users/{userid}")) else {
        return Err(format!("no such user ('{userid}')\n"));
    };
    // Every request asks, so only the two fields are read from the row's text (a row that is
    // not an object has neither, as `Value::get` would say).
    let user: UserGate = row.fields();
    if !user
        .enable
        .as_ref()
        .and_then(crate::schema::value_bool)
        .unwrap_or(true)
    {
        return Err(format!("user '{userid}' is disabled\n"));
    }
    let expire = user.expire.as_ref().and_then(Value::as_u64);
    if expired(expire, now) {
        return Err(format!("user '{userid}' access expired\n"));
    }
    Ok(expire)
}
