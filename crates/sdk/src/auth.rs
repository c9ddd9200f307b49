//! Authentication: API tokens, password logins with tickets, and second-factor (TFA) challenges.
//!
//! # API tokens
//!
//! A token is sent on every request as `Authorization: PVEAPIToken=user@realm!tokenid=secret`.
//! Nothing else is needed: no CSRF token, no renewal.
//!
//! # Tickets
//!
//! A password login is `POST /access/ticket` with `username` and `password`.
//! The answer carries a ticket, sent back as the `PVEAuthCookie` cookie, and a CSRF token, sent as
//! the `CSRFPreventionToken` header on every request that is not a `GET` or `HEAD`.
//! Tickets are valid for two hours.
//! This client renews a ticket when a request is made in the last quarter of its lifetime (at most
//! the last 15 minutes), by posting the ticket itself as the password, as the Proxmox web UI does;
//! if that is refused, or the ticket has expired, it logs in again with the password.
//! A `401` answer to a request also triggers one renewal, after which the request is sent once more.
//!
//! Renewal is single-flight: the ticket lives behind a `tokio::sync::Mutex`, and the request that
//! finds it stale logs in while holding the lock.
//! Every other request waits for that one login and then uses its ticket.
//! After a `401`, a request renews only if the ticket it used is still the current one (compared by
//! [`Ticket::sequence`]), so fifty requests rejected together cause one login, not fifty.
//!
//! # Second factors
//!
//! When the user has TFA configured, the first `POST /access/ticket` answers with `NeedTFA: 1` and a
//! half-authenticated ticket of the form `PVE:!tfa!<challenge>:<time>::<signature>`, where
//! `<challenge>` is percent-encoded JSON naming the factors on offer (`totp`, `recovery`, `yubico`,
//! `webauthn`, `u2f`).
//! The client answers with a second `POST /access/ticket` carrying `username`, the half ticket as
//! `tfa-challenge`, and the answer as `password`, prefixed by its kind: `totp:123456`,
//! `recovery:abcd-…`, `yubico:…`, `webauthn:<json>` (see `create_ticket_do` in Proxmox's
//! `pve-access-control`, `src/PVE/API2/AccessControl.pm`).
//! The answer comes from [`ClientBuilder::otp`](crate::ClientBuilder::otp) (a TOTP code), from a
//! [`ClientBuilder::tfa_callback`](crate::ClientBuilder::tfa_callback), or, when neither is set,
//! from the caller: the login fails with an [`AuthError`] carrying the
//! [`TfaChallenge`], which [`Client::complete_tfa`](crate::Client::complete_tfa) answers.
//!
//! # Secrets
//!
//! Passwords, token secrets, tickets and CSRF tokens are held in [`SecretString`], whose `Debug`
//! and `Display` print `<redacted>`, and every header built from them is marked sensitive.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::envelope::{decode_envelope, reason_phrase};
use crate::error::{ApiError, AuthError, Error, Result};

pub use crate::secret::SecretString;
pub use crate::tfa::{TfaChallenge, TfaResponse};

/// The API path of the login endpoint.
pub(crate) const TICKET_PATH: &str = "/access/ticket";

/// The default ticket lifetime, as issued by Proxmox VE.
pub const DEFAULT_TICKET_LIFETIME: Duration = Duration::from_secs(2 * 60 * 60);

/// The longest time before expiry at which a ticket is renewed.
const MAX_RENEWAL_MARGIN: Duration = Duration::from_secs(15 * 60);

/// How the client proves who it is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Credentials {
    /// An API token; no login, no CSRF token.
    Token {
        /// The token's full id, `user@realm!tokenid`.
        id: String,
        /// The token's secret (a UUID).
        secret: SecretString,
    },
    /// A user name and password, exchanged for a ticket.
    Password {
        /// The user, `user@realm`.
        username: String,
        /// The password.
        password: SecretString,
        /// A TOTP code to answer a second-factor challenge with, if one comes.
        otp: Option<SecretString>,
    },
}

/// A login ticket and its CSRF token.
///
/// Obtained by [`Client::ticket`](crate::Client::ticket); the client manages tickets itself, so
/// this is only needed to hand a ticket to something else (a VNC web socket, a browser).
pub struct Ticket {
    value: SecretString,
    csrf_token: SecretString,
    username: String,
    obtained: Instant,
    sequence: u64,
    cookie_header: HeaderValue,
    csrf_header: HeaderValue,
}

impl Ticket {
    /// Builds a ticket and the headers that carry it.
    fn new(value: String, csrf_token: String, username: String, sequence: u64) -> Result<Self> {
        let cookie_header = sensitive_header(&format!(
            "PVEAuthCookie={}",
            utf8_percent_encode(&value, COOKIE_UNSAFE)
        ))?;
        let csrf_header = sensitive_header(&csrf_token)?;
        Ok(Ticket {
            value: SecretString::new(value),
            csrf_token: SecretString::new(csrf_token),
            username,
            obtained: Instant::now(),
            sequence,
            cookie_header,
            csrf_header,
        })
    }

