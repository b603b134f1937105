//! Every call into the kernel (and into `ip`/`nft`) goes through [`Kernel`].
//!
//! [`RealKernel`] does the work; [`FakeKernel`] records each call as one line of text so that
//! the planners (which mounts, which cgroup values, which nftables rules, which `ip` commands)
//! can be tested without root, and a test can make any call fail to check the undo path.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::boot::BootPlan;
use crate::cidr::Ipv4Net;
use crate::sandbox::{TreeExit, TreeRun};
use crate::seccomp::SeccompProfile;

/// Where `ip netns` keeps its named namespaces; we use the same place so `ip netns list` shows ours.
pub const NETNS_DIR: &str = "/run/netns";

/// A failed kernel call or helper command.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("{op} failed")]
    Io {
        op: String,
        #[source]
        err: io::Error,
    },
    #[error("`{cmd}` failed: {stderr}")]
    Command { cmd: String, stderr: String },
    #[error("{0} (injected by the fake kernel)")]
    Injected(String),
}

impl KernelError {
    pub(crate) fn io(op: impl Into<String>, err: io::Error) -> Self {
        KernelError::Io { op: op.into(), err }
    }
}

/// How a process ended, as seen by `waitpid` (when we are its parent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The raw `waitpid` status.
    Status(i32),
    /// The process was not our child (adopted after a restart); it has gone.
    Gone,
}

