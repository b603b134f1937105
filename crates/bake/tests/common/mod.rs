//! What the root tests share.

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
