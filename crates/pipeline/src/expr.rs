//! `${{ }}` expressions: splitting a string into literal and expression parts, and parsing
//! an expression into an [`Expr`] tree. Offsets are character offsets inside the string the
//! expression came from; [`crate::workflow`] turns them into file positions.

use std::fmt;

/// The contexts a workflow may name.
pub const CONTEXTS: &[&str] = &[
    "github", "env", "vars", "secrets", "inputs", "matrix", "needs", "steps", "job", "runner",
];

/// Every function with its minimum and maximum argument count (`usize::MAX`: no maximum).
pub const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("success", 0, 0),
    ("failure", 0, 0),
    ("always", 0, 0),
    ("cancelled", 0, 0),
    ("contains", 2, 2),
    ("startsWith", 2, 2),
    ("endsWith", 2, 2),
    ("format", 1, usize::MAX),
    ("join", 1, 2),
    ("toJSON", 1, 1),
    ("fromJSON", 1, 1),
    ("hashFiles", 1, usize::MAX),
];

/// A problem in an expression, at a character offset of the string it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub offset: usize,
    pub message: String,
}

fn err<T>(offset: usize, message: impl Into<String>) -> Result<T, ExprError> {
    Err(ExprError {
        offset,
        message: message.into(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    /// A context name (`github`), with its offset.
    Context(String, usize),
    /// `a.b`
    Prop(Box<Expr>, String),
    /// `a[expr]`
    Index(Box<Expr>, Box<Expr>),
    /// `a.*`: the object filter.
    Star(Box<Expr>),
    /// A function call with the function name's offset.
    Call(String, Vec<Expr>, usize),
    Not(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

/// One piece of a string value: literal text or an expression with the offset of its text.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    Expr { text: String, offset: usize },
}

/// Splits `s` at `${{ … }}`. A `}}` inside a quoted string literal does not close.
pub fn split(s: &str) -> Result<Vec<Part>, ExprError> {
    let chars: Vec<char> = s.chars().collect();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' && chars.get(i + 1) == Some(&'{') && chars.get(i + 2) == Some(&'{') {
            let open = i;
            let body = i + 3;
            let mut j = body;
            let mut quoted = false;
            let close = loop {
                match chars.get(j) {
                    None => return err(open, "`${{` is not closed by `}}`"),
                    Some('\'') => quoted = !quoted,
                    Some('}') if !quoted && chars.get(j + 1) == Some(&'}') => break j,
                    _ => {}
                }
                j += 1;
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(Part::Expr {
                text: chars[body..close].iter().collect(),
                offset: body,
            });
            i = close + 2;
        } else {
            lit.push(chars[i]);
            i += 1;
        }
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Punct(&'static str),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Num(n) => write!(f, "{n}"),
            Tok::Str(s) => write!(f, "'{s}'"),
            Tok::Ident(s) => write!(f, "{s}"),
            Tok::Punct(p) => write!(f, "{p}"),
        }
    }
}

const PUNCTS: &[&str] = &[
    "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ".", ",", "*",
];

fn lex(s: &str, base: usize) -> Result<Vec<(Tok, usize)>, ExprError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let at = base + i;
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return err(at, "string literal is not closed by `'`"),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        v.push(ch);
                        i += 1;
                    }
                }
            }
            out.push((Tok::Str(v), at));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let mut j = i + 1;
            while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '.') {
                if matches!(chars[j], 'e' | 'E') && matches!(chars.get(j + 1), Some('+' | '-')) {
                    j += 1;
                }
                j += 1;
            }
            let text: String = chars[i..j].iter().collect();
            let n = parse_number(&text).ok_or_else(|| ExprError {
                offset: at,
                message: format!("`{text}` is not a number"),
            })?;
            out.push((Tok::Num(n), at));
            i = j;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut j = i + 1;
            while j < chars.len()
                && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '_' | '-'))
            {
                j += 1;
            }
            out.push((Tok::Ident(chars[i..j].iter().collect()), at));
            i = j;
        } else {
            let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
            match PUNCTS.iter().find(|p| rest.starts_with(**p)) {
                Some(p) => {
                    out.push((Tok::Punct(p), at));
                    i += p.len();
                }
                None => return err(at, format!("unexpected character `{c}`")),
            }
        }
    }
    Ok(out)
}

