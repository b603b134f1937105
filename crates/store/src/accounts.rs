use crate::error::conflict;
use crate::{fmt_time, Store, StoreError};
use rusqlite::{OptionalExtension, Row};
use spindle_model::api::Account;
use spindle_model::ids::AccountRef;
use spindle_model::{AccountId, AccountName};
use time::OffsetDateTime;

const COLUMNS: &str = "id, name, description, created, management";

fn account(r: &Row<'_>) -> rusqlite::Result<Account> {
    let bad = |i, e: spindle_model::IdError| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    Ok(Account {
        id: AccountId::parse(&r.get::<_, String>(0)?).map_err(|e| bad(0, e))?,
        name: AccountName::parse(&r.get::<_, String>(1)?).map_err(|e| bad(1, e))?,
        description: r.get(2)?,
        created: r.get(3)?,
        management: r.get(4)?,
    })
}

impl Store {
    /// Creates an account with a fresh random 12-digit id.
    pub fn create_account(
        &self,
        name: &AccountName,
        description: &str,
        management: bool,
        now: OffsetDateTime,
    ) -> Result<Account, StoreError> {
        self.write(|tx| {
            let mut rng = rand::thread_rng();
            let id = loop {
                let id = AccountId::generate(&mut rng);
                let taken: bool =
                    tx.query_row("SELECT EXISTS(SELECT 1 FROM accounts WHERE id = ?1)", [id.as_str()], |r| r.get(0))?;
                if !taken {
                    break id;
                }
            };
            tx.execute(
                "INSERT INTO accounts(id, name, description, created, management) VALUES (?1, ?2, ?3, ?4, ?5)",
                rusqlite::params![id.as_str(), name.as_str(), description, fmt_time(now), management],
            )
            .map_err(conflict(|| format!("account `{name}`")))?;
            Ok(Account { id, name: name.clone(), description: description.to_owned(), created: fmt_time(now), management })
        })
    }

    pub fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read(|c| {
            let mut st =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM accounts ORDER BY name"))?;
            let rows = st.query_map([], account)?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Looks an account up by name or id.
    pub fn find_account(&self, r: &AccountRef) -> Result<Option<Account>, StoreError> {
        let (col, val) = match r {
            AccountRef::Id(id) => ("id", id.as_str()),
            AccountRef::Name(n) => ("name", n.as_str()),
        };
        self.read(|c| {
            let mut st =
                c.prepare_cached(&format!("SELECT {COLUMNS} FROM accounts WHERE {col} = ?1"))?;
            Ok(st.query_row([val], account).optional()?)
        })
    }

    pub fn management_account(&self) -> Result<Option<Account>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM accounts WHERE management = 1"
            ))?;
            Ok(st.query_row([], account).optional()?)
        })
    }

    /// Deletes an account with its keys, roles and deny rules. Refused while it still holds
    /// resources (parameters, and later stacks, repos…), so nothing is orphaned.
    pub fn delete_account(&self, id: &AccountId) -> Result<(), StoreError> {
        self.write(|tx| {
            let params: i64 = tx.query_row(
                "SELECT COUNT(*) FROM params WHERE account_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )?;
            if params > 0 {
                return Err(StoreError::NotEmpty {
                    what: format!("account {id}"),
                    detail: format!("it still holds {params} parameter(s); delete them first"),
                });
            }
            let apt: i64 = tx.query_row(
                "SELECT COUNT(*) FROM apt_objects WHERE account_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )?;
            if apt > 0 {
                return Err(StoreError::NotEmpty {
                    what: format!("account {id}"),
                    detail: format!(
                        "it still holds {apt} apt repositories, snapshots, publications, mirrors or signing keys; drop them first"
                    ),
                });
            }
            // The caller has checked that no stack is live; the journal's history goes too.
            tx.execute(
                "DELETE FROM stack_journal WHERE account_id = ?1",
                [id.as_str()],
            )?;
            tx.execute("DELETE FROM images WHERE account_id = ?1", [id.as_str()])?;
            let n = tx.execute("DELETE FROM accounts WHERE id = ?1", [id.as_str()])?;
            crate::expect_changed(n, || format!("account {id}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{now, open};
    use crate::StoreError;
    use spindle_model::ids::AccountRef;
    use spindle_model::AccountName;

    #[test]
    fn create_find_delete() {
        let (_d, s) = open();
        let dev = AccountName::parse("dev").unwrap();
        let a = s.create_account(&dev, "developers", false, now()).unwrap();
        assert!(matches!(
            s.create_account(&dev, "", false, now()),
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(
            s.find_account(&AccountRef::Id(a.id.clone()))
                .unwrap()
                .unwrap()
                .name,
            dev
        );
        assert_eq!(
            s.find_account(&AccountRef::Name(dev.clone()))
                .unwrap()
                .unwrap()
                .id,
            a.id
        );
        assert_eq!(s.list_accounts().unwrap().len(), 1);
        s.delete_account(&a.id).unwrap();
        assert!(s.find_account(&AccountRef::Name(dev)).unwrap().is_none());
        assert!(matches!(
            s.delete_account(&a.id),
            Err(StoreError::NotFound { .. })
        ));
    }
}
