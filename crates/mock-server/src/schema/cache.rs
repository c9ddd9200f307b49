//! The memo of generated values: [`GenCache`], keyed by the schema's address and everything in
//! the [`GenContext`], bounded by [`GEN_CACHE_SIZE`].
//!
//! A value depends on nothing but its schema and context, so it is generated once and then
//! cloned. Entries are found by [`gen_key_hash`] and confirmed by comparing the full key, so a
//! hash collision costs a regeneration, never a wrong value.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use route_metadata::Schema;
use serde_json::Value;

use super::context::{GenContext, mix};

/// Most values [`GenCache`] keeps; a full cache is emptied.
const GEN_CACHE_SIZE: usize = 16_384;

/// Generated values by schema and context (bounded).
#[derive(Debug, Default)]
pub(crate) struct GenCache {
    values: RwLock<HashMap<u64, (GenKey, Value)>>,
    /// Replies kept as JSON text ([`GenCache::text_or_insert`]).
    texts: RwLock<HashMap<u64, (GenKey, Arc<str>)>>,
}

/// Everything a generated value depends on.
#[derive(Debug)]
struct GenKey {
    schema: usize,
    path: String,
    params: Vec<(String, String)>,
    children: Vec<String>,
    release: String,
    nodes: Vec<String>,
    minimal: bool,
}

impl GenKey {
    fn new(schema: &Schema, ctx: &GenContext<'_>) -> GenKey {
        GenKey {
            schema: std::ptr::from_ref(schema) as usize,
            path: ctx.path.to_owned(),
            params: ctx.params.to_vec(),
            children: ctx.children.to_vec(),
            release: ctx.release.to_owned(),
            nodes: ctx.nodes.to_vec(),
            minimal: ctx.minimal,
        }
    }

    fn matches(&self, schema: &Schema, ctx: &GenContext<'_>) -> bool {
        self.schema == std::ptr::from_ref(schema) as usize
            && self.minimal == ctx.minimal
            && self.path == ctx.path
            && self.params == ctx.params
            && self.children == ctx.children
            && self.release == ctx.release
            && self.nodes == ctx.nodes
    }
}

/// A hash of everything a generated value depends on (the schema's address and the context).
pub(crate) fn gen_key_hash(schema: &Schema, ctx: &GenContext<'_>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes.iter().chain(&[0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    feed(&(std::ptr::from_ref(schema) as usize).to_le_bytes());
    feed(&[u8::from(ctx.minimal)]);
    feed(ctx.path.as_bytes());
    for (key, value) in ctx.params {
        feed(key.as_bytes());
        feed(value.as_bytes());
    }
    feed(&[0xfe]);
    for child in ctx.children {
        feed(child.as_bytes());
    }
    feed(&[0xfe]);
    for node in ctx.nodes {
        feed(node.as_bytes());
    }
    feed(ctx.release.as_bytes());
    mix(hash)
}

impl GenCache {
    /// The cached value for a schema and context, or `make`'s (then cached).
    pub(super) fn get_or_insert(
        &self,
        schema: &Schema,
        ctx: &GenContext<'_>,
        make: impl FnOnce() -> Value,
    ) -> Value {
        let hash = gen_key_hash(schema, ctx);
        if let Some((key, value)) = self
            .values
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&hash)
            && key.matches(schema, ctx)
        {
            return value.clone();
        }
        let value = make();
        let mut values = self
            .values
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if values.len() >= GEN_CACHE_SIZE {
            values.clear();
        }
        values.insert(hash, (GenKey::new(schema, ctx), value.clone()));
        value
    }

    /// A reply made from nothing but the value generated for a schema and context (and the
    /// API, which owns this cache), kept as JSON text: `make`'s on the first call, the same
    /// text after (`GET /version`, whose reply depends on the release and the node names the
    /// context holds). Keyed and confirmed like the values.
    pub(crate) fn text_or_insert(
        &self,
        schema: &Schema,
        ctx: &GenContext<'_>,
        make: impl FnOnce() -> String,
    ) -> Arc<str> {
        let hash = gen_key_hash(schema, ctx);
        if let Some((key, text)) = self
            .texts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&hash)
            && key.matches(schema, ctx)
        {
            return Arc::clone(text);
        }
        let text: Arc<str> = make().into();
        let mut texts = self
            .texts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if texts.len() >= GEN_CACHE_SIZE {
            texts.clear();
        }
        texts.insert(hash, (GenKey::new(schema, ctx), Arc::clone(&text)));
        text
    }
}
