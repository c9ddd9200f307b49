//! The reply check's fast path: whether a reply body is valid, decided while it is parsed, without
//! a [`Value`] tree.
//!
//! A [`DeserializeSeed`] driven by the schema node at each place reads the body with
//! `serde_json` and checks each value as it is read: the type and scalar checks are the
//! validator's own ([`schema::accepts`]), objects are checked key by key against the schema's
//! properties (families, additional properties) and for missing required properties at their
//! end, arrays item by item against `items`; what no schema looks at is skipped unread
//! ([`IgnoredAny`]). Strings are borrowed from the body where they have no escapes; the body's
//! UTF-8 is checked once, not string by string. An object's keys are looked up in a hash map
//! of its schema's properties, built the first time that schema is met and kept by the check
//! thread from one reply to the next ([`Walk`]).
//!
//! The answer is only ever "valid" or "not sure": the first value that fails, and anything this
//! reader does not decide itself, stops the parse, and [`super::checker`] then checks the reply
//! the full way ([`super::validate::reply`], with the tree), which makes the discrepancies with
//! their pointers, `expected`/`found` and messages. So a reply that is valid costs a parse
//! without allocations, and a reply with discrepancies gets exactly the report it got before.
//! "Not sure" is answered for: a body that is not a JSON object, a key repeated in an object
//! where it matters (the tree keeps the last value), and a `oneOf` schema (each alternative
//! needs the value again: that subtree alone is read into a [`Value`] and checked by the
//! validator).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;

use route_metadata::Schema;
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::api::Api;
use crate::schema::{self, ValueRef};

/// Whether `body` is a JSON object whose `data` passes `returns` (a reply
/// [`super::validate::reply`] would find nothing in). `false` means "check it the full way":
/// invalid, or not decided here. `walk` keeps the property look-ups of the schema's objects
/// from one reply to the next (the check thread keeps one).
pub(crate) fn reply_is_valid<'a>(
    api: &'a Api,
    returns: &'a Schema,
    body: &[u8],
    walk: &mut Walk<'a>,
) -> bool {
    // The envelope must be an object; anything else is left to the full check.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return false;
    }
    // UTF-8 checked once for the whole body rather than string by string (a body that is not
    // UTF-8 is not valid JSON: the full check reports it).
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    // A parse stopped early leaves its objects' entries behind.
    walk.seen.clear();
    let mut reader = serde_json::Deserializer::from_str(text);
    let envelope = Envelope {
        api,
        returns,
        state: walk,
    };
    envelope.deserialize(&mut reader).is_ok() && reader.end().is_ok()
}

/// What the walk keeps across objects, and across replies.
#[derive(Default)]
pub(crate) struct Walk<'a> {
    /// The required properties seen so far in the objects being read (a stack: each object
    /// truncates it back when it ends), to notice a repeated one.
    seen: Vec<*const Schema>,
    /// Each properties map of the schema met so far (by its address) as a hash map: a
    /// `BTreeMap` look-up compares the key with several others. Bounded by the schema: only
    /// its own maps and keys are kept.
    lookups: HashMap<usize, Rc<Lookup<'a>>, foldhash::fast::RandomState>,
}

/// One properties map's keys, and how many of its properties an object must have.
struct Lookup<'a> {
    keys: HashMap<&'a str, &'a Schema, foldhash::fast::RandomState>,
    required: usize,
}

impl<'a> Walk<'a> {
    /// The hash map of a properties map.
    fn lookup(&mut self, properties: &'a BTreeMap<String, Schema>) -> Rc<Lookup<'a>> {
        let id = std::ptr::from_ref(properties) as usize;
        Rc::clone(self.lookups.entry(id).or_insert_with(|| {
            Rc::new(Lookup {
                keys: properties
                    .iter()
                    .map(|(key, schema)| (key.as_str(), schema))
                    .collect(),
                // `check_object` checks every property but the families' own entries.
                required: properties
                    .iter()
                    .filter(|(key, property)| {
                        property.family.is_none()
                            && !key.ends_with("[n]")
                            && schema::missing_is_error(property)
                    })
                    .count(),
            })
        }))
    }
}

/// The error that stops the parse: the reply is not valid, or not decided here.
fn not_sure<E: de::Error>() -> E {
    E::custom("check the full way")
}

/// `{"data": ..., ...}`: `data` against `returns`, other keys skipped.
struct Envelope<'w, 'a> {
    api: &'a Api,
    returns: &'a Schema,
    state: &'w mut Walk<'a>,
}

impl<'de> DeserializeSeed<'de> for Envelope<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Envelope<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut data = false;
        while let Some(Key(key)) = map.next_key()? {
            if key != "data" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if data {
                return Err(not_sure());
            }
            data = true;
            map.next_value_seed(Check {
                api: self.api,
                schema: self.returns,
                state: &mut *self.state,
            })?;
        }
        // No `data`: the full check reads it as `null`.
        if !data && schema::missing_is_error(self.returns) {
            return Err(not_sure());
        }
        Ok(())
    }
}