/// The kernel interface the runtime needs. Implementations must be usable from many threads.
pub trait Kernel: Send + Sync + 'static {
    /// Creates a named network namespace under [`NETNS_DIR`].
    fn netns_create(&self, name: &str) -> Result<(), KernelError>;
    /// Removes a named network namespace (it dies once no process uses it).
    fn netns_delete(&self, name: &str) -> Result<(), KernelError>;
    fn netns_list(&self) -> Result<Vec<String>, KernelError>;
    /// Runs `ip -batch -` (inside `netns` when given) with `script` on stdin.
    fn ip_batch(&self, netns: Option<&str>, script: &str) -> Result<(), KernelError>;
    /// Runs `nft -f -` (inside `netns` when given); a script is one atomic transaction.
    fn nft_apply(&self, netns: Option<&str>, script: &str) -> Result<(), KernelError>;
    /// Lists nftables tables as `family name`.
    fn nft_tables(&self, netns: Option<&str>) -> Result<Vec<String>, KernelError>;
    /// Writes `/proc/sys/<key>` inside a network namespace (per-namespace net sysctls).
    fn sysctl(&self, netns: &str, key: &str, value: &str) -> Result<(), KernelError>;
    /// IPv4 routes of the host's own namespace (all tables), default routes excluded.
    fn host_routes(&self) -> Result<Vec<Ipv4Net>, KernelError>;
    /// Interface names in the host's namespace.
    fn host_links(&self) -> Result<Vec<String>, KernelError>;
    /// Interface names inside a named network namespace.
    fn netns_links(&self, netns: &str) -> Result<Vec<String>, KernelError>;
    fn link_delete(&self, name: &str) -> Result<(), KernelError>;
    /// Inside `netns`: makes link `port` a port of bridge `bridge` and sets it up (two ioctls,
    /// no process start: this is on the launch's critical path).
    fn bridge_port_up(&self, netns: &str, bridge: &str, port: &str) -> Result<(), KernelError>;

    fn cgroup_create(&self, dir: &Path) -> Result<(), KernelError>;
    fn cgroup_write(&self, dir: &Path, file: &str, value: &str) -> Result<(), KernelError>;
    fn cgroup_read(&self, dir: &Path, file: &str) -> Result<String, KernelError>;
    /// Removes a cgroup directory; it must have no processes left.
    fn cgroup_remove(&self, dir: &Path) -> Result<(), KernelError>;
    fn path_exists(&self, path: &Path) -> bool;
    fn list_dir(&self, dir: &Path) -> Vec<String>;

    /// Mount points of the host's mount namespace.
    fn mounts(&self) -> Result<Vec<PathBuf>, KernelError>;
    fn umount(&self, target: &Path) -> Result<(), KernelError>;

    /// Clones the instance's init process with new mount, pid, uts, ipc and cgroup namespaces
    /// and runs `plan` in it (see [`crate::boot`]). Returns its pid in our namespace.
    ///
    /// Init prepares its root while `ready` runs (the caller finishes the instance's network
    /// there) and runs nothing from the image until `ready` returns `Ok`; on `Err` init is
    /// killed and the error returned.
    fn spawn_instance(
        &self,
        plan: &BootPlan,
        ready: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<u32, KernelError>;
    fn signal(&self, pid: u32, signal: i32) -> Result<(), KernelError>;
    /// Blocks until `pid` exits; reaps it when it is our child.
    fn wait_exit(&self, pid: u32) -> Result<WaitOutcome, KernelError>;
    /// The process's start time in clock ticks since boot (guards against pid reuse), if alive.
    fn process_start_time(&self, pid: u32) -> Option<u64>;
    /// Runs `argv` inside the namespaces of `pid` (and the given cgroups) and waits for it,
    /// confined as the instance's own processes are: the same capability bounding set and
    /// `seccomp` filter.
    fn exec_in(
        &self,
        pid: u32,
        cgroup_procs: &[PathBuf],
        argv: &[String],
        timeout: Duration,
        seccomp: SeccompProfile,
    ) -> Result<Output, KernelError>;
    /// Runs `argv` as [`Kernel::exec_in`] does (namespaces, cgroups, confinement) but on this
    /// process's own stdin, stdout and stderr, with exactly `env`, and waits for it: an
    /// interactive shell on the caller's terminal, so its TTY, window size and Ctrl-C are the
    /// terminal's. While it runs, this process ignores SIGINT and SIGQUIT (they are for the
    /// command). Returns the exit code, 128 + the signal's number if a signal ended it.
    fn attach_in(
        &self,
        pid: u32,
        cgroup_procs: &[PathBuf],
        argv: &[String],
        env: &[(String, String)],
        seccomp: SeccompProfile,
    ) -> Result<i32, KernelError>;
    /// Runs `argv` as [`Kernel::exec_in`] does, but as `user.uid`/`user.gid` with no
    /// supplementary groups (so with no capabilities) and exactly `user.env`: a pipeline
    /// step, which must not run as the instance's root.
    fn exec_in_as(
        &self,
        pid: u32,
        cgroup_procs: &[PathBuf],
        argv: &[String],
        user: &ExecUser,
        timeout: Duration,
        seccomp: SeccompProfile,
    ) -> Result<Output, KernelError>;
    /// Runs `argv` as [`Kernel::exec_in_as`] does, but hands its output (standard output and
    /// error joined, in write order) to `sink` while it runs: a pipeline step's live log.
    /// This default runs it to the end first; the real kernel streams.
    #[allow(clippy::too_many_arguments)]
    fn exec_in_as_streaming(
        &self,
        pid: u32,
        cgroup_procs: &[PathBuf],
        argv: &[String],
        user: &ExecUser,
        timeout: Duration,
        seccomp: SeccompProfile,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<std::process::ExitStatus, KernelError> {
        let out = self.exec_in_as(pid, cgroup_procs, argv, user, timeout, seccomp)?;
        sink(&out.stdout);
        sink(&out.stderr);
        Ok(out.status)
    }
    /// Whether instances whose layers live under `dir` can run in user namespaces of their
    /// own (idmapped mounts work there); the error says why not. See [`crate::userns`].
    fn userns_support(&self, dir: &Path) -> Result<(), String>;
    /// Gives a tree the engine wrote (an instance's fresh upper dir) to the root of a user
    /// namespace with these ids.
    fn chown_tree(&self, path: &Path, range: crate::userns::IdRange) -> Result<(), KernelError>;
    /// Binds a TCP listener inside a network namespace (a socket keeps its namespace).
    fn tcp_listen_in(&self, netns: &str, addr: &str) -> Result<TcpListener, KernelError>;
    /// Binds a UDP socket inside a network namespace (it stays there for its life).
    fn udp_bind_in(&self, netns: &str, addr: &str) -> Result<UdpSocket, KernelError>;
    /// Runs a command inside an overlay of layer trees in fresh namespaces (image baking; see
    /// [`crate::sandbox`]) and waits for it.
    fn run_in_tree(&self, spec: &TreeRun) -> Result<TreeExit, KernelError>;
    /// Connects a TCP socket from inside a network namespace.
    fn tcp_connect_in(
        &self,
        netns: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, KernelError>;
    /// Connects a TCP socket from inside a network namespace, bound first to `source` (an
    /// address of that namespace), so the peer sees `source`.
    fn tcp_connect_in_from(
        &self,
        netns: &str,
        source: std::net::Ipv4Addr,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, KernelError>;
}

/// `addr` as a socket address, or an error naming it.
fn socket_addr(addr: &str) -> Result<std::net::SocketAddr, KernelError> {
    addr.parse().map_err(|e| {
        KernelError::io(
            format!("parse {addr}"),
            io::Error::new(io::ErrorKind::InvalidInput, e),
        )
    })
}

/// Who [`Kernel::exec_in_as`] runs a command as, and with which environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub env: Vec<(String, String)>,
}

/// Spawns `cmd` (prepared by [`enter`]) with its output captured and waits at most `timeout`
/// for it, killing it then.
fn output_within(
    kernel: &RealKernel,
    mut cmd: Command,
    program: &str,
    timeout: Duration,
) -> Result<Output, KernelError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| KernelError::io(format!("spawn {program} in instance"), e))?;
    let child_pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(r) => r.map_err(|e| KernelError::io(format!("wait for {program}"), e)),
        Err(_) => {
            let _ = kernel.signal(child_pid, libc::SIGKILL);
            Err(KernelError::Command {
                cmd: format!("exec {program}"),
                stderr: format!("timed out after {timeout:?}"),
            })
        }
    }
}

/// An `ifreq` naming `name` (at most IFNAMSIZ - 1 bytes).
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::other(format!("bad interface name `{name}`")));
    }
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    Ok(r)
}

