//! The ELBv2 resources' properties, parsed once into typed records.
//!
//! A create or update parses the resolved properties into a [`Spec`] and refuses them with
//! every problem at once, each naming its property path (`Targets[1].Port`,
//! `TargetGroupAttributes[2]`); the record keeps the spec, so compiling a load balancer reads
//! typed fields and never the raw properties again. What a spec can't know — whether a
//! target group ARN names a group of the same account, a target instance's address, a
//! certificate's contents — is resolved when the load balancer is compiled.

use std::net::IpAddr;
use std::time::Duration;

use spindle_lb::scheduler::{SchedulerConfig, TokenBucketConfig};
use spindle_lb::{
    Action, Algorithm, Condition, HealthCheckConfig, IsolationConfig, Stickiness,
    TargetGroupConfig, TenantKey,
};
use spindle_template::Value;

use crate::props::{Problems, Props, Shape};
use crate::Kind;

/// The `spindle.*` target group attribute keys [`TgSpec::parse`] implements (the table in
/// the `elbv2` module's documentation). Validation refuses any other `spindle.` key before a
/// deploy starts; `spindle_attribute_list_matches_the_parser` checks this list against the
/// parser's arms.
pub(crate) const SPINDLE_TG_ATTRIBUTES: &[&str] = &[
    "spindle.target.timeout_seconds",
    "spindle.tenant.header",
    "spindle.tenant.source",
    "spindle.tenant.concurrency.initial",
    "spindle.tenant.concurrency.min",
    "spindle.tenant.concurrency.max",
    "spindle.tenant.concurrency.adaptive",
    "spindle.tenant.max_in_flight",
    "spindle.tenant.queue.max",
    "spindle.tenant.queue.timeout_ms",
    "spindle.tenant.rate.per_second",
    "spindle.tenant.rate.burst",
];

pub(crate) const LB_SHAPE: Shape = Shape {
    type_name: Kind::LoadBalancer.type_name(),
    used: &["Name", "Type", "Subnets", "LoadBalancerAttributes"],
    ignored: &["Scheme", "SecurityGroups", "IpAddressType", "Tags"],
    hints: &[
        ("SubnetMappings", "use Subnets"),
        (
            "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic",
            "PrivateLink is not implemented",
        ),
    ],
};

pub(crate) const LISTENER_SHAPE: Shape = Shape {
    type_name: Kind::Listener.type_name(),
    used: &[
        "LoadBalancerArn",
        "Port",
        "Protocol",
        "Certificates",
        "DefaultActions",
    ],
    ignored: &["SslPolicy", "ListenerAttributes"],
    hints: &[
        ("AlpnPolicy", "HTTPS listeners always offer h2 and http/1.1"),
        ("MutualAuthentication", "mutual TLS is not implemented"),
    ],
};

pub(crate) const RULE_SHAPE: Shape = Shape {
    type_name: Kind::ListenerRule.type_name(),
    used: &["ListenerArn", "Priority", "Conditions", "Actions"],
    ignored: &[],
    hints: &[],
};

pub(crate) const TG_SHAPE: Shape = Shape {
    type_name: Kind::TargetGroup.type_name(),
    used: &[
        "Name",
        "Port",
        "Protocol",
        "VpcId",
        "TargetType",
        "Targets",
        "HealthCheckEnabled",
        "HealthCheckIntervalSeconds",
        "HealthCheckTimeoutSeconds",
        "HealthyThresholdCount",
        "UnhealthyThresholdCount",
        "HealthCheckPath",
        "HealthCheckPort",
        "HealthCheckProtocol",
        "Matcher",
        "TargetGroupAttributes",
    ],
    ignored: &["ProtocolVersion", "IpAddressType", "Tags"],
    hints: &[],
};

/// The shape (implemented, ignored and refused properties) of an ELBv2 kind.
pub(crate) fn shape(kind: Kind) -> &'static Shape {
    match kind {
        Kind::LoadBalancer => &LB_SHAPE,
        Kind::Listener => &LISTENER_SHAPE,
        Kind::ListenerRule => &RULE_SHAPE,
        _ => &TG_SHAPE,
    }
}

