//! Instance types and the cgroup limits they become, for cgroup v1 and v2.
//!
//! # Instance types
//!
//! Memory is the AWS figure divided by 8 so that a 2-core, 24 GiB host can run a few hundred
//! instances; CPU is a CFS quota in hundredths of a core (a hard ceiling, unlike AWS burst
//! credits). The pid limit stops fork bombs.
//!
//! | type        | CPU (cores) | memory   | pids |
//! |-------------|-------------|----------|------|
//! | `t3.nano`   | 0.25        | 64 MiB   | 128  |
//! | `t3.micro`  | 0.5         | 128 MiB  | 256  |
//! | `t3.small`  | 1           | 256 MiB  | 512  |
//! | `t3.medium` | 1           | 512 MiB  | 1024 |
//! | `t3.large`  | 2           | 1 GiB    | 2048 |
//! | `t3.xlarge` | 2           | 2 GiB    | 4096 |
//!
//! # Layouts
//!
//! *v1* (this machine's hybrid layout): one directory per controller,
//! `/sys/fs/cgroup/{cpu,memory,pids}/<prefix>/<instance>`; limits in `cpu.cfs_quota_us`,
//! `memory.limit_in_bytes`, `pids.max`; OOM kills counted in `memory.oom_control`.
//! *v2* (unified, detected by `cgroup.controllers` at the root): one directory
//! `/sys/fs/cgroup/<prefix>/<instance>` with `cpu.max`, `memory.max`, `memory.swap.max`,
//! `pids.max`; OOM kills counted in `memory.events`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::kernel::{Kernel, KernelError};

/// An instance type's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceType {
    pub name: &'static str,
    /// Hundredths of a core.
    pub cpu_centi: u32,
    pub memory_mib: u64,
    pub pids: u32,
}

/// The table in the module docs.
pub const INSTANCE_TYPES: &[InstanceType] = &[
    InstanceType {
        name: "t3.nano",
        cpu_centi: 25,
        memory_mib: 64,
        pids: 128,
    },
    InstanceType {
        name: "t3.micro",
        cpu_centi: 50,
        memory_mib: 128,
        pids: 256,
    },
    InstanceType {
        name: "t3.small",
        cpu_centi: 100,
        memory_mib: 256,
        pids: 512,
    },
    InstanceType {
        name: "t3.medium",
        cpu_centi: 100,
        memory_mib: 512,
        pids: 1024,
    },
    InstanceType {
        name: "t3.large",
        cpu_centi: 200,
        memory_mib: 1024,
        pids: 2048,
    },
    InstanceType {
        name: "t3.xlarge",
        cpu_centi: 200,
        memory_mib: 2048,
        pids: 4096,
    },
];

/// Errors about cgroups and instance types.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("unknown instance type `{given}`; known types: {known}")]
    UnknownType { given: String, known: String },
    #[error("cgroup setup failed")]
    Kernel(#[from] KernelError),
}

pub fn instance_type(name: &str) -> Result<InstanceType, CgroupError> {
    INSTANCE_TYPES
        .iter()
        .find(|t| t.name == name)
        .copied()
        .ok_or_else(|| CgroupError::UnknownType {
            given: name.into(),
            known: INSTANCE_TYPES
                .iter()
                .map(|t| t.name)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Concrete limits for one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub cpu_quota_us: u64,
    pub cpu_period_us: u64,
    pub memory_bytes: u64,
    pub pids: u32,
}

impl Limits {
    pub fn from_type(t: &InstanceType, memory_mib_override: Option<u64>) -> Self {
        let period = 100_000;
        Limits {
            cpu_quota_us: period * u64::from(t.cpu_centi) / 100,
            cpu_period_us: period,
            memory_bytes: memory_mib_override.unwrap_or(t.memory_mib) * 1024 * 1024,
            pids: t.pids,
        }
    }
}

/// Which cgroup hierarchy the host has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    V1 { root: PathBuf },
    V2 { root: PathBuf },
}

/// One write of a cgroup file, or a directory to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupOp {
    Mkdir(PathBuf),
    Write {
        dir: PathBuf,
        file: &'static str,
        value: String,
    },
}

impl CgroupLayout {
    /// Detects the layout under `root` (normally `/sys/fs/cgroup`).
    pub fn detect(kernel: &dyn Kernel, root: &Path) -> Self {
        if kernel.path_exists(&root.join("cgroup.controllers")) {
            CgroupLayout::V2 {
                root: root.to_path_buf(),
            }
        } else {
            CgroupLayout::V1 {
                root: root.to_path_buf(),
            }
        }
    }

