//! `spindle bake fmt`: the canonical layout of a recipe, like `packer fmt` — two spaces per
//! nesting level, `=` aligned within a run of one-line attributes, at most one blank line in a
//! row, no trailing spaces. Comments and heredocs are kept as written. The result is checked
//! to parse to the same structure, so formatting never changes what a recipe means.

use crate::recipe::{Diag, Diags, Pos};

/// Scans one line outside heredocs: the net bracket depth change, how many closers lead the
/// line, and the heredoc terminator it opens, if any.
fn scan(line: &str) -> (i64, usize, Option<String>) {
    let mut depth = 0i64;
    let mut in_str = false;
    let mut interp = 0i64;
    let bytes = line.as_bytes();
    let mut i = 0;
    let leading = line
        .trim_start()
        .chars()
        .take_while(|c| matches!(c, '}' | ']' | ')'))
        .count();
    let mut heredoc = None;
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' if interp == 0 => in_str = false,
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    interp += 1;
                    i += 1;
                }
                b'}' if interp > 0 => interp -= 1,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'#' => break,
                b'/' if bytes.get(i + 1) == Some(&b'/') => break,
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => depth -= 1,
                b'<' if bytes.get(i + 1) == Some(&b'<') => {
                    let rest = line[i + 2..].trim_start_matches('-');
                    let tag: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !tag.is_empty() {
                        heredoc = Some(tag);
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
    (depth, leading, heredoc)
}

/// `key = value` on one line: the key, and the rest after `=`.
fn attribute(line: &str) -> Option<(&str, &str)> {
    let (k, v) = line.split_once('=')?;
    let k = k.trim_end();
    if v.starts_with('=') || k.is_empty() {
        return None;
    }
    if !k
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    Some((k, v.trim_start()))
}

fn parse_err(file: &str, e: &hcl::edit::parser::Error) -> Diags {
    Diags(vec![Diag {
        file: file.to_string(),
        pos: Some(Pos {
            line: e.location().line(),
            col: e.location().column(),
        }),
        message: format!("syntax error: {}", e.message()),
    }])
}

/// Formats a recipe's text.
pub fn format(file: &str, src: &str) -> Result<String, Diags> {
    let before = hcl::edit::parser::parse_body(src).map_err(|e| parse_err(file, &e))?;
    // Pass 1: indentation, blank lines, trailing spaces.
    let mut lines: Vec<(usize, String, bool)> = Vec::new(); // (indent, text, verbatim)
    let mut depth: i64 = 0;
    let mut heredoc: Option<String> = None;
    for raw in src.lines() {
        if let Some(tag) = &heredoc {
            if raw.trim() == tag {
                heredoc = None;
            }
            lines.push((0, raw.to_string(), true));
            continue;
        }
        let t = raw.trim();
        if t.is_empty() {
            if lines.last().is_some_and(|l| !l.2 && l.1.is_empty()) || lines.is_empty() {
                continue;
            }
            lines.push((0, String::new(), false));
            continue;
        }
        let (delta, leading, hd) = scan(t);
        let indent = (depth - leading as i64).max(0) as usize;
        lines.push((indent, t.to_string(), false));
        depth += delta;
        heredoc = hd;
    }
    while lines.last().is_some_and(|l| !l.2 && l.1.is_empty()) {
        lines.pop();
    }
    // Pass 2: align `=` in runs of one-line attributes at the same indent.
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        let (indent, text, verbatim) = &lines[i];
        if *verbatim || attribute(text).is_none() {
            if !*verbatim && !text.is_empty() {
                out.push_str(&"  ".repeat(*indent));
            }
            out.push_str(text);
            out.push('\n');
            i += 1;
            continue;
        }
        let mut j = i;
        while j < lines.len()
            && !lines[j].2
            && lines[j].0 == *indent
            && attribute(&lines[j].1).is_some()
        {
            let multi_line = scan(&lines[j].1).0 != 0 || scan(&lines[j].1).2.is_some();
            j += 1;
            if multi_line {
                break;
            }
        }
        let width = lines[i..j]
            .iter()
            .filter_map(|l| attribute(&l.1).map(|(k, _)| k.len()))
            .max()
            .unwrap_or(0);
        for l in &lines[i..j] {
            let (k, v) = attribute(&l.1).expect("attribute");
            out.push_str(&format!(
                "{}{k:<width$} = {v}\n",
                "  ".repeat(l.0),
                width = width
            ));
        }
        i = j;
    }
    let after = hcl::edit::parser::parse_body(&out).map_err(|e| parse_err(file, &e))?;
    let (b, a): (hcl::Body, hcl::Body) = (before.into(), after.into());
    if a != b {
        return Err(Diags(vec![Diag {
            file: file.to_string(),
            pos: None,
            message:
                "formatting would change the recipe's meaning; left as it is (please report this)"
                    .into(),
        }]));
    }
    Ok(out)
}
