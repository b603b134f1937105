//! Scaling policies as pure functions of the metrics window.
//!
//! Each policy gives a [`Recommendation`] (a capacity and its cause) or no opinion;
//! [`decide`] combines them the way EC2 Auto Scaling does — the largest capacity wins, for
//! scale-out and scale-in alike — and clamps the result to the group's bounds.
//!
//! ## Rules (warm-up and stabilization)
//! - **Metrics of warming instances are not counted.** An instance is *warming* for
//!   `DefaultInstanceWarmup` (or the policy's `EstimatedInstanceWarmup`) seconds after it
//!   enters service; the CPU average covers only ready instances. Warming instances still
//!   count toward capacity, so a breach that persists while they warm up asks only for the
//!   capacity beyond them and never adds the same instances twice.
//! - **Scale out fast.** A target-tracking policy scales out when its metric is above the
//!   target in every one of the last [`Rules::scale_out_seconds`] seconds (3 by default),
//!   to `ceil(capacity × average / target)`.
//! - **Scale out at once on a surge.** When the metric is at least
//!   [`Rules::surge_factor`] × the target (2× by default) in every one of the last
//!   [`Rules::surge_seconds`] seconds (1 by default), it scales out without waiting for the
//!   longer window: a load step of that size is not noise, and the one-second metrics make
//!   it visible a second after it starts. A surge only ever adds capacity, and scale-in
//!   still needs the whole quiet window, so a one-second burst costs at most one early
//!   scale-out (held for the quiet window), never a reversal within it.
//! - **Scale in slowly.** It scales in only when the metric stayed below
//!   `target × (1 − tolerance)` in every second of the last [`Rules::scale_in_seconds`]
//!   (60 by default), no instance is warming, and no scaling activity happened in that
//!   window; it then goes to the *largest* capacity any second of the window asked for.
//! - **No flapping.** Between `target × (1 − tolerance)` and the target the policy holds the
//!   current capacity (the dead band, 10% by default); because a hold is a recommendation
//!   of the current capacity and the largest recommendation wins, one policy still wanting
//!   the capacity blocks another's scale-in.
//! - A second with no data (a gap, no ready instance for a CPU policy) gives no decision.
//!
//! Units: `ASGAverageCPUUtilization` is percent; `ALBRequestCountPerTarget` is requests per
//! target **per minute** as on AWS (Spindle measures it every second, as the rate of the
//! last second × 60), so templates written for AWS keep their target values.

use std::collections::BTreeMap;

use crate::metrics::{Sample, Window};

/// The stabilization parameters. Defaults as documented in the module.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// Consecutive seconds above target before a target-tracking scale-out.
    pub scale_out_seconds: u64,
    /// Seconds below the dead band (and without activity) before a scale-in.
    pub scale_in_seconds: u64,
    /// Width of the dead band under the target, as a fraction of the target.
    pub tolerance: f64,
    /// A metric at least this many times the target is a surge (0 turns surges off).
    pub surge_factor: f64,
    /// Consecutive seconds of surge before a target-tracking scale-out.
    pub surge_seconds: u64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            scale_out_seconds: 3,
            scale_in_seconds: 60,
            tolerance: 0.1,
            surge_factor: 2.0,
            surge_seconds: 1,
        }
    }
}

/// The predefined metrics of target tracking, and customized ones.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    /// `ASGAverageCPUUtilization`: percent, averaged over ready instances.
    Cpu,
    /// `ALBRequestCountPerTarget`: requests per in-service target per minute.
    RequestsPerTarget,
    /// A customized metric by its key in [`Sample::custom`] (for example
    /// `TargetResponseTime:p95`), with the name shown in causes.
    Custom { key: String, name: String },
}

impl Metric {
    /// The name shown in causes.
    pub fn name(&self) -> &str {
        match self {
            Metric::Cpu => "ASGAverageCPUUtilization",
            Metric::RequestsPerTarget => "ALBRequestCountPerTarget",
            Metric::Custom { name, .. } => name,
        }
    }

    /// The metric's value in one second, if there is data.
    pub fn value(&self, s: &Sample) -> Option<f64> {
        match self {
            Metric::Cpu => s.cpu.filter(|_| s.ready > 0),
            Metric::RequestsPerTarget => {
                let r = s.requests?;
                Some(r * 60.0 / f64::from(s.in_service.max(1)))
            }
            Metric::Custom { key, .. } => s.custom.get(key).copied(),
        }
    }

