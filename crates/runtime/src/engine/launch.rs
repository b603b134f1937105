//! Launching an instance: resolving its command and user, provisioning its namespace,
//! cgroups, disk and process (undone on failure), its VPC's metadata service, and the
//! thread that waits for its exit.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::bind::check_guest_in_layers;
use crate::boot::{plan_boot, BootSpec};
use crate::cgroup::{instance_type, Limits};
use crate::image::Image;
use crate::imds::{ImdsServer, Metadata};
use crate::intent::Intent;
use crate::kernel::{KernelError, WaitOutcome, NETNS_DIR};
use crate::net::{self, NetError, SecurityGroup};
use std::sync::Weak;

use super::{
    ioe, new_id, now_secs, valid_hostname, Inner, Instance, InstanceState, LaunchSpec, Runtime,
    RuntimeError, State, Vpc, DEFAULT_PATH,
};

impl Runtime {
    fn resolve_exec(
        &self,
        image: &Image,
        command: Option<&Vec<String>>,
        env: &[String],
    ) -> Result<(String, Vec<String>), RuntimeError> {
        let mut argv = image.config.entrypoint.clone();
        argv.extend(command.cloned().unwrap_or_else(|| image.config.cmd.clone()));
        let Some(prog) = argv.first().cloned() else {
            return Err(RuntimeError::NoCommand {
                image: image.id.clone(),
            });
        };
        let missing = || RuntimeError::EntrypointMissing {
            image: image.id.clone(),
            program: prog.clone(),
        };
        let store = &self.inner.images;
        let exec_path = if prog.contains('/') {
            store.resolve_in_image(image, &prog).ok_or_else(missing)?;
            prog.clone()
        } else {
            let path = env
                .iter()
                .rev()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or(DEFAULT_PATH);
            path.split(':')
                .map(|d| format!("{}/{prog}", d.trim_end_matches('/')))
                .find(|p| store.resolve_in_image(image, p).is_some())
                .ok_or_else(missing)?
        };
        Ok((exec_path, argv))
    }

