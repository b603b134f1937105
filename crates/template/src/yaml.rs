//! The YAML reader: saphyr's event parser, folded into [`Node`]s with positions.
//!
//! Working on events (not a loaded document) keeps the tags, the spans, and lets us reject
//! what CloudFormation rejects: aliases, merge keys (`<<`), duplicate keys, several documents,
//! and the YAML tags CloudFormation does not support.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, StrInput, Tag};

use crate::ast::{intrinsic, long_form, Func, Key, Node, NodeKind};
use crate::diag::{Category, Pos, Sink};

/// Nesting deeper than this is rejected instead of risking the stack.
pub(crate) const MAX_DEPTH: usize = 256;

struct Reader<'a> {
    src: &'a str,
    parser: Parser<'a, StrInput<'a>>,
    sink: &'a mut Sink,
    /// Stop at the first scanner error: the event stream cannot be trusted after it.
    fatal: bool,
}

fn pos_of(span: &Span) -> Pos {
    Pos::new(span.start.line() as u32, span.start.col() as u32 + 1)
}

/// Reads one YAML document into a node. Every problem goes to `sink`; `None` when the text
/// could not be read at all.
pub(crate) fn read(src: &str, sink: &mut Sink) -> Option<Node> {
    let mut r = Reader {
        src,
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
                        "a template must be a single YAML document",
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
            "the template is empty",
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
                let mut msg = format!("YAML: {}", e.info());
                if self.src.chars().nth(m.index()) == Some('!') {
                    msg.push_str(
                        " (a node can carry only one tag: write `Fn::Base64: !Sub ...`, not `!Base64 !Sub ...`)",
                    );
                }
                self.sink.push(
                    Category::Syntax,
                    Pos::new(m.line() as u32, m.col() as u32 + 1),
                    "",
                    msg,
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

    /// Builds the node that starts with `ev`. Returns `None` only on a fatal error.
    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Option<Node> {
        let pos = pos_of(&span);
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
        match ev {
            Event::Alias(_) => {
                self.sink.push(
                    Category::Syntax,
                    pos,
                    "",
                    "YAML aliases are not supported by CloudFormation",
                );
                Some(Node::new(pos, NodeKind::Null))
            }
            Event::Scalar(value, style, _anchor, tag) => {
                let plain = style == ScalarStyle::Plain;
                match tag {
                    None => Some(Node::new(pos, scalar_kind(value.into_owned(), plain))),
                    Some(tag) => {
                        let arg = Node::new(pos, NodeKind::String(value.into_owned()));
                        Some(self.tagged(&tag, pos, arg))
                    }
                }
            }
            Event::SequenceStart(_anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, span, depth + 1)?);
                }
                let node = Node::new(pos, NodeKind::List(items));
                Some(match tag {
                    None => node,
                    Some(tag) => self.tagged(&tag, pos, node),
                })
            }
            Event::MappingStart(_anchor, tag) => {
                let mut entries: Vec<(Key, Node)> = Vec::new();
                // Maps with many keys (Resources) use a hash set; small ones a scan.
                let mut seen: HashMap<String, Pos> = HashMap::new();
                loop {
                    let (kev, kspan) = self.next()?;
                    if matches!(kev, Event::MappingEnd) {
                        break;
                    }
                    let kpos = pos_of(&kspan);
                    let key = match kev {
                        Event::Scalar(v, _, _, ktag) => {
                            if let Some(t) = ktag {
                                if !is_core(&t, "str") && !is_non_specific(&t) {
                                    self.sink.push(
                                        Category::Syntax,
                                        kpos,
                                        "",
                                        format!("a mapping key cannot carry the tag {t}"),
                                    );
                                }
                            }
                            Some(v.into_owned())
                        }
                        other => {
                            self.sink.push(
                                Category::Syntax,
                                kpos,
                                "",
                                "mapping keys must be plain strings",
                            );
                            // Consume the complex key so the stream stays in step.
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
                            "YAML merge keys (<<) are not supported by CloudFormation",
                        );
                        continue;
                    }
                    if let Some(first) = seen.get(&name) {
                        self.sink.push(
                            Category::Structure,
                            kpos,
                            "",
                            format!("duplicate key `{name}` (first at {first})"),
                        );
                        continue;
                    }
                    seen.insert(name.clone(), kpos);
                    entries.push((Key { name, pos: kpos }, value));
                }
                let node = long_form(pos, entries);
                Some(match tag {
                    None => node,
                    Some(tag) => self.tagged(&tag, pos, node),
                })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.sink
                    .push(Category::Syntax, pos, "", "unexpected end of collection");
                self.fatal = true;
                None
            }
            _ => {
                self.sink
                    .push(Category::Syntax, pos, "", "unexpected YAML event");
                self.fatal = true;
                None
            }
        }
    }

    /// Applies a tag to a node: `!Fn` tags become intrinsics, a few core tags are honoured.
    fn tagged(&mut self, tag: &Tag, pos: Pos, node: Node) -> Node {
        if is_non_specific(tag) {
            // YAML 1.2: the non-specific tag `!` makes a node a plain string, sequence or
            // mapping by its kind, without resolving a scalar to a number or boolean (the
            // readers build scalars handed to `tagged` as strings already).
            return node;
        }
        if tag.handle == "!" || (tag.handle.is_empty() && tag.suffix.starts_with('!')) {
            let name = tag.suffix.trim_start_matches('!');
            if let Some(func) = Func::from_tag(name) {
                return intrinsic(pos, func, node);
            }
            if name.starts_with("Rain::") {
                self.sink.push(
                    Category::Rain,
                    pos,
                    "",
                    format!(
                        "!{name} is a Rain directive; package the template with `rain pkg` first"
                    ),
                );
                return node;
            }
            self.sink
                .push(Category::Syntax, pos, "", format!("unknown tag !{name}"));
            return node;
        }
        if tag.is_yaml_core_schema() {
            match (tag.suffix.as_str(), node.kind) {
                ("str", NodeKind::String(s)) => return Node::new(pos, NodeKind::String(s)),
                ("int" | "float", NodeKind::String(s)) => {
                    return Node::new(pos, NodeKind::Number(s))
                }
                ("bool" | "null", NodeKind::String(s)) => {
                    return Node::new(pos, scalar_kind(s, true))
                }
                ("seq", k @ NodeKind::List(_)) | ("map", k @ NodeKind::Map(_)) => {
                    return Node::new(pos, k)
                }
                (_, kind) => {
                    self.sink.push(
                        Category::Syntax,
                        pos,
                        "",
                        format!(
                            "the YAML tag !!{} is not supported by CloudFormation",
                            tag.suffix
                        ),
                    );
                    return Node::new(pos, kind);
                }
            }
        }
        self.sink
            .push(Category::Syntax, pos, "", format!("unknown tag {tag}"));
        node
    }
}

