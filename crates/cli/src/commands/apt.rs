//! `spindle repo|snapshot|publish|key|db`: apt repositories the way aptly's users know them,
//! through the daemon's API.

use crate::context::{api_err, parse_duration, Context};
use crate::output;
use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use spindle_model::apt::*;
use std::path::PathBuf;

/// About how many bytes, and at most how many .debs, one upload request carries. The daemon
/// accepts up to 512 MiB, but it holds a batch's body and records at once, so smaller
/// batches bound the memory of both ends; each batch costs the daemon two flushes and a
/// transaction.
const UPLOAD_BATCH: usize = 4 << 20;
const UPLOAD_BATCH_DEBS: usize = 2000;
/// Upload requests `repo add` keeps open at once: with two, the daemon checks one batch
/// (on all cores) while it records the other (on one).
const UPLOADS_IN_FLIGHT: usize = 2;

/// The files `repo add` uploads: each argument that is a directory stands for the `*.deb`
/// files directly in it (sorted); every file must exist.
fn deb_files(args: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for a in args {
        let meta =
            std::fs::metadata(a).with_context(|| format!("cannot read `{}`", a.display()))?;
        if meta.is_dir() {
            let mut debs = Vec::new();
            for e in
                std::fs::read_dir(a).with_context(|| format!("cannot list `{}`", a.display()))?
            {
                let p = e
                    .with_context(|| format!("cannot list `{}`", a.display()))?
                    .path();
                if p.extension().is_some_and(|x| x == "deb") && p.is_file() {
                    debs.push(p);
                }
            }
            if debs.is_empty() {
                bail!("`{}` holds no .deb file", a.display());
            }
            debs.sort();
            out.extend(debs);
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

/// Reads `files` into upload batches of about [`UPLOAD_BATCH`] bytes, sending each (or the
/// first read error) to `tx`; stops early when the receiver goes away.
fn read_batches(
    files: &[PathBuf],
    tx: std::sync::mpsc::SyncSender<Result<spindle_client::DebArchive>>,
) {
    let mut archive = spindle_client::DebArchive::new();
    for (i, f) in files.iter().enumerate() {
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(
                    anyhow::Error::new(e).context(format!("cannot read `{}`", f.display()))
                ));
                return;
            }
        };
        // The archive names only label the daemon's errors: the file name suffices.
        let name = f.file_name().map_or_else(
            || f.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        archive.push(&name, &bytes);
        if archive.size() >= UPLOAD_BATCH
            || archive.len() >= UPLOAD_BATCH_DEBS
            || i + 1 == files.len()
        {
            let full = std::mem::replace(&mut archive, spindle_client::DebArchive::new());
            if tx.send(Ok(full)).is_err() {
                return;
            }
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RepoCmd {
    /// Create a local repository
    Create {
        name: String,
        #[arg(long, default_value = "")]
        comment: String,
        /// Architectures it accepts besides `all`, comma-separated [default: any]
        #[arg(long, value_delimiter = ',')]
        architectures: Vec<String>,
    },
    /// List repositories
    List,
    /// Show a repository (with --with-packages, its packages)
    Show {
        name: String,
        #[arg(long)]
        with_packages: bool,
    },
    /// Upload .deb files (a directory means every *.deb in it) and add them to a repository,
    /// all or none
    Add {
        repo: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Remove the packages matching a query
    Remove { repo: String, query: String },
    /// Copy the packages matching a query to another repository
    Copy {
        from: String,
        to: String,
        query: String,
    },
    /// Move the packages matching a query to another repository
    Move {
        from: String,
        to: String,
        query: String,
    },
    /// List the packages matching a query (aptly syntax: `Name (>= 1.2)`, `$Architecture (amd64)`, `|`, `,`, `!`)
    Search {
        repo: String,
        #[arg(default_value = "Name")]
        query: String,
    },
    /// Delete a repository (refused while published)
    Drop { name: String },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// `snapshot create NAME from repo REPO`: freeze a repository's packages
    Create {
        name: String,
        /// The word `from`
        from: String,
        /// `repo`
        kind: String,
        source: String,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List snapshots
    List,
    /// Show a snapshot and its packages (optionally those matching a query)
    Show {
        name: String,
        #[arg(long)]
        query: Option<String>,
    },
    /// What changed from OLD to NEW
    Diff { old: String, new: String },
    /// Merge snapshots into a new one (newest version of each package wins unless --all-versions)
    Merge {
        name: String,
        #[arg(required = true)]
        sources: Vec<String>,
        #[arg(long)]
        all_versions: bool,
    },
    /// A new snapshot with the packages of SOURCE matching QUERY
    Filter {
        source: String,
        name: String,
        query: String,
        /// Also take what they depend on, transitively
        #[arg(long)]
        with_deps: bool,
    },
    /// Delete a snapshot (refused while published)
    Drop { name: String },
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// What to publish, one per component
    #[arg(required = true)]
    pub sources: Vec<String>,
    #[arg(long)]
    pub distribution: String,
    /// Components, comma-separated, one per source
    #[arg(long, value_delimiter = ',', default_value = "main")]
    pub component: Vec<String>,
    /// Architectures to publish, comma-separated [default: those of the packages]
    #[arg(long, value_delimiter = ',')]
    pub architectures: Vec<String>,
    /// Publish under this path of the account's tree
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// The signing key (`spindle key create`)
    #[arg(long)]
    pub sign_key: String,
    /// Serve it only to clients with its read token (apt's auth.conf)
    #[arg(long)]
    pub private: bool,
    #[arg(long)]
    pub origin: Option<String>,
    #[arg(long)]
    pub label: Option<String>,
    /// Set `Valid-Until` this far after `Date`, e.g. `7d`, `12h`
    #[arg(long)]
    pub valid_for: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum PublishCmd {
    /// Publish repositories (their contents at each publish)
    Repo(PublishArgs),
    /// Publish snapshots
    Snapshot(PublishArgs),
    /// Republish with the current contents of the published repositories
    Update {
        distribution: String,
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Point a snapshot publication at other snapshots, atomically
    Switch {
        distribution: String,
        #[arg(required = true)]
        snapshots: Vec<String>,
        /// The components to switch, comma-separated, one per snapshot
        #[arg(long, value_delimiter = ',', default_value = "main")]
        component: Vec<String>,
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Remove a publication
    Drop {
        distribution: String,
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// List publications
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Generate an OpenPGP signing key, kept by the daemon (secret file mode 0600)
    Create {
        name: String,
        /// The key's user id [default: `Spindle ACCOUNT NAME <apt@spindle.invalid>`]
        #[arg(long)]
        user_id: Option<String>,
    },
    /// List signing keys
    List,
    /// Print (or with --file, write) the public key, for apt's `signed-by=`. apt reads a
    /// binary keyring from any file not named `*.asc` (so `twine.gpg` gets binary), and an
    /// ASCII-armored key only from a `*.asc` file; printed keys are armored
    Export {
        name: String,
        /// Write here: binary, unless the name ends in `.asc` or --armor is given
        #[arg(long)]
        file: Option<PathBuf>,
        /// Write ASCII armor whatever the file's name
        #[arg(long)]
        armor: bool,
    },
    /// Delete a signing key (refused while it signs a publication)
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum MirrorCmd {
    /// Define a mirror of a remote apt repository (`mirror update` fetches it)
    Create {
        name: String,
        /// The repository's base URL (the part before `dists/`)
        url: String,
        distribution: String,
        /// Components [default: main]
        components: Vec<String>,
        /// Only packages matching this query (aptly syntax)
        #[arg(long)]
        filter: Option<String>,
        /// Also fetch what the selected packages depend on, transitively
        #[arg(long)]
        with_deps: bool,
        /// The public key(s) that sign its InRelease, ASCII-armored (e.g. `gpg --export --armor`)
        #[arg(long)]
        keyring: PathBuf,
        /// Architectures, comma-separated [default: amd64]
        #[arg(long, value_delimiter = ',')]
        architectures: Vec<String>,
    },
    /// Fetch, verify (signature and every SHA-256) and download the mirror's selection
    Update { name: String },
    /// List mirrors
    List,
    /// Show a mirror
    Show { name: String },
    /// Forget a mirror (snapshots made from it stay)
    Drop { name: String },
}

#[derive(Debug, Subcommand)]
pub enum DbCmd {
    /// Report (and with --apply remove) package records and pool files nothing references
    Cleanup {
        #[arg(long)]
        apply: bool,
    },
}

fn print_change(cx: &Context, c: &RepoChange) {
    if cx.json() {
        return output::json(c);
    }
    for (verb, list) in [
        ("added", &c.added),
        ("removed", &c.removed),
        ("unchanged", &c.unchanged),
    ] {
        for k in list {
            println!("{verb:9}  {k}");
        }
    }
    println!(
        "{} added, {} removed, {} unchanged",
        c.added.len(),
        c.removed.len(),
        c.unchanged.len()
    );
}

fn print_packages(cx: &Context, ps: &[PackageInfo]) {
    if cx.json() {
        return output::json(&ps);
    }
    let rows: Vec<Vec<String>> = ps
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.version.clone(),
                p.architecture.clone(),
                p.size.to_string(),
                p.sha256[..12.min(p.sha256.len())].to_owned(),
            ]
        })
        .collect();
    output::table(&["PACKAGE", "VERSION", "ARCH", "SIZE", "SHA256"], &rows);
}

pub fn repo(cx: &Context, cmd: RepoCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        RepoCmd::Create {
            name,
            comment,
            architectures,
        } => {
            let r = c
                .create_repo(
                    &account,
                    &CreateRepo {
                        name,
                        comment,
                        architectures,
                    },
                )
                .map_err(api_err)?;
            if cx.json() {
                output::json(&r);
            } else {
                println!("Created repository {}.", r.name);
            }
        }
        RepoCmd::List => {
            let rs = c.list_repos(&account).map_err(api_err)?;
            if cx.json() {
                {
                    output::json(&rs);
                    return Ok(());
                }
            }
            let rows: Vec<Vec<String>> = rs
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.packages.to_string(),
                        r.architectures.join(","),
                        r.comment.clone(),
                    ]
                })
                .collect();
            output::table(&["NAME", "PACKAGES", "ARCHITECTURES", "COMMENT"], &rows);
        }
        RepoCmd::Show {
            name,
            with_packages,
        } => {
            let r = c.describe_repo(&account, &name).map_err(api_err)?;
            let packages = if with_packages {
                c.search_repo(&account, &name, "Name").map_err(api_err)?
            } else {
                Vec::new()
            };
            if cx.json() {
                let mut v = serde_json::to_value(&r)?;
                if with_packages {
                    v["package_list"] = serde_json::to_value(&packages)?;
                }
                {
                    output::json(&v);
                    return Ok(());
                }
            }
            output::fields(&[
                ("name", r.name.clone()),
                ("comment", r.comment.clone()),
                ("architectures", r.architectures.join(", ")),
                ("packages", r.packages.to_string()),
            ]);
            if with_packages {
                println!();
                print_packages(cx, &packages);
            }
        }
        RepoCmd::Add { repo, files } => {
            // Find and check every file before uploading any, so a typo changes nothing.
            let files = deb_files(&files)?;
            // Batched uploads (tar archives of about UPLOAD_BATCH bytes): each is added to
            // the pool in one pass with one sync. A thread reads batches ahead, and two are
            // in flight, so the daemon checks one batch while it records the previous one.
            // The repo gets every key, in file order, in one call at the end.
            let mut keys = Vec::with_capacity(files.len());
            std::thread::scope(|s| -> Result<()> {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                s.spawn(|| read_batches(&files, tx));
                let mut in_flight = std::collections::VecDeque::new();
                let mut collect = |h: std::thread::ScopedJoinHandle<'_, Result<Vec<_>>>| {
                    let added = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
                    keys.extend(added.into_iter().map(|p: PackageInfo| p.key));
                    Ok::<_, anyhow::Error>(())
                };
                for batch in rx {
                    let mut archive = batch?;
                    let (c, account) = (&c, &account);
                    in_flight.push_back(
                        s.spawn(move || c.upload_archive(account, &mut archive).map_err(api_err)),
                    );
                    if in_flight.len() == UPLOADS_IN_FLIGHT {
                        collect(in_flight.pop_front().expect("uploads in flight"))?;
                    }
                }
                while let Some(h) = in_flight.pop_front() {
                    collect(h)?;
                }
                Ok(())
            })?;
            let change = c
                .add_to_repo(&account, &repo, &AddPackages { packages: keys })
                .map_err(api_err)?;
            print_change(cx, &change);
        }
        RepoCmd::Remove { repo, query } => {
            let change = c
                .remove_from_repo(&account, &repo, &PackageQuery { query })
                .map_err(api_err)?;
            print_change(cx, &change);
        }
        RepoCmd::Copy { from, to, query } => {
            let change = c
                .copy_packages(&account, &from, &CopyPackages { to, query }, false)
                .map_err(api_err)?;
            print_change(cx, &change);
        }
        RepoCmd::Move { from, to, query } => {
            let change = c
                .copy_packages(&account, &from, &CopyPackages { to, query }, true)
                .map_err(api_err)?;
            print_change(cx, &change);
        }
        RepoCmd::Search { repo, query } => {
            let ps = c.search_repo(&account, &repo, &query).map_err(api_err)?;
            print_packages(cx, &ps);
        }
        RepoCmd::Drop { name } => {
            c.drop_repo(&account, &name).map_err(api_err)?;
            if !cx.json() {
                println!("Dropped repository {name}.");
            }
        }
    }
    Ok(())
}

fn print_snapshot(cx: &Context, s: &SnapshotInfo) {
    if cx.json() {
        return output::json(s);
    }
    output::fields(&[
        ("name", s.name.clone()),
        ("source", s.source.clone()),
        ("description", s.description.clone()),
        ("packages", s.packages.to_string()),
    ]);
    for u in &s.unsatisfied {
        println!("unsatisfied: {u}");
    }
    if !s.package_list.is_empty() {
        println!();
        print_packages(cx, &s.package_list);
    }
}

pub fn snapshot(cx: &Context, cmd: SnapshotCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        SnapshotCmd::Create {
            name,
            from,
            kind,
            source,
            description,
        } => {
            let req = match (from.as_str(), kind.as_str()) {
                ("from", "repo") => CreateSnapshot::Repo {
                    name,
                    repo: source,
                    description,
                },
                ("from", "mirror") => CreateSnapshot::Mirror {
                    name,
                    mirror: source,
                },
                _ => bail!(
                    "usage: spindle snapshot create NAME from repo|mirror SOURCE (got `{from} {kind}`)"
                ),
            };
            let s = c.create_snapshot(&account, &req).map_err(api_err)?;
            print_snapshot(cx, &s);
        }
        SnapshotCmd::List => {
            let ss = c.list_snapshots(&account).map_err(api_err)?;
            if cx.json() {
                {
                    output::json(&ss);
                    return Ok(());
                }
            }
            let rows: Vec<Vec<String>> = ss
                .iter()
                .map(|s| vec![s.name.clone(), s.packages.to_string(), s.source.clone()])
                .collect();
            output::table(&["NAME", "PACKAGES", "SOURCE"], &rows);
        }
        SnapshotCmd::Show { name, query } => print_snapshot(
            cx,
            &c.describe_snapshot(&account, &name, query.as_deref())
                .map_err(api_err)?,
        ),
        SnapshotCmd::Diff { old, new } => {
            let d = c.diff_snapshots(&account, &old, &new).map_err(api_err)?;
            if cx.json() {
                {
                    output::json(&d);
                    return Ok(());
                }
            }
            for k in &d.added {
                println!("+ {k}");
            }
            for k in &d.removed {
                println!("- {k}");
            }
            for k in &d.changed {
                println!("~ {k}");
            }
            if d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty() {
                println!("The snapshots are identical.");
            }
        }
        SnapshotCmd::Merge {
            name,
            sources,
            all_versions,
        } => {
            let s = c
                .create_snapshot(
                    &account,
                    &CreateSnapshot::Merge {
                        name,
                        sources,
                        latest: !all_versions,
                    },
                )
                .map_err(api_err)?;
            print_snapshot(cx, &s);
        }
        SnapshotCmd::Filter {
            source,
            name,
            query,
            with_deps,
        } => {
            let s = c
                .create_snapshot(
                    &account,
                    &CreateSnapshot::Filter {
                        name,
                        source,
                        query,
                        with_deps,
                    },
                )
                .map_err(api_err)?;
            print_snapshot(cx, &s);
        }
        SnapshotCmd::Drop { name } => {
            c.drop_snapshot(&account, &name).map_err(api_err)?;
            if !cx.json() {
                println!("Dropped snapshot {name}.");
            }
        }
    }
    Ok(())
}

fn print_publication(cx: &Context, p: &PublicationInfo) {
    if cx.json() {
        return output::json(p);
    }
    let components: Vec<String> = p.sources.iter().map(|s| s.component.clone()).collect();
    output::fields(&[
        ("distribution", p.distribution.clone()),
        (
            "prefix",
            if p.prefix.is_empty() {
                ".".into()
            } else {
                p.prefix.clone()
            },
        ),
        (
            "sources",
            p.sources
                .iter()
                .map(|s| format!("{}: {} {}", s.component, s.kind, s.name))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("signed by", p.sign_key.clone()),
        ("private", p.private.to_string()),
        ("generation", p.generation.to_string()),
        ("published", p.published_at.clone()),
        (
            "apt source",
            format!("deb {} {} {}", p.url, p.distribution, components.join(" ")),
        ),
    ]);
    if let Some(t) = &p.read_token {
        // apt sends credentials over plain http only to a `machine` written with its scheme.
        let host = &p.url;
        println!();
        println!("Read token (shown once). Put this line in /etc/apt/auth.conf.d/spindle.conf (mode 0600):");
        println!("machine {host} login spindle password {t}");
    }
}

fn publish_request(args: PublishArgs, kind: &str) -> Result<CreatePublication> {
    if args.component.len() != args.sources.len() {
        bail!(
            "{} {kind}(s) but {} component(s): give one --component per source (comma-separated)",
            args.sources.len(),
            args.component.len()
        );
    }
    let valid_for_secs = args.valid_for.as_deref().map(parse_duration).transpose()?;
    Ok(CreatePublication {
        distribution: args.distribution,
        prefix: args.prefix,
        sources: args
            .component
            .into_iter()
            .zip(args.sources)
            .map(|(component, name)| PublishSource {
                component,
                kind: kind.to_owned(),
                name,
            })
            .collect(),
        architectures: args.architectures,
        sign_key: args.sign_key,
        private: args.private,
        origin: args.origin,
        label: args.label,
        valid_for_secs,
    })
}

pub fn publish(cx: &Context, cmd: PublishCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    let p = match cmd {
        PublishCmd::Repo(args) => c
            .create_publication(&account, &publish_request(args, "repo")?)
            .map_err(api_err)?,
        PublishCmd::Snapshot(args) => c
            .create_publication(&account, &publish_request(args, "snapshot")?)
            .map_err(api_err)?,
        PublishCmd::Update {
            distribution,
            prefix,
        } => c
            .update_publication(
                &account,
                &PublicationRef {
                    prefix,
                    distribution,
                },
            )
            .map_err(api_err)?,
        PublishCmd::Switch {
            distribution,
            snapshots,
            component,
            prefix,
        } => {
            if component.len() != snapshots.len() {
                bail!(
                    "{} snapshot(s) but {} component(s): give one --component per snapshot",
                    snapshots.len(),
                    component.len()
                );
            }
            c.switch_publication(
                &account,
                &SwitchPublication {
                    prefix,
                    distribution,
                    snapshots: component.into_iter().zip(snapshots).collect(),
                },
            )
            .map_err(api_err)?
        }
        PublishCmd::Drop {
            distribution,
            prefix,
        } => {
            c.drop_publication(
                &account,
                &PublicationRef {
                    prefix,
                    distribution: distribution.clone(),
                },
            )
            .map_err(api_err)?;
            if !cx.json() {
                println!("Dropped publication {distribution}.");
            }
            return Ok(());
        }
        PublishCmd::List => {
            let ps = c.list_publications(&account).map_err(api_err)?;
            if cx.json() {
                {
                    output::json(&ps);
                    return Ok(());
                }
            }
            let rows: Vec<Vec<String>> = ps
                .iter()
                .map(|p| {
                    vec![
                        if p.prefix.is_empty() {
                            ".".into()
                        } else {
                            p.prefix.clone()
                        },
                        p.distribution.clone(),
                        p.sources
                            .iter()
                            .map(|s| format!("{}:{} {}", s.component, s.kind, s.name))
                            .collect::<Vec<_>>()
                            .join(", "),
                        if p.private { "private" } else { "public" }.into(),
                        p.url.clone(),
                    ]
                })
                .collect();
            output::table(
                &["PREFIX", "DISTRIBUTION", "SOURCES", "ACCESS", "URL"],
                &rows,
            );
            return Ok(());
        }
    };
    print_publication(cx, &p);
    Ok(())
}

fn print_key(cx: &Context, k: &SigningKeyInfo) {
    if cx.json() {
        return output::json(k);
    }
    output::fields(&[
        ("name", k.name.clone()),
        ("fingerprint", k.fingerprint.clone()),
        ("user id", k.user_id.clone()),
        ("created", k.created.clone()),
    ]);
}

pub fn key(cx: &Context, cmd: KeyCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        KeyCmd::Create { name, user_id } => print_key(
            cx,
            &c.create_signing_key(&account, &CreateSigningKey { name, user_id })
                .map_err(api_err)?,
        ),
        KeyCmd::List => {
            let ks = c.list_signing_keys(&account).map_err(api_err)?;
            if cx.json() {
                {
                    output::json(&ks);
                    return Ok(());
                }
            }
            let rows: Vec<Vec<String>> = ks
                .iter()
                .map(|k| vec![k.name.clone(), k.fingerprint.clone(), k.user_id.clone()])
                .collect();
            output::table(&["NAME", "FINGERPRINT", "USER ID"], &rows);
        }
        KeyCmd::Export { name, file, armor } => {
            let k = c.export_signing_key(&account, &name).map_err(api_err)?;
            let armored = k.public_key.clone().unwrap_or_default();
            match file {
                Some(f) => {
                    let format = KeyFormat::for_file(&f, armor);
                    let bytes = match format {
                        KeyFormat::Armored => armored.into_bytes(),
                        KeyFormat::Binary => {
                            spindle_apt::mirror::binary_keyring(armored.as_bytes())
                                .with_context(|| format!("signing key {name}"))?
                        }
                    };
                    std::fs::write(&f, bytes)
                        .with_context(|| format!("cannot write `{}`", f.display()))?;
                    if cx.json() {
                        output::json(&k);
                    } else {
                        println!(
                            "Wrote the public key of {name} to {} ({}; use it as signed-by=).",
                            f.display(),
                            format.describe()
                        );
                    }
                }
                None if cx.json() => output::json(&k),
                None => print!("{armored}"),
            }
        }
        KeyCmd::Delete { name } => {
            c.delete_signing_key(&account, &name).map_err(api_err)?;
            if !cx.json() {
                println!("Deleted signing key {name}.");
            }
        }
    }
    Ok(())
}

/// How `key export --file` writes a key: what apt's `signed-by=` expects of the file's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFormat {
    Binary,
    Armored,
}

impl KeyFormat {
    /// apt (gpgv) reads armor only from a file whose name ends in `.asc`; any other name must
    /// hold a binary keyring, or apt reports `NO_PUBKEY`.
    fn for_file(path: &std::path::Path, armor: bool) -> Self {
        if armor || path.extension().is_some_and(|x| x == "asc") {
            KeyFormat::Armored
        } else {
            KeyFormat::Binary
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KeyFormat::Binary => "binary OpenPGP keyring",
            KeyFormat::Armored => "ASCII-armored",
        }
    }
}

fn print_mirror(cx: &Context, m: &MirrorInfo) {
    if cx.json() {
        return output::json(m);
    }
    output::fields(&[
        ("name", m.name.clone()),
        ("url", m.url.clone()),
        ("distribution", m.distribution.clone()),
        ("components", m.components.join(", ")),
        ("architectures", m.architectures.join(", ")),
        ("filter", m.filter.clone().unwrap_or_default()),
        ("with deps", m.with_deps.to_string()),
        ("packages", m.packages.to_string()),
        (
            "updated",
            if m.updated_at.is_empty() {
                "never".into()
            } else {
                m.updated_at.clone()
            },
        ),
    ]);
    for u in &m.unsatisfied {
        println!("unsatisfied: {u}");
    }
}

pub fn mirror(cx: &Context, cmd: MirrorCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        MirrorCmd::Create {
            name,
            url,
            distribution,
            components,
            filter,
            with_deps,
            keyring,
            architectures,
        } => {
            let keyring = std::fs::read_to_string(&keyring).with_context(|| {
                format!(
                    "cannot read keyring `{}` (it must be ASCII-armored)",
                    keyring.display()
                )
            })?;
            let m = c
                .create_mirror(
                    &account,
                    &CreateMirror {
                        name,
                        url,
                        distribution,
                        components,
                        architectures,
                        filter,
                        with_deps,
                        keyring,
                    },
                )
                .map_err(api_err)?;
            print_mirror(cx, &m);
        }
        MirrorCmd::Update { name } => {
            print_mirror(cx, &c.update_mirror(&account, &name).map_err(api_err)?)
        }
        MirrorCmd::Show { name } => {
            print_mirror(cx, &c.describe_mirror(&account, &name).map_err(api_err)?)
        }
        MirrorCmd::List => {
            let ms = c.list_mirrors(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&ms);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = ms
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        m.url.clone(),
                        m.distribution.clone(),
                        m.packages.to_string(),
                    ]
                })
                .collect();
            output::table(&["NAME", "URL", "DISTRIBUTION", "PACKAGES"], &rows);
        }
        MirrorCmd::Drop { name } => {
            c.drop_mirror(&account, &name).map_err(api_err)?;
            if !cx.json() {
                println!("Dropped mirror {name}.");
            }
        }
    }
    Ok(())
}

