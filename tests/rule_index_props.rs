//! The rule index (literals, prefixes, substrings, alternatives of an `or`, refining lists, the
//! per-state cache of lookups, item masks of sequences) never changes a result: arbitrary
//! rules over a few fields, arbitrary events drawn from the same small alphabet so that the
//! literals often (but not always) hit, results through the `RuleSet` equal to every rule run
//! on every event.

use execsentry::eql::{Clock, Hit, Options, Retain, StateLimits};
use execsentry::rules::load::load_source;
use execsentry::rules::{Origin, Outcome, RuleSet};
use execsentry::{Document, FieldPath, JsonDocument, Scalar};
use proptest::prelude::*;
use serde_json::json;

const FIELDS: &[&str] = &[
    "process.name",
    "process.args",
    "process.command_line",
    "process.parent.name",
    "user.id",
    "event.action",
];

/// Words values and literals are made of: cases, separators and numbers that fold, nest and
/// overlap.
const WORDS: &[&str] = &[
    "a", "b", "ab", "A", "B", "sh", "bash", "BASH", "-c", "/", "x/y", "0", "10",
];

fn word() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(WORDS), 1..3).prop_map(|w| w.concat())
}

/// A wildcard pattern: words with `*` and `?` around and between them.
fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            3 => word(),
            1 => Just("*".to_owned()),
            1 => Just("?".to_owned()),
        ],
        1..4,
    )
    .prop_map(|p| p.concat())
}

fn list(item: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop::collection::vec(item, 1..4).prop_map(|v| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

fn leaf() -> impl Strategy<Value = String> {
    let field = prop::sample::select(FIELDS);
    prop_oneof![
        (field.clone(), word()).prop_map(|(f, w)| format!("{f} == {w:?}")),
        (field.clone(), word()).prop_map(|(f, w)| format!("{f} != {w:?}")),
        (field.clone(), list(word())).prop_map(|(f, l)| format!("{f} in ({l})")),
        (field.clone(), list(word())).prop_map(|(f, l)| format!("{f} in~ ({l})")),
        (field.clone(), list(pattern())).prop_map(|(f, l)| format!("{f} : ({l})")),
        (field.clone(), list(pattern())).prop_map(|(f, l)| format!("{f} like ({l})")),
        (field.clone(), list(pattern())).prop_map(|(f, l)| format!("{f} like~ ({l})")),
        (field.clone(), word()).prop_map(|(f, w)| format!("{f} regex \".*{w}.*\"")),
        field.prop_map(|f| format!("{f} != null")),
        (0i64..12).prop_map(|n| format!("user.id == {n}")),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|v| format!("({})", v.join(" and "))),
            prop::collection::vec(inner.clone(), 2..4)
                .prop_map(|v| format!("({})", v.join(" or "))),
            inner.prop_map(|c| format!("not ({c})")),
        ]
    })
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => condition().prop_map(|c| format!("process where {c}")),
        1 => (condition(), condition()).prop_map(|(a, b)| {
            format!("sequence by user.id [process where {a}] [process where {b}]")
        }),
        1 => (condition(), condition(), condition()).prop_map(|(a, b, u)| {
            format!("sequence [process where {a}] [process where {b}] until [process where {u}]")
        }),
    ]
}

fn event() -> impl Strategy<Value = serde_json::Value> {
    (
        word(),
        prop::collection::vec(word(), 0..4),
        word(),
        prop_oneof![
            word().prop_map(serde_json::Value::from),
            (0i64..12).prop_map(serde_json::Value::from)
        ],
        prop::sample::select(vec!["exec", "EXEC", "end", "a"]),
    )
        .prop_map(|(name, args, parent, user, action)| {
            json!({
                "event": {"category": "process", "action": action},
                "process": {"name": name, "args": args.clone(), "command_line": args.join(" "),
                            "parent": {"name": parent}},
                "user": {"id": user},
            })
        })
}

fn rule_set(queries: &[String]) -> RuleSet {
    let rules = queries
        .iter()
        .enumerate()
        .filter_map(|(i, q)| {
            let src = format!(
                "[rule]\nname = \"r{i}\"\nrule_id = \"r{i}\"\ndescription = \"t\"\n\
                 severity = \"low\"\nrisk_score = 21\ntype = \"eql\"\nquery = '''\n{q}\n'''\n"
            );
            match load_source(Origin::Builtin("props"), &src, &Options::default()).outcome {
                Outcome::Ok(r) => Some(*r),
                // Type errors (a number compared with a pattern) are the compiler's business.
                _ => None,
            }
        })
        .collect();
    RuleSet::new(rules)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_index_never_changes_a_result(
        queries in prop::collection::vec(query(), 1..12),
        events in prop::collection::vec(event(), 1..40),
    ) {
        let set = rule_set(&queries);
        let id = FieldPath::new("id");
        let docs: Vec<JsonDocument> = events
            .into_iter()
            .enumerate()
            .map(|(i, mut e)| {
                e["id"] = json!(i);
                e["@timestamp"] = json!(1_700_000_000_000i64 + i as i64);
                JsonDocument::new(e.as_object().cloned().unwrap_or_default())
            })
            .collect();
        let ids = |events: &[Option<execsentry::document::Retained>]| -> Vec<i64> {
            events
                .iter()
                .map(|e| match e.as_ref().and_then(|d| d.values(&id).first()) {
                    Some(Scalar::Int(i)) => i,
                    _ => -1,
                })
                .collect()
        };
        // Through the set: stateless verdicts, and everything through one state.
        let mut state = set.new_state();
        let mut via_set = Vec::new();
        for d in &docs {
            let mut stateless = Vec::new();
            set.evaluate(d, |r| stateless.push(r.index()));
            let mut single = Vec::new();
            set.evaluate_with_state(d, &mut state, |r, hit| match hit {
                Hit::Event(_) => single.push(r.index()),
                Hit::Match(m) => via_set.push((r.index(), ids(&m.events))),
            });
            let brute: Vec<usize> = set
                .rules()
                .iter()
                .filter(|r| r.program().is_some_and(|p| p.matches(d)))
                .map(|r| r.index())
                .collect();
            prop_assert_eq!(&stateless, &brute);
            prop_assert_eq!(&single, &brute);
        }
        set.finish(&mut state, |r, m| via_set.push((r.index(), ids(&m.events))));
        // Every stateful rule on every event.
        let mut brute = Vec::new();
        for rule in set.rules().iter().filter(|r| r.query().is_stateful()) {
            let q = rule.query();
            let mut st = q.new_state(&StateLimits::default());
            let mut clock = Clock::new(StateLimits::default().late_tolerance_ns);
            for d in &docs {
                let Some(tick) = clock.tick(d.timestamp_ns()) else { continue };
                st.advance(q, tick.safe, &mut |m| brute.push((rule.index(), ids(&m.events))));
                let mut retain = Retain::new(d);
                st.on_event(q, tick, &mut retain, &mut |hit| {
                    if let Hit::Match(m) = hit {
                        brute.push((rule.index(), ids(&m.events)));
                    }
                });
            }
            st.flush(q, &mut |m| brute.push((rule.index(), ids(&m.events))));
        }
        via_set.sort();
        brute.sort();
        prop_assert_eq!(via_set, brute);
    }
}
