//! Small file system helpers shared by the pool and the publisher: every file a client or a
//! later run may read is written to a temporary name in the same directory, synced, then
//! renamed into place, so readers see either the old or the new complete file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary sibling name for `path`, unique within this process.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// Writes `data` to `path` atomically (temp file, fsync, rename). `mode` sets the
/// permission bits of the new file before any data is written.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32, sync: bool) -> io::Result<()> {
    let tmp = temp_sibling(path);
    let result = (|| {
        let mut f = create_with_mode(&tmp, mode)?;
        f.write_all(data)?;
        if sync {
            f.sync_data()?;
        }
        drop(f);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn create_with_mode(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

/// Syncs a directory so that renames inside it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
