//! The REST-XML protocol (Route 53's), driven by an operation description in botocore's own
//! model format (`operations` with their `http` method and URI template, and `shapes`), so a
//! new operation is a few lines of description, not code.
//!
//! - [`Model::route`] finds the operation by method and URI template (`{Label}` takes one path
//!   segment, `{Label+}` the rest; constant query parameters in the template must be present).
//! - [`Model::decode`] turns the request into the operation's input as a JSON document named by
//!   the model's member names: URI labels, query-string members, headers, and an XML body whose
//!   root element is the input's (`locationName` of the input, or the payload member's).
//! - [`Model::encode`] renders a reply [`Value`] (named by member names) as the output shape:
//!   an XML root element named by the output shape, lists wrapped in their member element (or
//!   flattened), header members as headers, and the operation's status code.
//!
//! Errors use the query protocol's `<ErrorResponse><Error><Type>…` shape (see
//! [`crate::reply::error`]). What the codec doesn't model (maps, blobs, timestamps in input,
//! unions, XML attributes, prefix headers) is refused as [`RestError::Unsupported`], never
//! guessed at.

use crate::ops::{Operation, RouteError, Service, OPERATIONS, SERVICES};
use crate::reply::{escape, iso8601, Reply, Value};
use serde_json::{Map, Value as Json};
use std::sync::OnceLock;

/// `(name, value)` pairs: URI labels, query parameters, headers.
pub type Pairs = Vec<(String, String)>;

/// A routed request: the operation in the table, its HTTP binding, and its URI labels.
pub type Routed = (&'static Operation, &'static OpHttp, Pairs);

/// An encoded reply: status, headers and body.
pub type Encoded = (u16, Pairs, String);

/// The model of a REST-XML service Spindle answers, by credential-scope name.
pub fn model(scope: &str) -> Option<&'static Model> {
    static ROUTE53: OnceLock<Model> = OnceLock::new();
    match scope {
        "route53" => Some(ROUTE53.get_or_init(|| {
            let doc = serde_json::from_str(include_str!("models/route53.json"))
                .expect("models/route53.json is JSON (checked by a unit test)");
            Model::from_json(&doc).expect("models/route53.json is a model (checked by a unit test)")
        })),
        _ => None,
    }
}

/// Finds a REST-XML request's operation: the service's model by method and URI template,
/// then the operation table (an operation the model knows but Spindle doesn't answer is
/// `NotImplemented`, named).
pub fn route(
    svc: &'static Service,
    method: &str,
    path: &str,
    query: &[(String, String)],
) -> Result<Routed, RouteError> {
    let not_implemented = |operation: String| RouteError::NotImplemented {
        service: svc.scope_name.to_owned(),
        operation,
    };
    let m = model(svc.scope_name).ok_or_else(|| not_implemented(format!("{method} {path}")))?;
    let (http, labels) = m
        .route(method, path, query)
        .ok_or_else(|| not_implemented(format!("{method} {path}")))?;
    let op = OPERATIONS
        .iter()
        .find(|o| o.service == svc.scope_name && o.name == http.name)
        .ok_or_else(|| not_implemented(http.name.clone()))?;
    Ok((op, http, labels))
}

/// A successful reply in the output shape of `operation` of the REST-XML service whose XML
/// namespace is `namespace`. A value the shape can't hold is a bug in its handler, answered
/// as an internal error naming the member.
pub fn success(namespace: &str, operation: &str, result: &Value, request_id: &str) -> Reply {
    let encoded = SERVICES
        .iter()
        .find(|s| s.namespace == namespace)
        .and_then(|s| model(s.scope_name))
        .and_then(|m| m.operation(operation).map(|op| (m, op)))
        .ok_or_else(|| invalid(operation, "no REST-XML model describes this operation"))
        .and_then(|(m, op)| m.encode(op, result));
    match encoded {
        Ok((status, _headers, body)) => Reply {
            status,
            content_type: "text/xml",
            body,
        },
        Err(e) => crate::reply::error(
            crate::Protocol::RestXml,
            &crate::ErrorKind::Internal,
            &format!("the reply does not fit its model: {e}"),
            request_id,
        ),
    }
}

