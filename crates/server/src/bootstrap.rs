//! The first start: the management account and the admin credential.

use crate::ServerError;
use spindle_client::{CredentialsFile, Profile};
use spindle_model::{AccessKeyId, AccountName};
use spindle_store::{NewKey, Store};
use std::io::IsTerminal;
use std::path::Path;
use time::OffsetDateTime;

/// The management account's name: it holds the admin credential and nothing else.
pub const MANAGEMENT_ACCOUNT: &str = "management";

/// On an empty database, creates the management account and an admin key, writes the key to
/// the credentials file and prints it once. Later starts only refresh the profile's endpoint.
pub fn ensure_admin(
    store: &Store,
    credentials_file: &Path,
    profile: &str,
    endpoint: &str,
    now: OffsetDateTime,
) -> Result<(), ServerError> {
    let boxed = |e: Box<dyn std::error::Error + Send + Sync>| ServerError::Bootstrap { source: e };
    if let Some(mgmt) = store.management_account().map_err(|e| boxed(e.into()))? {
        refresh_endpoint(store, credentials_file, profile, endpoint, &mgmt.id);
        return Ok(());
    }
    let name = AccountName::parse(MANAGEMENT_ACCOUNT).expect("constant name is valid");
    let account = store
        .create_account(
            &name,
            "Holds the installation's admin credential",
            true,
            now,
        )
        .map_err(|e| boxed(e.into()))?;
    let mut rng = rand::thread_rng();
    let id = AccessKeyId::generate(&mut rng, false);
    let secret = spindle_auth::generate_secret(&mut rng);
    let key = spindle_auth::derive_signing_key(&id, &secret);
    let allow = vec!["*".to_string()];
    store
        .insert_key(
            &NewKey {
                id: &id,
                account_id: &account.id,
                signing_key: &key.0,
                admin: true,
                allow: &allow,
                description: "admin credential created at first start",
                expires_unix: None,
                role_name: None,
                session_name: None,
                source_key_id: None,
            },
            now,
        )
        .map_err(|e| boxed(e.into()))?;
    let p = Profile {
        access_key_id: Some(id.clone()),
        secret_access_key: Some(secret.clone()),
        endpoint: Some(endpoint.to_owned()),
        account: Some(account.id.to_string()),
        expiration: None,
    };
    CredentialsFile::upsert(credentials_file, profile, p).map_err(|e| boxed(e.into()))?;
    // The secret goes to the terminal only, never through the log (which may be a file).
    if std::io::stderr().is_terminal() {
        eprintln!(
            "Created the admin credential (shown once; also saved in {} as profile [{profile}]):\n  access key id:     {id}\n  secret access key: {secret}",
            credentials_file.display()
        );
    }
    tracing::info!(access_key_id = %id, credentials_file = %credentials_file.display(), profile, "created the admin credential");
    Ok(())
}

/// Keeps the admin profile pointing at where this daemon listens, if it is this installation's.
fn refresh_endpoint(
    store: &Store,
    file: &Path,
    profile: &str,
    endpoint: &str,
    mgmt: &spindle_model::AccountId,
) {
    let Ok(mut f) = CredentialsFile::load(file) else {
        return;
    };
    let Some(p) = f.profiles.get_mut(profile) else {
        return;
    };
    let ours = p
        .access_key_id
        .as_ref()
        .and_then(|id| store.get_key(id).ok().flatten())
        .is_some_and(|k| k.admin && &k.account_id == mgmt);
    if ours && p.endpoint.as_deref() != Some(endpoint) {
        p.endpoint = Some(endpoint.to_owned());
        if let Err(e) = f.save(file) {
            tracing::warn!(error = %e, "cannot update the admin profile's endpoint");
        }
    }
}
