//! Replies in each protocol's own shape. Handlers build one neutral [`Value`] tree, named as
//! the service's model names its members (EC2's XML names for EC2), and [`success`] renders it:
//! query XML with `<OpResult>` and lists of `<member>`, EC2 XML with lists of `<item>`, or
//! JSON 1.1. [`error`] renders an [`ErrorKind`] with the code the protocol's clients know, so
//! botocore's retry and waiter logic reads it as it reads AWS's.

use crate::ops::Protocol;
use time::OffsetDateTime;

/// A reply member.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Time(OffsetDateTime),
    List(Vec<Value>),
    Struct(Vec<(String, Value)>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    /// A structure from `(name, value)` pairs, skipping `None`s.
    pub fn fields<const N: usize>(pairs: [(&str, Option<Value>); N]) -> Value {
        Value::Struct(
            pairs
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
                .collect(),
        )
    }
}

/// A rendered reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

const XML: &str = "text/xml";
const JSON: &str = "application/x-amz-json-1.1";

/// A successful reply to `operation` carrying `result` (a [`Value::Struct`]).
pub fn success(
    protocol: Protocol,
    namespace: &str,
    operation: &str,
    result: &Value,
    request_id: &str,
) -> Reply {
    match protocol {
        Protocol::Json11 => Reply {
            status: 200,
            content_type: JSON,
            body: json(result).to_string(),
        },
        Protocol::Query => {
            let mut inner = String::new();
            xml_members(result, "member", &mut inner);
            Reply {
                status: 200,
                content_type: XML,
                body: format!(
                    "<{operation}Response xmlns=\"{namespace}\"><{operation}Result>{inner}</{operation}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{operation}Response>",
                    escape(request_id)
                ),
            }
        }
        Protocol::RestXml => crate::restxml::success(namespace, operation, result, request_id),
        Protocol::Ec2 => {
            let mut inner = String::new();
            xml_members(result, "item", &mut inner);
            Reply {
                status: 200,
                content_type: XML,
                body: format!(
                    "<{operation}Response xmlns=\"{namespace}\"><requestId>{}</requestId>{inner}</{operation}Response>",
                    escape(request_id)
                ),
            }
        }
    }
}

/// What went wrong, independent of protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// No signature at all.
    MissingAuth,
    /// An access key Spindle doesn't know (or revoked, expired, not an AWS-kind key).
    InvalidKey,
    /// A signature that doesn't verify (or a malformed one).
    BadSignature,
    /// A date outside the allowed skew, or a presigned request past its expiry.
    Expired,
    /// The grant or a deny rule refuses the action.
    AccessDenied,
    /// Bad input.
    Validation,
    /// An operation or service Spindle doesn't answer.
    NotImplemented,
    Throttling,
    Internal,
    /// A service's own code (`ParameterNotFound`, `AlreadyExistsException`, …).
    Service {
        code: &'static str,
        status: u16,
    },
}

