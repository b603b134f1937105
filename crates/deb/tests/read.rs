//! Reading packages we did not build: made by `dpkg-deb --build` in every compression,
//! downloaded from the machine's apt sources, and deliberately broken ones.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{contents_listing, entry_listing, run, run_ok};
use spindle_deb::ar::{ArError, ArWriter};
use spindle_deb::compress::{compress, Compression};
use spindle_deb::control::ControlError;
use spindle_deb::reader::{read_deb, read_deb_file, validate_data_entries, DebInfo};
use spindle_deb::reader::{EntryKind, ReadError, UnsafeEntry};
use spindle_deb::spec::build_from_file;

/// Checks our reading of `deb` against `dpkg-deb` and coreutils.
fn check_against_dpkg_deb(deb: &Path) -> DebInfo {
    let info = read_deb_file(deb).unwrap_or_else(|e| panic!("{}: {e:?}", deb.display()));
    let fields = run_ok("dpkg-deb", &["--field".as_ref(), deb.as_os_str()]);
    assert_eq!(info.control.to_string(), fields, "{}", deb.display());
    assert_eq!(
        contents_listing(deb),
        entry_listing(&info.data_entries),
        "{}",
        deb.display()
    );
    let sha256 = run_ok("sha256sum", &[deb.as_os_str()]);
    assert_eq!(sha256.split(' ').next(), Some(info.digests.sha256.as_str()));
    assert_eq!(info.digests.size, fs::metadata(deb).unwrap().len());
    assert!(
        info.md5sum_mismatches().is_empty(),
        "{}: {:?}",
        deb.display(),
        info.md5sum_mismatches()
    );
    info
}

#[test]
fn reads_dpkg_deb_output_in_every_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let debian = tree.join("DEBIAN");
    fs::create_dir_all(&debian).unwrap();
    fs::write(
        debian.join("control"),
        "Package: made-by-dpkg\nVersion: 2:0.1+git20240101-3~bpo12+1\nArchitecture: amd64\nMaintainer: T <t@example.com>\nDepends: libc6 (>= 2.36), python3:any\nDescription: test\n multi-line\n .\n description\n",
    )
    .unwrap();
    fs::write(debian.join("postinst"), "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(debian.join("postinst"), fs::Permissions::from_mode(0o755)).unwrap();
    let deep = tree.join(format!("usr/share/{}/{}", "d".repeat(90), "e".repeat(40)));
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("long-file-name"), vec![b'z'; 5000]).unwrap();
    fs::create_dir_all(tree.join("usr/bin")).unwrap();
    fs::write(tree.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(
        tree.join("usr/bin/tool"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::os::unix::fs::symlink("tool", tree.join("usr/bin/tool-link")).unwrap();
    std::os::unix::fs::symlink(
        format!("/{}", "t".repeat(130)),
        tree.join("usr/bin/long-link"),
    )
    .unwrap();
    fs::hard_link(tree.join("usr/bin/tool"), tree.join("usr/bin/tool-hard")).unwrap();
    run_ok("mkfifo", &[tree.join("usr/bin/fifo").as_os_str()]);

    for (flag, compression) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("xz", Compression::Xz),
        ("zstd", Compression::Zstd),
    ] {
        let deb = tmp.path().join(format!("{flag}.deb"));
        run_ok(
            "dpkg-deb",
            &[
                "--root-owner-group".as_ref(),
                format!("-Z{flag}").as_ref(),
                "--build".as_ref(),
                tree.as_os_str(),
                deb.as_os_str(),
            ],
        );
        let info = check_against_dpkg_deb(&deb);
        assert_eq!(info.data_compression, compression, "{flag}");
        assert_eq!(info.package(), "made-by-dpkg");
        assert_eq!(
            info.canonical_file_name(),
            "made-by-dpkg_0.1+git20240101-3~bpo12+1_amd64.deb"
        );
        let postinst = info
            .control_members
            .iter()
            .find(|m| m.name == "postinst")
            .unwrap();
        assert_eq!(postinst.mode, 0o755);
        // The fifo and the hard link are reported; nothing else is.
        let problems = validate_data_entries(&info.data_entries).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            matches!(problems[0], UnsafeEntry::Fifo { .. }),
            "{problems:?}"
        );
        assert!(
            matches!(problems[1], UnsafeEntry::Hardlink { .. }),
            "{problems:?}"
        );
    }
}

