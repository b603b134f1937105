//! # spindle-rootgate: can root-only tests run here?
//!
//! One answer, asked at two times:
//! - **At build time**, by the build script of every crate with root-only tests
//!   ([`emit_build_cfg`]): when the build runs as root with what the tests need, it sets the
//!   cfg [`CFG`] (`spindle_root_tests`), and each root-only test carries
//!   `#[cfg_attr(not(spindle_root_tests), ignore = "needs root: ...")]`, so a build that can't
//!   run them reports them as *ignored* in cargo's summary instead of counting them as passed.
//! - **At run time**, by the tests ([`missing_prerequisites`], through
//!   `spindle_runtime::host` and `spindle_testsupport::root_tests_can_run`), in case the test
//!   binary runs somewhere other than where it was built; such a test prints a `skipped:` line.
//!
//! `SPINDLE_ROOT_TESTS=1` or `=0` at build time overrides the build's own finding (to count
//! the tests a non-root build would list, or to build as root for a run elsewhere).
//!
//! The slow tests' `#[ignore = "slow: ..."]` is separate: `--include-ignored` (`scripts/test
//! --slow`) runs them, and also runs root tests a non-root build ignored, which then skip at
//! run time with their `skipped:` line.
//!
//! It has no dependencies so that build scripts can use it cheaply.

use std::path::Path;
use std::process::Command;

/// The cfg a build script sets when root-only tests can run.
pub const CFG: &str = "spindle_root_tests";

/// The build-time override: `1` sets [`CFG`], `0` leaves it unset, whatever the host.
pub const OVERRIDE_ENV: &str = "SPINDLE_ROOT_TESTS";

/// The static busybox the test images are built from (`apt-get install busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// `nftables`' binary, which the real kernel path runs.
pub const NFT: &str = "/usr/sbin/nft";

/// The capabilities root tests use (bit numbers of `CapEff`): namespaces and mounts, networks.
const NEEDED_CAPS: [(u32, &str); 2] = [(21, "CAP_SYS_ADMIN"), (12, "CAP_NET_ADMIN")];

/// Why root-only tests can't run on this host, or `None` when they can: not root (or root
/// without the capabilities), or a missing tool, naming the Debian package to install.
pub fn missing_prerequisites() -> Option<String> {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => return Some(format!("/proc/self/status is unreadable ({e})")),
    };
    if let Some(why) = identity_problem(&status) {
        return Some(why);
    }
    if !Path::new(NFT).exists() {
        return Some(format!("{NFT} missing (apt-get install nftables)"));
    }
    if !Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some("`ip` missing (apt-get install iproute2)".into());
    }
    let static_bb = Command::new("file")
        .arg(BUSYBOX)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("statically linked"));
    if !Path::new(BUSYBOX).exists() || static_bb.is_ok_and(|s| !s) {
        return Some(format!(
            "{BUSYBOX} is missing or not static (apt-get install busybox-static)"
        ));
    }
    None
}

/// From the text of `/proc/self/status`: why this process is not root with the needed
/// capabilities, or `None` when it is.
pub fn identity_problem(status: &str) -> Option<String> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    // `Uid:` is real, effective, saved and filesystem uid; the effective one decides.
    let euid = field("Uid").and_then(|v| v.split_whitespace().nth(1)?.parse::<u32>().ok());
    match euid {
        None => return Some("/proc/self/status has no readable Uid line".into()),
        Some(0) => {}
        Some(_) => return Some("not running as root".into()),
    }
    let Some(caps) = field("CapEff").and_then(|v| u64::from_str_radix(v, 16).ok()) else {
        return Some("/proc/self/status has no readable CapEff line".into());
    };
    let missing: Vec<&str> = NEEDED_CAPS
        .iter()
        .filter(|(bit, _)| caps & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!("running as root without {}", missing.join(" and ")))
    }
}

/// What a build script decides: whether to set [`CFG`], given the override's value (if any)
/// and the host's finding.
pub fn decide(override_value: Option<&str>, missing: Option<&str>) -> bool {
    match override_value.map(str::trim) {
        Some("1") => true,
        Some("0") => false,
        _ => missing.is_none(),
    }
}

/// The whole build script of a crate with root-only tests: declares [`CFG`], sets it when
/// root-only tests can run here, and asks cargo to look again when the override, the user
/// or the tools change.
pub fn emit_build_cfg() {
    println!("cargo::rustc-check-cfg=cfg({CFG})");
    println!("cargo::rerun-if-changed=build.rs");
    for var in [OVERRIDE_ENV, "USER", "SUDO_UID", "HOME"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    // Only paths that exist: cargo reruns a script every build for a path that doesn't.
    for path in [NFT, BUSYBOX] {
        if Path::new(path).exists() {
            println!("cargo::rerun-if-changed={path}");
        }
    }
    let over = std::env::var(OVERRIDE_ENV).ok();
    let missing = missing_prerequisites();
    if decide(over.as_deref(), missing.as_deref()) {
        println!("cargo::rustc-cfg={CFG}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `/proc/self/status` with these uids and effective capabilities.
    fn status(uids: &str, cap_eff: &str) -> String {
        format!("Name:\tcargo\nUid:\t{uids}\nGid:\t0\t0\t0\t0\nCapEff:\t{cap_eff}\n")
    }

    #[test]
    fn identity_is_root_with_sys_admin_and_net_admin() {
        let all = "000001ffffffffff";
        let no_sys_admin = format!("{:016x}", 0x1ff_ffff_ffffu64 & !(1 << 21));
        let no_either = format!("{:016x}", 0x1ff_ffff_ffffu64 & !(1 << 21) & !(1 << 12));
        let cases: &[(String, Option<&str>)] = &[
            (status("0\t0\t0\t0", all), None),
            (
                status("1000\t1000\t1000\t1000", all),
                Some("not running as root"),
            ),
            // The effective uid decides, not the real one.
            (status("1000\t0\t0\t0", all), None),
            (status("0\t1000\t0\t0", all), Some("not running as root")),
            (
                status("0\t0\t0\t0", &no_sys_admin),
                Some("running as root without CAP_SYS_ADMIN"),
            ),
            (
                status("0\t0\t0\t0", &no_either),
                Some("running as root without CAP_SYS_ADMIN and CAP_NET_ADMIN"),
            ),
            (
                status("0\t0\t0\t0", "zz"),
                Some("/proc/self/status has no readable CapEff line"),
            ),
            (
                "Name:\tx\n".to_string(),
                Some("/proc/self/status has no readable Uid line"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(identity_problem(text).as_deref(), *want, "for {text:?}");
        }
    }

    #[test]
    fn the_override_wins_and_otherwise_the_host_decides() {
        let cases = [
            (Some("1"), Some("not running as root"), true),
            (Some("0"), None, false),
            (Some(" 1\n"), None, true),
            (Some("yes"), None, true),
            (Some("yes"), Some("not running as root"), false),
            (None, None, true),
            (None, Some("nft missing"), false),
        ];
        for (over, missing, want) in cases {
            assert_eq!(decide(over, missing), want, "{over:?} {missing:?}");
        }
    }

    #[test]
    fn this_process_gets_an_answer_that_agrees_with_its_identity() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let answer = missing_prerequisites();
        match identity_problem(&status) {
            Some(why) => assert_eq!(answer, Some(why)),
            // Root with the capabilities: at most a missing tool, named with its package.
            None => assert!(
                answer
                    .as_deref()
                    .is_none_or(|m| m.contains("apt-get install")),
                "{answer:?}"
            ),
        }
    }
}
