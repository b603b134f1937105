//! The stack engine's journal, stored opaquely: the engine serialises its records, the store
//! keeps them in order per account and stack. Appends are single transactions, so a record is
//! durable (to WAL) before the engine calls the provider it announces.

use crate::error::conflict;
use crate::{Store, StoreError};
use spindle_model::AccountId;

impl Store {
    /// Appends record `seq` of `stack`; a duplicate `(stack, seq)` is a conflict.
    pub fn append_journal(
        &self,
        account: &AccountId,
        stack: &str,
        seq: u64,
        record: &str,
    ) -> Result<(), StoreError> {
        let seq = i64::try_from(seq).map_err(|_| StoreError::Corrupt {
            detail: format!("journal seq {seq} too large"),
        })?;
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO stack_journal(account_id, stack, seq, record) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(rusqlite::params![account.as_str(), stack, seq, record])
            .map_err(conflict(|| {
                format!("journal record {seq} of stack `{stack}`")
            }))?;
            Ok(())
        })
    }

    /// Appends several records in one transaction: all of them, or none.
    pub fn append_journal_batch(
        &self,
        account: &AccountId,
        records: &[(&str, u64, String)],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO stack_journal(account_id, stack, seq, record) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (stack, seq, record) in records {
                let seq = i64::try_from(*seq).map_err(|_| StoreError::Corrupt {
                    detail: format!("journal seq {seq} too large"),
                })?;
                st.execute(rusqlite::params![account.as_str(), stack, seq, record])
                    .map_err(conflict(|| {
                        format!("journal record {seq} of stack `{stack}`")
                    }))?;
            }
            Ok(())
        })
    }

    /// Every record of `stack`, in `seq` order.
    pub fn journal_records(
        &self,
        account: &AccountId,
        stack: &str,
    ) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT record FROM stack_journal WHERE account_id = ?1 AND stack = ?2 ORDER BY seq")?;
            let rows = st.query_map([account.as_str(), stack], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// The names of the account's stacks that have records.
    pub fn journal_stacks(&self, account: &AccountId) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT stack FROM stack_journal WHERE account_id = ?1 ORDER BY stack",
            )?;
            let rows = st
                .query_map([account.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Records that `account` owns image `image_id` (idempotent).
    pub fn add_image(
        &self,
        account: &AccountId,
        image_id: &str,
        now: time::OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO images(account_id, image_id, created) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                rusqlite::params![account.as_str(), image_id, crate::fmt_time(now)],
            )?;
            Ok(())
        })
    }

    /// The ids of the images `account` owns.
    pub fn account_images(&self, account: &AccountId) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT image_id FROM images WHERE account_id = ?1 ORDER BY image_id",
            )?;
            let rows = st
                .query_map([account.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Drops `account`'s ownership of an image (the caller removes the image itself when no
    /// owner is left). False when it did not own it.
    pub fn remove_image(&self, account: &AccountId, image_id: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM images WHERE account_id = ?1 AND image_id = ?2",
                rusqlite::params![account.as_str(), image_id],
            )?;
            Ok(n > 0)
        })
    }

    /// How many accounts own an image.
    pub fn image_owner_count(&self, image_id: &str) -> Result<u64, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM images WHERE image_id = ?1",
                [image_id],
                |r| r.get(0),
            )?)
        })
    }

    /// Accounts with any journal records (whose stacks a restarted daemon must recover).
    pub fn accounts_with_journal(&self) -> Result<Vec<AccountId>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT DISTINCT account_id FROM stack_journal ORDER BY account_id",
            )?;
            let rows: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            rows.into_iter()
                .map(|s| {
                    AccountId::parse(&s).map_err(|e| StoreError::Corrupt {
                        detail: e.to_string(),
                    })
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{dev_and_prod, open};
    use crate::StoreError;

    #[test]
    fn journal_is_ordered_per_account_and_stack() {
        let (_d, s) = open();
        let (dev, prod) = dev_and_prod(&s);
        s.append_journal(&dev.id, "app", 1, "{\"a\":1}").unwrap();
        s.append_journal(&dev.id, "app", 2, "{\"a\":2}").unwrap();
        s.append_journal(&prod.id, "app", 1, "{\"p\":1}").unwrap();
        assert!(matches!(
            s.append_journal(&dev.id, "app", 2, "{}"),
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(
            s.journal_records(&dev.id, "app").unwrap(),
            vec!["{\"a\":1}", "{\"a\":2}"]
        );
        assert_eq!(s.journal_stacks(&prod.id).unwrap(), vec!["app"]);
        assert_eq!(s.accounts_with_journal().unwrap().len(), 2);
    }
}
