//! `Packages` index paragraphs: a package's control fields followed by where the file lives
//! in the pool and its digests, as `dpkg-scanpackages` and the Debian archive write them.

use crate::control::{ControlError, Paragraph};
use crate::digest::FileDigests;

/// Fields the index adds; any copies of them in a control file are dropped.
pub const INDEX_FIELDS: &[&str] = &["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

/// The `Packages` paragraph for a package stored at `filename` (relative to the archive
/// root, e.g. `pool/main/h/hello/hello_1.0_all.deb`).
pub fn packages_paragraph(
    control: &Paragraph,
    filename: &str,
    digests: &FileDigests,
) -> Result<Paragraph, ControlError> {
    let size = digests.size.to_string();
    packages_paragraph_with(
        control,
        &[
            ("Filename", filename),
            ("Size", &size),
            ("MD5sum", &digests.md5),
            ("SHA1", &digests.sha1),
            ("SHA256", &digests.sha256),
            ("SHA512", &digests.sha512),
        ],
    )
}

/// The control fields in their order, then `extra` in the given order. Existing fields
/// named in `extra` or [`INDEX_FIELDS`] are replaced.
pub fn packages_paragraph_with(
    control: &Paragraph,
    extra: &[(&str, &str)],
) -> Result<Paragraph, ControlError> {
    let mut out = Paragraph::new();
    for (name, value) in control.iter() {
        let replaced = INDEX_FIELDS
            .iter()
            .chain(extra.iter().map(|(n, _)| n))
            .any(|n| n.eq_ignore_ascii_case(name));
        if !replaced {
            out.set(name, value)?;
        }
    }
    for (name, value) in extra {
        out.set(name, *value)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::parse_paragraph;
    use crate::digest::digest_bytes;

    #[test]
    fn fields_follow_the_control_paragraph() {
        let control = parse_paragraph(
            "Package: hi\nVersion: 1\nArchitecture: all\nSize: 1\nDescription: x\n y\n",
        )
        .unwrap();
        let p = packages_paragraph(
            &control,
            "pool/main/h/hi/hi_1_all.deb",
            &digest_bytes(b"abc"),
        )
        .unwrap();
        let text = p.to_string();
        assert!(text.starts_with(
            "Package: hi\nVersion: 1\nArchitecture: all\nDescription: x\n y\nFilename: pool/main/h/hi/hi_1_all.deb\nSize: 3\nMD5sum: 900150983cd24fb0d6963f7d28e17f72\nSHA1: a9993e36"
        ), "{text}");
        assert_eq!(p.iter().last().map(|(n, _)| n), Some("SHA512"));
        let custom = packages_paragraph_with(&control, &[("Version", "2")]).unwrap();
        assert_eq!(custom.get("Version"), Some("2"));
        assert_eq!(custom.get("Size"), None);
        assert!(packages_paragraph_with(&control, &[("Bad Name", "x")]).is_err());
    }
}
