//! `spindle devbox up|list|down|exec|shell`: the production image as a long-lived local box.
//!
//! `up DIR [IMAGE]` reads the project's `spindle.toml` and brings the image up to date exactly
//! as `spindle up` does (the same plan, steps, variables, repository and cache; only the
//! stacks are left out), then asks the daemon to run it as the box with the project's root
//! bind-mounted read-write at `/project`. `up RECIPE.pkr.hcl` bakes a recipe as `spindle bake
//! build` does and mounts the recipe's directory. `--mount HOST:GUEST` overrides either. The
//! daemon supervises the box, so it outlives this command.
//!
//! `shell` runs on the daemon's host as root: it asks the daemon where the box runs and joins
//! it on the user's own terminal through `spindle_runtime::attach`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use clap::Subcommand;
use spindle_model::api::ExecRequest;
use spindle_model::devbox::{DevboxInfo, DevboxMount, PutDevbox};
use spindle_runtime::{AttachTarget, BindMount, RealKernel, SeccompProfile};

use crate::cli::{DaemonArgs, Global};
use crate::commands::server::data_dir;
use crate::commands::up_project;
use crate::context::{api_err, hinted, Context};
use crate::output;
use spindle_project::{ImageSpec, Manifest, Step};

/// Where the project directory appears inside the box unless `--mount` says otherwise.
pub const DEFAULT_GUEST: &str = "/project";

#[derive(Debug, Subcommand)]
pub enum DevboxCmd {
    /// Run a project's image as a long-lived box with the project mounted at /project:
    /// `spindle devbox up DIR [IMAGE]` brings IMAGE of DIR/spindle.toml up to date as
    /// `spindle up` does (everything but the stacks) and mounts the project's root; or
    /// `spindle devbox up RECIPE.pkr.hcl [-var K=V]… [-only NAME] [-cache-dir DIR]` bakes a
    /// recipe as `bake build` does and mounts the recipe's directory
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
        /// Run the box under a wider seccomp profile: `devbox` lets tools in it make user
        /// namespaces and mount in them (`unshare -Urm`, rootless Podman); needs the grant
        /// `instance:UseSeccompProfile`
        #[arg(long, value_name = "PROFILE")]
        seccomp_profile: Option<String>,
        /// The project's data dir and daemon (as for `spindle up`)
        #[command(flatten)]
        daemon: DaemonArgs,
        /// The project directory and image, or the recipe and `bake build`'s flags
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// List the account's boxes: name, image, state, address, mount
    List,
    /// Stop and remove a box and its network
    Down { name: String },
    /// Open an interactive shell in a box on this terminal (window size, Ctrl-C and the exit
    /// code are the terminal's), or run COMMAND there: `spindle devbox shell NAME [-- CMD…]`.
    /// Runs as root on the daemon's host with the admin credential: it joins the box's
    /// namespaces itself, so the shell is attached to your own terminal
    Shell {
        name: String,
        /// The command [default: bash, else sh, as a login shell in the project directory]
        #[arg(last = true)]
        command: Vec<String>,
    },
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

/// The mount `up` asks for, checked here so a bad flag fails before anything is baked: the
/// flag's, else `what` (the recipe's directory or the project's root, found by `dir`) at
/// [`DEFAULT_GUEST`].
fn mount(
    flag: Option<&str>,
    no_mount: bool,
    what: &str,
    dir: impl FnOnce() -> Result<PathBuf>,
) -> Result<Option<BindMount>> {
    if no_mount {
        return Ok(None);
    }
    match flag {
        Some(spec) => BindMount::parse(spec)
            .map(Some)
            .map_err(|e| anyhow!("--mount: {e}")),
        None => BindMount::checked(&dir()?.display().to_string(), DEFAULT_GUEST)
            .map(Some)
            .map_err(|e| {
                anyhow!("{what} can't be the project directory: {e}; give --mount HOST:GUEST or --no-mount")
            }),
    }
}

/// The recipe's directory, resolved.
fn recipe_dir(recipe: &Path) -> Result<PathBuf> {
    Ok(std::fs::canonicalize(recipe)
        .with_context(|| format!("cannot read recipe `{}`", recipe.display()))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/")))
}

/// The project directory when `arg` names one: a directory, or a `spindle.toml`.
fn project_dir(arg: &str) -> Option<PathBuf> {
    let p = Path::new(arg);
    if p.is_dir() {
        return Some(p.to_path_buf());
    }
    (p.file_name()? == spindle_project::MANIFEST).then(|| {
        p.parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    })
}

/// The image of the manifest a box runs: the one named, else the only one.
fn pick_image<'m>(m: &'m Manifest, name: Option<&str>) -> Result<&'m ImageSpec> {
    let names = || m.images.keys().cloned().collect::<Vec<_>>().join(", ");
    match name {
        Some(n) => m.images.get(n).ok_or_else(|| {
            anyhow!(
                "{}: no image `{n}` (images: {})",
                m.path.display(),
                if m.images.is_empty() {
                    "none".into()
                } else {
                    names()
                }
            )
        }),
        None => match m.images.values().collect::<Vec<_>>().as_slice() {
            [one] => Ok(one),
            [] => bail!(
                "{}: the project has no [images.NAME] to run",
                m.path.display()
            ),
            _ => bail!(
                "{}: the project has several images ({}); name one: spindle devbox up DIR IMAGE",
                m.path.display(),
                names()
            ),
        },
    }
}

