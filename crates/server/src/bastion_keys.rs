//! Plain public keys as the bastion's fallback (issue #18, item 2): `spindle ssh key
//! add|list|remove` registers a public key for the caller's credential (its grants decide,
//! per connection, as for a certificate signed for it), and `spindle ssh key-fallback
//! on|off` lets an account accept certificates only. Keys are public and kept in clear in the
//! `ssh-bastion` document; every change saves the whole document in one transaction, and a
//! failed save leaves memory as it was.

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use crate::bastion::{Keys, PlainKey};
use axum::extract::{Path, State};
use axum::Json;
use spindle_model::ssh::{AddSshKeyRequest, SshKey, SshSettings};
use spindle_sshgate::ssh_key::{HashAlg, PublicKey};

type Res<T> = Result<T, ApiError>;

/// Which identity a plain key's `SHA256:…` speaks for: `(account, ACCOUNT/ACCESS_KEY_ID)`, or
/// the refusal code and message.
pub(crate) fn owner(keys: &Keys, fingerprint: &str) -> Result<(String, String), String> {
    let k = keys
        .plain_keys
        .iter()
        .find(|k| k.fingerprint == fingerprint)
        .ok_or("unregistered-key: this public key is not registered with the bastion")?;
    if keys.key_fallback_off.contains(&k.account) {
        return Err(format!(
            "key-fallback-off: account {} accepts certificates only (`spindle ssh key-fallback on`)",
            k.account
        ));
    }
    Ok((
        k.account.clone(),
        format!("{}/{}", k.account, k.access_key_id),
    ))
}

fn view(k: &PlainKey) -> SshKey {
    SshKey {
        id: k.id.clone(),
        fingerprint: k.fingerprint.clone(),
        public_key: k.public_key.clone(),
        access_key_id: k.access_key_id.clone(),
        added: k.added,
    }
}

/// Applies `change` to a copy of the keys and saves it; memory changes only once saved.
fn update<T>(app: &App, change: impl FnOnce(&mut Keys) -> Res<T>) -> Res<T> {
    let mut keys = app.bastion.keys.lock().unwrap();
    let mut next = keys.clone();
    let out = change(&mut next)?;
    app.bastion.save(&next)?;
    *keys = next;
    Ok(out)
}

/// `GET /v1/accounts/{account}/ssh/keys`
pub async fn list(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<Vec<SshKey>>> {
    let a = app.scope(&call, &account, format!("account/{account}/ssh/keys"))?;
    let keys = app.bastion.keys.lock().unwrap();
    Ok(Json(
        keys.plain_keys
            .iter()
            .filter(|k| k.account == a.id.as_str())
            .map(view)
            .collect(),
    ))
}

/// `POST /v1/accounts/{account}/ssh/keys`: registers the key for the caller's credential.
pub async fn add(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<SshKey>> {
    let req: AddSshKeyRequest = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/ssh/keys"))?;
    let key = PublicKey::from_openssh(req.public_key.trim()).map_err(|_| {
        ApiError::bad_request(
            "public_key: expected one OpenSSH public key line (`ssh-ed25519 AAAA… comment`)".into(),
        )
    })?;
    if !spindle_sshgate::ca::algorithm_accepted(&key.algorithm()) {
        return Err(ApiError::bad_request(format!(
            "public_key: algorithm `{}` is not accepted; use ed25519 or ECDSA",
            key.algorithm()
        )));
    }
    let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
    let rec = PlainKey {
        id: format!("key-{:016x}", rand::random::<u64>()),
        account: a.id.to_string(),
        access_key_id: call.caller.key_id.to_string(),
        fingerprint: fingerprint.clone(),
        public_key: key
            .to_openssh()
            .map_err(|_| ApiError::internal("ssh bastion: cannot encode the key"))?,
        added: crate::app::now().unix_timestamp().max(0) as u64,
    };
    call.set_target(format!("account/{account}/ssh/keys/{}", rec.id));
    update(&app, |keys| {
        if keys.plain_keys.iter().any(|k| k.fingerprint == fingerprint) {
            return Err(ApiError::conflict(format!(
                "public key {fingerprint} is already registered; remove it first"
            )));
        }
        keys.plain_keys.push(rec.clone());
        Ok(())
    })?;
    Ok(Json(view(&rec)))
}

/// `DELETE /v1/accounts/{account}/ssh/keys/{key}`
pub async fn remove(
    State(app): State<App>,
    Path((account, key)): Path<(String, String)>,
    call: Call,
) -> Res<Json<SshKey>> {
    let a = app.scope(&call, &account, format!("account/{account}/ssh/keys/{key}"))?;
    update(&app, |keys| {
        let i = keys
            .plain_keys
            .iter()
            .position(|k| k.id == key && k.account == a.id.as_str())
            .ok_or_else(|| {
                ApiError::not_found(format!("ssh key `{key}` not found"))
                    .with_hint("`spindle ssh key list` lists the registered keys")
            })?;
        Ok(view(&keys.plain_keys.remove(i)))
    })
    .map(Json)
}

/// `PUT /v1/accounts/{account}/ssh/settings`
pub async fn settings(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<SshSettings>> {
    let req: SshSettings = call.json()?;
    let a = app.scope(&call, &account, format!("account/{account}/ssh/settings"))?;
    update(&app, |keys| {
        if req.key_fallback {
            keys.key_fallback_off.remove(a.id.as_str());
        } else {
            keys.key_fallback_off.insert(a.id.to_string());
        }
        Ok(())
    })?;
    Ok(Json(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_key_speaks_for_its_credential_until_removed_or_turned_off() {
        let mut keys = Keys::default();
        keys.plain_keys.push(PlainKey {
            id: "key-1".into(),
            account: "123456789012".into(),
            access_key_id: "AKIAEXAMPLE".into(),
            fingerprint: "SHA256:abc".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            added: 0,
        });
        assert_eq!(
            owner(&keys, "SHA256:abc"),
            Ok(("123456789012".into(), "123456789012/AKIAEXAMPLE".into()))
        );
        let e = owner(&keys, "SHA256:other").unwrap_err();
        assert!(e.starts_with("unregistered-key:"), "{e}");
        keys.key_fallback_off.insert("123456789012".into());
        let e = owner(&keys, "SHA256:abc").unwrap_err();
        assert!(e.starts_with("key-fallback-off:"), "{e}");
    }
}
