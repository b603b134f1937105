//! Dynamic references at deploy time. The plan, the change set, the journal and events keep
//! a property's text (`{{resolve:ssm-secure:/db/pw}}`); only the request a provider gets
//! carries the value, resolved here just before each call through the [`References`] the
//! daemon plugs in ([`crate::Engine::set_references`]). Attributes a provider returns are
//! scrubbed of any resolved value (replaced by its reference text) before they are
//! recorded, so a provider that echoes a property back can't put the value in the journal.

use std::collections::BTreeMap;

use spindle_model::AccountId;
use spindle_template::dynref::{self, DynRef};
use spindle_template::{Context, Value};

use crate::provider::ProviderError;

/// Answers dynamic references for one installation.
pub trait References: Send + Sync {
    /// The value `r` names in `account`; the error says what is missing (never a value).
    fn resolve(&self, account: &AccountId, r: &DynRef) -> Result<String, String>;
}

/// A resolved value and the reference text it came from.
pub(crate) type Revealed = Vec<(String, String)>;

/// `props` with every reference resolved, and what was revealed. The error names the
/// property path and the reference text.
pub(crate) fn resolve_properties(
    refs: &dyn References,
    context: &Context,
    props: &BTreeMap<String, Value>,
    revealed: &mut Revealed,
) -> Result<BTreeMap<String, Value>, ProviderError> {
    let mut out = props.clone();
    let mut account = None;
    for (k, v) in out.iter_mut() {
        dynref::visit_strings(v, k, &mut |path, s| {
            if !dynref::has_reference(s) {
                return Ok(());
            }
            let acct = match &account {
                Some(a) => a,
                None => account.insert(
                    AccountId::parse(&context.account_id)
                        .map_err(|e| ProviderError::Failed(format!("the stack's account: {e}")))?,
                ),
            };
            let original = s.clone();
            let mut found: Revealed = Vec::new();
            let resolved = dynref::substitute(
                &original,
                &mut |r| {
                    let value = refs.resolve(acct, r)?;
                    found.push((value.clone(), reference_text(r)));
                    Ok(value)
                },
                &|e| e.to_string(),
            )
            .map_err(|e| {
                ProviderError::InvalidRequest(format!("Properties.{path}: dynamic reference: {e}"))
            })?;
            revealed.extend(found);
            *s = resolved;
            Ok(())
        })?;
    }
    Ok(out)
}

type Props = BTreeMap<String, Value>;

/// A call's properties and previous properties with dynamic references resolved (as written
/// without `refs`). A delete gets them as written when they no longer resolve: what they
/// named may be gone, and that must not keep a resource from being deleted.
pub(crate) fn for_call(
    refs: Option<&std::sync::Arc<dyn References>>,
    context: &Context,
    (properties, previous): (&Props, &Props),
    delete: bool,
    revealed: &mut Revealed,
) -> Result<(Props, Props), ProviderError> {
    let Some(refs) = refs else {
        return Ok((properties.clone(), previous.clone()));
    };
    let now = match resolve_properties(&**refs, context, properties, revealed) {
        Err(_) if delete => properties.clone(),
        other => other?,
    };
    let before = resolve_properties(&**refs, context, previous, revealed)
        .unwrap_or_else(|_| previous.clone());
    Ok((now, before))
}

/// The reference as AWS writes it (for scrubbing; the exact spelling in the template may
/// differ in optional parts, which is fine: it names the same thing).
fn reference_text(r: &DynRef) -> String {
    match r {
        DynRef::Ssm { name, version, .. } => match version {
            Some(v) => format!("{{{{resolve:{}:{name}:{v}}}}}", r.service()),
            None => format!("{{{{resolve:{}:{name}}}}}", r.service()),
        },
        DynRef::SecretsManager {
            secret_id,
            json_key,
            version_stage,
            version_id,
        } => format!(
            "{{{{resolve:secretsmanager:{secret_id}:SecretString:{}:{}:{}}}}}",
            json_key.as_deref().unwrap_or(""),
            version_stage.as_deref().unwrap_or(""),
            version_id.as_deref().unwrap_or("")
        ),
    }
}

