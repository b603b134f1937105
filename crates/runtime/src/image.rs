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

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

    /// Imports an OCI image layout directory (`oci-layout`, `index.json`, `blobs/`).
    pub fn import_oci_layout(&self, dir: &Path) -> Result<Image, ImageError> {
        let bad = |reason: String| ImageError::BadLayout {
            path: dir.to_path_buf(),
            reason,
        };
        if !dir.join("oci-layout").is_file() {
            return Err(bad("no oci-layout file".into()));
        }
        let read_json = |digest: &str| -> Result<serde_json::Value, ImageError> {
            let p = blob_path(dir, digest).ok_or_else(|| bad(format!("bad digest {digest}")))?;
            let bytes = fs::read(&p).map_err(ioe("read", &p))?;
            let actual = hex::encode(Sha256::digest(&bytes));
            if digest != format!("sha256:{actual}") {
                return Err(ImageError::DigestMismatch {
                    digest: digest.into(),
                    actual,
                });
            }
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("{digest}: {e}")))
        };
        let index_path = dir.join("index.json");
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(&index_path).map_err(ioe("read", &index_path))?)
                .map_err(|e| bad(format!("index.json: {e}")))?;
        let mut desc = index["manifests"]
            .get(0)
            .cloned()
            .ok_or_else(|| bad("index.json lists no manifests".into()))?;
        // One level of nested image index (multi-platform images): take linux/amd64 or the first.
        if desc["mediaType"]
            .as_str()
            .unwrap_or_default()
            .contains("index")
        {
            let nested = read_json(desc["digest"].as_str().unwrap_or_default())?;
            let ms = nested["manifests"].as_array().cloned().unwrap_or_default();
            desc = ms
                .iter()
                .find(|m| {
                    m["platform"]["architecture"] == "amd64" && m["platform"]["os"] == "linux"
                })
                .or(ms.first())
                .cloned()
                .ok_or_else(|| bad("nested index lists no manifests".into()))?;
        }
        let manifest = read_json(
            desc["digest"]
                .as_str()
                .ok_or_else(|| bad("manifest without digest".into()))?,
        )?;
        let config_json = read_json(
            manifest["config"]["digest"]
                .as_str()
                .ok_or_else(|| bad("manifest without config".into()))?,
        )?;
        let config = config_from_oci(&config_json);
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().cloned().unwrap_or_default() {
            let digest = l["digest"]
                .as_str()
                .ok_or_else(|| bad("layer without digest".into()))?;
            let src = blob_path(dir, digest).ok_or_else(|| bad(format!("bad digest {digest}")))?;
            let (stored, size) = self.store_blob(&src, Some(digest))?;
            let media_type = match l["mediaType"].as_str().unwrap_or(MT_TAR) {
                m if m.ends_with("gzip") => MT_GZIP,
                m if m.ends_with("zstd") => MT_ZSTD,
                _ => MT_TAR,
            }
            .to_string();
            let diff_id = self.unpack_blob(&stored, &media_type)?;
            layers.push(LayerRef {
                digest: stored,
                diff_id,
                media_type,
                size,
            });
        }
        if layers.is_empty() {
            return Err(bad("manifest has no layers".into()));
        }
        self.write_image(layers, config)
    }

    /// Imports an oci-archive (a tar of an OCI image layout).
    pub fn import_oci_archive(&self, path: &Path) -> Result<Image, ImageError> {
        let tmp = self.tmp_dir("oci")?;
        let res = (|| {
            let f = fs::File::open(path).map_err(ioe("open", path))?;
            unpack_validated(f, &tmp.0, false)?;
            self.import_oci_layout(&tmp.0)
        })();
        drop(tmp);
        res
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

    /// Writes the image to `out`, which must not exist yet, in `format`. The result appears
    /// only when complete (written beside `out` and renamed), so a failure leaves nothing.
    pub fn export(
        &self,
        id_or_tag: &str,
        out: &Path,
        format: ExportFormat,
    ) -> Result<(), ImageError> {
        let img = self.inspect(id_or_tag)?;
        if fs::symlink_metadata(out).is_ok() {
            return Err(ImageError::Exists(out.to_path_buf()));
        }
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        let partial = out.with_file_name(name);
        let res = match format {
            ExportFormat::OciArchive => {
                let f = fs::File::create(&partial).map_err(ioe("create", &partial))?;
                let mut tb = tar::Builder::new(f);
                let res = self.write_oci(&img, &mut |name, size, src| {
                    let mut h = new_header();
                    h.set_size(size);
                    h.set_mode(0o644);
                    h.set_mtime(0);
                    tb.append_data(&mut h, name, src)
                        .map_err(ioe("write", &partial))
                });
                res.and_then(|()| tb.into_inner().map(drop).map_err(ioe("write", &partial)))
            }
            ExportFormat::OciLayout => {
                fs::create_dir(&partial).map_err(ioe("create", &partial))?;
                self.write_oci(&img, &mut |name, _, src| {
                    let p = partial.join(name);
                    if let Some(d) = p.parent() {
                        fs::create_dir_all(d).map_err(ioe("create", d))?;
                    }
                    let mut f = fs::File::create(&p).map_err(ioe("create", &p))?;
                    io::copy(src, &mut f).map(drop).map_err(ioe("write", &p))
                })
            }
            ExportFormat::Rootfs => self.write_rootfs(&img, &partial),
        };
        let res = res.and_then(|()| fs::rename(&partial, out).map_err(ioe("rename", out)));
        if res.is_err() {
            let _ = fs::remove_file(&partial);
            let _ = fs::remove_dir_all(&partial);
        }
        res
    }

    /// The files of an OCI image layout: `add(name, size, content)` for each.
    fn write_oci(&self, img: &Image, add: &mut AddFile<'_>) -> Result<(), ImageError> {
        let cfg = oci_config_json(img);
        let cfg_bytes = serde_json::to_vec(&cfg).expect("json");
        let cfg_digest = format!("sha256:{}", hex::encode(Sha256::digest(&cfg_bytes)));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_bytes.len()},
            "layers": img.layers.iter().map(|l| serde_json::json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
        });
        let man_bytes = serde_json::to_vec(&manifest).expect("json");
        let man_digest = format!("sha256:{}", hex::encode(Sha256::digest(&man_bytes)));
        let mut annotations = serde_json::Map::new();
        if let Some(t) = img.tags.first() {
            annotations.insert("org.opencontainers.image.ref.name".into(), t.clone().into());
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest, "size": man_bytes.len(), "annotations": annotations}],
        });
        let index_bytes = serde_json::to_vec(&index).expect("json");
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        add("oci-layout", layout.len() as u64, &mut &layout[..])?;
        add(
            "index.json",
            index_bytes.len() as u64,
            &mut &index_bytes[..],
        )?;
        add(
            &format!("blobs/sha256/{}", &man_digest[7..]),
            man_bytes.len() as u64,
            &mut &man_bytes[..],
        )?;
        add(
            &format!("blobs/sha256/{}", &cfg_digest[7..]),
            cfg_bytes.len() as u64,
            &mut &cfg_bytes[..],
        )?;
        for l in &img.layers {
            let p = self.blob(&l.digest);
            let mut f = fs::File::open(&p).map_err(ioe("open", &p))?;
            add(&format!("blobs/sha256/{}", &l.digest[7..]), l.size, &mut f)?;
        }
        Ok(())
    }

    /// The image's merged root filesystem as one tar: the top layer's entries win, overlayfs
    /// whiteouts hide what is below them, and an opaque directory hides the lower contents.
    fn write_rootfs(&self, img: &Image, out: &Path) -> Result<(), ImageError> {
        // Relative path -> the layer tree providing it, chosen from the top down.
        let mut chosen: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
        let mut hidden: Vec<PathBuf> = Vec::new();
        for layer in self.layer_dirs(img).into_iter().rev() {
            let mut hides = Vec::new();
            let mut stack = vec![PathBuf::new()];
            while let Some(rel) = stack.pop() {
                let full = layer.join(&rel);
                for e in fs::read_dir(&full).map_err(ioe("read", &full))? {
                    let e = e.map_err(ioe("read", &full))?;
                    let r = rel.join(e.file_name());
                    if hidden.iter().any(|h| r.starts_with(h)) {
                        continue;
                    }
                    let md = e.metadata().map_err(ioe("stat", &e.path()))?;
                    if is_whiteout(&md) {
                        hides.push(r);
                        continue;
                    }
                    if md.is_dir() {
                        if is_opaque(&e.path()) {
                            hides.push(r.join(""));
                        }
                        stack.push(r.clone());
                    }
                    chosen.entry(r).or_insert_with(|| layer.clone());
                }
            }
            // An opaque directory hides lower entries beneath it, not itself.
            hidden.extend(hides);
        }
        let f = fs::File::create(out).map_err(ioe("create", out))?;
        let mut tb = tar::Builder::new(f);
        tb.follow_symlinks(false);
        for (rel, layer) in &chosen {
            let src = layer.join(rel);
            tb.append_path_with_name(&src, rel)
                .map_err(ioe("write", out))?;
        }
        tb.into_inner().map(drop).map_err(ioe("write", out))
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

fn sniff_media_type(path: &Path) -> Result<String, ImageError> {
    let mut f = fs::File::open(path).map_err(ioe("open", path))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(ioe("read", path))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => MT_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => MT_ZSTD,
        _ => MT_TAR,
    }
    .to_string())
}

