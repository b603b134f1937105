//! `AWS::RDS::DBSubnetGroup` and `AWS::RDS::DBInstance` (Engine `postgres`) on the runtime,
//! with the engine side in `spindle-rds`.
//!
//! | Type | `Ref` | `Fn::GetAtt` | Changes in place |
//! |---|---|---|---|
//! | `DBSubnetGroup` | its name (`DBSubnetGroupName`, lower-cased, or a derived one) | — | `SubnetIds`, `DBSubnetGroupDescription`, `Tags` |
//! | `DBInstance` | `DBInstanceIdentifier` (lower-cased; derived from the stack and logical id when absent) | `Endpoint.Address`, `Endpoint.Port`, `DBInstanceArn`, `DbiResourceId`, `MasterUserSecret.SecretArn` | `DeletionProtection`, `AllocatedStorage` (a rise), `Tags`, `EngineVersion` (a minor change: only Debian's PostgreSQL 15 is accepted, and the engine is whatever 15.x Debian ships; a major version is refused by name, where AWS would upgrade in place with `AllowMajorVersionUpgrade`) and the ignored properties |
//!
//! A DB instance is a Spindle instance booted from the PostgreSQL engine image (baked on the
//! first DB instance, see `spindle_rds::image`) in the first subnet of its subnet group, in
//! its `VPCSecurityGroups`, with its data directory on a volume — a host directory under
//! `DATA_DIR/rds/volumes/ACCOUNT/ID` bound into it — that outlives the instance. Its first
//! boot runs `initdb`, creates `MasterUsername` from a SCRAM verifier of
//! `MasterUserPassword` (the password itself is never launched or stored by this provider)
//! and `DBName`; every boot allows password logins (`scram-sha-256`) from the VPC's CIDR on
//! `Port`. The create finishes only when the server answers a startup message with an
//! authentication request (`spindle_rds::probe`), asked from the VPC's router.
//!
//! **Delete.** `DeletionProtection: true` refuses it. Otherwise, in the engine's
//! `final_snapshot` hook (before any delete of the instance: a replacement's old one, one
//! removed from the template, one deleted with its stack), the server is shut down (fast),
//! the instance terminated and the volume moved whole into the final snapshot
//! `ID-final-XXXXXXXX` (eight hex digits of the operation's token: collision-free, and
//! found again by a retried delete) under `DATA_DIR/rds/snapshots/ACCOUNT/…`, whatever the
//! `DeletionPolicy` (`Snapshot` is the default for a DB instance on AWS; `Retain` never
//! calls the provider). The delete's stack event names the snapshot.
//! **Replacement** (`DBName`, `Engine`, `MasterUsername`, `DBInstanceIdentifier`,
//! `DBSubnetGroupName`) comes from the change-set schema table; the data-loss guard refuses
//! it without `--allow-data-loss`, and the replaced instance's data goes to its final
//! snapshot like any delete.
//!
//! **`ManageMasterUserPassword: true`** (see `rds_secret`): the password is generated and
//! kept in a Secrets Manager secret (`MasterUserSecret.SecretArn`); `MasterUserPassword` is
//! then refused. The secret outlives the instance, named in its final snapshot's record.
//! DB instances are `SecretTargetAttachment` targets (`host`, `port`, `engine`, `dbname`,
//! `dbInstanceIdentifier`). **Restore:** `DBSnapshotIdentifier` names a
//! snapshot of the account; the new instance's volume is a copy of it (the snapshot stays),
//! with the snapshot's users, passwords and databases, so `MasterUsername`,
//! `MasterUserPassword` and `DBName` are refused beside it. **`AllocatedStorage`** is checked (20–65536
//! GiB, as AWS has it for PostgreSQL) and recorded; it is not enforced as a quota.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spindle_rds::{boot, probe, scram, Bootstrap, Init, Snapshot, Volumes};
use spindle_runtime::{BindMount, InstanceState, LaunchSpec, StateDoc};
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput,
    ProviderRegistry, ReadOutput, ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

use crate::rds_spec::{int_value, DbInstanceSpec, SubnetGroupSpec, DB_INSTANCE};
use crate::{derived_id, scoped_token, Ec2, Kind, TOKEN_TAG};

