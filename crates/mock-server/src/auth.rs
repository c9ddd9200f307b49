//! Authentication: tickets, CSRF prevention tokens, API tokens and passwords.
//!
//! Formats and messages follow Proxmox (pve-common `src/PVE/Ticket.pm`, pve-access-control
//! `src/PVE/AccessControl.pm`, pve-manager `PVE/HTTPServer.pm::auth_handler`, pve-http-server
//! `src/PVE/APIServer/Formatter.pm::extract_auth_value`):
//!
//! - ticket: `PVE:<userid>:<timestamp %08X>::<signature base64>`; valid while
//!   `-300 < age < lifetime` (2 h by default). Proxmox signs with RSA; the mock signs with
//!   HMAC-SHA256 and a per-instance key.
//! - CSRF token: `<timestamp %08X>:<signature base64>` over `<timestamp>:<userid>`.
//! - API token header: `Authorization: PVEAPIToken=<user>@<realm>!<name>=<secret>`; no CSRF check.
//! - Failures are HTTP 401 with Proxmox's texts: `No ticket`, `permission denied - invalid PVE
//!   ticket`, `Permission denied - invalid csrf token`, `invalid token value!`, and
//!   `authentication failure` from `POST /access/ticket`.
//!
//! Every secret comparison is constant-time. Passwords and token secrets are stored only as
//! SHA-512-crypt hashes (`$6$`, as `/etc/shadow` keeps them) under hidden keys (leading `_`), which
//! no reply ever contains.

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use regex::Regex;
use sha2::{Digest, Sha256};

use crate::error::AppError;

type HmacSha256 = Hmac<Sha256>;

/// Ticket lifetime Proxmox uses (`$ticket_lifetime` in `AccessControl.pm`).
pub(crate) const DEFAULT_TICKET_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// Cookie that carries the ticket.
pub(crate) const COOKIE_NAME: &str = "PVEAuthCookie";

/// Authorization scheme of API tokens.
pub(crate) const TOKEN_SCHEME: &str = "PVEAPIToken";

/// Hidden key of a user's password hash.
pub(crate) const PASSWORD_KEY: &str = "_password";

/// Hidden key of an API token's secret hash.
pub(crate) const SECRET_KEY: &str = "_secret";

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Signs and verifies tickets and CSRF tokens.
#[derive(Clone)]
pub(crate) struct Signer {
    key: [u8; 32],
    lifetime: Duration,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer with a key and a ticket lifetime.
    pub(crate) fn new(key: [u8; 32], lifetime: Duration) -> Signer {
        Signer { key, lifetime }
    }

    /// A signer with a random key.
    pub(crate) fn random(lifetime: Duration) -> Signer {
        Signer::new(rand::random(), lifetime)
    }

    /// The key as hex (persisted by the SQLite store so tickets survive a restart).
    pub(crate) fn key_hex(&self) -> String {
        hex::encode(self.key)
    }

    /// A signer from a hex key.
    pub(crate) fn from_hex(text: &str, lifetime: Duration) -> Option<Signer> {
        let bytes = hex::decode(text).ok()?;
        Some(Signer::new(bytes.try_into().ok()?, lifetime))
    }

