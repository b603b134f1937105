//! The closed set of API actions. Policies (role grants, key scopes, deny rules) match these
//! names, written `service:Action`, with `*` as a wildcard.

use serde::{Deserialize, Serialize};

macro_rules! actions {
    ($($variant:ident => $name:literal, $org:literal, $mutating:literal;)*) => {
        /// One API action. `org_only` actions need the installation's admin credential;
        /// `mutating` ones change state (and are always audited).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Action { $($variant,)* }

        impl Action {
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }

            pub fn org_only(self) -> bool {
                match self { $(Action::$variant => $org,)* }
            }

            pub fn mutating(self) -> bool {
                match self { $(Action::$variant => $mutating,)* }
            }

            pub fn parse(s: &str) -> Option<Action> {
                match s { $($name => Some(Action::$variant),)* _ => None }
            }
        }
    };
}

actions! {
    WhoAmI => "sts:GetCallerIdentity", false, false;
    AssumeRole => "sts:AssumeRole", false, true;
    ListAccounts => "account:List", false, false;
    DescribeAccount => "account:Describe", false, false;
    CreateAccount => "account:Create", true, true;
    DeleteAccount => "account:Delete", true, true;
    ListKeys => "key:List", false, false;
    CreateKey => "key:Create", false, true;
    RevokeKey => "key:Revoke", false, true;
    ListRoles => "role:List", false, false;
    DescribeRole => "role:Describe", false, false;
    CreateRole => "role:Create", false, true;
    DeleteRole => "role:Delete", false, true;
    ListDenyRules => "deny:List", false, false;
    AddDenyRule => "deny:Add", true, true;
    RemoveDenyRule => "deny:Remove", true, true;
    ReadAudit => "audit:Read", false, false;
    ListParams => "param:List", false, false;
    GetParam => "param:Get", false, false;
    PutParam => "param:Put", false, true;
    DeleteParam => "param:Delete", false, true;
    ValidateTemplate => "template:Validate", false, false;
    ListStacks => "stack:List", false, false;
    DescribeStack => "stack:Describe", false, false;
    DeployStack => "stack:Deploy", false, true;
    DeleteStack => "stack:Delete", false, true;
    DetectStackDrift => "stack:DetectDrift", false, false;
    ContinueRollback => "stack:ContinueRollback", false, true;
    UpdateTerminationProtection => "stack:UpdateTerminationProtection", false, true;
    SetStackPolicy => "stack:SetStackPolicy", false, true;
    CreateChangeSet => "stack:CreateChangeSet", false, true;
    DescribeChangeSet => "stack:DescribeChangeSet", false, false;
    ListChangeSets => "stack:ListChangeSets", false, false;
    DeleteChangeSet => "stack:DeleteChangeSet", false, true;
    ExecuteChangeSet => "stack:ExecuteChangeSet", false, true;
    ListExports => "stack:ListExports", false, false;
    ImportImage => "image:Import", false, true;
    ListImages => "image:List", false, false;
    DescribeImage => "image:Describe", false, false;
    TagImage => "image:Tag", false, true;
    RemoveImage => "image:Remove", false, true;
    ExportImage => "image:Export", false, true;
    ListInstances => "instance:List", false, false;
    DescribeInstance => "instance:Describe", false, false;
    InstanceConsole => "instance:GetConsoleOutput", false, false;
    ExecInstance => "instance:Exec", false, true;
    StopInstance => "instance:Stop", false, true;
    StartInstance => "instance:Start", false, true;
    TerminateInstance => "instance:Terminate", false, true;
    UseSeccompProfile => "instance:UseSeccompProfile", false, false;
    ListDevboxes => "devbox:List", false, false;
    DescribeDevbox => "devbox:Describe", false, false;
    PutDevbox => "devbox:Up", false, true;
    DeleteDevbox => "devbox:Down", false, true;
    ExecDevbox => "devbox:Exec", false, true;
    AttachDevbox => "devbox:Attach", true, true;
    ListAutoScalingGroups => "asg:List", false, false;
    DescribeAutoScalingGroup => "asg:Describe", false, false;
    DescribeScalingActivities => "asg:DescribeActivities", false, false;
    SetDesiredCapacity => "asg:SetDesiredCapacity", false, true;
    StartInstanceRefresh => "asg:StartInstanceRefresh", false, true;
    CompleteLifecycleAction => "asg:CompleteLifecycleAction", false, true;
    ReadDoctor => "doctor:Read", true, false;
    FixDoctor => "doctor:Fix", true, true;
    ListLoadBalancers => "elasticloadbalancing:DescribeLoadBalancers", false, false;
    DescribeLoadBalancer => "elasticloadbalancing:DescribeLoadBalancer", false, false;
    DescribeTargetHealth => "elasticloadbalancing:DescribeTargetHealth", false, false;
    ReadLoadBalancerMetrics => "elasticloadbalancing:GetMetrics", false, false;
    UploadPackage => "pkg:Upload", false, true;
    ListRepos => "repo:List", false, false;
    CreateRepo => "repo:Create", false, true;
    DescribeRepo => "repo:Describe", false, false;
    DropRepo => "repo:Drop", false, true;
    AddToRepo => "repo:Add", false, true;
    RemoveFromRepo => "repo:Remove", false, true;
    CopyPackages => "repo:Copy", false, true;
    MovePackages => "repo:Move", false, true;
    SearchRepo => "repo:Search", false, false;
    ListSnapshots => "snapshot:List", false, false;
    CreateSnapshot => "snapshot:Create", false, true;
    DescribeSnapshot => "snapshot:Describe", false, false;
    DiffSnapshots => "snapshot:Diff", false, false;
    DropSnapshot => "snapshot:Drop", false, true;
    ListPublications => "publish:List", false, false;
    CreatePublication => "publish:Create", false, true;
    UpdatePublication => "publish:Update", false, true;
    SwitchPublication => "publish:Switch", false, true;
    DropPublication => "publish:Drop", false, true;
    ListSigningKeys => "signkey:List", false, false;
    CreateSigningKey => "signkey:Create", false, true;
    ExportSigningKey => "signkey:Export", false, false;
    DeleteSigningKey => "signkey:Delete", false, true;
    CleanupDb => "db:Cleanup", true, true;
    ListMirrors => "mirror:List", false, false;
    CreateMirror => "mirror:Create", false, true;
    DescribeMirror => "mirror:Describe", false, false;
    UpdateMirror => "mirror:Update", false, true;
    DropMirror => "mirror:Drop", false, true;
    CreateGitRepository => "git:CreateRepository", false, true;
    ListGitRepositories => "git:ListRepositories", false, false;
    DeleteGitRepository => "git:DeleteRepository", false, true;
    GitPull => "git:Pull", false, false;
    GitPush => "git:Push", false, true;
    ListPipelineRuns => "pipeline:ListRuns", false, false;
    DescribePipelineRun => "pipeline:DescribeRun", false, false;
    DispatchPipelineRun => "pipeline:Dispatch", false, true;
    CancelPipelineRun => "pipeline:CancelRun", false, true;
    RerunPipelineRun => "pipeline:RerunRun", false, true;
    CreateUiSession => "ui:CreateSession", false, true;
    SignSshCertificate => "bastion:SignCertificate", false, true;
    DescribeBastion => "bastion:Describe", false, false;
    BastionConnect => "bastion:Connect", false, false;
    BastionForwardAgent => "bastion:ForwardAgent", false, false;
    SignSshHostCertificate => "bastion:SignHostCertificate", false, true;
    ListSshSessions => "bastion:ListSessions", false, false;
    KillSshSession => "bastion:KillSession", false, true;
    ListSshKeys => "bastion:ListKeys", false, false;
    AddSshKey => "bastion:AddKey", false, true;
    RemoveSshKey => "bastion:RemoveKey", false, true;
    UpdateBastionSettings => "bastion:UpdateSettings", false, true;
    ListHostedZones => "dns:ListHostedZones", false, false;
    ListRecordSets => "dns:ListResourceRecordSets", false, false;
    TestDnsAnswer => "dns:TestDNSAnswer", false, false;
    ListSecrets => "secret:List", false, false;
    DescribeSecret => "secret:Describe", false, false;
    GetSecretValue => "secret:GetValue", false, false;
    PutSecretValue => "secret:PutValue", false, true;
    RotateSecret => "secret:Rotate", false, true;
    ListDbInstances => "rds:DescribeDBInstances", false, false;
    ListDbSnapshots => "rds:DescribeDBSnapshots", false, false;
    CreateDbSnapshot => "rds:CreateDBSnapshot", false, true;
    DeleteDbSnapshot => "rds:DeleteDBSnapshot", false, true;
    ChangeRecordSets => "dns:ChangeResourceRecordSets", false, true;
}

