//! `spindle git create|list|drop`: hosted git repositories, and `spindle pipeline runs|logs`:
//! the runs their pushes started.

use crate::context::{api_err, Context};
use crate::output;
use anyhow::Result;
use clap::Subcommand;
use spindle_model::pipeline::PipelineRun;

#[derive(Debug, Subcommand)]
pub enum GitCmd {
    /// Create an empty repository (first branch `main`) and print its clone URL
    Create { name: String },
    /// List the account's repositories with their branches and clone URLs
    List,
    /// Delete a repository and everything in it
    Drop { name: String },
}

pub fn run(cx: &Context, cmd: GitCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        GitCmd::Create { name } => {
            let r = c.create_git_repo(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&r);
            } else {
                println!("Created repository {} in {account}", r.name);
                println!("  git remote add spindle {}", r.clone_url);
                println!("  (user: an access key id; password: its secret)");
            }
        }
        GitCmd::List => {
            let list = c.list_git_repos(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    let branches = r
                        .refs
                        .keys()
                        .filter_map(|k| k.strip_prefix("refs/heads/"))
                        .collect::<Vec<_>>()
                        .join(",");
                    vec![r.name.clone(), branches, r.clone_url.clone()]
                })
                .collect();
            output::table(&["NAME", "BRANCHES", "CLONE URL"], &rows);
        }
        GitCmd::Drop { name } => {
            c.drop_git_repo(&account, &name).map_err(api_err)?;
            if !cx.json() {
                println!("Deleted repository {name}");
            }
        }
    }
    Ok(())
}

fn short(commit: &str) -> String {
    commit.chars().take(12).collect()
}

/// `spindle pipeline runs [REPO]`.
pub fn runs(cx: &Context, repo: Option<&str>, limit: Option<u32>) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let list = c
        .list_pipeline_runs(&account, repo, limit)
        .map_err(api_err)?;
    if cx.json() {
        output::json(&list);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                r.id.to_string(),
                r.repo.clone(),
                r.workflow.clone(),
                r.git_ref.clone(),
                short(&r.commit),
                r.status.to_string(),
                r.created.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "RUN", "REPO", "WORKFLOW", "REF", "COMMIT", "STATUS", "CREATED",
        ],
        &rows,
    );
    Ok(())
}

/// `spindle pipeline logs RUN [--job J]`: each step's status and log.
pub fn logs(cx: &Context, run: i64, job: Option<&str>) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let mut r: PipelineRun = c.pipeline_run(&account, run).map_err(api_err)?;
    if let Some(j) = job {
        if !r.jobs.iter().any(|x| x.id == j) {
            let have: Vec<&str> = r.jobs.iter().map(|x| x.id.as_str()).collect();
            return Err(crate::context::hinted(
                format!("run {run} has no job `{j}`"),
                format!("its jobs: {}", have.join(", ")),
            ));
        }
        r.jobs.retain(|x| x.id == j);
    }
    if cx.json() {
        output::json(&r);
        return Ok(());
    }
    println!(
        "run {} {} ({} {} {}): {}",
        r.id,
        r.workflow,
        r.event,
        r.git_ref,
        short(&r.commit),
        r.status
    );
    for d in &r.diagnostics {
        println!("  {d}");
    }
    for j in &r.jobs {
        println!("job {} [{}] on {}", j.id, j.status, j.runs_on);
        for s in &j.steps {
            let code = s
                .exit_code
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default();
            println!("  step {}: {} [{}{code}]", s.index + 1, s.name, s.status);
            for line in s.log.lines() {
                println!("    {line}");
            }
        }
    }
    Ok(())
}