/// Whether `devbox up` runs `step` of `spindle up`'s plan to bring `image` up to date: every
/// step but the stacks' and other images' bakes.
fn needed_for(step: &Step, image: &str) -> bool {
    match step {
        Step::DeployStack(_) => false,
        Step::BakeImage { spec, .. } => spec.name == image,
        _ => true,
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
        seccomp_profile,
        daemon,
        args,
    } = cmd
    {
        let o = UpOptions {
            name,
            flag: flag.as_deref(),
            no_mount,
            instance_type,
            seccomp_profile,
        };
        return match args.first().and_then(|a| project_dir(a)) {
            Some(dir) => up_project(g, &daemon, o, &dir, &args[1..]),
            None => up(g, o, &args),
        };
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
        DevboxCmd::Shell { name, command } => shell(c, &account, &name, command)?,
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

/// `devbox shell`: asks the daemon where the box runs, then joins it on this terminal and
/// exits with the command's exit code.
fn shell(
    c: &spindle_client::Client,
    account: &str,
    name: &str,
    command: Vec<String>,
) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(hinted(
            "devbox shell joins the box's namespaces on this host, which needs root",
            "run it with sudo on the daemon's machine; `spindle devbox exec` works from anywhere",
        ));
    }
    let a = c.attach_devbox(account, name).map_err(api_err)?;
    let argv = if command.is_empty() {
        login_shell(a.mount_guest.as_deref())
    } else {
        command
    };
    let target = AttachTarget {
        pid: a.pid,
        pid_start: a.pid_start,
        cgroup_procs: a.cgroup_procs.iter().map(PathBuf::from).collect(),
        seccomp: SeccompProfile::from_name(&a.seccomp).ok_or_else(|| {
            anyhow!(
                "the daemon names seccomp profile `{}`, which this spindle doesn't know",
                a.seccomp
            )
        })?,
    };
    let env = shell_env(std::env::var("TERM").ok());
    let code = spindle_runtime::attach(&RealKernel, &target, &argv, &env)
        .with_context(|| format!("devbox `{name}` ({})", a.instance_id))?;
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    std::process::exit(code)
}

/// The default command of `devbox shell`: a login shell (bash if the image has it) in the
/// project directory. The directory is an argument, not part of the script, so no quoting.
fn login_shell(project: Option<&str>) -> Vec<String> {
    let script = "cd \"$1\" 2>/dev/null; [ -x /bin/bash ] && exec /bin/bash -l; exec /bin/sh -l";
    ["/bin/sh", "-c", script, "sh", project.unwrap_or("/")]
        .map(String::from)
        .to_vec()
}

/// The shell's environment: the host's terminal type and nothing else of the host's.
fn shell_env(term: Option<String>) -> Vec<(String, String)> {
    vec![
        ("HOME".into(), "/root".into()),
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("TERM".into(), term.unwrap_or_else(|| "dumb".into())),
    ]
}

