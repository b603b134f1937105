//! JSON bodies of the REST API (`/v1/...`), shared by the server and the typed client.
//! Times are RFC 3339 strings in UTC; secrets appear only in the responses that create them.

use crate::{AccessKeyId, AccountId, AccountName, ParamName, RoleName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    /// A stable machine-readable code: `NotFound`, `AccessDenied`, `SignatureExpired`, …
    pub code: String,
    pub message: String,
    /// What to do about it, when there is something to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub status: String,
    pub version: String,
}

/// Who the caller is: `spindle whoami`, like `aws sts get-caller-identity`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account_id: AccountId,
    pub account_name: AccountName,
    pub access_key_id: AccessKeyId,
    /// `arn:spindle:iam::ACCOUNT:key/AKIA…` or `arn:spindle:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    /// Whether this is the installation's admin credential (may manage every account).
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub name: AccountName,
    #[serde(default)]
    pub description: String,
    pub created: String,
    /// The installation's management account, which holds the admin credential.
    #[serde(default)]
    pub management: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    pub name: AccountName,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: AccessKeyId,
    pub account_id: AccountId,
    /// `Active` or `Revoked`.
    pub status: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<String>,
    /// Action patterns this key may use; `["*"]` for an unscoped key.
    pub allow: Vec<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Action patterns; empty means every action in the account.
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// An AWS-compatible key: the daemon also keeps its secret, sealed, so that the AWS
    /// endpoint can verify SigV4 signatures (which need the secret itself).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aws: bool,
}

/// A key's id and secret: returned once, when the key is created or a role is assumed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: AccessKeyId,
    pub secret_access_key: String,
    pub account_id: AccountId,
    pub account_name: AccountName,
    /// Set for short-lived credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration: Option<String>,
    /// For an AWS-compatible key: the daemon's AWS endpoint (`http://127.0.0.1:4566`), when
    /// it listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Role {
    pub name: RoleName,
    pub account_id: AccountId,
    pub arn: String,
    /// Accounts whose principals may assume the role.
    pub trust: Vec<AccountId>,
    pub allow: Vec<String>,
    pub max_session_seconds: u32,
    pub created: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    pub name: RoleName,
    /// Account names or ids trusted to assume the role.
    pub trust: Vec<String>,
    pub allow: Vec<String>,
    #[serde(default)]
    pub max_session_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AssumeRole {
    pub role: RoleName,
    /// The role's account (name or id); may be left out when exactly one role of that name
    /// trusts the caller's account.
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub duration_seconds: Option<u32>,
    #[serde(default)]
    pub session_name: Option<String>,
}

/// A rule no principal of the account can override, like an organisation's service control
/// policy. Only the admin credential manages them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DenyRule {
    pub id: i64,
    pub account_id: AccountId,
    pub pattern: String,
    #[serde(default)]
    pub reason: String,
    pub created: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddDenyRule {
    pub pattern: String,
    #[serde(default)]
    pub reason: String,
}