/// Small packages from the machine's apt sources (downloaded unless already cached) plus
/// whatever apt has cached. Needs working apt sources; without them the test says so and
/// checks only cached files.
#[test]
fn reads_real_packages_from_apt() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(Command::new("apt-get")
        .args(["download", "hello", "libtext-charwidth-perl", "tzdata"])
        .current_dir(tmp.path()));
    let mut debs: Vec<PathBuf> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    if !out.status.success() {
        eprintln!(
            "apt-get download failed, checking cached packages only: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Ok(cached) = fs::read_dir("/var/cache/apt/archives") {
        debs.extend(
            cached
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "deb"))
                .take(20),
        );
    }
    if debs.is_empty() {
        // A machine without apt sources cannot run this test; make that visible.
        panic!(
            "no real .deb available: apt-get download failed ({}) and /var/cache/apt/archives is empty; run `apt-get update`",
            out.status
        );
    }
    for deb in &debs {
        let info = check_against_dpkg_deb(deb);
        assert_eq!(info.format_version, "2.0");
        assert_eq!(
            validate_data_entries(&info.data_entries),
            Ok(()),
            "{}",
            deb.display()
        );
        let name = deb.file_name().unwrap().to_string_lossy();
        // apt names files with the epoch as `%3a`; the archive's pool name leaves it out.
        let stripped = name.split_once("%3a").map_or(name.to_string(), |(a, b)| {
            format!("{}_{}", a.rsplit_once('_').unwrap().0, b)
        });
        assert_eq!(info.canonical_file_name(), stripped);
        let field = run_ok(
            "dpkg-deb",
            &[
                "--field".as_ref(),
                deb.as_os_str(),
                "Installed-Size".as_ref(),
            ],
        );
        assert_eq!(info.control.get("Installed-Size"), Some(field.trim()));
    }
}

fn fixture_deb() -> Vec<u8> {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello.toml");
    build_from_file(&spec, 1).unwrap().bytes
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = fixture_deb();
    for cut in 0..bytes.len() {
        // A missing final padding byte is tolerated, as dpkg does.
        if cut == bytes.len() - 1 && bytes[cut] == b'\n' {
            continue;
        }
        let result = read_deb(&bytes[..cut]);
        assert!(
            result.is_err(),
            "cut at {cut} of {} was accepted",
            bytes.len()
        );
    }
    assert!(read_deb(&bytes[..]).is_ok());
}

#[test]
fn corrupt_bytes_never_panic() {
    let bytes = fixture_deb();
    let mut corrupted_and_rejected = 0;
    for i in (0..bytes.len()).step_by(7) {
        let mut copy = bytes.clone();
        copy[i] ^= 0x5a;
        if read_deb(&copy[..]).is_err() {
            corrupted_and_rejected += 1;
        }
    }
    // Most positions are inside compressed data or headers, where xz's checksums and the
    // format checks catch the change; a few (such as ar mtimes) are harmless.
    let tried = bytes.len().div_ceil(7);
    assert!(
        corrupted_and_rejected * 10 >= tried * 9,
        "{corrupted_and_rejected} of {tried}"
    );
}

/// Builds a tar archive of regular files with the `tar` crate.
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn ar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut w = ArWriter::new(Vec::new()).unwrap();
    for (name, data) in members {
        w.append(name, 0, data).unwrap();
    }
    w.finish().unwrap()
}

const CONTROL: &[u8] = b"Package: crafted\nVersion: 1.0\nArchitecture: all\n";

fn control_tar(control: &[u8]) -> Vec<u8> {
    compress(Compression::Gzip, &tar_of(&[("./control", control)])).unwrap()
}

fn data_tar() -> Vec<u8> {
    compress(Compression::Gzip, &tar_of(&[("./usr/x", b"x")])).unwrap()
}

