//! The template model: the sections of a read document, indexed by name.
//!
//! Building the model checks the shape of every section (unknown sections, wrong node kinds,
//! quotas); it does not look inside intrinsic functions — that is [`crate::validate()`].

use std::collections::HashMap;

use crate::ast::{Node, NodeKind};
use crate::diag::{join, Category, Diagnostics, Pos, Sink};
use crate::params::Parameter;

/// The sections CloudFormation accepts at the top level.
pub const SECTIONS: &[&str] = &[
    "AWSTemplateFormatVersion",
    "Description",
    "Metadata",
    "Parameters",
    "Rules",
    "Mappings",
    "Conditions",
    "Transform",
    "Resources",
    "Outputs",
    "Hooks",
];

/// CloudFormation quotas that apply to a template body.
pub mod quota {
    pub const RESOURCES: usize = 500;
    pub const PARAMETERS: usize = 200;
    pub const OUTPUTS: usize = 200;
    pub const MAPPINGS: usize = 200;
    /// Bytes of a template body passed directly (not through S3).
    pub const BODY_BYTES: usize = 51_200;
    /// Bytes of a template body passed through S3.
    pub const S3_BODY_BYTES: usize = 1_048_576;
    /// Characters in a logical id, parameter, output or mapping name.
    pub const NAME_LEN: usize = 255;
    /// Attributes (top-level keys) of one mapping.
    pub const MAPPING_ATTRIBUTES: usize = 200;
    /// Bytes of the template description.
    pub const DESCRIPTION_BYTES: usize = 1024;
    /// Bytes of one parameter value.
    pub const PARAMETER_VALUE_BYTES: usize = 4096;
}

/// The transform that enables `Fn::ForEach`, `Fn::Length`, `Fn::ToJsonString`.
pub const LANGUAGE_EXTENSIONS: &str = "AWS::LanguageExtensions";

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Source name used in diagnostics (usually the file path).
    pub file: String,
    /// The whole document, as read.
    pub root: Node,
    /// Size of the source text in bytes (for the body-size quota).
    pub body_bytes: usize,
    pub description: Option<String>,
    pub transforms: Vec<(String, Pos)>,
    pub parameters: Vec<Parameter>,
    pub mappings: Option<Node>,
    pub conditions: Vec<(String, Node)>,
    pub rules: Vec<Rule>,
    pub resources: Vec<Resource>,
    pub outputs: Vec<Output>,
    pub(crate) param_index: HashMap<String, usize>,
    pub(crate) resource_index: HashMap<String, usize>,
    pub(crate) condition_index: HashMap<String, usize>,
}

/// A resource declaration with its attributes.
#[derive(Debug, Clone)]
pub struct Resource {
    pub name: String,
    pub pos: Pos,
    pub type_name: String,
    pub type_pos: Pos,
    pub properties: Option<Node>,
    pub depends_on: Vec<(String, Pos)>,
    pub condition: Option<(String, Pos)>,
    pub deletion_policy: Option<Node>,
    pub update_replace_policy: Option<Node>,
    pub creation_policy: Option<Node>,
    pub update_policy: Option<Node>,
    pub metadata: Option<Node>,
}

#[derive(Debug, Clone)]
pub struct Output {
    pub name: String,
    pub pos: Pos,
    pub value: Option<Node>,
    pub description: Option<Node>,
    pub export_name: Option<Node>,
    pub condition: Option<(String, Pos)>,
}

/// A rule: an optional condition and assertions that must hold for parameter values.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub pos: Pos,
    pub condition: Option<Node>,
    pub assertions: Vec<Assertion>,
}

#[derive(Debug, Clone)]
pub struct Assertion {
    pub assert: Node,
    pub description: Option<String>,
}

const RESOURCE_ATTRS: &[&str] = &[
    "Type",
    "Properties",
    "DependsOn",
    "Condition",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "CreationPolicy",
    "UpdatePolicy",
    "Metadata",
    "Version",
];

