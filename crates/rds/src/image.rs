//! The engine images DB instances boot: baked by the daemon on first use from a recipe that
//! ships inside the binary, then found by tag. The tag carries a digest of the recipe, so a
//! second DB instance (or a restarted daemon) boots the same image without baking, and a
//! Spindle release with a changed recipe bakes a new one. The bake itself reuses the bake
//! cache's layers (the Debian base and the apt step, keyed by content as every bake is).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};
use spindle_bake::{BakeOptions, Baker, Selection, VarInputs};
use spindle_runtime::{RealKernel, Runtime};

use crate::RdsError;

/// The PostgreSQL engine's recipe (Debian's `postgresql` from the host's mirror).
pub const POSTGRES_RECIPE: &str = include_str!("../recipes/postgres.pkr.hcl");

/// The image tag of a recipe: `spindle-rds-postgres:` and 16 hex digits of its SHA-256.
pub fn engine_tag(recipe: &str) -> String {
    let d = Sha256::digest(recipe.as_bytes());
    format!("spindle-rds-postgres:{}", &hex::encode(d)[..16])
}

/// An engine image ready to boot.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineImage {
    pub id: String,
    pub tag: String,
    /// Seconds the bake took when this call baked it; `None` when it was already there.
    pub baked_seconds: Option<f64>,
}

/// Holds an exclusive `flock` on a file until dropped (bakes of one bake directory by two
/// daemons, or two tests, take turns).
struct FileLock(File);

impl FileLock {
    fn take(path: &Path) -> Result<Self, RdsError> {
        let f = File::create(path).map_err(|e| RdsError::io("create", path, e))?;
        // SAFETY: the descriptor is open for the call's duration (owned by `f`).
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(RdsError::io("lock", path, std::io::Error::last_os_error()));
        }
        Ok(FileLock(f))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: the descriptor is still open (owned by `self.0`).
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Returns the PostgreSQL engine image in `runtime`'s store, baking it in `bake_dir` first
/// if the store has no image under the recipe's tag. Blocks for the bake (minutes, once).
pub fn ensure_postgres(runtime: &Runtime, bake_dir: &Path) -> Result<EngineImage, RdsError> {
    ensure(runtime, bake_dir, POSTGRES_RECIPE)
}

fn ensure(runtime: &Runtime, bake_dir: &Path, recipe_text: &str) -> Result<EngineImage, RdsError> {
    let tag = engine_tag(recipe_text);
    if let Ok(id) = runtime.images().resolve(&tag) {
        return Ok(EngineImage {
            id,
            tag,
            baked_seconds: None,
        });
    }
    std::fs::create_dir_all(bake_dir).map_err(|e| RdsError::io("create", bake_dir, e))?;
    let _lock = FileLock::take(&bake_dir.join("rds-bake.lock"))?;
    // Another caller may have finished the same bake while this one waited.
    if let Ok(id) = runtime.images().resolve(&tag) {
        return Ok(EngineImage {
            id,
            tag,
            baked_seconds: None,
        });
    }
    let started = Instant::now();
    let recipe = spindle_bake::parse(
        "spindle:rds/postgres.pkr.hcl",
        bake_dir,
        recipe_text,
        &VarInputs::default(),
    )
    .map_err(|d| RdsError::Recipe(d.to_string()))?;
    let baker = Baker::open(bake_dir.to_path_buf(), RealKernel)?;
    let plan = spindle_bake::plan(&recipe, &Selection::default(), &baker.inputs())
        .map_err(|d| RdsError::Recipe(d.to_string()))?;
    let build = plan
        .builds
        .first()
        .ok_or_else(|| RdsError::Recipe("the engine recipe builds no image".into()))?;
    let baked = baker.bake(build, &BakeOptions::default())?;
    let archive: PathBuf = bake_dir.join(format!("rds-import-{}.oci.tar", baked.image.id));
    spindle_bake::output::write_oci_archive(baker.store(), &baked.image.id, &archive)?;
    let imported = runtime.images().import_oci_archive(&archive);
    let _ = std::fs::remove_file(&archive);
    let image = imported?;
    runtime.images().tag(&image.id, &tag)?;
    Ok(EngineImage {
        id: image.id,
        tag,
        baked_seconds: Some(started.elapsed().as_secs_f64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_recipe_parses_and_its_tag_follows_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = spindle_bake::parse(
            "postgres.pkr.hcl",
            dir.path(),
            POSTGRES_RECIPE,
            &VarInputs::default(),
        )
        .unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(recipe.builds.len(), 1);
        let tag = engine_tag(POSTGRES_RECIPE);
        assert!(tag.starts_with("spindle-rds-postgres:"), "{tag}");
        assert_eq!(tag, engine_tag(POSTGRES_RECIPE));
        assert_ne!(tag, engine_tag(&format!("{POSTGRES_RECIPE}\n# changed")));
    }
}
