//! `AWS::EC2::VPC`, `Subnet`, `SecurityGroup`, `SecurityGroupIngress`/`Egress` and
//! `VPCPeeringConnection` over the runtime's networks.

use std::collections::BTreeMap;
use std::sync::Arc;

use spindle_runtime::net::NetError;
use spindle_runtime::{Ipv4Net, Peer, Protocol, RuntimeError, SecurityGroup, SgRule, Vpc};
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

use crate::ec2_spec::{
    GroupSpec, PeeringSpec, RuleSpec, SubnetSpec, VpcSpec, EGRESS, INGRESS, PEERING,
    SECURITY_GROUP, SUBNET, VPC,
};
use crate::error::Ec2Error;
use crate::props::{observed, same_cidr, Props, Shape};
use crate::state::{ExtraRule, GroupRules};
use crate::{derived_id, scoped_token, Ec2};

pub(crate) fn is_not_found(e: &RuntimeError) -> bool {
    matches!(
        e,
        RuntimeError::Net(NetError::NotFound { .. }) | RuntimeError::NoInstance(_)
    )
}

/// `Ok(())` for "already gone".
fn gone_ok(r: Result<(), RuntimeError>) -> Result<(), Ec2Error> {
    match r {
        Err(e) if is_not_found(&e) => Ok(()),
        other => Ok(other?),
    }
}

/// A spec's parse result as the provider's answer: every problem at once, as an invalid
/// request.
pub(crate) fn parse<T>(r: Result<T, String>) -> Result<T, ProviderError> {
    r.map_err(ProviderError::InvalidRequest)
}

fn attrs(pairs: &[(&str, String)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::str(v)))
        .collect()
}

fn read_output(out: ProviderOutput, properties: Props) -> ReadOutput {
    ReadOutput {
        physical_id: out.physical_id,
        properties,
        attributes: out.attributes,
    }
}

/// The physical id a `read` looks for, and the token lock key it waits on when it looks
/// by token.
pub(crate) fn read_target(req: &ReadRequest<'_>, kind: &str) -> (String, String) {
    match &req.physical_id {
        Some(p) => (p.clone(), format!("read/{p}")),
        None => (derived_id(kind, &req.cx), scoped_token(&req.cx)),
    }
}

// ------------------------------------------------------------------------------------ VPC

fn vpc_output(v: &Vpc) -> ProviderOutput {
    ProviderOutput {
        physical_id: v.id.clone(),
        attributes: attrs(&[("VpcId", v.id.clone()), ("CidrBlock", v.cidr.to_string())]),
    }
}

fn find_vpc(ec2: &Ec2, id: &str) -> Option<Vpc> {
    ec2.runtime.vpcs().into_iter().find(|v| v.id == id)
}

/// `AWS::EC2::VPC`: a router network namespace with a bridge ([`spindle_runtime::Runtime::create_vpc`]).
#[derive(Debug)]
pub struct VpcProvider {
    ec2: Arc<Ec2>,
}

impl VpcProvider {
    pub fn new(ec2: Arc<Ec2>) -> Self {
        VpcProvider { ec2 }
    }
}

