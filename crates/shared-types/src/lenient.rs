//! Lenient numbers: integers and floats read from a JSON number or a numeric string.
//!
//! Proxmox declares many fields as `integer` or `number` but its Perl side sends whatever the
//! value happens to be: `GET /cluster/nextid` answers `"102"`, the `pressure*` fields of a
//! container list arrive as `"0.00"`, and a config file read back gives strings everywhere.
//! [`PveBool`](crate::PveBool) already reads booleans that way; this module does the same for
//! numbers, so that one odd field never makes a whole reply unusable.
//!
//! Every integer and number field of the generated reply models is read through [`Lenient`]
//! (by [`crate::de::lenient`] in their generated `Deserialize` impls; hand-written types use
//! `#[serde(deserialize_with = "shared_types::lenient::deserialize")]`), while the field keeps its
//! plain type (`i64`, `u32`, `f64`, `Option<…>`, `Vec<…>`). Serialising is unchanged: numbers are
//! written as JSON numbers.
//!
//! Cost: reading a JSON number takes the same path as before (serde_json hands the number to the
//! visitor); only a string takes the extra `parse`.
//!
//! ```
//! #[derive(serde::Deserialize)]
//! struct Pressure {
//!     #[serde(deserialize_with = "shared_types::lenient::deserialize")]
//!     some: f64,
//!     #[serde(default, deserialize_with = "shared_types::lenient::deserialize")]
//!     vmid: Option<u32>,
//! }
//!
//! let reply: Pressure = serde_json::from_str(r#"{"some": "0.25", "vmid": "102"}"#).unwrap();
//! assert_eq!(reply.some, 0.25);
//! assert_eq!(reply.vmid, Some(102));
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};

/// A type read leniently: a number from a JSON number or a numeric string, and containers of
/// such types.
pub trait Lenient: Sized {
    /// Reads `Self` from `deserializer`, accepting numeric strings where numbers are expected.
    fn deserialize_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

/// Reads a [`Lenient`] type; for `#[serde(deserialize_with = "...")]`.
pub fn deserialize<'de, D: Deserializer<'de>, T: Lenient>(deserializer: D) -> Result<T, D::Error> {
    T::deserialize_lenient(deserializer)
}

/// A value decoded with [`Lenient`] rules, for a payload that is a bare number
/// (`{"data": "102"}`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LenientValue<T>(pub T);

impl<'de, T: Lenient> Deserialize<'de> for LenientValue<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize_lenient(deserializer).map(LenientValue)
    }
}

macro_rules! unwrap_value {
    ($($number:ty),*) => {$(
        impl From<LenientValue<$number>> for $number {
            fn from(value: LenientValue<$number>) -> $number {
                value.0
            }
        }
    )*};
}

unwrap_value!(i64, u64, i32, u32, f64);

/// Visits an integer of type `T` given as a number or a decimal string.
struct IntVisitor<T>(PhantomData<fn() -> T>);

macro_rules! lenient_int {
    ($($int:ty),*) => {$(
        impl<'de> Visitor<'de> for IntVisitor<$int> {
            type Value = $int;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!("an integer (", stringify!($int), ") or a string holding one"))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<$int, E> {
                <$int>::try_from(value)
                    .map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<$int, E> {
                <$int>::try_from(value)
                    .map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<$int, E> {
                // Perl may print an integer as `100.0`; a fraction is an error.
                let whole = value as $int;
                if value.fract() == 0.0 && whole as f64 == value {
                    Ok(whole)
                } else {
                    Err(E::invalid_value(Unexpected::Float(value), &self))
                }
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<$int, E> {
                let trimmed = text.trim();
                if let Ok(value) = trimmed.parse::<$int>() {
                    return Ok(value);
                }
                let whole = trimmed.parse::<f64>().ok().and_then(|value| {
                    let whole = value as $int;
                    (value.fract() == 0.0 && whole as f64 == value).then_some(whole)
                });
                whole.ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
            }
        }

        impl Lenient for $int {
            fn deserialize_lenient<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                deserializer.deserialize_any(IntVisitor::<$int>(PhantomData))
            }
        }
    )*};
}

lenient_int!(i64, u64, i32, u32);

/// Visits a float given as a number or a decimal string.
struct FloatVisitor;

impl<'de> Visitor<'de> for FloatVisitor {
    type Value = f64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or a string holding one")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
        Ok(value as f64)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
        Ok(value as f64)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
        Ok(value)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<f64, E> {
        text.trim()
            .parse()
            .map_err(|_| E::invalid_value(Unexpected::Str(text), &self))
    }
}

impl Lenient for f64 {
    fn deserialize_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FloatVisitor)
    }
}

