//! `spindle bake build|validate|inspect|fmt`.
//!
//! Baking runs in this process, as root (steps run in namespaces through `spindle-runtime`),
//! against a bake directory of cached layers (`DATA_DIR/bake`). The finished image goes to the
//! daemon the way every image does — `image import` through the API, from an oci-archive on
//! this machine — and its id is published to the parameter `/spindle/images/NAME/latest`.
//! See docs/ARCHITECTURE.md ("Baking") for why it is not a daemon task.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _, Result};
use spindle_bake::{BakeOptions, Baker, OnError, Selection, VarInputs};
use spindle_model::api::{ImportImage, PutParam};
use spindle_model::ids::ParamName;
use spindle_runtime::RealKernel;

use crate::cli::{BakeCmd, Global, OutputFormat};
use crate::context::{api_err, Context};
use crate::output;

/// Packer-style arguments, with one or two dashes, `-flag value` or `-flag=value`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct BakeArgs {
    vars: VarInputs,
    sel: Selection,
    on_error: OnError,
    cache_dir: Option<PathBuf>,
    pub(super) no_import: bool,
    check: bool,
    pub(super) files: Vec<PathBuf>,
}

pub(super) fn parse_args(args: &[String]) -> Result<BakeArgs> {
    let mut out = BakeArgs::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--").or_else(|| a.strip_prefix('-')) else {
            out.files.push(PathBuf::from(a));
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (flag, None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| anyhow!("-{name} needs a value")),
            }
        };
        match name {
            "var" => out.vars.push_var(&value()?).map_err(|e| anyhow!(e))?,
            "var-file" => {
                let f = value()?;
                let text = std::fs::read_to_string(&f)
                    .with_context(|| format!("cannot read -var-file `{f}`"))?;
                out.vars.files.push((f, text));
            }
            "only" => out.sel.only.extend(value()?.split(',').map(str::to_string)),
            "except" => out
                .sel
                .except
                .extend(value()?.split(',').map(str::to_string)),
            "on-error" => out.on_error = value()?.parse().map_err(|e: String| anyhow!(e))?,
            "cache-dir" => out.cache_dir = Some(PathBuf::from(value()?)),
            "no-import" => out.no_import = true,
            "check" => out.check = true,
            other => bail!(
                "unknown flag -{other}; expected -var, -var-file, -only, -except, -on-error, -cache-dir, -no-import (fmt: -check)"
            ),
        }
    }
    if out.files.is_empty() {
        bail!("name a recipe file (*.pkr.hcl)");
    }
    Ok(out)
}

