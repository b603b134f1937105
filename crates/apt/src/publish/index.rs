//! Index rendering with caches, so that republishing after a small change costs work
//! proportional to the change.
//!
//! * An index is split into *chunks* at content-defined boundaries (after a package whose
//!   name hashes to 0 modulo the chunk target), so inserting one package changes one chunk
//!   and leaves the others byte-identical. Each chunk is compressed on its own.
//!   `Packages.gz` is the concatenation of the gzip members (RFC 1952 allows several
//!   members; gzip and zlib's `gzread`, which apt uses, read them as one stream).
//!   `Packages.xz` must be a *single* xz stream, because apt's liblzma decoder stops after
//!   the first stream (checked against apt 2.6); so each chunk is compressed to an xz
//!   block and [`assemble_xz`] writes one stream header, the cached blocks and a new
//!   index and footer — the layout multi-threaded `xz -T` produces.
//! * Digests of a whole file are resumed from the cached hasher state after the longest
//!   unchanged prefix of chunks.
//! * A chunk's identity hashes its members' pool addresses; the members of each chunk at
//!   the last publish are remembered (as the shared records themselves), so an unchanged
//!   chunk is recognised by comparing pointers and only changed chunks are hashed.
//! * Cached buffers are trimmed to their length: the daemon keeps one cache per
//!   publication for its lifetime. Uncompressed chunks are not kept between publishes
//!   (see [`IndexCache::evict`]).

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use spindle_deb::digest::Hasher;
use spindle_deb::FileDigests;

use crate::package::PackageRef;

/// An immutable byte buffer shared between the cache and plans.
pub type Bytes = Arc<Vec<u8>>;

/// Compression settings for published indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompressionOptions {
    /// gzip level 0–9 for `Packages.gz` and `Contents-*.gz`.
    pub gzip_level: u32,
    /// xz preset 0–9 for `Packages.xz`; `None` publishes no `.xz`.
    pub xz_preset: Option<u32>,
    /// Publish the uncompressed `Packages` file too (its digests are always in `Release`).
    pub uncompressed: bool,
    /// Average packages per independently compressed chunk (0 or 1: one chunk per file).
    pub chunk_target: u32,
}

impl Default for CompressionOptions {
    fn default() -> Self {
        CompressionOptions {
            gzip_level: 6,
            xz_preset: Some(6),
            uncompressed: true,
            chunk_target: 64,
        }
    }
}

/// Asked between chunks of work that may be left for later: true means stop.
pub type Cancel<'a> = &'a (dyn Fn() -> bool + Sync);

/// Work stopped because its [`Cancel`] said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cancelled;

/// Identity of a chunk: SHA-256 over what determines its bytes.
pub(crate) type ChunkId = [u8; 32];

/// The bytes of a chunk in each published form.
#[derive(Debug, Clone)]
pub(crate) struct ChunkForms {
    pub gz: Bytes,
    pub xz: Option<XzBlocks>,
}

/// The blocks of a one-chunk xz stream, ready to be placed in a larger stream.
#[derive(Debug, Clone)]
pub(crate) struct XzBlocks {
    /// The stream header (12 bytes), the same for every chunk compressed with one setting.
    pub header: [u8; 12],
    /// Block headers, compressed data, padding and checks, as they appear in the stream.
    pub blocks: Bytes,
    /// (unpadded size, uncompressed size) of each block, for the stream index.
    pub records: Vec<(u64, u64)>,
}

/// Hasher states after each chunk of one published file, from its last rendering.
#[derive(Clone, Default)]
struct PrefixStates {
    ids: Vec<ChunkId>,
    states: Vec<Hasher>,
    digests: Option<FileDigests>,
}

/// The chunks of one index at the last publish: each chunk's id and members. Holding the
/// records keeps their addresses from being reused by other records, so pointer equality
/// means the same record.
type ChunkMemo = Vec<(ChunkId, Vec<Arc<PackageRef>>)>;

