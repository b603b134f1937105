//! User namespaces: root in an instance is an unprivileged id range on the host.
//!
//! Every instance gets its own range of [`IDS_PER_INSTANCE`] host ids (like an `/etc/subuid`
//! entry), recorded on its [`crate::Instance`] and in the host-wide table every engine on the
//! host shares ([`crate::hostids`]), and handed out again only once the instance is gone. Id 0 inside is `base` outside, so a process that breaks out of every other wall is
//! still nobody on the host, and a file root creates inside is owned by `base` on the host.
//!
//! The ranges start at [`ID_BASE`], far above the ids `useradd` and `/etc/subuid` hand out
//! (Debian's subordinate ids start at 100000 and grow by 65536 per user).
//!
//! How an instance gets there (the steps are in [`crate::boot`]): the daemon makes the user
//! namespace first, with a short-lived holder process whose maps it writes ([`create`]); image
//! layers and bound host directories are mounted *idmapped* through it ([`idmapped_tree`]), so
//! the layers stay shared between instances and a file owned by root in a layer is owned by
//! root inside; init does every mount as the host's root, then joins the namespace, becomes its
//! root and drops capabilities. The mount, pid, uts, ipc and network namespaces stay owned by
//! the host's user namespace, so nothing inside can mount or change the network even with
//! every capability of its own namespace; ports below 1024 are opened to everyone in the
//! instance's network namespace (`ip_unprivileged_port_start`), as rootless Podman does.
//!
//! Where the images' filesystem can't do idmapped mounts (kernels before 5.12, some network
//! filesystems), instances run in the host's user namespace as before; [`probe`] tells which,
//! and `spindle instance describe` shows it.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The first host id handed to an instance.
pub const ID_BASE: u32 = 0x4000_0000;
/// Ids per instance: uid and gid 0..65535 inside, as a Debian system expects.
pub const IDS_PER_INSTANCE: u32 = 65_536;
/// Ranges that fit between [`ID_BASE`] and 2^31 (ids above that confuse some tools).
pub const SLOTS: u32 = 16_384;

/// A range of host ids an instance's ids 0.. map onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// The host id of root inside.
    pub base: u32,
    pub count: u32,
}

impl IdRange {
    /// The `n`th range of [`IDS_PER_INSTANCE`] ids from [`ID_BASE`].
    pub fn slot(n: u32) -> IdRange {
        IdRange {
            base: ID_BASE + n * IDS_PER_INSTANCE,
            count: IDS_PER_INSTANCE,
        }
    }

    /// The line written to `uid_map` and `gid_map`.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.base, self.count)
    }
}

impl fmt::Display for IdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0-{} -> host {}-{}",
            self.count - 1,
            self.base,
            self.end() - 1
        )
    }
}

impl IdRange {
    fn end(&self) -> u64 {
        self.base as u64 + self.count as u64
    }
}

// ---------------------------------------------------------------------------------------------
// The real operations (root only).

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes a user namespace with `range` as its uid and gid map and returns a descriptor of it.
/// A holder process is cloned into a new user namespace, the daemon writes its maps (as the
/// host's root, so `setgroups` stays allowed inside), opens its namespace and kills it; the
/// descriptor keeps the namespace alive.
///
/// The holder first closes every descriptor it inherited: launches run in parallel, and a
/// holder keeping another launch's pipe ends open would hold that launch up (two holders
/// waiting on pipes the other kept open hung a scale-out for good).
pub fn create(range: IdRange) -> io::Result<OwnedFd> {
    // SAFETY: a raw clone without CLONE_VM is a fork; the child only makes the raw
    // close_range and pause calls below (no allocation, no locks), so the daemon's other
    // threads don't matter.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: closing this process's own descriptors, then waiting for the SIGKILL.
        unsafe {
            libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
            loop {
                libc::pause();
            }
        }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    let result = (|| {
        let line = range.map_line();
        fs::write(format!("/proc/{pid}/uid_map"), &line)?;
        fs::write(format!("/proc/{pid}/gid_map"), &line)?;
        fs::File::open(format!("/proc/{pid}/ns/user")).map(OwnedFd::from)
    })();
    let mut status = 0;
    // SAFETY: killing and reaping the child cloned above (not yet reaped, so `pid` is still
    // ours); `status` is a valid out-pointer.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
        libc::waitpid(pid as libc::pid_t, &mut status, 0);
    }
    result
}

/// A detached copy of the tree at `path` (with its submounts when `recursive`) whose ids are
/// mapped through `userns`: a file owned by host id 0 appears owned by the namespace's root.
/// Attach it with `move_mount` (init does, in its own mount namespace).
pub fn idmapped_tree(path: &Path, userns: &impl AsRawFd, recursive: bool) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree reads a NUL-terminated path and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let at = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: mount_setattr reads `attr` (of the size passed) and an empty path string.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(tree)
}

/// Whether instances whose layers live under `dir` can have a user namespace here: makes a
/// throwaway namespace and an idmapped copy of `dir` (never attached). The error says why not.
pub fn probe(dir: &Path) -> Result<(), String> {
    let ns = create(IdRange {
        base: ID_BASE,
        count: IDS_PER_INSTANCE,
    })
    .map_err(|e| format!("cannot make a user namespace: {e}"))?;
    idmapped_tree(dir, &ns, false)
        .map(drop)
        .map_err(|e| format!("cannot make an idmapped mount of {}: {e}", dir.display()))
}

/// Gives what `provision` created in an instance's upper dir to the instance's root.
pub fn chown_tree(path: &Path, range: IdRange) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(range.base), Some(range.base))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), range)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(slot: u32) -> IdRange {
        IdRange::slot(slot)
    }

    #[test]
    fn the_last_range_stays_below_2_to_the_31() {
        assert!(r(SLOTS - 1).end() <= 1 << 31);
    }

    #[test]
    fn map_line_and_display() {
        assert_eq!(r(1).map_line(), "0 1073807360 65536\n");
        assert_eq!(r(0).to_string(), "0-65535 -> host 1073741824-1073807359");
    }
}