/// One audit record: every mutating call and every refused call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    pub seq: i64,
    pub time: String,
    pub request_id: String,
    /// The access key that made the call, or what it claimed to be when authentication failed.
    pub access_key_id: Option<String>,
    pub principal: Option<String>,
    /// The caller's account.
    pub account_id: Option<AccountId>,
    /// The account that owns the target, when it differs and the viewer may know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_account_id: Option<AccountId>,
    pub action: String,
    pub target: String,
    /// `ok`, `denied` or `error`.
    pub result: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Param {
    pub name: ParamName,
    /// `String`, `StringList` or `SecureString`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `****` for a SecureString unless read with `decrypt`.
    pub value: String,
    pub version: i64,
    pub last_modified: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PutParam {
    pub value: String,
    #[serde(rename = "type", default = "default_param_type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    /// Refuse to replace an existing value unless set, as `aws ssm put-parameter --overwrite`.
    #[serde(default)]
    pub overwrite: bool,
}

fn default_param_type() -> String {
    "String".into()
}

/// The kinds of parameter the store holds.
pub const PARAM_TYPES: &[&str] = &["String", "StringList", "SecureString"];

/// A template to validate or deploy, with parameter values as CloudFormation's API takes them
/// (lists comma-separated).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct TemplateRequest {
    pub template_body: String,
    /// The file name diagnostics name (`stacks/app.yaml`).
    #[serde(default)]
    pub template_name: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Nested stack templates (`AWS::CloudFormation::Stack` with a local `TemplateURL`),
    /// bundled by the client so the daemon never reads the client's files. Keyed by the
    /// `TemplateURL` joined to its parent template's directory (`template_name`'s for the
    /// top level), `.` and `..` resolved: `stacks/net.yaml`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nested_templates: BTreeMap<String, String>,
    /// Parameters that keep the value the stack was last deployed with (CloudFormation's
    /// `UsePreviousValue`), NoEcho ones included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub use_previous_values: Vec<String>,
}

/// One problem in a template, positioned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TemplateDiagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    /// `Resources.Web.Properties.ImageId`; empty for the whole document.
    pub path: String,
    /// `syntax`, `unsupported-resource-type`, `unknown-reference`, …
    pub category: String,
    pub message: String,
}

impl std::fmt::Display for TemplateDiagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}: {}", self.category, self.message)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TemplateParameterInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub default: Option<String>,
    pub no_echo: bool,
    pub description: Option<String>,
}

/// What `spindle template validate` reports: every problem at once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TemplateReport {
    pub valid: bool,
    pub diagnostics: Vec<TemplateDiagnostic>,
    pub description: Option<String>,
    pub parameters: Vec<TemplateParameterInfo>,
    /// Resource types the template uses, with how many of each.
    pub resource_types: BTreeMap<String, u32>,
    /// The subset no provider supports yet (each also has a positioned diagnostic).
    pub unsupported_types: Vec<String>,
}

impl TemplateReport {
    /// The report of a template that could not be read or checked at all.
    pub fn invalid(diagnostics: Vec<TemplateDiagnostic>) -> Self {
        TemplateReport {
            valid: false,
            diagnostics,
            description: None,
            parameters: Vec::new(),
            resource_types: BTreeMap::new(),
            unsupported_types: Vec::new(),
        }
    }
}

