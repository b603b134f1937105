//! Compression of the `control.tar` and `data.tar` members.
//!
//! Encoders are single-threaded with fixed settings (dpkg-deb's default levels), so the same
//! input always gives the same bytes: gzip headers carry mtime 0 and no file name.

use std::io::{self, Read, Write};

/// A member compression, named by the member's file name suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    None,
    Gzip,
    #[default]
    Xz,
    Zstd,
    /// Read only: dpkg accepts `data.tar.bz2` but no longer builds it.
    Bzip2,
    /// Read only: the legacy `.lzma` format.
    Lzma,
}

impl Compression {
    /// The suffix after `control.tar` / `data.tar`: `""`, `".gz"`, `".xz"`, ...
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
            Compression::Lzma => ".lzma",
        }
    }

    /// Recognises a member name such as `data.tar.zst` given its stem (`data.tar`).
    pub fn from_member_name(stem: &str, name: &str) -> Option<Compression> {
        let suffix = name.strip_prefix(stem)?;
        [
            Compression::None,
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
            Compression::Bzip2,
            Compression::Lzma,
        ]
        .into_iter()
        .find(|c| c.suffix() == suffix)
    }

    /// Parses a user-facing name: `none`, `gzip`/`gz`, `xz`, `zstd`/`zst`.
    pub fn from_name(name: &str) -> Option<Compression> {
        match name {
            "none" => Some(Compression::None),
            "gzip" | "gz" => Some(Compression::Gzip),
            "xz" => Some(Compression::Xz),
            "zstd" | "zst" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Whether [`compress`] supports this format.
    pub fn can_write(self) -> bool {
        !matches!(self, Compression::Bzip2 | Compression::Lzma)
    }
}

/// Compresses a whole buffer deterministically.
pub fn compress(compression: Compression, data: &[u8]) -> io::Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            // GzBuilder writes mtime 0, no name and OS "unknown" unless told otherwise.
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::best());
            enc.write_all(data)?;
            enc.finish()
        }
        Compression::Xz => {
            let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
            enc.write_all(data)?;
            enc.finish()
        }
        Compression::Zstd => zstd::stream::encode_all(data, 3),
        Compression::Bzip2 | Compression::Lzma => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("cannot write {compression:?} compression"),
        )),
    }
}

/// Wraps a reader in the matching decompressor.
pub fn decoder<'a, R: Read + 'a>(compression: Compression, r: R) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(crate::gz::GzReader::new(r)),
        Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(r)),
        Compression::Lzma => {
            let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX)?;
            Box::new(liblzma::read::XzDecoder::new_stream(r, stream))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_determinism() {
        let data: Vec<u8> = (0..20_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Xz,
            Compression::Zstd,
        ] {
            let a = compress(c, &data).unwrap();
            let b = compress(c, &data).unwrap();
            assert_eq!(a, b, "{c:?} is not deterministic");
            let mut out = Vec::new();
            decoder(c, &a[..]).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{c:?}");
        }
        assert!(compress(Compression::Bzip2, b"x").is_err());
    }

    #[test]
    fn gzip_header_has_no_timestamp() {
        let gz = compress(Compression::Gzip, b"hello").unwrap();
        assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn member_names() {
        let cases = [
            ("data.tar", Some(Compression::None)),
            ("data.tar.gz", Some(Compression::Gzip)),
            ("data.tar.xz", Some(Compression::Xz)),
            ("data.tar.zst", Some(Compression::Zstd)),
            ("data.tar.bz2", Some(Compression::Bzip2)),
            ("data.tar.lzma", Some(Compression::Lzma)),
            ("data.tar.lz4", None),
            ("control.tar.gz", None),
        ];
        for (name, want) in cases {
            assert_eq!(
                Compression::from_member_name("data.tar", name),
                want,
                "{name}"
            );
        }
    }
}
