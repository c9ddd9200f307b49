//! Support of the generated property-string structs and string enums (`generated/`).
//!
//! Codegen turns every property-string format of the schema (`net[n]`, `scsi[n]`, `rootfs`,
//! `agent`, ...) into a struct with one field per key, and every string enum into a Rust enum
//! with an `Other(String)` fallback. Their `FromStr`/`Display`/serde impls are generated, but
//! short: they call into this module.
//!
//! - [`PropertyValue`] reads and writes one value of a property string (strings, numbers,
//!   [`PveBool`], [`DiskSize`], the generated enums);
//! - [`parse_entry`] and [`require`] turn a bad or missing value into an [`Error`] that names the
//!   key;
//! - [`Writer`] prints the entries as Proxmox does (the default key bare when it comes first,
//!   values quoted when they would not parse back);
//! - [`StringVisitor`] reads a string for the serde impls.
//!
//! Unknown keys are not errors: a generated struct keeps them, in order, in its `unknown`
//! field, and prints them back after the known ones, so a value from a newer Proxmox survives a
//! read-modify-write.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Visitor};

use crate::error::Error;
use crate::{DiskSize, PveBool};

/// One value of a property string: parsed from and printed to its text.
pub trait PropertyValue: Sized {
    /// Parses the value; the error says what was expected.
    fn parse_value(text: &str) -> Result<Self, String>;
    /// Prints the value.
    fn write_value(&self, out: &mut String);
}

impl PropertyValue for String {
    fn parse_value(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }

    fn write_value(&self, out: &mut String) {
        out.push_str(self);
    }
}

macro_rules! number_value {
    ($($number:ty => $what:literal),*) => {$(
        impl PropertyValue for $number {
            fn parse_value(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|_| $what.to_owned())
            }

            fn write_value(&self, out: &mut String) {
                out.push_str(&self.to_string());
            }
        }
    )*};
}

number_value!(i64 => "an integer", u64 => "a non-negative integer", u32 => "a non-negative integer", f64 => "a number");

impl PropertyValue for PveBool {
    fn parse_value(text: &str) -> Result<Self, String> {
        crate::pve_bool::parse_boolean(text)
            .map(PveBool)
            .ok_or_else(|| "a boolean (0, 1, true, false, yes, no, on, off)".to_owned())
    }

    fn write_value(&self, out: &mut String) {
        out.push(if self.0 { '1' } else { '0' });
    }
}

impl PropertyValue for DiskSize {
    fn parse_value(text: &str) -> Result<Self, String> {
        DiskSize::from_str(text).map_err(|_| "a disk size such as 8G, 512M or 4096".to_owned())
    }

    fn write_value(&self, out: &mut String) {
        out.push_str(&self.to_string());
    }
}

/// Parses the value of `key`.
pub fn parse_entry<T: PropertyValue>(key: &str, value: &str) -> Result<T, Error> {
    T::parse_value(value).map_err(|expected| {
        Error::invalid_property_value(key, value, format!("expected {expected}"))
    })
}

/// The value of a key the format requires, or [`Error::MissingProperty`].
pub fn require<T>(input: &str, key: &str, value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| Error::missing_property(input, key))
}

/// Prints the entries of a property string in order.
#[derive(Debug)]
pub struct Writer {
    out: String,
    default_key: Option<&'static str>,
}

impl Writer {
    /// A writer for a format with this default key.
    pub fn new(default_key: Option<&'static str>) -> Self {
        Writer {
            out: String::new(),
            default_key,
        }
    }

    /// Appends `key=value` (or the bare value, for the default key in first position).
    pub fn entry<T: PropertyValue>(&mut self, key: &str, value: &T) {
        let mut text = String::new();
        value.write_value(&mut text);
        self.raw(key, &text);
    }

    /// Appends `key=value` if the value is set.
    pub fn optional<T: PropertyValue>(&mut self, key: &str, value: &Option<T>) {
        if let Some(value) = value {
            self.entry(key, value);
        }
    }

    /// Appends a key and a value that are already text (the `unknown` keys, `model=macaddr`).
    pub fn raw(&mut self, key: &str, value: &str) {
        let bare = self.out.is_empty() && self.default_key == Some(key);
        if !self.out.is_empty() {
            self.out.push(',');
        }
        if !bare {
            self.out.push_str(key);
            self.out.push('=');
        }
        crate::property_string::write_value(&mut self.out, value, bare);
    }

    /// The printed property string.
    pub fn finish(self) -> String {
        self.out
    }
}

/// Visits a string (borrowed or owned) and converts it with `From<&str>`/`FromStr`.
pub struct StringVisitor<T>(PhantomData<fn() -> T>);

impl<T> StringVisitor<T> {
    /// The visitor.
    pub const fn new() -> Self {
        StringVisitor(PhantomData)
    }
}

