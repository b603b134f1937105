//! `spindle secret list|get|put|rotate`: Secrets Manager. `get` shows a secret's versions
//! and stages; it prints the value only with `--value` (as `aws secretsmanager
//! get-secret-value` is its own call), alone on stdout so it can be piped.

use std::io::Read;

use crate::context::{api_err, Context};
use crate::output;
use anyhow::{Context as _, Result};
use clap::Subcommand;
use spindle_model::secret::{PutSecretValue, SecretSummary, SecretVersionResult};

#[derive(Debug, Subcommand)]
pub enum SecretCmd {
    /// The account's secrets (names, ARNs, versions; never values)
    List,
    /// A secret's versions and stages; with --value, only its value
    Get {
        /// The secret's name or ARN
        id: String,
        /// Print the value (AWSCURRENT unless --stage or --version-id says otherwise)
        #[arg(long)]
        value: bool,
        #[arg(long, requires = "value", conflicts_with = "version_id")]
        stage: Option<String>,
        #[arg(long, requires = "value")]
        version_id: Option<String>,
    },
    /// Store a new value as the AWSCURRENT version (the old one becomes AWSPREVIOUS); the
    /// value comes from --value-file, or else stdin
    Put {
        id: String,
        /// Read the value from this file (`-` or nothing: stdin)
        #[arg(long)]
        value_file: Option<std::path::PathBuf>,
        /// Create the secret if there is none by that name
        #[arg(long)]
        create: bool,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Generate a new value by the secret's GenerateSecretString rules
    Rotate { id: String },
}

fn print_summary(s: &SecretSummary) {
    output::fields(&[
        ("name", s.name.clone()),
        ("arn", s.arn.clone()),
        ("description", s.description.clone()),
        ("generated", s.generated.to_string()),
        ("created", s.created.clone()),
    ]);
    let rows: Vec<Vec<String>> = s
        .versions
        .iter()
        .map(|v| vec![v.version_id.clone(), v.stages.join(","), v.created.clone()])
        .collect();
    output::table(&["VERSION", "STAGES", "CREATED"], &rows);
}

fn print_version(cx: &Context, r: &SecretVersionResult, what: &str) {
    if cx.json() {
        output::json(r);
    } else {
        println!("{what} {} version {}.", r.name, r.version_id);
    }
}

pub fn run(cx: &Context, cmd: SecretCmd) -> Result<()> {
    let c = cx.client()?;
    let account = cx.account()?;
    match cmd {
        SecretCmd::List => {
            let list = c.list_secrets(&account).map_err(api_err)?;
            if cx.json() {
                output::json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| vec![s.name.clone(), s.versions.len().to_string(), s.arn.clone()])
                .collect();
            output::table(&["NAME", "VERSIONS", "ARN"], &rows);
        }
        SecretCmd::Get {
            id, value: false, ..
        } => {
            let s = c.describe_secret(&account, &id).map_err(api_err)?;
            if cx.json() {
                output::json(&s);
            } else {
                print_summary(&s);
            }
        }
        SecretCmd::Get {
            id,
            value: true,
            stage,
            version_id,
        } => {
            let v = c
                .get_secret_value(&account, &id, version_id.as_deref(), stage.as_deref())
                .map_err(api_err)?;
            if cx.json() {
                output::json(&v);
            } else {
                println!("{}", v.secret_string);
            }
        }
        SecretCmd::Put {
            id,
            value_file,
            create,
            description,
        } => {
            let mut value = String::new();
            match value_file.as_deref() {
                Some(p) if p != std::path::Path::new("-") => {
                    value = std::fs::read_to_string(p)
                        .with_context(|| format!("reading --value-file {}", p.display()))?;
                }
                _ => {
                    std::io::stdin()
                        .read_to_string(&mut value)
                        .context("reading the value from stdin")?;
                }
            }
            // A value piped with `echo` ends in one newline that is no part of it.
            if value.ends_with('\n') {
                value.pop();
            }
            let r = c
                .put_secret_value(
                    &account,
                    &id,
                    &PutSecretValue {
                        secret_string: value,
                        create,
                        description,
                    },
                )
                .map_err(api_err)?;
            print_version(cx, &r, "Stored");
        }
        SecretCmd::Rotate { id } => {
            let r = c.rotate_secret(&account, &id).map_err(api_err)?;
            print_version(cx, &r, "Rotated");
        }
    }
    Ok(())
}
