//! Package identity ([`PackageKey`]) and what a repository knows about a stored package
//! ([`PackageRef`]): its control paragraph, the digests of the .deb in the pool and the paths
//! it installs (for `Contents` indexes). Both are compact, since the daemon keeps every
//! record of an account in memory.

use std::cmp::Ordering;
use std::fmt;
use std::hash::Hash;
use std::io::{Read, Write};
use std::sync::Arc;

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
///
/// Cloning is a reference count: the catalog's map keys, the records and the repositories
/// the daemon keeps decoded all share one copy of each key.
#[derive(Clone)]
pub struct PackageKey(Arc<KeyParts>);

struct KeyParts {
    /// `name_version_arch`, with the version trimmed.
    text: Box<str>,
    /// Byte offsets of the first `_` and of the architecture.
    name_end: u32,
    arch_start: u32,
    version: Version,
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
        let version = version.trim();
        let text = format!("{name}_{version}_{arch}");
        let too_long = || PackageError::KeyShape { key: text.clone() };
        let name_end = u32::try_from(name.len()).map_err(|_| too_long())?;
        let arch_start = u32::try_from(name.len() + version.len() + 2).map_err(|_| too_long())?;
        Ok(PackageKey(Arc::new(KeyParts {
            text: text.into_boxed_str(),
            name_end,
            arch_start,
            version: parsed,
        })))
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
        &self.0.text[..self.0.name_end as usize]
    }

    /// The version as written in the control file.
    pub fn version_text(&self) -> &str {
        &self.0.text[self.0.name_end as usize + 1..self.0.arch_start as usize - 1]
    }

    pub fn version(&self) -> &Version {
        &self.0.version
    }

    pub fn arch(&self) -> &str {
        &self.0.text[self.0.arch_start as usize..]
    }

    /// `name_version_arch`, without allocating (what `Display` prints).
    pub fn as_str(&self) -> &str {
        &self.0.text
    }

    /// Whether both are clones of one key (a cheap test that implies equality).
    pub fn same(&self, other: &PackageKey) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for PackageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PackageKey").field(&self.as_str()).finish()
    }
}

impl PartialEq for PackageKey {
    fn eq(&self, other: &Self) -> bool {
        // The text determines name, version text and architecture (`_` separates them).
        self.same(other) || self.0.text == other.0.text
    }
}

impl Eq for PackageKey {}

impl Hash for PackageKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.text.hash(state);
    }
}

impl Ord for PackageKey {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.same(other) {
            return Ordering::Equal;
        }
        self.name()
            .cmp(other.name())
            .then_with(|| self.arch().cmp(other.arch()))
            .then_with(|| self.version().cmp(other.version()))
            .then_with(|| self.version_text().cmp(other.version_text()))
    }
}

impl PartialOrd for PackageKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PackageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PackageKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PackageKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor, so a key read from a borrowed string costs no copy.
        struct KeyText;
        impl serde::de::Visitor<'_> for KeyText {
            type Value = PackageKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a package key `name_version_arch`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PackageKey, E> {
                PackageKey::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(KeyText)
    }
}

/// Lengths of the hex digests stored after the control text: MD5, SHA-1, SHA-256, SHA-512.
const DIGEST_LENS: [usize; 4] = [32, 40, 64, 128];
const DIGESTS_LEN: usize = 32 + 40 + 64 + 128;

/// A package stored in the pool, as repositories, snapshots and publishing see it.
///
/// The control paragraph is the package's own (without the index fields `Filename`, `Size`
/// and digests, which publishing adds). A daemon keeps every record of an account in
/// memory, so a record is compact: the control paragraph and the digests are one string
/// (fields are found by scanning it, see [`Control`]) and the installed paths are one
/// buffer, deflated when that makes it smaller. Keep records behind an `Arc`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PackageRefRepr")]
pub struct PackageRef {
    key: PackageKey,
    size: u64,
    /// The control paragraph in deb822 form (each field ending in a newline), then the
    /// digests of the .deb in lower-case hex, in the order of [`DIGEST_LENS`].
    text: Box<str>,
    /// Installed paths, see [`encode_files`].
    files: Box<[u8]>,
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
        let fields = [
            ("MD5sum", &digests.md5),
            ("SHA1", &digests.sha1),
            ("SHA256", &digests.sha256),
            ("SHA512", &digests.sha512),
        ];
        for ((field, value), len) in fields.into_iter().zip(DIGEST_LENS) {
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
        let mut text = control.to_string();
        text.reserve_exact(DIGESTS_LEN);
        for (_, value) in fields {
            text.push_str(value);
        }
        Ok(PackageRef {
            key,
            size: digests.size,
            text: text.into_boxed_str(),
            files: encode_files(&files),
        })
    }

    pub fn key(&self) -> &PackageKey {
        &self.key
    }

