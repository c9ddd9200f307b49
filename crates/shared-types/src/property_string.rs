//! [`PropertyString`]: the generic `key=value,key=value` strings Proxmox packs structured options into.
//!
//! Many Proxmox parameters are one string holding several options, for
//! example `net0: virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1` or
//! `scsi0: local-lvm:vm-100-disk-0,size=8G`.
//! Their formats define at most one *default key* whose `key=` may be left
//! out; above, the first entries are the NIC model (written in the special
//! `<model>=<mac>` form) and the disk's `file`.
//!
//! # Grammar
//!
//! This follows `PVE::JSONSchema::parse_property_string` (pve-common) and the
//! quoting that `proxmox-schema`'s `property_string` module adds on top:
//!
//! * Entries are separated by `,`. Entries that are empty or only whitespace are skipped, so a trailing comma is harmless.
//! * An entry is `key=value`, or a bare `value` that belongs to the default key. A bare value without a default key is an error, as is a second value for the same key.
//! * The key runs up to the first `=`; the value may contain further `=`.
//! * A value (or a bare value) that starts with `"` is quoted: it runs to the next unescaped `"`, may contain `,` and `=`, and understands the escapes `\"`, `\\` and `\n`. Only a `,` or the end may follow the closing quote.
//! * Unquoted values are taken literally, backslashes included.
//! * Unlike Perl, an empty value (`key=`) is accepted, as `proxmox-schema` does.
//!
//! When printing, a value is quoted if it contains `,`, `"`, `\` or a newline;
//! a bare default-key value is also quoted if it contains `=` or is blank.
//! So [`PropertyString::parse`] of [`PropertyString::format`] always gives the
//! entries back, and strings Proxmox prints come back unchanged.
//!
//! The typed helpers built on this live in [`crate::guest_config`].

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use crate::error::Error;

/// An ordered list of `key=value` entries with unique keys, parsed from or printed as a Proxmox property string.
///
/// ```
/// use shared_types::PropertyString;
///
/// let disk = PropertyString::parse("local-lvm:vm-100-disk-0,size=8G", Some("file")).unwrap();
/// assert_eq!(disk.get("file"), Some("local-lvm:vm-100-disk-0"));
/// assert_eq!(disk.get("size"), Some("8G"));
/// assert_eq!(disk.format(Some("file")), "local-lvm:vm-100-disk-0,size=8G");
/// assert_eq!(disk.to_string(), "file=local-lvm:vm-100-disk-0,size=8G");
/// ```
///
/// [`Display`](fmt::Display), [`FromStr`] and serde use no default key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PropertyString {
    entries: Vec<(String, String)>,
}

impl PropertyString {
    /// An empty property string.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `input`, giving bare values to `default_key` (see the [module docs](self) for the grammar).
    pub fn parse(input: &str, default_key: Option<&str>) -> Result<Self, Error> {
        let mut parsed = Self::new();
        for (key, value) in split_entries(input)? {
            let key = match (key, default_key) {
                (Some(key), _) => key,
                (None, Some(default_key)) => default_key,
                (None, None) => {
                    return Err(Error::invalid_property_string(
                        input,
                        format!(
                            "value {:?} has no key and this format has no default key",
                            crate::error::truncate(&value)
                        ),
                    ));
                }
            };
            if key.is_empty() {
                return Err(Error::invalid_property_string(
                    input,
                    "an entry starts with `=` (missing key)",
                ));
            }
            if parsed.contains_key(key) {
                return Err(Error::invalid_property_string(
                    input,
                    format!("duplicate key `{}`", crate::error::truncate(key)),
                ));
            }
            parsed.entries.push((key.to_owned(), value.into_owned()));
        }
        Ok(parsed)
    }

    /// Prints the entries in order, leaving out `default_key=` when the default key comes first.
    pub fn format(&self, default_key: Option<&str>) -> String {
        let mut out = String::new();
        for (position, (key, value)) in self.entries.iter().enumerate() {
            if position > 0 {
                out.push(',');
            }
            let bare = position == 0 && default_key == Some(key.as_str());
            if !bare {
                out.push_str(key);
                out.push('=');
            }
            write_value(&mut out, value, bare);
        }
        out
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// Sets `key` to `value`, keeping its position if present and appending it otherwise.
    ///
    /// Returns the previous value.
    /// Fails if the key could not be printed and parsed back: if it is empty,
    /// contains `,` or `=`, or starts with `"`.
    pub fn set(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Option<String>, Error> {
        let key = key.into();
        check_key(&key)?;
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, old)) => Ok(Some(std::mem::replace(old, value))),
            None => {
                self.entries.push((key, value));
                Ok(None)
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let position = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(position).1)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries in order, as owned pairs.
    pub fn into_entries(self) -> Vec<(String, String)> {
        self.entries
    }

    /// Builds a property string from pairs the caller guarantees to be valid and unique.
    pub(crate) fn from_entries_unchecked(entries: Vec<(String, String)>) -> Self {
        Self { entries }
    }
}

impl TryFrom<Vec<(String, String)>> for PropertyString {
    type Error = Error;

