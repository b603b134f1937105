//! The daemon's DNS parts: the hosted zones kept in the store (`route53` in `engine_state`)
//! and the authoritative server on `--dns-listen`.

use std::sync::Arc;

use spindle_providers::{Elb, Route53};
use spindle_store::Store;

use crate::engine_state::{SqlDoc, ROUTE53};
use crate::{ServerConfig, ServerError};

/// The hosted zones as the last start left them; alias records resolve through `elb`.
pub fn open(store: &Arc<Store>, elb: &Arc<Elb>) -> Result<Arc<Route53>, ServerError> {
    let r = Route53::open_with(Some(SqlDoc::arc(store, ROUTE53)))
        .map_err(|source| ServerError::Dns { source })?;
    r.set_elb(elb.clone());
    Ok(r)
}

/// Binds the DNS server's sockets, if configured. The default address being taken (another
/// daemon, an mDNS responder) is logged and the daemon runs without DNS; an address asked
/// for must bind.
pub async fn bind(config: &ServerConfig) -> Result<Option<spindle_dns::Bound>, ServerError> {
    let Some(addr) = config.dns_listen else {
        return Ok(None);
    };
    match spindle_dns::bind(addr).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if config.dns_optional => {
            tracing::error!(error = %crate::api::error_chain(&e), "no DNS server: the default address is taken (choose one with --dns-listen)");
            Ok(None)
        }
        Err(source) => Err(ServerError::DnsBind { addr, source }),
    }
}
