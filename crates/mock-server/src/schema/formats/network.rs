//! Verifiers of network values: addresses, networks, netmasks, MACs, DNS names, e-mail
//! addresses, interfaces and VLANs (pve-common `JSONSchema.pm`, `ParseUtils.pm`), MAC prefixes
//! (pve-cluster), link-local addresses (pve-container), ID maps, the firewall's address, port,
//! protocol and ICMP specs (pve-firewall `Firewall.pm`) and SDN values (pve-network).
//!
//! IP addresses are matched with pve-common's own `$IPV4RE`/`$IPV6RE`, not a parser.

use std::sync::LazyLock;

use regex::Regex;

use super::Verifier;

/// The verifier sub registered under `name`, when it is one of these.
pub(super) fn verifier(name: &str) -> Option<Verifier> {
    Some(match name {
        "ipv4" => |v| ip_check(is_ipv4(v), "a valid IPv4 address"),
        "ipv6" => |v| ip_check(is_ipv6(v), "a valid IPv6 address"),
        "ip" => |v| ip_check(is_ip(v), "a valid IP address"),
        "CIDRv4" => |v| ip_check(is_cidr(v, false), "a valid IPv4 CIDR network"),
        "CIDRv6" => |v| ip_check(is_cidr(v, true), "a valid IPv6 CIDR network"),
        "CIDR" => |v| {
            ip_check(
                is_cidr(v, false) || is_cidr(v, true),
                "a valid CIDR network",
            )
        },
        // 9.2 (pve-network's Rust side, whose source is not in our mirror): a CIDR whose prefix
        // may be as short as `/0` (WireGuard's `allowed_ips`, prefix-list entries), unlike
        // pve-common's `CIDR` which wants at least `/8`. Message as for `CIDR`.
        "FullRangeCIDR" => |v| {
            ip_check(
                is_full_range_cidr(v, false) || is_full_range_cidr(v, true),
                "a valid CIDR network",
            )
        },
        // 9.2, source not reachable either: a network interface name, checked like `pve-iface`.
        "pve-sdn-fabric-wireguard-interface" => iface,
        "ipv4mask" => |v| ip_check(netmask_bits(v).is_some(), "a valid IP netmask"),
        "pve-ipv4-config" => |v| {
            let valid = matches!(v, "dhcp" | "manual") || is_cidr(v, false);
            ip_check(valid, "a valid ipv4 network configuration")
        },
        "pve-ipv6-config" => |v| {
            let valid = matches!(v, "auto" | "dhcp" | "manual") || is_cidr(v, true);
            ip_check(valid, "a valid ipv6 network configuration")
        },
        "email" => |v| ip_check(is_email(v), "a valid email address"),
        "email-or-username" => |v| {
            let valid = is_email(v) || static_regex!(EMAIL_USER).is_match(v);
            ip_check(valid, "a valid email address or user name")
        },
        "dns-name" => |v| ip_check(is_dns_name(v), "a valid DNS name"),
        "address" => address,
        "mac-addr" => |v| {
            let valid = static_regex!(r"(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$").is_match(v);
            ip_check(valid, "a valid unicast MAC address")
        },
        "mac-prefix" => mac_prefix,
        "pve-iface" => iface,
        "pve-vlan-id-or-range" => vlan_id_or_range,
        "ldap-simple-attr" => ldap_simple_attr,
        "lxc-ip-with-ll-iface" => ip_with_ll_iface,
        "storage-pair" => |v| id_pair(v, "pve-storage-id"),
        "bridge-pair" => |v| id_pair(v, "pve-bridge-id"),
        "IPorCIDR" => ip_or_cidr,
        "IPorCIDRorAlias" => ip_or_cidr_or_alias,
        "pve-fw-addr-spec" => firewall_address_list,
        "pve-fw-sport-spec" => |v| firewall_ports(v, false),
        "pve-fw-dport-spec" => |v| firewall_ports(v, true),
        "pve-fw-protocol-spec" => firewall_protocol,
        "pve-fw-icmp-type-spec" => firewall_icmp_type,
        "pve-fw-conntrack-helper" => firewall_conntrack_helpers,
        "pve-sdn-isis-net" => sdn_isis_net,
        "pve-sdn-bgp-rt" => sdn_bgp_route_target,
        _ => return None,
    })
}

