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

/// The rule set's literal index (rules reached through the `process.name` etc. they pin) gives
/// exactly the verdicts of trying every rule, on events named after every literal the corpus
/// pins, in several cases.
#[test]
fn the_rule_index_never_changes_a_verdict() {
    let Some(set) = corpus_set() else {
        return;
    };
    let mut names: Vec<String> = Vec::new();
    for r in set.rules() {
        for (_, p) in r.query().items() {
            for field in ["process.name", "process.parent.name", "process.executable"] {
                if let Some(l) = p.literals(field) {
                    names.extend(l.exact);
                    names.extend(l.prefixes.iter().map(|p| format!("{p}x")));
                }
            }
        }
    }
    names.sort();
    names.dedup();
    let mut docs = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for variant in [n.clone(), n.to_uppercase()] {
            let parent = &names[(i * 7) % names.len()];
            docs.push(JsonDocument::new(
                serde_json::json!({
                    "event": {"category": ["process"], "type": ["start"], "action": "exec"},
                    "host": {"os": {"type": "linux"}},
                    "process": {"name": variant, "executable": format!("/usr/bin/{variant}"),
                        "args": [variant, "-c", "x"], "command_line": format!("{variant} -c x"),
                        "parent": {"name": parent, "executable": format!("/usr/sbin/{parent}")}}
                })
                .as_object()
                .cloned()
                .unwrap(),
            ));
        }
    }
    let mut hits = 0;
    for d in &docs {
        let mut indexed = Vec::new();
        set.evaluate(d, |r| indexed.push(r.index()));
        let brute = brute_force_verdicts(&set, d);
        assert_eq!(indexed, brute);
        hits += brute.len();
    }
    eprintln!(
        "{} rules ({:?} single-event/stateful reached through a literal index): same verdicts on {} events, {hits} matches",
        set.len(),
        set.indexed_count(),
        docs.len()
    );
    assert!(hits > 0);
}

/// Stateful rules too: the rule set (which skips a sequence for events none of its items can
/// match) gives the results of running every stateful rule on every event of its categories.
#[test]
fn the_stateful_index_never_changes_a_result() {
    let Some(set) = corpus_set() else {
        return;
    };
    // For every stateful rule, its items' literal names in item order (a pass at completing
    // it), then the same names shuffled among other rules' names.
    // (burst, name): each item three times (for `runs`), one burst per rule.
    let mut names: Vec<(usize, String)> = Vec::new();
    for (burst, r) in set
        .rules()
        .iter()
        .filter(|r| r.query().is_stateful())
        .enumerate()
    {
        for (_, p) in r.query().items() {
            let lit = ["process.name", "process.parent.name", "process.executable"]
                .iter()
                .find_map(|f| p.literals(f));
            let name = match lit {
                Some(l) => l
                    .exact
                    .first()
                    .cloned()
                    .or_else(|| l.prefixes.first().map(|p| format!("{p}x")))
                    .unwrap_or_default(),
                None => "unrelated".into(),
            };
            for _ in 0..3 {
                names.push((burst, name.clone()));
            }
        }
    }
    let cats = ["process", "process", "network", "file", "authentication"];
    let actions = [
        "exec",
        "executed",
        "connection_attempted",
        "creation",
        "rename",
        "ssh_login",
    ];
    let types = ["start", "creation", "change", "info"];
    let n = names.len();
    let docs: Vec<JsonDocument> = (0..n * 4)
        .map(|i| {
            let (burst, name) = if i < n {
                names[i].clone()
            } else {
                (i % 7, names[(i * 13) % n].1.clone())
            };
            let parent = &names[(i * 7) % n].1;
            JsonDocument::new(
                serde_json::json!({
                    "@timestamp": 1_700_000_000_000i64 + i as i64 * 100,
                    "id": i,
                    "event": {"category": [cats[i % cats.len()], "process"],
                              "type": [types[i % types.len()], "start"],
                              "action": actions[i % actions.len()],
                              "outcome": if i % 3 == 0 { "failure" } else { "success" }},
                    "host": {"id": "h", "os": {"type": "linux"}},
                    "user": {"name": "root", "id": "0"},
                    "source": {"ip": "10.0.0.1"},
                    "destination": {"ip": "8.8.8.8"},
                    "file": {"path": format!("/tmp/{name}"), "name": name, "extension": "sh"},
                    "process": {"name": name, "executable": format!("/usr/bin/{name}"),
                        "args": [name, "-c", "x"], "command_line": format!("{name} -c x"),
                        "pid": burst, "entity_id": format!("e{burst}"),
                        "parent": {"name": parent, "pid": burst,
                                   "entity_id": format!("e{burst}")}}
                })
                .as_object()
                .cloned()
                .unwrap(),
            )
        })
        .collect();
    let (via_set, brute) = stateful_results(&set, &docs);
    eprintln!(
        "{} stateful rules ({:?} indexed): {} results on {} events, the same either way",
        set.stateful_count(),
        set.indexed_count(),
        brute.len(),
        docs.len()
    );
    assert_eq!(via_set, brute);
    assert!(!brute.is_empty());
}

