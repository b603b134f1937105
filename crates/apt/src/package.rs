//! Package identity ([`PackageKey`]) and what a repository knows about a stored package
//! ([`PackageRef`]): its control paragraph, the digests of the .deb in the pool and the paths
//! it installs (for `Contents` indexes).

use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;

use serde::{Deserialize, Serialize};
use spindle_deb::control::{parse_paragraph, Paragraph};
use spindle_deb::names::{validate_binary_architecture, validate_package_name};
use spindle_deb::{FileDigests, Version};

/// Why a package identity or record is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("package key `{key}` is not `name_version_arch`")]
    KeyShape { key: String },
    #[error("package key `{key}`: invalid package name")]
    Name {
        key: String,
        #[source]
        source: spindle_deb::names::NameError,
    },
    #[error("package key `{key}`: invalid version")]
    Version {
        key: String,
        #[source]
        source: spindle_deb::version::VersionError,
    },
    #[error("package key `{key}`: invalid architecture")]
    Architecture {
        key: String,
        #[source]
        source: spindle_deb::names::NameError,
    },
    #[error("stored control paragraph is malformed")]
    Control(#[source] spindle_deb::control::ControlError),
    #[error("stored control paragraph lacks field `{field}`")]
    MissingField { field: &'static str },
    #[error("digest `{field}` value `{value}` is not lower-case hex of the right length")]
    Digest { field: &'static str, value: String },
}

/// A package's identity in a repository: name, version and architecture, written
/// `name_version_arch` (aptly's package key syntax; `_` never occurs in a valid name,
/// version or architecture).
///
/// Keys order by name, then architecture, then dpkg version order, so all versions of one
/// package on one architecture are adjacent with the newest last. Two keys are equal only
/// if their version *texts* are equal (`1.0` and `1.0-0` are distinct keys, though dpkg
/// considers them equal versions).
#[derive(Debug, Clone)]
pub struct PackageKey {
    name: String,
    version: Version,
    version_text: String,
    arch: String,
}

impl PackageKey {
    /// Builds a key, validating each part.
    pub fn new(name: &str, version: &str, arch: &str) -> Result<PackageKey, PackageError> {
        let key = || format!("{name}_{version}_{arch}");
        validate_package_name(name).map_err(|source| PackageError::Name { key: key(), source })?;
        let parsed = Version::parse(version)
            .map_err(|source| PackageError::Version { key: key(), source })?;
        validate_binary_architecture(arch)
            .map_err(|source| PackageError::Architecture { key: key(), source })?;
        Ok(PackageKey {
            name: name.to_string(),
            version: parsed,
            version_text: version.trim().to_string(),
            arch: arch.to_string(),
        })
    }

    /// Parses `name_version_arch`.
    pub fn parse(text: &str) -> Result<PackageKey, PackageError> {
        let mut parts = text.split('_');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(v), Some(a), None) => PackageKey::new(n, v, a),
            _ => Err(PackageError::KeyShape {
                key: text.to_string(),
            }),
        }
    }

    /// The key of a control paragraph (`Package`, `Version`, `Architecture`).
    pub fn from_control(control: &Paragraph) -> Result<PackageKey, PackageError> {
        let field = |field: &'static str| {
            control
                .get(field)
                .ok_or(PackageError::MissingField { field })
        };
        PackageKey::new(field("Package")?, field("Version")?, field("Architecture")?)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version as written in the control file.
    pub fn version_text(&self) -> &str {
        &self.version_text
    }

    pub fn version(&self) -> &Version {
        &self.version
    }

    pub fn arch(&self) -> &str {
        &self.arch
    }
}

impl PartialEq for PackageKey {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.arch == other.arch
            && self.version_text == other.version_text
    }
}

impl Eq for PackageKey {}

impl Hash for PackageKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.version_text.hash(state);
        self.arch.hash(state);
    }
}

impl Ord for PackageKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.name
            .cmp(&other.name)
            .then_with(|| self.arch.cmp(&other.arch))
            .then_with(|| self.version.cmp(&other.version))
            .then_with(|| self.version_text.cmp(&other.version_text))
    }
}

impl PartialOrd for PackageKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PackageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}_{}", self.name, self.version_text, self.arch)
    }
}

impl Serialize for PackageKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PackageKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        PackageKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A package stored in the pool, as repositories, snapshots and publishing see it.
///
/// Cheap to clone behind an `Arc`; the control paragraph is the package's own (without the
/// index fields `Filename`, `Size` and digests, which publishing adds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PackageRefRepr", into = "PackageRefRepr")]
pub struct PackageRef {
    key: PackageKey,
    control: Paragraph,
    digests: FileDigests,
    files: Vec<String>,
}

