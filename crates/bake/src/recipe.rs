//! Reading a recipe: Packer's HCL2 syntax (a subset) into a validated [`Recipe`].
//!
//! Parsing keeps byte spans (through `hcl-edit`), so every problem names `file:line:column`;
//! all problems are collected and returned at once. Expressions are evaluated with `var.*` and
//! `local.*` in scope (string templates, lists, objects and operators; no functions yet).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use hcl::edit::structure::{Block, Body, Structure};
use hcl::edit::Span;
use hcl::eval::Evaluate;
use hcl::Value;

/// A position in a recipe (one-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// One problem with a recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    pub file: String,
    pub pos: Option<Pos>,
    pub message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file, p.line, p.col, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a recipe, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diags(pub Vec<Diag>);

impl fmt::Display for Diags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// What a build starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// An empty tree, for static binaries.
    Scratch,
    /// Debian `SUITE`, minbase, bootstrapped by Spindle.
    Debian { suite: String },
    /// An image in the bake store, `NAME:TAG` or `ami-…`.
    Image(String),
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Base::Scratch => write!(f, "scratch"),
            Base::Debian { suite } => write!(f, "debian:{suite}"),
            Base::Image(r) => write!(f, "image:{r}"),
        }
    }
}

/// A `source "spindle" "NAME"` block: the base and what the finished image runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
    pub base: Base,
    /// `name:tag` the finished image gets (default `NAME:latest`).
    pub image_name: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub exposed_ports: Vec<String>,
    pub pos: Pos,
}

/// What a provisioner does.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Step {
    /// Install packages with apt-get from the host's mirror and, if given, a signed repo (a
    /// Spindle repo served by the daemon).
    Apt {
        packages: Vec<String>,
        repo: Option<AptRepo>,
    },
    /// Copy a host file or directory into the tree.
    File {
        source: PathBuf,
        destination: String,
        mode: Option<u32>,
    },
    /// Run a shell script inside the tree (`/bin/sh -e`).
    Shell {
        script: String,
        /// The script file it came from, if any (for messages).
        script_file: Option<PathBuf>,
        env: Vec<String>,
        network: bool,
    },
    /// Start the app, request URLs (inside the tree's private network), stop it.
    Warm {
        command: String,
        urls: Vec<String>,
        timeout_secs: u64,
    },
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Apt { .. } => "apt",
            Step::File { .. } => "file",
            Step::Shell { .. } => "shell",
            Step::Warm { .. } => "warm",
        }
    }
}

/// A signed apt repository an `apt` step installs from (besides the base's own sources).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AptRepo {
    /// `http://…` — the directory holding `dists/`.
    pub url: String,
    /// The public keyring (binary, as `gpgv --keyring` and apt's `signed-by` take) on the host.
    pub keyring: PathBuf,
    /// `distribution`, default `stable`.
    pub distribution: String,
    /// `component`, default `main`.
    pub component: String,
}

/// One `provisioner` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioner {
    pub step: Step,
    /// Source names (`spindle.NAME`) this runs for; empty means all.
    pub only: Vec<String>,
    pub except: Vec<String>,
    pub pos: Pos,
}

/// One `post-processor` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostProcessor {
    /// Packer-style `manifest.json` (`output`, default `manifest.json`).
    Manifest { output: PathBuf },
    /// sha256 sums of the artifacts (`output`, default `checksums.sha256`).
    Checksum { output: PathBuf },
    /// An oci-archive (`output`, default `image.oci.tar`).
    OciArchive { output: PathBuf },
    /// An OCI image layout directory (`output`, default `image.oci`).
    OciLayout { output: PathBuf },
    /// A qcow2 disk for a VM (`output`, default `image.qcow2`; `kernel`, default
    /// `debian:bookworm`; `size` in MiB).
    Qcow2(crate::qcow2::Qcow2Spec),
}

