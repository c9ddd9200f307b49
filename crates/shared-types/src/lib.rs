//! Proxmox VE API types: models generated from the official schema plus hand-written Proxmox types.
//!
//! The hand-written types cover the encodings the schema only names in prose:
//! task ids, `0`/`1` booleans, `key=value,…` property strings, disk sizes and
//! the indexed parameter families (`net[n]`) that generated models embed.
//! They depend on nothing but `serde`, `serde_json` and `thiserror`.
//!
//! # Layout
//!
//! * [`error`]: [`Error`], the one error type of the crate.
//! * [`upid`]: [`Upid`], the task id returned by every call that starts a worker.
//! * [`pve_bool`]: [`PveBool`], a boolean written as `0`/`1` and read from `true`, `"yes"`, `1`, ….
//! * [`property_string`]: [`PropertyString`], generic `key=value,…` strings with a default key and quoting.
//! * [`guest_config`]: hand-written typed property strings ([`NetConfig`], [`DiskConfig`], [`MountPoint`], [`LxcNetConfig`]) that the mock server edits config values with; the generated models use the generated structs instead (`nodes::QemuNetConfig`, `nodes::ScsiConfig`, `nodes::RootfsConfig`, ...), one per property-string format of the schema.
//! * [`disk_size`]: [`DiskSize`], sizes like `8G` or `+2G`.
//! * [`startup_order`]: [`StartupOrder`], a guest's `startup` option (`order=1,up=30`).
//! * [`family`]: [`Indexed`] and [`FamilyName`], the `net[n]`-style parameter families.
//! * [`de`]: what the generated `Deserialize` impls of the reply models call ([`de::FromMap`]).
//! * [`ser`]: what the generated `Serialize` impls of the models call.
//! * [`lenient`]: numbers read from JSON numbers or numeric strings, as Proxmox sends them.
//! * [`typed_format`]: what the generated property-string structs and string enums call.
//! * Generated models, one module per path group, listed at the end of this file.

pub mod de;
pub mod disk_size;
pub mod error;
pub mod family;
pub mod guest_config;
pub mod lenient;
pub mod property_string;
pub mod pve_bool;
pub mod ser;
pub mod startup_order;
pub mod typed_format;
pub mod upid;

pub use disk_size::DiskSize;
pub use error::Error;
pub use family::{FamilyName, Indexed};
pub use guest_config::{DiskConfig, LxcNetConfig, MountPoint, NetConfig};
pub use property_string::PropertyString;
pub use pve_bool::PveBool;
pub use startup_order::StartupOrder;
pub use typed_format::PropertyValue;
pub use upid::Upid;

// Generated models: the files below `generated/` are written by `cargo xtask codegen` and never
// edited by hand. Each path group is a module behind the cargo feature of the same name.
#[rustfmt::skip] // prettyplease output, checked by `cargo xtask codegen --check`
pub mod generated;
#[cfg(feature = "access")]
pub use generated::access;
#[cfg(feature = "cluster")]
pub use generated::cluster;
pub use generated::common;
pub use generated::families;
#[cfg(feature = "nodes")]
pub use generated::nodes;
#[cfg(feature = "pools")]
pub use generated::pools;
#[cfg(feature = "storage")]
pub use generated::storage;
#[cfg(feature = "version")]
pub use generated::version;
