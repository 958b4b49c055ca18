//! Live tests against the kernel's audit subsystem (root only).
//!
//! One test function, holding the machine-wide audit lock, so nothing else changes audit state
//! meanwhile. When audit control is not permitted it prints why and returns, unless
//! `EXECSENTRY_REQUIRE_LIVE=1`, where a skip fails. Every change goes through Drop guards, and the
//! status and rule list are compared with what they were before.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use execsentry_linux::control::{AuditConfigGuard, AuditStatus, Control, LostCounter};
use execsentry_linux::netlink::{
    AuditLock, Mode, Received, RecordSocket, SocketOptions, AUDIT_LOCK_PATH,
};
use execsentry_linux::{
    parse_body, Arch, Assembler, AssemblerConfig, AuditEvent, Error, ExecRecord,
};

fn skip(why: &str) {
    if std::env::var("EXECSENTRY_REQUIRE_LIVE").as_deref() == Ok("1") {
        panic!("live audit test required (EXECSENTRY_REQUIRE_LIVE=1) but skipped: {why}");
    }
    eprintln!("skipping live audit test: {why}");
}

/// The fields a test must leave as it found them.
fn settings(s: &AuditStatus) -> [u32; 6] {
    [
        s.enabled,
        s.failure,
        s.pid,
        s.rate_limit,
        s.backlog_limit,
        s.backlog_wait_time,
    ]
}

/// Run `/bin/true ARG` and read `sock` until its exec event is assembled.
fn exec_and_wait(sock: &mut RecordSocket, arg: &str) -> ExecRecord {
    let child = Command::new("/bin/true")
        .arg(arg)
        .spawn()
        .expect("spawn /bin/true");
    let child_pid = child.id();
    let mut child = child;
    child.wait().unwrap();
    let got = wait_exec(sock, arg);
    assert_eq!(got.syscall.pid, Some(child_pid));
    got
}

fn wait_exec(sock: &mut RecordSocket, arg: &str) -> ExecRecord {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut found = None;
    while found.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no exec event for {arg} within 15 s ({:?})",
            sock.mode()
        );
        match sock.recv(Some(left)).expect("recv") {
            Received::Record { rtype, body } => {
                let rec = parse_body(rtype, body)
                    .unwrap_or_else(|e| panic!("kernel record did not parse: {e}: {body:?}"));
                asm.push(&rec, &mut |ev| {
                    if let AuditEvent::Exec(e) = ev {
                        if e.argv.get(1) == Some(arg.as_bytes()) {
                            found = Some(*e);
                        }
                    }
                });
            }
            Received::Overrun => panic!("ENOBUFS with a 16 MiB buffer and a handful of records"),
            Received::Idle => {}
            Received::Stopped => panic!("stopped"),
        }
    }
    found.unwrap()
}

fn check_exec(e: &ExecRecord, arg: &str, key: &[u8]) {
    assert_eq!(
        e.argv.to_vecs(),
        [b"/bin/true".to_vec(), arg.as_bytes().to_vec()]
    );
    assert_eq!(e.argc, Some(2));
    assert!(e.complete && e.argv_consistent && !e.failed());
    assert_eq!(e.syscall.exe.as_deref(), Some(&b"/usr/bin/true"[..]));
    assert_eq!(e.syscall.keys().collect::<Vec<_>>(), [key]);
    assert_eq!(e.syscall.uid, Some(0));
    assert_eq!(e.syscall.ppid, Some(std::process::id()));
    assert!(e.cwd.is_some());
}