/// The name of the providers' state document.
pub const RDS_DOC: &str = "rds";
/// The tag naming a DB instance's identifier on the instance that runs its engine. The
/// instance API and EC2's calls leave such instances alone: the DB instance owns them.
pub const DB_INSTANCE_TAG: &str = "spindle:rds-db-instance";

/// How long a new DB instance may take to accept connections after its launch.
const READY_WITHIN: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct SubnetGroupRecord {
    name: String,
    subnets: Vec<String>,
    vpc_id: String,
    token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct DbRecord {
    id: String,
    token: String,
    instance_id: String,
    vpc_id: String,
    address: String,
    port: u16,
    allocated_storage: u32,
    deletion_protection: bool,
    subnet_group: String,
    /// `MasterUserSecret.SecretArn` (`ManageMasterUserPassword: true`).
    #[serde(default)]
    secret_arn: Option<String>,
    #[serde(default)]
    db_name: Option<String>,
}

/// Keyed `ACCOUNT/NAME`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RdsState {
    subnet_groups: BTreeMap<String, SubnetGroupRecord>,
    instances: BTreeMap<String, DbRecord>,
}

/// The RDS providers' shared state: the EC2 handle (its runtime), the records, the volumes
/// and where the engine image is baked.
pub struct Rds {
    ec2: Arc<Ec2>,
    doc: Option<Arc<dyn StateDoc>>,
    state: Mutex<RdsState>,
    volumes: Volumes,
    bake_dir: PathBuf,
    /// Where managed master passwords go (see `rds_secret`).
    pub(crate) secrets: OnceLock<Arc<spindle_secrets::Secrets>>,
}

impl std::fmt::Debug for Rds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rds")
            .field("volumes", &self.volumes)
            .finish_non_exhaustive()
    }
}

fn failed(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Failed(e.to_string())
}

fn key(account: &str, name: &str) -> String {
    format!("{account}/{name}")
}

impl Rds {
    /// Opens the records in `doc` (none: memory only); volumes and snapshots go under `dir`
    /// (`DATA_DIR/rds`), the engine's bake cache in `dir/bake` unless `SPINDLE_RDS_BAKE_DIR`
    /// names another (tests share one across daemons).
    pub fn open_with(
        ec2: Arc<Ec2>,
        doc: Option<Arc<dyn StateDoc>>,
        dir: PathBuf,
    ) -> Result<Arc<Self>, ProviderError> {
        let state = match doc.as_ref().map(|d| d.load()).transpose().map_err(failed)? {
            Some(Some(body)) => serde_json::from_slice(&body)
                .map_err(|e| failed(format!("the {RDS_DOC} state document: {e}")))?,
            _ => RdsState::default(),
        };
        let bake_dir = std::env::var_os("SPINDLE_RDS_BAKE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("bake"));
        Ok(Arc::new(Rds {
            ec2,
            doc,
            state: Mutex::new(state),
            volumes: Volumes::new(dir),
            bake_dir,
            secrets: OnceLock::new(),
        }))
    }

    /// The volumes and snapshots (for `spindle rds snapshots`).
    pub fn volumes(&self) -> &Volumes {
        &self.volumes
    }

    pub fn register(self: &Arc<Self>, registry: &mut ProviderRegistry) {
        for kind in crate::kind::kinds_of(crate::Group::Rds) {
            registry.register(
                kind.type_name(),
                Arc::new(RdsProvider {
                    rds: self.clone(),
                    kind,
                }),
            );
        }
    }

    /// Applies `f` to a copy of the state and saves it; memory changes only if the save did.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut RdsState) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = st.clone();
        let out = f(&mut next)?;
        if let Some(doc) = &self.doc {
            let body = serde_json::to_vec(&next).map_err(failed)?;
            doc.save(&body).map_err(failed)?;
        }
        *st = next;
        Ok(out)
    }

    fn snapshot(&self) -> RdsState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What a `SecretTargetAttachment` merges into a secret for DB instance `id`.
    pub(crate) fn connection_details(
        &self,
        account: &str,
        id: &str,
    ) -> Option<BTreeMap<String, serde_json::Value>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let r = st.instances.get(&key(account, id))?;
        let mut f = BTreeMap::new();
        f.insert("engine".into(), "postgres".into());
        f.insert("host".into(), r.address.clone().into());
        f.insert("port".into(), r.port.into());
        f.insert("dbInstanceIdentifier".into(), r.id.clone().into());
        if let Some(db) = &r.db_name {
            f.insert("dbname".into(), db.clone().into());
        }
        Some(f)
    }
}

