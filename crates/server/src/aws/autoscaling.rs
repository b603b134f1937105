//! Auto Scaling's calls over the groups the daemon runs (`spindle_providers::AutoScaling`, the
//! same state as `spindle asg`): groups and their instances, activities, desired capacity,
//! instance refreshes and lifecycle actions. Query protocol. With the instance runtime off there
//! are no groups: describes answer empty lists, changes a `ValidationError` saying why.

use super::page::page;
use super::{AwsError, AwsResult, Input};
use crate::app::App;
use crate::stacks::REGION;
use spindle_autoscale::group::HookResult;
use spindle_autoscale::{Activity, ActivityStatus};
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_model::AccountId;
use spindle_providers::{AutoScaling, GroupInfo, RefreshInfo};
use std::sync::Arc;

/// The models' page limits: `MaxRecords` up to 100 for groups and activities, 100 for
/// refreshes.
const MAX_RECORDS: usize = 100;

pub async fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    let asg = app.autoscaling.clone();
    match op.name {
        "DescribeAutoScalingGroups" => {
            let names = input.members("AutoScalingGroupNames");
            input.set_target(op, &names.join(","));
            let groups: Vec<GroupInfo> = asg
                .map(|a| a.list(&account))
                .unwrap_or_default()
                .into_iter()
                .filter(|g| names.is_empty() || names.contains(&g.name.as_str()))
                .collect();
            let (groups, next) = page(
                groups,
                |g| g.name.as_str(),
                input.int("MaxRecords")?,
                MAX_RECORDS,
                input.param("NextToken"),
                "MaxRecords",
            )?;
            let items = groups.iter().map(|g| group(&account, g)).collect();
            Ok(Value::fields([
                ("AutoScalingGroups", Some(Value::List(items))),
                ("NextToken", next.map(Value::Str)),
            ]))
        }
        "DescribeScalingActivities" => {
            let name = input.param("AutoScalingGroupName");
            let ids = input.members("ActivityIds");
            input.set_target(op, name.unwrap_or("*"));
            let groups: Vec<String> = match (name, &asg) {
                (Some(n), _) => vec![n.to_owned()],
                (None, Some(a)) => a.list(&account).into_iter().map(|g| g.name).collect(),
                (None, None) => vec![],
            };
            // Newest first, as AWS lists them: the page key orders by time, descending.
            let mut rows: Vec<(String, Value)> = Vec::new();
            for g in &groups {
                let acts = match &asg {
                    Some(a) => a.activities(&account, g).unwrap_or_default(),
                    None => vec![],
                };
                for (id, at, v) in activities(g, &acts) {
                    if ids.is_empty() || ids.contains(&id.as_str()) {
                        rows.push((newest_first_key(at, &id), v));
                    }
                }
            }
            newest_first(input, "Activities", rows)
        }
        "SetDesiredCapacity" => {
            let name = input.required("AutoScalingGroupName")?;
            input.set_target(op, name);
            let n = input
                .int("DesiredCapacity")?
                .ok_or_else(|| AwsError::validation("DesiredCapacity: a value is required"))?;
            let n = u32::try_from(n).map_err(|_| {
                AwsError::validation(format!("DesiredCapacity: {n} is not a capacity"))
            })?;
            on(asg)?.set_desired(&account, name, n).map_err(refused)?;
            Ok(Value::Struct(vec![]))
        }
        "StartInstanceRefresh" => {
            let name = input.required("AutoScalingGroupName")?;
            input.set_target(op, name);
            if let Some(s) = input.param("Strategy").filter(|s| *s != "Rolling") {
                return Err(AwsError::validation(format!(
                    "Strategy: `{s}` is not supported; Spindle refreshes Rolling"
                )));
            }
            check_preferences(input)?;
            let min = match input.int("Preferences.MinHealthyPercentage")? {
                None => 90,
                Some(p) if (0..=100).contains(&p) => p as u32,
                Some(p) => {
                    return Err(AwsError::validation(format!(
                        "Preferences.MinHealthyPercentage: {p} is not between 0 and 100"
                    )))
                }
            };
            let id = on(asg)?.start_refresh(&account, name, min).map_err(|e| {
                if e.contains("already in progress") {
                    AwsError::new(
                        ErrorKind::Service {
                            code: "InstanceRefreshInProgress",
                            status: 400,
                        },
                        e,
                    )
                } else {
                    refused(e)
                }
            })?;
            Ok(Value::fields([("InstanceRefreshId", Some(Value::Str(id)))]))
        }
        "DescribeInstanceRefreshes" => {
            let name = input.required("AutoScalingGroupName")?;
            let ids = input.members("InstanceRefreshIds");
            input.set_target(op, name);
            let refreshes = match &asg {
                Some(a) => a
                    .describe(&account, name)
                    .map(|g| g.refreshes)
                    .unwrap_or_default(),
                None => vec![],
            };
            let rows: Vec<(String, Value)> = refreshes
                .iter()
                .filter(|r| ids.is_empty() || ids.contains(&r.id.as_str()))
                .map(|r| (newest_first_key(r.started_at, &r.id), refresh(name, r)))
                .collect();
            newest_first(input, "InstanceRefreshes", rows)
        }
        "CompleteLifecycleAction" => {
            let name = input.required("AutoScalingGroupName")?.to_owned();
            let hook = input.required("LifecycleHookName")?.to_owned();
            input.set_target(op, &name);
            let instance = input.param("InstanceId").ok_or_else(|| {
                AwsError::validation(
                    "InstanceId: a value is required (Spindle doesn't issue LifecycleActionTokens)",
                )
            })?;
            let instance = instance.to_owned();
            let result = match input.required("LifecycleActionResult")? {
                "CONTINUE" => HookResult::Continue,
                "ABANDON" => HookResult::Abandon,
                other => {
                    return Err(AwsError::validation(format!(
                        "LifecycleActionResult: `{other}` must be CONTINUE or ABANDON"
                    )))
                }
            };
            let asg = on(asg)?;
            let account2 = account.clone();
            let name2 = name.clone();
            tokio::task::spawn_blocking(move || {
                asg.complete_lifecycle_action(&account2, &name2, &instance, &hook, result)
            })
            .await
            .map_err(|e| AwsError::new(ErrorKind::Internal, format!("task failed: {e}")))?
            .map_err(refused)?;
            Ok(Value::Struct(vec![]))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("autoscaling:{} is not implemented by Spindle", op.name),
        )),
    }
}

