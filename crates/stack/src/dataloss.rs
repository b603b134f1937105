//! The data-loss guard: which changes would destroy a stateful resource's data, decided
//! purely from the change set, the deployed stack and the new plan. A deploy, an update, a
//! change-set execute or a stack delete that loses data is refused unless the caller allows
//! it (`DeployRequest::allow_data_loss`, [`crate::Engine::delete_stack_allowing`]); previews
//! list the same losses, so what is shown is what is refused.
//!
//! A stateful resource loses its data when it is **replaced** (a create-only property
//! changed: the old one is deleted once the new one exists, unless `UpdateReplacePolicy:
//! Retain`) or **deleted** (removed from the template or deleted with its stack, unless
//! `DeletionPolicy: Retain`). Before the engine deletes one it asks the provider for a final
//! snapshot ([`crate::Provider::final_snapshot`]), whatever the policies say.
//!
//! Nested stacks are judged by their own deploys and deletes: the parent's guard sees an
//! `AWS::CloudFormation::Stack`, not what is inside it.

use serde::Serialize;
use spindle_template::changeset::{Action, ChangeSet, Replacement};
use spindle_template::{Plan, StackState};

/// Every resource type whose deletion loses data: the one list.
pub const STATEFUL_TYPES: &[&str] = &[
    "AWS::RDS::DBInstance",
    "AWS::RDS::DBCluster",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ElastiCache::CacheCluster",
    "AWS::OpenSearchService::Domain",
    "AWS::Elasticsearch::Domain",
    "AWS::EC2::Volume",
    "AWS::SecretsManager::Secret",
];

/// The attribute a successful delete's output carries the final snapshot's name in, so the
/// delete's event names it (`final snapshot NAME taken before the delete`).
pub const FINAL_SNAPSHOT: &str = "spindle:FinalSnapshot";

pub fn is_stateful(type_name: &str) -> bool {
    STATEFUL_TYPES.contains(&type_name)
}

/// Why a resource's data would be lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Why {
    /// Replaced because these properties changed (`Conditional` ones included).
    Replacement { properties: Vec<String> },
    /// Removed from the template.
    Removed,
    /// Deleted with its stack.
    StackDeleted,
}

/// One resource whose data a change would lose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataLoss {
    pub logical_id: String,
    pub type_name: String,
    pub physical_id: Option<String>,
    pub why: Why,
}

impl std::fmt::Display for DataLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({}", self.logical_id, self.type_name)?;
        if let Some(p) = &self.physical_id {
            write!(f, " {p}")?;
        }
        f.write_str(") ")?;
        match &self.why {
            Why::Replacement { properties } if properties.is_empty() => f.write_str("is replaced"),
            Why::Replacement { properties } => {
                write!(f, "is replaced because {} changed", properties.join(", "))
            }
            Why::Removed => f.write_str("is deleted: it was removed from the template"),
            Why::StackDeleted => f.write_str("is deleted with the stack"),
        }
    }
}

/// The losses of executing `cs` against `deployed` with the new `plan`.
pub fn of_change_set(cs: &ChangeSet, deployed: &StackState, plan: &Plan) -> Vec<DataLoss> {
    let mut out = Vec::new();
    for c in &cs.changes {
        // A change of `Type` under the same logical id replaces the deployed resource: its
        // old type is the one whose data goes.
        let old_type = deployed
            .resources
            .get(&c.logical_id)
            .map(|r| r.type_name.as_str());
        let type_name = match old_type {
            Some(t) if is_stateful(t) => t,
            _ if is_stateful(&c.type_name) => c.type_name.as_str(),
            _ => continue,
        };
        let why = match c.action {
            Action::Add => continue,
            Action::Modify => {
                if !matches!(
                    c.replacement,
                    Some(Replacement::True | Replacement::Conditional)
                ) {
                    continue;
                }
                let retained = plan
                    .resources
                    .iter()
                    .find(|r| r.name == c.logical_id)
                    .is_some_and(|r| r.update_replace_policy == "Retain");
                if retained {
                    continue;
                }
                Why::Replacement {
                    properties: c
                        .details
                        .iter()
                        .filter(|d| d.requires_recreation != Replacement::False)
                        .map(|d| d.name.clone())
                        .collect(),
                }
            }
            Action::Remove => {
                let retained = deployed
                    .resources
                    .get(&c.logical_id)
                    .is_some_and(|r| r.deletion_policy == "Retain");
                if retained {
                    continue;
                }
                Why::Removed
            }
        };
        out.push(DataLoss {
            logical_id: c.logical_id.clone(),
            type_name: type_name.to_owned(),
            physical_id: c.physical_id.clone(),
            why,
        });
    }
    out
}

/// The losses of deleting a stack with these resources.
pub fn of_stack_delete(deployed: &StackState) -> Vec<DataLoss> {
    deployed
        .resources
        .iter()
        .filter(|(_, r)| is_stateful(&r.type_name) && r.deletion_policy != "Retain")
        .map(|(l, r)| DataLoss {
            logical_id: l.clone(),
            type_name: r.type_name.clone(),
            physical_id: (!r.physical_id.is_empty()).then(|| r.physical_id.clone()),
            why: Why::StackDeleted,
        })
        .collect()
}

