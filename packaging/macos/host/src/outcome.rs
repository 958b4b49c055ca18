//! What the host asks for and what each answer means: command line, SystemExtensions error
//! codes, exit statuses. Plain Rust, compiled and tested on every platform (off macOS only the
//! command line is used by the program itself).
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::time::Duration;

/// The extension's bundle identifier unless `--extension` says otherwise; the build scripts set
/// `EXECSENTRY_EXTENSION_ID` when they use another one.
pub const DEFAULT_EXTENSION_ID: &str = match option_env!("EXECSENTRY_EXTENSION_ID") {
    Some(id) => id,
    None => "com.execsentry.sensor.es",
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Activate,
    Deactivate,
    Status,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub command: Command,
    pub extension_id: String,
    /// How long to wait for the request to finish (user approval can take a while).
    pub timeout: Duration,
}

pub const USAGE: &str = "\
usage: execsentry-host <activate|deactivate|status> [--extension BUNDLE_ID] [--timeout SECONDS]

  activate    install or update the execsentry system extension (run from /Applications)
  deactivate  remove it (needs an administrator's approval)
  status      show its version and state (macOS 12+)
";

/// Parses the arguments after the program name.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Options, String> {
    let mut command = None;
    let mut extension_id = DEFAULT_EXTENSION_ID.to_string();
    let mut timeout = Duration::from_secs(120);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "activate" | "deactivate" | "status" if command.is_none() => {
                command = Some(match arg.as_str() {
                    "activate" => Command::Activate,
                    "deactivate" => Command::Deactivate,
                    _ => Command::Status,
                });
            }
            "--extension" => {
                extension_id = args
                    .next()
                    .filter(|v| !v.is_empty() && !v.starts_with('-'))
                    .ok_or("--extension needs a bundle identifier")?;
            }
            "--timeout" => {
                let secs: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--timeout needs a number of seconds")?;
                timeout = Duration::from_secs(secs);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let command = command.ok_or("a command is required")?;
    Ok(Options {
        command,
        extension_id,
        timeout,
    })
}

/// What a request's delegate reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Callback {
    /// An older (or different) version is active; the host always replaces it.
    Replacing {
        existing: String,
        new: String,
    },
    /// The user (or an MDM profile) must approve; the request stays pending.
    NeedsApproval,
    /// `OSSystemExtensionRequestResult`: 0 completed, 1 after reboot.
    Finished(isize),
    Failed {
        code: isize,
        domain: String,
        description: String,
    },
    Found(Vec<ExtensionStatus>),
}

/// One `OSSystemExtensionProperties`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionStatus {
    pub bundle_id: String,
    pub short_version: String,
    pub version: String,
    pub enabled: bool,
    pub awaiting_approval: bool,
    pub uninstalling: bool,
    pub path: String,
}

impl ExtensionStatus {
    pub fn line(&self) -> String {
        let state = if self.uninstalling {
            "uninstalling"
        } else if self.awaiting_approval {
            "waiting for approval"
        } else if self.enabled {
            "enabled"
        } else {
            "disabled"
        };
        format!(
            "{} {} ({}): {state} — {}",
            self.bundle_id, self.short_version, self.version, self.path
        )
    }
}

/// Exit statuses, so scripts (postinstall, MDM) can tell outcomes apart.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NEEDS_APPROVAL: i32 = 3;
pub const EXIT_REBOOT: i32 = 4;
#[cfg_attr(target_os = "macos", allow(dead_code))]
pub const EXIT_NOT_MACOS: i32 = 69; // EX_UNAVAILABLE

/// What to do about an `OSSystemExtensionErrorDomain` code.
pub fn explain(code: isize) -> &'static str {
    match code {
        2 => "the host app lacks com.apple.developer.system-extension.install: sign it with \
              packaging/macos/entitlements/host.entitlements and a provisioning profile granting it",
        3 => "the app must run from /Applications (not ~/Applications, not a disk image) and must \
              not carry a quarantine attribute (xattr -dr com.apple.quarantine /Applications/ExecSentry.app)",
        4 => "no such extension in Contents/Library/SystemExtensions: check the bundle identifier \
              (--extension) against the extension's Info.plist",
        5 => "the extension's Info.plist has no CFBundleIdentifier",
        6 => "two extensions in the app share a bundle identifier",
        7 => "the extension's type is not recognised: its Info.plist needs \
              NSEndpointSecurityMachServiceName and CFBundlePackageType SYSX",
        8 => "the code signature is invalid: sign inside-out with hardened runtime (packaging/macos/scripts/sign.sh) \
              and check with codesign --verify --strict",
        9 => "macOS rejected the extension (validation failed): check entitlements, provisioning \
              profiles and notarization; `log show --predicate 'subsystem == \"com.apple.sx\"' --last 10m` says why",
        10 => "forbidden by system policy: an MDM system-extension policy does not allow this team \
               and bundle id — deploy packaging/macos/mdm/execsentry-system-extension.mobileconfig",
        11 => "the request was cancelled",
        12 => "a newer request replaced this one",
        13 => "an administrator's authorization is required (deactivation asks for it)",
        _ => "unknown SystemExtensions error; `log show --predicate 'subsystem == \"com.apple.sx\"' --last 10m`",
    }
}

