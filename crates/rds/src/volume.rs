//! DB instances' volumes and snapshots on the host, under the daemon's data dir
//! (`DATA_DIR/rds`): a volume is the directory bound into the instance as its data
//! directory, `volumes/ACCOUNT/DB-ID`, and outlives the instance; a snapshot is a volume
//! taken out of service whole, `snapshots/ACCOUNT/SNAPSHOT-ID/data` beside its
//! `snapshot.json`. A final snapshot is one `rename` of the volume (atomic, no copy).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::RdsError;

/// What is recorded with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    /// The DB instance it was taken from.
    pub db_instance: String,
    pub engine: String,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// `final` (taken when the instance was deleted) or `manual`.
    pub kind: String,
    /// The ARN of the instance's managed master secret (`ManageMasterUserPassword`): the
    /// snapshot's users keep that password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_user_secret: Option<String>,
}

/// The volumes and snapshots of one daemon.
#[derive(Debug, Clone)]
pub struct Volumes {
    root: PathBuf,
}

/// AWS's rule for DB instance and snapshot identifiers: a letter, then letters, digits and
/// single hyphens, not ending in one, at most `max` characters.
pub fn check_aws_identifier(id: &str, max: usize) -> Result<(), String> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && id.len() <= max
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{id}` must begin with a letter and hold only letters, digits and single hyphens, not ending in one (at most {max})"
        ))
    }
}

/// A snapshot identifier (at most 255 characters).
pub fn check_snapshot_id(id: &str) -> Result<(), String> {
    check_aws_identifier(id, 255)
}

impl Volumes {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Volumes { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The volume directory of a DB instance (it may not exist).
    pub fn volume(&self, account: &str, db: &str) -> PathBuf {
        self.root.join("volumes").join(account).join(db)
    }

    /// Whether snapshot `id` exists with its data.
    pub fn has_snapshot(&self, account: &str, id: &str) -> bool {
        self.snapshot_dir(account, id).join("data").is_dir()
    }

    fn snapshot_dir(&self, account: &str, id: &str) -> PathBuf {
        self.root.join("snapshots").join(account).join(id)
    }

    /// Makes the volume directory if it is missing (mode 0700; the instance's first boot
    /// gives it to its `postgres` user). Returns its path.
    pub fn ensure_volume(&self, account: &str, db: &str) -> Result<PathBuf, RdsError> {
        use std::os::unix::fs::DirBuilderExt;
        let path = self.volume(account, db);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|e| RdsError::io("create", &path, e))?;
        Ok(path)
    }

    /// Takes the volume out of service as snapshot `id` (one rename). A missing volume is
    /// `Ok(None)`; an existing snapshot of that id is refused.
    pub fn snapshot_volume(
        &self,
        account: &str,
        db: &str,
        snap: Snapshot,
    ) -> Result<Option<Snapshot>, RdsError> {
        let volume = self.volume(account, db);
        if !volume.exists() {
            return Ok(None);
        }
        let dir = self.snapshot_dir(account, &snap.id);
        if dir.exists() {
            return Err(RdsError::SnapshotExists(snap.id));
        }
        std::fs::create_dir_all(&dir).map_err(|e| RdsError::io("create", &dir, e))?;
        let meta = dir.join("snapshot.json");
        let body = serde_json::to_vec_pretty(&snap).expect("a snapshot serializes");
        std::fs::write(&meta, body).map_err(|e| RdsError::io("write", &meta, e))?;
        let data = dir.join("data");
        std::fs::rename(&volume, &data).map_err(|e| RdsError::io("rename", &volume, e))?;
        Ok(Some(snap))
    }

    /// Makes the volume of `db` a copy of snapshot `id`'s data (`cp -a` into a side
    /// directory, then one rename), so a failed copy leaves no half volume. The volume must
    /// not exist yet.
    pub fn restore(&self, account: &str, id: &str, db: &str) -> Result<PathBuf, RdsError> {
        let data = self.snapshot_dir(account, id).join("data");
        if !data.is_dir() {
            return Err(RdsError::NoSnapshot(id.to_string()));
        }
        let volume = self.volume(account, db);
        if volume.exists() {
            return Err(RdsError::VolumeExists(db.to_string()));
        }
        let parent = volume.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| RdsError::io("create", &parent, e))?;
        let side = parent.join(format!(".restore-{db}"));
        let _ = std::fs::remove_dir_all(&side);
        copy_tree(&data, &side).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&side);
        })?;
        std::fs::rename(&side, &volume).map_err(|e| RdsError::io("rename", &side, e))?;
        Ok(volume)
    }

    /// Copies the volume of `db` into a new snapshot (a manual one: the instance keeps its
    /// volume). The copy and its record are made in a side directory that one rename makes
    /// the snapshot, so a failed copy leaves no snapshot. The engine must be stopped (a copy
    /// of a running cluster's files is not consistent).
    pub fn copy_to_snapshot(
        &self,
        account: &str,
        db: &str,
        snap: Snapshot,
    ) -> Result<Snapshot, RdsError> {
        let volume = self.volume(account, db);
        if !volume.is_dir() {
            return Err(RdsError::io(
                "find",
                &volume,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let dir = self.snapshot_dir(account, &snap.id);
        if dir.exists() {
            return Err(RdsError::SnapshotExists(snap.id));
        }
        let parent = dir.parent().unwrap_or(&self.root).to_path_buf();
        let side = parent.join(format!(".partial-{}", snap.id));
        let _ = std::fs::remove_dir_all(&side);
        std::fs::create_dir_all(&side).map_err(|e| RdsError::io("create", &side, e))?;
        let undo = |e: RdsError| {
            let _ = std::fs::remove_dir_all(&side);
            e
        };
        copy_tree(&volume, &side.join("data")).map_err(undo)?;
        let meta = side.join("snapshot.json");
        let body = serde_json::to_vec_pretty(&snap).expect("a snapshot serializes");
        std::fs::write(&meta, body).map_err(|e| undo(RdsError::io("write", &meta, e)))?;
        std::fs::rename(&side, &dir).map_err(|e| undo(RdsError::io("rename", &side, e)))?;
        Ok(snap)
    }

    /// Deletes snapshot `id` (renamed aside first, so it disappears whole); `Ok(false)` when
    /// there is none.
    pub fn delete_snapshot(&self, account: &str, id: &str) -> Result<bool, RdsError> {
        let dir = self.snapshot_dir(account, id);
        if !dir.exists() {
            return Ok(false);
        }
        let parent = dir.parent().unwrap_or(&self.root).to_path_buf();
        let aside = parent.join(format!(".deleting-{id}"));
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&dir, &aside).map_err(|e| RdsError::io("rename", &dir, e))?;
        std::fs::remove_dir_all(&aside).map_err(|e| RdsError::io("remove", &aside, e))?;
        Ok(true)
    }

    /// Removes a volume and its data (a delete without a snapshot).
    pub fn remove_volume(&self, account: &str, db: &str) -> Result<(), RdsError> {
        let volume = self.volume(account, db);
        match std::fs::remove_dir_all(&volume) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RdsError::io("remove", &volume, e))
            }
            _ => Ok(()),
        }
    }

    /// The snapshots of an account, oldest first. A snapshot whose `data` is missing (a
    /// rename that never happened) is not listed.
    pub fn snapshots(&self, account: &str) -> Result<Vec<Snapshot>, RdsError> {
        let dir = self.root.join("snapshots").join(account);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RdsError::io("read", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            // `.partial-…` and `.deleting-…` are snapshots being made or removed.
            if entry.file_name().to_string_lossy().starts_with('.') || !path.join("data").is_dir() {
                continue;
            }
            let meta = path.join("snapshot.json");
            let body = std::fs::read(&meta).map_err(|e| RdsError::io("read", &meta, e))?;
            let snap: Snapshot = serde_json::from_slice(&body)
                .map_err(|e| RdsError::BadRecord(format!("{}: {e}", meta.display())))?;
            out.push(snap);
        }
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }
}

/// `cp -a --reflink=auto FROM TO` (owners, modes and times kept; shared extents where the
/// filesystem has them). `TO` must not exist.
fn copy_tree(from: &Path, to: &Path) -> Result<(), RdsError> {
    let out = std::process::Command::new("cp")
        .arg("-a")
        .arg("--reflink=auto")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| RdsError::io("run cp for", from, e))?;
    if !out.status.success() {
        return Err(RdsError::Copy(
            from.display().to_string(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str) -> Snapshot {
        Snapshot {
            id: id.into(),
            db_instance: "db1".into(),
            engine: "postgres".into(),
            created_at: 7,
            kind: "final".into(),
            master_user_secret: None,
        }
    }

    #[test]
    fn a_final_snapshot_takes_the_volume_whole_and_is_listed() {
        let t = tempfile::tempdir().unwrap();
        let v = Volumes::new(t.path());
        let vol = v.ensure_volume("111111111111", "db1").unwrap();
        std::fs::write(vol.join("PG_VERSION"), "15\n").unwrap();
        assert_eq!(v.snapshots("111111111111").unwrap(), vec![]);
        let got = v
            .snapshot_volume("111111111111", "db1", snap("db1-final"))
            .unwrap();
        assert_eq!(got, Some(snap("db1-final")));
        assert!(!vol.exists(), "the volume moved");
        let data = t
            .path()
            .join("snapshots/111111111111/db1-final/data/PG_VERSION");
        assert_eq!(std::fs::read_to_string(data).unwrap(), "15\n");
        assert_eq!(
            v.snapshots("111111111111").unwrap(),
            vec![snap("db1-final")]
        );
        assert_eq!(v.snapshots("222222222222").unwrap(), vec![], "per account");
        // Nothing left to snapshot; the same id again is refused.
        assert_eq!(
            v.snapshot_volume("111111111111", "db1", snap("x")).unwrap(),
            None
        );
        v.ensure_volume("111111111111", "db1").unwrap();
        let e = v
            .snapshot_volume("111111111111", "db1", snap("db1-final"))
            .unwrap_err();
        assert!(e.to_string().contains("db1-final"), "{e}");
    }

    #[test]
    fn a_restore_copies_a_snapshot_into_a_new_volume_and_keeps_the_snapshot() {
        let t = tempfile::tempdir().unwrap();
        let v = Volumes::new(t.path());
        let vol = v.ensure_volume("111111111111", "db1").unwrap();
        std::fs::write(vol.join("PG_VERSION"), "15\n").unwrap();
        v.snapshot_volume("111111111111", "db1", snap("s1"))
            .unwrap();
        let e = v.restore("111111111111", "nosuch", "db2").unwrap_err();
        assert!(e.to_string().contains("nosuch"), "{e}");
        let got = v.restore("111111111111", "s1", "db2").unwrap();
        assert_eq!(
            std::fs::read_to_string(got.join("PG_VERSION")).unwrap(),
            "15\n"
        );
        assert_eq!(v.snapshots("111111111111").unwrap(), vec![snap("s1")]);
        let e = v.restore("111111111111", "s1", "db2").unwrap_err();
        assert!(e.to_string().contains("db2"), "{e}");
    }

    #[test]
    fn snapshot_ids_follow_aws_rules() {
        for ok in ["a", "db1-final-1", "Snap2"] {
            assert_eq!(check_snapshot_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "1a", "a-", "a--b", "a_b", "a b"] {
            assert!(check_snapshot_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_manual_snapshot_copies_the_volume_and_a_delete_removes_it_whole() {
        let t = tempfile::tempdir().unwrap();
        let v = Volumes::new(t.path());
        let e = v
            .copy_to_snapshot("111111111111", "db1", snap("m1"))
            .unwrap_err();
        assert!(e.to_string().contains("db1"), "no volume yet: {e}");
        let vol = v.ensure_volume("111111111111", "db1").unwrap();
        std::fs::write(vol.join("PG_VERSION"), "15\n").unwrap();
        let mut manual = snap("m1");
        manual.kind = "manual".into();
        v.copy_to_snapshot("111111111111", "db1", manual.clone())
            .unwrap();
        assert!(vol.join("PG_VERSION").is_file(), "the volume stays");
        assert!(v.has_snapshot("111111111111", "m1"));
        assert_eq!(v.snapshots("111111111111").unwrap(), vec![manual.clone()]);
        let e = v
            .copy_to_snapshot("111111111111", "db1", manual)
            .unwrap_err();
        assert!(e.to_string().contains("m1 already exists"), "{e}");
        // A half-made snapshot is not listed.
        let partial = t.path().join("snapshots/111111111111/.partial-m2/data");
        std::fs::create_dir_all(&partial).unwrap();
        assert_eq!(v.snapshots("111111111111").unwrap().len(), 1);
        let got = v.restore("111111111111", "m1", "db2").unwrap();
        assert_eq!(
            std::fs::read_to_string(got.join("PG_VERSION")).unwrap(),
            "15\n"
        );
        assert!(v.delete_snapshot("111111111111", "m1").unwrap());
        assert!(!v.delete_snapshot("111111111111", "m1").unwrap());
        assert_eq!(v.snapshots("111111111111").unwrap(), vec![]);
    }
}
