//! The engines' state documents in the daemon's SQLite store, and the one-time import of the
//! JSON files that held them before.
//!
//! The runtime and the EC2, ELBv2 and auto scaling providers keep their records in memory and
//! save them whole after each change through [`spindle_runtime::StateDoc`]; here that is one
//! row of the store's `engine_state` table, replaced in one transaction.
//!
//! Daemons before schema version 5 kept each document in a JSON file. [`import_json_files`]
//! runs at every start before any engine opens: it reads the files still there, inserts them
//! in one transaction (a document the store already has is kept), and only after that commit
//! renames each file to `*.migrated`. Killed before the commit, the files are still there and
//! the next start imports them; killed after it, the next start finds the rows, imports
//! nothing and finishes the renames.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spindle_runtime::{DocError, StateDoc};
use spindle_store::Store;
use time::OffsetDateTime;

use crate::api::error_chain;
use crate::ServerError;

/// The runtime's VPCs, subnets, security groups, peerings and instances.
pub const RUNTIME: &str = "runtime";
/// The EC2 providers' security group rule sources, launch templates and instance tags.
pub const EC2: &str = "ec2-providers";
/// The ELBv2 providers' records (load balancers, listeners, rules, target groups).
pub const ELBV2: &str = "elbv2-providers";
/// The auto scaling groups and their attachments.
pub const AUTOSCALING: &str = "autoscaling";
/// The hosted zones and their record sets (`spindle_providers::Route53`).
pub const ROUTE53: &str = spindle_providers::ROUTE53_DOC;

/// Each document and the file (under the data dir) it lived in before.
pub const LEGACY_FILES: [(&str, &str); 4] = [
    (RUNTIME, "runtime/state.json"),
    (EC2, "runtime/ec2-providers.json"),
    (ELBV2, "elbv2-providers.json"),
    (AUTOSCALING, "runtime/autoscaling.json"),
];

/// One engine's document in the store.
#[derive(Debug)]
pub struct SqlDoc {
    store: Arc<Store>,
    name: &'static str,
}

impl SqlDoc {
    pub fn arc(store: &Arc<Store>, name: &'static str) -> Arc<dyn StateDoc> {
        Arc::new(SqlDoc {
            store: store.clone(),
            name,
        })
    }
}

impl StateDoc for SqlDoc {
    fn name(&self) -> String {
        format!("{} (state.db)", self.name)
    }

    fn load(&self) -> Result<Option<Vec<u8>>, DocError> {
        self.store
            .engine_state(self.name)
            .map(|b| b.map(String::into_bytes))
            .map_err(|e| DocError::new(self.name(), error_chain(&e)))
    }

    fn save(&self, body: &[u8]) -> Result<(), DocError> {
        let body = std::str::from_utf8(body).map_err(|e| DocError::new(self.name(), e))?;
        self.store
            .put_engine_state(self.name, body, OffsetDateTime::now_utc())
            .map_err(|e| DocError::new(self.name(), error_chain(&e)))
    }
}

/// The name a file gets once its content is in the store.
pub fn migrated_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".migrated");
    PathBuf::from(s)
}

