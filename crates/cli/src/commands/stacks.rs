//! `spindle template validate` and `spindle stack …`.

use crate::cli::{StackCmd, TemplateCmd};
use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use spindle_model::api::{
    ContinueRollback, DeployResult, DeployStack, StackChange, TemplateDiagnostic, TemplateReport,
    TemplateRequest,
};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

pub(crate) fn read_template(file: &Path, parameters: &[String]) -> Result<TemplateRequest> {
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
    let mut nested_templates = BTreeMap::new();
    bundle_nested(file, &template_body, &mut nested_templates)?;
    Ok(TemplateRequest {
        template_body,
        template_name: Some(file.display().to_string()),
        parameters: params,
        nested_templates,
        use_previous_values: Vec::new(),
    })
}

/// A nested template the CLI could not read, with where its parent names it.
#[derive(Debug)]
pub(crate) struct NestedUnreadable {
    diagnostic: TemplateDiagnostic,
}

impl std::fmt::Display for NestedUnreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.diagnostic;
        write!(
            f,
            "{}:{}:{}: {}: {}",
            d.file, d.line, d.column, d.path, d.message
        )
    }
}

impl std::error::Error for NestedUnreadable {}

/// Adds the local nested templates `body` (the text of `file`) names, recursively, keyed as
/// the daemon looks them up, so the daemon never reads this machine's files. A template
/// that doesn't parse is left to the daemon, which reports every problem at once.
pub(crate) fn bundle_nested(
    file: &Path,
    body: &str,
    out: &mut BTreeMap<String, String>,
) -> Result<()> {
    let name = file.display().to_string();
    let Ok(t) = spindle_template::parse(body, &name) else {
        return Ok(());
    };
    for r in spindle_template::nested_refs(&t) {
        if out.contains_key(&r.resolved) {
            continue;
        }
        let text = std::fs::read_to_string(&r.resolved).map_err(|e| NestedUnreadable {
            diagnostic: TemplateDiagnostic {
                file: name.clone(),
                line: r.pos.line,
                column: r.pos.col,
                path: r.path.clone(),
                category: "nested-template".into(),
                message: format!(
                    "nested template `{}` (TemplateURL `{}`) cannot be read: {e}",
                    r.resolved, r.url
                ),
            },
        })?;
        out.insert(r.resolved.clone(), text.clone());
        bundle_nested(Path::new(&r.resolved), &text, out)?;
    }
    Ok(())
}

fn read_policy(file: &Option<std::path::PathBuf>) -> Result<Option<String>> {
    file.as_ref()
        .map(|f| {
            std::fs::read_to_string(f).with_context(|| format!("cannot read `{}`", f.display()))
        })
        .transpose()
}

