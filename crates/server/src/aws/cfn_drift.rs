//! CloudFormation's drift operations over the stack engine's drift detection
//! ([`spindle_stack::drift`], the same one `spindle stack drift` runs).
//!
//! Detection reads every resource back through its provider, which takes milliseconds here,
//! so `DetectStackDrift` runs it before answering and the detection it names is already
//! `DETECTION_COMPLETE`. The latest detection of each stack is kept in one store document per
//! account, so `DescribeStackResourceDrifts` answers from it after a restart too, as AWS
//! answers from its last detection.

use super::cloudformation::{stack_id, stack_name_of, view};
use super::{AwsError, AwsResult, Input};
use crate::app::App;
use crate::stack_handlers::engine_error;
use serde::{Deserialize, Serialize};
use spindle_awsapi::{ErrorKind, Operation, Value};
use spindle_model::AccountId;
use spindle_stack::drift::{DriftStatus, ResourceDrift};
use std::collections::BTreeMap;

/// The latest detection of each stack of one account.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Detections {
    stacks: BTreeMap<String, Detection>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Detection {
    id: String,
    at_ms: u64,
    drifts: Vec<ResourceDrift>,
}

/// Read-modify-write of a document must not interleave with another detection's.
static SAVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn doc_name(account: &AccountId) -> String {
    format!("cloudformation-drift/{account}")
}

pub async fn dispatch(app: &App, op: &'static Operation, input: &Input) -> AwsResult {
    let account = input.caller().account.id.clone();
    match op.name {
        "DetectStackDrift" => {
            let stack = stack_name_of(input.required("StackName")?).to_owned();
            input.set_target(op, &stack);
            let only = input.members("LogicalResourceIds");
            let mut drifts = detect(app, &account, &stack).await?;
            if !only.is_empty() {
                if let Some(unknown) = only
                    .iter()
                    .find(|l| !drifts.iter().any(|d| d.logical_id == **l))
                {
                    return Err(AwsError::validation(format!(
                        "LogicalResourceIds: stack {stack} has no resource `{unknown}`"
                    )));
                }
                drifts.retain(|d| only.contains(&d.logical_id.as_str()));
            }
            let id = detection_id();
            let detection = Detection {
                id: id.clone(),
                at_ms: now_ms(),
                drifts,
            };
            save(app, &account, &stack, detection)?;
            Ok(Value::fields([(
                "StackDriftDetectionId",
                Some(Value::Str(id)),
            )]))
        }
        "DescribeStackDriftDetectionStatus" => {
            let id = input.required("StackDriftDetectionId")?;
            input.set_target(op, id);
            let (stack, d) = load(app, &account)?
                .stacks
                .into_iter()
                .find(|(_, d)| d.id == id)
                .ok_or_else(|| {
                    AwsError::validation(format!(
                        "Could not find a drift detection with id {id} (only each stack's latest is kept)"
                    ))
                })?;
            let drifted = d.drifts.iter().filter(|r| is_drifted(r.status)).count();
            Ok(Value::fields([
                ("StackId", Some(Value::Str(stack_id(&account, &stack)))),
                ("StackDriftDetectionId", Some(Value::Str(d.id.clone()))),
                (
                    "StackDriftStatus",
                    Some(Value::str(stack_status(&d.drifts))),
                ),
                ("DetectionStatus", Some(Value::str("DETECTION_COMPLETE"))),
                (
                    "DriftedStackResourceCount",
                    Some(Value::Int(drifted as i64)),
                ),
                ("Timestamp", Some(Value::Time(time_of(d.at_ms)))),
            ]))
        }
        "DescribeStackResourceDrifts" => {
            let stack = stack_name_of(input.required("StackName")?).to_owned();
            input.set_target(op, &stack);
            view(app, &account, &stack)?;
            let filter = input.members("StackResourceDriftStatusFilters");
            if let Some(bad) = filter
                .iter()
                .find(|f| !["IN_SYNC", "MODIFIED", "DELETED", "NOT_CHECKED"].contains(f))
            {
                return Err(AwsError::validation(format!(
                    "StackResourceDriftStatusFilters: `{bad}` is not IN_SYNC, MODIFIED, DELETED or NOT_CHECKED"
                )));
            }
            let Some(d) = load(app, &account)?.stacks.remove(&stack) else {
                // No detection yet: nothing to describe, as in AWS.
                return Ok(Value::fields([(
                    "StackResourceDrifts",
                    Some(Value::List(Vec::new())),
                )]));
            };
            let drifts: Vec<ResourceDrift> = d
                .drifts
                .into_iter()
                .filter(|r| filter.is_empty() || filter.contains(&status_name(r.status)))
                .collect();
            let size = input.int("MaxResults")?;
            let (page, next) = super::page::page(
                drifts,
                |r| r.logical_id.as_str(),
                size,
                100,
                input.param("NextToken"),
                "MaxResults",
            )?;
            let items = page
                .iter()
                .map(|r| resource_drift(&account, &stack, d.at_ms, r))
                .collect();
            Ok(Value::fields([
                ("StackResourceDrifts", Some(Value::List(items))),
                ("NextToken", next.map(Value::Str)),
            ]))
        }
        "DetectStackResourceDrift" => {
            let stack = stack_name_of(input.required("StackName")?).to_owned();
            let logical = input.required("LogicalResourceId")?;
            input.set_target(op, &format!("{stack}/{logical}"));
            let r = detect(app, &account, &stack)
                .await?
                .into_iter()
                .find(|d| d.logical_id == logical)
                .ok_or_else(|| {
                    AwsError::validation(format!(
                        "Resource {logical} does not exist for stack {stack}"
                    ))
                })?;
            Ok(Value::fields([(
                "StackResourceDrift",
                Some(resource_drift(&account, &stack, now_ms(), &r)),
            )]))
        }
        _ => Err(AwsError::new(
            ErrorKind::NotImplemented,
            format!("cloudformation:{} is not implemented by Spindle", op.name),
        )),
    }
}

