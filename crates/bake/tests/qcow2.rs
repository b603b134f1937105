//! The qcow2 post-processor for real: a scratch image with busybox and an `/sbin/init` that
//! prints a marker, a Debian kernel from the host's mirror, `mkfs.ext4 -d`, `qemu-img
//! convert`; then `qemu-img check` and a boot under `qemu-system-x86_64` (TCG, serial console,
//! bounded wait) until the marker appears. Needs root, the mirror, e2fsprogs, qemu-utils and
//! qemu-system-x86; skips loudly without them.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use spindle_bake::{plan, BakeOptions, Baker, OnError, Selection, VarInputs};
use spindle_runtime::RealKernel;

const RECIPE: &str = r#"
source "spindle" "devvm" {
  base = "scratch"
}
build {
  sources = ["source.spindle.devvm"]
  provisioner "file" {
    source      = "rootfs"
    destination = "/"
  }
  provisioner "shell" {
    inline = [
      "/bin/busybox --install -s /bin",
      "mkdir -p /sbin",
      "printf '#!/bin/sh\\necho SPINDLE-BOOTED from $(cat /etc/motd)\\n/bin/busybox poweroff -f\\n' > /sbin/init",
      "chmod 755 /sbin/init",
      "echo the-same-layers > /etc/motd",
    ]
  }
  post-processor "qcow2" {
    output = "out/devvm.qcow2"
    kernel = "debian:bookworm"
  }
  post-processor "checksum" { output = "out/SHA256SUMS" }
}
"#;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn skip_reason() -> Option<String> {
    for (t, pkg) in [
        ("mkfs.ext4", "e2fsprogs"),
        ("qemu-img", "qemu-utils"),
        ("qemu-system-x86_64", "qemu-system-x86"),
    ] {
        if !have(t) {
            return Some(format!("{t} is missing (apt-get install {pkg})"));
        }
    }
    if let Err(reason) = common::root_and_mirror() {
        return Some(reason);
    }
    None
}

/// Boots the disk and returns the console output up to the marker (or all of it on timeout).
fn boot(disk: &Path, kernel: &Path, initrd: &Path, limit: Duration) -> (bool, String) {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-nographic", "-no-reboot", "-m", "512", "-accel", "tcg"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 root=/dev/vda rw panic=-1 quiet"])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", disk.display()))
        .args([
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "virtio-net-pci,netdev=n0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-x86_64");
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut log = String::new();
    let mut booted = false;
    while let Some(left) = limit.checked_sub(start.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains("SPINDLE-BOOTED from the-same-layers") {
                    booted = true;
                    break;
                }
            }
            Err(_) => break,
        }
    }
    // Only the qemu this test started.
    let _ = child.kill();
    let _ = child.wait();
    (booted, log)
}

#[cfg_attr(not(spindle_root_tests), ignore = "needs root (see crates/rootgate)")]
#[test]
fn qcow2_disk_passes_qemu_img_check_and_boots_to_the_marker() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let proj = tempfile::tempdir().unwrap();
    common::busybox_rootfs(proj.path());
    let cache = tempfile::tempdir().unwrap();
    let baker = Baker::open(cache.path(), RealKernel).unwrap();
    let recipe =
        spindle_bake::parse("devvm.pkr.hcl", proj.path(), RECIPE, &VarInputs::default()).unwrap();
    let p = plan(&recipe, &Selection::default(), &baker.inputs()).unwrap();
    let baked = baker
        .bake(
            &p.builds[0],
            &BakeOptions {
                on_error: OnError::Cleanup,
                progress: Some(&|l| eprintln!("{l}")),
            },
        )
        .unwrap();
    let t = Instant::now();
    let files = spindle_bake::output::run_post_processors(
        baker.store(),
        baker.dir(),
        &baked,
        &p.builds[0].post_processors,
    )
    .unwrap();
    eprintln!("qcow2 post-processor: {:.1} s", t.elapsed().as_secs_f64());
    let out = proj.path().join("out");
    let names: Vec<String> = files
        .iter()
        .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["devvm.qcow2", "devvm.vmlinuz", "devvm.initrd", "SHA256SUMS"]
    );
    let sums = fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(
        sums.contains(&format!("{}  devvm.qcow2", files[0].sha256)),
        "{sums}"
    );
    // The bake's scratch work is gone.
    let tmp: Vec<_> = fs::read_dir(cache.path().join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !tmp.iter()
            .any(|n| n.to_string_lossy().starts_with("qcow2-")),
        "{tmp:?}"
    );

    let disk = out.join("devvm.qcow2");
    let check = Command::new("qemu-img")
        .args(["check", "-f", "qcow2"])
        .arg(&disk)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "qemu-img check: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&disk)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");

    let t = Instant::now();
    let (booted, log) = boot(
        &disk,
        &out.join("devvm.vmlinuz"),
        &out.join("devvm.initrd"),
        Duration::from_secs(150),
    );
    eprintln!(
        "boot to marker under TCG: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(booted, "no marker on the console; it said:\n{log}");
}
