//! Finding and removing leaks: anything named with an engine's prefix that its state doesn't
//! account for (after a crash, a killed test, or a bug).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::cgroup::CgroupLayout;
use crate::kernel::{Kernel, NETNS_DIR};

/// What the engine's state says should exist.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Network namespace names (under `/run/netns`).
    pub netns: BTreeSet<String>,
    /// Instance ids whose cgroups should exist.
    pub cgroups: BTreeSet<String>,
    /// An open engine keeps its `<prefix>` cgroup parent directories for its next instance,
    /// so they are never a leak; without an engine (a sweep after a test) an empty parent is.
    pub engine_open: bool,
    /// Peering links (`x<index>`) expected inside VPC router namespaces, by namespace; every
    /// namespace listed (an empty set too) is searched for peering links no record names.
    pub peering_links: BTreeMap<String, BTreeSet<String>>,
}

/// Kinds of leaked resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeakKind {
    Netns,
    Mount,
    Cgroup,
    Link,
    NftTable,
}

/// One leaked resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leak {
    pub kind: LeakKind,
    pub name: String,
}

/// The result of [`doctor`].
#[derive(Debug, Clone, Default)]
pub struct DoctorReport {
    pub leaks: Vec<Leak>,
    /// Leaks that `fix` tried and failed to remove, with the reason.
    pub unfixed: Vec<(Leak, String)>,
}

impl DoctorReport {
    pub fn is_clean(&self) -> bool {
        self.leaks.is_empty()
    }
}

/// Reports everything named with `prefix` that `known` does not list; with `fix`, removes it
/// (processes left in leaked cgroups are killed first — they can only be ours).
///
/// Network namespaces are named `<prefix>-…`; so are their bind mounts under `/run/netns`.
/// Bridges, veths and nftables tables of VPCs and instances live inside those namespaces and
/// go with them; the host namespace should hold no link or table starting with `prefix`.
pub fn doctor(
    kernel: &dyn Kernel,
    cgroups: &CgroupLayout,
    prefix: &str,
    known: &Known,
    fix: bool,
) -> DoctorReport {
    let mut report = DoctorReport::default();
    let dash = format!("{prefix}-");
    let mut found = |leak: Leak, fixer: &dyn Fn() -> Result<(), String>| {
        if fix {
            if let Err(e) = fixer() {
                report.unfixed.push((leak.clone(), e));
            }
        }
        report.leaks.push(leak);
    };
    for ns in kernel.netns_list().unwrap_or_default() {
        if ns.starts_with(&dash) && !known.netns.contains(&ns) {
            found(
                Leak {
                    kind: LeakKind::Netns,
                    name: ns.clone(),
                },
                &|| kernel.netns_delete(&ns).map_err(|e| e.to_string()),
            );
        }
    }
    let netns_dir = Path::new(NETNS_DIR);
    for m in kernel.mounts().unwrap_or_default() {
        let Some(name) = m.strip_prefix(netns_dir).ok().and_then(|n| n.to_str()) else {
            continue;
        };
        // A mount whose file is gone (or that shadows one we list) is a leak of its own.
        if name.starts_with(&dash)
            && !known.netns.contains(name)
            && !kernel
                .netns_list()
                .unwrap_or_default()
                .iter()
                .any(|n| n == name)
        {
            found(
                Leak {
                    kind: LeakKind::Mount,
                    name: m.display().to_string(),
                },
                &|| kernel.umount(&m).map_err(|e| e.to_string()),
            );
        }
    }
    for parent in cgroups.prefix_dirs(prefix) {
        if !kernel.path_exists(&parent) {
            continue;
        }
        let children = kernel.list_dir(&parent);
        let mut leaked_children = 0;
        for child in children.iter().filter(|c| c.starts_with("i-")) {
            if known.cgroups.contains(child) {
                continue;
            }
            leaked_children += 1;
            let dir = parent.join(child);
            found(
                Leak {
                    kind: LeakKind::Cgroup,
                    name: dir.display().to_string(),
                },
                &|| {
                    let procs = kernel.cgroup_read(&dir, "cgroup.procs").unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
                        let _ = kernel.signal(pid, libc::SIGKILL);
                    }
                    kernel.cgroup_remove(&dir).map_err(|e| e.to_string())
                },
            );
        }
        let live_children =
            children.iter().filter(|c| c.starts_with("i-")).count() - leaked_children;
        if !known.engine_open && known.cgroups.is_empty() && live_children == 0 {
            found(
                Leak {
                    kind: LeakKind::Cgroup,
                    name: parent.display().to_string(),
                },
                &|| kernel.cgroup_remove(&parent).map_err(|e| e.to_string()),
            );
        }
    }
    for link in kernel.host_links().unwrap_or_default() {
        if link.starts_with(prefix) {
            found(
                Leak {
                    kind: LeakKind::Link,
                    name: link.clone(),
                },
                &|| kernel.link_delete(&link).map_err(|e| e.to_string()),
            );
        }
    }
    // A peering link lives inside two router namespaces the engine knows, so only an open
    // engine can tell one that no peering (or peering intent) names.
    for (ns, expected) in &known.peering_links {
        for link in kernel.netns_links(ns).unwrap_or_default() {
            if is_peering_link(&link) && !expected.contains(&link) {
                found(
                    Leak {
                        kind: LeakKind::Link,
                        name: format!("{ns}/{link}"),
                    },
                    &|| {
                        kernel
                            .ip_batch(Some(ns), &format!("link del {link}\n"))
                            .map_err(|e| e.to_string())
                    },
                );
            }
        }
    }
    for table in kernel.nft_tables(None).unwrap_or_default() {
        if table
            .split(' ')
            .nth(1)
            .is_some_and(|n| n.starts_with(prefix))
        {
            let t = table.clone();
            found(
                Leak {
                    kind: LeakKind::NftTable,
                    name: table.clone(),
                },
                &|| {
                    kernel
                        .nft_apply(None, &format!("delete table {t}\n"))
                        .map_err(|e| e.to_string())
                },
            );
        }
    }
    report.leaks.sort();
    report
}

