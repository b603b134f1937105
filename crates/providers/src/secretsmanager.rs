//! `AWS::SecretsManager::{Secret, SecretTargetAttachment}` on the secrets engine
//! (`spindle-secrets`).
//!
//! | Type | `Ref` | `Fn::GetAtt` | Changes in place |
//! |---|---|---|---|
//! | `Secret` | its ARN (`arn:aws:secretsmanager:R:A:secret:NAME-XXXXXX`) | `Id` (the ARN) | `Description`, `KmsKeyId`, `Tags`; a new `SecretString` or `GenerateSecretString` puts a new version (`AWSCURRENT`) |
//! | `SecretTargetAttachment` | the secret's ARN | — | everything (merges again) |
//!
//! The value never leaves the engine through a provider: outputs, attributes and what `read`
//! reports carry the ARN only, and the engine keeps values sealed. A literal `SecretString`
//! is sealed in the stack's journal too (`spindle_template::plan::ALWAYS_SENSITIVE`).
//! `KmsKeyId` is accepted and recorded with no effect: values are sealed with the daemon's
//! own key, not a KMS key. Without `Name`, the name is `LogicalId-` and 12 characters
//! derived from the operation's token, so a create repeated after a crash finds its secret.
//!
//! `SecretTargetAttachment` merges the target's connection details (`host`, `port`,
//! `engine`, `dbname`, …) into the secret's JSON value as a new version. Which target types
//! exist is up to [`SecretTargets`] (the database providers plug theirs in); any other
//! `TargetType` is refused by name.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};
use spindle_model::AccountId;
use spindle_secrets::{NewSecret, Rules, Secrets, SecretsError, ValueSource};
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput,
    ProviderRegistry, ReadOutput, ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

use crate::props::{Props, Shape};
use crate::Kind;

const SECRET: Shape = Shape {
    type_name: "AWS::SecretsManager::Secret",
    used: &[
        "Name",
        "Description",
        "SecretString",
        "GenerateSecretString",
        "KmsKeyId",
        "Tags",
    ],
    ignored: &[],
    hints: &[(
        "ReplicaRegions",
        "Spindle runs one region; there is nowhere to replicate to",
    )],
};

const GENERATE: Shape = Shape {
    type_name: "AWS::SecretsManager::Secret",
    used: &[
        "PasswordLength",
        "ExcludeCharacters",
        "ExcludeLowercase",
        "ExcludeUppercase",
        "ExcludeNumbers",
        "ExcludePunctuation",
        "IncludeSpace",
        "RequireEachIncludedType",
        "SecretStringTemplate",
        "GenerateStringKey",
    ],
    ignored: &[],
    hints: &[],
};

const ATTACHMENT: Shape = Shape {
    type_name: "AWS::SecretsManager::SecretTargetAttachment",
    used: &["SecretId", "TargetId", "TargetType"],
    ignored: &[],
    hints: &[],
};

/// The connection details of a secret's target (a database).
pub trait SecretTargets: Send + Sync {
    /// The fields to merge into the secret for target `id` of `target_type`: `None` when
    /// this installation has no such target type.
    fn fields(
        &self,
        account: &AccountId,
        target_type: &str,
        id: &str,
    ) -> Option<Result<BTreeMap<String, serde_json::Value>, String>>;
}

/// A secret's properties, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretSpec {
    pub name: Option<String>,
    pub description: String,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub value: ValueSource,
}

fn invalid(shape: &Shape, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::InvalidRequest(format!("{}: {e}", shape.type_name))
}

fn opt_bool(shape: &Shape, p: &Props, key: &str) -> Result<Option<bool>, ProviderError> {
    match shape.opt_str(p, key).map_err(ProviderError::from)? {
        None => Ok(None),
        Some(s) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(s) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(s) => Err(invalid(
            shape,
            format!("GenerateSecretString.{key} must be true or false, got {s}"),
        )),
    }
}

