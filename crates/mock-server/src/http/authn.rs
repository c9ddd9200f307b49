//! Authentication of `/api2` requests, `PVE::HTTPServer::auth_handler`: a ticket (cookie or
//! `Authorization` header) with its CSRF token on writes, or an API token
//! (`PVEAPIToken=user@realm!name=secret`). An upload (`POST .../storage/{storage}/upload`) needs
//! no CSRF token but `Datastore.AllocateTemplate` on its storage, checked from the request head
//! before any of its body is read ([`check_upload`]). Verified tickets and tokens are cached
//! ([`crate::auth::AuthCache`]) for as long as the access rows they were checked against do not
//! change (`Tables::access_rev`).

use std::borrow::Cow;

use http::{HeaderMap, header};
use route_metadata::Method;
use serde_json::Value;

use crate::access::{Caller, check_user_enabled};
use crate::auth::{self, COOKIE_NAME, SECRET_KEY, TOKEN_SCHEME};
use crate::error::AppError;
use crate::schema::Params;
use crate::state::AppState;

/// `PVE::HTTPServer::auth_handler`.
pub(super) fn authenticate(
    state: &AppState,
    method: Method,
    rel_path: &str,
    headers: &HeaderMap,
) -> Result<Caller, AppError> {
    let upload = upload_storage(method, rel_path).is_some();
    let rel_path = rel_path.trim_end_matches('/');
    let exempt = (rel_path == "/access/domains" && method == Method::Get)
        || (rel_path == "/access/ticket" && matches!(method, Method::Get | Method::Post))
        || (rel_path == "/access/vncticket" && method == Method::Post)
        || (rel_path == "/access/openid/login" && method == Method::Post)
        || (rel_path == "/access/openid/auth-url" && method == Method::Post);
    if exempt || !state.settings.auth {
        return Ok(Caller {
            userid: "root@pam".to_owned(),
            api_token: false,
        });
    }
    // A header's values joined with "; " (borrowed when there is one, as nearly always).
    let header_text = |name: header::HeaderName| -> Option<Cow<'_, str>> {
        let mut values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
        let first = values.next()?;
        let Some(second) = values.next() else {
            return Some(Cow::Borrowed(first));
        };
        let mut joined = [first, second].join("; ");
        for value in values {
            joined.push_str("; ");
            joined.push_str(value);
        }
        Some(Cow::Owned(joined))
    };
    let cookie = header_text(header::COOKIE);
    let authorization = header_text(header::AUTHORIZATION);
    let ticket = cookie
        .as_deref()
        .and_then(|c| auth::extract_auth_value(c, COOKIE_NAME))
        .or_else(|| {
            authorization
                .as_deref()
                .and_then(|a| auth::extract_auth_value(a, COOKIE_NAME))
        });
    let now = auth::now();
    // An API token counts only when no ticket came (`AnyEvent.pm`, `handle_request`: "finally,
    // fallback to API token if no ticket has been provided so far").
    if ticket.is_none()
        && let Some(token) = authorization
            .as_deref()
            .and_then(|a| auth::extract_auth_value(a, TOKEN_SCHEME))
    {
        return authenticate_token(state, &token, now);
    }
    let Some(ticket) = ticket else {
        return Err(AppError::Unauthorized("No ticket\n".to_owned()));
    };
    let userid = ticket_user(state, &ticket, now)?;
    // Uploads skip the CSRF check ("difficult to pass CSRF header with native html forms").
    if method != Method::Get && !upload {
        let token = headers
            .get("CSRFPreventionToken")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        state
            .auth_cache
            .verify_csrf(&state.signer, &userid, token, now)?;
    }
    Ok(Caller {
        userid,
        api_token: false,
    })
}

