//! `AWS::EC2::InstanceConnectEndpoint` over the runtime's connect endpoints
//! ([`spindle_runtime::Runtime::create_endpoint`]): an address in the subnet, a member of the
//! endpoint's security groups, from which the daemon's SSH bastion opens its connections. The
//! runtime's state is the record (it survives restarts); the provider keeps nothing else.
//!
//! `Ref` is the endpoint id (`eice-…`); `Fn::GetAtt` gives `Id`, `InstanceConnectEndpointArn`,
//! `VpcId`, `OwnerId`, `State` (`create-complete`), `SubnetId`, `SecurityGroupIds` and
//! `NetworkInterfaceIds` (the endpoint itself: it has no interface of its own). Everything but
//! `Tags` is create-only, as on AWS.

use std::collections::BTreeMap;
use std::sync::Arc;

use spindle_runtime::Endpoint;
use spindle_stack::{
    BoxFuture, CreateRequest, DeleteRequest, Provider, ProviderError, ProviderOutput, ReadOutput,
    ReadRequest, ResourceCx, UpdateRequest,
};
use spindle_template::Value;

use crate::network::{is_not_found, parse, read_target};
use crate::props::{observed, str_list_value, Problems, Props, Shape};
use crate::{derived_id, scoped_token, Ec2, Kind};

pub(crate) const ENDPOINT: Shape = Shape {
    type_name: Kind::InstanceConnectEndpoint.type_name(),
    used: &["SubnetId", "SecurityGroupIds", "PreserveClientIp", "Tags"],
    ignored: &["ClientToken"],
    hints: &[],
};

/// An endpoint's properties, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointSpec {
    pub subnet: String,
    pub security_groups: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl EndpointSpec {
    pub fn parse(p: &Props) -> Result<EndpointSpec, String> {
        let s = &ENDPOINT;
        let mut e = Problems::new(Kind::InstanceConnectEndpoint);
        e.unknown("", s, p);
        let subnet = e.take("", s.req_str(p, "SubnetId"));
        let security_groups = e.take("", s.str_list(p, "SecurityGroupIds"));
        let tags = e.take("", s.tags(p, "Tags"));
        match e.take("", s.opt_str(p, "PreserveClientIp")).flatten() {
            None => {}
            Some(v) if v.eq_ignore_ascii_case("false") => {}
            Some(v) if v.eq_ignore_ascii_case("true") => e.add(
                "PreserveClientIp",
                "true is not supported by Spindle: the bastion's clients are on the host's \
                 loopback, an address no VPC can route back to; leave it false (connections \
                 come from the endpoint's own address)",
            ),
            Some(v) => e.add(
                "PreserveClientIp",
                format!("expected true or false, got {v}"),
            ),
        }
        let spec = match (subnet, security_groups, tags) {
            (Some(subnet), Some(security_groups), Some(tags)) => Some(EndpointSpec {
                subnet,
                security_groups,
                tags,
            }),
            _ => None,
        };
        e.finish(spec)
    }
}

fn output(cx: &ResourceCx<'_>, ep: &Endpoint) -> ProviderOutput {
    let c = cx.context;
    let mut a: BTreeMap<String, Value> = [
        ("Id", ep.id.clone()),
        (
            "InstanceConnectEndpointArn",
            format!(
                "arn:aws:ec2:{}:{}:instance-connect-endpoint/{}",
                c.region, c.account_id, ep.id
            ),
        ),
        ("VpcId", ep.vpc_id.clone()),
        ("SubnetId", ep.subnet_id.clone()),
        ("OwnerId", c.account_id.clone()),
        ("State", "create-complete".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::str(v)))
    .collect();
    a.insert(
        "SecurityGroupIds".into(),
        str_list_value(&ep.security_groups),
    );
    a.insert(
        "NetworkInterfaceIds".into(),
        str_list_value(std::slice::from_ref(&ep.id)),
    );
    ProviderOutput {
        physical_id: ep.id.clone(),
        attributes: a,
    }
}

fn find(ec2: &Ec2, id: &str) -> Option<Endpoint> {
    ec2.runtime.endpoints().into_iter().find(|e| e.id == id)
}

/// `AWS::EC2::InstanceConnectEndpoint`.
#[derive(Debug)]
pub struct ConnectEndpointProvider {
    ec2: Arc<Ec2>,
}

impl ConnectEndpointProvider {
    pub fn new(ec2: Arc<Ec2>) -> Self {
        ConnectEndpointProvider { ec2 }
    }
}