    /// The capacity that brings `value` to `target`, given the sample it was measured in.
    fn needed(&self, s: &Sample, value: f64, target: f64, capacity: u32) -> u32 {
        ceil_u32(self.load(s, value, capacity) / target)
    }

    /// The metric summed over the capacity it was measured on (`value` per instance ×
    /// instances), so seconds measured on different capacities can be averaged.
    fn load(&self, s: &Sample, value: f64, capacity: u32) -> f64 {
        let base = match self {
            // The average covers ready instances only: their load over the target is the
            // capacity needed in all, warming instances included (they take load as they
            // come up), so they are never added twice.
            Metric::Cpu => f64::from(s.ready),
            Metric::RequestsPerTarget => f64::from(s.in_service.max(1)),
            Metric::Custom { .. } => f64::from(capacity.max(1)),
        };
        base * value
    }
}

fn ceil_u32(x: f64) -> u32 {
    // A small epsilon so that 2.0000000001 from float noise does not become 3.
    let c = (x - 1e-9).ceil();
    if c.is_nan() || c < 0.0 {
        0
    } else if c > f64::from(u32::MAX) {
        u32::MAX
    } else {
        c as u32
    }
}

/// How a step or simple policy changes capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustmentType {
    ChangeInCapacity,
    ExactCapacity,
    PercentChangeInCapacity,
}

/// Compare the metric to the alarm's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanThreshold,
    GreaterThanOrEqualToThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    fn holds(self, v: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanThreshold => v > threshold,
            Comparison::GreaterThanOrEqualToThreshold => v >= threshold,
            Comparison::LessThanThreshold => v < threshold,
            Comparison::LessThanOrEqualToThreshold => v <= threshold,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::GreaterThanThreshold => ">",
            Comparison::GreaterThanOrEqualToThreshold => "≥",
            Comparison::LessThanThreshold => "<",
            Comparison::LessThanOrEqualToThreshold => "≤",
        }
    }
}

/// The alarm a step or simple policy acts on: the metric compared to a threshold in every
/// one of the last `seconds` seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarm {
    pub metric: Metric,
    pub comparison: Comparison,
    pub threshold: f64,
    pub seconds: u64,
}

impl Alarm {
    /// The latest value when the alarm is in breach.
    fn breached(&self, w: &Window, now: u64) -> Option<f64> {
        let samples = w.last(now, self.seconds.max(1))?;
        let values: Option<Vec<f64>> = samples.iter().map(|s| self.metric.value(s)).collect();
        let values = values?;
        values
            .iter()
            .all(|v| self.comparison.holds(*v, self.threshold))
            .then(|| *values.last().unwrap_or(&0.0))
    }

    fn cause(&self, v: f64) -> String {
        format!(
            "{} {} {} {} for {} s",
            self.metric.name(),
            fmt_num(v),
            self.comparison.symbol(),
            fmt_num(self.threshold),
            self.seconds.max(1)
        )
    }
}

/// One step of a step policy: applies when `lower ≤ value − threshold < upper`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: i64,
}

/// A scaling policy, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    TargetTracking {
        metric: Metric,
        target: f64,
        disable_scale_in: bool,
        /// `EstimatedInstanceWarmup`; the group's `DefaultInstanceWarmup` otherwise.
        warmup: Option<u64>,
    },
    Step {
        alarm: Alarm,
        adjustment_type: AdjustmentType,
        steps: Vec<Step>,
        min_adjustment_magnitude: Option<u32>,
        warmup: Option<u64>,
    },
    Simple {
        alarm: Alarm,
        adjustment_type: AdjustmentType,
        adjustment: i64,
        min_adjustment_magnitude: Option<u32>,
        /// Seconds after this policy's last activity during which it does not act again.
        cooldown: u64,
    },
}

/// What the policies see of the group besides the metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView {
    pub now: u64,
    pub desired: u32,
    pub min: u32,
    pub max: u32,
    /// Instances in service but still in their warm-up, plus pending ones.
    pub warming: u32,
    /// The last time the group's desired capacity changed (any cause).
    pub last_activity: Option<u64>,
    /// The last time each policy (by name) changed the desired capacity.
    pub policy_last: BTreeMap<String, u64>,
}