/// `ip link set PORT master BRIDGE up`, in this thread's network namespace, by ioctl.
fn bridge_port_up_here(bridge: &str, port: &str) -> io::Result<()> {
    // SAFETY: socket has no memory preconditions; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let ctl = |req: libc::c_ulong, r: &mut libc::ifreq, what: &str| -> io::Result<()> {
        // SAFETY: `r` is a valid ifreq for these interface requests, living across the call.
        if unsafe { libc::ioctl(sock.as_raw_fd(), req as _, r as *mut libc::ifreq) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
        }
        Ok(())
    };
    let mut r = ifreq(port)?;
    ctl(libc::SIOCGIFINDEX, &mut r, "find the port")?;
    // SAFETY: SIOCGIFINDEX filled in the index member of the union.
    let index = unsafe { r.ifr_ifru.ifru_ifindex };
    let mut b = ifreq(bridge)?;
    b.ifr_ifru.ifru_ifindex = index;
    ctl(SIOCBRADDIF, &mut b, "add the port to the bridge")?;
    let mut f = ifreq(port)?;
    ctl(libc::SIOCGIFFLAGS, &mut f, "read the port's flags")?;
    // SAFETY: SIOCGIFFLAGS filled in the flags member of the union.
    unsafe { f.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    ctl(libc::SIOCSIFFLAGS, &mut f, "set the port up")
}

/// The bridge ioctl `ip link set … master` stands for (linux/sockios.h).
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

/// Runs `f` on a short-lived thread that has joined the named network namespace.
fn in_netns<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, KernelError> {
    let path = Path::new(NETNS_DIR).join(name);
    let file = fs::File::open(&path)
        .map_err(|e| KernelError::io(format!("open {}", path.display()), e))?;
    let op = format!("in network namespace {name}");
    std::thread::spawn(move || {
        // SAFETY: setns on a thread only changes that thread's network namespace; `file` is an
        // open namespace file descriptor that outlives the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        f()
    })
    .join()
    .map_err(|_| KernelError::io(op.clone(), io::Error::other("thread panicked")))?
    .map_err(|e| KernelError::io(op, e))
}