    fn mac(&self, domain: &str, data: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable_hmac());
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(data.as_bytes());
        mac
    }

    /// The base64 signature of `data` in a `domain` (ticket, TFA ticket, CSRF token).
    fn sign(&self, domain: &str, data: &str) -> String {
        STANDARD.encode(self.mac(domain, data).finalize().into_bytes())
    }

    /// Whether `signature` (base64) is [`Signer::sign`]'s for `data` in `domain`; the
    /// comparison is constant-time.
    fn verify(&self, domain: &str, data: &str, signature: &str) -> bool {
        STANDARD
            .decode(signature)
            .is_ok_and(|signature| self.mac(domain, data).verify_slice(&signature).is_ok())
    }

    /// Creates a ticket for a user at a time.
    pub(crate) fn ticket(&self, userid: &str, at: u64) -> String {
        let plain = format!("PVE:{userid}:{at:08X}");
        let signature = self.sign("ticket", &plain);
        format!("{plain}::{signature}")
    }

    /// Verifies a ticket; returns the user.
    pub(crate) fn verify_ticket(&self, ticket: &str, now: u64) -> Result<String, AppError> {
        let (userid, issued) = self.verify_ticket_signature(ticket)?;
        if !self.age_ok(issued, now) {
            return Err(invalid_ticket());
        }
        Ok(userid.to_owned())
    }

    /// Checks a ticket's form and signature (not its age); returns the user and the time it was
    /// issued. The form is Proxmox's `^(PVE:\S+)::([^:\s]+)$` with the plain part
    /// `^PVE:(\S+):([A-Z0-9]{8})$`, parsed by hand.
    pub(crate) fn verify_ticket_signature<'t>(
        &self,
        ticket: &'t str,
    ) -> Result<(&'t str, u64), AppError> {
        let (plain, signature) = ticket.rsplit_once("::").ok_or_else(invalid_ticket)?;
        let no_space = |text: &str| !text.chars().any(char::is_whitespace);
        if signature.is_empty()
            || signature.contains(':')
            || !no_space(signature)
            || !no_space(plain)
            || plain.len() <= "PVE:".len()
            || !plain.starts_with("PVE:")
        {
            return Err(invalid_ticket());
        }
        if !self.verify("ticket", plain, signature) {
            return Err(invalid_ticket());
        }
        let (userid, stamp) = plain["PVE:".len()..]
            .rsplit_once(':')
            .ok_or_else(invalid_ticket)?;
        if userid.is_empty()
            || stamp.len() != 8
            || !stamp
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(invalid_ticket());
        }
        let issued = u64::from_str_radix(stamp, 16).map_err(|_| invalid_ticket())?;
        Ok((userid, issued))
    }

    /// Creates a half-authenticated ticket for a pending second factor:
    /// `PVE:!tfa!<challenge, percent-encoded>:<timestamp>::<signature>`, signed together with the
    /// user it was issued to (Proxmox signs `!tfa!<challenge>` with the user as additional
    /// authenticated data, `create_ticket_do` in pve-access-control
    /// `src/PVE/API2/AccessControl.pm`). It is no login ticket: [`Signer::verify_ticket`]
    /// refuses it.
    pub(crate) fn tfa_ticket(&self, challenge: &str, userid: &str, at: u64) -> String {
        let encoded =
            percent_encoding::utf8_percent_encode(challenge, percent_encoding::NON_ALPHANUMERIC);
        let plain = format!("PVE:!tfa!{encoded}:{at:08X}");
        let signature = self.sign("tfa-ticket", &format!("{plain}\0{userid}"));
        format!("{plain}::{signature}")
    }

    /// Verifies a half-authenticated ticket issued to `userid`; returns its challenge.
    pub(crate) fn verify_tfa_ticket(
        &self,
        ticket: &str,
        userid: &str,
        now: u64,
    ) -> Result<String, AppError> {
        let invalid = || AppError::Unauthorized("bad ticket\n".to_owned());
        let (plain, signature) = ticket.rsplit_once("::").ok_or_else(invalid)?;
        if !self.verify("tfa-ticket", &format!("{plain}\0{userid}"), signature) {
            return Err(invalid());
        }
        let data = plain.strip_prefix("PVE:!tfa!").ok_or_else(invalid)?;
        let (encoded, stamp) = data.rsplit_once(':').ok_or_else(invalid)?;
        let issued = u64::from_str_radix(stamp, 16).map_err(|_| invalid())?;
        if stamp.len() != 8 || !self.age_ok(issued, now) {
            return Err(invalid());
        }
        percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .map(|challenge| challenge.into_owned())
            .map_err(|_| invalid())
    }

    /// A short-lived ticket (`$assemble_short_lived_ticket` in pve-access-control
    /// `src/PVE/AccessControl.pm`): `<prefix>:<timestamp>::<signature>`, where the signature
    /// also covers `<user>:<path>[:<extra>]`, which the ticket does not show.
    pub(crate) fn short_lived_ticket(&self, prefix: &str, secret_data: &str, at: u64) -> String {
        let plain = format!("{prefix}:{at:08X}");
        let signature = self.sign("short-lived", &format!("{plain}\0{secret_data}"));
        format!("{plain}::{signature}")
    }

    /// Whether a short-lived ticket is valid for `secret_data` at `now`: Proxmox's window is
    /// 20 s before to 40 s after it was issued (`verify_rsa_ticket(..., -20, 40)`).
    pub(crate) fn verify_short_lived_ticket(
        &self,
        prefix: &str,
        ticket: &str,
        secret_data: &str,
        now: u64,
    ) -> bool {
        let Some((plain, signature)) = ticket.rsplit_once("::") else {
            return false;
        };
        let Some(stamp) = plain
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix(':'))
        else {
            return false;
        };
        let Ok(issued) = u64::from_str_radix(stamp, 16) else {
            return false;
        };
        let age = now as i128 - issued as i128;
        stamp.len() == 8
            && (-20..=40).contains(&age)
            && self.verify("short-lived", &format!("{plain}\0{secret_data}"), signature)
    }

    /// Whether a ticket or CSRF token issued at `issued` is valid at `now`.
    pub(crate) fn age_ok(&self, issued: u64, now: u64) -> bool {
        let age = now as i128 - issued as i128;
        age > -300 && age < self.lifetime.as_secs() as i128
    }

    /// Creates a CSRF prevention token for a user.
    pub(crate) fn csrf_token(&self, userid: &str, at: u64) -> String {
        let stamp = format!("{at:08X}");
        let signature = self.sign("csrf", &format!("{stamp}:{userid}"));
        format!("{stamp}:{signature}")
    }

    /// Verifies a CSRF prevention token; returns when it was issued.
    pub(crate) fn verify_csrf(&self, userid: &str, token: &str, now: u64) -> Result<u64, AppError> {
        let invalid = invalid_csrf;
        let (stamp, signature) = token.split_once(':').ok_or_else(invalid)?;
        if stamp.len() != 8
            || !stamp
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(invalid());
        }
        if !self.verify("csrf", &format!("{stamp}:{userid}"), signature) {
            return Err(invalid());
        }
        let issued = u64::from_str_radix(stamp, 16).map_err(|_| invalid())?;
        if !self.age_ok(issued, now) {
            return Err(invalid());
        }
        Ok(issued)
    }
}