impl Action {
    /// Actions a credential holds only by an allow pattern naming the action exactly (`*`
    /// and `service:*` don't carry them), which only the installation's admin credential can
    /// put in a key's or role's grants. They are no API call of their own: a provider
    /// checks them when a template asks for something wider than the default, such as a
    /// wider seccomp profile for an instance. Deny rules apply to them as to any action.
    pub const ADMIN_GRANTED: &'static [Action] = &[Action::UseSeccompProfile];

    pub fn admin_granted(self) -> bool {
        Action::ADMIN_GRANTED.contains(&self)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `pattern` (`service:Action`, `service:*`, `*`, or a glob with `*` anywhere)
/// matches `action`. Matching is case-sensitive, as in IAM's action names it is not, but
/// Spindle's names have one spelling and a typo should not silently widen a grant.
pub fn pattern_matches(pattern: &str, action: &str) -> bool {
    glob(pattern.as_bytes(), action.as_bytes())
}

/// Every service name an action can start with, including those whose actions arrive with
/// later subsystems, so a grant such as `stack:*` can be written before stacks exist.
pub const SERVICES: &[&str] = &[
    "sts", "account", "key", "role", "deny", "audit", "param", "stack", "template", "instance",
    "image", "vpc", "lb", "asg", "repo", "snapshot", "publish", "mirror", "pkg", "bake", "devbox",
    "pipeline", "dns", "bastion", "doctor", "signkey", "db", "git", "secret", "rds",
];

/// Whether `pattern` is `*` or names a known service (its part before `:` matches one): used to
/// reject typos in grants, which would otherwise silently grant nothing.
pub fn pattern_is_known(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let Some((service, action)) = pattern.split_once(':') else {
        return false;
    };
    !action.is_empty() && SERVICES.iter().any(|s| pattern_matches(service, s))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with backtracking to the last star: linear in practice.
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == s[si] {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let cases = [
            ("*", "param:Get", true),
            ("param:*", "param:Get", true),
            ("param:*", "params:Get", false),
            ("param:Get", "param:Get", true),
            ("param:Get", "param:GetX", false),
            ("*:List", "key:List", true),
            ("p*m:G*", "param:Get", true),
            ("", "param:Get", false),
        ];
        for (p, a, want) in cases {
            assert_eq!(pattern_matches(p, a), want, "{p} ~ {a}");
        }
    }

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(*a));
        }
        assert!(pattern_is_known("stack:*"));
        assert!(pattern_is_known("*"));
        assert!(!pattern_is_known("nosuch:*"));
        assert!(!pattern_is_known("param"));
        assert!(Action::UseSeccompProfile.admin_granted());
        assert!(!Action::TerminateInstance.admin_granted());
    }
}