fn run_with_stdin(mut cmd: Command, what: String, stdin: &str) -> Result<Output, KernelError> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| KernelError::io(format!("spawn {what}"), e))?;
    if let Some(mut si) = child.stdin.take() {
        si.write_all(stdin.as_bytes())
            .map_err(|e| KernelError::io(format!("write to {what}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| KernelError::io(format!("wait for {what}"), e))?;
    if !out.status.success() {
        return Err(KernelError::Command {
            cmd: what,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Runs a command inside a network namespace: a helper thread joins the namespace and spawns
/// it, and the child inherits the thread's namespace. Unlike a `pre_exec` hook this keeps
/// `Command`'s fast `posix_spawn` path (no fork of the whole daemon).
fn run_in_netns(
    netns: Option<&str>,
    cmd: Command,
    what: String,
    stdin: &str,
) -> Result<Output, KernelError> {
    match netns {
        None => run_with_stdin(cmd, what, stdin),
        Some(ns) => {
            let stdin = stdin.to_string();
            in_netns(ns, move || Ok(run_with_stdin(cmd, what, &stdin)))?
        }
    }
}

/// Interface names from `ip -o link show`: `2: x0@if3: <...>` gives `x0`.
fn parse_link_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// The kernel as it is. Requires root (CAP_SYS_ADMIN, CAP_NET_ADMIN).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealKernel;

impl Kernel for RealKernel {
    fn netns_create(&self, name: &str) -> Result<(), KernelError> {
        fs::create_dir_all(NETNS_DIR)
            .map_err(|e| KernelError::io(format!("create {NETNS_DIR}"), e))?;
        let path = Path::new(NETNS_DIR).join(name);
        fs::File::create_new(&path)
            .map_err(|e| KernelError::io(format!("create {}", path.display()), e))?;
        let target = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in path");
        let res = std::thread::spawn(move || {
            // SAFETY: unshare(CLONE_NEWNET) on this short-lived thread moves only the thread into
            // a fresh network namespace.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: both arguments are valid NUL-terminated strings for the duration of the
            // call; the bind mount pins the new namespace after the thread exits.
            let rc = unsafe {
                libc::mount(
                    c"/proc/thread-self/ns/net".as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("thread panicked")));
        if let Err(e) = res {
            let _ = fs::remove_file(&path);
            return Err(KernelError::io(
                format!("create network namespace {name}"),
                e,
            ));
        }
        Ok(())
    }

    fn netns_delete(&self, name: &str) -> Result<(), KernelError> {
        let path = Path::new(NETNS_DIR).join(name);
        if !path.exists() {
            return Ok(());
        }
        let _ = self.umount(&path);
        fs::remove_file(&path).map_err(|e| KernelError::io(format!("remove {}", path.display()), e))
    }

    fn netns_list(&self) -> Result<Vec<String>, KernelError> {
        Ok(self.list_dir(Path::new(NETNS_DIR)))
    }

    fn ip_batch(&self, netns: Option<&str>, script: &str) -> Result<(), KernelError> {
        let mut cmd = Command::new("ip");
        if let Some(ns) = netns {
            cmd.args(["-n", ns]);
        }
        cmd.args(["-batch", "-"]);
        let what = format!(
            "ip{} -batch: {}",
            netns.map(|n| format!(" -n {n}")).unwrap_or_default(),
            script.trim().replace('\n', "; ")
        );
        run_with_stdin(cmd, what, script).map(|_| ())
    }

    fn nft_apply(&self, netns: Option<&str>, script: &str) -> Result<(), KernelError> {
        let mut cmd = Command::new("nft");
        cmd.args(["-f", "-"]);
        let what = format!("nft -f - (in {})", netns.unwrap_or("host"));
        run_in_netns(netns, cmd, what, script).map(|_| ())
    }

    fn nft_tables(&self, netns: Option<&str>) -> Result<Vec<String>, KernelError> {
        let mut cmd = Command::new("nft");
        cmd.args(["list", "tables"]);
        let out = run_in_netns(netns, cmd, "nft list tables".into(), "")?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("table "))
            .map(str::to_string)
            .collect())
    }

    fn sysctl(&self, netns: &str, key: &str, value: &str) -> Result<(), KernelError> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        let value = value.to_string();
        in_netns(netns, move || fs::write(path, value))
    }

    fn host_routes(&self) -> Result<Vec<Ipv4Net>, KernelError> {
        let out = run_with_stdin(
            {
                let mut c = Command::new("ip");
                c.args(["-j", "-4", "route", "show", "table", "all"]);
                c
            },
            "ip -j -4 route show table all".into(),
            "",
        )?;
        let routes: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).map_err(|e| {
            KernelError::io(
                "parse `ip -j route` output",
                io::Error::new(io::ErrorKind::InvalidData, e),
            )
        })?;
        Ok(routes
            .iter()
            .filter_map(|r| r.get("dst")?.as_str())
            .filter_map(parse_route_dst)
            .collect())
    }

    fn host_links(&self) -> Result<Vec<String>, KernelError> {
        Ok(self.list_dir(Path::new("/sys/class/net")))
    }

    fn netns_links(&self, netns: &str) -> Result<Vec<String>, KernelError> {
        let mut cmd = Command::new("ip");
        cmd.args(["-o", "link", "show"]);
        let out = run_in_netns(Some(netns), cmd, format!("ip -n {netns} -o link show"), "")?;
        Ok(parse_link_names(&String::from_utf8_lossy(&out.stdout)))
    }

    fn link_delete(&self, name: &str) -> Result<(), KernelError> {
        self.ip_batch(None, &format!("link del {name}\n"))
    }

    fn bridge_port_up(&self, netns: &str, bridge: &str, port: &str) -> Result<(), KernelError> {
        let (bridge, port) = (bridge.to_string(), port.to_string());
        in_netns(netns, move || bridge_port_up_here(&bridge, &port))
    }

    fn cgroup_create(&self, dir: &Path) -> Result<(), KernelError> {
        match fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(KernelError::io(
                format!("create cgroup {}", dir.display()),
                e,
            )),
        }
    }

    fn cgroup_write(&self, dir: &Path, file: &str, value: &str) -> Result<(), KernelError> {
        let path = dir.join(file);
        fs::write(&path, value)
            .map_err(|e| KernelError::io(format!("write {value:?} to {}", path.display()), e))
    }

    fn cgroup_read(&self, dir: &Path, file: &str) -> Result<String, KernelError> {
        let path = dir.join(file);
        fs::read_to_string(&path)
            .map_err(|e| KernelError::io(format!("read {}", path.display()), e))
    }

    fn cgroup_remove(&self, dir: &Path) -> Result<(), KernelError> {
        // Processes that were just killed take a moment to leave the cgroup.
        let mut last = None;
        for _ in 0..50 {
            match fs::remove_dir(dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(KernelError::io(
            format!("remove cgroup {}", dir.display()),
            last.expect("looped"),
        ))
    }

    fn path_exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn list_dir(&self, dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn mounts(&self) -> Result<Vec<PathBuf>, KernelError> {
        let text = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| KernelError::io("read /proc/self/mountinfo", e))?;
        Ok(text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(|m| PathBuf::from(m.replace("\\040", " ")))
            .collect())
    }

    fn umount(&self, target: &Path) -> Result<(), KernelError> {
        let c = CString::new(target.as_os_str().as_encoded_bytes()).expect("no NUL in path");
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            return Err(KernelError::io(
                format!("umount {}", target.display()),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    fn spawn_instance(
        &self,
        plan: &BootPlan,
        ready: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<u32, KernelError> {
        crate::boot::spawn_real(plan, ready)
    }

    fn signal(&self, pid: u32, signal: i32) -> Result<(), KernelError> {
        // SAFETY: kill has no memory-safety preconditions; the pid is one we started.
        if unsafe { libc::kill(pid as libc::pid_t, signal) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(KernelError::io(format!("kill -{signal} {pid}"), e));
        }
        Ok(())
    }

    fn wait_exit(&self, pid: u32) -> Result<WaitOutcome, KernelError> {
        // SAFETY: pidfd_open takes two integers and returns a new descriptor or -1.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as i32;
        if pidfd >= 0 {
            let mut pfd = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            loop {
                // SAFETY: `pfd` is a valid pollfd array of length 1 for the call.
                let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
                if rc >= 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            // SAFETY: closing the descriptor pidfd_open gave us.
            unsafe { libc::close(pidfd) };
        }
        let mut status = 0;
        loop {
            // SAFETY: `status` is a valid out-pointer; WNOHANG never blocks.
            let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
            if rc == pid as libc::pid_t {
                return Ok(WaitOutcome::Status(status));
            }
            if rc < 0 {
                return Ok(WaitOutcome::Gone);
            }
            // rc == 0: our child but the exit is not visible yet (pidfd missing); wait a bit.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn process_start_time(&self, pid: u32) -> Option<u64> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.first() == Some(&"Z") {
            return None;
        }
        fields.get(19)?.parse().ok()
    }

    fn exec_in(
        &self,
        pid: u32,
        cgroup_procs: &[PathBuf],
        argv: &[String],
        timeout: Duration,
        seccomp: SeccompProfile,
    ) -> Result<Output, KernelError> {
        let (cmd, _open) = enter(pid, cgroup_procs, argv, seccomp, false, None)?;
        output_within(self, cmd, &argv[0], timeout)
    }

    fn exec_in_as(
        &self,
        pid: u32,
        cgroup_procs: &[PathBuf],
        argv: &[String],
        user: &ExecUser,
        timeout: Duration,
        seccomp: SeccompProfile,
    ) -> Result<Output, KernelError> {
        let ids = Some((user.uid, user.gid));
        let (mut cmd, _open) = enter(pid, cgroup_procs, argv, seccomp, false, ids)?;
        cmd.env_clear().envs(user.env.iter().map(|(k, v)| (k, v)));
        output_within(self, cmd, &argv[0], timeout)
    }

    fn exec_in_as_streaming(
        &self,
        pid: u32,
        cgroup_procs: &[PathBuf],
        argv: &[String],
        user: &ExecUser,
        timeout: Duration,
        seccomp: SeccompProfile,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<std::process::ExitStatus, KernelError> {
        let ids = Some((user.uid, user.gid));
        let (mut cmd, _open) = enter(pid, cgroup_procs, argv, seccomp, false, ids)?;
        cmd.env_clear().envs(user.env.iter().map(|(k, v)| (k, v)));
        crate::stream::stream_within(self, cmd, &argv[0], timeout, sink)
    }

    fn attach_in(
        &self,
        pid: u32,
        cgroup_procs: &[PathBuf],
        argv: &[String],
        env: &[(String, String)],
        seccomp: SeccompProfile,
    ) -> Result<i32, KernelError> {
        let (mut cmd, _open) = enter(pid, cgroup_procs, argv, seccomp, true, None)?;
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
        // SAFETY: signal(2) only changes this process's dispositions; they are put back below.
        // The forked child inherits "ignored", so the process that waits in the instance's pid
        // namespace (see `enter`) survives a Ctrl-C meant for the command.
        let (int, quit) = unsafe {
            (
                libc::signal(libc::SIGINT, libc::SIG_IGN),
                libc::signal(libc::SIGQUIT, libc::SIG_IGN),
            )
        };
        let status = cmd
            .spawn()
            .and_then(|mut c| c.wait())
            .map_err(|e| KernelError::io(format!("run {} in instance", argv[0]), e));
        // SAFETY: as above, restoring what was there before.
        unsafe {
            libc::signal(libc::SIGINT, int);
            libc::signal(libc::SIGQUIT, quit);
        }
        let status = status?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(255))
    }

    fn run_in_tree(&self, spec: &TreeRun) -> Result<TreeExit, KernelError> {
        crate::sandbox::run_real(spec)
    }

    fn userns_support(&self, dir: &Path) -> Result<(), String> {
        crate::userns::probe(dir)
    }

    fn chown_tree(&self, path: &Path, range: crate::userns::IdRange) -> Result<(), KernelError> {
        crate::userns::chown_tree(path, range)
            .map_err(|e| KernelError::io(format!("chown {} to {range}", path.display()), e))
    }

    fn tcp_listen_in(&self, netns: &str, addr: &str) -> Result<TcpListener, KernelError> {
        let addr = addr.to_string();
        in_netns(netns, move || TcpListener::bind(addr))
    }

    fn udp_bind_in(&self, netns: &str, addr: &str) -> Result<UdpSocket, KernelError> {
        let addr = addr.to_string();
        in_netns(netns, move || UdpSocket::bind(addr))
    }

    fn tcp_connect_in(
        &self,
        netns: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, KernelError> {
        let sa = socket_addr(addr)?;
        in_netns(netns, move || TcpStream::connect_timeout(&sa, timeout))
    }
    fn tcp_connect_in_from(
        &self,
        netns: &str,
        source: std::net::Ipv4Addr,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, KernelError> {
        let sa = socket_addr(addr)?;
        in_netns(netns, move || {
            use socket2::{Domain, Protocol, SockAddr, Socket, Type};
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            s.bind(&SockAddr::from(std::net::SocketAddr::from((source, 0))))?;
            s.connect_timeout(&SockAddr::from(sa), timeout)?;
            Ok(TcpStream::from(s))
        })
    }
}

/// A command that joins the instance of init `pid` before it execs `argv`: its cgroups, its
/// namespaces (forking once more into the pid namespace, the waiting parent passing the exit
/// on) and its confinement (capability bounding set and `seccomp` filter). With `interactive`
/// the command gets SIGINT and SIGQUIT back to their defaults (its caller ignores them). The
/// returned files must stay open until the command is spawned.
fn enter(
    pid: u32,
    cgroup_procs: &[PathBuf],
    argv: &[String],
    seccomp: SeccompProfile,
    interactive: bool,
    ids: Option<(u32, u32)>,
) -> Result<(Command, Vec<fs::File>), KernelError> {
    let Some(program) = argv.first() else {
        return Err(KernelError::io(
            "exec",
            io::Error::new(io::ErrorKind::InvalidInput, "empty argv"),
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(&argv[1..]);
    let files: Vec<fs::File> = cgroup_procs
        .iter()
        .map(|p| {
            fs::OpenOptions::new()
                .write(true)
                .open(p)
                .map_err(|e| KernelError::io(format!("open {}", p.display()), e))
        })
        .collect::<Result<_, _>>()?;
    let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    // The instance's namespaces, in the order nsenter joins them (mount last).
    let namespaces = [
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
        ("mnt", libc::CLONE_NEWNS),
    ];
    let ns_files: Vec<(fs::File, i32)> = namespaces
        .iter()
        .map(|(name, kind)| {
            let path = format!("/proc/{pid}/ns/{name}");
            fs::File::open(&path)
                .map(|f| (f, *kind))
                .map_err(|e| KernelError::io(format!("open {path}"), e))
        })
        .collect::<Result<_, _>>()?;
    let ns_fds: Vec<(i32, i32)> = ns_files.iter().map(|(f, k)| (f.as_raw_fd(), *k)).collect();
    // The instance's own user namespace, if it has one, is joined last (joining the
    // others needs the host's capabilities), and the command becomes its root.
    let user_ns = own_user_namespace(pid)?;
    let user_fd = user_ns.as_ref().map_or(-1, |f| f.as_raw_fd());
    let confine = crate::boot::Confinement::new(seccomp);
    // SAFETY: between fork and exec the closure makes raw system calls only (write, setns,
    // setresuid/setresgid, clone, waitpid, close_range, prctl, seccomp, signal) on descriptors
    // and data prepared above; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &fds {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (fd, kind) in &ns_fds {
                if libc::setns(*fd, *kind) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if user_fd >= 0
                && (libc::setns(user_fd, libc::CLONE_NEWUSER) != 0
                    || crate::boot::become_ids(0, 0) != 0)
            {
                return Err(io::Error::last_os_error());
            }
            // Joining a pid namespace takes effect for children: fork once more. This
            // process only waits and passes the command's exit on; the command itself is
            // the child, inside the instance's pid namespace.
            crate::boot::fork_into_pid_namespace()?;
            if interactive {
                // Back to the defaults (ignored ones would survive exec): Ctrl-C is the
                // command's.
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            }
            confine.apply()?;
            // After the bounding set is cut (which needs root's capabilities): a non-zero
            // uid leaves the command with no capabilities at all.
            if let Some((uid, gid)) = ids {
                if crate::boot::become_ids(uid, gid) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // Changing credentials clears the parent-death signal set by
                // `fork_into_pid_namespace`: set it again, so killing the waiter on a timeout
                // still ends the command.
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let open = files
        .into_iter()
        .chain(ns_files.into_iter().map(|(f, _)| f))
        .chain(user_ns)
        .collect();
    Ok((cmd, open))
}

/// `/proc/PID/ns/user` opened, when it is not this process's own user namespace.
fn own_user_namespace(pid: u32) -> Result<Option<fs::File>, KernelError> {
    use std::os::unix::fs::MetadataExt;
    let path = format!("/proc/{pid}/ns/user");
    let theirs = fs::File::open(&path).map_err(|e| KernelError::io(format!("open {path}"), e))?;
    let ours = fs::metadata("/proc/self/ns/user")
        .map_err(|e| KernelError::io("stat /proc/self/ns/user", e))?;
    let meta = theirs
        .metadata()
        .map_err(|e| KernelError::io(format!("stat {path}"), e))?;
    Ok((meta.ino() != ours.ino() || meta.dev() != ours.dev()).then_some(theirs))
}

/// Parses a `dst` of `ip -j route`: `default`, `a.b.c.d` or `a.b.c.d/n`.
pub(crate) fn parse_route_dst(dst: &str) -> Option<Ipv4Net> {
    if dst == "default" {
        return None;
    }
    let (a, p) = dst.split_once('/').unwrap_or((dst, "32"));
    let prefix: u8 = p.parse().ok()?;
    if prefix == 0 {
        return None;
    }
    Some(Ipv4Net::truncating(a.parse().ok()?, prefix))
}

#[derive(Debug, Default)]
struct FakeState {
    calls: Vec<String>,
    netns: BTreeSet<String>,
    cgroups: BTreeSet<PathBuf>,
    cgroup_files: std::collections::BTreeMap<PathBuf, String>,
    routes: Vec<Ipv4Net>,
    fail_on: Option<String>,
    next_pid: u32,
    killed: BTreeSet<u32>,
    /// Veth ends `ip_batch` added inside named namespaces, with each end's peer, so
    /// `netns_links` answers as the kernel would.
    links: BTreeSet<(String, String)>,
    veth_peers: std::collections::BTreeMap<(String, String), (String, String)>,
}

impl FakeState {
    /// Follows `link add X type veth peer name Y netns N` and `link del X` in `ns`.
    fn track_link(&mut self, ns: &str, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["link", "add", name, "type", "veth", "peer", "name", peer, "netns", peer_ns, ..] => {
                let a = (ns.to_string(), name.to_string());
                let b = (peer_ns.to_string(), peer.to_string());
                self.links.insert(a.clone());
                self.links.insert(b.clone());
                self.veth_peers.insert(a.clone(), b.clone());
                self.veth_peers.insert(b, a);
            }
            ["link", "del", name] => {
                let a = (ns.to_string(), name.to_string());
                self.links.remove(&a);
                if let Some(b) = self.veth_peers.remove(&a) {
                    self.links.remove(&b);
                    self.veth_peers.remove(&b);
                }
            }
            _ => {}
        }
    }
}

/// A kernel that records calls instead of making them.
#[derive(Debug, Default)]
pub struct FakeKernel {
    state: Mutex<FakeState>,
    signalled: std::sync::Condvar,
}

impl FakeKernel {
    pub fn new() -> Self {
        let k = Self::default();
        k.state.lock().unwrap().next_pid = 1000;
        k
    }

    /// Host routes that [`Kernel::host_routes`] reports.
    pub fn with_routes(self, routes: &[&str]) -> Self {
        self.state.lock().unwrap().routes = routes.iter().map(|r| r.parse().unwrap()).collect();
        self
    }

    /// Makes every later call whose record contains `needle` fail.
    pub fn fail_on(&self, needle: &str) {
        self.state.lock().unwrap().fail_on = Some(needle.to_string());
    }

    /// Presets the content a later `cgroup_read` returns.
    pub fn set_cgroup_file(&self, path: &Path, content: &str) {
        self.state
            .lock()
            .unwrap()
            .cgroup_files
            .insert(path.to_path_buf(), content.to_string());
    }

    /// The calls so far, one line each, and forgets them.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().unwrap().calls)
    }

    fn record(&self, call: String) -> Result<(), KernelError> {
        let mut st = self.state.lock().unwrap();
        if let Some(n) = &st.fail_on {
            if call.contains(n.as_str()) {
                return Err(KernelError::Injected(call));
            }
        }
        st.calls.push(call);
        Ok(())
    }
}

impl Kernel for FakeKernel {
    fn netns_create(&self, name: &str) -> Result<(), KernelError> {
        self.record(format!("netns add {name}"))?;
        self.state.lock().unwrap().netns.insert(name.to_string());
        Ok(())
    }
    fn netns_delete(&self, name: &str) -> Result<(), KernelError> {
        self.record(format!("netns del {name}"))?;
        self.state.lock().unwrap().netns.remove(name);
        Ok(())
    }
    fn netns_list(&self) -> Result<Vec<String>, KernelError> {
        Ok(self.state.lock().unwrap().netns.iter().cloned().collect())
    }
    fn ip_batch(&self, netns: Option<&str>, script: &str) -> Result<(), KernelError> {
        let ns = netns.map(|n| format!(" -n {n}")).unwrap_or_default();
        for line in script.lines().filter(|l| !l.trim().is_empty()) {
            self.record(format!("ip{ns} {line}"))?;
            if let Some(n) = netns {
                self.state.lock().unwrap().track_link(n, line);
            }
        }
        Ok(())
    }
    fn nft_apply(&self, netns: Option<&str>, script: &str) -> Result<(), KernelError> {
        self.record(format!(
            "nft (in {}):\n{}",
            netns.unwrap_or("host"),
            script.trim_end()
        ))
    }
    fn nft_tables(&self, _netns: Option<&str>) -> Result<Vec<String>, KernelError> {
        Ok(Vec::new())
    }
    fn sysctl(&self, netns: &str, key: &str, value: &str) -> Result<(), KernelError> {
        self.record(format!("sysctl (in {netns}) {key}={value}"))
    }
    fn host_routes(&self) -> Result<Vec<Ipv4Net>, KernelError> {
        Ok(self.state.lock().unwrap().routes.clone())
    }
    fn host_links(&self) -> Result<Vec<String>, KernelError> {
        Ok(vec!["lo".into(), "eth0".into()])
    }
    fn netns_links(&self, netns: &str) -> Result<Vec<String>, KernelError> {
        let st = self.state.lock().unwrap();
        Ok(st
            .links
            .iter()
            .filter(|(ns, _)| ns == netns)
            .map(|(_, name)| name.clone())
            .collect())
    }
    fn bridge_port_up(&self, netns: &str, bridge: &str, port: &str) -> Result<(), KernelError> {
        self.record(format!("ip -n {netns} link set {port} master {bridge} up"))
    }
    fn link_delete(&self, name: &str) -> Result<(), KernelError> {
        self.record(format!("ip link del {name}"))
    }
    fn cgroup_create(&self, dir: &Path) -> Result<(), KernelError> {
        self.record(format!("mkdir {}", dir.display()))?;
        self.state.lock().unwrap().cgroups.insert(dir.to_path_buf());
        Ok(())
    }
    fn cgroup_write(&self, dir: &Path, file: &str, value: &str) -> Result<(), KernelError> {
        self.record(format!("write {}/{file} = {value}", dir.display()))
    }
    fn cgroup_read(&self, dir: &Path, file: &str) -> Result<String, KernelError> {
        let p = dir.join(file);
        Ok(self
            .state
            .lock()
            .unwrap()
            .cgroup_files
            .get(&p)
            .cloned()
            .unwrap_or_default())
    }
    fn cgroup_remove(&self, dir: &Path) -> Result<(), KernelError> {
        self.record(format!("rmdir {}", dir.display()))?;
        self.state.lock().unwrap().cgroups.remove(dir);
        Ok(())
    }
    fn path_exists(&self, path: &Path) -> bool {
        let st = self.state.lock().unwrap();
        st.cgroups.contains(path) || path.exists()
    }
    fn list_dir(&self, dir: &Path) -> Vec<String> {
        let st = self.state.lock().unwrap();
        st.cgroups
            .iter()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    }
    fn mounts(&self) -> Result<Vec<PathBuf>, KernelError> {
        Ok(Vec::new())
    }
    fn umount(&self, target: &Path) -> Result<(), KernelError> {
        self.record(format!("umount {}", target.display()))
    }
    fn spawn_instance(
        &self,
        plan: &BootPlan,
        ready: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<u32, KernelError> {
        self.record(format!("spawn instance:\n{}", plan.describe()))?;
        ready()?;
        let mut st = self.state.lock().unwrap();
        st.next_pid += 1;
        Ok(st.next_pid)
    }
    fn signal(&self, pid: u32, signal: i32) -> Result<(), KernelError> {
        self.record(format!("kill -{signal} {pid}"))?;
        self.state.lock().unwrap().killed.insert(pid);
        self.signalled.notify_all();
        Ok(())
    }
    fn wait_exit(&self, pid: u32) -> Result<WaitOutcome, KernelError> {
        // A fake instance runs until it is sent a signal, then "dies" of SIGTERM.
        let mut st = self.state.lock().unwrap();
        while !st.killed.contains(&pid) {
            st = self.signalled.wait(st).unwrap();
        }
        Ok(WaitOutcome::Status(libc::SIGTERM))
    }
    fn process_start_time(&self, _pid: u32) -> Option<u64> {
        None
    }
    /// Says yes, so the planners are tested with user namespaces (the probe is not a call
    /// worth recording: it changes nothing).
    fn userns_support(&self, _dir: &Path) -> Result<(), String> {
        Ok(())
    }
    fn chown_tree(&self, path: &Path, range: crate::userns::IdRange) -> Result<(), KernelError> {
        self.record(format!("chown -R {} {}", range.base, path.display()))
    }
    fn exec_in(
        &self,
        pid: u32,
        _c: &[PathBuf],
        argv: &[String],
        _t: Duration,
        seccomp: SeccompProfile,
    ) -> Result<Output, KernelError> {
        self.record(format!(
            "exec in {pid} (seccomp {}): {argv:?}",
            seccomp.name()
        ))?;
        Err(KernelError::Injected(
            "the fake kernel runs no processes".into(),
        ))
    }
    fn exec_in_as(
        &self,
        pid: u32,
        _c: &[PathBuf],
        argv: &[String],
        user: &ExecUser,
        _t: Duration,
        seccomp: SeccompProfile,
    ) -> Result<Output, KernelError> {
        self.record(format!(
            "exec in {pid} as {}:{} (seccomp {}): {argv:?}",
            user.uid,
            user.gid,
            seccomp.name()
        ))?;
        Err(KernelError::Injected(
            "the fake kernel runs no processes".into(),
        ))
    }
    fn attach_in(
        &self,
        pid: u32,
        _c: &[PathBuf],
        argv: &[String],
        _env: &[(String, String)],
        _seccomp: SeccompProfile,
    ) -> Result<i32, KernelError> {
        self.record(format!("attach in {pid}: {argv:?}"))?;
        Err(KernelError::Injected(
            "the fake kernel runs no processes".into(),
        ))
    }
    fn run_in_tree(&self, spec: &TreeRun) -> Result<TreeExit, KernelError> {
        self.record(format!("run in tree: {}", spec.command_line().join(" ")))?;
        Ok(TreeExit { code: 0 })
    }
    fn tcp_listen_in(&self, netns: &str, addr: &str) -> Result<TcpListener, KernelError> {
        self.record(format!("listen (in {netns}) {addr}"))?;
        TcpListener::bind("127.0.0.1:0").map_err(|e| KernelError::io("bind", e))
    }
    fn udp_bind_in(&self, netns: &str, addr: &str) -> Result<UdpSocket, KernelError> {
        self.record(format!("udp bind (in {netns}) {addr}"))?;
        UdpSocket::bind("127.0.0.1:0").map_err(|e| KernelError::io("bind", e))
    }
    fn tcp_connect_in(
        &self,
        netns: &str,
        addr: &str,
        _t: Duration,
    ) -> Result<TcpStream, KernelError> {
        self.record(format!("connect (in {netns}) {addr}"))?;
        Err(KernelError::Injected(
            "the fake kernel has no network".into(),
        ))
    }
    fn tcp_connect_in_from(
        &self,
        netns: &str,
        source: std::net::Ipv4Addr,
        addr: &str,
        _t: Duration,
    ) -> Result<TcpStream, KernelError> {
        self.record(format!("connect (in {netns}) from {source} {addr}"))?;
        Err(KernelError::Injected(
            "the fake kernel has no network".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_from_ip_o_link_show() {
        let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n\
                    2: br0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n\
                    7: x0@if6: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 link-netns spindle-vpc-b\n";
        assert_eq!(parse_link_names(text), ["lo", "br0", "x0"]);
        assert!(parse_link_names("").is_empty());
    }

    #[test]
    fn route_dst_parsing_skips_default() {
        assert_eq!(parse_route_dst("default"), None);
        assert_eq!(
            parse_route_dst("192.0.2.0/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            parse_route_dst("192.0.2.2").unwrap().to_string(),
            "192.0.2.2/32"
        );
        assert_eq!(parse_route_dst("0.0.0.0/0"), None);
    }

    #[test]
    fn fake_records_and_injects_failures() {
        let k = FakeKernel::new();
        k.ip_batch(
            Some("ns1"),
            "link set lo up\naddr add 10.0.0.1/24 dev br0\n",
        )
        .unwrap();
        k.fail_on("br0");
        assert!(k.ip_batch(None, "link add br0 type bridge").is_err());
        assert_eq!(
            k.take_calls(),
            [
                "ip -n ns1 link set lo up",
                "ip -n ns1 addr add 10.0.0.1/24 dev br0"
            ]
        );
    }
}
