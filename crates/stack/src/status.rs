//! AWS CloudFormation status names for stacks and resources.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A stack's status, with CloudFormation's names and meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StackStatus {
    CreateInProgress,
    CreateFailed,
    CreateComplete,
    RollbackInProgress,
    RollbackFailed,
    RollbackComplete,
    DeleteInProgress,
    DeleteFailed,
    DeleteComplete,
    UpdateInProgress,
    UpdateCompleteCleanupInProgress,
    UpdateComplete,
    UpdateFailed,
    UpdateRollbackInProgress,
    UpdateRollbackFailed,
    UpdateRollbackCompleteCleanupInProgress,
    UpdateRollbackComplete,
}

impl StackStatus {
    pub fn as_str(self) -> &'static str {
        use StackStatus::*;
        match self {
            CreateInProgress => "CREATE_IN_PROGRESS",
            CreateFailed => "CREATE_FAILED",
            CreateComplete => "CREATE_COMPLETE",
            RollbackInProgress => "ROLLBACK_IN_PROGRESS",
            RollbackFailed => "ROLLBACK_FAILED",
            RollbackComplete => "ROLLBACK_COMPLETE",
            DeleteInProgress => "DELETE_IN_PROGRESS",
            DeleteFailed => "DELETE_FAILED",
            DeleteComplete => "DELETE_COMPLETE",
            UpdateInProgress => "UPDATE_IN_PROGRESS",
            UpdateCompleteCleanupInProgress => "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            UpdateComplete => "UPDATE_COMPLETE",
            UpdateFailed => "UPDATE_FAILED",
            UpdateRollbackInProgress => "UPDATE_ROLLBACK_IN_PROGRESS",
            UpdateRollbackFailed => "UPDATE_ROLLBACK_FAILED",
            UpdateRollbackCompleteCleanupInProgress => {
                "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
            }
            UpdateRollbackComplete => "UPDATE_ROLLBACK_COMPLETE",
        }
    }

    /// True for statuses no operation is working on (`*_COMPLETE`, `*_FAILED`): the stack
    /// stays in them until a user acts.
    pub fn is_stable(self) -> bool {
        !self.as_str().ends_with("_IN_PROGRESS")
    }

    /// Statuses from which an update may start (CloudFormation's rules).
    pub fn can_update(self) -> bool {
        use StackStatus::*;
        matches!(
            self,
            CreateComplete | UpdateComplete | UpdateRollbackComplete | UpdateFailed
        )
    }
}

impl fmt::Display for StackStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource's status in events and descriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceStatus {
    CreateInProgress,
    CreateFailed,
    CreateComplete,
    DeleteInProgress,
    DeleteFailed,
    DeleteComplete,
    DeleteSkipped,
    UpdateInProgress,
    UpdateFailed,
    UpdateComplete,
}

impl ResourceStatus {
    pub fn as_str(self) -> &'static str {
        use ResourceStatus::*;
        match self {
            CreateInProgress => "CREATE_IN_PROGRESS",
            CreateFailed => "CREATE_FAILED",
            CreateComplete => "CREATE_COMPLETE",
            DeleteInProgress => "DELETE_IN_PROGRESS",
            DeleteFailed => "DELETE_FAILED",
            DeleteComplete => "DELETE_COMPLETE",
            DeleteSkipped => "DELETE_SKIPPED",
            UpdateInProgress => "UPDATE_IN_PROGRESS",
            UpdateFailed => "UPDATE_FAILED",
            UpdateComplete => "UPDATE_COMPLETE",
        }
    }
}

impl fmt::Display for ResourceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_aws() {
        for s in [
            StackStatus::UpdateRollbackCompleteCleanupInProgress,
            StackStatus::CreateComplete,
            StackStatus::UpdateCompleteCleanupInProgress,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(
            serde_json::to_string(&ResourceStatus::DeleteSkipped).unwrap(),
            "\"DELETE_SKIPPED\""
        );
        assert!(StackStatus::UpdateRollbackFailed.is_stable());
        assert!(!StackStatus::UpdateCompleteCleanupInProgress.is_stable());
    }
}