/// Reads a number literal as GitHub does: decimal, exponent, `0x` hex or `0o` octal.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let (neg, body) = match text.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, text),
    };
    let v = if let Some(h) = body.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()? as f64
    } else if let Some(o) = body.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()? as f64
    } else {
        if !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Parentheses and `!` nested deeper than this are refused instead of risking the stack.
const MAX_DEPTH: usize = 64;

/// The most tokens one expression may have.
const MAX_TOKENS: usize = 2048;

struct P {
    toks: Vec<(Tok, usize)>,
    i: usize,
    end: usize,
    depth: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.0)
    }
    fn at(&self) -> usize {
        self.toks.get(self.i).map(|t| t.1).unwrap_or(self.end)
    }
    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(q)) if *q == p) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, p: &str) -> Result<(), ExprError> {
        if self.eat(p) {
            return Ok(());
        }
        match self.peek() {
            Some(t) => err(self.at(), format!("expected `{p}`, found `{t}`")),
            None => err(self.end, format!("expected `{p}` before the end")),
        }
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.and()?;
        while self.eat("||") {
            l = Expr::Binary(BinOp::Or, Box::new(l), Box::new(self.and()?));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.eq()?;
        while self.eat("&&") {
            l = Expr::Binary(BinOp::And, Box::new(l), Box::new(self.eq()?));
        }
        Ok(l)
    }
    fn eq(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.cmp()?;
        loop {
            let op = if self.eat("==") {
                BinOp::Eq
            } else if self.eat("!=") {
                BinOp::Ne
            } else {
                return Ok(l);
            };
            l = Expr::Binary(op, Box::new(l), Box::new(self.cmp()?));
        }
    }
    fn cmp(&mut self) -> Result<Expr, ExprError> {
        let mut l = self.unary()?;
        loop {
            let op = if self.eat("<=") {
                BinOp::Le
            } else if self.eat(">=") {
                BinOp::Ge
            } else if self.eat("<") {
                BinOp::Lt
            } else if self.eat(">") {
                BinOp::Gt
            } else {
                return Ok(l);
            };
            l = Expr::Binary(op, Box::new(l), Box::new(self.unary()?));
        }
    }
    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.eat("!") {
            self.deeper()?;
            let e = Expr::Not(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.postfix()
    }
    fn deeper(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(self.at(), format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }
    fn postfix(&mut self) -> Result<Expr, ExprError> {
        let mut e = self.primary()?;
        loop {
            if self.eat(".") {
                if self.eat("*") {
                    e = Expr::Star(Box::new(e));
                    continue;
                }
                match self.peek().cloned() {
                    Some(Tok::Ident(name)) => {
                        self.i += 1;
                        e = Expr::Prop(Box::new(e), name);
                    }
                    Some(t) => {
                        return err(
                            self.at(),
                            format!("expected a property name after `.`, found `{t}`"),
                        )
                    }
                    None => return err(self.end, "expected a property name after `.`"),
                }
            } else if self.eat("[") {
                let idx = if self.eat("*") {
                    None
                } else {
                    self.deeper()?;
                    let i = self.or()?;
                    self.depth -= 1;
                    Some(i)
                };
                self.expect("]")?;
                e = match idx {
                    None => Expr::Star(Box::new(e)),
                    Some(i) => Expr::Index(Box::new(e), Box::new(i)),
                };
            } else {
                return Ok(e);
            }
        }
    }
    fn primary(&mut self) -> Result<Expr, ExprError> {
        let at = self.at();
        let Some(tok) = self.peek().cloned() else {
            return err(self.end, "expected a value before the end");
        };
        self.i += 1;
        match tok {
            Tok::Num(n) => Ok(Expr::Number(n)),
            Tok::Str(s) => Ok(Expr::String(s)),
            Tok::Punct("(") => {
                self.deeper()?;
                let e = self.or()?;
                self.expect(")")?;
                self.depth -= 1;
                Ok(e)
            }
            Tok::Ident(name) => match name.as_str() {
                "null" => Ok(Expr::Null),
                "true" => Ok(Expr::Bool(true)),
                "false" => Ok(Expr::Bool(false)),
                _ if self.eat("(") => {
                    self.deeper()?;
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.or()?);
                            if self.eat(")") {
                                break;
                            }
                            self.expect(",")?;
                        }
                    }
                    self.depth -= 1;
                    Ok(Expr::Call(name, args, at))
                }
                _ => Ok(Expr::Context(name, at)),
            },
            Tok::Punct(p) => err(at, format!("unexpected `{p}`")),
        }
    }
}

