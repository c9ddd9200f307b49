//! THE route table: which handler answers each (path template, method).
//!
//! Every operation of a schema tag is answered: those listed in [`table`] by their handler,
//! every other one by the generic handlers ([`super::generic`]), which derive the semantics from
//! the route metadata's topology (collection, item, action, singleton).
//!
//! # Adding a handler
//!
//! Write the function in the module of its Proxmox domain (`fn(&Call, &Tx) -> Result<Value,
//! AppError>` for a read, `-> Result<Plan, AppError>` for a write; the `Guest*` variants also get
//! the addressed [`Guest`]) and add one line to [`table`]. The table is resolved against the tag's
//! metadata once, when the server starts ([`Routes::new`]); a test checks that every template
//! listed here exists in every embedded tag, so a new tag cannot silently drop a handler.

use route_metadata::Method;
use serde_json::Value;

use super::guest::Guest;
use super::{Call, Plan, Reply, Tx};
use super::{
    access, agent, backup, console, cpu_models, disks, generic, guests, nodes, pools, sdn_routing,
    snapshots, storage, tasks,
};
use crate::api::Api;
use crate::error::AppError;

/// A read handler.
pub(crate) type ReadFn = fn(&Call<'_>, &Tx<'_>) -> Result<Value, AppError>;
/// A read handler that may answer JSON text it wrote itself ([`Reply::Json`]), already
/// filtered for the caller; a [`Reply::Value`] is filtered as a [`ReadFn`]'s reply is.
pub(crate) type ReadJsonFn = fn(&Call<'_>, &Tx<'_>) -> Result<Reply, AppError>;
/// A write handler: plans the changes.
pub(crate) type WriteFn = fn(&Call<'_>, &Tx<'_>) -> Result<Plan, AppError>;
/// A read handler for a path below one guest.
pub(crate) type GuestReadFn = fn(&Call<'_>, &Tx<'_>, &Guest) -> Result<Value, AppError>;
/// A write handler for a path below one guest.
pub(crate) type GuestWriteFn = fn(&Call<'_>, &Tx<'_>, &Guest) -> Result<Plan, AppError>;

/// What answers one (template, method).
#[derive(Clone, Copy)]
pub(crate) enum Handler {
    /// Answers from a read of the state.
    Read(ReadFn),
    /// Answers from a read, as JSON text where it can ([`ReadJsonFn`]).
    ReadJson(ReadJsonFn),
    /// Plans a write.
    Write(WriteFn),
    /// Answers from a read, for the guest of the path.
    GuestRead(GuestReadFn),
    /// Plans a write, for the guest of the path.
    GuestWrite(GuestWriteFn),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Handler::Read(_) => "Read",
            Handler::ReadJson(_) => "ReadJson",
            Handler::Write(_) => "Write",
            Handler::GuestRead(_) => "GuestRead",
            Handler::GuestWrite(_) => "GuestWrite",
        })
    }
}

/// One line of the route table.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The method.
    pub(crate) method: Method,
    /// The path template, as in the route metadata.
    pub(crate) template: String,
    /// The handler.
    pub(crate) handler: Handler,
}

/// Handled operations that older tags' schemas lack (their schema does not list them, so the
/// mock does not serve them there): `POST /access/vncticket` is in 9.1 and later, the rest in
/// 9.2 and later.
#[cfg(test)]
const NOT_IN_EVERY_TAG: &[(Method, &str)] = &[
    (Method::Post, "/access/vncticket"),
    (Method::Get, CPU_MODELS),
    (Method::Post, CPU_MODELS),
    (Method::Get, CPU_MODEL),
    (Method::Put, CPU_MODEL),
    (Method::Delete, CPU_MODEL),
    (Method::Get, PREFIX_ENTRIES),
    (Method::Post, PREFIX_ENTRIES),
    (Method::Get, PREFIX_ENTRY),
    (Method::Put, PREFIX_ENTRY),
    (Method::Delete, PREFIX_ENTRY),
    (Method::Get, "/cluster/sdn/route-maps"),
    (Method::Get, ROUTE_MAP_ENTRIES),
    (Method::Post, ROUTE_MAP_ENTRIES),
    (Method::Get, ROUTE_MAP),
    (Method::Get, ROUTE_MAP_ENTRY),
    (Method::Put, ROUTE_MAP_ENTRY),
    (Method::Delete, ROUTE_MAP_ENTRY),
    (Method::Get, STORAGE_IDENTITY),
];