fn invalid_csrf() -> AppError {
    AppError::Unauthorized("Permission denied - invalid csrf token\n".to_owned())
}

fn invalid_ticket() -> AppError {
    AppError::Unauthorized("permission denied - invalid PVE ticket\n".to_owned())
}

fn unreachable_hmac() -> HmacSha256 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(&[0u8; 32]).expect("HMAC takes any key length")
}

/// Most verdicts each map of [`AuthCache`] keeps; a full map is emptied.
const AUTH_CACHE_SIZE: usize = 4096;

/// A ticket whose signature was verified, with the state of its user when last checked.
#[derive(Debug, Clone)]
pub(crate) struct TicketVerdict {
    /// The user the ticket names.
    pub(crate) userid: String,
    /// When the ticket was issued (its age is checked on every use).
    pub(crate) issued: u64,
    /// The access generation at which the user existed and was enabled.
    pub(crate) generation: u64,
    /// The user's `expire` at that generation.
    pub(crate) user_expire: Option<u64>,
}

/// An API token that authenticated, with the state of its user and token at a generation.
#[derive(Debug, Clone)]
pub(crate) struct TokenVerdict {
    /// The access generation the verdict belongs to.
    pub(crate) generation: u64,
    /// SHA-256 of the secret that matched (compared in constant time).
    pub(crate) secret_digest: [u8; 32],
    /// The user's `expire`.
    pub(crate) user_expire: Option<u64>,
    /// The token's `expire`.
    pub(crate) token_expire: Option<u64>,
}

/// Verdicts of the authentication hot path, so that a ticket's signature is verified once and
/// an API token's rows are looked up once per access generation.
///
/// A ticket verdict only records that the signature is valid (which never changes for one
/// signing key); its age is checked on every request, and its user is checked again whenever
/// the access generation ([`crate::access::AccessCache::generation`]) has moved, which every
/// write below `/access` and every reset does. A token verdict is used only at the generation
/// it was made in, so a deleted or changed token is refused at once. Both maps are bounded.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    tickets: BoundedMap<TicketVerdict>,
    tokens: BoundedMap<TokenVerdict>,
    csrf: BoundedMap<CsrfVerdict>,
}

