//! Issue 3 through the daemon: packages uploaded, snapshotted and published with the `spindle`
//! CLI, served by the daemon over HTTP and consumed by Debian's real `apt-get` under a
//! throwaway `APT_CONFIG`. The engine-level tests (`crates/apt/tests/apt_get.rs`) cover the
//! index formats in depth; these prove the wiring: API, CLI, serving, private publications.

#[path = "../../apt/tests/common/mod.rs"]
mod aptc;
mod common;

use aptc::{deb, have_apt, text, AptEnv};
use common::{stderr, stdout, Daemon, BIN};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

fn json(o: Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

/// Writes small .debs into `dir`, returning their paths.
fn debs(dir: &Path, specs: &[(&str, &str, Option<&str>)]) -> Vec<String> {
    specs
        .iter()
        .map(|(name, version, depends)| {
            let p = dir.join(format!("{name}_{version}_amd64.deb"));
            std::fs::write(&p, deb(name, version, "amd64", *depends)).unwrap();
            p.display().to_string()
        })
        .collect()
}

struct Setup {
    d: Daemon,
    tmp: tempfile::TempDir,
    keyring: PathBuf,
}

/// A daemon with key `k1`, repo `main` holding hello 1.0 and libhello 1.0, and snapshot `s1`.
fn setup() -> Setup {
    let d = Daemon::start(BIN);
    let tmp = tempfile::tempdir().unwrap();
    ok(d.cli(&["key", "create", "k1"]));
    ok(d.cli(&["repo", "create", "main", "--architectures", "amd64"]));
    let files = debs(
        tmp.path(),
        &[
            ("libhello", "1.0", None),
            ("hello", "1.0", Some("libhello (>= 1.0)")),
        ],
    );
    let mut args = vec!["repo", "add", "main"];
    args.extend(files.iter().map(String::as_str));
    let added = ok(d.cli(&args));
    assert!(added.contains("2 added"), "{added}");
    ok(d.cli(&["snapshot", "create", "s1", "from", "repo", "main"]));
    // A `.gpg` file gets a binary keyring, which is what apt's `signed-by=` reads from any name
    // but `*.asc` (issue 14): every apt-get run below goes through it.
    let keyring = tmp.path().join("k1.gpg");
    ok(d.cli(&["key", "export", "k1", "--file", keyring.to_str().unwrap()]));
    Setup { d, tmp, keyring }
}

/// `db cleanup` (a dry run): its JSON answer and the package keys it would forget.
fn cleanup_dry_run(d: &Daemon) -> (serde_json::Value, Vec<String>) {
    let dry = json(d.cli(&["-o", "json", "db", "cleanup"]));
    let listed = dry["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().split_once('/').unwrap().1.to_owned())
        .collect();
    (dry, listed)
}

fn source_line(keyring: &Path, url: &str, dist: &str) -> String {
    format!("deb [signed-by={}] {url} {dist} main", keyring.display())
}

/// Publishes repo `main` as `dist`, signed with `k1`, returning the publication's URL.
fn publish_main(d: &Daemon, dist: &str) -> String {
    let p = json(d.cli(&[
        "-o",
        "json",
        "publish",
        "repo",
        "main",
        "--distribution",
        dist,
        "--sign-key",
        "k1",
    ]));
    p["url"].as_str().unwrap().to_owned()
}

/// Adds `n` generated packages, `bulk000`…, to repo `main`.
fn add_bulk(s: &Setup, n: usize) {
    let names: Vec<String> = (0..n).map(|i| format!("bulk{i:03}")).collect();
    let owned: Vec<(&str, &str, Option<&str>)> =
        names.iter().map(|n| (n.as_str(), "1.0", None)).collect();
    let files = debs(s.tmp.path(), &owned);
    let mut args = vec!["repo", "add", "main"];
    args.extend(files.iter().map(String::as_str));
    ok(s.d.cli(&args));
}

/// Points `env`'s apt at publication `stable` of `path` (`ACCOUNT/PREFIX`) on the daemon's
/// current endpoint (a restarted daemon listens on a new port).
fn point_apt_at(s: &Setup, env: &AptEnv, path: &str) {
    let url = format!("{}/apt/{path}", s.d.endpoint);
    std::fs::write(
        env.dir.join("etc/sources.list"),
        format!("{}\n", source_line(&s.keyring, &url, "stable")),
    )
    .unwrap();
}

/// Restarts the killed daemon, points apt at it, and checks that `apt-get update` verifies
/// the tree without a warning or a hash mismatch and that `package` has a candidate.
fn restart_and_verify(s: &mut Setup, env: &AptEnv, path: &str, package: &str, context: &str) {
    s.d.spawn();
    point_apt_at(s, env, path);
    let out = env.run("apt-get", &["update"]);
    let all = text(&out);
    assert!(
        out.status.success() && !all.contains("W:") && !all.contains("Hash Sum"),
        "{context}: {all}"
    );
    let policy = env.run("apt-cache", &["policy", package]);
    assert!(text(&policy).contains("Candidate:"), "{}", text(&policy));
}

/// `apt-get update`, which must succeed without warnings.
fn apt_update(env: &AptEnv) {
    let out = env.run("apt-get", &["update"]);
    let all = text(&out);
    assert!(out.status.success() && !all.contains("W:"), "{all}");
}

#[test]
fn a_cli_publish_is_served_to_apt_get() {
    if !have_apt("a_cli_publish_is_served_to_apt_get") {
        return;
    }
    let s = setup();
    let p = json(s.d.cli(&[
        "-o",
        "json",
        "publish",
        "snapshot",
        "s1",
        "--distribution",
        "stable",
        "--component",
        "main",
        "--sign-key",
        "k1",
        "--valid-for",
        "1d",
    ]));
    let url = p["url"].as_str().unwrap().to_owned();
    assert!(url.contains("/apt/"), "{p}");
    // The file name decides the format: `.gpg` binary, `.asc` (or --armor) armored.
    let armor = b"-----BEGIN PGP PUBLIC KEY BLOCK-----";
    let binary = std::fs::read(&s.keyring).unwrap();
    assert!(
        !binary.starts_with(armor) && binary[0] & 0x80 != 0,
        "not an OpenPGP packet: {:?}",
        &binary[..16.min(binary.len())]
    );
    for (name, flag) in [("k1.asc", None), ("k1-armored.gpg", Some("--armor"))] {
        let f = s.tmp.path().join(name);
        let mut args = vec!["key", "export", "k1", "--file", f.to_str().unwrap()];
        args.extend(flag);
        ok(s.d.cli(&args));
        assert!(std::fs::read(&f).unwrap().starts_with(armor), "{name}");
    }

    let env = AptEnv::new(
        &s.tmp.path().join("apt"),
        &source_line(&s.keyring, &url, "stable"),
    );
    let out = env.run("apt-get", &["update", "-o", "Debug::Acquire::http=true"]);
    let all = text(&out);
    assert!(out.status.success() && !all.contains("W:"), "{all}");
    assert!(all.contains("/dists/stable/InRelease"), "{all}");
    assert!(
        all.contains("/by-hash/SHA512/"),
        "apt did not fetch by hash: {all}"
    );
    let policy = env.run("apt-cache", &["policy", "hello"]);
    assert!(
        text(&policy).contains("Candidate: 1.0"),
        "{}",
        text(&policy)
    );
    let out = env.run("apt-get", &["download", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.dir.join("download/hello_1.0_amd64.deb").is_file());

    // A new version: repo add, snapshot, publish switch; apt sees it.
    let files = debs(s.tmp.path(), &[("hello", "2.0", Some("libhello (>= 1.0)"))]);
    ok(s.d.cli(&["repo", "add", "main", &files[0]]));
    let removed = ok(s.d.cli(&["repo", "remove", "main", "hello (<< 2.0)"]));
    assert!(removed.contains("hello_1.0_amd64"), "{removed}");
    ok(s.d.cli(&["snapshot", "create", "s2", "from", "repo", "main"]));
    let diff = ok(s.d.cli(&["snapshot", "diff", "s1", "s2"]));
    assert!(
        diff.contains("hello_1.0_amd64 -> hello_2.0_amd64"),
        "{diff}"
    );
    ok(s.d.cli(&["publish", "switch", "stable", "s2"]));
    let out = env.run("apt-get", &["update"]);
    assert!(
        out.status.success() && !text(&out).contains("W:"),
        "{}",
        text(&out)
    );
    let policy = env.run("apt-cache", &["policy", "hello"]);
    assert!(
        text(&policy).contains("Candidate: 2.0"),
        "{}",
        text(&policy)
    );

    // A different key: apt names the key it lacks.
    ok(s.d.cli(&["key", "create", "other"]));
    let other = s.tmp.path().join("other.asc");
    ok(s.d.cli(&["key", "export", "other", "--file", other.to_str().unwrap()]));
    let k1_id = json(s.d.cli(&["-o", "json", "key", "export", "k1"]))["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let env2 = AptEnv::new(
        &s.tmp.path().join("apt-other"),
        &source_line(&other, &url, "stable"),
    );
    let out = env2.run("apt-get", &["update"]);
    let all = text(&out);
    assert!(all.contains(&format!("NO_PUBKEY {k1_id}")), "{all}");

    // An expired Valid-Until is refused.
    ok(s.d.cli(&[
        "publish",
        "snapshot",
        "s1",
        "--distribution",
        "old",
        "--sign-key",
        "k1",
        "--valid-for",
        "1s",
    ]));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let env3 = AptEnv::new(
        &s.tmp.path().join("apt-old"),
        &source_line(&s.keyring, &url, "old"),
    );
    let out = env3.run("apt-get", &["update"]);
    let all = text(&out);
    assert!(all.contains("is expired"), "{all}");

    let list = json(s.d.cli(&["-o", "json", "publish", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    // A published snapshot can't be dropped; after the publication goes, it can.
    let o = s.d.cli(&["snapshot", "drop", "s2"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is published as `stable`"),
        "{}",
        stderr(&o)
    );
    ok(s.d.cli(&["publish", "drop", "stable"]));
    ok(s.d.cli(&["snapshot", "drop", "s2"]));
    let out = env.run("apt-get", &["update"]);
    assert!(
        !out.status.success() || text(&out).contains("Err:"),
        "{}",
        text(&out)
    );
}

/// Published trees serve package files from the pool, so a cleanup must keep what a
/// publication still serves even when no repository or snapshot names it any more.
#[test]
fn cleanup_keeps_what_a_publication_still_serves() {
    if !have_apt("cleanup_keeps_what_a_publication_still_serves") {
        return;
    }
    let s = setup();
    let url = publish_main(&s.d, "edge");
    ok(s.d.cli(&["snapshot", "drop", "s1"]));
    ok(s.d.cli(&["repo", "remove", "main", "hello"]));
    let (dry, listed) = cleanup_dry_run(&s.d);
    assert_eq!(listed, ["hello_1.0_amd64"], "{dry}");
    assert!(dry["pool_files"].as_array().unwrap().is_empty(), "{dry}");
    ok(s.d.cli(&["db", "cleanup", "--apply"]));

    let env = AptEnv::new(
        &s.tmp.path().join("apt"),
        &source_line(&s.keyring, &url, "edge"),
    );
    apt_update(&env);
    let out = env.run("apt-get", &["download", "hello"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(env.dir.join("download/hello_1.0_amd64.deb").is_file());

    // Once nothing publishes it, its content goes too (libhello stays: `main` holds it).
    ok(s.d.cli(&["publish", "drop", "edge"]));
    let (dry, _) = cleanup_dry_run(&s.d);
    let hello = std::fs::read(env.dir.join("download/hello_1.0_amd64.deb")).unwrap();
    let sha = spindle_deb::digest::digest_bytes(&hello).sha256;
    assert_eq!(dry["pool_files"], serde_json::json!([sha]), "{dry}");

    // Applying it rewrites the pack without hello; what stays is still served, intact.
    ok(s.d.cli(&["db", "cleanup", "--apply"]));
    let url = publish_main(&s.d, "again");
    let env = AptEnv::new(
        &s.tmp.path().join("apt-again"),
        &source_line(&s.keyring, &url, "again"),
    );
    apt_update(&env);
    let out = env.run("apt-get", &["download", "libhello"]);
    assert!(out.status.success(), "{}", text(&out));
    let served = std::fs::read(env.dir.join("download/libhello_1.0_amd64.deb")).unwrap();
    let uploaded = std::fs::read(s.tmp.path().join("libhello_1.0_amd64.deb")).unwrap();
    assert_eq!(served, uploaded);
}

/// The daemon keeps decoded repositories and snapshots between requests; every way of
/// changing one (add, copy and move from another repository, remove, drop and re-create)
/// must reach the next `publish update`, which apt-get then sees.
#[test]
fn a_republish_follows_every_change_to_its_sources() {
    if !have_apt("a_republish_follows_every_change_to_its_sources") {
        return;
    }
    let s = setup();
    let url = publish_main(&s.d, "edge");
    let env = AptEnv::new(
        &s.tmp.path().join("apt"),
        &source_line(&s.keyring, &url, "edge"),
    );
    let candidate = |env: &AptEnv, package: &str| {
        apt_update(env);
        let policy = text(&env.run("apt-cache", &["policy", package]));
        policy
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate: "))
            .unwrap_or("(none)")
            .to_owned()
    };
    assert_eq!(candidate(&env, "hello"), "1.0");

    let files = debs(
        s.tmp.path(),
        &[("hello", "2.0", None), ("extra", "1.0", None)],
    );
    ok(s.d.cli(&["repo", "add", "main", &files[0]]));
    ok(s.d.cli(&["publish", "update", "edge"]));
    assert_eq!(candidate(&env, "hello"), "2.0");

    // Into main from another repository.
    ok(s.d.cli(&["repo", "create", "other", "--architectures", "amd64"]));
    ok(s.d.cli(&["repo", "add", "other", &files[1]]));
    ok(s.d.cli(&["repo", "copy", "other", "main", "extra"]));
    ok(s.d.cli(&["publish", "update", "edge"]));
    assert_eq!(candidate(&env, "extra"), "1.0");
    // Out of main into another repository.
    ok(s.d.cli(&["repo", "move", "main", "other", "hello (>= 2.0)"]));
    ok(s.d.cli(&["publish", "update", "edge"]));
    assert_eq!(candidate(&env, "hello"), "1.0");
    ok(s.d.cli(&["repo", "remove", "main", "extra"]));
    ok(s.d.cli(&["publish", "update", "edge"]));
    assert_eq!(candidate(&env, "extra"), "(none)");
    let other = json(s.d.cli(&["-o", "json", "repo", "show", "other"]));
    assert_eq!(other["packages"], 2, "{other}");

    // A snapshot dropped and created again under its name has the new content.
    let snap = json(s.d.cli(&["-o", "json", "snapshot", "show", "s1"]));
    assert_eq!(snap["packages"], 2, "{snap}");
    ok(s.d.cli(&["snapshot", "drop", "s1"]));
    ok(s.d.cli(&["snapshot", "create", "s1", "from", "repo", "other"]));
    ok(s.d.cli(&[
        "publish",
        "snapshot",
        "s1",
        "--distribution",
        "snap",
        "--sign-key",
        "k1",
    ]));
    let env2 = AptEnv::new(
        &s.tmp.path().join("apt-snap"),
        &source_line(&s.keyring, &url, "snap"),
    );
    assert_eq!(candidate(&env2, "hello"), "2.0");
    assert_eq!(candidate(&env2, "extra"), "1.0");
    assert_eq!(candidate(&env2, "libhello"), "(none)");
}

#[test]
fn a_private_publish_needs_its_read_token() {
    if !have_apt("a_private_publish_needs_its_read_token") {
        return;
    }
    let s = setup();
    let p = json(s.d.cli(&[
        "-o",
        "json",
        "publish",
        "repo",
        "main",
        "--distribution",
        "internal",
        "--prefix",
        "team/secret",
        "--sign-key",
        "k1",
        "--private",
    ]));
    let url = p["url"].as_str().unwrap().to_owned();
    let token = p["read_token"].as_str().unwrap().to_owned();
    assert!(url.ends_with("/team/secret"), "{url}");
    // The token is shown once: listings don't carry it.
    let list = ok(s.d.cli(&["-o", "json", "publish", "list"]));
    assert!(!list.contains(&token), "{list}");

    let line = source_line(&s.keyring, &url, "internal");
    let without = AptEnv::new(&s.tmp.path().join("apt-without"), &line);
    let out = without.run("apt-get", &["update"]);
    let all = text(&out);
    assert!(all.contains("401"), "{all}");
    let policy = without.run("apt-cache", &["policy", "hello"]);
    assert!(
        !text(&policy).contains("Candidate: 1.0"),
        "{}",
        text(&policy)
    );

    let with = AptEnv::new(&s.tmp.path().join("apt-with"), &line);
    // With the scheme: apt sends credentials over plain http only to such an entry.
    let host = &url;
    let auth = with.dir.join("etc/auth.conf");
    std::fs::write(
        &auth,
        format!("machine {host} login spindle password {token}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&auth, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = with.run("apt-get", &["update"]);
    assert!(
        out.status.success() && !text(&out).contains("W:"),
        "{}",
        text(&out)
    );
    let out = with.run("apt-get", &["download", "hello"]);
    assert!(out.status.success(), "{}", text(&out));

    // A wrong token is refused as well.
    std::fs::write(
        &auth,
        format!("machine {host} login spindle password nope\n"),
    )
    .unwrap();
    std::fs::remove_dir_all(with.dir.join("state/lists")).unwrap();
    std::fs::create_dir_all(with.dir.join("state/lists/partial")).unwrap();
    let out = with.run("apt-get", &["update"]);
    assert!(text(&out).contains("401"), "{}", text(&out));

    // Public and private publications don't share a prefix (they would share its pool/).
    let o = s.d.cli(&[
        "publish",
        "repo",
        "main",
        "--distribution",
        "open",
        "--prefix",
        "team/secret",
        "--sign-key",
        "k1",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("need their own prefix"),
        "{}",
        stderr(&o)
    );
}

/// Bad input through the API gets a clear error and changes nothing.
#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let d = Daemon::start(BIN);
    let tmp = tempfile::tempdir().unwrap();
    ok(d.cli(&["repo", "create", "main", "--architectures", "amd64"]));
    let good = debs(tmp.path(), &[("hello", "1.0", None)]);
    ok(d.cli(&["repo", "add", "main", &good[0]]));

    // A truncated .deb: refused, and the good file in the same command is not added.
    let bytes = std::fs::read(&good[0]).unwrap();
    let cut = tmp.path().join("cut.deb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let other = debs(tmp.path(), &[("other", "1.0", None)]);
    let o = d.cli(&["repo", "add", "main", &other[0], cut.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("cut.deb") && err.contains("not a valid .deb"),
        "{err}"
    );
    // A wrong architecture names the architectures the repo carries.
    let arm = tmp.path().join("arm.deb");
    std::fs::write(&arm, deb("armthing", "1.0", "arm64", None)).unwrap();
    let o = d.cli(&["repo", "add", "main", arm.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("does not carry architecture `arm64`"),
        "{}",
        stderr(&o)
    );
    // The same key with other content is a conflict, never an overwrite.
    let mut changed = deb("hello", "1.0", "amd64", Some("libc6"));
    let again = tmp.path().join("hello-again.deb");
    std::fs::write(&again, &changed).unwrap();
    let o = d.cli(&["repo", "add", "main", again.to_str().unwrap()]);
    assert!(
        stderr(&o).contains("already exists with different content"),
        "{}",
        stderr(&o)
    );
    changed.clear();
    // A query syntax error names the column.
    let o = d.cli(&["repo", "search", "main", "Name (>= "]);
    assert!(stderr(&o).contains("column"), "{}", stderr(&o));
    let o = d.cli(&["repo", "remove", "main", "hello |"]);
    assert!(stderr(&o).contains("query `hello |`"), "{}", stderr(&o));
    // A prefix escaping the tree.
    ok(d.cli(&["key", "create", "k"]));
    let o = d.cli(&[
        "publish",
        "repo",
        "main",
        "--distribution",
        "x",
        "--prefix",
        "../up",
        "--sign-key",
        "k",
    ]);
    assert!(
        stderr(&o).contains("invalid prefix `../up`"),
        "{}",
        stderr(&o)
    );
    let o = d.cli(&[
        "publish",
        "repo",
        "main",
        "--distribution",
        "x",
        "--sign-key",
        "nokey",
    ]);
    assert!(
        stderr(&o).contains("signing key `nokey` not found"),
        "{}",
        stderr(&o)
    );

    let search = json(d.cli(&["-o", "json", "repo", "search", "main"]));
    let keys: Vec<&str> = search
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["hello_1.0_amd64"]);
    assert!(json(d.cli(&["-o", "json", "publish", "list"]))
        .as_array()
        .unwrap()
        .is_empty());

    // Uploaded but never added (`armthing`), it stays in the pool until cleanup,
    // which is a dry run unless told otherwise.
    let (dry, listed) = cleanup_dry_run(&d);
    // `other` was in the same (batched, all-or-nothing) upload as the truncated file, so it
    // never reached the pool.
    assert_eq!(listed, ["armthing_1.0_arm64"], "{dry}");
    assert_eq!(dry["pool_files"].as_array().unwrap().len(), 1, "{dry}");
    let done = json(d.cli(&["-o", "json", "db", "cleanup", "--apply"]));
    assert_eq!(done["pool_files"], dry["pool_files"]);
    let again = json(d.cli(&["-o", "json", "db", "cleanup"]));
    assert!(again["packages"].as_array().unwrap().is_empty(), "{again}");
    assert!(
        again["pool_files"].as_array().unwrap().is_empty(),
        "{again}"
    );
    let s = json(d.cli(&["-o", "json", "repo", "search", "main", "hello"]));
    assert_eq!(s.as_array().unwrap().len(), 1);
}

/// Many .debs in one upload request: `repo add DIR` sends a directory as batched tar
/// uploads; a batch is added all or none (a corrupt member, a link, a key clash inside the
/// batch each refuse the whole request, naming the entry), and re-adding is idempotent.
#[test]
fn a_batch_upload_adds_many_debs_all_or_none() {
    let d = Daemon::start(BIN);
    let tmp = tempfile::tempdir().unwrap();
    ok(d.cli(&["repo", "create", "main", "--architectures", "amd64"]));
    let dir = tmp.path().join("debs");
    std::fs::create_dir(&dir).unwrap();
    let names: Vec<String> = (0..40).map(|i| format!("batch{i:02}")).collect();
    let specs: Vec<(&str, &str, Option<&str>)> =
        names.iter().map(|n| (n.as_str(), "1.0", None)).collect();
    debs(&dir, &specs);
    std::fs::write(dir.join("README"), "not a package").unwrap();
    let out = ok(d.cli(&["repo", "add", "main", dir.to_str().unwrap()]));
    assert!(out.contains("40 added, 0 removed, 0 unchanged"), "{out}");
    let again = ok(d.cli(&["repo", "add", "main", dir.to_str().unwrap()]));
    assert!(
        again.contains("0 added, 0 removed, 40 unchanged"),
        "{again}"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = d.cli(&["repo", "add", "main", empty.to_str().unwrap()]);
    assert!(stderr(&o).contains("holds no .deb file"), "{}", stderr(&o));

    // Through the API: one request, all records at once.
    let c = d.admin();
    let x = deb("xtra", "2.0", "amd64", None);
    let y = deb("ytra", "2.0", "amd64", Some("xtra"));
    let added = c
        .upload_packages("management", &[("x.deb", &x), ("y.deb", &y)])
        .unwrap();
    let keys: Vec<&str> = added.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["xtra_2.0_amd64", "ytra_2.0_amd64"]);

    let refused = |files: &[(&str, &[u8])], status: u16, needle: &str| match c
        .upload_packages("management", files)
    {
        Err(spindle_client::ClientError::Api { status: s, body }) => {
            assert_eq!(s, status, "{}", body.message);
            assert!(body.message.contains(needle), "{}", body.message);
        }
        other => panic!("expected a refusal, got {other:?}"),
    };
    let z = deb("ztra", "1.0", "amd64", None);
    refused(
        &[("z.deb", &z), ("cut.deb", &x[..x.len() / 2])],
        400,
        "upload entry `cut.deb`",
    );
    let clash = deb("ztra", "1.0", "amd64", Some("libc6"));
    refused(&[("z.deb", &z), ("z2.deb", &clash)], 409, "ztra_1.0_amd64");
    refused(
        &[("x.deb", &deb("xtra", "2.0", "amd64", Some("libc6")))],
        409,
        "already exists",
    );

    // An archive without a .deb (links and devices are refused by name: unit-tested in
    // `spindle_apt::upload`).
    refused(&[], 400, "holds no .deb file");

    // Nothing of the refused batches reached the records or the pool: cleanup finds only
    // the two uploaded-but-never-added packages of the good batch.
    let (dry, listed) = cleanup_dry_run(&d);
    assert_eq!(listed, ["xtra_2.0_amd64", "ytra_2.0_amd64"], "{dry}");
    assert_eq!(dry["pool_files"].as_array().unwrap().len(), 2, "{dry}");
    let search = json(d.cli(&["-o", "json", "repo", "search", "main"]));
    assert_eq!(search.as_array().unwrap().len(), 40);
}

/// Issue 3: 200 `apt-get update` runs while `publish switch` alternates between two snapshots
/// through the daemon: no hash mismatch, ever. About 100 s on two cores.
#[test]
#[ignore = "slow: 200 apt-get updates take about 100 s; the 30-update variant runs by default"]
fn issue3_200_updates_while_publish_switch_alternates() {
    if have_apt("issue3_200_updates_while_publish_switch_alternates") {
        updates_during_switches(200);
    }
}

/// The same race, shorter, in every run.
#[test]
fn updates_while_publish_switch_alternates_never_mismatch() {
    if have_apt("updates_while_publish_switch_alternates_never_mismatch") {
        updates_during_switches(30);
    }
}

fn updates_during_switches(updates: usize) {
    let s = setup();
    let mut specs: Vec<(String, &str)> = (0..30).map(|i| (format!("pkg{i:02}"), "1.0")).collect();
    specs.extend((0..30).map(|i| (format!("pkg{i:02}"), "2.0")));
    let owned: Vec<(&str, &str, Option<&str>)> =
        specs.iter().map(|(n, v)| (n.as_str(), *v, None)).collect();
    let files = debs(s.tmp.path(), &owned);
    let mut args = vec!["repo", "add", "main"];
    args.extend(files[..30].iter().map(String::as_str));
    ok(s.d.cli(&args));
    ok(s.d.cli(&["snapshot", "create", "a", "from", "repo", "main"]));
    let mut args = vec!["repo", "add", "main"];
    args.extend(files[30..].iter().map(String::as_str));
    ok(s.d.cli(&args));
    ok(s.d.cli(&["repo", "remove", "main", "Name (% pkg*), Version (1.0)"]));
    ok(s.d.cli(&["snapshot", "create", "b", "from", "repo", "main"]));
    let p = json(s.d.cli(&[
        "-o",
        "json",
        "publish",
        "snapshot",
        "a",
        "--distribution",
        "stable",
        "--sign-key",
        "k1",
    ]));
    let url = p["url"].as_str().unwrap().to_owned();
    let env = AptEnv::new(
        &s.tmp.path().join("apt"),
        &source_line(&s.keyring, &url, "stable"),
    );

    let done = Arc::new(AtomicBool::new(false));
    let switches = Arc::new(AtomicUsize::new(0));
    let client = s.d.admin();
    let account = client.whoami().unwrap().account_name.to_string();
    let (done2, switches2) = (done.clone(), switches.clone());
    let switcher = std::thread::spawn(move || {
        let mut flip = false;
        let mut errors = Vec::new();
        while !done2.load(Ordering::SeqCst) {
            flip = !flip;
            let req = spindle_model::apt::SwitchPublication {
                prefix: String::new(),
                distribution: "stable".into(),
                snapshots: vec![("main".into(), if flip { "b" } else { "a" }.into())],
            };
            match client.switch_publication(&account, &req) {
                Ok(_) => {
                    switches2.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => errors.push(e.to_string()),
            }
            // A short pause leaves the two cores to apt too; a switch still lands between
            // nearly every pair of updates.
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
        errors
    });
    let mut failures = Vec::new();
    for i in 0..updates {
        let out = env.run("apt-get", &["update"]);
        let all = text(&out);
        if !out.status.success() || all.contains("Hash Sum mismatch") || all.contains("W:") {
            failures.push(format!("update {i}: {all}"));
        }
    }
    done.store(true, Ordering::SeqCst);
    let errors = switcher.join().unwrap();
    let n = switches.load(Ordering::SeqCst);
    assert!(errors.is_empty(), "switch errors: {errors:?}");
    assert!(
        failures.is_empty(),
        "{} of {updates} updates failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        n >= updates / 10,
        "only {n} switches during {updates} updates"
    );
    eprintln!("{updates} apt-get updates during {n} publish switches: no mismatch");
}

/// Killing the daemon (SIGKILL) in the middle of a publish leaves a tree apt still verifies
/// and a database the restarted daemon works with.
#[test]
fn kill_9_during_publish_leaves_a_verifiable_repository() {
    if !have_apt("kill_9_during_publish_leaves_a_verifiable_repository") {
        return;
    }
    let mut s = setup();
    add_bulk(&s, 80);
    ok(s.d.cli(&["snapshot", "create", "big", "from", "repo", "main"]));
    let p = json(s.d.cli(&[
        "-o",
        "json",
        "publish",
        "snapshot",
        "s1",
        "--distribution",
        "stable",
        "--sign-key",
        "k1",
    ]));
    let path = p["url"]
        .as_str()
        .unwrap()
        .split_once("/apt/")
        .unwrap()
        .1
        .to_owned();
    let env = AptEnv::new(&s.tmp.path().join("apt"), "");

    for (round, delay_ms) in [5u64, 30, 80, 150, 300].into_iter().enumerate() {
        // Switch in a child CLI process and kill the daemon while it works.
        let target = if round % 2 == 0 { "big" } else { "s1" };
        let mut cli = std::process::Command::new(common::BIN)
            .args(["--endpoint", &s.d.endpoint, "--credentials-file"])
            .arg(s.d.credentials_file())
            .args(["publish", "switch", "stable", target])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        s.d.kill9();
        let _ = cli.wait();
        restart_and_verify(
            &mut s,
            &env,
            &path,
            "hello",
            &format!("round {round} (kill after {delay_ms} ms)"),
        );
        // The database is whole: reads work and the next publish goes through.
        let list = json(s.d.cli(&["-o", "json", "publish", "list"]));
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        ok(s.d.cli(&["publish", "update", "stable"]));
        let out = env.run("apt-get", &["update"]);
        assert!(
            out.status.success() && !text(&out).contains("W:"),
            "{}",
            text(&out)
        );
    }
}

/// The `Release` files of the daemon's published trees, as on disk.
fn releases(d: &Daemon) -> Vec<String> {
    let mut out = Vec::new();
    for account in std::fs::read_dir(d.data_dir().join("apt/public"))
        .unwrap()
        .flatten()
    {
        let r = account.path().join("dists/stable/Release");
        if let Ok(t) = std::fs::read_to_string(r) {
            out.push(t);
        }
    }
    out
}

/// Issue 23: a first publish of many packages returns after the `Release` swap that lists
/// `Packages.gz`; `Contents` and `Packages.xz` follow in a second swap from a background
/// thread. Killing the daemon (SIGKILL) at any point of that step leaves a tree apt
/// verifies, and the step lands once the daemon is left alone.
#[test]
fn kill_9_during_the_background_contents_step_leaves_a_verifiable_repository() {
    if !have_apt("kill_9_during_the_background_contents_step_leaves_a_verifiable_repository") {
        return;
    }
    let mut s = setup();
    // Enough packages that a cold publish defers (`spindle_apt::publish::DEFER_ABOVE`).
    add_bulk(&s, 400);
    let url = publish_main(&s.d, "stable");
    let path = url.split_once("/apt/").unwrap().1.to_owned();
    let env = AptEnv::new(&s.tmp.path().join("apt"), "");
    let mut killed_before_second_swap = 0;
    for (round, delay_ms) in [0u64, 10, 40, 100, 250].into_iter().enumerate() {
        // Each restart starts with a cold cache, so each update defers again.
        ok(s.d.cli(&["publish", "update", "stable"]));
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        s.d.kill9();
        let listed = releases(&s.d);
        assert_eq!(listed.len(), 1);
        if !listed[0].contains("Contents-amd64.gz") {
            killed_before_second_swap += 1;
        }
        restart_and_verify(
            &mut s,
            &env,
            &path,
            "bulk399",
            &format!("round {round} (kill {delay_ms} ms after the publish returned)"),
        );
    }
    assert!(
        killed_before_second_swap > 0,
        "no kill landed before the second swap"
    );
    // Left alone, the daemon lands the second swap, and apt reads it.
    ok(s.d.cli(&["publish", "update", "stable"]));
    let t = std::time::Instant::now();
    while !releases(&s.d)[0].contains("Contents-amd64.gz") {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "Contents never listed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let release = &releases(&s.d)[0];
    assert!(
        release.contains("main/binary-amd64/Packages.xz"),
        "{release}"
    );
    apt_update(&env);
    let policy = env.run("apt-cache", &["policy", "bulk000"]);
    assert!(
        text(&policy).contains("Candidate: 1.0"),
        "{}",
        text(&policy)
    );
}

/// Issue 3: a mirror of a reprepro-published repository (served on 127.0.0.1), snapshotted
/// and republished by Spindle, installs with apt-get. The mirror takes only what its filter
/// selects plus dependencies, and refuses a wrong keyring and a file whose hash is wrong.
#[test]
fn a_mirror_of_a_reprepro_repository_installs_with_apt_get() {
    if !have_apt("a_mirror_of_a_reprepro_repository_installs_with_apt_get") {
        return;
    }
    if std::process::Command::new("reprepro")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED a_mirror_of_a_reprepro_repository_installs_with_apt_get: reprepro is not installed (apt-get install reprepro)");
        return;
    }
    let d = Daemon::start(BIN);
    let tmp = tempfile::tempdir().unwrap();
    // The upstream: reprepro's repository, its Release clearsigned by the upstream's key.
    let up = tmp.path().join("upstream");
    std::fs::create_dir_all(up.join("conf")).unwrap();
    std::fs::write(
        up.join("conf/distributions"),
        "Origin: Upstream\nCodename: stable\nSuite: stable\nComponents: main\nArchitectures: amd64\n",
    )
    .unwrap();
    let files = debs(
        tmp.path(),
        &[
            ("libgreet", "3.0", None),
            ("greet", "3.0", Some("libgreet (>= 3.0)")),
            ("unrelated", "1.0", None),
        ],
    );
    for f in &files {
        let o = std::process::Command::new("reprepro")
            .args(["-b", up.to_str().unwrap(), "includedeb", "stable", f])
            .output()
            .unwrap();
        assert!(o.status.success(), "reprepro: {}", text(&o));
    }
    let upstream_key = spindle_apt::SigningKey::generate(
        "Upstream <upstream@example.invalid>",
        spindle_apt::KeyAlgorithm::Ed25519,
    )
    .unwrap();
    let release = std::fs::read_to_string(up.join("dists/stable/Release")).unwrap();
    std::fs::write(
        up.join("dists/stable/InRelease"),
        upstream_key.clearsign(&release).unwrap(),
    )
    .unwrap();
    let upstream_asc = tmp.path().join("upstream.asc");
    std::fs::write(&upstream_asc, upstream_key.public_armored().unwrap()).unwrap();
    let server = aptc::HttpServer::start(&up);
    let url = format!("http://127.0.0.1:{}/", server.port);

    ok(d.cli(&[
        "mirror",
        "create",
        "up",
        &url,
        "stable",
        "main",
        "--filter",
        "greet",
        "--with-deps",
        "--keyring",
        upstream_asc.to_str().unwrap(),
    ]));
    let m = json(d.cli(&["-o", "json", "mirror", "update", "up"]));
    assert_eq!(m["packages"], 2, "{m}");
    ok(d.cli(&["snapshot", "create", "upstream-1", "from", "mirror", "up"]));
    let snap = json(d.cli(&["-o", "json", "snapshot", "show", "upstream-1"]));
    let keys: Vec<&str> = snap["package_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["greet_3.0_amd64", "libgreet_3.0_amd64"], "{snap}");

    // An upstream Release whose Valid-Until has passed is refused, naming the mirror and the
    // date, and the mirror keeps what it had.
    let stale = release.replacen(
        "\nMD5Sum:",
        "\nValid-Until: Sat, 01 Jan 2000 00:00:00 UTC\nMD5Sum:",
        1,
    );
    assert_ne!(stale, release, "reprepro's Release has an MD5Sum section");
    std::fs::write(
        up.join("dists/stable/InRelease"),
        upstream_key.clearsign(&stale).unwrap(),
    )
    .unwrap();
    let o = d.cli(&["mirror", "update", "up"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("mirror `up`") && err.contains("Valid-Until is Sat, 01 Jan 2000 00:00:00 UTC"),
        "{err}"
    );
    let m = json(d.cli(&["-o", "json", "mirror", "show", "up"]));
    assert_eq!(m["packages"], 2, "{m}");
    std::fs::write(
        up.join("dists/stable/InRelease"),
        upstream_key.clearsign(&release).unwrap(),
    )
    .unwrap();

    // Republish with Spindle's own key; apt installs from it into a throwaway root.
    ok(d.cli(&["key", "create", "k1"]));
    let keyring = tmp.path().join("k1.asc");
    ok(d.cli(&["key", "export", "k1", "--file", keyring.to_str().unwrap()]));
    let p = json(d.cli(&[
        "-o",
        "json",
        "publish",
        "snapshot",
        "upstream-1",
        "--distribution",
        "pinned",
        "--sign-key",
        "k1",
    ]));
    let env = AptEnv::new(
        &tmp.path().join("apt"),
        &source_line(&keyring, p["url"].as_str().unwrap(), "pinned"),
    );
    let out = env.run("apt-get", &["update"]);
    assert!(
        out.status.success() && !text(&out).contains("W:"),
        "{}",
        text(&out)
    );
    let root = env.dir.join("root");
    let root_opt = format!("DPkg::Options::=--root={}", root.display());
    let out = env.run(
        "apt-get",
        &[
            "install",
            "-y",
            "--no-install-recommends",
            "-o",
            &root_opt,
            "-o",
            "DPkg::Options::=--force-not-root",
            "-o",
            "DPkg::Options::=--force-script-chrootless",
            "-o",
            "DPkg::Use-Pty=0",
            "greet",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/libgreet/version")).unwrap(),
        "libgreet 3.0\n"
    );

    // A keyring that did not sign InRelease: refused, nothing recorded.
    let other = spindle_apt::SigningKey::generate(
        "Other <o@example.invalid>",
        spindle_apt::KeyAlgorithm::Ed25519,
    )
    .unwrap();
    let other_asc = tmp.path().join("other.asc");
    std::fs::write(&other_asc, other.public_armored().unwrap()).unwrap();
    ok(d.cli(&[
        "mirror",
        "create",
        "wrongkey",
        &url,
        "stable",
        "--keyring",
        other_asc.to_str().unwrap(),
    ]));
    let o = d.cli(&["mirror", "update", "wrongkey"]);
    assert!(
        stderr(&o).contains("is not signed by a key of the mirror's keyring"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        json(d.cli(&["-o", "json", "mirror", "show", "wrongkey"]))["packages"],
        0
    );

    // A .deb that doesn't match its index: refused.
    let pool_file = walk(&up.join("pool"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("unrelated_1.0"))
        .unwrap();
    std::fs::write(&pool_file, b"not the package").unwrap();
    ok(d.cli(&[
        "mirror",
        "create",
        "all",
        &url,
        "stable",
        "--keyring",
        upstream_asc.to_str().unwrap(),
    ]));
    let o = d.cli(&["mirror", "update", "all"]);
    assert!(
        stderr(&o).contains("does not match the hash Release lists"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        json(d.cli(&["-o", "json", "mirror", "show", "all"]))["packages"],
        0
    );
    let list = json(d.cli(&["-o", "json", "mirror", "list"]));
    assert_eq!(list.as_array().unwrap().len(), 3);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
