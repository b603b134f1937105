//! Reading resolved CloudFormation properties: strings, lists, tags, ports, base64, and the
//! strict "known, ignored or refused" check every provider applies.

use std::collections::BTreeMap;

use std::fmt::Display;

use spindle_template::Value;

use crate::error::Ec2Error;
use crate::Kind;

pub(crate) type Props = BTreeMap<String, Value>;

/// What a resource type accepts: `used` properties are implemented, `ignored` ones are
/// accepted without effect (documented in the crate docs); anything else is refused, so a
/// template never silently loses a setting that matters.
pub(crate) struct Shape {
    pub type_name: &'static str,
    pub used: &'static [&'static str],
    pub ignored: &'static [&'static str],
    /// Refused properties with a hint.
    pub hints: &'static [(&'static str, &'static str)],
}

impl Shape {
    /// Every property of `p` the shape neither uses nor ignores, each refused with its hint,
    /// or else the closest known name ("did you mean"); empty when all are known. Null and
    /// `AWS::NoValue` properties count as absent.
    pub fn check(&self, p: &Props) -> Vec<Ec2Error> {
        let known: Vec<&str> = self.used.iter().chain(self.ignored).copied().collect();
        p.iter()
            .filter(|(_, v)| !matches!(v, Value::Null | Value::NoValue))
            .map(|(k, _)| k.as_str())
            .filter(|k| !known.contains(k))
            .map(|k| {
                let hint = match self.hints.iter().find(|(n, _)| *n == k) {
                    Some((_, h)) => h.to_string(),
                    None => spindle_template::suggest(k, &known)
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_default(),
                };
                Ec2Error::unsupported(self.type_name, k, &hint)
            })
            .collect()
    }

    /// Checks that every changed property can change in place: it is one of `in_place` or
    /// an ignored one.
    pub fn check_update(
        &self,
        changed: &[String],
        in_place: &[&str],
        why: &str,
    ) -> Result<(), Ec2Error> {
        let bad: Vec<&str> = changed
            .iter()
            .map(String::as_str)
            .filter(|k| !in_place.contains(k) && !self.ignored.contains(k))
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        Err(Ec2Error::Update {
            type_name: self.type_name,
            properties: bad.join(", "),
            why: why.to_string(),
        })
    }

    pub fn invalid(&self, message: impl Into<String>) -> Ec2Error {
        Ec2Error::invalid(self.type_name, message)
    }

    pub fn opt_str(&self, p: &Props, key: &str) -> Result<Option<String>, Ec2Error> {
        match p.get(key) {
            None | Some(Value::Null | Value::NoValue) => Ok(None),
            Some(v) => v
                .scalar_string()
                .map(Some)
                .ok_or_else(|| self.invalid(format!("{key} must be a string, got {v}"))),
        }
    }

    /// A boolean (`true`, or the strings `"true"`/`"false"` a parameter gives); absent is
    /// `None`.
    pub fn opt_bool(&self, p: &Props, key: &str) -> Result<Option<bool>, Ec2Error> {
        match p.get(key) {
            None | Some(Value::Null | Value::NoValue) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => match v.scalar_string().as_deref() {
                Some("true") => Ok(Some(true)),
                Some("false") => Ok(Some(false)),
                _ => Err(self.invalid(format!("{key} must be true or false, got {v}"))),
            },
        }
    }

