//! EC2's describes of what an account's stacks made (VPCs, subnets, security groups) and of
//! its images. The runtime's networks carry no owner, so ownership comes from the account's
//! stacks: a VPC is the caller's when one of its live stacks has it as a resource. The
//! addresses and rules come from the runtime, as it runs them.

use super::cloudformation::live_views;
use super::{AwsError, AwsResult, Input};
use crate::app::App;
use crate::stacks::REGION;
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_model::AccountId;
use spindle_runtime::{Peer, Protocol, SgRule};
use std::collections::BTreeSet;

pub fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    match op.name {
        "DescribeVpcs" => {
            let ids = input.indexed("VpcId.");
            input.set_target(op, &ids.join(","));
            let mine = owned(app, &account, "AWS::EC2::VPC")?;
            check_ids(&ids, &mine, "InvalidVpcID.NotFound", "VPC")?;
            let items = app
                .runtime
                .as_ref()
                .map(|rt| rt.vpcs())
                .unwrap_or_default()
                .into_iter()
                .filter(|v| {
                    mine.contains(&v.id) && (ids.is_empty() || ids.contains(&v.id.as_str()))
                })
                .map(|v| {
                    Value::fields([
                        ("vpcId", Some(Value::Str(v.id.clone()))),
                        ("cidrBlock", Some(Value::Str(v.cidr.to_string()))),
                        ("state", Some(Value::str("available"))),
                        ("ownerId", Some(Value::Str(account.to_string()))),
                        ("instanceTenancy", Some(Value::str("default"))),
                        ("isDefault", Some(Value::Bool(false))),
                    ])
                })
                .collect();
            Ok(Value::fields([("vpcSet", Some(Value::List(items)))]))
        }
        "DescribeSubnets" => {
            let ids = input.indexed("SubnetId.");
            input.set_target(op, &ids.join(","));
            let mine = owned(app, &account, "AWS::EC2::Subnet")?;
            check_ids(&ids, &mine, "InvalidSubnetID.NotFound", "subnet")?;
            let mut items = Vec::new();
            for v in app.runtime.as_ref().map(|rt| rt.vpcs()).unwrap_or_default() {
                for (id, ipam) in &v.subnets {
                    if !mine.contains(id) || !(ids.is_empty() || ids.contains(&id.as_str())) {
                        continue;
                    }
                    items.push(Value::fields([
                        ("subnetId", Some(Value::Str(id.clone()))),
                        ("vpcId", Some(Value::Str(v.id.clone()))),
                        ("cidrBlock", Some(Value::Str(ipam.cidr.to_string()))),
                        ("state", Some(Value::str("available"))),
                        ("availabilityZone", Some(Value::Str(format!("{REGION}a")))),
                        ("ownerId", Some(Value::Str(account.to_string()))),
                    ]));
                }
            }
            Ok(Value::fields([("subnetSet", Some(Value::List(items)))]))
        }
        "DescribeSecurityGroups" => {
            let ids = input.indexed("GroupId.");
            input.set_target(op, &ids.join(","));
            let mine = owned(app, &account, "AWS::EC2::SecurityGroup")?;
            check_ids(&ids, &mine, "InvalidGroup.NotFound", "security group")?;
            let items = mine
                .iter()
                .filter(|id| ids.is_empty() || ids.contains(&id.as_str()))
                .filter_map(|id| app.runtime.as_ref()?.security_group(id))
                .map(|g| {
                    Value::fields([
                        ("groupId", Some(Value::Str(g.id.clone()))),
                        ("groupName", Some(Value::Str(g.id.clone()))),
                        ("vpcId", Some(Value::Str(g.vpc_id.clone()))),
                        ("ownerId", Some(Value::Str(account.to_string()))),
                        ("groupDescription", Some(Value::str(""))),
                        ("ipPermissions", Some(Value::List(rules(&g.ingress)))),
                        ("ipPermissionsEgress", Some(Value::List(rules(&g.egress)))),
                    ])
                })
                .collect();
            Ok(Value::fields([(
                "securityGroupInfo",
                Some(Value::List(items)),
            )]))
        }
        "DescribeImages" => {
            let ids = input.indexed("ImageId.");
            input.set_target(op, &ids.join(","));
            for o in input.indexed("Owner.") {
                if o != "self" && o != account.as_str() {
                    return Err(AwsError::validation(format!(
                        "Owner: `{o}`: Spindle answers only the caller's own images (`self`)"
                    )));
                }
            }
            let Some(rt) = app.runtime.as_ref() else {
                return Ok(Value::fields([("imagesSet", Some(Value::List(vec![])))]));
            };
            let owned = app.store.account_images(&account)?;
            let all = rt
                .images()
                .list()
                .map_err(|e| AwsError::new(ErrorKind::Internal, e.to_string()))?;
            let mine: Vec<_> = all.iter().filter(|i| owned.contains(&i.id)).collect();
            // An image is named by its id or by one of its tags, as `spindle image` names it.
            for id in &ids {
                if !mine
                    .iter()
                    .any(|i| i.id == *id || i.tags.iter().any(|t| t == id))
                {
                    return Err(AwsError::new(
                        ErrorKind::Service {
                            code: "InvalidAMIID.NotFound",
                            status: 400,
                        },
                        format!("The image id '[{id}]' does not exist"),
                    ));
                }
            }
            let items = mine
                .into_iter()
                .filter(|i| {
                    ids.is_empty()
                        || ids
                            .iter()
                            .any(|id| i.id == *id || i.tags.iter().any(|t| t == id))
                })
                .map(|i| {
                    let created = time::OffsetDateTime::from_unix_timestamp(
                        i64::try_from(i.created).unwrap_or(0),
                    )
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                    Value::fields([
                        ("imageId", Some(Value::Str(i.id.clone()))),
                        ("name", i.tags.first().cloned().map(Value::Str)),
                        ("imageState", Some(Value::str("available"))),
                        ("imageOwnerId", Some(Value::Str(account.to_string()))),
                        ("creationDate", Some(Value::Str(created))),
                        ("isPublic", Some(Value::Bool(false))),
                        ("architecture", Some(Value::str("x86_64"))),
                        ("imageType", Some(Value::str("machine"))),
                        (
                            "tagSet",
                            Some(Value::List(
                                i.tags
                                    .iter()
                                    .map(|t| {
                                        Value::fields([
                                            ("key", Some(Value::str("spindle:tag"))),
                                            ("value", Some(Value::Str(t.clone()))),
                                        ])
                                    })
                                    .collect(),
                            )),
                        ),
                    ])
                })
                .collect();
            Ok(Value::fields([("imagesSet", Some(Value::List(items)))]))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("ec2:{} is not implemented by Spindle", op.name),
        )),
    }
}

