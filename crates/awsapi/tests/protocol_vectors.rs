//! The reply encoders against botocore's protocol test vectors (Apache-2.0), read in place from
//! `../shared/corpus/aws-protocol-tests/output/{query,ec2,json}.json`: each case gives an
//! output shape, the parsed result and the body a server sends. The result is turned into a
//! [`Value`] named as the shape names its members, encoded, and compared with the case's
//! body (XML with whitespace between tags, self-closing tags and the response metadata
//! normalized; JSON as values). Cases using what the encoders don't model (floats, blobs,
//! maps, timestamps, unions, flattened or renamed list members, namespaces, errors, and the
//! empty XML bodies a client must also accept) are counted as
//! skipped and printed; the test says "skipped" when the corpus is absent.
//!
//! REST-XML is checked both ways from `{input,output}/rest-xml.json`: requests decoded by
//! `restxml::Model` against each case's parameters, replies encoded against its body, headers
//! and status, and the `<ErrorResponse>` error shape.

use spindle_awsapi::reply::{success, Value};
use spindle_awsapi::Protocol;
use std::path::PathBuf;

/// `shared/corpus/aws-protocol-tests/output` beside the checkout or any folder above it (a
/// worktree sits deeper than the main checkout).
fn corpus() -> Option<PathBuf> {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/corpus/aws-protocol-tests/output"))
        .find(|d| d.is_dir())
}

/// The value of `result` as `shape` names it; `None` if the shape uses something unmodelled.
fn value(
    shapes: &serde_json::Value,
    shape: &str,
    result: &serde_json::Value,
    protocol: Protocol,
) -> Option<Value> {
    let s = &shapes[shape];
    match s["type"].as_str()? {
        "string" if s.get("enum").is_none() || result.is_string() => {
            Some(Value::Str(result.as_str()?.to_owned()))
        }
        "integer" | "long" => Some(Value::Int(result.as_i64()?)),
        "boolean" => Some(Value::Bool(result.as_bool()?)),
        "list" => {
            let m = &s["member"];
            // REST-XML's encoder names list members from the shape; the query encoders
            // don't model renamed or flattened members.
            if protocol != Protocol::RestXml
                && (s.get("flattened").is_some() || m.get("locationName").is_some())
            {
                return None;
            }
            let items = result.as_array()?;
            let member = m["shape"].as_str()?;
            items
                .iter()
                .map(|i| value(shapes, member, i, protocol))
                .collect::<Option<Vec<_>>>()
                .map(Value::List)
        }
        "structure" => {
            if s.get("union").is_some()
                || (protocol != Protocol::RestXml && s.get("xmlNamespace").is_some())
            {
                return None;
            }
            let obj = result.as_object()?;
            let members = s["members"].as_object()?;
            // Every result member must be one the shape declares.
            if obj.keys().any(|k| !members.contains_key(k)) {
                return None;
            }
            let mut fields = Vec::new();
            for (name, m) in members {
                let Some(v) = obj.get(name) else { continue };
                if m.get("xmlAttribute").is_some()
                    || (protocol != Protocol::RestXml && m.get("xmlNamespace").is_some())
                {
                    return None;
                }
                let wire = match protocol {
                    // REST-XML values are named by member; the encoder maps them to the wire.
                    Protocol::Json11 | Protocol::RestXml => name.clone(),
                    _ => m
                        .get("locationName")
                        .and_then(|l| l.as_str())
                        .unwrap_or(name)
                        .to_owned(),
                };
                fields.push((wire, value(shapes, m["shape"].as_str()?, v, protocol)?));
            }
            Some(Value::Struct(fields))
        }
        _ => None,
    }
}

/// XML with the whitespace between tags, self-closing tags, namespaces and the response
/// metadata normalized away.
fn normalize_xml(s: &str) -> String {
    let mut out = String::new();
    for part in s.split('<').skip(1) {
        let (tag, text) = part.split_once('>').unwrap_or((part, ""));
        let tag = tag.split_whitespace().next().unwrap_or("");
        if let Some(name) = tag.strip_suffix('/') {
            out.push_str(&format!("<{name}></{name}>"));
        } else {
            out.push('<');
            out.push_str(tag);
            out.push('>');
        }
        out.push_str(text.trim());
    }
    for meta in ["ResponseMetadata", "requestId"] {
        if let (Some(a), Some(b)) = (
            out.find(&format!("<{meta}>")),
            out.find(&format!("</{meta}>")),
        ) {
            out.replace_range(a..b + meta.len() + 3, "");
        }
    }
    out
}

/// A JSON 1.1 member whose value is `null` is absent to the client.
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_json::Value::Array(a) => a.into_iter().map(without_nulls).collect(),
        other => other,
    }
}

