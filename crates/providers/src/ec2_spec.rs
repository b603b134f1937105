//! The EC2 resources' properties, parsed once into typed specs.
//!
//! A create or update parses the resolved properties into a spec and refuses them with every
//! problem at once, each naming its property path (`SecurityGroupIngress[1]`,
//! `LaunchTemplateData.UserData`); the providers then work from typed fields and never read
//! the raw properties again. A launch template's record keeps the parsed data of each
//! version (parsed again when the record is loaded), so launching from it reads typed fields.
//! What a spec can't know — whether a VPC or subnet exists, whether an image is the account's,
//! whether the caller holds a grant — is checked when the resource is made.

use std::collections::BTreeMap;

use spindle_runtime::{Ipv4Net, Peer, Protocol, SeccompProfile, SgRule};
use spindle_template::Value;

use crate::error::Ec2Error;
use crate::props::{base64_decode, Problems, Props, Shape};
use crate::rules::{requestable_names, requestable_profile, SECCOMP_PROFILE_TAG};
use crate::Kind;

// ---------------------------------------------------------------------------------- shapes

pub(crate) const VPC: Shape = Shape {
    type_name: Kind::Vpc.type_name(),
    used: &["CidrBlock", "EnableDnsHostnames", "EnableDnsSupport"],
    ignored: &["InstanceTenancy", "Tags"],
    hints: &[
        (
            "Ipv4IpamPoolId",
            "give the VPC a CidrBlock (IPAM pools are not implemented)",
        ),
        (
            "Ipv4NetmaskLength",
            "give the VPC a CidrBlock (IPAM pools are not implemented)",
        ),
    ],
};

pub(crate) const SUBNET: Shape = Shape {
    type_name: Kind::Subnet.type_name(),
    used: &["VpcId", "CidrBlock"],
    ignored: &[
        "AvailabilityZone",
        "AvailabilityZoneId",
        "MapPublicIpOnLaunch",
        "EnableDns64",
        "PrivateDnsNameOptionsOnLaunch",
        "Tags",
    ],
    hints: &[
        ("Ipv6CidrBlock", "IPv6 is not implemented"),
        ("Ipv6Native", "IPv6 is not implemented"),
        ("AssignIpv6AddressOnCreation", "IPv6 is not implemented"),
        (
            "Ipv4IpamPoolId",
            "give the subnet a CidrBlock (IPAM pools are not implemented)",
        ),
        ("OutpostArn", "Outposts are not implemented"),
    ],
};

pub(crate) const SECURITY_GROUP: Shape = Shape {
    type_name: Kind::SecurityGroup.type_name(),
    used: &[
        "GroupDescription",
        "VpcId",
        "SecurityGroupIngress",
        "SecurityGroupEgress",
    ],
    ignored: &["GroupName", "Tags"],
    hints: &[],
};

pub(crate) const INGRESS: Shape = Shape {
    type_name: Kind::SecurityGroupIngress.type_name(),
    used: &[
        "GroupId",
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "SourceSecurityGroupId",
    ],
    ignored: &["Description", "SourceSecurityGroupOwnerId"],
    hints: &[
        ("GroupName", "use GroupId"),
        ("SourceSecurityGroupName", "use SourceSecurityGroupId"),
        ("CidrIpv6", "IPv6 is not implemented"),
        ("SourcePrefixListId", "prefix lists are not implemented"),
    ],
};

pub(crate) const EGRESS: Shape = Shape {
    type_name: Kind::SecurityGroupEgress.type_name(),
    used: &[
        "GroupId",
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "DestinationSecurityGroupId",
    ],
    ignored: &["Description"],
    hints: &[
        ("CidrIpv6", "IPv6 is not implemented"),
        (
            "DestinationPrefixListId",
            "prefix lists are not implemented",
        ),
    ],
};

/// The rule item shape inside a `SecurityGroup` resource, for errors and key checks.
const INLINE_INGRESS: Shape = Shape {
    type_name: Kind::SecurityGroup.type_name(),
    used: &[
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "SourceSecurityGroupId",
    ],
    ignored: &["Description", "SourceSecurityGroupOwnerId"],
    hints: INGRESS.hints,
};

