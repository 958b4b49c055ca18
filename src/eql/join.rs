//! Join keys and the bounded per-key tables that sequences and samples keep.
//!
//! A join key (`sequence by host.id, process.entity_id`, `[...] by file.path`) is read from an
//! event into a compact byte string, so keys compare exactly (case-sensitive, typed: the string
//! `"42"` is not the number `42`) and the table is looked up without allocating. A key field
//! that is absent or null makes the event unable to join — unless the field is written
//! `?field`, in which case null is a value like any other (Elasticsearch's rule).
//! Multi-valued key fields join on the whole array, in order.
//!
//! [`KeyTable`] is a hash map from key to per-key state that remembers when each key was last
//! touched, so the owner can evict the least recently used keys when it reaches its cap.

use std::collections::HashMap;

use serde_json::Value;

use crate::document::{Document, FieldPath, Scalar};

/// The fields of one item's join key, in order (shared `sequence by` keys first).
#[derive(Clone, Debug)]
pub(crate) struct KeySpec {
    fields: Box<[KeyField]>,
}

#[derive(Clone, Debug)]
struct KeyField {
    path: FieldPath,
    /// Written `?field`: a missing or null value joins with other nulls.
    optional: bool,
}

// Tags of the byte encoding; every value is self-delimiting.
const NULL: u8 = 0;
const STR: u8 = 1;
const INT: u8 = 2;
const FLOAT: u8 = 3;
const FALSE: u8 = 4;
const TRUE: u8 = 5;
const ARRAY: u8 = 6;

impl KeySpec {
    pub(crate) fn new(fields: impl IntoIterator<Item = (FieldPath, bool)>) -> KeySpec {
        KeySpec {
            fields: fields
                .into_iter()
                .map(|(path, optional)| KeyField { path, optional })
                .collect(),
        }
    }

    /// Every key field path and whether it is optional (`?field`), for coverage reports.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&FieldPath, bool)> {
        self.fields.iter().map(|f| (&f.path, f.optional))
    }

    /// Writes the event's key into `buf` (cleared first). False when a key field that is not
    /// optional is absent or null: such an event joins nothing.
    pub(crate) fn encode<D: Document + ?Sized>(&self, doc: &D, buf: &mut Vec<u8>) -> bool {
        buf.clear();
        for field in self.fields.iter() {
            let values = doc.values(&field.path);
            let count = values.count();
            let first = values.first();
            match (count, first) {
                (0, _) | (1, Some(Scalar::Null)) | (_, None) => {
                    if !field.optional {
                        return false;
                    }
                    buf.push(NULL);
                }
                (1, Some(v)) if !values.is_array() => put(buf, v),
                (n, _) => {
                    buf.push(ARRAY);
                    buf.extend_from_slice(&(n as u32).to_le_bytes());
                    values.any(|v| {
                        put(buf, v);
                        false
                    });
                }
            }
        }
        true
    }
}

fn put(buf: &mut Vec<u8>, v: Scalar<'_>) {
    match v {
        Scalar::Null => buf.push(NULL),
        Scalar::Bool(false) => buf.push(FALSE),
        Scalar::Bool(true) => buf.push(TRUE),
        Scalar::Int(i) => {
            buf.push(INT);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        // A whole float is the same key as the integer (JSON writers differ on `42` / `42.0`).
        Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            buf.push(INT);
            buf.extend_from_slice(&(f as i64).to_le_bytes());
        }
        Scalar::Float(f) => {
            buf.push(FLOAT);
            buf.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Scalar::Str(s) => {
            buf.push(STR);
            buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
    }
}

/// The key values as JSON (`join_keys` in an alert), one per key field.
pub(crate) fn decode(mut bytes: &[u8]) -> Vec<Value> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match take(&mut bytes) {
            Some(v) => out.push(v),
            None => break,
        }
    }
    out
}

fn take(bytes: &mut &[u8]) -> Option<Value> {
    let (&tag, rest) = bytes.split_first()?;
    *bytes = rest;
    let mut word = |n: usize| -> Option<&[u8]> {
        let (head, tail) = bytes.split_at_checked(n)?;
        *bytes = tail;
        Some(head)
    };
    Some(match tag {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        INT => Value::from(i64::from_le_bytes(word(8)?.try_into().ok()?)),
        FLOAT => Value::from(f64::from_bits(u64::from_le_bytes(
            word(8)?.try_into().ok()?,
        ))),
        STR => {
            let len = u32::from_le_bytes(word(4)?.try_into().ok()?) as usize;
            Value::from(String::from_utf8_lossy(word(len)?).into_owned())
        }
        ARRAY => {
            let n = u32::from_le_bytes(word(4)?.try_into().ok()?) as usize;
            let mut items = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                items.push(take(bytes)?);
            }
            Value::Array(items)
        }
        _ => return None,
    })
}

/// Per-key state with a last-touched stamp, for least-recently-used eviction.
#[derive(Debug)]
pub(crate) struct KeyTable<E> {
    map: HashMap<Box<[u8]>, Slot<E>>,
    clock: u64,
}

#[derive(Debug)]
struct Slot<E> {
    touched: u64,
    entry: E,
}

impl<E> Default for KeyTable<E> {
    fn default() -> Self {
        KeyTable {
            map: HashMap::new(),
            clock: 0,
        }
    }
}

