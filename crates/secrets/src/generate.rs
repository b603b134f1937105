//! `GenerateSecretString`: the rules of a generated value, and generating one from the
//! operating system's CSPRNG (`rand::rngs::OsRng`). The rules are pure data, kept with the
//! secret so `rotate` generates with the same rules.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// AWS's punctuation set for generated passwords.
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const NUMBERS: &str = "0123456789";

/// The rules of a generated value (the properties of `GenerateSecretString`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub length: usize,
    pub exclude_characters: String,
    pub exclude_lowercase: bool,
    pub exclude_uppercase: bool,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub include_space: bool,
    pub require_each_included_type: bool,
    /// `SecretStringTemplate` (a JSON object) and `GenerateStringKey`: the value is the
    /// template with the password added under the key.
    pub template: Option<(serde_json::Map<String, serde_json::Value>, String)>,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            length: 32,
            exclude_characters: String::new(),
            exclude_lowercase: false,
            exclude_uppercase: false,
            exclude_numbers: false,
            exclude_punctuation: false,
            include_space: false,
            require_each_included_type: true,
            template: None,
        }
    }
}

/// Why rules can't generate a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("PasswordLength must be 1 to 4096, got {0}")]
    Length(usize),
    #[error("the rules exclude every character")]
    NoCharacters,
    #[error("PasswordLength {length} is shorter than the {types} character types RequireEachIncludedType asks for")]
    TooShort { length: usize, types: usize },
    #[error("SecretStringTemplate already has the key `{0}` that GenerateStringKey names")]
    KeyTaken(String),
}

impl Rules {
    /// The character classes left after the exclusions, each non-empty.
    fn classes(&self) -> Vec<Vec<char>> {
        let mut classes = Vec::new();
        for (set, excluded) in [
            (LOWER, self.exclude_lowercase),
            (UPPER, self.exclude_uppercase),
            (NUMBERS, self.exclude_numbers),
            (PUNCTUATION, self.exclude_punctuation),
            (" ", !self.include_space),
        ] {
            if excluded {
                continue;
            }
            let chars: Vec<char> = set
                .chars()
                .filter(|c| !self.exclude_characters.contains(*c))
                .collect();
            if !chars.is_empty() {
                classes.push(chars);
            }
        }
        classes
    }

    /// Checks the rules can generate a value.
    pub fn check(&self) -> Result<(), RulesError> {
        if self.length == 0 || self.length > 4096 {
            return Err(RulesError::Length(self.length));
        }
        let classes = self.classes();
        if classes.is_empty() {
            return Err(RulesError::NoCharacters);
        }
        if self.require_each_included_type && classes.len() > self.length {
            return Err(RulesError::TooShort {
                length: self.length,
                types: classes.len(),
            });
        }
        if let Some((map, key)) = &self.template {
            if map.contains_key(key) {
                return Err(RulesError::KeyTaken(key.clone()));
            }
        }
        Ok(())
    }

    /// A password by these rules from `rng`.
    pub fn password(&self, rng: &mut impl Rng) -> Result<String, RulesError> {
        self.check()?;
        let classes = self.classes();
        let all: Vec<char> = classes.iter().flatten().copied().collect();
        let mut out: Vec<char> = Vec::with_capacity(self.length);
        if self.require_each_included_type {
            for c in &classes {
                out.push(c[rng.gen_range(0..c.len())]);
            }
        }
        while out.len() < self.length {
            out.push(all[rng.gen_range(0..all.len())]);
        }
        out.shuffle(rng);
        Ok(out.into_iter().collect())
    }

    /// The secret value: the password, or the template with it under the key.
    pub fn value(&self, rng: &mut impl Rng) -> Result<String, RulesError> {
        let password = self.password(rng)?;
        Ok(match &self.template {
            None => password,
            Some((map, key)) => {
                let mut m = map.clone();
                m.insert(key.clone(), serde_json::Value::String(password));
                serde_json::Value::Object(m).to_string()
            }
        })
    }

    /// A value from the operating system's CSPRNG.
    pub fn generate(&self) -> Result<String, RulesError> {
        self.value(&mut rand::rngs::OsRng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rules(f: impl FnOnce(&mut Rules)) -> Rules {
        let mut r = Rules::default();
        f(&mut r);
        r
    }

    #[test]
    fn generated_values_follow_each_rule() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        type Check = fn(&str) -> bool;
        let cases: Vec<(&str, Rules, Check)> = vec![
            ("default: 32 chars, each type", Rules::default(), |s| {
                s.chars().count() == 32
                    && s.chars().any(|c| c.is_ascii_lowercase())
                    && s.chars().any(|c| c.is_ascii_uppercase())
                    && s.chars().any(|c| c.is_ascii_digit())
                    && s.chars().any(|c| PUNCTUATION.contains(c))
                    && !s.contains(' ')
            }),
            (
                "digits only",
                rules(|r| {
                    r.exclude_lowercase = true;
                    r.exclude_uppercase = true;
                    r.exclude_punctuation = true;
                    r.length = 12;
                }),
                |s| s.len() == 12 && s.chars().all(|c| c.is_ascii_digit()),
            ),
            (
                "excluded characters never appear",
                rules(|r| {
                    r.exclude_characters = "\"@/\\'aeiou0".into();
                    r.length = 400;
                }),
                |s| !s.chars().any(|c| "\"@/\\'aeiou0".contains(c)),
            ),
            (
                "a space when asked for and required",
                rules(|r| {
                    r.include_space = true;
                    r.length = 5;
                }),
                |s| s.contains(' ') && s.len() == 5,
            ),
            (
                "a JSON secret from a template",
                rules(|r| {
                    let t = serde_json::json!({"username": "admin"});
                    r.template = Some((t.as_object().unwrap().clone(), "password".into()));
                    r.exclude_punctuation = true;
                    r.length = 16;
                }),
                |s| {
                    let v: serde_json::Value = serde_json::from_str(s).unwrap();
                    v["username"] == "admin"
                        && v["password"].as_str().unwrap().len() == 16
                        && v["password"]
                            .as_str()
                            .unwrap()
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric())
                },
            ),
        ];
        for (name, r, ok) in cases {
            for _ in 0..20 {
                let v = r.value(&mut rng).unwrap();
                assert!(ok(&v), "{name}: {v}");
            }
        }
    }

    #[test]
    fn impossible_rules_are_refused() {
        let cases = [
            (rules(|r| r.length = 0), RulesError::Length(0)),
            (rules(|r| r.length = 5000), RulesError::Length(5000)),
            (
                rules(|r| {
                    r.exclude_lowercase = true;
                    r.exclude_uppercase = true;
                    r.exclude_numbers = true;
                    r.exclude_punctuation = true;
                }),
                RulesError::NoCharacters,
            ),
            (
                rules(|r| {
                    r.exclude_numbers = true;
                    r.exclude_characters = LOWER.into();
                    r.length = 1;
                }),
                RulesError::TooShort {
                    length: 1,
                    types: 2,
                },
            ),
            (
                rules(|r| {
                    let t = serde_json::json!({"password": "x"});
                    r.template = Some((t.as_object().unwrap().clone(), "password".into()));
                }),
                RulesError::KeyTaken("password".into()),
            ),
        ];
        for (r, want) in cases {
            assert_eq!(r.check(), Err(want));
        }
    }

    #[test]
    fn the_os_generator_gives_different_values() {
        let a = Rules::default().generate().unwrap();
        let b = Rules::default().generate().unwrap();
        assert_ne!(a, b);
    }
}
