//! Whether a PostgreSQL server accepts connections: send a protocol 3.0 StartupMessage and
//! read the first reply. `R` (an authentication request) means the server is ready to log
//! the user in; `E` while it starts up (`the database system is starting up`) means not yet.

use std::io::{Read, Write};

/// The StartupMessage for `user` on `database`.
pub fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// What the first byte of the server's reply says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An authentication request: the server accepts connections.
    Ready,
    /// An error response (starting up, shutting down, …), with its message when readable.
    NotReady(String),
}

/// Reads a reply's first message from its bytes.
pub fn classify(reply: &[u8]) -> Reply {
    match reply.first() {
        Some(b'R') => Reply::Ready,
        Some(b'E') => {
            // Fields after the 5-byte header: a type byte and a NUL-terminated string each.
            let fields = reply.get(5..).unwrap_or_default();
            let msg = fields
                .split(|b| *b == 0)
                .find(|f| f.first() == Some(&b'M'))
                .map(|f| String::from_utf8_lossy(&f[1..]).into_owned())
                .unwrap_or_else(|| "error response".into());
            Reply::NotReady(msg)
        }
        Some(other) => Reply::NotReady(format!("unexpected reply type {:?}", *other as char)),
        None => Reply::NotReady("connection closed without a reply".into()),
    }
}

/// Asks the server on `stream` once (the caller opens the stream and sets its timeouts).
pub fn ask(stream: &mut (impl Read + Write), user: &str, database: &str) -> Reply {
    if let Err(e) = stream.write_all(&startup_message(user, database)) {
        return Reply::NotReady(format!("cannot send: {e}"));
    }
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        Ok(n) => classify(&buf[..n]),
        Err(e) => Reply::NotReady(format!("cannot read: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_startup_message_is_length_prefixed_protocol_3() {
        let m = startup_message("app", "db");
        assert_eq!(
            u32::from_be_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(&m[4..8], &[0, 3, 0, 0]);
        assert_eq!(&m[8..], b"user\0app\0database\0db\0\0");
    }

    #[test]
    fn replies_are_classified_by_their_type() {
        let cases: &[(&[u8], Reply)] = &[
            (b"R\0\0\0\x0c\0\0\0\x0a", Reply::Ready),
            (
                b"E\0\0\0\x30SFATAL\0C57P03\0Mthe database system is starting up\0\0",
                Reply::NotReady("the database system is starting up".into()),
            ),
            (
                b"",
                Reply::NotReady("connection closed without a reply".into()),
            ),
            (b"N", Reply::NotReady("unexpected reply type 'N'".into())),
        ];
        for (bytes, want) in cases {
            assert_eq!(&classify(bytes), want, "{bytes:?}");
        }
    }
}
