//! Packages built by `spindle-deb` checked by the real tools: `dpkg-deb --info/--contents/
//! --field`, `dpkg --install/--remove/--purge` into an isolated root, `dpkg-scanpackages`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{contents_listing, entry_listing, run, run_ok, DpkgRoot};
use spindle_deb::builder::{build_deb, BuildOptions, Entry, EntryData};
use spindle_deb::compress::Compression;
use spindle_deb::index::packages_paragraph;
use spindle_deb::reader::{read_deb, validate_data_entries};
use spindle_deb::spec::{build_from_file, load_spec};

const EPOCH: u64 = 1_700_000_000;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello.toml")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn fixture_builds_and_dpkg_deb_reads_it() {
    let built = build_from_file(&fixture(), EPOCH).unwrap();
    assert_eq!(built.file_name, "spindle-hello_1.2.3~rc1-1_all.deb");
    let tmp = tempfile::tempdir().unwrap();
    let deb = write(tmp.path(), &built.file_name, &built.bytes);

    let info = run_ok("dpkg-deb", &["--info".as_ref(), deb.as_os_str()]);
    for needle in [
        "Package: spindle-hello",
        "Version: 1:1.2.3~rc1-1",
        "Depends: bash (>= 4), coreutils | busybox",
        "Provides: hello-world (= 1.2.3)",
        // dpkg-deb --info indents the control file by one space.
        "  This package is built by Spindle's .deb builder from a TOML spec.\n  .\n  It installs",
        "control",
        "md5sums",
        "postinst",
    ] {
        assert!(info.contains(needle), "missing {needle:?} in\n{info}");
    }
    let field = |name: &str| {
        run_ok(
            "dpkg-deb",
            &["--field".as_ref(), deb.as_os_str(), name.as_ref()],
        )
        .trim_end()
        .to_string()
    };
    assert_eq!(field("Package"), "spindle-hello");
    assert_eq!(field("Conflicts"), "hello-traditional (<< 2.0)");
    // dpkg-gencontrol's rule: 1 KiB for the root and each of 9 directories, four files of
    // under 1 KiB each rounded up, one symlink.
    assert_eq!(field("Installed-Size"), "15");
    let control_text = run_ok("dpkg-deb", &["--field".as_ref(), deb.as_os_str()]);
    assert_eq!(control_text, built.control.to_string());

    // dpkg-deb's listing must match what we read ourselves, line by line.
    let listing = contents_listing(&deb);
    let ours = read_deb(&built.bytes[..]).unwrap();
    assert_eq!(listing, entry_listing(&ours.data_entries));
    let paths: Vec<&str> = listing
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert!(
        paths.contains(&"./usr/share/doc/spindle-hello/README"),
        "{paths:?}"
    );
    assert!(listing
        .iter()
        .any(|l| l.starts_with("drwxr-x--- root/root 0 ./var/lib/spindle-hello/")));
    assert!(listing
        .iter()
        .any(|l| l == "lrwxrwxrwx root/root 0 ./usr/bin/hi -> spindle-hello"));
    assert_eq!(validate_data_entries(&ours.data_entries), Ok(()));
    assert!(ours.md5sum_mismatches().is_empty());
    assert_eq!(ours.data_compression, Compression::Xz);
    assert_eq!(ours.digests, built.digests);

    // The whole-file digests agree with coreutils.
    for (tool, ours) in [
        ("md5sum", &built.digests.md5),
        ("sha1sum", &built.digests.sha1),
        ("sha256sum", &built.digests.sha256),
        ("sha512sum", &built.digests.sha512),
    ] {
        let out = run_ok(tool, &[deb.as_os_str()]);
        assert_eq!(out.split(' ').next().unwrap(), ours, "{tool}");
    }
}