#[test]
fn replies_match_botocores_protocol_test_vectors() {
    let Some(dir) = corpus() else {
        eprintln!("skipped: protocol_vectors: ../shared/corpus/aws-protocol-tests is absent");
        return;
    };
    // (file, protocol, the least number of cases that must run)
    for (file, protocol, least) in [
        ("query.json", Protocol::Query, 3),
        ("ec2.json", Protocol::Ec2, 3),
        ("json.json", Protocol::Json11, 3),
    ] {
        let suites: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let (mut ran, mut skipped) = (Vec::new(), Vec::new());
        for suite in suites.as_array().unwrap() {
            for case in suite["cases"].as_array().unwrap() {
                let id = case["id"].as_str().unwrap_or("?").to_owned();
                let given = &case["given"];
                let op = given["name"].as_str().unwrap();
                let Some(shape) = given["output"]["shape"].as_str() else {
                    skipped.push(id);
                    continue;
                };
                if case.get("errorCode").is_some() || case["response"]["status_code"] != 200 {
                    skipped.push(id);
                    continue;
                }
                let Some(v) = value(&suite["shapes"], shape, &case["result"], protocol) else {
                    skipped.push(id);
                    continue;
                };
                let body = case["response"]["body"].as_str().unwrap_or("");
                // An empty XML body is one a client must also accept; ours is never empty.
                if protocol != Protocol::Json11 && body.trim().is_empty() {
                    skipped.push(id);
                    continue;
                }
                let ours = success(protocol, "https://example.com/", op, &v, "rid").body;
                match protocol {
                    Protocol::Json11 => {
                        let want: serde_json::Value = if body.trim().is_empty() {
                            serde_json::json!({})
                        } else {
                            serde_json::from_str(body).unwrap()
                        };
                        let got: serde_json::Value = serde_json::from_str(&ours).unwrap();
                        assert_eq!(got, without_nulls(want), "{file} {id}");
                    }
                    _ => assert_eq!(normalize_xml(&ours), normalize_xml(body), "{file} {id}"),
                }
                ran.push(id);
            }
        }
        eprintln!(
            "{file}: {} cases ran ({}); {} skipped ({})",
            ran.len(),
            ran.join(", "),
            skipped.len(),
            skipped.join(", ")
        );
        assert!(ran.len() >= least, "{file}: only {} cases ran", ran.len());
    }
}

/// Prints what ran and what was skipped, and fails if too little ran.
fn report(what: &str, ran: &[String], skipped: &[String], least: usize) {
    eprintln!(
        "{what}: {} cases ran ({}); {} skipped ({})",
        ran.len(),
        ran.join(", "),
        skipped.len(),
        skipped.join(", ")
    );
    assert!(ran.len() >= least, "{what}: only {} cases ran", ran.len());
}

