//! The daemon's half of each VPC's DNS resolver: the runtime binds base + 2 port 53 inside
//! the VPC's router namespace (`spindle_runtime`'s `engine/resolver.rs`) and hands the
//! sockets here; they are served from the same catalog as the public listener, through the
//! VPC's view (its private zones first, then the public ones), and with `EnableDnsHostnames`
//! the instances' host names in the region's domain (`ec2.internal` for us-east-1).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use spindle_dns::{Catalog, HostnamesCell, View, VpcHostnames};
use spindle_runtime::{ResolverVpc, Runtime, VpcResolver};

/// Serves VPC resolvers on the daemon's tokio runtime.
struct Resolvers {
    catalog: Arc<Catalog>,
    handle: tokio::runtime::Handle,
    /// Each served VPC's host names, which [`VpcResolver::update`] changes in place.
    hostnames: Cells,
}

type Cells = Arc<Mutex<HashMap<String, HostnamesCell>>>;

/// A running resolver: dropping it stops the server and forgets its host names.
struct Served {
    _server: spindle_dns::DnsHandle,
    vpc: String,
    cells: Cells,
}

impl Drop for Served {
    fn drop(&mut self) {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.remove(&self.vpc);
    }
}

/// `vpc`'s host names, if it has them turned on.
fn hostnames(vpc: &ResolverVpc<'_>) -> Option<VpcHostnames> {
    if !vpc.hostnames {
        return None;
    }
    let domain = VpcHostnames::domain_for(crate::stacks::REGION);
    VpcHostnames::new(&domain, vpc.cidr.addr(), vpc.cidr.prefix())
}

impl VpcResolver for Resolvers {
    fn serve(
        &self,
        vpc: &ResolverVpc<'_>,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    ) -> Result<Box<dyn Send>, String> {
        // The runtime may call from any thread (a provider's blocking task, a request).
        let _rt = self.handle.enter();
        let cell = HostnamesCell::default();
        cell.set(hostnames(vpc));
        let bound = spindle_dns::Bound::from_std(udp, tcp, View::Vpc(vpc.id.to_owned()))
            .map_err(|e| crate::api::error_chain(&e))?
            .with_hostnames(cell.clone());
        let mut cells = self.hostnames.lock().unwrap_or_else(|p| p.into_inner());
        cells.insert(vpc.id.to_owned(), cell);
        Ok(Box::new(Served {
            _server: bound.serve(self.catalog.clone()),
            vpc: vpc.id.to_owned(),
            cells: self.hostnames.clone(),
        }))
    }

    fn update(&self, vpc: &ResolverVpc<'_>) {
        let cells = self.hostnames.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = cells.get(vpc.id) {
            cell.set(hostnames(vpc));
        }
    }
}

/// Registers the resolver hook with the runtime, which starts every VPC's resolver now (and
/// each new VPC's when it is made). Must be called on the daemon's tokio runtime.
pub fn start(rt: &Runtime, catalog: Arc<Catalog>) {
    let hook = Arc::new(Resolvers {
        catalog,
        handle: tokio::runtime::Handle::current(),
        hostnames: Cells::default(),
    });
    for (vpc, e) in rt.set_vpc_resolver(hook) {
        tracing::warn!(%vpc, error = %crate::api::error_chain(&e), "no DNS resolver in this VPC");
    }
}
