//! Every EQL rule of a detection-rules checkout compiles — sequences and samples included, none
//! unsupported, none invalid (Elasticsearch accepts all of them) — and evaluates: each query runs
//! with its state over a small stream of events without panicking. Set `DETECTION_RULES_DIR` to
//! the `rules` directory (its `linux`, `macos` and `cross-platform` subdirectories are read);
//! without it the test prints why it did nothing.

use std::path::{Path, PathBuf};

use execsentry::eql::ast::{Query, QueryBody};
use execsentry::eql::{compile, compile_query_str, parser, Clock, Options, Retain, StateLimits};
use execsentry::JsonDocument;

fn rule_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rule_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn every_rule_compiles_and_evaluates() {
    let Some(dir) = std::env::var_os("DETECTION_RULES_DIR") else {
        eprintln!("DETECTION_RULES_DIR is not set; skipping the rules corpus");
        return;
    };
    let dir = PathBuf::from(dir);
    let mut files = Vec::new();
    for sub in ["linux", "macos", "cross-platform"] {
        rule_files(&dir.join(sub), &mut files);
    }
    files.sort();
    assert!(!files.is_empty(), "no rule files under {}", dir.display());
    let stream = stream();
    let (mut ok, mut eql, mut items) = (0, 0, 0);
    let mut kinds = [0usize; 3];
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let doc: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let Some(rule) = doc.get("rule").and_then(|r| r.as_table()) else {
            continue;
        };
        if rule.get("language").and_then(|l| l.as_str()) != Some("eql") {
            continue;
        }
        eql += 1;
        let q = rule.get("query").and_then(|q| q.as_str()).unwrap_or("");
        // Sequence and sample items are event queries too: they must compile already.
        let ast =
            parser::parse(q).unwrap_or_else(|e| panic!("{}: {}", f.display(), e[0].render(q)));
        let parts = match &ast.body {
            QueryBody::Event(_) => vec![],
            QueryBody::Sequence(s) => s.items.iter().chain(&s.until).collect(),
            QueryBody::Sample(s) => s.items.iter().collect(),
        };
        for item in parts {
            items += 1;
            let single = Query {
                body: QueryBody::Event(item.query.clone()),
                pipes: vec![],
                span: item.span,
            };
            if let Err(e) = compile(&single, &Options::default()) {
                failures.push(format!(
                    "{} (sequence item): {:?}: {}",
                    f.display(),
                    e.kind,
                    e.render(q)
                ));
            }
        }
        match compile_query_str(q, &Options::default()) {
            Ok(compiled) => {
                ok += 1;
                // Evaluating must not panic, with or without state.
                let mut state = compiled.new_state(&StateLimits::default());
                let mut clock = Clock::new(0);
                for doc in &stream {
                    let Some(tick) = clock.tick(execsentry::Document::timestamp_ns(doc)) else {
                        continue;
                    };
                    let mut retain = Retain::new(doc);
                    state.on_event(&compiled, tick, &mut retain, &mut |_| {});
                }
                state.flush(&compiled, &mut |_| {});
                kinds[compiled.kind() as usize] += 1;
            }
            Err(errs) => {
                let e = &errs[0];
                failures.push(format!("{}: {:?}: {}", f.display(), e.kind, e.render(q)));
            }
        }
    }
    eprintln!(
        "{eql} EQL rules: {ok} compiled ({} event, {} sequence, {} sample), {} failed; \
         {items} sequence/sample items compiled as event queries",
        kinds[0],
        kinds[1],
        kinds[2],
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(ok, eql);
}

/// A few events of several categories and shapes, sharing keys, a second apart.
fn stream() -> Vec<JsonDocument> {
    let events = [
        serde_json::json!({"event": {"category": ["process"], "type": ["start"], "action": "exec"},
            "host": {"id": "h", "os": {"type": "linux"}}, "process": {"name": "bash", "pid": 1,
            "entity_id": "e1", "args": ["bash", "-c", "x"], "parent": {"name": "sshd", "pid": 0}},
            "user": {"id": "0", "name": "root"}}),
        serde_json::json!({"event": {"category": ["network"], "type": ["start"]},
            "host": {"id": "h", "os": {"type": "linux"}}, "process": {"name": "bash", "pid": 1,
            "entity_id": "e1"}, "source": {"ip": "10.0.0.1"}, "destination": {"ip": "8.8.8.8"}}),
        serde_json::json!({"event": {"category": "file", "type": "creation"},
            "host": {"id": "h", "os": {"type": "macos"}}, "file": {"path": "/tmp/x"},
            "process": {"entity_id": "e1"}}),
        serde_json::json!({}),
    ];
    (0..12)
        .map(|i| {
            let mut m = events[i % events.len()]
                .as_object()
                .cloned()
                .unwrap_or_default();
            m.insert(
                "@timestamp".into(),
                serde_json::json!(1_700_000_000_000i64 + i as i64 * 1000),
            );
            JsonDocument::new(m)
        })
        .collect()
}
