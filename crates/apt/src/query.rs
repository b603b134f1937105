//! aptly-style package queries: a parser and an evaluator.
//!
//! ```text
//! query  := and ('|' and)*                 either side matches
//! and    := unary (',' unary)*             both sides match
//! unary  := '!' unary | atom               negation
//! atom   := '(' query ')'
//!         | NAME [cond] ['{' ARCH '}']     package name, e.g. `nginx (>= 1.2) {amd64}`
//!         | NAME_VERSION_ARCH              an exact package key, e.g. `nginx_1.2_amd64`
//!         | Field [cond]                   a control field (capitalised), e.g. `Priority (required)`
//!         | $Special [cond]                `$Architecture`, `$Version`, `$Source`, `$PackageType`
//! cond   := '(' [op] value ')'             op: = >= <= >> << > < % (glob) ~ (regex)
//! ```
//!
//! Semantics follow aptly: a field with no condition means "the field is present"; a
//! condition without operator means equality; `Version`, `$Version` and package-name
//! conditions compare in dpkg order (`<`/`>` mean `<=`/`>=` as in Debian relations); other
//! fields compare as strings; `%` is a shell glob (`*`, `?`) over the whole value and `~` an
//! unanchored regular expression. `$Architecture (amd64)` and `{amd64}` also match
//! `Architecture: all` packages, because those install on every architecture. `Name` is an
//! alias of `Package`.

use std::fmt;

use spindle_deb::relation::VersionOp;
use spindle_deb::Version;

use crate::package::{PackageKey, PackageRef};

/// A query that could not be parsed. Columns are 1-based character positions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query syntax error at column {column}: expected {expected}, found {found}")]
    Syntax {
        column: usize,
        expected: &'static str,
        found: String,
    },
    #[error("query error at column {column}: invalid regular expression `{pattern}`: {reason}")]
    Regex {
        column: usize,
        pattern: String,
        reason: String,
    },
    #[error("query error at column {column}: invalid version `{version}`: {reason}")]
    Version {
        column: usize,
        version: String,
        reason: String,
    },
    #[error("query error at column {column}: invalid package key `{key}`: {reason}")]
    Key {
        column: usize,
        key: String,
        reason: String,
    },
}

/// A comparison inside a condition.
#[derive(Debug, Clone)]
pub enum Cond {
    /// `(op value)` with a version or string operator.
    Compare(VersionOp, String),
    /// `(% glob)`
    Glob(String),
    /// `(~ regex)`
    Regex(regex::Regex),
}

/// A parsed query.
#[derive(Debug, Clone)]
pub enum Query {
    Or(Box<Query>, Box<Query>),
    And(Box<Query>, Box<Query>),
    Not(Box<Query>),
    /// A package name with an optional version condition and architecture.
    Package {
        name: String,
        cond: Option<Cond>,
        arch: Option<String>,
    },
    /// An exact package key.
    Key(PackageKey),
    /// A control field (or `$Special`), with an optional condition.
    Field {
        field: String,
        cond: Option<Cond>,
    },
}

impl Query {
    /// Parses a query string.
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        let mut p = Parser {
            chars: text.chars().collect(),
            pos: 0,
        };
        p.skip_ws();
        if p.at_end() {
            return Err(p.error("a package name, field or `(`"));
        }
        let q = p.or()?;
        p.skip_ws();
        if !p.at_end() {
            return Err(p.error("`|`, `,` or the end of the query"));
        }
        Ok(q)
    }

    /// Whether `package` matches.
    pub fn matches(&self, package: &PackageRef) -> bool {
        match self {
            Query::Or(a, b) => a.matches(package) || b.matches(package),
            Query::And(a, b) => a.matches(package) && b.matches(package),
            Query::Not(q) => !q.matches(package),
            Query::Key(k) => package.key() == k,
            Query::Package { name, cond, arch } => {
                package.key().name() == name
                    && arch
                        .as_deref()
                        .is_none_or(|a| arch_matches(package.key().arch(), a))
                    && cond
                        .as_ref()
                        .is_none_or(|c| eval(c, package.key().version_text(), true))
            }
            Query::Field { field, cond } => {
                let (value, version): (Option<&str>, bool) = match field.as_str() {
                    "$Architecture" => {
                        if let Some(Cond::Compare(VersionOp::Eq, want)) = cond {
                            return arch_matches(package.key().arch(), want);
                        }
                        (Some(package.key().arch()), false)
                    }
                    "$Version" => (Some(package.key().version_text()), true),
                    "$Source" => (Some(package.source_name()), false),
                    "$PackageType" => (Some("deb"), false),
                    f => (package.field(f), f.eq_ignore_ascii_case("Version")),
                };
                match (value, cond) {
                    (None, _) => false,
                    (Some(_), None) => true,
                    (Some(v), Some(c)) => eval(c, v, version),
                }
            }
        }
    }
}

