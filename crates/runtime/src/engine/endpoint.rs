//! Connect endpoints (`AWS::EC2::InstanceConnectEndpoint`): an address of their own in a
//! subnet, held by the VPC's router on its bridge, from which the daemon's SSH bastion opens
//! its upstream connections. The address is a member of the endpoint's security groups, so a
//! target's rule naming one of them (`SourceSecurityGroupId`) admits it and nothing else does;
//! the routers' forwarding policy (own CIDR and direct peers only) decides which VPCs it
//! reaches at all.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::NetError;

use super::{check_id, Runtime, RuntimeError, State};

/// A connect endpoint as the engine tracks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    /// Its address in the subnet (held by the router on `br0`).
    pub ip: Ipv4Addr,
    pub security_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// `ip -batch` in the router: the endpoint's address on the bridge (a /32, so the subnet's
/// route stays the gateway's).
pub(crate) fn endpoint_addr(verb: &str, ip: Ipv4Addr) -> String {
    format!("addr {verb} {ip}/32 dev br0\n")
}

impl State {
    /// Every group in `groups` exists and is `vpc`'s.
    pub(super) fn check_groups(&self, groups: &[String], vpc: &str) -> Result<(), NetError> {
        for g in groups {
            let sg = self.groups.get(g).ok_or_else(|| NetError::NotFound {
                kind: "security group",
                id: g.clone(),
            })?;
            if sg.vpc_id != vpc {
                return Err(NetError::WrongVpc {
                    sg: g.clone(),
                    sg_vpc: sg.vpc_id.clone(),
                    vpc: vpc.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Which VPCs an endpoint in `vpc` reaches: its own and those peered with it directly
    /// (peering is not transitive).
    pub(super) fn reachable_from(&self, vpc: &str) -> Vec<String> {
        let mut out = vec![vpc.to_string()];
        for p in self.peerings.values() {
            if p.a == vpc {
                out.push(p.b.clone());
            } else if p.b == vpc {
                out.push(p.a.clone());
            }
        }
        out
    }
}

impl Runtime {
    /// Creates an endpoint in `subnet_id`: allocates its address, puts it on the router's
    /// bridge and re-applies the rules of every instance that names one of `security_groups`.
    /// Creating an id that exists with the same subnet answers the existing endpoint.
    pub fn create_endpoint(
        &self,
        id: &str,
        subnet_id: &str,
        security_groups: &[String],
        tags: BTreeMap<String, String>,
    ) -> Result<Endpoint, RuntimeError> {
        check_id("eice", id)?;
        let mut st = self.lock();
        if let Some(e) = st.endpoints.get(id) {
            if e.subnet_id == subnet_id {
                return Ok(e.clone());
            }
            return Err(NetError::Exists {
                kind: "instance connect endpoint",
                id: id.into(),
            }
            .into());
        }
        let vpc = st
            .find_subnet(subnet_id)
            .ok_or_else(|| NetError::NotFound {
                kind: "subnet",
                id: subnet_id.into(),
            })?
            .clone();
        st.check_groups(security_groups, &vpc.id)?;
        let ip = st
            .vpcs
            .get_mut(&vpc.id)
            .and_then(|v| v.subnets.get_mut(subnet_id))
            .expect("found above")
            .allocate()?;
        let ep = Endpoint {
            id: id.into(),
            vpc_id: vpc.id.clone(),
            subnet_id: subnet_id.into(),
            ip,
            security_groups: security_groups.to_vec(),
            tags,
        };
        // On record before the address exists: a kill after this leaves a record whose
        // delete removes an address that may not be there (`addr del` of a missing address
        // is tolerated below).
        st.endpoints.insert(id.into(), ep.clone());
        let undo = |st: &mut State| {
            st.endpoints.remove(id);
            st.free_ip(subnet_id, ip);
        };
        if let Err(e) = self.save(&st) {
            undo(&mut st);
            return Err(e);
        }
        let k = &self.inner.kernel;
        let res = k
            .ip_batch(Some(&vpc.netns), &endpoint_addr("add", ip))
            .map_err(RuntimeError::from)
            .and_then(|()| self.refresh_rules(&st, security_groups, false));
        if let Err(e) = res {
            let _ = k.ip_batch(Some(&vpc.netns), &endpoint_addr("del", ip));
            undo(&mut st);
            let _ = self.refresh_rules(&st, security_groups, false);
            let _ = self.save(&st);
            return Err(e);
        }
        Ok(ep)
    }

    /// Deletes an endpoint: its address leaves the bridge and its groups' referencing rules
    /// lose it.
    pub fn delete_endpoint(&self, id: &str) -> Result<(), RuntimeError> {
        let mut st = self.lock();
        let ep = st
            .endpoints
            .get(id)
            .cloned()
            .ok_or_else(|| NetError::NotFound {
                kind: "instance connect endpoint",
                id: id.into(),
            })?;
        if let Some(vpc) = st.vpcs.get(&ep.vpc_id) {
            // A missing address (a create killed before it was added) is not an error.
            let _ = self
                .inner
                .kernel
                .ip_batch(Some(&vpc.netns), &endpoint_addr("del", ep.ip));
        }
        st.endpoints.remove(id);
        st.free_ip(&ep.subnet_id, ep.ip);
        self.refresh_rules(&st, &ep.security_groups, false)?;
        self.save(&st)
    }

    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.lock().endpoints.values().cloned().collect()
    }

    /// The VPCs an endpoint reaches through its router: its own and the directly peered
    /// ones. Whether a given port answers is then up to the target's security groups.
    pub fn endpoint_reach(&self, id: &str) -> Option<Vec<String>> {
        let st = self.lock();
        let ep = st.endpoints.get(id)?;
        Some(st.reachable_from(&ep.vpc_id))
    }

    /// Opens a TCP connection from an endpoint's address inside its VPC's router namespace:
    /// the target sees the endpoint's address (a member of its groups) as the source.
    pub fn connect_from_endpoint(
        &self,
        id: &str,
        addr: &str,
        timeout: Duration,
    ) -> Result<TcpStream, RuntimeError> {
        let (ns, ip) = {
            let st = self.lock();
            let ep = st.endpoints.get(id).ok_or_else(|| NetError::NotFound {
                kind: "instance connect endpoint",
                id: id.into(),
            })?;
            let ns = st
                .vpcs
                .get(&ep.vpc_id)
                .map(|v| v.netns.clone())
                .ok_or_else(|| NetError::NotFound {
                    kind: "VPC",
                    id: ep.vpc_id.clone(),
                })?;
            (ns, ep.ip)
        };
        Ok(self
            .inner
            .kernel
            .tcp_connect_in_from(&ns, ip, addr, timeout)?)
    }
}
