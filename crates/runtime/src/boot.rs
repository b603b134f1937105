//! How an instance boots: a pure [`BootPlan`] (which namespaces, mounts, device nodes, hostname,
//! user data, entrypoint) and the code that carries it out in the cloned init process.
//!
//! The init process is cloned directly from the daemon with new mount, pid, uts and ipc
//! namespaces. Because the daemon is multi-threaded, everything the child needs is converted to
//! C strings *before* the clone, and the child only makes raw system calls (no allocation, no
//! locks) until it `execve`s. It becomes pid 1 of the instance: it joins the instance's network
//! namespace, mounts the overlay root, `/proc`, a tmpfs `/dev` with a handful of device nodes
//! and a read-only `/sys`, pivots into the root, sets the hostname, waits until the parent has
//! moved it into the instance's cgroups (done in parallel: a v1 cgroup attach waits for an RCU
//! grace period), unshares a cgroup namespace, drops dangerous capabilities from the bounding
//! set, installs the instance's seccomp filter with `no_new_privs` ([`crate::seccomp`]), runs
//! the user data and then the entrypoint. It stays on as a tiny init: it forwards SIGTERM/SIGINT to
//! the entrypoint, reaps every orphan (no zombies), and when the entrypoint exits it writes
//! `exit N` or `signal N` to the status file (a descriptor opened before the pivot) and exits.
//! Its mounts live only in its private mount namespace, so they vanish with the instance.

use std::ffi::{c_char, CString};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::kernel::KernelError;
use crate::seccomp::{Insn, SeccompProfile};

/// One step the init process performs, in order, after joining its network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootStep {
    Mount {
        source: Option<String>,
        target: PathBuf,
        fstype: Option<String>,
        flags: u64,
        data: Option<String>,
    },
    Mkdir {
        path: PathBuf,
        mode: u32,
    },
    /// A character device node (only in the instance's own `/dev` tmpfs).
    Mknod {
        path: PathBuf,
        major: u32,
        minor: u32,
    },
    Symlink {
        target: String,
        link: PathBuf,
    },
    /// Hide a file by bind-mounting `/dev/null` over it, if it exists (this kernel may lack it).
    Mask {
        path: PathBuf,
    },
    /// Hide a directory under an empty read-only tmpfs, if it exists.
    MaskDir {
        path: PathBuf,
    },
    /// Bind a tree onto itself and make that bind read-only, if it exists.
    ReadOnly {
        path: PathBuf,
    },
    /// `pivot_root` into this directory, then detach the old root.
    PivotRoot {
        new_root: PathBuf,
    },
    Sethostname(String),
}

/// Everything the kernel needs to start one instance. Pure data; see [`plan_boot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootPlan {
    /// `/run/netns/<name>` of the instance's network namespace.
    pub netns_path: PathBuf,
    /// `cgroup.procs` files the init process writes itself into (one per v1 hierarchy, or one).
    pub cgroup_procs: Vec<PathBuf>,
    pub steps: Vec<BootStep>,
    /// Host path of the console log; stdout and stderr of everything in the instance.
    pub console_log: PathBuf,
    /// Host path where init writes how the entrypoint ended.
    pub status_file: PathBuf,
    /// Run (inside the new root) to completion before the entrypoint, if present.
    pub user_data_argv: Option<Vec<String>>,
    /// Absolute path (inside the root) of the program to exec, and its argv and environment.
    pub exec_path: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
    /// Capabilities removed from the bounding set before anything in the image runs.
    pub drop_caps: Vec<u32>,
    /// The filter installed (with `no_new_privs`) after the capabilities are dropped.
    pub seccomp: SeccompProfile,
}

/// Inputs of [`plan_boot`].
#[derive(Debug, Clone)]
pub struct BootSpec<'a> {
    pub hostname: &'a str,
    pub netns_path: PathBuf,
    pub cgroup_procs: Vec<PathBuf>,
    /// Image layer trees, lowest first.
    pub layers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub rootfs: PathBuf,
    pub console_log: PathBuf,
    pub status_file: PathBuf,
    pub user_data_path: Option<&'a str>,
    pub exec_path: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub uid: u32,
    pub gid: u32,
    /// Host directories bound into the root (checked by [`crate::bind`]), after the system
    /// mounts and before the pivot.
    pub mounts: Vec<crate::bind::BindMount>,
    pub seccomp: SeccompProfile,
}

