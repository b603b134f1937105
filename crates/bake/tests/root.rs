//! Real bakes: steps in namespaces over overlayfs, layers cached by key. They need root,
//! util-linux `unshare` and a static busybox (`apt-get install busybox-static`), and skip
//! loudly without them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use spindle_bake::{plan, BakeError, BakeOptions, Baked, Baker, OnError, Selection, VarInputs};
use spindle_runtime::{Kernel, RealKernel, TreeRun};

macro_rules! require_root {
    () => {
        if let Some(reason) = spindle_runtime::host::missing_prerequisites() {
            eprintln!("SKIPPED {}: {reason}", module_path!());
            return;
        }
    };
}

/// A project directory holding a recipe and a `rootfs/` with busybox and `/bin/sh`.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new(recipe: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        common::busybox_rootfs(dir.path());
        fs::write(dir.path().join("app.pkr.hcl"), recipe).unwrap();
        Project { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bake(
        &self,
        baker: &Baker<RealKernel>,
        vars: &[&str],
        on_error: OnError,
    ) -> Result<Baked, BakeError> {
        let mut vi = VarInputs::default();
        for v in vars {
            vi.push_var(v).unwrap();
        }
        let src = fs::read_to_string(self.path().join("app.pkr.hcl")).unwrap();
        let recipe = spindle_bake::parse("app.pkr.hcl", self.path(), &src, &vi).unwrap();
        let inputs = baker.inputs();
        let p = plan(&recipe, &Selection::default(), &inputs).unwrap();
        baker.bake(
            &p.builds[0],
            &BakeOptions {
                on_error,
                progress: Some(&|l| eprintln!("{l}")),
            },
        )
    }
}

const RECIPE: &str = r#"
variable "msg" {
  default = "hello"
}
source "spindle" "app" {
  base = "scratch"
  cmd  = ["/bin/sh", "-c", "cat /etc/motd"]
}
build {
  sources = ["source.spindle.app"]
  provisioner "file" {
    source      = "rootfs"
    destination = "/"
  }
  provisioner "shell" {
    inline = [
      "/bin/busybox --install -s /bin",
      "echo base > /etc/base",
      "grep -c : /proc/net/dev > /etc/interfaces",
    ]
  }
  provisioner "shell" {
    inline = ["echo ${var.msg} > /etc/motd", "rm /etc/base"]
  }
}
"#;

fn diff_ids(b: &Baked) -> Vec<String> {
    b.steps.iter().map(|s| s.layer.diff_id.clone()).collect()
}

/// Runs `script` in the baked image's layers and returns its output.
fn run_in_image(baker: &Baker<RealKernel>, b: &Baked, script: &str, scratch: &Path) -> String {
    let log = scratch.join("out.log");
    let _ = fs::remove_file(&log);
    let exit = RealKernel
        .run_in_tree(&TreeRun {
            lower: b
                .image
                .layers
                .iter()
                .map(|l| baker.store().layer_tree(l))
                .collect(),
            upper: scratch.join("u"),
            work: scratch.join("w"),
            merged: scratch.join("m"),
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: vec![],
            network: false,
            log: Some(log.clone()),
        })
        .unwrap();
    assert_eq!(
        exit.code,
        0,
        "{}",
        fs::read_to_string(&log).unwrap_or_default()
    );
    fs::read_to_string(&log).unwrap()
}

fn host_mounts_under(dir: &Path) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&*dir.to_string_lossy()))
        .map(str::to_string)
        .collect()
}

