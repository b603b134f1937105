//! Pack files: where the pool keeps .deb bytes. Instead of one file per package (an inode,
//! a temporary name and a rename each, which dominated adding many small packages), packages
//! are appended to a few large files, `packs/NNNNNNNN.pack`, and located through an
//! append-only index, `packs/index`.
//!
//! # On disk
//!
//! * `NNNNNNNN.pack`: package bytes back to back, no framing. A pack grows until it passes
//!   [`PACK_LIMIT`]; then the next number starts. Bytes no index record points at are dead
//!   (an add that failed after writing, or content cleanup dropped); [`Packs::compact`]
//!   reclaims them.
//! * `index`: the magic [`MAGIC`], then fixed records of [`RECORD`] bytes: SHA-256 (32),
//!   pack number (u32 LE), offset (u64 LE), length (u64 LE), CRC-32 of those 52 bytes
//!   (u32 LE). A later record for the same SHA-256 replaces an earlier one.
//!
//! # Crash safety
//!
//! An add writes its bytes into the pack, flushes the pack, and only then appends and
//! flushes its index records, so an index record never points at bytes that are not on
//! disk. A crash in between leaves dead bytes, never a record of missing content. A torn or
//! half-flushed record at the end of the index fails its CRC and is cut off at open.
//! Compaction writes the surviving packages into a new pack, flushes it, replaces the index
//! by an atomic rename, and only then deletes the old packs.
//!
//! One process owns a pool directory at a time (the daemon holds its data directory's lock);
//! within it, any number of threads add and read concurrently.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::fsutil;

/// The first bytes of an index file.
pub const MAGIC: &[u8; 8] = b"SPPACK1\n";
/// The size of one index record.
pub const RECORD: usize = 56;
/// A pack stops growing once it is at least this large.
pub const PACK_LIMIT: u64 = 1 << 30;

/// Where one package's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: u32,
    pub offset: u64,
    pub len: u64,
}

/// A region of an open file holding one package: what readers and the HTTP server stream.
#[derive(Debug)]
pub struct Slice {
    pub file: File,
    pub offset: u64,
    pub len: u64,
}

impl Slice {
    /// Reads the whole region.
    pub fn read_all(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0; self.len as usize];
        self.file.read_exact_at(&mut buf, self.offset)?;
        Ok(buf)
    }
}

/// Bytes written to a pack but not yet indexed.
#[derive(Debug, Clone)]
pub struct Staged {
    pub sha256: [u8; 32],
    pub at: Location,
}

#[derive(Debug)]
struct Writer {
    pack: u32,
    file: Arc<File>,
    len: u64,
}

#[derive(Debug)]
pub struct Packs {
    dir: PathBuf,
    index: RwLock<HashMap<[u8; 32], Location>>,
    writer: Mutex<Option<Writer>>,
    /// The index file, appended to under this lock.
    log: Mutex<File>,
}

/// Decodes a 64-digit lowercase hex SHA-256.
pub fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    let lower_hex = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if hex.len() != 64 || !lower_hex || hex::decode_to_slice(hex, &mut out).is_err() {
        return None;
    }
    Some(out)
}

fn pack_name(pack: u32) -> String {
    format!("{pack:08}.pack")
}

fn encode(sha: &[u8; 32], at: Location) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..32].copy_from_slice(sha);
    r[32..36].copy_from_slice(&at.pack.to_le_bytes());
    r[36..44].copy_from_slice(&at.offset.to_le_bytes());
    r[44..52].copy_from_slice(&at.len.to_le_bytes());
    let crc = crc32fast::hash(&r[..52]);
    r[52..].copy_from_slice(&crc.to_le_bytes());
    r
}

fn decode(r: &[u8]) -> Option<([u8; 32], Location)> {
    let le32 = |b: &[u8]| u32::from_le_bytes(b.try_into().unwrap_or_default());
    let le64 = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    if r.len() != RECORD || crc32fast::hash(&r[..52]) != le32(&r[52..]) {
        return None;
    }
    let sha: [u8; 32] = r[..32].try_into().ok()?;
    Some((
        sha,
        Location {
            pack: le32(&r[32..36]),
            offset: le64(&r[36..44]),
            len: le64(&r[44..52]),
        },
    ))
}

