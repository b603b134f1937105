//! Each VPC's DNS resolver (AWS's "AmazonProvidedDNS") at the VPC CIDR's base address + 2.
//!
//! The runtime owns the address and the sockets; the daemon answers. The address goes on the
//! loopback of the VPC's router namespace (as `169.254.169.254` does for the metadata
//! service), and the runtime binds UDP and TCP port 53 on it *inside* that namespace and hands
//! both sockets to the [`VpcResolver`] hook the daemon registered, which answers from its
//! zones in-process. A socket keeps the namespace it was created in, so nothing is routed,
//! DNATed or proxied: an instance reaches base + 2 through its gateway, or on-link when its
//! subnet holds that address (the router answers ARP for all its local addresses). The
//! address is reserved in the subnet that holds it, so no instance gets it.
//!
//! Across a daemon restart the address stays in the namespace with the VPC; the new daemon
//! binds again when it registers its hook ([`Runtime::set_vpc_resolver`]). A VPC's
//! `EnableDnsSupport: false` ([`Runtime::set_dns_support`], saved with the VPC) closes its
//! sockets: a query then gets ICMP port unreachable, as a VPC without DNS support answers
//! nothing. `EnableDnsHostnames` ([`Runtime::set_dns_hostnames`], also saved) is handed to
//! the hook with the CIDR, so the daemon answers the instances' host names; a change reaches
//! a running resolver through [`VpcResolver::update`], with no restart of its sockets.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::Arc;

use crate::cidr::Ipv4Net;
use crate::net::NetError;

use super::{Runtime, RuntimeError, Vpc};

/// What the daemon's side is told about the VPC whose resolver it serves.
#[derive(Debug, Clone, Copy)]
pub struct ResolverVpc<'a> {
    pub id: &'a str,
    pub cidr: Ipv4Net,
    /// `EnableDnsHostnames`: answer the instances' host names too.
    pub hostnames: bool,
}

impl<'a> ResolverVpc<'a> {
    fn of(vpc: &'a Vpc) -> Self {
        ResolverVpc {
            id: &vpc.id,
            cidr: vpc.cidr,
            hostnames: vpc.dns_hostnames,
        }
    }
}

/// The daemon's side: starts answering DNS for one VPC on sockets bound inside its router.
pub trait VpcResolver: Send + Sync {
    /// Serves `vpc`'s resolver on `udp` and `tcp` until the returned guard is dropped.
    fn serve(
        &self,
        vpc: &ResolverVpc<'_>,
        udp: UdpSocket,
        tcp: TcpListener,
    ) -> Result<Box<dyn Send>, String>;

    /// The settings of `vpc`, whose resolver this hook serves, changed.
    fn update(&self, vpc: &ResolverVpc<'_>);
}

/// The resolver's address in a VPC: its CIDR's base + 2 (VPCs are /16 to /28).
pub fn resolver_address(cidr: Ipv4Net) -> Ipv4Addr {
    cidr.nth(2).expect("a VPC CIDR holds at least 16 addresses")
}

impl Runtime {
    /// Registers the daemon's resolver and starts it in every VPC with DNS support (a
    /// restarted daemon gets its VPCs' resolvers back this way). Returns the VPCs whose
    /// resolver could not start, with why.
    pub fn set_vpc_resolver(&self, resolver: Arc<dyn VpcResolver>) -> Vec<(String, RuntimeError)> {
        *self.inner.resolver.lock().unwrap() = Some(resolver);
        self.vpcs()
            .iter()
            .filter_map(|v| self.start_resolver(v).err().map(|e| (v.id.clone(), e)))
            .collect()
    }

    /// Turns a VPC's resolver on or off (`EnableDnsSupport`); saved with the VPC.
    pub fn set_dns_support(&self, vpc_id: &str, enabled: bool) -> Result<(), RuntimeError> {
        let (vpc, _) = self.set_vpc_flag(vpc_id, enabled, |v| &mut v.dns_support)?;
        if enabled {
            self.start_resolver(&vpc)
        } else {
            self.stop_resolver(vpc_id);
            Ok(())
        }
    }

