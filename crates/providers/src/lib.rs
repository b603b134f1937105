//! # spindle-providers: CloudFormation resource types on Spindle's engines
//!
//! The stack engine (`spindle-stack`) executes change sets through [`Provider`]s; this crate
//! implements the providers that map template resource types onto the engines: the EC2
//! networking and instance types on the runtime engine (`spindle-runtime`), and the ELBv2
//! load balancer types on the load balancer engine (`spindle-lb`), see [`Elb`] and the
//! `elbv2` module's documentation for their properties, attributes and Spindle's
//! `spindle.tenant.*` target group attributes.
//!
//! ## Entry points
//! - [`register_ec2`]: registers every EC2 type below on a [`ProviderRegistry`] over one
//!   [`Runtime`], keeping the providers' small state file next to the runtime's
//!   (`<data_dir>/ec2-providers.json`). [`Ec2::open`] (a file or none, for tests) or
//!   [`Ec2::open_with`] (a [`StateDoc`]: the daemon's store) + [`Ec2::register`] to choose.
//! - [`Ec2::launch_spec_from_template`] / [`Ec2::launch_from_template`]: launch an instance
//!   from a stored `AWS::EC2::LaunchTemplate` version (for auto scaling groups).
//! - [`EC2_TYPES`]: the resource types registered.
//!
//! ## Resource types
//! | Type | `Ref` | `Fn::GetAtt` | Changes in place |
//! |---|---|---|---|
//! | `AWS::EC2::VPC` | `vpc-…` | `VpcId`, `CidrBlock` | `Tags` and ignored properties |
//! | `AWS::EC2::Subnet` | `subnet-…` | `SubnetId`, `VpcId`, `CidrBlock`, `AvailabilityZone` | `Tags` and ignored properties |
//! | `AWS::EC2::SecurityGroup` | `sg-…` | `GroupId`, `VpcId` | `SecurityGroupIngress`, `SecurityGroupEgress`, `Tags` |
//! | `AWS::EC2::SecurityGroupIngress` / `Egress` | `sgr-…` | `Id` | `Description` |
//! | `AWS::EC2::VPCPeeringConnection` | `pcx-…` | `Id` | `Tags` |
//! | `AWS::EC2::Instance` | `i-…` | `InstanceId`, `PrivateIp`, `PrivateDnsName`, `AvailabilityZone`, `VpcId`, `SubnetId` | `Tags` and ignored properties |
//! | `AWS::EC2::LaunchTemplate` | `lt-…` | `LaunchTemplateId`, `LatestVersionNumber`, `DefaultVersionNumber` | `LaunchTemplateData` (a new version, made the default) |
//! | `AWS::EC2::InstanceConnectEndpoint` | `eice-…` | `Id`, `InstanceConnectEndpointArn`, `VpcId`, `SubnetId`, `OwnerId`, `State`, `SecurityGroupIds`, `NetworkInterfaceIds` | `Tags` |
//!
//! Every type checks its properties strictly: the properties it implements, a list it
//! accepts and ignores, and a clear
//! [`ProviderError::InvalidRequest`](spindle_stack::ProviderError::InvalidRequest) naming
//! anything else, so a template never silently loses a setting that matters:
//!
//! | Type | Implemented | Accepted, no effect | Refused (examples) |
//! |---|---|---|---|
//! | VPC | `CidrBlock`, `EnableDnsHostnames`, `EnableDnsSupport` | `InstanceTenancy`, `Tags` | `Ipv4IpamPoolId`, `Ipv4NetmaskLength` |
//! | Subnet | `VpcId`, `CidrBlock` | `AvailabilityZone`, `AvailabilityZoneId`, `MapPublicIpOnLaunch`, `EnableDns64`, `PrivateDnsNameOptionsOnLaunch`, `Tags` | IPv6, IPAM, `OutpostArn` |
//! | SecurityGroup | `GroupDescription`, `VpcId` (required: no default VPC), `SecurityGroupIngress`, `SecurityGroupEgress` | `GroupName`, `Tags` | rules with `CidrIpv6`, prefix lists, group names |
//! | SecurityGroupIngress / Egress | `GroupId`, `IpProtocol` (`tcp`, `udp`, `icmp`, `-1` or their numbers), `FromPort`, `ToPort`, `CidrIp`, `SourceSecurityGroupId` / `DestinationSecurityGroupId` | `Description`, `SourceSecurityGroupOwnerId` | `GroupName`, `SourceSecurityGroupName`, `CidrIpv6`, prefix lists |
//! | VPCPeeringConnection | `VpcId`, `PeerVpcId`, `PeerOwnerId` / `PeerRegion` when they are the stack's own | `PeerRoleArn`, `Tags` | another account or region |
//! | Instance | `ImageId`, `InstanceType` (required; see the runtime's type table), `SubnetId` (required), `SecurityGroupIds`, `UserData`, `Tags` (`spindle:seccomp-profile`: below), `LaunchTemplate` | `AvailabilityZone`, `KeyName`, `Monitoring`, `IamInstanceProfile`, `BlockDeviceMappings`, `EbsOptimized`, `MetadataOptions`, … | `NetworkInterfaces`, `PrivateIpAddress`, `SecurityGroups`, `Volumes`, IPv6 |
//! | LaunchTemplate | `LaunchTemplateName`, `LaunchTemplateData` (`ImageId`, `InstanceType`, `UserData`, `SecurityGroupIds`, instance `TagSpecifications`, `spindle:seccomp-profile` among them) | `TagSpecifications`, `VersionDescription`; in the data `KeyName`, `Monitoring`, … | in the data `NetworkInterfaces`, `SecurityGroups`, `InstanceMarketOptions` |
//! | InstanceConnectEndpoint (`connect_endpoint.rs`: an address in the subnet, held by the VPC's router and a member of its groups, where the SSH bastion's connections start) | `SubnetId`, `SecurityGroupIds`, `PreserveClientIp` (`false` only), `Tags` | `ClientToken` | `PreserveClientIp: true` (the bastion's clients are on the host's loopback) |
//!
//! Which property changes force a replacement comes from the template crate's bundled
//! registry schemas; an update that reaches a provider but needs a change the runtime
//! cannot make in place (an instance's `InstanceType`, `UserData` or `SecurityGroupIds`)
//! fails with a message saying so. An instance's `Tags` update is recorded by the provider
//! (and reported by `read`); the metadata service keeps showing the launch-time tags.
//!
//! ## A wider seccomp profile (Spindle's extension)
//! Every instance runs under the runtime's `default` seccomp profile. An instance that needs
//! more — a developer VM whose tools make namespaces of their own and mount in them
//! (`unshare -Urm`, rootless Podman, bubblewrap) — asks for a named profile with a tag, so
//! the template stays valid CloudFormation and an auto scaling group's instances inherit it
//! from their launch template:
//!
//! ```yaml
//! Box:
//!   Type: AWS::EC2::Instance
//!   Properties:
//!     Tags: [{Key: spindle:seccomp-profile, Value: devbox}]
//! Lt:
//!   Type: AWS::EC2::LaunchTemplate
//!   Properties:
//!     LaunchTemplateData:
//!       TagSpecifications:
//!         - ResourceType: instance
//!           Tags: [{Key: spindle:seccomp-profile, Value: devbox}]
//! ```
//!
//! Values: `default`, and `devbox` (`spindle_runtime::SeccompProfile::Devbox`: the default
//! plus `unshare`, `setns`, namespace flags to `clone`, `clone3`, `mount` and the new mount
//! API; `unconfined` can't be asked for). Anything but `default` needs the grant
//! `instance:UseSeccompProfile`, an *admin-granted* action: a credential holds it only if its
//! allow list names it exactly (`*` and `instance:*` don't carry it), only the installation's
//! admin credential can put it there (`spindle --account dev account keys create --allow '*'
//! --allow instance:UseSeccompProfile`, or a role's `--allow`), and the account's deny rules apply
//! as to any action. Validation refuses a template that asks without the grant (naming the
//! tag's position and the grant; a computed value needs the grant too), every deploy path
//! runs it (`template validate`, deploy and change sets, `spindle up`), and the providers
//! check again at create from the operation's `Context::grants` (nested stacks inherit the
//! caller's; crash recovery has none, so a create it retries fails and rolls back). A launch
//! template update keeps a profile an earlier version of the same template was granted. The
//! tag is a setting, not a tag the instance keeps; `spindle instance describe` shows the
//! profile, and changing it on an existing instance is refused (replace the instance).
//!
//! `UserData` is base64 as in CloudFormation (`Fn::Base64`) and is decoded before launch;
//! `ImageId` is an `ami-…` id or a `name:tag` alias of the runtime's image store. ICMP rules
//! allow all of ICMP (type and code are not filtered). A group's rules are its inline rules
//! plus those of its standalone ingress/egress resources, so updating one never drops the
//! other (unlike AWS, where an inline update revokes standalone rules too).
//!
//! ## Wiring it into the daemon
//! Call [`register_ec2`] once per [`Runtime`] (one [`Ec2`] per state file: two over the same
//! file would overwrite each other's records). `read` reports the properties the resource
//! was made with, replaced by what is observed where the runtime can tell (CIDRs, VPCs,
//! rules, image, type, groups, tags), so [`spindle_stack::Engine::drift`] works.
//!
//! ## Invariants
//! - **Idempotency.** Ids of VPCs, subnets, security groups and peerings are derived from
//!   the call's idempotency token (scoped by account and region), so a create repeated
//!   after a crash finds what it made, and `read` without a physical id looks the derived id
//!   up. An instance carries the token's hash in its `spindle:token` tag; standalone rules
//!   and launch templates are keyed by token-derived ids in the state file, written before
//!   the runtime is changed.
//! - **A call that times out is not lost.** Runtime calls block, so they run on tokio's
//!   blocking pool while holding a per-token lock; a `read` by token waits for that lock, so
//!   a create the engine gave up on is either finished and found, or never happened.
//! - `delete` of something already gone succeeds; `update` to the current properties
//!   succeeds.
//! - Instances get CloudFormation's `aws:cloudformation:stack-name`, `…:logical-id` and
//!   `…:stack-id` tags.
//!
//! ## Example
//! ```no_run
//! use std::sync::Arc;
//! use spindle_runtime::{RealKernel, Runtime, RuntimeConfig};
//! use spindle_stack::{Engine, EngineOptions, MemoryJournal, ProviderRegistry};
//!
//! let rt = Arc::new(Runtime::open(RuntimeConfig::new("/var/lib/spindle/runtime", "spx"), Arc::new(RealKernel)).unwrap());
//! let mut registry = ProviderRegistry::new();
//! let ec2 = spindle_providers::register_ec2(&mut registry, rt).unwrap();
//! let engine = Engine::new(Arc::new(MemoryJournal::new()), registry, EngineOptions::default());
//! # let _ = (ec2, engine);
//! ```

