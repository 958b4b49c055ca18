//! EQL semantics as tables: every `tests/semantics/*.toml` case is a query, an event and the
//! expected outcome, with the reason for it. All failing cases are reported at once.
//!
//! A case is `[[case]]` with:
//! - `query`: EQL text;
//! - `event`: the document, as a JSON string (TOML has no null) or a TOML table;
//! - `expected`: `true`/`false` for [`Program::matches`], or `"null"` when the condition's
//!   three-valued result must be null (`Program::evaluate` is `None`);
//! - or `error`: `"syntax"`, `"invalid"` or `"unsupported"`, with an optional `message`
//!   substring, when compiling must fail;
//! - `why`: the basis — `doc` (Elastic's EQL reference), `src` (Elasticsearch/Lucene source),
//!   `infer` (inferred from ES internals, to confirm on a cluster), `own` (our decision);
//! - optional `missing = "kleene"` to compile with [`MissingPolicy::Kleene`].
//!
//! [`Program::matches`]: execsentry::eql::Program::matches

use std::path::{Path, PathBuf};

use execsentry::eql::{compile_str, ErrorKind, MissingPolicy, Options};
use execsentry::JsonDocument;
use serde::Deserialize;

#[derive(Deserialize)]
struct Table {
    #[serde(default)]
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    query: String,
    #[serde(default)]
    event: Option<toml::Value>,
    #[serde(default)]
    expected: Option<toml::Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
    why: String,
    #[serde(default)]
    missing: Option<String>,
}

fn table_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/semantics");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn document(v: &Option<toml::Value>) -> Result<JsonDocument, String> {
    let json = match v {
        None => serde_json::json!({}),
        Some(toml::Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| format!("event is not JSON: {e}"))?
        }
        Some(other) => serde_json::to_value(other).map_err(|e| e.to_string())?,
    };
    match json {
        serde_json::Value::Object(m) => Ok(JsonDocument::new(m)),
        _ => Err("event must be a JSON object".into()),
    }
}

/// Runs one case; `Err` describes the failure.
fn run(case: &Case) -> Result<(), String> {
    let missing = match case.missing.as_deref() {
        None | Some("pushdown") => MissingPolicy::EsPushdown,
        Some("kleene") => MissingPolicy::Kleene,
        Some(other) => return Err(format!("unknown missing policy {other:?}")),
    };
    let compiled = compile_str(&case.query, &Options { missing });
    if let Some(want) = &case.error {
        let kind = match want.as_str() {
            "syntax" => ErrorKind::Syntax,
            "invalid" => ErrorKind::Invalid,
            "unsupported" => ErrorKind::Unsupported,
            other => return Err(format!("unknown error kind {other:?}")),
        };
        return match compiled {
            Ok(_) => Err(format!("compiled, expected a {want} error")),
            Err(errs) => {
                let first = &errs[0];
                if first.kind != kind {
                    return Err(format!(
                        "expected {want} error, got {:?}: {}",
                        first.kind, first.message
                    ));
                }
                match &case.message {
                    Some(m) if !first.message.contains(m.as_str()) => {
                        Err(format!("error message {:?} lacks {m:?}", first.message))
                    }
                    _ => Ok(()),
                }
            }
        };
    }
    let program = compiled.map_err(|errs| {
        let e = &errs[0];
        format!("did not compile: {:?} {}", e.kind, e.render(&case.query))
    })?;
    let doc = document(&case.event)?;
    match &case.expected {
        Some(toml::Value::Boolean(b)) => {
            let got = program.matches(&doc);
            if got != *b {
                return Err(format!("matches = {got}, expected {b}"));
            }
        }
        Some(toml::Value::String(s)) if s == "null" => {
            let got = program.evaluate(&doc);
            if got.is_some() {
                return Err(format!("condition = {got:?}, expected null"));
            }
        }
        other => return Err(format!("bad `expected`: {other:?}")),
    }
    Ok(())
}