/// Every rule of the corpus (`DETECTION_RULES_DIR`: its `linux`, `macos` and
/// `cross-platform`), in one set; `None`, said on stderr, without the variable.
fn corpus_set() -> Option<execsentry::rules::RuleSet> {
    let Some(dir) = std::env::var_os("DETECTION_RULES_DIR") else {
        eprintln!("DETECTION_RULES_DIR is not set; skipping the rules corpus");
        return None;
    };
    let dir = PathBuf::from(dir);
    let mut reports = Vec::new();
    for sub in ["linux", "macos", "cross-platform"] {
        reports.extend(
            execsentry::rules::load::load_path(&dir.join(sub), &Options::default()).unwrap(),
        );
    }
    Some(execsentry::rules::RuleSet::from_reports(reports).0)
}

/// The single-event rules that match `d`, each tried on its own, in rule order.
fn brute_force_verdicts(set: &execsentry::rules::RuleSet, d: &JsonDocument) -> Vec<usize> {
    set.rules()
        .iter()
        .filter(|r| r.program().is_some_and(|p| p.matches(d)))
        .map(|r| r.index())
        .collect()
}

/// (rule index, the `id`s of a result's events).
type Results = Vec<(usize, Vec<i64>)>;

/// The stateful results of the rule set (index, item masks and all), and of every stateful rule
/// run on every event of its categories; both sorted. Also checks, event by event, that the
/// single-event hits of `evaluate_with_state` are the brute-force verdicts.
fn stateful_results(set: &execsentry::rules::RuleSet, docs: &[JsonDocument]) -> (Results, Results) {
    use execsentry::eql::Hit;
    use execsentry::{Document, FieldPath, Scalar};
    let id = FieldPath::new("id");
    let ids = |events: &[Option<execsentry::document::Retained>]| -> Vec<i64> {
        events
            .iter()
            .map(|e| match e.as_ref().and_then(|d| d.values(&id).first()) {
                Some(Scalar::Int(i)) => i,
                _ => -1,
            })
            .collect()
    };
    let mut via_set: Results = Vec::new();
    let mut state = set.new_state();
    for d in docs {
        // Single-event hits through the state (and its cache of index lookups) are the
        // brute-force verdicts too.
        let mut single = Vec::new();
        set.evaluate_with_state(d, &mut state, |rule, hit| match hit {
            Hit::Match(m) => via_set.push((rule.index(), ids(&m.events))),
            Hit::Event(_) => single.push(rule.index()),
        });
        let brute = brute_force_verdicts(set, d);
        assert_eq!(single, brute, "{:?}", d.to_json());
    }
    set.finish(&mut state, |rule, m| {
        via_set.push((rule.index(), ids(&m.events)))
    });
    let mut brute: Results = Vec::new();
    for rule in set.rules().iter().filter(|r| r.query().is_stateful()) {
        let q = rule.query();
        let mut st = q.new_state(&StateLimits::default());
        let mut clock = Clock::new(StateLimits::default().late_tolerance_ns);
        let cats = q.categories();
        for d in docs {
            let Some(tick) = clock.tick(d.timestamp_ns()) else {
                continue;
            };
            st.advance(q, tick.safe, &mut |m| {
                brute.push((rule.index(), ids(&m.events)))
            });
            let event_cats = d.values(&FieldPath::new("event.category"));
            let wanted = cats
                .as_ref()
                .is_none_or(|c| event_cats.any(|v| matches!(v, Scalar::Str(s) if c.contains(&s))));
            if wanted {
                let mut retain = Retain::new(d);
                st.on_event(q, tick, &mut retain, &mut |hit| {
                    if let Hit::Match(m) = hit {
                        brute.push((rule.index(), ids(&m.events)));
                    }
                });
            }
        }
        st.flush(q, &mut |m| brute.push((rule.index(), ids(&m.events))));
    }
    via_set.sort();
    brute.sort();
    (via_set, brute)
}