/// One ELBv2 resource's properties, typed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Spec {
    LoadBalancer(LbSpec),
    Listener(ListenerSpec),
    Rule(RuleSpec),
    /// Boxed: a target group's engine config is by far the largest spec.
    TargetGroup(Box<TgSpec>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LbSpec {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    /// `idle_timeout.timeout_seconds`, the one load balancer attribute with an effect.
    pub idle_timeout: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListenerSpec {
    pub load_balancer: String,
    pub port: u16,
    pub protocol: ListenerProto,
    pub default_action: ActionSpec,
}

/// A listener's protocol; an HTTPS listener's certificate is read when it is compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListenerProto {
    Http,
    Https(CertSource),
}

/// Where a listener's PEM bundle (certificate chain and key) is read from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CertSource {
    File(String),
    Param(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleSpec {
    pub listener: String,
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub action: ActionSpec,
}

/// A listener's or rule's one action; a forward names its group by ARN until compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ActionSpec {
    Forward { target_group: String },
    Other(Action),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TgSpec {
    pub port: u16,
    pub vpc_id: Option<String>,
    /// `TargetType: ip`: `Targets` are addresses, not instance ids.
    pub ip_targets: bool,
    /// `Targets`: id (an instance id, or an address when `ip_targets`) and port.
    pub targets: Vec<(String, u16)>,
    /// Every setting of the engine's config; name and targets are filled in when compiled.
    pub config: TargetGroupConfig,
}

impl Spec {
    /// Parses `p` as the properties of `kind`, reporting every problem at once (the
    /// message of a [`ProviderError::InvalidRequest`]).
    pub fn parse(kind: Kind, p: &Props) -> Result<Spec, String> {
        let mut e = Problems::new(kind);
        e.unknown("", shape(kind), p);
        let spec = match kind {
            Kind::LoadBalancer => LbSpec::parse(p, &mut e).map(Spec::LoadBalancer),
            Kind::Listener => ListenerSpec::parse(p, &mut e).map(Spec::Listener),
            Kind::ListenerRule => RuleSpec::parse(p, &mut e).map(Spec::Rule),
            _ => TgSpec::parse(p, &mut e).map(|t| Spec::TargetGroup(Box::new(t))),
        };
        e.finish(spec)
    }

    /// The target group ARNs this resource's actions forward to.
    pub fn target_groups(&self) -> Vec<&str> {
        let action = match self {
            Spec::Listener(l) => &l.default_action,
            Spec::Rule(r) => &r.action,
            Spec::LoadBalancer(_) | Spec::TargetGroup(_) => return Vec::new(),
        };
        match action {
            ActionSpec::Forward { target_group } => vec![target_group.as_str()],
            ActionSpec::Other(_) => Vec::new(),
        }
    }
}

/// A required port (1-65535) at `key`.
fn port_of(s: &Shape, p: &Props, key: &str, e: &mut Problems) -> Option<u16> {
    let n = e.take("", s.opt_int(p, key))?;
    let Some(n) = n else {
        e.add("", format!("{key} is required"));
        return None;
    };
    let port = u16::try_from(n).ok().filter(|n| *n > 0);
    if port.is_none() {
        e.add("", format!("{key} {n} is not a port (1-65535)"));
    }
    port
}

fn parse_num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("attribute {k}: `{v}` is not a valid number"))
}

fn parse_bool(k: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("attribute {k}: `{v}` is not true or false")),
    }
}

/// `[{Key, Value}]` attribute lists, each with its path (`KEY[i]`).
fn attributes(s: &Shape, p: &Props, key: &str, e: &mut Problems) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let items = e.take("", s.map_list(p, key)).flatten().unwrap_or_default();
    for (i, a) in items.into_iter().enumerate() {
        let path = format!("{key}[{i}]");
        let k = e.take(&path, s.req_str(a, "Key"));
        let v = e
            .take(&path, s.opt_str(a, "Value"))
            .map(Option::unwrap_or_default);
        if let (Some(k), Some(v)) = (k, v) {
            out.push((path, k, v));
        }
    }
    out
}

impl LbSpec {
    fn parse(p: &Props, e: &mut Problems) -> Option<LbSpec> {
        let s = &LB_SHAPE;
        if let Some(Some(t)) = e.take("", s.opt_str(p, "Type")) {
            if t != "application" {
                e.add(
                    "Type",
                    format!("Type `{t}`: Spindle implements application load balancers"),
                );
            }
        }
        let subnets = e.take("", s.str_list(p, "Subnets"));
        let security_groups = e.take("", s.str_list(p, "SecurityGroups"));
        let mut idle_timeout = None;
        for (path, k, v) in attributes(s, p, "LoadBalancerAttributes", e) {
            if k == "idle_timeout.timeout_seconds" {
                match parse_num::<u64>(&k, &v) {
                    Ok(n) => idle_timeout = Some(n),
                    Err(m) => e.add(path, m),
                }
            }
        }
        Some(LbSpec {
            subnets: subnets?,
            security_groups: security_groups?,
            idle_timeout,
        })
    }
}

