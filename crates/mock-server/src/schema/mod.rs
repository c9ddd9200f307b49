//! The schema at run time: validation and coercion of parameters with Proxmox's messages
//! (`validate`), the named formats and scalar readers it uses (`formats`), property strings
//! (`property_string`) and deterministic plausible values for replies (`generate`, with its
//! scalar values in `scalars`, its memo in `cache` and what values depend on in `context`).

mod cache;
mod context;
mod formats;
mod generate;
mod property_string;
mod scalars;
mod validate;

pub(crate) use cache::{GenCache, gen_key_hash};
pub(crate) use context::{GenContext, seed};
pub(crate) use formats::{check_format, parse_boolean, split_list, value_bool};
pub(crate) use generate::{generate, reply_value};
pub(crate) use scalars::{
    integer_at, kernel_build, kernel_release, kernel_version, load_average, number_at, pve_version,
};
pub(crate) use validate::{
    Errors, Params, ValueRef, accepts, coerce_params, missing_is_error, resolve_family,
    resolve_property, validate_params, validate_value,
};