const IPV4_OCTET: &str = "(?:25[0-5]|(?:2[0-4]|1[0-9]|[1-9])?[0-9])";
const EMAIL_USER: &str = r"^[\w+\-~]+(\.[\w+\-~]+)*$";

/// `$IPV4RE` and `$IPV6RE` of pve-common `ParseUtils.pm`, unanchored.
pub(super) static IPV4_RE: LazyLock<String> =
    LazyLock::new(|| format!(r"(?:(?:{IPV4_OCTET}\.){{3}}{IPV4_OCTET})"));
pub(super) static IPV6_RE: LazyLock<String> = LazyLock::new(|| {
    let h16 = "(?:[0-9a-fA-F]{1,4})";
    let ls32 = format!("(?:(?:{}|{h16}:{h16}))", *IPV4_RE);
    [
        format!("(?:(?:(?:{h16}:){{6}}){ls32})"),
        format!("(?:(?:::(?:{h16}:){{5}}){ls32})"),
        format!("(?:(?:(?:{h16})?::(?:{h16}:){{4}}){ls32})"),
        format!("(?:(?:(?:(?:{h16}:){{0,1}}{h16})?::(?:{h16}:){{3}}){ls32})"),
        format!("(?:(?:(?:(?:{h16}:){{0,2}}{h16})?::(?:{h16}:){{2}}){ls32})"),
        format!("(?:(?:(?:(?:{h16}:){{0,3}}{h16})?::(?:{h16}:){{1}}){ls32})"),
        format!("(?:(?:(?:(?:{h16}:){{0,4}}{h16})?::){ls32})"),
        format!("(?:(?:(?:(?:{h16}:){{0,5}}{h16})?::){h16})"),
        format!("(?:(?:(?:(?:{h16}:){{0,6}}{h16})?::))"),
    ]
    .join("|")
});

fn anchored(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$")).expect("static regex")
}

pub(super) fn is_ipv4(value: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| anchored(&IPV4_RE));
    RE.is_match(value)
}

pub(super) fn is_ipv6(value: &str) -> bool {
    static RE: LazyLock<Regex> = LazyLock::new(|| anchored(&format!("(?:{})", *IPV6_RE)));
    RE.is_match(value)
}

pub(super) fn is_ip(value: &str) -> bool {
    is_ipv4(value) || is_ipv6(value)
}

/// `pve_verify_cidrv4`/`pve_verify_cidrv6`: an address and a prefix length above 7.
pub(super) fn is_cidr(value: &str, v6: bool) -> bool {
    let Some((address, bits)) = value.rsplit_once('/') else {
        return false;
    };
    if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let bits: u128 = bits.parse().unwrap_or(u128::MAX);
    let (valid_address, max) = if v6 {
        (is_ipv6(address), 128)
    } else {
        (is_ipv4(address), 32)
    };
    valid_address && bits > 7 && bits <= max
}

/// A CIDR with any prefix length (`0.0.0.0/0`, `::/0`).
fn is_full_range_cidr(value: &str, v6: bool) -> bool {
    let Some((address, bits)) = value.rsplit_once('/') else {
        return false;
    };
    if bits.is_empty() || bits.len() > 3 || !bits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let bits: u32 = bits.parse().unwrap_or(u32::MAX);
    if v6 {
        is_ipv6(address) && bits <= 128
    } else {
        is_ipv4(address) && bits <= 32
    }
}

/// `pve_verify_dns_name`.
pub(super) fn is_dns_name(value: &str) -> bool {
    static_regex!(
        r"^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$"
    )
    .is_match(value)
}

/// `$EMAIL_RE`.
fn is_email(value: &str) -> bool {
    static_regex!(r"^[\w+\-~]+(\.[\w+\-~]+)*@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*$").is_match(value)
}

/// The many verifiers that die with "value does not look like <what>".
fn ip_check(valid: bool, what: &str) -> Result<(), String> {
    if valid {
        Ok(())
    } else {
        Err(format!("value does not look like {what}\n"))
    }
}

/// `get_netmask_bits`: a dotted netmask's prefix length.
fn netmask_bits(mask: &str) -> Option<u32> {
    if !is_ipv4(mask) {
        return None;
    }
    let bits: u32 = mask.parse::<std::net::Ipv4Addr>().ok()?.into();
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones)
}

