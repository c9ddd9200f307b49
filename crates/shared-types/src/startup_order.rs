//! [`StartupOrder`]: a guest's `startup` option (`order=1,up=30,down=60`).
//!
//! Proxmox registers the `pve-startup-order` format with a parser, not with a key list
//! (`PVE::JSONSchema::pve_parse_startup_order`): comma-separated parts, each `[order=]N`, `up=N` or
//! `down=N` with `N` a non-negative integer; empty parts are skipped; a later part overrides an
//! earlier one; anything else, and the empty string or `0` (Perl's false), is rejected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Startup and shutdown behaviour of a guest (`startup` of QEMU and LXC guests).
///
/// `order` is the general startup order (shutdown runs in reverse); `up` and `down` are delays
/// in seconds before the next guest is started or stopped.
///
/// ```
/// use shared_types::StartupOrder;
///
/// let startup: StartupOrder = "order=2,up=30".parse().unwrap();
/// assert_eq!(startup.order, Some(2));
/// assert_eq!(startup.up, Some(30));
/// assert_eq!(startup.down, None);
/// assert_eq!(startup.to_string(), "order=2,up=30");
///
/// // The order may be written without its key, as Proxmox accepts it.
/// assert_eq!("3".parse::<StartupOrder>().unwrap().order, Some(3));
/// assert!("order=first".parse::<StartupOrder>().is_err());
/// ```
///
/// Serialises as its string form; deserialises from that string.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct StartupOrder {
    /// The general startup order (`order=`).
    pub order: Option<u64>,
    /// Seconds to wait after starting this guest before the next one starts (`up=`).
    pub up: Option<u64>,
    /// Seconds to wait after stopping this guest before the next one stops (`down=`).
    pub down: Option<u64>,
}

impl StartupOrder {
    /// A startup order with only `order` set.
    pub const fn order(order: u64) -> Self {
        Self {
            order: Some(order),
            up: None,
            down: None,
        }
    }
}

fn digits(text: &str, whole: &str) -> Result<u64, Error> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(invalid(whole));
    }
    text.parse().map_err(|_| invalid(whole))
}

fn invalid(whole: &str) -> Error {
    Error::invalid_startup_order(whole)
}

impl FromStr for StartupOrder {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        if text.is_empty() || text == "0" {
            return Err(invalid(text));
        }
        let mut parsed = Self::default();
        for part in text.split(',') {
            if part.trim().is_empty() {
                continue;
            }
            if let Some(value) = part.strip_prefix("up=") {
                parsed.up = Some(digits(value, text)?);
            } else if let Some(value) = part.strip_prefix("down=") {
                parsed.down = Some(digits(value, text)?);
            } else {
                let value = part.strip_prefix("order=").unwrap_or(part);
                parsed.order = Some(digits(value, text)?);
            }
        }
        Ok(parsed)
    }
}

impl fmt::Display for StartupOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for (key, value) in [("order", self.order), ("up", self.up), ("down", self.down)] {
            if let Some(value) = value {
                write!(f, "{separator}{key}={value}")?;
                separator = ",";
            }
        }
        Ok(())
    }
}

impl Serialize for StartupOrder {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StartupOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(crate::typed_format::StringVisitor::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_pve_parse_startup_order() {
        let parsed: StartupOrder = "order=1,up=30,down=60".parse().expect("full");
        assert_eq!(
            parsed,
            StartupOrder {
                order: Some(1),
                up: Some(30),
                down: Some(60)
            }
        );
        // Empty parts are skipped, a bare number is the order, a later part wins.
        let parsed: StartupOrder = "up=5,,7,order=9".parse().expect("loose");
        assert_eq!(parsed.order, Some(9));
        assert_eq!(parsed.up, Some(5));
        for bad in ["", "0", "up=", "up=-1", "order=1x", "late=3", "up=+1", " 1"] {
            assert!(bad.parse::<StartupOrder>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn prints_what_it_parses() {
        for text in [
            "order=1",
            "up=30",
            "order=0,down=60",
            "order=2,up=30,down=60",
        ] {
            let parsed: StartupOrder = text.parse().expect("parse");
            assert_eq!(parsed.to_string(), text);
        }
    }

    #[test]
    fn serde_goes_through_the_string() {
        let parsed: StartupOrder = serde_json::from_str(r#""order=4,up=10""#).expect("decode");
        assert_eq!(
            parsed,
            StartupOrder {
                order: Some(4),
                up: Some(10),
                down: None
            }
        );
        assert_eq!(
            serde_json::to_string(&parsed).expect("encode"),
            r#""order=4,up=10""#
        );
        assert!(serde_json::from_str::<StartupOrder>(r#""order=x""#).is_err());
    }
}
