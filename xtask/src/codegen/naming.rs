//! Every name codegen makes up for an operation, an OpenAPI component or a generated Rust type.
//!
//! The names meet in three places that must agree: `route_metadata.json` records each operation's
//! `request_type` and `response_type` ([`super::metadata`]), the OpenAPI `components/schemas` and
//! the shared-types structs are keyed by the [`super::registry::Registry`]'s names, and the SDK's
//! typed layer refers to the shared-types structs by name.
//! So every rule lives here, and both `metadata` and `registry` call it instead of formatting
//! names of their own.
//!
//! The rules:
//!
//! - operationId ([`operation_id`]): the static path words, the item parameter when the path ends
//!   in one, then Proxmox's handler `name`: `GET /nodes/{node}/qemu` (`vmlist`) ->
//!   `nodes_qemu_vmlist`;
//! - an operation's types ([`params_type`], [`response_type`]): `<Op>Params` for its non-path
//!   parameters and `<Op>Response` for the `data` of its reply, where `<Op>` is the operationId in
//!   PascalCase (`NodesQemuVmlistResponse`);
//! - an object schema nested in a named one takes the parent's name plus a suffix:
//!   [`item_type`] (`...Item`) for array items, [`property_type`] (`...<Property>`) for a property,
//!   [`variant_type`] (`...<Type>` or `...Variant<n>`) for a `oneOf` alternative;
//! - a different schema that wants a name already taken gets a number ([`unique`]: `...2`,
//!   `...3`);
//! - the marker type of an indexed family `foo[n]` is [`family_marker`] (`Foo`);
//! - the SDK handle of a path is [`handle_type`] (`/nodes/{node}/qemu` -> `NodesNodeQemu`);
//! - the error reply is the component [`ERROR_COMPONENT`].

/// The OpenAPI component of Proxmox's error reply.
pub const ERROR_COMPONENT: &str = "ProxmoxError";

/// Derives the operationId: the static path words, the item parameter when the path ends in one,
/// then Proxmox's handler `name`, without stutter:
///
/// - the trailing parameter is left out when it only extends or repeats the word before it
///   (`token/{tokenid}` -> `token`, `dns/{dns}` -> `dns`);
/// - leading and trailing words of `name` that repeat the last static segment (or the trailing
///   parameter) are left out (`clone_vm` on `.../clone` -> `vm`, `generate_token` on
///   `.../token/{tokenid}` -> `generate`, `move_vm_disk` on `.../move_disk` -> `vm`), and so is
///   all of `name` when nothing is left;
/// - when every word of `name` after its first (the verb) repeats a word of the path, singular or
///   plural, only the verb stays (`create_gotify_endpoint` on
///   `/cluster/notifications/endpoints/gotify` -> `create`, `add_tfa_entry` stays whole on
///   `/access/tfa/{userid}` as `entry` is not a path word). Otherwise the words inside `name` stay, so no meaning is lost
///   (`get_guests_not_in_backup`).
///
/// `GET /nodes/{node}/qemu` (`vmlist`) -> `nodes_qemu_vmlist`;
/// `GET /nodes/{node}` (`index`) -> `nodes_node_index`; `GET /version` -> `version`;
/// `POST /nodes/{node}/qemu/{vmid}/clone` (`clone_vm`) -> `nodes_qemu_clone_vm`.
/// Two operations that would get the same id make `cargo xtask codegen` fail (checked where
/// `metadata` collects the operations), so the rules never merge two operations silently.
pub fn operation_id(path: &str, name: &str) -> String {
    let segments: Vec<&str> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .collect();
    let mut words: Vec<String> = Vec::with_capacity(segments.len() + 1);
    // The words of the last static segment and of a trailing parameter.
    let mut tail_words: Vec<String> = Vec::new();
    for (index, segment) in segments.iter().enumerate() {
        let is_param = segment.starts_with('{');
        let word = snake_word(segment.trim_matches(|c| c == '{' || c == '}'));
        if !is_param {
            tail_words = word.split('_').map(str::to_owned).collect();
            words.push(word);
        } else if index + 1 == segments.len() {
            tail_words.extend(word.split('_').map(str::to_owned));
            let extends_previous = words.last().is_some_and(|previous| {
                word.len() >= previous.len() && word.starts_with(previous.as_str())
            });
            if !extends_previous {
                words.push(word);
            }
        }
    }
    let name = snake_word(name);
    let mut name_words: &[&str] = &name.split('_').collect::<Vec<_>>();
    let repeats = |word: &str| tail_words.iter().any(|tail| tail == word);
    while let [first, rest @ ..] = name_words
        && repeats(first)
    {
        name_words = rest;
    }
    while let [rest @ .., last] = name_words
        && repeats(last)
    {
        name_words = rest;
    }
    // `create_gotify_endpoint` on `/cluster/notifications/endpoints/gotify`: every word after the
    // verb repeats a word of the path (singular or plural), so the verb alone is the name.
    let path_words: Vec<&str> = words.iter().flat_map(|word| word.split('_')).collect();
    let in_path = |word: &str| {
        path_words.iter().any(|path_word| {
            *path_word == word
                || path_word.strip_suffix('s') == Some(word)
                || word.strip_suffix('s') == Some(*path_word)
        })
    };
    if let [verb, rest @ ..] = name_words
        && !rest.is_empty()
        && rest.iter().all(|word| in_path(word))
    {
        name_words = std::slice::from_ref(verb);
    }
    if !name_words.is_empty() {
        words.push(name_words.join("_"));
    }
    words.join("_")
}

