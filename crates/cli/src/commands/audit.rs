//! `spindle audit`.

use crate::cli::AuditArgs;
use crate::context::{api_err, parse_duration, Context};
use crate::output;
use anyhow::Result;

pub fn run(cx: &Context, a: &AuditArgs) -> Result<()> {
    let since = match &a.since {
        None => None,
        Some(s) if s.contains('T') => Some(s.clone()),
        Some(s) => {
            let secs = parse_duration(s)?;
            let t = time::OffsetDateTime::now_utc()
                - time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX / 2));
            Some(t.format(&time::format_description::well_known::Rfc3339)?)
        }
    };
    let mut events = cx
        .client()?
        .audit(cx.account_flag(), since.as_deref(), None, Some(a.limit))
        .map_err(api_err)?;
    if let Some(kind) = &a.kind {
        // `ssh` is the bastion's service; its actions are `bastion:…`.
        let service = if kind == "ssh" {
            "bastion"
        } else {
            kind.as_str()
        };
        events.retain(|e| e.action.split(':').next() == Some(service));
    }
    if cx.json() {
        output::json(&events);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.time.clone(),
                e.account_id
                    .as_ref()
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "-".into()),
                e.access_key_id.clone().unwrap_or_else(|| "-".into()),
                e.action.clone(),
                e.target.clone(),
                match &e.error_code {
                    Some(c) => format!("{} {} {c}", e.result, e.status),
                    None => format!("{} {}", e.result, e.status),
                },
                e.request_id.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "TIME", "ACCOUNT", "KEY", "ACTION", "TARGET", "RESULT", "REQUEST",
        ],
        &rows,
    );
    Ok(())
}
