//! Every EQL rule of a detection-rules checkout compiles or is reported unsupported — never
//! Invalid (Elasticsearch accepts all of them). Set `DETECTION_RULES_DIR` to the `rules`
//! directory (its `linux`, `macos` and `cross-platform` subdirectories are read); without it
//! the test prints why it did nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use execsentry::eql::ast::{Query, QueryBody};
use execsentry::eql::{compile, compile_str, parser, ErrorKind, Options};
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
fn every_single_event_rule_compiles() {
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
    let empty = JsonDocument::new(serde_json::Map::new());
    let (mut ok, mut eql, mut items) = (0, 0, 0);
    let mut unsupported: BTreeMap<String, usize> = BTreeMap::new();
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
        match compile_str(q, &Options::default()) {
            Ok(p) => {
                ok += 1;
                // Evaluating on an event with no fields must not panic.
                let _ = p.matches(&empty);
            }
            Err(errs) => {
                let e = &errs[0];
                if e.kind == ErrorKind::Unsupported {
                    *unsupported.entry(e.message.clone()).or_default() += 1;
                } else {
                    failures.push(format!("{}: {:?}: {}", f.display(), e.kind, e.render(q)));
                }
            }
        }
    }
    let unsupported_total: usize = unsupported.values().sum();
    eprintln!(
        "{eql} EQL rules: {ok} compiled, {unsupported_total} unsupported, {} failed; \
         {items} sequence/sample items compiled as event queries",
        failures.len()
    );
    for (why, n) in &unsupported {
        eprintln!("  unsupported ({n}): {why}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert_eq!(ok + unsupported_total, eql);
}
