//! Package build specs: a small TOML manifest describing one binary package.
//!
//! ```toml
//! [package]
//! name = "hello-spindle"
//! version = "1.0-1"
//! architecture = "all"
//! maintainer = "Spindle <spindle@example.com>"
//! description = "greets the world"
//! long-description = """
//! A longer text.
//!
//! Blank lines become ` .` in the control file.
//! """
//! depends = ["bash (>= 5)", "coreutils | busybox"]   # or one string: "bash, coreutils"
//! section = "utils"
//! priority = "optional"
//! homepage = "https://example.com/hello"
//! compression = "xz"          # none, gzip, xz (default) or zstd
//! conffiles = ["/etc/hello.conf"]
//!
//! [scripts]
//! postinst = { file = "postinst.sh" }      # relative to this file's directory
//! prerm = "#!/bin/sh\nset -e\n"            # or inline
//!
//! [[files]]
//! source = "hello.sh"          # a file, or a directory copied recursively
//! dest = "/usr/bin/hello"
//! mode = "0755"                # or 0o755; default 0755 if the source is executable, else 0644
//! owner = "root"               # `root` or a numeric id; default 0
//! group = 0
//!
//! [[dirs]]
//! path = "/var/lib/hello"
//! mode = "0750"
//!
//! [[symlinks]]
//! path = "/usr/bin/hi"
//! target = "hello"
//! ```
//!
//! Other keys of `[package]`: `pre-depends`, `recommends`, `suggests`, `enhances`, `breaks`,
//! `conflicts`, `replaces`, `provides`, `essential` (bool), `multi-arch`.
//!
//! Unknown keys are errors. Every problem found is reported at once, each with the spec's
//! path and the `line:column` of the offending value.

use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::builder::{build_deb, check_install_path, BuildError, BuildOptions, BuiltDeb, Entry};
use crate::builder::{EntryData, Package};
use crate::compress::Compression;
use crate::control::{format_description, Paragraph};
use crate::names::{validate_binary_architecture, validate_package_name, NameError};
use crate::relation::{RelationError, Relations};
use crate::version::{Version, VersionError};

/// Why a spec could not be turned into a package.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("failed to read spec `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid package spec `{}`:{}", path.display(), render(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("package from spec `{path}` cannot be built")]
    Build {
        path: PathBuf,
        #[source]
        source: BuildError,
    },
}

fn render(path: &Path, diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("\n  {}:{d}", path.display()))
        .collect()
}

/// One problem in a spec, at a 1-based line and column (in characters).
#[derive(Debug)]
pub struct Diagnostic {
    pub line: usize,
    pub column: usize,
    pub problem: SpecProblem,
}

