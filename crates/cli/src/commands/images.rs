//! `spindle image …` and `spindle doctor`.

use crate::cli::ImageCmd;
use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::{Context as _, Result};
use spindle_model::api::ImportImage;

pub fn image(cx: &Context, cmd: ImageCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        ImageCmd::Import { file, tag, cmd } => {
            let path = std::fs::canonicalize(&file)
                .with_context(|| format!("cannot find `{}`", file.display()))?;
            let req = ImportImage {
                path: path.display().to_string(),
                tag,
                entrypoint: Vec::new(),
                cmd,
            };
            let i = c.import_image(&account, &req).map_err(api_err)?;
            if cx.json() {
                output::json(&i);
            } else {
                println!(
                    "Imported {} ({} layer(s)){}",
                    i.id,
                    i.layers,
                    if i.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" as {}", i.tags.join(", "))
                    }
                );
            }
        }
        ImageCmd::List => {
            let images = c.list_images(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&images);
            } else {
                let rows: Vec<Vec<String>> = images
                    .iter()
                    .map(|i| {
                        vec![
                            i.id.clone(),
                            i.tags.join(","),
                            i.layers.to_string(),
                            i.entrypoint
                                .iter()
                                .chain(&i.cmd)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    })
                    .collect();
                output::table(&["IMAGE ID", "TAGS", "LAYERS", "COMMAND"], &rows);
            }
        }
    }
    Ok(())
}

pub fn doctor(cx: &Context, fix: bool) -> Result<()> {
    let r = cx.client()?.doctor(fix).map_err(api_err)?;
    if cx.json() {
        output::json(&r);
    } else if r.leaks.is_empty() {
        println!("Nothing leaked: every `{}-…` namespace, mount, veth and cgroup belongs to a VPC or instance.", r.prefix);
    } else {
        println!(
            "{} {} object(s) no VPC or instance accounts for:",
            if fix { "Removed" } else { "Found" },
            r.leaks.len()
        );
        r.leaks.iter().for_each(|l| println!("  {l}"));
    }
    if !r.unfixed.is_empty() {
        r.unfixed
            .iter()
            .for_each(|u| eprintln!("  not removed: {u}"));
        return Err(hinted(
            format!("{} leak(s) could not be removed", r.unfixed.len()),
            "see the reasons above",
        ));
    }
    if !fix && !r.leaks.is_empty() {
        return Err(hinted(
            format!("{} leak(s) found", r.leaks.len()),
            "run `spindle doctor --fix` to remove them",
        ));
    }
    Ok(())
}