struct RdsProvider {
    rds: Arc<Rds>,
    kind: Kind,
}

fn invalid(kind: Kind, message: impl std::fmt::Display) -> ProviderError {
    ProviderError::InvalidRequest(format!("{}: {message}", kind.type_name()))
}

/// The token's hash, as the records keep it.
fn token_hash(cx: &ResourceCx<'_>) -> String {
    derived_id("token", cx)
}

/// AWS's generated identifier shape: `stack-logical-` and a suffix from the token.
fn default_identifier(cx: &ResourceCx<'_>) -> String {
    let mut base = String::new();
    for c in format!("{}-{}", cx.stack_name, cx.logical_id).chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            base.push(c);
        } else if !base.ends_with('-') && !base.is_empty() {
            base.push('-');
        }
    }
    base.truncate(40);
    let base = base.trim_end_matches('-');
    let d = Sha256::digest(scoped_token(cx).as_bytes());
    let id = format!("{base}-{}", &hex::encode(d)[..8]);
    if id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        id
    } else {
        format!("db-{id}")
    }
}

fn instance_output(cx: &ResourceCx<'_>, rec: &DbRecord) -> ProviderOutput {
    let mut attributes = BTreeMap::new();
    attributes.insert(
        "Endpoint.Address".into(),
        Value::String(rec.address.clone()),
    );
    attributes.insert("Endpoint.Port".into(), int_value(rec.port.into()));
    attributes.insert(
        "DBInstanceArn".into(),
        Value::String(format!(
            "arn:aws:rds:{}:{}:db:{}",
            cx.context.region, cx.context.account_id, rec.id
        )),
    );
    let d = Sha256::digest(format!("{}/{}", cx.context.account_id, rec.id).as_bytes());
    attributes.insert(
        "DbiResourceId".into(),
        Value::String(format!("db-{}", hex::encode(d)[..26].to_ascii_uppercase())),
    );
    if let Some(arn) = &rec.secret_arn {
        attributes.insert(
            "MasterUserSecret.SecretArn".into(),
            Value::String(arn.clone()),
        );
    }
    ProviderOutput {
        physical_id: rec.id.clone(),
        attributes,
    }
}

