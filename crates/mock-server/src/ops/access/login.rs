//! Login: `POST /access/ticket` (`create_ticket`, `create_ticket_do`, `verify_auth` in
//! pve-access-control `src/PVE/API2/AccessControl.pm`): tickets, ticket renewal, TOTP second
//! factors with their challenge tickets, and `path`/`privs` verification.

use serde_json::{Value, json};

use super::tfa::user_tfa;
use super::{has_any, password_ok, user_enabled};
use crate::access::model::{AccessModel, ROOT, flag, normalize_path};
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

pub(crate) fn login(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let tables = tx.tables;
    let model = tx.access();
    let failure = || AppError::status(StatusCode::UNAUTHORIZED, "authentication failure\n");
    let mut username = call.arg_str("username").unwrap_or_default().to_owned();
    if let Some(realm) = call.arg_str("realm").filter(|realm| !realm.is_empty()) {
        username = format!("{username}@{realm}");
    }
    let password = call.arg_str("password").unwrap_or_default();
    let otp = call.arg_str("otp");
    let challenge = call.arg_str("tfa-challenge");
    let now = auth::now();
    if !user_enabled(tables, &username) {
        tracing::debug!(%username, "login failed: no such user or disabled");
        return Err(failure());
    }
    let signer = tx.signer;
    let mut need_tfa: Option<String> = None;
    if let (Some(path), Some(privs)) = (call.arg_str("path"), call.arg_str("privs")) {
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