impl ListenerSpec {
    fn parse(p: &Props, e: &mut Problems) -> Option<ListenerSpec> {
        let s = &LISTENER_SHAPE;
        let load_balancer = e.take("", s.req_str(p, "LoadBalancerArn"));
        let port = port_of(s, p, "Port", e);
        let protocol = match e.take("", s.opt_str(p, "Protocol"))?.as_deref() {
            None | Some("HTTP") => Some(ListenerProto::Http),
            Some("HTTPS") => certificate(p, e).map(ListenerProto::Https),
            Some(other) => {
                e.add(
                    "Protocol",
                    format!("Protocol `{other}`: Spindle implements HTTP and HTTPS"),
                );
                None
            }
        };
        let default_action = action_of(s, p, "DefaultActions", e);
        Some(ListenerSpec {
            load_balancer: load_balancer?,
            port: port?,
            protocol: protocol?,
            default_action: default_action?,
        })
    }
}

/// An HTTPS listener's `Certificates[0].CertificateArn`.
fn certificate(p: &Props, e: &mut Problems) -> Option<CertSource> {
    let s = &LISTENER_SHAPE;
    let certs = e
        .take("", s.map_list(p, "Certificates"))?
        .unwrap_or_default();
    let Some(first) = certs.first() else {
        e.add(
            "Certificates",
            "an HTTPS listener needs Certificates with one CertificateArn",
        );
        return None;
    };
    let arn = e.take("Certificates[0]", s.req_str(first, "CertificateArn"))?;
    if let Some(path) = arn.strip_prefix("file:") {
        return Some(CertSource::File(path.to_string()));
    }
    if let Some(name) = arn.strip_prefix("ssm:") {
        return Some(CertSource::Param(name.to_string()));
    }
    e.add(
        "Certificates[0].CertificateArn",
        format!(
            "CertificateArn `{arn}`: Spindle reads certificates from `file:/path/bundle.pem` or `ssm:/parameter/name` (a PEM with the chain and its key)"
        ),
    );
    None
}

/// A listener's `DefaultActions` or a rule's `Actions`: exactly one action.
fn action_of(s: &Shape, p: &Props, key: &str, e: &mut Problems) -> Option<ActionSpec> {
    let actions = e.take("", s.map_list(p, key))?.unwrap_or_default();
    let [a] = actions.as_slice() else {
        e.add(
            "",
            format!(
                "{key} must hold exactly one action (Spindle does not chain actions), got {}",
                actions.len()
            ),
        );
        return None;
    };
    let at = format!("{key}[0]");
    let map = |k: &str| match a.get(k) {
        Some(Value::Map(m)) => Some(m),
        _ => None,
    };
    match e.take(&at, s.req_str(a, "Type"))?.as_str() {
        "forward" => {
            let mut arns = Vec::new();
            if let Some(arn) = e.take(&at, s.opt_str(a, "TargetGroupArn"))? {
                arns.push(arn);
            }
            if let Some(fc) = map("ForwardConfig") {
                let path = format!("{at}.ForwardConfig");
                let groups = e.take(&path, s.map_list(fc, "TargetGroups"))?;
                for (i, t) in groups.unwrap_or_default().into_iter().enumerate() {
                    let arn = e.take(
                        format!("{path}.TargetGroups[{i}]"),
                        s.req_str(t, "TargetGroupArn"),
                    )?;
                    if !arns.contains(&arn) {
                        arns.push(arn);
                    }
                }
            }
            let [arn] = arns.as_slice() else {
                e.add(
                    at,
                    "a forward action needs exactly one target group (weighted groups are not implemented)",
                );
                return None;
            };
            Some(ActionSpec::Forward {
                target_group: arn.clone(),
            })
        }
        "fixed-response" => {
            let Some(fc) = map("FixedResponseConfig") else {
                e.add(at, "fixed-response needs FixedResponseConfig");
                return None;
            };
            let path = format!("{at}.FixedResponseConfig");
            let status = e.take(&path, s.req_str(fc, "StatusCode"))?;
            let content_type = e.take(&path, s.opt_str(fc, "ContentType"));
            let body = e.take(&path, s.opt_str(fc, "MessageBody"));
            let Ok(status) = status.parse() else {
                e.add(path, format!("StatusCode `{status}` is not a status code"));
                return None;
            };
            Some(ActionSpec::Other(Action::FixedResponse {
                status,
                content_type: content_type?.unwrap_or_else(|| "text/plain".into()),
                body: body?.unwrap_or_default(),
            }))
        }
        "redirect" => {
            let Some(rc) = map("RedirectConfig") else {
                e.add(at, "redirect needs RedirectConfig");
                return None;
            };
            let path = format!("{at}.RedirectConfig");
            let code = e.take(&path, s.req_str(rc, "StatusCode"))?;
            let status = match code.as_str() {
                "HTTP_301" => Some(301),
                "HTTP_302" => Some(302),
                _ => {
                    e.add(
                        &path,
                        format!("RedirectConfig.StatusCode `{code}` is not HTTP_301 or HTTP_302"),
                    );
                    None
                }
            };
            let mut o = |k: &str| e.take(&path, s.opt_str(rc, k));
            let (protocol, host, port, path_, query) =
                (o("Protocol"), o("Host"), o("Port"), o("Path"), o("Query"));
            Some(ActionSpec::Other(Action::Redirect {
                protocol: protocol?,
                host: host?,
                port: port?,
                path: path_?,
                query: query?,
                status: status?,
            }))
        }
        other => {
            e.add(
                at,
                format!(
                    "action type `{other}`: Spindle implements forward, fixed-response and redirect"
                ),
            );
            None
        }
    }
}

