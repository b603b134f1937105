//! Planning (plan time) and resolving (apply time) a template's resources and outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::ast::{Node, NodeKind};
use crate::diag::{join, Category, Diagnostic, Diagnostics, Pos, Sink};
use crate::eval::{Context, Evaluator, ResourceResolver, Unresolved};
use crate::foreach;
use crate::graph::Graph;
use crate::params::{resolve_all, ExternalResolver, NoExternal, ResolvedParameter};
use crate::template::{Resource, Template, LANGUAGE_EXTENSIONS};
use crate::validate::{resource_deps, validate, ValidateOptions};
use crate::value::{Value, MASK};

/// What a plan needs besides the template.
pub struct PlanInput<'a> {
    /// Supplied parameter values, as strings (lists comma-separated), like CloudFormation's API.
    pub parameters: BTreeMap<String, String>,
    pub context: Context,
    pub external: &'a dyn ExternalResolver,
    pub validate: ValidateOptions<'a>,
}

impl Default for PlanInput<'_> {
    fn default() -> Self {
        PlanInput {
            parameters: BTreeMap::new(),
            context: Context::default(),
            external: &NoExternal,
            validate: ValidateOptions::default(),
        }
    }
}

/// A template evaluated with its parameters: what would be created, in which order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The template after `AWS::LanguageExtensions` expansion.
    pub template: Arc<Template>,
    pub context: Context,
    pub parameters: BTreeMap<String, ResolvedParameter>,
    pub conditions: BTreeMap<String, bool>,
    /// Resources whose condition holds, in template order.
    pub resources: Vec<PlannedResource>,
    /// Resources left out because their condition is false.
    pub skipped: Vec<String>,
    pub outputs: Vec<PlannedOutput>,
    pub graph: Graph,
}

/// One resource with its properties evaluated. At plan time, values that depend on other
/// resources are [`Value::Unknown`]; after [`Plan::resolve_resource`] they are concrete.
///
/// Deliberately not `Serialize`: properties hold `NoEcho` values in clear (providers need
/// them). Show [`PlannedResource::rendered_properties`] instead.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedResource {
    pub name: String,
    pub type_name: String,
    pub pos: Pos,
    pub properties: BTreeMap<String, Value>,
    /// Properties computed from a `NoEcho` parameter; every rendering masks them.
    pub sensitive: BTreeSet<String>,
    /// Every resource this one depends on (DependsOn and references).
    pub dependencies: Vec<String>,
    pub deletion_policy: String,
    pub update_replace_policy: String,
    pub creation_policy: Option<Value>,
    pub update_policy: Option<Value>,
    pub metadata: Option<Value>,
    /// `Metadata` was computed from a `NoEcho` parameter.
    pub metadata_sensitive: bool,
}

