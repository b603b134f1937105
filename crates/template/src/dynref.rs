//! Dynamic references: `{{resolve:SERVICE:…}}` inside any string of a template, resolved at
//! deploy time by the stack engine's hook (never at plan time, so change sets, the journal
//! and events keep the reference text, not the value). This module is the grammar only:
//! finding references in a string, parsing each, and substituting resolved values. Pure.
//!
//! The forms, as AWS documents them:
//! - `{{resolve:ssm:NAME}}`, `{{resolve:ssm:NAME:VERSION}}`
//! - `{{resolve:ssm-secure:NAME}}`, `{{resolve:ssm-secure:NAME:VERSION}}`
//! - `{{resolve:secretsmanager:SECRET-ID[:SecretString[:JSON-KEY[:VERSION-STAGE[:VERSION-ID]]]]}}`,
//!   where `SECRET-ID` is a name or a whole ARN (`arn:aws:secretsmanager:R:A:secret:N-XXXXXX`),
//!   each later part may be empty (`::AWSPREVIOUS`), and a stage and a version id together are
//!   refused, as AWS refuses them.

use std::ops::Range;

use crate::Value;

const OPEN: &str = "{{resolve:";
const CLOSE: &str = "}}";

/// One parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynRef {
    /// `ssm` (`secure: false`) or `ssm-secure`.
    Ssm {
        name: String,
        version: Option<u64>,
        secure: bool,
    },
    SecretsManager {
        /// A secret's name or ARN.
        secret_id: String,
        json_key: Option<String>,
        version_stage: Option<String>,
        version_id: Option<String>,
    },
}

impl DynRef {
    /// The service word as written (`ssm`, `ssm-secure`, `secretsmanager`).
    pub fn service(&self) -> &'static str {
        match self {
            DynRef::Ssm { secure: false, .. } => "ssm",
            DynRef::Ssm { secure: true, .. } => "ssm-secure",
            DynRef::SecretsManager { .. } => "secretsmanager",
        }
    }
}

/// Why a reference's text is not a reference AWS would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynRefError {
    #[error("`{text}` has no closing `}}}}`")]
    Unclosed { text: String },
    #[error("`{text}`: unknown service `{service}`; expected ssm, ssm-secure or secretsmanager")]
    UnknownService { text: String, service: String },
    #[error("`{text}`: {what} is empty")]
    Empty { text: String, what: &'static str },
    #[error("`{text}`: the version `{version}` is not a positive whole number")]
    BadVersion { text: String, version: String },
    #[error("`{text}`: the secret value type `{got}` is not supported; expected SecretString")]
    ValueType { text: String, got: String },
    #[error("`{text}`: give a version stage or a version id, not both")]
    StageAndId { text: String },
    #[error("`{text}`: too many parts after the secret id")]
    TooManyParts { text: String },
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Parses the text between `{{resolve:` and `}}` (`text` is the whole reference, for errors).
fn parse_inner(inner: &str, text: &str) -> Result<DynRef, DynRefError> {
    let t = || text.to_string();
    let (service, rest) = inner.split_once(':').unwrap_or((inner, ""));
    match service {
        "ssm" | "ssm-secure" => {
            // Parameter names never hold `:`, so a trailing `:DIGITS` is the version.
            let (name, version) = match rest.rsplit_once(':') {
                Some((n, v)) => {
                    let ver = v.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                        DynRefError::BadVersion {
                            text: t(),
                            version: v.to_string(),
                        }
                    })?;
                    (n, Some(ver))
                }
                None => (rest, None),
            };
            if name.is_empty() {
                return Err(DynRefError::Empty {
                    text: t(),
                    what: "the parameter name",
                });
            }
            Ok(DynRef::Ssm {
                name: name.to_string(),
                version,
                secure: service == "ssm-secure",
            })
        }
        "secretsmanager" => {
            let parts: Vec<&str> = rest.split(':').collect();
            // An ARN is seven `:`-separated parts; a name is one.
            let id_len = if rest.starts_with("arn:") { 7 } else { 1 };
            if parts.len() < id_len || parts[..id_len].iter().any(|p| p.is_empty()) {
                return Err(DynRefError::Empty {
                    text: t(),
                    what: "the secret id",
                });
            }
            let secret_id = parts[..id_len].join(":");
            let tail = &parts[id_len..];
            if tail.len() > 4 {
                return Err(DynRefError::TooManyParts { text: t() });
            }
            let part = |i: usize| tail.get(i).copied().unwrap_or("");
            if !part(0).is_empty() && part(0) != "SecretString" {
                return Err(DynRefError::ValueType {
                    text: t(),
                    got: part(0).to_string(),
                });
            }
            let (version_stage, version_id) = (non_empty(part(2)), non_empty(part(3)));
            if version_stage.is_some() && version_id.is_some() {
                return Err(DynRefError::StageAndId { text: t() });
            }
            Ok(DynRef::SecretsManager {
                secret_id,
                json_key: non_empty(part(1)),
                version_stage,
                version_id,
            })
        }
        other => Err(DynRefError::UnknownService {
            text: t(),
            service: other.to_string(),
        }),
    }
}