fn rules(p: &Props) -> Result<Rules, ProviderError> {
    let g = &GENERATE;
    if let Some(e) = g.check(p).into_iter().next() {
        return Err(ProviderError::from(e));
    }
    let mut r = Rules::default();
    if let Some(n) = g
        .opt_int(p, "PasswordLength")
        .map_err(ProviderError::from)?
    {
        r.length = usize::try_from(n).unwrap_or(0);
    }
    r.exclude_characters = g
        .opt_str(p, "ExcludeCharacters")
        .map_err(ProviderError::from)?
        .unwrap_or_default();
    let flags: [(&str, &mut bool); 6] = [
        ("ExcludeLowercase", &mut r.exclude_lowercase),
        ("ExcludeUppercase", &mut r.exclude_uppercase),
        ("ExcludeNumbers", &mut r.exclude_numbers),
        ("ExcludePunctuation", &mut r.exclude_punctuation),
        ("IncludeSpace", &mut r.include_space),
        ("RequireEachIncludedType", &mut r.require_each_included_type),
    ];
    for (key, slot) in flags {
        if let Some(b) = opt_bool(g, p, key)? {
            *slot = b;
        }
    }
    let template = g
        .opt_str(p, "SecretStringTemplate")
        .map_err(ProviderError::from)?;
    let key = g
        .opt_str(p, "GenerateStringKey")
        .map_err(ProviderError::from)?;
    r.template = match (template, key) {
        (None, None) => None,
        (Some(t), Some(k)) => {
            let v: serde_json::Value = serde_json::from_str(&t).map_err(|e| {
                invalid(
                    g,
                    format!("GenerateSecretString.SecretStringTemplate is not JSON: {e}"),
                )
            })?;
            let serde_json::Value::Object(map) = v else {
                return Err(invalid(
                    g,
                    "GenerateSecretString.SecretStringTemplate must be a JSON object",
                ));
            };
            Some((map, k))
        }
        _ => {
            return Err(invalid(
                g,
                "GenerateSecretString: SecretStringTemplate and GenerateStringKey go together; give both or neither",
            ))
        }
    };
    r.check()
        .map_err(|e| invalid(g, format!("GenerateSecretString: {e}")))?;
    Ok(r)
}

pub(crate) fn secret_spec(p: &Props) -> Result<SecretSpec, ProviderError> {
    let s = &SECRET;
    if let Some(e) = s.check(p).into_iter().next() {
        return Err(ProviderError::from(e));
    }
    let given = s.opt_str(p, "SecretString").map_err(ProviderError::from)?;
    let value = match (given, p.get("GenerateSecretString")) {
        (Some(_), Some(Value::Map(_))) => {
            return Err(invalid(
                s,
                "SecretString and GenerateSecretString: give one, not both",
            ))
        }
        (Some(v), _) => ValueSource::Given(v),
        (None, Some(Value::Map(m))) => ValueSource::Generate(rules(m)?),
        (None, Some(Value::Null | Value::NoValue) | None) => {
            // AWS generates a 32-character password when neither is given.
            ValueSource::Generate(Rules::default())
        }
        (None, Some(other)) => {
            return Err(invalid(
                s,
                format!("GenerateSecretString must be a map, got {other}"),
            ))
        }
    };
    let name = s.opt_str(p, "Name").map_err(ProviderError::from)?;
    if let Some(n) = &name {
        spindle_secrets::check_name(n).map_err(|e| invalid(s, e))?;
    }
    Ok(SecretSpec {
        name,
        description: s
            .opt_str(p, "Description")
            .map_err(ProviderError::from)?
            .unwrap_or_default(),
        kms_key_id: s.opt_str(p, "KmsKeyId").map_err(ProviderError::from)?,
        tags: s.tags(p, "Tags").map_err(ProviderError::from)?,
        value,
    })
}

/// The secrets and the providers over them.
pub struct SecretsManager {
    secrets: Arc<Secrets>,
    targets: OnceLock<Arc<dyn SecretTargets>>,
}

impl std::fmt::Debug for SecretsManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsManager").finish_non_exhaustive()
    }
}

fn engine_err(e: SecretsError) -> ProviderError {
    match e {
        SecretsError::NotFound(id) => ProviderError::NotFound(format!("secret `{id}`")),
        SecretsError::Exists(n) => ProviderError::AlreadyExists(format!("secret `{n}`")),
        SecretsError::Backend(_) | SecretsError::Unseal { .. } => {
            ProviderError::Failed(e.to_string())
        }
        other => ProviderError::InvalidRequest(other.to_string()),
    }
}

