//! `spindle lb list|describe|targets|health|metrics`.

use crate::cli::LbCmd;
use crate::context::{api_err, Context};
use crate::output;
use anyhow::Result;
use spindle_model::lb::{LbCounts, LbMetricSeries, LoadBalancerInfo, TargetHealthInfo};

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

pub fn run(cx: &Context, cmd: LbCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        LbCmd::List => {
            let list = c.list_load_balancers(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|l| {
                    let ports: Vec<String> = l
                        .listeners
                        .iter()
                        .map(|x| format!("{}:{}", x.protocol, x.port))
                        .collect();
                    vec![
                        l.name.clone(),
                        l.address.clone(),
                        ports.join(","),
                        l.dns_name.clone(),
                        l.stack.clone(),
                    ]
                })
                .collect();
            output::table(
                &["NAME", "ADDRESS", "LISTENERS", "DNS NAME", "STACK"],
                &rows,
            );
        }
        LbCmd::Describe { name } => {
            let l: LoadBalancerInfo = c.load_balancer(&account, &name, "").map_err(api_err)?;
            if cx.json() {
                output::json(&l);
                return Ok(());
            }
            output::fields(&[
                ("name", l.name.clone()),
                ("arn", l.arn.clone()),
                ("dns name", l.dns_name.clone()),
                ("address", l.address.clone()),
                ("vpc", l.vpc_id.clone().unwrap_or_else(|| "-".into())),
                ("stack", format!("{} ({})", l.stack, l.logical_id)),
            ]);
            println!();
            let rows: Vec<Vec<String>> = l
                .listeners
                .iter()
                .map(|x| {
                    vec![
                        x.protocol.clone(),
                        x.address.clone(),
                        x.rules.to_string(),
                        x.arn.clone(),
                    ]
                })
                .collect();
            output::table(&["PROTOCOL", "BOUND", "RULES", "LISTENER"], &rows);
            println!();
            let rows: Vec<Vec<String>> = l
                .target_groups
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.algorithm.clone(),
                        t.tenant_key.clone().unwrap_or_else(|| "-".into()),
                        t.arn.clone(),
                    ]
                })
                .collect();
            output::table(&["TARGET GROUP", "ALGORITHM", "TENANT KEY", "ARN"], &rows);
        }
        LbCmd::Targets { name } | LbCmd::Health { name } if cx.json() => {
            let t: Vec<TargetHealthInfo> = c
                .load_balancer(&account, &name, "/targets")
                .map_err(api_err)?;
            output::json(&t);
        }
        LbCmd::Targets { name } => {
            let t: Vec<TargetHealthInfo> = c
                .load_balancer(&account, &name, "/targets")
                .map_err(api_err)?;
            let rows: Vec<Vec<String>> = t
                .iter()
                .map(|t| {
                    vec![
                        t.target_group.clone(),
                        t.id.clone(),
                        t.port.to_string(),
                        t.address.clone(),
                    ]
                })
                .collect();
            output::table(&["TARGET GROUP", "ID", "PORT", "ADDRESS"], &rows);
        }
        LbCmd::Health { name } => {
            let t: Vec<TargetHealthInfo> = c
                .load_balancer(&account, &name, "/targets")
                .map_err(api_err)?;
            let rows: Vec<Vec<String>> = t
                .iter()
                .map(|t| {
                    vec![
                        t.target_group.clone(),
                        format!("{}:{}", t.id, t.port),
                        t.state.clone(),
                        t.in_flight.to_string(),
                    ]
                })
                .collect();
            output::table(&["TARGET GROUP", "TARGET", "STATE", "IN FLIGHT"], &rows);
        }
        LbCmd::Metrics { name, seconds } => {
            let mut m: Vec<LbMetricSeries> = c
                .load_balancer(&account, &name, "/metrics")
                .map_err(api_err)?;
            for s in &mut m {
                let keep = s.seconds.len().saturating_sub(seconds);
                s.seconds.drain(..keep);
            }
            if cx.json() {
                output::json(&m);
                return Ok(());
            }
            let mut rows = Vec::new();
            for s in &m {
                let series: Vec<String> = s
                    .labels
                    .iter()
                    .filter(|(k, _)| k.as_str() != "lb")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let row = |second: String, c: &LbCounts, p50: Option<f64>, p99: Option<f64>| {
                    vec![
                        series.join(" "),
                        second,
                        c.requests.to_string(),
                        (c.errors_5xx + c.timeouts + c.connect_errors + c.bad_responses)
                            .to_string(),
                        c.requests.saturating_sub(c.refused).to_string(),
                        c.queued.to_string(),
                        c.refused.to_string(),
                        c.max_in_flight.to_string(),
                        ms(p50),
                        ms(p99),
                    ]
                };
                for x in &s.seconds {
                    rows.push(row(
                        x.unix_second.to_string(),
                        &x.counts,
                        x.p50_ms,
                        x.p99_ms,
                    ));
                }
                // A series younger than a second has no whole second yet: show its totals.
                if s.seconds.is_empty() {
                    rows.push(row("total".into(), &s.totals, None, None));
                }
            }
            output::table(
                &[
                    "SERIES",
                    "SECOND",
                    "REQUESTS",
                    "5XX",
                    "ADMITTED",
                    "QUEUED",
                    "REFUSED",
                    "MAX IN FLIGHT",
                    "P50 MS",
                    "P99 MS",
                ],
                &rows,
            );
            // Under tenant isolation each target has its own adaptive limit and queues.
            let admission: Vec<Vec<String>> = m
                .iter()
                .filter_map(|s| {
                    let a = s.admission?;
                    let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                    Some(vec![
                        label("target_group"),
                        label("target"),
                        a.limit.to_string(),
                        a.in_flight.to_string(),
                        a.queued.to_string(),
                    ])
                })
                .collect();
            if !admission.is_empty() {
                println!();
                output::table(
                    &["TARGET GROUP", "TARGET", "LIMIT", "IN FLIGHT", "QUEUED"],
                    &admission,
                );
            }
        }
    }
    Ok(())
}
