//! Developer boxes (`spindle devbox`): a baked image run as one long-lived instance, in a
//! network of its own, with the project directory bind-mounted into it.

use serde::{Deserialize, Serialize};

/// A host directory mounted read-write into the box. Only the admin credential may ask for one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DevboxMount {
    /// Absolute path of an existing directory on the daemon's machine, not `/`.
    pub host: String,
    /// Absolute path inside the box.
    pub guest: String,
}

/// `PUT /v1/accounts/{account}/devboxes/{name}`: run `image` as the box `name`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PutDevbox {
    /// `ami-…` id or `name:tag` of one of the account's images.
    pub image: String,
    #[serde(default)]
    pub mount: Option<DevboxMount>,
    /// Instance type [default: t3.medium].
    #[serde(default)]
    pub instance_type: Option<String>,
    /// A seccomp profile wider than the default (`devbox`: nested user namespaces and
    /// mounts, for tools such as `unshare -Urm` or rootless Podman); needs the grant
    /// `instance:UseSeccompProfile`, as the `spindle:seccomp-profile` tag of a template does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<String>,
}

/// A developer box as `spindle devbox list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevboxInfo {
    pub name: String,
    pub instance_id: String,
    pub image_id: String,
    /// The instance's state (`running`, `stopped`, …).
    pub state: String,
    /// The box's address in its own network.
    pub private_ip: String,
    pub vpc_id: String,
    /// `HOST:GUEST`, if a directory is mounted.
    pub mount: Option<String>,
    pub launched_at: u64,
}

/// What `PUT` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevboxResult {
    /// `created`, `replaced` (new image, mount or type), `started` (it had stopped) or
    /// `unchanged`.
    pub change: String,
    pub devbox: DevboxInfo,
}

/// `POST /v1/accounts/{account}/devboxes/{name}/attach`: where a running box is on the
/// daemon's host, so a root process there can run a command in it on its own terminal
/// (`spindle devbox shell`). Admin credential, loopback clients only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DevboxAttach {
    pub instance_id: String,
    /// The host pid of the box's init.
    pub pid: u32,
    /// Its start time in clock ticks since boot (guards against a reused pid).
    pub pid_start: u64,
    /// The host paths of the `cgroup.procs` files of the box's cgroups.
    pub cgroup_procs: Vec<String>,
    /// Where the project directory is mounted in the box, if one is.
    pub mount_guest: Option<String>,
    /// The seccomp profile the box's processes run under (`default`, or `devbox` when asked
    /// for); the shell gets it too.
    pub seccomp: String,
}
