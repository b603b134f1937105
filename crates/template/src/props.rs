//! Resource `Properties` checked against the registry schema of their type: unknown
//! properties (with a "did you mean"), wrong types, missing required properties, enum values,
//! patterns, lengths, numeric ranges and array sizes, down through nested definitions.
//!
//! Only what is written literally is checked. A value that is an intrinsic function (`Ref`,
//! `Fn::Sub`, ...) or holds a dynamic reference (`{{resolve:...}}`) is known only at deploy
//! time and is skipped; both branches of an `Fn::If` are checked. Scalars are compared the way
//! CloudFormation converts them: a number is a fine string, `"80"` a fine integer, `"true"` a
//! fine boolean.

use serde_json::Value as J;

use crate::ast::{Func, Node, NodeKind};
use crate::diag::{join, Category, Sink};
use crate::schema::{PropertySchemas, TypeSchema};
use crate::template::Resource;

/// `$ref` chains and schema nesting are followed at most this deep (the template's own
/// depth is already bounded by the readers).
const MAX_REF_HOPS: usize = 16;

/// Types whose registry schema doesn't describe what CloudFormation accepts: a custom
/// resource takes any properties besides `ServiceToken` (they go to its handler).
const OPEN_TYPES: &[&str] = &["AWS::CloudFormation::CustomResource"];

/// What Spindle accepts beyond the registry schema of a type.
#[derive(Debug, Clone, Copy)]
enum Relax {
    /// A property the registry doesn't have; its provider checks it.
    Property,
    /// More values for an enum.
    Values(&'static [&'static str]),
    /// A lower minimum.
    Minimum(f64),
}

/// Spindle's dialect: where the providers deliberately accept more than CloudFormation, the
/// registry schema must not refuse it. `(type, property path without list indices, what)`.
/// Keep in step with the providers (`spindle_autoscale::spec::CUSTOM_METRICS`, `SpindleAlarm`;
/// the target group's health check timings and thresholds, down to 1 for fast local checks); a test
/// in `spindle-providers` checks the metric table against this one.
const DIALECT: &[(&str, &str, Relax)] = &[
    (
        "AWS::AutoScaling::ScalingPolicy",
        "SpindleAlarm",
        Relax::Property,
    ),
    (
        "AWS::AutoScaling::ScalingPolicy",
        "TargetTrackingConfiguration.CustomizedMetricSpecification.Statistic",
        Relax::Values(&["p50", "p95", "p99"]),
    ),
    (
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "HealthCheckIntervalSeconds",
        Relax::Minimum(1.0),
    ),
    (
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "HealthCheckTimeoutSeconds",
        Relax::Minimum(1.0),
    ),
    (
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "HealthyThresholdCount",
        Relax::Minimum(1.0),
    ),
    (
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "UnhealthyThresholdCount",
        Relax::Minimum(1.0),
    ),
];

