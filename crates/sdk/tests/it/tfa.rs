//! Second-factor logins, against a canned server (the mock has no TFA users).
//!
//! The exchange follows `create_ticket_do` in Proxmox's `pve-access-control`: the first
//! `POST /access/ticket` answers `NeedTFA: 1` with a half ticket naming the offered factors, the
//! second sends it back as `tfa-challenge` with the answer, prefixed by its kind, as `password`.

use std::sync::{Arc, Mutex};

use proxmox_sdk::{Client, TfaResponse};
use serde_json::{Value, json};

use crate::CannedServer;

const HALF_TICKET: &str =
    "PVE:!tfa!%7B%22totp%22%3Atrue%2C%22recovery%22%3A%5B0%2C2%5D%7D:6B000000::c2lnbmF0dXJl";
const FULL_TICKET: &str = "PVE:alice@pve:6B000000::ZnVsbHNpZ25hdHVyZQ==";

/// A server where `alice@pve` has password `pw` and TOTP code `123456`; records login bodies.
async fn tfa_server() -> (CannedServer, Arc<Mutex<Vec<Value>>>) {
    let logins = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&logins);
    let server = CannedServer::start(move |request| {
        let request_line = request.lines().next().unwrap_or_default();
        let body = request.split("\r\n\r\n").nth(1).unwrap_or_default();
        if request_line.starts_with("POST /api2/json/access/ticket") {
            let params: Value = serde_json::from_str(body).unwrap_or(Value::Null);
            recorded.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(params.clone());
            let refused = Some((401, json!({"data": null}).to_string()));
            return match (params["username"].as_str(), params["password"].as_str(), params["tfa-challenge"].as_str()) {
                (Some("alice@pve"), Some("pw"), None) => Some((
                    200,
                    json!({"data": {"username": "alice@pve", "ticket": HALF_TICKET, "CSRFPreventionToken": "6B000000:half", "NeedTFA": 1}})
                        .to_string(),
                )),
                (Some("alice@pve"), Some("totp:123456"), Some(HALF_TICKET)) => Some((
                    200,
                    json!({"data": {"username": "alice@pve", "ticket": FULL_TICKET, "CSRFPreventionToken": "6B000000:full"}})
                        .to_string(),
                )),
                _ => refused,
            };
        }
        if request_line.starts_with("GET /api2/json/version") {
            let authorized = request.contains(&format!("PVEAuthCookie={FULL_TICKET}"));
            return Some(if authorized {
                (200, json!({"data": {"version": "9.1.3"}}).to_string())
            } else {
                (401, json!({"data": null}).to_string())
            });
        }
        Some((501, json!({"data": null}).to_string()))
    })
    .await;
    (server, logins)
}

/// The version, proving the full ticket is in use.
async fn version(client: &Client) -> proxmox_sdk::Result<String> {
    let version: Value = client.get("/version", &()).await?;
    Ok(version["version"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn otp_answers_the_challenge() {
    let (server, logins) = tfa_server().await;
    let client = Client::builder()
        .base_url(&server.url)
        .password("alice@pve", "pw")
        .otp("123456")
        .build()
        .expect("valid");
    assert_eq!(version(&client).await.expect("two-step login"), "9.1.3");
    let logins = logins
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    assert_eq!(logins.len(), 2, "{logins:?}");
    assert_eq!(logins[1]["password"], "totp:123456");
    assert_eq!(logins[1]["tfa-challenge"], HALF_TICKET);
}

#[tokio::test]
async fn otp_may_come_before_the_password() {
    let (server, _logins) = tfa_server().await;
    let client = Client::builder()
        .base_url(&server.url)
        .otp("123456")
        .password("alice@pve", "pw")
        .build()
        .expect("valid");
    assert_eq!(version(&client).await.expect("two-step login"), "9.1.3");
}

#[tokio::test]
async fn unanswered_challenge_is_returned_for_a_second_call() {
    let (server, _logins) = tfa_server().await;
    let client = Client::builder()
        .base_url(&server.url)
        .password("alice@pve", "pw")
        .build()
        .expect("valid");
    let error = client.login().await.expect_err("needs a second factor");
    assert!(error.is_auth(), "{error:?}");
    let challenge = error.tfa_challenge().cloned().expect("a challenge");
    assert!(challenge.offers_totp() && challenge.offers_recovery() && !challenge.offers_webauthn());
    assert_eq!(challenge.username(), "alice@pve");
    assert!(
        !format!("{error:?}").contains("c2lnbmF0dXJl"),
        "the half ticket is redacted"
    );

    client
        .complete_tfa(&challenge, TfaResponse::totp("123456"))
        .await
        .expect("second call");
    assert_eq!(version(&client).await.expect("logged in"), "9.1.3");
    assert_eq!(
        client
            .ticket()
            .await
            .map(|ticket| ticket.username().to_owned())
            .as_deref(),
        Some("alice@pve")
    );
}

#[tokio::test]
async fn callback_answers_the_challenge() {
    let (server, _logins) = tfa_server().await;
    let client = Client::builder()
        .base_url(&server.url)
        .password("alice@pve", "pw")
        .tfa_callback(|challenge| challenge.offers_totp().then(|| TfaResponse::totp("123456")))
        .build()
        .expect("valid");
    assert_eq!(version(&client).await.expect("callback answered"), "9.1.3");
}

#[tokio::test]
async fn wrong_code_is_refused() {
    let (server, _logins) = tfa_server().await;
    let client = Client::builder()
        .base_url(&server.url)
        .password("alice@pve", "pw")
        .otp("000000")
        .build()
        .expect("valid");
    let error = client.login().await.expect_err("wrong code");
    assert!(
        error.is_auth() && error.tfa_challenge().is_none(),
        "{error:?}"
    );
    assert_eq!(error.status().map(|status| status.as_u16()), Some(401));
}