    pub fn req_str(&self, p: &Props, key: &str) -> Result<String, Ec2Error> {
        self.opt_str(p, key)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.invalid(format!("{key} is required")))
    }

    /// A list of strings (`SecurityGroupIds`); absent is empty.
    pub fn str_list(&self, p: &Props, key: &str) -> Result<Vec<String>, Ec2Error> {
        match p.get(key) {
            None | Some(Value::Null | Value::NoValue) => Ok(Vec::new()),
            Some(Value::List(items)) => items
                .iter()
                .filter(|v| !matches!(v, Value::NoValue))
                .map(|v| {
                    v.scalar_string().ok_or_else(|| {
                        self.invalid(format!("{key} must be a list of strings, got {v}"))
                    })
                })
                .collect(),
            Some(v) => Err(self.invalid(format!("{key} must be a list of strings, got {v}"))),
        }
    }

    /// A list of maps (`SecurityGroupIngress`); absent is `None`.
    pub fn map_list<'p>(
        &self,
        p: &'p Props,
        key: &str,
    ) -> Result<Option<Vec<&'p Props>>, Ec2Error> {
        match p.get(key) {
            None | Some(Value::Null | Value::NoValue) => Ok(None),
            Some(Value::List(items)) => items
                .iter()
                .filter(|v| !matches!(v, Value::NoValue))
                .map(|v| match v {
                    Value::Map(m) => Ok(m),
                    other => Err(self.invalid(format!("{key} items must be maps, got {other}"))),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Err(self.invalid(format!("{key} must be a list, got {v}"))),
        }
    }

    /// CloudFormation `Tags`: a list of `{Key, Value}`.
    pub fn tags(&self, p: &Props, key: &str) -> Result<BTreeMap<String, String>, Ec2Error> {
        let mut out = BTreeMap::new();
        for t in self.map_list(p, key)?.unwrap_or_default() {
            let k = self.req_str(t, "Key")?;
            let v = self.opt_str(t, "Value")?.unwrap_or_default();
            if k.starts_with("aws:") {
                return Err(self.invalid(format!("tag key {k}: the aws: prefix is reserved")));
            }
            out.insert(k, v);
        }
        Ok(out)
    }

    /// An integer property (`FromPort`), as a number or a numeric string.
    pub fn opt_int(&self, p: &Props, key: &str) -> Result<Option<i64>, Ec2Error> {
        match self.opt_str(p, key)? {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.invalid(format!("{key} must be an integer, got {s}"))),
        }
    }
}

/// Every problem found while parsing one resource, each with its property path.
pub(crate) struct Problems {
    kind: Kind,
    list: Vec<String>,
}

impl Problems {
    pub fn new(kind: Kind) -> Self {
        Problems {
            kind,
            list: Vec::new(),
        }
    }

    /// A problem at `path` (empty: the message names the property itself).
    pub fn add(&mut self, path: impl Display, message: impl Display) {
        let path = path.to_string();
        if path.is_empty() {
            self.list.push(message.to_string());
        } else {
            self.list.push(format!("{path}: {message}"));
        }
    }

    /// A problem the shape's readers found (their messages name the property).
    pub fn ec2(&mut self, path: impl Display, e: Ec2Error) {
        let message = match e {
            Ec2Error::Invalid { message, .. } => message,
            Ec2Error::Unsupported { property, hint, .. } => {
                format!("property {property} is not supported by Spindle{hint}")
            }
            other => other.to_string(),
        };
        self.add(path, message);
    }

    /// Every unknown property of the map `p` at `path` (see [`Shape::check`]).
    pub fn unknown(&mut self, path: impl Display, shape: &Shape, p: &Props) {
        let path = path.to_string();
        for err in shape.check(p) {
            self.ec2(&path, err);
        }
    }

    /// How many problems are recorded so far.
    pub fn count(&self) -> usize {
        self.list.len()
    }

    /// The value of `r`, or `None` after recording its problem.
    pub fn take<T>(&mut self, path: impl Display, r: Result<T, Ec2Error>) -> Option<T> {
        r.map_err(|e| self.ec2(path, e)).ok()
    }

    pub fn finish<T>(self, v: Option<T>) -> Result<T, String> {
        match v {
            Some(v) if self.list.is_empty() => Ok(v),
            _ => Err(format!(
                "{}: {}",
                self.kind.type_name(),
                if self.list.is_empty() {
                    "invalid properties".to_string()
                } else {
                    self.list.join("; ")
                }
            )),
        }
    }
}

/// Tags as CloudFormation writes them.
pub(crate) fn tags_value(tags: &BTreeMap<String, String>) -> Value {
    Value::List(
        tags.iter()
            .map(|(k, v)| {
                let mut m = BTreeMap::new();
                m.insert("Key".to_string(), Value::str(k));
                m.insert("Value".to_string(), Value::str(v));
                Value::Map(m)
            })
            .collect(),
    )
}

