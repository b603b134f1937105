//! Parameters: declared types and constraints, and the resolution of supplied values.

use std::collections::BTreeMap;

use crate::ast::{Node, NodeKind};
use crate::diag::{join, Category, Pos, Sink};
use crate::value::{Value, MASK};

/// How many elements synthesized list values have (templates `Fn::Select` into them).
const LIST_LEN: usize = 6;

/// A parameter's declared type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamType {
    String,
    Number,
    ListNumber,
    CommaDelimitedList,
    /// An AWS-specific type such as `AWS::EC2::VPC::Id`.
    Aws(String),
    /// `List<AWS::EC2::Subnet::Id>` and friends.
    ListAws(String),
    /// `AWS::SSM::Parameter::Name`.
    SsmName,
    /// `AWS::SSM::Parameter::Value<T>`: the supplied value names an SSM parameter whose
    /// value (of type `T`) is fetched through [`ExternalResolver::ssm_parameter`].
    Ssm(Box<ParamType>),
}

/// AWS-specific parameter types, with the id prefix a value must carry (if any).
const AWS_TYPES: &[(&str, Option<&str>)] = &[
    ("AWS::EC2::AvailabilityZone::Name", None),
    ("AWS::EC2::Image::Id", Some("ami-")),
    ("AWS::EC2::Instance::Id", Some("i-")),
    ("AWS::EC2::KeyPair::KeyName", None),
    ("AWS::EC2::SecurityGroup::GroupName", None),
    ("AWS::EC2::SecurityGroup::Id", Some("sg-")),
    ("AWS::EC2::Subnet::Id", Some("subnet-")),
    ("AWS::EC2::Volume::Id", Some("vol-")),
    ("AWS::EC2::VPC::Id", Some("vpc-")),
    ("AWS::Route53::HostedZone::Id", None),
];

impl ParamType {
    pub fn parse(s: &str) -> Option<ParamType> {
        let s = s.trim();
        Some(match s {
            "String" => ParamType::String,
            "Number" => ParamType::Number,
            "List<Number>" => ParamType::ListNumber,
            "CommaDelimitedList" => ParamType::CommaDelimitedList,
            "AWS::SSM::Parameter::Name" => ParamType::SsmName,
            _ => {
                if let Some(inner) = s
                    .strip_prefix("AWS::SSM::Parameter::Value<")
                    .and_then(|x| x.strip_suffix('>'))
                {
                    let inner = match inner.trim() {
                        // Only valid inside an SSM type: an SSM StringList parameter.
                        "List<String>" => ParamType::CommaDelimitedList,
                        other => ParamType::parse(other)?,
                    };
                    if matches!(
                        inner,
                        ParamType::Ssm(_)
                            | ParamType::SsmName
                            | ParamType::Number
                            | ParamType::ListNumber
                    ) {
                        return None;
                    }
                    return Some(ParamType::Ssm(Box::new(inner)));
                }
                if let Some(inner) = s.strip_prefix("List<").and_then(|x| x.strip_suffix('>')) {
                    return AWS_TYPES
                        .iter()
                        .any(|(t, _)| *t == inner)
                        .then(|| ParamType::ListAws(inner.to_string()));
                }
                if AWS_TYPES.iter().any(|(t, _)| *t == s) {
                    ParamType::Aws(s.to_string())
                } else {
                    return None;
                }
            }
        })
    }

    /// True when the parameter's value is a list (after SSM resolution).
    pub fn is_list(&self) -> bool {
        match self {
            ParamType::ListNumber | ParamType::CommaDelimitedList | ParamType::ListAws(_) => true,
            ParamType::Ssm(inner) => inner.is_list(),
            _ => false,
        }
    }

    fn element_is_number(&self) -> bool {
        matches!(self, ParamType::Number | ParamType::ListNumber)
    }

    fn aws_prefix(&self) -> Option<(&str, &'static str)> {
        match self {
            ParamType::Aws(t) | ParamType::ListAws(t) => AWS_TYPES
                .iter()
                .find(|(x, _)| x == t)
                .and_then(|(_, p)| p.map(|p| (t.as_str(), p))),
            _ => None,
        }
    }

