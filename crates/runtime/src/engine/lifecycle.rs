//! A launched instance's life: stop, start, terminate, describe, console and exec, and the
//! engine-wide teardown and leak check.

use std::fs;
use std::io;
use std::process::Output;
use std::time::{Duration, Instant};

use super::{now_secs, Instance, InstanceState, Runtime, RuntimeError, TERMINATED_KEPT_SECS};

impl Runtime {
    /// Stops a running instance: SIGTERM to its entrypoint, SIGKILL to the whole instance after
    /// `grace`. Its disk (upper dir), address and network stay.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<Instance, RuntimeError> {
        let pid = {
            let mut st = self.lock();
            let rec = st
                .instances
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NoInstance(id.into()))?;
            match (rec.state, rec.pid) {
                (InstanceState::Stopped, _) => return Ok(rec.clone()),
                (InstanceState::Running | InstanceState::Stopping, Some(pid)) => {
                    rec.state = InstanceState::Stopping;
                    pid
                }
                (state, _) => {
                    return Err(RuntimeError::BadState {
                        id: id.into(),
                        state,
                        action: "stop",
                    })
                }
            }
        };
        self.inner.kernel.signal(pid, libc::SIGTERM)?;
        if !self.wait_stopped(id, grace) {
            self.inner.kernel.signal(pid, libc::SIGKILL)?;
            self.wait_stopped(id, Duration::from_secs(10));
        }
        self.describe(id)
    }

    fn wait_stopped(&self, id: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if st.instances.get(id).is_none_or(|i| i.pid.is_none()) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self.inner.changed.wait_timeout(st, left).unwrap().0;
        }
    }

    /// Starts a stopped instance again from its own disk.
    pub fn start(&self, id: &str) -> Result<Instance, RuntimeError> {
        let mut st = self.lock();
        let rec = st
            .instances
            .get(id)
            .ok_or_else(|| RuntimeError::NoInstance(id.into()))?
            .clone();
        if rec.state != InstanceState::Stopped {
            return Err(RuntimeError::BadState {
                id: id.into(),
                state: rec.state,
                action: "start",
            });
        }
        let image = self.inner.images.inspect(&rec.image_id)?;
        let pid = self.boot(&rec, &image)?;
        let rec = st.instances.get_mut(id).expect("present");
        rec.pid = Some(pid);
        rec.pid_start = self.inner.kernel.process_start_time(pid);
        rec.state = InstanceState::Running;
        let rec = rec.clone();
        self.save(&st)?;
        drop(st);
        self.watch(id.into(), pid);
        self.inner.notify(&rec);
        Ok(rec)
    }

    /// Terminates an instance: stops it, then removes its network, cgroups and disk and frees
    /// its address. The record stays, in state `terminated`.
    pub fn terminate(&self, id: &str, grace: Duration) -> Result<Instance, RuntimeError> {
        let state = self.describe(id)?.state;
        match state {
            InstanceState::Terminated => return self.describe(id),
            InstanceState::Running | InstanceState::Stopping => {
                self.stop(id, grace)?;
            }
            _ => {}
        }
        let mut st = self.lock();
        let rec = st
            .instances
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NoInstance(id.into()))?;
        if rec.pid.is_some() {
            return Err(RuntimeError::BadState {
                id: id.into(),
                state: rec.state,
                action: "terminate (it did not stop)",
            });
        }
        self.release(&rec);
        if let Some(ipam) = st
            .vpcs
            .get_mut(&rec.vpc_id)
            .and_then(|v| v.subnets.get_mut(&rec.subnet_id))
        {
            let _ = ipam.free(rec.private_ip);
        }
        if rec.userns.is_some() {
            self.free_range(id);
        }
        let now = now_secs();
        let r = st.instances.get_mut(id).expect("present");
        r.state = InstanceState::Terminated;
        r.terminated_at = Some(now);
        let r = r.clone();
        st.instances.retain(|_, i| {
            i.terminated_at
                .is_none_or(|t| now.saturating_sub(t) < TERMINATED_KEPT_SECS)
        });
        let _ = self.refresh_rules(&st, &r.security_groups, false);
        self.save(&st)?;
        drop(st);
        self.inner.notify(&r);
        Ok(r)
    }

    pub fn describe(&self, id: &str) -> Result<Instance, RuntimeError> {
        self.lock()
            .instances
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NoInstance(id.into()))
    }

    pub fn list(&self) -> Vec<Instance> {
        self.lock().instances.values().cloned().collect()
    }

    /// The instance's console output so far.
    pub fn console_output(&self, id: &str) -> Result<String, RuntimeError> {
        self.describe(id)?;
        let p = self.instance_dir(id).join("console.log");
        match fs::read(&p) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(RuntimeError::Io {
                op: "read",
                path: p,
                err: e,
            }),
        }
    }

    /// Runs a command inside a running instance (its namespaces and cgroups) and waits for it.
    pub fn exec(
        &self,
        id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<Output, RuntimeError> {
        let (pid, procs, seccomp) = self.exec_target(id)?;
        Ok(self
            .inner
            .kernel
            .exec_in(pid, &procs, argv, timeout, seccomp)?)
    }

    /// A running instance's init pid, cgroup files and filter, for running a command in it.
    fn exec_target(
        &self,
        id: &str,
    ) -> Result<(u32, Vec<std::path::PathBuf>, crate::SeccompProfile), RuntimeError> {
        let rec = self.describe(id)?;
        let pid = rec.pid.ok_or(RuntimeError::BadState {
            id: id.into(),
            state: rec.state,
            action: "exec",
        })?;
        let procs = self.inner.cgroups.procs_files(&self.inner.cfg.prefix, id);
        Ok((pid, procs, rec.seccomp))
    }

    /// Waits at most `timeout` until the instance's init has moved into its own root (its
    /// `/proc/PID/root` is no longer this process's): [`Runtime::launch`] returns while init
    /// still sets up its root, and a command run in it before then would see the host's.
    /// `false` when the time ran out.
    pub fn wait_booted(&self, id: &str, timeout: Duration) -> Result<bool, RuntimeError> {
        let (pid, _, _) = self.exec_target(id)?;
        use std::os::unix::fs::MetadataExt;
        let root = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
        let ours = root("/proc/self/root/");
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let theirs = root(&format!("/proc/{pid}/root/"));
            if theirs.is_some() && theirs != ours {
                return Ok(true);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Runs a command inside a running instance as [`Runtime::exec`] does, as `user` (not
    /// the instance's root) with exactly its environment: a pipeline step.
    pub fn exec_as(
        &self,
        id: &str,
        argv: &[String],
        user: &crate::kernel::ExecUser,
        timeout: Duration,
    ) -> Result<Output, RuntimeError> {
        let (pid, procs, seccomp) = self.exec_target(id)?;
        Ok(self
            .inner
            .kernel
            .exec_in_as(pid, &procs, argv, user, timeout, seccomp)?)
    }

    /// Runs a command as [`Runtime::exec_as`] does, handing its output (standard output and
    /// error on one pipe) to `sink` while it runs; returns how it ended.
    pub fn exec_as_streaming(
        &self,
        id: &str,
        argv: &[String],
        user: &crate::kernel::ExecUser,
        timeout: Duration,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<std::process::ExitStatus, RuntimeError> {
        let (pid, procs, seccomp) = self.exec_target(id)?;
        Ok(self
            .inner
            .kernel
            .exec_in_as_streaming(pid, &procs, argv, user, timeout, seccomp, sink)?)
    }

    /// Where a running instance is, for [`crate::attach()`] by a root process on this host.
    pub fn attach_target(&self, id: &str) -> Result<crate::AttachTarget, RuntimeError> {
        let rec = self.describe(id)?;
        let bad = || RuntimeError::BadState {
            id: id.into(),
            state: rec.state,
            action: "attach",
        };
        let pid = rec.pid.ok_or_else(bad)?;
        let pid_start = rec
            .pid_start
            .or_else(|| self.inner.kernel.process_start_time(pid))
            .ok_or_else(bad)?;
        Ok(crate::AttachTarget {
            pid,
            pid_start,
            cgroup_procs: self.inner.cgroups.procs_files(&self.inner.cfg.prefix, id),
            seccomp: rec.seccomp,
        })
    }

    /// Terminates every instance and deletes every peering and VPC of this engine.
    pub fn destroy_all(&self, grace: Duration) -> Vec<RuntimeError> {
        let mut errors = Vec::new();
        for i in self.list() {
            if let Err(e) = self.terminate(&i.id, grace) {
                errors.push(e);
            }
        }
        for p in self.peerings() {
            if let Err(e) = self.delete_peering(&p.id) {
                errors.push(e);
            }
        }
        for v in self.vpcs() {
            if let Err(e) = self.delete_vpc(&v.id) {
                errors.push(e);
            }
        }
        for d in self.inner.cgroups.prefix_dirs(&self.inner.cfg.prefix) {
            if self.inner.kernel.path_exists(&d) {
                let _ = self.inner.kernel.cgroup_remove(&d);
            }
        }
        errors
    }

    /// Reports (and with `fix` removes) what exists under this engine's prefix but is not in
    /// its state: namespaces, mounts, veths and nftables tables in the host namespace, cgroups.
    pub fn doctor(&self, fix: bool) -> crate::doctor::DoctorReport {
        let st = self.lock();
        let mut known = crate::doctor::Known {
            engine_open: true,
            ..Default::default()
        };
        for v in st.vpcs.values() {
            known.netns.insert(v.netns.clone());
            known.peering_links.entry(v.netns.clone()).or_default();
        }
        for p in st.peerings.values() {
            for vpc in [&p.a, &p.b] {
                if let Some(v) = st.vpcs.get(vpc) {
                    known
                        .peering_links
                        .entry(v.netns.clone())
                        .or_default()
                        .insert(format!("x{}", p.index));
                }
            }
        }
        for i in st.live() {
            known.netns.insert(self.netns_name(&i.id));
            if i.pid.is_some() {
                known.cgroups.insert(i.id.clone());
            }
        }
        // A create under way has its intent on record; what it makes is accounted for.
        for (id, intent) in &st.intents {
            intent.known(id, &mut known);
        }
        drop(st);
        crate::doctor::doctor(
            self.inner.kernel.as_ref(),
            &self.inner.cgroups,
            &self.inner.cfg.prefix,
            &known,
            fix,
        )
    }
}
