//! Rolling back: a failed create back to nothing, a failed update back to the previous
//! template (`rollback_update`), and `continue_rollback` for a stack left in
//! `UPDATE_ROLLBACK_FAILED`.

use super::*;

impl Engine {
    pub(super) async fn rollback_create(
        &self,
        op: &mut Op<'_>,
        reason: String,
    ) -> Result<(), EngineError> {
        let effects = retire_all(&op.view.deployed.state);
        if op.view.status != Some(StackStatus::RollbackInProgress) || !effects.is_empty() {
            op.write(Entry::Status {
                status: StackStatus::RollbackInProgress,
                reason: Some(reason.clone()),
                effects,
            })?;
        }
        let failure = self.delete_retired(op).await?;
        let (status, reason) = match failure {
            None => (StackStatus::RollbackComplete, reason),
            Some(f) => (
                StackStatus::RollbackFailed,
                format!("{reason}; the rollback failed: {f}"),
            ),
        };
        op.write(Entry::End {
            status,
            reason: Some(reason),
            effects: vec![
                Effect::Outputs {
                    outputs: Vec::new(),
                },
                Effect::Imports {
                    imports: Vec::new(),
                },
            ],
        })
    }

    /// Reverts an update to the operation's previous state.
    pub(super) async fn rollback_update(
        &self,
        op: &mut Op<'_>,
        reason: String,
    ) -> Result<(), EngineError> {
        if op.view.status != Some(StackStatus::UpdateRollbackInProgress) {
            op.write(Entry::Status {
                status: StackStatus::UpdateRollbackInProgress,
                reason: Some(reason.clone()),
                effects: Vec::new(),
            })?;
        }
        let target = op.operation().previous.clone();
        let graph = target.state.graph();
        let order: Vec<String> = match graph.topo_order() {
            Ok(o) => o.into_iter().map(str::to_string).collect(),
            Err(_) => target.state.resources.keys().cloned().collect(),
        };
        let mut failure = None;
        for l in &order {
            let old = &target.state.resources[l];
            let cur = op.view.deployed.state.resources.get(l).cloned();
            match cur {
                Some(cur) if cur.physical_id == old.physical_id => {
                    if cur == *old {
                        continue;
                    }
                    if cur.properties == old.properties && cur.type_name == old.type_name {
                        op.write(Entry::Outcome(Outcome {
                            token: None,
                            logical_id: l.clone(),
                            type_name: old.type_name.clone(),
                            physical_id: Some(old.physical_id.clone()),
                            status: ResourceStatus::UpdateComplete,
                            reason: None,
                            effects: vec![Effect::Set {
                                logical_id: l.clone(),
                                resource: old.clone(),
                            }],
                        }))?;
                        continue;
                    }
                    let Some(provider) = self.registry.get(&old.type_name).cloned() else {
                        failure = Some(format!(
                            "no provider supports resource type {}",
                            old.type_name
                        ));
                        break;
                    };
                    let call = Call {
                        token: op.next_token(l),
                        logical_id: l.clone(),
                        type_name: old.type_name.clone(),
                        step: Step::Revert,
                        timeout: provider
                            .timeout(&old.properties)
                            .unwrap_or(self.options.default_timeout),
                        provider,
                        physical_id: Some(old.physical_id.clone()),
                        properties: old.properties.clone(),
                        previous_properties: cur.properties.clone(),
                        previous_attributes: cur.attributes.clone(),
                        desired: Some(old.clone()),
                        signals: None,
                    };
                    if !self.call_one(op, call).await? {
                        failure = Some(format!("Resource {l} failed to roll back its update"));
                        break;
                    }
                }
                cur => {
                    let copy = op
                        .view
                        .deployed
                        .retired
                        .iter()
                        .find(|r| &r.logical_id == l && r.resource.physical_id == old.physical_id)
                        .cloned();
                    if copy.is_some() {
                        let mut effects = vec![Effect::Unretire {
                            logical_id: l.clone(),
                            physical_id: old.physical_id.clone(),
                        }];
                        if let Some(cur) = cur {
                            effects.push(Effect::Retire(Retired {
                                logical_id: l.clone(),
                                resource: cur,
                                retain: false,
                            }));
                        }
                        effects.push(Effect::Set {
                            logical_id: l.clone(),
                            resource: old.clone(),
                        });
                        op.write(Entry::Outcome(Outcome {
                            token: None,
                            logical_id: l.clone(),
                            type_name: old.type_name.clone(),
                            physical_id: Some(old.physical_id.clone()),
                            status: ResourceStatus::UpdateComplete,
                            reason: Some(
                                "the stack points at the previous physical resource again".into(),
                            ),
                            effects,
                        }))?;
                        continue;
                    }
                    // The previous copy is gone: make it again from its properties.
                    let Some(provider) = self.registry.get(&old.type_name).cloned() else {
                        failure = Some(format!(
                            "no provider supports resource type {}",
                            old.type_name
                        ));
                        break;
                    };
                    let call = Call {
                        token: op.next_token(l),
                        logical_id: l.clone(),
                        type_name: old.type_name.clone(),
                        step: Step::Recreate,
                        timeout: provider
                            .timeout(&old.properties)
                            .unwrap_or(self.options.default_timeout),
                        provider,
                        physical_id: None,
                        properties: old.properties.clone(),
                        previous_properties: BTreeMap::new(),
                        previous_attributes: BTreeMap::new(),
                        desired: Some(old.clone()),
                        signals: None,
                    };
                    if !self.call_one(op, call).await? {
                        failure = Some(format!("Resource {l} could not be created again"));
                        break;
                    }
                }
            }
        }
        if let Some(f) = failure {
            let last = op.view.failures.last().map(|(_, d)| d.clone()).unwrap_or(f);
            return op.write(Entry::End {
                status: StackStatus::UpdateRollbackFailed,
                reason: Some(format!("{reason}; the rollback failed: {last}")),
                effects: Vec::new(),
            });
        }
        let mut effects = retire_unless(&op.view.deployed.state, |l| {
            target.state.resources.contains_key(l)
        });
        effects.push(Effect::Outputs {
            outputs: target.outputs.clone(),
        });
        effects.push(Effect::Imports {
            imports: target.imports.clone(),
        });
        effects.push(Effect::Parameters {
            parameters: target.parameters.clone(),
        });
        effects.push(Effect::Template {
            body: target.template.clone(),
        });
        op.write(Entry::Status {
            status: StackStatus::UpdateRollbackCompleteCleanupInProgress,
            reason: None,
            effects,
        })?;
        self.delete_retired(op).await?;
        op.write(Entry::End {
            status: StackStatus::UpdateRollbackComplete,
            reason: Some(reason),
            effects: Vec::new(),
        })
    }