/// Capabilities an instance keeps (Docker's default set without CAP_MKNOD, as Podman's).
/// Everything else — notably CAP_SYS_ADMIN (mount, setns), CAP_NET_ADMIN (so an instance can't
/// rewrite its security group rules, which live in its own network namespace), CAP_SYS_MODULE,
/// CAP_SYS_PTRACE, CAP_SYS_RAWIO — is dropped. CAP_MKNOD goes too: Docker keeps it behind a
/// device cgroup, and without one root could make a node for the host's disk and open it.
pub const KEPT_CAPS: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 29, 31];
const CAP_LAST: u32 = 40;

/// The capabilities an instance's processes lose from their bounding set (init's boot and
/// `instance exec`).
pub fn dropped_caps() -> Vec<u32> {
    (0..=CAP_LAST).filter(|c| !KEPT_CAPS.contains(c)).collect()
}

/// Files under the instance's `/proc` hidden behind `/dev/null`, as runc's defaults: host
/// memory (`kcore`), the kernel keyrings of every process, and timer and scheduler state that
/// leak what other tenants run.
pub const MASKED_FILES: &[&str] = &[
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
];

/// Directories hidden under an empty read-only tmpfs, as runc's defaults (hardware and
/// firmware interfaces of the host).
pub const MASKED_DIRS: &[&str] = &[
    "proc/acpi",
    "proc/asound",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
];

/// Trees made read-only, as runc's defaults. Root in an instance is uid 0 of the host's user
/// namespace and writes to these check file permissions, not capabilities (`/proc/sys` holds
/// the host's kernel settings; `/proc/irq` its interrupt routing).
/// `sysrq-trigger` could reboot the host.
pub const READ_ONLY: &[&str] = &[
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

const MS_NOSUID: u64 = libc::MS_NOSUID;
const MS_NODEV: u64 = libc::MS_NODEV;
const MS_NOEXEC: u64 = libc::MS_NOEXEC;

/// Decides what the init process does. Pure, so it is tested without root.
pub fn plan_boot(spec: &BootSpec<'_>) -> BootPlan {
    let r = &spec.rootfs;
    let lower: Vec<String> = spec
        .layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let mut steps = vec![
        // Nothing we mount may propagate back to the host.
        BootStep::Mount {
            source: None,
            target: "/".into(),
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None,
        },
        // `nodev`: a device node in the instance's disk opens nothing (its own /dev is a
        // separate tmpfs with the few nodes init makes).
        BootStep::Mount {
            source: Some("overlay".into()),
            target: r.clone(),
            fstype: Some("overlay".into()),
            flags: MS_NODEV,
            data: Some(format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                spec.upper.display(),
                spec.work.display()
            )),
        },
        BootStep::Mkdir {
            path: r.join("proc"),
            mode: 0o555,
        },
        BootStep::Mount {
            source: Some("proc".into()),
            target: r.join("proc"),
            fstype: Some("proc".into()),
            flags: MS_NOSUID | MS_NODEV | MS_NOEXEC,
            data: None,
        },
        BootStep::Mkdir {
            path: r.join("sys"),
            mode: 0o555,
        },
        BootStep::Mount {
            source: Some("sysfs".into()),
            target: r.join("sys"),
            fstype: Some("sysfs".into()),
            flags: MS_NOSUID | MS_NODEV | MS_NOEXEC | libc::MS_RDONLY,
            data: None,
        },
        BootStep::Mkdir {
            path: r.join("dev"),
            mode: 0o755,
        },
        BootStep::Mount {
            source: Some("tmpfs".into()),
            target: r.join("dev"),
            fstype: Some("tmpfs".into()),
            flags: MS_NOSUID | MS_NOEXEC,
            data: Some("mode=755,size=1m".into()),
        },
    ];
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        steps.push(BootStep::Mknod {
            path: r.join("dev").join(name),
            major,
            minor,
        });
    }
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ] {
        steps.push(BootStep::Symlink {
            target: target.into(),
            link: r.join("dev").join(link),
        });
    }
    steps.push(BootStep::Mkdir {
        path: r.join("dev/shm"),
        mode: 0o1777,
    });
    steps.push(BootStep::Mount {
        source: Some("shm".into()),
        target: r.join("dev/shm"),
        fstype: Some("tmpfs".into()),
        flags: MS_NOSUID | MS_NODEV,
        data: Some("mode=1777,size=16m".into()),
    });
    // As runc's defaults: parts of /proc read-only, host files and directories masked.
    for p in READ_ONLY {
        steps.push(BootStep::ReadOnly { path: r.join(p) });
    }
    for p in MASKED_FILES {
        steps.push(BootStep::Mask { path: r.join(p) });
    }
    for p in MASKED_DIRS {
        steps.push(BootStep::MaskDir { path: r.join(p) });
    }
    for m in &spec.mounts {
        // The mount point is made in the overlay (so in the instance's own upper dir), one
        // component at a time; the root is already private, so the bind stays in here.
        let mut dir = r.clone();
        for c in m.guest.split('/').filter(|c| !c.is_empty()) {
            dir.push(c);
            steps.push(BootStep::Mkdir {
                path: dir.clone(),
                mode: 0o755,
            });
        }
        steps.push(BootStep::Mount {
            source: Some(m.host.display().to_string()),
            target: dir,
            fstype: None,
            flags: libc::MS_BIND | libc::MS_REC,
            data: None,
        });
    }
    steps.push(BootStep::PivotRoot {
        new_root: r.clone(),
    });
    steps.push(BootStep::Sethostname(spec.hostname.to_string()));
    BootPlan {
        netns_path: spec.netns_path.clone(),
        cgroup_procs: spec.cgroup_procs.clone(),
        steps,
        console_log: spec.console_log.clone(),
        status_file: spec.status_file.clone(),
        user_data_argv: spec
            .user_data_path
            .map(|p| vec!["/bin/sh".to_string(), p.to_string()]),
        exec_path: spec.exec_path.clone(),
        argv: spec.argv.clone(),
        env: spec.env.clone(),
        workdir: spec.workdir.clone(),
        uid: spec.uid,
        gid: spec.gid,
        drop_caps: dropped_caps(),
        seccomp: spec.seccomp,
    }
}

