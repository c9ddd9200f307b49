//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP, HMAC-SHA1), the only second
//! factor the mock verifies, and the `otpauth://totp/...` URIs Proxmox's TFA API takes.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// A TOTP secret with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    /// The shared secret.
    pub secret: Vec<u8>,
    /// Number of digits (6 or 8).
    pub digits: u32,
    /// Time step in seconds.
    pub period: u64,
}

/// Decodes RFC 4648 base32 (case-insensitive, padding and spaces ignored).
pub(crate) fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u64 = 0;
    let mut bits = 0;
    for c in text.chars().filter(|c| *c != '=' && !c.is_whitespace()) {
        let value = match c.to_ascii_uppercase() {
            letter @ 'A'..='Z' => letter as u64 - 'A' as u64,
            digit @ '2'..='7' => digit as u64 - '2' as u64 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Encodes RFC 4648 base32 without padding.
pub(crate) fn base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u64 = 0;
    let mut bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u64::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

impl Totp {
    /// A secret from base32 with Proxmox's defaults (6 digits, 30 s).
    pub fn from_base32(secret: &str) -> Option<Totp> {
        let secret = base32_decode(secret)?;
        (!secret.is_empty()).then_some(Totp {
            secret,
            digits: 6,
            period: 30,
        })
    }

    /// Parses `otpauth://totp/<label>?secret=...&digits=...&period=...&algorithm=SHA1`.
    pub fn from_uri(uri: &str) -> Result<Totp, String> {
        let rest = uri
            .strip_prefix("otpauth://totp/")
            .ok_or_else(|| "not a totp:// url".to_owned())?;
        let query = rest.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let mut totp = Totp {
            secret: Vec::new(),
            digits: 6,
            period: 30,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "secret" => {
                    totp.secret =
                        base32_decode(&value).ok_or_else(|| "invalid secret".to_owned())?;
                }
                "digits" => {
                    totp.digits = value
                        .parse()
                        .ok()
                        .filter(|d| (6..=8).contains(d))
                        .ok_or_else(|| "invalid digits".to_owned())?;
                }
                "period" => {
                    totp.period = value
                        .parse()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| "invalid period".to_owned())?;
                }
                "algorithm" if !value.eq_ignore_ascii_case("SHA1") => {
                    return Err(format!("unsupported algorithm '{value}'"));
                }
                _ => {}
            }
        }
        if totp.secret.is_empty() {
            return Err("missing secret".to_owned());
        }
        Ok(totp)
    }

    /// The URI of this secret.
    pub fn uri(&self, label: &str) -> String {
        format!(
            "otpauth://totp/{label}?secret={}&digits={}&period={}&algorithm=SHA1",
            base32_encode(&self.secret),
            self.digits,
            self.period
        )
    }

    /// The code at a Unix time.
    pub fn code_at(&self, unix_time: u64) -> String {
        let counter = unix_time / self.period;
        let mut mac = match HmacSha1::new_from_slice(&self.secret) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(&counter.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let offset = usize::from(digest[digest.len() - 1] & 0x0f);
        let binary = (u32::from(digest[offset] & 0x7f) << 24)
            | (u32::from(digest[offset + 1]) << 16)
            | (u32::from(digest[offset + 2]) << 8)
            | u32::from(digest[offset + 3]);
        let modulus = 10u32.pow(self.digits.clamp(1, 9));
        format!("{:0width$}", binary % modulus, width = self.digits as usize)
    }

    /// Whether a code is valid at a time, allowing one step of clock drift either way.
    pub fn verify(&self, code: &str, unix_time: u64) -> bool {
        let code = code.trim();
        (-1i64..=1).any(|step| {
            let at = unix_time as i64 + step * self.period as i64;
            at >= 0
                && crate::auth::constant_time_eq(
                    self.code_at(at as u64).as_bytes(),
                    code.as_bytes(),
                )
        })
    }
}

/// Hidden key of a user row that holds the user's TFA entries.
pub(crate) const TFA_KEY: &str = "_tfa";

/// A stored TOTP entry of a user row (`_secret` is hidden from every reply).
pub(crate) fn totp_entry(id: &str, description: &str, totp: &Totp, created: u64) -> Value {
    json!({
        "id": id, "type": "totp", "description": description, "created": created,
        "enable": 1, "_secret": base32_encode(&totp.secret),
        "digits": totp.digits, "period": totp.period,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rfc_6238_vectors() {
        // RFC 6238 appendix B, SHA-1, 8 digits, secret "12345678901234567890".
        let totp = Totp {
            secret: b"12345678901234567890".to_vec(),
            digits: 8,
            period: 30,
        };
        assert_eq!(totp.code_at(59), "94287082");
        assert_eq!(totp.code_at(1_111_111_109), "07081804");
        assert_eq!(totp.code_at(2_000_000_000), "69279037");
        assert!(totp.verify("94287082", 59 + 30));
        assert!(!totp.verify("94287082", 59 + 90));
    }

    #[test]
    fn base32_and_uris() {
        let secret = base32_encode(b"12345678901234567890");
        assert_eq!(secret, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32_decode(&secret).unwrap(), b"12345678901234567890");
        assert!(base32_decode("not base32!").is_none());
        let totp = Totp::from_uri(&format!(
            "otpauth://totp/PVE:alice?secret={secret}&digits=6&period=30&algorithm=SHA1"
        ))
        .unwrap();
        assert_eq!(totp.secret, b"12345678901234567890");
        assert_eq!(Totp::from_uri(&totp.uri("x")).unwrap(), totp);
        assert!(Totp::from_uri("otpauth://totp/x?secret=AAAA&algorithm=SHA256").is_err());
        assert!(Totp::from_uri("otpauth://hotp/x?secret=AAAA").is_err());
    }
}