    /// The ticket, as sent in the `PVEAuthCookie` cookie.
    pub fn expose_value(&self) -> &str {
        self.value.expose()
    }

    /// The CSRF token, as sent in the `CSRFPreventionToken` header.
    pub fn expose_csrf_token(&self) -> &str {
        self.csrf_token.expose()
    }

    /// The user the ticket belongs to, as normalised by the server.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// How long ago the ticket was issued.
    pub fn age(&self) -> Duration {
        self.obtained.elapsed()
    }

    /// Which ticket this is: 1 for the first one this client obtained, then 2, 3, … per renewal.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The `Cookie` header value.
    pub(crate) fn cookie_header(&self) -> &HeaderValue {
        &self.cookie_header
    }

    /// The `CSRFPreventionToken` header value.
    pub(crate) fn csrf_header(&self) -> &HeaderValue {
        &self.csrf_header
    }

    /// Whether the ticket is close enough to expiry to be renewed.
    fn needs_renewal(&self, lifetime: Duration) -> bool {
        self.age() >= renew_after(lifetime)
    }

    /// Whether the ticket has expired.
    fn is_expired(&self, lifetime: Duration) -> bool {
        self.age() >= lifetime
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("value", &self.value)
            .field("csrf_token", &self.csrf_token)
            .field("username", &self.username)
            .field("age", &self.age())
            .field("sequence", &self.sequence)
            .finish()
    }
}

/// The age at which a ticket with the given lifetime is renewed.
pub(crate) fn renew_after(lifetime: Duration) -> Duration {
    lifetime - (lifetime / 4).min(MAX_RENEWAL_MARGIN)
}

/// Characters that may not appear raw in a cookie value (RFC 6265 `cookie-octet`).
///
/// Proxmox tickets only contain letters, digits and `:@!+/=-_.`, so in practice nothing is
/// encoded, and Proxmox percent-decodes the cookie anyway.
const COOKIE_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%');

/// Builds a header value marked sensitive, so it is left out of `Debug` output and HTTP/2 tables.
///
/// The error never contains the value.
pub(crate) fn sensitive_header(value: &str) -> Result<HeaderValue> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        Error::config("a credential contains characters that cannot be sent in an HTTP header")
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// A function that answers second-factor challenges, for example by prompting the user.
///
/// It is called from async code, while the ticket lock is held; a prompt on the terminal is fine
/// for scripts, a long wait blocks every request of this client.
pub type TfaCallback = Arc<dyn Fn(&TfaChallenge) -> Option<TfaResponse> + Send + Sync>;

/// What the login endpoint answers.
#[derive(Deserialize)]
struct TicketReply {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    ticket: Option<String>,
    #[serde(default, rename = "CSRFPreventionToken")]
    csrf_token: Option<String>,
    #[serde(default, rename = "NeedTFA")]
    need_tfa: Option<serde_json::Value>,
}

impl TicketReply {
    /// Whether the answer is a second-factor challenge.
    fn needs_tfa(&self) -> bool {
        match &self.need_tfa {
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => false,
            Some(serde_json::Value::Number(number)) => number.as_u64() != Some(0),
            Some(serde_json::Value::String(text)) => !matches!(text.as_str(), "" | "0"),
            Some(_) => true,
        }
    }
}

/// What a login needs from the client: the HTTP client and the URL of `/access/ticket`.
pub(crate) struct LoginTransport<'a> {
    /// The shared HTTP client.
    pub(crate) http: &'a reqwest::Client,
    /// The full URL of the login endpoint.
    pub(crate) ticket_url: &'a Url,
}

/// Password credentials and the current ticket.
pub(crate) struct TicketAuth {
    username: String,
    password: SecretString,
    otp: Option<SecretString>,
    tfa_callback: Option<TfaCallback>,
    lifetime: Duration,
    state: tokio::sync::Mutex<TicketState>,
}

/// The ticket lock's contents.
#[derive(Default)]
struct TicketState {
    current: Option<Arc<Ticket>>,
    n_tickets: u64,
}

impl TicketAuth {
    /// Credentials without a ticket yet; the first request logs in.
    pub(crate) fn new(
        username: String,
        password: SecretString,
        otp: Option<SecretString>,
        tfa_callback: Option<TfaCallback>,
        lifetime: Duration,
    ) -> Self {
        TicketAuth {
            username,
            password,
            otp,
            tfa_callback,
            lifetime,
            state: tokio::sync::Mutex::new(TicketState::default()),
        }
    }

