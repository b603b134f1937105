//! `spindle image …`, `spindle instance …` and `spindle doctor`.

use crate::cli::{ImageCmd, InstanceCmd};
use crate::context::{api_err, hinted, Context};
use crate::output;
use anyhow::{Context as _, Result};
use spindle_model::api::{ExecRequest, ExportImage, ImportImage, InstanceInfo};

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
        ImageCmd::Inspect { image } => {
            let d = c.describe_image(&account, &image).map_err(api_err)?;
            if cx.json() {
                output::json(&d);
            } else {
                let list = |v: &[String]| {
                    if v.is_empty() {
                        "-".to_string()
                    } else {
                        v.join(" ")
                    }
                };
                println!("id:           {}", d.info.id);
                println!("tags:         {}", list(&d.info.tags));
                println!("entrypoint:   {}", list(&d.info.entrypoint));
                println!("cmd:          {}", list(&d.info.cmd));
                println!("env:          {}", list(&d.env));
                println!(
                    "user:         {}",
                    if d.user.is_empty() { "root" } else { &d.user }
                );
                println!(
                    "workdir:      {}",
                    if d.workdir.is_empty() {
                        "/"
                    } else {
                        &d.workdir
                    }
                );
                println!("ports:        {}", list(&d.exposed_ports));
                println!("min memory:   {} MiB", d.min_memory_mib);
                println!(
                    "size:         {} bytes in {} layer(s)",
                    d.size, d.info.layers
                );
                d.layer_digests.iter().for_each(|l| println!("  {l}"));
                println!(
                    "used by:      {}",
                    if d.used_by.is_empty() {
                        "nothing".into()
                    } else {
                        d.used_by.join(", ")
                    }
                );
            }
        }
        ImageCmd::Tag { image, tag } => {
            let i = c.tag_image(&account, &image, &tag).map_err(api_err)?;
            if cx.json() {
                output::json(&i);
            } else {
                println!("Tagged {} as {tag}", i.id);
            }
        }
        ImageCmd::Rm { image } => {
            let i = c.remove_image(&account, &image).map_err(api_err)?;
            if cx.json() {
                output::json(&i);
            } else {
                println!("Removed {}", i.id);
            }
        }
        ImageCmd::Export { image, out, format } => {
            // The daemon writes the file: give it an absolute path in an existing directory.
            let parent = match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => std::path::PathBuf::from("."),
            };
            let dir = std::fs::canonicalize(&parent)
                .with_context(|| format!("cannot find directory `{}`", parent.display()))?;
            let name = out
                .file_name()
                .with_context(|| format!("`{}` names no file", out.display()))?;
            let path = dir.join(name);
            let req = ExportImage {
                path: path.display().to_string(),
                format: format.clone(),
            };
            let i = c.export_image(&account, &image, &req).map_err(api_err)?;
            if cx.json() {
                output::json(&i);
            } else {
                println!("Exported {} to {} ({format})", i.id, path.display());
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

const INSTANCE_HEADER: &[&str] = &[
    "INSTANCE",
    "STATE",
    "TYPE",
    "PRIVATE IP",
    "IMAGE",
    "STACK/LOGICAL ID",
];

fn instance_rows(list: &[InstanceInfo]) -> Vec<Vec<String>> {
    list.iter()
        .map(|i| {
            let stack = i
                .tags
                .get("aws:cloudformation:stack-name")
                .cloned()
                .unwrap_or_default();
            let logical = i
                .tags
                .get("aws:cloudformation:logical-id")
                .cloned()
                .unwrap_or_default();
            vec![
                i.id.clone(),
                i.state.clone(),
                i.instance_type.clone(),
                i.private_ip.clone(),
                i.image_id.clone(),
                format!("{stack}/{logical}"),
            ]
        })
        .collect()
}

pub fn instance(cx: &Context, cmd: InstanceCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let show = |i: &InstanceInfo| {
        if cx.json() {
            output::json(i);
        } else {
            output::table(INSTANCE_HEADER, &instance_rows(std::slice::from_ref(i)));
            if let Some(e) = &i.last_exit {
                println!("last exit: {e}");
            }
            if let Some(r) = &i.state_reason {
                println!("state reason: {r}");
            }
            if !i.seccomp.is_empty() {
                println!("seccomp profile: {}", i.seccomp);
            }
        }
    };
    match cmd {
        InstanceCmd::List => {
            let list = c.list_instances(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
            } else {
                output::table(INSTANCE_HEADER, &instance_rows(&list));
            }
        }
        InstanceCmd::Describe { id } => show(&c.describe_instance(&account, &id).map_err(api_err)?),
        InstanceCmd::Logs { id } => {
            let out = c.instance_console(&account, &id).map_err(api_err)?;
            if cx.json() {
                output::json(&out);
            } else {
                print!("{}", out.output);
            }
        }
        InstanceCmd::Exec {
            id,
            command,
            timeout,
        } => {
            let r = c
                .exec_instance(
                    &account,
                    &id,
                    &ExecRequest {
                        argv: command,
                        timeout_seconds: Some(timeout),
                    },
                )
                .map_err(api_err)?;
            show_exec(cx, &r)?;
        }
        InstanceCmd::Stop { id } => {
            show(&c.instance_action(&account, &id, "stop").map_err(api_err)?)
        }
        InstanceCmd::Start { id } => {
            show(&c.instance_action(&account, &id, "start").map_err(api_err)?)
        }
        InstanceCmd::Terminate { id } => show(
            &c.instance_action(&account, &id, "terminate")
                .map_err(api_err)?,
        ),
    }
    Ok(())
}

/// Prints a command's output (or the JSON result) and fails unless it exited with 0.
pub(super) fn show_exec(cx: &Context, r: &spindle_model::api::ExecResult) -> Result<()> {
    if cx.json() {
        output::json(r);
    } else {
        print!("{}", r.stdout);
        eprint!("{}", r.stderr);
    }
    if r.exit_code != Some(0) {
        return Err(anyhow::anyhow!(
            "the command exited with {}",
            r.exit_code
                .map_or("a signal".to_string(), |c| format!("code {c}"))
        ));
    }
    Ok(())
}
