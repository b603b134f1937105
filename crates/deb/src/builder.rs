//! Building .deb files from an in-memory [`Package`]: no file system access, so the same
//! `Package` and [`BuildOptions`] always give the same bytes.
//!
//! Reproducibility rules: entries sorted component by component (parents first, siblings in
//! byte order, symlinks last, all as dpkg-deb does), every mtime set to `source_date_epoch`,
//! numeric owners with the name `root` only for id 0, deterministic compression, ar members
//! with uid/gid 0 and mode 0644.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use crate::ar::{ArError, ArWriter};
use crate::compress::{compress, Compression};
use crate::control::{ControlError, Paragraph};
use crate::digest::{digest_bytes, md5_hex, FileDigests};
use crate::fields::{describe_all, validate_binary_control, FieldError};
use crate::reader::canonical_file_name;
use crate::tarw::{write_tar, TarEntry, TarKind};

/// Maintainer scripts, written with mode 0755.
pub const SCRIPT_NAMES: &[&str] = &["preinst", "postinst", "prerm", "postrm", "config"];
/// Other control members a package may carry, written with mode 0644.
pub const DATA_CONTROL_NAMES: &[&str] = &["templates", "triggers", "shlibs", "symbols"];

/// Why a package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid control fields: {}", describe_all(.0))]
    Fields(Vec<FieldError>),
    #[error("cannot set control field")]
    Control(#[source] ControlError),
    #[error("path `{path}` is invalid: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("path `{path}` is given more than once")]
    Duplicate { path: String },
    #[error("`{path}` needs `{parent}` to be a directory, but it is not")]
    ParentNotDir { path: String, parent: String },
    #[error("conffile `{path}` is not a regular file in the package")]
    Conffile { path: String },
    #[error(
        "control member `{name}` is not allowed (known: {SCRIPT_NAMES:?}, {DATA_CONTROL_NAMES:?})"
    )]
    ControlMemberName { name: String },
    #[error("maintainer script `{name}` does not start with `#!`")]
    NoShebang { name: String },
    #[error("symlink `{path}` has an empty target")]
    EmptySymlink { path: String },
    #[error("cannot compress `{member}` with {compression:?}")]
    Compress {
        member: String,
        compression: Compression,
        #[source]
        source: io::Error,
    },
    #[error("failed to write the package")]
    Write(#[source] io::Error),
}

/// What a file system entry of the package is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryData {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

/// One entry of the installed tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute install path (`/usr/bin/hello`).
    pub path: String,
    pub data: EntryData,
    /// Permission bits; ignored for symlinks (always 0777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// A package to build: control fields, control members and the installed tree.
/// Parent directories missing from `entries` are added as root-owned 0755 directories.
#[derive(Debug, Clone, Default)]
pub struct Package {
    /// The control paragraph. `Installed-Size` is computed and replaces any value given.
    pub control: Paragraph,
    /// Maintainer scripts and other control members by name (`postinst`, `triggers`, ...).
    pub control_files: BTreeMap<String, Vec<u8>>,
    /// Absolute paths of conffiles; each must be a regular file in `entries`.
    pub conffiles: Vec<String>,
    pub entries: Vec<Entry>,
}

/// Build settings that are not part of the package itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOptions {
    /// Compression of both `control.tar` and `data.tar`.
    pub compression: Compression,
    /// Every timestamp in the package (the `SOURCE_DATE_EPOCH` convention).
    pub source_date_epoch: u64,
}

/// A built package and what an index needs to know about it.
#[derive(Debug, Clone)]
pub struct BuiltDeb {
    pub bytes: Vec<u8>,
    /// The control paragraph as written, with `Installed-Size`.
    pub control: Paragraph,
    /// `name_version_arch.deb`.
    pub file_name: String,
    pub digests: FileDigests,
}

/// Checks an absolute install path: starts with `/`, no empty, `.` or `..` components, no
/// trailing slash, no NUL. Returns the reason when it is rejected.
pub fn check_install_path(path: &str) -> Result<(), &'static str> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("must be absolute (start with `/`)");
    };
    if rest.is_empty() {
        return Err("must not be the root directory");
    }
    if path.contains('\0') {
        return Err("must not contain NUL");
    }
    for component in rest.split('/') {
        match component {
            "" => return Err("must not contain empty components or end in `/`"),
            "." | ".." => return Err("must not contain `.` or `..` components"),
            _ => {}
        }
    }
    Ok(())
}