    /// The current ticket, without logging in.
    pub(crate) async fn peek(&self) -> Option<Arc<Ticket>> {
        self.state.lock().await.current.clone()
    }

    /// A fresh ticket: the current one, or a renewed one if it is close to expiry.
    pub(crate) async fn ticket(&self, transport: &LoginTransport<'_>) -> Result<Arc<Ticket>> {
        let mut state = self.state.lock().await;
        if let Some(current) = &state.current
            && !current.needs_renewal(self.lifetime)
        {
            return Ok(Arc::clone(current));
        }
        let previous = state.current.clone();
        let renewed = match previous {
            Some(previous) if !previous.is_expired(self.lifetime) => {
                match self
                    .renew_with_ticket(transport, &previous, state.n_tickets + 1)
                    .await
                {
                    Ok(renewed) => renewed,
                    Err(
                        error @ (Error::Tls { .. }
                        | Error::Connection { .. }
                        | Error::Timeout { .. }),
                    ) => {
                        return Err(error);
                    }
                    Err(error) => {
                        tracing::debug!(error = %error, "ticket renewal refused, logging in with the password");
                        self.login(transport, state.n_tickets + 1).await?
                    }
                }
            }
            _ => self.login(transport, state.n_tickets + 1).await?,
        };
        Ok(state.store(renewed))
    }

    /// Replaces a ticket the server refused with `401`, unless another request already did.
    pub(crate) async fn ticket_after_rejection(
        &self,
        transport: &LoginTransport<'_>,
        rejected_sequence: u64,
    ) -> Result<Arc<Ticket>> {
        let mut state = self.state.lock().await;
        if let Some(current) = &state.current
            && current.sequence != rejected_sequence
            && !current.needs_renewal(self.lifetime)
        {
            return Ok(Arc::clone(current));
        }
        tracing::debug!("ticket refused by the server, logging in again");
        let renewed = self.login(transport, state.n_tickets + 1).await?;
        Ok(state.store(renewed))
    }

    /// Logs in now, replacing any current ticket.
    pub(crate) async fn force_login(&self, transport: &LoginTransport<'_>) -> Result<Arc<Ticket>> {
        let mut state = self.state.lock().await;
        let renewed = self.login(transport, state.n_tickets + 1).await?;
        Ok(state.store(renewed))
    }

    /// Answers a second-factor challenge and stores the resulting ticket.
    pub(crate) async fn complete_tfa(
        &self,
        transport: &LoginTransport<'_>,
        challenge: &TfaChallenge,
        response: &TfaResponse,
    ) -> Result<Arc<Ticket>> {
        let mut state = self.state.lock().await;
        let renewed = answer_challenge(transport, challenge, response, state.n_tickets + 1).await?;
        Ok(state.store(renewed))
    }

    /// A full login with the password, answering a second-factor challenge if one comes.
    async fn login(&self, transport: &LoginTransport<'_>, sequence: u64) -> Result<Ticket> {
        tracing::debug!(username = %self.username, "logging in");
        let body = serde_json::json!({
            "username": self.username,
            "password": self.password.expose(),
        });
        let reply = post_ticket(transport, &body).await?;
        if !reply.needs_tfa() {
            return ticket_from_reply(reply, &self.username, sequence);
        }
        let challenge = TfaChallenge::new(
            reply.username.unwrap_or_else(|| self.username.clone()),
            reply
                .ticket
                .ok_or_else(|| AuthError::new("the TFA challenge carries no ticket", None))
                .map_err(Error::Auth)?,
        );
        let response = match (&self.otp, &self.tfa_callback) {
            (Some(otp), _) => TfaResponse::totp(otp.expose()),
            (None, Some(callback)) => match callback(&challenge) {
                Some(response) => response,
                None => return Err(Error::Auth(AuthError::tfa_required(challenge))),
            },
            (None, None) => return Err(Error::Auth(AuthError::tfa_required(challenge))),
        };
        answer_challenge(transport, &challenge, &response, sequence).await
    }

    /// Renews a ticket by posting it as the password.
    async fn renew_with_ticket(
        &self,
        transport: &LoginTransport<'_>,
        previous: &Ticket,
        sequence: u64,
    ) -> Result<Ticket> {
        tracing::debug!(username = %previous.username, "renewing ticket");
        let body = serde_json::json!({
            "username": previous.username,
            "password": previous.expose_value(),
        });
        let reply = post_ticket(transport, &body).await?;
        if reply.needs_tfa() {
            return Err(Error::Auth(AuthError::new(
                "ticket renewal asked for a second factor",
                None,
            )));
        }
        ticket_from_reply(reply, &previous.username, sequence)
    }
}

impl TicketState {
    /// Makes `ticket` the current one and returns it.
    fn store(&mut self, ticket: Ticket) -> Arc<Ticket> {
        let ticket = Arc::new(ticket);
        self.n_tickets = ticket.sequence;
        self.current = Some(Arc::clone(&ticket));
        ticket
    }
}

