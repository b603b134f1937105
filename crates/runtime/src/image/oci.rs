//! OCI image layouts and archives in and out of the store, and plain rootfs exports.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{
    blob_path, ioe, AddFile, ExportFormat, Image, ImageConfig, ImageError, ImageStore, LayerRef,
    MT_GZIP, MT_TAR, MT_ZSTD,
};

use super::layer::{is_opaque, is_whiteout, new_header, unpack_validated};

impl ImageStore {
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
}

pub(super) fn sniff_media_type(path: &Path) -> Result<String, ImageError> {
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
pub(super) fn is_oci_archive(path: &Path) -> Result<bool, ImageError> {
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
