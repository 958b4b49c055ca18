//! What the rule engine sees of an event: field values looked up by a path resolved once.
//!
//! Two kinds of documents implement [`Document`]: the typed [`crate::event::ProcessEvent`] that
//! the live sources build, and [`JsonDocument`], any ECS NDJSON line as an agent wrote it (nested
//! objects or dotted keys). A rule compiled once evaluates against either; the lookup never
//! allocates.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

/// One value of a field, borrowed from the document.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// The values of one field: absent, one, or several (ECS arrays such as `process.args`).
///
/// A predicate on a multi-valued field holds when any value satisfies it, so every consumer
/// goes through [`Values::any`] or [`Values::iter`].
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    Missing,
    One(Scalar<'a>),
    Strs(&'a [String]),
    StaticStrs(&'a [&'static str]),
    /// A JSON array; nested arrays are flattened, objects skipped.
    Json(&'a [Value]),
}

impl<'a> Values<'a> {
    pub fn is_missing(&self) -> bool {
        matches!(self, Values::Missing)
    }

    /// True when some value satisfies `f`. Missing fields have no values.
    #[inline]
    pub fn any(&self, mut f: impl FnMut(Scalar<'a>) -> bool) -> bool {
        match *self {
            Values::Missing => false,
            Values::One(s) => f(s),
            Values::Strs(v) => v.iter().any(|s| f(Scalar::Str(s))),
            Values::StaticStrs(v) => v.iter().any(|s| f(Scalar::Str(s))),
            Values::Json(v) => json_any(v, &mut f),
        }
    }

    /// Every value, in order (JSON arrays flattened). Allocates only for nested JSON arrays.
    pub fn iter(&self) -> impl Iterator<Item = Scalar<'a>> + 'a {
        let mut out: Vec<Scalar<'a>> = Vec::new();
        self.any(|s| {
            out.push(s);
            false
        });
        out.into_iter()
    }

    /// The single value, or the first of several; `None` when missing or an empty array.
    pub fn first(&self) -> Option<Scalar<'a>> {
        let mut first = None;
        self.any(|s| {
            first = Some(s);
            true
        });
        first
    }

    /// How many values (an empty array counts 0, a scalar 1).
    pub fn count(&self) -> usize {
        let mut n = 0;
        self.any(|_| {
            n += 1;
            false
        });
        n
    }

    /// True when the field holds an array (even of one element).
    pub fn is_array(&self) -> bool {
        matches!(
            self,
            Values::Strs(_) | Values::StaticStrs(_) | Values::Json(_)
        )
    }
}

fn json_any<'a>(v: &'a [Value], f: &mut impl FnMut(Scalar<'a>) -> bool) -> bool {
    v.iter().any(|x| match x {
        Value::Array(inner) => json_any(inner, f),
        other => json_scalar(other).is_some_and(&mut *f),
    })
}

/// A JSON value as a scalar; objects and arrays have none.
pub fn json_scalar(v: &Value) -> Option<Scalar<'_>> {
    Some(match v {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Scalar::Int(i),
            None => Scalar::Float(n.as_f64()?),
        },
        Value::String(s) => Scalar::Str(s),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// A field path resolved once, at rule compile time.
///
/// `known` is the typed accessor used by [`crate::event::ProcessEvent`]; `dotted` is the path
/// that generic documents walk. Both come from [`FieldPath::new`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldPath {
    dotted: Box<str>,
    known: Option<crate::event::KnownField>,
    /// Process-wide number of this path, so per-event caches can be plain arrays.
    id: u32,
}

impl FieldPath {
    pub fn new(dotted: &str) -> FieldPath {
        FieldPath {
            known: crate::event::KnownField::from_path(dotted),
            dotted: dotted.into(),
            id: intern(dotted),
        }
    }

    /// The same number for the same path, everywhere in the process.
    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn as_str(&self) -> &str {
        &self.dotted
    }

    pub fn known(&self) -> Option<crate::event::KnownField> {
        self.known
    }
}

/// Numbers field paths in the order they are first compiled (rule loading, not the hot path).
fn intern(path: &str) -> u32 {
    static IDS: OnceLock<Mutex<HashMap<Box<str>, u32>>> = OnceLock::new();
    let mut ids = IDS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let next = ids.len() as u32;
    *ids.entry(path.into()).or_insert(next)
}

/// Anything rules can be evaluated against.
pub trait Document {
    /// The values of a field. Never allocates.
    fn values(&self, field: &FieldPath) -> Values<'_>;

    /// Event time in nanoseconds since the Unix epoch, when the document has one.
    fn timestamp_ns(&self) -> Option<i64>;

    /// The document in ECS JSON form, as an alert carries it.
    fn to_json(&self) -> Value;

    /// An owned copy that outlives the call that saw the document: a sequence keeps its
    /// earlier events this way until it completes. The default goes through [`Self::to_json`];
    /// documents that can share their parts (`Arc`s) should override it.
    fn retain(&self) -> Retained {
        match self.to_json() {
            Value::Object(map) => Arc::new(JsonDocument::new(map)),
            other => {
                let mut map = Map::new();
                map.insert("execsentry.document".into(), other);
                Arc::new(JsonDocument::new(map))
            }
        }
    }
}

/// A document kept by stateful rules (sequences, samples, `| tail`), shared between every
/// partial match that holds it.
pub type Retained = Arc<dyn Document + Send + Sync>;

impl std::fmt::Debug for dyn Document + Send + Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// An ECS document as read from NDJSON, evaluated and passed through unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonDocument {
    root: Map<String, Value>,
    timestamp_ns: Option<i64>,
}

