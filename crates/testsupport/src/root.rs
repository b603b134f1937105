//! The root environment: one gate that decides whether a root-only test can run here, and the
//! cleanup guard for what such a test creates.

pub use spindle_runtime::host::Sweep;

/// Whether root-only tests (namespaces, nftables, mounts, cgroups) can run on this host.
///
/// When they can't, prints `skipped: <test>: <reason>` so the test does not pass silently;
/// the caller returns early. `test` names the test, usually `module_path!()`.
pub fn root_tests_can_run(test: &str) -> bool {
    match spindle_runtime::host::missing_prerequisites() {
        None => true,
        Some(why) => {
            eprintln!("{}", skipped_line(test, &why));
            false
        }
    }
}

/// The pids of the host's processes whose command line (`/proc/PID/cmdline`) contains
/// `needle`: what a test checks to show a secret never reached any process's argv.
pub fn pids_whose_cmdline_holds(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// The line a skipped test prints, one format for every test and benchmark.
pub fn skipped_line(test: &str, why: &str) -> String {
    format!("skipped: {test}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_needle_in_this_processs_own_argv_is_found_and_another_is_not() {
        let me = std::process::id();
        let arg0 = std::env::args().next().unwrap();
        assert!(pids_whose_cmdline_holds(&arg0).contains(&me));
        assert!(!pids_whose_cmdline_holds("no-process-has-this-9f3c1e").contains(&me));
    }

    #[test]
    fn the_skipped_line_names_the_test_and_the_reason() {
        assert_eq!(
            skipped_line("cli::asg", "not running as root"),
            "skipped: cli::asg: not running as root"
        );
    }

    #[test]
    fn the_gate_agrees_with_the_runtime_prerequisites() {
        let missing = spindle_runtime::host::missing_prerequisites();
        assert_eq!(root_tests_can_run(module_path!()), missing.is_none());
    }
}
