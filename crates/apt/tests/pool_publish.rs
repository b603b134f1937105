//! The pool and the publish executor on a real file system (no apt needed).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::deb;
use spindle_apt::pool::PoolError;
use spindle_apt::publish::{self, CompressionOptions, PublishedFiles};
use spindle_apt::{
    Catalog, CatalogError, ComponentInput, IndexCache, KeyAlgorithm, PackageRef, Pool,
    PublishOptions, Publisher, PublisherOptions, SigningKey,
};

/// Every file under `dir` with its size.
fn sizes_under(dir: &Path) -> BTreeMap<String, u64> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(dir.join(&f)).unwrap().len();
            (f, len)
        })
        .collect()
}

/// What a client fetching `rel` from the published tree gets.
fn served(files: &PublishedFiles, root: &Path, rel: &str) -> Option<Vec<u8>> {
    Some(files.open(root, rel).unwrap()?.read_all().unwrap())
}

fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn pool_adds_are_idempotent_and_conflicts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::open(tmp.path().join("pool")).unwrap();
    let mut catalog = Catalog::new();
    let a = deb("hello", "1.0", "amd64", None);
    let added = pool.add(&a, &catalog).unwrap();
    assert!(added.written);
    let sha = added.package.sha256().to_string();
    assert_eq!(pool.read(&sha).unwrap().unwrap(), a);
    catalog.insert(added.package.clone()).unwrap();
    let again = pool.add(&a, &catalog).unwrap();
    assert!(!again.written);
    assert_eq!(
        catalog.insert(again.package).unwrap(),
        spindle_apt::Inserted::AlreadyPresent
    );

    // Same name/version/arch, different content: refused before anything is written.
    let b = deb("hello", "1.0", "amd64", Some("libc6"));
    let before = sizes_under(&tmp.path().join("pool"));
    match pool.add(&b, &catalog) {
        Err(PoolError::Conflict { key, existing, .. }) => {
            assert_eq!(key.to_string(), "hello_1.0_amd64");
            assert_eq!(existing, sha);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(sizes_under(&tmp.path().join("pool")), before);
    let b_ref = Pool::inspect(&b).unwrap();
    assert!(matches!(
        catalog.insert(b_ref),
        Err(CatalogError::Conflict { .. })
    ));

    // A batch with one bad member writes nothing.
    let c = deb("other", "2.0", "all", None);
    let truncated = &a[..a.len() / 2];
    let err = pool
        .add_batch(&[c.as_slice(), truncated], &catalog)
        .unwrap_err();
    assert!(matches!(err, PoolError::Read { index: 1, .. }), "{err:?}");
    assert_eq!(sizes_under(&tmp.path().join("pool")), before);
    // Two different contents under one key within a batch.
    let err = pool
        .add_batch(&[a.as_slice(), b.as_slice()], &Catalog::new())
        .unwrap_err();
    assert!(matches!(err, PoolError::Conflict { .. }), "{err:?}");

    for bad in [&b""[..], b"!<arch>\n", b"not a deb at all"] {
        assert!(Pool::inspect(bad).is_err());
    }

    // Cleanup removes what nothing references.
    let c_added = pool.add(&c, &catalog).unwrap();
    let keep: std::collections::HashSet<String> = [sha.clone()].into();
    let removed = pool.cleanup(&keep).unwrap();
    assert_eq!(removed, vec![c_added.package.sha256().to_string()]);
    assert!(pool.contains(&sha));
}

#[test]
fn add_files_streams_from_disk_and_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = src.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let pool = Pool::open(tmp.path().join("pool")).unwrap();
    let mut catalog = Catalog::new();
    let mut paths: Vec<_> = (0..9)
        .map(|i| {
            write(
                &format!("p{i}.deb"),
                &deb(&format!("pkg{i}"), "1.0", "amd64", None),
            )
        })
        .collect();
    // The same file twice is stored once.
    paths.push(paths[3].clone());
    let added = pool.add_files(&paths, &catalog).unwrap();
    assert_eq!(added.len(), 10);
    assert_eq!(added.iter().filter(|a| a.written).count(), 9);
    assert_eq!(added[9].package.sha256(), added[3].package.sha256());
    let mut distinct_bytes = 0;
    for (a, p) in added.iter().zip(&paths) {
        let stored = pool.read(a.package.sha256()).unwrap().unwrap();
        assert_eq!(stored, std::fs::read(p).unwrap());
        catalog.insert(a.package.clone()).ok();
        if a.written {
            distinct_bytes += stored.len() as u64;
        }
    }
    assert_eq!(pool.addresses().unwrap().len(), 9);
    let before = sizes_under(&tmp.path().join("pool"));
    assert_eq!(
        before.get("packs/00000001.pack"),
        Some(&distinct_bytes),
        "the pack holds each distinct file once: {before:?}"
    );

    // A truncated file, a missing file, or a key bound to other content: nothing changes.
    let good = write("new.deb", &deb("fresh", "1.0", "amd64", None));
    let whole = deb("cut", "1.0", "amd64", None);
    let cut = write("cut.deb", &whole[..whole.len() / 2]);
    let err = pool.add_files(&[good.clone(), cut], &catalog).unwrap_err();
    assert!(matches!(err, PoolError::Read { index: 1, .. }), "{err:?}");
    let err = pool
        .add_files(&[good.clone(), src.join("absent.deb")], &catalog)
        .unwrap_err();
    assert!(matches!(err, PoolError::ReadFile { .. }), "{err:?}");
    let other = write("other.deb", &deb("pkg0", "1.0", "amd64", Some("changed")));
    let err = pool.add_files(&[good, other], &catalog).unwrap_err();
    assert!(matches!(err, PoolError::Conflict { .. }), "{err:?}");
    // The failed batches' bytes were given back: packs and index are as they were.
    assert_eq!(sizes_under(&tmp.path().join("pool")), before);
    assert_eq!(pool.addresses().unwrap().len(), 9);
    let reopened = Pool::open(tmp.path().join("pool")).unwrap();
    assert_eq!(reopened.addresses().unwrap(), pool.addresses().unwrap());
}

