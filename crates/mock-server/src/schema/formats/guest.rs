//! Verifiers of guest, node and scheduling values (pve-common, qemu-server, pve-container,
//! pve-manager): sizes, startup order, url-encoded text, CPU sets, hotplug features, physical
//! address bits, time zones, calendar events, PEM blobs, TFA secrets and command batches; and
//! the validators pve-storage, pve-guest-common and qemu-server attach to hash formats.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::Verifier;

/// The verifier sub registered under `name`, when it is one of these.
pub(super) fn verifier(name: &str) -> Option<Verifier> {
    Some(match name {
        "urlencoded" => |text| {
            if static_regex!(r"^[-%a-zA-Z0-9_.!~*'()]*$").is_match(text) {
                return Ok(());
            }
            Err(format!("invalid urlencoded string: {text}\n"))
        },
        "disk-size" => |size| {
            // `parse_size`.
            if static_regex!(r"^(\d+(\.\d+)?)([KMGT](?:iB)?)?$").is_match(size) {
                return Ok(());
            }
            Err(format!(
                "value does not look like a valid disk size: {size}\n"
            ))
        },
        "pve-startup-order" => startup_order,
        "pve-cpuset" => cpuset,
        "pve-hotplug-features" => hotplug_features,
        "pve-phys-bits" => phys_bits,
        "timezone" => timezone,
        "pve-ct-timezone" => |tz| if tz == "host" { Ok(()) } else { timezone(tz) },
        "pve-calendar-event" => calendar_event,
        "pem-certificate" => |pem| check_pem(pem, Some("CERTIFICATE"), false),
        "pem-certificate-chain" => |pem| check_pem(pem, Some("CERTIFICATE"), true),
        "pem-string" => |pem| check_pem(pem, None, false),
        "pve-tfa-secret" => tfa_secret,
        "pve-command-batch" => command_batch,
        _ => return None,
    })
}

/// `pve_parse_startup_order`: `[order=]N`, `up=N`, `down=N`, comma separated.
fn startup_order(value: &str) -> Result<(), String> {
    // `return undef if !$value`: Perl's truth.
    let valid = !value.is_empty()
        && value != "0"
        && value.split(',').all(|part| {
            part.trim().is_empty()
                || static_regex!(r"^(order=)?\d+$").is_match(part)
                || static_regex!(r"^(up|down)=\d+$").is_match(part)
        });
    if valid {
        return Ok(());
    }
    Err("unable to parse startup options\n".to_owned())
}

/// `PVE::CpuSet::parse_cpuset` through `pve_verify_cpuset`: `N` or `N-M` ranges.
fn cpuset(text: &str) -> Result<(), String> {
    let valid = text.split(',').all(|part| {
        static_regex!(r"^\s*(\d+)(?:-(\d+))?\s*$")
            .captures(part)
            .is_some_and(|c| {
                let from: u128 = c[1].parse().unwrap_or(u128::MAX);
                let to = c
                    .get(2)
                    .map_or(from, |to| to.as_str().parse().unwrap_or(u128::MAX));
                to >= from
            })
    });
    if valid && !text.is_empty() {
        return Ok(());
    }
    Err("unable to parse cpuset option\n".to_owned())
}

/// `parse_hotplug_features` via `pve_verify_hotplug_features`: `0`, `1`, or a list of
/// `network`, `disk`, `cpu`, `memory`, `usb`, `cloudinit`.
fn hotplug_features(data: &str) -> Result<(), String> {
    const FEATURES: &[&str] = &["network", "disk", "cpu", "memory", "usb", "cloudinit"];
    // `0` parses to an empty (false) hash: the verifier refuses it.
    let valid = data == "1"
        || (data != "0" && super::split_list(data).all(|feature| FEATURES.contains(&feature)));
    if valid && !data.is_empty() {
        return Ok(());
    }
    Err("unable to parse hotplug option\n".to_owned())
}

