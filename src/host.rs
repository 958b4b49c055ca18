//! `host.*` facts, read once at start and shared by every event.

use std::ffi::CStr;

use crate::event::HostInfo;

/// The machine this sensor runs on.
pub fn local() -> HostInfo {
    let uts = uname();
    let hostname = uts.as_ref().map(|u| u.0.clone()).unwrap_or_default();
    let os_type = if cfg!(target_os = "macos") {
        "macos"
    } else {
        "linux"
    };
    HostInfo {
        name: hostname.clone(),
        hostname,
        id: host_id(),
        os_type: os_type.into(),
        os_family: os_family(),
        os_kernel: uts.as_ref().map(|u| u.1.clone()),
        architecture: uts.map(|u| u.2),
    }
}

/// (nodename, release, machine).
fn uname() -> Option<(String, String, String)> {
    // SAFETY: `utsname` is plain old data; uname fills NUL-terminated fields within it.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return None;
        }
        let s = |f: &[libc::c_char]| CStr::from_ptr(f.as_ptr()).to_string_lossy().into_owned();
        Some((s(&u.nodename), s(&u.release), s(&u.machine)))
    }
}

/// `/etc/machine-id` on Linux (what Elastic agents report as `host.id`).
#[cfg(not(target_os = "macos"))]
fn host_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The hardware UUID on macOS (`gethostuuid`: the IOPlatformUUID that `system_profiler` shows),
/// upper-case with dashes as Apple prints it.
#[cfg(target_os = "macos")]
fn host_id() -> Option<String> {
    let mut id = [0u8; 16];
    let wait = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    // SAFETY: `id` is a writable uuid_t (16 bytes) and `wait` a valid timespec.
    if unsafe { libc::gethostuuid(id.as_mut_ptr(), &wait) } != 0 {
        return None;
    }
    let hex: String = id.iter().map(|b| format!("{b:02X}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// `ID` from os-release (`debian`, `ubuntu`, `rhel`...); `macos` on a Mac.
fn os_family() -> Option<String> {
    if cfg!(target_os = "macos") {
        return Some("macos".into());
    }
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("ID="))
        .map(|v| v.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_machine() {
        let h = super::local();
        assert!(!h.hostname.is_empty());
        assert_eq!(
            h.os_type,
            if cfg!(target_os = "macos") {
                "macos"
            } else {
                "linux"
            }
        );
        assert!(h.os_kernel.is_some_and(|k| !k.is_empty()));
    }
}
