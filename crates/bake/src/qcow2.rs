//! The `qcow2` post-processor: the developer VM's disk, made from the same layers as the
//! production image.
//!
//! 1. The kernel comes from Debian's `linux-image-amd64` (and the versioned package it depends
//!    on), fetched from the mirror the host's apt sources name and verified like a Debian base
//!    ([`crate::debian`]); only `/boot/vmlinuz-*` and the few modules the boot needs are kept.
//! 2. The initramfs is built here: a static busybox from Debian's `busybox-static`, the modules
//!    to reach an ext4 root on a virtio disk (`virtio_pci`, `virtio_blk`, `ext4` and what their
//!    `modinfo` says they depend on, in load order) and an `/init` that loads them, mounts
//!    `root=` and `switch_root`s to `init=` (default `/sbin/init`, which the image provides).
//! 3. The image's layers are flattened (overlayfs whiteouts and opaque directories applied),
//!    the kernel and initramfs added as `/boot/vmlinuz` and `/boot/initrd.img`, and the tree
//!    written with `mkfs.ext4 -d` (fixed UUID, hash seed and time, so the filesystem does not
//!    vary between runs) and converted with `qemu-img convert -O qcow2`.
//!
//! The disk has a filesystem and no partition table or bootloader: qemu boots it directly
//! with the kernel and initramfs written next to it (`NAME.vmlinuz`, `NAME.initrd`), e.g.
//! `qemu-system-x86_64 -kernel dev.vmlinuz -initrd dev.initrd -append "root=/dev/vda
//! console=ttyS0" -drive file=dev.qcow2,if=virtio`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use spindle_runtime::ImageStore;

use crate::debian::{self, Pkg};

/// What the `qcow2` post-processor was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Spec {
    pub output: PathBuf,
    /// The Debian suite the kernel comes from.
    pub kernel_suite: String,
    /// The filesystem's size in MiB; `None` sizes it from the tree.
    pub size_mib: Option<u64>,
}

/// The modules a virtio disk with an ext4 root needs (when the kernel has them as modules).
const ROOT_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"];

/// The initramfs's `/init` (busybox sh).
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for m in $(cat /modules); do
  insmod /lib/modules/$m.ko || echo "spindle-initramfs: insmod $m failed"
done
root=/dev/vda
init=/sbin/init
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    root=*) root="${arg#root=}" ;;
    init=*) init="${arg#init=}" ;;
  esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 "$root" /newroot; then
  echo "spindle-initramfs: cannot mount $root"
  exec sh
fi
mkdir -p /newroot/dev /newroot/proc /newroot/sys
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot "$init"
"#;

fn err(what: impl std::fmt::Display) -> String {
    what.to_string()
}

fn io_at<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(io::Error) -> String + 'a {
    move |e| format!("{op} {}: {e}", p.display())
}

/// The newest version of `name` in the index.
fn newest(paragraphs: &[spindle_deb::control::Paragraph], name: &str) -> Option<Pkg> {
    let mut best: Option<(spindle_deb::Version, Pkg)> = None;
    for p in paragraphs {
        if p.get("Package") != Some(name) {
            continue;
        }
        let (Some(v), Some(f), Some(sha)) = (p.get("Version"), p.get("Filename"), p.get("SHA256"))
        else {
            continue;
        };
        let Ok(parsed) = spindle_deb::Version::parse(v) else {
            continue;
        };
        if best.as_ref().is_some_and(|(b, _)| *b >= parsed) {
            continue;
        }
        let pkg = Pkg {
            name: name.to_string(),
            version: v.to_string(),
            filename: f.to_string(),
            sha256: sha.to_string(),
            size: p.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
        };
        best = Some((parsed, pkg));
    }
    best.map(|(_, p)| p)
}