fn setup(n: usize) -> (tempfile::TempDir, Pool, Catalog, Vec<Arc<PackageRef>>) {
    let tmp = tempfile::tempdir().unwrap();
    let pool = Pool::open(tmp.path().join("pool")).unwrap();
    let mut catalog = Catalog::new();
    let debs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            deb(
                &format!("pkg{i:03}"),
                "1.0",
                if i % 5 == 0 { "all" } else { "amd64" },
                None,
            )
        })
        .collect();
    let mut refs = Vec::new();
    for a in pool.add_batch(&debs, &catalog).unwrap() {
        catalog.insert(a.package.clone()).unwrap();
        refs.push(catalog.get(a.package.key()).unwrap().clone());
    }
    (tmp, pool, catalog, refs)
}

fn options() -> PublishOptions {
    let mut o = PublishOptions::new("stable");
    o.compression = CompressionOptions {
        chunk_target: 4,
        xz_preset: Some(0),
        ..CompressionOptions::default()
    };
    o
}

#[test]
fn republish_is_incremental_and_keeps_the_previous_by_hash_files() {
    let (tmp, pool, catalog, mut refs) = setup(60);
    let root = tmp.path().join("public");
    let mut publisher = Publisher::new(
        &root,
        pool.clone(),
        PublisherOptions {
            sync: true,
            grace: Duration::ZERO,
        },
    );
    let key = SigningKey::generate("T <t@example.invalid>", KeyAlgorithm::Ed25519).unwrap();
    let comps = |refs: &[Arc<PackageRef>]| {
        [ComponentInput {
            name: "main".into(),
            packages: refs.to_vec(),
        }]
    };
    let first = publisher
        .publish(&options(), &comps(&refs), Some(&key))
        .unwrap();
    assert_eq!(first.pool_files_added, 60);
    let files1 = files_under(&root);
    // Package files are served from the pool, not copied into the tree.
    let files = PublishedFiles::new(pool.clone());
    let pkg001 = "pool/main/p/pkg001/pkg001_1.0_amd64.deb";
    assert!(!files1.iter().any(|f| f.starts_with("pool/")), "{files1:?}");
    let want = pool.read(refs[1].sha256()).unwrap().unwrap();
    assert_eq!(refs[1].key().to_string(), "pkg001_1.0_amd64");
    assert_eq!(served(&files, &root, pkg001), Some(want));
    assert_eq!(served(&files, &root, "pool/main/p/pkg001/nope.deb"), None);
    assert_eq!(served(&files, &root, "pool/../dists/stable/Release"), None);
    assert!(
        files1.contains("dists/stable/InRelease") && files1.contains("dists/stable/Release.gpg")
    );
    let release1 = std::fs::read_to_string(root.join("dists/stable/Release")).unwrap();
    let by_hash1: BTreeSet<&String> = files1
        .iter()
        .filter(|f| f.contains("by-hash/SHA256/"))
        .collect();
    assert_eq!(
        by_hash1.len(),
        4,
        "Packages, .gz, .xz, Contents: {by_hash1:?}"
    );
    // Every by-hash file's name is the SHA-256 of its content, and Release lists it.
    for f in &by_hash1 {
        let data = std::fs::read(root.join(f)).unwrap();
        let sha = spindle_deb::digest::digest_bytes(&data).sha256;
        assert!(f.ends_with(&sha), "{f}");
        assert!(release1.contains(&sha), "{f} not in Release");
    }

    // Same input: nothing is written but the Release files.
    let same = publisher
        .publish(&options(), &comps(&refs), Some(&key))
        .unwrap();
    assert_eq!((same.pool_files_added, same.indexes_written), (0, 0));

    // +1 package: one pool link, the four changed indexes.
    let extra = pool
        .add(&deb("pkg0305", "1.0", "amd64", None), &catalog)
        .unwrap();
    refs.push(Arc::new(extra.package));
    let inc = publisher
        .publish(&options(), &comps(&refs), Some(&key))
        .unwrap();
    assert_eq!(inc.pool_files_added, 1);
    assert_eq!(inc.indexes_written, 4, "{inc:?}");
    let pkg0305 = "pool/main/p/pkg0305/pkg0305_1.0_amd64.deb";
    assert!(served(&files, &root, pkg0305).is_some());
    let files2 = files_under(&root);
    // The previous publish's by-hash files are still there for clients holding the old
    // InRelease.
    for f in &by_hash1 {
        assert!(files2.contains(*f), "{f} was removed too early");
    }
    // One more publish with grace 0: the generation-1 files are gone, the current ones stay.
    refs.pop();
    let back = publisher
        .publish(&options(), &comps(&refs), Some(&key))
        .unwrap();
    // Back to the first content: its by-hash files are still there, so the canonical
    // names are re-linked from them rather than rewritten.
    assert_eq!(back.indexes_written, 4);
    let mut o = options();
    o.origin = Some("changed".into());
    publisher.publish(&o, &comps(&refs), Some(&key)).unwrap();
    let files3 = files_under(&root);
    assert_eq!(
        served(&files, &root, pkg0305),
        None,
        "a retired pool file is served after its grace"
    );
    for f in &by_hash1 {
        assert!(files3.contains(*f), "{f}: current file removed");
    }

    // A fresh Publisher (daemon restart) reads the state and still finds nothing to do.
    let mut restarted = Publisher::new(&root, pool, PublisherOptions::default());
    let r = restarted.publish(&o, &comps(&refs), Some(&key)).unwrap();
    assert_eq!((r.pool_files_added, r.indexes_written), (0, 0));
    restarted.drop_publication("", "stable").unwrap();
    assert!(!root.join("dists/stable").exists());
    assert_eq!(served(&files, &root, pkg001), None);
}

