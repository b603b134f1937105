//! Semantic checks of a binary package's control paragraph: required fields present and every
//! known field well formed (name, version, architecture, relationships, sizes).

use crate::control::Paragraph;
use crate::names::{validate_binary_architecture, validate_package_name, NameError};
use crate::relation::{RelationError, Relations};
use crate::version::{Version, VersionError};

/// The relationship fields of binary packages, in the order dpkg-gencontrol writes them.
pub const RELATION_FIELDS: &[&str] = &[
    "Pre-Depends",
    "Depends",
    "Recommends",
    "Suggests",
    "Enhances",
    "Breaks",
    "Conflicts",
    "Replaces",
    "Provides",
    "Built-Using",
    "Static-Built-Using",
];

/// One problem with a control paragraph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("required field `{field}` is missing")]
    Missing { field: &'static str },
    #[error("field `{field}` must be a single line")]
    MultiLine { field: String },
    #[error("field `Package`")]
    Name(#[source] NameError),
    #[error("field `Architecture`")]
    Architecture(#[source] NameError),
    #[error("field `Version`")]
    Version(#[source] VersionError),
    #[error("field `{field}`")]
    Relation {
        field: &'static str,
        #[source]
        source: RelationError,
    },
    #[error("field `{field}` value `{value}` is not a non-negative integer")]
    NotANumber { field: &'static str, value: String },
    #[error("field `{field}` value `{value}` is not one of: {allowed}")]
    NotAllowed {
        field: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("field `Description` has an empty synopsis")]
    EmptySynopsis,
}

/// One line describing every error with its cause, for messages that carry a list.
pub(crate) fn describe_all(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Checks a binary package's control paragraph, returning every problem found.
pub fn validate_binary_control(p: &Paragraph) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    for field in ["Package", "Version", "Architecture"] {
        match p.get(field) {
            None => errors.push(FieldError::Missing { field }),
            Some(v) if v.contains('\n') => errors.push(FieldError::MultiLine {
                field: field.to_string(),
            }),
            Some(_) => {}
        }
    }
    if let Some(name) = p.get("Package") {
        if let Err(e) = validate_package_name(name) {
            errors.push(FieldError::Name(e));
        }
    }
    if let Some(v) = p.get("Version") {
        if let Err(e) = Version::parse(v) {
            errors.push(FieldError::Version(e));
        }
    }
    if let Some(arch) = p.get("Architecture") {
        if let Err(e) = validate_binary_architecture(arch) {
            errors.push(FieldError::Architecture(e));
        }
    }
    for &field in RELATION_FIELDS {
        if let Some(v) = p.get(field) {
            if let Err(source) = Relations::parse(v) {
                errors.push(FieldError::Relation { field, source });
            }
        }
    }
    if let Some(v) = p.get("Installed-Size") {
        if v.parse::<u64>().is_err() {
            errors.push(FieldError::NotANumber {
                field: "Installed-Size",
                value: v.to_string(),
            });
        }
    }
    let choices: [(&'static str, &'static str); 3] = [
        ("Essential", "yes no"),
        ("Protected", "yes no"),
        ("Multi-Arch", "no same foreign allowed"),
    ];
    for (field, allowed) in choices {
        if let Some(v) = p.get(field) {
            if !allowed.split(' ').any(|a| a == v) {
                errors.push(FieldError::NotAllowed {
                    field,
                    value: v.to_string(),
                    allowed,
                });
            }
        }
    }
    if let Some(d) = p.get("Description") {
        if d.lines().next().unwrap_or("").trim().is_empty() {
            errors.push(FieldError::EmptySynopsis);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::parse_paragraph;

    #[test]
    fn valid_control() {
        let p = parse_paragraph(
            "Package: hello\nVersion: 1:2.10-3\nArchitecture: amd64\nDepends: libc6 (>= 2.34)\nInstalled-Size: 280\nMulti-Arch: foreign\nDescription: hi\n there\n",
        )
        .unwrap();
        assert_eq!(validate_binary_control(&p), Ok(()));
    }

    #[test]
    fn every_problem_is_reported() {
        let p = parse_paragraph(
            "Package: Hello_World\nVersion: v1\nArchitecture: any\nDepends: a (>= ), b\nConflicts: C\nInstalled-Size: -3\nEssential: maybe\nDescription:\n no synopsis\n",
        )
        .unwrap();
        let errors = validate_binary_control(&p).unwrap_err();
        let kinds: Vec<String> = errors
            .iter()
            .map(|e| {
                format!("{e:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Name",
                "Version",
                "Architecture",
                "Relation",
                "Relation",
                "NotANumber",
                "NotAllowed",
                "EmptySynopsis"
            ]
        );
        let missing = validate_binary_control(&parse_paragraph("Package: x1\n").unwrap());
        assert_eq!(
            missing,
            Err(vec![
                FieldError::Missing { field: "Version" },
                FieldError::Missing {
                    field: "Architecture"
                }
            ])
        );
    }
}
