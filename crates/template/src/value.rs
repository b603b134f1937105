//! Evaluated values.

use std::collections::BTreeMap;
use std::fmt;

/// The value of a node after evaluation.
///
/// `Unknown` is the plan-time placeholder for something only known once resources exist
/// (a physical id, an attribute, or anything computed from one); it records which
/// resources and attributes it is waiting for.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// A number as written in the template or parameter.
    Number(String),
    String(String),
    List(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Unknown(Unknown),
    /// `Ref: AWS::NoValue`; containers drop it, a property set to it is removed.
    NoValue,
}

/// What an unknown value waits for: (logical id, attribute), attribute `None` for `Ref`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Unknown {
    pub refs: Vec<(String, Option<String>)>,
}

impl Unknown {
    pub fn reference(resource: &str, attr: Option<&str>) -> Self {
        Unknown {
            refs: vec![(resource.to_string(), attr.map(str::to_string))],
        }
    }

    fn merge(&mut self, other: &Unknown) {
        for r in &other.refs {
            if !self.refs.contains(r) {
                self.refs.push(r.clone());
            }
        }
    }
}

/// The text shown in place of a `NoEcho` value in any rendering.
pub const MASK: &str = "****";

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::String(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The string CloudFormation would use for a scalar (in Join, Sub, Equals, ...).
    pub fn scalar_string(&self) -> Option<String> {
        match self {
            Value::String(s) | Value::Number(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown(_))
    }

    /// True when this value or anything inside it is unknown.
    pub fn contains_unknown(&self) -> bool {
        match self {
            Value::Unknown(_) => true,
            Value::List(l) => l.iter().any(Value::contains_unknown),
            Value::Map(m) => m.values().any(Value::contains_unknown),
            _ => false,
        }
    }

    /// All the unknowns inside this value, merged into one.
    pub fn unknowns(&self) -> Unknown {
        let mut u = Unknown::default();
        self.collect_unknowns(&mut u);
        u
    }

    fn collect_unknowns(&self, into: &mut Unknown) {
        match self {
            Value::Unknown(x) => into.merge(x),
            Value::List(l) => l.iter().for_each(|v| v.collect_unknowns(into)),
            Value::Map(m) => m.values().for_each(|v| v.collect_unknowns(into)),
            _ => {}
        }
    }

    /// Compact JSON text (map keys sorted), as `Fn::ToJsonString` produces.
    pub fn to_json_string(&self) -> String {
        self.to_json().to_string()
    }

    /// Converts to JSON. Unknown values become `"{{unknown:Res.Attr}}"` strings.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Null | Value::NoValue => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Number(n) => n
                .parse::<serde_json::Number>()
                .map(J::Number)
                .unwrap_or_else(|_| J::String(n.clone())),
            Value::String(s) => J::String(s.clone()),
            Value::List(l) => J::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
            Value::Unknown(u) => J::String(format!("{{{{unknown:{}}}}}", u.describe())),
        }
    }

    /// A JSON rendering with the value replaced by [`MASK`] when `masked`.
    pub fn render(&self, masked: bool) -> String {
        if masked {
            MASK.to_string()
        } else {
            self.to_json_string()
        }
    }
}

impl Unknown {
    pub fn describe(&self) -> String {
        self.refs
            .iter()
            .map(|(r, a)| match a {
                Some(a) => format!("{r}.{a}"),
                None => r.clone(),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => f.write_str(s),
            other => f.write_str(&other.to_json_string()),
        }
    }
}

impl Value {
    /// Converts JSON (as stored by an executor) back into a value.
    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => Value::Number(n.to_string()),
            J::String(s) => Value::String(s.clone()),
            J::Array(a) => Value::List(a.iter().map(Value::from_json).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

/// Serialises as plain JSON ([`Value::to_json`]); unknown values become placeholder strings,
/// so only resolved values should be stored.
impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let j = serde_json::Value::deserialize(d)?;
        Ok(Value::from_json(&j))
    }
}
