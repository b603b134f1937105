//! `spindle-apt`: the apt repository engine of Spindle — what replaces Aptly. It keeps a
//! content-addressed pool of .deb files, models local repositories and immutable snapshots,
//! evaluates aptly-style package queries, and publishes signed Debian repositories that
//! Debian's own `apt-get` consumes.
//!
//! It is a library without HTTP or SQL: the daemon persists the serialisable models
//! ([`Repo`], [`Snapshot`], [`PackageRef`]) in its store, serves the publish root over HTTP
//! and calls the entry points below.
//!
//! # Entry points
//!
//! | task | call |
//! |---|---|
//! | add .debs to the pool (idempotent, conflict-checked, all-or-nothing, one pass per file on worker threads, two `syncfs` per batch) | [`Pool::add_batch`]`(&[bytes], &known) -> Vec<`[`pool::Added`]`>`, [`Pool::add_files`]`(&[path], &known)`, [`Pool::add`] |
//! | many .debs in one upload (a tar archive read in place) | [`upload::debs_in_tar`] (the client writes them with `spindle_client::DebArchive`) |
//! | remember packages by key, refuse conflicting content | [`Catalog::insert`] |
//! | repos: add / search / remove by query / copy / move | [`Repo::add`], [`Repo::search`], [`Repo::remove`], [`repo::copy`], [`repo::move_packages`] |
//! | snapshots: create / diff / merge / filter (with dependencies) | [`Snapshot::from_repo`], [`Snapshot::diff`], [`Snapshot::merge`], [`Snapshot::filter`] |
//! | parse and evaluate a package query | [`Query::parse`], [`Query::matches`] |
//! | plan a publish (pure) | [`publish::plan`]`(&PublishOptions, &[ComponentInput], &mut IndexCache) -> PublishPlan` |
//! | plan + sign + write a publish atomically | [`Publisher::publish`] |
//! | what a published tree serves at a path (index files on disk, package files from the pool) | [`publish::PublishedFiles::open`] |
//! | pool content publications still serve (for cleanup) | [`publish::referenced_pool_files`] |
//! | remove a publication | [`Publisher::drop_publication`] |
//! | signing keys: generate, export keyring / armor, save 0600, sign | [`SigningKey`] |
//! | remove unreferenced pool content (compacting packs) | [`Pool::cleanup`] |
//! | read pool content | [`Pool::read`], [`Pool::open_slice`] |
//! | mirror a remote repository: verify `InRelease`, check hashes, select, download | [`mirror::update`] over a [`mirror::Fetch`] |
//!
//! # Invariants
//!
//! * **Planners are pure.** Query evaluation, repository and snapshot operations and
//!   [`publish::plan`] do no I/O; they return new values or errors and never leave a
//!   half-applied change. I/O lives only in [`Pool`] (adding and cleaning pool files),
//!   [`Publisher`] (writing published trees) and [`SigningKey`]'s load/save.
//! * **One key, one content.** A `name_version_arch` key is bound to exactly one pool
//!   SHA-256; adding other content under it is an error, never an overwrite.
//! * **Readers never see mismatched hashes.** A publish records its pool paths and writes
//!   by-hash indexes before it swaps `Release`/`InRelease`/`Release.gpg` by atomic rename, and keeps
//!   what the previous publish referenced for a grace period.
//! * **Incremental.** Rendered paragraphs and compressed index chunks are cached per
//!   publication, so a republish after a small change costs work proportional to the change.
//!
//! # Not here
//!
//! HTTP serving, authentication, persistence of models and mirrors' network transport (the
//! daemon implements [`mirror::Fetch`]) live in other crates; `.deb` parsing and building live in `spindle-deb`.

pub mod catalog;
mod fsutil;
pub mod mirror;
pub mod pack;
pub mod package;
pub mod pool;
pub mod publish;
pub mod query;
pub mod records;
pub mod repo;
pub mod sign;
pub mod upload;

pub use catalog::{Catalog, CatalogError, Inserted, KnownPackages};
pub use package::{PackageError, PackageKey, PackageRef};
pub use pool::{Pool, PoolError};
pub use publish::{
    ComponentInput, IndexCache, PublishError, PublishOptions, PublishPlan, Publisher,
    PublisherOptions,
};
pub use query::{Query, QueryError};
pub use repo::{MergeMode, Repo, RepoError, Snapshot, SnapshotDiff};
pub use sign::{KeyAlgorithm, SignError, SigningKey};
