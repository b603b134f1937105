//! The providers' own template rules, run by validation before anything is created
//! (`Provider::validate`): what the registry schema can't say about Spindle.
//!
//! - Target groups: every `spindle.*` attribute key must be one Spindle knows (a typo would
//!   otherwise only fail at deploy, one at a time), and `spindle.tenant.source` one of its
//!   values.
//! - Subnets: two subnets of the same VPC (the same `VpcId` as written) must not overlap.
//! - Listeners: two listeners of the same load balancer must not share a port.
//! - Instances and launch templates: a [`SECCOMP_PROFILE_TAG`] must name a profile Spindle
//!   has; and ([`grants`], which needs the caller, so the daemon adds it beside the
//!   providers' rules) asking for one wider than the default needs [`SECCOMP_PROFILE_GRANT`].
//!
//! Rules look only at literal values; anything computed is known at deploy time, where the
//! provider checks it again. The functions are pure (a template in, diagnostics out), so
//! `spindle template validate` runs the same rules without a daemon.

use std::net::Ipv4Addr;

use spindle_template::ast::{Node, NodeKind};
use spindle_template::{Diagnostic, ResourceView};

use spindle_runtime::SeccompProfile;

use crate::elbv2_spec::SPINDLE_TG_ATTRIBUTES;
use crate::Kind;

/// The instance tag that asks for a seccomp profile other than the default: on an
/// `AWS::EC2::Instance`'s `Tags`, or in a launch template's `TagSpecifications` for
/// `ResourceType: instance` (so an auto scaling group's instances get it too). Its value is
/// a profile name ([`SeccompProfile::REQUESTABLE`], or `default`).
pub const SECCOMP_PROFILE_TAG: &str = "spindle:seccomp-profile";

/// The grant a caller needs to ask for a wider profile; admin-granted (only the exact name
/// carries it, and only the installation's admin credential can give it).
pub const SECCOMP_PROFILE_GRANT: &str = "instance:UseSeccompProfile";

/// The profile a tag value names, if a template may ask for it.
pub fn requestable_profile(name: &str) -> Option<SeccompProfile> {
    SeccompProfile::from_name(name)
        .filter(|p| *p == SeccompProfile::Default || SeccompProfile::REQUESTABLE.contains(p))
}

