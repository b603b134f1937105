//! `spindle stack changeset …`, `stack exports` and `stack imports`.

use crate::cli::ChangesetCmd;
use crate::commands::stacks::{failed, print_change_table, read_template};
use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::Result;
use spindle_client::Client;
use spindle_model::api::{ChangeSetInfo, CreateChangeSet, ExecuteChangeSet};

fn show(cs: &ChangeSetInfo) {
    output::fields(&[
        ("name", cs.name.clone()),
        ("stack", cs.stack.clone()),
        ("type", cs.change_set_type.clone()),
        ("execution status", cs.execution_status.clone()),
        ("created", cs.created.clone()),
        ("description", cs.description.clone().unwrap_or_default()),
        ("hash", cs.change_set_hash.clone()),
    ]);
    for (k, v) in &cs.parameters {
        println!("  parameter {k} = {v}");
    }
    if cs.changes.is_empty() {
        println!("No changes.");
    } else {
        print_change_table(&cs.changes);
    }
    for loss in &cs.data_loss {
        println!("DATA LOSS: {loss}");
    }
}

pub fn changeset(cx: &Context, c: &Client, account: &str, cmd: ChangesetCmd) -> Result<()> {
    match cmd {
        ChangesetCmd::Create {
            name,
            stack,
            file,
            parameters,
            use_previous,
            description,
        } => {
            let mut template = read_template(&file, &parameters)?;
            template.use_previous_values = use_previous;
            let cs = c
                .create_change_set(
                    account,
                    &stack,
                    &name,
                    &CreateChangeSet {
                        template,
                        description,
                    },
                )
                .map_err(api_err)?;
            if cx.json() {
                output::json(&cs);
            } else {
                show(&cs);
            }
        }
        ChangesetCmd::Describe { name, stack } => {
            let cs = c
                .describe_change_set(account, &stack, &name)
                .map_err(api_err)?;
            if cx.json() {
                output::json(&cs);
            } else {
                show(&cs);
            }
        }
        ChangesetCmd::List { stack } => {
            let list = c.list_change_sets(account, &stack).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|cs| {
                        vec![
                            cs.name.clone(),
                            cs.change_set_type.clone(),
                            cs.execution_status.clone(),
                            cs.changes.len().to_string(),
                            cs.created.clone(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "TYPE", "STATUS", "CHANGES", "CREATED"], &rows);
            }
        }
        ChangesetCmd::Delete { name, stack } => {
            c.delete_change_set(account, &stack, &name)
                .map_err(api_err)?;
            if !cx.json() {
                println!("Change set {name} of stack {stack} deleted.");
            }
        }
        ChangesetCmd::Execute {
            name,
            stack,
            disable_rollback,
            allow_data_loss,
        } => {
            let r = c
                .execute_change_set(
                    account,
                    &stack,
                    &name,
                    &ExecuteChangeSet {
                        disable_rollback,
                        allow_data_loss,
                    },
                )
                .map_err(api_err)?;
            let status = r.status.clone().unwrap_or_default();
            if cx.json() {
                output::json(&r);
            } else {
                println!("Stack {stack}: {status}");
            }
            if failed(&status) {
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

/// `stack exports` (all), or `stack imports EXPORT` (who imports one).
pub fn exports(cx: &Context, c: &Client, account: &str, only: Option<&str>) -> Result<()> {
    let exports = c.list_exports(account).map_err(api_err)?;
    match only {
        None => {
            if cx.json() {
                output::json(&exports);
            } else {
                let rows: Vec<Vec<String>> = exports
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            e.value.clone(),
                            e.exporting_stack.clone(),
                            e.importing_stacks.join(","),
                        ]
                    })
                    .collect();
                output::table(&["EXPORT", "VALUE", "STACK", "IMPORTED BY"], &rows);
            }
        }
        Some(name) => {
            let e = exports.iter().find(|e| e.name == name).ok_or_else(|| {
                hinted(
                    format!("no stack exports `{name}`"),
                    "`spindle stack exports` lists the exports",
                )
            })?;
            if cx.json() {
                output::json(&e.importing_stacks);
            } else {
                for s in &e.importing_stacks {
                    println!("{s}");
                }
            }
        }
    }
    Ok(())
}
