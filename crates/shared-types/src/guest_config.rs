//! Typed property strings from guest configurations: QEMU `net[n]` and disks, LXC `net[n]` and mount points.
//!
//! Each type parses with [`FromStr`], prints with [`Display`](fmt::Display),
//! and (de)serialises as that string.
//! Keys and ranges come from the PVE 9.1 API schema (`schemas/pve/9.1/apidata.js`).
//!
//! # What is typed and what is kept as text
//!
//! The commonly used keys get fields: booleans (`0`/`1`, or any spelling
//! [`parse_boolean`] takes) become `bool`, integers and rates are range-checked
//! numbers, sizes are [`DiskSize`].
//! Enumerations (`cache`, `format`, NIC models, ...) stay `String`, so a value
//! added in a later Proxmox release still parses.
//! Every other key lands in the `extra` map with its text untouched.
//!
//! # Printing order
//!
//! `PVE::JSONSchema::print_property_string` writes the default key first, then
//! the required keys, then all other keys sorted by name.
//! These types print in the same order, merging `extra` into the sorted part,
//! which is why `extra` is a sorted map rather than a list: a string printed by
//! Proxmox comes back byte for byte, unknown keys included.
//! Text that Proxmox did not print itself (another key order, `yes` for a
//! boolean, `model=virtio,macaddr=…`) comes back in that canonical form.
//!
//! Fields are public, so a value built by hand can break the rules parsing
//! enforces (an out-of-range tag, an `extra` key containing `=`); such values
//! still print, but will not parse back.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::disk_size::DiskSize;
use crate::error::Error;
use crate::property_string::{PropertyString, serde_via_string};
use crate::pve_bool::parse_boolean;

/// NIC models of QEMU's `net[n]` (the `model` enum); each may also be used as a key carrying the MAC address.
pub const QEMU_NIC_MODELS: &[&str] = &[
    "e1000",
    "e1000-82540em",
    "e1000-82544gc",
    "e1000-82545em",
    "e1000e",
    "i82551",
    "i82557b",
    "i82559er",
    "ne2k_isa",
    "ne2k_pci",
    "pcnet",
    "rtl8139",
    "virtio",
    "vmxnet3",
];

/// A QEMU network device, the value of `net[n]`.
///
/// ```
/// use shared_types::NetConfig;
///
/// let text = "virtio=BC:24:11:AA:BB:CC,bridge=vmbr0,firewall=1";
/// let net: NetConfig = text.parse().unwrap();
/// assert_eq!(net.model, "virtio");
/// assert_eq!(net.macaddr.as_deref(), Some("BC:24:11:AA:BB:CC"));
/// assert_eq!(net.firewall, Some(true));
/// assert_eq!(net.to_string(), text);
/// ```
///
/// The MAC address travels in the model's key (`virtio=BC:24:…`); without one
/// the model is printed bare (`virtio,bridge=vmbr0`).
/// When there is no `model=` key, a first entry `<unknown-key>=<MAC address>`
/// is read as model and MAC too, so NIC models newer than [`QEMU_NIC_MODELS`]
/// still parse.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    /// NIC model, e.g. `virtio`, `e1000` (see [`QEMU_NIC_MODELS`]).
    pub model: String,
    /// MAC address (`XX:XX:XX:XX:XX:XX`); Proxmox generates one when absent.
    pub macaddr: Option<String>,
    /// Bridge to attach to, e.g. `vmbr0`.
    pub bridge: Option<String>,
    /// Whether the Proxmox firewall protects this interface.
    pub firewall: Option<bool>,
    /// Whether the link is down (cable unplugged).
    pub link_down: Option<bool>,
    /// MTU, 1 to 65520 (VirtIO only; 1 means "use the bridge's MTU").
    pub mtu: Option<u16>,
    /// Number of packet queues, 0 to 64.
    pub queues: Option<u8>,
    /// Rate limit in MB/s, at least 0.
    pub rate: Option<f64>,
    /// VLAN tag, 1 to 4094.
    pub tag: Option<u16>,
    /// VLAN trunks, `vlanid[;vlanid...]` (ranges as `10-20`).
    pub trunks: Option<String>,
    /// Every other key, with its text as given.
    pub extra: BTreeMap<String, String>,
}

impl NetConfig {
    /// A device of the given model with every option unset.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            macaddr: None,
            bridge: None,
            firewall: None,
            link_down: None,
            mtu: None,
            queues: None,
            rate: None,
            tag: None,
            trunks: None,
            extra: BTreeMap::new(),
        }
    }

    /// Whether `<model>=<mac>` prints as something that parses back as model and MAC.
    fn can_use_model_key(&self, mac: &str) -> bool {
        if QEMU_NIC_MODELS.contains(&self.model.as_str()) {
            return true;
        }
        const RESERVED: &[&str] = &[
            "model",
            "macaddr",
            "bridge",
            "firewall",
            "link_down",
            "mtu",
            "queues",
            "rate",
            "tag",
            "trunks",
        ];
        is_mac_address(mac)
            && !RESERVED.contains(&self.model.as_str())
            && !self.extra.contains_key(&self.model)
            && check_key(&self.model)
    }
}