/// The names a tag value may take, for messages.
pub fn requestable_names() -> String {
    std::iter::once(SeccompProfile::Default)
        .chain(SeccompProfile::REQUESTABLE.iter().copied())
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one type with rules that isn't this crate's [`Kind`]: the stack engine's own.
const NESTED_STACK_TYPE: &str = "AWS::CloudFormation::Stack";

/// The rules of `view`'s type, whichever crate's provider implements it (the nested stack
/// provider lives in `spindle-stack`); empty for a type without rules. Every provider with
/// rules calls this from its `validate`, so a daemon and `template validate` without one
/// report the same.
pub fn check(view: &ResourceView<'_>) -> Vec<Diagnostic> {
    match Kind::from_type_name(view.type_name()) {
        Some(Kind::TargetGroup) => target_group(view),
        Some(Kind::Listener) => listener(view),
        Some(Kind::Subnet) => subnet(view),
        Some(Kind::Instance | Kind::LaunchTemplate) => seccomp_profile_names(view),
        None if view.type_name() == NESTED_STACK_TYPE => spindle_stack::nested_stack_rules(view),
        _ => Vec::new(),
    }
}

/// Every [`SECCOMP_PROFILE_TAG`] of an instance or a launch template's instance tags: the
/// `Value` node and its path relative to `Properties`. A key that isn't literal is not one.
fn seccomp_profile_tags<'a>(view: &ResourceView<'a>) -> Vec<(&'a Node, String)> {
    let tag_lists: Vec<(&'a Node, String)> = match Kind::from_type_name(view.type_name()) {
        Some(Kind::Instance) => view
            .property("Tags")
            .map(|t| (t, "Tags".to_string()))
            .into_iter()
            .collect(),
        Some(Kind::LaunchTemplate) => view
            .property("LaunchTemplateData")
            .and_then(|d| d.get("TagSpecifications"))
            .and_then(Node::as_list)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .filter(|(_, spec)| spec.get("ResourceType").and_then(Node::as_str) == Some("instance"))
            .filter_map(|(i, spec)| {
                let tags = spec.get("Tags")?;
                Some((
                    tags,
                    format!("LaunchTemplateData.TagSpecifications.{i}.Tags"),
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for (list, rel) in tag_lists {
        for (i, tag) in list.as_list().unwrap_or_default().iter().enumerate() {
            if tag.get("Key").and_then(Node::as_str) != Some(SECCOMP_PROFILE_TAG) {
                continue;
            }
            if let Some(v) = tag.get("Value") {
                out.push((v, format!("{rel}.{i}.Value")));
            }
        }
    }
    out
}

fn seccomp_profile_names(view: &ResourceView<'_>) -> Vec<Diagnostic> {
    seccomp_profile_tags(view)
        .into_iter()
        .filter_map(|(v, rel)| {
            let name = v.as_str()?;
            requestable_profile(name).is_none().then(|| {
                view.diag(
                    v.pos,
                    &rel,
                    format!(
                        "{SECCOMP_PROFILE_TAG} `{name}` is not a seccomp profile an instance can ask for (expected one of: {})",
                        requestable_names()
                    ),
                )
            })
        })
        .collect()
}

/// The rules that depend on the caller's admin-granted actions (`grants`, as
/// `Context::grants`): a [`SECCOMP_PROFILE_TAG`] other than a literal `default` needs
/// [`SECCOMP_PROFILE_GRANT`]. A computed value needs it too, since it may name a wider
/// profile.
pub fn grants(view: &ResourceView<'_>, grants: &[String]) -> Vec<Diagnostic> {
    if grants.iter().any(|g| g == SECCOMP_PROFILE_GRANT) {
        return Vec::new();
    }
    seccomp_profile_tags(view)
        .into_iter()
        .filter(|(v, _)| v.as_str() != Some(SeccompProfile::Default.name()))
        .map(|(v, rel)| {
            let what = match v.as_str() {
                Some(name) => format!("the `{name}` seccomp profile"),
                None => "a seccomp profile computed at deploy time".to_string(),
            };
            view.diag(v.pos, &rel, missing_grant(&what))
        })
        .collect()
}

/// The refusal when a caller asks for `what` (a wider profile) without the grant.
pub fn missing_grant(what: &str) -> String {
    format!(
        "{SECCOMP_PROFILE_TAG} asks for {what}, which needs the grant `{SECCOMP_PROFILE_GRANT}`; \
         the caller doesn't hold it (only the installation's admin credential can grant it, \
         naming it exactly in a key's or role's allow list, and the account's deny rules apply)"
    )
}

fn target_group(view: &ResourceView<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(attrs) = view
        .property("TargetGroupAttributes")
        .and_then(Node::as_list)
    else {
        return out;
    };
    for (i, a) in attrs.iter().enumerate() {
        let Some(key_node) = a.get("Key") else {
            continue;
        };
        let Some(key) = key_node.as_str() else {
            continue;
        };
        let rel = format!("TargetGroupAttributes.{i}.Key");
        if key.starts_with("spindle.") && !SPINDLE_TG_ATTRIBUTES.contains(&key) {
            let hint = spindle_template::suggest(key, SPINDLE_TG_ATTRIBUTES)
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            out.push(view.diag(
                key_node.pos,
                &rel,
                format!("unknown Spindle target group attribute `{key}`{hint}"),
            ));
        }
        if key == "spindle.tenant.source" {
            if let Some(v) = a.get("Value").filter(|v| v.as_str().is_some()) {
                let value = v.as_str().unwrap_or_default();
                if !matches!(value, "header" | "host" | "path") {
                    out.push(view.diag(
                        v.pos,
                        &format!("TargetGroupAttributes.{i}.Value"),
                        format!(
                            "spindle.tenant.source must be header, host or path, not `{value}`"
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// `a.b.c.d/n` as (network, prefix length); `None` unless literal and well formed.
fn ipv4_net(n: &Node) -> Option<(u32, u32)> {
    let (ip, len) = n.as_str()?.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((u32::from(ip) & mask, len))
}

fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

/// The same reference as written (`!Ref Vpc` and `{Ref: Vpc}` are the same node).
fn same(a: Option<&Node>, b: Option<&Node>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => !matches!(a.kind, NodeKind::Null) && a.to_json() == b.to_json(),
        _ => false,
    }
}

/// Whether `other` comes before `view` in the template (each pair is reported once, on the
/// later resource).
fn earlier(view: &ResourceView<'_>, other: &ResourceView<'_>) -> bool {
    other.resource.pos < view.resource.pos
}

fn subnet(view: &ResourceView<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(cidr_node) = view.property("CidrBlock") else {
        return out;
    };
    let Some(mine) = ipv4_net(cidr_node) else {
        return out;
    };
    let vpc = view.property("VpcId");
    for other in view.siblings(Kind::Subnet.type_name()) {
        if !earlier(view, &other) || !same(vpc, other.property("VpcId")) {
            continue;
        }
        let Some(theirs) = other.property("CidrBlock").and_then(ipv4_net) else {
            continue;
        };
        if overlaps(mine, theirs) {
            out.push(view.diag(
                cidr_node.pos,
                "CidrBlock",
                format!(
                    "CidrBlock {} overlaps subnet {} ({}) in the same VPC",
                    cidr_node.as_str().unwrap_or_default(),
                    other.logical_id(),
                    other
                        .property("CidrBlock")
                        .and_then(Node::as_str)
                        .unwrap_or_default()
                ),
            ));
        }
    }
    out
}

fn listener(view: &ResourceView<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(port_node) = view.property("Port") else {
        return out;
    };
    let Some(port) = port_node.scalar_text() else {
        return out;
    };
    let lb = view.property("LoadBalancerArn");
    for other in view.siblings(Kind::Listener.type_name()) {
        if !earlier(view, &other) || !same(lb, other.property("LoadBalancerArn")) {
            continue;
        }
        if other
            .property("Port")
            .and_then(Node::scalar_text)
            .as_deref()
            == Some(port.as_str())
        {
            out.push(view.diag(
                port_node.pos,
                "Port",
                format!(
                    "port {port} is already used by listener {} on the same load balancer",
                    other.logical_id()
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_template::{parse, validate, ValidateOptions};

    /// Validates `resources` with these rules and renders `line:col path: message`.
    fn run(resources: &str) -> Vec<String> {
        let src = format!("Resources:\n{resources}");
        let t = parse(&src, "t.yaml").unwrap_or_else(|d| panic!("{d}"));
        let rules = |v: &ResourceView<'_>| check(v);
        let opts = ValidateOptions {
            resource_rules: Some(&rules),
            ..ValidateOptions::default()
        };
        validate(&t, &opts)
            .iter()
            .map(|d| format!("{}:{} {}: {}", d.pos.line, d.pos.col, d.path, d.message))
            .collect()
    }

    #[test]
    fn spindle_attribute_keys_are_checked_with_a_suggestion() {
        let got = run(r#"  Tg:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 80
      Protocol: HTTP
      TargetGroupAttributes:
        - { Key: spindle.tenant.headr, Value: X-Tenant-Id }
        - { Key: spindle.tenant.source, Value: cookie }
        - { Key: spindle.tenant.queue.max, Value: "8" }
        - { Key: deregistration_delay.timeout_seconds, Value: "5" }
        - { Key: !Sub "spindle.${AWS::Region}", Value: x }
"#);
        assert_eq!(
            got,
            [
                "8:18 Resources.Tg.Properties.TargetGroupAttributes.0.Key: unknown Spindle target group attribute `spindle.tenant.headr`; did you mean `spindle.tenant.header`?",
                "9:48 Resources.Tg.Properties.TargetGroupAttributes.1.Value: spindle.tenant.source must be header, host or path, not `cookie`",
            ]
        );
    }

    #[test]
    fn overlapping_subnets_of_one_vpc() {
        let got = run(r#"  Vpc:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.0.0.0/16 }
  Other:
    Type: AWS::EC2::VPC
    Properties: { CidrBlock: 10.0.0.0/16 }
  A:
    Type: AWS::EC2::Subnet
    Properties: { VpcId: !Ref Vpc, CidrBlock: 10.0.0.0/24 }
  B:
    Type: AWS::EC2::Subnet
    Properties: { VpcId: !Ref Vpc, CidrBlock: 10.0.1.0/24 }
  C:
    Type: AWS::EC2::Subnet
    Properties: { VpcId: {Ref: Vpc}, CidrBlock: 10.0.0.128/25 }
  D:
    Type: AWS::EC2::Subnet
    Properties: { VpcId: !Ref Other, CidrBlock: 10.0.0.0/24 }
"#);
        assert_eq!(
            got,
            ["16:49 Resources.C.Properties.CidrBlock: CidrBlock 10.0.0.128/25 overlaps subnet A (10.0.0.0/24) in the same VPC"]
        );
    }

    #[test]
    fn a_port_twice_on_one_load_balancer() {
        let listener = |lb: &str, port: u16| {
            format!("    Type: AWS::ElasticLoadBalancingV2::Listener\n    Properties:\n      LoadBalancerArn: !Ref {lb}\n      Port: {port}\n      Protocol: HTTP\n      DefaultActions: [{{Type: fixed-response, FixedResponseConfig: {{StatusCode: \"200\"}}}}]\n")
        };
        let src = format!(
            "  Lb:\n    Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n  Lb2:\n    Type: AWS::ElasticLoadBalancingV2::LoadBalancer\n  L1:\n{}  L2:\n{}  L3:\n{}",
            listener("Lb", 80),
            listener("Lb", 80),
            listener("Lb2", 80)
        );
        assert_eq!(
            run(&src),
            ["17:13 Resources.L2.Properties.Port: port 80 is already used by listener L1 on the same load balancer"]
        );
    }

    const INSTANCE_AND_TEMPLATE: &str = r#"  I:
    Type: AWS::EC2::Instance
    Properties:
      ImageId: ami-1
      Tags:
        - { Key: Name, Value: box }
        - { Key: spindle:seccomp-profile, Value: devbox }
  Unknown:
    Type: AWS::EC2::Instance
    Properties:
      Tags: [{ Key: spindle:seccomp-profile, Value: unconfined }]
  Plain:
    Type: AWS::EC2::Instance
    Properties:
      Tags: [{ Key: spindle:seccomp-profile, Value: default }]
  Lt:
    Type: AWS::EC2::LaunchTemplate
    Properties:
      LaunchTemplateData:
        TagSpecifications:
          - ResourceType: volume
            Tags: [{ Key: spindle:seccomp-profile, Value: devbox }]
          - ResourceType: instance
            Tags: [{ Key: spindle:seccomp-profile, Value: !Ref AWS::Region }]
"#;

    #[test]
    fn a_seccomp_profile_tag_must_name_a_requestable_profile() {
        assert_eq!(
            run(INSTANCE_AND_TEMPLATE),
            ["12:53 Resources.Unknown.Properties.Tags.0.Value: spindle:seccomp-profile `unconfined` is not a seccomp profile an instance can ask for (expected one of: default, devbox)"]
        );
    }

    #[test]
    fn a_wider_seccomp_profile_needs_the_grant_even_when_computed() {
        let src = format!("Resources:\n{INSTANCE_AND_TEMPLATE}");
        let t = parse(&src, "t.yaml").unwrap();
        let render = |held: &[String]| -> Vec<String> {
            let rules = |v: &ResourceView<'_>| grants(v, held);
            let opts = ValidateOptions {
                resource_rules: Some(&rules),
                ..ValidateOptions::default()
            };
            validate(&t, &opts)
                .iter()
                .map(|d| format!("{}:{} {}", d.pos.line, d.pos.col, d.path))
                .collect()
        };
        assert_eq!(
            render(&[]),
            [
                "8:50 Resources.I.Properties.Tags.1.Value",
                "12:53 Resources.Unknown.Properties.Tags.0.Value",
                "25:59 Resources.Lt.Properties.LaunchTemplateData.TagSpecifications.1.Tags.0.Value",
            ]
        );
        assert!(render(&[SECCOMP_PROFILE_GRANT.to_string()]).is_empty());
        assert!(
            render(&["instance:*".to_string()]).len() == 3,
            "only the exact grant"
        );
        let t = parse(&src, "t.yaml").unwrap();
        let view = ResourceView {
            template: &t,
            resource: &t.resources[0],
        };
        let msg = &grants(&view, &[])[0].message;
        assert!(msg.contains("`devbox` seccomp profile"), "{msg}");
        assert!(
            msg.contains("needs the grant `instance:UseSeccompProfile`"),
            "{msg}"
        );
    }

    #[test]
    fn cidr_arithmetic() {
        let n = |s: &str| ipv4_net(&Node::string(Default::default(), s));
        assert!(overlaps(
            n("10.0.0.0/16").unwrap(),
            n("10.0.5.0/24").unwrap()
        ));
        assert!(!overlaps(
            n("10.0.0.0/24").unwrap(),
            n("10.0.1.0/24").unwrap()
        ));
        assert!(overlaps(
            n("0.0.0.0/0").unwrap(),
            n("192.168.1.1/32").unwrap()
        ));
        assert_eq!(n("10.0.0.0/33"), None);
        assert_eq!(n("10.0.0/24"), None);
    }
}