impl Provider for ConnectEndpointProvider {
    fn create<'a>(
        &'a self,
        req: CreateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            let spec = parse(EndpointSpec::parse(&req.properties))?;
            let account = req.cx.account()?;
            let id = derived_id("eice", &req.cx);
            let ep = self
                .ec2
                .run(&scoped_token(&req.cx), move |e| {
                    let mut tags = spec.tags;
                    tags.insert(spindle_model::ACCOUNT_TAG.into(), account.to_string());
                    Ok(e.runtime
                        .create_endpoint(&id, &spec.subnet, &spec.security_groups, tags)?)
                })
                .await?;
            Ok(output(&req.cx, &ep))
        })
    }

    fn update<'a>(
        &'a self,
        req: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<ProviderOutput, ProviderError>> {
        Box::pin(async move {
            parse(EndpointSpec::parse(&req.properties))?;
            ENDPOINT.check_update(
                &req.changed,
                &["Tags"],
                "an endpoint's subnet, groups and client-IP setting are fixed",
            )?;
            let ep = find(&self.ec2, &req.physical_id).ok_or_else(|| {
                ProviderError::NotFound(format!("instance connect endpoint {}", req.physical_id))
            })?;
            Ok(output(&req.cx, &ep))
        })
    }

    fn delete<'a>(&'a self, req: DeleteRequest<'a>) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let id = req.physical_id.clone();
            self.ec2
                .run(&scoped_token(&req.cx), move |e| {
                    match e.runtime.delete_endpoint(&id) {
                        Err(err) if is_not_found(&err) => Ok(()),
                        other => Ok(other?),
                    }
                })
                .await?;
            Ok(())
        })
    }

    fn read<'a>(
        &'a self,
        req: ReadRequest<'a>,
    ) -> BoxFuture<'a, Result<Option<ReadOutput>, ProviderError>> {
        Box::pin(async move {
            let (id, key) = read_target(&req, "eice");
            let found = self.ec2.run(&key, move |e| Ok(find(e, &id))).await?;
            Ok(found.map(|ep| {
                let want = EndpointSpec::parse(&req.properties).ok();
                let groups_agree = want
                    .as_ref()
                    .is_some_and(|w| w.security_groups == ep.security_groups);
                let p = observed(
                    &req.properties,
                    vec![
                        (
                            "SubnetId",
                            Value::str(&ep.subnet_id),
                            want.as_ref().is_some_and(|w| w.subnet == ep.subnet_id),
                        ),
                        (
                            "SecurityGroupIds",
                            str_list_value(&ep.security_groups),
                            groups_agree,
                        ),
                    ],
                );
                let out = output(&req.cx, &ep);
                ReadOutput {
                    physical_id: out.physical_id,
                    properties: p,
                    attributes: out.attributes,
                }
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: serde_json::Value) -> Props {
        match Value::from_json(&v) {
            Value::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn an_endpoint_spec_reports_every_problem_with_its_path() {
        let cases: &[(serde_json::Value, &[&str])] = &[
            (
                json!({"SecurityGroupIds": "sg-1", "PreserveClientIp": true, "Subnet": "s"}),
                &[
                    "AWS::EC2::InstanceConnectEndpoint: ",
                    "property Subnet is not supported by Spindle; did you mean `SubnetId`?",
                    "SubnetId is required",
                    "SecurityGroupIds must be a list of strings",
                    "PreserveClientIp: true is not supported by Spindle",
                ],
            ),
            (
                json!({"SubnetId": "subnet-1", "PreserveClientIp": "maybe",
                       "Tags": [{"Key": "aws:x", "Value": "y"}]}),
                &[
                    "PreserveClientIp: expected true or false, got maybe",
                    "tag key aws:x: the aws: prefix is reserved",
                ],
            ),
        ];
        for (p, fragments) in cases {
            let err = EndpointSpec::parse(&props(p.clone())).unwrap_err();
            for f in *fragments {
                assert!(err.contains(f), "`{f}` not in: {err}");
            }
        }
        let ok = EndpointSpec::parse(&props(json!({
            "SubnetId": "subnet-1", "SecurityGroupIds": ["sg-1", "sg-2"],
            "PreserveClientIp": false, "ClientToken": "t",
            "Tags": [{"Key": "Name", "Value": "eice"}]
        })))
        .unwrap();
        assert_eq!(
            ok,
            EndpointSpec {
                subnet: "subnet-1".into(),
                security_groups: vec!["sg-1".into(), "sg-2".into()],
                tags: [("Name".to_string(), "eice".to_string())].into(),
            }
        );
    }
}