/// Caches reused across publishes. Keep one per publish target for the daemon's lifetime;
/// a fresh cache gives identical output, only slower.
#[derive(Default)]
pub struct IndexCache {
    /// Chunk members by (component, architecture), of the last publish and of the one
    /// before it (while a publish is being planned).
    memos: HashMap<(String, String), ChunkMemo>,
    old_memos: HashMap<(String, String), ChunkMemo>,
    /// Uncompressed chunks of the publish being planned (emptied by [`IndexCache::evict`]).
    plain: HashMap<ChunkId, Bytes>,
    /// Compressed chunks by (chunk, level or preset): gzip and xz apart, so a publish that
    /// leaves `Packages.xz` to a later step still finds its gzip members here.
    gz: HashMap<(ChunkId, u32), Bytes>,
    xz: HashMap<(ChunkId, u32), XzBlocks>,
    contents: HashMap<ChunkId, Bytes>,
    prefixes: HashMap<String, PrefixStates>,
    generation: u64,
    /// Generation in which each cached entry was last used, to evict the rest.
    gz_used: HashMap<(ChunkId, u32), u64>,
    xz_used: HashMap<(ChunkId, u32), u64>,
    contents_used: HashMap<ChunkId, u64>,
}

impl std::fmt::Debug for IndexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexCache")
            .field("plain", &self.plain.len())
            .field("gz", &self.gz.len())
            .field("xz", &self.xz.len())
            .field("generation", &self.generation)
            .finish()
    }
}

impl IndexCache {
    pub fn new() -> IndexCache {
        IndexCache::default()
    }

    pub(crate) fn begin(&mut self) {
        self.generation += 1;
        self.old_memos = std::mem::take(&mut self.memos);
    }

    /// Drops entries not used by the last two publishes, and every uncompressed chunk.
    ///
    /// Uncompressed chunks are the largest entries (13.4 MiB of the 20k-package benchmark's
    /// `Packages`, against 3.4 MiB gzipped) and cheap to make again: a publish renders them
    /// from the records it is given (a republish after +1 of 20k packages planned in
    /// 53-90 ms with this, in the engine benchmark), so keeping them between publishes only
    /// raised the daemon's resident size. Within one publish they are shared by
    /// compression, digests and the written file.
    pub(crate) fn evict(&mut self) {
        self.old_memos.clear();
        let keep = self.generation.saturating_sub(1);
        self.plain = HashMap::new();
        let used = &self.gz_used;
        self.gz
            .retain(|k, _| used.get(k).is_some_and(|g| *g >= keep));
        self.gz_used.retain(|_, g| *g >= keep);
        let used = &self.xz_used;
        self.xz
            .retain(|k, _| used.get(k).is_some_and(|g| *g >= keep));
        self.xz_used.retain(|_, g| *g >= keep);
        let used = &self.contents_used;
        self.contents
            .retain(|k, _| used.get(k).is_some_and(|g| *g >= keep));
        self.contents_used.retain(|_, g| *g >= keep);
    }

