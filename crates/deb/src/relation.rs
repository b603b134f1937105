//! Package relationship fields (`Depends`, `Recommends`, `Conflicts`, `Provides`, ...), Debian
//! policy §7.1: `a (>= 1.2) | b, c:any [amd64 i386] <!nocheck>`.
//!
//! A field is a list of [`Alternatives`] (separated by `,`), each a list of [`Relation`]s
//! (separated by `|`). Architecture restrictions (`[...]`) and build profiles (`<...>`) are
//! parsed as well, though they only appear in source packages.

use std::cmp::Ordering;
use std::fmt;

use crate::names::{validate_architecture, validate_package_name};
use crate::version::Version;

/// Why a relationship field is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelationError {
    #[error("relationship field is empty")]
    Empty,
    #[error("empty alternative in relationship field `{field}`")]
    EmptyAlternative { field: String },
    #[error("malformed relation `{relation}`: {reason}")]
    Syntax {
        relation: String,
        reason: &'static str,
    },
    #[error("invalid package name in relation `{relation}`")]
    Name {
        relation: String,
        #[source]
        source: crate::names::NameError,
    },
    #[error("invalid version in relation `{relation}`")]
    Version {
        relation: String,
        #[source]
        source: crate::version::VersionError,
    },
}

/// A version comparison operator. dpkg's obsolete `<` and `>` mean `<=` and `>=` and are
/// parsed as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionOp {
    /// `<<`
    Less,
    /// `<=`
    LessEq,
    /// `=`
    Eq,
    /// `>=`
    GreaterEq,
    /// `>>`
    Greater,
}

impl VersionOp {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionOp::Less => "<<",
            VersionOp::LessEq => "<=",
            VersionOp::Eq => "=",
            VersionOp::GreaterEq => ">=",
            VersionOp::Greater => ">>",
        }
    }

    /// Whether `candidate OP constraint` holds, given `candidate.cmp(constraint)`.
    pub fn holds(self, ordering: Ordering) -> bool {
        match self {
            VersionOp::Less => ordering == Ordering::Less,
            VersionOp::LessEq => ordering != Ordering::Greater,
            VersionOp::Eq => ordering == Ordering::Equal,
            VersionOp::GreaterEq => ordering != Ordering::Less,
            VersionOp::Greater => ordering == Ordering::Greater,
        }
    }
}

/// One entry of an architecture restriction list: `amd64` or `!i386`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArchRestriction {
    pub negated: bool,
    pub arch: String,
}

/// One term of a build profile formula: `nocheck` or `!nocheck`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProfileTerm {
    pub negated: bool,
    pub profile: String,
}

/// A single relation such as `libc6:amd64 (>= 2.36) [amd64]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// The multi-arch qualifier after `:` (`any`, `native`, or an architecture).
    pub arch_qualifier: Option<String>,
    pub version: Option<(VersionOp, Version)>,
    /// Empty when the relation applies on every architecture.
    pub arch_restrictions: Vec<ArchRestriction>,
    /// Each inner list is one `<...>` group; the relation applies if any group matches.
    pub build_profiles: Vec<Vec<ProfileTerm>>,
}

impl Relation {
    /// Whether a package `name` at `version` satisfies this relation (ignoring architecture
    /// qualifiers and restrictions, which need a target architecture to evaluate).
    pub fn is_satisfied_by(&self, name: &str, version: &Version) -> bool {
        self.name == name
            && match &self.version {
                None => true,
                Some((op, wanted)) => op.holds(version.cmp(wanted)),
            }
    }
}

/// A list of alternatives separated by `|`: any one satisfies it.
pub type Alternatives = Vec<Relation>;

/// A whole relationship field: every group of alternatives must be satisfied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Relations(pub Vec<Alternatives>);

impl Relations {
    /// Parses a relationship field value (continuation lines allowed).
    pub fn parse(field: &str) -> Result<Relations, RelationError> {
        if field.trim().is_empty() {
            return Err(RelationError::Empty);
        }
        let mut groups = Vec::new();
        for group in field.split(',') {
            let mut alternatives = Vec::new();
            for relation in group.split('|') {
                if relation.trim().is_empty() {
                    return Err(RelationError::EmptyAlternative {
                        field: field.trim().to_string(),
                    });
                }
                alternatives.push(parse_relation(relation.trim())?);
            }
            groups.push(alternatives);
        }
        Ok(Relations(groups))
    }

    /// Every package name mentioned, in order of appearance.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flatten().map(|r| r.name.as_str())
    }
}