impl Provider for VpcProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let spec = parse(VpcSpec::parse(&req.properties))?;
            let cidr = spec.cidr.to_string();
            let id = derived_id("vpc", &req.cx);
            let out = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let v = match find_vpc(e, &id) {
                        Some(v) => v,
                        None => e.runtime.create_vpc(Some(&id), &cidr)?,
                    };
                    // A new VPC's resolver starts with it (`EnableDnsSupport` defaults to true).
                    if !spec.dns_support {
                        e.runtime.set_dns_support(&v.id, false)?;
                    }
                    e.runtime.set_dns_hostnames(&v.id, spec.dns_hostnames)?;
                    Ok(vpc_output(&v))
                })
                .await?;
            Ok(out)
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let spec = parse(VpcSpec::parse(&req.properties))?;
            VPC.check_update(
                &req.changed,
                &["EnableDnsSupport", "EnableDnsHostnames"],
                "a VPC's CIDR is fixed",
            )?;
            let id = req.physical_id.clone();
            let v = find_vpc(&self.ec2, &id)
                .ok_or_else(|| ProviderError::NotFound(format!("VPC {id}")))?;
            let dns = ["EnableDnsSupport", "EnableDnsHostnames"];
            if req.changed.iter().any(|k| dns.contains(&k.as_str())) {
                self.ec2
                    .run(&scoped_token(&req.cx), move |e| {
                        // Host names off before support goes off, on after it comes back.
                        if !spec.dns_hostnames {
                            e.runtime.set_dns_hostnames(&id, false)?;
                        }
                        e.runtime.set_dns_support(&id, spec.dns_support)?;
                        Ok(e.runtime.set_dns_hostnames(&id, spec.dns_hostnames)?)
                    })
                    .await?;
            }
            Ok(vpc_output(&v))
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = req.physical_id.clone();
            self.ec2
                .run(&scoped_token(&req.cx), move |e| {
                    gone_ok(e.runtime.delete_vpc(&id))?;
                    // The runtime dropped the VPC's groups with it.
                    let mut t = e.store.lock();
                    let before = t.groups.len();
                    t.groups.retain(|_, g| g.vpc_id != id);
                    if t.groups.len() != before {
                        e.store.save(&t)?;
                    }
                    Ok(())
                })
                .await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let (id, key) = read_target(&req, "vpc");
            let found = self.ec2.run(&key, move |e| Ok(find_vpc(e, &id))).await?;
            Ok(found.map(|v| {
                let agree = same_cidr(req.properties.get("CidrBlock"), &v.cidr);
                let p = observed(
                    &req.properties,
                    vec![("CidrBlock", Value::str(v.cidr.to_string()), agree)],
                );
                read_output(vpc_output(&v), p)
            }))
        })
    }
}

// --------------------------------------------------------------------------------- Subnet

/// (vpc id, cidr) of a subnet.
fn find_subnet(ec2: &Ec2, id: &str) -> Option<(String, Ipv4Net)> {
    ec2.runtime
        .vpcs()
        .into_iter()
        .find_map(|v| v.subnets.get(id).map(|s| (v.id.clone(), s.cidr)))
}

fn subnet_output(
    cx: &ResourceCx<'_>,
    az: Option<String>,
    id: &str,
    vpc: &str,
    cidr: Ipv4Net,
) -> ProviderOutput {
    let az = az
        .or_else(|| cx.context.availability_zones.first().cloned())
        .unwrap_or_else(|| format!("{}a", cx.context.region));
    ProviderOutput {
        physical_id: id.to_string(),
        attributes: attrs(&[
            ("SubnetId", id.to_string()),
            ("VpcId", vpc.to_string()),
            ("CidrBlock", cidr.to_string()),
            ("AvailabilityZone", az),
        ]),
    }
}

/// `AWS::EC2::Subnet`: an address range of a VPC with its gateway on the VPC's bridge.
#[derive(Debug)]
pub struct SubnetProvider {
    ec2: Arc<Ec2>,
}

impl SubnetProvider {
    pub fn new(ec2: Arc<Ec2>) -> Self {
        SubnetProvider { ec2 }
    }
}

impl Provider for SubnetProvider {
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
            let spec = parse(SubnetSpec::parse(&req.properties))?;
            let (vpc, cidr) = (spec.vpc, spec.cidr.to_string());
            let id = derived_id("subnet", &req.cx);
            let sid = id.clone();
            let (vpc, cidr) = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    if let Some(found) = find_subnet(e, &sid) {
                        return Ok(found);
                    }
                    e.runtime.create_subnet(&vpc, Some(&sid), &cidr)?;
                    find_subnet(e, &sid).ok_or_else(|| {
                        Ec2Error::invalid(
                            SUBNET.type_name,
                            format!("subnet {sid} vanished after its create"),
                        )
                    })
                })
                .await?;
            Ok(subnet_output(
                &req.cx,
                spec.availability_zone,
                &id,
                &vpc,
                cidr,
            ))
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let spec = parse(SubnetSpec::parse(&req.properties))?;
            SUBNET.check_update(&req.changed, &[], "a subnet's VPC and CIDR are fixed")?;
            let (vpc, cidr) = find_subnet(&self.ec2, &req.physical_id)
                .ok_or_else(|| ProviderError::NotFound(format!("subnet {}", req.physical_id)))?;
            Ok(subnet_output(
                &req.cx,
                spec.availability_zone,
                &req.physical_id,
                &vpc,
                cidr,
            ))
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = req.physical_id.clone();
            self.ec2
                .run(&scoped_token(&req.cx), move |e| {
                    gone_ok(e.runtime.delete_subnet(&id))
                })
                .await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let (id, key) = read_target(&req, "subnet");
            let sid = id.clone();
            let found = self
                .ec2
                .run(&key, move |e| Ok(find_subnet(e, &sid)))
                .await?;
            Ok(found.map(|(vpc, cidr)| {
                let agree = same_cidr(req.properties.get("CidrBlock"), &cidr);
                let p = observed(
                    &req.properties,
                    vec![
                        ("VpcId", Value::str(&vpc), false),
                        ("CidrBlock", Value::str(cidr.to_string()), agree),
                    ],
                );
                let az = SubnetSpec::parse(&req.properties)
                    .ok()
                    .and_then(|s| s.availability_zone);
                read_output(subnet_output(&req.cx, az, &id, &vpc, cidr), p)
            }))
        })
    }
}

