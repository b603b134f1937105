//! `debian:SUITE` bases: a minbase tree bootstrapped by Spindle, like
//! `debootstrap --variant=minbase`, from the mirror the host's apt sources name.
//!
//! 1. [`host_mirror`] reads `/etc/apt/sources.list` and `/etc/apt/sources.list.d/` (one-line
//!    and deb822 formats) for a `deb` source carrying `main`.
//! 2. [`Index::fetch`] downloads `dists/SUITE/InRelease`, checks its signature with `gpgv`
//!    against the Debian archive keyring, then `main/binary-amd64/Packages.xz`, verified
//!    against the sha256 the Release file lists (kept in the bake dir by digest).
//! 3. [`select`] (pure) picks `Priority: required` and `Essential: yes` packages plus `apt`,
//!    closed over `Pre-Depends` and `Depends` (first satisfiable alternative, or a provider).
//! 4. [`download`] fetches the .debs in parallel, each verified against its sha256.
//! 5. The executor extracts every package's `data.tar` into the base layer's tree
//!    ([`extract_data`]), then, inside the tree in namespaces, has dpkg install the same
//!    packages over it (`dpkg --install --force-depends`, then `dpkg --configure -a`), which
//!    runs their maintainer scripts and records them in dpkg's database.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use spindle_deb::control::{parse_paragraphs, Paragraph};
use spindle_deb::Relations;

/// The keyring `gpgv` checks the archive's Release signature with.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One `deb` source line (or deb822 stanza).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
}

/// Parses one-line (`deb [opts] URI SUITE COMP…`) and deb822 (`Types:`/`URIs:`/…) sources.
pub fn parse_sources(text: &str, deb822: bool) -> Vec<AptSource> {
    let mut out = Vec::new();
    if deb822 {
        for stanza in text.split("\n\n") {
            let mut f: HashMap<String, String> = HashMap::new();
            for line in stanza.lines() {
                if line.trim_start().starts_with('#') {
                    continue;
                }
                if let Some((k, v)) = line.split_once(':') {
                    f.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let words = |k: &str| -> Vec<String> {
                f.get(k)
                    .map(|v| v.split_whitespace().map(str::to_string).collect())
                    .unwrap_or_default()
            };
            if !words("types").iter().any(|t| t == "deb")
                || f.get("enabled").is_some_and(|e| e == "no")
            {
                continue;
            }
            for uri in words("uris") {
                out.push(AptSource {
                    uri,
                    suites: words("suites"),
                    components: words("components"),
                });
            }
        }
    } else {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default().trim();
            let mut words = line.split_whitespace();
            if words.next() != Some("deb") {
                continue;
            }
            let mut rest: Vec<&str> = words.collect();
            if rest.first().is_some_and(|w| w.starts_with('[')) {
                let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
                rest.drain(..=end);
            }
            if rest.len() >= 3 {
                out.push(AptSource {
                    uri: rest[0].to_string(),
                    suites: vec![rest[1].to_string()],
                    components: rest[2..].iter().map(|s| s.to_string()).collect(),
                });
            }
        }
    }
    out
}

/// Picks the mirror for `suite`: a `deb` source with `main` listing the suite, else any `deb`
/// source with `main` that is not a security or updates archive.
pub fn choose_mirror(sources: &[AptSource], suite: &str) -> Option<String> {
    let main = |s: &&AptSource| s.components.iter().any(|c| c == "main");
    sources
        .iter()
        .filter(main)
        .find(|s| s.suites.iter().any(|x| x == suite))
        .or_else(|| {
            sources.iter().filter(main).find(|s| {
                s.suites
                    .iter()
                    .all(|x| !x.contains("security") && !x.contains("updates"))
            })
        })
        .map(|s| s.uri.trim_end_matches('/').to_string())
}

/// The mirror the host's apt sources name for `suite`.
pub fn host_mirror(suite: &str) -> Result<String, String> {
    let mut sources = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        sources.extend(parse_sources(&t, false));
    }
    let dir = Path::new("/etc/apt/sources.list.d");
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    for p in names {
        let name = p.to_string_lossy().to_string();
        if let Ok(t) = fs::read_to_string(&p) {
            if name.ends_with(".sources") {
                sources.extend(parse_sources(&t, true));
            } else if name.ends_with(".list") {
                sources.extend(parse_sources(&t, false));
            }
        }
    }
    let m = choose_mirror(&sources, suite).ok_or_else(|| {
        "no `deb` source with component main in /etc/apt/sources.list(.d)".to_string()
    })?;
    if !m.starts_with("http://") {
        return Err(format!(
            "the host's mirror `{m}` is not plain http (Release signatures are checked with gpgv instead of TLS)"
        ));
    }
    Ok(m)
}

