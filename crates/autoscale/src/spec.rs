//! Reading the `AWS::AutoScaling::*` resource properties (as JSON, after the template is
//! evaluated) into validated specs. Every problem is reported at once, each naming the
//! property; unknown properties are refused with the list of known ones.

use serde_json::{Map, Value};

use crate::group::{
    HealthCheckType, Hook, HookResult, PoolState, TerminationPolicy, Transition, WarmPool,
};
use crate::policy::{AdjustmentType, Alarm, Comparison, Metric, Policy, Step};
use crate::schedule::{parse_time, Cron, ScheduledAction};

/// Every problem found in one resource's properties.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", .type_name, .errors.join("; "))]
pub struct SpecError {
    pub type_name: String,
    pub errors: Vec<String>,
}

struct Reader<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    known: Vec<&'static str>,
    errors: Vec<String>,
}

impl<'a> Reader<'a> {
    fn new(type_name: &'static str, v: &'a Value, prefix: &str) -> Result<Self, SpecError> {
        match v {
            Value::Object(map) => Ok(Reader {
                map,
                prefix: prefix.to_string(),
                known: Vec::new(),
                errors: Vec::new(),
            }),
            _ => Err(SpecError {
                type_name: type_name.into(),
                errors: vec![format!("{}properties must be a map", prefix)],
            }),
        }
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn err(&mut self, msg: String) {
        self.errors.push(msg);
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn num(&mut self, key: &'static str) -> Option<f64> {
        let v = self.get(key)?;
        let n = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        if n.is_none() {
            let p = self.path(key);
            self.err(format!("{p} must be a number, got {v}"));
        }
        n
    }

    fn uint(&mut self, key: &'static str) -> Option<u64> {
        let n = self.num(key)?;
        if n < 0.0 || n.fract() != 0.0 || n > u32::MAX as f64 {
            let p = self.path(key);
            self.err(format!("{p} must be a whole number ≥ 0, got {n}"));
            return None;
        }
        Some(n as u64)
    }

    fn u32(&mut self, key: &'static str) -> Option<u32> {
        self.uint(key).map(|n| n as u32)
    }

    fn string(&mut self, key: &'static str) -> Option<String> {
        let v = self.get(key)?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => {
                let p = self.path(key);
                self.err(format!("{p} must be a string, got {v}"));
                None
            }
        }
    }

    fn boolean(&mut self, key: &'static str) -> Option<bool> {
        let v = self.get(key)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
            _ => {
                let p = self.path(key);
                self.err(format!("{p} must be true or false, got {v}"));
                None
            }
        }
    }

    fn strings(&mut self, key: &'static str) -> Option<Vec<String>> {
        let v = self.get(key)?;
        let list = match v {
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>(),
            Value::String(s) => Some(
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect(),
            ),
            _ => None,
        };
        if list.is_none() {
            let p = self.path(key);
            self.err(format!("{p} must be a list of strings, got {v}"));
        }
        list
    }

    fn required<T>(&mut self, key: &'static str, v: Option<T>) -> Option<T> {
        if v.is_none() && !self.map.contains_key(key) {
            let p = self.path(key);
            self.err(format!("{p} is required"));
        }
        v
    }

    fn one_of<T: Copy>(&mut self, key: &'static str, choices: &[(&str, T)]) -> Option<T> {
        let s = self.string(key)?;
        match choices.iter().find(|(n, _)| *n == s) {
            Some((_, v)) => Some(*v),
            None => {
                let p = self.path(key);
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                self.err(format!("{p} `{s}` is not one of {}", names.join(", ")));
                None
            }
        }
    }

    /// Reports unknown keys; `ignored` are accepted without effect.
    fn finish(mut self, ignored: &[&str]) -> Vec<String> {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.known.contains(&k.as_str()) && !ignored.contains(&k.as_str()))
            .collect();
        unknown.sort();
        for k in unknown {
            let mut known: Vec<&str> = self.known.clone();
            known.sort();
            known.dedup();
            let p = self.path(k);
            self.errors.push(format!(
                "{p} is not supported (known: {})",
                known.join(", ")
            ));
        }
        self.errors
    }
}

fn done<T>(type_name: &str, errors: Vec<String>, v: impl FnOnce() -> T) -> Result<T, SpecError> {
    if errors.is_empty() {
        Ok(v())
    } else {
        Err(SpecError {
            type_name: type_name.into(),
            errors,
        })
    }
}

