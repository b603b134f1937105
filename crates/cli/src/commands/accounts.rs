//! `spindle whoami`, `account …`, `role …`, `assume`, `deny …`.

use crate::cli::{AccountCmd, AssumeArgs, DenyCmd, KeysCmd, RoleCmd};
use crate::context::{api_err, hinted, parse_duration, Context};
use crate::output;
use anyhow::Result;
use spindle_model::api::*;
use spindle_model::{AccessKeyId, AccountName, RoleName};

pub fn whoami(cx: &Context) -> Result<()> {
    let w = cx.client()?.whoami().map_err(api_err)?;
    if cx.json() {
        output::json(&w);
    } else {
        output::fields(&[
            ("account", format!("{} ({})", w.account_name, w.account_id)),
            ("access key id", w.access_key_id.to_string()),
            ("arn", w.arn.clone()),
            ("admin", w.admin.to_string()),
        ]);
    }
    Ok(())
}

fn account_rows(accts: &[Account]) -> Vec<Vec<String>> {
    accts
        .iter()
        .map(|a| {
            vec![
                a.name.to_string(),
                a.id.to_string(),
                a.created.clone(),
                a.description.clone(),
            ]
        })
        .collect()
}

fn print_credentials(cx: &Context, c: &Credentials, saved: Option<&str>) {
    if cx.json() {
        output::json(c);
        return;
    }
    let mut f = vec![
        ("account", format!("{} ({})", c.account_name, c.account_id)),
        ("access key id", c.access_key_id.to_string()),
        ("secret access key", c.secret_access_key.clone()),
    ];
    if let Some(e) = &c.expiration {
        f.push(("expires", e.clone()));
    }
    output::fields(&f);
    match saved {
        Some(p) => eprintln!(
            "Saved as profile [{p}] in {}.",
            cx.credentials_file.display()
        ),
        None => eprintln!(
            "The secret is shown only now; keep it, or pass --save-profile NAME next time."
        ),
    }
}

pub fn account(cx: &Context, cmd: AccountCmd) -> Result<()> {
    let c = cx.client()?;
    match cmd {
        AccountCmd::Create { name, description } => {
            let name = AccountName::parse(&name)?;
            let a = c
                .create_account(&CreateAccount { name, description })
                .map_err(api_err)?;
            if cx.json() {
                output::json(&a);
            } else {
                println!("Created account {} ({}).", a.name, a.id);
            }
        }
        AccountCmd::List => {
            let accts = c.list_accounts().map_err(api_err)?;
            if cx.json() {
                output::json(&accts);
            } else {
                output::table(
                    &["NAME", "ID", "CREATED", "DESCRIPTION"],
                    &account_rows(&accts),
                );
            }
        }
        AccountCmd::Describe { name } => {
            let a = c.get_account(&name).map_err(api_err)?;
            if cx.json() {
                output::json(&a);
            } else {
                output::fields(&[
                    ("name", a.name.to_string()),
                    ("id", a.id.to_string()),
                    ("created", a.created.clone()),
                    ("description", a.description.clone()),
                    ("management", a.management.to_string()),
                ]);
            }
        }
        AccountCmd::Delete { name } => {
            c.delete_account(&name).map_err(api_err)?;
            if !cx.json() {
                println!("Deleted account {name}.");
            }
        }
        AccountCmd::Keys(k) => keys(cx, k)?,
    }
    Ok(())
}

fn keys(cx: &Context, cmd: KeysCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        KeysCmd::Create {
            allow,
            description,
            save_profile,
            aws,
            save_aws_profile,
        } => {
            let aws = aws || save_aws_profile.is_some();
            let creds = c
                .create_key(
                    &account,
                    &CreateKey {
                        allow,
                        description,
                        aws,
                    },
                )
                .map_err(api_err)?;
            if let Some(p) = &save_profile {
                cx.save_profile(p, &creds)?;
            }
            if let Some(p) = &save_aws_profile {
                save_aws(cx, p, &creds)?;
            }
            print_credentials(cx, &creds, save_profile.as_deref());
        }
        KeysCmd::List => {
            let keys = c.list_keys(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&keys);
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            k.access_key_id.to_string(),
                            k.status.clone(),
                            k.created.clone(),
                            k.allow.join(","),
                            k.description.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &["ACCESS KEY ID", "STATUS", "CREATED", "ALLOW", "DESCRIPTION"],
                    &rows,
                );
            }
        }
        KeysCmd::Revoke { access_key_id } => {
            let id = AccessKeyId::parse(&access_key_id)?;
            c.revoke_key(&account, &id).map_err(api_err)?;
            if !cx.json() {
                println!("Revoked {id}.");
            }
        }
    }
    Ok(())
}

