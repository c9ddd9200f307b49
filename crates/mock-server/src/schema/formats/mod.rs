//! How Proxmox reads scalar text: integers, numbers, booleans and lists (`PVE::JSONSchema`,
//! `PVE::Tools::split_list`), and the registered named-format verifiers (`pve-vmid`, `pve-node`,
//! `mac-addr`, `CIDR`, `dns-name`, ...) with their `die` messages, verbatim.
//!
//! Nothing here knows about schemas or errors by path; [`super::validate`] calls these checks.
//! Each regex is compiled once, on first use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

macro_rules! static_regex {
    ($re:expr) => {{
        static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new($re).expect("static regex"));
        &*RE
    }};
}

/// `PVE::JSONSchema::is_integer`.
pub(crate) fn is_integer(text: &str) -> bool {
    static_regex!(r"^[+-]?\d+$").is_match(text)
}

/// `PVE::JSONSchema::is_number`.
pub(crate) fn is_number(text: &str) -> bool {
    static_regex!(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$").is_match(text)
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

/// `PVE::Tools::split_list`.
pub(crate) fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split([',', ';', ' ', '\0', '\t', '\n'])
        .filter(|part| !part.is_empty())
}

/// Runs a named format's verifier; the error is the verifier's `die` message.
pub(crate) fn check_format(format: &str, value: &str) -> Result<(), String> {
    if let Some(base) = format.strip_suffix("-list") {
        for item in split_list(value) {
            check_named_format(base, item)?;
        }
        return Ok(());
    }
    if let Some(base) = format.strip_suffix("-opt") {
        if value.is_empty() {
            return Ok(());
        }
        return check_named_format(base, value);
    }
    check_named_format(format, value)
}

fn check_named_format(format: &str, value: &str) -> Result<(), String> {
    let valid = match format {
        "pve-configid" => static_regex!(r"(?i)^[a-z][a-z0-9_-]+$").is_match(value),
        "pve-storage-id" | "acme-plugin-id" => is_proxmox_id(value),
        "pve-bridge-id" => static_regex!(r"^[-_.\w\d]+$").is_match(value),
        "pve-vmid" => static_regex!(r"^[1-9][0-9]{2,8}$").is_match(value),
        "pve-node" => is_node_name(value),
        "pve-userid" => return check_userid(value),
        "pve-realm" => static_regex!(r"^[A-Za-z][A-Za-z0-9.\-_]+$").is_match(value),
        "pve-tokenid" => {
            static_regex!(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$")
                .is_match(value)
        }
        "pve-groupid" | "pve-roleid" => static_regex!(r"^[A-Za-z0-9.\-_]+$").is_match(value),
        "pve-poolid" => return check_poolid(value),
        "mac-addr" => static_regex!(r"(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$").is_match(value),
        "ipv4" => value.parse::<Ipv4Addr>().is_ok(),
        "ipv6" => value.parse::<Ipv6Addr>().is_ok(),
        "ip" => value.parse::<IpAddr>().is_ok(),
        "CIDRv4" => is_cidr(value, false),
        "CIDRv6" => is_cidr(value, true),
        "CIDR" => is_cidr(value, false) || is_cidr(value, true),
        "dns-name" => is_dns_name(value),
        "address" => value.parse::<IpAddr>().is_ok() || is_dns_name(value),
        "disk-size" => static_regex!(r"^(\d+(\.\d+)?)([KMGT])?$").is_match(value),
        "pve-iface" => static_regex!(r"(?i)^[a-z][a-z0-9_]{1,20}([:\.]\d+)?$").is_match(value),
        "pve-tag" => static_regex!(r"(?i)^[a-z0-9_][a-z0-9_\-\+\.]*$").is_match(value),
        "urlencoded" => static_regex!(r"^[-%a-zA-Z0-9_.!~*'()]*$").is_match(value),
        "pve-startup-order" => {
            !value.is_empty()
                && value
                    .split(',')
                    .filter(|p| !p.trim().is_empty())
                    .all(|part| {
                        static_regex!(r"^(order=)?\d+$").is_match(part)
                            || static_regex!(r"^(up|down)=\d+$").is_match(part)
                    })
        }
        _ => true,
    };
    if valid {
        return Ok(());
    }
    // The verifiers' `die` messages, verbatim (with their trailing newline).
    Err(match format {
        "pve-configid" => format!("invalid configuration ID '{value}'\n"),
        "pve-storage-id" => format!("storage ID '{value}' contains illegal characters\n"),
        "acme-plugin-id" => format!("ACME plugin ID '{value}' contains illegal characters\n"),
        "pve-bridge-id" => format!("invalid bridge ID '{value}'\n"),
        "pve-vmid" => "value does not look like a valid VM ID\n".to_owned(),
        "pve-node" => "value does not look like a valid node name\n".to_owned(),
        "pve-realm" => "value does not look like a valid realm\n".to_owned(),
        "pve-tokenid" => format!("value '{value}' does not look like a valid token ID\n"),
        "pve-groupid" => format!("group name '{value}' contains invalid characters\n"),
        "pve-roleid" => format!("role name '{value}' contains invalid characters\n"),
        "mac-addr" => "value does not look like a valid unicast MAC address\n".to_owned(),
        "ipv4" => "value does not look like a valid IPv4 address\n".to_owned(),
        "ipv6" => "value does not look like a valid IPv6 address\n".to_owned(),
        "ip" => "value does not look like a valid IP address\n".to_owned(),
        "CIDRv4" => "value does not look like a valid IPv4 CIDR network\n".to_owned(),
        "CIDRv6" => "value does not look like a valid IPv6 CIDR network\n".to_owned(),
        "CIDR" => "value does not look like a valid CIDR network\n".to_owned(),
        "dns-name" => "value does not look like a valid DNS name\n".to_owned(),
        "address" => format!("value does not look like a valid address: {value}\n"),
        "disk-size" => format!("value does not look like a valid disk size: {value}\n"),
        "pve-iface" => format!("invalid network interface name '{value}'\n"),
        "pve-tag" => "invalid characters in tag\n".to_owned(),
        "urlencoded" => format!("invalid urlencoded string: {value}\n"),
        _ => "unable to parse startup options\n".to_owned(),
    })
}

/// `verify_username` (pve-access-control `src/PVE/Auth/Plugin.pm`): 3 to 64 characters,
/// `<user>@<realm>` where the user part has no white space, `:` or `/` and the realm is a realm
/// ID. A token ID (`user@realm!name`) is not a user name.
fn check_userid(value: &str) -> Result<(), String> {
    let len = value.chars().count();
    if len < 3 {
        return Err(format!("user name '{value}' is too short\n"));
    }
    if len > 64 {
        return Err(format!("user name '{value}' is too long ({len} > 64)\n"));
    }
    if static_regex!(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$").is_match(value) {
        return Ok(());
    }
    Err(format!(
        "value '{value}' does not look like a valid user name\n"
    ))
}

/// `verify_poolname` (pve-access-control `src/PVE/AccessControl.pm`): up to three levels of
/// `[A-Za-z0-9.-_]+` separated by `/`.
fn check_poolid(value: &str) -> Result<(), String> {
    // Perl's `split("/", ...)` in scalar context: the fields, trailing empty ones dropped.
    let levels = value.trim_end_matches('/').split('/').count();
    if levels > 3 {
        return Err(format!(
            "pool name '{value}' nested too deeply (max levels = 3)\n"
        ));
    }
    if static_regex!(r"^[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}$").is_match(value) {
        return Ok(());
    }
    Err(format!("pool name '{value}' contains invalid characters\n"))
}

fn is_proxmox_id(value: &str) -> bool {
    static_regex!(r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$").is_match(value)
}

/// `pve_verify_node_name`'s pattern.
pub(crate) fn is_node_name(value: &str) -> bool {
    static_regex!(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$").is_match(value)
}

fn is_dns_name(value: &str) -> bool {
    static_regex!(
        r"^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$"
    )
    .is_match(value)
}

fn is_cidr(value: &str, v6: bool) -> bool {
    let Some((address, bits)) = value.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    if v6 {
        address.parse::<Ipv6Addr>().is_ok() && bits > 7 && bits <= 128
    } else {
        address.parse::<Ipv4Addr>().is_ok() && bits > 7 && bits <= 32
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn named_formats() {
        assert!(check_format("pve-vmid", "100").is_ok());
        assert!(check_format("pve-vmid", "99").is_err());
        assert!(check_format("pve-storage-id", "local-lvm").is_ok());
        assert_eq!(
            check_format("pve-storage-id", "1bad").unwrap_err(),
            "storage ID '1bad' contains illegal characters\n"
        );
        assert!(check_format("pve-node-list", "pve1,pve2").is_ok());
        assert!(check_format("pve-configid-list", "a1,,b2").is_ok());
        assert!(check_format("CIDRv4", "10.0.0.0/7").is_err());
        assert!(check_format("CIDRv4", "10.0.0.0/16").is_ok());
        assert!(check_format("mac-addr", "BC:24:11:00:00:01").is_ok());
        assert!(check_format("mac-addr", "01:24:11:00:00:01").is_err());
    }
}
