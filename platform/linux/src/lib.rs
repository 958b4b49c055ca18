//! Linux kernel audit, as plain records.
//!
//! In: audit netlink datagrams (unicast or multicast), auditd plugin lines on stdin, audit.log lines.
//! Out: one assembled exec event per audit serial (after `EOE`, a standalone type, a timeout or a cap),
//! with argv rebuilt from every `EXECVE` record. Knows nothing of ECS or rules: `execsentry`'s
//! `source::linux_audit` maps these records into `ProcessEvent`.