const INLINE_EGRESS: Shape = Shape {
    type_name: Kind::SecurityGroup.type_name(),
    used: &[
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "DestinationSecurityGroupId",
    ],
    ignored: &["Description"],
    hints: EGRESS.hints,
};

pub(crate) const PEERING: Shape = Shape {
    type_name: Kind::VpcPeeringConnection.type_name(),
    used: &["VpcId", "PeerVpcId", "PeerOwnerId", "PeerRegion"],
    ignored: &["PeerRoleArn", "Tags"],
    hints: &[],
};

pub(crate) const INSTANCE: Shape = Shape {
    type_name: Kind::Instance.type_name(),
    used: &[
        "ImageId",
        "InstanceType",
        "SubnetId",
        "SecurityGroupIds",
        "UserData",
        "Tags",
        "LaunchTemplate",
    ],
    ignored: &[
        "AvailabilityZone",
        "BlockDeviceMappings",
        "CreditSpecification",
        "DisableApiTermination",
        "EbsOptimized",
        "IamInstanceProfile",
        "InstanceInitiatedShutdownBehavior",
        "KeyName",
        "MetadataOptions",
        "Monitoring",
        "PrivateDnsNameOptions",
        "PropagateTagsToVolumeOnCreation",
        "SourceDestCheck",
        "Tenancy",
    ],
    hints: &[
        ("NetworkInterfaces", "use SubnetId and SecurityGroupIds"),
        (
            "PrivateIpAddress",
            "addresses are assigned by the subnet's address pool",
        ),
        (
            "SecurityGroups",
            "use SecurityGroupIds (there is no default VPC)",
        ),
        ("Volumes", "EBS volumes are not implemented"),
        ("Ipv6Addresses", "IPv6 is not implemented"),
        ("Ipv6AddressCount", "IPv6 is not implemented"),
    ],
};

pub(crate) const LAUNCH_TEMPLATE: Shape = Shape {
    type_name: Kind::LaunchTemplate.type_name(),
    used: &["LaunchTemplateName", "LaunchTemplateData"],
    ignored: &["TagSpecifications", "VersionDescription"],
    hints: &[],
};

/// The keys of `LaunchTemplateData`.
pub(crate) const LAUNCH_TEMPLATE_DATA: Shape = Shape {
    type_name: Kind::LaunchTemplate.type_name(),
    used: &[
        "ImageId",
        "InstanceType",
        "UserData",
        "SecurityGroupIds",
        "TagSpecifications",
    ],
    ignored: &[
        "BlockDeviceMappings",
        "CreditSpecification",
        "DisableApiTermination",
        "EbsOptimized",
        "IamInstanceProfile",
        "InstanceInitiatedShutdownBehavior",
        "KeyName",
        "MetadataOptions",
        "Monitoring",
        "PrivateDnsNameOptions",
    ],
    hints: &[
        (
            "NetworkInterfaces",
            "give the subnet at launch (the instance's SubnetId or the group's VPCZoneIdentifier) and use SecurityGroupIds",
        ),
        ("SecurityGroups", "use SecurityGroupIds"),
        ("InstanceMarketOptions", "spot instances are not implemented"),
    ],
};

// ------------------------------------------------------------------------------- helpers

/// Joins a path and a key (`LaunchTemplateData` + `UserData`).
fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A CIDR at `key` (required or not).
fn cidr(s: &Shape, p: &Props, key: &str, required: bool, e: &mut Problems) -> Option<Ipv4Net> {
    let text = if required {
        e.take("", s.req_str(p, key))?
    } else {
        e.take("", s.opt_str(p, key))??
    };
    text.parse::<Ipv4Net>()
        .map_err(|err| e.add("", format!("{key} {text}: {err}")))
        .ok()
}

// ---------------------------------------------------------------------------- networks

/// `AWS::EC2::VPC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VpcSpec {
    pub cidr: Ipv4Net,
    /// `EnableDnsSupport` (default true): the resolver at the CIDR's base + 2 answers.
    pub dns_support: bool,
    /// `EnableDnsHostnames` (default false): the resolver answers the instances' host names
    /// (`ip-A-B-C-D.ec2.internal` and their pointers); needs `EnableDnsSupport`.
    pub dns_hostnames: bool,
}

