//! `spindle asg …`: auto scaling groups.

use crate::context::{api_err, Context};
use crate::output;
use anyhow::{bail, Result};
use clap::Subcommand;
use spindle_model::asg::{AutoScalingGroupInfo, CompleteLifecycleAction};

#[derive(Debug, Subcommand)]
pub enum AsgCmd {
    /// List the account's auto scaling groups
    List,
    /// Show a group: capacity and each instance's lifecycle state and health
    Describe { name: String },
    /// Every scaling activity of a group, with its cause
    Activities { name: String },
    /// Replace every instance, rolling, launch before terminate
    Refresh {
        name: String,
        /// The share of desired capacity that stays in service
        #[arg(long, default_value_t = 90)]
        min_healthy_percentage: u32,
    },
    /// Set a group's desired capacity
    SetDesired { name: String, desired_capacity: u32 },
    /// End an instance's wait on a lifecycle hook
    CompleteLifecycleAction {
        name: String,
        #[arg(long)]
        instance_id: String,
        #[arg(long)]
        hook: String,
        /// CONTINUE or ABANDON
        #[arg(long, default_value = "CONTINUE")]
        result: String,
    },
}

const HEADER: &[&str] = &[
    "NAME",
    "MIN",
    "DESIRED",
    "MAX",
    "IN SERVICE",
    "TEMPLATE",
    "REFRESH",
];

fn row(g: &AutoScalingGroupInfo) -> Vec<String> {
    let in_service = g
        .instances
        .iter()
        .filter(|i| i.lifecycle_state == "InService")
        .count();
    vec![
        g.name.clone(),
        g.min_size.to_string(),
        g.desired_capacity.to_string(),
        g.max_size.to_string(),
        in_service.to_string(),
        format!("{} v{}", g.launch_template, g.launch_template_version),
        g.refresh.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// `HH:MM:SS` UTC of a unix time.
pub fn clock(t: u64) -> String {
    format!("{:02}:{:02}:{:02}", t / 3600 % 24, t / 60 % 60, t % 60)
}

pub fn run(cx: &Context, cmd: AsgCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        AsgCmd::List => {
            let list = c.list_groups(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
            } else {
                output::table(HEADER, &list.iter().map(row).collect::<Vec<_>>());
            }
        }
        AsgCmd::Describe { name } => {
            let g = c.describe_group(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&g);
            } else {
                output::table(HEADER, &[row(&g)]);
                println!();
                let rows: Vec<Vec<String>> = g
                    .instances
                    .iter()
                    .map(|i| {
                        vec![
                            i.id.clone(),
                            i.lifecycle_state.clone(),
                            i.health.clone(),
                            format!("v{}", i.launch_template_version),
                            i.subnet_id.clone(),
                            if i.protected_from_scale_in {
                                "yes"
                            } else {
                                "no"
                            }
                            .into(),
                        ]
                    })
                    .collect();
                output::table(
                    &[
                        "INSTANCE",
                        "LIFECYCLE",
                        "HEALTH",
                        "TEMPLATE",
                        "SUBNET",
                        "PROTECTED",
                    ],
                    &rows,
                );
            }
        }
        AsgCmd::Activities { name } => {
            let acts = c.group_activities(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&acts);
            } else {
                let rows: Vec<Vec<String>> = acts
                    .iter()
                    .map(|a| {
                        vec![
                            clock(a.at),
                            a.status.clone(),
                            a.description.clone(),
                            a.cause.clone(),
                        ]
                    })
                    .collect();
                output::table(&["TIME (UTC)", "STATUS", "ACTIVITY", "CAUSE"], &rows);
            }
        }
        AsgCmd::Refresh {
            name,
            min_healthy_percentage,
        } => {
            c.start_instance_refresh(&account, &name, min_healthy_percentage)
                .map_err(api_err)?;
            println!(
                "Instance refresh of {name} started ({min_healthy_percentage}% stay healthy); \
                 follow it with `spindle asg activities {name}`"
            );
        }
        AsgCmd::SetDesired {
            name,
            desired_capacity,
        } => {
            c.set_desired_capacity(&account, &name, desired_capacity)
                .map_err(api_err)?;
            println!("Desired capacity of {name} set to {desired_capacity}");
        }
        AsgCmd::CompleteLifecycleAction {
            name,
            instance_id,
            hook,
            result,
        } => {
            if result != "CONTINUE" && result != "ABANDON" {
                bail!("--result `{result}` must be CONTINUE or ABANDON");
            }
            let req = CompleteLifecycleAction {
                instance_id: instance_id.clone(),
                lifecycle_hook_name: hook.clone(),
                lifecycle_action_result: result.clone(),
            };
            c.complete_lifecycle_action(&account, &name, &req)
                .map_err(api_err)?;
            println!("{instance_id}: lifecycle hook {hook} completed with {result}");
        }
    }
    Ok(())
}
