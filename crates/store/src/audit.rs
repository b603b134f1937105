//! The append-only audit log. Rows can't be updated or deleted: triggers in the schema refuse.

use crate::{Store, StoreError};
use rusqlite::Row;
use spindle_model::api::AuditEvent;
use spindle_model::AccountId;
use time::OffsetDateTime;

/// One call to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub time: OffsetDateTime,
    pub request_id: String,
    pub access_key_id: Option<String>,
    pub principal: Option<String>,
    pub account_id: Option<AccountId>,
    pub target_account_id: Option<AccountId>,
    pub action: String,
    pub target: String,
    pub result: &'static str,
    pub status: u16,
    pub error_code: Option<String>,
}

/// Which records to read. `account`, when set, selects records whose caller or target is that
/// account.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub account: Option<AccountId>,
    pub since: Option<OffsetDateTime>,
    pub after_seq: Option<i64>,
    pub limit: u32,
}

fn event(r: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let acct = |i: usize| -> rusqlite::Result<Option<AccountId>> {
        r.get::<_, Option<String>>(i)?
            .map(|s| AccountId::parse(&s))
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    i,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })
    };
    let ms: i64 = r.get(1)?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Integer, Box::new(e))
    })?;
    Ok(AuditEvent {
        seq: r.get(0)?,
        time: crate::fmt_time(t),
        request_id: r.get(2)?,
        access_key_id: r.get(3)?,
        principal: r.get(4)?,
        account_id: acct(5)?,
        target_account_id: acct(6)?,
        action: r.get(7)?,
        target: r.get(8)?,
        result: r.get(9)?,
        status: r.get(10)?,
        error_code: r.get(11)?,
    })
}

pub(crate) fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn insert_audit(
    tx: &rusqlite::Transaction<'_>,
    rec: &AuditRecord,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO audit(time_ms, request_id, access_key_id, principal, account_id, target_account_id,
                   action, target, result, status, error_code)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(rusqlite::params![
        unix_ms(rec.time),
        rec.request_id,
        rec.access_key_id,
        rec.principal,
        rec.account_id.as_ref().map(|a| a.as_str()),
        rec.target_account_id.as_ref().map(|a| a.as_str()),
        rec.action,
        rec.target,
        rec.result,
        rec.status,
        rec.error_code,
    ])?;
    Ok(())
}

impl Store {
    /// Appends one record (outside any [`crate::AuditScope`]: the record is not a mutation).
    pub fn append_audit(&self, rec: &AuditRecord) -> Result<(), StoreError> {
        self.write_unscoped(|tx| insert_audit(tx, rec))
    }

    /// Records in order of `seq`, oldest first, at most `filter.limit`.
    pub fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, time_ms, request_id, access_key_id, principal, account_id, target_account_id,
                        action, target, result, status, error_code
                 FROM audit
                 WHERE (?1 IS NULL OR account_id = ?1 OR target_account_id = ?1)
                   AND time_ms >= ?2 AND seq > ?3
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = st
                .query_map(
                    rusqlite::params![
                        filter.account.as_ref().map(|a| a.as_str()),
                        filter.since.map(unix_ms).unwrap_or(i64::MIN),
                        filter.after_seq.unwrap_or(0),
                        filter.limit,
                    ],
                    event,
                )?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Tries to change the audit log behind the API's back; used by tests to show it refuses.
    #[doc(hidden)]
    pub fn try_tamper_audit(&self) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("DELETE FROM audit", [])?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{now, open};

    #[test]
    fn append_query_and_refuse_tampering() {
        let (_d, s) = open();
        let (dev, prod) = crate::test_util::dev_and_prod(&s);
        let rec = |acct: &AccountId, target: Option<&AccountId>, secs: i64| AuditRecord {
            time: now() + time::Duration::seconds(secs),
            request_id: "r".into(),
            access_key_id: None,
            principal: None,
            account_id: Some(acct.clone()),
            target_account_id: target.cloned(),
            action: "param:Get".into(),
            target: "x".into(),
            result: "denied",
            status: 404,
            error_code: Some("NotFound".into()),
        };
        s.append_audit(&rec(&dev.id, None, 0)).unwrap();
        s.append_audit(&rec(&dev.id, Some(&prod.id), 10)).unwrap();
        s.append_audit(&rec(&prod.id, None, 20)).unwrap();
        let q = |account: Option<&AccountId>, since: Option<i64>| {
            s.query_audit(&AuditFilter {
                account: account.cloned(),
                since: since.map(|x| now() + time::Duration::seconds(x)),
                after_seq: None,
                limit: 100,
            })
            .unwrap()
            .len()
        };
        assert_eq!(q(None, None), 3);
        assert_eq!(q(Some(&dev.id), None), 2);
        assert_eq!(q(Some(&prod.id), None), 2);
        assert_eq!(q(None, Some(15)), 1);
        let err = s.try_tamper_audit().unwrap_err();
        assert!(format!("{:?}", err).contains("append-only"), "{err:?}");
        assert_eq!(q(None, None), 3);
    }
}
