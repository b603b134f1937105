//! The pure planner: a recipe becomes, per selected source, a base and a list of steps, each
//! with a cache key — the sha256 of its parent's key and everything the step's result depends
//! on (the step's own settings, the contents of the files it copies, the package versions it
//! would install). The same key means the same layer, so an unchanged prefix of steps is
//! reused. Everything the planner needs from the outside comes through [`Inputs`].

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::recipe::{Base, Diag, Diags, Pos, PostProcessor, Recipe, Source, Step};

/// What the planner needs to know about the world.
pub trait Inputs {
    /// A digest of a host file or directory tree (names, kinds, modes and contents).
    fn content_digest(&self, path: &Path) -> Result<String, String>;
    /// A key naming exactly the base's content (its layers' diff ids, for an image).
    fn base_key(&self, base: &Base) -> Result<String, String>;
    /// `name=version` for each package the apt step would install on `base`.
    fn resolve_packages(
        &self,
        base: &Base,
        repo: Option<&crate::recipe::AptRepo>,
        packages: &[String],
    ) -> Result<Vec<String>, String>;
}

/// `-only` / `-except`: source names, `spindle.NAME` or just `NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub only: Vec<String>,
    pub except: Vec<String>,
}

fn matches(list: &[String], source: &str) -> bool {
    list.iter()
        .any(|s| s == source || format!("spindle.{s}") == source)
}

impl Selection {
    fn wants(&self, source: &str) -> bool {
        (self.only.is_empty() || matches(&self.only, source)) && !matches(&self.except, source)
    }
}

/// One step with its cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStep {
    /// One-based position among the build's provisioners (skipped ones keep their number).
    pub number: usize,
    pub step: Step,
    pub pos: Pos,
    /// Hex sha256; names the layer in the cache.
    pub key: String,
    /// For apt steps: the `name=version` pins resolved at plan time.
    pub resolved: Vec<String>,
}

impl PlannedStep {
    /// `shell #3 (line 12)` — how messages name the step.
    pub fn label(&self) -> String {
        format!(
            "{} #{} (line {})",
            self.step.kind(),
            self.number,
            self.pos.line
        )
    }
}

/// One source of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedBuild {
    /// `spindle.NAME`.
    pub source_ref: String,
    pub source: Source,
    pub base_key: String,
    pub steps: Vec<PlannedStep>,
    pub post_processors: Vec<PostProcessor>,
}

/// Everything a bake will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub builds: Vec<PlannedBuild>,
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The part of a step that decides its result, as text. Paths on the host are left out (a
/// moved project keeps its cache); what they point at is in `extra`.
fn step_material(step: &Step) -> String {
    match step {
        Step::Apt {
            packages,
            repo: None,
        } => format!("apt\n{}", packages.join("\n")),
        Step::Apt {
            packages,
            repo: Some(r),
        } => format!(
            "apt\n{}\nrepo {} {} {}",
            packages.join("\n"),
            r.url,
            r.distribution,
            r.component
        ),
        Step::File {
            destination, mode, ..
        } => format!("file\n{destination}\n{mode:?}"),
        Step::Shell {
            script,
            env,
            network,
            ..
        } => format!("shell\n{network}\n{}\n{script}", env.join("\n")),
        Step::Warm {
            command,
            urls,
            timeout_secs,
        } => format!("warm\n{command}\n{}\n{timeout_secs}", urls.join("\n")),
    }
}

/// Plans every selected source of every build. All problems are returned at once.
pub fn plan(recipe: &Recipe, sel: &Selection, inputs: &dyn Inputs) -> Result<Plan, Diags> {
    let mut diags = Vec::new();
    let mut builds = Vec::new();
    let diag = |pos: Pos, message: String| Diag {
        file: recipe.file.clone(),
        pos: Some(pos),
        message,
    };
    for name in sel.only.iter().chain(&sel.except) {
        let full = if name.starts_with("spindle.") {
            name.clone()
        } else {
            format!("spindle.{name}")
        };
        if !recipe.sources.contains_key(&full) {
            diags.push(Diag {
                file: "-only/-except".into(),
                pos: None,
                message: format!(
                    "no source `{name}` in the recipe (sources: {})",
                    recipe
                        .sources
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    for build in &recipe.builds {
        for source_ref in &build.sources {
            let Some(source) = recipe.sources.get(source_ref) else {
                continue;
            };
            if !sel.wants(source_ref) {
                continue;
            }
            let base_key = match inputs.base_key(&source.base) {
                Ok(k) => sha(&["spindle-bake/1", "base", &k]),
                Err(e) => {
                    diags.push(diag(source.pos, format!("base `{}`: {e}", source.base)));
                    continue;
                }
            };
            let mut parent = base_key.clone();
            let mut steps = Vec::new();
            for (i, p) in build.provisioners.iter().enumerate() {
                if !p.only.is_empty() && !matches(&p.only, source_ref) {
                    continue;
                }
                if matches(&p.except, source_ref) {
                    continue;
                }
                let mut resolved = Vec::new();
                let extra = match &p.step {
                    Step::File { source, .. } => inputs.content_digest(source),
                    Step::Apt { repo, packages } => inputs
                        .resolve_packages(&source.base, repo.as_ref(), packages)
                        .and_then(|v| {
                            resolved = v;
                            // The repo's key is an input too: a new key is a new trust root.
                            let key = match repo {
                                Some(r) => inputs.content_digest(&r.keyring)?,
                                None => String::new(),
                            };
                            Ok(format!("{}\n{key}", resolved.join("\n")))
                        }),
                    Step::Shell { .. } | Step::Warm { .. } => Ok(String::new()),
                };
                let extra = match extra {
                    Ok(e) => e,
                    Err(e) => {
                        diags.push(diag(
                            p.pos,
                            format!("provisioner \"{}\": {e}", p.step.kind()),
                        ));
                        continue;
                    }
                };
                let key = sha(&[&parent, &step_material(&p.step), &extra]);
                parent = key.clone();
                steps.push(PlannedStep {
                    number: i + 1,
                    step: p.step.clone(),
                    pos: p.pos,
                    key,
                    resolved,
                });
            }
            builds.push(PlannedBuild {
                source_ref: source_ref.clone(),
                source: source.clone(),
                base_key,
                steps,
                post_processors: build
                    .post_processors
                    .iter()
                    .map(|(p, _)| p.clone())
                    .collect(),
            });
        }
    }
    if builds.is_empty() && diags.is_empty() {
        diags.push(Diag {
            file: recipe.file.clone(),
            pos: None,
            message: "-only/-except leave no source to build".into(),
        });
    }
    if diags.is_empty() {
        Ok(Plan { builds })
    } else {
        Err(Diags(diags))
    }
}
