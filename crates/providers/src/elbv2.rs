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
use spindle_lb::{
    Action, ApplyError, BoxFuture as LbFuture, HealthState, LbConfig, LbOptions, ListenerConfig,
    ListenerProtocol, LoadBalancer, RuleConfig, TargetGroupConfig, TcpConnector, UpstreamConnector,
};
use spindle_model::AccountId;
use spindle_runtime::{FileDoc, Runtime, StateDoc};
use spindle_stack::ssm::ParamStore;
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

use crate::elbv2_spec::{shape, ActionSpec, CertSource, ListenerProto, Spec, TgSpec};
use crate::props::Props;
use crate::{scoped_token, Kind};

mod dns_alias;
mod queries;

/// The file name of the providers' state, in the runtime's data directory.
pub const ELBV2_STATE_FILE: &str = "elbv2-providers.json";

/// The hosted zone id `DNSName` lives in (the DNS issue serves it).
pub const HOSTED_ZONE_ID: &str = "ZSPINDLEELB0001";

/// How the daemon runs its load balancers.
#[derive(Debug, Clone, Default)]
pub struct ElbOptions {
    /// Bind every load balancer here instead of its own derived `127.a.b.c`.
    pub address: Option<IpAddr>,
    /// Client I/O threads per load balancer (see [`LbOptions::io_threads`]).
    pub io_threads: usize,
}

/// One resource's record: its kind, who made it, its properties as given (what `read`
/// reports) and, parsed from them once, their typed [`Spec`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Rec {
    /// Records written before kinds were stored have none; [`load_records`] reads it from
    /// the ARN's resource type once, when they are loaded.
    kind: Kind,
    account: AccountId,
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
    /// `props` parsed (at create and update, or when loaded); a loaded record whose
    /// properties no longer parse keeps the refusal, reported when it is compiled.
    #[serde(skip, default = "unparsed")]
    spec: Result<Spec, String>,
}

fn unparsed() -> Result<Spec, String> {
    Err("properties not parsed".into())
}

/// Stored properties as the provider reads them. Specs are parsed from this form (not from
/// the request's map), so a loaded record and a new one with the same JSON are equal.
fn props_of(json: &serde_json::Value) -> Props {
    match Value::from_json(json) {
        Value::Map(m) => m,
        _ => Props::new(),
    }
}

impl Rec {
    fn props(&self) -> Props {
        props_of(&self.props)
    }

    fn spec(&self) -> Result<&Spec, ProviderError> {
        self.spec
            .as_ref()
            .map_err(|m| ProviderError::InvalidRequest(m.clone()))
    }

    /// The target group's spec (an error for a record of another kind).
    fn target_group(&self) -> Result<&TgSpec, ProviderError> {
        match self.spec()? {
            Spec::TargetGroup(t) => Ok(t),
            _ => Err(ProviderError::Failed(format!(
                "{} is not a target group",
                self.name
            ))),
        }
    }

    /// Whether this record names `arn`: as its parent, or as a target group it forwards to.
    fn refers_to(&self, arn: &str) -> bool {
        if self.parent.as_deref() == Some(arn) {
            return true;
        }
        match &self.spec {
            Ok(spec) => spec.target_groups().contains(&arn),
            // A record whose properties no longer parse: what they say, as text.
            Err(_) => self.props.to_string().contains(arn),
        }
    }
}

/// The kind of a record written before kinds were stored, from its ARN's resource type
/// (`…:loadbalancer/…`, `…:listener-rule/…`, `…:listener/…`, else a target group). Only
/// [`load_records`] reads ARNs this way.
fn legacy_kind(arn: &str) -> Kind {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    match resource.split('/').next() {
        Some("loadbalancer") => Kind::LoadBalancer,
        Some("listener-rule") => Kind::ListenerRule,
        Some("listener") => Kind::Listener,
        _ => Kind::TargetGroup,
    }
}