mod autoscaling;
mod connect_endpoint;
mod ec2_spec;
mod elb_autoscaling;
mod elbv2;
mod elbv2_spec;
mod error;
mod instance;
mod kind;
mod network;
mod props;
mod rds;
mod rds_secret;
mod rds_spec;
#[cfg(test)]
mod rds_tests;
mod route53;
mod route53_spec;
pub mod rules;
mod secretsmanager;
mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use spindle_model::{AccountId, ImageId};
use spindle_runtime::{FileDoc, Runtime, StateDoc};
use spindle_stack::{Provider, ProviderRegistry, ResourceCx};

pub use autoscaling::{
    AutoScaling, CgroupOnly, GroupInfo, InstanceInfo, LbSecond, LoadBalancing, RefreshInfo,
    GROUP_TAG,
};
pub use connect_endpoint::ConnectEndpointProvider;
pub use elb_autoscaling::ElbAutoScaling;
pub use elbv2::{Elb, ElbOptions, Registration, ELBV2_STATE_FILE, HOSTED_ZONE_ID};
pub use error::Ec2Error;
pub use instance::{
    private_dns_name, InstanceProvider, LaunchOverrides, LaunchTemplateProvider, TOKEN_TAG,
};
pub use kind::{
    Group, Kind, AUTOSCALING_TYPES, EC2_TYPES, ELBV2_TYPES, RDS_TYPES, ROUTE53_TYPES,
    SECRETSMANAGER_TYPES,
};
pub use network::{
    PeeringProvider, SecurityGroupProvider, SecurityGroupRuleProvider, SubnetProvider, VpcProvider,
};
pub use rds::{Rds, RdsOpError, DB_INSTANCE_TAG, RDS_DOC};
pub use route53::{RecordChangeError, Route53, ZoneAccess, ROUTE53_DOC};
pub use secretsmanager::{SecretTargets, SecretsManager};