/// Whether a plain tar file contains an `oci-layout` entry.
fn is_oci_archive(path: &Path) -> Result<bool, ImageError> {
    if sniff_media_type(path)? != MT_TAR {
        return Ok(false);
    }
    let mut f = fs::File::open(path).map_err(ioe("open", path))?;
    let mut ar = tar::Archive::new(&mut f);
    let entries = match ar.entries() {
        Ok(e) => e,
        Err(_) => return Err(ImageError::UnknownFormat { path: path.into() }),
    };
    for e in entries {
        let e = e.map_err(|_| ImageError::UnknownFormat { path: path.into() })?;
        let p = e.path().map_err(ImageError::BadArchive)?;
        if p == Path::new("oci-layout") || p == Path::new("./oci-layout") {
            return Ok(true);
        }
    }
    f.rewind().map_err(ioe("seek", path))?;
    Ok(false)
}

/// Lexically normalises an absolute in-image path; `None` if it climbs above the root.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Checks one archive entry and returns its path relative to the tree root (`None` for the
/// root itself).
fn check_entry(entry: &tar::Entry<'_, impl Read>) -> Result<Option<PathBuf>, ImageError> {
    let raw = entry.path().map_err(ImageError::BadArchive)?.into_owned();
    let shown = raw.display().to_string();
    let unsafe_entry = |reason| ImageError::UnsafeEntry {
        entry: shown.clone(),
        reason,
    };
    let mut rel = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => rel.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => return Err(unsafe_entry("path contains `..`")),
            Component::Prefix(_) => return Err(unsafe_entry("path has a prefix")),
        }
    }
    let kind = entry.header().entry_type();
    if kind.is_character_special() || kind.is_block_special() {
        return Err(unsafe_entry("device nodes are not allowed in layers"));
    }
    if kind.is_symlink() {
        let target = entry
            .link_name()
            .map_err(ImageError::BadArchive)?
            .ok_or_else(|| unsafe_entry("symlink without target"))?;
        let t = target.to_string_lossy();
        let parent = rel
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let joined = if t.starts_with('/') {
            t.to_string()
        } else {
            format!("/{parent}/{t}")
        };
        if normalize(&joined).is_none() {
            return Err(unsafe_entry("symlink points outside the image"));
        }
    }
    if kind.is_hard_link() {
        let target = entry
            .link_name()
            .map_err(ImageError::BadArchive)?
            .ok_or_else(|| unsafe_entry("hard link without target"))?;
        if target
            .components()
            .any(|c| matches!(c, Component::ParentDir))
        {
            return Err(unsafe_entry("hard link points outside the image"));
        }
    }
    Ok(if rel.as_os_str().is_empty() {
        None
    } else {
        Some(rel)
    })
}

