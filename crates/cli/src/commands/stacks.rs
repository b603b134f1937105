//! `spindle template validate` and `spindle stack …`.

use crate::cli::{StackCmd, TemplateCmd};
use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use spindle_model::api::{
    ContinueRollback, DeployResult, DeployStack, StackChange, TemplateRequest,
};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

fn read_template(file: &Path, parameters: &[String]) -> Result<TemplateRequest> {
    let template_body = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read `{}`", file.display()))?;
    let mut params = BTreeMap::new();
    for p in parameters {
        let (k, v) = p.split_once('=').ok_or_else(|| {
            hinted(
                format!("--parameter `{p}` is not KEY=VALUE"),
                "e.g. --parameter InstanceType=t3.micro",
            )
        })?;
        params.insert(k.to_owned(), v.to_owned());
    }
    Ok(TemplateRequest {
        template_body,
        template_name: Some(file.display().to_string()),
        parameters: params,
    })
}

pub fn template(cx: &Context, cmd: TemplateCmd) -> Result<()> {
    let TemplateCmd::Validate { file } = cmd;
    let req = read_template(&file, &[])?;
    let report = cx
        .client()?
        .validate_template(&cx.account()?, &req)
        .map_err(api_err)?;
    if cx.json() {
        output::json(&report);
    } else {
        for d in &report.diagnostics {
            println!("{d}");
        }
        let types: Vec<String> = report
            .resource_types
            .iter()
            .map(|(t, n)| format!("{t} ×{n}"))
            .collect();
        if report.valid {
            println!(
                "{}: valid ({} parameter(s); resources: {})",
                file.display(),
                report.parameters.len(),
                types.join(", ")
            );
        }
    }
    if report.valid {
        Ok(())
    } else {
        let unsupported = if report.unsupported_types.is_empty() {
            String::new()
        } else {
            format!(
                "; not supported yet: {}",
                report.unsupported_types.join(", ")
            )
        };
        Err(anyhow::anyhow!(
            "{}: {} problem(s){unsupported}",
            file.display(),
            report.diagnostics.len()
        ))
    }
}

fn print_changes(name: &str, r: &DeployResult) {
    if r.changes.is_empty() {
        return;
    }
    println!("Change set {} for stack {name}:", r.change_set_hash);
    let rows: Vec<Vec<String>> = r.changes.iter().map(change_row).collect();
    output::table(
        &["ACTION", "LOGICAL ID", "TYPE", "REPLACEMENT", "PHYSICAL ID"],
        &rows,
    );
    for c in &r.changes {
        for d in &c.details {
            println!(
                "  {}.{}: {} → {}  (recreation: {}; {})",
                c.logical_id,
                d.name,
                d.before.as_deref().unwrap_or("(none)"),
                d.after.as_deref().unwrap_or("(none)"),
                d.requires_recreation,
                d.cause
            );
        }
    }
}

