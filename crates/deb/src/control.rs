//! deb822 control paragraphs (`DEBIAN/control`, `Packages`, `Release`, dpkg `status`):
//! `Field: value` lines, continuation lines starting with a space or tab, paragraphs separated
//! by blank lines. Field order is kept; names compare case-insensitively.

use std::fmt;

/// A malformed control file, with the 1-based line where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("line {line}: continuation line before any field")]
    ContinuationFirst { line: usize },
    #[error("line {line}: expected `Field: value`, found `{text}`")]
    NotAField { line: usize, text: String },
    #[error("line {line}: invalid field name `{name}`")]
    BadFieldName { line: usize, name: String },
    #[error("invalid field name `{name}`")]
    FieldName { name: String },
    #[error("line {line}: duplicate field `{name}`")]
    DuplicateField { line: usize, name: String },
    #[error("expected exactly one paragraph, found {found}")]
    ParagraphCount { found: usize },
    #[error("field `{name}` value would break the paragraph: {reason}")]
    BadValue { name: String, reason: &'static str },
    #[error("required field `{name}` is missing")]
    MissingField { name: String },
}

/// One paragraph: an ordered list of fields.
///
/// A value is stored as it appears after `Field:`: the first line trimmed, then each
/// continuation line on its own line with its leading whitespace kept (so a multi-line
/// `Description` value is `"short\n long text\n .\n more"`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    pub fn new() -> Paragraph {
        Paragraph::default()
    }

    /// The value of a field, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required field.
    pub fn require(&self, name: &str) -> Result<&str, ControlError> {
        self.get(name).ok_or_else(|| ControlError::MissingField {
            name: name.to_string(),
        })
    }

    /// Sets a field, replacing an existing one in place or appending a new one.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> Result<(), ControlError> {
        let value = value.into();
        check_field_name(name).map_err(|_| ControlError::FieldName {
            name: name.to_string(),
        })?;
        check_value(name, &value)?;
        match self
            .fields
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name.to_string(), value)),
        }
        Ok(())
    }

    /// Removes a field, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self
            .fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))?;
        Some(self.fields.remove(i).1)
    }

    /// Fields in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl fmt::Display for Paragraph {
    /// Renders the paragraph, each field ending in a newline, without a trailing blank line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, value) in &self.fields {
            if value.starts_with('\n') || value.is_empty() {
                writeln!(f, "{name}:{value}")?;
            } else {
                writeln!(f, "{name}: {value}")?;
            }
        }
        Ok(())
    }
}

fn check_field_name(name: &str) -> Result<(), ()> {
    let ok = !name.is_empty()
        && !name.starts_with(['#', '-'])
        && name
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b':');
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

fn check_value(name: &str, value: &str) -> Result<(), ControlError> {
    let bad = |reason| {
        Err(ControlError::BadValue {
            name: name.to_string(),
            reason,
        })
    };
    let mut lines = value.split('\n');
    let first = lines.next().unwrap_or("");
    if first != first.trim() {
        return bad("first line has leading or trailing whitespace");
    }
    for line in lines {
        if !line.starts_with([' ', '\t']) {
            return bad("continuation line does not start with a space or tab");
        }
        if line.trim().is_empty() {
            return bad("continuation line is blank (use ` .` for an empty line)");
        }
    }
    Ok(())
}

/// Parses a file holding exactly one paragraph (like `DEBIAN/control`).
pub fn parse_paragraph(text: &str) -> Result<Paragraph, ControlError> {
    let mut paragraphs = parse_paragraphs(text)?;
    if paragraphs.len() != 1 {
        return Err(ControlError::ParagraphCount {
            found: paragraphs.len(),
        });
    }
    Ok(paragraphs.remove(0))
}

/// Parses a file of paragraphs separated by blank lines (like a `Packages` index). Lines
/// holding only whitespace count as blank.
pub fn parse_paragraphs(text: &str) -> Result<Vec<Paragraph>, ControlError> {
    let mut paragraphs = Vec::new();
    let mut current = Paragraph::new();
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.trim_end();
        if line.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(last) = current.fields.last_mut() else {
                return Err(ControlError::ContinuationFirst { line: line_no });
            };
            last.1.push('\n');
            last.1.push_str(line);
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ControlError::NotAField {
                line: line_no,
                text: line.to_string(),
            });
        };
        if check_field_name(name).is_err() {
            return Err(ControlError::BadFieldName {
                line: line_no,
                name: name.to_string(),
            });
        }
        if current.get(name).is_some() {
            return Err(ControlError::DuplicateField {
                line: line_no,
                name: name.to_string(),
            });
        }
        current
            .fields
            .push((name.to_string(), value.trim().to_string()));
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    Ok(paragraphs)
}