/// Fetches `url`. A transport failure (a name lookup or connection that failed, a body cut
/// short) is tried again, up to four times in all with growing pauses, since a bootstrap makes
/// about a hundred requests and one passing hiccup should not fail it; an HTTP error status is
/// not.
/// The one HTTP agent of every mirror fetch: connections are pooled (as many per host as
/// [`download`] has workers), and a host name is looked up once per process. A fresh agent per
/// request made a new connection, and so a new name lookup, for every package — and here
/// about one lookup in thirty stalls for the resolver's 5 s timeout.
fn agent() -> &'static ureq::Agent {
    static AGENT: std::sync::OnceLock<ureq::Agent> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        let seen = std::sync::Mutex::new(std::collections::HashMap::new());
        ureq::AgentBuilder::new()
            .max_idle_connections_per_host(DOWNLOAD_WORKERS)
            .timeout(std::time::Duration::from_secs(120))
            .resolver(move |host_port: &str| {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(addrs) = seen.get(host_port) {
                    return Ok(Clone::clone(addrs));
                }
                let addrs: Vec<std::net::SocketAddr> =
                    std::net::ToSocketAddrs::to_socket_addrs(host_port)?.collect();
                seen.insert(host_port.to_string(), addrs.clone());
                Ok(addrs)
            })
            .build()
    })
}

/// Parallel downloads of a base's packages.
const DOWNLOAD_WORKERS: usize = 8;

fn get(url: &str) -> Result<Vec<u8>, String> {
    let mut pause = std::time::Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        let res = match agent().get(url).call() {
            Ok(resp) => {
                let mut body = Vec::new();
                match resp.into_reader().read_to_end(&mut body) {
                    Ok(_) => return Ok(body),
                    Err(e) => format!("GET {url}: {e}"),
                }
            }
            Err(e @ ureq::Error::Status(..)) => return Err(format!("GET {url}: {e}")),
            Err(e) => format!("GET {url}: {e}"),
        };
        if attempt == 4 {
            return Err(format!("{res} (after {attempt} tries)"));
        }
        std::thread::sleep(pause);
        pause *= 2;
        attempt += 1;
    }
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A binary package from the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
}

/// A suite's package index, verified.
pub struct Index {
    pub mirror: String,
    pub suite: String,
    pub paragraphs: Vec<Paragraph>,
}

impl Index {
    /// Downloads and verifies `InRelease` and `main/binary-amd64/Packages.xz`. The index is
    /// kept under `cache/indexes/<sha256>` and not downloaded again while the Release file
    /// still names that digest.
    pub fn fetch(mirror: &str, suite: &str, cache: &Path) -> Result<Index, String> {
        if !Path::new(KEYRING).exists() {
            return Err(format!(
                "{KEYRING} is missing (apt-get install debian-archive-keyring); Release signatures can't be checked"
            ));
        }
        Index::fetch_signed(mirror, suite, "main", Path::new(KEYRING), cache)
    }