/// Why a request couldn't be decoded or a reply encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestError {
    /// Bad input: the member (or body position) and what was expected.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// Something the model uses that this codec doesn't model.
    #[error("{path}: uses {what}, which Spindle's REST-XML codec does not model")]
    Unsupported { path: String, what: String },
}

fn invalid(path: &str, message: impl Into<String>) -> RestError {
    RestError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

fn unsupported(path: &str, what: impl Into<String>) -> RestError {
    RestError::Unsupported {
        path: path.to_owned(),
        what: what.into(),
    }
}

/// One operation's HTTP binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpHttp {
    pub name: String,
    pub method: String,
    /// The URI template, with `{Label}`, `{Label+}` and constant query parameters.
    pub request_uri: String,
    pub response_code: u16,
    pub input: Option<String>,
    /// The body's root element when the input has no payload member (`locationName` on the
    /// operation's input).
    pub input_root: Option<String>,
    pub output: Option<String>,
}

/// A service's operations and shapes, in botocore's model format.
#[derive(Debug, Clone)]
pub struct Model {
    /// The XML namespace of replies' root elements.
    pub namespace: String,
    pub operations: Vec<OpHttp>,
    shapes: Map<String, Json>,
}

impl Model {
    /// Reads a model: `{"metadata": {"xmlNamespace": …}, "operations": {…}, "shapes": {…}}`.
    pub fn from_json(doc: &Json) -> Result<Model, String> {
        let shapes = doc["shapes"]
            .as_object()
            .ok_or("the model has no `shapes` object")?
            .clone();
        let mut operations = Vec::new();
        for (name, op) in doc["operations"]
            .as_object()
            .ok_or("the model has no `operations` object")?
        {
            operations.push(Self::op_http(name, op)?);
        }
        let namespace = doc["metadata"]["xmlNamespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let m = Model {
            namespace,
            operations,
            shapes,
        };
        for op in &m.operations {
            for s in [&op.input, &op.output].into_iter().flatten() {
                if !m.shapes.contains_key(s) {
                    return Err(format!("{}: no shape `{s}`", op.name));
                }
            }
        }
        Ok(m)
    }

    /// A model of one operation (`given` of a protocol test case) over `shapes`.
    pub fn single(given: &Json, shapes: &Json) -> Result<Model, String> {
        let name = given["name"].as_str().ok_or("`given` has no name")?;
        Self::from_json(&serde_json::json!({
            "operations": { name: given },
            "shapes": shapes,
        }))
    }

    fn op_http(name: &str, op: &Json) -> Result<OpHttp, String> {
        let http = &op["http"];
        let s = |v: &Json| v.as_str().map(str::to_owned);
        Ok(OpHttp {
            name: name.to_owned(),
            method: s(&http["method"]).ok_or_else(|| format!("{name}: no http.method"))?,
            request_uri: s(&http["requestUri"])
                .ok_or_else(|| format!("{name}: no http.requestUri"))?,
            response_code: http["responseCode"].as_u64().unwrap_or(200) as u16,
            input: s(&op["input"]["shape"]),
            input_root: s(&op["input"]["locationName"]),
            output: s(&op["output"]["shape"]),
        })
    }

    /// An operation by name.
    pub fn operation(&self, name: &str) -> Option<&OpHttp> {
        self.operations.iter().find(|o| o.name == name)
    }

    /// The operation whose method and URI template match, with the URI labels' decoded values.
    pub fn route(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
    ) -> Option<(&OpHttp, Vec<(String, String)>)> {
        self.operations
            .iter()
            .filter(|o| o.method.eq_ignore_ascii_case(method))
            .find_map(|o| match_uri(&o.request_uri, path, query).map(|labels| (o, labels)))
    }

