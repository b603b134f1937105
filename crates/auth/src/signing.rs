//! Signing and verification of API requests.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};
use spindle_model::AccessKeyId;
use std::collections::HashMap;
use time::{
    format_description::FormatItem, macros::format_description, OffsetDateTime, PrimitiveDateTime,
};

type HmacSha256 = Hmac<Sha256>;

/// The scheme name at the start of the `Authorization` header.
pub const SCHEME: &str = "SPINDLE-HMAC-SHA256";

/// How far a request's timestamp may be from the server's clock, either way.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;

const TIMESTAMP_FORMAT: &[FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// The 32-byte HMAC key derived from a secret; what the server stores.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(pub [u8; 32]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

/// Why a request's signature is refused. Messages say what to do, since they reach users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    #[error("request is not signed (no Authorization header)")]
    Missing,
    #[error("Authorization header is malformed: {reason}")]
    Malformed { reason: String },
    #[error(
        "request time {timestamp} is {skew_secs} s from the server's clock (allowed: ±{window} s)"
    )]
    Expired {
        timestamp: String,
        skew_secs: i64,
        window: i64,
    },
    #[error("request was signed before the server started")]
    BeforeBoot,
    #[error("request signature was already used (replayed request)")]
    Replayed,
    #[error("signature does not match the request")]
    Mismatch,
}

impl SigError {
    /// A stable code for API error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthentication",
            Self::Malformed { .. } => "MalformedAuthorization",
            Self::Expired { .. } => "SignatureExpired",
            Self::BeforeBoot => "SignatureBeforeBoot",
            Self::Replayed => "SignatureReplayed",
            Self::Mismatch => "SignatureDoesNotMatch",
        }
    }
}

/// The parts of a request that a signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    /// The path exactly as sent, still percent-encoded.
    pub path: &'a str,
    /// The query exactly as sent, without `?`; empty when there is none.
    pub query: &'a str,
    pub body: &'a [u8],
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    pub access_key_id: AccessKeyId,
    pub timestamp: OffsetDateTime,
    pub nonce: String,
    pub signature: [u8; 32],
}

/// A new random secret access key: 40 characters, as AWS's.
pub fn generate_secret(rng: &mut impl Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..40)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Derives the HMAC key for `secret` with argon2id (19 MiB, 2 passes: OWASP's minimum), salted
/// with the key id so equal secrets under different ids give different keys.
pub fn derive_signing_key(access_key_id: &AccessKeyId, secret: &str) -> SigningKey {
    let params =
        argon2::Params::new(19 * 1024, 2, 1, Some(32)).expect("constant argon2 params are valid");
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = format!("spindle-signing-key:{access_key_id}");
    let mut out = [0u8; 32];
    argon
        .hash_password_into(secret.as_bytes(), salt.as_bytes(), &mut out)
        .expect("argon2 with a 36-byte salt and 32-byte output cannot fail");
    SigningKey(out)
}

fn format_timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIMESTAMP_FORMAT)
        .expect("UTC time formats")
}

fn string_to_sign(
    id: &AccessKeyId,
    timestamp: &str,
    nonce: &str,
    req: &RequestParts<'_>,
) -> String {
    let body_hash = hex::encode(Sha256::digest(req.body));
    format!(
        "{SCHEME}\n{timestamp}\n{nonce}\n{id}\n{}\n{}\n{}\n{body_hash}",
        req.method, req.path, req.query
    )
}

fn mac(key: &SigningKey, text: &str) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(&key.0).expect("HMAC takes any key length");
    m.update(text.as_bytes());
    m
}

/// Signs `req` and returns the `Authorization` header value.
pub fn sign(
    id: &AccessKeyId,
    key: &SigningKey,
    req: &RequestParts<'_>,
    now: OffsetDateTime,
    nonce: &str,
) -> String {
    let ts = format_timestamp(now);
    let sig = mac(key, &string_to_sign(id, &ts, nonce, req))
        .finalize()
        .into_bytes();
    format!(
        "{SCHEME} Credential={id},Timestamp={ts},Nonce={nonce},Signature={}",
        hex::encode(sig)
    )
}

