//! Authorization decisions: may this principal perform this action in this account?
//!
//! The caller's scope is decided before this runs (a principal acts only in its own account,
//! except the admin credential); this module answers the remaining question from the grants.

use spindle_model::action::pattern_matches;
use spindle_model::Action;

/// What a principal is allowed, and what its account forbids.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    /// The installation's admin credential: every action, deny rules don't apply (as service
    /// control policies don't apply to an organisation's management account).
    pub admin: bool,
    /// Action patterns the key or assumed role allows.
    pub allow: &'a [String],
    /// Patterns the target account's deny rules forbid; they beat any allow.
    pub deny: &'a [String],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; the reason names the rule (or the missing grant).
    Deny(String),
}

pub fn authorize(grant: Grant<'_>, action: Action) -> Decision {
    if grant.admin {
        return Decision::Allow;
    }
    if action.org_only() {
        return Decision::Deny(format!("{action} needs the admin credential"));
    }
    if let Some(rule) = grant
        .deny
        .iter()
        .find(|p| pattern_matches(p, action.as_str()))
    {
        return Decision::Deny(format!(
            "{action} is forbidden in this account by deny rule `{rule}`"
        ));
    }
    // An admin-granted action is held only by its exact name, never through a wildcard.
    let held = |p: &String| {
        if action.admin_granted() {
            p == action.as_str()
        } else {
            pattern_matches(p, action.as_str())
        }
    };
    // A principal can always ask who it is, as with sts:GetCallerIdentity.
    if action == Action::WhoAmI || grant.allow.iter().any(held) {
        Decision::Allow
    } else {
        Decision::Deny(format!(
            "{action} is not allowed by this credential's grants"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let all = vec!["*".to_string()];
        let params = vec!["param:*".to_string()];
        let none: Vec<String> = vec![];
        let deny_put = vec!["param:Put".to_string()];
        let inst_all = vec!["instance:*".to_string()];
        let seccomp = vec!["instance:UseSeccompProfile".to_string()];
        let deny_inst = vec!["instance:*".to_string()];
        let g = |admin, allow, deny| Grant { admin, allow, deny };
        let cases: Vec<(Grant<'_>, Action, bool)> = vec![
            (g(true, &none, &deny_put), Action::CreateAccount, true),
            (g(true, &none, &deny_put), Action::PutParam, true),
            (g(false, &all, &none), Action::CreateAccount, false),
            (g(false, &all, &none), Action::PutParam, true),
            (g(false, &all, &deny_put), Action::PutParam, false),
            (g(false, &all, &deny_put), Action::GetParam, true),
            (g(false, &params, &none), Action::GetParam, true),
            (g(false, &params, &none), Action::CreateKey, false),
            (g(false, &none, &none), Action::WhoAmI, true),
            (g(false, &none, &none), Action::ListParams, false),
            // Admin-granted: the exact name only, deny rules still apply, admin always.
            (g(false, &all, &none), Action::UseSeccompProfile, false),
            (g(false, &inst_all, &none), Action::UseSeccompProfile, false),
            (g(false, &seccomp, &none), Action::UseSeccompProfile, true),
            (
                g(false, &seccomp, &deny_inst),
                Action::UseSeccompProfile,
                false,
            ),
            (g(true, &none, &deny_inst), Action::UseSeccompProfile, true),
        ];
        for (grant, action, want) in cases {
            assert_eq!(
                authorize(grant, action) == Decision::Allow,
                want,
                "{grant:?} {action}"
            );
        }
    }
}
