//! `AWS::CloudFormation::Stack`: a nested stack from a local template. `TemplateURL` is a
//! file path, relative to the parent template's directory (a `file://` prefix is
//! accepted); `Parameters` are passed as strings. The child is deployed, updated and
//! deleted through the same engine, journaled under its own name
//! (`{parent}-{LogicalId}-{hash}`), and its outputs are the attributes `Outputs.Name`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use spindle_template::{
    is_remote_url, nested_template_path, parse, plan, Context, Diagnostic, PlanInput, ResourceView,
    ValidateOptions, Value,
};

use crate::engine::{DeployRequest, EngineError};
use crate::provider::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, ResourceCx, UpdateRequest,
};
use crate::short_hash;
use crate::status::StackStatus;

/// The nested stack provider.
#[derive(Debug, Default)]
pub struct NestedStackProvider;

fn child_name(cx: &ResourceCx<'_>) -> String {
    format!(
        "{}-{}-{}",
        cx.stack_name,
        cx.logical_id,
        short_hash(cx.token)
    )
}

/// The stack name inside a stack id (`arn:...:stack/NAME/UUID`), or the id itself.
fn name_of(physical_id: &str) -> &str {
    physical_id
        .split_once(":stack/")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(physical_id)
}

/// The nested template's path (relative to the parent template's directory) and text:
/// from the deploy's bundle when it was sent one, else from the file.
fn template_source(
    cx: &ResourceCx<'_>,
    p: &BTreeMap<String, Value>,
) -> Result<(String, String), ProviderError> {
    let url = p
        .get("TemplateURL")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::InvalidRequest("TemplateURL is required".into()))?;
    if is_remote_url(url) {
        return Err(ProviderError::InvalidRequest(format!(
            "TemplateURL `{url}` is remote; Spindle reads nested templates from local paths"
        )));
    }
    let path = nested_template_path(cx.template_file, url);
    match cx.engine.nested_templates(cx.stack_name) {
        Some(bundle) => match bundle.get(&path) {
            Some(src) => Ok((path, src.clone())),
            None => Err(ProviderError::InvalidRequest(format!(
                "nested template `{path}` (TemplateURL `{url}`) was not sent with the request; the client bundles the local files a template names"
            ))),
        },
        None => {
            let src = std::fs::read_to_string(&path).map_err(|e| {
                ProviderError::InvalidRequest(format!("cannot read nested template `{path}`: {e}"))
            })?;
            Ok((path, src))
        }
    }
}

fn parameters(p: &BTreeMap<String, Value>) -> Result<BTreeMap<String, String>, ProviderError> {
    let mut out = BTreeMap::new();
    match p.get("Parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Map(m)) => {
            for (k, v) in m {
                let s = match v {
                    Value::List(items) => items
                        .iter()
                        .map(|i| i.scalar_string().unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.scalar_string().ok_or_else(|| {
                        ProviderError::InvalidRequest(format!(
                            "Parameters.{k} must be a string, got {other}"
                        ))
                    })?,
                };
                out.insert(k.clone(), s);
            }
        }
        Some(other) => {
            return Err(ProviderError::InvalidRequest(format!(
                "Parameters must be a mapping, got {other}"
            )))
        }
    }
    Ok(out)
}

fn outputs_of(cx: &ResourceCx<'_>, name: &str) -> Result<ProviderOutput, ProviderError> {
    let view = cx
        .engine
        .stack(name)
        .map_err(|e| ProviderError::Failed(e.to_string()))?;
    let stack_id = view
        .operation
        .as_ref()
        .map(|o| o.stack_id.clone())
        .unwrap_or_else(|| name.to_string());
    let attributes = view
        .deployed
        .outputs
        .iter()
        .map(|o| (format!("Outputs.{}", o.name), o.value.clone()))
        .collect();
    Ok(ProviderOutput {
        physical_id: stack_id,
        attributes,
    })
}

