//! THE table of workflow keys: every key GitHub Actions documents, rated. The reader walks a
//! workflow against it (a key not in it is unknown; a refused key is an error at its
//! position), and [`markdown`] renders it into docs/pipelines.md, which a test keeps in step.
//!
//! Paths are dotted; `<…>` stands for a name the workflow chooses (a job id, an env var),
//! `[]` for the items of a sequence. A key with no rows below it is a leaf or holds free-form
//! values (`with`, matrix axes), which [`crate::workflow`] checks by type.

/// How far Spindle implements a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rating {
    /// Works as on GitHub.
    Supported,
    /// Works for the values the note lists; others are errors.
    Subset,
    /// Read and checked for shape, then ignored, because it means nothing on Spindle.
    NoEffect,
    /// An error at its position.
    Refused,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Supported => "supported",
            Rating::Subset => "subset",
            Rating::NoEffect => "accepted, no effect",
            Rating::Refused => "refused",
        }
    }
}

pub struct KeyRule {
    pub path: &'static str,
    pub rating: Rating,
    pub note: &'static str,
}

const fn k(path: &'static str, rating: Rating, note: &'static str) -> KeyRule {
    KeyRule { path, rating, note }
}

use Rating::{NoEffect as N, Refused as R, Subset as B, Supported as S};

const NO_PR: &str = "Spindle's git hosting has no pull requests, issues or releases";
const NO_EVENT: &str = "no such event on Spindle";