/// A `build` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub name: String,
    /// `spindle.NAME` references, in order.
    pub sources: Vec<String>,
    pub provisioners: Vec<Provisioner>,
    pub post_processors: Vec<(PostProcessor, Pos)>,
    pub pos: Pos,
}

/// A validated recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// The file name used in messages.
    pub file: String,
    /// Relative paths in the recipe are relative to this directory.
    pub dir: PathBuf,
    pub variables: BTreeMap<String, String>,
    pub sources: BTreeMap<String, Source>,
    pub builds: Vec<Build>,
}

/// Variable values given on the command line (`-var`) and in files (`-var-file`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VarInputs {
    /// `-var K=V`, in order (later wins).
    pub vars: Vec<(String, String)>,
    /// `-var-file` contents: (file name for messages, text).
    pub files: Vec<(String, String)>,
}

impl VarInputs {
    /// Parses a `-var K=V` argument.
    pub fn push_var(&mut self, arg: &str) -> Result<(), String> {
        let (k, v) = arg
            .split_once('=')
            .ok_or_else(|| format!("-var `{arg}`: expected NAME=VALUE"))?;
        self.vars.push((k.trim().to_string(), v.to_string()));
        Ok(())
    }
}

struct Reader<'a> {
    src: &'a str,
    file: String,
    diags: Vec<Diag>,
    ctx: hcl::eval::Context<'static>,
    /// Declared variables without a value: each is reported once where it is declared, so a
    /// use of one is not reported again (as an undeclared variable).
    unset: std::collections::BTreeSet<String>,
}

impl Reader<'_> {
    fn pos(&self, span: Option<std::ops::Range<usize>>) -> Option<Pos> {
        let off = span?.start.min(self.src.len());
        let before = &self.src[..off];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map(|i| off - i).unwrap_or(off + 1);
        Some(Pos { line, col })
    }

    fn err(&mut self, span: Option<std::ops::Range<usize>>, message: impl Into<String>) {
        let pos = self.pos(span);
        self.diags.push(Diag {
            file: self.file.clone(),
            pos,
            message: message.into(),
        });
    }

    fn eval(&mut self, expr: &hcl::edit::expr::Expression) -> Option<Value> {
        let e: hcl::Expression = expr.clone().into();
        match e.evaluate(&self.ctx) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.to_string();
                let key = msg
                    .strip_prefix("no such key: `")
                    .and_then(|m| m.split('`').next())
                    .unwrap_or_default()
                    .to_string();
                let text = expr.to_string();
                if self.unset.contains(&key) && text.contains(&format!("var.{key}")) {
                    return None;
                }
                let msg = if !key.is_empty() && text.contains(&format!("var.{key}")) {
                    format!(
                        "unknown variable `var.{key}`; declare it with variable \"{key}\" {{ … }}"
                    )
                } else if !key.is_empty() && text.contains(&format!("local.{key}")) {
                    format!("unknown local `local.{key}`; define it in a `locals` block")
                } else {
                    msg
                };
                self.err(expr.span(), msg);
                None
            }
        }
    }
}

/// The attributes and nested blocks of one block, consumed by name so that whatever is left
/// is reported as unknown.
struct Fields<'b> {
    what: String,
    attrs: Vec<(&'b hcl::edit::structure::Attribute, bool)>,
    blocks: Vec<&'b Block>,
    pos: Option<std::ops::Range<usize>>,
}