impl Template {
    pub fn has_transform(&self, name: &str) -> bool {
        self.transforms.iter().any(|(t, _)| t == name)
    }

    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.param_index.get(name).map(|&i| &self.parameters[i])
    }

    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resource_index.get(name).map(|&i| &self.resources[i])
    }

    pub fn condition(&self, name: &str) -> Option<&Node> {
        self.condition_index
            .get(name)
            .map(|&i| &self.conditions[i].1)
    }

    /// Builds the model from a read document. Shape problems are collected, not fatal: the
    /// model holds whatever could be understood, and `Err` carries every problem.
    pub fn from_node(file: &str, root: Node) -> Result<Template, Diagnostics> {
        let mut sink = Sink::new(file);
        let t = build(&mut sink, file, root);
        if sink.diags.is_empty() {
            Ok(t)
        } else {
            Err(Diagnostics(sink.diags))
        }
    }

    pub(crate) fn build_lenient(sink: &mut Sink, file: &str, root: Node) -> Template {
        build(sink, file, root)
    }
}

fn map_entries<'a>(sink: &mut Sink, node: &'a Node, path: &str) -> &'a [(crate::ast::Key, Node)] {
    match node.as_map() {
        Some(m) => m,
        None => {
            sink.push(
                Category::Structure,
                node.pos,
                path,
                format!("expected a mapping, found a {}", node.kind_name()),
            );
            &[]
        }
    }
}

fn string_of(sink: &mut Sink, node: &Node, path: &str) -> Option<String> {
    match node.scalar_text() {
        Some(s) => Some(s),
        None => {
            sink.push(
                Category::Structure,
                node.pos,
                path,
                format!("expected a string, found a {}", node.kind_name()),
            );
            None
        }
    }
}

