//! What a DB instance runs: one shell script, made here (pure), that prepares the data
//! directory on the bound volume, on the first boot runs `initdb` and creates the master user
//! (from a SCRAM verifier, never the password) and the database, writes the access rules on
//! every boot, and then `exec`s the server in the foreground as the instance's main process.

/// Where the volume is mounted inside the instance.
pub const DATA_MOUNT: &str = "/var/lib/postgresql/data";

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

    /// The script (see the module's documentation).
    pub fn script(&self) -> String {
        let init = match &self.init {
            Some(i) => {
                let create_db = match &i.db_name {
                    Some(db) => format!("CREATE DATABASE {db} OWNER {};\n", i.master_user),
                    None => String::new(),
                };
                format!(
                    r#"  rm -rf "$PGDATA/.init"
  mkdir "$PGDATA/.init" && chown postgres:postgres "$PGDATA/.init" && chmod 700 "$PGDATA/.init"
  runuser -u postgres -- "$BIN/initdb" -D "$PGDATA/.init" -U postgres -E UTF8 --no-locale --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  runuser -u postgres -- "$BIN/postgres" --single -D "$PGDATA/.init" -c dynamic_shared_memory_type=mmap postgres >/dev/null <<'SQL'
CREATE ROLE {user} LOGIN CREATEDB CREATEROLE PASSWORD '{verifier}';
{create_db}SQL
  # The cluster appears at its final place in one step per entry, after it is complete: a
  # boot killed during initdb starts over rather than finding half a cluster.
  for f in "$PGDATA/.init"/* ; do mv "$f" "$PGDATA/"; done
  rmdir "$PGDATA/.init"
"#,
                    user = i.master_user,
                    verifier = i.verifier,
                )
            }
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
    fn the_script_creates_the_user_from_the_verifier_and_listens_where_asked() {
        let s = boot().script();
        for want in [
            "CREATE ROLE app LOGIN CREATEDB CREATEROLE PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5';",
            "CREATE DATABASE expenses OWNER app;",
            "host all all 10.40.0.0/16 scram-sha-256",
            "-c port=5433",
            "-c password_encryption=scram-sha-256",
            "if [ ! -s \"$PGDATA/PG_VERSION\" ]",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        assert!(s
            .lines()
            .last()
            .unwrap()
            .starts_with("exec runuser -u postgres"));
        let mut none = boot();
        none.init.as_mut().unwrap().db_name = None;
        assert!(!none.script().contains("CREATE DATABASE"));
        assert_eq!(none.command()[..2], ["/bin/sh", "-c"]);
        let mut restored = boot();
        restored.init = None;
        let s = restored.script();
        assert!(!s.contains("initdb") && !s.contains("CREATE ROLE"), "{s}");
        assert!(s.contains("the volume holds no cluster to restore"), "{s}");
    }
}