/// A CSRF prevention token whose signature was verified for a user: the user it was verified
/// for and when it was issued (its age is checked on every use, like a ticket's).
#[derive(Debug, Clone)]
pub(crate) struct CsrfVerdict {
    /// The user the token was verified for; any other user fails the full check.
    pub(crate) userid: String,
    /// When the token was issued.
    pub(crate) issued: u64,
}

impl AuthCache {
    /// The verdict for a ticket, if its signature was verified before.
    pub(crate) fn ticket(&self, ticket: &str) -> Option<TicketVerdict> {
        self.tickets.get(ticket)
    }

    /// Records a verified ticket.
    pub(crate) fn put_ticket(&self, ticket: &str, verdict: TicketVerdict) {
        self.tickets.put(ticket, verdict);
    }

    /// The verdict for a token ID (`user@realm!name`), if it authenticated before.
    pub(crate) fn token(&self, tokenid: &str) -> Option<TokenVerdict> {
        self.tokens.get(tokenid)
    }

    /// Records a token that authenticated.
    pub(crate) fn put_token(&self, tokenid: &str, verdict: TokenVerdict) {
        self.tokens.put(tokenid, verdict);
    }

    /// Verifies a CSRF prevention token for `userid` like [`Signer::verify_csrf`], verifying its
    /// signature once: a token verified before for the same user only has its age checked.
    pub(crate) fn verify_csrf(
        &self,
        signer: &Signer,
        userid: &str,
        token: &str,
        now: u64,
    ) -> Result<(), AppError> {
        if let Some(hit) = self.csrf.get(token)
            && hit.userid == userid
        {
            return if signer.age_ok(hit.issued, now) {
                Ok(())
            } else {
                Err(invalid_csrf())
            };
        }
        let issued = signer.verify_csrf(userid, token, now)?;
        self.csrf.put(
            token,
            CsrfVerdict {
                userid: userid.to_owned(),
                issued,
            },
        );
        Ok(())
    }
}

/// One map of [`AuthCache`]: at most [`AUTH_CACHE_SIZE`] verdicts by key, emptied when full.
///
/// Keys are hashed with foldhash (seeded per process), not SipHash: every authenticated request
/// hashes its ticket (about 400 bytes), and only keys that passed verification (a ticket or
/// CSRF token signed by this instance, a token with its right secret) are ever inserted, so a
/// client cannot fill the map with colliding keys.
#[derive(Debug)]
struct BoundedMap<V>(RwLock<HashMap<String, V, foldhash::fast::RandomState>>);

impl<V> Default for BoundedMap<V> {
    fn default() -> Self {
        BoundedMap(RwLock::new(HashMap::default()))
    }
}

impl<V: Clone> BoundedMap<V> {
    fn get(&self, key: &str) -> Option<V> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: &str, value: V) {
        let mut map = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= AUTH_CACHE_SIZE && !map.contains_key(key) {
            map.clear();
        }
        map.insert(key.to_owned(), value);
    }
}

/// SHA-256 of a secret (the key of a cached token verdict).
pub(crate) fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Constant-time equality of two byte strings.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The alphabet of crypt salts.
const SALT_ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random crypt salt of `len` characters.
fn crypt_salt(len: usize) -> String {
    (0..len)
        .map(|_| SALT_ALPHABET[usize::from(rand::random::<u8>()) % SALT_ALPHABET.len()] as char)
        .collect()
}

/// Hashes a password or token secret for storage as SHA-512-crypt with Proxmox's (and glibc's)
/// default of 5,000 rounds and a 16-character salt: `$6$<salt>$<hash>`, the form `/etc/shadow`
/// keeps for the `pam` realm.
pub(crate) fn hash_secret(secret: &str) -> String {
    let salt = crypt_salt(16);
    let stored = match sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT)
        .and_then(|params| sha_crypt::sha512_crypt_b64(secret.as_bytes(), salt.as_bytes(), &params))
    {
        Ok(hash) => format!("$6${salt}${hash}"),
        // The parameters are constants the crate accepts; this arm is not reached.
        Err(_) => format!("sha256${salt}${}", salted(&salt, secret)),
    };
    VERIFIED.put(&stored, secret_digest(secret));
    stored
}

