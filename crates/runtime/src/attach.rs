//! Attaching the caller's own terminal to a running instance (`spindle devbox shell`).
//!
//! The daemon knows where an instance is ([`crate::Runtime::attach_target`]: its init's pid and
//! cgroups); a root process on the same host then runs a command inside it on its own stdin,
//! stdout and stderr ([`attach`]). No pseudo-terminal is relayed: the command's terminal is
//! the user's, so its window size, Ctrl-C and job control are the terminal's own, and the
//! command's exit code is what `attach` returns. Like [`crate::Runtime::exec`], the command
//! is confined as the instance's own processes are (capabilities and seccomp filter).

use crate::kernel::{Kernel, KernelError};
use crate::seccomp::SeccompProfile;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a running instance is on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachTarget {
    /// The host pid of the instance's init.
    pub pid: u32,
    /// Its start time in clock ticks since boot, so a reused pid is not mistaken for it.
    pub pid_start: u64,
    /// The `cgroup.procs` files of the instance's cgroups (one on v2, one per controller on v1).
    pub cgroup_procs: Vec<PathBuf>,
    /// The filter the instance's processes run under; the command gets the same.
    pub seccomp: SeccompProfile,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("the instance's init (pid {pid}) is gone: it stopped or restarted since the daemon was asked")]
    Gone { pid: u32 },
    #[error("cannot run the command in the instance")]
    Kernel(#[from] KernelError),
}

/// Runs `argv` with exactly `env` inside the instance `target` names, attached to this
/// process's stdin, stdout and stderr, and returns its exit code (128 + signal if a signal
/// ended it).
pub fn attach(
    kernel: &dyn Kernel,
    target: &AttachTarget,
    argv: &[String],
    env: &[(String, String)],
) -> Result<i32, AttachError> {
    if kernel.process_start_time(target.pid) != Some(target.pid_start) {
        return Err(AttachError::Gone { pid: target.pid });
    }
    Ok(kernel.attach_in(target.pid, &target.cgroup_procs, argv, env, target.seccomp)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FakeKernel;

    #[test]
    fn a_gone_init_is_refused_before_anything_runs() {
        let k = FakeKernel::new();
        let t = AttachTarget {
            pid: 4242,
            pid_start: 7,
            cgroup_procs: vec![],
            seccomp: SeccompProfile::Default,
        };
        let e = attach(&k, &t, &["/bin/sh".into()], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the instance's init (pid 4242) is gone: it stopped or restarted since the daemon was asked"
        );
        assert!(k.take_calls().is_empty());
    }
}
