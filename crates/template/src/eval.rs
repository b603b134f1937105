//! Evaluation of intrinsic functions, conditions and pseudo parameters.
//!
//! One evaluator serves both phases: at plan time the [`ResourceResolver`] knows nothing
//! (or only the resources of the deployed stack) and references to resources evaluate to
//! [`Value::Unknown`]; at apply time the executor's resolver returns physical ids and
//! attributes, and `strict` turns a missing one into an error.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use crate::ast::{Func, Node, NodeKind};
use crate::diag::{join, Category, Sink};
use crate::params::{ExternalResolver, ResolvedParameter};
use crate::template::Template;
use crate::value::{Unknown, Value};

/// Values of the pseudo parameters and the region's availability zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub account_id: String,
    pub region: String,
    pub stack_name: String,
    pub stack_id: String,
    pub partition: String,
    pub url_suffix: String,
    pub notification_arns: Vec<String>,
    /// What `Fn::GetAZs` returns for this region.
    pub availability_zones: Vec<String>,
    /// Grants the operation's caller holds that providers check themselves (such as
    /// `instance:UseSeccompProfile`); empty unless the daemon fills it in. Not a pseudo
    /// parameter, and not journaled: crash recovery runs with none.
    pub grants: Vec<String>,
}

impl Context {
    /// A context with the partition, URL suffix, stack id and zones derived from the region.
    pub fn new(account_id: &str, region: &str, stack_name: &str) -> Context {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        let url_suffix = if partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        Context {
            account_id: account_id.to_string(),
            region: region.to_string(),
            stack_name: stack_name.to_string(),
            stack_id: format!(
                "arn:{partition}:cloudformation:{region}:{account_id}:stack/{stack_name}/00000000-0000-0000-0000-000000000000"
            ),
            partition: partition.to_string(),
            url_suffix: url_suffix.to_string(),
            notification_arns: Vec::new(),
            availability_zones: zones_of(region),
            grants: Vec::new(),
        }
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::new("123456789012", "us-east-1", "stack")
    }
}

fn zones_of(region: &str) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|z| format!("{region}{z}"))
        .collect()
}

/// The pseudo parameters `Ref` accepts.
pub const PSEUDO_PARAMETERS: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// Physical ids and attributes of resources, supplied by whoever created them.
pub trait ResourceResolver {
    fn physical_id(&self, logical_id: &str) -> Option<String>;
    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<Value>;
}

/// The plan-time resolver: nothing exists yet.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unresolved;

impl ResourceResolver for Unresolved {
    fn physical_id(&self, _: &str) -> Option<String> {
        None
    }
    fn attribute(&self, _: &str, _: &str) -> Option<Value> {
        None
    }
}

/// A resolver over plain maps, for tests and for executors that keep state in memory.
#[derive(Debug, Default, Clone)]
pub struct MapResolver {
    pub physical_ids: HashMap<String, String>,
    pub attributes: HashMap<(String, String), Value>,
}

impl ResourceResolver for MapResolver {
    fn physical_id(&self, logical_id: &str) -> Option<String> {
        self.physical_ids.get(logical_id).cloned()
    }
    fn attribute(&self, logical_id: &str, attribute: &str) -> Option<Value> {
        self.attributes
            .get(&(logical_id.to_string(), attribute.to_string()))
            .cloned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CondState {
    Visiting,
    Done(bool),
    Failed,
}

/// One part of a parsed `Fn::Sub` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SubPart {
    Lit(String),
    Var(String),
}

/// Splits a `Fn::Sub` template into literal text and `${Var}` references; `${!X}` is the
/// literal `${X}`. An unterminated `${` is literal text, as in CloudFormation.
pub(crate) fn parse_sub(s: &str) -> Vec<SubPart> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let inner = &after[..j];
                if let Some(l) = inner.strip_prefix('!') {
                    lit.push_str("${");
                    lit.push_str(l);
                    lit.push('}');
                } else {
                    if !lit.is_empty() {
                        parts.push(SubPart::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(SubPart::Var(inner.trim().to_string()));
                }
                rest = &after[j + 1..];
            }
            None => {
                lit.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(SubPart::Lit(lit));
    }
    parts
}

/// Evaluates nodes of one template against parameters, context and resolvers.
pub(crate) struct Evaluator<'a> {
    pub t: &'a Template,
    pub params: &'a BTreeMap<String, ResolvedParameter>,
    pub ctx: &'a Context,
    pub external: &'a dyn ExternalResolver,
    pub resources: &'a dyn ResourceResolver,
    /// Apply time: a resource reference that the resolver cannot answer is an error.
    pub strict: bool,
    conds: RefCell<HashMap<String, CondState>>,
    pub sink: RefCell<Sink>,
    sensitive: Cell<bool>,
    /// `Fn::Cidr` results by arguments: templates repeat the same split for every subnet.
    cidr_cache: RefCell<HashMap<(String, u64, u32), Vec<String>>>,
    /// How many condition evaluations are in progress (bounded, to protect the stack).
    cond_depth: Cell<usize>,
}