/// A page key that orders by time, newest first, then by id.
fn newest_first_key(at: u64, id: &str) -> String {
    format!("{:016x}/{id}", u64::MAX - at)
}

/// One page of `(key, item)` rows as the list member `member`, with the next page's token.
fn newest_first(input: &Input, member: &str, rows: Vec<(String, Value)>) -> AwsResult {
    let (rows, next) = page(
        rows,
        |(k, _)| k.as_str(),
        input.int("MaxRecords")?,
        MAX_RECORDS,
        input.param("NextToken"),
        "MaxRecords",
    )?;
    Ok(Value::Struct(
        [(
            member.to_owned(),
            Value::List(rows.into_iter().map(|(_, v)| v).collect()),
        )]
        .into_iter()
        .chain(next.map(|t| ("NextToken".to_owned(), Value::Str(t))))
        .collect(),
    ))
}

/// Preferences Spindle applies or knows to be the group's own; any other is refused by name,
/// so a refresh never runs with a setting silently dropped.
fn check_preferences(input: &Input) -> Result<(), AwsError> {
    const KNOWN: &[&str] = &[
        "MinHealthyPercentage",
        // The group's warm-up applies: the same figure, set on the group.
        "InstanceWarmup",
    ];
    for (k, _) in &input.params {
        if let Some(p) = k.strip_prefix("Preferences.") {
            let top = p.split('.').next().unwrap_or(p);
            if !KNOWN.contains(&top) {
                return Err(AwsError::validation(format!(
                    "Preferences.{top}: not supported by Spindle (it applies MinHealthyPercentage and the group's InstanceWarmup)"
                )));
            }
        }
    }
    Ok(())
}

fn on(asg: Option<Arc<AutoScaling>>) -> Result<Arc<AutoScaling>, AwsError> {
    asg.ok_or_else(|| {
        AwsError::validation(
            "auto scaling is off on this daemon: it needs the instance runtime (run `spindle server` as root, without --no-runtime)",
        )
    })
}

/// AWS answers an unknown group, or a value out of range, with a `ValidationError`.
fn refused(e: String) -> AwsError {
    if e.ends_with("not found") {
        AwsError::validation(format!("AutoScalingGroup name not found - {e}"))
    } else {
        AwsError::validation(e)
    }
}

