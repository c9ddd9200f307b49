//! Second-factor (TFA) challenges and answers: [`TfaChallenge`] and [`TfaResponse`].
//!
//! How a login reaches a challenge and sends the answer is described in [`crate::auth`].
//! The types live apart from that flow because [`crate::error::AuthError`] carries a
//! [`TfaChallenge`]: this module depends on nothing but `secret`, so `error` does not
//! depend on `auth`, which depends on `error`.

use std::fmt;

use percent_encoding::percent_decode_str;

use crate::secret::SecretString;

/// A second-factor challenge from `POST /access/ticket`.
#[derive(Clone)]
pub struct TfaChallenge {
    username: String,
    ticket: SecretString,
    details: serde_json::Value,
}

impl TfaChallenge {
    /// Builds a challenge from the login answer's user name and half-authenticated ticket.
    pub(crate) fn new(username: String, ticket: String) -> Self {
        let details = parse_challenge(&ticket).unwrap_or(serde_json::Value::Null);
        TfaChallenge {
            username,
            ticket: SecretString::new(ticket),
            details,
        }
    }

    /// The user, as normalised by the server; the answer must be sent for this name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The decoded challenge, for example `{"totp": true, "recovery": [0, 1]}`, or `null` if the
    /// ticket could not be decoded.
    pub fn details(&self) -> &serde_json::Value {
        &self.details
    }

    /// Whether a TOTP code is accepted.
    pub fn offers_totp(&self) -> bool {
        self.offers("totp")
    }

    /// Whether a recovery key is accepted.
    pub fn offers_recovery(&self) -> bool {
        self.offers("recovery")
    }

    /// Whether a Yubico OTP is accepted.
    pub fn offers_yubico(&self) -> bool {
        self.offers("yubico")
    }

    /// Whether a WebAuthn assertion is accepted.
    pub fn offers_webauthn(&self) -> bool {
        self.offers("webauthn")
    }

    /// Whether a factor is on offer: present and not `false`, `null`, `0` or empty.
    fn offers(&self, kind: &str) -> bool {
        match self.details.get(kind) {
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::Bool(false)) => false,
            Some(serde_json::Value::Number(number)) => number.as_u64() != Some(0),
            Some(serde_json::Value::Array(items)) => !items.is_empty(),
            Some(_) => true,
        }
    }

    /// The half-authenticated ticket, sent back as `tfa-challenge`.
    pub(crate) fn ticket(&self) -> &str {
        self.ticket.expose()
    }
}

impl fmt::Debug for TfaChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TfaChallenge")
            .field("username", &self.username)
            .field("ticket", &self.ticket)
            .field("details", &self.details)
            .finish()
    }
}

/// Decodes the JSON challenge embedded in a `PVE:!tfa!<challenge>:<time>::<signature>` ticket.
fn parse_challenge(ticket: &str) -> Option<serde_json::Value> {
    let (_, rest) = ticket.split_once("!tfa!")?;
    let signed = rest.split_once("::").map_or(rest, |(signed, _)| signed);
    let (encoded, _time) = signed.rsplit_once(':')?;
    let decoded = percent_decode_str(encoded).decode_utf8().ok()?;
    serde_json::from_str(&decoded).ok()
}

/// An answer to a [`TfaChallenge`].
#[derive(Clone, Debug)]
pub struct TfaResponse(SecretString);

impl TfaResponse {
    /// A TOTP code from an authenticator app.
    pub fn totp(code: &str) -> Self {
        TfaResponse::raw(format!("totp:{}", code.trim()))
    }

    /// A recovery key.
    pub fn recovery(key: &str) -> Self {
        TfaResponse::raw(format!("recovery:{}", key.trim()))
    }

    /// A Yubico OTP.
    pub fn yubico(otp: &str) -> Self {
        TfaResponse::raw(format!("yubico:{}", otp.trim()))
    }

    /// A WebAuthn assertion, as JSON.
    pub fn webauthn(assertion_json: &str) -> Self {
        TfaResponse::raw(format!("webauthn:{assertion_json}"))
    }

    /// An answer already in Proxmox's `kind:value` form.
    pub fn raw(answer: impl Into<String>) -> Self {
        TfaResponse(SecretString::new(answer))
    }

    /// The answer in Proxmox's `kind:value` form, sent as `password`.
    pub(crate) fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tfa_challenge_parses_ticket() {
        let challenge = TfaChallenge::new(
            "root@pam".into(),
            "PVE:!tfa!%7B%22totp%22%3Atrue%2C%22recovery%22%3A%5B0%2C1%5D%7D:65A1B2C3::sig".into(),
        );
        assert!(challenge.offers_totp());
        assert!(challenge.offers_recovery());
        assert!(!challenge.offers_webauthn());
        assert!(!format!("{challenge:?}").contains("sig"));
    }

    #[test]
    fn tfa_challenge_tolerates_unknown_tickets() {
        let challenge = TfaChallenge::new("root@pam".into(), "garbage".into());
        assert_eq!(challenge.details(), &serde_json::Value::Null);
        assert!(!challenge.offers_totp());
    }

    #[test]
    fn tfa_responses_are_prefixed() {
        assert_eq!(TfaResponse::totp(" 123456 ").0.expose(), "totp:123456");
        assert_eq!(
            TfaResponse::recovery("abcd-ef01").0.expose(),
            "recovery:abcd-ef01"
        );
        assert!(!format!("{:?}", TfaResponse::totp("123456")).contains("123456"));
    }
}
