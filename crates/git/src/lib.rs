//! # spindle-git: git hosting for the daemon
//!
//! Bare repositories per account under `DATA_DIR/git/<account id>/<name>.git`, made, read and
//! served by git itself: `git init --bare`, `for-each-ref`, `ls-tree`, `cat-file` and
//! `git http-backend` (as a CGI the daemon runs per request). The crate knows nothing of HTTP
//! serving or authentication: the daemon (`server/src/git_http.rs`) streams request and
//! response bodies through the CGI process this crate describes.
//!
//! ## Entry points
//! - [`RepoName::parse`]: the one check of a repository's name.
//! - [`Repos`]: create, list, drop repositories; [`Repos::refs`], [`Repos::workflow_files`],
//!   [`Repos::changed_paths`] read a repository with git's plumbing.
//! - [`ref_updates`]: what a push changed, from the refs before and after (pure).
//! - [`cgi`]: the environment of `git http-backend` and the parse of its response head (pure).
//!
//! ## Invariants
//! - A repository appears and disappears by one rename: `create` initialises it under a
//!   temporary name first, `drop` renames it away before removing it, so a failed or killed
//!   call leaves either the whole repository or none.
//! - Every git command runs with a clean, fixed environment (no user or system config, no
//!   prompts), so the host's git settings can't change what the daemon serves.

pub mod cgi;
mod repos;

pub use repos::{ref_updates, RefUpdate, RepoInfo, Repos, WorkflowFile, ZERO_OID};

use std::path::PathBuf;

/// A repository's name: 1-100 characters of `A-Z a-z 0-9 . _ -`, starting with a letter or
/// digit, not ending in `.git` or `.lock` (the `.git` suffix is added on disk and in URLs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(s: &str) -> Result<Self, GitError> {
        let bad = |reason: &str| GitError::InvalidName {
            name: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() || s.len() > 100 {
            return Err(bad("must be 1 to 100 characters long"));
        }
        if !s.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(bad("must start with a letter or digit"));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(bad(&format!(
                "`{c}` is not allowed (use letters, digits, `.`, `_` and `-`)"
            )));
        }
        if s.contains("..") {
            return Err(bad("must not contain `..`"));
        }
        if s.ends_with(".git") || s.ends_with(".lock") {
            return Err(bad("must not end in `.git` or `.lock`"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RepoName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("invalid repository name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("repository `{name}` already exists")]
    Exists { name: String },
    #[error("repository `{name}` not found")]
    NotFound { name: String },
    #[error("cannot {what} `{}`", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`git {args}` failed: {stderr}")]
    Command { args: String, stderr: String },
    #[error("cannot run `git {args}`")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_with_a_reason() {
        for (name, ok) in [
            ("twine", true),
            ("a", true),
            ("my-app_2.x", true),
            ("", false),
            ("-x", false),
            (".hidden", false),
            ("a/b", false),
            ("a..b", false),
            ("app.git", false),
            ("app.lock", false),
            ("sp ace", false),
            (&"x".repeat(101), false),
        ] {
            assert_eq!(RepoName::parse(name).is_ok(), ok, "{name:?}");
        }
        let e = RepoName::parse("a/b").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid repository name `a/b`: `/` is not allowed (use letters, digits, `.`, `_` and `-`)"
        );
    }
}
