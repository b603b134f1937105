//! A real Debian base: bootstrapped from the mirror the host's apt sources name, as root, with
//! network access to that mirror. Skips loudly without root or without the mirror.

mod common;

use std::fs;

use spindle_bake::{plan, BakeOptions, Baker, OnError, Selection, VarInputs};
use spindle_runtime::{Kernel, RealKernel, TreeRun};

const RECIPE: &str = r#"
source "spindle" "deb" {
  base = "debian:bookworm"
}
build {
  sources = ["source.spindle.deb"]
  provisioner "apt" {
    packages = ["hello"]
  }
  provisioner "shell" {
    inline = [
      "hello > /etc/hello",
      "dpkg-query -W -f '$${Package}\n' > /etc/installed",
      "apt-get --version | head -1 > /etc/apt-version",
    ]
  }
}
"#;

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn bakes_a_debian_minbase_image_with_a_working_dpkg_and_apt() {
    if let Err(reason) = common::root_and_mirror() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let proj = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let baker = Baker::open(cache.path(), RealKernel).unwrap();
    let recipe =
        spindle_bake::parse("deb.pkr.hcl", proj.path(), RECIPE, &VarInputs::default()).unwrap();
    let p = plan(&recipe, &Selection::default(), &baker.inputs()).unwrap();
    let t = std::time::Instant::now();
    let b = baker
        .bake(
            &p.builds[0],
            &BakeOptions {
                on_error: OnError::Cleanup,
                progress: Some(&|l| eprintln!("{l}")),
            },
        )
        .unwrap();
    eprintln!("cold Debian bake: {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(
        b.image.layers.len(),
        3,
        "the base layer, the apt step and the shell step"
    );
    assert!(
        p.builds[0].steps[0].resolved[0].starts_with("hello="),
        "{:?}",
        p.builds[0].steps[0].resolved
    );

    // dpkg's database lists the minbase set, apt runs, and the tree works as a root.
    let scratch = tempfile::tempdir().unwrap();
    let log = scratch.path().join("log");
    let exit = RealKernel
        .run_in_tree(&TreeRun {
            lower: b.image.layers.iter().map(|l| baker.store().layer_tree(l)).collect(),
            upper: scratch.path().join("u"),
            work: scratch.path().join("w"),
            merged: scratch.path().join("m"),
            argv: vec!["/bin/sh".into(), "-c".into(), "cat /etc/hello /etc/installed; cat /etc/apt-version; ls /var/lib/apt/lists | wc -l; dpkg --audit && echo audit-clean; ls -l /bin | cut -c1".into()],
            env: vec![],
            network: false,
            log: Some(log.clone()),
        })
        .unwrap();
    let out = fs::read_to_string(&log).unwrap();
    assert_eq!(exit.code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    for pkg in ["base-files", "dpkg", "apt", "bash", "coreutils", "libc6"] {
        assert!(lines.contains(&pkg), "{pkg} installed:\n{out}");
    }
    assert!(out.contains("apt 2."), "{out}");
    assert_eq!(
        lines[0], "Hello, world!",
        "the apt step installed hello from the mirror"
    );
    assert!(lines.contains(&"hello"));
    assert!(lines.contains(&"0"), "apt's lists are not baked in:\n{out}");
    assert!(
        out.contains("audit-clean"),
        "every package configured:\n{out}"
    );
    assert!(
        out.ends_with("l\n"),
        "/bin is the merged-/usr symlink:\n{out}"
    );

    // The base is cached: a second bake runs nothing.
    let t = std::time::Instant::now();
    let again = baker.bake(&p.builds[0], &BakeOptions::default()).unwrap();
    assert!(again.steps.iter().all(|s| s.cached));
    assert_eq!(again.image.id, b.image.id);
    eprintln!("warm Debian bake: {:.1}s", t.elapsed().as_secs_f64());

    // A package the mirror lacks is named, with the repos searched, at plan time.
    let bad = RECIPE.replace("[\"hello\"]", "[\"hello\", \"no-such-package-spx\"]");
    let r = spindle_bake::parse("deb.pkr.hcl", proj.path(), &bad, &VarInputs::default()).unwrap();
    let err = plan(&r, &Selection::default(), &baker.inputs())
        .unwrap_err()
        .to_string();
    assert!(err.contains("deb.pkr.hcl:7:3: provisioner \"apt\": package(s) no-such-package-spx not found in http"), "{err}");
}

const BASE_ONLY: &str = r#"
source "spindle" "deb" {
  base = "debian:bookworm"
}
build {
  sources = ["source.spindle.deb"]
}
"#;

/// Two bootstraps from empty bake dirs give the same base layer, byte for byte: the logs and
/// caches an install writes about its own run are left out, and `/etc/shadow` is dated by
/// `SOURCE_DATE_EPOCH`, not by the clock. (Two cold bootstraps take about 75 s here.)
#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn two_cold_bootstraps_give_the_same_base_digest() {
    if let Err(reason) = common::root_and_mirror() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let proj = tempfile::tempdir().unwrap();
    let recipe =
        spindle_bake::parse("deb.pkr.hcl", proj.path(), BASE_ONLY, &VarInputs::default()).unwrap();
    let mut digests = Vec::new();
    for _ in 0..2 {
        let cache = tempfile::tempdir().unwrap();
        let baker = Baker::open(cache.path(), RealKernel).unwrap();
        let p = plan(&recipe, &Selection::default(), &baker.inputs()).unwrap();
        let t = std::time::Instant::now();
        let b = baker.bake(&p.builds[0], &BakeOptions::default()).unwrap();
        eprintln!("cold Debian base: {:.1}s", t.elapsed().as_secs_f64());
        let l = &b.image.layers[0];
        let tree = baker.store().layer_tree(l);
        let day = spindle_bake::layer::source_date_epoch().max(86_400) / 86_400;
        let shadow = fs::read_to_string(tree.join("etc/shadow")).unwrap();
        assert!(
            shadow.starts_with(&format!("root:*:{day}:")),
            "dated by SOURCE_DATE_EPOCH:\n{shadow}"
        );
        for f in ["var/log/dpkg.log", "var/log/alternatives.log"] {
            assert_eq!(fs::metadata(tree.join(f)).unwrap().len(), 0, "{f}");
        }
        assert!(!tree.join("var/cache/ldconfig/aux-cache").exists());
        digests.push(l.diff_id.clone());
    }
    assert_eq!(
        digests[0], digests[1],
        "two cold bootstraps of debian:bookworm"
    );
}
