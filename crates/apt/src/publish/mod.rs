//! Publishing: from package lists to a signed Debian repository tree.
//!
//! [`plan`] is pure: given the packages of each component and the [`PublishOptions`] it
//! renders every index file (with caches in an [`IndexCache`]) and the `Release` text, and
//! lists the pool files to place. [`Publisher::apply`] is the only step that touches the
//! disk, in an order that keeps every published state consistent for readers:
//!
//! 1. pool files (hard links into the content-addressed pool, or copies across devices);
//! 2. each index file, written to a temporary name, synced, linked under
//!    `by-hash/{MD5Sum,SHA1,SHA256,SHA512}/` and renamed to its canonical name;
//! 3. `Release`, `Release.gpg`, then `InRelease`, each by atomic rename;
//! 4. removal of by-hash and pool files that neither this publish nor any publish within
//!    the grace period references.
//!
//! A client that read the previous `InRelease` still finds every index by hash; one that
//! reads the new one finds the new indexes, since they were in place before it was.
//! `Release` lists MD5Sum, SHA1, SHA256 and SHA512, and every by-hash directory holds all
//! four names (hard links to one file): apt 2.6 fetches `by-hash/SHA512/…`, the strongest
//! hash listed, while other clients use `SHA256`.
//!
//! Callers set [`PublishOptions::date`] for each publish (it is an input so that planning
//! is deterministic); the daemon should pass the current time.

mod background;
mod index;
mod serve;
mod write;

pub use background::SharedPublisher;
pub use index::{Cancel, CompressionOptions, IndexCache};
pub use serve::{referenced_pool_files, PublishedFiles};
pub use write::{Completion, Pending, PublishReport, Publisher, PublisherOptions};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spindle_deb::index::INDEX_FIELDS;
use spindle_deb::names::{validate_architecture, validate_package_name};
use spindle_deb::reader::canonical_file_name;
use spindle_deb::FileDigests;

use crate::package::{PackageKey, PackageRef};
use index::{chunk_id, Bytes, Cancelled, ChunkId};