impl FromStr for NetConfig {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let props = PropertyString::parse(input, Some("model"))?;
        let has_model_key = props.contains_key("model");
        let mut model = None;
        let mut macaddr = None;
        let mut net = Self::new(String::new());
        for (position, (key, value)) in props.into_entries().into_iter().enumerate() {
            match key.as_str() {
                "model" => set_once(&mut model, &key, value)?,
                "macaddr" => set_once(&mut macaddr, &key, value)?,
                "bridge" => net.bridge = Some(value),
                "firewall" => net.firewall = Some(bool_value(&key, &value)?),
                "link_down" => net.link_down = Some(bool_value(&key, &value)?),
                "mtu" => net.mtu = Some(int_value(&key, &value, 1, 65520)?),
                "queues" => net.queues = Some(int_value(&key, &value, 0, 64)?),
                "rate" => net.rate = Some(rate_value(&key, &value, Some(0.0))?),
                "tag" => net.tag = Some(int_value(&key, &value, 1, 4094)?),
                "trunks" => net.trunks = Some(value),
                _ if QEMU_NIC_MODELS.contains(&key.as_str())
                    || (position == 0 && !has_model_key && is_mac_address(&value)) =>
                {
                    set_once(&mut model, "model", key)?;
                    set_once(&mut macaddr, "macaddr", value)?;
                }
                _ => {
                    net.extra.insert(key, value);
                }
            }
        }
        net.model = model.ok_or_else(|| Error::missing_property(input, "model"))?;
        net.macaddr = macaddr;
        Ok(net)
    }
}

impl fmt::Display for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut printer = Printer::default();
        let default_key = match &self.macaddr {
            Some(mac) if self.can_use_model_key(mac) => {
                printer.lead(&self.model, mac);
                None
            }
            mac => {
                printer.lead("model", &self.model);
                printer.text("macaddr", mac);
                Some("model")
            }
        };
        printer.text("bridge", &self.bridge);
        printer.flag("firewall", self.firewall);
        printer.flag("link_down", self.link_down);
        printer.number("mtu", &self.mtu);
        printer.number("queues", &self.queues);
        printer.number("rate", &self.rate);
        printer.number("tag", &self.tag);
        printer.text("trunks", &self.trunks);
        printer.extra(&self.extra);
        f.write_str(&printer.finish(default_key))
    }
}

serde_via_string!(
    NetConfig,
    "a QEMU network device like `virtio=BC:24:11:AA:BB:CC,bridge=vmbr0`"
);

/// A QEMU drive: the value of `scsi[n]`, `virtio[n]`, `sata[n]`, `ide[n]`, `efidisk0`, `tpmstate0` or `unused[n]`.
///
/// ```
/// use shared_types::{DiskConfig, DiskSize};
///
/// let text = "local-lvm:vm-100-disk-0,discard=on,iothread=1,size=32G,ssd=1";
/// let disk: DiskConfig = text.parse().unwrap();
/// assert_eq!(disk.file, "local-lvm:vm-100-disk-0");
/// assert_eq!(disk.storage(), Some("local-lvm"));
/// assert_eq!(disk.size, Some(DiskSize::gib(32)));
/// assert_eq!(disk.to_string(), text);
///
/// // Creating a VM: allocate a new 8 GiB volume on `local-lvm`.
/// assert_eq!(DiskConfig::new_volume("local-lvm", 8).to_string(), "local-lvm:8");
/// ```
///
/// `volume=` is accepted as an alias of `file=`.
/// Keys specific to some drive kinds (`efitype`, `version`, `serial`, the
/// throttling limits, ...) are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// The backing volume (`local-lvm:vm-100-disk-0`), a new volume to allocate
    /// (`local-lvm:8` for 8 GiB), a path (`/dev/sdb`), or `none`/`cdrom` for an empty CD drive.
    pub file: String,
    /// AIO mode: `native`, `threads` or `io_uring`.
    pub aio: Option<String>,
    /// Whether backups include the drive.
    pub backup: Option<bool>,
    /// Cache mode: `none`, `writethrough`, `writeback`, `unsafe` or `directsync`.
    pub cache: Option<String>,
    /// Discard handling: `ignore` or `on`.
    pub discard: Option<String>,
    /// Image format: `raw`, `qcow2`, `vmdk`, ...
    pub format: Option<String>,
    /// Volume or absolute path to import the new disk from (key `import-from`).
    pub import_from: Option<String>,
    /// Whether the drive gets its own I/O thread.
    pub iothread: Option<bool>,
    /// Media type: `disk` or `cdrom`.
    pub media: Option<String>,
    /// Whether replication jobs include the drive.
    pub replicate: Option<bool>,
    /// Whether the drive is read-only.
    pub ro: Option<bool>,
    /// Whether a locally managed volume is marked as available on all nodes.
    pub shared: Option<bool>,
    /// Informational size, always absolute.
    pub size: Option<DiskSize>,
    /// Whether QEMU's snapshot mode is on (writes are discarded on shutdown).
    pub snapshot: Option<bool>,
    /// Whether the drive is shown to the guest as an SSD.
    pub ssd: Option<bool>,
    /// Every other key, with its text as given.
    pub extra: BTreeMap<String, String>,
}

