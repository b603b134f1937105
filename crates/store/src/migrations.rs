//! Versioned schema migrations. Each step runs in its own transaction together with the bump of
//! `user_version`, so a crash mid-migration leaves the previous version intact.

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// The steps, in order; step `i` takes the schema from version `i` to `i + 1`. Append only:
/// never edit a step that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // 1: accounts, credentials, roles, deny rules, parameters, the audit log.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL,
        management INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        signing_key BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('Active', 'Revoked')),
        created TEXT NOT NULL,
        revoked TEXT,
        allow TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        admin INTEGER NOT NULL DEFAULT 0,
        expires_unix INTEGER,
        role_name TEXT,
        session_name TEXT,
        source_key_id TEXT
    ) STRICT;
    CREATE INDEX access_keys_account ON access_keys(account_id);
    CREATE TABLE roles (
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        trust TEXT NOT NULL,
        allow TEXT NOT NULL,
        max_session_seconds INTEGER NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    ) STRICT;
    CREATE TABLE deny_rules (
        id INTEGER PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        pattern TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        created TEXT NOT NULL,
        UNIQUE (account_id, pattern)
    ) STRICT;
    CREATE TABLE params (
        account_id TEXT NOT NULL REFERENCES accounts(id),
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        version INTEGER NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        last_modified TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    ) STRICT;
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        access_key_id TEXT,
        principal TEXT,
        account_id TEXT,
        target_account_id TEXT,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        result TEXT NOT NULL,
        status INTEGER NOT NULL,
        error_code TEXT
    ) STRICT;
    CREATE INDEX audit_account ON audit(account_id, seq);
    CREATE INDEX audit_target_account ON audit(target_account_id, seq);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: the stack engine's journal: every transition of every stack, one JSON record each.
    r#"
    CREATE TABLE stack_journal (
        account_id TEXT NOT NULL REFERENCES accounts(id),
        stack TEXT NOT NULL,
        seq INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (account_id, stack, seq)
    ) STRICT;
    -- Which stack operation last wrote a parameter (NULL when a user did): crash recovery
    -- tells a stack's parameter from a user's by it.
    ALTER TABLE params ADD COLUMN token TEXT;
    -- Which account imported which image (the runtime's image store is shared).
    CREATE TABLE images (
        account_id TEXT NOT NULL REFERENCES accounts(id),
        image_id TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (account_id, image_id)
    ) STRICT;
    "#,
    // 3: named stack change sets (`spindle stack changeset create`), one JSON body each.
    r#"
    CREATE TABLE stack_change_sets (
        account_id TEXT NOT NULL REFERENCES accounts(id),
        stack TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, stack, name)
    ) STRICT;
    "#,
    // 4: apt: package records per account, and repos, snapshots, publications, signing-key
    // metadata as JSON documents (the apt engine owns their shape).
    r#"
    CREATE TABLE apt_packages (
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        record TEXT NOT NULL,
        created TEXT NOT NULL,
        PRIMARY KEY (account_id, key)
    ) STRICT;
    CREATE INDEX apt_packages_sha ON apt_packages(sha256);
    CREATE TABLE apt_objects (
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('repo', 'snapshot', 'publication', 'signing_key', 'mirror')),
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        updated TEXT NOT NULL,
        PRIMARY KEY (account_id, kind, name)
    ) STRICT;
    "#,
    // 5: the engines' own state (the runtime's VPCs and instances, the EC2, ELBv2 and auto
    // scaling providers' records), one JSON document per engine in the engine's serde shape,
    // replaced whole in one transaction. Until this version each was a JSON file in the data
    // dir; the daemon imports those on its first start (`import_engine_state`).
    r#"
    CREATE TABLE engine_state (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        updated TEXT NOT NULL
    ) STRICT;
    "#,
    // 6: a mutating call's audit record as known when its change commits, in the same
    // transaction; the final record replaces it once the response is known, and a restart
    // finishes what a killed daemon left here (`audit_scope.rs`).
    r#"
    CREATE TABLE audit_pending (
        request_id TEXT PRIMARY KEY,
        time_ms INTEGER NOT NULL,
        access_key_id TEXT,
        principal TEXT,
        account_id TEXT,
        target_account_id TEXT,
        action TEXT NOT NULL,
        target TEXT NOT NULL
    ) STRICT;
    "#,
    // 7: build pipeline runs (issue #17): one row per run of a workflow file, its jobs and
    // their steps with each step's log.
    r#"
    CREATE TABLE pipeline_runs (
        id INTEGER PRIMARY KEY,
        account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        repo TEXT NOT NULL,
        workflow TEXT NOT NULL,
        name TEXT,
        event TEXT NOT NULL,
        git_ref TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        status TEXT NOT NULL,
        diagnostics TEXT NOT NULL,
        created TEXT NOT NULL,
        started TEXT,
        finished TEXT
    ) STRICT;
    CREATE INDEX pipeline_runs_repo ON pipeline_runs(account_id, repo, id);
    CREATE TABLE pipeline_jobs (
        run_id INTEGER NOT NULL REFERENCES pipeline_runs(id) ON DELETE CASCADE,
        job TEXT NOT NULL,
        seq INTEGER NOT NULL,
        runs_on TEXT NOT NULL,
        needs TEXT NOT NULL,
        status TEXT NOT NULL,
        started TEXT,
        finished TEXT,
        PRIMARY KEY (run_id, job)
    ) STRICT;
    CREATE TABLE pipeline_steps (
        run_id INTEGER NOT NULL,
        job TEXT NOT NULL,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        started TEXT,
        finished TEXT,
        log TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, job, idx),
        FOREIGN KEY (run_id, job) REFERENCES pipeline_jobs(run_id, job) ON DELETE CASCADE
    ) STRICT;
    "#,
    // 8: the secrets of AWS-compatible access keys, sealed by the daemon (SigV4 needs the
    // secret itself, so a derived key is not enough); the key's row stays in access_keys.
    r#"
    CREATE TABLE aws_secrets (
        key_id TEXT PRIMARY KEY REFERENCES access_keys(id) ON DELETE CASCADE,
        sealed TEXT NOT NULL
    ) STRICT;
    "#,
    // 9: the inputs of a `workflow_dispatch` pipeline run (issue #17), as a JSON object.
    r#"
    ALTER TABLE pipeline_runs ADD COLUMN inputs TEXT NOT NULL DEFAULT '{}';
    "#,
    // 10: re-runs of pipeline runs (issue #17): the run an attempt re-runs and its number,
    // each job's outputs (what `needs.<job>.outputs` reads), and whether a job's result was
    // carried over from the earlier attempt.
    r#"
    ALTER TABLE pipeline_runs ADD COLUMN rerun_of INTEGER;
    ALTER TABLE pipeline_runs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE pipeline_jobs ADD COLUMN outputs TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE pipeline_jobs ADD COLUMN reused INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The schema version this build writes.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings `conn` up to [`current_version`], refusing a newer database.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let known = current_version();
    if found > known {
        return Err(StoreError::NewerSchema {
            path: path.to_owned(),
            found,
            known,
        });
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(found).unwrap_or(0))
    {
        let version = i as i64 + 1;
        let step = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()
        };
        step(conn).map_err(|source| StoreError::Migration { version, source })?;
    }
    Ok(())
}

