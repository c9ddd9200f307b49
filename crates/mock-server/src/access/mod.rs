//! Access control: users, groups, roles, ACLs, API tokens, permission checks, password changes
//! and second factors, following pve-access-control (`src/PVE/AccessControl.pm`,
//! `src/PVE/RPCEnvironment.pm`, `src/PVE/API2/*.pm`).
//!
//! Layout:
//! - [`privileges`]: the privilege catalogue and the built-in roles of a release.
//! - [`model`]: a snapshot of users, groups, tokens, roles and the ACL, and its evaluation
//!   (`permissions`, `roles`, effective permissions, the login `cap`).
//! - [`check`]: the `permissions` objects of the route metadata, checked on every request.
//! - [`endpoints`]: the `/access` endpoints whose semantics go beyond the generic engine.
//! - [`filter`]: lists that only show what the caller may see (`VM.Audit`, `Sys.Audit`, ...).
//! - [`seed`]: the access part of seed fixtures.
//! - [`totp`]: RFC 6238 one-time passwords.
//!
//! # Where the state lives
//!
//! Users (`/access/users/{userid}`, with their group list, password hash and TFA entries under
//! hidden keys), tokens (`.../token/{tokenid}`), groups (`/access/groups/{groupid}`) and custom
//! roles (`/access/roles/{roleid}`) are ordinary store rows, so the generic engine, the seed and
//! `/_mock/state` see them. The ACL is one row, [`model::ACL_ROW`]. Built-in roles are not
//! stored: they come from the catalogue of the schema's release.
//!
//! # Keeping the hot path fast
//!
//! Every request of a user other than `root@pam` is checked against an [`model::AccessModel`],
//! built from the rows above (and pool membership) on first use and then shared
//! ([`AccessCache`]). Any write below `/access` or `/pools`, to a guest, or a reset invalidates
//! it; a generation counter makes sure a model built from
//! older rows is never kept. Evaluating a path walks its segments (`/`, `/vms`, `/vms/103`), so
//! filtering a list of 5,000 guests costs 5,000 short walks, however large the ACL is.

pub mod check;
pub mod endpoints;
pub mod filter;
pub mod model;
pub mod privileges;
pub mod seed;
pub mod totp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use route_metadata::Operation;

use crate::app::{AppState, Caller};
use crate::error::AppError;
use crate::store::Tables;
use crate::validate::Params;
use model::{AccessModel, ROOT};
use privileges::Catalog;

/// The shared, lazily rebuilt [`AccessModel`].
#[derive(Debug)]
pub struct AccessCache {
    catalog: Arc<Catalog>,
    generation: AtomicU64,
    current: RwLock<Option<(u64, Arc<AccessModel>)>>,
}

impl AccessCache {
    /// An empty cache for a release (`9.1.3`).
    pub fn new(release: &str) -> AccessCache {
        AccessCache {
            catalog: Arc::new(Catalog::for_release(release)),
            generation: AtomicU64::new(0),
            current: RwLock::new(None),
        }
    }

    /// The privilege catalogue.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The current generation: it moves on every [`AccessCache::invalidate`], that is after
    /// every write that can change users, tokens, groups, roles, the ACL or pools.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Drops the model; the next request rebuilds it from the store.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// The model for the given tables (the caller holds the store's read guard).
    pub fn model(&self, tables: &Tables) -> Arc<AccessModel> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some((built, model)) = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            && *built == generation
        {
            return Arc::clone(model);
        }
        let model = Arc::new(AccessModel::build(tables, Arc::clone(&self.catalog)));
        let mut current = self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.generation.load(Ordering::SeqCst) == generation {
            *current = Some((generation, Arc::clone(&model)));
        }
        model
    }
}

/// Checks an operation's `permissions` for the caller, before validation and existence checks.
pub fn check_request(
    state: &AppState,
    caller: &Caller,
    op: &Operation,
    params: &Params,
) -> Result<(), AppError> {
    if caller.userid == ROOT {
        return Ok(());
    }
    let tables = state.store.read();
    let model = state.access.model(&tables);
    check::check_api2(&model, op.permissions.as_ref(), &caller.userid, params)?;
    check::handler_check(&model, op, &caller.userid, params)
}

/// Whether a write to this path can change what the access model reads: users, groups,
/// tokens, roles and the ACL (`/access`), and pool membership (`/pools`, and guests, which join
/// pools when created with `pool` and leave them when destroyed).
pub fn touches_access(rel_path: &str) -> bool {
    rel_path.starts_with("/access")
        || rel_path.starts_with("/pools")
        || rel_path.contains("/qemu")
        || rel_path.contains("/lxc")
}