fn change_row(c: &StackChange) -> Vec<String> {
    vec![
        c.action.clone(),
        c.logical_id.clone(),
        c.resource_type.clone(),
        c.replacement.clone().unwrap_or_else(|| "-".into()),
        c.physical_id.clone().unwrap_or_else(|| "-".into()),
    ]
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(hinted(
            "refusing to change a stack without confirmation: stdin is not a terminal",
            "pass --yes",
        ));
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn spinner(msg: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("constant template"),
    );
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Whether a status is a failure the user must hear about (exit code 1).
fn failed(status: &str) -> bool {
    status.ends_with("FAILED") || status.contains("ROLLBACK")
}

pub fn stack(cx: &Context, cmd: StackCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        StackCmd::Deploy {
            name,
            file,
            parameters,
            yes,
            preview,
            disable_rollback,
        } => {
            let template = read_template(&file, &parameters)?;
            let mut req = DeployStack {
                template,
                preview: true,
                expected_change_set: None,
                disable_rollback,
            };
            let plan = c.deploy_stack(&account, &name, &req).map_err(api_err)?;
            if plan.changes.is_empty() {
                if cx.json() {
                    output::json(&plan);
                } else {
                    println!(
                        "No changes: stack {name} is up to date ({}).",
                        plan.status.as_deref().unwrap_or("-")
                    );
                }
                return Ok(());
            }
            if !cx.json() {
                print_changes(&name, &plan);
            }
            if preview {
                if cx.json() {
                    output::json(&plan);
                }
                return Ok(());
            }
            if !yes
                && !confirm(&format!(
                    "Deploy these {} change(s) to stack {name}?",
                    plan.changes.len()
                ))?
            {
                return Err(hinted(
                    "not deployed",
                    "run again and answer y, or pass --yes",
                ));
            }
            req.preview = false;
            req.expected_change_set = Some(plan.change_set_hash.clone());
            let bar = spinner(format!("deploying stack {name}"));
            let result = c.deploy_stack(&account, &name, &req);
            bar.finish_and_clear();
            let result = result.map_err(api_err)?;
            let status = result.status.clone().unwrap_or_default();
            if cx.json() {
                output::json(&result);
            } else {
                println!("Stack {name}: {status}");
            }
            if failed(&status) {
                return Err(hinted(
                    format!(
                        "stack {name} is {status}: {}",
                        result.reason.unwrap_or_default()
                    ),
                    format!("`spindle stack events {name}` shows what happened"),
                ));
            }
        }
        StackCmd::List => {
            let stacks = c.list_stacks(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&stacks);
            } else {
                let rows: Vec<Vec<String>> = stacks
                    .iter()
                    .map(|s| {
                        vec![
                            s.name.clone(),
                            s.status.clone(),
                            s.last_updated.clone().unwrap_or_default(),
                            s.reason.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "STATUS", "LAST UPDATED", "REASON"], &rows);
            }
        }
        StackCmd::Describe { name } => {
            let d = c.describe_stack(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&d);
            } else {
                output::fields(&[
                    ("name", d.name.clone()),
                    ("status", d.status.clone()),
                    ("reason", d.reason.clone().unwrap_or_default()),
                    ("resources", d.resources.len().to_string()),
                    ("outputs", d.outputs.len().to_string()),
                ]);
            }
        }
        StackCmd::Outputs { name } => {
            let d = c.describe_stack(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&d.outputs);
            } else {
                let rows: Vec<Vec<String>> = d
                    .outputs
                    .iter()
                    .map(|o| {
                        vec![
                            o.name.clone(),
                            o.value.clone(),
                            o.export_name.clone().unwrap_or_default(),
                            o.description.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "VALUE", "EXPORT", "DESCRIPTION"], &rows);
            }
        }
        StackCmd::Resources { name } => {
            let d = c.describe_stack(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&d.resources);
            } else {
                let rows: Vec<Vec<String>> = d
                    .resources
                    .iter()
                    .map(|r| {
                        vec![
                            r.logical_id.clone(),
                            r.resource_type.clone(),
                            r.physical_id.clone(),
                        ]
                    })
                    .collect();
                output::table(&["LOGICAL ID", "TYPE", "PHYSICAL ID"], &rows);
            }
        }
        StackCmd::Events { name } => {
            let events = c.stack_events(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&events);
            } else {
                let rows: Vec<Vec<String>> = events
                    .iter()
                    .map(|e| {
                        vec![
                            e.time.clone(),
                            e.logical_id.clone(),
                            e.resource_type.clone(),
                            e.status.clone(),
                            e.reason.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["TIME", "LOGICAL ID", "TYPE", "STATUS", "REASON"], &rows);
            }
        }
        StackCmd::Drift { name } => {
            let drift = c.stack_drift(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&drift);
            } else {
                let rows: Vec<Vec<String>> = drift
                    .iter()
                    .map(|d| {
                        vec![
                            d.logical_id.clone(),
                            d.resource_type.clone(),
                            d.status.clone(),
                            d.reason.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                output::table(&["LOGICAL ID", "TYPE", "DRIFT", "REASON"], &rows);
                for d in &drift {
                    for p in &d.differences {
                        println!(
                            "  {}.{}: expected {}, actual {}",
                            d.logical_id,
                            p.name,
                            p.expected.as_deref().unwrap_or("(none)"),
                            p.actual.as_deref().unwrap_or("(none)")
                        );
                    }
                }
            }
        }
        StackCmd::ContinueRollback { name, skip } => {
            let r = c
                .continue_rollback(&account, &name, &ContinueRollback { skip })
                .map_err(api_err)?;
            if cx.json() {
                output::json(&r);
            } else {
                println!("Stack {name}: {}", r.status);
            }
            if failed(&r.status) && r.status.ends_with("FAILED") {
                return Err(hinted(
                    format!(
                        "stack {name} is {}: {}",
                        r.status,
                        r.reason.unwrap_or_default()
                    ),
                    "pass --skip for resources that can't roll back",
                ));
            }
        }
        StackCmd::Delete { name, yes } => {
            if !yes && !confirm(&format!("Delete stack {name} and its resources?"))? {
                return Err(hinted(
                    "not deleted",
                    "run again and answer y, or pass --yes",
                ));
            }
            let bar = spinner(format!("deleting stack {name}"));
            let r = c.delete_stack(&account, &name);
            bar.finish_and_clear();
            let r = r.map_err(api_err)?;
            if cx.json() {
                output::json(&r);
            } else {
                println!("Stack {name}: {}", r.status);
            }
        }
    }
    Ok(())
}
