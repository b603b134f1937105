use super::*;

fn sample() -> Value {
    Value::fields([
        ("Name", Some(Value::str("a<b"))),
        ("Count", Some(Value::Int(2))),
        ("Skipped", None),
        ("On", Some(Value::Bool(true))),
        (
            "When",
            Some(Value::Time(
                OffsetDateTime::from_unix_timestamp(1_796_644_800).unwrap(),
            )),
        ),
        (
            "Tags",
            Some(Value::List(vec![Value::str("x"), Value::str("y")])),
        ),
    ])
}

#[test]
fn successes_render_in_each_protocols_shape() {
    let cases: &[(Protocol, &str)] = &[
        (
            Protocol::Query,
            "<OpResponse xmlns=\"urn:ns\"><OpResult><Name>a&lt;b</Name><Count>2</Count><On>true</On><When>2026-12-07T12:00:00.000Z</When><Tags><member>x</member><member>y</member></Tags></OpResult><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></OpResponse>",
        ),
        (
            Protocol::Ec2,
            "<OpResponse xmlns=\"urn:ns\"><requestId>rid</requestId><Name>a&lt;b</Name><Count>2</Count><On>true</On><When>2026-12-07T12:00:00.000Z</When><Tags><item>x</item><item>y</item></Tags></OpResponse>",
        ),
        (
            Protocol::Json11,
            r#"{"Count":2,"Name":"a<b","On":true,"Tags":["x","y"],"When":1796644800.0}"#,
        ),
    ];
    for (p, want) in cases {
        let r = success(*p, "urn:ns", "Op", &sample(), "rid");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, *want, "{p:?}");
    }
}

#[test]
fn errors_carry_the_codes_clients_know() {
    // (kind, protocol, code, status, body fragment)
    let cases: &[(ErrorKind, Protocol, &str, u16, &str)] = &[
        (ErrorKind::BadSignature, Protocol::Query, "SignatureDoesNotMatch", 403, "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>m &amp; n</Message></Error><RequestId>rid</RequestId></ErrorResponse>"),
        (ErrorKind::BadSignature, Protocol::Json11, "InvalidSignatureException", 400, r#"{"__type":"InvalidSignatureException","message":"m & n"}"#),
        (ErrorKind::BadSignature, Protocol::Ec2, "AuthFailure", 401, "<Response><Errors><Error><Code>AuthFailure</Code><Message>m &amp; n</Message></Error></Errors><RequestID>rid</RequestID></Response>"),
        (ErrorKind::AccessDenied, Protocol::Query, "AccessDenied", 403, "<Code>AccessDenied</Code>"),
        (ErrorKind::AccessDenied, Protocol::Json11, "AccessDeniedException", 400, "AccessDeniedException"),
        (ErrorKind::InvalidKey, Protocol::Query, "InvalidClientTokenId", 403, "InvalidClientTokenId"),
        (ErrorKind::InvalidKey, Protocol::Json11, "UnrecognizedClientException", 400, "Unrecognized"),
        (ErrorKind::Expired, Protocol::Query, "RequestExpired", 400, "RequestExpired"),
        (ErrorKind::NotImplemented, Protocol::Query, "InvalidAction", 400, "InvalidAction"),
        (ErrorKind::NotImplemented, Protocol::Json11, "UnknownOperationException", 400, "UnknownOperation"),
        (ErrorKind::Validation, Protocol::Query, "ValidationError", 400, "ValidationError"),
        (ErrorKind::Throttling, Protocol::Query, "Throttling", 400, "Throttling"),
        (ErrorKind::Internal, Protocol::Query, "InternalFailure", 500, "<Type>Receiver</Type>"),
        (ErrorKind::Service { code: "ParameterNotFound", status: 400 }, Protocol::Json11, "ParameterNotFound", 400, r#""__type":"ParameterNotFound""#),
    ];
    for (kind, p, code, status, fragment) in cases {
        assert_eq!(kind.code(*p), (*code, *status), "{kind:?} {p:?}");
        let r = error(*p, kind, "m & n", "rid");
        assert_eq!(r.status, *status);
        assert!(r.body.contains(fragment), "{kind:?} {p:?}: {}", r.body);
    }
}