pub fn template(cx: &Context, cmd: TemplateCmd) -> Result<()> {
    let TemplateCmd::Validate { file, offline } = cmd;
    let report = match validation_report(cx, &file, offline) {
        Ok(r) => r,
        Err(e) if cx.json() => {
            // `-o json` prints JSON on every path: a failure to read or send the template
            // is a report with `valid: false` too, positioned where it can be.
            let diagnostic = match e.downcast_ref::<NestedUnreadable>() {
                Some(n) => n.diagnostic.clone(),
                None => TemplateDiagnostic {
                    file: file.display().to_string(),
                    line: 0,
                    column: 0,
                    path: String::new(),
                    category: "error".into(),
                    message: format!("{e:#}"),
                },
            };
            output::json(&TemplateReport::invalid(vec![diagnostic]));
            return Err(e);
        }
        Err(e) => return Err(e),
    };
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

/// The daemon's report when there is one to ask (`--endpoint` given, or one answering at
/// the profile's endpoint), else this build's own: the same checks, for the resource types
/// a daemon of this build provisions.
fn validation_report(cx: &Context, file: &Path, offline: bool) -> Result<TemplateReport> {
    let req = read_template(file, &[])?;
    let daemon = !offline
        && (cx.endpoint_was_given() || (cx.anonymous().health().is_ok() && cx.client().is_ok()));
    if !daemon {
        return Ok(spindle_server::template_report_offline(&req));
    }
    cx.client()?
        .validate_template(&cx.account()?, &req)
        .map_err(api_err)
}

fn print_changes(name: &str, r: &DeployResult) {
    if r.changes.is_empty() {
        return;
    }
    println!("Change set {} for stack {name}:", r.change_set_hash);
    print_change_table(&r.changes);
    for loss in &r.data_loss {
        println!("DATA LOSS: {loss}");
    }
}

/// The change table and, per property, before → after.
pub(crate) fn print_change_table(changes: &[StackChange]) {
    let rows: Vec<Vec<String>> = changes.iter().map(change_row).collect();
    output::table(
        &["ACTION", "LOGICAL ID", "TYPE", "REPLACEMENT", "PHYSICAL ID"],
        &rows,
    );
    for c in changes {
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

/// Asks `question` on the terminal; without one, refuses to `what` (`change a stack`).
pub(crate) fn confirm(what: &str, question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(hinted(
            format!("refusing to {what} without confirmation: stdin is not a terminal"),
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
pub(crate) fn failed(status: &str) -> bool {
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
            use_previous,
            yes,
            preview,
            disable_rollback,
            enable_termination_protection,
            stack_policy,
            stack_policy_during_update,
            revert_drift,
            allow_data_loss,
        } => {
            let mut template = read_template(&file, &parameters)?;
            template.use_previous_values = use_previous;
            let mut req = DeployStack {
                template,
                preview: true,
                expected_change_set: None,
                disable_rollback,
                termination_protection: enable_termination_protection.then_some(true),
                stack_policy: read_policy(&stack_policy)?,
                stack_policy_during_update: read_policy(&stack_policy_during_update)?,
                revert_drift,
                allow_data_loss,
            };
            let plan = c.deploy_stack(&account, &name, &req).map_err(api_err)?;
            let settings = req.termination_protection.is_some() || req.stack_policy.is_some();
            if plan.changes.is_empty() && !plan.outputs_changed && !settings {
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
                if plan.changes.is_empty() && plan.outputs_changed {
                    println!("No resource changes; the outputs of stack {name} change.");
                }
            }
            if preview {
                if cx.json() {
                    output::json(&plan);
                }
                return Ok(());
            }
            if !plan.data_loss.is_empty() && !allow_data_loss {
                return Err(hinted(
                    format!("not deployed: data loss: {}", plan.data_loss.join("; ")),
                    "pass --allow-data-loss to go ahead",
                ));
            }
            if !yes
                && !confirm(
                    "change a stack",
                    &format!(
                        "Deploy these {} change(s) to stack {name}?",
                        plan.changes.len().max(1)
                    ),
                )?
            {
                return Err(hinted(
                    "not deployed",
                    "run again and answer y, or pass --yes",
                ));
            }
            req.preview = false;
            req.expected_change_set = Some(plan.change_set_hash.clone());
            let seen = crate::commands::final_snapshots::mark(c, &account, &name);
            let bar = spinner(format!("deploying stack {name}"));
            let result = c.deploy_stack(&account, &name, &req);
            bar.finish_and_clear();
            let result = result.map_err(api_err)?;
            let status = result.status.clone().unwrap_or_default();
            if cx.json() {
                output::json(&result);
            } else {
                println!("Stack {name}: {status}");
                crate::commands::final_snapshots::print_since(c, &account, &name, seen);
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
        StackCmd::Changeset(cmd) => crate::commands::stack_ops::changeset(cx, c, &account, cmd)?,
        StackCmd::UpdateTerminationProtection {
            name,
            enable,
            disable: _,
        } => {
            let d = c
                .update_termination_protection(&account, &name, enable)
                .map_err(api_err)?;
            if cx.json() {
                output::json(&d);
            } else {
                println!(
                    "Stack {name}: termination protection {}",
                    if d.termination_protection {
                        "enabled"
                    } else {
                        "disabled"
                    }
                );
            }
        }
        StackCmd::SetPolicy { name, file } => {
            let policy = read_policy(&Some(file))?.unwrap_or_default();
            let d = c
                .set_stack_policy(&account, &name, &policy)
                .map_err(api_err)?;
            if cx.json() {
                output::json(&d);
            } else {
                println!("Stack {name}: stack policy set");
            }
        }
        StackCmd::Exports => crate::commands::stack_ops::exports(cx, c, &account, None)?,
        StackCmd::Imports { export } => {
            crate::commands::stack_ops::exports(cx, c, &account, Some(&export))?
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
        StackCmd::Template { name, change_set } => {
            let t = c
                .stack_template(&account, &name, change_set.as_deref())
                .map_err(api_err)?;
            if cx.json() {
                output::json(&t);
            } else {
                // Byte for byte: no newline added.
                print!("{}", t.template_body);
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
        StackCmd::Delete {
            name,
            yes,
            allow_data_loss,
        } => {
            if !yes
                && !confirm(
                    "change a stack",
                    &format!("Delete stack {name} and its resources?"),
                )?
            {
                return Err(hinted(
                    "not deleted",
                    "run again and answer y, or pass --yes",
                ));
            }
            let seen = crate::commands::final_snapshots::mark(c, &account, &name);
            let bar = spinner(format!("deleting stack {name}"));
            let r = c.delete_stack_allowing(&account, &name, allow_data_loss);
            bar.finish_and_clear();
            let r = r.map_err(api_err)?;
            if cx.json() {
                output::json(&r);
            } else {
                println!("Stack {name}: {}", r.status);
                crate::commands::final_snapshots::print_since(c, &account, &name, seen);
            }
        }
    }
    Ok(())
}
