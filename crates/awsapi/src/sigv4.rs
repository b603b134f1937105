//! AWS Signature Version 4, the verifying side: the `Authorization: AWS4-HMAC-SHA256 …` header
//! form and the presigned query-string form (`X-Amz-Signature=…`), as AWS's "Create a signed
//! AWS API request" page specifies them (canonical request, string to sign, derived key).
//!
//! [`parse`] reads who signed and for which scope without any secret, so the caller can look
//! the key up and route by service; [`verify`] then checks the date, the payload hash and the
//! signature with the key's secret.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, PrimitiveDateTime};

type HmacSha256 = Hmac<Sha256>;

/// The only algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash a client may send instead of the body's SHA-256.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// How far a header-signed request's date may be from the server's clock, as AWS allows.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;
/// The longest a presigned request may be valid, as AWS allows (7 days).
pub const MAX_EXPIRES_SECONDS: i64 = 7 * 24 * 3600;

/// Why a request's signature is refused. Each variant maps onto the error code the protocol's
/// clients know (see `reply::ErrorKind`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    #[error("the request is not signed: expected an `Authorization: AWS4-HMAC-SHA256 ...` header or `X-Amz-Signature` in the query string")]
    Missing,
    #[error("malformed signature: {reason}")]
    Malformed { reason: String },
    #[error("signature expired: {date} is more than 15 minutes from the server's time {now}")]
    Skewed { date: String, now: String },
    #[error("presigned request expired at {expired} (server time {now})")]
    Expired { expired: String, now: String },
    #[error("x-amz-content-sha256 `{sent}` does not match the SHA-256 of the body")]
    PayloadHash { sent: String },
    #[error("the request signature we calculated does not match the signature you provided; check your secret access key and signing method")]
    Mismatch,
}

/// The credential scope: `DATE/REGION/SERVICE/aws4_request`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `YYYYMMDD`, as sent.
    pub date: String,
    pub region: String,
    pub service: String,
}

impl Scope {
    pub fn render(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }
}

/// The parts of a request a signature covers. Header names may be in any case.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as sent (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    /// Every value of a header, in order.
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_values(name).into_iter().next()
    }
}

/// What a request says about its signature, read before any secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    pub scope: Scope,
    /// Lower-case header names, in the order signed.
    pub signed_headers: Vec<String>,
    /// Lower-case hex.
    pub signature: String,
    /// `YYYYMMDDTHHMMSSZ`, as sent.
    pub amz_date: String,
    /// `Some(seconds)` for the presigned (query-string) form.
    pub expires: Option<i64>,
}

/// Reads the signature of `req`: the `Authorization` header if there is one, else the
/// presigned query parameters.
pub fn parse(req: &Request<'_>) -> Result<Signed, SigV4Error> {
    if let Some(auth) = req.header("authorization") {
        return parse_header(auth, req);
    }
    let q = query_pairs(req.query);
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(signature) = get("X-Amz-Signature") else {
        return Err(SigV4Error::Missing);
    };
    let malformed = |reason: &str| SigV4Error::Malformed {
        reason: reason.to_owned(),
    };
    if get("X-Amz-Algorithm") != Some(ALGORITHM) {
        return Err(malformed("X-Amz-Algorithm must be AWS4-HMAC-SHA256"));
    }
    let credential = get("X-Amz-Credential").ok_or_else(|| malformed("no X-Amz-Credential"))?;
    let (access_key_id, scope) = parse_credential(credential)?;
    let amz_date = get("X-Amz-Date").ok_or_else(|| malformed("no X-Amz-Date"))?;
    let expires = get("X-Amz-Expires")
        .ok_or_else(|| malformed("no X-Amz-Expires"))?
        .parse::<i64>()
        .ok()
        .filter(|e| (1..=MAX_EXPIRES_SECONDS).contains(e))
        .ok_or_else(|| malformed("X-Amz-Expires must be 1-604800 seconds"))?;
    let signed_headers = get("X-Amz-SignedHeaders")
        .ok_or_else(|| malformed("no X-Amz-SignedHeaders"))?
        .split(';')
        .map(str::to_owned)
        .collect();
    Ok(Signed {
        access_key_id,
        scope,
        signed_headers,
        signature: signature.to_ascii_lowercase(),
        amz_date: amz_date.to_owned(),
        expires: Some(expires),
    })
}