    /// A plausible value of this type, for runs that need every parameter filled in.
    pub fn synthesize(&self) -> String {
        match self {
            ParamType::String | ParamType::SsmName => "synthesized".into(),
            ParamType::Number => "1".into(),
            ParamType::ListNumber => ["1"; LIST_LEN].join(","),
            ParamType::CommaDelimitedList => ["a", "b", "c", "d", "e", "f"].join(","),
            ParamType::Aws(t) | ParamType::ListAws(t) => {
                let one = match self.aws_prefix() {
                    Some((_, p)) => format!("{p}0123456789abcdef0"),
                    None if t.contains("AvailabilityZone") => "us-east-1a".into(),
                    None => "synthesized".into(),
                };
                if self.is_list() {
                    vec![one; LIST_LEN].join(",")
                } else {
                    one
                }
            }
            ParamType::Ssm(_) => "/synthesized/parameter".into(),
        }
    }
}

/// A parameter declaration.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    pub pos: Pos,
    pub type_name: String,
    pub param_type: ParamType,
    pub default: Option<String>,
    pub allowed_values: Option<Vec<String>>,
    pub allowed_pattern: Option<String>,
    /// The compiled pattern (anchored at both ends, as CloudFormation matches it). `None` with
    /// a pattern set means the pattern uses Java-only syntax we cannot run; it is then not
    /// enforced rather than rejecting a template AWS accepts.
    pattern: Option<fancy_regex::Regex>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    pub no_echo: bool,
    pub description: Option<String>,
    pub constraint_description: Option<String>,
}

/// External lookups the evaluator needs; every method has a "not available" default, so a
/// caller implements only what it has.
pub trait ExternalResolver {
    /// The value of an SSM parameter (for `AWS::SSM::Parameter::Value<...>` parameters).
    fn ssm_parameter(&self, _name: &str) -> Option<String> {
        None
    }
    /// The value another stack exported (`Fn::ImportValue`).
    fn import_value(&self, _export_name: &str) -> Option<String> {
        None
    }
    /// Checks that an AWS-specific parameter value exists (a VPC id, a key pair, ...).
    /// The default accepts anything that has the right shape.
    fn check_aws_value(&self, _type_name: &str, _value: &str) -> Result<(), String> {
        Ok(())
    }
    /// An attribute of the account resource a parameter value names (`Fn::ValueOf` in
    /// rules), e.g. the `VpcId` of a subnet.
    fn value_of(&self, _type_name: &str, _value: &str, _attribute: &str) -> Option<String> {
        None
    }
    /// All values of an AWS-specific parameter type in the account (`Fn::RefAll` in rules).
    fn values_of_type(&self, _type_name: &str) -> Option<Vec<String>> {
        None
    }
}

/// The resolver that knows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoExternal;
impl ExternalResolver for NoExternal {}

/// A parameter with its final value.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedParameter {
    pub name: String,
    /// A string, or a list of strings for list types.
    pub value: Value,
    /// The value as supplied (before SSM resolution), as CloudFormation reports it.
    pub supplied: String,
    pub no_echo: bool,
}

impl ResolvedParameter {
    /// The value for display: masked when the parameter is `NoEcho`.
    pub fn display_value(&self) -> String {
        if self.no_echo {
            MASK.to_string()
        } else {
            self.supplied.clone()
        }
    }
}

/// Compiles an `AllowedPattern` (Java syntax) anchored at both ends. Java reads `-` after a
/// class escape inside brackets (`[\w-.]`) as a literal; escaping it keeps that meaning.
fn compile_pattern(p: &str) -> Option<fancy_regex::Regex> {
    let mut fixed = String::with_capacity(p.len() + 4);
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        fixed.push(c);
        if c == '\\' {
            if let Some(n) = chars.next() {
                fixed.push(n);
                if matches!(n, 'w' | 'W' | 'd' | 'D' | 's' | 'S') && chars.peek() == Some(&'-') {
                    chars.next();
                    fixed.push_str("\\-");
                }
            }
        }
    }
    fancy_regex::Regex::new(&format!("^(?:{fixed})$")).ok()
}

fn num_of(n: &Node) -> Option<f64> {
    n.scalar_text()?.trim().parse().ok()
}

