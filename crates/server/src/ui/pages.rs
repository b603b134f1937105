//! The web page's HTML, pure: model types in, markup out. Everything that comes from a
//! workflow file, a log, a repository or a user goes through [`esc`]; the page works without
//! JavaScript (logs as they were when it was loaded, forms that POST), and `ui.js` streams the
//! logs of a running run into it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use spindle_model::pipeline::{PipelineJob, PipelineRun, RunStatus};

/// `text` safe in HTML text and in double- or single-quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page: `title`, the signed-in account and key, `body` (already escaped markup).
pub fn layout(title: &str, who: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Spindle</title><link rel=\"stylesheet\" href=\"/ui/assets/ui.css\">\
         <script src=\"/ui/assets/ui.js\" defer></script></head>\n<body>\
         <header><a class=\"brand\" href=\"/ui/runs\">Spindle</a> \
         <nav><a href=\"/ui/workflows\">Workflows</a> <a href=\"/ui/runs\">Runs</a></nav>\
         <span class=\"who\">{who}</span></header>\n<main>\n{body}\n</main></body></html>\n",
        t = esc(title),
        who = esc(who),
    )
}

fn status_badge(s: RunStatus) -> String {
    format!("<span class=\"status s-{s}\">{s}</span>")
}

/// The runs of an account, newest first.
pub fn runs(list: &[PipelineRun], repo: Option<&str>) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<h1>Runs{}</h1>",
        repo.map(|r| format!(" of {}", esc(r))).unwrap_or_default()
    );
    if list.is_empty() {
        b.push_str("<p>No runs yet: a <code>git push</code> or <code>spindle pipeline dispatch</code> starts one.</p>");
        return b;
    }
    b.push_str("<table class=\"runs\"><thead><tr><th>Run</th><th>Workflow</th><th>Repository</th><th>Event</th><th>Ref</th><th>Status</th><th>Created</th></tr></thead><tbody>\n");
    for r in list {
        let _ = writeln!(
            b,
            "<tr><td><a href=\"/ui/runs/{id}\">#{id}</a>{attempt}</td><td>{wf}</td>\
             <td><a href=\"/ui/runs?repo={repo_q}\">{repo}</a></td><td>{ev}</td><td>{gref}</td>\
             <td>{st}</td><td>{created}</td></tr>",
            id = r.id,
            attempt = if r.attempt > 1 {
                format!(" <small>attempt {}</small>", r.attempt)
            } else {
                String::new()
            },
            wf = esc(r.name.as_deref().unwrap_or(&r.workflow)),
            repo_q = esc(&query_value(&r.repo)),
            repo = esc(&r.repo),
            ev = esc(&r.event),
            gref = esc(&r.git_ref),
            st = status_badge(r.status),
            created = esc(&r.created),
        );
    }
    b.push_str("</tbody></table>\n");
    b
}

/// Percent-encodes a query value.
fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The workflow files of each repository (at its `main`), or why they couldn't be read.
pub fn workflows(repos: &[(String, Result<Vec<String>, String>)]) -> String {
    let mut b = String::from("<h1>Workflows</h1>\n");
    if repos.is_empty() {
        b.push_str("<p>No repositories: <code>spindle git create NAME</code> makes one.</p>");
    }
    for (repo, files) in repos {
        let _ = write!(
            b,
            "<section class=\"repo\"><h2>{r} <a class=\"small\" href=\"/ui/runs?repo={q}\">runs</a></h2>",
            r = esc(repo),
            q = esc(&query_value(repo))
        );
        match files {
            Ok(f) if f.is_empty() => b.push_str("<p>No workflow files on <code>main</code>.</p>"),
            Ok(f) => {
                b.push_str("<ul>");
                for file in f {
                    let _ = write!(b, "<li><code>{}</code></li>", esc(file));
                }
                b.push_str("</ul>");
            }
            Err(e) => {
                let _ = write!(b, "<p class=\"error\">{}</p>", esc(e));
            }
        }
        b.push_str("</section>\n");
    }
    b
}

