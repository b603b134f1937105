//! # spindle-pipeline: the workflow language of Spindle's build pipelines
//!
//! GitHub Actions workflow YAML, a documented subset, read strictly and checked offline. The
//! crate is pure: no I/O, no clock, no processes. The runner (a later part of issue #17)
//! executes what it plans.
//!
//! ## Entry points
//! - [`parse`]: text → [`Workflow`] (keys rated by [`keys::KEYS`], values typed, expressions
//!   parsed and their contexts checked, `needs` a DAG, static matrices expanded), or every
//!   problem at once with `file:line:column`.
//! - [`expr::parse`] / [`eval::Contexts::eval`], [`eval::Contexts::interpolate`],
//!   [`eval::Contexts::condition`]: `${{ }}` expressions with GitHub's coercions.
//! - [`matrix::expand`]: `strategy.matrix` → combinations, GitHub's include/exclude rules.
//! - [`graph::JobGraph::stages`]: the job graph ordered into stages.
//! - [`cron::Cron::parse`], for schedules; [`model::PushFilter::matches`], for pushes
//!   ([`filter`]: GitHub's filter patterns).
//! - [`keys::markdown`], [`actions::markdown`]: the tables docs/pipelines.md holds.
//!
//! ## Example
//! ```
//! use spindle_pipeline::{eval::Contexts, expr, parse, MatrixPlan};
//!
//! let src = "on: push\njobs:\n  build:\n    runs-on: debian-12\n    strategy:\n      matrix:\n\
//!            \x20       arch: [amd64, arm64]\n    steps:\n      - run: make ARCH=${{ matrix.arch }}\n\
//!            \x20 ship:\n    needs: build\n    runs-on: debian-12\n    steps:\n      - uses: spindle/publish@v1\n\
//!            \x20       with: {repo: dev, packages: '*.deb'}\n";
//! let wf = parse(src, "release.yml").expect("valid workflow");
//! assert_eq!(wf.graph.stages().unwrap(), [["build"], ["ship"]]);
//! let Some(MatrixPlan::Static { combinations }) = &wf.jobs[0].matrix else { panic!() };
//! assert_eq!(combinations.len(), 2);
//!
//! // A mistake is reported with its position.
//! let err = parse("on: push\njobs:\n  a:\n    runs-on: d\n    steps: [{run: x, shel: sh}]\n", "x.yml");
//! assert_eq!(err.unwrap_err().0[0].to_string(),
//!            "x.yml:5:22: jobs.a.steps[0].shel: unknown-key: unknown key `shel` under `jobs.<job_id>.steps[]`; did you mean `shell`?");
//!
//! // Expressions evaluate with GitHub's loose rules.
//! let cx = Contexts::default();
//! let e = expr::parse("'1' == 1 && contains('Hello', 'LL')", 0).unwrap();
//! assert_eq!(cx.eval(&e).unwrap(), serde_json::json!(true));
//! ```
//!
//! ## Invariants
//! - One table ([`keys::KEYS`]) decides which keys exist and how far each is supported; the
//!   docs are generated from it and a test fails when they differ.
//! - No input makes the crate panic; nesting deeper than 128 levels is refused.
//! - A refused key or value is an error at its own position, never silently ignored.

pub mod actions;
pub mod cron;
pub mod diag;
pub mod eval;
pub mod expr;
pub mod filter;
pub mod graph;
pub mod keys;
pub mod logs;
pub mod matrix;
pub mod model;
pub mod rerun;
pub mod runner;
pub mod schedule;
pub mod trigger;
mod workflow;
pub mod yaml;

pub use diag::{Category, Diagnostic, Diagnostics, Pos};
pub use model::{Job, MatrixPlan, Step, StepAction, Workflow};

use diag::Sink;

/// Reads and checks a workflow. `Err` carries every problem, sorted by position.
pub fn parse(src: &str, file: &str) -> Result<Workflow, Diagnostics> {
    let mut sink = Sink::new(file);
    let source = workflow::Source::new(src);
    let wf = yaml::read(src, &mut sink).and_then(|root| {
        workflow::Checker {
            sink: &mut sink,
            src: &source,
            scopes: Default::default(),
        }
        .workflow(&root)
    });
    match wf {
        Some(w) if sink.diags.is_empty() => Ok(w),
        _ => {
            let mut d = sink.diags;
            d.sort_by_key(|a| a.pos);
            d.dedup();
            Err(Diagnostics(d))
        }
    }
}
