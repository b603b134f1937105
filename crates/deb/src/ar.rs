//! The `ar` container of a .deb (the common System V / GNU format as dpkg writes it).
//!
//! [`ArReader`] streams members one at a time without reading the whole file into memory;
//! [`ArWriter`] writes members with fixed, reproducible header fields.

use std::io::{self, Read, Write};

/// The global header of every ar archive.
pub const MAGIC: &[u8; 8] = b"!<arch>\n";

/// Problems with the ar layer of a file.
#[derive(Debug, thiserror::Error)]
pub enum ArError {
    #[error("not an ar archive (bad magic)")]
    BadMagic,
    #[error("file ends inside the ar header of member {index}")]
    TruncatedHeader { index: usize },
    #[error("ar header of member {index} is malformed: {reason}")]
    BadHeader { index: usize, reason: &'static str },
    #[error("file ends inside ar member `{name}`")]
    TruncatedMember { name: String },
    #[error("failed to read the ar archive")]
    Io(#[source] io::Error),
    #[error("member name `{name}` is longer than 16 bytes or contains `/` or spaces")]
    BadName { name: String },
}

/// Header fields of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHeader {
    pub name: String,
    pub mtime: u64,
    pub mode: u32,
    pub size: u64,
}

/// Streams the members of an ar archive.
pub struct ArReader<R> {
    inner: R,
    /// Bytes of the current member not yet consumed, plus its padding byte.
    remaining: u64,
    padding: bool,
    current_name: String,
    index: usize,
}

impl<R: Read> ArReader<R> {
    /// Checks the global header.
    pub fn new(mut inner: R) -> Result<ArReader<R>, ArError> {
        let mut magic = [0u8; 8];
        match read_full(&mut inner, &mut magic).map_err(ArError::Io)? {
            8 if &magic == MAGIC => {}
            _ => return Err(ArError::BadMagic),
        }
        Ok(ArReader {
            inner,
            remaining: 0,
            padding: false,
            current_name: String::new(),
            index: 0,
        })
    }

    /// Advances to the next member, skipping what is left of the current one. Returns
    /// `None` at a clean end of the archive.
    pub fn next_member(&mut self) -> Result<Option<(MemberHeader, Member<'_, R>)>, ArError> {
        self.skip_rest()?;
        let index = self.index;
        let mut raw = [0u8; 60];
        let n = read_full(&mut self.inner, &mut raw).map_err(ArError::Io)?;
        if n == 0 {
            return Ok(None);
        }
        if n < raw.len() {
            return Err(ArError::TruncatedHeader { index });
        }
        let header = parse_header(&raw, index)?;
        self.index += 1;
        self.remaining = header.size;
        self.padding = header.size % 2 == 1;
        self.current_name = header.name.clone();
        Ok(Some((header, Member { archive: self })))
    }

    /// The data of the member most recently returned by [`ArReader::next_member`], for
    /// callers that had to let go of the borrow in between.
    pub fn current_member(&mut self) -> Member<'_, R> {
        Member { archive: self }
    }

    fn skip_rest(&mut self) -> Result<(), ArError> {
        let want = self.remaining + u64::from(self.padding);
        if want == 0 {
            return Ok(());
        }
        let copied =
            io::copy(&mut (&mut self.inner).take(want), &mut io::sink()).map_err(ArError::Io)?;
        // A missing final padding byte is tolerated, as dpkg does.
        if copied < self.remaining {
            return Err(ArError::TruncatedMember {
                name: self.current_name.clone(),
            });
        }
        self.remaining = 0;
        self.padding = false;
        Ok(())
    }

    /// Gives back the underlying reader, positioned after the last member read.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// The data of the current member. Reading past the member's end returns end-of-file;
/// an archive that ends early gives an [`io::ErrorKind::UnexpectedEof`] error.
pub struct Member<'a, R> {
    archive: &'a mut ArReader<R>,
}

impl<R: Read> Read for Member<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let a = &mut *self.archive;
        if a.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf.len().min(a.remaining.min(usize::MAX as u64) as usize);
        let n = a.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("ar member `{}` is truncated", a.current_name),
            ));
        }
        a.remaining -= n as u64;
        Ok(n)
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn parse_header(raw: &[u8; 60], index: usize) -> Result<MemberHeader, ArError> {
    let bad = |reason| ArError::BadHeader { index, reason };
    if &raw[58..60] != b"`\n" {
        return Err(bad("missing header terminator"));
    }
    let name = std::str::from_utf8(&raw[0..16]).map_err(|_| bad("name is not UTF-8"))?;
    // GNU ar ends names with `/`; dpkg pads with spaces only.
    let name = name.trim_end_matches(' ');
    let name = name.strip_suffix('/').unwrap_or(name);
    if name.is_empty() {
        return Err(bad("empty member name"));
    }
    let number = |field: &[u8], radix: u32, what| -> Result<u64, ArError> {
        let text = std::str::from_utf8(field)
            .map_err(|_| bad(what))?
            .trim_end();
        if text.is_empty() {
            return Ok(0);
        }
        u64::from_str_radix(text, radix).map_err(|_| bad(what))
    };
    let mtime = number(&raw[16..28], 10, "mtime is not a number")?;
    let mode = number(&raw[40..48], 8, "mode is not an octal number")?;
    let size = std::str::from_utf8(&raw[48..58])
        .ok()
        .map(str::trim_end)
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("size is not a number"))?;
    Ok(MemberHeader {
        name: name.to_string(),
        mtime,
        mode: mode as u32,
        size,
    })
}

