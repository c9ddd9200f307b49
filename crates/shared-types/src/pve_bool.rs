//! [`PveBool`]: the Proxmox boolean, written as `0`/`1` and read from any spelling Proxmox accepts.
//!
//! The Proxmox API declares booleans as `type => 'boolean'` but sends and
//! expects the integers `0` and `1`.
//! Its Perl side is lenient on input: `PVE::JSONSchema::parse_boolean` takes
//! `1|on|yes|true` and `0|off|no|false`, case-insensitively, and property
//! strings and configuration files go through that function.
//! Form-encoded requests arrive as strings, JSON bodies may carry real
//! `true`/`false`, so [`PveBool`] accepts all of these and always writes `0`/`1`.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A boolean that serialises as the integer `0` or `1`, as the Proxmox API does.
///
/// Deserialises from a JSON boolean, the integers `0`/`1`, or the strings
/// `0`, `1`, `true`, `false`, `yes`, `no`, `on`, `off` in any letter case.
/// Anything else is an error naming the rejected value.
///
/// ```
/// use shared_types::PveBool;
///
/// let enabled: PveBool = serde_json::from_str(r#""Yes""#).unwrap();
/// assert!(*enabled);
/// assert_eq!(serde_json::to_string(&enabled).unwrap(), "1");
/// assert_eq!(enabled.to_string(), "1");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PveBool(pub bool);

impl PveBool {
    /// `PveBool(true)`.
    pub const TRUE: Self = Self(true);
    /// `PveBool(false)`.
    pub const FALSE: Self = Self(false);

    /// The wrapped value.
    pub const fn get(self) -> bool {
        self.0
    }
}

/// Reads a boolean the way `PVE::JSONSchema::parse_boolean` does.
///
/// Accepts `1|on|yes|true` and `0|off|no|false`, ignoring letter case; returns
/// `None` for anything else (including surrounding whitespace, which Perl's
/// anchored regex rejects as well).
pub fn parse_boolean(text: &str) -> Option<bool> {
    const TRUE_SPELLINGS: [&str; 4] = ["1", "on", "yes", "true"];
    const FALSE_SPELLINGS: [&str; 4] = ["0", "off", "no", "false"];
    if TRUE_SPELLINGS.iter().any(|s| s.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE_SPELLINGS.iter().any(|s| s.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

impl From<bool> for PveBool {
    fn from(value: bool) -> Self {
        Self(value)
    }
}

impl From<PveBool> for bool {
    fn from(value: PveBool) -> Self {
        value.0
    }
}

impl Deref for PveBool {
    type Target = bool;

    fn deref(&self) -> &bool {
        &self.0
    }
}

impl fmt::Display for PveBool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "1" } else { "0" })
    }
}

impl FromStr for PveBool {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        parse_boolean(text)
            .map(Self)
            .ok_or_else(|| Error::invalid_bool(text))
    }
}

impl Serialize for PveBool {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(u8::from(self.0))
    }
}

impl<'de> Deserialize<'de> for PveBool {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PveBoolVisitor)
    }
}

struct PveBoolVisitor;

impl Visitor<'_> for PveBoolVisitor {
    type Value = PveBool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Proxmox boolean: true, false, 0, 1, or one of the strings 0, 1, true, false, yes, no, on, off")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<PveBool, E> {
        Ok(PveBool(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<PveBool, E> {
        match value {
            0 => Ok(PveBool(false)),
            1 => Ok(PveBool(true)),
            _ => Err(E::invalid_value(Unexpected::Unsigned(value), &self)),
        }
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<PveBool, E> {
        match value {
            0 => Ok(PveBool(false)),
            1 => Ok(PveBool(true)),
            _ => Err(E::invalid_value(Unexpected::Signed(value), &self)),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<PveBool, E> {
        parse_boolean(value)
            .map(PveBool)
            .ok_or_else(|| E::invalid_value(Unexpected::Str(&crate::error::truncate(value)), &self))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn from_json(json: &str) -> Result<PveBool, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn serialises_as_integer() {
        assert_eq!(serde_json::to_string(&PveBool(true)).unwrap(), "1");
        assert_eq!(serde_json::to_string(&PveBool(false)).unwrap(), "0");
    }

    #[test]
    fn deserialises_json_booleans_and_integers() {
        assert_eq!(from_json("true").unwrap(), PveBool(true));
        assert_eq!(from_json("false").unwrap(), PveBool(false));
        assert_eq!(from_json("1").unwrap(), PveBool(true));
        assert_eq!(from_json("0").unwrap(), PveBool(false));
    }

    #[test]
    fn deserialises_every_perl_spelling_in_any_case() {
        let cases = [
            ("1", true),
            ("on", true),
            ("yes", true),
            ("true", true),
            ("TRUE", true),
            ("Yes", true),
            ("oN", true),
            ("0", false),
            ("off", false),
            ("no", false),
            ("false", false),
            ("FALSE", false),
            ("No", false),
            ("OFF", false),
        ];
        for (text, expected) in cases {
            let json = format!("\"{text}\"");
            assert_eq!(from_json(&json).unwrap(), PveBool(expected), "{json}");
            assert_eq!(
                text.parse::<PveBool>().unwrap(),
                PveBool(expected),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_everything_else_with_a_clear_message() {
        for json in [
            "2",
            "-1",
            "0.5",
            "null",
            "[]",
            "{}",
            r#""""#,
            r#"" 1""#,
            r#""y""#,
            r#""n""#,
            r#""enabled""#,
            r#""2""#,
        ] {
            let error = from_json(json).unwrap_err().to_string();
            assert!(error.contains("Proxmox boolean"), "{json}: {error}");
        }
        let error = from_json(r#""maybe""#).unwrap_err().to_string();
        assert!(error.contains("\"maybe\""), "{error}");
        assert!("maybe".parse::<PveBool>().is_err());
    }

    #[test]
    fn conversions_and_display() {
        assert!(bool::from(PveBool::from(true)));
        assert!(!PveBool::default().get());
        assert!(*PveBool::TRUE);
        assert_eq!(PveBool::TRUE.to_string(), "1");
        assert_eq!(PveBool::FALSE.to_string(), "0");
    }

    #[test]
    fn works_inside_optional_struct_fields() {
        #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
        struct Options {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            onboot: Option<PveBool>,
        }
        let options: Options = serde_json::from_str(r#"{"onboot":"1"}"#).unwrap();
        assert_eq!(options.onboot, Some(PveBool(true)));
        assert_eq!(serde_json::to_string(&options).unwrap(), r#"{"onboot":1}"#);
        let options: Options = serde_json::from_str("{}").unwrap();
        assert_eq!(options.onboot, None);
    }
}
