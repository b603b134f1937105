//! AWS-compatible access keys (issue #21): an ordinary key row plus its secret, sealed by the
//! daemon, because SigV4 signs with the secret itself and can't be checked from a derived key.
//! The store keeps only the sealed text; it never sees the sealing key.

use crate::keys::insert_key_in;
use crate::{NewKey, Store, StoreError};
use rusqlite::OptionalExtension;
use spindle_model::AccessKeyId;
use time::OffsetDateTime;

impl Store {
    /// Inserts the key and its sealed secret in one transaction.
    pub fn insert_aws_key(
        &self,
        k: &NewKey<'_>,
        sealed_secret: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            insert_key_in(tx, k, now)?;
            tx.execute(
                "INSERT INTO aws_secrets(key_id, sealed) VALUES (?1, ?2)",
                [k.id.as_str(), sealed_secret],
            )?;
            Ok(())
        })
    }

    /// The sealed secret of an AWS-compatible key; `None` for other keys and unknown ids.
    pub fn aws_secret(&self, id: &AccessKeyId) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT sealed FROM aws_secrets WHERE key_id = ?1")?;
            Ok(st.query_row([id.as_str()], |r| r.get(0)).optional()?)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{now, open};
    use crate::NewKey;
    use spindle_model::{AccessKeyId, AccountName};

    #[test]
    fn an_aws_key_keeps_its_sealed_secret_and_others_have_none() {
        let (_d, s) = open();
        let a = s
            .create_account(&AccountName::parse("dev").unwrap(), "", false, now())
            .unwrap();
        let mut rng = rand::thread_rng();
        let (aws, plain) = (
            AccessKeyId::generate(&mut rng, false),
            AccessKeyId::generate(&mut rng, false),
        );
        let key = |id| NewKey {
            id,
            account_id: &a.id,
            signing_key: &[7; 32],
            admin: false,
            allow: &[],
            description: "",
            expires_unix: None,
            role_name: None,
            session_name: None,
            source_key_id: None,
        };
        s.insert_aws_key(&key(&aws), "{sealed:v1:00}", now())
            .unwrap();
        s.insert_key(&key(&plain), now()).unwrap();
        assert_eq!(
            s.aws_secret(&aws).unwrap().as_deref(),
            Some("{sealed:v1:00}")
        );
        assert_eq!(s.aws_secret(&plain).unwrap(), None);
        assert!(s.get_key(&aws).unwrap().is_some());
        // A second insert of the same id fails whole: no secret row is left for it.
        let err = s.insert_aws_key(&key(&plain), "{sealed:v1:11}", now());
        assert!(err.is_err());
        assert_eq!(s.aws_secret(&plain).unwrap(), None);
    }
}
