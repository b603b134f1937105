//! # spindle-secrets: Secrets Manager's engine
//!
//! Secrets of every account, each with its versions and staging labels (`AWSCURRENT`,
//! `AWSPREVIOUS`), kept as one state document ([`StateDoc`]; the daemon's is the
//! `secretsmanager` row of `state.db`) that holds every value **sealed** by a [`Seal`] the
//! daemon provides (its AES-256-GCM sealer, key outside the database). Nothing here returns a
//! value except [`Secrets::get_value`]; lists and descriptions carry ids, names and stages.
//!
//! - [`generate::Rules`]: `GenerateSecretString` and generation from the OS CSPRNG; a secret
//!   keeps its rules, so [`Secrets::rotate`] generates by them.
//! - [`Secrets::put_value`]: a new version takes `AWSCURRENT`; the old current one becomes
//!   `AWSPREVIOUS` (the one before loses its label). Versions without a label beyond the last
//!   [`KEEP_UNLABELED`] are dropped.
//! - Every change saves the whole document before it is visible, so a failed save changes
//!   nothing.

pub mod generate;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use serde::{Deserialize, Serialize};
use spindle_model::AccountId;
use spindle_runtime::StateDoc;

pub use generate::{Rules, RulesError};

/// The name of the state document.
pub const SECRETS_DOC: &str = "secretsmanager";
pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";
/// How many versions without a staging label a secret keeps.
pub const KEEP_UNLABELED: usize = 5;
/// AWS's limit on a secret value.
pub const MAX_VALUE_BYTES: usize = 65_536;

/// Seals values at rest (the daemon's sealer).
pub trait Seal: Send + Sync {
    fn seal(&self, plain: &str) -> String;
    fn open(&self, sealed: &str) -> Result<String, String>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("secret `{0}` not found")]
    NotFound(String),
    #[error("secret `{0}` already exists")]
    Exists(String),
    #[error("secret `{secret}` has no version {what}")]
    NoVersion { secret: String, what: String },
    #[error("Name `{name}`: {why}")]
    BadName { name: String, why: &'static str },
    #[error("the secret value must be 1 to 65536 bytes, got {0}")]
    BadValue(usize),
    #[error("GenerateSecretString: {0}")]
    Rules(#[from] RulesError),
    #[error("secret `{0}` has no generation rules (it was given a SecretString): put a new value instead")]
    NoRules(String),
    #[error(
        "secret `{secret}`: its value is not a JSON object, so {what} can't be merged into it"
    )]
    NotJson { secret: String, what: String },
    #[error("secret `{secret}`: the stored value can't be opened: {why}")]
    Unseal { secret: String, why: String },
    #[error("secrets store: {0}")]
    Backend(String),
}

/// One version of a secret, its value sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct VersionRecord {
    id: String,
    sealed: String,
    stages: Vec<String>,
    created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SecretRecord {
    name: String,
    arn: String,
    description: String,
    kms_key_id: Option<String>,
    tags: BTreeMap<String, String>,
    rules: Option<Rules>,
    /// The stack operation's token that created it (`None`: made through the API).
    token: Option<String>,
    created: i64,
    versions: Vec<VersionRecord>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Doc {
    /// account → name → secret.
    accounts: BTreeMap<String, BTreeMap<String, SecretRecord>>,
}

/// A version as shown: no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub id: String,
    pub stages: Vec<String>,
    pub created: i64,
}

/// A secret as shown: no value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    pub arn: String,
    pub description: String,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Whether it has generation rules (`rotate` works).
    pub generated: bool,
    pub created: i64,
    pub versions: Vec<VersionInfo>,
    pub token: Option<String>,
}

impl SecretRecord {
    fn info(&self) -> SecretInfo {
        SecretInfo {
            name: self.name.clone(),
            arn: self.arn.clone(),
            description: self.description.clone(),
            kms_key_id: self.kms_key_id.clone(),
            tags: self.tags.clone(),
            generated: self.rules.is_some(),
            created: self.created,
            versions: self
                .versions
                .iter()
                .map(|v| VersionInfo {
                    id: v.id.clone(),
                    stages: v.stages.clone(),
                    created: v.created,
                })
                .collect(),
            token: self.token.clone(),
        }
    }
}

