//! The executor: runs a [`PlannedBuild`]'s steps whose layers are not cached, each in the
//! image tree through the runtime's [`Kernel::run_in_tree`], and records the image.
//!
//! Bake directory layout (`--cache-dir`, default `DATA_DIR/bake`):
//! ```text
//! store/          an image store: every step's layer (blob + unpacked tree), baked images
//! keys/<key>.json the layer a cache key produced (written only after the layer is stored)
//! work/<key>-<pid>/  upper, overlay work dir, mount point and log of a running step
//! empty/          the lower directory of the first step of a `scratch` build
//! ```

use std::fs;
use std::io::{self, BufRead, BufWriter};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use spindle_runtime::image::LayerRef;
use spindle_runtime::{Image, ImageConfig, ImageError, ImageStore, Kernel, KernelError, TreeRun};

use crate::layer::{source_date_epoch, write_layer, LayerError};
use crate::plan::{PlannedBuild, PlannedStep};
use crate::recipe::{Base, Step};

/// What to do when a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Remove the failed step's work directory (the default).
    #[default]
    Cleanup,
    /// Keep the failed step's work directory (its upper dir and log) for inspection.
    Abort,
    /// Open an interactive shell in the failed step's tree, then clean up.
    Shell,
}

impl std::str::FromStr for OnError {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cleanup" => Ok(OnError::Cleanup),
            "abort" => Ok(OnError::Abort),
            "shell" => Ok(OnError::Shell),
            other => Err(format!(
                "-on-error `{other}`: expected cleanup, abort or shell"
            )),
        }
    }
}

/// Errors of a bake.
#[derive(Debug, thiserror::Error)]
pub enum BakeError {
    #[error("image store")]
    Image(#[from] ImageError),
    #[error("{op} `{path}` failed")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: io::Error,
    },
    #[error("{step}: cannot run it")]
    Kernel {
        step: String,
        #[source]
        err: KernelError,
    },
    #[error("{step}: cannot make its layer")]
    Layer {
        step: String,
        #[source]
        err: LayerError,
    },
    #[error("{step} failed with exit code {code}; nothing was cached{}\n--- last lines of its log ---\n{log_tail}", kept.as_ref().map(|k| format!("; its tree and log are kept in {}", k.display())).unwrap_or_default())]
    StepFailed {
        step: String,
        code: i32,
        log_tail: String,
        kept: Option<PathBuf>,
    },
    #[error("{step}: {message}")]
    Step { step: String, message: String },
    #[error("the base {0} is not available: {1}")]
    Base(String, String),
}

fn ioe<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BakeError + 'a {
    move |err| BakeError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// How a bake should behave.
#[derive(Default)]
pub struct BakeOptions<'a> {
    pub on_error: OnError,
    /// Called with one line per event (step cached, started, done).
    pub progress: Option<&'a dyn Fn(&str)>,
}

/// One step's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepResult {
    pub label: String,
    pub key: String,
    pub layer: LayerRef,
    pub cached: bool,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Baked {
    pub source_ref: String,
    pub image: Image,
    pub steps: Vec<StepResult>,
    /// Seconds from start to the image record.
    pub seconds: f64,
}

/// Runs bakes against one bake directory.
pub struct Baker<K: Kernel> {
    dir: PathBuf,
    store: ImageStore,
    kernel: K,
}

