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
    Attempt, Backend, BoxFuture, CertRequest, EndpointView, Gate, HostCa, Identity, UserCa,
};
use spindle_store::AuditRecord;
use spindle_store::Store;
use std::collections::{BTreeMap, BTreeSet};
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
    /// Account id → the account's SSH host CA (signs instances' host keys), sealed.
    #[serde(default)]
    host_cas: BTreeMap<String, String>,
    /// The jump host's host key, sealed.
    host_key: Option<String>,
    /// Registered plain public keys (public, kept in clear).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    plain_keys: Vec<PlainKey>,
    /// Accounts that turned the plain-key fallback off.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    key_fallback_off: BTreeSet<String>,
}

/// A registered plain public key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PlainKey {
    pub id: String,
    pub account: String,
    pub access_key_id: String,
    pub fingerprint: String,
    pub public_key: String,
    pub added: u64,
}

#[derive(Default, Clone)]
pub(crate) struct Keys {
    cas: BTreeMap<AccountId, Arc<UserCa>>,
    host_cas: BTreeMap<AccountId, Arc<HostCa>>,
    host_key: Option<PrivateKey>,
    pub plain_keys: Vec<PlainKey>,
    pub key_fallback_off: BTreeSet<String>,
}

/// Which of an account's two CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CaKind {
    User,
    Host,
}

pub struct Bastion {
    store: Arc<Store>,
    sealer: Option<Arc<Sealer>>,
    runtime: Option<Arc<spindle_runtime::Runtime>>,
    /// Loaded once; every change saves the whole document in one transaction while held.
    pub(crate) keys: Mutex<Keys>,
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
            Keys::default()
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
    pub(crate) fn save(&self, keys: &Keys) -> Res<()> {
        let sealer = self
            .sealer
            .as_ref()
            .ok_or_else(|| internal("no sealing key (stack-secrets.key); the CA can't be kept"))?;
        let seal_all = |cas: &BTreeMap<AccountId, Arc<UserCa>>| {
            cas.iter()
                .map(|(a, ca)| (a.to_string(), sealer.seal_str(&ca.to_openssh())))
                .collect()
        };
        let doc = Doc {
            cas: seal_all(&keys.cas),
            host_cas: seal_all(&keys.host_cas),
            host_key: keys.host_key.as_ref().map(|k| {
                sealer.seal_str(
                    &k.to_openssh(spindle_sshgate::ssh_key::ssh_key::LineEnding::LF)
                        .expect("an in-memory key encodes"),
                )
            }),
            plain_keys: keys.plain_keys.clone(),
            key_fallback_off: keys.key_fallback_off.clone(),
        };
        let body = serde_json::to_string(&doc).expect("the document serialises");
        self.store.put_engine_state(DOC, &body, crate::app::now())?;
        Ok(())
    }

    /// The account's user CA, created (and saved) on first use.
    fn ca(&self, account: &AccountId) -> Res<Arc<UserCa>> {
        self.ca_of(CaKind::User, account)
    }

