//! The parts of `spindle up` beyond accounts and stacks: reading what the daemon has for the
//! planner ([`observe`]), and the steps that build packages, publish them to the project's
//! apt repos and bake its images ([`Exec`]).
//!
//! What the last `up` did is recorded in the daemon, in the parameters
//! `/spindle/up/PROJECT/packages/NAME` (`INPUTS-DIGEST DEB-SHA256`, in the repo's account) and
//! `/spindle/up/PROJECT/images/NAME` (`INPUTS-DIGEST IMAGE-ID`, in the image's account), so a
//! fresh data dir starts over and a fresh clone of the same sources finds everything current.

use crate::commands::bake::{import_baked, read_recipe};
use crate::context::{api_err, hinted};
use anyhow::{anyhow, bail, Context as _, Result};
use spindle_bake::{BakeOptions, Baker, OnError, Selection, VarInputs};
use spindle_client::Client;
use spindle_model::api::PutParam;
use spindle_model::apt::{
    AddPackages, CreatePublication, CreateRepo, CreateSigningKey, PublicationRef, PublishSource,
};
use spindle_model::{AccountName, ParamName};
use spindle_project::{
    digest_paths, ImageSpec, ImageState, Manifest, Observed, PackageSpec, PackageState, RepoSpec,
};
use spindle_runtime::RealKernel;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn record_param(project: &str, kind: &str, name: &str) -> Result<ParamName> {
    ParamName::parse(&format!("/spindle/up/{project}/{kind}/{name}"))
        .map_err(|e| anyhow!("project `{project}`, {kind} `{name}`: {e}"))
}

/// A recorded `DIGEST VALUE` pair, if the parameter exists and holds one.
fn recorded(client: &Client, account: &AccountName, name: &ParamName) -> Option<(String, String)> {
    let p = client.get_param(account.as_str(), name, false).ok()?;
    let (a, b) = p.value.split_once(' ')?;
    Some((a.to_owned(), b.to_owned()))
}

fn put_record(
    client: &Client,
    account: &AccountName,
    name: &ParamName,
    value: String,
) -> Result<()> {
    client
        .put_param(
            account.as_str(),
            name,
            &PutParam {
                value,
                kind: "String".into(),
                description: "recorded by `spindle up`: the inputs' digest and what they made"
                    .into(),
                overwrite: true,
            },
        )
        .map_err(api_err)?;
    Ok(())
}

/// Reads what the planner compares the manifest with: the accounts, the repos' keys, repos and
/// publications, the digests of every package's and image's inputs now, and the records of
/// the last `up`. Accounts that don't exist yet are not asked about.
pub fn observe(client: &Client, m: &Manifest, accounts: Vec<AccountName>) -> Result<Observed> {
    let dir = m.dir();
    let mut o = Observed {
        accounts,
        ..Observed::default()
    };
    let exists = |a: &AccountName| o.accounts.contains(a);
    let mut keys = Vec::new();
    let mut repos = Vec::new();
    let mut pubs = Vec::new();
    let repo_accounts: std::collections::BTreeSet<&AccountName> =
        m.repos.values().map(|r| &r.account).collect();
    for a in repo_accounts.into_iter().filter(|a| exists(a)) {
        for k in client.list_signing_keys(a.as_str()).map_err(api_err)? {
            keys.push((a.clone(), k.name));
        }
        for r in client.list_repos(a.as_str()).map_err(api_err)? {
            repos.push((a.clone(), r.name));
        }
        for p in client.list_publications(a.as_str()).map_err(api_err)? {
            pubs.push((a.clone(), p.prefix, p.distribution));
        }
    }
    for p in m.packages.values() {
        let repo = &m.repos[&p.repo];
        let inputs = digest_paths(dir, &p.inputs)?;
        let (rec, in_repo) = if exists(&repo.account) {
            let rec = recorded(
                client,
                &repo.account,
                &record_param(&m.name, "packages", &p.name)?,
            );
            let in_repo = client
                .search_repo(repo.account.as_str(), &repo.name, &p.name)
                .map(|l| l.into_iter().map(|i| i.sha256).collect())
                .unwrap_or_default();
            (rec, in_repo)
        } else {
            (None, Vec::new())
        };
        o.packages.insert(
            p.name.clone(),
            PackageState {
                inputs,
                recorded: rec,
                in_repo,
            },
        );
    }
    for i in m.images.values() {
        let recipe_dir = i.recipe.parent().unwrap_or(dir).to_path_buf();
        let mut state = ImageState {
            recipe: digest_paths(dir, &[recipe_dir])?,
            ..ImageState::default()
        };
        if exists(&i.account) {
            state.recorded = recorded(
                client,
                &i.account,
                &record_param(&m.name, "images", &i.name)?,
            );
        }
        if let Some((_, id)) = &state.recorded {
            let latest = crate::commands::bake::latest_param(&i.name)?;
            for a in i.accounts().filter(|a| exists(a)) {
                let named = client
                    .get_param(a.as_str(), &latest, false)
                    .is_ok_and(|p| &p.value == id);
                let owned = client
                    .list_images(a.as_str())
                    .is_ok_and(|l| l.iter().any(|img| &img.id == id));
                if named && owned {
                    state.ready_in.insert(a.clone());
                }
            }
        }
        o.images.insert(i.name.clone(), state);
    }
    o.signing_keys = keys.into_iter().collect();
    o.repos = repos.into_iter().collect();
    o.publications = pubs.into_iter().collect();
    Ok(o)
}

