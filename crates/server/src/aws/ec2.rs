//! EC2's instance calls over the instances the daemon runs (the same ones `spindle instance`
//! shows, owned by the caller's account): DescribeInstances with the common filters and pages,
//! and Stop/Start/TerminateInstances. EC2's query protocol: lists are `Name.N`, replies are
//! XML with `<item>` lists, members named by the model's `locationName`s. With the instance
//! runtime off there are no instances.

use super::page::page;
use super::{AwsError, AwsResult, Input};
use crate::app::App;
use crate::runtime_handlers::{owner, state_name};
use crate::stacks::REGION;
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_model::AccountId;
use spindle_runtime::{Instance, InstanceState};
use std::time::Duration;

/// DescribeInstances' `MaxResults` range (5..=1000 in the model; smaller is refused there).
const MAX_RESULTS: usize = 1000;

pub async fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    match op.name {
        "DescribeInstances" => {
            let ids = numbered(input, "InstanceId");
            input.set_target(op, &ids.join(","));
            let filters = filters(input)?;
            let mine = account_instances(app, &account);
            if let Some(missing) = ids.iter().find(|id| !mine.iter().any(|i| i.id == **id)) {
                return Err(not_found(missing));
            }
            let picked: Vec<Instance> = mine
                .into_iter()
                .filter(|i| ids.is_empty() || ids.contains(&i.id.as_str()))
                .filter(|i| filters.iter().all(|f| f.matches(i)))
                .collect();
            let max = input.int("MaxResults")?;
            if let Some(m) = max.filter(|m| *m < 5) {
                return Err(AwsError::validation(format!(
                    "MaxResults: {m} is below the minimum of 5"
                )));
            }
            let (picked, next) = page(
                picked,
                |i| i.id.as_str(),
                max,
                MAX_RESULTS,
                input.param("NextToken"),
                "MaxResults",
            )?;
            // One reservation per instance: Spindle launches them one at a time.
            let reservations = picked
                .iter()
                .map(|i| {
                    Value::fields([
                        (
                            "reservationId",
                            Some(Value::Str(format!("r-{}", i.id.trim_start_matches("i-")))),
                        ),
                        ("ownerId", Some(Value::Str(account.to_string()))),
                        ("groupSet", Some(Value::List(vec![]))),
                        ("instancesSet", Some(Value::List(vec![instance(i)]))),
                    ])
                })
                .collect();
            Ok(Value::fields([
                ("reservationSet", Some(Value::List(reservations))),
                ("nextToken", next.map(Value::Str)),
            ]))
        }
        "StopInstances" | "StartInstances" | "TerminateInstances" => {
            let ids: Vec<String> = numbered(input, "InstanceId")
                .into_iter()
                .map(str::to_owned)
                .collect();
            input.set_target(op, &ids.join(","));
            if ids.is_empty() {
                return Err(AwsError::validation("InstanceId: at least one is required"));
            }
            let Some(rt) = app.runtime.clone() else {
                return Err(AwsError::validation(
                    "instances are off on this daemon: it needs the instance runtime (run `spindle server` as root, without --no-runtime)",
                ));
            };
            // All or none: every id must be the caller's before any changes.
            let mine = account_instances(app, &account);
            let mut before = Vec::new();
            for id in &ids {
                match mine.iter().find(|i| &i.id == id) {
                    Some(i) => before.push(i.state),
                    None => return Err(not_found(id)),
                }
            }
            let what = op.name;
            let changed = tokio::task::spawn_blocking(move || {
                let grace = Duration::from_secs(10);
                ids.into_iter()
                    .map(|id| {
                        let r = match what {
                            "StopInstances" => rt.stop(&id, grace),
                            "StartInstances" => rt.start(&id),
                            _ => rt.terminate(&id, grace),
                        };
                        r.map(|i| (id, i.state)).map_err(|e| e.to_string())
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .await
            .map_err(|e| AwsError::new(ErrorKind::Internal, format!("task failed: {e}")))?
            .map_err(|e| {
                AwsError::new(
                    ErrorKind::Service {
                        code: "IncorrectInstanceState",
                        status: 400,
                    },
                    e,
                )
            })?;
            let items = changed
                .into_iter()
                .zip(before)
                .map(|((id, now), was)| {
                    Value::fields([
                        ("instanceId", Some(Value::Str(id))),
                        ("currentState", Some(state(now))),
                        ("previousState", Some(state(was))),
                    ])
                })
                .collect();
            Ok(Value::fields([("instancesSet", Some(Value::List(items)))]))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("ec2:{} is not implemented by Spindle", op.name),
        )),
    }
}

fn account_instances(app: &App, account: &AccountId) -> Vec<Instance> {
    app.runtime
        .as_ref()
        .map(|rt| rt.list())
        .unwrap_or_default()
        .into_iter()
        .filter(|i| owner(i).as_ref() == Some(account))
        .collect()
}

fn not_found(id: &str) -> AwsError {
    AwsError::new(
        ErrorKind::Service {
            code: "InvalidInstanceID.NotFound",
            status: 400,
        },
        format!("The instance ID '{id}' does not exist"),
    )
}

/// EC2's list parameters: `Name.1`, `Name.2`, … in order.
fn numbered<'a>(input: &'a Input, name: &str) -> Vec<&'a str> {
    input.indexed(&format!("{name}."))
}