impl<K: Kernel> Baker<K> {
    /// Opens (creating) a bake directory.
    pub fn open(dir: impl Into<PathBuf>, kernel: K) -> Result<Self, BakeError> {
        let dir = dir.into();
        for d in ["keys", "work", "empty"] {
            let p = dir.join(d);
            fs::create_dir_all(&p).map_err(ioe("create", &p))?;
        }
        let store = ImageStore::open(dir.join("store"))?;
        Ok(Baker { dir, store, kernel })
    }

    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// The bake directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The planner's inputs for this bake directory.
    pub fn inputs(&self) -> crate::inputs::HostInputs<'_> {
        crate::inputs::HostInputs {
            store: &self.store,
            cache: &self.dir,
        }
    }

    /// The layer cached under `key`, if its blob and tree are still in the store.
    pub fn cached(&self, key: &str) -> Option<LayerRef> {
        let bytes = fs::read(self.dir.join("keys").join(format!("{key}.json"))).ok()?;
        let layer: LayerRef = serde_json::from_slice(&bytes).ok()?;
        self.store.has_layer(&layer).then_some(layer)
    }

    fn remember(&self, key: &str, layer: &LayerRef) -> Result<(), BakeError> {
        let p = self.dir.join("keys").join(format!("{key}.json"));
        let tmp = p.with_extension("tmp");
        fs::write(&tmp, serde_json::to_vec(layer).expect("json")).map_err(ioe("write", &tmp))?;
        fs::rename(&tmp, &p).map_err(ioe("rename", &p))
    }

    fn base_layers(
        &self,
        base: &Base,
        key: &str,
        say: &dyn Fn(&str),
    ) -> Result<Vec<LayerRef>, BakeError> {
        match base {
            Base::Scratch => Ok(Vec::new()),
            Base::Image(r) => Ok(self
                .store
                .inspect(r)
                .map_err(|e| BakeError::Base(base.to_string(), e.to_string()))?
                .layers),
            Base::Debian { suite } => {
                if let Some(layer) = self.cached(key) {
                    say(&format!("{base}: cached ({})", short(&layer.diff_id)));
                    return Ok(vec![layer]);
                }
                let t = Instant::now();
                let layer = self.bootstrap_debian(suite, key, say)?;
                say(&format!(
                    "{base}: bootstrapped in {:.1}s ({}, {} bytes)",
                    t.elapsed().as_secs_f64(),
                    short(&layer.diff_id),
                    layer.size
                ));
                Ok(vec![layer])
            }
        }
    }

    /// Builds a minbase Debian tree as one layer (see [`crate::debian`]).
    fn bootstrap_debian(
        &self,
        suite: &str,
        key: &str,
        say: &dyn Fn(&str),
    ) -> Result<LayerRef, BakeError> {
        use crate::debian;
        let base = format!("debian:{suite}");
        let fail = |message: String| BakeError::Base(base.clone(), message);
        let started = Instant::now();
        let phase = |what: &str| {
            say(&format!(
                "{base}: {what} ({:.1} s)",
                started.elapsed().as_secs_f64()
            ))
        };
        let mirror = debian::host_mirror(suite).map_err(fail)?;
        let idx = debian::Index::fetch(&mirror, suite, &self.dir).map_err(fail)?;
        let pkgs = debian::select(&idx.paragraphs).map_err(fail)?;
        say(&format!("{base}: {} packages from {mirror}", pkgs.len()));
        let debs = debian::download(&mirror, &pkgs, &self.dir).map_err(fail)?;
        phase("index and packages downloaded");
        let work = self
            .dir
            .join("work")
            .join(format!("{}-{}", &key[..16], std::process::id()));
        let _ = fs::remove_dir_all(&work);
        let upper = work.join("upper");
        fs::create_dir_all(&upper).map_err(ioe("create", &upper))?;
        let guard = WorkDir(Some(work.clone()));
        debian::prepare_tree(&upper).map_err(ioe("prepare", &upper))?;
        for d in &debs {
            debian::extract_data(d, &upper).map_err(fail)?;
        }
        let stage = upper.join("var/cache/spindle-bootstrap");
        fs::create_dir_all(&stage).map_err(ioe("create", &stage))?;
        for (p, d) in pkgs.iter().zip(&debs) {
            let dst = stage.join(format!("{}.deb", p.name));
            fs::hard_link(d, &dst)
                .or_else(|_| fs::copy(d, &dst).map(|_| ()))
                .map_err(ioe("copy", &dst))?;
        }
        phase("unpacked");
        let sources = upper.join("etc/apt/sources.list");
        fs::write(&sources, format!("deb {mirror} {suite} main\n"))
            .map_err(ioe("write", &sources))?;
        let log = work.join("log");
        let exit = self
            .kernel
            .run_in_tree(&TreeRun {
                lower: vec![self.dir.join("empty")],
                upper: upper.clone(),
                work: work.join("ovl"),
                merged: work.join("root"),
                argv: vec![
                    "/bin/sh".into(),
                    "-ec".into(),
                    debian::INSTALL_SCRIPT.into(),
                ],
                env: vec![
                    "HOME=/root".into(),
                    "LC_ALL=C.UTF-8".into(),
                    debian::maintainer_env(),
                ],
                network: false,
                log: Some(log.clone()),
            })
            .map_err(|err| BakeError::Kernel {
                step: base.clone(),
                err,
            })?;
        if exit.code != 0 {
            return Err(BakeError::StepFailed {
                step: format!("{base} (dpkg inside the tree)"),
                code: exit.code,
                log_tail: tail(&log, 20),
                kept: None,
            });
        }
        phase("installed and configured by dpkg");
        let layer = self.store_upper(&base, &work, &upper)?;
        self.remember(key, &layer)?;
        phase("layer stored");
        drop(guard);
        Ok(layer)
    }

    fn store_upper(&self, label: &str, work: &Path, upper: &Path) -> Result<LayerRef, BakeError> {
        let tar_path = work.join("layer.tar");
        let f = fs::File::create(&tar_path).map_err(ioe("create", &tar_path))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        write_layer(upper, &mut w, source_date_epoch()).map_err(|err| BakeError::Layer {
            step: label.to_string(),
            err,
        })?;
        io::Write::flush(&mut w).map_err(ioe("write", &tar_path))?;
        drop(w);
        Ok(self.store.add_layer(&tar_path)?)
    }

    /// Bakes one planned build: reuses cached layers, runs the rest, records the image and
    /// points its `name:tag` at it.
    pub fn bake(&self, build: &PlannedBuild, opts: &BakeOptions<'_>) -> Result<Baked, BakeError> {
        let started = Instant::now();
        let say = |s: &str| {
            if let Some(p) = opts.progress {
                p(s)
            }
        };
        let mut layers = self.base_layers(&build.source.base, &build.base_key, &say)?;
        let mut steps = Vec::new();
        for ps in &build.steps {
            let label = format!("{}: {}", build.source_ref, ps.label());
            if let Some(layer) = self.cached(&ps.key) {
                say(&format!("{label}: cached ({})", short(&layer.diff_id)));
                layers.push(layer.clone());
                steps.push(StepResult {
                    label,
                    key: ps.key.clone(),
                    layer,
                    cached: true,
                });
                continue;
            }
            say(&format!("{label}: running"));
            let t = Instant::now();
            let layer = self.run_step(&label, ps, &layers, opts.on_error)?;
            say(&format!(
                "{label}: done in {:.1}s ({}, {} bytes)",
                t.elapsed().as_secs_f64(),
                short(&layer.diff_id),
                layer.size
            ));
            layers.push(layer.clone());
            steps.push(StepResult {
                label,
                key: ps.key.clone(),
                layer,
                cached: false,
            });
        }
        if layers.is_empty() {
            return Err(BakeError::Step {
                step: build.source_ref.clone(),
                message: "a scratch build with no steps makes no image".into(),
            });
        }
        let s = &build.source;
        let config = ImageConfig {
            entrypoint: s.entrypoint.clone(),
            cmd: s.cmd.clone(),
            env: s.env.clone(),
            user: s.user.clone(),
            workdir: s.workdir.clone(),
            exposed_ports: s.exposed_ports.clone(),
            ..Default::default()
        };
        let image = self.store.create_image(layers, config)?;
        self.store.tag(&image.id, &s.image_name)?;
        let image = self.store.inspect(&image.id)?;
        say(&format!(
            "{}: image {} ({})",
            build.source_ref, image.id, s.image_name
        ));
        Ok(Baked {
            source_ref: build.source_ref.clone(),
            image,
            steps,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn run_step(
        &self,
        label: &str,
        ps: &PlannedStep,
        layers: &[LayerRef],
        on_error: OnError,
    ) -> Result<LayerRef, BakeError> {
        let work = self
            .dir
            .join("work")
            .join(format!("{}-{}", &ps.key[..16], std::process::id()));
        if work.exists() {
            let _ = fs::remove_dir_all(&work);
        }
        let upper = work.join("upper");
        fs::create_dir_all(&upper).map_err(ioe("create", &upper))?;
        let guard = WorkDir(Some(work.clone()));
        let mut lowers: Vec<PathBuf> = layers.iter().map(|l| self.store.layer_tree(l)).collect();
        if lowers.is_empty() {
            lowers.push(self.dir.join("empty"));
        }
        let run =
            |argv: Vec<String>, env: Vec<String>, network: bool, log: Option<PathBuf>| TreeRun {
                lower: lowers.clone(),
                upper: upper.clone(),
                work: work.join("ovl"),
                merged: work.join("root"),
                argv,
                env,
                network,
                log,
            };
        let log = work.join("log");
        let argv_env: Option<(Vec<String>, Vec<String>, bool)> = match &ps.step {
            Step::File {
                source,
                destination,
                mode,
            } => {
                copy_into(&upper, &lowers, source, destination, *mode).map_err(|message| {
                    BakeError::Step {
                        step: label.to_string(),
                        message,
                    }
                })?;
                None
            }
            Step::Shell {
                script,
                env,
                network,
                ..
            } => {
                require_shell(label, &lowers)?;
                Some((
                    vec!["/bin/sh".into(), "-ec".into(), script.clone()],
                    env.clone(),
                    *network,
                ))
            }
            Step::Warm {
                command,
                urls,
                timeout_secs,
            } => {
                require_shell(label, &lowers)?;
                Some((
                    vec![
                        "/bin/sh".into(),
                        "-c".into(),
                        warm_script(command, urls, *timeout_secs),
                    ],
                    Vec::new(),
                    false,
                ))
            }
            Step::Apt { repo, .. } => {
                require_shell(label, &lowers)?;
                let key = match repo {
                    Some(r) => Some(fs::read(&r.keyring).map_err(ioe("read", &r.keyring))?),
                    None => None,
                };
                let script =
                    crate::debian::apt_repo_script(&ps.resolved, repo.as_ref().zip(key.as_deref()));
                Some((
                    vec!["/bin/sh".into(), "-ec".into(), script],
                    vec![crate::debian::maintainer_env()],
                    true,
                ))
            }
        };
        if let Some((argv, env, network)) = argv_env {
            let mut full_env = vec!["HOME=/root".to_string(), "TERM=dumb".into()];
            full_env.extend(env.iter().cloned());
            let exit = self
                .kernel
                .run_in_tree(&run(argv, full_env.clone(), network, Some(log.clone())))
                .map_err(|err| BakeError::Kernel {
                    step: label.to_string(),
                    err,
                })?;
            if exit.code != 0 {
                let log_tail = tail(&log, 20);
                let kept = match on_error {
                    OnError::Cleanup => None,
                    OnError::Abort => Some(guard.keep()),
                    OnError::Shell => {
                        eprintln!(
                            "{label} failed (exit code {}); opening a shell in its tree (exit to clean up)",
                            exit.code
                        );
                        let _ = self.kernel.run_in_tree(&run(
                            vec!["/bin/sh".into()],
                            full_env,
                            network,
                            None,
                        ));
                        None
                    }
                };
                return Err(BakeError::StepFailed {
                    step: label.to_string(),
                    code: exit.code,
                    log_tail,
                    kept,
                });
            }
        }
        let layer = self.store_upper(label, &work, &upper)?;
        self.remember(&ps.key, &layer)?;
        drop(guard);
        Ok(layer)
    }
}

/// Removes a step's work directory on drop unless kept.
struct WorkDir(Option<PathBuf>);

impl WorkDir {
    fn keep(mut self) -> PathBuf {
        self.0.take().expect("not kept twice")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

fn short(diff_id: &str) -> String {
    let h = diff_id.trim_start_matches("sha256:");
    format!("sha256:{}", &h[..12.min(h.len())])
}

fn tail(path: &Path, n: usize) -> String {
    let Ok(f) = fs::File::open(path) else {
        return "(no log)".into();
    };
    let lines: Vec<String> = io::BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .collect();
    let start = lines.len().saturating_sub(n);
    if lines.is_empty() {
        return "(the step printed nothing)".into();
    }
    lines[start..].join("\n")
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Starts the app, fetches every URL (retrying until it answers or the timeout passes), stops
/// the app; whatever it wrote outside `/tmp` stays in the layer.
/// The warm step's `fetch URL`: wget or curl if the image has one, else bash's `/dev/tcp` (a
/// Debian minbase has bash but neither client): succeeds on a 2xx status.
const WARM_FETCH: &str = r#"fetch() {
  wget -q -O /dev/null "$1" 2>/dev/null && return 0
  curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
  command -v bash >/dev/null 2>&1 || return 1
  bash -c 'u=${1#http://}; hp=${u%%/*}; p=/${u#*/}; [ "$u" = "$hp" ] && p=/
    h=${hp%%:*}; port=${hp##*:}; [ "$port" = "$hp" ] && port=80
    exec 3<>"/dev/tcp/$h/$port" || exit 1
    printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$p" "$hp" >&3
    IFS= read -r line <&3
    case "$line" in "HTTP/1."?" 2"*) exit 0 ;; esac
    exit 1' fetch "$1" 2>/dev/null
}
"#;

fn warm_script(command: &str, urls: &[String], timeout_secs: u64) -> String {
    let tries = timeout_secs * 10;
    let mut s = format!("( {command} ) >/tmp/.spindle-warm.log 2>&1 &\npid=$!\n{WARM_FETCH}");
    for u in urls {
        let q = sh_quote(u);
        s.push_str(&format!(
            "n=0\nuntil fetch {q}; do n=$((n+1)); if [ $n -ge {tries} ] || ! kill -0 $pid 2>/dev/null; then \
             echo \"warm: {u} did not answer within {timeout_secs}s\"; cat /tmp/.spindle-warm.log; kill $pid 2>/dev/null; exit 1; fi; sleep 0.1; done\n\
             echo \"warm: {u} answered\"\n"
        ));
    }
    s.push_str("kill $pid 2>/dev/null\nwait $pid 2>/dev/null\nexit 0\n");
    s
}

/// Finds an in-tree path (relative, no leading slash) in the upper dir or the lowers, top
/// first, without following a final symlink.
fn lookup(upper: &Path, lowers: &[PathBuf], rel: &str) -> Option<fs::Metadata> {
    std::iter::once(upper)
        .chain(lowers.iter().rev().map(|p| p.as_path()))
        .find_map(|d| fs::symlink_metadata(d.join(rel)).ok())
}

fn require_shell(label: &str, lowers: &[PathBuf]) -> Result<(), BakeError> {
    if lookup(Path::new("/nonexistent"), lowers, "bin/sh").is_none() {
        return Err(BakeError::Step {
            step: label.to_string(),
            message: "the image has no /bin/sh, which a shell step runs in (on a scratch base, copy a static busybox to /bin/busybox and link /bin/sh first)".into(),
        });
    }
    Ok(())
}

/// Copies a host file or directory into the step's upper dir at `dest` (absolute, in the
/// image). Parent directories present in a lower layer are recreated in the upper dir with the
/// same mode and owner; a parent that is a symlink in the image is refused (name the resolved
/// path instead), so a copy can never land outside the tree.
fn copy_into(
    upper: &Path,
    lowers: &[PathBuf],
    src: &Path,
    dest: &str,
    mode: Option<u32>,
) -> Result<(), String> {
    let smeta =
        fs::metadata(src).map_err(|e| format!("cannot read source `{}`: {e}", src.display()))?;
    let mut rel = dest
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string();
    let into_dir = dest.ends_with('/')
        || lookup(upper, lowers, &rel).is_some_and(|m| m.is_dir()) && smeta.is_file();
    if into_dir && smeta.is_file() {
        let name = src.file_name().unwrap_or_default().to_string_lossy();
        rel = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
    }
    if rel.is_empty() && smeta.is_dir() {
        // A directory copied to `/` merges into the image's root.
        let copy = || -> io::Result<()> {
            for e in fs::read_dir(src)? {
                let n = e?.file_name();
                copy_tree(&src.join(&n), &upper.join(&n))?;
            }
            Ok(())
        };
        return copy().map_err(|e| format!("copy `{}`: {e}", src.display()));
    }
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c == ".." || c == "." || c.is_empty())
    {
        return Err(format!("destination `{dest}` is not a clean absolute path"));
    }
    // Parents.
    let comps: Vec<&str> = rel.split('/').collect();
    let mut so_far = String::new();
    for c in &comps[..comps.len() - 1] {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(c);
        let up = upper.join(&so_far);
        match lookup(upper, lowers, &so_far) {
            Some(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "destination `{dest}` passes through `/{so_far}`, a symlink in the image; give the resolved path"
                ))
            }
            Some(m) if m.is_dir() => {
                if !up.exists() {
                    fs::create_dir(&up).map_err(|e| format!("create `/{so_far}`: {e}"))?;
                    fs::set_permissions(&up, fs::Permissions::from_mode(m.mode() & 0o7777))
                        .map_err(|e| format!("chmod `/{so_far}`: {e}"))?;
                    let _ = std::os::unix::fs::lchown(&up, Some(m.uid()), Some(m.gid()));
                }
            }
            Some(_) => return Err(format!("`/{so_far}` exists in the image and is not a directory")),
            None => fs::create_dir(&up).map_err(|e| format!("create `/{so_far}`: {e}"))?,
        }
    }
    let target = upper.join(&rel);
    if smeta.is_dir() {
        copy_tree(src, &target).map_err(|e| format!("copy `{}`: {e}", src.display()))?;
        if let Some(m) = mode {
            fs::set_permissions(&target, fs::Permissions::from_mode(m))
                .map_err(|e| format!("chmod `{dest}`: {e}"))?;
        }
    } else {
        if lookup(upper, lowers, &rel).is_some_and(|m| m.is_dir()) {
            return Err(format!("`{dest}` is a directory in the image"));
        }
        let _ = fs::remove_file(&target);
        fs::copy(src, &target).map_err(|e| format!("copy `{}`: {e}", src.display()))?;
        let m = mode.unwrap_or(smeta.mode() & 0o7777);
        fs::set_permissions(&target, fs::Permissions::from_mode(m))
            .map_err(|e| format!("chmod `{dest}`: {e}"))?;
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_dir() {
        if !dst.is_dir() {
            fs::create_dir(dst)?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        let mut names: Vec<_> = fs::read_dir(src)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        names.sort();
        for n in names {
            copy_tree(&src.join(&n), &dst.join(&n))?;
        }
    } else if ft.is_symlink() {
        let _ = fs::remove_file(dst);
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else {
        let _ = fs::remove_file(dst);
        fs::copy(src, dst)?;
    }
    Ok(())
}