/// The user of a valid ticket: signed by this instance, not too old, and its user enabled and
/// not expired (checked again whenever the access rows changed since the ticket was cached).
fn ticket_user(state: &AppState, ticket: &str, now: u64) -> Result<String, AppError> {
    let invalid = || AppError::Unauthorized("permission denied - invalid PVE ticket\n".to_owned());
    let tables = state.store.read();
    let generation = tables.access_rev;
    if let Some(hit) = state.auth_cache.ticket(ticket) {
        if !state.signer.age_ok(hit.issued, now) {
            return Err(invalid());
        }
        if hit.generation == generation {
            if crate::access::expired(hit.user_expire, now) {
                return Err(AppError::Unauthorized(format!(
                    "user '{}' access expired\n",
                    hit.userid
                )));
            }
        } else {
            let user_expire =
                check_user_enabled(&tables, &hit.userid, now).map_err(AppError::Unauthorized)?;
            state.auth_cache.put_ticket(
                ticket,
                auth::TicketVerdict {
                    generation,
                    user_expire,
                    ..hit.clone()
                },
            );
        }
        return Ok(hit.userid);
    }
    let (userid, issued) = state.signer.verify_ticket_signature(ticket)?;
    // A ticket names a user; an API token never logs in (`verify_ticket` splits the user name
    // with `verify_username`).
    if userid.contains('!') {
        return Err(invalid());
    }
    if !state.signer.age_ok(issued, now) {
        return Err(invalid());
    }
    let user_expire = check_user_enabled(&tables, userid, now).map_err(AppError::Unauthorized)?;
    state.auth_cache.put_ticket(
        ticket,
        auth::TicketVerdict {
            userid: userid.to_owned(),
            issued,
            generation,
            user_expire,
        },
    );
    Ok(userid.to_owned())
}

/// `PVEAPIToken=user@realm!name=secret`: a cached verdict of the current access rows whose
/// secret digest matches (in constant time), or the full check against the rows.
fn authenticate_token(state: &AppState, token: &str, now: u64) -> Result<Caller, AppError> {
    let tables = state.store.read();
    let generation = tables.access_rev;
    if let Some((tokenid, secret)) = token.rsplit_once('=')
        && let Some(hit) = state.auth_cache.token(tokenid)
        && hit.generation == generation
        && auth::constant_time_eq(&auth::secret_digest(secret), &hit.secret_digest)
        && !crate::access::expired(hit.user_expire, now)
        && !crate::access::expired(hit.token_expire, now)
    {
        return Ok(Caller {
            userid: tokenid.to_owned(),
            api_token: true,
        });
    }
    let (userid, token_name, secret) = auth::split_api_token(token)?;
    let user_expire = check_user_enabled(&tables, &userid, now).map_err(AppError::Unauthorized)?;
    let stored = tables
        .get(&format!("/access/users/{userid}/token/{token_name}"))
        .ok_or_else(|| {
            AppError::Unauthorized(format!(
                "no such token '{token_name}' for user '{userid}'\n"
            ))
        })?;
    let token_expire = stored.get("expire").and_then(Value::as_u64);
    if crate::access::expired(token_expire, now) {
        return Err(AppError::Unauthorized(format!(
            "token '{token_name}' access expired\n"
        )));
    }
    let valid = stored
        .get(SECRET_KEY)
        .and_then(Value::as_str)
        .is_some_and(|hash| auth::verify_secret(hash, &secret));
    if !valid {
        return Err(AppError::Unauthorized("invalid token value!\n".to_owned()));
    }
    let caller = format!("{userid}!{token_name}");
    state.auth_cache.put_token(
        &caller,
        auth::TokenVerdict {
            generation,
            secret_digest: auth::secret_digest(&secret),
            user_expire,
            token_expire,
        },
    );
    Ok(Caller {
        userid: caller,
        api_token: true,
    })
}

/// The storage of an upload request (`auth_handler`: `POST` on
/// `^/nodes/([^/]+)/storage/([^/]+)/upload$`), if `rel_path` (decoded, relative to
/// `/api2/json`) is one.
pub(super) fn upload_storage(method: Method, rel_path: &str) -> Option<&str> {
    if method != Method::Post {
        return None;
    }
    let rest = rel_path.strip_prefix("/nodes/")?;
    let (node, rest) = rest.split_once('/')?;
    let (storage, tail) = rest.strip_prefix("storage/")?.split_once('/')?;
    (!node.is_empty() && !storage.is_empty() && tail == "upload").then_some(storage)
}

/// `auth_handler`'s check of an upload, made before any of the body is read:
/// `Datastore.AllocateTemplate` on `/storage/{storage}` (403 `Permission check failed`).
pub(super) fn check_upload(
    state: &AppState,
    caller: &Caller,
    storage: &str,
) -> Result<(), AppError> {
    let check = serde_json::json!({
        "check": ["perm", format!("/storage/{storage}"), ["Datastore.AllocateTemplate"]],
    });
    let tables = state.store.read();
    let model = state.access.model(&tables);
    crate::access::check::check_api2(&model, Some(&check), &caller.userid, &Params::new())
}
