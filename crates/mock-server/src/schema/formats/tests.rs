//! Every format of every embedded tag has a checker, and each checker accepts and refuses
//! what its Perl verifier does, with the same message.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use route_metadata::Schema;

use super::*;
use crate::api::{Api, TAGS};

fn collect<'s>(schema: &'s Schema, out: &mut BTreeSet<&'s str>) {
    if let Some(format) = &schema.format {
        out.insert(format);
    }
    for child in schema
        .properties
        .iter()
        .chain(schema.property_string.iter())
        .flat_map(|props| props.values())
        .chain(schema.items.as_deref())
        .chain(schema.one_of.iter().flatten())
    {
        collect(child, out);
    }
}

/// Walks every embedded tag (parameters and replies) and every hash format's keys: a format
/// without a checker fails the test by name, so a new tag cannot bring an unchecked format.
#[test]
fn every_format_is_checked() {
    let apis: Vec<_> = TAGS.iter().map(|tag| Api::load(tag).unwrap()).collect();
    let mut formats = BTreeSet::new();
    for api in &apis {
        for op in api.meta.operations() {
            for schema in op.parameters.values() {
                collect(schema, &mut formats);
            }
            collect(&op.returns, &mut formats);
        }
    }
    for (_, format) in hash::all() {
        for schema in format.keys.values() {
            collect(schema, &mut formats);
        }
    }
    assert!(formats.len() > 100, "only {} formats", formats.len());
    let unchecked: Vec<&&str> = formats.iter().filter(|f| !is_checked(f)).collect();
    assert!(
        unchecked.is_empty(),
        "formats without a checker: {unchecked:?}"
    );
}

fn refused(format: &str, value: &str) -> String {
    check_format(format, value).unwrap_err()
}

fn accepted(format: &str, values: &[&str]) {
    for value in values {
        assert_eq!(check_format(format, value), Ok(()), "{format}: {value:?}");
    }
}

#[test]
fn ids() {
    accepted("pve-vmid", &["100", "999999999"]);
    assert_eq!(
        refused("pve-vmid", "0100"),
        "value does not look like a valid VM ID\n"
    );
    accepted("pve-storage-id", &["local-lvm", "a1"]);
    assert_eq!(
        refused("pve-storage-id", "1bad"),
        "storage ID '1bad' contains illegal characters\n"
    );
    assert_eq!(
        refused("pve-storage-id", "a"),
        "storage ID 'a' cannot be shorter than 2 characters\n"
    );
    accepted("pve-node-list", &["pve1,pve2", "", "pve1;pve2 pve3"]);
    accepted("pve-configid-list", &["a1,,b2"]);
    assert_eq!(
        refused("pve-configid", "1a"),
        "invalid configuration ID '1a'\n"
    );
    accepted("pve-poolid", &["a", "a/b/c"]);
    assert_eq!(
        refused("pve-poolid", "a/b/c/d"),
        "pool name 'a/b/c/d' nested too deeply (max levels = 3)\n"
    );
    assert_eq!(
        refused("pve-poolid", "a//b"),
        "pool name 'a//b' contains invalid characters\n"
    );
    accepted("pve-priv-list", &["VM.Audit,Sys.Audit"]);
    assert_eq!(
        refused("pve-priv", "VM.Fly"),
        "invalid privilege 'VM.Fly'\n"
    );
    accepted("pve-userid", &["root@pam"]);
    assert_eq!(refused("pve-userid", "ab"), "user name 'ab' is too short\n");
    assert_eq!(
        refused("pve-tokenid-list", "root@pam"),
        "value 'root@pam' does not look like a valid token ID\n"
    );
    accepted("pve-replication-job-id", &["100-0"]);
    assert_eq!(
        refused("pve-replication-job-id", "99-0"),
        "invalid replication job id '99-0' (guest IDs < 100 are reserved)\n"
    );
    accepted("pve-ha-resource-or-vm-id", &["vm:100", "100"]);
    accepted("pve-ha-node-list", &["pve1:2,pve2"]);
    assert_eq!(
        refused("pve-sdn-zone-id", "zone-1"),
        "zone ID 'zone-1' contains illegal characters\n"
    );
    assert_eq!(
        refused("pve-sdn-vnet-id", "abcdefghi"),
        "vnet ID 'abcdefghi' can't be more length than 8 characters\n"
    );
    accepted("pve-sdn-subnet-id", &["zone1-10.0.0.0-24", "10.0.0.0/24"]);
    accepted("pve-acme-domain-list", &["example.com,www.example.com"]);
    assert_eq!(
        refused("pve-acme-domain", "localhost"),
        "value 'localhost' does not look like a valid domain name!\n"
    );
    accepted("pve-tag-list", &["a;b,c"]);
    assert_eq!(refused("pve-tag", "a b!"), "invalid characters in tag\n");
    assert_eq!(
        refused("pve-day-of-week-list", "mon,xyz"),
        "invalid day 'xyz'\n"
    );
    assert_eq!(
        refused("pve-task-status-type-list", "ok,bad"),
        "invalid status 'bad'\n"
    );
}

