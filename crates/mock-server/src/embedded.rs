//! The generated artifacts embedded in the binary: `generated/<tag>/route_metadata.json` and
//! `generated/<tag>/openapi.json` for every supported tag. Only the selected tag is parsed.
//!
//! The tags are listed once, in [`for_tag!`]; `include_str!` needs literal paths, hence a macro.

/// The embedded copy of `generated/<tag>/<file>` for a supported tag, `None` for others.
macro_rules! for_tag {
    ($tag:expr, $file:literal) => {
        match $tag {
            "9.1" => Some(include_str!(concat!("../../../generated/9.1/", $file))),
            "9.0" => Some(include_str!(concat!("../../../generated/9.0/", $file))),
            "8.4" => Some(include_str!(concat!("../../../generated/8.4/", $file))),
            _ => None,
        }
    };
}

/// `route_metadata.json` of a tag.
pub(crate) fn route_metadata(tag: &str) -> Option<&'static str> {
    for_tag!(tag, "route_metadata.json")
}

/// `openapi.json` of a tag.
pub(crate) fn openapi(tag: &str) -> Option<&'static str> {
    for_tag!(tag, "openapi.json")
}