/// `--root-password`'s default, which the README and every example print.
pub(crate) const DEFAULT_PASSWORD: &str = "secret";

/// [`DEFAULT_PASSWORD`] as [`hash_secret`] would store it, made once with
/// `openssl passwd -6 -salt mockdefaultroot1 secret` (SHA-512-crypt, 5,000 rounds, a 16-character
/// salt) and checked by a test against the full verification.
const DEFAULT_PASSWORD_HASH: &str = "$6$mockdefaultroot1$7qtQpm/Qg6LQJi.7MILr1PmVatxFauaU7yZsH.LVMPT1Jl1j01qo3ZrPyERMQ.ktDK2bAmuF.2B09NJ8M7iTh1";

/// [`hash_secret`] for a password the seed stores: the default password gets its fixed hash
/// instead of 5,000 fresh rounds (about 24 million instructions, the longest step of a default
/// start-up). Its salt is the same in every mock, which hides nothing that matters: the password
/// is the documented default. Any other password gets a fresh salt.
pub(crate) fn hash_seed_secret(secret: &str) -> String {
    if secret == DEFAULT_PASSWORD {
        VERIFIED.put(DEFAULT_PASSWORD_HASH, secret_digest(secret));
        return DEFAULT_PASSWORD_HASH.to_owned();
    }
    hash_secret(secret)
}

/// `PVE::Tools::encrypt_pw`: SHA-256-crypt with an 8-character salt, `$5$<salt>$<hash>` (how
/// qemu-server stores a cloud-init password).
pub(crate) fn encrypt_pw(password: &str) -> String {
    let salt = crypt_salt(8);
    match sha_crypt::Sha256Params::new(sha_crypt::ROUNDS_DEFAULT).and_then(|params| {
        sha_crypt::sha256_crypt_b64(password.as_bytes(), salt.as_bytes(), &params)
    }) {
        Ok(hash) => format!("$5${salt}${hash}"),
        Err(_) => format!("sha256${salt}${}", salted(&salt, password)),
    }
}

/// Whether a value is a crypt hash already (qemu-server's `/^\$(?:[156]|2[ay])(\$.+){2}/`).
pub(crate) fn is_crypt_hash(value: &str) -> bool {
    let Some(rest) = ["$1$", "$5$", "$6$", "$2a$", "$2y$"]
        .iter()
        .find_map(|prefix| value.strip_prefix(prefix))
    else {
        return false;
    };
    rest.split_once('$')
        .is_some_and(|(salt, hash)| !salt.is_empty() && !hash.is_empty())
}

fn salted(salt: &str, secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(b"$");
    hasher.update(secret.as_bytes());
    hex::encode(hasher.finalize())
}

/// Checks a secret against [`hash_secret`]'s output (or the salted SHA-256 of states written
/// before it), in constant time.
pub(crate) fn verify_secret(stored: &str, secret: &str) -> bool {
    let digest = secret_digest(secret);
    if let Some(known) = VERIFIED.get(stored) {
        return constant_time_eq(&digest, &known);
    }
    let valid = verify_uncached(stored, secret);
    if valid {
        VERIFIED.put(stored, digest);
    }
    valid
}

/// Secrets known to match a stored hash: stored hash -> SHA-256 of the secret (the digest the
/// token verdicts keep too). SHA-512-crypt is slow on purpose (5,000 rounds, about 24 million
/// instructions per hash), and a login used to pay it once to seed the root password and once
/// more to check it. A hash made by [`hash_secret`] is recorded with the secret it was made
/// from, and one that verified once is not run again. Each stored hash has its own random salt
/// and so belongs to one secret: a secret whose digest differs from the recorded one does not
/// match (the answer the full check gives, without the rounds). Bounded like [`AuthCache`].
static VERIFIED: LazyLock<BoundedMap<[u8; 32]>> = LazyLock::new(BoundedMap::default);