/// The kernel package `linux-image-amd64` points at (its first `linux-image-*` dependency).
fn kernel_packages(
    paragraphs: &[spindle_deb::control::Paragraph],
    suite: &str,
) -> Result<(Pkg, Pkg), String> {
    let missing =
        |n: &str| format!("package `{n}` is not in the {suite} index of the host's mirror");
    let meta = paragraphs
        .iter()
        .filter(|p| p.get("Package") == Some("linux-image-amd64"))
        .max_by_key(|p| {
            p.get("Version")
                .and_then(|v| spindle_deb::Version::parse(v).ok())
        })
        .ok_or_else(|| missing("linux-image-amd64"))?;
    let deps = meta.get("Depends").unwrap_or_default();
    let real = deps
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or_default())
        .find(|n| n.starts_with("linux-image-"))
        .ok_or_else(|| format!("linux-image-amd64 depends on no linux-image-* package: {deps}"))?;
    let kernel = newest(paragraphs, real).ok_or_else(|| missing(real))?;
    let busybox = newest(paragraphs, "busybox-static").ok_or_else(|| missing("busybox-static"))?;
    Ok((kernel, busybox))
}

/// Streams a .deb's `data.tar`, calling `keep` for each entry's path (without `./`); kept
/// regular files are written under `dest` at that path.
fn extract_some(deb: &Path, dest: &Path, keep: impl Fn(&str) -> bool) -> Result<(), String> {
    debian::with_data_tar(deb, |t| {
        for entry in t.entries().map_err(err)? {
            let mut entry = entry.map_err(err)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let rel: PathBuf = entry
                .path()
                .map_err(err)?
                .components()
                .filter(|c| matches!(c, std::path::Component::Normal(_)))
                .collect();
            if !keep(&rel.to_string_lossy()) {
                continue;
            }
            let out = dest.join(&rel);
            if let Some(p) = out.parent() {
                fs::create_dir_all(p).map_err(io_at("create", p))?;
            }
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).map_err(err)?;
            fs::write(&out, &buf).map_err(io_at("write", &out))?;
            let mode = entry.header().mode().unwrap_or(0o644);
            fs::set_permissions(&out, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io_at("chmod", &out))?;
        }
        Ok(())
    })
}

/// A module's `depends=` list, read from its `.modinfo` strings.
pub fn module_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('-', "_"))
        .collect()
}

/// The load order (dependencies first) of `wanted` and what they depend on, among the modules
/// present (`name -> path`); a wanted module that is absent is built into the kernel.
pub fn load_order(wanted: &[&str], deps: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    fn visit(
        m: &str,
        deps: &BTreeMap<String, Vec<String>>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if !deps.contains_key(m) || !seen.insert(m.to_string()) {
            return;
        }
        for d in &deps[m] {
            visit(d, deps, seen, out);
        }
        out.push(m.to_string());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for m in wanted {
        visit(m, deps, &mut seen, &mut out);
    }
    out
}

/// Appends one entry to a `newc` cpio archive.
fn cpio_entry(out: &mut Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    let name_z = name.len() + 1;
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name_z as u32,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Builds the initramfs (an uncompressed newc cpio) from busybox, modules (in load order) and
/// the init script.
pub fn initramfs(busybox: &[u8], modules: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ino = 1;
    let mut add = |out: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]| {
        cpio_entry(out, ino, name, mode, data);
        ino += 1;
    };
    for d in ["bin", "dev", "proc", "sys", "lib", "lib/modules", "newroot"] {
        add(&mut out, d, 0o040755, &[]);
    }
    add(&mut out, "bin/busybox", 0o100755, busybox);
    add(&mut out, "bin/sh", 0o120777, b"busybox");
    add(&mut out, "init", 0o100755, INIT.as_bytes());
    let mut list = String::new();
    for (name, ko) in modules {
        add(&mut out, &format!("lib/modules/{name}.ko"), 0o100644, ko);
        list.push_str(name);
        list.push('\n');
    }
    add(&mut out, "modules", 0o100644, list.as_bytes());
    cpio_entry(&mut out, 0, "TRAILER!!!", 0, &[]);
    out
}

/// Copies the image's layers, lowest first, into `dest`, applying overlayfs whiteouts
/// (0/0 character devices) and opaque directories.
pub fn flatten(layers: &[PathBuf], dest: &Path) -> Result<(), String> {
    fs::create_dir_all(dest).map_err(io_at("create", dest))?;
    for l in layers {
        merge_dir(l, dest)?;
    }
    Ok(())
}

fn is_whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() && m.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    xattr_get(p, "trusted.overlay.opaque").is_some_and(|v| v == b"y")
}

