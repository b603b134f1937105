//! Reading .deb files: the ar container, the control paragraph and control members, the list
//! of `data.tar` entries, and the whole file's digests, all in one streaming pass.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::ar::{ArError, ArReader};
use crate::compress::{decoder, Compression};
use crate::control::{parse_paragraph, ControlError, Paragraph};
use crate::digest::{FileDigests, Hasher, HashingReader};
use crate::fields::{describe_all, validate_binary_control, FieldError};

/// Control members larger than this are refused, so a hostile file cannot exhaust memory.
const MAX_CONTROL_MEMBER: u64 = 16 << 20;

/// Why a .deb could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("failed to open `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid ar container")]
    Ar(#[from] ArError),
    #[error("member `{expected}` is missing")]
    MissingMember { expected: &'static str },
    #[error("found member `{found}` where `{expected}` was expected")]
    UnexpectedMember {
        found: String,
        expected: &'static str,
    },
    #[error("unsupported package format version `{found}`")]
    FormatVersion { found: String },
    #[error("member `{member}` is truncated")]
    Truncated { member: String },
    #[error("member `{member}` is corrupt")]
    Corrupt {
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("entry `{entry}` in `{member}` is not allowed there")]
    BadControlEntry { member: String, entry: String },
    #[error("control member `{entry}` is larger than {MAX_CONTROL_MEMBER} bytes")]
    ControlTooLarge { entry: String },
    #[error("`control.tar` has no `control` file")]
    NoControlFile,
    #[error("`control` file is not UTF-8")]
    ControlNotUtf8,
    #[error("malformed `control` file")]
    Control(#[source] ControlError),
    #[error("invalid control fields: {}", describe_all(.0))]
    Fields(Vec<FieldError>),
}

/// The type of a `data.tar` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink {
        target: String,
    },
    Hardlink {
        target: String,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    /// Any other tar type flag (for example GNU sparse files).
    Other(u8),
}

/// One entry of `data.tar`, as stored in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEntry {
    /// The name as stored (`./usr/bin/hello`), lossily decoded as UTF-8.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (including setuid/setgid/sticky).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Owner and group names from the tar header, when present. dpkg prefers them to the
    /// numeric ids if the names exist on the installing system.
    pub user: Option<String>,
    pub group: Option<String>,
    pub size: u64,
    pub mtime: u64,
    /// Hex MD5 of the contents, for regular files.
    pub md5: Option<String>,
}

impl DataEntry {
    /// The installed path relative to `/`, without `./` or a trailing `/` (`usr/bin/hello`;
    /// empty for the root directory).
    pub fn relative_path(&self) -> &str {
        let p = self.path.trim_start_matches("./");
        let p = p.trim_start_matches('/');
        let p = p.trim_end_matches('/');
        if p == "." {
            ""
        } else {
            p
        }
    }
}

/// A member of `control.tar` (`control`, `md5sums`, `conffiles`, maintainer scripts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMember {
    pub name: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// Everything read from a .deb.
#[derive(Debug, Clone)]
pub struct DebInfo {
    /// Contents of `debian-binary` without the newline (`2.0`).
    pub format_version: String,
    pub control: Paragraph,
    /// All regular files of `control.tar`, including `control` itself, in archive order.
    pub control_members: Vec<ControlMember>,
    pub control_compression: Compression,
    pub data_compression: Compression,
    pub data_entries: Vec<DataEntry>,
    /// Members that dpkg ignores (names starting with `_`, or after `data.tar`).
    pub ignored_members: Vec<String>,
    pub digests: FileDigests,
}

impl DebInfo {
    pub fn package(&self) -> &str {
        self.control.get("Package").unwrap_or_default()
    }

    pub fn version(&self) -> &str {
        self.control.get("Version").unwrap_or_default()
    }

    pub fn architecture(&self) -> &str {
        self.control.get("Architecture").unwrap_or_default()
    }

    /// The conventional file name `name_version_arch.deb`, the epoch left out as in the
    /// Debian archive.
    pub fn canonical_file_name(&self) -> String {
        canonical_file_name(self.package(), self.version(), self.architecture())
    }

