//! The access part of a seed fixture: users with groups, tokens and TOTP secrets, groups,
//! custom roles and ACL entries, turned into store rows.
//!
//! ```yaml
//! users:
//!   - userid: alice@pve
//!     password: alice-secret
//!     groups: [ops]
//!     totp: JBSWY3DPEHPK3PXP          # base32 TOTP secret: logins then need a second factor
//!     tokens:
//!       full: 3f1c...                 # token with alice's full privileges
//!       ro: {secret: 9e2a..., privsep: true}   # only its own ACL entries (within alice's)
//! groups:
//!   - {groupid: ops, comment: Operators}
//! roles:
//!   VMPower: [VM.PowerMgmt, VM.Audit]
//! acl:
//!   - {path: /vms/100, roles: [PVEVMUser], users: [alice@pve]}
//!   - {path: /, roles: [PVEAuditor], tokens: ["alice@pve!ro"], propagate: true}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{Fixture, UserSeed};
use crate::access::acl::{AclEntry, acl_change, normalize_path};
use crate::access::totp::{TFA_KEY, Totp, totp_entry};
use crate::auth::{PASSWORD_KEY, SECRET_KEY, hash_secret, hash_seed_secret};
use crate::store::Change;

/// An API token of a seeded user: its secret, or the secret with options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenSeed {
    /// Only the secret: a token with its user's full privileges (`privsep: false`; tokens made
    /// through the API are privilege-separated unless told otherwise).
    Secret(String),
    /// The secret and its options.
    Full {
        /// The token secret (what clients send after `=`).
        secret: String,
        /// Privilege separation (default true).
        #[serde(default = "yes")]
        privsep: bool,
        /// Expiry (Unix time, 0 = never).
        #[serde(default)]
        expire: u64,
        /// Comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
}

fn yes() -> bool {
    true
}

/// A group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSeed {
    /// Group ID.
    pub groupid: String,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// ACL entries: every role for every user, group and token on a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSeed {
    /// ACL path (`/`, `/vms/100`, `/storage/local`, ...).
    pub path: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Users.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Full token IDs (`user@realm!name`).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Whether the roles propagate to paths below (default true, as in `PUT /access/acl`).
    #[serde(default = "yes")]
    pub propagate: bool,
}

/// The rows of one seeded user and its tokens.
pub(crate) fn user_changes(user: &UserSeed, root_password: &str) -> Vec<Change> {
    let password = user
        .password
        .clone()
        .or_else(|| (user.userid == "root@pam").then(|| root_password.to_owned()));
    let mut row = Map::new();
    for (key, value) in &user.config {
        if !key.starts_with('_') {
            row.insert(key.clone(), value.clone());
        }
    }
    row.insert("enable".to_owned(), json!(u8::from(user.enable)));
    row.entry("expire").or_insert(json!(0));
    if let Some(password) = password {
        row.insert(PASSWORD_KEY.to_owned(), json!(hash_seed_secret(&password)));
    }
    if !user.groups.is_empty() {
        row.insert("groups".to_owned(), json!(user.groups.join(",")));
    }
    if let Some(secret) = &user.totp {
        match Totp::from_base32(secret) {
            Some(totp) => {
                row.insert(
                    TFA_KEY.to_owned(),
                    json!([totp_entry("seed-totp", "seeded", &totp, 0)]),
                );
                row.insert("keys".to_owned(), json!("x"));
            }
            None => tracing::warn!(userid = %user.userid, "ignoring an invalid TOTP secret"),
        }
    }
    let user_path = format!("/access/users/{}", user.userid);
    let mut changes = vec![Change::Put {
        path: user_path.clone(),
        collection: Some("/access/users".to_owned()),
        value: Value::Object(row),
    }];
    for (name, token) in &user.tokens {
        let value = match token {
            TokenSeed::Secret(secret) => {
                json!({"privsep": 0, "expire": 0, SECRET_KEY: hash_secret(secret)})
            }
            TokenSeed::Full {
                secret,
                privsep,
                expire,
                comment,
            } => {
                let mut value = json!({"privsep": u8::from(*privsep), "expire": expire,
                                        SECRET_KEY: hash_secret(secret)});
                if let Some(comment) = comment {
                    value["comment"] = json!(comment);
                }
                value
            }
        };
        changes.push(Change::Put {
            path: format!("{user_path}/token/{name}"),
            collection: Some(format!("{user_path}/token")),
            value,
        });
    }
    changes
}

