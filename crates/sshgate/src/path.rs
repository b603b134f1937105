//! Which connect endpoint a connection starts from: one pure function over what the daemon
//! knows (the target's VPC, the account's endpoints and the VPCs each one's router reaches).
//!
//! The rule, as on AWS: a connection opens from an endpoint (an
//! `AWS::EC2::InstanceConnectEndpoint`) whose VPC is the target's or is peered with it
//! directly; an endpoint in the target's own VPC is preferred, then the first by id, so the
//! choice is stable. No endpoint, no way in: there is no implicit default, so a VPC without
//! one is closed to the bastion, and an account without any endpoint reaches nothing.

/// One endpoint as the chooser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    pub id: String,
    pub vpc: String,
    /// The VPCs its router forwards to: its own and its direct peers.
    pub reaches: Vec<String>,
}

/// Why no endpoint serves a target (the audit record's reason code is `no-endpoint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoPath {
    /// The account has no endpoint at all.
    NoEndpoints,
    /// None of the account's endpoints reaches the target's VPC.
    Unreachable {
        target_vpc: String,
        from: Vec<String>,
    },
}

impl std::fmt::Display for NoPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoPath::NoEndpoints => write!(
                f,
                "no-endpoint: the account has no AWS::EC2::InstanceConnectEndpoint; add one to \
                 a subnet of the target's VPC (or of a VPC peered with it)"
            ),
            NoPath::Unreachable { target_vpc, from } => write!(
                f,
                "no-endpoint: no InstanceConnectEndpoint reaches {target_vpc} (endpoints in {}; \
                 an endpoint reaches its own VPC and VPCs peered with it directly)",
                from.join(", ")
            ),
        }
    }
}

/// The endpoint a connection to an instance in `target_vpc` starts from.
pub fn choose<'a>(
    target_vpc: &str,
    endpoints: &'a [EndpointView],
) -> Result<&'a EndpointView, NoPath> {
    if endpoints.is_empty() {
        return Err(NoPath::NoEndpoints);
    }
    let mut sorted: Vec<&EndpointView> = endpoints.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    sorted
        .iter()
        .find(|e| e.vpc == target_vpc)
        .or_else(|| {
            sorted
                .iter()
                .find(|e| e.reaches.iter().any(|v| v == target_vpc))
        })
        .copied()
        .ok_or_else(|| {
            let mut from: Vec<String> = sorted.iter().map(|e| e.vpc.clone()).collect();
            from.dedup();
            NoPath::Unreachable {
                target_vpc: target_vpc.to_string(),
                from,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, vpc: &str, peers: &[&str]) -> EndpointView {
        let mut reaches = vec![vpc.to_string()];
        reaches.extend(peers.iter().map(|p| p.to_string()));
        EndpointView {
            id: id.into(),
            vpc: vpc.into(),
            reaches,
        }
    }

    #[test]
    fn the_path_is_an_endpoint_in_the_targets_vpc_else_one_directly_peered_else_refused() {
        let bastion = ep("eice-b", "vpc-bastion", &["vpc-dev", "vpc-prod"]);
        let dev = ep("eice-d", "vpc-dev", &["vpc-bastion"]);
        let dev2 = ep("eice-a", "vpc-dev", &[]);
        // (target VPC, endpoints, the chosen id or the refusal's text)
        let cases: &[(&str, Vec<EndpointView>, Result<&str, &str>)] = &[
            ("vpc-dev", vec![dev.clone()], Ok("eice-d")),
            (
                "vpc-dev",
                vec![bastion.clone(), dev.clone()],
                Ok("eice-d"),
            ),
            ("vpc-dev", vec![dev.clone(), dev2.clone()], Ok("eice-a")),
            ("vpc-prod", vec![bastion.clone(), dev.clone()], Ok("eice-b")),
            (
                "vpc-prod",
                vec![dev.clone()],
                Err("no-endpoint: no InstanceConnectEndpoint reaches vpc-prod (endpoints in vpc-dev;"),
            ),
            (
                "vpc-dev",
                vec![],
                Err("no-endpoint: the account has no AWS::EC2::InstanceConnectEndpoint"),
            ),
        ];
        for (target, eps, want) in cases {
            let got = choose(target, eps)
                .map(|e| e.id.as_str())
                .map_err(|e| e.to_string());
            match (want, &got) {
                (Ok(id), Ok(g)) => assert_eq!(id, g, "{target}"),
                (Err(text), Err(g)) => assert!(g.starts_with(text), "{target}: {g}"),
                _ => panic!("{target}: wanted {want:?}, got {got:?}"),
            }
        }
    }
}
