//! `AWS::ElasticLoadBalancingV2::{LoadBalancer, Listener, ListenerRule, TargetGroup}` on the
//! load balancer engine (`spindle-lb`).
//!
//! Each provider call changes one record of [`Elb`]'s small state (saved like the EC2
//! providers' state, as one document: `elbv2-providers` in the daemon's store), then compiles every load balancer the change
//! touches into a whole [`LbConfig`] and applies it with the next generation. If an apply or
//! the save fails, the load balancers already changed get their previous config back and the
//! record is left as it was, so a failed call changes nothing.
//!
//! | Type | `Ref` | `Fn::GetAtt` |
//! |---|---|---|
//! | `LoadBalancer` | its ARN | `LoadBalancerArn`, `DNSName`, `LoadBalancerName`, `LoadBalancerFullName`, `CanonicalHostedZoneID`, `SecurityGroups` |
//! | `Listener` | its ARN | `ListenerArn` |
//! | `ListenerRule` | its ARN | `RuleArn`, `IsDefault` |
//! | `TargetGroup` | its ARN | `TargetGroupArn`, `TargetGroupName`, `TargetGroupFullName`, `LoadBalancerArns` |
//!
//! **Where a load balancer listens.** Each load balancer binds its own loopback address,
//! `127.a.b.c` derived from its ARN, so two load balancers can both listen on port 80; the
//! daemon can instead bind every one to one configured address ([`ElbOptions::address`]).
//! The `DNSName` attribute (`name-1234567890.REGION.elb.spindle.internal`) is what the DNS
//! zone will point at that address.
//!
//! **Targets.** `TargetType: instance` (the default) registers `i-…` ids, resolved to the
//! instance's private IP; `ip` registers addresses. Upstream connections of a load balancer
//! whose `Subnets` name a VPC are opened inside that VPC's router namespace through
//! [`Runtime::connect_from_vpc`] (the runtime is the only crate that joins namespaces);
//! without subnets they are opened from the host.
//!
//! **Certificates.** A listener's `Certificates[0].CertificateArn` is `file:/path/bundle.pem`
//! or `ssm:/parameter/name`: a PEM holding the certificate chain and its private key. A key
//! that does not match the certificate is refused at deploy.
//!
//! **Target group attributes** (`TargetGroupAttributes`, `Key`/`Value` strings):
//!
//! | Key | Meaning | Default |
//! |---|---|---|
//! | `deregistration_delay.timeout_seconds` | time a removed target may finish in-flight requests | 300 |
//! | `slow_start.duration_seconds` | linear ramp of a newly healthy target's share (0 = off) | 0 |
//! | `load_balancing.algorithm.type` | `round_robin` or `least_outstanding_requests` | `round_robin` |
//! | `stickiness.enabled`, `stickiness.type` (`lb_cookie`), `stickiness.lb_cookie.duration_seconds` | cookie stickiness | off, 86400 |
//! | `spindle.target.timeout_seconds` | time a target has for its response head before 504 | 60 |
//! | `spindle.tenant.header` | tenant isolation on, the tenant named by this header | off |
//! | `spindle.tenant.source` | `header`, `host` (first label of the host) or `path` (first path segment) | `header` when a header is set |
//! | `spindle.tenant.concurrency.initial` / `.min` / `.max` | the adaptive concurrency limit of each target | 20 / 2 / 1000 |
//! | `spindle.tenant.concurrency.adaptive` | `false` pins the limit at `initial` | `true` |
//! | `spindle.tenant.max_in_flight` | requests one tenant may have in flight | none |
//! | `spindle.tenant.queue.max` | requests one tenant may have waiting (then 429) | 64 |
//! | `spindle.tenant.queue.timeout_ms` | longest wait in a tenant's queue (then 503) | 1000 |
//! | `spindle.tenant.rate.per_second` + `spindle.tenant.rate.burst` | per-tenant token bucket | none |
//! | `spindle.tenant.weight.<tenant>` | the tenant's weight in the round robin at each target (a whole number ≥ 1; tenant names are compared in lower case) | 1 |
//!
//! Other AWS attribute keys are accepted and have no effect; unknown `spindle.` keys are
//! refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spindle_lb::scheduler::{SchedulerConfig, TokenBucketConfig};
use spindle_lb::{
    Action, Algorithm, ApplyError, BoxFuture as LbFuture, Condition, HealthCheckConfig,
    HealthState, IsolationConfig, LbConfig, LbOptions, ListenerConfig, ListenerProtocol,
    LoadBalancer, RuleConfig, Stickiness, TargetGroupConfig, TcpConnector, TenantKey,
    UpstreamConnector,
};
use spindle_model::lb::{
    LbAdmission, LbCounts, LbMetricSeries, LbSecond, ListenerInfo, LoadBalancerInfo,
    TargetGroupInfo, TargetHealthInfo,
};
use spindle_runtime::{FileDoc, Runtime, StateDoc};
use spindle_stack::ssm::ParamStore;
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

use crate::props::{Props, Shape};
use crate::scoped_token;

/// The resource types [`Elb::register`] registers.
pub const ELBV2_TYPES: &[&str] = &[LB_TYPE, LISTENER_TYPE, RULE_TYPE, TG_TYPE];

/// The file name of the providers' state, in the runtime's data directory.
pub const ELBV2_STATE_FILE: &str = "elbv2-providers.json";

const LB_TYPE: &str = "AWS::ElasticLoadBalancingV2::LoadBalancer";
pub(crate) const LISTENER_TYPE: &str = "AWS::ElasticLoadBalancingV2::Listener";
const RULE_TYPE: &str = "AWS::ElasticLoadBalancingV2::ListenerRule";
pub(crate) const TG_TYPE: &str = "AWS::ElasticLoadBalancingV2::TargetGroup";

/// The `spindle.*` target group attribute keys [`Elb`] implements (the table in the module
/// documentation). Validation refuses any other `spindle.` key before a deploy starts;
/// `spindle_attribute_list_matches_the_parser` checks this list against `target_group`.
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

/// The hosted zone id `DNSName` lives in (the DNS issue serves it).
pub const HOSTED_ZONE_ID: &str = "ZSPINDLEELB0001";

const LB_SHAPE: Shape = Shape {
    type_name: LB_TYPE,
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

const LISTENER_SHAPE: Shape = Shape {
    type_name: LISTENER_TYPE,
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

const RULE_SHAPE: Shape = Shape {
    type_name: RULE_TYPE,
    used: &["ListenerArn", "Priority", "Conditions", "Actions"],
    ignored: &[],
    hints: &[],
};

const TG_SHAPE: Shape = Shape {
    type_name: TG_TYPE,
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

/// How the daemon runs its load balancers.
#[derive(Debug, Clone, Default)]
pub struct ElbOptions {
    /// Bind every load balancer here instead of its own derived `127.a.b.c`.
    pub address: Option<IpAddr>,
    /// Client I/O threads per load balancer (see [`LbOptions::io_threads`]).
    pub io_threads: usize,
}

/// One resource's record: who made it and its properties (as JSON, re-read on every compile).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Rec {
    account: String,
    region: String,
    stack: String,
    logical_id: String,
    /// Load balancers and target groups: the resource name.
    name: String,
    /// Listener: its load balancer's ARN; rule: its listener's ARN.
    #[serde(default)]
    parent: Option<String>,
    /// Load balancers: the address their listeners bind.
    #[serde(default)]
    address: Option<IpAddr>,
    props: serde_json::Value,
    /// Target groups: instance ids registered by auto scaling (not in the template's
    /// `Targets`), kept here so they survive a daemon restart.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    dynamic: BTreeSet<String>,
}

impl Rec {
    fn props(&self) -> Props {
        match Value::from_json(&self.props) {
            Value::Map(m) => m,
            _ => Props::new(),
        }
    }
}

fn kind_of(arn: &str) -> &'static str {
    if arn.contains(":loadbalancer/") {
        LB_TYPE
    } else if arn.contains(":listener-rule/") {
        RULE_TYPE
    } else if arn.contains(":listener/") {
        LISTENER_TYPE
    } else {
        TG_TYPE
    }
}

/// A load balancer the daemon runs, and what its last config was made of.
struct Running {
    lb: Arc<LoadBalancer>,
    generation: u64,
    vpc_id: Option<String>,
    compiled: Compiled,
}

/// A compiled load balancer: the engine's config plus what the API shows about it.
#[derive(Clone, Default)]
struct Compiled {
    config: LbConfig,
    /// Per target group name: (registered id, port, resolved address).
    targets: BTreeMap<String, Vec<(String, u16, SocketAddr)>>,
    /// Target group name → ARN.
    group_arns: BTreeMap<String, String>,
    /// Listener name (its ARN) → (protocol, port, rules).
    listeners: Vec<(String, String, u16, usize)>,
}

struct State {
    recs: BTreeMap<String, Rec>,
    running: HashMap<String, Running>,
}

/// The ELBv2 providers' shared state: records, running load balancers, the runtime.
pub struct Elb {
    runtime: Option<Runtime>,
    doc: Option<Arc<dyn StateDoc>>,
    opts: ElbOptions,
    params: OnceLock<Arc<dyn ParamStore>>,
    state: tokio::sync::Mutex<State>,
    /// Read by the API without waiting for a deploy in progress.
    view: Mutex<HashMap<String, View>>,
}

/// What the API reads of a running load balancer.
#[derive(Clone)]
struct View {
    lb: Arc<LoadBalancer>,
    rec: Rec,
    arn: String,
    vpc_id: Option<String>,
    compiled: Compiled,
}

impl std::fmt::Debug for Elb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elb")
            .field("doc", &self.doc)
            .finish_non_exhaustive()
    }
}

