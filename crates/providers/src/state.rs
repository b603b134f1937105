//! The providers' own small state: what the runtime does not record. Saved whole after every
//! change as one JSON document ([`StateDoc`]: a row of the daemon's SQLite store, replaced in
//! one transaction), so it survives a daemon restart.
//!
//! - Security group rule sources: a group's effective rules are its inline rules (from the
//!   `AWS::EC2::SecurityGroup` resource) plus standalone rules (`AWS::EC2::SecurityGroupIngress`
//!   / `Egress` resources, keyed by their `sgr-…` id). Updating either side re-puts the
//!   union, so updating a group's inline rules never drops a standalone rule.
//! - Launch templates (stored data only) and their versions, each kept parsed beside its
//!   JSON ([`LaunchTemplateRecord::parsed`]).
//! - Instance tags changed by an update (the runtime keeps launch-time tags only).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use spindle_runtime::{DocError, SecurityGroup, SgRule, StateDoc};

use crate::ec2_spec::{stored_version, LaunchData};
use crate::error::Ec2Error;
use crate::Kind;

/// Where a group's rules come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GroupRules {
    pub vpc_id: String,
    pub ingress: Vec<SgRule>,
    /// `None`: AWS's default allow-all egress rule.
    pub egress: Option<Vec<SgRule>>,
    /// Standalone rules by `sgr-…` id.
    #[serde(default)]
    pub extra: BTreeMap<String, ExtraRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExtraRule {
    pub egress: bool,
    pub rule: SgRule,
}

fn push_unique(v: &mut Vec<SgRule>, r: &SgRule) {
    if !v.contains(r) {
        v.push(r.clone());
    }
}

impl GroupRules {
    /// Adopts a group the providers did not create: its current rules count as inline.
    pub fn from_group(g: &SecurityGroup) -> Self {
        GroupRules {
            vpc_id: g.vpc_id.clone(),
            ingress: g.ingress.clone(),
            egress: Some(g.egress.clone()),
            extra: BTreeMap::new(),
        }
    }

    /// The rule set to put: inline plus standalone rules, without duplicates.
    pub fn effective(&self) -> (Vec<SgRule>, Option<Vec<SgRule>>) {
        let mut ingress = Vec::new();
        for r in &self.ingress {
            push_unique(&mut ingress, r);
        }
        for x in self.extra.values().filter(|x| !x.egress) {
            push_unique(&mut ingress, &x.rule);
        }
        let extra_egress: Vec<&SgRule> = self
            .extra
            .values()
            .filter(|x| x.egress)
            .map(|x| &x.rule)
            .collect();
        let egress = if extra_egress.is_empty() {
            self.egress.clone()
        } else {
            let mut e = Vec::new();
            for r in self
                .egress
                .clone()
                .unwrap_or_else(SecurityGroup::default_egress)
                .iter()
                .chain(extra_egress)
            {
                push_unique(&mut e, r);
            }
            Some(e)
        };
        (ingress, egress)
    }
}

/// A stored launch template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LaunchTemplateRecord {
    pub id: String,
    pub name: String,
    /// Version `n` is `versions[n - 1]` (`LaunchTemplateData` as JSON).
    pub versions: Vec<serde_json::Value>,
    pub default_version: u32,
    /// `versions` parsed, one for one: made when a version is added and when the record is
    /// loaded, so launching reads typed fields. A stored version that no longer parses keeps
    /// its problems, reported when something launches from it.
    #[serde(skip)]
    pub parsed: Vec<Result<LaunchData, String>>,
}

impl LaunchTemplateRecord {
    pub fn new(id: String, name: String, raw: serde_json::Value, data: LaunchData) -> Self {
        LaunchTemplateRecord {
            id,
            name,
            versions: vec![raw],
            default_version: 1,
            parsed: vec![Ok(data)],
        }
    }

    /// Adds a version and makes it the default; a retried update finds its version there.
    pub fn push(&mut self, raw: serde_json::Value, data: LaunchData) {
        if self.versions.last() != Some(&raw) {
            self.versions.push(raw);
            self.parsed.push(Ok(data));
        }
        self.default_version = self.versions.len() as u32;
    }

    /// Parses the stored versions again (after a load).
    fn reparse(&mut self) {
        self.parsed = self.versions.iter().map(stored_version).collect();
    }

    /// The parsed data of version `n` (1-based, in range).
    pub fn data(&self, n: u32) -> Result<&LaunchData, Ec2Error> {
        match self.parsed.get(n as usize - 1) {
            Some(Ok(d)) => Ok(d),
            Some(Err(m)) => Err(Ec2Error::invalid(
                Kind::LaunchTemplate.type_name(),
                format!("stored version {n} of launch template {}: {m}", self.id),
            )),
            None => Err(Ec2Error::LaunchTemplateNotFound(format!(
                "{} version {n}",
                self.id
            ))),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Tables {
    #[serde(default)]
    pub groups: BTreeMap<String, GroupRules>,
    #[serde(default)]
    pub launch_templates: BTreeMap<String, LaunchTemplateRecord>,
    #[serde(default)]
    pub instance_tags: BTreeMap<String, BTreeMap<String, String>>,
}

/// The tables behind a mutex, saved to `doc` (none: memory only).
#[derive(Debug)]
pub(crate) struct Store {
    doc: Option<Arc<dyn StateDoc>>,
    tables: Mutex<Tables>,
}

impl Store {
    pub fn open(doc: Option<Arc<dyn StateDoc>>) -> Result<Self, Ec2Error> {
        let mut tables: Tables = match &doc {
            None => Tables::default(),
            Some(d) => match d.load()? {
                Some(b) => serde_json::from_slice(&b).map_err(|e| DocError::new(d.name(), e))?,
                None => Tables::default(),
            },
        };
        for rec in tables.launch_templates.values_mut() {
            rec.reparse();
        }
        Ok(Store {
            doc,
            tables: Mutex::new(tables),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves the tables as they were last saved or
        // mutated; keep serving rather than poisoning every later call.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn save(&self, t: &Tables) -> Result<(), Ec2Error> {
        let Some(d) = &self.doc else {
            return Ok(());
        };
        let bytes = serde_json::to_vec(t).map_err(|e| DocError::new(d.name(), e))?;
        Ok(d.save(&bytes)?)
    }
}
