//! The typed layer of `proxmox-sdk`: `crates/sdk/src/generated/`, from the latest tag.
//!
//! The API tree becomes a tree of small handle structs, each holding the client and the concrete
//! path so far: `client.nodes().node("pve1").qemu().vmid(100).status().start()`. Every operation
//! is a method on the handle of its path that returns a [`Call`] (set a timeout, then `.await`):
//!
//! - one verb scheme: `GET` on a collection is `list`, elsewhere `get`; `POST` on a collection is
//!   `create`; `PUT` is `update`; `DELETE` is `delete`; a `POST` elsewhere is `create` when the
//!   handler creates something, else the handler's name without `vm` (`migrate`,
//!   `update_async`) ([`operation_method_name`]);
//! - an action path with one method (`.../status/start`) is a method named after its last segment
//!   on its parent handle (`status().start()`), not a handle of its own;
//! - no method is named like a std trait method ([`STD_METHODS`]): qemu's `clone` action is
//!   `clone_vm` (Proxmox's handler name), so `handle.clone()` stays `Clone::clone`;
//! - one method per operation: it takes `&params` when a parameter is required (the struct has
//!   `new(required...)` and no `Default`), none when all are optional (`Call::params` sets them,
//!   the call is a `Call<T, P>`);
//! - handles own a clone of the `Client` (an `Arc`), so handles and calls are `'static`;
//! - a reply type that is an alias appears resolved (`Vec<...Item>`), so the docs name the type;
//! - the commonly used operations carry a compiled example ([`EXAMPLES`]);
//! - the upload operation (the one with a `tmpfilename` parameter) takes a `crate::UploadFile`
//!   and is sent as `multipart/form-data`;
//! - parameters and replies are the `shared-types` models of the operation
//!   (`<Op>Params`/`<Op>Response`); operations that start a worker task return a parsed
//!   `shared_types::Upid`.
//!
//! `sensitive.rs` lists the paths whose replies carry a secret by the schema: a return schema
//! with a property named in [`SECRET_FIELDS`] at any depth (tickets of `vncproxy`, `termproxy`,
//! `mtunnel` and `/access/ticket`, SPICE and VNC passwords, webhook secrets...). The SDK never
//! quotes a reply body to those paths in an error (`envelope::is_sensitive_path`).
//!
//! Why not progenitor: its output is one flat method per operationId on one client, it leaves the
//! `{"data": ...}` envelope to the caller and returns `Error<()>` for Proxmox errors, and its
//! builder style with expanded `foo[n]` families took 34 minutes to compile here. Our layer is
//! thin because the hand-written core (`RequestBuilder`) already does encoding, the envelope,
//! errors, auth and retries. See `docs/ARCHITECTURE.md`.
//!
//! [`Call`]: ../../crates/sdk/src/typed.rs

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::bail;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use route_metadata::{Method, Operation, PathKind, PathNode, RouteMetadata};

use super::Outputs;
use super::naming::{self, snake_word};
use super::rust::{GROUPS, ident};

/// A parameter that only Proxmox's upload handler has (the REST server fills it with the
/// temporary file of the `multipart/form-data` body): operations with it are generated as uploads.
const UPLOAD_MARKER: &str = "tmpfilename";

/// Where the typed layer goes.
pub const OUT_DIR: &str = "crates/sdk/src/generated";

/// Reply properties that hold a secret: a path whose reply has one of these (at any depth) is
/// listed in `sensitive.rs`. `value` is a secret next to `full-tokenid` (a new API token).
const SECRET_FIELDS: &[&str] = &[
    "CSRFPreventionToken",
    "cipassword",
    "corosync_authkey",
    "encryption-key",
    "password",
    "secret",
    "ticket",
];

