//! The workflow reader: saphyr's event parser folded into [`Node`]s that keep positions.
//!
//! GitHub reads workflows as YAML 1.2 core schema: only `true`/`false` are booleans (so the
//! key `on` stays a string), keys are strings, and a key may appear once. Tags, aliases and
//! merge keys are refused here (rated in docs/pipelines.md) rather than half-supported.
//! The template crate's reader is not reused: it folds CloudFormation's `!Ref` tags into
//! intrinsics and resolves YAML 1.1 booleans, both wrong for workflows.

use saphyr_parser::{Event, Parser, ScalarStyle, Span, StrInput};

use crate::diag::{Category, Pos, Sink};

/// Nesting deeper than this is refused instead of risking the stack.
const MAX_DEPTH: usize = 128;

/// A node of the workflow tree with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    /// Character index of the node's first character in the source (for expression positions).
    pub start: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    List(Vec<Node>),
    /// Keys in source order, unique.
    Map(Vec<(Key, Node)>),
}

/// A mapping key with its own position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }
    /// What the node is, for "expected X, found Y" messages.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number(_) => "a number",
            Kind::String(_) => "a string",
            Kind::List(_) => "a sequence",
            Kind::Map(_) => "a mapping",
        }
    }
    /// The node as JSON (matrix values, `with:` inputs, `toJSON`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.kind {
            Kind::Null => J::Null,
            Kind::Bool(b) => J::Bool(*b),
            Kind::Number(n) => crate::eval::number(*n),
            Kind::String(s) => J::String(s.clone()),
            Kind::List(l) => J::Array(l.iter().map(Node::to_json).collect()),
            Kind::Map(m) => J::Object(
                m.iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos::new(span.start.line() as u32, span.start.col() as u32 + 1)
}

struct Reader<'a> {
    parser: Parser<'a, StrInput<'a>>,
    sink: &'a mut Sink,
    fatal: bool,
}

/// Reads one YAML document. Every problem goes to `sink`; `None` when nothing could be read.
pub(crate) fn read(src: &str, sink: &mut Sink) -> Option<Node> {
    let mut r = Reader {
        parser: Parser::new_from_str(src),
        sink,
        fatal: false,
    };
    let mut root = None;
    let mut docs = 0;
    loop {
        let (ev, span) = r.next()?;
        match ev {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            Event::DocumentStart(_) => {
                docs += 1;
                let (ev, span) = r.next()?;
                if matches!(ev, Event::DocumentEnd) {
                    continue;
                }
                let node = r.node(ev, span, 0)?;
                if docs > 1 {
                    r.sink.push(
                        Category::Syntax,
                        node.pos,
                        "",
                        "a workflow must be a single YAML document",
                    );
                } else {
                    root = Some(node);
                }
            }
            _ => {
                r.sink
                    .push(Category::Syntax, pos_of(&span), "", "unexpected YAML event");
                return None;
            }
        }
    }
    if root.is_none() {
        r.sink.push(
            Category::Syntax,
            Pos::new(1, 1),
            "",
            "the workflow is empty",
        );
    }
    root
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Option<(Event<'a>, Span)> {
        if self.fatal {
            return None;
        }
        match self.parser.next_event() {
            Some(Ok(x)) => Some(x),
            Some(Err(e)) => {
                let m = e.marker();
                self.sink.push(
                    Category::Syntax,
                    Pos::new(m.line() as u32, m.col() as u32 + 1),
                    "",
                    format!("YAML: {}", e.info()),
                );
                self.fatal = true;
                None
            }
            None => {
                self.fatal = true;
                None
            }
        }
    }

    fn refuse_tag(&mut self, pos: Pos, tag: &impl std::fmt::Display) {
        self.sink.push(
            Category::Syntax,
            pos,
            "",
            format!("YAML tags ({tag}) are not supported in workflows"),
        );
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Option<Node> {
        let pos = pos_of(&span);
        let start = span.start.index();
        if depth > MAX_DEPTH {
            self.sink.push(
                Category::Syntax,
                pos,
                "",
                format!("nesting deeper than {MAX_DEPTH} levels"),
            );
            self.fatal = true;
            return None;
        }
        let kind = match ev {
            Event::Alias(_) => {
                self.sink.push(
                    Category::Syntax,
                    pos,
                    "",
                    "YAML aliases are not supported in workflows",
                );
                Kind::Null
            }
            Event::Scalar(value, style, _anchor, tag) => {
                if let Some(t) = tag {
                    self.refuse_tag(pos, &t);
                }
                scalar(value.into_owned(), style == ScalarStyle::Plain)
            }
            Event::SequenceStart(_anchor, tag) => {
                if let Some(t) = tag {
                    self.refuse_tag(pos, &t);
                }
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span, depth + 1)?);
                }
                Kind::List(items)
            }
            Event::MappingStart(_anchor, tag) => {
                if let Some(t) = tag {
                    self.refuse_tag(pos, &t);
                }
                self.mapping(depth)?
            }
            _ => {
                self.sink
                    .push(Category::Syntax, pos, "", "unexpected YAML event");
                self.fatal = true;
                return None;
            }
        };
        Some(Node { pos, start, kind })
    }

    fn mapping(&mut self, depth: usize) -> Option<Kind> {
        let mut entries: Vec<(Key, Node)> = Vec::new();
        loop {
            let (kev, kspan) = self.next()?;
            if matches!(kev, Event::MappingEnd) {
                break;
            }
            let kpos = pos_of(&kspan);
            let key = match kev {
                Event::Scalar(v, _, _, _) => Some(v.into_owned()),
                other => {
                    self.sink
                        .push(Category::Syntax, kpos, "", "mapping keys must be strings");
                    self.node(other, kspan, depth + 1)?;
                    None
                }
            };
            let (vev, vspan) = self.next()?;
            let value = self.node(vev, vspan, depth + 1)?;
            let Some(name) = key else { continue };
            if name == "<<" {
                self.sink.push(
                    Category::Syntax,
                    kpos,
                    "",
                    "YAML merge keys (<<) are not supported in workflows",
                );
                continue;
            }
            if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                self.sink.push(
                    Category::Syntax,
                    kpos,
                    "",
                    format!("duplicate key `{name}` (first at {})", first.pos),
                );
                continue;
            }
            entries.push((Key { name, pos: kpos }, value));
        }
        Some(Kind::Map(entries))
    }
}

/// Resolves a scalar by the YAML 1.2 core schema; quoted scalars are always strings.
fn scalar(s: String, plain: bool) -> Kind {
    if !plain {
        return Kind::String(s);
    }
    match s.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => Kind::Null,
        "true" | "True" | "TRUE" => Kind::Bool(true),
        "false" | "False" | "FALSE" => Kind::Bool(false),
        _ => match number(&s) {
            Some(n) => Kind::Number(n),
            None => Kind::String(s),
        },
    }
}

fn number(s: &str) -> Option<f64> {
    let first = s.chars().next()?;
    if !(first.is_ascii_digit() || matches!(first, '-' | '+' | '.')) {
        return None;
    }
    if let Some(h) = s.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok().map(|n| n as f64);
    }
    if let Some(o) = s.strip_prefix("0o") {
        return i64::from_str_radix(o, 8).ok().map(|n| n as f64);
    }
    // Rust's parser accepts "inf" and "nan" spelled in ways YAML does not; those start with a
    // letter and were turned away above.
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}
