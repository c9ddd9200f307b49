//! What the generated `Deserialize` impls of the reply models call.
//!
//! A reply model implements [`FromMap`] with one loop over the keys of a JSON object: a `match`
//! on the key, one call here per field, unknown keys skipped with [`IgnoredAny`], and serde's own
//! `missing field` / `duplicate field` errors naming the key as Proxmox spells it. This replaces
//! `#[derive(Deserialize)]`, whose output per struct (a field enum and its visitor, `visit_seq`,
//! `visit_map`, a wrapper type per `deserialize_with` field and, for `#[serde(flatten)]`, a
//! buffered copy of the whole object) was most of `shared-types`' compile time.
//!
//! Behaviour is that of the derive it replaces: numbers read leniently ([`crate::lenient`])
//! where the field says so, an optional field absent or `null` is `None`, an indexed family
//! ([`Indexed`]) takes the keys `PREFIX0`, `PREFIX1`, ... it accepts, every other key is ignored.
//! What the derive also accepted and this does not: a struct written as a JSON array of its
//! field values (`visit_seq`), which Proxmox never sends.
//!
//! ```
//! use serde::de::MapAccess;
//! use shared_types::de;
//!
//! #[derive(Debug, PartialEq)]
//! struct Guest {
//!     vmid: u32,
//!     name: Option<String>,
//! }
//!
//! impl<'de> de::FromMap<'de> for Guest {
//!     const EXPECTING: &'static str = "struct Guest";
//!
//!     fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
//!         let (mut vmid, mut name) = (None, None);
//!         while let Some(key) = map.next_key::<de::Key<'de>>()? {
//!             match &*key {
//!                 "vmid" => de::lenient(&mut map, &mut vmid, "vmid")?,
//!                 "name" => de::value(&mut map, &mut name, "name")?,
//!                 _ => de::skip(&mut map)?,
//!             }
//!         }
//!         Ok(Guest {
//!             vmid: de::required::<A, _>(vmid, "vmid")?,
//!             name: de::optional(name),
//!         })
//!     }
//! }
//!
//! impl<'de> serde::Deserialize<'de> for Guest {
//!     fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
//!         de::deserialize(deserializer)
//!     }
//! }
//!
//! let guest: Guest = serde_json::from_str(r#"{"vmid": "100", "status": "running"}"#).unwrap();
//! assert_eq!(guest, Guest { vmid: 100, name: None });
//! ```

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::family::{FamilyName, Indexed};
use crate::lenient::Lenient;

/// A struct read from the entries of a map (a JSON object).
pub trait FromMap<'de>: Sized {
    /// What a value of another shape is reported as expecting, e.g. `struct ClusterResource`.
    const EXPECTING: &'static str;

    /// Reads the struct from the map's entries.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// Reads a [`FromMap`] struct from a map; what the generated `Deserialize::deserialize` calls.
pub fn deserialize<'de, D: Deserializer<'de>, T: FromMap<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(MapVisitor(PhantomData))
}

struct MapVisitor<T>(PhantomData<fn() -> T>);

impl<'de, T: FromMap<'de>> Visitor<'de> for MapVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::from_map(map)
    }
}

/// A map key: borrowed from the input where the format allows (serde_json's `from_slice` and
/// `from_str` for a key without escapes), otherwise owned. A key that is not a string (a
/// number in a non-JSON format) reads as the empty string, which no field is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'de>(Cow<'de, str>);

impl Deref for Key<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(key)))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key.to_owned())))
    }

    fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(key)))
    }

    fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(String::from_utf8_lossy(key).into_owned())))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed("")))
    }
}

/// Reads the value of field `key` into `slot`; the field seen twice is serde's
/// `duplicate field` error.
///
/// A required field's slot is `Option<T>`, an optional one's `Option<Option<T>>` (so that
/// `null` is `None` and still counts as seen).
pub fn value<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    key: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