impl JsonDocument {
    /// Wraps a parsed JSON object; `@timestamp` is parsed once here.
    pub fn new(root: Map<String, Value>) -> JsonDocument {
        let timestamp_ns = match root.get("@timestamp") {
            Some(Value::String(s)) => crate::time::parse_rfc3339_ns(s),
            Some(Value::Number(n)) => n.as_i64().and_then(|ms| ms.checked_mul(1_000_000)),
            _ => None,
        };
        JsonDocument { root, timestamp_ns }
    }

    pub fn root(&self) -> &Map<String, Value> {
        &self.root
    }

    pub fn into_root(self) -> Map<String, Value> {
        self.root
    }
}

impl Document for JsonDocument {
    fn values(&self, field: &FieldPath) -> Values<'_> {
        json_values(lookup(&self.root, field.as_str()))
    }

    fn timestamp_ns(&self) -> Option<i64> {
        self.timestamp_ns
    }

    fn to_json(&self) -> Value {
        Value::Object(self.root.clone())
    }

    fn retain(&self) -> Retained {
        Arc::new(self.clone())
    }
}

/// Paths whose lookups [`CachedJson`] remembers; later ones are looked up every time.
const CACHED_FIELDS: usize = 256;

/// A [`JsonDocument`] for the duration of one rule-set evaluation, remembering each field's
/// lookup: a corpus of rules asks for the same few fields (`event.type`, `host.os.type`,
/// `process.name`) hundreds of times per event, and walking a JSON tree for each is what
/// dominated replay with many rules loaded.
pub struct CachedJson<'a> {
    doc: &'a JsonDocument,
    cache: [Cell<Option<Option<&'a Value>>>; CACHED_FIELDS],
}

impl<'a> CachedJson<'a> {
    pub fn new(doc: &'a JsonDocument) -> CachedJson<'a> {
        CachedJson {
            doc,
            cache: [const { Cell::new(None) }; CACHED_FIELDS],
        }
    }

    fn lookup(&self, field: &FieldPath) -> Option<&'a Value> {
        let Some(slot) = self.cache.get(field.id() as usize) else {
            return lookup(&self.doc.root, field.as_str());
        };
        if let Some(hit) = slot.get() {
            return hit;
        }
        let found = lookup(&self.doc.root, field.as_str());
        slot.set(Some(found));
        found
    }
}

impl Document for CachedJson<'_> {
    fn values(&self, field: &FieldPath) -> Values<'_> {
        json_values(self.lookup(field))
    }

    fn timestamp_ns(&self) -> Option<i64> {
        self.doc.timestamp_ns
    }

    fn to_json(&self) -> Value {
        self.doc.to_json()
    }

    fn retain(&self) -> Retained {
        Arc::new(self.doc.clone())
    }
}

fn json_values(found: Option<&Value>) -> Values<'_> {
    match found {
        None => Values::Missing,
        Some(Value::Array(a)) => Values::Json(a),
        Some(v) => json_scalar(v).map_or(Values::Missing, Values::One),
    }
}