/// The dialect's relaxation at `path` (`Resources.X.Properties.A.0.B`) of a resource of
/// `type_name`, if any.
fn relaxed(type_name: &str, path: &str) -> Option<Relax> {
    // `Resources.<id>.Properties.` comes first; logical ids have no dots.
    let rel = path.splitn(4, '.').nth(3)?;
    let rel: Vec<&str> = rel
        .split('.')
        .filter(|s| !s.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let rel = rel.join(".");
    DIALECT
        .iter()
        .find(|(t, p, _)| *t == type_name && *p == rel)
        .map(|(_, _, r)| *r)
}

/// Checks one resource's properties, if the registry knows its type.
pub(crate) fn check_resource(sink: &mut Sink, r: &Resource, path: &str) {
    if OPEN_TYPES.contains(&r.type_name.as_str()) {
        return;
    }
    let Some(schema) = PropertySchemas::bundled().get(&r.type_name) else {
        return;
    };
    let mut c = Checker {
        sink,
        schema: &schema,
        type_name: &r.type_name,
    };
    let ppath = join(path, "Properties");
    match &r.properties {
        Some(n) => c.node(n, &schema.root, &ppath, 0),
        None => {
            // No `Properties` at all: only the required ones can be wrong.
            for name in required(&schema.root) {
                c.sink.push(
                    Category::Property,
                    r.pos,
                    &ppath,
                    format!(
                        "{} requires property `{name}`, and the resource has no Properties",
                        r.type_name
                    ),
                );
            }
        }
    }
}

fn required(s: &J) -> impl Iterator<Item = &str> {
    s.get("required")
        .and_then(J::as_array)
        .into_iter()
        .flatten()
        .filter_map(J::as_str)
}

struct Checker<'a, 'b> {
    sink: &'a mut Sink,
    schema: &'b TypeSchema,
    type_name: &'b str,
}

impl Checker<'_, '_> {
    fn node(&mut self, n: &Node, s: &J, path: &str, hops: usize) {
        if hops > MAX_REF_HOPS {
            return;
        }
        if let Some(target) = s
            .get("$ref")
            .and_then(J::as_str)
            .and_then(|r| self.schema.definition(r))
        {
            self.node(n, target, path, hops + 1);
        }
        match &n.kind {
            NodeKind::Intrinsic(i) => {
                if i.func == Func::If {
                    if let Some([_, a, b]) = i.arg.as_list() {
                        self.node(a, s, path, hops + 1);
                        self.node(b, s, path, hops + 1);
                    }
                }
                return;
            }
            NodeKind::Null => return,
            NodeKind::String(x) if x.contains("{{resolve:") => return,
            _ => {}
        }
        if let Some(want) = s.get("type") {
            if !type_matches(n, want) {
                self.sink.push(
                    Category::Property,
                    n.pos,
                    path,
                    format!(
                        "{} must be {}, not {}",
                        last(path),
                        type_phrase(want),
                        describe(n)
                    ),
                );
                return;
            }
        }
        match &n.kind {
            NodeKind::Map(m) => self.object(n, m, s, path, hops),
            NodeKind::List(l) => self.array(l, n, s, path, hops),
            _ => self.scalar(n, s, path),
        }
    }

    fn object(&mut self, n: &Node, m: &[(crate::ast::Key, Node)], s: &J, path: &str, hops: usize) {
        let props = s.get("properties").and_then(J::as_object);
        let patterns = s.get("patternProperties").and_then(J::as_object);
        let closed = s.get("additionalProperties") == Some(&J::Bool(false));
        for (k, v) in m {
            let kpath = join(path, &k.name);
            if let Some(sub) = props.and_then(|p| p.get(&k.name)) {
                self.node(v, sub, &kpath, hops + 1);
                continue;
            }
            let by_pattern = patterns.and_then(|p| {
                p.iter().find(|(re, _)| {
                    self.schema
                        .pattern(re)
                        .is_none_or(|r| r.is_match(&k.name).unwrap_or(true))
                })
            });
            if let Some((_, sub)) = by_pattern {
                self.node(v, sub, &kpath, hops + 1);
            } else if closed
                && !k.name.starts_with("Fn::")
                && !matches!(relaxed(self.type_name, &kpath), Some(Relax::Property))
            {
                let names = props.map(|p| p.keys().map(String::as_str).collect::<Vec<_>>());
                let hint = names
                    .as_deref()
                    .and_then(|names| did_you_mean(&k.name, names))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                let owner = if path.ends_with(".Properties") {
                    self.type_name.to_string()
                } else {
                    format!("`{}`", last(path))
                };
                self.sink.push(
                    Category::Property,
                    k.pos,
                    &kpath,
                    format!("unknown property `{}` for {owner}{hint}", k.name),
                );
            }
        }
        for name in required(s) {
            if !m.iter().any(|(k, _)| k.name == name) {
                self.sink.push(
                    Category::Property,
                    n.pos,
                    path,
                    format!("missing required property `{name}`"),
                );
            }
        }
    }

    fn array(&mut self, l: &[Node], n: &Node, s: &J, path: &str, hops: usize) {
        // An `Fn::If` element may vanish (`AWS::NoValue`), so sizes are only checked on
        // literal lists.
        if !l.iter().any(|x| matches!(x.kind, NodeKind::Intrinsic(_))) {
            let len = l.len() as f64;
            let what = |b: &str| format!("{b} item(s), has {len}");
            self.bounds(n, s, path, len, ("minItems", "maxItems"), what);
        }
        if let Some(items) = s.get("items") {
            for (i, x) in l.iter().enumerate() {
                self.node(x, items, &join(path, &i.to_string()), hops + 1);
            }
        }
    }

    fn scalar(&mut self, n: &Node, s: &J, path: &str) {
        let Some(text) = n.scalar_text() else { return };
        if let Some(values) = s.get("enum").and_then(J::as_array) {
            let fold = s.get("enumCaseInsensitive") == Some(&J::Bool(true));
            let extra = match relaxed(self.type_name, path) {
                Some(Relax::Values(v)) => v,
                _ => &[],
            };
            let ok = extra.contains(&text.as_str())
                || values.iter().any(|v| {
                    let v = enum_text(v);
                    if fold {
                        v.eq_ignore_ascii_case(&text)
                    } else {
                        v == text
                    }
                });
            if !ok {
                let list: Vec<String> = values.iter().map(enum_text).collect();
                let names: Vec<&str> = list.iter().map(String::as_str).collect();
                let hint = did_you_mean(&text, &names)
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                let shown = if list.len() > 12 {
                    format!("{}, ... ({} values)", list[..12].join(", "), list.len())
                } else {
                    list.join(", ")
                };
                self.sink.push(
                    Category::Property,
                    n.pos,
                    path,
                    format!("{} must be one of {shown}, not `{text}`{hint}", last(path)),
                );
                return;
            }
        }
        let chars = text.chars().count() as f64;
        let what = |b: &str| format!("{b} character(s) long, is {chars}");
        self.bounds(n, s, path, chars, ("minLength", "maxLength"), what);
        if let Some(num) = number(n) {
            let what = |b: &str| format!("{b}, is {text}");
            self.bounds(n, s, path, num, ("minimum", "maximum"), what);
        }
        if let Some(p) = s.get("pattern").and_then(J::as_str) {
            if let Some(re) = self.schema.pattern(p) {
                // A match that exceeds the engine's backtracking limit counts as a match.
                if !re.is_match(&text).unwrap_or(true) {
                    self.sink.push(
                        Category::Property,
                        n.pos,
                        path,
                        format!("{} `{text}` does not match the pattern {p}", last(path)),
                    );
                }
            }
        }
    }
}

impl Checker<'_, '_> {
    /// Reports `value` outside the schema's `(min, max)` keywords; `what("at least 5")`
    /// finishes the message.
    fn bounds(
        &mut self,
        n: &Node,
        s: &J,
        path: &str,
        value: f64,
        (min_key, max_key): (&str, &str),
        what: impl Fn(&str) -> String,
    ) {
        let dialect_min = match relaxed(self.type_name, path) {
            Some(Relax::Minimum(m)) if min_key == "minimum" => Some(m),
            _ => None,
        };
        let min = dialect_min
            .or_else(|| s.get(min_key).and_then(J::as_f64))
            .filter(|m| value < *m);
        let max = s.get(max_key).and_then(J::as_f64).filter(|m| value > *m);
        let problem = match (min, max) {
            (Some(m), _) => format!("at least {m}"),
            (_, Some(m)) => format!("at most {m}"),
            _ => return,
        };
        let verb = if min_key == "minItems" {
            "takes"
        } else {
            "must be"
        };
        self.sink.push(
            Category::Property,
            n.pos,
            path,
            format!("{} {verb} {}", last(path), what(&problem)),
        );
    }
}

fn last(path: &str) -> &str {
    let l = path.rsplit('.').next().unwrap_or(path);
    if l.bytes().all(|b| b.is_ascii_digit()) {
        // A list item: name the list and the index (`Tags.0`).
        let cut = path[..path.len() - l.len()].trim_end_matches('.');
        let start = cut.rfind('.').map_or(0, |i| i + 1);
        &path[start..]
    } else {
        l
    }
}

fn enum_text(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn number(n: &Node) -> Option<f64> {
    match &n.kind {
        NodeKind::Number(s) | NodeKind::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

fn one_type(n: &Node, t: &str) -> bool {
    match (t, &n.kind) {
        ("string", NodeKind::String(_) | NodeKind::Number(_) | NodeKind::Bool(_)) => true,
        ("integer", NodeKind::Number(s) | NodeKind::String(s)) => {
            let s = s.trim();
            s.parse::<i64>().is_ok() || s.parse::<f64>().is_ok_and(|f| f.fract() == 0.0)
        }
        ("number", NodeKind::Number(s) | NodeKind::String(s)) => s.trim().parse::<f64>().is_ok(),
        ("boolean", NodeKind::Bool(_)) => true,
        ("boolean", NodeKind::String(s)) => {
            s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false")
        }
        ("object", NodeKind::Map(_)) | ("array", NodeKind::List(_)) => true,
        ("null", NodeKind::Null) => true,
        _ => false,
    }
}

fn type_matches(n: &Node, want: &J) -> bool {
    match want {
        J::String(t) => one_type(n, t),
        J::Array(ts) => ts.iter().filter_map(J::as_str).any(|t| one_type(n, t)),
        _ => true,
    }
}

fn type_phrase(want: &J) -> String {
    let one = |t: &str| match t {
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        "object" => "a mapping",
        "array" => "a list",
        "null" => "null",
        _ => "of another type",
    };
    match want {
        J::String(t) => one(t).to_string(),
        J::Array(ts) => ts
            .iter()
            .filter_map(J::as_str)
            .map(one)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "of another type".into(),
    }
}

fn describe(n: &Node) -> String {
    match &n.kind {
        NodeKind::String(s) => format!("the string \"{s}\""),
        NodeKind::Number(s) => format!("the number {s}"),
        NodeKind::Bool(b) => format!("the boolean {b}"),
        other => format!("a {}", Node::new(n.pos, other.clone()).kind_name()),
    }
}

/// The closest of `names` to `word`, if one is close enough to be a likely typo: the same
/// but for case, or within an edit distance of about a third of the word.
pub fn did_you_mean<'n>(word: &str, names: &[&'n str]) -> Option<&'n str> {
    if let Some(n) = names.iter().find(|n| n.eq_ignore_ascii_case(word)) {
        return Some(n);
    }
    let limit = (word.chars().count() / 3).clamp(1, 4);
    names
        .iter()
        .map(|n| (edit_distance(word, n), *n))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| n)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), by chars.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, x) in d.iter_mut().enumerate().take(w) {
        *x = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        for (a, b, want) in [
            ("CidrBlok", "CidrBlock", 1),
            ("headr", "header", 1),
            ("Prot", "Port", 1),
            ("abc", "abc", 0),
            ("", "abc", 3),
            ("VpcID", "VpcId", 1),
        ] {
            assert_eq!(edit_distance(a, b), want, "{a} {b}");
        }
    }

    #[test]
    fn suggestions() {
        let names = ["CidrBlock", "Ipv4IpamPoolId", "Tags", "EnableDnsSupport"];
        assert_eq!(did_you_mean("CidrBlok", &names), Some("CidrBlock"));
        assert_eq!(did_you_mean("cidrblock", &names), Some("CidrBlock"));
        assert_eq!(did_you_mean("Tag", &names), Some("Tags"));
        assert_eq!(did_you_mean("Color", &names), None);
    }

    #[test]
    fn last_segment_names_list_items() {
        assert_eq!(last("Resources.A.Properties.Port"), "Port");
        assert_eq!(last("Resources.A.Properties.Tags.0"), "Tags.0");
    }
}