    pub(super) fn resolve_user(&self, image: &Image) -> Result<(u32, u32), RuntimeError> {
        let user = image.config.user.trim();
        if user.is_empty() {
            return Ok((0, 0));
        }
        let (u, g) = user
            .split_once(':')
            .map(|(u, g)| (u, Some(g)))
            .unwrap_or((user, None));
        let unknown = || RuntimeError::UnknownUser {
            user: user.into(),
            image: image.id.clone(),
        };
        let (uid, pw_gid) = match u.parse::<u32>() {
            Ok(n) => (n, n),
            Err(_) => {
                let passwd = self
                    .inner
                    .images
                    .read_in_image(image, "/etc/passwd")
                    .ok_or_else(unknown)?;
                passwd
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 3 && f[0] == u)
                    .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                    .ok_or_else(unknown)?
            }
        };
        let gid = match g {
            Some(g) => g.parse().map_err(|_| unknown())?,
            None => pw_gid,
        };
        Ok((uid, gid))
    }

    /// Launches an instance and returns once its init process has started.
    pub fn launch(&self, spec: LaunchSpec) -> Result<Instance, RuntimeError> {
        let image = self.inner.images.inspect(&spec.image)?;
        let itype = instance_type(&spec.instance_type)?;
        let limits = Limits::from_type(&itype, spec.memory_mib);
        let have = limits.memory_bytes >> 20;
        if image.config.min_memory_mib > have {
            return Err(RuntimeError::MemoryTooLow {
                instance_type: itype.name.into(),
                have,
                image: image.id.clone(),
                need: image.config.min_memory_mib,
            });
        }
        let mut env = image.config.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        env.extend(spec.env.iter().cloned());
        let (exec_path, argv) = self.resolve_exec(&image, spec.command.as_ref(), &env)?;
        let (uid, gid) = self.resolve_user(&image)?;
        let layers = self.inner.images.layer_dirs(&image);
        for m in &spec.mounts {
            check_guest_in_layers(&m.guest, &layers)?;
        }
        if let Some(h) = &spec.hostname {
            if !valid_hostname(h) {
                return Err(RuntimeError::BadHostname(h.clone()));
            }
        }
        let mut st = self.lock();
        let vpc = st
            .find_subnet(&spec.subnet_id)
            .ok_or_else(|| NetError::NotFound {
                kind: "subnet",
                id: spec.subnet_id.clone(),
            })?
            .clone();
        st.check_groups(&spec.security_groups, &vpc.id)?;
        let id = new_id("i", &self.inner.cfg.prefix);
        let vpc_mut = st.vpcs.get_mut(&vpc.id).expect("found above");
        let ipam = vpc_mut
            .subnets
            .get_mut(&spec.subnet_id)
            .expect("found above");
        let ip = ipam.allocate()?;
        let port = format!("p{}", vpc_mut.next_port);
        vpc_mut.next_port += 1;
        let hostname = spec
            .hostname
            .clone()
            .unwrap_or_else(|| format!("ip-{}", ip.to_string().replace('.', "-")));
        env.push(format!("HOSTNAME={hostname}"));
        let userns = match &self.inner.userns {
            Ok(()) => {
                let owner = &self.inner.owner;
                let range = match self.inner.host_ids.update(|t| {
                    t.forget_missing(|dir| dir.join("instances").is_dir());
                    t.allocate(owner, &id)
                }) {
                    Ok(Some(r)) => Ok(r),
                    Ok(None) => Err(RuntimeError::NoIdRange(self.inner.host_ids.path())),
                    Err(e) => Err(RuntimeError::from(e)),
                };
                match range {
                    Ok(r) => Some(r),
                    Err(e) => {
                        if let Some(ipam) = st
                            .vpcs
                            .get_mut(&vpc.id)
                            .and_then(|v| v.subnets.get_mut(&spec.subnet_id))
                        {
                            let _ = ipam.free(ip);
                        }
                        return Err(e);
                    }
                }
            }
            Err(_) => None,
        };
        let workdir = if image.config.workdir.is_empty() {
            "/".to_string()
        } else {
            image.config.workdir.clone()
        };
        let mut rec = Instance {
            id: id.clone(),
            image_id: image.id.clone(),
            instance_type: itype.name.into(),
            limits,
            vpc_id: vpc.id.clone(),
            subnet_id: spec.subnet_id.clone(),
            private_ip: ip,
            hostname,
            security_groups: spec.security_groups.clone(),
            tags: spec.tags.clone(),
            user_data: spec.user_data.clone(),
            argv,
            exec_path,
            env,
            workdir,
            uid,
            gid,
            state: InstanceState::Pending,
            pid: None,
            pid_start: None,
            last_exit: None,
            port,
            launched_at: now_secs(),
            terminated_at: None,
            mounts: spec.mounts.clone(),
            seccomp: spec.seccomp,
            userns,
        };
        st.intents.insert(
            id.clone(),
            Intent::Instance {
                netns: self.netns_name(&id),
                subnet: spec.subnet_id.clone(),
                ip,
            },
        );
        if let Err(e) = self.save(&st) {
            st.intents.remove(&id);
            st.free_ip(&spec.subnet_id, ip);
            return Err(e);
        }
        // Membership is part of the rules of this and other instances: count the new one in.
        st.instances.insert(id.clone(), rec.clone());
        let res = self.provision(&st, &rec, &image, &vpc);
        st.intents.remove(&id);
        match res {
            Ok(pid) => {
                rec.pid = Some(pid);
                rec.pid_start = self.inner.kernel.process_start_time(pid);
                rec.state = InstanceState::Running;
                st.instances.insert(id.clone(), rec.clone());
                let _ = self.refresh_rules(&st, &rec.security_groups, false);
                self.save(&st)?;
                drop(st);
                self.watch(id, pid);
                Ok(rec)
            }
            Err(e) => {
                st.instances.remove(&id);
                st.free_ip(&spec.subnet_id, ip);
                self.release(&rec);
                if rec.userns.is_some() {
                    self.free_range(&id);
                }
                let _ = self.save(&st);
                Err(e)
            }
        }
    }

    pub(super) fn instance_dir(&self, id: &str) -> PathBuf {
        self.inner.cfg.data_dir.join("instances").join(id)
    }

    /// Everything a launch creates, in order; `release` undoes it.
    fn provision(
        &self,
        st: &State,
        rec: &Instance,
        image: &Image,
        vpc: &Vpc,
    ) -> Result<u32, RuntimeError> {
        let dir = self.instance_dir(&rec.id);
        for d in [
            "upper/etc",
            "upper/var/lib/cloud/instance",
            "work",
            "rootfs",
        ] {
            let p = dir.join(d);
            fs::create_dir_all(&p).map_err(ioe("create", &p))?;
        }
        let gw = vpc.subnets[&rec.subnet_id].gateway();
        let files = [
            ("upper/etc/hostname", format!("{}\n", rec.hostname)),
            (
                "upper/etc/hosts",
                format!(
                    "127.0.0.1\tlocalhost\n{}\t{}\n",
                    rec.private_ip, rec.hostname
                ),
            ),
            // The VPC's resolver at its base + 2 (see `resolver.rs`), as AWS's DHCP options set.
            (
                "upper/etc/resolv.conf",
                format!("nameserver {}\n", super::resolver_address(vpc.cidr)),
            ),
        ];
        for (name, content) in files {
            let p = dir.join(name);
            fs::write(&p, content).map_err(ioe("write", &p))?;
        }
        let ud_path = "/var/lib/cloud/instance/user-data.txt";
        if let Some(ud) = &rec.user_data {
            let p = dir.join("upper").join(&ud_path[1..]);
            fs::write(&p, ud).map_err(ioe("write", &p))?;
        }
        // What is written above belongs to the instance's root.
        let k = self.inner.kernel.as_ref();
        if let Some(range) = rec.userns {
            k.chown_tree(&dir.join("upper"), range)?;
        }
        let ns = self.netns_name(&rec.id);
        k.netns_create(&ns)?;
        let prefix_len = vpc.subnets[&rec.subnet_id].cidr.prefix();
        let own: Vec<&SecurityGroup> = rec
            .security_groups
            .iter()
            .filter_map(|g| st.groups.get(g))
            .collect();
        let rules =
            net::instance_rules(&own, &st.members(), Some(super::resolver_address(vpc.cidr)));
        // The links, the firewall, the cgroups and init's root are independent: set them up
        // in parallel (each `ip`/`nft` run is a process start). Init waits for the network
        // (`ready`) before it runs anything from the image.
        std::thread::scope(|s| {
            let links = s.spawn(|| -> Result<(), KernelError> {
                k.ip_batch(
                    Some(&ns),
                    &net::instance_setup(&rec.port, &vpc.netns, rec.private_ip, prefix_len, gw),
                )?;
                k.bridge_port_up(&vpc.netns, "br0", &rec.port)
            });
            let firewall = s.spawn(|| k.nft_apply(Some(&ns), &rules));
            let mut network = Some((links, firewall));
            let mut ready = || -> Result<(), KernelError> {
                let Some((links, firewall)) = network.take() else {
                    return Ok(());
                };
                let joined = |r: std::thread::Result<Result<(), KernelError>>| {
                    r.unwrap_or_else(|_| {
                        Err(KernelError::io(
                            "network setup",
                            io::Error::other("thread panicked"),
                        ))
                    })
                };
                // Wait for both, so neither still runs when the caller cleans up.
                let (l, f) = (joined(links.join()), joined(firewall.join()));
                l.and(f)
            };
            let booted = self
                .inner
                .cgroups
                .create(k, &self.inner.cfg.prefix, &rec.id, &rec.limits)
                .map_err(RuntimeError::from)
                .and_then(|()| self.spawn_init(rec, image, true, &mut ready));
            // When the cgroups or the clone failed, `ready` never ran: still wait for the
            // network threads (the scope would, but their errors don't matter then).
            let _ = ready();
            booted
        })
    }

    /// Creates the cgroups and clones init. Used by start.
    pub(super) fn boot(&self, rec: &Instance, image: &Image) -> Result<u32, RuntimeError> {
        let prefix = &self.inner.cfg.prefix;
        self.inner
            .cgroups
            .create(self.inner.kernel.as_ref(), prefix, &rec.id, &rec.limits)?;
        self.spawn_init(rec, image, false, &mut || Ok(()))
    }

    /// Clones init; removes the instance's cgroups if that fails. User data runs on the first
    /// boot only, as cloud-init runs user scripts once per instance.
    fn spawn_init(
        &self,
        rec: &Instance,
        image: &Image,
        first_boot: bool,
        ready: &mut dyn FnMut() -> Result<(), KernelError>,
    ) -> Result<u32, RuntimeError> {
        let prefix = &self.inner.cfg.prefix;
        let cg = &self.inner.cgroups;
        let dir = self.instance_dir(&rec.id);
        let spec = BootSpec {
            hostname: &rec.hostname,
            netns_path: Path::new(NETNS_DIR).join(self.netns_name(&rec.id)),
            cgroup_procs: cg.procs_files(prefix, &rec.id),
            layers: self.inner.images.layer_dirs(image),
            upper: dir.join("upper"),
            work: dir.join("work"),
            rootfs: dir.join("rootfs"),
            console_log: dir.join("console.log"),
            status_file: dir.join("status"),
            user_data_path: rec
                .user_data
                .as_ref()
                .filter(|_| first_boot)
                .map(|_| "/var/lib/cloud/instance/user-data.txt"),
            exec_path: rec.exec_path.clone(),
            argv: rec.argv.clone(),
            env: rec.env.clone(),
            workdir: rec.workdir.clone(),
            uid: rec.uid,
            gid: rec.gid,
            mounts: rec.mounts.clone(),
            seccomp: rec.seccomp,
            userns: rec.userns.map(|r| (r, dir.join("lower"))),
        };
        match self.inner.kernel.spawn_instance(&plan_boot(&spec), ready) {
            Ok(pid) => Ok(pid),
            Err(e) => {
                cg.remove(self.inner.kernel.as_ref(), prefix, &rec.id);
                Err(e.into())
            }
        }
    }

    /// Removes everything `provision` may have created for `rec` (best effort, idempotent).
    pub(super) fn release(&self, rec: &Instance) {
        let k = &self.inner.kernel;
        if let Some(pid) = rec.pid {
            let _ = k.signal(pid, libc::SIGKILL);
        }
        let _ = k.netns_delete(&self.netns_name(&rec.id));
        self.inner
            .cgroups
            .remove(k.as_ref(), &self.inner.cfg.prefix, &rec.id);
        let _ = fs::remove_dir_all(self.instance_dir(&rec.id));
    }

    /// Registers the daemon's answers to the metadata service's SSH paths (host certificates
    /// and the account's CA keys); every VPC's service asks it per request.
    pub fn set_imds_ssh(&self, hook: Arc<dyn crate::imds::SshHook>) {
        *self.inner.imds_ssh.lock().unwrap() = Some(hook);
    }

    /// Starts the VPC's metadata service on its router (see [`crate::imds`]).
    pub(super) fn start_imds(&self, vpc: &Vpc) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let vpc_id = vpc.id.clone();
        let lookup = Box::new(move |ip: Ipv4Addr| {
            let inner = weak.upgrade()?;
            let st = inner.state.lock().unwrap();
            let rec = st
                .live()
                .find(|i| i.vpc_id == vpc_id && i.private_ip == ip && i.pid.is_some())?;
            Some(Metadata {
                instance_id: rec.id.clone(),
                image_id: rec.image_id.clone(),
                instance_type: rec.instance_type.clone(),
                local_ipv4: rec.private_ip.to_string(),
                hostname: rec.hostname.clone(),
                user_data: rec.user_data.clone(),
                tags: rec.tags.clone(),
            })
        });
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let ssh = Box::new(move || weak.upgrade()?.imds_ssh.lock().unwrap().clone());
        // The metadata service is a convenience; instances run without it.
        if let Ok(l) = self
            .inner
            .kernel
            .tcp_listen_in(&vpc.netns, "169.254.169.254:80")
        {
            self.inner
                .imds
                .lock()
                .unwrap()
                .insert(vpc.id.clone(), ImdsServer::start(&vpc.id, l, lookup, ssh));
        }
    }

    pub(super) fn watch(&self, id: String, pid: u32) {
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name(format!("wait-{id}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let outcome = inner.kernel.wait_exit(pid).unwrap_or(WaitOutcome::Gone);
                inner.on_exit(&id, pid, outcome);
            })
            .expect("spawn waiter thread");
    }
}
