//! Scalar values of the generator: integers, numbers and strings chosen by field name, then by
//! named format, within the schema's minimum/maximum, length and (when one of a few candidates
//! fits) pattern. Every value derives from the `rng` the caller seeded from path and field.

use route_metadata::Schema;
use serde_json::{Value, json};

use super::context::{GenContext, mix, seed};
use super::formats::check_format;
use crate::api::Api;

fn clamp_int(schema: &Schema, value: i64) -> i64 {
    let mut value = value;
    if let Some(max) = schema.maximum
        && (value as f64) > max
    {
        value = max.floor() as i64;
    }
    if let Some(min) = schema.minimum
        && (value as f64) < min
    {
        value = min.ceil() as i64;
    }
    value
}

const GIB: i64 = 1024 * 1024 * 1024;

/// An integer for a field (`vmid` from the path, sizes in GiB, times in 2025, ...).
pub(super) fn integer(schema: &Schema, ctx: &GenContext<'_>, field: &str, rng: u64) -> i64 {
    let r = (rng >> 8) as i64;
    let value = match field {
        "vmid" => ctx
            .param("vmid")
            .and_then(|v| v.parse().ok())
            .unwrap_or(100 + r % 900),
        "uptime" => 3600 + r % (30 * 86_400),
        "mem" | "memory" | "used" | "swap" | "memhost" => GIB + r % (8 * GIB),
        "maxmem" | "maxswap" => 8 * GIB + (r % 4) * 8 * GIB,
        "disk" | "diskread" | "diskwrite" | "netin" | "netout" => r % (64 * GIB),
        "maxdisk" | "total" | "size" => 32 * GIB * (1 + r % 8),
        "avail" | "free" | "available" => 16 * GIB + r % (64 * GIB),
        "cpus" | "maxcpu" => cpu_count(rng),
        "cores" => 1 + r % 16,
        "sockets" => 1 + r % 2,
        "pid" => 1000 + r % 60_000,
        "pstart" => 100_000 + r % 9_000_000,
        "starttime" | "ctime" | "mtime" | "time" | "endtime" => 1_735_689_600 + r % 31_536_000,
        "nodeid" => 1 + r % 4,
        "port" => 1024 + r % 60_000,
        "n" => 1 + r % 100,
        "priority" => r % 10,
        _ => match (schema.minimum, schema.maximum) {
            (Some(min), Some(max)) if max >= min => {
                min as i64 + r % ((max - min) as i64).clamp(1, 1000)
            }
            (Some(min), None) => min as i64 + r % 100,
            _ => r % 100,
        },
    };
    clamp_int(schema, value)
}

/// The integer the generator gives `field` of the object at `path` when the schema sets no
/// bounds, so that a view computed by hand (a node's status) agrees with generated lists
/// (`/nodes`).
pub(crate) fn integer_at(path: &str, field: &str) -> i64 {
    let ctx = GenContext {
        path,
        params: &[],
        children: &[],
        release: "",
        nodes: &[],
        minimal: false,
    };
    integer(&Schema::default(), &ctx, field, seed(&[path, field]))
}

/// The number the generator gives `field` of the object at `path` (see [`integer_at`]).
pub(crate) fn number_at(path: &str, field: &str) -> f64 {
    number(&Schema::default(), field, seed(&[path, field]))
        .as_f64()
        .unwrap_or(0.0)
}

/// A number for a field (`cpu` as a load fraction, ...).
pub(super) fn number(schema: &Schema, field: &str, rng: u64) -> Value {
    let fraction = (rng % 10_000) as f64 / 10_000.0;
    if matches!(field, "cpus" | "maxcpu") {
        // Proxmox counts CPUs in whole numbers even where the schema says `number`.
        return json!(clamp_int(schema, cpu_count(rng)));
    }
    let mut value = match field {
        "cpu" | "wait" => (fraction * 0.5 * 1000.0).round() / 1000.0,
        "idle" => 0.0,
        _ => (fraction * 100.0 * 100.0).round() / 100.0,
    };
    if let Some(max) = schema.maximum
        && value > max
    {
        value = max;
    }
    if let Some(min) = schema.minimum
        && value < min
    {
        value = min;
    }
    serde_json::Number::from_f64(value).map_or(json!(0), Value::Number)
}

/// A CPU count (`cpus`, `maxcpu`) as nodes and guests have them; the same for a path and field
/// whether the schema asks for an integer or a number.
fn cpu_count(rng: u64) -> i64 {
    const COUNTS: [i64; 8] = [2, 4, 4, 8, 8, 12, 16, 32];
    COUNTS[((rng >> 8) % COUNTS.len() as u64) as usize]
}