#[test]
fn malformed_packages_give_typed_errors() {
    let ok = ar_of(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", control_tar(CONTROL)),
        ("data.tar.gz", data_tar()),
    ]);
    assert!(read_deb(&ok[..]).is_ok());

    type Check = fn(&ReadError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        ("empty file", vec![], |e| {
            matches!(e, ReadError::Ar(ArError::BadMagic))
        }),
        ("zip file", b"PK\x03\x04 not a deb at all".to_vec(), |e| {
            matches!(e, ReadError::Ar(ArError::BadMagic))
        }),
        ("no members", ar_of(&[]), |e| {
            matches!(
                e,
                ReadError::MissingMember {
                    expected: "debian-binary"
                }
            )
        }),
        (
            "only debian-binary",
            ar_of(&[("debian-binary", b"2.0\n".to_vec())]),
            |e| {
                matches!(
                    e,
                    ReadError::MissingMember {
                        expected: "control.tar"
                    }
                )
            },
        ),
        (
            "no data",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", control_tar(CONTROL)),
            ]),
            |e| {
                matches!(
                    e,
                    ReadError::MissingMember {
                        expected: "data.tar"
                    }
                )
            },
        ),
        (
            "data before control",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                ("data.tar.gz", data_tar()),
                ("control.tar.gz", control_tar(CONTROL)),
            ]),
            |e| {
                matches!(
                    e,
                    ReadError::UnexpectedMember {
                        expected: "control.tar",
                        ..
                    }
                )
            },
        ),
        (
            "control first",
            ar_of(&[("control.tar.gz", control_tar(CONTROL))]),
            |e| {
                matches!(
                    e,
                    ReadError::UnexpectedMember {
                        expected: "debian-binary",
                        ..
                    }
                )
            },
        ),
        (
            "format 3.0",
            ar_of(&[
                ("debian-binary", b"3.0\n".to_vec()),
                ("control.tar.gz", control_tar(CONTROL)),
                ("data.tar.gz", data_tar()),
            ]),
            |e| matches!(e, ReadError::FormatVersion { found } if found == "3.0"),
        ),
        (
            "unknown data compression",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", control_tar(CONTROL)),
                ("data.tar.lz4", data_tar()),
            ]),
            |e| matches!(e, ReadError::UnexpectedMember { found, .. } if found == "data.tar.lz4"),
        ),
        (
            "compression does not match the name",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.xz", control_tar(CONTROL)),
                ("data.tar.gz", data_tar()),
            ]),
            |e| matches!(e, ReadError::Corrupt { member, .. } if member == "control.tar.xz"),
        ),
        (
            "no control file",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                (
                    "control.tar.gz",
                    compress(Compression::Gzip, &tar_of(&[("./md5sums", b"")])).unwrap(),
                ),
                ("data.tar.gz", data_tar()),
            ]),
            |e| matches!(e, ReadError::NoControlFile),
        ),
        (
            "nested control member",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                (
                    "control.tar.gz",
                    compress(
                        Compression::Gzip,
                        &tar_of(&[("./control", CONTROL), ("./sub/evil", b"")]),
                    )
                    .unwrap(),
                ),
                ("data.tar.gz", data_tar()),
            ]),
            |e| matches!(e, ReadError::BadControlEntry { entry, .. } if entry == "sub/evil"),
        ),
        (
            "duplicate control field",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                (
                    "control.tar.gz",
                    control_tar(b"Package: a1\nVersion: 1\nArchitecture: all\npackage: b1\n"),
                ),
                ("data.tar.gz", data_tar()),
            ]),
            |e| matches!(e, ReadError::Control(ControlError::DuplicateField { line: 4, name }) if name == "package"),
        ),
        (
            "malformed control line",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", control_tar(b"Package: a1\nnonsense\n")),
                ("data.tar.gz", data_tar()),
            ]),
            |e| {
                matches!(
                    e,
                    ReadError::Control(ControlError::NotAField { line: 2, .. })
                )
            },
        ),
        (
            "bad field values",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                (
                    "control.tar.gz",
                    control_tar(b"Package: UPPER\nVersion: x1\nArchitecture: amd_64\n"),
                ),
                ("data.tar.gz", data_tar()),
            ]),
            |e| matches!(e, ReadError::Fields(list) if list.len() == 3),
        ),
        (
            "corrupt gzip",
            ar_of(&[
                ("debian-binary", b"2.0\n".to_vec()),
                ("control.tar.gz", control_tar(CONTROL)),
                ("data.tar.gz", b"\x1f\x8b\x08\x00garbage garbage".to_vec()),
            ]),
            |e| matches!(e, ReadError::Corrupt { member, .. } if member == "data.tar.gz"),
        ),
    ];
    for (what, bytes, check) in cases {
        match read_deb(&bytes[..]) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(check(&e), "{what}: got {e:?}"),
        }
    }
}