impl RuleSpec {
    fn parse(p: &Props, e: &mut Problems) -> Option<RuleSpec> {
        let s = &RULE_SHAPE;
        let listener = e.take("", s.req_str(p, "ListenerArn"));
        let priority = match e.take("", s.opt_int(p, "Priority")) {
            Some(Some(prio)) => {
                let n = u32::try_from(prio).ok().filter(|n| (1..=50000).contains(n));
                if n.is_none() {
                    e.add("", format!("Priority {prio} is not in 1-50000"));
                }
                n
            }
            Some(None) => {
                e.add("", "Priority is required");
                None
            }
            None => None,
        };
        let mut conditions = Some(Vec::new());
        let items = e.take("", s.map_list(p, "Conditions")).flatten();
        for (i, c) in items.unwrap_or_default().into_iter().enumerate() {
            let path = format!("Conditions[{i}]");
            match condition(s, c, &path, e) {
                Some(c) => {
                    if let Some(list) = &mut conditions {
                        list.push(c)
                    }
                }
                None => conditions = None,
            }
        }
        let action = action_of(s, p, "Actions", e);
        Some(RuleSpec {
            listener: listener?,
            priority: priority?,
            conditions: conditions?,
            action: action?,
        })
    }
}

fn condition(s: &Shape, c: &Props, path: &str, e: &mut Problems) -> Option<Condition> {
    let field = e.take(path, s.req_str(c, "Field"))?;
    let mut values = e.take(path, s.str_list(c, "Values"))?;
    let mut nested = |k: &str| match c.get(k) {
        Some(Value::Map(m)) => e.take(format!("{path}.{k}"), s.str_list(m, "Values")),
        _ => Some(Vec::new()),
    };
    let condition = match field.as_str() {
        "host-header" => {
            values.extend(nested("HostHeaderConfig")?);
            Condition::HostHeader(values)
        }
        "path-pattern" => {
            values.extend(nested("PathPatternConfig")?);
            Condition::PathPattern(values)
        }
        other => {
            e.add(
                path,
                format!(
                    "condition field `{other}`: Spindle implements host-header and path-pattern"
                ),
            );
            return None;
        }
    };
    if matches!(&condition, Condition::HostHeader(v) | Condition::PathPattern(v) if v.is_empty()) {
        e.add(path, "every condition needs at least one value");
        return None;
    }
    Some(condition)
}

