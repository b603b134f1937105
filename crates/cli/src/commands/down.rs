//! `spindle down DIR`: the undo of `spindle up`. Reads the manifest, finds which of its
//! stacks exist, plans with the pure planner in `spindle-project` (stacks in reverse order;
//! repos, packages and images kept unless `--all`; accounts always kept), shows the plan,
//! asks (or `--yes`), and deletes through the API. A second run finds nothing to do.

use crate::cli::DownArgs;
use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::{anyhow, Result};
use serde::Serialize;
use spindle_client::{Client, ClientError};
use spindle_model::apt::PublicationRef;
use spindle_model::ParamName;
use spindle_project::{plan_down, up_params, DownObserved, DownStep, Manifest};
use std::time::Instant;

#[derive(Serialize)]
struct DownReport {
    project: String,
    endpoint: String,
    /// What was deleted, in order.
    deleted: Vec<String>,
    /// What stays.
    kept: Vec<String>,
    seconds: f64,
}

/// `Ok(None)` when the daemon says the thing (or its account) doesn't exist.
fn absent_ok<T>(r: Result<T, ClientError>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == Some("NotFound") => Ok(None),
        Err(e) => Err(api_err(e)),
    }
}

/// Reads what exists of the project: its stacks, and what `up` made besides.
fn observe(client: &Client, m: &Manifest) -> Result<DownObserved> {
    let mut o = DownObserved::default();
    for s in &m.stacks {
        if let Some(d) = absent_ok(client.describe_stack(s.account.as_str(), s.name.as_str()))? {
            o.stacks
                .insert((s.account.clone(), s.name.clone()), d.status);
        }
    }
    let repo_accounts: std::collections::BTreeSet<_> =
        m.repos.values().map(|r| r.account.clone()).collect();
    for a in &repo_accounts {
        for k in absent_ok(client.list_signing_keys(a.as_str()))?.unwrap_or_default() {
            o.signing_keys.insert((a.clone(), k.name));
        }
        for r in absent_ok(client.list_repos(a.as_str()))?.unwrap_or_default() {
            o.repos.insert((a.clone(), r.name));
        }
        for p in absent_ok(client.list_publications(a.as_str()))?.unwrap_or_default() {
            o.publications.insert((a.clone(), p.prefix, p.distribution));
        }
    }
    for (account, name) in up_params(m) {
        let param = ParamName::parse(&name).map_err(|e| anyhow!("parameter `{name}`: {e}"))?;
        if absent_ok(client.get_param(account.as_str(), &param, false))?.is_some() {
            o.params.insert((account, name));
        }
    }
    // The image `up` recorded (`INPUTS-DIGEST IMAGE-ID` in the image's account), in every
    // account of the image that owns it.
    for i in m.images.values() {
        let record = ParamName::parse(&format!("/spindle/up/{}/images/{}", m.name, i.name))
            .map_err(|e| anyhow!("image `{}`: {e}", i.name))?;
        let Some(rec) = absent_ok(client.get_param(i.account.as_str(), &record, false))? else {
            continue;
        };
        let Some((_, id)) = rec.value.split_once(' ') else {
            continue;
        };
        for a in i.accounts() {
            let owned = absent_ok(client.list_images(a.as_str()))?.unwrap_or_default();
            if owned.iter().any(|img| img.id == id) {
                o.images.insert((a.clone(), i.name.clone()), id.to_owned());
            }
        }
    }
    Ok(o)
}