/// One policy's opinion.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub policy: String,
    pub capacity: u32,
    /// Why, without the capacity change ("ASGAverageCPUUtilization 91 > target 50 for 3 s").
    pub cause: String,
}

/// The combined decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub policy: String,
    pub from: u32,
    pub to: u32,
    /// The full cause: "ALBRequestCountPerTarget 182 > target 100 for 3 s: desired 2 → 4".
    pub cause: String,
}

pub(crate) fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 0.05 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn adjust(t: AdjustmentType, base: u32, adjustment: i64, min_magnitude: Option<u32>) -> u32 {
    let b = i64::from(base);
    let to = match t {
        AdjustmentType::ExactCapacity => adjustment,
        AdjustmentType::ChangeInCapacity => b + adjustment,
        AdjustmentType::PercentChangeInCapacity => {
            let mut change = (b as f64 * adjustment as f64 / 100.0).trunc() as i64;
            if change == 0 && adjustment != 0 {
                change = adjustment.signum();
            }
            if let Some(m) = min_magnitude {
                if change.abs() < i64::from(m) {
                    change = i64::from(m) * change.signum();
                }
            }
            b + change
        }
    };
    to.clamp(0, i64::from(u32::MAX)) as u32
}

/// One policy's recommendation, or `None` for no opinion.
pub fn recommend(
    name: &str,
    policy: &Policy,
    rules: &Rules,
    w: &Window,
    g: &GroupView,
) -> Option<Recommendation> {
    let rec = |capacity: u32, cause: String| Recommendation {
        policy: name.to_string(),
        capacity,
        cause,
    };
    match policy {
        Policy::TargetTracking {
            metric,
            target,
            disable_scale_in,
            ..
        } => {
            let latest = w.latest().filter(|s| s.t == g.now)?;
            let v_now = metric.value(latest)?;
            if v_now > *target {
                // Each second's value with its load (value × the capacity it was measured
                // on): a window that spans a scale-out is not counted on the new capacity.
                let window = |seconds: u64| -> Option<Vec<(f64, f64)>> {
                    w.last(g.now, seconds)?
                        .iter()
                        .map(|s| {
                            let v = metric.value(s)?;
                            Some((v, metric.load(s, v, g.desired)))
                        })
                        .collect()
                };
                let surge = target * rules.surge_factor;
                let surging = rules.surge_factor > 0.0
                    && window(rules.surge_seconds.max(1))
                        .is_some_and(|vs| vs.iter().all(|(v, _)| *v >= surge));
                let (values, seconds, cmp) = if surging {
                    let seconds = rules.surge_seconds.max(1);
                    let cmp = format!("≥ {}× target", fmt_num(rules.surge_factor));
                    (window(seconds)?, seconds, cmp)
                } else {
                    let values = window(rules.scale_out_seconds)?;
                    if !values.iter().all(|(v, _)| v > target) {
                        return Some(rec(g.desired, hold_cause(metric, v_now, *target)));
                    }
                    (values, rules.scale_out_seconds, "> target".to_string())
                };
                let n = values.len() as f64;
                let avg = values.iter().map(|(v, _)| v).sum::<f64>() / n;
                let need = ceil_u32(values.iter().map(|(_, l)| l).sum::<f64>() / n / target);
                let cause = format!(
                    "{} {} {cmp} {} for {seconds} s",
                    metric.name(),
                    fmt_num(avg),
                    fmt_num(*target),
                );
                return Some(rec(need.max(g.desired), cause));
            }
            let low = target * (1.0 - rules.tolerance);
            let quiet = g
                .last_activity
                .is_none_or(|t| g.now >= t + rules.scale_in_seconds);
            if v_now >= low || *disable_scale_in || g.warming > 0 || !quiet {
                return Some(rec(g.desired, hold_cause(metric, v_now, *target)));
            }
            let samples = w.last(g.now, rules.scale_in_seconds)?;
            let mut need = 0u32;
            let mut peak = 0f64;
            for s in samples {
                let v = metric.value(s)?;
                if v >= low {
                    return Some(rec(g.desired, hold_cause(metric, v_now, *target)));
                }
                peak = peak.max(v);
                need = need.max(metric.needed(s, v, *target, g.desired));
            }
            let cause = format!(
                "{} at most {} < target {} for {} s",
                metric.name(),
                fmt_num(peak),
                fmt_num(*target),
                rules.scale_in_seconds
            );
            Some(rec(need.max(1).min(g.desired), cause))
        }
        Policy::Step {
            alarm,
            adjustment_type,
            steps,
            min_adjustment_magnitude,
            warmup: _,
        } => {
            let v = alarm.breached(w, g.now)?;
            let over = v - alarm.threshold;
            let step = steps
                .iter()
                .find(|s| s.lower.is_none_or(|l| over >= l) && s.upper.is_none_or(|u| over < u))?;
            // Capacity still warming up is not counted as a base, so a breach that lasts
            // through the warm-up does not add the same step again.
            let base = if step.adjustment > 0 {
                g.desired.saturating_sub(g.warming)
            } else {
                g.desired
            };
            let to = adjust(
                *adjustment_type,
                base,
                step.adjustment,
                *min_adjustment_magnitude,
            );
            let to = if step.adjustment > 0 {
                to.max(g.desired)
            } else {
                to
            };
            Some(rec(to, alarm.cause(v)))
        }
        Policy::Simple {
            alarm,
            adjustment_type,
            adjustment,
            min_adjustment_magnitude,
            cooldown,
        } => {
            let v = alarm.breached(w, g.now)?;
            if g.policy_last
                .get(name)
                .is_some_and(|t| g.now < t + cooldown)
            {
                return None;
            }
            let to = adjust(
                *adjustment_type,
                g.desired,
                *adjustment,
                *min_adjustment_magnitude,
            );
            Some(rec(to, alarm.cause(v)))
        }
    }
}

