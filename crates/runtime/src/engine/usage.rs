//! CPU usage and pausing of running instances, for auto scaling: the CPU time an
//! instance's cgroup used, and freezing (warm pools).
//!
//! cgroup v2 hosts use the instance's own cgroup (`cpu.stat`, `cgroup.freeze`). On v1
//! hosts the runtime creates no `cpuacct` or `freezer` cgroup, so usage is the sum of the
//! instance's processes' times in `/proc/PID/stat` (children already reaped included via
//! `cutime`/`cstime`) and pausing stops the processes with SIGSTOP (SIGCONT to resume).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Runtime, RuntimeError};
use crate::cgroup::CgroupLayout;

/// Clock ticks per second of `/proc/PID/stat` times (USER_HZ, 100 on Linux).
const USER_HZ: u64 = 100;

/// `utime + stime + cutime + cstime` in clock ticks, from the text of `/proc/PID/stat`.
pub(crate) fn proc_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime is field 14.
    let get = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
    let sum = get(14)? + get(15)? + get(16)?.max(0) + get(17)?.max(0);
    u64::try_from(sum).ok()
}

impl Runtime {
    fn cpu_dir(&self, id: &str) -> PathBuf {
        match &self.inner.cgroups {
            CgroupLayout::V1 { root } => root.join("cpu").join(&self.inner.cfg.prefix).join(id),
            CgroupLayout::V2 { root } => root.join(&self.inner.cfg.prefix).join(id),
        }
    }

    fn pids(&self, id: &str) -> Vec<u32> {
        let text = self
            .inner
            .kernel
            .cgroup_read(&self.cpu_dir(id), "cgroup.procs")
            .unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// CPU time the instance has used so far (its cgroup's processes), or `None` when it is
    /// not running.
    pub fn cpu_usage(&self, id: &str) -> Result<Option<Duration>, RuntimeError> {
        let rec = self.describe(id)?;
        if rec.pid.is_none() {
            return Ok(None);
        }
        let k = &self.inner.kernel;
        match &self.inner.cgroups {
            CgroupLayout::V2 { .. } => {
                let text = k.cgroup_read(&self.cpu_dir(id), "cpu.stat")?;
                Ok(text
                    .lines()
                    .filter_map(|l| l.strip_prefix("usage_usec "))
                    .filter_map(|n| n.trim().parse().ok())
                    .next()
                    .map(Duration::from_micros))
            }
            CgroupLayout::V1 { .. } => {
                let ticks: u64 = self
                    .pids(id)
                    .iter()
                    .filter_map(|p| {
                        let dir = Path::new("/proc").join(p.to_string());
                        k.cgroup_read(&dir, "stat")
                            .ok()
                            .as_deref()
                            .and_then(proc_ticks)
                    })
                    .sum();
                Ok(Some(Duration::from_millis(ticks * 1000 / USER_HZ)))
            }
        }
    }

    /// The CPU time per second the instance may use (its type's quota).
    pub fn cpu_allowance(&self, id: &str) -> Result<f64, RuntimeError> {
        let l = self.describe(id)?.limits;
        Ok(l.cpu_quota_us as f64 / l.cpu_period_us.max(1) as f64)
    }

    /// Pauses (`true`) or resumes (`false`) every process of a running instance.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<(), RuntimeError> {
        self.describe(id)?;
        let k = &self.inner.kernel;
        match &self.inner.cgroups {
            CgroupLayout::V2 { .. } => {
                k.cgroup_write(
                    &self.cpu_dir(id),
                    "cgroup.freeze",
                    if paused { "1" } else { "0" },
                )?;
            }
            CgroupLayout::V1 { .. } => {
                let sig = if paused { libc::SIGSTOP } else { libc::SIGCONT };
                for p in self.pids(id) {
                    k.signal(p, sig)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::proc_ticks;

    #[test]
    fn proc_stat_times_with_spaces_in_the_name() {
        let stat = "42 (sh -c (x)) R 1 42 42 0 -1 4194560 100 0 0 0 250 30 7 3 20 0 1 0 123 0 0";
        assert_eq!(proc_ticks(stat), Some(290));
        assert_eq!(proc_ticks("garbage"), None);
    }
}