/// The non-specific tag `!` (the scanner reports it as handle "" and suffix "!").
fn is_non_specific(tag: &Tag) -> bool {
    (tag.handle.is_empty() && tag.suffix == "!") || (tag.handle == "!" && tag.suffix.is_empty())
}

fn is_core(tag: &Tag, suffix: &str) -> bool {
    tag.is_yaml_core_schema() && tag.suffix == suffix
}

/// Resolves an untagged scalar. Quoted scalars are strings; plain ones may be null, a
/// boolean or a number. CloudFormation reads YAML 1.1 booleans: unquoted `yes`, `No`,
/// `ON`, `off` are booleans (and reach resources as "true"/"false"), which templates and
/// users trip over but which we must reproduce.
pub(crate) fn scalar_kind(s: String, plain: bool) -> NodeKind {
    if !plain {
        return NodeKind::String(s);
    }
    match s.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => NodeKind::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
            NodeKind::Bool(true)
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            NodeKind::Bool(false)
        }
        _ if looks_numeric(&s) => NodeKind::Number(s),
        _ => NodeKind::String(s),
    }
}

fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    if body.is_empty() {
        return false;
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit());
    }
    if matches!(body, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let mut digits = 0;
    let mut seen_dot = false;
    let mut seen_exp = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '0'..='9' => digits += 1,
            '.' if !seen_dot && !seen_exp => seen_dot = true,
            'e' | 'E' if digits > 0 && !seen_exp => {
                seen_exp = true;
                if matches!(chars.peek(), Some('+' | '-')) {
                    chars.next();
                }
                if chars.peek().is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    digits > 0
}