/// `nodes_qemu_vmlist` -> `NodesQemuVmlistParams`: the type of an operation's non-path parameters.
pub fn params_type(operation_id: &str) -> String {
    format!("{}Params", pascal_case(operation_id))
}

/// `nodes_qemu_vmlist` -> `NodesQemuVmlistResponse`: the type of an operation's reply payload.
pub fn response_type(operation_id: &str) -> String {
    format!("{}Response", pascal_case(operation_id))
}

/// The name of the items of an array schema named `parent`.
pub fn item_type(parent: &str) -> String {
    format!("{parent}Item")
}

/// The name of the object in property `property` of the schema named `parent`; the `[n]` of a
/// family is dropped (`ipconfig[n]` -> `...Ipconfig`).
pub fn property_type(parent: &str, property: &str) -> String {
    let base: String = property
        .trim_end_matches("[n]")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{parent}{}", pascal_case(&base))
}

/// The name of the `index`th `oneOf` alternative of the schema named `parent`: after its first
/// instance type when it has one (`...String`, `...PropertyString`), else `...Variant<index>`.
pub fn variant_type(parent: &str, first_instance_type: Option<&str>, index: usize) -> String {
    match first_instance_type {
        Some(first) => format!("{parent}{}", pascal_case(&first.replace('-', "_"))),
        None => format!("{parent}Variant{index}"),
    }
}

/// `name` if it is free, otherwise the first of `name2`, `name3`, … that is.
pub fn unique(name: &str, is_taken: impl Fn(&str) -> bool) -> String {
    let mut candidate = name.to_owned();
    let mut counter = 2;
    while is_taken(&candidate) {
        candidate = format!("{name}{counter}");
        counter += 1;
    }
    candidate
}

/// `net` -> `Net`: the marker type of the `net[n]` family.
pub fn family_marker(prefix: &str) -> String {
    pascal_case(prefix)
}

/// `/nodes/{node}/qemu` -> `NodesNodeQemu`: the SDK handle type of a path.
pub fn handle_type(path: &str) -> String {
    let words: Vec<String> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| snake_word(segment.trim_matches(|c| c == '{' || c == '}')))
        .collect();
    pascal_case(&words.join("_"))
}

