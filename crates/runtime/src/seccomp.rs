//! The seccomp filter every instance process runs under.
//!
//! Capabilities alone leave kernel attack surface open to root in an instance: `keyctl`,
//! `bpf`, `perf_event_open`, `userfaultfd`, io_uring, the new mount API and
//! `unshare(CLONE_NEWUSER)` (a user namespace hands back every capability inside it) need no
//! capability at all or only one an unprivileged user namespace grants. Docker, Podman and runc
//! add a seccomp profile on top of the same capability set for this reason, and so do we.
//!
//! The [`SeccompProfile::Default`] profile refuses, with `EPERM`, what Docker's default profile
//! refuses to a container with Docker's default capabilities (the set an instance keeps, see
//! [`crate::boot::KEPT_CAPS`]), plus io_uring (Docker 25 dropped it too): [`DENIED`] lists each
//! system call and why. `clone` is refused only with a namespace flag; `clone3` answers
//! `ENOSYS` because its flags live in memory a filter can't read, and C libraries then fall
//! back to `clone`. Everything else is allowed. Docker's profile is an allow-list; a deny-list
//! of the same effect is shorter, and new system calls in later kernels stay allowed until
//! added here (as in Docker until its profile is updated, where they answer `EPERM`).
//!
//! The filter is a classic BPF program assembled here (no libseccomp): check the architecture
//! (anything else — 32-bit x86 compat calls included — kills the process, since its system
//! call numbers mean other calls), then a binary search over the denied numbers, so an allowed
//! call runs about log2(70) ≈ 7 comparisons. Kernels since 5.11 also cache "always allowed"
//! per system call and skip the filter for those entirely. It is installed with
//! `no_new_privs` by instance init before the first user process ([`crate::boot`]) and by
//! [`crate::Kernel::exec_in`] before `instance exec`'s command, and it is inherited by every
//! child.

use std::io;

use serde::{Deserialize, Serialize};

/// Which filter an instance's processes run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompProfile {
    /// Docker's default denials and io_uring; see the module docs.
    #[default]
    Default,
    /// The default minus what nested containers need: `unshare`, `setns`, `clone` with
    /// namespace flags, `clone3`, `mount`, `umount2`, `pivot_root` and the new mount API
    /// ([`DEVBOX_ALLOWS`]). A developer VM's tools (rootless Podman, bubblewrap, `unshare -Urm`)
    /// make user namespaces of their own and mount in them. The instance's own mount and
    /// network namespaces still belong to the host's user namespace, so these calls change
    /// nothing outside a namespace the caller made; the rest of the default's denials
    /// (keyrings, bpf, perf, io_uring, modules, the clock) stay. Templates ask for it with the
    /// `spindle:seccomp-profile` tag, which needs an admin grant (see `spindle-providers`).
    Devbox,
    /// The default plus no network: `socket` is refused (`EPERM`) for every address family
    /// but `AF_UNIX`, so nothing reaches an address, loopback included. Pipeline jobs run
    /// under it unless their workflow grants the network (`x-spindle-network: true`). Only
    /// the engine's callers ask for it; templates can't name it.
    Offline,
    /// No filter (and no `no_new_privs`). Only the engine's callers can ask for it (the
    /// benchmark's peer); the API offers no way to.
    Unconfined,
}

/// The calls [`SeccompProfile::Devbox`] lets through that the default refuses.
pub const DEVBOX_ALLOWS: &[&str] = &[
    "SYS_unshare",
    "SYS_setns",
    "SYS_clone",
    "SYS_clone3",
    "SYS_mount",
    "SYS_umount2",
    "SYS_pivot_root",
    "SYS_open_tree",
    "SYS_move_mount",
    "SYS_fsopen",
    "SYS_fsconfig",
    "SYS_fsmount",
    "SYS_fspick",
    "SYS_mount_setattr",
];

