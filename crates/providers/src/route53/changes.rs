//! Record changes asked for outside stacks: Route 53's `ChangeResourceRecordSets` through the
//! AWS-compatible endpoint. The same zone lock, cross-account check (with its audited
//! refusal), alias resolution and all-or-nothing batch as the stack resources use.

use spindle_dns::{Change, DnsError, Problem};
use spindle_model::AccountId;
use spindle_stack::ProviderError;

use super::Route53;
use crate::route53_spec::{AliasSpec, SetSpec};

/// Why a change batch was not applied. Nothing changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum RecordChangeError {
    #[error("no hosted zone with id `{id}`")]
    NoSuchZone { id: String },
    /// The account may not write one of the names (already reported to the audit log).
    #[error("{reason}")]
    Denied { reason: String },
    /// The batch breaks the zone's rules; every problem with its position.
    #[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Refused { problems: Vec<Problem> },
    #[error("{detail}")]
    Failed { detail: String },
}

impl Route53 {
    /// Applies `batch` to zone `zone_id` as `account`, all or nothing; returns the zone's new
    /// serial. A change whose set has an alias and no values gets the alias target's
    /// address, as a template's `AliasTarget` does.
    pub async fn change_records(
        &self,
        account: &AccountId,
        zone_id: &str,
        mut batch: Vec<Change>,
    ) -> Result<u32, RecordChangeError> {
        let _g = self.lock.lock().await;
        let zone = self
            .catalog
            .snapshot()
            .zone(zone_id)
            .cloned()
            .ok_or_else(|| RecordChangeError::NoSuchZone {
                id: zone_id.to_owned(),
            })?;
        for c in &mut batch {
            let name = spindle_dns::canonical_name(&c.set.name).unwrap_or(c.set.name.clone());
            self.check_access(account, &zone, &name)
                .map_err(|e| RecordChangeError::Denied {
                    reason: match e {
                        ProviderError::InvalidRequest(r) => r,
                        other => other.to_string(),
                    },
                })?;
            if let (Some(alias), true) = (&c.set.alias, c.set.values.is_empty()) {
                let spec = SetSpec {
                    name: c.set.name.clone(),
                    rtype: c.set.rtype,
                    ttl: c.set.ttl,
                    values: Vec::new(),
                    alias: Some(AliasSpec {
                        dns_name: alias.dns_name.clone(),
                        hosted_zone_id: alias.hosted_zone_id.clone(),
                    }),
                };
                c.set = self.record_set(&spec).map_err(|e| match e {
                    ProviderError::InvalidRequest(message) => RecordChangeError::Refused {
                        problems: vec![Problem {
                            index: 0,
                            name: c.set.name.clone(),
                            rtype: c.set.rtype,
                            message,
                        }],
                    },
                    other => RecordChangeError::Failed {
                        detail: other.to_string(),
                    },
                })?;
            }
        }
        self.catalog
            .change(zone_id, &batch, &|b| self.save(b))
            .map_err(|e| match e {
                DnsError::Refused { problems, .. } => RecordChangeError::Refused { problems },
                DnsError::NoSuchZone { id } => RecordChangeError::NoSuchZone { id },
                other => RecordChangeError::Failed {
                    detail: other.to_string(),
                },
            })
    }
}