/// [`verify_secret`] without the record of known secrets.
fn verify_uncached(stored: &str, secret: &str) -> bool {
    if let Some(rest) = stored.strip_prefix("$6$") {
        return verify_sha512_crypt(rest, secret);
    }
    let mut parts = stored.splitn(3, '$');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("sha256"), Some(salt), Some(expected)) => {
            constant_time_eq(salted(salt, secret).as_bytes(), expected.as_bytes())
        }
        _ => false,
    }
}

/// `[rounds=N$]<salt>$<hash>` of a `$6$` hash.
fn verify_sha512_crypt(rest: &str, secret: &str) -> bool {
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(with_rounds) => match with_rounds.split_once('$') {
            Some((rounds, rest)) => (rounds.parse().ok(), rest),
            None => return false,
        },
        None => (Some(sha_crypt::ROUNDS_DEFAULT), rest),
    };
    let (Some(rounds), Some((salt, expected))) = (rounds, rest.split_once('$')) else {
        return false;
    };
    sha_crypt::Sha512Params::new(rounds)
        .and_then(|params| sha_crypt::sha512_crypt_b64(secret.as_bytes(), salt.as_bytes(), &params))
        .is_ok_and(|hash| constant_time_eq(hash.as_bytes(), expected.as_bytes()))
}

/// A random API token secret in UUID form, like Proxmox's.
pub(crate) fn new_token_secret() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

/// `PVE::APIServer::Formatter::extract_auth_value`: finds `KEY=value` or `KEY value` in a
/// header and percent-decodes the value.
pub(crate) fn extract_auth_value(header: &str, key: &str) -> Option<String> {
    let mut search = header;
    loop {
        let index = find_text(search, key)?;
        let before_ok = index == 0 || search[..index].ends_with(char::is_whitespace);
        let rest = &search[index + key.len()..];
        if before_ok && (rest.starts_with('=') || rest.starts_with(' ')) {
            // Byte searches (a ticket is about 400 bytes, with no `;` or `%` after it).
            let value = &rest[1..];
            let value = memchr::memchr(b';', value.as_bytes()).map_or(value, |end| &value[..end]);
            if value.is_empty() {
                return None;
            }
            if memchr::memchr(b'%', value.as_bytes()).is_none() {
                return Some(value.to_owned());
            }
            return percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .ok()
                .map(|v| v.into_owned());
        }
        search = &search[index + key.len()..];
    }
}

/// Where `needle` first occurs in `haystack`: a `memchr` for its first byte, then a compare
/// (`str::find` with a `&str` sets up a two-way searcher on every call: half of this module's
/// cost per request, for a key found at the start of the header).
fn find_text(haystack: &str, needle: &str) -> Option<usize> {
    let Some((&first, _)) = needle.as_bytes().split_first() else {
        return Some(0);
    };
    let bytes = haystack.as_bytes();
    memchr::memchr_iter(first, bytes).find(|&at| bytes[at..].starts_with(needle.as_bytes()))
}