#[test]
fn live_unicast_multicast_and_status() {
    let Some(host) = Arch::native() else {
        return skip("unknown host architecture");
    };
    // Root check from /proc, so the test needs no unsafe.
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return skip("not running as root");
    }
    let mut probe = match Control::open().and_then(|mut c| c.status().map(|_| c)) {
        Ok(c) => c,
        Err(e) => return skip(&format!("audit control not permitted here: {e}")),
    };
    let _lock = AuditLock::acquire(Path::new(AUDIT_LOCK_PATH)).expect("audit lock");
    let before = probe.status().unwrap();
    let rules_before = probe.list_rules().unwrap();
    if before.enabled == 2 {
        return skip("audit configuration is locked (enabled=2)");
    }
    let key = format!("execsentry-live-{}", std::process::id());

    {
        let mut guard = AuditConfigGuard::new(Control::open().unwrap()).unwrap();
        let unicast = if before.pid == 0 {
            Some(
                RecordSocket::unicast(SocketOptions {
                    enable: false,
                    ..SocketOptions::default()
                })
                .unwrap(),
            )
        } else {
            // An audit daemon (auditd in CI) owns unicast: registering must say so, by pid.
            match RecordSocket::unicast(SocketOptions::default()) {
                Err(Error::DaemonRegistered { pid }) => assert_eq!(pid, before.pid),
                other => panic!(
                    "expected DaemonRegistered, got {:?}",
                    other.map(|s| s.mode())
                ),
            }
            None
        };
        guard.ensure_enabled().unwrap();
        assert_eq!(guard.install_exec_rules(host, key.as_bytes()).unwrap(), 2);
        let ours = guard.control().rules_with_key(key.as_bytes()).unwrap();
        assert_eq!(
            ours,
            guard.added_rules(),
            "the kernel lists exactly the rules we encoded"
        );

        let mut lost = LostCounter::default();
        let st = guard.control().status().unwrap();
        assert_eq!(lost.update(&st), 0, "the first reading is the baseline");
        let first_lost = st.lost;
        assert_eq!(st.enabled, 1);

        if let Some(mut unicast) = unicast {
            assert!(unicast.is_registered());
            assert_eq!(st.pid, std::process::id(), "we are the audit daemon");
            // A second registration from this process is refused with our own pid.
            match RecordSocket::unicast(SocketOptions::default()) {
                Err(Error::DaemonRegistered { pid }) => assert_eq!(pid, std::process::id()),
                other => panic!(
                    "expected DaemonRegistered, got {:?}",
                    other.map(|s| s.mode())
                ),
            }
            let arg = format!("es-live-unicast-{}", std::process::id());
            let e = exec_and_wait(&mut unicast, &arg);
            check_exec(&e, &arg, key.as_bytes());

            // Multicast beside the registered daemon (our own unicast socket): both get the event.
            let mut multicast = RecordSocket::multicast(SocketOptions::default()).unwrap();
            assert_eq!(multicast.mode(), Mode::Multicast);
            let arg = format!("es-live-multicast-{}", std::process::id());
            let m = exec_and_wait(&mut multicast, &arg);
            check_exec(&m, &arg, key.as_bytes());
            let u = wait_exec(&mut unicast, &arg);
            assert_eq!(u, m, "unicast and multicast deliver the same records");
            assert_eq!(unicast.stats().enobufs + multicast.stats().enobufs, 0);

            // Stopping wakes a blocked reader.
            let stopper = unicast.stopper();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                stopper.stop();
            });
            let start = Instant::now();
            loop {
                match unicast.recv(None).unwrap() {
                    Received::Stopped => break,
                    Received::Record { .. } | Received::Overrun | Received::Idle => {}
                }
            }
            t.join().unwrap();
            assert!(start.elapsed() < Duration::from_secs(5));
            unicast.release().unwrap();
            assert_eq!(guard.control().status().unwrap().pid, 0, "released");
        } else {
            let mut multicast = RecordSocket::multicast(SocketOptions::default()).unwrap();
            let arg = format!("es-live-multicast-{}", std::process::id());
            let m = exec_and_wait(&mut multicast, &arg);
            check_exec(&m, &arg, key.as_bytes());
        }

        // Status polling: lost is tracked as a delta from our first reading.
        let st = guard.control().status().unwrap();
        let delta = lost.update(&st);
        if st.lost >= first_lost {
            assert_eq!(delta, u64::from(st.lost - first_lost));
        } else {
            assert_eq!(
                (delta, lost.resets()),
                (u64::from(st.lost), 1),
                "reset by someone else"
            );
        }
        guard.restore().unwrap();
        assert!(guard
            .control()
            .rules_with_key(key.as_bytes())
            .unwrap()
            .is_empty());
    }

    let after = probe.status().unwrap();
    assert_eq!(
        settings(&after),
        settings(&before),
        "status restored: {after:?} vs {before:?}"
    );
    assert_eq!(
        probe.list_rules().unwrap(),
        rules_before,
        "rule list restored"
    );
}