    /// Continues rolling back a stack in `UPDATE_ROLLBACK_FAILED`. Resources in `skip` are
    /// recorded as rolled back without calling their provider (CloudFormation's
    /// `ResourcesToSkip`): use it for a resource whose revert can't succeed, after fixing
    /// or accepting it by hand.
    pub async fn continue_rollback(
        &self,
        name: &str,
        skip: &[String],
    ) -> Result<OperationOutcome, EngineError> {
        let _guard = self.lock(name)?;
        let mut view = self.stack(name)?;
        if view.in_progress {
            self.recover_locked(view).await?;
            view = self.stack(name)?;
        }
        match view.status {
            None => {
                return Err(EngineError::NotFound {
                    stack: name.to_string(),
                })
            }
            Some(StackStatus::UpdateRollbackFailed) => {}
            Some(status) => {
                return Err(EngineError::InvalidStatus {
                    stack: name.to_string(),
                    status,
                    action: "continue-rollback",
                })
            }
        }
        let mut operation = view
            .operation
            .clone()
            .expect("a stack with a status has an operation");
        for l in skip {
            if !operation.previous.state.resources.contains_key(l) {
                return Err(EngineError::CannotSkip {
                    stack: name.to_string(),
                    logical_id: l.clone(),
                    why: "it did not exist before the update, so there is nothing to roll back to",
                });
            }
        }
        let reason = view.reason.clone().unwrap_or_default();
        let reason = match reason.split_once("; the rollback failed: ") {
            Some((original, _)) => original.to_string(),
            None => reason,
        };
        operation.kind = OperationKind::ContinueRollback;
        let mut op = self.op_for(view);
        op.write(Entry::Begin {
            operation: operation.clone(),
            status: StackStatus::UpdateRollbackInProgress,
            effects: Vec::new(),
        })?;
        for l in skip {
            let old = operation.previous.state.resources[l].clone();
            let mut effects = Vec::new();
            if let Some(cur) = op.view.deployed.state.resources.get(l) {
                if cur.physical_id != old.physical_id
                    && !op
                        .view
                        .deployed
                        .retired
                        .iter()
                        .any(|r| r.resource.physical_id == cur.physical_id)
                {
                    effects.push(Effect::Retire(Retired {
                        logical_id: l.clone(),
                        resource: cur.clone(),
                        retain: false,
                    }));
                }
            }
            effects.push(Effect::Unretire {
                logical_id: l.clone(),
                physical_id: old.physical_id.clone(),
            });
            effects.push(Effect::Set {
                logical_id: l.clone(),
                resource: old.clone(),
            });
            op.write(Entry::Outcome(Outcome {
                token: None,
                logical_id: l.clone(),
                type_name: old.type_name.clone(),
                physical_id: Some(old.physical_id.clone()),
                status: ResourceStatus::UpdateComplete,
                reason: Some("skipped by continue-rollback".into()),
                effects,
            }))?;
        }
        self.rollback_update(&mut op, reason).await?;
        Ok(op.outcome())
    }
}
