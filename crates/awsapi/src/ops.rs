//! THE operation table: every AWS operation Spindle answers, with its service, protocol and the
//! Spindle action whose grant it needs. The router, the authorizer, the audit log and the
//! generated docs table (`docs/aws-operations.md`) all read it, so they can't disagree.

use spindle_model::Action;

/// The wire protocols of the services answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `awsquery`: form-encoded `Action=…&Version=…`, XML replies with `<OpResult>` and
    /// `<ErrorResponse>`.
    Query,
    /// EC2's variant of the query protocol: no `<OpResult>` wrapper, lists of `<item>`,
    /// `<Response><Errors>` for errors.
    Ec2,
    /// `application/x-amz-json-1.1` with `X-Amz-Target: Prefix.Operation`; errors carry `__type`.
    Json11,
    /// REST-XML (Route 53): routed by method and URI template, input in the URI, query string,
    /// headers and an XML body, replies named by the output shape (see [`crate::restxml`]).
    RestXml,
}

/// A service: the name in the credential scope, its protocol, and its XML namespace (query)
/// or `X-Amz-Target` prefix (JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    pub scope_name: &'static str,
    pub protocol: Protocol,
    /// XML namespace (query, ec2) or target prefix (JSON).
    pub namespace: &'static str,
}

pub const SERVICES: &[Service] = &[
    Service {
        scope_name: "sts",
        protocol: Protocol::Query,
        namespace: "https://sts.amazonaws.com/doc/2011-06-15/",
    },
    Service {
        scope_name: "ssm",
        protocol: Protocol::Json11,
        namespace: "AmazonSSM",
    },
    Service {
        scope_name: "cloudformation",
        protocol: Protocol::Query,
        namespace: "http://cloudformation.amazonaws.com/doc/2010-05-15/",
    },
    Service {
        scope_name: "autoscaling",
        protocol: Protocol::Query,
        namespace: "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    },
    Service {
        scope_name: "elasticloadbalancing",
        protocol: Protocol::Query,
        namespace: "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
    },
    Service {
        scope_name: "ec2",
        protocol: Protocol::Ec2,
        namespace: "http://ec2.amazonaws.com/doc/2016-11-15/",
    },
    Service {
        scope_name: "secretsmanager",
        protocol: Protocol::Json11,
        namespace: "secretsmanager",
    },
    Service {
        scope_name: "route53",
        protocol: Protocol::RestXml,
        namespace: "https://route53.amazonaws.com/doc/2013-04-01/",
    },
];

/// One implemented operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub service: &'static str,
    pub name: &'static str,
    /// The Spindle action whose grant (and deny rules) decide the call.
    pub action: Action,
}

macro_rules! operations {
    ($($service:literal $name:ident => $action:ident;)*) => {
        pub const OPERATIONS: &[Operation] = &[
            $(Operation { service: $service, name: stringify!($name), action: Action::$action },)*
        ];
    };
}

