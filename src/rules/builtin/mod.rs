//! Rules compiled into the binary, loaded unless `--no-builtin-rules` is given.
//!
//! Each upstream file is kept byte for byte as its upstream publishes it, under a `#` header naming its
//! source and license, so it can be diffed against upstream and replaced by a newer copy.

/// (file name, TOML text) of every built-in rule.
pub const FILES: &[(&str, &str)] = &[
    (
        "execution_revershell_via_shell_cmd.toml",
        include_str!("execution_revershell_via_shell_cmd.toml"),
    ),
    (
        "defense_evasion_audit_tampering.toml",
        include_str!("defense_evasion_audit_tampering.toml"),
    ),
];

/// The rule id of execsentry's own "Linux Audit System Tampered With While execsentry Runs".
pub const AUDIT_TAMPERING_RULE_ID: &str = "7233eef7-16e3-4849-b67a-cfdc3463ad86";

/// The rule id of the seed rule, "Potential Reverse Shell Activity via Terminal".
pub const REVERSE_SHELL_RULE_ID: &str = "a1a0375f-22c2-48c0-81a4-7c2d11cc6856";
