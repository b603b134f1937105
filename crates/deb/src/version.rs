//! Debian version numbers: `[epoch:]upstream[-revision]`, validated and ordered exactly as
//! dpkg does (`lib/dpkg/parsehelp.c` `parseversion` and `lib/dpkg/version.c` `verrevcmp`).
//!
//! dpkg only *warns* about some malformed versions (an upstream part that does not start with
//! a digit, characters outside the allowed sets); we reject those too, because a repository
//! should never accept a version that dpkg complains about.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// Why a version string is not a valid Debian version. The messages follow dpkg's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version string is empty")]
    Empty,
    #[error("version string `{version}` has embedded spaces")]
    EmbeddedSpaces { version: String },
    #[error("epoch in version `{version}` is empty")]
    EmptyEpoch { version: String },
    #[error("epoch in version `{version}` is not a number")]
    EpochNotNumber { version: String },
    #[error("epoch in version `{version}` is too big")]
    EpochTooBig { version: String },
    #[error("nothing after colon in version `{version}`")]
    NothingAfterColon { version: String },
    #[error("revision number in version `{version}` is empty")]
    EmptyRevision { version: String },
    #[error("upstream version in `{version}` is empty")]
    EmptyUpstream { version: String },
    #[error("upstream version in `{version}` does not start with a digit")]
    UpstreamNotDigit { version: String },
    #[error("invalid character `{ch}` in upstream version of `{version}`")]
    InvalidUpstreamChar { version: String, ch: char },
    #[error("invalid character `{ch}` in revision of `{version}`")]
    InvalidRevisionChar { version: String, ch: char },
}

/// A parsed Debian version.
///
/// Equality and ordering follow dpkg, so `1.0` equals `0:1.0` and `1.0-0`: use the string
/// form ([`fmt::Display`]) when identity of the text matters.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u32,
    upstream: String,
    revision: String,
}