pub const KEYS: &[KeyRule] = &[
    k("name", S, "shown in listings"),
    k("run-name", S, "`github` and `inputs` expressions"),
    k(
        "on",
        B,
        "a name, a list of names or a mapping of the events below",
    ),
    k("on.push", B, "a push to the Spindle remote"),
    k("on.push.branches", S, "glob patterns, `!` negates"),
    k("on.push.branches-ignore", S, "glob patterns"),
    k("on.push.tags", S, "glob patterns, `!` negates"),
    k("on.push.tags-ignore", S, "glob patterns"),
    k("on.push.paths", S, "glob patterns, `!` negates"),
    k("on.push.paths-ignore", S, "glob patterns"),
    k("on.schedule", S, "a list of `cron:` entries"),
    k(
        "on.schedule[].cron",
        S,
        "five POSIX cron fields, UTC; checked when read",
    ),
    k("on.workflow_dispatch", S, "`spindle pipeline dispatch`"),
    k("on.workflow_dispatch.inputs", S, ""),
    k("on.workflow_dispatch.inputs.<input_id>", S, ""),
    k("on.workflow_dispatch.inputs.<input_id>.description", S, ""),
    k(
        "on.workflow_dispatch.inputs.<input_id>.required",
        S,
        "a boolean",
    ),
    k(
        "on.workflow_dispatch.inputs.<input_id>.default",
        S,
        "must fit the type",
    ),
    k(
        "on.workflow_dispatch.inputs.<input_id>.type",
        B,
        "string, boolean, choice, number (not environment)",
    ),
    k(
        "on.workflow_dispatch.inputs.<input_id>.options",
        S,
        "required for `choice`",
    ),
    k("on.pull_request", R, NO_PR),
    k("on.pull_request_target", R, NO_PR),
    k("on.pull_request_review", R, NO_PR),
    k("on.pull_request_review_comment", R, NO_PR),
    k("on.issues", R, NO_PR),
    k("on.issue_comment", R, NO_PR),
    k("on.release", R, NO_PR),
    k("on.label", R, NO_PR),
    k("on.milestone", R, NO_PR),
    k("on.discussion", R, NO_PR),
    k("on.discussion_comment", R, NO_PR),
    k("on.merge_group", R, NO_PR),
    k(
        "on.workflow_call",
        R,
        "reusable workflows are not supported",
    ),
    k("on.workflow_run", R, "not yet: a run triggering another"),
    k("on.repository_dispatch", R, "not yet"),
    k("on.create", R, NO_EVENT),
    k("on.delete", R, NO_EVENT),
    k("on.fork", R, NO_EVENT),
    k("on.gollum", R, NO_EVENT),
    k("on.page_build", R, NO_EVENT),
    k("on.public", R, NO_EVENT),
    k("on.registry_package", R, NO_EVENT),
    k("on.deployment", R, NO_EVENT),
    k("on.deployment_status", R, NO_EVENT),
    k("on.check_run", R, NO_EVENT),
    k("on.check_suite", R, NO_EVENT),
    k("on.status", R, NO_EVENT),
    k("on.watch", R, NO_EVENT),
    k("on.project", R, NO_EVENT),
    k("on.project_card", R, NO_EVENT),
    k("on.project_column", R, NO_EVENT),
    k("on.branch_protection_rule", R, NO_EVENT),
    k(
        "permissions",
        N,
        "jobs get Spindle credentials scoped by account, not a GITHUB_TOKEN",
    ),
    k("env", S, ""),
    k(
        "env.<name>",
        S,
        "strings, numbers and booleans; expressions",
    ),
    k("defaults", S, ""),
    k("defaults.run", S, ""),
    k("defaults.run.shell", B, "as a step's `shell`"),
    k("defaults.run.working-directory", S, ""),
    k("concurrency", S, "a group name, or the mapping below"),
    k("concurrency.group", S, ""),
    k("concurrency.cancel-in-progress", S, ""),
    k("jobs", S, ""),
    k(
        "jobs.<job_id>",
        S,
        "ids: letters, digits, `-` and `_`, starting with a letter or `_`",
    ),
    k("jobs.<job_id>.name", S, ""),
    k(
        "jobs.<job_id>.needs",
        S,
        "a job id or a list; must form a DAG",
    ),
    k("jobs.<job_id>.if", S, "with or without `${{ }}`"),
    k(
        "jobs.<job_id>.runs-on",
        B,
        "one Spindle image name or tag (a string); labels lists and groups are refused",
    ),
    k("jobs.<job_id>.permissions", N, "see `permissions`"),
    k(
        "jobs.<job_id>.environment",
        B,
        "a name, or `name`/`url`; Spindle asks for a manual approval",
    ),
    k("jobs.<job_id>.environment.name", S, ""),
    k(
        "jobs.<job_id>.environment.url",
        N,
        "shown on the run page only",
    ),
    k(
        "jobs.<job_id>.concurrency",
        S,
        "as the top-level `concurrency`",
    ),
    k("jobs.<job_id>.concurrency.group", S, ""),
    k("jobs.<job_id>.concurrency.cancel-in-progress", S, ""),
    k("jobs.<job_id>.outputs", S, ""),
    k(
        "jobs.<job_id>.outputs.<output_id>",
        S,
        "a string, usually `${{ steps.x.outputs.y }}`",
    ),
    k("jobs.<job_id>.env", S, ""),
    k("jobs.<job_id>.env.<name>", S, ""),
    k("jobs.<job_id>.defaults", S, ""),
    k("jobs.<job_id>.defaults.run", S, ""),
    k("jobs.<job_id>.defaults.run.shell", B, "as a step's `shell`"),
    k("jobs.<job_id>.defaults.run.working-directory", S, ""),
    k(
        "jobs.<job_id>.timeout-minutes",
        S,
        "a positive number or an expression",
    ),
    k(
        "jobs.<job_id>.continue-on-error",
        S,
        "a boolean or an expression",
    ),
    k("jobs.<job_id>.strategy", S, ""),
    k(
        "jobs.<job_id>.strategy.matrix",
        S,
        "axes, `include`, `exclude`, or one expression",
    ),
    k(
        "jobs.<job_id>.strategy.matrix.include",
        S,
        "GitHub's include rules",
    ),
    k(
        "jobs.<job_id>.strategy.matrix.exclude",
        S,
        "GitHub's exclude rules",
    ),
    k(
        "jobs.<job_id>.strategy.matrix.<axis>",
        S,
        "a non-empty list, or an expression",
    ),
    k("jobs.<job_id>.strategy.fail-fast", S, ""),
    k("jobs.<job_id>.strategy.max-parallel", S, ""),
    k(
        "jobs.<job_id>.services",
        B,
        "run as instances of Spindle images in the job's network",
    ),
    k("jobs.<job_id>.services.<service_id>", S, ""),
    k(
        "jobs.<job_id>.services.<service_id>.image",
        B,
        "a Spindle image name or tag",
    ),
    k("jobs.<job_id>.services.<service_id>.env", S, ""),
    k("jobs.<job_id>.services.<service_id>.ports", S, ""),
    k(
        "jobs.<job_id>.services.<service_id>.options",
        R,
        "Docker options mean nothing to Spindle's instances",
    ),
    k(
        "jobs.<job_id>.services.<service_id>.credentials",
        R,
        "images come from Spindle's own store",
    ),
    k("jobs.<job_id>.services.<service_id>.volumes", R, "not yet"),
    k(
        "jobs.<job_id>.container",
        R,
        "every job already runs in a fresh instance of its `runs-on` image",
    ),
    k(
        "jobs.<job_id>.uses",
        R,
        "reusable workflows are not supported",
    ),
    k(
        "jobs.<job_id>.with",
        R,
        "reusable workflows are not supported",
    ),
    k(
        "jobs.<job_id>.secrets",
        R,
        "reusable workflows are not supported",
    ),
    k(
        "jobs.<job_id>.x-spindle-network",
        S,
        "Spindle's own: `true` lets the job's steps open network sockets; without it only Unix sockets work",
    ),
    k("jobs.<job_id>.steps", S, ""),
    k("jobs.<job_id>.steps[].id", S, ""),
    k("jobs.<job_id>.steps[].name", S, ""),
    k("jobs.<job_id>.steps[].if", S, "with or without `${{ }}`"),
    k("jobs.<job_id>.steps[].run", S, ""),
    k(
        "jobs.<job_id>.steps[].shell",
        B,
        "bash, sh, python (a `{0}` command is refused)",
    ),
    k("jobs.<job_id>.steps[].working-directory", S, ""),
    k(
        "jobs.<job_id>.steps[].uses",
        B,
        "only the built-in actions listed below",
    ),
    k(
        "jobs.<job_id>.steps[].with",
        B,
        "the inputs of the built-in action, checked",
    ),
    k("jobs.<job_id>.steps[].env", S, ""),
    k("jobs.<job_id>.steps[].env.<name>", S, ""),
    k("jobs.<job_id>.steps[].continue-on-error", S, ""),
    k("jobs.<job_id>.steps[].timeout-minutes", S, ""),
];

