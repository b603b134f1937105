//! A step's overlay upper directory as a reproducible OCI layer tar: entries sorted by path,
//! numeric owners and no owner names, every mtime `SOURCE_DATE_EPOCH`, hard links kept as
//! links, overlayfs whiteouts (0/0 character devices) as `.wh.NAME` files and opaque
//! directories as `.wh..wh..opq`. The same tree always gives the same bytes.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why a tree could not become a layer.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        err: io::Error,
    },
    #[error("cannot write the layer")]
    Write(#[source] io::Error),
    #[error("`{path}` is a device node; layers may not hold devices (create them at boot)")]
    Device { path: PathBuf },
}

/// `SOURCE_DATE_EPOCH` from the environment, or 0.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn header(kind: tar::EntryType, meta: &fs::Metadata, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(mtime);
    h.set_size(0);
    h
}

fn is_opaque(path: &Path) -> bool {
    let c = match std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        Ok(c) => c,
        Err(_) => return false,
    };
    let mut buf = [0u8; 4];
    // SAFETY: `c` is a valid NUL-terminated path; `buf` is a writable buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Writes `tree` as a layer tar to `out`, with every mtime set to `mtime`.
pub fn write_layer(tree: &Path, out: impl Write, mtime: u64) -> Result<(), LayerError> {
    let mut tb = tar::Builder::new(out);
    tb.follow_symlinks(false);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk(tree, tree, &mut tb, &mut links, mtime)?;
    tb.into_inner().map_err(LayerError::Write)?;
    Ok(())
}

fn walk<W: Write>(
    root: &Path,
    dir: &Path,
    tb: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), String>,
    mtime: u64,
) -> Result<(), LayerError> {
    let read = |p: &Path| {
        let p = p.to_path_buf();
        move |err| LayerError::Read { path: p, err }
    };
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(read(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read(dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = path
            .strip_prefix(root)
            .expect("under root")
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).map_err(read(&path))?;
        let ft = meta.file_type();
        let w = LayerError::Write;
        if ft.is_dir() {
            let mut h = header(tar::EntryType::Directory, &meta, mtime);
            tb.append_data(&mut h, format!("{rel}/"), io::empty())
                .map_err(w)?;
            if is_opaque(&path) {
                let mut h = header(tar::EntryType::Regular, &meta, mtime);
                h.set_mode(0o644);
                tb.append_data(&mut h, format!("{rel}/.wh..wh..opq"), io::empty())
                    .map_err(w)?;
            }
            walk(root, &path, tb, links, mtime)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(read(&path))?;
            let mut h = header(tar::EntryType::Symlink, &meta, mtime);
            tb.append_link(&mut h, &rel, target).map_err(w)?;
        } else if ft.is_char_device() && meta.rdev() == 0 {
            let wh = match rel.rsplit_once('/') {
                Some((parent, base)) => format!("{parent}/.wh.{base}"),
                None => format!(".wh.{rel}"),
            };
            let mut h = header(tar::EntryType::Regular, &meta, mtime);
            h.set_mode(0o644);
            tb.append_data(&mut h, wh, io::empty()).map_err(w)?;
        } else if ft.is_file() {
            let id = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&id) {
                    let mut h = header(tar::EntryType::Link, &meta, mtime);
                    tb.append_link(&mut h, &rel, first).map_err(w)?;
                    continue;
                }
                links.insert(id, rel.clone());
            }
            let mut h = header(tar::EntryType::Regular, &meta, mtime);
            h.set_size(meta.len());
            let f = fs::File::open(&path).map_err(read(&path))?;
            tb.append_data(&mut h, &rel, f).map_err(w)?;
        } else if ft.is_fifo() {
            let mut h = header(tar::EntryType::Fifo, &meta, mtime);
            tb.append_data(&mut h, &rel, io::empty()).map_err(w)?;
        } else if ft.is_socket() {
            // Sockets left behind by a step mean nothing in an image.
        } else {
            return Err(LayerError::Device { path });
        }
    }
    Ok(())
}
