//! State of the apt repository service: package records (what each account uploaded, by
//! `name_version_arch` key, bound to one pool SHA-256) and named JSON documents — repos,
//! snapshots, publications, signing-key metadata — whose shape the apt engine owns.
//!
//! A change to several of them is one [`AptChange`], applied in one transaction: a repo
//! move updates both repos or neither, a publish records its generation atomically.

use crate::{fmt_time, Store, StoreError};
use rusqlite::OptionalExtension;
use spindle_model::AccountId;
use std::collections::HashSet;
use time::OffsetDateTime;

/// The kinds of apt documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AptKind {
    Repo,
    Snapshot,
    Publication,
    SigningKey,
    Mirror,
}

impl AptKind {
    fn as_str(self) -> &'static str {
        match self {
            AptKind::Repo => "repo",
            AptKind::Snapshot => "snapshot",
            AptKind::Publication => "publication",
            AptKind::SigningKey => "signing_key",
            AptKind::Mirror => "mirror",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            AptKind::Repo => "repository",
            AptKind::Snapshot => "snapshot",
            AptKind::Publication => "publication",
            AptKind::SigningKey => "signing key",
            AptKind::Mirror => "mirror",
        }
    }
}

/// What a document write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Creating: a document with this name is a conflict.
    Absent,
    /// Updating: a missing document is not found.
    Present,
}

/// One package record to insert.
#[derive(Debug, Clone)]
pub struct AptPackage {
    pub key: String,
    pub sha256: String,
    /// The engine's serialised record.
    pub record: String,
}

/// A set of changes applied together.
#[derive(Debug, Clone, Default)]
pub struct AptChange {
    /// Inserted unless present with the same SHA-256; other content is a conflict.
    pub packages: Vec<AptPackage>,
    pub put: Vec<(AptKind, String, String, Expect)>,
    pub delete: Vec<(AptKind, String)>,
    /// Package records to forget.
    pub forget: Vec<String>,
}

