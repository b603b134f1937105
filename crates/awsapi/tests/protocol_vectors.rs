//! The reply encoders against botocore's protocol test vectors (Apache-2.0), read in place from
//! `../shared/corpus/aws-protocol-tests/output/{query,ec2,json}.json`: each case gives an
//! output shape, the parsed result and the body a server sends. The result is turned into a
//! [`Value`] named as the shape names its members, encoded, and compared with the case's
//! body (XML with whitespace between tags, self-closing tags and the response metadata
//! normalized; JSON as values). Cases using what the encoders don't model (floats, blobs,
//! maps, timestamps, unions, flattened or renamed list members, namespaces, errors, and the
//! empty XML bodies a client must also accept) are counted as
//! skipped and printed; the test says "skipped" when the corpus is absent.

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
            if s.get("flattened").is_some() || m.get("locationName").is_some() {
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
            if s.get("xmlNamespace").is_some() || s.get("union").is_some() {
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
                if m.get("xmlNamespace").is_some() || m.get("xmlAttribute").is_some() {
                    return None;
                }
                let wire = match protocol {
                    Protocol::Json11 => name.clone(),
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
