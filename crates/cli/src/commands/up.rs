//! `spindle up DIR`: the main job. Starts the daemon if none answers, reads the manifest, plans
//! with the pure planner in `spindle-project`, executes the steps through the API with a
//! progress display, and prints where to go next. Idempotent: a second run does nothing.

use crate::cli::{DaemonArgs, UpArgs};
use crate::commands::server::data_dir;
use crate::commands::{up_project, up_wait};
use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::{Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use spindle_model::api::{CreateAccount, DeployStack, TemplateRequest};
use spindle_project::{plan, Manifest, StackSpec, Step};
use std::io::{BufRead, Seek};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Serialize)]
struct UpReport {
    project: String,
    endpoint: String,
    daemon_started: bool,
    done: Vec<String>,
    up_to_date: Vec<String>,
    /// Where to send requests: every stack output named `Url` or `…Url`. Each URL that names
    /// a load balancer served (a healthy target behind it, no server error) before it was
    /// listed, unless `--wait 0`.
    urls: Vec<UrlInfo>,
    /// A `spindle load` command that shows the first auto scaling group scale on its URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    load_command: Option<String>,
    /// How long each step took, in plan order.
    steps: Vec<StepTime>,
    seconds: f64,
}

#[derive(Serialize)]
pub struct StepTime {
    step: String,
    seconds: f64,
}

#[derive(Serialize)]
struct UrlInfo {
    stack: String,
    account: String,
    output: String,
    url: String,
    /// The load balancer's DNS name, when the output named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_name: Option<String>,
    /// The load balancer the URL names (what `up` waits on).
    #[serde(skip)]
    lb: Option<spindle_model::lb::LoadBalancerInfo>,
    /// The stack's auto scaling group, if it has one.
    #[serde(skip)]
    group: Option<String>,
}

