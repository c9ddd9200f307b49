//! Login: `POST /access/ticket` (`create_ticket`, `create_ticket_do`, `verify_auth` in
//! pve-access-control `src/PVE/API2/AccessControl.pm`): tickets, ticket renewal, TOTP second
//! factors with their challenge tickets, and `path`/`privs` verification.

use serde_json::{Value, json};

use super::tfa::user_tfa;
use super::{password_ok, user_enabled};
use crate::access::acl::normalize_path;
use crate::access::model::{AccessModel, ROOT, flag};
use crate::access::totp::Totp;
use crate::auth::{self};
use crate::error::AppError;
use crate::ops::nodes::cluster_name;
use crate::ops::{Call, Tx};
use crate::schema::split_list;
use crate::store::Tables;
use http::StatusCode;

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

/// `POST /access/ticket` (`create_ticket`): with `path` and `privs` only checks credentials
/// and privileges ([`verify_auth`]); otherwise a ticket (a renewal when the password is a valid
/// ticket), or a TFA challenge ticket when a second factor is due.
pub(crate) fn login(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let username = login_username(call);
    let password = call.arg_str("password").unwrap_or_default();
    let otp = call.arg_str("otp");
    let challenge = call.arg_str("tfa-challenge");
    let now = auth::now();
    // `authenticate_user` starts with `verify_username`: a token ID is not a user name.
    if crate::schema::check_format("pve-userid", &username).is_err() {
        tracing::debug!(%username, "login failed: not a user name");
        return Err(failure());
    }
    if !user_enabled(tables, &username) {
        tracing::debug!(%username, "login failed: no such user or disabled");
        return Err(failure());
    }
    if let (Some(path), Some(privs)) = (call.arg_str("path"), call.arg_str("privs")) {
        return verify_auth(tx, &username, password, path, privs, now);
    }
    if otp.is_some() && challenge.is_some() {
        return Err(failure());
    }
    let renewal = challenge.is_none()
        && tx
            .signer
            .verify_ticket(password, now)
            .is_ok_and(|owner| owner == ROOT || owner == username);
    let need_tfa = if renewal {
        None
    } else {
        verify_factors(tx, &username, password, otp, challenge, now)?
    };
    Ok(ticket_reply(tx, &username, need_tfa, now))
}

/// Proxmox's answer to every failed login.
fn failure() -> AppError {
    AppError::status(StatusCode::UNAUTHORIZED, "authentication failure\n")
}

/// `username`, with `@realm` appended when `realm` is given.
fn login_username(call: &Call<'_>) -> String {
    let username = call.arg_str("username").unwrap_or_default();
    match call.arg_str("realm").filter(|realm| !realm.is_empty()) {
        Some(realm) => format!("{username}@{realm}"),
        None => username.to_owned(),
    }
}

/// `verify_auth`: a ticket, or the password, and every one of `privs` on `path`; the reply has
/// no ticket.
fn verify_auth(
    tx: &Tx<'_>,
    username: &str,
    password: &str,
    path: &str,
    privs: &str,
    now: u64,
) -> Result<Value, AppError> {
    let tables = tx.tables;
    let model = tx.access();
    let ticket_ok = tx
        .signer
        .verify_ticket(password, now)
        .is_ok_and(|owner| owner == username);
    if !ticket_ok && !password_ok(tables, username, password) {
        return Err(failure());
    }
    if !privileges_granted(model, username, path, privs) {
        return Err(failure());
    }
    let mut reply = json!({"username": username, "cap": model.api_capabilities(username)});
    add_clustername(&mut reply, tables, model, username);
    Ok(reply)
}

/// Whether the user has every privilege of a (non-empty) list on a path.
fn privileges_granted(model: &AccessModel, username: &str, path: &str, privs: &str) -> bool {
    let names: Vec<&str> = split_list(privs).collect();
    normalize_path(path).is_some_and(|path| {
        let perms = model.permissions(username, &path);
        !names.is_empty()
            && names.iter().all(|name| {
                model
                    .catalog()
                    .bit(name)
                    .is_some_and(|bit| perms.has_all(bit))
            })
    })
}

/// The factors of a login that is not a renewal: the answer to a TFA challenge (the password
/// field carries `totp:123456`), or the password and, for users with TOTP entries, `otp`.
/// Returns the challenge to send when the second factor is still due.
fn verify_factors(
    tx: &Tx<'_>,
    username: &str,
    password: &str,
    otp: Option<&str>,
    challenge: Option<&str>,
    now: u64,
) -> Result<Option<String>, AppError> {
    let tables = tx.tables;
    let secrets = totp_secrets(tables, username);
    if let Some(challenge) = challenge {
        tx.signer
            .verify_tfa_ticket(challenge, username, now)
            .map_err(|_| failure())?;
        if !second_factor_ok(&secrets, password, now) {
            return Err(failure());
        }
        return Ok(None);
    }
    if !password_ok(tables, username, password) {
        tracing::debug!(%username, "login failed: wrong password");
        return Err(failure());
    }
    if secrets.is_empty() {
        return Ok(None);
    }
    match otp {
        Some(otp) if second_factor_ok(&secrets, otp, now) => Ok(None),
        Some(_) => Err(failure()),
        None => Ok(Some(json!({"totp": true}).to_string())),
    }
}

/// The reply of a successful login: a ticket with the `cap` object, or, when a second factor
/// is due, a TFA challenge ticket with `NeedTFA`.
fn ticket_reply(tx: &Tx<'_>, username: &str, need_tfa: Option<String>, now: u64) -> Value {
    let signer = tx.signer;
    let model = tx.access();
    let mut reply = json!({
        "username": username,
        "CSRFPreventionToken": signer.csrf_token(username, now),
    });
    match need_tfa {
        Some(challenge) => {
            reply["ticket"] = json!(signer.tfa_ticket(&challenge, username, now));
            reply["NeedTFA"] = json!(1);
        }
        None => {
            reply["ticket"] = json!(signer.ticket(username, now));
            reply["cap"] = model.api_capabilities(username);
        }
    }
    add_clustername(&mut reply, tx.tables, model, username);
    reply
}

/// `clustername` for callers with `Sys.Audit` on `/`.
fn add_clustername(reply: &mut Value, tables: &Tables, model: &AccessModel, username: &str) {
    if model.has_any_privilege(username, "/", &["Sys.Audit"]) {
        reply["clustername"] = json!(cluster_name(tables));
    }
}