/// Every loss on one line, for an error message.
pub fn describe(losses: &[DataLoss]) -> String {
    losses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_template::{classify, parse, plan, PlanInput, ResourceSchemas};
    use std::collections::BTreeMap;

    /// Deploys `before` (every resource recorded with its properties), then classifies
    /// `after` against it.
    fn losses(before: &str, after: &str) -> Vec<String> {
        let t0 = parse(before, "t.yaml").unwrap();
        let p0 = plan(&t0, &PlanInput::default()).unwrap();
        let mut state = StackState::default();
        for r in &p0.resources {
            let d = spindle_template::changeset::DeployedResource::from_resolved(
                r,
                &format!("phys-{}", r.name),
                BTreeMap::new(),
            );
            state.resources.insert(r.name.clone(), d);
        }
        let t1 = parse(after, "t.yaml").unwrap();
        let p1 = plan(&t1, &PlanInput::default()).unwrap();
        let cs = classify(
            &state,
            &p1,
            ResourceSchemas::bundled(),
            &spindle_template::NoExternal,
        )
        .unwrap();
        of_change_set(&cs, &state, &p1)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    const SECRET: &str = "Resources:\n  S:\n    Type: AWS::SecretsManager::Secret\n    Properties: {Name: a, Description: d}\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: p, Type: String, Value: v}\n";

    #[test]
    fn replacing_or_deleting_a_stateful_resource_is_data_loss() {
        let renamed = SECRET.replace("Name: a,", "Name: b,");
        let cases: Vec<(&str, String, Vec<&str>)> = vec![
            ("no change", SECRET.into(), vec![]),
            (
                "an in-place change",
                SECRET.replace("Description: d", "Description: e"),
                vec![],
            ),
            (
                "a create-only change replaces",
                renamed.clone(),
                vec!["`S` (AWS::SecretsManager::Secret phys-S) is replaced because Name changed"],
            ),
            (
                "UpdateReplacePolicy Retain keeps the old one",
                renamed.replace(
                    "    Type: AWS::SecretsManager::Secret\n",
                    "    Type: AWS::SecretsManager::Secret\n    UpdateReplacePolicy: Retain\n",
                ),
                vec![],
            ),
            (
                "removed from the template",
                "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: p, Type: String, Value: v}\n".into(),
                vec!["`S` (AWS::SecretsManager::Secret phys-S) is deleted: it was removed from the template"],
            ),
            (
                "a change of Type under the same logical id replaces the stateful one",
                SECRET.replace(
                    "    Type: AWS::SecretsManager::Secret\n    Properties: {Name: a, Description: d}\n",
                    "    Type: AWS::SSM::Parameter\n    Properties: {Name: a, Type: String, Value: v}\n",
                ),
                vec!["`S` (AWS::SecretsManager::Secret phys-S) is replaced because Type changed"],
            ),
            (
                "a stateless resource replaced is no loss",
                SECRET.replace("Name: p,", "Name: q,"),
                vec![],
            ),
        ];
        for (name, after, want) in cases {
            assert_eq!(losses(SECRET, &after), want, "{name}");
        }
        // Removing a resource whose DeletionPolicy is Retain loses nothing.
        let retained = SECRET.replace(
            "    Type: AWS::SecretsManager::Secret\n",
            "    Type: AWS::SecretsManager::Secret\n    DeletionPolicy: Retain\n",
        );
        let without = "Resources:\n  P:\n    Type: AWS::SSM::Parameter\n    Properties: {Name: p, Type: String, Value: v}\n";
        assert_eq!(losses(&retained, without), Vec::<String>::new());
    }

    #[test]
    fn deleting_a_stack_loses_its_stateful_resources_unless_retained() {
        let mut state = StackState::default();
        for (id, t, policy) in [
            ("Db", "AWS::RDS::DBInstance", "Snapshot"),
            ("Vol", "AWS::EC2::Volume", "Retain"),
            ("Vpc", "AWS::EC2::VPC", "Delete"),
            ("S", "AWS::SecretsManager::Secret", "Delete"),
        ] {
            state.resources.insert(
                id.into(),
                spindle_template::changeset::DeployedResource {
                    type_name: t.into(),
                    physical_id: format!("{id}-1"),
                    properties: BTreeMap::new(),
                    sensitive: Default::default(),
                    attributes: BTreeMap::new(),
                    metadata: None,
                    metadata_sensitive: false,
                    dependencies: vec![],
                    deletion_policy: policy.into(),
                    update_replace_policy: "Delete".into(),
                    update_policy: None,
                    creation_policy: None,
                },
            );
        }
        assert_eq!(
            describe(&of_stack_delete(&state)),
            "`Db` (AWS::RDS::DBInstance Db-1) is deleted with the stack; `S` (AWS::SecretsManager::Secret S-1) is deleted with the stack"
        );
        assert!(STATEFUL_TYPES.iter().all(|t| is_stateful(t)));
        assert!(!is_stateful("AWS::EC2::Instance"));
    }
}