/// Reads one `T` leniently, as a seed for options and sequences.
struct LenientSeed<T>(PhantomData<fn() -> T>);

impl<'de, T: Lenient> DeserializeSeed<'de> for LenientSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize_lenient(deserializer)
    }
}

struct OptionVisitor<T>(PhantomData<fn() -> T>);

impl<'de, T: Lenient> Visitor<'de> for OptionVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an optional number")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        T::deserialize_lenient(deserializer).map(Some)
    }
}

impl<T: Lenient> Lenient for Option<T> {
    fn deserialize_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_option(OptionVisitor(PhantomData))
    }
}

struct VecVisitor<T>(PhantomData<fn() -> T>);

impl<'de, T: Lenient> Visitor<'de> for VecVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(value) = seq.next_element_seed(LenientSeed::<T>(PhantomData))? {
            values.push(value);
        }
        Ok(values)
    }
}

impl<T: Lenient> Lenient for Vec<T> {
    fn deserialize_lenient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(VecVisitor(PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Reply {
        #[serde(deserialize_with = "deserialize")]
        count: i64,
        #[serde(deserialize_with = "deserialize")]
        vmid: u32,
        #[serde(deserialize_with = "deserialize")]
        load: f64,
        #[serde(default, deserialize_with = "deserialize")]
        maybe: Option<f64>,
        #[serde(default, deserialize_with = "deserialize")]
        list: Vec<i64>,
    }

    fn parse(json: &str) -> Result<Reply, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn numbers_and_numeric_strings() {
        let expected = Reply {
            count: -3,
            vmid: 102,
            load: 0.5,
            maybe: Some(1.0),
            list: vec![1, 2],
        };
        assert_eq!(
            parse(r#"{"count": -3, "vmid": 102, "load": 0.5, "maybe": 1, "list": [1, 2]}"#)
                .unwrap(),
            expected
        );
        assert_eq!(
            parse(
                r#"{"count": "-3", "vmid": "102", "load": "0.50", "maybe": "1", "list": ["1", 2]}"#
            )
            .unwrap(),
            expected
        );
        assert_eq!(
            parse(r#"{"count": 3.0, "vmid": "102.0", "load": 0, "maybe": null}"#).unwrap(),
            Reply {
                count: 3,
                vmid: 102,
                load: 0.0,
                maybe: None,
                list: vec![],
            }
        );
    }

    #[test]
    fn rejects_what_is_not_a_number() {
        for (json, expected) in [
            (
                r#"{"count": "abc", "vmid": 1, "load": 0}"#,
                "invalid value: string \"abc\", expected an integer (i64)",
            ),
            (
                r#"{"count": 1, "vmid": -1, "load": 0}"#,
                "invalid value: integer `-1`, expected an integer (u32)",
            ),
            (
                r#"{"count": 1.5, "vmid": 1, "load": 0}"#,
                "invalid value: floating point `1.5`",
            ),
            (
                r#"{"count": 1, "vmid": 1, "load": true}"#,
                "invalid type: boolean `true`, expected a number or a string holding one",
            ),
        ] {
            let message = parse(json).unwrap_err().to_string();
            assert!(message.contains(expected), "{json}: {message}");
        }
    }

    #[test]
    fn a_bare_payload() {
        let LenientValue(id) = serde_json::from_str::<LenientValue<i64>>(r#""102""#).unwrap();
        assert_eq!(id, 102);
    }
}
