//! The generated artifacts embedded in the binary: `generated/<tag>/route_metadata.json` and
//! `generated/<tag>/openapi.json` for every supported tag. Only the selected tag is parsed.

/// `route_metadata.json` of a tag.
pub fn route_metadata(tag: &str) -> Option<&'static str> {
    match tag {
        "9.1" => Some(include_str!("../../../generated/9.1/route_metadata.json")),
        "9.0" => Some(include_str!("../../../generated/9.0/route_metadata.json")),
        "8.4" => Some(include_str!("../../../generated/8.4/route_metadata.json")),
        _ => None,
    }
}

/// `openapi.json` of a tag.
pub fn openapi(tag: &str) -> Option<&'static str> {
    match tag {
        "9.1" => Some(include_str!("../../../generated/9.1/openapi.json")),
        "9.0" => Some(include_str!("../../../generated/9.0/openapi.json")),
        "8.4" => Some(include_str!("../../../generated/8.4/openapi.json")),
        _ => None,
    }
}