impl<E> KeyTable<E> {
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The entry for `key`, marked as just used.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut E> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(key).map(|slot| {
            slot.touched = clock;
            &mut slot.entry
        })
    }

    /// The entry for `key`, created by `make` when absent; marked as just used.
    pub(crate) fn get_or_insert_with(&mut self, key: &[u8], make: impl FnOnce() -> E) -> &mut E {
        self.clock += 1;
        let clock = self.clock;
        if !self.map.contains_key(key) {
            self.map.insert(
                key.into(),
                Slot {
                    touched: clock,
                    entry: make(),
                },
            );
        }
        let slot = self
            .map
            .get_mut(key)
            .expect("the entry was just inserted or already there");
        slot.touched = clock;
        &mut slot.entry
    }

    /// Every entry, in no order; does not mark them used.
    pub(crate) fn values(&self) -> impl Iterator<Item = &E> {
        self.map.values().map(|slot| &slot.entry)
    }

    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<E> {
        self.map.remove(key).map(|slot| slot.entry)
    }

    /// Keeps the entries for which `keep` returns true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[u8], &mut E) -> bool) {
        self.map.retain(|key, slot| keep(key, &mut slot.entry));
    }

    /// Removes the least recently used `n` entries (all of them when `n >= len`), handing each
    /// to `gone`. One pass to find the cut-off, one to remove: callers evict in batches so the
    /// cost per inserted key stays constant.
    pub(crate) fn evict_oldest(&mut self, n: usize, mut gone: impl FnMut(E)) {
        if n == 0 || self.map.is_empty() {
            return;
        }
        let mut stamps: Vec<u64> = self.map.values().map(|s| s.touched).collect();
        let cut = if n >= stamps.len() {
            u64::MAX
        } else {
            let (_, nth, _) = stamps.select_nth_unstable(n - 1);
            *nth
        };
        let mut removed = 0;
        let keys: Vec<Box<[u8]>> = self
            .map
            .iter()
            .filter(|(_, s)| s.touched <= cut)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if removed >= n {
                break;
            }
            if let Some(slot) = self.map.remove(&key) {
                removed += 1;
                gone(slot.entry);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.map.contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::JsonDocument;
    use serde_json::json;

    fn doc(v: Value) -> JsonDocument {
        match v {
            Value::Object(m) => JsonDocument::new(m),
            _ => unreachable!(),
        }
    }

    fn spec(fields: &[(&str, bool)]) -> KeySpec {
        KeySpec::new(fields.iter().map(|(p, o)| (FieldPath::new(p), *o)))
    }

    fn key(spec: &KeySpec, d: Value) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        spec.encode(&doc(d), &mut buf).then_some(buf)
    }

    #[test]
    fn keys_are_exact_and_typed() {
        let s = spec(&[("user.name", false)]);
        let root = key(&s, json!({"user": {"name": "root"}})).unwrap();
        assert_eq!(key(&s, json!({"user.name": "root"})).unwrap(), root);
        assert_ne!(key(&s, json!({"user": {"name": "Root"}})).unwrap(), root);
        let p = spec(&[("process.pid", false)]);
        assert_ne!(
            key(&p, json!({"process": {"pid": 42}})),
            key(&p, json!({"process": {"pid": "42"}}))
        );
        assert_eq!(
            key(&p, json!({"process": {"pid": 42}})),
            key(&p, json!({"process": {"pid": 42.0}}))
        );
    }

    #[test]
    fn null_keys_join_only_when_optional() {
        let s = spec(&[("host.id", false), ("process.pid", false)]);
        assert_eq!(key(&s, json!({"host": {"id": "h"}})), None);
        assert_eq!(
            key(&s, json!({"host": {"id": "h"}, "process": {"pid": null}})),
            None
        );
        let o = spec(&[("host.id", false), ("process.pid", true)]);
        let a = key(&o, json!({"host": {"id": "h"}})).unwrap();
        let b = key(&o, json!({"host": {"id": "h"}, "process": {"pid": null}})).unwrap();
        assert_eq!(a, b);
        assert_eq!(decode(&a), vec![json!("h"), Value::Null]);
    }

    #[test]
    fn arrays_join_on_the_whole_array() {
        let s = spec(&[("x", false)]);
        let ab = key(&s, json!({"x": ["a", "b"]})).unwrap();
        assert_ne!(ab, key(&s, json!({"x": ["b", "a"]})).unwrap());
        assert_ne!(ab, key(&s, json!({"x": "a"})).unwrap());
        assert_eq!(decode(&ab), vec![json!(["a", "b"])]);
        assert_eq!(key(&s, json!({"x": []})), None);
        // A one-element array is still an array.
        assert_ne!(
            key(&s, json!({"x": ["a"]})).unwrap(),
            key(&s, json!({"x": "a"})).unwrap()
        );
    }

    #[test]
    fn decode_round_trips_and_survives_garbage() {
        let s = spec(&[("a", false), ("b", false), ("c", false), ("d", false)]);
        let k = key(&s, json!({"a": "é", "b": -7, "c": true, "d": 1.5})).unwrap();
        assert_eq!(
            decode(&k),
            vec![json!("é"), json!(-7), json!(true), json!(1.5)]
        );
        for cut in 0..k.len() {
            let _ = decode(&k[..cut]);
        }
        let _ = decode(&[ARRAY, 255, 255, 255, 255]);
        let _ = decode(&[99, 1, 2]);
    }

    #[test]
    fn eviction_removes_the_least_recently_used() {
        let mut t: KeyTable<u32> = KeyTable::default();
        for i in 0..10u32 {
            t.get_or_insert_with(&i.to_le_bytes(), || i);
        }
        // Touch 0 and 1 so they are the newest.
        t.get_mut(&0u32.to_le_bytes());
        t.get_mut(&1u32.to_le_bytes());
        let mut gone = Vec::new();
        t.evict_oldest(3, |e| gone.push(e));
        gone.sort();
        assert_eq!(gone, [2, 3, 4]);
        assert_eq!(t.len(), 7);
        assert!(t.contains(&0u32.to_le_bytes()));
        t.evict_oldest(100, |_| {});
        assert_eq!(t.len(), 0);
    }
}
