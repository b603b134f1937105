//! Stack policies: which resources an update may modify, replace or delete, in
//! CloudFormation's JSON shape.
//!
//! ```json
//! {"Statement": [
//!   {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
//!   {"Effect": "Deny", "Action": ["Update:Replace", "Update:Delete"], "Principal": "*",
//!    "Resource": "LogicalResourceId/Database"}
//! ]}
//! ```
//!
//! As in CloudFormation: once a stack has a policy, an update action on a resource is
//! allowed only if an `Allow` statement matches it and no `Deny` statement does. `Action`
//! or `NotAction`, `Resource` or `NotResource` (`LogicalResourceId/NAME`, `*` wildcards),
//! and a `Condition` on `ResourceType` (`StringEquals` / `StringLike`) are understood.
//! Adding a resource is never governed by a policy. A replacement that is `Conditional`
//! counts as `Update:Replace`, the cautious reading.
//!
//! Pure: checking a change set against a policy calls nothing.

use serde_json::Value as Json;
use spindle_template::changeset::{Action, ChangeSet, Replacement};

/// What an update does to one resource, as a policy names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateAction {
    Modify,
    Replace,
    Delete,
}

impl UpdateAction {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateAction::Modify => "Update:Modify",
            UpdateAction::Replace => "Update:Replace",
            UpdateAction::Delete => "Update:Delete",
        }
    }
}

/// A policy that failed to parse: `field` is the path in the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stack policy: {field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

fn perr(field: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    allow: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    /// (exact?, patterns) on `ResourceType`; every entry must hold.
    type_conditions: Vec<(bool, Vec<String>)>,
}

/// A parsed stack policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackPolicy {
    statements: Vec<Statement>,
    source: String,
}

/// A change the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub logical_id: String,
    pub action: UpdateAction,
    /// True when a `Deny` statement matched (false: no `Allow` did).
    pub explicit: bool,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} on resource `{}` is {} by the stack policy",
            self.action.as_str(),
            self.logical_id,
            if self.explicit {
                "denied"
            } else {
                "not allowed"
            }
        )
    }
}

fn strings(v: &Json, field: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| {
                x.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| perr(format!("{field}[{i}]"), "expected a string"))
            })
            .collect(),
        _ => Err(perr(field, "expected a string or a list of strings")),
    }
}

const ACTIONS: [&str; 4] = [
    "Update:Modify",
    "Update:Replace",
    "Update:Delete",
    "Update:*",
];

