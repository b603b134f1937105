//! `git http-backend` as a CGI program: the environment the daemon gives it for one request,
//! and the parse of the head it writes before the body. Pure: the daemon spawns the process
//! and streams the bodies.

use std::path::Path;

/// What the daemon knows of one smart-HTTP request.
#[derive(Debug, Clone, Default)]
pub struct CgiRequest<'a> {
    pub method: &'a str,
    /// After the account's directory: `/NAME.git/info/refs`, `/NAME.git/git-receive-pack`.
    pub path_info: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub content_length: Option<&'a str>,
    /// `gzip` when the client compressed the body; http-backend inflates it.
    pub content_encoding: Option<&'a str>,
    /// The `Git-Protocol` header (protocol v2 negotiation).
    pub git_protocol: Option<&'a str>,
    /// The authenticated access key id; receive-pack runs only with one.
    pub remote_user: &'a str,
    pub remote_addr: &'a str,
}

/// The environment of `git http-backend` for `req`, serving the repositories under
/// `project_root` (one account's directory). Nothing else of the daemon's environment leaks in.
pub fn env(project_root: &Path, req: &CgiRequest<'_>) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = vec![
        (
            "GIT_PROJECT_ROOT".into(),
            project_root.to_string_lossy().into_owned(),
        ),
        ("GIT_HTTP_EXPORT_ALL".into(), "1".into()),
        ("GATEWAY_INTERFACE".into(), "CGI/1.1".into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("REQUEST_METHOD".into(), req.method.into()),
        ("PATH_INFO".into(), req.path_info.into()),
        ("QUERY_STRING".into(), req.query.into()),
        ("REMOTE_USER".into(), req.remote_user.into()),
        ("REMOTE_ADDR".into(), req.remote_addr.into()),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        ("HOME".into(), "/nonexistent".into()),
        ("LC_ALL".into(), "C".into()),
    ];
    if let Some(p) = std::env::var_os("PATH") {
        e.push(("PATH".into(), p.to_string_lossy().into_owned()));
    }
    let optional = [
        ("CONTENT_TYPE", req.content_type),
        ("CONTENT_LENGTH", req.content_length),
        ("HTTP_CONTENT_ENCODING", req.content_encoding),
        ("GIT_PROTOCOL", req.git_protocol),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            e.push((k.into(), v.into()));
        }
    }
    e
}

/// The head of a CGI response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgiHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Where the body starts in the bytes parsed.
    pub body_start: usize,
}

/// The largest head accepted from the backend.
pub const MAX_HEAD: usize = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the backend's response head is longer than {MAX_HEAD} bytes")]
    TooLong,
    #[error("bad line in the backend's response head: {line:?}")]
    BadLine { line: String },
}

/// Parses the head of `buf` (what the backend wrote so far): `Ok(None)` while the blank line
/// that ends it hasn't arrived. A `Status:` line sets the status (200 without one).
pub fn parse_head(buf: &[u8]) -> Result<Option<CgiHead>, HeadError> {
    let end = find_end(buf);
    let Some((head_len, body_start)) = end else {
        return if buf.len() > MAX_HEAD {
            Err(HeadError::TooLong)
        } else {
            Ok(None)
        };
    };
    let text = String::from_utf8_lossy(&buf[..head_len]);
    let mut status = 200;
    let mut headers = Vec::new();
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        let bad = || HeadError::BadLine {
            line: line.to_owned(),
        };
        let (name, value) = line.split_once(':').ok_or_else(bad)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
                .filter(|s| (100..600).contains(s))
                .ok_or_else(bad)?;
        } else {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    Ok(Some(CgiHead {
        status,
        headers,
        body_start,
    }))
}

/// The end of the head: (its length, where the body starts).
fn find_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_with_status_headers_and_body_offset() {
        // Input → (status, number of headers, where the body starts), or `None` while the
        // head is incomplete.
        type Case<'a> = (&'a [u8], Option<(u16, usize, usize)>);
        let cases: &[Case<'_>] = &[
            (b"Content-Type: text/plain\r\n\r\nbody", Some((200, 1, 28))),
            (
                b"Status: 403 Forbidden\nContent-Type: x\n\nno",
                Some((403, 1, 39)),
            ),
            (
                b"Expires: Fri\r\nPragma: no-cache\r\n\r\n",
                Some((200, 2, 34)),
            ),
            (b"Content-Type: text/plain\r\n", None),
            (b"", None),
        ];
        for (input, want) in cases {
            let got = parse_head(input)
                .unwrap()
                .map(|h| (h.status, h.headers.len(), h.body_start));
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(input));
        }
        assert_eq!(
            parse_head(b"Status: abc\n\n"),
            Err(HeadError::BadLine {
                line: "Status: abc".into()
            })
        );
        assert_eq!(
            parse_head(b"no colon here\n\n"),
            Err(HeadError::BadLine {
                line: "no colon here".into()
            })
        );
        assert_eq!(
            parse_head(&vec![b'a'; MAX_HEAD + 1]),
            Err(HeadError::TooLong)
        );
    }

    #[test]
    fn env_carries_the_request_and_only_what_is_given() {
        let e = env(
            Path::new("/d/git/1"),
            &CgiRequest {
                method: "POST",
                path_info: "/app.git/git-receive-pack",
                content_encoding: Some("gzip"),
                remote_user: "AKIAX",
                ..Default::default()
            },
        );
        let get = |k: &str| e.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("GIT_PROJECT_ROOT"), Some("/d/git/1"));
        assert_eq!(get("PATH_INFO"), Some("/app.git/git-receive-pack"));
        assert_eq!(get("HTTP_CONTENT_ENCODING"), Some("gzip"));
        assert_eq!(get("REMOTE_USER"), Some("AKIAX"));
        assert_eq!(get("CONTENT_LENGTH"), None);
        assert_eq!(get("GIT_PROTOCOL"), None);
    }
}
