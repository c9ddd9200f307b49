//! Verifiers of IDs and names: pve-common (`pve-vmid`, `pve-node`, `pve-configid`,
//! `pve-storage-id`, `pve-tag`, ...), pve-access-control (users, tokens, realms, groups, roles,
//! pools, privileges), pve-network (SDN object IDs), pve-ha-manager, pve-guest-common
//! (replication jobs) and pve-manager (ACME domains, graphite paths).

use super::Verifier;

/// The verifier sub registered under `name`, when it is one of these.
pub(super) fn verifier(name: &str) -> Option<Verifier> {
    Some(match name {
        "string" => |_| Ok(()),
        "pve-vmid" => vmid,
        "pve-node" => node,
        "pve-configid" => configid,
        "pve-storage-id" => |id| parse_id(id, "storage"),
        "acme-plugin-id" => |id| parse_id(id, "ACME plugin"),
        "pve-bridge-id" => bridge_id,
        "pve-tag" => tag,
        "pve-userid" => userid,
        "pve-tokenid" => tokenid,
        "pve-realm" => realm,
        "pve-groupid" => groupid,
        "pve-roleid" => roleid,
        "pve-poolid" => poolid,
        "pve-priv" => privilege,
        "pve-replication-job-id" => replication_job_id,
        "pve-ha-resource-id" => ha_resource_id,
        "pve-ha-resource-or-vm-id" => ha_resource_or_vm_id,
        "pve-ha-node" => |node| ha_node(node, "ha node"),
        "pve-ha-group-node" => |node| ha_node(node, "ha group node"),
        "pve-sdn-zone-id" => |id| sdn_id(id, "zone", Some(8)),
        "pve-sdn-vnet-id" => |id| sdn_id(id, "vnet", Some(8)),
        "pve-sdn-controller-id" => sdn_controller_id,
        "pve-sdn-dns-id" => |id| sdn_id(id, "dns", None),
        "pve-sdn-ipam-id" => |id| sdn_id(id, "ipam", None),
        "pve-sdn-subnet-id" => sdn_subnet_id,
        "pve-sdn-fabric-id" => sdn_fabric_id,
        // 9.2's prefix lists and route maps: registered by pve-network's Rust side, whose source
        // is not in our mirror; checked like `pve-configid` (docs/mock.md).
        "pve-sdn-prefix-list-id" => |id| sdn_named_id(id, "prefix list"),
        "pve-sdn-route-map-id" => |id| sdn_named_id(id, "route map"),
        "pve-acme-domain" => acme_domain,
        "pve-acme-alias" => acme_alias,
        "graphite-path" => graphite_path,
        "pve-task-status-type" => task_status_type,
        "pve-day-of-week" => day_of_week,
        _ => return None,
    })
}

