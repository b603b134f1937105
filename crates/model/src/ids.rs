//! Typed identifiers and names, AWS-shaped so scripts written for AWS read them naturally.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string is not a valid identifier or name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} `{value}` is not valid: expected {expected}")]
    Invalid {
        kind: &'static str,
        value: String,
        expected: &'static str,
    },
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $expected:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` and wraps it.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> bool = $check;
                if check(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(IdError::Invalid { kind: $kind, value: s.to_owned(), expected: $expected })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

string_id!(
    /// A 12-digit account id, as AWS uses (`123456789012`). Never starts with 0 when generated.
    AccountId,
    "account id",
    "12 digits",
    |s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
);

string_id!(
    /// An account's name, unique in the installation (`dev`, `prod`).
    AccountName,
    "account name",
    "1-63 characters of a-z, 0-9 and '-', starting with a letter",
    |s| is_dns_label(s)
);

string_id!(
    /// A role's name, unique within its account.
    RoleName,
    "role name",
    "1-64 characters of A-Z, a-z, 0-9 and +=,.@_-",
    |s| !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
);

string_id!(
    /// An access key id: `AKIA` + 16 characters for long-term keys, `ASIA` + 16 for the
    /// short-lived credentials a role assumption returns.
    AccessKeyId,
    "access key id",
    "AKIA or ASIA followed by 16 characters of A-Z and 2-7",
    |s| s.len() == 20
        && (s.starts_with("AKIA") || s.starts_with("ASIA"))
        && s[4..].bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
);

string_id!(
    /// A parameter store name, SSM-style: `/spindle/images/web/latest` or `db-host`.
    ParamName,
    "parameter name",
    "1-1011 characters of a-z, A-Z, 0-9 and _.-/, not starting with aws or ssm, no `//`",
    |s| !s.is_empty()
        && s.len() <= 1011
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
        && !s.contains("//")
        && !s.ends_with('/')
        && {
            let l = s.trim_start_matches('/').to_ascii_lowercase();
            !l.starts_with("aws") && !l.starts_with("ssm")
        }
);

string_id!(
    /// A stack's name, as CloudFormation allows: a letter, then letters, digits and `-`.
    StackName,
    "stack name",
    "1-128 characters of A-Z, a-z, 0-9 and '-', starting with a letter",
    |s| !s.is_empty()
        && s.len() <= 128
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
);

string_id!(
    /// An instance id as the runtime makes it: `i-` and 1-17 lowercase letters or digits.
    InstanceId,
    "instance id",
    "i- followed by 1-17 characters of a-z and 0-9",
    |s| is_runtime_id("i", s)
);

string_id!(
    /// An image id as the image store makes it: `ami-` and 1-17 lowercase letters or digits.
    ImageId,
    "image id",
    "ami- followed by 1-17 characters of a-z and 0-9",
    |s| is_runtime_id("ami", s)
);

string_id!(
    /// A VPC id as the runtime makes it: `vpc-` and 1-17 lowercase letters or digits.
    VpcId,
    "VPC id",
    "vpc- followed by 1-17 characters of a-z and 0-9",
    |s| is_runtime_id("vpc", s)
);

