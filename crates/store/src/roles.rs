//! Roles (cross-account grants) and deny rules.

use crate::error::conflict;
use crate::{fmt_time, json_list, parse_json_list, Store, StoreError};
use rusqlite::{OptionalExtension, Row};
use spindle_model::api::{DenyRule, Role};
use spindle_model::{AccountId, RoleName};
use time::OffsetDateTime;

fn conv<E: std::error::Error + Send + Sync + 'static>(
    i: usize,
) -> impl FnOnce(E) -> rusqlite::Error {
    move |e| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

const ROLE_COLUMNS: &str = "account_id, name, trust, allow, max_session_seconds, created";

fn role(r: &Row<'_>) -> rusqlite::Result<Role> {
    let account_id = AccountId::parse(&r.get::<_, String>(0)?).map_err(conv(0))?;
    let name = RoleName::parse(&r.get::<_, String>(1)?).map_err(conv(1))?;
    let trust = parse_json_list(&r.get::<_, String>(2)?)?
        .iter()
        .map(|s| AccountId::parse(s).map_err(conv(2)))
        .collect::<Result<_, _>>()?;
    Ok(Role {
        arn: format!("arn:spindle:iam::{account_id}:role/{name}"),
        account_id,
        name,
        trust,
        allow: parse_json_list(&r.get::<_, String>(3)?)?,
        max_session_seconds: r.get(4)?,
        created: r.get(5)?,
    })
}

fn deny_rule(r: &Row<'_>) -> rusqlite::Result<DenyRule> {
    Ok(DenyRule {
        id: r.get(0)?,
        account_id: AccountId::parse(&r.get::<_, String>(1)?).map_err(conv(1))?,
        pattern: r.get(2)?,
        reason: r.get(3)?,
        created: r.get(4)?,
    })
}

impl Store {
    pub fn create_role(
        &self,
        account: &AccountId,
        name: &RoleName,
        trust: &[AccountId],
        allow: &[String],
        max_session_seconds: u32,
        now: OffsetDateTime,
    ) -> Result<Role, StoreError> {
        let trust_s: Vec<String> = trust.iter().map(|t| t.to_string()).collect();
        self.write(|tx| {
            tx.execute(
                &format!("INSERT INTO roles({ROLE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                rusqlite::params![
                    account.as_str(),
                    name.as_str(),
                    json_list(&trust_s),
                    json_list(allow),
                    max_session_seconds,
                    fmt_time(now)
                ],
            )
            .map_err(conflict(|| format!("role `{name}`")))?;
            Ok(())
        })?;
        self.get_role(account, name)?
            .ok_or_else(|| StoreError::Corrupt {
                detail: format!("role {name} vanished after insert"),
            })
    }

    pub fn get_role(
        &self,
        account: &AccountId,
        name: &RoleName,
    ) -> Result<Option<Role>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ROLE_COLUMNS} FROM roles WHERE account_id = ?1 AND name = ?2"
            ))?;
            Ok(st
                .query_row([account.as_str(), name.as_str()], role)
                .optional()?)
        })
    }

    pub fn list_roles(&self, account: &AccountId) -> Result<Vec<Role>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ROLE_COLUMNS} FROM roles WHERE account_id = ?1 ORDER BY name"
            ))?;
            let rows = st
                .query_map([account.as_str()], role)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Roles named `name`, in any account, that trust `trusted`.
    pub fn roles_trusting(
        &self,
        name: &RoleName,
        trusted: &AccountId,
    ) -> Result<Vec<Role>, StoreError> {
        let all = self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {ROLE_COLUMNS} FROM roles WHERE name = ?1 ORDER BY account_id"
            ))?;
            let rows: Vec<Role> = st
                .query_map([name.as_str()], role)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })?;
        Ok(all
            .into_iter()
            .filter(|r| r.trust.contains(trusted))
            .collect())
    }

    pub fn delete_role(&self, account: &AccountId, name: &RoleName) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM roles WHERE account_id = ?1 AND name = ?2",
                [account.as_str(), name.as_str()],
            )?;
            crate::expect_changed(n, || format!("role `{name}`"))
        })
    }

    pub fn add_deny_rule(
        &self,
        account: &AccountId,
        pattern: &str,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<DenyRule, StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO deny_rules(account_id, pattern, reason, created) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![account.as_str(), pattern, reason, fmt_time(now)],
            )
            .map_err(conflict(|| format!("deny rule `{pattern}`")))?;
            Ok(DenyRule {
                id: tx.last_insert_rowid(),
                account_id: account.clone(),
                pattern: pattern.to_owned(),
                reason: reason.to_owned(),
                created: fmt_time(now),
            })
        })
    }

    pub fn list_deny_rules(&self, account: &AccountId) -> Result<Vec<DenyRule>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, account_id, pattern, reason, created FROM deny_rules WHERE account_id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([account.as_str()], deny_rule)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    pub fn remove_deny_rule(&self, account: &AccountId, id: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM deny_rules WHERE account_id = ?1 AND id = ?2",
                rusqlite::params![account.as_str(), id],
            )?;
            crate::expect_changed(n, || format!("deny rule {id}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{now, open};
    use spindle_model::RoleName;

    #[test]
    fn roles_and_deny_rules() {
        let (_d, s) = open();
        let (dev, prod) = crate::test_util::dev_and_prod(&s);
        let name = RoleName::parse("deployer").unwrap();
        let r = s
            .create_role(
                &prod.id,
                &name,
                std::slice::from_ref(&dev.id),
                &["stack:*".into()],
                3600,
                now(),
            )
            .unwrap();
        assert_eq!(r.arn, format!("arn:spindle:iam::{}:role/deployer", prod.id));
        assert_eq!(s.roles_trusting(&name, &dev.id).unwrap().len(), 1);
        assert!(s.roles_trusting(&name, &prod.id).unwrap().is_empty());
        let rule = s
            .add_deny_rule(&prod.id, "param:Delete", "no", now())
            .unwrap();
        assert_eq!(s.list_deny_rules(&prod.id).unwrap(), vec![rule.clone()]);
        assert!(
            s.remove_deny_rule(&dev.id, rule.id).is_err(),
            "a rule is removed only through its account"
        );
        s.remove_deny_rule(&prod.id, rule.id).unwrap();
        s.delete_role(&prod.id, &name).unwrap();
        assert!(s.get_role(&prod.id, &name).unwrap().is_none());
    }
}