fn xattr_get(p: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = [0u8; 8];
    // SAFETY: valid NUL-terminated strings and a buffer of the length given.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn remove_any(p: &Path) -> Result<(), String> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(io_at("remove", p)),
        Ok(_) => fs::remove_file(p).map_err(io_at("remove", p)),
        Err(_) => Ok(()),
    }
}

fn own(p: &Path, m: &fs::Metadata) -> Result<(), String> {
    std::os::unix::fs::lchown(p, Some(m.uid()), Some(m.gid())).map_err(io_at("chown", p))
}

fn merge_dir(src: &Path, dest: &Path) -> Result<(), String> {
    let mut names: Vec<_> = fs::read_dir(src)
        .map_err(io_at("read", src))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_at("read", src))?;
    names.sort();
    for name in names {
        let s = src.join(&name);
        let d = dest.join(&name);
        let m = fs::symlink_metadata(&s).map_err(io_at("stat", &s))?;
        if is_whiteout(&m) {
            remove_any(&d)?;
            continue;
        }
        if m.is_dir() {
            let existing = fs::symlink_metadata(&d).ok();
            if existing.as_ref().is_some_and(|e| !e.is_dir()) || is_opaque(&s) {
                remove_any(&d)?;
            }
            if fs::symlink_metadata(&d).is_err() {
                fs::create_dir(&d).map_err(io_at("create", &d))?;
            }
            merge_dir(&s, &d)?;
            fs::set_permissions(&d, fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(io_at("chmod", &d))?;
            own(&d, &m)?;
            continue;
        }
        remove_any(&d)?;
        if m.file_type().is_symlink() {
            let target = fs::read_link(&s).map_err(io_at("readlink", &s))?;
            std::os::unix::fs::symlink(&target, &d).map_err(io_at("symlink", &d))?;
        } else if m.is_file() {
            fs::copy(&s, &d).map_err(io_at("copy", &s))?;
            fs::set_permissions(&d, fs::Permissions::from_mode(m.mode() & 0o7777))
                .map_err(io_at("chmod", &d))?;
        } else {
            // Sockets and fifos are not carried into the disk; layers hold no device nodes.
            continue;
        }
        own(&d, &m)?;
    }
    Ok(())
}

fn tree_bytes(p: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    let mut n = m.len().div_ceil(4096) * 4096;
    if m.is_dir() {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                n += tree_bytes(&e.path());
            }
        }
    }
    n
}

fn run(cmd: &mut Command, hint: &str) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("run {shown} ({hint}): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The files the post-processor wrote: the disk, the kernel and the initramfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qcow2Files {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// The Debian kernel package version used.
    pub kernel_version: String,
}