/// Runs the engine's detection on a stack the account has.
async fn detect(
    app: &App,
    account: &AccountId,
    stack: &str,
) -> Result<Vec<ResourceDrift>, AwsError> {
    view(app, account, stack)?;
    let engine = app.stacks.engine(account);
    let name = stack.to_owned();
    // Its own task, like the REST handler's: a client that hangs up doesn't stop it midway.
    tokio::spawn(async move { engine.drift(&name).await })
        .await
        .map_err(|e| AwsError::new(ErrorKind::Internal, format!("drift task failed: {e}")))?
        .map_err(|e| AwsError::from(engine_error(e)))
}

fn load(app: &App, account: &AccountId) -> Result<Detections, AwsError> {
    let Some(body) = app.store.engine_state(&doc_name(account))? else {
        return Ok(Detections::default());
    };
    serde_json::from_str(&body).map_err(|e| {
        AwsError::new(
            ErrorKind::Internal,
            format!("stored document {} is malformed: {e}", doc_name(account)),
        )
    })
}

fn save(app: &App, account: &AccountId, stack: &str, detection: Detection) -> Result<(), AwsError> {
    let _held = SAVE.lock().unwrap_or_else(|e| e.into_inner());
    let mut all = load(app, account)?;
    // Stacks deleted since their detection drop out as the document is written.
    let live: Vec<String> = super::cloudformation::live_views(app, account)?
        .into_iter()
        .map(|v| v.name)
        .collect();
    all.stacks.retain(|name, _| live.contains(name));
    all.stacks.insert(stack.to_owned(), detection);
    let body = serde_json::to_string(&all)
        .map_err(|e| AwsError::new(ErrorKind::Internal, format!("drift document: {e}")))?;
    app.store
        .put_engine_state(&doc_name(account), &body, crate::app::now())?;
    Ok(())
}

fn is_drifted(s: DriftStatus) -> bool {
    matches!(s, DriftStatus::Modified | DriftStatus::Deleted)
}

/// DRIFTED if a checked resource drifted, IN_SYNC if any was checked, else NOT_CHECKED.
fn stack_status(drifts: &[ResourceDrift]) -> &'static str {
    if drifts.iter().any(|r| is_drifted(r.status)) {
        "DRIFTED"
    } else if drifts.iter().any(|r| r.status == DriftStatus::InSync) {
        "IN_SYNC"
    } else {
        "NOT_CHECKED"
    }
}

fn status_name(s: DriftStatus) -> &'static str {
    match s {
        DriftStatus::InSync => "IN_SYNC",
        DriftStatus::Modified => "MODIFIED",
        DriftStatus::Deleted => "DELETED",
        DriftStatus::NotChecked => "NOT_CHECKED",
    }
}