#[test]
fn plans_refuse_bad_input() {
    let (_tmp, _pool, _catalog, refs) = setup(3);
    let mut cache = IndexCache::new();
    let comps = vec![ComponentInput {
        name: "main".into(),
        packages: refs.clone(),
    }];
    let check = |o: &PublishOptions, c: &[ComponentInput], want: &str| {
        let err = publish::plan(o, c, &mut IndexCache::new()).unwrap_err();
        assert!(err.to_string().contains(want), "got `{err}`, want `{want}`");
    };
    let mut o = options();
    o.architectures = vec!["arm64".into()];
    check(
        &o,
        &comps,
        "has architecture `amd64`, which publication `stable` does not carry (arm64)",
    );
    let mut o = options();
    o.distribution = "../etc".into();
    check(&o, &comps, "invalid distribution `../etc`");
    let mut o = options();
    o.prefix = "a/../b".into();
    check(&o, &comps, "invalid prefix");
    let mut o = options();
    o.origin = Some("two\nlines".into());
    check(&o, &comps, "invalid origin");
    check(&options(), &[], "no components");
    let twice = vec![comps[0].clone(), comps[0].clone()];
    check(&options(), &twice, "listed twice");
    let mut o = options();
    o.architectures = vec!["all".into()];
    check(&o, &comps, "must be a concrete binary architecture");
    // An epoch makes two versions share a pool file name.
    let a = Arc::new(Pool::inspect(&deb("clash", "1.0", "amd64", None)).unwrap());
    let b = Arc::new(Pool::inspect(&deb("clash", "1:1.0", "amd64", None)).unwrap());
    check(
        &options(),
        &[ComponentInput {
            name: "main".into(),
            packages: vec![a, b],
        }],
        "would both be published as `pool/main/c/clash/clash_1.0_amd64.deb`",
    );

    // Planning is deterministic and the cache does not change the output.
    let mut o = options();
    o.date = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let p1 = publish::plan(&o, &comps, &mut cache).unwrap();
    let p2 = publish::plan(&o, &comps, &mut cache).unwrap();
    let p3 = publish::plan(&o, &comps, &mut IndexCache::new()).unwrap();
    assert_eq!(p1.release, p2.release);
    assert_eq!(p1.release, p3.release);
    assert!(
        p1.release.contains("Date: Tue, 14 Nov 2023 22:13:20 UTC\n"),
        "{}",
        p1.release
    );
}