/// Why a publish cannot be planned or applied.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("invalid {what} `{value}`: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("package `{key}` has architecture `{arch}`, which publication `{dist}` does not carry ({carried})")]
    Architecture {
        dist: String,
        key: Box<PackageKey>,
        arch: String,
        carried: String,
    },
    #[error("packages `{first}` and `{second}` would both be published as `{path}`")]
    PoolPathClash {
        path: String,
        first: Box<PackageKey>,
        second: Box<PackageKey>,
    },
    #[error("`{path}` is already published with other content by distribution `{other}` under the same prefix")]
    SharedPoolClash { path: String, other: String },
    #[error("`{path}` cannot be published: its content (sha256 {sha256}) is not in the pool")]
    MissingPoolFile { path: String, sha256: String },
    #[error("nothing to publish: no components")]
    NoComponents,
    #[error("nothing to publish: no architectures (no packages and none given)")]
    NoArchitectures,
    #[error("I/O on `{path}` failed")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing the Release file failed")]
    Sign(#[source] crate::sign::SignError),
    #[error("the publish was superseded by a newer one before it finished")]
    Cancelled,
    #[error("publish state file `{path}` is corrupt")]
    State {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// A default for [`PublishOptions::defer_above`]: a republish after a small change builds
/// its few changed chunks at once (tens of milliseconds), while a first publish of
/// thousands of packages leaves xz and `Contents` (most of its CPU) to the background.
pub const DEFER_ABOVE: usize = 128;

/// What to publish and how to describe it in `Release`.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// `dists/<distribution>`; also the default `Suite` and `Codename`.
    pub distribution: String,
    /// A relative path under the publish root (`""` for the root itself).
    pub prefix: String,
    /// Architectures to publish; empty means those of the packages (besides `all`).
    pub architectures: Vec<String>,
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub codename: Option<String>,
    pub description: Option<String>,
    /// `Valid-Until` = `Date` + this.
    pub valid_for: Option<Duration>,
    /// The `Date` field (taken as an input so planning stays deterministic).
    pub date: SystemTime,
    pub not_automatic: bool,
    pub but_automatic_upgrades: bool,
    /// Publish `Contents-ARCH.gz` per component.
    pub contents: bool,
    /// Leave `Packages.xz` and `Contents-ARCH.gz` out of this publish when building one of
    /// them means compressing chunks of more than this many packages (a first publish, or
    /// the first after a restart): the plan says it is [`PublishPlan::deferred`], and
    /// [`Publisher::complete`] adds them in a second swap. `None` builds everything now.
    pub defer_above: Option<usize>,
    pub compression: CompressionOptions,
    /// Threads used to compress changed chunks.
    pub threads: usize,
}

impl PublishOptions {
    pub fn new(distribution: &str) -> PublishOptions {
        PublishOptions {
            distribution: distribution.to_string(),
            prefix: String::new(),
            architectures: Vec::new(),
            origin: None,
            label: None,
            suite: None,
            codename: None,
            description: None,
            valid_for: None,
            date: SystemTime::now(),
            not_automatic: false,
            but_automatic_upgrades: false,
            contents: true,
            defer_above: None,
            compression: CompressionOptions::default(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

/// The packages of one component.
#[derive(Debug, Clone)]
pub struct ComponentInput {
    pub name: String,
    pub packages: Vec<Arc<PackageRef>>,
}

/// A file of the published tree, relative to the publication's directory (the prefix).
#[derive(Debug, Clone)]
pub struct PlannedPoolFile {
    /// `pool/main/h/hello/hello_1.0_amd64.deb`
    pub path: String,
    pub sha256: String,
    pub size: u64,
}

/// An index file under `dists/<dist>/`, as a list of byte parts.
#[derive(Debug, Clone)]
pub struct PlannedIndex {
    /// Relative to `dists/<dist>/`, e.g. `main/binary-amd64/Packages.xz`.
    pub path: String,
    pub parts: Vec<Bytes>,
    pub digests: FileDigests,
    /// Whether the file is written to disk (the uncompressed `Packages` may only be listed).
    pub write: bool,
    /// Whether it is published under `by-hash/` too.
    pub by_hash: bool,
}

/// Everything [`Publisher::apply`] needs; produced by [`plan`].
#[derive(Debug, Clone)]
pub struct PublishPlan {
    pub prefix: String,
    pub distribution: String,
    pub pool_files: Vec<PlannedPoolFile>,
    pub indexes: Vec<PlannedIndex>,
    /// The unsigned `Release` text.
    pub release: String,
    /// Packages by component and architecture (for reports).
    pub counts: BTreeMap<(String, String), usize>,
    /// Some `Packages.xz` or `Contents` file was left out for a later, complete publish
    /// (see [`PublishOptions::defer_above`]).
    pub deferred: bool,
}

fn check_path_part(what: &'static str, value: &str, allow_slash: bool) -> Result<(), PublishError> {
    let invalid = |reason| {
        Err(PublishError::Invalid {
            what,
            value: value.to_string(),
            reason,
        })
    };
    if value.is_empty() && !allow_slash {
        return invalid("must not be empty");
    }
    for part in value.split('/').filter(|p| !p.is_empty() || !allow_slash) {
        if part.is_empty() || part == "." || part == ".." || part.starts_with('.') {
            return invalid("path parts must not be empty or start with `.`");
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+~".contains(&b))
        {
            return invalid("may only contain letters, digits and `._-+~`");
        }
    }
    if !allow_slash && value.contains('/') {
        return invalid("must not contain `/`");
    }
    if value.starts_with('/') {
        return invalid("must be relative");
    }
    Ok(())
}

fn check_field_value(what: &'static str, value: &str) -> Result<(), PublishError> {
    if value.contains(['\n', '\r']) || value.trim() != value || value.is_empty() {
        return Err(PublishError::Invalid {
            what,
            value: value.to_string(),
            reason: "must be a non-empty single line without surrounding spaces",
        });
    }
    Ok(())
}

/// The pool path of a package within a component, Debian style:
/// `pool/<component>/<l or libX>/<source>/<name>_<version>_<arch>.deb`.
///
/// A `Source` field that is not a valid package name (it could hold `..` or `/`) is not
/// used: the package's own name is, so a control file can't place a file outside `pool/`.
pub fn pool_path(component: &str, package: &PackageRef) -> String {
    let source = match package.source_name() {
        s if validate_package_name(s).is_ok() => s,
        _ => package.key().name(),
    };
    let dir = if source.starts_with("lib") && source.len() > 3 {
        &source[..4]
    } else {
        &source[..source.len().min(1)]
    };
    let key = package.key();
    format!(
        "pool/{component}/{dir}/{source}/{}",
        canonical_file_name(key.name(), key.version_text(), key.arch())
    )
}

/// Formats a time as `Release` wants it: `Sat, 28 Nov 2026 07:44:26 UTC`.
pub fn release_date(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] UTC"
    );
    t.format(&fmt).unwrap_or_default()
}

/// Plans a publish: renders every index and the `Release` text. Pure apart from the cache.
pub fn plan(
    options: &PublishOptions,
    components: &[ComponentInput],
    cache: &mut IndexCache,
) -> Result<PublishPlan, PublishError> {
    plan_with(options, components, cache, None)
}

/// [`plan`], stopping with [`PublishError::Cancelled`] between chunks once `cancel` says so
/// (chunks compressed until then stay cached).
pub(crate) fn plan_with(
    options: &PublishOptions,
    components: &[ComponentInput],
    cache: &mut IndexCache,
    cancel: Option<Cancel<'_>>,
) -> Result<PublishPlan, PublishError> {
    check_path_part("distribution", &options.distribution, false)?;
    check_path_part("prefix", &options.prefix, true)?;
    if components.is_empty() {
        return Err(PublishError::NoComponents);
    }
    let mut seen_components = BTreeSet::new();
    for c in components {
        check_path_part("component", &c.name, false)?;
        if !seen_components.insert(c.name.as_str()) {
            return Err(PublishError::Invalid {
                what: "component",
                value: c.name.clone(),
                reason: "listed twice",
            });
        }
    }
    for (what, v) in [
        ("origin", &options.origin),
        ("label", &options.label),
        ("suite", &options.suite),
        ("codename", &options.codename),
        ("description", &options.description),
    ] {
        if let Some(v) = v {
            check_field_value(what, v)?;
        }
    }

    let mut archs: BTreeSet<String> = options.architectures.iter().cloned().collect();
    for a in &archs {
        if validate_architecture(a).is_err() || a == "all" || a == "any" || a == "source" {
            return Err(PublishError::Invalid {
                what: "architecture",
                value: a.clone(),
                reason: "must be a concrete binary architecture",
            });
        }
    }
    if archs.is_empty() {
        let found: BTreeSet<&str> = components
            .iter()
            .flat_map(|c| c.packages.iter().map(|p| p.key().arch()))
            .filter(|a| *a != "all")
            .collect();
        archs = found.into_iter().map(str::to_string).collect();
    }
    if archs.is_empty() {
        return Err(PublishError::NoArchitectures);
    }
    let carried = archs.iter().cloned().collect::<Vec<_>>().join(" ");

    cache.begin();
    let opts = options.compression;
    let mut pool_files = Vec::new();
    let mut indexes = Vec::new();
    let mut counts = BTreeMap::new();
    let mut deferred = false;
    let cancelled = || cancel.is_some_and(|c| c());
    for comp in components {
        // Key order (callers usually pass it already, which the sort detects in one pass).
        let mut packages: Vec<&Arc<PackageRef>> = comp.packages.iter().collect();
        packages.sort_by(|a, b| a.key().cmp(b.key()));
        packages.dedup_by(|a, b| a.key() == b.key());
        for p in &packages {
            let arch = p.key().arch();
            if arch != "all" && !archs.contains(arch) {
                return Err(PublishError::Architecture {
                    dist: options.distribution.clone(),
                    key: Box::new(p.key().clone()),
                    arch: arch.to_string(),
                    carried,
                });
            }
        }
        pool_files.extend(component_pool_files(&comp.name, &packages)?);

        for arch in &archs {
            // Index order: by name, then version; `all` packages are merged in.
            let mut members: Vec<&Arc<PackageRef>> = packages
                .iter()
                .copied()
                .filter(|p| p.key().arch() == arch || p.key().arch() == "all")
                .collect();
            members.sort_by(|a, b| {
                a.key()
                    .name()
                    .cmp(b.key().name())
                    .then_with(|| a.key().version().cmp(b.key().version()))
                    .then_with(|| a.key().arch().cmp(b.key().arch()))
            });
            counts.insert((comp.name.clone(), arch.clone()), members.len());
            let chunks = IndexCache::split(&members, |p| p.key().name(), opts.chunk_target);
            let ids = cache.chunk_ids(&comp.name, arch, &chunks);
            let plain: Vec<(ChunkId, Bytes)> = chunks
                .iter()
                .zip(&ids)
                .map(|(chunk, id)| {
                    (
                        *id,
                        cache.plain_chunk(*id, || render_chunk(&comp.name, chunk)),
                    )
                })
                .collect();
            // An expensive xz is left for later; cheap gzip is always built now.
            let xz_preset = opts.xz_preset.filter(|p| {
                let missing = IndexCache::missing_members(&chunks, &ids, |id| cache.has_xz(id, *p));
                let defer = options.defer_above.is_some_and(|n| missing > n);
                deferred |= defer;
                !defer
            });
            let forms = cache
                .compress_chunks(&plain, opts.gzip_level, xz_preset, options.threads, cancel)
                .map_err(|Cancelled| PublishError::Cancelled)?;
            let dir = format!("{}/binary-{arch}", comp.name);

            let mut add = |cache: &mut IndexCache, name: &str, parts: Vec<Bytes>, write: bool| {
                let path = format!("{dir}/{name}");
                let tagged = file_ids(name, &opts, &ids);
                let digests = cache.digests(&path, &tagged, &parts);
                indexes.push(PlannedIndex {
                    path,
                    parts,
                    digests,
                    write,
                    by_hash: true,
                });
            };
            add(
                cache,
                "Packages",
                plain.iter().map(|(_, b)| b.clone()).collect(),
                opts.uncompressed,
            );
            add(
                cache,
                "Packages.gz",
                forms.iter().map(|f| f.gz.clone()).collect(),
                true,
            );
            if let Some(preset) = xz_preset {
                let blocks: Vec<&index::XzBlocks> =
                    forms.iter().filter_map(|f| f.xz.as_ref()).collect();
                let parts = index::assemble_xz(&blocks, preset);
                let path = format!("{dir}/Packages.xz");
                // Parts: header, one per chunk, then index and footer.
                let mut xz_ids = Vec::with_capacity(parts.len());
                xz_ids.push(chunk_id("xz-header", std::iter::once([preset as u8])));
                xz_ids.extend(file_ids("Packages.xz", &opts, &ids));
                xz_ids.push(chunk_id(&format!("xz-tail/{opts:?}"), ids.iter()));
                let digests = cache.digests(&path, &xz_ids, &parts);
                indexes.push(PlannedIndex {
                    path,
                    parts,
                    digests,
                    write: true,
                    by_hash: true,
                });
            }
            let mut release = String::new();
            let suite = options.suite.as_deref().unwrap_or(&options.distribution);
            let _ = writeln!(release, "Archive: {suite}");
            if let Some(o) = &options.origin {
                let _ = writeln!(release, "Origin: {o}");
            }
            if let Some(l) = &options.label {
                let _ = writeln!(release, "Label: {l}");
            }
            let _ = writeln!(release, "Component: {}", comp.name);
            let _ = writeln!(release, "Architecture: {arch}");
            let bytes = release.into_bytes();
            indexes.push(PlannedIndex {
                path: format!("{dir}/Release"),
                digests: spindle_deb::digest::digest_bytes(&bytes),
                parts: vec![Arc::new(bytes)],
                write: true,
                by_hash: false,
            });

            let tagged = file_ids("Contents.gz", &opts, &ids);
            let contents_now = options.contents && {
                let missing =
                    IndexCache::missing_members(&chunks, &tagged, |id| cache.has_contents(id));
                let defer = options.defer_above.is_some_and(|n| missing > n);
                deferred |= defer;
                !defer
            };
            if contents_now {
                let mut parts: Vec<Bytes> = Vec::with_capacity(chunks.len());
                for (chunk, id) in chunks.iter().zip(&tagged) {
                    if cancelled() {
                        return Err(PublishError::Cancelled);
                    }
                    parts.push(cache.contents_chunk(*id, opts.gzip_level, || contents_text(chunk)));
                }
                let path = format!("{}/Contents-{arch}.gz", comp.name);
                let digests = cache.digests(&path, &tagged, &parts);
                indexes.push(PlannedIndex {
                    path,
                    parts,
                    digests,
                    write: true,
                    by_hash: true,
                });
            }
        }
    }
    cache.evict();
    pool_files.sort_by(|a, b| a.path.cmp(&b.path));
    let release = render_release(options, components, &archs, &indexes);
    Ok(PublishPlan {
        prefix: options.prefix.trim_matches('/').to_string(),
        distribution: options.distribution.clone(),
        pool_files,
        indexes,
        release,
        counts,
        deferred,
    })
}

/// The pool files of one component's packages (in key order, without duplicate keys).
///
/// Two packages share a pool path only if they have the same name, architecture and
/// version apart from the epoch (file names leave it out), so only packages with the same
/// name and architecture — adjacent in key order — are compared.
fn component_pool_files(
    component: &str,
    packages: &[&Arc<PackageRef>],
) -> Result<Vec<PlannedPoolFile>, PublishError> {
    let mut out: Vec<PlannedPoolFile> = Vec::with_capacity(packages.len());
    let mut owners: Vec<&PackageKey> = Vec::with_capacity(packages.len());
    let mut run_start = 0;
    for (i, p) in packages.iter().enumerate() {
        let path = pool_path(component, p);
        if i > 0 {
            let prev = packages[i - 1].key();
            if prev.name() != p.key().name() || prev.arch() != p.key().arch() {
                run_start = out.len();
            }
        }
        if let Some(j) = (run_start..out.len()).find(|&j| out[j].path == path) {
            if out[j].sha256 != p.sha256() {
                return Err(PublishError::PoolPathClash {
                    path,
                    first: Box::new(owners[j].clone()),
                    second: Box::new(p.key().clone()),
                });
            }
            continue;
        }
        owners.push(p.key());
        out.push(PlannedPoolFile {
            path,
            sha256: p.sha256().to_string(),
            size: p.size(),
        });
    }
    Ok(out)
}

/// Per-file chunk identities: the content chunk ids mixed with the file kind and the
/// compression settings, so cached digests never outlive a settings change.
fn file_ids(kind: &str, opts: &CompressionOptions, ids: &[ChunkId]) -> Vec<ChunkId> {
    let tag = format!("{kind}/{opts:?}");
    ids.iter()
        .map(|id| chunk_id(&tag, std::iter::once(id)))
        .collect()
}

/// Appends a deb822 field the way [`spindle_deb::control::Paragraph`] renders one.
fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    if !value.is_empty() && !value.starts_with('\n') {
        out.push(' ');
    }
    out.push_str(value);
    out.push('\n');
}

/// Appends a package's `Packages` paragraph and the blank line after it: the control fields
/// in their order (without index fields a control file may carry), then `Filename`, `Size`
/// and the digests — what [`spindle_deb::index::packages_paragraph`] builds, written
/// straight from the record.
fn push_packages_entry(out: &mut String, p: &PackageRef, filename: &str) {
    for (name, value) in p.control().iter() {
        if !INDEX_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            push_field(out, name, value);
        }
    }
    push_field(out, "Filename", filename);
    push_field(out, "Size", &p.size().to_string());
    push_field(out, "MD5sum", p.md5());
    push_field(out, "SHA1", p.sha1());
    push_field(out, "SHA256", p.sha256());
    push_field(out, "SHA512", p.sha512());
    out.push('\n');
}

/// The `Packages` paragraphs of a chunk, each followed by a blank line.
fn render_chunk(component: &str, chunk: &[&Arc<PackageRef>]) -> Vec<u8> {
    let mut out = String::with_capacity(chunk.len() * 768);
    for p in chunk {
        push_packages_entry(&mut out, p, &pool_path(component, p));
    }
    out.shrink_to_fit();
    out.into_bytes()
}

fn contents_text(chunk: &[&Arc<PackageRef>]) -> Vec<u8> {
    let mut out = String::new();
    for p in chunk {
        let section = p.control().get("Section").unwrap_or("misc");
        for f in p.files() {
            let _ = writeln!(out, "{f} {section}/{}", p.key().name());
        }
    }
    out.into_bytes()
}

fn render_release(
    options: &PublishOptions,
    components: &[ComponentInput],
    archs: &BTreeSet<String>,
    indexes: &[PlannedIndex],
) -> String {
    let mut r = String::new();
    let suite = options.suite.as_deref().unwrap_or(&options.distribution);
    let codename = options.codename.as_deref().unwrap_or(&options.distribution);
    if let Some(o) = &options.origin {
        let _ = writeln!(r, "Origin: {o}");
    }
    if let Some(l) = &options.label {
        let _ = writeln!(r, "Label: {l}");
    }
    let _ = writeln!(r, "Suite: {suite}");
    let _ = writeln!(r, "Codename: {codename}");
    let _ = writeln!(r, "Date: {}", release_date(options.date));
    if let Some(v) = options.valid_for {
        let _ = writeln!(r, "Valid-Until: {}", release_date(options.date + v));
    }
    if options.not_automatic {
        let _ = writeln!(r, "NotAutomatic: yes");
        if options.but_automatic_upgrades {
            let _ = writeln!(r, "ButAutomaticUpgrades: yes");
        }
    }
    let _ = writeln!(
        r,
        "Architectures: {}",
        archs.iter().cloned().collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        r,
        "Components: {}",
        components
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    if let Some(d) = &options.description {
        let _ = writeln!(r, "Description: {d}");
    }
    let _ = writeln!(r, "Acquire-By-Hash: yes");
    let width = indexes
        .iter()
        .map(|i| i.digests.size.to_string().len())
        .max()
        .unwrap_or(1);
    for (section, pick) in [
        (
            "MD5Sum",
            (|d: &FileDigests| d.md5.clone()) as fn(&FileDigests) -> String,
        ),
        ("SHA1", |d| d.sha1.clone()),
        ("SHA256", |d| d.sha256.clone()),
        ("SHA512", |d| d.sha512.clone()),
    ] {
        let _ = writeln!(r, "{section}:");
        for i in indexes {
            let _ = writeln!(
                r,
                " {} {:>width$} {}",
                pick(&i.digests),
                i.digests.size,
                i.path
            );
        }
    }
    r
}

/// The by-hash section names and how to read each digest.
type DigestPick = fn(&FileDigests) -> &str;

pub(crate) const BY_HASH: [(&str, DigestPick); 4] = [
    ("MD5Sum", |d| &d.md5),
    ("SHA1", |d| &d.sha1),
    ("SHA256", |d| &d.sha256),
    ("SHA512", |d| &d.sha512),
];

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_deb::control::parse_paragraph;
    use spindle_deb::digest::digest_bytes;

    fn package(control: &str, files: &[&str]) -> Arc<PackageRef> {
        Arc::new(
            PackageRef::new(
                parse_paragraph(control).unwrap(),
                digest_bytes(control.as_bytes()),
                files.iter().map(|f| f.to_string()).collect(),
            )
            .unwrap(),
        )
    }

    fn simple(name: &str, version: &str) -> Arc<PackageRef> {
        package(
            &format!(
                "Package: {name}\nVersion: {version}\nArchitecture: amd64\nSection: utils\n\
                 Description: {name}\n more about {name}\n"
            ),
            &[&format!("usr/bin/{name}")],
        )
    }

    #[test]
    fn packages_entries_are_what_spindle_deb_renders() {
        for control in [
            "Package: hello\nVersion: 1:1.0-1\nArchitecture: amd64\nDescription: hi\n there\n",
            // Index fields in a control file are replaced, in any letter case.
            "Package: hello\nSize: 12\nVersion: 1.0\nArchitecture: all\nsha256: x\nEmpty:\n\
             Built-Using:\n a (= 1)\nMD5sum: y\n",
        ] {
            let p = package(control, &[]);
            let mut ours = String::new();
            push_packages_entry(&mut ours, &p, "pool/main/h/hello/hello_1.0_all.deb");
            let theirs = spindle_deb::index::packages_paragraph(
                &parse_paragraph(control).unwrap(),
                "pool/main/h/hello/hello_1.0_all.deb",
                &p.digests(),
            )
            .unwrap();
            assert_eq!(ours, format!("{theirs}\n"));
        }
    }

    #[test]
    fn a_source_field_is_used_only_if_it_is_a_package_name() {
        let path = |source: &str| {
            let p = package(
                &format!("Package: hello\nVersion: 1.0\nArchitecture: all\nSource: {source}\n"),
                &[],
            );
            pool_path("main", &p)
        };
        assert_eq!(path("hi (1.0)"), "pool/main/h/hi/hello_1.0_all.deb");
        assert_eq!(path("libhi"), "pool/main/libh/libhi/hello_1.0_all.deb");
        for bad in ["../../../etc", "a/b", "é"] {
            assert_eq!(path(bad), "pool/main/h/hello/hello_1.0_all.deb", "{bad}");
        }
    }

    #[test]
    fn a_warm_cache_plans_what_a_cold_one_does_after_any_change() {
        let mut options = PublishOptions::new("stable");
        options.date = std::time::UNIX_EPOCH;
        options.compression.chunk_target = 3;
        options.compression.xz_preset = Some(0);
        let plan_of = |packages: &[Arc<PackageRef>], cache: &mut IndexCache| {
            let comps = [ComponentInput {
                name: "main".into(),
                packages: packages.to_vec(),
            }];
            let p = plan(&options, &comps, cache).unwrap();
            let files: Vec<(String, Vec<u8>)> = p
                .indexes
                .iter()
                .map(|i| {
                    (
                        i.path.clone(),
                        i.parts.iter().flat_map(|b| b.to_vec()).collect(),
                    )
                })
                .collect();
            (p.release, files)
        };
        let mut packages: Vec<Arc<PackageRef>> = (0..40)
            .map(|i| simple(&format!("pkg{i:02}"), "1.0"))
            .collect();
        let mut cache = IndexCache::new();
        let mut check = |packages: &[Arc<PackageRef>]| {
            let warm = plan_of(packages, &mut cache);
            let cold = plan_of(packages, &mut IndexCache::new());
            assert_eq!(warm, cold);
            let whole = &warm
                .1
                .iter()
                .find(|(p, _)| p.ends_with("/Packages"))
                .unwrap()
                .1;
            String::from_utf8(whole.clone()).unwrap()
        };
        check(&packages);
        // Insert in the middle, at the start and at the end.
        for (at, name) in [(20, "pkg19a"), (0, "pkg"), (42, "pkg99")] {
            packages.insert(at, simple(name, "1.0"));
            assert!(check(&packages).contains(&format!("Package: {name}\n")));
        }
        // Remove one; replace one by an equal record that is another allocation; replace one
        // by a new version with the same key order position.
        packages.remove(10);
        check(&packages);
        packages[5] = simple(packages[5].key().name(), "1.0");
        check(&packages);
        let name = packages[30].key().name().to_string();
        packages[30] = simple(&name, "2.0");
        assert!(check(&packages).contains(&format!("Package: {name}\nVersion: 2.0\n")));
        // Input order does not matter.
        packages.reverse();
        check(&packages);
    }
}
