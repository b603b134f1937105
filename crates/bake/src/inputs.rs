//! The planner's [`Inputs`] from the real world: file contents on the host and images in the
//! bake store.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use spindle_runtime::ImageStore;

use crate::plan::Inputs;
use crate::recipe::Base;

/// Reads the host and the bake store.
pub struct HostInputs<'a> {
    pub store: &'a ImageStore,
    /// The bake directory (Debian indexes are kept there by digest).
    pub cache: &'a Path,
}

fn hash_tree(h: &mut Sha256, root: &Path, path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let rel = path.strip_prefix(root).unwrap_or(Path::new(""));
    h.update(rel.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update((meta.mode() & 0o7777).to_le_bytes());
    let ft = meta.file_type();
    if ft.is_symlink() {
        h.update(b"l");
        h.update(fs::read_link(path)?.as_os_str().as_encoded_bytes());
    } else if ft.is_dir() {
        h.update(b"d");
        let mut names: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            hash_tree(h, root, &path.join(n))?;
        }
    } else {
        h.update(b"f");
        h.update(meta.len().to_le_bytes());
        let mut f = fs::File::open(path)?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    h.update([0xff]);
    Ok(())
}

/// sha256 over a file's or a directory tree's names, kinds, modes and contents.
pub fn content_digest(path: &Path) -> io::Result<String> {
    let mut h = Sha256::new();
    hash_tree(&mut h, path, path)?;
    Ok(hex::encode(h.finalize()))
}

impl Inputs for HostInputs<'_> {
    fn content_digest(&self, path: &Path) -> Result<String, String> {
        content_digest(path).map_err(|e| format!("cannot read `{}`: {e}", path.display()))
    }

    fn base_key(&self, base: &Base) -> Result<String, String> {
        match base {
            Base::Scratch => Ok("scratch".into()),
            Base::Image(r) => {
                let img = self.store.inspect(r).map_err(|_| {
                    format!("no image `{r}` in the bake store (bake it first, or import it with `spindle bake import`)")
                })?;
                Ok(img
                    .layers
                    .iter()
                    .map(|l| l.diff_id.as_str())
                    .collect::<Vec<_>>()
                    .join(","))
            }
            Base::Debian { suite } => {
                // The key is the exact package set, so a mirror update that changes no
                // required package keeps the cached base.
                let mirror = crate::debian::host_mirror(suite)?;
                let idx = crate::debian::Index::fetch(&mirror, suite, self.cache)?;
                let pkgs = crate::debian::select(&idx.paragraphs)?;
                Ok(format!(
                    "debian:{suite}:minbase:{}",
                    pkgs.iter()
                        .map(|p| format!("{}={}", p.name, p.sha256))
                        .collect::<Vec<_>>()
                        .join(",")
                ))
            }
        }
    }

    fn resolve_packages(
        &self,
        base: &Base,
        repo: Option<&crate::recipe::AptRepo>,
        packages: &[String],
    ) -> Result<Vec<String>, String> {
        let Base::Debian { suite } = base else {
            return Err(format!(
                "apt needs a debian:SUITE base (this source's base is {base})"
            ));
        };
        let mirror = crate::debian::host_mirror(suite)?;
        let host = crate::debian::Index::fetch(&mirror, suite, self.cache)?;
        let mut searched = vec![format!("{mirror} {suite} main")];
        let mut ours = Vec::new();
        if let Some(r) = repo {
            if !r.keyring.is_file() {
                return Err(format!(
                    "keyring `{}` of repo {} is not a readable file",
                    r.keyring.display(),
                    r.url
                ));
            }
            ours = crate::debian::Index::fetch_signed(
                &r.url,
                &r.distribution,
                &r.component,
                &r.keyring,
                self.cache,
            )?
            .paragraphs;
            searched.push(format!("{} {} {}", r.url, r.distribution, r.component));
        }
        crate::debian::pin_preferring_repo(&ours, &host.paragraphs, packages).map_err(|missing| {
            format!(
                "package(s) {} not found in {} (the repos searched)",
                missing.join(", "),
                searched.join("; ")
            )
        })
    }
}