    fn shape(&self, name: &str, path: &str) -> Result<&Json, RestError> {
        self.shapes
            .get(name)
            .ok_or_else(|| invalid(path, format!("the model has no shape `{name}`")))
    }

    /// The operation's input from a request, as a JSON object named by member names.
    pub fn decode(
        &self,
        op: &OpHttp,
        labels: &[(String, String)],
        query: &[(String, String)],
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<Json, RestError> {
        let mut out = Map::new();
        let Some(input) = &op.input else {
            return Ok(Json::Object(out));
        };
        let shape = self.shape(input, input)?;
        let members = shape["members"].as_object().cloned().unwrap_or_default();
        let payload = shape["payload"].as_str();
        let mut body_members = Vec::new();
        for (name, m) in &members {
            let loc_name = m["locationName"].as_str().unwrap_or(name);
            let mshape_name = m["shape"].as_str().unwrap_or("");
            let mshape = self.shape(mshape_name, name)?;
            let mtype = mshape["type"].as_str().unwrap_or("");
            let v = match m["location"].as_str() {
                Some("uri") => match labels.iter().find(|(k, _)| k == loc_name) {
                    Some((_, v)) => Some(scalar(mtype, v, name)?),
                    None => None,
                },
                Some("querystring") => {
                    let vals: Vec<&str> = query
                        .iter()
                        .filter(|(k, _)| k == loc_name)
                        .map(|(_, v)| v.as_str())
                        .collect();
                    match mtype {
                        "map" => return Err(unsupported(name, "a query-string map")),
                        _ if vals.is_empty() => None,
                        "list" => {
                            let it =
                                self.shape(mshape["member"]["shape"].as_str().unwrap_or(""), name)?;
                            let it = it["type"].as_str().unwrap_or("");
                            Some(Json::Array(
                                vals.iter()
                                    .map(|v| scalar(it, v, name))
                                    .collect::<Result<_, _>>()?,
                            ))
                        }
                        _ => Some(scalar(mtype, vals[0], name)?),
                    }
                }
                Some("header") => {
                    let v = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(loc_name))
                        .map(|(_, v)| v.as_str());
                    match (v, mtype) {
                        (None, _) => None,
                        // An empty list sends an empty header, or none.
                        (Some(v), "list") if v.trim().is_empty() => None,
                        (Some(v), "list") => {
                            if v.contains('"') {
                                return Err(unsupported(name, "a quoted header list"));
                            }
                            let it =
                                self.shape(mshape["member"]["shape"].as_str().unwrap_or(""), name)?;
                            let it = it["type"].as_str().unwrap_or("");
                            Some(Json::Array(
                                v.split(',')
                                    .map(|p| scalar(it, p.trim(), name))
                                    .collect::<Result<_, _>>()?,
                            ))
                        }
                        (Some(v), t) => {
                            if m.get("jsonvalue").is_some() || mshape.get("jsonvalue").is_some() {
                                return Err(unsupported(name, "a JSON header value"));
                            }
                            Some(scalar(t, v, name)?)
                        }
                    }
                }
                Some(other) => return Err(unsupported(name, format!("location `{other}`"))),
                None => {
                    body_members.push(name.clone());
                    None
                }
            };
            if let Some(v) = v {
                out.insert(name.clone(), v);
            }
        }
        let text =
            std::str::from_utf8(body).map_err(|_| invalid("request body", "is not UTF-8"))?;
        if let Some(p) = payload {
            let m = &members[p];
            let pshape_name = m["shape"].as_str().unwrap_or("");
            let pshape = self.shape(pshape_name, p)?;
            match pshape["type"].as_str().unwrap_or("") {
                _ if text.trim().is_empty() => {}
                "structure" => {
                    let root = payload_root(p, m, pshape_name, pshape);
                    let v = self.parse_body(text, root, pshape_name)?;
                    out.insert(p.to_owned(), v);
                }
                "string" => {
                    out.insert(p.to_owned(), Json::String(text.to_owned()));
                }
                t => return Err(unsupported(p, format!("a {t} payload"))),
            }
        } else if !body_members.is_empty() && !text.trim().is_empty() {
            // The shape's own XML name wins over the operation's, as botocore serializes.
            let root = shape["locationName"]
                .as_str()
                .or(op.input_root.as_deref())
                .unwrap_or(input);
            if let Json::Object(fields) = self.parse_body(text, root, input)? {
                out.extend(fields);
            }
        }
        Ok(Json::Object(out))
    }