impl AuthHeader {
    /// Parses the header's value. Never panics, whatever the input.
    pub fn parse(value: &str) -> Result<Self, SigError> {
        let bad = |reason: &str| SigError::Malformed {
            reason: reason.to_owned(),
        };
        let rest = value
            .strip_prefix(SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or_else(|| bad("expected the scheme SPINDLE-HMAC-SHA256"))?;
        let (mut cred, mut ts, mut nonce, mut sig) = (None, None, None, None);
        for field in rest.split(',') {
            let (k, v) = field
                .trim()
                .split_once('=')
                .ok_or_else(|| bad("expected Key=Value fields"))?;
            let slot = match k {
                "Credential" => &mut cred,
                "Timestamp" => &mut ts,
                "Nonce" => &mut nonce,
                "Signature" => &mut sig,
                _ => return Err(bad("unknown field")),
            };
            if slot.replace(v).is_some() {
                return Err(bad("a field appears twice"));
            }
        }
        let access_key_id = AccessKeyId::parse(cred.ok_or_else(|| bad("no Credential"))?)
            .map_err(|_| bad("Credential is not an access key id"))?;
        let ts = ts.ok_or_else(|| bad("no Timestamp"))?;
        let timestamp = PrimitiveDateTime::parse(ts, TIMESTAMP_FORMAT)
            .map_err(|_| bad("Timestamp is not YYYYMMDDTHHMMSSZ"))?
            .assume_utc();
        let nonce = nonce.ok_or_else(|| bad("no Nonce"))?;
        if nonce.len() < 16 || nonce.len() > 64 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("Nonce must be 16-64 hex digits"));
        }
        let sig = sig.ok_or_else(|| bad("no Signature"))?;
        let mut signature = [0u8; 32];
        hex::decode_to_slice(sig, &mut signature)
            .map_err(|_| bad("Signature is not 64 hex digits"))?;
        Ok(Self {
            access_key_id,
            timestamp,
            nonce: nonce.to_owned(),
            signature,
        })
    }
}

/// Checks that `header` is a valid signature of `req` under `key` and within the time window.
/// Replay protection is separate ([`ReplayGuard`]) because it needs memory across requests.
pub fn verify(
    header: &AuthHeader,
    key: &SigningKey,
    req: &RequestParts<'_>,
    now: OffsetDateTime,
) -> Result<(), SigError> {
    let skew = (header.timestamp - now).whole_seconds();
    if skew.abs() > SIGNATURE_WINDOW_SECS {
        return Err(SigError::Expired {
            timestamp: format_timestamp(header.timestamp),
            skew_secs: skew,
            window: SIGNATURE_WINDOW_SECS,
        });
    }
    let ts = format_timestamp(header.timestamp);
    mac(
        key,
        &string_to_sign(&header.access_key_id, &ts, &header.nonce, req),
    )
    .verify_slice(&header.signature)
    .map_err(|_| SigError::Mismatch)
}

/// Remembers the signatures seen inside the time window, so each is accepted once.
///
/// The memory is not persisted; instead, requests dated before `boot` are refused, so nothing
/// signed before a restart can be replayed after it.
#[derive(Debug)]
pub struct ReplayGuard {
    boot: OffsetDateTime,
    seen: HashMap<[u8; 32], i64>,
    last_prune: i64,
}

impl ReplayGuard {
    pub fn new(boot: OffsetDateTime) -> Self {
        Self {
            boot: boot.replace_nanosecond(0).unwrap_or(boot),
            seen: HashMap::new(),
            last_prune: 0,
        }
    }

