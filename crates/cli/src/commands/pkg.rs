//! `spindle pkg build|inspect`: local .deb work through `spindle-deb`; no daemon involved.

use crate::cli::{OutputFormat, PkgCmd};
use crate::output;
use anyhow::{Context as _, Result};
use serde_json::json;

pub fn run(cmd: PkgCmd, format: OutputFormat) -> Result<()> {
    match cmd {
        PkgCmd::Build {
            spec,
            output_dir,
            source_date_epoch,
        } => {
            let epoch = match source_date_epoch {
                Some(e) => e,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_secs(),
            };
            let built = spindle_deb::spec::build_from_file(&spec, epoch)?;
            std::fs::create_dir_all(&output_dir)
                .with_context(|| format!("cannot create `{}`", output_dir.display()))?;
            let dest = output_dir.join(&built.file_name);
            // Write beside the destination, then rename: a reader never sees half a package.
            let tmp = output_dir.join(format!(".{}.tmp", built.file_name));
            std::fs::write(&tmp, &built.bytes)
                .with_context(|| format!("cannot write `{}`", tmp.display()))?;
            std::fs::rename(&tmp, &dest)
                .with_context(|| format!("cannot write `{}`", dest.display()))?;
            if format == OutputFormat::Json {
                output::json(&json!({
                    "file": dest,
                    "size": built.digests.size,
                    "sha256": built.digests.sha256,
                    "control": built.control.to_string(),
                }));
            } else {
                println!(
                    "Built {} ({} bytes, sha256 {})",
                    dest.display(),
                    built.digests.size,
                    built.digests.sha256
                );
            }
        }
        PkgCmd::Inspect { file, contents } => {
            let info = spindle_deb::read_deb_file(&file)?;
            if format == OutputFormat::Json {
                let entries: Vec<_> = info.data_entries.iter().map(|e| json!({"path": e.path, "mode": format!("{:o}", e.mode), "size": e.size})).collect();
                output::json(&json!({
                    "control": info.control.to_string(),
                    "size": info.digests.size,
                    "sha256": info.digests.sha256,
                    "files": if contents { Some(entries) } else { None },
                }));
            } else {
                print!("{}", info.control);
                println!(
                    "\nsize:   {}\nsha256: {}",
                    info.digests.size, info.digests.sha256
                );
                if contents {
                    for e in &info.data_entries {
                        println!("{:o} {:>10} {}", e.mode, e.size, e.path);
                    }
                }
            }
        }
    }
    Ok(())
}