/// `kind-` and 1-17 lowercase letters or digits: the shape of the runtime's ids (they name
/// network namespaces and files, so nothing else is allowed).
fn is_runtime_id(kind: &str, s: &str) -> bool {
    s.strip_prefix(kind)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|r| {
            (1..=17).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && !s.ends_with('-')
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl AccountId {
    /// A fresh random account id whose first digit is not 0.
    pub fn generate(rng: &mut impl Rng) -> Self {
        let mut s = String::with_capacity(12);
        s.push(char::from(b'1' + rng.gen_range(0..9u8)));
        for _ in 0..11 {
            s.push(char::from(b'0' + rng.gen_range(0..10u8)));
        }
        Self(s)
    }
}

/// The base32 alphabet AWS uses for key ids.
const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

impl AccessKeyId {
    /// A fresh long-term (`temporary = false`, `AKIA…`) or short-lived (`ASIA…`) key id.
    pub fn generate(rng: &mut impl Rng, temporary: bool) -> Self {
        let mut s = String::from(if temporary { "ASIA" } else { "AKIA" });
        for _ in 0..16 {
            s.push(char::from(
                KEY_ALPHABET[rng.gen_range(0..KEY_ALPHABET.len())],
            ));
        }
        Self(s)
    }

    /// Whether these are short-lived credentials from a role assumption.
    pub fn is_temporary(&self) -> bool {
        self.0.starts_with("ASIA")
    }
}

/// Either an account's name or its id: what users type after `--account`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountRef {
    Id(AccountId),
    Name(AccountName),
}

impl AccountRef {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        if let Ok(id) = AccountId::parse(s) {
            return Ok(Self::Id(id));
        }
        AccountName::parse(s)
            .map(Self::Name)
            .map_err(|_| IdError::Invalid {
                kind: "account",
                value: s.to_owned(),
                expected: "an account name (a-z, 0-9, '-') or a 12-digit account id",
            })
    }
}

impl fmt::Display for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(id) => id.fmt(f),
            Self::Name(n) => n.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate() {
        let cases: &[(&str, bool, bool, bool, bool)] = &[
            // value, account id, account name, key id, param name
            ("123456789012", true, false, false, true),
            ("12345678901", false, false, false, true),
            ("dev", false, true, false, true),
            ("Dev", false, false, false, true),
            ("dev-", false, false, false, true),
            ("AKIAABCDEFGHIJKLMNOP", false, false, true, true),
            ("ASIAABCDEFGHIJKLMN27", false, false, true, true),
            ("AKIAABCDEFGHIJKLMN18", false, false, false, true),
            ("/spindle/images/web/latest", false, false, false, true),
            ("/aws/x", false, false, false, false),
            ("a//b", false, false, false, false),
            ("", false, false, false, false),
        ];
        for &(v, acct, name, key, param) in cases {
            assert_eq!(AccountId::parse(v).is_ok(), acct, "account id {v:?}");
            assert_eq!(AccountName::parse(v).is_ok(), name, "account name {v:?}");
            assert_eq!(AccessKeyId::parse(v).is_ok(), key, "key id {v:?}");
            assert_eq!(ParamName::parse(v).is_ok(), param, "param {v:?}");
        }
    }

    #[test]
    fn runtime_ids_validate() {
        let cases: &[(&str, bool, bool, bool)] = &[
            // value, instance id, image id, VPC id
            ("i-0123456789abcdef0", true, false, false),
            ("i-a", true, false, false),
            ("i-", false, false, false),
            ("i-0123456789abcdef01", false, false, false),
            ("i-ABC", false, false, false),
            ("i-../x", false, false, false),
            ("ami-0123456789abcdef0", false, true, false),
            ("web:latest", false, false, false),
            ("vpc-a", false, false, true),
            ("vpc-0123456789abcdef0", false, false, true),
            ("subnet-1", false, false, false),
            ("", false, false, false),
        ];
        for &(v, inst, image, vpc) in cases {
            assert_eq!(InstanceId::parse(v).is_ok(), inst, "instance id {v:?}");
            assert_eq!(ImageId::parse(v).is_ok(), image, "image id {v:?}");
            assert_eq!(VpcId::parse(v).is_ok(), vpc, "VPC id {v:?}");
        }
        let e = VpcId::parse("vpc-A").unwrap_err().to_string();
        assert_eq!(
            e,
            "VPC id `vpc-A` is not valid: expected vpc- followed by 1-17 characters of a-z and 0-9"
        );
    }

    #[test]
    fn generated_ids_parse() {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let a = AccountId::generate(&mut rng);
            assert!(AccountId::parse(a.as_str()).is_ok());
            assert!(!a.as_str().starts_with('0'));
            let k = AccessKeyId::generate(&mut rng, true);
            assert!(AccessKeyId::parse(k.as_str()).is_ok() && k.is_temporary());
        }
    }
}