impl fmt::Debug for TicketAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketAuth")
            .field("username", &self.username)
            .field("password", &self.password)
            .field("otp", &self.otp.as_ref().map(|_| "<redacted>"))
            .field(
                "tfa_callback",
                &self.tfa_callback.as_ref().map(|_| "<callback>"),
            )
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// Sends the second login call, answering `challenge`.
async fn answer_challenge(
    transport: &LoginTransport<'_>,
    challenge: &TfaChallenge,
    response: &TfaResponse,
    sequence: u64,
) -> Result<Ticket> {
    let body = serde_json::json!({
        "username": challenge.username(),
        "password": response.expose(),
        "tfa-challenge": challenge.ticket(),
    });
    let reply = post_ticket(transport, &body).await?;
    if reply.needs_tfa() {
        return Err(Error::Auth(AuthError::new(
            "the second factor was not accepted",
            None,
        )));
    }
    ticket_from_reply(reply, challenge.username(), sequence)
}

/// Turns a login answer into a ticket.
fn ticket_from_reply(reply: TicketReply, fallback_username: &str, sequence: u64) -> Result<Ticket> {
    let (Some(value), Some(csrf_token)) = (reply.ticket, reply.csrf_token) else {
        return Err(Error::Auth(AuthError::new(
            "the login answer carries no ticket",
            None,
        )));
    };
    let username = reply
        .username
        .unwrap_or_else(|| fallback_username.to_owned());
    Ticket::new(value, csrf_token, username, sequence)
}

/// Posts to `/access/ticket`; a `401` becomes [`Error::Auth`], other errors keep their kind.
async fn post_ticket(
    transport: &LoginTransport<'_>,
    body: &serde_json::Value,
) -> Result<TicketReply> {
    let what = format!("POST {TICKET_PATH}");
    let response = transport
        .http
        .post(transport.ticket_url.clone())
        .json(body)
        .send()
        .await
        .map_err(|error| Error::from_reqwest(what.clone(), error))?;
    let status = response.status();
    let reason = reason_phrase(&response);
    let bytes = response
        .bytes()
        .await
        .map_err(|error| Error::from_reqwest(what, error))?;
    if status == StatusCode::UNAUTHORIZED {
        let api =
            ApiError::from_response(Method::POST, TICKET_PATH, status, reason.as_deref(), &bytes);
        return Err(Error::Auth(
            AuthError::new(api.message().to_owned(), Some(status)).with_source(api),
        ));
    }
    if !status.is_success() {
        return Err(Error::Api(ApiError::from_response(
            Method::POST,
            TICKET_PATH,
            status,
            reason.as_deref(),
            &bytes,
        )));
    }
    decode_envelope(TICKET_PATH, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_is_redacted() {
        let token = Credentials::Token {
            id: "root@pam!ci".into(),
            secret: "5f2a0000-aaaa-bbbb-cccc-123456789abc".into(),
        };
        let password = Credentials::Password {
            username: "root@pam".into(),
            password: "hunter2".into(),
            otp: Some("123456".into()),
        };
        let printed = format!("{token:?} {password:?} {password:#?}");
        for secret in ["5f2a0000", "hunter2", "123456"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("root@pam!ci"));
    }

    #[test]
    fn ticket_debug_is_redacted() {
        let ticket = Ticket::new(
            "PVE:root@pam:65A1B2C3::c2lnbmF0dXJl".into(),
            "65A1B2C3:csrfsecret".into(),
            "root@pam".into(),
            1,
        )
        .expect("valid ticket");
        let printed = format!("{ticket:?}");
        assert!(
            !printed.contains("c2lnbmF0dXJl") && !printed.contains("csrfsecret"),
            "{printed}"
        );
        assert!(ticket.cookie_header().is_sensitive());
        assert_eq!(
            ticket.cookie_header().to_str().ok(),
            Some("PVEAuthCookie=PVE:root@pam:65A1B2C3::c2lnbmF0dXJl")
        );
    }

    #[test]
    fn renewal_margin() {
        assert_eq!(
            renew_after(DEFAULT_TICKET_LIFETIME),
            Duration::from_secs(105 * 60)
        );
        assert_eq!(renew_after(Duration::from_secs(4)), Duration::from_secs(3));
    }

    #[test]
    fn need_tfa_flag() {
        let check = |json: &str, expected: bool| {
            let reply: TicketReply = serde_json::from_str(json).expect("valid reply");
            assert_eq!(reply.needs_tfa(), expected, "{json}");
        };
        check(r#"{"NeedTFA":1}"#, true);
        check(r#"{"NeedTFA":true}"#, true);
        check(r#"{"NeedTFA":0}"#, false);
        check(r#"{"ticket":"x"}"#, false);
    }
}