    /// The ids of the chunks of one index (`members`, each chunk in index order): reused
    /// from the last publish for chunks with the same members, else hashed from the members'
    /// pool addresses (which determine their paragraphs, given the component).
    pub(crate) fn chunk_ids(
        &mut self,
        component: &str,
        arch: &str,
        chunks: &[&[&Arc<PackageRef>]],
    ) -> Vec<ChunkId> {
        let key = (component.to_string(), arch.to_string());
        let mut old: Vec<Option<(ChunkId, Vec<Arc<PackageRef>>)>> = self
            .old_memos
            .remove(&key)
            .unwrap_or_default()
            .into_iter()
            .map(Some)
            .collect();
        let by_first: HashMap<*const PackageRef, usize> = old
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((Arc::as_ptr(c.as_ref()?.1.first()?), i)))
            .collect();
        let mut memo = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let unchanged = chunk
                .first()
                .and_then(|p| by_first.get(&Arc::as_ptr(p)))
                .filter(|&&i| {
                    old[i].as_ref().is_some_and(|(_, m)| {
                        m.len() == chunk.len()
                            && m.iter().zip(chunk.iter()).all(|(a, b)| Arc::ptr_eq(a, b))
                    })
                })
                .and_then(|&i| old[i].take());
            memo.push(unchanged.unwrap_or_else(|| {
                (
                    chunk_id(component, chunk.iter().map(|p| p.sha256())),
                    chunk.iter().map(|p| Arc::clone(p)).collect(),
                )
            }));
        }
        let ids = memo.iter().map(|(id, _)| *id).collect();
        self.memos.insert(key, memo);
        ids
    }

    /// The uncompressed bytes of a chunk (its packages' paragraphs), rendered with `render`
    /// on a miss.
    pub(crate) fn plain_chunk(&mut self, id: ChunkId, render: impl FnOnce() -> Vec<u8>) -> Bytes {
        self.plain
            .entry(id)
            .or_insert_with(|| Arc::new(render()))
            .clone()
    }

    /// Splits `items` (already in index order) into chunks with content-defined boundaries.
    pub(crate) fn split<T>(items: &[T], name: impl Fn(&T) -> &str, target: u32) -> Vec<&[T]> {
        if target <= 1 || items.is_empty() {
            return vec![items];
        }
        let mut out = Vec::new();
        let mut start = 0;
        for i in 0..items.len() {
            let last_of_name = i + 1 == items.len() || name(&items[i + 1]) != name(&items[i]);
            if last_of_name && fnv1a(name(&items[i]).as_bytes()).is_multiple_of(u64::from(target)) {
                out.push(&items[start..=i]);
                start = i + 1;
            }
        }
        if start < items.len() {
            out.push(&items[start..]);
        }
        out
    }

    /// How many packages the chunks that `cached` does not hold have: what building the
    /// file from them would cost.
    pub(crate) fn missing_members<T>(
        chunks: &[&[T]],
        ids: &[ChunkId],
        cached: impl Fn(&ChunkId) -> bool,
    ) -> usize {
        chunks
            .iter()
            .zip(ids)
            .filter(|(_, id)| !cached(id))
            .map(|(c, _)| c.len())
            .sum()
    }

    pub(crate) fn has_xz(&self, id: &ChunkId, preset: u32) -> bool {
        self.xz.contains_key(&(*id, preset))
    }

    pub(crate) fn has_contents(&self, id: &ChunkId) -> bool {
        self.contents.contains_key(id)
    }

    /// Compressed forms of the chunks whose plain bytes are given (xz only with a preset),
    /// compressing the missing ones on up to `threads` threads. When `cancel` turns true the
    /// workers stop after their current chunk; what they finished is kept for next time.
    pub(crate) fn compress_chunks(
        &mut self,
        chunks: &[(ChunkId, Bytes)],
        gzip_level: u32,
        xz_preset: Option<u32>,
        threads: usize,
        cancel: Option<Cancel<'_>>,
    ) -> Result<Vec<ChunkForms>, Cancelled> {
        // (chunk, gzip wanted, xz preset wanted) of each chunk with something missing.
        let missing: Vec<(usize, bool, Option<u32>)> = (0..chunks.len())
            .filter_map(|i| {
                let id = chunks[i].0;
                let gz = !self.gz.contains_key(&(id, gzip_level));
                let xz = xz_preset.filter(|p| !self.xz.contains_key(&(id, *p)));
                (gz || xz.is_some()).then_some((i, gz, xz))
            })
            .collect();
        type Done = (usize, Option<Bytes>, Option<XzBlocks>);
        let results: Mutex<Vec<Done>> = Mutex::new(Vec::new());
        let next = AtomicUsize::new(0);
        let work = || loop {
            if cancel.is_some_and(|c| c()) {
                break;
            }
            let n = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(i, want_gz, want_xz)) = missing.get(n) else {
                break;
            };
            let plain = &chunks[i].1;
            let gz = want_gz.then(|| Arc::new(gzip(plain, gzip_level)));
            let xz = want_xz.map(|p| split_xz_stream(&xz(plain, p)));
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, gz, xz));
        };
        let threads = threads.clamp(1, missing.len().max(1));
        if threads == 1 {
            work();
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(work);
                }
            });
        }
        for (i, gz, xz) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
            let id = chunks[i].0;
            if let Some(gz) = gz {
                self.gz.insert((id, gzip_level), gz);
            }
            if let (Some(xz), Some(p)) = (xz, xz_preset) {
                self.xz.insert((id, p), xz);
            }
        }
        if cancel.is_some_and(|c| c()) {
            return Err(Cancelled);
        }
        let generation = self.generation;
        Ok(chunks
            .iter()
            .map(|(id, _)| {
                self.gz_used.insert((*id, gzip_level), generation);
                let xz = xz_preset.map(|p| {
                    self.xz_used.insert((*id, p), generation);
                    self.xz[&(*id, p)].clone()
                });
                ChunkForms {
                    gz: self.gz[&(*id, gzip_level)].clone(),
                    xz,
                }
            })
            .collect())
    }

    /// A gzip-compressed `Contents` chunk, built with `render` on a miss.
    pub(crate) fn contents_chunk(
        &mut self,
        id: ChunkId,
        level: u32,
        render: impl FnOnce() -> Vec<u8>,
    ) -> Bytes {
        self.contents_used.insert(id, self.generation);
        self.contents
            .entry(id)
            .or_insert_with(|| Arc::new(gzip(&render(), level)))
            .clone()
    }

    /// Digests of the concatenation of `parts`, resuming from the cached state after the
    /// longest unchanged prefix of chunk ids recorded for `file`.
    pub(crate) fn digests(&mut self, file: &str, ids: &[ChunkId], parts: &[Bytes]) -> FileDigests {
        let prev = self.prefixes.remove(file).unwrap_or_default();
        if prev.ids == ids {
            if let Some(d) = &prev.digests {
                let d = d.clone();
                self.prefixes.insert(file.to_string(), prev);
                return d;
            }
        }
        let common = prev.ids.iter().zip(ids).take_while(|(a, b)| a == b).count();
        let mut states: Vec<Hasher> = prev.states.into_iter().take(common).collect();
        let mut hasher = states.last().cloned().unwrap_or_default();
        for part in &parts[common..] {
            hasher.update(part);
            states.push(hasher.clone());
        }
        let digests = hasher.finish();
        self.prefixes.insert(
            file.to_string(),
            PrefixStates {
                ids: ids.to_vec(),
                states,
                digests: Some(digests.clone()),
            },
        );
        digests
    }
}