/// Writes an AWS-compatible key to the `aws` CLI's files, with the daemon's AWS endpoint.
fn save_aws(cx: &Context, profile: &str, creds: &Credentials) -> Result<()> {
    use spindle_client::credentials::aws;
    let endpoint = creds.aws_endpoint.as_deref().ok_or_else(|| {
        anyhow::anyhow!(
            "the daemon's AWS-compatible endpoint is off (start it with `spindle server --aws-listen ADDR`); the key {} was created but not saved as an aws profile",
            creds.access_key_id
        )
    })?;
    let (credentials, config) = aws::default_paths()?;
    aws::save(
        &credentials,
        &config,
        &aws::AwsProfile {
            name: profile,
            access_key_id: creds.access_key_id.as_str(),
            secret_access_key: &creds.secret_access_key,
            region: "us-east-1",
            endpoint_url: endpoint,
        },
    )?;
    if !cx.json() {
        eprintln!(
            "Saved as aws profile `{profile}` in {} and {} (endpoint_url {endpoint}).",
            credentials.display(),
            config.display()
        );
    }
    Ok(())
}

fn print_role(cx: &Context, r: &Role) {
    if cx.json() {
        output::json(r);
    } else {
        output::fields(&[
            ("name", r.name.to_string()),
            ("arn", r.arn.clone()),
            (
                "trust",
                r.trust
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("allow", r.allow.join(", ")),
            ("max session", format!("{} s", r.max_session_seconds)),
            ("created", r.created.clone()),
        ]);
    }
}

pub fn role(cx: &Context, cmd: RoleCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        RoleCmd::Create {
            name,
            trust,
            allow,
            max_session_duration,
        } => {
            let max_session_seconds = max_session_duration
                .as_deref()
                .map(parse_duration)
                .transpose()?
                .map(|s| u32::try_from(s).unwrap_or(u32::MAX));
            let req = CreateRole {
                name: RoleName::parse(&name)?,
                trust,
                allow,
                max_session_seconds,
            };
            print_role(cx, &c.create_role(&account, &req).map_err(api_err)?);
        }
        RoleCmd::List => {
            let roles = c.list_roles(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&roles);
            } else {
                let rows: Vec<Vec<String>> = roles
                    .iter()
                    .map(|r| {
                        vec![
                            r.name.to_string(),
                            r.trust
                                .iter()
                                .map(|t| t.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                            r.allow.join(","),
                            r.arn.clone(),
                        ]
                    })
                    .collect();
                output::table(&["NAME", "TRUST", "ALLOW", "ARN"], &rows);
            }
        }
        RoleCmd::Describe { name } => {
            print_role(cx, &c.get_role(&account, &name).map_err(api_err)?)
        }
        RoleCmd::Delete { name } => {
            c.delete_role(&account, &name).map_err(api_err)?;
            if !cx.json() {
                println!("Deleted role {name}.");
            }
        }
    }
    Ok(())
}

pub fn assume(cx: &Context, a: AssumeArgs) -> Result<()> {
    let duration_seconds = a
        .duration
        .as_deref()
        .map(parse_duration)
        .transpose()?
        .map(|s| u32::try_from(s).unwrap_or(u32::MAX));
    let req = AssumeRole {
        role: RoleName::parse(&a.role)?,
        account: a
            .role_account
            .or_else(|| cx.account_flag().map(str::to_owned)),
        duration_seconds,
        session_name: a.session_name,
    };
    let creds = cx.client()?.assume_role(&req).map_err(api_err)?;
    if let Some(p) = &a.save_profile {
        cx.save_profile(p, &creds)?;
    }
    print_credentials(cx, &creds, a.save_profile.as_deref());
    Ok(())
}

pub fn deny(cx: &Context, cmd: DenyCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx
        .account_flag()
        .map(str::to_owned)
        .ok_or_else(|| hinted("deny rules need an account", "pass --account NAME"))?;
    match cmd {
        DenyCmd::Add { pattern, reason } => {
            let r = c
                .add_deny_rule(&account, &AddDenyRule { pattern, reason })
                .map_err(api_err)?;
            if cx.json() {
                output::json(&r);
            } else {
                println!("Added deny rule {} in {account}: {}.", r.id, r.pattern);
            }
        }
        DenyCmd::List => {
            let rules = c.list_deny_rules(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&rules);
            } else {
                let rows: Vec<Vec<String>> = rules
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            r.pattern.clone(),
                            r.created.clone(),
                            r.reason.clone(),
                        ]
                    })
                    .collect();
                output::table(&["ID", "PATTERN", "CREATED", "REASON"], &rows);
            }
        }
        DenyCmd::Remove { id } => {
            c.remove_deny_rule(&account, id).map_err(api_err)?;
            if !cx.json() {
                println!("Removed deny rule {id} from {account}.");
            }
        }
    }
    Ok(())
}