/// Reads the state file's records (old ones without a kind too) and parses each one's
/// properties.
fn load_records(bytes: &[u8]) -> Result<BTreeMap<String, Rec>, serde_json::Error> {
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_slice(bytes)?;
    let mut out = BTreeMap::new();
    for (arn, mut v) in raw {
        if let Some(m) = v.as_object_mut() {
            if !m.contains_key("kind") {
                m.insert("kind".into(), serde_json::to_value(legacy_kind(&arn))?);
            }
        }
        let mut rec: Rec = serde_json::from_value(v)?;
        rec.spec = Spec::parse(rec.kind, &rec.props());
        out.insert(arn, rec);
    }
    Ok(out)
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
fn invalid(kind: Kind, msg: impl Into<String>) -> ProviderError {
    ProviderError::InvalidRequest(format!("{kind}: {}", msg.into()))
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
                Some(bytes) => {
                    load_records(&bytes).map_err(|e| spindle_runtime::DocError::new(d.name(), e))?
                }
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

    /// Registers every type in [`crate::ELBV2_TYPES`].
    pub fn register(self: &Arc<Self>, registry: &mut spindle_stack::ProviderRegistry) {
        for kind in crate::kind::kinds_of(crate::Group::Elbv2) {
            registry.register(
                kind.type_name(),
                Arc::new(ElbProvider {
                    elb: self.clone(),
                    kind,
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
            .filter(|(_, r)| r.kind == Kind::LoadBalancer)
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
        let Spec::LoadBalancer(spec) = rec.spec()? else {
            return Err(ProviderError::Failed(format!(
                "{} is not a load balancer",
                rec.name
            )));
        };
        let (Some(rt), false) = (&self.runtime, spec.subnets.is_empty()) else {
            return Ok(None);
        };
        let vpcs = rt.vpcs();
        let mut found: Option<String> = None;
        for s in &spec.subnets {
            let vpc = vpcs
                .iter()
                .find(|v| v.subnets.contains_key(s))
                .map(|v| v.id.clone())
                .ok_or_else(|| ProviderError::NotFound(format!("subnet {s}")))?;
            if found.as_ref().is_some_and(|f| *f != vpc) {
                return Err(invalid(
                    Kind::LoadBalancer,
                    format!("Subnets must all be in one VPC; {s} is in {vpc}"),
                ));
            }
            found = Some(vpc);
        }
        Ok(found)
    }

    /// The PEM bundle of an HTTPS listener.
    fn certificate(
        &self,
        account: &AccountId,
        source: &CertSource,
    ) -> Result<String, ProviderError> {
        match source {
            CertSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                invalid(
                    Kind::Listener,
                    format!("Certificates: cannot read `{path}`: {e}"),
                )
            }),
            CertSource::Param(name) => {
                let store = self.params.get().ok_or_else(|| {
                    invalid(
                        Kind::Listener,
                        "Certificates: no parameter store on this daemon",
                    )
                })?;
                match store.get(account, name) {
                    Ok(Some(p)) => Ok(p.value),
                    Ok(None) => Err(invalid(
                        Kind::Listener,
                        format!("Certificates: parameter `{name}` not found"),
                    )),
                    Err(e) => Err(ProviderError::Failed(e.to_string())),
                }
            }
        }
    }

    /// The whole config of one load balancer from the records' specs.
    fn compile(
        &self,
        recs: &BTreeMap<String, Rec>,
        lb_arn: &str,
        lb_vpc: Option<&str>,
        strict: bool,
    ) -> Result<Compiled, ProviderError> {
        let lb = &recs[lb_arn];
        let Spec::LoadBalancer(lb_spec) = lb.spec()? else {
            return Err(ProviderError::Failed(format!(
                "{lb_arn} is not a load balancer"
            )));
        };
        let address = self
            .opts
            .address
            .or(lb.address)
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let mut out = Compiled::default();
        let mut groups: BTreeSet<String> = BTreeSet::new();
        for (l_arn, l) in recs
            .iter()
            .filter(|(_, r)| r.kind == Kind::Listener && r.parent.as_deref() == Some(lb_arn))
        {
            let Spec::Listener(spec) = l.spec()? else {
                continue;
            };
            let protocol = match &spec.protocol {
                ListenerProto::Http => ListenerProtocol::Http,
                ListenerProto::Https(source) => {
                    let pem = self.certificate(&l.account, source)?;
                    ListenerProtocol::Https {
                        cert_pem: pem.clone(),
                        key_pem: pem,
                    }
                }
            };
            let default_action = action(
                recs,
                Kind::Listener,
                &l.account,
                &spec.default_action,
                &mut groups,
            )?;
            let mut rules = Vec::new();
            for (_, r) in recs
                .iter()
                .filter(|(_, r)| r.kind == Kind::ListenerRule && r.parent.as_deref() == Some(l_arn))
            {
                let Spec::Rule(rule) = r.spec()? else {
                    continue;
                };
                rules.push(RuleConfig {
                    priority: rule.priority,
                    conditions: rule.conditions.clone(),
                    action: action(
                        recs,
                        Kind::ListenerRule,
                        &r.account,
                        &rule.action,
                        &mut groups,
                    )?,
                });
            }
            out.listeners.push((
                l_arn.clone(),
                if matches!(protocol, ListenerProtocol::Http) {
                    "HTTP".into()
                } else {
                    "HTTPS".into()
                },
                spec.port,
                rules.len(),
            ));
            out.config.listeners.push(ListenerConfig {
                name: l_arn.clone(),
                bind: SocketAddr::new(address, spec.port),
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
        if let Some(secs) = lb_spec.idle_timeout {
            out.config.client.idle_timeout = Duration::from_secs(secs.max(1));
            out.config.client.header_read_timeout = Duration::from_secs(secs.max(1));
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
        let spec = tg.target_group()?;
        let port = spec.port;
        let vpc = spec.vpc_id.as_deref();
        if let (Some(v), Some(l)) = (vpc, lb_vpc) {
            if v != l {
                return Err(invalid(
                    Kind::TargetGroup,
                    format!(
                        "target group {} is in {v} but its load balancer is in {l}",
                        tg.name
                    ),
                ));
            }
        }
        let mut resolved = Vec::new();
        for (id, tport) in &spec.targets {
            let ip = if spec.ip_targets {
                id.parse::<IpAddr>().map_err(|_| {
                    invalid(
                        Kind::TargetGroup,
                        format!("Targets: `{id}` is not an IP address (TargetType is ip)"),
                    )
                })?
            } else {
                match self.instance_ip(id, vpc.or(lb_vpc)) {
                    Ok(ip) => ip,
                    Err(err) if strict => return Err(err),
                    Err(err) => {
                        tracing::warn!(target_group = %tg.name, error = %err, "target left out");
                        continue;
                    }
                }
            };
            resolved.push((id.clone(), *tport, SocketAddr::new(ip, *tport)));
        }
        // Auto scaling's instances, on the group's port. One that no longer resolves (its
        // group terminated it while the daemon was down) is left out, never an error.
        for id in &tg.dynamic {
            if resolved.iter().any(|(r, _, _)| r == id) {
                continue;
            }
            match self.instance_ip(id, vpc.or(lb_vpc)) {
                Ok(ip) => resolved.push((id.clone(), port, SocketAddr::new(ip, port))),
                Err(err) => {
                    tracing::warn!(target_group = %tg.name, error = %err, "registered instance left out")
                }
            }
        }
        let mut cfg = spec.config.clone();
        cfg.name = tg.name.clone();
        cfg.targets = resolved.iter().map(|(_, _, a)| *a).collect();
        Ok((cfg, resolved))
    }

    fn instance_ip(&self, id: &str, vpc: Option<&str>) -> Result<IpAddr, ProviderError> {
        let Some(rt) = &self.runtime else {
            return Err(invalid(
                Kind::TargetGroup,
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
                    Kind::TargetGroup,
                    format!(
                        "target {id} is in {} but the target group is in {v}",
                        inst.vpc_id
                    ),
                ));
            }
        }
        Ok(IpAddr::V4(inst.private_ip))
    }

    /// The ARN of every record (load balancers, listeners, rules, target groups), running or
    /// not. Not for async callers (it blocks on the state lock).
    pub fn record_arns(&self) -> Vec<String> {
        self.state.blocking_lock().recs.keys().cloned().collect()
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
                    .filter(|r| r.kind == Kind::TargetGroup)
                    .ok_or_else(|| ProviderError::NotFound(format!("target group {a}")))?;
                let vpc = r.target_group()?.vpc_id.as_deref();
                self.instance_ip(instance_id, vpc)?;
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

/// For each load balancer, every record its config is compiled from (to find which load
/// balancers a change touches).
fn lbs_touching(recs: &BTreeMap<String, Rec>) -> BTreeMap<String, Vec<(String, Rec)>> {
    let mut out: BTreeMap<String, Vec<(String, Rec)>> = BTreeMap::new();
    for (arn, r) in recs {
        if r.kind != Kind::LoadBalancer {
            continue;
        }
        let mut parts = vec![(arn.clone(), r.clone())];
        for (l_arn, l) in recs
            .iter()
            .filter(|(_, l)| l.kind == Kind::Listener && l.parent.as_deref() == Some(arn))
        {
            parts.push((l_arn.clone(), l.clone()));
            for (r_arn, rr) in recs
                .iter()
                .filter(|(_, x)| x.kind == Kind::ListenerRule && x.parent.as_deref() == Some(l_arn))
            {
                parts.push((r_arn.clone(), rr.clone()));
            }
        }
        // Target groups the listeners and rules forward to.
        let groups: Vec<(String, Rec)> = recs
            .iter()
            .filter(|(a, g)| {
                g.kind == Kind::TargetGroup && parts.iter().any(|(_, p)| p.refers_to(a))
            })
            .map(|(a, g)| (a.clone(), g.clone()))
            .collect();
        parts.extend(groups);
        out.insert(arn.clone(), parts);
    }
    out
}

/// A target group ARN named by an action must exist in the same account.
fn group_name(
    recs: &BTreeMap<String, Rec>,
    kind: Kind,
    account: &AccountId,
    arn: &str,
    groups: &mut BTreeSet<String>,
) -> Result<String, ProviderError> {
    match recs.get(arn) {
        Some(r) if r.kind == Kind::TargetGroup && &r.account == account => {
            groups.insert(arn.to_string());
            Ok(r.name.clone())
        }
        _ => Err(invalid(kind, format!("target group {arn} not found"))),
    }
}

/// The engine's action for a listener's or rule's action spec.
fn action(
    recs: &BTreeMap<String, Rec>,
    kind: Kind,
    account: &AccountId,
    spec: &ActionSpec,
    groups: &mut BTreeSet<String>,
) -> Result<Action, ProviderError> {
    Ok(match spec {
        ActionSpec::Forward { target_group } => Action::Forward {
            target_group: group_name(recs, kind, account, target_group, groups)?,
        },
        ActionSpec::Other(a) => a.clone(),
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
fn check_name(kind: Kind, name: &str) -> Result<(), ProviderError> {
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
            kind,
            format!("Name `{name}` must be 1-32 letters, digits and hyphens, not starting or ending with a hyphen"),
        ))
    }
}

/// The given `Name`, or one made like CloudFormation does: part of the logical id and a hash.
fn name_for(kind: Kind, p: &Props, cx: &ResourceCx<'_>) -> Result<String, ProviderError> {
    let given = shape(kind)
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
    check_name(kind, &name)?;
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
    kind: Kind,
}

impl ElbProvider {
    /// The ARN and record a create with these properties makes (deterministic per token);
    /// the properties are parsed here, once, into the record's spec.
    fn plan(
        &self,
        cx: &ResourceCx<'_>,
        p: &Props,
        recs: &BTreeMap<String, Rec>,
    ) -> Result<(String, Rec), ProviderError> {
        let props = Value::Map(p.clone()).to_json();
        let spec =
            Spec::parse(self.kind, &props_of(&props)).map_err(ProviderError::InvalidRequest)?;
        let d = hex16(&digest(self.kind.type_name(), cx));
        let mut rec = Rec {
            kind: self.kind,
            account: cx.account()?,
            region: cx.context.region.clone(),
            stack: cx.stack_name.to_string(),
            logical_id: cx.logical_id.to_string(),
            name: String::new(),
            parent: None,
            address: None,
            props,
            dynamic: BTreeSet::new(),
            spec: Ok(spec.clone()),
        };
        // The parent must be a record of the parent's kind in the same account.
        let parent = |arn: &str, kind: Kind| {
            recs.get(arn)
                .is_some_and(|r| r.kind == kind && r.account == rec.account)
        };
        let arn = match spec {
            Spec::LoadBalancer(_) => {
                rec.name = name_for(self.kind, p, cx)?;
                let arn = format!("{}loadbalancer/app/{}/{d}", arn_prefix(cx), rec.name);
                rec.address = Some(derived_address(&arn));
                arn
            }
            Spec::TargetGroup(_) => {
                rec.name = name_for(self.kind, p, cx)?;
                format!("{}targetgroup/{}/{d}", arn_prefix(cx), rec.name)
            }
            Spec::Listener(l) => {
                let lb = l.load_balancer;
                let tail = lb
                    .split_once(":loadbalancer/")
                    .map(|x| x.1)
                    .filter(|_| parent(&lb, Kind::LoadBalancer))
                    .ok_or_else(|| {
                        invalid(Kind::Listener, format!("load balancer {lb} not found"))
                    })?;
                let arn = format!("{}listener/{tail}/{d}", arn_prefix(cx));
                rec.parent = Some(lb);
                arn
            }
            Spec::Rule(r) => {
                let l = r.listener;
                let tail = l
                    .split_once(":listener/")
                    .map(|x| x.1)
                    .filter(|_| parent(&l, Kind::Listener))
                    .ok_or_else(|| {
                        invalid(Kind::ListenerRule, format!("listener {l} not found"))
                    })?;
                let arn = format!("{}listener-rule/{tail}/{d}", arn_prefix(cx));
                rec.parent = Some(l);
                arn
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
        match self.kind {
            Kind::LoadBalancer => {
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
                let sgs = match &rec.spec {
                    Ok(Spec::LoadBalancer(l)) => l.security_groups.clone(),
                    _ => Vec::new(),
                };
                a.insert(
                    "SecurityGroups".into(),
                    Value::List(sgs.into_iter().map(Value::String).collect()),
                );
            }
            Kind::Listener => {
                a.insert("ListenerArn".into(), Value::str(arn));
            }
            Kind::ListenerRule => {
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
                if matches!(self.kind, Kind::LoadBalancer | Kind::TargetGroup)
                    && recs.values().any(|r| {
                        r.kind == self.kind && r.account == rec.account && r.name == rec.name
                    })
                {
                    return Err(ProviderError::AlreadyExists(format!(
                        "{} named {}",
                        self.kind, rec.name
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
            let props = Value::Map(req.properties.clone()).to_json();
            let spec =
                Spec::parse(self.kind, &props_of(&props)).map_err(ProviderError::InvalidRequest)?;
            let a = arn.clone();
            let kind = self.kind;
            self.elb
                .transact(move |recs| {
                    let r = recs
                        .get_mut(&a)
                        .ok_or_else(|| ProviderError::NotFound(format!("{kind} {a}")))?;
                    r.props = props;
                    r.spec = Ok(spec);
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
            let kind = self.kind;
            self.elb
                .transact(move |recs| {
                    if !recs.contains_key(&arn) {
                        return Ok(());
                    }
                    let used_by = recs.iter().find(|(a, r)| *a != &arn && r.refers_to(&arn));
                    if let Some((other, _)) = used_by {
                        return Err(ProviderError::Failed(format!(
                            "{kind} {arn} is in use by {other}"
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
mod tests {
    use super::*;

    const P: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:";

    /// A state file as the daemon wrote it before records carried their kind.
    fn old_state() -> String {
        let rec = |name: &str, parent: Option<String>, props: serde_json::Value| {
            serde_json::json!({
                "account": "123456789012", "region": "us-east-1", "stack": "web",
                "logical_id": name, "name": name, "parent": parent, "address": null,
                "props": props,
            })
        };
        let (lb, l, r, tg) = (
            format!("{P}loadbalancer/app/web/a1"),
            format!("{P}listener/app/web/a1/b2"),
            format!("{P}listener-rule/app/web/a1/b2/c3"),
            format!("{P}targetgroup/tg/d4"),
        );
        let forward = serde_json::json!([{"Type": "forward", "TargetGroupArn": tg}]);
        let mut tg_rec = rec(
            "tg",
            None,
            serde_json::json!({"Port": "8080", "Protocol": "TCP"}),
        );
        tg_rec["dynamic"] = serde_json::json!(["i-1"]);
        serde_json::json!({
            lb.clone(): rec("web", None, serde_json::json!({"Name": "web"})),
            l.clone(): rec("Http", Some(lb.clone()), serde_json::json!({
                "LoadBalancerArn": lb, "Port": 80, "DefaultActions": forward})),
            r: rec("Rule", Some(l.clone()), serde_json::json!({
                "ListenerArn": l, "Priority": 1, "Actions": forward,
                "Conditions": [{"Field": "path-pattern", "Values": ["/x"]}]})),
            tg: tg_rec,
        })
        .to_string()
    }

    #[test]
    fn records_written_before_kinds_load_with_their_kind_and_spec() {
        let recs = load_records(old_state().as_bytes()).unwrap();
        let kinds: Vec<(&str, Kind)> = recs
            .iter()
            .map(|(a, r)| (a.strip_prefix(P).unwrap(), r.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("listener-rule/app/web/a1/b2/c3", Kind::ListenerRule),
                ("listener/app/web/a1/b2", Kind::Listener),
                ("loadbalancer/app/web/a1", Kind::LoadBalancer),
                ("targetgroup/tg/d4", Kind::TargetGroup),
            ]
        );
        let tg = format!("{P}targetgroup/tg/d4");
        let listener = &recs[&format!("{P}listener/app/web/a1/b2")];
        assert!(matches!(&listener.spec, Ok(Spec::Listener(l)) if l.port == 80));
        assert!(
            listener.refers_to(&tg),
            "the listener forwards to the group"
        );
        assert!(!recs[&format!("{P}loadbalancer/app/web/a1")].refers_to(&tg));
        // A record whose properties no longer parse still loads, keeping the refusal for
        // when its load balancer is compiled.
        let group = &recs[&tg];
        assert_eq!(group.dynamic.iter().collect::<Vec<_>>(), ["i-1"]);
        assert_eq!(
            group.spec.as_ref().unwrap_err(),
            "AWS::ElasticLoadBalancingV2::TargetGroup: Protocol: Protocol `TCP`: Spindle forwards to targets over HTTP"
        );
        // Saved again, the records carry their kind and load the same.
        let saved = serde_json::to_vec(&recs).unwrap();
        assert!(String::from_utf8_lossy(&saved)
            .contains(r#""kind":"AWS::ElasticLoadBalancingV2::ListenerRule""#));
        assert_eq!(load_records(&saved).unwrap(), recs);
    }

    #[test]
    fn legacy_kinds_come_from_the_arns_resource_type() {
        for (arn, kind) in [
            ("loadbalancer/app/x/1", Kind::LoadBalancer),
            ("listener/app/x/1/2", Kind::Listener),
            ("listener-rule/app/x/1/2/3", Kind::ListenerRule),
            ("targetgroup/x/1", Kind::TargetGroup),
        ] {
            assert_eq!(legacy_kind(&format!("{P}{arn}")), kind, "{arn}");
        }
    }
}