/// Reads and plans the child's template (synchronous: nothing here lives across an await).
fn plan_child(
    cx: &ResourceCx<'_>,
    name: &str,
    p: &BTreeMap<String, Value>,
) -> Result<(spindle_template::Plan, String), ProviderError> {
    let (file, src) = template_source(cx, p)?;
    let template = parse(&src, &file).map_err(|d| ProviderError::InvalidRequest(d.to_string()))?;
    let mut context = Context::new(&cx.context.account_id, &cx.context.region, name);
    context.notification_arns = cx.context.notification_arns.clone();
    // A nested stack is the same caller's operation.
    context.grants = cx.context.grants.clone();
    let registry = cx.engine.registry();
    let supported = |t: &str| registry.supports(t);
    let rules = |v: &spindle_template::ResourceView<'_>| registry.validate(v);
    let input = PlanInput {
        parameters: parameters(p)?,
        context,
        validate: ValidateOptions {
            supported_type: Some(&supported),
            resource_rules: Some(&rules),
            ..ValidateOptions::default()
        },
        ..PlanInput::default()
    };
    let planned =
        plan(&template, &input).map_err(|d| ProviderError::InvalidRequest(d.to_string()))?;
    Ok((planned, src))
}

/// Plans and deploys the child stack `name` to the template the properties name.
async fn deploy_child(
    cx: &ResourceCx<'_>,
    name: &str,
    p: &BTreeMap<String, Value>,
    expect: StackStatus,
) -> Result<ProviderOutput, ProviderError> {
    let (planned, src) = plan_child(cx, name, p)?;
    let mut req = DeployRequest::new(planned);
    req.template_body = Some(src);
    req.parent = Some(cx.stack_name.to_string());
    // The child's own nested stacks come from the same bundle.
    req.nested_templates = cx.engine.nested_templates(cx.stack_name);
    // Boxed: the child's deploy calls providers, which may be this one again.
    let deploy: BoxFuture<'_, _> = Box::pin(cx.engine.deploy(req));
    match deploy.await {
        Ok(o) if o.status == expect => outputs_of(cx, name),
        Ok(o) => Err(ProviderError::Failed(format!(
            "nested stack {name} ended in {}: {}",
            o.status,
            o.reason.unwrap_or_default()
        ))),
        Err(EngineError::NoChanges { .. }) => outputs_of(cx, name),
        Err(e) => Err(ProviderError::Failed(format!("nested stack {name}: {e}"))),
    }
}

/// How deep nested stacks may go: a template that includes itself stops here.
const MAX_DEPTH: usize = 8;

/// How many ancestors the stack making the call has.
fn nesting_depth(cx: &ResourceCx<'_>) -> Result<usize, ProviderError> {
    let mut depth = 0;
    let mut name = cx.stack_name.to_string();
    while depth <= MAX_DEPTH {
        let view = cx
            .engine
            .stack(&name)
            .map_err(|e| ProviderError::Failed(e.to_string()))?;
        match view.operation.and_then(|o| o.parent) {
            Some(parent) => {
                depth += 1;
                name = parent;
            }
            None => break,
        }
    }
    Ok(depth)
}

fn timeout_of(p: &BTreeMap<String, Value>) -> Option<Duration> {
    p.get("TimeoutInMinutes")
        .and_then(Value::scalar_string)
        .and_then(|s| s.parse::<u64>().ok())
        .map(|m| Duration::from_secs(m * 60))
}

