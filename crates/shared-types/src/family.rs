//! [`Indexed`]: indexed parameter families such as `net[n]`, `scsi[n]`, `unused[n]` or `mp[n]`.
//!
//! The Proxmox schema describes some parameters as a family: `net[n]` stands
//! for the separate keys `net0`, `net1`, … up to a fixed count, all with the
//! same type.
//! Generated models hold each family in one field, next to the ordinary fields and other
//! families; their generated serde impls read a member key with [`crate::de::member`] and write
//! the members in place with [`crate::ser::family`]. A hand-written struct flattens the field:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use shared_types::{FamilyName, Indexed};
//!
//! /// Marker for `net[n]`.
//! pub struct NetFamily;
//!
//! impl FamilyName for NetFamily {
//!     const PREFIX: &'static str = "net";
//!     const COUNT: u32 = 32;
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct VmConfig {
//!     pub name: Option<String>,
//!     #[serde(flatten)]
//!     pub net: Indexed<NetFamily, String>,
//! }
//!
//! let config: VmConfig =
//!     serde_json::from_str(r#"{"name": "web01", "net0": "virtio,bridge=vmbr0", "memory": 2048}"#)
//!         .unwrap();
//! assert_eq!(config.net.get(0).map(String::as_str), Some("virtio,bridge=vmbr0"));
//! ```
//!
//! # Serde
//!
//! Serialising writes one map entry `PREFIX{index}` per element, in index
//! order, so a flattened family melts into the surrounding object.
//!
//! Deserialising reads a map and keeps only the keys [`Indexed::parse_key`]
//! accepts; the values of all other keys are skipped with
//! [`serde::de::IgnoredAny`].
//! That is what lets several flattened families (`net[n]`, `scsi[n]`,
//! `unused[n]`, …) and ordinary fields share one struct: serde offers every
//! leftover key to every flattened field, and each family takes its own.
//! The same rule means a key outside the family's range (`net32` when
//! `COUNT` is 32) or with a leading zero (`net01`) is *ignored*, not rejected:
//! among the leftovers it is indistinguishable from an unrelated key.
//! A key that appears twice is an error.
//!
//! # Design
//!
//! The marker is held as `PhantomData<fn() -> F>`, so `Indexed` is `Send`,
//! `Sync` and `'static` whenever `T` is, whatever `F` is.
//! `Clone`, `Debug`, `PartialEq` and friends are implemented by hand so that
//! they only ask for the bound on `T`; marker types need no derives.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Names an indexed parameter family: keys are `PREFIX` followed by an index below `COUNT`.
///
/// ```
/// use shared_types::{FamilyName, Indexed};
///
/// /// `net[n]` of a QEMU guest.
/// pub struct NetFamily;
///
/// impl FamilyName for NetFamily {
///     const PREFIX: &'static str = "net";
///     const COUNT: u32 = 32;
/// }
///
/// assert_eq!(Indexed::<NetFamily, String>::key(3), "net3");
/// assert_eq!(Indexed::<NetFamily, String>::parse_key("net31"), Some(31));
/// assert_eq!(Indexed::<NetFamily, String>::parse_key("net32"), None);
/// ```
pub trait FamilyName {
    /// The key prefix, e.g. `net`.
    const PREFIX: &'static str;
    /// The number of indices: keys run from `PREFIX0` to `PREFIX{COUNT - 1}`.
    const COUNT: u32;
}

/// The members of one indexed parameter family, by index.
///
/// A family `net[n]` is **one field** `net` of the generated models, not the fields `net0`,
/// `net1`, ...: where the compiler says "struct has no field named `net0`", write
/// `net: Indexed::from([(0, nic)])` instead. Build it from pairs of index and member, with
/// [`From`] an array or [`FromIterator`] (`collect`), or with [`Indexed::try_from_iter`] when
/// an index may be out of range:
///
/// ```
/// use shared_types::{FamilyName, Indexed};
///
/// struct Net;
/// impl FamilyName for Net {
///     const PREFIX: &'static str = "net";
///     const COUNT: u32 = 32;
/// }
///
/// let nics: Indexed<Net, String> = Indexed::from([(0, "virtio,bridge=vmbr0".to_owned())]);
/// assert_eq!(nics.get(0).map(String::as_str), Some("virtio,bridge=vmbr0"));
/// let more: Indexed<Net, &str> = [(0, "e1000"), (3, "virtio")].into_iter().collect();
/// assert_eq!(more.len(), 2);
/// assert!(Indexed::<Net, &str>::try_from_iter([(32, "virtio")]).is_err());
/// ```
///
/// See the [module docs](self) for how it (de)serialises.
pub struct Indexed<F: FamilyName, T> {
    entries: BTreeMap<u32, T>,
    family: PhantomData<fn() -> F>,
}

impl<F: FamilyName, T> Indexed<F, T> {
    /// An empty family.
    pub fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
            family: PhantomData,
        }
    }

    /// Builds a family from `(index, value)` pairs; fails on the first index that is out of range.
    ///
    /// A later pair with the same index replaces an earlier one.
    pub fn try_from_iter<I>(pairs: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (u32, T)>,
    {
        let mut family = Self::new();
        for (index, value) in pairs {
            family.insert(index, value)?;
        }
        Ok(family)
    }

    /// The member at `index`.
    pub fn get(&self, index: u32) -> Option<&T> {
        self.entries.get(&index)
    }

    /// The member at `index`, mutably.
    pub fn get_mut(&mut self, index: u32) -> Option<&mut T> {
        self.entries.get_mut(&index)
    }

    /// Whether there is a member at `index`.
    pub fn contains(&self, index: u32) -> bool {
        self.entries.contains_key(&index)
    }

    /// Sets the member at `index`, returning the previous one.
    ///
    /// Fails with [`Error::IndexOutOfRange`] if `index >= F::COUNT`.
    pub fn insert(&mut self, index: u32, value: T) -> Result<Option<T>, Error> {
        if index >= F::COUNT {
            return Err(Error::IndexOutOfRange {
                prefix: F::PREFIX,
                index,
                count: F::COUNT,
            });
        }
        Ok(self.entries.insert(index, value))
    }

    /// Removes and returns the member at `index`.
    pub fn remove(&mut self, index: u32) -> Option<T> {
        self.entries.remove(&index)
    }

    /// The lowest index without a member, or `None` if all `F::COUNT` are taken.
    ///
    /// Handy for adding a device: `net.insert(net.first_free_index()?, nic)`.
    pub fn first_free_index(&self) -> Option<u32> {
        (0..F::COUNT).find(|index| !self.entries.contains_key(index))
    }

    /// The members in index order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.entries.iter().map(|(index, value)| (*index, value))
    }

    /// The members in index order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.entries
            .iter_mut()
            .map(|(index, value)| (*index, value))
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key of `index`, e.g. `net3`.
    pub fn key(index: u32) -> String {
        format!("{}{index}", F::PREFIX)
    }

    /// The index of `key`, if it belongs to this family.
    ///
    /// `key` must be the prefix followed by a decimal index below `F::COUNT`,
    /// without sign or leading zeros: for `net` with 32 indices, `net0` and
    /// `net31` parse, `net`, `net01`, `net32`, `net+1` and `NET0` do not, nor
    /// does `mpx1` for the prefix `mp`.
    pub fn parse_key(key: &str) -> Option<u32> {
        let digits = key.strip_prefix(F::PREFIX)?;
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !well_formed {
            return None;
        }
        let index: u32 = digits.parse().ok()?;
        (index < F::COUNT).then_some(index)
    }
}

