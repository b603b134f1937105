//! Drift detection: what the template says against what providers read back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spindle_template::{Context, StackState, Value};

use crate::engine::{Engine, EngineError};
use crate::journal::StackView;
use crate::provider::{ReadRequest, ResourceCx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DriftStatus {
    InSync,
    Modified,
    Deleted,
    /// The provider can't read this type, or reading failed (see `reason`).
    NotChecked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PropertyDifference {
    pub name: String,
    /// JSON text; `****` for `NoEcho` values.
    pub expected: Option<String>,
    pub actual: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceDrift {
    pub logical_id: String,
    pub type_name: String,
    pub physical_id: String,
    pub status: DriftStatus,
    pub differences: Vec<PropertyDifference>,
    pub reason: Option<String>,
}

impl Engine {
    /// Reads every resource of a stack back through its provider and compares the
    /// properties the template set (properties the template leaves out are not compared).
    pub async fn drift(&self, name: &str) -> Result<Vec<ResourceDrift>, EngineError> {
        let view = self.stack(name)?;
        if !view.exists() {
            return Err(EngineError::NotFound {
                stack: name.to_string(),
            });
        }
        Ok(self.drift_of(&view).await.0)
    }

    /// The recorded state with every drifted property replaced by what its provider reads
    /// back: classifying a plan against it yields the updates that revert the drift.
    pub(crate) async fn drifted_state(&self, view: &StackView) -> StackState {
        let mut state = view.deployed.state.clone();
        for (logical_id, actual) in self.drift_of(view).await.1 {
            if let Some(r) = state.resources.get_mut(&logical_id) {
                for (k, v) in actual {
                    match v {
                        Some(v) => r.properties.insert(k, v),
                        None => r.properties.remove(&k),
                    };
                }
            }
        }
        state
    }

    /// Drift of every resource, and for modified ones the actual value of each differing
    /// property (`None`: absent).
    #[allow(clippy::type_complexity)]
    async fn drift_of(
        &self,
        view: &StackView,
    ) -> (
        Vec<ResourceDrift>,
        BTreeMap<String, BTreeMap<String, Option<Value>>>,
    ) {
        let name = view.name.as_str();
        let mut actuals = BTreeMap::new();
        let (template_file, context) = match &view.operation {
            Some(o) => {
                let mut c = Context::new(&o.account_id, &o.region, name);
                c.stack_id = o.stack_id.clone();
                (o.template_file.clone(), c)
            }
            None => (String::new(), Context::default()),
        };
        let mut out = Vec::new();
        for (logical_id, r) in &view.deployed.state.resources {
            let mut d = ResourceDrift {
                logical_id: logical_id.clone(),
                type_name: r.type_name.clone(),
                physical_id: r.physical_id.clone(),
                status: DriftStatus::InSync,
                differences: Vec::new(),
                reason: None,
            };
            let Some(provider) = self.registry().get(&r.type_name).cloned() else {
                d.status = DriftStatus::NotChecked;
                d.reason = Some(format!("no provider supports {}", r.type_name));
                out.push(d);
                continue;
            };
            let cx = ResourceCx {
                engine: self,
                stack_name: name,
                logical_id,
                type_name: &r.type_name,
                token: "drift",
                template_file: &template_file,
                context: &context,
            };
            let read = provider
                .read(ReadRequest {
                    cx,
                    physical_id: Some(r.physical_id.clone()),
                    properties: r.properties.clone(),
                })
                .await;
            match read {
                Err(e) => {
                    d.status = DriftStatus::NotChecked;
                    d.reason = Some(e.to_string());
                }
                Ok(None) => d.status = DriftStatus::Deleted,
                Ok(Some(actual)) => {
                    let mut differing = BTreeMap::new();
                    for (k, expected) in &r.properties {
                        let got = actual.properties.get(k);
                        if got != Some(expected) {
                            differing.insert(k.clone(), got.cloned());
                            let masked = r.sensitive.contains(k);
                            d.differences.push(PropertyDifference {
                                name: k.clone(),
                                expected: Some(expected.render(masked)),
                                actual: got.map(|v| v.render(masked)),
                            });
                        }
                    }
                    if !d.differences.is_empty() {
                        d.status = DriftStatus::Modified;
                        actuals.insert(logical_id.clone(), differing);
                    }
                }
            }
            out.push(d);
        }
        (out, actuals)
    }
}