/// Writes `image` as a qcow2 disk (and its kernel and initramfs) as `spec` asks. Temporary
/// files live under `cache/tmp`; a failure leaves no output file.
pub fn write_qcow2(
    store: &ImageStore,
    cache: &Path,
    image: &str,
    spec: &Qcow2Spec,
) -> Result<Qcow2Files, String> {
    let img = store.inspect(image).map_err(err)?;
    let suite = &spec.kernel_suite;
    let mirror = debian::host_mirror(suite)?;
    let idx = debian::Index::fetch(&mirror, suite, cache)?;
    let (kpkg, bpkg) = kernel_packages(&idx.paragraphs, suite)?;
    let debs = debian::download(&mirror, &[kpkg.clone(), bpkg], cache)?;

    let tmp_root = cache.join("tmp");
    fs::create_dir_all(&tmp_root).map_err(io_at("create", &tmp_root))?;
    let work = WorkDir(tmp_root.join(format!(
        "qcow2-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )));
    fs::create_dir(&work.0).map_err(io_at("create", &work.0))?;
    let w = work.0.as_path();

    // The kernel and the modules of the root path.
    let kdir = w.join("kernel");
    extract_some(&debs[0], &kdir, |n| {
        n.starts_with("boot/vmlinuz-")
            || (n.contains("/kernel/")
                && (n.contains("/fs/")
                    || n.contains("/drivers/")
                    || n.contains("/crypto/")
                    || n.contains("/lib/")
                    || n.contains("/arch/")))
    })?;
    let vmlinuz = find_file(&kdir.join("boot"), "vmlinuz-")
        .ok_or_else(|| format!("{}: no /boot/vmlinuz-*", kpkg.filename))?;
    let mut modules: BTreeMap<String, PathBuf> = BTreeMap::new();
    collect_modules(&kdir, &mut modules);
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut bodies: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, path) in &modules {
        let body = read_module(path)?;
        deps.insert(name.clone(), module_depends(&body));
        bodies.insert(name.clone(), body);
    }
    let order = load_order(ROOT_MODULES, &deps);
    let mods: Vec<(String, Vec<u8>)> = order
        .iter()
        .map(|m| (m.clone(), bodies.remove(m).unwrap_or_default()))
        .collect();

    let bdir = w.join("busybox");
    extract_some(&debs[1], &bdir, |n| {
        n == "bin/busybox" || n == "usr/bin/busybox"
    })?;
    let bb_path = [bdir.join("bin/busybox"), bdir.join("usr/bin/busybox")]
        .into_iter()
        .find(|p| p.exists())
        .ok_or("busybox-static has no bin/busybox")?;
    let busybox = fs::read(&bb_path).map_err(io_at("read", &bb_path))?;
    let initrd_bytes = initramfs(&busybox, &mods);

    // The root filesystem: the image's layers plus the kernel and the initramfs.
    let root = w.join("root");
    flatten(&store.layer_dirs(&img), &root)?;
    for d in ["boot", "dev", "proc", "sys", "tmp", "run"] {
        let p = root.join(d);
        if fs::symlink_metadata(&p).is_err() {
            fs::create_dir(&p).map_err(io_at("create", &p))?;
        }
    }
    fs::copy(&vmlinuz, root.join("boot/vmlinuz")).map_err(io_at("copy", &vmlinuz))?;
    fs::write(root.join("boot/initrd.img"), &initrd_bytes).map_err(io_at("write", &root))?;

    let used_mib = tree_bytes(&root) / (1 << 20);
    let size_mib = spec.size_mib.unwrap_or(used_mib + used_mib / 3 + 64);
    if size_mib <= used_mib {
        return Err(format!(
            "qcow2: size {size_mib} MiB is smaller than the tree ({used_mib} MiB)"
        ));
    }
    let raw = w.join("disk.raw");
    fs::File::create(&raw)
        .and_then(|f| f.set_len(size_mib << 20))
        .map_err(io_at("create", &raw))?;
    // A filesystem that depends only on the image: UUID and hash seed from its id, times from
    // SOURCE_DATE_EPOCH.
    let h = Sha256::digest(img.id.as_bytes());
    let uuid = |b: &[u8]| {
        let x = hex::encode(&b[..16]);
        format!(
            "{}-{}-{}-{}-{}",
            &x[..8],
            &x[8..12],
            &x[12..16],
            &x[16..20],
            &x[20..]
        )
    };
    run(
        Command::new("mkfs.ext4")
            .env(
                "E2FSPROGS_FAKE_TIME",
                crate::layer::source_date_epoch().to_string(),
            )
            .args(["-q", "-F", "-L", "spindle-root", "-U"])
            .arg(uuid(&h[..16]))
            .arg("-E")
            .arg(format!("hash_seed={},root_owner=0:0", uuid(&h[16..])))
            .arg("-d")
            .arg(&root)
            .arg(&raw),
        "apt-get install e2fsprogs",
    )?;

    let out = &spec.output;
    if let Some(p) = out.parent() {
        fs::create_dir_all(p).map_err(io_at("create", p))?;
    }
    let tmp_out = w.join("disk.qcow2");
    run(
        Command::new("qemu-img")
            .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&tmp_out),
        "apt-get install qemu-utils",
    )?;
    let kernel = out.with_extension("vmlinuz");
    let initrd = out.with_extension("initrd");
    fs::copy(&vmlinuz, &kernel).map_err(io_at("write", &kernel))?;
    fs::write(&initrd, &initrd_bytes).map_err(io_at("write", &initrd))?;
    // Same filesystem as `work`, or a copy when the output is elsewhere.
    if fs::rename(&tmp_out, out).is_err() {
        let staged = out.with_extension("qcow2-tmp");
        fs::copy(&tmp_out, &staged).map_err(io_at("write", &staged))?;
        fs::rename(&staged, out).map_err(io_at("rename", out))?;
    }
    Ok(Qcow2Files {
        disk: out.clone(),
        kernel,
        initrd,
        kernel_version: format!("{}={}", kpkg.name, kpkg.version),
    })
}

/// A scratch directory removed when dropped, on success and failure alike.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn find_file(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    v.sort();
    v.pop()
}