operations! {
    "sts" GetCallerIdentity => WhoAmI;
    "sts" AssumeRole => AssumeRole;
    "ssm" GetParameter => GetParam;
    "ssm" GetParameters => GetParam;
    "ssm" GetParametersByPath => ListParams;
    "ssm" PutParameter => PutParam;
    "ssm" DeleteParameter => DeleteParam;
    "cloudformation" ValidateTemplate => ValidateTemplate;
    "cloudformation" DescribeStacks => DescribeStack;
    "cloudformation" ListStacks => ListStacks;
    "cloudformation" CreateStack => DeployStack;
    "cloudformation" UpdateStack => DeployStack;
    "cloudformation" DeleteStack => DeleteStack;
    "cloudformation" CreateChangeSet => CreateChangeSet;
    "cloudformation" DescribeChangeSet => DescribeChangeSet;
    "cloudformation" ExecuteChangeSet => ExecuteChangeSet;
    "cloudformation" DeleteChangeSet => DeleteChangeSet;
    "cloudformation" ListChangeSets => ListChangeSets;
    "cloudformation" GetTemplateSummary => DescribeStack;
    "cloudformation" DescribeStackEvents => DescribeStack;
    "cloudformation" DescribeStackResources => DescribeStack;
    "cloudformation" ListStackResources => DescribeStack;
    "cloudformation" ListExports => ListExports;
    "cloudformation" UpdateTerminationProtection => UpdateTerminationProtection;
    "elasticloadbalancing" DescribeLoadBalancers => ListLoadBalancers;
    "elasticloadbalancing" DescribeListeners => DescribeLoadBalancer;
    "elasticloadbalancing" DescribeTargetGroups => DescribeLoadBalancer;
    "elasticloadbalancing" DescribeTargetHealth => DescribeTargetHealth;
    "autoscaling" DescribeAutoScalingGroups => ListAutoScalingGroups;
    "autoscaling" DescribeScalingActivities => DescribeScalingActivities;
    "autoscaling" SetDesiredCapacity => SetDesiredCapacity;
    "autoscaling" StartInstanceRefresh => StartInstanceRefresh;
    "autoscaling" DescribeInstanceRefreshes => DescribeAutoScalingGroup;
    "autoscaling" CompleteLifecycleAction => CompleteLifecycleAction;
    "ec2" DescribeInstances => ListInstances;
    "ec2" StopInstances => StopInstance;
    "ec2" StartInstances => StartInstance;
    "ec2" TerminateInstances => TerminateInstance;
    "ec2" DescribeVpcs => ListInstances;
    "ec2" DescribeSubnets => ListInstances;
    "ec2" DescribeSecurityGroups => ListInstances;
    "ec2" DescribeImages => ListImages;
    "secretsmanager" GetSecretValue => GetSecretValue;
    "secretsmanager" DescribeSecret => DescribeSecret;
    "secretsmanager" ListSecrets => ListSecrets;
    "secretsmanager" CreateSecret => PutSecretValue;
    "secretsmanager" PutSecretValue => PutSecretValue;
    "route53" ListHostedZones => ListHostedZones;
    "route53" ListHostedZonesByName => ListHostedZones;
    "route53" GetHostedZone => ListHostedZones;
    "route53" ListResourceRecordSets => ListRecordSets;
    "route53" ChangeResourceRecordSets => ChangeRecordSets;
    "route53" GetChange => ListRecordSets;
    "cloudformation" GetTemplate => DescribeStack;
    "cloudformation" DetectStackDrift => DetectStackDrift;
    "cloudformation" DescribeStackDriftDetectionStatus => DescribeStack;
    "cloudformation" DescribeStackResourceDrifts => DescribeStack;
    "cloudformation" DetectStackResourceDrift => DetectStackDrift;
}

/// The service a credential scope names, if Spindle answers it.
pub fn service(scope_name: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|s| s.scope_name == scope_name)
}

/// Where a request's operation name came from, to check it against its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The credential scope names a service Spindle doesn't answer.
    UnknownService { service: String },
    /// No `X-Amz-Target` (JSON) or `Action` (query) in the request.
    NoOperation,
    /// A JSON target whose prefix is another service's.
    WrongTarget { target: String, expected: String },
    /// The operation exists in AWS, perhaps, but not here.
    NotImplemented { service: String, operation: String },
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteError::UnknownService { service } => write!(
                f,
                "service `{service}` (from the credential scope) is not implemented by Spindle; it answers {}",
                SERVICES.iter().map(|s| s.scope_name).collect::<Vec<_>>().join(", ")
            ),
            RouteError::NoOperation => f.write_str(
                "no operation: expected an X-Amz-Target header (JSON protocols) or an Action parameter (query protocols)",
            ),
            RouteError::WrongTarget { target, expected } => {
                write!(f, "X-Amz-Target `{target}` is not an operation of this service (expected `{expected}.Operation`)")
            }
            RouteError::NotImplemented { service, operation } => {
                write!(f, "{service}:{operation} is not implemented by Spindle")
            }
        }
    }
}

impl std::error::Error for RouteError {}