/// A group's launch template reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    /// `lt-…` id or name.
    pub template: String,
    /// `$Default`, `$Latest` or a number.
    pub version: Option<String>,
}

/// `AWS::AutoScaling::AutoScalingGroup`, read.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupProps {
    pub name: Option<String>,
    pub min: u32,
    pub max: u32,
    pub desired: Option<u32>,
    pub launch_template: TemplateRef,
    pub subnets: Vec<String>,
    pub target_groups: Vec<String>,
    pub health_check_type: HealthCheckType,
    pub grace_period: u64,
    pub warmup: Option<u64>,
    pub cooldown: u64,
    pub termination_policies: Vec<TerminationPolicy>,
    pub protect_new: bool,
    pub max_lifetime: Option<u64>,
}

const TERMINATION: &[(&str, TerminationPolicy)] = &[
    ("Default", TerminationPolicy::Default),
    ("OldestInstance", TerminationPolicy::OldestInstance),
    ("NewestInstance", TerminationPolicy::NewestInstance),
    (
        "OldestLaunchTemplate",
        TerminationPolicy::OldestLaunchTemplate,
    ),
    (
        "OldestLaunchConfiguration",
        TerminationPolicy::OldestLaunchConfiguration,
    ),
    (
        "ClosestToNextInstanceHour",
        TerminationPolicy::ClosestToNextInstanceHour,
    ),
    ("AllocationStrategy", TerminationPolicy::AllocationStrategy),
];

const GROUP_IGNORED: &[&str] = &[
    "AvailabilityZones",
    "Tags",
    "MetricsCollection",
    "NotificationConfigurations",
    "CapacityRebalance",
    "Context",
    "DesiredCapacityType",
    "ServiceLinkedRoleARN",
];

/// Reads and checks an `AutoScalingGroup`'s properties.
pub fn group_props(v: &Value) -> Result<GroupProps, SpecError> {
    const T: &str = "AWS::AutoScaling::AutoScalingGroup";
    let mut r = Reader::new(T, v, "")?;
    let name = r.string("AutoScalingGroupName");
    let min = r.u32("MinSize");
    let min = r.required("MinSize", min);
    let max = r.u32("MaxSize");
    let max = r.required("MaxSize", max);
    let desired = r.u32("DesiredCapacity");
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            r.err(format!("MinSize {a} is greater than MaxSize {b}"));
        } else if let Some(d) = desired {
            if d < a || d > b {
                r.err(format!(
                    "DesiredCapacity {d} is outside MinSize {a} .. MaxSize {b}"
                ));
            }
        }
    }
    let mut launch_template = None;
    match r.get("LaunchTemplate") {
        None => {
            let hint = if r.map.contains_key("LaunchConfigurationName") { " (launch configurations are not implemented; use a LaunchTemplate)" } else { "" };
            r.known.push("LaunchConfigurationName");
            r.err(format!("LaunchTemplate is required{hint}"));
        }
        Some(lt) => match Reader::new(T, lt, "LaunchTemplate.") {
            Err(_) => r.err("LaunchTemplate must be a map with LaunchTemplateId or LaunchTemplateName, and Version".into()),
            Ok(mut l) => {
                let id = l.string("LaunchTemplateId");
                let nm = l.string("LaunchTemplateName");
                let version = l.string("Version");
                match (id, nm) {
                    (Some(_), Some(_)) => l.err("LaunchTemplate.LaunchTemplateId and LaunchTemplate.LaunchTemplateName are mutually exclusive".into()),
                    (Some(t), None) | (None, Some(t)) => launch_template = Some(TemplateRef { template: t, version }),
                    (None, None) => l.err("LaunchTemplate needs LaunchTemplateId or LaunchTemplateName".into()),
                }
                r.errors.extend(l.finish(&[]));
            }
        },
    }
    let subnets = r.strings("VPCZoneIdentifier").unwrap_or_default();
    if subnets.is_empty() {
        r.err(
            "VPCZoneIdentifier must name at least one subnet (Spindle has no default VPC)".into(),
        );
    }
    let target_groups = r.strings("TargetGroupARNs").unwrap_or_default();
    if r.map.contains_key("LoadBalancerNames") {
        r.known.push("LoadBalancerNames");
        r.err(
            "LoadBalancerNames (Classic Load Balancers) is not supported; use TargetGroupARNs"
                .into(),
        );
    }
    let health_check_type = r
        .one_of(
            "HealthCheckType",
            &[("EC2", HealthCheckType::Ec2), ("ELB", HealthCheckType::Elb)],
        )
        .unwrap_or(HealthCheckType::Ec2);
    let grace_period = r.uint("HealthCheckGracePeriod").unwrap_or(0);
    let warmup = r.uint("DefaultInstanceWarmup");
    let cooldown = r.uint("Cooldown").unwrap_or(300);
    let mut termination_policies = Vec::new();
    for p in r.strings("TerminationPolicies").unwrap_or_default() {
        match TERMINATION.iter().find(|(n, _)| *n == p) {
            Some((_, t)) => termination_policies.push(*t),
            None => {
                let names: Vec<&str> = TERMINATION.iter().map(|(n, _)| *n).collect();
                r.err(format!(
                    "TerminationPolicies `{p}` is not one of {}",
                    names.join(", ")
                ));
            }
        }
    }
    let protect_new = r
        .boolean("NewInstancesProtectedFromScaleIn")
        .unwrap_or(false);
    let max_lifetime = r.uint("MaxInstanceLifetime").filter(|n| *n > 0);
    if let Some(l) = max_lifetime {
        if l < 60 {
            r.err(format!(
                "MaxInstanceLifetime {l} must be 0 (none) or at least 60 seconds"
            ));
        }
    }
    let errors = r.finish(GROUP_IGNORED);
    done(T, errors, || GroupProps {
        name,
        min: min.unwrap_or(0),
        max: max.unwrap_or(0),
        desired,
        launch_template: launch_template.unwrap_or(TemplateRef {
            template: String::new(),
            version: None,
        }),
        subnets,
        target_groups,
        health_check_type,
        grace_period,
        warmup,
        cooldown,
        termination_policies,
        protect_new,
        max_lifetime,
    })
}