/// Why an ELB operation failed, as the stack engine sees it.
fn invalid(type_name: &'static str, msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidRequest(format!("{type_name}: {}", msg.into()))
}

impl Elb {
    /// Opens the providers' state file (`None`: in memory only). Load balancers start running
    /// only with [`Elb::restore`], which needs a Tokio runtime.
    pub fn open(
        runtime: Option<Runtime>,
        state_file: Option<PathBuf>,
        opts: ElbOptions,
    ) -> Result<Arc<Self>, crate::Ec2Error> {
        Self::open_with(runtime, state_file.map(FileDoc::arc), opts)
    }

    /// Like [`Elb::open`], with the state kept in `doc` (the daemon's store).
    pub fn open_with(
        runtime: Option<Runtime>,
        doc: Option<Arc<dyn StateDoc>>,
        opts: ElbOptions,
    ) -> Result<Arc<Self>, crate::Ec2Error> {
        let recs = match &doc {
            Some(d) => match d.load()? {
                Some(bytes) => serde_json::from_slice(&bytes)
                    .map_err(|e| spindle_runtime::DocError::new(d.name(), e))?,
                None => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        Ok(Arc::new(Elb {
            runtime,
            doc,
            opts,
            params: OnceLock::new(),
            state: tokio::sync::Mutex::new(State {
                recs,
                running: HashMap::new(),
            }),
            view: Mutex::new(HashMap::new()),
        }))
    }

    /// Where `ssm:` certificates are read from (the daemon's parameter store).
    pub fn set_param_store(&self, params: Arc<dyn ParamStore>) {
        let _ = self.params.set(params);
    }

    /// Registers every type in [`ELBV2_TYPES`].
    pub fn register(self: &Arc<Self>, registry: &mut spindle_stack::ProviderRegistry) {
        for t in ELBV2_TYPES {
            registry.register(
                t,
                Arc::new(ElbProvider {
                    elb: self.clone(),
                    type_name: t,
                }),
            );
        }
    }

    /// Starts every recorded load balancer (after a daemon restart). A target that no longer
    /// resolves is left out; a load balancer that can't start is logged and skipped.
    pub async fn restore(&self) {
        let mut st = self.state.lock().await;
        let arns: Vec<String> = st
            .recs
            .iter()
            .filter(|(a, _)| kind_of(a) == LB_TYPE)
            .map(|(a, _)| a.clone())
            .collect();
        for arn in arns {
            match self.apply_lb(&mut st, &arn, false) {
                Ok(()) => tracing::info!(lb = %arn, "load balancer restored"),
                Err(e) => tracing::error!(lb = %arn, error = %e, "load balancer not restored"),
            }
        }
        self.refresh_view(&st);
    }

    fn save(&self, recs: &BTreeMap<String, Rec>) -> Result<(), ProviderError> {
        let Some(d) = &self.doc else {
            return Ok(());
        };
        let fail = |e: &dyn std::fmt::Display| {
            ProviderError::Failed(format!("ELBv2 provider state {}: {e}", d.name()))
        };
        let bytes = serde_json::to_vec(recs).map_err(|e| fail(&e))?;
        d.save(&bytes).map_err(|e| fail(&e.message))
    }

    /// Changes the records with `change`, re-applies every load balancer in `affected` (and
    /// any whose records changed), saves; on any failure puts everything back.
    async fn transact(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Rec>) -> Result<(), ProviderError>,
    ) -> Result<(), ProviderError> {
        let mut st = self.state.lock().await;
        let before = st.recs.clone();
        let before_lbs = lbs_touching(&before);
        change(&mut st.recs)?;
        let after_lbs = lbs_touching(&st.recs);
        // Every load balancer whose compiled inputs may differ: compare per-LB slices.
        let mut affected: Vec<String> = Vec::new();
        for arn in before_lbs.keys().chain(after_lbs.keys()) {
            if before_lbs.get(arn) != after_lbs.get(arn) && !affected.contains(arn) {
                affected.push(arn.clone());
            }
        }
        let mut done = Vec::new();
        let mut failure = None;
        for arn in &affected {
            if !st.recs.contains_key(arn) {
                continue;
            }
            match self.apply_lb(&mut st, arn, true) {
                Ok(()) => done.push(arn.clone()),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if failure.is_none() {
            if let Err(e) = self.save(&st.recs) {
                failure = Some(e);
            }
        }
        if failure.is_some() {
            st.recs = before;
            for arn in done {
                if !st.recs.contains_key(&arn) {
                    continue;
                }
                if let Err(re) = self.apply_lb(&mut st, &arn, false) {
                    tracing::error!(lb = %arn, error = %re, "could not restore the previous load balancer config");
                }
            }
        }
        // Load balancers without a record (deleted, or created by a call that failed) stop.
        let State { recs, running } = &mut *st;
        running.retain(|a, _| recs.contains_key(a));
        self.refresh_view(&st);
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn refresh_view(&self, st: &State) {
        let mut view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.clear();
        for (arn, r) in &st.running {
            if let Some(rec) = st.recs.get(arn) {
                view.insert(
                    arn.clone(),
                    View {
                        lb: r.lb.clone(),
                        rec: rec.clone(),
                        arn: arn.clone(),
                        vpc_id: r.vpc_id.clone(),
                        compiled: r.compiled.clone(),
                    },
                );
            }
        }
    }

    /// Compiles and applies one load balancer, starting it if it isn't running.
    fn apply_lb(&self, st: &mut State, arn: &str, strict: bool) -> Result<(), ProviderError> {
        let rec = st
            .recs
            .get(arn)
            .ok_or_else(|| ProviderError::NotFound(format!("load balancer {arn}")))?;
        let vpc_id = self.lb_vpc(rec)?;
        let compiled = self.compile(&st.recs, arn, vpc_id.as_deref(), strict)?;
        let running = match st.running.get_mut(arn) {
            Some(r) if r.vpc_id == vpc_id => r,
            _ => {
                let connector: Arc<dyn UpstreamConnector> = match (&self.runtime, &vpc_id) {
                    (Some(rt), Some(vpc)) => Arc::new(VpcConnector {
                        runtime: rt.clone(),
                        vpc_id: vpc.clone(),
                    }),
                    _ => Arc::new(TcpConnector),
                };
                // Names are unique per account only; the metric label needs both.
                let mut o = LbOptions::new(format!("{}/{}", rec.account, rec.name));
                o.connector = connector;
                o.io_threads = self.opts.io_threads;
                st.running.insert(
                    arn.to_string(),
                    Running {
                        lb: Arc::new(LoadBalancer::new(o)),
                        generation: 0,
                        vpc_id: vpc_id.clone(),
                        compiled: Compiled::default(),
                    },
                );
                st.running.get_mut(arn).expect("just inserted")
            }
        };
        let generation = running.generation + 1;
        running
            .lb
            .apply(compiled.config.clone(), generation)
            .map_err(|e| match e {
                ApplyError::Invalid(_) => ProviderError::InvalidRequest(e.to_string()),
                other => ProviderError::Failed(crate::error::full_message(&other)),
            })?;
        running.generation = generation;
        running.compiled = compiled;
        Ok(())
    }

    /// The VPC of a load balancer's `Subnets`, when there is a runtime to ask.
    fn lb_vpc(&self, rec: &Rec) -> Result<Option<String>, ProviderError> {
        let subnets = LB_SHAPE
            .str_list(&rec.props(), "Subnets")
            .map_err(ProviderError::from)?;
        let (Some(rt), false) = (&self.runtime, subnets.is_empty()) else {
            return Ok(None);
        };
        let vpcs = rt.vpcs();
        let mut found: Option<String> = None;
        for s in &subnets {
            let vpc = vpcs
                .iter()
                .find(|v| v.subnets.contains_key(s))
                .map(|v| v.id.clone())
                .ok_or_else(|| ProviderError::NotFound(format!("subnet {s}")))?;
            if found.as_ref().is_some_and(|f| *f != vpc) {
                return Err(invalid(
                    LB_TYPE,
                    format!("Subnets must all be in one VPC; {s} is in {vpc}"),
                ));
            }
            found = Some(vpc);
        }
        Ok(found)
    }

    fn certificate(&self, account: &str, p: &Props) -> Result<String, ProviderError> {
        let certs = LISTENER_SHAPE
            .map_list(p, "Certificates")
            .map_err(ProviderError::from)?
            .unwrap_or_default();
        let Some(first) = certs.first() else {
            return Err(invalid(
                LISTENER_TYPE,
                "an HTTPS listener needs Certificates with one CertificateArn",
            ));
        };
        let arn = LISTENER_SHAPE
            .req_str(first, "CertificateArn")
            .map_err(ProviderError::from)?;
        if let Some(path) = arn.strip_prefix("file:") {
            return std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    LISTENER_TYPE,
                    format!("Certificates: cannot read `{path}`: {e}"),
                )
            });
        }
        if let Some(name) = arn.strip_prefix("ssm:") {
            let store = self.params.get().ok_or_else(|| {
                invalid(
                    LISTENER_TYPE,
                    "Certificates: no parameter store on this daemon",
                )
            })?;
            return match store.get(account, name) {
                Ok(Some(p)) => Ok(p.value),
                Ok(None) => Err(invalid(
                    LISTENER_TYPE,
                    format!("Certificates: parameter `{name}` not found"),
                )),
                Err(e) => Err(ProviderError::Failed(e.to_string())),
            };
        }
        Err(invalid(
            LISTENER_TYPE,
            format!(
                "CertificateArn `{arn}`: Spindle reads certificates from `file:/path/bundle.pem` or `ssm:/parameter/name` (a PEM with the chain and its key)"
            ),
        ))
    }

    /// The whole config of one load balancer from the records.
    fn compile(
        &self,
        recs: &BTreeMap<String, Rec>,
        lb_arn: &str,
        lb_vpc: Option<&str>,
        strict: bool,
    ) -> Result<Compiled, ProviderError> {
        let lb = &recs[lb_arn];
        let lb_props = lb.props();
        let address = self
            .opts
            .address
            .or(lb.address)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut out = Compiled::default();
        let mut groups: BTreeSet<String> = BTreeSet::new();
        for (l_arn, l) in recs
            .iter()
            .filter(|(a, r)| kind_of(a) == LISTENER_TYPE && r.parent.as_deref() == Some(lb_arn))
        {
            let p = l.props();
            let port = port_of(&LISTENER_SHAPE, &p, "Port")?;
            let protocol = match LISTENER_SHAPE
                .opt_str(&p, "Protocol")
                .map_err(ProviderError::from)?
                .as_deref()
            {
                None | Some("HTTP") => ListenerProtocol::Http,
                Some("HTTPS") => {
                    let pem = self.certificate(&l.account, &p)?;
                    ListenerProtocol::Https {
                        cert_pem: pem.clone(),
                        key_pem: pem,
                    }
                }
                Some(other) => {
                    return Err(invalid(
                        LISTENER_TYPE,
                        format!("Protocol `{other}`: Spindle implements HTTP and HTTPS"),
                    ))
                }
            };
            let default_action = action_of(
                recs,
                LISTENER_TYPE,
                &l.account,
                &p,
                "DefaultActions",
                &mut groups,
            )?;
            let mut rules = Vec::new();
            for (_, r) in recs
                .iter()
                .filter(|(a, r)| kind_of(a) == RULE_TYPE && r.parent.as_deref() == Some(l_arn))
            {
                rules.push(rule_of(recs, &r.account, &r.props(), &mut groups)?);
            }
            out.listeners.push((
                l_arn.clone(),
                if matches!(protocol, ListenerProtocol::Http) {
                    "HTTP".into()
                } else {
                    "HTTPS".into()
                },
                port,
                rules.len(),
            ));
            out.config.listeners.push(ListenerConfig {
                name: l_arn.clone(),
                bind: SocketAddr::new(address, port),
                protocol,
                rules,
                default_action,
            });
        }
        for tg_arn in groups {
            let tg = &recs[&tg_arn];
            let (cfg, targets) = self.target_group(tg, lb_vpc, strict)?;
            out.group_arns.insert(cfg.name.clone(), tg_arn.clone());
            out.targets.insert(cfg.name.clone(), targets);
            out.config.target_groups.push(cfg);
        }
        // The idle timeout is the one load balancer attribute with an effect.
        for (k, v) in attributes(&LB_SHAPE, &lb_props, "LoadBalancerAttributes")? {
            if k == "idle_timeout.timeout_seconds" {
                let secs = parse_num::<u64>(LB_TYPE, &k, &v)?;
                out.config.client.idle_timeout = Duration::from_secs(secs.max(1));
                out.config.client.header_read_timeout = Duration::from_secs(secs.max(1));
            }
        }
        Ok(out)
    }

    /// A target group's engine config and its resolved targets.
    #[allow(clippy::type_complexity)]
    fn target_group(
        &self,
        tg: &Rec,
        lb_vpc: Option<&str>,
        strict: bool,
    ) -> Result<(TargetGroupConfig, Vec<(String, u16, SocketAddr)>), ProviderError> {
        let s = &TG_SHAPE;
        let p = tg.props();
        let e = ProviderError::from;
        let port = port_of(s, &p, "Port")?;
        let vpc = s.opt_str(&p, "VpcId").map_err(e)?;
        if let (Some(v), Some(l)) = (&vpc, lb_vpc) {
            if v != l {
                return Err(invalid(
                    TG_TYPE,
                    format!(
                        "target group {} is in {v} but its load balancer is in {l}",
                        tg.name
                    ),
                ));
            }
        }
        let ip_targets = match s.opt_str(&p, "TargetType").map_err(e)?.as_deref() {
            None | Some("instance") => false,
            Some("ip") => true,
            Some(other) => {
                return Err(invalid(
                    TG_TYPE,
                    format!("TargetType `{other}`: Spindle implements instance and ip"),
                ))
            }
        };
        let mut resolved = Vec::new();
        for t in s.map_list(&p, "Targets").map_err(e)?.unwrap_or_default() {
            let id = s.req_str(t, "Id").map_err(e)?;
            let tport = match s.opt_int(t, "Port").map_err(e)? {
                None => port,
                Some(n) => u16::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid(TG_TYPE, format!("Targets: port {n} out of range")))?,
            };
            let ip = if ip_targets {
                id.parse::<IpAddr>().map_err(|_| {
                    invalid(
                        TG_TYPE,
                        format!("Targets: `{id}` is not an IP address (TargetType is ip)"),
                    )
                })?
            } else {
                match self.instance_ip(&id, vpc.as_deref().or(lb_vpc)) {
                    Ok(ip) => ip,
                    Err(err) if strict => return Err(err),
                    Err(err) => {
                        tracing::warn!(target_group = %tg.name, error = %err, "target left out");
                        continue;
                    }
                }
            };
            resolved.push((id, tport, SocketAddr::new(ip, tport)));
        }
        // Auto scaling's instances, on the group's port. One that no longer resolves (its
        // group terminated it while the daemon was down) is left out, never an error.
        for id in &tg.dynamic {
            if resolved.iter().any(|(r, _, _)| r == id) {
                continue;
            }
            match self.instance_ip(id, vpc.as_deref().or(lb_vpc)) {
                Ok(ip) => resolved.push((id.clone(), port, SocketAddr::new(ip, port))),
                Err(err) => {
                    tracing::warn!(target_group = %tg.name, error = %err, "registered instance left out")
                }
            }
        }
        let mut cfg = TargetGroupConfig::new(
            tg.name.clone(),
            resolved.iter().map(|(_, _, a)| *a).collect(),
        );
        cfg.health_check = health_check(&p)?;
        let attrs = attributes(s, &p, "TargetGroupAttributes")?;
        let mut sticky = (false, Duration::from_secs(86400));
        let mut iso = SchedulerConfig::default();
        let mut tenant_key: Option<TenantKey> = None;
        let mut source: Option<String> = None;
        let mut rate: (Option<f64>, Option<u32>) = (None, None);
        for (k, v) in &attrs {
            let secs = || parse_num::<u64>(TG_TYPE, k, v).map(Duration::from_secs);
            match k.as_str() {
                "deregistration_delay.timeout_seconds" => cfg.deregistration_delay = secs()?,
                "slow_start.duration_seconds" => cfg.slow_start = secs()?,
                "load_balancing.algorithm.type" => {
                    cfg.algorithm = match v.as_str() {
                        "round_robin" => Algorithm::RoundRobin,
                        "least_outstanding_requests" => Algorithm::LeastOutstandingRequests,
                        _ => {
                            return Err(invalid(
                                TG_TYPE,
                                format!(
                                    "{k}: `{v}` is not round_robin or least_outstanding_requests"
                                ),
                            ))
                        }
                    }
                }
                "stickiness.enabled" => sticky.0 = parse_bool(k, v)?,
                "stickiness.type" if v != "lb_cookie" => {
                    return Err(invalid(
                        TG_TYPE,
                        format!("{k}: Spindle implements lb_cookie, not `{v}`"),
                    ));
                }
                "stickiness.lb_cookie.duration_seconds" => sticky.1 = secs()?,
                "spindle.target.timeout_seconds" => {
                    cfg.target_timeout = secs()?.max(Duration::from_millis(1))
                }
                "spindle.tenant.header" => tenant_key = Some(TenantKey::Header(v.clone())),
                "spindle.tenant.source" => source = Some(v.clone()),
                "spindle.tenant.concurrency.initial" => {
                    iso.initial_limit = parse_num(TG_TYPE, k, v)?
                }
                "spindle.tenant.concurrency.min" => iso.min_limit = parse_num(TG_TYPE, k, v)?,
                "spindle.tenant.concurrency.max" => iso.max_limit = parse_num(TG_TYPE, k, v)?,
                "spindle.tenant.concurrency.adaptive" => iso.adaptive = parse_bool(k, v)?,
                "spindle.tenant.max_in_flight" => {
                    iso.max_in_flight_per_tenant = Some(parse_num(TG_TYPE, k, v)?)
                }
                "spindle.tenant.queue.max" => iso.max_queue_per_tenant = parse_num(TG_TYPE, k, v)?,
                "spindle.tenant.queue.timeout_ms" => {
                    iso.queue_timeout = Duration::from_millis(parse_num(TG_TYPE, k, v)?)
                }
                "spindle.tenant.rate.per_second" => rate.0 = Some(parse_num(TG_TYPE, k, v)?),
                "spindle.tenant.rate.burst" => rate.1 = Some(parse_num(TG_TYPE, k, v)?),
                other if other.starts_with("spindle.tenant.weight.") => {
                    let tenant = &other["spindle.tenant.weight.".len()..];
                    let weight: u32 = parse_num(TG_TYPE, k, v)?;
                    if tenant.is_empty() || weight == 0 {
                        return Err(invalid(
                            TG_TYPE,
                            format!("{k}: needs a tenant name and a weight of at least 1"),
                        ));
                    }
                    iso.weights.insert(tenant.to_ascii_lowercase(), weight);
                }
                other if other.starts_with("spindle.") => {
                    return Err(invalid(
                        TG_TYPE,
                        format!("TargetGroupAttributes: unknown Spindle attribute `{other}`"),
                    ))
                }
                _ => {}
            }
        }
        if sticky.0 {
            cfg.stickiness = Some(Stickiness { duration: sticky.1 });
        }
        let key = match (source.as_deref(), tenant_key) {
            (None, k) => k,
            (Some("header"), Some(k)) => Some(k),
            (Some("header"), None) => {
                return Err(invalid(
                    TG_TYPE,
                    "spindle.tenant.source is header but spindle.tenant.header is not set",
                ))
            }
            (Some("host"), _) => Some(TenantKey::HostSubdomain),
            (Some("path"), _) => Some(TenantKey::PathPrefix),
            (Some(other), _) => {
                return Err(invalid(
                    TG_TYPE,
                    format!("spindle.tenant.source `{other}` is not header, host or path"),
                ))
            }
        };
        iso.token_bucket = match rate {
            (None, None) => None,
            (Some(r), b) => Some(TokenBucketConfig {
                rate_per_sec: r,
                burst: b.unwrap_or_else(|| (r.ceil() as u32).max(1)),
            }),
            (None, Some(_)) => {
                return Err(invalid(
                    TG_TYPE,
                    "spindle.tenant.rate.burst needs spindle.tenant.rate.per_second",
                ))
            }
        };
        if let Some(k) = key {
            cfg.isolation = Some(IsolationConfig {
                tenant_key: k,
                scheduler: iso,
            });
        } else if attrs.iter().any(|(k, _)| k.starts_with("spindle.tenant.")) {
            return Err(invalid(
                TG_TYPE,
                "spindle.tenant.* settings need spindle.tenant.header or spindle.tenant.source",
            ));
        }
        Ok((cfg, resolved))
    }

