//! The one syntax tree both readers (YAML and JSON) produce.
//!
//! Invariant: every node carries the position of its first character, and short-form tags
//! (`!Ref X`) and long forms (`{"Ref": "X"}`) produce the same [`NodeKind::Intrinsic`] node, so
//! nothing after the readers knows which syntax a template used. `!GetAtt A.B` and
//! `Fn::GetAtt: "A.B"` are normalised to the list form `[A, B]`.

use crate::diag::Pos;

/// A node of the template tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

/// A mapping key with its own position (used for duplicate-key and path diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    /// A number, kept as written (CloudFormation passes numbers on as text).
    Number(String),
    String(String),
    List(Vec<Node>),
    /// Keys in source order; readers guarantee keys are unique.
    Map(Vec<(Key, Node)>),
    Intrinsic(Box<Intrinsic>),
}

/// An intrinsic function call: the function and its single argument node (a list for
/// functions that take several arguments, exactly as written).
#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsic {
    pub func: Func,
    pub arg: Node,
}

/// Every intrinsic function the readers recognise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Func {
    Ref,
    GetAtt,
    Sub,
    Join,
    Select,
    Split,
    If,
    Equals,
    And,
    Or,
    Not,
    FindInMap,
    GetAZs,
    ImportValue,
    Base64,
    Cidr,
    /// `{"Condition": "Name"}` / `!Condition Name`: a reference to a named condition.
    Condition,
    /// `Fn::Transform` (a macro call inside the template).
    Transform,
    /// `Fn::Length` (AWS::LanguageExtensions).
    Length,
    /// `Fn::ToJsonString` (AWS::LanguageExtensions).
    ToJsonString,
    /// Rule-only functions.
    Contains,
    EachMemberEquals,
    EachMemberIn,
    RefAll,
    ValueOf,
    ValueOfAll,
    /// An `Fn::Something` we do not know; validation reports it.
    Unknown(String),
}

impl Func {
    /// The long-form name (`Ref`, `Fn::Sub`, `Condition`).
    pub fn name(&self) -> String {
        match self {
            Func::Ref => "Ref".into(),
            Func::Condition => "Condition".into(),
            Func::Unknown(n) => n.clone(),
            other => format!("Fn::{}", other.short()),
        }
    }

    fn short(&self) -> &str {
        match self {
            Func::Ref => "Ref",
            Func::GetAtt => "GetAtt",
            Func::Sub => "Sub",
            Func::Join => "Join",
            Func::Select => "Select",
            Func::Split => "Split",
            Func::If => "If",
            Func::Equals => "Equals",
            Func::And => "And",
            Func::Or => "Or",
            Func::Not => "Not",
            Func::FindInMap => "FindInMap",
            Func::GetAZs => "GetAZs",
            Func::ImportValue => "ImportValue",
            Func::Base64 => "Base64",
            Func::Cidr => "Cidr",
            Func::Condition => "Condition",
            Func::Transform => "Transform",
            Func::Length => "Length",
            Func::ToJsonString => "ToJsonString",
            Func::Contains => "Contains",
            Func::EachMemberEquals => "EachMemberEquals",
            Func::EachMemberIn => "EachMemberIn",
            Func::RefAll => "RefAll",
            Func::ValueOf => "ValueOf",
            Func::ValueOfAll => "ValueOfAll",
            Func::Unknown(n) => n,
        }
    }

    /// The function a short-form YAML tag (`!Sub`, without the `!`) names.
    pub fn from_tag(tag: &str) -> Option<Func> {
        Some(match tag {
            "Ref" => Func::Ref,
            "Condition" => Func::Condition,
            _ => return Self::from_fn_suffix(tag),
        })
    }

    fn from_fn_suffix(s: &str) -> Option<Func> {
        Some(match s {
            "GetAtt" => Func::GetAtt,
            "Sub" => Func::Sub,
            "Join" => Func::Join,
            "Select" => Func::Select,
            "Split" => Func::Split,
            "If" => Func::If,
            "Equals" => Func::Equals,
            "And" => Func::And,
            "Or" => Func::Or,
            "Not" => Func::Not,
            "FindInMap" => Func::FindInMap,
            "GetAZs" => Func::GetAZs,
            "ImportValue" => Func::ImportValue,
            "Base64" => Func::Base64,
            "Cidr" => Func::Cidr,
            "Transform" => Func::Transform,
            "Length" => Func::Length,
            "ToJsonString" => Func::ToJsonString,
            "Contains" => Func::Contains,
            "EachMemberEquals" => Func::EachMemberEquals,
            "EachMemberIn" => Func::EachMemberIn,
            "RefAll" => Func::RefAll,
            "ValueOf" => Func::ValueOf,
            "ValueOfAll" => Func::ValueOfAll,
            _ => return None,
        })
    }

    /// The function a long-form single-key mapping names, if that key is one.
    /// `Fn::ForEach::*` is not a function call (it is a map entry) and returns `None`.
    pub fn from_key(key: &str) -> Option<Func> {
        if key == "Ref" {
            return Some(Func::Ref);
        }
        let rest = key.strip_prefix("Fn::")?;
        if rest.starts_with("ForEach") {
            return None;
        }
        Some(Self::from_fn_suffix(rest).unwrap_or_else(|| Func::Unknown(key.to_string())))
    }
}

impl Node {
    pub fn new(pos: Pos, kind: NodeKind) -> Self {
        Node { pos, kind }
    }

