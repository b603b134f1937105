//! REST-XML requests (Route 53's protocol): routed by method and URI template and decoded by
//! the service's model in `spindle_awsapi::restxml`, into the same JSON input the JSON
//! services' handlers read.

use super::{route_error, AwsError};
use spindle_awsapi::{restxml, Operation, Protocol, Service};

type Routed = (&'static Service, &'static Operation, serde_json::Value);

/// The operation and input of a request to a REST-XML service; `None` for other services.
pub(super) fn decode(
    scope: &str,
    parts: &axum::http::request::Parts,
    query: &[(String, String)],
    headers: &[(String, String)],
    body: &[u8],
) -> Option<Result<Routed, AwsError>> {
    let svc = spindle_awsapi::ops::service(scope).filter(|s| s.protocol == Protocol::RestXml)?;
    let model = restxml::model(svc.scope_name)?;
    let routed = restxml::route(svc, parts.method.as_str(), parts.uri.path(), query)
        .map_err(route_error)
        .and_then(|(op, http, labels)| {
            model
                .decode(http, &labels, query, headers, body)
                .map(|json| (svc, op, json))
                .map_err(|e| AwsError::validation(e.to_string()))
        });
    Some(routed)
}
