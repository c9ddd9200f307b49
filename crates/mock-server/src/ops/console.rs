//! Console tickets: `vncproxy` and `termproxy` of guests and nodes (and `vncshell`) hand out a
//! short-lived `PVEVNC` ticket bound to the caller, the console's ACL path and its port
//! (`assemble_vnc_ticket` in pve-access-control `src/PVE/AccessControl.pm`, called by
//! qemu-server `src/PVE/API2/Qemu.pm`, pve-container `src/PVE/API2/LXC.pm` and pve-manager
//! `PVE/API2/Nodes.pm`); `POST /access/vncticket` and `GET .../vncwebsocket` verify it.
//!
//! The mock runs no console: the rest of a proxy's reply (`upid`, `cert`) is the generic one.

use rand::Rng;
use serde_json::{Value, json};

use super::{Call, Plan, Tx, generic};
use crate::access::acl::normalize_path;
use crate::access::rpcenv::RpcEnv;
use crate::auth;
use crate::error::AppError;
use crate::schema::split_list;

/// The ticket prefix of console tickets.
const PREFIX: &str = "PVEVNC";

/// The ACL path a console's ticket is bound to: `/vms/{vmid}` or `/nodes/{node}`.
fn auth_path(call: &Call<'_>) -> String {
    match call.param("vmid") {
        Some(vmid) => format!("/vms/{vmid}"),
        None => format!("/nodes/{}", call.param("node").unwrap_or_default()),
    }
}

/// What a ticket is signed for: `<user>:<path>[:<port>]`.
fn secret_data(user: &str, path: &str, port: Option<u64>) -> String {
    match port {
        Some(port) => format!("{user}:{path}:{port}"),
        None => format!("{user}:{path}"),
    }
}

/// `POST .../vncproxy`, `.../termproxy`, `/nodes/{node}/vncshell`: the generic reply with a
/// real ticket. A QEMU VNC console also gets a one-time VNC password, which Proxmox puts in
/// front of the ticket (`<password>:PVEVNC:...`) and, with `generate-password`, in the reply.
pub(crate) fn proxy(call: &Call<'_>, tx: &Tx<'_>) -> Result<Plan, AppError> {
    let mut plan = generic::write(call, tx)?;
    if !plan.reply.is_object() {
        plan.reply = generic::generated_reply(call);
    }
    let port = plan
        .reply
        .get("port")
        .and_then(|port| match port {
            Value::Number(number) => number.as_u64(),
            Value::String(text) => text.parse().ok(),
            _ => None,
        })
        .unwrap_or(5900);
    let user = call.user();
    let mut ticket = tx.signer.short_lived_ticket(
        PREFIX,
        &secret_data(user, &auth_path(call), Some(port)),
        auth::now(),
    );
    let vnc_password = call.template().ends_with("/qemu/{vmid}/vncproxy")
        && (call.flag("generate-password") || call.flag("websocket"));
    if let Value::Object(reply) = &mut plan.reply {
        if vnc_password {
            let password: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(8)
                .map(char::from)
                .collect();
            ticket = format!("{password}:{ticket}");
            if call.flag("generate-password") {
                reply.insert("password".to_owned(), json!(password));
            } else {
                reply.remove("password");
            }
        } else {
            reply.remove("password");
        }
        reply.insert("ticket".to_owned(), json!(ticket));
        reply.insert("user".to_owned(), json!(user));
        reply.insert("port".to_owned(), json!(port));
    }
    Ok(plan)
}

/// Strips the VNC password Proxmox prepends (`^.{8}:(PVEVNC:.*)$`).
fn strip_password(ticket: &str) -> &str {
    match ticket.char_indices().nth(8) {
        Some((index, ':')) if ticket[index + 1..].starts_with("PVEVNC:") => &ticket[index + 1..],
        _ => ticket,
    }
}

/// `POST /access/vncticket` (`verify_vnc_ticket` in pve-access-control
/// `src/PVE/API2/AccessControl.pm`): the ticket is valid for `authid`, `path` and `port`, and
/// `authid` has every privilege of `privs` on `path`. Any failure is the same 401
/// `authentication failure`, so nothing about users leaks.
pub(crate) fn verify_ticket(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    let failure = || AppError::Unauthorized("authentication failure\n".to_owned());
    let authid = call.arg_text("authid").unwrap_or_default();
    let ticket = call.arg_text("vncticket").unwrap_or_default();
    let path = normalize_path(&call.arg_text("path").unwrap_or_default()).ok_or_else(failure)?;
    let port = call.args.get("port").and_then(|port| match port {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    });
    if !tx.signer.verify_short_lived_ticket(
        PREFIX,
        strip_password(&ticket),
        &secret_data(&authid, &path, port),
        auth::now(),
    ) {
        return Err(failure());
    }
    let privs_text = call.arg_text("privs").unwrap_or_default();
    let privs: Vec<&str> = split_list(&privs_text).collect();
    let rpc = RpcEnv::new(&authid, || tx.access());
    if privs.is_empty() || rpc.check(&path, &privs).is_err() {
        return Err(failure());
    }
    Ok(Value::Null)
}

/// `GET .../vncwebsocket`: the ticket must be the caller's, for this console and port;
/// answers the port (`permission denied - invalid PVEVNC ticket` otherwise, HTTP 401).
pub(crate) fn websocket(call: &Call<'_>, tx: &Tx<'_>) -> Result<Value, AppError> {
    super::generic::exists(call, tx)?;
    let port = call
        .arg_text("port")
        .and_then(|port| port.parse::<u64>().ok())
        .unwrap_or_default();
    let ticket = call.arg_text("vncticket").unwrap_or_default();
    if !tx.signer.verify_short_lived_ticket(
        PREFIX,
        strip_password(&ticket),
        &secret_data(call.user(), &auth_path(call), Some(port)),
        auth::now(),
    ) {
        return Err(AppError::Unauthorized(format!(
            "permission denied - invalid {PREFIX} ticket\n"
        )));
    }
    Ok(json!({ "port": port }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_vnc_password_is_stripped_like_proxmox() {
        assert_eq!(strip_password("abcdefgh:PVEVNC:1::x"), "PVEVNC:1::x");
        assert_eq!(strip_password("PVEVNC:1::x"), "PVEVNC:1::x");
        assert_eq!(strip_password("abc:PVEVNC:1::x"), "abc:PVEVNC:1::x");
    }
}
