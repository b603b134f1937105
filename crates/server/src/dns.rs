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
    r.set_access(Arc::new(StoreAccess {
        store: store.clone(),
    }));
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

/// Cross-account writes into a hosted zone: allowed by the zone's grants (an account named by
/// name or id), refused ones written to the audit log as `denied`.
pub struct StoreAccess {
    pub store: Arc<Store>,
}

impl StoreAccess {
    fn account_id(&self, r: &str) -> Option<spindle_model::AccountId> {
        let r = spindle_model::ids::AccountRef::parse(r).ok()?;
        self.store.find_account(&r).ok().flatten().map(|a| a.id)
    }
}

impl spindle_providers::ZoneAccess for StoreAccess {
    fn may_write(
        &self,
        writer: &spindle_model::AccountId,
        zone: &spindle_dns::ZoneData,
        name: &str,
    ) -> bool {
        zone.grants.iter().any(|g| {
            g.names.iter().any(|p| spindle_dns::name_matches(p, name))
                && self.account_id(&g.account).as_ref() == Some(writer)
        })
    }

    fn refused(
        &self,
        writer: &spindle_model::AccountId,
        zone: &spindle_dns::ZoneData,
        name: &str,
        reason: &str,
    ) {
        let rec = spindle_store::AuditRecord {
            time: time::OffsetDateTime::now_utc(),
            request_id: format!("dns-{}", hex::encode(rand::random::<[u8; 8]>())),
            access_key_id: None,
            principal: Some("stack".into()),
            account_id: Some(writer.clone()),
            target_account_id: spindle_model::AccountId::parse(&zone.owner).ok(),
            action: "dns:ChangeResourceRecordSets".into(),
            target: format!(
                "account/{}/dns/zones/{}/records/{name}",
                zone.owner, zone.id
            ),
            result: "denied",
            status: 403,
            error_code: Some("AccessDenied".into()),
        };
        if let Err(e) = self.store.append_audit(&rec) {
            tracing::error!(error = %crate::api::error_chain(&e), %reason, "a refused DNS change could not be audited");
        }
    }
}
