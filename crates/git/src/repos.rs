//! Repositories on disk, read and changed with git's own commands.

use crate::{GitError, RepoName};
use spindle_model::AccountId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The object id git writes for "no commit": a ref's old value when it is created, its new
/// value when it is deleted.
pub const ZERO_OID: &str = "0000000000000000000000000000000000000000";

/// The largest workflow file read from a commit; a bigger one is reported, not read.
const MAX_WORKFLOW_BYTES: u64 = 1 << 20;

/// One repository, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RepoInfo {
    pub name: String,
    /// Branches and tags, `refs/heads/main` → commit.
    pub refs: BTreeMap<String, String>,
}

/// One ref a push changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub name: String,
    /// [`ZERO_OID`] when the push created the ref.
    pub old: String,
    /// [`ZERO_OID`] when the push deleted the ref.
    pub new: String,
}

/// A workflow file's path and its text, or why it couldn't be read.
pub type WorkflowFile = (String, Result<String, String>);

/// What changed between two listings of a repository's refs, in ref order.
pub fn ref_updates(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<RefUpdate> {
    let mut out = Vec::new();
    for (name, new) in after {
        match before.get(name) {
            Some(old) if old == new => {}
            old => out.push(RefUpdate {
                name: name.clone(),
                old: old.cloned().unwrap_or_else(|| ZERO_OID.to_owned()),
                new: new.clone(),
            }),
        }
    }
    for (name, old) in before {
        if !after.contains_key(name) {
            out.push(RefUpdate {
                name: name.clone(),
                old: old.clone(),
                new: ZERO_OID.to_owned(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The repositories under one root, `ROOT/<account id>/<name>.git`.
#[derive(Debug, Clone)]
pub struct Repos {
    root: PathBuf,
}

/// A `git` command with a fixed environment: no user or system configuration, no prompt.
pub fn git_command() -> Command {
    let mut c = Command::new("git");
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("HOME", "/nonexistent")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    c
}

fn run(git_dir: Option<&Path>, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let mut c = git_command();
    if let Some(d) = git_dir {
        c.arg("--git-dir").arg(d);
    }
    let out = c.args(args).output().map_err(|source| GitError::Spawn {
        args: args.join(" "),
        source,
    })?;
    if !out.status.success() {
        return Err(GitError::Command {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> GitError + 'a {
    move |source| GitError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn nul_list(out: &[u8]) -> Vec<String> {
    out.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

impl Repos {
    /// The repositories under `root`, touching nothing: what [`Repos::open`] prepared.
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// Opens the root (creating it, mode 0700) and removes what an interrupted create or drop
    /// left: directories named `.tmp-*` and `.drop-*`.
    pub fn open(root: &Path) -> Result<Self, GitError> {
        std::fs::create_dir_all(root).map_err(io("create", root))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .map_err(io("set the mode of", root))?;
        }
        for account in std::fs::read_dir(root).map_err(io("read", root))?.flatten() {
            let Ok(entries) = std::fs::read_dir(account.path()) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".tmp-") || name.starts_with(".drop-") {
                    let p = e.path();
                    std::fs::remove_dir_all(&p).map_err(io("remove", &p))?;
                }
            }
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn account_dir(&self, account: &AccountId) -> PathBuf {
        self.root.join(account.as_str())
    }

    /// Where `name` lives, whether or not it exists.
    pub fn path(&self, account: &AccountId, name: &RepoName) -> PathBuf {
        self.account_dir(account).join(format!("{name}.git"))
    }

    /// The repository's path if it exists.
    pub fn find(&self, account: &AccountId, name: &RepoName) -> Result<PathBuf, GitError> {
        let p = self.path(account, name);
        if p.join("HEAD").is_file() {
            Ok(p)
        } else {
            Err(GitError::NotFound {
                name: name.to_string(),
            })
        }
    }

    /// Makes an empty bare repository whose first branch is `main`, accepting pushes over
    /// HTTP. Initialised under a temporary name and renamed into place.
    pub fn create(&self, account: &AccountId, name: &RepoName) -> Result<RepoInfo, GitError> {
        let dir = self.account_dir(account);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let dest = self.path(account, name);
        if dest.exists() {
            return Err(GitError::Exists {
                name: name.to_string(),
            });
        }
        let tmp = dir.join(format!(".tmp-{name}-{:016x}", rand::random::<u64>()));
        let made = (|| {
            let t = tmp.to_string_lossy();
            run(None, &["init", "--quiet", "--bare", "-b", "main", &t])?;
            run(Some(&tmp), &["config", "http.receivepack", "true"])?;
            run(
                Some(&tmp),
                &["config", "receive.denyNonFastForwards", "false"],
            )?;
            // A rename onto an existing repository fails (the target is not empty), so two
            // creates of one name can't both succeed.
            std::fs::rename(&tmp, &dest).map_err(|source| {
                if dest.join("HEAD").exists() {
                    GitError::Exists {
                        name: name.to_string(),
                    }
                } else {
                    GitError::Io {
                        what: "move into place",
                        path: dest.clone(),
                        source,
                    }
                }
            })
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Ok(RepoInfo {
            name: name.to_string(),
            refs: BTreeMap::new(),
        })
    }

    /// The account's repositories, by name, with their refs.
    pub fn list(&self, account: &AccountId) -> Result<Vec<RepoInfo>, GitError> {
        let dir = self.account_dir(account);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("read", &dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some(name) = file.strip_suffix(".git") else {
                continue;
            };
            let Ok(name) = RepoName::parse(name) else {
                continue;
            };
            let refs = Self::refs(&e.path())?;
            out.push(RepoInfo {
                name: name.to_string(),
                refs,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes a repository: renamed away first, so it is gone at once even if the removal of
    /// its files is interrupted (the next [`Repos::open`] finishes it).
    pub fn drop_repo(&self, account: &AccountId, name: &RepoName) -> Result<(), GitError> {
        let path = self.find(account, name)?;
        let gone = self
            .account_dir(account)
            .join(format!(".drop-{name}-{:016x}", rand::random::<u64>()));
        std::fs::rename(&path, &gone).map_err(io("move away", &path))?;
        std::fs::remove_dir_all(&gone).map_err(io("remove", &gone))
    }

    /// Every branch and tag with the commit (or tag object) it points at.
    pub fn refs(repo: &Path) -> Result<BTreeMap<String, String>, GitError> {
        let out = run(
            Some(repo),
            &[
                "for-each-ref",
                "--format=%(objectname) %(refname)",
                "refs/heads",
                "refs/tags",
            ],
        )?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(oid, name)| (name.to_owned(), oid.to_owned()))
            .collect())
    }

    /// The commit a ref's new value names (a tag is peeled to its commit).
    pub fn commit_of(repo: &Path, oid: &str) -> Result<String, GitError> {
        let spec = format!("{oid}^{{commit}}");
        let out = run(Some(repo), &["rev-parse", "--verify", "--quiet", &spec])?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    /// The workflow files of `commit`: every `.github/workflows/*.yml` and `*.yaml`, by path,
    /// with its text (an error text for one that is too big or not UTF-8).
    pub fn workflow_files(repo: &Path, commit: &str) -> Result<Vec<WorkflowFile>, GitError> {
        let out = run(
            Some(repo),
            &[
                "ls-tree",
                "-z",
                "--name-only",
                commit,
                "--",
                ".github/workflows/",
            ],
        )?;
        let mut files = Vec::new();
        for path in nul_list(&out) {
            if !(path.ends_with(".yml") || path.ends_with(".yaml")) {
                continue;
            }
            let spec = format!("{commit}:{path}");
            let size = run(Some(repo), &["cat-file", "-s", &spec])?;
            let size: u64 = String::from_utf8_lossy(&size).trim().parse().unwrap_or(0);
            let text = if size > MAX_WORKFLOW_BYTES {
                Err(format!(
                    "{path}: {size} bytes, more than the {MAX_WORKFLOW_BYTES} a workflow file may have"
                ))
            } else {
                let bytes = run(Some(repo), &["cat-file", "blob", &spec])?;
                String::from_utf8(bytes).map_err(|_| format!("{path}: not UTF-8 text"))
            };
            files.push((path, text));
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(files)
    }

    /// The paths a push changed: those that differ between `old` and `new`, or every file of
    /// `new` when the ref is new (or `old` is not in the repository).
    pub fn changed_paths(repo: &Path, old: &str, new: &str) -> Result<Vec<String>, GitError> {
        if old != ZERO_OID {
            if let Ok(out) = run(Some(repo), &["diff", "--name-only", "-z", old, new, "--"]) {
                return Ok(nul_list(&out));
            }
        }
        let out = run(Some(repo), &["ls-tree", "-r", "-z", "--name-only", new])?;
        Ok(nul_list(&out))
    }

    /// Writes the tree of `commit` into `dest` (an existing, empty directory): a checkout
    /// without a `.git`, for a job's workspace.
    pub fn export_tree(repo: &Path, commit: &str, dest: &Path) -> Result<(), GitError> {
        let mut c = git_command();
        c.arg("--git-dir")
            .arg(repo)
            .arg("--work-tree")
            .arg(dest)
            .env("GIT_INDEX_FILE", dest.join(".spindle-index"))
            .args(["checkout", "-f", commit, "--", "."]);
        let out = c.output().map_err(|source| GitError::Spawn {
            args: "checkout".into(),
            source,
        })?;
        let _ = std::fs::remove_file(dest.join(".spindle-index"));
        if !out.status.success() {
            return Err(GitError::Command {
                args: format!("checkout -f {commit}"),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn ref_updates_name_created_moved_and_deleted_refs() {
        let before = refs(&[
            ("refs/heads/main", "a1"),
            ("refs/tags/v1", "t1"),
            ("refs/heads/x", "x1"),
        ]);
        let after = refs(&[
            ("refs/heads/main", "a2"),
            ("refs/tags/v1", "t1"),
            ("refs/heads/new", "n1"),
        ]);
        let got: Vec<_> = ref_updates(&before, &after)
            .into_iter()
            .map(|u| (u.name, u.old, u.new))
            .collect();
        let z = ZERO_OID.to_string();
        assert_eq!(
            got,
            vec![
                ("refs/heads/main".into(), "a1".into(), "a2".into()),
                ("refs/heads/new".into(), z.clone(), "n1".into()),
                ("refs/heads/x".into(), "x1".into(), z),
            ]
        );
        assert!(ref_updates(&after, &after).is_empty());
    }

    fn acct() -> AccountId {
        AccountId::parse("123456789012").unwrap()
    }

    #[test]
    fn create_list_read_and_drop_with_real_git() {
        let dir = tempfile::tempdir().unwrap();
        let repos = Repos::open(&dir.path().join("git")).unwrap();
        let name = RepoName::parse("app").unwrap();
        repos.create(&acct(), &name).unwrap();
        assert!(matches!(
            repos.create(&acct(), &name),
            Err(GitError::Exists { .. })
        ));
        let path = repos.find(&acct(), &name).unwrap();

        // A commit with a workflow, made in a scratch work tree and pushed with git itself.
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join(".github/workflows")).unwrap();
        std::fs::write(work.join(".github/workflows/ci.yml"), "on: push\n").unwrap();
        std::fs::write(work.join(".github/workflows/notes.txt"), "x").unwrap();
        std::fs::write(work.join("README"), "hi").unwrap();
        let git = |args: &[&str]| {
            let out = git_command()
                .current_dir(&work)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "."]);
        git(&["commit", "-qm", "one"]);
        git(&["push", "-q", path.to_str().unwrap(), "main"]);

        let listed = repos.list(&acct()).unwrap();
        assert_eq!(listed.len(), 1);
        let head = listed[0].refs["refs/heads/main"].clone();
        assert_eq!(Repos::commit_of(&path, &head).unwrap(), head);
        let files = Repos::workflow_files(&path, &head).unwrap();
        assert_eq!(
            files,
            vec![(
                ".github/workflows/ci.yml".to_string(),
                Ok("on: push\n".to_string())
            )]
        );
        let mut changed = Repos::changed_paths(&path, ZERO_OID, &head).unwrap();
        changed.sort();
        assert_eq!(changed.len(), 3, "{changed:?}");

        let out = dir.path().join("checkout");
        std::fs::create_dir(&out).unwrap();
        Repos::export_tree(&path, &head, &out).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("README")).unwrap(), "hi");
        assert!(!out.join(".spindle-index").exists());

        repos.drop_repo(&acct(), &name).unwrap();
        assert!(repos.list(&acct()).unwrap().is_empty());
        assert!(matches!(
            repos.drop_repo(&acct(), &name),
            Err(GitError::NotFound { .. })
        ));
    }

    #[test]
    fn open_removes_what_interrupted_calls_left() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("git");
        let left = root.join("123456789012/.tmp-app-1");
        std::fs::create_dir_all(left.join("objects")).unwrap();
        std::fs::create_dir_all(root.join("123456789012/.drop-x-2")).unwrap();
        Repos::open(&root).unwrap();
        assert!(!left.exists());
        assert!(!root.join("123456789012/.drop-x-2").exists());
    }
}
