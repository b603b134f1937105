//! Turning global flags into a ready client: which endpoint, which credential, which account.

use crate::cli::{Global, OutputFormat};
use anyhow::{anyhow, Context as _, Result};
use spindle_client::{Client, CredentialsFile, Profile, DEFAULT_ENDPOINT};
use std::cell::OnceCell;
use std::path::PathBuf;

pub struct Context {
    pub output: OutputFormat,
    pub credentials_file: PathBuf,
    pub profile_name: String,
    profile: Option<Profile>,
    endpoint_flag: Option<String>,
    account_flag: Option<String>,
    client: OnceCell<Client>,
}

/// An error that carries a hint for the user.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl std::fmt::Display for Hinted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted {
        message: message.into(),
        hint: hint.into(),
    }
    .into()
}

impl Context {
    pub fn new(g: &Global) -> Result<Self> {
        let credentials_file = match &g.credentials_file {
            Some(p) => p.clone(),
            None => CredentialsFile::default_path()?,
        };
        let file = CredentialsFile::load(&credentials_file)?;
        Ok(Self {
            output: g.output,
            profile: file.profiles.get(&g.profile).cloned(),
            profile_name: g.profile.clone(),
            credentials_file,
            endpoint_flag: g.endpoint.clone(),
            account_flag: g.account.clone(),
            client: OnceCell::new(),
        })
    }

    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// `--endpoint`, else the profile's, else the default.
    pub fn endpoint(&self) -> String {
        self.endpoint_flag
            .clone()
            .or_else(|| self.profile.as_ref().and_then(|p| p.endpoint.clone()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
    }

    /// Points this context at `endpoint` (after `spindle up` decided where the daemon is).
    pub fn set_endpoint(&mut self, endpoint: String) {
        self.endpoint_flag = Some(endpoint);
        self.client = OnceCell::new();
    }

    pub fn endpoint_was_given(&self) -> bool {
        self.endpoint_flag.is_some()
    }

    /// Re-reads the credentials file (after `spindle up` started a daemon that wrote it).
    pub fn reload(&mut self) -> Result<()> {
        let file = CredentialsFile::load(&self.credentials_file)?;
        self.profile = file.profiles.get(&self.profile_name).cloned();
        self.client = OnceCell::new();
        Ok(())
    }

    /// Selects another profile of the credentials file (keeping an `--endpoint` given).
    pub fn set_profile(&mut self, name: &str) -> Result<()> {
        self.profile_name = name.to_owned();
        self.reload()
    }

    /// Whether the selected profile exists and names `endpoint` as its daemon.
    pub fn profile_points_at(&self, endpoint: &str) -> bool {
        self.profile
            .as_ref()
            .is_some_and(|p| p.endpoint.as_deref() == Some(endpoint))
    }

    /// A client without credentials, for `/healthz`.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.endpoint(), None)
    }

    /// The signed client for the selected profile.
    pub fn client(&self) -> Result<&Client> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let p = self.profile.as_ref().ok_or_else(|| {
            hinted(
                format!("no profile `{}` in {}", self.profile_name, self.credentials_file.display()),
                "the daemon's first start writes the admin credential as profile [default]; or pass --profile",
            )
        })?;
        let (Some(id), Some(secret)) = (&p.access_key_id, &p.secret_access_key) else {
            return Err(hinted(
                format!(
                    "profile `{}` has no access_key_id and secret_access_key",
                    self.profile_name
                ),
                format!("edit {}", self.credentials_file.display()),
            ));
        };
        let c = Client::new(&self.endpoint(), Some((id.clone(), secret)));
        Ok(self.client.get_or_init(|| c))
    }

    /// The account to act in: `--account`, else the credential's own.
    pub fn account(&self) -> Result<String> {
        if let Some(a) = &self.account_flag {
            return Ok(a.clone());
        }
        let who = self.client()?.whoami().map_err(api_err)?;
        Ok(who.account_id.to_string())
    }

    pub fn account_flag(&self) -> Option<&str> {
        self.account_flag.as_deref()
    }

    /// Saves credentials as a profile that points at this context's endpoint.
    pub fn save_profile(&self, name: &str, creds: &spindle_model::api::Credentials) -> Result<()> {
        CredentialsFile::upsert(
            &self.credentials_file,
            name,
            Profile {
                access_key_id: Some(creds.access_key_id.clone()),
                secret_access_key: Some(creds.secret_access_key.clone()),
                endpoint: Some(self.endpoint()),
                expiration: creds.expiration.clone(),
                account: Some(creds.account_id.to_string()),
            },
        )
        .with_context(|| format!("saving profile `{name}`"))
    }
}

/// Turns an API error into one line plus the daemon's hint.
pub fn api_err(e: spindle_client::ClientError) -> anyhow::Error {
    match e.hint() {
        Some(h) => hinted(e.to_string(), h),
        None => anyhow!(e),
    }
}

/// Parses `90`, `90s`, `15m`, `2h`, `1d` into seconds.
pub fn parse_duration(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        Some('d') => (&s[..s.len() - 1], 86400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("`{s}` is not a duration: expected e.g. 90, 90s, 15m, 2h, 1d"))?;
    Ok(n * mult)
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        for (s, want) in [
            ("90", Some(90)),
            ("90s", Some(90)),
            ("15m", Some(900)),
            ("2h", Some(7200)),
            ("1d", Some(86400)),
            ("x", None),
            ("", None),
            ("5y", None),
        ] {
            assert_eq!(super::parse_duration(s).ok(), want, "{s}");
        }
    }
}
