//! Layer trees: unpacking a tar with every entry checked (no escape from the tree, no
//! device nodes), overlayfs whiteouts and opaque directories, and the tar headers and
//! busybox root filesystem the tests and benches build images from.

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::{ioe, ImageError};

/// Lexically normalises an absolute in-image path; `None` if it climbs above the root.
pub(super) fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Checks one archive entry and returns its path relative to the tree root (`None` for the
/// root itself).
fn check_entry(entry: &tar::Entry<'_, impl Read>) -> Result<Option<PathBuf>, ImageError> {
    let raw = entry.path().map_err(ImageError::BadArchive)?.into_owned();
    let shown = raw.display().to_string();
    let unsafe_entry = |reason| ImageError::UnsafeEntry {
        entry: shown.clone(),
        reason,
    };
    let mut rel = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => return Err(unsafe_entry("path contains `..`")),
            Component::Prefix(_) => return Err(unsafe_entry("path has a prefix")),
        }
    }
    let kind = entry.header().entry_type();
    if kind.is_character_special() || kind.is_block_special() {
        return Err(unsafe_entry("device nodes are not allowed in layers"));
    }
    if kind.is_symlink() {
        let target = entry
            .link_name()
            .map_err(ImageError::BadArchive)?
            .ok_or_else(|| unsafe_entry("symlink without target"))?;
        let t = target.to_string_lossy();
        let parent = rel
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let joined = if t.starts_with('/') {
            t.to_string()
        } else {
            format!("/{parent}/{t}")
        };
        if normalize(&joined).is_none() {
            return Err(unsafe_entry("symlink points outside the image"));
        }
    }
    if kind.is_hard_link() {
        let target = entry
            .link_name()
            .map_err(ImageError::BadArchive)?
            .ok_or_else(|| unsafe_entry("hard link without target"))?;
        if target
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(unsafe_entry("hard link points outside the image"));
        }
    }
    Ok(if rel.as_os_str().is_empty() {
        None
    } else {
        Some(rel)
    })
}

/// Unpacks a tar stream into `dest` after checking every entry. With `whiteouts`, OCI whiteout
/// files become overlayfs whiteouts (0/0 character devices and opaque-directory xattrs).
pub(super) fn unpack_validated(
    reader: impl Read,
    dest: &Path,
    whiteouts: bool,
) -> Result<(), ImageError> {
    let mut ar = tar::Archive::new(reader);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(root);
    ar.set_overwrite(true);
    for entry in ar.entries().map_err(ImageError::BadArchive)? {
        let mut entry = entry.map_err(ImageError::BadArchive)?;
        let Some(rel) = check_entry(&entry)? else {
            continue;
        };
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if whiteouts {
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let parent = dest.join(rel.parent().unwrap_or(Path::new("")));
                fs::create_dir_all(&parent).map_err(ioe("create", &parent))?;
                if hidden == ".wh..opq" {
                    set_opaque(&parent)?;
                } else {
                    make_whiteout(&parent.join(hidden))?;
                }
                continue;
            }
        }
        entry.unpack_in(dest).map_err(|e| ImageError::Io {
            op: "unpack",
            path: dest.join(&rel),
            err: e,
        })?;
    }
    Ok(())
}

/// An overlayfs whiteout: a 0/0 character device.
pub(super) fn is_whiteout(md: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Whether a directory carries overlayfs's opaque mark.
pub(super) fn is_opaque(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut v = [0u8; 1];
    // SAFETY: `c` is a valid NUL-terminated path and `v` a writable buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n == 1 && v[0] == b'y'
}

fn make_whiteout(path: &Path) -> Result<(), ImageError> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path; a 0/0 character device is overlayfs's whiteout.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) } != 0 {
        return Err(ImageError::Io {
            op: "create whiteout",
            path: path.into(),
            err: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn set_opaque(dir: &Path) -> Result<(), ImageError> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: valid NUL-terminated path and attribute name; the value pointer/length describe "y".
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    if rc != 0 {
        return Err(ImageError::Io {
            op: "mark opaque",
            path: dir.into(),
            err: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// A GNU tar header owned by root with mtime 0, ready for `set_size`/`set_mode`.
pub(crate) fn new_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Builds a minimal busybox root filesystem tarball from the host's static busybox
/// (`apt-get install busybox-static`): `/bin/busybox`, applet symlinks, `/etc`, `/www`.
/// Used by tests and the benchmark; handy for developers too.
pub fn build_busybox_rootfs(out: &Path, busybox: &Path) -> io::Result<()> {
    let f = fs::File::create(out)?;
    let mut tb = tar::Builder::new(f);
    let dir = |tb: &mut tar::Builder<fs::File>, name: &str, mode: u32| {
        let mut h = crate::image::new_header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        tb.append_data(&mut h, name, io::empty())
    };
    for d in [
        "bin", "etc", "tmp", "www", "var", "var/lib", "proc", "sys", "dev", "root",
    ] {
        dir(&mut tb, d, if d == "tmp" { 0o1777 } else { 0o755 })?;
    }
    let mut bb = fs::File::open(busybox)?;
    let mut h = crate::image::new_header();
    h.set_size(bb.metadata()?.len());
    h.set_mode(0o755);
    h.set_mtime(0);
    tb.append_data(&mut h, "bin/busybox", &mut bb)?;
    for applet in [
        "sh", "ls", "pidof", "cat", "echo", "sort", "tail", "printf", "setpriv", "httpd", "sleep",
        "wget", "head", "tr", "ip", "hostname", "ps", "id", "env", "kill", "mkdir", "nc", "seq",
        "true", "false", "grep", "mount",
    ] {
        let mut h = crate::image::new_header();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(0);
        tb.append_link(&mut h, format!("bin/{applet}"), "/bin/busybox")?;
    }
    let files: [(&str, &str); 3] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("www/index.html", "hello from spindle\n"),
    ];
    for (name, content) in files {
        let mut h = crate::image::new_header();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        tb.append_data(&mut h, name, content.as_bytes())?;
    }
    tb.into_inner()?;
    Ok(())
}