impl BootPlan {
    /// One line per action, for the recording kernel and for debugging.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "setns net {}", self.netns_path.display());
        for p in &self.cgroup_procs {
            let _ = writeln!(
                s,
                "join cgroup {} (written by the parent while init mounts)",
                p.display()
            );
        }
        for step in &self.steps {
            let _ = match step {
                BootStep::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => writeln!(
                    s,
                    "mount {} on {} type {} flags {flags:#x}{}",
                    source.as_deref().unwrap_or("none"),
                    target.display(),
                    fstype.as_deref().unwrap_or("none"),
                    data.as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
                BootStep::Mkdir { path, mode } => writeln!(s, "mkdir {} {mode:o}", path.display()),
                BootStep::Mknod { path, major, minor } => {
                    writeln!(s, "mknod {} c {major} {minor}", path.display())
                }
                BootStep::Symlink { target, link } => {
                    writeln!(s, "symlink {} -> {target}", link.display())
                }
                BootStep::Mask { path } => writeln!(s, "mask {} with /dev/null", path.display()),
                BootStep::MaskDir { path } => {
                    writeln!(s, "mask {} with an empty read-only tmpfs", path.display())
                }
                BootStep::ReadOnly { path } => writeln!(s, "read-only {}", path.display()),
                BootStep::PivotRoot { new_root } => {
                    writeln!(s, "pivot_root {}", new_root.display())
                }
                BootStep::Sethostname(h) => writeln!(s, "sethostname {h}"),
            };
        }
        let _ = writeln!(s, "wait for cgroups, unshare cgroup");
        let _ = writeln!(s, "drop caps {:?}", self.drop_caps);
        let _ = writeln!(s, "seccomp {}", self.seccomp.name());
        if let Some(ud) = &self.user_data_argv {
            let _ = writeln!(s, "run user data {ud:?}");
        }
        let _ = writeln!(
            s,
            "exec {} {:?} as {}:{} in {}",
            self.exec_path, self.argv, self.uid, self.gid, self.workdir
        );
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The real executor. Everything below `spawn_real` that runs in the child is async-signal-safe.

enum CStep {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: u64,
        data: Option<CString>,
    },
    Mkdir {
        path: CString,
        mode: u32,
    },
    Mknod {
        path: CString,
        dev: u64,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    Mask {
        path: CString,
    },
    MaskDir {
        path: CString,
    },
    ReadOnly {
        path: CString,
    },
    PivotRoot {
        new_root: CString,
    },
    Sethostname(CString),
}

struct CArgv {
    _owned: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

impl CArgv {
    fn new(items: &[String]) -> Result<Self, KernelError> {
        let owned: Vec<CString> = items.iter().map(|s| cstr(s)).collect::<Result<_, _>>()?;
        let mut ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(Self {
            _owned: owned,
            ptrs,
        })
    }
}

/// Descriptors and strings prepared before the clone.
struct Prepared {
    netns_fd: i32,
    cgroup_fds: Vec<i32>,
    /// The parent writes one byte here once init is in its cgroups (EOF: it failed).
    sync_r: i32,
    sync_w: i32,
    log_fd: i32,
    null_fd: i32,
    status_fd: i32,
    steps: Vec<CStep>,
    user_data: Option<(CString, CArgv)>,
    exec_path: CString,
    argv: CArgv,
    env: CArgv,
    workdir: CString,
    uid: u32,
    gid: u32,
    confine: Confinement,
}

/// What every process of an instance runs under, prepared before a fork: the capabilities
/// dropped from the bounding set and the seccomp program.
pub(crate) struct Confinement {
    drop_caps: Vec<u32>,
    seccomp: Option<Vec<Insn>>,
}

impl Confinement {
    pub(crate) fn new(seccomp: SeccompProfile) -> Self {
        Self {
            drop_caps: dropped_caps(),
            seccomp: seccomp.program(),
        }
    }

    /// Drops the capabilities, then installs the filter with `no_new_privs`. Raw system
    /// calls only, on the calling thread: for a freshly forked, single-threaded child.
    pub(crate) fn apply(&self) -> io::Result<()> {
        for cap in &self.drop_caps {
            // SAFETY: prctl with integer arguments; EINVAL for capabilities this kernel
            // doesn't know is fine.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0) };
        }
        match &self.seccomp {
            Some(prog) => crate::seccomp::install(prog),
            None => Ok(()),
        }
    }
}

/// In a child that has just joined a pid namespace (which only its children enter): forks,
/// and returns in the new child; the caller's process stays behind, closes every descriptor
/// (so whoever reads the child's pipes sees their end when the child ends), waits for the
/// child and exits with its status (128 + signal when killed). The child dies with it
/// (`PR_SET_PDEATHSIG`), so killing the returned process on a timeout ends both.
/// Raw system calls only: for use between fork and exec.
pub(crate) fn fork_into_pid_namespace() -> io::Result<()> {
    let child = raw_fork();
    if child < 0 {
        return Err(io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        return Ok(());
    }
    close_range_raw(0, i32::MAX);
    let mut st = 0;
    loop {
        // SAFETY: waiting for our own child; `st` is a valid out-pointer.
        let r = unsafe { libc::waitpid(child as libc::pid_t, &mut st, 0) };
        // SAFETY: reading errno has no preconditions.
        if r < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
            continue;
        }
        let code = if r < 0 {
            127
        } else if libc::WIFSIGNALED(st) {
            128 + libc::WTERMSIG(st)
        } else {
            libc::WEXITSTATUS(st)
        };
        // SAFETY: _exit ends this forked process without running any user-space cleanup.
        unsafe { libc::_exit(code) }
    }
}

fn cstr(s: &str) -> Result<CString, KernelError> {
    CString::new(s).map_err(|e| {
        KernelError::io(
            format!("{s:?} contains NUL"),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })
}

fn cpath(p: &Path) -> Result<CString, KernelError> {
    cstr(&p.display().to_string())
}

fn open_fd(path: &Path, flags: i32) -> Result<i32, KernelError> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid NUL-terminated path; the mode argument is only read with O_CREAT.
    let fd = unsafe { libc::open(c.as_ptr(), flags, 0o640) };
    if fd < 0 {
        return Err(KernelError::io(
            format!("open {}", path.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(fd)
}

fn close_all(fds: &[i32]) {
    for fd in fds {
        // SAFETY: each descriptor was opened by `prepare` and is closed exactly once.
        unsafe { libc::close(*fd) };
    }
}

fn prepare(plan: &BootPlan, fds: &mut Vec<i32>) -> Result<Prepared, KernelError> {
    let mut pipe = [0i32; 2];
    // SAFETY: `pipe` is a valid two-element array for pipe2 to fill.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(KernelError::io(
            "create sync pipe",
            io::Error::last_os_error(),
        ));
    }
    fds.extend_from_slice(&pipe);
    let (sync_r, sync_w) = (pipe[0], pipe[1]);
    let mut take = |path: &Path, flags: i32| -> Result<i32, KernelError> {
        let fd = open_fd(path, flags)?;
        fds.push(fd);
        Ok(fd)
    };
    let netns_fd = take(&plan.netns_path, libc::O_RDONLY | libc::O_CLOEXEC)?;
    let cgroup_fds = plan
        .cgroup_procs
        .iter()
        .map(|p| take(p, libc::O_WRONLY | libc::O_CLOEXEC))
        .collect::<Result<Vec<_>, _>>()?;
    let log_fd = take(
        &plan.console_log,
        libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC,
    )?;
    let null_fd = take(Path::new("/dev/null"), libc::O_RDWR | libc::O_CLOEXEC)?;
    let status_fd = take(
        &plan.status_file,
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
    )?;
    let steps = plan
        .steps
        .iter()
        .map(|s| {
            Ok(match s {
                BootStep::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => CStep::Mount {
                    source: source.as_deref().map(cstr).transpose()?,
                    target: cpath(target)?,
                    fstype: fstype.as_deref().map(cstr).transpose()?,
                    flags: *flags,
                    data: data.as_deref().map(cstr).transpose()?,
                },
                BootStep::Mkdir { path, mode } => CStep::Mkdir {
                    path: cpath(path)?,
                    mode: *mode,
                },
                BootStep::Mknod { path, major, minor } => CStep::Mknod {
                    path: cpath(path)?,
                    dev: libc::makedev(*major, *minor),
                },
                BootStep::Symlink { target, link } => CStep::Symlink {
                    target: cstr(target)?,
                    link: cpath(link)?,
                },
                BootStep::Mask { path } => CStep::Mask { path: cpath(path)? },
                BootStep::MaskDir { path } => CStep::MaskDir { path: cpath(path)? },
                BootStep::ReadOnly { path } => CStep::ReadOnly { path: cpath(path)? },
                BootStep::PivotRoot { new_root } => CStep::PivotRoot {
                    new_root: cpath(new_root)?,
                },
                BootStep::Sethostname(h) => CStep::Sethostname(cstr(h)?),
            })
        })
        .collect::<Result<Vec<_>, KernelError>>()?;
    let user_data = match &plan.user_data_argv {
        Some(argv) => Some((cstr(&argv[0])?, CArgv::new(argv)?)),
        None => None,
    };
    Ok(Prepared {
        netns_fd,
        cgroup_fds,
        sync_r,
        sync_w,
        log_fd,
        null_fd,
        status_fd,
        steps,
        user_data,
        exec_path: cstr(&plan.exec_path)?,
        argv: CArgv::new(&plan.argv)?,
        env: CArgv::new(&plan.env)?,
        workdir: cstr(&plan.workdir)?,
        uid: plan.uid,
        gid: plan.gid,
        confine: Confinement {
            drop_caps: plan.drop_caps.clone(),
            seccomp: plan.seccomp.program(),
        },
    })
}

/// Clones the instance's init process. See the module docs.
pub(crate) fn spawn_real(
    plan: &BootPlan,
    ready: &mut dyn FnMut() -> Result<(), KernelError>,
) -> Result<u32, KernelError> {
    let mut fds = Vec::new();
    let prepared = match prepare(plan, &mut fds) {
        Ok(p) => p,
        Err(e) => {
            close_all(&fds);
            return Err(e);
        }
    };
    let flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::SIGCHLD;
    // SAFETY: a raw clone without CLONE_VM behaves like fork: the child gets a copy-on-write
    // copy of this thread's memory. The child only runs `init_main`, which makes raw system calls
    // on data prepared above (no allocation, no locks) and never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        init_main(&prepared);
    }
    if pid < 0 {
        let err = io::Error::last_os_error();
        close_all(&fds);
        return Err(KernelError::io("clone instance init", err));
    }
    // Attaching to a v1 cgroup waits for an RCU grace period (several ms), and the caller's
    // `ready` finishes the network: both happen here while init mounts its root; then init
    // goes on. Init runs nothing from the image before that.
    let pid_text = pid.to_string();
    let mut err = None;
    for fd in &prepared.cgroup_fds {
        // SAFETY: writing a live byte slice to a descriptor opened by `prepare`.
        let n = unsafe { libc::write(*fd, pid_text.as_ptr().cast(), pid_text.len()) };
        if n != pid_text.len() as isize {
            err = Some(KernelError::io(
                "move instance init into its cgroups",
                io::Error::last_os_error(),
            ));
            break;
        }
    }
    if err.is_none() {
        err = ready().err();
    }
    if err.is_none() {
        // SAFETY: writing one byte from a static slice to the pipe created by `prepare`.
        unsafe { libc::write(prepared.sync_w, b"1".as_ptr().cast(), 1) };
    }
    // Closing the write end without a byte tells init to give up.
    close_all(&fds);
    if let Some(e) = err {
        let mut status = 0;
        // SAFETY: killing and reaping the child we just cloned; `status` is a valid out-pointer.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
            libc::waitpid(pid as libc::pid_t, &mut status, 0);
        }
        return Err(e);
    }
    Ok(pid as u32)
}

static MAIN_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(sig: libc::c_int) {
    let pid = MAIN_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe and has no memory preconditions.
        unsafe { libc::kill(pid, sig) };
    }
}

fn write_all(fd: i32, bytes: &[u8]) {
    // SAFETY: the pointer and length describe a live byte slice.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}

/// Formats `n` into `buf` without allocating and returns the digits.
fn fmt_u32(n: u32, buf: &mut [u8; 12]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Reports a failed step on the console and exits init.
fn fail(step: &[u8], index: usize, status_fd: i32) -> ! {
    // SAFETY: reading errno has no preconditions.
    let errno = unsafe { *libc::__errno_location() };
    let mut a = [0u8; 12];
    let mut b = [0u8; 12];
    write_all(2, b"spindle-init: ");
    write_all(2, step);
    write_all(2, b" (step ");
    write_all(2, fmt_u32(index as u32, &mut a));
    write_all(2, b") failed: errno ");
    write_all(2, fmt_u32(errno as u32, &mut b));
    write_all(2, b"\n");
    write_all(status_fd, b"boot-failed ");
    write_all(status_fd, step);
    write_all(status_fd, b"\n");
    // SAFETY: _exit ends the process without running any user-space cleanup.
    unsafe { libc::_exit(127) }
}

fn opt_ptr(c: &Option<CString>) -> *const c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// Forks inside the instance with a raw clone (glibc's fork would take malloc locks that another
/// daemon thread may have held at the time of our own clone).
fn raw_fork() -> libc::c_long {
    // SAFETY: as in `spawn_real`: fork semantics, the child only makes raw system calls.
    unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    }
}

/// Closes every descriptor from 3 up except those in `keep`, with raw system calls only.
fn close_except(mut keep: [i32; 3]) {
    keep.sort_unstable();
    let mut low = 3;
    for k in keep {
        if k >= low {
            close_range_raw(low, k - 1);
            low = k + 1;
        }
    }
    close_range_raw(low, i32::MAX);
}

/// Closes every descriptor from `low` up except `keep`, with raw system calls only.
fn close_from(low: i32, keep: i32) {
    let ranges = [(low, keep - 1), ((keep + 1).max(low), i32::MAX)];
    for (first, last) in ranges {
        close_range_raw(first, last);
    }
}

/// close_range(2), or closing one by one on kernels before 5.9.
fn close_range_raw(first: i32, last: i32) {
    if first > last {
        return;
    }
    // SAFETY: close_range only closes descriptors of this process; init uses none of the
    // closed ones afterwards.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last as libc::c_uint,
            0 as libc::c_uint,
        )
    };
    if r != 0 {
        // Kernels before 5.9: close one by one up to a bound well above what the daemon opens.
        for fd in first..=last.min(65_535) {
            // SAFETY: as above; EBADF for descriptors that aren't open is harmless.
            unsafe { libc::close(fd) };
        }
    }
}

