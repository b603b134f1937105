//! The parameter store (SSM Parameter Store's job).
//!
//! `SecureString` values are sealed at rest once the daemon hands the store its key
//! ([`Store::seal_params_with`]): `state.db`, its WAL and any copy of them hold
//! `{sealed:…}` text, and every read here returns the plain value to the caller, which
//! decides what to show (the API masks it unless asked to decrypt). Without a key (unit
//! tests, tools that open the database offline) values are kept as given.

use std::borrow::Cow;
use std::sync::Arc;

use crate::{fmt_time, Store, StoreError};
use rusqlite::{OptionalExtension, Row};
use spindle_model::api::Param;
use spindle_model::{AccountId, ParamName};
use time::OffsetDateTime;

const COLUMNS: &str = "name, type, value, version, last_modified, description";

/// The `type` whose values are sealed.
const SECURE: &str = "SecureString";

/// Seals and opens parameter values with a key the store doesn't hold.
pub trait ValueSeal: Send + Sync {
    /// The sealed form of `plain`.
    fn seal(&self, plain: &str) -> String;
    /// The plain text of a sealed `stored` value; `None` when `stored` is not sealed.
    fn open(&self, stored: &str) -> Option<Result<String, String>>;
}

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
    /// Seals `SecureString` values from now on with `seal`, and seals in one transaction the
    /// ones an older daemon stored in clear; returns how many it sealed. A second call keeps
    /// the first key and only seals what is still clear.
    pub fn seal_params_with(&self, seal: Arc<dyn ValueSeal>) -> Result<usize, StoreError> {
        let _ = self.param_seal.set(seal);
        let Some(seal) = self.param_seal.get() else {
            return Ok(0);
        };
        self.write(|tx| {
            let clear: Vec<(String, String, String)> = {
                let mut st =
                    tx.prepare("SELECT account_id, name, value FROM params WHERE type = ?1")?;
                let rows = st.query_map([SECURE], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .filter(|(_, _, v): &(String, String, String)| seal.open(v).is_none())
                    .collect()
            };
            for (account, name, value) in &clear {
                tx.execute(
                    "UPDATE params SET value = ?3 WHERE account_id = ?1 AND name = ?2",
                    [account.as_str(), name.as_str(), seal.seal(value).as_str()],
                )?;
            }
            Ok(clear.len())
        })
        .and_then(|n| {
            if n > 0 {
                // The clear values' old page images sit in the WAL until a checkpoint: copy
                // the new pages into the database and empty the WAL now.
                self.checkpoint()?;
            }
            Ok(n)
        })
    }

    /// The value as stored: sealed for a `SecureString` when the store has a key.
    fn stored_value<'v>(&self, kind: &str, value: &'v str) -> Cow<'v, str> {
        match self.param_seal.get() {
            Some(seal) if kind == SECURE => Cow::Owned(seal.seal(value)),
            _ => Cow::Borrowed(value),
        }
    }

    /// `p` with its value opened, if it was sealed.
    fn opened(&self, mut p: Param) -> Result<Param, StoreError> {
        if p.kind != SECURE {
            return Ok(p);
        }
        if let Some(opened) = self.param_seal.get().and_then(|s| s.open(&p.value)) {
            p.value = opened.map_err(|e| StoreError::Corrupt {
                detail: format!(
                    "the sealed value of parameter {} can't be opened with this data dir's key: {e}",
                    p.name
                ),
            })?;
        }
        Ok(p)
    }

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
            let value = self.stored_value(kind, value);
            tx.execute(
                "INSERT INTO params(account_id, name, type, value, version, description, last_modified, token)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(account_id, name) DO UPDATE SET type = excluded.type, value = excluded.value,
                   version = excluded.version, description = excluded.description, last_modified = excluded.last_modified,
                   token = excluded.token",
                rusqlite::params![account.as_str(), name.as_str(), kind, value.as_ref(), version, description, fmt_time(now), token],
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
        })?
        .map(|(p, token)| Ok((self.opened(p)?, token)))
        .transpose()
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
        })?
        .map(|p| self.opened(p))
        .transpose()
    }

    /// Parameters whose name starts with `prefix`, in name order.
    pub fn list_params(&self, account: &AccountId, prefix: &str) -> Result<Vec<Param>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM params WHERE account_id = ?1 AND substr(name, 1, length(?2)) = ?2 ORDER BY name"
            ))?;
            let rows: Vec<Param> =
                st.query_map([account.as_str(), prefix], param)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })?
        .into_iter()
        .map(|p| self.opened(p))
        .collect()
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

    /// A reversible stand-in for the daemon's AES-GCM sealer (which lives in the server
    /// crate): what this tests is where the store seals and opens, not the cipher.
    struct Reverse;

    impl super::ValueSeal for Reverse {
        fn seal(&self, plain: &str) -> String {
            format!("{{rev:{}}}", plain.chars().rev().collect::<String>())
        }
        fn open(&self, stored: &str) -> Option<Result<String, String>> {
            let body = stored.strip_prefix("{rev:")?.strip_suffix('}')?;
            Some(if body.starts_with("bad") {
                Err("wrong key".into())
            } else {
                Ok(body.chars().rev().collect())
            })
        }
    }

    fn raw(s: &crate::Store, name: &str) -> String {
        let c = rusqlite::Connection::open(s.path()).unwrap();
        c.query_row("SELECT value FROM params WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .unwrap()
    }

    #[test]
    fn secure_strings_are_sealed_at_rest_and_read_back_plain() {
        let (_d, s) = open();
        let (dev, _) = crate::test_util::dev_and_prod(&s);
        let old = ParamName::parse("/app/old").unwrap();
        let plain = ParamName::parse("/app/plain").unwrap();
        let new = ParamName::parse("/app/new").unwrap();
        // Written before the daemon gave the store its key, as an older daemon did.
        s.put_param(
            &dev.id,
            &old,
            "SecureString",
            "hunter2",
            "",
            false,
            None,
            now(),
        )
        .unwrap();
        s.put_param(&dev.id, &plain, "String", "visible", "", false, None, now())
            .unwrap();
        assert_eq!(raw(&s, "/app/old"), "hunter2");

        assert_eq!(s.seal_params_with(std::sync::Arc::new(Reverse)).unwrap(), 1);
        assert_eq!(raw(&s, "/app/old"), "{rev:2retnuh}");
        // No copy of the clear value is left in the database's free pages or its WAL.
        for file in ["state.db", "state.db-wal"] {
            let bytes = std::fs::read(s.path().with_file_name(file)).unwrap_or_default();
            assert!(
                !bytes.windows(7).any(|w| w == b"hunter2"),
                "{file} still holds the clear value"
            );
        }
        assert_eq!(raw(&s, "/app/plain"), "visible");
        // A second start finds nothing left in clear.
        assert_eq!(s.seal_params_with(std::sync::Arc::new(Reverse)).unwrap(), 0);

        s.put_param(
            &dev.id,
            &new,
            "SecureString",
            "s3cret",
            "",
            false,
            None,
            now(),
        )
        .unwrap();
        assert_eq!(raw(&s, "/app/new"), "{rev:terc3s}");
        assert_eq!(s.get_param(&dev.id, &new).unwrap().unwrap().value, "s3cret");
        assert_eq!(
            s.get_param_with_token(&dev.id, &old)
                .unwrap()
                .unwrap()
                .0
                .value,
            "hunter2"
        );
        let listed: Vec<(String, String)> = s
            .list_params(&dev.id, "/app/")
            .unwrap()
            .into_iter()
            .map(|p| (p.name.to_string(), p.value))
            .collect();
        assert_eq!(
            listed,
            [
                ("/app/new".to_string(), "s3cret".to_string()),
                ("/app/old".into(), "hunter2".into()),
                ("/app/plain".into(), "visible".into()),
            ]
        );
    }

    #[test]
    fn a_sealed_value_that_does_not_open_is_an_error_naming_the_parameter() {
        let (_d, s) = open();
        let (dev, _) = crate::test_util::dev_and_prod(&s);
        let n = ParamName::parse("/app/db").unwrap();
        s.put_param(
            &dev.id,
            &n,
            "SecureString",
            "{rev:bad}",
            "",
            false,
            None,
            now(),
        )
        .unwrap();
        s.seal_params_with(std::sync::Arc::new(Reverse)).unwrap();
        let err = s.get_param(&dev.id, &n).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("/app/db"), "{err}");
        assert!(s.list_params(&dev.id, "").is_err());
    }
}