/// Finds the operation: the service from the credential scope, then `X-Amz-Target` for JSON
/// services, else the `Action` parameter (form body first, then the query string).
pub fn route(
    scope_service: &str,
    target: Option<&str>,
    params: &[(String, String)],
) -> Result<(&'static Service, &'static Operation), RouteError> {
    let svc = service(scope_service).ok_or_else(|| RouteError::UnknownService {
        service: scope_service.to_owned(),
    })?;
    let name = match (svc.protocol, target) {
        (Protocol::Json11, Some(t)) => match t.split_once('.') {
            Some((prefix, op)) if prefix == svc.namespace => op.to_owned(),
            _ => {
                return Err(RouteError::WrongTarget {
                    target: t.to_owned(),
                    expected: svc.namespace.to_owned(),
                })
            }
        },
        (Protocol::Json11, None) => return Err(RouteError::NoOperation),
        _ => params
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
            .ok_or(RouteError::NoOperation)?,
    };
    OPERATIONS
        .iter()
        .find(|o| o.service == svc.scope_name && o.name == name)
        .map(|o| (svc, o))
        .ok_or(RouteError::NotImplemented {
            service: svc.scope_name.to_owned(),
            operation: name,
        })
}

/// The supported-operations table for the docs, as Markdown.
pub fn markdown_table() -> String {
    let mut s = String::from(
        "| service | operation | protocol | Spindle grant needed |\n|---|---|---|---|\n",
    );
    for o in OPERATIONS {
        let proto = match service(o.service).map(|s| s.protocol) {
            Some(Protocol::Query) => "query",
            Some(Protocol::Ec2) => "ec2",
            Some(Protocol::Json11) => "json 1.1",
            Some(Protocol::RestXml) => "rest-xml",
            None => "?",
        };
        s.push_str(&format!(
            "| {} | {} | {proto} | `{}` |\n",
            o.service,
            o.name,
            o.action.as_str()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    /// (scope service, X-Amz-Target, parameters, operation or error fragment)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        &'a [(&'a str, &'a str)],
        Result<&'a str, &'a str>,
    );

    #[test]
    fn routes_by_scope_then_target_then_action() {
        let cases: &[Case] = &[
            (
                "sts",
                None,
                &[("Action", "GetCallerIdentity")],
                Ok("GetCallerIdentity"),
            ),
            (
                "ssm",
                Some("AmazonSSM.GetParameter"),
                &[],
                Ok("GetParameter"),
            ),
            // A JSON service ignores an Action parameter: the target decides.
            (
                "ssm",
                Some("AmazonSSM.PutParameter"),
                &[("Action", "GetParameter")],
                Ok("PutParameter"),
            ),
            (
                "ssm",
                None,
                &[("Action", "GetParameter")],
                Err("no operation"),
            ),
            (
                "ssm",
                Some("AWSCertificateManager.ListCertificates"),
                &[],
                Err("is not an operation of this service"),
            ),
            (
                "cloudformation",
                None,
                &[("Action", "DescribeStacks")],
                Ok("DescribeStacks"),
            ),
            (
                "cloudformation",
                None,
                &[("Action", "CreateStackSet")],
                Err("cloudformation:CreateStackSet is not implemented by Spindle"),
            ),
            ("cloudformation", None, &[], Err("no operation")),
            (
                "s3",
                None,
                &[("Action", "ListBuckets")],
                Err("service `s3`"),
            ),
        ];
        for (svc, target, params, want) in cases {
            let got = route(svc, *target, &p(params))
                .map(|(_, o)| o.name)
                .map_err(|e| e.to_string());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, *w),
                (Err(g), Err(w)) => assert!(g.contains(w), "{svc}: {g}"),
                (g, w) => panic!("{svc} {target:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn every_operation_belongs_to_a_service_and_appears_once() {
        for (i, o) in OPERATIONS.iter().enumerate() {
            assert!(service(o.service).is_some(), "{}", o.name);
            assert!(
                !OPERATIONS[..i]
                    .iter()
                    .any(|x| x.service == o.service && x.name == o.name),
                "{}:{} twice",
                o.service,
                o.name
            );
        }
    }
}
