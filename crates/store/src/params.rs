//! The parameter store (SSM Parameter Store's job).

use crate::{fmt_time, Store, StoreError};
use rusqlite::{OptionalExtension, Row};
use spindle_model::api::Param;
use spindle_model::{AccountId, ParamName};
use time::OffsetDateTime;

const COLUMNS: &str = "name, type, value, version, last_modified, description";

fn param(r: &Row<'_>) -> rusqlite::Result<Param> {
    Ok(Param {
        name: ParamName::parse(&r.get::<_, String>(0)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })?,
        kind: r.get(1)?,
        value: r.get(2)?,
        version: r.get(3)?,
        last_modified: r.get(4)?,
        description: r.get(5)?,
    })
}

impl Store {
    /// Creates or (with `overwrite`) replaces a parameter; returns the new version.
    #[allow(clippy::too_many_arguments)]
    pub fn put_param(
        &self,
        account: &AccountId,
        name: &ParamName,
        kind: &str,
        value: &str,
        description: &str,
        overwrite: bool,
        token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<i64, StoreError> {
        self.write(|tx| {
            let current: Option<i64> = tx
                .query_row(
                    "SELECT version FROM params WHERE account_id = ?1 AND name = ?2",
                    [account.as_str(), name.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if current.is_some() && !overwrite {
                return Err(StoreError::Conflict { what: format!("parameter {name}") });
            }
            let version = current.unwrap_or(0) + 1;
            tx.execute(
                "INSERT INTO params(account_id, name, type, value, version, description, last_modified, token)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(account_id, name) DO UPDATE SET type = excluded.type, value = excluded.value,
                   version = excluded.version, description = excluded.description, last_modified = excluded.last_modified,
                   token = excluded.token",
                rusqlite::params![account.as_str(), name.as_str(), kind, value, version, description, fmt_time(now), token],
            )?;
            Ok(version)
        })
    }

    /// A parameter with the token of the stack operation that last wrote it.
    pub fn get_param_with_token(
        &self,
        account: &AccountId,
        name: &ParamName,
    ) -> Result<Option<(Param, Option<String>)>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS}, token FROM params WHERE account_id = ?1 AND name = ?2"
            ))?;
            Ok(st
                .query_row([account.as_str(), name.as_str()], |r| {
                    Ok((param(r)?, r.get(6)?))
                })
                .optional()?)
        })
    }

    pub fn get_param(
        &self,
        account: &AccountId,
        name: &ParamName,
    ) -> Result<Option<Param>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM params WHERE account_id = ?1 AND name = ?2"
            ))?;
            Ok(st
                .query_row([account.as_str(), name.as_str()], param)
                .optional()?)
        })
    }

    /// Parameters whose name starts with `prefix`, in name order.
    pub fn list_params(&self, account: &AccountId, prefix: &str) -> Result<Vec<Param>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM params WHERE account_id = ?1 AND substr(name, 1, length(?2)) = ?2 ORDER BY name"
            ))?;
            let rows = st.query_map([account.as_str(), prefix], param)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    pub fn delete_param(&self, account: &AccountId, name: &ParamName) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM params WHERE account_id = ?1 AND name = ?2",
                [account.as_str(), name.as_str()],
            )?;
            crate::expect_changed(n, || format!("parameter {name}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{now, open};
    use crate::StoreError;
    use spindle_model::ParamName;

    #[test]
    fn versions_and_isolation() {
        let (_d, s) = open();
        let (dev, prod) = crate::test_util::dev_and_prod(&s);
        let n = ParamName::parse("/app/db").unwrap();
        assert_eq!(
            s.put_param(&dev.id, &n, "String", "a", "", false, None, now())
                .unwrap(),
            1
        );
        assert!(matches!(
            s.put_param(&dev.id, &n, "String", "b", "", false, None, now()),
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(
            s.put_param(&dev.id, &n, "String", "b", "", true, Some("tok"), now())
                .unwrap(),
            2
        );
        assert_eq!(s.get_param(&dev.id, &n).unwrap().unwrap().value, "b");
        assert_eq!(
            s.get_param_with_token(&dev.id, &n)
                .unwrap()
                .unwrap()
                .1
                .as_deref(),
            Some("tok")
        );
        assert!(s.get_param(&prod.id, &n).unwrap().is_none());
        assert_eq!(s.list_params(&dev.id, "/app").unwrap().len(), 1);
        assert_eq!(s.list_params(&dev.id, "/other").unwrap().len(), 0);
        assert!(matches!(
            s.delete_account(&dev.id),
            Err(StoreError::NotEmpty { .. })
        ));
        s.delete_param(&dev.id, &n).unwrap();
        s.delete_account(&dev.id).unwrap();
    }
}