/// What a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    Given(String),
    Generate(Rules),
}

/// A secret to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSecret {
    pub name: String,
    pub description: String,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub value: ValueSource,
    pub token: Option<String>,
}

/// What to read: a version id, or a stage (default `AWSCURRENT`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Select {
    pub version_id: Option<String>,
    pub stage: Option<String>,
}

/// The secrets of one installation.
pub struct Secrets {
    doc: Option<Arc<dyn StateDoc>>,
    seal: Arc<dyn Seal>,
    region: String,
    state: Mutex<Doc>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("doc", &self.doc)
            .finish_non_exhaustive()
    }
}

/// Checks a secret's name as AWS does: 1-512 of letters, digits and `/_+=.@-`.
pub fn check_name(name: &str) -> Result<(), SecretsError> {
    let bad = |why| {
        Err(SecretsError::BadName {
            name: name.to_string(),
            why,
        })
    };
    if name.is_empty() || name.len() > 512 {
        return bad("must be 1 to 512 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))
    {
        return bad("may only contain letters, digits and / _ + = . @ -");
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), SecretsError> {
    if v.is_empty() || v.len() > MAX_VALUE_BYTES {
        return Err(SecretsError::BadValue(v.len()));
    }
    Ok(())
}

fn random_alnum(n: usize) -> String {
    const A: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| A[rng.gen_range(0..A.len())] as char)
        .collect()
}

/// A version id shaped like AWS's (a UUID).
fn version_id() -> String {
    let b: [u8; 16] = rand::rngs::OsRng.gen();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Merges `fields` into the JSON object `value` (a `SecretTargetAttachment`'s connection
/// details); existing keys are replaced, others kept.
pub fn merge_json(
    value: &str,
    fields: &BTreeMap<String, serde_json::Value>,
) -> Result<String, String> {
    let mut v: serde_json::Value = serde_json::from_str(value).map_err(|_| String::new())?;
    let obj = v.as_object_mut().ok_or_else(String::new)?;
    for (k, f) in fields {
        obj.insert(k.clone(), f.clone());
    }
    Ok(v.to_string())
}

impl Secrets {
    /// Opens the secrets saved in `doc` (none: kept in memory only).
    pub fn open(
        doc: Option<Arc<dyn StateDoc>>,
        seal: Arc<dyn Seal>,
        region: &str,
    ) -> Result<Secrets, SecretsError> {
        let state = match doc.as_ref().map(|d| d.load()).transpose() {
            Err(e) => return Err(SecretsError::Backend(e.to_string())),
            Ok(Some(Some(body))) => serde_json::from_slice(&body)
                .map_err(|e| SecretsError::Backend(format!("{SECRETS_DOC}: {e}")))?,
            Ok(_) => Doc::default(),
        };
        Ok(Secrets {
            doc,
            seal,
            region: region.to_string(),
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Doc> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on a copy of the document and saves it; the change is kept only if the save
    /// succeeds.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Doc) -> Result<T, SecretsError>,
    ) -> Result<T, SecretsError> {
        let mut guard = self.lock();
        let body = serde_json::to_vec(&*guard).map_err(|e| SecretsError::Backend(e.to_string()))?;
        let mut copy: Doc =
            serde_json::from_slice(&body).map_err(|e| SecretsError::Backend(e.to_string()))?;
        let out = f(&mut copy)?;
        if let Some(d) = &self.doc {
            let body =
                serde_json::to_vec(&copy).map_err(|e| SecretsError::Backend(e.to_string()))?;
            d.save(&body)
                .map_err(|e| SecretsError::Backend(e.to_string()))?;
        }
        *guard = copy;
        Ok(out)
    }

    /// The secret `id` (a name or an ARN) names in `account`'s map.
    fn find<'d>(
        secrets: &'d mut BTreeMap<String, SecretRecord>,
        id: &str,
    ) -> Result<&'d mut SecretRecord, SecretsError> {
        let name = secrets
            .values()
            .find(|s| s.name == id || s.arn == id)
            .map(|s| s.name.clone())
            .ok_or_else(|| SecretsError::NotFound(id.to_string()))?;
        Ok(secrets.get_mut(&name).expect("found above"))
    }

    fn account_mut<'d>(
        doc: &'d mut Doc,
        account: &AccountId,
    ) -> &'d mut BTreeMap<String, SecretRecord> {
        doc.accounts.entry(account.to_string()).or_default()
    }

    /// Adds a version holding `value` as `AWSCURRENT`.
    fn push_version(&self, s: &mut SecretRecord, value: &str) -> Result<String, SecretsError> {
        check_value(value)?;
        for v in &mut s.versions {
            v.stages.retain(|st| st != PREVIOUS);
            if let Some(i) = v.stages.iter().position(|st| st == CURRENT) {
                v.stages[i] = PREVIOUS.to_string();
            }
        }
        let id = version_id();
        s.versions.push(VersionRecord {
            id: id.clone(),
            sealed: self.seal.seal(value),
            stages: vec![CURRENT.to_string()],
            created: now(),
        });
        let unlabeled: Vec<String> = s
            .versions
            .iter()
            .filter(|v| v.stages.is_empty())
            .map(|v| v.id.clone())
            .collect();
        if unlabeled.len() > KEEP_UNLABELED {
            let drop = &unlabeled[..unlabeled.len() - KEEP_UNLABELED];
            s.versions.retain(|v| !drop.contains(&v.id));
        }
        Ok(id)
    }

    /// Creates a secret. With a `token`, creating again with the same token returns the
    /// secret already made (a stack create repeated after a crash).
    pub fn create(&self, account: &AccountId, new: NewSecret) -> Result<SecretInfo, SecretsError> {
        check_name(&new.name)?;
        let (value, rules) = match &new.value {
            ValueSource::Given(v) => (v.clone(), None),
            ValueSource::Generate(r) => (r.generate()?, Some(r.clone())),
        };
        check_value(&value)?;
        self.change(|doc| {
            let secrets = Self::account_mut(doc, account);
            if let Some(s) = secrets.get(&new.name) {
                if new.token.is_some() && s.token == new.token {
                    return Ok(s.info());
                }
                return Err(SecretsError::Exists(new.name.clone()));
            }
            let arn = format!(
                "arn:aws:secretsmanager:{}:{account}:secret:{}-{}",
                self.region,
                new.name,
                random_alnum(6)
            );
            let mut s = SecretRecord {
                name: new.name.clone(),
                arn,
                description: new.description.clone(),
                kms_key_id: new.kms_key_id.clone(),
                tags: new.tags.clone(),
                rules,
                token: new.token.clone(),
                created: now(),
                versions: Vec::new(),
            };
            self.push_version(&mut s, &value)?;
            let info = s.info();
            secrets.insert(new.name.clone(), s);
            Ok(info)
        })
    }

    /// Every secret of `account`, by name.
    pub fn list(&self, account: &AccountId) -> Vec<SecretInfo> {
        self.lock()
            .accounts
            .get(account.as_str())
            .map(|m| m.values().map(SecretRecord::info).collect())
            .unwrap_or_default()
    }

    pub fn describe(&self, account: &AccountId, id: &str) -> Result<SecretInfo, SecretsError> {
        let mut doc = self.lock();
        let secrets = Self::account_mut(&mut doc, account);
        Self::find(secrets, id).map(|s| s.info())
    }

    /// A secret created by the stack operation with `token`, if any.
    pub fn by_token(&self, account: &AccountId, token: &str) -> Option<SecretInfo> {
        self.lock()
            .accounts
            .get(account.as_str())?
            .values()
            .find(|s| s.token.as_deref() == Some(token))
            .map(SecretRecord::info)
    }

    /// The value of one version (`AWSCURRENT` by default) and that version.
    pub fn get_value(
        &self,
        account: &AccountId,
        id: &str,
        select: &Select,
    ) -> Result<(VersionInfo, String), SecretsError> {
        let mut doc = self.lock();
        let secrets = Self::account_mut(&mut doc, account);
        let s = Self::find(secrets, id)?;
        let stage = select.stage.as_deref().unwrap_or(CURRENT);
        let v = match &select.version_id {
            Some(vid) => s.versions.iter().find(|v| &v.id == vid),
            None => s
                .versions
                .iter()
                .find(|v| v.stages.iter().any(|st| st == stage)),
        }
        .ok_or_else(|| SecretsError::NoVersion {
            secret: s.name.clone(),
            what: match &select.version_id {
                Some(vid) => format!("with id `{vid}`"),
                None => format!("with the stage `{stage}`"),
            },
        })?;
        let value = self
            .seal
            .open(&v.sealed)
            .map_err(|why| SecretsError::Unseal {
                secret: s.name.clone(),
                why,
            })?;
        Ok((
            VersionInfo {
                id: v.id.clone(),
                stages: v.stages.clone(),
                created: v.created,
            },
            value,
        ))
    }

    /// Stores a new value as the current version; returns the version id.
    pub fn put_value(
        &self,
        account: &AccountId,
        id: &str,
        value: &str,
    ) -> Result<String, SecretsError> {
        self.change(|doc| {
            let s = Self::find(Self::account_mut(doc, account), id)?;
            self.push_version(s, value)
        })
    }

    /// A new current version generated by the secret's rules.
    pub fn rotate(&self, account: &AccountId, id: &str) -> Result<String, SecretsError> {
        self.change(|doc| {
            let s = Self::find(Self::account_mut(doc, account), id)?;
            let rules = s
                .rules
                .clone()
                .ok_or_else(|| SecretsError::NoRules(s.name.clone()))?;
            let value = rules.generate()?;
            self.push_version(s, &value)
        })
    }

    /// Changes a secret's description, key, tags and (when `value` is given) its value or
    /// rules, as a stack update does.
    pub fn update(
        &self,
        account: &AccountId,
        id: &str,
        description: &str,
        kms_key_id: Option<String>,
        tags: BTreeMap<String, String>,
        value: Option<ValueSource>,
    ) -> Result<SecretInfo, SecretsError> {
        let new_value = match &value {
            None => None,
            Some(ValueSource::Given(v)) => Some((v.clone(), None)),
            Some(ValueSource::Generate(r)) => Some((r.generate()?, Some(r.clone()))),
        };
        self.change(|doc| {
            let s = Self::find(Self::account_mut(doc, account), id)?;
            s.description = description.to_string();
            s.kms_key_id = kms_key_id;
            s.tags = tags;
            if let Some((v, rules)) = new_value {
                s.rules = rules;
                self.push_version(s, &v)?;
            }
            Ok(s.info())
        })
    }

    /// Merges `fields` into the current JSON value as a new version (what a
    /// `SecretTargetAttachment` does with a database's host, port and engine).
    pub fn merge_fields(
        &self,
        account: &AccountId,
        id: &str,
        fields: &BTreeMap<String, serde_json::Value>,
    ) -> Result<String, SecretsError> {
        let (_, current) = self.get_value(account, id, &Select::default())?;
        let merged = merge_json(&current, fields).map_err(|_| SecretsError::NotJson {
            secret: id.to_string(),
            what: fields.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        if merged == current {
            return Ok(String::new());
        }
        self.put_value(account, id, &merged)
    }

    /// Deletes a secret and every version; `Ok(false)` when there was none.
    pub fn delete(&self, account: &AccountId, id: &str) -> Result<bool, SecretsError> {
        self.change(|doc| {
            let secrets = Self::account_mut(doc, account);
            match Self::find(secrets, id) {
                Ok(s) => {
                    let name = s.name.clone();
                    secrets.remove(&name);
                    Ok(true)
                }
                Err(SecretsError::NotFound(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests;