/// The customized metrics Spindle measures: `(namespace, name, statistic) → sample key`.
pub const CUSTOM_METRICS: &[(&str, &str, &str, &str)] = &[
    (
        "AWS/ApplicationELB",
        "TargetResponseTime",
        "p50",
        "TargetResponseTime:p50",
    ),
    (
        "AWS/ApplicationELB",
        "TargetResponseTime",
        "p95",
        "TargetResponseTime:p95",
    ),
    (
        "AWS/ApplicationELB",
        "TargetResponseTime",
        "p99",
        "TargetResponseTime:p99",
    ),
    ("AWS/ApplicationELB", "RequestCount", "Sum", "RequestCount"),
    (
        "AWS/ApplicationELB",
        "HTTPCode_Target_5XX_Count",
        "Sum",
        "HTTPCode_Target_5XX_Count",
    ),
    ("AWS/EC2", "CPUUtilization", "Average", "CPUUtilization"),
];

fn custom_metric(r: &mut Reader<'_>) -> Option<Metric> {
    let ns = r.string("Namespace");
    let ns = r.required("Namespace", ns)?;
    let name = r.string("MetricName");
    let name = r.required("MetricName", name)?;
    let stat = r.string("Statistic").unwrap_or_else(|| "Average".into());
    r.get("Dimensions");
    r.get("Unit");
    match CUSTOM_METRICS
        .iter()
        .find(|(n, m, s, _)| *n == ns && *m == name && *s == stat)
    {
        Some((_, m, s, key)) => Some(Metric::Custom {
            key: key.to_string(),
            name: format!("{m} {s}"),
        }),
        None => {
            let known: Vec<String> = CUSTOM_METRICS
                .iter()
                .map(|(n, m, s, _)| format!("{n} {m} {s}"))
                .collect();
            let p = r.path("MetricName");
            r.err(format!(
                "{p}: metric {ns} {name} {stat} does not exist (known: {})",
                known.join(", ")
            ));
            None
        }
    }
}

const PREDEFINED: &[(&str, Option<Metric>)] = &[
    ("ASGAverageCPUUtilization", Some(Metric::Cpu)),
    ("ALBRequestCountPerTarget", Some(Metric::RequestsPerTarget)),
    ("ASGAverageNetworkIn", None),
    ("ASGAverageNetworkOut", None),
];

/// `AWS::AutoScaling::ScalingPolicy`, read: the group it belongs to and the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyProps {
    pub group: String,
    pub policy: Policy,
    pub enabled: bool,
}