/// The identity of a chunk from its members' identities.
pub(crate) fn chunk_id(tag: &str, members: impl Iterator<Item = impl AsRef<[u8]>>) -> ChunkId {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update([0]);
    for m in members {
        h.update(m.as_ref());
        h.update([0]);
    }
    h.finalize().into()
}

/// Splits a single xz stream into its header, block region and index records.
fn split_xz_stream(stream: &[u8]) -> XzBlocks {
    // The encoder's own output is well formed; any inconsistency is a bug, so fall back to
    // an empty record list rather than panicking (the Release digests would then still
    // match the bytes, and the xz test would catch it).
    let mut header = [0u8; 12];
    header.copy_from_slice(&stream[..12]);
    let len = stream.len();
    let backward = u32::from_le_bytes([
        stream[len - 8],
        stream[len - 7],
        stream[len - 6],
        stream[len - 5],
    ]);
    let index_size = (backward as usize + 1) * 4;
    let index_start = len - 12 - index_size;
    let index = &stream[index_start..len - 12];
    let mut pos = 1; // the index indicator 0x00
    let count = read_varint(index, &mut pos);
    let records = (0..count)
        .map(|_| {
            let unpadded = read_varint(index, &mut pos);
            let uncompressed = read_varint(index, &mut pos);
            (unpadded, uncompressed)
        })
        .collect();
    XzBlocks {
        header,
        blocks: Arc::new(stream[12..index_start].to_vec()),
        records,
    }
}

fn read_varint(data: &[u8], pos: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..63).step_by(7) {
        let Some(&b) = data.get(*pos) else { break };
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    value
}

fn write_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One xz stream made of the given chunks' blocks: `[header, blocks…, index+footer]`.
/// `empty_header` is used when there are no chunks.
pub(crate) fn assemble_xz(chunks: &[&XzBlocks], preset: u32) -> Vec<Bytes> {
    let header = match chunks.first() {
        Some(c) => c.header,
        None => split_xz_stream(&xz(b"", preset)).header,
    };
    let flags = [header[6], header[7]];
    let mut index = vec![0u8];
    let records: Vec<&(u64, u64)> = chunks.iter().flat_map(|c| &c.records).collect();
    write_varint(&mut index, records.len() as u64);
    for (unpadded, uncompressed) in records {
        write_varint(&mut index, *unpadded);
        write_varint(&mut index, *uncompressed);
    }
    while index.len() % 4 != 0 {
        index.push(0);
    }
    let crc = crc32fast::hash(&index);
    index.extend_from_slice(&crc.to_le_bytes());
    let backward = (index.len() / 4 - 1) as u32;
    let mut footer_body = backward.to_le_bytes().to_vec();
    footer_body.extend_from_slice(&flags);
    let mut tail = index;
    tail.extend_from_slice(&crc32fast::hash(&footer_body).to_le_bytes());
    tail.extend_from_slice(&footer_body);
    tail.extend_from_slice(b"YZ");
    let mut parts = Vec::with_capacity(chunks.len() + 2);
    parts.push(Arc::new(header.to_vec()));
    parts.extend(chunks.iter().map(|c| c.blocks.clone()));
    parts.push(Arc::new(tail));
    parts
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    // Writing to a Vec cannot fail.
    let mut enc = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::new(level.min(9)),
    );
    let _ = enc.write_all(data);
    let mut out = enc.finish().unwrap_or_default();
    // Cached for the daemon's lifetime: no spare capacity.
    out.shrink_to_fit();
    out
}

