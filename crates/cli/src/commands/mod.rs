//! One module per command group; each turns parsed arguments into client calls and output.

mod accounts;
pub mod apt;
pub mod asg;
mod audit;
mod bake;
pub mod devbox;
pub mod dns;
mod down;
mod final_snapshots;
pub mod git;
mod images;
mod lb;
pub mod load;
mod params;
mod pipeline;
mod pipeline_ops;
mod pkg;
pub mod rds;
pub mod secret;
pub mod server;
pub mod ssh;
mod stack_ops;
mod stacks;
mod up;
mod up_project;
mod up_wait;

use crate::cli::{Cli, Command};
use crate::context::Context;
use anyhow::Result;
use clap::CommandFactory;

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Server(args) => server::run(&args, &cli.global),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "spindle",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Pkg(c) => pkg::run(c, cli.global.output),
        Command::Pipeline(c) if c.offline() => pipeline::run(c, cli.global.output),
        Command::Bake(c) => bake::run(c, &cli.global),
        Command::Devbox(c) => devbox::run(c, &cli.global),
        Command::Load(args) => {
            let json = cli.global.output == crate::cli::OutputFormat::Json;
            match &args.group {
                // The API is needed only to show a group.
                Some(name) => {
                    let cx = Context::new(&cli.global)?;
                    load::run(&args, Some((&cx, name.clone())), json)
                }
                None => load::run(&args, None, json),
            }
        }
        cmd => {
            let mut cx = Context::new(&cli.global)?;
            match cmd {
                Command::Up(args) => up::run(&mut cx, &args),
                Command::Down(args) => down::run(&cx, &args),
                Command::Whoami => accounts::whoami(&cx),
                Command::Account(c) => accounts::account(&cx, c),
                Command::Role(c) => accounts::role(&cx, c),
                Command::Assume(a) => accounts::assume(&cx, a),
                Command::Deny(c) => accounts::deny(&cx, c),
                Command::Audit(a) => audit::run(&cx, &a),
                Command::Param(c) => params::run(&cx, c),
                Command::Secret(c) => secret::run(&cx, c),
                Command::Rds(c) => rds::run(&cx, c),
                Command::Template(c) => stacks::template(&cx, c),
                Command::Stack(c) => stacks::stack(&cx, c),
                Command::Asg(c) => asg::run(&cx, c),
                Command::Dns(c) => dns::run(&cx, c),
                Command::Image(c) => images::image(&cx, c),
                Command::Instance(c) => images::instance(&cx, c),
                Command::Lb(c) => lb::run(&cx, c),
                Command::Doctor { fix } => images::doctor(&cx, fix),
                Command::Repo(c) => apt::repo(&cx, c),
                Command::Snapshot(c) => apt::snapshot(&cx, c),
                Command::Publish(c) => apt::publish(&cx, c),
                Command::Key(c) => apt::key(&cx, c),
                Command::Db(c) => apt::db(&cx, c),
                Command::Mirror(c) => apt::mirror(&cx, c),
                Command::Git(c) => git::run(&cx, c),
                Command::Pipeline(crate::cli::PipelineCmd::Runs { repo, limit }) => {
                    git::runs(&cx, repo.as_deref(), limit)
                }
                Command::Pipeline(crate::cli::PipelineCmd::Logs { run, job, follow }) => {
                    if follow {
                        pipeline_ops::follow(&cx, run, job.as_deref())
                    } else {
                        git::logs(&cx, run, job.as_deref())
                    }
                }
                Command::Pipeline(crate::cli::PipelineCmd::Dispatch {
                    repo,
                    workflow,
                    git_ref,
                    fields,
                }) => pipeline_ops::dispatch(&cx, &repo, &workflow, git_ref, &fields),
                Command::Pipeline(crate::cli::PipelineCmd::Cancel { run }) => {
                    pipeline_ops::cancel(&cx, run)
                }
                Command::Pipeline(crate::cli::PipelineCmd::Rerun { run, failed }) => {
                    pipeline_ops::rerun(&cx, run, failed)
                }
                Command::Ui => pipeline_ops::ui(&cx),
                Command::Ssh(a) => ssh::run(&cx, a),
                Command::Server(_)
                | Command::Completions { .. }
                | Command::Pkg(_)
                | Command::Pipeline(crate::cli::PipelineCmd::Validate { .. })
                | Command::Bake(_)
                | Command::Devbox(_)
                | Command::Load(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}