/// Templates new in 9.2.
const CPU_MODELS: &str = "/cluster/qemu/custom-cpu-models";
const CPU_MODEL: &str = "/cluster/qemu/custom-cpu-models/{cputype}";
const PREFIX_ENTRIES: &str = "/cluster/sdn/prefix-lists/{id}/entries";
const PREFIX_ENTRY: &str = "/cluster/sdn/prefix-lists/{id}/entries/{url_seq}";
const ROUTE_MAP_ENTRIES: &str = "/cluster/sdn/route-maps/entries";
const ROUTE_MAP: &str = "/cluster/sdn/route-maps/entries/{route-map-id}";
const ROUTE_MAP_ENTRY: &str = "/cluster/sdn/route-maps/entries/{route-map-id}/entry/{order}";
const STORAGE_IDENTITY: &str = "/nodes/{node}/storage/{storage}/identity";

/// The guest item templates; guest routes are listed once per kind.
const QEMU: &str = "/nodes/{node}/qemu/{vmid}";
const LXC: &str = "/nodes/{node}/lxc/{vmid}";

/// The route table (see the module docs). Guest routes appear for both kinds where both have
/// them; the `agent` commands only for QEMU.
pub(crate) fn table() -> Vec<Route> {
    use Handler::{GuestRead, GuestWrite, Read, ReadJson, Write};
    use Method::{Delete, Get, Post, Put};
    let mut routes = vec![
        // Cluster and nodes.
        route(Get, "/version", ReadJson(nodes::version)),
        route(Get, "/cluster/status", Read(nodes::cluster_status)),
        route(
            Get,
            "/cluster/resources",
            ReadJson(nodes::cluster_resources),
        ),
        route(Get, "/cluster/nextid", Read(guests::nextid)),
        route(Get, "/nodes", ReadJson(nodes::node_list)),
        route(Get, "/cluster/tasks", Read(tasks::cluster_tasks)),
        route(Get, "/nodes/{node}/network", Read(nodes::network)),
        route(Get, "/nodes/{node}/version", Read(nodes::node_version)),
        route(Get, "/nodes/{node}/status", Read(nodes::node_status)),
        route(Get, "/nodes/{node}/storage", Read(nodes::node_storage)),
        route(
            Get,
            "/nodes/{node}/storage/{storage}/status",
            Read(nodes::node_storage_status),
        ),
        route(Get, STORAGE_IDENTITY, Read(nodes::storage_identity)),
        // Custom CPU models (9.2).
        route(Get, CPU_MODELS, Read(cpu_models::list)),
        route(Post, CPU_MODELS, Write(cpu_models::create)),
        route(Get, CPU_MODEL, Read(cpu_models::get)),
        route(Put, CPU_MODEL, Write(cpu_models::update)),
        route(Delete, CPU_MODEL, Write(cpu_models::delete)),
        // SDN prefix-list entries and route maps (9.2).
        route(Get, PREFIX_ENTRIES, Read(sdn_routing::list_prefix_entries)),
        route(
            Post,
            PREFIX_ENTRIES,
            Write(sdn_routing::create_prefix_entry),
        ),
        route(Get, PREFIX_ENTRY, Read(sdn_routing::get_prefix_entry)),
        route(Put, PREFIX_ENTRY, Write(sdn_routing::update_prefix_entry)),
        route(
            Delete,
            PREFIX_ENTRY,
            Write(sdn_routing::delete_prefix_entry),
        ),
        route(
            Get,
            "/cluster/sdn/route-maps",
            Read(sdn_routing::list_route_maps),
        ),
        route(
            Get,
            ROUTE_MAP_ENTRIES,
            Read(sdn_routing::list_route_map_entries),
        ),
        route(
            Post,
            ROUTE_MAP_ENTRIES,
            Write(sdn_routing::create_route_map_entry),
        ),
        route(Get, ROUTE_MAP, Read(sdn_routing::route_map)),
        route(Get, ROUTE_MAP_ENTRY, Read(sdn_routing::get_route_map_entry)),
        route(
            Put,
            ROUTE_MAP_ENTRY,
            Write(sdn_routing::update_route_map_entry),
        ),
        route(
            Delete,
            ROUTE_MAP_ENTRY,
            Write(sdn_routing::delete_route_map_entry),
        ),
        // Tasks.
        route(Get, "/nodes/{node}/tasks", Read(tasks::node_tasks)),
        route(Get, "/nodes/{node}/tasks/{upid}/log", Read(tasks::log)),
        route(Delete, "/nodes/{node}/tasks/{upid}", Write(tasks::stop)),
        // Guests.
        route(Get, "/nodes/{node}/qemu", ReadJson(nodes::guest_list)),
        route(Get, "/nodes/{node}/lxc", ReadJson(nodes::guest_list)),
        route(Post, "/nodes/{node}/qemu", Write(guests::create)),
        route(Post, "/nodes/{node}/lxc", Write(guests::create)),
        // Storage, pools, backups.
        route(Post, "/nodes/{node}/vzdump", Write(backup::vzdump)),
        route(
            Get,
            "/nodes/{node}/storage/{storage}/content",
            Read(storage::list_content),
        ),
        route(
            Post,
            "/nodes/{node}/storage/{storage}/content",
            Write(storage::allocate),
        ),
        route(
            Post,
            "/nodes/{node}/storage/{storage}/upload",
            Write(storage::upload),
        ),
        route(
            Get,
            "/nodes/{node}/storage/{storage}/content/{volume}",
            Read(storage::volume_info),
        ),
        route(
            Post,
            "/nodes/{node}/storage/{storage}/content/{volume}",
            Write(storage::volume_write),
        ),
        route(
            Put,
            "/nodes/{node}/storage/{storage}/content/{volume}",
            Write(storage::volume_write),
        ),
        route(
            Delete,
            "/nodes/{node}/storage/{storage}/content/{volume}",
            Write(storage::volume_write),
        ),
        route(Get, "/pools", Read(pools::list)),
        route(Post, "/pools", Write(pools::create)),
        route(Put, "/pools", Write(pools::update)),
        route(Delete, "/pools", Write(pools::delete)),
        route(Get, "/pools/{poolid}", Read(pools::get)),
        route(Put, "/pools/{poolid}", Write(pools::update)),
        route(Delete, "/pools/{poolid}", Write(pools::delete)),
        // Consoles.
        route(
            Post,
            "/nodes/{node}/qemu/{vmid}/vncproxy",
            Write(console::proxy),
        ),
        route(
            Post,
            "/nodes/{node}/qemu/{vmid}/termproxy",
            Write(console::proxy),
        ),
        route(
            Post,
            "/nodes/{node}/lxc/{vmid}/vncproxy",
            Write(console::proxy),
        ),
        route(
            Post,
            "/nodes/{node}/lxc/{vmid}/termproxy",
            Write(console::proxy),
        ),
        route(Post, "/nodes/{node}/vncshell", Write(console::proxy)),
        route(Post, "/nodes/{node}/termproxy", Write(console::proxy)),
        route(
            Get,
            "/nodes/{node}/qemu/{vmid}/vncwebsocket",
            Read(console::websocket),
        ),
        route(
            Get,
            "/nodes/{node}/lxc/{vmid}/vncwebsocket",
            Read(console::websocket),
        ),
        route(Get, "/nodes/{node}/vncwebsocket", Read(console::websocket)),
        route(Post, "/access/vncticket", Read(console::verify_ticket)),
        // Access control.
        route(Post, "/access/ticket", Read(access::login::login)),
        route(
            Post,
            "/access/openid/auth-url",
            Read(access::openid::auth_url),
        ),
        route(Post, "/access/openid/login", Read(access::openid::login)),
        route(
            Put,
            "/access/password",
            Write(access::users::change_password),
        ),
        route(Get, "/access/permissions", Read(access::acl::permissions)),
        route(Get, "/access/acl", Read(access::acl::read)),
        route(Put, "/access/acl", Write(access::acl::update)),
        route(Get, "/access/roles", Read(access::roles::list)),
        route(Post, "/access/roles", Write(access::roles::modify)),
        route(Get, "/access/roles/{roleid}", Read(access::roles::read)),
        route(Put, "/access/roles/{roleid}", Write(access::roles::modify)),
        route(
            Delete,
            "/access/roles/{roleid}",
            Write(access::roles::modify),
        ),
        route(Get, "/access/groups", Read(access::groups::list)),
        route(Post, "/access/groups", Write(access::groups::modify)),
        route(Get, "/access/groups/{groupid}", Read(access::groups::read)),
        route(
            Put,
            "/access/groups/{groupid}",
            Write(access::groups::modify),
        ),
        route(
            Delete,
            "/access/groups/{groupid}",
            Write(access::groups::modify),
        ),
        route(Get, "/access/users", Read(access::users::list)),
        route(Post, "/access/users", Write(access::users::create)),
        route(Get, "/access/users/{userid}", Read(access::users::read)),
        route(Put, "/access/users/{userid}", Write(access::users::update)),
        route(
            Delete,
            "/access/users/{userid}",
            Write(access::users::delete),
        ),
        route(
            Delete,
            "/access/users/{userid}/token/{tokenid}",
            Write(access::users::delete_token),
        ),
        route(Get, "/access/tfa", Read(access::tfa::list_all)),
        route(Get, "/access/tfa/{userid}", Read(access::tfa::list_user)),
        route(Post, "/access/tfa/{userid}", Write(access::tfa::add)),
        route(Get, "/access/tfa/{userid}/{id}", Read(access::tfa::read)),
        route(Put, "/access/tfa/{userid}/{id}", Write(access::tfa::modify)),
        route(
            Delete,
            "/access/tfa/{userid}/{id}",
            Write(access::tfa::modify),
        ),
    ];
    for item in [QEMU, LXC] {
        let guest_routes: [(Method, &str, Handler); 17] = [
            (Delete, "", GuestWrite(guests::destroy)),
            (Get, "/config", GuestRead(guests::get_config)),
            (Put, "/config", GuestWrite(guests::update_config)),
            (Get, "/pending", GuestRead(guests::pending)),
            (Get, "/status/current", GuestRead(nodes::guest_status)),
            (Post, "/clone", GuestWrite(guests::clone)),
            (Post, "/template", GuestWrite(guests::template)),
            (Post, "/migrate", GuestWrite(guests::migrate)),
            (Put, "/resize", GuestWrite(disks::resize)),
            (
                Post,
                if item == QEMU {
                    "/move_disk"
                } else {
                    "/move_volume"
                },
                GuestWrite(disks::move_disk),
            ),
            (Get, "/snapshot", GuestRead(snapshots::list)),
            (Post, "/snapshot", GuestWrite(snapshots::create)),
            (
                Delete,
                "/snapshot/{snapname}",
                GuestWrite(snapshots::delete),
            ),
            (
                Get,
                "/snapshot/{snapname}/config",
                GuestRead(snapshots::get_config),
            ),
            (
                Put,
                "/snapshot/{snapname}/config",
                GuestWrite(snapshots::update),
            ),
            (
                Post,
                "/snapshot/{snapname}/rollback",
                GuestWrite(snapshots::rollback),
            ),
            (Post, "/status/start", GuestWrite(guests::power)),
        ];
        for (method, rest, handler) in guest_routes {
            routes.push(guest_route(method, item, rest, handler));
        }
        for action in ["stop", "shutdown", "reboot", "suspend", "resume"] {
            routes.push(guest_route(
                Post,
                item,
                &guests::power_path(action),
                GuestWrite(guests::power),
            ));
        }
    }
    // `POST .../config` is QEMU's asynchronous config update (a worker task).
    routes.push(guest_route(
        Post,
        QEMU,
        "/config",
        GuestWrite(guests::update_config),
    ));
    routes.push(guest_route(
        Post,
        QEMU,
        "/status/reset",
        GuestWrite(guests::power),
    ));
    routes.push(guest_route(Post, QEMU, "/agent", GuestWrite(agent::write)));
    for (method, command) in agent::COMMANDS {
        let handler = match method {
            Get => GuestRead(agent::read),
            _ => GuestWrite(agent::write),
        };
        routes.push(guest_route(*method, QEMU, &agent::path(command), handler));
    }
    routes
}

