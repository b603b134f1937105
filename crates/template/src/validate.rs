//! Static validation: everything that can be checked without parameter values.
//!
//! Reports every problem at once, each with file:line:column and template path: references
//! to unknown parameters, resources and conditions; intrinsic arity and argument shapes;
//! unsupported transforms, macros and modules; unsupported resource types (through a caller
//! hook); every resource's `Properties` against its type's registry schema (`props.rs`);
//! the providers' own rules (through a second hook); quotas; and cycles among conditions and
//! among resources.

use std::collections::HashSet;

use crate::ast::{Func, Node, NodeKind};
use crate::diag::{join, Category, Diagnostic, Pos, Sink};
use crate::eval::{parse_sub, SubPart, PSEUDO_PARAMETERS};
use crate::foreach;
use crate::graph::Graph;
use crate::template::{quota, Resource, Template, LANGUAGE_EXTENSIONS};

/// The caller's own checks of one resource (a provider's rules): every problem found, each
/// with its position (see [`ResourceView::diag`]).
pub type ResourceRules<'a> = dyn Fn(&ResourceView<'_>) -> Vec<Diagnostic> + 'a;

/// Caller choices for validation.
pub struct ValidateOptions<'a> {
    /// Says whether a resource type can be provisioned; `None` accepts every type.
    pub supported_type: Option<&'a dyn Fn(&str) -> bool>,
    /// The body-size quota to enforce: [`quota::BODY_BYTES`] for a direct upload,
    /// [`quota::S3_BODY_BYTES`] for a template read from an object store.
    pub max_body_bytes: usize,
    /// Called for every resource whose type is supported (after the registry-schema check
    /// of its properties); `None` adds no rules.
    pub resource_rules: Option<&'a ResourceRules<'a>>,
    /// Check every resource's `Properties` against the registry schema of its type (always,
    /// except in tests of the engine whose fake providers serve real type names with
    /// made-up properties, to keep those types' real replacement rules).
    pub registry_schemas: bool,
}

impl Default for ValidateOptions<'_> {
    fn default() -> Self {
        ValidateOptions {
            supported_type: None,
            max_body_bytes: quota::BODY_BYTES,
            resource_rules: None,
            registry_schemas: true,
        }
    }
}

impl std::fmt::Debug for ValidateOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidateOptions")
            .field("supported_type", &self.supported_type.is_some())
            .field("max_body_bytes", &self.max_body_bytes)
            .field("resource_rules", &self.resource_rules.is_some())
            .field("registry_schemas", &self.registry_schemas)
            .finish()
    }
}

/// One resource as a provider's rules see it: its properties as written (with positions),
/// and the whole template, for rules that compare resources (two subnets of one VPC, two
/// listeners of one load balancer).
#[derive(Debug, Clone, Copy)]
pub struct ResourceView<'a> {
    pub template: &'a Template,
    pub resource: &'a Resource,
}

impl<'a> ResourceView<'a> {
    pub fn logical_id(&self) -> &'a str {
        &self.resource.name
    }

    pub fn type_name(&self) -> &'a str {
        &self.resource.type_name
    }

    /// The `Properties` node, if the resource has one.
    pub fn properties(&self) -> Option<&'a Node> {
        self.resource.properties.as_ref()
    }

    /// A property's value as written; `None` when absent.
    pub fn property(&self, name: &str) -> Option<&'a Node> {
        self.properties()?.get(name)
    }

    /// The template path of a property (`rel` is dotted, relative to `Properties`).
    pub fn path(&self, rel: &str) -> String {
        join(
            &join(&join("Resources", &self.resource.name), "Properties"),
            rel,
        )
    }

    /// A provider-rule diagnostic at `pos` about the property at `rel`.
    pub fn diag(&self, pos: Pos, rel: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(
            Category::ProviderRule,
            &self.template.file,
            pos,
            &self.path(rel),
            message,
        )
    }

    /// The other resources of the template with `type_name`, in template order.
    pub fn siblings(&self, type_name: &'a str) -> impl Iterator<Item = ResourceView<'a>> + 'a {
        let me = self.resource.name.as_str();
        let template = self.template;
        template
            .resources
            .iter()
            .filter(move |r| r.type_name == type_name && r.name != me)
            .map(move |resource| ResourceView { template, resource })
    }
}