fn build(sink: &mut Sink, file: &str, root: Node) -> Template {
    let mut t = Template {
        file: file.to_string(),
        root: Node::new(root.pos, NodeKind::Null),
        body_bytes: 0,
        description: None,
        transforms: Vec::new(),
        parameters: Vec::new(),
        mappings: None,
        conditions: Vec::new(),
        rules: Vec::new(),
        resources: Vec::new(),
        outputs: Vec::new(),
        param_index: HashMap::new(),
        resource_index: HashMap::new(),
        condition_index: HashMap::new(),
    };
    let Some(top) = root.as_map() else {
        sink.push(
            Category::Structure,
            root.pos,
            "",
            format!("a template must be a mapping, found a {}", root.kind_name()),
        );
        t.root = root;
        return t;
    };
    for (k, v) in top {
        let path = k.name.as_str();
        match path {
            "AWSTemplateFormatVersion" => {
                if let Some(s) = string_of(sink, v, path) {
                    if s != "2010-09-09" {
                        sink.push(
                            Category::Structure,
                            v.pos,
                            path,
                            format!("unsupported format version `{s}` (only 2010-09-09)"),
                        );
                    }
                }
            }
            "Description" => {
                t.description = string_of(sink, v, path);
                if let Some(d) = t
                    .description
                    .as_ref()
                    .filter(|d| d.len() > quota::DESCRIPTION_BYTES)
                {
                    sink.push(
                        Category::Quota,
                        v.pos,
                        path,
                        format!(
                            "the description is {} bytes, over the quota of {}",
                            d.len(),
                            quota::DESCRIPTION_BYTES
                        ),
                    );
                }
            }
            "Metadata" | "Hooks" => {}
            "Transform" => {
                t.transforms = transforms(sink, v);
                check_transforms(sink, &t.transforms);
            }
            "Parameters" => {
                for (pk, pv) in map_entries(sink, v, path) {
                    let ppath = join(path, &pk.name);
                    check_name(sink, &pk.name, pk.pos, &ppath);
                    if let Some(p) = Parameter::from_node(sink, &pk.name, pk.pos, pv, &ppath) {
                        t.param_index.insert(p.name.clone(), t.parameters.len());
                        t.parameters.push(p);
                    }
                }
                if t.parameters.len() > quota::PARAMETERS {
                    sink.push(
                        Category::Quota,
                        v.pos,
                        path,
                        format!(
                            "{} parameters exceed the quota of {}",
                            t.parameters.len(),
                            quota::PARAMETERS
                        ),
                    );
                }
            }
            "Mappings" => {
                let entries = map_entries(sink, v, path);
                if entries.len() > quota::MAPPINGS {
                    sink.push(
                        Category::Quota,
                        v.pos,
                        path,
                        format!(
                            "{} mappings exceed the quota of {}",
                            entries.len(),
                            quota::MAPPINGS
                        ),
                    );
                }
                for (mk, mv) in entries {
                    let mpath = join(path, &mk.name);
                    check_name(sink, &mk.name, mk.pos, &mpath);
                    let n = mv.as_map().map_or(0, <[_]>::len);
                    if n > quota::MAPPING_ATTRIBUTES {
                        sink.push(
                            Category::Quota,
                            mv.pos,
                            &mpath,
                            format!(
                                "{n} mapping attributes exceed the quota of {}",
                                quota::MAPPING_ATTRIBUTES
                            ),
                        );
                    }
                    for (_, second) in map_entries(sink, mv, &mpath) {
                        if !matches!(second.kind, NodeKind::Map(_)) {
                            sink.push(
                                Category::Structure,
                                second.pos,
                                &mpath,
                                "each mapping entry must be a mapping of keys to values",
                            );
                        }
                    }
                }
                t.mappings = Some(v.clone());
            }
            "Conditions" => {
                for (ck, cv) in map_entries(sink, v, path) {
                    t.condition_index
                        .insert(ck.name.clone(), t.conditions.len());
                    t.conditions.push((ck.name.clone(), cv.clone()));
                }
            }
            "Rules" => {
                for (rk, rv) in map_entries(sink, v, path) {
                    let rpath = join(path, &rk.name);
                    let mut rule = Rule {
                        name: rk.name.clone(),
                        pos: rk.pos,
                        condition: None,
                        assertions: Vec::new(),
                    };
                    for (ak, av) in map_entries(sink, rv, &rpath) {
                        match ak.name.as_str() {
                            "RuleCondition" => rule.condition = Some(av.clone()),
                            "Assertions" => {
                                let apath = join(&rpath, "Assertions");
                                let Some(list) = av.as_list() else {
                                    sink.push(
                                        Category::Structure,
                                        av.pos,
                                        &apath,
                                        "Assertions must be a list",
                                    );
                                    continue;
                                };
                                for a in list {
                                    let mut assert = None;
                                    let mut description = None;
                                    for (xk, xv) in map_entries(sink, a, &apath) {
                                        match xk.name.as_str() {
                                            "Assert" => assert = Some(xv.clone()),
                                            "AssertDescription" => description = xv.scalar_text(),
                                            // CloudFormation ignores other keys here
                                            // (real templates misspell AssertDescription).
                                            _ => {}
                                        }
                                    }
                                    match assert {
                                        Some(assert) => rule.assertions.push(Assertion {
                                            assert,
                                            description,
                                        }),
                                        None => sink.push(
                                            Category::Structure,
                                            a.pos,
                                            &apath,
                                            "an assertion needs `Assert`",
                                        ),
                                    }
                                }
                            }
                            other => sink.push(
                                Category::Structure,
                                ak.pos,
                                &rpath,
                                format!("unknown rule key `{other}`"),
                            ),
                        }
                    }
                    t.rules.push(rule);
                }
            }
            "Resources" => {
                let entries = map_entries(sink, v, path);
                for (rk, rv) in entries {
                    if rk.name.starts_with("Fn::ForEach::") {
                        // Left for the LanguageExtensions expansion; validation reports it
                        // if the transform is not declared.
                        continue;
                    }
                    if let Some(r) = resource(sink, &rk.name, rk.pos, rv) {
                        t.resource_index.insert(r.name.clone(), t.resources.len());
                        t.resources.push(r);
                    }
                }
                if t.resources.len() > quota::RESOURCES {
                    sink.push(
                        Category::Quota,
                        v.pos,
                        path,
                        format!(
                            "{} resources exceed the quota of {}",
                            t.resources.len(),
                            quota::RESOURCES
                        ),
                    );
                }
            }
            "Outputs" => {
                for (ok, ov) in map_entries(sink, v, path) {
                    if ok.name.starts_with("Fn::ForEach::") {
                        continue;
                    }
                    let opath = join(path, &ok.name);
                    check_name(sink, &ok.name, ok.pos, &opath);
                    let mut out = Output {
                        name: ok.name.clone(),
                        pos: ok.pos,
                        value: None,
                        description: None,
                        export_name: None,
                        condition: None,
                    };
                    for (xk, xv) in map_entries(sink, ov, &opath) {
                        match xk.name.as_str() {
                            "Value" => out.value = Some(xv.clone()),
                            "Description" => out.description = Some(xv.clone()),
                            "Export" => match xv.get("Name") {
                                Some(n) => out.export_name = Some(n.clone()),
                                None => sink.push(
                                    Category::Structure,
                                    xv.pos,
                                    &join(&opath, "Export"),
                                    "Export needs `Name`",
                                ),
                            },
                            "Condition" => {
                                out.condition = string_of(sink, xv, &join(&opath, "Condition"))
                                    .map(|s| (s, xv.pos))
                            }
                            other => sink.push(
                                Category::Structure,
                                xk.pos,
                                &opath,
                                format!("unknown output key `{other}`"),
                            ),
                        }
                    }
                    if out.value.is_none() {
                        sink.push(
                            Category::Structure,
                            ov.pos,
                            &opath,
                            "an output needs `Value`",
                        );
                    }
                    t.outputs.push(out);
                }
                if t.outputs.len() > quota::OUTPUTS {
                    sink.push(
                        Category::Quota,
                        v.pos,
                        path,
                        format!(
                            "{} outputs exceed the quota of {}",
                            t.outputs.len(),
                            quota::OUTPUTS
                        ),
                    );
                }
            }
            other => sink.push(
                Category::Structure,
                k.pos,
                "",
                format!("unknown top-level section `{other}`"),
            ),
        }
    }
    // Parameters and resources share one namespace (`Ref` could not tell them apart).
    for r in &t.resources {
        if t.param_index.contains_key(&r.name) {
            sink.push(
                Category::Structure,
                r.pos,
                &join("Resources", &r.name),
                format!(
                    "`{}` is declared both as a parameter and as a resource",
                    r.name
                ),
            );
        }
    }
    if top.iter().all(|(k, _)| k.name != "Resources") {
        sink.push(
            Category::Structure,
            root.pos,
            "",
            "a template needs a `Resources` section",
        );
    }
    t.root = root;
    t
}

