//! Which workflows a push starts: the pure decision the daemon makes after a push, from the
//! workflow files at the pushed commit, the ref and the paths the push changed.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{DispatchInput, Step, StepAction, Workflow};

/// One workflow file's outcome for a push.
#[derive(Debug, Clone, PartialEq)]
pub enum Triggered {
    /// The file parsed and its `on.push` filters match: run it.
    Run(Box<Workflow>),
    /// The file didn't parse: a failed run with every problem, `file:line:column: …`.
    Invalid(Vec<String>),
}

/// The runs a push of `git_ref` changing `paths` starts, one per workflow file that either
/// matches or doesn't parse, by file path. `files` are `(path, text)`; a text that couldn't be
/// read is its reason.
pub fn push(
    files: &[(String, Result<String, String>)],
    git_ref: &str,
    paths: &[String],
) -> Vec<(String, Triggered)> {
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    for (file, text) in files {
        let text = match text {
            Ok(t) => t,
            Err(reason) => {
                out.push((file.clone(), Triggered::Invalid(vec![reason.clone()])));
                continue;
            }
        };
        match crate::parse(text, file) {
            Err(d) => out.push((
                file.clone(),
                Triggered::Invalid(d.0.iter().map(|x| x.to_string()).collect()),
            )),
            Ok(wf) => {
                if wf
                    .on
                    .push
                    .as_ref()
                    .is_some_and(|f| f.matches(git_ref, &paths))
                {
                    out.push((file.clone(), Triggered::Run(Box::new(wf))));
                }
            }
        }
    }
    out
}