impl PlannedResource {
    /// Properties rendered as JSON text, `NoEcho` values masked.
    pub fn rendered_properties(&self) -> BTreeMap<String, String> {
        self.properties
            .iter()
            .map(|(k, v)| (k.clone(), v.render(self.sensitive.contains(k))))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedOutput {
    pub name: String,
    pub value: Value,
    pub description: Option<String>,
    pub export_name: Option<Value>,
    /// Computed from a `NoEcho` parameter.
    pub sensitive: bool,
}

impl PlannedOutput {
    pub fn rendered_value(&self) -> String {
        if self.sensitive {
            MASK.to_string()
        } else {
            self.value.to_string()
        }
    }
}

/// Applies `AWS::LanguageExtensions` (`Fn::ForEach`) with the given parameter values.
/// Returns the template unchanged when there is nothing to expand.
pub(crate) fn expand_language_extensions(
    t: &Template,
    params: &BTreeMap<String, ResolvedParameter>,
    ctx: &Context,
    external: &dyn ExternalResolver,
    sink: &mut Sink,
) -> Option<Template> {
    if !t.has_transform(LANGUAGE_EXTENSIONS) || !foreach::has_foreach(&t.root) {
        return None;
    }
    let ev = Evaluator::new(t, params, ctx, external, &Unresolved);
    let coll = |n: &Node, path: &str| -> Option<Vec<String>> {
        match ev.eval(n, path) {
            Value::List(items) => items
                .iter()
                .map(|v| v.scalar_string())
                .collect::<Option<Vec<_>>>()
                .or_else(|| {
                    ev.sink.borrow_mut().push(
                        Category::Intrinsic,
                        n.pos,
                        path,
                        "Fn::ForEach collection items must be strings",
                    );
                    None
                }),
            other => {
                ev.sink.borrow_mut().push(
                    Category::Intrinsic,
                    n.pos,
                    path,
                    format!(
                        "Fn::ForEach collection must be a list, got {}",
                        other.to_json_string()
                    ),
                );
                None
            }
        }
    };
    let root = foreach::expand(&t.root, "", &coll, sink);
    sink.diags.append(&mut ev.sink.borrow_mut().diags);
    let mut t2 = Template::build_lenient(sink, &t.file, root);
    t2.body_bytes = t.body_bytes;
    Some(t2)
}

fn string_attr(ev: &Evaluator<'_>, n: &Option<Node>, path: &str) -> String {
    match n {
        None => "Delete".to_string(),
        Some(n) => ev
            .eval(n, path)
            .scalar_string()
            .unwrap_or_else(|| "Delete".into()),
    }
}

/// Properties that hold a secret value whatever they were computed from: sealed in the
/// journal and masked in every rendering, as if they came from a `NoEcho` parameter.
pub const ALWAYS_SENSITIVE: &[(&str, &str)] = &[("AWS::SecretsManager::Secret", "SecretString")];

/// Evaluates one resource's properties and attributes.
fn evaluate_resource(ev: &Evaluator<'_>, t: &Template, r: &Resource) -> PlannedResource {
    let path = join("Resources", &r.name);
    let ppath = join(&path, "Properties");
    let mut properties = BTreeMap::new();
    let mut sensitive = BTreeSet::new();
    match r.properties.as_ref().map(|n| &n.kind) {
        Some(NodeKind::Map(entries)) => {
            for (k, n) in entries {
                let (v, s) = ev.eval_tracked(n, &join(&ppath, &k.name));
                if v == Value::NoValue {
                    continue;
                }
                if s {
                    sensitive.insert(k.name.clone());
                }
                properties.insert(k.name.clone(), v);
            }
        }
        Some(NodeKind::Null) | None => {}
        Some(_) => {
            let n = r.properties.as_ref().expect("matched Some");
            let (v, s) = ev.eval_tracked(n, &ppath);
            match v {
                Value::Map(m) => {
                    for (k, v) in m {
                        if s {
                            sensitive.insert(k.clone());
                        }
                        properties.insert(k, v);
                    }
                }
                Value::NoValue | Value::Null => {}
                other => ev.sink.borrow_mut().push(
                    Category::Structure,
                    n.pos,
                    &ppath,
                    format!(
                        "Properties must evaluate to a mapping, got {}",
                        other.to_json_string()
                    ),
                ),
            }
        }
    }
    for (type_name, prop) in ALWAYS_SENSITIVE {
        if r.type_name == *type_name && properties.contains_key(*prop) {
            sensitive.insert(prop.to_string());
        }
    }
    for (d, pos) in &r.depends_on {
        if t.resource(d).is_some() && !ev.resource_active(d) {
            ev.sink.borrow_mut().push(
                Category::UnknownReference,
                *pos,
                &join(&path, "DependsOn"),
                format!("DependsOn names `{d}`, which is not created (its condition is false)"),
            );
        }
    }
    let mut dependencies = Vec::new();
    resource_deps(t, r, &|c| ev.condition(c, None, ""), &mut dependencies);
    dependencies.retain(|d| t.resource(d).is_some() && ev.resource_active(d));
    let opt = |n: &Option<Node>, label: &str| n.as_ref().map(|n| ev.eval(n, &join(&path, label)));
    let (metadata, metadata_sensitive) = match &r.metadata {
        Some(n) => {
            let (v, s) = ev.eval_tracked(n, &join(&path, "Metadata"));
            (Some(v), s)
        }
        None => (None, false),
    };
    PlannedResource {
        name: r.name.clone(),
        type_name: r.type_name.clone(),
        pos: r.pos,
        properties,
        sensitive,
        dependencies,
        deletion_policy: string_attr(ev, &r.deletion_policy, &join(&path, "DeletionPolicy")),
        update_replace_policy: string_attr(
            ev,
            &r.update_replace_policy,
            &join(&path, "UpdateReplacePolicy"),
        ),
        creation_policy: opt(&r.creation_policy, "CreationPolicy"),
        update_policy: opt(&r.update_policy, "UpdatePolicy"),
        metadata,
        metadata_sensitive,
    }
}

fn evaluate_outputs(ev: &Evaluator<'_>, t: &Template) -> Vec<PlannedOutput> {
    let mut out = Vec::new();
    for o in &t.outputs {
        if let Some((c, _)) = &o.condition {
            if ev.condition(c, None, "") != Some(true) {
                continue;
            }
        }
        let path = join("Outputs", &o.name);
        let (value, sensitive) = match &o.value {
            Some(n) => ev.eval_tracked(n, &join(&path, "Value")),
            None => (Value::Null, false),
        };
        out.push(PlannedOutput {
            name: o.name.clone(),
            value,
            description: o
                .description
                .as_ref()
                .and_then(|n| ev.eval(n, &join(&path, "Description")).scalar_string()),
            export_name: o
                .export_name
                .as_ref()
                .map(|n| ev.eval(n, &join(&path, "Export.Name"))),
            sensitive,
        });
    }
    out
}

fn check_rules(ev: &Evaluator<'_>, t: &Template) {
    for rule in &t.rules {
        let path = join("Rules", &rule.name);
        let applies = match &rule.condition {
            None => true,
            Some(n) => matches!(ev.eval(n, &join(&path, "RuleCondition")), Value::Bool(true)),
        };
        if !applies {
            continue;
        }
        for (i, a) in rule.assertions.iter().enumerate() {
            let apath = join(&path, &format!("Assertions.{i}"));
            match ev.eval(&a.assert, &apath) {
                Value::Bool(true) => {}
                Value::Bool(false) => ev.sink.borrow_mut().push(
                    Category::Rule,
                    a.assert.pos,
                    &apath,
                    match &a.description {
                        Some(d) => format!("rule `{}` failed: {d}", rule.name),
                        None => format!("rule `{}` failed", rule.name),
                    },
                ),
                // Evaluation problems were reported already; an unknown (needs an account
                // inventory the resolver does not have) cannot be enforced.
                Value::Null | Value::Unknown(_) => {}
                other => ev.sink.borrow_mut().push(
                    Category::Rule,
                    a.assert.pos,
                    &apath,
                    format!(
                        "an assertion must be true or false, got {}",
                        other.to_json_string()
                    ),
                ),
            }
        }
    }
}

/// Plans a template: resolves parameters, expands language extensions, validates, evaluates
/// conditions, rules, resources and outputs, and orders the resources. Every problem found
/// on the way is returned at once.
pub fn plan(t: &Template, input: &PlanInput<'_>) -> Result<Plan, Diagnostics> {
    let mut sink = Sink::new(&t.file);
    let params = resolve_all(&t.parameters, &input.parameters, input.external, &mut sink);
    let expanded =
        expand_language_extensions(t, &params, &input.context, input.external, &mut sink);
    let t: Arc<Template> = Arc::new(expanded.unwrap_or_else(|| t.clone()));
    sink.diags.extend(validate(&t, &input.validate));
    if !sink.diags.is_empty() {
        return Err(Diagnostics(sink.diags));
    }
    let ev = Evaluator::new(&t, &params, &input.context, input.external, &Unresolved);
    let conditions = ev.all_conditions();
    check_rules(&ev, &t);
    let mut resources = Vec::with_capacity(t.resources.len());
    let mut skipped = Vec::new();
    for r in &t.resources {
        if ev.resource_active(&r.name) {
            resources.push(evaluate_resource(&ev, &t, r));
        } else {
            skipped.push(r.name.clone());
        }
    }
    let outputs = evaluate_outputs(&ev, &t);
    let mut exports: HashMap<String, &str> = HashMap::new();
    for o in &outputs {
        if let Some(Value::String(name)) = &o.export_name {
            if let Some(first) = exports.insert(name.clone(), &o.name) {
                let pos = t
                    .outputs
                    .iter()
                    .find(|x| x.name == o.name)
                    .map(|x| x.pos)
                    .unwrap_or_default();
                ev.sink.borrow_mut().push(
                    Category::Structure,
                    pos,
                    &join("Outputs", &o.name),
                    format!("export name `{name}` is also exported by output `{first}`"),
                );
            }
        }
    }
    let mut diags: Vec<Diagnostic> = std::mem::take(&mut ev.sink.borrow_mut().diags);
    let graph = Graph::new(
        resources
            .iter()
            .map(|r| (r.name.clone(), r.dependencies.clone())),
    );
    for c in graph.cycles() {
        let pos = t.resource(&c.members[0]).map(|r| r.pos).unwrap_or_default();
        diags.push(Diagnostic {
            category: Category::Cycle,
            file: t.file.clone(),
            pos,
            path: join("Resources", &c.members[0]),
            message: format!(
                "circular dependency between resources: {}",
                c.members.join(", ")
            ),
        });
    }
    drop(ev);
    if !diags.is_empty() {
        return Err(Diagnostics(diags));
    }
    Ok(Plan {
        template: t,
        context: input.context.clone(),
        parameters: params,
        conditions,
        resources,
        skipped,
        outputs,
        graph,
    })
}

impl Plan {
    pub fn resource(&self, name: &str) -> Option<&PlannedResource> {
        self.resources.iter().find(|r| r.name == name)
    }

    pub(crate) fn evaluator<'a>(
        &'a self,
        resolver: &'a dyn ResourceResolver,
        external: &'a dyn ExternalResolver,
        strict: bool,
    ) -> Evaluator<'a> {
        let mut ev = Evaluator::new(
            &self.template,
            &self.parameters,
            &self.context,
            external,
            resolver,
        )
        .with_conditions(&self.conditions);
        ev.strict = strict;
        ev
    }

