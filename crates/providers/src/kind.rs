//! The resource types this crate provisions, as one closed set. A type name from a template
//! becomes a [`Kind`] once, at registration ([`Kind::from_type_name`]); below that, providers
//! and their records dispatch on the variant, never on type-name strings or ARN shapes.

use serde::{Deserialize, Serialize};

/// Which provider group registers a kind (and so which handle serves it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// [`crate::Ec2::register`], over the runtime.
    Ec2,
    /// [`crate::Elb::register`], over the load balancer engine.
    Elbv2,
    /// [`crate::AutoScaling::register`], over the runtime and the load balancers.
    AutoScaling,
    /// [`crate::Route53::register`], over the DNS engine.
    Route53,
    /// [`crate::SecretsManager::register`], over the secrets engine.
    SecretsManager,
    /// [`crate::Rds::register`], over the runtime and `spindle-rds`.
    Rds,
}

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $type_name:literal, $group:ident;)*) => {
        /// One supported CloudFormation resource type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Kind {
            $($(#[$doc])* #[serde(rename = $type_name)] $variant,)*
        }

        impl Kind {
            /// Every kind, in registration order.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The CloudFormation type name (`AWS::EC2::VPC`).
            pub const fn type_name(self) -> &'static str {
                match self {
                    $(Kind::$variant => $type_name,)*
                }
            }

            /// The provider group that registers this kind.
            pub const fn group(self) -> Group {
                match self {
                    $(Kind::$variant => Group::$group,)*
                }
            }

            /// The kind of a CloudFormation type name; `None` for a type this crate doesn't
            /// provision.
            pub fn from_type_name(type_name: &str) -> Option<Kind> {
                match type_name {
                    $($type_name => Some(Kind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    Vpc = "AWS::EC2::VPC", Ec2;
    Subnet = "AWS::EC2::Subnet", Ec2;
    SecurityGroup = "AWS::EC2::SecurityGroup", Ec2;
    SecurityGroupIngress = "AWS::EC2::SecurityGroupIngress", Ec2;
    SecurityGroupEgress = "AWS::EC2::SecurityGroupEgress", Ec2;
    VpcPeeringConnection = "AWS::EC2::VPCPeeringConnection", Ec2;
    Instance = "AWS::EC2::Instance", Ec2;
    LaunchTemplate = "AWS::EC2::LaunchTemplate", Ec2;
    InstanceConnectEndpoint = "AWS::EC2::InstanceConnectEndpoint", Ec2;
    LoadBalancer = "AWS::ElasticLoadBalancingV2::LoadBalancer", Elbv2;
    Listener = "AWS::ElasticLoadBalancingV2::Listener", Elbv2;
    ListenerRule = "AWS::ElasticLoadBalancingV2::ListenerRule", Elbv2;
    TargetGroup = "AWS::ElasticLoadBalancingV2::TargetGroup", Elbv2;
    AutoScalingGroup = "AWS::AutoScaling::AutoScalingGroup", AutoScaling;
    ScalingPolicy = "AWS::AutoScaling::ScalingPolicy", AutoScaling;
    ScheduledAction = "AWS::AutoScaling::ScheduledAction", AutoScaling;
    LifecycleHook = "AWS::AutoScaling::LifecycleHook", AutoScaling;
    WarmPool = "AWS::AutoScaling::WarmPool", AutoScaling;
    HostedZone = "AWS::Route53::HostedZone", Route53;
    RecordSet = "AWS::Route53::RecordSet", Route53;
    RecordSetGroup = "AWS::Route53::RecordSetGroup", Route53;
    Secret = "AWS::SecretsManager::Secret", SecretsManager;
    SecretTargetAttachment = "AWS::SecretsManager::SecretTargetAttachment", SecretsManager;
    DbSubnetGroup = "AWS::RDS::DBSubnetGroup", Rds;
    DbInstance = "AWS::RDS::DBInstance", Rds;
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.type_name())
    }
}

/// The type names of one group's kinds, in registration order (a `const`, so the lists
/// the daemon and the offline validator read are made from [`Kind`] and can't drift).
const fn names<const N: usize>(group: Group) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < Kind::ALL.len() {
        let k = Kind::ALL[i];
        if k.group() as u8 == group as u8 {
            out[n] = k.type_name();
            n += 1;
        }
        i += 1;
    }
    assert!(n == N, "the list's length is the group's number of kinds");
    out
}

/// The resource types [`crate::Ec2::register`] registers.
pub const EC2_TYPES: &[&str] = &names::<9>(Group::Ec2);
/// The resource types [`crate::Elb::register`] registers.
pub const ELBV2_TYPES: &[&str] = &names::<4>(Group::Elbv2);
/// The resource types [`crate::AutoScaling::register`] registers.
pub const AUTOSCALING_TYPES: &[&str] = &names::<5>(Group::AutoScaling);
/// The resource types [`crate::Route53::register`] registers.
pub const ROUTE53_TYPES: &[&str] = &names::<3>(Group::Route53);
/// The resource types [`crate::SecretsManager::register`] registers.
pub const SECRETSMANAGER_TYPES: &[&str] = &names::<2>(Group::SecretsManager);
/// The resource types [`crate::Rds::register`] registers.
pub const RDS_TYPES: &[&str] = &names::<2>(Group::Rds);

/// The kinds of one group, in registration order.
pub(crate) fn kinds_of(group: Group) -> impl Iterator<Item = Kind> {
    Kind::ALL
        .iter()
        .copied()
        .filter(move |k| k.group() == group)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_type_name_and_serde() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_type_name(k.type_name()), Some(*k));
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.type_name()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), *k);
        }
        assert_eq!(Kind::from_type_name("AWS::S3::Bucket"), None);
        assert_eq!(
            Kind::from_type_name("AWS::EC2::vpc"),
            None,
            "names are exact"
        );
    }

    #[test]
    fn the_group_lists_hold_every_kind_once() {
        let mut all: Vec<&str> = EC2_TYPES
            .iter()
            .chain(ELBV2_TYPES)
            .chain(AUTOSCALING_TYPES)
            .chain(ROUTE53_TYPES)
            .chain(SECRETSMANAGER_TYPES)
            .chain(RDS_TYPES)
            .copied()
            .collect();
        assert_eq!(all.len(), Kind::ALL.len());
        all.sort();
        all.dedup();
        assert_eq!(all.len(), Kind::ALL.len(), "no type is in two groups");
        for (group, list) in [
            (Group::Ec2, EC2_TYPES),
            (Group::Elbv2, ELBV2_TYPES),
            (Group::AutoScaling, AUTOSCALING_TYPES),
            (Group::Route53, ROUTE53_TYPES),
            (Group::SecretsManager, SECRETSMANAGER_TYPES),
            (Group::Rds, RDS_TYPES),
        ] {
            let from_kinds: Vec<&str> = kinds_of(group).map(Kind::type_name).collect();
            assert_eq!(from_kinds, list, "{group:?}");
        }
    }
}