#[test]
fn publications_under_one_prefix_share_the_pool_safely() {
    let (tmp, pool, mut catalog, refs) = setup(5);
    let root = tmp.path().join("public");
    let mut publisher = Publisher::new(
        &root,
        pool.clone(),
        PublisherOptions {
            sync: false,
            grace: Duration::ZERO,
        },
    );
    let comps = |refs: Vec<Arc<PackageRef>>| {
        [ComponentInput {
            name: "main".into(),
            packages: refs,
        }]
    };
    let mut a = options();
    a.prefix = "team/x".into();
    a.distribution = "alpha".into();
    let mut b = a.clone();
    b.distribution = "beta".into();
    publisher.publish(&a, &comps(refs.clone()), None).unwrap();
    publisher.publish(&b, &comps(refs.clone()), None).unwrap();
    let files = PublishedFiles::new(pool.clone());
    let shared = "team/x/pool/main/p/pkg001/pkg001_1.0_amd64.deb";
    assert!(served(&files, &root, shared).is_some());
    // Unsigned publishes have no InRelease.
    assert!(!root.join("team/x/dists/alpha/InRelease").exists());
    assert!(root.join("team/x/dists/alpha/Release").is_file());

    // beta may not replace a pool file alpha serves with other content.
    let one = pool
        .add(&deb("clash", "1.0", "amd64", None), &catalog)
        .unwrap()
        .package;
    catalog.insert(one.clone()).unwrap();
    let two = pool
        .add(&deb("clash", "1:1.0", "amd64", None), &catalog)
        .unwrap()
        .package;
    let mut with_one = refs.clone();
    with_one.push(Arc::new(one));
    publisher.publish(&a, &comps(with_one), None).unwrap();
    let mut with_two = refs.clone();
    with_two.push(Arc::new(two));
    let err = publisher.publish(&b, &comps(with_two), None).unwrap_err();
    assert!(
        err.to_string()
            .contains("already published with other content by distribution `alpha`"),
        "{err}"
    );

    // Dropping alpha keeps the files beta still serves.
    publisher.drop_publication("team/x", "alpha").unwrap();
    assert!(
        served(&files, &root, shared).is_some(),
        "a shared pool file was removed"
    );
    assert!(!root.join("team/x/dists/alpha").exists());
    let clash = "team/x/pool/main/c/clash/clash_1.0_amd64.deb";
    assert_eq!(served(&files, &root, clash), None);
}

/// Issue 23: a shared publisher completes a deferred publish on its own thread, and callers
/// that take the lock meanwhile (which interrupts it) neither wait for the whole step nor
/// stop it from finishing; the result is what a publish without deferral writes.
#[test]
fn a_background_completion_survives_interruptions_and_matches_a_full_publish() {
    use spindle_apt::publish::{Completion, SharedPublisher};
    let (tmp, pool, _catalog, refs) = setup(300);
    let key = SigningKey::generate("T <t@example.invalid>", KeyAlgorithm::Ed25519).unwrap();
    let comps = [ComponentInput {
        name: "main".into(),
        packages: refs.to_vec(),
    }];
    let mut o = options();
    o.date = std::time::UNIX_EPOCH;
    o.compression.xz_preset = Some(6);
    let full = tmp.path().join("full");
    Publisher::new(&full, pool.clone(), PublisherOptions::default())
        .publish(&o, &comps, Some(&key))
        .unwrap();

    let root = tmp.path().join("deferred");
    let shared = Arc::new(SharedPublisher::new(Publisher::new(
        &root,
        pool.clone(),
        PublisherOptions::default(),
    )));
    o.defer_above = Some(publish::DEFER_ABOVE);
    let report = shared.lock().publish(&o, &comps, Some(&key)).unwrap();
    let pending = report.pending.expect("300 cold packages are deferred");
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = shared
        .complete_later(pending, move |outcome| tx.send(outcome).unwrap())
        .unwrap();
    for _ in 0..20 {
        drop(shared.lock());
        std::thread::sleep(Duration::from_millis(2));
    }
    handle.join().unwrap();
    let outcome = rx.recv().unwrap().unwrap();
    let Completion::Done(done) = outcome else {
        panic!("not completed: {outcome:?}")
    };
    assert_eq!(done.generation, report.generation);
    let release = |root: &Path| std::fs::read_to_string(root.join("dists/stable/Release")).unwrap();
    assert_eq!(release(&root), release(&full));
    for f in ["main/binary-amd64/Packages.xz", "main/Contents-amd64.gz"] {
        assert_eq!(
            std::fs::read(root.join("dists/stable").join(f)).unwrap(),
            std::fs::read(full.join("dists/stable").join(f)).unwrap(),
            "{f}"
        );
    }
}
