//! `spindle pipeline validate`: workflow files checked offline by spindle-pipeline.

use crate::cli::{OutputFormat, PipelineCmd};
use crate::output;
use anyhow::Result;
use serde::Serialize;
use spindle_pipeline::{MatrixPlan, Workflow};

#[derive(Serialize)]
struct Report {
    valid: bool,
    files: Vec<FileReport>,
}

#[derive(Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    diagnostics: Vec<Diag>,
    /// The jobs of a valid workflow in stages: each stage needs only earlier ones.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stages: Vec<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    jobs: Vec<JobReport>,
}

#[derive(Serialize)]
struct Diag {
    file: String,
    line: u32,
    column: u32,
    path: String,
    category: String,
    message: String,
}

#[derive(Serialize)]
struct JobReport {
    id: String,
    needs: Vec<String>,
    runs_on: String,
    steps: usize,
    /// The matrix combinations, when known before the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    matrix: Option<Vec<serde_json::Map<String, serde_json::Value>>>,
    matrix_at_run_time: bool,
}

fn file_report(file: &str, wf: Result<Workflow, Vec<Diag>>) -> FileReport {
    match wf {
        Err(diagnostics) => FileReport {
            file: file.to_string(),
            valid: false,
            diagnostics,
            stages: Vec::new(),
            jobs: Vec::new(),
        },
        Ok(wf) => FileReport {
            file: file.to_string(),
            valid: true,
            diagnostics: Vec::new(),
            stages: wf.graph.stages().unwrap_or_default(),
            jobs: wf
                .jobs
                .iter()
                .map(|j| JobReport {
                    id: j.id.clone(),
                    needs: j.needs.clone(),
                    runs_on: j.runs_on.clone(),
                    steps: j.steps.len(),
                    matrix: match &j.matrix {
                        Some(MatrixPlan::Static { combinations }) => Some(combinations.clone()),
                        _ => None,
                    },
                    matrix_at_run_time: matches!(j.matrix, Some(MatrixPlan::Dynamic { .. })),
                })
                .collect(),
        },
    }
}

fn check(path: &std::path::Path) -> FileReport {
    let file = path.display().to_string();
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            let d = Diag {
                file: file.clone(),
                line: 0,
                column: 0,
                path: String::new(),
                category: "io".into(),
                message: format!("cannot read the file: {e}"),
            };
            return file_report(&file, Err(vec![d]));
        }
    };
    let wf = spindle_pipeline::parse(&src, &file).map_err(|ds| {
        ds.0.into_iter()
            .map(|d| Diag {
                file: d.file,
                line: d.pos.line,
                column: d.pos.col,
                path: d.path,
                category: d.category.as_str().to_string(),
                message: d.message,
            })
            .collect()
    });
    file_report(&file, wf)
}

fn summary(f: &FileReport) -> String {
    let stages: Vec<String> = f
        .stages
        .iter()
        .map(|stage| {
            stage
                .iter()
                .map(|id| {
                    let j = f.jobs.iter().find(|j| &j.id == id);
                    match j.map(|j| (&j.matrix, j.matrix_at_run_time)) {
                        Some((Some(m), _)) => format!("{id} ×{} (matrix)", m.len()),
                        Some((None, true)) => format!("{id} (matrix at run time)"),
                        _ => id.clone(),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    format!(
        "{}: valid ({} job(s) in {} stage(s): {})",
        f.file,
        f.jobs.len(),
        f.stages.len(),
        stages.join(" → ")
    )
}

pub fn run(cmd: PipelineCmd, format: OutputFormat) -> Result<()> {
    let PipelineCmd::Validate { files } = cmd else {
        unreachable!("only the offline commands come here (PipelineCmd::offline)")
    };
    let reports: Vec<FileReport> = files.iter().map(|f| check(f)).collect();
    let problems: usize = reports.iter().map(|r| r.diagnostics.len()).sum();
    let bad = reports.iter().filter(|r| !r.valid).count();
    if format == OutputFormat::Json {
        output::json(&Report {
            valid: bad == 0,
            files: reports,
        });
    } else {
        for r in &reports {
            for d in &r.diagnostics {
                let at = if d.path.is_empty() {
                    String::new()
                } else {
                    format!(" {}:", d.path)
                };
                println!(
                    "{}:{}:{}:{at} {}: {}",
                    d.file, d.line, d.column, d.category, d.message
                );
            }
            if r.valid {
                println!("{}", summary(r));
            }
        }
    }
    if bad > 0 {
        anyhow::bail!(
            "{bad} of {} workflow file(s) invalid: {problems} problem(s)",
            files.len()
        );
    }
    Ok(())
}