pub fn run(cx: &mut Context, args: &UpArgs) -> Result<()> {
    let started = Instant::now();
    let manifest = Manifest::load(&args.dir)?;
    check_templates(&manifest)?;
    let daemon_started = connect(cx, &args.daemon)?;
    let client = cx.client()?;
    let existing: Vec<_> = client
        .list_accounts()
        .map_err(api_err)?
        .into_iter()
        .map(|a| a.name)
        .collect();
    let observed = up_project::observe(client, &manifest, existing)?;
    let plan = plan(&manifest, &observed);

    if args.dry_run {
        if cx.json() {
            output::json(&plan.steps.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        } else if plan.steps.is_empty() {
            println!("Nothing to do: project {} is up to date.", manifest.name);
        } else {
            println!("spindle up would:");
            plan.steps.iter().for_each(|s| println!("  {s}"));
        }
        return Ok(());
    }

    let steps: Vec<&Step> = plan.steps.iter().collect();
    let ran = run_steps(cx, &manifest, &data_dir(&args.daemon), &steps)?;
    let (done, times) = (ran.done, ran.times);
    let mut up_to_date = plan.up_to_date.clone();
    up_to_date.extend(ran.up_to_date);
    let json = cx.json();

    let urls = urls(client, &manifest)?;
    if args.wait > 0 {
        for u in &urls {
            let Some(lb) = &u.lb else { continue };
            let what = format!(
                "waiting for {} in {} to serve at {}",
                u.stack, u.account, u.url
            );
            let (b, detail) = spinner(&what, json);
            let say = |line: &str| detail.set_message(line.to_owned());
            let waited = Instant::now();
            let r = up_wait::wait_until_serving(
                client,
                &u.account,
                lb,
                &u.url,
                Duration::from_secs(args.wait),
                &say,
            );
            detail.finish_and_clear();
            b.finish_and_clear();
            r.map_err(|e| {
                hinted(
                    e,
                    format!(
                        "`spindle --account {} lb health {}` shows the targets, `spindle --account {} instance logs ID` an instance's console; `--wait SECONDS` waits longer",
                        u.account, lb.name, u.account
                    ),
                )
            })?;
            // After a run that did nothing, the URLs follow its one line directly.
            if !json && !done.is_empty() {
                println!(
                    "  ✓ {} in {} serves ({:.1} s)",
                    u.stack,
                    u.account,
                    waited.elapsed().as_secs_f64()
                );
            }
        }
    }
    let me = invocation();
    // Twine's groups track 100 requests/s per instance (RequestsPerTarget): 150/s keeps dev's
    // group at two instances, tenant-1's 5x spike at 20 s (270/s) takes it to its maximum of
    // three, and the other tenants' latency shows whether the spike hurt them.
    let load_command = urls.iter().find(|u| u.lb.is_some() && u.group.is_some()).map(|u| {
        format!(
            "{me} --account {} load {}/report --tenants 5 --rate 150/s --spike tenant-1:5x@20s --duration 60s --group {}",
            u.account,
            u.url.trim_end_matches('/'),
            u.group.as_deref().unwrap_or_default()
        )
    });
    let report = UpReport {
        project: manifest.name.clone(),
        endpoint: cx.endpoint(),
        daemon_started,
        done,
        up_to_date,
        urls,
        load_command,
        steps: times,
        seconds: started.elapsed().as_secs_f64(),
    };
    if json {
        output::json(&report);
    } else {
        if report.done.is_empty() {
            println!(
                "Nothing to do: project {} is up to date ({}).",
                report.project,
                report.up_to_date.join(", ")
            );
        } else {
            println!(
                "Project {} is up: {} step(s) done in {:.1} s.",
                report.project,
                report.done.len(),
                report.seconds
            );
        }
        println!();
        for u in &report.urls {
            println!("  {:<14} {}", format!("{} {}:", u.stack, u.account), u.url);
        }
        println!("  API:          {}", report.endpoint);
        println!(
            "  Credentials:  {} [{}]",
            cx.credentials_file.display(),
            cx.profile_name
        );
        println!("  Try:          spindle account list");
        if let Some(load) = &report.load_command {
            println!();
            println!("Watch it scale (a minute of load on loopback, one tenant spiking):");
            println!("  {load}");
        }
        println!();
        println!("Take it down: {me} down {}", args.dir.display());
    }
    Ok(())
}

/// How to type this `spindle` here: `spindle` when that is what `PATH` finds, else its path
/// (relative to the working directory when under it, as `scripts/up` leaves it:
/// `target/release/spindle`), so the commands `up` prints run as shown.
fn invocation() -> String {
    let Ok(exe) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "spindle".into();
    };
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p)
            .find_map(|d| std::fs::canonicalize(d.join("spindle")).ok())
            .is_some_and(|found| found == exe)
    });
    if on_path {
        return "spindle".into();
    }
    let cwd = std::env::current_dir()
        .and_then(std::fs::canonicalize)
        .unwrap_or_default();
    match exe.strip_prefix(&cwd) {
        Ok(rel) if !cwd.as_os_str().is_empty() => rel.display().to_string(),
        _ => exe.display().to_string(),
    }
}

/// Points `cx` at the daemon `daemon` describes, starting one in the background if none
/// answers, and at the profile holding that daemon's admin credential. Returns whether it
/// started one. `spindle up` and `spindle devbox up DIR` both begin here.
pub fn connect(cx: &mut Context, daemon: &DaemonArgs) -> Result<bool> {
    if !cx.endpoint_was_given() {
        cx.set_endpoint(format!("http://{}", daemon.listen));
    }
    let started = ensure_daemon(cx, daemon)?;
    if started {
        cx.reload()?;
    }
    use_daemons_profile(cx, &data_dir(daemon), started)?;
    Ok(started)
}

/// What [`run_steps`] did.
pub struct Ran {
    pub done: Vec<String>,
    pub up_to_date: Vec<String>,
    pub times: Vec<StepTime>,
}

