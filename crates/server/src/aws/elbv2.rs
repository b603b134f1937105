//! ELBv2's describe calls over the load balancers the daemon runs (`spindle_providers::Elb`,
//! the same views as `spindle lb`): target health is the health checks' real state. Query
//! protocol.

use super::{AwsError, AwsResult, Input};
use crate::app::App;
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_model::lb::{LoadBalancerInfo, TargetGroupInfo};

pub fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    let all = app.elb.list(&account);
    match op.name {
        "DescribeLoadBalancers" => {
            let names = input.members("Names");
            let arns = input.members("LoadBalancerArns");
            input.set_target(op, &[names.clone(), arns.clone()].concat().join(","));
            let picked: Vec<&LoadBalancerInfo> = all
                .iter()
                .filter(|lb| {
                    (names.is_empty() && arns.is_empty())
                        || names.contains(&lb.name.as_str())
                        || arns.contains(&lb.arn.as_str())
                })
                .collect();
            if let Some(missing) = names
                .iter()
                .find(|n| !picked.iter().any(|lb| lb.name == **n))
            {
                return Err(lb_not_found(&format!(
                    "load balancer `{missing}` not found"
                )));
            }
            let items = picked.iter().map(|lb| load_balancer(lb)).collect();
            Ok(Value::fields([("LoadBalancers", Some(Value::List(items)))]))
        }
        "DescribeListeners" => {
            let lb_arn = input.param("LoadBalancerArn");
            let arns = input.members("ListenerArns");
            input.set_target(op, lb_arn.unwrap_or("*"));
            if lb_arn.is_none() && arns.is_empty() {
                return Err(AwsError::validation(
                    "LoadBalancerArn or ListenerArns: one is required",
                ));
            }
            let mut items = Vec::new();
            for lb in all.iter().filter(|lb| lb_arn.is_none_or(|a| a == lb.arn)) {
                for l in lb
                    .listeners
                    .iter()
                    .filter(|l| arns.is_empty() || arns.contains(&l.arn.as_str()))
                {
                    items.push(Value::fields([
                        ("ListenerArn", Some(Value::Str(l.arn.clone()))),
                        ("LoadBalancerArn", Some(Value::Str(lb.arn.clone()))),
                        ("Port", Some(Value::Int(i64::from(l.port)))),
                        ("Protocol", Some(Value::Str(l.protocol.clone()))),
                    ]));
                }
            }
            if lb_arn.is_some() && !all.iter().any(|lb| lb_arn == Some(lb.arn.as_str())) {
                return Err(lb_not_found("load balancer not found"));
            }
            Ok(Value::fields([("Listeners", Some(Value::List(items)))]))
        }
        "DescribeTargetGroups" => {
            let lb_arn = input.param("LoadBalancerArn");
            let names = input.members("Names");
            let arns = input.members("TargetGroupArns");
            input.set_target(op, lb_arn.unwrap_or("*"));
            let mut items: Vec<(&TargetGroupInfo, Vec<&str>)> = Vec::new();
            for lb in all.iter().filter(|lb| lb_arn.is_none_or(|a| a == lb.arn)) {
                for tg in &lb.target_groups {
                    if !(names.is_empty() || names.contains(&tg.name.as_str()))
                        || !(arns.is_empty() || arns.contains(&tg.arn.as_str()))
                    {
                        continue;
                    }
                    match items.iter_mut().find(|(t, _)| t.arn == tg.arn) {
                        Some((_, lbs)) => lbs.push(&lb.arn),
                        None => items.push((tg, vec![&lb.arn])),
                    }
                }
            }
            let items = items
                .into_iter()
                .map(|(tg, lbs)| {
                    Value::fields([
                        ("TargetGroupArn", Some(Value::Str(tg.arn.clone()))),
                        ("TargetGroupName", Some(Value::Str(tg.name.clone()))),
                        ("Protocol", Some(Value::str("HTTP"))),
                        ("Port", Some(Value::Int(i64::from(tg.port)))),
                        (
                            "LoadBalancerArns",
                            Some(Value::List(lbs.into_iter().map(Value::str).collect())),
                        ),
                    ])
                })
                .collect();
            Ok(Value::fields([("TargetGroups", Some(Value::List(items)))]))
        }
        "DescribeTargetHealth" => {
            let tg_arn = input.required("TargetGroupArn")?;
            input.set_target(op, tg_arn);
            let Some((lb, tg)) = all.iter().find_map(|lb| {
                lb.target_groups
                    .iter()
                    .find(|t| t.arn == tg_arn)
                    .map(|t| (lb, t))
            }) else {
                return Err(AwsError::new(
                    ErrorKind::Service {
                        code: "TargetGroupNotFound",
                        status: 400,
                    },
                    format!("target group `{tg_arn}` not found"),
                ));
            };
            let health = app
                .elb
                .target_health(&account, &lb.name)
                .unwrap_or_default();
            let items = health
                .into_iter()
                .filter(|h| h.target_group == tg.name || h.target_group == tg.arn)
                .map(|h| {
                    Value::fields([
                        (
                            "Target",
                            Some(Value::fields([
                                ("Id", Some(Value::Str(h.id))),
                                ("Port", Some(Value::Int(i64::from(h.port)))),
                            ])),
                        ),
                        ("HealthCheckPort", Some(Value::Str(h.port.to_string()))),
                        (
                            "TargetHealth",
                            Some(Value::fields([("State", Some(Value::Str(h.state)))])),
                        ),
                    ])
                })
                .collect();
            Ok(Value::fields([(
                "TargetHealthDescriptions",
                Some(Value::List(items)),
            )]))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!(
                "elasticloadbalancing:{} is not implemented by Spindle",
                op.name
            ),
        )),
    }
}

fn lb_not_found(message: &str) -> AwsError {
    AwsError::new(
        ErrorKind::Service {
            code: "LoadBalancerNotFound",
            status: 400,
        },
        message,
    )
}

fn load_balancer(lb: &LoadBalancerInfo) -> Value {
    Value::fields([
        ("LoadBalancerArn", Some(Value::Str(lb.arn.clone()))),
        ("DNSName", Some(Value::Str(lb.dns_name.clone()))),
        ("LoadBalancerName", Some(Value::Str(lb.name.clone()))),
        ("Scheme", Some(Value::str("internet-facing"))),
        ("VpcId", lb.vpc_id.clone().map(Value::Str)),
        (
            "State",
            Some(Value::fields([("Code", Some(Value::str("active")))])),
        ),
        ("Type", Some(Value::str("application"))),
        ("IpAddressType", Some(Value::str("ipv4"))),
    ])
}