impl TgSpec {
    fn parse(p: &Props, e: &mut Problems) -> Option<TgSpec> {
        let s = &TG_SHAPE;
        let port = port_of(s, p, "Port", e);
        let vpc_id = e.take("", s.opt_str(p, "VpcId"));
        let ip_targets = match e.take("", s.opt_str(p, "TargetType"))?.as_deref() {
            None | Some("instance") => Some(false),
            Some("ip") => Some(true),
            Some(other) => {
                e.add(
                    "TargetType",
                    format!("TargetType `{other}`: Spindle implements instance and ip"),
                );
                None
            }
        };
        let mut targets = Some(Vec::new());
        let items = e.take("", s.map_list(p, "Targets")).flatten();
        for (i, t) in items.unwrap_or_default().into_iter().enumerate() {
            let path = format!("Targets[{i}]");
            let id = e.take(&path, s.req_str(t, "Id"));
            let tport = match e.take(&path, s.opt_int(t, "Port")) {
                Some(None) => port,
                Some(Some(n)) => {
                    let tp = u16::try_from(n).ok().filter(|n| *n > 0);
                    if tp.is_none() {
                        e.add(&path, format!("Targets: port {n} out of range"));
                    }
                    tp
                }
                None => None,
            };
            if let (Some(id), Some(true)) = (&id, ip_targets) {
                if id.parse::<IpAddr>().is_err() {
                    e.add(
                        &path,
                        format!("Targets: `{id}` is not an IP address (TargetType is ip)"),
                    );
                    targets = None;
                }
            }
            match (id, tport) {
                (Some(id), Some(tport)) => {
                    if let Some(list) = &mut targets {
                        list.push((id, tport))
                    }
                }
                _ => targets = None,
            }
        }
        let mut config = TargetGroupConfig::new(String::new(), Vec::new());
        let health = health_check(p, e);
        let settings = settings(p, &mut config, e);
        config.health_check = health?;
        settings?;
        Some(TgSpec {
            port: port?,
            vpc_id: vpc_id?,
            ip_targets: ip_targets?,
            targets: targets?,
            config,
        })
    }
}

fn health_check(p: &Props, e: &mut Problems) -> Option<HealthCheckConfig> {
    let s = &TG_SHAPE;
    let problems = e.count();
    let mut hc = HealthCheckConfig::default();
    if let Some(Some(v)) = e.take("", s.opt_str(p, "HealthCheckEnabled")) {
        match parse_bool("HealthCheckEnabled", &v) {
            Ok(b) => hc.enabled = b,
            Err(m) => e.add("", m),
        }
    }
    let mut secs = |k: &str| -> Option<u64> {
        let n = e.take("", s.opt_int(p, k)).flatten()?;
        let v = u64::try_from(n).ok().filter(|n| *n > 0);
        if v.is_none() {
            e.add("", format!("{k} must be at least 1, got {n}"));
        }
        v
    };
    let interval = secs("HealthCheckIntervalSeconds");
    let timeout = secs("HealthCheckTimeoutSeconds");
    let healthy = secs("HealthyThresholdCount");
    let unhealthy = secs("UnhealthyThresholdCount");
    if let Some(n) = interval {
        hc.interval = Duration::from_secs(n);
    }
    if let Some(n) = timeout {
        hc.timeout = Duration::from_secs(n);
    }
    if let Some(n) = healthy {
        hc.healthy_threshold = n as u32;
    }
    if let Some(n) = unhealthy {
        hc.unhealthy_threshold = n as u32;
    }
    if hc.enabled && hc.timeout >= hc.interval {
        e.add(
            "",
            format!(
                "HealthCheckTimeoutSeconds ({}) must be less than HealthCheckIntervalSeconds ({})",
                hc.timeout.as_secs(),
                hc.interval.as_secs()
            ),
        );
    }
    if let Some(Some(path)) = e.take("", s.opt_str(p, "HealthCheckPath")) {
        hc.path = path;
    }
    match e
        .take("", s.opt_str(p, "HealthCheckPort"))
        .flatten()
        .as_deref()
    {
        None | Some("traffic-port") => {}
        Some(other) if s.opt_str(p, "Port").ok().flatten().as_deref() == Some(other) => {}
        Some(other) => e.add(
            "HealthCheckPort",
            format!("HealthCheckPort `{other}`: Spindle checks the traffic port only"),
        ),
    }
    match e
        .take("", s.opt_str(p, "HealthCheckProtocol"))
        .flatten()
        .as_deref()
    {
        None | Some("HTTP") => {}
        Some(other) => e.add(
            "HealthCheckProtocol",
            format!("HealthCheckProtocol `{other}`: Spindle checks over HTTP"),
        ),
    }
    match e.take("", s.opt_str(p, "Protocol")).flatten().as_deref() {
        None | Some("HTTP") => {}
        Some(other) => e.add(
            "Protocol",
            format!("Protocol `{other}`: Spindle forwards to targets over HTTP"),
        ),
    }
    if let Some(Value::Map(m)) = p.get("Matcher") {
        if let Some(Some(code)) = e.take("Matcher", s.opt_str(m, "HttpCode")) {
            hc.matcher = code;
        }
        if m.contains_key("GrpcCode") {
            e.add("Matcher.GrpcCode", "gRPC is not implemented");
        }
    }
    if let Err(r) = spindle_lb::Matcher::parse(&hc.matcher) {
        e.add("Matcher.HttpCode", r);
    }
    (e.count() == problems).then_some(hc)
}