#[test]
fn ignored_members_are_skipped() {
    let bytes = ar_of(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("_gpgbuilder", b"signature".to_vec()),
        ("control.tar.gz", control_tar(CONTROL)),
        ("_extra", b"x".to_vec()),
        ("data.tar.gz", data_tar()),
        ("trailing", b"y".to_vec()),
    ]);
    let info = read_deb(&bytes[..]).unwrap();
    assert_eq!(info.ignored_members, ["_gpgbuilder", "_extra", "trailing"]);
    assert_eq!(info.data_entries.len(), 1);
    assert_eq!(info.data_entries[0].path, "usr/x");
    assert_eq!(info.digests.size, bytes.len() as u64);
}

#[test]
fn reads_every_data_compression() {
    use std::io::Write;
    let tar = tar_of(&[("./usr/share/x", b"payload")]);
    let bzip2 = {
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        enc.write_all(&tar).unwrap();
        enc.finish().unwrap()
    };
    let lzma = {
        let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
        let stream = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
        let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        enc.write_all(&tar).unwrap();
        enc.finish().unwrap()
    };
    let cases = [
        ("data.tar", tar.clone(), Compression::None),
        (
            "data.tar.gz",
            compress(Compression::Gzip, &tar).unwrap(),
            Compression::Gzip,
        ),
        (
            "data.tar.xz",
            compress(Compression::Xz, &tar).unwrap(),
            Compression::Xz,
        ),
        (
            "data.tar.zst",
            compress(Compression::Zstd, &tar).unwrap(),
            Compression::Zstd,
        ),
        ("data.tar.bz2", bzip2, Compression::Bzip2),
        ("data.tar.lzma", lzma, Compression::Lzma),
    ];
    for (name, data, compression) in cases {
        let bytes = ar_of(&[
            ("debian-binary", b"2.0\n".to_vec()),
            ("control.tar.gz", control_tar(CONTROL)),
            (name, data),
        ]);
        let info = read_deb(&bytes[..]).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(info.data_compression, compression);
        assert_eq!(info.data_entries.len(), 1, "{name}");
        assert_eq!(info.data_entries[0].size, 7, "{name}");
        assert_eq!(
            info.data_entries[0].md5.as_deref(),
            Some("321c3cf486ed509164edec1e1981fec8"),
            "{name}"
        );
        // dpkg-deb agrees for every format it still reads.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.deb");
        fs::write(&path, &bytes).unwrap();
        assert_eq!(
            contents_listing(&path),
            entry_listing(&info.data_entries),
            "{name}"
        );
    }
}

#[test]
fn hostile_data_entries_are_listed_then_refused() {
    use tar::EntryType;
    // Raw names bypass the tar crate's own path checks, as a hostile tool would.
    let mut builder = tar::Builder::new(Vec::new());
    let entries: &[(&str, EntryType, &str)] = &[
        ("./", EntryType::Directory, ""),
        ("./usr/", EntryType::Directory, ""),
        ("./usr/ok", EntryType::Regular, ""),
        ("/etc/cron.d/evil", EntryType::Regular, ""),
        ("./usr/../../etc/shadow", EntryType::Regular, ""),
        ("./dev-null", EntryType::Char, ""),
        ("./disk", EntryType::Block, ""),
        ("./pipe", EntryType::Fifo, ""),
        ("./usr/hard", EntryType::Link, "./usr/ok"),
        ("./usr/up", EntryType::Symlink, "../../../etc"),
        ("./usr/up/passwd", EntryType::Regular, ""),
    ];
    for (name, kind, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        if kind.is_character_special() || kind.is_block_special() {
            header.set_device_major(8).unwrap();
            header.set_device_minor(3).unwrap();
        }
        header.set_size(0);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        builder.append(&header, &[][..]).unwrap();
    }
    let data = builder.into_inner().unwrap();
    let bytes = ar_of(&[
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", control_tar(CONTROL)),
        ("data.tar", data),
    ]);
    let info = read_deb(&bytes[..]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("hostile.deb");
    fs::write(&path, &bytes).unwrap();
    assert_eq!(contents_listing(&path), entry_listing(&info.data_entries));
    assert_eq!(
        info.data_entries[6].kind,
        EntryKind::BlockDevice { major: 8, minor: 3 }
    );

    let problems = validate_data_entries(&info.data_entries).unwrap_err();
    let summary: Vec<String> = problems
        .iter()
        .map(|p| format!("{p:?}").split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(
        summary,
        [
            "AbsolutePath",
            "ParentComponent",
            "DeviceNode",
            "DeviceNode",
            "Fifo",
            "Hardlink",
            "SymlinkEscapes",
            "BeneathSymlink"
        ]
    );
}