impl<F: FamilyName, T> Default for Indexed<F, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: FamilyName, T> FromIterator<(u32, T)> for Indexed<F, T> {
    /// Collects `(index, member)` pairs; a later pair with the same index replaces an earlier one.
    ///
    /// # Panics
    ///
    /// If an index is `F::COUNT` or more, as indexing a slice out of bounds does; use
    /// [`Indexed::try_from_iter`] for indices that come from outside the program.
    fn from_iter<I: IntoIterator<Item = (u32, T)>>(pairs: I) -> Self {
        match Self::try_from_iter(pairs) {
            Ok(family) => family,
            Err(error) => panic!("{error}"),
        }
    }
}

impl<F: FamilyName, T, const N: usize> From<[(u32, T); N]> for Indexed<F, T> {
    /// The family with these `(index, member)` pairs.
    ///
    /// # Panics
    ///
    /// If an index is `F::COUNT` or more (see [`FromIterator`]).
    fn from(pairs: [(u32, T); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<F: FamilyName, T: Clone> Clone for Indexed<F, T> {
    fn clone(&self) -> Self {
        Self {
            entries: self.entries.clone(),
            family: PhantomData,
        }
    }
}

impl<F: FamilyName, T: fmt::Debug> fmt::Debug for Indexed<F, T> {
    /// Prints like a map from keys (`net0`) to members.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.entries
                    .iter()
                    .map(|(index, value)| (Self::key(*index), value)),
            )
            .finish()
    }
}

impl<F: FamilyName, T: PartialEq> PartialEq for Indexed<F, T> {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl<F: FamilyName, T: Eq> Eq for Indexed<F, T> {}

impl<F: FamilyName, T: Hash> Hash for Indexed<F, T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.entries.hash(state);
    }
}