    /// Records `header`'s signature; refuses it if it was seen before or predates the boot.
    /// Call only after [`verify`] succeeded, so forged requests can't fill the memory.
    pub fn check_and_record(
        &mut self,
        header: &AuthHeader,
        now: OffsetDateTime,
    ) -> Result<(), SigError> {
        if header.timestamp < self.boot {
            return Err(SigError::BeforeBoot);
        }
        let now_s = now.unix_timestamp();
        if now_s - self.last_prune >= 10 {
            self.seen
                .retain(|_, ts| now_s - *ts <= SIGNATURE_WINDOW_SECS);
            self.last_prune = now_s;
        }
        let ts = header.timestamp.unix_timestamp();
        if self.seen.insert(header.signature, ts).is_some() {
            return Err(SigError::Replayed);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> (AccessKeyId, SigningKey) {
        let id = AccessKeyId::parse("AKIAABCDEFGHIJKLMNOP").unwrap();
        // A fixed key keeps the property tests fast; derivation is tested separately.
        (id, SigningKey([7u8; 32]))
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    const NONCE: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn derivation_is_deterministic_and_salted() {
        let a = AccessKeyId::parse("AKIAABCDEFGHIJKLMNOP").unwrap();
        let b = AccessKeyId::parse("AKIAABCDEFGHIJKLMNOQ").unwrap();
        assert_eq!(
            derive_signing_key(&a, "s3cret"),
            derive_signing_key(&a, "s3cret")
        );
        assert_ne!(
            derive_signing_key(&a, "s3cret"),
            derive_signing_key(&b, "s3cret")
        );
        assert_ne!(
            derive_signing_key(&a, "s3cret"),
            derive_signing_key(&a, "s3creT")
        );
    }

    #[test]
    fn round_trip_and_window() {
        let (id, k) = key();
        let req = RequestParts {
            method: "GET",
            path: "/v1/accounts",
            query: "a=1",
            body: b"",
        };
        let h = AuthHeader::parse(&sign(&id, &k, &req, now(), NONCE)).unwrap();
        verify(&h, &k, &req, now()).unwrap();
        verify(&h, &k, &req, now() + time::Duration::seconds(300)).unwrap();
        let err = verify(&h, &k, &req, now() + time::Duration::seconds(301)).unwrap_err();
        assert!(
            matches!(
                err,
                SigError::Expired {
                    skew_secs: -301,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            verify(&h, &k, &req, now() - time::Duration::seconds(301)),
            Err(SigError::Expired { .. })
        ));
    }

    #[test]
    fn replay_and_boot_fence() {
        let (id, k) = key();
        let req = RequestParts {
            method: "GET",
            path: "/",
            query: "",
            body: b"",
        };
        let h = AuthHeader::parse(&sign(&id, &k, &req, now(), NONCE)).unwrap();
        let mut g = ReplayGuard::new(now() - time::Duration::seconds(5));
        g.check_and_record(&h, now()).unwrap();
        assert_eq!(g.check_and_record(&h, now()), Err(SigError::Replayed));
        let mut after_restart = ReplayGuard::new(now() + time::Duration::seconds(1));
        assert_eq!(
            after_restart.check_and_record(&h, now() + time::Duration::seconds(2)),
            Err(SigError::BeforeBoot)
        );
        // Pruning forgets only what the window already refuses.
        g.check_and_record(&h, now() + time::Duration::seconds(100))
            .unwrap_err();
        g.check_and_record(
            &AuthHeader {
                signature: [1; 32],
                ..h.clone()
            },
            now() + time::Duration::seconds(400),
        )
        .unwrap();
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn malformed_headers() {
        let cases = [
            "",
            "Bearer x",
            "SPINDLE-HMAC-SHA256 ",
            "SPINDLE-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP",
            "SPINDLE-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP,Timestamp=20260101T000000Z,Nonce=00112233445566778899,Signature=zz",
            "SPINDLE-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP,Credential=AKIAABCDEFGHIJKLMNOP",
            "SPINDLE-HMAC-SHA256 Credential=nope,Timestamp=20260101T000000Z,Nonce=00112233445566778899,Signature=00",
            "SPINDLE-HMAC-SHA256 Credential=AKIAABCDEFGHIJKLMNOP,Timestamp=2026-01-01,Nonce=00112233445566778899,Signature=00",
        ];
        for c in cases {
            assert!(
                matches!(AuthHeader::parse(c), Err(SigError::Malformed { .. })),
                "{c:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The parser never panics on arbitrary input.
        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = AuthHeader::parse(&s);
        }

        /// Nor on inputs that look almost right.
        #[test]
        fn parse_near_valid_never_panics(fields in proptest::collection::vec("(Credential|Timestamp|Nonce|Signature|X)=[A-Za-z0-9Tz]{0,70}", 0..6)) {
            let _ = AuthHeader::parse(&format!("{SCHEME} {}", fields.join(",")));
        }

        /// Any change to a signed request, or a different key, is refused.
        #[test]
        fn any_change_is_refused(
            method in "(GET|POST|PUT|DELETE)",
            path in "/[a-z0-9/%._-]{0,40}",
            query in "[a-z0-9=&%]{0,30}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
            which in 0usize..7,
            flip in any::<u8>(),
        ) {
            let (id, k) = key();
            let req = RequestParts { method: &method, path: &path, query: &query, body: &body };
            let h = AuthHeader::parse(&sign(&id, &k, &req, now(), NONCE)).unwrap();
            prop_assert!(verify(&h, &k, &req, now()).is_ok());

            let mut m_method = method.clone();
            let mut m_path = path.clone();
            let mut m_query = query.clone();
            let mut m_body = body.clone();
            let mut m_header = h.clone();
            let mut m_key = k.clone();
            let bump = flip.max(1);
            match which {
                0 => m_method.push('X'),
                1 => m_path.push(char::from(b'a' + bump % 26)),
                2 => m_query.push('&'),
                3 => if m_body.is_empty() { m_body.push(bump) } else { m_body[0] ^= bump },
                4 => m_header.timestamp += time::Duration::seconds(1),
                5 => m_header.nonce = "ffeeddccbbaa99887766554433221100".into(),
                _ => m_key.0[usize::from(flip) % 32] ^= bump,
            }
            let changed = RequestParts { method: &m_method, path: &m_path, query: &m_query, body: &m_body };
            prop_assert_eq!(verify(&m_header, &m_key, &changed, now()), Err(SigError::Mismatch));
        }
    }
}
