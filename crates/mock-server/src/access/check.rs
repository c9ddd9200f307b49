//! The permission checks of the route metadata (`Operation::permissions`), evaluated like
//! `PVE::RPCEnvironment::check_api2_permissions` and `exec_api2_perm_check`
//! (pve-access-control `src/PVE/RPCEnvironment.pm`):
//!
//! - `user: "world"` passes without login; `root@pam` passes everything; an operation without
//!   `permissions` is for `root@pam` only (`Permission check failed (user != root@pam)`);
//!   `user: "all"` passes for any authenticated user, even when a `check` is present;
//! - `["perm", path, privs, "any", 1, "require_param", name]`: every (or any) privilege on the
//!   path, `{param}` templates filled from the request (a missing one becomes `-`, like
//!   `PVE::Tools::template_replace`);
//! - `["and", ...]`, `["or", ...]` (an `or` that fails says only `Permission check failed`);
//! - `["userid-param", "self" | "Realm.AllocateUser"]`, `["userid-group", privs,
//!   "groups_param", "create" | "update"]` and `["perm-modify", path]`;
//! - anything else (only a `description`) fails with `Permission check failed`.
//!
//! A failed check is HTTP 403 with Proxmox's text (`raise_perm_exc` in pve-common
//! `src/PVE/Exception.pm`): `Permission check failed (/vms/103, VM.PowerMgmt)`. Checks run
//! before parameter validation and before any existence look-up, as in `rest_handler`
//! (pve-manager `PVE/HTTPServer.pm`), so a missing guest and a forbidden one look the same.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::Value;

use super::acl::normalize_path;
use super::model::{AccessModel, ROOT};
use crate::error::AppError;
use crate::schema::Params;

/// `raise_perm_exc($what)`.
pub(crate) fn perm_error(what: Option<&str>) -> AppError {
    let message = match what {
        Some(what) if !what.is_empty() => format!("Permission check failed ({what})\n"),
        _ => "Permission check failed\n".to_owned(),
    };
    AppError::status(StatusCode::FORBIDDEN, message)
}

/// A plain failure inside a permission check (a `die`), answered with 403 like
/// `rest_handler`'s `exc_to_res($info, $err, HTTP_FORBIDDEN)`.
fn die_forbidden(message: String) -> AppError {
    AppError::status(StatusCode::FORBIDDEN, message)
}

/// A request parameter as text (`template_replace` and friends see strings).
pub(crate) fn param_text(params: &Params, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => Some(
            items
                .iter()
                .map(|item| match item {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\0"),
        ),
        other => Some(other.to_string()),
    }
}

/// `PVE::Tools::template_replace`: `{name}` becomes the parameter, or `-` when it is unset.
pub(crate) fn template_replace(template: &str, params: &Params) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let value = param_text(params, &after[..close]).filter(|v| !v.is_empty());
                out.push_str(value.as_deref().unwrap_or("-"));
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Evaluates an operation's `permissions` for a caller.
pub(crate) fn check_api2(
    model: &AccessModel,
    permissions: Option<&Value>,
    subject: &str,
    params: &Params,
) -> Result<(), AppError> {
    let user = permissions
        .and_then(|p| p.get("user"))
        .and_then(Value::as_str);
    if subject == ROOT {
        return Ok(());
    }
    let Some(permissions) = permissions else {
        return Err(perm_error(Some("user != root@pam")));
    };
    if matches!(user, Some("all") | Some("world")) {
        return Ok(());
    }
    match permissions.get("check") {
        Some(check) => Checker {
            model,
            subject,
            params,
        }
        .run(check, false)
        .map(|_| ()),
        None => Err(perm_error(None)),
    }
}

/// Evaluates the checks of one request.
struct Checker<'a> {
    model: &'a AccessModel,
    subject: &'a str,
    params: &'a Params,
}

/// A check's items as strings.
fn strings(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(text)) => vec![text.as_str()],
        _ => Vec::new(),
    }
}

/// Trailing `key, value` options of a check (`"any", 1`).
fn options(items: &[Value]) -> Vec<(&str, &Value)> {
    items
        .chunks(2)
        .filter_map(|pair| match pair {
            [Value::String(key), value] => Some((key.as_str(), value)),
            _ => None,
        })
        .collect()
}