/// Runs plan steps in order through the API, each with a spinner and a progress line (hidden
/// with `--output json`); the first failure stops the run. Packages, repo keyrings and the
/// bake cache live in the data dir, so `spindle up` and `spindle devbox up DIR` share them.
pub fn run_steps(cx: &Context, manifest: &Manifest, data: &Path, steps: &[&Step]) -> Result<Ran> {
    let client = cx.client()?;
    let bar = std::cell::RefCell::new(None::<ProgressBar>);
    let say = |line: &str| {
        if let Some(b) = bar.borrow().as_ref() {
            b.set_message(line.to_owned());
        }
    };
    let mut exec = up_project::Exec::new(
        client,
        manifest,
        data.join("up").join(&manifest.name),
        data.join("bake"),
        &say,
    );
    let mut ran = Ran {
        done: Vec::new(),
        up_to_date: Vec::new(),
        times: Vec::new(),
    };
    let json = cx.json();
    for (i, step) in steps.iter().enumerate() {
        let (b, detail) = spinner(&format!("[{}/{}] {step}", i + 1, steps.len()), json);
        *bar.borrow_mut() = Some(detail);
        let step_started = Instant::now();
        let result = run_step(client, &mut exec, step);
        if let Some(d) = bar.borrow_mut().take() {
            d.finish_and_clear();
        }
        b.finish_and_clear();
        ran.times.push(StepTime {
            step: step.to_string(),
            seconds: step_started.elapsed().as_secs_f64(),
        });
        match result.with_context(|| format!("step `{step}` failed"))? {
            StepResult::Done(what) => {
                if !json {
                    println!("  ✓ {what} ({:.1} s)", step_started.elapsed().as_secs_f64());
                }
                ran.done.push(what);
            }
            StepResult::UpToDate(what) => ran.up_to_date.push(what),
        }
    }
    Ok(ran)
}

/// Every output named `Url` or ending in `Url` of the manifest's stacks, in manifest order. A
/// URL naming one of the stack's load balancers by its DNS name gets the address the load
/// balancer listens on instead (the DNS name is kept beside it), so it works without the DNS
/// zone.
fn urls(client: &spindle_client::Client, m: &Manifest) -> Result<Vec<UrlInfo>> {
    let mut out = Vec::new();
    for s in &m.stacks {
        let d = client
            .describe_stack(s.account.as_str(), s.name.as_str())
            .map_err(api_err)?;
        let lbs = client
            .list_load_balancers(s.account.as_str())
            .unwrap_or_default();
        let group = d
            .resources
            .iter()
            .find(|r| r.resource_type == "AWS::AutoScaling::AutoScalingGroup")
            .map(|r| r.physical_id.clone());
        for o in d.outputs {
            if !(o.name.ends_with("Url") || o.name.ends_with("URL")) {
                continue;
            }
            let lb = lbs.iter().find(|lb| {
                lb.stack == s.name.as_str()
                    && o.value
                        .split("://")
                        .nth(1)
                        .is_some_and(|rest| rest.starts_with(lb.dns_name.as_str()))
            });
            let (url, dns_name) = match lb {
                Some(lb) => (
                    o.value.replacen(&lb.dns_name, &lb.address, 1),
                    Some(lb.dns_name.clone()),
                ),
                None => (o.value.clone(), None),
            };
            out.push(UrlInfo {
                stack: s.name.to_string(),
                account: s.account.to_string(),
                output: o.name,
                url,
                dns_name,
                lb: lb.cloned(),
                group: group.clone(),
            });
        }
    }
    Ok(out)
}

enum StepResult {
    Done(String),
    UpToDate(String),
}