/// A package built in this run.
struct Built {
    inputs: String,
    deb: spindle_deb::builder::BuiltDeb,
}

/// Carries out the package, repo and image steps; packages built by one step are published
/// by a later one.
pub struct Exec<'a> {
    pub client: &'a Client,
    pub manifest: &'a Manifest,
    /// `DATA_DIR/up/PROJECT`: build logs and repo keyrings.
    pub work: PathBuf,
    /// The bake cache, `DATA_DIR/bake` (as `spindle bake build` uses).
    pub bake_dir: PathBuf,
    /// Shows one line of progress.
    pub say: &'a dyn Fn(&str),
    built: BTreeMap<String, Built>,
}

impl<'a> Exec<'a> {
    pub fn new(
        client: &'a Client,
        manifest: &'a Manifest,
        work: PathBuf,
        bake_dir: PathBuf,
        say: &'a dyn Fn(&str),
    ) -> Self {
        Exec {
            client,
            manifest,
            work,
            bake_dir,
            say,
            built: BTreeMap::new(),
        }
    }

    pub fn create_signing_key(&self, account: &AccountName, name: &str) -> Result<String> {
        let k = self
            .client
            .create_signing_key(
                account.as_str(),
                &CreateSigningKey {
                    name: name.to_owned(),
                    user_id: Some(format!(
                        "{} repositories (spindle up) <{name}@{account}.spindle.invalid>",
                        self.manifest.name
                    )),
                },
            )
            .map_err(api_err)?;
        Ok(format!(
            "created signing key {} in {account} ({})",
            k.name, k.key_id
        ))
    }

    pub fn create_repo(&self, r: &RepoSpec) -> Result<String> {
        self.client
            .create_repo(
                r.account.as_str(),
                &CreateRepo {
                    name: r.name.clone(),
                    comment: format!("packages of project {}", self.manifest.name),
                    architectures: Vec::new(),
                },
            )
            .map_err(api_err)?;
        Ok(format!("created repo {} in {}", r.name, r.account))
    }