/// Turns the callbacks of one request into a message and an exit status; `None` while the
/// request is still pending.
pub fn conclude(command: Command, cb: &Callback) -> Option<(String, i32)> {
    match cb {
        Callback::Replacing { existing, new } => {
            eprintln!("replacing version {existing} with {new}");
            None
        }
        Callback::NeedsApproval => None,
        Callback::Finished(0) => Some((
            match command {
                Command::Activate => "execsentry system extension activated".into(),
                Command::Deactivate => "execsentry system extension deactivated".into(),
                Command::Status => "done".into(),
            },
            EXIT_OK,
        )),
        Callback::Finished(1) => Some((
            "done; the change takes effect after the next restart".into(),
            EXIT_REBOOT,
        )),
        Callback::Finished(other) => Some((format!("finished with result {other}"), EXIT_OK)),
        Callback::Failed {
            code,
            domain,
            description,
        } => Some((
            if domain == "OSSystemExtensionErrorDomain" {
                format!("{description} ({domain} {code}): {}", explain(*code))
            } else {
                format!("{description} ({domain} {code})")
            },
            EXIT_FAILED,
        )),
        Callback::Found(list) if list.is_empty() => Some((
            "execsentry system extension is not installed".into(),
            EXIT_FAILED,
        )),
        Callback::Found(list) => Some((
            list.iter()
                .map(ExtensionStatus::line)
                .collect::<Vec<_>>()
                .join("\n"),
            EXIT_OK,
        )),
    }
}

/// Said when approval is needed, while waiting.
pub const APPROVAL_HINT: &str = "approval needed: open System Settings → General → Login Items & \
Extensions → Endpoint Security Extensions (macOS 15+) or Privacy & Security (macOS 13–14) and allow \
ExecSentry, then grant it Full Disk Access. Managed Macs: deploy the profiles in packaging/macos/mdm.";

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Options, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn command_line() {
        let o = args(&["activate"]).unwrap();
        assert_eq!(o.command, Command::Activate);
        assert_eq!(o.extension_id, DEFAULT_EXTENSION_ID);
        assert_eq!(o.timeout, Duration::from_secs(120));
        let o = args(&["status", "--extension", "org.example.es", "--timeout", "5"]).unwrap();
        assert_eq!(
            (o.command, o.extension_id.as_str(), o.timeout),
            (Command::Status, "org.example.es", Duration::from_secs(5))
        );
        assert!(args(&[]).unwrap_err().contains("command is required"));
        assert!(args(&["activate", "status"])
            .unwrap_err()
            .contains("\"status\""));
        assert!(args(&["activate", "--extension"]).is_err());
        assert!(args(&["activate", "--extension", "--timeout"]).is_err());
        assert!(args(&["activate", "--timeout", "soon"]).is_err());
        assert_eq!(args(&["--help"]), Err(String::new()));
    }

    #[test]
    fn outcomes() {
        use Command::*;
        assert_eq!(conclude(Activate, &Callback::NeedsApproval), None);
        assert_eq!(
            conclude(Activate, &Callback::Finished(0)).unwrap().1,
            EXIT_OK
        );
        assert_eq!(
            conclude(Activate, &Callback::Finished(1)).unwrap().1,
            EXIT_REBOOT
        );
        let (msg, code) = conclude(
            Activate,
            &Callback::Failed {
                code: 10,
                domain: "OSSystemExtensionErrorDomain".into(),
                description: "policy".into(),
            },
        )
        .unwrap();
        assert_eq!(code, EXIT_FAILED);
        assert!(
            msg.contains("execsentry-system-extension.mobileconfig"),
            "{msg}"
        );
        let (msg, _) = conclude(
            Activate,
            &Callback::Failed {
                code: 10,
                domain: "NSCocoaErrorDomain".into(),
                description: "other".into(),
            },
        )
        .unwrap();
        assert_eq!(msg, "other (NSCocoaErrorDomain 10)");
        assert_eq!(
            conclude(Status, &Callback::Found(vec![])).unwrap().1,
            EXIT_FAILED
        );
        let s = ExtensionStatus {
            bundle_id: "com.execsentry.sensor.es".into(),
            short_version: "0.1.0".into(),
            version: "7".into(),
            enabled: true,
            awaiting_approval: false,
            uninstalling: false,
            path: "/Library/SystemExtensions/X/com.execsentry.sensor.es.systemextension".into(),
        };
        let (msg, code) = conclude(Status, &Callback::Found(vec![s])).unwrap();
        assert_eq!(code, EXIT_OK);
        assert!(msg.starts_with("com.execsentry.sensor.es 0.1.0 (7): enabled — /Library/"));
    }

    #[test]
    fn every_documented_error_code_is_explained() {
        let unknown = explain(0);
        for code in 2..=13 {
            assert_ne!(explain(code), unknown, "code {code}");
        }
        assert!(explain(3).contains("/Applications"));
    }
}