fn collect_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_modules(&p, out);
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let stem = name
            .strip_suffix(".ko")
            .or_else(|| name.strip_suffix(".ko.xz"));
        if let Some(stem) = stem {
            out.insert(stem.replace('-', "_"), p);
        }
    }
}

fn read_module(p: &Path) -> Result<Vec<u8>, String> {
    let raw = fs::read(p).map_err(io_at("read", p))?;
    if p.extension().is_some_and(|e| e == "xz") {
        let mut out = Vec::new();
        spindle_deb::compress::decoder(spindle_deb::Compression::Xz, &raw[..])
            .and_then(|mut d| d.read_to_end(&mut out))
            .map_err(|e| format!("{}: {e}", p.display()))?;
        return Ok(out);
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_depends_reads_the_modinfo_string() {
        let ko = b"\x7fELF....\0license=GPL\0depends=jbd2,mbcache,crc16\0intree=Y\0";
        assert_eq!(module_depends(ko), ["jbd2", "mbcache", "crc16"]);
        assert!(module_depends(b"\0depends=\0").is_empty());
        assert!(module_depends(b"no modinfo").is_empty());
    }

    #[test]
    fn load_order_puts_dependencies_first_and_skips_built_ins() {
        let mut deps = BTreeMap::new();
        deps.insert(
            "ext4".to_string(),
            vec!["jbd2".into(), "mbcache".into(), "crc16".into()],
        );
        deps.insert("jbd2".to_string(), vec![]);
        deps.insert("mbcache".to_string(), vec![]);
        deps.insert("virtio_blk".to_string(), vec![]);
        let order = load_order(&["virtio_pci", "virtio_blk", "ext4"], &deps);
        assert_eq!(order, ["virtio_blk", "jbd2", "mbcache", "ext4"]);
    }

    #[test]
    fn initramfs_is_a_newc_archive_with_a_trailer() {
        let a = initramfs(b"BB", &[("ext4".into(), b"KO".to_vec())]);
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        let text = String::from_utf8_lossy(&a);
        for name in [
            "bin/busybox",
            "init",
            "lib/modules/ext4.ko",
            "modules",
            "TRAILER!!!",
        ] {
            assert!(text.contains(name), "{name} missing");
        }
    }
}