const WORDS: &[&str] = &[
    "alpha", "bravo", "delta", "echo", "falcon", "granite", "harbor", "indigo",
];

/// A unicast MAC address with Proxmox's `BC:24:11` prefix.
fn mac(rng: u64) -> String {
    format!(
        "BC:24:11:{:02X}:{:02X}:{:02X}",
        (rng >> 16) & 0xff,
        (rng >> 24) & 0xff,
        (rng >> 32) & 0xff
    )
}

/// A string for a field: the first candidate that fits the schema (by named format, by field
/// name, the schema's default, then a few plain words), else the first candidate cut to the
/// schema's `maxLength`.
pub(super) fn string(
    api: &Api,
    schema: &Schema,
    ctx: &GenContext<'_>,
    field: &str,
    rng: u64,
) -> String {
    let node = ctx
        .param("node")
        .map(str::to_owned)
        .or_else(|| ctx.nodes.first().cloned())
        .unwrap_or_else(|| "pve1".to_owned());
    let word = WORDS[(rng % WORDS.len() as u64) as usize];
    let candidates = string_by_format(schema, ctx, &node, word, rng)
        .into_iter()
        .chain(string_by_field(ctx, field, &node, word, rng))
        .chain(
            schema
                .default
                .as_ref()
                .and_then(|d| d.as_str().map(str::to_owned)),
        )
        .chain([
            word.to_owned(),
            format!("{word}1"),
            "1".to_owned(),
            "a".to_owned(),
        ]);
    first_fitting(api, schema, candidates)
}

/// A string for the schema's named format (`-list` and `-opt` variants read as their base).
fn string_by_format(
    schema: &Schema,
    ctx: &GenContext<'_>,
    node: &str,
    word: &str,
    rng: u64,
) -> Option<String> {
    let format = schema.format.as_deref()?;
    let base_format = format
        .strip_suffix("-list")
        .or_else(|| format.strip_suffix("-opt"))
        .unwrap_or(format);
    Some(match base_format {
        "pve-node" => node.to_owned(),
        "pve-vmid" => ctx.param("vmid").unwrap_or("100").to_owned(),
        "pve-storage-id" => ctx.param("storage").unwrap_or("local").to_owned(),
        "mac-addr" => mac(rng),
        "ipv4" | "ip" | "address" => format!("192.168.1.{}", 10 + rng % 200),
        "ipv6" => format!("fd00::{:x}", 1 + rng % 0xfff),
        "CIDRv4" | "CIDR" => format!("192.168.{}.0/24", rng % 250),
        "CIDRv6" => "fd00::/64".to_owned(),
        "dns-name" => format!("{word}.example.com"),
        "pve-configid" => format!("{word}{}", rng % 10),
        "pve-userid" => "root@pam".to_owned(),
        "email" | "email-opt" => format!("{word}@example.com"),
        "disk-size" => format!("{}G", 8 * (1 + rng % 8)),
        "pve-iface" => "vmbr0".to_owned(),
        "pve-tag-list" => word.to_owned(),
        _ => return None,
    })
}

/// A string for a well-known field name (`node`, `name`, `digest`, `release`, fingerprints, ...).
fn string_by_field(
    ctx: &GenContext<'_>,
    field: &str,
    node: &str,
    word: &str,
    rng: u64,
) -> Option<String> {
    Some(match field {
        "node" => node.to_owned(),
        "name" => match ctx.param("vmid") {
            Some(vmid) => format!("vm{vmid}"),
            None => ctx
                .param("node")
                .map_or_else(|| word.to_owned(), str::to_owned),
        },
        "storage" => ctx.param("storage").unwrap_or("local").to_owned(),
        "digest" => format!("{:016x}{:016x}{:08x}", rng, mix(rng), rng >> 32),
        "release" => ctx.release.split('.').take(2).collect::<Vec<_>>().join("."),
        "pveversion" => pve_version(ctx.release, rng),
        "kversion" => kernel_version(ctx.release),
        "loadavg" => load_average(rng),
        "sysname" => "Linux".to_owned(),
        "machine" => "x86_64".to_owned(),
        "version" => ctx.release.to_owned(),
        "repoid" => format!("{:08x}", rng >> 32),
        "type" => "qemu".to_owned(),
        "status" => "running".to_owned(),
        "exitstatus" => "OK".to_owned(),
        "user" | "userid" => "root@pam".to_owned(),
        "mac" | "macaddr" | "hwaddr" => mac(rng),
        "ip" | "address" => format!("192.168.1.{}", 10 + rng % 200),
        "content" => "images,rootdir".to_owned(),
        "iface" => "vmbr0".to_owned(),
        "comment" | "description" => String::new(),
        "url" => "https://acme-v02.api.letsencrypt.org/directory".to_owned(),
        "vmid" => ctx.param("vmid").unwrap_or("100").to_owned(),
        _ if field.ends_with("fp") || field.contains("fingerprint") => (0..32)
            .map(|i| format!("{:02X}", (mix(rng.wrapping_add(i)) & 0xff) as u8))
            .collect::<Vec<_>>()
            .join(":"),
        "level" => String::new(),
        "id" => {
            let mut segments = ctx.path.rsplit('/').take(2).collect::<Vec<_>>();
            segments.reverse();
            segments.join("/")
        }
        _ => return None,
    })
}