impl SeccompProfile {
    pub fn name(self) -> &'static str {
        match self {
            SeccompProfile::Default => "default",
            SeccompProfile::Devbox => "devbox",
            SeccompProfile::Offline => "offline",
            SeccompProfile::Unconfined => "unconfined",
        }
    }

    /// The profile [`SeccompProfile::name`] names.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            SeccompProfile::Default,
            SeccompProfile::Devbox,
            SeccompProfile::Offline,
            SeccompProfile::Unconfined,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    /// The profiles a template may name (wider than the default: each needs a grant);
    /// `unconfined` is not one of them.
    pub const REQUESTABLE: &'static [SeccompProfile] = &[SeccompProfile::Devbox];

    /// The calls this profile refuses, sorted by number; `None` when no filter is installed.
    pub fn rules(self) -> Option<Vec<Rule>> {
        match self {
            SeccompProfile::Default => Some(rules()),
            SeccompProfile::Devbox => Some(
                rules()
                    .into_iter()
                    .filter(|r| !DEVBOX_ALLOWS.contains(&r.0))
                    .collect(),
            ),
            SeccompProfile::Offline => {
                let mut all = rules();
                all.push(SOCKET_RULE);
                all.sort_by_key(|r| r.1);
                Some(all)
            }
            SeccompProfile::Unconfined => None,
        }
    }

    /// The BPF program for this profile; `None` when no filter is installed.
    pub fn program(self) -> Option<Vec<Insn>> {
        self.rules().map(|r| program(&r))
    }
}

/// What the filter answers for one system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deny {
    /// `EPERM`, as Docker answers.
    Always,
    /// `EPERM` when the first argument (`clone`'s flags) has a namespace flag.
    NamespaceFlags,
    /// `ENOSYS`, so the C library falls back to a call the filter can check.
    NoSys,
    /// `EPERM` unless the first argument (`socket`'s address family) is `AF_UNIX`.
    NotUnix,
}

/// Refused system calls: name, number on this architecture, how, and why.
pub type Rule = (&'static str, i64, Deny, &'static str);

macro_rules! rules {
    ($( $name:ident $deny:ident $why:literal ),* $(,)?) => {
        &[$( (stringify!($name), libc::$name as i64, Deny::$deny, $why) ),*]
    };
}

/// What [`SeccompProfile::Offline`] adds to the default.
pub const SOCKET_RULE: Rule = (
    "SYS_socket",
    libc::SYS_socket,
    Deny::NotUnix,
    "network sockets, for a pipeline job without the network grant",
);