impl<F: FamilyName, T> IntoIterator for Indexed<F, T> {
    type Item = (u32, T);
    type IntoIter = btree_map::IntoIter<u32, T>;

    /// The members in index order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<F: FamilyName, T: Serialize> Serialize for Indexed<F, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (index, value) in &self.entries {
            map.serialize_entry(&Self::key(*index), value)?;
        }
        map.end()
    }
}

impl<'de, F: FamilyName, T: Deserialize<'de>> Deserialize<'de> for Indexed<F, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(FamilyVisitor(PhantomData))
    }
}

struct FamilyVisitor<F, T>(PhantomData<fn() -> (F, T)>);

impl<'de, F: FamilyName, T: Deserialize<'de>> Visitor<'de> for FamilyVisitor<F, T> {
    type Value = Indexed<F, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a map with keys `{prefix}0` to `{prefix}{last}`",
            prefix = F::PREFIX,
            last = F::COUNT.saturating_sub(1)
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut family = Indexed::new();
        while let Some(index) = map.next_key_seed(KeySeed::<F>(PhantomData))? {
            match index {
                Some(index) => {
                    let value = map.next_value()?;
                    if family.entries.insert(index, value).is_some() {
                        return Err(de::Error::custom(format_args!(
                            "duplicate field `{}`",
                            Indexed::<F, T>::key(index)
                        )));
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(family)
    }
}

/// Reads a map key as `Some(index)` if it belongs to family `F`, else `None`.
///
/// Keys that are not strings (possible in non-JSON formats) are `None` as well.
struct KeySeed<F>(PhantomData<fn() -> F>);

impl<'de, F: FamilyName> DeserializeSeed<'de> for KeySeed<F> {
    type Value = Option<u32>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<u32>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<F: FamilyName> Visitor<'_> for KeySeed<F> {
    type Value = Option<u32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Option<u32>, E> {
        Ok(Indexed::<F, ()>::parse_key(key))
    }

    fn visit_bytes<E: de::Error>(self, key: &[u8]) -> Result<Option<u32>, E> {
        Ok(std::str::from_utf8(key)
            .ok()
            .and_then(Indexed::<F, ()>::parse_key))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Option<u32>, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Option<u32>, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Option<u32>, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Option<u32>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<u32>, E> {
        Ok(None)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    struct Net;
    impl FamilyName for Net {
        const PREFIX: &'static str = "net";
        const COUNT: u32 = 32;
    }

    struct Scsi;
    impl FamilyName for Scsi {
        const PREFIX: &'static str = "scsi";
        const COUNT: u32 = 31;
    }

    struct Mp;
    impl FamilyName for Mp {
        const PREFIX: &'static str = "mp";
        const COUNT: u32 = 256;
    }

    struct Disk;
    impl FamilyName for Disk {
        const PREFIX: &'static str = "disk";
        const COUNT: u32 = 4;
    }

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    struct VmConfig {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(flatten)]
        net: Indexed<Net, String>,
        #[serde(flatten)]
        scsi: Indexed<Scsi, String>,
    }

    #[test]
    fn keys_and_parsing() {
        assert_eq!(Indexed::<Net, ()>::key(3), "net3");
        assert_eq!(Indexed::<Mp, ()>::key(0), "mp0");
        let cases = [
            ("net0", Some(0)),
            ("net7", Some(7)),
            ("net31", Some(31)),
            ("net32", None),
            ("net", None),
            ("net01", None),
            ("net00", None),
            ("net-1", None),
            ("net+1", None),
            ("net 1", None),
            ("NET0", None),
            ("net1a", None),
            ("net4294967296", None),
            ("scsi0", None),
            ("xnet0", None),
        ];
        for (key, expected) in cases {
            assert_eq!(Indexed::<Net, ()>::parse_key(key), expected, "{key}");
        }
        assert_eq!(Indexed::<Mp, ()>::parse_key("mp1"), Some(1));
        assert_eq!(Indexed::<Mp, ()>::parse_key("mp255"), Some(255));
        assert_eq!(Indexed::<Mp, ()>::parse_key("mpx1"), None);
        assert_eq!(Indexed::<Mp, ()>::parse_key("mp"), None);
    }

    #[test]
    fn insert_checks_the_range() {
        let mut net = Indexed::<Net, String>::new();
        assert_eq!(net.insert(0, "virtio".into()).unwrap(), None);
        assert_eq!(
            net.insert(0, "e1000".into()).unwrap(),
            Some("virtio".into())
        );
        assert_eq!(net.insert(31, "rtl8139".into()).unwrap(), None);
        let error = net.insert(32, "x".into()).unwrap_err();
        assert_eq!(
            error,
            Error::IndexOutOfRange {
                prefix: "net",
                index: 32,
                count: 32
            }
        );
        assert_eq!(net.len(), 2);
        assert_eq!(net.get(0).map(String::as_str), Some("e1000"));
        assert_eq!(net.first_free_index(), Some(1));
        assert_eq!(net.remove(0).as_deref(), Some("e1000"));
        assert_eq!(net.first_free_index(), Some(0));
        assert!(!net.contains(0));
        assert_eq!(
            net.iter().collect::<Vec<_>>(),
            [(31, &"rtl8139".to_owned())]
        );
        assert!(Indexed::<Disk, u8>::try_from_iter([(0, 1), (4, 2)]).is_err());
        let full = Indexed::<Disk, u8>::try_from_iter((0..4).map(|i| (i, 0))).unwrap();
        assert_eq!(full.first_free_index(), None);
        assert_eq!(
            full.into_iter().map(|(i, _)| i).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn debug_shows_keys_and_traits_need_no_marker_bounds() {
        let mut net = Indexed::<Net, u8>::default();
        net.insert(2, 7).unwrap();
        assert_eq!(format!("{net:?}"), r#"{"net2": 7}"#);
        let copy = net.clone();
        assert_eq!(copy, net);
        assert!(Indexed::<Net, u8>::new().is_empty());
    }

    #[test]
    fn several_flattened_families_share_a_struct() {
        let input = json!({
            "name": "web01",
            "net0": "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0",
            "net7": "e1000,bridge=vmbr1",
            "scsi1": "local-lvm:vm-100-disk-0,size=8G",
        });
        let config: VmConfig = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(config.name.as_deref(), Some("web01"));
        assert_eq!(config.net.len(), 2);
        assert_eq!(
            config.net.get(7).map(String::as_str),
            Some("e1000,bridge=vmbr1")
        );
        assert_eq!(config.scsi.len(), 1);
        assert_eq!(
            config.scsi.get(1).map(String::as_str),
            Some("local-lvm:vm-100-disk-0,size=8G")
        );
        assert_eq!(serde_json::to_value(&config).unwrap(), input);

        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<VmConfig>(&text).unwrap(), config);
    }

    #[test]
    fn unrelated_and_out_of_range_keys_are_ignored() {
        let input = json!({
            "net0": "virtio",
            "net32": "out of range",
            "net01": "leading zero",
            "scsi31": "out of range",
            "memory": 2048,
            "tags": ["a", "b"],
            "numa": {"nested": true},
        });
        let config: VmConfig = serde_json::from_value(input).unwrap();
        assert_eq!(config.net.iter().map(|(i, _)| i).collect::<Vec<_>>(), [0]);
        assert!(config.scsi.is_empty());
        assert_eq!(config.name, None);
    }

    #[test]
    fn values_are_deserialised_with_their_own_type() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Sizes {
            #[serde(flatten)]
            disk: Indexed<Disk, u64>,
        }
        let sizes: Sizes =
            serde_json::from_value(json!({"disk0": 10, "disk3": 34359738368u64, "size": 1}))
                .unwrap();
        assert_eq!(sizes.disk.get(3), Some(&34_359_738_368));
        assert_eq!(
            serde_json::to_value(&sizes).unwrap(),
            json!({"disk0": 10, "disk3": 34359738368u64})
        );
        let error = serde_json::from_value::<Sizes>(json!({"disk0": "ten"})).unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }

    #[test]
    fn works_without_flatten_and_rejects_duplicates() {
        let net: Indexed<Net, String> =
            serde_json::from_str(r#"{"net1":"virtio","other":1}"#).unwrap();
        assert_eq!(net.get(1).map(String::as_str), Some("virtio"));
        let error =
            serde_json::from_str::<Indexed<Net, String>>(r#"{"net1":"a","net1":"b"}"#).unwrap_err();
        assert!(
            error.to_string().contains("duplicate field `net1`"),
            "{error}"
        );
        assert!(serde_json::from_str::<Indexed<Net, String>>("[]").is_err());
    }

    proptest! {
        #[test]
        fn key_then_parse_key_is_identity(index in 0u32..32) {
            prop_assert_eq!(Indexed::<Net, ()>::parse_key(&Indexed::<Net, ()>::key(index)), Some(index));
        }

        #[test]
        fn parse_key_accepts_only_canonical_in_range_keys(suffix in "[0-9]{1,12}|[a-z0-9+-]{0,4}") {
            let key = format!("net{suffix}");
            match Indexed::<Net, ()>::parse_key(&key) {
                Some(index) => prop_assert_eq!(Indexed::<Net, ()>::key(index), key),
                None => {
                    let canonical = suffix.parse::<u32>().ok().filter(|i| *i < 32 && i.to_string() == suffix);
                    prop_assert_eq!(canonical, None);
                }
            }
        }

        #[test]
        fn flattened_families_round_trip(
            nets in prop::collection::btree_map(0u32..32, "[a-z0-9=,:]{0,12}", 0..5),
            disks in prop::collection::btree_map(0u32..31, "[a-z0-9=,:]{0,12}", 0..5),
            name in prop::option::of("[a-z]{1,8}"),
        ) {
            let config = VmConfig {
                name,
                net: Indexed::try_from_iter(nets).unwrap(),
                scsi: Indexed::try_from_iter(disks).unwrap(),
            };
            let text = serde_json::to_string(&config).unwrap();
            prop_assert_eq!(serde_json::from_str::<VmConfig>(&text).unwrap(), config);
        }
    }
}