/// Undoes the steps after `version` that can be undone (the ones that only add tables), so
/// tests can make the database an older Spindle left. Refuses any other step.
#[doc(hidden)]
pub fn rewind(path: &Path, version: i64) -> Result<(), StoreError> {
    const UNDO: &[(i64, &str)] = &[
        (5, "DROP TABLE engine_state;"),
        (6, "DROP TABLE audit_pending;"),
        (
            7,
            "DROP TABLE pipeline_steps; DROP TABLE pipeline_jobs; DROP TABLE pipeline_runs;",
        ),
        (8, "DROP TABLE aws_secrets;"),
        (9, "ALTER TABLE pipeline_runs DROP COLUMN inputs;"),
        (
            10,
            "ALTER TABLE pipeline_jobs DROP COLUMN reused; ALTER TABLE pipeline_jobs DROP COLUMN outputs; \
             ALTER TABLE pipeline_runs DROP COLUMN attempt; ALTER TABLE pipeline_runs DROP COLUMN rerun_of;",
        ),
    ];
    let mut conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tx = conn.transaction()?;
    for step in (version + 1..=found).rev() {
        let Some((_, sql)) = UNDO.iter().find(|(v, _)| *v == step) else {
            return Err(StoreError::Corrupt {
                detail: format!("schema step {step} can't be undone"),
            });
        };
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", version)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let mut c = Connection::open(&path).unwrap();
        migrate(&mut c, &path).unwrap();
        migrate(&mut c, &path).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, current_version());
        c.pragma_update(None, "user_version", current_version() + 1)
            .unwrap();
        drop(c);
        let err = crate::Store::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found, .. } if found == current_version() + 1),
            "{err}"
        );
        assert!(err.to_string().contains("newer than this build"), "{err}");
    }

    #[test]
    fn rewinds_to_version_4_and_migrates_up_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(crate::Store::open(&path).unwrap());
        rewind(&path, 4).unwrap();
        let c = Connection::open(&path).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 4);
        assert!(c.prepare("SELECT * FROM engine_state").is_err());
        drop(c);
        let s = crate::Store::open(&path).unwrap();
        assert_eq!(s.engine_state("runtime").unwrap(), None);
        assert!(
            rewind(&path, 3).is_err(),
            "step 4 adds apt tables that hold data"
        );
    }
}
