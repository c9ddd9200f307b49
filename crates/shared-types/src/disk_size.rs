//! [`DiskSize`]: sizes written the Proxmox way (`8G`, `512M`, `1.5T`, `+2G`).
//!
//! Proxmox's `disk-size` format is `PVE::JSONSchema::parse_size`:
//! `\d+(\.\d+)?[KMGT]?`, binary units, the result truncated to whole bytes.
//! The `resize` endpoints of QEMU and LXC guests take the same text with an
//! optional leading `+`, meaning "grow by" instead of "grow to".
//!
//! Printing follows `PVE::JSONSchema::format_size`: the largest unit that
//! divides the byte count exactly, or plain bytes.
//! So 8 GiB prints as `8G`, 1.5 GiB as `1536M`, 1000 bytes as `1000`.
//! Like Perl, zero prints as `0T`.
//! Printing and parsing are exact inverses.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Bytes in a kibibyte (`K`).
pub const KIB: u64 = 1 << 10;
/// Bytes in a mebibyte (`M`).
pub const MIB: u64 = 1 << 20;
/// Bytes in a gibibyte (`G`).
pub const GIB: u64 = 1 << 30;
/// Bytes in a tebibyte (`T`).
pub const TIB: u64 = 1 << 40;

/// A disk size in bytes, absolute (`8G`) or relative for a resize (`+2G`).
///
/// ```
/// use shared_types::DiskSize;
///
/// let size: DiskSize = "1.5G".parse().unwrap();
/// assert_eq!(size.bytes(), 1536 * 1024 * 1024);
/// assert_eq!(size.to_string(), "1536M");
///
/// let grow: DiskSize = "+2G".parse().unwrap();
/// assert!(grow.is_relative());
/// assert_eq!(grow, DiskSize::gib(2).relative());
/// assert_eq!(grow.to_string(), "+2G");
/// ```
///
/// Serialises as its string form; deserialises from that string or from an
/// integer byte count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DiskSize {
    bytes: u64,
    relative: bool,
}

impl DiskSize {
    /// An absolute size of `bytes` bytes.
    pub const fn from_bytes(bytes: u64) -> Self {
        Self {
            bytes,
            relative: false,
        }
    }

    /// An absolute size of `count` KiB, saturating at `u64::MAX` bytes.
    pub const fn kib(count: u64) -> Self {
        Self::from_bytes(count.saturating_mul(KIB))
    }

    /// An absolute size of `count` MiB, saturating at `u64::MAX` bytes.
    pub const fn mib(count: u64) -> Self {
        Self::from_bytes(count.saturating_mul(MIB))
    }

    /// An absolute size of `count` GiB, saturating at `u64::MAX` bytes.
    pub const fn gib(count: u64) -> Self {
        Self::from_bytes(count.saturating_mul(GIB))
    }

    /// An absolute size of `count` TiB, saturating at `u64::MAX` bytes.
    pub const fn tib(count: u64) -> Self {
        Self::from_bytes(count.saturating_mul(TIB))
    }

    /// The same number of bytes, as a relative size (`+…`) for resize requests.
    pub const fn relative(self) -> Self {
        Self {
            bytes: self.bytes,
            relative: true,
        }
    }

    /// The same number of bytes, as an absolute size.
    pub const fn absolute(self) -> Self {
        Self::from_bytes(self.bytes)
    }

    /// The size in bytes (for a relative size: the amount to add).
    pub const fn bytes(self) -> u64 {
        self.bytes
    }

    /// Whether this is a relative size (`+2G`).
    pub const fn is_relative(self) -> bool {
        self.relative
    }
}

impl fmt::Display for DiskSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.relative {
            f.write_str("+")?;
        }
        // `format_size`: walk up the units while the division stays exact.
        let bytes = self.bytes;
        if !bytes.is_multiple_of(KIB) {
            write!(f, "{bytes}")
        } else if !bytes.is_multiple_of(MIB) {
            write!(f, "{}K", bytes / KIB)
        } else if !bytes.is_multiple_of(GIB) {
            write!(f, "{}M", bytes / MIB)
        } else if !bytes.is_multiple_of(TIB) {
            write!(f, "{}G", bytes / GIB)
        } else {
            write!(f, "{}T", bytes / TIB)
        }
    }
}

impl FromStr for DiskSize {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::invalid_disk_size(input, reason);
        let shape =
            "expected digits with an optional fraction and unit K, M, G or T, like 8G, 1.5T or +2G";