impl<'b> Fields<'b> {
    fn new(what: String, body: &'b Body, span: Option<std::ops::Range<usize>>) -> Self {
        let mut attrs = Vec::new();
        let mut blocks = Vec::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => attrs.push((a, false)),
                Structure::Block(b) => blocks.push(b),
            }
        }
        Fields {
            what,
            attrs,
            blocks,
            pos: span,
        }
    }

    fn take(&mut self, r: &mut Reader<'_>, key: &str) -> Option<(Value, Option<Pos>)> {
        let (a, used) = self.attrs.iter_mut().find(|(a, _)| a.key.as_str() == key)?;
        *used = true;
        let pos = r.pos(a.span());
        r.eval(&a.value).map(|v| (v, pos))
    }

    fn span_of(&self, key: &str) -> Option<std::ops::Range<usize>> {
        self.attrs
            .iter()
            .find(|(a, _)| a.key.as_str() == key)
            .and_then(|(a, _)| a.value.span())
    }

    fn string(&mut self, r: &mut Reader<'_>, key: &str) -> Option<String> {
        let span = self.span_of(key);
        match self.take(r, key)? {
            (Value::String(s), _) => Some(s),
            (Value::Number(n), _) => Some(n.to_string()),
            (Value::Bool(b), _) => Some(b.to_string()),
            (other, _) => {
                r.err(
                    span,
                    format!("`{key}` must be a string, not {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn bool(&mut self, r: &mut Reader<'_>, key: &str) -> Option<bool> {
        let span = self.span_of(key);
        match self.take(r, key)? {
            (Value::Bool(b), _) => Some(b),
            (other, _) => {
                r.err(
                    span,
                    format!("`{key}` must be true or false, not {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn strings(&mut self, r: &mut Reader<'_>, key: &str) -> Option<Vec<String>> {
        let span = self.span_of(key);
        match self.take(r, key)? {
            (Value::Array(items), _) => {
                let mut out = Vec::new();
                for v in items {
                    match v {
                        Value::String(s) => out.push(s),
                        Value::Number(n) => out.push(n.to_string()),
                        other => {
                            r.err(
                                span.clone(),
                                format!(
                                    "`{key}` must be a list of strings; found {}",
                                    type_name(&other)
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            (other, _) => {
                r.err(
                    span,
                    format!(
                        "`{key}` must be a list of strings, not {}",
                        type_name(&other)
                    ),
                );
                None
            }
        }
    }

    /// Reports attributes nobody asked for, and nested blocks (none of our blocks have any
    /// except `build`, which takes them out first).
    fn finish(self, r: &mut Reader<'_>, known: &[&str]) {
        for (a, used) in &self.attrs {
            if !used {
                r.err(
                    a.span(),
                    format!(
                        "unknown attribute `{}` in {}; expected one of: {}",
                        a.key.as_str(),
                        self.what,
                        known.join(", ")
                    ),
                );
            }
        }
        for b in &self.blocks {
            r.err(
                b.span(),
                format!("unexpected block `{}` in {}", b.ident.as_str(), self.what),
            );
        }
        let _ = self.pos;
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn labels(b: &Block) -> Vec<String> {
    b.labels.iter().map(|l| l.as_str().to_string()).collect()
}

/// Reads a recipe. `file` names it in messages; `dir` anchors its relative paths.
pub fn parse(file: &str, dir: &Path, src: &str, inputs: &VarInputs) -> Result<Recipe, Diags> {
    let mut r = Reader {
        src,
        file: file.to_string(),
        diags: Vec::new(),
        ctx: hcl::eval::Context::new(),
        unset: Default::default(),
    };
    let body = match hcl::edit::parser::parse_body(src) {
        Ok(b) => b,
        Err(e) => {
            let loc = e.location();
            return Err(Diags(vec![Diag {
                file: file.to_string(),
                pos: Some(Pos {
                    line: loc.line(),
                    col: loc.column(),
                }),
                message: format!("syntax error: {}", e.message()),
            }]));
        }
    };

    // Pass 1: variables, with -var-file and -var applied on top of their defaults.
    let mut vars: BTreeMap<String, Option<Value>> = BTreeMap::new();
    let mut var_spans = BTreeMap::new();
    for s in body.iter() {
        match s {
            Structure::Attribute(a) => r.err(
                a.span(),
                format!(
                    "unexpected attribute `{}` at the top level; expected blocks variable, locals, source, build",
                    a.key.as_str()
                ),
            ),
            Structure::Block(b) if b.ident.as_str() == "variable" => {
                let ls = labels(b);
                if ls.len() != 1 {
                    r.err(b.span(), "`variable` takes one label: variable \"NAME\" { … }");
                    continue;
                }
                let mut f = Fields::new(format!("variable \"{}\"", ls[0]), &b.body, b.span());
                let default = f.take(&mut r, "default").map(|(v, _)| v);
                let _ = f.take(&mut r, "description");
                let _ = f.take(&mut r, "sensitive");
                // `type` is an expression like `string`; we accept and ignore it.
                if let Some((a, used)) = f.attrs.iter_mut().find(|(a, _)| a.key.as_str() == "type")
                {
                    *used = true;
                    let _ = a;
                }
                f.finish(&mut r, &["type", "default", "description", "sensitive"]);
                if vars.insert(ls[0].clone(), default).is_some() {
                    r.err(b.span(), format!("variable `{}` is declared twice", ls[0]));
                }
                var_spans.insert(ls[0].clone(), b.span());
            }
            Structure::Block(_) => {}
        }
    }
    for (fname, text) in &inputs.files {
        match hcl::edit::parser::parse_body(text) {
            Err(e) => r.diags.push(Diag {
                file: fname.clone(),
                pos: Some(Pos {
                    line: e.location().line(),
                    col: e.location().column(),
                }),
                message: format!("syntax error: {}", e.message()),
            }),
            Ok(vb) => {
                let mut vr = Reader {
                    src: text,
                    file: fname.clone(),
                    diags: Vec::new(),
                    ctx: hcl::eval::Context::new(),
                    unset: Default::default(),
                };
                for s in vb.iter() {
                    match s {
                        Structure::Attribute(a) => {
                            let name = a.key.as_str().to_string();
                            if !vars.contains_key(&name) {
                                vr.err(
                                    a.span(),
                                    format!(
                                        "unknown variable `{name}`; the recipe declares: {}",
                                        names(&vars)
                                    ),
                                );
                            } else if let Some(v) = vr.eval(&a.value) {
                                if let Some(slot) = vars.get_mut(&name) {
                                    *slot = Some(v);
                                }
                            }
                        }
                        Structure::Block(b) => {
                            vr.err(b.span(), "a variable file holds only NAME = VALUE lines")
                        }
                    }
                }
                r.diags.extend(vr.diags);
            }
        }
    }
    for (k, v) in &inputs.vars {
        if !vars.contains_key(k) {
            r.diags.push(Diag {
                file: "-var".into(),
                pos: None,
                message: format!(
                    "unknown variable `{k}`; the recipe declares: {}",
                    names(&vars)
                ),
            });
        } else if let Some(slot) = vars.get_mut(k) {
            *slot = Some(Value::String(v.clone()));
        }
    }
    let mut var_obj = hcl::Map::new();
    let mut variables = BTreeMap::new();
    for (k, v) in &vars {
        match v {
            Some(v) => {
                variables.insert(k.clone(), value_to_string(v));
                var_obj.insert(k.clone(), v.clone());
            }
            None => {
                let span = var_spans.get(k).cloned().flatten();
                r.err(
                    span,
                    format!("variable `{k}` has no default and no value; pass -var {k}=VALUE"),
                );
                r.unset.insert(k.clone());
            }
        }
    }
    r.ctx.declare_var("var", Value::Object(var_obj));

    // Pass 2: locals, which may refer to variables and to each other in any order.
    let mut pending = Vec::new();
    for b in body.blocks().filter(|b| b.ident.as_str() == "locals") {
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => pending.push(a),
                Structure::Block(inner) => {
                    r.err(inner.span(), "`locals` holds only NAME = VALUE lines")
                }
            }
        }
    }
    let mut locals = hcl::Map::new();
    while !pending.is_empty() {
        r.ctx.declare_var("local", Value::Object(locals.clone()));
        let before = pending.len();
        pending.retain(|a| {
            let e: hcl::Expression = a.value.clone().into();
            match e.evaluate(&r.ctx) {
                Ok(v) => {
                    locals.insert(a.key.as_str().to_string(), v);
                    false
                }
                Err(_) => true,
            }
        });
        if pending.len() == before {
            // No progress: report each remaining local's own error.
            for a in std::mem::take(&mut pending) {
                r.eval(&a.value);
            }
        }
    }
    r.ctx.declare_var("local", Value::Object(locals));

    // Pass 3: sources and builds.
    let mut sources = BTreeMap::new();
    let mut seen_sources = std::collections::BTreeSet::new();
    let mut builds = Vec::new();
    for b in body.blocks() {
        match b.ident.as_str() {
            "variable" | "locals" => {}
            "packer" => {}
            "source" => {
                let ls = labels(b);
                if ls.len() == 2 {
                    seen_sources.insert(format!("{}.{}", ls[0], ls[1]));
                }
                if let Some(s) = read_source(&mut r, b) {
                    let key = format!("spindle.{}", s.name);
                    if sources.contains_key(&key) {
                        r.err(b.span(), format!("source `{key}` is declared twice"));
                    }
                    sources.insert(key, s);
                }
            }
            "build" => {
                if let Some(bl) = read_build(&mut r, b, dir) {
                    builds.push(bl);
                }
            }
            other => r.err(
                b.ident.span(),
                format!("unknown block `{other}`; expected variable, locals, source or build"),
            ),
        }
    }
    for bl in &builds {
        for s in &bl.sources {
            if !sources.contains_key(s) && !seen_sources.contains(s) {
                let known: Vec<&String> = sources.keys().collect();
                r.diags.push(Diag {
                    file: r.file.clone(),
                    pos: Some(bl.pos),
                    message: format!(
                        "build uses source `source.{s}`, which is not declared (declared: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known
                                .iter()
                                .map(|k| format!("source.{k}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                });
            }
        }
    }
    if builds.is_empty() && r.diags.is_empty() {
        r.err(None, "the recipe has no `build` block");
    }
    if !r.diags.is_empty() {
        return Err(Diags(r.diags));
    }
    Ok(Recipe {
        file: file.to_string(),
        dir: dir.to_path_buf(),
        variables,
        sources,
        builds,
    })
}

fn names(vars: &BTreeMap<String, Option<Value>>) -> String {
    if vars.is_empty() {
        "no variables".into()
    } else {
        vars.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn read_source(r: &mut Reader<'_>, b: &Block) -> Option<Source> {
    let ls = labels(b);
    if ls.len() != 2 {
        r.err(
            b.span(),
            "`source` takes two labels: source \"spindle\" \"NAME\" { … }",
        );
        return None;
    }
    if ls[0] != "spindle" {
        r.err(
            b.labels[0].span(),
            format!(
                "unknown builder `{}`; Spindle provides the `spindle` builder",
                ls[0]
            ),
        );
        return None;
    }
    let name = ls[1].clone();
    let mut f = Fields::new(format!("source \"spindle\" \"{name}\""), &b.body, b.span());
    let base_span = f.span_of("base");
    let base = match f.string(r, "base") {
        None => {
            if base_span.is_none() {
                r.err(b.span(), format!("source `{name}` needs `base` (\"scratch\", \"debian:SUITE\" or \"image:NAME:TAG\")"));
            }
            None
        }
        Some(s) => match parse_base(&s) {
            Ok(b) => Some(b),
            Err(m) => {
                r.err(base_span, m);
                None
            }
        },
    };
    let image_name = f
        .string(r, "image_name")
        .unwrap_or_else(|| format!("{name}:latest"));
    let entrypoint = f.strings(r, "entrypoint").unwrap_or_default();
    let cmd = f.strings(r, "cmd").unwrap_or_default();
    let env = f.strings(r, "env").unwrap_or_default();
    let user = f.string(r, "user").unwrap_or_default();
    let workdir = f.string(r, "workdir").unwrap_or_default();
    let exposed_ports = f.strings(r, "exposed_ports").unwrap_or_default();
    f.finish(
        r,
        &[
            "base",
            "image_name",
            "entrypoint",
            "cmd",
            "env",
            "user",
            "workdir",
            "exposed_ports",
        ],
    );
    Some(Source {
        name,
        base: base?,
        image_name,
        entrypoint,
        cmd,
        env,
        user,
        workdir,
        exposed_ports,
        pos: r.pos(b.span()).unwrap_or_default(),
    })
}

/// `scratch`, `debian:SUITE` or `image:NAME[:TAG]`.
pub fn parse_base(s: &str) -> Result<Base, String> {
    if s == "scratch" {
        return Ok(Base::Scratch);
    }
    if let Some(suite) = s.strip_prefix("debian:") {
        if !suite.is_empty() && suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Ok(Base::Debian {
                suite: suite.to_string(),
            });
        }
    }
    if let Some(r) = s.strip_prefix("image:") {
        if !r.is_empty() {
            return Ok(Base::Image(r.to_string()));
        }
    }
    Err(format!(
        "unknown base `{s}`; expected \"scratch\", \"debian:SUITE\" or \"image:NAME:TAG\""
    ))
}

fn read_build(r: &mut Reader<'_>, b: &Block, dir: &Path) -> Option<Build> {
    let mut f = Fields::new("build".into(), &b.body, b.span());
    let name = f.string(r, "name").unwrap_or_default();
    let sources_span = f.span_of("sources");
    let mut sources = Vec::new();
    for s in f.strings(r, "sources").unwrap_or_default() {
        match s.strip_prefix("source.") {
            Some(rest) => sources.push(rest.to_string()),
            None => r.err(
                sources_span.clone(),
                format!("`{s}` is not a source reference; write \"source.spindle.NAME\""),
            ),
        }
    }
    if sources.is_empty() && sources_span.is_none() {
        r.err(
            b.span(),
            "build needs `sources = [\"source.spindle.NAME\"]`",
        );
    }
    let blocks = std::mem::take(&mut f.blocks);
    f.finish(r, &["name", "sources"]);
    let mut provisioners = Vec::new();
    let mut post_processors = Vec::new();
    for inner in blocks {
        let ls = labels(inner);
        match inner.ident.as_str() {
            "provisioner" => {
                if ls.len() != 1 {
                    r.err(
                        inner.span(),
                        "`provisioner` takes one label: provisioner \"TYPE\" { … }",
                    );
                    continue;
                }
                if let Some(p) = read_provisioner(r, inner, &ls[0], dir) {
                    provisioners.push(p);
                }
            }
            "post-processor" => {
                if ls.len() != 1 {
                    r.err(
                        inner.span(),
                        "`post-processor` takes one label: post-processor \"TYPE\" { … }",
                    );
                    continue;
                }
                if let Some(p) = read_post(r, inner, &ls[0], dir) {
                    post_processors.push((p, r.pos(inner.span()).unwrap_or_default()));
                }
            }
            other => r.err(
                inner.ident.span(),
                format!("unknown block `{other}` in build; expected provisioner or post-processor"),
            ),
        }
    }
    Some(Build {
        name,
        sources,
        provisioners,
        post_processors,
        pos: r.pos(b.span()).unwrap_or_default(),
    })
}

fn rel(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn read_provisioner(r: &mut Reader<'_>, b: &Block, kind: &str, dir: &Path) -> Option<Provisioner> {
    let what = format!("provisioner \"{kind}\"");
    let mut f = Fields::new(what.clone(), &b.body, b.span());
    let only = f.strings(r, "only").unwrap_or_default();
    let except = f.strings(r, "except").unwrap_or_default();
    let step = match kind {
        "apt" => {
            let packages = f.strings(r, "packages").unwrap_or_default();
            let url = f.string(r, "repo");
            let keyring = f.string(r, "keyring");
            let distribution = f.string(r, "distribution");
            let component = f.string(r, "component");
            if packages.is_empty() {
                r.err(
                    b.span(),
                    "provisioner \"apt\" needs `packages = [\"NAME\", …]`",
                );
            }
            let repo = match (url, keyring) {
                (Some(url), Some(keyring))
                    if url.starts_with("http://") || url.starts_with("https://") =>
                {
                    Some(AptRepo {
                        url: url.trim_end_matches('/').to_string(),
                        keyring: rel(dir, &keyring),
                        distribution: distribution.unwrap_or_else(|| "stable".into()),
                        component: component.unwrap_or_else(|| "main".into()),
                    })
                }
                (Some(url), Some(_)) => {
                    r.err(
                        b.span(),
                        format!(
                            "provisioner \"apt\": repo `{url}` is not an http:// or https:// URL"
                        ),
                    );
                    None
                }
                (Some(_), None) => {
                    r.err(
                        b.span(),
                        "provisioner \"apt\": `repo` needs `keyring = \"FILE\"` (the repo's public key)",
                    );
                    None
                }
                (None, k) => {
                    if k.is_some() || distribution.is_some() || component.is_some() {
                        r.err(
                            b.span(),
                            "provisioner \"apt\": `keyring`, `distribution` and `component` go with `repo`",
                        );
                    }
                    None
                }
            };
            f.finish(
                r,
                &[
                    "packages",
                    "repo",
                    "keyring",
                    "distribution",
                    "component",
                    "only",
                    "except",
                ],
            );
            Step::Apt { packages, repo }
        }
        "file" => {
            let source = f.string(r, "source");
            let dspan = f.span_of("destination");
            let destination = f.string(r, "destination");
            let mspan = f.span_of("mode");
            let mode = match f.string(r, "mode") {
                None => None,
                Some(m) => match u32::from_str_radix(m.trim_start_matches("0o"), 8) {
                    Ok(v) if v <= 0o7777 => Some(v),
                    _ => {
                        r.err(
                            mspan,
                            format!("mode `{m}` is not an octal file mode like \"0755\""),
                        );
                        None
                    }
                },
            };
            f.finish(r, &["source", "destination", "mode", "only", "except"]);
            let (Some(source), Some(destination)) = (source, destination) else {
                r.err(
                    b.span(),
                    "provisioner \"file\" needs `source` and `destination`",
                );
                return None;
            };
            if !destination.starts_with('/') {
                r.err(
                    dspan,
                    format!(
                        "destination `{destination}` must be an absolute path inside the image"
                    ),
                );
                return None;
            }
            Step::File {
                source: rel(dir, &source),
                destination,
                mode,
            }
        }
        "shell" => {
            let ispan = f.span_of("inline");
            let inline = f.strings(r, "inline");
            let sspan = f.span_of("script");
            let script = f.string(r, "script");
            let env = f.strings(r, "environment_vars").unwrap_or_default();
            let network = f.bool(r, "network").unwrap_or(false);
            f.finish(
                r,
                &[
                    "inline",
                    "script",
                    "environment_vars",
                    "network",
                    "only",
                    "except",
                ],
            );
            for e in &env {
                if !e.contains('=') {
                    r.err(
                        b.span(),
                        format!("environment_vars entry `{e}` must be NAME=VALUE"),
                    );
                }
            }
            match (inline, script) {
                (Some(lines), None) => Step::Shell {
                    script: lines.join("\n"),
                    script_file: None,
                    env,
                    network,
                },
                (None, Some(s)) => {
                    let path = rel(dir, &s);
                    match std::fs::read_to_string(&path) {
                        Ok(text) => Step::Shell {
                            script: text,
                            script_file: Some(path),
                            env,
                            network,
                        },
                        Err(e) => {
                            r.err(
                                sspan,
                                format!("cannot read script `{}`: {e}", path.display()),
                            );
                            return None;
                        }
                    }
                }
                (Some(_), Some(_)) => {
                    r.err(ispan, "give either `inline` or `script`, not both");
                    return None;
                }
                (None, None) => {
                    if ispan.is_none() && sspan.is_none() {
                        r.err(
                            b.span(),
                            "provisioner \"shell\" needs `inline = [...]` or `script = \"FILE\"`",
                        );
                    }
                    return None;
                }
            }
        }
        "warm" => {
            let command = f.string(r, "command");
            let urls = f.strings(r, "urls").unwrap_or_default();
            let tspan = f.span_of("timeout");
            let timeout_secs = match f.string(r, "timeout") {
                None => 60,
                Some(t) => match parse_duration(&t) {
                    Some(s) => s,
                    None => {
                        r.err(
                            tspan,
                            format!("timeout `{t}` is not a duration like \"30s\" or \"2m\""),
                        );
                        60
                    }
                },
            };
            f.finish(r, &["command", "urls", "timeout", "only", "except"]);
            let Some(command) = command else {
                r.err(
                    b.span(),
                    "provisioner \"warm\" needs `command` (what starts the app)",
                );
                return None;
            };
            if urls.is_empty() {
                r.err(
                    b.span(),
                    "provisioner \"warm\" needs `urls = [\"http://127.0.0.1:PORT/…\"]`",
                );
            }
            Step::Warm {
                command,
                urls,
                timeout_secs,
            }
        }
        other => {
            r.err(
                b.labels[0].span(),
                format!("unknown provisioner `{other}`; expected apt, file, shell or warm"),
            );
            return None;
        }
    };
    Some(Provisioner {
        step,
        only,
        except,
        pos: r.pos(b.span()).unwrap_or_default(),
    })
}

fn parse_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(n) = s.strip_suffix('s') {
        return n.parse().ok();
    }
    if let Some(n) = s.strip_suffix('m') {
        return n.parse::<u64>().ok().map(|m| m * 60);
    }
    s.parse().ok()
}

fn read_post(r: &mut Reader<'_>, b: &Block, kind: &str, dir: &Path) -> Option<PostProcessor> {
    let mut f = Fields::new(format!("post-processor \"{kind}\""), &b.body, b.span());
    let output = f.string(r, "output");
    let out = |default: &str| rel(dir, output.as_deref().unwrap_or(default));
    let p = match kind {
        "manifest" => PostProcessor::Manifest {
            output: out("manifest.json"),
        },
        "checksum" => PostProcessor::Checksum {
            output: out("checksums.sha256"),
        },
        "oci-archive" => PostProcessor::OciArchive {
            output: out("image.oci.tar"),
        },
        "oci-layout" => PostProcessor::OciLayout {
            output: out("image.oci"),
        },
        "qcow2" => {
            let kernel = f.string(r, "kernel");
            let size = f.string(r, "size");
            let kernel = kernel.as_deref().unwrap_or("debian:bookworm");
            let Some(suite) = kernel.strip_prefix("debian:").filter(|s| {
                !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }) else {
                r.err(
                    b.span(),
                    format!("post-processor \"qcow2\": kernel `{kernel}`: expected debian:SUITE"),
                );
                return None;
            };
            let size_mib = match size
                .as_deref()
                .map(|s| s.trim().trim_end_matches("M").parse::<u64>())
            {
                None => None,
                Some(Ok(n)) if n > 0 => Some(n),
                Some(_) => {
                    r.err(
                        b.span(),
                        format!(
                            "post-processor \"qcow2\": size `{}`: expected a number of MiB",
                            size.unwrap_or_default()
                        ),
                    );
                    return None;
                }
            };
            f.finish(r, &["output", "kernel", "size"]);
            return Some(PostProcessor::Qcow2(crate::qcow2::Qcow2Spec {
                output: out("image.qcow2"),
                kernel_suite: suite.to_string(),
                size_mib,
            }));
        }
        other => {
            r.err(
                b.labels[0].span(),
                format!(
                    "unknown post-processor `{other}`; expected manifest, checksum, oci-archive, oci-layout or qcow2"
                ),
            );
            return None;
        }
    };
    f.finish(r, &["output"]);
    Some(p)
}
