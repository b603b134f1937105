//! VPCs, subnets and security groups: router namespaces, bridges, nftables rules, and
//! sockets opened inside a VPC or an instance for the daemon's load balancer and bastion.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use crate::cidr::{Ipam, Ipv4Net};
use crate::intent::Intent;
use crate::net::{self, NetError, SecurityGroup, SgRule};

use super::{check_id, new_id, Runtime, RuntimeError, State, Vpc};

impl Runtime {
    /// Creates a VPC: a router namespace with a bridge and a forwarding policy.
    pub fn create_vpc(&self, id: Option<&str>, cidr: &str) -> Result<Vpc, RuntimeError> {
        if let Some(id) = id {
            check_id("vpc", id)?;
        }
        let cidr: Ipv4Net = cidr.parse()?;
        let k = &self.inner.kernel;
        net::check_vpc_cidr(cidr, &k.host_routes()?)?;
        let mut st = self.lock();
        let id = id
            .map(str::to_string)
            .unwrap_or_else(|| new_id("vpc", &self.inner.cfg.prefix));
        if st.vpcs.contains_key(&id) {
            return Err(NetError::Exists { kind: "VPC", id }.into());
        }
        let netns = self.netns_name(&id);
        st.intents.insert(
            id.clone(),
            Intent::Vpc {
                netns: netns.clone(),
            },
        );
        if let Err(e) = self.save(&st) {
            st.intents.remove(&id);
            return Err(e);
        }
        let res = (|| -> Result<(), RuntimeError> {
            k.netns_create(&netns)?;
            k.ip_batch(Some(&netns), &net::router_setup(&[]))?;
            k.sysctl(&netns, "net.ipv4.ip_forward", "1")?;
            k.nft_apply(Some(&netns), &net::router_rules(cidr, &[]))?;
            Ok(())
        })();
        if let Err(e) = res {
            let _ = k.netns_delete(&netns);
            st.intents.remove(&id);
            let _ = self.save(&st);
            return Err(e);
        }
        st.intents.remove(&id);
        let vpc = Vpc {
            id: id.clone(),
            cidr,
            netns,
            subnets: BTreeMap::new(),
            next_port: 0,
            dns_support: true,
            dns_hostnames: false,
        };
        st.vpcs.insert(id, vpc.clone());
        self.save(&st)?;
        drop(st);
        self.start_imds(&vpc);
        // Like the metadata service, a resolver that can't start leaves the VPC usable.
        if let Err(e) = self.start_resolver(&vpc) {
            tracing::warn!(vpc = %vpc.id, error = %e, "no DNS resolver in this VPC");
        }
        Ok(vpc)
    }