impl DiskConfig {
    /// A drive backed by `file` with every option unset.
    pub fn new(file: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            aio: None,
            backup: None,
            cache: None,
            discard: None,
            format: None,
            import_from: None,
            iothread: None,
            media: None,
            replicate: None,
            ro: None,
            shared: None,
            size: None,
            snapshot: None,
            ssd: None,
            extra: BTreeMap::new(),
        }
    }

    /// A request to allocate a new volume of `size_gib` GiB on `storage` (`STORAGE_ID:SIZE_IN_GiB`).
    pub fn new_volume(storage: &str, size_gib: u64) -> Self {
        Self::new(format!("{storage}:{size_gib}"))
    }

    /// The storage id of a `storage:volume` file, or `None` for paths, `none` and `cdrom`.
    pub fn storage(&self) -> Option<&str> {
        storage_of(&self.file)
    }

    /// Whether this is a CD-ROM drive (`media=cdrom`).
    pub fn is_cdrom(&self) -> bool {
        self.media.as_deref() == Some("cdrom")
    }
}

impl FromStr for DiskConfig {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let props = PropertyString::parse(input, Some("file"))?;
        let mut file = None;
        let mut disk = Self::new(String::new());
        for (key, value) in props.into_entries() {
            match key.as_str() {
                "file" | "volume" => set_once(&mut file, "file", value)?,
                "aio" => disk.aio = Some(value),
                "backup" => disk.backup = Some(bool_value(&key, &value)?),
                "cache" => disk.cache = Some(value),
                "discard" => disk.discard = Some(value),
                "format" => disk.format = Some(value),
                "import-from" => disk.import_from = Some(value),
                "iothread" => disk.iothread = Some(bool_value(&key, &value)?),
                "media" => disk.media = Some(value),
                "replicate" => disk.replicate = Some(bool_value(&key, &value)?),
                "ro" => disk.ro = Some(bool_value(&key, &value)?),
                "shared" => disk.shared = Some(bool_value(&key, &value)?),
                "size" => disk.size = Some(size_value(&key, &value)?),
                "snapshot" => disk.snapshot = Some(bool_value(&key, &value)?),
                "ssd" => disk.ssd = Some(bool_value(&key, &value)?),
                _ => {
                    disk.extra.insert(key, value);
                }
            }
        }
        disk.file = file.ok_or_else(|| Error::missing_property(input, "file"))?;
        Ok(disk)
    }
}

impl fmt::Display for DiskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut printer = Printer::default();
        printer.lead("file", &self.file);
        printer.text("aio", &self.aio);
        printer.flag("backup", self.backup);
        printer.text("cache", &self.cache);
        printer.text("discard", &self.discard);
        printer.text("format", &self.format);
        printer.text("import-from", &self.import_from);
        printer.flag("iothread", self.iothread);
        printer.text("media", &self.media);
        printer.flag("replicate", self.replicate);
        printer.flag("ro", self.ro);
        printer.flag("shared", self.shared);
        printer.number("size", &self.size);
        printer.flag("snapshot", self.snapshot);
        printer.flag("ssd", self.ssd);
        printer.extra(&self.extra);
        f.write_str(&printer.finish(Some("file")))
    }
}

serde_via_string!(
    DiskConfig,
    "a QEMU drive like `local-lvm:vm-100-disk-0,size=8G`"
);

/// An LXC container's root file system or mount point: the value of `rootfs` or `mp[n]`.
///
/// ```
/// use shared_types::MountPoint;
///
/// let text = "local-lvm:vm-101-disk-1,mp=/mnt/data,backup=1,size=32G";
/// let mount: MountPoint = text.parse().unwrap();
/// assert_eq!(mount.volume, "local-lvm:vm-101-disk-1");
/// assert_eq!(mount.mp.as_deref(), Some("/mnt/data"));
/// assert_eq!(mount.to_string(), text);
/// ```
///
/// `mp` is required for `mp[n]` and absent for `rootfs`; when present it is
/// printed right after the volume, as Proxmox does with required keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// Volume (`local-lvm:vm-101-disk-1`), new volume (`local-lvm:8`), device or host directory.
    pub volume: String,
    /// Path inside the container (`mp[n]` only).
    pub mp: Option<String>,
    /// Whether ACL support is explicitly on or off.
    pub acl: Option<bool>,
    /// Whether backups include the mount point.
    pub backup: Option<bool>,
    /// Extra mount options, `opt[;opt...]` (e.g. `noatime;nodev`).
    pub mountoptions: Option<String>,
    /// Whether user quotas are enabled inside the container.
    pub quota: Option<bool>,
    /// Whether replication jobs include the volume.
    pub replicate: Option<bool>,
    /// Whether the mount is read-only.
    pub ro: Option<bool>,
    /// Whether a non-volume mount point is available on several nodes.
    pub shared: Option<bool>,
    /// Volume size, always absolute.
    pub size: Option<DiskSize>,
    /// Every other key, with its text as given.
    pub extra: BTreeMap<String, String>,
}

impl MountPoint {
    /// A mount of `volume` with every option unset (a `rootfs` unless `mp` is set).
    pub fn new(volume: impl Into<String>) -> Self {
        Self {
            volume: volume.into(),
            mp: None,
            acl: None,
            backup: None,
            mountoptions: None,
            quota: None,
            replicate: None,
            ro: None,
            shared: None,
            size: None,
            extra: BTreeMap::new(),
        }
    }

    /// The storage id of a `storage:volume` volume, or `None` for devices and host directories.
    pub fn storage(&self) -> Option<&str> {
        storage_of(&self.volume)
    }
}

