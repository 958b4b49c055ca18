//! Properties of stateful queries on arbitrary event streams: no panic whatever the timestamps
//! (extremes, disorder, missing), the caps always hold, and every sequence result is ordered,
//! within `maxspan` and joined on one key.

use execsentry::eql::{compile_query_str, Clock, Hit, Options, Retain, StateLimits};
use execsentry::{Document, FieldPath, JsonDocument, Scalar};
use proptest::prelude::*;
use serde_json::json;

const QUERIES: &[(&str, Option<i64>)] = &[
    (
        r#"sequence by k with maxspan=100ms [process where n == "a"] [process where n == "b"] [process where n == "c"]"#,
        Some(100_000_000),
    ),
    (
        r#"sequence by k with maxspan=1s [process where n == "a"] with runs=3 ![process where n == "m"] [process where n : "b*"] until [process where n == "stop"]"#,
        Some(1_000_000_000),
    ),
    (
        r#"sequence by ?k with maxspan=50ms ![process where n == "m"] [process where n == "a"] ![process where n == "b"]"#,
        Some(50_000_000),
    ),
    (
        r#"sequence [process where true] by k [process where n == "a"] by k2"#,
        None,
    ),
    (
        r#"sample by k [process where n == "a"] [process where n == "b"] [process where n == "c"]"#,
        None,
    ),
    (
        r#"sequence by k with maxspan=1s [process where true] [process where true] | tail 3"#,
        Some(1_000_000_000),
    ),
];

/// (event number, timestamp, join key `k`) of an event in a result.
type Facts = (i64, Option<i64>, Option<i64>);

#[derive(Clone, Debug)]
struct Ev {
    ts: Option<i64>,
    name: &'static str,
    key: Option<u8>,
    key2: u8,
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        prop_oneof![
            Just(None),
            (0i64..2_000).prop_map(|ms| Some(ms * 1_000_000)),
            Just(Some(i64::MIN)),
            Just(Some(i64::MAX)),
            any::<i64>().prop_map(Some),
        ],
        prop::sample::select(vec!["a", "b", "b2", "c", "m", "stop", "x"]),
        prop::option::weighted(0.9, 0u8..4),
        0u8..3,
    )
        .prop_map(|(ts, name, key, key2)| Ev {
            ts,
            name,
            key,
            key2,
        })
}

fn doc(e: &Ev, id: usize) -> JsonDocument {
    let mut m = json!({"event": {"category": "process"}, "n": e.name, "id": id, "k2": e.key2})
        .as_object()
        .cloned()
        .unwrap();
    if let Some(k) = e.key {
        m.insert("k".into(), json!(k));
    }
    if let Some(ts) = e.ts {
        // Nanosecond timestamps go through RFC 3339 when they fit a date, else epoch millis.
        m.insert("@timestamp".into(), json!(ts / 1_000_000));
    }
    JsonDocument::new(m)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn stateful_queries_hold_their_invariants(
        events in prop::collection::vec(ev(), 0..120),
        tolerance_ms in 0i64..200,
        max_keys in 1usize..6,
        max_pending in 1usize..12,
    ) {
        let limits = StateLimits {
            max_keys,
            max_pending,
            late_tolerance_ns: tolerance_ms * 1_000_000,
        };
        let id = FieldPath::new("id");
        let key = FieldPath::new("k");
        for (query, maxspan) in QUERIES {
            let q = compile_query_str(query, &Options::default()).unwrap();
            let mut st = q.new_state(&limits);
            let mut clock = Clock::new(limits.late_tolerance_ns);
            let docs: Vec<JsonDocument> = events.iter().enumerate().map(|(i, e)| doc(e, i)).collect();
            let mut results: Vec<Vec<Option<Facts>>> = Vec::new();
            let facts = |d: &dyn Document| {
                let get = |f: &FieldPath| match d.values(f).first() {
                    Some(Scalar::Int(i)) => Some(i),
                    _ => None,
                };
                // An event without a timestamp takes the watermark's time: it sorts anywhere.
                (get(&id).unwrap_or(-1), d.timestamp_ns(), get(&key))
            };
            for d in &docs {
                let Some(tick) = clock.tick(d.timestamp_ns()) else { continue };
                let mut retain = Retain::new(d);
                st.on_event(&q, tick, &mut retain, &mut |hit| {
                    if let Hit::Match(m) = hit {
                        results.push(m.events.iter().map(|e| e.as_ref().map(|d| facts(&**d))).collect());
                    }
                });
                let s = st.stats();
                // Pipes hold results outside the caps; the states themselves stay within them.
                if !query.contains("| tail") {
                    prop_assert!(s.pending as usize <= max_pending, "{query}: {s:?}");
                }
                prop_assert!(s.keys as usize <= max_keys, "{query}: {s:?}");
            }
            st.flush(&q, &mut |m| {
                results.push(m.events.iter().map(|e| e.as_ref().map(|d| facts(&**d))).collect())
            });
            if query.starts_with("sample") {
                continue;
            }
            for r in &results {
                let present: Vec<&Facts> = r.iter().flatten().collect();
                prop_assert!(!present.is_empty());
                for w in present.windows(2) {
                    prop_assert!(w[0].0 < w[1].0, "{query}: events in arrival order: {r:?}");
                    if let (Some(a), Some(b)) = (w[0].1, w[1].1) {
                        prop_assert!(a <= b, "{query}: timestamps ordered: {r:?}");
                    }
                }
                let times: Vec<i64> = present.iter().filter_map(|e| e.1).collect();
                if let (Some(span), Some(first), Some(last)) = (maxspan, times.first(), times.last()) {
                    prop_assert!(last.saturating_sub(*first) <= *span, "{query}: within maxspan: {r:?}");
                }
                if query.starts_with("sequence by k ") {
                    prop_assert!(present.iter().all(|e| e.2.is_some() && e.2 == present[0].2), "{query}: {r:?}");
                }
            }
        }
    }
}
