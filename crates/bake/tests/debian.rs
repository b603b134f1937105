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