/// `parse_phys_bits` (qemu-server `CPUConfig.pm`).
fn phys_bits(text: &str) -> Result<(), String> {
    let valid = text == "host"
        || (static_regex!(r"^\d{1,2}$").is_match(text)
            && text
                .parse::<u32>()
                .is_ok_and(|bits| (8..=64).contains(&bits)));
    if valid {
        return Ok(());
    }
    Err("value must be an integer between 8 and 64 or 'host'\n".to_owned())
}

/// `pve_verify_timezone`: `UTC` or a zone of `/usr/share/zoneinfo/zone.tab`. Without that
/// file (Proxmox always has it) a zone is taken by its shape.
fn timezone(tz: &str) -> Result<(), String> {
    static ZONES: LazyLock<Option<BTreeSet<String>>> = LazyLock::new(|| {
        let text = std::fs::read_to_string("/usr/share/zoneinfo/zone.tab").ok()?;
        let zones = text
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| line.split('\t').nth(2))
            .map(str::to_owned)
            .collect();
        Some(zones)
    });
    let known = match &*ZONES {
        Some(zones) => zones.contains(tz),
        None => static_regex!(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)+$").is_match(tz),
    };
    if tz == "UTC" || known {
        return Ok(());
    }
    Err(format!("invalid time zone '{tz}'\n"))
}

/// `pve_verify_calendar_event`: systemd-style calendar events as proxmox-time parses them
/// (`daily`, `mon..fri 8:00`, `*-*-1 0:0`, `sat 2/15`, ...), checked by their grammar.
fn calendar_event(text: &str) -> Result<(), String> {
    let event = text.trim();
    if event.is_empty() {
        return Err(format!(
            "invalid calendar event '{text}' - unable to parse calendar event - event is empty\n\n"
        ));
    }
    const SPECIAL: &[&str] = &[
        "minutely",
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "annually",
        "quarterly",
        "semiannually",
        "semi-annually",
    ];
    if SPECIAL.contains(&event) || is_calendar_spec(event) {
        return Ok(());
    }
    Err(format!(
        "invalid calendar event '{text}' - unable to parse calendar event\n\n"
    ))
}

/// `[weekdays] [date] [time]`, at least one of them.
fn is_calendar_spec(event: &str) -> bool {
    static SPEC: LazyLock<regex::Regex> = LazyLock::new(|| {
        let day = r"(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*";
        let weekdays = format!(r"(?i:{day}(?:\.\.{day})?(?:,{day}(?:\.\.{day})?)*)");
        // A component: `*`, or numbers, ranges (`a..b`) and repetitions (`a/b`), comma separated.
        let item = r"(?:\*|\d+(?:\.\.\d+)?)(?:/\d+)?";
        let comp = format!(r"(?:{item}(?:,{item})*)");
        let date = format!(r"(?:{comp}-{comp}(?:-{comp})?)");
        let time = format!(r"(?:{comp}(?::{comp}){{0,2}})");
        let full = format!(r"^(?:{weekdays})?\s*(?:{date})?\s*(?:{time})?$");
        regex::Regex::new(&full).expect("static regex")
    });
    SPEC.is_match(event)
}

/// `PVE::Certificate::check_pem`: text before the first `-----BEGIN` is dropped, then one
/// PEM block (several for a chain) with the label `CERTIFICATE` (`pem-string`: any label)
/// must make up the rest.
fn check_pem(content: &str, label: Option<&str>, multiple: bool) -> Result<(), String> {
    fn pem_regex(label: &str, multiple: bool) -> regex::Regex {
        let header = format!(r"-----BEGIN {label}-----(?:\s|\n)*");
        let footer = format!(r"-----END {label}-----(?:\s|\n)*");
        let b64 = r"[0-9A-Za-z+/]";
        let block = format!(
            r"(?:{header}(?:(?:{b64})+\s*\n)*(?:{b64})*(?:=\s*\n=|={{0,2}})?\s*\n{footer})"
        );
        let body = if multiple {
            format!(r"(?:{block}\n+)*{block}")
        } else {
            block
        };
        regex::Regex::new(&format!(r"(?s)^{body}\n?$")).expect("static regex")
    }
    static CERTIFICATE: LazyLock<regex::Regex> = LazyLock::new(|| pem_regex("CERTIFICATE", false));
    static CHAIN: LazyLock<regex::Regex> = LazyLock::new(|| pem_regex("CERTIFICATE", true));
    static ANY: LazyLock<regex::Regex> = LazyLock::new(|| pem_regex(".*?", false));
    let regex = match (label, multiple) {
        (None, _) => &*ANY,
        (Some(_), false) => &*CERTIFICATE,
        (Some(_), true) => &*CHAIN,
    };
    // `strip_leading_text`.
    let start = content.find("-----BEGIN ").unwrap_or(0);
    if regex.is_match(&content[start..]) {
        return Ok(());
    }
    Err("not a valid PEM-formatted string.\n".to_owned())
}