/// One `Filter.N`: a name and the values any of which matches.
struct Filter {
    name: String,
    values: Vec<String>,
}

/// The filters Spindle applies; any other name is refused, so a filter is never ignored.
const FILTERS: &[&str] = &[
    "instance-id",
    "instance-state-name",
    "vpc-id",
    "subnet-id",
    "image-id",
    "instance-type",
    "private-ip-address",
    "tag-key",
    "tag:<key>",
];

fn filters(input: &Input) -> Result<Vec<Filter>, AwsError> {
    let mut out = Vec::new();
    for n in 1.. {
        let Some(name) = input.param(&format!("Filter.{n}.Name")) else {
            break;
        };
        if !(FILTERS.contains(&name) || name.starts_with("tag:")) {
            return Err(AwsError::validation(format!(
                "Filter.{n}.Name: `{name}` is not a filter Spindle applies (it applies {})",
                FILTERS.join(", ")
            )));
        }
        let values = numbered(input, &format!("Filter.{n}.Value"))
            .into_iter()
            .map(str::to_owned)
            .collect();
        out.push(Filter {
            name: name.to_owned(),
            values,
        });
    }
    Ok(out)
}

impl Filter {
    fn matches(&self, i: &Instance) -> bool {
        let any = |v: &str| self.values.iter().any(|x| x == v);
        match self.name.as_str() {
            "instance-id" => any(&i.id),
            "instance-state-name" => any(&state_name(i.state)),
            "vpc-id" => any(&i.vpc_id),
            "subnet-id" => any(&i.subnet_id),
            "image-id" => any(&i.image_id),
            "instance-type" => any(&i.instance_type),
            "private-ip-address" => any(&i.private_ip.to_string()),
            "tag-key" => i.tags.keys().any(|k| any(k)),
            other => other
                .strip_prefix("tag:")
                .and_then(|k| i.tags.get(k))
                .is_some_and(|v| any(v)),
        }
    }
}

/// EC2's state codes (the low byte of `code`).
fn state(s: InstanceState) -> Value {
    let code = match s {
        InstanceState::Pending => 0,
        InstanceState::Running => 16,
        InstanceState::ShuttingDown => 32,
        InstanceState::Terminated => 48,
        InstanceState::Stopping => 64,
        InstanceState::Stopped => 80,
    };
    Value::fields([
        ("code", Some(Value::Int(code))),
        ("name", Some(Value::Str(state_name(s)))),
    ])
}

fn instance(i: &Instance) -> Value {
    let tags = i
        .tags
        .iter()
        .map(|(k, v)| {
            Value::fields([
                ("key", Some(Value::Str(k.clone()))),
                ("value", Some(Value::Str(v.clone()))),
            ])
        })
        .collect();
    let groups = i
        .security_groups
        .iter()
        .map(|g| Value::fields([("groupId", Some(Value::Str(g.clone())))]))
        .collect();
    Value::fields([
        ("instanceId", Some(Value::Str(i.id.clone()))),
        ("imageId", Some(Value::Str(i.image_id.clone()))),
        ("instanceState", Some(state(i.state))),
        (
            "privateDnsName",
            Some(Value::Str(spindle_providers::private_dns_name(
                &i.hostname,
                REGION,
            ))),
        ),
        ("instanceType", Some(Value::Str(i.instance_type.clone()))),
        (
            "launchTime",
            Some(Value::Time(
                time::OffsetDateTime::from_unix_timestamp(
                    i64::try_from(i.launched_at).unwrap_or(0),
                )
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
            )),
        ),
        (
            "placement",
            Some(Value::fields([(
                "availabilityZone",
                Some(Value::Str(format!("{REGION}a"))),
            )])),
        ),
        ("subnetId", Some(Value::Str(i.subnet_id.clone()))),
        ("vpcId", Some(Value::Str(i.vpc_id.clone()))),
        (
            "privateIpAddress",
            Some(Value::Str(i.private_ip.to_string())),
        ),
        ("architecture", Some(Value::str("x86_64"))),
        ("groupSet", Some(Value::List(groups))),
        ("tagSet", Some(Value::List(tags))),
    ])
}
