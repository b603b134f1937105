//! A small positioned JSON reader (RFC 8259), producing the same [`Node`]s as the YAML reader.
//!
//! A hand-written parser keeps line:column on every value and reports duplicate keys, which
//! general JSON libraries silently merge.

use std::collections::HashMap;

use crate::ast::{long_form, Key, Node, NodeKind};
use crate::diag::{Category, Pos, Sink};
use crate::yaml::MAX_DEPTH;

struct Reader<'a, 's> {
    src: &'a [u8],
    text: &'a str,
    i: usize,
    line: u32,
    /// Byte offset where the current line starts, for column computation.
    line_start: usize,
    /// The last computed (offset, column), so positions on one long line stay linear.
    col_cache: std::cell::Cell<(usize, u32)>,
    sink: &'s mut Sink,
}

struct Fatal;

/// Reads one JSON value; `None` when the text is not valid JSON (the reason is in `sink`).
pub(crate) fn read(src: &str, sink: &mut Sink) -> Option<Node> {
    let mut r = Reader {
        src: src.as_bytes(),
        text: src,
        i: 0,
        line: 1,
        line_start: 0,
        col_cache: std::cell::Cell::new((0, 1)),
        sink,
    };
    // A byte-order mark is tolerated, as CloudFormation does.
    if r.text.starts_with('\u{feff}') {
        r.i = 3;
        r.line_start = 3;
    }
    let node = r.value(0).ok()?;
    r.ws();
    if r.i < r.src.len() {
        let p = r.pos();
        r.sink.push(
            Category::Syntax,
            p,
            "",
            "JSON: unexpected text after the document",
        );
        return None;
    }
    Some(node)
}

impl Reader<'_, '_> {
    fn pos(&self) -> Pos {
        let (at, col) = self.col_cache.get();
        let (from, base) = if at >= self.line_start && at <= self.i {
            (at, col)
        } else {
            (self.line_start, 1)
        };
        let col = base + self.text[from..self.i].chars().count() as u32;
        self.col_cache.set((self.i, col));
        Pos::new(self.line, col)
    }

    fn fail<T>(&mut self, msg: impl Into<String>) -> Result<T, Fatal> {
        let p = self.pos();
        self.sink
            .push(Category::Syntax, p, "", format!("JSON: {}", msg.into()));
        Err(Fatal)
    }

    fn ws(&mut self) {
        while let Some(&c) = self.src.get(self.i) {
            match c {
                b' ' | b'\t' | b'\r' => self.i += 1,
                b'\n' => {
                    self.i += 1;
                    self.line += 1;
                    self.line_start = self.i;
                }
                _ => break,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, Fatal> {
        self.ws();
        if depth > MAX_DEPTH {
            return self.fail(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        let pos = self.pos();
        match self.src.get(self.i) {
            None => self.fail("unexpected end of input"),
            Some(b'{') => {
                self.i += 1;
                let mut entries: Vec<(Key, Node)> = Vec::new();
                let mut seen: HashMap<String, Pos> = HashMap::new();
                self.ws();
                if self.src.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(long_form(pos, entries));
                }
                loop {
                    self.ws();
                    let kpos = self.pos();
                    if self.src.get(self.i) != Some(&b'"') {
                        return self.fail("expected a string key");
                    }
                    let name = self.string()?;
                    self.ws();
                    if self.src.get(self.i) != Some(&b':') {
                        return self.fail("expected `:`");
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    if let Some(first) = seen.get(&name) {
                        self.sink.push(
                            Category::Structure,
                            kpos,
                            "",
                            format!("duplicate key `{name}` (first at {first})"),
                        );
                    } else {
                        seen.insert(name.clone(), kpos);
                        entries.push((Key { name, pos: kpos }, v));
                    }
                    self.ws();
                    match self.src.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(long_form(pos, entries));
                        }
                        _ => return self.fail("expected `,` or `}`"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.src.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Node::new(pos, NodeKind::List(items)));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.src.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Node::new(pos, NodeKind::List(items)));
                        }
                        _ => return self.fail("expected `,` or `]`"),
                    }
                }
            }
            Some(b'"') => Ok(Node::new(pos, NodeKind::String(self.string()?))),
            Some(b't') => self.word("true", pos, NodeKind::Bool(true)),
            Some(b'f') => self.word("false", pos, NodeKind::Bool(false)),
            Some(b'n') => self.word("null", pos, NodeKind::Null),
            Some(b'-' | b'0'..=b'9') => self.number(pos),
            Some(_) => self.fail("unexpected character"),
        }
    }

    fn word(&mut self, w: &str, pos: Pos, kind: NodeKind) -> Result<Node, Fatal> {
        if self.src[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(Node::new(pos, kind))
        } else {
            self.fail("unexpected character")
        }
    }

    fn number(&mut self, pos: Pos) -> Result<Node, Fatal> {
        let start = self.i;
        let digits = |r: &mut Self| {
            let s = r.i;
            while matches!(r.src.get(r.i), Some(b'0'..=b'9')) {
                r.i += 1;
            }
            r.i > s
        };
        if self.src.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        if self.src.get(self.i) == Some(&b'0') {
            self.i += 1;
        } else if !digits(self) {
            return self.fail("invalid number");
        }
        if self.src.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return self.fail("invalid number");
            }
        }
        if matches!(self.src.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.src.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return self.fail("invalid number");
            }
        }
        Ok(Node::new(
            pos,
            NodeKind::Number(self.text[start..self.i].to_string()),
        ))
    }

    fn hex4(&mut self) -> Result<u32, Fatal> {
        let Some(h) = self.text.get(self.i..self.i + 4) else {
            return self.fail("truncated \\u escape");
        };
        match u32::from_str_radix(h, 16) {
            Ok(v) if h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                self.i += 4;
                Ok(v)
            }
            _ => self.fail("invalid \\u escape"),
        }
    }

    /// Reads a string starting at the opening quote.
    fn string(&mut self) -> Result<String, Fatal> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(&c) = self.src.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(&self.text[start..self.i]);
            match self.src.get(self.i) {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(&e) = self.src.get(self.i) else {
                        return self.fail("unterminated string");
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) {
                                if !self.src[self.i..].starts_with(b"\\u") {
                                    return self.fail("unpaired surrogate");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.fail("unpaired surrogate");
                                }
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                            }
                            match char::from_u32(cp) {
                                Some(c) => out.push(c),
                                None => return self.fail("invalid \\u escape"),
                            }
                        }
                        _ => {
                            self.i -= 1;
                            return self.fail("invalid escape");
                        }
                    }
                }
                Some(_) => return self.fail("control character in string"),
            }
        }
    }
}
