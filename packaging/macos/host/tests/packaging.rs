//! packaging/macos: every property list and profile parses and carries the keys macOS requires;
//! assemble.sh lays out working bundles (on any OS); the macOS-only scripts refuse clearly
//! elsewhere; shellcheck finds nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use plist::{Dictionary, Value};

fn packaging() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(path: &Path) -> Dictionary {
    let value = Value::from_file(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    value
        .into_dictionary()
        .unwrap_or_else(|| panic!("{}: top level is not a dict", path.display()))
}

fn string<'a>(d: &'a Dictionary, key: &str) -> &'a str {
    d.get(key)
        .and_then(Value::as_string)
        .unwrap_or_else(|| panic!("missing string {key}"))
}

fn boolean(d: &Dictionary, key: &str) -> bool {
    d.get(key)
        .and_then(Value::as_boolean)
        .unwrap_or_else(|| panic!("missing boolean {key}"))
}

fn dict<'a>(d: &'a Dictionary, key: &str) -> &'a Dictionary {
    d.get(key)
        .and_then(Value::as_dictionary)
        .unwrap_or_else(|| panic!("missing dict {key}"))
}

fn array<'a>(d: &'a Dictionary, key: &str) -> &'a [Value] {
    d.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("missing array {key}"))
}

fn strings(values: &[Value]) -> Vec<&str> {
    values.iter().filter_map(Value::as_string).collect()
}

const BUNDLE_KEYS: &[&str] = &[
    "CFBundleIdentifier",
    "CFBundleExecutable",
    "CFBundleInfoDictionaryVersion",
    "CFBundleName",
    "CFBundlePackageType",
    "CFBundleShortVersionString",
    "CFBundleVersion",
    "LSMinimumSystemVersion",
];

fn assert_bundle_keys(d: &Dictionary) {
    for key in BUNDLE_KEYS {
        assert!(!string(d, key).is_empty(), "{key}");
    }
    assert_eq!(string(d, "CFBundleInfoDictionaryVersion"), "6.0");
}

#[test]
fn extension_info_plist() {
    let d = load(&packaging().join("bundle/Extension-Info.plist.in"));
    assert_bundle_keys(&d);
    assert_eq!(string(&d, "CFBundlePackageType"), "SYSX");
    assert_eq!(string(&d, "CFBundleIdentifier"), "@EXT_BUNDLE_ID@");
    assert_eq!(string(&d, "CFBundleExecutable"), "@EXT_BUNDLE_ID@");
    // Prefixed with the team id; without the key macOS falls back to a deprecated default.
    assert_eq!(
        string(&d, "NSEndpointSecurityMachServiceName"),
        "@TEAM_ID@.@EXT_BUNDLE_ID@.xpc"
    );
    assert!(string(&d, "NSSystemExtensionUsageDescription").contains("Endpoint Security"));
    assert!(
        !boolean(&d, "NSEndpointSecurityEarlyBoot"),
        "early boot is opt-in"
    );
    assert!(!boolean(&d, "NSEndpointSecurityRebootRequired"));
}

#[test]
fn host_and_daemon_info_plists() {
    let host = load(&packaging().join("bundle/Host-Info.plist.in"));
    assert_bundle_keys(&host);
    assert_eq!(string(&host, "CFBundlePackageType"), "APPL");
    assert_eq!(string(&host, "CFBundleExecutable"), "execsentry-host");
    assert_eq!(string(&host, "CFBundleIdentifier"), "@HOST_BUNDLE_ID@");
    let daemon = load(&packaging().join("bundle/Daemon-Info.plist.in"));
    assert_bundle_keys(&daemon);
    assert_eq!(string(&daemon, "CFBundlePackageType"), "APPL");
    assert_eq!(string(&daemon, "CFBundleExecutable"), "execsentry");
}

#[test]
fn entitlements() {
    for (file, entitlement, bundle) in [
        (
            "extension.entitlements",
            "com.apple.developer.endpoint-security.client",
            "@EXT_BUNDLE_ID@",
        ),
        (
            "host.entitlements",
            "com.apple.developer.system-extension.install",
            "@HOST_BUNDLE_ID@",
        ),
        (
            "daemon.entitlements",
            "com.apple.developer.endpoint-security.client",
            "@DAEMON_BUNDLE_ID@",
        ),
    ] {
        let d = load(&packaging().join("entitlements").join(file));
        assert!(boolean(&d, entitlement), "{file}");
        assert_eq!(
            string(&d, "com.apple.application-identifier"),
            format!("@TEAM_ID@.{bundle}"),
            "{file}"
        );
        assert_eq!(
            string(&d, "com.apple.developer.team-identifier"),
            "@TEAM_ID@"
        );
        assert_eq!(d.len(), 3, "{file}: nothing more than needed");
    }
}

#[test]
fn launchd_daemon_plist() {
    let d = load(&packaging().join("launchd/com.execsentry.sensor.plist"));
    assert_eq!(string(&d, "Label"), "com.execsentry.sensor");
    let args = strings(array(&d, "ProgramArguments"));
    assert_eq!(
        args,
        [
            "/Library/Application Support/ExecSentry/ExecSentryDaemon.app/Contents/MacOS/execsentry",
            "run",
            "--source",
            "endpoint-security"
        ]
    );
    assert!(boolean(&d, "RunAtLoad"));
    assert!(boolean(&d, "KeepAlive"));
}

