//! The crate's typed errors and their mapping onto the stack engine's [`ProviderError`].

use spindle_runtime::{ImageError, RuntimeError};
use spindle_stack::ProviderError;

/// Why an EC2 provider call failed.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    /// A property is missing, has the wrong shape or an invalid value.
    #[error("{type_name}: {message}")]
    Invalid {
        type_name: &'static str,
        message: String,
    },
    /// A property CloudFormation knows but Spindle does not implement.
    #[error("{type_name}: property {property} is not supported by Spindle{hint}")]
    Unsupported {
        type_name: &'static str,
        property: String,
        /// Empty, or `"; "` followed by what to do instead.
        hint: String,
    },
    /// A property change that would need an in-place change the runtime cannot make.
    #[error("{type_name}: changing {properties} in place is not supported: {why}")]
    Update {
        type_name: &'static str,
        properties: String,
        why: String,
    },
    /// A launch template (by id or name) or one of its versions does not exist.
    #[error("launch template {0} not found")]
    LaunchTemplateNotFound(String),
    /// A launch template name is taken by another template.
    #[error("launch template name {0} is already used")]
    LaunchTemplateExists(String),
    /// The runtime engine refused or failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The providers' own state document could not be read or written.
    #[error("EC2 provider state")]
    State(#[from] spindle_runtime::DocError),
    /// The worker thread running a runtime call panicked or was cancelled.
    #[error("EC2 provider worker failed: {0}")]
    Worker(String),
}

impl Ec2Error {
    pub(crate) fn invalid(type_name: &'static str, message: impl Into<String>) -> Self {
        Ec2Error::Invalid {
            type_name,
            message: message.into(),
        }
    }

    pub(crate) fn unsupported(type_name: &'static str, property: &str, hint: &str) -> Self {
        Ec2Error::Unsupported {
            type_name,
            property: property.to_string(),
            hint: if hint.is_empty() {
                String::new()
            } else {
                format!("; {hint}")
            },
        }
    }
}

/// The error and every source under it, joined with `: ` (runtime errors often say only
/// "kernel call failed" at the top).
pub(crate) fn full_message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn runtime_is_invalid(e: &RuntimeError) -> bool {
    use spindle_runtime::net::NetError as N;
    match e {
        RuntimeError::Net(n) => {
            !matches!(n, N::NotFound { .. } | N::Exists { .. } | N::InUse { .. })
        }
        RuntimeError::Image(i) => matches!(i, ImageError::NotFound(_)),
        RuntimeError::Cidr(_)
        | RuntimeError::Cgroup(spindle_runtime::cgroup::CgroupError::UnknownType { .. })
        | RuntimeError::NoCommand { .. }
        | RuntimeError::EntrypointMissing { .. }
        | RuntimeError::MemoryTooLow { .. }
        | RuntimeError::UnknownUser { .. }
        | RuntimeError::BadHostname(_) => true,
        _ => false,
    }
}

impl From<Ec2Error> for ProviderError {
    fn from(e: Ec2Error) -> Self {
        use spindle_runtime::net::NetError as N;
        let msg = full_message(&e);
        match &e {
            Ec2Error::Invalid { .. }
            | Ec2Error::Unsupported { .. }
            | Ec2Error::Update { .. }
            | Ec2Error::LaunchTemplateNotFound(_) => ProviderError::InvalidRequest(msg),
            Ec2Error::LaunchTemplateExists(n) => {
                ProviderError::AlreadyExists(format!("launch template name {n}"))
            }
            Ec2Error::Runtime(RuntimeError::Net(N::NotFound { kind, id })) => {
                ProviderError::NotFound(format!("{kind} {id}"))
            }
            Ec2Error::Runtime(RuntimeError::Net(N::Exists { kind, id })) => {
                ProviderError::AlreadyExists(format!("{kind} {id}"))
            }
            Ec2Error::Runtime(r) if runtime_is_invalid(r) => ProviderError::InvalidRequest(msg),
            _ => ProviderError::Failed(msg),
        }
    }
}