    fn instance_ip(&self, id: &str, vpc: Option<&str>) -> Result<IpAddr, ProviderError> {
        let Some(rt) = &self.runtime else {
            return Err(invalid(
                TG_TYPE,
                format!(
                    "target {id}: instance targets need the instance runtime (use TargetType: ip)"
                ),
            ));
        };
        let inst = rt
            .describe(id)
            .map_err(|_| ProviderError::NotFound(format!("target instance {id}")))?;
        if let Some(v) = vpc {
            if inst.vpc_id != v {
                return Err(invalid(
                    TG_TYPE,
                    format!(
                        "target {id} is in {} but the target group is in {v}",
                        inst.vpc_id
                    ),
                ));
            }
        }
        Ok(IpAddr::V4(inst.private_ip))
    }

    // ------------------------------------------------------------------ queries for the API

    fn find(&self, account: &str, name: &str) -> Option<View> {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.values()
            .find(|v| v.rec.account == account && (v.rec.name == name || v.arn == name))
            .cloned()
    }

    /// The ARN of every record (load balancers, listeners, rules, target groups), running or
    /// not. Not for async callers (it blocks on the state lock).
    pub fn record_arns(&self) -> Vec<String> {
        self.state.blocking_lock().recs.keys().cloned().collect()
    }