/// What a `read` reports: the properties the resource was made with (`expected`), with
/// each observed property replaced by what is actually there unless `agree` (the two mean
/// the same, e.g. `name:tag` and the `ami-…` it resolves to). Drift detection compares
/// every expected property, so unobservable ones (tags of a VPC) are echoed as expected.
pub(crate) fn observed(expected: &Props, actual: Vec<(&str, Value, bool)>) -> Props {
    let mut p = expected.clone();
    for (k, v, agree) in actual {
        if !(agree && expected.contains_key(k)) && expected.get(k) != Some(&v) {
            p.insert(k.to_string(), v);
        }
    }
    p
}

/// `a` parses to the same CIDR as `b`.
pub(crate) fn same_cidr(a: Option<&Value>, b: &spindle_runtime::Ipv4Net) -> bool {
    a.and_then(Value::scalar_string)
        .and_then(|s| s.parse::<spindle_runtime::Ipv4Net>().ok())
        .is_some_and(|n| n == *b)
}

pub(crate) fn str_list_value(items: &[String]) -> Value {
    Value::List(items.iter().map(Value::str).collect())
}

/// Decodes standard base64 (padding optional, whitespace ignored), as `Fn::Base64` encodes.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut padding = 0;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            _ => return None,
        };
        if padding > 0 {
            return None;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding of a whole number of input quartets' worth.
    if bits >= 6 || padding > 2 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shape of two used, one ignored and one hinted property.
    const TOY: Shape = Shape {
        type_name: "AWS::Toy::Thing",
        used: &["CidrBlock", "VpcId"],
        ignored: &["Tags"],
        hints: &[("Ipv6CidrBlock", "IPv6 is not implemented")],
    };

    fn props(keys: &[&str]) -> Props {
        keys.iter()
            .map(|k| (k.to_string(), Value::str("x")))
            .collect()
    }

    /// Issue #15: the check names every unknown property of a map, not only the first, each
    /// with its hint or the closest known name.
    #[test]
    fn issue_15_shape_check_names_every_unknown_property() {
        let cases: &[(&[&str], &[&str])] = &[
            (&["CidrBlock", "VpcId", "Tags"], &[]),
            (
                &["CidrBlok", "VpcID", "Colour", "Ipv6CidrBlock", "Tags"],
                &[
                    "AWS::Toy::Thing: property CidrBlok is not supported by Spindle; did you mean `CidrBlock`?",
                    "AWS::Toy::Thing: property Colour is not supported by Spindle",
                    "AWS::Toy::Thing: property Ipv6CidrBlock is not supported by Spindle; IPv6 is not implemented",
                    "AWS::Toy::Thing: property VpcID is not supported by Spindle; did you mean `VpcId`?",
                ],
            ),
            // An ignored name is suggested too: it is a name the template may mean.
            (
                &["Tag"],
                &["AWS::Toy::Thing: property Tag is not supported by Spindle; did you mean `Tags`?"],
            ),
        ];
        for (keys, want) in cases {
            let got: Vec<String> = TOY
                .check(&props(keys))
                .iter()
                .map(|e| e.to_string())
                .collect();
            assert_eq!(got, *want, "for {keys:?}");
        }
        // Null and AWS::NoValue are absent, whatever their name.
        let mut p = props(&["VpcId"]);
        p.insert("Bogus".into(), Value::NoValue);
        p.insert("Other".into(), Value::Null);
        assert!(TOY.check(&p).is_empty());
    }

    #[test]
    fn problems_record_every_unknown_property_at_its_path() {
        let mut e = Problems::new(Kind::Vpc);
        e.unknown(
            "SecurityGroupIngress[1]",
            &TOY,
            &props(&["CidrBlok", "Colour", "VpcId"]),
        );
        assert_eq!(
            e.finish(None::<()>).unwrap_err(),
            "AWS::EC2::VPC: SecurityGroupIngress[1]: property CidrBlok is not supported by \
             Spindle; did you mean `CidrBlock`?; SecurityGroupIngress[1]: property Colour is not \
             supported by Spindle"
        );
    }

    #[test]
    fn base64_round_trips_cloudformation_encoding() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("#!/bin/sh\necho hi\n", "IyEvYmluL3NoCmVjaG8gaGkK"),
        ] {
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes(), "{enc}");
        }
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("Zg").unwrap(), b"f", "padding is optional");
        assert!(
            base64_decode("#!/bin/sh\necho hi").is_none(),
            "a script not wrapped in Fn::Base64 is refused"
        );
        assert!(base64_decode("Zg==Zg==").is_none());
    }
}