fn count(dir: PathBuf) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn rebake_after_last_step_change_reuses_every_earlier_layer() {
    require_root!();
    let proj = Project::new(RECIPE);
    let cache = tempfile::tempdir().unwrap();
    let baker = Baker::open(cache.path(), RealKernel).unwrap();

    let first = proj.bake(&baker, &[], OnError::Cleanup).unwrap();
    assert_eq!(first.steps.len(), 3);
    assert!(first.steps.iter().all(|s| !s.cached));
    assert_eq!(first.image.tags, ["app:latest"]);
    let scratch = tempfile::tempdir().unwrap();
    let out = run_in_image(
        &baker,
        &first,
        "cat /etc/motd /etc/interfaces; ls /etc",
        scratch.path(),
    );
    assert_eq!(
        out, "hello\n1\ninterfaces\nmotd\n",
        "only lo in the step's network; /etc/base whited out"
    );
    assert!(
        host_mounts_under(cache.path()).is_empty(),
        "no mount leaks onto the host"
    );
    assert_eq!(count(cache.path().join("work")), 0, "work dirs removed");

    // Same recipe again: everything cached, same image.
    let again = proj.bake(&baker, &[], OnError::Cleanup).unwrap();
    assert!(again.steps.iter().all(|s| s.cached));
    assert_eq!(again.image.id, first.image.id);

    // Only the last step changes: the earlier layers are reused, digest for digest.
    let second = proj.bake(&baker, &["msg=bye"], OnError::Cleanup).unwrap();
    let (a, b) = (diff_ids(&first), diff_ids(&second));
    assert_eq!(a[..2], b[..2]);
    assert_ne!(a[2], b[2]);
    assert_eq!(
        second.steps.iter().map(|s| s.cached).collect::<Vec<_>>(),
        [true, true, false]
    );
    assert_ne!(second.image.id, first.image.id);
    let out = run_in_image(&baker, &second, "cat /etc/motd", scratch.path());
    assert_eq!(out, "bye\n");

    // Layers are reproducible: a fresh cache yields the same digests.
    let other = tempfile::tempdir().unwrap();
    let baker2 = Baker::open(other.path(), RealKernel).unwrap();
    let fresh = proj.bake(&baker2, &[], OnError::Cleanup).unwrap();
    assert_eq!(diff_ids(&fresh), a);
    assert_eq!(fresh.image.id, first.image.id);

    // The last layer records the deletion as an OCI whiteout.
    let blob = baker.store().layer_blob(&first.steps[2].layer);
    let names: Vec<String> = tar::Archive::new(fs::File::open(blob).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["etc/", "etc/.wh.base", "etc/motd"]);
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn failed_step_reports_exit_code_and_log_and_caches_nothing() {
    require_root!();
    let recipe = RECIPE.replace("rm /etc/base", "echo about to fail; echo boom >&2; exit 3");
    let proj = Project::new(&recipe);
    let cache = tempfile::tempdir().unwrap();
    let baker = Baker::open(cache.path(), RealKernel).unwrap();
    let err = proj.bake(&baker, &[], OnError::Cleanup).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            BakeError::StepFailed {
                code: 3,
                kept: None,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("shell #3") && msg.contains("about to fail\nboom"),
        "{msg}"
    );
    assert_eq!(
        count(cache.path().join("keys")),
        2,
        "the two good steps are cached, the failed one not"
    );
    assert_eq!(count(cache.path().join("work")), 0);
    assert!(
        baker.store().list().unwrap().is_empty(),
        "no image recorded"
    );

    // -on-error=abort keeps the failed step's tree and log for inspection.
    let err = proj.bake(&baker, &[], OnError::Abort).unwrap_err();
    let BakeError::StepFailed {
        kept: Some(kept), ..
    } = err
    else {
        panic!("{err}")
    };
    assert!(fs::read_to_string(kept.join("log"))
        .unwrap()
        .contains("boom"));
    assert_eq!(
        fs::read_to_string(kept.join("upper/etc/motd")).unwrap(),
        "hello\n"
    );
    assert!(host_mounts_under(cache.path()).is_empty());
    assert_eq!(count(cache.path().join("keys")), 2);
}

fn tool(argv: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| format!("{}: {e} (apt-get install {})", argv[0], argv[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn outputs_pass_skopeo_and_umoci_and_import_back() {
    require_root!();
    for t in ["skopeo", "umoci"] {
        if tool(&[t, "--version"]).is_err() {
            eprintln!("SKIPPED: {t} missing (apt-get install {t})");
            return;
        }
    }
    let recipe = RECIPE.replace(
        "    inline = [\"echo ${var.msg} > /etc/motd\", \"rm /etc/base\"]\n  }\n",
        "    inline = [\"echo ${var.msg} > /etc/motd\", \"rm /etc/base\"]\n  }\n\
         post-processor \"oci-archive\" { output = \"out/app.oci.tar\" }\n\
         post-processor \"oci-layout\" { output = \"out/app.oci\" }\n\
         post-processor \"checksum\" { output = \"out/SHA256SUMS\" }\n\
         post-processor \"manifest\" { output = \"out/manifest.json\" }\n",
    );
    let proj = Project::new(&recipe);
    let cache = tempfile::tempdir().unwrap();
    let baker = Baker::open(cache.path(), RealKernel).unwrap();
    let mut vi = VarInputs::default();
    vi.push_var("msg=oci").unwrap();
    let src = fs::read_to_string(proj.path().join("app.pkr.hcl")).unwrap();
    let recipe = spindle_bake::parse("app.pkr.hcl", proj.path(), &src, &vi).unwrap();
    let p = plan(&recipe, &Selection::default(), &baker.inputs()).unwrap();
    let baked = baker.bake(&p.builds[0], &BakeOptions::default()).unwrap();
    let files = spindle_bake::output::run_post_processors(
        baker.store(),
        baker.dir(),
        &baked,
        &p.builds[0].post_processors,
    )
    .unwrap();
    let out = proj.path().join("out");
    assert_eq!(files.len(), 2, "the archive and the checksum file");

    let archive = out.join("app.oci.tar");
    let inspect = tool(&[
        "skopeo",
        "inspect",
        &format!("oci-archive:{}", archive.display()),
    ])
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 3, "{inspect}");
    assert_eq!(v["Os"], "linux");
    let layout = out.join("app.oci");
    let tags = tool(&["umoci", "ls", "--layout", &layout.display().to_string()]).unwrap();
    assert_eq!(tags.trim(), "app:latest");
    let bundle = out.join("bundle");
    tool(&[
        "umoci",
        "unpack",
        "--image",
        &format!("{}:app:latest", layout.display()),
        &bundle.display().to_string(),
    ])
    .unwrap();
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/etc/motd")).unwrap(),
        "oci\n"
    );
    assert!(
        !bundle.join("rootfs/etc/base").exists(),
        "the whiteout applied"
    );

    // The checksum file lists the archive with its real digest.
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let (sha, _) = spindle_bake::output::file_digest(&archive).unwrap();
    assert!(sums.starts_with(&format!("{sha}  app.oci.tar\n")), "{sums}");
    // Packer's manifest shape, with the image id as the artifact.
    let m: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["builds"][0]["artifact_id"], baked.image.id.as_str());
    assert_eq!(m["builds"][0]["builder_type"], "spindle");
    assert_eq!(m["builds"][0]["files"][0]["sha256"], sha.as_str());
    assert_eq!(m["last_run_uuid"], m["builds"][0]["packer_run_uuid"]);

    // What the daemon does with it: the same image id and layers in another store.
    let other = spindle_runtime::ImageStore::open(cache.path().join("daemon")).unwrap();
    let imported = other
        .import(&archive, Default::default(), Some("app:1"))
        .unwrap();
    assert_eq!(imported.id, baked.image.id);
    assert_eq!(imported.layers, baked.image.layers);
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn warm_starts_the_app_requests_urls_and_bakes_what_it_wrote() {
    require_root!();
    let recipe = r#"
source "spindle" "app" {
  base = "scratch"
}
build {
  sources = ["source.spindle.app"]
  provisioner "file" {
    source      = "rootfs"
    destination = "/"
  }
  provisioner "shell" {
    inline = [
      "/bin/busybox --install -s /bin",
      "mkdir -p /www/cgi-bin /var/cache",
      "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho warmed-by-$REQUEST_METHOD > /var/cache/app\\necho ok\\n' > /www/cgi-bin/warm",
      "chmod 755 /www/cgi-bin/warm",
    ]
  }
  provisioner "warm" {
    command = "httpd -f -p 127.0.0.1:8080 -h /www"
    urls    = ["http://127.0.0.1:8080/cgi-bin/warm"]
    timeout = "10s"
  }
}
"#;
    let proj = Project::new(recipe);
    let cache = tempfile::tempdir().unwrap();
    let baker = Baker::open(cache.path(), RealKernel).unwrap();
    let b = proj.bake(&baker, &[], OnError::Cleanup).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    assert_eq!(
        run_in_image(&baker, &b, "cat /var/cache/app", scratch.path()),
        "warmed-by-GET\n"
    );

    // A URL that never answers fails the step within its timeout, naming the URL.
    let bad = recipe
        .replace("8080/cgi-bin", "8081/cgi-bin")
        .replace("\"10s\"", "\"1s\"");
    fs::write(proj.path().join("app.pkr.hcl"), bad).unwrap();
    let err = proj
        .bake(&baker, &[], OnError::Cleanup)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("warm #3")
            && err.contains("http://127.0.0.1:8081/cgi-bin/warm did not answer within 1s"),
        "{err}"
    );
}
