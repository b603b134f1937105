//! The `aws` CLI's own files, for `spindle account keys create --aws --save-aws-profile NAME`:
//! the key goes to `~/.aws/credentials` (`$AWS_SHARED_CREDENTIALS_FILE`), the region and
//! Spindle's AWS endpoint (`endpoint_url`) to `~/.aws/config` (`$AWS_CONFIG_FILE`). Only the
//! profile's own section changes; every other line of the files is kept as it was.

use crate::{write_private, CredentialsError};
use std::path::{Path, PathBuf};

/// Where the two files live, as the `aws` CLI looks for them.
pub fn default_paths() -> Result<(PathBuf, PathBuf), CredentialsError> {
    let home = || {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or(CredentialsError::NoHome)
    };
    let pick = |var: &str, file: &str| -> Result<PathBuf, CredentialsError> {
        match std::env::var_os(var).filter(|v| !v.is_empty()) {
            Some(p) => Ok(PathBuf::from(p)),
            None => Ok(home()?.join(".aws").join(file)),
        }
    };
    Ok((
        pick("AWS_SHARED_CREDENTIALS_FILE", "credentials")?,
        pick("AWS_CONFIG_FILE", "config")?,
    ))
}

/// An AWS profile to save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsProfile<'a> {
    pub name: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub endpoint_url: &'a str,
}

/// Writes the profile to both files (each atomically, mode 0600).
pub fn save(credentials: &Path, config: &Path, p: &AwsProfile<'_>) -> Result<(), CredentialsError> {
    let read = |path: &Path| match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(CredentialsError::Read {
            path: path.to_owned(),
            source,
        }),
    };
    let creds = upsert_section(
        &read(credentials)?,
        p.name,
        &[
            ("aws_access_key_id", p.access_key_id),
            ("aws_secret_access_key", p.secret_access_key),
        ],
    );
    // The config file names profiles `[profile NAME]`, except `[default]`.
    let section = if p.name == "default" {
        "default".to_owned()
    } else {
        format!("profile {}", p.name)
    };
    let conf = upsert_section(
        &read(config)?,
        &section,
        &[("region", p.region), ("endpoint_url", p.endpoint_url)],
    );
    write_private(credentials, &creds)?;
    write_private(config, &conf)
}

/// `text` with section `[name]` holding `pairs`: an existing section's other keys are kept
/// and these replaced; a missing section is appended.
pub fn upsert_section(text: &str, name: &str, pairs: &[(&str, &str)]) -> String {
    let header = format!("[{name}]");
    let mut out: Vec<String> = Vec::new();
    let mut in_section = false;
    let mut found = false;
    let flush = |out: &mut Vec<String>| {
        // Keep a blank line before the next section.
        let blank = out.last().is_some_and(|l| l.trim().is_empty());
        if blank {
            out.pop();
        }
        for (k, v) in pairs {
            out.push(format!("{k} = {v}"));
        }
        if blank {
            out.push(String::new());
        }
    };
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if in_section {
                flush(&mut out);
            }
            in_section = t == header;
            found |= in_section;
            out.push(line.to_owned());
            continue;
        }
        let key = t.split_once('=').map(|(k, _)| k.trim());
        if in_section && key.is_some_and(|k| pairs.iter().any(|(p, _)| *p == k)) {
            continue;
        }
        out.push(line.to_owned());
    }
    if in_section {
        flush(&mut out);
    }
    if !found {
        if out.last().is_some_and(|l| !l.trim().is_empty()) {
            out.push(String::new());
        }
        out.push(header);
        for (k, v) in pairs {
            out.push(format!("{k} = {v}"));
        }
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_or_appended_and_the_rest_kept() {
        let pairs = [
            ("aws_access_key_id", "AKIANEW"),
            ("aws_secret_access_key", "s"),
        ];
        let cases: &[(&str, &str, &str)] = &[
            ("", "dev", "[dev]\naws_access_key_id = AKIANEW\naws_secret_access_key = s\n"),
            (
                "[default]\naws_access_key_id = AKIAOLD\n",
                "dev",
                "[default]\naws_access_key_id = AKIAOLD\n\n[dev]\naws_access_key_id = AKIANEW\naws_secret_access_key = s\n",
            ),
            (
                "# mine\n[dev]\naws_access_key_id=AKIAOLD\nregion = eu-west-1\n\n[other]\nx = 1\n",
                "dev",
                "# mine\n[dev]\nregion = eu-west-1\naws_access_key_id = AKIANEW\naws_secret_access_key = s\n\n[other]\nx = 1\n",
            ),
        ];
        for (before, name, want) in cases {
            assert_eq!(upsert_section(before, name, &pairs), *want, "{before:?}");
        }
    }

    #[test]
    fn both_files_are_written_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let (c, f) = (
            d.path().join("aws/credentials"),
            d.path().join("aws/config"),
        );
        let p = AwsProfile {
            name: "dev",
            access_key_id: "AKIAX",
            secret_access_key: "sec",
            region: "us-east-1",
            endpoint_url: "http://127.0.0.1:4566",
        };
        save(&c, &f, &p).unwrap();
        save(
            &c,
            &f,
            &AwsProfile {
                name: "default",
                ..p.clone()
            },
        )
        .unwrap();
        let conf = std::fs::read_to_string(&f).unwrap();
        assert!(
            conf.contains(
                "[profile dev]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:4566\n"
            ),
            "{conf}"
        );
        assert!(conf.contains("[default]\nregion"), "{conf}");
        let creds = std::fs::read_to_string(&c).unwrap();
        assert_eq!(
            creds.matches("aws_secret_access_key = sec").count(),
            2,
            "{creds}"
        );
        for p in [&c, &f] {
            assert_eq!(
                std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