impl Store {
    /// One document, if present.
    pub fn apt_get(
        &self,
        account: &AccountId,
        kind: AptKind,
        name: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT body FROM apt_objects WHERE account_id = ?1 AND kind = ?2 AND name = ?3",
            )?;
            Ok(st
                .query_row([account.as_str(), kind.as_str(), name], |r| r.get(0))
                .optional()?)
        })
    }

    /// One document, or `NotFound` naming it.
    pub fn apt_require(
        &self,
        account: &AccountId,
        kind: AptKind,
        name: &str,
    ) -> Result<String, StoreError> {
        self.apt_get(account, kind, name)?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("{} `{name}`", kind.noun()),
            })
    }

    /// Every document of a kind, `(name, body)` in name order.
    pub fn apt_list(
        &self,
        account: &AccountId,
        kind: AptKind,
    ) -> Result<Vec<(String, String)>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT name, body FROM apt_objects WHERE account_id = ?1 AND kind = ?2 ORDER BY name",
            )?;
            let rows = st
                .query_map([account.as_str(), kind.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Every document of a kind in every account, `(account, name, body)`.
    pub fn apt_list_all(
        &self,
        kind: AptKind,
    ) -> Result<Vec<(AccountId, String, String)>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT account_id, name, body FROM apt_objects WHERE kind = ?1 ORDER BY account_id, name",
            )?;
            let rows = st
                .query_map([kind.as_str()], |r| {
                    let id: String = r.get(0)?;
                    Ok((id, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<Vec<(String, String, String)>, _>>()?;
            rows.into_iter()
                .map(|(id, n, b)| {
                    AccountId::parse(&id)
                        .map(|id| (id, n, b))
                        .map_err(|e| StoreError::Corrupt {
                            detail: format!("account id `{id}`: {e}"),
                        })
                })
                .collect()
        })
    }

    /// The SHA-256 bound to a package key, if the account has it.
    pub fn apt_package_sha(
        &self,
        account: &AccountId,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT sha256 FROM apt_packages WHERE account_id = ?1 AND key = ?2",
            )?;
            Ok(st
                .query_row([account.as_str(), key], |r| r.get(0))
                .optional()?)
        })
    }

    /// Every package record of an account.
    pub fn apt_packages(&self, account: &AccountId) -> Result<Vec<String>, StoreError> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT record FROM apt_packages WHERE account_id = ?1")?;
            let rows = st
                .query_map([account.as_str()], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// `(account, key, sha256)` of every package record in the installation.
    pub fn apt_all_packages(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT account_id, key, sha256 FROM apt_packages")?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// The pool addresses any package record references.
    pub fn apt_referenced_shas(&self) -> Result<HashSet<String>, StoreError> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT DISTINCT sha256 FROM apt_packages")?;
            let rows = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }

    /// Applies `change` in one transaction: all of it, or (on any error) none of it.
    pub fn apt_apply(
        &self,
        account: &AccountId,
        change: &AptChange,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let now = fmt_time(now);
        self.write(|tx| {
            for p in &change.packages {
                // Insert first: a new key (the common case) costs one statement. A key that
                // is already there must be bound to the same content.
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO apt_packages(account_id, key, sha256, record, created) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (account_id, key) DO NOTHING",
                    )?
                    .execute([account.as_str(), &p.key, &p.sha256, &p.record, &now])?;
                if inserted == 1 {
                    continue;
                }
                let sha: String = tx
                    .prepare_cached(
                        "SELECT sha256 FROM apt_packages WHERE account_id = ?1 AND key = ?2",
                    )?
                    .query_row([account.as_str(), &p.key], |r| r.get(0))?;
                if sha != p.sha256 {
                    return Err(StoreError::Conflict {
                        what: format!(
                            "package `{}` with other content (pool sha256 {sha}, new {})",
                            p.key, p.sha256
                        ),
                    });
                }
            }
            for key in &change.forget {
                tx.execute(
                    "DELETE FROM apt_packages WHERE account_id = ?1 AND key = ?2",
                    [account.as_str(), key],
                )?;
            }
            for (kind, name) in &change.delete {
                let n = tx.execute(
                    "DELETE FROM apt_objects WHERE account_id = ?1 AND kind = ?2 AND name = ?3",
                    [account.as_str(), kind.as_str(), name],
                )?;
                crate::expect_changed(n, || format!("{} `{name}`", kind.noun()))?;
            }
            for (kind, name, body, expect) in &change.put {
                match expect {
                    Expect::Absent => {
                        tx.execute(
                            "INSERT INTO apt_objects(account_id, kind, name, body, updated) VALUES (?1, ?2, ?3, ?4, ?5)",
                            [account.as_str(), kind.as_str(), name, body, &now],
                        )
                        .map_err(crate::error::conflict(|| format!("{} `{name}`", kind.noun())))?;
                    }
                    Expect::Present => {
                        let n = tx.execute(
                            "UPDATE apt_objects SET body = ?4, updated = ?5 WHERE account_id = ?1 AND kind = ?2 AND name = ?3",
                            [account.as_str(), kind.as_str(), name, body, &now],
                        )?;
                        crate::expect_changed(n, || format!("{} `{name}`", kind.noun()))?;
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{dev_and_prod, now, open};

    fn pkg(key: &str, sha: &str) -> AptPackage {
        AptPackage {
            key: key.into(),
            sha256: sha.into(),
            record: format!("{{\"k\":\"{key}\"}}"),
        }
    }

    #[test]
    fn changes_apply_whole_or_not_at_all() {
        let (_d, s) = open();
        let (dev, prod) = dev_and_prod(&s);
        let create = AptChange {
            packages: vec![pkg("a_1_amd64", "aa")],
            put: vec![(AptKind::Repo, "main".into(), "{}".into(), Expect::Absent)],
            ..Default::default()
        };
        s.apt_apply(&dev.id, &create, now()).unwrap();
        // The same key with the same content is idempotent; another repo named main conflicts
        // and takes the new package down with it.
        let again = AptChange {
            packages: vec![pkg("a_1_amd64", "aa"), pkg("b_1_amd64", "bb")],
            put: vec![(AptKind::Repo, "main".into(), "{}".into(), Expect::Absent)],
            ..Default::default()
        };
        let e = s.apt_apply(&dev.id, &again, now()).unwrap_err();
        assert!(matches!(e, StoreError::Conflict { .. }), "{e}");
        assert_eq!(s.apt_package_sha(&dev.id, "b_1_amd64").unwrap(), None);
        // Other content under a key is a conflict naming the key.
        let other = AptChange {
            packages: vec![pkg("a_1_amd64", "cc")],
            ..Default::default()
        };
        let e = s.apt_apply(&dev.id, &other, now()).unwrap_err();
        assert!(e.to_string().contains("a_1_amd64"), "{e}");
        // Accounts are separate.
        assert_eq!(s.apt_list(&prod.id, AptKind::Repo).unwrap(), vec![]);
        s.apt_apply(&prod.id, &other, now()).unwrap();
        let e = s.apt_require(&dev.id, AptKind::Snapshot, "x").unwrap_err();
        assert_eq!(e.to_string(), "snapshot `x` not found");
        let upd = AptChange {
            put: vec![(AptKind::Repo, "nope".into(), "{}".into(), Expect::Present)],
            ..Default::default()
        };
        assert!(matches!(
            s.apt_apply(&dev.id, &upd, now()).unwrap_err(),
            StoreError::NotFound { .. }
        ));
        assert_eq!(s.apt_referenced_shas().unwrap().len(), 2);
        // An account holding apt objects can't be deleted; with only package records, it can
        // (the records go with it).
        let e = s.delete_account(&dev.id).unwrap_err();
        assert!(e.to_string().contains("apt repositories"), "{e}");
        s.delete_account(&prod.id).unwrap();
        assert_eq!(s.apt_package_sha(&prod.id, "a_1_amd64").unwrap(), None);
    }
}