fn alarm(r: &mut Reader<'_>, seconds_default: u64) -> Option<Alarm> {
    // Spindle has no CloudWatch alarms: the alarm is written inline in the policy.
    let v = r.get("SpindleAlarm");
    let Some(v) = v else {
        r.err("SpindleAlarm is required for step and simple scaling (Spindle evaluates the alarm itself: {Metric, ComparisonOperator, Threshold, EvaluationSeconds})".into());
        return None;
    };
    let mut a = match Reader::new("AWS::AutoScaling::ScalingPolicy", v, "SpindleAlarm.") {
        Ok(a) => a,
        Err(e) => {
            r.errors.extend(e.errors);
            return None;
        }
    };
    let metric = match a.get("Metric") {
        Some(Value::String(s)) => match PREDEFINED.iter().find(|(n, _)| n == s) {
            Some((_, Some(m))) => Some(m.clone()),
            _ => {
                a.err(format!("SpindleAlarm.Metric `{s}` does not exist (known: ASGAverageCPUUtilization, ALBRequestCountPerTarget, or a map with Namespace, MetricName, Statistic)"));
                None
            }
        },
        Some(m @ Value::Object(_)) => {
            match Reader::new("AWS::AutoScaling::ScalingPolicy", m, "SpindleAlarm.Metric.") {
                Ok(mut mr) => {
                    let metric = custom_metric(&mut mr);
                    a.errors.extend(mr.finish(&[]));
                    metric
                }
                Err(e) => {
                    a.errors.extend(e.errors);
                    None
                }
            }
        }
        _ => {
            a.err("SpindleAlarm.Metric is required".into());
            None
        }
    };
    let cmp = a.one_of(
        "ComparisonOperator",
        &[
            ("GreaterThanThreshold", Comparison::GreaterThanThreshold),
            (
                "GreaterThanOrEqualToThreshold",
                Comparison::GreaterThanOrEqualToThreshold,
            ),
            ("LessThanThreshold", Comparison::LessThanThreshold),
            (
                "LessThanOrEqualToThreshold",
                Comparison::LessThanOrEqualToThreshold,
            ),
        ],
    );
    let cmp = a.required("ComparisonOperator", cmp);
    let threshold = a.num("Threshold");
    let threshold = a.required("Threshold", threshold);
    let seconds = a
        .uint("EvaluationSeconds")
        .unwrap_or(seconds_default)
        .max(1);
    r.errors.extend(a.finish(&[]));
    Some(Alarm {
        metric: metric?,
        comparison: cmp?,
        threshold: threshold?,
        seconds,
    })
}