fn arch_matches(package_arch: &str, wanted: &str) -> bool {
    package_arch == wanted || (package_arch == "all" && wanted != "source")
}

fn eval(cond: &Cond, value: &str, version: bool) -> bool {
    match cond {
        Cond::Glob(g) => glob_match(g.as_bytes(), value.as_bytes()),
        Cond::Regex(r) => r.is_match(value),
        Cond::Compare(op, want) => {
            let ordering = if version {
                match (Version::parse(value), Version::parse(want)) {
                    (Ok(a), Ok(b)) => a.cmp(&b),
                    _ => value.cmp(want.as_str()),
                }
            } else {
                value.cmp(want.as_str())
            };
            op.holds(ordering)
        }
    }
}

/// Shell-style glob over the whole string: `*` any run, `?` any one byte.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

const SPECIAL: &[char] = &['(', ')', '|', ',', '!', '{', '}'];

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the query".to_string(),
            Some(_) => {
                let rest: String = self.chars[self.pos..].iter().take(12).collect();
                format!("`{rest}`")
            }
        }
    }

    fn error(&self, expected: &'static str) -> QueryError {
        QueryError::Syntax {
            column: self.pos + 1,
            expected,
            found: self.found(),
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Query, QueryError> {
        let mut left = self.and()?;
        while self.eat('|') {
            let right = self.and()?;
            left = Query::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Query, QueryError> {
        let mut left = self.unary()?;
        while self.eat(',') {
            let right = self.unary()?;
            left = Query::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Query, QueryError> {
        if self.eat('!') {
            return Ok(Query::Not(Box::new(self.unary()?)));
        }
        self.atom()
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| !c.is_whitespace() && !SPECIAL.contains(&c))
        {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn atom(&mut self) -> Result<Query, QueryError> {
        self.skip_ws();
        if self.eat('(') {
            let q = self.or()?;
            if !self.eat(')') {
                return Err(self.error("`)`"));
            }
            return Ok(q);
        }
        let column = self.pos + 1;
        let word = self.word();
        if word.is_empty() {
            return Err(self.error("a package name, field or `(`"));
        }
        let first = word.chars().next().unwrap_or(' ');
        if first == '$' || first.is_ascii_uppercase() {
            if first == '$'
                && !["$Architecture", "$Version", "$Source", "$PackageType"]
                    .contains(&word.as_str())
            {
                return Err(QueryError::Syntax {
                    column,
                    expected: "one of `$Architecture`, `$Version`, `$Source`, `$PackageType`",
                    found: format!("`{word}`"),
                });
            }
            let version = word == "$Version" || word.eq_ignore_ascii_case("Version");
            let cond = self.cond(version)?;
            return Ok(Query::Field { field: word, cond });
        }
        if word.contains('_') {
            return PackageKey::parse(&word)
                .map(Query::Key)
                .map_err(|e| QueryError::Key {
                    column,
                    key: word.clone(),
                    reason: error_chain(&e),
                });
        }
        if let Err(e) = spindle_deb::names::validate_package_name(&word) {
            return Err(QueryError::Syntax {
                column,
                expected: "a package name (lower case letters, digits, `+`, `-`, `.`), a capitalised field or `$Field`",
                found: format!("`{word}` ({e})"),
            });
        }
        let cond = self.cond(true)?;
        let arch = if self.eat('{') {
            self.skip_ws();
            let arch = self.word();
            if arch.is_empty() {
                return Err(self.error("an architecture"));
            }
            if !self.eat('}') {
                return Err(self.error("`}`"));
            }
            Some(arch)
        } else {
            None
        };
        Ok(Query::Package {
            name: word,
            cond,
            arch,
        })
    }

    /// An optional `(op value)` after a name or field.
    fn cond(&mut self, version: bool) -> Result<Option<Cond>, QueryError> {
        if !self.eat('(') {
            return Ok(None);
        }
        self.skip_ws();
        let op_column = self.pos + 1;
        let rest: String = self.chars[self.pos..].iter().take(2).collect();
        let (op, len) = match rest.as_str() {
            s if s.starts_with(">=") => (Some(">="), 2),
            s if s.starts_with("<=") => (Some("<="), 2),
            s if s.starts_with(">>") => (Some(">>"), 2),
            s if s.starts_with("<<") => (Some("<<"), 2),
            s if s.starts_with('>') => (Some(">="), 1),
            s if s.starts_with('<') => (Some("<="), 1),
            s if s.starts_with('=') => (Some("="), 1),
            s if s.starts_with('%') => (Some("%"), 1),
            s if s.starts_with('~') => (Some("~"), 1),
            _ => (None, 0),
        };
        self.pos += len;
        self.skip_ws();
        let value_column = self.pos + 1;
        let start = self.pos;
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return Err(self.error("`)` closing the condition")),
                Some('(') => depth += 1,
                Some(')') if depth == 0 => break,
                Some(')') => depth -= 1,
                Some(_) => {}
            }
            self.pos += 1;
        }
        let value: String = self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .trim()
            .to_string();
        self.pos += 1; // the closing `)`
        if value.is_empty() {
            return Err(QueryError::Syntax {
                column: value_column,
                expected: "a value in the condition",
                found: "`)`".to_string(),
            });
        }
        let vop = |op| match op {
            ">=" => VersionOp::GreaterEq,
            "<=" => VersionOp::LessEq,
            ">>" => VersionOp::Greater,
            "<<" => VersionOp::Less,
            _ => VersionOp::Eq,
        };
        Ok(Some(match op {
            Some("%") => Cond::Glob(value),
            Some("~") => match regex::Regex::new(&value) {
                Ok(r) => Cond::Regex(r),
                Err(e) => {
                    return Err(QueryError::Regex {
                        column: value_column,
                        pattern: value,
                        reason: e.to_string(),
                    })
                }
            },
            op => {
                if version {
                    if let Err(e) = Version::parse(&value) {
                        return Err(QueryError::Version {
                            column: value_column,
                            version: value,
                            reason: e.to_string(),
                        });
                    }
                }
                let _ = op_column;
                Cond::Compare(vop(op.unwrap_or("=")), value)
            }
        }))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::Compare(op, v) => write!(f, "({} {v})", op.as_str()),
            Cond::Glob(g) => write!(f, "(% {g})"),
            Cond::Regex(r) => write!(f, "(~ {})", r.as_str()),
        }
    }
}

impl fmt::Display for Query {
    /// The canonical, fully parenthesised form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Or(a, b) => write!(f, "({a} | {b})"),
            Query::And(a, b) => write!(f, "({a}, {b})"),
            Query::Not(q) => write!(f, "!{q}"),
            Query::Key(k) => write!(f, "{k}"),
            Query::Package { name, cond, arch } => {
                f.write_str(name)?;
                if let Some(c) = cond {
                    write!(f, " {c}")?;
                }
                if let Some(a) = arch {
                    write!(f, " {{{a}}}")?;
                }
                Ok(())
            }
            Query::Field { field, cond } => {
                f.write_str(field)?;
                if let Some(c) = cond {
                    write!(f, " {c}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_deb::control::parse_paragraph;

    fn pkg(control: &str) -> PackageRef {
        PackageRef::new(
            parse_paragraph(control).unwrap(),
            spindle_deb::digest::digest_bytes(control.as_bytes()),
            vec![],
        )
        .unwrap()
    }

    fn packages() -> Vec<PackageRef> {
        [
            "Package: nginx\nVersion: 1.2.0-1\nArchitecture: amd64\nPriority: optional\nSection: web\n",
            "Package: nginx\nVersion: 1.1\nArchitecture: i386\nPriority: optional\n",
            "Package: nginx-doc\nVersion: 1.2.0-1\nArchitecture: all\nSource: nginx (1.2.0-1)\n",
            "Package: libc6\nVersion: 2.36-9\nArchitecture: amd64\nPriority: required\n",
            "Package: zlib1g\nVersion: 1:1.2.13-1\nArchitecture: amd64\nPriority: required\n",
        ]
        .iter()
        .map(|c| pkg(c))
        .collect()
    }

    /// Each query with the keys it selects from [`packages`].
    fn check(query: &str, expected: &[&str]) {
        let q = Query::parse(query).unwrap_or_else(|e| panic!("{query}: {e}"));
        let got: Vec<String> = packages()
            .iter()
            .filter(|p| q.matches(p))
            .map(|p| p.key().to_string())
            .collect();
        assert_eq!(got, expected, "query `{query}` parsed as `{q}`");
    }

    #[test]
    fn queries_select_packages() {
        check("nginx", &["nginx_1.2.0-1_amd64", "nginx_1.1_i386"]);
        check("nginx (>= 1.2)", &["nginx_1.2.0-1_amd64"]);
        check("nginx (<< 1.2)", &["nginx_1.1_i386"]);
        check("nginx {i386}", &["nginx_1.1_i386"]);
        check("nginx_1.1_i386", &["nginx_1.1_i386"]);
        check(
            "$Architecture (amd64)",
            &[
                "nginx_1.2.0-1_amd64",
                "nginx-doc_1.2.0-1_all",
                "libc6_2.36-9_amd64",
                "zlib1g_1:1.2.13-1_amd64",
            ],
        );
        check("$Architecture (i386), !nginx", &["nginx-doc_1.2.0-1_all"]);
        check(
            "$Version (<< 2)",
            &[
                "nginx_1.2.0-1_amd64",
                "nginx_1.1_i386",
                "nginx-doc_1.2.0-1_all",
            ],
        );
        check("Version (>= 1:0)", &["zlib1g_1:1.2.13-1_amd64"]);
        check(
            "Priority (required)",
            &["libc6_2.36-9_amd64", "zlib1g_1:1.2.13-1_amd64"],
        );
        check(
            "Priority (required) | Section",
            &[
                "nginx_1.2.0-1_amd64",
                "libc6_2.36-9_amd64",
                "zlib1g_1:1.2.13-1_amd64",
            ],
        );
        check("!(Priority (required) | nginx)", &["nginx-doc_1.2.0-1_all"]);
        check(
            "Name (% nginx*)",
            &[
                "nginx_1.2.0-1_amd64",
                "nginx_1.1_i386",
                "nginx-doc_1.2.0-1_all",
            ],
        );
        check(
            "Name (~ ^lib|^z)",
            &["libc6_2.36-9_amd64", "zlib1g_1:1.2.13-1_amd64"],
        );
        check(
            "$Source (nginx), $Architecture (all)",
            &["nginx-doc_1.2.0-1_all"],
        );
        check(
            "Package (= libc6) | zlib1g (= 1:1.2.13-1)",
            &["libc6_2.36-9_amd64", "zlib1g_1:1.2.13-1_amd64"],
        );
        check("$PackageType (deb), Missing-Field", &[]);
        check(
            "  ( ( nginx ) ) ",
            &["nginx_1.2.0-1_amd64", "nginx_1.1_i386"],
        );
    }

    #[test]
    fn syntax_errors_name_the_column_and_the_expectation() {
        let cases = [
            (
                "",
                "column 1: expected a package name, field or `(`, found the end of the query",
            ),
            (
                "nginx |",
                "column 8: expected a package name, field or `(`, found the end of the query",
            ),
            (
                "(nginx",
                "column 7: expected `)`, found the end of the query",
            ),
            (
                "nginx (>= 1.2",
                "column 14: expected `)` closing the condition",
            ),
            (
                "nginx libc6",
                "column 7: expected `|`, `,` or the end of the query, found `libc6`",
            ),
            (
                "nginx (>= )",
                "column 11: expected a value in the condition",
            ),
            ("nginx (>= x1)", "column 11: invalid version `x1`"),
            ("Name (~ [a)", "column 9: invalid regular expression `[a`"),
            ("$Arch (amd64)", "column 1: expected one of `$Architecture`"),
            ("nginx_1.0", "column 1: invalid package key `nginx_1.0`"),
            ("nginx {amd64", "column 13: expected `}`"),
            ("ngInx", "column 1: expected a package name"),
            (
                "nginx, )",
                "column 8: expected a package name, field or `(`, found `)`",
            ),
        ];
        for (query, want) in cases {
            let err = Query::parse(query).unwrap_err().to_string();
            assert!(err.contains(want), "`{query}`: got `{err}`, want `{want}`");
        }
    }

    #[test]
    fn globs() {
        for (pattern, text, ok) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("*b*", "abc", true),
            ("lib*-dev", "libfoo-dev", true),
            ("lib*-dev", "libfoo-dev1", false),
        ] {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                ok,
                "{pattern} {text}"
            );
        }
    }
}