/// The flags `devbox up` takes in both of its forms.
struct UpOptions<'a> {
    name: Option<String>,
    flag: Option<&'a str>,
    no_mount: bool,
    instance_type: Option<String>,
    seccomp_profile: Option<String>,
}

impl UpOptions<'_> {
    fn check_name(&self) -> Result<()> {
        if self.name.as_deref() == Some("") {
            bail!("--name must not be empty");
        }
        Ok(())
    }
}

/// The daemon refuses a scoped credential's mount; asking first saves a bake.
fn check_mount_allowed(cx: &Context, mount: Option<&BindMount>) -> Result<()> {
    if let Some(m) = mount {
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
    Ok(())
}

/// `devbox up RECIPE.pkr.hcl [bake flags]`.
fn up(g: &Global, o: UpOptions<'_>, args: &[String]) -> Result<()> {
    let a = super::bake::parse_args(args)?;
    if a.no_import {
        bail!("-no-import: a devbox runs the image in the daemon, so it must be imported");
    }
    let recipe = match a.files.as_slice() {
        [f] => f.clone(),
        _ => bail!("give exactly one recipe file, or a project directory"),
    };
    let mount = mount(o.flag, o.no_mount, "the recipe's directory", || {
        recipe_dir(&recipe)
    })?;
    o.check_name()?;
    let cx = Context::new(g)?;
    check_mount_allowed(&cx, mount.as_ref())?;
    let results = super::bake::build(&a, g, true)?;
    let r = &results[0];
    let image = r["imported"]
        .as_str()
        .ok_or_else(|| anyhow!("the bake imported no image"))?
        .to_string();
    let name = o
        .name
        .unwrap_or_else(|| default_name(r["image_name"].as_str().unwrap_or_default()));
    put(
        &cx,
        &cx.account()?,
        &name,
        image,
        mount,
        o.instance_type,
        o.seccomp_profile,
    )
}

/// `devbox up DIR [IMAGE]`: the image as `spindle up` makes it, the project's root mounted.
fn up_project(
    g: &Global,
    daemon: &DaemonArgs,
    o: UpOptions<'_>,
    dir: &Path,
    rest: &[String],
) -> Result<()> {
    let wanted = match rest {
        [] => None,
        [image] if !image.starts_with('-') => Some(image.as_str()),
        _ => bail!(
            "devbox up {}: give at most the name of one of its images; spindle.toml sets the recipe's variables",
            dir.display()
        ),
    };
    let manifest = Manifest::load(dir)?;
    let spec = pick_image(&manifest, wanted)?;
    let mount = mount(o.flag, o.no_mount, "the project's root", || {
        let root = manifest.path.parent().unwrap_or(Path::new("."));
        let root = if root.as_os_str().is_empty() {
            Path::new(".")
        } else {
            root
        };
        std::fs::canonicalize(root)
            .with_context(|| format!("cannot read the project directory `{}`", root.display()))
    })?;
    o.check_name()?;
    let mut cx = Context::new(g)?;
    super::up::connect(&mut cx, daemon)?;
    check_mount_allowed(&cx, mount.as_ref())?;
    let client = cx.client()?;
    let existing = client
        .list_accounts()
        .map_err(api_err)?
        .into_iter()
        .map(|a| a.name)
        .collect();
    let observed = up_project::observe(client, &manifest, existing)?;
    let plan = spindle_project::plan(&manifest, &observed);
    let steps: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| needed_for(s, &spec.name))
        .collect();
    super::up::run_steps(&cx, &manifest, &data_dir(daemon), &steps)?;
    // The box runs in the image's account, or in another account the image is shared with.
    let account = match cx.account_flag() {
        Some(a) if spec.accounts().any(|x| x.as_str() == a) => a.to_owned(),
        Some(a) => bail!(
            "--account {a}: image {} is in {} only",
            spec.name,
            spec.accounts()
                .map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => spec.account.to_string(),
    };
    let image = client
        .get_param(&account, &super::bake::latest_param(&spec.name)?, false)
        .map_err(api_err)
        .with_context(|| format!("the image {} that `spindle up` bakes", spec.name))?
        .value;
    let name = o.name.unwrap_or_else(|| default_name(&spec.name));
    put(
        &cx,
        &account,
        &name,
        image,
        mount,
        o.instance_type,
        o.seccomp_profile,
    )
}

/// Asks the daemon to run `image` as the box and shows what it did.
fn put(
    cx: &Context,
    account: &str,
    name: &str,
    image: String,
    mount: Option<BindMount>,
    instance_type: Option<String>,
    seccomp_profile: Option<String>,
) -> Result<()> {
    let res = cx
        .client()?
        .put_devbox(
            account,
            name,
            &PutDevbox {
                image,
                mount: mount.map(|m| DevboxMount {
                    host: m.host.display().to_string(),
                    guest: m.guest,
                }),
                instance_type,
                seccomp_profile,
            },
        )
        .map_err(api_err)?;
    if cx.json() {
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
        // An id is the credential's own account; a name was chosen, so say it.
        let flag = if account.chars().all(|c| c.is_ascii_digit()) {
            String::new()
        } else {
            format!("--account {account} ")
        };
        println!("  spindle {flag}devbox shell {}", b.name);
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
            let e = mount(Some(flag), false, "", || recipe_dir(&recipe))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{flag}: {e}");
        }
        let m = mount(None, false, "", || recipe_dir(&recipe))
            .unwrap()
            .unwrap();
        assert_eq!(m.host, std::fs::canonicalize(d.path()).unwrap());
        assert_eq!(m.guest, DEFAULT_GUEST);
        assert_eq!(mount(None, true, "", || recipe_dir(&recipe)).unwrap(), None);
        let e = mount(None, false, "the project's root", || Ok(PathBuf::from("/")))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the project's root can't be the project directory: host path `/` is the root directory"),
            "{e}"
        );
    }

    #[test]
    fn project_dirs_and_images() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().to_str().unwrap();
        assert_eq!(project_dir(dir), Some(d.path().to_path_buf()));
        assert_eq!(
            project_dir(&format!("{dir}/spindle.toml")),
            Some(d.path().to_path_buf())
        );
        assert_eq!(project_dir("spindle.toml"), Some(PathBuf::from(".")));
        assert_eq!(project_dir(&format!("{dir}/box.pkr.hcl")), None);

        for f in ["web.pkr.hcl", "db.pkr.hcl"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let file = d.path().join("spindle.toml");
        let manifest = |images: &str| {
            let text = format!("[project]\nname = \"p\"\n[accounts.dev]\n{images}");
            Manifest::parse(&file, &text).unwrap()
        };
        let image =
            |n: &str| format!("[images.{n}]\nrecipe = \"{n}.pkr.hcl\"\naccount = \"dev\"\n");
        let one = manifest(&image("web"));
        let two = manifest(&(image("web") + &image("db")));
        let none = manifest("");
        let f = file.display();
        for (m, name, want) in [
            (&one, None, Ok("web")),
            (&one, Some("web"), Ok("web")),
            (&one, Some("db"), Err(format!("{f}: no image `db` (images: web)"))),
            (&two, Some("db"), Ok("db")),
            (
                &two,
                None,
                Err(format!("{f}: the project has several images (db, web); name one: spindle devbox up DIR IMAGE")),
            ),
            (&none, None, Err(format!("{f}: the project has no [images.NAME] to run"))),
            (&none, Some("x"), Err(format!("{f}: no image `x` (images: none)"))),
        ] {
            let got = pick_image(m, name)
                .map(|i| i.name.as_str())
                .map_err(|e| e.to_string());
            assert_eq!(got, want, "{name:?}");
        }
    }

    #[test]
    fn login_shell_goes_to_the_project() {
        assert_eq!(
            login_shell(Some("/project"))[3..],
            ["sh".to_string(), "/project".to_string()]
        );
        assert_eq!(login_shell(None)[4], "/");
        let env = shell_env(None);
        assert!(env.contains(&("TERM".into(), "dumb".into())));
        assert!(shell_env(Some("xterm-256color".into()))
            .contains(&("TERM".into(), "xterm-256color".into())));
    }
}