    /// Every load balancer of `account`, by name.
    pub fn list(&self, account: &str) -> Vec<LoadBalancerInfo> {
        let mut views: Vec<View> = {
            let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
            view.values()
                .filter(|v| v.rec.account == account)
                .cloned()
                .collect()
        };
        views.sort_by(|a, b| a.rec.name.cmp(&b.rec.name));
        views.iter().map(info).collect()
    }

    /// One load balancer by name or ARN.
    pub fn describe(&self, account: &str, name: &str) -> Option<LoadBalancerInfo> {
        self.find(account, name).map(|v| info(&v))
    }

    /// Registered targets of one load balancer's target groups with their health.
    pub fn target_health(&self, account: &str, name: &str) -> Option<Vec<TargetHealthInfo>> {
        let v = self.find(account, name)?;
        let health = v.lb.target_health();
        let mut out = Vec::new();
        for h in health {
            let registered = v
                .compiled
                .targets
                .get(&h.target_group)
                .and_then(|ts| ts.iter().find(|t| t.2 == h.target));
            let (id, port) = match registered {
                Some((id, port, _)) => (id.clone(), *port),
                None => (h.target.ip().to_string(), h.target.port()),
            };
            out.push(TargetHealthInfo {
                target_group: h.target_group,
                id,
                port,
                address: h.target.to_string(),
                state: match h.state {
                    HealthState::Initial => "initial",
                    HealthState::Healthy => "healthy",
                    HealthState::Unhealthy => "unhealthy",
                    HealthState::Draining => "draining",
                }
                .into(),
                in_flight: h.in_flight,
            });
        }
        Some(out)
    }

