//! From the YAML tree to a checked [`Workflow`]: keys against the table in [`crate::keys`],
//! values by type, every `${{ }}` parsed and its contexts checked, `needs` as a DAG and static
//! matrices expanded. Every problem goes to the sink; nothing stops at the first.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::actions;
use crate::cron::Cron;
use crate::diag::{Category, Pos, Sink};
use crate::expr::{self, ExprError, Part, CONTEXTS};
use crate::graph::JobGraph;
use crate::keys::{self, Rating};
use crate::matrix;
use crate::model::*;
use crate::yaml::{Key, Kind, Node};

/// The source text, for turning character offsets into line:column.
pub(crate) struct Source {
    chars: Vec<char>,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(src: &str) -> Self {
        let chars: Vec<char> = src.chars().collect();
        let mut line_starts = vec![0];
        for (i, c) in chars.iter().enumerate() {
            if *c == '\n' {
                line_starts.push(i + 1);
            }
        }
        Source { chars, line_starts }
    }
    fn pos_at(&self, i: usize) -> Pos {
        let line = self.line_starts.partition_point(|s| *s <= i).max(1);
        Pos::new(line as u32, (i - self.line_starts[line - 1]) as u32 + 1)
    }
    /// The character index of the `n`-th (1-based) `${{` at or after `from`.
    fn nth_open(&self, from: usize, n: usize) -> Option<usize> {
        let mut seen = 0;
        let mut i = from;
        while i + 2 < self.chars.len() {
            if self.chars[i] == '$' && self.chars[i + 1] == '{' && self.chars[i + 2] == '{' {
                seen += 1;
                if seen == n {
                    return Some(i);
                }
            }
            i += 1;
        }
        None
    }
}

const STEP_CTX: &[&str] = CONTEXTS;
const STEP_IF_CTX: &[&str] = &[
    "github", "env", "vars", "inputs", "matrix", "needs", "steps", "job", "runner",
];
const JOB_CTX: &[&str] = &["github", "needs", "matrix", "vars", "inputs"];
const JOB_ENV_CTX: &[&str] = &["github", "needs", "matrix", "vars", "secrets", "inputs"];
const JOB_IF_CTX: &[&str] = &["github", "needs", "vars", "inputs"];
const ENV_URL_CTX: &[&str] = &[
    "github", "needs", "matrix", "job", "runner", "env", "vars", "steps", "inputs",
];
const OUTPUTS_CTX: &[&str] = &[
    "github", "needs", "matrix", "job", "runner", "env", "vars", "secrets", "steps", "inputs",
];

/// Which contexts an expression may use at a key (GitHub's "context availability").
fn contexts_for(pattern: &str) -> &'static [&'static str] {
    let p = pattern;
    if p == "run-name" || p.starts_with("concurrency") {
        return &["github", "inputs", "vars"];
    }
    if p.starts_with("env") {
        return &["github", "secrets", "inputs", "vars"];
    }
    let Some(rest) = p.strip_prefix("jobs.<job_id>.") else {
        return &[];
    };
    let first = rest.split(['.', '[']).next().unwrap_or(rest);
    match first {
        "if" | "strategy" => JOB_IF_CTX,
        "outputs" => OUTPUTS_CTX,
        "steps" if rest == "steps[].if" => STEP_IF_CTX,
        "steps" => STEP_CTX,
        "env" | "services" => JOB_ENV_CTX,
        "environment" if rest == "environment.url" => ENV_URL_CTX,
        "defaults" => &[],
        _ => JOB_CTX,
    }
}

pub(crate) struct Checker<'a> {
    pub sink: &'a mut Sink,
    pub src: &'a Source,
    /// Per job id, the jobs it needs and its step ids, for checking `needs.x` and `steps.x`.
    pub scopes: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