    /// A control member's contents by name (`md5sums`, `postinst`, ...).
    pub fn control_member(&self, name: &str) -> Option<&[u8]> {
        self.control_members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.data.as_slice())
    }

    /// Files whose MD5 does not match the `md5sums` control member (or that it names but the
    /// archive lacks). Empty when all match or there is no `md5sums`.
    pub fn md5sum_mismatches(&self) -> Vec<String> {
        let Some(sums) = self.control_member("md5sums") else {
            return Vec::new();
        };
        let actual: BTreeMap<&str, &str> = self
            .data_entries
            .iter()
            .filter_map(|e| Some((e.relative_path(), e.md5.as_deref()?)))
            .collect();
        String::from_utf8_lossy(sums)
            .lines()
            .filter_map(|line| line.split_once("  "))
            .filter(|(sum, path)| actual.get(path) != Some(sum))
            .map(|(_, path)| path.to_string())
            .collect()
    }
}

/// `name_version_arch.deb` with the epoch left out.
pub fn canonical_file_name(name: &str, version: &str, arch: &str) -> String {
    let version = version.split_once(':').map_or(version, |(_, v)| v);
    format!("{name}_{version}_{arch}.deb")
}

/// Reads a .deb file from disk.
pub fn read_deb_file(path: &Path) -> Result<DebInfo, ReadError> {
    let file = std::fs::File::open(path).map_err(|source| ReadError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    read_deb(io::BufReader::new(file))
}

/// Reads a .deb from a stream, validating the container, the control paragraph and its
/// fields. `data.tar` entries are listed, not judged: see [`validate_data_entries`].
pub fn read_deb(r: impl Read) -> Result<DebInfo, ReadError> {
    let mut hashing = HashingReader {
        inner: r,
        hasher: Hasher::new(),
    };
    let mut ar = ArReader::new(&mut hashing)?;
    let mut ignored_members = Vec::new();

    let format_version = {
        let (header, mut member) = ar.next_member()?.ok_or(ReadError::MissingMember {
            expected: "debian-binary",
        })?;
        if header.name != "debian-binary" {
            return Err(ReadError::UnexpectedMember {
                found: header.name,
                expected: "debian-binary",
            });
        }
        let mut text = Vec::new();
        (&mut member)
            .take(64)
            .read_to_end(&mut text)
            .map_err(|e| member_error("debian-binary", e))?;
        let text = String::from_utf8_lossy(&text).trim_end().to_string();
        // dpkg accepts any 2.x format.
        if !text.starts_with("2.") {
            return Err(ReadError::FormatVersion { found: text });
        }
        text
    };

    let (control_members, control_compression) = {
        let (header, member) = next_significant(&mut ar, &mut ignored_members, "control.tar")?;
        let compression = Compression::from_member_name("control.tar", &header.name)
            .filter(|c| *c != Compression::Bzip2)
            .ok_or(ReadError::UnexpectedMember {
                found: header.name.clone(),
                expected: "control.tar",
            })?;
        let members = read_control_tar(&header.name, compression, member)?;
        (members, compression)
    };
    let control_text = control_members
        .iter()
        .find(|m| m.name == "control")
        .ok_or(ReadError::NoControlFile)?;
    let control_text =
        std::str::from_utf8(&control_text.data).map_err(|_| ReadError::ControlNotUtf8)?;
    let control = parse_paragraph(control_text).map_err(ReadError::Control)?;
    validate_binary_control(&control).map_err(ReadError::Fields)?;

    let (data_entries, data_compression) = {
        let (header, member) = next_significant(&mut ar, &mut ignored_members, "data.tar")?;
        let compression = Compression::from_member_name("data.tar", &header.name).ok_or(
            ReadError::UnexpectedMember {
                found: header.name.clone(),
                expected: "data.tar",
            },
        )?;
        (
            read_data_tar(&header.name, compression, member)?,
            compression,
        )
    };

    // Consume the rest so the digests cover the whole file.
    while let Some((header, _)) = ar.next_member()? {
        ignored_members.push(header.name);
    }
    drop(ar);
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| ReadError::Ar(ArError::Io(e)))?;

    Ok(DebInfo {
        format_version,
        control,
        control_members,
        control_compression,
        data_compression,
        data_entries,
        ignored_members,
        digests: hashing.hasher.finish(),
    })
}

/// The next member whose name does not start with `_` (dpkg skips those).
fn next_significant<'a, R: Read>(
    ar: &'a mut ArReader<R>,
    ignored: &mut Vec<String>,
    expected: &'static str,
) -> Result<(crate::ar::MemberHeader, crate::ar::Member<'a, R>), ReadError> {
    loop {
        // Peek at the name first: returning the member from inside the loop would hold the
        // borrow of `ar` across iterations.
        let name = match ar.next_member()? {
            None => return Err(ReadError::MissingMember { expected }),
            Some((header, _)) if header.name.starts_with('_') => {
                ignored.push(header.name);
                continue;
            }
            Some((header, _)) => header,
        };
        return Ok((name, ar.current_member()));
    }
}