/// `TargetGroupAttributes` into `cfg`; `None` if any was refused.
fn settings(p: &Props, cfg: &mut TargetGroupConfig, e: &mut Problems) -> Option<()> {
    let problems = e.count();
    let attrs = attributes(&TG_SHAPE, p, "TargetGroupAttributes", e);
    let mut sticky = (false, Duration::from_secs(86400));
    let mut iso = SchedulerConfig::default();
    let mut tenant_key: Option<TenantKey> = None;
    let mut source: Option<String> = None;
    let mut rate: (Option<f64>, Option<u32>) = (None, None);
    let mut tenant_settings = false;
    for (path, k, v) in &attrs {
        match attribute(
            k,
            v,
            cfg,
            &mut sticky,
            &mut iso,
            &mut tenant_key,
            &mut source,
            &mut rate,
        ) {
            Ok(()) => tenant_settings |= k.starts_with("spindle.tenant."),
            Err(m) => e.add(path, m),
        }
    }
    if sticky.0 {
        cfg.stickiness = Some(Stickiness { duration: sticky.1 });
    }
    let key = match (source.as_deref(), tenant_key) {
        (None, k) => k,
        (Some("header"), Some(k)) => Some(k),
        (Some("header"), None) => {
            e.add(
                "TargetGroupAttributes",
                "spindle.tenant.source is header but spindle.tenant.header is not set",
            );
            None
        }
        (Some("host"), _) => Some(TenantKey::HostSubdomain),
        (Some("path"), _) => Some(TenantKey::PathPrefix),
        (Some(other), _) => {
            e.add(
                "TargetGroupAttributes",
                format!("spindle.tenant.source `{other}` is not header, host or path"),
            );
            None
        }
    };
    iso.token_bucket = match rate {
        (None, None) => None,
        (Some(r), b) => Some(TokenBucketConfig {
            rate_per_sec: r,
            burst: b.unwrap_or_else(|| (r.ceil() as u32).max(1)),
        }),
        (None, Some(_)) => {
            e.add(
                "TargetGroupAttributes",
                "spindle.tenant.rate.burst needs spindle.tenant.rate.per_second",
            );
            None
        }
    };
    if let Some(k) = key {
        cfg.isolation = Some(IsolationConfig {
            tenant_key: k,
            scheduler: iso,
        });
    } else if tenant_settings && source.is_none() {
        e.add(
            "TargetGroupAttributes",
            "spindle.tenant.* settings need spindle.tenant.header or spindle.tenant.source",
        );
    }
    (e.count() == problems).then_some(())
}

