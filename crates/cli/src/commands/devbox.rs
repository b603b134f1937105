//! `spindle devbox up|list|down|exec`: the production image as a long-lived local box.
//!
//! `up` bakes the recipe exactly as `spindle bake build` does (same cache, same import into
//! the daemon, same parameter), then asks the daemon to run the image as the box, with the
//! project directory — the recipe's directory unless `--mount HOST:GUEST` says otherwise —
//! bind-mounted read-write. The daemon supervises the box, so it outlives this command.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Subcommand;
use spindle_model::api::ExecRequest;
use spindle_model::devbox::{DevboxInfo, DevboxMount, PutDevbox};
use spindle_runtime::BindMount;

use crate::cli::{Global, OutputFormat};
use crate::context::{api_err, Context};
use crate::output;

/// Where the project directory appears inside the box unless `--mount` says otherwise.
pub const DEFAULT_GUEST: &str = "/project";

#[derive(Debug, Subcommand)]
pub enum DevboxCmd {
    /// Bake RECIPE (cached, as `bake build`) and run it as a long-lived box with the project
    /// directory mounted: spindle devbox up [--name N] [--mount HOST:GUEST | --no-mount]
    /// RECIPE.pkr.hcl [-var K=V]… [-only NAME] [-cache-dir DIR]
    Up {
        /// The box's name [default: the recipe's image name]
        #[arg(long)]
        name: Option<String>,
        /// Mount this host directory at this path in the box [default: the recipe's
        /// directory at /project]; admin credential only
        #[arg(long, value_name = "HOST:GUEST", conflicts_with = "no_mount")]
        mount: Option<String>,
        /// Mount nothing (the only way for a scoped credential)
        #[arg(long)]
        no_mount: bool,
        /// Instance type [default: t3.medium]
        #[arg(long)]
        instance_type: Option<String>,
        /// The recipe and `bake build`'s flags
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// List the account's boxes: name, image, state, address, mount
    List,
    /// Stop and remove a box and its network
    Down { name: String },
    /// Run a command inside a box: `spindle devbox exec NAME -- ls /project`
    Exec {
        name: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 60)]
        timeout: u32,
    },
}

const HEADER: &[&str] = &["NAME", "IMAGE", "STATE", "ADDRESS", "MOUNT"];

fn row(b: &DevboxInfo) -> Vec<String> {
    vec![
        b.name.clone(),
        b.image_id.clone(),
        b.state.clone(),
        b.private_ip.clone(),
        b.mount.clone().unwrap_or_else(|| "-".into()),
    ]
}

/// The mount `up` asks for, checked here so a bad flag fails before anything is baked.
fn mount(flag: Option<&str>, no_mount: bool, recipe: &Path) -> Result<Option<BindMount>> {
    if no_mount {
        return Ok(None);
    }
    match flag {
        Some(spec) => BindMount::parse(spec)
            .map(Some)
            .map_err(|e| anyhow!("--mount: {e}")),
        None => {
            let dir = std::fs::canonicalize(recipe)
                .with_context(|| format!("cannot read recipe `{}`", recipe.display()))?
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("/"));
            BindMount::checked(&dir.display().to_string(), DEFAULT_GUEST)
                .map(Some)
                .map_err(|e| {
                    anyhow!("the recipe's directory can't be the project directory: {e}; give --mount HOST:GUEST or --no-mount")
                })
        }
    }
}

/// A box name from an image name (`Web_App:1` → `web-app`).
fn default_name(image_name: &str) -> String {
    let base = image_name.split(':').next().unwrap_or_default();
    let s: String = base
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() {
        "devbox".into()
    } else {
        s.chars().take(40).collect()
    }
}