#[test]
fn semantics_tables() {
    let mut total = 0;
    let mut failures = Vec::new();
    for file in table_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let table: Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut n = 0;
        for (i, case) in table.case.iter().enumerate() {
            n += 1;
            if let Err(why) = run(case) {
                failures.push(format!(
                    "{name} case {} [{}]\n    query: {}\n    {why}",
                    i + 1,
                    case.why,
                    case.query.replace('\n', "\n           ")
                ));
            }
        }
        eprintln!("{name}: {n} cases");
        total += n;
    }
    eprintln!("{total} cases, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "{} of {total} semantics cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every function's documented example is true.
#[test]
fn function_examples_hold() {
    let mut failures = Vec::new();
    for f in execsentry::eql::functions::FUNCTIONS {
        let q = format!("any where {}", f.example);
        match compile_str(&q, &Options::default()) {
            Ok(p) => {
                if !p.matches(&document(&None).unwrap()) {
                    failures.push(format!("{}: {} is false", f.name, f.example));
                }
            }
            Err(e) => failures.push(format!(
                "{}: {} does not compile: {}",
                f.name, f.example, e[0].message
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Random queries assembled from EQL fragments: compiling never panics, and whatever
/// compiles evaluates without panicking on documents with odd shapes.
mod no_panic {
    use super::*;
    use proptest::prelude::*;

    /// One well-typed leaf (mostly): string fields with strings, numbers with numbers.
    fn atom() -> impl Strategy<Value = String> {
        let sfield = prop::sample::select(vec![
            "process.name",
            "process.args",
            "user.id",
            "x",
            "?y",
            "source.ip",
        ]);
        let nfield = prop::sample::select(vec!["process.pid", "x", "?y", "process.args_count"]);
        let slit = prop::sample::select(vec![
            "\"a*\"",
            "\"\"",
            "\"?\"",
            "\"É\"",
            "\"10.0.0.1\"",
            "\"bash\"",
            "null",
        ]);
        let nlit = prop::sample::select(vec!["1", "-1", "0", "2.5", "9223372036854775807", "null"]);
        let sop = prop::sample::select(vec!["==", "!=", "<", ">=", ":", "like", "like~"]);
        let nop = prop::sample::select(vec!["==", "!=", "<", ">="]);
        let re = prop::sample::select(vec![
            "\"[a-z]+\"",
            "\"a.*\"",
            "\"\"",
            "\"\\\\d{1,3}\"",
            "\"(ab|É)?\"",
        ]);
        prop_oneof![
            (sfield.clone(), sop, slit.clone()).prop_map(|(f, o, l)| format!("{f} {o} {l}")),
            (nfield.clone(), nop, nlit.clone()).prop_map(|(f, o, l)| format!("{f} {o} {l}")),
            (
                sfield.clone(),
                prop::sample::select(vec!["regex", "regex~"]),
                re
            )
                .prop_map(|(f, o, l)| format!("{f} {o} {l}")),
            (sfield.clone(), slit.clone(), slit.clone())
                .prop_map(|(f, a, b)| format!("{f} in~ ({a}, {b})")),
            (nfield.clone(), nlit.clone(), nlit.clone())
                .prop_map(|(f, a, b)| format!("{f} not in ({a}, {b})")),
            (sfield.clone(), nlit.clone()).prop_map(|(f, n)| format!("length({f}) > {n}")),
            (sfield.clone(), slit.clone()).prop_map(|(f, l)| format!("startsWith~({f}, {l})")),
            (sfield.clone(), slit.clone())
                .prop_map(|(f, l)| format!("between({f}, {l}, {l}) : {l}")),
            (sfield.clone(), nlit.clone(), slit.clone())
                .prop_map(|(f, n, l)| format!("substring({f}, {n}) == {l}")),
            (sfield.clone(), slit.clone(), nlit.clone())
                .prop_map(|(f, l, n)| format!("indexOf({f}, {l}, {n}) == {n}")),
            (sfield.clone(), nfield.clone())
                .prop_map(|(f, g)| format!("concat({f}, {g}) : \"*1*\"")),
            sfield
                .clone()
                .prop_map(|f| format!("cidrMatch({f}, \"10.0.0.0/8\", \"::1\")")),
            sfield.prop_map(|f| format!("number({f}) == 12")),
            (nfield.clone(), nlit.clone()).prop_map(|(f, n)| format!("{f} * 2 + {n} > {n}")),
            (nfield, nlit).prop_map(|(f, n)| format!("modulo({f}, 7) == {n}")),
            Just("process.interactive".to_owned()),
        ]
    }

    fn condition() -> impl Strategy<Value = String> {
        atom().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} and {b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
                inner.prop_map(|a| format!("not {a}")),
            ]
        })
    }

    fn docs() -> Vec<JsonDocument> {
        [
            serde_json::json!({}),
            serde_json::json!({"process": {"name": "bash", "args": ["a", ["b", null], 3, true, {"o": 1}],
                "pid": "12", "interactive": "true"}, "user.id": 0, "x": [1.5, "x"], "y": null,
                "source": {"ip": ["10.1.1.1", "zz", 7]}}),
            serde_json::json!({"process": {"name": ["É", ""], "pid": 9223372036854775807i64,
                "args": []}, "x": "9223372036854775807", "source.ip": "fe80::1"}),
        ]
        .into_iter()
        .map(|v| match v {
            serde_json::Value::Object(m) => JsonDocument::new(m),
            _ => unreachable!(),
        })
        .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn compile_and_evaluate_never_panic(cond in condition(), kleene in any::<bool>()) {
            let q = format!("any where {cond}");
            let missing = if kleene { MissingPolicy::Kleene } else { MissingPolicy::EsPushdown };
            if let Ok(p) = compile_str(&q, &Options { missing }) {
                for d in docs() {
                    let verdict = p.evaluate(&d);
                    prop_assert_eq!(p.matches(&d), verdict == Some(true));
                    // Pushdown leaves are two-valued, so the whole condition is too.
                    prop_assert!(kleene || verdict.is_some(), "{} is null under pushdown", q);
                }
            }
        }
    }

    /// The generator is useful: a good share of what it builds compiles and evaluates.
    #[test]
    fn generated_queries_mostly_compile() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strategy = condition();
        let n = 400;
        let ok = (0..n)
            .filter(|_| {
                let cond = strategy.new_tree(&mut runner).unwrap().current();
                compile_str(&format!("any where {cond}"), &Options::default()).is_ok()
            })
            .count();
        eprintln!("{ok} of {n} generated queries compiled");
        assert!(ok * 2 >= n, "only {ok} of {n} generated queries compiled");
    }
}
