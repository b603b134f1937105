//! Auto scaling calls (`/v1/accounts/{account}/autoscaling-groups`).

use super::{method, seg, Client, ClientError};
use spindle_model::asg::{
    AutoScalingGroupInfo, CompleteLifecycleAction, ScalingActivity, SetDesiredCapacity,
    StartInstanceRefresh,
};

fn path(account: &str, name: &str, tail: &str) -> String {
    format!(
        "/v1/accounts/{}/autoscaling-groups/{}{tail}",
        seg(account),
        seg(name)
    )
}

impl Client {
    pub fn list_groups(&self, account: &str) -> Result<Vec<AutoScalingGroupInfo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/autoscaling-groups", seg(account)))
    }

    pub fn describe_group(
        &self,
        account: &str,
        name: &str,
    ) -> Result<AutoScalingGroupInfo, ClientError> {
        self.get(&path(account, name, ""))
    }

    pub fn group_activities(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Vec<ScalingActivity>, ClientError> {
        self.get(&path(account, name, "/activities"))
    }

    pub fn set_desired_capacity(
        &self,
        account: &str,
        name: &str,
        desired_capacity: u32,
    ) -> Result<(), ClientError> {
        let req = SetDesiredCapacity { desired_capacity };
        self.call(
            method::POST,
            &path(account, name, "/desired-capacity"),
            Some(&req),
        )
    }

    pub fn start_instance_refresh(
        &self,
        account: &str,
        name: &str,
        min_healthy_percentage: u32,
    ) -> Result<(), ClientError> {
        let req = StartInstanceRefresh {
            min_healthy_percentage,
        };
        self.call(
            method::POST,
            &path(account, name, "/instance-refresh"),
            Some(&req),
        )
    }

    pub fn complete_lifecycle_action(
        &self,
        account: &str,
        name: &str,
        req: &CompleteLifecycleAction,
    ) -> Result<(), ClientError> {
        self.call(
            method::POST,
            &path(account, name, "/lifecycle-actions"),
            Some(req),
        )
    }
}
