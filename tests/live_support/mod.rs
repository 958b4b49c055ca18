//! Shared by the live audit tests: skipping with a reason, the audit state kept and restored, the
//! processes a test starts (the sensor, a real auditd, shells) stopped by pid, and the loopback
//! listeners the reverse shells connect to.

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

use crate::cli_support::TempDir;

/// The parent every test shell runs under: a known shell whose own arguments hold no
/// `/dev/tcp`, so it is never an alert itself and the child's `process.parent.*` can be asserted.
pub const PARENT_SCRIPT: &str = r#""$ES_SHELL" -c "$ES_CMD"; exit $?"#;

// ---------------------------------------------------------------------------------------------
// Skipping

pub fn skip(test: &str, why: &str) {
    if std::env::var("EXECSENTRY_REQUIRE_LIVE").as_deref() == Ok("1") {
        panic!("{test}: live audit test required (EXECSENTRY_REQUIRE_LIVE=1) but it cannot run here: {why}");
    }
    eprintln!("skipping {test}: {why}");
}

pub fn is_root() -> bool {
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
pub struct AuditState {
    pub enabled: u32,
    pub failure: u32,
    pub pid: u32,
    pub rate_limit: u32,
    pub backlog_limit: u32,
    pub backlog_wait_time: u32,
    pub rules: Vec<AuditRule>,
}

pub fn read_state(c: &mut Control) -> AuditState {
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

pub static KEYS: AtomicUsize = AtomicUsize::new(0);

/// One live test's hold on kernel audit: the machine-wide lock, the state found, and a guard
/// that puts it back. Declare it before the process guards, so they are dropped (their processes
/// stopped) before it restores.
pub struct AuditSession {
    pub control: Control,
    pub before: AuditState,
    /// The audit key the sensor under test installs its rules with: the only rules ever deleted.
    pub key: String,
    _lock: AuditLock,
}

impl AuditSession {
    /// `None` (after saying why) when live audit is not possible here. With `unicast_free`, a
    /// registered audit daemon is a reason too (the test needs to register one).
    pub fn begin(test: &str, unicast_free: bool) -> Option<AuditSession> {
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

    pub fn state(&mut self) -> AuditState {
        read_state(&mut self.control)
    }

    pub fn rules_with_our_key(&mut self) -> usize {
        self.control
            .rules_with_key(self.key.as_bytes())
            .expect("AUDIT_LIST_RULES")
            .len()
    }

    /// The end of a passing test: audit is exactly as it was found.
    pub fn assert_restored(&mut self) {
        let after = self.state();
        assert_eq!(
            after, self.before,
            "audit status and rules after the test differ from before"
        );
    }

    /// Best effort, after a failure: the sensor's rules deleted, status fields put back, and a
    /// dead daemon's registration cleared (the kernel drops it at its next failed send, so make it
    /// send: a CONFIG_CHANGE record from a no-op AUDIT_SET while audit is on).
    pub fn restore(&mut self) {
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

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on a pid we spawned and have not reaped (so it cannot have been reused).
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
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
pub fn end(child: &mut Child, sig: libc::c_int, grace: Duration) -> ExitStatus {
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
pub struct Sensor {
    pub child: Option<Child>,
    pub pid: u32,
    pub ready: String,
    pub stderr: Arc<Mutex<String>>,
    pub reader: Option<JoinHandle<()>>,
}

impl Sensor {
    /// `execsentry run` as the live tests run it: alerts and every event written into `dir`
    /// (`alerts.ndjson`, `events.ndjson`), the session's audit `key`, no periodic stats line;
    /// `flags` add to that (`--source netlink`, `-v`). Returns the sensor and the two paths.
    pub fn run_into(dir: &TempDir, key: &str, flags: &[&str]) -> (Sensor, PathBuf, PathBuf) {
        let alerts = dir.path().join("alerts.ndjson");
        let events = dir.path().join("events.ndjson");
        let (a, e) = (alerts.to_str().unwrap(), events.to_str().unwrap());
        let mut args = vec!["run", "--alerts", a, "--events", e, "--audit-key", key];
        args.extend(["--stats-interval", "3600"]);
        args.extend(flags);
        (Sensor::start(&args), alerts, events)
    }

    pub fn start(args: &[&str]) -> Sensor {
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
    pub fn stop(mut self, sig: libc::c_int) -> (ExitStatus, String) {
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
pub fn summary(stderr: &str) -> BTreeMap<String, u64> {
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
pub fn assert_clean_stop(
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

pub fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

pub fn count_lines(path: &Path) -> u64 {
    let data = std::fs::read(path).unwrap_or_default();
    assert!(data.is_empty() || data.ends_with(b"\n"), "a torn last line");
    data.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Reads a growing NDJSON file and counts the lines containing `needle` (the sensor's events
/// output, while it runs).
pub struct Tail {
    pub file: PathBuf,
    pub offset: u64,
    pub partial: Vec<u8>,
}

impl Tail {
    pub fn new(file: &Path) -> Tail {
        Tail {
            file: file.to_owned(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// New complete lines since the last call.
    pub fn read(&mut self) -> Vec<Vec<u8>> {
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
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
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
pub fn run_shell(shell: &str, cmd: &str, timeout: Duration) -> Option<ExitStatus> {
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

pub fn run_marker(marker: &str) {
    let status = Command::new("/bin/true")
        .arg(marker)
        .status()
        .expect("/bin/true");
    assert!(status.success());
}

// ---------------------------------------------------------------------------------------------
// The other end of the reverse shells: loopback listeners that tell the shell to exit

pub struct Attacker {
    pub tcp6: u16,
    pub udp6: u16,
    pub tcp4: u16,
    pub stop: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Vec<&'static str>>>,
    pub threads: Vec<JoinHandle<()>>,
}

impl Attacker {
    pub fn start() -> Attacker {
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
    pub fn finish(mut self) -> BTreeMap<&'static str, usize> {
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

pub fn auditd_binary() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join("auditd"))
        .find(|p| p.is_file());
    found
}

pub struct Auditd {
    pub child: Option<Child>,
    pub pid: u32,
    pub log: PathBuf,
    _dir: TempDir,
}

impl Auditd {
    /// `auditd -n -s nochange -c DIR`: logs to DIR, no plugins, leaves `enabled` alone; returns
    /// once the kernel lists it as the audit daemon.
    pub fn start(binary: &Path, control: &mut Control) -> Auditd {
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
    pub fn stop(mut self) -> Vec<u8> {
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