/// Reads and checks a `ScalingPolicy`'s properties.
pub fn policy_props(v: &Value) -> Result<PolicyProps, SpecError> {
    const T: &str = "AWS::AutoScaling::ScalingPolicy";
    let mut r = Reader::new(T, v, "")?;
    let group = r.string("AutoScalingGroupName");
    let group = r.required("AutoScalingGroupName", group);
    let kind = r
        .string("PolicyType")
        .unwrap_or_else(|| "SimpleScaling".into());
    let adj_types = [
        ("ChangeInCapacity", AdjustmentType::ChangeInCapacity),
        ("ExactCapacity", AdjustmentType::ExactCapacity),
        (
            "PercentChangeInCapacity",
            AdjustmentType::PercentChangeInCapacity,
        ),
    ];
    let mut policy = None;
    match kind.as_str() {
        "TargetTrackingScaling" => {
            let warmup = r.uint("EstimatedInstanceWarmup");
            match r.get("TargetTrackingConfiguration") {
                None => r.err(
                    "TargetTrackingConfiguration is required for TargetTrackingScaling".into(),
                ),
                Some(c) => match Reader::new(T, c, "TargetTrackingConfiguration.") {
                    Err(e) => r.errors.extend(e.errors),
                    Ok(mut c) => {
                        let target = c.num("TargetValue");
                        let target = c.required("TargetValue", target);
                        if let Some(t) = target {
                            if t <= 0.0 {
                                c.err(format!("TargetTrackingConfiguration.TargetValue must be greater than 0, got {}", crate::policy::fmt_num(t)));
                            }
                        }
                        let disable = c.boolean("DisableScaleIn").unwrap_or(false);
                        let predefined = c.get("PredefinedMetricSpecification");
                        let custom = c.get("CustomizedMetricSpecification");
                        let metric = match (predefined, custom) {
                            (Some(p), None) => match Reader::new(
                                T,
                                p,
                                "TargetTrackingConfiguration.PredefinedMetricSpecification.",
                            ) {
                                Err(e) => {
                                    c.errors.extend(e.errors);
                                    None
                                }
                                Ok(mut p) => {
                                    let ty = p.string("PredefinedMetricType");
                                    let ty = p.required("PredefinedMetricType", ty);
                                    p.get("ResourceLabel");
                                    let m = ty.and_then(|ty| match PREDEFINED.iter().find(|(n, _)| *n == ty) {
                                        Some((_, Some(m))) => Some(m.clone()),
                                        Some((_, None)) => {
                                            p.err(format!("TargetTrackingConfiguration.PredefinedMetricSpecification.PredefinedMetricType {ty} is not measured by Spindle (use ASGAverageCPUUtilization or ALBRequestCountPerTarget)"));
                                            None
                                        }
                                        None => {
                                            p.err(format!("TargetTrackingConfiguration.PredefinedMetricSpecification.PredefinedMetricType `{ty}` does not exist (known: ASGAverageCPUUtilization, ALBRequestCountPerTarget)"));
                                            None
                                        }
                                    });
                                    c.errors.extend(p.finish(&[]));
                                    m
                                }
                            },
                            (None, Some(m)) => match Reader::new(
                                T,
                                m,
                                "TargetTrackingConfiguration.CustomizedMetricSpecification.",
                            ) {
                                Err(e) => {
                                    c.errors.extend(e.errors);
                                    None
                                }
                                Ok(mut mr) => {
                                    let metric = custom_metric(&mut mr);
                                    c.errors.extend(mr.finish(&[]));
                                    metric
                                }
                            },
                            (Some(_), Some(_)) => {
                                c.err("TargetTrackingConfiguration takes PredefinedMetricSpecification or CustomizedMetricSpecification, not both".into());
                                None
                            }
                            (None, None) => {
                                c.err("TargetTrackingConfiguration needs PredefinedMetricSpecification or CustomizedMetricSpecification".into());
                                None
                            }
                        };
                        r.errors.extend(c.finish(&[]));
                        if let (Some(metric), Some(target)) = (metric, target) {
                            policy = Some(Policy::TargetTracking {
                                metric,
                                target,
                                disable_scale_in: disable,
                                warmup,
                            });
                        }
                    }
                },
            }
        }
        "StepScaling" => {
            let warmup = r.uint("EstimatedInstanceWarmup");
            let adj = r.one_of("AdjustmentType", &adj_types);
            let adj = r.required("AdjustmentType", adj);
            let mag = r.u32("MinAdjustmentMagnitude");
            r.get("MetricAggregationType");
            let al = alarm(&mut r, 1);
            let mut steps = Vec::new();
            match r.get("StepAdjustments") {
                Some(Value::Array(a)) if !a.is_empty() => {
                    for (i, s) in a.iter().enumerate() {
                        let prefix = format!("StepAdjustments[{i}].");
                        match Reader::new(T, s, &prefix) {
                            Err(e) => r.errors.extend(e.errors),
                            Ok(mut sr) => {
                                let lower = sr.num("MetricIntervalLowerBound");
                                let upper = sr.num("MetricIntervalUpperBound");
                                let adj = sr.num("ScalingAdjustment");
                                let adj = sr.required("ScalingAdjustment", adj);
                                if let (Some(l), Some(u)) = (lower, upper) {
                                    if l >= u {
                                        sr.err(format!("{prefix}MetricIntervalLowerBound {l} must be below MetricIntervalUpperBound {u}"));
                                    }
                                }
                                r.errors.extend(sr.finish(&[]));
                                if let Some(a) = adj {
                                    steps.push(Step {
                                        lower,
                                        upper,
                                        adjustment: a as i64,
                                    });
                                }
                            }
                        }
                    }
                }
                _ => r.err("StepAdjustments must be a non-empty list for StepScaling".into()),
            }
            if let (Some(alarm), Some(adjustment_type)) = (al, adj) {
                policy = Some(Policy::Step {
                    alarm,
                    adjustment_type,
                    steps,
                    min_adjustment_magnitude: mag,
                    warmup,
                });
            }
        }
        "SimpleScaling" => {
            let adj = r.one_of("AdjustmentType", &adj_types);
            let adj = r.required("AdjustmentType", adj);
            let n = r.num("ScalingAdjustment");
            let n = r.required("ScalingAdjustment", n);
            let mag = r.u32("MinAdjustmentMagnitude");
            let cooldown = r.uint("Cooldown").unwrap_or(300);
            let al = alarm(&mut r, 1);
            if let (Some(alarm), Some(adjustment_type), Some(n)) = (al, adj, n) {
                policy = Some(Policy::Simple {
                    alarm,
                    adjustment_type,
                    adjustment: n as i64,
                    min_adjustment_magnitude: mag,
                    cooldown,
                });
            }
        }
        "PredictiveScaling" => r.err("PolicyType PredictiveScaling is not implemented".into()),
        other => r.err(format!(
            "PolicyType `{other}` is not one of TargetTrackingScaling, StepScaling, SimpleScaling"
        )),
    }
    let enabled = r.boolean("Enabled").unwrap_or(true);
    let errors = r.finish(&[]);
    if errors.is_empty() && policy.is_none() {
        return Err(SpecError {
            type_name: T.into(),
            errors: vec!["the policy is incomplete".into()],
        });
    }
    done(T, errors, || PolicyProps {
        group: group.unwrap_or_default(),
        policy: policy.expect("checked above"),
        enabled,
    })
}