/// Renders the typed layer of the SDK.
pub fn render(
    metadata: &RouteMetadata,
    aliases: &BTreeMap<String, String>,
) -> anyhow::Result<Outputs> {
    let operations: BTreeMap<(&str, Method), &Operation> = metadata
        .operations
        .iter()
        .map(|operation| ((operation.path.as_str(), operation.method), operation))
        .collect();
    let nodes: BTreeMap<&str, &PathNode> = metadata
        .paths
        .iter()
        .map(|node| (node.path.as_str(), node))
        .collect();

    let mut bodies: BTreeMap<String, Vec<TokenStream>> = BTreeMap::new();
    let mut struct_names = BTreeSet::new();
    for node in &metadata.paths {
        if is_inlined_action(node) {
            continue;
        }
        let name = naming::handle_type(&node.path);
        if !struct_names.insert(name.clone()) {
            bail!(
                "two paths map to the handle name {name} (latest is {})",
                node.path
            );
        }
        let handle = format_ident!("{}", name);
        let mut methods = Vec::new();
        let mut method_names = BTreeSet::new();
        let mut claim = |method_name: &str, path: &str| -> anyhow::Result<()> {
            if !method_names.insert(method_name.to_owned()) {
                bail!("{path}: two members of handle {name} are called `{method_name}`");
            }
            Ok(())
        };

        for method in &node.methods {
            let Some(operation) = operations.get(&(node.path.as_str(), *method)) else {
                continue;
            };
            let method_name = operation_method_name(node, operation);
            claim(&method_name, &node.path)?;
            methods.push(operation_method(operation, &method_name, None, aliases));
        }

        for child_path in &node.children {
            let Some(child) = nodes.get(child_path.as_str()) else {
                continue;
            };
            let segment = child_path.rsplit('/').next().unwrap_or_default();
            if is_inlined_action(child) {
                let method = child.methods[0];
                let Some(operation) = operations.get(&(child.path.as_str(), method)) else {
                    continue;
                };
                let method_name = action_method_name(segment, operation);
                claim(&method_name, &child.path)?;
                methods.push(operation_method(
                    operation,
                    &method_name,
                    Some(segment),
                    aliases,
                ));
                continue;
            }
            let child_ident = format_ident!("{}", naming::handle_type(child_path));
            if let Some(param) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let accessor = not_std(snake(param));
                claim(&accessor, child_path)?;
                let accessor = ident(&accessor);
                let param_ident = ident(&snake(param));
                let doc = doc_attrs(&format!("`{child_path}`: the member with this `{param}`."));
                methods.push(quote! {
                    #doc
                    pub fn #accessor(&self, #param_ident: impl ::std::fmt::Display) -> #child_ident {
                        #child_ident {
                            client: self.client.clone(),
                            path: crate::typed::child_path(&self.path, &#param_ident),
                        }
                    }
                });
            } else {
                let accessor = not_std(snake(segment));
                claim(&accessor, child_path)?;
                let accessor = ident(&accessor);
                let doc = doc_attrs(&format!("`{child_path}`"));
                methods.push(quote! {
                    #doc
                    pub fn #accessor(&self) -> #child_ident {
                        #child_ident {
                            client: self.client.clone(),
                            path: ::std::format!("{}/{}", self.path, #segment),
                        }
                    }
                });
            }
        }

        let doc = doc_attrs(&format!(
            "Handle of `{}`{}.",
            node.path,
            match node.kind {
                PathKind::Collection => " (a collection)",
                PathKind::Item => " (one member of a collection)",
                _ => "",
            }
        ));
        let body = bodies.entry(node.group.clone()).or_default();
        body.push(quote! {
            #doc
            #[derive(Debug, Clone)]
            pub struct #handle {
                client: crate::Client,
                path: ::std::string::String,
            }
            impl #handle {
                /// The concrete API path of this handle (below `/api2/json`).
                pub fn path(&self) -> &str {
                    &self.path
                }
                #(#methods)*
            }
        });
        if node.path.matches('/').count() == 1 {
            let accessor = ident(&snake(node.path.trim_start_matches('/')));
            let root = &node.path;
            let doc = doc_attrs(&format!(
                "`{root}`: the entry point of the typed API for this group."
            ));
            body.push(quote! {
                impl crate::Client {
                    #doc
                    pub fn #accessor(&self) -> #handle {
                        #handle { client: self.clone(), path: ::std::string::String::from(#root) }
                    }
                }
            });
        }
    }

    let stamp = format!(
        " {} (tag {}, schema SHA-256 {}).",
        super::STAMP,
        metadata.tag,
        metadata.schema_sha256
    );
    let mut outputs = Outputs::new();
    let mut module_lines = Vec::new();
    for (group, items) in &bodies {
        if !GROUPS.contains(&group.as_str()) {
            bail!(
                "path group `{group}` has no cargo feature: add it to GROUPS in xtask/src/codegen/rust.rs"
            );
        }
        let doc = format!(" Typed API of the `/{group}` operations.");
        let file = quote! {
            #![doc = #doc]
            #![doc = ""]
            #![doc = #stamp]
            #(#items)*
        };
        outputs.insert(
            PathBuf::from(OUT_DIR).join(format!("{group}.rs")),
            super::rust::format_file(file, &format!("{group}.rs"))?,
        );
        let module = format_ident!("{}", group);
        let feature = group.as_str();
        module_lines.push(quote! { #[cfg(feature = #feature)] #[rustfmt::skip] pub mod #module; });
    }
    let sensitive: BTreeSet<&str> = metadata
        .operations
        .iter()
        .filter(|operation| carries_secret(&operation.returns))
        .map(|operation| operation.path.as_str())
        .collect();
    let sensitive = sensitive.into_iter();
    let sensitive_file = quote! {
        #![doc = " The paths whose replies carry a secret by the schema (a property named `ticket`,"]
        #![doc = " `password`, `secret`... at any depth): the SDK quotes no reply body to them in an error."]
        #![doc = ""]
        #![doc = #stamp]
        #[doc = " Path templates; a `{param}` segment matches any one segment."]
        pub(crate) const SENSITIVE_PATHS: &[&str] = &[#(#sensitive),*];
    };
    outputs.insert(
        PathBuf::from(OUT_DIR).join("sensitive.rs"),
        super::rust::format_file(sensitive_file, "sensitive.rs")?,
    );
    module_lines.push(quote! { #[rustfmt::skip] pub(crate) mod sensitive; });
    let mod_file = quote! {
        #![doc = " The typed API, generated from the Proxmox VE API schema: one module per path group,"]
        #![doc = " each behind the cargo feature of the same name."]
        #![doc = ""]
        #![doc = " Start at a group's entry point on [`Client`](crate::Client), e.g."]
        #![doc = " `client.nodes().node(\"pve1\").qemu().list().await`."]
        #![doc = ""]
        #![doc = #stamp]
        #![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links, rustdoc::bare_urls, rustdoc::invalid_rust_codeblocks)]
        #![allow(clippy::doc_lazy_continuation, clippy::doc_overindented_list_items, clippy::too_long_first_doc_paragraph)]
        #(#module_lines)*
    };
    outputs.insert(
        PathBuf::from(OUT_DIR).join("mod.rs"),
        super::rust::format_file(mod_file, "mod.rs")?,
    );
    Ok(outputs)
}

/// Whether a reply schema has a property that holds a secret ([`SECRET_FIELDS`]) at any depth.
fn carries_secret(schema: &route_metadata::Schema) -> bool {
    let properties = schema.properties.iter().flatten();
    let by_name = schema.properties.as_ref().is_some_and(|props| {
        props
            .keys()
            .any(|key| SECRET_FIELDS.contains(&key.as_str()))
            || (props.contains_key("value") && props.contains_key("full-tokenid"))
    });
    by_name
        || properties
            .into_iter()
            .any(|(_, property)| carries_secret(property))
        || schema.items.as_deref().is_some_and(carries_secret)
        || schema.one_of.iter().flatten().any(carries_secret)
}

/// An action path with a single method is a method of its parent, not a handle.
fn is_inlined_action(node: &PathNode) -> bool {
    node.kind == PathKind::Action && node.methods.len() == 1 && node.path.matches('/').count() > 1
}

/// The method of an operation on the handle of its own path: `GET` on a collection is `list`,
/// elsewhere `get`; `POST` on a collection is `create`; `PUT` is `update`; `DELETE` is `delete`.
/// `POST` elsewhere is `create` when Proxmox's handler creates something (its name starts with
/// one of [`CREATING`] or ends in `create`), else the handler's name without the word `vm`
/// (`migrate_vm` -> `migrate`, `update_vm_async` -> `update_async`), or the name that
/// [`METHOD_NAMES`] gives.
fn operation_method_name(node: &PathNode, operation: &Operation) -> String {
    if let Some((_, _, name)) = METHOD_NAMES
        .iter()
        .find(|(path, method, _)| *path == node.path && *method == operation.method)
    {
        return (*name).to_owned();
    }
    let name = match (operation.method, node.kind) {
        (Method::Get, PathKind::Collection) => "list".to_owned(),
        (Method::Get, _) => "get".to_owned(),
        (Method::Post, PathKind::Collection) => "create".to_owned(),
        (Method::Post, _) => {
            let handler = snake_word(&operation.name);
            if CREATING.iter().any(|prefix| handler.starts_with(prefix))
                || handler.ends_with("create")
            {
                "create".to_owned()
            } else {
                let words: Vec<&str> = handler.split('_').filter(|word| *word != "vm").collect();
                words.join("_")
            }
        }
        (Method::Put, _) => "update".to_owned(),
        (Method::Delete, _) => "delete".to_owned(),
    };
    not_std(name)
}

/// The method of an action path with one method (`.../status/start`) on its parent handle: the
/// action's own name (`start`), or Proxmox's handler name when the segment is the name of a std
/// trait method (`clone` -> `clone_vm`).
fn action_method_name(segment: &str, operation: &Operation) -> String {
    let name = snake(segment);
    if !STD_METHODS.contains(&name.as_str()) {
        return name;
    }
    not_std(snake_word(&operation.name))
}

/// `name`, or `name_` when it is the name of a std trait method ([`STD_METHODS`]), so that no
/// generated method shadows one (`handle.clone()` stays `Clone::clone`).
fn not_std(name: String) -> String {
    if STD_METHODS.contains(&name.as_str()) {
        format!("{name}_")
    } else {
        name
    }
}

/// Handler-name prefixes of a `POST` that creates something.
const CREATING: &[&str] = &["create", "add", "new", "generate", "register"];

/// Method names the rules of [`operation_method_name`] would make collide, chosen by hand.
/// `POST /nodes/{node}/subscription` (handler `update`: ask the shop server again) would be
/// `update` like the `PUT` (handler `set`: set the key).
const METHOD_NAMES: &[(&str, Method, &str)] =
    &[("/nodes/{node}/subscription", Method::Post, "refresh")];

/// Methods of the std traits (and of the traits in the prelude) that a generated method must not
/// be named like: calling `vm.clone()` must clone the handle, not a VM.
pub const STD_METHODS: &[&str] = &[
    "as_mut",
    "as_ref",
    "borrow",
    "borrow_mut",
    "clamp",
    "clone",
    "clone_from",
    "cmp",
    "default",
    "deref",
    "deref_mut",
    "drop",
    "eq",
    "extend",
    "fmt",
    "from",
    "from_iter",
    "from_str",
    "ge",
    "gt",
    "hash",
    "index",
    "index_mut",
    "into",
    "into_future",
    "into_iter",
    "le",
    "lt",
    "max",
    "min",
    "ne",
    "next",
    "partial_cmp",
    "to_owned",
    "to_string",
    "try_from",
    "try_into",
    "type_id",
];

/// The one method of an operation: `name()` when it has no parameters or only optional ones
/// (set with `Call::params`), `name(&params)` when one is required; an upload also takes the
/// file.
fn operation_method(
    operation: &Operation,
    method_name: &str,
    inlined_segment: Option<&str>,
    aliases: &BTreeMap<String, String>,
) -> TokenStream {
    let path = match inlined_segment {
        Some(segment) => quote! { ::std::format!("{}/{}", self.path, #segment) },
        None => quote! { self.path.clone() },
    };
    let group = format_ident!("{}", operation.group);
    // Proxmox sends some bare numbers as strings (`GET /cluster/nextid` -> "102"): those are
    // decoded as `LenientValue<number>` (the `W` of `Call`).
    let lenient = (!operation.worker_task)
        .then(|| bare_number(&operation.returns))
        .flatten();
    let response = if operation.worker_task {
        quote! { shared_types::Upid }
    } else if let Some(number) = &lenient {
        quote! { #number }
    } else if let Some(target) = aliases.get(&operation.response_type) {
        // The type the alias stands for, so that the docs show it without a click.
        target.parse().unwrap_or_else(|_| {
            let response = format_ident!("{}", operation.response_type);
            quote! { shared_types::#group::#response }
        })
    } else {
        let response = format_ident!("{}", operation.response_type);
        quote! { shared_types::#group::#response }
    };
    let http_method = format_ident!("{}", operation.method.as_str());
    let mut doc = format!("`{} {}`", operation.method.as_str(), operation.path);
    if let Some(description) = &operation.description {
        doc.push_str(": ");
        doc.push_str(description.trim());
    }
    if operation.worker_task {
        doc.push_str(
            "\n\nStarts a worker task: `.wait(timeout)` on the call waits for it to end, `.task()` \
             returns its `Task`.",
        );
    }
    let is_upload = operation.parameters.contains_key(UPLOAD_MARKER);
    if is_upload {
        doc.push_str(
            "\n\nA `multipart/form-data` upload: the parameters go as text parts and `file` as \
             the `filename` part, under the file's own name (`params.filename` is not sent).",
        );
    }
    if let Some(example) = example(operation, inlined_segment) {
        doc.push_str(&example);
    }
    let name = ident(method_name);
    // The operationId and template name the request's span (`proxmox_sdk` `telemetry`).
    let operation_id = operation.operation_id.as_str();
    let template = operation.path.as_str();
    let new_request = quote! {
        self.client
            .request(::reqwest::Method::#http_method, #path)
            .operation(#operation_id, #template)
    };
    let call_type = |params: Option<TokenStream>| match (&lenient, params) {
        (None, None) => quote! { crate::Call<#response> },
        (None, Some(params)) => quote! { crate::Call<#response, #params> },
        (Some(number), params) => {
            let params = params.unwrap_or_else(|| quote! { crate::NoParams });
            quote! { crate::Call<#response, #params, shared_types::lenient::LenientValue<#number>> }
        }
    };
    let Some(request_type) = &operation.request_type else {
        let doc = doc_attrs(&doc);
        let call = call_type(None);
        return quote! {
            #doc
            pub fn #name(&self) -> #call {
                crate::Call::new(#new_request)
            }
        };
    };
    let request = format_ident!("{}", request_type);
    let all_optional = operation
        .parameters
        .iter()
        .filter(|(key, _)| !operation.path_params.contains(key))
        .all(|(_, schema)| schema.optional || schema.family.is_some());
    let call = call_type(None);
    if is_upload {
        let doc = doc_attrs(&doc);
        return quote! {
            #doc
            pub fn #name(
                &self,
                params: &shared_types::#group::#request,
                file: crate::UploadFile,
            ) -> #call {
                crate::Call::new(
                    #new_request
                        .params(params)
                        .upload(file),
                )
            }
        };
    }
    if all_optional {
        doc.push_str(&format!(
            "\n\nEvery parameter is optional: set them with `.params(&{request_type} {{ .. }})` on \
             the call."
        ));
        let doc = doc_attrs(&doc);
        let call = call_type(Some(quote! { shared_types::#group::#request }));
        quote! {
            #doc
            pub fn #name(&self) -> #call {
                crate::Call::new(#new_request)
            }
        }
    } else {
        let doc = doc_attrs(&doc);
        quote! {
            #doc
            pub fn #name(&self, params: &shared_types::#group::#request) -> #call {
                crate::Call::new(
                    #new_request
                        .params(params),
                )
            }
        }
    }
}

/// Compiled examples (`no_run` doc tests) on the commonly used operations: path, method, code.
/// `{handle}` in the code stands for the handle the method is on, reached from `client` with
/// sample path parameters ([`SAMPLE_PARAMS`]): `client.nodes().node("pve1").qemu()`.
const EXAMPLES: &[(&str, Method, &str)] = &[
    (
        "/version",
        Method::Get,
        r#"let version = {handle}.get().await?;
println!("Proxmox VE {}", version.version);"#,
    ),
    (
        "/nodes",
        Method::Get,
        r#"for node in {handle}.list().await? {
    println!("{} {}", node.node, node.status);
}"#,
    ),
    (
        "/nodes/{node}/status",
        Method::Get,
        r#"let status = {handle}.get().await?;
println!("{} load {:?}", status.pveversion, status.loadavg);"#,
    ),
    (
        "/cluster/resources",
        Method::Get,
        r#"use proxmox_sdk::shared_types::cluster::{ClusterResourcesParams, ClusterResourcesParamsType};
let guests = {handle}
    .get()
    .params(&ClusterResourcesParams { r#type: Some(ClusterResourcesParamsType::Vm) })
    .await?;
for guest in guests {
    println!("{} on {:?}: {:?}", guest.id, guest.node, guest.status);
}"#,
    ),
    (
        "/nodes/{node}/qemu",
        Method::Get,
        r#"for vm in {handle}.list().await? {
    println!("{} {:?} {}", vm.vmid, vm.name, vm.status);
}"#,
    ),
    (
        "/nodes/{node}/qemu",
        Method::Post,
        r#"use proxmox_sdk::shared_types::nodes::{
    MemoryConfig, NodesQemuCreateVmParams, QemuNetConfig, QemuNetModel, ScsiConfig,
};
use std::time::Duration;
// Required parameters go through `new`, optional ones are set beside it.
let params = NodesQemuCreateVmParams {
    name: Some("web".to_owned()),
    cores: Some(2),
    memory: Some(MemoryConfig::new(2048)),
    net: [(0, QemuNetConfig {
        bridge: Some("vmbr0".to_owned()),
        ..QemuNetConfig::new(QemuNetModel::Virtio)
    })].into(),
    scsi: [(0, ScsiConfig::new("local-lvm:32"))].into(),
    ..NodesQemuCreateVmParams::new(120)
};
{handle}.create(&params).wait(Duration::from_secs(300)).await?;"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/config",
        Method::Get,
        r#"let config = {handle}.get().await?;
if let Some(nic) = config.net.get(0) {
    println!("net0: {} on {:?}", nic.model, nic.bridge);
}"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/config",
        Method::Put,
        r#"use proxmox_sdk::shared_types::nodes::NodesQemuConfigUpdateVmParams;
let config = {handle}.get().await?;
// With the digest, the update fails if someone changed the config since it was read.
{handle}
    .update()
    .params(&NodesQemuConfigUpdateVmParams {
        cores: Some(4),
        digest: Some(config.digest),
        ..Default::default()
    })
    .await?;"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/status/current",
        Method::Get,
        r#"let current = {handle}.get().await?;
println!("{} {} uptime {:?}", current.vmid, current.status, current.uptime);"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/status/start",
        Method::Post,
        r#"use proxmox_sdk::TaskOutcome;
use std::time::Duration;
match {handle}.start().wait(Duration::from_secs(120)).await? {
    TaskOutcome::Ok => println!("started"),
    outcome => println!("started: {outcome}"),
}"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/status/shutdown",
        Method::Post,
        r#"use proxmox_sdk::shared_types::nodes::NodesQemuStatusShutdownVmParams;
use std::time::Duration;
{handle}
    .shutdown()
    .params(&NodesQemuStatusShutdownVmParams { timeout: Some(60), ..Default::default() })
    .wait(Duration::from_secs(90))
    .await?;"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/snapshot",
        Method::Post,
        r#"use proxmox_sdk::shared_types::nodes::NodesQemuSnapshotParams;
use std::time::Duration;
let params = NodesQemuSnapshotParams {
    description: Some("before the upgrade".to_owned()),
    ..NodesQemuSnapshotParams::new("before_upgrade")
};
{handle}.create(&params).wait(Duration::from_secs(300)).await?;"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/snapshot",
        Method::Get,
        r#"for snapshot in {handle}.list().await? {
    println!("{} {:?}", snapshot.name, snapshot.description);
}"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/clone",
        Method::Post,
        r#"use proxmox_sdk::shared_types::PveBool;
use proxmox_sdk::shared_types::nodes::NodesQemuCloneVmParams;
use std::time::Duration;
let params = NodesQemuCloneVmParams {
    name: Some("web-clone".to_owned()),
    full: Some(PveBool(true)),
    ..NodesQemuCloneVmParams::new(121)
};
// `clone_vm`, not `clone`: `handle.clone()` stays `Clone::clone`.
{handle}.clone_vm(&params).wait(Duration::from_secs(600)).await?;"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}/migrate",
        Method::Post,
        r#"use proxmox_sdk::shared_types::PveBool;
use proxmox_sdk::shared_types::nodes::NodesQemuMigrateVmParams;
use std::time::Duration;
let params = NodesQemuMigrateVmParams {
    online: Some(PveBool(true)),
    ..NodesQemuMigrateVmParams::new("pve2")
};
let task = {handle}.migrate(&params).task().await?;
let mut log = task.follow();
while let Some(line) = log.next().await {
    println!("{}", line?.t);
}
task.wait(Duration::from_secs(60)).await?;"#,
    ),
    (
        "/nodes/{node}/qemu/{vmid}",
        Method::Delete,
        r#"use std::time::Duration;
{handle}.delete().wait(Duration::from_secs(300)).await?;"#,
    ),
    (
        "/nodes/{node}/lxc",
        Method::Get,
        r#"for ct in {handle}.list().await? {
    println!("{} {:?} {}", ct.vmid, ct.name, ct.status);
}"#,
    ),
    (
        "/nodes/{node}/lxc",
        Method::Post,
        r#"use proxmox_sdk::shared_types::nodes::{NodesLxcCreateVmParams, RootfsConfig};
use std::time::Duration;
let params = NodesLxcCreateVmParams {
    hostname: Some("ct1".to_owned()),
    memory: Some(512),
    rootfs: Some(RootfsConfig::new("local-lvm:8")),
    ..NodesLxcCreateVmParams::new("local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst", 200)
};
{handle}.create(&params).wait(Duration::from_secs(300)).await?;"#,
    ),
    (
        "/nodes/{node}/lxc/{vmid}/config",
        Method::Get,
        r#"let config = {handle}.get().await?;
println!("{:?} {:?}", config.hostname, config.rootfs);"#,
    ),
    (
        "/nodes/{node}/lxc/{vmid}/status/start",
        Method::Post,
        r#"use std::time::Duration;
{handle}.start().wait(Duration::from_secs(120)).await?;"#,
    ),
    (
        "/nodes/{node}/storage/{storage}/content",
        Method::Get,
        r#"use proxmox_sdk::shared_types::nodes::NodesStorageContentIndexParams;
let isos = {handle}
    .list()
    .params(&NodesStorageContentIndexParams { content: Some("iso".to_owned()), ..Default::default() })
    .await?;
for iso in isos {
    println!("{} {:?} bytes", iso.volid, iso.size);
}"#,
    ),
    (
        "/nodes/{node}/tasks",
        Method::Get,
        r#"use proxmox_sdk::shared_types::nodes::NodesTasksNodeParams;
// Every task of VM 100, page by page.
let mut tasks = {handle}
    .list()
    .params(&NodesTasksNodeParams { vmid: Some(100), ..Default::default() })
    .paginate(100);
while let Some(task) = tasks.next().await {
    let task = task?;
    println!("{} {:?}", task.upid, task.status);
}"#,
    ),
    (
        "/cluster/tasks",
        Method::Get,
        r#"for task in {handle}.get().await? {
    println!("{}", task.upid);
}"#,
    ),
    (
        "/access/users",
        Method::Get,
        r#"for user in {handle}.list().await? {
    println!("{} {:?}", user.userid, user.email);
}"#,
    ),
    (
        "/access/users",
        Method::Post,
        r#"use proxmox_sdk::shared_types::access::AccessUsersCreateParams;
let params = AccessUsersCreateParams {
    email: Some("alice@example.com".to_owned()),
    ..AccessUsersCreateParams::new("alice@pve")
};
{handle}.create(&params).await?;"#,
    ),
    (
        "/access/users/{userid}/token/{tokenid}",
        Method::Post,
        r#"use proxmox_sdk::shared_types::PveBool;
use proxmox_sdk::shared_types::access::AccessUsersTokenGenerateParams;
let token = {handle}
    .create()
    .params(&AccessUsersTokenGenerateParams { privsep: Some(PveBool(false)), ..Default::default() })
    .await?;
// The secret is shown once: keep it now.
let ci = proxmox_sdk::Client::builder()
    .base_url("https://pve.example.com:8006")
    .token(token.full_tokenid, token.value)
    .build()?;
# let _ = ci;"#,
    ),
];

/// Sample values of path parameters in the examples.
const SAMPLE_PARAMS: &[(&str, &str)] = &[
    ("node", "\"pve1\""),
    ("vmid", "100"),
    ("storage", "\"local\""),
    ("snapname", "\"before_upgrade\""),
    ("userid", "\"alice@pve\""),
    ("tokenid", "\"ci\""),
];

/// The `# Example` section of an operation's method, if [`EXAMPLES`] has one.
fn example(operation: &Operation, inlined_segment: Option<&str>) -> Option<String> {
    let (_, _, code) = EXAMPLES
        .iter()
        .find(|(path, method, _)| *path == operation.path && *method == operation.method)?;
    let handle_path = match inlined_segment {
        Some(_) => operation
            .path
            .rsplit_once('/')
            .map_or("", |(parent, _)| parent),
        None => operation.path.as_str(),
    };
    let mut handle = "client".to_owned();
    for segment in handle_path.split('/').filter(|segment| !segment.is_empty()) {
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => {
                let value = SAMPLE_PARAMS
                    .iter()
                    .find(|(name, _)| *name == param)
                    .map_or("\"x\"", |(_, value)| value);
                handle.push_str(&format!(".{}({value})", not_std(snake(param))));
            }
            None => handle.push_str(&format!(".{}()", not_std(snake(segment)))),
        }
    }
    let code = code.replace("{handle}", &handle);
    let mut text = String::from(
        "\n\n# Example\n\n```no_run\n# async fn example(client: &proxmox_sdk::Client) -> Result<(), Box<dyn std::error::Error>> {\n",
    );
    text.push_str(&code);
    text.push_str("\n# Ok(()) }\n```");
    Some(text)
}

/// The Rust type of a reply that is a bare number, decoded leniently.
fn bare_number(returns: &route_metadata::Schema) -> Option<TokenStream> {
    match returns.kind() {
        route_metadata::SchemaType::Integer => Some(quote! { i64 }),
        route_metadata::SchemaType::Number => Some(quote! { f64 }),
        _ => None,
    }
}

/// A path segment or parameter as a snake-case Rust name (`download-url` -> `download_url`).
fn snake(text: &str) -> String {
    let word = snake_word(text);
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{word}")
    } else {
        word
    }
}

fn doc_attrs(text: &str) -> TokenStream {
    super::rust::doc_attrs(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn member_names() {
        assert_eq!(snake("download-url"), "download_url");
        assert_eq!(ident("move").to_string(), "r#move");
        assert_eq!(not_std("clone".to_owned()), "clone_");
        assert_eq!(not_std("start".to_owned()), "start");
    }

    /// The route metadata of every generated tag.
    fn tags() -> Vec<RouteMetadata> {
        let dir = super::super::workspace_root().join(super::super::GENERATED);
        let mut tags: Vec<RouteMetadata> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path().join("route_metadata.json"))
            .filter(|path| path.exists())
            .map(|path| RouteMetadata::from_json(&std::fs::read_to_string(path).unwrap()).unwrap())
            .collect();
        tags.sort_by(|a, b| a.tag.cmp(&b.tag));
        assert!(!tags.is_empty());
        tags
    }

    fn method_of(metadata: &RouteMetadata, path: &str, method: Method) -> String {
        let node = metadata
            .paths
            .iter()
            .find(|node| node.path == path)
            .unwrap();
        let operation = metadata
            .operations
            .iter()
            .find(|operation| operation.path == path && operation.method == method)
            .unwrap();
        if is_inlined_action(node) {
            action_method_name(path.rsplit('/').next().unwrap(), operation)
        } else {
            operation_method_name(node, operation)
        }
    }

    #[test]
    fn the_verb_scheme() {
        for metadata in tags() {
            let expect = [
                ("/nodes/{node}/qemu", Method::Get, "list"),
                ("/nodes/{node}/qemu", Method::Post, "create"),
                ("/nodes/{node}/qemu/{vmid}/config", Method::Get, "get"),
                ("/nodes/{node}/qemu/{vmid}/config", Method::Put, "update"),
                (
                    "/nodes/{node}/qemu/{vmid}/config",
                    Method::Post,
                    "update_async",
                ),
                ("/nodes/{node}/qemu/{vmid}", Method::Delete, "delete"),
                (
                    "/nodes/{node}/qemu/{vmid}/status/start",
                    Method::Post,
                    "start",
                ),
                ("/nodes/{node}/qemu/{vmid}/migrate", Method::Post, "migrate"),
                // `clone` would shadow `Clone::clone`.
                ("/nodes/{node}/qemu/{vmid}/clone", Method::Post, "clone_vm"),
                ("/nodes/{node}/lxc/{vmid}/clone", Method::Post, "clone_vm"),
                (
                    "/access/users/{userid}/token/{tokenid}",
                    Method::Post,
                    "create",
                ),
                ("/nodes/{node}/subscription", Method::Post, "refresh"),
            ];
            for (path, method, name) in expect {
                assert_eq!(
                    method_of(&metadata, path, method),
                    name,
                    "{} {path}",
                    metadata.tag
                );
            }
        }
    }

    #[test]
    fn every_example_is_on_an_operation() {
        let latest = tags().into_iter().max_by(|a, b| {
            let version =
                |tag: &str| -> Vec<u32> { tag.split('.').filter_map(|n| n.parse().ok()).collect() };
            version(&a.tag).cmp(&version(&b.tag))
        });
        let latest = latest.unwrap();
        for (path, method, _) in EXAMPLES {
            let operation = latest
                .operations
                .iter()
                .find(|operation| operation.path == *path && operation.method == *method)
                .unwrap_or_else(|| {
                    panic!("no operation {} {path} for its example", method.as_str())
                });
            let inlined = latest
                .paths
                .iter()
                .find(|node| node.path == *path)
                .is_some_and(is_inlined_action);
            let segment = inlined.then(|| path.rsplit('/').next().unwrap_or_default());
            let text = example(operation, segment).unwrap();
            assert!(!text.contains("{handle}"), "{text}");
            assert!(
                text.contains("client.") && !text.contains("(\"x\")"),
                "{text}"
            );
        }
    }

    /// Every tag renders (no two members of a handle share a name), twice the same, with no
    /// method named like a std trait method and no `x`/`x_with` pair.
    #[test]
    fn generated_names_are_deterministic_and_collision_free() {
        for metadata in tags() {
            let first = render(&metadata, &BTreeMap::new()).unwrap();
            let second = render(&metadata, &BTreeMap::new()).unwrap();
            assert!(
                first == second,
                "{}: rendering is deterministic",
                metadata.tag
            );
            for text in first.values() {
                for line in text.lines() {
                    let Some(rest) = line.trim_start().strip_prefix("pub fn ") else {
                        continue;
                    };
                    let name = rest.split(['(', '<']).next().unwrap_or_default();
                    assert!(
                        !STD_METHODS.contains(&name),
                        "{}: `{name}` shadows a std method",
                        metadata.tag
                    );
                    assert!(!name.ends_with("_with"), "{}: `{name}`", metadata.tag);
                }
            }
        }
    }
}
