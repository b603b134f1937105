//! Request and response types of the auto scaling API (`/v1/accounts/{account}/autoscaling-groups`).

use serde::{Deserialize, Serialize};

/// A group as `spindle asg list|describe` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AutoScalingGroupInfo {
    pub name: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    /// `lt-…` and the version instances are launched from.
    pub launch_template: String,
    pub launch_template_version: u32,
    pub target_groups: Vec<String>,
    pub instances: Vec<AutoScalingInstance>,
    /// The instance refresh in progress, if any.
    pub refresh: Option<String>,
    pub policies: Vec<String>,
}

/// One instance of a group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AutoScalingInstance {
    pub id: String,
    /// `Pending`, `Pending:Wait`, `InService`, `Terminating:Wait`, `Warmed:Pending`, `Warmed:Stopped`.
    pub lifecycle_state: String,
    /// `Healthy` or `Unhealthy`.
    pub health: String,
    pub launch_template_version: u32,
    pub protected_from_scale_in: bool,
    pub subnet_id: String,
}

/// A scaling activity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScalingActivity {
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub description: String,
    /// Why, e.g. `ALBRequestCountPerTarget 182 > target 100 for 3 s: desired 2 → 4`.
    pub cause: String,
    /// `Successful`, `Failed` or `InProgress`.
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SetDesiredCapacity {
    pub desired_capacity: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct StartInstanceRefresh {
    /// 0–100: the share of desired capacity that stays in service (default 90).
    #[serde(default = "default_min_healthy")]
    pub min_healthy_percentage: u32,
}

fn default_min_healthy() -> u32 {
    90
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CompleteLifecycleAction {
    pub instance_id: String,
    pub lifecycle_hook_name: String,
    /// `CONTINUE` or `ABANDON`.
    pub lifecycle_action_result: String,
}