/// Each job's column in the graph: the length of the longest `needs` chain before it.
fn levels(jobs: &[PipelineJob]) -> BTreeMap<&str, usize> {
    let mut level: BTreeMap<&str, usize> = jobs.iter().map(|j| (j.id.as_str(), 0)).collect();
    // At most one pass per job: the DAG was checked when the workflow was read.
    for _ in 0..jobs.len() {
        let mut changed = false;
        for j in jobs {
            let want = j
                .needs
                .iter()
                .filter_map(|n| level.get(n.as_str()))
                .map(|l| l + 1)
                .max()
                .unwrap_or(0);
            if level[j.id.as_str()] < want {
                level.insert(&j.id, want);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    level
}

const BOX_W: usize = 170;
const BOX_H: usize = 44;
const GAP_X: usize = 60;
const GAP_Y: usize = 16;

/// The job graph as inline SVG: a column per level, a box per job (a link to its section,
/// coloured by status), a line per `needs` edge.
pub fn graph(jobs: &[PipelineJob]) -> String {
    let level = levels(jobs);
    let mut rows: BTreeMap<usize, usize> = BTreeMap::new();
    let mut pos: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for j in jobs {
        let col = level[j.id.as_str()];
        let row = rows.entry(col).or_insert(0);
        pos.insert(
            &j.id,
            (col * (BOX_W + GAP_X) + 10, *row * (BOX_H + GAP_Y) + 10),
        );
        *row += 1;
    }
    let width = (rows.len().max(1)) * (BOX_W + GAP_X) + 10;
    let height = rows.values().max().copied().unwrap_or(1) * (BOX_H + GAP_Y) + 10;
    let mut s = format!(
        "<svg class=\"graph\" role=\"img\" aria-label=\"job graph\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
    );
    for j in jobs {
        let (x, y) = pos[j.id.as_str()];
        for n in &j.needs {
            if let Some((nx, ny)) = pos.get(n.as_str()) {
                let _ = write!(
                    s,
                    "<line class=\"edge\" data-from=\"{f}\" data-to=\"{t}\" x1=\"{x1}\" y1=\"{y1}\" x2=\"{x2}\" y2=\"{y2}\"/>",
                    f = esc(n),
                    t = esc(&j.id),
                    x1 = nx + BOX_W,
                    y1 = ny + BOX_H / 2,
                    x2 = x,
                    y2 = y + BOX_H / 2,
                );
            }
        }
    }
    for j in jobs {
        let (x, y) = pos[j.id.as_str()];
        let _ = write!(
            s,
            "<a href=\"#job-{id}\"><g class=\"node s-{st}\" data-job=\"{id}\"><rect x=\"{x}\" y=\"{y}\" rx=\"6\" width=\"{BOX_W}\" height=\"{BOX_H}\"/>\
             <text x=\"{tx}\" y=\"{ty}\">{id}</text><text class=\"sub\" x=\"{tx}\" y=\"{sy}\">{st}{reused}</text></g></a>",
            id = esc(&j.id),
            st = j.status,
            tx = x + 10,
            ty = y + 18,
            sy = y + 35,
            reused = if j.reused { " (reused)" } else { "" },
        );
    }
    s.push_str("</svg>");
    s
}

/// The stream position of what `run`'s page shows: for each job, its last step with a log
/// and that log's length (see `pipeline_logs::Cursor`).
pub fn cursor(run: &PipelineRun) -> String {
    run.jobs
        .iter()
        .filter_map(|j| {
            let s = j.steps.iter().rev().find(|s| !s.log.is_empty())?;
            Some(format!("{}:{}:{}", j.id, s.index, s.log.len()))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// One run: what it is, cancel and re-run forms (with the session's CSRF token), its job
/// graph, and every job's steps with their logs. A run that hasn't ended names its event
/// stream, which `ui.js` follows.
pub fn run(run: &PipelineRun, csrf: &str) -> String {
    let mut b = String::new();
    let live = if run.status.is_final() {
        String::new()
    } else {
        format!(
            " data-events=\"/ui/runs/{}/events?lastEventId={}\"",
            run.id,
            esc(&query_value(&cursor(run)))
        )
    };
    let _ = write!(
        b,
        "<article class=\"run\" id=\"run\"{live}>\n<h1>{name} <small>#{id}</small> {st}</h1>\n\
         <p class=\"meta\"><code>{wf}</code> in <b>{repo}</b> · {ev} · <code>{gref}</code> · \
         <code>{commit}</code> · attempt {attempt}{of}</p>\n",
        name = esc(run.name.as_deref().unwrap_or(&run.workflow)),
        id = run.id,
        st = status_badge(run.status),
        wf = esc(&run.workflow),
        repo = esc(&run.repo),
        ev = esc(&run.event),
        gref = esc(&run.git_ref),
        commit = esc(run.commit.get(..12).unwrap_or(&run.commit)),
        attempt = run.attempt,
        of = run
            .rerun_of
            .map(|r| format!(" (re-runs <a href=\"/ui/runs/{r}\">#{r}</a>)"))
            .unwrap_or_default(),
    );
    let token = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    );
    b.push_str("<div class=\"actions\">");
    if run.status.is_final() {
        if matches!(run.status, RunStatus::Failure | RunStatus::Cancelled) {
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/ui/runs/{id}/rerun\">{token}<input type=\"hidden\" name=\"failed\" value=\"1\"><button>Re-run failed jobs</button></form>",
                id = run.id
            );
        }
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/ui/runs/{id}/rerun\">{token}<button>Re-run all jobs</button></form>",
            id = run.id
        );
    } else {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"/ui/runs/{id}/cancel\">{token}<button class=\"danger\">Cancel run</button></form>",
            id = run.id
        );
    }
    b.push_str("</div>\n");
    for d in &run.diagnostics {
        let _ = write!(b, "<p class=\"error\">{}</p>", esc(d));
    }
    b.push_str(&graph(&run.jobs));
    b.push('\n');
    for j in &run.jobs {
        let _ = writeln!(
            b,
            "<section class=\"job\" id=\"job-{id}\"><h2>{id} {st}{reused}</h2><p class=\"meta\">runs on <code>{on}</code>{needs}</p>",
            id = esc(&j.id),
            st = status_badge(j.status),
            reused = if j.reused {
                " <small>reused from the earlier attempt</small>"
            } else {
                ""
            },
            on = esc(&j.runs_on),
            needs = if j.needs.is_empty() {
                String::new()
            } else {
                format!(" · needs {}", esc(&j.needs.join(", ")))
            },
        );
        for s in &j.steps {
            // Open where there is something to read, or something happening.
            let open = if !s.log.is_empty() || s.status == RunStatus::InProgress {
                " open"
            } else {
                ""
            };
            let _ = writeln!(
                b,
                "<details class=\"step\"{open}><summary><span class=\"status s-{st}\" data-step=\"{job}:{i}\">{st}</span> {n}. {name}{code}</summary>\
                 <pre class=\"log\" id=\"log-{job}-{i}\">{log}</pre></details>",
                st = s.status,
                job = esc(&j.id),
                i = s.index,
                n = s.index + 1,
                name = esc(&s.name),
                code = s
                    .exit_code
                    .map(|c| format!(" <small>exit {c}</small>"))
                    .unwrap_or_default(),
                log = esc(&s.log),
            );
        }
        b.push_str("</section>\n");
    }
    b.push_str("</article>");
    b
}

/// A page that says why it can't show what was asked (not signed in, not allowed, missing).
pub fn message(title: &str, text: &str, hint: Option<&str>) -> String {
    let mut b = format!("<h1>{}</h1><p>{}</p>", esc(title), esc(text));
    if let Some(h) = hint {
        let _ = write!(b, "<p class=\"hint\">{}</p>", esc(h));
    }
    b
}

/// The sign-in page of a one-time code: a form that posts it (`ui.js` submits it at once).
pub fn sign_in(code: &str, next: &str, account: &str, key: &str) -> String {
    format!(
        "<h1>Sign in</h1><p>Sign in to account <b>{a}</b> with access key <code>{k}</code>?</p>\
         <form method=\"post\" action=\"/ui/login\" id=\"sign-in\"><input type=\"hidden\" name=\"code\" value=\"{c}\">\
         <input type=\"hidden\" name=\"next\" value=\"{n}\"><button>Sign in</button></form>",
        a = esc(account),
        k = esc(key),
        c = esc(code),
        n = esc(next),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_model::pipeline::PipelineStep;

    fn job(id: &str, needs: &[&str], status: RunStatus, log: &str) -> PipelineJob {
        PipelineJob {
            id: id.into(),
            runs_on: "busybox:ci".into(),
            needs: needs.iter().map(|n| n.to_string()).collect(),
            status,
            started: None,
            finished: None,
            steps: vec![PipelineStep {
                index: 0,
                name: "Run <make>".into(),
                status,
                exit_code: Some(0),
                started: None,
                finished: None,
                log: log.into(),
            }],
            reused: false,
        }
    }

    fn a_run(status: RunStatus) -> PipelineRun {
        PipelineRun {
            id: 7,
            account_id: "123456789012".into(),
            repo: "app".into(),
            workflow: ".github/workflows/ci.yml".into(),
            name: Some("CI <b>bold</b>".into()),
            event: "push".into(),
            git_ref: "refs/heads/main".into(),
            commit: "0123456789abcdef".into(),
            status,
            diagnostics: vec![],
            created: "2026-12-07T00:00:00Z".into(),
            started: None,
            finished: None,
            jobs: vec![
                job(
                    "build",
                    &[],
                    RunStatus::Success,
                    "<script>alert('x')</script>\n",
                ),
                job("test", &["build"], RunStatus::InProgress, "ok & done\n"),
                job("ship", &["test", "build"], RunStatus::Queued, ""),
            ],
            rerun_of: None,
            attempt: 1,
        }
    }

    #[test]
    fn everything_from_workflows_and_logs_is_escaped() {
        let page = run(&a_run(RunStatus::InProgress), "tok\"en");
        assert!(
            page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("CI &lt;b&gt;bold&lt;/b&gt;"));
        assert!(page.contains("Run &lt;make&gt;"));
        assert!(page.contains("ok &amp; done"));
        assert!(page.contains("value=\"tok&quot;en\""));
        assert_eq!(esc("a<'\"&>"), "a&lt;&#39;&quot;&amp;&gt;");
    }

    #[test]
    fn the_graph_puts_each_job_after_what_it_needs() {
        let r = a_run(RunStatus::InProgress);
        let l = levels(&r.jobs);
        assert_eq!(
            l.into_iter().collect::<Vec<_>>(),
            [("build", 0), ("ship", 2), ("test", 1)]
        );
        let svg = graph(&r.jobs);
        assert_eq!(svg.matches("<line class=\"edge\"").count(), 3);
        assert!(svg.contains("data-from=\"build\" data-to=\"test\""));
        assert!(svg.contains("<g class=\"node s-in_progress\" data-job=\"test\">"));
    }

    #[test]
    fn a_running_run_streams_from_what_the_page_shows_and_offers_cancel() {
        let r = a_run(RunStatus::InProgress);
        assert_eq!(cursor(&r), "build:0:28,test:0:10");
        let page = run(&r, "t");
        assert!(page.contains(
            "data-events=\"/ui/runs/7/events?lastEventId=build%3A0%3A28%2Ctest%3A0%3A10\""
        ));
        assert!(page.contains("action=\"/ui/runs/7/cancel\""));
        assert!(!page.contains("/rerun"));
        let done = run(&a_run(RunStatus::Failure), "t");
        assert!(!done.contains("data-events"));
        assert!(done.contains("name=\"failed\" value=\"1\""));
    }
}
