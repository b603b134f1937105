//! `spindle rds instances` and `spindle rds snapshot list|create|delete|restore`: DB
//! instances and their manual snapshots, which outlive the instance. A restore is a new
//! stack holding one DB instance with `DBSnapshotIdentifier` (deployed like any stack, so
//! it shows in `stack list` and goes with `stack delete`).

use anyhow::Result;
use clap::Subcommand;
use spindle_model::api::{DeployStack, TemplateRequest};
use spindle_model::rds::CreateDbSnapshot;

use crate::context::{api_err, hinted, Context};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum RdsCmd {
    /// The account's DB instances: endpoint, status, storage and managed secret
    Instances,
    /// Manual snapshots (they outlive the instance) and the final ones deletes leave
    #[command(subcommand)]
    Snapshot(SnapshotCmd),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// The account's snapshots, oldest first
    List,
    /// Snapshot a DB instance (the engine stops for the copy and starts again)
    Create {
        /// The DB instance's identifier (`spindle rds instances`)
        db_instance: String,
        /// The snapshot's id: a letter, then letters, digits and single hyphens
        snapshot_id: String,
    },
    /// Delete a snapshot and its data
    Delete {
        snapshot_id: String,
        /// Delete without asking (required when stdin is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Restore a snapshot as a new DB instance, in a new stack of its own
    Restore {
        snapshot_id: String,
        /// The new stack's name
        #[arg(long)]
        stack: String,
        /// The DB subnet group to run in (`spindle rds instances` shows the group of each)
        #[arg(long)]
        subnet_group: String,
        /// A VPC security group for the instance (repeatable)
        #[arg(long = "security-group")]
        security_groups: Vec<String>,
        #[arg(long, default_value = "db.t3.micro")]
        class: String,
        /// The new instance's identifier (default: derived from the stack)
        #[arg(long)]
        db_instance_identifier: Option<String>,
    },
}

/// The restore stack's template (pure).
fn restore_template(
    snapshot: &str,
    subnet_group: &str,
    security_groups: &[String],
    class: &str,
    identifier: Option<&str>,
) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let sgs: Vec<String> = security_groups.iter().map(|s| q(s)).collect();
    let id = identifier
        .map(|i| format!("\n      DBInstanceIdentifier: {}", q(i)))
        .unwrap_or_default();
    format!(
        "Description: DB instance restored from snapshot {snapshot} by `spindle rds snapshot restore`
Resources:
  Db:
    Type: AWS::RDS::DBInstance
    Properties:
      Engine: postgres
      DBInstanceClass: {class}
      DBSnapshotIdentifier: {snap}
      DBSubnetGroupName: {group}
      VPCSecurityGroups: [{sgs}]{id}
Outputs:
  Id: {{Value: !Ref Db}}
  Address: {{Value: !GetAtt Db.Endpoint.Address}}
  Port: {{Value: !GetAtt Db.Endpoint.Port}}
",
        class = q(class),
        snap = q(snapshot),
        group = q(subnet_group),
        sgs = sgs.join(", "),
    )
}

pub fn run(cx: &Context, cmd: RdsCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        RdsCmd::Instances => {
            let list = c.list_db_instances(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d.id.clone(),
                        d.status.clone(),
                        format!("{}:{}", d.address, d.port),
                        d.subnet_group.clone(),
                        d.deletion_protection.to_string(),
                        d.master_user_secret.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "ID",
                    "STATUS",
                    "ENDPOINT",
                    "SUBNET GROUP",
                    "PROTECTED",
                    "SECRET",
                ],
                &rows,
            );
        }
        RdsCmd::Snapshot(SnapshotCmd::List) => {
            let list = c.list_db_snapshots(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        s.kind.clone(),
                        s.db_instance.clone(),
                        s.created.clone(),
                    ]
                })
                .collect();
            output::table(&["ID", "KIND", "DB INSTANCE", "CREATED"], &rows);
        }
        RdsCmd::Snapshot(SnapshotCmd::Create {
            db_instance,
            snapshot_id,
        }) => {
            let s = c
                .create_db_snapshot(
                    &account,
                    &CreateDbSnapshot {
                        db_instance,
                        snapshot_id,
                    },
                )
                .map_err(api_err)?;
            if cx.json() {
                output::json(&s);
            } else {
                println!("Snapshot {} of {} taken.", s.id, s.db_instance);
            }
        }
        RdsCmd::Snapshot(SnapshotCmd::Delete { snapshot_id, yes }) => {
            if !yes
                && !crate::commands::stacks::confirm(
                    "delete a snapshot",
                    &format!("Delete snapshot {snapshot_id} and its data?"),
                )?
            {
                return Err(hinted(
                    "not deleted",
                    "run again and answer y, or pass --yes",
                ));
            }
            let r = c
                .delete_db_snapshot(&account, &snapshot_id)
                .map_err(api_err)?;
            if cx.json() {
                output::json(&r);
            } else {
                println!("Snapshot {snapshot_id} deleted.");
            }
        }
        RdsCmd::Snapshot(SnapshotCmd::Restore {
            snapshot_id,
            stack,
            subnet_group,
            security_groups,
            class,
            db_instance_identifier,
        }) => {
            let body = restore_template(
                &snapshot_id,
                &subnet_group,
                &security_groups,
                &class,
                db_instance_identifier.as_deref(),
            );
            let mut req = DeployStack {
                template: TemplateRequest {
                    template_body: body,
                    template_name: Some(format!("{stack}.yaml")),
                    ..TemplateRequest::default()
                },
                preview: true,
                ..DeployStack::default()
            };
            let plan = c.deploy_stack(&account, &stack, &req).map_err(api_err)?;
            if plan.changes.is_empty() {
                return Err(hinted(
                    format!("stack {stack} exists already and restores this snapshot"),
                    "choose another --stack",
                ));
            }
            req.preview = false;
            req.expected_change_set = Some(plan.change_set_hash);
            let r = c.deploy_stack(&account, &stack, &req).map_err(api_err)?;
            let status = r.status.clone().unwrap_or_default();
            if cx.json() {
                output::json(&r);
            } else {
                println!("Stack {stack}: {status}");
            }
            if status != "CREATE_COMPLETE" {
                return Err(hinted(
                    format!(
                        "stack {stack} is {status}: {}",
                        r.reason.unwrap_or_default()
                    ),
                    format!("`spindle stack events {stack}` shows what happened"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restore_template_names_the_snapshot_group_and_groups_quoted() {
        let t = restore_template(
            "db1-final-0a1b2c3d",
            "db-subnets",
            &["sg-1".into(), "sg-2".into()],
            "db.t3.micro",
            Some("restored"),
        );
        for want in [
            "DBSnapshotIdentifier: \"db1-final-0a1b2c3d\"",
            "DBSubnetGroupName: \"db-subnets\"",
            "VPCSecurityGroups: [\"sg-1\", \"sg-2\"]",
            "DBInstanceIdentifier: \"restored\"",
            "DBInstanceClass: \"db.t3.micro\"",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        let parsed = spindle_template::parse(&t, "restore.yaml");
        assert!(parsed.is_ok(), "{t}");
        let bare = restore_template("s", "g", &[], "db.t3.micro", None);
        assert!(!bare.contains("DBInstanceIdentifier"), "{bare}");
        assert!(bare.contains("VPCSecurityGroups: []"), "{bare}");
    }
}