impl FromStr for MountPoint {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let props = PropertyString::parse(input, Some("volume"))?;
        let mut volume = None;
        let mut mount = Self::new(String::new());
        for (key, value) in props.into_entries() {
            match key.as_str() {
                "volume" => set_once(&mut volume, &key, value)?,
                "mp" => mount.mp = Some(value),
                "acl" => mount.acl = Some(bool_value(&key, &value)?),
                "backup" => mount.backup = Some(bool_value(&key, &value)?),
                "mountoptions" => mount.mountoptions = Some(value),
                "quota" => mount.quota = Some(bool_value(&key, &value)?),
                "replicate" => mount.replicate = Some(bool_value(&key, &value)?),
                "ro" => mount.ro = Some(bool_value(&key, &value)?),
                "shared" => mount.shared = Some(bool_value(&key, &value)?),
                "size" => mount.size = Some(size_value(&key, &value)?),
                _ => {
                    mount.extra.insert(key, value);
                }
            }
        }
        mount.volume = volume.ok_or_else(|| Error::missing_property(input, "volume"))?;
        Ok(mount)
    }
}

impl fmt::Display for MountPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut printer = Printer::default();
        printer.lead("volume", &self.volume);
        if let Some(mp) = &self.mp {
            printer.lead("mp", mp);
        }
        printer.flag("acl", self.acl);
        printer.flag("backup", self.backup);
        printer.text("mountoptions", &self.mountoptions);
        printer.flag("quota", self.quota);
        printer.flag("replicate", self.replicate);
        printer.flag("ro", self.ro);
        printer.flag("shared", self.shared);
        printer.number("size", &self.size);
        printer.extra(&self.extra);
        f.write_str(&printer.finish(Some("volume")))
    }
}

serde_via_string!(
    MountPoint,
    "an LXC mount point like `local-lvm:vm-101-disk-1,mp=/mnt/data,size=8G`"
);

/// An LXC network interface, the value of a container's `net[n]`.
///
/// ```
/// use shared_types::LxcNetConfig;
///
/// let text = "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:5C:8E:43,ip=dhcp,ip6=auto,type=veth";
/// let net: LxcNetConfig = text.parse().unwrap();
/// assert_eq!(net.name, "eth0");
/// assert_eq!(net.ip.as_deref(), Some("dhcp"));
/// assert_eq!(net.to_string(), text);
/// ```
///
/// There is no default key: `name=` is always written, and printed first.
#[derive(Debug, Clone, PartialEq)]
pub struct LxcNetConfig {
    /// Interface name inside the container, e.g. `eth0`.
    pub name: String,
    /// Bridge to attach to, e.g. `vmbr0`.
    pub bridge: Option<String>,
    /// Whether the interface's firewall rules apply.
    pub firewall: Option<bool>,
    /// IPv4 default gateway.
    pub gw: Option<String>,
    /// IPv6 default gateway.
    pub gw6: Option<String>,
    /// MAC address (`XX:XX:XX:XX:XX:XX`).
    pub hwaddr: Option<String>,
    /// IPv4 configuration: CIDR, `dhcp` or `manual`.
    pub ip: Option<String>,
    /// IPv6 configuration: CIDR, `auto`, `dhcp` or `manual`.
    pub ip6: Option<String>,
    /// Whether the link is down (cable unplugged).
    pub link_down: Option<bool>,
    /// MTU, 64 to 65535.
    pub mtu: Option<u16>,
    /// Rate limit in MB/s.
    pub rate: Option<f64>,
    /// VLAN tag, 1 to 4094.
    pub tag: Option<u16>,
    /// VLAN trunks, `vlanid[;vlanid...]`.
    pub trunks: Option<String>,
    /// Interface type (key `type`); Proxmox only knows `veth`.
    pub interface_type: Option<String>,
    /// Every other key, with its text as given.
    pub extra: BTreeMap<String, String>,
}

impl LxcNetConfig {
    /// An interface named `name` with every option unset.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            bridge: None,
            firewall: None,
            gw: None,
            gw6: None,
            hwaddr: None,
            ip: None,
            ip6: None,
            link_down: None,
            mtu: None,
            rate: None,
            tag: None,
            trunks: None,
            interface_type: None,
            extra: BTreeMap::new(),
        }
    }
}

impl FromStr for LxcNetConfig {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let props = PropertyString::parse(input, None)?;
        let mut name = None;
        let mut net = Self::new(String::new());
        for (key, value) in props.into_entries() {
            match key.as_str() {
                "name" => set_once(&mut name, &key, value)?,
                "bridge" => net.bridge = Some(value),
                "firewall" => net.firewall = Some(bool_value(&key, &value)?),
                "gw" => net.gw = Some(value),
                "gw6" => net.gw6 = Some(value),
                "hwaddr" => net.hwaddr = Some(value),
                "ip" => net.ip = Some(value),
                "ip6" => net.ip6 = Some(value),
                "link_down" => net.link_down = Some(bool_value(&key, &value)?),
                "mtu" => net.mtu = Some(int_value(&key, &value, 64, 65535)?),
                "rate" => net.rate = Some(rate_value(&key, &value, None)?),
                "tag" => net.tag = Some(int_value(&key, &value, 1, 4094)?),
                "trunks" => net.trunks = Some(value),
                "type" => net.interface_type = Some(value),
                _ => {
                    net.extra.insert(key, value);
                }
            }
        }
        net.name = name.ok_or_else(|| Error::missing_property(input, "name"))?;
        Ok(net)
    }
}