impl StackPolicy {
    /// Parses a policy document (JSON text). Every unknown field or value is an error.
    pub fn parse(text: &str) -> Result<StackPolicy, PolicyError> {
        let doc: Json = serde_json::from_str(text).map_err(|e| {
            perr(
                format!("line {} column {}", e.line(), e.column()),
                format!("not valid JSON: {e}"),
            )
        })?;
        let Json::Object(top) = &doc else {
            return Err(perr("(document)", "expected an object with `Statement`"));
        };
        for k in top.keys() {
            if k != "Statement" && k != "Version" {
                return Err(perr(k, "unknown field (expected `Statement`)"));
            }
        }
        let list = match top.get("Statement") {
            Some(Json::Array(s)) => s.clone(),
            Some(s @ Json::Object(_)) => vec![s.clone()],
            Some(_) => return Err(perr("Statement", "expected a list of statements")),
            None => return Err(perr("Statement", "missing")),
        };
        let statements = list
            .iter()
            .enumerate()
            .map(|(i, s)| statement(s, &format!("Statement[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(StackPolicy {
            statements,
            source: text.to_owned(),
        })
    }

    /// The document it was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first change in `cs` the policy refuses, if any.
    pub fn check(&self, cs: &ChangeSet) -> Option<Denied> {
        cs.changes.iter().find_map(|c| {
            let action = match (c.action, c.replacement) {
                (Action::Add, _) => return None,
                (Action::Remove, _) => UpdateAction::Delete,
                (Action::Modify, Some(Replacement::True | Replacement::Conditional)) => {
                    UpdateAction::Replace
                }
                (Action::Modify, _) => UpdateAction::Modify,
            };
            self.decide(&c.logical_id, &c.type_name, action)
                .err()
                .map(|explicit| Denied {
                    logical_id: c.logical_id.clone(),
                    action,
                    explicit,
                })
        })
    }

    /// `Ok` if allowed; `Err(explicit)` otherwise.
    fn decide(&self, logical_id: &str, type_name: &str, action: UpdateAction) -> Result<(), bool> {
        let matching = |s: &&Statement| s.matches(logical_id, type_name, action);
        if self
            .statements
            .iter()
            .filter(|s| !s.allow)
            .any(|s| matching(&s))
        {
            return Err(true);
        }
        if self
            .statements
            .iter()
            .filter(|s| s.allow)
            .any(|s| matching(&s))
        {
            Ok(())
        } else {
            Err(false)
        }
    }
}

fn statement(v: &Json, at: &str) -> Result<Statement, PolicyError> {
    let Json::Object(m) = v else {
        return Err(perr(at, "expected an object"));
    };
    for k in m.keys() {
        if !matches!(
            k.as_str(),
            "Effect"
                | "Action"
                | "NotAction"
                | "Principal"
                | "Resource"
                | "NotResource"
                | "Condition"
                | "Sid"
        ) {
            return Err(perr(format!("{at}.{k}"), "unknown field"));
        }
    }
    let allow = match m.get("Effect").and_then(Json::as_str) {
        Some("Allow") => true,
        Some("Deny") => false,
        _ => return Err(perr(format!("{at}.Effect"), "expected `Allow` or `Deny`")),
    };
    match m.get("Principal") {
        Some(Json::String(p)) if p == "*" => {}
        _ => {
            return Err(perr(
                format!("{at}.Principal"),
                "must be \"*\" (stack policies apply to every principal)",
            ))
        }
    }
    let (actions, not_action) = one_of(m, at, "Action", "NotAction")?;
    for (i, a) in actions.iter().enumerate() {
        if !ACTIONS.contains(&a.as_str()) {
            return Err(perr(
                format!("{at}.Action[{i}]"),
                format!(
                    "unknown action `{a}` (expected one of {})",
                    ACTIONS.join(", ")
                ),
            ));
        }
    }
    let (resources, not_resource) = one_of(m, at, "Resource", "NotResource")?;
    for (i, r) in resources.iter().enumerate() {
        if r != "*" && !r.starts_with("LogicalResourceId/") {
            return Err(perr(
                format!("{at}.Resource[{i}]"),
                format!("`{r}` is not `*` or `LogicalResourceId/NAME`"),
            ));
        }
    }
    let mut type_conditions = Vec::new();
    if let Some(c) = m.get("Condition") {
        let Json::Object(ops) = c else {
            return Err(perr(format!("{at}.Condition"), "expected an object"));
        };
        for (op, body) in ops {
            let exact = match op.as_str() {
                "StringEquals" => true,
                "StringLike" => false,
                _ => {
                    return Err(perr(
                        format!("{at}.Condition.{op}"),
                        "unknown operator (expected `StringEquals` or `StringLike`)",
                    ))
                }
            };
            let Json::Object(keys) = body else {
                return Err(perr(format!("{at}.Condition.{op}"), "expected an object"));
            };
            for (k, vals) in keys {
                if k != "ResourceType" {
                    return Err(perr(
                        format!("{at}.Condition.{op}.{k}"),
                        "unknown key (expected `ResourceType`)",
                    ));
                }
                type_conditions.push((exact, strings(vals, &format!("{at}.Condition.{op}.{k}"))?));
            }
        }
    }
    Ok(Statement {
        allow,
        actions,
        not_action,
        resources,
        not_resource,
        type_conditions,
    })
}

fn one_of(
    m: &serde_json::Map<String, Json>,
    at: &str,
    key: &str,
    not_key: &str,
) -> Result<(Vec<String>, bool), PolicyError> {
    match (m.get(key), m.get(not_key)) {
        (Some(v), None) => Ok((strings(v, &format!("{at}.{key}"))?, false)),
        (None, Some(v)) => Ok((strings(v, &format!("{at}.{not_key}"))?, true)),
        _ => Err(perr(
            at,
            format!("needs exactly one of `{key}` and `{not_key}`"),
        )),
    }
}

impl Statement {
    fn matches(&self, logical_id: &str, type_name: &str, action: UpdateAction) -> bool {
        let action_hit = self
            .actions
            .iter()
            .any(|a| a == "Update:*" || a == action.as_str());
        let resource = format!("LogicalResourceId/{logical_id}");
        let resource_hit = self.resources.iter().any(|r| glob(r, &resource));
        let type_hit = self.type_conditions.iter().all(|(exact, pats)| {
            pats.iter().any(|p| {
                if *exact {
                    p == type_name
                } else {
                    glob(p, type_name)
                }
            })
        });
        action_hit != self.not_action && resource_hit != self.not_resource && type_hit
    }
}

/// `*` matches any run of characters, `?` one character.
fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_template::changeset::ResourceChange;