    /// Turns the instances' host names in a VPC's resolver on or off (`EnableDnsHostnames`);
    /// saved with the VPC, and handed to the running resolver.
    pub fn set_dns_hostnames(&self, vpc_id: &str, enabled: bool) -> Result<(), RuntimeError> {
        let (vpc, changed) = self.set_vpc_flag(vpc_id, enabled, |v| &mut v.dns_hostnames)?;
        if changed && self.resolver_running(vpc_id) {
            if let Some(hook) = self.inner.resolver.lock().unwrap().clone() {
                hook.update(&ResolverVpc::of(&vpc));
            }
        }
        Ok(())
    }

    /// Sets the VPC setting `flag` picks and saves it if it changed (undone in memory if the
    /// save fails); returns the VPC and whether it changed.
    fn set_vpc_flag(
        &self,
        vpc_id: &str,
        enabled: bool,
        flag: fn(&mut Vpc) -> &mut bool,
    ) -> Result<(Vpc, bool), RuntimeError> {
        let mut st = self.lock();
        let vpc = st.vpcs.get_mut(vpc_id).ok_or_else(|| NetError::NotFound {
            kind: "VPC",
            id: vpc_id.into(),
        })?;
        let changed = *flag(vpc) != enabled;
        *flag(vpc) = enabled;
        let saved = vpc.clone();
        if changed {
            if let Err(e) = self.save(&st) {
                if let Some(v) = st.vpcs.get_mut(vpc_id) {
                    *flag(v) = !enabled;
                }
                return Err(e);
            }
        }
        Ok((saved, changed))
    }

    /// Whether `vpc_id`'s resolver is answering now.
    pub fn resolver_running(&self, vpc_id: &str) -> bool {
        self.inner.resolvers.lock().unwrap().contains_key(vpc_id)
    }

    /// Starts `vpc`'s resolver if a hook is registered, the VPC has DNS support and it isn't
    /// running yet.
    pub(super) fn start_resolver(&self, vpc: &Vpc) -> Result<(), RuntimeError> {
        let Some(hook) = self.inner.resolver.lock().unwrap().clone() else {
            return Ok(());
        };
        if !vpc.dns_support || self.resolver_running(&vpc.id) {
            return Ok(());
        }
        let addr = resolver_address(vpc.cidr);
        {
            let mut st = self.lock();
            // A VPC made before the resolver existed may have given its address away.
            if let Some(i) = st
                .live()
                .find(|i| i.vpc_id == vpc.id && i.private_ip == addr)
            {
                return Err(RuntimeError::Resolver {
                    vpc: vpc.id.clone(),
                    detail: format!(
                        "instance {} holds {addr}; terminate it, then set DNS support again",
                        i.id
                    ),
                });
            }
            // And its subnets don't reserve it yet.
            let mut changed = false;
            if let Some(v) = st.vpcs.get_mut(&vpc.id) {
                for subnet in v.subnets.values_mut() {
                    changed |= subnet.reserve(addr);
                }
            }
            if changed {
                self.save(&st)?;
            }
        }
        let mut running = self.inner.resolvers.lock().unwrap();
        if running.contains_key(&vpc.id) {
            return Ok(());
        }
        let k = &self.inner.kernel;
        // `replace` is idempotent: the address may be there from before a restart.
        k.ip_batch(
            Some(&vpc.netns),
            &format!("addr replace {addr}/32 dev lo\n"),
        )?;
        let at = format!("{addr}:53");
        let udp = k.udp_bind_in(&vpc.netns, &at)?;
        let tcp = k.tcp_listen_in(&vpc.netns, &at)?;
        let guard = hook
            .serve(&ResolverVpc::of(vpc), udp, tcp)
            .map_err(|detail| RuntimeError::Resolver {
                vpc: vpc.id.clone(),
                detail,
            })?;
        running.insert(vpc.id.clone(), guard);
        Ok(())
    }

    /// Stops `vpc_id`'s resolver (its sockets close); a no-op when it isn't running.
    pub(super) fn stop_resolver(&self, vpc_id: &str) {
        let guard = self.inner.resolvers.lock().unwrap().remove(vpc_id);
        drop(guard);
    }
}