/// Reports every transform other than `AWS::LanguageExtensions`: SAM and the other AWS
/// transforms as unsupported, anything else as a macro.
fn check_transforms(sink: &mut Sink, transforms: &[(String, Pos)]) {
    for (name, pos) in transforms {
        match name.as_str() {
            LANGUAGE_EXTENSIONS => {}
            "AWS::Serverless-2016-10-31" => sink.push(
                Category::UnsupportedTransform,
                *pos,
                "Transform",
                "the SAM transform (AWS::Serverless-2016-10-31) is not supported; deploy the transformed template instead",
            ),
            n if n.starts_with("AWS::") => sink.push(
                Category::UnsupportedTransform,
                *pos,
                "Transform",
                format!("the transform `{n}` is not supported"),
            ),
            n => sink.push(
                Category::Macro,
                *pos,
                "Transform",
                format!("the macro `{n}` is not supported (macros run account code)"),
            ),
        }
    }
}

fn transforms(sink: &mut Sink, v: &Node) -> Vec<(String, Pos)> {
    let one = |sink: &mut Sink, n: &Node| -> Option<(String, Pos)> {
        match &n.kind {
            NodeKind::String(s) => Some((s.clone(), n.pos)),
            // `Transform: {Name: AWS::Include, Parameters: ...}` is a macro call with arguments.
            NodeKind::Map(_) => n
                .get("Name")
                .and_then(|x| x.scalar_text())
                .map(|s| (s, n.pos)),
            _ => {
                sink.push(
                    Category::Structure,
                    n.pos,
                    "Transform",
                    "a transform must be a name or a list of names",
                );
                None
            }
        }
    };
    match &v.kind {
        NodeKind::List(l) => l.iter().filter_map(|n| one(sink, n)).collect(),
        _ => one(sink, v).into_iter().collect(),
    }
}

