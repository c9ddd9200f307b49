//! What a generated value depends on: the request's [`GenContext`], and the hashing that turns
//! a path and a field name into the value's seed ([`seed`], [`mix`]). The generator, its scalar
//! values and its cache all build on this and on nothing of each other's.

/// What the generator knows about the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GenContext<'a> {
    /// Concrete path (seed of every value).
    pub(crate) path: &'a str,
    /// Path parameters.
    pub(crate) params: &'a [(String, String)],
    /// Names of the path's children (for directory indexes).
    pub(crate) children: &'a [String],
    /// Release string for version fields.
    pub(crate) release: &'a str,
    /// Known node names.
    pub(crate) nodes: &'a [String],
    /// Only required properties (the reply shows a stored row, e.g. a guest config).
    pub(crate) minimal: bool,
}

impl GenContext<'_> {
    /// A path parameter of the request.
    pub(super) fn param(&self, name: &str) -> Option<&str> {
        crate::api::path_param(self.params, name)
    }
}

/// FNV-1a over the inputs, finished with SplitMix64.
pub(crate) fn seed(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    mix(hash)
}

/// SplitMix64's finaliser: spreads the bits of a hash.
pub(super) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}