impl ErrorKind {
    /// The code and HTTP status this protocol's clients expect.
    pub fn code(&self, protocol: Protocol) -> (&'static str, u16) {
        use ErrorKind as K;
        use Protocol as P;
        match (self, protocol) {
            // Route 53's own name for bad input; REST-XML is otherwise answered as query.
            (K::Validation, P::RestXml) => ("InvalidInput", 400),
            (K::MissingAuth, P::Query | P::RestXml) => ("MissingAuthenticationToken", 403),
            (K::MissingAuth, P::Json11) => ("MissingAuthenticationTokenException", 400),
            (K::InvalidKey, P::Query | P::RestXml) => ("InvalidClientTokenId", 403),
            (K::InvalidKey, P::Json11) => ("UnrecognizedClientException", 400),
            (K::BadSignature, P::Query | P::RestXml) => ("SignatureDoesNotMatch", 403),
            (K::BadSignature, P::Json11) => ("InvalidSignatureException", 400),
            (K::MissingAuth | K::InvalidKey | K::BadSignature, P::Ec2) => ("AuthFailure", 401),
            (K::Expired, P::Query | P::Ec2 | P::RestXml) => ("RequestExpired", 400),
            (K::Expired, P::Json11) => ("InvalidSignatureException", 400),
            (K::AccessDenied, P::Query | P::RestXml) => ("AccessDenied", 403),
            (K::AccessDenied, P::Ec2) => ("UnauthorizedOperation", 403),
            (K::AccessDenied, P::Json11) => ("AccessDeniedException", 400),
            (K::Validation, P::Query) => ("ValidationError", 400),
            (K::Validation, P::Ec2) => ("InvalidParameterValue", 400),
            (K::Validation, P::Json11) => ("ValidationException", 400),
            (K::NotImplemented, P::Query | P::Ec2 | P::RestXml) => ("InvalidAction", 400),
            (K::NotImplemented, P::Json11) => ("UnknownOperationException", 400),
            (K::Throttling, P::Query | P::RestXml) => ("Throttling", 400),
            (K::Throttling, P::Ec2) => ("RequestLimitExceeded", 503),
            (K::Throttling, P::Json11) => ("ThrottlingException", 400),
            (K::Internal, P::Ec2) => ("InternalError", 500),
            (K::Internal, _) => ("InternalFailure", 500),
            (K::Service { code, status }, _) => (code, *status),
        }
    }

    /// Whether the caller's credentials, signature or grant were refused (the audit log's
    /// `denied`).
    pub fn is_denial(&self) -> bool {
        matches!(
            self,
            ErrorKind::MissingAuth
                | ErrorKind::InvalidKey
                | ErrorKind::BadSignature
                | ErrorKind::Expired
                | ErrorKind::AccessDenied
        )
    }
}

/// An error reply in the protocol's shape.
pub fn error(protocol: Protocol, kind: &ErrorKind, message: &str, request_id: &str) -> Reply {
    let (code, status) = kind.code(protocol);
    match protocol {
        Protocol::Json11 => Reply {
            status,
            content_type: JSON,
            body: serde_json::json!({ "__type": code, "message": message }).to_string(),
        },
        // REST-XML services answer errors in the query protocol's shape.
        Protocol::Query | Protocol::RestXml => Reply {
            status,
            content_type: XML,
            body: format!(
                "<ErrorResponse><Error><Type>{}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                if status >= 500 { "Receiver" } else { "Sender" },
                escape(message),
                escape(request_id)
            ),
        },
        Protocol::Ec2 => Reply {
            status,
            content_type: XML,
            body: format!(
                "<Response><Errors><Error><Code>{code}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
                escape(message),
                escape(request_id)
            ),
        },
    }
}

/// ISO 8601 with milliseconds, as AWS's XML timestamps.
pub fn iso8601(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.to_offset(time::UtcOffset::UTC)
        .format(fmt)
        .unwrap_or_default()
}

/// The members of a structure as XML elements; a list's entries are wrapped in `item_tag`.
fn xml_members(v: &Value, item_tag: &str, out: &mut String) {
    match v {
        Value::Struct(fields) => {
            for (k, v) in fields {
                out.push('<');
                out.push_str(k);
                out.push('>');
                xml_members(v, item_tag, out);
                out.push_str("</");
                out.push_str(k);
                out.push('>');
            }
        }
        Value::List(items) => {
            for i in items {
                out.push_str(&format!("<{item_tag}>"));
                xml_members(i, item_tag, out);
                out.push_str(&format!("</{item_tag}>"));
            }
        }
        Value::Str(s) => out.push_str(&escape(s)),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Time(t) => out.push_str(&iso8601(*t)),
    }
}

fn json(v: &Value) -> serde_json::Value {
    match v {
        Value::Str(s) => s.clone().into(),
        Value::Int(i) => (*i).into(),
        Value::Bool(b) => (*b).into(),
        // JSON 1.1 timestamps are epoch seconds.
        Value::Time(t) => serde_json::Number::from_f64(t.unix_timestamp_nanos() as f64 / 1e9)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Value::List(items) => items.iter().map(json).collect(),
        Value::Struct(fields) => fields
            .iter()
            .map(|(k, v)| (k.clone(), json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// XML text escaping.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            '\n' => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