/// `pve_verify_tfa_secret`.
fn tfa_secret(key: &str) -> Result<(), String> {
    let valid = static_regex!(r"^v2-0x[0-9a-fA-F]{16,128}$").is_match(key)
        || static_regex!(r"^v2-[A-Z2-7=]{16,128}$").is_match(key)
        || static_regex!(r"^(?:[A-Z2-7=]{16}|[A-Fa-f0-9]{40})$").is_match(key);
    if valid {
        return Ok(());
    }
    Err("unable to decode TFA secret\n".to_owned())
}

/// `verify_command_batch` (pve-manager `PVE/API2/Nodes.pm`): a JSON array of
/// `{"path": ..., "args": {...}}` items.
fn command_batch(value: &str) -> Result<(), String> {
    let commands: Value = serde_json::from_str(value)
        .map_err(|err| format!("commands param did not contain valid JSON: {err}\n"))?;
    let valid = commands.as_array().is_some_and(|items| {
        items.iter().all(|item| {
            item.as_object().is_some_and(|object| {
                object.get("path").is_some_and(Value::is_string)
                    && object.get("args").is_none_or(Value::is_object)
                    && object
                        .keys()
                        .all(|key| matches!(key.as_str(), "path" | "args"))
            })
        })
    });
    if valid {
        return Ok(());
    }
    Err("commands is not a valid array of commands: Parameter verification failed.\n".to_owned())
}

/// `validate_prune_backups` (pve-storage): `keep-all` may not come with a non-zero option.
pub(super) fn validate_prune_backups(options: &Map<String, Value>) -> Result<(), String> {
    let keep_all = options.get("keep-all").and_then(super::value_bool) == Some(true);
    let others = options
        .iter()
        .filter(|(key, _)| *key != "keep-all")
        .any(|(_, value)| value_number(value) > 0.0);
    if others && keep_all {
        return Err("keep-all cannot be set together with other options.\n".to_owned());
    }
    Ok(())
}

/// `verify_backup_fleecing` (pve-guest-common): `enabled` needs a `storage`.
pub(super) fn validate_backup_fleecing(options: &Map<String, Value>) -> Result<(), String> {
    let enabled = options.get("enabled").and_then(super::value_bool) == Some(true);
    let storage = options
        .get("storage")
        .and_then(Value::as_str)
        .is_some_and(|storage| !storage.is_empty() && storage != "0");
    if enabled && !storage {
        return Err("'storage' parameter is required when 'enabled' is set\n".to_owned());
    }
    Ok(())
}