impl VpcSpec {
    pub fn parse(p: &Props) -> Result<VpcSpec, String> {
        let s = &VPC;
        let mut e = Problems::new(Kind::Vpc);
        e.unknown("", s, p);
        let dns_support = e
            .take("", s.opt_bool(p, "EnableDnsSupport"))
            .flatten()
            .unwrap_or(true);
        let dns_hostnames = e
            .take("", s.opt_bool(p, "EnableDnsHostnames"))
            .flatten()
            .unwrap_or(false);
        if dns_hostnames && !dns_support {
            e.add(
                "EnableDnsHostnames",
                "host names are answered by the VPC's resolver: they need EnableDnsSupport: true",
            );
        }
        let spec = cidr(s, p, "CidrBlock", true, &mut e).map(|cidr| VpcSpec {
            cidr,
            dns_support,
            dns_hostnames,
        });
        e.finish(spec)
    }
}

/// `AWS::EC2::Subnet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubnetSpec {
    pub vpc: String,
    pub cidr: Ipv4Net,
    pub availability_zone: Option<String>,
}

impl SubnetSpec {
    pub fn parse(p: &Props) -> Result<SubnetSpec, String> {
        let s = &SUBNET;
        let mut e = Problems::new(Kind::Subnet);
        e.unknown("", s, p);
        let vpc = e.take("", s.req_str(p, "VpcId"));
        let cidr = cidr(s, p, "CidrBlock", true, &mut e);
        let az = e.take("", s.opt_str(p, "AvailabilityZone"));
        let spec = match (vpc, cidr, az) {
            (Some(vpc), Some(cidr), Some(availability_zone)) => Some(SubnetSpec {
                vpc,
                cidr,
                availability_zone,
            }),
            _ => None,
        };
        e.finish(spec)
    }
}

/// One CloudFormation rule (a `SecurityGroupIngress` item or a standalone resource) as an
/// [`SgRule`]; its problems are recorded at `path`.
fn rule(shape: &Shape, m: &Props, egress: bool, path: &str, e: &mut Problems) -> Option<SgRule> {
    e.unknown(path, shape, m);
    let proto = e.take(path, shape.req_str(m, "IpProtocol"))?;
    let protocol = match proto.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Protocol::Tcp,
        "udp" | "17" => Protocol::Udp,
        "icmp" | "1" => Protocol::Icmp,
        "-1" | "all" => Protocol::All,
        other => {
            e.add(
                path,
                format!("IpProtocol {other} is not supported (tcp, udp, icmp or -1)"),
            );
            return None;
        }
    };
    let mut ports_ok = true;
    let (from_port, to_port) = match protocol {
        Protocol::Tcp | Protocol::Udp => {
            let mut port = |key: &str, all: u16| -> u16 {
                let n = match e.take(path, shape.opt_int(m, key)) {
                    None => None,
                    Some(None) => {
                        e.add(path, format!("{key} is required for IpProtocol {proto}"));
                        None
                    }
                    Some(Some(-1)) => Some(all),
                    Some(Some(n)) => u16::try_from(n)
                        .map_err(|_| e.add(path, format!("{key} {n} is not a port")))
                        .ok(),
                };
                n.unwrap_or_else(|| {
                    ports_ok = false;
                    0
                })
            };
            (port("FromPort", 0), port("ToPort", 65535))
        }
        // ICMP type and code are not filtered on; the rule allows all of ICMP.
        Protocol::Icmp | Protocol::All => (0, 0),
    };
    let group_key = if egress {
        "DestinationSecurityGroupId"
    } else {
        "SourceSecurityGroupId"
    };
    let cidr_text = e.take(path, shape.opt_str(m, "CidrIp"))?;
    let group = e.take(path, shape.opt_str(m, group_key))?;
    let peer = match (cidr_text, group) {
        (Some(c), None) => Peer::Cidr(
            c.parse::<Ipv4Net>()
                .map_err(|err| e.add(path, format!("CidrIp {c}: {err}")))
                .ok()?,
        ),
        (None, Some(g)) => Peer::Group(g),
        (Some(_), Some(_)) => {
            e.add(
                path,
                format!("a rule takes CidrIp or {group_key}, not both"),
            );
            return None;
        }
        (None, None) => {
            e.add(path, format!("a rule needs CidrIp or {group_key}"));
            return None;
        }
    };
    if !ports_ok {
        return None;
    }
    let r = SgRule {
        protocol,
        from_port,
        to_port,
        peer,
    };
    r.validate().map_err(|err| e.add(path, err)).ok()?;
    Some(r)
}

