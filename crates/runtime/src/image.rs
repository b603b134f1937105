//! The image store: content-addressed layers unpacked once into trees keyed by the sha256 of
//! their uncompressed tar (the OCI `diff_id`), image records with an OCI-like config, AMI-style
//! ids and `name:tag` aliases.
//!
//! Layout under the store root:
//! ```text
//! blobs/sha256/<hex>     layer blobs as imported (for export), verified against their digest
//! layers/<diff_id>/      the unpacked tree; used read-only as an overlayfs lower dir
//! images/<ami-id>.json   one record per image
//! aliases.json           name:tag -> ami-id
//! tmp/                   work space; anything here is garbage after a crash
//! ```
//! Layers are validated while unpacking: no `..` components, no symlink or hard link that
//! leads outside the tree, no device nodes (OCI whiteouts are converted to overlayfs whiteouts).
//!
//! OCI import and export are in `image/oci.rs`, checked unpacking and whiteouts in `image/layer.rs`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod layer;
mod oci;

pub use layer::build_busybox_rootfs;
pub(crate) use layer::new_header;
use layer::{normalize, unpack_validated};
use oci::{is_oci_archive, sniff_media_type};

/// Errors of the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{op} `{path}` failed")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: io::Error,
    },
    #[error("no image `{0}` (expected an ami-… id or a name:tag alias)")]
    NotFound(String),
    #[error("layer entry `{entry}` is unsafe: {reason}")]
    UnsafeEntry { entry: String, reason: &'static str },
    #[error("layer is not a readable tar archive")]
    BadArchive(#[source] io::Error),
    #[error("`{0}` is not a valid tag; use name:tag with letters, digits, `._-/`")]
    BadTag(String),
    #[error("OCI layout `{path}` is invalid: {reason}")]
    BadLayout { path: PathBuf, reason: String },
    #[error("blob {digest} does not match its content (got sha256:{actual})")]
    DigestMismatch { digest: String, actual: String },
    #[error("image {image} is in use by {users}")]
    InUse { image: String, users: String },
    #[error("`{0}` already exists; export writes a new file or directory")]
    Exists(PathBuf),
    #[error("unknown export format `{0}`; use rootfs, oci or oci-archive")]
    BadFormat(String),
    #[error("`{path}` is neither a tar archive nor an OCI image layout directory")]
    UnknownFormat { path: PathBuf },
}

fn ioe<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ImageError + 'a {
    move |err| ImageError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// What an image runs, with OCI image-config semantics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// `uid[:gid]` or a user name from the image's `/etc/passwd`; empty means root.
    pub user: String,
    pub workdir: String,
    /// `80/tcp` style entries.
    pub exposed_ports: Vec<String>,
    /// The least memory the image needs; launching it with less is refused.
    pub min_memory_mib: u64,
    pub labels: BTreeMap<String, String>,
}

/// A sink for one file of an exported OCI layout: `(name, size, content)`.
type AddFile<'a> = dyn FnMut(&str, u64, &mut dyn Read) -> Result<(), ImageError> + 'a;

/// What [`ImageStore::export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The merged root filesystem as one tar.
    Rootfs,
    /// An OCI image layout directory.
    OciLayout,
    /// A tar of an OCI image layout.
    OciArchive,
}

impl std::str::FromStr for ExportFormat {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, ImageError> {
        match s {
            "rootfs" => Ok(ExportFormat::Rootfs),
            "oci" => Ok(ExportFormat::OciLayout),
            "oci-archive" => Ok(ExportFormat::OciArchive),
            other => Err(ImageError::BadFormat(other.into())),
        }
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    /// `sha256:…` of the blob as imported (possibly compressed).
    pub digest: String,
    /// `sha256:…` of the uncompressed tar; names the unpacked tree.
    pub diff_id: String,
    pub media_type: String,
    pub size: u64,
}

/// An image record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// `ami-` and 17 hex digits derived from the layers and config, so re-importing the same
    /// content yields the same id.
    pub id: String,
    pub layers: Vec<LayerRef>,
    pub config: ImageConfig,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// `name:tag` aliases pointing at this image (filled in by the store).
    #[serde(default)]
    pub tags: Vec<String>,
}

const MT_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const MT_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const MT_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// The image store. Safe to share between threads.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    lock: Mutex<()>,
}