/// CPU models qemu-server knows (`$cpu_vendor_list` and the built-in `x86-64-v*` models).
const CPU_MODELS: &[&str] = &[
    "486",
    "pentium",
    "pentium2",
    "pentium3",
    "coreduo",
    "core2duo",
    "Conroe",
    "Penryn",
    "Nehalem",
    "Nehalem-IBRS",
    "Westmere",
    "Westmere-IBRS",
    "SandyBridge",
    "SandyBridge-IBRS",
    "IvyBridge",
    "IvyBridge-IBRS",
    "Haswell",
    "Haswell-IBRS",
    "Haswell-noTSX",
    "Haswell-noTSX-IBRS",
    "Broadwell",
    "Broadwell-IBRS",
    "Broadwell-noTSX",
    "Broadwell-noTSX-IBRS",
    "Skylake-Client",
    "Skylake-Client-IBRS",
    "Skylake-Client-noTSX-IBRS",
    "Skylake-Client-v4",
    "Skylake-Server",
    "Skylake-Server-IBRS",
    "Skylake-Server-noTSX-IBRS",
    "Skylake-Server-v4",
    "Skylake-Server-v5",
    "Cascadelake-Server",
    "Cascadelake-Server-v2",
    "Cascadelake-Server-noTSX",
    "Cascadelake-Server-v4",
    "Cascadelake-Server-v5",
    "Cooperlake",
    "Cooperlake-v2",
    "KnightsMill",
    "Icelake-Client",
    "Icelake-Client-noTSX",
    "Icelake-Server",
    "Icelake-Server-noTSX",
    "Icelake-Server-v3",
    "Icelake-Server-v4",
    "Icelake-Server-v5",
    "Icelake-Server-v6",
    "Icelake-Server-v7",
    "SapphireRapids",
    "SapphireRapids-v2",
    "SapphireRapids-v3",
    "SapphireRapids-v4",
    "GraniteRapids",
    "GraniteRapids-v2",
    "GraniteRapids-v3",
    "SierraForest",
    "SierraForest-v2",
    "SierraForest-v3",
    "ClearwaterForest",
    "athlon",
    "phenom",
    "Opteron_G1",
    "Opteron_G2",
    "Opteron_G3",
    "Opteron_G4",
    "Opteron_G5",
    "EPYC",
    "EPYC-IBPB",
    "EPYC-v3",
    "EPYC-v4",
    "EPYC-v5",
    "EPYC-Rome",
    "EPYC-Rome-v2",
    "EPYC-Rome-v3",
    "EPYC-Rome-v4",
    "EPYC-Rome-v5",
    "EPYC-Milan",
    "EPYC-Milan-v2",
    "EPYC-Milan-v3",
    "EPYC-Genoa",
    "EPYC-Genoa-v2",
    "EPYC-Turin",
    "host",
    "kvm32",
    "kvm64",
    "qemu32",
    "qemu64",
    "max",
    "x86-64-v2",
    "x86-64-v2-AES",
    "x86-64-v3",
    "x86-64-v4",
];

/// VM-specific CPU flags (`$supported_vm_specific_cpu_flags_by_arch`), sorted.
pub(super) const CPU_FLAGS: &[&str] = &[
    "aes",
    "amd-no-ssb",
    "amd-ssbd",
    "hv-evmcs",
    "hv-tlbflush",
    "ibpb",
    "md-clear",
    "nested-virt",
    "pcid",
    "pdpe1gb",
    "spec-ctrl",
    "ssbd",
    "virt-ssbd",
];

/// `validate_vm_cpu_conf` (qemu-server `CPUConfig.pm`): a cputype (a known model, or a
/// `custom-` one, whose existence is live state and not checked), only VM-specific flags, no
/// `reported-model`.
pub(super) fn validate_vm_cpu_conf(cpu: &Map<String, Value>) -> Result<(), String> {
    let cputype = cpu
        .get("cputype")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if cputype.is_empty() || cputype == "0" {
        return Err("CPU is missing cputype\n".to_owned());
    }
    if !cputype.starts_with("custom-") && !CPU_MODELS.contains(&cputype) {
        return Err(format!(
            "Built-in cputype '{cputype}' is not defined (missing 'custom-' prefix?)\n"
        ));
    }
    if let Some(flags) = cpu
        .get("flags")
        .and_then(Value::as_str)
        .filter(|f| !f.is_empty())
    {
        let supported = flags.split(';').all(|flag| {
            flag.strip_prefix(['+', '-'])
                .is_some_and(|name| CPU_FLAGS.contains(&name))
        });
        if !supported {
            return Err(format!(
                "VM-specific CPU flags must be a subset of: {}\n",
                CPU_FLAGS.join(", ")
            ));
        }
    }
    if cpu.contains_key("reported-model") {
        return Err(
            "Property 'reported-model' not allowed in VM-specific CPU config.\n".to_owned(),
        );
    }
    Ok(())
}

fn value_number(value: &Value) -> f64 {
    match value {
        Value::Number(number) => number.as_f64().unwrap_or(0.0),
        Value::String(text) => text.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}