/// Replaces every revealed value inside `attributes`' strings by its reference text.
pub(crate) fn scrub(attributes: &mut BTreeMap<String, Value>, revealed: &Revealed) {
    if revealed.is_empty() {
        return;
    }
    for (k, v) in attributes.iter_mut() {
        let _ = dynref::visit_strings::<()>(v, k, &mut |_, s| {
            scrub_text(s, revealed);
            Ok(())
        });
    }
}

/// Puts the reference text back wherever a resolved value appears in `s`.
pub(crate) fn scrub_text(s: &mut String, revealed: &Revealed) {
    for (value, text) in revealed {
        if !value.is_empty() && s.contains(value.as_str()) {
            *s = s.replace(value.as_str(), text);
        }
    }
}

/// A provider's error with resolved values put back to their references: its message goes to
/// the stack's events and status reason, which never hold a resolved value.
pub(crate) fn scrub_error(e: ProviderError, revealed: &Revealed) -> ProviderError {
    let fix = |mut s: String| {
        scrub_text(&mut s, revealed);
        s
    };
    match e {
        ProviderError::InvalidRequest(s) => ProviderError::InvalidRequest(fix(s)),
        ProviderError::AlreadyExists(s) => ProviderError::AlreadyExists(fix(s)),
        ProviderError::NotFound(s) => ProviderError::NotFound(fix(s)),
        ProviderError::Failed(s) => ProviderError::Failed(fix(s)),
        other @ ProviderError::NotSupported { .. } => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl References for Fixed {
        fn resolve(&self, _: &AccountId, r: &DynRef) -> Result<String, String> {
            match r {
                DynRef::Ssm { name, .. } if name == "/app/url" => Ok("http://x".into()),
                DynRef::SecretsManager { json_key, .. } => {
                    Ok(format!("pw-{}", json_key.as_deref().unwrap_or("all")))
                }
                other => Err(format!(
                    "parameter `{}` not found",
                    match other {
                        DynRef::Ssm { name, .. } => name.as_str(),
                        _ => "",
                    }
                )),
            }
        }
    }

    fn context() -> Context {
        Context {
            account_id: "123456789012".into(),
            ..Context::default()
        }
    }

    #[test]
    fn references_resolve_for_the_call_and_are_scrubbed_from_attributes() {
        let props: BTreeMap<String, Value> = [
            (
                "UserData".to_string(),
                Value::str("url={{resolve:ssm:/app/url}} pw={{resolve:secretsmanager:db:SecretString:password}}"),
            ),
            ("Plain".to_string(), Value::str("nothing")),
        ]
        .into_iter()
        .collect();
        let mut revealed = Vec::new();
        let out = resolve_properties(&Fixed, &context(), &props, &mut revealed).unwrap();
        assert_eq!(out["UserData"], Value::str("url=http://x pw=pw-password"));
        assert_eq!(out["Plain"], Value::str("nothing"));
        let mut attrs: BTreeMap<String, Value> =
            [("Echo".to_string(), Value::str("pw=pw-password"))]
                .into_iter()
                .collect();
        scrub(&mut attrs, &revealed);
        assert_eq!(
            attrs["Echo"],
            Value::str("pw={{resolve:secretsmanager:db:SecretString:password::}}")
        );

        // A provider's refusal that echoes a resolved value says the reference instead.
        let e = scrub_error(
            ProviderError::InvalidRequest(
                "MasterUsername `pw-password` must begin with a letter".into(),
            ),
            &revealed,
        );
        assert_eq!(
            e.to_string(),
            "invalid request: MasterUsername `{{resolve:secretsmanager:db:SecretString:password::}}` must begin with a letter"
        );

        let missing: BTreeMap<String, Value> = [(
            "Tags".to_string(),
            Value::List(vec![Value::str("{{resolve:ssm:/nope}}")]),
        )]
        .into_iter()
        .collect();
        let e = resolve_properties(&Fixed, &context(), &missing, &mut Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid request: Properties.Tags[0]: dynamic reference: parameter `/nope` not found"
        );
    }
}
