//! Mirrors: fetch a remote apt repository's signed `InRelease`, verify it with a keyring,
//! read its `Packages` indexes (each checked against the SHA-256 and size `Release` lists),
//! select packages with a query (optionally with their dependencies), download just those
//! and check each against the index before it enters the pool.
//!
//! Network access goes through the [`Fetch`] trait (the daemon implements it over HTTP), so
//! this module stays free of HTTP. Nothing reaches the pool unless every step succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use pgp::composed::{CleartextSignedMessage, Deserializable, SignedPublicKey};
use spindle_deb::compress::{decoder, Compression};
use spindle_deb::control::parse_paragraphs;
use spindle_deb::FileDigests;

use crate::catalog::{Catalog, KnownPackages};
use crate::package::{PackageKey, PackageRef};
use crate::pool::{Added, Pool, PoolError};
use crate::query::Query;
use crate::repo::{DepOptions, Snapshot, SnapshotSource};

/// Why a mirror update failed.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("cannot fetch `{path}`: {reason}")]
    Fetch { path: String, reason: String },
    #[error("the keyring is not a usable OpenPGP public key: {reason}")]
    Keyring { reason: String },
    #[error("`{path}` is not signed by a key of the mirror's keyring: {reason}")]
    Signature { path: String, reason: String },
    #[error("`{path}`: {reason}")]
    Index { path: String, reason: String },
    #[error("`{path}` does not match the hash Release lists (expected {expected}, got {got})")]
    Mismatch {
        path: String,
        expected: String,
        got: String,
    },
    #[error("Release lists no Packages index for component `{component}`, architecture `{arch}`")]
    NoIndex { component: String, arch: String },
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("invalid mirror {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error(
        "`{path}` expired: its Valid-Until is {valid_until}, before now ({now}); the remote \
         repository must be republished before it can be mirrored"
    )]
    Expired {
        path: String,
        valid_until: String,
        now: String,
    },
}

/// Fetches files of the remote repository, by path relative to its base URL.
pub trait Fetch {
    fn fetch(&self, path: &str) -> Result<Vec<u8>, String>;
}

/// What to mirror.
#[derive(Debug, Clone)]
pub struct MirrorSpec {
    pub distribution: String,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    /// aptly query text; `None` takes everything.
    pub filter: Option<String>,
    pub with_deps: bool,
    /// The time a `Valid-Until` in `Release` is checked against.
    pub now: std::time::SystemTime,
}

/// The result of an update: the packages now in the pool, and unmet dependencies.
#[derive(Debug)]
pub struct MirrorUpdate {
    pub packages: Vec<Added>,
    pub unsatisfied: Vec<String>,
}

/// Parses an ASCII-armored or binary keyring (one or more public keys).
pub fn parse_keyring(data: &[u8]) -> Result<Vec<SignedPublicKey>, MirrorError> {
    let err = |e: pgp::errors::Error| MirrorError::Keyring {
        reason: e.to_string(),
    };
    let keys: Vec<SignedPublicKey> = if data.starts_with(b"-----BEGIN") {
        let (keys, _) = SignedPublicKey::from_armor_many(data).map_err(err)?;
        keys.collect::<Result<_, _>>().map_err(err)?
    } else {
        SignedPublicKey::from_bytes_many(data)
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?
    };
    if keys.is_empty() {
        return Err(MirrorError::Keyring {
            reason: "it holds no key".into(),
        });
    }
    Ok(keys)
}

/// A keyring (ASCII-armored or binary) as a binary OpenPGP keyring, the form `gpgv --keyring`
/// and apt's `signed-by=` take for a `.gpg` file.
pub fn binary_keyring(data: &[u8]) -> Result<Vec<u8>, MirrorError> {
    use pgp::ser::Serialize as _;
    let mut out = Vec::new();
    for key in parse_keyring(data)? {
        key.to_writer(&mut out).map_err(|e| MirrorError::Keyring {
            reason: e.to_string(),
        })?;
    }
    Ok(out)
}