fn parse_header(auth: &str, req: &Request<'_>) -> Result<Signed, SigV4Error> {
    let malformed = |reason: String| SigV4Error::Malformed { reason };
    let rest = auth
        .strip_prefix(ALGORITHM)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| {
            malformed(format!(
                "Authorization must start with `{ALGORITHM} `, got `{}`",
                auth.split(' ').next().unwrap_or("")
            ))
        })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| malformed(format!("`{part}` is not KEY=VALUE")))?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            other => return Err(malformed(format!("unknown Authorization field `{other}`"))),
        }
    }
    let credential = credential.ok_or_else(|| malformed("no Credential=".into()))?;
    let (access_key_id, scope) = parse_credential(credential)?;
    let amz_date = req
        .header("x-amz-date")
        .ok_or_else(|| malformed("no X-Amz-Date header".into()))?;
    Ok(Signed {
        access_key_id,
        scope,
        signed_headers: signed
            .ok_or_else(|| malformed("no SignedHeaders=".into()))?
            .split(';')
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        signature: signature
            .ok_or_else(|| malformed("no Signature=".into()))?
            .to_ascii_lowercase(),
        amz_date: amz_date.to_owned(),
        expires: None,
    })
}

/// `AKID/DATE/REGION/SERVICE/aws4_request`.
fn parse_credential(c: &str) -> Result<(String, Scope), SigV4Error> {
    let parts: Vec<&str> = c.split('/').collect();
    match parts.as_slice() {
        [id, date, region, service, "aws4_request"]
            if !id.is_empty() && date.len() == 8 && !service.is_empty() =>
        {
            Ok((
                (*id).to_owned(),
                Scope {
                    date: (*date).to_owned(),
                    region: (*region).to_owned(),
                    service: (*service).to_owned(),
                },
            ))
        }
        _ => Err(SigV4Error::Malformed {
            reason: format!(
                "Credential `{c}`: expected ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request"
            ),
        }),
    }
}

/// Parses `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, fmt)
        .ok()
        .map(|t| t.assume_utc())
}

/// Formats `YYYYMMDDTHHMMSSZ`.
pub fn format_amz_date(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    t.format(fmt).unwrap_or_default()
}

/// Checks `signed` against `req` with the key's `secret` at server time `now`.
pub fn verify(
    signed: &Signed,
    req: &Request<'_>,
    secret: &str,
    now: OffsetDateTime,
) -> Result<(), SigV4Error> {
    let date = parse_amz_date(&signed.amz_date).ok_or_else(|| SigV4Error::Malformed {
        reason: format!("X-Amz-Date `{}` is not YYYYMMDDTHHMMSSZ", signed.amz_date),
    })?;
    if signed.amz_date[..8] != signed.scope.date {
        return Err(SigV4Error::Malformed {
            reason: format!(
                "the credential scope's date {} is not the date of X-Amz-Date {}",
                signed.scope.date, signed.amz_date
            ),
        });
    }
    match signed.expires {
        None => {
            if (now - date).whole_seconds().abs() > MAX_SKEW_SECONDS {
                return Err(SigV4Error::Skewed {
                    date: signed.amz_date.clone(),
                    now: format_amz_date(now),
                });
            }
        }
        Some(secs) => {
            let end = date + time::Duration::seconds(secs);
            if now > end || date - now > time::Duration::seconds(MAX_SKEW_SECONDS) {
                return Err(SigV4Error::Expired {
                    expired: format_amz_date(end),
                    now: format_amz_date(now),
                });
            }
        }
    }
    if !signed.signed_headers.iter().any(|h| h == "host") {
        return Err(SigV4Error::Malformed {
            reason: "SignedHeaders must include `host`".into(),
        });
    }
    let key = signing_key(secret, &signed.scope);
    let sent = hex::decode(&signed.signature).map_err(|_| SigV4Error::Mismatch)?;
    for payload in payload_hashes(signed, req)? {
        let canonical = canonical_request(
            req,
            &signed.signed_headers,
            &payload,
            signed.expires.is_some(),
        );
        let to_sign = string_to_sign(&signed.amz_date, &signed.scope, &canonical);
        let mut mac = HmacSha256::new_from_slice(&key).expect("HMAC takes any key length");
        mac.update(to_sign.as_bytes());
        // `verify_slice` compares in constant time.
        if mac.verify_slice(&sent).is_ok() {
            return Ok(());
        }
    }
    Err(SigV4Error::Mismatch)
}