impl fmt::Display for LxcNetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut printer = Printer::default();
        printer.lead("name", &self.name);
        printer.text("bridge", &self.bridge);
        printer.flag("firewall", self.firewall);
        printer.text("gw", &self.gw);
        printer.text("gw6", &self.gw6);
        printer.text("hwaddr", &self.hwaddr);
        printer.text("ip", &self.ip);
        printer.text("ip6", &self.ip6);
        printer.flag("link_down", self.link_down);
        printer.number("mtu", &self.mtu);
        printer.number("rate", &self.rate);
        printer.number("tag", &self.tag);
        printer.text("trunks", &self.trunks);
        printer.text("type", &self.interface_type);
        printer.extra(&self.extra);
        f.write_str(&printer.finish(None))
    }
}

serde_via_string!(
    LxcNetConfig,
    "an LXC network interface like `name=eth0,bridge=vmbr0,ip=dhcp`"
);

/// Collects entries in Proxmox's printing order: leading entries as given, the rest sorted by key.
#[derive(Default)]
struct Printer {
    leading: Vec<(String, String)>,
    sorted: Vec<(String, String)>,
}

impl Printer {
    fn lead(&mut self, key: &str, value: &str) {
        self.leading.push((key.to_owned(), value.to_owned()));
    }

    fn text(&mut self, key: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.sorted.push((key.to_owned(), value.clone()));
        }
    }

    fn flag(&mut self, key: &str, value: Option<bool>) {
        if let Some(value) = value {
            self.sorted
                .push((key.to_owned(), if value { "1" } else { "0" }.to_owned()));
        }
    }

    fn number<T: fmt::Display>(&mut self, key: &str, value: &Option<T>) {
        if let Some(value) = value {
            self.sorted.push((key.to_owned(), value.to_string()));
        }
    }

    fn extra(&mut self, extra: &BTreeMap<String, String>) {
        self.sorted
            .extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    fn finish(mut self, default_key: Option<&str>) -> String {
        self.sorted.sort_by(|a, b| a.0.cmp(&b.0));
        self.leading.append(&mut self.sorted);
        PropertyString::from_entries_unchecked(self.leading).format(default_key)
    }
}