fn cache_dir(a: &BakeArgs) -> PathBuf {
    a.cache_dir.clone().unwrap_or_else(|| {
        std::env::var_os("SPINDLE_DATA_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(super::server::default_data_dir)
            .join("bake")
    })
}

pub(crate) fn read_recipe(path: &Path, vars: &VarInputs) -> Result<spindle_bake::Recipe> {
    let src = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read recipe `{}`", path.display()))?;
    let dir = std::fs::canonicalize(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    spindle_bake::parse(&path.display().to_string(), &dir, &src, vars).map_err(|d| anyhow!(d))
}

fn single(a: &BakeArgs) -> Result<&Path> {
    match a.files.as_slice() {
        [f] => Ok(f),
        _ => bail!("give exactly one recipe file"),
    }
}

pub fn run(cmd: BakeCmd, g: &Global) -> Result<()> {
    match cmd {
        BakeCmd::Fmt { args } => fmt(&parse_args(&args)?),
        BakeCmd::Validate { args } => {
            let a = parse_args(&args)?;
            let recipe = read_recipe(single(&a)?, &a.vars)?;
            let baker = Baker::open(cache_dir(&a), RealKernel)?;
            spindle_bake::plan(&recipe, &a.sel, &baker.inputs()).map_err(|d| anyhow!(d))?;
            println!("The recipe is valid.");
            Ok(())
        }
        BakeCmd::Inspect { args } => inspect(&parse_args(&args)?, g.output),
        BakeCmd::Build { args } => {
            let results = build(&parse_args(&args)?, g, false)?;
            if g.output == OutputFormat::Json {
                output::json(&results);
            }
            Ok(())
        }
    }
}

fn fmt(a: &BakeArgs) -> Result<()> {
    let mut unformatted = Vec::new();
    for f in &a.files {
        let src =
            std::fs::read_to_string(f).with_context(|| format!("cannot read `{}`", f.display()))?;
        let out =
            spindle_bake::fmt::format(&f.display().to_string(), &src).map_err(|d| anyhow!(d))?;
        if out != src {
            if a.check {
                unformatted.push(f.display().to_string());
            } else {
                std::fs::write(f, out)
                    .with_context(|| format!("cannot write `{}`", f.display()))?;
                println!("{}", f.display());
            }
        }
    }
    if !unformatted.is_empty() {
        bail!("not formatted: {}", unformatted.join(", "));
    }
    Ok(())
}

fn inspect(a: &BakeArgs, format: OutputFormat) -> Result<()> {
    let recipe = read_recipe(single(a)?, &a.vars)?;
    let baker = Baker::open(cache_dir(a), RealKernel)?;
    let plan = spindle_bake::plan(&recipe, &a.sel, &baker.inputs()).map_err(|d| anyhow!(d))?;
    let rows: Vec<serde_json::Value> = plan
        .builds
        .iter()
        .map(|b| {
            serde_json::json!({
                "source": b.source_ref,
                "base": b.source.base.to_string(),
                "image": b.source.image_name,
                "steps": b.steps.iter().map(|s| serde_json::json!({
                    "step": s.label(),
                    "key": s.key,
                    "cached": baker.cached(&s.key).map(|l| l.diff_id),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    if format == OutputFormat::Json {
        output::json(&rows);
        return Ok(());
    }
    for b in &plan.builds {
        println!(
            "{} from {} -> {}",
            b.source_ref, b.source.base, b.source.image_name
        );
        for s in &b.steps {
            let state = match baker.cached(&s.key) {
                Some(l) => format!("cached {}", &l.diff_id[..19]),
                None => "to run".into(),
            };
            println!("  {:<28} {}  {state}", s.label(), &s.key[..16]);
        }
    }
    Ok(())
}

/// Bakes every selected build (exactly one with `one`), imports each into the daemon unless
/// `-no-import` and publishes its id; prints a line per build as text. Returns a JSON result
/// per build (`spindle devbox up` reads `imported` and `image_name` from it).
pub(super) fn build(a: &BakeArgs, g: &Global, one: bool) -> Result<Vec<serde_json::Value>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("spindle bake build runs each step in its own namespaces and needs root; run it with sudo");
    }
    let recipe = read_recipe(single(a)?, &a.vars)?;
    let baker = Baker::open(cache_dir(a), RealKernel)?;
    let plan = spindle_bake::plan(&recipe, &a.sel, &baker.inputs()).map_err(|d| anyhow!(d))?;
    if one && plan.builds.len() != 1 {
        let names: Vec<&str> = plan.builds.iter().map(|b| b.source_ref.as_str()).collect();
        bail!(
            "the recipe builds {} images ({}); choose one with -only NAME",
            names.len(),
            names.join(", ")
        );
    }
    let cx = if a.no_import {
        None
    } else {
        Some(Context::new(g)?)
    };
    let progress = |line: &str| eprintln!("==> {line}");
    let mut results = Vec::new();
    for b in &plan.builds {
        let baked = baker.bake(
            b,
            &BakeOptions {
                on_error: a.on_error,
                progress: Some(&progress),
            },
        )?;
        let files = spindle_bake::output::run_post_processors(
            baker.store(),
            baker.dir(),
            &baked,
            &b.post_processors,
        )?;
        let mut daemon_id = None;
        if let Some(cx) = &cx {
            let account = cx.account()?;
            let id = import_baked(
                &baker,
                &baked,
                &b.source.image_name,
                cx.client()?,
                &[account.as_str()],
                &format!("image baked from {}", recipe.file),
            )?;
            eprintln!(
                "==> {}: imported as {id} and published to {}",
                b.source_ref,
                latest_param(&b.source.image_name)?.as_str()
            );
            daemon_id = Some(id);
        }
        results.push(serde_json::json!({
            "source": b.source_ref,
            "image_name": b.source.image_name,
            "image": baked.image.id,
            "tags": baked.image.tags,
            "imported": daemon_id,
            "seconds": baked.seconds,
            "steps": baked.steps.iter().map(|s| serde_json::json!({"step": s.label, "diff_id": s.layer.diff_id, "cached": s.cached})).collect::<Vec<_>>(),
            "files": files,
        }));
        if g.output == OutputFormat::Text {
            println!(
                "{}: {} in {:.1}s ({} of {} steps cached)",
                b.source_ref,
                baked.image.id,
                baked.seconds,
                baked.steps.iter().filter(|s| s.cached).count(),
                baked.steps.len()
            );
        }
    }
    Ok(results)
}

/// `/spindle/images/NAME/latest` for the image `NAME:TAG`.
pub(crate) fn latest_param(image_name: &str) -> Result<ParamName> {
    let name = image_name.split(':').next().unwrap_or_default();
    ParamName::parse(&format!("/spindle/images/{name}/latest"))
        .map_err(|e| anyhow!("image name `{name}` makes no parameter name: {e}"))
}

/// Hands a baked image to the daemon (an oci-archive through the ordinary `image import`):
/// into the first of `accounts` tagged `image_name`, into the others untagged (tags are the
/// installation's, an image's owners are per account), and points each account's
/// `/spindle/images/NAME/latest` at it. Returns the image id.
pub(crate) fn import_baked(
    baker: &Baker<RealKernel>,
    baked: &spindle_bake::Baked,
    image_name: &str,
    client: &spindle_client::Client,
    accounts: &[&str],
    description: &str,
) -> Result<String> {
    let archive = baker
        .store()
        .root()
        .join("tmp")
        .join(format!("import-{}.oci.tar", baked.image.id));
    spindle_bake::output::write_oci_archive(baker.store(), &baked.image.id, &archive)?;
    let param = latest_param(image_name)?;
    let result = (|| -> Result<String> {
        let mut id = baked.image.id.clone();
        for (i, account) in accounts.iter().enumerate() {
            let info = client
                .import_image(
                    account,
                    &ImportImage {
                        path: archive.display().to_string(),
                        tag: (i == 0).then(|| image_name.to_owned()),
                        entrypoint: Vec::new(),
                        cmd: Vec::new(),
                    },
                )
                .map_err(api_err)?;
            client
                .put_param(
                    account,
                    &param,
                    &PutParam {
                        value: info.id.clone(),
                        kind: "String".into(),
                        description: description.to_owned(),
                        overwrite: true,
                    },
                )
                .map_err(api_err)?;
            id = info.id;
        }
        Ok(id)
    })();
    let _ = std::fs::remove_file(&archive);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Result<BakeArgs> {
        parse_args(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn packer_style_flags() {
        let a = args(&[
            "-var",
            "a=1",
            "--var=b=2",
            "-only=app,dev",
            "-except",
            "x",
            "-on-error=abort",
            "-no-import",
            "r.pkr.hcl",
        ])
        .unwrap();
        assert_eq!(
            a.vars.vars,
            [("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(a.sel.only, ["app", "dev"]);
        assert_eq!(a.sel.except, ["x"]);
        assert_eq!(a.on_error, OnError::Abort);
        assert!(a.no_import);
        assert_eq!(a.files, [PathBuf::from("r.pkr.hcl")]);
        for (bad, want) in [
            (
                &["-on-error=retry", "r"][..],
                "expected cleanup, abort or shell",
            ),
            (&["-force", "r"][..], "unknown flag -force"),
            (&["-var"][..], "-var needs a value"),
            (&["-var", "novalue", "r"][..], "expected NAME=VALUE"),
            (&["-no-import"][..], "name a recipe file"),
        ] {
            let e = args(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }
}
