//! Helpers for the tests that run Debian's real tools: package builders, a tiny static
//! HTTP server and a throwaway apt configuration.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use spindle_deb::builder::{build_deb, BuildOptions, Entry, EntryData, Package};
use spindle_deb::control::Paragraph;
use spindle_deb::Compression;

/// Builds a small .deb.
pub fn deb(name: &str, version: &str, arch: &str, depends: Option<&str>) -> Vec<u8> {
    let mut control = Paragraph::new();
    control.set("Package", name).unwrap();
    control.set("Version", version).unwrap();
    control.set("Architecture", arch).unwrap();
    control
        .set("Maintainer", "Spindle Tests <tests@example.invalid>")
        .unwrap();
    if let Some(d) = depends {
        control.set("Depends", d).unwrap();
    }
    control.set("Section", "misc").unwrap();
    control.set("Priority", "optional").unwrap();
    control
        .set(
            "Description",
            format!("test package {name}\n Built by the spindle-apt tests."),
        )
        .unwrap();
    let package = Package {
        control,
        control_files: BTreeMap::new(),
        conffiles: Vec::new(),
        entries: vec![Entry {
            path: format!("/usr/share/{name}/version"),
            data: EntryData::File(format!("{name} {version}\n").into_bytes()),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }],
    };
    build_deb(
        &package,
        &BuildOptions {
            compression: Compression::Gzip,
            source_date_epoch: 1_700_000_000,
        },
    )
    .unwrap()
    .bytes
}

/// What a test server answers for a request path (relative, without the leading `/`).
type Lookup = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// A file server on 127.0.0.1 (GET and HEAD, one request per connection), recording every
/// requested path. Stops when dropped.
pub struct HttpServer {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves the plain files under `root` (e.g. a tree another tool published).
    pub fn start(root: &Path) -> HttpServer {
        let root = root.to_path_buf();
        Self::start_with(Arc::new(move |rel: &str| {
            let mut f = std::fs::File::open(root.join(rel))
                .ok()
                .filter(|f| f.metadata().map(|m| m.is_file()).unwrap_or(false))?;
            let mut body = Vec::new();
            f.read_to_end(&mut body).ok()?;
            Some(body)
        }))
    }

    /// Serves what Spindle published under `root`, package files coming from `pool`, the
    /// way the daemon does.
    pub fn start_published(root: &Path, pool: &spindle_apt::Pool) -> HttpServer {
        let root = root.to_path_buf();
        let files = spindle_apt::publish::PublishedFiles::new(pool.clone());
        Self::start_with(Arc::new(move |rel: &str| {
            files.open(&root, rel).unwrap()?.read_all().ok()
        }))
    }

    fn start_with(lookup: Lookup) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop2, req2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (lookup, req) = (lookup.clone(), req2.clone());
                std::thread::spawn(move || serve(conn, &*lookup, &req));
            }
        });
        HttpServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requested(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    conn: TcpStream,
    lookup: &(dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync),
    requests: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // Skip the headers.
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" || h == "\n" {
                break;
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("/").to_string();
        requests.lock().unwrap().push(path.clone());
        let rel = path.split('?').next().unwrap_or("").trim_start_matches('/');
        let mut out = &conn;
        let body = if rel.split('/').any(|p| p == "..") {
            None
        } else {
            lookup(rel)
        };
        match body {
            Some(body) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: keep-alive\r\n\r\n",
                    body.len()
                );
                if out.write_all(head.as_bytes()).is_err() {
                    return;
                }
                if method != "HEAD" && out.write_all(&body).is_err() {
                    return;
                }
            }
            None => {
                let body = b"not found\n";
                let head = format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                    body.len()
                );
                if out.write_all(head.as_bytes()).is_err() || out.write_all(body).is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether Debian's apt is on this machine; prints a loud notice when it is not.
pub fn have_apt(test: &str) -> bool {
    let ok = Command::new("apt-get")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("SKIPPED {test}: apt-get is not installed (apt-get install apt gpgv)");
    }
    ok
}

/// A throwaway apt configuration: own state, cache, sources and trust, nothing from /etc/apt.
pub struct AptEnv {
    pub dir: PathBuf,
    pub config: PathBuf,
}

impl AptEnv {
    pub fn new(dir: &Path, source_line: &str) -> AptEnv {
        for d in [
            "state/lists/partial",
            "cache/archives/partial",
            "etc/sources.list.d",
            "etc/trusted.gpg.d",
            "etc/preferences.d",
            "etc/apt.conf.d",
            "log",
            "root/var/lib/dpkg/info",
            "root/var/lib/dpkg/updates",
            "root/var/lib/dpkg/triggers",
            "download",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("root/var/lib/dpkg/status"), "").unwrap();
        std::fs::write(dir.join("etc/sources.list"), format!("{source_line}\n")).unwrap();
        let d = dir.display();
        let config = dir.join("apt.conf");
        std::fs::write(
            &config,
            format!(
                r#"Dir "/";
Dir::State "{d}/state";
Dir::State::status "{d}/root/var/lib/dpkg/status";
Dir::Cache "{d}/cache";
Dir::Etc "{d}/etc";
Dir::Etc::SourceList "{d}/etc/sources.list";
Dir::Etc::SourceParts "{d}/etc/sources.list.d";
Dir::Etc::Trusted "{d}/etc/trusted.gpg";
Dir::Etc::TrustedParts "{d}/etc/trusted.gpg.d";
Dir::Etc::Preferences "{d}/etc/preferences";
Dir::Etc::PreferencesParts "{d}/etc/preferences.d";
Dir::Etc::Parts "{d}/etc/apt.conf.d";
Dir::Log "{d}/log";
Debug::NoLocking "true";
APT::Sandbox::User "root";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; }};
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Pipeline-Depth "0";
"#
            ),
        )
        .unwrap();
        AptEnv {
            dir: dir.to_path_buf(),
            config,
        }
    }

    /// Runs an apt tool with this configuration.
    pub fn run(&self, tool: &str, args: &[&str]) -> Output {
        Command::new(tool)
            .args(args)
            .env("APT_CONFIG", &self.config)
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .current_dir(self.dir.join("download"))
            .output()
            .unwrap()
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
