//! Times read + validate + plan (+ a no-op change set) of a synthetic template.
//!
//! `cargo run --release -p spindle-template --example plan_synthetic -- 500`

use std::time::Instant;

use spindle_template::{
    classify, parse, plan, synthetic_template, template::quota, NoExternal, PlanInput,
    ResourceSchemas, StackState, ValidateOptions,
};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let runs = 20;
    let src = synthetic_template(n);
    let input = PlanInput {
        validate: ValidateOptions {
            max_body_bytes: quota::S3_BODY_BYTES,
            ..ValidateOptions::default()
        },
        ..PlanInput::default()
    };
    let mut best = f64::MAX;
    let mut best_cs = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let t = parse(&src, "synthetic").expect("synthetic templates parse");
        let p = plan(&t, &input).expect("synthetic templates plan");
        best = best.min(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let cs = classify(
            &StackState::default(),
            &p,
            ResourceSchemas::bundled(),
            &NoExternal,
        )
        .expect("classify");
        best_cs = best_cs.min(start.elapsed().as_secs_f64());
        assert_eq!(cs.changes.len(), p.resources.len());
    }
    println!(
        "{n} resources, {} bytes: read+validate+plan best of {runs}: {:.2} ms; change set: {:.2} ms",
        src.len(),
        best * 1e3,
        best_cs * 1e3
    );
}
