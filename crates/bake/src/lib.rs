//! # spindle-bake: images from Packer-style recipes, one cached layer per step
//!
//! A recipe (`*.pkr.hcl`, a subset of Packer's HCL2 syntax) names sources (a base: `scratch`,
//! `debian:SUITE` or another image) and builds (provisioners run in order, then
//! post-processors). [`recipe::parse`] reads and validates it, reporting every problem with
//! `file:line:column`; [`plan::plan`] — pure — turns it into steps with cache keys;
//! [`build::Baker`] runs the steps whose layers are not cached yet, each inside the image tree
//! in private namespaces (through the runtime's `Kernel::run_in_tree`), and turns each step's
//! overlay upper directory into a reproducible layer ([`layer`]).
//!
//! ## Invariants
//! - The host is never written by a step: steps see the tree through an overlay in a private
//!   mount namespace; only the upper directory (in the bake's work area) changes.
//! - A step's layer is cached under its key only after the step succeeded and its layer tar is
//!   in the store; a failed step caches nothing.
//! - Layers are reproducible: entries sorted by path, numeric owners, every mtime set to
//!   `SOURCE_DATE_EPOCH` (0 when unset).
//! - This crate never calls `unshare` or `mount` itself (only `spindle-runtime` does).

pub mod build;
pub mod debian;
pub mod fmt;
pub mod inputs;
pub mod layer;
pub mod output;
pub mod plan;
pub mod qcow2;
pub mod recipe;

pub use build::{BakeError, BakeOptions, Baked, Baker, OnError};
pub use plan::{plan, Inputs, Plan, PlannedBuild, PlannedStep, Selection};
pub use recipe::{parse, AptRepo, Base, Diag, Diags, Recipe, Step, VarInputs};