/// Splits `user@realm!token=secret` into (`user@realm`, `token`, `secret`).
pub(crate) fn split_api_token(value: &str) -> Result<(String, String, String), AppError> {
    static FULL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^([^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+)!([A-Za-z][A-Za-z0-9.\-_]+)$")
            .expect("static regex")
    });
    // `verify_token`: /^(.*)=(.*)$/ is greedy, so the split is at the last '='.
    let (tokenid, secret) = value
        .rsplit_once('=')
        .ok_or_else(|| AppError::Unauthorized("no tokenid specified\n".to_owned()))?;
    let captures = FULL.captures(tokenid).ok_or_else(|| {
        // Proxmox echoes the whole value before the last '='; a secret that contains '=' would
        // then be echoed too. A token ID never contains '=', so only what precedes the first one
        // is shown.
        let shown = tokenid.split('=').next().unwrap_or_default();
        AppError::Unauthorized(format!(
            "'{shown}' is not a valid token ID - not able to split into user and token parts\n"
        ))
    })?;
    Ok((
        captures[1].to_owned(),
        captures[2].to_owned(),
        secret.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tickets_round_trip_and_expire() {
        let signer = Signer::new([7; 32], Duration::from_secs(7200));
        let ticket = signer.ticket("root@pam", 1_000_000);
        assert!(ticket.starts_with("PVE:root@pam:000F4240::"));
        assert_eq!(
            signer.verify_ticket(&ticket, 1_000_100).unwrap(),
            "root@pam"
        );
        assert!(signer.verify_ticket(&ticket, 1_000_000 + 7200).is_err());
        assert!(signer.verify_ticket(&ticket, 1_000_000 - 400).is_err());
        let other = Signer::new([8; 32], Duration::from_secs(7200));
        assert!(other.verify_ticket(&ticket, 1_000_100).is_err());
        let forged = ticket.replace("root@pam", "admin@pve");
        assert_eq!(
            signer
                .verify_ticket(&forged, 1_000_100)
                .unwrap_err()
                .message(),
            "permission denied - invalid PVE ticket\n"
        );
        assert!(signer.verify_ticket("garbage", 1_000_100).is_err());
    }

    #[test]
    fn half_tickets_are_bound_to_the_user_and_no_login() {
        let signer = Signer::new([3; 32], DEFAULT_TICKET_LIFETIME);
        let half = signer.tfa_ticket(r#"{"totp":true}"#, "alice@pve", 5000);
        assert!(half.starts_with("PVE:!tfa!%7B%22totp%22%3Atrue%7D:00001388::"));
        assert_eq!(
            signer.verify_tfa_ticket(&half, "alice@pve", 5001).unwrap(),
            r#"{"totp":true}"#
        );
        assert!(signer.verify_tfa_ticket(&half, "bob@pve", 5001).is_err());
        assert!(signer.verify_ticket(&half, 5001).is_err());
        let full = signer.ticket("alice@pve", 5000);
        assert!(signer.verify_tfa_ticket(&full, "alice@pve", 5001).is_err());
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_user() {
        let signer = Signer::new([1; 32], DEFAULT_TICKET_LIFETIME);
        let token = signer.csrf_token("root@pam", 5000);
        assert!(signer.verify_csrf("root@pam", &token, 5001).is_ok());
        assert!(signer.verify_csrf("other@pam", &token, 5001).is_err());
        assert!(signer.verify_csrf("root@pam", "nonsense", 5001).is_err());
    }

    /// The cache of verified CSRF tokens answers as the full check does: a token verified for
    /// one user is refused for another, a forged one is refused even after a real one was
    /// cached, and a cached token still ages out.
    #[test]
    fn cached_csrf_verdicts_answer_like_the_full_check() {
        let signer = Signer::new([1; 32], DEFAULT_TICKET_LIFETIME);
        let cache = AuthCache::default();
        let token = signer.csrf_token("root@pam", 5000);
        let forged = format!("{}:{}", &token[..8], "AAAA".repeat(11));
        for _ in 0..2 {
            assert!(cache.verify_csrf(&signer, "root@pam", &token, 5001).is_ok());
            assert!(
                cache
                    .verify_csrf(&signer, "other@pam", &token, 5001)
                    .is_err()
            );
            assert!(
                cache
                    .verify_csrf(&signer, "root@pam", &forged, 5001)
                    .is_err()
            );
        }
        let late = 5000 + DEFAULT_TICKET_LIFETIME.as_secs() + 1;
        assert!(signer.verify_csrf("root@pam", &token, late).is_err());
        assert!(
            cache
                .verify_csrf(&signer, "root@pam", &token, late)
                .is_err()
        );
        // Another signing key never accepts the token, cached elsewhere or not.
        let other = Signer::new([2; 32], DEFAULT_TICKET_LIFETIME);
        assert!(
            AuthCache::default()
                .verify_csrf(&other, "root@pam", &token, 5001)
                .is_err()
        );
    }

    #[test]
    fn secrets_hash_and_verify() {
        let stored = hash_secret("secret");
        assert!(verify_secret(&stored, "secret"));
        assert!(!verify_secret(&stored, "Secret"));
        assert!(!stored.contains("secret$"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
    }

    /// SHA-crypt as glibc computes it: a test vector of Drepper's specification (with the
    /// `rounds=` form), then our own hashes in the default form.
    #[test]
    fn sha512_crypt_matches_glibc() {
        assert!(verify_secret(
            "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
            "Hello world!"
        ));
        let stored = hash_secret("secret");
        assert!(stored.starts_with("$6$"), "{stored}");
        assert_eq!(stored.split('$').nth(2).map(str::len), Some(16));
        // States written before SHA-512-crypt keep working.
        let legacy = format!("sha256$00${}", salted("00", "old"));
        assert!(verify_secret(&legacy, "old"));
        assert!(!verify_secret(&legacy, "new"));
    }

    /// The fixed hash of the default password is what the full check accepts for it, and only
    /// for it; other seed passwords are hashed with a fresh salt.
    #[test]
    fn the_default_password_has_a_fixed_valid_hash() {
        assert!(verify_uncached(DEFAULT_PASSWORD_HASH, DEFAULT_PASSWORD));
        assert!(!verify_uncached(DEFAULT_PASSWORD_HASH, "Secret"));
        assert_eq!(hash_seed_secret(DEFAULT_PASSWORD), DEFAULT_PASSWORD_HASH);
        assert!(verify_secret(DEFAULT_PASSWORD_HASH, DEFAULT_PASSWORD));
        assert!(!verify_secret(DEFAULT_PASSWORD_HASH, "secret "));
        let other = hash_seed_secret("another-password");
        assert_ne!(
            other,
            hash_seed_secret("another-password"),
            "a fresh salt each time"
        );
        assert!(verify_uncached(&other, "another-password"));
    }

    /// The record of known secrets answers as the full check does; a hash not made here is
    /// recorded only once a secret matched it.
    #[test]
    fn known_secrets_answer_like_the_full_check() {
        let stored = hash_secret("known-secret");
        assert!(VERIFIED.get(&stored).is_some());
        for candidate in ["known-secret", "Known-secret", "", "known-secret "] {
            assert_eq!(
                verify_secret(&stored, candidate),
                verify_uncached(&stored, candidate),
                "{candidate:?}"
            );
        }
        // Drepper's specification, default rounds.
        let vector = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        assert!(!verify_secret(vector, "Hello world"));
        assert!(VERIFIED.get(vector).is_none());
        assert!(verify_secret(vector, "Hello world!"));
        assert!(VERIFIED.get(vector).is_some());
        assert!(verify_secret(vector, "Hello world!"));
        assert!(!verify_secret(vector, "Hello world"));
    }

    #[test]
    fn cloud_init_passwords_are_crypted_like_proxmox() {
        let crypted = encrypt_pw("hunter2");
        assert!(crypted.starts_with("$5$"), "{crypted}");
        assert_eq!(crypted.split('$').nth(2).map(str::len), Some(8));
        assert!(is_crypt_hash(&crypted));
        assert!(is_crypt_hash("$6$salt$hash"));
        assert!(is_crypt_hash("$2y$10$abc"));
        assert!(!is_crypt_hash("hunter2"));
        assert!(!is_crypt_hash("$5$"));
        assert!(!is_crypt_hash("$7$salt$hash"));
    }

    #[test]
    fn extracts_auth_values() {
        assert_eq!(
            extract_auth_value("foo=1; PVEAuthCookie=PVE%3Aroot%40pam%3A1::x", COOKIE_NAME)
                .unwrap(),
            "PVE:root@pam:1::x"
        );
        assert_eq!(
            extract_auth_value("PVEAPIToken=root@pam!t=abc", TOKEN_SCHEME).unwrap(),
            "root@pam!t=abc"
        );
        assert!(extract_auth_value("XPVEAuthCookie=1", COOKIE_NAME).is_none());
        let (user, token, secret) = split_api_token("root@pam!ci=s3cret").unwrap();
        assert_eq!(
            (user.as_str(), token.as_str(), secret.as_str()),
            ("root@pam", "ci", "s3cret")
        );
        assert!(split_api_token("root@pam=x").is_err());
    }

    #[test]
    fn token_secrets_look_like_uuids() {
        let secret = new_token_secret();
        assert_eq!(secret.len(), 36);
        assert_eq!(secret.matches('-').count(), 4);
    }
}