/// Parses a list of rule items at `key`; `None` when the key is absent.
fn rules(
    p: &Props,
    key: &str,
    item: &Shape,
    egress: bool,
    e: &mut Problems,
) -> Option<Option<Vec<SgRule>>> {
    let items = e.take("", SECURITY_GROUP.map_list(p, key))?;
    let Some(items) = items else {
        return Some(None);
    };
    let parsed: Vec<Option<SgRule>> = items
        .into_iter()
        .enumerate()
        .map(|(i, m)| rule(item, m, egress, &format!("{key}[{i}]"), e))
        .collect();
    parsed.into_iter().collect::<Option<Vec<_>>>().map(Some)
}

/// `AWS::EC2::SecurityGroup`: its VPC and inline rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupSpec {
    pub vpc: String,
    pub ingress: Vec<SgRule>,
    /// `None`: the default allow-all egress.
    pub egress: Option<Vec<SgRule>>,
}

impl GroupSpec {
    pub fn parse(p: &Props) -> Result<GroupSpec, String> {
        let s = &SECURITY_GROUP;
        let mut e = Problems::new(Kind::SecurityGroup);
        e.unknown("", s, p);
        let description = e.take("", s.req_str(p, "GroupDescription"));
        let vpc = match e.take("", s.opt_str(p, "VpcId")) {
            Some(None) => {
                e.add("", "VpcId is required (Spindle has no default VPC)");
                None
            }
            v => v.flatten(),
        };
        let ingress = rules(p, "SecurityGroupIngress", &INLINE_INGRESS, false, &mut e);
        let egress = rules(p, "SecurityGroupEgress", &INLINE_EGRESS, true, &mut e);
        let spec = match (description, vpc, ingress, egress) {
            (Some(_), Some(vpc), Some(ingress), Some(egress)) => Some(GroupSpec {
                vpc,
                ingress: ingress.unwrap_or_default(),
                egress,
            }),
            _ => None,
        };
        e.finish(spec)
    }
}

/// `AWS::EC2::SecurityGroupIngress` / `Egress`: one rule of an existing group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    pub group: String,
    pub rule: SgRule,
}

impl RuleSpec {
    pub fn parse(p: &Props, egress: bool) -> Result<RuleSpec, String> {
        let (kind, s) = if egress {
            (Kind::SecurityGroupEgress, &EGRESS)
        } else {
            (Kind::SecurityGroupIngress, &INGRESS)
        };
        let mut e = Problems::new(kind);
        let group = e.take("", s.req_str(p, "GroupId"));
        let mut rule_props = p.clone();
        rule_props.remove("GroupId");
        let r = rule(s, &rule_props, egress, "", &mut e);
        let spec = group.zip(r).map(|(group, rule)| RuleSpec { group, rule });
        e.finish(spec)
    }
}

/// `AWS::EC2::VPCPeeringConnection`, within the stack's own account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeeringSpec {
    pub vpc: String,
    pub peer: String,
}

impl PeeringSpec {
    /// `account` and `region` are the stack's: peering across either is refused.
    pub fn parse(p: &Props, account: &str, region: &str) -> Result<PeeringSpec, String> {
        let s = &PEERING;
        let mut e = Problems::new(Kind::VpcPeeringConnection);
        e.unknown("", s, p);
        let vpc = e.take("", s.req_str(p, "VpcId"));
        let peer = e.take("", s.req_str(p, "PeerVpcId"));
        for (key, own, what) in [
            ("PeerOwnerId", account, "accounts"),
            ("PeerRegion", region, "regions"),
        ] {
            if let Some(Some(v)) = e.take("", s.opt_str(p, key)) {
                if v != own {
                    let hint = format!("peering across {what} is not implemented");
                    e.ec2("", Ec2Error::unsupported(s.type_name, key, &hint));
                }
            }
        }
        let spec = vpc.zip(peer).map(|(vpc, peer)| PeeringSpec { vpc, peer });
        e.finish(spec)
    }
}