/// `nodes_qemu_vmlist` -> `NodesQemuVmlist`.
pub fn pascal_case(snake: &str) -> String {
    snake
        .split('_')
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `Download-URL` -> `download_url`: lower-case ASCII words joined by `_`.
pub fn snake_word(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_readable() {
        assert_eq!(
            operation_id("/nodes/{node}/qemu", "vmlist"),
            "nodes_qemu_vmlist"
        );
        assert_eq!(operation_id("/nodes/{node}", "index"), "nodes_node_index");
        assert_eq!(operation_id("/nodes", "index"), "nodes_index");
        assert_eq!(operation_id("/version", "version"), "version");
        // A name whose words after the verb all repeat the path keeps only the verb; a parameter
        // that repeats its segment is left out; other words stay.
        assert_eq!(
            operation_id(
                "/cluster/notifications/endpoints/gotify",
                "create_gotify_endpoint"
            ),
            "cluster_notifications_endpoints_gotify_create"
        );
        assert_eq!(
            operation_id(
                "/cluster/notifications/endpoints/gotify",
                "get_gotify_endpoints"
            ),
            "cluster_notifications_endpoints_gotify_get"
        );
        assert_eq!(
            operation_id("/cluster/sdn/dns/{dns}", "read"),
            "cluster_sdn_dns_read"
        );
        assert_eq!(
            operation_id("/access/tfa/{userid}", "add_tfa_entry"),
            "access_tfa_userid_add_tfa_entry"
        );
        assert_eq!(
            operation_id(
                "/cluster/backup-info/not-backed-up",
                "get_guests_not_in_backup"
            ),
            "cluster_backup_info_not_backed_up_get_guests_not_in_backup"
        );
        assert_eq!(
            operation_id("/nodes/{node}/qemu/{vmid}/status/start", "vm_start"),
            "nodes_qemu_status_start_vm"
        );
        // No stutter: words of the handler's name that the path has, a parameter that extends
        // the word before it.
        assert_eq!(
            operation_id("/nodes/{node}/qemu/{vmid}/clone", "clone_vm"),
            "nodes_qemu_clone_vm"
        );
        assert_eq!(
            operation_id("/access/users/{userid}/token/{tokenid}", "generate_token"),
            "access_users_token_generate"
        );
        assert_eq!(
            operation_id("/access/users/{userid}/token", "token_index"),
            "access_users_token_index"
        );
        assert_eq!(
            operation_id("/nodes/{node}/qemu/{vmid}/snapshot", "snapshot"),
            "nodes_qemu_snapshot"
        );
        assert_eq!(
            operation_id("/nodes/{node}/qemu/{vmid}/move_disk", "move_vm_disk"),
            "nodes_qemu_move_disk_vm"
        );
        // Only the ends of the handler's name are trimmed, and only against the last segment.
        assert_eq!(
            operation_id(
                "/cluster/backup-info/not-backed-up",
                "get_guests_not_in_backup"
            ),
            "cluster_backup_info_not_backed_up_get_guests_not_in_backup"
        );
        assert_eq!(
            operation_id(
                "/nodes/{node}/storage/{storage}/download-url",
                "download_url"
            ),
            "nodes_storage_download_url"
        );
        assert_eq!(pascal_case("nodes_qemu_vmlist"), "NodesQemuVmlist");
    }

    #[test]
    fn type_names() {
        assert_eq!(
            params_type("nodes_qemu_create_vm"),
            "NodesQemuCreateVmParams"
        );
        assert_eq!(
            response_type("nodes_qemu_vmlist"),
            "NodesQemuVmlistResponse"
        );
        assert_eq!(
            item_type("NodesQemuVmlistResponse"),
            "NodesQemuVmlistResponseItem"
        );
        assert_eq!(property_type("Foo", "ipconfig[n]"), "FooIpconfig");
        assert_eq!(property_type("Foo", "ha-state"), "FooHaState");
        assert_eq!(
            variant_type("Foo", Some("property-string"), 0),
            "FooPropertyString"
        );
        assert_eq!(variant_type("Foo", None, 1), "FooVariant1");
        assert_eq!(
            unique("Foo", |name| ["Foo", "Foo2"].contains(&name)),
            "Foo3"
        );
        assert_eq!(unique("Bar", |_| false), "Bar");
        assert_eq!(family_marker("net"), "Net");
    }

    #[test]
    fn handle_types() {
        assert_eq!(
            handle_type("/nodes/{node}/qemu/{vmid}"),
            "NodesNodeQemuVmid"
        );
        assert_eq!(
            handle_type("/nodes/{node}/storage/{storage}/download-url"),
            "NodesNodeStorageStorageDownloadUrl"
        );
    }
}