    /// Runs the package's build command (its output goes to a log), then builds the .deb.
    pub fn build_package(&mut self, p: &PackageSpec, inputs: &str) -> Result<String> {
        if let Some(cmd) = p.build_command(self.manifest.dir()) {
            std::fs::create_dir_all(&self.work)
                .with_context(|| format!("cannot create `{}`", self.work.display()))?;
            let log_path = self.work.join(format!("{}-build.log", p.name));
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("cannot write `{}`", log_path.display()))?;
            (self.say)(&format!("running {}", p.build.join(" ")));
            let status = Command::new(&cmd.program)
                .args(&cmd.args)
                .current_dir(&cmd.cwd)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .status()
                .with_context(|| {
                    format!(
                        "cannot run `{}` in `{}`",
                        cmd.program.display(),
                        cmd.cwd.display()
                    )
                })?;
            if !status.success() {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return Err(hinted(
                    format!(
                        "`{}` failed ({status}):\n{}",
                        p.build.join(" "),
                        tail.join("\n")
                    ),
                    format!("the whole output is in {}", log_path.display()),
                ));
            }
        }
        // The .deb depends only on its inputs (no build time in it), so the same sources make
        // the same file and publishing it again is a no-op.
        let epoch = std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (self.say)(&format!("pkg build {}", p.spec.display()));
        let deb = spindle_deb::spec::build_from_file(&p.spec, epoch)?;
        let what = format!(
            "built package {} ({}, {} bytes)",
            p.name, deb.file_name, deb.digests.size
        );
        self.built.insert(
            p.name.clone(),
            Built {
                inputs: inputs.to_owned(),
                deb,
            },
        );
        Ok(what)
    }

    /// Uploads the packages built in this run, adds them to the repo and publishes it.
    pub fn publish(&self, r: &RepoSpec, packages: &[String], create: bool) -> Result<String> {
        let account = r.account.as_str();
        let mut keys = Vec::new();
        for name in packages {
            let b = self
                .built
                .get(name)
                .ok_or_else(|| anyhow!("package {name} was not built in this run"))?;
            (self.say)(&format!("uploading {}", b.deb.file_name));
            let info = self
                .client
                .upload_package(account, &b.deb.bytes)
                .map_err(|e| {
                    if e.code() == Some("Conflict") {
                        hinted(
                            format!("{}: {e}", b.deb.file_name),
                            format!(
                                "its sources changed but its version didn't: raise `version` in {}",
                                self.manifest.packages[name].spec.display()
                            ),
                        )
                    } else {
                        api_err(e)
                    }
                })?;
            keys.push(info.key);
        }
        let mut added = 0;
        if !keys.is_empty() {
            let change = self
                .client
                .add_to_repo(account, &r.name, &AddPackages { packages: keys })
                .map_err(api_err)?;
            added = change.added.len();
        }
        let publication = if create {
            self.client.create_publication(
                account,
                &CreatePublication {
                    distribution: r.distribution.clone(),
                    prefix: r.prefix.clone(),
                    sources: vec![PublishSource {
                        component: r.component.clone(),
                        kind: "repo".into(),
                        name: r.name.clone(),
                    }],
                    architectures: Vec::new(),
                    sign_key: r.sign_key.clone(),
                    private: false,
                    origin: None,
                    label: None,
                    valid_for_secs: None,
                },
            )
        } else {
            self.client.update_publication(
                account,
                &PublicationRef {
                    prefix: r.prefix.clone(),
                    distribution: r.distribution.clone(),
                },
            )
        }
        .map_err(api_err)?;
        for name in packages {
            let b = &self.built[name];
            put_record(
                self.client,
                &r.account,
                &record_param(&self.manifest.name, "packages", name)?,
                format!("{} {}", b.inputs, b.deb.digests.sha256),
            )?;
        }
        Ok(format!(
            "published repo {} ({} package(s) new) at {}",
            r.name, added, publication.url
        ))
    }

    /// The repo's URL and a binary keyring file for the recipe's `apt` step.
    fn repo_vars(&self, r: &RepoSpec) -> Result<(String, PathBuf)> {
        let account = r.account.as_str();
        let url = self
            .client
            .list_publications(account)
            .map_err(api_err)?
            .into_iter()
            .find(|p| p.prefix == r.prefix && p.distribution == r.distribution)
            .map(|p| p.url)
            .ok_or_else(|| anyhow!("repo {} in {account} is not published", r.name))?;
        let key = self
            .client
            .export_signing_key(account, &r.sign_key)
            .map_err(api_err)?;
        let armored = key
            .public_key
            .ok_or_else(|| anyhow!("the daemon returned no public key for {}", r.sign_key))?;
        let binary = spindle_apt::mirror::binary_keyring(armored.as_bytes())
            .map_err(|e| anyhow!("signing key {}: {e}", r.sign_key))?;
        std::fs::create_dir_all(&self.work)
            .with_context(|| format!("cannot create `{}`", self.work.display()))?;
        let path = self.work.join(format!("{}-{}.gpg", r.account, r.name));
        std::fs::write(&path, binary)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        Ok((url, path))
    }

    /// Bakes the image (every step cached), imports it into its accounts and points their
    /// `/spindle/images/NAME/latest` at it.
    pub fn bake(&self, i: &ImageSpec, inputs: &str) -> Result<String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            bail!(
                "baking image {} runs each step in its own namespaces and needs root; run `spindle up` with sudo",
                i.name
            );
        }
        let mut vars = VarInputs::default();
        for (k, v) in &i.vars {
            vars.push_var(&format!("{k}={v}")).map_err(|e| anyhow!(e))?;
        }
        if let Some(repo) = &i.repo {
            let (url, keyring) = self.repo_vars(&self.manifest.repos[repo])?;
            vars.push_var(&format!("repo_url={url}"))
                .map_err(|e| anyhow!(e))?;
            vars.push_var(&format!("repo_keyring={}", keyring.display()))
                .map_err(|e| anyhow!(e))?;
        }
        let recipe = read_recipe(&i.recipe, &vars)?;
        let baker = Baker::open(&self.bake_dir, RealKernel)?;
        let plan = spindle_bake::plan(&recipe, &Selection::default(), &baker.inputs())
            .map_err(|d| anyhow!(d))?;
        let build = match plan.builds.as_slice() {
            [b] => b,
            builds => bail!(
                "{}: image {} needs a recipe with one build of one source, not {}",
                i.recipe.display(),
                i.name,
                builds.len()
            ),
        };
        let image_name = build.source.image_name.clone();
        if image_name.split(':').next() != Some(i.name.as_str()) {
            bail!(
                "{}: the recipe makes image `{image_name}`, but spindle.toml calls it `{}`; set `image_name = \"{}:latest\"` in the source",
                i.recipe.display(),
                i.name,
                i.name
            );
        }
        let say = |line: &str| (self.say)(line);
        let baked = baker.bake(
            build,
            &BakeOptions {
                on_error: OnError::Cleanup,
                progress: Some(&say),
            },
        )?;
        spindle_bake::output::run_post_processors(
            baker.store(),
            baker.dir(),
            &baked,
            &build.post_processors,
        )?;
        (self.say)("importing into the daemon");
        let accounts: Vec<&str> = i.accounts().map(|a| a.as_str()).collect();
        let id = import_baked(
            &baker,
            &baked,
            &image_name,
            self.client,
            &accounts,
            &format!("baked by spindle up from {}", i.recipe.display()),
        )?;
        put_record(
            self.client,
            &i.account,
            &record_param(&self.manifest.name, "images", &i.name)?,
            format!("{inputs} {id}"),
        )?;
        let cached = baked.steps.iter().filter(|s| s.cached).count();
        Ok(format!(
            "baked image {} = {id} ({cached} of {} steps cached) for {}",
            i.name,
            baked.steps.len(),
            accounts.join(", ")
        ))
    }
}