// --------------------------------------------------------------------------- instances

/// What an instance is launched with, from its own properties or a launch template's data.
/// `tags` still hold the [`SECCOMP_PROFILE_TAG`] (checked when parsed), since an instance's
/// own tags and a group's tags may override the template's before it is taken out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LaunchData {
    pub image: Option<String>,
    pub instance_type: Option<String>,
    pub security_groups: Option<Vec<String>>,
    pub user_data: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl LaunchData {
    /// Layers `over` on top of `self`: its values win, its tags are added.
    pub fn overlay(mut self, over: &LaunchData) -> LaunchData {
        self.tags.extend(over.tags.clone());
        LaunchData {
            image: over.image.clone().or(self.image),
            instance_type: over.instance_type.clone().or(self.instance_type),
            security_groups: over.security_groups.clone().or(self.security_groups),
            user_data: over.user_data.clone().or(self.user_data),
            tags: self.tags,
        }
    }

    /// The seccomp profile the tags ask for (the default without the tag).
    pub fn profile(&self) -> Result<SeccompProfile, String> {
        profile_of(&self.tags)
    }

    /// Parses `LaunchTemplateData` (checked strictly); problems are recorded at `path`.
    pub fn parse_template_data(data: &Props, path: &str, e: &mut Problems) -> Option<LaunchData> {
        let s = &LAUNCH_TEMPLATE_DATA;
        e.unknown(path, s, data);
        let mut tags = Some(BTreeMap::new());
        let specs = e.take(path, s.map_list(data, "TagSpecifications"));
        for (i, spec) in specs.flatten().unwrap_or_default().into_iter().enumerate() {
            let here = at(path, &format!("TagSpecifications[{i}]"));
            if e.take(&here, s.opt_str(spec, "ResourceType"))
                .flatten()
                .as_deref()
                == Some("instance")
            {
                match (e.take(&here, s.tags(spec, "Tags")), tags.as_mut()) {
                    (Some(t), Some(all)) => all.extend(t),
                    _ => tags = None,
                }
            }
        }
        Self::fields(s, data, path, tags, e)
    }

    /// Parses an instance's own launch properties (not its subnet or template).
    fn parse_own(p: &Props, e: &mut Problems) -> Option<LaunchData> {
        let tags = e.take("", INSTANCE.tags(p, "Tags"));
        Self::fields(&INSTANCE, p, "", tags, e)
    }

    fn fields(
        s: &Shape,
        p: &Props,
        path: &str,
        tags: Option<BTreeMap<String, String>>,
        e: &mut Problems,
    ) -> Option<LaunchData> {
        let image = e.take(path, s.opt_str(p, "ImageId"));
        let instance_type = e.take(path, s.opt_str(p, "InstanceType"));
        let security_groups = if p.contains_key("SecurityGroupIds") {
            e.take(path, s.str_list(p, "SecurityGroupIds")).map(Some)
        } else {
            Some(None)
        };
        let user_data = match e.take(path, s.opt_str(p, "UserData")) {
            Some(Some(u)) => decode_user_data(&u)
                .map_err(|m| e.add(path, m))
                .ok()
                .map(Some),
            other => other,
        };
        if let Some(t) = &tags {
            if let Err(m) = profile_of(t) {
                e.add(path, m);
            }
        }
        Some(LaunchData {
            image: image?,
            instance_type: instance_type?,
            security_groups: security_groups?,
            user_data: user_data?,
            tags: tags?,
        })
    }
}

fn decode_user_data(text: &str) -> Result<String, &'static str> {
    let bytes =
        base64_decode(text).ok_or("UserData must be base64 (wrap the script in Fn::Base64)")?;
    String::from_utf8(bytes).map_err(|_| "UserData must decode to UTF-8 text")
}

fn profile_of(tags: &BTreeMap<String, String>) -> Result<SeccompProfile, String> {
    match tags.get(SECCOMP_PROFILE_TAG) {
        None => Ok(SeccompProfile::Default),
        Some(name) => requestable_profile(name).ok_or_else(|| {
            format!(
                "tag {SECCOMP_PROFILE_TAG} `{name}` is not a seccomp profile an instance can ask for (expected one of: {})",
                requestable_names()
            )
        }),
    }
}

