//! A gzip reader (RFC 1952, any number of members back to back) that reuses its inflate
//! state and input buffer across readers on the same thread. A .deb holds two small gzip
//! streams; setting up a fresh decoder for each (allocating and zeroing the inflate state,
//! its window and a 32 KiB buffer) cost more than inflating them when a batch of thousands
//! of small packages is read.

use std::cell::RefCell;
use std::io::{self, Read};

use flate2::{Crc, Decompress, FlushDecompress, Status};

const BUF: usize = 32 * 1024;

/// Inflate state and input buffer, handed from one reader to the next.
struct Parts {
    z: Decompress,
    buf: Box<[u8]>,
}

thread_local! {
    static SPARE: RefCell<Vec<Parts>> = const { RefCell::new(Vec::new()) };
}

fn take_parts() -> Parts {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .map(|mut p| {
            p.z.reset(false);
            p
        })
        .unwrap_or_else(|| Parts {
            z: Decompress::new(false),
            buf: vec![0; BUF].into_boxed_slice(),
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body,
    /// Between members: more input starts another member, the end of input ends the stream.
    Between,
    Done,
}

/// Decompresses a gzip stream of one or more members, checking each member's CRC-32 and
/// length.
pub struct GzReader<R: Read> {
    inner: R,
    parts: Option<Parts>,
    pos: usize,
    end: usize,
    eof: bool,
    state: State,
    crc: Crc,
}

impl<R: Read> GzReader<R> {
    pub fn new(inner: R) -> GzReader<R> {
        GzReader {
            inner,
            parts: Some(take_parts()),
            pos: 0,
            end: 0,
            eof: false,
            state: State::Header,
            crc: Crc::new(),
        }
    }

    fn parts(&mut self) -> &mut Parts {
        self.parts.as_mut().expect("parts are held until drop")
    }

    /// Makes input available; false at the end of the inner reader.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        if self.eof {
            return Ok(false);
        }
        let n = loop {
            let parts = self.parts.as_mut().expect("parts are held until drop");
            match self.inner.read(&mut parts.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.pos = 0;
        self.end = n;
        self.eof = n == 0;
        Ok(n > 0)
    }

    fn byte(&mut self) -> io::Result<u8> {
        if !self.fill()? {
            return Err(truncated());
        }
        let pos = self.pos;
        let b = self.parts().buf[pos];
        self.pos += 1;
        Ok(b)
    }

    fn skip(&mut self, mut n: usize) -> io::Result<()> {
        while n > 0 {
            if !self.fill()? {
                return Err(truncated());
            }
            let step = n.min(self.end - self.pos);
            self.pos += step;
            n -= step;
        }
        Ok(())
    }

    fn le32(&mut self) -> io::Result<u32> {
        let mut v = 0u32;
        for i in 0..4 {
            v |= u32::from(self.byte()?) << (8 * i);
        }
        Ok(v)
    }

    /// Reads a member header (RFC 1952 section 2.3).
    fn header(&mut self) -> io::Result<()> {
        if self.byte()? != 0x1f || self.byte()? != 0x8b {
            return Err(invalid("not gzip data (bad magic)"));
        }
        if self.byte()? != 8 {
            return Err(invalid("gzip member is not deflate-compressed"));
        }
        let flags = self.byte()?;
        if flags & 0xe0 != 0 {
            return Err(invalid("gzip header has reserved flags set"));
        }
        self.skip(6)?; // mtime, extra flags, OS
        if flags & 0x04 != 0 {
            let len = usize::from(self.byte()?) | usize::from(self.byte()?) << 8;
            self.skip(len)?;
        }
        for bit in [0x08, 0x10] {
            if flags & bit != 0 {
                while self.byte()? != 0 {}
            }
        }
        if flags & 0x02 != 0 {
            self.skip(2)?;
        }
        self.crc.reset();
        self.parts().z.reset(false);
        Ok(())
    }

    fn trailer(&mut self) -> io::Result<()> {
        let crc = self.le32()?;
        let size = self.le32()?;
        if crc != self.crc.sum() || size != self.crc.amount() {
            return Err(invalid("gzip member fails its CRC-32 or length check"));
        }
        Ok(())
    }
}

fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "gzip stream is truncated")
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

impl<R: Read> Read for GzReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header => {
                    self.header()?;
                    self.state = State::Body;
                }
                State::Between => {
                    self.state = if self.fill()? {
                        State::Header
                    } else {
                        State::Done
                    };
                }
                State::Body => {
                    let more = self.fill()?;
                    let (pos, end) = (self.pos, self.end);
                    let parts = self.parts.as_mut().expect("parts are held until drop");
                    let (in0, out0) = (parts.z.total_in(), parts.z.total_out());
                    let status = parts
                        .z
                        .decompress(&parts.buf[pos..end], out, FlushDecompress::None)
                        .map_err(|e| invalid(&format!("corrupt deflate data: {e}")))?;
                    let used = (parts.z.total_in() - in0) as usize;
                    let made = (parts.z.total_out() - out0) as usize;
                    self.pos += used;
                    self.crc.update(&out[..made]);
                    if status == Status::StreamEnd {
                        self.trailer()?;
                        self.state = State::Between;
                    }
                    if made > 0 {
                        return Ok(made);
                    }
                    if status != Status::StreamEnd && used == 0 && !more {
                        return Err(truncated());
                    }
                }
            }
        }
    }
}

impl<R: Read> Drop for GzReader<R> {
    fn drop(&mut self) {
        if let Some(p) = self.parts.take() {
            SPARE.with(|s| {
                let mut s = s.borrow_mut();
                // A thread rarely reads more than a couple of streams at once.
                if s.len() < 4 {
                    s.push(p);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8], name: Option<&str>) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new().mtime(7);
        if let Some(n) = name {
            b = b.filename(n).comment("c").extra(vec![1, 2, 3]);
        }
        let mut enc = b.write(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn read_all(data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        // One byte of input at a time exercises every refill path.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        GzReader::new(Trickle(data)).read_to_end(&mut out)?;
        let mut fast = Vec::new();
        GzReader::new(data).read_to_end(&mut fast)?;
        assert_eq!(out, fast);
        Ok(out)
    }

    #[test]
    fn reads_what_flate2_writes_including_headers_with_every_optional_field() {
        let text: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        assert_eq!(read_all(&gzip(&text, None)).unwrap(), text);
        assert_eq!(read_all(&gzip(&text, Some("f.tar"))).unwrap(), text);
        assert_eq!(read_all(&gzip(b"", None)).unwrap(), b"");
    }

    #[test]
    fn reads_members_back_to_back_like_gunzip() {
        let mut two = gzip(b"first ", None);
        two.extend(gzip(b"second", Some("x")));
        assert_eq!(read_all(&two).unwrap(), b"first second");
    }

    #[test]
    fn refuses_truncated_corrupt_and_non_gzip_input() {
        let good = gzip(&[42u8; 5000], None);
        let err = read_all(&good[..good.len() - 3]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        let err = read_all(&good[..good.len() / 2]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        let mut bad_crc = good.clone();
        let n = bad_crc.len();
        bad_crc[n - 6] ^= 0xff;
        let err = read_all(&bad_crc).unwrap_err();
        assert!(err.to_string().contains("CRC-32"), "{err}");
        let err = read_all(b"plain text, not gzip").unwrap_err();
        assert!(err.to_string().contains("bad magic"), "{err}");
        let mut garbage = good.clone();
        garbage.extend_from_slice(b"junk");
        assert!(read_all(&garbage).is_err());
    }
}