/// Verifies a clearsigned `InRelease` with any key of `keyring` (or its signing subkeys);
/// returns the signed text.
pub fn verify_inrelease(
    path: &str,
    signed: &[u8],
    keyring: &[SignedPublicKey],
) -> Result<String, MirrorError> {
    let text = std::str::from_utf8(signed).map_err(|_| MirrorError::Signature {
        path: path.into(),
        reason: "not UTF-8".into(),
    })?;
    let (msg, _) =
        CleartextSignedMessage::from_string(text).map_err(|e| MirrorError::Signature {
            path: path.into(),
            reason: e.to_string(),
        })?;
    for key in keyring {
        if msg.verify(&key.primary_key).is_ok() {
            return Ok(msg.signed_text());
        }
        for sub in &key.public_subkeys {
            if msg.verify(&sub.key).is_ok() {
                return Ok(msg.signed_text());
            }
        }
    }
    Err(MirrorError::Signature {
        path: path.into(),
        reason: "no key of the keyring made its signature".into(),
    })
}

/// The `SHA256` section of a Release file: path → (size, sha256).
pub fn release_sha256(text: &str) -> BTreeMap<String, (u64, String)> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            inside = line.trim_end() == "SHA256:";
            continue;
        }
        if !inside {
            continue;
        }
        let mut parts = line.split_whitespace();
        if let (Some(sha), Some(size), Some(path)) = (parts.next(), parts.next(), parts.next()) {
            if let Ok(size) = size.parse() {
                out.insert(path.to_string(), (size, sha.to_ascii_lowercase()));
            }
        }
    }
    out
}

/// Refuses a `Release` whose `Valid-Until` has passed (as apt does), or that apt could not
/// read. A `Release` without the field never expires.
pub fn check_valid_until(
    path: &str,
    release: &str,
    now: std::time::SystemTime,
) -> Result<(), MirrorError> {
    let Some(text) = release
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix("Valid-Until:"))
        .map(str::trim)
    else {
        return Ok(());
    };
    let until = parse_release_date(text).ok_or_else(|| MirrorError::Index {
        path: path.into(),
        reason: format!("Valid-Until `{text}` is not a date like `Sat, 28 Nov 2026 12:00:00 UTC`"),
    })?;
    let now = time::OffsetDateTime::from(now);
    if until < now {
        return Err(MirrorError::Expired {
            path: path.into(),
            valid_until: text.to_owned(),
            now: crate::publish::release_date(now.into()),
        });
    }
    Ok(())
}

/// Parses a `Release` date (`Sat, 28 Nov 2026 12:00:00 UTC`; RFC 2822 with `UTC`, `GMT`,
/// `Z` or a numeric offset).
fn parse_release_date(text: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc2822;
    let text = text.trim();
    let numeric = ["UTC", "GMT", "Z"].iter().find_map(|zone| {
        text.strip_suffix(zone)
            .filter(|rest| rest.ends_with(' '))
            .map(|rest| format!("{rest}+0000"))
    });
    time::OffsetDateTime::parse(numeric.as_deref().unwrap_or(text), &Rfc2822).ok()
}

fn check(path: &str, data: &[u8], size: u64, sha: &str) -> Result<(), MirrorError> {
    use sha2::Digest;
    let got = hex::encode(sha2::Sha256::digest(data));
    if data.len() as u64 != size || got != sha {
        return Err(MirrorError::Mismatch {
            path: path.into(),
            expected: format!("{sha} ({size} bytes)"),
            got: format!("{got} ({} bytes)", data.len()),
        });
    }
    Ok(())
}

/// A `Filename` from an index: relative, no `..`, no empty parts.
fn check_filename(name: &str) -> Result<(), MirrorError> {
    if name.starts_with('/')
        || name
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(MirrorError::Invalid {
            what: "Filename",
            reason: format!("`{name}` is not a plain relative path"),
        });
    }
    Ok(())
}

/// One index entry: a selection record and where to download it.
struct Entry {
    package: PackageRef,
    filename: String,
    size: u64,
    sha256: String,
}

