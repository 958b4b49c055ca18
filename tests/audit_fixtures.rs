//! Golden events for the kernel audit records captured on a real 6.18 kernel
//! (`platform/linux/tests/fixtures`, see its README): each fixture replayed through the code path
//! of `replay --format audit` (`audit_live::read_log`: line reader, assembler with the sensor's
//! limits, normalizer with a process table built from the records alone), and the `ProcessEvent`
//! each exec becomes, field by field — then through the CLI, which must read the same events and
//! raise no alert.

#![cfg(target_os = "linux")]

mod cli_support;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use execsentry::document::Document;
use execsentry::event::{HostInfo, ProcessEvent, SourceFacts};
use execsentry::process_table::Limits;
use execsentry::replay::{Flow, ReplayError};
use execsentry::source::audit_live::read_log;
use execsentry::source::linux_audit::AuditNormalizer;

const KEY: &str = "execsentry-fixture";
/// The capture helper: parent of most captured execs, never exec'd inside a fixture.
const CAPTURE_PID: u32 = 31031;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("platform/linux/tests/fixtures")
        .join(name)
}

fn host() -> Arc<HostInfo> {
    Arc::new(HostInfo {
        name: "golden".into(),
        hostname: "golden".into(),
        id: Some("0123456789abcdef0123456789abcdef".into()),
        os_type: "linux".into(),
        ..Default::default()
    })
}

/// Every exec event of the fixture, in the order `replay` evaluates them.
fn replay(name: &str) -> Vec<ProcessEvent> {
    let file = std::fs::File::open(fixture_path(name)).expect("fixture");
    let mut normalizer = AuditNormalizer::replay(host(), Limits::default());
    let mut events = Vec::new();
    let (stats, flow) = read_log(file, name, &mut normalizer, |e| {
        events.push(e.clone());
        Ok::<_, ReplayError>(Flow::Continue)
    })
    .expect("replay");
    assert_eq!(flow, Flow::Continue);
    assert_eq!(stats.malformed, 0, "{name}: {:?}", stats.malformed_samples);
    assert_eq!(stats.incomplete, 0, "{name}: every event ends");
    assert_eq!(stats.lost_serials, 0, "{name}: consecutive serials");
    events
}