        let (relative, text) = match input.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let (number, unit) = match text.char_indices().last() {
            Some((at, 'K')) => (&text[..at], KIB),
            Some((at, 'M')) => (&text[..at], MIB),
            Some((at, 'G')) => (&text[..at], GIB),
            Some((at, 'T')) => (&text[..at], TIB),
            _ => (text, 1),
        };
        let (whole, fraction) = match number.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (number, ""),
        };
        let all_digits = |digits: &str| digits.bytes().all(|b| b.is_ascii_digit());
        let fraction_ok = !number.contains('.') || !fraction.is_empty();
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) || !fraction_ok {
            return Err(invalid(shape));
        }

        let too_large = || invalid("size does not fit in 64 bits of bytes");
        let whole: u128 = whole.parse().map_err(|_| too_large())?;
        let mut bytes = whole.checked_mul(u128::from(unit)).ok_or_else(too_large)?;
        if !fraction.is_empty() {
            // Truncate like Perl's `int()`; 24 digits keep the product within u128.
            let fraction = &fraction[..fraction.len().min(24)];
            let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| too_large())?);
            let numerator: u128 = fraction.parse().map_err(|_| too_large())?;
            bytes += numerator * u128::from(unit) / scale;
        }
        let bytes = u64::try_from(bytes).map_err(|_| too_large())?;
        Ok(Self { bytes, relative })
    }
}

impl Serialize for DiskSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DiskSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DiskSizeVisitor;

        impl Visitor<'_> for DiskSizeVisitor {
            type Value = DiskSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a disk size like `8G`, `+2G` or a byte count")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<DiskSize, E> {
                Ok(DiskSize::from_bytes(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<DiskSize, E> {
                u64::try_from(bytes)
                    .map(DiskSize::from_bytes)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(bytes), &self))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<DiskSize, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(DiskSizeVisitor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse(text: &str) -> DiskSize {
        text.parse().unwrap()
    }

    #[test]
    fn parses_units_and_fractions() {
        assert_eq!(parse("8G").bytes(), 8 * GIB);
        assert_eq!(parse("512M").bytes(), 512 * MIB);
        assert_eq!(parse("1T").bytes(), TIB);
        assert_eq!(parse("4K").bytes(), 4 * KIB);
        assert_eq!(parse("1000").bytes(), 1000);
        assert_eq!(parse("1.5G").bytes(), 1536 * MIB);
        assert_eq!(parse("0.5K").bytes(), 512);
        // Perl: int(1.1 * 1024) == 1126.
        assert_eq!(parse("1.1K").bytes(), 1126);
        assert_eq!(parse("0.001G").bytes(), 1_073_741);
    }

    #[test]
    fn relative_sizes_are_for_resizing() {
        let grow = parse("+2G");
        assert!(grow.is_relative());
        assert_eq!(grow.bytes(), 2 * GIB);
        assert_eq!(grow.absolute(), DiskSize::gib(2));
        assert!(!parse("2G").is_relative());
    }

    #[test]
    fn prints_like_format_size() {
        let cases = [
            (DiskSize::gib(8), "8G"),
            (DiskSize::mib(512), "512M"),
            (DiskSize::tib(1), "1T"),
            (DiskSize::gib(1024), "1T"),
            (DiskSize::mib(1536), "1536M"),
            (DiskSize::kib(1), "1K"),
            (DiskSize::from_bytes(1000), "1000"),
            (DiskSize::from_bytes(0), "0T"),
            (DiskSize::gib(2).relative(), "+2G"),
            (DiskSize::from_bytes(u64::MAX), "18446744073709551615"),
        ];
        for (size, expected) in cases {
            assert_eq!(size.to_string(), expected);
            assert_eq!(parse(expected), size);
        }
    }

    #[test]
    fn rejects_malformed_sizes() {
        for text in [
            "", "G", "+", "8g", "8GB", "8 G", "-1G", "1.G", ".5G", "1.5.5G", "1,5G", "0x10",
            "++1G", "1e3",
        ] {
            let message = text.parse::<DiskSize>().unwrap_err().to_string();
            assert!(message.contains("expected digits"), "{text:?}: {message}");
        }
        let message = "16777216T".parse::<DiskSize>().unwrap_err().to_string();
        assert!(message.contains("64 bits"), "{message}");
        assert!(
            "99999999999999999999999999999999999999999"
                .parse::<DiskSize>()
                .is_err()
        );
    }

    #[test]
    fn serde_writes_strings_and_reads_strings_or_bytes() {
        assert_eq!(serde_json::to_string(&DiskSize::gib(8)).unwrap(), r#""8G""#);
        assert_eq!(
            serde_json::from_str::<DiskSize>(r#""+1G""#).unwrap(),
            DiskSize::gib(1).relative()
        );
        assert_eq!(
            serde_json::from_str::<DiskSize>("34359738368").unwrap(),
            DiskSize::gib(32)
        );
        assert!(serde_json::from_str::<DiskSize>("-1").is_err());
        assert!(serde_json::from_str::<DiskSize>(r#""big""#).is_err());
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(bytes in any::<u64>(), relative in any::<bool>()) {
            let size = DiskSize { bytes, relative };
            prop_assert_eq!(parse(&size.to_string()), size);
        }

        #[test]
        fn whole_units_print_compactly(count in 1u64..1024, unit in 0usize..3) {
            let (size, suffix) = [(DiskSize::kib(count), "K"), (DiskSize::mib(count), "M"), (DiskSize::gib(count), "G")][unit];
            prop_assert_eq!(size.to_string(), format!("{count}{suffix}"));
        }
    }
}