/// Reads and checks a `ScheduledAction`: the group and the action.
pub fn scheduled_props(v: &Value, name: &str) -> Result<(String, ScheduledAction), SpecError> {
    const T: &str = "AWS::AutoScaling::ScheduledAction";
    let mut r = Reader::new(T, v, "")?;
    let group = r.string("AutoScalingGroupName");
    let group = r.required("AutoScalingGroupName", group);
    let recurrence = r.string("Recurrence").and_then(|c| {
        Cron::parse(&c)
            .map_err(|e| r.err(format!("Recurrence: {e}")))
            .ok()
    });
    let time = |r: &mut Reader<'_>, key: &'static str| {
        r.string(key).and_then(|t| {
            parse_time(&t)
                .map_err(|e| r.err(format!("{key}: {e}")))
                .ok()
        })
    };
    let start = time(&mut r, "StartTime");
    let end = time(&mut r, "EndTime");
    let min = r.u32("MinSize");
    let max = r.u32("MaxSize");
    let desired = r.u32("DesiredCapacity");
    if r.get("TimeZone")
        .is_some_and(|z| z.as_str() != Some("UTC") && z.as_str() != Some("Etc/UTC"))
    {
        r.err("TimeZone: only UTC is implemented".into());
    }
    if min.is_none() && max.is_none() && desired.is_none() {
        r.err("a scheduled action needs at least one of MinSize, MaxSize, DesiredCapacity".into());
    }
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            r.err(format!("MinSize {a} is greater than MaxSize {b}"));
        }
    }
    if recurrence.is_none()
        && start.is_none()
        && !r
            .errors
            .iter()
            .any(|e| e.starts_with("Recurrence") || e.starts_with("StartTime"))
    {
        r.err("a scheduled action needs Recurrence or StartTime".into());
    }
    let errors = r.finish(&[]);
    done(T, errors, || {
        (
            group.unwrap_or_default(),
            ScheduledAction {
                name: name.into(),
                recurrence,
                start,
                end,
                min,
                max,
                desired,
            },
        )
    })
}

/// Reads and checks a `WarmPool`: the group and the pool.
pub fn warm_pool_props(v: &Value) -> Result<(String, WarmPool), SpecError> {
    const T: &str = "AWS::AutoScaling::WarmPool";
    let mut r = Reader::new(T, v, "")?;
    let group = r.string("AutoScalingGroupName");
    let group = r.required("AutoScalingGroupName", group);
    let min_size = r.u32("MinSize").unwrap_or(0);
    let max_prepared = r
        .num("MaxGroupPreparedCapacity")
        .and_then(|n| (n >= 0.0).then_some(n as u32));
    let state = r
        .one_of(
            "PoolState",
            &[
                ("Stopped", PoolState::Stopped),
                ("Hibernated", PoolState::Stopped),
                ("Running", PoolState::Running),
            ],
        )
        .unwrap_or(PoolState::Stopped);
    if let Some(Value::Object(p)) = r.get("InstanceReusePolicy") {
        if p.get("ReuseOnScaleIn")
            .is_some_and(|b| b == &Value::Bool(true))
        {
            r.err("InstanceReusePolicy.ReuseOnScaleIn is not implemented".into());
        }
    }
    let errors = r.finish(&[]);
    done(T, errors, || {
        (
            group.unwrap_or_default(),
            WarmPool {
                min_size,
                max_prepared,
                state,
            },
        )
    })
}