impl RdsProvider {
    fn subnet_group_vpc(&self, subnets: &[String]) -> Result<String, ProviderError> {
        let vpcs = self.rds.ec2.runtime.vpcs();
        let mut vpc_of = Vec::new();
        for s in subnets {
            match vpcs.iter().find(|v| v.subnets.contains_key(s)) {
                Some(v) => vpc_of.push(v.id.clone()),
                None => return Err(ProviderError::NotFound(format!("subnet {s}"))),
            }
        }
        vpc_of.dedup();
        match vpc_of.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(invalid(
                self.kind,
                format!("SubnetIds: the subnets are in several VPCs ({}); a DB subnet group's subnets share one", vpc_of.join(", ")),
            )),
        }
    }

    async fn create_subnet_group(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ProviderOutput, ProviderError> {
        let spec =
            SubnetGroupSpec::parse(&req.properties).map_err(ProviderError::InvalidRequest)?;
        let account = req.cx.account()?.to_string();
        let name = spec
            .name
            .clone()
            .unwrap_or_else(|| derived_id("dbsubnetgroup", &req.cx));
        let vpc_id = self.subnet_group_vpc(&spec.subnet_ids)?;
        let token = token_hash(&req.cx);
        self.rds.change(|st| {
            let k = key(&account, &name);
            match st.subnet_groups.get(&k) {
                Some(r) if r.token != token => {
                    return Err(ProviderError::AlreadyExists(format!(
                        "DB subnet group {name}"
                    )))
                }
                _ => {}
            }
            st.subnet_groups.insert(
                k,
                SubnetGroupRecord {
                    name: name.clone(),
                    subnets: spec.subnet_ids.clone(),
                    vpc_id,
                    token,
                },
            );
            Ok(())
        })?;
        Ok(ProviderOutput {
            physical_id: name,
            attributes: BTreeMap::new(),
        })
    }

    async fn create_instance(
        &self,
        req: &CreateRequest<'_>,
    ) -> Result<ProviderOutput, ProviderError> {
        let cx = &req.cx;
        let spec = DbInstanceSpec::parse(&req.properties).map_err(ProviderError::InvalidRequest)?;
        let account = cx.account()?.to_string();
        let id = spec
            .identifier
            .clone()
            .unwrap_or_else(|| default_identifier(cx));
        let token = token_hash(cx);
        let st = self.rds.snapshot();
        if let Some(rec) = st.instances.get(&key(&account, &id)) {
            if rec.token == token {
                return Ok(instance_output(cx, rec));
            }
            return Err(ProviderError::AlreadyExists(format!("DB instance {id}")));
        }
        let group = st
            .subnet_groups
            .get(&key(&account, &spec.subnet_group))
            .cloned()
            .ok_or_else(|| {
                ProviderError::NotFound(format!(
                    "DB subnet group {} (DBSubnetGroupName)",
                    spec.subnet_group
                ))
            })?;
        let mut tags = BTreeMap::new();
        tags.insert(
            "aws:cloudformation:stack-name".into(),
            cx.stack_name.to_string(),
        );
        tags.insert(
            "aws:cloudformation:logical-id".into(),
            cx.logical_id.to_string(),
        );
        tags.insert(
            spindle_model::STACK_ID_TAG.into(),
            cx.context.stack_id.clone(),
        );
        tags.insert(spindle_model::ACCOUNT_TAG.into(), account.clone());
        tags.insert(TOKEN_TAG.into(), token.clone());
        tags.insert(DB_INSTANCE_TAG.into(), id.clone());
        let mut spec = spec;
        let mut secret_arn = None;
        if spec.manage_password {
            let account_id = cx.account()?;
            let user = spec.master_user.clone().unwrap_or_default();
            let (arn, password) = self.rds.master_secret(cx, &account_id, &id, &user)?;
            spec.password = Some(password);
            secret_arn = Some(arn);
        }
        let rds = self.rds.clone();
        let (acc, ident) = (account.clone(), id.clone());
        let launched = self
            .rds
            .ec2
            .run(&scoped_token(cx), move |e| {
                Ok(launch_db(&rds, e, &acc, &ident, &spec, &group, tags, token))
            })
            .await
            .map_err(ProviderError::from)
            .and_then(|r| r);
        let mut rec = match launched {
            Ok(r) => r,
            Err(err) => {
                if let Some(arn) = &secret_arn {
                    self.rds.forget_master_secret(&cx.account()?, arn);
                }
                return Err(err);
            }
        };
        rec.secret_arn = secret_arn;
        self.rds.change(|st| {
            st.instances.insert(key(&account, &id), rec.clone());
            Ok(())
        })?;
        Ok(instance_output(cx, &rec))
    }

    /// The DB instance record a delete is about, refused while `DeletionProtection` is on.
    fn deletable(&self, req: &DeleteRequest<'_>) -> Result<Option<DbRecord>, ProviderError> {
        let account = req.cx.account()?.to_string();
        let Some(rec) = self
            .rds
            .snapshot()
            .instances
            .get(&key(&account, &req.physical_id))
            .cloned()
        else {
            return Ok(None);
        };
        if rec.deletion_protection {
            return Err(invalid(
                self.kind,
                format!(
                    "DB instance {} has DeletionProtection enabled; update the stack with DeletionProtection: false first",
                    rec.id
                ),
            ));
        }
        Ok(Some(rec))
    }

    /// Stops the engine and moves the volume into the final snapshot (see
    /// [`final_snapshot_id`]); the instance's record stays until the delete.
    async fn take_final_snapshot(
        &self,
        req: &DeleteRequest<'_>,
    ) -> Result<Option<String>, ProviderError> {
        let Some(rec) = self.deletable(req)? else {
            return Ok(None);
        };
        let account = req.cx.account()?.to_string();
        let snap_id = final_snapshot_id(&req.cx, &rec.id);
        let rds = self.rds.clone();
        self.rds
            .ec2
            .run(&scoped_token(&req.cx), move |e| {
                Ok(retire_db(&rds, e, &account, &rec, &snap_id))
            })
            .await?
    }

    async fn delete_instance(&self, req: &DeleteRequest<'_>) -> Result<(), ProviderError> {
        if self.deletable(req)?.is_none() {
            return Ok(());
        }
        // The engine asked for the final snapshot first; this takes it if it didn't.
        self.take_final_snapshot(req).await?;
        let k = key(&req.cx.account()?.to_string(), &req.physical_id);
        self.rds.change(|st| {
            st.instances.remove(&k);
            Ok(())
        })
    }
}