/// Takes the [`SECCOMP_PROFILE_TAG`] out of `tags` (it is a setting, not a tag the instance
/// keeps) and returns the profile it names; the default without one.
pub(crate) fn take_profile(
    shape: &Shape,
    tags: &mut BTreeMap<String, String>,
) -> Result<SeccompProfile, Ec2Error> {
    let profile = profile_of(tags).map_err(|m| shape.invalid(m))?;
    tags.remove(SECCOMP_PROFILE_TAG);
    Ok(profile)
}

/// An instance's `LaunchTemplate` property: a template id or name and a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateRef {
    pub template: String,
    pub version: Option<String>,
}

/// `AWS::EC2::Instance`: its own launch properties, laid over its launch template's data
/// when it is launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceSpec {
    pub template: Option<TemplateRef>,
    pub own: LaunchData,
    pub subnet: String,
}

impl InstanceSpec {
    pub fn parse(p: &Props) -> Result<InstanceSpec, String> {
        let s = &INSTANCE;
        let mut e = Problems::new(Kind::Instance);
        e.unknown("", s, p);
        let template = match p.get("LaunchTemplate") {
            None | Some(Value::Null | Value::NoValue) => Some(None),
            Some(Value::Map(lt)) => {
                let id = e.take("LaunchTemplate", s.opt_str(lt, "LaunchTemplateId"));
                let name = e.take("LaunchTemplate", s.opt_str(lt, "LaunchTemplateName"));
                let version = e.take("LaunchTemplate", s.opt_str(lt, "Version"));
                match (id.zip(name), version) {
                    (Some((Some(template), _) | (None, Some(template))), Some(version)) => {
                        Some(Some(TemplateRef { template, version }))
                    }
                    (Some((None, None)), _) => {
                        e.add(
                            "",
                            "LaunchTemplate needs LaunchTemplateId or LaunchTemplateName",
                        );
                        None
                    }
                    _ => None,
                }
            }
            Some(v) => {
                e.add("", format!("LaunchTemplate must be a map, got {v}"));
                None
            }
        };
        let own = LaunchData::parse_own(p, &mut e);
        let subnet = match e.take("", s.opt_str(p, "SubnetId")) {
            Some(None) => {
                e.add("", "SubnetId is required (Spindle has no default VPC)");
                None
            }
            v => v.flatten(),
        };
        let spec = match (template, own, subnet) {
            (Some(template), Some(own), Some(subnet)) => Some(InstanceSpec {
                template,
                own,
                subnet,
            }),
            _ => None,
        };
        e.finish(spec)
    }
}

/// `AWS::EC2::LaunchTemplate`: its name (derived from the stack when absent) and data.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LaunchTemplateSpec {
    pub name: Option<String>,
    pub data: LaunchData,
    /// The data as written, kept as the version's stored form.
    pub raw: Props,
}

impl LaunchTemplateSpec {
    pub fn parse(p: &Props) -> Result<LaunchTemplateSpec, String> {
        let s = &LAUNCH_TEMPLATE;
        let mut e = Problems::new(Kind::LaunchTemplate);
        e.unknown("", s, p);
        let raw = match p.get("LaunchTemplateData") {
            Some(Value::Map(m)) => Some(m.clone()),
            Some(v) => {
                e.add("", format!("LaunchTemplateData must be a map, got {v}"));
                None
            }
            None => {
                e.add("", "LaunchTemplateData is required");
                None
            }
        };
        let data = raw
            .as_ref()
            .and_then(|d| LaunchData::parse_template_data(d, "LaunchTemplateData", &mut e));
        let name = e.take("", s.opt_str(p, "LaunchTemplateName"));
        if let Some(Some(n)) = &name {
            if let Err(m) = check_template_name(n) {
                e.add("", m);
            }
        }
        let spec = match (name, data, raw) {
            (Some(name), Some(data), Some(raw)) => Some(LaunchTemplateSpec { name, data, raw }),
            _ => None,
        };
        e.finish(spec)
    }
}

