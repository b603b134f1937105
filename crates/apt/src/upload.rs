//! Many .debs in one upload: a tar archive of .deb files (what `tar cf - *.deb` writes, or
//! `spindle_client`'s writer), read in place so the archive's bytes are the only copy held.

use std::ops::Range;

/// Why an upload archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is not a readable tar archive (entry #{index})")]
    Archive {
        index: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("upload entry `{name}` is not a regular file (only .deb files may be in the archive)")]
    NotAFile { name: String },
    #[error("the upload archive holds no .deb file")]
    Empty,
}

/// One .deb inside an upload archive: its name in the archive and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadEntry {
    pub name: String,
    pub range: Range<usize>,
}

/// Lists the .deb files of a tar archive held in memory, in archive order. Directory
/// entries are skipped; links, devices and anything else are refused by name.
pub fn debs_in_tar(body: &[u8]) -> Result<Vec<UploadEntry>, UploadError> {
    // Seekable, so the reader moves past each entry's data instead of reading it.
    let mut archive = tar::Archive::new(std::io::Cursor::new(body));
    let mut out = Vec::new();
    let entries = archive
        .entries_with_seek()
        .map_err(|source| UploadError::Archive { index: 0, source })?;
    for (index, entry) in entries.enumerate() {
        let archive_err = |source| UploadError::Archive { index, source };
        let entry = entry.map_err(archive_err)?;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .map_err(archive_err)?;
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            _ => return Err(UploadError::NotAFile { name }),
        }
        let start = usize::try_from(entry.raw_file_position()).unwrap_or(usize::MAX);
        let len = usize::try_from(entry.size()).unwrap_or(usize::MAX);
        let end = start.saturating_add(len);
        if end > body.len() {
            let source = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("entry `{name}` is cut short"),
            );
            return Err(UploadError::Archive { index, source });
        }
        // The bytes are taken from `body` by range, without a copy.
        out.push(UploadEntry {
            name,
            range: start..end,
        });
    }
    if out.is_empty() {
        return Err(UploadError::Empty);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_entries_in_place() {
        let a = b"first".as_slice();
        let b = vec![7u8; 1000];
        let long = format!("{}.deb", "x".repeat(120));
        let body = tar_of(&[("a.deb", a), ("b.deb", b.as_slice()), (&long, a)]);
        let entries = debs_in_tar(&body).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].name, "a.deb");
        assert_eq!(&body[entries[0].range.clone()], a);
        assert_eq!(entries[1].name, "b.deb");
        assert_eq!(&body[entries[1].range.clone()], b.as_slice());
        // A GNU long name (a separate header entry) is read as the one name.
        assert_eq!(entries[2].name, long);
        assert_eq!(&body[entries[2].range.clone()], a);
    }

    #[test]
    fn refuses_links_garbage_and_empty_archives() {
        let mut h = tar::Header::new_ustar();
        h.set_path("evil.deb").unwrap();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_link_name("/etc/passwd").unwrap();
        h.set_size(0);
        h.set_cksum();
        let mut body = h.as_bytes().to_vec();
        body.resize(body.len() + 1024, 0);
        let err = debs_in_tar(&body).unwrap_err().to_string();
        assert!(err.contains("`evil.deb` is not a regular file"), "{err}");

        assert!(matches!(debs_in_tar(&[0u8; 1024]), Err(UploadError::Empty)));
        let mut cut = tar_of(&[("a.deb", [1u8; 2000].as_slice())]);
        cut.truncate(1000);
        let err = debs_in_tar(&cut).unwrap_err();
        assert!(matches!(err, UploadError::Archive { .. }), "{err}");
        let err = debs_in_tar(b"this is not a tar archive, just text").unwrap_err();
        assert!(matches!(err, UploadError::Archive { .. }), "{err}");
    }
}