/// Unpacks a tar stream into `dest` after checking every entry. With `whiteouts`, OCI whiteout
/// files become overlayfs whiteouts (0/0 character devices and opaque-directory xattrs).
fn unpack_validated(reader: impl Read, dest: &Path, whiteouts: bool) -> Result<(), ImageError> {
    let mut ar = tar::Archive::new(reader);
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(root);
    ar.set_overwrite(true);
    for entry in ar.entries().map_err(ImageError::BadArchive)? {
        let mut entry = entry.map_err(ImageError::BadArchive)?;
        let Some(rel) = check_entry(&entry)? else {
            continue;
        };
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if whiteouts {
            if let Some(hidden) = name.strip_prefix(".wh.") {
                let parent = dest.join(rel.parent().unwrap_or(Path::new("")));
                fs::create_dir_all(&parent).map_err(ioe("create", &parent))?;
                if hidden == ".wh..opq" {
                    set_opaque(&parent)?;
                } else {
                    make_whiteout(&parent.join(hidden))?;
                }
                continue;
            }
        }
        entry.unpack_in(dest).map_err(|e| ImageError::Io {
            op: "unpack",
            path: dest.join(&rel),
            err: e,
        })?;
    }
    Ok(())
}

/// An overlayfs whiteout: a 0/0 character device.
fn is_whiteout(md: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Whether a directory carries overlayfs's opaque mark.
fn is_opaque(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut v = [0u8; 1];
    // SAFETY: `c` is a valid NUL-terminated path and `v` a writable buffer of the given size.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            v.as_mut_ptr().cast(),
            v.len(),
        )
    };
    n == 1 && v[0] == b'y'
}