/// Refused on every supported architecture.
#[rustfmt::skip]
pub const DENIED: &[Rule] = rules![
    SYS_acct Always "process accounting (CAP_SYS_PACCT in Docker)",
    SYS_add_key Always "kernel keyrings are not namespaced",
    SYS_keyctl Always "kernel keyrings are not namespaced",
    SYS_request_key Always "kernel keyrings are not namespaced",
    SYS_bpf Always "eBPF programs and maps (CAP_SYS_ADMIN in Docker)",
    SYS_perf_event_open Always "kernel profiling; leaks host information",
    SYS_userfaultfd Always "makes kernel races easy to win",
    SYS_io_uring_setup Always "io_uring: a large, often exploited kernel surface (Docker 25+)",
    SYS_io_uring_enter Always "io_uring",
    SYS_io_uring_register Always "io_uring",
    SYS_clock_adjtime Always "the host clock (CAP_SYS_TIME)",
    SYS_clock_settime Always "the host clock (CAP_SYS_TIME)",
    SYS_settimeofday Always "the host clock (CAP_SYS_TIME)",
    SYS_init_module Always "kernel modules (CAP_SYS_MODULE)",
    SYS_finit_module Always "kernel modules (CAP_SYS_MODULE)",
    SYS_delete_module Always "kernel modules (CAP_SYS_MODULE)",
    SYS_kexec_load Always "replaces the running kernel (CAP_SYS_BOOT)",
    SYS_kexec_file_load Always "replaces the running kernel (CAP_SYS_BOOT)",
    SYS_reboot Always "the host (CAP_SYS_BOOT)",
    SYS_mount Always "mounts (CAP_SYS_ADMIN)",
    SYS_umount2 Always "mounts (CAP_SYS_ADMIN)",
    SYS_pivot_root Always "mounts (CAP_SYS_ADMIN)",
    SYS_open_tree Always "the new mount API (CAP_SYS_ADMIN)",
    SYS_move_mount Always "the new mount API (CAP_SYS_ADMIN)",
    SYS_fsopen Always "the new mount API (CAP_SYS_ADMIN)",
    SYS_fsconfig Always "the new mount API (CAP_SYS_ADMIN)",
    SYS_fsmount Always "the new mount API (CAP_SYS_ADMIN)",
    SYS_fspick Always "the new mount API (CAP_SYS_ADMIN)",
    SYS_mount_setattr Always "the new mount API (CAP_SYS_ADMIN)",
    SYS_unshare Always "new namespaces; a user namespace grants every capability in it",
    SYS_setns Always "other namespaces (CAP_SYS_ADMIN)",
    SYS_clone NamespaceFlags "only with a CLONE_NEW* flag, as unshare",
    SYS_clone3 NoSys "its flags are in memory a filter can't read; libc falls back to clone",
    SYS_swapon Always "swap (CAP_SYS_ADMIN)",
    SYS_swapoff Always "swap (CAP_SYS_ADMIN)",
    SYS_quotactl Always "quotas (CAP_SYS_ADMIN)",
    SYS_quotactl_fd Always "quotas (CAP_SYS_ADMIN)",
    SYS_open_by_handle_at Always "opens host files by handle (CAP_DAC_READ_SEARCH)",
    SYS_lookup_dcookie Always "kernel profiling (CAP_SYS_ADMIN)",
    SYS_fanotify_init Always "filesystem-wide monitoring (CAP_SYS_ADMIN)",
    SYS_syslog Always "the kernel log (CAP_SYSLOG)",
    SYS_vhangup Always "hangs up terminals (CAP_SYS_TTY_CONFIG)",
    SYS_kcmp Always "compares kernel objects of other processes (CAP_SYS_PTRACE)",
    SYS_process_vm_readv Always "other processes' memory (CAP_SYS_PTRACE)",
    SYS_process_vm_writev Always "other processes' memory (CAP_SYS_PTRACE)",
    SYS_pidfd_getfd Always "other processes' descriptors (CAP_SYS_PTRACE)",
    SYS_get_mempolicy Always "NUMA policy (CAP_SYS_NICE in Docker)",
    SYS_set_mempolicy Always "NUMA policy (CAP_SYS_NICE in Docker)",
    SYS_mbind Always "NUMA policy (CAP_SYS_NICE in Docker)",
    SYS_move_pages Always "NUMA policy (CAP_SYS_NICE in Docker)",
    SYS_migrate_pages Always "NUMA policy (CAP_SYS_NICE in Docker)",
];

/// Refused system calls that exist only on x86-64.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub const DENIED_ARCH: &[Rule] = rules![
    SYS_ioperm Always "I/O ports (CAP_SYS_RAWIO)",
    SYS_iopl Always "I/O ports (CAP_SYS_RAWIO)",
    SYS_nfsservctl Always "obsolete",
    SYS_uselib Always "obsolete",
    SYS_ustat Always "obsolete",
    SYS_sysfs Always "obsolete",
    SYS__sysctl Always "obsolete",
    SYS_afs_syscall Always "unimplemented",
    SYS_tuxcall Always "unimplemented",
    SYS_security Always "unimplemented",
    SYS_getpmsg Always "unimplemented",
    SYS_putpmsg Always "unimplemented",
    SYS_vserver Always "unimplemented",
];

#[cfg(target_arch = "aarch64")]
pub const DENIED_ARCH: &[Rule] = &[];

/// `AUDIT_ARCH_*` of the architecture this was built for (linux/audit.h).
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xc000_00b7;

/// x32 system calls on x86-64 carry this bit; they reach the same kernel code under other
/// numbers, so the filter refuses them all.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The flags `clone` is refused with. (`CLONE_NEWTIME` shares its bit with `clone`'s exit
/// signal; only `unshare` and `clone3` take it, and both are refused whole.)
pub const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

