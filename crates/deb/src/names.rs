//! Package and architecture names.
//!
//! Package names follow Debian policy §5.6.7 (`[a-z0-9][a-z0-9+.-]+`), which is stricter than
//! dpkg (dpkg also accepts upper case and `_`); a repository should only hold policy names.
//! Architecture names follow dpkg's `dpkg_arch_name_is_illegal` restricted to lower case, as
//! every Debian architecture, wildcard (`linux-any`, `any-amd64`) and `all`/`any` is.

/// Why a package or architecture name is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("package name `{name}` is invalid: {reason}")]
    Package { name: String, reason: &'static str },
    #[error("architecture name `{name}` is invalid: {reason}")]
    Architecture { name: String, reason: &'static str },
}

/// Checks a package name against Debian policy.
pub fn validate_package_name(name: &str) -> Result<(), NameError> {
    let err = |reason| {
        Err(NameError::Package {
            name: name.to_string(),
            reason,
        })
    };
    let bytes = name.as_bytes();
    if bytes.len() < 2 {
        return err("must be at least two characters long");
    }
    if !(bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit()) {
        return err("must start with a lowercase letter or a digit");
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+.-".contains(&b))
    {
        return err("may only contain lowercase letters, digits, `+`, `.` and `-`");
    }
    Ok(())
}

/// Checks an architecture name (`amd64`, `all`, `any`, `linux-any`, ...).
pub fn validate_architecture(name: &str) -> Result<(), NameError> {
    let err = |reason| {
        Err(NameError::Architecture {
            name: name.to_string(),
            reason,
        })
    };
    let bytes = name.as_bytes();
    let Some(&first) = bytes.first() else {
        return err("may not be empty");
    };
    if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
        return err("must start with a lowercase letter or a digit");
    }
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return err("may only contain lowercase letters, digits and `-`");
    }
    Ok(())
}

/// Checks the `Architecture` field of a binary package: one concrete architecture or `all`
/// (`any` and wildcards only make sense in source packages).
pub fn validate_binary_architecture(name: &str) -> Result<(), NameError> {
    validate_architecture(name)?;
    if name == "any" || name.starts_with("any-") || name.ends_with("-any") {
        return Err(NameError::Architecture {
            name: name.to_string(),
            reason: "a binary package needs a concrete architecture or `all`, not a wildcard",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        let good = [
            "hello",
            "g++",
            "libc6",
            "0ad",
            "python3.11",
            "lib-foo+bar.baz",
            "xz",
        ];
        for name in good {
            assert_eq!(validate_package_name(name), Ok(()), "{name}");
        }
        let bad = [
            "", "a", "Hello", "-foo", "+foo", ".foo", "foo_bar", "foo bar", "fóo", "foo/bar",
        ];
        for name in bad {
            assert!(validate_package_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn architectures() {
        for name in [
            "amd64",
            "all",
            "arm64",
            "linux-any",
            "any-i386",
            "x32",
            "hurd-i386",
        ] {
            assert_eq!(validate_architecture(name), Ok(()), "{name}");
        }
        for name in ["", "-amd64", "AMD64", "amd_64", "amd64 ", "i386,amd64"] {
            assert!(validate_architecture(name).is_err(), "{name}");
        }
        for name in ["amd64", "all", "hurd-i386"] {
            assert_eq!(validate_binary_architecture(name), Ok(()), "{name}");
        }
        for name in ["any", "linux-any", "any-amd64", "Amd64"] {
            assert!(validate_binary_architecture(name).is_err(), "{name}");
        }
    }
}