/// Where a node sits, which decides what it may reference.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Resources,
    Outputs,
    Conditions,
    Rules,
}

struct Checker<'a> {
    t: &'a Template,
    sink: Sink,
    lang_ext: bool,
}

/// Validates a template; the result is empty when it is valid.
///
/// A template with `Fn::ForEach` loops is expanded first, with parameter defaults (or
/// synthesized values) standing in for collections that come from parameters; [`crate::plan()`]
/// expands with the real values instead.
pub fn validate(t: &Template, opts: &ValidateOptions<'_>) -> Vec<Diagnostic> {
    if t.has_transform(LANGUAGE_EXTENSIONS) && foreach::has_foreach(&t.root) {
        let mut scratch = Sink::new(&t.file);
        let supplied = crate::params::synthesize_missing(&t.parameters);
        let params = crate::params::resolve_all(
            &t.parameters,
            &supplied,
            &crate::params::NoExternal,
            &mut scratch,
        );
        let mut sink = Sink::new(&t.file);
        if let Some(expanded) = crate::plan::expand_language_extensions(
            t,
            &params,
            &crate::eval::Context::default(),
            &crate::params::NoExternal,
            &mut sink,
        ) {
            sink.diags.extend(validate(&expanded, opts));
            return sink.diags;
        }
    }
    let mut c = Checker {
        t,
        sink: Sink::new(&t.file),
        lang_ext: t.has_transform(LANGUAGE_EXTENSIONS),
    };
    if t.body_bytes > opts.max_body_bytes {
        c.sink.push(
            Category::Quota,
            Pos::new(1, 1),
            "",
            format!(
                "the template body is {} bytes, over the quota of {}",
                t.body_bytes, opts.max_body_bytes
            ),
        );
    }
    c.foreach_left(&t.root, "");
    for (name, node) in &t.conditions {
        c.walk(node, &join("Conditions", name), Place::Conditions);
    }
    for rule in &t.rules {
        let p = join("Rules", &rule.name);
        if let Some(n) = &rule.condition {
            c.walk(n, &join(&p, "RuleCondition"), Place::Rules);
        }
        for (i, a) in rule.assertions.iter().enumerate() {
            c.walk(
                &a.assert,
                &join(&p, &format!("Assertions.{i}.Assert")),
                Place::Rules,
            );
        }
    }
    for r in &t.resources {
        let p = join("Resources", &r.name);
        c.resource_type(r.type_name.as_str(), r.type_pos, &join(&p, "Type"), opts);
        if opts.registry_schemas {
            crate::props::check_resource(&mut c.sink, r, &p);
        }
        // Provider rules run for the types the caller can provision, beside the schema's
        // findings (they read literal values by shape, so a wrong shape is skipped, not
        // misread), so one run reports both kinds of mistakes.
        let supported = opts.supported_type.is_none_or(|f| f(&r.type_name));
        if let Some(rules) = opts.resource_rules.filter(|_| supported) {
            c.sink.diags.extend(rules(&ResourceView {
                template: t,
                resource: r,
            }));
        }
        if let Some((cond, pos)) = &r.condition {
            c.condition_exists(cond, *pos, &join(&p, "Condition"));
        }
        for (d, pos) in &r.depends_on {
            if t.resource(d).is_none() {
                c.sink.push(
                    Category::UnknownReference,
                    *pos,
                    &join(&p, "DependsOn"),
                    format!("DependsOn names unknown resource `{d}`"),
                );
            }
        }
        for (label, node) in [
            ("Properties", &r.properties),
            ("Metadata", &r.metadata),
            ("CreationPolicy", &r.creation_policy),
            ("UpdatePolicy", &r.update_policy),
            ("DeletionPolicy", &r.deletion_policy),
            ("UpdateReplacePolicy", &r.update_replace_policy),
        ] {
            if let Some(n) = node {
                c.walk(n, &join(&p, label), Place::Resources);
            }
        }
        for (label, node) in [
            ("DeletionPolicy", &r.deletion_policy),
            ("UpdateReplacePolicy", &r.update_replace_policy),
        ] {
            if let Some(n) = node {
                if let Some(s) = n.as_str() {
                    if !matches!(s, "Delete" | "Retain" | "RetainExceptOnCreate" | "Snapshot") {
                        c.sink.push(
                            Category::Structure,
                            n.pos,
                            &join(&p, label),
                            format!("{label} must be Delete, Retain, RetainExceptOnCreate or Snapshot, not `{s}`"),
                        );
                    }
                }
            }
        }
    }
    for o in &t.outputs {
        let p = join("Outputs", &o.name);
        if let Some((cond, pos)) = &o.condition {
            c.condition_exists(cond, *pos, &join(&p, "Condition"));
        }
        for (label, node) in [
            ("Value", &o.value),
            ("Description", &o.description),
            ("Export.Name", &o.export_name),
        ] {
            if let Some(n) = node {
                c.walk(n, &join(&p, label), Place::Outputs);
            }
        }
    }
    c.condition_cycles();
    c.resource_cycles();
    c.sink.diags
}

