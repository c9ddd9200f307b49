//! The OpenID Connect endpoints (pve-access-control `src/PVE/API2/OpenId.pm`): `auth-url`
//! looks the realm up and answers the identity provider's authorization URL; `login` answers
//! `authentication failure` (401) for every state it cannot verify, which for the mock is every
//! state: it talks to no identity provider, so an OpenID login cannot complete against it.

use serde_json::Value;

use crate::error::AppError;
use crate::ops::{Call, Tx, text};

/// `POST /access/openid/auth-url`: `authentication domain '<realm>' does not exist` or
/// `wrong realm type (<type> != openid)` (plain `die`s, HTTP 500), else the provider's
/// authorization endpoint with the client ID, redirect URL, scopes and a state.
pub(crate) fn auth_url(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let realm = call.arg_text("realm").unwrap_or_default();
    let Some(config) = tx.tables.get(&format!("/access/domains/{realm}")) else {
        return Err(AppError::die(format!(
            "authentication domain '{realm}' does not exist\n"
        )));
    };
    let kind = config.get("type").map(text).unwrap_or_default();
    if kind != "openid" {
        return Err(AppError::die(format!(
            "wrong realm type ({kind} != openid)\n"
        )));
    }
    let issuer = config.get("issuer-url").map(text).unwrap_or_default();
    let client = config.get("client-id").map(text).unwrap_or_default();
    let scopes = config
        .get("scopes")
        .map(text)
        .unwrap_or_else(|| "email profile".to_owned());
    let redirect = call.arg_text("redirect-url").unwrap_or_default();
    let encode = |value: &str| {
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let state = format!("{realm}!{:016x}", rand::random::<u64>());
    Ok(Value::String(format!(
        "{}/authorize?response_type=code&client_id={}&state={}&redirect_uri={}&scope={}",
        issuer.trim_end_matches('/'),
        encode(&client),
        encode(&state),
        encode(&redirect),
        encode(&format!("openid {scopes}")),
    )))
}

/// `POST /access/openid/login`: Proxmox hides why a login failed ("do not return any info to
/// prevent user enumeration attacks"): 401 `authentication failure`.
pub(crate) fn login(_call: &Call<'_>, _tx: &Tx<'_>) -> Result<Value, AppError> {
    Err(AppError::Unauthorized(
        "authentication failure\n".to_owned(),
    ))
}
