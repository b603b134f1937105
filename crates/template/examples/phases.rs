//! Times each phase separately (read, structure, validate, plan) on a synthetic template.

use std::time::Instant;

use spindle_template::{
    parse, plan, read, synthetic_template, template::quota, validate, PlanInput, ValidateOptions,
};

fn best(runs: usize, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let src = synthetic_template(500);
    let opts = ValidateOptions {
        max_body_bytes: quota::S3_BODY_BYTES,
        ..ValidateOptions::default()
    };
    let input = PlanInput {
        validate: ValidateOptions {
            max_body_bytes: quota::S3_BODY_BYTES,
            ..ValidateOptions::default()
        },
        ..PlanInput::default()
    };
    let t = parse(&src, "s").unwrap();
    let json = t.root.to_json().to_string();
    println!(
        "saphyr events only: {:.2} ms",
        best(20, || assert!(events_only(&src) > 0))
    );
    println!(
        "read yaml: {:.2} ms",
        best(20, || drop(read(&src, "s").unwrap()))
    );
    println!(
        "read json: {:.2} ms",
        best(20, || drop(read(&json, "s").unwrap()))
    );
    println!(
        "parse: {:.2} ms",
        best(20, || drop(parse(&src, "s").unwrap()))
    );
    println!(
        "validate: {:.2} ms",
        best(20, || assert!(validate(&t, &opts).is_empty()))
    );
    println!(
        "plan: {:.2} ms",
        best(20, || drop(plan(&t, &input).unwrap()))
    );
}

fn events_only(src: &str) -> usize {
    saphyr_parser::Parser::new_from_str(src).count()
}
