//! The `apt` provisioner with a Spindle repo: a repository published by `spindle-apt`'s
//! Publisher (signed, served over loopback HTTP at an `/apt/ACCOUNT/PREFIX` path like the
//! daemon's), a Debian base from the host's mirror, versions pinned at plan time and part of
//! the step's key, and a missing package naming both repos searched. Needs root and the
//! host's mirror; skips loudly without them.

#[path = "../../apt/tests/common/mod.rs"]
mod apt_common;

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use apt_common::{deb, HttpServer};
use spindle_apt::{
    Catalog, ComponentInput, KeyAlgorithm, Pool, PublishOptions, Publisher, PublisherOptions, Repo,
    SigningKey,
};
use spindle_bake::{plan, BakeOptions, Baker, OnError, Selection, VarInputs};
use spindle_runtime::RealKernel;

/// A signed repo under `root/apt/dev/app` holding `twine-app` at the versions published.
struct SpindleRepo {
    pool: Pool,
    catalog: Catalog,
    repo: Repo,
    publisher: Publisher,
    key: SigningKey,
}

impl SpindleRepo {
    fn new(root: &Path) -> SpindleRepo {
        let pool = Pool::open(root.join("pool")).unwrap();
        let publisher = Publisher::new(
            root.join("public/apt/dev/app"),
            pool.clone(),
            PublisherOptions {
                sync: true,
                grace: std::time::Duration::from_secs(3600),
            },
        );
        SpindleRepo {
            pool,
            catalog: Catalog::new(),
            repo: Repo::new("app", &["amd64"]).unwrap(),
            publisher,
            key: SigningKey::generate(
                "Spindle Bake Test <test@example.invalid>",
                KeyAlgorithm::Ed25519,
            )
            .unwrap(),
        }
    }

    /// Adds `twine-app` at `version` and publishes every package the repo has.
    fn publish(&mut self, version: &str) {
        let added = self
            .pool
            .add(&deb("twine-app", version, "amd64", None), &self.catalog)
            .unwrap();
        let key = added.package.key().clone();
        self.catalog.insert(added.package).unwrap();
        self.repo.add([&key]).unwrap();
        let keys: BTreeSet<_> = self.repo.packages.clone();
        let packages = self.catalog.resolve(&keys).unwrap();
        let comps = [ComponentInput {
            name: "main".into(),
            packages,
        }];
        self.publisher
            .publish(&PublishOptions::new("stable"), &comps, Some(&self.key))
            .unwrap();
    }
}

fn recipe(port: u16, packages: &str) -> String {
    format!(
        r#"
source "spindle" "app" {{
  base = "debian:bookworm"
}}
build {{
  sources = ["source.spindle.app"]
  provisioner "apt" {{
    packages = [{packages}]
    repo     = "http://127.0.0.1:{port}/apt/dev/app"
    keyring  = "keys/app.gpg"
  }}
  provisioner "shell" {{
    inline = [
      "cat /usr/share/twine-app/version > /etc/app-version",
      "ls /etc/apt/sources.list.d > /etc/apt-lists",
    ]
  }}
}}
"#
    )
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn apt_installs_pinned_versions_from_a_signed_spindle_repo() {
    let mirror = match common::root_and_mirror() {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();
    let mut repo = SpindleRepo::new(work.path());
    repo.publish("1.0");
    let server = HttpServer::start_published(&work.path().join("public"), &repo.pool);
    let proj = work.path().join("proj");
    fs::create_dir_all(proj.join("keys")).unwrap();
    fs::write(
        proj.join("keys/app.gpg"),
        repo.key.public_keyring().unwrap(),
    )
    .unwrap();

    let cache = tempfile::tempdir().unwrap();
    let baker = Baker::open(cache.path(), RealKernel).unwrap();
    let plan_for = |packages: &str| {
        let r = spindle_bake::parse(
            "app.pkr.hcl",
            &proj,
            &recipe(server.port, packages),
            &VarInputs::default(),
        )
        .unwrap();
        plan(&r, &Selection::default(), &baker.inputs())
    };
    let bake = |p: &spindle_bake::PlannedBuild| {
        baker
            .bake(
                p,
                &BakeOptions {
                    on_error: OnError::Cleanup,
                    progress: Some(&|l| eprintln!("{l}")),
                },
            )
            .unwrap()
    };

    let p1 = plan_for("\"twine-app\"").unwrap();
    assert_eq!(p1.builds[0].steps[0].resolved, ["twine-app=1.0"]);
    let b1 = bake(&p1.builds[0]);
    let read = |b: &spindle_bake::Baked, path: &str| {
        let img = baker.store().inspect(&b.image.id).unwrap();
        baker.store().read_in_image(&img, path)
    };
    assert_eq!(
        read(&b1, "/etc/app-version").as_deref(),
        Some("twine-app 1.0\n")
    );
    // The loopback repo's entry was only there for the install.
    assert_eq!(read(&b1, "/etc/apt-lists").as_deref(), Some(""));
    assert!(server
        .requested()
        .iter()
        .any(|r| r.starts_with("/apt/dev/app/pool/")));

    // A new version in the repo: the plan pins it, the base is reused, the apt step re-runs.
    repo.publish("1.1");
    let p2 = plan_for("\"twine-app\"").unwrap();
    assert_eq!(p2.builds[0].steps[0].resolved, ["twine-app=1.1"]);
    assert_eq!(p1.builds[0].base_key, p2.builds[0].base_key);
    assert_ne!(p1.builds[0].steps[0].key, p2.builds[0].steps[0].key);
    let b2 = bake(&p2.builds[0]);
    assert_eq!(
        b1.image.layers[0], b2.image.layers[0],
        "the base layer is reused"
    );
    assert!(!b2.steps[0].cached);
    assert_eq!(
        read(&b2, "/etc/app-version").as_deref(),
        Some("twine-app 1.1\n")
    );

    // A package in neither repo names both.
    let err = plan_for("\"twine-ghost\"").unwrap_err().to_string();
    assert!(err.contains("package(s) twine-ghost not found in"), "{err}");
    assert!(err.contains(&format!("{mirror} bookworm main")), "{err}");
    assert!(
        err.contains(&format!(
            "http://127.0.0.1:{}/apt/dev/app stable main",
            server.port
        )),
        "{err}"
    );

    // A repo signed by another key is refused at plan time.
    let other = SigningKey::generate("Other <o@example.invalid>", KeyAlgorithm::Ed25519).unwrap();
    fs::write(proj.join("keys/app.gpg"), other.public_keyring().unwrap()).unwrap();
    let err = plan_for("\"twine-app\"").unwrap_err().to_string();
    assert!(err.contains("has no valid signature from"), "{err}");
}
