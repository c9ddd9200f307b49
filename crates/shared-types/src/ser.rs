//! What the generated `Serialize` impls of the models call.
//!
//! A model serialises as a map of the fields that are set, in field order, each under the key
//! Proxmox spells it with; an [`Indexed`] family writes one entry per member (`net0`, `net3`,
//! ...) where it stands. This is what `#[derive(Serialize)]` with `rename`,
//! `skip_serializing_if = "Option::is_none"` and `flatten` wrote, in a fraction of the code per
//! struct: one call here per field.

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::family::{FamilyName, Indexed};

/// Writes the entry `key: value`.
pub fn entry<M: SerializeMap, T: Serialize + ?Sized>(
    map: &mut M,
    key: &'static str,
    value: &T,
) -> Result<(), M::Error> {
    map.serialize_entry(key, value)
}

/// Writes the entry `key: value` if `value` is set; nothing for `None`.
pub fn optional<M: SerializeMap, T: Serialize>(
    map: &mut M,
    key: &'static str,
    value: &Option<T>,
) -> Result<(), M::Error> {
    if value.is_some() {
        map.serialize_entry(key, value)?;
    }
    Ok(())
}

/// Writes one entry per member of `family`, in index order (`net0`, `net3`, ...).
pub fn family<M: SerializeMap, F: FamilyName, T: Serialize>(
    map: &mut M,
    family: &Indexed<F, T>,
) -> Result<(), M::Error> {
    for (index, value) in family.iter() {
        map.serialize_entry(&Indexed::<F, T>::key(index), value)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::Serializer;

    use super::*;

    struct Disk;

    impl FamilyName for Disk {
        const PREFIX: &'static str = "disk";
        const COUNT: u32 = 4;
    }

    /// Written as codegen writes a model.
    struct Model {
        vmid: u32,
        name: Option<String>,
        disk: Indexed<Disk, String>,
        load: Option<f64>,
    }

    impl Serialize for Model {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            entry(&mut map, "vm-id", &self.vmid)?;
            optional(&mut map, "name", &self.name)?;
            family(&mut map, &self.disk)?;
            optional(&mut map, "load", &self.load)?;
            map.end()
        }
    }

    #[test]
    fn set_fields_in_order_and_family_members_in_place() {
        let model = Model {
            vmid: 100,
            name: None,
            disk: Indexed::from([(3, "b".to_owned()), (0, "a".to_owned())]),
            load: Some(0.5),
        };
        assert_eq!(
            serde_json::to_string(&model).unwrap(),
            r#"{"vm-id":100,"disk0":"a","disk3":"b","load":0.5}"#
        );
        let empty = Model {
            vmid: 1,
            name: Some("web".to_owned()),
            disk: Indexed::new(),
            load: None,
        };
        assert_eq!(
            serde_json::to_string(&empty).unwrap(),
            r#"{"vm-id":1,"name":"web"}"#
        );
    }
}
