//! The generated artifacts embedded in the binary: each supported tag's `route_metadata.json`,
//! its index (`route_index.rs`, compiled in) and `openapi.json`. Only the selected tag is parsed.
//!
//! The table ([`tags`]) is written by `cargo xtask codegen` from `schemas/pve/index.json`, so a
//! new tag needs no edit here; the CLI (`pvectl`) reads the same table.

mod tags;

pub use tags::{LATEST, TAGS};

/// One embedded tag.
pub(crate) struct Embedded {
    /// The tag, e.g. `9.2`.
    tag: &'static str,
    /// `route_metadata.json`.
    route_metadata: &'static str,
    /// `route_index.rs`: where the paths and each operation lie in `route_metadata.json`.
    route_index: route_metadata::RouteIndexRef<'static>,
    /// `openapi.json`.
    openapi: &'static str,
}

fn find(tag: &str) -> Option<&'static Embedded> {
    tags::EMBEDDED.iter().find(|embedded| embedded.tag == tag)
}

/// `route_metadata.json` of a tag (not `latest`), `None` for a tag not embedded.
pub fn route_metadata(tag: &str) -> Option<&'static str> {
    find(tag).map(|embedded| embedded.route_metadata)
}

/// The index of a tag's `route_metadata.json` (not `latest`), `None` for a tag not embedded.
pub fn route_index(tag: &str) -> Option<route_metadata::RouteIndexRef<'static>> {
    find(tag).map(|embedded| embedded.route_index)
}

/// `openapi.json` of a tag (not `latest`), `None` for a tag not embedded.
pub fn openapi(tag: &str) -> Option<&'static str> {
    find(tag).map(|embedded| embedded.openapi)
}
