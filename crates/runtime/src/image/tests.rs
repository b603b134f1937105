use super::*;

fn tar_with(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut tb = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = crate::image::new_header();
        h.set_entry_type(*kind);
        h.set_mode(0o755);
        h.set_mtime(0);
        if kind.is_symlink() || kind.is_hard_link() {
            h.set_size(0);
            tb.append_link(&mut h, name, data).unwrap();
        } else {
            h.set_size(data.len() as u64);
            // Write the name raw so that `../` survives the builder's own checks.
            let mut name_bytes = [0u8; 100];
            name_bytes[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().name = name_bytes;
            h.set_cksum();
            tb.append(&h, data.as_bytes()).unwrap();
        }
    }
    tb.into_inner().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

fn cfg(cmd: &[&str]) -> ImageConfig {
    ImageConfig {
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn rejects_unsafe_layers() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "dotdot",
            tar_with(&[("a/../../evil", tar::EntryType::Regular, "x")]),
            "`..`",
        ),
        (
            "escape",
            tar_with(&[("etc/x", tar::EntryType::Symlink, "../../../../etc/passwd")]),
            "outside",
        ),
        (
            "absescape",
            tar_with(&[("etc/x", tar::EntryType::Symlink, "/../../etc/passwd")]),
            "outside",
        ),
        (
            "dev",
            tar_with(&[("dev/sda", tar::EntryType::Block, "")]),
            "device",
        ),
    ];
    for (name, bytes, want) in cases {
        let p = write(t.path(), name, &bytes);
        let err = store.import(&p, cfg(&["/bin/sh"]), None).unwrap_err();
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
    assert!(store.list().unwrap().is_empty(), "nothing half-imported");
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
}

#[test]
fn import_dedupes_layers_across_compressions_and_resolves_symlinks() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let plain = tar_with(&[
        ("bin/busybox", tar::EntryType::Regular, "#!fake"),
        ("bin/sh", tar::EntryType::Symlink, "/bin/busybox"),
        ("usr/bin", tar::EntryType::Symlink, "../bin"),
    ]);
    let p1 = write(t.path(), "a.tar", &plain);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    io::Write::write_all(&mut gz, &plain).unwrap();
    let p2 = write(t.path(), "a.tar.gz", &gz.finish().unwrap());
    let p3 = write(
        t.path(),
        "a.tar.zst",
        &zstd::encode_all(&plain[..], 1).unwrap(),
    );
    let a = store.import(&p1, cfg(&["sh"]), Some("base:1")).unwrap();
    let b = store.import(&p2, cfg(&["sh"]), None).unwrap();
    let c = store.import(&p3, cfg(&["sh"]), Some("base")).unwrap();
    assert!(a.id.starts_with("ami-") && a.id.len() == 21);
    assert_eq!(a.id, b.id, "same content and config give the same id");
    assert_eq!(a.id, c.id);
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        1,
        "unpacked once"
    );
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        3
    );
    let img = store.inspect("base:1").unwrap();
    assert_eq!(img.tags, ["base:1", "base:latest"]);
    assert_eq!(
        store.resolve_in_image(&img, "/bin/sh").as_deref(),
        Some("/bin/busybox")
    );
    assert_eq!(
        store.resolve_in_image(&img, "/usr/bin/sh").as_deref(),
        Some("/bin/busybox")
    );
    assert_eq!(store.resolve_in_image(&img, "/bin/nope"), None);
    assert!(matches!(
        store.inspect("nope:1"),
        Err(ImageError::NotFound(_))
    ));
    assert!(matches!(
        store.tag(&a.id, "bad tag"),
        Err(ImageError::BadTag(_))
    ));
    assert!(matches!(
        store.remove(&a.id, &["i-1".into()]),
        Err(ImageError::InUse { .. })
    ));
}

