//! Capture real kernel audit records for the test fixtures.
//!
//! `capture OUT_DIR` (as root, with no other audit daemon registered, or beside one in multicast
//! mode) takes the machine-wide audit lock, registers as the audit daemon, turns audit on, raises
//! the backlog, installs `-a always,exit -F arch=b64|b32 -S execve,execveat -k execsentry-fixture`,
//! runs each scenario, and writes the records of the scenario's events (those carrying the key)
//! in audit-plugin format (`type=NAME msg=audit(...): ...`, with `EOE` lines) to
//! `OUT_DIR/<scenario>.log`. Every change is undone by Drop guards, and the status and rule list
//! are compared with what they were before.
//!
//! `capture --execveat DIR NAME ARGS...` and `capture --fexecve PATH ARGS...` are helper modes the
//! scenarios run to produce execveat(2) events.

use std::collections::HashSet;
use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use execsentry_linux::control::{AuditConfigGuard, Control, StatusChange};
use execsentry_linux::netlink::{
    AuditLock, Received, RecordSocket, SocketOptions, AUDIT_LOCK_PATH,
};
use execsentry_linux::{parse_body, types, Arch};

const KEY: &str = "execsentry-fixture";

fn main() {
    let args: Vec<OsString> = std::env::args_os().collect();
    match args.get(1).map(|a| a.as_bytes()) {
        Some(b"--execveat") => helper_execveat(&args[2..]),
        Some(b"--fexecve") => helper_fexecve(&args[2..]),
        Some(_) => {
            if let Err(e) = capture(Path::new(&args[1]), &args[2..]) {
                eprintln!("capture: {e}");
                std::process::exit(1);
            }
        }
        None => {
            eprintln!("usage: capture OUT_DIR [SCENARIO...]");
            std::process::exit(2);
        }
    }
}

fn cstrings(args: &[OsString]) -> Vec<CString> {
    args.iter()
        .map(|a| CString::new(a.as_bytes()).expect("no NUL in arguments"))
        .collect()
}

fn exec_at(dirfd: libc::c_int, name: &CString, argv: &[CString], flags: libc::c_int) -> ! {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let env: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: every pointer is a NUL-terminated string alive for the call; both arrays are
    // NULL-terminated. On success the call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            dirfd,
            name.as_ptr(),
            ptrs.as_ptr(),
            env.as_ptr(),
            flags,
        );
    }
    eprintln!("execveat: {}", std::io::Error::last_os_error());
    std::process::exit(127);
}

/// `--execveat DIR NAME ARGS...`: execveat(open(DIR), NAME, ARGS).
fn helper_execveat(args: &[OsString]) -> ! {
    let dir = CString::new(args[0].as_bytes()).unwrap();
    // SAFETY: `dir` is a valid C string.
    let dirfd = unsafe { libc::open(dir.as_ptr(), libc::O_DIRECTORY | libc::O_RDONLY) };
    assert!(dirfd >= 0, "open {dir:?}");
    let name = CString::new(args[1].as_bytes()).unwrap();
    exec_at(dirfd, &name, &cstrings(&args[2..]), 0)
}

/// `--fexecve PATH ARGS...`: fexecve(open(PATH), ARGS), i.e. execveat(fd, "", AT_EMPTY_PATH).
fn helper_fexecve(args: &[OsString]) -> ! {
    let path = CString::new(args[0].as_bytes()).unwrap();
    // SAFETY: `path` is a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    assert!(fd >= 0, "open {path:?}");
    exec_at(
        fd,
        &CString::new("").unwrap(),
        &cstrings(&args[1..]),
        libc::AT_EMPTY_PATH,
    )
}

type Rec = (u16, Vec<u8>);

struct Capture {
    rx: mpsc::Receiver<Rec>,
    marks: u32,
}