    /// The control paragraph.
    pub fn control(&self) -> Control<'_> {
        Control {
            text: &self.text[..self.text.len() - DIGESTS_LEN],
        }
    }

    fn digest(&self, i: usize) -> &str {
        let start = self.text.len() - DIGESTS_LEN + DIGEST_LENS[..i].iter().sum::<usize>();
        &self.text[start..start + DIGEST_LENS[i]]
    }

    /// Size and digests of the .deb.
    pub fn digests(&self) -> FileDigests {
        FileDigests {
            size: self.size,
            md5: self.md5().to_string(),
            sha1: self.sha1().to_string(),
            sha256: self.sha256().to_string(),
            sha512: self.sha512().to_string(),
        }
    }

    pub fn md5(&self) -> &str {
        self.digest(0)
    }

    pub fn sha1(&self) -> &str {
        self.digest(1)
    }

    /// The pool address: lower-case hex SHA-256 of the .deb.
    pub fn sha256(&self) -> &str {
        self.digest(2)
    }

    pub fn sha512(&self) -> &str {
        self.digest(3)
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Installed paths of regular files and symlinks, relative to `/` (decoded on each
    /// call: only `Contents` indexes need them).
    pub fn files(&self) -> Vec<String> {
        decode_files(&self.files)
    }

    /// A control field, by case-insensitive name. `Name` is an alias of `Package`.
    pub fn field(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("Name") {
            return Some(self.key.name());
        }
        self.control().get(name)
    }

    /// The source package name (`Source` without a version, or the package name).
    pub fn source_name(&self) -> &str {
        match self.control().get("Source") {
            Some(s) => s.split_whitespace().next().unwrap_or(self.key.name()),
            None => self.key.name(),
        }
    }
}

impl fmt::Debug for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackageRef")
            .field("key", &self.key)
            .field("control", &self.control().as_str())
            .field("size", &self.size)
            .field("sha256", &self.sha256())
            .field("files", &self.files())
            .finish()
    }
}

/// A package's control paragraph, read in place from its record.
///
/// The text is the canonical rendering of a parsed [`Paragraph`], so each value is the
/// text after `Field: ` up to the end of the field's last continuation line: the same
/// values, in the same order, as the paragraph's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control<'a> {
    text: &'a str,
}

impl<'a> Control<'a> {
    /// The value of a field, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Fields in order, as `(name, value)`.
    pub fn iter(&self) -> ControlFields<'a> {
        ControlFields { rest: self.text }
    }

    /// The paragraph as text, each field ending in a newline.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The paragraph as a [`Paragraph`] (parsed again).
    pub fn to_paragraph(&self) -> Paragraph {
        // The text is a rendered paragraph, so it parses; an empty one is the only
        // conceivable fallback.
        parse_paragraph(self.text).unwrap_or_default()
    }
}

impl fmt::Display for Control<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

/// The fields of a [`Control`], in order.
#[derive(Debug, Clone)]
pub struct ControlFields<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ControlFields<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        // A field runs to the first newline not followed by a continuation line.
        let bytes = self.rest.as_bytes();
        let mut end = 0;
        let end = loop {
            match bytes[end..].iter().position(|&b| b == b'\n') {
                None => break bytes.len(),
                Some(i) => {
                    let nl = end + i;
                    if matches!(bytes.get(nl + 1), Some(b' ' | b'\t')) {
                        end = nl + 1;
                    } else {
                        break nl;
                    }
                }
            }
        };
        let field = &self.rest[..end];
        self.rest = self.rest.get(end + 1..).unwrap_or("");
        let (name, value) = field.split_once(':').unwrap_or((field, ""));
        Some((name, value.strip_prefix(' ').unwrap_or(value)))
    }
}

/// Lists at least this long are stored deflated if that is smaller.
const DEFLATE_FROM: usize = 128;

/// The installed paths as one buffer: empty for none, else `p` and the paths joined by NUL
/// (which no tar path contains), or `z` and that text, raw-deflated. Paths of a package
/// share long prefixes, so a real package's list shrinks several times.
fn encode_files(files: &[String]) -> Box<[u8]> {
    let files: Vec<&str> = files
        .iter()
        .map(String::as_str)
        .filter(|f| !f.contains('\0'))
        .collect();
    if files.is_empty() {
        return Box::default();
    }
    let joined = files.join("\0");
    if joined.len() >= DEFLATE_FROM {
        let mut enc =
            flate2::write::DeflateEncoder::new(vec![b'z'], flate2::Compression::default());
        // Writing to a Vec cannot fail.
        if enc.write_all(joined.as_bytes()).is_ok() {
            if let Ok(z) = enc.finish() {
                if z.len() < joined.len() {
                    return z.into_boxed_slice();
                }
            }
        }
    }
    let mut out = Vec::with_capacity(joined.len() + 1);
    out.push(b'p');
    out.extend_from_slice(joined.as_bytes());
    out.into_boxed_slice()
}