impl Parameter {
    pub(crate) fn from_node(
        sink: &mut Sink,
        name: &str,
        pos: Pos,
        node: &Node,
        path: &str,
    ) -> Option<Parameter> {
        let Some(entries) = node.as_map() else {
            sink.push(
                Category::Structure,
                node.pos,
                path,
                "a parameter must be a mapping",
            );
            return None;
        };
        let mut p = Parameter {
            name: name.to_string(),
            pos,
            type_name: String::new(),
            param_type: ParamType::String,
            default: None,
            allowed_values: None,
            allowed_pattern: None,
            pattern: None,
            min_length: None,
            max_length: None,
            min_value: None,
            max_value: None,
            no_echo: false,
            description: None,
            constraint_description: None,
        };
        let mut typed = false;
        for (k, v) in entries {
            let kpath = join(path, &k.name);
            let bad = |sink: &mut Sink, what: &str| {
                sink.push(
                    Category::Parameter,
                    v.pos,
                    &kpath,
                    format!("{} must be {what}", k.name),
                )
            };
            match k.name.as_str() {
                "Type" => match v.as_str() {
                    Some(s) => match ParamType::parse(s) {
                        Some(t) => {
                            p.type_name = s.to_string();
                            p.param_type = t;
                            typed = true;
                        }
                        None => sink.push(
                            Category::Parameter,
                            v.pos,
                            &kpath,
                            format!("unknown parameter type `{s}`"),
                        ),
                    },
                    None => bad(sink, "a string"),
                },
                "Default" => match &v.kind {
                    NodeKind::List(l) => {
                        // Not what the documentation shows, but accepted for list types.
                        let items: Option<Vec<String>> = l.iter().map(Node::scalar_text).collect();
                        match items {
                            Some(items) => p.default = Some(items.join(",")),
                            None => bad(sink, "a string"),
                        }
                    }
                    _ => match v.scalar_text() {
                        Some(s) => p.default = Some(s),
                        None => bad(sink, "a string"),
                    },
                },
                "AllowedValues" => match v.as_list() {
                    Some(l) => {
                        let items: Option<Vec<String>> = l.iter().map(Node::scalar_text).collect();
                        match items {
                            Some(items) => p.allowed_values = Some(items),
                            None => bad(sink, "a list of strings"),
                        }
                    }
                    None => bad(sink, "a list"),
                },
                "AllowedPattern" => match v.scalar_text() {
                    Some(s) => {
                        p.pattern = compile_pattern(&s);
                        p.allowed_pattern = Some(s);
                    }
                    None => bad(sink, "a string"),
                },
                "MinLength" | "MaxLength" => {
                    match v.scalar_text().and_then(|s| s.trim().parse::<u64>().ok()) {
                        Some(n) if k.name == "MinLength" => p.min_length = Some(n),
                        Some(n) => p.max_length = Some(n),
                        None => bad(sink, "a non-negative integer"),
                    }
                }
                "MinValue" | "MaxValue" => match num_of(v) {
                    Some(n) if k.name == "MinValue" => p.min_value = Some(n),
                    Some(n) => p.max_value = Some(n),
                    None => bad(sink, "a number"),
                },
                "NoEcho" => match &v.kind {
                    NodeKind::Bool(b) => p.no_echo = *b,
                    NodeKind::String(s) if s.eq_ignore_ascii_case("true") => p.no_echo = true,
                    NodeKind::String(s) if s.eq_ignore_ascii_case("false") => p.no_echo = false,
                    _ => bad(sink, "true or false"),
                },
                "Description" => p.description = v.scalar_text(),
                "ConstraintDescription" => p.constraint_description = v.scalar_text(),
                other => sink.push(
                    Category::Parameter,
                    k.pos,
                    path,
                    format!("unknown parameter attribute `{other}`"),
                ),
            }
        }
        if !typed && !entries.iter().any(|(k, _)| k.name == "Type") {
            sink.push(
                Category::Parameter,
                node.pos,
                path,
                "a parameter needs `Type`",
            );
        }
        if let (Some(d), false) = (&p.default, matches!(p.param_type, ParamType::Ssm(_))) {
            // A default must satisfy the constraints too; CloudFormation rejects the template.
            let mut problems = Vec::new();
            p.check_value(d, &mut problems);
            for m in problems {
                sink.push(
                    Category::Parameter,
                    node.pos,
                    &join(path, "Default"),
                    format!("default value: {m}"),
                );
            }
        }
        Some(p)
    }