/// Moves the JSON state files still in `data_dir` into the store (see the module docs).
/// Returns the documents imported by this call.
pub fn import_json_files(store: &Store, data_dir: &Path) -> Result<Vec<String>, ServerError> {
    let mut found: Vec<(&str, PathBuf, String)> = Vec::new();
    for (name, rel) in LEGACY_FILES {
        let path = data_dir.join(rel);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ServerError::StateImport {
                    path,
                    detail: e.to_string(),
                })
            }
        };
        // Refuse what the engine would refuse at open, naming the place, before anything moves.
        if let Err(e) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            return Err(ServerError::StateImport {
                detail: format!(
                    "{}:{}:{}: not valid JSON: {e}",
                    path.display(),
                    e.line(),
                    e.column()
                ),
                path,
            });
        }
        let body = String::from_utf8(bytes).map_err(|e| ServerError::StateImport {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        found.push((name, path, body));
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let docs: Vec<(&str, String)> = found.iter().map(|(n, _, b)| (*n, b.clone())).collect();
    let imported = store
        .import_engine_state(&docs, OffsetDateTime::now_utc())
        .map_err(|e| ServerError::StateImport {
            path: found[0].1.clone(),
            detail: error_chain(&e),
        })?;
    for (name, path, _) in &found {
        let to = migrated_path(path);
        std::fs::rename(path, &to).map_err(|e| ServerError::StateImport {
            path: path.clone(),
            detail: format!(
                "imported, but renaming it to `{}` failed: {e}",
                to.display()
            ),
        })?;
        if imported.iter().any(|i| i == name) {
            tracing::info!(file = %path.display(), document = name, "state file moved into state.db");
        } else {
            tracing::warn!(file = %path.display(), document = name, "state.db already held this document; the file was left over from an interrupted import");
        }
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Arc<Store> {
        Arc::new(Store::open(&dir.join("state.db")).unwrap())
    }

    #[test]
    fn sql_doc_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let doc = SqlDoc::arc(&s, ELBV2);
        assert_eq!(doc.load().unwrap(), None);
        doc.save(b"{\"a\":1}").unwrap();
        assert_eq!(doc.load().unwrap().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(s.engine_state(ELBV2).unwrap().as_deref(), Some("{\"a\":1}"));
    }

    #[test]
    fn import_moves_each_file_once_and_resumes_after_an_interrupted_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("runtime")).unwrap();
        std::fs::write(d.join("runtime/state.json"), "{\"vpcs\":{}}").unwrap();
        std::fs::write(d.join("elbv2-providers.json"), "{}").unwrap();
        let s = store(d);
        // A previous start committed the runtime's document and was killed before renaming.
        s.put_engine_state(RUNTIME, "{\"newer\":true}", OffsetDateTime::now_utc())
            .unwrap();
        let imported = import_json_files(&s, d).unwrap();
        assert_eq!(imported, vec![ELBV2.to_owned()]);
        assert_eq!(
            s.engine_state(RUNTIME).unwrap().as_deref(),
            Some("{\"newer\":true}")
        );
        assert_eq!(s.engine_state(ELBV2).unwrap().as_deref(), Some("{}"));
        assert!(!d.join("runtime/state.json").exists());
        assert!(d.join("runtime/state.json.migrated").exists());
        assert!(d.join("elbv2-providers.json.migrated").exists());
        assert!(import_json_files(&s, d).unwrap().is_empty());
    }

    /// The state files `main` (2e1e163, schema version 4) wrote for a VPC, a subnet, a
    /// security group, a launch template, an auto scaling group with its instance, a target
    /// group and a load balancer (`tests/data/v4`: copied from its data dir after a root
    /// deploy of the template in `crates/cli/tests/asg_lb.rs`), imported and opened by today's
    /// engines: everything is still known. That it keeps working is the root test
    /// `a_data_dir_from_before_the_state_store_is_migrated_and_keeps_serving`.
    #[test]
    fn the_state_files_of_a_v4_data_dir_open_in_todays_engines() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v4");
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        for (_, rel) in LEGACY_FILES {
            let to = data.join(rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(fixture.join(rel), &to).unwrap();
        }
        let s = store(dir.path());
        let mut imported = import_json_files(&s, &data).unwrap();
        imported.sort();
        assert_eq!(imported, vec![AUTOSCALING, EC2, ELBV2, RUNTIME]);

        let mut cfg = spindle_runtime::RuntimeConfig::new(data.join("runtime"), "samfx");
        cfg.cgroup_root = dir.path().join("cg");
        let rt = spindle_runtime::Runtime::open_with(
            cfg,
            Arc::new(spindle_runtime::FakeKernel::new()),
            SqlDoc::arc(&s, RUNTIME),
        )
        .unwrap();
        let vpcs = rt.vpcs();
        assert_eq!(vpcs.len(), 1, "{vpcs:?}");
        assert_eq!(vpcs[0].cidr.to_string(), "10.238.0.0/20");
        assert_eq!(vpcs[0].subnets.len(), 1);
        let members: Vec<_> = rt
            .list()
            .into_iter()
            .filter(|i| i.tags.get("aws:autoscaling:groupName").map(String::as_str) == Some("web"))
            .collect();
        assert_eq!(members.len(), 1, "{members:?}");

        let ec2 =
            spindle_providers::Ec2::open_with(rt.clone(), Some(SqlDoc::arc(&s, EC2))).unwrap();
        let asg = spindle_providers::AutoScaling::open_with(
            ec2,
            spindle_autoscale::Rules::default(),
            SqlDoc::arc(&s, AUTOSCALING),
        )
        .unwrap();
        let account = spindle_model::instance_owner(&members[0].tags).expect("an owned instance");
        let group = asg.describe(&account, "web").unwrap();
        assert_eq!((group.min, group.max, group.desired), (1, 3, 1));
        assert!(group.launch_template.starts_with("lt-"), "{group:?}");
        assert_eq!(
            group.instances.iter().map(|i| &i.id).collect::<Vec<_>>(),
            vec![&members[0].id]
        );

        let elb = spindle_providers::Elb::open_with(
            None,
            Some(SqlDoc::arc(&s, ELBV2)),
            spindle_providers::ElbOptions::default(),
        )
        .unwrap();
        let arns = elb.record_arns();
        assert!(
            arns.iter().any(|a| a.contains(":loadbalancer/app/web/")),
            "{arns:?}"
        );
        assert!(
            arns.iter().any(|a| a.contains(":listener/app/web/")),
            "{arns:?}"
        );
        assert!(arns.contains(&group.target_groups[0]), "{arns:?} {group:?}");
    }

    #[test]
    fn a_broken_file_is_refused_with_its_place_and_nothing_moves() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("runtime")).unwrap();
        std::fs::write(d.join("runtime/state.json"), "{}").unwrap();
        std::fs::write(d.join("runtime/autoscaling.json"), "[\n  {\"a\": }\n]").unwrap();
        let s = store(d);
        let err = import_json_files(&s, d).unwrap_err().to_string();
        assert!(err.contains("autoscaling.json:2:"), "{err}");
        assert_eq!(s.engine_state(RUNTIME).unwrap(), None);
        assert!(d.join("runtime/state.json").exists());
    }
}
