//! The daemon's half of each VPC's DNS resolver: the runtime binds base + 2 port 53 inside
//! the VPC's router namespace (`spindle_runtime`'s `engine/resolver.rs`) and hands the
//! sockets here; they are served from the same catalog as the public listener, through the
//! VPC's view (its private zones first, then the public ones).

use std::sync::Arc;

use spindle_dns::{Catalog, View};
use spindle_runtime::{Runtime, VpcResolver};

/// Serves VPC resolvers on the daemon's tokio runtime.
struct Resolvers {
    catalog: Arc<Catalog>,
    handle: tokio::runtime::Handle,
}

impl VpcResolver for Resolvers {
    fn serve(
        &self,
        vpc_id: &str,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    ) -> Result<Box<dyn Send>, String> {
        // The runtime may call from any thread (a provider's blocking task, a request).
        let _rt = self.handle.enter();
        let bound = spindle_dns::Bound::from_std(udp, tcp, View::Vpc(vpc_id.to_owned()))
            .map_err(|e| crate::api::error_chain(&e))?;
        Ok(Box::new(bound.serve(self.catalog.clone())))
    }
}

/// Registers the resolver hook with the runtime, which starts every VPC's resolver now (and
/// each new VPC's when it is made). Must be called on the daemon's tokio runtime.
pub fn start(rt: &Runtime, catalog: Arc<Catalog>) {
    let hook = Arc::new(Resolvers {
        catalog,
        handle: tokio::runtime::Handle::current(),
    });
    for (vpc, e) in rt.set_vpc_resolver(hook) {
        tracing::warn!(%vpc, error = %crate::api::error_chain(&e), "no DNS resolver in this VPC");
    }
}
