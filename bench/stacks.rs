//! Stacks benchmark: read + validate + plan of a 500-resource template (in process), and,
//! through a release daemon's API, deploying a 100-resource stack of SSM parameters, updating
//! it, and computing the change set of a 500-resource stack.
//!
//! Run with `bench/run stacks`. Targets from the stacks issue: plan of 500 resources < 50 ms;
//! deploy of 100 SSM parameters < 1 s (CloudFormation takes minutes for small stacks, and
//! can't run here, so there is no peer in the same run); change set on 500 resources < 50 ms.

#[path = "common.rs"]
mod common;

use anyhow::{bail, Result};
use common::{ms, pct, start};
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

    // Through the daemon.
    let dir = tempfile::tempdir()?;
    let (d, _) = start(&bin, dir.path())?;
    let admin = common::admin(&d, dir.path())?;
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
    Ok(())
}
