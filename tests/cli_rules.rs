//! `execsentry rules check` and `rules list`, run as a user would.

mod cli_support;

use cli_support::{run, TempDir};

const SEED_ID: &str = "a1a0375f-22c2-48c0-81a4-7c2d11cc6856";

const GOOD: &str = r#"[metadata]
creation_date = "2026/11/01"
maturity = "production"

[rule]
author = ["Test"]
description = "A shell started by a web server."
language = "eql"
license = "Apache-2.0"
name = "Web server spawns a shell"
risk_score = 47
rule_id = "11111111-2222-4333-8444-555555555555"
severity = "medium"
type = "eql"
query = '''
process where event.type == "start" and
  process.name in ("sh", "bash") and
  process.parent.name : ("nginx", "httpd", "php-fpm*")
'''
"#;

const KUERY: &str = r#"[rule]
author = ["Test"]
description = "Not EQL."
language = "kuery"
name = "A KQL rule"
risk_score = 21
rule_id = "22222222-2222-4333-8444-555555555555"
severity = "low"
type = "query"
query = '''
event.category:process and process.name:bash
'''
"#;

/// The bad token is the single `=` on the query's third line.
const BAD_LITERAL: &str = r#"[rule]
author = ["Test"]
description = "Uses = instead of ==."
language = "eql"
name = "Bad query in a literal string"
risk_score = 21
rule_id = "33333333-2222-4333-8444-555555555555"
severity = "low"
type = "eql"
query = '''
process where event.type == "start" and
  process.name == "bash" and
  process.pid = 1
'''
"#;

/// The query is a basic string with escapes before the bad token, so decoded offsets and file
/// offsets differ.
const BAD_BASIC: &str = "[rule]\nname = \"Bad query in a basic string\"\nrule_id = \"44444444-2222-4333-8444-555555555555\"\ndescription = \"x\"\nseverity = \"low\"\nrisk_score = 21\ntype = \"eql\"\nquery = \"process where process.name : \\\"a\\\\tb\\u00e9\\\" and process.pid = 1\"\n";

const BROKEN_TOML: &str = "[rule]\nname = \"never closed\nrule_id = \"x\"\n";

/// (file name, 1-based line, 1-based column) of the first `=` followed by ` 1` in `src`.
fn position_of_bad_token(src: &str) -> (usize, usize) {
    let offset = src.find("pid = 1").unwrap() + "pid ".len();
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;
    (line, col)
}

fn rules_dir() -> TempDir {
    let dir = TempDir::new("rules");
    dir.write("a/good.toml", GOOD);
    dir.write("a/kuery.toml", KUERY);
    dir.write("b/bad_literal.toml", BAD_LITERAL);
    dir.write("b/nested/bad_basic.toml", BAD_BASIC);
    dir.write("c/broken.toml", BROKEN_TOML);
    dir.write("c/readme.md", "not a rule");
    dir
}

/// The output line that starts with `status` and mentions `file`, and the lines after it.
fn entry<'a>(out: &'a str, status: &str, file: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(status) && l.contains(file))
        .unwrap_or_else(|| panic!("no `{status}` line for {file} in:\n{out}"));
    lines[i..].to_vec()
}