/// `pveversion` as `pvesh get /nodes/{node}/status` shows it:
/// `pve-manager/<release>/<16 hex digits of the git commit>`.
pub(crate) fn pve_version(release: &str, rng: u64) -> String {
    format!("pve-manager/{release}/{:016x}", mix(rng))
}

/// The kernel a node of this Proxmox release runs, as `uname -r` prints it.
pub(crate) fn kernel_release(release: &str) -> &'static str {
    let major_minor: Vec<&str> = release.split('.').take(2).collect();
    match major_minor.as_slice() {
        ["9", "0"] => "6.14.11-4-pve",
        ["9", _] => "6.17.2-1-pve",
        ["8", _] => "6.8.12-9-pve",
        _ => "6.17.2-1-pve",
    }
}

/// The kernel's build string (`uname -v`).
pub(crate) fn kernel_build(release: &str) -> String {
    let kernel = kernel_release(release);
    let package = kernel.trim_end_matches("-pve");
    format!("#1 SMP PREEMPT_DYNAMIC PMX {package} (2025-10-21T11:55Z)")
}

/// `kversion` of a node's status: `uname -srv` and the machine, as Proxmox joins them.
pub(crate) fn kernel_version(release: &str) -> String {
    format!(
        "Linux {} {} x86_64",
        kernel_release(release),
        kernel_build(release)
    )
}

/// One load average as Proxmox sends it: a string with two decimals (`"0.12"`).
pub(crate) fn load_average(rng: u64) -> String {
    format!("{:.2}", (rng % 150) as f64 / 100.0)
}

/// The first candidate that fits the schema, else the first one cut to `maxLength`.
fn first_fitting(api: &Api, schema: &Schema, candidates: impl Iterator<Item = String>) -> String {
    let mut fallback = None;
    for candidate in candidates {
        if fits(api, schema, &candidate) {
            return candidate;
        }
        fallback.get_or_insert(candidate);
    }
    let text = fallback.unwrap_or_default();
    match schema.max_length {
        Some(max) => text.chars().take(max as usize).collect(),
        None => text,
    }
}

/// Whether a string meets the schema's length, pattern and format.
fn fits(api: &Api, schema: &Schema, text: &str) -> bool {
    let length = text.chars().count() as u64;
    if schema.max_length.is_some_and(|max| length > max)
        || schema.min_length.is_some_and(|min| length < min)
    {
        return false;
    }
    if let Some(pattern) = &schema.pattern
        && let Some(regex) = api.pattern(pattern)
        && !regex.is_match(text)
    {
        return false;
    }
    if let Some(format) = &schema.format
        && check_format(format, text).is_err()
    {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_strings_look_real() {
        let version = pve_version("9.1.3", 7);
        let parts: Vec<&str> = version.split('/').collect();
        assert_eq!(parts[..2], ["pve-manager", "9.1.3"], "{version}");
        assert!(
            parts[2].len() == 16 && parts[2].bytes().all(|b| b.is_ascii_hexdigit()),
            "{version}"
        );
        assert_eq!(kernel_release("8.4.0"), "6.8.12-9-pve");
        assert!(kernel_version("9.1.3").starts_with("Linux 6.17.2-1-pve #1 SMP"));
        for index in 0..20u64 {
            let load = load_average(mix(index));
            assert!(
                load.parse::<f64>().is_ok_and(|l| (0.0..1.5).contains(&l)),
                "{load}"
            );
            assert_eq!(load.split('.').nth(1).map(str::len), Some(2), "{load}");
        }
    }

    #[test]
    fn macs_are_unicast() {
        for index in 0..50u64 {
            assert!(check_format("mac-addr", &mac(mix(index))).is_ok());
        }
    }
}