/// Peering links are named `x<index>` (see [`crate::net::peering_link`]).
fn is_peering_link(name: &str) -> bool {
    name.strip_prefix('x')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::FakeKernel;

    #[test]
    fn reports_unknown_prefixed_things_and_fixes_them() {
        let k = FakeKernel::new();
        k.netns_create("spx-vpc-1").unwrap();
        k.netns_create("spx-i-old").unwrap();
        k.netns_create("spxother-vpc-1").unwrap();
        k.netns_create("someone-else").unwrap();
        let layout = CgroupLayout::V2 { root: "/cg".into() };
        k.cgroup_create(Path::new("/cg/spx")).unwrap();
        k.cgroup_create(Path::new("/cg/spx/i-live")).unwrap();
        k.cgroup_create(Path::new("/cg/spx/i-old")).unwrap();
        k.set_cgroup_file(Path::new("/cg/spx/i-old/cgroup.procs"), "4242\n");
        let mut known = Known::default();
        known.netns.insert("spx-vpc-1".into());
        known.cgroups.insert("i-live".into());
        let r = doctor(&k, &layout, "spx", &known, false);
        let names: Vec<String> = r
            .leaks
            .iter()
            .map(|l| format!("{:?} {}", l.kind, l.name))
            .collect();
        assert_eq!(names, ["Netns spx-i-old", "Cgroup /cg/spx/i-old"]);
        k.take_calls();
        let r = doctor(&k, &layout, "spx", &known, true);
        assert!(r.unfixed.is_empty());
        assert_eq!(
            k.take_calls(),
            ["netns del spx-i-old", "kill -9 4242", "rmdir /cg/spx/i-old"]
        );
        assert!(doctor(&k, &layout, "spx", &known, false).is_clean());
    }

    #[test]
    fn an_open_engine_keeps_its_empty_cgroup_parent_a_sweep_removes_it() {
        let k = FakeKernel::new();
        let layout = CgroupLayout::V2 { root: "/cg".into() };
        k.cgroup_create(Path::new("/cg/spx")).unwrap();
        let open = Known {
            engine_open: true,
            ..Known::default()
        };
        assert!(doctor(&k, &layout, "spx", &open, false).is_clean());
        let r = doctor(&k, &layout, "spx", &Known::default(), true);
        assert_eq!(
            r.leaks,
            [Leak {
                kind: LeakKind::Cgroup,
                name: "/cg/spx".into()
            }]
        );
        assert!(k.take_calls().contains(&"rmdir /cg/spx".to_string()));
    }
}
