//! What a DB instance runs: one shell script, made here (pure), that prepares the data
//! directory on the bound volume, on the first boot runs `initdb` and creates the master user
//! (from a SCRAM verifier, never the password) and the database, writes the access rules on
//! every boot, and then `exec`s the server in the foreground as the instance's main process.
//!
//! The verifier never travels in the instance's command (which the runtime records and
//! `ps` shows on the host): the first boot's SQL is a file on the volume, [`INIT_FILE`],
//! mode 0600 and owned by root (the volume is bound idmapped, so the instance's root owns
//! it), written by [`Bootstrap::write_init_file`] before the launch and removed by the
//! script once the cluster is made (and on every later boot, in case one was left).

/// Where the volume is mounted inside the instance.
pub const DATA_MOUNT: &str = "/var/lib/postgresql/data";

/// The first boot's SQL (it holds the verifier), at the volume's root.
pub const INIT_FILE: &str = ".spindle-init.sql";

/// A name PostgreSQL and AWS both accept for `MasterUsername` and `DBName`: a letter, then
/// letters, digits or `_`, at most 63 characters (AWS's rule for PostgreSQL). Such a name
/// needs no quoting in SQL or shell, so the script can't be broken out of.
pub fn check_identifier(value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !ok_first
        || value.len() > 63
        || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "`{value}` must begin with a letter and hold only letters, digits and `_` (at most 63)"
        ));
    }
    Ok(())
}

/// Names PostgreSQL keeps for itself; AWS refuses them as `MasterUsername` too.
pub const RESERVED_USERS: &[&str] = &["postgres", "rdsadmin", "public", "current_user", "user"];

/// What a first boot creates. Identifiers are checked by [`check_identifier`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Init {
    pub master_user: String,
    /// `SCRAM-SHA-256$…` (see [`crate::scram`]).
    pub verifier: String,
    pub db_name: Option<String>,
}

/// The settings the script needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    /// `None`: the volume holds a cluster already (a restored snapshot); a volume without
    /// one then fails the boot rather than making an empty cluster.
    pub init: Option<Init>,
    pub port: u16,
    /// Clients from here may log in with a password (the VPC's CIDR).
    pub allow_cidr: String,
}