/// Conditions referencing conditions deeper than this are refused rather than recursed into.
const MAX_CONDITION_DEPTH: usize = 64;

impl<'a> Evaluator<'a> {
    pub fn new(
        t: &'a Template,
        params: &'a BTreeMap<String, ResolvedParameter>,
        ctx: &'a Context,
        external: &'a dyn ExternalResolver,
        resources: &'a dyn ResourceResolver,
    ) -> Self {
        Evaluator {
            t,
            params,
            ctx,
            external,
            resources,
            strict: false,
            conds: RefCell::new(HashMap::new()),
            sink: RefCell::new(Sink::new(&t.file)),
            sensitive: Cell::new(false),
            cidr_cache: RefCell::new(HashMap::new()),
            cond_depth: Cell::new(0),
        }
    }

    /// Seeds condition values already computed (apply time reuses the plan's).
    pub fn with_conditions(self, conds: &BTreeMap<String, bool>) -> Self {
        {
            let mut c = self.conds.borrow_mut();
            for (k, v) in conds {
                c.insert(k.clone(), CondState::Done(*v));
            }
        }
        self
    }

    fn err(&self, cat: Category, node: &Node, path: &str, msg: impl Into<String>) {
        self.sink.borrow_mut().push(cat, node.pos, path, msg);
    }

    /// Evaluates every condition of the template, referenced ones first, so that long
    /// chains of conditions do not turn into deep recursion.
    pub fn all_conditions(&self) -> BTreeMap<String, bool> {
        let g = crate::validate::condition_graph(self.t);
        let order: Vec<String> = match g.topo_order() {
            Ok(o) => o.into_iter().map(str::to_string).collect(),
            Err(_) => self.t.conditions.iter().map(|(n, _)| n.clone()).collect(),
        };
        let mut out = BTreeMap::new();
        for name in &order {
            if let Some(b) = self.condition(name, None, "Conditions") {
                out.insert(name.clone(), b);
            }
        }
        out
    }