/// `pve_verify_address`.
fn address(value: &str) -> Result<(), String> {
    if is_ip(value) || is_dns_name(value) {
        return Ok(());
    }
    Err(format!(
        "value does not look like a valid address: {value}\n"
    ))
}

/// `pve_verify_mac_prefix` (pve-cluster `DataCenterConfig.pm`).
fn mac_prefix(value: &str) -> Result<(), String> {
    if static_regex!(r"(?i)^[a-f0-9][02468ace](?::[a-f0-9]{2}){0,2}(?::[a-f0-9]?)?$")
        .is_match(value)
    {
        return Ok(());
    }
    Err("value is not a valid unicast MAC address prefix\n".to_owned())
}

/// `pve_verify_iface`.
fn iface(value: &str) -> Result<(), String> {
    if static_regex!(r"(?i)^[a-z][a-z0-9_]{1,20}([:\.]\d+)?$").is_match(value) {
        return Ok(());
    }
    Err(format!("invalid network interface name '{value}'\n"))
}

/// `pve_verify_vlan_id_or_range`: a tag from 2 to 4094, or a rising range of two.
fn vlan_id_or_range(vlan: &str) -> Result<(), String> {
    let Some(captures) = static_regex!(r"^(\d+)(?:-(\d+))?$").captures(vlan) else {
        return Err(format!("invalid VLAN configuration '{vlan}'\n"));
    };
    let tag = |text: &str| -> Result<u64, String> {
        match text.parse::<u64>() {
            Ok(tag) if (2..=4094).contains(&tag) => Ok(tag),
            _ => Err(format!("invalid VLAN tag '{text}'\n")),
        }
    };
    let start = tag(&captures[1])?;
    // `if ($end)`: an end of "0" counts as none.
    if let Some(end) = captures
        .get(2)
        .map(|m| m.as_str())
        .filter(|end| *end != "0")
        && start >= tag(end)?
    {
        return Err(format!(
            "VLAN range must go from lower to higher tag '{vlan}'\n"
        ));
    }
    Ok(())
}

/// `verify_ldap_simple_attr`.
fn ldap_simple_attr(attr: &str) -> Result<(), String> {
    if static_regex!(r"^[a-zA-Z0-9]+$").is_match(attr) {
        return Ok(());
    }
    Err(format!(
        "value '{attr}' does not look like a simple ldap attribute name\n"
    ))
}

/// `verify_ip_with_ll_iface` (pve-container): an IP, or a link-local IPv6 with `%<iface>`.
fn ip_with_ll_iface(value: &str) -> Result<(), String> {
    if let Some(captures) = static_regex!(r"^(fe80:[^%]+)%(.*)$").captures(value)
        && is_ip(&captures[1])
        && iface(&captures[2]).is_ok()
    {
        return Ok(());
    }
    ip_check(is_ip(value), "a valid IP address")
}

/// `$verify_idpair` with `parse_idmap` on one list entry: `1`, `<source>:<target>` or a
/// default target, each ID checked with `format`.
fn id_pair(entry: &str, format: &str) -> Result<(), String> {
    let check = |id: &str| super::check_format(format, id);
    let result = if entry == "1" {
        Ok(())
    } else if let Some(captures) = static_regex!(r"^([^:]+):([^:]+)$").captures(entry) {
        check(&captures[1]).and_then(|()| check(&captures[2]))
    } else {
        check(entry)
    };
    // `die "entry '$entry' contains invalid ID - $@\n"`, re-raised as `die "$@\n"`.
    result.map_err(|err| format!("entry '{entry}' contains invalid ID - {err}\n\n"))
}

/// `pve_verify_ip_or_cidr` (pve-firewall). The prefix length is left to `Net::IP`, whose
/// further checks are not reproduced.
fn ip_or_cidr(cidr: &str) -> Result<(), String> {
    static RE: LazyLock<Regex> =
        LazyLock::new(|| anchored(&format!(r"(?:{}|{})(?:/\d+)?", *IPV6_RE, *IPV4_RE)));
    if RE.is_match(cidr) {
        return Ok(());
    }
    Err("value does not look like a valid IP address or CIDR network\n".to_owned())
}

/// `pve_verify_ip_or_cidr_or_alias`.
fn ip_or_cidr_or_alias(cidr: &str) -> Result<(), String> {
    if static_regex!(r"^(dc/|guest/)?(?:[A-Za-z][A-Za-z0-9\-_]+)$").is_match(cidr) {
        return Ok(());
    }
    ip_or_cidr(cidr)
}

