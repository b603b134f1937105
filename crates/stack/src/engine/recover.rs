//! Crash recovery: finishing or undoing, from the journal, every operation a killed
//! daemon left in progress (`recover`, `reconcile`).

use super::*;

impl Engine {
    /// Finishes every operation the journal shows in progress (after a crash): interrupted
    /// provider calls are reconciled, then creates and updates roll back (or stop failed
    /// with `disable_rollback`), and rollbacks, cleanups and deletes resume. Also makes the
    /// wait condition handles of existing stacks signalable again. Call it once at startup,
    /// before serving requests.
    pub async fn recover(&self) -> Result<Vec<OperationOutcome>, EngineError> {
        let names = self.journal.stacks().map_err(|err| EngineError::Journal {
            stack: String::new(),
            err,
        })?;
        let mut out = Vec::new();
        for name in names {
            let view = self.stack(&name)?;
            // Handles live in memory: make the existing ones signalable again.
            for r in view.deployed.state.resources.values() {
                if r.type_name == "AWS::CloudFormation::WaitConditionHandle" {
                    self.waits
                        .register(crate::wait::handle_id_of(&r.physical_id));
                }
            }
            if !view.in_progress {
                continue;
            }
            let Ok(_guard) = self.lock(&name) else {
                // Another task (a parent stack's recovery) is handling it.
                continue;
            };
            let view = self.stack(&name)?;
            if view.in_progress {
                out.push(self.recover_locked(view).await?);
            }
        }
        Ok(out)
    }

    /// Recovers one stack whose lock the caller holds.
    pub(super) async fn recover_locked(
        &self,
        view: StackView,
    ) -> Result<OperationOutcome, EngineError> {
        let mut op = self.op_for(view);
        let pending: Vec<Intent> = op.view.pending.values().cloned().collect();
        for intent in pending {
            self.reconcile(&mut op, intent).await?;
        }
        let reason = op
            .view
            .first_failure
            .clone()
            .unwrap_or_else(|| INTERRUPTED.to_string());
        match op.view.status {
            Some(StackStatus::CreateInProgress | StackStatus::UpdateInProgress) => {
                self.fail(&mut op, reason).await?
            }
            Some(StackStatus::UpdateCompleteCleanupInProgress) => {
                self.delete_retired(&mut op).await?;
                op.write(Entry::End {
                    status: StackStatus::UpdateComplete,
                    reason: None,
                    effects: Vec::new(),
                })?;
            }
            Some(StackStatus::RollbackInProgress) => {
                let reason = op.view.reason.clone().unwrap_or(reason);
                self.rollback_create(&mut op, reason).await?
            }
            Some(StackStatus::UpdateRollbackInProgress) => {
                let reason = op.view.reason.clone().unwrap_or(reason);
                self.rollback_update(&mut op, reason).await?
            }
            Some(StackStatus::UpdateRollbackCompleteCleanupInProgress) => {
                self.delete_retired(&mut op).await?;
                let reason = op.view.reason.clone();
                op.write(Entry::End {
                    status: StackStatus::UpdateRollbackComplete,
                    reason,
                    effects: Vec::new(),
                })?;
            }
            Some(StackStatus::DeleteInProgress) => self.finish_delete(&mut op).await?,
            Some(status) => {
                let reason = op.view.reason.clone();
                op.write(Entry::End {
                    status,
                    reason,
                    effects: Vec::new(),
                })?;
            }
            None => {}
        }
        Ok(op.outcome())
    }

    /// Settles a provider call whose outcome was never journaled.
    pub(super) async fn reconcile(
        &self,
        op: &mut Op<'_>,
        intent: Intent,
    ) -> Result<(), EngineError> {
        let (_, ok_status, fail_status) = statuses(intent.step);
        let outcome = |status, reason: &str, effects, physical_id| {
            Entry::Outcome(Outcome {
                token: Some(intent.token.clone()),
                logical_id: intent.logical_id.clone(),
                type_name: intent.type_name.clone(),
                physical_id,
                status,
                reason: Some(reason.to_string()),
                effects,
            })
        };
        if is_create(intent.step) {
            let Some(provider) = self.registry.get(&intent.type_name).cloned() else {
                return Err(EngineError::Reconcile {
                    stack: op.view.name.clone(),
                    logical_id: intent.logical_id.clone(),
                    err: ProviderError::NotSupported {
                        operation: "read",
                        type_name: intent.type_name.clone(),
                    },
                });
            };
            let properties = intent
                .desired
                .as_ref()
                .map(|d| d.properties.clone())
                .unwrap_or_default();
            let names = op.names.clone();
            let cx = ResourceCx {
                engine: self,
                stack_name: &names.stack,
                logical_id: &intent.logical_id,
                type_name: &intent.type_name,
                token: &intent.token,
                template_file: &names.template_file,
                context: &names.context,
            };
            let found = provider
                .read(ReadRequest {
                    cx,
                    physical_id: None,
                    properties,
                })
                .await
                .map_err(|err| EngineError::Reconcile {
                    stack: op.view.name.clone(),
                    logical_id: intent.logical_id.clone(),
                    err,
                })?;
            let entry = match found {
                Some(f) => {
                    let mut r = intent.desired.clone().unwrap_or_else(|| DeployedResource {
                        type_name: intent.type_name.clone(),
                        physical_id: String::new(),
                        properties: BTreeMap::new(),
                        sensitive: Default::default(),
                        attributes: BTreeMap::new(),
                        metadata: None,
                        metadata_sensitive: false,
                        dependencies: Vec::new(),
                        deletion_policy: "Delete".into(),
                        update_replace_policy: "Delete".into(),
                        update_policy: None,
                        creation_policy: None,
                    });
                    r.physical_id = f.physical_id.clone();
                    r.attributes = f.attributes;
                    let effects = success_effects(&op.view, intent.step, &intent.logical_id, r);
                    outcome(
                        ok_status,
                        "the provider finished the call before the engine stopped; adopted on restart",
                        effects,
                        Some(f.physical_id),
                    )
                }
                None => outcome(
                    fail_status,
                    "interrupted by an engine restart before the resource was made",
                    Vec::new(),
                    None,
                ),
            };
            return op.write(entry);
        }
        let entry = match intent.step {
            Step::Modify => {
                // Maybe applied: record it as applied so the rollback reverts it.
                let mut effects = Vec::new();
                if let (Some(mut r), Some(cur)) = (
                    intent.desired.clone(),
                    op.view.deployed.state.resources.get(&intent.logical_id),
                ) {
                    r.physical_id = cur.physical_id.clone();
                    r.attributes = cur.attributes.clone();
                    effects.push(Effect::Set {
                        logical_id: intent.logical_id.clone(),
                        resource: r,
                    });
                }
                outcome(
                    fail_status,
                    INTERRUPTED,
                    effects,
                    intent.physical_id.clone(),
                )
            }
            // Reverts and deletes are retried by the phase that resumes.
            _ => outcome(
                fail_status,
                INTERRUPTED,
                Vec::new(),
                intent.physical_id.clone(),
            ),
        };
        op.write(entry)
    }
}
