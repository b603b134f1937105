//! Intents: what a create under way may have made on the host, on record before the first
//! kernel object exists.
//!
//! A VPC create, an instance launch or a peering saves its intent in the engine's state, then creates
//! namespaces, links, nftables tables, cgroups and processes, then saves the finished record
//! without the intent (on failure it undoes what it made and drops the intent). A daemon
//! killed in between leaves the intent in the saved state, and [`crate::Runtime::open`]
//! undoes it, so nothing on the host outlives the records that name it. Until then `doctor`
//! counts what an intent names as known.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cgroup::CgroupLayout;
use crate::doctor::Known;
use crate::kernel::Kernel;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub(crate) enum Intent {
    /// A VPC's router namespace (its bridge and nftables table live inside it).
    Vpc { netns: String },
    /// An instance's namespace (its veth pair goes with it), cgroups, directory and process,
    /// and the address it took in its subnet.
    Instance {
        netns: String,
        subnet: String,
        ip: std::net::Ipv4Addr,
    },
    /// A peering link between the routers of VPCs `a` and `b`: the veth pair `link`, one end
    /// in each router namespace (deleting one end removes both, and its routes with it).
    Peering {
        a: String,
        b: String,
        a_netns: String,
        b_netns: String,
        link: String,
    },
}

impl Intent {
    /// Removes what the create of `id` may have made (best effort: any of it may be missing).
    pub(crate) fn undo(
        &self,
        kernel: &dyn Kernel,
        cgroups: &CgroupLayout,
        prefix: &str,
        id: &str,
        instance_dir: &Path,
    ) {
        match self {
            Intent::Vpc { netns } => {
                let _ = kernel.netns_delete(netns);
            }
            Intent::Instance { netns, .. } => {
                // Its processes (init, if it got that far) are only in its cgroups.
                for f in cgroups.procs_files(prefix, id) {
                    let Some(dir) = f.parent() else { continue };
                    let procs = kernel.cgroup_read(dir, "cgroup.procs").unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                        let _ = kernel.signal(pid, libc::SIGKILL);
                    }
                }
                let _ = kernel.netns_delete(netns);
                // A killed process leaves its cgroup a moment after the signal.
                for _ in 0..50 {
                    if cgroups.remove(kernel, prefix, id).is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let _ = std::fs::remove_dir_all(instance_dir);
            }
            Intent::Peering { a_netns, link, .. } => {
                let _ = kernel.ip_batch(Some(a_netns), &format!("link del {link}\n"));
            }
        }
    }

    /// Adds what the create of `id` may have made to what `doctor` counts as known.
    pub(crate) fn known(&self, id: &str, known: &mut Known) {
        match self {
            Intent::Vpc { netns } => {
                known.netns.insert(netns.clone());
            }
            Intent::Instance { netns, .. } => {
                known.netns.insert(netns.clone());
                known.cgroups.insert(id.to_owned());
            }
            Intent::Peering {
                a_netns,
                b_netns,
                link,
                ..
            } => {
                for ns in [a_netns, b_netns] {
                    known
                        .peering_links
                        .entry(ns.clone())
                        .or_default()
                        .insert(link.clone());
                }
            }
        }
    }
}