/// Launches the instance and waits until the engine accepts connections; on any failure
/// undoes the launch (and the volume, if this call made it).
#[allow(clippy::too_many_arguments)]
fn launch_db(
    rds: &Rds,
    e: &Ec2,
    account: &str,
    id: &str,
    spec: &DbInstanceSpec,
    group: &SubnetGroupRecord,
    tags: BTreeMap<String, String>,
    token: String,
) -> Result<DbRecord, ProviderError> {
    let rt = &e.runtime;
    let vpc = rt
        .vpcs()
        .into_iter()
        .find(|v| v.id == group.vpc_id)
        .ok_or_else(|| ProviderError::NotFound(format!("VPC {}", group.vpc_id)))?;
    let subnet = group
        .subnets
        .first()
        .cloned()
        .ok_or_else(|| failed("the DB subnet group has no subnets"))?;
    let image = spindle_rds::ensure_postgres(rt, &rds.bake_dir)
        .map_err(|err| failed(crate::error::full_message(&err)))?;
    if let Some(s) = image.baked_seconds {
        tracing::info!(image = %image.id, seconds = s, "baked the PostgreSQL engine image");
    }
    let fresh = !rds.volumes.volume(account, id).exists();
    let undo_volume = || {
        if fresh {
            let _ = rds.volumes.remove_volume(account, id);
        }
    };
    let (volume, init) = match &spec.snapshot {
        Some(snap) => {
            let v = rds
                .volumes
                .restore(account, snap, id)
                .map_err(|err| match err {
                    spindle_rds::RdsError::NoSnapshot(_)
                    | spindle_rds::RdsError::VolumeExists(_) => {
                        ProviderError::InvalidRequest(format!("AWS::RDS::DBInstance: {err}"))
                    }
                    other => failed(crate::error::full_message(&other)),
                })?;
            (v, None)
        }
        None => (
            rds.volumes.ensure_volume(account, id).map_err(failed)?,
            Some(Init {
                master_user: spec.master_user.clone().unwrap_or_default(),
                verifier: scram::new_verifier(spec.password.as_deref().unwrap_or_default()),
                db_name: spec.db_name.clone(),
            }),
        ),
    };
    let boot = Bootstrap {
        init,
        port: spec.port,
        allow_cidr: vpc.cidr.to_string(),
    };
    // The verifier goes to the engine in a 0600 file on the volume, never in its command.
    if let Err(err) = boot.write_init_file(&volume) {
        undo_volume();
        return Err(failed(crate::error::full_message(&err)));
    }
    let mount = BindMount::checked(&volume.display().to_string(), boot::DATA_MOUNT)
        .map_err(|err| failed(format!("the volume: {err}")))?;
    let launched = rt.launch(LaunchSpec {
        image: image.id.clone(),
        instance_type: spec.instance_type.clone(),
        subnet_id: subnet,
        security_groups: spec.security_groups.clone(),
        hostname: Some(id.to_string()),
        tags,
        command: Some(boot.command()),
        mounts: vec![mount],
        ..Default::default()
    });
    let inst = match launched {
        Ok(i) => i,
        Err(err) => {
            undo_volume();
            return Err(crate::Ec2Error::from(err).into());
        }
    };
    let addr = format!("{}:{}", inst.private_ip, spec.port);
    // Any role name gets an authentication request first (PostgreSQL answers a missing role
    // with a mock exchange), so a restored instance is probed as `postgres`.
    let user = spec.master_user.as_deref().unwrap_or("postgres");
    let database = spec.db_name.as_deref().unwrap_or("postgres");
    if let Err(why) = wait_ready(e, &inst.id, &vpc.id, &addr, user, database) {
        let console = rt.console_output(&inst.id).unwrap_or_default();
        let tail: Vec<&str> = console.lines().rev().take(15).collect();
        let _ = rt.terminate(&inst.id, Duration::from_secs(5));
        undo_volume();
        return Err(failed(format!(
            "DB instance {id} did not accept connections on {addr}: {why}; its console ended with:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    Ok(DbRecord {
        id: id.to_string(),
        token,
        instance_id: inst.id,
        vpc_id: vpc.id,
        address: inst.private_ip.to_string(),
        port: spec.port,
        allocated_storage: spec.allocated_storage,
        deletion_protection: spec.deletion_protection,
        subnet_group: group.name.clone(),
        secret_arn: None,
        db_name: spec.db_name.clone(),
    })
}

/// Asks the engine from the VPC's router until it answers a startup message with an
/// authentication request; fails at once if the instance stops.
fn wait_ready(
    e: &Ec2,
    instance: &str,
    vpc: &str,
    addr: &str,
    user: &str,
    database: &str,
) -> Result<(), String> {
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    while started.elapsed() < READY_WITHIN {
        match e.runtime.describe(instance) {
            Ok(i) if i.state == InstanceState::Running => {}
            Ok(i) => {
                let exit = i.last_exit.map(|x| x.reason).unwrap_or_default();
                return Err(format!("the instance is {:?} ({exit})", i.state));
            }
            Err(err) => return Err(err.to_string()),
        }
        match e
            .runtime
            .connect_from_vpc(vpc, addr, Duration::from_secs(1))
        {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                match probe::ask(&mut s, user, database) {
                    probe::Reply::Ready => return Ok(()),
                    probe::Reply::NotReady(m) => last = m,
                }
            }
            Err(err) => last = err.to_string(),
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!(
        "not ready within {}s ({last})",
        READY_WITHIN.as_secs()
    ))
}

/// Shuts the engine down fast and waits (up to 10 s) until it has; the instance's main
/// process then exits. SIGINT is PostgreSQL's fast shutdown: sessions are ended and the
/// server writes a checkpoint, so a copy of its files needs no crash recovery.
fn shut_down_engine(rt: &spindle_runtime::Runtime, instance: &str) {
    let stop = format!(
        "kill -INT $(head -n 1 {}/postmaster.pid) 2>/dev/null; for i in $(seq 100); do [ -e {}/postmaster.pid ] || exit 0; sleep 0.1; done",
        boot::DATA_MOUNT,
        boot::DATA_MOUNT
    );
    let _ = rt.exec(
        instance,
        &["/bin/sh".into(), "-c".into(), stop],
        Duration::from_secs(15),
    );
}

/// The final snapshot's name: the DB instance's identifier, `-final-` and eight hex digits
/// of the delete's operation token, so two deletes never collide (not even within one
/// second) and a delete repeated after a crash finds the snapshot it took.
fn final_snapshot_id(cx: &ResourceCx<'_>, db: &str) -> String {
    let d = Sha256::digest(format!("{}/{db}", scoped_token(cx)).as_bytes());
    format!("{db}-final-{}", &hex::encode(d)[..8])
}

/// Shuts the server down fast, terminates the instance and keeps the volume as snapshot
/// `snap_id`. Returns the snapshot's name, also when an earlier try already took it; `None`
/// when there was no volume.
fn retire_db(
    rds: &Rds,
    e: &Ec2,
    account: &str,
    rec: &DbRecord,
    snap_id: &str,
) -> Result<Option<String>, ProviderError> {
    let rt = &e.runtime;
    if rt.describe(&rec.instance_id).is_ok() {
        shut_down_engine(rt, &rec.instance_id);
        rt.terminate(&rec.instance_id, Duration::from_secs(10))
            .map_err(crate::Ec2Error::from)?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let snap = Snapshot {
        id: snap_id.to_string(),
        db_instance: rec.id.clone(),
        engine: "postgres".into(),
        created_at: now,
        kind: "final".into(),
        master_user_secret: rec.secret_arn.clone(),
    };
    match rds.volumes.snapshot_volume(account, &rec.id, snap) {
        Ok(Some(s)) => {
            tracing::info!(db = %rec.id, snapshot = %s.id, "kept the DB instance's data as its final snapshot");
            Ok(Some(s.id))
        }
        Ok(None) if rds.volumes.has_snapshot(account, snap_id) => Ok(Some(snap_id.to_string())),
        Ok(None) => Ok(None),
        Err(err) => Err(failed(crate::error::full_message(&err))),
    }
}

impl Provider for RdsProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            match self.kind {
                Kind::DbSubnetGroup => self.create_subnet_group(&req).await,
                _ => self.create_instance(&req).await,
            }
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let account = req.cx.account()?.to_string();
            let k = key(&account, &req.physical_id);
            match self.kind {
                Kind::DbSubnetGroup => {
                    let spec = SubnetGroupSpec::parse(&req.properties)
                        .map_err(ProviderError::InvalidRequest)?;
                    let vpc_id = self.subnet_group_vpc(&spec.subnet_ids)?;
                    self.rds.change(|st| {
                        let r = st.subnet_groups.get_mut(&k).ok_or_else(|| {
                            ProviderError::NotFound(format!("DB subnet group {}", req.physical_id))
                        })?;
                        r.subnets = spec.subnet_ids.clone();
                        r.vpc_id = vpc_id;
                        Ok(())
                    })?;
                    Ok(ProviderOutput {
                        physical_id: req.physical_id.clone(),
                        attributes: BTreeMap::new(),
                    })
                }
                _ => {
                    let spec = DbInstanceSpec::parse(&req.properties)
                        .map_err(ProviderError::InvalidRequest)?;
                    DB_INSTANCE
                        .check_update(
                            &req.changed,
                            crate::rds_spec::IN_PLACE,
                            "Spindle changes a DB instance's DeletionProtection, AllocatedStorage, Tags and EngineVersion (minor, within 15) in place; the others are not built yet",
                        )
                        .map_err(ProviderError::from)?;
                    let rec = self.rds.change(|st| {
                        let r = st.instances.get_mut(&k).ok_or_else(|| {
                            ProviderError::NotFound(format!("DB instance {}", req.physical_id))
                        })?;
                        if spec.allocated_storage < r.allocated_storage {
                            return Err(invalid(
                                self.kind,
                                format!(
                                    "AllocatedStorage: {} GiB is less than the {} GiB allocated; storage can only grow",
                                    spec.allocated_storage, r.allocated_storage
                                ),
                            ));
                        }
                        r.allocated_storage = spec.allocated_storage;
                        r.deletion_protection = spec.deletion_protection;
                        Ok(r.clone())
                    })?;
                    Ok(instance_output(&req.cx, &rec))
                }
            }
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            match self.kind {
                Kind::DbSubnetGroup => {
                    let account = req.cx.account()?.to_string();
                    let k = key(&account, &req.physical_id);
                    self.rds.change(|st| {
                        let prefix = format!("{account}/");
                        if st.instances.iter().any(|(i, d)| {
                            i.starts_with(&prefix) && d.subnet_group == req.physical_id
                        }) {
                            return Err(invalid(
                                self.kind,
                                format!("DB subnet group {} is in use by a DB instance; delete the instance first", req.physical_id),
                            ));
                        }
                        st.subnet_groups.remove(&k);
                        Ok(())
                    })
                }
                _ => self.delete_instance(&req).await,
            }
        })
    }

    fn final_snapshot<'a>(
        &'a self,
        req: &'a DeleteRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            match self.kind {
                Kind::DbInstance => self.take_final_snapshot(req).await,
                _ => Ok(None),
            }
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let account = req.cx.account()?.to_string();
            let token = token_hash(&req.cx);
            let st = self.rds.snapshot();
            let prefix = format!("{account}/");
            match self.kind {
                Kind::DbSubnetGroup => {
                    let found = st.subnet_groups.iter().find(|(k, r)| {
                        k.starts_with(&prefix)
                            && match &req.physical_id {
                                Some(p) => &r.name == p,
                                None => r.token == token,
                            }
                    });
                    Ok(found.map(|(_, r)| ReadOutput {
                        physical_id: r.name.clone(),
                        properties: req.properties.clone(),
                        attributes: BTreeMap::new(),
                    }))
                }
                _ => {
                    let found = st.instances.iter().find(|(k, r)| {
                        k.starts_with(&prefix)
                            && match &req.physical_id {
                                Some(p) => &r.id == p,
                                None => r.token == token,
                            }
                    });
                    Ok(found.map(|(_, r)| {
                        let out = instance_output(&req.cx, r);
                        ReadOutput {
                            physical_id: out.physical_id,
                            properties: req.properties.clone(),
                            attributes: out.attributes,
                        }
                    }))
                }
            }
        })
    }
}

#[path = "rds_snapshots.rs"]
mod snapshots;
pub use snapshots::RdsOpError;