/// Only the registry-schema check of every resource's `Properties` (part of [`validate`]):
/// for benchmarks and for callers that validated the rest already.
pub fn properties(t: &Template) -> Vec<Diagnostic> {
    let mut sink = Sink::new(&t.file);
    for r in &t.resources {
        crate::props::check_resource(&mut sink, r, &join("Resources", &r.name));
    }
    sink.diags
}

impl Checker<'_> {
    fn foreach_left(&mut self, n: &Node, path: &str) {
        match &n.kind {
            NodeKind::Map(m) => {
                for (k, v) in m {
                    if k.name.starts_with(foreach::PREFIX) {
                        let msg = if self.lang_ext {
                            "Fn::ForEach could not be expanded"
                        } else {
                            "Fn::ForEach needs `Transform: AWS::LanguageExtensions`"
                        };
                        self.sink
                            .push(Category::Intrinsic, k.pos, &join(path, &k.name), msg);
                    } else {
                        self.foreach_left(v, &join(path, &k.name));
                    }
                }
            }
            NodeKind::List(l) => {
                for (i, v) in l.iter().enumerate() {
                    self.foreach_left(v, &join(path, &i.to_string()));
                }
            }
            NodeKind::Intrinsic(i) => self.foreach_left(&i.arg, path),
            _ => {}
        }
    }

    fn resource_type(&mut self, ty: &str, pos: Pos, path: &str, opts: &ValidateOptions<'_>) {
        if ty.is_empty() {
            return;
        }
        if ty.starts_with("AWS::Serverless::") {
            self.sink.push(
                Category::UnsupportedTransform,
                pos,
                path,
                format!("`{ty}` is a SAM type; SAM templates are not supported"),
            );
        } else if ty.ends_with("::MODULE") {
            self.sink.push(
                Category::UnsupportedTransform,
                pos,
                path,
                format!("`{ty}` is a CloudFormation module; modules are not supported"),
            );
        } else if let Some(f) = opts.supported_type {
            if !f(ty) {
                self.sink.push(
                    Category::UnsupportedResourceType,
                    pos,
                    path,
                    format!("resource type `{ty}` is not supported by this installation"),
                );
            }
        }
    }

    fn condition_exists(&mut self, name: &str, pos: Pos, path: &str) {
        if self.t.condition(name).is_none() {
            self.sink.push(
                Category::UnknownCondition,
                pos,
                path,
                format!("unknown condition `{name}`"),
            );
        }
    }

    fn arity(
        &mut self,
        func: &Func,
        arg: &Node,
        path: &str,
        min: usize,
        max: usize,
    ) -> Option<usize> {
        match arg.as_list() {
            Some(l) if l.len() >= min && l.len() <= max => Some(l.len()),
            Some(l) => {
                let want = if min == max {
                    format!("{min}")
                } else {
                    format!("{min} to {max}")
                };
                self.sink.push(
                    Category::Intrinsic,
                    arg.pos,
                    path,
                    format!("{} takes {want} arguments, got {}", func.name(), l.len()),
                );
                None
            }
            None => {
                self.sink.push(
                    Category::Intrinsic,
                    arg.pos,
                    path,
                    format!(
                        "{} takes a list of arguments, got a {}",
                        func.name(),
                        arg.kind_name()
                    ),
                );
                None
            }
        }
    }

    /// A node that must be (or evaluate to) a list: a literal list or a function call.
    fn listish(&mut self, func: &Func, n: &Node, path: &str) {
        if !matches!(n.kind, NodeKind::List(_) | NodeKind::Intrinsic(_)) {
            self.sink.push(
                Category::Intrinsic,
                n.pos,
                path,
                format!(
                    "{} expects a list here, got a {}",
                    func.name(),
                    n.kind_name()
                ),
            );
        }
    }

    /// A node that must be a string: a scalar or a function call.
    fn stringish(&mut self, func: &Func, n: &Node, path: &str) {
        if matches!(
            n.kind,
            NodeKind::List(_) | NodeKind::Map(_) | NodeKind::Null
        ) {
            self.sink.push(
                Category::Intrinsic,
                n.pos,
                path,
                format!(
                    "{} expects a string here, got a {}",
                    func.name(),
                    n.kind_name()
                ),
            );
        }
    }

    fn check_ref(&mut self, name: &str, pos: Pos, path: &str, place: Place) {
        if self.t.parameter(name).is_some() || PSEUDO_PARAMETERS.contains(&name) {
            return;
        }
        if self.t.resource(name).is_some() {
            if matches!(place, Place::Conditions | Place::Rules) {
                self.sink.push(
                    Category::Intrinsic,
                    pos,
                    path,
                    format!("conditions and rules cannot reference the resource `{name}`"),
                );
            }
            return;
        }
        let what = match place {
            Place::Conditions | Place::Rules => "parameter",
            _ => "parameter or resource",
        };
        self.sink.push(
            Category::UnknownReference,
            pos,
            path,
            format!("Ref to unknown {what} `{name}`"),
        );
    }

    fn check_getatt(&mut self, res: &str, pos: Pos, path: &str, place: Place) {
        if matches!(place, Place::Conditions | Place::Rules) {
            self.sink.push(
                Category::Intrinsic,
                pos,
                path,
                "conditions and rules cannot use Fn::GetAtt",
            );
        } else if self.t.resource(res).is_none() {
            self.sink.push(
                Category::UnknownReference,
                pos,
                path,
                format!("GetAtt on unknown resource `{res}`"),
            );
        }
    }

    fn walk(&mut self, n: &Node, path: &str, place: Place) {
        match &n.kind {
            NodeKind::List(l) => {
                for (i, x) in l.iter().enumerate() {
                    self.walk(x, &join(path, &i.to_string()), place);
                }
            }
            NodeKind::Map(m) => {
                for (k, x) in m {
                    self.walk(x, &join(path, &k.name), place);
                }
            }
            NodeKind::Intrinsic(i) => {
                let fpath = join(path, &i.func.name());
                self.call(&i.func, &i.arg, n, &fpath, place);
            }
            _ => {}
        }
    }

    fn walk_all(&mut self, l: &[Node], path: &str, place: Place) {
        for x in l {
            self.walk(x, path, place);
        }
    }

    fn call(&mut self, func: &Func, arg: &Node, node: &Node, path: &str, place: Place) {
        let list = arg.as_list().unwrap_or(&[]);
        match func {
            Func::Ref => match arg.as_str() {
                Some(name) => self.check_ref(name, arg.pos, path, place),
                None => self.sink.push(
                    Category::Intrinsic,
                    arg.pos,
                    path,
                    "Ref takes a name (a string)",
                ),
            },
            Func::Condition if place != Place::Conditions => {}
            Func::Condition => match arg.as_str() {
                Some(name) => self.condition_exists(name, arg.pos, path),
                None => {
                    self.sink
                        .push(Category::Intrinsic, arg.pos, path, "Condition takes a name")
                }
            },
            Func::GetAtt => {
                if self.arity(func, arg, path, 2, 2).is_some() {
                    match list[0].as_str() {
                        Some(r) => self.check_getatt(r, list[0].pos, path, place),
                        None => self.sink.push(
                            Category::Intrinsic,
                            list[0].pos,
                            path,
                            "Fn::GetAtt needs a logical id",
                        ),
                    }
                    match &list[1].kind {
                        NodeKind::String(_) => {}
                        NodeKind::Intrinsic(x) if x.func == Func::Ref => {
                            self.walk(&list[1], path, place)
                        }
                        _ => self.sink.push(
                            Category::Intrinsic,
                            list[1].pos,
                            path,
                            "Fn::GetAtt attribute must be a string or a Ref",
                        ),
                    }
                }
            }
            Func::Sub => self.sub(arg, path, place),
            Func::Join => {
                if self.arity(func, arg, path, 2, 2).is_some() {
                    self.stringish(func, &list[0], path);
                    self.listish(func, &list[1], path);
                    self.walk_all(list, path, place);
                }
            }
            Func::Select => {
                if self.arity(func, arg, path, 2, 2).is_some() {
                    self.stringish(func, &list[0], path);
                    self.listish(func, &list[1], path);
                    self.walk_all(list, path, place);
                }
            }
            Func::Split => {
                if self.arity(func, arg, path, 2, 2).is_some() {
                    self.stringish(func, &list[0], path);
                    self.stringish(func, &list[1], path);
                    self.walk_all(list, path, place);
                }
            }
            Func::If => {
                if self.arity(func, arg, path, 3, 3).is_some() {
                    match list[0].as_str() {
                        Some(c) => self.condition_exists(c, list[0].pos, path),
                        None => self.sink.push(
                            Category::Intrinsic,
                            list[0].pos,
                            path,
                            "Fn::If needs a condition name",
                        ),
                    }
                    self.walk_all(&list[1..], path, place);
                }
            }
            Func::Equals => {
                if self.arity(func, arg, path, 2, 2).is_some() {
                    self.walk_all(list, path, place);
                }
            }
            Func::And | Func::Or => {
                if self.arity(func, arg, path, 2, 10).is_some() {
                    self.walk_all(list, path, place);
                }
            }
            Func::Not => {
                if self.arity(func, arg, path, 1, 1).is_some() {
                    self.walk_all(list, path, place);
                }
            }
            Func::FindInMap => {
                let max = if self.lang_ext { 4 } else { 3 };
                if self.arity(func, arg, path, 3, max).is_some() {
                    if let Some(m) = list[0].as_str() {
                        if self.t.mappings.as_ref().and_then(|x| x.get(m)).is_none() {
                            self.sink.push(
                                Category::UnknownReference,
                                list[0].pos,
                                path,
                                format!("Fn::FindInMap names unknown mapping `{m}`"),
                            );
                        }
                    }
                    for x in &list[..3] {
                        self.stringish(func, x, path);
                    }
                    if let Some(d) = list.get(3) {
                        if d.get("DefaultValue").is_none() {
                            self.sink.push(
                                Category::Intrinsic,
                                d.pos,
                                path,
                                "the fourth argument of Fn::FindInMap must be {DefaultValue: ...}",
                            );
                        }
                    }
                    self.walk_all(list, path, place);
                } else if list.len() == 4 && !self.lang_ext {
                    self.sink.push(Category::Intrinsic, arg.pos, path, "Fn::FindInMap with a DefaultValue needs `Transform: AWS::LanguageExtensions`");
                }
            }
            Func::GetAZs | Func::ImportValue | Func::Base64 => {
                self.stringish(func, arg, path);
                self.walk(arg, path, place);
            }
            Func::Cidr => {
                if self.arity(func, arg, path, 3, 3).is_some() {
                    self.walk_all(list, path, place);
                }
            }
            Func::Length | Func::ToJsonString => {
                if !self.lang_ext {
                    self.sink.push(
                        Category::Intrinsic,
                        node.pos,
                        path,
                        format!("{} needs `Transform: AWS::LanguageExtensions`", func.name()),
                    );
                }
                if *func == Func::Length {
                    self.listish(func, arg, path);
                }
                self.walk(arg, path, place);
            }
            Func::Contains
            | Func::EachMemberEquals
            | Func::EachMemberIn
            | Func::RefAll
            | Func::ValueOf
            | Func::ValueOfAll => {
                if place != Place::Rules {
                    self.sink.push(
                        Category::Intrinsic,
                        node.pos,
                        path,
                        format!("{} can only be used in Rules", func.name()),
                    );
                }
                self.walk(arg, path, place);
            }
            Func::Transform => {
                let name = arg
                    .get("Name")
                    .and_then(Node::scalar_text)
                    .unwrap_or_default();
                let cat = if name.starts_with("AWS::") {
                    Category::UnsupportedTransform
                } else {
                    Category::Macro
                };
                self.sink.push(
                    cat,
                    node.pos,
                    path,
                    format!("Fn::Transform `{name}` is not supported"),
                );
            }
            Func::Unknown(name) => {
                self.sink.push(
                    Category::Intrinsic,
                    node.pos,
                    path,
                    format!("unknown intrinsic function `{name}`"),
                );
            }
        }
    }

    fn sub(&mut self, arg: &Node, path: &str, place: Place) {
        let (text, vars) = match &arg.kind {
            NodeKind::String(_) => (arg, None),
            NodeKind::List(l) if l.len() == 2 => match l[1].as_map() {
                Some(m) => (&l[0], Some(m)),
                None => {
                    self.sink.push(
                        Category::Intrinsic,
                        l[1].pos,
                        path,
                        "Fn::Sub variables must be a mapping",
                    );
                    return;
                }
            },
            _ => {
                self.sink.push(
                    Category::Intrinsic,
                    arg.pos,
                    path,
                    "Fn::Sub takes a string or [string, {variables}]",
                );
                return;
            }
        };
        let Some(s) = text.as_str() else {
            self.sink.push(
                Category::Intrinsic,
                text.pos,
                path,
                "Fn::Sub template must be a literal string",
            );
            return;
        };
        let vars = vars.unwrap_or(&[]);
        for (k, v) in vars {
            self.walk(v, &join(path, &k.name), place);
        }
        for part in parse_sub(s) {
            let SubPart::Var(v) = part else { continue };
            if vars.iter().any(|(k, _)| k.name == v) {
                continue;
            }
            match v.split_once('.') {
                Some((res, _)) if self.t.parameter(&v).is_none() => {
                    self.check_getatt(res, text.pos, path, place)
                }
                _ => self.check_ref(&v, text.pos, path, place),
            }
        }
    }

    fn condition_cycles(&mut self) {
        let g = condition_graph(self.t);
        for c in g.cycles() {
            let pos = self
                .t
                .condition(&c.members[0])
                .map(|n| n.pos)
                .unwrap_or_default();
            self.sink.push(
                Category::Cycle,
                pos,
                "Conditions",
                format!("circular condition references: {}", c.members.join(", ")),
            );
        }
    }

    fn resource_cycles(&mut self) {
        let g = static_graph(self.t);
        for c in g.cycles() {
            let pos = self
                .t
                .resource(&c.members[0])
                .map(|r| r.pos)
                .unwrap_or_default();
            self.sink.push(
                Category::Cycle,
                pos,
                &join("Resources", &c.members[0]),
                format!(
                    "circular dependency between resources: {}",
                    c.members.join(", ")
                ),
            );
        }
    }
}