fn set_once(slot: &mut Option<String>, key: &str, value: String) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::invalid_property_value(
            key,
            &value,
            "given twice (directly and through an alias)",
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn bool_value(key: &str, value: &str) -> Result<bool, Error> {
    parse_boolean(value).ok_or_else(|| {
        Error::invalid_property_value(
            key,
            value,
            "expected a boolean (0, 1, true, false, yes, no, on, off)",
        )
    })
}

fn int_value<T>(key: &str, value: &str, min: T, max: T) -> Result<T, Error>
where
    T: FromStr + PartialOrd + fmt::Display,
{
    value
        .parse()
        .ok()
        .filter(|number| *number >= min && *number <= max)
        .ok_or_else(|| {
            Error::invalid_property_value(
                key,
                value,
                format!("expected an integer from {min} to {max}"),
            )
        })
}

fn rate_value(key: &str, value: &str, min: Option<f64>) -> Result<f64, Error> {
    let rate: f64 = value
        .parse()
        .ok()
        .filter(|rate: &f64| rate.is_finite())
        .ok_or_else(|| Error::invalid_property_value(key, value, "expected a number"))?;
    match min {
        Some(min) if rate < min => Err(Error::invalid_property_value(
            key,
            value,
            format!("expected a number of at least {min}"),
        )),
        _ => Ok(rate),
    }
}

fn size_value(key: &str, value: &str) -> Result<DiskSize, Error> {
    let size: DiskSize = value.parse()?;
    if size.is_relative() {
        return Err(Error::invalid_property_value(
            key,
            value,
            "expected an absolute size (no `+`)",
        ));
    }
    Ok(size)
}

/// `XX:XX:XX:XX:XX:XX` in hex digits of either case.
fn is_mac_address(text: &str) -> bool {
    let groups: Vec<&str> = text.split(':').collect();
    groups.len() == 6
        && groups
            .iter()
            .all(|group| group.len() == 2 && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether `key` can be printed as a property string key.
fn check_key(key: &str) -> bool {
    !key.is_empty() && !key.contains([',', '=']) && !key.starts_with('"')
}

/// `storage` of `storage:rest`, when the storage part looks like a Proxmox storage id.
fn storage_of(volume: &str) -> Option<&str> {
    let (storage, _) = volume.split_once(':')?;
    let bytes = storage.as_bytes();
    let valid = bytes.first().is_some_and(u8::is_ascii_alphabetic)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    valid.then_some(storage)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Parses `text`, checks that printing gives it back, and returns the value.
    fn check<T>(text: &str) -> T
    where
        T: FromStr<Err = Error> + fmt::Display,
    {
        let value: T = text.parse().unwrap();
        assert_eq!(value.to_string(), text);
        value
    }

    #[test]
    fn qemu_nics_from_real_configs() {
        let net: NetConfig = check("virtio=BC:24:11:2E:C4:5E,bridge=vmbr0,firewall=1");
        assert_eq!(net.model, "virtio");
        assert_eq!(net.macaddr.as_deref(), Some("BC:24:11:2E:C4:5E"));
        assert_eq!(net.bridge.as_deref(), Some("vmbr0"));
        assert_eq!(net.firewall, Some(true));

        let net: NetConfig = check(
            "e1000=BC:24:11:00:11:22,bridge=vmbr1,link_down=1,mtu=1,queues=4,rate=12.5,tag=20,trunks=10;20-30",
        );
        assert_eq!(net.model, "e1000");
        assert_eq!(net.link_down, Some(true));
        assert_eq!(net.mtu, Some(1));
        assert_eq!(net.queues, Some(4));
        assert_eq!(net.rate, Some(12.5));
        assert_eq!(net.tag, Some(20));
        assert_eq!(net.trunks.as_deref(), Some("10;20-30"));

        let net: NetConfig = check("virtio,bridge=vmbr0");
        assert_eq!(net.macaddr, None);
    }

    #[test]
    fn qemu_nic_spellings_are_normalised() {
        let net: NetConfig = "model=virtio,macaddr=BC:24:11:2E:C4:5E,firewall=yes,bridge=vmbr0"
            .parse()
            .unwrap();
        assert_eq!(
            net.to_string(),
            "virtio=BC:24:11:2E:C4:5E,bridge=vmbr0,firewall=1"
        );
        let mut built = NetConfig::new("virtio");
        built.macaddr = Some("BC:24:11:2E:C4:5E".into());
        built.bridge = Some("vmbr0".into());
        built.firewall = Some(true);
        assert_eq!(built, net);
    }

    #[test]
    fn qemu_nic_keeps_unknown_keys_in_sorted_position() {
        let net: NetConfig = check("virtio=BC:24:11:2E:C4:5E,bridge=vmbr0,future-flag=1,tag=5");
        assert_eq!(net.extra.get("future-flag").map(String::as_str), Some("1"));
    }

    #[test]
    fn qemu_nic_accepts_models_newer_than_the_list() {
        let net: NetConfig = check("virtio-next=BC:24:11:2E:C4:5E,bridge=vmbr0");
        assert_eq!(net.model, "virtio-next");
        assert!(net.extra.is_empty());
    }

    #[test]
    fn qemu_nic_rejects_bad_values() {
        let cases = [
            ("bridge=vmbr0", "lacks the required key `model`"),
            ("virtio,tag=0", "expected an integer from 1 to 4094"),
            ("virtio,tag=4095", "expected an integer from 1 to 4094"),
            ("virtio,mtu=65521", "expected an integer from 1 to 65520"),
            ("virtio,queues=65", "expected an integer from 0 to 64"),
            ("virtio,firewall=maybe", "expected a boolean"),
            ("virtio,rate=-1", "at least 0"),
            ("virtio,rate=inf", "expected a number"),
            ("virtio,rate=NaN", "expected a number"),
            (
                "virtio=BC:24:11:2E:C4:5E,e1000=BC:24:11:2E:C4:5F",
                "given twice",
            ),
            ("model=virtio,e1000=BC:24:11:2E:C4:5F", "given twice"),
        ];
        for (text, expected) in cases {
            let message = text.parse::<NetConfig>().unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn qemu_disks_from_real_configs() {
        let disk: DiskConfig = check("local-lvm:vm-100-disk-0,size=8G");
        assert_eq!(disk.file, "local-lvm:vm-100-disk-0");
        assert_eq!(disk.size, Some(DiskSize::gib(8)));

        let disk: DiskConfig =
            check("local-lvm:vm-100-disk-0,cache=writeback,discard=on,iothread=1,size=32G,ssd=1");
        assert_eq!(disk.cache.as_deref(), Some("writeback"));
        assert_eq!(disk.discard.as_deref(), Some("on"));
        assert_eq!(disk.iothread, Some(true));
        assert_eq!(disk.ssd, Some(true));

        let disk: DiskConfig =
            check("local:iso/debian-12.5.0-amd64-netinst.iso,media=cdrom,size=629M");
        assert!(disk.is_cdrom());
        assert_eq!(disk.storage(), Some("local"));

        let disk: DiskConfig = check("none,media=cdrom");
        assert_eq!(disk.storage(), None);

        let disk: DiskConfig =
            check("local-lvm:vm-100-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M");
        assert_eq!(disk.extra.get("efitype").map(String::as_str), Some("4m"));

        let disk: DiskConfig = check("local-lvm:vm-100-disk-2,size=4M,version=v2.0");
        assert_eq!(disk.extra.get("version").map(String::as_str), Some("v2.0"));

        let disk: DiskConfig = check(
            "ceph-pool:vm-100-disk-0,aio=io_uring,backup=0,format=raw,iops_rd=100,replicate=0,ro=1,shared=1,size=1536M,snapshot=1",
        );
        assert_eq!(disk.backup, Some(false));
        assert_eq!(disk.size, Some(DiskSize::mib(1536)));
        assert_eq!(disk.extra.get("iops_rd").map(String::as_str), Some("100"));

        let disk: DiskConfig = check("/dev/disk/by-id/ata-ST1000DM003-1CH162_Z1D5K3QX,backup=0");
        assert_eq!(disk.storage(), None);
    }

    #[test]
    fn qemu_disk_requests() {
        let disk: DiskConfig = check("local-lvm:8");
        assert_eq!(disk, DiskConfig::new_volume("local-lvm", 8));
        let mut import = DiskConfig::new_volume("local-lvm", 0);
        import.import_from = Some("local:import/disk.qcow2".into());
        assert_eq!(
            import.to_string(),
            "local-lvm:0,import-from=local:import/disk.qcow2"
        );
        assert_eq!(check::<DiskConfig>(&import.to_string()), import);
    }

    #[test]
    fn qemu_disk_aliases_and_errors() {
        let disk: DiskConfig = "volume=local-lvm:vm-100-disk-0,size=8G".parse().unwrap();
        assert_eq!(disk.to_string(), "local-lvm:vm-100-disk-0,size=8G");
        let cases = [
            ("size=8G", "lacks the required key `file`"),
            (
                "local-lvm:vm-100-disk-0,volume=local-lvm:vm-100-disk-1",
                "given twice",
            ),
            ("local-lvm:vm-100-disk-0,size=+1G", "absolute size"),
            (
                "local-lvm:vm-100-disk-0,size=8GB",
                "invalid disk size \"8GB\"",
            ),
            ("local-lvm:vm-100-disk-0,ssd=2", "expected a boolean"),
        ];
        for (text, expected) in cases {
            let message = text.parse::<DiskConfig>().unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn lxc_mount_points_from_real_configs() {
        let rootfs: MountPoint = check("local-lvm:vm-101-disk-0,size=8G");
        assert_eq!(rootfs.mp, None);
        let mount: MountPoint = check("local-lvm:vm-101-disk-1,mp=/mnt/data,backup=1,size=32G");
        assert_eq!(mount.mp.as_deref(), Some("/mnt/data"));
        assert_eq!(mount.backup, Some(true));
        assert_eq!(mount.storage(), Some("local-lvm"));
        let bind: MountPoint =
            check("/mnt/host/share,mp=/mnt/share,mountoptions=noatime;nodev,ro=1,shared=1");
        assert_eq!(bind.storage(), None);
        assert_eq!(bind.mountoptions.as_deref(), Some("noatime;nodev"));
        let mount: MountPoint = check(
            "local-zfs:subvol-101-disk-0,mp=/srv,acl=1,keepattrs=1,quota=0,replicate=0,size=0T",
        );
        assert_eq!(mount.extra.get("keepattrs").map(String::as_str), Some("1"));
        assert_eq!(mount.size, Some(DiskSize::from_bytes(0)));
        assert!("mp=/srv".parse::<MountPoint>().is_err());
    }

    #[test]
    fn lxc_nics_from_real_configs() {
        let net: LxcNetConfig = check(
            "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:5C:8E:43,ip=dhcp,ip6=auto,type=veth",
        );
        assert_eq!(net.interface_type.as_deref(), Some("veth"));
        let net: LxcNetConfig = check(
            "name=eth1,bridge=vmbr1,gw=192.168.1.1,gw6=fd00::1,ip=192.168.1.50/24,ip6=fd00::50/64,mtu=9000,rate=2.5,tag=42,type=veth",
        );
        assert_eq!(net.gw.as_deref(), Some("192.168.1.1"));
        assert_eq!(net.mtu, Some(9000));
        let net: LxcNetConfig = "bridge=vmbr0,name=eth0".parse().unwrap();
        assert_eq!(net.to_string(), "name=eth0,bridge=vmbr0");
        assert!("eth0,bridge=vmbr0".parse::<LxcNetConfig>().is_err());
        assert!("bridge=vmbr0".parse::<LxcNetConfig>().is_err());
        assert!("name=eth0,mtu=63".parse::<LxcNetConfig>().is_err());
    }

    #[test]
    fn typed_configs_serialise_as_strings() {
        let text = "virtio=BC:24:11:2E:C4:5E,bridge=vmbr0";
        let net: NetConfig = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(serde_json::to_string(&net).unwrap(), format!("\"{text}\""));
        let disk: DiskConfig = serde_json::from_str(r#""local-lvm:8""#).unwrap();
        assert_eq!(serde_json::to_string(&disk).unwrap(), r#""local-lvm:8""#);
        let error = serde_json::from_str::<DiskConfig>(r#""size=1G""#).unwrap_err();
        assert!(error.to_string().contains("required key `file`"), "{error}");
    }

    fn opt<T: std::fmt::Debug + Clone>(
        strategy: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Option<T>> {
        prop::option::of(strategy)
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-zA-Z0-9:/._;-]{0,12}", "[a-z ,=\"\\\\:]{0,8}"]
    }

    fn extra(reserved: &'static [&'static str]) -> impl Strategy<Value = BTreeMap<String, String>> {
        prop::collection::btree_map("x-[a-z_-]{1,8}|[a-z]{1,6}", text(), 0..3).prop_map(
            move |mut map| {
                map.retain(|key, _| {
                    !reserved.contains(&key.as_str()) && !QEMU_NIC_MODELS.contains(&key.as_str())
                });
                map
            },
        )
    }

    fn rate() -> impl Strategy<Value = f64> {
        (0u32..100_000).prop_map(|milli| f64::from(milli) / 1000.0)
    }

    fn mac() -> impl Strategy<Value = String> {
        "[0-9A-F]{2}(:[0-9A-F]{2}){5}"
    }

    fn any_net() -> impl Strategy<Value = NetConfig> {
        let model = prop_oneof![
            prop::sample::select(QEMU_NIC_MODELS).prop_map(str::to_owned),
            "[a-z][a-z0-9_-]{0,10}",
        ];
        (
            (
                model,
                opt(mac()),
                opt(text()),
                opt(any::<bool>()),
                opt(any::<bool>()),
            ),
            (
                opt(1u16..=65520),
                opt(0u8..=64),
                opt(rate()),
                opt(1u16..=4094),
                opt(text()),
            ),
            extra(&[
                "model",
                "macaddr",
                "bridge",
                "firewall",
                "link_down",
                "mtu",
                "queues",
                "rate",
                "tag",
                "trunks",
            ]),
        )
            .prop_map(
                |(
                    (model, macaddr, bridge, firewall, link_down),
                    (mtu, queues, rate, tag, trunks),
                    extra,
                )| NetConfig {
                    model,
                    macaddr,
                    bridge,
                    firewall,
                    link_down,
                    mtu,
                    queues,
                    rate,
                    tag,
                    trunks,
                    extra,
                },
            )
    }

    fn size() -> impl Strategy<Value = DiskSize> {
        any::<u64>().prop_map(DiskSize::from_bytes)
    }

    fn any_disk() -> impl Strategy<Value = DiskConfig> {
        (
            (
                text(),
                opt(text()),
                opt(any::<bool>()),
                opt(text()),
                opt(text()),
                opt(text()),
                opt(text()),
            ),
            (
                opt(any::<bool>()),
                opt(text()),
                opt(any::<bool>()),
                opt(any::<bool>()),
                opt(any::<bool>()),
            ),
            (opt(size()), opt(any::<bool>()), opt(any::<bool>())),
            extra(&[
                "file",
                "volume",
                "aio",
                "backup",
                "cache",
                "discard",
                "format",
                "import-from",
                "iothread",
                "media",
                "replicate",
                "ro",
                "shared",
                "size",
                "snapshot",
                "ssd",
            ]),
        )
            .prop_map(
                |(
                    (file, aio, backup, cache, discard, format, import_from),
                    (iothread, media, replicate, ro, shared),
                    (size, snapshot, ssd),
                    extra,
                )| DiskConfig {
                    file,
                    aio,
                    backup,
                    cache,
                    discard,
                    format,
                    import_from,
                    iothread,
                    media,
                    replicate,
                    ro,
                    shared,
                    size,
                    snapshot,
                    ssd,
                    extra,
                },
            )
    }

    fn any_mount_point() -> impl Strategy<Value = MountPoint> {
        (
            (
                text(),
                opt(text()),
                opt(any::<bool>()),
                opt(any::<bool>()),
                opt(text()),
            ),
            (
                opt(any::<bool>()),
                opt(any::<bool>()),
                opt(any::<bool>()),
                opt(any::<bool>()),
                opt(size()),
            ),
            extra(&[
                "volume",
                "mp",
                "acl",
                "backup",
                "mountoptions",
                "quota",
                "replicate",
                "ro",
                "shared",
                "size",
            ]),
        )
            .prop_map(
                |(
                    (volume, mp, acl, backup, mountoptions),
                    (quota, replicate, ro, shared, size),
                    extra,
                )| MountPoint {
                    volume,
                    mp,
                    acl,
                    backup,
                    mountoptions,
                    quota,
                    replicate,
                    ro,
                    shared,
                    size,
                    extra,
                },
            )
    }

    fn any_lxc_net() -> impl Strategy<Value = LxcNetConfig> {
        (
            (
                text(),
                opt(text()),
                opt(any::<bool>()),
                opt(text()),
                opt(text()),
                opt(mac()),
                opt(text()),
            ),
            (
                opt(text()),
                opt(any::<bool>()),
                opt(64u16..=65535),
                opt(rate()),
                opt(1u16..=4094),
                opt(text()),
                opt(text()),
            ),
            extra(&[
                "name",
                "bridge",
                "firewall",
                "gw",
                "gw6",
                "hwaddr",
                "ip",
                "ip6",
                "link_down",
                "mtu",
                "rate",
                "tag",
                "trunks",
                "type",
            ]),
        )
            .prop_map(
                |(
                    (name, bridge, firewall, gw, gw6, hwaddr, ip),
                    (ip6, link_down, mtu, rate, tag, trunks, interface_type),
                    extra,
                )| {
                    LxcNetConfig {
                        name,
                        bridge,
                        firewall,
                        gw,
                        gw6,
                        hwaddr,
                        ip,
                        ip6,
                        link_down,
                        mtu,
                        rate,
                        tag,
                        trunks,
                        interface_type,
                        extra,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn net_config_round_trips(net in any_net()) {
            let text = net.to_string();
            let parsed: NetConfig = text.parse().unwrap();
            prop_assert_eq!(&parsed, &net);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn disk_config_round_trips(disk in any_disk()) {
            let text = disk.to_string();
            let parsed: DiskConfig = text.parse().unwrap();
            prop_assert_eq!(&parsed, &disk);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn mount_point_round_trips(mount in any_mount_point()) {
            let text = mount.to_string();
            let parsed: MountPoint = text.parse().unwrap();
            prop_assert_eq!(&parsed, &mount);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn lxc_net_config_round_trips(net in any_lxc_net()) {
            let text = net.to_string();
            let parsed: LxcNetConfig = text.parse().unwrap();
            prop_assert_eq!(&parsed, &net);
            prop_assert_eq!(parsed.to_string(), text);
        }
    }
}