impl PackageRef {
    /// Assembles a record, checking that the control paragraph names a valid key and the
    /// digests look like digests.
    pub fn new(
        control: Paragraph,
        digests: FileDigests,
        files: Vec<String>,
    ) -> Result<PackageRef, PackageError> {
        let key = PackageKey::from_control(&control)?;
        for (field, value, len) in [
            ("MD5sum", &digests.md5, 32),
            ("SHA1", &digests.sha1, 40),
            ("SHA256", &digests.sha256, 64),
            ("SHA512", &digests.sha512, 128),
        ] {
            if value.len() != len
                || !value
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(PackageError::Digest {
                    field,
                    value: value.clone(),
                });
            }
        }
        Ok(PackageRef {
            key,
            control,
            digests,
            files,
        })
    }

    pub fn key(&self) -> &PackageKey {
        &self.key
    }

    pub fn control(&self) -> &Paragraph {
        &self.control
    }

    pub fn digests(&self) -> &FileDigests {
        &self.digests
    }

    /// The pool address: lower-case hex SHA-256 of the .deb.
    pub fn sha256(&self) -> &str {
        &self.digests.sha256
    }

    pub fn size(&self) -> u64 {
        self.digests.size
    }

    /// Installed paths of regular files and symlinks, relative to `/`.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// A control field, by case-insensitive name. `Name` is an alias of `Package`.
    pub fn field(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("Name") {
            return Some(self.key.name());
        }
        self.control.get(name)
    }

    /// The source package name (`Source` without a version, or the package name).
    pub fn source_name(&self) -> &str {
        match self.control.get("Source") {
            Some(s) => s.split_whitespace().next().unwrap_or(self.key.name()),
            None => self.key.name(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackageRefRepr {
    control: String,
    size: u64,
    md5: String,
    sha1: String,
    sha256: String,
    sha512: String,
    #[serde(default)]
    files: Vec<String>,
}

impl TryFrom<PackageRefRepr> for PackageRef {
    type Error = PackageError;
    fn try_from(r: PackageRefRepr) -> Result<Self, Self::Error> {
        let control = parse_paragraph(&r.control).map_err(PackageError::Control)?;
        PackageRef::new(
            control,
            FileDigests {
                size: r.size,
                md5: r.md5,
                sha1: r.sha1,
                sha256: r.sha256,
                sha512: r.sha512,
            },
            r.files,
        )
    }
}

impl From<PackageRef> for PackageRefRepr {
    fn from(p: PackageRef) -> Self {
        PackageRefRepr {
            control: p.control.to_string(),
            size: p.digests.size,
            md5: p.digests.md5,
            sha1: p.digests.sha1,
            sha256: p.digests.sha256,
            sha512: p.digests.sha512,
            files: p.files,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_print_and_order() {
        let cases = [
            ("hello_1.0_amd64", true),
            ("hello_1:2.0-1~bpo1_all", true),
            ("hello_1.0", false),
            ("Hello_1.0_amd64", false),
            ("hello_x1_amd64", false),
            ("hello_1.0_any", false),
            ("a_b_c_d", false),
        ];
        for (text, ok) in cases {
            let parsed = PackageKey::parse(text);
            assert_eq!(parsed.is_ok(), ok, "{text}: {parsed:?}");
            if let Ok(k) = parsed {
                assert_eq!(k.to_string(), text);
            }
        }
        let mut keys: Vec<PackageKey> = [
            "bb_1_amd64",
            "aa_2_amd64",
            "aa_1.0~rc1_amd64",
            "aa_1.0_amd64",
            "aa_1_all",
        ]
        .iter()
        .map(|k| PackageKey::parse(k).unwrap())
        .collect();
        keys.sort();
        let order: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            order,
            [
                "aa_1_all",
                "aa_1.0~rc1_amd64",
                "aa_1.0_amd64",
                "aa_2_amd64",
                "bb_1_amd64"
            ]
        );
        // Equal in dpkg order but different texts: distinct keys.
        assert_ne!(
            PackageKey::parse("aa_1.0_all").unwrap(),
            PackageKey::parse("aa_1.0-0_all").unwrap()
        );
    }

    #[test]
    fn package_ref_round_trips_through_json() {
        let control =
            parse_paragraph("Package: hello\nVersion: 1.0\nArchitecture: amd64\nDescription: hi\n")
                .unwrap();
        let p = PackageRef::new(
            control,
            spindle_deb::digest::digest_bytes(b"x"),
            vec!["usr/bin/hello".into()],
        )
        .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        let back: PackageRef = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let bad = json.replace(&p.digests().sha256, "zz");
        let err = serde_json::from_str::<PackageRef>(&bad).unwrap_err();
        assert!(err.to_string().contains("SHA256"), "{err}");
    }
}