#[test]
fn export_then_import_as_oci_archive_and_layout_roundtrips() {
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let p = write(
        t.path(),
        "r.tar",
        &tar_with(&[("bin/app", tar::EntryType::Regular, "x")]),
    );
    let mut config = cfg(&["/bin/app", "-v"]);
    config.env = vec!["A=1".into()];
    config.exposed_ports = vec!["80/tcp".into()];
    config.min_memory_mib = 32;
    let img = store.import(&p, config.clone(), Some("app:v1")).unwrap();
    let out = t.path().join("app.oci.tar");
    store
        .export("app:v1", &out, ExportFormat::OciArchive)
        .unwrap();

    let other = ImageStore::open(t.path().join("other")).unwrap();
    let back = other
        .import(&out, ImageConfig::default(), Some("app:v1"))
        .unwrap();
    assert_eq!(back.config.cmd, config.cmd);
    assert_eq!(back.config.env, config.env);
    assert_eq!(back.config.exposed_ports, config.exposed_ports);
    assert_eq!(back.config.min_memory_mib, 32);
    assert_eq!(back.layers[0].diff_id, img.layers[0].diff_id);

    // The same archive unpacked is an OCI layout directory.
    let dir = t.path().join("layout");
    fs::create_dir(&dir).unwrap();
    tar::Archive::new(fs::File::open(&out).unwrap())
        .unpack(&dir)
        .unwrap();
    let third = ImageStore::open(t.path().join("third")).unwrap();
    assert_eq!(
        third
            .import(&dir, ImageConfig::default(), None)
            .unwrap()
            .layers,
        back.layers
    );
    // A tampered blob is caught.
    let blob = fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .find(|e| e.metadata().unwrap().len() > 1000)
        .unwrap()
        .path();
    fs::write(&blob, b"tampered").unwrap();
    let fourth = ImageStore::open(t.path().join("fourth")).unwrap();
    assert!(matches!(
        fourth.import(&dir, ImageConfig::default(), None),
        Err(ImageError::DigestMismatch { .. })
    ));

    store.remove("app:v1", &[]).unwrap();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(
        fs::read_dir(store.root().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

/// An OCI image layout directory with these layer tars (lowest first).
fn oci_layout(dir: &Path, layers: &[Vec<u8>]) {
    let sha = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
    fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        fs::write(dir.join("blobs/sha256").join(&d[7..]), b).unwrap();
        serde_json::json!({"digest": d, "size": b.len(), "mediaType": MT_TAR})
    };
    let config = serde_json::to_vec(&serde_json::json!({"config": {"Cmd": ["/bin/app"]}})).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": put(&config),
        "layers": layers.iter().map(|l| put(l)).collect::<Vec<_>>(),
    }))
    .unwrap();
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [put(&manifest)]});
    fs::write(dir.join("index.json"), index.to_string()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn tar_names(path: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(fs::File::open(path).unwrap());
    let mut names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    names
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn rootfs_export_merges_layers_whiteouts_and_opaque_dirs() {
    // Whiteouts are 0/0 character devices and opaque marks are trusted xattrs: root only.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED rootfs_export_merges_layers_whiteouts_and_opaque_dirs: not root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(t.path().join("store")).unwrap();
    let lower = tar_with(&[
        ("bin/app", tar::EntryType::Regular, "old"),
        ("etc/gone", tar::EntryType::Regular, "x"),
        ("var/cache/a", tar::EntryType::Regular, "x"),
        ("etc/keep", tar::EntryType::Regular, "k"),
    ]);
    let upper = tar_with(&[
        ("bin/app", tar::EntryType::Regular, "new"),
        ("etc/.wh.gone", tar::EntryType::Regular, ""),
        ("var/cache/.wh..wh..opq", tar::EntryType::Regular, ""),
        ("var/cache/b", tar::EntryType::Regular, "y"),
    ]);
    let layout = t.path().join("layout");
    oci_layout(&layout, &[lower, upper]);
    let img = store
        .import(&layout, ImageConfig::default(), Some("two:1"))
        .unwrap();
    assert_eq!(img.layers.len(), 2);

    let out = t.path().join("rootfs.tar");
    store.export("two:1", &out, ExportFormat::Rootfs).unwrap();
    assert_eq!(
        tar_names(&out),
        [
            "bin",
            "bin/app",
            "etc",
            "etc/keep",
            "var",
            "var/cache",
            "var/cache/b"
        ]
    );
    let mut a = tar::Archive::new(fs::File::open(&out).unwrap());
    let app = a.entries().unwrap().map(|e| e.unwrap()).find_map(|mut e| {
        (e.path().unwrap().to_str() == Some("bin/app")).then(|| {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            s
        })
    });
    assert_eq!(app.as_deref(), Some("new"));
    // The flattened tar imports again as a one-layer image with the same tree.
    let again = store.import(&out, cfg(&["/bin/app"]), None).unwrap();
    assert_eq!(again.layers.len(), 1);

    // As an OCI layout directory, the export imports back to the same layers.
    let dir = t.path().join("exported");
    store
        .export("two:1", &dir, ExportFormat::OciLayout)
        .unwrap();
    let other = ImageStore::open(t.path().join("other")).unwrap();
    assert_eq!(
        other
            .import(&dir, ImageConfig::default(), None)
            .unwrap()
            .layers,
        img.layers
    );
    // An existing target is refused and left as it was; nothing partial remains.
    let e = store
        .export("two:1", &out, ExportFormat::OciArchive)
        .unwrap_err();
    assert!(matches!(e, ImageError::Exists(_)), "{e}");
    assert_eq!(tar_names(&out).len(), 7);
    let names: Vec<_> = fs::read_dir(t.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.to_string_lossy().ends_with(".partial")),
        "{names:?}"
    );
    assert!(matches!(
        "zip".parse::<ExportFormat>(),
        Err(ImageError::BadFormat(_))
    ));
}