/// `pve_verify_node_name`'s pattern.
pub(crate) fn is_node_name(value: &str) -> bool {
    static_regex!(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$").is_match(value)
}

fn check(valid: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if valid { Ok(()) } else { Err(message()) }
}

/// `pve_verify_vmid`.
fn vmid(value: &str) -> Result<(), String> {
    check(static_regex!(r"^[1-9][0-9]{2,8}$").is_match(value), || {
        "value does not look like a valid VM ID\n".to_owned()
    })
}

/// `pve_verify_node_name`.
fn node(value: &str) -> Result<(), String> {
    check(is_node_name(value), || {
        "value does not look like a valid node name\n".to_owned()
    })
}

/// `pve_verify_configid` (`$CONFIGID_RE`).
fn configid(value: &str) -> Result<(), String> {
    check(
        static_regex!(r"(?i)^[a-z][a-z0-9_-]+$").is_match(value),
        || format!("invalid configuration ID '{value}'\n"),
    )
}

/// `PVE::JSONSchema::parse_id`.
fn parse_id(id: &str, kind: &str) -> Result<(), String> {
    if id.chars().count() < 2 {
        return Err(format!(
            "{kind} ID '{id}' cannot be shorter than 2 characters\n"
        ));
    }
    check(
        static_regex!(r"(?i)^[a-z][a-z0-9\-_.]*[a-z0-9]$").is_match(id),
        || format!("{kind} ID '{id}' contains illegal characters\n"),
    )
}

/// `parse_bridge_id`.
fn bridge_id(value: &str) -> Result<(), String> {
    check(static_regex!(r"^[-_.\w\d]+$").is_match(value), || {
        format!("invalid bridge ID '{value}'\n")
    })
}

/// `pve_verify_tag` (`$PVE_TAG_RE`).
fn tag(value: &str) -> Result<(), String> {
    check(
        static_regex!(r"(?i)^[a-z0-9_][a-z0-9_\-+.]*$").is_match(value),
        || "invalid characters in tag\n".to_owned(),
    )
}

/// `verify_username` (pve-access-control `src/PVE/Auth/Plugin.pm`): 3 to 64 characters,
/// `<user>@<realm>` where the user part has no white space, `:` or `/`.
fn userid(value: &str) -> Result<(), String> {
    let len = value.chars().count();
    if len < 3 {
        return Err(format!("user name '{value}' is too short\n"));
    }
    if len > 64 {
        return Err(format!("user name '{value}' is too long ({len} > 64)\n"));
    }
    check(looks_like_userid(value), || {
        format!("value '{value}' does not look like a valid user name\n")
    })
}

/// `^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$` by hand (the regex's compilation was a tenth of the
/// mock's first login): the realm cannot contain `@`, so it follows the last one; `\s` is
/// Unicode's `White_Space`, which [`char::is_whitespace`] tests.
fn looks_like_userid(value: &str) -> bool {
    let Some((user, realm)) = value.rsplit_once('@') else {
        return false;
    };
    let mut realm_chars = realm.bytes();
    !user.is_empty()
        && !user.contains(|c: char| c.is_whitespace() || c == ':' || c == '/')
        && realm.len() >= 2
        && realm_chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        && realm_chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// `pve_verify_tokenid` (`$token_full_regex`).
fn tokenid(value: &str) -> Result<(), String> {
    check(
        static_regex!(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$")
            .is_match(value),
        || format!("value '{value}' does not look like a valid token ID\n"),
    )
}

/// `pve_verify_realm`.
fn realm(value: &str) -> Result<(), String> {
    check(
        static_regex!(r"^[A-Za-z][A-Za-z0-9.\-_]+$").is_match(value),
        || "value does not look like a valid realm\n".to_owned(),
    )
}

/// `verify_groupname`.
fn groupid(value: &str) -> Result<(), String> {
    check(static_regex!(r"^[A-Za-z0-9.\-_]+$").is_match(value), || {
        format!("group name '{value}' contains invalid characters\n")
    })
}

/// `verify_rolename`.
fn roleid(value: &str) -> Result<(), String> {
    check(static_regex!(r"^[A-Za-z0-9.\-_]+$").is_match(value), || {
        format!("role name '{value}' contains invalid characters\n")
    })
}

/// `verify_poolname` (pve-access-control `src/PVE/AccessControl.pm`): up to three levels of
/// `[A-Za-z0-9.-_]+` separated by `/`.
fn poolid(value: &str) -> Result<(), String> {
    // Perl's `split("/", ...)` in scalar context: the fields, trailing empty ones dropped.
    let levels = value.trim_end_matches('/').split('/').count();
    if levels > 3 {
        return Err(format!(
            "pool name '{value}' nested too deeply (max levels = 3)\n"
        ));
    }
    check(
        static_regex!(r"^[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}$").is_match(value),
        || format!("pool name '{value}' contains invalid characters\n"),
    )
}

/// `verify_privname`: a privilege of pve-access-control (of either major release: the format
/// does not know the tag).
fn privilege(value: &str) -> Result<(), String> {
    use std::sync::LazyLock;

    use crate::access::privileges::Catalog;
    static CATALOGS: LazyLock<[Catalog; 2]> =
        LazyLock::new(|| [Catalog::for_release("8.4"), Catalog::for_release("9.1")]);
    check(
        CATALOGS.iter().any(|catalog| catalog.is_valid(value)),
        || format!("invalid privilege '{value}'\n"),
    )
}

/// `parse_replication_job_id` (pve-guest-common `src/PVE/ReplicationConfig.pm`).
fn replication_job_id(id: &str) -> Result<(), String> {
    let message = format!("invalid replication job id '{id}'");
    let Some(captures) = static_regex!(r"^(\d+)-(\d+)$").captures(id) else {
        return Err(format!("{message}\n"));
    };
    // `int($1) < 100`: digits that overflow are far above 100.
    let guest_below_100 = captures[1].parse::<u64>().is_ok_and(|guest| guest < 100);
    check(!guest_below_100, || {
        format!("{message} (guest IDs < 100 are reserved)\n")
    })
}

/// `pve_verify_ha_resource_id` (pve-ha-manager `src/PVE/HA/Tools.pm`).
fn ha_resource_id(sid: &str) -> Result<(), String> {
    check(static_regex!(r"^[a-z]+:\S+$").is_match(sid), || {
        "value does not look like a valid ha resource id\n".to_owned()
    })
}

/// `pve_verify_ha_resource_or_vm_id`.
fn ha_resource_or_vm_id(sid: &str) -> Result<(), String> {
    check(static_regex!(r"^([a-z]+:\S+|\d+)$").is_match(sid), || {
        "value does not look like a valid ha resource id\n".to_owned()
    })
}

/// `pve_verify_ha_node` (9.1) and `pve_verify_ha_group_node` (8.4, 9.0): a node name with an
/// optional `:<priority>`.
fn ha_node(node: &str, what: &str) -> Result<(), String> {
    check(
        static_regex!(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)(:\d+)?$").is_match(node),
        || format!("value does not look like a valid {what}\n"),
    )
}

/// `parse_sdn_<kind>_id` (pve-network before the formats moved into the schemas' patterns).
fn sdn_id(id: &str, kind: &str, max: Option<usize>) -> Result<(), String> {
    if !static_regex!(r"(?i)^[a-z][a-z0-9]*[a-z0-9]$").is_match(id) {
        return Err(format!("{kind} ID '{id}' contains illegal characters\n"));
    }
    match max {
        Some(max) if id.chars().count() > max => Err(format!(
            "{kind} ID '{id}' can't be more length than {max} characters\n"
        )),
        _ => Ok(()),
    }
}

/// The 9.2 prefix-list and route-map IDs (source not reachable): `pve-configid`'s pattern.
fn sdn_named_id(id: &str, kind: &str) -> Result<(), String> {
    check(
        static_regex!(r"(?i)^[a-z][a-z0-9_-]+$").is_match(id),
        || format!("{kind} ID '{id}' contains illegal characters\n"),
    )
}

/// `parse_sdn_controller_id`.
fn sdn_controller_id(id: &str) -> Result<(), String> {
    if !static_regex!(r"(?i)^[a-z][a-z0-9_-]*[a-z0-9]$").is_match(id) {
        return Err(format!(
            "controller ID '{id}' contains illegal characters\n"
        ));
    }
    check(id.chars().count() <= 64, || {
        format!("controller ID '{id}' can't be more length than 64 characters\n")
    })
}

/// `parse_sdn_subnet_id` (pve-network `src/PVE/Network/SDN/SubnetPlugin.pm`): a CIDR, or
/// `<zone>-<address>-<mask>` whose address and mask form one.
fn sdn_subnet_id(id: &str) -> Result<(), String> {
    let cidr = if id.contains('/') {
        id.to_owned()
    } else {
        // `my ($zone, $ip, $mask) = split(/-/, $id)`; missing fields are empty.
        let mut fields = id.split('-').skip(1);
        let ip = fields.next().unwrap_or_default();
        let mask = fields.next().unwrap_or_default();
        format!("{ip}/{mask}")
    };
    check(
        super::network::is_cidr(&cidr, false) || super::network::is_cidr(&cidr, true),
        || "value does not look like a valid CIDR network\n".to_owned(),
    )
}

/// The `pve-sdn-fabric-id` sub (pve-network `src/PVE/Network/SDN/Fabrics.pm`).
fn sdn_fabric_id(id: &str) -> Result<(), String> {
    check(
        static_regex!(r"(?i)^[a-zA-Z0-9][a-zA-Z0-9-]{0,6}[a-zA-Z0-9]?$").is_match(id),
        || format!("Fabric ID '{id}' contains illegal characters\n"),
    )
}

/// The `pve-acme-domain` sub (pve-manager `PVE/NodeConfig.pm`).
fn acme_domain(domain: &str) -> Result<(), String> {
    check(
        static_regex!(r"(?i)^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)+$").is_match(domain),
        || format!("value '{domain}' does not look like a valid domain name!\n"),
    )
}

/// The `pve-acme-alias` sub.
fn acme_alias(alias: &str) -> Result<(), String> {
    check(
        static_regex!(r"(?i)^[a-z0-9_][a-z0-9_-]*(?:\.[a-z0-9_][a-z0-9_-]*)+$").is_match(alias),
        || format!("value '{alias}' does not look like a valid alias name!\n"),
    )
}

/// `pve_verify_graphite_path` (pve-manager `PVE/Status/Graphite.pm`).
fn graphite_path(path: &str) -> Result<(), String> {
    check(
        static_regex!(
            r"^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$"
        )
        .is_match(path),
        || "value does not look like a valid graphite path\n".to_owned(),
    )
}

/// `verify_task_status_type`.
fn task_status_type(value: &str) -> Result<(), String> {
    check(
        static_regex!(r"(?i)^(ok|error|warning|unknown)$").is_match(value),
        || format!("invalid status '{value}'\n"),
    )
}

/// `verify_day_of_week` (pve-manager `PVE/API2/Backup.pm`).
fn day_of_week(value: &str) -> Result<(), String> {
    check(
        static_regex!(r"^(mon|tue|wed|thu|fri|sat|sun)$").is_match(value),
        || format!("invalid day '{value}'\n"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The hand-written user name check agrees with the regex it replaces.
    #[test]
    fn userid_by_hand_agrees_with_the_regex() {
        let regex = regex::Regex::new(r"^[^\s:/]+@[A-Za-z][A-Za-z0-9.\-_]+$").unwrap();
        let cases = [
            "root@pam",
            "a@b",
            "a@bc",
            "a@b1",
            "@pam",
            "root@",
            "root@p",
            "root@1am",
            "root@pa m",
            "ro ot@pam",
            "ro\tot@pam",
            "ro\u{a0}ot@pam",
            "ro\u{2003}ot@pam",
            "ro:ot@pam",
            "ro/ot@pam",
            "user@host@pve",
            "user@pve@",
            "user@@pve",
            "@@pve",
            "ünïcode@pve",
            "user@pvé",
            "user@p.v-e_1",
            "user@pam\n",
            "\nuser@pam",
            "user",
            "",
            "user!token@pam",
            "user@pam!token",
        ];
        for case in cases {
            assert_eq!(
                super::looks_like_userid(case),
                regex.is_match(case),
                "{case:?}"
            );
        }
    }
}