    /// Checks every key and rejects duplicates.
    fn try_from(entries: Vec<(String, String)>) -> Result<Self, Error> {
        let mut checked = Self::new();
        for (key, value) in entries {
            if checked.contains_key(&key) {
                return Err(Error::invalid_property_key(&key, "duplicate key"));
            }
            checked.set(key, value)?;
        }
        Ok(checked)
    }
}

impl fmt::Display for PropertyString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(None))
    }
}

impl FromStr for PropertyString {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        Self::parse(input, None)
    }
}

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`.
macro_rules! serde_via_string {
    ($type:ty, $expecting:literal) => {
        impl ::serde::Serialize for $type {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $type {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                struct StringVisitor;

                impl ::serde::de::Visitor<'_> for StringVisitor {
                    type Value = $type;

                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: ::serde::de::Error>(self, text: &str) -> Result<$type, E> {
                        text.parse().map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(StringVisitor)
            }
        }
    };
}
pub(crate) use serde_via_string;

serde_via_string!(
    PropertyString,
    "a Proxmox property string like `key=value,key=value`"
);

/// Rejects keys that would not survive printing and parsing.
fn check_key(key: &str) -> Result<(), Error> {
    if key.is_empty() {
        Err(Error::invalid_property_key(key, "key is empty"))
    } else if key.contains([',', '=']) {
        Err(Error::invalid_property_key(key, "key contains `,` or `=`"))
    } else if key.starts_with('"') {
        Err(Error::invalid_property_key(key, "key starts with `\"`"))
    } else {
        Ok(())
    }
}

/// One entry as written: a bare value has no key.
type RawEntry<'a> = (Option<&'a str>, Cow<'a, str>);

/// Splits `input` into entries.
fn split_entries(input: &str) -> Result<Vec<RawEntry<'_>>, Error> {
    let mut entries = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        if rest.starts_with('"') {
            let (value, after) = parse_quoted(input, rest)?;
            entries.push((None, value));
            rest = after;
            continue;
        }
        match rest.find([',', '=']) {
            Some(eq_at) if rest.as_bytes()[eq_at] == b'=' => {
                let key = &rest[..eq_at];
                let after_eq = &rest[eq_at + 1..];
                if after_eq.starts_with('"') {
                    let (value, after) = parse_quoted(input, after_eq)?;
                    entries.push((Some(key), value));
                    rest = after;
                } else {
                    let (value, after) = split_at_comma(after_eq);
                    entries.push((Some(key), Cow::Borrowed(value)));
                    rest = after;
                }
            }
            _ => {
                let (value, after) = split_at_comma(rest);
                if !value.trim().is_empty() {
                    entries.push((None, Cow::Borrowed(value)));
                }
                rest = after;
            }
        }
    }
    Ok(entries)
}

/// Splits at the first `,`, dropping it.
fn split_at_comma(text: &str) -> (&str, &str) {
    match text.find(',') {
        Some(comma_at) => (&text[..comma_at], &text[comma_at + 1..]),
        None => (text, ""),
    }
}

/// Parses the quoted value at the start of `quoted`; returns it and the text after the following `,`.
fn parse_quoted<'a>(input: &str, quoted: &'a str) -> Result<(Cow<'a, str>, &'a str), Error> {
    let body = &quoted[1..];
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => {
                let after = &body[index + 1..];
                return match after.strip_prefix(',') {
                    Some(after) => Ok((Cow::Owned(value), after)),
                    None if after.is_empty() => Ok((Cow::Owned(value), after)),
                    None => Err(Error::invalid_property_string(
                        input,
                        "text after a closing quote (expected `,` or the end)",
                    )),
                };
            }
            '\\' => match chars.next() {
                Some((_, '"')) => value.push('"'),
                Some((_, '\\')) => value.push('\\'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    return Err(Error::invalid_property_string(
                        input,
                        format!(
                            "unsupported escape `\\{other}` in a quoted value (use \\\", \\\\ or \\n)"
                        ),
                    ));
                }
                None => break,
            },
            other => value.push(other),
        }
    }
    Err(Error::invalid_property_string(
        input,
        "a quoted value is not closed",
    ))
}