pub(crate) fn xz(data: &[u8], preset: u32) -> Vec<u8> {
    // A dictionary larger than the input buys nothing but costs memory and the time to
    // initialise the match finder, which dominates for small chunks.
    let dict = (data.len() as u32)
        .next_power_of_two()
        .clamp(64 << 10, 8 << 20);
    let stream = liblzma::stream::LzmaOptions::new_preset(preset.min(9))
        .map(|mut o| {
            o.dict_size(dict);
            let mut filters = liblzma::stream::Filters::new();
            filters.lzma2(&o);
            filters
        })
        .and_then(|f| {
            liblzma::stream::Stream::new_stream_encoder(&f, liblzma::stream::Check::Crc64)
        });
    let out = Vec::with_capacity(data.len() / 5 + 64);
    let mut enc = match stream {
        Ok(s) => liblzma::write::XzEncoder::new_stream(out, s),
        Err(_) => liblzma::write::XzEncoder::new(out, preset.min(9)),
    };
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn concatenated_members_decompress_as_one_stream() {
        let a = b"Package: a\n\n".repeat(50);
        let b = b"Package: b\n\n".repeat(70);
        let mut gz = gzip(&a, 6);
        gz.extend(gzip(&b, 6));
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, [a.clone(), b.clone()].concat());
        // xz: one stream of several blocks, read by a plain single-stream decoder.
        let (xa, xb) = (split_xz_stream(&xz(&a, 1)), split_xz_stream(&xz(&b, 1)));
        let x: Vec<u8> = assemble_xz(&[&xa, &xb], 1)
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect();
        let mut out = Vec::new();
        liblzma::read::XzDecoder::new(&x[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, [a, b].concat());
        let empty: Vec<u8> = assemble_xz(&[], 1)
            .iter()
            .flat_map(|p| p.iter().copied())
            .collect();
        let mut out = Vec::new();
        liblzma::read::XzDecoder::new(&empty[..])
            .read_to_end(&mut out)
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn chunk_boundaries_are_stable_under_insertion() {
        let names: Vec<String> = (0..2000).map(|i| format!("pkg{i:05}")).collect();
        let chunks = IndexCache::split(&names, |s| s.as_str(), 32);
        assert!(chunks.len() > 20 && chunks.len() < 200, "{}", chunks.len());
        let mut more = names.clone();
        more.insert(1000, "pkg00999a".to_string());
        let chunks2 = IndexCache::split(&more, |s| s.as_str(), 32);
        let differing = chunks2.iter().filter(|c| !chunks.contains(c)).count();
        assert!(differing <= 2, "{differing} chunks changed");
        // All versions of a name stay in one chunk.
        let dup: Vec<&str> = ["a", "a", "b", "b", "b", "c"].to_vec();
        let split = IndexCache::split(&dup, |s| s, 2);
        for name in ["a", "b", "c"] {
            let holding = split.iter().filter(|c| c.contains(&name)).count();
            assert_eq!(holding, 1, "{name} spread over chunks: {split:?}");
        }
        let flat: Vec<&str> = IndexCache::split(&dup, |s| s, 2).concat();
        assert_eq!(flat, dup);
    }

    #[test]
    fn digests_resume_from_prefix_states() {
        let mut cache = IndexCache::new();
        let parts: Vec<Bytes> = (0..5u8).map(|i| Arc::new(vec![i; 1000])).collect();
        let ids: Vec<ChunkId> = (0..5u8).map(|i| [i; 32]).collect();
        let whole: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(
            cache.digests("f", &ids, &parts),
            spindle_deb::digest::digest_bytes(&whole)
        );
        let mut parts2 = parts.clone();
        parts2[3] = Arc::new(vec![9; 10]);
        let mut ids2 = ids.clone();
        ids2[3] = [9; 32];
        let whole2: Vec<u8> = parts2.iter().flat_map(|p| p.iter().copied()).collect();
        assert_eq!(
            cache.digests("f", &ids2, &parts2),
            spindle_deb::digest::digest_bytes(&whole2)
        );
        assert_eq!(
            cache.digests("f", &ids, &parts),
            spindle_deb::digest::digest_bytes(&whole)
        );
    }
}