/// Each job's `needs` and step ids as written, before any checking.
fn scopes(root: &Node) -> BTreeMap<String, (Vec<String>, Vec<String>)> {
    let mut out = BTreeMap::new();
    for (k, job) in root.get("jobs").and_then(Node::as_map).unwrap_or_default() {
        let needs = match job.get("needs").map(|n| &n.kind) {
            Some(Kind::String(s)) => vec![s.clone()],
            Some(Kind::List(l)) => l
                .iter()
                .filter_map(|n| n.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        let steps = match job.get("steps").map(|n| &n.kind) {
            Some(Kind::List(l)) => l
                .iter()
                .filter_map(|s| s.get("id").and_then(Node::as_str).map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        out.insert(k.name.clone(), (needs, steps));
    }
    out
}

fn path_key(path: &str, key: &str) -> String {
    keys::join(path, key)
}

impl Checker<'_> {
    fn err(&mut self, cat: Category, pos: Pos, path: &str, msg: impl Into<String>) {
        self.sink.push(cat, pos, path, msg);
    }

    fn invalid(&mut self, node: &Node, path: &str, expected: &str) {
        let msg = format!("expected {expected}, found {}", node.kind_name());
        self.err(Category::Invalid, node.pos, path, msg);
    }

    /// Walks the tree against the key table (unknown and refused keys) and checks every
    /// string's expressions against the contexts available where it sits.
    pub fn walk(&mut self, node: &Node, pattern: &str, path: &str, table: bool) {
        match &node.kind {
            Kind::Map(entries) => {
                for (k, v) in entries {
                    let child_path = path_key(path, &k.name);
                    if !table {
                        self.walk(v, pattern, &child_path, false);
                        continue;
                    }
                    match keys::lookup(pattern, &k.name) {
                        None => {
                            let under = if pattern.is_empty() {
                                "at the top level".to_string()
                            } else {
                                format!("under `{pattern}`")
                            };
                            let hint = keys::suggest(pattern, &k.name)
                                .map(|s| format!("; did you mean `{s}`?"))
                                .unwrap_or_default();
                            self.err(
                                Category::UnknownKey,
                                k.pos,
                                &child_path,
                                format!("unknown key `{}` {under}{hint}", k.name),
                            );
                        }
                        Some(r) if r.rating == Rating::Refused => {
                            self.err(
                                Category::Refused,
                                k.pos,
                                &child_path,
                                format!("`{}` is refused by Spindle: {}", r.path, r.note),
                            );
                        }
                        Some(r) => {
                            if r.path.ends_with(".if") {
                                self.condition(v, r.path, &child_path);
                            } else {
                                let below = keys::has_children(r.path)
                                    || keys::has_children(&format!("{}[]", r.path));
                                self.walk(v, r.path, &child_path, below);
                            }
                        }
                    }
                }
            }
            Kind::List(items) => {
                let item_pattern = format!("{pattern}[]");
                let table = table && keys::has_children(&item_pattern);
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    if table {
                        self.walk(item, &item_pattern, &p, true);
                    } else {
                        self.walk(item, pattern, &p, false);
                    }
                }
            }
            Kind::String(s) if s.contains("${{") => self.expressions(node, s, pattern, path),
            _ => {}
        }
    }

    fn expr_error(&mut self, node: &Node, value: &str, path: &str, e: ExprError, bare: bool) {
        let pos = self.expr_pos(node, value, e.offset, bare);
        self.err(Category::Expression, pos, path, e.message);
    }

    /// The file position of character `offset` of the string `value` that `node` holds.
    fn expr_pos(&self, node: &Node, value: &str, offset: usize, bare: bool) -> Pos {
        let before: String = value.chars().take(offset + 1).collect();
        let n = before.matches("${{").count();
        if n == 0 {
            if !bare {
                return node.pos;
            }
            let lead = self.src.chars.get(node.start).copied();
            return match lead {
                Some('\'' | '"') => self.src.pos_at(node.start + 1 + offset),
                Some('|' | '>') => node.pos,
                _ => self.src.pos_at(node.start + offset),
            };
        }
        let open_in_value = before
            .rmatch_indices("${{")
            .next()
            .map(|(b, _)| before[..b].chars().count())
            .unwrap_or(0);
        match self.src.nth_open(node.start, n) {
            Some(at) => self.src.pos_at(at + offset - open_in_value),
            None => node.pos,
        }
    }

    fn expressions(&mut self, node: &Node, s: &str, pattern: &str, path: &str) {
        if pattern == "on" || pattern.starts_with("on.") {
            self.err(
                Category::Expression,
                node.pos,
                path,
                "expressions are not evaluated under `on`",
            );
            return;
        }
        let allowed = contexts_for(pattern);
        let parts = match expr::split(s) {
            Ok(p) => p,
            Err(e) => return self.expr_error(node, s, path, e, false),
        };
        for p in parts {
            if let Part::Expr { text, offset } = p {
                if allowed.is_empty() {
                    let pos = self.expr_pos(node, s, offset, false);
                    self.err(
                        Category::Expression,
                        pos,
                        path,
                        format!("expressions are not available in `{pattern}`"),
                    );
                    continue;
                }
                self.one_expression((node, s, path), &text, offset, allowed, false);
            }
        }
    }

    /// Parses and checks one expression, `text` at character `offset` of the string `value`
    /// that `node` holds (`bare`: an `if:` written without `${{ }}`).
    fn one_expression(
        &mut self,
        at: (&Node, &str, &str),
        text: &str,
        offset: usize,
        allowed: &[&str],
        bare: bool,
    ) {
        let (node, value, path) = at;
        match expr::parse(text, offset) {
            Err(e) => self.expr_error(node, value, path, e, bare),
            Ok(e) => {
                let mut errs = Vec::new();
                expr::check(&e, allowed, &mut errs);
                self.undeclared(&e, path, &mut errs);
                for e in errs {
                    self.expr_error(node, value, path, e, bare);
                }
            }
        }
    }

    /// `needs.x` naming a job this job does not need, `steps.x` naming no step of the job.
    fn undeclared(&self, e: &expr::Expr, path: &str, errs: &mut Vec<ExprError>) {
        let Some(job) = path
            .strip_prefix("jobs.")
            .map(|r| r.split(['.', '[']).next().unwrap_or(r))
        else {
            return;
        };
        let Some((needs, steps)) = self.scopes.get(job) else {
            return;
        };
        let mut refs = Vec::new();
        expr::references(e, &mut refs);
        for (ctx, name, at) in refs {
            let (known, what) = match ctx.as_str() {
                "needs" => (needs, "job `{job}` does not need"),
                "steps" => (steps, "job `{job}` has no step with id"),
                _ => continue,
            };
            if !known.iter().any(|k| k.eq_ignore_ascii_case(&name)) {
                errs.push(ExprError {
                    offset: at,
                    message: format!("{} `{name}`", what.replace("{job}", job)),
                });
            }
        }
    }

    /// An `if:` is an expression with or without `${{ }}`.
    fn condition(&mut self, node: &Node, pattern: &str, path: &str) {
        let allowed = contexts_for(pattern);
        let s = match &node.kind {
            Kind::String(s) => s.clone(),
            Kind::Bool(_) | Kind::Number(_) => return,
            _ => return self.invalid(node, path, "an expression"),
        };
        let t = s.trim();
        if t.starts_with("${{") && t.ends_with("}}") {
            match expr::split(&s) {
                Ok(parts) if parts.len() == 1 => {
                    if let Some(Part::Expr { text, offset }) = parts.first() {
                        self.one_expression((node, &s, path), text, *offset, allowed, false);
                    }
                    return;
                }
                Ok(_) => {
                    // `${{ a }} && ${{ b }}` is a non-empty string: always true on GitHub.
                    return self.err(
                        Category::Expression,
                        node.pos,
                        path,
                        "an `if:` with text around `${{ }}` is a string and always true; write one expression",
                    );
                }
                Err(e) => return self.expr_error(node, &s, path, e, false),
            }
        }
        self.one_expression((node, &s, path), &s, 0, allowed, true);
    }

    // ----- typed reading -----

    /// A scalar as text (GitHub turns numbers and booleans in these places into strings).
    fn text(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            Kind::String(s) => Some(s.clone()),
            Kind::Number(n) => Some(crate::eval::to_string(&crate::eval::number(*n))),
            Kind::Bool(b) => Some(b.to_string()),
            _ => {
                self.invalid(node, path, "a string");
                None
            }
        }
    }

    fn opt_text(&mut self, map: &Node, key: &str, path: &str) -> Option<String> {
        let v = map.get(key)?;
        self.text(v, &path_key(path, key))
    }

    fn strings(&mut self, node: &Node, path: &str) -> Vec<String> {
        match &node.kind {
            Kind::List(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, n)| self.text(n, &format!("{path}[{i}]")))
                .collect(),
            Kind::Null => Vec::new(),
            _ => self.text(node, path).into_iter().collect(),
        }
    }

    fn map_of_text(&mut self, node: Option<&Node>, path: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(node) = node else { return out };
        let Some(m) = node.as_map() else {
            self.invalid(node, path, "a mapping");
            return out;
        };
        for (k, v) in m {
            if let Some(t) = self.text(v, &path_key(path, &k.name)) {
                out.insert(k.name.clone(), t);
            }
        }
        out
    }

    /// A boolean, or an expression deciding it at run time.
    fn flag(&mut self, node: Option<&Node>, path: &str, default: bool) -> String {
        match node.map(|n| (n, &n.kind)) {
            None => default.to_string(),
            Some((_, Kind::Bool(b))) => b.to_string(),
            Some((_, Kind::String(s))) if s.contains("${{") => s.clone(),
            Some((n, _)) => {
                self.invalid(n, path, "true, false or an expression");
                default.to_string()
            }
        }
    }

    /// A positive number, or an expression computing it.
    fn positive(&mut self, node: Option<&Node>, path: &str) -> Option<String> {
        let n = node?;
        match &n.kind {
            Kind::Number(x) if *x > 0.0 => Some(crate::eval::to_string(&crate::eval::number(*x))),
            Kind::String(s) if s.contains("${{") => Some(s.clone()),
            _ => {
                self.invalid(n, path, "a positive number or an expression");
                None
            }
        }
    }

    pub fn workflow(&mut self, root: &Node) -> Option<Workflow> {
        let Some(_) = root.as_map() else {
            self.invalid(root, "", "a mapping of workflow keys");
            return None;
        };
        self.scopes = scopes(root);
        self.walk(root, "", "", true);
        let name = self.opt_text(root, "name", "");
        let run_name = self.opt_text(root, "run-name", "");
        let on = match root.get("on") {
            Some(n) => self.triggers(n),
            None => {
                self.err(Category::Invalid, root.pos, "on", "`on` is required");
                Triggers::default()
            }
        };
        let env = self.map_of_text(root.get("env"), "env");
        self.defaults(root.get("defaults"), "defaults");
        let concurrency = root
            .get("concurrency")
            .and_then(|c| self.concurrency(c, "concurrency"));
        let mut jobs = Vec::new();
        match root.get("jobs") {
            None => self.err(Category::Invalid, root.pos, "jobs", "`jobs` is required"),
            Some(j) => match j.as_map() {
                Some([]) => self.err(Category::Invalid, j.pos, "jobs", "`jobs` is empty"),
                Some(m) => {
                    for (k, v) in m {
                        if let Some(job) = self.job(k, v) {
                            jobs.push(job);
                        }
                    }
                }
                None => self.invalid(j, "jobs", "a mapping of job ids to jobs"),
            },
        }
        let graph = self.graph(root, &jobs);
        Some(Workflow {
            name,
            run_name,
            on,
            env,
            concurrency,
            jobs,
            graph,
        })
    }

    fn graph(&mut self, root: &Node, jobs: &[Job]) -> JobGraph {
        let mut g = JobGraph::default();
        for j in jobs {
            g.add(&j.id, j.needs.clone());
        }
        let jobs_node = root.get("jobs");
        let needs_node = |id: &str| {
            jobs_node
                .and_then(|j| j.get(id))
                .and_then(|j| j.get("needs"))
        };
        for j in jobs {
            for n in &j.needs {
                // A job refused as a whole (a reusable-workflow call) still exists: its
                // own error says why, and `needs` on it is not a second mistake.
                if jobs_node.and_then(|j| j.get(n)).is_none() {
                    let pos = needs_node(&j.id).map_or(Pos::default(), |n| n.pos);
                    self.err(
                        Category::Graph,
                        pos,
                        &format!("jobs.{}.needs", j.id),
                        format!(
                            "job `{}` needs `{n}`, which is not a job of this workflow",
                            j.id
                        ),
                    );
                }
            }
        }
        if let Some(cycle) = g.find_cycle() {
            let pos = needs_node(&cycle[0]).map_or(Pos::default(), |n| n.pos);
            self.err(
                Category::Graph,
                pos,
                &format!("jobs.{}.needs", cycle[0]),
                format!("jobs need each other in a cycle: {}", cycle.join(" → ")),
            );
        }
        g
    }

    fn triggers(&mut self, on: &Node) -> Triggers {
        let mut t = Triggers::default();
        let mut events: Vec<(&str, Pos, Option<&Node>)> = Vec::new();
        match &on.kind {
            Kind::String(s) => events.push((s, on.pos, None)),
            Kind::List(items) => {
                for (i, it) in items.iter().enumerate() {
                    match it.as_str() {
                        Some(s) => events.push((s, it.pos, None)),
                        None => self.invalid(it, &format!("on[{i}]"), "an event name"),
                    }
                }
            }
            Kind::Map(m) => {
                // Unknown and refused events were reported by the key walk.
                for (k, v) in m {
                    events.push((&k.name, k.pos, Some(v)));
                }
            }
            _ => self.invalid(on, "on", "an event name, a list of them or a mapping"),
        }
        let nothing_named = events.is_empty();
        for (name, pos, body) in events {
            let path = format!("on.{name}");
            if body.is_none() {
                match keys::lookup("on", name) {
                    None => {
                        self.err(
                            Category::UnknownKey,
                            pos,
                            &path,
                            format!("unknown event `{name}`"),
                        );
                        continue;
                    }
                    Some(r) if r.rating == Rating::Refused => {
                        self.err(
                            Category::Refused,
                            pos,
                            &path,
                            format!("`{}` is refused by Spindle: {}", r.path, r.note),
                        );
                        continue;
                    }
                    Some(_) => {}
                }
            }
            match name {
                "push" => t.push = Some(self.push(body, &path)),
                "schedule" => match body {
                    Some(b) => t.schedule = self.schedule(b, &path),
                    None => self.err(
                        Category::Invalid,
                        pos,
                        &path,
                        "`schedule` needs a list of `cron:` entries",
                    ),
                },
                "workflow_dispatch" => t.dispatch = Some(self.dispatch(body, &path)),
                _ => {}
            }
        }
        if nothing_named {
            self.err(
                Category::Invalid,
                on.pos,
                "on",
                "`on` names no event: use push, schedule or workflow_dispatch",
            );
        }
        t
    }

    fn push(&mut self, body: Option<&Node>, path: &str) -> PushFilter {
        let mut f = PushFilter::default();
        let Some(b) = body else { return f };
        if matches!(b.kind, Kind::Null) {
            return f;
        }
        if b.as_map().is_none() {
            self.invalid(b, path, "a mapping of filters");
            return f;
        }
        for (what, list, ignore) in [
            ("branches", &mut f.branches, &mut f.branches_ignore),
            ("tags", &mut f.tags, &mut f.tags_ignore),
            ("paths", &mut f.paths, &mut f.paths_ignore),
        ] {
            let ig = format!("{what}-ignore");
            if let Some(n) = b.get(what) {
                *list = self.patterns(n, &path_key(path, what));
            }
            if let Some(n) = b.get(&ig) {
                *ignore = self.patterns(n, &path_key(path, &ig));
                if b.get(what).is_some() {
                    self.err(
                        Category::Invalid,
                        n.pos,
                        &path_key(path, &ig),
                        format!("`{what}` and `{ig}` cannot both filter one event"),
                    );
                }
            }
        }
        f
    }

    /// Filter patterns, each checked.
    fn patterns(&mut self, node: &Node, path: &str) -> Vec<String> {
        let list = self.strings(node, path);
        let items: Vec<&Node> = match &node.kind {
            Kind::List(items) => items.iter().collect(),
            _ => vec![node],
        };
        for (p, n) in list.iter().zip(items) {
            if let Err(e) = crate::filter::check(p) {
                self.err(Category::Invalid, n.pos, path, e.to_string());
            }
        }
        list
    }

    fn schedule(&mut self, b: &Node, path: &str) -> Vec<String> {
        let Kind::List(items) = &b.kind else {
            self.invalid(b, path, "a list of `cron:` entries");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(c) = it.get("cron") else {
                self.err(
                    Category::Invalid,
                    it.pos,
                    &p,
                    "each schedule entry needs `cron`",
                );
                continue;
            };
            let Some(s) = c.as_str() else {
                self.invalid(c, &format!("{p}.cron"), "a cron string");
                continue;
            };
            match Cron::parse(s) {
                Ok(_) => out.push(s.to_string()),
                Err(e) => self.err(
                    Category::Invalid,
                    c.pos,
                    &format!("{p}.cron"),
                    e.to_string(),
                ),
            }
        }
        out
    }

    fn dispatch(&mut self, body: Option<&Node>, path: &str) -> Vec<DispatchInput> {
        let mut out = Vec::new();
        let Some(inputs) = body.and_then(|b| b.get("inputs")) else {
            return out;
        };
        let path = path_key(path, "inputs");
        let Some(m) = inputs.as_map() else {
            self.invalid(inputs, &path, "a mapping of inputs");
            return out;
        };
        for (k, v) in m {
            let p = path_key(&path, &k.name);
            if v.as_map().is_none() && !matches!(v.kind, Kind::Null) {
                self.invalid(v, &p, "a mapping");
                continue;
            }
            let kind = self
                .opt_text(v, "type", &p)
                .unwrap_or_else(|| "string".into());
            let tpos = v.get("type").map_or(v.pos, |t| t.pos);
            if !matches!(kind.as_str(), "string" | "boolean" | "choice" | "number") {
                let (cat, msg) = if kind == "environment" {
                    (Category::Refused, "`type: environment` is refused by Spindle: environments are not listed to choose from".to_string())
                } else {
                    (
                        Category::Invalid,
                        format!("input type `{kind}`: expected string, boolean, choice or number"),
                    )
                };
                self.err(cat, tpos, &path_key(&p, "type"), msg);
            }
            let options = v
                .get("options")
                .map(|o| self.strings(o, &path_key(&p, "options")))
                .unwrap_or_default();
            if kind == "choice" && options.is_empty() {
                self.err(
                    Category::Invalid,
                    tpos,
                    &p,
                    "a `choice` input needs `options`",
                );
            }
            let default = v.get("default").map(|d| d.to_json());
            if let (Some(d), Some(dn)) = (&default, v.get("default")) {
                let ok = match kind.as_str() {
                    "boolean" => d.is_boolean(),
                    "number" => d.is_number(),
                    "choice" => options.iter().any(|o| Some(o.as_str()) == d.as_str()),
                    _ => true,
                };
                if !ok {
                    self.err(
                        Category::Invalid,
                        dn.pos,
                        &path_key(&p, "default"),
                        format!("the default does not fit type `{kind}`"),
                    );
                }
            }
            let required = match v.get("required").map(|r| &r.kind) {
                None => false,
                Some(Kind::Bool(b)) => *b,
                Some(_) => {
                    let r = v.get("required").expect("matched Some above");
                    self.invalid(r, &path_key(&p, "required"), "true or false");
                    false
                }
            };
            out.push(DispatchInput {
                id: k.name.clone(),
                description: self.opt_text(v, "description", &p),
                required,
                default,
                kind,
                options,
            });
        }
        out
    }

    fn defaults(&mut self, node: Option<&Node>, path: &str) {
        let Some(run) = node.and_then(|d| d.get("run")) else {
            return;
        };
        if let Some(sh) = run.get("shell") {
            self.shell(sh, &format!("{path}.run.shell"));
        }
    }

    fn shell(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.text(node, path)?;
        if !matches!(s.as_str(), "bash" | "sh" | "python") {
            self.err(
                Category::Refused,
                node.pos,
                path,
                format!("`shell: {s}` is refused by Spindle: use bash, sh or python"),
            );
        }
        Some(s)
    }

    /// `x-spindle-network`: a plain boolean, since the sandbox is set up before any
    /// expression could be evaluated.
    fn network(&mut self, node: Option<&Node>, path: &str) -> bool {
        match node.map(|n| (n, &n.kind)) {
            None => false,
            Some((_, Kind::Bool(b))) => *b,
            Some((n, _)) => {
                self.invalid(n, &format!("{path}.x-spindle-network"), "true or false");
                false
            }
        }
    }

    fn concurrency(&mut self, node: &Node, path: &str) -> Option<Concurrency> {
        match &node.kind {
            Kind::Map(_) => {
                let Some(group) = self.opt_text(node, "group", path) else {
                    self.err(
                        Category::Invalid,
                        node.pos,
                        path,
                        "`concurrency` needs a `group`",
                    );
                    return None;
                };
                let cancel = self.flag(
                    node.get("cancel-in-progress"),
                    &path_key(path, "cancel-in-progress"),
                    false,
                );
                Some(Concurrency {
                    group,
                    cancel_in_progress: cancel,
                })
            }
            _ => self.text(node, path).map(|group| Concurrency {
                group,
                cancel_in_progress: "false".into(),
            }),
        }
    }

    fn job(&mut self, key: &Key, node: &Node) -> Option<Job> {
        let id = key.name.clone();
        let path = format!("jobs.{id}");
        let valid_id = id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_id {
            self.err(Category::Invalid, key.pos, &path, format!("job id `{id}`: use letters, digits, `-` and `_`, starting with a letter or `_`"));
        }
        if node.as_map().is_none() {
            self.invalid(node, &path, "a mapping");
            return None;
        }
        if node.get("uses").is_some() {
            // Refused by the key walk; a reusable-workflow call has no steps to check.
            return None;
        }
        let needs = node
            .get("needs")
            .map(|n| self.strings(n, &format!("{path}.needs")))
            .unwrap_or_default();
        let runs_on = match node.get("runs-on") {
            None => {
                self.err(Category::Invalid, key.pos, &path, "`runs-on` is required");
                String::new()
            }
            Some(r) => match &r.kind {
                Kind::String(s) => s.clone(),
                _ => {
                    self.err(Category::Refused, r.pos, &format!("{path}.runs-on"), format!("`runs-on` as {} is refused by Spindle: name one image or tag as a string", r.kind_name()));
                    String::new()
                }
            },
        };
        let (matrix, fail_fast, max_parallel) = match node.get("strategy") {
            None => (None, "true".to_string(), None),
            Some(s) => {
                let sp = format!("{path}.strategy");
                let m = s
                    .get("matrix")
                    .and_then(|m| self.matrix(m, &format!("{sp}.matrix")));
                let ff = self.flag(s.get("fail-fast"), &format!("{sp}.fail-fast"), true);
                let mp = self.positive(s.get("max-parallel"), &format!("{sp}.max-parallel"));
                (m, ff, mp)
            }
        };
        let environment = node.get("environment").and_then(|e| match &e.kind {
            Kind::Map(_) => {
                let n = self.opt_text(e, "name", &format!("{path}.environment"));
                if n.is_none() {
                    self.err(
                        Category::Invalid,
                        e.pos,
                        &format!("{path}.environment"),
                        "`environment` needs a `name`",
                    );
                }
                n
            }
            _ => self.text(e, &format!("{path}.environment")),
        });
        let mut services = BTreeMap::new();
        if let Some(sv) = node.get("services") {
            match sv.as_map() {
                None => self.invalid(sv, &format!("{path}.services"), "a mapping of services"),
                Some(m) => {
                    for (k, v) in m {
                        let p = format!("{path}.services.{}", k.name);
                        let Some(image) = self.opt_text(v, "image", &p) else {
                            self.err(Category::Invalid, v.pos, &p, "a service needs an `image`");
                            continue;
                        };
                        let env = self.map_of_text(v.get("env"), &format!("{p}.env"));
                        let ports = v
                            .get("ports")
                            .map(|x| self.strings(x, &format!("{p}.ports")))
                            .unwrap_or_default();
                        services.insert(k.name.clone(), Service { image, env, ports });
                    }
                }
            }
        }
        self.defaults(node.get("defaults"), &format!("{path}.defaults"));
        let steps = match node.get("steps") {
            None => {
                self.err(Category::Invalid, key.pos, &path, "`steps` is required");
                Vec::new()
            }
            Some(s) => match &s.kind {
                Kind::List(items) if !items.is_empty() => {
                    self.steps(items, &format!("{path}.steps"))
                }
                _ => {
                    self.invalid(s, &format!("{path}.steps"), "a non-empty list of steps");
                    Vec::new()
                }
            },
        };
        Some(Job {
            name: self.opt_text(node, "name", &path),
            needs,
            condition: self.opt_text(node, "if", &path),
            runs_on,
            matrix,
            fail_fast,
            max_parallel,
            env: self.map_of_text(node.get("env"), &format!("{path}.env")),
            outputs: self.map_of_text(node.get("outputs"), &format!("{path}.outputs")),
            timeout_minutes: self.positive(
                node.get("timeout-minutes"),
                &format!("{path}.timeout-minutes"),
            ),
            continue_on_error: self.flag(
                node.get("continue-on-error"),
                &format!("{path}.continue-on-error"),
                false,
            ),
            concurrency: node
                .get("concurrency")
                .and_then(|c| self.concurrency(c, &format!("{path}.concurrency"))),
            services,
            environment,
            steps,
            network: self.network(node.get("x-spindle-network"), &path),
            id,
        })
    }

    fn matrix(&mut self, node: &Node, path: &str) -> Option<MatrixPlan> {
        let dynamic = |why: &str| {
            Some(MatrixPlan::Dynamic {
                reason: why.to_string(),
            })
        };
        match &node.kind {
            Kind::String(s) if s.contains("${{") => {
                return dynamic("the whole matrix is an expression")
            }
            Kind::Map(m) => {
                if m.iter()
                    .any(|(_, v)| matches!(&v.kind, Kind::String(s) if s.contains("${{")))
                {
                    return dynamic("an axis, `include` or `exclude` is an expression");
                }
            }
            _ => {
                self.invalid(node, path, "a mapping or an expression");
                return None;
            }
        }
        let entries: Vec<(String, Value)> = node
            .as_map()
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| (k.name.clone(), v.to_json()))
            .collect();
        match matrix::expand(&entries) {
            Ok(c) => Some(MatrixPlan::Static { combinations: c }),
            Err(e) => {
                self.err(Category::Invalid, node.pos, path, e.to_string());
                None
            }
        }
    }

    fn steps(&mut self, items: &[Node], path: &str) -> Vec<Step> {
        let mut out = Vec::new();
        let mut ids: BTreeMap<String, Pos> = BTreeMap::new();
        for (i, s) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if s.as_map().is_none() {
                self.invalid(s, &p, "a step mapping");
                continue;
            }
            let id = self.opt_text(s, "id", &p);
            if let (Some(id), Some(n)) = (&id, s.get("id")) {
                if let Some(first) = ids.get(id) {
                    self.err(
                        Category::Invalid,
                        n.pos,
                        &format!("{p}.id"),
                        format!("step id `{id}` is used twice (first at {first})"),
                    );
                } else {
                    ids.insert(id.clone(), n.pos);
                }
            }
            let action = match (s.get("run"), s.get("uses")) {
                (Some(_), Some(u)) => {
                    self.err(
                        Category::Invalid,
                        u.pos,
                        &p,
                        "a step has `run` or `uses`, not both",
                    );
                    continue;
                }
                (None, None) => {
                    self.err(Category::Invalid, s.pos, &p, "a step needs `run` or `uses`");
                    continue;
                }
                (Some(r), None) => {
                    let Some(script) = self.text(r, &format!("{p}.run")) else {
                        continue;
                    };
                    if let Some(w) = s.get("with") {
                        self.err(
                            Category::Invalid,
                            w.pos,
                            &format!("{p}.with"),
                            "`with` belongs to `uses` steps",
                        );
                    }
                    StepAction::Run {
                        script,
                        shell: s
                            .get("shell")
                            .and_then(|sh| self.shell(sh, &format!("{p}.shell"))),
                        working_directory: self.opt_text(s, "working-directory", &p),
                    }
                }
                (None, Some(u)) => {
                    for k in ["shell", "working-directory"] {
                        if let Some(n) = s.get(k) {
                            self.err(
                                Category::Invalid,
                                n.pos,
                                &format!("{p}.{k}"),
                                format!("`{k}` belongs to `run` steps"),
                            );
                        }
                    }
                    match self.uses(u, s.get("with"), &p) {
                        Some(a) => a,
                        None => continue,
                    }
                }
            };
            out.push(Step {
                id,
                name: self.opt_text(s, "name", &p),
                condition: self.opt_text(s, "if", &p),
                action,
                env: self.map_of_text(s.get("env"), &format!("{p}.env")),
                continue_on_error: self.flag(
                    s.get("continue-on-error"),
                    &format!("{p}.continue-on-error"),
                    false,
                ),
                timeout_minutes: self
                    .positive(s.get("timeout-minutes"), &format!("{p}.timeout-minutes")),
            });
        }
        out
    }

    fn uses(&mut self, u: &Node, with: Option<&Node>, p: &str) -> Option<StepAction> {
        let up = format!("{p}.uses");
        let name = self.text(u, &up)?;
        let Some(b) = actions::find(&name) else {
            let list: Vec<&str> = actions::BUILTINS.iter().map(|b| b.name).collect();
            self.err(
                Category::Refused,
                u.pos,
                &up,
                format!(
                    "`uses: {name}` is refused by Spindle: only the built-in actions run ({})",
                    list.join(", ")
                ),
            );
            return None;
        };
        let version = name.split_once('@').map(|(_, v)| v.to_string());
        let wp = format!("{p}.with");
        let with_map = self.map_of_text(with, &wp);
        let wpos = with.map_or(u.pos, |w| w.pos);
        if let Some(m) = with.and_then(Node::as_map) {
            for (k, _) in m {
                if !b.inputs.iter().any(|i| i.name == k.name) {
                    let known: Vec<&str> = b.inputs.iter().map(|i| i.name).collect();
                    self.err(
                        Category::Invalid,
                        k.pos,
                        &path_key(&wp, &k.name),
                        format!(
                            "`{}` has no input `{}` (inputs: {})",
                            b.name,
                            k.name,
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        for i in b.inputs.iter().filter(|i| !i.allowed.is_empty()) {
            let (Some(v), Some(n)) = (with_map.get(i.name), with.and_then(|w| w.get(i.name)))
            else {
                continue;
            };
            if !v.contains("${{") && !i.allowed.contains(&v.as_str()) {
                self.err(
                    Category::Invalid,
                    n.pos,
                    &path_key(&wp, i.name),
                    format!(
                        "`{}` input `{}` is `{v}`: expected {}",
                        b.name,
                        i.name,
                        i.allowed.join(", ")
                    ),
                );
            }
        }
        for i in b.inputs.iter().filter(|i| i.required) {
            if !with_map.contains_key(i.name) {
                self.err(
                    Category::Invalid,
                    wpos,
                    &wp,
                    format!("`{}` needs the input `{}`", b.name, i.name),
                );
            }
        }
        if !b.one_of.is_empty() {
            let given: Vec<&&str> = b
                .one_of
                .iter()
                .filter(|k| with_map.contains_key(**k))
                .collect();
            if given.len() != 1 {
                self.err(
                    Category::Invalid,
                    wpos,
                    &wp,
                    format!("`{}` needs exactly one of {}", b.name, b.one_of.join(", ")),
                );
            }
        }
        Some(StepAction::Uses {
            action: b.name.to_string(),
            version,
            with: with_map,
        })
    }
}
