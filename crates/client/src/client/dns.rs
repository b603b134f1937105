//! Hosted zone calls (`/v1/accounts/{account}/dns`).

use super::{seg, Client, ClientError};
use spindle_model::dns::{DnsAnswer, HostedZoneInfo, RecordSetInfo};

impl Client {
    pub fn dns_zones(&self, account: &str) -> Result<Vec<HostedZoneInfo>, ClientError> {
        self.get(&format!("/v1/accounts/{}/dns/zones", seg(account)))
    }

    /// A zone's record sets; `zone` is its id or its name.
    pub fn dns_records(
        &self,
        account: &str,
        zone: &str,
    ) -> Result<Vec<RecordSetInfo>, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/dns/zones/{}/records",
            seg(account),
            seg(zone)
        ))
    }

    /// What the DNS server answers for `name` and `rtype`.
    pub fn dns_test(
        &self,
        account: &str,
        name: &str,
        rtype: &str,
    ) -> Result<DnsAnswer, ClientError> {
        self.get(&format!(
            "/v1/accounts/{}/dns/test?name={}&type={}",
            seg(account),
            seg(name),
            seg(rtype)
        ))
    }
}