/// CloudFormation's `StackResourceDrift`. Property paths are JSON pointers into the
/// resource's properties; a value the template sets that is absent is `REMOVE`d, one that
/// appeared is an `ADD`.
fn resource_drift(account: &AccountId, stack: &str, at_ms: u64, r: &ResourceDrift) -> Value {
    let differences = r
        .differences
        .iter()
        .map(|p| {
            let kind = match (&p.expected, &p.actual) {
                (None, Some(_)) => "ADD",
                (Some(_), None) => "REMOVE",
                _ => "NOT_EQUAL",
            };
            Value::fields([
                ("PropertyPath", Some(Value::Str(format!("/{}", p.name)))),
                (
                    "ExpectedValue",
                    Some(Value::Str(p.expected.clone().unwrap_or("null".into()))),
                ),
                (
                    "ActualValue",
                    Some(Value::Str(p.actual.clone().unwrap_or("null".into()))),
                ),
                ("DifferenceType", Some(Value::str(kind))),
            ])
        })
        .collect();
    Value::fields([
        ("StackId", Some(Value::Str(stack_id(account, stack)))),
        ("LogicalResourceId", Some(Value::Str(r.logical_id.clone()))),
        (
            "PhysicalResourceId",
            Some(Value::Str(r.physical_id.clone())),
        ),
        ("ResourceType", Some(Value::Str(r.type_name.clone()))),
        (
            "PropertyDifferences",
            (!r.differences.is_empty()).then_some(Value::List(differences)),
        ),
        (
            "StackResourceDriftStatus",
            Some(Value::str(status_name(r.status))),
        ),
        ("Timestamp", Some(Value::Time(time_of(at_ms)))),
        ("DriftStatusReason", r.reason.clone().map(Value::Str)),
    ])
}

/// A random id in the UUID shape AWS uses for detections.
fn detection_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn now_ms() -> u64 {
    u64::try_from(crate::app::now().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn time_of(ms: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_stack::drift::PropertyDifference;

    fn r(status: DriftStatus) -> ResourceDrift {
        ResourceDrift {
            logical_id: "A".into(),
            type_name: "AWS::SSM::Parameter".into(),
            physical_id: "/a".into(),
            status,
            differences: Vec::new(),
            reason: None,
        }
    }

    #[test]
    fn a_stack_drifted_if_any_checked_resource_did() {
        use DriftStatus::*;
        let cases: &[(&[DriftStatus], &str)] = &[
            (&[], "NOT_CHECKED"),
            (&[NotChecked], "NOT_CHECKED"),
            (&[InSync, NotChecked], "IN_SYNC"),
            (&[InSync, Modified], "DRIFTED"),
            (&[Deleted, NotChecked], "DRIFTED"),
        ];
        for (statuses, want) in cases {
            let drifts: Vec<ResourceDrift> = statuses.iter().map(|s| r(*s)).collect();
            assert_eq!(stack_status(&drifts), *want, "{statuses:?}");
        }
    }

    #[test]
    fn property_differences_say_how_each_property_differs() {
        let mut d = r(DriftStatus::Modified);
        let diff = |e: Option<&str>, a: Option<&str>| PropertyDifference {
            name: "Value".into(),
            expected: e.map(str::to_owned),
            actual: a.map(str::to_owned),
        };
        d.differences = vec![
            diff(Some("\"on\""), Some("\"off\"")),
            diff(Some("\"x\""), None),
            diff(None, Some("\"y\"")),
        ];
        let account = AccountId::parse("123456789012").unwrap();
        let v = resource_drift(&account, "s", 0, &d);
        let diffs = match field(&v, "PropertyDifferences") {
            Value::List(items) => items.clone(),
            other => panic!("{other:?}"),
        };
        let text = |v: &Value, name: &str| match field(v, name) {
            Value::Str(s) => s.clone(),
            other => panic!("{name}: {other:?}"),
        };
        let kinds: Vec<String> = diffs.iter().map(|p| text(p, "DifferenceType")).collect();
        assert_eq!(kinds, ["NOT_EQUAL", "REMOVE", "ADD"]);
        assert_eq!(text(&diffs[0], "PropertyPath"), "/Value");
        assert_eq!(text(&diffs[1], "ActualValue"), "null");
        assert_eq!(text(&v, "StackResourceDriftStatus"), "MODIFIED");
    }

    fn field<'v>(v: &'v Value, name: &str) -> &'v Value {
        match v {
            Value::Struct(fields) => fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
                .unwrap_or_else(|| panic!("no {name} in {v:?}")),
            other => panic!("not a structure: {other:?}"),
        }
    }

    #[test]
    fn detection_ids_have_the_uuid_shape() {
        let id = detection_id();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
        assert_ne!(id, detection_id());
    }
}
