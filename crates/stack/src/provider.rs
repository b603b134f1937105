//! Resource providers: the plug-in trait through which the executor creates, updates,
//! deletes and reads resources, and the registry that maps resource types to providers.
//!
//! Contract every provider keeps, because crash recovery relies on it:
//! - `create` is idempotent per [`ResourceCx::token`]: called again with the same token
//!   after a crash, it returns the resource it already made instead of making another.
//! - `read` can find a resource by that token (`physical_id: None`), so a create whose
//!   outcome was lost can be adopted (and then rolled back) instead of orphaned.
//! - `delete` of a resource that no longer exists succeeds.
//! - `update` to the properties a resource already has succeeds (reverts are retried).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use spindle_model::AccountId;
use spindle_template::{Context, Diagnostic, ResourceView, Value};

use crate::engine::Engine;

/// The future a provider method returns (`Send`, borrowing the provider and its request).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Who is asking: the stack, the resource and the operation's idempotency token.
#[derive(Clone, Copy)]
pub struct ResourceCx<'a> {
    /// The engine running the operation (nested stacks deploy through it).
    pub engine: &'a Engine,
    pub stack_name: &'a str,
    pub logical_id: &'a str,
    pub type_name: &'a str,
    /// Unique per provider call the executor journals; the same after a restart.
    pub token: &'a str,
    /// The template file of the stack (nested stacks resolve `TemplateURL` against it).
    pub template_file: &'a str,
    /// Account, region and stack identity (pseudo parameters).
    pub context: &'a Context,
}

impl ResourceCx<'_> {
    /// The stack's account as a typed id: the one place below the daemon where the
    /// context's pseudo-parameter string (`AWS::AccountId`) becomes an [`AccountId`]. The
    /// daemon runs each account's stacks with that account's id, so only a made-up context
    /// fails here.
    pub fn account(&self) -> Result<AccountId, ProviderError> {
        AccountId::parse(&self.context.account_id)
            .map_err(|e| ProviderError::Failed(format!("the stack's account: {e}")))
    }
}

impl std::fmt::Debug for ResourceCx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceCx")
            .field("stack_name", &self.stack_name)
            .field("logical_id", &self.logical_id)
            .field("type_name", &self.type_name)
            .field("token", &self.token)
            .finish()
    }
}

/// What a provider made or changed: the physical id (`Ref`) and attributes (`Fn::GetAtt`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderOutput {
    pub physical_id: String,
    pub attributes: BTreeMap<String, Value>,
}

/// What `read` found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadOutput {
    pub physical_id: String,
    /// The properties as the provider sees them (for drift detection).
    pub properties: BTreeMap<String, Value>,
    pub attributes: BTreeMap<String, Value>,
}

/// `create`: make a resource with these (fully resolved) properties.
#[derive(Debug)]
pub struct CreateRequest<'a> {
    pub cx: ResourceCx<'a>,
    pub properties: BTreeMap<String, Value>,
}

/// `update`: change a resource in place.
#[derive(Debug)]
pub struct UpdateRequest<'a> {
    pub cx: ResourceCx<'a>,
    pub physical_id: String,
    pub properties: BTreeMap<String, Value>,
    pub previous_properties: BTreeMap<String, Value>,
    /// Top-level property names whose value differs (added, removed or changed).
    pub changed: Vec<String>,
    /// Attributes the resource had, for providers that only return what changed.
    pub previous_attributes: BTreeMap<String, Value>,
}

/// `delete`: remove a resource.
#[derive(Debug)]
pub struct DeleteRequest<'a> {
    pub cx: ResourceCx<'a>,
    pub physical_id: String,
    pub properties: BTreeMap<String, Value>,
}

/// `read`: look a resource up by physical id, or (when `physical_id` is `None`) by the
/// token a `create` was given.
#[derive(Debug)]
pub struct ReadRequest<'a> {
    pub cx: ResourceCx<'a>,
    pub physical_id: Option<String>,
    /// The properties the resource was (or was to be) created with.
    pub properties: BTreeMap<String, Value>,
}