#[test]
fn network() {
    accepted("ipv4", &["10.0.0.1"]);
    assert_eq!(
        refused("ipv4", "10.0.0.01"),
        "value does not look like a valid IPv4 address\n"
    );
    accepted(
        "ipv6",
        &["fe80::1", "::", "::ffff:1.2.3.4", "1:2:3:4:5:6:7::"],
    );
    accepted("CIDR", &["10.0.0.0/8", "fd00::/64"]);
    assert_eq!(
        refused("CIDRv4", "10.0.0.0/7"),
        "value does not look like a valid IPv4 CIDR network\n"
    );
    assert_eq!(
        refused("CIDR", "10.0.0.0/33"),
        "value does not look like a valid CIDR network\n"
    );
    accepted("ipv4mask", &["255.255.255.0"]);
    assert_eq!(
        refused("ipv4mask", "255.0.255.0"),
        "value does not look like a valid IP netmask\n"
    );
    accepted("pve-ipv4-config", &["dhcp", "10.0.0.2/24"]);
    accepted("pve-ipv6-config", &["auto", "fd00::2/64"]);
    accepted("mac-addr", &["BC:24:11:00:00:01"]);
    assert_eq!(
        refused("mac-addr", "01:24:11:00:00:01"),
        "value does not look like a valid unicast MAC address\n"
    );
    accepted("mac-prefix", &["BC:24:11", "02"]);
    accepted("email-list", &["a@example.com b.c@example.org"]);
    assert_eq!(
        refused("email-opt", "not-an-email"),
        "value does not look like a valid email address\n"
    );
    accepted("email-opt", &[""]);
    accepted("email-or-username-list", &["root", "a@b.c"]);
    assert_eq!(
        refused("dns-name", "-bad.example"),
        "value does not look like a valid DNS name\n"
    );
    assert_eq!(
        refused("address", "a b"),
        "value does not look like a valid address: a b\n"
    );
    accepted("pve-vlan-id-or-range-list", &["2-4094", "100"]);
    assert_eq!(
        refused("pve-vlan-id-or-range", "10-5"),
        "VLAN range must go from lower to higher tag '10-5'\n"
    );
    assert_eq!(
        refused("pve-vlan-id-or-range", "1"),
        "invalid VLAN tag '1'\n"
    );
    accepted("lxc-ip-with-ll-iface-list", &["fe80::1%eth0", "10.0.0.1"]);
    accepted("storage-pair-list", &["local:local-lvm,1", "local-lvm"]);
    assert_eq!(
        refused("storage-pair", "a:b"),
        "entry 'a:b' contains invalid ID - storage ID 'a' cannot be shorter than 2 characters\n\n\n"
    );
    accepted("IPorCIDRorAlias", &["dc/alias1", "10.0.0.0/24"]);
    accepted(
        "pve-fw-addr-spec",
        &["+ipset1", "10.0.0.1,10.0.0.2", "10.0.0.1-10.0.0.9"],
    );
    assert_eq!(
        refused("pve-fw-addr-spec", "10.0.0.1,fd00::1"),
        "detected mixed ipv4/ipv6 addresses in address list '10.0.0.1,fd00::1'\n"
    );
    accepted("pve-fw-dport-spec", &["22,80:90", "ssh", "echo-request"]);
    assert_eq!(
        refused("pve-fw-dport-spec", "90:80"),
        "backwards range '90:80' not allowed, did you mean '80:90'?\n"
    );
    assert_eq!(
        refused("pve-fw-sport-spec", "70000"),
        "invalid port '70000'\n"
    );
    assert_eq!(
        refused("pve-fw-icmp-type-spec", "bogus"),
        "invalid icmp-type value 'bogus'\n"
    );
    accepted("pve-fw-conntrack-helper", &["ftp,sip"]);
    accepted("pve-sdn-bgp-rt-list", &["65000:100"]);
    accepted("pve-sdn-isis-net", &["49.0001.1921.6800.1002.00"]);
}

