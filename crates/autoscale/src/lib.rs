//! # spindle-autoscale: auto scaling as pure functions
//!
//! Everything EC2 Auto Scaling decides, with no I/O and no clock: the daemon's controller
//! feeds it one [`Sample`] a second and executes the [`Action`]s it returns.
//!
//! ## Entry points
//! - [`policy::decide`]: scaling policies (target tracking on `ASGAverageCPUUtilization`,
//!   `ALBRequestCountPerTarget` or a customized metric; step; simple with cooldown) over a
//!   1-second [`Window`] → a [`Decision`] with its cause, e.g.
//!   `ALBRequestCountPerTarget 182 > target 100 for 3 s: desired 2 → 4`. The warm-up and
//!   stabilization rules are documented in [`policy`].
//! - [`Group::tick`]: the group controller as a state machine — capacity, health
//!   replacement, termination policies, scale-in protection, `MaxInstanceLifetime`,
//!   instance refresh (launch-before-terminate, `MinHealthyPercentage`), warm pools,
//!   lifecycle hooks and scheduled actions. Rules in [`group`].
//! - [`spec`]: the `AWS::AutoScaling::*` resource properties read into validated specs,
//!   with every error naming its property.
//!
//! ## What it does not do
//! Launch, pause or terminate anything, read metrics or keep time: that is the executor's
//! job (`spindle-providers`' auto scaling module and the daemon's 1 s loop).

pub mod group;
pub mod metrics;
pub mod policy;
pub mod schedule;
pub mod spec;

pub use group::{
    Action, Activity, ActivityStatus, Group, GroupSpec, Member, RefreshRecord, RefreshStatus, State,
};
pub use metrics::{Sample, Window};
pub use policy::{decide, Decision, Metric, Policy, Rules};