impl Version {
    /// Parses and validates a version string. Leading and trailing whitespace is ignored, as
    /// dpkg does.
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        let version = s.trim();
        let owned = || version.to_string();
        if version.is_empty() {
            return Err(VersionError::Empty);
        }
        if version.chars().any(char::is_whitespace) {
            return Err(VersionError::EmbeddedSpaces { version: owned() });
        }
        let (epoch, rest) = match version.find(':') {
            Some(colon) => {
                let digits = &version[..colon];
                if digits.is_empty() {
                    return Err(VersionError::EmptyEpoch { version: owned() });
                }
                if !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(VersionError::EpochNotNumber { version: owned() });
                }
                // dpkg stores the epoch in an int and rejects values above INT_MAX.
                let epoch: u32 = match digits.parse::<u64>() {
                    Ok(n) if n <= i32::MAX as u64 => n as u32,
                    _ => return Err(VersionError::EpochTooBig { version: owned() }),
                };
                let rest = &version[colon + 1..];
                if rest.is_empty() {
                    return Err(VersionError::NothingAfterColon { version: owned() });
                }
                (epoch, rest)
            }
            None => (0, version),
        };
        let (upstream, revision) = match rest.rfind('-') {
            Some(hyphen) => {
                let revision = &rest[hyphen + 1..];
                if revision.is_empty() {
                    return Err(VersionError::EmptyRevision { version: owned() });
                }
                (&rest[..hyphen], revision)
            }
            None => (rest, ""),
        };
        let Some(first) = upstream.chars().next() else {
            return Err(VersionError::EmptyUpstream { version: owned() });
        };
        if !first.is_ascii_digit() {
            return Err(VersionError::UpstreamNotDigit { version: owned() });
        }
        if let Some(ch) = upstream
            .chars()
            .find(|&c| !c.is_ascii_alphanumeric() && !".-+~:".contains(c))
        {
            return Err(VersionError::InvalidUpstreamChar {
                version: owned(),
                ch,
            });
        }
        if let Some(ch) = revision
            .chars()
            .find(|&c| !c.is_ascii_alphanumeric() && !".+~".contains(c))
        {
            return Err(VersionError::InvalidRevisionChar {
                version: owned(),
                ch,
            });
        }
        Ok(Version {
            epoch,
            upstream: upstream.to_string(),
            revision: revision.to_string(),
        })
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The Debian revision, empty when the version has none.
    pub fn revision(&self) -> &str {
        &self.revision
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A colon in the upstream part is only unambiguous after an explicit epoch.
        if self.epoch != 0 || self.upstream.contains(':') {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(&self.upstream, &other.upstream))
            .then_with(|| verrevcmp(&self.revision, &other.revision))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

/// dpkg's weight of one character: `~` sorts before everything, even the end of the string;
/// letters sort before all other non-digits.
fn order(c: u8) -> i32 {
    if c.is_ascii_digit() {
        0
    } else if c.is_ascii_alphabetic() {
        c as i32
    } else if c == b'~' {
        -1
    } else if c != 0 {
        c as i32 + 256
    } else {
        0
    }
}

/// A straight port of dpkg's `verrevcmp`: alternate non-digit runs (compared by [`order`])
/// and digit runs (compared numerically, ignoring leading zeros).
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let a = a.as_bytes();
    let b = b.as_bytes();
    // Reading past the end yields 0, like the terminating NUL in C.
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff: i32 = 0;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(at(a, i));
            let bc = order(at(b, j));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while at(a, i) == b'0' {
            i += 1;
        }
        while at(b, j) == b'0' {
            j += 1;
        }
        while at(a, i).is_ascii_digit() && at(b, j).is_ascii_digit() {
            if first_diff == 0 {
                first_diff = at(a, i) as i32 - at(b, j) as i32;
            }
            i += 1;
            j += 1;
        }
        if at(a, i).is_ascii_digit() {
            return Ordering::Greater;
        }
        if at(b, j).is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_orderings() {
        use Ordering::*;
        let cases: &[(&str, &str, Ordering)] = &[
            ("1.0", "1.0", Equal),
            ("1.0", "0:1.0", Equal),
            ("1.0", "1.0-0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0~~", "1.0~~a", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~", "1.0", Less),
            ("1.0", "1.0a", Less),
            ("1.0a", "1.0+", Less),
            ("1.0+", "1.0.", Less),
            ("1.0.", "1.0.1", Less),
            ("1:0.1", "2.0", Greater),
            ("1.2.10", "1.2.9", Greater),
            ("1.002", "1.2", Equal),
            ("1.0-1", "1.0-1ubuntu1", Less),
            ("1.0-1ubuntu1", "1.0-1+deb12u1", Less),
            ("2.30-5", "2.30-10", Less),
            ("7.6p2-4", "7.6-0", Greater),
            ("1.0.3-3", "1.0-1", Greater),
            ("1.3", "1.2.2-2", Greater),
            ("1.3", "1.2.2", Greater),
            ("0-pre", "0-pre", Equal),
            ("0-pre", "0-pree", Less),
            ("1.1.6r2-2", "1.1.6r-1", Greater),
            ("2.6b2-1", "2.6b-2", Greater),
            ("98.1p5-1", "98.1-pre2-b6-2", Less),
            ("0.4a6-2", "0.4-1", Greater),
            ("1:3.0.5-2", "1:3.0.5.1", Less),
            ("10.11.1-3", "10.11-1", Greater),
            ("0.4-1", "0.4a6-2", Less),
            ("3.0~rc1-1", "3.0-1", Less),
            ("1:2:3", "1:2:4", Less),
        ];
        for &(a, b, want) in cases {
            let va = Version::parse(a).unwrap();
            let vb = Version::parse(b).unwrap();
            assert_eq!(va.cmp(&vb), want, "{a} vs {b}");
            assert_eq!(vb.cmp(&va), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn invalid_versions() {
        type Check = fn(&VersionError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, VersionError::Empty)),
            ("   ", |e| matches!(e, VersionError::Empty)),
            ("1 0", |e| matches!(e, VersionError::EmbeddedSpaces { .. })),
            (":1.0", |e| matches!(e, VersionError::EmptyEpoch { .. })),
            ("a:1.0", |e| {
                matches!(e, VersionError::EpochNotNumber { .. })
            }),
            ("-1:1.0", |e| {
                matches!(e, VersionError::EpochNotNumber { .. })
            }),
            ("99999999999:1.0", |e| {
                matches!(e, VersionError::EpochTooBig { .. })
            }),
            ("1:", |e| {
                matches!(e, VersionError::NothingAfterColon { .. })
            }),
            ("1.0-", |e| matches!(e, VersionError::EmptyRevision { .. })),
            ("-1", |e| matches!(e, VersionError::EmptyUpstream { .. })),
            ("1:-1", |e| matches!(e, VersionError::EmptyUpstream { .. })),
            ("a1.0", |e| {
                matches!(e, VersionError::UpstreamNotDigit { .. })
            }),
            ("~1", |e| matches!(e, VersionError::UpstreamNotDigit { .. })),
            ("1.0_1", |e| {
                matches!(e, VersionError::InvalidUpstreamChar { ch: '_', .. })
            }),
            ("1:1.0-1:2", |e| {
                matches!(e, VersionError::InvalidRevisionChar { ch: ':', .. })
            }),
            ("1.0-a_b", |e| {
                matches!(e, VersionError::InvalidRevisionChar { ch: '_', .. })
            }),
            ("1.0é", |e| {
                matches!(e, VersionError::InvalidUpstreamChar { ch: 'é', .. })
            }),
        ];
        for (input, check) in cases {
            let err = Version::parse(input).expect_err(input);
            assert!(check(&err), "{input:?} gave {err:?}");
        }
    }

    #[test]
    fn display_round_trip() {
        for (input, shown) in [
            ("1.0", "1.0"),
            ("0:1.0", "1.0"),
            ("2:1.0-3", "2:1.0-3"),
            (" 1.0-1-2 ", "1.0-1-2"),
            ("0:1:2", "0:1:2"),
        ] {
            let v = Version::parse(input).unwrap();
            assert_eq!(v.to_string(), shown);
            assert_eq!(Version::parse(shown).unwrap(), v);
        }
        let v = Version::parse("3:1.0-1-2").unwrap();
        assert_eq!((v.epoch(), v.upstream(), v.revision()), (3, "1.0-1", "2"));
    }
}