fn seg_matches(rule: &str, seg: &str) -> bool {
    rule == seg || (rule.starts_with('<') && rule.ends_with('>'))
}

/// The rule for `key` under the pattern `parent` (a rule path, e.g. `jobs.<job_id>`): an
/// exact name first, else a `<…>` placeholder. Returns the rule and its path.
pub fn lookup(parent: &str, key: &str) -> Option<&'static KeyRule> {
    let exact = join(parent, key);
    KEYS.iter().find(|r| r.path == exact).or_else(|| {
        KEYS.iter().find(|r| {
            let Some((head, last)) = r.path.rsplit_once('.') else {
                return false;
            };
            head == parent && seg_matches(last, key) && last.starts_with('<')
        })
    })
}

/// The known key under `parent` closest to a misspelt `key` (edit distance at most 2).
pub fn suggest(parent: &str, key: &str) -> Option<&'static str> {
    KEYS.iter()
        .filter_map(|r| {
            let (head, last) = match r.path.rsplit_once('.') {
                Some((h, l)) => (h, l),
                None => ("", r.path),
            };
            (head == parent && !last.starts_with('<')).then_some(last)
        })
        .map(|name| (distance(name, key), name))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

/// Levenshtein distance over characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Whether the table has rows below `pattern` (so its mapping's keys are checked).
pub fn has_children(pattern: &str) -> bool {
    KEYS.iter().any(|r| {
        r.path.len() > pattern.len()
            && r.path.starts_with(pattern)
            && r.path[pattern.len()..].starts_with('.')
    })
}

pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The table as Markdown, as docs/pipelines.md holds it.
pub fn markdown() -> String {
    let mut s = String::from("| Key | Rating | Notes |\n|---|---|---|\n");
    for r in KEYS {
        s.push_str(&format!(
            "| `{}` | {} | {} |\n",
            r.path,
            r.rating.as_str(),
            r.note.replace('|', "\\|")
        ));
    }
    s
}