/// Appends `value`, quoting it if it would not parse back on its own.
pub(crate) fn write_value(out: &mut String, value: &str, bare: bool) {
    let needs_quotes = value.contains([',', '"', '\\', '\n'])
        || (bare && (value.contains('=') || value.trim().is_empty()));
    if !needs_quotes {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            other => {
                // Writing to a String cannot fail.
                let _ = out.write_char(other);
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entries(props: &PropertyString) -> Vec<(&str, &str)> {
        props.iter().collect()
    }

    /// Parses with `default_key`, compares the entries, and checks that printing gives `input` back.
    fn check(input: &str, default_key: Option<&str>, expected: &[(&str, &str)]) {
        let props = PropertyString::parse(input, default_key).unwrap();
        assert_eq!(entries(&props), expected, "{input}");
        assert_eq!(props.format(default_key), input);
    }

    #[test]
    fn parses_real_qemu_and_lxc_values() {
        check(
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1",
            Some("model"),
            &[
                ("virtio", "BC:24:11:AA:BB:CC"),
                ("bridge", "vmbr0"),
                ("firewall", "1"),
            ],
        );
        check(
            "local-lvm:vm-100-disk-0,size=8G",
            Some("file"),
            &[("file", "local-lvm:vm-100-disk-0"), ("size", "8G")],
        );
        check(
            "local:iso/debian-12.5.0-amd64-netinst.iso,media=cdrom,size=629M",
            Some("file"),
            &[
                ("file", "local:iso/debian-12.5.0-amd64-netinst.iso"),
                ("media", "cdrom"),
                ("size", "629M"),
            ],
        );
        check(
            "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:5C:8E:43,ip=dhcp,ip6=auto,type=veth",
            None,
            &[
                ("name", "eth0"),
                ("bridge", "vmbr0"),
                ("firewall", "1"),
                ("hwaddr", "BC:24:11:5C:8E:43"),
                ("ip", "dhcp"),
                ("ip6", "auto"),
                ("type", "veth"),
            ],
        );
        // `pve-startup-order`: `[[order=]\d+] [,up=\d+] [,down=\d+]`.
        check(
            "2,up=30,down=60",
            Some("order"),
            &[("order", "2"), ("up", "30"), ("down", "60")],
        );
    }

    #[test]
    fn the_default_key_may_be_written_out_or_come_later() {
        let props =
            PropertyString::parse("size=8G,file=local:100/vm-100-disk-0.qcow2", Some("file"))
                .unwrap();
        assert_eq!(props.get("file"), Some("local:100/vm-100-disk-0.qcow2"));
        assert_eq!(
            props.format(Some("file")),
            "size=8G,file=local:100/vm-100-disk-0.qcow2"
        );
        let props =
            PropertyString::parse("file=local-lvm:vm-100-disk-0,size=8G", Some("file")).unwrap();
        assert_eq!(
            props.format(Some("file")),
            "local-lvm:vm-100-disk-0,size=8G"
        );
    }

    #[test]
    fn values_may_contain_equals_signs() {
        check(
            "mountoptions=noatime;nodev,comment=a=b",
            None,
            &[("mountoptions", "noatime;nodev"), ("comment", "a=b")],
        );
    }

    #[test]
    fn quoted_values_may_contain_commas_and_escapes() {
        check(
            r#""value, with comma",fst=v1,sec="with = and , in it",third="say \"hi\" \\ bye\n""#,
            Some("name"),
            &[
                ("name", "value, with comma"),
                ("fst", "v1"),
                ("sec", "with = and , in it"),
                ("third", "say \"hi\" \\ bye\n"),
            ],
        );
        // Quoting is only needed when the value would not parse back otherwise.
        let props = PropertyString::parse(r#"a="plain""#, None).unwrap();
        assert_eq!(props.format(None), "a=plain");
        // Backslashes outside quotes are literal.
        let props = PropertyString::parse(r"path=C:\temp", None).unwrap();
        assert_eq!(props.get("path"), Some(r"C:\temp"));
        assert_eq!(props.format(None), r#"path="C:\\temp""#);
    }

    #[test]
    fn a_bare_value_with_equals_is_quoted() {
        let mut props = PropertyString::new();
        props.set("file", "odd=name").unwrap();
        props.set("size", "1G").unwrap();
        assert_eq!(props.format(Some("file")), r#""odd=name",size=1G"#);
        assert_eq!(
            PropertyString::parse(&props.format(Some("file")), Some("file")).unwrap(),
            props
        );
    }

    #[test]
    fn blank_entries_are_skipped_and_empty_values_kept() {
        let props = PropertyString::parse("a=1,, ,b=2,", None).unwrap();
        assert_eq!(entries(&props), [("a", "1"), ("b", "2")]);
        check("a=,b=2", None, &[("a", ""), ("b", "2")]);
        check("", None, &[]);
    }

    #[test]
    fn rejects_malformed_strings_and_says_why() {
        let cases = [
            (
                "virtio",
                None,
                "has no key and this format has no default key",
            ),
            ("a=1,a=2", None, "duplicate key `a`"),
            ("local:1,local:2", Some("file"), "duplicate key `file`"),
            ("file=x,y", Some("file"), "duplicate key `file`"),
            ("=1", None, "missing key"),
            (r#"a="open"#, None, "not closed"),
            (r#"a="open\"#, None, "not closed"),
            (r#"a="x"y"#, None, "after a closing quote"),
            (r#"a="\t""#, None, "unsupported escape"),
        ];
        for (input, default_key, expected) in cases {
            let message = PropertyString::parse(input, default_key)
                .unwrap_err()
                .to_string();
            assert!(message.contains(expected), "{input}: {message}");
            assert!(message.starts_with("invalid property string"), "{message}");
        }
    }

    #[test]
    fn editing_keeps_order_and_checks_keys() {
        let mut props: PropertyString = "bridge=vmbr0,firewall=1".parse().unwrap();
        assert_eq!(
            props.set("bridge", "vmbr1").unwrap(),
            Some("vmbr0".to_owned())
        );
        assert_eq!(props.set("tag", "10").unwrap(), None);
        assert_eq!(props.to_string(), "bridge=vmbr1,firewall=1,tag=10");
        assert_eq!(props.remove("firewall"), Some("1".to_owned()));
        assert_eq!(props.remove("firewall"), None);
        assert_eq!(props.len(), 2);
        assert!(!props.is_empty());
        for bad in ["", "a,b", "a=b", "\"a"] {
            assert!(props.set(bad, "x").is_err(), "{bad:?}");
        }
        let pairs = vec![
            ("a".to_owned(), "1".to_owned()),
            ("a".to_owned(), "2".to_owned()),
        ];
        assert!(PropertyString::try_from(pairs).is_err());
    }

    #[test]
    fn serde_uses_the_string_form_without_default_key() {
        let props: PropertyString = serde_json::from_str(r#""bridge=vmbr0,firewall=1""#).unwrap();
        assert_eq!(props.get("firewall"), Some("1"));
        assert_eq!(
            serde_json::to_string(&props).unwrap(),
            r#""bridge=vmbr0,firewall=1""#
        );
        assert!(serde_json::from_str::<PropertyString>(r#""a=1,a=2""#).is_err());
    }

    fn any_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9:/._-]{0,16}",
            "[a-z ,=\"\\\\\n:]{0,12}",
            ".{0,10}",
        ]
    }

    fn any_property_string() -> impl Strategy<Value = (PropertyString, Option<String>)> {
        (
            prop::collection::vec(("[a-z][a-z0-9_-]{0,8}", any_value()), 0..8),
            any::<bool>(),
        )
            .prop_map(|(pairs, use_first_as_default)| {
                let mut props = PropertyString::new();
                for (key, value) in pairs {
                    if !props.contains_key(&key) {
                        props.set(key, value).unwrap();
                    }
                }
                let default_key = props
                    .iter()
                    .next()
                    .filter(|_| use_first_as_default)
                    .map(|(key, _)| key.to_owned());
                (props, default_key)
            })
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity((props, default_key) in any_property_string()) {
            let text = props.format(default_key.as_deref());
            let parsed = PropertyString::parse(&text, default_key.as_deref()).unwrap();
            prop_assert_eq!(&parsed, &props);
            prop_assert_eq!(parsed.format(default_key.as_deref()), text);
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "[a-z=,\"\\\\ ]{0,24}") {
            let _ = PropertyString::parse(&text, Some("file"));
            let _ = PropertyString::parse(&text, None);
        }
    }
}
