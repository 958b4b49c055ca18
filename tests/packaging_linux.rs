//! `packaging/linux`: the files a .deb installs agree with the binary and with each other.
//! (`.ci/run` builds the .deb, installs it with dpkg and runs the installed binary.)

#![cfg(target_os = "linux")]

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cli_support::{run, TempDir};
use execsentry::config::{Config, SourceKind};
use execsentry_linux::control::exec_rules_auditctl;
use execsentry_linux::Arch;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Non-comment, non-blank lines.
fn rule_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// `key = value` lines of an auditd plugin conf.
fn plugin_conf() -> Vec<(String, String)> {
    rule_lines(&read("packaging/linux/audit/execsentry.conf"))
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("key = value");
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect()
}

fn conf_value(key: &str) -> String {
    plugin_conf()
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in the plugin conf"))
        .1
}

#[test]
fn the_audit_rules_file_holds_what_the_sensor_installs() {
    let shipped = rule_lines(&read("packaging/linux/audit/execsentry.rules"));
    // By syscall name, so one file serves both 64-bit architectures.
    for arch in [Arch::X86_64, Arch::Aarch64] {
        assert_eq!(
            shipped,
            exec_rules_auditctl(arch, b"execsentry"),
            "{arch:?}"
        );
    }
    let out = run(&["audit-rules"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(rule_lines(&out.stdout), shipped);
}

#[test]
fn the_auditd_plugin_conf_starts_a_valid_audisp_run() {
    assert_eq!(
        conf_value("active"),
        "no",
        "installing must not switch it on"
    );
    assert_eq!(conf_value("direction"), "out");
    assert_eq!(conf_value("type"), "always");
    assert_eq!(conf_value("format"), "string");
    assert_eq!(conf_value("path"), "/usr/bin/execsentry");
    // The args are a `run` command line the binary accepts, selecting the plugin source.
    let mut args: Vec<String> = conf_value("args")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let config = root().join("packaging/linux/execsentry.toml");
    args.extend([
        "--config".into(),
        config.display().to_string(),
        "--print-config".into(),
    ]);
    let out = run(&args);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let effective = Config::parse(&out.stdout, Path::new("stdout")).unwrap();
    assert_eq!(effective.source.kind, SourceKind::Audisp);
    assert_eq!(
        effective.output.alerts.as_deref(),
        Some(Path::new("/var/log/execsentry/alerts.ndjson")),
        "a plugin's stdout is not for alerts"
    );
}

/// `[Section] Key=value` pairs of the unit, in order.
fn unit() -> Vec<(String, String)> {
    read("packaging/linux/execsentry.service")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn unit_value(key: &str) -> String {
    unit()
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .1
}

#[test]
fn the_unit_is_hardened_and_runs_the_installed_binary() {
    assert_eq!(unit_value("ExecStart"), "/usr/bin/execsentry run");
    let mut caps: Vec<String> = unit_value("CapabilityBoundingSet")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    caps.sort();
    assert_eq!(
        caps,
        [
            "CAP_AUDIT_CONTROL",
            "CAP_AUDIT_READ",
            "CAP_NET_ADMIN",
            "CAP_SYS_PTRACE"
        ]
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("RestrictAddressFamilies", "AF_NETLINK AF_UNIX"),
        ("SystemCallArchitectures", "native"),
        ("LogsDirectory", "execsentry"),
        ("RuntimeDirectory", "execsentry"),
    ] {
        assert_eq!(unit_value(key), value, "{key}");
    }
    // The shipped config writes only where the unit lets it.
    let config = Config::parse(
        &read("packaging/linux/execsentry.toml"),
        Path::new("execsentry.toml"),
    )
    .unwrap();
    assert!(config
        .output
        .alerts
        .unwrap()
        .starts_with("/var/log/execsentry/"));
    assert!(config.stats.json.unwrap().starts_with("/run/execsentry/"));
}

/// `systemd-analyze verify` on the unit, pointed at the built binary (it checks that the
/// command exists). Skipped, saying so, where systemd-analyze is not installed.
#[test]
fn the_unit_passes_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: systemd-analyze is not installed");
        return;
    }
    let dir = TempDir::new("unit");
    let text = read("packaging/linux/execsentry.service")
        .replace("/usr/bin/execsentry", env!("CARGO_BIN_EXE_execsentry"));
    let path = dir.write("execsentry.service", &text);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("execsentry.service"),
        "warnings about the unit: {stderr}"
    );
}

/// The deb metadata: every asset exists, and the conffiles are installed /etc assets.
#[test]
fn deb_assets_exist_and_conffiles_are_installed() {
    let manifest: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let mut installed: Vec<PathBuf> = Vec::new();
    for asset in deb["assets"].as_array().unwrap() {
        let (source, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        if source != "target/release/execsentry" {
            let source_path = root().join(source);
            let matches: Vec<PathBuf> = match source_path.file_name().and_then(|n| n.to_str()) {
                Some(pattern) if pattern.starts_with("*.") => {
                    let ext = &pattern[2..];
                    std::fs::read_dir(source_path.parent().unwrap())
                        .unwrap()
                        .map(|e| e.unwrap().path())
                        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
                        .collect()
                }
                _ => vec![source_path.clone()],
            };
            assert!(
                matches.iter().all(|p| p.is_file()) && !matches.is_empty(),
                "asset {source} is missing"
            );
        }
        let name = Path::new(source).file_name().unwrap();
        installed.push(Path::new("/").join(dest).join(name));
    }
    for conf in deb["conf-files"].as_array().unwrap() {
        let conf = Path::new(conf.as_str().unwrap());
        assert!(conf.starts_with("/etc"), "{}", conf.display());
        assert!(
            installed.iter().any(|p| p == conf),
            "{} is not installed",
            conf.display()
        );
    }
    for path in [
        "/usr/bin/execsentry",
        "/lib/systemd/system/execsentry.service",
        "/etc/audit/plugins.d/execsentry.conf",
        // Inert until copied to /etc/audit/rules.d for the plugin (see the file).
        "/usr/share/execsentry/audit/execsentry.rules",
    ] {
        assert!(installed.contains(&PathBuf::from(path)), "{path}");
    }
    assert!(
        !installed
            .iter()
            .any(|p| p.starts_with("/etc/audit/rules.d")),
        "installing must not change which audit rules auditd loads"
    );
}

/// The maintainer scripts: executable, POSIX sh, shellcheck-clean, and none starts the sensor.
#[test]
fn maintainer_scripts_are_clean_and_never_start_the_sensor() {
    use std::os::unix::fs::PermissionsExt;
    let dir = root().join("packaging/linux/debian");
    let scripts = ["postinst", "prerm", "postrm"];
    for name in scripts {
        let path = dir.join(name);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{name} is executable");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{name}");
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(
                !line.contains("systemctl start") && !line.contains("systemctl enable"),
                "{name}: {line}"
            );
        }
    }
    if Command::new("shellcheck")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "shellcheck is required under CI"
        );
        eprintln!("shellcheck not installed: maintainer scripts not checked");
        return;
    }
    let out = Command::new("shellcheck")
        .current_dir(&dir)
        .args(scripts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