/// Which conditions each condition refers to (through `Condition` and `Fn::If`).
pub(crate) fn condition_graph(t: &Template) -> Graph {
    Graph::new(t.conditions.iter().map(|(name, node)| {
        let mut refs = Vec::new();
        node.walk(&mut |x| {
            if let Some(i) = x.as_intrinsic() {
                match i.func {
                    Func::Condition => refs.extend(i.arg.as_str().map(str::to_string)),
                    Func::If => refs.extend(
                        i.arg
                            .as_list()
                            .and_then(|l| l.first())
                            .and_then(Node::as_str)
                            .map(str::to_string),
                    ),
                    _ => {}
                }
            }
        });
        (name.clone(), refs)
    }))
}

/// The dependency graph over every branch of every `Fn::If` (no parameter values needed).
pub(crate) fn static_graph(t: &Template) -> Graph {
    Graph::new(t.resources.iter().map(|r| {
        let mut out = Vec::new();
        resource_deps(t, r, &|_| None, &mut out);
        (r.name.clone(), out)
    }))
}

/// The resources one resource depends on: `DependsOn` plus every `Ref`, `Fn::GetAtt` and
/// `Fn::Sub` reference in its properties and attributes. `cond` gives condition values when
/// known, so only the taken branch of an `Fn::If` counts.
pub(crate) fn resource_deps(
    t: &Template,
    r: &crate::template::Resource,
    cond: &dyn Fn(&str) -> Option<bool>,
    out: &mut Vec<String>,
) {
    let mut seen: HashSet<String> = HashSet::new();
    for (d, _) in &r.depends_on {
        if seen.insert(d.clone()) {
            out.push(d.clone());
        }
    }
    for n in [
        &r.properties,
        &r.metadata,
        &r.creation_policy,
        &r.update_policy,
        &r.deletion_policy,
        &r.update_replace_policy,
    ]
    .into_iter()
    .flatten()
    {
        node_refs(t, n, cond, &mut |name| {
            if seen.insert(name.to_string()) {
                out.push(name.to_string());
            }
        });
    }
}