const INDEX_FIELDS: &[&str] = &["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

fn entry(path: &str, mut p: spindle_deb::control::Paragraph) -> Result<Entry, MirrorError> {
    let bad = |reason: String| MirrorError::Index {
        path: path.into(),
        reason,
    };
    let field = |p: &spindle_deb::control::Paragraph, f: &str| {
        p.get(f).map(str::to_owned).ok_or_else(|| {
            bad(format!(
                "package `{}` lacks `{f}`",
                p.get("Package").unwrap_or("?")
            ))
        })
    };
    let filename = field(&p, "Filename")?;
    let sha256 = field(&p, "SHA256")?.to_ascii_lowercase();
    let size: u64 = field(&p, "Size")?
        .parse()
        .map_err(|_| bad(format!("`{filename}`: Size is not a number")))?;
    check_filename(&filename)?;
    for f in INDEX_FIELDS {
        p.remove(f);
    }
    // Selection only needs the control fields; the digests the pool stores are computed from
    // the downloaded file itself, so the ones the index may lack are placeholders here.
    let digests = FileDigests {
        size,
        md5: "0".repeat(32),
        sha1: "0".repeat(40),
        sha256: sha256.clone(),
        sha512: "0".repeat(128),
    };
    let package =
        PackageRef::new(p, digests, Vec::new()).map_err(|e| bad(format!("`{filename}`: {e}")))?;
    Ok(Entry {
        package,
        filename,
        size,
        sha256,
    })
}

fn decompress(path: &str, data: &[u8]) -> Result<String, MirrorError> {
    let compression = if path.ends_with(".xz") {
        Some(Compression::Xz)
    } else if path.ends_with(".gz") {
        Some(Compression::Gzip)
    } else {
        None
    };
    let mut out = Vec::new();
    let res = match compression {
        Some(c) => decoder(c, data).and_then(|mut r| r.read_to_end(&mut out)),
        None => {
            out.extend_from_slice(data);
            Ok(0)
        }
    };
    res.map_err(|e| MirrorError::Index {
        path: path.into(),
        reason: format!("cannot decompress: {e}"),
    })?;
    String::from_utf8(out).map_err(|_| MirrorError::Index {
        path: path.into(),
        reason: "not UTF-8".into(),
    })
}

/// Fetches, verifies and selects, then downloads the selection into `pool`. The pool is
/// written only after every file was downloaded and checked against its index entry (a file
/// whose control fields then disagree with the entry is refused, leaving only an
/// unreferenced pool file that cleanup removes).
pub fn update(
    spec: &MirrorSpec,
    fetch: &dyn Fetch,
    keyring: &[SignedPublicKey],
    pool: &Pool,
    known: &impl KnownPackages,
) -> Result<MirrorUpdate, MirrorError> {
    let query = spec
        .filter
        .as_deref()
        .map(|q| {
            Query::parse(q)
                .map(|parsed| (parsed, q))
                .map_err(|e| MirrorError::Invalid {
                    what: "filter",
                    reason: e.to_string(),
                })
        })
        .transpose()?;
    let get = |path: &str| {
        fetch.fetch(path).map_err(|reason| MirrorError::Fetch {
            path: path.into(),
            reason,
        })
    };
    let dist = format!("dists/{}", spec.distribution);
    let inrelease_path = format!("{dist}/InRelease");
    let release = verify_inrelease(&inrelease_path, &get(&inrelease_path)?, keyring)?;
    check_valid_until(&inrelease_path, &release, spec.now)?;
    let hashes = release_sha256(&release);

    let mut catalog = Catalog::new();
    let mut entries: BTreeMap<PackageKey, Entry> = BTreeMap::new();
    for component in &spec.components {
        for arch in &spec.architectures {
            let base = format!("{component}/binary-{arch}/Packages");
            let (name, (size, sha)) = ["xz", "gz", ""]
                .iter()
                .map(|ext| {
                    if ext.is_empty() {
                        base.clone()
                    } else {
                        format!("{base}.{ext}")
                    }
                })
                .find_map(|n| hashes.get(&n).map(|h| (n.clone(), h.clone())))
                .ok_or_else(|| MirrorError::NoIndex {
                    component: component.clone(),
                    arch: arch.clone(),
                })?;
            let path = format!("{dist}/{name}");
            let data = get(&path)?;
            check(&path, &data, size, &sha)?;
            let text = decompress(&path, &data)?;
            let paragraphs = parse_paragraphs(&text).map_err(|e| MirrorError::Index {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            for p in paragraphs {
                let e = entry(&path, p)?;
                // The first index naming a key wins (an `all` package appears per arch).
                if catalog.insert(e.package.clone()).is_ok() {
                    entries.entry(e.package.key().clone()).or_insert(e);
                }
            }
        }
    }

    let all = Snapshot::from_packages(
        "mirror",
        SnapshotSource::Mirror {
            name: "mirror".into(),
        },
        entries.keys().cloned().collect(),
        "",
    )
    .map_err(|e| MirrorError::Invalid {
        what: "selection",
        reason: e.to_string(),
    })?;
    let (selected, unsatisfied): (BTreeSet<PackageKey>, Vec<String>) = match &query {
        None => (all.packages().clone(), Vec::new()),
        Some((q, text)) => {
            let deps = spec.with_deps.then(|| DepOptions {
                architectures: spec.architectures.clone(),
                ..DepOptions::default()
            });
            let f = all
                .filter("mirror", q, text, deps.as_ref(), &catalog)
                .map_err(|e| MirrorError::Invalid {
                    what: "selection",
                    reason: e.to_string(),
                })?;
            (
                f.snapshot.packages().clone(),
                f.unsatisfied
                    .iter()
                    .map(|(k, r)| format!("{k}: {r}"))
                    .collect(),
            )
        }
    };

    let mut debs = Vec::with_capacity(selected.len());
    for key in &selected {
        let e = &entries[key];
        let data = get(&e.filename)?;
        check(&e.filename, &data, e.size, &e.sha256)?;
        debs.push(data);
    }
    let added = pool.add_batch(&debs, known)?;
    for (a, key) in added.iter().zip(&selected) {
        if a.package.key() != key {
            return Err(MirrorError::Index {
                path: entries[key].filename.clone(),
                reason: format!(
                    "the index says `{key}` but the file is `{}`",
                    a.package.key()
                ),
            });
        }
    }
    Ok(MirrorUpdate {
        packages: added,
        unsatisfied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_hashes_and_filenames() {
        let text = "Origin: x\nMD5Sum:\n 00 1 main/binary-amd64/Packages\nSHA256:\n AB 12 main/binary-amd64/Packages\n cd 3 main/binary-amd64/Packages.gz\nDate: now\n";
        let h = release_sha256(text);
        assert_eq!(h.len(), 2);
        assert_eq!(h["main/binary-amd64/Packages"], (12, "ab".to_string()));
        assert!(check_filename("pool/main/h/hello/hello_1_all.deb").is_ok());
        for bad in ["../x.deb", "/etc/passwd", "pool//x.deb", "pool/./x"] {
            assert!(check_filename(bad).is_err(), "{bad}");
        }
        assert!(check("p", b"abc", 3, "00").is_err());
        assert!(parse_keyring(b"junk").is_err());
    }

    #[test]
    fn valid_until_is_checked_against_now() {
        use std::time::{Duration, UNIX_EPOCH};
        // 2026-11-28 12:00:00 UTC.
        let at = UNIX_EPOCH + Duration::from_secs(1_795_867_200);
        let release = |v: &str| format!("Origin: x\nValid-Until: {v}\nSHA256:\n ab 1 f\n");
        let ok = check_valid_until("InRelease", &release("Sat, 28 Nov 2026 12:00:01 UTC"), at);
        assert!(ok.is_ok(), "{ok:?}");
        let err = check_valid_until("InRelease", &release("Sat, 28 Nov 2026 11:59:59 UTC"), at)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Valid-Until is Sat, 28 Nov 2026 11:59:59 UTC")
                && err.contains("now (Sat, 28 Nov 2026 12:00:00 UTC)"),
            "{err}"
        );
        // Other zone spellings apt accepts, and a one-digit day.
        for v in [
            "Sat, 28 Nov 2026 11:00:00 GMT",
            "Sat, 28 Nov 2026 13:00:00 +0200",
            "Mon, 2 Nov 2026 00:00:00 UTC",
        ] {
            assert!(
                check_valid_until("InRelease", &release(v), at).is_err(),
                "{v}"
            );
        }
        let err = check_valid_until("InRelease", &release("tomorrow"), at).unwrap_err();
        assert!(err.to_string().contains("Valid-Until `tomorrow`"), "{err}");
        // No Valid-Until: never expires.
        assert!(check_valid_until("InRelease", "Origin: x\nSHA256:\n ab 1 f\n", at).is_ok());
    }
}
