//! The first start (the management account and the admin credential), and the way back in when
//! that credential is lost ([`new_admin_credential`]).
//!
//! The credentials file may hold profiles of several installations (a user trying a second
//! data dir on the side). A profile that holds a key is never overwritten: the daemon stores
//! only a derived key, so the file may hold the only copy of another installation's admin
//! secret. A new admin credential goes to the profile asked for if that is free, else to one
//! named after the data dir, and the daemon says which (and records it in `server.json`).

use crate::datadir::DataDir;
use crate::ServerError;
use spindle_credentials::{CredentialsFile, Profile};
use spindle_model::{AccessKeyId, AccountId, AccountName};
use spindle_store::{NewKey, Store};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The management account's name: it holds the admin credential and nothing else.
pub const MANAGEMENT_ACCOUNT: &str = "management";

fn boxed(e: impl std::error::Error + Send + Sync + 'static) -> ServerError {
    ServerError::Bootstrap {
        source: Box::new(e),
    }
}

/// On an empty database, creates the management account and an admin key, writes the key to
/// the credentials file and prints it once. Later starts only refresh the endpoint of the
/// profile that holds this installation's admin key. Returns that profile's name, if the file
/// has one.
pub fn ensure_admin(
    store: &Store,
    credentials_file: &Path,
    profile: &str,
    endpoint: &str,
    data_dir: &Path,
    now: OffsetDateTime,
) -> Result<Option<String>, ServerError> {
    if let Some(mgmt) = store.management_account().map_err(boxed)? {
        let found = refresh_endpoint(store, credentials_file, profile, endpoint, &mgmt.id);
        if found.is_none() {
            tracing::warn!(
                credentials_file = %credentials_file.display(),
                "no profile in the credentials file holds this installation's admin credential; \
                 `spindle server --new-admin-credential --data-dir {}` (with the daemon stopped) mints a new one",
                data_dir.display()
            );
        }
        return Ok(found);
    }
    // Read the file before creating anything, so a file we can't read fails the start with
    // no admin key created that nobody could ever use.
    let file = CredentialsFile::load(credentials_file).map_err(boxed)?;
    let name = AccountName::parse(MANAGEMENT_ACCOUNT).expect("constant name is valid");
    let account = store
        .create_account(
            &name,
            "Holds the installation's admin credential",
            true,
            now,
        )
        .map_err(boxed)?;
    let Minted {
        id,
        secret,
        profile: written,
    } = mint_into(
        store,
        &account.id,
        "admin credential created at first start",
        now,
        Dest {
            file,
            path: credentials_file,
            wanted: profile,
            data_dir,
            endpoint: Some(endpoint),
        },
    )?;
    // The secret goes to the terminal only, never through the log (which may be a file).
    if std::io::stderr().is_terminal() {
        eprintln!(
            "Created the admin credential (shown once; also saved in {} as profile [{written}]):\n  access key id:     {id}\n  secret access key: {secret}",
            credentials_file.display()
        );
    }
    if written != profile {
        eprintln!(
            "Profile [{profile}] in {} holds another installation's credential, so this one's admin credential is profile [{written}] (use --profile {written}).",
            credentials_file.display()
        );
    }
    tracing::info!(access_key_id = %id, credentials_file = %credentials_file.display(), profile = %written, "created the admin credential");
    Ok(Some(written))
}

/// A new admin key in the management account; returns its id and secret.
fn mint_admin_key(
    store: &Store,
    account: &AccountId,
    description: &str,
    now: OffsetDateTime,
) -> Result<(AccessKeyId, String), ServerError> {
    let mut rng = rand::thread_rng();
    let id = AccessKeyId::generate(&mut rng, false);
    let secret = spindle_auth::generate_secret(&mut rng);
    let key = spindle_auth::derive_signing_key(&id, &secret);
    let allow = vec!["*".to_string()];
    store
        .insert_key(
            &NewKey {
                id: &id,
                account_id: account,
                signing_key: &key.0,
                admin: true,
                allow: &allow,
                description,
                expires_unix: None,
                role_name: None,
                session_name: None,
                source_key_id: None,
            },
            now,
        )
        .map_err(boxed)?;
    Ok((id, secret))
}