    /// The 1-second metrics of one load balancer, per target and per tenant.
    pub fn metrics(&self, account: &str, name: &str) -> Option<Vec<LbMetricSeries>> {
        let v = self.find(account, name)?;
        let mut loads = HashMap::new();
        for g in v.compiled.targets.keys() {
            for (addr, l) in v.lb.target_loads(g).unwrap_or_default() {
                let a = LbAdmission {
                    limit: l.limit,
                    in_flight: l.in_flight,
                    queued: l.queued as u64,
                };
                loads.insert((g.clone(), addr.to_string()), a);
            }
        }
        Some(
            v.lb.metrics()
                .into_iter()
                .map(|s| series(s, &loads))
                .collect(),
        )
    }

    /// Prometheus text of every running load balancer.
    pub fn prometheus(&self) -> String {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.values().map(|v| v.lb.prometheus()).collect()
    }
}

/// Where an instance is registered: one target group of one running load balancer.
#[derive(Clone)]
pub struct Registration {
    lb: Arc<LoadBalancer>,
    group: String,
    addr: SocketAddr,
    /// The group's deregistration delay.
    pub delay: Duration,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("group", &self.group)
            .field("addr", &self.addr)
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// The target's state in its group now (`None` once it is gone: drained or removed).
    pub fn state(&self) -> Option<(HealthState, u32)> {
        self.lb
            .target_health()
            .into_iter()
            .find(|h| h.target_group == self.group && h.target == self.addr)
            .map(|h| (h.state, h.in_flight))
    }

    /// After a deregistration, a watch on the end of the target's draining; `None` when it
    /// is not draining (already drained, or still registered).
    pub fn drain_watch(&self) -> Option<spindle_lb::DrainWatch> {
        self.lb.drain_watch(&self.group, self.addr)
    }
}

/// What auto scaling does through the load balancers (see `elb_autoscaling`).
impl Elb {
    /// Adds an instance to each target group (on the group's port) and applies every load
    /// balancer using them. The instance must exist (and be in the group's VPC); a missing
    /// target group is an error and changes nothing.
    pub async fn register_instance(
        &self,
        tg_arns: &[String],
        instance_id: &str,
    ) -> Result<(), ProviderError> {
        self.transact(|recs| {
            for a in tg_arns {
                let r = recs
                    .get_mut(a)
                    .filter(|_| a.contains(":targetgroup/"))
                    .ok_or_else(|| ProviderError::NotFound(format!("target group {a}")))?;
                let vpc = TG_SHAPE
                    .opt_str(&r.props(), "VpcId")
                    .map_err(ProviderError::from)?;
                self.instance_ip(instance_id, vpc.as_deref())?;
                r.dynamic.insert(instance_id.to_string());
            }
            Ok(())
        })
        .await
    }

    /// Removes an instance from each target group (a group already gone is skipped) and
    /// applies; the returned registrations are now draining (see [`Registration::state`]).
    pub async fn deregister_instance(
        &self,
        tg_arns: &[String],
        instance_id: &str,
    ) -> Result<Vec<Registration>, ProviderError> {
        let before = self.registrations(tg_arns, instance_id);
        self.transact(|recs| {
            for a in tg_arns {
                if let Some(r) = recs.get_mut(a) {
                    r.dynamic.remove(instance_id);
                }
            }
            Ok(())
        })
        .await?;
        Ok(before)
    }

    /// Whether a running load balancer uses any of these target groups.
    pub fn in_use(&self, tg_arns: &[String]) -> bool {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.values()
            .any(|v| v.compiled.group_arns.values().any(|a| tg_arns.contains(a)))
    }

    /// Where an instance is registered now among these target groups.
    pub fn registrations(&self, tg_arns: &[String], instance_id: &str) -> Vec<Registration> {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for v in view.values() {
            for (name, arn) in &v.compiled.group_arns {
                if !tg_arns.contains(arn) {
                    continue;
                }
                let Some((_, _, addr)) = v
                    .compiled
                    .targets
                    .get(name)
                    .and_then(|ts| ts.iter().find(|t| t.0 == instance_id))
                else {
                    continue;
                };
                let delay = v
                    .compiled
                    .config
                    .target_groups
                    .iter()
                    .find(|g| &g.name == name)
                    .map_or(Duration::ZERO, |g| g.deregistration_delay);
                out.push(Registration {
                    lb: v.lb.clone(),
                    group: name.clone(),
                    addr: *addr,
                    delay,
                });
            }
        }
        out
    }

    /// One completed second of these target groups' traffic, summed over every load
    /// balancer using them; `None` when no running load balancer uses them.
    pub fn group_second(
        &self,
        tg_arns: &[String],
        unix_second: u64,
    ) -> Option<spindle_lb::metrics::SecondSnapshot> {
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Option<spindle_lb::metrics::SecondSnapshot> = None;
        for v in view.values() {
            for (name, arn) in &v.compiled.group_arns {
                if !tg_arns.contains(arn) {
                    continue;
                }
                let Some(s) = v.lb.group_second(name, unix_second) else {
                    continue;
                };
                out = Some(match out {
                    None => s,
                    // Several load balancers on one group: counts add up; the slowest
                    // one's percentiles stand for the group.
                    Some(mut o) => {
                        o.counts.requests += s.counts.requests;
                        o.counts.errors_5xx += s.counts.errors_5xx;
                        o.p50 = o.p50.max(s.p50);
                        o.p95 = o.p95.max(s.p95);
                        o.p99 = o.p99.max(s.p99);
                        o
                    }
                });
            }
        }
        out
    }
}

fn counts(c: &spindle_lb::metrics::Counts) -> LbCounts {
    LbCounts {
        requests: c.requests,
        errors_4xx: c.errors_4xx,
        errors_5xx: c.errors_5xx,
        timeouts: c.timeouts,
        connect_errors: c.connect_errors,
        bad_responses: c.bad_responses,
        refused: c.refused,
        queued: c.queued,
        max_in_flight: c.max_in_flight,
    }
}

/// A metrics series with, for a target of an isolated group, its admission from `loads`.
fn series(
    s: spindle_lb::metrics::SeriesSnapshot,
    loads: &HashMap<(String, String), LbAdmission>,
) -> LbMetricSeries {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let admission = match (s.labels.get("target_group"), s.labels.get("target")) {
        (Some(g), Some(t)) => loads.get(&(g.clone(), t.clone())).copied(),
        _ => None,
    };
    LbMetricSeries {
        admission,
        labels: s.labels,
        in_flight: s.in_flight,
        seconds: s
            .seconds
            .iter()
            .map(|x| LbSecond {
                unix_second: x.unix_second,
                counts: counts(&x.counts),
                p50_ms: ms(x.p50),
                p95_ms: ms(x.p95),
                p99_ms: ms(x.p99),
            })
            .collect(),
        totals: counts(&s.totals),
    }
}

fn info(v: &View) -> LoadBalancerInfo {
    let lb = &v.lb;
    LoadBalancerInfo {
        name: v.rec.name.clone(),
        arn: v.arn.clone(),
        dns_name: dns_name(&v.rec.name, &v.arn, &v.rec.region),
        address: v
            .rec
            .address
            .map(|a| a.to_string())
            .unwrap_or_else(|| "127.0.0.1".into()),
        vpc_id: v.vpc_id.clone(),
        stack: v.rec.stack.clone(),
        logical_id: v.rec.logical_id.clone(),
        listeners: v
            .compiled
            .listeners
            .iter()
            .map(|(arn, protocol, port, rules)| ListenerInfo {
                arn: arn.clone(),
                protocol: protocol.clone(),
                port: *port,
                address: lb
                    .listener_addr(arn)
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                rules: *rules,
            })
            .collect(),
        target_groups: v
            .compiled
            .config
            .target_groups
            .iter()
            .map(|tg| TargetGroupInfo {
                name: tg.name.clone(),
                arn: v
                    .compiled
                    .group_arns
                    .get(&tg.name)
                    .cloned()
                    .unwrap_or_default(),
                port: tg.targets.first().map(|a| a.port()).unwrap_or(0),
                algorithm: match tg.algorithm {
                    Algorithm::RoundRobin => "round_robin",
                    Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
                }
                .into(),
                tenant_key: tg.isolation.as_ref().map(|i| match &i.tenant_key {
                    TenantKey::Header(h) => format!("header:{h}"),
                    TenantKey::HostSubdomain => "host".into(),
                    TenantKey::PathPrefix => "path".into(),
                }),
                health_check: tg.health_check.enabled.then(|| {
                    let hc = &tg.health_check;
                    format!(
                        "GET {} on the traffic port, expecting {}, every {} s (timeout {} s; unhealthy after {} failures)",
                        hc.path,
                        hc.matcher,
                        hc.interval.as_secs_f64(),
                        hc.timeout.as_secs_f64(),
                        hc.unhealthy_threshold
                    )
                }),
            })
            .collect(),
    }
}

