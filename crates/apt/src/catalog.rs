//! The catalog: every package known to an account, by key. It is what makes the pool safe
//! to share: a key maps to exactly one .deb, so adding the same name, version and
//! architecture with different content is refused instead of silently replacing the file
//! that published repositories point at.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::package::{PackageKey, PackageRef};

/// Why a package cannot enter the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "package `{key}` already exists with different content (pool sha256 {existing}, new {new})"
    )]
    Conflict {
        key: Box<PackageKey>,
        existing: String,
        new: String,
    },
    #[error("package `{key}` is not in the catalog")]
    Unknown { key: Box<PackageKey> },
}

/// What [`Catalog::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// The same key with the same content was already there: adding is idempotent.
    AlreadyPresent,
}

/// Lookup of the content already bound to a key; implemented by [`Catalog`] and by the
/// daemon's database, so the pool can check for conflicts before writing anything.
pub trait KnownPackages {
    /// The pool SHA-256 stored under `key`, if any.
    fn sha256_of(&self, key: &PackageKey) -> Option<String>;
}

/// An in-memory map from package key to package record.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    packages: BTreeMap<PackageKey, Arc<PackageRef>>,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Adds a package; the same key with other content is a [`CatalogError::Conflict`] and
    /// leaves the catalog unchanged.
    pub fn insert(&mut self, package: PackageRef) -> Result<Inserted, CatalogError> {
        if let Some(existing) = self.packages.get(package.key()) {
            if existing.sha256() == package.sha256() {
                return Ok(Inserted::AlreadyPresent);
            }
            return Err(CatalogError::Conflict {
                key: Box::new(package.key().clone()),
                existing: existing.sha256().to_string(),
                new: package.sha256().to_string(),
            });
        }
        self.packages
            .insert(package.key().clone(), Arc::new(package));
        Ok(Inserted::New)
    }

    pub fn get(&self, key: &PackageKey) -> Option<&Arc<PackageRef>> {
        self.packages.get(key)
    }

    /// Looks up every key, failing on the first unknown one.
    pub fn resolve<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a PackageKey>,
    ) -> Result<Vec<Arc<PackageRef>>, CatalogError> {
        keys.into_iter()
            .map(|k| {
                self.packages
                    .get(k)
                    .cloned()
                    .ok_or_else(|| CatalogError::Unknown {
                        key: Box::new(k.clone()),
                    })
            })
            .collect()
    }

    /// Removes a package record (the pool file stays until a cleanup finds it unreferenced).
    pub fn remove(&mut self, key: &PackageKey) -> Option<Arc<PackageRef>> {
        self.packages.remove(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<PackageRef>> {
        self.packages.values()
    }

    pub fn len(&self) -> usize {
        self.packages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packages.is_empty()
    }
}

impl KnownPackages for Catalog {
    fn sha256_of(&self, key: &PackageKey) -> Option<String> {
        self.packages.get(key).map(|p| p.sha256().to_string())
    }
}
