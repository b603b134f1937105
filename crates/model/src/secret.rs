//! The API shapes of Secrets Manager (`spindle secret`). Nothing here carries a value except
//! [`SecretValue`], the answer of the one route that reads one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One version of a secret: its id and staging labels, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersion {
    pub version_id: String,
    pub stages: Vec<String>,
    /// RFC 3339.
    pub created: String,
}

/// A secret as listed and described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSummary {
    pub name: String,
    pub arn: String,
    pub description: String,
    /// Recorded with no effect: values are sealed with the daemon's key.
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// Whether it has generation rules (so `rotate` can make a new value).
    pub generated: bool,
    pub created: String,
    pub versions: Vec<SecretVersion>,
}

/// `GET …/secrets/{name}/value`: one version's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretValue {
    pub name: String,
    pub arn: String,
    pub version_id: String,
    pub stages: Vec<String>,
    pub secret_string: String,
}

/// `PUT …/secrets/{name}/value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSecretValue {
    pub secret_string: String,
    /// Create the secret if there is none by that name.
    #[serde(default)]
    pub create: bool,
    #[serde(default)]
    pub description: String,
}

/// What a put or a rotation made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersionResult {
    pub name: String,
    pub arn: String,
    pub version_id: String,
}