/// For each load balancer, every record its config is compiled from (to find which load
/// balancers a change touches).
fn lbs_touching(recs: &BTreeMap<String, Rec>) -> BTreeMap<String, Vec<(String, Rec)>> {
    let mut out: BTreeMap<String, Vec<(String, Rec)>> = BTreeMap::new();
    for (arn, r) in recs {
        if kind_of(arn) != LB_TYPE {
            continue;
        }
        let mut parts = vec![(arn.clone(), r.clone())];
        for (l_arn, l) in recs
            .iter()
            .filter(|(a, l)| kind_of(a) == LISTENER_TYPE && l.parent.as_deref() == Some(arn))
        {
            parts.push((l_arn.clone(), l.clone()));
            for (r_arn, rr) in recs
                .iter()
                .filter(|(a, x)| kind_of(a) == RULE_TYPE && x.parent.as_deref() == Some(l_arn))
            {
                parts.push((r_arn.clone(), rr.clone()));
            }
        }
        // Target groups named anywhere in those records.
        let text: String = parts.iter().map(|(_, p)| p.props.to_string()).collect();
        for (tg_arn, tg) in recs.iter().filter(|(a, _)| kind_of(a) == TG_TYPE) {
            if text.contains(tg_arn.as_str()) {
                parts.push((tg_arn.clone(), tg.clone()));
            }
        }
        out.insert(arn.clone(), parts);
    }
    out
}

fn port_of(s: &Shape, p: &Props, key: &str) -> Result<u16, ProviderError> {
    let n = s
        .opt_int(p, key)
        .map_err(ProviderError::from)?
        .ok_or_else(|| invalid(s.type_name, format!("{key} is required")))?;
    u16::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(s.type_name, format!("{key} {n} is not a port (1-65535)")))
}

fn parse_num<T: std::str::FromStr>(
    type_name: &'static str,
    k: &str,
    v: &str,
) -> Result<T, ProviderError> {
    v.trim().parse().map_err(|_| {
        invalid(
            type_name,
            format!("attribute {k}: `{v}` is not a valid number"),
        )
    })
}

fn parse_bool(k: &str, v: &str) -> Result<bool, ProviderError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(
            TG_TYPE,
            format!("attribute {k}: `{v}` is not true or false"),
        )),
    }
}

/// `[{Key, Value}]` attribute lists.
fn attributes(s: &Shape, p: &Props, key: &str) -> Result<Vec<(String, String)>, ProviderError> {
    let mut out = Vec::new();
    for a in s
        .map_list(p, key)
        .map_err(ProviderError::from)?
        .unwrap_or_default()
    {
        let k = s.req_str(a, "Key").map_err(ProviderError::from)?;
        let v = s
            .opt_str(a, "Value")
            .map_err(ProviderError::from)?
            .unwrap_or_default();
        out.push((k, v));
    }
    Ok(out)
}

fn health_check(p: &Props) -> Result<HealthCheckConfig, ProviderError> {
    let s = &TG_SHAPE;
    let e = ProviderError::from;
    let mut hc = HealthCheckConfig::default();
    if let Some(v) = s.opt_str(p, "HealthCheckEnabled").map_err(e)? {
        hc.enabled = parse_bool("HealthCheckEnabled", &v)?;
    }
    let secs = |k: &str| -> Result<Option<u64>, ProviderError> {
        s.opt_int(p, k)
            .map_err(ProviderError::from)?
            .map(|n| {
                u64::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid(TG_TYPE, format!("{k} must be at least 1, got {n}")))
            })
            .transpose()
    };
    if let Some(n) = secs("HealthCheckIntervalSeconds")? {
        hc.interval = Duration::from_secs(n);
    }
    if let Some(n) = secs("HealthCheckTimeoutSeconds")? {
        hc.timeout = Duration::from_secs(n);
    }
    if let Some(n) = secs("HealthyThresholdCount")? {
        hc.healthy_threshold = n as u32;
    }
    if let Some(n) = secs("UnhealthyThresholdCount")? {
        hc.unhealthy_threshold = n as u32;
    }
    if hc.enabled && hc.timeout >= hc.interval {
        return Err(invalid(
            TG_TYPE,
            format!(
                "HealthCheckTimeoutSeconds ({}) must be less than HealthCheckIntervalSeconds ({})",
                hc.timeout.as_secs(),
                hc.interval.as_secs()
            ),
        ));
    }
    if let Some(path) = s.opt_str(p, "HealthCheckPath").map_err(e)? {
        hc.path = path;
    }
    match s.opt_str(p, "HealthCheckPort").map_err(e)?.as_deref() {
        None | Some("traffic-port") => {}
        Some(other) if s.opt_str(p, "Port").ok().flatten().as_deref() == Some(other) => {}
        Some(other) => {
            return Err(invalid(
                TG_TYPE,
                format!("HealthCheckPort `{other}`: Spindle checks the traffic port only"),
            ))
        }
    }
    match s.opt_str(p, "HealthCheckProtocol").map_err(e)?.as_deref() {
        None | Some("HTTP") => {}
        Some(other) => {
            return Err(invalid(
                TG_TYPE,
                format!("HealthCheckProtocol `{other}`: Spindle checks over HTTP"),
            ))
        }
    }
    match s.opt_str(p, "Protocol").map_err(e)?.as_deref() {
        None | Some("HTTP") => {}
        Some(other) => {
            return Err(invalid(
                TG_TYPE,
                format!("Protocol `{other}`: Spindle forwards to targets over HTTP"),
            ))
        }
    }
    if let Some(Value::Map(m)) = p.get("Matcher") {
        if let Some(code) = s.opt_str(m, "HttpCode").map_err(e)? {
            hc.matcher = code;
        }
        if m.contains_key("GrpcCode") {
            return Err(invalid(
                TG_TYPE,
                "Matcher.GrpcCode: gRPC is not implemented",
            ));
        }
    }
    spindle_lb::Matcher::parse(&hc.matcher)
        .map_err(|r| invalid(TG_TYPE, format!("Matcher.HttpCode: {r}")))?;
    Ok(hc)
}

/// A target group ARN named by an action must exist in the same account.
fn group_name(
    recs: &BTreeMap<String, Rec>,
    type_name: &'static str,
    account: &str,
    arn: &str,
    groups: &mut BTreeSet<String>,
) -> Result<String, ProviderError> {
    match recs.get(arn) {
        Some(r) if kind_of(arn) == TG_TYPE && r.account == account => {
            groups.insert(arn.to_string());
            Ok(r.name.clone())
        }
        _ => Err(invalid(type_name, format!("target group {arn} not found"))),
    }
}