/// Names are limited to 255 characters.
fn check_name(sink: &mut Sink, name: &str, pos: Pos, path: &str) {
    let n = name.chars().count();
    if n > quota::NAME_LEN {
        sink.push(
            Category::Quota,
            pos,
            path,
            format!(
                "the name is {n} characters, over the quota of {}",
                quota::NAME_LEN
            ),
        );
    }
}

fn resource(sink: &mut Sink, name: &str, pos: Pos, v: &Node) -> Option<Resource> {
    let path = join("Resources", name);
    check_name(sink, name, pos, &path);
    if !name.chars().all(|c| c.is_ascii_alphanumeric()) || name.is_empty() {
        sink.push(
            Category::Structure,
            pos,
            &path,
            "logical ids must be alphanumeric (A-Za-z0-9)",
        );
    }
    let entries = map_entries(sink, v, &path);
    let mut r = Resource {
        name: name.to_string(),
        pos,
        type_name: String::new(),
        type_pos: v.pos,
        properties: None,
        depends_on: Vec::new(),
        condition: None,
        deletion_policy: None,
        update_replace_policy: None,
        creation_policy: None,
        update_policy: None,
        metadata: None,
    };
    let mut has_type = false;
    for (k, x) in entries {
        let kpath = join(&path, &k.name);
        match k.name.as_str() {
            "Type" => {
                if let Some(s) = string_of(sink, x, &kpath) {
                    r.type_name = s;
                    r.type_pos = x.pos;
                    has_type = true;
                }
            }
            "Properties" => {
                if !matches!(
                    x.kind,
                    NodeKind::Map(_) | NodeKind::Intrinsic(_) | NodeKind::Null
                ) {
                    sink.push(
                        Category::Structure,
                        x.pos,
                        &kpath,
                        format!("Properties must be a mapping, found a {}", x.kind_name()),
                    );
                }
                r.properties = Some(x.clone());
            }
            "DependsOn" => match &x.kind {
                NodeKind::String(s) => r.depends_on.push((s.clone(), x.pos)),
                NodeKind::List(l) => {
                    for d in l {
                        if let Some(s) = string_of(sink, d, &kpath) {
                            r.depends_on.push((s, d.pos));
                        }
                    }
                }
                _ => sink.push(
                    Category::Structure,
                    x.pos,
                    &kpath,
                    "DependsOn must be a logical id or a list of them",
                ),
            },
            "Condition" => r.condition = string_of(sink, x, &kpath).map(|s| (s, x.pos)),
            "DeletionPolicy" => r.deletion_policy = Some(x.clone()),
            "UpdateReplacePolicy" => r.update_replace_policy = Some(x.clone()),
            "CreationPolicy" => r.creation_policy = Some(x.clone()),
            "UpdatePolicy" => r.update_policy = Some(x.clone()),
            "Metadata" => r.metadata = Some(x.clone()),
            "Version" => {}
            "Overrides" => sink.push(
                Category::Rain,
                k.pos,
                &path,
                "`Overrides` belongs to a Rain module; package the template with `rain pkg` first",
            ),
            other => sink.push(
                Category::Structure,
                k.pos,
                &path,
                format!(
                    "unknown resource attribute `{other}` (expected one of {})",
                    RESOURCE_ATTRS.join(", ")
                ),
            ),
        }
    }
    if !has_type && entries.is_empty() && v.as_map().is_none() {
        return None;
    }
    if !has_type {
        sink.push(Category::Structure, v.pos, &path, "a resource needs `Type`");
    }
    Some(r)
}