impl<T> Default for StringVisitor<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FromStr> Visitor<'_> for StringVisitor<T>
where
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

#[cfg(all(test, feature = "nodes"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::generated::nodes::{
        LxcNetConfig, NodesLxcVmlistResponse, NodesQemuCreateVmParams, QemuNetConfig, QemuNetModel,
        ScsiConfig,
    };
    use crate::{DiskSize, Indexed, PveBool};

    /// Parses, checks the printed form, and parses that again to the same value.
    fn round_trip<T>(text: &str, printed: &str) -> T
    where
        T: std::str::FromStr<Err = crate::Error> + std::fmt::Display + PartialEq + std::fmt::Debug,
    {
        let parsed: T = text.parse().unwrap();
        assert_eq!(parsed.to_string(), printed, "{text}");
        assert_eq!(printed.parse::<T>().unwrap(), parsed, "{printed}");
        parsed
    }

    #[test]
    fn qemu_nic_with_model_and_mac() {
        let net: QemuNetConfig = round_trip(
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1",
            "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1",
        );
        assert_eq!(net.model, QemuNetModel::Virtio);
        assert_eq!(net.macaddr.as_deref(), Some("BC:24:11:AA:BB:CC"));
        assert_eq!(net.firewall, Some(PveBool(true)));
        // The canonical spellings: bare model, keys by name.
        round_trip::<QemuNetConfig>(
            "model=e1000,tag=10,bridge=vmbr1",
            "e1000,bridge=vmbr1,tag=10",
        );
        let built = QemuNetConfig {
            bridge: Some("vmbr0".to_owned()),
            ..QemuNetConfig::new(QemuNetModel::Virtio)
        };
        assert_eq!(built.to_string(), "virtio,bridge=vmbr0");
        assert!("bridge=vmbr0".parse::<QemuNetConfig>().is_err());
    }

    #[test]
    fn unknown_keys_and_values_survive() {
        let net: QemuNetConfig = round_trip(
            "fancy-nic,bridge=vmbr0,new-key=x",
            "fancy-nic,bridge=vmbr0,new-key=x",
        );
        assert_eq!(net.model, QemuNetModel::Other("fancy-nic".to_owned()));
        // An unknown `<model>=<mac>` key cannot be told from any other unknown key.
        assert!(
            "fancy-nic=BC:24:11:AA:BB:CC"
                .parse::<QemuNetConfig>()
                .is_err()
        );
        assert_eq!(net.unknown, [("new-key".to_owned(), "x".to_owned())]);
    }

    #[test]
    fn disks_and_container_nics() {
        let disk: ScsiConfig = round_trip(
            "local-lvm:vm-100-disk-0,size=8G,iothread=1",
            "local-lvm:vm-100-disk-0,iothread=1,size=8G",
        );
        assert_eq!(disk.file, "local-lvm:vm-100-disk-0");
        assert_eq!(disk.size, Some(DiskSize::gib(8)));
        let message = "local-lvm:1,size=big".parse::<ScsiConfig>().unwrap_err();
        assert!(message.to_string().contains("`size`"), "{message}");
        let nic: LxcNetConfig = round_trip(
            "name=eth0,bridge=vmbr0,ip=dhcp,hwaddr=BC:24:11:5C:8E:43",
            "bridge=vmbr0,hwaddr=BC:24:11:5C:8E:43,ip=dhcp,name=eth0",
        );
        assert_eq!(nic.name, "eth0");
    }

    #[test]
    fn models_hold_typed_property_strings() {
        let params = NodesQemuCreateVmParams {
            net: Indexed::from([(0, QemuNetConfig::new(QemuNetModel::Virtio))]),
            scsi: [(0, "local-lvm:8".parse().unwrap())].into_iter().collect(),
            ..NodesQemuCreateVmParams::new(100)
        };
        let json = serde_json::to_value(&params).unwrap();
        assert_eq!(json["vmid"], 100);
        assert_eq!(json["net0"], "virtio");
        assert_eq!(json["scsi0"], "local-lvm:8");
    }

    #[test]
    fn lenient_numbers_in_replies() {
        // `pct list` as Proxmox sends it: pressure fields and vmid as strings.
        let reply = r#"[{"vmid": "101", "status": "running", "pressurecpusome": "0.00",
            "pressurememoryfull": "0.12", "maxmem": 536870912, "cpus": "2", "tags": "a;b"}]"#;
        let list: NodesLxcVmlistResponse = serde_json::from_str(reply).unwrap();
        assert_eq!(list[0].vmid, 101);
        assert_eq!(list[0].pressurecpusome, Some(0.0));
        assert_eq!(list[0].pressurememoryfull, Some(0.12));
    }
}
