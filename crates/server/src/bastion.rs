//! The SSH bastion in the daemon: each account's SSH user CA and the jump host's host key,
//! sealed at rest (the `ssh-bastion` state document holds only `{sealed:v1:…}` strings, with
//! the key of `sealer.rs`), certificate signing for `spindle ssh cert`, and the jump host's
//! backend: which account a CA belongs to, the per-connection grant check (`bastion:Connect`,
//! the access key still live), where a target is and which VPC namespace to open it from, and
//! one audit record per attempt.

use crate::api::ApiError;
use crate::app::App;
use crate::auth::Call;
use crate::sealer::Sealer;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use spindle_auth::{authorize, Decision, Grant};
use spindle_model::api::Account;
use spindle_model::ssh::{BastionInfo, SignSshCertRequest, SignSshCertResponse};
use spindle_model::{AccessKeyId, AccountId, Action};
use spindle_sshgate::ssh_key::{Algorithm, PrivateKey};
use spindle_sshgate::{
    Attempt, Backend, BoxFuture, CertRequest, EndpointView, Gate, Identity, UserCa,
};
use spindle_store::AuditRecord;
use spindle_store::Store;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;

/// The state document's name in `engine_state`.
pub const DOC: &str = "ssh-bastion";
/// A certificate's lifetime when the request names none.
pub const DEFAULT_TTL_SECS: u64 = 8 * 3600;

/// What the document holds: every value sealed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Doc {
    /// Account id → the CA's OpenSSH private key, sealed.
    cas: BTreeMap<String, String>,
    /// The jump host's host key, sealed.
    host_key: Option<String>,
}

struct Keys {
    cas: BTreeMap<AccountId, Arc<UserCa>>,
    host_key: Option<PrivateKey>,
}

pub struct Bastion {
    store: Arc<Store>,
    sealer: Option<Arc<Sealer>>,
    runtime: Option<Arc<spindle_runtime::Runtime>>,
    /// Loaded once; every change saves the whole document in one transaction while held.
    keys: Mutex<Keys>,
    gate: OnceLock<(Gate, String)>,
}

type Res<T> = Result<T, ApiError>;

fn internal(what: &str) -> ApiError {
    ApiError::internal(&format!("ssh bastion: {what}"))
}

impl Bastion {
    /// Loads the sealed keys; a document that can't be read or unsealed leaves the bastion
    /// without them (logged), and nothing is overwritten until a key is created.
    pub fn open(
        store: Arc<Store>,
        sealer: Option<Arc<Sealer>>,
        runtime: Option<Arc<spindle_runtime::Runtime>>,
    ) -> Bastion {
        let keys = load(&store, sealer.as_deref()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ssh bastion keys unreadable; signing is off");
            Keys {
                cas: BTreeMap::new(),
                host_key: None,
            }
        });
        Bastion {
            store,
            sealer,
            runtime,
            keys: Mutex::new(keys),
            gate: OnceLock::new(),
        }
    }

    /// Saves `keys` whole (sealed), one transaction.
    fn save(&self, keys: &Keys) -> Res<()> {
        let sealer = self
            .sealer
            .as_ref()
            .ok_or_else(|| internal("no sealing key (stack-secrets.key); the CA can't be kept"))?;
        let doc = Doc {
            cas: keys
                .cas
                .iter()
                .map(|(a, ca)| (a.to_string(), sealer.seal_str(&ca.to_openssh())))
                .collect(),
            host_key: keys.host_key.as_ref().map(|k| {
                sealer.seal_str(
                    &k.to_openssh(spindle_sshgate::ssh_key::ssh_key::LineEnding::LF)
                        .expect("an in-memory key encodes"),
                )
            }),
        };
        let body = serde_json::to_string(&doc).expect("the document serialises");
        self.store.put_engine_state(DOC, &body, crate::app::now())?;
        Ok(())
    }

    /// The account's CA, created (and saved) on first use.
    fn ca(&self, account: &AccountId) -> Res<Arc<UserCa>> {
        let mut keys = self.keys.lock().unwrap();
        if let Some(ca) = keys.cas.get(account) {
            return Ok(ca.clone());
        }
        let ca = Arc::new(UserCa::generate());
        keys.cas.insert(account.clone(), ca.clone());
        if let Err(e) = self.save(&keys) {
            keys.cas.remove(account);
            return Err(e);
        }
        Ok(ca)
    }

    fn host_key(&self) -> Res<PrivateKey> {
        let mut keys = self.keys.lock().unwrap();
        if let Some(k) = &keys.host_key {
            return Ok(k.clone());
        }
        let k = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)
            .map_err(|_| internal("cannot make a host key"))?;
        keys.host_key = Some(k.clone());
        if let Err(e) = self.save(&keys) {
            keys.host_key = None;
            return Err(e);
        }
        Ok(k)
    }

    /// Starts the jump host on `addr`. A failure is logged and leaves the bastion off: the
    /// API still serves (tests run many daemons; only one can have the default port).
    pub async fn start_gate(self: &Arc<Self>, addr: &str) {
        let key = match self.host_key() {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = ?e, "ssh bastion off");
                return;
            }
        };
        let host_line = key.public_key().to_openssh().unwrap_or_default();
        let backend: Arc<dyn Backend> = Arc::new(GateBackend(self.clone()));
        match Gate::start(addr, key, backend).await {
            Ok(g) => {
                tracing::info!(address = %g.local_addr, "ssh bastion listening");
                let _ = self.gate.set((g, host_line));
            }
            Err(e) => tracing::warn!(error = %crate::api::error_chain(&e), "ssh bastion off"),
        }
    }

    pub fn stop_gate(&self) {
        if let Some((g, _)) = self.gate.get() {
            g.stop();
        }
    }

    fn info(&self, ca: &UserCa) -> BastionInfo {
        BastionInfo {
            ca_public_key: ca.public_line(),
            ca_fingerprint: ca.fingerprint(),
            address: self.gate.get().map(|(g, _)| g.local_addr.to_string()),
            host_public_key: self.gate.get().map(|(_, h)| h.clone()),
        }
    }
}