/// The index must hand every rule the events it matches when events hold exactly the
/// literals rules are indexed by: for each alternative of each item of each rule, events whose
/// fields hold one literal of each of its lists (equal to it, starting with it, or containing it, as
/// the literal requires), in the rule's case and upper-cased, next to the usual process
/// fields. Single-event verdicts and stateful results are compared with brute force.
#[test]
fn the_index_never_changes_a_result_on_events_made_of_its_literals() {
    use execsentry::document::set_path;
    use execsentry::eql::prefilter::AtomKind;
    let Some(set) = corpus_set() else {
        return;
    };
    let mut docs = Vec::new();
    for (n, rule) in set.rules().iter().enumerate() {
        let alternatives = rule.query().items().into_iter().flat_map(|(_, p)| {
            p.atom_alternatives(&|_, _| Some(0))
                .into_iter()
                .map(move |a| (p, a))
        });
        for (program, lists) in alternatives {
            for variant in 0..3 {
                let i = docs.len() as i64;
                let mut doc = serde_json::json!({
                    "@timestamp": 1_700_000_000_000i64 + i * 100,
                    "id": i,
                    "event": {"category": [program.category().unwrap_or("process")],
                              "type": ["start"], "action": "exec"},
                    "host": {"id": "h", "os": {"type": "linux"}},
                    "user": {"name": "root", "id": "0"},
                    "process": {"name": "bash", "executable": "/usr/bin/bash",
                        "args": ["bash", "-c", "x"], "command_line": "bash -c x",
                        "pid": n, "entity_id": format!("e{n}"),
                        "parent": {"name": "sshd", "pid": n, "entity_id": format!("e{n}")}}
                })
                .as_object()
                .cloned()
                .unwrap();
                for (j, (_, list)) in lists.iter().enumerate() {
                    let atom = &list[(variant + j) % list.len()];
                    let lit = String::from_utf8_lossy(atom.literal);
                    let mut value = match atom.kind {
                        AtomKind::Exact => lit.into_owned(),
                        AtomKind::Prefix => format!("{lit}q"),
                        AtomKind::Contains => format!("q{lit}q"),
                    };
                    if variant == 1 {
                        value = value.to_uppercase();
                    }
                    set_path(
                        &mut doc,
                        atom.field.as_str(),
                        serde_json::Value::from(value),
                    );
                }
                docs.push(JsonDocument::new(doc));
            }
        }
    }
    let mut hits = 0;
    for d in &docs {
        let mut indexed = Vec::new();
        set.evaluate(d, |r| indexed.push(r.index()));
        let brute = brute_force_verdicts(&set, d);
        assert_eq!(indexed, brute, "{:?}", execsentry::Document::to_json(d));
        hits += brute.len();
    }
    let (via_set, brute) = stateful_results(&set, &docs);
    eprintln!(
        "{} rules, {} events made of their literals: {hits} single-event matches, {} stateful \
         results, the same either way",
        set.len(),
        docs.len(),
        brute.len()
    );
    assert_eq!(via_set, brute);
    assert!(hits > 100, "{hits}");
    assert!(!brute.is_empty());
}
