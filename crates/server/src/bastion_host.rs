//! Host certificates for instances (issue #18, item 3): the daemon's answers to the metadata
//! service's SSH paths. An instance generates its own host key (as Debian's `openssh-server`
//! does at install), posts the public half to `169.254.169.254`, and gets back a host
//! certificate signed by its account's SSH host CA, naming its instance id, private address
//! and hostname. The private key never leaves the instance; the host CA is sealed at rest in
//! the `ssh-bastion` document like the user CA. Clients trust the host CA through the
//! `@cert-authority` line `spindle ssh config` writes, so the inner hop of `ssh -J` checks the
//! instance strictly.

use crate::bastion::{Bastion, CaKind};
use spindle_model::AccountId;
use spindle_runtime::imds::{Metadata, SshHook};
use std::sync::Arc;

/// Registers the hook with the runtime, when the daemon runs one.
pub fn register(bastion: &Arc<Bastion>) {
    if let Some(rt) = bastion.runtime() {
        rt.set_imds_ssh(Arc::new(Hook(bastion.clone())));
    }
}

struct Hook(Arc<Bastion>);

/// The account that owns the instance asking.
fn owner(md: &Metadata) -> Result<AccountId, String> {
    spindle_model::instance_owner(&md.tags)
        .ok_or_else(|| format!("instance {} belongs to no account", md.instance_id))
}

/// The names a client may use for the instance: its id, its private address, and its host
/// name only when that is the name derived from the address (`ip-10-0-1-5`, alone or with a
/// domain). Other host names are chosen by users (a devbox's name, an RDS identifier) and
/// could name another instance (`i-…`) or address, so they are never signed.
pub fn host_principals(md: &Metadata) -> Vec<String> {
    let mut names = vec![md.instance_id.clone(), md.local_ipv4.clone()];
    let derived = format!("ip-{}", md.local_ipv4.replace('.', "-"));
    let first_label = md.hostname.split('.').next().unwrap_or_default();
    let plain = md
        .hostname
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
    if !md.local_ipv4.is_empty()
        && first_label == derived
        && plain
        && md.hostname.len() <= 253
        && !names.contains(&md.hostname)
    {
        names.push(md.hostname.clone());
    }
    names.retain(|n| !n.is_empty());
    names
}

impl Hook {
    fn ca_line(&self, kind: CaKind, md: &Metadata) -> Result<String, String> {
        let ca = self
            .0
            .ca_of(kind, &owner(md)?)
            .map_err(|e| format!("cannot load the account's CA: {e:?}"))?;
        Ok(ca.public_line())
    }
}

impl SshHook for Hook {
    fn user_ca_key(&self, md: &Metadata) -> Result<String, String> {
        self.ca_line(CaKind::User, md)
    }

    fn host_ca_key(&self, md: &Metadata) -> Result<String, String> {
        self.ca_line(CaKind::Host, md)
    }

    fn host_certificate(&self, md: &Metadata, public_key: &str) -> Result<String, String> {
        let account = owner(md)?;
        let signed = self.sign(&account, md, public_key);
        // Every signing, and every refusal, is in the audit log under the instance's account.
        let rec = spindle_store::AuditRecord {
            time: crate::app::now(),
            request_id: format!("imds-{:016x}", rand::random::<u64>()),
            access_key_id: None,
            principal: Some(format!("instance {}", md.instance_id)),
            account_id: Some(account.clone()),
            target_account_id: None,
            action: spindle_model::Action::SignSshHostCertificate
                .as_str()
                .to_string(),
            target: match &signed {
                Ok((_, serial)) => format!("instance/{} serial {serial}", md.instance_id),
                Err(_) => format!("instance/{}", md.instance_id),
            },
            result: if signed.is_ok() { "ok" } else { "denied" },
            status: 0,
            error_code: signed.as_ref().err().cloned(),
        };
        if let Err(e) = self.0.store().append_audit(&rec) {
            tracing::error!(error = %e, "cannot record a host certificate");
        }
        signed.map(|(line, _)| line)
    }
}

impl Hook {
    /// Signs the instance's host key: the certificate line and its serial.
    fn sign(
        &self,
        account: &AccountId,
        md: &Metadata,
        public_key: &str,
    ) -> Result<(String, u64), String> {
        let ca = self
            .0
            .ca_of(CaKind::Host, account)
            .map_err(|e| format!("cannot load the account's host CA: {e:?}"))?;
        // A few minutes back, so a clock a little behind on the client's side still accepts it.
        let valid_after = (crate::app::now().unix_timestamp().max(300) - 300) as u64;
        let serial = rand::random::<u64>() >> 1;
        let cert = ca
            .sign_host(
                public_key,
                &format!("{account}/{}", md.instance_id),
                &host_principals(md),
                serial,
                valid_after,
            )
            .map_err(|e| e.to_string())?;
        let line = cert
            .to_openssh()
            .map_err(|_| "cannot encode the certificate".to_string())?;
        Ok((line, serial))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_principals_are_the_id_the_address_and_only_the_address_derived_hostname() {
        let md = |hostname: &str| Metadata {
            instance_id: "i-0abc".into(),
            local_ipv4: "10.0.1.5".into(),
            hostname: hostname.into(),
            ..Default::default()
        };
        let cases = [
            ("ip-10-0-1-5", vec!["i-0abc", "10.0.1.5", "ip-10-0-1-5"]),
            (
                "ip-10-0-1-5.ec2.internal",
                vec!["i-0abc", "10.0.1.5", "ip-10-0-1-5.ec2.internal"],
            ),
            // Names a user picks (a devbox's) are never signed: one could be another
            // instance's id or address.
            ("web-1", vec!["i-0abc", "10.0.1.5"]),
            ("i-0def", vec!["i-0abc", "10.0.1.5"]),
            ("10.0.1.6", vec!["i-0abc", "10.0.1.5"]),
            ("ip-10-0-1-6", vec!["i-0abc", "10.0.1.5"]),
            ("ip-10-0-1-5x", vec!["i-0abc", "10.0.1.5"]),
            ("", vec!["i-0abc", "10.0.1.5"]),
            ("i-0abc", vec!["i-0abc", "10.0.1.5"]),
            ("bad name", vec!["i-0abc", "10.0.1.5"]),
        ];
        for (hostname, want) in cases {
            assert_eq!(
                host_principals(&md(hostname)),
                want,
                "hostname {hostname:?}"
            );
        }
    }
}
