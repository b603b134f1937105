//! Whether this host can run real instances: root, and the tools the real kernel path shells
//! out to. Root tests (here and in the crates above) skip with this reason; it names the
//! Debian package to install.

use std::path::Path;

/// The static busybox the test images are built from (`apt-get install busybox-static`).
pub const BUSYBOX: &str = spindle_rootgate::BUSYBOX;

/// Why real instances can't run here, or `None` when they can: not root with
/// CAP_SYS_ADMIN and CAP_NET_ADMIN, or a missing tool (the same answer the build scripts use
/// to mark root-only tests ignored, see `spindle-rootgate`).
pub fn missing_prerequisites() -> Option<String> {
    spindle_rootgate::missing_prerequisites()
}

/// The network namespaces named `<prefix>-…` (`ip netns list`, filtered).
pub fn our_netns(prefix: &str) -> Vec<String> {
    use crate::kernel::Kernel;
    let dash = format!("{prefix}-");
    crate::RealKernel
        .netns_list()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(&dash))
        .collect()
}

/// Removes everything on this host named with `prefix` (a doctor `--fix` that knows of no
/// engine, so every namespace, mount, veth, table and cgroup of the prefix goes).
pub fn sweep(prefix: &str) -> crate::doctor::DoctorReport {
    let k = crate::RealKernel;
    let layout = crate::CgroupLayout::detect(&k, Path::new("/sys/fs/cgroup"));
    crate::doctor::doctor(&k, &layout, prefix, &crate::doctor::Known::default(), true)
}

/// A guard for root tests: sweeps its prefix when dropped, pass or fail, and prints what it
/// could not remove.
#[derive(Debug)]
pub struct Sweep(pub String);

impl Drop for Sweep {
    fn drop(&mut self) {
        let r = sweep(&self.0);
        if !r.unfixed.is_empty() {
            eprintln!("cleanup of {} left {:?}", self.0, r.unfixed);
        }
    }
}