    /// The value of a named condition, evaluated on first use. `at` is the referencing node.
    pub fn condition(&self, name: &str, at: Option<&Node>, path: &str) -> Option<bool> {
        let state = self.conds.borrow().get(name).copied();
        match state {
            Some(CondState::Done(b)) => return Some(b),
            Some(CondState::Failed) => return None,
            Some(CondState::Visiting) => {
                // Cycles are reported (with every member) by validation; stop here.
                self.conds
                    .borrow_mut()
                    .insert(name.to_string(), CondState::Failed);
                return None;
            }
            None => {}
        }
        let Some(node) = self.t.condition(name) else {
            if let Some(at) = at {
                self.err(
                    Category::UnknownCondition,
                    at,
                    path,
                    format!("unknown condition `{name}`"),
                );
            }
            return None;
        };
        let cpath = join("Conditions", name);
        if self.cond_depth.get() >= MAX_CONDITION_DEPTH {
            self.err(
                Category::Intrinsic,
                node,
                &cpath,
                format!("conditions nest more than {MAX_CONDITION_DEPTH} levels deep"),
            );
            self.conds
                .borrow_mut()
                .insert(name.to_string(), CondState::Failed);
            return None;
        }
        self.conds
            .borrow_mut()
            .insert(name.to_string(), CondState::Visiting);
        self.cond_depth.set(self.cond_depth.get() + 1);
        let v = self.eval(node, &cpath);
        self.cond_depth.set(self.cond_depth.get() - 1);
        let result = match v {
            Value::Bool(b) => Some(b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            _ => {
                self.err(
                    Category::Intrinsic,
                    node,
                    &cpath,
                    "a condition must evaluate to true or false",
                );
                None
            }
        };
        let st = match result {
            Some(b) => CondState::Done(b),
            None => CondState::Failed,
        };
        self.conds.borrow_mut().insert(name.to_string(), st);
        result
    }

    /// Whether a resource is created (its `Condition` is absent or true).
    pub fn resource_active(&self, name: &str) -> bool {
        match self.t.resource(name).and_then(|r| r.condition.as_ref()) {
            None => true,
            Some((c, _)) => self.condition(c, None, "").unwrap_or(false),
        }
    }

    /// Evaluates a node and reports whether a `NoEcho` parameter contributed to it.
    pub fn eval_tracked(&self, node: &Node, path: &str) -> (Value, bool) {
        let before = self.sensitive.replace(false);
        let v = self.eval(node, path);
        let s = self.sensitive.replace(before);
        self.sensitive.set(before || s);
        (v, s)
    }

    /// Evaluates a node to a value. Problems go to the sink; the result is then `Null`.
    pub fn eval(&self, node: &Node, path: &str) -> Value {
        match &node.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Number(n) => Value::Number(n.clone()),
            NodeKind::String(s) => Value::String(s.clone()),
            NodeKind::List(items) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, n)| self.eval(n, &join(path, &i.to_string())))
                    .filter(|v| *v != Value::NoValue)
                    .collect(),
            ),
            NodeKind::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, n)| (k.name.clone(), self.eval(n, &join(path, &k.name))))
                    .filter(|(_, v)| *v != Value::NoValue)
                    .collect(),
            ),
            NodeKind::Intrinsic(i) => {
                let fpath = join(path, &i.func.name());
                self.call(&i.func, &i.arg, node, &fpath)
            }
        }
    }

    fn args<'n>(
        &self,
        func: &Func,
        arg: &'n Node,
        path: &str,
        min: usize,
        max: usize,
    ) -> Option<&'n [Node]> {
        match arg.as_list() {
            Some(l) if l.len() >= min && l.len() <= max => Some(l),
            _ => {
                let want = if min == max {
                    format!("{min}")
                } else {
                    format!("{min} to {max}")
                };
                self.err(
                    Category::Intrinsic,
                    arg,
                    path,
                    format!("{} takes a list of {want} arguments", func.name()),
                );
                None
            }
        }
    }

    fn string_arg(&self, func: &Func, node: &Node, path: &str) -> Option<String> {
        match self.eval(node, path) {
            Value::String(s) | Value::Number(s) => Some(s),
            Value::Bool(b) => Some(b.to_string()),
            Value::Unknown(_) => None,
            other => {
                self.err(
                    Category::Intrinsic,
                    node,
                    path,
                    format!(
                        "{} expects a string here, got {}",
                        func.name(),
                        other.to_json_string()
                    ),
                );
                None
            }
        }
    }

    fn list_arg(&self, func: &Func, node: &Node, path: &str) -> Result<Vec<Value>, Value> {
        match self.eval(node, path) {
            Value::List(l) => Ok(l),
            u @ Value::Unknown(_) => Err(u),
            other => {
                self.err(
                    Category::Intrinsic,
                    node,
                    path,
                    format!(
                        "{} expects a list here, got {}",
                        func.name(),
                        other.to_json_string()
                    ),
                );
                Err(Value::Null)
            }
        }
    }

    /// `Ref` semantics: parameter, pseudo parameter or resource physical id.
    pub fn reference(&self, name: &str, at: &Node, path: &str) -> Value {
        if let Some(p) = self.params.get(name) {
            if p.no_echo {
                self.sensitive.set(true);
            }
            return p.value.clone();
        }
        let ctx = self.ctx;
        match name {
            "AWS::AccountId" => return Value::str(&ctx.account_id),
            "AWS::Region" => return Value::str(&ctx.region),
            "AWS::StackName" => return Value::str(&ctx.stack_name),
            "AWS::StackId" => return Value::str(&ctx.stack_id),
            "AWS::Partition" => return Value::str(&ctx.partition),
            "AWS::URLSuffix" => return Value::str(&ctx.url_suffix),
            "AWS::NoValue" => return Value::NoValue,
            "AWS::NotificationARNs" => {
                return Value::List(ctx.notification_arns.iter().map(Value::str).collect())
            }
            _ => {}
        }
        if self.t.resource(name).is_some() {
            if !self.resource_active(name) {
                self.err(
                    Category::UnknownReference,
                    at,
                    path,
                    format!("`{name}` is not created (its condition is false)"),
                );
                return Value::Null;
            }
            return match self.resources.physical_id(name) {
                Some(id) => Value::String(id),
                None if self.strict => {
                    self.err(
                        Category::Evaluation,
                        at,
                        path,
                        format!("resource `{name}` has no physical id yet"),
                    );
                    Value::Null
                }
                None => Value::Unknown(Unknown::reference(name, None)),
            };
        }
        if self.t.parameter(name).is_some() {
            // Declared but unresolved: resolution already reported why.
            return Value::Null;
        }
        self.err(
            Category::UnknownReference,
            at,
            path,
            format!("Ref to unknown parameter or resource `{name}`"),
        );
        Value::Null
    }

    fn get_att(&self, res: &str, attr: &str, at: &Node, path: &str) -> Value {
        if self.t.resource(res).is_none() {
            self.err(
                Category::UnknownReference,
                at,
                path,
                format!("GetAtt on unknown resource `{res}`"),
            );
            return Value::Null;
        }
        if !self.resource_active(res) {
            self.err(
                Category::UnknownReference,
                at,
                path,
                format!("`{res}` is not created (its condition is false)"),
            );
            return Value::Null;
        }
        match self.resources.attribute(res, attr) {
            Some(v) => v,
            None if self.strict => {
                self.err(
                    Category::Evaluation,
                    at,
                    path,
                    format!("resource `{res}` has no attribute `{attr}`"),
                );
                Value::Null
            }
            None => Value::Unknown(Unknown::reference(res, Some(attr))),
        }
    }

    fn truthy(&self, v: &Value, at: &Node, path: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            _ => {
                self.err(
                    Category::Intrinsic,
                    at,
                    path,
                    format!("expected a condition, got {}", v.to_json_string()),
                );
                None
            }
        }
    }

    fn call(&self, func: &Func, arg: &Node, node: &Node, path: &str) -> Value {
        match func {
            Func::Ref => match arg.as_str() {
                Some(name) => self.reference(name, arg, path),
                None => {
                    self.err(Category::Intrinsic, arg, path, "Ref takes a name");
                    Value::Null
                }
            },
            // Outside the Conditions section `{"Condition": "X"}` is not a function (an IAM
            // policy or a state machine may well contain one): it stays a literal mapping.
            Func::Condition if self.cond_depth.get() == 0 => Value::Map(
                [("Condition".to_string(), self.eval(arg, path))]
                    .into_iter()
                    .collect(),
            ),
            Func::Condition => match arg.as_str() {
                Some(name) => self
                    .condition(name, Some(arg), path)
                    .map(Value::Bool)
                    .unwrap_or(Value::Null),
                None => {
                    self.err(Category::Intrinsic, arg, path, "Condition takes a name");
                    Value::Null
                }
            },
            Func::GetAtt => {
                let Some(a) = self.args(func, arg, path, 2, 2) else {
                    return Value::Null;
                };
                let Some(res) = a[0].as_str() else {
                    self.err(
                        Category::Intrinsic,
                        &a[0],
                        path,
                        "GetAtt needs a logical id",
                    );
                    return Value::Null;
                };
                match self.string_arg(func, &a[1], path) {
                    Some(attr) => self.get_att(res, &attr, arg, path),
                    None => Value::Null,
                }
            }
            Func::Sub => self.sub(arg, path),
            Func::Join => {
                let Some(a) = self.args(func, arg, path, 2, 2) else {
                    return Value::Null;
                };
                let Some(sep) = self.string_arg(func, &a[0], path) else {
                    return Value::Null;
                };
                let items = match self.list_arg(func, &a[1], path) {
                    Ok(l) => l,
                    Err(v) => return v,
                };
                let mut out = Vec::with_capacity(items.len());
                let mut unknown: Option<Unknown> = None;
                for v in &items {
                    match v {
                        Value::Unknown(_) => {
                            unknown.get_or_insert_with(Unknown::default);
                            let u = v.unknowns();
                            let w = unknown.as_mut().expect("set above");
                            for r in u.refs {
                                if !w.refs.contains(&r) {
                                    w.refs.push(r);
                                }
                            }
                        }
                        other => match other.scalar_string() {
                            Some(s) => out.push(s),
                            None => {
                                self.err(
                                    Category::Intrinsic,
                                    &a[1],
                                    path,
                                    format!(
                                        "Fn::Join can only join strings, got {}",
                                        other.to_json_string()
                                    ),
                                );
                                return Value::Null;
                            }
                        },
                    }
                }
                match unknown {
                    Some(u) => Value::Unknown(u),
                    None => Value::String(out.join(&sep)),
                }
            }
            Func::Select => {
                let Some(a) = self.args(func, arg, path, 2, 2) else {
                    return Value::Null;
                };
                let idx = match self.eval(&a[0], path) {
                    u @ Value::Unknown(_) => return u,
                    v => v
                        .scalar_string()
                        .and_then(|s| s.trim().parse::<usize>().ok()),
                };
                let Some(idx) = idx else {
                    self.err(
                        Category::Intrinsic,
                        &a[0],
                        path,
                        "Fn::Select index must be a non-negative integer",
                    );
                    return Value::Null;
                };
                let items = match self.list_arg(func, &a[1], path) {
                    Ok(l) => l,
                    Err(v) => return v,
                };
                match items.into_iter().nth(idx) {
                    Some(v) => v,
                    None => {
                        self.err(
                            Category::Evaluation,
                            node,
                            path,
                            format!("Fn::Select index {idx} is out of range"),
                        );
                        Value::Null
                    }
                }
            }
            Func::Split => {
                let Some(a) = self.args(func, arg, path, 2, 2) else {
                    return Value::Null;
                };
                let Some(sep) = self.string_arg(func, &a[0], path) else {
                    return Value::Null;
                };
                match self.eval(&a[1], path) {
                    u @ Value::Unknown(_) => u,
                    v => match v.scalar_string() {
                        Some(s) if !sep.is_empty() => {
                            Value::List(s.split(sep.as_str()).map(Value::str).collect())
                        }
                        Some(_) => {
                            self.err(
                                Category::Intrinsic,
                                &a[0],
                                path,
                                "Fn::Split delimiter is empty",
                            );
                            Value::Null
                        }
                        None => {
                            self.err(
                                Category::Intrinsic,
                                &a[1],
                                path,
                                "Fn::Split expects a string",
                            );
                            Value::Null
                        }
                    },
                }
            }
            Func::If => {
                let Some(a) = self.args(func, arg, path, 3, 3) else {
                    return Value::Null;
                };
                let Some(name) = a[0].as_str() else {
                    self.err(
                        Category::Intrinsic,
                        &a[0],
                        path,
                        "Fn::If needs a condition name",
                    );
                    return Value::Null;
                };
                match self.condition(name, Some(&a[0]), path) {
                    Some(true) => self.eval(&a[1], path),
                    Some(false) => self.eval(&a[2], path),
                    None => Value::Null,
                }
            }
            Func::Equals => {
                let Some(a) = self.args(func, arg, path, 2, 2) else {
                    return Value::Null;
                };
                let x = self.eval(&a[0], path);
                let y = self.eval(&a[1], path);
                if x.contains_unknown() || y.contains_unknown() {
                    self.err(
                        Category::Intrinsic,
                        node,
                        path,
                        "Fn::Equals cannot compare values of resources",
                    );
                    return Value::Null;
                }
                Value::Bool(loose_eq(&x, &y))
            }
            Func::And | Func::Or => {
                let Some(a) = self.args(func, arg, path, 2, 10) else {
                    return Value::Null;
                };
                let mut acc = matches!(func, Func::And);
                for n in a {
                    let v = self.eval(n, path);
                    if v.is_unknown() {
                        return v;
                    }
                    let Some(b) = self.truthy(&v, n, path) else {
                        return Value::Null;
                    };
                    if matches!(func, Func::And) {
                        acc &= b;
                    } else {
                        acc |= b;
                    }
                }
                Value::Bool(acc)
            }
            Func::Not => {
                let Some(a) = self.args(func, arg, path, 1, 1) else {
                    return Value::Null;
                };
                let v = self.eval(&a[0], path);
                if v.is_unknown() {
                    return v;
                }
                self.truthy(&v, &a[0], path)
                    .map(|b| Value::Bool(!b))
                    .unwrap_or(Value::Null)
            }
            Func::FindInMap => self.find_in_map(arg, path),
            Func::GetAZs => {
                let region = match self.eval(arg, path) {
                    Value::Null => String::new(),
                    v => v.scalar_string().unwrap_or_default(),
                };
                let zones = if region.is_empty() || region == self.ctx.region {
                    self.ctx.availability_zones.clone()
                } else {
                    zones_of(&region)
                };
                Value::List(zones.into_iter().map(Value::String).collect())
            }
            Func::ImportValue => {
                let Some(name) = self.string_arg(func, arg, path) else {
                    return Value::Null;
                };
                match self.external.import_value(&name) {
                    Some(v) => Value::String(v),
                    None => {
                        self.err(
                            Category::Evaluation,
                            node,
                            path,
                            format!("no stack exports `{name}`"),
                        );
                        Value::Null
                    }
                }
            }
            Func::Base64 => match self.eval(arg, path) {
                u @ Value::Unknown(_) => u,
                v => match v.scalar_string() {
                    Some(s) => Value::String(base64(s.as_bytes())),
                    None => {
                        self.err(
                            Category::Intrinsic,
                            arg,
                            path,
                            "Fn::Base64 expects a string",
                        );
                        Value::Null
                    }
                },
            },
            Func::Cidr => {
                let Some(a) = self.args(func, arg, path, 3, 3) else {
                    return Value::Null;
                };
                let vals: Vec<Value> = a.iter().map(|n| self.eval(n, path)).collect();
                if vals.iter().any(Value::contains_unknown) {
                    let mut u = Unknown::default();
                    for v in &vals {
                        for r in v.unknowns().refs {
                            u.refs.push(r);
                        }
                    }
                    return Value::Unknown(u);
                }
                let block = vals[0].scalar_string().unwrap_or_default();
                let count = vals[1]
                    .scalar_string()
                    .and_then(|s| s.trim().parse::<u64>().ok());
                let bits = vals[2]
                    .scalar_string()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                let (Some(count), Some(bits)) = (count, bits) else {
                    self.err(
                        Category::Intrinsic,
                        arg,
                        path,
                        "Fn::Cidr count and cidrBits must be integers",
                    );
                    return Value::Null;
                };
                let key = (block, count, bits);
                if let Some(l) = self.cidr_cache.borrow().get(&key) {
                    return Value::List(l.iter().map(Value::str).collect());
                }
                match crate::cidr::subnets(&key.0, count, bits) {
                    Ok(l) => {
                        let v = Value::List(l.iter().map(Value::str).collect());
                        self.cidr_cache.borrow_mut().insert(key, l);
                        v
                    }
                    Err(e) => {
                        self.err(Category::Evaluation, node, path, format!("Fn::Cidr: {e}"));
                        Value::Null
                    }
                }
            }
            Func::Length => match self.eval(arg, path) {
                Value::List(l) => Value::Number(l.len().to_string()),
                u @ Value::Unknown(_) => u,
                _ => {
                    self.err(Category::Intrinsic, arg, path, "Fn::Length expects a list");
                    Value::Null
                }
            },
            Func::ToJsonString => {
                let v = self.eval(arg, path);
                if v.contains_unknown() {
                    Value::Unknown(v.unknowns())
                } else {
                    Value::String(v.to_json_string())
                }
            }
            Func::Contains | Func::EachMemberEquals | Func::EachMemberIn => {
                let Some(a) = self.args(func, arg, path, 2, 2) else {
                    return Value::Null;
                };
                let list = match self.list_arg(func, &a[0], path) {
                    Ok(l) => l,
                    Err(v) => return v,
                };
                let other = self.eval(&a[1], path);
                if other.contains_unknown() {
                    return Value::Unknown(Unknown::default());
                }
                Value::Bool(match func {
                    Func::Contains => list.iter().any(|x| loose_eq(x, &other)),
                    Func::EachMemberEquals => list.iter().all(|x| loose_eq(x, &other)),
                    _ => match &other {
                        Value::List(allowed) => {
                            list.iter().all(|x| allowed.iter().any(|y| loose_eq(x, y)))
                        }
                        _ => {
                            self.err(
                                Category::Intrinsic,
                                &a[1],
                                path,
                                "Fn::EachMemberIn expects a list",
                            );
                            return Value::Null;
                        }
                    },
                })
            }
            Func::RefAll => {
                let Some(ty) = self.string_arg(func, arg, path) else {
                    return Value::Null;
                };
                match self.external.values_of_type(&ty) {
                    Some(v) => Value::List(v.into_iter().map(Value::String).collect()),
                    None => Value::Unknown(Unknown::default()),
                }
            }
            Func::ValueOf => {
                // [ParameterName, Attribute]: the attribute of the account resource(s) the
                // parameter names. Without an inventory the value is unknown, and a rule
                // assertion that depends on it is not enforced.
                let Some(a) = self.args(func, arg, path, 2, 2) else {
                    return Value::Null;
                };
                let (Some(pname), Some(attr)) = (
                    self.string_arg(func, &a[0], path),
                    self.string_arg(func, &a[1], path),
                ) else {
                    return Value::Null;
                };
                let (Some(p), Some(decl)) = (self.params.get(&pname), self.t.parameter(&pname))
                else {
                    self.err(
                        Category::UnknownReference,
                        &a[0],
                        path,
                        format!("Fn::ValueOf names unknown parameter `{pname}`"),
                    );
                    return Value::Null;
                };
                let ty = decl.type_name.as_str();
                let one = |v: &Value| -> Option<Value> {
                    let s = v.scalar_string()?;
                    self.external.value_of(ty, &s, &attr).map(Value::String)
                };
                let got = match &p.value {
                    Value::List(l) => l
                        .iter()
                        .map(one)
                        .collect::<Option<Vec<_>>>()
                        .map(Value::List),
                    v => one(v),
                };
                got.unwrap_or(Value::Unknown(Unknown::default()))
            }
            Func::ValueOfAll => {
                let Some(a) = self.args(func, arg, path, 2, 2) else {
                    return Value::Null;
                };
                let (Some(ty), Some(attr)) = (
                    self.string_arg(func, &a[0], path),
                    self.string_arg(func, &a[1], path),
                ) else {
                    return Value::Null;
                };
                let got = self.external.values_of_type(&ty).and_then(|vals| {
                    vals.iter()
                        .map(|v| self.external.value_of(&ty, v, &attr).map(Value::String))
                        .collect::<Option<Vec<_>>>()
                });
                got.map(Value::List)
                    .unwrap_or(Value::Unknown(Unknown::default()))
            }
            Func::Transform => {
                self.err(
                    Category::UnsupportedTransform,
                    node,
                    path,
                    "Fn::Transform (macros) is not supported",
                );
                Value::Null
            }
            Func::Unknown(n) => {
                self.err(
                    Category::Intrinsic,
                    node,
                    path,
                    format!("unknown intrinsic function `{n}`"),
                );
                Value::Null
            }
        }
    }

    fn sub(&self, arg: &Node, path: &str) -> Value {
        let (text, vars): (&Node, &[(crate::ast::Key, Node)]) = match &arg.kind {
            NodeKind::String(_) => (arg, &[]),
            NodeKind::List(l) if l.len() == 2 => match l[1].as_map() {
                Some(m) => (&l[0], m),
                None => {
                    self.err(
                        Category::Intrinsic,
                        &l[1],
                        path,
                        "Fn::Sub variables must be a mapping",
                    );
                    return Value::Null;
                }
            },
            _ => {
                self.err(
                    Category::Intrinsic,
                    arg,
                    path,
                    "Fn::Sub takes a string or [string, {variables}]",
                );
                return Value::Null;
            }
        };
        let Some(s) = text.as_str() else {
            self.err(
                Category::Intrinsic,
                text,
                path,
                "Fn::Sub template must be a literal string",
            );
            return Value::Null;
        };
        let mut out = String::with_capacity(s.len());
        let mut unknown = Unknown::default();
        for part in parse_sub(s) {
            match part {
                SubPart::Lit(l) => out.push_str(&l),
                SubPart::Var(v) => {
                    let val = if let Some((_, n)) = vars.iter().find(|(k, _)| k.name == v) {
                        self.eval(n, &join(path, &v))
                    } else if let Some((res, attr)) = v
                        .split_once('.')
                        .filter(|_| self.params.get(&v).is_none() && self.t.parameter(&v).is_none())
                    {
                        self.get_att(res, attr, text, path)
                    } else {
                        self.reference(&v, text, path)
                    };
                    match val {
                        Value::Unknown(u) => {
                            for r in u.refs {
                                if !unknown.refs.contains(&r) {
                                    unknown.refs.push(r);
                                }
                            }
                        }
                        Value::Null => {}
                        other => match other.scalar_string() {
                            Some(x) => out.push_str(&x),
                            None => self.err(
                                Category::Intrinsic,
                                text,
                                path,
                                format!("Fn::Sub variable `{v}` is not a string"),
                            ),
                        },
                    }
                }
            }
        }
        if unknown.refs.is_empty() {
            Value::String(out)
        } else {
            Value::Unknown(unknown)
        }
    }

    fn find_in_map(&self, arg: &Node, path: &str) -> Value {
        let func = Func::FindInMap;
        let Some(a) = self.args(&func, arg, path, 3, 4) else {
            return Value::Null;
        };
        let default = a.get(3).map(|d| match d.get("DefaultValue") {
            Some(v) => Some(v),
            None => {
                self.err(
                    Category::Intrinsic,
                    d,
                    path,
                    "the fourth argument of Fn::FindInMap must be {DefaultValue: ...}",
                );
                None
            }
        });
        let keys: Vec<Option<String>> = a[..3]
            .iter()
            .map(|n| self.string_arg(&func, n, path))
            .collect();
        let [Some(m), Some(k1), Some(k2)] = [&keys[0], &keys[1], &keys[2]] else {
            return Value::Null;
        };
        let found = self
            .t
            .mappings
            .as_ref()
            .and_then(|ms| ms.get(m))
            .and_then(|x| x.get(k1))
            .and_then(|x| x.get(k2));
        match (found, default) {
            (Some(n), _) => self.eval(n, path),
            (None, Some(Some(d))) => self.eval(d, path),
            (None, _) => {
                self.err(
                    Category::Evaluation,
                    arg,
                    path,
                    format!("Fn::FindInMap: no value at {m}.{k1}.{k2}"),
                );
                Value::Null
            }
        }
    }
}

/// Equality as `Fn::Equals` sees it: scalars compare by their text.
pub(crate) fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a.scalar_string(), b.scalar_string()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (Value::List(x), Value::List(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| loose_eq(p, q))
            }
            _ => a == b,
        },
    }
}

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}