/// One target group attribute into the settings being built.
#[allow(clippy::too_many_arguments)]
fn attribute(
    k: &str,
    v: &str,
    cfg: &mut TargetGroupConfig,
    sticky: &mut (bool, Duration),
    iso: &mut SchedulerConfig,
    tenant_key: &mut Option<TenantKey>,
    source: &mut Option<String>,
    rate: &mut (Option<f64>, Option<u32>),
) -> Result<(), String> {
    let secs = || parse_num::<u64>(k, v).map(Duration::from_secs);
    match k {
        "deregistration_delay.timeout_seconds" => cfg.deregistration_delay = secs()?,
        "slow_start.duration_seconds" => cfg.slow_start = secs()?,
        "load_balancing.algorithm.type" => {
            cfg.algorithm = match v {
                "round_robin" => Algorithm::RoundRobin,
                "least_outstanding_requests" => Algorithm::LeastOutstandingRequests,
                _ => {
                    return Err(format!(
                        "{k}: `{v}` is not round_robin or least_outstanding_requests"
                    ))
                }
            }
        }
        "stickiness.enabled" => sticky.0 = parse_bool(k, v)?,
        "stickiness.type" if v != "lb_cookie" => {
            return Err(format!("{k}: Spindle implements lb_cookie, not `{v}`"));
        }
        "stickiness.lb_cookie.duration_seconds" => sticky.1 = secs()?,
        "spindle.target.timeout_seconds" => {
            cfg.target_timeout = secs()?.max(Duration::from_millis(1))
        }
        "spindle.tenant.header" => *tenant_key = Some(TenantKey::Header(v.to_string())),
        "spindle.tenant.source" => *source = Some(v.to_string()),
        "spindle.tenant.concurrency.initial" => iso.initial_limit = parse_num(k, v)?,
        "spindle.tenant.concurrency.min" => iso.min_limit = parse_num(k, v)?,
        "spindle.tenant.concurrency.max" => iso.max_limit = parse_num(k, v)?,
        "spindle.tenant.concurrency.adaptive" => iso.adaptive = parse_bool(k, v)?,
        "spindle.tenant.max_in_flight" => iso.max_in_flight_per_tenant = Some(parse_num(k, v)?),
        "spindle.tenant.queue.max" => iso.max_queue_per_tenant = parse_num(k, v)?,
        "spindle.tenant.queue.timeout_ms" => {
            iso.queue_timeout = Duration::from_millis(parse_num(k, v)?)
        }
        "spindle.tenant.rate.per_second" => rate.0 = Some(parse_num(k, v)?),
        "spindle.tenant.rate.burst" => rate.1 = Some(parse_num(k, v)?),
        other if other.starts_with("spindle.tenant.weight.") => {
            let tenant = &other["spindle.tenant.weight.".len()..];
            let weight: u32 = parse_num(k, v)?;
            if tenant.is_empty() || weight == 0 {
                return Err(format!(
                    "{k}: needs a tenant name and a weight of at least 1"
                ));
            }
            iso.weights.insert(tenant.to_ascii_lowercase(), weight);
        }
        other if other.starts_with("spindle.") => {
            return Err(format!(
                "TargetGroupAttributes: unknown Spindle attribute `{other}`"
            ))
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
fn parse_json(kind: Kind, json: serde_json::Value) -> Result<Spec, String> {
    match Value::from_json(&json) {
        Value::Map(m) => Spec::parse(kind, &m),
        other => panic!("properties must be a map, got {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Every key in [`SPINDLE_TG_ATTRIBUTES`] has its arm in `attribute`'s match, and there
    /// is no arm for a key the list lacks.
    #[test]
    fn spindle_attribute_list_matches_the_parser() {
        let src = include_str!("elbv2_spec.rs");
        let arms = src
            .lines()
            .filter(|l| l.trim_start().starts_with("\"spindle.") && l.contains("\" =>"))
            .count();
        for key in SPINDLE_TG_ATTRIBUTES {
            assert!(
                src.contains(&format!("\"{key}\" =>")),
                "{key} has no arm in attribute"
            );
        }
        assert_eq!(arms, SPINDLE_TG_ATTRIBUTES.len());
    }

    fn err(kind: Kind, props: serde_json::Value) -> String {
        match parse_json(kind, props) {
            Err(m) => m,
            Ok(spec) => panic!("expected a refusal, got {spec:?}"),
        }
    }

    /// Every problem of one target group at once, each at its property path.
    #[test]
    fn a_target_group_reports_every_problem_with_its_path() {
        let m = err(
            Kind::TargetGroup,
            json!({
                "Port": "eighty",
                "TargetType": "ip",
                "Targets": [{"Id": "10.0.0.1"}, {"Id": "i-0123", "Port": 70000}],
                "HealthCheckProtocol": "HTTPS",
                "TargetGroupAttributes": [
                    {"Key": "stickiness.enabled", "Value": "false"},
                    {"Key": "spindle.tenant.headr", "Value": "X-Tenant-Id"},
                    {"Key": "deregistration_delay.timeout_seconds", "Value": "soon"}
                ]
            }),
        );
        let want = [
            "AWS::ElasticLoadBalancingV2::TargetGroup: Port must be an integer, got eighty",
            "Targets[1]: Targets: port 70000 out of range",
            "Targets[1]: Targets: `i-0123` is not an IP address (TargetType is ip)",
            "HealthCheckProtocol: HealthCheckProtocol `HTTPS`: Spindle checks over HTTP",
            "TargetGroupAttributes[1]: TargetGroupAttributes: unknown Spindle attribute `spindle.tenant.headr`",
            "TargetGroupAttributes[2]: attribute deregistration_delay.timeout_seconds: `soon` is not a valid number",
        ];
        assert_eq!(m, want.join("; "));
    }

    #[test]
    fn good_properties_parse_into_typed_fields() {
        let Spec::TargetGroup(tg) = parse_json(
            Kind::TargetGroup,
            json!({
                "Port": "8080",
                "VpcId": "vpc-a",
                "Targets": [{"Id": "i-1"}, {"Id": "i-2", "Port": 9000}],
                "HealthCheckIntervalSeconds": 2,
                "HealthCheckTimeoutSeconds": 1,
                "Matcher": {"HttpCode": "200-299"},
                "TargetGroupAttributes": [
                    {"Key": "spindle.tenant.header", "Value": "X-Tenant"},
                    {"Key": "spindle.tenant.weight.Acme", "Value": "3"},
                    {"Key": "spindle.tenant.rate.per_second", "Value": "2.5"}
                ]
            }),
        )
        .unwrap() else {
            panic!("a target group spec")
        };
        assert_eq!(tg.port, 8080);
        assert_eq!(tg.vpc_id.as_deref(), Some("vpc-a"));
        assert!(!tg.ip_targets);
        assert_eq!(
            tg.targets,
            [("i-1".to_string(), 8080), ("i-2".to_string(), 9000)]
        );
        assert_eq!(tg.config.health_check.interval, Duration::from_secs(2));
        assert_eq!(tg.config.health_check.matcher, "200-299");
        let iso = tg.config.isolation.expect("isolation on");
        assert_eq!(iso.tenant_key, TenantKey::Header("X-Tenant".into()));
        assert_eq!(iso.scheduler.weights.get("acme"), Some(&3));
        assert_eq!(iso.scheduler.token_bucket.map(|b| b.burst), Some(3));
    }

    /// Listeners, rules and load balancers: each bad property named, all at once.
    #[test]
    fn other_kinds_report_every_problem_at_once() {
        let cases: &[(Kind, serde_json::Value, &[&str])] = &[
            (
                Kind::Listener,
                json!({"Port": 0, "Protocol": "HTTPS", "DefaultActions": []}),
                &[
                    "LoadBalancerArn is required",
                    "Port 0 is not a port (1-65535)",
                    "Certificates: an HTTPS listener needs Certificates with one CertificateArn",
                    "DefaultActions must hold exactly one action (Spindle does not chain actions), got 0",
                ],
            ),
            (
                Kind::ListenerRule,
                json!({
                    "ListenerArn": "arn:l",
                    "Priority": 0,
                    "Conditions": [{"Field": "source-ip", "Values": ["x"]}, {"Field": "path-pattern"}],
                    "Actions": [{"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_307"}}]
                }),
                &[
                    "Priority 0 is not in 1-50000",
                    "Conditions[0]: condition field `source-ip`: Spindle implements host-header and path-pattern",
                    "Conditions[1]: every condition needs at least one value",
                    "Actions[0].RedirectConfig: RedirectConfig.StatusCode `HTTP_307` is not HTTP_301 or HTTP_302",
                ],
            ),
            (
                Kind::LoadBalancer,
                json!({
                    "Type": "network",
                    "SubnetMappings": [],
                    "LoadBalancerAttributes": [{"Key": "idle_timeout.timeout_seconds", "Value": "x"}]
                }),
                &[
                    "property SubnetMappings is not supported by Spindle; use Subnets",
                    "Type: Type `network`: Spindle implements application load balancers",
                    "LoadBalancerAttributes[0]: attribute idle_timeout.timeout_seconds: `x` is not a valid number",
                ],
            ),
        ];
        for (kind, props, want) in cases {
            let m = err(*kind, props.clone());
            assert_eq!(m, format!("{kind}: {}", want.join("; ")), "{kind}");
        }
    }

    #[test]
    fn forward_actions_name_their_target_group() {
        let spec = parse_json(
            Kind::Listener,
            json!({
                "LoadBalancerArn": "arn:lb",
                "Port": 80,
                "DefaultActions": [{"Type": "forward", "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "arn:tg"}]}}]
            }),
        )
        .unwrap();
        assert_eq!(spec.target_groups(), ["arn:tg"]);
        let mut m = BTreeMap::new();
        m.insert("Port".to_string(), Value::str("80"));
        assert!(
            Spec::parse(Kind::LoadBalancer, &m).is_err(),
            "Port is no LB property"
        );
    }
}
