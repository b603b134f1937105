//! Deleting: a stack (`delete_stack`, `finish_delete`) and the retired resources an
//! operation leaves for its cleanup phase (`delete_retired`).

use super::*;

impl Engine {
    /// Deletes every retired resource, dependents before what they depend on, in parallel
    /// where nothing depends on each other; `Retain` ones are skipped. A resource whose
    /// delete fails stays retired, and so does everything it depends on. Returns the first
    /// failure.
    pub(super) async fn delete_retired(
        &self,
        op: &mut Op<'_>,
    ) -> Result<Option<String>, EngineError> {
        let list = op.view.deployed.retired.clone();
        let graph = retired_graph(&list);
        let keys: Vec<String> = (0..list.len()).map(|i| i.to_string()).collect();
        let mut deleted: HashSet<&str> = HashSet::new();
        let mut attempted: HashSet<&str> = HashSet::new();
        let mut running_keys: HashSet<&str> = HashSet::new();
        let mut running: FuturesUnordered<BoxFuture<'_, (usize, CallDone)>> =
            FuturesUnordered::new();
        let max = self.options.max_concurrency.max(1);
        let mut first = None;
        loop {
            let mut launch = Vec::new();
            loop {
                let ready: Vec<usize> = graph
                    .ready_for_delete(&deleted, &running_keys)
                    .into_iter()
                    .filter(|k| !attempted.contains(k))
                    .filter_map(|k| k.parse::<usize>().ok())
                    .collect();
                let mut progressed = false;
                for i in ready {
                    if running_keys.len() >= max {
                        break;
                    }
                    let key = keys[i].as_str();
                    let r = &list[i];
                    attempted.insert(key);
                    if r.retain {
                        op.stage(Entry::Outcome(Outcome {
                            token: None,
                            logical_id: r.logical_id.clone(),
                            type_name: r.resource.type_name.clone(),
                            physical_id: Some(r.resource.physical_id.clone()),
                            status: ResourceStatus::DeleteSkipped,
                            reason: Some("the resource's policy is Retain".into()),
                            effects: vec![Effect::Unretire {
                                logical_id: r.logical_id.clone(),
                                physical_id: r.resource.physical_id.clone(),
                            }],
                        }));
                        deleted.insert(key);
                        progressed = true;
                        continue;
                    }
                    let Some(provider) = self.registry.get(&r.resource.type_name).cloned() else {
                        let reason = format!(
                            "no provider supports resource type {}",
                            r.resource.type_name
                        );
                        first.get_or_insert(format!(
                            "Resource {} failed: DELETE_FAILED: {reason}",
                            r.logical_id
                        ));
                        op.stage(Entry::Outcome(Outcome {
                            token: None,
                            logical_id: r.logical_id.clone(),
                            type_name: r.resource.type_name.clone(),
                            physical_id: Some(r.resource.physical_id.clone()),
                            status: ResourceStatus::DeleteFailed,
                            reason: Some(reason),
                            effects: Vec::new(),
                        }));
                        continue;
                    };
                    let call = Call {
                        token: op.next_token(&r.logical_id),
                        logical_id: r.logical_id.clone(),
                        type_name: r.resource.type_name.clone(),
                        step: Step::Delete,
                        timeout: provider
                            .timeout(&r.resource.properties)
                            .unwrap_or(self.options.default_timeout),
                        provider,
                        physical_id: Some(r.resource.physical_id.clone()),
                        properties: r.resource.properties.clone(),
                        previous_properties: BTreeMap::new(),
                        previous_attributes: BTreeMap::new(),
                        desired: None,
                        signals: None,
                    };
                    self.stage_intent(op, &call);
                    running_keys.insert(key);
                    launch.push((i, call));
                }
                if !progressed {
                    break;
                }
            }
            op.flush()?;
            for (i, call) in launch {
                let fut = self.invoke(op.names.clone(), call);
                running.push(Box::pin(async move { (i, fut.await) }));
            }
            let Some(done) = running.next().await else {
                break;
            };
            let mut batch = vec![done];
            while let Some(Some(more)) = running.next().now_or_never() {
                batch.push(more);
            }
            for (i, done) in batch {
                let key = keys[i].as_str();
                running_keys.remove(key);
                let logical_id = done.call.logical_id.clone();
                if self.finish(op, done)? {
                    deleted.insert(key);
                } else if first.is_none() {
                    first = op.view.last_failure_of(&logical_id);
                }
            }
        }
        op.flush()?;
        Ok(first)
    }

    /// Deletes a stack: every resource, dependents first; `Retain` ones are kept.
    /// Deletes a stack; refused ([`EngineError::DataLoss`]) if that deletes a stateful
    /// resource ([`crate::dataloss`]).
    pub async fn delete_stack(&self, name: &str) -> Result<OperationOutcome, EngineError> {
        self.delete_stack_allowing(name, false).await
    }

    /// Deletes a stack, losing the data of its stateful resources only if `allow_data_loss`.
    pub async fn delete_stack_allowing(
        &self,
        name: &str,
        allow_data_loss: bool,
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
            Some(StackStatus::DeleteComplete) => {
                return Ok(OperationOutcome {
                    stack: name.to_string(),
                    status: StackStatus::DeleteComplete,
                    reason: view.reason,
                })
            }
            _ => {}
        }
        if view.settings.termination_protection {
            return Err(EngineError::TerminationProtected {
                stack: name.to_string(),
            });
        }
        if !allow_data_loss {
            let losses = crate::dataloss::of_stack_delete(&view.deployed.state);
            if !losses.is_empty() {
                return Err(EngineError::DataLoss {
                    stack: name.to_string(),
                    losses,
                });
            }
        }
        for o in &view.deployed.outputs {
            if let Some(export) = &o.export_name {
                if let Some(importer) = self.importers(export, name).into_iter().next() {
                    return Err(EngineError::ExportInUse {
                        stack: name.to_string(),
                        export: export.clone(),
                        importer,
                        what: "removed by deleting the stack",
                    });
                }
            }
        }
        let mut operation = view
            .operation
            .clone()
            .expect("a stack with a status has an operation");
        operation.kind = OperationKind::Delete;
        operation.previous = view.deployed.clone();
        operation.disable_rollback = false;
        let effects = retire_all(&view.deployed.state);
        let mut op = self.op_for(view);
        op.write(Entry::Begin {
            operation,
            status: StackStatus::DeleteInProgress,
            effects,
        })?;
        self.finish_delete(&mut op).await?;
        Ok(op.outcome())
    }

    pub(super) async fn finish_delete(&self, op: &mut Op<'_>) -> Result<(), EngineError> {
        let remaining = retire_all(&op.view.deployed.state);
        if !remaining.is_empty() {
            op.write(Entry::Status {
                status: StackStatus::DeleteInProgress,
                reason: None,
                effects: remaining,
            })?;
        }
        match self.delete_retired(op).await? {
            None => op.write(Entry::End {
                status: StackStatus::DeleteComplete,
                reason: None,
                effects: vec![
                    Effect::Outputs {
                        outputs: Vec::new(),
                    },
                    Effect::Imports {
                        imports: Vec::new(),
                    },
                ],
            }),
            Some(f) => op.write(Entry::End {
                status: StackStatus::DeleteFailed,
                reason: Some(f),
                effects: Vec::new(),
            }),
        }
    }
}
