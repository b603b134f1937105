//! Git hosting in the daemon: the repositories (`spindle_git::Repos` under `DATA_DIR/git`),
//! HTTP basic authentication with an access key for git's client, and what a push starts
//! (`on_push`: the workflows it triggers, recorded as pipeline runs).

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Caller;
use sha2::{Digest, Sha256};
use spindle_git::{RefUpdate, RepoName, Repos, ZERO_OID};
use spindle_model::api::Account;
use spindle_model::pipeline::RunStatus;
use spindle_model::{AccessKeyId, AccountId, Action};
use spindle_pipeline::trigger::{self, Triggered};
use spindle_store::{NewJob, NewRun, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a checked secret is trusted without running argon2id again: a clone makes two or
/// three requests, each would otherwise pay for the key derivation.
const VERIFIED_FOR: Duration = Duration::from_secs(300);

pub struct GitService {
    pub repos: Repos,
    endpoint: String,
    /// One push at a time per repository, so the refs read before and after a receive-pack
    /// are that push's.
    push_locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Access key id → (SHA-256 of a secret that derived its signing key, when checked).
    verified: Mutex<HashMap<AccessKeyId, ([u8; 32], Instant)>>,
}

impl GitService {
    pub fn new(store: &Store, endpoint: &str) -> Self {
        let data_dir = store.path().parent().unwrap_or(Path::new("."));
        Self {
            repos: Repos::at(&data_dir.join("git")),
            endpoint: endpoint.to_owned(),
            push_locks: Mutex::default(),
            verified: Mutex::default(),
        }
    }

    /// What `git clone` takes for `name` of `account`.
    pub fn clone_url(&self, account: &Account, name: &RepoName) -> String {
        format!("{}/git/{}/{name}.git", self.endpoint, account.name)
    }

    pub fn push_lock(&self, repo: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.push_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(repo.to_owned()).or_default().clone()
    }
}

pub(crate) fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl App {
    /// Authenticates git's basic credentials: the user is an access key id, the password its
    /// secret, checked by deriving the signing key the store holds (the store keeps no secret).
    pub async fn git_caller(&self, user: &str, secret: &str) -> Result<Caller, ApiError> {
        let wrong = || {
            self.metrics.auth_failure("SignatureDoesNotMatch");
            ApiError::unauthenticated(
                "SignatureDoesNotMatch",
                format!("wrong secret for access key {user}"),
            )
            .with_hint(
                "the git password is the key's secret access key, as in your credentials file",
            )
        };
        let id = AccessKeyId::parse(user).map_err(|_| {
            self.metrics.auth_failure("InvalidAccessKeyId");
            ApiError::unauthenticated(
                "InvalidAccessKeyId",
                format!("git user `{user}` is not an access key id"),
            )
            .with_hint(
                "use an access key id (AKIA… or ASIA…) as the user and its secret as the password",
            )
        })?;
        let key = self
            .store
            .get_key(&id)?
            .ok_or_else(|| self.invalid_key(&id))?;
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let cached = {
            let v = self.git.verified.lock().unwrap_or_else(|p| p.into_inner());
            v.get(&id)
                .is_some_and(|(d, at)| at.elapsed() < VERIFIED_FOR && constant_eq(d, &digest))
        };
        if !cached {
            let (id2, secret) = (id.clone(), secret.to_owned());
            let derived = tokio::task::spawn_blocking(move || {
                spindle_auth::derive_signing_key(&id2, &secret)
            })
            .await
            .map_err(|_| ApiError::internal("key derivation failed"))?;
            if !constant_eq(&derived.0, &key.signing_key) {
                return Err(wrong());
            }
            let mut v = self.git.verified.lock().unwrap_or_else(|p| p.into_inner());
            v.retain(|_, (_, at)| at.elapsed() < VERIFIED_FOR);
            v.insert(id.clone(), (digest, Instant::now()));
        }
        self.caller_for_key(key, crate::app::now())
    }

    /// [`App::scope`] for a git request: the account as the caller may see it, and `action`
    /// checked there. Another account's repository answers exactly as a missing account.
    pub fn git_scope(
        &self,
        caller: &Caller,
        account: &str,
        action: Action,
    ) -> Result<Account, ApiError> {
        let not_found = || {
            ApiError::not_found(format!("account `{account}` not found"))
                .with_hint("`spindle account list` shows the accounts your credential can see")
                .denied()
        };
        let r = spindle_model::ids::AccountRef::parse(account).map_err(|_| not_found())?;
        let acct = self.store.find_account(&r)?.ok_or_else(not_found)?;
        if !caller.admin && acct.id != caller.account.id {
            return Err(not_found());
        }
        match self.decide_for(caller, &acct, action)? {
            spindle_auth::Decision::Allow => Ok(acct),
            spindle_auth::Decision::Deny(reason) => Err(ApiError::access_denied(format!(
                "{reason} (access key {} may not {} in account {})",
                caller.key_id,
                action.as_str(),
                acct.name
            ))),
        }
    }
}

/// What a push started: the runs recorded, by id.
pub fn on_push(
    store: &Store,
    account: &AccountId,
    repo: &RepoName,
    path: &Path,
    updates: &[RefUpdate],
) -> Vec<i64> {
    let mut runs = Vec::new();
    for u in updates {
        if u.new == ZERO_OID {
            continue;
        }
        match runs_for_update(store, account, repo, path, u) {
            Ok(mut ids) => runs.append(&mut ids),
            Err(e) => {
                tracing::error!(repo = %repo, git_ref = %u.name, error = %crate::api::error_chain(&*e), "cannot start the workflows of a push")
            }
        }
    }
    runs
}

/// A workflow's jobs and step names, as a run records them.
pub(crate) fn new_jobs(wf: &spindle_pipeline::Workflow) -> Vec<NewJob> {
    wf.jobs
        .iter()
        .map(|j| NewJob {
            id: j.id.clone(),
            runs_on: j.runs_on.clone(),
            needs: j.needs.clone(),
            steps: j.steps.iter().map(trigger::step_name).collect(),
        })
        .collect()
}

fn runs_for_update(
    store: &Store,
    account: &AccountId,
    repo: &RepoName,
    path: &Path,
    u: &RefUpdate,
) -> Result<Vec<i64>, Box<dyn std::error::Error>> {
    let commit = Repos::commit_of(path, &u.new)?;
    let files = Repos::workflow_files(path, &commit)?;
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let paths = Repos::changed_paths(path, &u.old, &u.new)?;
    let mut ids = Vec::new();
    for (file, outcome) in trigger::push(&files, &u.name, &paths) {
        let (status, diagnostics, name, jobs) = match &outcome {
            Triggered::Invalid(d) => (RunStatus::Failure, d.clone(), None, Vec::new()),
            Triggered::Run(wf) => (RunStatus::Queued, Vec::new(), wf.name.clone(), new_jobs(wf)),
        };
        let id = store.insert_run(
            &NewRun {
                account,
                repo: repo.as_str(),
                workflow: &file,
                name: name.as_deref(),
                event: "push",
                git_ref: &u.name,
                commit: &commit,
                status,
                diagnostics: &diagnostics,
                jobs,
                inputs: "{}",
            },
            crate::app::now(),
        )?;
        tracing::info!(run = id, repo = %repo, workflow = %file, git_ref = %u.name, %status, "pipeline run recorded");
        ids.push(id);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_in_constant_time() {
        assert!(
            constant_eq(b"abc", b"abc")
                && !constant_eq(b"abc", b"abd")
                && !constant_eq(b"a", b"ab")
        );
    }
}