    pub fn string(pos: Pos, s: impl Into<String>) -> Self {
        Node::new(pos, NodeKind::String(s.into()))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The text of a scalar (string, number or boolean), as CloudFormation would see it.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            NodeKind::String(s) | NodeKind::Number(s) => Some(s.clone()),
            NodeKind::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_intrinsic(&self) -> Option<&Intrinsic> {
        match &self.kind {
            NodeKind::Intrinsic(i) => Some(i),
            _ => None,
        }
    }

    /// Looks a key up in a mapping node (linear: template maps are small, and the large
    /// sections are indexed once by [`crate::Template`]).
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "boolean",
            NodeKind::Number(_) => "number",
            NodeKind::String(_) => "string",
            NodeKind::List(_) => "list",
            NodeKind::Map(_) => "mapping",
            NodeKind::Intrinsic(_) => "intrinsic function",
        }
    }

    /// Visits this node and every node below it, depth first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Node)) {
        f(self);
        match &self.kind {
            NodeKind::List(l) => l.iter().for_each(|n| n.walk(f)),
            NodeKind::Map(m) => m.iter().for_each(|(_, n)| n.walk(f)),
            NodeKind::Intrinsic(i) => i.arg.walk(f),
            _ => {}
        }
    }
}

/// Turns a `{single-key: value}` long-form mapping into an intrinsic node where the key names
/// a function, and normalises `GetAtt` to its list form. Readers call this on every mapping.
pub(crate) fn long_form(pos: Pos, entries: Vec<(Key, Node)>) -> Node {
    if entries.len() == 1 {
        let func = if entries[0].0.name == "Condition" {
            // `Condition` is only a function when it names a condition by string; anywhere
            // else (an IAM policy's `Condition` block) it stays an ordinary key.
            entries[0].1.as_str().map(|_| Func::Condition)
        } else {
            Func::from_key(&entries[0].0.name)
        };
        if let Some(func) = func {
            let (_, arg) = entries.into_iter().next().expect("one entry");
            return intrinsic(pos, func, arg);
        }
    }
    Node::new(pos, NodeKind::Map(entries))
}

/// Builds an intrinsic node, normalising the dotted `GetAtt` string form.
pub(crate) fn intrinsic(pos: Pos, func: Func, arg: Node) -> Node {
    let arg = match (&func, &arg.kind) {
        (Func::GetAtt, NodeKind::String(s)) => match s.split_once('.') {
            Some((res, attr)) => Node::new(
                arg.pos,
                NodeKind::List(vec![
                    Node::string(arg.pos, res),
                    Node::string(
                        Pos::new(arg.pos.line, arg.pos.col + res.len() as u32 + 1),
                        attr,
                    ),
                ]),
            ),
            None => arg,
        },
        _ => arg,
    };
    Node::new(pos, NodeKind::Intrinsic(Box::new(Intrinsic { func, arg })))
}

impl Node {
    /// A compact one-line rendering for tests and debugging: `{Key: value}` maps, `[a, b]`
    /// lists, `!Func(arg)` intrinsics, strings quoted; with `@line:col` after every node
    /// when `positions` is set.
    pub fn dump(&self, positions: bool) -> String {
        let mut s = String::new();
        self.dump_into(&mut s, positions);
        s
    }

    fn dump_into(&self, s: &mut String, positions: bool) {
        match &self.kind {
            NodeKind::Null => s.push_str("null"),
            NodeKind::Bool(b) => s.push_str(if *b { "true" } else { "false" }),
            NodeKind::Number(n) => s.push_str(n),
            NodeKind::String(x) => {
                s.push('"');
                s.push_str(
                    &x.replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n"),
                );
                s.push('"');
            }
            NodeKind::List(l) => {
                s.push('[');
                for (i, n) in l.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    n.dump_into(s, positions);
                }
                s.push(']');
            }
            NodeKind::Map(m) => {
                s.push('{');
                for (i, (k, n)) in m.iter().enumerate() {
                    if i > 0 {
                        s.push_str(", ");
                    }
                    s.push_str(&k.name);
                    s.push_str(": ");
                    n.dump_into(s, positions);
                }
                s.push('}');
            }
            NodeKind::Intrinsic(i) => {
                s.push('!');
                s.push_str(&i.func.name());
                s.push('(');
                i.arg.dump_into(s, positions);
                s.push(')');
            }
        }
        if positions {
            s.push_str(&format!("@{}", self.pos));
        }
    }
}

impl Node {
    /// The tree as JSON text in long form (`{"Ref": ...}`, `{"Fn::Sub": ...}`): what the
    /// template would look like written in JSON. Reading it back gives the same tree.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            NodeKind::Null => J::Null,
            NodeKind::Bool(b) => J::Bool(*b),
            NodeKind::Number(n) => n
                .parse::<serde_json::Number>()
                .map(J::Number)
                .unwrap_or_else(|_| J::String(n.clone())),
            NodeKind::String(s) => J::String(s.clone()),
            NodeKind::List(l) => J::Array(l.iter().map(Node::to_json).collect()),
            NodeKind::Map(m) => {
                let mut o = serde_json::Map::new();
                for (k, v) in m {
                    o.insert(k.name.clone(), v.to_json());
                }
                J::Object(o)
            }
            NodeKind::Intrinsic(i) => {
                let mut o = serde_json::Map::new();
                o.insert(i.func.name(), i.arg.to_json());
                J::Object(o)
            }
        }
    }
}