/// One reference found in a string: where it is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub range: Range<usize>,
    pub parsed: Result<DynRef, DynRefError>,
}

/// Every `{{resolve:…}}` in `s`, in order. An unclosed one ends the search.
pub fn find(s: &str) -> Vec<Found> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = s[at..].find(OPEN) {
        let start = at + i;
        let body = start + OPEN.len();
        match s[body..].find(CLOSE) {
            Some(j) => {
                let end = body + j + CLOSE.len();
                let text = &s[start..end];
                out.push(Found {
                    range: start..end,
                    parsed: parse_inner(&s[body..body + j], text),
                });
                at = end;
            }
            None => {
                out.push(Found {
                    range: start..s.len(),
                    parsed: Err(DynRefError::Unclosed {
                        text: s[start..].to_string(),
                    }),
                });
                break;
            }
        }
    }
    out
}

/// Whether `s` holds any dynamic reference (cheap; for skipping values that have none).
pub fn has_reference(s: &str) -> bool {
    s.contains(OPEN)
}

/// `s` with each reference replaced by what `resolve` gives for it; the first error wins
/// (a malformed reference is passed to `bad`, which makes the error).
pub fn substitute<E>(
    s: &str,
    resolve: &mut dyn FnMut(&DynRef) -> Result<String, E>,
    bad: &dyn Fn(DynRefError) -> E,
) -> Result<String, E> {
    let found = find(s);
    if found.is_empty() {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for f in found {
        out.push_str(&s[at..f.range.start]);
        let r = f.parsed.map_err(bad)?;
        out.push_str(&resolve(&r)?);
        at = f.range.end;
    }
    out.push_str(&s[at..]);
    Ok(out)
}

/// Every string inside `v` (map keys excluded), mutably, with its path below `path`
/// (`UserData`, `Tags[0].Value`).
pub fn visit_strings<E>(
    v: &mut Value,
    path: &str,
    f: &mut dyn FnMut(&str, &mut String) -> Result<(), E>,
) -> Result<(), E> {
    match v {
        Value::String(s) => f(path, s),
        Value::List(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                visit_strings(item, &format!("{path}[{i}]"), f)?;
            }
            Ok(())
        }
        Value::Map(m) => {
            for (k, item) in m.iter_mut() {
                visit_strings(item, &format!("{path}.{k}"), f)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssm(name: &str, version: Option<u64>, secure: bool) -> Result<DynRef, DynRefError> {
        Ok(DynRef::Ssm {
            name: name.into(),
            version,
            secure,
        })
    }

    fn sm(
        id: &str,
        key: Option<&str>,
        stage: Option<&str>,
        vid: Option<&str>,
    ) -> Result<DynRef, DynRefError> {
        Ok(DynRef::SecretsManager {
            secret_id: id.into(),
            json_key: key.map(Into::into),
            version_stage: stage.map(Into::into),
            version_id: vid.map(Into::into),
        })
    }

    #[test]
    fn the_reference_grammar_table() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";
        let cases: Vec<(String, Result<DynRef, DynRefError>)> = vec![
            (
                "{{resolve:ssm:/app/url}}".into(),
                ssm("/app/url", None, false),
            ),
            ("{{resolve:ssm:name:3}}".into(), ssm("name", Some(3), false)),
            (
                "{{resolve:ssm-secure:/db/pw:12}}".into(),
                ssm("/db/pw", Some(12), true),
            ),
            ("{{resolve:ssm-secure:pw}}".into(), ssm("pw", None, true)),
            (
                "{{resolve:secretsmanager:db}}".into(),
                sm("db", None, None, None),
            ),
            (
                "{{resolve:secretsmanager:db:SecretString:password}}".into(),
                sm("db", Some("password"), None, None),
            ),
            (
                "{{resolve:secretsmanager:db:SecretString:password:AWSPREVIOUS}}".into(),
                sm("db", Some("password"), Some("AWSPREVIOUS"), None),
            ),
            (
                "{{resolve:secretsmanager:db:SecretString:::v-1}}".into(),
                sm("db", None, None, Some("v-1")),
            ),
            (
                "{{resolve:secretsmanager:db:SecretString::AWSCURRENT}}".into(),
                sm("db", None, Some("AWSCURRENT"), None),
            ),
            (
                format!("{{{{resolve:secretsmanager:{arn}}}}}"),
                sm(arn, None, None, None),
            ),
            (
                format!("{{{{resolve:secretsmanager:{arn}:SecretString:username}}}}"),
                sm(arn, Some("username"), None, None),
            ),
            (
                "{{resolve:ssm:name:zero}}".into(),
                Err(DynRefError::BadVersion {
                    text: "{{resolve:ssm:name:zero}}".into(),
                    version: "zero".into(),
                }),
            ),
            (
                "{{resolve:ssm:n:0}}".into(),
                Err(DynRefError::BadVersion {
                    text: "{{resolve:ssm:n:0}}".into(),
                    version: "0".into(),
                }),
            ),
            (
                "{{resolve:ssm:}}".into(),
                Err(DynRefError::Empty {
                    text: "{{resolve:ssm:}}".into(),
                    what: "the parameter name",
                }),
            ),
            (
                "{{resolve:vault:x}}".into(),
                Err(DynRefError::UnknownService {
                    text: "{{resolve:vault:x}}".into(),
                    service: "vault".into(),
                }),
            ),
            (
                "{{resolve:secretsmanager:db:SecretBinary}}".into(),
                Err(DynRefError::ValueType {
                    text: "{{resolve:secretsmanager:db:SecretBinary}}".into(),
                    got: "SecretBinary".into(),
                }),
            ),
            (
                "{{resolve:secretsmanager:db:SecretString:k:AWSCURRENT:v1}}".into(),
                Err(DynRefError::StageAndId {
                    text: "{{resolve:secretsmanager:db:SecretString:k:AWSCURRENT:v1}}".into(),
                }),
            ),
            (
                "{{resolve:secretsmanager:db:SecretString:k:::x}}".into(),
                Err(DynRefError::TooManyParts {
                    text: "{{resolve:secretsmanager:db:SecretString:k:::x}}".into(),
                }),
            ),
            (
                "{{resolve:secretsmanager:arn:aws:secretsmanager}}".into(),
                Err(DynRefError::Empty {
                    text: "{{resolve:secretsmanager:arn:aws:secretsmanager}}".into(),
                    what: "the secret id",
                }),
            ),
            (
                "{{resolve:ssm:x".into(),
                Err(DynRefError::Unclosed {
                    text: "{{resolve:ssm:x".into(),
                }),
            ),
        ];
        for (text, want) in cases {
            let found = find(&text);
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].range, 0..text.len(), "{text}");
            assert_eq!(found[0].parsed, want, "{text}");
        }
    }

    #[test]
    fn substitution_keeps_the_text_around_each_reference() {
        let s = "a={{resolve:ssm:a}} b={{resolve:secretsmanager:s:SecretString:k}}.";
        let mut seen = Vec::new();
        let out = substitute::<String>(
            s,
            &mut |r| {
                seen.push(r.service());
                Ok(format!("<{}>", r.service()))
            },
            &|e| e.to_string(),
        )
        .unwrap();
        assert_eq!(out, "a=<ssm> b=<secretsmanager>.");
        assert_eq!(seen, ["ssm", "secretsmanager"]);
        assert_eq!(
            substitute::<String>("plain {{ not }}", &mut |_| panic!(), &|e| e.to_string()).unwrap(),
            "plain {{ not }}"
        );
        let err = substitute::<String>("{{resolve:x:y}}", &mut |_| Ok(String::new()), &|e| {
            e.to_string()
        })
        .unwrap_err();
        assert!(err.contains("unknown service `x`"), "{err}");
        assert!(has_reference(s) && !has_reference("{{resolve"));
    }

    #[test]
    fn strings_are_visited_with_their_paths() {
        let mut v = Value::Map(
            [
                ("A".to_string(), Value::str("x")),
                (
                    "B".to_string(),
                    Value::List(vec![Value::Number("1".into()), Value::str("y")]),
                ),
            ]
            .into_iter()
            .collect(),
        );
        let mut paths = Vec::new();
        visit_strings::<()>(&mut v, "P", &mut |p, s| {
            paths.push(p.to_string());
            s.push('!');
            Ok(())
        })
        .unwrap();
        assert_eq!(paths, ["P.A", "P.B[1]"]);
        assert_eq!(v.to_json_string(), r#"{"A":"x!","B":[1,"y!"]}"#);
    }
}