    /// Deletes a VPC with its subnets and security groups. Refused while instances or
    /// peerings use it.
    pub fn delete_vpc(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let vpc = st
            .vpcs
            .get(id)
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: id.into(),
            })?
            .clone();
        let users: Vec<String> = st
            .live()
            .filter(|i| i.vpc_id == id)
            .map(|i| i.id.clone())
            .chain(
                st.peerings
                    .values()
                    .filter(|p| p.a == id || p.b == id)
                    .map(|p| p.id.clone()),
            )
            .chain(
                st.endpoints
                    .values()
                    .filter(|e| e.vpc_id == id)
                    .map(|e| e.id.clone()),
            )
            .collect();
        if !users.is_empty() {
            return Err(NetError::InUse {
                kind: "VPC",
                id: id.into(),
                users: users.join(", "),
            }
            .into());
        }
        let server = self.inner.imds.lock().unwrap().remove(id);
        self.stop_resolver(id);
        self.inner.kernel.netns_delete(&vpc.netns)?;
        st.vpcs.remove(id);
        st.groups.retain(|_, g| g.vpc_id != id);
        // Terminated instances keep their records (as EC2 lists them for a while after).
        self.save(&st)?;
        drop(st);
        // Stopping the server joins its thread, which may be waiting for the state lock.
        drop(server);
        Ok(())
    }

    pub fn vpcs(&self) -> Vec<Vpc> {
        self.lock().vpcs.values().cloned().collect()
    }

    /// Adds a subnet (its gateway goes on the VPC's bridge).
    pub fn create_subnet(
        &self,
        vpc_id: &str,
        id: Option<&str>,
        cidr: &str,
    ) -> Result<String, RuntimeError> {
        if let Some(id) = id {
            check_id("subnet", id)?;
        }
        let cidr: Ipv4Net = cidr.parse()?;
        let mut st = self.lock();
        let id = id
            .map(str::to_string)
            .unwrap_or_else(|| new_id("subnet", &self.inner.cfg.prefix));
        if st.find_subnet(&id).is_some() {
            return Err(NetError::Exists { kind: "subnet", id }.into());
        }
        let vpc = st.vpcs.get_mut(vpc_id).ok_or_else(|| NetError::NotFound {
            kind: "VPC",
            id: vpc_id.into(),
        })?;
        if !vpc.cidr.contains_net(&cidr) {
            return Err(NetError::SubnetOutsideVpc {
                subnet: cidr,
                vpc: vpc_id.into(),
                cidr: vpc.cidr,
            }
            .into());
        }
        if let Some((oid, o)) = vpc.subnets.iter().find(|(_, s)| s.cidr.overlaps(&cidr)) {
            return Err(NetError::SubnetOverlap {
                subnet: cidr,
                other_id: oid.clone(),
                other: o.cidr,
                vpc: vpc_id.into(),
            }
            .into());
        }
        let mut ipam = Ipam::new(cidr)?;
        // The VPC's resolver address is the router's, never an instance's.
        ipam.reserve(super::resolver_address(vpc.cidr));
        self.inner.kernel.ip_batch(
            Some(&vpc.netns),
            &format!("addr add {}/{} dev br0\n", ipam.gateway(), cidr.prefix()),
        )?;
        vpc.subnets.insert(id.clone(), ipam);
        self.save(&st)?;
        Ok(id)
    }

    pub fn delete_subnet(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let users: Vec<String> = st
            .live()
            .filter(|i| i.subnet_id == id)
            .map(|i| i.id.clone())
            .chain(
                st.endpoints
                    .values()
                    .filter(|e| e.subnet_id == id)
                    .map(|e| e.id.clone()),
            )
            .collect();
        if !users.is_empty() {
            return Err(NetError::InUse {
                kind: "subnet",
                id: id.into(),
                users: users.join(", "),
            }
            .into());
        }
        let vpc = st
            .vpcs
            .values_mut()
            .find(|v| v.subnets.contains_key(id))
            .ok_or_else(|| NetError::NotFound {
                kind: "subnet",
                id: id.into(),
            })?;
        let ipam = &vpc.subnets[id];
        self.inner.kernel.ip_batch(
            Some(&vpc.netns),
            &format!(
                "addr del {}/{} dev br0\n",
                ipam.gateway(),
                ipam.cidr.prefix()
            ),
        )?;
        vpc.subnets.remove(id);
        self.save(&st)
    }

    /// Creates or replaces a security group's rules, re-applying them to every instance that
    /// is a member or references the group. `egress: None` means AWS's allow-all default.
    pub fn put_security_group(
        &self,
        id: &str,
        vpc_id: &str,
        ingress: Vec<SgRule>,
        egress: Option<Vec<SgRule>>,
    ) -> Result<SecurityGroup, RuntimeError> {
        check_id("sg", id)?;
        for r in ingress.iter().chain(egress.iter().flatten()) {
            r.validate()?;
        }
        let mut st = self.lock();
        if !st.vpcs.contains_key(vpc_id) {
            return Err(NetError::NotFound {
                kind: "VPC",
                id: vpc_id.into(),
            }
            .into());
        }
        if let Some(old) = st.groups.get(id) {
            if old.vpc_id != vpc_id {
                return Err(NetError::WrongVpc {
                    sg: id.into(),
                    sg_vpc: old.vpc_id.clone(),
                    vpc: vpc_id.into(),
                }
                .into());
            }
        }
        let sg = SecurityGroup {
            id: id.into(),
            vpc_id: vpc_id.into(),
            ingress,
            egress: egress.unwrap_or_else(SecurityGroup::default_egress),
        };
        let previous = st.groups.insert(id.into(), sg.clone());
        if let Err(e) = self.refresh_rules(&st, &[id.to_string()], true) {
            // Put the old rules back where they were applied.
            match previous {
                Some(p) => st.groups.insert(id.into(), p),
                None => st.groups.remove(id),
            };
            let _ = self.refresh_rules(&st, &[id.to_string()], true);
            return Err(e);
        }
        self.save(&st)?;
        Ok(sg)
    }

    pub fn delete_security_group(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let users: Vec<String> = st
            .live()
            .filter(|i| i.security_groups.iter().any(|g| g == id))
            .map(|i| i.id.clone())
            .chain(
                st.endpoints
                    .values()
                    .filter(|e| e.security_groups.iter().any(|g| g == id))
                    .map(|e| e.id.clone()),
            )
            .collect();
        if !users.is_empty() {
            return Err(NetError::InUse {
                kind: "security group",
                id: id.into(),
                users: users.join(", "),
            }
            .into());
        }
        st.groups.remove(id).ok_or_else(|| NetError::NotFound {
            kind: "security group",
            id: id.into(),
        })?;
        self.refresh_rules(&st, &[id.to_string()], true)?;
        self.save(&st)
    }

    pub fn security_group(&self, id: &str) -> Option<SecurityGroup> {
        self.lock().groups.get(id).cloned()
    }

    /// Re-applies the firewall of every live instance whose rules reference one of `groups`
    /// (their membership changed) and, with `members`, of every instance in one of them (their
    /// rules changed).
    pub(super) fn refresh_rules(
        &self,
        st: &State,
        groups: &[String],
        members: bool,
    ) -> Result<(), RuntimeError> {
        let addrs = st.members();
        for inst in st.live() {
            let own: Vec<&SecurityGroup> = inst
                .security_groups
                .iter()
                .filter_map(|g| st.groups.get(g))
                .collect();
            let affected = (members && inst.security_groups.iter().any(|g| groups.contains(g)))
                || own.iter().any(|g| {
                    g.ingress
                        .iter()
                        .chain(&g.egress)
                        .any(|r| matches!(&r.peer, net::Peer::Group(x) if groups.contains(x)))
                });
            if affected {
                let resolver = st
                    .vpcs
                    .get(&inst.vpc_id)
                    .map(|v| super::resolver_address(v.cidr));
                self.inner.kernel.nft_apply(
                    Some(&self.netns_name(&inst.id)),
                    &net::instance_rules(&own, &addrs, resolver),
                )?;
            }
        }
        Ok(())
    }

    /// Runs `ip -batch` commands in a VPC's router namespace (routes, diagnostics).
    pub fn router_ip(&self, vpc_id: &str, script: &str) -> Result<(), RuntimeError> {
        let ns = self
            .lock()
            .vpcs
            .get(vpc_id)
            .map(|v| v.netns.clone())
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: vpc_id.into(),
            })?;
        Ok(self.inner.kernel.ip_batch(Some(&ns), script)?)
    }

    /// Opens a TCP connection from inside a VPC's router namespace (for the load balancer and
    /// the bastion, which live in the daemon).
    pub fn connect_from_vpc(
        &self,
        vpc_id: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, RuntimeError> {
        let ns = self
            .lock()
            .vpcs
            .get(vpc_id)
            .map(|v| v.netns.clone())
            .ok_or_else(|| NetError::NotFound {
                kind: "VPC",
                id: vpc_id.into(),
            })?;
        Ok(self.inner.kernel.tcp_connect_in(&ns, addr, timeout)?)
    }

    /// Opens a TCP connection from inside an instance's network namespace, as the instance would.
    pub fn connect_from_instance(
        &self,
        id: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, RuntimeError> {
        if !self.lock().instances.contains_key(id) {
            return Err(RuntimeError::NoInstance(id.into()));
        }
        Ok(self
            .inner
            .kernel
            .tcp_connect_in(&self.netns_name(id), addr, timeout)?)
    }
}