/// Create or update a stack: preview the change set, or execute it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct DeployStack {
    #[serde(flatten)]
    pub template: TemplateRequest,
    /// Only compute and return the change set.
    #[serde(default)]
    pub preview: bool,
    /// Refuse to execute unless the change set still has this hash (the one the user saw).
    #[serde(default)]
    pub expected_change_set: Option<String>,
    #[serde(default)]
    pub disable_rollback: bool,
    /// Set (or on create: start with) termination protection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_protection: Option<bool>,
    /// A new stack policy (JSON document), kept for later updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_policy: Option<String>,
    /// A policy that governs this update only (CloudFormation's
    /// `StackPolicyDuringUpdateBody`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_policy_during_update: Option<String>,
    /// Also update resources whose live state drifted back to what the template says
    /// (their providers' read differs from the record).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revert_drift: bool,
    /// Go ahead although a stateful resource (a database, a volume, a secret) is replaced
    /// or deleted; refused otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_data_loss: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackPropertyChange {
    pub name: String,
    /// `Properties` or `Attributes`.
    pub target: String,
    /// JSON text; `****` for NoEcho values.
    pub before: Option<String>,
    pub after: Option<String>,
    /// `True`, `False` or `Conditional`.
    pub requires_recreation: String,
    /// `Direct`, or the resources whose change makes this value change.
    pub cause: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackChange {
    /// `Add`, `Modify` or `Remove`.
    pub action: String,
    pub logical_id: String,
    pub resource_type: String,
    /// For `Modify`: `True`, `False` or `Conditional`.
    pub replacement: Option<String>,
    pub physical_id: Option<String>,
    pub details: Vec<StackPropertyChange>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeployResult {
    pub stack: String,
    pub changes: Vec<StackChange>,
    /// Identifies this change set: pass it back as `expected_change_set`.
    pub change_set_hash: String,
    pub executed: bool,
    /// No resource changes, but the stack's outputs (or exports) would change: deploying
    /// still updates the stack.
    #[serde(default)]
    pub outputs_changed: bool,
    /// Stateful resources this change set replaces or deletes, each with why: executing it
    /// needs `allow_data_loss`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_loss: Vec<String>,
    /// The stack's status after executing (`CREATE_COMPLETE`, `UPDATE_ROLLBACK_COMPLETE`, …).
    pub status: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackSummary {
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub last_updated: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackOutputInfo {
    pub name: String,
    /// `****` when computed from a NoEcho parameter.
    pub value: String,
    pub description: Option<String>,
    pub export_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackResourceInfo {
    pub logical_id: String,
    pub physical_id: String,
    pub resource_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackDetail {
    pub name: String,
    pub status: String,
    pub reason: Option<String>,
    pub in_progress: bool,
    pub outputs: Vec<StackOutputInfo>,
    pub resources: Vec<StackResourceInfo>,
    #[serde(default)]
    pub termination_protection: bool,
    /// The stack policy document, if any.
    #[serde(default)]
    pub stack_policy: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackEventInfo {
    pub seq: u64,
    pub time: String,
    pub logical_id: String,
    pub physical_id: Option<String>,
    pub resource_type: String,
    pub status: String,
    pub reason: Option<String>,
}

/// A stack operation that ended (a delete).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackOperationResult {
    pub stack: String,
    pub status: String,
    pub reason: Option<String>,
}

/// Import an image from a file on the daemon's machine (rootfs tar, .tar.gz/.tar.zst, OCI
/// layout directory or oci-archive).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ImportImage {
    /// An absolute path on the daemon's machine; only accepted from a loopback client.
    pub path: String,
    /// A `name:tag` alias.
    #[serde(default)]
    pub tag: Option<String>,
    /// For rootfs tarballs (OCI images carry their own): what instances run.
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageInfo {
    /// `ami-…`, derived from the content.
    pub id: String,
    pub tags: Vec<String>,
    pub layers: usize,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created: u64,
}

/// An image in full, as `spindle image inspect` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageDetail {
    #[serde(flatten)]
    pub info: ImageInfo,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub exposed_ports: Vec<String>,
    /// Launching with less memory is refused.
    pub min_memory_mib: u64,
    /// `sha256:…` of each layer blob, lowest first.
    pub layer_digests: Vec<String>,
    /// Bytes of the layer blobs as imported.
    pub size: u64,
    /// Instances (not terminated) and launch templates of this account that use the image.
    pub used_by: Vec<String>,
}

/// Point a `name:tag` alias at an image (moving it from another image of the account).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct TagImage {
    pub tag: String,
}

/// Write an image to a new path on the daemon's machine (loopback clients only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ExportImage {
    /// An absolute path that does not exist yet.
    pub path: String,
    /// `rootfs` (one tar of the merged tree), `oci` (an OCI layout directory) or
    /// `oci-archive` (a tar of one).
    pub format: String,
}

/// What `spindle doctor` found: host objects named with the runtime's prefix that no VPC or
/// instance accounts for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DoctorReport {
    pub prefix: String,
    pub leaks: Vec<String>,
    /// Leaks `--fix` could not remove, with the reason.
    pub unfixed: Vec<String>,
}

/// An instance as `spindle instance list|describe` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceInfo {
    /// `i-…`
    pub id: String,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
    pub image_id: String,
    pub instance_type: String,
    pub private_ip: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub hostname: String,
    pub tags: BTreeMap<String, String>,
    /// Seconds since the Unix epoch.
    pub launched_at: u64,
    /// How the main process last ended (`exited with code 0`, `killed by signal 9 (out of memory)`).
    pub last_exit: Option<String>,
    pub oom_killed: bool,
    /// EC2's `StateReason.Code` for the last stop: `Server.OutOfMemory` after an OOM kill.
    #[serde(default)]
    pub state_reason: Option<String>,
    /// The seccomp profile every process in the instance runs under: `default` (Docker's
    /// default denials and io_uring, with `no_new_privs`), `devbox` (the default plus nested
    /// namespaces and mounts, asked for by the `spindle:seccomp-profile` tag with the grant
    /// `instance:UseSeccompProfile`) or `unconfined`.
    #[serde(default)]
    pub seccomp: String,
    /// The host ids the instance's ids map onto (its own user namespace), as in `uid_map`:
    /// `0 BASE COUNT`; `None` when it runs in the host's user namespace.
    #[serde(default)]
    pub user_namespace: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    pub argv: Vec<String>,
    #[serde(default)]
    pub timeout_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsoleOutput {
    pub instance_id: String,
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PropertyDrift {
    pub name: String,
    /// JSON text; `****` for NoEcho values.
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// One resource of a stack against what its provider reads back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ResourceDriftInfo {
    pub logical_id: String,
    pub resource_type: String,
    pub physical_id: String,
    /// `IN_SYNC`, `MODIFIED`, `DELETED` or `NOT_CHECKED`.
    pub status: String,
    pub differences: Vec<PropertyDrift>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ContinueRollback {
    /// Resources to leave as they are (their rollback failed and can't succeed).
    #[serde(default)]
    pub skip: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct UpdateTerminationProtection {
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct SetStackPolicy {
    /// The policy document (JSON), as CloudFormation's `StackPolicyBody`.
    pub stack_policy: String,
}

/// Create a named change set: the template and parameters to review, executed later.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateChangeSet {
    #[serde(flatten)]
    pub template: TemplateRequest,
    #[serde(default)]
    pub description: Option<String>,
}

/// A named change set as `stack changeset describe|list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangeSetInfo {
    pub name: String,
    pub stack: String,
    /// `CREATE` (the stack does not exist yet) or `UPDATE`.
    pub change_set_type: String,
    /// `AVAILABLE`, or `OBSOLETE` once the stack changed after the change set was made.
    pub execution_status: String,
    pub created: String,
    pub description: Option<String>,
    /// Parameter values; `****` for NoEcho parameters.
    pub parameters: BTreeMap<String, String>,
    pub changes: Vec<StackChange>,
    pub change_set_hash: String,
    /// Stateful resources executing it would replace or delete: execute needs
    /// `allow_data_loss`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_loss: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct ExecuteChangeSet {
    #[serde(default)]
    pub disable_rollback: bool,
    /// Go ahead although a stateful resource is replaced or deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_data_loss: bool,
}

/// `DELETE …/stacks/{stack}` query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct DeleteStackQuery {
    /// Delete although the stack has stateful resources (their data is lost).
    #[serde(default)]
    pub allow_data_loss: bool,
}

/// `GET …/stacks/{stack}/template` query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct StackTemplateQuery {
    /// A change set of the stack: its template instead of the stack's.
    #[serde(default)]
    pub change_set: Option<String>,
}

/// A stack's (or one of its change sets') template, as submitted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StackTemplate {
    pub stack: String,
    pub change_set: Option<String>,
    /// The text exactly as it was sent, YAML or JSON.
    pub template_body: String,
}

/// An output some stack of the account exports (`Outputs.X.Export.Name`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportInfo {
    pub name: String,
    /// `****` when computed from a NoEcho parameter.
    pub value: String,
    pub exporting_stack: String,
    /// Stacks whose template imports it (`Fn::ImportValue`).
    pub importing_stacks: Vec<String>,
}