/// The hashed payload lines the signature may cover: `x-amz-content-sha256` when sent (it
/// must match the body unless it is `UNSIGNED-PAYLOAD`), else the body's SHA-256; a presigned
/// request without the header may also have signed `UNSIGNED-PAYLOAD` (S3's form; botocore
/// signs other services' presigned URLs over the empty body's hash).
fn payload_hashes(signed: &Signed, req: &Request<'_>) -> Result<Vec<String>, SigV4Error> {
    let body = hex::encode(Sha256::digest(req.body));
    match req.header("x-amz-content-sha256") {
        Some(UNSIGNED_PAYLOAD) => Ok(vec![UNSIGNED_PAYLOAD.to_owned()]),
        Some(h) if h.eq_ignore_ascii_case(&body) => Ok(vec![body]),
        Some(h) => Err(SigV4Error::PayloadHash { sent: h.to_owned() }),
        None if signed.expires.is_some() => Ok(vec![body, UNSIGNED_PAYLOAD.to_owned()]),
        None => Ok(vec![body]),
    }
}

/// The canonical request (method, URI, query, headers, signed header list, payload hash).
pub fn canonical_request(
    req: &Request<'_>,
    signed_headers: &[String],
    payload_hash: &str,
    presigned: bool,
) -> String {
    let path = if req.path.is_empty() { "/" } else { req.path };
    // Services other than S3 encode the (already encoded) path once more.
    let uri = uri_encode(&normalize_path(path), false);
    let mut pairs: Vec<(String, String)> = query_pairs(req.query)
        .into_iter()
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, true), uri_encode(&v, true)))
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .header_values(name)
            .into_iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    format!(
        "{}\n{uri}\n{query}\n{headers}\n{}\n{payload_hash}",
        req.method,
        signed_headers.join(";")
    )
}

/// Removes `.` and `..` segments and doubled slashes, keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = format!("/{}", out.join("/"));
    if path.ends_with('/') && s.len() > 1 {
        s.push('/');
    }
    s
}

/// The string to sign over a canonical request.
pub fn string_to_sign(amz_date: &str, scope: &Scope, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{}\n{}",
        scope.render(),
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The derived signing key: HMAC chain over date, region, service and `aws4_request`.
pub fn signing_key(secret: &str, scope: &Scope) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), scope.date.as_bytes());
    let k = hmac(&k, scope.region.as_bytes());
    let k = hmac(&k, scope.service.as_bytes());
    hmac(&k, b"aws4_request")
}

/// Signs a request as a client would (header form), for tests and tools: returns the
/// `Authorization` header's value.
pub fn sign(
    req: &Request<'_>,
    access_key_id: &str,
    secret: &str,
    scope: &Scope,
    amz_date: &str,
    signed_headers: &[String],
) -> String {
    let payload = req
        .header("x-amz-content-sha256")
        .map(str::to_owned)
        .unwrap_or_else(|| hex::encode(Sha256::digest(req.body)));
    let canonical = canonical_request(req, signed_headers, &payload, false);
    let sig = hmac(
        &signing_key(secret, scope),
        string_to_sign(amz_date, scope, &canonical).as_bytes(),
    );
    format!(
        "{ALGORITHM} Credential={access_key_id}/{}, SignedHeaders={}, Signature={}",
        scope.render(),
        signed_headers.join(";"),
        hex::encode(sig)
    )
}

/// The session token sent with a request: the `X-Amz-Security-Token` header, or the query
/// parameter of that name in the presigned form.
pub fn session_token(req: &Request<'_>) -> Option<String> {
    req.header("x-amz-security-token")
        .map(str::to_owned)
        .or_else(|| {
            query_pairs(req.query)
                .into_iter()
                .find(|(k, _)| k == "X-Amz-Security-Token")
                .map(|(_, v)| v)
        })
}

/// The session token of temporary credentials: an HMAC of the key id under a key only the
/// daemon holds (`daemon_key`), so the daemon checks it without storing anything more, and
/// whoever learns a session's key id and secret still can't make its token.
pub fn session_token_for(access_key_id: &str, daemon_key: &[u8]) -> String {
    hex::encode(hmac(
        daemon_key,
        format!("spindle-session-token:{access_key_id}").as_bytes(),
    ))
}

/// Whether `sent` is the session token of `access_key_id` (compared in constant time).
pub fn session_token_matches(access_key_id: &str, daemon_key: &[u8], sent: &str) -> bool {
    let want = session_token_for(access_key_id, daemon_key);
    want.len() == sent.len()
        && want
            .bytes()
            .zip(sent.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Decoded `key=value` pairs of a query string or form body (`+` is a space).
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// SigV4's URI encoding: every byte but `A-Za-z0-9-._~` as `%XX` (upper case); `/` kept
/// unless `encode_slash`.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests;
