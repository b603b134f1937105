//! Digests of a project's inputs: what decides whether a package or an image is out of date.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("cannot read input `{}`", path.display())]
pub struct DigestError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The sha256 (hex) of the files under `paths` (files, or directories walked in name order):
/// each file's path relative to `base`, whether it is executable, and its contents; a symlink's
/// target instead of contents. Timestamps and owners don't count, so a fresh clone of the same
/// sources has the same digest.
pub fn digest_paths(base: &Path, paths: &[PathBuf]) -> Result<String, DigestError> {
    let mut h = Sha256::new();
    for p in paths {
        walk(base, p, &mut h)?;
    }
    Ok(hex::encode(h.finalize()))
}

fn walk(base: &Path, path: &Path, h: &mut Sha256) -> Result<(), DigestError> {
    let err = |source| DigestError {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::symlink_metadata(path).map_err(err)?;
    let rel = path.strip_prefix(base).unwrap_or(path).to_string_lossy();
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(err)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        entries.sort();
        h.update(format!("dir {rel}\0"));
        for e in entries {
            walk(base, &e, h)?;
        }
    } else if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(err)?;
        h.update(format!("link {rel}\0{}\0", target.to_string_lossy()));
    } else {
        use std::os::unix::fs::PermissionsExt;
        let exec = meta.permissions().mode() & 0o111 != 0;
        let data = std::fs::read(path).map_err(err)?;
        h.update(format!("file {rel} {exec} {}\0", data.len()));
        h.update(&data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_names_and_modes_count_times_do_not() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a.rs"), "fn a() {}").unwrap();
        std::fs::write(src.join("sub/b.rs"), "fn b() {}").unwrap();
        let digest = || digest_paths(d.path(), std::slice::from_ref(&src)).unwrap();
        let first = digest();
        // Rewriting the same bytes (a new mtime) changes nothing.
        std::fs::write(src.join("a.rs"), "fn a() {}").unwrap();
        assert_eq!(digest(), first);
        std::fs::write(src.join("a.rs"), "fn a() { }").unwrap();
        let changed = digest();
        assert_ne!(changed, first);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(src.join("a.rs"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(digest(), changed);
        std::fs::rename(src.join("sub/b.rs"), src.join("sub/c.rs")).unwrap();
        assert_ne!(digest(), changed);
        let e = digest_paths(d.path(), &[d.path().join("missing")]).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
