//! Evaluating expressions over the contexts, with GitHub's coercion rules:
//! - truthiness: `null`, `false`, `0`, `-0`, `NaN` and `''` are falsy; everything else
//!   (empty arrays and objects too) is truthy;
//! - `==`/`<`/…: values of different types are both converted to numbers (`null` → 0,
//!   booleans → 1/0, strings parsed with `''` → 0, anything else → NaN); strings compare
//!   ignoring case; arrays and objects are equal only to themselves, which a value tree
//!   without identities can't tell, so they never compare equal;
//! - `&&` and `||` return one of their operands, not a boolean;
//! - property access on anything but an object gives `null`; a missing key gives `null`.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::expr::{split, BinOp, Expr, Part};

/// Failure and cancellation so far, for `success()`, `failure()` and `cancelled()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// A needed job or an earlier step failed.
    pub failed: bool,
    pub cancelled: bool,
}

/// Access to the workspace's files for `hashFiles`, kept behind a trait so evaluation stays
/// pure: the runner passes the real workspace, tests a map.
pub trait Files {
    /// The contents of every file matching any of `patterns`, in path order.
    fn matching(&self, patterns: &[String]) -> Result<Vec<Vec<u8>>, String>;
}

/// No file access: `hashFiles` is an error (offline validation).
pub struct NoFiles;

impl Files for NoFiles {
    fn matching(&self, _: &[String]) -> Result<Vec<Vec<u8>>, String> {
        Err("hashFiles needs a workspace, and none is available here".into())
    }
}

/// The values an expression can see.
pub struct Contexts<'a> {
    /// `github`, `env`, `matrix`, …: each context by name.
    pub values: Map<String, Value>,
    pub status: Status,
    pub files: &'a dyn Files,
}

impl Default for Contexts<'_> {
    fn default() -> Self {
        Contexts {
            values: Map::new(),
            status: Status::default(),
            files: &NoFiles,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("{0}")]
    Parse(#[from] crate::expr::ExprError),
    #[error("`{func}`: {message}")]
    Function { func: String, message: String },
    #[error("unknown function `{0}`")]
    UnknownFunction(String),
}

fn ferr<T>(func: &str, message: impl Into<String>) -> Result<T, EvalError> {
    Err(EvalError::Function {
        func: func.to_string(),
        message: message.into(),
    })
}

/// A value, or the result of an object filter (`a.*`), whose property accesses apply to
/// every element.
enum V {
    Plain(Value),
    Filtered(Vec<Value>),
}

impl V {
    fn value(self) -> Value {
        match self {
            V::Plain(v) => v,
            V::Filtered(v) => Value::Array(v),
        }
    }
}

pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// GitHub's conversion to a number.
pub fn to_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                0.0
            } else {
                crate::expr::parse_number(t).unwrap_or(f64::NAN)
            }
        }
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

/// GitHub's conversion to a string (what `${{ }}` inside a string produces).
pub fn to_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format_number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        Value::Array(_) => "Array".into(),
        Value::Object(_) => "Object".into(),
    }
}

fn format_number(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{f}")
    }
}