/// One classic BPF instruction; the layout of the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// The few classic BPF opcodes the filter uses (linux/filter.h).
pub const BPF_LD_W_ABS: u16 = 0x20;
pub const BPF_JMP_JA: u16 = 0x05;
pub const BPF_JMP_JEQ_K: u16 = 0x15;
pub const BPF_JMP_JGE_K: u16 = 0x35;
pub const BPF_JMP_JSET_K: u16 = 0x45;
pub const BPF_RET_K: u16 = 0x06;

// Offsets in `struct seccomp_data`: nr, arch, instruction pointer, then six 64-bit arguments
// (the low half of the first one is at 16 on little-endian machines).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARG0_LO: u32 = 16;

pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
pub const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;
pub const RET_EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
pub const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// Every refused call on this architecture, sorted by number.
pub fn rules() -> Vec<Rule> {
    let mut all: Vec<Rule> = DENIED.iter().chain(DENIED_ARCH).copied().collect();
    all.sort_by_key(|r| r.1);
    all
}

/// A jump target: a label resolved when the program is finished.
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

struct Asm {
    code: Vec<(u16, u32, To, To)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn op(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push((code, k, jt, jf));
    }
    fn finish(self) -> Vec<Insn> {
        let off = |at: usize, to: To| -> usize {
            match to {
                To::Next => 0,
                To::Label(l) => self.labels[l].expect("every label is bound") - at - 1,
            }
        };
        self.code
            .iter()
            .enumerate()
            .map(|(i, &(code, k, jt, jf))| {
                if code == BPF_JMP_JA {
                    return Insn {
                        code,
                        jt: 0,
                        jf: 0,
                        k: off(i, jt) as u32,
                    };
                }
                // The program is built from the fixed tables above, so this holds for every
                // build; `default_program_fits_and_is_small` checks it.
                let short = |o: usize| u8::try_from(o).expect("conditional jump within 255");
                Insn {
                    code,
                    jt: short(off(i, jt)),
                    jf: short(off(i, jf)),
                    k,
                }
            })
            .collect()
    }
}

/// Emits a search over `rules` (sorted); the call number is in the accumulator.
fn search(a: &mut Asm, rules: &[Rule], targets: &[usize; 4], allow: usize) {
    let target = |d: Deny| match d {
        Deny::Always => targets[0],
        Deny::NamespaceFlags => targets[1],
        Deny::NoSys => targets[2],
        Deny::NotUnix => targets[3],
    };
    if rules.is_empty() {
        a.op(BPF_JMP_JA, 0, To::Label(allow), To::Next);
        return;
    }
    if rules.len() <= 3 {
        for (i, r) in rules.iter().enumerate() {
            let miss = if i + 1 == rules.len() {
                To::Label(allow)
            } else {
                To::Next
            };
            a.op(BPF_JMP_JEQ_K, r.1 as u32, To::Label(target(r.2)), miss);
        }
        return;
    }
    let mid = rules.len() / 2;
    let upper = a.label();
    a.op(
        BPF_JMP_JGE_K,
        rules[mid].1 as u32,
        To::Label(upper),
        To::Next,
    );
    search(a, &rules[..mid], targets, allow);
    a.bind(upper);
    search(a, &rules[mid..], targets, allow);
}

