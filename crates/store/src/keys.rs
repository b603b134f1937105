use crate::error::conflict;
use crate::{fmt_time, json_list, parse_json_list, Store, StoreError};
use rusqlite::{OptionalExtension, Row};
use spindle_model::api::AccessKey;
use spindle_model::{AccessKeyId, AccountId};
use time::OffsetDateTime;

/// A credential as the authenticator needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: AccessKeyId,
    pub account_id: AccountId,
    pub signing_key: [u8; 32],
    pub active: bool,
    pub admin: bool,
    pub allow: Vec<String>,
    /// Unix seconds after which short-lived credentials stop working.
    pub expires_unix: Option<i64>,
    pub role_name: Option<String>,
    pub session_name: Option<String>,
}

/// What [`Store::insert_key`] needs.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    pub id: &'a AccessKeyId,
    pub account_id: &'a AccountId,
    pub signing_key: &'a [u8; 32],
    pub admin: bool,
    pub allow: &'a [String],
    pub description: &'a str,
    pub expires_unix: Option<i64>,
    pub role_name: Option<&'a str>,
    pub session_name: Option<&'a str>,
    pub source_key_id: Option<&'a AccessKeyId>,
}

fn conv<E: std::error::Error + Send + Sync + 'static>(
    i: usize,
) -> impl FnOnce(E) -> rusqlite::Error {
    move |e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

fn record(r: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let key: Vec<u8> = r.get(2)?;
    Ok(KeyRecord {
        id: AccessKeyId::parse(&r.get::<_, String>(0)?).map_err(conv(0))?,
        account_id: AccountId::parse(&r.get::<_, String>(1)?).map_err(conv(1))?,
        signing_key: key.try_into().map_err(|_| {
            rusqlite::Error::InvalidColumnType(2, "signing_key".into(), rusqlite::types::Type::Blob)
        })?,
        active: r.get::<_, String>(3)? == "Active",
        admin: r.get(4)?,
        allow: parse_json_list(&r.get::<_, String>(5)?)?,
        expires_unix: r.get(6)?,
        role_name: r.get(7)?,
        session_name: r.get(8)?,
    })
}

fn access_key(r: &Row<'_>) -> rusqlite::Result<AccessKey> {
    Ok(AccessKey {
        access_key_id: AccessKeyId::parse(&r.get::<_, String>(0)?).map_err(conv(0))?,
        account_id: AccountId::parse(&r.get::<_, String>(1)?).map_err(conv(1))?,
        status: r.get(2)?,
        created: r.get(3)?,
        revoked: r.get(4)?,
        allow: parse_json_list(&r.get::<_, String>(5)?)?,
        description: r.get(6)?,
    })
}

/// Inserts a key in `tx`: [`Store::insert_key`], and the AWS-compatible keys of `aws_keys.rs`
/// with their sealed secret in the same transaction.
pub(crate) fn insert_key_in(
    tx: &rusqlite::Transaction<'_>,
    k: &NewKey<'_>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO access_keys(id, account_id, signing_key, status, created, allow, description, admin,
                                 expires_unix, role_name, session_name, source_key_id)
         VALUES (?1, ?2, ?3, 'Active', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        rusqlite::params![
            k.id.as_str(),
            k.account_id.as_str(),
            &k.signing_key[..],
            fmt_time(now),
            json_list(k.allow),
            k.description,
            k.admin,
            k.expires_unix,
            k.role_name,
            k.session_name,
            k.source_key_id.map(|s| s.as_str()),
        ],
    )
    .map_err(conflict(|| format!("access key {}", k.id)))?;
    Ok(())
}

impl Store {
    pub fn insert_key(&self, k: &NewKey<'_>, now: OffsetDateTime) -> Result<(), StoreError> {
        self.write(|tx| insert_key_in(tx, k, now))
    }

    /// The credential for an access key id, active or not.
    pub fn get_key(&self, id: &AccessKeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, account_id, signing_key, status, admin, allow, expires_unix, role_name, session_name
                 FROM access_keys WHERE id = ?1",
            )?;
            Ok(st.query_row([id.as_str()], record).optional()?)
        })
    }

    /// The account's long-term keys (short-lived ones from role assumptions are not listed).
    pub fn list_keys(&self, account: &AccountId) -> Result<Vec<AccessKey>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, account_id, status, created, revoked, allow, description FROM access_keys
                 WHERE account_id = ?1 AND expires_unix IS NULL ORDER BY created, id",
            )?;
            let rows = st.query_map([account.as_str()], access_key)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Revokes a key of `account`. The row stays, so the audit log keeps naming it.
    pub fn revoke_key(
        &self,
        account: &AccountId,
        id: &AccessKeyId,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE access_keys SET status = 'Revoked', revoked = ?3
                 WHERE id = ?1 AND account_id = ?2 AND status = 'Active'",
                rusqlite::params![id.as_str(), account.as_str(), fmt_time(now)],
            )?;
            crate::expect_changed(n, || format!("active access key {id}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{now, open};
    use spindle_model::AccountName;

    #[test]
    fn insert_get_revoke() {
        let (_d, s) = open();
        let a = s
            .create_account(&AccountName::parse("dev").unwrap(), "", false, now())
            .unwrap();
        let id = AccessKeyId::parse("AKIAABCDEFGHIJKLMNOP").unwrap();
        let allow = vec!["*".to_string()];
        let nk = NewKey {
            id: &id,
            account_id: &a.id,
            signing_key: &[3; 32],
            admin: false,
            allow: &allow,
            description: "ci",
            expires_unix: None,
            role_name: None,
            session_name: None,
            source_key_id: None,
        };
        s.insert_key(&nk, now()).unwrap();
        assert!(matches!(
            s.insert_key(&nk, now()),
            Err(StoreError::Conflict { .. })
        ));
        let r = s.get_key(&id).unwrap().unwrap();
        assert!(r.active && r.signing_key == [3; 32] && r.allow == allow);
        assert_eq!(s.list_keys(&a.id).unwrap().len(), 1);
        s.revoke_key(&a.id, &id, now()).unwrap();
        assert!(!s.get_key(&id).unwrap().unwrap().active);
        assert!(matches!(
            s.revoke_key(&a.id, &id, now()),
            Err(StoreError::NotFound { .. })
        ));
    }
}