/// Executes one step through the API.
fn run_step(
    client: &spindle_client::Client,
    exec: &mut up_project::Exec<'_>,
    step: &Step,
) -> Result<StepResult> {
    match step {
        Step::CreateAccount { name, description } => {
            let a = client
                .create_account(&CreateAccount {
                    name: name.clone(),
                    description: description.clone(),
                })
                .map_err(api_err)?;
            Ok(StepResult::Done(format!(
                "created account {} ({})",
                a.name, a.id
            )))
        }
        Step::CreateSigningKey { account, name } => {
            exec.create_signing_key(account, name).map(StepResult::Done)
        }
        Step::CreateRepo(r) => exec.create_repo(r).map(StepResult::Done),
        Step::BuildPackage { spec, inputs } => {
            exec.build_package(spec, inputs).map(StepResult::Done)
        }
        Step::Publish {
            repo,
            packages,
            create,
        } => exec.publish(repo, packages, *create).map(StepResult::Done),
        Step::BakeImage { spec, inputs } => exec.bake(spec, inputs).map(StepResult::Done),
        Step::DeployStack(spec) => deploy_stack(client, spec),
    }
}

/// Validates every stack template of the project, before anything is built or started, so
/// every mistake is reported at once in seconds rather than after the build. The checks are
/// the daemon's (`template validate` without a daemon), which runs them again at each preview.
fn check_templates(m: &Manifest) -> Result<()> {
    let mut problems = Vec::new();
    for s in &m.stacks {
        let req = crate::commands::stacks::read_template(&s.template, &[])?;
        let report = spindle_server::template_report_offline(&req);
        problems.extend(report.diagnostics.iter().map(|d| d.to_string()));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(hinted(
        format!(
            "{} problem(s) in the project's templates; nothing was started:\n  {}",
            problems.len(),
            problems.join("\n  ")
        ),
        "`spindle template validate FILE` checks one template",
    ))
}

/// Previews the stack's change set and executes it when it is not empty.
fn deploy_stack(client: &spindle_client::Client, spec: &StackSpec) -> Result<StepResult> {
    let template_body = std::fs::read_to_string(&spec.template)
        .with_context(|| format!("cannot read `{}`", spec.template.display()))?;
    let mut nested_templates = std::collections::BTreeMap::new();
    crate::commands::stacks::bundle_nested(&spec.template, &template_body, &mut nested_templates)?;
    let template = TemplateRequest {
        template_body,
        template_name: Some(spec.template.display().to_string()),
        parameters: spec.parameters.clone(),
        nested_templates,
        use_previous_values: Vec::new(),
    };
    let account = spec.account.as_str();
    let mut req = DeployStack {
        template,
        preview: true,
        expected_change_set: None,
        disable_rollback: false,
        ..DeployStack::default()
    };
    let preview = client
        .deploy_stack(account, spec.name.as_str(), &req)
        .map_err(api_err)?;
    if preview.changes.is_empty() {
        return Ok(StepResult::UpToDate(format!(
            "stack {} in {account}",
            spec.name
        )));
    }
    if !preview.data_loss.is_empty() {
        // `up` runs unattended and again and again: it never replaces or deletes a database.
        return Err(hinted(
            format!(
                "stack {} in {account} not deployed: data loss: {}",
                spec.name,
                preview.data_loss.join("; ")
            ),
            format!(
                "`spindle --account {account} stack deploy {} {} --allow-data-loss` does it on purpose (a named final snapshot keeps the data)",
                spec.name,
                spec.template.display()
            ),
        ));
    }
    req.preview = false;
    req.expected_change_set = Some(preview.change_set_hash);
    let r = client
        .deploy_stack(account, spec.name.as_str(), &req)
        .map_err(api_err)?;
    let status = r.status.unwrap_or_default();
    if !status.ends_with("_COMPLETE") || status.contains("ROLLBACK") {
        return Err(hinted(
            format!(
                "stack {} in {account} is {status}: {}",
                spec.name,
                r.reason.unwrap_or_default()
            ),
            format!(
                "`spindle --account {account} stack events {}` shows what happened",
                spec.name
            ),
        ));
    }
    Ok(StepResult::Done(format!(
        "deployed stack {} in {account}: {status} ({} change(s))",
        spec.name,
        r.changes.len()
    )))
}

/// The step's spinner and, under it, a line its progress messages go to. Hidden with
/// `--output json` (so stdout is only the report).
fn spinner(msg: &str, hidden: bool) -> (ProgressBar, ProgressBar) {
    let make = |template: &str| {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_style(ProgressStyle::with_template(template).expect("constant template"));
        bar
    };
    let step = make("{spinner} {msg} {elapsed}");
    step.set_message(msg.to_owned());
    step.enable_steady_tick(Duration::from_millis(100));
    let detail = make("    {msg}");
    if !hidden {
        let multi = indicatif::MultiProgress::new();
        let step = multi.add(step);
        let detail = multi.add(detail);
        return (step, detail);
    }
    (step, detail)
}

/// Switches to the profile that holds the admin credential of the daemon on `data`, which
/// its `server.json` names: the daemon never overwrites another installation's profile, so
/// its credential may be under a name of its own. Done when this run started the daemon, or
/// when the selected profile points elsewhere than this daemon.
pub fn use_daemons_profile(cx: &mut Context, data: &Path, daemon_started: bool) -> Result<()> {
    let Some(info) = spindle_server::DataDir::read_info(data) else {
        return Ok(());
    };
    let Some(name) = info.admin_profile else {
        return Ok(());
    };
    if name == cx.profile_name || info.endpoint != cx.endpoint() {
        return Ok(());
    }
    if daemon_started || !cx.profile_points_at(&info.endpoint) {
        if !cx.json() {
            println!(
                "  using profile [{name}]: it holds the admin credential of the daemon on {}",
                data.display()
            );
        }
        cx.set_profile(&name)?;
    }
    Ok(())
}

/// Makes sure a daemon answers at the context's endpoint, starting one in the background if
/// not. Returns whether it started one.
fn ensure_daemon(cx: &Context, daemon: &DaemonArgs) -> Result<bool> {
    if cx.anonymous().health().is_ok() {
        return Ok(false);
    }
    if cx.endpoint_was_given() && cx.endpoint() != format!("http://{}", daemon.listen) {
        return Err(hinted(
            format!("no Spindle daemon answers at {}", cx.endpoint()),
            "start it, or leave out --endpoint so `spindle up` starts one",
        ));
    }
    let dir = data_dir(daemon);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data dir `{}`", dir.display()))?;
    let log_path = dir.join("spindle.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open the daemon log `{}`", log_path.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("cannot find the spindle executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("server")
        .arg("--data-dir")
        .arg(&dir)
        .arg("--listen")
        .arg(daemon.listen.to_string())
        .arg("--profile")
        .arg(&cx.profile_name)
        .arg("--credentials-file")
        .arg(&cx.credentials_file)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent; the daemon
        // gets its own session so it outlives this terminal.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
    }
    let (bar, _) = spinner(
        &format!(
            "starting the daemon (data dir {}, log {})",
            dir.display(),
            log_path.display()
        ),
        cx.json(),
    );
    let mut child = cmd.spawn().context("cannot start `spindle server`")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if cx.anonymous().health().is_ok() {
            bar.finish_and_clear();
            if !cx.json() {
                println!(
                    "  ✓ started the daemon at {} (pid {}, log {})",
                    cx.endpoint(),
                    child.id(),
                    log_path.display()
                );
            }
            return Ok(true);
        }
        if let Some(status) = child.try_wait()? {
            bar.finish_and_clear();
            return Err(hinted(
                format!(
                    "the daemon exited ({status}) before answering: {}",
                    log_tail(&log_path, log_start)
                ),
                format!("see {}", log_path.display()),
            ));
        }
        if Instant::now() > deadline {
            bar.finish_and_clear();
            return Err(hinted(
                format!("the daemon did not answer at {} within 30 s", cx.endpoint()),
                format!("see {}", log_path.display()),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last meaningful line the daemon wrote since `from`.
fn log_tail(path: &Path, from: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return "no log".into();
    };
    let _ = f.seek(std::io::SeekFrom::Start(from));
    std::io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .last()
        .unwrap_or_else(|| "no output".into())
}