fn load(store: &Store, sealer: Option<&Sealer>) -> Result<Keys, String> {
    let mut keys = Keys {
        cas: BTreeMap::new(),
        host_key: None,
    };
    let Some(body) = store.engine_state(DOC).map_err(|e| e.to_string())? else {
        return Ok(keys);
    };
    let doc: Doc = serde_json::from_str(&body).map_err(|e| format!("{DOC}: {e}"))?;
    let sealer = sealer.ok_or("no sealing key to open the sealed keys")?;
    let open = |s: &str| -> Result<String, String> {
        sealer
            .unseal_str(s)
            .ok_or("a key is stored unsealed")?
            .map_err(|e| e.to_string())
    };
    for (account, sealed) in &doc.cas {
        let id = AccountId::parse(account).map_err(|e| format!("{DOC}: cas.{account}: {e}"))?;
        let ca = UserCa::from_openssh(&open(sealed)?).map_err(|e| e.to_string())?;
        keys.cas.insert(id, Arc::new(ca));
    }
    if let Some(h) = &doc.host_key {
        keys.host_key = Some(PrivateKey::from_openssh(open(h)?).map_err(|e| e.to_string())?);
    }
    Ok(keys)
}

// ---------------------------------------------------------------------- handlers

fn scope(app: &App, call: &Call, account: &str) -> Res<Account> {
    app.scope(call, account, format!("account/{account}/ssh"))
}

/// `GET /v1/accounts/{account}/ssh`
pub async fn describe(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<BastionInfo>> {
    let a = scope(&app, &call, &account)?;
    let ca = app.bastion.ca(&a.id)?;
    Ok(Json(app.bastion.info(&ca)))
}

/// `POST /v1/accounts/{account}/ssh/certificates`: signs the caller's key for the caller's
/// own identity (`ACCOUNT/ACCESS_KEY_ID`), whose grants the jump host checks per connection.
pub async fn sign_certificate(
    State(app): State<App>,
    Path(account): Path<String>,
    call: Call,
) -> Res<Json<SignSshCertResponse>> {
    let req: SignSshCertRequest = call.json()?;
    let a = scope(&app, &call, &account)?;
    let ca = app.bastion.ca(&a.id)?;
    let principals = if req.principals.is_empty() {
        vec!["root".to_string()]
    } else {
        req.principals.clone()
    };
    let key_id = format!("{}/{}", a.id, call.caller.key_id);
    let valid_after = crate::app::now().unix_timestamp().max(0) as u64;
    let serial = rand::random::<u64>() >> 1;
    let cert = ca
        .sign(&CertRequest {
            public_key: &req.public_key,
            key_id: &key_id,
            principals: &principals,
            serial,
            valid_after,
            ttl_secs: req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS),
        })
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    call.set_target(format!("account/{account}/ssh/certificates/{serial}"));
    Ok(Json(SignSshCertResponse {
        certificate: cert
            .to_openssh()
            .map_err(|_| internal("cannot encode the certificate"))?,
        serial,
        key_id,
        principals,
        valid_after: cert.valid_after(),
        valid_before: cert.valid_before(),
        bastion: app.bastion.info(&ca),
    }))
}

// ---------------------------------------------------------------------- the gate's backend

struct GateBackend(Arc<Bastion>);

