//! Named stack change sets, stored opaquely: the server serialises what it needs to execute
//! one later (template, parameters, the change set shown), the store keeps it by account,
//! stack and name.

use crate::error::conflict;
use crate::{Store, StoreError};
use spindle_model::AccountId;

impl Store {
    /// Stores a new change set; an existing `(stack, name)` is a conflict.
    pub fn put_change_set(
        &self,
        account: &AccountId,
        stack: &str,
        name: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO stack_change_sets(account_id, stack, name, body) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(rusqlite::params![account.as_str(), stack, name, body])
            .map_err(conflict(|| {
                format!("change set `{name}` of stack `{stack}`")
            }))?;
            Ok(())
        })
    }

    pub fn get_change_set(
        &self,
        account: &AccountId,
        stack: &str,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT body FROM stack_change_sets WHERE account_id = ?1 AND stack = ?2 AND name = ?3",
            )?;
            let mut rows = st.query_map([account.as_str(), stack, name], |r| r.get(0))?;
            Ok(rows.next().transpose()?)
        })
    }

    /// `(name, body)` of every change set of `stack`, by name.
    pub fn list_change_sets(
        &self,
        account: &AccountId,
        stack: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT name, body FROM stack_change_sets WHERE account_id = ?1 AND stack = ?2 ORDER BY name",
            )?;
            let rows = st
                .query_map([account.as_str(), stack], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Deletes one change set (`name`) or all of the stack's (`None`); returns how many.
    pub fn delete_change_sets(
        &self,
        account: &AccountId,
        stack: &str,
        name: Option<&str>,
    ) -> Result<usize, StoreError> {
        self.write(|tx| {
            let n = match name {
                Some(n) => tx.execute(
                    "DELETE FROM stack_change_sets WHERE account_id = ?1 AND stack = ?2 AND name = ?3",
                    rusqlite::params![account.as_str(), stack, n],
                )?,
                None => tx.execute(
                    "DELETE FROM stack_change_sets WHERE account_id = ?1 AND stack = ?2",
                    rusqlite::params![account.as_str(), stack],
                )?,
            };
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{dev_and_prod, open};

    #[test]
    fn change_sets_are_kept_per_stack_and_name() {
        let (_dir, s) = open();
        let a = dev_and_prod(&s).0.id;
        s.put_change_set(&a, "app", "one", "{}").unwrap();
        s.put_change_set(&a, "app", "two", "{\"x\":1}").unwrap();
        s.put_change_set(&a, "other", "one", "{}").unwrap();
        let dup = s.put_change_set(&a, "app", "one", "{}").unwrap_err();
        assert!(
            dup.to_string().contains("change set `one` of stack `app`"),
            "{dup}"
        );
        assert_eq!(
            s.get_change_set(&a, "app", "two").unwrap().as_deref(),
            Some("{\"x\":1}")
        );
        assert_eq!(s.get_change_set(&a, "app", "three").unwrap(), None);
        let names: Vec<String> = s
            .list_change_sets(&a, "app")
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(names, ["one", "two"]);
        assert_eq!(s.delete_change_sets(&a, "app", Some("one")).unwrap(), 1);
        assert_eq!(s.delete_change_sets(&a, "app", None).unwrap(), 1);
        assert_eq!(s.list_change_sets(&a, "other").unwrap().len(), 1);
    }
}