/// Builds the package into memory.
pub fn build_deb(package: &Package, options: &BuildOptions) -> Result<BuiltDeb, BuildError> {
    let (bytes, control) = assemble(package, options)?;
    let file_name = canonical_file_name(
        control.get("Package").unwrap_or_default(),
        control.get("Version").unwrap_or_default(),
        control.get("Architecture").unwrap_or_default(),
    );
    let digests = digest_bytes(&bytes);
    Ok(BuiltDeb {
        bytes,
        control,
        file_name,
        digests,
    })
}

/// Builds the package and writes it to `out`, returning it without the bytes.
pub fn write_deb(
    package: &Package,
    options: &BuildOptions,
    mut out: impl Write,
) -> Result<BuiltDeb, BuildError> {
    let mut built = build_deb(package, options)?;
    out.write_all(&built.bytes).map_err(BuildError::Write)?;
    out.flush().map_err(BuildError::Write)?;
    built.bytes = Vec::new();
    Ok(built)
}

/// The sort key that puts parents before children: the list of path components.
fn sort_key(path: &str) -> Vec<&str> {
    path.split('/').filter(|c| !c.is_empty()).collect()
}

fn assemble(package: &Package, options: &BuildOptions) -> Result<(Vec<u8>, Paragraph), BuildError> {
    let epoch = options.source_date_epoch;

    // The installed tree, keyed so that parents sort before children.
    let mut tree: BTreeMap<Vec<&str>, &Entry> = BTreeMap::new();
    for entry in &package.entries {
        check_install_path(&entry.path).map_err(|reason| BuildError::BadPath {
            path: entry.path.clone(),
            reason,
        })?;
        if let EntryData::Symlink(target) = &entry.data {
            if target.is_empty() {
                return Err(BuildError::EmptySymlink {
                    path: entry.path.clone(),
                });
            }
        }
        if tree.insert(sort_key(&entry.path), entry).is_some() {
            return Err(BuildError::Duplicate {
                path: entry.path.clone(),
            });
        }
    }
    let implied_dir = Entry {
        path: String::new(),
        data: EntryData::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
    };
    let mut implied: BTreeSet<Vec<&str>> = BTreeSet::new();
    for (key, entry) in &tree {
        for depth in 1..key.len() {
            let parent = &key[..depth];
            match tree.get(parent) {
                Some(p) if p.data != EntryData::Dir => {
                    return Err(BuildError::ParentNotDir {
                        path: entry.path.clone(),
                        parent: p.path.clone(),
                    })
                }
                Some(_) => {}
                None => {
                    implied.insert(parent.to_vec());
                }
            }
        }
    }
    let mut all: BTreeMap<Vec<&str>, &Entry> = tree.clone();
    for key in implied {
        all.insert(key, &implied_dir);
    }

    for conffile in &package.conffiles {
        match tree.get(&sort_key(conffile)) {
            Some(e) if matches!(e.data, EntryData::File(_)) && conffile.starts_with('/') => {}
            _ => {
                return Err(BuildError::Conffile {
                    path: conffile.clone(),
                })
            }
        }
    }

    // Installed-Size in KiB, by dpkg-gencontrol's rules: file and symlink sizes rounded up
    // to whole KiB each, 1 KiB for every directory (the root included).
    let mut installed_kib: u64 = 1;
    let mut md5sums = String::new();
    let mut data_paths: Vec<(String, &Entry)> = vec![("./".to_string(), &implied_dir)];
    // Like dpkg-deb, symlinks go after everything else, so that unpacking never creates a
    // file through a symlink made earlier in the same archive.
    let mut symlink_paths: Vec<(String, &Entry)> = Vec::new();
    for (key, entry) in &all {
        let joined = key.join("/");
        match &entry.data {
            EntryData::File(bytes) => {
                installed_kib += (bytes.len() as u64).div_ceil(1024);
                md5sums.push_str(&format!("{}  {joined}\n", md5_hex(bytes)));
                data_paths.push((format!("./{joined}"), entry));
            }
            EntryData::Symlink(target) => {
                installed_kib += (target.len() as u64).div_ceil(1024);
                symlink_paths.push((format!("./{joined}"), entry));
            }
            EntryData::Dir => {
                installed_kib += 1;
                data_paths.push((format!("./{joined}/"), entry));
            }
        }
    }

    data_paths.append(&mut symlink_paths);

    let mut control = package.control.clone();
    control
        .set("Installed-Size", installed_kib.to_string())
        .map_err(BuildError::Control)?;
    validate_binary_control(&control).map_err(BuildError::Fields)?;

    let data_entries: Vec<TarEntry<'_>> = data_paths
        .iter()
        .map(|(path, entry)| TarEntry {
            path,
            kind: match &entry.data {
                EntryData::File(bytes) => TarKind::File(bytes),
                EntryData::Dir => TarKind::Dir,
                EntryData::Symlink(target) => TarKind::Symlink(target),
            },
            mode: match entry.data {
                EntryData::Symlink(_) => 0o777,
                _ => entry.mode & 0o7777,
            },
            uid: entry.uid,
            gid: entry.gid,
            mtime: epoch,
        })
        .collect();
    let mut data_tar = Vec::new();
    write_tar(&data_entries, &mut data_tar);

    // Control members, sorted by name.
    let control_text = control.to_string();
    let conffiles_text: String = package.conffiles.iter().map(|c| format!("{c}\n")).collect();
    let mut members: BTreeMap<&str, (&[u8], u32)> = BTreeMap::new();
    members.insert("control", (control_text.as_bytes(), 0o644));
    if !md5sums.is_empty() {
        members.insert("md5sums", (md5sums.as_bytes(), 0o644));
    }
    if !conffiles_text.is_empty() {
        members.insert("conffiles", (conffiles_text.as_bytes(), 0o644));
    }
    for (name, data) in &package.control_files {
        let mode = if SCRIPT_NAMES.contains(&name.as_str()) {
            if !data.starts_with(b"#!") {
                return Err(BuildError::NoShebang { name: name.clone() });
            }
            0o755
        } else if DATA_CONTROL_NAMES.contains(&name.as_str()) {
            0o644
        } else {
            return Err(BuildError::ControlMemberName { name: name.clone() });
        };
        members.insert(name, (data, mode));
    }
    let control_paths: Vec<String> = members.keys().map(|n| format!("./{n}")).collect();
    let mut control_entries = vec![TarEntry {
        path: "./",
        kind: TarKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: epoch,
    }];
    for (path, (data, mode)) in control_paths.iter().zip(members.values()) {
        control_entries.push(TarEntry {
            path,
            kind: TarKind::File(data),
            mode: *mode,
            uid: 0,
            gid: 0,
            mtime: epoch,
        });
    }
    let mut control_tar = Vec::new();
    write_tar(&control_entries, &mut control_tar);

    let compression = options.compression;
    let compressed = |member: &str, data: &[u8]| {
        compress(compression, data).map_err(|source| BuildError::Compress {
            member: member.to_string(),
            compression,
            source,
        })
    };
    let control_name = format!("control.tar{}", compression.suffix());
    let data_name = format!("data.tar{}", compression.suffix());
    let control_member = compressed(&control_name, &control_tar)?;
    let data_member = compressed(&data_name, &data_tar)?;

    let ar_err = |e: ArError| match e {
        ArError::Io(e) => BuildError::Write(e),
        other => BuildError::Write(io::Error::other(other)),
    };
    let mut ar = ArWriter::new(Vec::new()).map_err(BuildError::Write)?;
    ar.append("debian-binary", epoch, b"2.0\n")
        .map_err(ar_err)?;
    ar.append(&control_name, epoch, &control_member)
        .map_err(ar_err)?;
    ar.append(&data_name, epoch, &data_member).map_err(ar_err)?;
    let bytes = ar.finish().map_err(BuildError::Write)?;
    Ok((bytes, control))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::parse_paragraph;
    use crate::reader::{read_deb, EntryKind};

    fn file(path: &str, data: &[u8], mode: u32) -> Entry {
        Entry {
            path: path.into(),
            data: EntryData::File(data.to_vec()),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    fn sample() -> Package {
        let mut control_files = BTreeMap::new();
        control_files.insert("postinst".to_string(), b"#!/bin/sh\nexit 0\n".to_vec());
        Package {
            control: parse_paragraph(
                "Package: sample\nVersion: 1.0-1\nArchitecture: all\nMaintainer: A <a@example.com>\nDescription: a sample\n",
            )
            .unwrap(),
            control_files,
            conffiles: vec!["/etc/sample.conf".into()],
            entries: vec![
                file("/usr/bin/sample", &[b'x'; 1025], 0o755),
                file("/etc/sample.conf", b"key=value\n", 0o644),
                file("/usr/share/doc/sample/empty", b"", 0o644),
                Entry {
                    path: "/usr/bin/sample-link".into(),
                    data: EntryData::Symlink("sample".into()),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
                Entry {
                    path: "/var/lib/sample".into(),
                    data: EntryData::Dir,
                    mode: 0o750,
                    uid: 0,
                    gid: 4,
                },
            ],
        }
    }

    const OPTIONS: BuildOptions = BuildOptions {
        compression: Compression::Gzip,
        source_date_epoch: 1_700_000_000,
    };

    #[test]
    fn built_package_reads_back() {
        let built = build_deb(&sample(), &OPTIONS).unwrap();
        assert_eq!(built.file_name, "sample_1.0-1_all.deb");
        let info = read_deb(&built.bytes[..]).unwrap();
        assert_eq!(info.digests, built.digests);
        assert_eq!(info.control, built.control);
        // 1 (root) + dirs etc, usr, usr/bin, usr/share, usr/share/doc,
        // usr/share/doc/sample, var, var/lib, var/lib/sample = 9, file 1025 B = 2,
        // conf = 1, empty = 0, symlink = 1.
        assert_eq!(info.control.get("Installed-Size"), Some("14"));
        let paths: Vec<&str> = info.data_entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "./",
                "./etc/",
                "./etc/sample.conf",
                "./usr/",
                "./usr/bin/",
                "./usr/bin/sample",
                "./usr/share/",
                "./usr/share/doc/",
                "./usr/share/doc/sample/",
                "./usr/share/doc/sample/empty",
                "./var/",
                "./var/lib/",
                "./var/lib/sample/",
                "./usr/bin/sample-link",
            ]
        );
        let var_lib = &info.data_entries[12];
        assert_eq!((var_lib.mode, var_lib.gid), (0o750, 4));
        assert!(info
            .data_entries
            .iter()
            .all(|e| e.mtime == OPTIONS.source_date_epoch));
        assert_eq!(
            info.data_entries[13].kind,
            EntryKind::Symlink {
                target: "sample".into()
            }
        );
        let names: Vec<&str> = info
            .control_members
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(names, ["conffiles", "control", "md5sums", "postinst"]);
        assert_eq!(
            info.control_member("conffiles"),
            Some(&b"/etc/sample.conf\n"[..])
        );
        assert_eq!(info.control_members[3].mode, 0o755);
        assert!(info.md5sum_mismatches().is_empty());
    }

    #[test]
    fn reproducible_and_sensitive_to_inputs() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let options = BuildOptions {
                compression,
                ..OPTIONS
            };
            let a = build_deb(&sample(), &options).unwrap();
            let mut shuffled = sample();
            shuffled.entries.reverse();
            let b = build_deb(&shuffled, &options).unwrap();
            assert_eq!(a.bytes, b.bytes, "{compression:?}");
            let later = BuildOptions {
                source_date_epoch: 1_700_000_001,
                ..options
            };
            assert_ne!(a.bytes, build_deb(&sample(), &later).unwrap().bytes);
        }
    }

    #[test]
    fn invalid_packages() {
        type Mutation = fn(&mut Package);
        let cases: &[(Mutation, &str)] = &[
            (|p| p.entries[0].path = "usr/bin/x".into(), "BadPath"),
            (|p| p.entries[0].path = "/usr/../etc/x".into(), "BadPath"),
            (|p| p.entries[0].path = "/usr/bin/".into(), "BadPath"),
            (|p| p.entries[0].path = "/".into(), "BadPath"),
            (
                |p| p.entries[0].path = "/etc/sample.conf".into(),
                "Duplicate",
            ),
            (
                |p| p.entries[0].path = "/etc/sample.conf/inner".into(),
                "ParentNotDir",
            ),
            (|p| p.conffiles.push("/etc/missing".into()), "Conffile"),
            (|p| p.conffiles.push("/var/lib/sample".into()), "Conffile"),
            (
                |p| {
                    p.control_files
                        .insert("postrm".into(), b"echo no shebang".to_vec());
                },
                "NoShebang",
            ),
            (
                |p| {
                    p.control_files.insert("md5sums".into(), b"x".to_vec());
                },
                "ControlMemberName",
            ),
            (
                |p| p.entries[3].data = EntryData::Symlink(String::new()),
                "EmptySymlink",
            ),
            (|p| p.control.set("Version", "v1").unwrap(), "Fields"),
            (
                |p| {
                    p.control.remove("Architecture");
                },
                "Fields",
            ),
        ];
        for (mutate, want) in cases {
            let mut p = sample();
            mutate(&mut p);
            let err = build_deb(&p, &OPTIONS).unwrap_err();
            assert!(format!("{err:?}").starts_with(want), "{want}: got {err:?}");
        }
    }

    #[test]
    fn install_path_rules() {
        for ok in ["/a", "/usr/bin/x", "/a b/c"] {
            assert_eq!(check_install_path(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a", "/", "//a", "/a/", "/a/./b", "/a/../b", "/a\0"] {
            assert!(check_install_path(bad).is_err(), "{bad:?}");
        }
    }
}