fn make_whiteout(path: &Path) -> Result<(), ImageError> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: `c` is a valid NUL-terminated path; a 0/0 character device is overlayfs's whiteout.
    if unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) } != 0 {
        return Err(ImageError::Io {
            op: "create whiteout",
            path: path.into(),
            err: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn set_opaque(dir: &Path) -> Result<(), ImageError> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).expect("no NUL");
    // SAFETY: valid NUL-terminated path and attribute name; the value pointer/length describe "y".
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        )
    };
    if rc != 0 {
        return Err(ImageError::Io {
            op: "mark opaque",
            path: dir.into(),
            err: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn config_from_oci(v: &serde_json::Value) -> ImageConfig {
    let c = &v["config"];
    let labels: BTreeMap<String, String> = c["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    ImageConfig {
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        env: strings(&c["Env"]),
        user: c["User"].as_str().unwrap_or_default().into(),
        workdir: c["WorkingDir"].as_str().unwrap_or_default().into(),
        exposed_ports: c["ExposedPorts"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        min_memory_mib: labels
            .get("spindle.min-memory-mib")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        labels,
    }
}

fn oci_config_json(img: &Image) -> serde_json::Value {
    let c = &img.config;
    let mut labels = c.labels.clone();
    if c.min_memory_mib > 0 {
        labels.insert(
            "spindle.min-memory-mib".into(),
            c.min_memory_mib.to_string(),
        );
    }
    serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": c.entrypoint, "Cmd": c.cmd, "Env": c.env, "User": c.user,
            "WorkingDir": c.workdir,
            "ExposedPorts": c.exposed_ports.iter().map(|p| (p.clone(), serde_json::json!({}))).collect::<serde_json::Map<_, _>>(),
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": img.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
    })
}

/// A GNU tar header owned by root with mtime 0, ready for `set_size`/`set_mode`.
pub(crate) fn new_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

/// Builds a minimal busybox root filesystem tarball from the host's static busybox
/// (`apt-get install busybox-static`): `/bin/busybox`, applet symlinks, `/etc`, `/www`.
/// Used by tests and the benchmark; handy for developers too.
pub fn build_busybox_rootfs(out: &Path, busybox: &Path) -> io::Result<()> {
    let f = fs::File::create(out)?;
    let mut tb = tar::Builder::new(f);
    let dir = |tb: &mut tar::Builder<fs::File>, name: &str, mode: u32| {
        let mut h = crate::image::new_header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        tb.append_data(&mut h, name, io::empty())
    };
    for d in [
        "bin", "etc", "tmp", "www", "var", "var/lib", "proc", "sys", "dev", "root",
    ] {
        dir(&mut tb, d, if d == "tmp" { 0o1777 } else { 0o755 })?;
    }
    let mut bb = fs::File::open(busybox)?;
    let mut h = crate::image::new_header();
    h.set_size(bb.metadata()?.len());
    h.set_mode(0o755);
    h.set_mtime(0);
    tb.append_data(&mut h, "bin/busybox", &mut bb)?;
    for applet in [
        "sh", "ls", "pidof", "cat", "echo", "sort", "tail", "printf", "setpriv", "httpd", "sleep",
        "wget", "head", "tr", "ip", "hostname", "ps", "id", "env", "kill", "mkdir", "nc", "seq",
        "true", "false", "grep", "mount",
    ] {
        let mut h = crate::image::new_header();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(0);
        tb.append_link(&mut h, format!("bin/{applet}"), "/bin/busybox")?;
    }
    let files: [(&str, &str); 3] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("www/index.html", "hello from spindle\n"),
    ];
    for (name, content) in files {
        let mut h = crate::image::new_header();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        tb.append_data(&mut h, name, content.as_bytes())?;
    }
    tb.into_inner()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut tb = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = crate::image::new_header();
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_mtime(0);
            if kind.is_symlink() || kind.is_hard_link() {
                h.set_size(0);
                tb.append_link(&mut h, name, data).unwrap();
            } else {
                h.set_size(data.len() as u64);
                // Write the name raw so that `../` survives the builder's own checks.
                let mut name_bytes = [0u8; 100];
                name_bytes[..name.len()].copy_from_slice(name.as_bytes());
                h.as_old_mut().name = name_bytes;
                h.set_cksum();
                tb.append(&h, data.as_bytes()).unwrap();
            }
        }
        tb.into_inner().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    fn cfg(cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn rejects_unsafe_layers() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path().join("store")).unwrap();
        let cases: [(&str, Vec<u8>, &str); 4] = [
            (
                "dotdot",
                tar_with(&[("a/../../evil", tar::EntryType::Regular, "x")]),
                "`..`",
            ),
            (
                "escape",
                tar_with(&[("etc/x", tar::EntryType::Symlink, "../../../../etc/passwd")]),
                "outside",
            ),
            (
                "absescape",
                tar_with(&[("etc/x", tar::EntryType::Symlink, "/../../etc/passwd")]),
                "outside",
            ),
            (
                "dev",
                tar_with(&[("dev/sda", tar::EntryType::Block, "")]),
                "device",
            ),
        ];
        for (name, bytes, want) in cases {
            let p = write(t.path(), name, &bytes);
            let err = store.import(&p, cfg(&["/bin/sh"]), None).unwrap_err();
            assert!(err.to_string().contains(want), "{name}: {err}");
        }
        assert!(store.list().unwrap().is_empty(), "nothing half-imported");
        assert_eq!(
            fs::read_dir(store.root().join("layers")).unwrap().count(),
            0
        );
        assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn import_dedupes_layers_across_compressions_and_resolves_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path().join("store")).unwrap();
        let plain = tar_with(&[
            ("bin/busybox", tar::EntryType::Regular, "#!fake"),
            ("bin/sh", tar::EntryType::Symlink, "/bin/busybox"),
            ("usr/bin", tar::EntryType::Symlink, "../bin"),
        ]);
        let p1 = write(t.path(), "a.tar", &plain);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &plain).unwrap();
        let p2 = write(t.path(), "a.tar.gz", &gz.finish().unwrap());
        let p3 = write(
            t.path(),
            "a.tar.zst",
            &zstd::encode_all(&plain[..], 1).unwrap(),
        );
        let a = store.import(&p1, cfg(&["sh"]), Some("base:1")).unwrap();
        let b = store.import(&p2, cfg(&["sh"]), None).unwrap();
        let c = store.import(&p3, cfg(&["sh"]), Some("base")).unwrap();
        assert!(a.id.starts_with("ami-") && a.id.len() == 21);
        assert_eq!(a.id, b.id, "same content and config give the same id");
        assert_eq!(a.id, c.id);
        assert_eq!(
            fs::read_dir(store.root().join("layers")).unwrap().count(),
            1,
            "unpacked once"
        );
        assert_eq!(
            fs::read_dir(store.root().join("blobs/sha256"))
                .unwrap()
                .count(),
            3
        );
        let img = store.inspect("base:1").unwrap();
        assert_eq!(img.tags, ["base:1", "base:latest"]);
        assert_eq!(
            store.resolve_in_image(&img, "/bin/sh").as_deref(),
            Some("/bin/busybox")
        );
        assert_eq!(
            store.resolve_in_image(&img, "/usr/bin/sh").as_deref(),
            Some("/bin/busybox")
        );
        assert_eq!(store.resolve_in_image(&img, "/bin/nope"), None);
        assert!(matches!(
            store.inspect("nope:1"),
            Err(ImageError::NotFound(_))
        ));
        assert!(matches!(
            store.tag(&a.id, "bad tag"),
            Err(ImageError::BadTag(_))
        ));
        assert!(matches!(
            store.remove(&a.id, &["i-1".into()]),
            Err(ImageError::InUse { .. })
        ));
    }

    #[test]
    fn export_then_import_as_oci_archive_and_layout_roundtrips() {
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path().join("store")).unwrap();
        let p = write(
            t.path(),
            "r.tar",
            &tar_with(&[("bin/app", tar::EntryType::Regular, "x")]),
        );
        let mut config = cfg(&["/bin/app", "-v"]);
        config.env = vec!["A=1".into()];
        config.exposed_ports = vec!["80/tcp".into()];
        config.min_memory_mib = 32;
        let img = store.import(&p, config.clone(), Some("app:v1")).unwrap();
        let out = t.path().join("app.oci.tar");
        store
            .export("app:v1", &out, ExportFormat::OciArchive)
            .unwrap();

        let other = ImageStore::open(t.path().join("other")).unwrap();
        let back = other
            .import(&out, ImageConfig::default(), Some("app:v1"))
            .unwrap();
        assert_eq!(back.config.cmd, config.cmd);
        assert_eq!(back.config.env, config.env);
        assert_eq!(back.config.exposed_ports, config.exposed_ports);
        assert_eq!(back.config.min_memory_mib, 32);
        assert_eq!(back.layers[0].diff_id, img.layers[0].diff_id);

        // The same archive unpacked is an OCI layout directory.
        let dir = t.path().join("layout");
        fs::create_dir(&dir).unwrap();
        tar::Archive::new(fs::File::open(&out).unwrap())
            .unpack(&dir)
            .unwrap();
        let third = ImageStore::open(t.path().join("third")).unwrap();
        assert_eq!(
            third
                .import(&dir, ImageConfig::default(), None)
                .unwrap()
                .layers,
            back.layers
        );
        // A tampered blob is caught.
        let blob = fs::read_dir(dir.join("blobs/sha256"))
            .unwrap()
            .flatten()
            .find(|e| e.metadata().unwrap().len() > 1000)
            .unwrap()
            .path();
        fs::write(&blob, b"tampered").unwrap();
        let fourth = ImageStore::open(t.path().join("fourth")).unwrap();
        assert!(matches!(
            fourth.import(&dir, ImageConfig::default(), None),
            Err(ImageError::DigestMismatch { .. })
        ));

        store.remove("app:v1", &[]).unwrap();
        assert!(store.list().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(store.root().join("layers")).unwrap().count(),
            0
        );
        assert_eq!(
            fs::read_dir(store.root().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }

    /// An OCI image layout directory with these layer tars (lowest first).
    fn oci_layout(dir: &Path, layers: &[Vec<u8>]) {
        let sha = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        let put = |b: &[u8]| {
            let d = sha(b);
            fs::write(dir.join("blobs/sha256").join(&d[7..]), b).unwrap();
            serde_json::json!({"digest": d, "size": b.len(), "mediaType": MT_TAR})
        };
        let config =
            serde_json::to_vec(&serde_json::json!({"config": {"Cmd": ["/bin/app"]}})).unwrap();
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": put(&config),
            "layers": layers.iter().map(|l| put(l)).collect::<Vec<_>>(),
        }))
        .unwrap();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [put(&manifest)]});
        fs::write(dir.join("index.json"), index.to_string()).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    }

    fn tar_names(path: &Path) -> Vec<String> {
        let mut a = tar::Archive::new(fs::File::open(path).unwrap());
        let mut names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rootfs_export_merges_layers_whiteouts_and_opaque_dirs() {
        // Whiteouts are 0/0 character devices and opaque marks are trusted xattrs: root only.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED rootfs_export_merges_layers_whiteouts_and_opaque_dirs: not root");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let store = ImageStore::open(t.path().join("store")).unwrap();
        let lower = tar_with(&[
            ("bin/app", tar::EntryType::Regular, "old"),
            ("etc/gone", tar::EntryType::Regular, "x"),
            ("var/cache/a", tar::EntryType::Regular, "x"),
            ("etc/keep", tar::EntryType::Regular, "k"),
        ]);
        let upper = tar_with(&[
            ("bin/app", tar::EntryType::Regular, "new"),
            ("etc/.wh.gone", tar::EntryType::Regular, ""),
            ("var/cache/.wh..wh..opq", tar::EntryType::Regular, ""),
            ("var/cache/b", tar::EntryType::Regular, "y"),
        ]);
        let layout = t.path().join("layout");
        oci_layout(&layout, &[lower, upper]);
        let img = store
            .import(&layout, ImageConfig::default(), Some("two:1"))
            .unwrap();
        assert_eq!(img.layers.len(), 2);

        let out = t.path().join("rootfs.tar");
        store.export("two:1", &out, ExportFormat::Rootfs).unwrap();
        assert_eq!(
            tar_names(&out),
            [
                "bin",
                "bin/app",
                "etc",
                "etc/keep",
                "var",
                "var/cache",
                "var/cache/b"
            ]
        );
        let mut a = tar::Archive::new(fs::File::open(&out).unwrap());
        let app = a.entries().unwrap().map(|e| e.unwrap()).find_map(|mut e| {
            (e.path().unwrap().to_str() == Some("bin/app")).then(|| {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                s
            })
        });
        assert_eq!(app.as_deref(), Some("new"));
        // The flattened tar imports again as a one-layer image with the same tree.
        let again = store.import(&out, cfg(&["/bin/app"]), None).unwrap();
        assert_eq!(again.layers.len(), 1);

        // As an OCI layout directory, the export imports back to the same layers.
        let dir = t.path().join("exported");
        store
            .export("two:1", &dir, ExportFormat::OciLayout)
            .unwrap();
        let other = ImageStore::open(t.path().join("other")).unwrap();
        assert_eq!(
            other
                .import(&dir, ImageConfig::default(), None)
                .unwrap()
                .layers,
            img.layers
        );
        // An existing target is refused and left as it was; nothing partial remains.
        let e = store
            .export("two:1", &out, ExportFormat::OciArchive)
            .unwrap_err();
        assert!(matches!(e, ImageError::Exists(_)), "{e}");
        assert_eq!(tar_names(&out).len(), 7);
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.to_string_lossy().ends_with(".partial")),
            "{names:?}"
        );
        assert!(matches!(
            "zip".parse::<ExportFormat>(),
            Err(ImageError::BadFormat(_))
        ));
    }
}