/// A listener's `DefaultActions` or a rule's `Actions`: exactly one action.
fn action_of(
    recs: &BTreeMap<String, Rec>,
    type_name: &'static str,
    account: &str,
    p: &Props,
    key: &str,
    groups: &mut BTreeSet<String>,
) -> Result<Action, ProviderError> {
    let s = Shape {
        type_name,
        used: &[],
        ignored: &[],
        hints: &[],
    };
    let e = ProviderError::from;
    let actions = s.map_list(p, key).map_err(e)?.unwrap_or_default();
    let [a] = actions.as_slice() else {
        return Err(invalid(
            type_name,
            format!(
                "{key} must hold exactly one action (Spindle does not chain actions), got {}",
                actions.len()
            ),
        ));
    };
    let map = |k: &str| match a.get(k) {
        Some(Value::Map(m)) => Some(m),
        _ => None,
    };
    match s.req_str(a, "Type").map_err(e)?.as_str() {
        "forward" => {
            let mut arns = Vec::new();
            if let Some(arn) = s.opt_str(a, "TargetGroupArn").map_err(e)? {
                arns.push(arn);
            }
            if let Some(fc) = map("ForwardConfig") {
                for t in s
                    .map_list(fc, "TargetGroups")
                    .map_err(e)?
                    .unwrap_or_default()
                {
                    let arn = s.req_str(t, "TargetGroupArn").map_err(e)?;
                    if !arns.contains(&arn) {
                        arns.push(arn);
                    }
                }
            }
            let [arn] = arns.as_slice() else {
                return Err(invalid(
                    type_name,
                    "a forward action needs exactly one target group (weighted groups are not implemented)",
                ));
            };
            Ok(Action::Forward {
                target_group: group_name(recs, type_name, account, arn, groups)?,
            })
        }
        "fixed-response" => {
            let fc = map("FixedResponseConfig")
                .ok_or_else(|| invalid(type_name, "fixed-response needs FixedResponseConfig"))?;
            let status = s.req_str(fc, "StatusCode").map_err(e)?;
            Ok(Action::FixedResponse {
                status: status.parse().map_err(|_| {
                    invalid(
                        type_name,
                        format!("StatusCode `{status}` is not a status code"),
                    )
                })?,
                content_type: s
                    .opt_str(fc, "ContentType")
                    .map_err(e)?
                    .unwrap_or_else(|| "text/plain".into()),
                body: s.opt_str(fc, "MessageBody").map_err(e)?.unwrap_or_default(),
            })
        }
        "redirect" => {
            let rc = map("RedirectConfig")
                .ok_or_else(|| invalid(type_name, "redirect needs RedirectConfig"))?;
            let code = s.req_str(rc, "StatusCode").map_err(e)?;
            let status = match code.as_str() {
                "HTTP_301" => 301,
                "HTTP_302" => 302,
                _ => {
                    return Err(invalid(
                        type_name,
                        format!("RedirectConfig.StatusCode `{code}` is not HTTP_301 or HTTP_302"),
                    ))
                }
            };
            let o = |k: &str| s.opt_str(rc, k).map_err(ProviderError::from);
            Ok(Action::Redirect {
                protocol: o("Protocol")?,
                host: o("Host")?,
                port: o("Port")?,
                path: o("Path")?,
                query: o("Query")?,
                status,
            })
        }
        other => Err(invalid(
            type_name,
            format!(
                "action type `{other}`: Spindle implements forward, fixed-response and redirect"
            ),
        )),
    }
}

fn rule_of(
    recs: &BTreeMap<String, Rec>,
    account: &str,
    p: &Props,
    groups: &mut BTreeSet<String>,
) -> Result<RuleConfig, ProviderError> {
    let s = &RULE_SHAPE;
    let e = ProviderError::from;
    let prio = s
        .opt_int(p, "Priority")
        .map_err(e)?
        .ok_or_else(|| invalid(RULE_TYPE, "Priority is required"))?;
    let priority = u32::try_from(prio)
        .ok()
        .filter(|n| (1..=50000).contains(n))
        .ok_or_else(|| invalid(RULE_TYPE, format!("Priority {prio} is not in 1-50000")))?;
    let mut conditions = Vec::new();
    for c in s.map_list(p, "Conditions").map_err(e)?.unwrap_or_default() {
        let field = s.req_str(c, "Field").map_err(e)?;
        let nested = |k: &str| match c.get(k) {
            Some(Value::Map(m)) => s.str_list(m, "Values").map_err(ProviderError::from),
            _ => Ok(Vec::new()),
        };
        let mut values = s.str_list(c, "Values").map_err(e)?;
        match field.as_str() {
            "host-header" => {
                values.extend(nested("HostHeaderConfig")?);
                conditions.push(Condition::HostHeader(values));
            }
            "path-pattern" => {
                values.extend(nested("PathPatternConfig")?);
                conditions.push(Condition::PathPattern(values));
            }
            other => {
                return Err(invalid(
                    RULE_TYPE,
                    format!(
                    "condition field `{other}`: Spindle implements host-header and path-pattern"
                ),
                ))
            }
        }
    }
    if conditions.iter().any(|c| match c {
        Condition::HostHeader(v) | Condition::PathPattern(v) => v.is_empty(),
    }) {
        return Err(invalid(
            RULE_TYPE,
            "every condition needs at least one value",
        ));
    }
    Ok(RuleConfig {
        priority,
        conditions,
        action: action_of(recs, RULE_TYPE, account, p, "Actions", groups)?,
    })
}

// ---------------------------------------------------------------------- names and ARNs

fn digest(kind: &str, cx: &ResourceCx<'_>) -> [u8; 32] {
    Sha256::digest(format!("elbv2/{kind}/{}", scoped_token(cx)).as_bytes()).into()
}

fn hex16(d: &[u8; 32]) -> String {
    hex::encode(&d[..8])
}

/// A valid ELB name: 1–32 alphanumerics and hyphens, not starting or ending with a hyphen.
fn check_name(type_name: &'static str, name: &str) -> Result<(), ProviderError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with("internal-");
    if ok {
        Ok(())
    } else {
        Err(invalid(
            type_name,
            format!("Name `{name}` must be 1-32 letters, digits and hyphens, not starting or ending with a hyphen"),
        ))
    }
}

/// The given `Name`, or one made like CloudFormation does: part of the logical id and a hash.
fn name_for(
    type_name: &'static str,
    p: &Props,
    cx: &ResourceCx<'_>,
) -> Result<String, ProviderError> {
    let given = Shape {
        type_name,
        used: &[],
        ignored: &[],
        hints: &[],
    }
    .opt_str(p, "Name")
    .map_err(ProviderError::from)?;
    let name = match given {
        Some(n) => n,
        None => {
            let logical: String = cx
                .logical_id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(18)
                .collect();
            let h = hex16(&digest("name", cx));
            format!("{logical}-{}", &h[..12])
        }
    };
    check_name(type_name, &name)?;
    Ok(name)
}

fn arn_prefix(cx: &ResourceCx<'_>) -> String {
    format!(
        "arn:aws:elasticloadbalancing:{}:{}:",
        cx.context.region, cx.context.account_id
    )
}

/// `name-1234567890.REGION.elb.spindle.internal`.
fn dns_name(name: &str, arn: &str, region: &str) -> String {
    let d = Sha256::digest(arn.as_bytes());
    let n = u64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8])) % 10_000_000_000;
    format!(
        "{}-{n:010}.{region}.elb.spindle.internal",
        name.to_ascii_lowercase()
    )
}

/// A loopback address of the load balancer's own: `127.a.b.c`, never `127.0.x.x`.
fn derived_address(arn: &str) -> IpAddr {
    let d = Sha256::digest(arn.as_bytes());
    IpAddr::V4(Ipv4Addr::new(127, 1 + d[0] % 254, d[1], 1 + d[2] % 254))
}

// ---------------------------------------------------------------------- the connector

/// Opens upstream connections inside a VPC's router namespace, through the runtime.
struct VpcConnector {
    runtime: Runtime,
    vpc_id: String,
}

impl UpstreamConnector for VpcConnector {
    fn connect(&self, addr: SocketAddr) -> LbFuture<'_, io::Result<tokio::net::TcpStream>> {
        let rt = self.runtime.clone();
        let vpc = self.vpc_id.clone();
        Box::pin(async move {
            // The runtime's connect blocks (a thread joins the namespace); the load balancer
            // applies its own, usually shorter, connect timeout around this future.
            let std = tokio::task::spawn_blocking(move || {
                rt.connect_from_vpc(&vpc, &addr.to_string(), Duration::from_secs(10))
            })
            .await
            .map_err(|e| io::Error::other(format!("connect task failed: {e}")))?
            .map_err(|e| {
                let msg = crate::error::full_message(&e);
                io::Error::new(io::ErrorKind::ConnectionRefused, msg)
            })?;
            std.set_nonblocking(true)?;
            let s = tokio::net::TcpStream::from_std(std)?;
            let _ = s.set_nodelay(true);
            Ok(s)
        })
    }
}

// ---------------------------------------------------------------------- the providers

struct ElbProvider {
    elb: Arc<Elb>,
    type_name: &'static str,
}