fn decode_files(data: &[u8]) -> Vec<String> {
    let text = match data.split_first() {
        None => return Vec::new(),
        Some((b'z', z)) => {
            let mut out = String::new();
            // Only `encode_files` wrote this; a failure would only lose the list.
            if flate2::read::DeflateDecoder::new(z)
                .read_to_string(&mut out)
                .is_err()
            {
                return Vec::new();
            }
            out
        }
        Some((_, plain)) => String::from_utf8_lossy(plain).into_owned(),
    };
    text.split('\0').map(str::to_string).collect()
}

/// The stored form of a [`PackageRef`] (the daemon's `apt_packages.record`).
#[derive(Deserialize)]
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

impl Serialize for PackageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            control: &'a str,
            size: u64,
            md5: &'a str,
            sha1: &'a str,
            sha256: &'a str,
            sha512: &'a str,
            files: Vec<String>,
        }
        Out {
            control: self.control().as_str(),
            size: self.size,
            md5: self.md5(),
            sha1: self.sha1(),
            sha256: self.sha256(),
            sha512: self.sha512(),
            files: self.files(),
        }
        .serialize(s)
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

    #[test]
    fn key_parts_are_read_from_one_text() {
        let k = PackageKey::parse("hello_1:2.0-1~bpo1_amd64").unwrap();
        assert_eq!(
            (k.name(), k.version_text(), k.arch(), k.as_str()),
            ("hello", "1:2.0-1~bpo1", "amd64", "hello_1:2.0-1~bpo1_amd64")
        );
        assert_eq!(k.version().epoch(), 1);
        // A padded version is trimmed, as dpkg reads it.
        let padded = PackageKey::new("hello", " 1.0 ", "all").unwrap();
        assert_eq!(padded.to_string(), "hello_1.0_all");
        assert_eq!(padded, PackageKey::parse("hello_1.0_all").unwrap());
        let copy = k.clone();
        assert!(copy.same(&k) && !padded.same(&k));
        let json = serde_json::to_string(&vec![k.clone(), padded.clone()]).unwrap();
        assert_eq!(json, r#"["hello_1:2.0-1~bpo1_amd64","hello_1.0_all"]"#);
        let back: Vec<PackageKey> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, [k, padded]);
        let err = serde_json::from_str::<PackageKey>(r#""hello_1.0""#).unwrap_err();
        assert!(err.to_string().contains("hello_1.0"), "{err}");
    }

    #[test]
    fn control_fields_read_in_place_match_the_parsed_paragraph() {
        let texts = [
            "Package: hello\nVersion: 1.0\nArchitecture: amd64\nDescription: hi\n",
            // An empty value, a value starting on a continuation line, tabs, colons in
            // values, and a multi-line value as the last field.
            "Package: ab\nVersion: 1\nArchitecture: all\nEmpty:\nBuilt-Using:\n b (= 1),\n\tc (= 2)\n\
             Homepage: http://example.invalid:8080/x\nDescription: short\n long\n .\n more\n",
        ];
        for text in texts {
            let para = parse_paragraph(text).unwrap();
            let p = PackageRef::new(
                para.clone(),
                spindle_deb::digest::digest_bytes(b"x"),
                vec![],
            )
            .unwrap();
            let fields: Vec<(&str, &str)> = p.control().iter().collect();
            let expected: Vec<(&str, &str)> = para.iter().collect();
            assert_eq!(fields, expected);
            assert_eq!(p.control().to_string(), para.to_string());
            assert_eq!(p.control().to_paragraph(), para);
            for (name, value) in para.iter() {
                assert_eq!(p.control().get(&name.to_lowercase()), Some(value), "{name}");
            }
            assert_eq!(p.control().get("Missing"), None);
            assert_eq!(p.field("name"), Some(p.key().name()));
            assert_eq!(p.digests(), spindle_deb::digest::digest_bytes(b"x"));
        }
    }

    #[test]
    fn file_lists_round_trip_plain_and_deflated() {
        let control =
            parse_paragraph("Package: hello\nVersion: 1.0\nArchitecture: amd64\n").unwrap();
        let short = vec![
            "usr/bin/hello".to_string(),
            "usr/share/doc/hello/README".into(),
        ];
        let long: Vec<String> = (0..200)
            .map(|i| format!("usr/share/hello/data/file{i:04}.txt"))
            .collect();
        for files in [Vec::new(), short, long.clone()] {
            let p = PackageRef::new(
                control.clone(),
                spindle_deb::digest::digest_bytes(b"x"),
                files.clone(),
            )
            .unwrap();
            assert_eq!(p.files(), files);
            let back: PackageRef =
                serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(back.files(), files);
        }
        let deflated = encode_files(&long);
        let joined: usize = long.iter().map(|f| f.len() + 1).sum();
        assert_eq!(deflated[0], b'z');
        assert!(
            deflated.len() * 4 < joined,
            "{} of {joined}",
            deflated.len()
        );
    }
}