/// Reads and checks a `LifecycleHook`: the group and the hook.
pub fn hook_props(v: &Value, default_name: &str) -> Result<(String, Hook), SpecError> {
    const T: &str = "AWS::AutoScaling::LifecycleHook";
    let mut r = Reader::new(T, v, "")?;
    let group = r.string("AutoScalingGroupName");
    let group = r.required("AutoScalingGroupName", group);
    let name = r
        .string("LifecycleHookName")
        .unwrap_or_else(|| default_name.to_string());
    let transition = r.one_of(
        "LifecycleTransition",
        &[
            ("autoscaling:EC2_INSTANCE_LAUNCHING", Transition::Launching),
            (
                "autoscaling:EC2_INSTANCE_TERMINATING",
                Transition::Terminating,
            ),
        ],
    );
    let transition = r.required("LifecycleTransition", transition);
    let timeout = r.uint("HeartbeatTimeout").unwrap_or(3600);
    if !(1..=7200).contains(&timeout) {
        r.err(format!(
            "HeartbeatTimeout {timeout} must be between 1 and 7200 seconds"
        ));
    }
    let default_result = r
        .one_of(
            "DefaultResult",
            &[
                ("CONTINUE", HookResult::Continue),
                ("ABANDON", HookResult::Abandon),
            ],
        )
        .unwrap_or(HookResult::Abandon);
    let errors = r.finish(&["NotificationMetadata", "NotificationTargetARN", "RoleARN"]);
    done(T, errors, || {
        (
            group.unwrap_or_default(),
            Hook {
                name,
                transition: transition.expect("required"),
                timeout,
                default_result,
            },
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group_errors(v: Value) -> Vec<String> {
        group_props(&v).unwrap_err().errors
    }

    #[test]
    fn group_bad_input_names_every_property() {
        let e = group_errors(
            json!({"MinSize": "5", "MaxSize": 2, "VPCZoneIdentifier": [], "HealthCheckType": "TCP", "Bogus": 1}),
        );
        assert_eq!(e, vec![
            "MinSize 5 is greater than MaxSize 2",
            "LaunchTemplate is required",
            "VPCZoneIdentifier must name at least one subnet (Spindle has no default VPC)",
            "HealthCheckType `TCP` is not one of EC2, ELB",
            "Bogus is not supported (known: AutoScalingGroupName, Cooldown, DefaultInstanceWarmup, DesiredCapacity, HealthCheckGracePeriod, HealthCheckType, LaunchConfigurationName, LaunchTemplate, MaxInstanceLifetime, MaxSize, MinSize, NewInstancesProtectedFromScaleIn, TargetGroupARNs, TerminationPolicies, VPCZoneIdentifier)",
        ]);
        let e = group_errors(
            json!({"MinSize": 1, "MaxSize": 3, "DesiredCapacity": 4, "VPCZoneIdentifier": ["subnet-1"], "LaunchTemplate": {"Version": "1"}}),
        );
        assert_eq!(
            e,
            vec![
                "DesiredCapacity 4 is outside MinSize 1 .. MaxSize 3",
                "LaunchTemplate needs LaunchTemplateId or LaunchTemplateName"
            ]
        );
    }

    #[test]
    fn group_reads_what_templates_write() {
        let g = group_props(&json!({
            "MinSize": "1", "MaxSize": "4", "DesiredCapacity": "2",
            "LaunchTemplate": {"LaunchTemplateId": "lt-1", "Version": "3"},
            "VPCZoneIdentifier": ["subnet-a", "subnet-b"], "TargetGroupARNs": ["arn:tg"],
            "HealthCheckType": "ELB", "HealthCheckGracePeriod": 5, "DefaultInstanceWarmup": 2,
            "TerminationPolicies": ["OldestInstance"], "NewInstancesProtectedFromScaleIn": "true",
            "Tags": []
        }))
        .unwrap();
        assert_eq!((g.min, g.max, g.desired), (1, 4, Some(2)));
        assert_eq!(
            g.launch_template,
            TemplateRef {
                template: "lt-1".into(),
                version: Some("3".into())
            }
        );
        assert_eq!(g.health_check_type, HealthCheckType::Elb);
        assert!(g.protect_new);
        assert_eq!(
            g.termination_policies,
            vec![TerminationPolicy::OldestInstance]
        );
    }

    #[test]
    fn policy_bad_input() {
        let e = policy_props(&json!({"AutoScalingGroupName": "g", "PolicyType": "TargetTrackingScaling", "TargetTrackingConfiguration": {"TargetValue": 0, "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGQueueDepth"}}})).unwrap_err();
        assert_eq!(e.errors, vec![
            "TargetTrackingConfiguration.TargetValue must be greater than 0, got 0",
            "TargetTrackingConfiguration.PredefinedMetricSpecification.PredefinedMetricType `ASGQueueDepth` does not exist (known: ASGAverageCPUUtilization, ALBRequestCountPerTarget)",
        ]);
        let e = policy_props(&json!({"AutoScalingGroupName": "g", "PolicyType": "TargetTrackingScaling", "TargetTrackingConfiguration": {"TargetValue": 1, "CustomizedMetricSpecification": {"Namespace": "AWS/ApplicationELB", "MetricName": "Latency", "Statistic": "p95"}}})).unwrap_err();
        assert!(e.errors[0].starts_with("TargetTrackingConfiguration.CustomizedMetricSpecification.MetricName: metric AWS/ApplicationELB Latency p95 does not exist (known: AWS/ApplicationELB TargetResponseTime p50"), "{e}");
        let e = policy_props(&json!({"AutoScalingGroupName": "g", "PolicyType": "SimpleScaling", "AdjustmentType": "ChangeInCapacity", "ScalingAdjustment": 1})).unwrap_err();
        assert!(e.errors[0].starts_with("SpindleAlarm is required"), "{e}");
    }

    #[test]
    fn policies_read() {
        let p = policy_props(&json!({"AutoScalingGroupName": "g", "PolicyType": "TargetTrackingScaling", "TargetTrackingConfiguration": {"TargetValue": 0.2, "CustomizedMetricSpecification": {"Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime", "Statistic": "p95"}}})).unwrap();
        assert!(
            matches!(p.policy, Policy::TargetTracking { metric: Metric::Custom { ref key, .. }, .. } if key == "TargetResponseTime:p95")
        );
        let p = policy_props(&json!({"AutoScalingGroupName": "g", "PolicyType": "StepScaling", "AdjustmentType": "ChangeInCapacity",
            "SpindleAlarm": {"Metric": "ASGAverageCPUUtilization", "ComparisonOperator": "GreaterThanThreshold", "Threshold": 70, "EvaluationSeconds": 2},
            "StepAdjustments": [{"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 10, "ScalingAdjustment": 1}, {"MetricIntervalLowerBound": 10, "ScalingAdjustment": 2}]})).unwrap();
        assert!(matches!(p.policy, Policy::Step { ref steps, .. } if steps.len() == 2));
    }

    #[test]
    fn scheduled_hook_and_pool() {
        let (g, a) = scheduled_props(&json!({"AutoScalingGroupName": "g", "Recurrence": "0 9 * * 1-5", "DesiredCapacity": 4}), "Morning").unwrap();
        assert_eq!((g.as_str(), a.desired), ("g", Some(4)));
        let e = scheduled_props(&json!({"AutoScalingGroupName": "g", "Recurrence": "0 25 * * *", "MinSize": 3, "MaxSize": 1}), "x").unwrap_err();
        assert_eq!(
            e.errors,
            vec![
                "Recurrence: `25` is not a hour (0-23)",
                "MinSize 3 is greater than MaxSize 1"
            ]
        );
        let (_, h) = hook_props(&json!({"AutoScalingGroupName": "g", "LifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING", "HeartbeatTimeout": 30, "DefaultResult": "CONTINUE"}), "Hook").unwrap();
        assert_eq!(
            (h.name.as_str(), h.timeout, h.default_result),
            ("Hook", 30, HookResult::Continue)
        );
        assert!(hook_props(&json!({"AutoScalingGroupName": "g"}), "h")
            .unwrap_err()
            .errors[0]
            .contains("LifecycleTransition is required"));
        let (_, p) = warm_pool_props(
            &json!({"AutoScalingGroupName": "g", "MinSize": 2, "PoolState": "Hibernated"}),
        )
        .unwrap();
        assert_eq!(
            p,
            WarmPool {
                min_size: 2,
                max_prepared: None,
                state: PoolState::Stopped
            }
        );
    }
}
