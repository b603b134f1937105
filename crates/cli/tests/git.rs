//! Git hosting (issue #17 item 1 and 2) against a real daemon with the real `git` client:
//! create, push, clone back, refusals by grant and by secret, and the runs a push records.

mod common;

use common::{dev_json, git, git_env, ok, stderr, with_key, Daemon, BIN};
use spindle_model::api::{CreateAccount, CreateKey, Credentials};
use spindle_model::pipeline::{GitRepo, PipelineRun, RunStatus};
use spindle_model::AccountName;
use std::time::{Duration, Instant};

const CI: &str = "name: CI\non:\n  push:\n    branches: [main]\njobs:\n  build:\n    runs-on: debian-12\n    steps:\n      - run: echo building\n      - name: Test\n        run: echo testing\n  ship:\n    needs: build\n    runs-on: debian-12\n    steps:\n      - run: echo shipping\n";
const BAD: &str = "on: push\njobs:\n  a:\n    runs-on: d\n    steps: [{run: x, shel: sh}]\n";
const TAGS_ONLY: &str = "on:\n  push:\n    tags: ['v*']\njobs:\n  a:\n    runs-on: d\n    steps:\n      - run: echo tag\n";

fn runs(d: &Daemon, want: usize) -> Vec<PipelineRun> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list: Vec<PipelineRun> = dev_json(d, &["pipeline", "runs", "app"]);
        if list.len() >= want || Instant::now() > deadline {
            return list;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn push_clone_back_grants_secrets_and_the_runs_a_push_records() {
    let d = Daemon::start(BIN);
    let admin = d.admin();
    for n in ["dev", "prod"] {
        admin
            .create_account(&CreateAccount {
                name: AccountName::parse(n).unwrap(),
                description: String::new(),
            })
            .unwrap();
    }
    let key = |acct: &str, allow: &[&str]| {
        admin
            .create_key(
                acct,
                &CreateKey {
                    allow: allow.iter().map(|s| s.to_string()).collect(),
                    description: String::new(),
                    aws: false,
                },
            )
            .unwrap()
    };
    let pusher = key("dev", &["git:*"]);
    let reader = key("dev", &["git:Pull"]);
    let outsider = key("prod", &["git:*"]);

    // Create: names are checked, a second create of a name is refused.
    let repo: GitRepo = dev_json(&d, &["git", "create", "app"]);
    assert!(
        repo.clone_url.ends_with("/git/dev/app.git"),
        "{}",
        repo.clone_url
    );
    let o = d.cli(&["--account", "dev", "git", "create", "a/b"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid repository name `a/b`: `/` is not allowed"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&["--account", "dev", "git", "create", "app"]);
    assert!(
        stderr(&o).contains("repository `app` already exists"),
        "{}",
        stderr(&o)
    );

    // A commit with two workflows (one broken, one tag-only) and a 3 MiB file, so the push
    // is streamed in chunks.
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(work.join(".github/workflows")).unwrap();
    std::fs::write(work.join(".github/workflows/ci.yml"), CI).unwrap();
    std::fs::write(work.join(".github/workflows/bad.yml"), BAD).unwrap();
    std::fs::write(work.join(".github/workflows/release.yaml"), TAGS_ONLY).unwrap();
    std::fs::write(work.join("README"), "hello\n").unwrap();
    let big: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(work.join("big.bin"), &big).unwrap();
    ok(git(&work, &["init", "-q", "-b", "main"]));
    ok(git(&work, &["add", "."]));
    ok(git(&work, &["commit", "-qm", "first"]));
    let head = String::from_utf8(ok(git(&work, &["rev-parse", "HEAD"])).stdout).unwrap();
    let head = head.trim();

    // A wrong secret is refused; so is a push with only the pull grant, and another account's
    // key sees no repository at all.
    let mut wrong = pusher.clone();
    wrong.secret_access_key = "x".repeat(40);
    let o = git(&work, &["push", &with_key(&repo.clone_url, &wrong), "main"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("Authentication failed"),
        "{}",
        stderr(&o)
    );
    let o = git(
        &work,
        &["push", &with_key(&repo.clone_url, &reader), "main"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("403"), "{}", stderr(&o));
    let o = git(
        &work,
        &["push", &with_key(&repo.clone_url, &outsider), "main"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    // The refusal's body says why, for whoever reads it raw.
    let resp = ureq::get(&format!(
        "{}/info/refs?service=git-receive-pack",
        repo.clone_url
    ))
    .set(
        "Authorization",
        &format!(
            "Basic {}",
            b64(&format!(
                "{}:{}",
                reader.access_key_id, reader.secret_access_key
            ))
        ),
    )
    .call();
    let Err(ureq::Error::Status(403, r)) = resp else {
        panic!("expected 403")
    };
    let body = r.into_string().unwrap();
    assert!(body.contains("may not git:Push in account dev"), "{body}");
    let resp = ureq::get(&format!(
        "{}/info/refs?service=git-upload-pack",
        repo.clone_url
    ))
    .call();
    let Err(ureq::Error::Status(401, r)) = resp else {
        panic!("expected 401")
    };
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"spindle git\"")
    );

    // The push with the grant, then the repository lists the branch.
    ok(git(
        &work,
        &["push", "-q", &with_key(&repo.clone_url, &pusher), "main"],
    ));
    let list: Vec<GitRepo> = dev_json(&d, &["git", "list"]);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].refs["refs/heads/main"], head);

    // Clone back with the read-only key: the same bytes.
    let back = tmp.path().join("back");
    ok(git(
        tmp.path(),
        &[
            "clone",
            "-q",
            &with_key(&repo.clone_url, &reader),
            back.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        std::fs::read_to_string(back.join("README")).unwrap(),
        "hello\n"
    );
    assert!(std::fs::read(back.join("big.bin")).unwrap() == big);

    // The push recorded a run for ci.yml (branch main) and a failed one for bad.yml; the
    // tag-only workflow didn't run.
    let list = runs(&d, 2);
    assert_eq!(list.len(), 2, "{list:#?}");
    let ci = list
        .iter()
        .find(|r| r.workflow.ends_with("ci.yml"))
        .unwrap();
    assert_eq!(
        (ci.git_ref.as_str(), ci.commit.as_str()),
        ("refs/heads/main", head)
    );
    assert_eq!(ci.name.as_deref(), Some("CI"));
    let bad = list
        .iter()
        .find(|r| r.workflow.ends_with("bad.yml"))
        .unwrap();
    assert_eq!(bad.status, RunStatus::Failure);
    assert!(bad.finished.is_some());
    let bad: PipelineRun = dev_json(&d, &["pipeline", "logs", &bad.id.to_string()]);
    assert_eq!(bad.diagnostics.len(), 1, "{:?}", bad.diagnostics);
    assert!(
        bad.diagnostics[0]
            .starts_with(".github/workflows/bad.yml:5:22: jobs.a.steps[0].shel: unknown-key"),
        "{:?}",
        bad.diagnostics
    );
    let ci: PipelineRun = dev_json(
        &d,
        &["pipeline", "logs", &ci.id.to_string(), "--job", "build"],
    );
    assert_eq!(ci.jobs.len(), 1);
    let names: Vec<&str> = ci.jobs[0].steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Run echo building", "Test"]);
    let o = d.cli(&[
        "--account",
        "dev",
        "pipeline",
        "logs",
        &ci.id.to_string(),
        "--job",
        "nope",
    ]);
    assert!(stderr(&o).contains("has no job `nope`"), "{}", stderr(&o));

    // A tag push runs the tag-only workflow and nothing else.
    ok(git(&work, &["tag", "v1"]));
    ok(git(
        &work,
        &["push", "-q", &with_key(&repo.clone_url, &pusher), "v1"],
    ));
    let list = runs(&d, 4);
    let tag_runs: Vec<&str> = list
        .iter()
        .filter(|r| r.git_ref == "refs/tags/v1")
        .map(|r| r.workflow.as_str())
        .collect();
    let mut sorted = tag_runs.clone();
    sorted.sort();
    // A broken file is reported for every push; the tag-only one runs for the tag.
    assert_eq!(
        sorted,
        [
            ".github/workflows/bad.yml",
            ".github/workflows/release.yaml"
        ]
    );

    // Pushes and refusals are in the audit log under their git actions.
    let audit = admin.audit(None, None, None, Some(1000)).unwrap();
    let has = |action: &str, result: &str, key: &Credentials| {
        audit.iter().any(|e| {
            e.action == action
                && e.result == result
                && e.access_key_id.as_deref() == Some(key.access_key_id.as_str())
        })
    };
    assert!(has("git:Push", "ok", &pusher), "{audit:#?}");
    assert!(has("git:Push", "denied", &reader));
    assert!(has("git:Push", "denied", &wrong));

    // Drop: gone from the list, and git finds nothing there.
    ok(d.cli(&["--account", "dev", "git", "drop", "app"]));
    let list: Vec<GitRepo> = dev_json(&d, &["git", "list"]);
    assert!(list.is_empty());
    let o = git(
        tmp.path(),
        &["ls-remote", &with_key(&repo.clone_url, &pusher)],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
}

#[test]
fn gzip_request_bodies_pass_through_and_a_push_without_workflows_records_nothing() {
    let d = Daemon::start(BIN);
    let admin = d.admin();
    admin
        .create_account(&CreateAccount {
            name: AccountName::parse("dev").unwrap(),
            description: String::new(),
        })
        .unwrap();
    let key = admin.create_key("dev", &CreateKey::default()).unwrap();
    let repo: GitRepo = dev_json(&d, &["git", "create", "lib"]);
    let url = with_key(&repo.clone_url, &key);
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    ok(git(&work, &["init", "-q", "-b", "main"]));
    // Forty commits, each tagged: a clone then wants forty objects, a request body over the
    // 1 KiB above which git gzips it.
    for i in 0..40 {
        std::fs::write(work.join("n"), i.to_string()).unwrap();
        ok(git(&work, &["add", "n"]));
        ok(git(&work, &["commit", "-qm", &format!("c{i}")]));
        ok(git(&work, &["tag", &format!("t{i}")]));
    }
    ok(git(&work, &["push", "-q", &url, "main", "--tags"]));
    let back = tmp.path().join("back");
    let o = ok(git_env(
        tmp.path(),
        &["clone", "--no-single-branch", &url, back.to_str().unwrap()],
        &[("GIT_TRACE_CURL", "1"), ("GIT_TRACE_CURL_NO_DATA", "1")],
    ));
    assert!(
        stderr(&o).contains("Content-Encoding: gzip"),
        "the clone sent no gzip body: {}",
        stderr(&o)
    );
    let tags = String::from_utf8(ok(git(&back, &["tag", "-l"])).stdout).unwrap();
    assert_eq!(tags.lines().count(), 40);
    assert_eq!(std::fs::read_to_string(back.join("n")).unwrap(), "39");
    let runs: Vec<PipelineRun> = dev_json(&d, &["pipeline", "runs"]);
    assert!(runs.is_empty(), "{runs:#?}");
}

fn b64(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