fn member_error(member: &str, e: io::Error) -> ReadError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ReadError::Truncated {
            member: member.to_string(),
        }
    } else {
        ReadError::Corrupt {
            member: member.to_string(),
            source: e,
        }
    }
}

fn read_control_tar(
    member_name: &str,
    compression: Compression,
    member: impl Read,
) -> Result<Vec<ControlMember>, ReadError> {
    let err = |e| member_error(member_name, e);
    let mut archive = tar::Archive::new(Forward::new(decoder(compression, member).map_err(err)?));
    let mut members = Vec::new();
    for entry in archive.entries_with_seek().map_err(err)? {
        let entry = entry.map_err(err)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = raw.trim_start_matches("./").trim_end_matches('/');
        let kind = entry.header().entry_type();
        if kind.is_dir() && (name.is_empty() || name == ".") {
            continue;
        }
        if !kind.is_file() || name.is_empty() || name.contains('/') || name == ".." {
            return Err(ReadError::BadControlEntry {
                member: member_name.to_string(),
                entry: raw,
            });
        }
        let mode = entry.header().mode().map_err(err)?;
        if entry.size() > MAX_CONTROL_MEMBER {
            return Err(ReadError::ControlTooLarge { entry: raw });
        }
        let name = name.to_string();
        let mut data = Vec::with_capacity(entry.size() as usize);
        let mut entry = entry;
        entry.read_to_end(&mut data).map_err(err)?;
        members.push(ControlMember { name, mode, data });
    }
    drain(member_name, archive.into_inner())?;
    Ok(members)
}

fn read_data_tar(
    member_name: &str,
    compression: Compression,
    member: impl Read,
) -> Result<Vec<DataEntry>, ReadError> {
    let err = |e| member_error(member_name, e);
    let mut archive = tar::Archive::new(Forward::new(decoder(compression, member).map_err(err)?));
    let mut entries = Vec::new();
    for entry in archive.entries_with_seek().map_err(err)? {
        let mut entry = entry.map_err(err)?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        let header = entry.header();
        let flag = header.entry_type();
        let kind = match flag.as_byte() {
            b'0' | b'\0' | b'7' => EntryKind::File,
            b'5' => EntryKind::Dir,
            b'2' => EntryKind::Symlink { target: link },
            b'1' => EntryKind::Hardlink { target: link },
            b'3' => EntryKind::CharDevice {
                major: header.device_major().map_err(err)?.unwrap_or(0),
                minor: header.device_minor().map_err(err)?.unwrap_or(0),
            },
            b'4' => EntryKind::BlockDevice {
                major: header.device_major().map_err(err)?.unwrap_or(0),
                minor: header.device_minor().map_err(err)?.unwrap_or(0),
            },
            b'6' => EntryKind::Fifo,
            other => EntryKind::Other(other),
        };
        let mode = header.mode().map_err(err)? & 0o7777;
        let uid = header.uid().map_err(err)?;
        let gid = header.gid().map_err(err)?;
        let mtime = header.mtime().map_err(err)?;
        let name_of = |bytes: Option<&[u8]>| {
            bytes
                .filter(|b| !b.is_empty())
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let user = name_of(header.username_bytes());
        let group = name_of(header.groupname_bytes());
        let size = entry.size();
        let md5 = if kind == EntryKind::File {
            let mut h = md5::Md5::default();
            io::copy(&mut entry, &mut Md5Writer(&mut h)).map_err(err)?;
            Some(hex::encode(md5::Digest::finalize(h)))
        } else {
            None
        };
        entries.push(DataEntry {
            path,
            kind,
            mode,
            uid,
            gid,
            user,
            group,
            size,
            mtime,
            md5,
        });
    }
    drain(member_name, archive.into_inner())?;
    Ok(entries)
}

/// Reads the decompressor to its end, so a corrupt or truncated tail is noticed even after
/// the tar end-of-archive marker.
/// A stream the tar reader may "seek" forward in, by reading. Without a seekable stream the
/// tar crate skips to each header through a fresh 32 KiB zeroed buffer, even when there is
/// nothing to skip; for archives of a few small files that dominated reading them.
struct Forward<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> Forward<R> {
    fn new(inner: R) -> Forward<R> {
        Forward { inner, pos: 0 }
    }
}

impl<R: Read> Read for Forward<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> io::Seek for Forward<R> {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let io::SeekFrom::Current(delta) = to else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a compressed tar stream only skips forward",
            ));
        };
        let want = u64::try_from(delta)
            .map_err(|_| io::Error::new(io::ErrorKind::Unsupported, "cannot skip backwards"))?;
        if want > 0 {
            let got = io::copy(&mut (&mut self.inner).take(want), &mut io::sink())?;
            self.pos += got;
            if got < want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected end of the tar stream",
                ));
            }
        }
        Ok(self.pos)
    }
}

