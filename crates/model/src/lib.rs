//! Spindle's shared vocabulary: typed identifiers, validated names, the closed set of API
//! actions, and the JSON shapes of API requests and responses.
//!
//! Invariants: this crate does no I/O and knows nothing of HTTP, SQL or the CLI. Identifiers are
//! newtypes so an account id can't be passed where an access key id is expected; each validates
//! its input in `parse` and can only be built from a valid string.

pub mod action;
pub mod api;
pub mod apt;
pub mod asg;
pub mod devbox;
pub mod dns;
pub mod ids;
pub mod lb;
pub mod owner;
pub mod pipeline;
pub mod rds;
pub mod secret;
pub mod ssh;

pub use action::Action;
pub use ids::{
    AccessKeyId, AccountId, AccountName, IdError, ImageId, InstanceId, ParamName, RoleName,
    StackName, VpcId,
};
pub use owner::{instance_owner, ACCOUNT_TAG, STACK_ID_TAG};
