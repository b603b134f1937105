//! Replays load profiles (`tests/traces/*.csv`: offered requests per second) through a
//! simulated group and checks the decisions against `tests/traces/*.expected` (set
//! `UPDATE_EXPECT=1` to rewrite them after an intended change) and against the
//! stabilization rules: scale out within seconds, never scale in under load, no flapping.
//!
//! The model: each instance serves up to 50 req/s at 100% CPU; load spreads evenly over
//! the instances in service; an instance enters service the second after its launch and
//! is warming for 5 s.

mod sim;

use std::path::Path;

use spindle_autoscale::policy::Policy;
use spindle_autoscale::{Metric, Rules, Sample, Window};

const PER_INSTANCE: f64 = 50.0;

fn load(name: &str) -> Vec<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/traces")
        .join(format!("{name}.csv"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("t,"))
        .map(|l| l.split(',').nth(1).unwrap().trim().parse().unwrap())
        .collect()
}

struct Run {
    /// Desired capacity at each second.
    desired: Vec<u32>,
    /// Requests the group could not serve, per second.
    dropped: Vec<f64>,
    activities: Vec<String>,
}

fn replay(name: &str, policy: Policy) -> Run {
    let mut spec = sim::spec(1, 10);
    spec.warmup = 5;
    spec.rules = Rules {
        scale_in_seconds: 30,
        ..Rules::default()
    };
    spec.policies = vec![("track".into(), policy)];
    let mut s = sim::Sim::new(spec, 2);
    let mut w = Window::new(120);
    let mut run = Run {
        desired: Vec::new(),
        dropped: Vec::new(),
        activities: Vec::new(),
    };
    for offered in load(name) {
        let t = s.now + 1;
        let n = s.in_service() as u32;
        let ready = s
            .group
            .in_service()
            .filter(|m| s.group.is_ready(m, t))
            .count() as u32;
        let served = offered.min(f64::from(n) * PER_INSTANCE);
        let cpu = (n > 0).then(|| (served / f64::from(n) / PER_INSTANCE * 100.0).min(100.0));
        w.push(Sample {
            t,
            in_service: n,
            ready,
            cpu,
            requests: Some(served),
            ..Default::default()
        });
        s.step(&w);
        run.desired.push(s.group.desired);
        run.dropped.push(offered - served);
    }
    run.activities = s
        .group
        .activities
        .iter()
        .filter(|a| a.description.starts_with("Scaling"))
        .map(|a| format!("t={} {} | {}", a.at - 1_001, a.description, a.cause))
        .collect();
    run
}

fn check_expected(name: &str, run: &Run) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/traces")
        .join(format!("{name}.expected"));
    let got = run.activities.join("\n") + "\n";
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "decisions for {name} changed (UPDATE_EXPECT=1 rewrites {})",
        path.display()
    );
}

/// How many times the desired capacity changed direction.
fn reversals(d: &[u32]) -> usize {
    let dirs: Vec<i8> = d
        .windows(2)
        .filter(|p| p[0] != p[1])
        .map(|p| if p[1] > p[0] { 1 } else { -1 })
        .collect();
    dirs.windows(2).filter(|p| p[0] != p[1]).count()
}

fn cpu_policy() -> Policy {
    Policy::TargetTracking {
        metric: Metric::Cpu,
        target: 50.0,
        disable_scale_in: false,
        warmup: None,
    }
}

fn request_policy() -> Policy {
    // 25 req/s per target = 1500 per minute.
    Policy::TargetTracking {
        metric: Metric::RequestsPerTarget,
        target: 1500.0,
        disable_scale_in: false,
        warmup: None,
    }
}

#[test]
fn step_5x_on_cpu() {
    let run = replay("step5x", cpu_policy());
    check_expected("step5x.cpu", &run);
    // 40 req/s on 2 instances is 40% CPU: nothing to do before the step.
    assert!(
        run.desired[..30].iter().all(|d| *d == 2),
        "{:?}",
        &run.desired[..30]
    );
    let first_out = run.desired.iter().position(|d| *d > 2).unwrap();
    assert!(
        (30..=34).contains(&first_out),
        "first scale-out at {first_out} s"
    );
    // Under load (30..90 s) the group never shrinks.
    assert!(
        run.desired[30..90].windows(2).all(|p| p[1] >= p[0]),
        "{:?}",
        &run.desired[30..90]
    );
    // It reaches the capacity that holds the target (200 req/s at 50% of 50 req/s = 8; the
    // noise on top may ask for one more).
    assert!(
        (8..=9).contains(run.desired[30..90].iter().max().unwrap()),
        "{:?}",
        run.desired
    );
    // No requests dropped once the new capacity is in service (10 s after the step).
    assert_eq!(run.dropped[40..90].iter().sum::<f64>(), 0.0);
    // Scale-in only after the 30 s quiet window, and back to what 40 req/s needs.
    let first_in = (90..run.desired.len())
        .find(|t| run.desired[*t] < run.desired[*t - 1])
        .unwrap();
    // Seconds 90..=119 are the 30 quiet seconds the rule asks for.
    assert!(first_in >= 90 + 29, "scaled in at {first_in} s");
    assert_eq!(*run.desired.last().unwrap(), 2);
    assert!(reversals(&run.desired) <= 1, "flapping: {:?}", run.desired);
}

#[test]
fn step_5x_on_request_count() {
    let run = replay("step5x", request_policy());
    check_expected("step5x.requests", &run);
    // The step (at 30 s) doubles the metric at once: a surge, acted on in its first second.
    let first_out = run.desired.iter().position(|d| *d > 2).unwrap();
    assert_eq!(first_out, 30, "{:?}", run.activities);
    assert!(
        run.activities[0].contains("ALBRequestCountPerTarget"),
        "{:?}",
        run.activities
    );
    assert!(
        (8..=9).contains(run.desired[30..90].iter().max().unwrap()),
        "{:?}",
        run.desired
    );
    assert!(reversals(&run.desired) <= 1, "flapping: {:?}", run.desired);
}

#[test]
fn noisy_plateau_does_not_flap() {
    let run = replay("noisy_plateau", cpu_policy());
    check_expected("noisy_plateau.cpu", &run);
    let changes = run.desired.windows(2).filter(|p| p[0] != p[1]).count();
    assert!(changes <= 3, "{changes} changes: {:?}", run.activities);
    assert!(reversals(&run.desired) <= 1, "flapping: {:?}", run.desired);
}

#[test]
fn ramp_and_burst() {
    let run = replay("ramp_burst", request_policy());
    check_expected("ramp_burst.requests", &run);
    assert!(run.desired.iter().all(|d| (1..=10).contains(d)));
    // The ramp is followed up: at 330 req/s (t = 80..100) the group has the 14 it wants,
    // held at MaxSize 10.
    assert_eq!(run.desired[99], 10);
    assert!(*run.desired.last().unwrap() <= 2, "{:?}", run.desired);
}