/// Writes an ar archive: global header first, then each member.
pub struct ArWriter<W> {
    inner: W,
}

impl<W: Write> ArWriter<W> {
    pub fn new(mut inner: W) -> io::Result<ArWriter<W>> {
        inner.write_all(MAGIC)?;
        Ok(ArWriter { inner })
    }

    /// Appends one member with uid/gid 0 and mode 0100644, like `dpkg-deb`.
    pub fn append(&mut self, name: &str, mtime: u64, data: &[u8]) -> Result<(), ArError> {
        if name.is_empty() || name.len() > 16 || name.contains(['/', ' ']) {
            return Err(ArError::BadName {
                name: name.to_string(),
            });
        }
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            mtime,
            0,
            0,
            "100644",
            data.len()
        );
        debug_assert_eq!(header.len(), 60);
        let write = |w: &mut W| -> io::Result<()> {
            w.write_all(header.as_bytes())?;
            w.write_all(data)?;
            if data.len() % 2 == 1 {
                w.write_all(b"\n")?;
            }
            Ok(())
        };
        write(&mut self.inner).map_err(ArError::Io)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = ArWriter::new(Vec::new()).unwrap();
        w.append("debian-binary", 7, b"2.0\n").unwrap();
        w.append("odd", 7, b"abc").unwrap();
        w.append("empty", 7, b"").unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let mut r = ArReader::new(&bytes[..]).unwrap();
        let mut seen = Vec::new();
        while let Some((h, mut m)) = r.next_member().unwrap() {
            let mut data = Vec::new();
            m.read_to_end(&mut data).unwrap();
            seen.push((h.name, h.mtime, h.mode, data));
        }
        assert_eq!(
            seen,
            vec![
                ("debian-binary".into(), 7, 0o100644, b"2.0\n".to_vec()),
                ("odd".into(), 7, 0o100644, b"abc".to_vec()),
                ("empty".into(), 7, 0o100644, vec![]),
            ]
        );
    }

    #[test]
    fn skipping_unread_members() {
        let bytes = sample();
        let mut r = ArReader::new(&bytes[..]).unwrap();
        let mut names = Vec::new();
        while let Some((h, _)) = r.next_member().unwrap() {
            names.push(h.name);
        }
        assert_eq!(names, ["debian-binary", "odd", "empty"]);
    }

    #[test]
    fn bad_input() {
        assert!(matches!(
            ArReader::new(&b"!<arch>"[..]),
            Err(ArError::BadMagic)
        ));
        assert!(matches!(
            ArReader::new(&b"PK\x03\x04xxxx"[..]),
            Err(ArError::BadMagic)
        ));
        let bytes = sample();
        // Cut inside the second header.
        let mut r = ArReader::new(&bytes[..8 + 60 + 4 + 30]).unwrap();
        r.next_member().unwrap();
        assert!(matches!(
            r.next_member(),
            Err(ArError::TruncatedHeader { index: 1 })
        ));
        // Cut inside the first member's data.
        let mut r = ArReader::new(&bytes[..8 + 60 + 2]).unwrap();
        {
            let (_, mut m) = r.next_member().unwrap().unwrap();
            let err = m.read_to_end(&mut Vec::new()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
        let mut r = ArReader::new(&bytes[..8 + 60 + 2]).unwrap();
        r.next_member().unwrap();
        assert!(matches!(
            r.next_member(),
            Err(ArError::TruncatedMember { name }) if name == "debian-binary"
        ));
        // Corrupt the terminator and the size field.
        let mut corrupt = bytes.clone();
        corrupt[8 + 58] = b'x';
        let mut r = ArReader::new(&corrupt[..]).unwrap();
        assert!(matches!(r.next_member(), Err(ArError::BadHeader { .. })));
        let mut corrupt = bytes.clone();
        corrupt[8 + 48] = b'z';
        let mut r = ArReader::new(&corrupt[..]).unwrap();
        assert!(matches!(r.next_member(), Err(ArError::BadHeader { .. })));
        let mut w = ArWriter::new(Vec::new()).unwrap();
        assert!(matches!(
            w.append("a-name-longer-than-16", 0, b""),
            Err(ArError::BadName { .. })
        ));
    }
}