impl Bootstrap {
    /// The instance's command: `/bin/sh -c SCRIPT`.
    pub fn command(&self) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), self.script()]
    }

    /// The first boot's SQL: the master user from its verifier, and the database.
    pub fn init_sql(init: &Init) -> String {
        let create_db = match &init.db_name {
            Some(db) => format!("CREATE DATABASE {db} OWNER {};\n", init.master_user),
            None => String::new(),
        };
        format!(
            "CREATE ROLE {user} LOGIN CREATEDB CREATEROLE PASSWORD '{verifier}';\n{create_db}",
            user = init.master_user,
            verifier = init.verifier,
        )
    }

    /// Writes [`INIT_FILE`] into `volume` (mode 0600, replacing any earlier one) when this
    /// is a first boot; a restore writes none.
    pub fn write_init_file(&self, volume: &std::path::Path) -> Result<(), crate::RdsError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(init) = &self.init else {
            return Ok(());
        };
        let path = volume.join(INIT_FILE);
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| crate::RdsError::io("create", &path, e))?;
        f.write_all(Self::init_sql(init).as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| crate::RdsError::io("write", &path, e))
    }

    /// The script (see the module's documentation).
    pub fn script(&self) -> String {
        let init = match &self.init {
            Some(_) => format!(
                r#"  rm -rf "$PGDATA/.init"
  mkdir "$PGDATA/.init" && chown postgres:postgres "$PGDATA/.init" && chmod 700 "$PGDATA/.init"
  runuser -u postgres -- "$BIN/initdb" -D "$PGDATA/.init" -U postgres -E UTF8 --no-locale --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  runuser -u postgres -- "$BIN/postgres" --single -D "$PGDATA/.init" -c dynamic_shared_memory_type=mmap postgres >/dev/null < "$PGDATA/{INIT_FILE}"
  # The cluster appears at its final place in one step per entry, after it is complete: a
  # boot killed during initdb starts over rather than finding half a cluster.
  for f in "$PGDATA/.init"/* ; do mv "$f" "$PGDATA/"; done
  rmdir "$PGDATA/.init"
"#
            ),
            None => "  echo \"the volume holds no cluster to restore\" >&2; exit 1\n".into(),
        };
        format!(
            r#"set -eu
PGDATA={DATA_MOUNT}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
{init}fi
rm -f "$PGDATA/{INIT_FILE}"
cat > "$PGDATA/pg_hba.conf" <<'HBA'
local all all peer
host all all 127.0.0.1/32 scram-sha-256
host all all {cidr} scram-sha-256
HBA
chown postgres:postgres "$PGDATA/pg_hba.conf"
exec runuser -u postgres -- "$BIN/postgres" -D "$PGDATA" -c listen_addresses='*' -c port={port} -c password_encryption=scram-sha-256 -c unix_socket_directories=/run/postgresql -c dynamic_shared_memory_type=mmap
"#,
            cidr = self.allow_cidr,
            port = self.port,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> Bootstrap {
        Bootstrap {
            init: Some(Init {
                master_user: "app".into(),
                verifier: "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5".into(),
                db_name: Some("expenses".into()),
            }),
            port: 5433,
            allow_cidr: "10.40.0.0/16".into(),
        }
    }

    #[test]
    fn identifiers_are_checked_like_aws_checks_them_for_postgres() {
        for ok in ["a", "app", "App_1", &"x".repeat(63)] {
            assert_eq!(check_identifier(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1app",
            "_app",
            "app-db",
            "app db",
            "a'b",
            "a;b",
            &"x".repeat(64),
        ] {
            let e = check_identifier(bad).unwrap_err();
            assert!(e.contains("must begin with a letter"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_script_creates_the_user_from_a_file_and_listens_where_asked() {
        let s = boot().script();
        for want in [
            "< \"$PGDATA/.spindle-init.sql\"",
            "rm -f \"$PGDATA/.spindle-init.sql\"",
            "host all all 10.40.0.0/16 scram-sha-256",
            "-c port=5433",
            "-c password_encryption=scram-sha-256",
            "if [ ! -s \"$PGDATA/PG_VERSION\" ]",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        // The verifier is in no part of the command the runtime records.
        for part in boot().command() {
            assert!(!part.contains("SCRAM-SHA-256$"), "{part}");
            assert!(!part.contains("CREATE ROLE"), "{part}");
        }
        assert!(s
            .lines()
            .last()
            .unwrap()
            .starts_with("exec runuser -u postgres"));
        assert_eq!(boot().command()[..2], ["/bin/sh", "-c"]);
        let mut restored = boot();
        restored.init = None;
        let s = restored.script();
        assert!(!s.contains("initdb") && !s.contains("--single"), "{s}");
        assert!(s.contains("the volume holds no cluster to restore"), "{s}");
    }

    #[test]
    fn the_init_file_holds_the_user_and_database_and_only_root_reads_it() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let b = boot();
        std::fs::write(t.path().join(INIT_FILE), "stale").unwrap();
        b.write_init_file(t.path()).unwrap();
        let path = t.path().join(INIT_FILE);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "CREATE ROLE app LOGIN CREATEDB CREATEROLE PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5';\nCREATE DATABASE expenses OWNER app;\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut none = boot();
        none.init.as_mut().unwrap().db_name = None;
        assert!(!Bootstrap::init_sql(none.init.as_ref().unwrap()).contains("CREATE DATABASE"));
        let other = tempfile::tempdir().unwrap();
        let mut restored = boot();
        restored.init = None;
        restored.write_init_file(other.path()).unwrap();
        assert!(
            !other.path().join(INIT_FILE).exists(),
            "a restore has no init"
        );
    }
}