/// Where [`mint_into`] writes a new admin credential.
struct Dest<'a> {
    /// The credentials file as read before anything was created.
    file: CredentialsFile,
    path: &'a Path,
    /// The profile asked for; see [`free_profile_name`].
    wanted: &'a str,
    data_dir: &'a Path,
    endpoint: Option<&'a str>,
}

/// A new admin credential and the profile it was written to.
struct Minted {
    id: AccessKeyId,
    secret: String,
    profile: String,
}

/// Mints an admin key in `account` and adds it to the credentials file under
/// [`free_profile_name`]. If the file can't be written, the key is revoked again: nobody could
/// use a key that is in no file, and an unknown admin key should not be left behind.
fn mint_into(
    store: &Store,
    account: &AccountId,
    description: &str,
    now: OffsetDateTime,
    mut to: Dest<'_>,
) -> Result<Minted, ServerError> {
    let (id, secret) = mint_admin_key(store, account, description, now)?;
    let name = free_profile_name(&to.file, to.wanted, to.data_dir);
    to.file.profiles.insert(
        name.clone(),
        Profile {
            access_key_id: Some(id.clone()),
            secret_access_key: Some(secret.clone()),
            endpoint: to.endpoint.map(str::to_owned),
            account: Some(account.to_string()),
            expiration: None,
        },
    );
    if let Err(e) = to.file.save(to.path) {
        if let Err(r) = store.revoke_key(account, &id, now) {
            tracing::warn!(error = %r, access_key_id = %id, "cannot revoke the unwritten admin key");
        }
        return Err(boxed(e));
    }
    Ok(Minted {
        id,
        secret,
        profile: name,
    })
}

/// Where a new admin credential goes: `wanted` if no profile of that name holds a key, else
/// `WANTED-DIR` (DIR: the data dir's name, as a-z0-9-), else `WANTED-DIR-2`, `-3`, …
pub fn free_profile_name(file: &CredentialsFile, wanted: &str, data_dir: &Path) -> String {
    let free = |n: &str| {
        file.profiles
            .get(n)
            .is_none_or(|p| p.access_key_id.is_none() && p.secret_access_key.is_none())
    };
    if free(wanted) {
        return wanted.to_owned();
    }
    let dir = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_owned());
    let slug: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let slug = slug.trim_matches('-');
    let base = format!("{wanted}-{}", if slug.is_empty() { "data" } else { slug });
    if free(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| free(n))
        .expect("an unbounded range has a free name")
}

/// Whether `id` is one of this installation's admin keys.
fn is_ours(store: &Store, id: Option<&AccessKeyId>, mgmt: &AccountId) -> bool {
    id.and_then(|id| store.get_key(id).ok().flatten())
        .is_some_and(|k| k.admin && &k.account_id == mgmt)
}

/// Finds the profile holding this installation's admin key (`profile` first, then any, in
/// name order) and points it at where this daemon listens. Returns its name.
fn refresh_endpoint(
    store: &Store,
    file: &Path,
    profile: &str,
    endpoint: &str,
    mgmt: &AccountId,
) -> Option<String> {
    let mut f = CredentialsFile::load(file).ok()?;
    let ours = |p: &Profile| is_ours(store, p.access_key_id.as_ref(), mgmt);
    let name = if f.profiles.get(profile).is_some_and(ours) {
        profile.to_owned()
    } else {
        f.profiles
            .iter()
            .find(|(_, p)| ours(p))
            .map(|(n, _)| n.clone())?
    };
    let p = f.profiles.get_mut(&name).expect("found above");
    if p.endpoint.as_deref() != Some(endpoint) {
        p.endpoint = Some(endpoint.to_owned());
        if let Err(e) = f.save(file) {
            tracing::warn!(error = %e, "cannot update the admin profile's endpoint");
        }
    }
    Some(name)
}

/// What [`new_admin_credential`] made.
#[derive(Debug, Clone)]
pub struct NewAdminCredential {
    pub access_key_id: AccessKeyId,
    pub secret_access_key: String,
    /// The profile it was written to.
    pub profile: String,
    pub credentials_file: PathBuf,
}