    /// Splits a supplied value into elements for list types.
    fn elements<'v>(&self, value: &'v str) -> Vec<&'v str> {
        if self.param_type.is_list() {
            if value.is_empty() {
                Vec::new()
            } else {
                value.split(',').map(str::trim).collect()
            }
        } else {
            vec![value]
        }
    }

    /// Checks a value against the type and constraints; problems are pushed as messages.
    /// For SSM types this checks the already-resolved value against the inner type.
    pub fn check_value(&self, value: &str, problems: &mut Vec<String>) {
        let ty = match &self.param_type {
            ParamType::Ssm(inner) => inner.as_ref(),
            t => t,
        };
        let shown = |v: &str| -> String {
            if self.no_echo {
                MASK.into()
            } else {
                format!("`{v}`")
            }
        };
        let constraint = |msg: String| -> String {
            match &self.constraint_description {
                Some(c) => format!("{msg} ({c})"),
                None => msg,
            }
        };
        if let (Some(min), ParamType::String) = (self.min_length, ty) {
            if (value.chars().count() as u64) < min {
                problems.push(constraint(format!("value is shorter than MinLength {min}")));
            }
        }
        if let (Some(max), ParamType::String) = (self.max_length, ty) {
            if (value.chars().count() as u64) > max {
                problems.push(constraint(format!("value is longer than MaxLength {max}")));
            }
        }
        if value.len() > crate::template::quota::PARAMETER_VALUE_BYTES {
            problems.push(format!(
                "the value is {} bytes, over the quota of {}",
                value.len(),
                crate::template::quota::PARAMETER_VALUE_BYTES
            ));
        }
        let pattern = self.pattern.as_ref();
        let elems = if self.param_type.is_list() {
            self.elements(value)
        } else {
            vec![value]
        };
        for e in elems {
            if ty.element_is_number() && e.trim().parse::<f64>().is_err() {
                problems.push(format!("{} is not a number", shown(e)));
                continue;
            }
            if ty.element_is_number() {
                let n: f64 = e.trim().parse().unwrap_or(0.0);
                if let Some(min) = self.min_value {
                    if n < min {
                        problems.push(constraint(format!(
                            "{} is less than MinValue {min}",
                            shown(e)
                        )));
                    }
                }
                if let Some(max) = self.max_value {
                    if n > max {
                        problems.push(constraint(format!(
                            "{} is greater than MaxValue {max}",
                            shown(e)
                        )));
                    }
                }
            }
            if let Some(allowed) = &self.allowed_values {
                if !allowed.iter().any(|a| a == e) {
                    problems.push(constraint(format!(
                        "{} is not one of the AllowedValues [{}]",
                        shown(e),
                        allowed.join(", ")
                    )));
                }
            }
            if let Some(re) = pattern {
                // A pattern that exhausts the backtracking limit is not held against the value.
                if !re.is_match(e).unwrap_or(true) {
                    problems.push(constraint(format!(
                        "{} does not match AllowedPattern {}",
                        shown(e),
                        self.allowed_pattern.as_deref().unwrap_or("")
                    )));
                }
            }
            if let Some((t, prefix)) = ty.aws_prefix() {
                if !e.starts_with(prefix) {
                    problems.push(format!(
                        "{} is not a valid {t} (expected {prefix}...)",
                        shown(e)
                    ));
                }
            }
        }
    }

    /// Resolves the value of this parameter from the supplied inputs and the default.
    pub(crate) fn resolve(
        &self,
        supplied: Option<&str>,
        external: &dyn ExternalResolver,
        sink: &mut Sink,
    ) -> Option<ResolvedParameter> {
        let path = join("Parameters", &self.name);
        let Some(raw) = supplied
            .map(str::to_string)
            .or_else(|| self.default.clone())
        else {
            sink.push(
                Category::Parameter,
                self.pos,
                &path,
                format!(
                    "parameter `{}` needs a value (it has no Default)",
                    self.name
                ),
            );
            return None;
        };
        let value = match &self.param_type {
            ParamType::Ssm(_) => match external.ssm_parameter(&raw) {
                Some(v) => v,
                None => {
                    sink.push(
                        Category::Parameter,
                        self.pos,
                        &path,
                        format!("SSM parameter `{raw}` was not found"),
                    );
                    return None;
                }
            },
            _ => raw.clone(),
        };
        let mut problems = Vec::new();
        self.check_value(&value, &mut problems);
        let ty = match &self.param_type {
            ParamType::Ssm(inner) => inner.as_ref(),
            t => t,
        };
        if let ParamType::Aws(t) | ParamType::ListAws(t) = ty {
            for e in self.elements(&value) {
                if let Err(m) = external.check_aws_value(t, e) {
                    problems.push(m);
                }
            }
        }
        for m in &problems {
            sink.push(Category::Parameter, self.pos, &path, m.clone());
        }
        if !problems.is_empty() {
            return None;
        }
        let v = if self.param_type.is_list() {
            Value::List(
                self.elements(&value)
                    .into_iter()
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            )
        } else {
            Value::String(value)
        };
        Some(ResolvedParameter {
            name: self.name.clone(),
            value: v,
            supplied: raw,
            no_echo: self.no_echo,
        })
    }
}

