//! A minimal tar writer producing GNU-format archives exactly like `dpkg-deb` lays them out:
//! member names start with `./`, directories end with `/`, long names use GNU `././@LongLink`
//! records. Writing headers ourselves keeps every byte under our control (the `tar` crate
//! strips the leading `./`), which reproducibility depends on.

/// What one tar entry is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TarKind<'a> {
    File(&'a [u8]),
    Dir,
    Symlink(&'a str),
}

/// One entry to write. `path` is the archive name (`./usr/bin/hello`, `./usr/`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TarEntry<'a> {
    pub path: &'a str,
    pub kind: TarKind<'a>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

const BLOCK: usize = 512;

/// Appends the archive for `entries`, in the given order, to `out`.
pub(crate) fn write_tar(entries: &[TarEntry<'_>], out: &mut Vec<u8>) {
    for e in entries {
        let (type_flag, data, link): (u8, &[u8], &str) = match e.kind {
            TarKind::File(data) => (b'0', data, ""),
            TarKind::Dir => (b'5', &[], ""),
            TarKind::Symlink(target) => (b'2', &[], target),
        };
        if link.len() > 100 {
            long_link(out, b'K', link.as_bytes());
        }
        if e.path.len() > 100 {
            long_link(out, b'L', e.path.as_bytes());
        }
        let header = Header {
            name: e.path.as_bytes(),
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: data.len() as u64,
            mtime: e.mtime,
            type_flag,
            link: link.as_bytes(),
            // Names are only written for root, so nothing about the build host leaks in.
            uname: if e.uid == 0 { b"root" } else { b"" },
            gname: if e.gid == 0 { b"root" } else { b"" },
        };
        out.extend_from_slice(&header.encode());
        append_padded(out, data);
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
}

fn long_link(out: &mut Vec<u8>, type_flag: u8, name: &[u8]) {
    let mut data = name.to_vec();
    data.push(0);
    let header = Header {
        name: b"././@LongLink",
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: data.len() as u64,
        mtime: 0,
        type_flag,
        link: b"",
        uname: b"root",
        gname: b"root",
    };
    out.extend_from_slice(&header.encode());
    append_padded(out, &data);
}

fn append_padded(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let rem = data.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

struct Header<'a> {
    name: &'a [u8],
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: u64,
    type_flag: u8,
    link: &'a [u8],
    uname: &'a [u8],
    gname: &'a [u8],
}

impl Header<'_> {
    fn encode(&self) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        put_str(&mut h[0..100], self.name);
        put_num(&mut h[100..108], u64::from(self.mode));
        put_num(&mut h[108..116], u64::from(self.uid));
        put_num(&mut h[116..124], u64::from(self.gid));
        put_num(&mut h[124..136], self.size);
        put_num(&mut h[136..148], self.mtime);
        h[156] = self.type_flag;
        put_str(&mut h[157..257], self.link);
        // GNU magic and version: "ustar  \0".
        h[257..265].copy_from_slice(b"ustar  \0");
        put_str(&mut h[265..297], self.uname);
        put_str(&mut h[297..329], self.gname);
        // The checksum is computed with its own field filled with spaces.
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let text = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(text.as_bytes());
        h
    }
}

/// Copies a name, truncated to the field (long names are carried by a LongLink record).
fn put_str(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

/// Zero-padded octal with a trailing NUL, or GNU base-256 when the value does not fit.
fn put_num(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || value < 1u64 << (3 * digits) {
        let text = format!("{value:0digits$o}");
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let bytes = value.to_be_bytes();
        let len = field.len();
        field[len - 8..].copy_from_slice(&bytes);
        field[0] |= 0x80;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn readable_by_the_tar_crate() {
        let long = format!("./usr/share/{}/file", "d".repeat(120));
        let target = format!("/{}", "t".repeat(150));
        let entries = [
            TarEntry {
                path: "./",
                kind: TarKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 5,
            },
            TarEntry {
                path: &long,
                kind: TarKind::File(b"contents"),
                mode: 0o644,
                uid: 1000,
                gid: 100,
                mtime: 5,
            },
            TarEntry {
                path: "./link",
                kind: TarKind::Symlink(&target),
                mode: 0o777,
                uid: 0,
                gid: 0,
                mtime: 5,
            },
        ];
        let mut out = Vec::new();
        write_tar(&entries, &mut out);
        assert_eq!(out.len() % BLOCK, 0);
        let mut archive = tar::Archive::new(&out[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = String::from_utf8(entry.path_bytes().to_vec()).unwrap();
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.to_vec()).unwrap());
            let h = entry.header();
            let meta = (h.mode().unwrap(), h.uid().unwrap(), h.mtime().unwrap());
            let mut data = String::new();
            entry.read_to_string(&mut data).unwrap();
            seen.push((path, link, meta, data));
        }
        assert_eq!(
            seen,
            vec![
                ("./".to_string(), None, (0o755, 0, 5), String::new()),
                (long.clone(), None, (0o644, 1000, 5), "contents".into()),
                (
                    "./link".into(),
                    Some(target.clone()),
                    (0o777, 0, 5),
                    String::new()
                ),
            ]
        );
    }

    #[test]
    fn large_numbers_use_base_256() {
        let mut field = [0u8; 12];
        put_num(&mut field, 0o77777777777);
        assert_eq!(&field, b"77777777777\0");
        put_num(&mut field, 1 << 40);
        assert_eq!(field[0], 0x80);
        assert_eq!(&field[4..], &(1u64 << 40).to_be_bytes());
    }
}