    /// The body's root element (named `root`) as shape `shape`.
    fn parse_body(&self, text: &str, root: &str, shape: &str) -> Result<Json, RestError> {
        let doc = roxmltree::Document::parse(text)
            .map_err(|e| invalid("request body", format!("not well-formed XML: {e}")))?;
        let r = doc.root_element();
        if r.tag_name().name() != root {
            return Err(invalid(
                "request body",
                format!(
                    "{}: the root element is <{}>, expected <{root}>",
                    pos(&doc, r),
                    r.tag_name().name()
                ),
            ));
        }
        self.xml_value(&doc, shape, r, root)
    }

    fn xml_value(
        &self,
        doc: &roxmltree::Document<'_>,
        shape_name: &str,
        node: roxmltree::Node<'_, '_>,
        path: &str,
    ) -> Result<Json, RestError> {
        let shape = self.shape(shape_name, path)?;
        let t = shape["type"].as_str().unwrap_or("");
        match t {
            "structure" => {
                if shape.get("union").is_some() {
                    return Err(unsupported(path, "a union"));
                }
                let members = shape["members"].as_object().cloned().unwrap_or_default();
                let mut out = Map::new();
                for child in node.children().filter(|c| c.is_element()) {
                    let tag = child.tag_name().name();
                    let found = members.iter().find(|(n, m)| {
                        m["locationName"].as_str().unwrap_or(n) == tag
                            && m.get("xmlAttribute").is_none()
                    });
                    let Some((name, m)) = found else {
                        return Err(invalid(
                            &format!("{path}.{tag}"),
                            format!(
                                "{}: not a member of {shape_name} (expected one of {})",
                                pos(doc, child),
                                members.keys().cloned().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    };
                    let mshape = m["shape"].as_str().unwrap_or("");
                    let sub = format!("{path}.{name}");
                    if self.shape(mshape, &sub)?["type"] == "map" {
                        return Err(unsupported(&sub, "a map"));
                    }
                    let flattened = m.get("flattened").is_some()
                        || self.shape(mshape, &sub)?.get("flattened").is_some();
                    if flattened {
                        let item = self.shape(mshape, &sub)?["member"]["shape"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned();
                        let v = self.xml_value(doc, &item, child, &sub)?;
                        match out
                            .entry(name.clone())
                            .or_insert_with(|| Json::Array(Vec::new()))
                        {
                            Json::Array(a) => a.push(v),
                            _ => unreachable!("a flattened member is always an array"),
                        }
                    } else {
                        if out.contains_key(name) {
                            return Err(invalid(
                                &sub,
                                format!("{}: the element appears twice", pos(doc, child)),
                            ));
                        }
                        out.insert(name.clone(), self.xml_value(doc, mshape, child, &sub)?);
                    }
                }
                for (n, m) in &members {
                    if m.get("xmlAttribute").is_some() {
                        return Err(unsupported(&format!("{path}.{n}"), "an XML attribute"));
                    }
                }
                Ok(Json::Object(out))
            }
            "list" => {
                let m = &shape["member"];
                let item = m["shape"].as_str().unwrap_or("");
                let tag = m["locationName"].as_str().unwrap_or("member");
                let mut out = Vec::new();
                for (i, child) in node.children().filter(|c| c.is_element()).enumerate() {
                    let sub = format!("{path}[{i}]");
                    if child.tag_name().name() != tag {
                        return Err(invalid(
                            &sub,
                            format!(
                                "{}: <{}> in a list of <{tag}>",
                                pos(doc, child),
                                child.tag_name().name()
                            ),
                        ));
                    }
                    out.push(self.xml_value(doc, item, child, &sub)?);
                }
                Ok(Json::Array(out))
            }
            _ => {
                if node.children().any(|c| c.is_element()) {
                    return Err(invalid(
                        path,
                        format!("{}: expected a {t} value, got elements", pos(doc, node)),
                    ));
                }
                let text: String = node
                    .children()
                    .filter_map(|c| c.text())
                    .collect::<Vec<_>>()
                    .concat();
                scalar(t, &text, path).map_err(|e| match e {
                    RestError::Invalid { path, message } => RestError::Invalid {
                        path,
                        message: format!("{}: {message}", pos(doc, node)),
                    },
                    other => other,
                })
            }
        }
    }

    /// A reply: status, headers, and the XML body of `value` (a structure named by the output
    /// shape's member names).
    pub fn encode(&self, op: &OpHttp, value: &Value) -> Result<Encoded, RestError> {
        let mut status = op.response_code;
        let mut headers = Vec::new();
        let Some(output) = &op.output else {
            return Ok((status, headers, String::new()));
        };
        let shape = self.shape(output, output)?;
        let members = shape["members"].as_object().cloned().unwrap_or_default();
        let Value::Struct(fields) = value else {
            return Err(invalid(output, "a reply must be a structure"));
        };
        let payload = shape["payload"].as_str();
        let mut body_fields = Vec::new();
        for (name, v) in fields {
            let m = members.get(name).ok_or_else(|| {
                invalid(&format!("{output}.{name}"), "not a member of the output")
            })?;
            let loc_name = m["locationName"].as_str().unwrap_or(name);
            match m["location"].as_str() {
                Some("header") => headers.push((loc_name.to_owned(), header_text(v, name)?)),
                Some("statusCode") => match v {
                    Value::Int(i) => status = *i as u16,
                    _ => return Err(invalid(name, "a status code is an integer")),
                },
                Some(other) => return Err(unsupported(name, format!("location `{other}`"))),
                None => body_fields.push((name, m, v)),
            }
        }
        if let Some(p) = payload {
            let Some((_, m, v)) = body_fields.iter().find(|(n, _, _)| n.as_str() == p) else {
                return Ok((status, headers, String::new()));
            };
            let pshape_name = m["shape"].as_str().unwrap_or("");
            let pshape = self.shape(pshape_name, p)?;
            return match (pshape["type"].as_str().unwrap_or(""), v) {
                ("structure", _) => {
                    let root = payload_root(p, m, pshape_name, pshape);
                    let ns = pshape["xmlNamespace"]["uri"].as_str();
                    let mut body = open_root(root, ns);
                    self.write_fields(pshape_name, v, &mut body, p)?;
                    body.push_str(&format!("</{root}>"));
                    Ok((status, headers, body))
                }
                ("string", Value::Str(s)) => Ok((status, headers, s.clone())),
                (t, _) => Err(unsupported(p, format!("a {t} payload"))),
            };
        }
        if body_fields.is_empty() {
            return Ok((status, headers, String::new()));
        }
        let ns = shape["xmlNamespace"]["uri"]
            .as_str()
            .or((!self.namespace.is_empty()).then_some(self.namespace.as_str()));
        let root = shape["locationName"].as_str().unwrap_or(output);
        let mut body = open_root(root, ns);
        for (name, m, v) in body_fields {
            self.write_member(name, m, v, &mut body, output)?;
        }
        body.push_str(&format!("</{root}>"));
        Ok((status, headers, body))
    }

    fn write_fields(
        &self,
        shape_name: &str,
        v: &Value,
        out: &mut String,
        path: &str,
    ) -> Result<(), RestError> {
        let shape = self.shape(shape_name, path)?;
        let Value::Struct(fields) = v else {
            return Err(invalid(
                path,
                format!("expected a structure ({shape_name})"),
            ));
        };
        let members = shape["members"].as_object().cloned().unwrap_or_default();
        for (name, v) in fields {
            let m = members.get(name).ok_or_else(|| {
                invalid(
                    &format!("{path}.{name}"),
                    format!("not a member of {shape_name}"),
                )
            })?;
            self.write_member(name, m, v, out, path)?;
        }
        Ok(())
    }

    fn write_member(
        &self,
        name: &str,
        m: &Json,
        v: &Value,
        out: &mut String,
        path: &str,
    ) -> Result<(), RestError> {
        let sub = format!("{path}.{name}");
        if m.get("xmlAttribute").is_some() {
            return Err(unsupported(&sub, "an XML attribute"));
        }
        let tag = m["locationName"].as_str().unwrap_or(name);
        let mshape = m["shape"].as_str().unwrap_or("");
        if self.shape(mshape, &sub)?["type"] == "map" {
            return Err(unsupported(&sub, "a map"));
        }
        let flattened =
            m.get("flattened").is_some() || self.shape(mshape, &sub)?.get("flattened").is_some();
        if flattened {
            let Value::List(items) = v else {
                return Err(invalid(&sub, "expected a list"));
            };
            let item = self.shape(mshape, &sub)?["member"]["shape"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            for i in items {
                out.push_str(&format!("<{tag}>"));
                self.write_value(&item, i, out, &sub)?;
                out.push_str(&format!("</{tag}>"));
            }
            return Ok(());
        }
        out.push_str(&format!("<{tag}>"));
        self.write_value(mshape, v, out, &sub)?;
        out.push_str(&format!("</{tag}>"));
        Ok(())
    }

    fn write_value(
        &self,
        shape_name: &str,
        v: &Value,
        out: &mut String,
        path: &str,
    ) -> Result<(), RestError> {
        let shape = self.shape(shape_name, path)?;
        match (shape["type"].as_str().unwrap_or(""), v) {
            ("structure", _) => self.write_fields(shape_name, v, out, path),
            ("list", Value::List(items)) => {
                let m = &shape["member"];
                let tag = m["locationName"].as_str().unwrap_or("member");
                let item = m["shape"].as_str().unwrap_or("");
                for (i, x) in items.iter().enumerate() {
                    out.push_str(&format!("<{tag}>"));
                    self.write_value(item, x, out, &format!("{path}[{i}]"))?;
                    out.push_str(&format!("</{tag}>"));
                }
                Ok(())
            }
            ("list", _) => Err(invalid(path, "expected a list")),
            ("map" | "blob", _) => Err(unsupported(path, shape["type"].to_string())),
            (_, Value::Str(s)) => {
                out.push_str(&escape(s));
                Ok(())
            }
            (_, Value::Int(i)) => {
                out.push_str(&i.to_string());
                Ok(())
            }
            (_, Value::Bool(b)) => {
                out.push_str(if *b { "true" } else { "false" });
                Ok(())
            }
            (_, Value::Time(t)) => {
                out.push_str(&iso8601(*t));
                Ok(())
            }
            (t, _) => Err(invalid(path, format!("expected a {t} value"))),
        }
    }
}

/// A structure payload's root element: the member's XML name when it has its own, else the
/// shape's, else the shape's name (botocore's models repeat a member's own name as its
/// `locationName`, which then names nothing).
fn payload_root<'m>(member: &str, m: &'m Json, shape_name: &'m str, shape: &'m Json) -> &'m str {
    match m["locationName"].as_str() {
        Some(l) if l != member => l,
        _ => shape["locationName"].as_str().unwrap_or(shape_name),
    }
}

fn open_root(root: &str, ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("<{root} xmlns=\"{}\">", escape(ns)),
        None => format!("<{root}>"),
    }
}

fn header_text(v: &Value, path: &str) -> Result<String, RestError> {
    Ok(match v {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::List(items) => items
            .iter()
            .map(|i| header_text(i, path))
            .collect::<Result<Vec<_>, _>>()?
            .join(", "),
        Value::Time(_) => return Err(unsupported(path, "a timestamp header")),
        Value::Struct(_) => return Err(invalid(path, "a header can't hold a structure")),
    })
}

/// `line L column C` of a node, for errors.
fn pos(doc: &roxmltree::Document<'_>, node: roxmltree::Node<'_, '_>) -> String {
    let p = doc.text_pos_at(node.range().start);
    format!("line {} column {}", p.row, p.col)
}

/// A scalar of botocore type `t` from its text.
fn scalar(t: &str, text: &str, path: &str) -> Result<Json, RestError> {
    match t {
        "string" => Ok(Json::String(text.to_owned())),
        "integer" | "long" | "short" | "byte" => text
            .trim()
            .parse::<i64>()
            .map(Json::from)
            .map_err(|_| invalid(path, format!("expected an integer, got `{text}`"))),
        "boolean" => match text.trim() {
            "true" => Ok(Json::Bool(true)),
            "false" => Ok(Json::Bool(false)),
            _ => Err(invalid(
                path,
                format!("expected true or false, got `{text}`"),
            )),
        },
        "float" | "double" => {
            let f: f64 = text
                .trim()
                .parse()
                .map_err(|_| invalid(path, format!("expected a number, got `{text}`")))?;
            serde_json::Number::from_f64(f)
                .map(Json::Number)
                .ok_or_else(|| unsupported(path, "a non-finite number"))
        }
        other => Err(unsupported(path, format!("a {other} value"))),
    }
}

/// `%XX` decoding of one path segment (`+` stays a plus, as in paths).
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The labels of `template` matched against `path`, or `None` if it doesn't match.
fn match_uri(
    template: &str,
    path: &str,
    query: &[(String, String)],
) -> Option<Vec<(String, String)>> {
    let (tpath, tquery) = template.split_once('?').unwrap_or((template, ""));
    for c in tquery.split('&').filter(|c| !c.is_empty()) {
        let (k, v) = c.split_once('=').map_or((c, None), |(k, v)| (k, Some(v)));
        if !query
            .iter()
            .any(|(qk, qv)| qk == k && v.is_none_or(|v| v == qv))
        {
            return None;
        }
    }
    let segs = |p: &str| -> Vec<String> {
        let p = p.strip_prefix('/').unwrap_or(p);
        let p = p.strip_suffix('/').unwrap_or(p);
        if p.is_empty() {
            Vec::new()
        } else {
            p.split('/').map(str::to_owned).collect()
        }
    };
    let t = segs(tpath);
    let p = segs(path);
    let mut labels = Vec::new();
    let mut pi = 0;
    for (ti, seg) in t.iter().enumerate() {
        if let Some(label) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if let Some(greedy) = label.strip_suffix('+') {
                let rest = t.len() - ti - 1;
                if p.len() < pi + 1 + rest {
                    return None;
                }
                let end = p.len() - rest;
                let parts: Option<Vec<String>> =
                    p[pi..end].iter().map(|s| percent_decode(s)).collect();
                labels.push((greedy.to_owned(), parts?.join("/")));
                pi = end;
            } else {
                let v = percent_decode(p.get(pi)?)?;
                if v.is_empty() {
                    return None;
                }
                labels.push((label.to_owned(), v));
                pi += 1;
            }
        } else {
            if p.get(pi)? != seg {
                return None;
            }
            pi += 1;
        }
    }
    (pi == p.len()).then_some(labels)
}

#[cfg(test)]
mod tests;