/// `parse_address_list`: an IP set (`+name`), an alias, or a list of addresses, networks or
/// one range of one IP version. `Net::IP`'s own parser is approximated by the pve-common
/// address patterns (address, address/prefix, address-address).
fn firewall_address_list(list: &str) -> Result<(), String> {
    if static_regex!(r"^(\+)(\S+)$").is_match(list) {
        if list.chars().count() > 65 {
            return Err("ipset name too long\n".to_owned());
        }
        return Ok(());
    }
    if static_regex!(r"^(dc/|guest/)?[A-Za-z][A-Za-z0-9\-_]+$").is_match(list) {
        if list.chars().count() > 64 {
            return Err("alias name too long\n".to_owned());
        }
        return Ok(());
    }
    let elements: Vec<&str> = perl_split_comma(list);
    if list != elements.join(",") {
        return Err("extraneous commas in list\n".to_owned());
    }
    let mut version = None;
    let mut range = false;
    for element in &elements {
        let Some(element_version) = net_ip_version(element) else {
            return Err(format!(
                "invalid IP address: Invalid IP address {element}\n"
            ));
        };
        range |= element.contains('-');
        if version.is_some_and(|known| known != element_version) {
            return Err(format!(
                "detected mixed ipv4/ipv6 addresses in address list '{list}'\n"
            ));
        }
        version = Some(element_version);
    }
    if range && elements.len() > 1 {
        return Err("you can't use a range in a list\n".to_owned());
    }
    Ok(())
}

/// Perl's `split(/,/, $str)`: trailing empty fields dropped.
fn perl_split_comma(text: &str) -> Vec<&str> {
    let mut fields: Vec<&str> = text.split(',').collect();
    while fields.last().is_some_and(|field| field.is_empty()) {
        fields.pop();
    }
    fields
}

/// The IP version of an address, network or range as `Net::IP->new` reads it.
fn net_ip_version(element: &str) -> Option<u8> {
    let version = |address: &str| {
        if is_ipv4(address) {
            Some(4)
        } else if is_ipv6(address) {
            Some(6)
        } else {
            None
        }
    };
    if let Some((from, to)) = element.split_once('-') {
        let from = version(from.trim())?;
        return (version(to.trim())? == from).then_some(from);
    }
    if let Some((address, bits)) = element.split_once('/') {
        let v = version(address)?;
        let max = if v == 4 { 32 } else { 128 };
        return bits.parse::<u32>().ok().filter(|b| *b <= max).map(|_| v);
    }
    version(element)
}

/// ICMP type names (`$icmp_type_names` and `$icmpv6_type_names` of pve-firewall).
const ICMP_TYPES: &[&str] = &[
    "any",
    "echo-reply",
    "destination-unreachable",
    "network-unreachable",
    "host-unreachable",
    "protocol-unreachable",
    "port-unreachable",
    "fragmentation-needed",
    "source-route-failed",
    "network-unknown",
    "host-unknown",
    "network-prohibited",
    "host-prohibited",
    "TOS-network-unreachable",
    "TOS-host-unreachable",
    "communication-prohibited",
    "host-precedence-violation",
    "precedence-cutoff",
    "source-quench",
    "redirect",
    "network-redirect",
    "host-redirect",
    "TOS-network-redirect",
    "TOS-host-redirect",
    "echo-request",
    "router-advertisement",
    "router-solicitation",
    "time-exceeded",
    "ttl-zero-during-transit",
    "ttl-zero-during-reassembly",
    "parameter-problem",
    "ip-header-bad",
    "required-option-missing",
    "timestamp-request",
    "timestamp-reply",
    "address-mask-request",
    "address-mask-reply",
    "no-route",
    "beyond-scope",
    "address-unreachable",
    "failed-policy",
    "reject-route",
    "packet-too-big",
    "bad-header",
    "unknown-header-type",
    "unknown-option",
    "neighbor-solicitation",
    "neighbour-solicitation",
    "neighbor-advertisement",
    "neighbour-advertisement",
];

/// A service or protocol name as `/etc/services` and `/etc/protocols` spell them. The host's
/// files are not read (they differ between machines), so any such name is taken.
fn is_service_name(name: &str) -> bool {
    static_regex!(r"^[A-Za-z][A-Za-z0-9+_.\-]*$").is_match(name)
}

