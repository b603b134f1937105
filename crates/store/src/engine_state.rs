//! The engines' state documents: one JSON body per engine (the runtime, the EC2, ELBv2 and
//! auto scaling providers), owned by the engine and stored opaquely. A save replaces the body
//! in one transaction, so a crash leaves the previous body or the new one, never a mix.

use crate::{Store, StoreError};
use time::OffsetDateTime;

impl Store {
    /// The body of document `name`, or `None` if it was never saved.
    pub fn engine_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT body FROM engine_state WHERE name = ?1")?;
            let mut rows = st.query([name])?;
            Ok(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        })
    }

    /// Replaces the body of document `name`.
    pub fn put_engine_state(
        &self,
        name: &str,
        body: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO engine_state(name, body, updated) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(name) DO UPDATE SET body = excluded.body, updated = excluded.updated",
            )?
            .execute(rusqlite::params![name, body, crate::fmt_time(now)])?;
            Ok(())
        })
    }

    /// Imports documents written before the store kept them (the old JSON state files), all
    /// in one transaction. A document the store already has is kept and not overwritten: an
    /// import that committed and was then interrupted runs again without effect. Returns the
    /// names that were imported.
    pub fn import_engine_state(
        &self,
        docs: &[(&str, String)],
        now: OffsetDateTime,
    ) -> Result<Vec<String>, StoreError> {
        self.write(|tx| {
            let mut st = tx.prepare_cached(
                "INSERT INTO engine_state(name, body, updated) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(name) DO NOTHING",
            )?;
            let mut imported = Vec::new();
            for (name, body) in docs {
                if st.execute(rusqlite::params![name, body, crate::fmt_time(now)])? > 0 {
                    imported.push((*name).to_owned());
                }
            }
            Ok(imported)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_util::{now, open};

    #[test]
    fn documents_are_replaced_whole_and_imports_never_overwrite() {
        let (_d, s) = open();
        assert_eq!(s.engine_state("runtime").unwrap(), None);
        s.put_engine_state("runtime", "{\"v\":1}", now()).unwrap();
        s.put_engine_state("runtime", "{\"v\":2}", now()).unwrap();
        assert_eq!(
            s.engine_state("runtime").unwrap().as_deref(),
            Some("{\"v\":2}")
        );
        let imported = s
            .import_engine_state(
                &[("runtime", "{\"old\":1}".into()), ("elbv2", "{}".into())],
                now(),
            )
            .unwrap();
        assert_eq!(imported, vec!["elbv2"]);
        assert_eq!(
            s.engine_state("runtime").unwrap().as_deref(),
            Some("{\"v\":2}")
        );
        assert_eq!(s.engine_state("elbv2").unwrap().as_deref(), Some("{}"));
        let again = s
            .import_engine_state(&[("elbv2", "{\"x\":1}".into())], now())
            .unwrap();
        assert!(again.is_empty());
        assert_eq!(s.engine_state("elbv2").unwrap().as_deref(), Some("{}"));
    }
}