/// The filter refusing `rules` (sorted by number) as each says, allowing everything else.
fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut a = Asm {
        code: Vec::new(),
        labels: Vec::new(),
    };
    let [allow, eperm, clone, enosys, kill, socket] = [(); 6].map(|()| a.label());
    a.op(BPF_LD_W_ABS, DATA_ARCH, To::Next, To::Next);
    a.op(BPF_JMP_JEQ_K, AUDIT_ARCH, To::Next, To::Label(kill));
    a.op(BPF_LD_W_ABS, DATA_NR, To::Next, To::Next);
    if cfg!(target_arch = "x86_64") {
        a.op(BPF_JMP_JGE_K, X32_SYSCALL_BIT, To::Label(eperm), To::Next);
    }
    search(&mut a, rules, &[eperm, clone, enosys, socket], allow);
    if rules.iter().any(|r| r.2 == Deny::NotUnix) {
        a.bind(socket);
        a.op(BPF_LD_W_ABS, DATA_ARG0_LO, To::Next, To::Next);
        a.op(
            BPF_JMP_JEQ_K,
            libc::AF_UNIX as u32,
            To::Label(allow),
            To::Label(eperm),
        );
    } else {
        a.bind(socket);
    }
    a.bind(clone);
    a.op(BPF_LD_W_ABS, DATA_ARG0_LO, To::Next, To::Next);
    a.op(
        BPF_JMP_JSET_K,
        NAMESPACE_FLAGS,
        To::Label(eperm),
        To::Label(allow),
    );
    a.bind(allow);
    a.op(BPF_RET_K, RET_ALLOW, To::Next, To::Next);
    a.bind(eperm);
    a.op(BPF_RET_K, RET_EPERM, To::Next, To::Next);
    a.bind(enosys);
    a.op(BPF_RET_K, RET_ENOSYS, To::Next, To::Next);
    a.bind(kill);
    a.op(BPF_RET_K, RET_KILL_PROCESS, To::Next, To::Next);
    a.finish()
}

/// The kernel's `struct sock_fprog`.
#[repr(C)]
struct Fprog {
    len: u16,
    filter: *const Insn,
}

