//! What the root tests share.

#![allow(dead_code)]

use std::fs;
use std::path::Path;

/// Lays out `DIR/rootfs` with the host's static busybox as `/bin/busybox` and `/bin/sh`, and
/// empty `/proc`, `/dev`, `/tmp` and `/etc`: the smallest tree a step can run in.
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("rootfs/bin");
    fs::create_dir_all(&bin).unwrap();
    for d in ["proc", "dev", "tmp", "etc"] {
        fs::create_dir_all(dir.join("rootfs").join(d)).unwrap();
    }
    fs::copy(spindle_runtime::host::BUSYBOX, bin.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
}

/// Why a test that needs root and the host's Debian mirror can't run here, if it can't;
/// otherwise the mirror's URL.
pub fn root_and_mirror() -> Result<String, String> {
    if let Some(reason) = spindle_runtime::host::missing_prerequisites() {
        return Err(reason);
    }
    let mirror = spindle_bake::debian::host_mirror("bookworm")?;
    if ureq::get(&format!("{mirror}/dists/bookworm/InRelease"))
        .call()
        .is_err()
    {
        return Err("the host's mirror does not answer".into());
    }
    Ok(mirror)
}