fn time(unix: u64) -> Value {
    Value::Time(
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(0))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

fn az() -> String {
    format!("{REGION}a")
}

fn group(account: &AccountId, g: &GroupInfo) -> Value {
    let instances = g
        .instances
        .iter()
        .map(|i| {
            Value::fields([
                ("InstanceId", Some(Value::Str(i.id.clone()))),
                ("AvailabilityZone", Some(Value::Str(az()))),
                (
                    "LifecycleState",
                    Some(Value::Str(i.lifecycle_state.clone())),
                ),
                ("HealthStatus", Some(Value::Str(i.health.clone()))),
                (
                    "LaunchTemplate",
                    Some(Value::fields([
                        (
                            "LaunchTemplateId",
                            Some(Value::Str(g.launch_template.clone())),
                        ),
                        ("Version", Some(Value::Str(i.version.to_string()))),
                    ])),
                ),
                ("ProtectedFromScaleIn", Some(Value::Bool(i.protected))),
            ])
        })
        .collect();
    Value::fields([
        ("AutoScalingGroupName", Some(Value::Str(g.name.clone()))),
        (
            "AutoScalingGroupARN",
            Some(Value::Str(format!(
                "arn:aws:autoscaling:{REGION}:{account}:autoScalingGroup:spindle:autoScalingGroupName/{}",
                g.name
            ))),
        ),
        (
            "LaunchTemplate",
            Some(Value::fields([
                ("LaunchTemplateId", Some(Value::Str(g.launch_template.clone()))),
                ("Version", Some(Value::Str(g.version.to_string()))),
            ])),
        ),
        ("MinSize", Some(Value::Int(i64::from(g.min)))),
        ("MaxSize", Some(Value::Int(i64::from(g.max)))),
        ("DesiredCapacity", Some(Value::Int(i64::from(g.desired)))),
        // AWS's default; Spindle's simple policies carry their own cooldowns.
        ("DefaultCooldown", Some(Value::Int(300))),
        ("AvailabilityZones", Some(Value::List(vec![Value::Str(az())]))),
        (
            "TargetGroupARNs",
            Some(Value::List(
                g.target_groups.iter().cloned().map(Value::Str).collect(),
            )),
        ),
        ("HealthCheckType", Some(Value::str(g.health_check_type))),
        (
            "HealthCheckGracePeriod",
            Some(Value::Int(
                i64::try_from(g.health_check_grace_period).unwrap_or(i64::MAX),
            )),
        ),
        ("Instances", Some(Value::List(instances))),
        ("CreatedTime", Some(time(g.created_at))),
        ("VPCZoneIdentifier", Some(Value::Str(g.subnets.join(",")))),
        (
            "EnabledMetrics",
            Some(Value::List(vec![])),
        ),
        ("Tags", Some(Value::List(vec![]))),
        ("TerminationPolicies", Some(Value::List(vec![]))),
    ])
}

/// A group's activities as AWS shows them, with their ids and times: `(id, at, value)`. An id
/// is the group, the time and the activity's place among those of the same second, so it stays
/// the same while older activities are dropped.
fn activities(group: &str, acts: &[Activity]) -> Vec<(String, u64, Value)> {
    let mut out = Vec::with_capacity(acts.len());
    let mut same_second = 0;
    for (i, a) in acts.iter().enumerate() {
        same_second = if i > 0 && acts[i - 1].at == a.at {
            same_second + 1
        } else {
            0
        };
        let id = format!("{group}-{}-{same_second}", a.at);
        let (code, progress) = match a.status {
            ActivityStatus::Successful => ("Successful", 100),
            ActivityStatus::Failed => ("Failed", 100),
            ActivityStatus::InProgress => ("InProgress", 50),
        };
        let v = Value::fields([
            ("ActivityId", Some(Value::Str(id.clone()))),
            ("AutoScalingGroupName", Some(Value::str(group))),
            ("Description", Some(Value::Str(a.description.clone()))),
            ("Cause", Some(Value::Str(a.cause.clone()))),
            ("StartTime", Some(time(a.at))),
            (
                "EndTime",
                (a.status != ActivityStatus::InProgress).then(|| time(a.at)),
            ),
            ("StatusCode", Some(Value::str(code))),
            ("Progress", Some(Value::Int(progress))),
        ]);
        out.push((id, a.at, v));
    }
    out
}

fn refresh(group: &str, r: &RefreshInfo) -> Value {
    Value::fields([
        ("InstanceRefreshId", Some(Value::Str(r.id.clone()))),
        ("AutoScalingGroupName", Some(Value::str(group))),
        ("Status", Some(Value::str(r.status))),
        ("StartTime", Some(time(r.started_at))),
        ("EndTime", r.ended_at.map(time)),
        (
            "PercentageComplete",
            Some(Value::Int(i64::from(r.percentage_complete))),
        ),
        (
            "InstancesToUpdate",
            Some(Value::Int(i64::from(r.instances_to_update))),
        ),
        (
            "Preferences",
            Some(Value::fields([(
                "MinHealthyPercentage",
                Some(Value::Int(i64::from(r.min_healthy_percentage))),
            )])),
        ),
    ])
}
