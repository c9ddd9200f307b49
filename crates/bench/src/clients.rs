//! The names of `bench sdk`'s clients and scenarios.
//!
//! They are the `client` and `scenario` keys of the rows in `results.json`, and the SDK benchmark,
//! the tables and the target checks all look rows up by them, so they live in this leaf module
//! that the others import.

/// Our SDK through the typed layer.
pub const OURS_TYPED: &str = "proxmox-sdk (Rust, typed)";
/// Our SDK through the dynamic API.
pub const OURS_DYNAMIC: &str = "proxmox-sdk (Rust, dynamic)";
/// reqwest alone.
pub const RAW_REQWEST: &str = "raw reqwest (same settings)";
/// proxmoxer with requests.
pub const PROXMOXER: &str = "proxmoxer 2.3.0 (requests)";
/// proxmox-sdk's Python SDK.
pub const PYTHON_SDK: &str = "proxmox-sdk 0.0.15 (Python, aiohttp)";

/// The SDK scenarios, in order.
pub const SDK_SCENARIOS: &[&str] = &["sequential GETs", "concurrent GETs", "creates + task waits"];