impl std::str::FromStr for Relations {
    type Err = RelationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Relations::parse(s)
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.arch_qualifier {
            write!(f, ":{q}")?;
        }
        if let Some((op, v)) = &self.version {
            write!(f, " ({} {v})", op.as_str())?;
        }
        if !self.arch_restrictions.is_empty() {
            f.write_str(" [")?;
            for (i, a) in self.arch_restrictions.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{}{}", if a.negated { "!" } else { "" }, a.arch)?;
            }
            f.write_str("]")?;
        }
        for group in &self.build_profiles {
            f.write_str(" <")?;
            for (i, t) in group.iter().enumerate() {
                if i > 0 {
                    f.write_str(" ")?;
                }
                write!(f, "{}{}", if t.negated { "!" } else { "" }, t.profile)?;
            }
            f.write_str(">")?;
        }
        Ok(())
    }
}

impl fmt::Display for Relations {
    /// Renders the canonical form: `a (>= 1) | b, c`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, group) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            for (j, r) in group.iter().enumerate() {
                if j > 0 {
                    f.write_str(" | ")?;
                }
                write!(f, "{r}")?;
            }
        }
        Ok(())
    }
}

fn parse_relation(text: &str) -> Result<Relation, RelationError> {
    let syntax = |reason| RelationError::Syntax {
        relation: text.to_string(),
        reason,
    };
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || "+.-".contains(c);
    let name_end = text.find(|c: char| !is_name_char(c)).unwrap_or(text.len());
    let name = &text[..name_end];
    if name.is_empty() {
        return Err(syntax("missing package name"));
    }
    // Policy's two-character minimum is not enforced here: relations in the wild (and in
    // examples) name one-letter packages, and dpkg accepts them.
    if name.len() > 1 {
        validate_package_name(name).map_err(|source| RelationError::Name {
            relation: text.to_string(),
            source,
        })?;
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(syntax("invalid one-character package name"));
    }
    let mut rest = &text[name_end..];
    let mut arch_qualifier = None;
    if let Some(after) = rest.strip_prefix(':') {
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(after.len());
        let qual = &after[..end];
        if validate_architecture(qual).is_err() {
            return Err(syntax("invalid architecture qualifier after `:`"));
        }
        arch_qualifier = Some(qual.to_string());
        rest = &after[end..];
    }
    rest = rest.trim_start();

    let mut version = None;
    if let Some(after) = rest.strip_prefix('(') {
        let close = after.find(')').ok_or_else(|| syntax("missing `)`"))?;
        let inner = after[..close].trim_start();
        let (op, len) = if inner.starts_with("<<") {
            (VersionOp::Less, 2)
        } else if inner.starts_with("<=") {
            (VersionOp::LessEq, 2)
        } else if inner.starts_with(">>") {
            (VersionOp::Greater, 2)
        } else if inner.starts_with(">=") {
            (VersionOp::GreaterEq, 2)
        } else if inner.starts_with('=') {
            (VersionOp::Eq, 1)
        } else if inner.starts_with('<') {
            (VersionOp::LessEq, 1)
        } else if inner.starts_with('>') {
            (VersionOp::GreaterEq, 1)
        } else {
            return Err(syntax("missing or unknown version operator"));
        };
        let v = inner[len..].trim();
        if v.is_empty() {
            return Err(syntax("missing version after operator"));
        }
        let v = Version::parse(v).map_err(|source| RelationError::Version {
            relation: text.to_string(),
            source,
        })?;
        version = Some((op, v));
        rest = after[close + 1..].trim_start();
    }

    let mut arch_restrictions = Vec::new();
    if let Some(after) = rest.strip_prefix('[') {
        let close = after.find(']').ok_or_else(|| syntax("missing `]`"))?;
        for word in after[..close].split_whitespace() {
            let (negated, arch) = match word.strip_prefix('!') {
                Some(a) => (true, a),
                None => (false, word),
            };
            validate_architecture(arch)
                .map_err(|_| syntax("invalid architecture in restriction list"))?;
            arch_restrictions.push(ArchRestriction {
                negated,
                arch: arch.to_string(),
            });
        }
        if arch_restrictions.is_empty() {
            return Err(syntax("empty architecture restriction list"));
        }
        let negated = arch_restrictions[0].negated;
        if arch_restrictions.iter().any(|a| a.negated != negated) {
            return Err(syntax("architecture list mixes negated and plain entries"));
        }
        rest = after[close + 1..].trim_start();
    }

    let mut build_profiles = Vec::new();
    while let Some(after) = rest.strip_prefix('<') {
        let close = after.find('>').ok_or_else(|| syntax("missing `>`"))?;
        let mut group = Vec::new();
        for word in after[..close].split_whitespace() {
            let (negated, profile) = match word.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, word),
            };
            if profile.is_empty()
                || !profile
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c))
            {
                return Err(syntax("invalid build profile name"));
            }
            group.push(ProfileTerm {
                negated,
                profile: profile.to_string(),
            });
        }
        if group.is_empty() {
            return Err(syntax("empty build profile list"));
        }
        build_profiles.push(group);
        rest = after[close + 1..].trim_start();
    }

    if !rest.is_empty() {
        return Err(syntax("unexpected text after relation"));
    }
    Ok(Relation {
        name: name.to_string(),
        arch_qualifier,
        version,
        arch_restrictions,
        build_profiles,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` and checks the canonical rendering.
    fn check(input: &str, canonical: &str) {
        let parsed = Relations::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(parsed.to_string(), canonical, "{input:?}");
        assert_eq!(Relations::parse(canonical).unwrap(), parsed);
    }

    #[test]
    fn canonical_forms() {
        let cases = [
            ("a", "a"),
            (
                "a (>= 1.2) | b, c:any [amd64]",
                "a (>= 1.2) | b, c:any [amd64]",
            ),
            ("a(>=1.2)|b,c:any[amd64]", "a (>= 1.2) | b, c:any [amd64]"),
            ("libc6 (>= 2.36)", "libc6 (>= 2.36)"),
            ("foo (<< 2:1.0-1~)", "foo (<< 2:1.0-1~)"),
            ("foo (< 1)", "foo (<= 1)"),
            ("foo (> 1)", "foo (>= 1)"),
            ("foo (= 1.0), bar (>> 0)", "foo (= 1.0), bar (>> 0)"),
            ("foo [!i386 !armel]", "foo [!i386 !armel]"),
            (
                "debhelper-compat (= 13), dh <!nocheck> <cross pkg.foo>",
                "debhelper-compat (= 13), dh <!nocheck> <cross pkg.foo>",
            ),
            ("a,\n b |\n  c", "a, b | c"),
            ("python3:native", "python3:native"),
        ];
        for (input, canonical) in cases {
            check(input, canonical);
        }
    }

    #[test]
    fn structure() {
        let r = Relations::parse("a (>= 1.2) | b, c:any [amd64]").unwrap();
        assert_eq!(r.0.len(), 2);
        assert_eq!(r.0[0].len(), 2);
        let a = &r.0[0][0];
        assert_eq!(a.name, "a");
        let (op, v) = a.version.as_ref().unwrap();
        assert_eq!((*op, v.to_string().as_str()), (VersionOp::GreaterEq, "1.2"));
        let c = &r.0[1][0];
        assert_eq!(c.arch_qualifier.as_deref(), Some("any"));
        assert_eq!(
            c.arch_restrictions,
            vec![ArchRestriction {
                negated: false,
                arch: "amd64".into()
            }]
        );
        assert_eq!(r.names().collect::<Vec<_>>(), ["a", "b", "c"]);
    }

    #[test]
    fn satisfaction() {
        let v = |s| Version::parse(s).unwrap();
        let cases = [
            ("a (>= 1.2)", "a", "1.2", true),
            ("a (>= 1.2)", "a", "1.2~rc1", false),
            ("a (<< 2)", "a", "1.9", true),
            ("a (<< 2)", "a", "2", false),
            ("a (= 1.0)", "a", "1.0-0", true),
            ("a (>> 1.0)", "a", "1.0+b1", true),
            ("a (<= 1.0)", "a", "1.0", true),
            ("a", "a", "0", true),
            ("a", "b", "0", false),
        ];
        for (rel, name, version, want) in cases {
            let r = &Relations::parse(rel).unwrap().0[0][0];
            assert_eq!(
                r.is_satisfied_by(name, &v(version)),
                want,
                "{rel} by {name} {version}"
            );
        }
    }

    #[test]
    fn malformed() {
        let cases = [
            "",
            "  ",
            "a,",
            ",a",
            "a | | b",
            "A",
            "+",
            "a (>= 1.2",
            "a (1.2)",
            "a (>= )",
            "a (>= x1)",
            "a [amd64",
            "a []",
            "a [amd64 !i386]",
            "a [AMD64]",
            "a <nocheck",
            "a <>",
            "a:",
            "a b",
            "a (>= 1) extra",
            "a_b",
        ];
        for input in cases {
            assert!(
                Relations::parse(input).is_err(),
                "{input:?} should be rejected"
            );
        }
        assert!(matches!(
            Relations::parse("a (>= x1)"),
            Err(RelationError::Version { .. })
        ));
        assert!(matches!(
            Relations::parse("Foo"),
            Err(RelationError::Name { .. })
        ));
    }
}