fn output(arn: &str) -> ProviderOutput {
    ProviderOutput {
        physical_id: arn.to_string(),
        attributes: [("Id".to_string(), Value::str(arn))].into_iter().collect(),
    }
}

impl SecretsManager {
    pub fn new(secrets: Arc<Secrets>) -> Arc<Self> {
        Arc::new(SecretsManager {
            secrets,
            targets: OnceLock::new(),
        })
    }

    pub fn secrets(&self) -> &Arc<Secrets> {
        &self.secrets
    }

    /// Target types of `SecretTargetAttachment` come from `targets`.
    pub fn set_targets(&self, targets: Arc<dyn SecretTargets>) {
        let _ = self.targets.set(targets);
    }

    pub fn register(self: &Arc<Self>, registry: &mut ProviderRegistry) {
        for kind in crate::kind::kinds_of(crate::Group::SecretsManager) {
            registry.register(
                kind.type_name(),
                Arc::new(SecretsProvider {
                    sm: self.clone(),
                    kind,
                }),
            );
        }
    }

    fn create_secret(
        &self,
        cx: &ResourceCx<'_>,
        p: &Props,
    ) -> Result<ProviderOutput, ProviderError> {
        let spec = secret_spec(p)?;
        let account = cx.account()?;
        let name = spec.name.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                cx.logical_id,
                &hex::encode(Sha256::digest(crate::scoped_token(cx).as_bytes()))[..12]
            )
        });
        let info = self
            .secrets
            .create(
                &account,
                NewSecret {
                    name,
                    description: spec.description,
                    kms_key_id: spec.kms_key_id,
                    tags: spec.tags,
                    value: spec.value,
                    token: Some(crate::scoped_token(cx)),
                },
            )
            .map_err(engine_err)?;
        Ok(output(&info.arn))
    }

    fn update_secret(&self, req: &UpdateRequest<'_>) -> Result<ProviderOutput, ProviderError> {
        let spec = secret_spec(&req.properties)?;
        let account = req.cx.account()?;
        let value_changed = req
            .changed
            .iter()
            .any(|k| k == "SecretString" || k == "GenerateSecretString");
        let info = self
            .secrets
            .update(
                &account,
                &req.physical_id,
                &spec.description,
                spec.kms_key_id,
                spec.tags,
                value_changed.then_some(spec.value),
            )
            .map_err(engine_err)?;
        Ok(output(&info.arn))
    }

    fn attach(&self, cx: &ResourceCx<'_>, p: &Props) -> Result<ProviderOutput, ProviderError> {
        let a = &ATTACHMENT;
        if let Some(e) = a.check(p).into_iter().next() {
            return Err(ProviderError::from(e));
        }
        let secret_id = a.req_str(p, "SecretId").map_err(ProviderError::from)?;
        let target_id = a.req_str(p, "TargetId").map_err(ProviderError::from)?;
        let target_type = a.req_str(p, "TargetType").map_err(ProviderError::from)?;
        let account = cx.account()?;
        let fields = match self
            .targets
            .get()
            .and_then(|t| t.fields(&account, &target_type, &target_id))
        {
            None => {
                return Err(invalid(
                    a,
                    format!(
                        "TargetType: unsupported target type `{target_type}`; this installation has no provider for it yet"
                    ),
                ))
            }
            Some(r) => r.map_err(|e| invalid(a, format!("TargetId `{target_id}`: {e}")))?,
        };
        let info = self
            .secrets
            .describe(&account, &secret_id)
            .map_err(engine_err)?;
        self.secrets
            .merge_fields(&account, &info.arn, &fields)
            .map_err(engine_err)?;
        Ok(ProviderOutput {
            physical_id: info.arn,
            attributes: BTreeMap::new(),
        })
    }
}

struct SecretsProvider {
    sm: Arc<SecretsManager>,
    kind: Kind,
}