/// The REST-XML request decoder against botocore's input vectors: each case's serialized
/// request (method, URI, headers, body) is routed by the operation's URI template and decoded;
/// the result must equal the case's `params`. Cases using what the decoder doesn't model
/// (timestamps, blobs, maps, unions, host prefixes, idempotency tokens) are skipped.
#[test]
fn rest_xml_requests_decode_as_botocores_input_vectors_say() {
    use spindle_awsapi::restxml::{Model, RestError};
    let Some(dir) = corpus() else {
        eprintln!("skipped: protocol_vectors: ../shared/corpus/aws-protocol-tests is absent");
        return;
    };
    let path = dir.parent().unwrap().join("input/rest-xml.json");
    let suites: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for suite in suites.as_array().unwrap() {
        let shapes = &suite["shapes"];
        // Idempotency tokens are filled in by the client when absent from `params`.
        let has_token = shapes
            .as_object()
            .unwrap()
            .values()
            .any(|s| s.to_string().contains("idempotencyToken"));
        for case in suite["cases"].as_array().unwrap() {
            let id = case["id"].as_str().unwrap_or("?").to_owned();
            let given = &case["given"];
            // Host prefixes and compressed bodies are the client's business, not a server's.
            if given.get("endpoint").is_some()
                || given.get("requestcompression").is_some()
                || has_token
            {
                skipped.push(id);
                continue;
            }
            let model = Model::single(given, shapes).unwrap();
            let ser = &case["serialized"];
            let uri = ser["uri"].as_str().unwrap();
            let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
            let query = spindle_awsapi::sigv4::query_pairs(query);
            let method = ser["method"].as_str().unwrap();
            let (op, labels) = model
                .route(method, path, &query)
                .unwrap_or_else(|| panic!("{id}: {method} {uri} matched no template"));
            let headers: Vec<(String, String)> = ser["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let body = ser["body"].as_str().unwrap_or("");
            match model.decode(op, &labels, &query, &headers, body.as_bytes()) {
                Ok(got) => {
                    assert_eq!(
                        without_empty(got),
                        without_empty(without_nulls(case["params"].clone())),
                        "{id}"
                    );
                    ran.push(id);
                }
                Err(RestError::Unsupported { .. }) => skipped.push(id),
                Err(e) => panic!("{id}: {e}"),
            }
        }
    }
    report("input/rest-xml.json", &ran, &skipped, 30);
}

/// An XML document as nested `<name>text</name>` with the prolog, comments, namespaces and
/// text beside elements dropped and CDATA read as text: what a client's parser sees.
fn xml_tree(s: &str) -> String {
    fn walk(n: roxmltree::Node<'_, '_>, out: &mut String) {
        let name = n.tag_name().name();
        out.push_str(&format!("<{name}>"));
        // Text beside child elements means nothing to a client.
        if n.children().any(|c| c.is_element()) {
            for c in n.children().filter(|c| c.is_element()) {
                walk(c, out);
            }
        } else {
            let text: String = n.children().filter_map(|c| c.text()).collect();
            out.push_str(text.trim());
        }
        out.push_str(&format!("</{name}>"));
    }
    let doc = roxmltree::Document::parse(s).unwrap_or_else(|e| panic!("{e}: {s}"));
    let mut out = String::new();
    walk(doc.root_element(), &mut out);
    out
}

/// Parameters as a server sees them: an empty list or map sends nothing.
fn without_empty(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => m
            .into_iter()
            .filter(|(_, v)| {
                !matches!(v, serde_json::Value::Array(a) if a.is_empty())
                    && !matches!(v, serde_json::Value::Object(o) if o.is_empty())
            })
            .map(|(k, v)| (k, without_empty(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_json::Value::Array(a) => a.into_iter().map(without_empty).collect(),
        other => other,
    }
}

/// The REST-XML reply encoder against botocore's output vectors: the case's result, encoded
/// as the operation's output shape, must give the case's body (normalized as above), header
/// members and status. Error cases check the `<ErrorResponse>` shape, code, message and
/// status of [`spindle_awsapi::reply::error`].
#[test]
fn rest_xml_replies_match_botocores_output_vectors() {
    use spindle_awsapi::restxml::Model;
    let Some(dir) = corpus() else {
        eprintln!("skipped: protocol_vectors: ../shared/corpus/aws-protocol-tests is absent");
        return;
    };
    let suites: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rest-xml.json")).unwrap()).unwrap();
    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for suite in suites.as_array().unwrap() {
        let shapes = &suite["shapes"];
        for case in suite["cases"].as_array().unwrap() {
            let id = case["id"].as_str().unwrap_or("?").to_owned();
            let given = &case["given"];
            let resp = &case["response"];
            let body = resp["body"].as_str().unwrap_or("");
            if let Some(code) = case["errorCode"].as_str() {
                let fields = case["error"].as_object().unwrap();
                if fields.keys().any(|k| k != "Message") {
                    skipped.push(id);
                    continue;
                }
                let message = case["errorMessage"].as_str().unwrap_or("");
                let status = resp["status_code"].as_u64().unwrap() as u16;
                let kind = spindle_awsapi::ErrorKind::Service {
                    code: Box::leak(code.to_owned().into_boxed_str()),
                    status,
                };
                let r = spindle_awsapi::reply::error(Protocol::RestXml, &kind, message, "foo-id");
                assert_eq!(r.status, status, "{id}");
                let want = normalize_xml(body);
                let got = normalize_xml(&r.body);
                assert!(
                    got.starts_with("<ErrorResponse><Error><Type>Sender</Type>"),
                    "{id}: {got}"
                );
                for part in [
                    format!("<Code>{code}</Code>"),
                    format!("<Message>{message}</Message>"),
                    "<RequestId>foo-id</RequestId>".to_owned(),
                ] {
                    assert!(
                        got.contains(&part) && want.contains(&part),
                        "{id}: {part} in {got} and {want}"
                    );
                }
                ran.push(id);
                continue;
            }
            let Some(shape) = given["output"]["shape"].as_str() else {
                skipped.push(id);
                continue;
            };
            let Some(v) = value(shapes, shape, &case["result"], Protocol::RestXml) else {
                skipped.push(id);
                continue;
            };
            let model = Model::single(given, shapes).unwrap();
            let op = model.operations.first().unwrap();
            let (status, headers, ours) = match model.encode(op, &v) {
                Ok(r) => r,
                Err(spindle_awsapi::restxml::RestError::Unsupported { .. }) => {
                    skipped.push(id);
                    continue;
                }
                Err(e) => panic!("{id}: {e}"),
            };
            // An empty body is one a client must also accept when nothing is set.
            if body.trim().is_empty() != ours.is_empty() {
                skipped.push(id);
                continue;
            }
            assert_eq!(status as u64, resp["status_code"].as_u64().unwrap(), "{id}");
            if ours.starts_with('<') {
                assert_eq!(xml_tree(&ours), xml_tree(body), "{id}");
            } else {
                // A string payload is the body itself.
                assert_eq!(ours, body, "{id}");
            }
            for (k, v) in &headers {
                let want = resp["headers"]
                    .as_object()
                    .and_then(|h| h.iter().find(|(hk, _)| hk.eq_ignore_ascii_case(k)))
                    .and_then(|(_, v)| v.as_str());
                assert_eq!(Some(v.as_str()), want, "{id}: header {k}");
            }
            ran.push(id);
        }
    }
    report("output/rest-xml.json", &ran, &skipped, 25);
}