/// The rows of a fixture's groups, custom roles and ACL.
pub(crate) fn access_changes(fixture: &Fixture, changes: &mut Vec<Change>) {
    for group in &fixture.groups {
        let mut row = json!({});
        if let Some(comment) = &group.comment {
            row["comment"] = json!(comment);
        }
        changes.push(Change::Put {
            path: format!("/access/groups/{}", group.groupid),
            collection: Some("/access/groups".to_owned()),
            value: row,
        });
    }
    for (roleid, privs) in &fixture.roles {
        changes.push(Change::Put {
            path: format!("/access/roles/{roleid}"),
            collection: Some("/access/roles".to_owned()),
            value: json!({"privs": privs.join(",")}),
        });
    }
    let mut entries = Vec::new();
    for acl in &fixture.acl {
        let Some(path) = normalize_path(&acl.path) else {
            tracing::warn!(path = %acl.path, "ignoring an ACL entry with an invalid path");
            continue;
        };
        let subjects = acl
            .users
            .iter()
            .map(|u| ("user", u))
            .chain(acl.groups.iter().map(|g| ("group", g)))
            .chain(acl.tokens.iter().map(|t| ("token", t)));
        for (kind, ugid) in subjects {
            for role in &acl.roles {
                entries.push(AclEntry {
                    path: path.clone(),
                    kind: kind.to_owned(),
                    ugid: ugid.clone(),
                    roleid: role.clone(),
                    propagate: u8::from(acl.propagate),
                });
            }
        }
    }
    if !entries.is_empty() {
        changes.push(acl_change(entries));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::access::acl::ACL_ROW;

    #[test]
    fn the_documented_yaml_parses_into_rows() {
        let fixture = Fixture::parse(
            r#"
nodes: [{name: pve1}, {name: pve2}]
guests: [{vmid: 100, type: qemu, node: pve1}]
users:
  - userid: alice@pve
    password: alice-secret
    groups: [ops]
    totp: JBSWY3DPEHPK3PXP
    tokens:
      full: 3f1c0b8e
      ro: {secret: 9e2a71d4, privsep: true}
groups:
  - {groupid: ops, comment: Operators}
roles:
  VMPower: [VM.PowerMgmt, VM.Audit]
acl:
  - {path: /vms/100, roles: [PVEVMUser], users: [alice@pve]}
  - {path: /, roles: [PVEAuditor], groups: [ops], tokens: ["alice@pve!ro"]}
faults:
  - {kind: node, node: pve2, status: 596}
  - {kind: lock, vmid: 100, lock: backup}
  - {path: /version, delay_ms: 100}
"#,
        )
        .unwrap();
        let changes = fixture.to_changes("secret");
        let row = |wanted: &str| {
            changes
                .iter()
                .rev()
                .find_map(|change| match change {
                    Change::Put { path, value, .. } if path == wanted => Some(value.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{wanted} missing"))
        };
        let alice = row("/access/users/alice@pve");
        assert_eq!(alice["groups"], "ops");
        assert_eq!(alice["keys"], "x");
        assert!(alice[TFA_KEY][0]["_secret"].is_string());
        assert_eq!(row("/access/users/alice@pve/token/full")["privsep"], 0);
        assert_eq!(row("/access/users/alice@pve/token/ro")["privsep"], 1);
        assert_eq!(
            row("/access/roles/VMPower")["privs"],
            "VM.PowerMgmt,VM.Audit"
        );
        assert_eq!(row("/access/groups/ops")["comment"], "Operators");
        assert_eq!(row(ACL_ROW)["entries"].as_array().unwrap().len(), 3);
        assert_eq!(row("/nodes/pve2")["status"], "offline");
        assert_eq!(row("/nodes/pve2")["_unreachable"]["status"], 596);
        assert_eq!(row("/nodes/pve1/qemu/100")["lock"], "backup");
        assert_eq!(fixture.faults.len(), 3);
    }
}