    /// The account's user or host CA, created (and saved) on first use; a failed save leaves
    /// no new CA behind.
    pub(crate) fn ca_of(&self, kind: CaKind, account: &AccountId) -> Res<Arc<UserCa>> {
        let mut keys = self.keys.lock().unwrap();
        fn map(k: &mut Keys, kind: CaKind) -> &mut BTreeMap<AccountId, Arc<UserCa>> {
            match kind {
                CaKind::User => &mut k.cas,
                CaKind::Host => &mut k.host_cas,
            }
        }
        if let Some(ca) = map(&mut keys, kind).get(account) {
            return Ok(ca.clone());
        }
        let ca = Arc::new(UserCa::generate());
        map(&mut keys, kind).insert(account.clone(), ca.clone());
        if let Err(e) = self.save(&keys) {
            map(&mut keys, kind).remove(account);
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

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn runtime(&self) -> Option<&Arc<spindle_runtime::Runtime>> {
        self.runtime.as_ref()
    }

    /// The jump host's live sessions (none when it is off).
    pub(crate) fn sessions(&self) -> Vec<spindle_sshgate::SessionInfo> {
        self.gate
            .get()
            .map(|(g, _)| g.sessions())
            .unwrap_or_default()
    }

    /// Ends a live session, saying `by` killed it.
    pub(crate) fn kill(&self, id: &str, by: &str) -> Option<spindle_sshgate::SessionInfo> {
        self.gate.get()?.0.kill(id, by)
    }

    pub fn stop_gate(&self) {
        if let Some((g, _)) = self.gate.get() {
            g.stop();
        }
    }

    fn info(&self, account: &AccountId, ca: &UserCa) -> Res<BastionInfo> {
        let host_ca = self.ca_of(CaKind::Host, account)?;
        Ok(BastionInfo {
            ca_public_key: ca.public_line(),
            ca_fingerprint: ca.fingerprint(),
            host_ca_public_key: Some(host_ca.public_line()),
            address: self.gate.get().map(|(g, _)| g.local_addr.to_string()),
            host_public_key: self.gate.get().map(|(_, h)| h.clone()),
            key_fallback: Some(
                !self
                    .keys
                    .lock()
                    .unwrap()
                    .key_fallback_off
                    .contains(account.as_str()),
            ),
        })
    }
}

fn load(store: &Store, sealer: Option<&Sealer>) -> Result<Keys, String> {
    let mut keys = Keys::default();
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
    for (field, from, to) in [
        ("cas", &doc.cas, &mut keys.cas),
        ("host_cas", &doc.host_cas, &mut keys.host_cas),
    ] {
        for (account, sealed) in from {
            let id =
                AccountId::parse(account).map_err(|e| format!("{DOC}: {field}.{account}: {e}"))?;
            let ca = UserCa::from_openssh(&open(sealed)?).map_err(|e| e.to_string())?;
            to.insert(id, Arc::new(ca));
        }
    }
    if let Some(h) = &doc.host_key {
        keys.host_key = Some(PrivateKey::from_openssh(open(h)?).map_err(|e| e.to_string())?);
    }
    keys.plain_keys = doc.plain_keys;
    keys.key_fallback_off = doc.key_fallback_off;
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
    Ok(Json(app.bastion.info(&a.id, &ca)?))
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
    // Agent forwarding is off unless the credential holds `bastion:ForwardAgent`: the
    // certificate then carries `permit-agent-forwarding`, which the instance's sshd honours.
    let who = Identity {
        account: a.id.to_string(),
        key_id: key_id.clone(),
        serial,
        user: String::new(),
    };
    let forward_agent = app.bastion.holds(&who, Action::BastionForwardAgent).is_ok();
    let cert = ca
        .sign_user(
            &CertRequest {
                public_key: &req.public_key,
                key_id: &key_id,
                principals: &principals,
                serial,
                valid_after,
                ttl_secs: req.ttl_secs.unwrap_or(DEFAULT_TTL_SECS),
            },
            forward_agent,
        )
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
        forward_agent,
        bastion: app.bastion.info(&a.id, &ca)?,
    }))
}

// ---------------------------------------------------------------------- the gate's backend

struct GateBackend(Arc<Bastion>);

impl GateBackend {
    /// The grant check for one connection: the certificate's access key must still be live
    /// and in the CA's account, and hold `bastion:Connect` there, minus deny rules.
    fn permitted(&self, who: &Identity) -> Result<(AccountId, spindle_store::KeyRecord), String> {
        self.0.holds(who, Action::BastionConnect)
    }
}

impl Bastion {
    /// Whether `who`'s access key is still live, in its account, and holds `action` there,
    /// minus the account's deny rules; `Err` is a refusal code and message.
    fn holds(
        &self,
        who: &Identity,
        action: Action,
    ) -> Result<(AccountId, spindle_store::KeyRecord), String> {
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
            self.store
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
        match authorize(grant, action) {
            Decision::Allow => Ok((account, rec)),
            Decision::Deny(why) => Err(format!("grant: {why}")),
        }
    }
}

impl GateBackend {
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
    fn key_owner(&self, fingerprint: &str) -> Result<(String, String), String> {
        crate::bastion_keys::owner(&self.0.keys.lock().unwrap(), fingerprint)
    }

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