pub fn run(cx: &Context, args: &DownArgs) -> Result<()> {
    let started = Instant::now();
    let manifest = Manifest::load(&args.dir)?;
    let client = cx.client()?;
    let observed = observe(client, &manifest)?;
    let plan = plan_down(&manifest, &observed, args.all);
    let json = cx.json();
    let mut report = DownReport {
        project: manifest.name.clone(),
        endpoint: cx.endpoint(),
        deleted: Vec::new(),
        kept: plan.kept.clone(),
        seconds: 0.0,
    };
    if plan.steps.is_empty() {
        report.seconds = started.elapsed().as_secs_f64();
        if json {
            output::json(&report);
        } else {
            println!(
                "Nothing to take down: project {} has no stack{} left.",
                manifest.name,
                if args.all {
                    ", image, repo or record"
                } else {
                    ""
                }
            );
        }
        return Ok(());
    }
    // The plan goes to stderr with --output json, so stdout is only the report.
    let show = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    show(format!("spindle down {} will:", manifest.name));
    plan.steps.iter().for_each(|s| show(format!("  {s}")));
    if !plan.kept.is_empty() {
        show(format!(
            "and keep {}{}.",
            plan.kept.join("; "),
            if args.all {
                ""
            } else {
                " (`--all` deletes all but the accounts)"
            }
        ));
    }
    if !args.yes && !crate::commands::stacks::confirm("delete", "Delete?")? {
        return Err(hinted(
            "nothing deleted",
            "run again and answer y, or pass --yes",
        ));
    }
    let mut seen = std::collections::BTreeMap::new();
    for step in &plan.steps {
        let step_started = Instant::now();
        if let DownStep::DeleteStack { account, name, .. } = step {
            seen.insert(
                name.as_str().to_string(),
                crate::commands::final_snapshots::mark(client, account.as_str(), name.as_str()),
            );
        }
        run_step(client, step, args.allow_data_loss).map_err(|e| {
            let hint = match step {
                DownStep::DeleteStack { account, name, .. } => format!(
                    "`spindle --account {account} stack events {name}` shows why; what was deleted before stays deleted, and `spindle down` again retries the rest"
                ),
                _ => "`spindle down` again retries what is left".into(),
            };
            hinted(format!("{step}: {e:#}"), hint)
        })?;
        if !json {
            println!("  ✓ {step} ({:.1} s)", step_started.elapsed().as_secs_f64());
            if let DownStep::DeleteStack { account, name, .. } = step {
                crate::commands::final_snapshots::print_since(
                    client,
                    account.as_str(),
                    name.as_str(),
                    seen.get(name.as_str()).copied().unwrap_or(0),
                );
            }
        }
        report.deleted.push(step.to_string());
    }
    report.seconds = started.elapsed().as_secs_f64();
    if json {
        output::json(&report);
    } else {
        println!(
            "Project {} is down: {} deletion(s) in {:.1} s. `spindle up {}` brings it back.",
            manifest.name,
            report.deleted.len(),
            report.seconds,
            args.dir.display()
        );
    }
    Ok(())
}

fn run_step(client: &Client, step: &DownStep, allow_data_loss: bool) -> Result<()> {
    match step {
        DownStep::DeleteStack { account, name, .. } => {
            let r = client
                .delete_stack_allowing(account.as_str(), name.as_str(), allow_data_loss)
                .map_err(api_err)?;
            if r.status != "DELETE_COMPLETE" {
                anyhow::bail!("{}: {}", r.status, r.reason.unwrap_or_default());
            }
        }
        DownStep::RemoveImage { account, id, .. } => {
            client.remove_image(account.as_str(), id).map_err(api_err)?;
        }
        DownStep::DropPublication {
            account,
            prefix,
            distribution,
        } => client
            .drop_publication(
                account.as_str(),
                &PublicationRef {
                    prefix: prefix.clone(),
                    distribution: distribution.clone(),
                },
            )
            .map_err(api_err)?,
        DownStep::DropRepo { account, name } => {
            client.drop_repo(account.as_str(), name).map_err(api_err)?
        }
        DownStep::DeleteSigningKey { account, name } => client
            .delete_signing_key(account.as_str(), name)
            .map_err(api_err)?,
        DownStep::DeleteParam { account, name } => {
            let p = ParamName::parse(name).map_err(|e| anyhow!("parameter `{name}`: {e}"))?;
            client.delete_param(account.as_str(), &p).map_err(api_err)?
        }
    }
    Ok(())
}