/// A JSON number for `f`: an integer when it is one, so `toJSON(1)` prints `1`.
pub fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn kind(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Loose equality.
pub fn loose_eq(a: &Value, b: &Value) -> bool {
    if kind(a) == kind(b) {
        return match (a, b) {
            (Value::String(x), Value::String(y)) => x.to_lowercase() == y.to_lowercase(),
            (Value::Number(_), Value::Number(_)) => to_number(a) == to_number(b),
            (Value::Array(_), _) | (Value::Object(_), _) => false,
            _ => a == b,
        };
    }
    to_number(a) == to_number(b)
}

/// Loose ordering; `None` when the values do not compare (NaN, objects).
fn loose_cmp(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    if let (Value::String(x), Value::String(y)) = (a, b) {
        return Some(x.to_lowercase().cmp(&y.to_lowercase()));
    }
    to_number(a).partial_cmp(&to_number(b))
}

fn get_prop(v: &Value, name: &str) -> Value {
    match v {
        Value::Object(m) => m
            .get(name)
            .or_else(|| {
                // Context keys are case-insensitive.
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn get_index(v: &Value, i: &Value) -> Value {
    match (v, i) {
        (Value::Array(a), _) => {
            let n = to_number(i);
            if n >= 0.0 && n.fract() == 0.0 {
                a.get(n as usize).cloned().unwrap_or(Value::Null)
            } else {
                Value::Null
            }
        }
        (Value::Object(_), Value::String(s)) => get_prop(v, s),
        _ => Value::Null,
    }
}

impl Contexts<'_> {
    /// Evaluates a parsed expression.
    pub fn eval(&self, e: &Expr) -> Result<Value, EvalError> {
        self.ev(e).map(V::value)
    }

    fn ev(&self, e: &Expr) -> Result<V, EvalError> {
        Ok(V::Plain(match e {
            Expr::Null => Value::Null,
            Expr::Bool(b) => Value::Bool(*b),
            Expr::Number(n) => number(*n),
            Expr::String(s) => Value::String(s.clone()),
            Expr::Context(name, _) => self.values.get(name).cloned().unwrap_or(Value::Null),
            Expr::Prop(b, name) => match self.ev(b)? {
                V::Plain(v) => get_prop(&v, name),
                V::Filtered(items) => {
                    return Ok(V::Filtered(
                        items.iter().map(|x| get_prop(x, name)).collect(),
                    ))
                }
            },
            Expr::Index(b, i) => {
                let idx = self.eval(i)?;
                match self.ev(b)? {
                    V::Plain(v) => get_index(&v, &idx),
                    V::Filtered(items) => {
                        return Ok(V::Filtered(
                            items.iter().map(|x| get_index(x, &idx)).collect(),
                        ))
                    }
                }
            }
            Expr::Star(b) => {
                let items = match self.ev(b)? {
                    V::Plain(Value::Array(a)) => a,
                    V::Plain(Value::Object(m)) => m.into_iter().map(|(_, v)| v).collect(),
                    V::Plain(_) => Vec::new(),
                    V::Filtered(items) => items
                        .into_iter()
                        .flat_map(|x| match x {
                            Value::Array(a) => a,
                            Value::Object(m) => m.into_iter().map(|(_, v)| v).collect(),
                            _ => Vec::new(),
                        })
                        .collect(),
                };
                return Ok(V::Filtered(items));
            }
            Expr::Not(b) => Value::Bool(!truthy(&self.eval(b)?)),
            Expr::Binary(op, a, b) => {
                let l = self.eval(a)?;
                match op {
                    BinOp::And if !truthy(&l) => l,
                    BinOp::And => self.eval(b)?,
                    BinOp::Or if truthy(&l) => l,
                    BinOp::Or => self.eval(b)?,
                    _ => {
                        let r = self.eval(b)?;
                        let ord = loose_cmp(&l, &r);
                        Value::Bool(match op {
                            BinOp::Eq => loose_eq(&l, &r),
                            BinOp::Ne => !loose_eq(&l, &r),
                            BinOp::Lt => ord == Some(std::cmp::Ordering::Less),
                            BinOp::Le => ord.is_some_and(|o| o.is_le()),
                            BinOp::Gt => ord == Some(std::cmp::Ordering::Greater),
                            BinOp::Ge => ord.is_some_and(|o| o.is_ge()),
                            BinOp::And | BinOp::Or => unreachable!("handled above"),
                        })
                    }
                }
            }
            Expr::Call(name, args, _) => self.call(name, args)?,
        }))
    }

    fn call(&self, name: &str, args: &[Expr]) -> Result<Value, EvalError> {
        let s = self.status;
        let f = name.to_ascii_lowercase();
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval(a)?);
        }
        let arg = |i: usize| vals.get(i).cloned().unwrap_or(Value::Null);
        let lower = |i: usize| to_string(&arg(i)).to_lowercase();
        Ok(match f.as_str() {
            "success" => Value::Bool(!s.failed && !s.cancelled),
            "failure" => Value::Bool(s.failed),
            "always" => Value::Bool(true),
            "cancelled" => Value::Bool(s.cancelled),
            "contains" => Value::Bool(match arg(0) {
                Value::Array(items) => items.iter().any(|x| loose_eq(x, &arg(1))),
                _ => lower(0).contains(&lower(1)),
            }),
            "startswith" => Value::Bool(lower(0).starts_with(&lower(1))),
            "endswith" => Value::Bool(lower(0).ends_with(&lower(1))),
            "format" => Value::String(format(&to_string(&arg(0)), vals.get(1..).unwrap_or(&[]))?),
            "join" => {
                let sep = if vals.len() > 1 {
                    to_string(&arg(1))
                } else {
                    ",".into()
                };
                Value::String(match arg(0) {
                    Value::Array(items) => {
                        items.iter().map(to_string).collect::<Vec<_>>().join(&sep)
                    }
                    other => to_string(&other),
                })
            }
            "tojson" => Value::String(
                serde_json::to_string_pretty(&arg(0)).unwrap_or_else(|_| "null".into()),
            ),
            "fromjson" => match serde_json::from_str(&to_string(&arg(0))) {
                Ok(v) => v,
                Err(e) => return ferr("fromJSON", format!("not JSON: {e}")),
            },
            "hashfiles" => {
                let patterns: Vec<String> = vals.iter().map(to_string).collect();
                let files = match self.files.matching(&patterns) {
                    Ok(f) => f,
                    Err(e) => return ferr("hashFiles", e),
                };
                if files.is_empty() {
                    Value::String(String::new())
                } else {
                    // GitHub's scheme: the SHA-256 of the files' SHA-256 digests in order.
                    let mut outer = Sha256::new();
                    for content in files {
                        outer.update(Sha256::digest(&content));
                    }
                    Value::String(hex::encode(outer.finalize()))
                }
            }
            _ => return Err(EvalError::UnknownFunction(name.to_string())),
        })
    }

    /// Evaluates a string value with embedded `${{ }}`: a string that is exactly one
    /// expression gives that expression's value, otherwise the parts are joined as strings.
    pub fn interpolate(&self, s: &str) -> Result<Value, EvalError> {
        let parts = split(s)?;
        if let [Part::Expr { text, offset }] = parts.as_slice() {
            if s.trim_start().starts_with("${{") && s.trim_end().ends_with("}}") {
                return self.eval(&crate::expr::parse(text, *offset)?);
            }
        }
        let mut out = String::new();
        for p in parts {
            match p {
                Part::Lit(l) => out.push_str(&l),
                Part::Expr { text, offset } => {
                    out.push_str(&to_string(&self.eval(&crate::expr::parse(&text, offset)?)?))
                }
            }
        }
        Ok(Value::String(out))
    }

    /// Evaluates an `if:` condition: `${{ }}` is optional, and a condition with no status
    /// function is implicitly `success() && (…)`.
    pub fn condition(&self, text: &str) -> Result<bool, EvalError> {
        let e = parse_condition(text)?;
        let v = self.eval(&e)?;
        let explicit = uses_status(&e);
        Ok(truthy(&v) && (explicit || (!self.status.failed && !self.status.cancelled)))
    }
}

/// Parses an `if:` value: a bare expression, or one wrapped in `${{ }}`.
pub fn parse_condition(text: &str) -> Result<Expr, crate::expr::ExprError> {
    let t = text.trim();
    if t.starts_with("${{") && t.ends_with("}}") {
        if let Ok([Part::Expr { text, offset }]) = split(text).as_deref() {
            return crate::expr::parse(text, *offset);
        }
    }
    crate::expr::parse(text, 0)
}

fn uses_status(e: &Expr) -> bool {
    match e {
        Expr::Call(n, args, _) => {
            ["success", "failure", "always", "cancelled"]
                .iter()
                .any(|s| s.eq_ignore_ascii_case(n))
                || args.iter().any(uses_status)
        }
        Expr::Prop(b, _) | Expr::Star(b) | Expr::Not(b) => uses_status(b),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => uses_status(a) || uses_status(b),
        _ => false,
    }
}

/// `format('{0} and {1}', a, b)`; `{{` and `}}` are literal braces.
fn format(fmt: &str, args: &[Value]) -> Result<String, EvalError> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                out.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                out.push('}');
                i += 2;
            }
            '{' => {
                let close = chars[i..].iter().position(|c| *c == '}').map(|p| p + i);
                let Some(close) = close else {
                    return ferr("format", format!("`{{` at {i} is not closed"));
                };
                let idx: String = chars[i + 1..close].iter().collect();
                let Ok(n) = idx.parse::<usize>() else {
                    return ferr("format", format!("`{{{idx}}}` is not an argument index"));
                };
                let Some(v) = args.get(n) else {
                    return ferr(
                        "format",
                        format!("`{{{n}}}` but only {} argument(s) given", args.len()),
                    );
                };
                out.push_str(&to_string(v));
                i = close + 1;
            }
            '}' => return ferr("format", format!("unmatched `}}` at {i}")),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}