/// Sets `no_new_privs` and installs `program` on the calling thread (and so on every child
/// and exec after it). Only raw system calls, no allocation: usable between fork and exec.
/// The filter covers the calling thread only, so call it in a single-threaded child.
pub fn install(program: &[Insn]) -> io::Result<()> {
    let prog = Fprog {
        len: program.len() as u16,
        filter: program.as_ptr(),
    };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `prog` points at `program`, which outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const Fprog,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs a filter the way the kernel does, on one `seccomp_data`.
    pub(crate) fn run(prog: &[Insn], nr: i64, arch: u32, arg0: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[16..24].copy_from_slice(&arg0.to_le_bytes());
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc];
            pc += 1;
            match i.code {
                BPF_LD_W_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                BPF_RET_K => return i.k,
                BPF_JMP_JA => pc += i.k as usize,
                BPF_JMP_JEQ_K | BPF_JMP_JGE_K | BPF_JMP_JSET_K => {
                    let hit = match i.code {
                        BPF_JMP_JEQ_K => acc == i.k,
                        BPF_JMP_JGE_K => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += if hit { i.jt } else { i.jf } as usize;
                }
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn offline_refuses_every_socket_family_but_unix_and_keeps_the_default() {
        let prog = SeccompProfile::Offline.program().unwrap();
        let nr = libc::SYS_socket;
        assert_eq!(run(&prog, nr, AUDIT_ARCH, libc::AF_UNIX as u64), RET_ALLOW);
        for family in [
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_PACKET,
            libc::AF_NETLINK,
        ] {
            assert_eq!(
                run(&prog, nr, AUDIT_ARCH, family as u64),
                RET_EPERM,
                "{family}"
            );
        }
        let default = SeccompProfile::Default.program().unwrap();
        assert_eq!(
            run(&default, nr, AUDIT_ARCH, libc::AF_INET as u64),
            RET_ALLOW
        );
        for &(name, nr, deny, _) in &rules() {
            if deny == Deny::Always {
                assert_eq!(run(&prog, nr, AUDIT_ARCH, 0), RET_EPERM, "{name}");
            }
        }
        assert_eq!(run(&prog, libc::SYS_connect, AUDIT_ARCH, 3), RET_ALLOW);
        assert_eq!(
            SeccompProfile::from_name("offline"),
            Some(SeccompProfile::Offline)
        );
        assert!(!SeccompProfile::REQUESTABLE.contains(&SeccompProfile::Offline));
    }

    #[test]
    fn default_program_fits_and_is_small() {
        let prog = SeccompProfile::Default.program().unwrap();
        // The kernel takes at most 4096 instructions; a small program keeps calls cheap.
        assert!(prog.len() < 200, "{} instructions", prog.len());
        assert!(SeccompProfile::Unconfined.program().is_none());
    }

    #[test]
    fn every_denied_call_answers_as_its_rule_says_and_nothing_else_is_touched() {
        let prog = SeccompProfile::Default.program().unwrap();
        let rules = rules();
        for &(name, nr, deny, _) in &rules {
            let want = match deny {
                Deny::Always => RET_EPERM,
                Deny::NamespaceFlags => RET_ALLOW,
                Deny::NoSys => RET_ENOSYS,
                Deny::NotUnix => unreachable!("not in the default profile"),
            };
            assert_eq!(run(&prog, nr, AUDIT_ARCH, 0), want, "{name}");
        }
        // Every other number up to well past the last system call is allowed.
        for nr in 0..600 {
            if !rules.iter().any(|r| r.1 == nr) {
                assert_eq!(run(&prog, nr, AUDIT_ARCH, 0), RET_ALLOW, "call {nr}");
            }
        }
    }

    #[test]
    fn clone_is_refused_only_with_a_namespace_flag() {
        let prog = SeccompProfile::Default.program().unwrap();
        let nr = libc::SYS_clone;
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        for (flags, want) in [
            (libc::SIGCHLD as u64, RET_ALLOW),
            (thread, RET_ALLOW),
            (libc::CLONE_NEWUSER as u64, RET_EPERM),
            (libc::CLONE_NEWNS as u64 | libc::SIGCHLD as u64, RET_EPERM),
            (libc::CLONE_NEWNET as u64, RET_EPERM),
        ] {
            assert_eq!(run(&prog, nr, AUDIT_ARCH, flags), want, "flags {flags:#x}");
        }
    }

    #[test]
    fn devbox_allows_nested_namespaces_and_mounts_and_refuses_the_rest_as_the_default() {
        let default = SeccompProfile::Default.program().unwrap();
        let devbox = SeccompProfile::Devbox.program().unwrap();
        assert!(devbox.len() < default.len());
        for &(name, nr, _, _) in &rules() {
            let got = run(&devbox, nr, AUDIT_ARCH, libc::CLONE_NEWUSER as u64);
            if DEVBOX_ALLOWS.contains(&name) {
                assert_eq!(got, RET_ALLOW, "{name}");
                assert_ne!(
                    run(&default, nr, AUDIT_ARCH, libc::CLONE_NEWUSER as u64),
                    RET_ALLOW,
                    "{name} is wider than the default"
                );
            } else {
                assert_eq!(got, run(&default, nr, AUDIT_ARCH, 0), "{name}");
                assert_eq!(got, RET_EPERM, "{name}");
            }
        }
        // Every name in the list is a call the default refuses (no typo allows nothing).
        for name in DEVBOX_ALLOWS {
            assert!(rules().iter().any(|r| r.0 == *name), "{name}");
        }
        // Calls neither profile knows stay allowed, other architectures killed.
        assert_eq!(run(&devbox, libc::SYS_getpid, AUDIT_ARCH, 0), RET_ALLOW);
        assert_eq!(run(&devbox, 20, 0x4000_0003, 0), RET_KILL_PROCESS);
        assert_eq!(
            SeccompProfile::from_name("devbox"),
            Some(SeccompProfile::Devbox)
        );
        assert_eq!(SeccompProfile::REQUESTABLE, &[SeccompProfile::Devbox]);
    }

    #[test]
    fn an_empty_rule_list_allows_everything() {
        let prog = program(&[]);
        for nr in [0, libc::SYS_clone, libc::SYS_keyctl] {
            assert_eq!(
                run(&prog, nr, AUDIT_ARCH, libc::CLONE_NEWUSER as u64),
                RET_ALLOW
            );
        }
    }

    #[test]
    fn another_architecture_is_killed_and_x32_refused() {
        let prog = SeccompProfile::Default.program().unwrap();
        // 32-bit x86 (AUDIT_ARCH_I386): its getpid is another number than ours.
        assert_eq!(run(&prog, 20, 0x4000_0003, 0), RET_KILL_PROCESS);
        if cfg!(target_arch = "x86_64") {
            assert_eq!(run(&prog, 0x4000_0027, AUDIT_ARCH, 0), RET_EPERM);
        }
    }
}