#[test]
fn fixture_installs_upgrades_and_purges_with_dpkg() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_from_file(&fixture(), EPOCH).unwrap();
    let deb = write(tmp.path(), &built.file_name, &built.bytes);
    let root = DpkgRoot::new(tmp.path());

    root.dpkg(&["--install".as_ref(), deb.as_os_str()]);
    let inst = root.instdir();
    let script = inst.join("usr/bin/spindle-hello");
    assert_eq!(
        fs::metadata(&script).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read_link(inst.join("usr/bin/hi")).unwrap(),
        Path::new("spindle-hello")
    );
    assert_eq!(
        fs::metadata(inst.join("var/lib/spindle-hello"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o750
    );
    assert_eq!(
        fs::read_to_string(inst.join("etc/spindle-hello.conf")).unwrap(),
        fs::read_to_string(fixture().with_file_name("hello/hello.conf")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(inst.join("var/lib/spindle-hello/postinst-ran")).unwrap(),
        "configured \n"
    );
    let status = root.query("${Status} ${Version} ${Installed-Size}");
    assert_eq!(status, "install ok installed 1:1.2.3~rc1-1 15");
    let conffiles = root.query("${Conffiles}");
    assert!(
        conffiles.contains("/etc/spindle-hello.conf "),
        "{conffiles}"
    );
    // dpkg checks the installed files against our md5sums.
    let verify = root.dpkg(&["--verify".as_ref(), "spindle-hello".as_ref()]);
    assert_eq!(verify, "");
    fs::write(inst.join("usr/share/doc/spindle-hello/README"), "changed").unwrap();
    let verify = root.dpkg_output(&["--verify".as_ref(), "spindle-hello".as_ref()]);
    let report = String::from_utf8_lossy(&verify.stdout);
    assert_eq!(report, "??5??????   /usr/share/doc/spindle-hello/README\n");
    let listed = root.dpkg(&["--listfiles".as_ref(), "spindle-hello".as_ref()]);
    assert!(
        listed.contains("/usr/share/doc/spindle-hello/copyright"),
        "{listed}"
    );

    // Reinstalling the same bytes is an upgrade to the same version: postinst sees it.
    root.dpkg(&["--install".as_ref(), deb.as_os_str()]);
    assert_eq!(
        fs::read_to_string(inst.join("var/lib/spindle-hello/postinst-ran")).unwrap(),
        "configured 1:1.2.3~rc1-1\n"
    );

    root.dpkg(&["--remove".as_ref(), "spindle-hello".as_ref()]);
    assert!(!script.exists());
    assert!(
        inst.join("etc/spindle-hello.conf").exists(),
        "conffile kept"
    );
    assert_eq!(
        fs::read_to_string(inst.join("var/lib/spindle-hello/prerm-ran")).unwrap(),
        "prerm remove\n"
    );
    root.dpkg(&["--purge".as_ref(), "spindle-hello".as_ref()]);
    assert!(
        !inst.join("etc/spindle-hello.conf").exists(),
        "conffile purged"
    );
    assert!(!inst.join("var/lib/spindle-hello/postinst-ran").exists());
}

#[test]
fn every_compression_is_accepted_by_dpkg() {
    let tmp = tempfile::tempdir().unwrap();
    let resolved = load_spec(&fixture()).unwrap().resolve().unwrap();
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Xz,
        Compression::Zstd,
    ] {
        let options = BuildOptions {
            compression,
            source_date_epoch: EPOCH,
        };
        let built = build_deb(&resolved.package, &options).unwrap();
        let deb = write(tmp.path(), &format!("{compression:?}.deb"), &built.bytes);
        let info = run_ok("dpkg-deb", &["--info".as_ref(), deb.as_os_str()]);
        assert!(
            info.contains("Package: spindle-hello"),
            "{compression:?}: {info}"
        );
        let members = run_ok("ar", &["t".as_ref(), deb.as_os_str()]);
        let suffix = compression.suffix();
        assert_eq!(
            members,
            format!("debian-binary\ncontrol.tar{suffix}\ndata.tar{suffix}\n")
        );
        let read = read_deb(&built.bytes[..]).unwrap();
        assert_eq!(read.data_compression, compression);
        assert_eq!(contents_listing(&deb), entry_listing(&read.data_entries));

        let root = DpkgRoot::new(&tmp.path().join(format!("{compression:?}")));
        root.dpkg(&["--install".as_ref(), deb.as_os_str()]);
        assert_eq!(
            root.query("${Status}"),
            "install ok installed",
            "{compression:?}"
        );
    }
}

#[test]
fn builds_are_byte_identical_across_checkouts() {
    let first = build_from_file(&fixture(), EPOCH).unwrap();
    // A copy of the fixture elsewhere, with different mtimes and umask-dependent
    // directory modes, must give the same bytes.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("elsewhere");
    run_ok(
        "cp",
        &[
            "-r".as_ref(),
            fixture().parent().unwrap().as_os_str(),
            copy.as_os_str(),
        ],
    );
    run_ok(
        "touch",
        &[
            "-d".as_ref(),
            "2001-02-03".as_ref(),
            copy.join("hello/hello.sh").as_os_str(),
        ],
    );
    fs::set_permissions(copy.join("hello/doc"), fs::Permissions::from_mode(0o700)).unwrap();
    let second = build_from_file(&copy.join("hello.toml"), EPOCH).unwrap();
    assert_eq!(first.bytes, second.bytes);
    assert_eq!(first.digests, second.digests);
    let later = build_from_file(&fixture(), EPOCH + 1).unwrap();
    assert_ne!(first.bytes, later.bytes);
    // Every timestamp dpkg-deb shows is the epoch.
    let deb = write(tmp.path(), "a.deb", &first.bytes);
    let out = run_ok("dpkg-deb", &["--contents".as_ref(), deb.as_os_str()]);
    for line in out.lines() {
        assert!(line.contains("2023-11-14 22:13"), "{line}");
    }
}

#[test]
fn packages_paragraph_matches_dpkg_scanpackages() {
    let tmp = tempfile::tempdir().unwrap();
    let built = build_from_file(&fixture(), EPOCH).unwrap();
    let pool = tmp.path().join("pool");
    fs::create_dir(&pool).unwrap();
    write(&pool, &built.file_name, &built.bytes);
    let out = run(std::process::Command::new("dpkg-scanpackages")
        .arg("pool")
        .arg("/dev/null")
        .current_dir(tmp.path()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs =
        spindle_deb::control::parse_paragraph(&String::from_utf8(out.stdout).unwrap()).unwrap();
    let filename = format!("pool/{}", built.file_name);
    let ours = packages_paragraph(&built.control, &filename, &built.digests).unwrap();
    // dpkg-scanpackages orders fields its own way and writes no SHA512; every field it
    // writes must have the same value in ours.
    for (name, value) in theirs.iter() {
        assert_eq!(ours.get(name), Some(value), "field {name}");
    }
    assert_eq!(ours.get("SHA512"), Some(built.digests.sha512.as_str()));
    assert_eq!(theirs.len() + 1, ours.len());
}

/// Unpacks our package with `dpkg-deb --raw-extract`, rebuilds the tree with
/// `dpkg-deb --build` and checks both packages list and describe the same things.
fn check_same_as_dpkg_deb(built: &spindle_deb::BuiltDeb) {
    let tmp = tempfile::tempdir().unwrap();
    let ours = write(tmp.path(), "ours.deb", &built.bytes);
    let tree = tmp.path().join("tree");
    run_ok(
        "dpkg-deb",
        &["--raw-extract".as_ref(), ours.as_os_str(), tree.as_os_str()],
    );
    let theirs = tmp.path().join("theirs.deb");
    run_ok(
        "dpkg-deb",
        &[
            "--root-owner-group".as_ref(),
            "-Zxz".as_ref(),
            "--build".as_ref(),
            tree.as_os_str(),
            theirs.as_os_str(),
        ],
    );
    assert_eq!(contents_listing(&ours), contents_listing(&theirs));
    let fields = |deb: &Path| run_ok("dpkg-deb", &["--field".as_ref(), deb.as_os_str()]);
    assert_eq!(fields(&ours), fields(&theirs));
    let theirs_info = read_deb(&fs::read(&theirs).unwrap()[..]).unwrap();
    let ours_info = read_deb(&built.bytes[..]).unwrap();
    let members = |info: &spindle_deb::DebInfo| {
        let mut m: Vec<_> = info
            .control_members
            .iter()
            .map(|m| (m.name.clone(), m.mode, m.data.clone()))
            .collect();
        m.sort();
        m
    };
    assert_eq!(members(&ours_info), members(&theirs_info));
}

#[test]
fn matches_what_dpkg_deb_builds_from_the_same_tree() {
    check_same_as_dpkg_deb(&build_from_file(&fixture(), EPOCH).unwrap());
    // Names whose order differs between whole-path and per-component sorting.
    let mut package = load_spec(&fixture()).unwrap().resolve().unwrap().package;
    package.conffiles.clear();
    package.entries.clear();
    for path in [
        "/usr/a/x/f",
        "/usr/a-b/f",
        "/usr/a.b/f",
        "/usr/B/f",
        "/usr/a0",
        "/usr/a/y",
    ] {
        package.entries.push(Entry {
            path: path.to_string(),
            data: EntryData::File(path.as_bytes().to_vec()),
            mode: 0o644,
            uid: 0,
            gid: 0,
        });
    }
    package.entries.push(Entry {
        path: "/usr/a-link".into(),
        data: EntryData::Symlink("a".into()),
        mode: 0o777,
        uid: 0,
        gid: 0,
    });
    let options = BuildOptions {
        compression: Compression::Gzip,
        source_date_epoch: EPOCH,
    };
    check_same_as_dpkg_deb(&build_deb(&package, &options).unwrap());
}
