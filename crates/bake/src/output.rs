//! Post-processors: an oci-archive (and the OCI image layout inside it), a Packer-style
//! `manifest.json`, and sha256 checksums of the files a build produced.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use spindle_runtime::ImageStore;

use crate::build::{BakeError, Baked};
use crate::recipe::PostProcessor;

/// A file a post-processor wrote.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Artifact {
    pub path: PathBuf,
    pub size: u64,
    /// Hex sha256 of the file.
    pub sha256: String,
}

fn ioe<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BakeError + 'a {
    move |err| BakeError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// sha256 and size of a file.
pub fn file_digest(path: &Path) -> io::Result<(String, u64)> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

fn artifact(path: &Path) -> Result<Artifact, BakeError> {
    let (sha256, size) = file_digest(path).map_err(ioe("read", path))?;
    Ok(Artifact {
        path: path.to_path_buf(),
        size,
        sha256,
    })
}

fn create_parent(path: &Path) -> Result<(), BakeError> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(ioe("create", p))?;
    }
    Ok(())
}

/// Writes `image` as an oci-archive at `out` (atomically: a failed write leaves no file).
pub fn write_oci_archive(store: &ImageStore, image: &str, out: &Path) -> Result<(), BakeError> {
    create_parent(out)?;
    let tmp = out.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    if let Err(e) = store.export(image, &tmp, spindle_runtime::ExportFormat::OciArchive) {
        let _ = fs::remove_file(&tmp);
        return Err(e.into());
    }
    fs::rename(&tmp, out).map_err(ioe("rename", out))
}

/// Writes `image` as an OCI image layout directory at `dir` (replacing what was there). The
/// image store writes the layout itself (into a staging directory), so nothing is archived and
/// unpacked again here.
pub fn write_oci_layout(store: &ImageStore, image: &str, dir: &Path) -> Result<(), BakeError> {
    create_parent(dir)?;
    let staging = dir.with_extension("oci-tmp");
    let _ = fs::remove_dir_all(&staging);
    let res = match store.export(image, &staging, spindle_runtime::ExportFormat::OciLayout) {
        Ok(()) => {
            let _ = fs::remove_dir_all(dir);
            fs::rename(&staging, dir).map_err(ioe("rename", dir))
        }
        Err(e) => Err(e.into()),
    };
    let _ = fs::remove_dir_all(&staging);
    res
}

/// One build entry of Packer's `manifest.json`, with Spindle's details in `custom_data`.
fn manifest_entry(baked: &Baked, files: &[Artifact], run_uuid: &str) -> serde_json::Value {
    let build_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!({
        "name": baked.source_ref.trim_start_matches("spindle."),
        "builder_type": "spindle",
        "build_time": build_time,
        "files": files.iter().map(|a| serde_json::json!({
            "name": a.path.display().to_string(), "size": a.size, "sha256": a.sha256,
        })).collect::<Vec<_>>(),
        "artifact_id": baked.image.id,
        "packer_run_uuid": run_uuid,
        "custom_data": {
            "tags": baked.image.tags,
            "layers": baked.steps.iter().map(|s| serde_json::json!({
                "step": s.label, "diff_id": s.layer.diff_id, "size": s.layer.size, "cached": s.cached,
            })).collect::<Vec<_>>(),
            "seconds": baked.seconds,
        },
    })
}

fn run_uuid() -> String {
    let mut b = [0u8; 16];
    if fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        b = Sha256::digest(format!("{:?}", SystemTime::now()).as_bytes())[..16]
            .try_into()
            .expect("16 bytes");
    }
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Runs a build's post-processors in order; returns the files written.
/// `cache` is the bake directory (the qcow2 post-processor keeps the kernel packages there).
pub fn run_post_processors(
    store: &ImageStore,
    cache: &Path,
    baked: &Baked,
    posts: &[PostProcessor],
) -> Result<Vec<Artifact>, BakeError> {
    let mut files: Vec<Artifact> = Vec::new();
    let uuid = run_uuid();
    for p in posts {
        match p {
            PostProcessor::OciArchive { output } => {
                write_oci_archive(store, &baked.image.id, output)?;
                files.push(artifact(output)?);
            }
            PostProcessor::OciLayout { output } => {
                write_oci_layout(store, &baked.image.id, output)?;
            }
            PostProcessor::Qcow2(spec) => {
                let out = crate::qcow2::write_qcow2(store, cache, &baked.image.id, spec).map_err(
                    |message| BakeError::Step {
                        step: "post-processor \"qcow2\"".into(),
                        message,
                    },
                )?;
                for f in [&out.disk, &out.kernel, &out.initrd] {
                    files.push(artifact(f)?);
                }
            }
            PostProcessor::Checksum { output } => {
                create_parent(output)?;
                let mut text = String::new();
                for a in &files {
                    let name = a
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    text.push_str(&format!("{}  {name}\n", a.sha256));
                }
                for s in &baked.steps {
                    text.push_str(&format!(
                        "{}  layer:{}\n",
                        s.layer.diff_id.trim_start_matches("sha256:"),
                        s.label
                    ));
                }
                fs::write(output, text).map_err(ioe("write", output))?;
                files.push(artifact(output)?);
            }
            PostProcessor::Manifest { output } => {
                create_parent(output)?;
                // Like Packer, each run appends its builds to an existing manifest.
                let mut doc: serde_json::Value = fs::read(output)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_else(|| serde_json::json!({"builds": []}));
                if !doc["builds"].is_array() {
                    doc["builds"] = serde_json::json!([]);
                }
                let entry = manifest_entry(baked, &files, &uuid);
                doc["builds"].as_array_mut().expect("array").push(entry);
                doc["last_run_uuid"] = uuid.clone().into();
                let tmp = output.with_extension("tmp");
                let mut f = fs::File::create(&tmp).map_err(ioe("create", &tmp))?;
                f.write_all(&serde_json::to_vec_pretty(&doc).expect("json"))
                    .map_err(ioe("write", &tmp))?;
                fs::rename(&tmp, output).map_err(ioe("rename", output))?;
            }
        }
    }
    Ok(files)
}
