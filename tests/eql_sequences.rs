//! Stateful EQL semantics as tables: every `tests/sequences/*.toml` case is a query, a stream
//! of events and the results expected, with the reason for each. All failures are reported at
//! once.
//!
//! A case is `[[case]]` with:
//! - `query`: EQL text (a sequence, a sample, or any query with pipes);
//! - `events`: the stream, in arrival order; each a TOML table (dotted keys in quotes are
//!   flattened ECS fields, `"@timestamp"` a number of milliseconds or an RFC 3339 string) or a
//!   JSON string. Events are numbered from 1; an event without `event.category` gets
//!   `"process"`;
//! - `expected`: the results in emission order, each the list of its events' numbers in item
//!   order, `-1` for a missing-event placeholder;
//! - optional `at`: for each result, the number of the event whose arrival emitted it, or 0
//!   for the end of input (delayed emission);
//! - optional `tolerance_ms` (late-event tolerance, default 0), `max_keys`, `max_pending`,
//!   `retention_ms` (sample retention);
//! - optional `stats`: counters the run must end with (`expired = 1`, `evicted_keys = 2`, ...);
//! - or `error` (`"syntax"`, `"invalid"`) with an optional `message` substring;
//! - `why`: the basis — `doc`, `src` (Elasticsearch source or QA tests), `py`, `own`.

use std::path::{Path, PathBuf};

use execsentry::eql::{compile_query_str, Clock, ErrorKind, Hit, Options, StateLimits, StateStats};
use execsentry::{Document, FieldPath, JsonDocument, Scalar};
use serde::Deserialize;
use serde_json::Value;

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
    events: Vec<toml::Value>,
    #[serde(default)]
    expected: Option<Vec<Vec<i64>>>,
    #[serde(default)]
    at: Option<Vec<usize>>,
    #[serde(default)]
    tolerance_ms: Option<i64>,
    #[serde(default)]
    max_keys: Option<usize>,
    #[serde(default)]
    max_pending: Option<usize>,
    #[serde(default)]
    retention_ms: Option<i64>,
    #[serde(default)]
    stats: Option<toml::Table>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
    why: String,
}

fn table_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sequences");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn event(v: &toml::Value, id: usize) -> Result<JsonDocument, String> {
    let json = match v {
        toml::Value::String(s) => {
            serde_json::from_str(s).map_err(|e| format!("event {id} is not JSON: {e}"))?
        }
        other => serde_json::to_value(other).map_err(|e| e.to_string())?,
    };
    let Value::Object(mut m) = json else {
        return Err(format!("event {id} must be an object"));
    };
    let has_category = m.contains_key("event.category")
        || m.get("event").and_then(|e| e.get("category")).is_some();
    if !has_category {
        m.insert("event.category".into(), "process".into());
    }
    m.insert("execsentry_test_id".into(), (id as i64).into());
    Ok(JsonDocument::new(m))
}

fn stat(s: &StateStats, name: &str) -> Option<u64> {
    Some(match name {
        "keys" => s.keys,
        "pending" => s.pending,
        "peak_pending" => s.peak_pending,
        "completed" => s.completed,
        "overwritten" => s.overwritten,
        "expired" => s.expired,
        "until" => s.until,
        "missing" => s.missing,
        "out_of_order" => s.out_of_order,
        "evicted_keys" => s.evicted_keys,
        "evicted_pending" => s.evicted_pending,
        _ => return None,
    })
}

/// Runs one case; `Err` describes the failure.
fn run(case: &Case) -> Result<(), String> {
    let compiled = compile_query_str(&case.query, &Options::default());
    if let Some(want) = &case.error {
        let kind = match want.as_str() {
            "syntax" => ErrorKind::Syntax,
            "invalid" => ErrorKind::Invalid,
            "unsupported" => ErrorKind::Unsupported,
            other => return Err(format!("unknown error kind {other:?}")),
        };
        return match compiled {
            Ok(_) => Err(format!("compiled, expected a {want} error")),
            Err(errs) if errs[0].kind != kind => Err(format!(
                "expected {want}, got {:?}: {}",
                errs[0].kind, errs[0].message
            )),
            Err(errs) => match &case.message {
                Some(m) if !errs[0].message.contains(m.as_str()) => {
                    Err(format!("message {:?} lacks {m:?}", errs[0].message))
                }
                _ => Ok(()),
            },
        };
    }
    let mut q = compiled.map_err(|e| format!("did not compile: {}", e[0].render(&case.query)))?;
    if let Some(ms) = case.retention_ms {
        q.set_sample_retention(ms * 1_000_000);
    }
    let defaults = StateLimits::default();
    let limits = StateLimits {
        max_keys: case.max_keys.unwrap_or(defaults.max_keys),
        max_pending: case.max_pending.unwrap_or(defaults.max_pending),
        late_tolerance_ns: case.tolerance_ms.unwrap_or(0) * 1_000_000,
    };
    let mut state = q.new_state(&limits);
    let mut clock = Clock::new(limits.late_tolerance_ns);
    let id_field = FieldPath::new("execsentry_test_id");
    let id_of = |d: &dyn Document| match d.values(&id_field).first() {
        Some(Scalar::Int(i)) => i,
        _ => 0,
    };
    let mut got: Vec<(Vec<i64>, usize)> = Vec::new();
    for (i, v) in case.events.iter().enumerate() {
        let doc = event(v, i + 1)?;
        let Some(tick) = clock.tick(doc.timestamp_ns()) else {
            continue;
        };
        let mut retain = execsentry::eql::Retain::new(&doc);
        state.on_event(&q, tick, &mut retain, &mut |hit| match hit {
            Hit::Event(d) => got.push((vec![id_of(d)], i + 1)),
            Hit::Match(m) => got.push((
                m.events
                    .iter()
                    .map(|e| e.as_ref().map_or(-1, |d| id_of(&**d)))
                    .collect(),
                i + 1,
            )),
        });
    }
    state.flush(&q, &mut |m| {
        got.push((
            m.events
                .iter()
                .map(|e| e.as_ref().map_or(-1, |d| id_of(&**d)))
                .collect(),
            0,
        ))
    });
    let results: Vec<Vec<i64>> = got.iter().map(|(r, _)| r.clone()).collect();
    let want = case.expected.clone().unwrap_or_default();
    if results != want {
        return Err(format!("results {results:?}, expected {want:?}"));
    }
    if let Some(at) = &case.at {
        let got_at: Vec<usize> = got.iter().map(|(_, a)| *a).collect();
        if &got_at != at {
            return Err(format!("emitted at {got_at:?}, expected at {at:?}"));
        }
    }
    if let Some(want) = &case.stats {
        let s = state.stats();
        for (name, v) in want {
            let have = stat(&s, name).ok_or_else(|| format!("unknown stat {name}"))?;
            let v = v.as_integer().ok_or("stats values are integers")? as u64;
            if have != v {
                return Err(format!("stat {name} = {have}, expected {v} ({s:?})"));
            }
        }
    }
    Ok(())
}

#[test]
fn sequence_tables() {
    let mut total = 0;
    let mut failures = Vec::new();
    for file in table_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let table: Table =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (i, case) in table.case.iter().enumerate() {
            total += 1;
            if let Err(why) = run(case) {
                failures.push(format!(
                    "{name} case {} [{}]\n    query: {}\n    {why}",
                    i + 1,
                    case.why,
                    case.query.trim().replace('\n', "\n           ")
                ));
            }
        }
        eprintln!("{name}: {} cases", table.case.len());
    }
    assert!(total > 0, "no cases found");
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