#[test]
fn check_reports_every_rule_and_fails_on_errors() {
    let dir = rules_dir();
    let r = run(&[
        "rules".as_ref(),
        "check".as_ref(),
        "--no-builtin-rules".as_ref(),
        "--rules".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert_eq!(r.code, Some(1), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;

    // Files are visited recursively, in path order; readme.md is not a rule.
    let order: Vec<&str> = [
        "good.toml",
        "kuery.toml",
        "bad_literal.toml",
        "bad_basic.toml",
        "broken.toml",
    ]
    .into_iter()
    .map(|f| {
        let i = out.find(f).unwrap_or_else(|| panic!("{f} missing:\n{out}"));
        (i, f)
    })
    .collect::<std::collections::BTreeMap<_, _>>()
    .into_values()
    .collect();
    assert_eq!(
        order,
        [
            "good.toml",
            "kuery.toml",
            "bad_literal.toml",
            "bad_basic.toml",
            "broken.toml"
        ]
    );
    assert!(!out.contains("readme.md"));

    let ok = entry(out, "ok ", "good.toml");
    assert!(ok[0].contains("Web server spawns a shell"), "{}", ok[0]);

    let skipped = entry(out, "skipped ", "kuery.toml");
    assert!(
        skipped[0].contains("A KQL rule")
            && skipped[0]
                .contains("type \"query\", language \"kuery\": only EQL rules are evaluated"),
        "{}",
        skipped[0]
    );

    for (name, src) in [
        ("bad_literal.toml", BAD_LITERAL),
        ("bad_basic.toml", BAD_BASIC),
    ] {
        let (line, col) = position_of_bad_token(src);
        let e = entry(out, "error ", name);
        let want = format!("{name}:{line}:{col}: ");
        assert!(e[0].contains(&want), "want {want} in: {}", e[0]);
        // The snippet shows the file's line with a caret under the `=`.
        let text = e[1];
        let caret = e[2];
        assert!(text.contains("process.pid = 1"), "{text}");
        let caret_at = caret.find('^').expect("caret line");
        assert_eq!(&text[caret_at..caret_at + 1], "=", "\n{text}\n{caret}");
    }

    let broken = entry(out, "error ", "broken.toml");
    assert!(broken[0].contains("broken.toml:2:"), "{}", broken[0]);
    assert!(broken[1].contains("name = \"never closed"), "{}", broken[1]);

    let summary = out.lines().last().unwrap();
    assert_eq!(summary, "5 rules: 1 ok, 0 unsupported, 1 skipped, 3 errors");
}

#[test]
fn check_passes_without_errors() {
    let dir = TempDir::new("rules-ok");
    let good = dir.write("good.toml", GOOD);
    dir.write("kuery.toml", KUERY);
    let r = run(&[
        "rules".as_ref(),
        "check".as_ref(),
        "--rules".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r
        .stdout
        .contains("builtin:execution_revershell_via_shell_cmd.toml"));
    assert_eq!(
        r.stdout.lines().last().unwrap(),
        "4 rules: 3 ok, 0 unsupported, 1 skipped, 0 errors"
    );
    // A single file works too.
    let r = run(&[
        "rules".as_ref(),
        "check".as_ref(),
        "--no-builtin-rules".as_ref(),
        "--rules".as_ref(),
        good.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0));
    assert_eq!(
        r.stdout.lines().last().unwrap(),
        "1 rule: 1 ok, 0 unsupported, 0 skipped, 0 errors"
    );
}

#[test]
fn builtin_rule_checks_ok() {
    let r = run(&["rules", "check"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(r
        .stdout
        .starts_with("ok           builtin:execution_revershell_via_shell_cmd.toml  Potential Reverse Shell Activity via Terminal\n"),
        "{}", r.stdout);
}

#[test]
fn list_shows_loaded_rules() {
    let dir = rules_dir();
    let r = run(&[
        "rules".as_ref(),
        "list".as_ref(),
        "--rules".as_ref(),
        dir.path().join("a").as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["RULE", "ID", "SEVERITY", "CATEGORY", "NAME", "ORIGIN"]
    );
    let seed = lines
        .iter()
        .find(|l| l.starts_with(SEED_ID))
        .expect("seed rule listed");
    for part in [
        "high",
        "process",
        "Potential Reverse Shell Activity via Terminal",
        "builtin:execution_revershell_via_shell_cmd.toml",
    ] {
        assert!(seed.contains(part), "{part} in {seed}");
    }
    let good = lines
        .iter()
        .find(|l| l.starts_with("11111111-2222-4333-8444-555555555555"))
        .expect("good rule listed");
    assert!(good.contains("medium") && good.contains("Web server spawns a shell"));
    assert!(good.ends_with(&dir.path().join("a/good.toml").display().to_string()));
    assert!(!r.stdout.contains("A KQL rule"));
    assert_eq!(
        *lines.last().unwrap(),
        "3 rules loaded; 1 not loaded (see `execsentry rules check`)"
    );
}

#[test]
fn a_file_rule_overrides_the_builtin_one_with_the_same_id() {
    let dir = TempDir::new("override");
    let seed = include_str!("../src/rules/builtin/execution_revershell_via_shell_cmd.toml");
    let copy = dir.write(
        "mine.toml",
        &seed.replace("severity = \"high\"", "severity = \"low\""),
    );
    let r = run(&[
        "rules".as_ref(),
        "check".as_ref(),
        "--rules".as_ref(),
        copy.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    let builtin = entry(&r.stdout, "skipped ", "builtin:");
    assert!(
        builtin[0].contains(&format!("overridden by {}", copy.display())),
        "{}",
        builtin[0]
    );
    let r = run(&[
        "rules".as_ref(),
        "list".as_ref(),
        "--rules".as_ref(),
        copy.as_os_str(),
    ]);
    let seed_line = r.stdout.lines().find(|l| l.starts_with(SEED_ID)).unwrap();
    assert!(seed_line.contains("low"), "{seed_line}");
}

#[test]
fn missing_rules_path_is_exit_2() {
    let dir = TempDir::new("norules");
    let missing = dir.path().join("absent");
    for sub in ["check", "list"] {
        let r = run(&[
            "rules".as_ref(),
            sub.as_ref(),
            "--rules".as_ref(),
            missing.as_os_str(),
        ]);
        assert_eq!(r.code, Some(2), "{sub}");
        assert!(
            r.stderr
                .contains(&format!("cannot read rules from {}", missing.display())),
            "{}",
            r.stderr
        );
    }
}

/// `rules check` and `rules list` load what `run` would: the config file's `[rules]`, with
/// `--rules` and `--no-builtin-rules` over it.
#[test]
fn rules_commands_follow_the_config_file_and_flags_override_it() {
    let dir = rules_dir();
    let conf = TempDir::new("rules-config");
    let s = |p: &std::path::Path| p.display().to_string();
    let a = s(&dir.path().join("a"));
    let b = s(&dir.path().join("b"));
    let only_a = s(&conf.write(
        "only-a.toml",
        &format!("[rules]\npaths = [{a:?}]\nbuiltin = false\n"),
    ));
    let a_and_builtin = s(&conf.write("a-builtin.toml", &format!("[rules]\npaths = [{a:?}]\n")));
    let good_id = "11111111-2222-4333-8444-555555555555";

    // The file's paths and its builtin switch.
    let r = run(&["rules", "list", "--config", &only_a]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains(good_id), "{}", r.stdout);
    assert!(!r.stdout.contains(SEED_ID), "builtin = false: {}", r.stdout);
    assert!(
        r.stdout
            .ends_with("1 rule loaded; 1 not loaded (see `execsentry rules check`)\n"),
        "{}",
        r.stdout
    );
    let r = run(&["rules", "check", "--config", &only_a]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    entry(&r.stdout, "ok ", "good.toml");
    assert!(!r.stdout.contains("builtin:"), "{}", r.stdout);

    // --rules replaces the file's paths (the file's builtin switch still holds).
    let r = run(&["rules", "check", "--config", &only_a, "--rules", &b]);
    assert_eq!(r.code, Some(1), "the errors in b: {}", r.stdout);
    entry(&r.stdout, "error", "bad_literal.toml");
    assert!(!r.stdout.contains("good.toml"), "{}", r.stdout);
    assert!(!r.stdout.contains("builtin:"), "{}", r.stdout);

    // --no-builtin-rules turns off what the file leaves on.
    let r = run(&["rules", "list", "--config", &a_and_builtin]);
    assert!(
        r.stdout.contains(SEED_ID) && r.stdout.contains(good_id),
        "{}",
        r.stdout
    );
    let r = run(&[
        "rules",
        "list",
        "--config",
        &a_and_builtin,
        "--no-builtin-rules",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!r.stdout.contains(SEED_ID), "{}", r.stdout);
    assert!(r.stdout.contains(good_id), "{}", r.stdout);

    // A bad or missing file is an error that names it (as for `run`).
    let bad = s(&conf.write("bad.toml", "[rules]\npath = []\n"));
    for sub in ["check", "list"] {
        let r = run(&["rules", sub, "--config", &bad]);
        assert_eq!(r.code, Some(2), "{sub}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("{bad}:2:1: unknown field `path`")),
            "{sub}: {}",
            r.stderr
        );
        let missing = s(&conf.path().join("absent.toml"));
        let r = run(&["rules", sub, "--config", &missing]);
        assert_eq!(r.code, Some(2), "{sub}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("cannot read config file {missing}")),
            "{sub}: {}",
            r.stderr
        );
    }
}
