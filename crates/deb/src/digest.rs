//! Whole-file size and checksums, as apt indexes need them (`Size`, `MD5sum`, `SHA1`,
//! `SHA256`, `SHA512`).

use std::io::{self, Read, Write};

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Size and lower-case hex digests of a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileDigests {
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub sha512: String,
}

/// Accumulates all digests at once; feed it with [`Write`] or [`Hasher::update`].
#[derive(Clone, Default)]
pub struct Hasher {
    size: u64,
    md5: Md5,
    sha1: Sha1,
    sha256: Sha256,
    sha512: Sha512,
}

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.size += data.len() as u64;
        self.md5.update(data);
        self.sha1.update(data);
        self.sha256.update(data);
        self.sha512.update(data);
    }

    pub fn finish(self) -> FileDigests {
        FileDigests {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
            sha512: hex::encode(self.sha512.finalize()),
        }
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Digests of an in-memory file.
pub fn digest_bytes(data: &[u8]) -> FileDigests {
    let mut h = Hasher::new();
    h.update(data);
    h.finish()
}

/// Digests of everything `r` yields.
pub fn digest_reader(mut r: impl Read) -> io::Result<FileDigests> {
    let mut h = Hasher::new();
    io::copy(&mut r, &mut h)?;
    Ok(h.finish())
}

/// Hex MD5 of a buffer (the `md5sums` control file format).
pub(crate) fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// A reader that hashes everything read through it.
pub(crate) struct HashingReader<R> {
    pub inner: R,
    pub hasher: Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let d = digest_bytes(b"abc");
        assert_eq!(d.size, 3);
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.sha512.starts_with("ddaf35a193617aba"));
        assert_eq!(digest_reader(&b"abc"[..]).unwrap(), d);
    }
}
