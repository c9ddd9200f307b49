//! How Proxmox reads scalar text (integers, numbers, booleans, `PVE::Tools::split_list`) and
//! every named format of the embedded tags, checked with the registered verifier's own logic and
//! `die` message, verbatim (with its trailing newline).
//!
//! `PVE::JSONSchema::register_format` takes either a verifier sub or a hash (a property-string
//! schema referenced by name). The verifier subs live by the Proxmox domain they come from:
//! - `ids`: IDs and names (VM, node, storage, config, user, token, realm, group, role, pool,
//!   privilege, SDN, HA, replication job, ACME, tags);
//! - `network`: addresses, networks, MACs, DNS names, e-mail, interfaces, VLANs and the
//!   firewall's specs (pve-common, pve-firewall, pve-cluster);
//! - `storage`: volume IDs, paths, content types, mount options (pve-storage, qemu-server,
//!   pve-container, pve-guest-common);
//! - `guest`: guest and scheduling values (boot devices, CPU sets, hotplug, time zones, calendar
//!   events, PEM blobs, command batches) and the validators attached to hash formats.
//!
//! `hash` holds the hash formats, written down once from their Perl definitions in
//! `hash_formats.json`, and checks a value as a property string with
//! [`super::property_string::parse_property_string`], so nested keys get the same messages as
//! inline property strings.
//!
//! Nothing here knows about request parameters; [`super::validate`] calls these checks. Each
//! regex is compiled once, on first use.

macro_rules! static_regex {
    ($re:expr) => {{
        static RE: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| regex::Regex::new($re).expect("static regex"));
        &*RE
    }};
}

mod guest;
mod hash;
mod ids;
mod network;
mod storage;

use serde_json::Value;

use super::validate::Path;
use crate::api::Api;

/// A registered verifier: `Ok` or the sub's `die` message.
type Verifier = fn(&str) -> Result<(), String>;

/// What a format name is registered as.
enum Format {
    /// `register_format('name', \&verifier)`.
    Verifier(Verifier),
    /// `register_format('name', $hash)`: a property-string schema.
    Hash(&'static hash::HashFormat),
}

fn lookup(name: &str) -> Option<Format> {
    ids::verifier(name)
        .or_else(|| network::verifier(name))
        .or_else(|| storage::verifier(name))
        .or_else(|| guest::verifier(name))
        .map(Format::Verifier)
        .or_else(|| hash::get(name).map(Format::Hash))
}

/// `PVE::JSONSchema::is_integer`: `^[+-]?\d+$`. ASCII text is checked by hand (the validator
/// asks for every integer it sees); other text goes to the regex, whose `\d` also takes
/// Unicode digits.
pub(crate) fn is_integer(text: &str) -> bool {
    if !text.is_ascii() {
        return static_regex!(r"^[+-]?\d+$").is_match(text);
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `PVE::JSONSchema::is_number`: `^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$`, by hand for
/// ASCII text as [`is_integer`].
pub(crate) fn is_number(text: &str) -> bool {
    if !text.is_ascii() {
        return static_regex!(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$").is_match(text);
    }
    let bytes = text.strip_prefix(['+', '-']).unwrap_or(text).as_bytes();
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let whole = digits(0);
    let mut at = whole;
    let mut fraction = 0;
    if bytes.get(at) == Some(&b'.') {
        fraction = digits(at + 1);
        at += 1 + fraction;
    }
    // `\d+\.\d+`, `\d+\.`, `\.\d+` or `\d+`: at least one digit on either side.
    if whole == 0 && fraction == 0 {
        return false;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let exponent = digits(at);
        if exponent == 0 {
            return false;
        }
        at += exponent;
    }
    at == bytes.len()
}

/// `PVE::JSONSchema::parse_boolean`.
pub(crate) fn parse_boolean(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Some(true),
        "0" | "off" | "no" | "false" => Some(false),
        _ => None,
    }
}

/// The one boolean reader: a JSON value read as pve-common reads booleans (`parse_boolean` on
/// text, any non-zero number, JSON booleans). `None` for anything else, so each caller decides
/// what an absent or malformed flag means.
pub(crate) fn value_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => Some(number.as_f64().is_some_and(|n| n != 0.0)),
        Value::String(text) => parse_boolean(text),
        _ => None,
    }
}

/// `PVE::Tools::split_list`: a text with a NUL is split at the NULs only (CGI-style arrays,
/// trailing empty fields dropped as Perl's `split` does); otherwise `,` and `;` count as white
/// space and the text is split at runs of white space.
pub(crate) fn split_list(text: &str) -> Box<dyn Iterator<Item = &str> + '_> {
    if text.contains('\0') {
        let trimmed = text.trim_end_matches('\0');
        if trimmed.is_empty() {
            return Box::new(std::iter::empty());
        }
        return Box::new(trimmed.split('\0'));
    }
    Box::new(
        text.split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|part| !part.is_empty()),
    )
}

/// Runs a named format's verifier sub (also `-list` and `-opt`); the error is its `die`
/// message. Hash formats need the schema context: [`check_value_format`] checks those.
pub(crate) fn check_format(format: &str, value: &str) -> Result<(), String> {
    let (base, kind) = split_format_name(format);
    let verifier = match lookup(base) {
        Some(Format::Verifier(verifier)) => verifier,
        Some(Format::Hash(_)) if kind != ListKind::None => {
            return Err(format!(
                "'-{}' format must have code ref, not hash\n",
                kind.name()
            ));
        }
        _ => return Err(format!("undefined format '{format}'\n")),
    };
    match kind {
        ListKind::List => split_list(value).try_for_each(verifier),
        // `$registered->($value) if $value`: Perl's truth, so "0" is not checked either.
        ListKind::Opt if value.is_empty() || value == "0" => Ok(()),
        ListKind::Opt | ListKind::None => verifier(value),
    }
}

/// `PVE::JSONSchema::check_format` on a parameter's value: a verifier sub, or a hash format
/// parsed as a property string at `path` (its errors as `parse_property_string` raises them).
pub(crate) fn check_value_format(
    api: &Api,
    format: &str,
    value: &str,
    path: &Path<'_>,
) -> Result<(), String> {
    match lookup(format) {
        Some(Format::Hash(hash)) => hash.check(api, value, path),
        _ => check_format(format, value),
    }
}

/// Whether a format name (with its `-list`/`-opt` suffix) has a checker here.
#[cfg(test)]
fn is_checked(format: &str) -> bool {
    let (base, kind) = split_format_name(format);
    match lookup(base) {
        Some(Format::Verifier(_)) => true,
        Some(Format::Hash(_)) => kind == ListKind::None,
        None => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListKind {
    None,
    List,
    Opt,
}

impl ListKind {
    fn name(self) -> &'static str {
        match self {
            ListKind::None => "none",
            ListKind::List => "list",
            ListKind::Opt => "opt",
        }
    }
}

/// `$format =~ m/^(.*?)(?:-(list|opt))?$/`.
fn split_format_name(format: &str) -> (&str, ListKind) {
    if let Some(base) = format.strip_suffix("-list") {
        (base, ListKind::List)
    } else if let Some(base) = format.strip_suffix("-opt") {
        (base, ListKind::Opt)
    } else {
        (format, ListKind::None)
    }
}

#[cfg(test)]
mod tests;
