//! The schema at run time: validation and coercion of parameters with Proxmox's messages
//! (`validate`) and deterministic plausible values for replies (`generate`).

mod generate;
mod validate;

pub(crate) use generate::{GenCache, GenContext, gen_key_hash, generate, seed};
#[cfg(test)]
pub(crate) use validate::validate_value;
pub(crate) use validate::{
    Params, check_format, coerce, coerce_params, parse_boolean, resolve_property, split_list,
    validate_params, value_bool,
};