pub fn db(cx: &Context, cmd: DbCmd) -> Result<()> {
    let c = cx.client()?;
    let DbCmd::Cleanup { apply } = cmd;
    let r = c.cleanup_db(apply).map_err(api_err)?;
    if cx.json() {
        {
            output::json(&r);
            return Ok(());
        }
    }
    for p in &r.packages {
        println!("package    {p}");
    }
    for f in &r.pool_files {
        println!("pool file  {f}");
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} package record(s) and {} pool file(s){}",
        r.packages.len(),
        r.pool_files.len(),
        if r.dry_run {
            " (dry run; pass --apply)"
        } else {
            ""
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::KeyFormat;
    use std::path::Path;

    #[test]
    fn key_format_follows_the_file_name_apt_reads() {
        for (file, armor, want) in [
            ("twine.gpg", false, KeyFormat::Binary),
            ("twine", false, KeyFormat::Binary),
            ("/etc/apt/keyrings/twine.pgp", false, KeyFormat::Binary),
            ("twine.asc", false, KeyFormat::Armored),
            ("twine.gpg", true, KeyFormat::Armored),
            ("twine.asc", true, KeyFormat::Armored),
        ] {
            assert_eq!(
                KeyFormat::for_file(Path::new(file), armor),
                want,
                "{file} {armor}"
            );
        }
    }
}