/// Resolves every declared parameter; unknown supplied names are reported too.
pub(crate) fn resolve_all(
    params: &[Parameter],
    supplied: &BTreeMap<String, String>,
    external: &dyn ExternalResolver,
    sink: &mut Sink,
) -> BTreeMap<String, ResolvedParameter> {
    let mut out = BTreeMap::new();
    for p in params {
        if let Some(r) = p.resolve(supplied.get(&p.name).map(String::as_str), external, sink) {
            out.insert(p.name.clone(), r);
        }
    }
    for name in supplied.keys() {
        if !params.iter().any(|p| &p.name == name) {
            sink.push(
                Category::Parameter,
                Pos::default(),
                "Parameters",
                format!("parameter `{name}` is supplied but the template does not declare it"),
            );
        }
    }
    out
}

/// Values for every parameter that has no default, synthesized from its type and
/// constraints; used by conformance runs and validation without inputs.
pub fn synthesize_missing(params: &[Parameter]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in params.iter().filter(|p| p.default.is_none()) {
        out.insert(p.name.clone(), synthesize_one(p));
    }
    out
}

fn synthesize_one(p: &Parameter) -> String {
    let ty = match &p.param_type {
        // The value of an SSM type is the parameter's name.
        ParamType::Ssm(_) => return p.param_type.synthesize(),
        t => t,
    };
    let mut candidates: Vec<String> = Vec::new();
    if let Some(a) = p.allowed_values.as_ref().and_then(|a| a.first()) {
        candidates.push(a.clone());
    }
    if ty.element_is_number() {
        let n = p.min_value.or(p.max_value).unwrap_or(1.0);
        let n = if n.fract() == 0.0 {
            format!("{}", n as i64)
        } else {
            n.to_string()
        };
        candidates.push(if ty.is_list() {
            vec![n; LIST_LEN].join(",")
        } else {
            n
        });
    }
    candidates.push(ty.synthesize());
    let len = p.min_length.unwrap_or(1).max(1) as usize;
    candidates.extend(
        [
            "x",
            "a1",
            "A1a!",
            "synthesized-value",
            "test@example.com",
            "10.0.0.0/16",
            "10.0.0.1",
            "123456789012",
            "d-0123456789",
            "pcx-0123456789abcdef0",
            "rtb-0123456789abcdef0",
            "vpc-0123456789abcdef0",
            "arn:aws:iam::123456789012:role/synthesized",
            "",
        ]
        .iter()
        .map(|c| {
            let mut c = c.to_string();
            while !c.is_empty() && c.len() < len {
                c.push('x');
            }
            c
        }),
    );
    let ok = |c: &String| {
        let mut problems = Vec::new();
        p.check_value(c, &mut problems);
        problems.is_empty()
    };
    candidates
        .iter()
        .find(|c| ok(c))
        .cloned()
        .unwrap_or_else(|| candidates[0].clone())
}
