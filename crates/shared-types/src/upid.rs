//! [`Upid`]: the "unique process ID" Proxmox VE hands out for every background task.
//!
//! Every API call that starts a worker (starting a VM, a backup, a download)
//! answers with a UPID, and the `/nodes/{node}/tasks/{upid}` endpoints take
//! one back.
//! The format comes from `PVE::Tools::upid_encode` in `pve-common`:
//!
//! ```text
//! UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:
//! UPID:pve1:00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam:
//! ```
//!
//! `pid`, `pstart` and `starttime` are upper-case hex, zero-padded to eight
//! digits (`sprintf("%08X")`); `pstart` is the worker's start time in clock
//! ticks since boot and grows past eight digits after about 497 days of uptime.
//! `PVE::Tools::upid_decode` accepts a node name made of letters, digits and
//! inner dashes, a type and a user without `:` or whitespace, and an id
//! without `:` or whitespace that may be empty.
//!
//! Parsing here follows `upid_decode` with two relaxations that keep
//! [`Display`](std::fmt::Display) and [`FromStr`] exact inverses for every
//! value of the field types: hex digits may be of either case, and `pstart`
//! and `starttime` may have up to 16 digits (Perl allows 9 and 8).
//! A negative `starttime` is written as its 64-bit two's complement, as Perl's
//! `%08X` would.
//!
//! Task ids must not contain `:`, so Proxmox escapes ids that might: the
//! storage download endpoint passes the file name through
//! `PVE::Tools::encode_text`, which percent-encodes `:`, control characters and
//! non-ASCII bytes.
//! [`Upid::encode_worker_id`] and [`Upid::decoded_worker_id`] do the same.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A Proxmox VE task identifier (`UPID:node:pid:pstart:starttime:type:id:user:`).
///
/// ```
/// use shared_types::Upid;
///
/// let text = "UPID:pve1:00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam:";
/// let upid: Upid = text.parse().unwrap();
/// assert_eq!(upid.node, "pve1");
/// assert_eq!(upid.pid, 0x1234);
/// assert_eq!(upid.worker_type, "qmstart");
/// assert_eq!(upid.worker_id, "100");
/// assert_eq!(upid.to_string(), text);
/// ```
///
/// The fields are public for convenience; values built by hand round-trip
/// through [`Display`](fmt::Display) and [`FromStr`] only if they pass the
/// checks [`Upid::new`] makes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upid {
    /// Name of the cluster node the task runs on.
    pub node: String,
    /// Process id of the worker.
    pub pid: u32,
    /// Start time of the worker process, in clock ticks since boot (from `/proc/<pid>/stat`).
    pub pstart: u64,
    /// Start time of the task, in seconds since the Unix epoch.
    pub starttime: i64,
    /// Kind of task, e.g. `qmstart`, `vzdump`, `download`.
    pub worker_type: String,
    /// What the task works on, e.g. a VM id; may be empty.
    pub worker_id: String,
    /// User (or API token) that started the task, e.g. `root@pam`.
    pub user: String,
}

impl Upid {
    /// Builds a UPID, checking every text field against the rules of `upid_decode`.
    ///
    /// `worker_id` is taken as is; pass it through [`Upid::encode_worker_id`]
    /// first if it might contain `:` or whitespace.
    pub fn new(
        node: impl Into<String>,
        pid: u32,
        pstart: u64,
        starttime: i64,
        worker_type: impl Into<String>,
        worker_id: impl Into<String>,
        user: impl Into<String>,
    ) -> Result<Self, Error> {
        let upid = Self {
            node: node.into(),
            pid,
            pstart,
            starttime,
            worker_type: worker_type.into(),
            worker_id: worker_id.into(),
            user: user.into(),
        };
        let text = upid.to_string();
        upid.check_fields()
            .map_err(|reason| Error::invalid_upid(&text, reason))?;
        Ok(upid)
    }