fn route(method: Method, template: &str, handler: Handler) -> Route {
    Route {
        method,
        template: template.to_owned(),
        handler,
    }
}

/// A route below a guest item.
fn guest_route(method: Method, item: &str, rest: &str, handler: Handler) -> Route {
    route(method, &format!("{item}{rest}"), handler)
}

/// The route table resolved against one tag: per path node, the handler of each method.
#[derive(Debug)]
pub(crate) struct Routes {
    handlers: Vec<[Option<Handler>; 4]>,
}

fn slot(method: Method) -> usize {
    match method {
        Method::Get => 0,
        Method::Post => 1,
        Method::Put => 2,
        Method::Delete => 3,
    }
}

impl Routes {
    /// Resolves [`table`] against the tag's paths; templates the tag lacks are skipped.
    pub(crate) fn new(api: &Api) -> Routes {
        let mut handlers = vec![[None; 4]; api.meta.path_count()];
        for route in table() {
            if let Some(index) = api.path_index(&route.template) {
                handlers[index][slot(route.method)] = Some(route.handler);
            }
        }
        Routes { handlers }
    }

    /// The handler of a method at a path node: the registered one, or the generic read (GET)
    /// or write.
    pub(crate) fn handler(&self, path_index: usize, method: Method) -> Handler {
        self.handlers
            .get(path_index)
            .and_then(|slots| slots[slot(method)])
            .unwrap_or(match method {
                Method::Get => Handler::Read(generic::read),
                _ => Handler::Write(generic::write),
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every handler's template exists, with its method, in every embedded tag: a new tag that
    /// renames or drops a path fails here instead of silently falling back to the generic
    /// handlers.
    #[test]
    fn every_route_exists_in_every_tag() {
        for tag in crate::api::TAGS {
            let api = Api::load(tag).unwrap();
            let mut missing = Vec::new();
            let mut handled = Vec::new();
            for route in table() {
                match api.operation_at(&route.template, route.method) {
                    Some(_) => {
                        handled.push(format!("{} {}", route.method.as_str(), route.template))
                    }
                    None if NOT_IN_EVERY_TAG.contains(&(route.method, route.template.as_str())) => {
                        handled.push(format!("{} {}", route.method.as_str(), route.template));
                    }
                    None => missing.push(format!("{} {}", route.method.as_str(), route.template)),
                }
            }
            assert!(
                missing.is_empty(),
                "tag {tag}: handlers for operations the tag lacks: {missing:#?}"
            );
            handled.sort();
            handled.dedup();
            assert_eq!(
                handled.len(),
                table().len(),
                "tag {tag}: a route is listed twice"
            );
        }
    }

    #[test]
    fn unregistered_operations_get_the_generic_handlers() {
        let api = Api::load("latest").unwrap();
        let routes = Routes::new(&api);
        let index = api.path_index("/nodes/{node}/apt/update").unwrap();
        assert!(matches!(
            routes.handler(index, Method::Get),
            Handler::Read(_)
        ));
        assert!(matches!(
            routes.handler(index, Method::Post),
            Handler::Write(_)
        ));
        let index = api.path_index("/nodes/{node}/qemu/{vmid}/config").unwrap();
        assert!(matches!(
            routes.handler(index, Method::Get),
            Handler::GuestRead(_)
        ));
    }
}