impl ImageStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ImageError> {
        let root = root.into();
        for d in ["blobs/sha256", "layers", "images", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(ioe("create", &p))?;
        }
        Ok(Self {
            root,
            lock: Mutex::new(()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports `path`, detecting its format: an OCI image layout directory, an oci-archive
    /// (a tar holding an OCI layout), or a root filesystem tar (plain, gzip or zstd), for which
    /// `config` supplies the run configuration. `tag`, when given, is pointed at the result.
    pub fn import(
        &self,
        path: &Path,
        config: ImageConfig,
        tag: Option<&str>,
    ) -> Result<Image, ImageError> {
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        let image = if path.is_dir() {
            self.import_oci_layout(path)?
        } else if is_oci_archive(path)? {
            self.import_oci_archive(path)?
        } else {
            self.import_rootfs(path, config)?
        };
        if let Some(t) = tag {
            self.tag(&image.id, t)?;
        }
        self.inspect(&image.id)
    }

    /// Imports a root filesystem tarball as a one-layer image.
    pub fn import_rootfs(&self, path: &Path, config: ImageConfig) -> Result<Image, ImageError> {
        let (digest, size) = self.store_blob(path, None)?;
        let media_type = sniff_media_type(path)?;
        let diff_id = self.unpack_blob(&digest, &media_type)?;
        self.write_image(
            vec![LayerRef {
                digest,
                diff_id,
                media_type,
                size,
            }],
            config,
        )
    }

    /// All images, sorted by id, with their tags.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(ioe("read", &dir))? {
            let e = e.map_err(ioe("read", &dir))?;
            if let Some(id) = e.file_name().to_string_lossy().strip_suffix(".json") {
                out.push(self.inspect(id)?);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Resolves an `ami-…` id or a `name:tag` alias (a bare name means `name:latest`).
    pub fn resolve(&self, id_or_tag: &str) -> Result<String, ImageError> {
        if id_or_tag.starts_with("ami-") {
            if self.record_path(id_or_tag).is_file() {
                return Ok(id_or_tag.to_string());
            }
            return Err(ImageError::NotFound(id_or_tag.into()));
        }
        let key = if id_or_tag.contains(':') {
            id_or_tag.to_string()
        } else {
            format!("{id_or_tag}:latest")
        };
        self.aliases()?
            .get(&key)
            .cloned()
            .ok_or_else(|| ImageError::NotFound(id_or_tag.into()))
    }

    pub fn inspect(&self, id_or_tag: &str) -> Result<Image, ImageError> {
        let id = self.resolve(id_or_tag)?;
        let p = self.record_path(&id);
        let mut img: Image = serde_json::from_slice(&fs::read(&p).map_err(ioe("read", &p))?)
            .map_err(|e| ImageError::Io {
                op: "parse",
                path: p.clone(),
                err: e.into(),
            })?;
        img.tags = self
            .aliases()?
            .into_iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k)
            .collect();
        Ok(img)
    }

    /// Points `tag` (`name:tag`, or `name` for `name:latest`) at an image, moving it if needed.
    pub fn tag(&self, id_or_tag: &str, tag: &str) -> Result<(), ImageError> {
        validate_tag(tag)?;
        let id = self.resolve(id_or_tag)?;
        let key = if tag.contains(':') {
            tag.to_string()
        } else {
            format!("{tag}:latest")
        };
        let _g = self.lock.lock().unwrap();
        let mut a = self.aliases()?;
        a.insert(key, id);
        self.write_aliases(&a)
    }

    pub fn untag(&self, tag: &str) -> Result<(), ImageError> {
        let key = if tag.contains(':') {
            tag.to_string()
        } else {
            format!("{tag}:latest")
        };
        let _g = self.lock.lock().unwrap();
        let mut a = self.aliases()?;
        a.remove(&key)
            .ok_or_else(|| ImageError::NotFound(tag.into()))?;
        self.write_aliases(&a)
    }

    /// Removes an image, its aliases, and every layer and blob no other image uses.
    /// `in_use` names instances still using it; removal is refused then.
    pub fn remove(&self, id_or_tag: &str, in_use: &[String]) -> Result<(), ImageError> {
        let id = self.resolve(id_or_tag)?;
        if !in_use.is_empty() {
            return Err(ImageError::InUse {
                image: id,
                users: in_use.join(", "),
            });
        }
        let img = self.inspect(&id)?;
        let others: Vec<Image> = self.list()?.into_iter().filter(|i| i.id != id).collect();
        let _g = self.lock.lock().unwrap();
        let mut a = self.aliases()?;
        a.retain(|_, v| *v != id);
        self.write_aliases(&a)?;
        let p = self.record_path(&id);
        fs::remove_file(&p).map_err(ioe("remove", &p))?;
        for l in &img.layers {
            if !others
                .iter()
                .any(|o| o.layers.iter().any(|x| x.diff_id == l.diff_id))
            {
                let d = self.layer_dir(&l.diff_id);
                make_writable(&d);
                let _ = fs::remove_dir_all(&d);
            }
            if !others
                .iter()
                .any(|o| o.layers.iter().any(|x| x.digest == l.digest))
            {
                let _ = fs::remove_file(self.blob(&l.digest));
            }
        }
        Ok(())
    }

    /// Adds one uncompressed layer tar to the store (blob and unpacked tree) without making an
    /// image; [`ImageStore::create_image`] then composes layers. Used by image baking.
    pub fn add_layer(&self, tar_path: &Path) -> Result<LayerRef, ImageError> {
        let (digest, size) = self.store_blob(tar_path, None)?;
        let diff_id = self.unpack_blob(&digest, MT_TAR)?;
        Ok(LayerRef {
            digest,
            diff_id,
            media_type: MT_TAR.into(),
            size,
        })
    }

    /// Whether a layer's blob and unpacked tree are both present.
    pub fn has_layer(&self, layer: &LayerRef) -> bool {
        self.blob(&layer.digest).is_file() && self.layer_dir(&layer.diff_id).is_dir()
    }

    /// The path of a layer's blob as stored.
    pub fn layer_blob(&self, layer: &LayerRef) -> PathBuf {
        self.blob(&layer.digest)
    }

    /// The unpacked tree of one layer.
    pub fn layer_tree(&self, layer: &LayerRef) -> PathBuf {
        self.layer_dir(&layer.diff_id)
    }

    /// Records an image made of layers already in the store (see [`ImageStore::add_layer`]).
    pub fn create_image(
        &self,
        layers: Vec<LayerRef>,
        config: ImageConfig,
    ) -> Result<Image, ImageError> {
        if let Some(l) = layers.iter().find(|l| !self.has_layer(l)) {
            return Err(ImageError::NotFound(l.diff_id.clone()));
        }
        self.write_image(layers, config)
    }

    /// The unpacked layer trees of an image, lowest first.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .map(|l| self.layer_dir(&l.diff_id))
            .collect()
    }

    /// Finds `path` (absolute, inside the image) in the image's layers, following symlinks the
    /// way the kernel would after `pivot_root`. Returns the resolved in-image path.
    pub fn resolve_in_image(&self, image: &Image, path: &str) -> Option<String> {
        let layers = self.layer_dirs(image);
        let mut cur = normalize(path)?;
        for _ in 0..40 {
            let mut found = None;
            // Walk each prefix so that symlinked directories (e.g. /bin -> usr/bin) resolve.
            let comps: Vec<&str> = cur.split('/').filter(|c| !c.is_empty()).collect();
            let mut restart = None;
            let mut so_far = String::new();
            for (i, c) in comps.iter().enumerate() {
                so_far.push('/');
                so_far.push_str(c);
                let meta = layers.iter().rev().find_map(|l| {
                    fs::symlink_metadata(l.join(&so_far[1..]))
                        .ok()
                        .map(|m| (l, m))
                });
                match meta {
                    None => return None,
                    Some((l, m)) if m.file_type().is_symlink() => {
                        let target = fs::read_link(l.join(&so_far[1..])).ok()?;
                        let t = target.to_string_lossy();
                        let base = if t.starts_with('/') {
                            t.to_string()
                        } else {
                            format!(
                                "{}/{}",
                                so_far.rsplit_once('/').map(|x| x.0).unwrap_or(""),
                                t
                            )
                        };
                        let rest = comps[i + 1..].join("/");
                        restart = Some(normalize(&format!("{base}/{rest}"))?);
                        break;
                    }
                    Some((_, m)) => {
                        if i + 1 == comps.len() && m.is_file() {
                            found = Some(so_far.clone());
                        }
                    }
                }
            }
            if let Some(r) = restart {
                cur = r;
                continue;
            }
            return found;
        }
        None
    }

    /// Reads a small text file (like `/etc/passwd`) from an image, top layer first.
    pub fn read_in_image(&self, image: &Image, path: &str) -> Option<String> {
        let p = self.resolve_in_image(image, path)?;
        self.layer_dirs(image)
            .iter()
            .rev()
            .find_map(|l| fs::read_to_string(l.join(&p[1..])).ok())
    }

    fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(diff_id.trim_start_matches("sha256:"))
    }

    fn blob(&self, digest: &str) -> PathBuf {
        self.root
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.root.join("images").join(format!("{id}.json"))
    }

    fn aliases(&self) -> Result<BTreeMap<String, String>, ImageError> {
        let p = self.root.join("aliases.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Io {
                op: "parse",
                path: p,
                err: e.into(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ImageError::Io {
                op: "read",
                path: p,
                err: e,
            }),
        }
    }

    fn write_aliases(&self, a: &BTreeMap<String, String>) -> Result<(), ImageError> {
        write_atomic(
            &self.root.join("aliases.json"),
            &serde_json::to_vec_pretty(a).expect("json"),
        )
    }

    fn tmp_dir(&self, what: &str) -> Result<TmpDir, ImageError> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = self
            .root
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()));
        fs::create_dir_all(&p).map_err(ioe("create", &p))?;
        Ok(TmpDir(p))
    }

    /// Copies a blob into the store, verifying `expect` (a `sha256:` digest) when given.
    fn store_blob(&self, src: &Path, expect: Option<&str>) -> Result<(String, u64), ImageError> {
        let tmp = self.tmp_dir("blob")?;
        let dst_tmp = tmp.0.join("blob");
        let mut input = fs::File::open(src).map_err(ioe("open", src))?;
        let mut out = fs::File::create(&dst_tmp).map_err(ioe("create", &dst_tmp))?;
        let mut hasher = HashingReader {
            inner: &mut input,
            hasher: Sha256::new(),
        };
        let size = io::copy(&mut hasher, &mut out).map_err(ioe("copy", src))?;
        let digest = format!("sha256:{}", hex::encode(hasher.hasher.finalize()));
        if let Some(e) = expect {
            if e != digest {
                return Err(ImageError::DigestMismatch {
                    digest: e.into(),
                    actual: digest[7..].into(),
                });
            }
        }
        let dst = self.blob(&digest);
        if !dst.exists() {
            fs::rename(&dst_tmp, &dst).map_err(ioe("rename", &dst))?;
        }
        Ok((digest, size))
    }

    /// Unpacks a stored blob into `layers/<diff_id>` unless that tree already exists.
    fn unpack_blob(&self, digest: &str, media_type: &str) -> Result<String, ImageError> {
        let p = self.blob(digest);
        let f = BufReader::new(fs::File::open(&p).map_err(ioe("open", &p))?);
        let reader: Box<dyn Read> = match media_type {
            MT_GZIP => Box::new(flate2::read::GzDecoder::new(f)),
            MT_ZSTD => {
                Box::new(zstd::stream::read::Decoder::new(f).map_err(ImageError::BadArchive)?)
            }
            _ => Box::new(f),
        };
        let tmp = self.tmp_dir("layer")?;
        let tree = tmp.0.join("tree");
        fs::create_dir(&tree).map_err(ioe("create", &tree))?;
        let mut hr = HashingReader {
            inner: reader,
            hasher: Sha256::new(),
        };
        unpack_validated(&mut hr, &tree, true)?;
        io::copy(&mut hr, &mut io::sink()).map_err(ImageError::BadArchive)?;
        let diff_id = format!("sha256:{}", hex::encode(hr.hasher.finalize()));
        let dst = self.layer_dir(&diff_id);
        if !dst.exists() {
            fs::rename(&tree, &dst).map_err(ioe("rename", &dst))?;
        }
        Ok(diff_id)
    }

    fn write_image(&self, layers: Vec<LayerRef>, config: ImageConfig) -> Result<Image, ImageError> {
        let key = serde_json::to_vec(&(
            &layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>(),
            &config,
        ))
        .expect("json");
        let id = format!("ami-{}", &hex::encode(Sha256::digest(&key))[..17]);
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let img = Image {
            id: id.clone(),
            layers,
            config,
            created,
            tags: Vec::new(),
        };
        let p = self.record_path(&id);
        if !p.exists() {
            write_atomic(&p, &serde_json::to_vec_pretty(&img).expect("json"))?;
        }
        self.inspect(&id)
    }
}

struct TmpDir(PathBuf);

impl Drop for TmpDir {
    fn drop(&mut self) {
        make_writable(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Read-only directories in a layer would stop `remove_dir_all`.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = fs::symlink_metadata(dir) {
        if m.is_dir() {
            let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
            if let Ok(rd) = fs::read_dir(dir) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(ioe("write", &tmp))?;
    fs::rename(&tmp, path).map_err(ioe("rename", path))
}

fn blob_path(dir: &Path, digest: &str) -> Option<PathBuf> {
    let hex = digest.strip_prefix("sha256:")?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(dir.join("blobs/sha256").join(hex))
}

fn validate_tag(tag: &str) -> Result<(), ImageError> {
    let (name, t) = tag.split_once(':').unwrap_or((tag, "latest"));
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    };
    if ok(name) && ok(t) && !t.contains('/') && !name.starts_with("ami-") {
        Ok(())
    } else {
        Err(ImageError::BadTag(tag.into()))
    }
}

#[cfg(test)]
mod tests;