use state::Store;

/// The file name of the providers' state, in the runtime's data directory.
pub const STATE_FILE: &str = "ec2-providers.json";

/// Shared by the EC2 providers: the runtime, the providers' state and the per-token locks.
pub struct Ec2 {
    runtime: Runtime,
    store: Store,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    image_owners: std::sync::OnceLock<ImageOwners>,
}

/// Whether an account owns an image: the daemon answers from its `images` table. Images are
/// owned per account while the image store is the installation's.
pub type ImageOwners = Arc<dyn Fn(&AccountId, &ImageId) -> bool + Send + Sync>;

impl std::fmt::Debug for Ec2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}

/// Registers every type in [`EC2_TYPES`], with the state file in the runtime's data
/// directory. Returns the shared handle (for [`Ec2::launch_from_template`]).
pub fn register_ec2(
    registry: &mut ProviderRegistry,
    runtime: Arc<Runtime>,
) -> Result<Arc<Ec2>, Ec2Error> {
    let path = runtime.config().data_dir.join(STATE_FILE);
    let ec2 = Ec2::open(runtime.as_ref().clone(), Some(path))?;
    ec2.register(registry);
    Ok(ec2)
}

impl Ec2 {
    /// Opens the providers' state file (`None`: in memory only, for tests).
    pub fn open(runtime: Runtime, state_file: Option<PathBuf>) -> Result<Arc<Self>, Ec2Error> {
        Self::open_with(runtime, state_file.map(FileDoc::arc))
    }