impl ElbProvider {
    fn shape(&self) -> &'static Shape {
        match self.type_name {
            LB_TYPE => &LB_SHAPE,
            LISTENER_TYPE => &LISTENER_SHAPE,
            RULE_TYPE => &RULE_SHAPE,
            _ => &TG_SHAPE,
        }
    }

    /// The ARN and record a create with these properties makes (deterministic per token).
    fn plan(
        &self,
        cx: &ResourceCx<'_>,
        p: &Props,
        recs: &BTreeMap<String, Rec>,
    ) -> Result<(String, Rec), ProviderError> {
        let s = self.shape();
        s.check(p).map_err(ProviderError::from)?;
        let d = hex16(&digest(self.type_name, cx));
        let mut rec = Rec {
            account: cx.context.account_id.clone(),
            region: cx.context.region.clone(),
            stack: cx.stack_name.to_string(),
            logical_id: cx.logical_id.to_string(),
            name: String::new(),
            parent: None,
            address: None,
            props: Value::Map(p.clone()).to_json(),
            dynamic: BTreeSet::new(),
        };
        let arn = match self.type_name {
            LB_TYPE => {
                if let Some(t) = s.opt_str(p, "Type").map_err(ProviderError::from)? {
                    if t != "application" {
                        return Err(invalid(
                            LB_TYPE,
                            format!("Type `{t}`: Spindle implements application load balancers"),
                        ));
                    }
                }
                rec.name = name_for(LB_TYPE, p, cx)?;
                let arn = format!("{}loadbalancer/app/{}/{d}", arn_prefix(cx), rec.name);
                rec.address = Some(derived_address(&arn));
                arn
            }
            TG_TYPE => {
                rec.name = name_for(TG_TYPE, p, cx)?;
                format!("{}targetgroup/{}/{d}", arn_prefix(cx), rec.name)
            }
            LISTENER_TYPE => {
                let lb = s
                    .req_str(p, "LoadBalancerArn")
                    .map_err(ProviderError::from)?;
                let tail = lb
                    .split_once(":loadbalancer/")
                    .map(|x| x.1)
                    .filter(|_| recs.get(&lb).is_some_and(|r| r.account == rec.account))
                    .ok_or_else(|| {
                        invalid(LISTENER_TYPE, format!("load balancer {lb} not found"))
                    })?;
                rec.parent = Some(lb.clone());
                format!("{}listener/{tail}/{d}", arn_prefix(cx))
            }
            _ => {
                let l = s.req_str(p, "ListenerArn").map_err(ProviderError::from)?;
                let tail = l
                    .split_once(":listener/")
                    .map(|x| x.1)
                    .filter(|_| recs.get(&l).is_some_and(|r| r.account == rec.account))
                    .ok_or_else(|| invalid(RULE_TYPE, format!("listener {l} not found")))?;
                rec.parent = Some(l.clone());
                format!("{}listener-rule/{tail}/{d}", arn_prefix(cx))
            }
        };
        Ok((arn, rec))
    }

    fn attributes(
        &self,
        arn: &str,
        rec: &Rec,
        recs: &BTreeMap<String, Rec>,
    ) -> BTreeMap<String, Value> {
        let mut a = BTreeMap::new();
        match self.type_name {
            LB_TYPE => {
                a.insert("LoadBalancerArn".into(), Value::str(arn));
                a.insert(
                    "DNSName".into(),
                    Value::str(dns_name(&rec.name, arn, &rec.region)),
                );
                a.insert("LoadBalancerName".into(), Value::str(&rec.name));
                a.insert(
                    "LoadBalancerFullName".into(),
                    Value::str(
                        arn.split_once(":loadbalancer/")
                            .map(|x| x.1)
                            .unwrap_or_default(),
                    ),
                );
                a.insert("CanonicalHostedZoneID".into(), Value::str(HOSTED_ZONE_ID));
                let sgs = LB_SHAPE
                    .str_list(&rec.props(), "SecurityGroups")
                    .unwrap_or_default();
                a.insert(
                    "SecurityGroups".into(),
                    Value::List(sgs.into_iter().map(Value::String).collect()),
                );
            }
            LISTENER_TYPE => {
                a.insert("ListenerArn".into(), Value::str(arn));
            }
            RULE_TYPE => {
                a.insert("RuleArn".into(), Value::str(arn));
                a.insert("IsDefault".into(), Value::Bool(false));
            }
            _ => {
                a.insert("TargetGroupArn".into(), Value::str(arn));
                a.insert("TargetGroupName".into(), Value::str(&rec.name));
                a.insert(
                    "TargetGroupFullName".into(),
                    Value::str(arn.rsplit_once(':').map(|x| x.1).unwrap_or_default()),
                );
                let lbs: Vec<Value> = lbs_touching(recs)
                    .into_iter()
                    .filter(|(_, parts)| parts.iter().any(|(a, _)| a == arn))
                    .map(|(lb, _)| Value::String(lb))
                    .collect();
                a.insert("LoadBalancerArns".into(), Value::List(lbs));
            }
        }
        a
    }
}

impl Provider for ElbProvider {
    fn validate(
        &self,
        view: &spindle_template::ResourceView<'_>,
    ) -> Vec<spindle_template::Diagnostic> {
        crate::rules::check(view)
    }

    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let recs = self.elb.state.lock().await.recs.clone();
            let (arn, rec) = self.plan(&req.cx, &req.properties, &recs)?;
            // Targets auto scaling registered are not part of the definition.
            let existing = recs.get(&arn).map(|r| Rec {
                dynamic: BTreeSet::new(),
                ..r.clone()
            });
            if existing.as_ref() != Some(&rec) {
                if recs.contains_key(&arn) {
                    return Err(ProviderError::AlreadyExists(arn));
                }
                if matches!(self.type_name, LB_TYPE | TG_TYPE)
                    && recs.iter().any(|(a, r)| {
                        kind_of(a) == self.type_name
                            && r.account == rec.account
                            && r.name == rec.name
                    })
                {
                    return Err(ProviderError::AlreadyExists(format!(
                        "{} named {}",
                        self.type_name, rec.name
                    )));
                }
                let (a, r) = (arn.clone(), rec.clone());
                self.elb
                    .transact(move |recs| {
                        recs.insert(a, r);
                        Ok(())
                    })
                    .await?;
            }
            let recs = self.elb.state.lock().await.recs.clone();
            Ok(ProviderOutput {
                attributes: self.attributes(&arn, &rec, &recs),
                physical_id: arn,
            })
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let arn = req.physical_id.clone();
            self.shape()
                .check(&req.properties)
                .map_err(ProviderError::from)?;
            let props = Value::Map(req.properties.clone()).to_json();
            let a = arn.clone();
            let type_name = self.type_name;
            self.elb
                .transact(move |recs| {
                    let r = recs
                        .get_mut(&a)
                        .ok_or_else(|| ProviderError::NotFound(format!("{type_name} {a}")))?;
                    r.props = props;
                    Ok(())
                })
                .await?;
            let recs = self.elb.state.lock().await.recs.clone();
            let rec = recs[&arn].clone();
            Ok(ProviderOutput {
                attributes: self.attributes(&arn, &rec, &recs),
                physical_id: arn,
            })
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let arn = req.physical_id.clone();
            let type_name = self.type_name;
            self.elb
                .transact(move |recs| {
                    if !recs.contains_key(&arn) {
                        return Ok(());
                    }
                    let used_by = recs.iter().find(|(a, r)| {
                        *a != &arn
                            && (r.parent.as_deref() == Some(arn.as_str())
                                || r.props.to_string().contains(arn.as_str()))
                    });
                    if let Some((other, _)) = used_by {
                        return Err(ProviderError::Failed(format!(
                            "{type_name} {arn} is in use by {other}"
                        )));
                    }
                    recs.remove(&arn);
                    Ok(())
                })
                .await
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let recs = self.elb.state.lock().await.recs.clone();
            let arn = match req.physical_id.clone() {
                Some(a) => a,
                None => match self.plan(&req.cx, &req.properties, &recs) {
                    Ok((a, _)) => a,
                    Err(_) => return Ok(None),
                },
            };
            let Some(rec) = recs.get(&arn) else {
                return Ok(None);
            };
            Ok(Some(ReadOutput {
                physical_id: arn.clone(),
                properties: rec.props(),
                attributes: self.attributes(&arn, rec, &recs),
            }))
        })
    }
}

#[cfg(test)]
mod attribute_list_tests {
    /// Every key in [`super::SPINDLE_TG_ATTRIBUTES`] has its arm in `target_group`'s match,
    /// and there is no arm for a key the list lacks.
    #[test]
    fn spindle_attribute_list_matches_the_parser() {
        let src = include_str!("elbv2.rs");
        let arms = src
            .lines()
            .filter(|l| l.trim_start().starts_with("\"spindle.") && l.contains("\" =>"))
            .count();
        for key in super::SPINDLE_TG_ATTRIBUTES {
            assert!(
                src.contains(&format!("\"{key}\" =>")),
                "{key} has no arm in target_group"
            );
        }
        assert_eq!(arms, super::SPINDLE_TG_ATTRIBUTES.len());
    }
}