    /// Escapes a raw task id the way `PVE::Tools::encode_text` does, so it can go into a UPID.
    ///
    /// Every byte outside printable ASCII, and `:`, becomes `%XX` (upper-case hex).
    /// Unlike `encode_text`, a space is escaped too, because `upid_decode`
    /// rejects whitespace in the id.
    /// Like `encode_text`, `%` itself is left alone, so decoding is ambiguous
    /// for ids that already contain `%XX` sequences.
    pub fn encode_worker_id(raw: &str) -> String {
        let mut encoded = String::with_capacity(raw.len());
        for byte in raw.bytes() {
            if byte.is_ascii_graphic() && byte != b':' {
                encoded.push(char::from(byte));
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
        encoded
    }

    /// The task id with `%XX` escapes decoded, as `PVE::Tools::decode_text` does.
    ///
    /// Byte sequences that are not UTF-8 after decoding are replaced with U+FFFD.
    /// A `%` not followed by two hex digits is kept literally.
    pub fn decoded_worker_id(&self) -> String {
        let bytes = self.worker_id.as_bytes();
        let mut decoded = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            let escaped = match bytes.get(index..index + 3) {
                Some([b'%', high, low]) => hex_value(*high).zip(hex_value(*low)),
                _ => None,
            };
            match escaped {
                Some((high, low)) => {
                    decoded.push((high << 4) | low);
                    index += 3;
                }
                None => {
                    decoded.push(bytes[index]);
                    index += 1;
                }
            }
        }
        String::from_utf8_lossy(&decoded).into_owned()
    }

    /// Checks the text fields; returns the reason for the first violation.
    fn check_fields(&self) -> Result<(), String> {
        if !is_node_name(&self.node) {
            return Err(format!(
                "node name {:?} must be letters, digits and inner dashes",
                self.node
            ));
        }
        check_token("worker type", &self.worker_type, false)?;
        check_token("worker id", &self.worker_id, true)?;
        check_token("user", &self.user, false)
    }
}

impl fmt::Display for Upid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UPID:{}:{:08X}:{:08X}:{:08X}:{}:{}:{}:",
            self.node,
            self.pid,
            self.pstart,
            self.starttime,
            self.worker_type,
            self.worker_id,
            self.user
        )
    }
}

impl FromStr for Upid {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::invalid_upid(input, reason);

        let body = input
            .strip_prefix("UPID:")
            .ok_or_else(|| invalid("must start with `UPID:`".to_owned()))?;
        let body = body
            .strip_suffix(':')
            .ok_or_else(|| invalid("must end with `:`".to_owned()))?;
        let fields: Vec<&str> = body.split(':').collect();
        let [node, pid, pstart, starttime, worker_type, worker_id, user] = fields[..] else {
            return Err(invalid(format!(
                "expected 7 `:`-separated fields after `UPID:`, found {}",
                fields.len()
            )));
        };

        let pid = parse_hex("pid", pid, 8, 8).map_err(&invalid)?;
        let pid =
            u32::try_from(pid).map_err(|_| invalid("pid does not fit in 32 bits".to_owned()))?;
        let pstart = parse_hex("pstart", pstart, 8, 16).map_err(&invalid)?;
        // Two's complement: Perl's `%08X` writes a negative start time as 16 hex digits.
        let starttime = parse_hex("starttime", starttime, 8, 16).map_err(&invalid)? as i64;

        let upid = Self {
            node: node.to_owned(),
            pid,
            pstart,
            starttime,
            worker_type: worker_type.to_owned(),
            worker_id: worker_id.to_owned(),
            user: user.to_owned(),
        };
        upid.check_fields().map_err(invalid)?;
        Ok(upid)
    }
}

impl Serialize for Upid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Upid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UpidVisitor;

        impl Visitor<'_> for UpidVisitor {
            type Value = Upid;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Proxmox task id like `UPID:node:00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam:`")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Upid, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(UpidVisitor)
    }
}

/// `[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?`, the node-name rule of `upid_decode`.
fn is_node_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        }
        _ => false,
    }
}