    /// Opens the providers' state kept in `doc` (the daemon's store; `None`: in memory only).
    pub fn open_with(
        runtime: Runtime,
        doc: Option<Arc<dyn StateDoc>>,
    ) -> Result<Arc<Self>, Ec2Error> {
        Ok(Arc::new(Ec2 {
            runtime,
            store: Store::open(doc)?,
            locks: Mutex::new(HashMap::new()),
            image_owners: std::sync::OnceLock::new(),
        }))
    }

    /// From now on an instance or launch template may name only an image its stack's account
    /// owns (imported, or shared to it by importing the same image there); another
    /// account's image is refused as a missing one. Without this (tests of the providers
    /// alone) every image in the store may be used.
    pub fn set_image_owners(&self, owners: ImageOwners) {
        let _ = self.image_owners.set(owners);
    }

    /// Refuses `image` (an id or a `name:tag`) unless `account` owns it. An image the store
    /// doesn't know is left to the runtime, which names it when it launches.
    pub(crate) fn check_image_owner(
        &self,
        account: &AccountId,
        image: &str,
    ) -> Result<(), Ec2Error> {
        let Some(owns) = self.image_owners.get() else {
            return Ok(());
        };
        let Ok(id) = self.runtime.images().resolve(image) else {
            return Ok(());
        };
        // The store makes only ids of this shape; anything else is no image an account owns.
        if ImageId::parse(&id).is_ok_and(|id| owns(account, &id)) {
            return Ok(());
        }
        Err(Ec2Error::Invalid {
            type_name: "AWS::EC2::Image",
            message: format!(
                "image {image} not found in account {account}; import it into this account (an image is shared by importing it into each account that boots it)"
            ),
        })
    }