fn init_main(p: &Prepared) -> ! {
    let sfd = p.status_fd;
    // SAFETY: the whole block makes raw system calls on descriptors and NUL-terminated strings that
    // `prepare` created and that live for the rest of this process; no allocation happens.
    unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            c"spindle-init".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
        libc::dup2(p.null_fd, 0);
        libc::dup2(p.log_fd, 1);
        libc::dup2(p.log_fd, 2);
        // Init is a copy of the daemon that never execs: drop every descriptor it inherited
        // but the few it still needs, at once. Other daemon threads may be running `ip` or
        // `nft` with pipes at this moment (the network is set up while init prepares its
        // root); init's copies would keep those pipes open and the commands waiting. Later
        // the data dir's lock, the API socket and the database would outlive a killed daemon.
        close_except([sfd, p.sync_r, p.netns_fd]);
        // The daemon may ignore SIGPIPE or block signals; the instance must start clean.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::close(p.sync_w);
        if libc::setns(p.netns_fd, libc::CLONE_NEWNET) != 0 {
            fail(b"setns net", 0, sfd);
        }
        for (i, step) in p.steps.iter().enumerate() {
            match step {
                CStep::Mount {
                    source,
                    target,
                    fstype,
                    flags,
                    data,
                } => {
                    let d = data
                        .as_ref()
                        .map_or(std::ptr::null(), |d| d.as_ptr().cast());
                    if libc::mount(opt_ptr(source), target.as_ptr(), opt_ptr(fstype), *flags, d)
                        != 0
                    {
                        fail(b"mount", i, sfd);
                    }
                }
                CStep::Mkdir { path, mode } => {
                    if libc::mkdir(path.as_ptr(), *mode) != 0
                        && *libc::__errno_location() != libc::EEXIST
                    {
                        fail(b"mkdir", i, sfd);
                    }
                }
                CStep::Mknod { path, dev } => {
                    if libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o666, *dev) != 0 {
                        fail(b"mknod", i, sfd);
                    }
                    libc::chmod(path.as_ptr(), 0o666);
                }
                CStep::Symlink { target, link } => {
                    if libc::symlink(target.as_ptr(), link.as_ptr()) != 0 {
                        fail(b"symlink", i, sfd);
                    }
                }
                CStep::Mask { path } => {
                    let rc = libc::mount(
                        c"/dev/null".as_ptr(),
                        path.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    );
                    if rc != 0 && *libc::__errno_location() != libc::ENOENT {
                        fail(b"mask", i, sfd);
                    }
                }
                CStep::MaskDir { path } => {
                    let rc = libc::mount(
                        c"tmpfs".as_ptr(),
                        path.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                        c"size=0,mode=555".as_ptr().cast(),
                    );
                    if rc != 0 && *libc::__errno_location() != libc::ENOENT {
                        fail(b"mask directory", i, sfd);
                    }
                }
                CStep::ReadOnly { path } => {
                    let none = std::ptr::null();
                    let rc = libc::mount(
                        path.as_ptr(),
                        path.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        none.cast(),
                    );
                    if rc != 0 {
                        if *libc::__errno_location() == libc::ENOENT {
                            continue;
                        }
                        fail(b"bind read-only", i, sfd);
                    }
                    let flags = libc::MS_BIND
                        | libc::MS_REMOUNT
                        | libc::MS_RDONLY
                        | MS_NOSUID
                        | MS_NODEV
                        | MS_NOEXEC;
                    if libc::mount(none, path.as_ptr(), none, flags, none.cast()) != 0 {
                        fail(b"remount read-only", i, sfd);
                    }
                }
                CStep::PivotRoot { new_root } => {
                    if libc::chdir(new_root.as_ptr()) != 0 {
                        fail(b"chdir new root", i, sfd);
                    }
                    let dot = c".".as_ptr();
                    if libc::syscall(libc::SYS_pivot_root, dot, dot) != 0 {
                        fail(b"pivot_root", i, sfd);
                    }
                    if libc::umount2(dot, libc::MNT_DETACH) != 0 {
                        fail(b"detach old root", i, sfd);
                    }
                    libc::chdir(c"/".as_ptr());
                }
                CStep::Sethostname(h) => {
                    if libc::sethostname(h.as_ptr(), h.as_bytes().len()) != 0 {
                        fail(b"sethostname", i, sfd);
                    }
                }
            }
        }
        // Wait until the parent has moved us into the instance's cgroups.
        let mut byte = 0u8;
        loop {
            let n = libc::read(p.sync_r, (&mut byte as *mut u8).cast(), 1);
            if n == 1 {
                break;
            }
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            fail(b"join cgroup", 0, sfd);
        }
        libc::close(p.sync_r);
        if libc::unshare(libc::CLONE_NEWCGROUP) != 0 {
            fail(b"unshare cgroup", 0, sfd);
        }
        libc::close(p.netns_fd);
        for fd in &p.cgroup_fds {
            libc::close(*fd);
        }
        // Only stdio and the status file are left now.
        close_from(3, sfd);
        // Init drops the capabilities and installs the filter on itself, so nothing in the
        // image ever runs without them; what init still does (fork, wait, kill, write,
        // execve) is all allowed.
        if p.confine.apply().is_err() {
            fail(b"seccomp", 0, sfd);
        }
        if let Some((path, argv)) = &p.user_data {
            let child = raw_fork();
            if child == 0 {
                libc::execve(path.as_ptr(), argv.ptrs.as_ptr(), p.env.ptrs.as_ptr());
                libc::_exit(127);
            }
            if child > 0 {
                let mut st = 0;
                loop {
                    let r = libc::waitpid(-1, &mut st, 0);
                    if r == child as i32 || (r < 0 && *libc::__errno_location() != libc::EINTR) {
                        break;
                    }
                }
            }
        }
        let main = raw_fork();
        if main == 0 {
            libc::close(sfd);
            libc::setsid();
            if libc::chdir(p.workdir.as_ptr()) != 0 {
                libc::chdir(c"/".as_ptr());
            }
            if p.gid != 0 || p.uid != 0 {
                libc::setgroups(0, std::ptr::null());
                if libc::setgid(p.gid) != 0 || libc::setuid(p.uid) != 0 {
                    write_all(2, b"spindle-init: cannot switch user\n");
                    libc::_exit(126);
                }
            }
            libc::execve(
                p.exec_path.as_ptr(),
                p.argv.ptrs.as_ptr(),
                p.env.ptrs.as_ptr(),
            );
            write_all(2, b"spindle-init: execve of the entrypoint failed\n");
            libc::_exit(127);
        }
        if main < 0 {
            fail(b"fork entrypoint", 0, sfd);
        }
        MAIN_PID.store(main as i32, Ordering::Relaxed);
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = forward_signal as *const () as usize;
        act.sa_flags = libc::SA_RESTART;
        for sig in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
        let mut buf = [0u8; 12];
        loop {
            let mut st = 0;
            let r = libc::waitpid(-1, &mut st, 0);
            if r < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                write_all(sfd, b"exit 0\n");
                libc::_exit(0);
            }
            if r == main as i32 {
                if libc::WIFSIGNALED(st) {
                    let sig = libc::WTERMSIG(st);
                    write_all(sfd, b"signal ");
                    write_all(sfd, fmt_u32(sig as u32, &mut buf));
                    write_all(sfd, b"\n");
                    libc::_exit(128 + sig);
                }
                let code = libc::WEXITSTATUS(st);
                write_all(sfd, b"exit ");
                write_all(sfd, fmt_u32(code as u32, &mut buf));
                write_all(sfd, b"\n");
                libc::_exit(code);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_u32_without_allocation() {
        let mut b = [0u8; 12];
        assert_eq!(fmt_u32(0, &mut b), b"0");
        assert_eq!(fmt_u32(137, &mut b), b"137");
        assert_eq!(fmt_u32(u32::MAX, &mut b), b"4294967295");
    }

    #[test]
    fn plan_mounts_overlay_with_topmost_layer_first_and_pivots_last() {
        let spec = BootSpec {
            hostname: "ip-10-200-1-2",
            netns_path: "/run/netns/spxi1".into(),
            cgroup_procs: vec!["/sys/fs/cgroup/memory/spx/i-1/cgroup.procs".into()],
            layers: vec!["/img/layers/aaa".into(), "/img/layers/bbb".into()],
            upper: "/inst/upper".into(),
            work: "/inst/work".into(),
            rootfs: "/inst/rootfs".into(),
            console_log: "/inst/console.log".into(),
            status_file: "/inst/status".into(),
            user_data_path: Some("/var/lib/cloud/instance/user-data.txt"),
            exec_path: "/bin/busybox".into(),
            argv: vec!["httpd".into(), "-f".into()],
            env: vec!["PATH=/bin".into()],
            workdir: "/".into(),
            uid: 0,
            gid: 0,
            mounts: vec![crate::bind::BindMount {
                host: "/home/dev/proj".into(),
                guest: "/srv/project".into(),
            }],
            seccomp: SeccompProfile::Default,
        };
        let plan = plan_boot(&spec);
        let text = plan.describe();
        assert!(text.contains(
            "mount overlay on /inst/rootfs type overlay flags 0x4 (lowerdir=/img/layers/bbb:/img/layers/aaa,upperdir=/inst/upper,workdir=/inst/work)"
        ), "{text}");
        assert!(text.starts_with("setns net /run/netns/spxi1\njoin cgroup"));
        assert!(text.contains("mknod /inst/rootfs/dev/null c 1 3"));
        let pivot = text.find("pivot_root /inst/rootfs").unwrap();
        assert!(text.find("sethostname ip-10-200-1-2").unwrap() > pivot);
        assert!(text.find("mount proc on /inst/rootfs/proc").unwrap() < pivot);
        // The project directory: its mount point made component by component, then bound,
        // after the system mounts and before the pivot.
        let bind = text
            .find("mount /home/dev/proj on /inst/rootfs/srv/project type none flags 0x5000")
            .unwrap();
        assert!(
            bind < pivot
                && bind
                    > text
                        .find("read-only /inst/rootfs/proc/sysrq-trigger")
                        .unwrap()
        );
        let srv = text.find("mkdir /inst/rootfs/srv 755").unwrap();
        assert!(srv < text.find("mkdir /inst/rootfs/srv/project 755").unwrap());
        assert!(
            text.contains("run user data [\"/bin/sh\", \"/var/lib/cloud/instance/user-data.txt\"]")
        );
        // CAP_SYS_ADMIN (21) and CAP_NET_ADMIN (12) are dropped; CAP_NET_BIND_SERVICE (10) kept.
        assert!(plan.drop_caps.contains(&21) && plan.drop_caps.contains(&12));
        assert!(!plan.drop_caps.contains(&10));
        // runc's masked and read-only paths, before the pivot; the filter after the caps.
        for line in [
            "mask /inst/rootfs/proc/kcore with /dev/null",
            "mask /inst/rootfs/proc/keys with /dev/null",
            "mask /inst/rootfs/proc/timer_list with /dev/null",
            "mask /inst/rootfs/sys/firmware with an empty read-only tmpfs",
            "read-only /inst/rootfs/proc/sys",
            "read-only /inst/rootfs/proc/irq",
        ] {
            assert!(
                text.find(line).is_some_and(|at| at < pivot),
                "{line}\n{text}"
            );
        }
        assert!(text.find("seccomp default").unwrap() > text.find("drop caps").unwrap());
        assert!(text.find("seccomp default").unwrap() < text.find("run user data").unwrap());
    }
}