impl fmt::Display for Diagnostic {
    /// `line:column: problem: cause: cause...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.problem)?;
        let mut source = std::error::Error::source(&self.problem);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// What is wrong at a [`Diagnostic`]'s location.
#[derive(Debug, thiserror::Error)]
pub enum SpecProblem {
    #[error("{message}")]
    Toml { message: String },
    #[error("invalid package name")]
    Name(#[source] NameError),
    #[error("invalid version")]
    Version(#[source] VersionError),
    #[error("invalid architecture")]
    Architecture(#[source] NameError),
    #[error("invalid `{field}` relationship")]
    Relation {
        field: &'static str,
        #[source]
        source: RelationError,
    },
    #[error("`{field}` must be a single non-empty line")]
    NotOneLine { field: &'static str },
    #[error("`{field}` must be one of: {allowed}")]
    NotAllowed {
        field: &'static str,
        allowed: &'static str,
    },
    #[error("mode `{value}` is not an octal number between 0 and 07777")]
    Mode { value: String },
    #[error("owner `{value}` must be a numeric id or `root`")]
    Owner { value: String },
    #[error("compression `{value}` is not one of none, gzip, xz, zstd")]
    Compression { value: String },
    #[error("path `{path}` {reason}")]
    Path { path: String, reason: &'static str },
    #[error("`{path}` is installed more than once")]
    Duplicate { path: String },
    #[error("cannot read `{}`", path.display())]
    Source {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("`{}` is neither a file, a directory nor a symlink", path.display())]
    SourceType { path: PathBuf },
    #[error("conffile `{path}` is not a file installed by this package")]
    Conffile { path: String },
    #[error("maintainer script `{name}` does not start with `#!`")]
    NoShebang { name: &'static str },
    #[error("symlink target is empty")]
    EmptyTarget,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    package: RawPackage,
    #[serde(default)]
    scripts: RawScripts,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    dirs: Vec<RawDir>,
    #[serde(default)]
    symlinks: Vec<RawSymlink>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPackage {
    name: Spanned<String>,
    version: Spanned<String>,
    architecture: Spanned<String>,
    maintainer: Spanned<String>,
    description: Spanned<String>,
    long_description: Option<String>,
    section: Option<Spanned<String>>,
    priority: Option<Spanned<String>>,
    homepage: Option<Spanned<String>>,
    essential: Option<bool>,
    multi_arch: Option<Spanned<String>>,
    pre_depends: Option<Spanned<OneOrMany>>,
    depends: Option<Spanned<OneOrMany>>,
    recommends: Option<Spanned<OneOrMany>>,
    suggests: Option<Spanned<OneOrMany>>,
    enhances: Option<Spanned<OneOrMany>>,
    breaks: Option<Spanned<OneOrMany>>,
    conflicts: Option<Spanned<OneOrMany>>,
    replaces: Option<Spanned<OneOrMany>>,
    provides: Option<Spanned<OneOrMany>>,
    compression: Option<Spanned<String>>,
    #[serde(default)]
    conffiles: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScripts {
    preinst: Option<Spanned<Script>>,
    postinst: Option<Spanned<Script>>,
    prerm: Option<Spanned<Script>>,
    postrm: Option<Spanned<Script>>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum Script {
    Inline(String),
    File { file: String },
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Mode {
    Number(i64),
    Text(String),
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum Owner {
    Id(i64),
    Name(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    source: Spanned<String>,
    dest: Spanned<String>,
    mode: Option<Spanned<Mode>>,
    owner: Option<Spanned<Owner>>,
    group: Option<Spanned<Owner>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    path: Spanned<String>,
    mode: Option<Spanned<Mode>>,
    owner: Option<Spanned<Owner>>,
    group: Option<Spanned<Owner>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSymlink {
    path: Spanned<String>,
    target: Spanned<String>,
}

/// A spec whose fields are valid; sources are not read yet (see [`Spec::resolve`]).
#[derive(Debug)]
pub struct Spec {
    path: PathBuf,
    text: String,
    control: Paragraph,
    compression: Compression,
    scripts: Vec<(&'static str, Spanned<Script>)>,
    conffiles: Vec<Spanned<String>>,
    files: Vec<FileItem>,
    dirs: Vec<(Range<usize>, Entry)>,
    symlinks: Vec<(Range<usize>, Entry)>,
}

#[derive(Debug)]
struct FileItem {
    source: Spanned<String>,
    dest: Spanned<String>,
    mode: Option<u32>,
    uid: u32,
    gid: u32,
}

/// A spec turned into something the builder takes.
#[derive(Debug, Clone)]
pub struct ResolvedSpec {
    pub package: Package,
    pub compression: Compression,
}

impl Spec {
    /// The control paragraph the package will have (before `Installed-Size` is computed).
    pub fn control(&self) -> &Paragraph {
        &self.control
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Reads the source files and scripts, relative to the spec's directory.
    pub fn resolve(self) -> Result<ResolvedSpec, SpecError> {
        let path = self.path.clone();
        let (resolved, diagnostics) = self.resolve_collecting();
        fail_if_any(&path, diagnostics)?;
        Ok(resolved)
    }

    /// Resolves as far as possible, returning the problems found alongside.
    fn resolve_collecting(self) -> (ResolvedSpec, Vec<Diagnostic>) {
        let base = self.path.parent().unwrap_or(Path::new("")).to_path_buf();
        let mut diags = Diagnostics::new(&self.text);
        let mut control_files = std::collections::BTreeMap::new();
        for (name, script) in &self.scripts {
            let span = script.span();
            let data = match script.get_ref() {
                Script::Inline(text) => text.clone().into_bytes(),
                Script::File { file } => {
                    let path = base.join(file);
                    match std::fs::read(&path) {
                        Ok(data) => data,
                        Err(source) => {
                            diags.push(span, SpecProblem::Source { path, source });
                            continue;
                        }
                    }
                }
            };
            if !data.starts_with(b"#!") {
                diags.push(span, SpecProblem::NoShebang { name });
                continue;
            }
            control_files.insert(name.to_string(), data);
        }

        let mut entries: Vec<(Range<usize>, Entry)> = Vec::new();
        for item in &self.files {
            let source = base.join(item.source.get_ref());
            collect_source(&source, item.dest.get_ref(), item, &mut entries, &mut diags);
        }
        entries.extend(self.dirs.iter().cloned());
        entries.extend(self.symlinks.iter().cloned());

        let mut seen = std::collections::HashMap::new();
        for (span, entry) in &entries {
            if seen.insert(entry.path.as_str(), ()).is_some() {
                diags.push(
                    span.clone(),
                    SpecProblem::Duplicate {
                        path: entry.path.clone(),
                    },
                );
            }
        }
        for conffile in &self.conffiles {
            let ok = entries.iter().any(|(_, e)| {
                &e.path == conffile.get_ref() && matches!(e.data, EntryData::File(_))
            });
            if !ok {
                diags.push(
                    conffile.span(),
                    SpecProblem::Conffile {
                        path: conffile.get_ref().clone(),
                    },
                );
            }
        }
        let diagnostics = diags.finish();
        let resolved = ResolvedSpec {
            package: Package {
                control: self.control,
                control_files,
                conffiles: self
                    .conffiles
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                entries: entries.into_iter().map(|(_, e)| e).collect(),
            },
            compression: self.compression,
        };
        (resolved, diagnostics)
    }
}

/// Adds the entries for one `[[files]]` item: a file, a symlink, or a directory tree.
fn collect_source(
    source: &Path,
    dest: &str,
    item: &FileItem,
    entries: &mut Vec<(Range<usize>, Entry)>,
    diags: &mut Diagnostics<'_>,
) {
    let span = item.source.span();
    let meta = match std::fs::symlink_metadata(source) {
        Ok(m) => m,
        Err(e) => {
            diags.push(
                span,
                SpecProblem::Source {
                    path: source.to_path_buf(),
                    source: e,
                },
            );
            return;
        }
    };
    let entry = |data, mode| Entry {
        path: dest.to_string(),
        data,
        mode,
        uid: item.uid,
        gid: item.gid,
    };
    let dest_span = item.dest.span();
    if meta.file_type().is_symlink() {
        match std::fs::read_link(source) {
            Ok(target) => entries.push((
                dest_span,
                entry(
                    EntryData::Symlink(target.to_string_lossy().into_owned()),
                    0o777,
                ),
            )),
            Err(e) => diags.push(
                span,
                SpecProblem::Source {
                    path: source.to_path_buf(),
                    source: e,
                },
            ),
        }
    } else if meta.is_file() {
        match std::fs::read(source) {
            Ok(data) => {
                use std::os::unix::fs::PermissionsExt;
                let default = if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                };
                entries.push((
                    dest_span,
                    entry(EntryData::File(data), item.mode.unwrap_or(default)),
                ));
            }
            Err(e) => diags.push(
                span,
                SpecProblem::Source {
                    path: source.to_path_buf(),
                    source: e,
                },
            ),
        }
    } else if meta.is_dir() {
        entries.push((dest_span, entry(EntryData::Dir, 0o755)));
        let mut children = match std::fs::read_dir(source).and_then(|rd| {
            rd.map(|e| e.map(|e| e.file_name()))
                .collect::<Result<Vec<_>, _>>()
        }) {
            Ok(c) => c,
            Err(e) => {
                diags.push(
                    span,
                    SpecProblem::Source {
                        path: source.to_path_buf(),
                        source: e,
                    },
                );
                return;
            }
        };
        children.sort();
        for child in children {
            let name = child.to_string_lossy();
            collect_source(
                &source.join(&child),
                &format!("{dest}/{name}"),
                item,
                entries,
                diags,
            );
        }
    } else {
        diags.push(
            span,
            SpecProblem::SourceType {
                path: source.to_path_buf(),
            },
        );
    }
}

/// Collects diagnostics, converting byte offsets to line and column.
struct Diagnostics<'a> {
    text: &'a str,
    list: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    fn new(text: &'a str) -> Diagnostics<'a> {
        Diagnostics {
            text,
            list: Vec::new(),
        }
    }

    fn push(&mut self, span: Range<usize>, problem: SpecProblem) {
        let (line, column) = line_column(self.text, span.start);
        self.list.push(Diagnostic {
            line,
            column,
            problem,
        });
    }

    fn finish(self) -> Vec<Diagnostic> {
        self.list
    }
}

/// Fails with every diagnostic, in the order they appear in the file.
fn fail_if_any(path: &Path, mut diagnostics: Vec<Diagnostic>) -> Result<(), SpecError> {
    if diagnostics.is_empty() {
        return Ok(());
    }
    diagnostics.sort_by_key(|d| (d.line, d.column));
    Err(SpecError::Invalid {
        path: path.to_path_buf(),
        diagnostics,
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Reads and validates a spec file (without reading the files it names).
pub fn load_spec(path: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_spec(&text, path)
}

/// Reads a spec file and the files it names, reporting the problems of both steps at once.
pub fn load_and_resolve(path: &Path) -> Result<ResolvedSpec, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (spec, mut diagnostics) = parse_collecting(&text, path)?;
    let (resolved, more) = spec.resolve_collecting();
    diagnostics.extend(more);
    fail_if_any(path, diagnostics)?;
    Ok(resolved)
}

/// Reads a spec file and builds its package with the given `SOURCE_DATE_EPOCH`.
pub fn build_from_file(path: &Path, source_date_epoch: u64) -> Result<BuiltDeb, SpecError> {
    let resolved = load_and_resolve(path)?;
    let options = BuildOptions {
        compression: resolved.compression,
        source_date_epoch,
    };
    build_deb(&resolved.package, &options).map_err(|source| SpecError::Build {
        path: path.to_path_buf(),
        source,
    })
}

/// Validates spec text. `path` names the spec in errors and is the base for relative
/// source paths when the spec is [resolved](Spec::resolve).
pub fn parse_spec(text: &str, path: &Path) -> Result<Spec, SpecError> {
    let (spec, diagnostics) = parse_collecting(text, path)?;
    fail_if_any(path, diagnostics)?;
    Ok(spec)
}

/// Validates as far as possible, returning the problems found alongside; fails outright
/// only when the TOML cannot be read into the spec's shape at all.
fn parse_collecting(text: &str, path: &Path) -> Result<(Spec, Vec<Diagnostic>), SpecError> {
    let mut diags = Diagnostics::new(text);
    let raw: RawSpec = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            diags.push(
                e.span().unwrap_or(0..0),
                SpecProblem::Toml {
                    message: e.message().to_string(),
                },
            );
            return Err(SpecError::Invalid {
                path: path.to_path_buf(),
                diagnostics: diags.finish(),
            });
        }
    };
    let p = &raw.package;
    let mut control = Paragraph::new();
    let mut set = |name: &str, value: String| {
        // Values are validated as single lines before they get here, and descriptions are
        // formatted by `format_description`, so this cannot fail.
        let _ = control.set(name, value);
    };

    if let Err(e) = validate_package_name(p.name.get_ref()) {
        diags.push(p.name.span(), SpecProblem::Name(e));
    }
    set("Package", p.name.get_ref().clone());
    match Version::parse(p.version.get_ref()) {
        Ok(_) => {}
        Err(e) => diags.push(p.version.span(), SpecProblem::Version(e)),
    }
    set("Version", p.version.get_ref().trim().to_string());
    if let Err(e) = validate_binary_architecture(p.architecture.get_ref()) {
        diags.push(p.architecture.span(), SpecProblem::Architecture(e));
    }
    set("Architecture", p.architecture.get_ref().clone());
    let one_line = |field: &'static str, value: &Spanned<String>, diags: &mut Diagnostics| {
        let v = value.get_ref().trim();
        if v.is_empty() || v.contains('\n') {
            diags.push(value.span(), SpecProblem::NotOneLine { field });
            None
        } else {
            Some(v.to_string())
        }
    };
    if let Some(m) = one_line("maintainer", &p.maintainer, &mut diags) {
        set("Maintainer", m);
    }
    set("Installed-Size", "0".into());

    let relations = [
        ("Pre-Depends", &p.pre_depends),
        ("Depends", &p.depends),
        ("Recommends", &p.recommends),
        ("Suggests", &p.suggests),
        ("Enhances", &p.enhances),
        ("Breaks", &p.breaks),
        ("Conflicts", &p.conflicts),
        ("Replaces", &p.replaces),
        ("Provides", &p.provides),
    ];
    for (field, value) in relations {
        let Some(value) = value else { continue };
        let items: Vec<&str> = match value.get_ref() {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(String::as_str).collect(),
        };
        let mut rendered = Vec::new();
        for item in items {
            match Relations::parse(item) {
                Ok(r) => rendered.push(r.to_string()),
                Err(source) => diags.push(value.span(), SpecProblem::Relation { field, source }),
            }
        }
        if !rendered.is_empty() {
            set(field, rendered.join(", "));
        }
    }

    if let Some(section) = &p.section {
        if let Some(v) = one_line("section", section, &mut diags) {
            set("Section", v);
        }
    }
    if let Some(priority) = &p.priority {
        const ALLOWED: &str = "required important standard optional extra";
        if ALLOWED.split(' ').any(|a| a == priority.get_ref()) {
            set("Priority", priority.get_ref().clone());
        } else {
            diags.push(
                priority.span(),
                SpecProblem::NotAllowed {
                    field: "priority",
                    allowed: ALLOWED,
                },
            );
        }
    }
    if let Some(multi_arch) = &p.multi_arch {
        const ALLOWED: &str = "no same foreign allowed";
        if ALLOWED.split(' ').any(|a| a == multi_arch.get_ref()) {
            set("Multi-Arch", multi_arch.get_ref().clone());
        } else {
            diags.push(
                multi_arch.span(),
                SpecProblem::NotAllowed {
                    field: "multi-arch",
                    allowed: ALLOWED,
                },
            );
        }
    }
    if p.essential == Some(true) {
        set("Essential", "yes".into());
    }
    if let Some(homepage) = &p.homepage {
        if let Some(v) = one_line("homepage", homepage, &mut diags) {
            set("Homepage", v);
        }
    }
    if let Some(short) = one_line("description", &p.description, &mut diags) {
        let long = p.long_description.as_deref().unwrap_or("");
        set("Description", format_description(&short, long));
    }

    let compression = match &p.compression {
        None => Compression::default(),
        Some(c) => match Compression::from_name(c.get_ref()) {
            Some(c) => c,
            None => {
                diags.push(
                    c.span(),
                    SpecProblem::Compression {
                        value: c.get_ref().clone(),
                    },
                );
                Compression::default()
            }
        },
    };

    let check_path = |path: &Spanned<String>, diags: &mut Diagnostics| {
        if let Err(reason) = check_install_path(path.get_ref()) {
            diags.push(
                path.span(),
                SpecProblem::Path {
                    path: path.get_ref().clone(),
                    reason,
                },
            );
        }
    };
    let mode = |m: &Option<Spanned<Mode>>, diags: &mut Diagnostics| -> Option<u32> {
        let m = m.as_ref()?;
        let parsed = match m.get_ref() {
            Mode::Number(n) => u32::try_from(*n).ok(),
            Mode::Text(t) => u32::from_str_radix(t.trim_start_matches("0o"), 8).ok(),
        };
        match parsed {
            Some(v) if v <= 0o7777 => Some(v),
            _ => {
                let value = match m.get_ref() {
                    Mode::Number(n) => n.to_string(),
                    Mode::Text(t) => t.clone(),
                };
                diags.push(m.span(), SpecProblem::Mode { value });
                None
            }
        }
    };
    let owner = |o: &Option<Spanned<Owner>>, diags: &mut Diagnostics| -> u32 {
        let Some(o) = o else { return 0 };
        match o.get_ref() {
            Owner::Id(n) if (0..=i64::from(u32::MAX)).contains(n) => *n as u32,
            Owner::Name(name) if name == "root" => 0,
            other => {
                let value = match other {
                    Owner::Id(n) => n.to_string(),
                    Owner::Name(s) => s.clone(),
                };
                diags.push(o.span(), SpecProblem::Owner { value });
                0
            }
        }
    };

    let mut files = Vec::new();
    for f in &raw.files {
        check_path(&f.dest, &mut diags);
        files.push(FileItem {
            source: f.source.clone(),
            dest: f.dest.clone(),
            mode: mode(&f.mode, &mut diags),
            uid: owner(&f.owner, &mut diags),
            gid: owner(&f.group, &mut diags),
        });
    }
    let mut dirs = Vec::new();
    for d in &raw.dirs {
        check_path(&d.path, &mut diags);
        dirs.push((
            d.path.span(),
            Entry {
                path: d.path.get_ref().clone(),
                data: EntryData::Dir,
                mode: mode(&d.mode, &mut diags).unwrap_or(0o755),
                uid: owner(&d.owner, &mut diags),
                gid: owner(&d.group, &mut diags),
            },
        ));
    }
    let mut symlinks = Vec::new();
    for s in &raw.symlinks {
        check_path(&s.path, &mut diags);
        if s.target.get_ref().is_empty() {
            diags.push(s.target.span(), SpecProblem::EmptyTarget);
        }
        symlinks.push((
            s.path.span(),
            Entry {
                path: s.path.get_ref().clone(),
                data: EntryData::Symlink(s.target.get_ref().clone()),
                mode: 0o777,
                uid: 0,
                gid: 0,
            },
        ));
    }
    for c in &raw.package.conffiles {
        check_path(c, &mut diags);
    }
    let diagnostics = diags.finish();

    let RawSpec {
        scripts, package, ..
    } = raw;
    let conffiles = package.conffiles;
    let scripts = [
        ("preinst", scripts.preinst),
        ("postinst", scripts.postinst),
        ("prerm", scripts.prerm),
        ("postrm", scripts.postrm),
    ]
    .into_iter()
    .filter_map(|(name, s)| Some((name, s?)))
    .collect();
    let spec = Spec {
        path: path.to_path_buf(),
        text: text.to_string(),
        control,
        compression,
        scripts,
        conffiles,
        files,
        dirs,
        symlinks,
    };
    Ok((spec, diagnostics))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"[package]
name = "demo"
version = "1.0-1"
architecture = "all"
maintainer = "A <a@example.com>"
description = "demo package"
"#;

    /// Parses `text` and returns each diagnostic as `line:column: message`.
    fn diagnostics(text: &str) -> Vec<String> {
        match parse_spec(text, Path::new("/specs/demo.toml")) {
            Ok(_) => Vec::new(),
            Err(SpecError::Invalid { path, diagnostics }) => {
                assert_eq!(path, Path::new("/specs/demo.toml"));
                diagnostics.iter().map(ToString::to_string).collect()
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn minimal_spec_gives_control() {
        let spec = parse_spec(MINIMAL, Path::new("demo.toml")).unwrap();
        assert_eq!(
            spec.control().to_string(),
            "Package: demo\nVersion: 1.0-1\nArchitecture: all\nMaintainer: A <a@example.com>\nInstalled-Size: 0\nDescription: demo package\n"
        );
        assert_eq!(spec.compression(), Compression::Xz);
    }

    #[test]
    fn relationships_are_canonicalised() {
        let text = format!(
            "{MINIMAL}depends = [\"libc6(>=2.36)\", \"a|b\"]\nconflicts = \"old-demo, older-demo (<< 1)\"\n"
        );
        let spec = parse_spec(&text, Path::new("demo.toml")).unwrap();
        assert_eq!(
            spec.control().get("Depends"),
            Some("libc6 (>= 2.36), a | b")
        );
        assert_eq!(
            spec.control().get("Conflicts"),
            Some("old-demo, older-demo (<< 1)")
        );
    }

    #[test]
    fn errors_have_positions() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[package]\nname = \"demo\"\nbogus = 1\n",
                &["3:1: unknown field `bogus`"],
            ),
            ("[package\n", &["1:9: "]),
            (
                "[package]\nname = \"demo\"\n",
                &["1:1: missing field `version`"],
            ),
            (
                "[package]\nname = \"Demo_1\"\nversion = \"v1\"\narchitecture = \"any\"\nmaintainer = \"\"\ndescription = \"x\"\ncompression = \"lz4\"\npriority = \"urgent\"\ndepends = [\"ok\", \"bad (>= )\"]\n",
                &[
                    "2:8: invalid package name",
                    "3:11: invalid version",
                    "4:16: invalid architecture",
                    "5:14: `maintainer` must be a single non-empty line",
                    "7:15: compression `lz4`",
                    "8:12: `priority` must be one of",
                    "9:11: invalid `Depends` relationship",
                ],
            ),
            (
                &format!("{MINIMAL}conffiles = [\"etc/x\"]\n[[files]]\nsource = \"a\"\ndest = \"/usr/../x\"\nmode = \"0999\"\nowner = \"www-data\"\n[[dirs]]\npath = \"/var/\"\nmode = 0o755\ngroup = -1\n[[symlinks]]\npath = \"/x\"\ntarget = \"\"\n"),
                &[
                    "7:14: path `etc/x` must be absolute",
                    "10:8: path `/usr/../x` must not contain",
                    "11:8: mode `0999`",
                    "12:9: owner `www-data`",
                    "14:8: path `/var/`",
                    "16:9: owner `-1`",
                    "19:10: symlink target is empty",
                ],
            ),
        ];
        for (text, expected) in cases {
            let got = diagnostics(text);
            assert_eq!(got.len(), expected.len(), "{text}\n{got:#?}");
            for (g, e) in got.iter().zip(expected.iter()) {
                assert!(g.starts_with(e), "{text}\nwanted {e}\ngot {g}");
            }
        }
    }

    #[test]
    fn error_message_names_the_file() {
        let err = parse_spec("[package]\nname = 1\n", Path::new("/specs/x.toml")).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("/specs/x.toml:2:8: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn resolve_errors_point_at_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("noshebang.sh"), "echo hi\n").unwrap();
        let text = format!(
            "{MINIMAL}conffiles = [\"/etc/dir\"]\n[scripts]\npostinst = {{ file = \"missing.sh\" }}\npreinst = {{ file = \"noshebang.sh\" }}\nprerm = \"#!/bin/sh\"\n[[files]]\nsource = \"a.txt\"\ndest = \"/usr/a\"\n[[files]]\nsource = \"gone.txt\"\ndest = \"/usr/b\"\n[[files]]\nsource = \"a.txt\"\ndest = \"/usr/a\"\n[[dirs]]\npath = \"/etc/dir\"\n"
        );
        let spec_path = dir.path().join("demo.toml");
        let spec = parse_spec(&text, &spec_path).unwrap();
        let err = spec.resolve().unwrap_err();
        let SpecError::Invalid { path, diagnostics } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(path, &spec_path);
        let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        let expected = [
            "7:14: conffile `/etc/dir` is not a file installed by this package",
            "9:12: cannot read",
            "10:11: maintainer script `preinst` does not start with `#!`",
            "16:10: cannot read",
            "20:8: `/usr/a` is installed more than once",
        ];
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (g, e) in got.iter().zip(expected) {
            assert!(g.starts_with(e), "wanted {e}, got {g}");
        }
        assert!(
            got[1].contains("missing.sh") && got[1].contains("No such file"),
            "{}",
            got[1]
        );
    }

    #[test]
    fn loading_reports_both_phases_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let spec_path = dir.path().join("demo.toml");
        let text = MINIMAL.replace("demo\"", "Demo\"")
            + "[[files]]\nsource = \"missing\"\ndest = \"/usr/x\"\n";
        std::fs::write(&spec_path, text).unwrap();
        let err = load_and_resolve(&spec_path).unwrap_err();
        let SpecError::Invalid { diagnostics, .. } = &err else {
            panic!("{err:?}");
        };
        let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("2:8: invalid package name"),
            "{}",
            got[0]
        );
        assert!(got[1].starts_with("8:10: cannot read"), "{}", got[1]);
        let message = err.to_string();
        assert!(message.contains("demo.toml:8:10: cannot read"), "{message}");
    }

    #[test]
    fn directory_sources_are_copied_recursively() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("b.txt"), "b").unwrap();
        std::fs::write(tree.join("sub/run"), "#!/bin/sh").unwrap();
        std::fs::set_permissions(tree.join("sub/run"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::os::unix::fs::symlink("b.txt", tree.join("link")).unwrap();
        let text = format!("{MINIMAL}[[files]]\nsource = \"tree\"\ndest = \"/opt/t\"\nowner = 7\n");
        let resolved = parse_spec(&text, &dir.path().join("x.toml"))
            .unwrap()
            .resolve()
            .unwrap();
        let got: Vec<(String, u32, u32, bool)> = resolved
            .package
            .entries
            .iter()
            .map(|e| {
                (
                    e.path.clone(),
                    e.mode,
                    e.uid,
                    matches!(e.data, EntryData::Dir),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/opt/t".to_string(), 0o755, 7, true),
                ("/opt/t/b.txt".to_string(), 0o644, 7, false),
                ("/opt/t/link".to_string(), 0o777, 7, false),
                ("/opt/t/sub".to_string(), 0o755, 7, true),
                ("/opt/t/sub/run".to_string(), 0o755, 7, false),
            ]
        );
        assert_eq!(
            resolved.package.entries[2].data,
            EntryData::Symlink("b.txt".into())
        );
    }

    #[test]
    fn line_columns() {
        let text = "ab\ncdé\nf";
        for (offset, want) in [
            (0, (1, 1)),
            (2, (1, 3)),
            (3, (2, 1)),
            (7, (2, 4)),
            (8, (3, 1)),
            (99, (3, 2)),
        ] {
            assert_eq!(line_column(text, offset), want, "{offset}");
        }
    }
}