/// Parses one expression (the text between `${{` and `}}`, or a whole `if:`). `base` is the
/// offset of `text` in its string, added to every offset in errors and the tree.
pub fn parse(text: &str, base: usize) -> Result<Expr, ExprError> {
    let toks = lex(text, base)?;
    let end = base + text.chars().count();
    // Operator chains nest the tree one level per operator; a cap on tokens bounds the
    // recursion of checking, evaluating and dropping it.
    if toks.len() > MAX_TOKENS {
        return err(
            base,
            format!("the expression has more than {MAX_TOKENS} tokens"),
        );
    }
    if toks.is_empty() {
        return err(base, "the expression is empty");
    }
    let mut p = P {
        toks,
        i: 0,
        end,
        depth: 0,
    };
    let e = p.or()?;
    if let Some(t) = p.peek() {
        return err(p.at(), format!("unexpected `{t}` after the expression"));
    }
    Ok(e)
}

/// Static checks: every context and function exists, every call has a valid argument count.
/// `allowed` limits the contexts usable at this place (GitHub's context availability).
pub fn check(e: &Expr, allowed: &[&str], out: &mut Vec<ExprError>) {
    match e {
        Expr::Null | Expr::Bool(_) | Expr::Number(_) | Expr::String(_) => {}
        Expr::Context(name, at) => {
            if !CONTEXTS.contains(&name.as_str()) {
                out.push(ExprError {
                    offset: *at,
                    message: format!("unknown context `{name}` (known: {})", CONTEXTS.join(", ")),
                });
            } else if !allowed.contains(&name.as_str()) {
                out.push(ExprError {
                    offset: *at,
                    message: format!(
                        "context `{name}` is not available here (available: {})",
                        allowed.join(", ")
                    ),
                });
            }
        }
        Expr::Prop(b, _) | Expr::Star(b) | Expr::Not(b) => check(b, allowed, out),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => {
            check(a, allowed, out);
            check(b, allowed, out);
        }
        Expr::Call(name, args, at) => {
            match FUNCTIONS.iter().find(|f| f.0.eq_ignore_ascii_case(name)) {
                None => out.push(ExprError {
                    offset: *at,
                    message: format!("unknown function `{name}`"),
                }),
                Some((f, min, max)) if args.len() < *min || args.len() > *max => {
                    let want = if min == max {
                        format!("{min}")
                    } else if *max == usize::MAX {
                        format!("at least {min}")
                    } else {
                        format!("{min} to {max}")
                    };
                    out.push(ExprError {
                        offset: *at,
                        message: format!("`{f}` takes {want} argument(s), got {}", args.len()),
                    })
                }
                Some(_) => {}
            }
            for a in args {
                check(a, allowed, out);
            }
        }
    }
}

/// Every `ctx.name` or `ctx['name']` the expression reads, for the contexts whose keys a
/// workflow declares (`needs`, `steps`): (context, name, offset of the context).
pub fn references(e: &Expr, out: &mut Vec<(String, String, usize)>) {
    match e {
        Expr::Prop(b, name) => {
            if let Expr::Context(c, at) = b.as_ref() {
                out.push((c.clone(), name.clone(), *at));
            }
            references(b, out);
        }
        Expr::Index(b, i) => {
            if let (Expr::Context(c, at), Expr::String(name)) = (b.as_ref(), i.as_ref()) {
                out.push((c.clone(), name.clone(), *at));
            }
            references(b, out);
            references(i, out);
        }
        Expr::Star(b) | Expr::Not(b) => references(b, out),
        Expr::Binary(_, a, b) => {
            references(a, out);
            references(b, out);
        }
        Expr::Call(_, args, _) => args.iter().for_each(|a| references(a, out)),
        Expr::Null | Expr::Bool(_) | Expr::Number(_) | Expr::String(_) | Expr::Context(..) => {}
    }
}