/// `parse_port_name_number_or_range`: ports, `from:to` ranges or service names, at most 15
/// numbers; for `dport` also ICMP type names, which may not be mixed with ports.
fn firewall_ports(ports: &str, dport: bool) -> Result<(), String> {
    let elements = perl_split_comma(ports);
    if ports != elements.join(",") {
        return Err("extraneous commas in list\n".to_owned());
    }
    let port = |text: &str| -> Result<u64, String> {
        match text.parse::<u64>() {
            Ok(port) if port <= 65535 => Ok(port),
            _ => Err(format!("invalid port '{text}'\n")),
        }
    };
    let (mut count, mut icmp) = (0, false);
    for item in elements {
        if let Some(captures) = static_regex!(r"^([0-9]+):([0-9]+)$").captures(item) {
            count += 2;
            let (from, to) = (port(&captures[1])?, port(&captures[2])?);
            if from > to {
                let (a, b) = (&captures[1], &captures[2]);
                return Err(format!(
                    "backwards range '{a}:{b}' not allowed, did you mean '{b}:{a}'?\n"
                ));
            }
        } else if static_regex!(r"^[0-9]+$").is_match(item) {
            count += 1;
            port(item)?;
        } else if dport && ICMP_TYPES.contains(&item) {
            icmp = true;
        } else if !is_service_name(item) {
            return Err(format!("invalid port '{item}'\n"));
        }
    }
    if icmp && count > 0 {
        return Err("ICMP ports not allowed in port range\n".to_owned());
    }
    if count > 15 {
        return Err("too many entries in port list (> 15 numbers)\n".to_owned());
    }
    Ok(())
}

/// `pve_fw_verify_protocol_spec`: a protocol name or number (`/etc/protocols`; numbers 0 to
/// 255, names by their shape, see [`is_service_name`]).
fn firewall_protocol(proto: &str) -> Result<(), String> {
    let known =
        proto.parse::<u8>().is_ok_and(|_| !proto.starts_with('+')) || is_service_name(proto);
    // `if $proto && ...`: Perl's truth, so "" and "0" pass.
    if proto.is_empty() || proto == "0" || known {
        return Ok(());
    }
    Err(format!("unknown protocol '{proto}'\n"))
}

/// `pve_fw_verify_icmp_type_spec`.
fn firewall_icmp_type(icmp_type: &str) -> Result<(), String> {
    if icmp_type.is_empty() || ICMP_TYPES.contains(&icmp_type) {
        return Ok(());
    }
    Err(format!("invalid icmp-type value '{icmp_type}'\n"))
}

/// `pve_fw_verify_conntrack_helper`. Its `die` has no trailing newline, so Perl appends the
/// source position; the mock ends the message there.
fn firewall_conntrack_helpers(list: &str) -> Result<(), String> {
    const HELPERS: &[&str] = &[
        "amanda",
        "ftp",
        "irc",
        "netbios-ns",
        "pptp",
        "sane",
        "sip",
        "snmp",
        "tftp",
    ];
    let helpers = perl_split_comma(list);
    if list != helpers.join(",") {
        return Err("extraneous commas in list\n".to_owned());
    }
    match helpers.iter().find(|helper| !HELPERS.contains(helper)) {
        Some(helper) => Err(format!("unknown helper {helper}")),
        None => Ok(()),
    }
}

/// `pve_verify_sdn_isis_net` (pve-network `Controllers/IsisPlugin.pm`).
fn sdn_isis_net(net: &str) -> Result<(), String> {
    if static_regex!(r"^[a-fA-F0-9]{2}(\.[a-fA-F0-9]{4}){3,9}\.[a-fA-F0-9]{2}$").is_match(net) {
        return Ok(());
    }
    Err("value does not look like a valid isis net\n".to_owned())
}

/// `pve_verify_sdn_bgp_rt` (pve-network `Zones/EvpnPlugin.pm`): `<asn>:<id>`, both 32 bit.
fn sdn_bgp_route_target(rt: &str) -> Result<(), String> {
    let valid = static_regex!(r"^(\d+):(\d+)$")
        .captures(rt)
        .is_some_and(|c| c[1].parse::<u32>().is_ok() && c[2].parse::<u32>().is_ok());
    if valid {
        return Ok(());
    }
    Err("value does not look like a valid bgp route-target\n".to_owned())
}