pub fn run(cmd: DevboxCmd, g: &Global) -> Result<()> {
    if let DevboxCmd::Up {
        name,
        mount: flag,
        no_mount,
        instance_type,
        args,
    } = cmd
    {
        return up(g, name, flag.as_deref(), no_mount, instance_type, &args);
    }
    let cx = Context::new(g)?;
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        DevboxCmd::Up { .. } => unreachable!("handled above"),
        DevboxCmd::List => {
            let list = c.list_devboxes(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
            } else {
                output::table(HEADER, &list.iter().map(row).collect::<Vec<_>>());
            }
        }
        DevboxCmd::Down { name } => {
            let b = c.delete_devbox(&account, &name).map_err(api_err)?;
            if cx.json() {
                output::json(&b);
            } else {
                println!(
                    "devbox {} removed ({} and its network)",
                    b.name, b.instance_id
                );
            }
        }
        DevboxCmd::Exec {
            name,
            command,
            timeout,
        } => {
            let r = c
                .exec_devbox(
                    &account,
                    &name,
                    &ExecRequest {
                        argv: command,
                        timeout_seconds: Some(timeout),
                    },
                )
                .map_err(api_err)?;
            super::images::show_exec(&cx, &r)?;
        }
    }
    Ok(())
}

fn up(
    g: &Global,
    name: Option<String>,
    flag: Option<&str>,
    no_mount: bool,
    instance_type: Option<String>,
    args: &[String],
) -> Result<()> {
    let a = super::bake::parse_args(args)?;
    if a.no_import {
        bail!("-no-import: a devbox runs the image in the daemon, so it must be imported");
    }
    let recipe = match a.files.as_slice() {
        [f] => f.clone(),
        _ => bail!("give exactly one recipe file"),
    };
    let mount = mount(flag, no_mount, &recipe)?;
    if let Some(n) = &name {
        if n.is_empty() {
            bail!("--name must not be empty");
        }
    }
    let cx = Context::new(g)?;
    // The daemon refuses a scoped credential's mount; asking first saves a bake.
    if let Some(m) = &mount {
        let me = cx.client()?.whoami().map_err(api_err)?;
        if !me.admin {
            bail!(
                "mount: a host bind mount (`{}`) needs the installation's admin credential; \
                 this credential ({}) may not ask for one\nhint: use the admin profile, or --no-mount",
                m.host.display(),
                me.arn
            );
        }
    }
    let results = super::bake::build(&a, g, true)?;
    let r = &results[0];
    let image = r["imported"]
        .as_str()
        .ok_or_else(|| anyhow!("the bake imported no image"))?
        .to_string();
    let name = name.unwrap_or_else(|| default_name(r["image_name"].as_str().unwrap_or_default()));
    let res = cx
        .client()?
        .put_devbox(
            &cx.account()?,
            &name,
            &PutDevbox {
                image,
                mount: mount.map(|m| DevboxMount {
                    host: m.host.display().to_string(),
                    guest: m.guest,
                }),
                instance_type,
            },
        )
        .map_err(api_err)?;
    if g.output == OutputFormat::Json {
        output::json(&res);
    } else {
        let b = &res.devbox;
        println!(
            "devbox {} {}: {} running {} at {}{}",
            b.name,
            res.change,
            b.instance_id,
            b.image_id,
            b.private_ip,
            b.mount
                .as_deref()
                .map(|m| format!(", {m} mounted"))
                .unwrap_or_default()
        );
        println!("  spindle devbox exec {} -- sh", b.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_image_names() {
        assert_eq!(default_name("web:latest"), "web");
        assert_eq!(default_name("Web_App:1"), "web-app");
        assert_eq!(default_name("::"), "devbox");
    }

    #[test]
    fn mount_flag_errors_name_the_flag() {
        let d = tempfile::tempdir().unwrap();
        let recipe = d.path().join("r.pkr.hcl");
        std::fs::write(&recipe, "").unwrap();
        for (flag, want) in [
            (
                "relative:/p",
                "--mount: host path `relative` must be absolute",
            ),
            ("/:/p", "--mount: host path `/` is the root directory"),
            ("/nonexistent-sp-dbx:/p", "does not exist"),
            ("/tmp", "--mount: expected HOST:GUEST"),
        ] {
            let e = mount(Some(flag), false, &recipe).unwrap_err().to_string();
            assert!(e.contains(want), "{flag}: {e}");
        }
        let m = mount(None, false, &recipe).unwrap().unwrap();
        assert_eq!(m.host, std::fs::canonicalize(d.path()).unwrap());
        assert_eq!(m.guest, DEFAULT_GUEST);
        assert_eq!(mount(None, true, &recipe).unwrap(), None);
    }
}