impl Capture {
    /// Run a marker exec and return every record received up to its EOE.
    fn until_mark(&mut self) -> Result<Vec<Rec>, String> {
        self.marks += 1;
        let mark = format!("execsentry-mark-{}-{}", std::process::id(), self.marks);
        Command::new("/bin/true")
            .arg(&mark)
            .status()
            .map_err(|e| e.to_string())?;
        let needle = format!("\"{mark}\"");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        let mut mark_serial = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (t, body) = self
                .rx
                .recv_timeout(left)
                .map_err(|_| format!("marker {mark} not seen within 20 s"))?;
            let rec = parse_body(t, &body).map_err(|e| format!("unparsable record: {e}"))?;
            let serial = rec.serial;
            if t == types::EXECVE && memchr::memmem::find(&body, needle.as_bytes()).is_some() {
                mark_serial = Some(serial);
            }
            let done = t == types::EOE && Some(serial) == mark_serial;
            got.push((t, body));
            if done {
                return Ok(got);
            }
        }
    }
}

fn type_name(t: u16) -> String {
    types::type_name(t).map_or_else(|| format!("UNKNOWN[{t}]"), str::to_string)
}

/// The records of events carrying our key, minus the marker events, in arrival order.
fn keep_scenario(records: &[Rec]) -> Vec<Rec> {
    let mut ours = HashSet::new();
    let mut marks = HashSet::new();
    for (t, body) in records {
        let Ok(rec) = parse_body(*t, body) else {
            continue;
        };
        if *t == types::SYSCALL {
            if let Some(k) = rec.field(b"key") {
                if k.string().ok().flatten().as_deref() == Some(KEY.as_bytes()) {
                    ours.insert(rec.serial);
                }
            }
        }
        if *t == types::EXECVE && memchr::memmem::find(body, b"execsentry-mark-").is_some() {
            marks.insert(rec.serial);
        }
    }
    records
        .iter()
        .filter(|(t, body)| {
            parse_body(*t, body)
                .map(|r| ours.contains(&r.serial) && !marks.contains(&r.serial))
                .unwrap_or(false)
        })
        .cloned()
        .collect()
}

fn write_log(path: &Path, records: &[Rec]) -> Result<(), String> {
    let mut out = Vec::new();
    for (t, body) in records {
        out.extend_from_slice(format!("type={} msg=", type_name(*t)).as_bytes());
        out.extend_from_slice(body);
        out.push(b'\n');
    }
    std::fs::write(path, out).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {} ({} records)", path.display(), records.len());
    Ok(())
}

