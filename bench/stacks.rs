//! Stacks benchmark: read + validate + plan of a 500-resource template (in process), the
//! registry-schema check of every property of that template (cold: the types decoded on
//! first use; and warm), and, through a release daemon's API, deploying a 100-resource stack
//! of SSM parameters, updating it, computing the change set of a 500-resource stack, and the
//! daemon's idle RSS before and after a validation decoded the schemas it needed.
//!
//! Run with `bench/run stacks`. Targets from the stacks issue: plan of 500 resources < 50 ms;
//! deploy of 100 SSM parameters < 1 s (CloudFormation takes minutes for small stacks, and
//! can't run here, so there is no peer in the same run); change set on 500 resources < 50 ms.
//! From issue #15: schema validation of 500 resources < 50 ms, printed with the plan in the
//! same run, and with cfn-lint on the same file when it is installed (`CFN_LINT` or `PATH`);
//! idle RSS < 30 MB with the schemas loaded lazily.

#[path = "common.rs"]
mod common;

use anyhow::{bail, Context as _, Result};
use common::{ms, pct, rss_kib, start};
use spindle_model::api::{DeployStack, TemplateRequest};
use spindle_template::{Context, PlanInput, ValidateOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `n` SSM parameters; every tenth reads the previous one's value, so the graph has chains.
fn params_template(n: usize, value: &str) -> String {
    let mut s = String::from("Resources:\n");
    for i in 0..n {
        let v = if i % 10 == 9 {
            format!("!Sub \"${{P{}.Value}}-{value}\"", i - 1)
        } else {
            format!("\"{value}-{i}\"")
        };
        s.push_str(&format!("  P{i}:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Name: /bench/p{i}\n      Type: String\n      Value: {v}\n"));
    }
    s
}

fn deploy(body: String, preview: bool) -> DeployStack {
    DeployStack {
        template: TemplateRequest {
            template_body: body,
            template_name: Some("bench.yaml".into()),
            parameters: Default::default(),
            ..TemplateRequest::default()
        },
        preview,
        ..DeployStack::default()
    }
}

fn main() -> Result<()> {
    let bin = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/release/spindle".into()),
    );

    // In process: the pure planner on the 500-resource shape.
    let src = spindle_template::synthetic_template(500);
    let mut plan_times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let tpl =
            spindle_template::parse(&src, "synthetic.yaml").map_err(|d| anyhow::anyhow!("{d}"))?;
        let input = PlanInput {
            context: Context::new("123456789012", "us-east-1", "bench"),
            validate: ValidateOptions {
                max_body_bytes: spindle_template::template::quota::S3_BODY_BYTES,
                ..ValidateOptions::default()
            },
            ..PlanInput::default()
        };
        spindle_template::plan(&tpl, &input).map_err(|d| anyhow::anyhow!("{d}"))?;
        plan_times.push(t.elapsed());
    }
    plan_times.sort();

    // The registry-schema check alone, on the same template. The first run in this
    // process decodes the four types' schemas; later runs find them decoded.
    let tpl =
        spindle_template::parse(&src, "synthetic.yaml").map_err(|d| anyhow::anyhow!("{d}"))?;
    let t = Instant::now();
    let d = spindle_template::validate::properties(&tpl);
    let schema_cold = t.elapsed();
    if !d.is_empty() {
        bail!("the synthetic template fails its schemas: {}", d[0]);
    }
    let mut schema_times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let d = spindle_template::validate::properties(&tpl);
        schema_times.push(t.elapsed());
        if !d.is_empty() {
            bail!("the synthetic template fails its schemas: {}", d[0]);
        }
    }
    schema_times.sort();

    // The external peer, when installed: cfn-lint on the same file (all its rules, and a
    // Python start, so the ratio is an upper bound on what the schema check alone saves).
    let cfn_lint = std::env::var_os("CFN_LINT")
        .map(PathBuf::from)
        .or_else(|| which("cfn-lint"));
    let lint_dir = tempfile::tempdir()?;
    let lint_file = lint_dir.path().join("synthetic.yaml");
    std::fs::write(&lint_file, &src)?;
    let mut lint_times = Vec::new();
    if let Some(cfn_lint) = &cfn_lint {
        for _ in 0..3 {
            let t = Instant::now();
            let o = std::process::Command::new(cfn_lint)
                .arg(&lint_file)
                .output()?;
            lint_times.push(t.elapsed());
            // cfn-lint exits non-zero for findings (warnings included); only a crash
            // (no report at all) makes its time meaningless.
            if !o.status.success() && o.stdout.is_empty() {
                bail!("cfn-lint failed: {}", String::from_utf8_lossy(&o.stderr));
            }
        }
        lint_times.sort();
    }

    // Through the daemon.
    let dir = tempfile::tempdir()?;
    let (d, _) = start(&bin, dir.path())?;
    let admin = common::admin(&d, dir.path())?;
    let rss_idle = rss_kib(d.pid().context("daemon pid")?)?;
    let report = admin.validate_template(
        "management",
        &TemplateRequest {
            template_body: src.clone(),
            template_name: Some("synthetic.yaml".into()),
            ..TemplateRequest::default()
        },
    )?;
    if report.diagnostics.iter().any(|d| d.category == "property") {
        bail!("the daemon finds property errors in the synthetic template");
    }
    let rss_validated = rss_kib(d.pid().context("daemon pid")?)?;
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    for round in 0..5 {
        let name = format!("p100-{round}");
        let t = Instant::now();
        let r = admin.deploy_stack(
            "management",
            &name,
            &deploy(params_template(100, "a"), false),
        )?;
        creates.push(t.elapsed());
        if r.status.as_deref() != Some("CREATE_COMPLETE") {
            bail!("create ended {:?}: {:?}", r.status, r.reason);
        }
        let t = Instant::now();
        let r = admin.deploy_stack(
            "management",
            &name,
            &deploy(params_template(100, "b"), false),
        )?;
        updates.push(t.elapsed());
        if r.status.as_deref() != Some("UPDATE_COMPLETE") {
            bail!("update ended {:?}: {:?}", r.status, r.reason);
        }
        admin.delete_stack("management", &name)?;
    }
    creates.sort();
    updates.sort();

    let r = admin.deploy_stack(
        "management",
        "p500",
        &deploy(params_template(500, "a"), false),
    )?;
    if r.status.as_deref() != Some("CREATE_COMPLETE") {
        bail!("500-parameter create ended {:?}: {:?}", r.status, r.reason);
    }
    let mut previews = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let p = admin.deploy_stack(
            "management",
            "p500",
            &deploy(params_template(500, "b"), true),
        )?;
        previews.push(t.elapsed());
        if p.changes.len() != 500 {
            bail!("expected 500 changes, got {}", p.changes.len());
        }
    }
    previews.sort();
    drop(d);

    let line = |what: &str, v: &[Duration], target: &str| {
        println!(
            "  {what:<58} p50 {}  max {}   target {target}",
            ms(pct(v, 0.5)),
            ms(*v.last().unwrap_or(&Duration::ZERO))
        );
    };
    println!("stacks benchmark (binary {})", bin.display());
    line(
        "read + validate + plan, 500 resources (in process)",
        &plan_times,
        "< 50 ms",
    );
    line(
        "schema check of every property, 500 resources (warm)",
        &schema_times,
        "< 50 ms",
    );
    println!(
        "  {:<58} {}   (decodes the 4 types used)",
        "schema check, first run in the process (cold)",
        ms(schema_cold)
    );
    println!(
        "  ratio schema check (warm p50) / plan (p50, the peer):      {:.2}",
        pct(&schema_times, 0.5).as_secs_f64() / pct(&plan_times, 0.5).as_secs_f64()
    );
    match &cfn_lint {
        Some(path) => {
            line(
                &format!("peer: cfn-lint on the same file ({})", path.display()),
                &lint_times,
                "",
            );
            println!(
                "  ratio cfn-lint (p50) / schema check (warm p50):              {:.0}",
                pct(&lint_times, 0.5).as_secs_f64() / pct(&schema_times, 0.5).as_secs_f64()
            );
        }
        None => println!("  peer cfn-lint not found (put it on PATH or set CFN_LINT)"),
    }
    line(
        "deploy 100 SSM parameters via the API (create)",
        &creates,
        "< 1 s",
    );
    line("update 100 SSM parameters via the API", &updates, "");
    line(
        "change set preview, 500-resource stack, via the API",
        &previews,
        "< 50 ms",
    );
    println!(
        "  daemon idle RSS after start: {:.1} MiB; after validating the 500-resource template (schemas decoded): {:.1} MiB   target < 30 MB",
        rss_idle as f64 / 1024.0,
        rss_validated as f64 / 1024.0
    );
    Ok(())
}

/// `name` on `PATH`, if it is there.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}
