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

/// The line a skipped test prints, one format for every test and benchmark.
pub fn skipped_line(test: &str, why: &str) -> String {
    format!("skipped: {test}: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

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