impl Packs {
    /// Opens (creating if needed) the packs under `dir`, reading the index and cutting off a
    /// torn tail. Records pointing past the end of their pack (which the write order rules
    /// out, short of outside damage) are dropped, so a lookup never returns missing bytes.
    pub fn open(dir: &Path) -> io::Result<Packs> {
        fs::create_dir_all(dir)?;
        let path = dir.join("index");
        let mut log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        let mut data = Vec::new();
        log.read_to_end(&mut data)?;
        if data.is_empty() {
            log.write_all(MAGIC)?;
            log.sync_data()?;
            fsutil::sync_dir(dir)?;
            data.extend_from_slice(MAGIC);
        }
        if !data.starts_with(MAGIC) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a pack index", path.display()),
            ));
        }
        let mut index = HashMap::new();
        let mut valid = MAGIC.len();
        for r in data[MAGIC.len()..].chunks(RECORD) {
            let Some((sha, at)) = decode(r) else { break };
            index.insert(sha, at);
            valid += RECORD;
        }
        if valid < data.len() {
            log.set_len(valid as u64)?;
            log.sync_data()?;
        }
        let mut sizes: HashMap<u32, u64> = HashMap::new();
        for at in index.values() {
            if let std::collections::hash_map::Entry::Vacant(e) = sizes.entry(at.pack) {
                e.insert(fs::metadata(dir.join(pack_name(at.pack))).map_or(0, |m| m.len()));
            }
        }
        index.retain(|_, at| at.offset + at.len <= sizes[&at.pack]);
        Ok(Packs {
            dir: dir.to_path_buf(),
            index: RwLock::new(index),
            writer: Mutex::new(None),
            log: Mutex::new(log),
        })
    }

    pub fn contains(&self, sha: &[u8; 32]) -> bool {
        self.read_index().contains_key(sha)
    }

    pub fn len(&self) -> usize {
        self.read_index().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read_index().is_empty()
    }

    /// Every SHA-256 with an index record.
    pub fn addresses(&self) -> Vec<[u8; 32]> {
        self.read_index().keys().copied().collect()
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, HashMap<[u8; 32], Location>> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the region holding `sha`, or `None` when no record has it. A compaction that
    /// moves the package between the lookup and the open is retried once.
    pub fn open_slice(&self, sha: &[u8; 32]) -> io::Result<Option<Slice>> {
        for _ in 0..2 {
            let Some(at) = self.read_index().get(sha).copied() else {
                return Ok(None);
            };
            match File::open(self.dir.join(pack_name(at.pack))) {
                Ok(file) => {
                    return Ok(Some(Slice {
                        file,
                        offset: at.offset,
                        len: at.len,
                    }))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Writes `bytes` at the end of the current pack (threads write side by side into
    /// regions reserved under a short lock). The result is invisible to readers until
    /// [`Packs::commit`].
    pub fn stage(&self, sha256: [u8; 32], bytes: &[u8]) -> io::Result<Staged> {
        let (file, at) = {
            let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            let full = w.as_ref().is_none_or(|w| w.len >= PACK_LIMIT);
            if full {
                *w = Some(self.next_writer(w.as_ref().map(|w| w.pack))?);
            }
            let w = w.as_mut().expect("a writer was just opened");
            let at = Location {
                pack: w.pack,
                offset: w.len,
                len: bytes.len() as u64,
            };
            w.len += at.len;
            (w.file.clone(), at)
        };
        file.write_all_at(bytes, at.offset)?;
        Ok(Staged { sha256, at })
    }

    /// The pack to append to: the last one if it has room, else a new one.
    fn next_writer(&self, after: Option<u32>) -> io::Result<Writer> {
        let mut last = after.unwrap_or(0);
        if after.is_none() {
            for entry in fs::read_dir(&self.dir)? {
                let name = entry?.file_name();
                let n = name.to_string_lossy();
                if let Some(num) = n.strip_suffix(".pack").and_then(|s| s.parse::<u32>().ok()) {
                    last = last.max(num);
                }
            }
        }
        let mut pack = last.max(1);
        loop {
            let path = self.dir.join(pack_name(pack));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let len = file.metadata()?.len();
            if len < PACK_LIMIT {
                if len == 0 {
                    fsutil::sync_dir(&self.dir)?;
                }
                return Ok(Writer {
                    pack,
                    file: Arc::new(file),
                    len,
                });
            }
            pack += 1;
        }
    }

    /// Makes staged packages durable and visible: flushes the packs they were written to,
    /// then appends and flushes their index records. With `sync` off, nothing is flushed.
    pub fn commit(&self, staged: &[Staged], sync: bool) -> io::Result<()> {
        if staged.is_empty() {
            return Ok(());
        }
        if sync {
            let packs: HashSet<u32> = staged.iter().map(|s| s.at.pack).collect();
            for pack in packs {
                File::open(self.dir.join(pack_name(pack)))?.sync_data()?;
            }
        }
        let mut records = Vec::with_capacity(staged.len() * RECORD);
        for s in staged {
            records.extend_from_slice(&encode(&s.sha256, s.at));
        }
        {
            let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            let end = log.metadata()?.len();
            if let Err(e) = log.write_all_at(&records, end) {
                let _ = log.set_len(end);
                return Err(e);
            }
            if sync {
                log.sync_data()?;
            }
        }
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        for s in staged {
            index.insert(s.sha256, s.at);
        }
        Ok(())
    }

    /// Gives back the space of staged packages that will not be committed, when they are
    /// still the last bytes of their pack; otherwise they stay as dead bytes for
    /// [`Packs::compact`].
    pub fn abandon(&self, staged: &[Staged]) {
        let Some(start) = staged.iter().map(|s| s.at.offset).min() else {
            return;
        };
        let end = staged
            .iter()
            .map(|s| s.at.offset + s.at.len)
            .max()
            .unwrap_or(start);
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = w.as_mut() {
            let one_pack = staged.iter().all(|s| s.at.pack == w.pack);
            if one_pack && w.len == end && w.file.set_len(start).is_ok() {
                w.len = start;
            }
        }
    }

    /// Keeps only the packages in `keep`, rewriting every pack that holds anything else (or
    /// dead bytes) into a fresh one. Returns the addresses dropped. Adds must not run
    /// concurrently (the caller excludes them); reads may.
    pub fn compact(&self, keep: &HashSet<[u8; 32]>, sync: bool) -> io::Result<Vec<[u8; 32]>> {
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.read_index().clone();
        let dropped: Vec<[u8; 32]> = current
            .keys()
            .filter(|s| !keep.contains(*s))
            .copied()
            .collect();
        // Live bytes per pack, against each pack's size.
        let mut live: BTreeMap<u32, u64> = BTreeMap::new();
        for (sha, at) in &current {
            if keep.contains(sha) {
                *live.entry(at.pack).or_default() += at.len;
            }
        }
        let mut packs: Vec<u32> = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(n) = name
                .to_string_lossy()
                .strip_suffix(".pack")
                .and_then(|s| s.parse::<u32>().ok())
            {
                packs.push(n);
            }
        }
        packs.sort_unstable();
        let mut rewrite = Vec::new();
        for &p in &packs {
            let size = fs::metadata(self.dir.join(pack_name(p)))?.len();
            if live.get(&p).copied().unwrap_or(0) < size {
                rewrite.push(p);
            }
        }
        if rewrite.is_empty() && dropped.is_empty() {
            return Ok(dropped);
        }
        // Copy the survivors of the rewritten packs into a pack numbered after all others.
        let target = packs.last().copied().unwrap_or(0) + 1;
        let rewriting: HashSet<u32> = rewrite.iter().copied().collect();
        let mut moved: HashMap<[u8; 32], Location> = HashMap::new();
        let out_path = self.dir.join(pack_name(target));
        let mut out_len = 0u64;
        let mut survivors: Vec<(&[u8; 32], &Location)> = current
            .iter()
            .filter(|(sha, at)| keep.contains(*sha) && rewriting.contains(&at.pack))
            .collect();
        survivors.sort_by_key(|(_, at)| (at.pack, at.offset));
        if !survivors.is_empty() {
            let out = fsutil::create_with_mode(&out_path, 0o644)?;
            let mut w = io::BufWriter::with_capacity(1 << 20, &out);
            let mut open: Option<(u32, File)> = None;
            let mut buf = Vec::new();
            for (sha, at) in survivors {
                if open.as_ref().is_none_or(|(p, _)| *p != at.pack) {
                    open = Some((at.pack, File::open(self.dir.join(pack_name(at.pack)))?));
                }
                let (_, src) = open.as_ref().expect("opened above");
                buf.resize(at.len as usize, 0);
                src.read_exact_at(&mut buf, at.offset)?;
                w.write_all(&buf)?;
                moved.insert(
                    *sha,
                    Location {
                        pack: target,
                        offset: out_len,
                        len: at.len,
                    },
                );
                out_len += at.len;
            }
            w.flush()?;
            drop(w);
            if sync {
                out.sync_data()?;
            }
        }
        // The new index: every kept record, moved ones at their new place.
        let mut next: HashMap<[u8; 32], Location> = HashMap::new();
        let mut data = Vec::with_capacity(MAGIC.len() + current.len() * RECORD);
        data.extend_from_slice(MAGIC);
        for (sha, at) in &current {
            if !keep.contains(sha) {
                continue;
            }
            let at = moved.get(sha).copied().unwrap_or(*at);
            data.extend_from_slice(&encode(sha, at));
            next.insert(*sha, at);
        }
        let index_path = self.dir.join("index");
        fsutil::write_atomic(&index_path, &data, 0o644, sync)?;
        if sync {
            fsutil::sync_dir(&self.dir)?;
        }
        let reopened = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&index_path)?;
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = next;
        drop(log);
        *self.log.lock().unwrap_or_else(|p| p.into_inner()) = reopened;
        // Old packs go last; a reader that looked one up just before retries (open_slice).
        for p in rewrite {
            fs::remove_file(self.dir.join(pack_name(p)))?;
        }
        // The next add reopens the newest pack.
        *writer = None;
        if sync {
            fsutil::sync_dir(&self.dir)?;
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn staged_bytes_are_invisible_until_committed_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path()).unwrap();
        let a = packs.stage(sha(1), b"first").unwrap();
        let b = packs.stage(sha(2), b"second").unwrap();
        assert!(!packs.contains(&sha(1)));
        packs.commit(&[a, b], true).unwrap();
        let reopened = Packs::open(dir.path()).unwrap();
        for (s, want) in [(sha(1), &b"first"[..]), (sha(2), b"second")] {
            let slice = reopened.open_slice(&s).unwrap().unwrap();
            assert_eq!(slice.read_all().unwrap(), want);
        }
        assert!(reopened.open_slice(&sha(3)).unwrap().is_none());
    }

    #[test]
    fn a_torn_index_tail_is_cut_off_and_later_records_still_append() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path()).unwrap();
        let a = packs.stage(sha(1), b"kept").unwrap();
        packs.commit(&[a], true).unwrap();
        drop(packs);
        // A record cut short, then one whose CRC does not match.
        let index = dir.path().join("index");
        let mut bad = encode(
            &sha(9),
            Location {
                pack: 1,
                offset: 0,
                len: 4,
            },
        )
        .to_vec();
        bad[40] ^= 1;
        let mut f = OpenOptions::new().append(true).open(&index).unwrap();
        f.write_all(&bad).unwrap();
        f.write_all(&[7; 20]).unwrap();
        drop(f);
        let packs = Packs::open(dir.path()).unwrap();
        assert!(packs.contains(&sha(1)) && !packs.contains(&sha(9)));
        assert_eq!(
            fs::metadata(&index).unwrap().len(),
            (MAGIC.len() + RECORD) as u64
        );
        let b = packs.stage(sha(2), b"after").unwrap();
        packs.commit(&[b], true).unwrap();
        let packs = Packs::open(dir.path()).unwrap();
        assert_eq!(packs.len(), 2);
    }

    #[test]
    fn abandoned_tail_bytes_are_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path()).unwrap();
        let a = packs.stage(sha(1), b"keep").unwrap();
        packs.commit(std::slice::from_ref(&a), true).unwrap();
        let b = packs.stage(sha(2), b"drop me").unwrap();
        packs.abandon(&[b]);
        let size = fs::metadata(dir.path().join(pack_name(a.at.pack)))
            .unwrap()
            .len();
        assert_eq!(size, 4);
    }

    #[test]
    fn compaction_drops_unkept_packages_and_dead_bytes_and_moves_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let packs = Packs::open(dir.path()).unwrap();
        let staged: Vec<Staged> = (1..=4u8)
            .map(|n| packs.stage(sha(n), &vec![n; 100 * n as usize]).unwrap())
            .collect();
        packs.commit(&staged[..3], true).unwrap();
        // sha(4)'s bytes were written but never committed: dead, not at the tail any more
        // once another add follows.
        let e = packs.stage(sha(5), b"five").unwrap();
        packs.commit(&[e], true).unwrap();
        let keep: HashSet<[u8; 32]> = [sha(1), sha(3), sha(5)].into();
        let mut dropped = packs.compact(&keep, true).unwrap();
        dropped.sort();
        assert_eq!(dropped, vec![sha(2)]);
        let packs = Packs::open(dir.path()).unwrap();
        assert_eq!(packs.len(), 3);
        assert_eq!(
            packs
                .open_slice(&sha(3))
                .unwrap()
                .unwrap()
                .read_all()
                .unwrap(),
            vec![3; 300]
        );
        assert_eq!(
            packs
                .open_slice(&sha(5))
                .unwrap()
                .unwrap()
                .read_all()
                .unwrap(),
            b"five"
        );
        // Only the new pack is left, holding exactly the live bytes.
        let files: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".pack"))
            .collect();
        assert_eq!(files, vec![pack_name(2)]);
        assert_eq!(
            fs::metadata(dir.path().join(pack_name(2))).unwrap().len(),
            100 + 300 + 4
        );
        // Adds go on after a compaction.
        let f = packs.stage(sha(6), b"six").unwrap();
        packs.commit(&[f], true).unwrap();
        assert!(Packs::open(dir.path()).unwrap().contains(&sha(6)));
    }
}
