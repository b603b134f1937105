//! The web-in-a-VPC templates, one copy each under `templates/`, compiled in so a test needs no
//! path to them.

use std::path::{Path, PathBuf};

/// `templates/web-asg.yaml`: a VPC, a subnet, a security group for port 80, a launch template
/// of busybox httpd instances (`busybox:web`) serving `/health.txt` and `/cgi-bin/work`, an
/// auto scaling group behind a load balancer, and a target-tracking policy of 20 requests per
/// second per instance. Parameters: `Cidr` (required), `Name` (`web`), `Min`/`Max`/`Desired`
/// (1/3/1), `DeregistrationDelay` (`"10"` seconds).
pub const WEB_ASG: &str = include_str!("../templates/web-asg.yaml");

/// `templates/web-instance.yaml`: a VPC, a subnet, a security group for port 80 from the VPC
/// and one `busybox:web` instance; output `Ip`. Parameter: `Cidr` (`10.214.0.0/20`).
pub const WEB_INSTANCE: &str = include_str!("../templates/web-instance.yaml");

/// `templates/web-pair-lb.yaml`: two `busybox:web` instances from one launch template (user
/// data writing `/who.txt`, `/health.txt`, `/cgi-bin/slow` and `/cgi-bin/work`) in a target
/// group with fast health checks and tenant fairness attributes, behind a load balancer's
/// HTTP listener; output `Dns`. Parameter: `Cidr` (`10.231.0.0/20`).
pub const WEB_PAIR_LB: &str = include_str!("../templates/web-pair-lb.yaml");

/// Every template of this crate, by file name.
pub const ALL: &[(&str, &str)] = &[
    ("web-asg.yaml", WEB_ASG),
    ("web-instance.yaml", WEB_INSTANCE),
    ("web-pair-lb.yaml", WEB_PAIR_LB),
];

/// Writes every template into `dir` (created if missing) and returns the path of each, in the
/// order of [`ALL`], for tests that hand the CLI a file.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    ALL.iter()
        .map(|(name, body)| {
            let path = dir.join(name);
            std::fs::write(&path, body)?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_all_writes_each_template_as_it_is_compiled_in() {
        let dir = tempfile::tempdir().unwrap();
        let paths = write_all(&dir.path().join("stacks")).unwrap();
        assert_eq!(paths.len(), ALL.len());
        for (path, (name, body)) in paths.iter().zip(ALL) {
            assert!(path.ends_with(name), "{}", path.display());
            assert_eq!(&std::fs::read_to_string(path).unwrap(), body);
        }
    }

    #[test]
    fn every_template_parses() {
        for (name, body) in ALL {
            if let Err(d) = spindle_template::parse(body, name) {
                panic!("{name}: {d}");
            }
        }
    }

    #[test]
    fn the_web_template_names_every_parameter_it_documents() {
        for p in [
            "Cidr",
            "Name",
            "Min",
            "Max",
            "Desired",
            "DeregistrationDelay",
        ] {
            assert!(WEB_ASG.contains(&format!("\n  {p}: {{Type: ")), "{p}");
        }
    }
}