/// [`value`] for a number field read leniently ([`crate::lenient`]): `"102"` is `102`.
pub fn lenient<'de, A: MapAccess<'de>, T: Lenient>(
    map: &mut A,
    slot: &mut Option<T>,
    key: &'static str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::duplicate_field(key));
    }
    *slot = Some(map.next_value_seed(LenientSeed(PhantomData))?);
    Ok(())
}

struct LenientSeed<T>(PhantomData<fn() -> T>);

impl<'de, T: Lenient> DeserializeSeed<'de> for LenientSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize_lenient(deserializer)
    }
}

/// Reads the value of `key` into `family` if `key` is one of its members (`net0` for
/// `net[n]`); `false` leaves the value unread for the next family or [`skip`].
///
/// A member seen twice is an error, as it was for the flattened [`Indexed`].
pub fn member<'de, A: MapAccess<'de>, F: FamilyName, T: Deserialize<'de>>(
    map: &mut A,
    family: &mut Indexed<F, T>,
    key: &str,
) -> Result<bool, A::Error> {
    let Some(index) = Indexed::<F, T>::parse_key(key) else {
        return Ok(false);
    };
    if family.contains(index) {
        return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
    }
    let value = map.next_value()?;
    // In range: `parse_key` accepted the index.
    family.insert(index, value).map_err(de::Error::custom)?;
    Ok(true)
}

/// Skips the value of a key the model does not know.
pub fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

/// The value of required field `key`, or serde's `missing field` error.
///
/// Called as `required::<A, _>(slot, "key")`: `A` names the error type.
pub fn required<'de, A: MapAccess<'de>, T>(
    slot: Option<T>,
    key: &'static str,
) -> Result<T, A::Error> {
    slot.ok_or_else(|| de::Error::missing_field(key))
}