// -------------------------------------------------------------------------- security groups

/// The rule as CloudFormation writes it (for `read`).
fn rule_value(r: &SgRule, egress: bool) -> Value {
    let mut m = BTreeMap::new();
    let proto = match r.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Icmp => "icmp",
        Protocol::All => "-1",
    };
    m.insert("IpProtocol".to_string(), Value::str(proto));
    if matches!(r.protocol, Protocol::Tcp | Protocol::Udp) {
        m.insert("FromPort".into(), Value::Number(r.from_port.to_string()));
        m.insert("ToPort".into(), Value::Number(r.to_port.to_string()));
    }
    match &r.peer {
        Peer::Cidr(c) => m.insert("CidrIp".into(), Value::str(c.to_string())),
        Peer::Group(g) if egress => m.insert("DestinationSecurityGroupId".into(), Value::str(g)),
        Peer::Group(g) => m.insert("SourceSecurityGroupId".into(), Value::str(g)),
    };
    Value::Map(m)
}

fn group_output(id: &str, vpc: &str) -> ProviderOutput {
    ProviderOutput {
        physical_id: id.to_string(),
        attributes: attrs(&[("GroupId", id.to_string()), ("VpcId", vpc.to_string())]),
    }
}

/// Puts a group's effective rules; on failure puts `previous` back in the table.
fn apply_group(
    e: &Ec2,
    t: &mut crate::state::Tables,
    id: &str,
    previous: Option<GroupRules>,
) -> Result<(), Ec2Error> {
    let g = t.groups.get(id).cloned().unwrap_or_default();
    e.store.save(t)?;
    let (ingress, egress) = g.effective();
    if let Err(err) = e.runtime.put_security_group(id, &g.vpc_id, ingress, egress) {
        match previous {
            Some(p) => t.groups.insert(id.to_string(), p),
            None => t.groups.remove(id),
        };
        e.store.save(t)?;
        return Err(err.into());
    }
    Ok(())
}

/// `AWS::EC2::SecurityGroup`: stateful nftables rules in each member instance's namespace.
/// Its rules are its inline rules plus those of standalone ingress/egress resources.
#[derive(Debug)]
pub struct SecurityGroupProvider {
    ec2: Arc<Ec2>,
}

impl SecurityGroupProvider {
    pub fn new(ec2: Arc<Ec2>) -> Self {
        SecurityGroupProvider { ec2 }
    }
}