/// Calls `f` with every resource name a node references.
pub(crate) fn node_refs(
    t: &Template,
    n: &Node,
    cond: &dyn Fn(&str) -> Option<bool>,
    f: &mut dyn FnMut(&str),
) {
    match &n.kind {
        NodeKind::List(l) => l.iter().for_each(|x| node_refs(t, x, cond, f)),
        NodeKind::Map(m) => m.iter().for_each(|(_, x)| node_refs(t, x, cond, f)),
        NodeKind::Intrinsic(i) => match i.func {
            Func::Ref => {
                if let Some(s) = i.arg.as_str() {
                    if t.resource(s).is_some() && t.parameter(s).is_none() {
                        f(s);
                    }
                }
            }
            Func::GetAtt => {
                if let Some(l) = i.arg.as_list() {
                    if let Some(s) = l.first().and_then(Node::as_str) {
                        if t.resource(s).is_some() {
                            f(s);
                        }
                    }
                    l.iter().skip(1).for_each(|x| node_refs(t, x, cond, f));
                }
            }
            Func::Sub => {
                let (text, vars): (Option<&str>, &[(crate::ast::Key, Node)]) = match &i.arg.kind {
                    NodeKind::String(s) => (Some(s), &[]),
                    NodeKind::List(l) if l.len() == 2 => {
                        (l[0].as_str(), l[1].as_map().unwrap_or(&[]))
                    }
                    _ => (None, &[]),
                };
                for (_, v) in vars {
                    node_refs(t, v, cond, f);
                }
                if let Some(s) = text {
                    for part in parse_sub(s) {
                        let SubPart::Var(v) = part else { continue };
                        if vars.iter().any(|(k, _)| k.name == v) || t.parameter(&v).is_some() {
                            continue;
                        }
                        let res = v.split_once('.').map_or(v.as_str(), |(r, _)| r);
                        if t.resource(res).is_some() {
                            f(res);
                        }
                    }
                }
            }
            Func::If => match i.arg.as_list() {
                Some([c, a, b]) => match c.as_str().and_then(cond) {
                    Some(true) => node_refs(t, a, cond, f),
                    Some(false) => node_refs(t, b, cond, f),
                    None => {
                        node_refs(t, a, cond, f);
                        node_refs(t, b, cond, f);
                    }
                },
                _ => node_refs(t, &i.arg, cond, f),
            },
            _ => node_refs(t, &i.arg, cond, f),
        },
        _ => {}
    }
}