/// Finds `path` in an object that may nest (`{"process":{"name":..}}`), use dotted keys
/// (`{"process.name":..}`), or mix both (`{"process":{"parent.name":..}}`).
///
/// The longest matching key wins at each level, so a flattened key beats a partial object.
/// Arrays of objects on the way (rare in ECS, e.g. `threat`) are searched element by element
/// and yield the first element that has the rest of the path.
pub fn lookup<'a>(obj: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = obj.get(path) {
        return Some(v);
    }
    // Try every split point, longest head first: "a.b.c" → "a.b" + "c", then "a" + "b.c".
    let mut end = path.len();
    while let Some(dot) = path[..end].rfind('.') {
        let (head, rest) = (&path[..dot], &path[dot + 1..]);
        if let Some(v) = obj.get(head) {
            match v {
                Value::Object(inner) => {
                    if let Some(found) = lookup(inner, rest) {
                        return Some(found);
                    }
                }
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(inner) = item {
                            if let Some(found) = lookup(inner, rest) {
                                return Some(found);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        end = dot;
    }
    None
}

/// Sets `path` in `obj`, following the document's own shape: an existing dotted key is replaced
/// in place, an existing object is descended into, and otherwise nested objects are created.
pub fn set_path(obj: &mut Map<String, Value>, path: &str, value: Value) {
    if obj.contains_key(path) {
        obj.insert(path.to_owned(), value);
        return;
    }
    let mut end = path.len();
    while let Some(dot) = path[..end].rfind('.') {
        let head = &path[..dot];
        if let Some(Value::Object(inner)) = obj.get_mut(head) {
            set_path(inner, &path[dot + 1..], value);
            return;
        }
        end = dot;
    }
    match path.split_once('.') {
        None => {
            obj.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let slot = obj
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                set_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> JsonDocument {
        match v {
            Value::Object(m) => JsonDocument::new(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn nested_dotted_and_mixed_keys_resolve_alike() {
        let f = FieldPath::new("process.parent.name");
        for d in [
            json!({"process": {"parent": {"name": "sshd"}}}),
            json!({"process.parent.name": "sshd"}),
            json!({"process": {"parent.name": "sshd"}}),
            json!({"process.parent": {"name": "sshd"}}),
        ] {
            assert_eq!(doc(d).values(&f).first(), Some(Scalar::Str("sshd")));
        }
        assert!(doc(json!({"process": {"name": "x"}}))
            .values(&f)
            .is_missing());
    }

    #[test]
    fn arrays_are_multi_valued_and_flattened() {
        let d = doc(json!({"process": {"args": ["a", ["b", "c"], {"x": 1}, 3]}}));
        let v = d.values(&FieldPath::new("process.args"));
        assert_eq!(
            v.iter().collect::<Vec<_>>(),
            vec![
                Scalar::Str("a"),
                Scalar::Str("b"),
                Scalar::Str("c"),
                Scalar::Int(3)
            ]
        );
        assert_eq!(v.count(), 4);
    }

    #[test]
    fn set_path_follows_the_document_shape() {
        let mut m = json!({"event.kind": "event", "rule": {"x": 1}})
            .as_object()
            .unwrap()
            .clone();
        set_path(&mut m, "event.kind", json!("alert"));
        set_path(&mut m, "rule.id", json!("r"));
        set_path(&mut m, "threat.framework", json!("MITRE ATT&CK"));
        assert_eq!(
            Value::Object(m),
            json!({"event.kind": "alert", "rule": {"x": 1, "id": "r"},
                   "threat": {"framework": "MITRE ATT&CK"}})
        );
    }

    #[test]
    fn cached_lookups_agree_with_direct_ones() {
        let d =
            doc(json!({"process": {"name": "bash", "args": ["a", "b"]}, "event.type": "start"}));
        let cached = CachedJson::new(&d);
        for path in [
            "process.name",
            "process.args",
            "event.type",
            "missing.field",
            "process.name",
        ] {
            let f = FieldPath::new(path);
            let direct: Vec<Scalar> = d.values(&f).iter().collect();
            assert_eq!(
                cached.values(&f).iter().collect::<Vec<_>>(),
                direct,
                "{path}"
            );
            assert_eq!(
                cached.values(&f).iter().collect::<Vec<_>>(),
                direct,
                "{path} (cached)"
            );
        }
        assert_eq!(
            FieldPath::new("process.name").id(),
            FieldPath::new("process.name").id()
        );
        assert_ne!(
            FieldPath::new("process.name").id(),
            FieldPath::new("process.args").id()
        );
    }

    #[test]
    fn timestamp_parsed_once() {
        let d = doc(json!({"@timestamp": "2026-11-28T06:43:33.123Z"}));
        assert_eq!(d.timestamp_ns(), Some(1_795_848_213_123_000_000));
    }
}
