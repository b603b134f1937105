//! Shared daemon state and the two questions every handler asks first: which account does this
//! call act in, and may the caller do this action there?

use crate::api::ApiError;
use crate::auth::{Call, ReplayState};
use crate::metrics::Metrics;
use spindle_auth::{authorize, Decision, Grant};
use spindle_model::api::Account;
use spindle_model::ids::AccountRef;
use spindle_store::Store;
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Clone)]
pub struct App {
    pub store: Arc<Store>,
    pub replay: Arc<ReplayState>,
    pub metrics: Arc<Metrics>,
    pub stacks: Arc<crate::stacks::Stacks>,
    /// Instances and networks; `None` when off (not root, or `--no-runtime`).
    pub runtime: Option<Arc<spindle_runtime::Runtime>>,
    /// The EC2 providers' state (launch templates), with the runtime.
    pub ec2: Option<Arc<spindle_providers::Ec2>>,
    /// The load balancers (`AWS::ElasticLoadBalancingV2::*` resources).
    pub elb: Arc<spindle_providers::Elb>,
    /// Auto scaling groups over the runtime; `None` when the runtime is off.
    pub autoscaling: Option<Arc<spindle_providers::AutoScaling>>,
    /// Apt repositories, snapshots and publications.
    pub apt: Arc<crate::apt::AptService>,
    /// Hosted git repositories and the pipeline runs their pushes start.
    pub git: Arc<crate::git::GitService>,
    /// Seals the secrets of AWS-compatible keys (`aws-secrets.key`); set by `Server::bind`.
    pub aws_secrets: Option<Arc<crate::sealer::Sealer>>,
    /// The AWS-compatible endpoint's URL, when it listens; set by `Server::bind`.
    pub aws_endpoint: Option<String>,
    /// The SSH bastion: accounts' CAs and the jump host.
    pub bastion: Arc<crate::bastion::Bastion>,
    /// The hosted zones (`AWS::Route53::*` resources), served by the DNS server.
    pub route53: Arc<spindle_providers::Route53>,
}

impl App {
    // Each argument is one of the daemon's parts or settings; a struct would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<Store>,
        boot: OffsetDateTime,
        endpoint: &str,
        runtime: Option<Arc<spindle_runtime::Runtime>>,
        ec2: Option<Arc<spindle_providers::Ec2>>,
        elb: Arc<spindle_providers::Elb>,
        apt: Arc<crate::apt::AptService>,
        asg_scale_in_seconds: Option<u64>,
        route53: Arc<spindle_providers::Route53>,
    ) -> Self {
        if let Some(e) = &ec2 {
            let store = store.clone();
            e.set_image_owners(Arc::new(move |account, image| {
                store
                    .account_images(account)
                    .is_ok_and(|owned| owned.iter().any(|i| i == image.as_str()))
            }));
        }
        // Groups are kept in the store, so a restarted daemon finds them.
        let autoscaling = ec2.as_ref().map(|e| {
            let doc = crate::engine_state::SqlDoc::arc(&store, crate::engine_state::AUTOSCALING);
            let mut rules = spindle_autoscale::Rules::default();
            if let Some(s) = asg_scale_in_seconds {
                rules.scale_in_seconds = s;
            }
            spindle_providers::AutoScaling::open_with(e.clone(), rules.clone(), doc).unwrap_or_else(
                |err| {
                    tracing::error!(error = %err, "auto scaling state unreadable; starting without groups");
                    spindle_providers::AutoScaling::new(e.clone(), rules)
                },
            )
        });
        let stacks = Arc::new(
            crate::stacks::Stacks::new(store.clone(), endpoint, ec2.clone(), elb.clone())
                .with_autoscaling(autoscaling.clone())
                .with_route53(route53.clone())
                .with_rds(crate::rds::open(&store, ec2.as_ref())),
        );
        let bastion = Arc::new(crate::bastion::Bastion::open(
            store.clone(),
            stacks.sealer.clone(),
            runtime.clone(),
        ));
        crate::bastion_host::register(&bastion);
        Self {
            git: Arc::new(crate::git::GitService::new(&store, endpoint)),
            aws_secrets: None,
            aws_endpoint: None,
            apt,
            bastion,
            stacks,
            route53,
            elb,
            autoscaling,
            runtime,
            ec2,
            store,
            replay: Arc::new(ReplayState::new(boot)),
            metrics: Arc::new(Metrics::new(boot)),
        }
    }

    /// Resolves `account` as the caller may see it and checks the call's action there.
    ///
    /// An account the caller may not act in gets exactly the answer a missing one gets, so a
    /// credential can't learn that another account exists; the audit log records the truth.
    pub fn scope(&self, call: &Call, account: &str, target: String) -> Result<Account, ApiError> {
        call.set_target(target);
        let not_found = || {
            ApiError::not_found(format!("account `{account}` not found"))
                .with_hint("`spindle account list` shows the accounts your credential can see")
        };
        // A missing account is recorded as a refusal too, so the caller's own audit view of a
        // probe looks the same whether or not the account exists.
        let r = AccountRef::parse(account).map_err(|_| not_found().denied())?;
        let acct = self
            .store
            .find_account(&r)?
            .ok_or_else(|| not_found().denied())?;
        if !call.caller.admin && acct.id != call.caller.account.id {
            call.set_target_account(acct.id.clone());
            return Err(not_found().denied());
        }
        self.check(call, &acct)?;
        Ok(acct)
    }

    /// Checks the call's action in `acct` (already known to be in scope).
    pub fn check(&self, call: &Call, acct: &Account) -> Result<(), ApiError> {
        match self.decide(call, acct, call.action)? {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(ApiError::access_denied(reason)),
        }
    }

    /// The admin-granted actions (`Action::ADMIN_GRANTED`) the caller holds in `acct`, as
    /// its grants and the account's deny rules decide: what a deploy passes to providers
    /// in `Context::grants`.
    pub fn admin_grants(&self, call: &Call, acct: &Account) -> Result<Vec<String>, ApiError> {
        let mut held = Vec::new();
        for a in spindle_model::Action::ADMIN_GRANTED {
            if self.decide(call, acct, *a)? == Decision::Allow {
                held.push(a.as_str().to_string());
            }
        }
        Ok(held)
    }

    /// Whether the caller may do `action` in `acct`: its grants minus the account's deny
    /// rules (the admin credential ignores them).
    fn decide(
        &self,
        call: &Call,
        acct: &Account,
        action: spindle_model::Action,
    ) -> Result<Decision, ApiError> {
        self.decide_for(&call.caller, acct, action)
    }

    /// [`App::decide`] for a caller authenticated some other way than a signed API call (git's
    /// HTTP basic auth).
    pub(crate) fn decide_for(
        &self,
        caller: &crate::auth::Caller,
        acct: &Account,
        action: spindle_model::Action,
    ) -> Result<Decision, ApiError> {
        let deny: Vec<String> = if caller.admin {
            Vec::new()
        } else {
            self.store
                .list_deny_rules(&acct.id)?
                .into_iter()
                .map(|r| r.pattern)
                .collect()
        };
        let grant = Grant {
            admin: caller.admin,
            allow: &caller.allow,
            deny: &deny,
        };
        Ok(authorize(grant, action))
    }

    /// For actions that name no account (creating accounts, assuming roles): checks the action
    /// in the caller's own account.
    pub fn check_own(&self, call: &Call, target: String) -> Result<(), ApiError> {
        call.set_target(target);
        self.check(call, &call.caller.account)
    }
}

/// The current time; one place, so handlers agree.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