/// Formats a `Description` value from a synopsis and an extended description, following
/// policy §5.6.13: each extended line is indented by one space, blank lines become ` .`.
pub fn format_description(short: &str, long: &str) -> String {
    let mut out = short.trim().to_string();
    for line in long.trim_end().lines() {
        let line = line.trim_end();
        out.push('\n');
        if line.is_empty() {
            out.push_str(" .");
        } else {
            out.push(' ');
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_render_round_trip() {
        let text = "Package: hello\nVersion: 2.10-3\nDepends: libc6 (>= 2.34)\nDescription: example\n a longer\n .\n text\nConffiles:\n /etc/a 0123\n";
        let p = parse_paragraph(text).unwrap();
        assert_eq!(p.get("package"), Some("hello"));
        assert_eq!(p.get("DESCRIPTION"), Some("example\n a longer\n .\n text"));
        assert_eq!(p.get("Conffiles"), Some("\n /etc/a 0123"));
        assert_eq!(p.to_string(), text);
        let names: Vec<_> = p.iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            ["Package", "Version", "Depends", "Description", "Conffiles"]
        );
    }

    #[test]
    fn whitespace_is_normalised() {
        let p = parse_paragraph("\n\nPackage:   hello  \r\nVersion:1\n\n\n").unwrap();
        assert_eq!(p.to_string(), "Package: hello\nVersion: 1\n");
    }

    #[test]
    fn multiple_paragraphs() {
        let ps = parse_paragraphs("A: 1\nB: 2\n\nA: 3\n \t \nA: 4\n").unwrap();
        assert_eq!(ps.len(), 3);
        assert_eq!(ps[2].get("a"), Some("4"));
        assert_eq!(
            parse_paragraph("A: 1\n\nA: 2\n"),
            Err(ControlError::ParagraphCount { found: 2 })
        );
        assert_eq!(
            parse_paragraph(""),
            Err(ControlError::ParagraphCount { found: 0 })
        );
    }

    #[test]
    fn malformed() {
        let cases: &[(&str, ControlError)] = &[
            (" leading\n", ControlError::ContinuationFirst { line: 1 }),
            (
                "A: 1\nno colon here\n",
                ControlError::NotAField {
                    line: 2,
                    text: "no colon here".into(),
                },
            ),
            (
                "A: 1\na: 2\n",
                ControlError::DuplicateField {
                    line: 2,
                    name: "a".into(),
                },
            ),
            (
                "#comment: 1\n",
                ControlError::BadFieldName {
                    line: 1,
                    name: "#comment".into(),
                },
            ),
            (
                ": 1\n",
                ControlError::BadFieldName {
                    line: 1,
                    name: "".into(),
                },
            ),
            (
                "Bad Name: 1\n",
                ControlError::BadFieldName {
                    line: 1,
                    name: "Bad Name".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_paragraphs(text).as_ref(), Err(want), "{text:?}");
        }
    }

    #[test]
    fn set_rejects_values_that_break_the_format() {
        let mut p = Paragraph::new();
        p.set("Package", "x").unwrap();
        p.set("package", "y").unwrap();
        assert_eq!(p.to_string(), "Package: y\n");
        for bad in ["a\nb", "a\n\n b", " a", "a\n  "] {
            assert!(p.set("Description", bad).is_err(), "{bad:?}");
        }
        assert!(p.set("Bad:Name", "x").is_err());
        assert_eq!(p.remove("PACKAGE").as_deref(), Some("y"));
        assert!(p.is_empty());
    }

    #[test]
    fn description_formatting() {
        assert_eq!(format_description("short", ""), "short");
        assert_eq!(
            format_description(" short ", "Line one.\n\nLine two.\n  indented\n"),
            "short\n Line one.\n .\n Line two.\n   indented"
        );
    }
}