impl Provider for SecurityGroupProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let GroupSpec {
                vpc,
                ingress,
                egress,
            } = parse(GroupSpec::parse(&req.properties))?;
            let id = derived_id("sg", &req.cx);
            let out = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let mut t = e.store.lock();
                    if let Some(g) = e.runtime.security_group(&id) {
                        return Ok(group_output(&id, &g.vpc_id));
                    }
                    t.groups.insert(
                        id.clone(),
                        GroupRules {
                            vpc_id: vpc.clone(),
                            ingress,
                            egress,
                            extra: BTreeMap::new(),
                        },
                    );
                    apply_group(e, &mut t, &id, None)?;
                    Ok(group_output(&id, &vpc))
                })
                .await?;
            Ok(out)
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let GroupSpec {
                vpc,
                ingress,
                egress,
            } = parse(GroupSpec::parse(&req.properties))?;
            SECURITY_GROUP.check_update(
                &req.changed,
                &["SecurityGroupIngress", "SecurityGroupEgress"],
                "a group's VPC and description are fixed",
            )?;
            let id = req.physical_id.clone();
            let out = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let current = e.runtime.security_group(&id).ok_or_else(|| {
                        RuntimeError::Net(NetError::NotFound {
                            kind: "security group",
                            id: id.clone(),
                        })
                    })?;
                    let mut t = e.store.lock();
                    let previous = t.groups.get(&id).cloned();
                    let entry = t
                        .groups
                        .entry(id.clone())
                        .or_insert_with(|| GroupRules::from_group(&current));
                    entry.ingress = ingress;
                    entry.egress = egress;
                    apply_group(e, &mut t, &id, previous)?;
                    Ok(group_output(&id, &vpc))
                })
                .await?;
            Ok(out)
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = req.physical_id.clone();
            self.ec2
                .run(&scoped_token(&req.cx), move |e| {
                    gone_ok(e.runtime.delete_security_group(&id))?;
                    let mut t = e.store.lock();
                    if t.groups.remove(&id).is_some() {
                        e.store.save(&t)?;
                    }
                    Ok(())
                })
                .await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let (id, key) = read_target(&req, "sg");
            let found = self
                .ec2
                .run(&key, move |e| {
                    let Some(g) = e.runtime.security_group(&id) else {
                        return Ok(None);
                    };
                    let rules = e
                        .store
                        .lock()
                        .groups
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| GroupRules::from_group(&g));
                    Ok(Some((g, rules)))
                })
                .await?;
            Ok(found.map(|(g, rules)| {
                // What the group would hold if nothing drifted: the expected inline rules
                // plus the standalone ones.
                let want = GroupSpec::parse(&req.properties).ok().map(|s| {
                    GroupRules {
                        vpc_id: s.vpc,
                        ingress: s.ingress,
                        egress: s.egress,
                        extra: rules.extra.clone(),
                    }
                    .effective()
                });
                let (want_in, want_out) = match want {
                    Some((i, e)) => (Some(i), e.unwrap_or_else(SecurityGroup::default_egress)),
                    None => (None, Vec::new()),
                };
                let standalone: Vec<&SgRule> = rules.extra.values().map(|x| &x.rule).collect();
                let inline = |rs: &[SgRule], egress: bool| {
                    Value::List(
                        rs.iter()
                            .filter(|r| !standalone.contains(r))
                            .map(|r| rule_value(r, egress))
                            .collect(),
                    )
                };
                let p = observed(
                    &req.properties,
                    vec![
                        ("VpcId", Value::str(&g.vpc_id), false),
                        (
                            "SecurityGroupIngress",
                            inline(&g.ingress, false),
                            want_in.as_deref() == Some(&g.ingress),
                        ),
                        (
                            "SecurityGroupEgress",
                            inline(&g.egress, true),
                            want_out == g.egress,
                        ),
                    ],
                );
                read_output(group_output(&g.id, &g.vpc_id), p)
            }))
        })
    }
}

/// `AWS::EC2::SecurityGroupIngress` / `AWS::EC2::SecurityGroupEgress`: one rule added to an
/// existing group (the group's rule set is put again with it). `Ref` is an `sgr-…` id.
#[derive(Debug)]
pub struct SecurityGroupRuleProvider {
    ec2: Arc<Ec2>,
    egress: bool,
}

impl SecurityGroupRuleProvider {
    pub fn ingress(ec2: Arc<Ec2>) -> Self {
        SecurityGroupRuleProvider { ec2, egress: false }
    }

    pub fn egress(ec2: Arc<Ec2>) -> Self {
        SecurityGroupRuleProvider { ec2, egress: true }
    }

    fn shape(&self) -> &'static Shape {
        if self.egress {
            &EGRESS
        } else {
            &INGRESS
        }
    }

    fn spec(&self, p: &Props) -> Result<RuleSpec, ProviderError> {
        parse(RuleSpec::parse(p, self.egress))
    }
}

fn rule_output(id: &str) -> ProviderOutput {
    ProviderOutput {
        physical_id: id.to_string(),
        attributes: attrs(&[("Id", id.to_string())]),
    }
}

/// The group holding standalone rule `id`.
fn group_of_rule(t: &crate::state::Tables, id: &str) -> Option<String> {
    t.groups
        .iter()
        .find(|(_, g)| g.extra.contains_key(id))
        .map(|(gid, _)| gid.clone())
}