/// The top-level keys of a configuration profile and its payloads; returns the payloads.
fn profile(name: &str) -> Vec<Dictionary> {
    let d = load(&packaging().join("mdm").join(name));
    assert_eq!(string(&d, "PayloadType"), "Configuration", "{name}");
    assert_eq!(string(&d, "PayloadScope"), "System", "{name}");
    assert!(string(&d, "PayloadIdentifier").starts_with("com.execsentry.profile."));
    assert!(d.get("PayloadVersion").and_then(Value::as_signed_integer) == Some(1));
    let mut uuids = vec![string(&d, "PayloadUUID").to_string()];
    let payloads: Vec<Dictionary> = array(&d, "PayloadContent")
        .iter()
        .map(|p| p.as_dictionary().unwrap().clone())
        .collect();
    for p in &payloads {
        for key in ["PayloadType", "PayloadIdentifier", "PayloadUUID"] {
            assert!(!string(p, key).is_empty(), "{name}: {key}");
        }
        uuids.push(string(p, "PayloadUUID").to_string());
    }
    for u in &uuids {
        assert!(is_uuid(u), "{name}: {u}");
    }
    payloads
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn system_extension_policy_profile() {
    let payloads = profile("execsentry-system-extension.mobileconfig");
    let p = &payloads[0];
    assert_eq!(
        string(p, "PayloadType"),
        "com.apple.system-extension-policy"
    );
    assert_eq!(
        strings(array(dict(p, "AllowedSystemExtensions"), "@TEAM_ID@")),
        ["@EXT_BUNDLE_ID@"]
    );
    assert_eq!(
        strings(array(dict(p, "AllowedSystemExtensionTypes"), "@TEAM_ID@")),
        ["EndpointSecurityExtension"]
    );
}

#[test]
fn full_disk_access_profile() {
    let payloads = profile("execsentry-fda.mobileconfig");
    let p = &payloads[0];
    assert_eq!(
        string(p, "PayloadType"),
        "com.apple.TCC.configuration-profile-policy"
    );
    let entries = array(dict(p, "Services"), "SystemPolicyAllFiles");
    let entries: Vec<&Dictionary> = entries.iter().filter_map(Value::as_dictionary).collect();
    assert_eq!(entries.len(), 2);
    let ext = entries[0];
    assert_eq!(string(ext, "Identifier"), "@EXT_BUNDLE_ID@");
    assert_eq!(string(ext, "IdentifierType"), "bundleID");
    assert_eq!(string(ext, "Authorization"), "Allow");
    let req = string(ext, "CodeRequirement");
    assert!(req.starts_with("identifier \"@EXT_BUNDLE_ID@\" and anchor apple generic"));
    assert!(req.ends_with("certificate leaf[subject.OU] = \"@TEAM_ID@\""));
    let daemon = entries[1];
    assert_eq!(string(daemon, "IdentifierType"), "path");
    assert_eq!(
        string(daemon, "Identifier"),
        "/Library/Application Support/ExecSentry/ExecSentryDaemon.app/Contents/MacOS/execsentry"
    );
}

#[test]
fn service_management_profile_and_unique_uuids() {
    let payloads = profile("execsentry-service-management.mobileconfig");
    let p = &payloads[0];
    assert_eq!(string(p, "PayloadType"), "com.apple.servicemanagement");
    let rules: Vec<&Dictionary> = array(p, "Rules")
        .iter()
        .filter_map(Value::as_dictionary)
        .collect();
    assert!(rules.iter().any(
        |r| string(r, "RuleType") == "TeamIdentifier" && string(r, "RuleValue") == "@TEAM_ID@"
    ));

    let mut all: Vec<String> = [
        "execsentry-system-extension.mobileconfig",
        "execsentry-fda.mobileconfig",
        "execsentry-service-management.mobileconfig",
    ]
    .iter()
    .flat_map(|n| profile_uuids(n))
    .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "every PayloadUUID is unique");
}

fn profile_uuids(name: &str) -> Vec<String> {
    let d = load(&packaging().join("mdm").join(name));
    let mut out = vec![string(&d, "PayloadUUID").to_string()];
    for p in array(&d, "PayloadContent") {
        out.push(string(p.as_dictionary().unwrap(), "PayloadUUID").to_string());
    }
    out
}

// The scripts.

fn script(name: &str) -> PathBuf {
    packaging().join("scripts").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("execsentry-pkg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/execsentry"), b"sensor").unwrap();
    std::fs::write(dir.join("bin/execsentry-host"), b"host").unwrap();
    dir
}

