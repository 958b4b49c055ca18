//! SIGHUP reloads the rules of a running sensor: a good new set is swapped in, a bad one is
//! refused (each error said with file:line:col) and the running set kept. Driven through the
//! auditd-plugin source (records on stdin), so no root is needed.

#![cfg(target_os = "linux")]

mod cli_support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli_support::{command, TempDir};

fn rule(id: &str, name: &str, process: &str) -> String {
    format!(
        r#"[rule]
author = ["Test"]
description = "Any exec of {process}."
language = "eql"
license = "Apache-2.0"
name = "{name}"
risk_score = 21
rule_id = "{id}"
severity = "low"
type = "eql"
query = '''
process where process.name == "{process}"
'''
"#
    )
}

/// The interleaved fixture (32 execs of `true`, one of `dash`) with every serial moved up by
/// `shift`, so each feed is new events rather than repeats of the last one.
fn fixture(shift: u64) -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("platform/linux/tests/fixtures/interleaved.log");
    let text = std::fs::read_to_string(path).expect("the interleaved audit fixture");
    let serial = regex::Regex::new(r"msg=audit\((\d+\.\d+):(\d+)\)").unwrap();
    serial
        .replace_all(&text, |c: &regex::Captures| {
            let n: u64 = c[2].parse().unwrap();
            format!("msg=audit({}:{})", &c[1], n + shift)
        })
        .into_owned()
        .into_bytes()
}

/// A running sensor, its stderr collected as it comes; killed on drop.
struct Sensor {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
}

impl Sensor {
    fn feed(&mut self, data: &[u8]) {
        let input = self.stdin.as_mut().unwrap();
        input.write_all(data).unwrap();
        input.flush().unwrap();
    }

    fn hup(&self) {
        // SAFETY: a signal to the child this test started, by its pid.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0);
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn wait_stderr(&self, what: &str, times: usize) {
        wait_for(&format!("{what:?} x{times} on stderr"), || {
            self.stderr().matches(what).count() >= times
        });
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rule_names(alerts: &Path) -> Vec<String> {
    std::fs::read_to_string(alerts)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|a| a["rule"]["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn sighup_swaps_in_a_good_rule_set_and_keeps_the_old_one_on_errors() {
    let dir = TempDir::new("reload");
    let rules = dir.path().join("rules");
    let rule_file = dir.write(
        "rules/r.toml",
        &rule("11111111-2222-4333-8444-000000000001", "true runs", "true"),
    );
    let alerts = dir.path().join("alerts.ndjson");
    let mut child = command()
        .args(["run", "--config", "/dev/null", "--source", "audisp"])
        .args(["--no-builtin-rules", "--rules"])
        .arg(&rules)
        .arg("--alerts")
        .arg(&alerts)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execsentry");
    let stdin = child.stdin.take();
    let stderr = Arc::new(Mutex::new(String::new()));
    {
        let (pipe, stderr) = (child.stderr.take().unwrap(), Arc::clone(&stderr));
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = stderr.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }
    let mut sensor = Sensor {
        child,
        stdin,
        stderr,
    };
    sensor.wait_stderr("execsentry: ready", 1);

    // The first set: 32 execs of `true` alert, `dash` does not.
    sensor.feed(&fixture(0));
    wait_for("32 alerts", || rule_names(&alerts).len() >= 32);

    // A good new set: `dash` alerts, `true` no longer does.
    std::fs::write(
        &rule_file,
        rule("11111111-2222-4333-8444-000000000002", "dash runs", "dash"),
    )
    .unwrap();
    sensor.hup();
    sensor.wait_stderr("rules reloaded: 1 rules", 1);
    sensor.feed(&fixture(1000));
    wait_for("the dash alert", || {
        rule_names(&alerts).iter().any(|n| n == "dash runs")
    });

    // A bad new set (and a good rule beside it): refused whole, each error with its position;
    // `dash runs` still alerts, the good new rule does not.
    std::fs::write(
        &rule_file,
        "[rule]\nname = \"broken\"\nquery = '''\nprocess where (\n'''\n",
    )
    .unwrap();
    dir.write(
        "rules/other.toml",
        &rule("11111111-2222-4333-8444-000000000003", "true again", "true"),
    );
    sensor.hup();
    sensor.wait_stderr("rules reload failed, keeping 1 rules", 1);
    let err = sensor.stderr();
    let line = err
        .lines()
        .find(|l| l.contains("rules reload failed"))
        .unwrap();
    let at = format!("{}:", rule_file.display());
    assert!(line.contains(&at), "{line}");
    let after = &line[line.find(&at).unwrap() + at.len()..];
    let pos: Vec<&str> = after.splitn(3, ':').collect();
    assert!(
        pos.len() == 3 && pos[0].parse::<u32>().is_ok() && pos[1].parse::<u32>().is_ok(),
        "file:line:col in {line}"
    );
    sensor.feed(&fixture(2000));
    wait_for("a second dash alert", || {
        rule_names(&alerts)
            .iter()
            .filter(|n| *n == "dash runs")
            .count()
            >= 2
    });

    // End of input ends the run; everything written is what the sets in force allowed.
    drop(sensor.stdin.take());
    let status = sensor.child.wait().unwrap();
    assert!(status.success(), "{}", sensor.stderr());
    let names = rule_names(&alerts);
    assert_eq!(names.iter().filter(|n| *n == "true runs").count(), 32);
    assert_eq!(names.iter().filter(|n| *n == "dash runs").count(), 2);
    assert_eq!(names.len(), 34, "{names:?}");
    let err = sensor.stderr();
    assert!(
        err.contains("rule_reloads=1 rule_reload_failures=1"),
        "{err}"
    );
}
