//! Hash formats: property-string schemas that Proxmox registers by name
//! (`register_format('pve-qm-smbios1', $smbios1_fmt)`) and `apidata.js` leaves unexpanded (it
//! gives only a `typetext`). They are written down once, from their Perl definitions, in
//! `schemas/pve/hash_formats.json` (copied by codegen to `generated/hash_formats.json`; `pve-qm-ide` is the `ide[n]` drive format of qemu-server, the same hash),
//! and a value is checked as a property string, so nested keys get the same messages as inline
//! property strings. Validators attached with `register_format(name, $hash, \&validator)` run
//! after a clean parse, as `parse_property_string` runs them.
//!
//! Not reproduced: the `requires` key of `pve-qm-ipconfig` (`gw` needs `ip`), which pve-common
//! checks in `check_object` and the mock's `check_object` does not know.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use route_metadata::Schema;
use serde_json::{Map, Value};

use super::guest;
use crate::api::Api;
use crate::schema::property_string::parse_property_string;
use crate::schema::validate::Path;

type Validator = fn(&Map<String, Value>) -> Result<(), String>;

/// One hash format: its keys and the validator registered with it.
pub(crate) struct HashFormat {
    pub(super) keys: BTreeMap<String, Schema>,
    validator: Option<Validator>,
}

impl HashFormat {
    /// `parse_property_string($name, $value, $path)`, then the validator.
    pub(super) fn check(&self, api: &Api, value: &str, path: &Path<'_>) -> Result<(), String> {
        let parsed = parse_property_string(api, &self.keys, value, path)?;
        match self.validator {
            Some(validator) => validator(&parsed),
            None => Ok(()),
        }
    }
}

static FORMATS: LazyLock<BTreeMap<String, HashFormat>> = LazyLock::new(|| {
    let keys: BTreeMap<String, BTreeMap<String, Schema>> =
        serde_json::from_str(include_str!("../../../generated/hash_formats.json"))
            .expect("hash_formats.json");
    keys.into_iter()
        .map(|(name, keys)| {
            let validator: Option<Validator> = match name.as_str() {
                "prune-backups" => Some(guest::validate_prune_backups),
                "backup-fleecing" => Some(guest::validate_backup_fleecing),
                "pve-vm-cpu-conf" => Some(guest::validate_vm_cpu_conf),
                _ => None,
            };
            (name, HashFormat { keys, validator })
        })
        .collect()
});

/// The hash format registered under `name`.
pub(super) fn get(name: &str) -> Option<&'static HashFormat> {
    FORMATS.get(name)
}

/// Every hash format, for the coverage test.
#[cfg(test)]
pub(super) fn all() -> impl Iterator<Item = (&'static String, &'static HashFormat)> {
    FORMATS.iter()
}