fn assemble(dist: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.arg(script("assemble.sh")).env("DIST", dist);
    for var in [
        "TEAM_ID",
        "EARLY_BOOT",
        "HOST_BUNDLE_ID",
        "EXT_BUNDLE_ID",
        "VERSION",
        "BUILD",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn assemble_lays_out_the_bundles() {
    let dist = scratch("assemble");
    let out = assemble(
        &dist,
        &[
            ("TEAM_ID", "AB12CD34EF"),
            ("EARLY_BOOT", "1"),
            ("VERSION", "1.2.3"),
            ("BUILD", "42"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = dist.join("ExecSentry.app/Contents");
    let ext =
        app.join("Library/SystemExtensions/com.execsentry.sensor.es.systemextension/Contents");
    assert_eq!(
        std::fs::read(ext.join("MacOS/com.execsentry.sensor.es")).unwrap(),
        b"sensor"
    );
    assert_eq!(
        std::fs::read(app.join("MacOS/execsentry-host")).unwrap(),
        b"host"
    );
    assert_eq!(
        std::fs::read(dist.join("ExecSentryDaemon.app/Contents/MacOS/execsentry")).unwrap(),
        b"sensor"
    );

    let info = load(&ext.join("Info.plist"));
    assert_eq!(
        string(&info, "CFBundleIdentifier"),
        "com.execsentry.sensor.es"
    );
    assert_eq!(
        string(&info, "NSEndpointSecurityMachServiceName"),
        "AB12CD34EF.com.execsentry.sensor.es.xpc"
    );
    assert_eq!(string(&info, "CFBundleShortVersionString"), "1.2.3");
    assert_eq!(string(&info, "CFBundleVersion"), "42");
    assert!(
        boolean(&info, "NSEndpointSecurityEarlyBoot"),
        "EARLY_BOOT=1"
    );
    assert!(!boolean(&info, "NSEndpointSecurityRebootRequired"));
    let host = load(&app.join("Info.plist"));
    assert_eq!(string(&host, "CFBundleIdentifier"), "com.execsentry.sensor");

    let ent = load(&dist.join("entitlements/extension.entitlements"));
    assert_eq!(
        string(&ent, "com.apple.application-identifier"),
        "AB12CD34EF.com.execsentry.sensor.es"
    );
    let policy = load(&dist.join("profiles/execsentry-system-extension.mobileconfig"));
    let payload = array(&policy, "PayloadContent")[0].as_dictionary().unwrap();
    assert_eq!(
        strings(array(
            dict(payload, "AllowedSystemExtensions"),
            "AB12CD34EF"
        )),
        ["com.execsentry.sensor.es"]
    );
    for rendered in [
        "profiles/execsentry-fda.mobileconfig",
        "entitlements/host.entitlements",
    ] {
        let text = std::fs::read_to_string(dist.join(rendered)).unwrap();
        assert!(!text.contains("@TEAM_ID@"), "{rendered}");
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("EXT_PROFILE not set"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dist);
}

#[test]
fn assemble_refuses_bad_settings_clearly() {
    let dist = scratch("refuse");
    for (env, expect) in [
        (vec![], "TEAM_ID is not set"),
        (vec![("TEAM_ID", "abc")], "TEAM_ID must be 10 upper-case"),
        (
            vec![("TEAM_ID", "AB12CD34EF"), ("EXT_BUNDLE_ID", "x/y")],
            "is not reverse-DNS",
        ),
    ] {
        let out = assemble(&dist, &env);
        assert!(!out.status.success(), "{env:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{env:?}: {stderr}");
    }
    std::fs::remove_file(dist.join("bin/execsentry")).unwrap();
    let out = assemble(&dist, &[("TEAM_ID", "AB12CD34EF")]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("run build-universal.sh first"));
    let _ = std::fs::remove_dir_all(&dist);
}

#[cfg(not(target_os = "macos"))]
#[test]
fn macos_only_scripts_say_so() {
    for name in ["build-universal.sh", "sign.sh", "pkg.sh", "notarize.sh"] {
        let out = Command::new("bash")
            .arg(script(name))
            .env("TEAM_ID", "AB12CD34EF")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!("{name}: error: this step needs macOS (")),
            "{name}: {stderr}"
        );
    }
}

#[test]
fn host_binary_explains_itself_off_macos() {
    let out = Command::new(env!("CARGO_BIN_EXE_execsentry-host"))
        .arg("status")
        .output()
        .unwrap();
    if cfg!(target_os = "macos") {
        return; // there it asks the SystemExtensions framework
    }
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs macOS"));
    let out = Command::new(env!("CARGO_BIN_EXE_execsentry-host"))
        .arg("bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: execsentry-host"));
}

#[test]
fn shellcheck_is_clean() {
    let available = Command::new("shellcheck").arg("--version").output().is_ok();
    if !available {
        // CI installs shellcheck; elsewhere say that this check did not run.
        assert!(
            std::env::var_os("CI").is_none(),
            "shellcheck is required under CI"
        );
        eprintln!("shellcheck not installed: scripts not checked");
        return;
    }
    let dir = packaging().join("scripts");
    let out = Command::new("shellcheck")
        .current_dir(&dir)
        .args([
            "-x",
            "common.sh",
            "build-universal.sh",
            "assemble.sh",
            "sign.sh",
            "pkg.sh",
            "notarize.sh",
        ])
        .arg("../pkg-scripts/postinstall")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
