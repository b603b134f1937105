//! SigV4 checked against the two worked examples in AWS's documentation: the IAM `ListUsers`
//! GET signed in the header (secret `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 2015-08-30
//! 12:36:00 UTC) and the presigned S3 GET of `/test.txt` (2013-05-24, 86400 s). The canonical
//! requests below are written out from those pages' description; the hashes, derived key and
//! signatures are the values the pages print.

use super::*;

const IAM_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const S3_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn at(s: &str) -> OffsetDateTime {
    parse_amz_date(s).unwrap()
}

fn iam_headers(with_auth: bool) -> Vec<(String, String)> {
    let mut v = h(&[
        ("Host", "iam.amazonaws.com"),
        (
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("X-Amz-Date", "20150830T123600Z"),
    ]);
    if with_auth {
        v.push((
            "Authorization".into(),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".into(),
        ));
    }
    v
}

fn iam(headers: &[(String, String)]) -> Request<'_> {
    Request {
        method: "GET",
        path: "/",
        query: "Action=ListUsers&Version=2010-05-08",
        headers,
        body: b"",
    }
}

#[test]
fn the_documented_header_example_builds_the_documented_canonical_request_and_signature() {
    let headers = iam_headers(true);
    let req = iam(&headers);
    let signed = parse(&req).unwrap();
    assert_eq!(signed.access_key_id, "AKIDEXAMPLE");
    assert_eq!(signed.scope.service, "iam");
    let canonical = canonical_request(
        &req,
        &signed.signed_headers,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        false,
    );
    let expected = "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
        content-type:application/x-www-form-urlencoded; charset=utf-8\n\
        host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
        content-type;host;x-amz-date\n\
        e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(canonical, expected);
    let sts = string_to_sign(&signed.amz_date, &signed.scope, &canonical);
    assert!(sts.ends_with("f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"));
    assert_eq!(
        hex::encode(signing_key(IAM_SECRET, &signed.scope)),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
    // The client side produces the same header the page shows.
    let plain = iam_headers(false);
    let auth = sign(
        &iam(&plain),
        "AKIDEXAMPLE",
        IAM_SECRET,
        &signed.scope,
        "20150830T123600Z",
        &signed.signed_headers,
    );
    assert_eq!(auth, headers[3].1);
}

#[test]
fn header_signatures_are_checked_for_time_secret_and_content() {
    let headers = iam_headers(true);
    let req = iam(&headers);
    let signed = parse(&req).unwrap();
    // (server time, secret, query, expected)
    let cases: &[(&str, &str, &str, Result<(), &str>)] = &[
        ("20150830T123600Z", IAM_SECRET, req.query, Ok(())),
        ("20150830T125000Z", IAM_SECRET, req.query, Ok(())),
        ("20150830T122100Z", IAM_SECRET, req.query, Ok(())),
        ("20150830T125101Z", IAM_SECRET, req.query, Err("skewed")),
        ("20150830T122059Z", IAM_SECRET, req.query, Err("skewed")),
        (
            "20150830T123600Z",
            "another-secret",
            req.query,
            Err("mismatch"),
        ),
        (
            "20150830T123600Z",
            IAM_SECRET,
            "Action=DeleteUser&Version=2010-05-08",
            Err("mismatch"),
        ),
    ];
    for (now, secret, query, want) in cases {
        let r = Request { query, ..req };
        let got = verify(&signed, &r, secret, at(now)).map_err(|e| match e {
            SigV4Error::Skewed { .. } => "skewed",
            SigV4Error::Mismatch => "mismatch",
            other => panic!("{now}: unexpected {other}"),
        });
        assert_eq!(&got, want, "at {now} with {secret} and {query}");
    }
}

const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

#[test]
fn the_documented_presigned_example_verifies_until_it_expires() {
    let headers = h(&[("Host", "examplebucket.s3.amazonaws.com")]);
    let req = Request {
        method: "GET",
        path: "/test.txt",
        query: PRESIGNED_QUERY,
        headers: &headers,
        body: b"",
    };
    let signed = parse(&req).unwrap();
    assert_eq!(signed.expires, Some(86400));
    assert_eq!(signed.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    let canonical = canonical_request(&req, &signed.signed_headers, UNSIGNED_PAYLOAD, true);
    assert_eq!(
        canonical,
        "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
    );
    for (now, ok) in [
        ("20130524T000000Z", true),
        ("20130524T235959Z", true),
        ("20130525T000000Z", true),
        ("20130525T000001Z", false),
        // Dated more than the allowed skew in the future.
        ("20130523T234459Z", false),
    ] {
        let got = verify(&signed, &req, S3_SECRET, at(now));
        assert_eq!(got.is_ok(), ok, "at {now}: {got:?}");
        if !ok {
            assert!(matches!(got, Err(SigV4Error::Expired { .. })), "{got:?}");
        }
    }
    let tampered = Request {
        path: "/other.txt",
        ..req
    };
    assert_eq!(
        verify(&signed, &tampered, S3_SECRET, at("20130524T000001Z")),
        Err(SigV4Error::Mismatch)
    );
}

/// A POST signed by [`sign`] with the given `x-amz-content-sha256` (if any), then checked
/// against `body`.
fn post(content_sha: Option<&str>, body: &[u8]) -> Result<(), SigV4Error> {
    let signed_body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let mut headers = h(&[
        ("host", "127.0.0.1:4566"),
        ("x-amz-date", "20261207T120000Z"),
    ]);
    let mut names = vec!["host".to_owned(), "x-amz-date".to_owned()];
    if let Some(c) = content_sha {
        headers.push(("x-amz-content-sha256".into(), c.into()));
        names.push("x-amz-content-sha256".into());
    }
    let scope = Scope {
        date: "20261207".into(),
        region: "us-east-1".into(),
        service: "sts".into(),
    };
    let mut req = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: signed_body,
    };
    let auth = sign(
        &req,
        "AKIATEST",
        "s3cr3t",
        &scope,
        "20261207T120000Z",
        &names,
    );
    let mut all = headers.clone();
    all.push(("authorization".into(), auth));
    req.headers = &all;
    req.body = body;
    let signed = parse(&req)?;
    verify(&signed, &req, "s3cr3t", at("20261207T120100Z"))
}

#[test]
fn payload_hashes_cover_the_body_unless_unsigned() {
    let body: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";
    let sha = hex::encode(Sha256::digest(body));
    assert_eq!(post(None, body), Ok(()));
    assert_eq!(post(Some(&sha), body), Ok(()));
    assert_eq!(post(Some(UNSIGNED_PAYLOAD), body), Ok(()));
    // UNSIGNED-PAYLOAD lets the body change; a signed hash doesn't.
    assert_eq!(post(Some(UNSIGNED_PAYLOAD), b"Action=Other"), Ok(()));
    assert_eq!(post(None, b"Action=Other"), Err(SigV4Error::Mismatch));
    assert!(matches!(
        post(Some(&sha), b"Action=Other"),
        Err(SigV4Error::PayloadHash { .. })
    ));
}

#[test]
fn malformed_signatures_say_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        ("", "not signed"),
        ("Basic dXNlcjpwYXNz", "must start with `AWS4-HMAC-SHA256 `"),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/2015/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00",
            "ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request, Signature=00",
            "no SignedHeaders=",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00, Extra=1",
            "unknown Authorization field `Extra`",
        ),
    ];
    for (auth, want) in cases {
        let mut headers = h(&[("host", "x"), ("x-amz-date", "20150830T123600Z")]);
        if !auth.is_empty() {
            headers.push(("authorization".into(), (*auth).into()));
        }
        let req = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let err = parse(&req).unwrap_err().to_string();
        assert!(err.contains(want), "{auth}: {err}");
    }
}