    /// Like [`Index::fetch`] for any signed repository: `InRelease` checked with `gpgv`
    /// against `keyring`, then `COMPONENT/binary-amd64/Packages` (`.xz`, `.gz` or plain,
    /// whichever the Release file lists first in that order) checked against its sha256.
    pub fn fetch_signed(
        base: &str,
        dist: &str,
        component: &str,
        keyring: &Path,
        cache: &Path,
    ) -> Result<Index, String> {
        let dist_url = format!("{}/dists/{dist}", base.trim_end_matches('/'));
        let inrelease = get(&format!("{dist_url}/InRelease"))?;
        let dir = cache.join("indexes");
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let signed = dir.join(format!("InRelease-{}", sha256_hex(&inrelease)));
        fs::write(&signed, &inrelease).map_err(|e| format!("write {}: {e}", signed.display()))?;
        let out = std::process::Command::new("gpgv")
            .arg("--keyring")
            .arg(keyring)
            .arg(&signed)
            .output()
            .map_err(|e| format!("run gpgv (apt-get install gpgv): {e}"));
        let _ = fs::remove_file(&signed);
        let out = out?;
        if !out.status.success() {
            return Err(format!(
                "{dist_url}/InRelease has no valid signature from {}: {}",
                keyring.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = String::from_utf8_lossy(&inrelease);
        let listed: Vec<(String, String, String)> = text
            .split("\nSHA256:")
            .nth(1)
            .map(|sec| {
                sec.lines()
                    .skip(1)
                    .take_while(|l| l.starts_with(' '))
                    .filter_map(|l| {
                        let w: Vec<&str> = l.split_whitespace().collect();
                        (w.len() == 3)
                            .then(|| (w[0].to_string(), w[1].to_string(), w[2].to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let stem = format!("{component}/binary-amd64/Packages");
        let (compression, sha, size, want) = [
            (spindle_deb::Compression::Xz, ".xz"),
            (spindle_deb::Compression::Gzip, ".gz"),
            (spindle_deb::Compression::None, ""),
        ]
        .into_iter()
        .find_map(|(c, ext)| {
            let name = format!("{stem}{ext}");
            listed
                .iter()
                .find(|(_, _, n)| *n == name)
                .map(|(sha, size, _)| (c, sha.clone(), size.clone(), name))
        })
        .ok_or_else(|| format!("{dist_url}/InRelease lists no sha256 for {stem}(.xz|.gz)"))?;
        let cached = dir.join(&sha);
        let raw = match fs::read(&cached) {
            Ok(b) if sha256_hex(&b) == sha => b,
            _ => {
                let b = get(&format!("{dist_url}/{want}"))?;
                let actual = sha256_hex(&b);
                if actual != sha {
                    return Err(format!(
                        "{dist_url}/{want}: sha256 {actual}, the Release file says {sha} (size {size})"
                    ));
                }
                fs::write(&cached, &b).map_err(|e| format!("write {}: {e}", cached.display()))?;
                b
            }
        };
        let mut plain = String::new();
        spindle_deb::compress::decoder(compression, &raw[..])
            .and_then(|mut d| d.read_to_string(&mut plain))
            .map_err(|e| format!("{want}: {e}"))?;
        let paragraphs = parse_paragraphs(&plain).map_err(|e| format!("{want}: {e}"))?;
        Ok(Index {
            mirror: base.to_string(),
            suite: dist.to_string(),
            paragraphs,
        })
    }
}

/// The minbase set: `Priority: required`, `Essential: yes` and `apt`, closed over
/// `Pre-Depends` and `Depends`. Pure; sorted by name.
pub fn select(paragraphs: &[Paragraph]) -> Result<Vec<Pkg>, String> {
    let mut by_name: BTreeMap<&str, &Paragraph> = BTreeMap::new();
    let mut providers: HashMap<String, Vec<&str>> = HashMap::new();
    for p in paragraphs {
        let Some(name) = p.get("Package") else {
            continue;
        };
        if p.get("Architecture")
            .is_some_and(|a| a != "amd64" && a != "all")
        {
            continue;
        }
        by_name.insert(name, p);
        if let Some(prov) = p.get("Provides") {
            if let Ok(r) = Relations::parse(prov) {
                for n in r.names() {
                    providers.entry(n.to_string()).or_default().push(name);
                }
            }
        }
    }
    let mut todo: Vec<String> = by_name
        .iter()
        .filter(|(_, p)| p.get("Priority") == Some("required") || p.get("Essential") == Some("yes"))
        .map(|(n, _)| n.to_string())
        .collect();
    todo.push("apt".into());
    let mut chosen: BTreeSet<String> = BTreeSet::new();
    while let Some(n) = todo.pop() {
        let Some(p) = by_name.get(n.as_str()).copied() else {
            return Err(format!("package `{n}` is not in the index"));
        };
        if !chosen.insert(n.clone()) {
            continue;
        }
        for field in ["Pre-Depends", "Depends"] {
            let Some(v) = p.get(field) else { continue };
            let rel = Relations::parse(v).map_err(|e| format!("{n}: {field}: {e}"))?;
            for alts in &rel.0 {
                let names: Vec<&str> = alts.iter().map(|r| r.name.as_str()).collect();
                let provided = |a: &str| {
                    providers
                        .get(a)
                        .is_some_and(|v| v.iter().any(|x| chosen.contains(*x)))
                };
                if names.iter().any(|a| chosen.contains(*a) || provided(a)) {
                    continue;
                }
                let pick: Option<String> = names
                    .iter()
                    .find(|a| by_name.contains_key(**a))
                    .map(|a| a.to_string())
                    .or_else(|| {
                        names.iter().find_map(|a| {
                            providers
                                .get(*a)
                                .and_then(|v| v.first().map(|x| x.to_string()))
                        })
                    });
                match pick {
                    Some(x) => todo.push(x),
                    None => {
                        return Err(format!(
                            "{n} needs {}, which nothing in the index provides",
                            names.join(" | ")
                        ))
                    }
                }
            }
        }
    }
    chosen
        .iter()
        .map(|n| {
            let p = by_name[n.as_str()];
            Ok(Pkg {
                name: n.to_string(),
                version: p.get("Version").unwrap_or_default().to_string(),
                filename: p
                    .get("Filename")
                    .ok_or_else(|| format!("{n}: no Filename"))?
                    .to_string(),
                sha256: p
                    .get("SHA256")
                    .ok_or_else(|| format!("{n}: no SHA256"))?
                    .to_string(),
                size: p.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

/// `name=version` for each named package (the highest version in the index), or the names
/// not found.
pub fn pin(paragraphs: &[Paragraph], names: &[String]) -> Result<Vec<String>, Vec<String>> {
    let mut best: HashMap<&str, spindle_deb::Version> = HashMap::new();
    for p in paragraphs {
        let (Some(n), Some(v)) = (p.get("Package"), p.get("Version")) else {
            continue;
        };
        if !names.iter().any(|x| x == n) {
            continue;
        }
        if let Ok(v) = spindle_deb::Version::parse(v) {
            if best.get(n).is_none_or(|b| v > *b) {
                best.insert(n, v);
            }
        }
    }
    let missing: Vec<String> = names
        .iter()
        .filter(|n| !best.contains_key(n.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(names
        .iter()
        .map(|n| format!("{n}={}", best[n.as_str()]))
        .collect())
}

/// [`pin`] across the host's mirror and a Spindle repo: a package the repo has is pinned to the
/// repo's highest version, whatever version the mirror has, since the repo is where the
/// project publishes its own packages and a Debian package of the same name (Debian has a
/// `twine`) must not win by a higher version; the others come from the mirror.
pub fn pin_preferring_repo(
    repo: &[Paragraph],
    mirror: &[Paragraph],
    names: &[String],
) -> Result<Vec<String>, Vec<String>> {
    let in_repo = |n: &String| repo.iter().any(|p| p.get("Package") == Some(n.as_str()));
    let (ours, theirs): (Vec<String>, Vec<String>) = names.iter().cloned().partition(in_repo);
    let ours = pin(repo, &ours)?;
    let theirs = pin(mirror, &theirs)?;
    Ok(names
        .iter()
        .map(|n| {
            let prefix = format!("{n}=");
            ours.iter()
                .chain(theirs.iter())
                .find(|p| p.starts_with(&prefix))
                .cloned()
                .unwrap_or_default()
        })
        .collect())
}

/// The apt step's script: install exactly the pinned versions, then drop apt's lists and
/// downloaded packages so they are not baked into the layer.
pub fn apt_script(pins: &[String]) -> String {
    apt_repo_script(pins, None)
}

/// [`apt_script`] with an extra signed repo: its keyring (bytes, written with `printf` octal
/// escapes, so no tool beyond the shell is needed) and a `sources.list.d` entry are added for
/// the install and removed after it, so the image does not keep a loopback address.
pub fn apt_repo_script(pins: &[String], repo: Option<(&crate::recipe::AptRepo, &[u8])>) -> String {
    let mut s = String::from("export DEBIAN_FRONTEND=noninteractive\n");
    if let Some((r, key)) = repo {
        let octal: String = key.iter().map(|b| format!("\\{b:03o}")).collect();
        s.push_str(&format!(
            "mkdir -p /etc/apt/keyrings /etc/apt/sources.list.d\n\
             printf '{octal}' > /etc/apt/keyrings/spindle-bake.gpg\n\
             echo 'deb [signed-by=/etc/apt/keyrings/spindle-bake.gpg] {} {} {}' > /etc/apt/sources.list.d/spindle-bake.list\n",
            r.url, r.distribution, r.component
        ));
    }
    s.push_str(&format!(
        "apt-get update -q\n\
         apt-get install -y -q --no-install-recommends {}\n\
         apt-get clean\n\
         rm -rf /var/lib/apt/lists/*\n",
        pins.join(" ")
    ));
    s.push_str(SCRUB_SCRIPT);
    if repo.is_some() {
        s.push_str(
            "rm -f /etc/apt/sources.list.d/spindle-bake.list /etc/apt/keyrings/spindle-bake.gpg\n",
        );
    }
    s
}

/// Downloads the packages into `cache/debs/<sha256>.deb` (skipping those already there),
/// verifying each; returns their paths in the order given.
pub fn download(mirror: &str, pkgs: &[Pkg], cache: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = cache.join("debs");
    fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let paths: Vec<PathBuf> = pkgs
        .iter()
        .map(|p| dir.join(format!("{}.deb", p.sha256)))
        .collect();
    let missing: Vec<(&Pkg, &PathBuf)> = pkgs
        .iter()
        .zip(&paths)
        .filter(|(_, path)| !path.exists())
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..DOWNLOAD_WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((p, path)) = missing.get(i) else {
                    break;
                };
                let res = get(&format!("{mirror}/{}", p.filename)).and_then(|b| {
                    let actual = sha256_hex(&b);
                    if actual != p.sha256 {
                        return Err(format!(
                            "{}: sha256 {actual}, the index says {}",
                            p.filename, p.sha256
                        ));
                    }
                    let tmp = path.with_extension("tmp");
                    fs::write(&tmp, &b)
                        .and_then(|_| fs::rename(&tmp, path))
                        .map_err(|e| format!("write {}: {e}", path.display()))
                });
                if let Err(e) = res {
                    errors.lock().unwrap().push(e);
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(paths)
}

/// Opens a .deb's `data.tar` (decompressed) and hands it to `f`; errors name the file.
pub fn with_data_tar<T>(
    deb: &Path,
    f: impl FnOnce(&mut tar::Archive<Box<dyn Read + '_>>) -> Result<T, String>,
) -> Result<T, String> {
    let what = |e: &dyn std::fmt::Display| format!("{}: {e}", deb.display());
    let file = fs::File::open(deb).map_err(|e| what(&e))?;
    let mut ar = spindle_deb::ar::ArReader::new(io::BufReader::new(file)).map_err(|e| what(&e))?;
    while let Some((h, member)) = ar.next_member().map_err(|e| what(&e))? {
        let Some(c) = spindle_deb::Compression::from_member_name("data.tar", &h.name) else {
            continue;
        };
        let r = spindle_deb::compress::decoder(c, member).map_err(|e| what(&e))?;
        return f(&mut tar::Archive::new(r)).map_err(|e| what(&e));
    }
    Err(what(&"no data.tar member"))
}

/// Extracts a .deb's `data.tar` into `dest`, refusing entries that climb out of it.
pub fn extract_data(deb: &Path, dest: &Path) -> Result<(), String> {
    with_data_tar(deb, |t| {
        let what = |e: &dyn std::fmt::Display| e.to_string();
        t.set_preserve_permissions(true);
        t.set_preserve_ownerships(true);
        t.set_overwrite(true);
        for entry in t.entries().map_err(|e| what(&e))? {
            let mut entry = entry.map_err(|e| what(&e))?;
            // `./lib/` over the merged-/usr link `lib -> usr/lib`: the directory is there.
            if entry.header().entry_type().is_dir() {
                // Rebuilt from components: no `./` and no trailing `/`, which would follow the link.
                let rel: PathBuf = entry.path().map_err(|e| what(&e))?.components().collect();
                if fs::symlink_metadata(dest.join(&rel)).is_ok_and(|m| m.file_type().is_symlink()) {
                    continue;
                }
            }
            if !entry.unpack_in(dest).map_err(|e| what(&e))? {
                return Err(what(&"an entry leads outside the tree"));
            }
        }
        Ok(())
    })
}

/// What the tree needs before the packages are extracted: the merged-/usr links Debian uses
/// since bookworm, and dpkg's empty database.
pub fn prepare_tree(root: &Path) -> io::Result<()> {
    for d in [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "etc/apt",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    for l in ["bin", "sbin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l))?;
    }
    // An empty resolv.conf for network steps to bind the host's over (as debootstrap copies it).
    fs::write(root.join("etc/resolv.conf"), "")?;
    fs::write(root.join("var/lib/dpkg/status"), "")?;
    fs::write(root.join("var/lib/dpkg/available"), "")?;
    Ok(())
}

/// Shell lines that leave out what an install records about its own run, so that installing
/// the same packages again gives the same bytes: dpkg's, apt's and update-alternatives' logs
/// (timestamps; emptied, not removed, so their owners and modes stay) and ldconfig's
/// `aux-cache` (inode numbers and times of the libraries; ldconfig rebuilds it when missing).
macro_rules! scrub_script {
    () => {
        "for f in /var/log/dpkg.log /var/log/alternatives.log /var/log/apt/history.log \
/var/log/apt/term.log; do if [ -f \"$f\" ]; then : > \"$f\"; fi; done\n\
rm -f /var/log/apt/eipp.log.xz /var/cache/ldconfig/aux-cache\n"
    };
}

/// See [`scrub_script!`].
pub const SCRUB_SCRIPT: &str = scrub_script!();

/// The script dpkg runs inside the tree once the packages are extracted.
pub const INSTALL_SCRIPT: &str = concat!(
    "export DEBIAN_FRONTEND=noninteractive\n\
dpkg --force-depends --force-unsafe-io --install /var/cache/spindle-bootstrap/*.deb\n\
dpkg --force-unsafe-io --configure -a\n\
rm -rf /var/cache/spindle-bootstrap\n",
    scrub_script!()
);

/// `SOURCE_DATE_EPOCH` for dpkg runs, so maintainer scripts that honour it date things by it
/// rather than by the clock (shadow's `pwconv` writes every account's last password change
/// into `/etc/shadow` in days): the layers' epoch, but at least one day, because a
/// last-change day of 0 tells PAM that the password must be changed at the next login.
pub fn maintainer_env() -> String {
    format!(
        "SOURCE_DATE_EPOCH={}",
        crate::layer::source_date_epoch().max(86_400)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_in_both_formats_and_the_mirror_choice() {
        let one = "# c\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\n\
                   deb-src http://m.example/debian bookworm main\n\
                   deb http://sec.example/debian-security bookworm-security main\n";
        let s = parse_sources(one, false);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uri, "http://m.example/debian");
        assert_eq!(s[0].components, ["main", "contrib"]);
        let d = "Types: deb\nURIs: http://a.example/debian\nSuites: trixie trixie-updates\nComponents: main\n\n\
                 Types: deb\nURIs: http://b.example/debian-security\nSuites: trixie-security\nComponents: main\n\n\
                 Types: deb\nEnabled: no\nURIs: http://c.example/x\nSuites: bookworm\nComponents: main\n";
        let s2 = parse_sources(d, true);
        assert_eq!(s2.len(), 2);
        let all: Vec<AptSource> = s2.into_iter().chain(s).collect();
        assert_eq!(
            choose_mirror(&all, "bookworm").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            choose_mirror(&all, "trixie").as_deref(),
            Some("http://a.example/debian")
        );
        assert_eq!(
            choose_mirror(&all, "sid").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(choose_mirror(&[], "sid"), None);
    }

    fn para(text: &str) -> Vec<Paragraph> {
        parse_paragraphs(text).unwrap()
    }

    #[test]
    fn the_spindle_repo_wins_over_a_higher_mirror_version() {
        let mirror =
            para("Package: twine\nVersion: 4.0.2-1\n\nPackage: curl\nVersion: 7.88.1-10\n");
        let repo = para("Package: twine\nVersion: 0.1.0-1\n\nPackage: twine\nVersion: 0.1.0-2\n");
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pin_preferring_repo(&repo, &mirror, &names(&["curl", "twine"])).unwrap(),
            ["curl=7.88.1-10", "twine=0.1.0-2"]
        );
        assert_eq!(
            pin_preferring_repo(&[], &mirror, &names(&["twine"])).unwrap(),
            ["twine=4.0.2-1"]
        );
        assert_eq!(
            pin_preferring_repo(&repo, &mirror, &names(&["nope", "twine"])).unwrap_err(),
            ["nope"]
        );
    }

    #[test]
    fn select_closes_over_dependencies_and_providers() {
        let idx = para(
            "Package: base-files\nVersion: 1\nArchitecture: amd64\nPriority: required\nEssential: yes\nPre-Depends: awk\nFilename: pool/b.deb\nSHA256: aa\nSize: 1\n\n\
             Package: mawk\nVersion: 2\nArchitecture: amd64\nPriority: required\nProvides: awk\nFilename: pool/m.deb\nSHA256: bb\nSize: 1\n\n\
             Package: apt\nVersion: 3\nArchitecture: amd64\nPriority: important\nDepends: libapt (>= 1) | libapt-alt, gpgv\nFilename: pool/a.deb\nSHA256: cc\nSize: 1\n\n\
             Package: libapt\nVersion: 1\nArchitecture: amd64\nPriority: optional\nFilename: pool/l.deb\nSHA256: dd\nSize: 1\n\n\
             Package: gpgv\nVersion: 1\nArchitecture: amd64\nPriority: optional\nFilename: pool/g.deb\nSHA256: ee\nSize: 1\n\n\
             Package: vim\nVersion: 9\nArchitecture: amd64\nPriority: optional\nFilename: pool/v.deb\nSHA256: ff\nSize: 1\n",
        );
        let names: Vec<String> = select(&idx).unwrap().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["apt", "base-files", "gpgv", "libapt", "mawk"]);
        let broken = para("Package: apt\nVersion: 3\nArchitecture: amd64\nDepends: nothing-here\nFilename: a\nSHA256: a\n");
        assert_eq!(
            select(&broken).unwrap_err(),
            "apt needs nothing-here, which nothing in the index provides"
        );
    }
}