/// `[^:\s]+` (or `[^:\s]*` when `may_be_empty`).
fn check_token(what: &str, value: &str, may_be_empty: bool) -> Result<(), String> {
    if value.is_empty() && !may_be_empty {
        return Err(format!("{what} must not be empty"));
    }
    if value.contains(|c: char| c == ':' || c.is_whitespace()) {
        return Err(format!(
            "{what} {value:?} must not contain `:` or whitespace"
        ));
    }
    Ok(())
}

fn parse_hex(what: &str, digits: &str, min_len: usize, max_len: usize) -> Result<u64, String> {
    let length_ok = (min_len..=max_len).contains(&digits.len());
    if !length_ok || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        let expected = if min_len == max_len {
            format!("{min_len}")
        } else {
            format!("{min_len} to {max_len}")
        };
        return Err(format!("{what} {digits:?} must be {expected} hex digits"));
    }
    u64::from_str_radix(digits, 16).map_err(|err| format!("{what} {digits:?}: {err}"))
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn check_round_trip(text: &str) -> Upid {
        let upid: Upid = text.parse().unwrap();
        assert_eq!(upid.to_string(), text);
        upid
    }

    #[test]
    fn parses_a_vm_start_task() {
        let upid = check_round_trip("UPID:pve1:00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam:");
        assert_eq!(
            upid,
            Upid {
                node: "pve1".into(),
                pid: 0x1234,
                pstart: 0xABCD,
                starttime: 0x65A1_B2C3,
                worker_type: "qmstart".into(),
                worker_id: "100".into(),
                user: "root@pam".into(),
            }
        );
    }

    #[test]
    fn parses_real_task_ids() {
        // Shapes seen in `/cluster/tasks`: empty ids, API tokens, 9-digit pstart.
        check_round_trip("UPID:pve-node-02:000C4A1F:01A2B3C4:6655F00D:vzdump::root@pam:");
        check_round_trip("UPID:pve:0003E1D2:00A0B1C2:66A0B1C2:aptupdate::root@pam:");
        check_round_trip("UPID:n1:00002A3B:1A2B3C4D5:66A0B1C2:vncproxy:101:automation@pve!ci:");
        let upid = check_round_trip("UPID:pve:00012345:00ABCDEF:66A0B1C2:qmigrate:105:alice@pve:");
        assert_eq!(upid.starttime, 0x66A0_B1C2);
        let upid = check_round_trip(
            "UPID:pve:00012345:00ABCDEF:66A0B1C2:download:debian-12.iso:root@pam:",
        );
        assert_eq!(upid.worker_id, "debian-12.iso");
    }

    #[test]
    fn accepts_lower_case_hex_and_prints_upper_case() {
        let upid: Upid = "UPID:pve:0000abcd:0000abcd:65a1b2c3:qmstart:100:root@pam:"
            .parse()
            .unwrap();
        assert_eq!(
            upid.to_string(),
            "UPID:pve:0000ABCD:0000ABCD:65A1B2C3:qmstart:100:root@pam:"
        );
    }

    #[test]
    fn rejects_malformed_ids_and_says_why() {
        let cases = [
            ("", "must start with `UPID:`"),
            (
                "upid:pve:00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam:",
                "must start",
            ),
            (
                "UPID:pve:00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam",
                "must end with",
            ),
            (
                "UPID:pve:00001234:0000ABCD:65A1B2C3:qmstart:root@pam:",
                "found 6",
            ),
            (
                "UPID:pve:00001234:0000ABCD:65A1B2C3:qmstart:a:b:root@pam:",
                "found 8",
            ),
            (
                "UPID:pve:1234:0000ABCD:65A1B2C3:qmstart:100:root@pam:",
                "pid \"1234\" must be 8 hex",
            ),
            (
                "UPID:pve:0000123G:0000ABCD:65A1B2C3:qmstart:100:root@pam:",
                "pid",
            ),
            (
                "UPID:pve:00001234:ABCD:65A1B2C3:qmstart:100:root@pam:",
                "pstart",
            ),
            (
                "UPID:pve:00001234:0000ABCD:B2C3:qmstart:100:root@pam:",
                "starttime",
            ),
            (
                "UPID:-pve:00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam:",
                "node name",
            ),
            (
                "UPID::00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam:",
                "node name",
            ),
            (
                "UPID:pve:00001234:0000ABCD:65A1B2C3::100:root@pam:",
                "worker type must not be empty",
            ),
            (
                "UPID:pve:00001234:0000ABCD:65A1B2C3:qmstart:1 0:root@pam:",
                "worker id",
            ),
            (
                "UPID:pve:00001234:0000ABCD:65A1B2C3:qmstart:100::",
                "user must not be empty",
            ),
        ];
        for (text, expected) in cases {
            let message = text.parse::<Upid>().unwrap_err().to_string();
            assert!(message.contains(expected), "{text:?}: {message}");
            assert!(message.starts_with("invalid UPID"), "{message}");
        }
    }

    #[test]
    fn new_validates_fields() {
        let upid = Upid::new("pve1", 1, 2, 3, "qmstart", "100", "root@pam").unwrap();
        assert_eq!(
            upid.to_string(),
            "UPID:pve1:00000001:00000002:00000003:qmstart:100:root@pam:"
        );
        assert!(Upid::new("pve1", 1, 2, 3, "qmstart", "local:iso", "root@pam").is_err());
        assert!(Upid::new("pve_1", 1, 2, 3, "qmstart", "100", "root@pam").is_err());
    }

    #[test]
    fn worker_ids_with_colons_are_percent_encoded() {
        let encoded = Upid::encode_worker_id("local:iso/debian 12.iso");
        assert_eq!(encoded, "local%3Aiso/debian%2012.iso");
        let upid = Upid::new("pve", 1, 2, 3, "download", encoded, "root@pam").unwrap();
        let parsed: Upid = upid.to_string().parse().unwrap();
        assert_eq!(parsed.decoded_worker_id(), "local:iso/debian 12.iso");

        let unicode = Upid::encode_worker_id("grüße");
        assert_eq!(unicode, "gr%C3%BC%C3%9Fe");
        let upid = Upid::new("pve", 1, 2, 3, "download", unicode, "root@pam").unwrap();
        assert_eq!(upid.decoded_worker_id(), "grüße");
    }

    #[test]
    fn stray_percent_signs_survive_decoding() {
        let upid = Upid::new("pve", 1, 2, 3, "download", "100%-done%4", "root@pam").unwrap();
        assert_eq!(upid.decoded_worker_id(), "100%-done%4");
    }

    #[test]
    fn serde_uses_the_string_form() {
        let text = "UPID:pve1:00001234:0000ABCD:65A1B2C3:qmstart:100:root@pam:";
        let upid: Upid = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(serde_json::to_string(&upid).unwrap(), format!("\"{text}\""));
        let error = serde_json::from_str::<Upid>("\"UPID:broken\"").unwrap_err();
        assert!(error.to_string().contains("invalid UPID"), "{error}");
        assert!(serde_json::from_str::<Upid>("42").is_err());
    }

    fn any_upid() -> impl Strategy<Value = Upid> {
        (
            "[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?",
            any::<u32>(),
            any::<u64>(),
            any::<i64>(),
            "[^:\\s]{1,16}",
            "[^:\\s]{0,16}",
            "[^:\\s]{1,24}",
        )
            .prop_map(
                |(node, pid, pstart, starttime, worker_type, worker_id, user)| Upid {
                    node,
                    pid,
                    pstart,
                    starttime,
                    worker_type,
                    worker_id,
                    user,
                },
            )
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(upid in any_upid()) {
            let text = upid.to_string();
            let parsed: Upid = text.parse().unwrap();
            prop_assert_eq!(&parsed, &upid);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn encoded_worker_ids_decode_back(raw in "[^%]{0,32}") {
            let encoded = Upid::encode_worker_id(&raw);
            let upid = Upid::new("pve", 1, 2, 3, "download", encoded, "root@pam").unwrap();
            prop_assert_eq!(upid.decoded_worker_id(), raw);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "UPID:[0-9A-Za-z: -]{0,60}") {
            let _ = text.parse::<Upid>();
        }
    }
}