    fn change(id: &str, action: Action, replacement: Option<Replacement>) -> ResourceChange {
        ResourceChange {
            logical_id: id.into(),
            type_name: "AWS::SSM::Parameter".into(),
            action,
            replacement,
            physical_id: None,
            details: Vec::new(),
        }
    }

    fn check(policy: &str, c: ResourceChange) -> Option<String> {
        StackPolicy::parse(policy)
            .unwrap()
            .check(&ChangeSet { changes: vec![c] })
            .map(|d| d.to_string())
    }

    const PROTECT_DB: &str = r#"{"Statement":[
        {"Effect":"Allow","Action":"Update:*","Principal":"*","Resource":"*"},
        {"Effect":"Deny","Action":["Update:Replace","Update:Delete"],"Principal":"*",
         "Resource":"LogicalResourceId/Db*"}]}"#;

    #[test]
    fn deny_wins_over_allow_and_wildcards_match() {
        assert_eq!(
            check(
                PROTECT_DB,
                change("Db1", Action::Modify, Some(Replacement::False))
            ),
            None
        );
        assert_eq!(
            check(
                PROTECT_DB,
                change("Db1", Action::Modify, Some(Replacement::Conditional))
            ),
            Some("Update:Replace on resource `Db1` is denied by the stack policy".into())
        );
        assert_eq!(
            check(PROTECT_DB, change("Db1", Action::Remove, None)),
            Some("Update:Delete on resource `Db1` is denied by the stack policy".into())
        );
        assert_eq!(check(PROTECT_DB, change("Web", Action::Remove, None)), None);
        assert_eq!(check(PROTECT_DB, change("Db1", Action::Add, None)), None);
    }

    #[test]
    fn without_an_allow_everything_is_refused() {
        let p = r#"{"Statement":{"Effect":"Allow","Action":"Update:Modify","Principal":"*","NotResource":"LogicalResourceId/Keep"}}"#;
        assert_eq!(
            check(p, change("A", Action::Modify, Some(Replacement::False))),
            None
        );
        assert_eq!(
            check(p, change("Keep", Action::Modify, Some(Replacement::False))),
            Some("Update:Modify on resource `Keep` is not allowed by the stack policy".into())
        );
        assert!(check(p, change("A", Action::Modify, Some(Replacement::True))).is_some());
    }

    #[test]
    fn resource_type_conditions() {
        let p = r#"{"Statement":[
          {"Effect":"Allow","Action":"Update:*","Principal":"*","Resource":"*"},
          {"Effect":"Deny","Action":"Update:*","Principal":"*","Resource":"*",
           "Condition":{"StringLike":{"ResourceType":["AWS::SSM::*"]}}}]}"#;
        assert!(check(p, change("A", Action::Modify, Some(Replacement::False))).is_some());
        let p = p.replace("AWS::SSM::*", "AWS::EC2::*");
        assert!(check(&p, change("A", Action::Modify, Some(Replacement::False))).is_none());
    }

    #[test]
    fn bad_policies_name_the_field() {
        for (text, field) in [
            ("{", "line 1 column 1"),
            (r#"{"Statements":[]}"#, "Statements"),
            (
                r#"{"Statement":[{"Effect":"Maybe"}]}"#,
                "Statement[0].Effect",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"Update:Frob","Resource":"*"}]}"#,
                "Statement[0].Action[0]",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"Update:*","Resource":"arn:x"}]}"#,
                "Statement[0].Resource[0]",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"me","Action":"Update:*","Resource":"*"}]}"#,
                "Statement[0].Principal",
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Resource":"*"}]}"#,
                "Statement[0]",
            ),
        ] {
            let e = StackPolicy::parse(text).unwrap_err();
            assert!(e.field.starts_with(field), "{text}: {e}");
        }
    }
}
