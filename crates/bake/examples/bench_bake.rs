//! The bake benchmark (run as root through `bench/bake.sh`): a cold bake of a busybox image
//! with a 120 MB application layer, a warm re-bake after a change to the last step only (what
//! Packer would rebuild from scratch: the cold bake is its figure), and the OCI export of the
//! 120 MB tree against GNU tar writing the same tree, in the same run. With `--debian`, also
//! a cold `debian:bookworm` base (empty cache: index, downloads, dpkg) against
//! `debootstrap --variant=minbase` into a temporary directory, both from the host's mirror.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use spindle_bake::{plan, BakeOptions, Baked, Baker, Selection, VarInputs};
use spindle_runtime::RealKernel;

const RECIPE: &str = r#"
variable "release" {
  default = "1"
}
source "spindle" "app" {
  base = "scratch"
  cmd  = ["/bin/sh"]
}
build {
  sources = ["source.spindle.app"]
  provisioner "file" {
    source      = "rootfs"
    destination = "/"
  }
  provisioner "shell" {
    inline = ["/bin/busybox --install -s /bin"]
  }
  provisioner "file" {
    source      = "appdata"
    destination = "/srv/app"
  }
  provisioner "shell" {
    inline = ["echo release ${var.release} > /srv/release"]
  }
}
"#;

/// 120 files of 1 MB each, incompressible (xorshift), like an application's assets.
fn make_tree(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..120 {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        fs::File::create(dir.join(format!("asset-{i:03}.bin")))
            .unwrap()
            .write_all(&buf)
            .unwrap();
    }
}

fn bake(baker: &Baker<RealKernel>, proj: &Path, release: &str) -> (Baked, f64) {
    let mut vi = VarInputs::default();
    vi.push_var(&format!("release={release}")).unwrap();
    let t = Instant::now();
    let src = fs::read_to_string(proj.join("app.pkr.hcl")).unwrap();
    let recipe = spindle_bake::parse("app.pkr.hcl", proj, &src, &vi).unwrap();
    let p = plan(&recipe, &Selection::default(), &baker.inputs()).unwrap();
    let b = baker.bake(&p.builds[0], &BakeOptions::default()).unwrap();
    (b, t.elapsed().as_secs_f64())
}

/// Cold Debian base against debootstrap, same suite, same mirror, same run.
fn debian_vs_debootstrap(tmp: &Path) {
    let suite = "bookworm";
    let mirror = spindle_bake::debian::host_mirror(suite).unwrap();
    let proj = tmp.join("debproj");
    fs::create_dir_all(&proj).unwrap();
    let recipe = format!(
        "source \"spindle\" \"d\" {{\n  base = \"debian:{suite}\"\n}}\nbuild {{\n  sources = [\"source.spindle.d\"]\n  provisioner \"shell\" {{\n    inline = [\"true\"]\n  }}\n}}\n"
    );
    // Both tools download the same packages from the same mirror; fetch them once first, so
    // neither run pays for warming whatever cache sits in front of the mirror.
    let warm = Command::new("debootstrap")
        .args(["--variant=minbase", "--download-only", suite])
        .arg(tmp.join("warm-mirror"))
        .arg(&mirror)
        .output()
        .expect("debootstrap (apt-get install debootstrap)");
    assert!(
        warm.status.success(),
        "{}",
        String::from_utf8_lossy(&warm.stderr)
    );
    let t = Instant::now();
    let baker = Baker::open(tmp.join("debbake"), RealKernel).unwrap();
    let r = spindle_bake::parse("d.pkr.hcl", &proj, &recipe, &VarInputs::default()).unwrap();
    let p = plan(&r, &Selection::default(), &baker.inputs()).unwrap();
    let progress = |line: &str| eprintln!("  {line}");
    let opts = BakeOptions {
        progress: Some(&progress),
        ..BakeOptions::default()
    };
    baker.bake(&p.builds[0], &opts).unwrap();
    let ours = t.elapsed().as_secs_f64();
    let target = tmp.join("debootstrap");
    let t = Instant::now();
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(&target)
        .arg(&mirror)
        .output()
        .expect("debootstrap (apt-get install debootstrap)");
    let theirs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "cold debian:{suite} base (index, download, dpkg):       {ours:>7.2} s   debootstrap --variant=minbase {theirs:.2} s   ratio {:.2}",
        ours / theirs
    );
}

fn main() {
    if let Some(why) = spindle_runtime::host::missing_prerequisites() {
        eprintln!("bench-bake needs root and busybox-static: {why}");
        std::process::exit(2);
    }
    let tmp = tempfile::tempdir().unwrap();
    let proj = tmp.path().join("proj");
    let bin = proj.join("rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    for d in ["proc", "dev", "tmp", "etc"] {
        fs::create_dir_all(proj.join("rootfs").join(d)).unwrap();
    }
    fs::copy(spindle_runtime::host::BUSYBOX, bin.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    make_tree(&proj.join("appdata"));
    fs::write(proj.join("app.pkr.hcl"), RECIPE).unwrap();
    let baker = Baker::open(tmp.path().join("bake"), RealKernel).unwrap();

    let (cold, cold_s) = bake(&baker, &proj, "1");
    let (warm, warm_s) = bake(&baker, &proj, "2");
    let reused = warm.steps.iter().filter(|s| s.cached).count();
    assert_eq!(reused, cold.steps.len() - 1, "every earlier layer reused");
    println!("cold bake (4 steps, 120 MB layer; Packer's every run):  {cold_s:>7.2} s");
    println!(
        "warm re-bake after a last-step change ({reused} of {} reused): {warm_s:>7.2} s   target < 5 s   cold/warm {:.0}x",
        warm.steps.len(),
        cold_s / warm_s
    );

    // OCI export of the image holding the 120 MB tree, against GNU tar of the same tree.
    let out = tmp.path().join("app.oci.tar");
    let t = Instant::now();
    spindle_bake::output::write_oci_archive(baker.store(), &warm.image.id, &out).unwrap();
    let export_s = t.elapsed().as_secs_f64();
    let size = fs::metadata(&out).unwrap().len();
    let t = Instant::now();
    let st = Command::new("tar")
        .arg("-cf")
        .arg(tmp.path().join("peer.tar"))
        .arg("-C")
        .arg(&proj)
        .arg("appdata")
        .status()
        .unwrap();
    assert!(st.success());
    let tar_s = t.elapsed().as_secs_f64();
    println!(
        "OCI export ({} MB archive):                          {export_s:>7.2} s   target < 2 s   GNU tar of the tree {tar_s:.2} s   ratio {:.2}",
        size >> 20,
        export_s / tar_s
    );
    if std::env::args().any(|a| a == "--debian") {
        debian_vs_debootstrap(tmp.path());
    }
}