fn hold_cause(metric: &Metric, v: f64, target: f64) -> String {
    format!(
        "{} {} near target {}",
        metric.name(),
        fmt_num(v),
        fmt_num(target)
    )
}

/// Every policy's recommendation combined: the largest capacity wins, clamped to
/// `[min, max]`. `None` when nothing changes.
pub fn decide(
    policies: &[(String, Policy)],
    rules: &Rules,
    w: &Window,
    g: &GroupView,
) -> Option<Decision> {
    let best = policies
        .iter()
        .filter_map(|(n, p)| recommend(n, p, rules, w, g))
        // The first of equal capacities wins, so causes are stable.
        .fold(None::<Recommendation>, |acc, r| match acc {
            Some(a) if a.capacity >= r.capacity => Some(a),
            _ => Some(r),
        })?;
    let to = best.capacity.clamp(g.min, g.max.max(g.min));
    if to == g.desired {
        return None;
    }
    let mut cause = format!("{}: desired {} → {}", best.cause, g.desired, to);
    if to != best.capacity {
        let bound = if to == g.max { "MaxSize" } else { "MinSize" };
        cause.push_str(&format!(
            " (policy asked for {}, held at {bound} {to})",
            best.capacity
        ));
    }
    Some(Decision {
        policy: best.policy,
        from: g.desired,
        to,
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(values: &[(u32, Option<f64>)], cpu: bool) -> Window {
        let mut w = Window::new(300);
        for (t, (n, v)) in values.iter().enumerate() {
            w.push(Sample {
                t: t as u64,
                in_service: *n,
                ready: *n,
                cpu: if cpu { *v } else { None },
                requests: if cpu { None } else { *v },
                custom: BTreeMap::new(),
            });
        }
        w
    }

    fn view(now: u64, desired: u32) -> GroupView {
        GroupView {
            now,
            desired,
            min: 1,
            max: 10,
            warming: 0,
            last_activity: None,
            policy_last: BTreeMap::new(),
        }
    }

    fn tt(metric: Metric, target: f64) -> Vec<(String, Policy)> {
        vec![(
            "p".into(),
            Policy::TargetTracking {
                metric,
                target,
                disable_scale_in: false,
                warmup: None,
            },
        )]
    }

    #[test]
    fn request_count_scales_out_with_the_documented_cause() {
        // 2 targets, 6.07 req/s each = 364/min... use round numbers: 182/min per target.
        let per_s = 182.0 * 2.0 / 60.0;
        let w = window(&[(2, Some(per_s)); 3], false);
        let d = decide(
            &tt(Metric::RequestsPerTarget, 100.0),
            &Rules::default(),
            &w,
            &view(2, 2),
        )
        .unwrap();
        assert_eq!(
            d.cause,
            "ALBRequestCountPerTarget 182 > target 100 for 3 s: desired 2 → 4"
        );
    }

    #[test]
    fn two_seconds_over_target_are_not_enough() {
        let w = window(&[(2, Some(40.0)), (2, Some(90.0)), (2, Some(90.0))], true);
        assert_eq!(
            decide(&tt(Metric::Cpu, 50.0), &Rules::default(), &w, &view(2, 2)),
            None
        );
    }

    #[test]
    fn a_surge_of_twice_the_target_scales_out_after_one_second() {
        // 2.5x the target for one second: out at once, to what that second needs.
        let w = window(&[(2, Some(40.0)), (2, Some(40.0)), (2, Some(100.0))], false);
        let d = decide(
            &tt(Metric::RequestsPerTarget, 1200.0),
            &Rules::default(),
            &w,
            &view(2, 2),
        )
        .unwrap();
        assert_eq!(
            d.cause,
            "ALBRequestCountPerTarget 3000 ≥ 2× target 1200 for 1 s: desired 2 → 5"
        );
        // 1.9x for one second is not a surge; surges off turn it into the 3 s rule.
        let w = window(&[(2, Some(40.0)), (2, Some(40.0)), (2, Some(95.0))], true);
        assert_eq!(
            decide(&tt(Metric::Cpu, 50.0), &Rules::default(), &w, &view(2, 2)),
            None
        );
        let off = Rules {
            surge_factor: 0.0,
            ..Rules::default()
        };
        let w = window(&[(2, Some(40.0)), (2, Some(40.0)), (2, Some(100.0))], false);
        assert_eq!(
            decide(
                &tt(Metric::RequestsPerTarget, 1200.0),
                &off,
                &w,
                &view(2, 2)
            ),
            None
        );
    }

    #[test]
    fn scale_out_is_held_at_max_size_and_says_so() {
        let w = window(&[(2, Some(100.0)); 3], true);
        let mut g = view(2, 2);
        g.max = 3;
        let d = decide(&tt(Metric::Cpu, 25.0), &Rules::default(), &w, &g).unwrap();
        assert_eq!(d.to, 3);
        assert!(
            d.cause.ends_with("(policy asked for 8, held at MaxSize 3)"),
            "{}",
            d.cause
        );
    }

    #[test]
    fn warming_capacity_is_not_added_twice() {
        // 2 ready at 100% with target 50 need 4; 2 more are already warming: no change.
        let w = window(&[(2, Some(100.0)); 3], true);
        let mut g = view(2, 4);
        g.warming = 2;
        assert_eq!(
            decide(&tt(Metric::Cpu, 50.0), &Rules::default(), &w, &g),
            None
        );
    }

    #[test]
    fn scale_in_needs_a_quiet_window_and_takes_its_peak() {
        let rules = Rules {
            scale_in_seconds: 5,
            ..Rules::default()
        };
        let mut vals = vec![(4, Some(10.0)); 5];
        vals[2] = (4, Some(20.0));
        let w = window(&vals, true);
        let d = decide(&tt(Metric::Cpu, 50.0), &rules, &w, &view(4, 4)).unwrap();
        // Peak 20% on 4 instances = 80% of one: 2 instances at target 50.
        assert_eq!((d.from, d.to), (4, 2));
        assert!(d
            .cause
            .starts_with("ASGAverageCPUUtilization at most 20 < target 50 for 5 s"));
        // The same window, but the group changed 2 s ago: hold.
        let mut g = view(4, 4);
        g.last_activity = Some(2);
        assert_eq!(decide(&tt(Metric::Cpu, 50.0), &rules, &w, &g), None);
    }

    #[test]
    fn the_dead_band_holds_and_blocks_another_policys_scale_in() {
        let rules = Rules {
            scale_in_seconds: 3,
            ..Rules::default()
        };
        let w = window(&[(4, Some(47.0)); 3], true);
        let mut policies = tt(Metric::Cpu, 50.0);
        policies.push((
            "low".into(),
            Policy::Simple {
                alarm: Alarm {
                    metric: Metric::Cpu,
                    comparison: Comparison::LessThanThreshold,
                    threshold: 60.0,
                    seconds: 1,
                },
                adjustment_type: AdjustmentType::ChangeInCapacity,
                adjustment: -1,
                min_adjustment_magnitude: None,
                cooldown: 0,
            },
        ));
        assert_eq!(decide(&policies, &rules, &w, &view(2, 4)), None);
    }

    #[test]
    fn step_policy_picks_the_step_by_breach_size_and_ignores_warming_base() {
        let step = Policy::Step {
            alarm: Alarm {
                metric: Metric::Cpu,
                comparison: Comparison::GreaterThanOrEqualToThreshold,
                threshold: 60.0,
                seconds: 2,
            },
            adjustment_type: AdjustmentType::ChangeInCapacity,
            steps: vec![
                Step {
                    lower: Some(0.0),
                    upper: Some(20.0),
                    adjustment: 1,
                },
                Step {
                    lower: Some(20.0),
                    upper: None,
                    adjustment: 3,
                },
            ],
            min_adjustment_magnitude: None,
            warmup: None,
        };
        let p = vec![("s".into(), step)];
        let w = window(&[(2, Some(70.0)), (2, Some(95.0))], true);
        let d = decide(&p, &Rules::default(), &w, &view(1, 2)).unwrap();
        assert_eq!(d.to, 5);
        assert_eq!(
            d.cause,
            "ASGAverageCPUUtilization 95 ≥ 60 for 2 s: desired 2 → 5"
        );
        // The 3 added instances are warming: the same breach adds nothing.
        let mut g = view(1, 5);
        g.warming = 3;
        assert_eq!(decide(&p, &Rules::default(), &w, &g), None);
    }

    #[test]
    fn simple_policy_waits_for_its_cooldown() {
        let p = vec![(
            "simple".to_string(),
            Policy::Simple {
                alarm: Alarm {
                    metric: Metric::Cpu,
                    comparison: Comparison::GreaterThanThreshold,
                    threshold: 80.0,
                    seconds: 1,
                },
                adjustment_type: AdjustmentType::PercentChangeInCapacity,
                adjustment: 50,
                min_adjustment_magnitude: Some(2),
                cooldown: 30,
            },
        )];
        let w = window(&[(2, Some(90.0)); 20], true);
        let mut g = view(19, 2);
        g.policy_last.insert("simple".into(), 0);
        assert_eq!(decide(&p, &Rules::default(), &w, &g), None);
        g.policy_last.clear();
        let d = decide(&p, &Rules::default(), &w, &g).unwrap();
        // 50% of 2 is 1, raised to the minimum magnitude 2.
        assert_eq!(d.to, 4);
    }

    #[test]
    fn no_data_no_decision() {
        let w = window(&[(0, None); 5], true);
        assert_eq!(
            decide(&tt(Metric::Cpu, 50.0), &Rules::default(), &w, &view(4, 2)),
            None
        );
        let w = window(&[(2, Some(90.0)); 3], true);
        // The newest sample is older than now: stale data decides nothing.
        assert_eq!(
            decide(&tt(Metric::Cpu, 50.0), &Rules::default(), &w, &view(9, 2)),
            None
        );
    }

    #[test]
    fn customized_latency_metric_scales_proportionally() {
        let metric = Metric::Custom {
            key: "TargetResponseTime:p95".into(),
            name: "TargetResponseTime p95".into(),
        };
        let mut w = Window::new(10);
        for t in 0..3 {
            let mut s = Sample {
                t,
                in_service: 2,
                ready: 2,
                ..Default::default()
            };
            // 1.5x the target: the 3 s rule, not a surge.
            s.custom.insert("TargetResponseTime:p95".into(), 0.15);
            w.push(s);
        }
        let d = decide(&tt(metric, 0.1), &Rules::default(), &w, &view(2, 2)).unwrap();
        assert_eq!(d.to, 3);
        assert!(
            d.cause
                .starts_with("TargetResponseTime p95 0.1 > target 0.1 for 3 s"),
            "{}",
            d.cause
        );
    }
}