/// Physical ids of the account's live stacks' resources of `type_name`.
fn owned(app: &App, account: &AccountId, type_name: &str) -> Result<BTreeSet<String>, AwsError> {
    Ok(live_views(app, account)?
        .iter()
        .flat_map(|v| v.deployed.state.resources.values())
        .filter(|r| r.type_name == type_name)
        .map(|r| r.physical_id.clone())
        .collect())
}

fn check_ids(
    ids: &[&str],
    mine: &BTreeSet<String>,
    code: &'static str,
    what: &str,
) -> Result<(), AwsError> {
    match ids.iter().find(|id| !mine.contains(**id)) {
        Some(id) => Err(AwsError::new(
            ErrorKind::Service { code, status: 400 },
            format!("The {what} ID '{id}' does not exist"),
        )),
        None => Ok(()),
    }
}

/// Security group rules as `IpPermissions`: one permission per rule.
fn rules(rules: &[SgRule]) -> Vec<Value> {
    rules
        .iter()
        .map(|r| {
            let proto = match r.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Icmp => "icmp",
                Protocol::All => "-1",
            };
            let ports = r.protocol != Protocol::All;
            let (ranges, groups) = match &r.peer {
                Peer::Cidr(c) => (
                    vec![Value::fields([("cidrIp", Some(Value::Str(c.to_string())))])],
                    vec![],
                ),
                Peer::Group(g) => (
                    vec![],
                    vec![Value::fields([("groupId", Some(Value::Str(g.clone())))])],
                ),
            };
            Value::fields([
                ("ipProtocol", Some(Value::str(proto))),
                (
                    "fromPort",
                    ports.then(|| Value::Int(i64::from(r.from_port))),
                ),
                ("toPort", ports.then(|| Value::Int(i64::from(r.to_port)))),
                ("ipRanges", Some(Value::List(ranges))),
                ("groups", Some(Value::List(groups))),
            ])
        })
        .collect()
}
