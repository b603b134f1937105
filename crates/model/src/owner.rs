//! Who owns an instance. The runtime's instances are the installation's; each belongs to one
//! account, recorded one way: the [`ACCOUNT_TAG`] every launch writes (stack instances, auto
//! scaling's, devboxes). Instances launched before that tag was written on stack instances
//! carry only CloudFormation's stack id, so [`instance_owner`] still reads the account from
//! that ARN when the tag is absent; nothing writes ownership that way any more.

use std::collections::BTreeMap;

use crate::AccountId;

/// The tag naming an instance's owning account (a 12-digit id).
pub const ACCOUNT_TAG: &str = "spindle:account";

/// CloudFormation's stack id tag (`arn:aws:cloudformation:REGION:ACCOUNT:stack/NAME/ID`).
pub const STACK_ID_TAG: &str = "aws:cloudformation:stack-id";

/// The account that owns an instance with these tags: [`ACCOUNT_TAG`], else (an instance
/// recorded before every launch wrote that tag) the account field of its stack id. `None`
/// when neither names a valid account id.
pub fn instance_owner(tags: &BTreeMap<String, String>) -> Option<AccountId> {
    if let Some(a) = tags.get(ACCOUNT_TAG) {
        return AccountId::parse(a).ok();
    }
    let arn = tags.get(STACK_ID_TAG)?;
    let mut parts = arn.splitn(6, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("cloudformation")) => {}
        _ => return None,
    }
    AccountId::parse(parts.nth(1)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_is_the_account_tag_else_the_stack_ids_account() {
        const ARN: &str = "arn:aws:cloudformation:local:123456789012:stack/web/abc";
        // (tags, the owner they say)
        type Case = (
            &'static [(&'static str, &'static str)],
            Option<&'static str>,
        );
        let cases: &[Case] = &[
            (&[(ACCOUNT_TAG, "210987654321")], Some("210987654321")),
            // The tag wins over the stack id: it is how ownership is recorded now.
            (
                &[(ACCOUNT_TAG, "210987654321"), (STACK_ID_TAG, ARN)],
                Some("210987654321"),
            ),
            // An old stack instance: only the stack id.
            (&[(STACK_ID_TAG, ARN)], Some("123456789012")),
            (&[(ACCOUNT_TAG, "dev")], None),
            (
                &[(STACK_ID_TAG, "arn:aws:s3:local:123456789012:bucket")],
                None,
            ),
            (&[(STACK_ID_TAG, "arn:aws:cloudformation:local")], None),
            (&[("Name", "web")], None),
        ];
        for (tags, want) in cases {
            let tags: BTreeMap<String, String> = tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(
                instance_owner(&tags).as_ref().map(AccountId::as_str),
                *want,
                "{tags:?}"
            );
        }
    }
}