    /// The parent directories that hold all cgroups of `prefix`.
    pub fn prefix_dirs(&self, prefix: &str) -> Vec<PathBuf> {
        match self {
            CgroupLayout::V1 { root } => ["cpu", "memory", "pids"]
                .iter()
                .map(|c| root.join(c).join(prefix))
                .collect(),
            CgroupLayout::V2 { root } => vec![root.join(prefix)],
        }
    }

    /// The instance's directories, one per hierarchy.
    pub fn dirs(&self, prefix: &str, name: &str) -> Vec<PathBuf> {
        self.prefix_dirs(prefix)
            .into_iter()
            .map(|d| d.join(name))
            .collect()
    }

    /// The `cgroup.procs` files a process writes itself into to join the instance's cgroups.
    pub fn procs_files(&self, prefix: &str, name: &str) -> Vec<PathBuf> {
        self.dirs(prefix, name)
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// What to create and write for an instance. Pure.
    pub fn plan(&self, prefix: &str, name: &str, l: &Limits) -> Vec<CgroupOp> {
        let mut ops = Vec::new();
        match self {
            CgroupLayout::V1 { root } => {
                for d in self.prefix_dirs(prefix) {
                    ops.push(CgroupOp::Mkdir(d));
                }
                let cpu = root.join("cpu").join(prefix).join(name);
                let mem = root.join("memory").join(prefix).join(name);
                let pids = root.join("pids").join(prefix).join(name);
                ops.push(CgroupOp::Mkdir(cpu.clone()));
                ops.push(CgroupOp::Write {
                    dir: cpu.clone(),
                    file: "cpu.cfs_period_us",
                    value: l.cpu_period_us.to_string(),
                });
                ops.push(CgroupOp::Write {
                    dir: cpu,
                    file: "cpu.cfs_quota_us",
                    value: l.cpu_quota_us.to_string(),
                });
                ops.push(CgroupOp::Mkdir(mem.clone()));
                ops.push(CgroupOp::Write {
                    dir: mem.clone(),
                    file: "memory.limit_in_bytes",
                    value: l.memory_bytes.to_string(),
                });
                ops.push(CgroupOp::Write {
                    dir: mem,
                    file: "memory.swappiness",
                    value: "0".into(),
                });
                ops.push(CgroupOp::Mkdir(pids.clone()));
                ops.push(CgroupOp::Write {
                    dir: pids,
                    file: "pids.max",
                    value: l.pids.to_string(),
                });
            }
            CgroupLayout::V2 { root } => {
                let parent = root.join(prefix);
                let dir = parent.join(name);
                ops.push(CgroupOp::Write {
                    dir: root.clone(),
                    file: "cgroup.subtree_control",
                    value: "+cpu +memory +pids".into(),
                });
                ops.push(CgroupOp::Mkdir(parent.clone()));
                ops.push(CgroupOp::Write {
                    dir: parent,
                    file: "cgroup.subtree_control",
                    value: "+cpu +memory +pids".into(),
                });
                ops.push(CgroupOp::Mkdir(dir.clone()));
                ops.push(CgroupOp::Write {
                    dir: dir.clone(),
                    file: "cpu.max",
                    value: format!("{} {}", l.cpu_quota_us, l.cpu_period_us),
                });
                ops.push(CgroupOp::Write {
                    dir: dir.clone(),
                    file: "memory.max",
                    value: l.memory_bytes.to_string(),
                });
                ops.push(CgroupOp::Write {
                    dir: dir.clone(),
                    file: "memory.swap.max",
                    value: "0".into(),
                });
                ops.push(CgroupOp::Write {
                    dir,
                    file: "pids.max",
                    value: l.pids.to_string(),
                });
            }
        }
        ops
    }

    /// Creates the instance's cgroups with their limits; on failure removes what it made.
    pub fn create(
        &self,
        kernel: &dyn Kernel,
        prefix: &str,
        name: &str,
        l: &Limits,
    ) -> Result<(), CgroupError> {
        let res = (|| {
            for op in self.plan(prefix, name, l) {
                match op {
                    CgroupOp::Mkdir(d) => kernel.cgroup_create(&d)?,
                    // memory.swappiness is absent on some v1 kernels; it is an optimisation only.
                    CgroupOp::Write {
                        dir,
                        file: "memory.swappiness",
                        value,
                    } => {
                        let _ = kernel.cgroup_write(&dir, "memory.swappiness", &value);
                    }
                    CgroupOp::Write { dir, file, value } => {
                        kernel.cgroup_write(&dir, file, &value)?
                    }
                }
            }
            Ok(())
        })();
        if res.is_err() {
            self.remove(kernel, prefix, name);
        }
        res
    }

    /// Removes the instance's cgroups (best effort; they must be empty).
    pub fn remove(&self, kernel: &dyn Kernel, prefix: &str, name: &str) -> Vec<KernelError> {
        self.dirs(prefix, name)
            .iter()
            .filter(|d| kernel.path_exists(d))
            .filter_map(|d| kernel.cgroup_remove(d).err())
            .collect()
    }

    /// How many times the kernel's OOM killer fired in the instance's memory cgroup.
    pub fn oom_kills(&self, kernel: &dyn Kernel, prefix: &str, name: &str) -> u64 {
        let (dir, file) = match self {
            CgroupLayout::V1 { root } => (
                root.join("memory").join(prefix).join(name),
                "memory.oom_control",
            ),
            CgroupLayout::V2 { root } => (root.join(prefix).join(name), "memory.events"),
        };
        let text = kernel.cgroup_read(&dir, file).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .filter_map(|n| n.trim().parse().ok())
            .next()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::FakeKernel;

    #[test]
    fn unknown_type_lists_the_known_ones() {
        let err = instance_type("m5.huge").unwrap_err().to_string();
        assert!(
            err.contains("unknown instance type `m5.huge`") && err.contains("t3.nano, t3.micro"),
            "{err}"
        );
        let l = Limits::from_type(&instance_type("t3.micro").unwrap(), None);
        assert_eq!(
            (l.cpu_quota_us, l.cpu_period_us, l.memory_bytes),
            (50_000, 100_000, 128 << 20)
        );
    }

    #[test]
    fn v1_and_v2_plans_write_the_right_files() {
        let k = FakeKernel::new();
        let l = Limits::from_type(&instance_type("t3.nano").unwrap(), None);
        let v1 = CgroupLayout::V1 { root: "/cg".into() };
        v1.create(&k, "spx", "i-1", &l).unwrap();
        let calls = k.take_calls();
        assert!(
            calls.contains(&"write /cg/cpu/spx/i-1/cpu.cfs_quota_us = 25000".to_string()),
            "{calls:#?}"
        );
        assert!(calls
            .contains(&"write /cg/memory/spx/i-1/memory.limit_in_bytes = 67108864".to_string()));
        assert!(calls.contains(&"write /cg/pids/spx/i-1/pids.max = 128".to_string()));
        assert_eq!(
            v1.procs_files("spx", "i-1")[1],
            PathBuf::from("/cg/memory/spx/i-1/cgroup.procs")
        );

        let v2 = CgroupLayout::V2 { root: "/cg".into() };
        v2.create(&k, "spx", "i-1", &l).unwrap();
        let calls = k.take_calls();
        assert_eq!(
            calls[0],
            "write /cg/cgroup.subtree_control = +cpu +memory +pids"
        );
        assert!(calls.contains(&"write /cg/spx/i-1/cpu.max = 25000 100000".to_string()));
        assert!(calls.contains(&"write /cg/spx/i-1/memory.max = 67108864".to_string()));
    }

    #[test]
    fn failed_create_removes_what_it_made() {
        let k = FakeKernel::new();
        let v1 = CgroupLayout::V1 { root: "/cg".into() };
        k.fail_on("pids.max");
        let l = Limits::from_type(&instance_type("t3.nano").unwrap(), None);
        assert!(v1.create(&k, "spx", "i-1", &l).is_err());
        let calls = k.take_calls();
        assert!(
            calls.contains(&"rmdir /cg/cpu/spx/i-1".to_string()),
            "{calls:#?}"
        );
        assert!(calls.contains(&"rmdir /cg/memory/spx/i-1".to_string()));
    }

    #[test]
    fn oom_kills_read_from_v1_and_v2_files() {
        let k = FakeKernel::new();
        k.set_cgroup_file(
            Path::new("/cg/memory/spx/i-1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        k.set_cgroup_file(
            Path::new("/cg/spx/i-1/memory.events"),
            "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n",
        );
        assert_eq!(
            CgroupLayout::V1 { root: "/cg".into() }.oom_kills(&k, "spx", "i-1"),
            2
        );
        assert_eq!(
            CgroupLayout::V2 { root: "/cg".into() }.oom_kills(&k, "spx", "i-1"),
            1
        );
        assert_eq!(
            CgroupLayout::V2 { root: "/cg".into() }.oom_kills(&k, "spx", "i-2"),
            0
        );
    }
}
