//! Exports and imports across the account's stacks: what each stack exports, who imports
//! it, and the checks that keep an export in use from changing or disappearing.

use super::*;

impl Engine {
    /// Every export of the account's stacks: (export name, exporting stack, output).
    pub fn exports(&self) -> Result<Vec<(String, String, StackOutput)>, EngineError> {
        let names = self.journal.stacks().map_err(|err| EngineError::Journal {
            stack: String::new(),
            err,
        })?;
        let mut out = Vec::new();
        for n in names {
            let v = self.stack(&n)?;
            for o in &v.deployed.outputs {
                if let Some(e) = &o.export_name {
                    out.push((e.clone(), n.clone(), o.clone()));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Stacks other than `except` whose templates import `export`.
    pub fn importers(&self, export: &str, except: &str) -> Vec<String> {
        let Ok(names) = self.journal.stacks() else {
            return Vec::new();
        };
        names
            .into_iter()
            .filter(|n| n != except)
            .filter(|n| {
                self.stack(n)
                    .is_ok_and(|v| v.exists() && v.deployed.imports.iter().any(|i| i == export))
            })
            .collect()
    }

    /// Before a deploy: refuse to take an export name another stack has, or to remove or
    /// change (where the plan already knows the value) an export another stack imports.
    pub(super) fn check_exports(
        &self,
        name: &str,
        view: &StackView,
        plan: &Plan,
    ) -> Result<(), EngineError> {
        let mut planned = BTreeMap::new();
        for o in &plan.outputs {
            if let Some(e) = o.export_name.as_ref().and_then(|v| v.scalar_string()) {
                planned.insert(e, &o.value);
            }
        }
        if !planned.is_empty() {
            for (export, exporter, _) in self.exports()? {
                if exporter != name && planned.contains_key(&export) {
                    return Err(EngineError::ExportExists {
                        stack: name.to_string(),
                        export,
                        exporter,
                    });
                }
            }
        }
        for o in &view.deployed.outputs {
            let Some(export) = &o.export_name else {
                continue;
            };
            let what = match planned.get(export) {
                None => "removed",
                Some(v) if !matches!(v, Value::Unknown(_)) && **v != o.value => "changed",
                Some(_) => continue,
            };
            if let Some(importer) = self.importers(export, name).into_iter().next() {
                return Err(EngineError::ExportInUse {
                    stack: name.to_string(),
                    export: export.clone(),
                    importer,
                    what,
                });
            }
        }
        Ok(())
    }

    /// After the forward phase: the reason to fail if an export in use changed value.
    pub(super) fn changed_export_in_use(
        &self,
        name: &str,
        before: &[StackOutput],
        after: &[StackOutput],
    ) -> Option<String> {
        for o in before {
            let Some(export) = &o.export_name else {
                continue;
            };
            let same = after
                .iter()
                .any(|n| n.export_name.as_ref() == Some(export) && n.value == o.value);
            if same {
                continue;
            }
            if let Some(importer) = self.importers(export, name).into_iter().next() {
                return Some(format!(
                    "Export {export} cannot be updated as it is in use by stack {importer}"
                ));
            }
        }
        None
    }
}
