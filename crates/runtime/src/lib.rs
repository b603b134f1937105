//! # spindle-runtime: instances and networks
//!
//! Spindle's "EC2 instances" are Linux processes in their own mount, pid, uts, ipc, net and
//! cgroup namespaces, booted from an image's layers through overlayfs and limited by cgroups;
//! its "VPCs" are network namespaces acting as routers, joined by veth peering links and
//! guarded by nftables. This crate is the engine; the daemon composes it (it knows no HTTP and
//! no SQL).
//!
//! ## Entry points
//! - [`Runtime`] — open one per data directory and name prefix with [`Runtime::open`]; then
//!   [`Runtime::create_vpc`], [`Runtime::create_subnet`], [`Runtime::put_security_group`],
//!   [`Runtime::create_peering`], [`Runtime::launch`], [`Runtime::stop`], [`Runtime::start`],
//!   [`Runtime::terminate`], [`Runtime::exec`], [`Runtime::console_output`],
//!   [`Runtime::subscribe`], [`Runtime::doctor`].
//! - [`ImageStore`] (via [`Runtime::images`]) — import, list, inspect, tag, rm, export.
//! - [`doctor::doctor`] — leak finder that works without an engine's state.
//!
//! ## Invariants
//! - **This is the only crate that calls `unshare`, `setns`, `mount`, `pivot_root` or runs
//!   `ip`/`nft`**, and it does so only through the [`Kernel`] trait. [`FakeKernel`] records
//!   calls so the planners are tested without root; [`RealKernel`] is tested as root.
//! - Everything created on the host is named with the engine's prefix (`<prefix>-…` network
//!   namespaces, `<prefix>/` cgroup directories), so [`doctor::doctor`] can find leaks.
//!   Mounts of an instance live only in its private mount namespace and die with it; bridges,
//!   veths and nftables tables live inside the VPC and instance namespaces.
//! - The host's namespace has no route into any VPC: reach instances through a socket opened
//!   inside a VPC namespace ([`Runtime::connect_from_vpc`]) or [`Runtime::exec`].
//! - Peering is non-transitive: each router forwards only between its own CIDR and directly
//!   peered CIDRs (see [`net`]).
//! - A failed multi-step operation removes what it created.
//!
//! ## Getting into an instance (for developers)
//! Until the bastion and load balancer expose instances, [`Runtime::exec`] runs a command in a
//! running instance's namespaces and cgroups, confined as the instance's own processes are.
//! The instance's console (stdout and stderr of init, user data and entrypoint) is in
//! [`Runtime::console_output`]. [`attach()`] runs an interactive command the same way, but on
//! the caller's own terminal, inside an instance that [`Runtime::attach_target`] located
//! (`spindle devbox shell`).
//!
//! ## Confinement (instances hold untrusted code)
//! Every process in an instance — init's children, user data, the entrypoint and whatever
//! [`Runtime::exec`] runs — is root of its own user namespace ([`userns`]: ids 0.. inside are
//! an unprivileged host id range of its own, [`Instance::userns`], from the table every
//! engine on the host shares, [`hostids`]; image layers are mounted idmapped, so they stay
//! shared) without CAP_SYS_ADMIN,
//! CAP_NET_ADMIN, CAP_MKNOD or the other capabilities outside [`boot::KEPT_CAPS`], under the
//! seccomp filter of [`seccomp`] with `no_new_privs` ([`Instance::seccomp`] names it: the
//! default, or `devbox` with nested namespaces and mounts when the caller asks), with
//! runc's masked and read-only paths ([`boot::MASKED_FILES`], [`boot::MASKED_DIRS`],
//! [`boot::READ_ONLY`]) and a `nodev` root. Its network namespace reaches only its VPC (and
//! peered VPCs, and the metadata service): the host is not on its network map.
//! `tests/root.rs` (`escape_battery_…`) tries the escapes from inside and names each errno.
//!
//! ## Host directories
//! [`LaunchSpec::mounts`] binds host directories read-write into an instance (the developer
//! box's project directory; see [`bind`]). The engine checks the paths; who may ask for one is
//! the caller's decision.
//!
//! ## Instance lifecycle
//! `launch` → `running`; the entrypoint exiting (or `stop`) → `stopped` with an [`ExitInfo`]
//! (exit code or signal, OOM kill); `start` boots the same disk again (user data runs on the
//! first boot only); `terminate` → `terminated` and frees the address, network and disk.
//! Instance types and their limits are in [`cgroup`]. The metadata service (IMDSv2) runs on
//! each VPC router at 169.254.169.254 (see [`imds`]).
//!
//! ## Host requirements
//! Root; Debian packages `iproute2` (`ip`), `nftables` (`nft`);
//! `busybox-static` for the test image. Kernel: overlayfs, veth, bridge, nf_tables with
//! conntrack; cgroup v1 (cpu, memory, pids controllers) or v2.

pub mod attach;
pub mod bind;
pub mod boot;
pub mod cgroup;
pub mod cidr;
pub mod doctor;
pub mod durable;
pub mod engine;
pub mod host;
pub mod hostids;
pub mod image;
pub mod imds;
mod intent;
pub mod kernel;
pub mod net;
pub mod sandbox;
pub mod seccomp;
mod stream;
pub mod userns;

pub use attach::{attach, AttachError, AttachTarget};
pub use bind::{BindError, BindMount};
pub use cgroup::{instance_type, CgroupLayout, InstanceType, Limits, INSTANCE_TYPES};
pub use cidr::{Ipam, Ipv4Net};
pub use durable::{DocError, FileDoc, MemoryDoc, StateDoc};
pub use engine::{resolver_address, ResolverVpc, VpcResolver};
pub use engine::{
    Endpoint, ExitInfo, Instance, InstanceEvent, InstanceState, LaunchSpec, Peering, Runtime,
    RuntimeConfig, RuntimeError, Vpc,
};
pub use image::{build_busybox_rootfs, ExportFormat, Image, ImageConfig, ImageError, ImageStore};
pub use kernel::{ExecUser, FakeKernel, Kernel, KernelError, RealKernel};
pub use net::{Peer, Protocol, SecurityGroup, SgRule};
pub use sandbox::{TreeExit, TreeRun};
pub use seccomp::SeccompProfile;
pub use userns::IdRange;