impl Provider for SecurityGroupRuleProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let RuleSpec { group, rule } = self.spec(&req.properties)?;
            let id = derived_id("sgr", &req.cx);
            let egress = self.egress;
            let out = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let current = e.runtime.security_group(&group).ok_or_else(|| {
                        RuntimeError::Net(NetError::NotFound {
                            kind: "security group",
                            id: group.clone(),
                        })
                    })?;
                    let mut t = e.store.lock();
                    let previous = t.groups.get(&group).cloned();
                    let entry = t
                        .groups
                        .entry(group.clone())
                        .or_insert_with(|| GroupRules::from_group(&current));
                    if entry.extra.contains_key(&id) {
                        return Ok(rule_output(&id));
                    }
                    entry.extra.insert(id.clone(), ExtraRule { egress, rule });
                    apply_group(e, &mut t, &group, previous)?;
                    Ok(rule_output(&id))
                })
                .await?;
            Ok(out)
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            self.spec(&req.properties)?;
            self.shape()
                .check_update(&req.changed, &[], "a rule is replaced, not changed")?;
            Ok(rule_output(&req.physical_id))
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = req.physical_id.clone();
            self.ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let mut t = e.store.lock();
                    let Some(group) = group_of_rule(&t, &id) else {
                        return Ok(());
                    };
                    let previous = t.groups.get(&group).cloned();
                    if let Some(g) = t.groups.get_mut(&group) {
                        g.extra.remove(&id);
                    }
                    if e.runtime.security_group(&group).is_none() {
                        // The group is gone (its VPC was deleted): nothing to put.
                        t.groups.remove(&group);
                        return e.store.save(&t);
                    }
                    apply_group(e, &mut t, &group, previous)
                })
                .await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let (id, key) = read_target(&req, "sgr");
            let egress = self.egress;
            let found = self
                .ec2
                .run(&key, move |e| {
                    let t = e.store.lock();
                    let Some(group) = group_of_rule(&t, &id) else {
                        return Ok(None);
                    };
                    if e.runtime.security_group(&group).is_none() {
                        return Ok(None);
                    }
                    let rule = t.groups[&group].extra[&id].rule.clone();
                    Ok(Some((id, group, rule)))
                })
                .await?;
            Ok(found.map(|(id, group, rule)| {
                let mut p = req.properties.clone();
                let agree = self
                    .spec(&req.properties)
                    .is_ok_and(|s| s.group == group && s.rule == rule);
                if !agree {
                    if let Value::Map(m) = rule_value(&rule, egress) {
                        p.extend(m);
                    }
                    p.insert("GroupId".into(), Value::str(group));
                }
                read_output(rule_output(&id), p)
            }))
        })
    }
}

// -------------------------------------------------------------------------------- peering

fn peering_output(id: &str) -> ProviderOutput {
    ProviderOutput {
        physical_id: id.to_string(),
        attributes: attrs(&[("Id", id.to_string())]),
    }
}

/// `AWS::EC2::VPCPeeringConnection`: a link between two VPC routers (same account and
/// region; accepted at once, as CloudFormation does for same-account peering).
/// Non-transitive: see [`spindle_runtime::net`].
#[derive(Debug)]
pub struct PeeringProvider {
    ec2: Arc<Ec2>,
}

impl PeeringProvider {
    pub fn new(ec2: Arc<Ec2>) -> Self {
        PeeringProvider { ec2 }
    }
}

fn peering_spec(cx: &ResourceCx<'_>, p: &Props) -> Result<PeeringSpec, ProviderError> {
    parse(PeeringSpec::parse(
        p,
        &cx.context.account_id,
        &cx.context.region,
    ))
}

impl Provider for PeeringProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let PeeringSpec { vpc, peer } = peering_spec(&req.cx, &req.properties)?;
            let id = derived_id("pcx", &req.cx);
            let out = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    if e.runtime.peerings().iter().any(|p| p.id == id) {
                        return Ok(peering_output(&id));
                    }
                    e.runtime.create_peering(Some(&id), &vpc, &peer)?;
                    Ok(peering_output(&id))
                })
                .await?;
            Ok(out)
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            peering_spec(&req.cx, &req.properties)?;
            PEERING.check_update(&req.changed, &[], "a peering's VPCs are fixed")?;
            Ok(peering_output(&req.physical_id))
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = req.physical_id.clone();
            self.ec2
                .run(&scoped_token(&req.cx), move |e| {
                    gone_ok(e.runtime.delete_peering(&id))
                })
                .await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let (id, key) = read_target(&req, "pcx");
            let found = self
                .ec2
                .run(&key, move |e| {
                    Ok(e.runtime.peerings().into_iter().find(|p| p.id == id))
                })
                .await?;
            Ok(found.map(|pc| {
                let p = observed(
                    &req.properties,
                    vec![
                        ("VpcId", Value::str(&pc.a), false),
                        ("PeerVpcId", Value::str(&pc.b), false),
                    ],
                );
                read_output(peering_output(&pc.id), p)
            }))
        })
    }
}