fn drain(member_name: &str, mut r: impl Read) -> Result<(), ReadError> {
    io::copy(&mut r, &mut io::sink())
        .map(|_| ())
        .map_err(|e| member_error(member_name, e))
}

struct Md5Writer<'a>(&'a mut md5::Md5);

impl io::Write for Md5Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        md5::Digest::update(self.0, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a `data.tar` entry is unsafe to install or to accept into a repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeEntry {
    #[error("entry `{path}` has an absolute path")]
    AbsolutePath { path: String },
    #[error("entry `{path}` has a `..` component")]
    ParentComponent { path: String },
    #[error("entry `{path}` is a device node")]
    DeviceNode { path: String },
    #[error("entry `{path}` is a fifo")]
    Fifo { path: String },
    #[error("entry `{path}` is a hard link to `{target}`")]
    Hardlink { path: String, target: String },
    #[error("symlink `{path}` points to `{target}`, outside the package tree")]
    SymlinkEscapes { path: String, target: String },
    #[error("entry `{path}` lies beneath symlink `{link}`")]
    BeneathSymlink { path: String, link: String },
    #[error("entry `{path}` appears more than once")]
    Duplicate { path: String },
    #[error("entry `{path}` has unsupported tar type `{flag}`")]
    UnsupportedType { path: String, flag: char },
}

/// Checks every entry for things a repository should refuse: paths leaving the tree
/// (absolute, `..`, or through a symlink in the same archive), symlinks whose relative target
/// climbs above `/`, device nodes, fifos, hard links, duplicates and exotic types. Absolute
/// symlink targets are fine: they resolve inside the root the package is installed into.
pub fn validate_data_entries(entries: &[DataEntry]) -> Result<(), Vec<UnsafeEntry>> {
    let mut problems = Vec::new();
    let symlinks: HashSet<&str> = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::Symlink { .. }))
        .map(DataEntry::relative_path)
        .collect();
    let mut seen = HashSet::new();
    for e in entries {
        let path = e.path.clone();
        let rel = e.relative_path();
        let stored = e.path.trim_start_matches("./");
        if stored.starts_with('/') {
            problems.push(UnsafeEntry::AbsolutePath { path: path.clone() });
        }
        if rel.split('/').any(|c| c == "..") {
            problems.push(UnsafeEntry::ParentComponent { path: path.clone() });
        }
        if !seen.insert(rel) {
            problems.push(UnsafeEntry::Duplicate { path: path.clone() });
        }
        // Any proper prefix that is a symlink would redirect this entry.
        let mut prefix_end = 0;
        while let Some(i) = rel[prefix_end..].find('/') {
            let prefix = &rel[..prefix_end + i];
            if symlinks.contains(prefix) {
                problems.push(UnsafeEntry::BeneathSymlink {
                    path: path.clone(),
                    link: prefix.to_string(),
                });
                break;
            }
            prefix_end += i + 1;
        }
        match &e.kind {
            EntryKind::File | EntryKind::Dir => {}
            EntryKind::Symlink { target } => {
                if symlink_escapes(rel, target) {
                    problems.push(UnsafeEntry::SymlinkEscapes {
                        path,
                        target: target.clone(),
                    });
                }
            }
            EntryKind::Hardlink { target } => problems.push(UnsafeEntry::Hardlink {
                path,
                target: target.clone(),
            }),
            EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. } => {
                problems.push(UnsafeEntry::DeviceNode { path })
            }
            EntryKind::Fifo => problems.push(UnsafeEntry::Fifo { path }),
            EntryKind::Other(flag) => problems.push(UnsafeEntry::UnsupportedType {
                path,
                flag: char::from(*flag),
            }),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Whether a relative symlink target, resolved from the link's directory, climbs above the
/// package root.
fn symlink_escapes(link_path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut depth: Vec<&str> = link_path.split('/').filter(|c| !c.is_empty()).collect();
    depth.pop();
    for component in target.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return true;
                }
            }
            other => depth.push(other),
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> DataEntry {
        DataEntry {
            path: path.to_string(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            size: 0,
            mtime: 0,
            md5: None,
        }
    }

    fn symlink(path: &str, target: &str) -> DataEntry {
        entry(
            path,
            EntryKind::Symlink {
                target: target.into(),
            },
        )
    }

    #[test]
    fn safe_entries_pass() {
        let entries = [
            entry("./", EntryKind::Dir),
            entry("./usr/", EntryKind::Dir),
            entry("./usr/bin/", EntryKind::Dir),
            entry("./usr/bin/hello", EntryKind::File),
            symlink("./usr/bin/hi", "hello"),
            symlink("./usr/bin/up", "../../etc/x"),
            symlink("./usr/bin/abs", "/etc/passwd"),
            symlink("./usr/bin/dots", "./../bin/./hello"),
        ];
        assert_eq!(validate_data_entries(&entries), Ok(()));
    }

    #[test]
    fn unsafe_entries_are_all_reported() {
        let cases: Vec<(DataEntry, UnsafeEntry)> = vec![
            (
                entry("/etc/passwd", EntryKind::File),
                UnsafeEntry::AbsolutePath {
                    path: "/etc/passwd".into(),
                },
            ),
            (
                entry("./usr/../../etc/shadow", EntryKind::File),
                UnsafeEntry::ParentComponent {
                    path: "./usr/../../etc/shadow".into(),
                },
            ),
            (
                entry("./dev/sda", EntryKind::BlockDevice { major: 8, minor: 0 }),
                UnsafeEntry::DeviceNode {
                    path: "./dev/sda".into(),
                },
            ),
            (
                entry("./dev/tty9", EntryKind::CharDevice { major: 4, minor: 9 }),
                UnsafeEntry::DeviceNode {
                    path: "./dev/tty9".into(),
                },
            ),
            (
                entry("./run/pipe", EntryKind::Fifo),
                UnsafeEntry::Fifo {
                    path: "./run/pipe".into(),
                },
            ),
            (
                entry(
                    "./usr/bin/b",
                    EntryKind::Hardlink {
                        target: "./usr/bin/a".into(),
                    },
                ),
                UnsafeEntry::Hardlink {
                    path: "./usr/bin/b".into(),
                    target: "./usr/bin/a".into(),
                },
            ),
            (
                symlink("./usr/evil", "../../etc"),
                UnsafeEntry::SymlinkEscapes {
                    path: "./usr/evil".into(),
                    target: "../../etc".into(),
                },
            ),
            (
                entry("./usr/evil/passwd", EntryKind::File),
                UnsafeEntry::BeneathSymlink {
                    path: "./usr/evil/passwd".into(),
                    link: "usr/evil".into(),
                },
            ),
            (
                entry("./usr/bin/hello", EntryKind::File),
                UnsafeEntry::Duplicate {
                    path: "./usr/bin/hello".into(),
                },
            ),
            (
                entry("./sparse", EntryKind::Other(b'S')),
                UnsafeEntry::UnsupportedType {
                    path: "./sparse".into(),
                    flag: 'S',
                },
            ),
        ];
        let mut entries = vec![entry("./usr/bin/hello", EntryKind::File)];
        entries.extend(cases.iter().map(|(e, _)| e.clone()));
        let expected: Vec<UnsafeEntry> = cases.into_iter().map(|(_, p)| p).collect();
        assert_eq!(validate_data_entries(&entries), Err(expected));
    }

    #[test]
    fn relative_paths_and_file_names() {
        for (stored, rel) in [
            ("./", ""),
            (".", ""),
            ("./usr/", "usr"),
            ("usr/bin/x", "usr/bin/x"),
            ("./usr/bin/x", "usr/bin/x"),
        ] {
            assert_eq!(
                entry(stored, EntryKind::Dir).relative_path(),
                rel,
                "{stored}"
            );
        }
        assert_eq!(
            canonical_file_name("hello", "1:2.10-3", "amd64"),
            "hello_2.10-3_amd64.deb"
        );
    }
}