/// An object key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }

            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }

            fn visit_string<E: de::Error>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// One value against its schema.
struct Check<'w, 'a> {
    api: &'a Api,
    schema: &'a Schema,
    state: &'w mut Walk<'a>,
}

impl<'a> Check<'_, 'a> {
    fn at(&mut self, schema: &'a Schema) -> Check<'_, 'a> {
        Check {
            api: self.api,
            schema,
            state: &mut *self.state,
        }
    }

    /// The type and scalar checks on a non-null value.
    fn accept<E: de::Error>(&self, value: ValueRef<'_>) -> Result<(), E> {
        if schema::accepts(self.api, self.schema, value) {
            Ok(())
        } else {
            Err(not_sure())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Check<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.schema.one_of.is_some() && self.schema.type_property.is_none() {
            // Every alternative reads the value: this subtree is kept.
            let value = Value::deserialize(deserializer)?;
            return if schema::validate_value(self.api, self.schema, &value).is_ok() {
                Ok(())
            } else {
                Err(not_sure())
            };
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        // `null` is a missing value.
        if schema::missing_is_error(self.schema) {
            Err(not_sure())
        } else {
            Ok(())
        }
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<(), E> {
        self.accept(ValueRef::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.accept(ValueRef::Number(&value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.accept(ValueRef::Number(&value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        match serde_json::Number::from_f64(value) {
            Some(number) => self.accept(ValueRef::Number(&number)),
            None => Err(not_sure()),
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<(), E> {
        self.accept(ValueRef::Str(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.accept::<A::Error>(ValueRef::Array)?;
        match self.schema.items.as_deref() {
            Some(items) => while seq.next_element_seed(self.at(items))?.is_some() {},
            None => while seq.next_element::<IgnoredAny>()?.is_some() {},
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.accept::<A::Error>(ValueRef::Object)?;
        let schema = self.schema;
        // `check_prop` looks inside an object only when it has properties or allows no others.
        if schema.properties.is_none() && schema.additional_properties {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        let Some(properties) = schema.properties.as_ref() else {
            // No properties and no others allowed: any key is one too many.
            return match map.next_key::<IgnoredAny>()? {
                Some(_) => Err(not_sure()),
                None => Ok(()),
            };
        };
        let lookup = self.state.lookup(properties);
        let start = self.state.seen.len();
        let mut required_seen = 0usize;
        while let Some(Key(key)) = map.next_key()? {
            match lookup.keys.get(key.as_ref()).copied() {
                // `check_object` skips a family's own entry, even when it is a key of the object.
                Some(property) if property.family.is_some() || key.ends_with("[n]") => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(property) => {
                    if schema::missing_is_error(property) {
                        let id: *const Schema = property;
                        if self.state.seen[start..].contains(&id) {
                            // The tree keeps the last of repeated keys: left to the full check.
                            return Err(not_sure());
                        }
                        self.state.seen.push(id);
                        required_seen += 1;
                    }
                    map.next_value_seed(self.at(property))?;
                }
                // Not a property: perhaps a family member (`net3`).
                None => match schema::resolve_family(properties, &key) {
                    Some(property) => map.next_value_seed(self.at(property))?,
                    None if !schema.additional_properties => return Err(not_sure()),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
            }
        }
        self.state.seen.truncate(start);
        let required = lookup.required;
        if required_seen == required {
            Ok(())
        } else {
            Err(not_sure())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use route_metadata::{Method, Operation};
    use serde_json::json;

    use super::*;
    use crate::schema::GenContext;
    use crate::upstream::validate;

    /// What the full check finds nothing in.
    fn full_is_valid(api: &Api, op: &Operation, body: &[u8]) -> bool {
        let envelope = serde_json::from_slice::<Value>(body).ok();
        validate::reply(api, op, envelope.as_ref()).is_empty()
    }

    /// A small deterministic generator (SplitMix64).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut x = self.0;
            x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            x ^ (x >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn count_nodes(value: &Value) -> usize {
        1 + match value {
            Value::Array(items) => items.iter().map(count_nodes).sum(),
            Value::Object(map) => map.values().map(count_nodes).sum(),
            _ => 0,
        }
    }

    /// Applies `change` to the `index`-th node in pre-order; whether it was found.
    fn change_at(value: &mut Value, index: &mut usize, change: &mut dyn FnMut(&mut Value)) -> bool {
        if *index == 0 {
            change(value);
            return true;
        }
        *index -= 1;
        match value {
            Value::Array(items) => items.iter_mut().any(|item| change_at(item, index, change)),
            Value::Object(map) => map.values_mut().any(|item| change_at(item, index, change)),
            _ => false,
        }
    }

    /// One change somewhere in the tree: another scalar, a container, `null`, a key removed or
    /// added.
    fn mutate(value: &mut Value, rng: &mut Rng) {
        let replacements = [
            json!(null),
            json!("abc"),
            json!(""),
            json!("100"),
            json!(12),
            json!(-3),
            json!(0),
            json!(1),
            json!(1.5),
            json!(1e300),
            json!(18_446_744_073_709_551_615_u64),
            json!(true),
            json!(false),
            json!([]),
            json!(["x"]),
            json!({}),
            json!({"bogus": 1}),
        ];
        let mut index = rng.below(count_nodes(value));
        let kind = rng.below(4);
        let removed = rng.below(64);
        let replacement = replacements[rng.below(replacements.len())].clone();
        change_at(value, &mut index, &mut |node| match (kind, &mut *node) {
            (0, Value::Object(map)) if !map.is_empty() => {
                if let Some(key) = map.keys().nth(removed % map.len()).cloned() {
                    map.remove(&key);
                }
            }
            (1, Value::Object(map)) => {
                map.insert("bogus_extra".to_owned(), json!(1));
            }
            _ => *node = replacement.clone(),
        });
    }

    fn generated(api: &Api, op: &Operation) -> Value {
        let nodes = ["pve1".to_owned()];
        let ctx = GenContext {
            path: &op.path,
            params: &[],
            children: &[],
            release: "9.2",
            nodes: &nodes,
            minimal: false,
        };
        schema::generate(api, &op.returns, &ctx)
    }

    /// The fast path and the full check agree on every reply: generated ones (valid, mostly)
    /// and each with one random change (often invalid), for every operation of the schema.
    #[test]
    fn agrees_with_the_full_check_on_generated_and_changed_replies() {
        let api: Arc<Api> = Api::load("latest").unwrap();
        // One walk for all: its look-ups are kept from one reply to the next.
        let mut walk = Walk::default();
        let mut rng = Rng(13);
        let (mut valid, mut invalid) = (0, 0);
        for op in api.meta.operations() {
            let data = generated(&api, op);
            for round in 0..24 {
                let mut data = data.clone();
                for _ in 0..round % 3 {
                    mutate(&mut data, &mut rng);
                }
                let body = serde_json::to_vec(&json!({"data": data})).unwrap();
                let full = full_is_valid(&api, op, &body);
                assert_eq!(
                    reply_is_valid(&api, &op.returns, &body, &mut walk),
                    full,
                    "{} {}: {}",
                    op.method.as_str(),
                    op.path,
                    String::from_utf8_lossy(&body)
                );
                if full {
                    valid += 1;
                } else {
                    invalid += 1;
                }
            }
        }
        // Both answers were exercised, many times.
        assert!(
            valid > 1000 && invalid > 1000,
            "{valid} valid, {invalid} invalid"
        );
    }

    /// The fast path with a walk of its own.
    fn valid(api: &Api, returns: &Schema, body: &[u8]) -> bool {
        reply_is_valid(api, returns, body, &mut Walk::default())
    }

    fn small_op(api: &Api) -> &Operation {
        api.operation_at("/nodes/{node}/qemu", Method::Get).unwrap()
    }

    #[test]
    fn envelopes_and_repeated_keys_are_left_to_the_full_check() {
        let api = Api::load("latest").unwrap();
        let op = small_op(&api);
        let item = r#"{"vmid": 100, "status": "running"}"#;
        assert!(valid(
            &api,
            &op.returns,
            format!(r#" {{"data": [{item}], "extra": {{"x": [1]}}}} "#).as_bytes()
        ));
        for body in [
            String::new(),
            "[]".to_owned(),
            "\"data\"".to_owned(),
            "{}".to_owned(),
            r#"{"data": null}"#.to_owned(),
            format!(r#"{{"data": [{item}]}} x"#),
            format!(r#"{{"data": [{item}]"#),
            format!(r#"{{"data": [{item}], "data": [{item}]}}"#),
            r#"{"data": [{"vmid": 100, "vmid": 101, "status": "running"}]}"#.to_owned(),
            r#"{"data": [{"vmid": 100, "status": "running", "status": null}]}"#.to_owned(),
        ] {
            assert!(!valid(&api, &op.returns, body.as_bytes()), "{body}");
        }
        // What the full check makes of them (the tree keeps the last of repeated keys).
        let full = |body: &str| full_is_valid(&api, op, body.as_bytes());
        assert!(full(&format!(
            r#"{{"data": [{{"vmid": 1}}], "data": [{item}]}}"#
        )));
        assert!(!full(
            r#"{"data": [{"vmid": 100, "status": "running", "status": null}]}"#
        ));
        // A body that is not UTF-8 (here only in a string no schema looks at) is left to the
        // full check, which refuses it.
        let body = b"{\"data\": [{\"vmid\": 100, \"status\": \"running\"}], \"x\": \"\xff\"}";
        assert!(!valid(&api, &op.returns, body));
        assert!(!full_is_valid(&api, op, body));
        // Escaped keys are keys.
        assert!(valid(
            &api,
            &op.returns,
            br#"{"d\u0061ta": [{"vmid": 100, "st\u0061tus": "running"}]}"#
        ));
    }
}