#[test]
fn paths_are_normalized_and_encoded_again() {
    for (path, want) in [
        ("/", "/"),
        ("", "/"),
        ("/a/./b/../c", "/a/c"),
        ("//a//b/", "/a/b/"),
        ("/a%20b", "/a%2520b"),
    ] {
        let req = Request {
            method: "GET",
            path,
            query: "",
            headers: &[],
            body: b"",
        };
        let c = canonical_request(&req, &[], "x", false);
        assert_eq!(c.lines().nth(1), Some(want), "{path}");
    }
}

#[test]
fn session_tokens_come_from_the_header_or_the_presigned_query_and_need_the_daemon_key() {
    let headers = h(&[("X-Amz-Security-Token", "tok")]);
    let req = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    assert_eq!(session_token(&req).as_deref(), Some("tok"));
    let req = Request {
        method: "GET",
        path: "/",
        query: "Action=GetCallerIdentity&X-Amz-Security-Token=a%2Bb",
        headers: &[],
        body: b"",
    };
    assert_eq!(session_token(&req).as_deref(), Some("a+b"));
    let req = Request { query: "", ..req };
    assert_eq!(session_token(&req), None);

    let t = session_token_for("ASIAEXAMPLE", b"daemon key");
    assert_eq!(t.len(), 64);
    assert!(session_token_matches("ASIAEXAMPLE", b"daemon key", &t));
    for (key, daemon_key, sent) in [
        ("ASIAOTHER", &b"daemon key"[..], t.as_str()),
        ("ASIAEXAMPLE", &b"other key"[..], t.as_str()),
        ("ASIAEXAMPLE", &b"daemon key"[..], &t[..63]),
        ("ASIAEXAMPLE", &b"daemon key"[..], ""),
    ] {
        assert!(
            !session_token_matches(key, daemon_key, sent),
            "{key} {sent}"
        );
    }
}