/// The long-argument pattern of `platform/linux/examples/capture.rs`.
fn pattern(len: usize) -> String {
    (0..len)
        .map(|i| char::from(b"0123456789abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 36) % 36]))
        .collect()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The audit facts every captured exec shares: root, no login session, the capture's key.
fn assert_root_exec(e: &ProcessEvent, syscall: &str) {
    let ids = &e.process.ids;
    for (id, name) in [
        (&ids.user_id, &ids.user_name),
        (&ids.real_user_id, &ids.real_user_name),
    ] {
        assert_eq!((id.as_str(), name.as_deref()), ("0", Some("root")));
    }
    for (id, name) in [
        (&ids.group_id, &ids.group_name),
        (&ids.real_group_id, &ids.real_group_name),
    ] {
        assert_eq!((id.as_str(), name.as_deref()), ("0", Some("root")));
    }
    assert!(!e.process.interactive, "tty=(none)");
    assert_eq!(e.process.tty, None);
    assert_eq!(
        e.source,
        SourceFacts::Audit {
            session: None,
            audit_user_id: None,
            key: Some(KEY.into()),
            syscall: match syscall {
                "execve" => "execve",
                _ => "execveat",
            },
            failed: e.failed(),
        },
        "ses and auid are unset (4294967295)"
    );
}

/// What a successful exec of `exe` with `args` looks like.
fn assert_exec(e: &ProcessEvent, exe: &str, args: &[String], cwd: &str) {
    let p = &e.process;
    assert_eq!(&*p.executable, exe);
    assert_eq!(&*p.name, exe.rsplit('/').next().unwrap(), "basename of exe");
    assert_eq!(p.args.len(), args.len());
    for (i, (got, want)) in p.args.iter().zip(args).enumerate() {
        assert!(
            got == want,
            "arg {i} differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
    }
    assert!(p.command_line == args.join(" "), "command_line");
    assert_eq!(p.working_directory.as_deref(), Some(cwd));
    assert_eq!(e.event_type(), ["start"]);
    assert!(!e.failed());
}

fn json(e: &ProcessEvent) -> Value {
    e.to_json()
}

#[test]
fn hex_arguments() {
    let events = replay("hex_args.log");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let args = strings(&[
        "/bin/true",
        "plain",
        "with space",
        "dq\"x",
        "it's",
        "tab\tx",
        "nl\nx",
        "",
        "café",
        "bad\u{FFFD}\u{FFFD}",
        "~!#$%&()*+,-./:;<=>?@[]^_`{|}",
    ]);
    assert_exec(e, "/usr/bin/true", &args, "/work/wt/linux");
    assert_root_exec(e, "execve");
    assert_eq!((e.process.pid, e.process.ppid), (31041, CAPTURE_PID));
    assert_eq!(e.sequence, 5);
    assert_eq!(e.timestamp_ns, 1_795_849_468_205_000_000);
    assert_eq!(e.process.start_ns, Some(e.timestamp_ns));
    assert!(e.parent.is_none(), "the capture helper never exec'd here");
    assert_eq!(e.process.entity_id.len(), 32);

    // The ECS form: ids are strings, args an array, the unknown parent keeps its pid.
    let j = json(e);
    assert_eq!(j["@timestamp"], "2026-11-28T07:04:28.205Z");
    assert_eq!(j["event"]["kind"], "event");
    assert_eq!(j["event"]["category"], serde_json::json!(["process"]));
    assert_eq!(j["event"]["type"], serde_json::json!(["start"]));
    assert_eq!(j["event"]["action"], "exec");
    assert_eq!(j["event"]["outcome"], "success");
    assert_eq!(j["event"]["sequence"], 5);
    assert_eq!(j["process"]["name"], "true");
    assert_eq!(j["process"]["args"], serde_json::json!(args));
    assert_eq!(j["process"]["args_count"], 11);
    assert_eq!(j["process"]["pid"], 31041);
    assert_eq!(
        j["process"]["parent"],
        serde_json::json!({"pid": CAPTURE_PID})
    );
    assert_eq!(
        j["process"]["user"],
        serde_json::json!({"id": "0", "name": "root"})
    );
    assert_eq!(
        j["process"]["real_group"],
        serde_json::json!({"id": "0", "name": "root"})
    );
    assert_eq!(j["user"], serde_json::json!({"id": "0", "name": "root"}));
    assert_eq!(j["group"]["id"], "0");
    assert_eq!(j["tags"], serde_json::json!([KEY]));
    assert_eq!(j["auditd"]["data"]["syscall"], "execve");
    assert_eq!(j["host"]["id"], "0123456789abcdef0123456789abcdef");
    assert!(j["user"].get("audit").is_none(), "auid unset");
}

#[test]
fn enriched_log_gives_the_same_event() {
    let plain = replay("hex_args.log");
    let enriched = replay("hex_args.enriched-constructed.log");
    assert_eq!(enriched, plain, "the 0x1D interpretation changes nothing");
}

#[test]
fn argument_of_20k_is_kept_whole() {
    let events = replay("long_20k.log");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let args = vec![
        "/bin/true".to_owned(),
        "short".into(),
        pattern(20_000),
        "tail".into(),
    ];
    assert_exec(e, "/usr/bin/true", &args, "/work/wt/linux");
    assert_root_exec(e, "execve");
    assert_eq!(json(e)["process"]["args_count"], 4);
}

#[test]
fn argument_of_128k_is_kept_whole() {
    let events = replay("long_128k.log");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    let args = vec!["/bin/true".to_owned(), pattern(131_071), "end".into()];
    assert_exec(e, "/usr/bin/true", &args, "/work/wt/linux");
    assert_root_exec(e, "execve");
}

#[test]
fn four_hundred_arguments_over_two_records() {
    let events = replay("many_args.log");
    assert_eq!(events.len(), 1);
    let mut args = vec!["/bin/true".to_owned()];
    args.extend((0..400).map(|i| format!("arg{i:04}-xxxxxxxxxxxxxxxxxxxx")));
    assert_exec(&events[0], "/usr/bin/true", &args, "/work/wt/linux");
}

#[test]
fn script_is_named_for_its_interpreter() {
    let events = replay("script.log");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    // binfmt_script rewrote argv; exe is the interpreter, comm the script: the name follows exe.
    let args = strings(&["/bin/sh", "./es-script.sh", "arg1", "arg two"]);
    assert_exec(
        e,
        "/usr/bin/dash",
        &args,
        "/tmp/es-capture-31031/dir with space",
    );
    assert_eq!(&*e.process.name, "dash");
    assert_eq!(
        e.process.command_line,
        "/bin/sh ./es-script.sh arg1 arg two"
    );
    assert_root_exec(e, "execve");
}

#[test]
fn failed_exec_is_info_with_outcome_failure() {
    let events = replay("failed.log");
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert!(e.failed());
    assert_eq!(e.event_type(), ["info"], "a failed exec started nothing");
    let p = &e.process;
    assert_eq!(
        &*p.executable, "/nonexistent/es-missing",
        "the attempted path"
    );
    assert_eq!(&*p.name, "es-missing");
    assert!(
        p.args.is_empty() && p.command_line.is_empty(),
        "no EXECVE record"
    );
    assert_eq!(p.working_directory.as_deref(), Some("/work/wt/linux"));
    assert_eq!((p.pid, p.ppid), (31051, CAPTURE_PID));
    assert_root_exec(e, "execve");
    let j = json(e);
    assert_eq!(j["event"]["type"], serde_json::json!(["info"]));
    assert_eq!(j["event"]["outcome"], "failure");
    assert_eq!(j["auditd"]["data"]["success"], "no");
}

#[test]
fn execveat_and_fexecve_trust_exe() {
    let events = replay("execveat.log");
    let by_serial = |s: u64| events.iter().find(|e| e.sequence == s).unwrap();
    assert_eq!(events.len(), 4);
    let capture = "/work/targets/linux/debug/examples/capture";

    // execve of the helper, then execveat(dirfd("/usr/bin"), "true") in the same pid.
    let helper = by_serial(17);
    assert_exec(
        helper,
        capture,
        &strings(&[
            capture,
            "--execveat",
            "/usr/bin",
            "true",
            "true",
            "via-dirfd",
        ]),
        "/work/wt/linux",
    );
    assert_root_exec(helper, "execve");
    let dirfd = by_serial(18);
    assert_exec(
        dirfd,
        "/usr/bin/true",
        &strings(&["true", "via-dirfd"]),
        "/work/wt/linux",
    );
    assert_root_exec(dirfd, "execveat");
    assert_eq!(dirfd.process.pid, helper.process.pid);
    assert_ne!(
        dirfd.process.entity_id, helper.process.entity_id,
        "a new image"
    );
    assert_eq!(json(dirfd)["auditd"]["data"]["syscall"], "execveat");

    // fexecve: execveat(fd, "", AT_EMPTY_PATH): PATH name is empty, exe names the file.
    let fd = by_serial(20);
    assert_exec(
        fd,
        "/usr/bin/true",
        &strings(&["true", "via-fd"]),
        "/work/wt/linux",
    );
    assert_root_exec(fd, "execveat");
    assert_eq!(&*fd.process.name, "true");
    for e in &events {
        assert_eq!(e.process.ppid, CAPTURE_PID);
        assert!(e.parent.is_none());
    }
}

#[test]
fn interleaved_children_name_their_shell() {
    let events = replay("interleaved.log");
    assert_eq!(events.len(), 33);
    let shell = events.iter().find(|e| e.sequence == 22).unwrap();
    let script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do /bin/true il$i & /bin/true jl$i & done; wait";
    assert_exec(
        shell,
        "/usr/bin/dash",
        &strings(&["/bin/sh", "-c", script]),
        "/work/wt/linux",
    );
    let mut seen = Vec::new();
    for e in events.iter().filter(|e| e.sequence != 22) {
        assert_eq!(&*e.process.name, "true");
        assert_eq!(e.process.ppid, shell.process.pid);
        let parent = e.parent.as_ref().expect("the shell, from the table");
        assert_eq!(&*parent.name, "dash");
        assert_eq!(&*parent.executable, "/usr/bin/dash");
        assert_eq!(parent.args, shell.process.args);
        assert_eq!(parent.command_line, format!("/bin/sh -c {script}"));
        assert_eq!(parent.entity_id, shell.process.entity_id);
        let j = json(e);
        assert_eq!(j["process"]["parent"]["name"], "dash");
        assert_eq!(j["process"]["parent"]["pid"], shell.process.pid);
        seen.push(e.process.args[1].clone());
    }
    seen.sort();
    let mut want: Vec<String> = (1..=16)
        .flat_map(|i| [format!("il{i}"), format!("jl{i}")])
        .collect();
    want.sort();
    assert_eq!(seen, want);
}

/// The CLI reads the same events from every fixture (one process table across files) and no
/// captured exec is a reverse shell.
#[test]
fn cli_replays_every_fixture_without_alerts() {
    let names = [
        ("hex_args.log", 1),
        ("hex_args.enriched-constructed.log", 1),
        ("long_20k.log", 1),
        ("long_128k.log", 1),
        ("many_args.log", 1),
        ("script.log", 1),
        ("failed.log", 1),
        ("execveat.log", 4),
        ("interleaved.log", 33),
    ];
    let mut args: Vec<String> = vec!["replay".into(), "--format".into(), "audit".into()];
    args.extend(
        names
            .iter()
            .map(|(n, _)| fixture_path(n).display().to_string()),
    );
    let r = cli_support::run(&args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "", "no alerts");
    let total: usize = names.iter().map(|(_, n)| n).sum();
    assert!(
        r.stderr.contains(&format!("  events:      {total}\n")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("  malformed:   0\n"), "{}", r.stderr);
}
