//! Audit architectures (`AUDIT_ARCH_*`, the `arch=` field) and their exec syscall numbers.
//!
//! A SYSCALL record's `syscall=` number only means something together with its `arch=`: execve is
//! 59 on x86_64, 11 on i386 and 32-bit ARM, 221 on aarch64. The rules a sensor installs and the
//! assembler's "is this an exec?" test both come from this one table.

/// `__AUDIT_ARCH_64BIT`: set in the arch value of 64-bit ABIs.
const ARCH_64BIT: u32 = 0x8000_0000;
/// `__AUDIT_ARCH_LE`: set in the arch value of little-endian ABIs.
const ARCH_LE: u32 = 0x4000_0000;

/// An audit architecture this crate knows the exec syscalls of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86_64 (`b64` on an x86_64 host), `AUDIT_ARCH_X86_64 = 0xc000003e`.
    X86_64,
    /// i386, int 0x80 / ia32 compat (`b32` on an x86_64 host), `AUDIT_ARCH_I386 = 0x40000003`.
    I386,
    /// aarch64 (`b64` on an arm64 host), `AUDIT_ARCH_AARCH64 = 0xc00000b7`.
    Aarch64,
    /// 32-bit ARM EABI, the AArch32 compat mode (`b32` on an arm64 host), `AUDIT_ARCH_ARM = 0x40000028`.
    Arm,
}

impl Arch {
    /// Every known architecture.
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::I386, Arch::Aarch64, Arch::Arm];

    /// The `AUDIT_ARCH_*` value, as it appears in `arch=` (hex) and in rule `-F arch=` fields.
    pub const fn audit_value(self) -> u32 {
        match self {
            Arch::X86_64 => ARCH_64BIT | ARCH_LE | 62,
            Arch::I386 => ARCH_LE | 3,
            Arch::Aarch64 => ARCH_64BIT | ARCH_LE | 183,
            Arch::Arm => ARCH_LE | 40,
        }
    }

    /// The architecture for an `arch=` value, if known.
    pub fn from_audit_value(value: u32) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.audit_value() == value)
    }

    /// `execve` on this architecture.
    pub const fn execve(self) -> u32 {
        match self {
            Arch::X86_64 => 59,
            Arch::I386 | Arch::Arm => 11,
            Arch::Aarch64 => 221,
        }
    }

    /// `execveat` on this architecture.
    pub const fn execveat(self) -> u32 {
        match self {
            Arch::X86_64 => 322,
            Arch::I386 => 358,
            Arch::Aarch64 => 281,
            Arch::Arm => 387,
        }
    }

    /// Whether `nr` is execve or execveat on this architecture.
    pub const fn is_exec_syscall(self, nr: u32) -> bool {
        nr == self.execve() || nr == self.execveat()
    }

    /// auditctl's word for this ABI relative to its host: `b64` or `b32`.
    pub const fn auditctl_bits(self) -> &'static str {
        if self.audit_value() & ARCH_64BIT != 0 {
            "b64"
        } else {
            "b32"
        }
    }

    /// The name auditd's interpretation uses (`ARCH=x86_64` in ENRICHED lines).
    pub const fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::I386 => "i386",
            Arch::Aarch64 => "aarch64",
            Arch::Arm => "arm",
        }
    }

    /// The ABIs an exec sensor must watch on a host of this (64-bit) architecture: the native one
    /// and its 32-bit compat ABI (x86_64 → i386; aarch64 → 32-bit ARM, which exists only on CPUs and
    /// kernels with AArch32 support, so a rule for it may be refused and is then optional).
    pub const fn host_abis(self) -> [Arch; 2] {
        match self {
            Arch::X86_64 | Arch::I386 => [Arch::X86_64, Arch::I386],
            Arch::Aarch64 | Arch::Arm => [Arch::Aarch64, Arch::Arm],
        }
    }

    /// The architecture this crate was compiled for, when it is one of ours.
    pub const fn native() -> Option<Arch> {
        if cfg!(target_arch = "x86_64") {
            Some(Arch::X86_64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Arch::Aarch64)
        } else if cfg!(target_arch = "x86") {
            Some(Arch::I386)
        } else if cfg!(target_arch = "arm") {
            Some(Arch::Arm)
        } else {
            None
        }
    }
}

/// Whether a SYSCALL record's `(arch, syscall)` pair is an exec on any known architecture.
pub fn is_exec(arch: u32, syscall: u32) -> bool {
    Arch::from_audit_value(arch).is_some_and(|a| a.is_exec_syscall(syscall))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_the_kernel_headers() {
        assert_eq!(Arch::X86_64.audit_value(), 0xc000_003e);
        assert_eq!(Arch::I386.audit_value(), 0x4000_0003);
        assert_eq!(Arch::Aarch64.audit_value(), 0xc000_00b7);
        assert_eq!(Arch::Arm.audit_value(), 0x4000_0028);
        for a in Arch::ALL {
            assert_eq!(Arch::from_audit_value(a.audit_value()), Some(a));
        }
    }

    #[test]
    fn exec_numbers_depend_on_arch() {
        assert!(is_exec(0xc000_003e, 59));
        assert!(is_exec(0xc000_003e, 322));
        assert!(!is_exec(0xc000_003e, 11));
        assert!(is_exec(0x4000_0003, 11));
        assert!(is_exec(0x4000_0003, 358));
        assert!(is_exec(0xc000_00b7, 221));
        assert!(!is_exec(0xc000_00b7, 59));
        assert!(!is_exec(0x1234, 59));
        assert_eq!(Arch::I386.auditctl_bits(), "b32");
        assert_eq!(Arch::Aarch64.auditctl_bits(), "b64");
    }
}