/// The value of optional field `key`: `None` when absent or `null`.
pub fn optional<T>(slot: Option<Option<T>>) -> Option<T> {
    slot.flatten()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Marker of a test family `disk[n]`, `disk0` to `disk3`.
    struct Disk;

    impl FamilyName for Disk {
        const PREFIX: &'static str = "disk";
        const COUNT: u32 = 4;
    }

    /// Written as codegen writes a reply model.
    #[derive(Debug, PartialEq)]
    struct Model {
        vmid: u32,
        name: Option<String>,
        load: Option<f64>,
        disk: Indexed<Disk, String>,
    }

    impl<'de> FromMap<'de> for Model {
        const EXPECTING: &'static str = "struct Model";

        fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
            let (mut vmid, mut name, mut load) = (None, None, None);
            let mut disk = Indexed::new();
            while let Some(key) = map.next_key::<Key<'de>>()? {
                match &*key {
                    "vmid" => lenient(&mut map, &mut vmid, "vmid")?,
                    "name" => value(&mut map, &mut name, "name")?,
                    "load" => lenient(&mut map, &mut load, "load")?,
                    other => {
                        if !member(&mut map, &mut disk, other)? {
                            skip(&mut map)?;
                        }
                    }
                }
            }
            Ok(Model {
                vmid: required::<A, _>(vmid, "vmid")?,
                name: optional(name),
                load: optional(load),
                disk,
            })
        }
    }

    impl<'de> Deserialize<'de> for Model {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            super::deserialize(deserializer)
        }
    }

    fn parse(json: &str) -> Result<Model, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_missing_required_field_is_serdes_missing_field_error() {
        let error = parse(r#"{"name": "web"}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "missing field `vmid` at line 1 column 15"
        );
    }

    #[test]
    fn unknown_keys_are_ignored_whatever_their_value() {
        let model = parse(
            r#"{"status": {"deep": [1, {"x": null}]}, "vmid": 7, "disk9": "x", "diskette": 1, "disk01": 2}"#,
        )
        .unwrap();
        assert_eq!(
            model,
            Model {
                vmid: 7,
                name: None,
                load: None,
                disk: Indexed::new(),
            }
        );
    }

    #[test]
    fn lenient_numbers_in_strings_are_read() {
        let model = parse(r#"{"vmid": "102", "load": "0.25"}"#).unwrap();
        assert_eq!(model.vmid, 102);
        assert_eq!(model.load, Some(0.25));
        let error = parse(r#"{"vmid": "abc"}"#).unwrap_err().to_string();
        assert!(
            error.contains("invalid value: string \"abc\", expected an integer (u32)"),
            "{error}"
        );
    }

    #[test]
    fn null_and_absent_optional_fields_are_none() {
        let model = parse(r#"{"vmid": 1, "name": null, "load": null}"#).unwrap();
        assert_eq!((model.name, model.load), (None, None));
    }

    #[test]
    fn family_members_are_collected_by_index() {
        let model = parse(r#"{"disk3": "c", "vmid": 1, "disk0": "a"}"#).unwrap();
        assert_eq!(
            model.disk.iter().collect::<Vec<_>>(),
            [(0, &"a".to_owned()), (3, &"c".to_owned())]
        );
    }

    #[test]
    fn a_key_seen_twice_is_an_error() {
        let error = parse(r#"{"vmid": 1, "vmid": 2}"#).unwrap_err().to_string();
        assert!(error.starts_with("duplicate field `vmid`"), "{error}");
        let error = parse(r#"{"name": null, "vmid": 1, "name": "x"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("duplicate field `name`"), "{error}");
        let error = parse(r#"{"vmid": 1, "disk1": "a", "disk1": "b"}"#)
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("duplicate field `disk1`"), "{error}");
    }

    #[test]
    fn not_an_object_names_the_struct() {
        let error = parse(r#""text""#).unwrap_err().to_string();
        assert!(
            error.starts_with("invalid type: string \"text\", expected struct Model"),
            "{error}"
        );
    }

    /// A generated reply model: fields, a lenient number, families, an unknown key, and back.
    #[cfg(feature = "nodes")]
    #[test]
    fn a_generated_model_reads_and_writes_its_families_in_place() {
        use crate::generated::nodes::NodesQemuConfigVmResponse;

        let json = serde_json::json!({
            "digest": "0123abcd",
            "cores": "2",
            "name": "web01",
            "net0": "virtio=BC:24:11:00:00:01,bridge=vmbr0",
            "net3": "e1000=BC:24:11:00:00:02,bridge=vmbr1",
            "scsi0": "local-lvm:vm-100-disk-0,size=32G",
            "unused0": "local-lvm:vm-100-disk-1",
            "onboot": 1,
            "from-a-newer-proxmox": {"x": [1, 2]},
            "description": null
        });
        let config: NodesQemuConfigVmResponse = serde_json::from_value(json).unwrap();
        assert_eq!(config.digest, "0123abcd");
        assert_eq!(config.cores, Some(2));
        assert_eq!(config.description, None);
        assert_eq!(
            config.net.iter().map(|(i, _)| i).collect::<Vec<_>>(),
            [0, 3]
        );
        assert_eq!((config.scsi.len(), config.unused.len()), (1, 1));

        let written = serde_json::to_value(&config).unwrap();
        let keys: Vec<&str> = written
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // Set fields only, in field order, family members where the family stands.
        assert_eq!(
            keys,
            [
                "cores", "digest", "name", "net0", "net3", "onboot", "scsi0", "unused0"
            ]
        );
        assert_eq!(written["cores"], 2);
        let again: NodesQemuConfigVmResponse = serde_json::from_value(written).unwrap();
        assert_eq!(again, config);

        let error = serde_json::from_value::<NodesQemuConfigVmResponse>(
            serde_json::json!({"name": "web01"}),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "missing field `digest`");
    }

    #[test]
    fn keys_are_read_from_owned_strings_too() {
        let value = serde_json::json!({"vmid": 5, "name": "owned", "disk2": "b"});
        let model: Model = serde_json::from_value(value).unwrap();
        assert_eq!(model.name.as_deref(), Some("owned"));
        assert_eq!(model.disk.get(2).map(String::as_str), Some("b"));
        let escaped = parse(r#"{"vm\u0069d": 9}"#).unwrap();
        assert_eq!(escaped.vmid, 9);
    }
}