/// The `inputs` of a `workflow_dispatch` run: `given` (`-f key=value`) checked against the
/// declared inputs, defaults filled in, typed as GitHub types them (`boolean` → true/false,
/// `number` → a number, others strings). Every problem at once.
pub fn dispatch_inputs(
    declared: &[DispatchInput],
    given: &BTreeMap<String, String>,
) -> Result<Map<String, Value>, Vec<String>> {
    let mut out = Map::new();
    let mut errs = Vec::new();
    for k in given.keys() {
        if !declared.iter().any(|d| d.id == *k) {
            let known: Vec<&str> = declared.iter().map(|d| d.id.as_str()).collect();
            errs.push(format!(
                "input `{k}` is not declared (declared: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
    }
    for d in declared {
        let value = match (given.get(&d.id), &d.default) {
            (Some(v), _) => Value::String(v.clone()),
            (None, Some(def)) => def.clone(),
            (None, None) if d.required => {
                errs.push(format!("input `{}` is required", d.id));
                continue;
            }
            (None, None) => Value::String(String::new()),
        };
        let text = crate::eval::to_string(&value);
        let typed = match d.kind.as_str() {
            "boolean" => match text.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    errs.push(format!(
                        "input `{}`: expected true or false, got `{text}`",
                        d.id
                    ));
                    continue;
                }
            },
            "number" => match text.trim().parse::<f64>() {
                Ok(n) => crate::eval::number(n),
                Err(_) => {
                    errs.push(format!("input `{}`: expected a number, got `{text}`", d.id));
                    continue;
                }
            },
            "choice" if !d.options.contains(&text) => {
                errs.push(format!(
                    "input `{}`: `{text}` is not one of {}",
                    d.id,
                    d.options.join(", ")
                ));
                continue;
            }
            _ => Value::String(text),
        };
        out.insert(d.id.clone(), typed);
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// A step's name as GitHub shows it: its `name:`, else `Run <first line of the script>` or
/// `Run <action>`.
pub fn step_name(step: &Step) -> String {
    if let Some(n) = &step.name {
        return n.clone();
    }
    match &step.action {
        StepAction::Run { script, .. } => {
            let first = script.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            format!("Run {}", first.trim())
        }
        StepAction::Uses {
            action, version, ..
        } => match version {
            Some(v) => format!("Run {action}@{v}"),
            None => format!("Run {action}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(v: &[(&str, &str)]) -> Vec<(String, Result<String, String>)> {
        v.iter()
            .map(|(p, t)| (p.to_string(), Ok(t.to_string())))
            .collect()
    }

    const MAIN_ONLY: &str = "on:\n  push:\n    branches: [main]\njobs:\n  a:\n    runs-on: d\n    steps:\n      - run: echo hi\n";
    const DOCS_IGNORED: &str = "on:\n  push:\n    paths-ignore: ['docs/**']\njobs:\n  a:\n    runs-on: d\n    steps:\n      - name: Say\n        run: echo\n";
    const DISPATCH: &str =
        "on: workflow_dispatch\njobs:\n  a:\n    runs-on: d\n    steps:\n      - run: x\n";
    const BAD: &str = "on: push\njobs:\n  a:\n    runs-on: d\n    steps: [{run: x, shel: sh}]\n";

    #[test]
    fn a_push_runs_matching_files_and_reports_broken_ones() {
        let fs = files(&[
            (".github/workflows/a.yml", MAIN_ONLY),
            (".github/workflows/b.yml", DOCS_IGNORED),
            (".github/workflows/c.yml", DISPATCH),
            (".github/workflows/d.yml", BAD),
        ]);
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("refs/heads/main", &["src/x"], &["a.yml", "b.yml", "d.yml"]),
            ("refs/heads/main", &["docs/x.md"], &["a.yml", "d.yml"]),
            ("refs/heads/dev", &["src/x"], &["b.yml", "d.yml"]),
            ("refs/tags/v1", &["src/x"], &["b.yml", "d.yml"]),
        ];
        for (r, paths, want) in cases {
            let paths: Vec<String> = paths.iter().map(|s| s.to_string()).collect();
            let got: Vec<String> = push(&fs, r, &paths)
                .into_iter()
                .map(|(f, _)| f.trim_start_matches(".github/workflows/").to_string())
                .collect();
            assert_eq!(got, *want, "{r} {paths:?}");
        }
        let out = push(&fs, "refs/heads/x", &[]);
        let Some((_, Triggered::Invalid(d))) = out.iter().find(|(f, _)| f.ends_with("d.yml"))
        else {
            panic!("{out:?}")
        };
        assert_eq!(d.len(), 1);
        assert!(d[0].starts_with(".github/workflows/d.yml:5:22: "), "{d:?}");
        let unreadable = vec![(
            "w.yml".to_string(),
            Err("w.yml: not UTF-8 text".to_string()),
        )];
        assert_eq!(
            push(&unreadable, "refs/heads/main", &[]),
            vec![(
                "w.yml".to_string(),
                Triggered::Invalid(vec!["w.yml: not UTF-8 text".into()])
            )]
        );
    }

    #[test]
    fn dispatch_inputs_are_checked_typed_and_defaulted() {
        let wf = crate::parse(
            "on:\n  workflow_dispatch:\n    inputs:\n      env:\n        type: choice\n        options: [dev, prod]\n        default: dev\n      dry:\n        type: boolean\n        default: true\n      n:\n        type: number\n        required: true\n      note:\n        type: string\njobs:\n  a:\n    runs-on: d\n    steps: [{run: x}]\n",
            "w.yml",
        )
        .unwrap();
        let decl = wf.on.dispatch.unwrap();
        let given = |v: &[(&str, &str)]| -> BTreeMap<String, String> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let ok = dispatch_inputs(&decl, &given(&[("n", "3"), ("env", "prod")])).unwrap();
        assert_eq!(
            Value::Object(ok),
            serde_json::json!({"env": "prod", "dry": true, "n": 3, "note": ""})
        );
        let errs = dispatch_inputs(
            &decl,
            &given(&[("env", "staging"), ("dry", "maybe"), ("bogus", "1")]),
        )
        .unwrap_err();
        assert_eq!(
            errs,
            [
                "input `bogus` is not declared (declared: env, dry, n, note)",
                "input `env`: `staging` is not one of dev, prod",
                "input `dry`: expected true or false, got `maybe`",
                "input `n` is required",
            ]
        );
        assert_eq!(
            dispatch_inputs(&[], &given(&[("x", "1")])).unwrap_err(),
            ["input `x` is not declared (declared: none)"]
        );
    }

    #[test]
    fn steps_are_named_as_github_names_them() {
        let wf = crate::parse(
            "on: push\njobs:\n  a:\n    runs-on: d\n    steps:\n      - run: |\n\n          make all\n          make test\n      - uses: actions/checkout@v4\n      - name: Ship\n        run: x\n",
            "w.yml",
        )
        .unwrap();
        let names: Vec<String> = wf.jobs[0].steps.iter().map(step_name).collect();
        assert_eq!(names, ["Run make all", "Run actions/checkout@v4", "Ship"]);
    }
}