/// Why a provider call failed. The message is shown to users in the stack's status reason
/// and resource events, so it should name the cause ("parameter /a/b already exists").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The input is wrong; retrying won't help.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0} not found")]
    NotFound(String),
    /// The provider doesn't implement this operation for this type.
    #[error("{operation} is not supported for {type_name}")]
    NotSupported {
        operation: &'static str,
        type_name: String,
    },
    /// Anything else, including failures of the system behind the provider.
    #[error("{0}")]
    Failed(String),
}

/// A resource type's implementation. Methods other than `create` and `delete` have
/// defaults, so a provider starts small (STYLE habit 10).
pub trait Provider: Send + Sync {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>>;

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// In-place update. The default refuses, which fails the update (declare the changing
    /// properties create-only in the schema table to get a replacement instead).
    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        let type_name = req.cx.type_name.to_string();
        Box::pin(async move {
            Err(ProviderError::NotSupported {
                operation: "update",
                type_name,
            })
        })
    }

    /// Looks a resource up; `Ok(None)` when it doesn't exist. The default can't tell,
    /// which makes crash recovery of this type fail loudly instead of guessing.
    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        let type_name = req.cx.type_name.to_string();
        Box::pin(async move {
            Err(ProviderError::NotSupported {
                operation: "read",
                type_name,
            })
        })
    }

    /// This provider's own rules for a resource as written in a template, run by
    /// validation before anything is created, beside the registry-schema check. Report
    /// every problem, each with its position ([`ResourceView::diag`]); look only at literal
    /// values (anything computed is checked again at deploy). The default has no rules.
    fn validate(&self, _view: &ResourceView<'_>) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// Called before the engine deletes a resource of a stateful type
    /// ([`crate::dataloss::STATEFUL_TYPES`]: a replacement's old resource, a removed one, a
    /// stack delete), whatever its policies say: a provider that can keep the data takes a
    /// final snapshot and returns its name, which the engine logs with the delete. An error
    /// fails the delete, so nothing is deleted without its snapshot. The default takes none.
    fn final_snapshot<'a>(
        &'a self,
        _req: &'a DeleteRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    /// How long one call for a resource with these properties may take; `None` uses the
    /// engine's default.
    fn timeout(&self, _properties: &BTreeMap<String, Value>) -> Option<Duration> {
        None
    }
}

/// Resource type → provider.
#[derive(Clone, Default)]
pub struct ProviderRegistry {
    providers: HashMap<String, Arc<dyn Provider>>,
}

impl std::fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<&String> = self.providers.keys().collect();
        types.sort();
        f.debug_struct("ProviderRegistry")
            .field("types", &types)
            .finish()
    }
}

impl ProviderRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `provider` for `type_name`, replacing any earlier one.
    pub fn register(&mut self, type_name: &str, provider: Arc<dyn Provider>) -> &mut Self {
        self.providers.insert(type_name.to_string(), provider);
        self
    }

    pub fn get(&self, type_name: &str) -> Option<&Arc<dyn Provider>> {
        self.providers.get(type_name)
    }

    /// For [`spindle_template::ValidateOptions::supported_type`].
    pub fn supports(&self, type_name: &str) -> bool {
        self.providers.contains_key(type_name)
    }

    /// The rules of the provider of `view`'s type (none for an unregistered type): the
    /// [`spindle_template::ValidateOptions::resource_rules`] hook.
    pub fn validate(&self, view: &ResourceView<'_>) -> Vec<Diagnostic> {
        self.get(view.type_name())
            .map(|p| p.validate(view))
            .unwrap_or_default()
    }

    /// Every registered type, sorted.
    pub fn types(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self.providers.keys().map(String::as_str).collect();
        t.sort_unstable();
        t
    }
}

/// The sorted names of the top-level properties that differ between two property maps.
pub fn changed_properties(
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
) -> Vec<String> {
    let mut keys: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}
