//! What a Route 53 alias record needs of the load balancers: the address behind a `DNSName`.

use std::net::IpAddr;

use super::{dns_name, Elb};

impl Elb {
    /// The address the load balancer whose `DNSName` is `name` (case-insensitive, a trailing
    /// dot allowed) listens on, or `None` if no load balancer has that name.
    pub fn address_of_dns_name(&self, name: &str) -> Option<IpAddr> {
        let want = name.trim_end_matches('.').to_ascii_lowercase();
        let view = self.view.lock().unwrap_or_else(|p| p.into_inner());
        view.values()
            .find(|v| dns_name(&v.rec.name, &v.arn, &v.rec.region) == want)
            .map(|v| v.rec.address.unwrap_or(IpAddr::from([127, 0, 0, 1])))
    }
}