#[test]
fn storage_and_guests() {
    accepted("pve-volume-id", &["local-lvm:abc", "local:iso/../../x.iso"]);
    assert_eq!(
        refused("pve-volume-id", "nostorage"),
        "unable to parse volume ID 'nostorage'\n"
    );
    accepted(
        "pve-volume-id-or-qm-path",
        &["none", "cdrom", "/dev/sdb", "local:8"],
    );
    accepted("pve-storage-content-list", &["images,rootdir", "iso"]);
    assert_eq!(
        refused("pve-storage-content", "movies"),
        "invalid content type 'movies'\n"
    );
    assert_eq!(
        refused("pve-lxc-mp-string", "/mnt/../etc"),
        "/mnt/../etc contains illegal character sequences\n"
    );
    assert_eq!(
        refused("pve-lxc-dev-string", "/tmp/x"),
        "/tmp/x is not a valid device path\n"
    );
    assert_eq!(
        refused("pve-qm-bootdisk", "scsi31"),
        "invalid boot disk 'scsi31'\n"
    );
    accepted("pve-qm-bootdev-list", &["scsi0;ide2;net0"]);
    assert_eq!(
        refused("pve-qm-bootdev", "efidisk0"),
        "invalid boot device 'efidisk0'\n"
    );
    accepted(
        "pve-storage-portal-dns-list",
        &["10.0.0.1:3260", "[fd00::1]:3260", "iscsi.lan"],
    );
    accepted("pve-dir-override-list", &["iso=isos"]);
    accepted("disk-size", &["32G", "1.5TiB", "1024"]);
    accepted("urlencoded", &["ssh-rsa%20AAAA"]);
    assert_eq!(
        refused("urlencoded", "a b"),
        "invalid urlencoded string: a b\n"
    );
    accepted("pve-startup-order", &["order=1,up=30"]);
    accepted("pve-cpuset", &["0-3,8"]);
    assert_eq!(
        refused("pve-cpuset", "3-1"),
        "unable to parse cpuset option\n"
    );
    accepted("pve-hotplug-features", &["network,disk,usb", "1"]);
    assert_eq!(
        refused("pve-hotplug-features", "network,gpu"),
        "unable to parse hotplug option\n"
    );
    accepted("pve-ct-timezone", &["host", "UTC", "Europe/Vienna"]);
    assert_eq!(
        refused("pve-ct-timezone", "Mars/Olympus"),
        "invalid time zone 'Mars/Olympus'\n"
    );
    accepted(
        "pve-calendar-event",
        &["daily", "mon..fri 8:00", "*-*-1 0:0", "sat 2/15", "*/5"],
    );
    assert_eq!(
        refused("pve-calendar-event", "  "),
        "invalid calendar event '  ' - unable to parse calendar event - event is empty\n\n"
    );
    assert!(check_format("pve-calendar-event", "every tuesday").is_err());
    assert_eq!(
        refused("pem-certificate", "hello"),
        "not a valid PEM-formatted string.\n"
    );
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    accepted("pem-certificate", &[pem]);
    accepted("pem-certificate-chain", &[&format!("{pem}{pem}")]);
    accepted("pve-command-batch", &[r#"[{"path":"/version","args":{}}]"#]);
}

#[test]
fn list_and_hash_rules() {
    assert_eq!(
        check_format("pve-qm-smbios1-list", "uuid=x"),
        Err("'-list' format must have code ref, not hash\n".to_owned())
    );
    assert_eq!(
        check_format("no-such-format", "x"),
        Err("undefined format 'no-such-format'\n".to_owned())
    );
    assert_eq!(split_list("a\0b\0").collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(split_list(" a, b;c ").collect::<Vec<_>>(), ["a", "b", "c"]);
}

fn hash_check(format: &str, value: &str) -> Result<(), String> {
    let api = crate::test_api::small_api();
    check_value_format(
        &api,
        format,
        value,
        &crate::schema::validate::Path::Text("param"),
    )
}

#[test]
fn hash_formats() {
    assert_eq!(
        hash_check("pve-qm-smbios1", "uuid=zz"),
        Err("format error\nparam.uuid: value does not match the regex pattern\n".to_owned())
    );
    assert_eq!(
        hash_check(
            "pve-qm-smbios1",
            "uuid=5ad1d2a5-c3b0-4a33-9b3e-3a8a4c7e0f11"
        ),
        Ok(())
    );
    assert_eq!(
        hash_check("pve-qm-ide", "local:iso/x.iso,media=cdrom"),
        Ok(())
    );
    assert_eq!(hash_check("pve-qm-ide", "none,media=cdrom"), Ok(()));
    assert_eq!(
        hash_check("pve-qm-ide", "x"),
        Err(
            "format error\nparam.file: invalid format - unable to parse volume ID 'x'\n\n"
                .to_owned()
        )
    );
    assert_eq!(hash_check("pve-qm-boot", "order=scsi0;net0"), Ok(()));
    assert_eq!(
        hash_check("pve-qm-boot", "order=scsi0;bogus"),
        Err(
            "format error\nparam.order: invalid format - invalid boot device 'bogus'\n\n"
                .to_owned()
        )
    );
    assert_eq!(
        hash_check("pve-vm-cpu-conf", "host,flags=+aes;-pcid"),
        Ok(())
    );
    assert_eq!(
        hash_check("pve-vm-cpu-conf", "nosuchcpu"),
        Err("Built-in cputype 'nosuchcpu' is not defined (missing 'custom-' prefix?)\n".to_owned())
    );
    assert_eq!(
        hash_check("pve-vm-cpu-conf", "host,flags=+sse4.2"),
        Err(format!(
            "VM-specific CPU flags must be a subset of: {}\n",
            guest::CPU_FLAGS.join(", ")
        ))
    );
    assert_eq!(
        hash_check("prune-backups", "keep-all=1,keep-last=3"),
        Err("keep-all cannot be set together with other options.\n".to_owned())
    );
    assert_eq!(
        hash_check("prune-backups", "keep-last=3,keep-daily=7"),
        Ok(())
    );
    assert_eq!(
        hash_check("backup-fleecing", "1"),
        Err("'storage' parameter is required when 'enabled' is set\n".to_owned())
    );
    assert_eq!(
        hash_check("pve-qm-ipconfig", "ip=10.0.0.2/24,gw=10.0.0.1"),
        Ok(())
    );
    assert_eq!(
        hash_check("pve-qm-ipconfig", "ip=10.0.0.2"),
        Err("format error\nparam.ip: invalid format - value does not look like a valid ipv4 network configuration\n\n".to_owned())
    );
    assert_eq!(
        hash_check("pve-qm-hostpci", "0000:01:00.0;0000:01:00.1,pcie=1"),
        Ok(())
    );
    assert_eq!(
        hash_check("pve-qm-watchdog", "i6300esb,action=reset"),
        Ok(())
    );
    assert_eq!(hash_check("pve-qm-rng", "/dev/urandom"), Ok(()));
    assert_eq!(
        hash_check("pve-qm-cicustom", "user=local:snippets/u.yaml"),
        Ok(())
    );
    assert_eq!(
        hash_check("realm-sync-options", "scope=both,remove-vanished=acl;entry"),
        Ok(())
    );
    assert_eq!(hash_check("pve-tfa-config", "type=oath,digits=6"), Ok(()));
    assert_eq!(
        hash_check(
            "proxmox-remote",
            "host=10.0.0.1,apitoken=PVEAPIToken=a@pam!t=s"
        ),
        Ok(())
    );
}

#[test]
fn formats_new_in_9_2() {
    accepted(
        "pve-storage-zfs-blocksize",
        &["512", "4k", "16K", "1m", "16m", ""],
    );
    assert!(refused("pve-storage-zfs-blocksize", "04k").contains("invalid ZFS blocksize format"));
    assert!(refused("pve-storage-zfs-blocksize", "3k").contains("not a valid ZFS blocksize"));
    assert!(refused("pve-storage-zfs-blocksize", "32m").contains("not a valid ZFS blocksize"));
    accepted(
        "FullRangeCIDR",
        &["0.0.0.0/0", "10.0.0.0/8", "::/0", "fd00::/64"],
    );
    assert!(refused("FullRangeCIDR", "10.0.0.0/33").contains("valid CIDR"));
    assert!(refused("FullRangeCIDR", "10.0.0.0").contains("valid CIDR"));
    accepted("pve-sdn-prefix-list-id", &["pl1", "only-lan_v4"]);
    assert!(refused("pve-sdn-prefix-list-id", "1pl").contains("prefix list ID"));
    accepted("pve-sdn-route-map-id", &["rm1"]);
    assert!(refused("pve-sdn-route-map-id", "r m").contains("route map ID"));
    accepted("pve-sdn-fabric-wireguard-interface", &["wg0"]);
    assert!(refused("pve-sdn-fabric-wireguard-interface", "0wg").contains("interface"));
}

/// The hand-written `is_integer` and `is_number` answer as Proxmox's regexes do.
#[test]
fn number_checks_match_the_regexes() {
    let integer = regex::Regex::new(r"^[+-]?\d+$").unwrap();
    let number = regex::Regex::new(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$").unwrap();
    let alphabet = ["", "0", "7", "+", "-", ".", "e", "E", "x", " ", "\n", "٣"];
    let mut texts = vec![
        "12".to_owned(),
        "-1.5e+10".to_owned(),
        "1.".to_owned(),
        ".5".to_owned(),
        "1e".to_owned(),
        "++1".to_owned(),
        "1.2.3".to_owned(),
        "0x10".to_owned(),
        "1E-07".to_owned(),
        "12\n".to_owned(),
    ];
    for a in alphabet {
        for b in alphabet {
            for c in alphabet {
                for d in alphabet {
                    texts.push(format!("{a}{b}{c}{d}"));
                }
            }
        }
    }
    for text in &texts {
        assert_eq!(
            is_integer(text),
            integer.is_match(text),
            "is_integer({text:?})"
        );
        assert_eq!(
            is_number(text),
            number.is_match(text),
            "is_number({text:?})"
        );
    }
}