impl Provider for SecretsProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            match self.kind {
                Kind::Secret => self.sm.create_secret(&req.cx, &req.properties),
                _ => self.sm.attach(&req.cx, &req.properties),
            }
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            match self.kind {
                Kind::Secret => self.sm.update_secret(&req),
                _ => self.sm.attach(&req.cx, &req.properties),
            }
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            if self.kind != Kind::Secret {
                // The merged fields stay in the secret's value, as on AWS.
                return Ok(());
            }
            let account = req.cx.account()?;
            self.sm
                .secrets
                .delete(&account, &req.physical_id)
                .map(|_| ())
                .map_err(engine_err)
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let account = req.cx.account()?;
            if self.kind != Kind::Secret {
                // An attachment is its secret: it exists while the secret does.
                let id = match &req.physical_id {
                    Some(id) => id.clone(),
                    None => match req
                        .properties
                        .get("SecretId")
                        .and_then(Value::scalar_string)
                    {
                        Some(id) => id,
                        None => return Ok(None),
                    },
                };
                return match self.sm.secrets.describe(&account, &id) {
                    Ok(info) => Ok(Some(ReadOutput {
                        physical_id: info.arn,
                        properties: req.properties.clone(),
                        attributes: BTreeMap::new(),
                    })),
                    Err(SecretsError::NotFound(_)) => Ok(None),
                    Err(e) => Err(engine_err(e)),
                };
            }
            let info = match &req.physical_id {
                Some(id) => match self.sm.secrets.describe(&account, id) {
                    Ok(i) => i,
                    Err(SecretsError::NotFound(_)) => return Ok(None),
                    Err(e) => return Err(engine_err(e)),
                },
                None => match self
                    .sm
                    .secrets
                    .by_token(&account, &crate::scoped_token(&req.cx))
                {
                    Some(i) => i,
                    None => return Ok(None),
                },
            };
            // What can be compared without the value: the value's properties are reported
            // as given, so drift never shows (or needs) a value.
            let mut properties = req.properties.clone();
            if properties.contains_key("Description") {
                properties.insert("Description".into(), Value::str(&info.description));
            }
            Ok(Some(ReadOutput {
                physical_id: info.arn.clone(),
                properties,
                attributes: output(&info.arn).attributes,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(json: &str) -> Props {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        match Value::from_json(&v) {
            Value::Map(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn secret_properties_parse_or_name_the_problem() {
        let ok = secret_spec(&props(
            r#"{"Name":"db/master","Description":"d","KmsKeyId":"alias/x",
                "GenerateSecretString":{"PasswordLength":"20","ExcludePunctuation":true,
                  "SecretStringTemplate":"{\"username\":\"admin\"}","GenerateStringKey":"password"}}"#,
        ))
        .unwrap();
        assert_eq!(ok.name.as_deref(), Some("db/master"));
        assert_eq!(ok.kms_key_id.as_deref(), Some("alias/x"));
        let ValueSource::Generate(r) = ok.value else {
            panic!()
        };
        assert_eq!(r.length, 20);
        assert!(r.exclude_punctuation && r.template.is_some());

        let cases = [
            (
                r#"{"SecretString":"a","GenerateSecretString":{}}"#,
                "give one, not both",
            ),
            (
                r#"{"GenerateSecretString":{"PasswordLenght":3}}"#,
                "did you mean `PasswordLength`",
            ),
            (
                r#"{"GenerateSecretString":{"GenerateStringKey":"p"}}"#,
                "give both or neither",
            ),
            (
                r#"{"GenerateSecretString":{"SecretStringTemplate":"[1]","GenerateStringKey":"p"}}"#,
                "must be a JSON object",
            ),
            (
                r#"{"GenerateSecretString":{"PasswordLength":0}}"#,
                "PasswordLength must be 1 to 4096",
            ),
            (
                r#"{"GenerateSecretString":{"IncludeSpace":"maybe"}}"#,
                "IncludeSpace must be true or false",
            ),
            (r#"{"Name":"a b"}"#, "Name `a b`: may only contain"),
            (r#"{"ReplicaRegions":[]}"#, "one region"),
        ];
        for (json, want) in cases {
            let e = secret_spec(&props(json)).unwrap_err().to_string();
            assert!(e.contains(want), "{json}: {e}");
        }
        assert_eq!(
            secret_spec(&props("{}")).unwrap().value,
            ValueSource::Generate(Rules::default())
        );
    }
}