    /// Apply time: evaluates one resource with the physical ids and attributes of the
    /// resources it depends on. A reference the resolver cannot answer is an error.
    pub fn resolve_resource(
        &self,
        name: &str,
        resolver: &dyn ResourceResolver,
        external: &dyn ExternalResolver,
    ) -> Result<PlannedResource, Diagnostics> {
        let (Some(r), Some(_)) = (self.template.resource(name), self.resource(name)) else {
            return Err(Diagnostics(vec![Diagnostic {
                category: Category::UnknownReference,
                file: self.template.file.clone(),
                pos: Pos::default(),
                path: "Resources".into(),
                message: format!("resource `{name}` is not part of this plan"),
            }]));
        };
        let ev = self.evaluator(resolver, external, true);
        let out = evaluate_resource(&ev, &self.template, r);
        let diags = std::mem::take(&mut ev.sink.borrow_mut().diags);
        if diags.is_empty() {
            Ok(out)
        } else {
            Err(Diagnostics(diags))
        }
    }

    /// Apply time: evaluates the outputs once every resource exists.
    pub fn resolve_outputs(
        &self,
        resolver: &dyn ResourceResolver,
        external: &dyn ExternalResolver,
    ) -> Result<Vec<PlannedOutput>, Diagnostics> {
        let ev = self.evaluator(resolver, external, true);
        let out = evaluate_outputs(&ev, &self.template);
        let diags = std::mem::take(&mut ev.sink.borrow_mut().diags);
        if diags.is_empty() {
            Ok(out)
        } else {
            Err(Diagnostics(diags))
        }
    }

    /// Re-evaluates one resource at plan time against a custom resolver (used by the
    /// change-set planner, which knows the deployed resources).
    pub(crate) fn evaluate_with(
        &self,
        name: &str,
        resolver: &dyn ResourceResolver,
        external: &dyn ExternalResolver,
    ) -> (Option<PlannedResource>, Vec<Diagnostic>) {
        let Some(r) = self.template.resource(name) else {
            return (None, Vec::new());
        };
        let ev = self.evaluator(resolver, external, false);
        let out = evaluate_resource(&ev, &self.template, r);
        let diags = std::mem::take(&mut ev.sink.borrow_mut().diags);
        (Some(out), diags)
    }

    /// Parameter values for display (`NoEcho` masked).
    pub fn rendered_parameters(&self) -> BTreeMap<String, String> {
        self.parameters
            .iter()
            .map(|(k, p)| (k.clone(), p.display_value()))
            .collect()
    }
}
