//! `spindle dns zones|records|test`: the account's hosted zones, their record sets, and what
//! the daemon's DNS server answers for a name.

use crate::context::{api_err, Context};
use crate::output;
use anyhow::Result;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DnsCmd {
    /// The account's hosted zones (stacks create them with AWS::Route53::HostedZone)
    Zones,
    /// A zone's record sets, the SOA first
    Records {
        /// The zone's name (`twine.test`) or id (`Z…`)
        zone: String,
    },
    /// Ask the DNS server for a name, as `dig` would (Route 53's TestDNSAnswer)
    Test {
        name: String,
        /// The record type
        #[arg(long = "type", short = 't', default_value = "A")]
        rtype: String,
    },
}

pub fn run(cx: &Context, cmd: DnsCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        DnsCmd::Zones => {
            let list = c.dns_zones(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|z| {
                    vec![
                        z.name.clone(),
                        z.id.clone(),
                        if z.private { "private" } else { "public" }.into(),
                        z.serial.to_string(),
                        z.record_sets.to_string(),
                        z.comment.clone(),
                    ]
                })
                .collect();
            output::table(
                &["NAME", "ID", "TYPE", "SERIAL", "RECORD SETS", "COMMENT"],
                &rows,
            );
        }
        DnsCmd::Records { zone } => {
            let list = c.dns_records(&account, &zone).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    let mut values = r.values.join(" | ");
                    if let Some(a) = &r.alias {
                        values = format!("ALIAS {a} ({values})");
                    }
                    vec![r.name.clone(), r.rtype.clone(), r.ttl.to_string(), values]
                })
                .collect();
            output::table(&["NAME", "TYPE", "TTL", "VALUES"], &rows);
        }
        DnsCmd::Test { name, rtype } => {
            let a = c.dns_test(&account, &name, &rtype).map_err(api_err)?;
            if cx.json() {
                output::json(&a);
                return Ok(());
            }
            let mut pairs = vec![
                ("status", a.rcode.clone()),
                ("authoritative", a.authoritative.to_string()),
            ];
            for r in &a.answers {
                pairs.push(("answer", r.clone()));
            }
            for r in &a.authority {
                pairs.push(("authority", r.clone()));
            }
            output::fields(&pairs);
        }
    }
    Ok(())
}
