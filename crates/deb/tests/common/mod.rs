//! Helpers shared by the integration tests: running real tools and normalising their output.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spindle_deb::reader::{DataEntry, EntryKind};

/// Runs a command with a fixed locale and time zone, failing the test if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.env("LC_ALL", "C.UTF-8").env("TZ", "UTC");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a program that must succeed and returns its standard output.
pub fn run_ok(program: &str, args: &[&OsStr]) -> String {
    let out = run(Command::new(program).args(args));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `dpkg-deb --contents` as `perms owner/group size path[ -> target]` lines.
pub fn contents_listing(deb: &Path) -> Vec<String> {
    run_ok("dpkg-deb", &["--contents".as_ref(), deb.as_os_str()])
        .lines()
        .map(|line| {
            let mut rest = line;
            let mut fields = Vec::new();
            for _ in 0..5 {
                rest = rest.trim_start();
                let end = rest.find(' ').unwrap_or(rest.len());
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
            // Drop the date and time.
            format!(
                "{} {} {} {}",
                fields[0],
                fields[1],
                fields[2],
                rest.trim_start()
            )
        })
        .collect()
}

/// Our own entries in the same format as [`contents_listing`].
pub fn entry_listing(entries: &[DataEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let (type_char, suffix) = match &e.kind {
                EntryKind::File => ('-', String::new()),
                EntryKind::Dir => ('d', String::new()),
                EntryKind::Symlink { target } => ('l', format!(" -> {target}")),
                EntryKind::Hardlink { target } => ('h', format!(" link to {target}")),
                EntryKind::CharDevice { .. } => ('c', String::new()),
                EntryKind::BlockDevice { .. } => ('b', String::new()),
                EntryKind::Fifo => ('p', String::new()),
                EntryKind::Other(_) => ('?', String::new()),
            };
            // dpkg-deb shows the name when the header has one, else the number.
            let name = |name: &Option<String>, id: u64| name.clone().unwrap_or(id.to_string());
            let size = match e.kind {
                EntryKind::File => e.size.to_string(),
                EntryKind::CharDevice { major, minor }
                | EntryKind::BlockDevice { major, minor } => {
                    format!("{major},{minor}")
                }
                _ => "0".to_string(),
            };
            format!(
                "{type_char}{} {}/{} {size} {}{suffix}",
                permissions(e.mode),
                name(&e.user, e.uid),
                name(&e.group, e.gid),
                e.path
            )
        })
        .collect()
}

/// `rwxr-xr-x` with setuid, setgid and sticky bits shown the way `ls` does.
pub fn permissions(mode: u32) -> String {
    let mut out = String::new();
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        out.push(match (mode & special != 0, exec) {
            (true, true) => special_char,
            (true, false) => special_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// An isolated dpkg database and installation directory.
pub struct DpkgRoot {
    instdir: PathBuf,
    admindir: PathBuf,
}

impl DpkgRoot {
    pub fn new(base: &Path) -> DpkgRoot {
        let instdir = base.join("root");
        let admindir = base.join("admin");
        for dir in ["info", "updates", "triggers"] {
            fs::create_dir_all(admindir.join(dir)).unwrap();
        }
        fs::write(admindir.join("status"), "").unwrap();
        fs::create_dir_all(&instdir).unwrap();
        DpkgRoot { instdir, admindir }
    }

    pub fn instdir(&self) -> &Path {
        &self.instdir
    }

    /// Runs `dpkg` on this root (scripts outside a chroot, with `DPKG_ROOT` set, and
    /// dependencies not enforced since the root is empty); it must succeed.
    pub fn dpkg(&self, args: &[&OsStr]) -> String {
        let out = self.dpkg_output(args);
        assert!(
            out.status.success(),
            "dpkg {args:?} failed: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn dpkg_output(&self, args: &[&OsStr]) -> Output {
        run(Command::new("dpkg")
            .arg(format!("--instdir={}", self.instdir.display()))
            .arg(format!("--admindir={}", self.admindir.display()))
            .args([
                "--force-not-root",
                "--force-script-chrootless",
                "--force-depends",
                "--log=/dev/null",
            ])
            .args(args)
            // dpkg only exports DPKG_ROOT for --root; --instdir alone leaves it empty.
            .env("DPKG_ROOT", &self.instdir))
    }

    /// `dpkg-query -W -f=FORMAT spindle-hello` on this root's database.
    pub fn query(&self, format: &str) -> String {
        run_ok(
            "dpkg-query",
            &[
                format!("--admindir={}", self.admindir.display()).as_ref(),
                "-W".as_ref(),
                format!("-f={format}").as_ref(),
                "spindle-hello".as_ref(),
            ],
        )
    }
}