/// A launch template name: 3 to 128 characters of letters, digits and `( ) . / _ -`.
pub(crate) fn check_template_name(name: &str) -> Result<(), String> {
    if name.len() < 3
        || name.len() > 128
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "()./_-".contains(c))
    {
        return Err(format!(
            "LaunchTemplateName `{name}` must be 3 to 128 characters of letters, digits and ( ) . / _ -"
        ));
    }
    Ok(())
}

/// Parses one stored launch template version (`LaunchTemplateData` as JSON).
pub(crate) fn stored_version(v: &serde_json::Value) -> Result<LaunchData, String> {
    let mut e = Problems::new(Kind::LaunchTemplate);
    let data = match Value::from_json(v) {
        Value::Map(m) => LaunchData::parse_template_data(&m, "LaunchTemplateData", &mut e),
        _ => {
            e.add("", "a stored LaunchTemplateData is not a map");
            None
        }
    };
    e.finish(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: serde_json::Value) -> Props {
        match Value::from_json(&v) {
            Value::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    /// `(kind, properties, every fragment the one error must hold)`.
    type Case = (&'static str, serde_json::Value, &'static [&'static str]);

    fn parse(kind: &str, p: &Props) -> Result<(), String> {
        match kind {
            "vpc" => VpcSpec::parse(p).map(drop),
            "subnet" => SubnetSpec::parse(p).map(drop),
            "sg" => GroupSpec::parse(p).map(drop),
            "ingress" => RuleSpec::parse(p, false).map(drop),
            "egress" => RuleSpec::parse(p, true).map(drop),
            "pcx" => PeeringSpec::parse(p, "111111111111", "us-east-1").map(drop),
            "instance" => InstanceSpec::parse(p).map(drop),
            "lt" => LaunchTemplateSpec::parse(p).map(drop),
            other => panic!("unknown case kind {other}"),
        }
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path() {
        let cases: &[Case] = &[
            (
                "vpc",
                json!({"CidrBlok": "10.0.0.0/16"}),
                &[
                    "AWS::EC2::VPC: property CidrBlok is not supported by Spindle",
                    "CidrBlock is required",
                ],
            ),
            (
                "vpc",
                json!({"CidrBlock": "10.0.0.0/33"}),
                &["AWS::EC2::VPC: CidrBlock 10.0.0.0/33: "],
            ),
            (
                "vpc",
                json!({"CidrBlock": "10.0.0.0/16", "EnableDnsSupport": false,
                       "EnableDnsHostnames": true}),
                &["EnableDnsHostnames: host names are answered by the VPC's resolver: they need EnableDnsSupport: true"],
            ),
            (
                "vpc",
                json!({"CidrBlock": "10.0.0.0/16", "EnableDnsHostnames": "maybe"}),
                &["EnableDnsHostnames must be true or false, got"],
            ),
            (
                "subnet",
                json!({"CidrBlock": "nope", "Ipv6Native": true}),
                &[
                    "property Ipv6Native is not supported by Spindle; IPv6 is not implemented",
                    "VpcId is required",
                    "CidrBlock nope: ",
                ],
            ),
            (
                "sg",
                json!({"VpcId": "vpc-1", "SecurityGroupIngress": [
                    {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0"},
                    {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80},
                    {"IpProtocol": "gre", "CidrIp": "0.0.0.0/0"}],
                    "SecurityGroupEgress": [{"IpProtocol": "udp", "ToPort": "x", "CidrIp": "10.0.0.0/8"}]}),
                &[
                    "GroupDescription is required",
                    "SecurityGroupIngress[1]: a rule needs CidrIp or SourceSecurityGroupId",
                    "SecurityGroupIngress[2]: IpProtocol gre is not supported (tcp, udp, icmp or -1)",
                    "SecurityGroupEgress[0]: FromPort is required for IpProtocol udp",
                    "SecurityGroupEgress[0]: ToPort must be an integer, got x",
                ],
            ),
            (
                "sg",
                json!({"GroupDescription": "d"}),
                &["VpcId is required (Spindle has no default VPC)"],
            ),
            (
                "ingress",
                json!({"IpProtocol": "tcp", "FromPort": 70000, "ToPort": 80, "CidrIp": "0.0.0.0/0", "SourceSecurityGroupId": "sg-1"}),
                &[
                    "AWS::EC2::SecurityGroupIngress: GroupId is required",
                    "FromPort 70000 is not a port",
                    "a rule takes CidrIp or SourceSecurityGroupId, not both",
                ],
            ),
            (
                "egress",
                json!({"GroupId": "sg-1", "IpProtocol": "-1", "DestinationPrefixListId": "pl-1"}),
                &[
                    "property DestinationPrefixListId is not supported by Spindle; prefix lists are not implemented",
                    "a rule needs CidrIp or DestinationSecurityGroupId",
                ],
            ),
            (
                "pcx",
                json!({"VpcId": "vpc-1", "PeerOwnerId": "222222222222", "PeerRegion": "eu-west-1"}),
                &[
                    "PeerVpcId is required",
                    "property PeerOwnerId is not supported by Spindle; peering across accounts is not implemented",
                    "property PeerRegion is not supported by Spindle; peering across regions is not implemented",
                ],
            ),
            (
                "instance",
                json!({"ImageId": "web:1", "UserData": "#!/bin/sh", "LaunchTemplate": {"Version": "1"},
                       "Tags": [{"Key": "spindle:seccomp-profile", "Value": "unconfined"}]}),
                &[
                    "LaunchTemplate needs LaunchTemplateId or LaunchTemplateName",
                    "UserData must be base64 (wrap the script in Fn::Base64)",
                    "tag spindle:seccomp-profile `unconfined` is not a seccomp profile an instance can ask for",
                    "SubnetId is required (Spindle has no default VPC)",
                ],
            ),
            (
                "lt",
                json!({"LaunchTemplateName": "x", "LaunchTemplateData": {
                    "SecurityGroups": ["a"], "InstanceType": ["t3.micro"],
                    "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "aws:x", "Value": "1"}]}]}}),
                &[
                    "LaunchTemplateData: property SecurityGroups is not supported by Spindle; use SecurityGroupIds",
                    "LaunchTemplateData: InstanceType must be a string",
                    "LaunchTemplateData.TagSpecifications[0]: tag key aws:x: the aws: prefix is reserved",
                    "LaunchTemplateName `x` must be 3 to 128 characters",
                ],
            ),
            ("lt", json!({}), &["LaunchTemplateData is required"]),
        ];
        for (i, (kind, p, want)) in cases.iter().enumerate() {
            let err = parse(kind, &props(p.clone())).expect_err(&format!("case {i} must fail"));
            for w in *want {
                assert!(err.contains(w), "case {i}: `{w}` missing from: {err}");
            }
        }
    }

    #[test]
    fn good_properties_parse_into_typed_specs() {
        let g = GroupSpec::parse(&props(json!({"GroupDescription": "web", "VpcId": "vpc-1",
            "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": "-1", "CidrIp": "10.0.0.0/8"}]})))
        .unwrap();
        assert_eq!(
            g,
            GroupSpec {
                vpc: "vpc-1".into(),
                ingress: vec![SgRule {
                    protocol: Protocol::Tcp,
                    from_port: 80,
                    to_port: 65535,
                    peer: Peer::Cidr("10.0.0.0/8".parse().unwrap()),
                }],
                egress: None,
            }
        );
        let i = InstanceSpec::parse(&props(json!({"SubnetId": "subnet-1",
            "LaunchTemplate": {"LaunchTemplateName": "web", "Version": "2"},
            "UserData": "aGkK", "Tags": [{"Key": "spindle:seccomp-profile", "Value": "devbox"}]})))
        .unwrap();
        assert_eq!(
            i.template,
            Some(TemplateRef {
                template: "web".into(),
                version: Some("2".into())
            })
        );
        assert_eq!(i.own.user_data.as_deref(), Some("hi\n"));
        assert_eq!(i.own.profile(), Ok(SeccompProfile::Devbox));
        let base = LaunchData {
            image: Some("web:1".into()),
            instance_type: Some("t3.micro".into()),
            ..Default::default()
        };
        let merged = base.overlay(&i.own);
        assert_eq!(
            (merged.image.as_deref(), merged.user_data.as_deref()),
            (Some("web:1"), Some("hi\n"))
        );
    }
}