/// The way back in: mints a new admin key for the installation in `data_dir` and writes it to
/// the credentials file (under `profile` if that is free, else a name of its own). Nothing is
/// revoked. The data dir must not be in use: this takes the daemon's lock, so it refuses while
/// a daemon runs there (the daemon owns the database while it runs).
pub fn new_admin_credential(
    data_dir: &Path,
    credentials_file: &Path,
    profile: &str,
) -> Result<NewAdminCredential, ServerError> {
    let db = data_dir.join("state.db");
    if !db.is_file() {
        return Err(ServerError::NoInstallation {
            path: data_dir.to_owned(),
        });
    }
    let dir = DataDir::lock(data_dir)?;
    let store = Store::open(&dir.db_path()).map_err(|source| ServerError::Store {
        path: dir.db_path(),
        source,
    })?;
    let mgmt =
        store
            .management_account()
            .map_err(boxed)?
            .ok_or_else(|| ServerError::NoInstallation {
                path: data_dir.to_owned(),
            })?;
    let file = CredentialsFile::load(credentials_file).map_err(boxed)?;
    let now = OffsetDateTime::now_utc();
    let endpoint = DataDir::read_info(data_dir).map(|i| i.endpoint);
    let Minted {
        id,
        secret,
        profile: written,
    } = mint_into(
        &store,
        &mgmt.id,
        "admin credential minted by `spindle server --new-admin-credential`",
        now,
        Dest {
            file,
            path: credentials_file,
            wanted: profile,
            data_dir,
            endpoint: endpoint.as_deref(),
        },
    )?;
    let audit = spindle_store::AuditRecord {
        time: now,
        request_id: format!("new-admin-credential-{}", std::process::id()),
        access_key_id: None,
        principal: Some("root on the host (spindle server --new-admin-credential)".into()),
        account_id: Some(mgmt.id.clone()),
        target_account_id: Some(mgmt.id.clone()),
        action: "NewAdminCredential".into(),
        target: format!("account/{MANAGEMENT_ACCOUNT}/keys/{id}"),
        result: "ok",
        status: 200,
        error_code: None,
    };
    if let Err(e) = store.append_audit(&audit) {
        tracing::warn!(error = %e, "cannot write the audit record of the new admin credential");
    }
    tracing::info!(access_key_id = %id, profile = %written, "minted a new admin credential");
    Ok(NewAdminCredential {
        access_key_id: id,
        secret_access_key: secret,
        profile: written,
        credentials_file: credentials_file.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_holding_a_key_is_never_the_new_name() {
        let key = Profile {
            access_key_id: Some(AccessKeyId::parse("AKIAABCDEFGHIJKLMNOP").unwrap()),
            secret_access_key: Some("s".into()),
            ..Profile::default()
        };
        let endpoint_only = Profile {
            endpoint: Some("http://127.0.0.1:1".into()),
            ..Profile::default()
        };
        let file = |names: &[(&str, &Profile)]| CredentialsFile {
            profiles: names
                .iter()
                .map(|(n, p)| (n.to_string(), (*p).clone()))
                .collect(),
        };
        for (profiles, wanted, dir, want) in [
            (vec![], "default", "/x/try", "default"),
            (
                vec![("default", &endpoint_only)],
                "default",
                "/x/try",
                "default",
            ),
            (vec![("default", &key)], "default", "/x/try", "default-try"),
            (
                vec![("default", &key)],
                "default",
                "/x/My Data.d",
                "default-my-data-d",
            ),
            (vec![("default", &key)], "default", "/", "default-data"),
            (
                vec![("default", &key), ("default-try", &key)],
                "default",
                "/x/try",
                "default-try-2",
            ),
            (
                vec![
                    ("default", &key),
                    ("default-try", &key),
                    ("default-try-2", &key),
                ],
                "default",
                "/x/try",
                "default-try-3",
            ),
            (vec![("default", &key)], "ops", "/x/try", "ops"),
        ] {
            assert_eq!(
                free_profile_name(&file(&profiles), wanted, Path::new(dir)),
                want,
                "{profiles:?} {wanted} {dir}"
            );
        }
    }
}