    /// Registers every type in [`EC2_TYPES`].
    pub fn register(self: &Arc<Self>, registry: &mut ProviderRegistry) {
        for kind in kind::kinds_of(Group::Ec2) {
            let e = self.clone();
            let provider: Arc<dyn Provider> = match kind {
                Kind::Vpc => Arc::new(VpcProvider::new(e)),
                Kind::Subnet => Arc::new(SubnetProvider::new(e)),
                Kind::SecurityGroup => Arc::new(SecurityGroupProvider::new(e)),
                Kind::SecurityGroupIngress => Arc::new(SecurityGroupRuleProvider::ingress(e)),
                Kind::SecurityGroupEgress => Arc::new(SecurityGroupRuleProvider::egress(e)),
                Kind::VpcPeeringConnection => Arc::new(PeeringProvider::new(e)),
                Kind::Instance => Arc::new(InstanceProvider::new(e)),
                Kind::LaunchTemplate => Arc::new(LaunchTemplateProvider::new(e)),
                Kind::InstanceConnectEndpoint => Arc::new(ConnectEndpointProvider::new(e)),
                // Registered by their own groups.
                Kind::LoadBalancer
                | Kind::Listener
                | Kind::ListenerRule
                | Kind::TargetGroup
                | Kind::AutoScalingGroup
                | Kind::ScalingPolicy
                | Kind::ScheduledAction
                | Kind::LifecycleHook
                | Kind::WarmPool
                | Kind::HostedZone
                | Kind::RecordSet
                | Kind::RecordSetGroup
                | Kind::Secret
                | Kind::SecretTargetAttachment
                | Kind::DbSubnetGroup
                | Kind::DbInstance => continue,
            };
            registry.register(kind.type_name(), provider);
        }
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    fn token_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key.to_string()).or_default().clone()
    }

    fn release_lock(&self, key: &str) {
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if m.get(key).is_some_and(|l| Arc::strong_count(l) == 1) {
            m.remove(key);
        }
    }

    /// Runs blocking runtime work on tokio's blocking pool while holding the lock of `key`
    /// (a scoped token). If the caller stops waiting (a timeout), the work still finishes
    /// and the lock is held until it does, so a later `read` by the same token sees its
    /// result.
    async fn run<T, F>(self: &Arc<Self>, key: &str, f: F) -> Result<T, Ec2Error>
    where
        T: Send + 'static,
        F: FnOnce(&Ec2) -> Result<T, Ec2Error> + Send + 'static,
    {
        let guard = self.token_lock(key).lock_owned().await;
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            f(&me)
        })
        .await;
        self.release_lock(key);
        res.map_err(|e| Ec2Error::Worker(e.to_string()))?
    }
}

/// The token scoped by account and region (tokens are `stack-seq-logical`, unique only
/// within one account's stack names).
pub(crate) fn scoped_token(cx: &ResourceCx<'_>) -> String {
    format!(
        "{}/{}/{}",
        cx.context.account_id, cx.context.region, cx.token
    )
}

/// `kind-` and 17 hex digits of SHA-256 of the scoped token (the runtime's id shape).
pub(crate) fn derived_id(kind: &str, cx: &ResourceCx<'_>) -> String {
    let d = Sha256::digest(format!("{kind}/{}", scoped_token(cx)).as_bytes());
    format!("{kind}-{}", &hex::encode(d)[..17])
}