impl GateBackend {
    /// The grant check for one connection: the certificate's access key must still be live
    /// and in the CA's account, and hold `bastion:Connect` there, minus deny rules.
    fn permitted(&self, who: &Identity) -> Result<(AccountId, spindle_store::KeyRecord), String> {
        let account = AccountId::parse(&who.account).map_err(|e| format!("bad-identity: {e}"))?;
        let key = who
            .key_id
            .split_once('/')
            .filter(|(a, _)| *a == who.account)
            .and_then(|(_, k)| AccessKeyId::parse(k).ok())
            .ok_or_else(|| {
                format!(
                    "bad-identity: key id `{}` is not ACCOUNT/ACCESS_KEY_ID of this CA's account",
                    who.key_id
                )
            })?;
        let rec = self
            .0
            .store
            .get_key(&key)
            .map_err(|e| format!("store: {e}"))?
            .filter(|r| r.account_id == account)
            .ok_or_else(|| format!("revoked-key: access key {key} no longer exists"))?;
        let now = crate::app::now().unix_timestamp();
        if !rec.active || rec.expires_unix.is_some_and(|t| t <= now) {
            return Err(format!(
                "revoked-key: access key {key} is revoked or expired"
            ));
        }
        let deny: Vec<String> = if rec.admin {
            Vec::new()
        } else {
            self.0
                .store
                .list_deny_rules(&account)
                .map_err(|e| format!("store: {e}"))?
                .into_iter()
                .map(|r| r.pattern)
                .collect()
        };
        let grant = Grant {
            admin: rec.admin,
            allow: &rec.allow,
            deny: &deny,
        };
        match authorize(grant, Action::BastionConnect) {
            Decision::Allow => Ok((account, rec)),
            Decision::Deny(why) => Err(format!("grant: {why}")),
        }
    }

    /// The account's instance named by id or private address: its address and VPC.
    fn target(&self, account: &AccountId, host: &str) -> Result<(String, String), String> {
        let rt = self
            .0
            .runtime
            .as_ref()
            .ok_or("no-runtime: this daemon runs no instances")?;
        rt.list()
            .into_iter()
            .find(|i| {
                spindle_model::instance_owner(&i.tags).as_ref() == Some(account)
                    && (i.id == host || i.private_ip.to_string() == host)
            })
            .map(|i| (i.private_ip.to_string(), i.vpc_id))
            .ok_or_else(|| format!("unknown-target: no instance `{host}` in account {account}"))
    }
}

/// The account's connect endpoint that reaches `vpc` ([`spindle_sshgate::choose`]); the
/// refusal names why none does.
fn endpoint_for(
    rt: &spindle_runtime::Runtime,
    account: &AccountId,
    vpc: &str,
) -> Result<String, String> {
    let views: Vec<EndpointView> = rt
        .endpoints()
        .into_iter()
        .filter(|e| spindle_model::instance_owner(&e.tags).as_ref() == Some(account))
        .map(|e| EndpointView {
            reaches: rt.endpoint_reach(&e.id).unwrap_or_default(),
            id: e.id,
            vpc: e.vpc_id,
        })
        .collect();
    spindle_sshgate::choose(vpc, &views)
        .map(|e| e.id.clone())
        .map_err(|e| e.to_string())
}

impl Backend for GateBackend {
    fn authority(&self, ca_fingerprint: &str) -> Option<String> {
        let keys = self.0.keys.lock().unwrap();
        keys.cas
            .iter()
            .find(|(_, ca)| ca.fingerprint() == ca_fingerprint)
            .map(|(a, _)| a.to_string())
    }

    fn open<'a>(
        &'a self,
        who: &'a Identity,
        host: &'a str,
        port: u16,
    ) -> BoxFuture<'a, Result<TcpStream, String>> {
        Box::pin(async move {
            let (account, _) = self.permitted(who)?;
            let (ip, vpc) = self.target(&account, host)?;
            let rt = self.0.runtime.clone().ok_or("no-runtime")?;
            let endpoint = endpoint_for(&rt, &account, &vpc)?;
            let addr = format!("{ip}:{port}");
            // A thread joins the endpoint's VPC namespace to open the socket from the
            // endpoint's address; the socket keeps the namespace.
            let std = tokio::task::spawn_blocking(move || {
                rt.connect_from_endpoint(&endpoint, &addr, Duration::from_secs(10))
            })
            .await
            .map_err(|e| format!("connect: {e}"))?
            .map_err(|e| format!("unreachable: {}", crate::api::error_chain(&e)))?;
            std.set_nonblocking(true)
                .map_err(|e| format!("connect: {e}"))?;
            let s = TcpStream::from_std(std).map_err(|e| format!("connect: {e}"))?;
            let _ = s.set_nodelay(true);
            Ok(s)
        })
    }

    fn record(&self, a: Attempt) {
        let account = a.account.as_deref().and_then(|s| AccountId::parse(s).ok());
        let key = a
            .credential
            .split_once(' ')
            .and_then(|(_, id)| id.split_once('/'))
            .map(|(_, k)| k.to_string());
        let mut target = if a.target.is_empty() {
            "login".to_string()
        } else {
            a.target.clone()
        };
        target.push_str(&format!(
            " from {} by {}; {} B up, {} B down, {} ms",
            a.source,
            if a.credential.is_empty() {
                "-"
            } else {
                &a.credential
            },
            a.bytes_up,
            a.bytes_down,
            a.duration.as_millis()
        ));
        let rec = AuditRecord {
            time: crate::app::now(),
            request_id: format!("ssh-{:016x}", rand::random::<u64>()),
            access_key_id: key,
            principal: None,
            account_id: account,
            target_account_id: None,
            action: Action::BastionConnect.as_str().to_string(),
            target,
            result: if a.allowed { "ok" } else { "denied" },
            status: 0,
            error_code: Some(a.reason),
        };
        if let Err(e) = self.0.store.append_audit(&rec) {
            tracing::error!(error = %e, "cannot record an ssh attempt");
        }
    }
}