fn truthy(value: &Value) -> bool {
    crate::schema::value_bool(value).unwrap_or(false)
}

impl Checker<'_> {
    /// `check` / `check_any` on a normalised path.
    fn check_privs(
        &self,
        path: &str,
        names: &[&str],
        any: bool,
        noerr: bool,
    ) -> Result<bool, AppError> {
        if any {
            let perms = self.model.permissions(self.subject, path);
            if perms.has_any(self.model.catalog().set(names.iter())) {
                return Ok(true);
            }
            if noerr {
                return Ok(false);
            }
            return Err(perm_error(Some(&format!("{path}, {}", names.join("|")))));
        }
        if let Some(name) = super::rpcenv::missing_privilege(self.model, self.subject, path, names)
        {
            if noerr {
                return Ok(false);
            }
            return Err(perm_error(Some(&format!("{path}, {name}"))));
        }
        Ok(true)
    }

    fn userid(&self) -> Option<String> {
        param_text(self.params, "userid")
    }

    /// `check_user_exist`.
    fn user_exists(&self, userid: Option<&str>, noerr: bool) -> Result<bool, AppError> {
        match userid {
            Some(userid) if self.model.user_exists(userid) => Ok(true),
            _ if noerr => Ok(false),
            Some(userid) => Err(die_forbidden(format!("no such user ('{userid}')\n"))),
            None => Err(die_forbidden(
                "value '' does not look like a valid user name\n".to_owned(),
            )),
        }
    }

    /// Evaluates one check (`exec_api2_perm_check`): `Ok(false)` only with `noerr`, when the
    /// check fails.
    fn run(&self, check: &Value, noerr: bool) -> Result<bool, AppError> {
        let Some(items) = check.as_array() else {
            return Err(AppError::Internal("malformed permission check".to_owned()));
        };
        let test = items.first().and_then(Value::as_str).unwrap_or_default();
        match test {
            "and" => self.and(&items[1..]),
            "or" => self.or(&items[1..], noerr),
            "perm" => self.perm(items, noerr),
            "userid-group" => self.userid_group(items, noerr),
            "userid-param" => self.userid_param(items, noerr),
            "perm-modify" => self.perm_modify(items, noerr),
            _ => Err(AppError::Internal(format!(
                "unknown permission test '{test}'"
            ))),
        }
    }

    /// `["and", ...]`: every sub-check passes. Sub-checks of an `and` always raise, even inside
    /// an `or`.
    fn and(&self, subs: &[Value]) -> Result<bool, AppError> {
        for sub in subs {
            self.run(sub, false)?;
        }
        Ok(true)
    }

    /// `["or", ...]`: the first sub-check that passes; if none does, a bare
    /// `Permission check failed`.
    fn or(&self, subs: &[Value], noerr: bool) -> Result<bool, AppError> {
        for sub in subs {
            if self.run(sub, true)? {
                return Ok(true);
            }
        }
        fail(noerr, None)
    }

    /// `["perm", path, privs, "any", 1, "require_param", name]`: the privileges (all, or any)
    /// on the path with its `{param}` templates filled.
    fn perm(&self, items: &[Value], noerr: bool) -> Result<bool, AppError> {
        let template = items.get(1).and_then(Value::as_str).unwrap_or_default();
        let names = strings(items.get(2));
        let opts = options(items.get(3..).unwrap_or_default());
        let any = opts.iter().any(|(k, v)| *k == "any" && truthy(v));
        if let Some((_, name)) = opts.iter().find(|(k, _)| *k == "require_param")
            && let Some(name) = name.as_str()
            && param_text(self.params, name).is_none()
        {
            return fail(noerr, None);
        }
        let path = template_replace(template, self.params);
        let Some(path) = normalize_path(&path) else {
            return fail(noerr, Some(&format!("{path}, {}", names.join("|"))));
        };
        self.check_privs(&path, &names, any, noerr)
    }

    /// `["userid-group", privs, "groups_param", "create" | "update"]`: the privileges on
    /// `/access/groups`, or on every group named in `groups` and on a group the user (unless it
    /// is being created) is a member of.
    fn userid_group(&self, items: &[Value], noerr: bool) -> Result<bool, AppError> {
        let names = strings(items.get(1));
        let opts = options(items.get(2..).unwrap_or_default());
        let groups_param = opts
            .iter()
            .find(|(k, _)| *k == "groups_param")
            .and_then(|(_, v)| v.as_str());
        let check_existing = groups_param != Some("create");
        let userid = self.userid();
        if check_existing && !self.user_exists(userid.as_deref(), noerr)? {
            return Ok(false);
        }
        if self
            .model
            .has_any_privilege(self.subject, "/access/groups", &names)
        {
            return Ok(true);
        }
        let allowed_groups = self.model.groups_granting(self.subject, &names);
        if groups_param.is_some() {
            self.check_groups_param(&allowed_groups, &names)?;
        }
        if check_existing {
            let userid = userid.unwrap_or_default();
            let member = allowed_groups
                .iter()
                .any(|(_, members)| members.contains(&userid));
            if !member {
                return fail(noerr, None);
            }
        }
        Ok(true)
    }

    /// The `groups` parameter of a `userid-group` check with `groups_param`: present, and only
    /// naming groups the caller has the privileges on (this always raises).
    fn check_groups_param(
        &self,
        allowed_groups: &[(&String, &BTreeSet<String>)],
        names: &[&str],
    ) -> Result<(), AppError> {
        let joined = names.join("|");
        let wanted: Vec<String> = param_text(self.params, "groups")
            .map(|text| {
                crate::schema::split_list(&text)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        if wanted.is_empty() {
            return Err(perm_error(Some(&format!("/access/groups, {joined}"))));
        }
        for group in &wanted {
            if !allowed_groups.iter().any(|(allowed, _)| *allowed == group) {
                return Err(perm_error(Some(&format!(
                    "/access/groups/{group}, {joined}"
                ))));
            }
        }
        Ok(())
    }

    /// `["userid-param", "self" | "Realm.AllocateUser"]`: the `userid` parameter is the caller
    /// (and exists), or the caller may allocate users in its realm.
    fn userid_param(&self, items: &[Value], noerr: bool) -> Result<bool, AppError> {
        let userid = self.userid();
        match items.get(1).and_then(Value::as_str) {
            Some("self") => {
                if !self.user_exists(userid.as_deref(), noerr)? {
                    return Ok(false);
                }
                if userid.as_deref() == Some(self.subject) {
                    Ok(true)
                } else {
                    fail(noerr, None)
                }
            }
            Some("Realm.AllocateUser") => {
                let realm = userid
                    .as_deref()
                    .and_then(|u| u.rsplit_once('@'))
                    .map(|(_, realm)| realm.to_owned())
                    .unwrap_or_default();
                self.check_privs(
                    &format!("/access/realm/{realm}"),
                    &["Realm.AllocateUser"],
                    false,
                    noerr,
                )
            }
            _ => Err(AppError::Internal("unknown userid-param test".to_owned())),
        }
    }

    /// `["perm-modify", path]`: see [`check_perm_modify`].
    fn perm_modify(&self, items: &[Value], noerr: bool) -> Result<bool, AppError> {
        let template = items.get(1).and_then(Value::as_str).unwrap_or_default();
        let Some(path) = normalize_path(&template_replace(template, self.params)) else {
            return Ok(false);
        };
        check_perm_modify(self.model, self.subject, &path, noerr)
    }
}

/// A failed check: `Ok(false)` with `noerr`, else `raise_perm_exc($what)`.
fn fail(noerr: bool, what: Option<&str>) -> Result<bool, AppError> {
    if noerr {
        Ok(false)
    } else {
        Err(perm_error(what))
    }
}

/// Checks Proxmox makes inside handlers whose metadata only says `user: "all"` (with a
/// `description`), where they need nothing but the request's parameters: replication jobs
/// (`VM.Replicate` / `VM.Audit` on the job's guest), and creating a guest, which needs
/// `VM.Allocate` on `/vms/{vmid}` or on the pool given as `pool` (`check_vm_perm` in
/// `create_vm`, qemu-server `src/PVE/API2/Qemu.pm`, and pve-container
/// `src/PVE/API2/LXC.pm`); a restore (`archive`) also passes with `VM.Backup`.
pub(crate) fn handler_check(
    model: &AccessModel,
    op: &route_metadata::Operation,
    subject: &str,
    params: &Params,
) -> Result<(), AppError> {
    if subject == ROOT {
        return Ok(());
    }
    let checker = Checker {
        model,
        subject,
        params,
    };
    if op.path.starts_with("/cluster/replication") {
        return replication_check(&checker, op, params);
    }
    let creates_guest = op.method == route_metadata::Method::Post
        && matches!(op.path.as_str(), "/nodes/{node}/qemu" | "/nodes/{node}/lxc");
    if !creates_guest {
        return Ok(());
    }
    let vmid = param_text(params, "vmid").unwrap_or_default();
    let vm_path = normalize_path(&format!("/vms/{vmid}")).unwrap_or_else(|| "/vms".to_owned());
    if param_text(params, "archive").is_some()
        && checker.check_privs(&vm_path, &["VM.Backup"], false, true)?
    {
        return Ok(());
    }
    if let Some(pool) = param_text(params, "pool")
        && checker.check_privs(&format!("/pool/{pool}"), &["VM.Allocate"], false, true)?
    {
        return Ok(());
    }
    checker
        .check_privs(&vm_path, &["VM.Allocate"], false, false)
        .map(|_| ())
}

/// Replication jobs (pve-manager `PVE/API2/ReplicationConfig.pm`): reading one needs
/// `VM.Audit`, creating, changing or deleting one `VM.Replicate` on the guest its ID names
/// (`<vmid>-<jobnum>`). An ID that does not parse is left to the parameter check.
fn replication_check(
    checker: &Checker<'_>,
    op: &route_metadata::Operation,
    params: &Params,
) -> Result<(), AppError> {
    let Some(id) = param_text(params, "id") else {
        return Ok(());
    };
    let Some((guest, job)) = id.split_once('-') else {
        return Ok(());
    };
    let number = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !number(guest) || !number(job) {
        return Ok(());
    }
    let privilege = match op.method {
        route_metadata::Method::Get if op.path == "/cluster/replication" => return Ok(()),
        route_metadata::Method::Get => "VM.Audit",
        _ => "VM.Replicate",
    };
    checker
        .check_privs(&format!("/vms/{guest}"), &[privilege], false, false)
        .map(|_| ())
}

/// `check_perm_modify`: `Permissions.Modify`, or the allocation privilege of the object
/// (`Datastore.Allocate` on a storage, `VM.Allocate` on a guest, `Pool.Allocate` on a pool).
pub(crate) fn check_perm_modify(
    model: &AccessModel,
    subject: &str,
    path: &str,
    noerr: bool,
) -> Result<bool, AppError> {
    let mut names = vec!["Permissions.Modify"];
    if path.starts_with("/storage/") {
        names.push("Datastore.Allocate");
    } else if path.starts_with("/vms/") {
        names.push("VM.Allocate");
    } else if path.starts_with("/pool/") {
        names.push("Pool.Allocate");
    }
    if model.has_any_privilege(subject, path, &names) {
        return Ok(true);
    }
    if noerr {
        return Ok(false);
    }
    Err(perm_error(Some(&format!("{path}, {}", names.join("|")))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_are_filled_like_proxmox() {
        let mut params = Params::new();
        params.insert("vmid".to_owned(), json!("103"));
        params.insert("n".to_owned(), json!(7));
        assert_eq!(template_replace("/vms/{vmid}", &params), "/vms/103");
        assert_eq!(template_replace("/vms/{newid}", &params), "/vms/-");
        assert_eq!(template_replace("/x/{n}/y", &params), "/x/7/y");
        assert_eq!(template_replace("/broken/{", &params), "/broken/{");
        assert_eq!(
            perm_error(Some("/vms/103, VM.PowerMgmt")).message(),
            "Permission check failed (/vms/103, VM.PowerMgmt)\n"
        );
    }
}