fn pattern(len: usize) -> OsString {
    // A non-repeating-looking pattern so a chunk out of order would show.
    let bytes: Vec<u8> = (0..len)
        .map(|i| b"0123456789abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 36) % 36])
        .collect();
    OsString::from_vec(bytes)
}

fn run(cmd: &mut Command) {
    match cmd.status() {
        Ok(s) => eprintln!("  {:?}: {s}", cmd.get_program()),
        Err(e) => eprintln!("  {:?}: {e}", cmd.get_program()),
    }
}

fn scenario(name: &str, work: &Path, me: &Path) -> Result<bool, String> {
    let os = |b: &[u8]| OsStr::from_bytes(b).to_os_string();
    match name {
        "hex_args" => run(Command::new("/bin/true").args([
            os(b"plain"),
            os(b"with space"),
            os(b"dq\"x"),
            os(b"it's"),
            os(b"tab\tx"),
            os(b"nl\nx"),
            os(b""),
            os("café".as_bytes()),
            os(b"bad\xff\xfe"),
            os(b"~!#$%&()*+,-./:;<=>?@[]^_`{|}"),
        ])),
        "long_20k" => run(Command::new("/bin/true").args([
            os(b"short"),
            pattern(20_000),
            os(b"tail"),
        ])),
        "long_128k" => run(Command::new("/bin/true").arg(pattern(131_071)).arg("end")),
        "many_args" => run(Command::new("/bin/true").args(
            (0..400).map(|i| format!("arg{i:04}-xxxxxxxxxxxxxxxxxxxx")),
        )),
        "script" => {
            let dir = work.join("dir with space");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let script = dir.join("es-script.sh");
            std::fs::write(&script, "#!/bin/sh\nexit 0\n").map_err(|e| e.to_string())?;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            run(Command::new("./es-script.sh")
                .args(["arg1", "arg two"])
                .current_dir(&dir));
        }
        "failed" => run(Command::new("/nonexistent/es-missing").arg("x")),
        "execveat" => {
            run(Command::new(me).args(["--execveat", "/usr/bin", "true", "true", "via-dirfd"]));
            run(Command::new(me).args(["--fexecve", "/bin/true", "true", "via-fd"]));
        }
        "interleaved" => run(Command::new("/bin/sh").arg("-c").arg(
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do /bin/true il$i & /bin/true jl$i & done; wait",
        )),
        _ => return Err(format!("unknown scenario {name}")),
    }
    Ok(true)
}

/// Whether some record arrived after a record of a newer serial that was not yet complete.
fn interleaved(records: &[Rec]) -> bool {
    let serials: Vec<u32> = records
        .iter()
        .filter_map(|(t, b)| parse_body(*t, b).ok().map(|r| r.serial))
        .collect();
    serials.windows(2).any(|w| w[1] < w[0])
}

const ALL: &[&str] = &[
    "hex_args",
    "long_20k",
    "long_128k",
    "many_args",
    "script",
    "failed",
    "execveat",
    "interleaved",
];

fn capture(out: &Path, which: &[OsString]) -> Result<(), String> {
    let names: Vec<String> = if which.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        which
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect()
    };
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let work: PathBuf = std::env::temp_dir().join(format!("es-capture-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| e.to_string())?;

    let _lock = AuditLock::acquire(Path::new(AUDIT_LOCK_PATH)).map_err(|e| e.to_string())?;
    let mut probe = Control::open().map_err(|e| e.to_string())?;
    let before = probe.status().map_err(|e| e.to_string())?;
    let rules_before = probe.list_rules().map_err(|e| e.to_string())?;
    eprintln!("status before: {before:?}; {} rules", rules_before.len());

    let socket = match RecordSocket::unicast(SocketOptions {
        enable: false,
        ..SocketOptions::default()
    }) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("unicast refused ({e}); listening on multicast");
            RecordSocket::multicast(SocketOptions::default()).map_err(|e| e.to_string())?
        }
    };
    eprintln!(
        "mode {:?}, receive buffer {:?}",
        socket.mode(),
        socket.rcvbuf()
    );
    let stopper = socket.stopper();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut socket = socket;
        loop {
            match socket.recv(Some(Duration::from_millis(500))) {
                Ok(Received::Record { rtype, body }) => {
                    if tx.send((rtype, body.to_vec())).is_err() {
                        break;
                    }
                }
                Ok(Received::Overrun) => eprintln!("ENOBUFS: records lost"),
                Ok(Received::Idle) => {}
                Ok(Received::Stopped) => break,
                Err(e) => {
                    eprintln!("recv: {e}");
                    break;
                }
            }
        }
        socket.stats()
    });

    let result = (|| -> Result<(), String> {
        let mut guard = AuditConfigGuard::new(Control::open().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        guard
            .set(&StatusChange::default().backlog_limit(8192))
            .map_err(|e| e.to_string())?;
        guard.ensure_enabled().map_err(|e| e.to_string())?;
        let host = Arch::native().ok_or("unknown host architecture")?;
        guard
            .install_exec_rules(host, KEY.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut cap = Capture { rx, marks: 0 };
        cap.until_mark()?; // everything before the first scenario
        for name in &names {
            for attempt in 1..=5 {
                eprintln!("scenario {name} (attempt {attempt})");
                scenario(name, &work, &me)?;
                let records = keep_scenario(&cap.until_mark()?);
                if name == "interleaved" && !interleaved(&records) && attempt < 5 {
                    eprintln!("  no interleaving this time; again");
                    continue;
                }
                write_log(&out.join(format!("{name}.log")), &records)?;
                break;
            }
        }
        guard.restore().map_err(|e| e.to_string())
    })();

    stopper.stop();
    let stats = reader.join().map_err(|_| "reader thread panicked")?;
    eprintln!("socket stats: {stats:?}");
    let _ = std::fs::remove_dir_all(&work);

    let after = probe.status().map_err(|e| e.to_string())?;
    let rules_after = probe.list_rules().map_err(|e| e.to_string())?;
    let same = (
        after.enabled,
        after.pid,
        after.backlog_limit,
        after.backlog_wait_time,
        after.failure,
    ) == (
        before.enabled,
        before.pid,
        before.backlog_limit,
        before.backlog_wait_time,
        before.failure,
    ) && rules_after == rules_before;
    eprintln!(
        "status after: {after:?}; {} rules; restored: {same}",
        rules_after.len()
    );
    result?;
    if !same {
        return Err("audit state differs from before".into());
    }
    Ok(())
}