impl Provider for NestedStackProvider {
    fn validate(&self, view: &ResourceView<'_>) -> Vec<Diagnostic> {
        nested_stack_rules(view)
    }

    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let name = child_name(&cx);
            let view = cx
                .engine
                .stack(&name)
                .map_err(|e| ProviderError::Failed(e.to_string()))?;
            if view.status == Some(StackStatus::CreateComplete) {
                // Created by this very call before a crash.
                return outputs_of(&cx, &name);
            }
            let depth = nesting_depth(&cx)?;
            if depth >= MAX_DEPTH {
                return Err(ProviderError::InvalidRequest(format!(
                    "stack {} is already nested {depth} levels deep, the most allowed (does a template include itself?)",
                    cx.stack_name
                )));
            }
            let r = deploy_child(&cx, &name, &req.properties, StackStatus::CreateComplete).await;
            if r.is_err() {
                // A failed child has rolled back; remove its record like CloudFormation.
                let delete: BoxFuture<'_, _> = Box::pin(cx.engine.delete_stack(&name));
                let _ = delete.await;
            }
            r
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let name = name_of(&req.physical_id).to_string();
            deploy_child(&req.cx, &name, &req.properties, StackStatus::UpdateComplete).await
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let name = name_of(&req.physical_id).to_string();
            let delete: BoxFuture<'_, _> = Box::pin(req.cx.engine.delete_stack(&name));
            match delete.await {
                Ok(o) if o.status == StackStatus::DeleteComplete => Ok(()),
                Ok(o) => Err(ProviderError::Failed(format!(
                    "nested stack {name} ended in {}: {}",
                    o.status,
                    o.reason.unwrap_or_default()
                ))),
                Err(EngineError::NotFound { .. }) => Ok(()),
                Err(e) => Err(ProviderError::Failed(format!("nested stack {name}: {e}"))),
            }
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let cx = req.cx;
            let name = match &req.physical_id {
                Some(p) => name_of(p).to_string(),
                None => child_name(&cx),
            };
            let view = cx
                .engine
                .stack(&name)
                .map_err(|e| ProviderError::Failed(e.to_string()))?;
            if !view.exists() {
                return Ok(None);
            }
            let out = outputs_of(&cx, &name)?;
            Ok(Some(ReadOutput {
                physical_id: out.physical_id,
                properties: req.properties,
                attributes: out.attributes,
            }))
        })
    }

    fn timeout(&self, properties: &BTreeMap<String, Value>) -> Option<Duration> {
        timeout_of(properties)
    }
}

/// The nested stack provider's template rules: a literal remote `TemplateURL` (`s3://`,
/// `https://`) can't be deployed, since nested templates are read from local paths.
pub fn nested_stack_rules(view: &ResourceView<'_>) -> Vec<Diagnostic> {
    let Some(url) = view.property("TemplateURL") else {
        return Vec::new();
    };
    match url.as_str() {
        Some(u) if is_remote_url(u) => vec![view.diag(
            url.pos,
            "TemplateURL",
            format!("TemplateURL `{u}` is remote; Spindle reads nested templates from local paths (write the template's path relative to this file)"),
        )],
        _ => Vec::new(),
    }
}

/// The types [`register_builtins`] registers.
pub const BUILTIN_TYPES: &[&str] = &[
    "AWS::CloudFormation::Stack",
    "AWS::CloudFormation::WaitConditionHandle",
    "AWS::CloudFormation::WaitCondition",
    "AWS::SSM::Parameter",
];

/// Registers the nested stack, wait condition and SSM parameter providers.
pub fn register_builtins(
    registry: &mut crate::ProviderRegistry,
    params: Arc<dyn crate::ssm::ParamStore>,
) -> &mut crate::ProviderRegistry {
    registry
        .register("AWS::CloudFormation::Stack", Arc::new(NestedStackProvider))
        .register(
            "AWS::CloudFormation::WaitConditionHandle",
            Arc::new(crate::wait::WaitConditionHandleProvider),
        )
        .register(
            "AWS::CloudFormation::WaitCondition",
            Arc::new(crate::wait::WaitConditionProvider),
        )
        .register(
            "AWS::SSM::Parameter",
            Arc::new(crate::ssm::SsmParameterProvider::new(params)),
        )
}

#[cfg(test)]
mod registry_tests {
    #[test]
    fn builtin_types_are_what_register_builtins_registers() {
        let mut registry = crate::ProviderRegistry::new();
        super::register_builtins(
            &mut registry,
            std::sync::Arc::new(crate::ssm::MemoryParamStore::default()),
        );
        let mut want = super::BUILTIN_TYPES.to_vec();
        want.sort_unstable();
        assert_eq!(registry.types(), want);
    }
}
